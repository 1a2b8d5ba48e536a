"""``KeyTable``: the numpy engine's hash table from token keys to ids."""

from __future__ import annotations

import numpy as np

from passage._tokenizer.keys import GOLDEN, U64


class KeyTable:
    """Token keys (uint64, never 0) to ids: open addressing with linear probing, in numpy.

    A lookup probes every token's slot at once, then the next slot for the few that met another
    key, and so on. The table is kept at most half full, so few tokens need a second probe.
    """

    def __init__(self, bits: int = 16):
        self._allocate(bits)

    def _allocate(self, bits: int) -> None:
        """An empty table of 2**bits slots."""
        self.bits = bits
        self.keys = np.zeros(1 << bits, np.uint64)  # 0: empty slot
        self.ids = np.full(1 << bits, -1, np.int32)
        self.count = 0

    def _home(self, keys: np.ndarray) -> np.ndarray:
        slot = keys * GOLDEN
        slot >>= U64(64 - self.bits)
        return slot.view(np.int64)

    def lookup(self, keys: np.ndarray) -> np.ndarray:
        """The id of every key, -1 for keys not in the table."""
        slot = self._home(keys)
        out = np.take(self.ids, slot)
        held = np.take(self.keys, slot)
        miss = np.flatnonzero(held != keys)
        out[miss] = -1
        todo = miss[held[miss] != 0]  # their slot holds another key: probe the next slots
        wrap = (1 << self.bits) - 1
        while todo.size:
            slot_t = (slot[todo] + 1) & wrap
            slot[todo] = slot_t
            held = self.keys[slot_t]
            hit = held == keys[todo]
            out[todo[hit]] = self.ids[slot_t[hit]]
            todo = todo[~hit & (held != 0)]
        return out

    def insert(self, keys: np.ndarray, ids: np.ndarray) -> None:
        """Add distinct keys that are not in the table yet, with their ids. Earlier keys get
        the better slots (nearer their home): put the frequent tokens first."""
        if 2 * (self.count + len(keys)) > len(self.keys):
            held = np.flatnonzero(self.keys)
            held = held[np.argsort(self.ids[held], kind="stable")]  # by id: the earlier first
            old_keys, old_ids = self.keys[held], self.ids[held]
            self._allocate(max(self.bits + 1, (4 * (self.count + len(keys))).bit_length()))
            self._place(old_keys, old_ids)
        self._place(keys, ids)

    def _place(self, keys: np.ndarray, ids: np.ndarray) -> None:
        slot = self._home(keys)
        todo = np.arange(len(keys))
        wrap = (1 << self.bits) - 1
        while todo.size:
            s = slot[todo]
            free = np.flatnonzero(self.keys[s] == 0)
            # of the keys claiming one free slot, the first one gets it
            _, first = np.unique(s[free], return_index=True)
            won = free[first]
            self.keys[s[won]] = keys[todo[won]]
            self.ids[s[won]] = ids[todo[won]]
            placed = np.zeros(len(todo), bool)
            placed[won] = True
            todo = todo[~placed]
            slot[todo] = (slot[todo] + 1) & wrap  # past a slot that is taken: probe the next
        self.count += len(keys)
