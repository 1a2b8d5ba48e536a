"""passage.parallel: a batch per core, one intra-op thread each, torch's count put back."""

import threading

import pytest
import torch

from passage.layers import is_training
from passage.parallel import map_batches, one_core, thread_count_kept


def test_every_batch_runs_once_in_inference_mode_and_the_thread_count_is_kept():
    before = torch.get_num_threads()
    seen, lock = [], threading.Lock()
    module = torch.nn.Linear(2, 2)  # in training mode

    def run(batch):
        with lock:
            seen.append((batch, torch.is_inference_mode_enabled(), is_training(module)))

    map_batches(run, list(range(7)), torch.device("cpu"))
    assert sorted(b for b, _, _ in seen) == list(range(7))
    assert all(inference and not training for _, inference, training in seen)
    assert torch.get_num_threads() == before


def test_an_error_in_a_batch_reaches_the_caller():
    def run(batch):
        if batch == 3:
            raise ValueError("batch 3 is bad")

    with pytest.raises(ValueError, match="batch 3 is bad"):
        map_batches(run, list(range(6)), torch.device("cpu"))
    map_batches(lambda b: None, [0, 1], torch.device("cpu"))  # and the next call still works


def test_one_core_in_a_thread_leaves_the_callers_count():
    before = torch.get_num_threads()
    inside = []

    def work():
        one_core()
        inside.append(torch.get_num_threads())

    with thread_count_kept():
        t = threading.Thread(target=work)
        t.start()
        t.join()
    assert inside == [1]
    assert torch.get_num_threads() == before
