"""Prometheus arithmetic on regularly scraped counters: range selection as 3.x (left-open)
or 2.x (closed) does it, and ``rate()``'s extrapolation, copied from the engine."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

# ---- Prometheus arithmetic on regularly scraped counters -------------------------------------


@dataclass(frozen=True)
class Engine:
    """Where the PromQL engine's versions differ, as far as these queries go."""

    major: int

    @property
    def closed(self) -> bool:
        """Ranges include their left edge (2.x); 3.x made them left-open."""
        return self.major < 3

    def first_index(self, edge: np.ndarray, step: float) -> np.ndarray:
        """Index of the first grid point (multiples of ``step``) inside a range from ``edge``."""
        if self.closed:
            return np.ceil(edge / step).astype(np.int64)
        return np.floor(edge / step).astype(np.int64) + 1


ENGINE = Engine(3)  # what the arithmetic below copies; use_engine() switches


def use_engine(major: int) -> None:
    global ENGINE
    ENGINE = Engine(major)


@dataclass
class Counters:
    """Counter samples of one pod group: sample ``k`` of every run at ``t0 + k * step`` seconds.

    ``values[name]`` is (runs, samples); NaN where the series does not exist (yet).
    """

    t0: np.ndarray
    step: float
    values: dict[str, np.ndarray]
    _first: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def samples(self) -> int:
        return int(next(iter(self.values.values())).shape[1])

    def first_present(self, name: str) -> np.ndarray:
        """Index of each run's first sample of ``name`` (``samples`` when it never appears)."""
        if name not in self._first:
            present = ~np.isnan(self.values[name])
            first = np.argmax(present, axis=1)
            self._first[name] = np.where(present.any(axis=1), first, self.samples)
        return self._first[name]


def _rows(a: np.ndarray, t: np.ndarray) -> np.ndarray:
    return a.reshape((-1,) + (1,) * (t.ndim - 1))


def extrapolated_sum(
    c: Counters, names: Sequence[str], t: np.ndarray, window: float, is_rate: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """``sum(rate(sel[window]))`` (or ``increase``) at times ``t``: Prometheus' extrapolatedRate
    per series over the range ending at ``t``, then summed."""
    t0 = _rows(c.t0, t)
    hi = np.floor((t - t0) / c.step).astype(np.int64)
    lo = ENGINE.first_index(t - window - t0, c.step)
    hi = np.minimum(hi, c.samples - 1)
    total = np.zeros(t.shape)
    present = np.zeros(t.shape, dtype=bool)
    runs = len(c.t0)
    for name in names:
        first = np.maximum(lo, _rows(c.first_present(name), t))
        n = hi - first + 1
        ok = n >= 2
        a = np.clip(first, 0, c.samples - 1).reshape(runs, -1)
        b = np.clip(hi, 0, c.samples - 1).reshape(runs, -1)
        v1 = np.take_along_axis(c.values[name], a, axis=1).reshape(t.shape)
        v2 = np.take_along_axis(c.values[name], b, axis=1).reshape(t.shape)
        with np.errstate(invalid="ignore", divide="ignore"):
            delta = v2 - v1  # no counter resets in these series
            t1 = t0 + first * c.step
            t2 = t0 + hi * c.step
            to_start = t1 - (t - window)
            to_end = t - t2
            sampled = t2 - t1
            average = sampled / (n - 1)
            to_zero = sampled * (v1 / delta)
            zero_point = (delta > 0) & (v1 >= 0)
            threshold = average * 1.1
            if ENGINE.closed:  # 2.x: the zero point shortens the distance before the 1.1x test
                to_start = np.where(zero_point & (to_zero < to_start), to_zero, to_start)
                to_start = np.where(to_start < threshold, to_start, average / 2)
            else:  # 3.x: after it
                to_start = np.where(to_start < threshold, to_start, average / 2)
                to_start = np.where(zero_point & (to_zero < to_start), to_zero, to_start)
            span = sampled + to_start + np.where(to_end < threshold, to_end, average / 2)
            value = delta * (span / sampled)
            if is_rate:
                value = value / window
        total += np.where(ok, value, 0.0)
        present |= ok
    return total, present
