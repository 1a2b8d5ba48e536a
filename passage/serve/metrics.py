"""Counters, gauges and histograms in the Prometheus text exposition format (version 0.0.4).

A small implementation of what the service needs, thread-safe (the batcher's worker thread and
the event loop both record).

>>> requests = Counter("demo_requests_total", "Requests.", ("route",))
>>> requests.inc(route="/predict")
>>> print(render([requests]), end="")
# HELP demo_requests_total Requests.
# TYPE demo_requests_total counter
demo_requests_total{route="/predict"} 1
"""

from __future__ import annotations

import bisect
import math
import threading
from collections.abc import Callable, Iterable
from typing import Any

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _escape(value: object) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(names: tuple[str, ...], values: tuple, extra: str = "") -> str:
    parts = [f'{n}="{_escape(v)}"' for n, v in zip(names, values, strict=True)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(int(value)) if float(value).is_integer() else repr(float(value))


class _Metric:
    kind = ""

    def __init__(self, name: str, help: str, labels: tuple[str, ...] = ()):
        self.name, self.help, self.label_names = name, help, tuple(labels)
        self._lock = threading.Lock()
        self._values: dict[tuple, Any] = {}  # label values -> a count, or (buckets, sum)

    def _key(self, labels: dict) -> tuple:
        try:  # (on every request: no sets built)
            if len(labels) == len(self.label_names):
                return tuple(map(labels.__getitem__, self.label_names))
        except KeyError:
            pass
        raise ValueError(f"{self.name} takes labels {self.label_names}, got {sorted(labels)}")

    def header(self) -> list[str]:
        return [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.kind}"]

    def lines(self) -> list[str]:
        raise NotImplementedError


class Counter(_Metric):
    """A count that only goes up, per combination of label values."""

    kind = "counter"

    def inc(self, amount: float = 1.0, **labels) -> None:
        key = self._key(labels)
        with self._lock:
            self._values[key] = self._values.get(key, 0) + amount

    def value(self, **labels) -> float:
        with self._lock:
            return float(self._values.get(self._key(labels), 0))

    def lines(self) -> list[str]:
        with self._lock:
            items = sorted(self._values.items())
        return [f"{self.name}{_labels(self.label_names, k)} {_number(v)}" for k, v in items]


class Gauge(_Metric):
    """A value read when the metrics are rendered (no labels)."""

    kind = "gauge"

    def __init__(self, name: str, help: str, read: Callable[[], float]):
        super().__init__(name, help)
        self.read = read

    def lines(self) -> list[str]:
        return [f"{self.name} {_number(self.read())}"]


class Histogram(_Metric):
    """Observations counted into cumulative buckets (upper bounds), with their sum and count."""

    kind = "histogram"

    def __init__(self, name: str, help: str, buckets: Iterable[float],
                 labels: tuple[str, ...] = ()):
        super().__init__(name, help, labels)
        self.buckets = sorted(float(b) for b in buckets)

    def observe(self, value: float, **labels) -> None:
        key = self._key(labels)
        with self._lock:
            counts, total = self._values.get(key, ([0] * (len(self.buckets) + 1), 0.0))
            counts[bisect.bisect_left(self.buckets, value)] += 1
            self._values[key] = (counts, total + value)

    def lines(self) -> list[str]:
        with self._lock:
            items = sorted((k, (list(c), s)) for k, (c, s) in self._values.items())
        out = []
        for key, (counts, total) in items:
            running = 0
            for bound, n in zip([*self.buckets, math.inf], counts, strict=True):
                running += n
                le = _labels(self.label_names, key, f'le="{_number(bound)}"')
                out.append(f"{self.name}_bucket{le} {running}")
            plain = _labels(self.label_names, key)
            out += [f"{self.name}_sum{plain} {_number(total)}",
                    f"{self.name}_count{plain} {running}"]
        return out


def render(metrics: Iterable[_Metric]) -> str:
    """All the metrics in the text format, each with its HELP and TYPE lines."""
    lines: list[str] = []
    for metric in metrics:
        lines += metric.header() + metric.lines()
    return "\n".join(lines) + "\n"
