"""Synthetic traffic of one pod, as Prometheus scrapes it (bench/canary_judgement.py).

A pod (one series set: 2xx and 5xx request counters, a histogram's ``_count`` and its bucket at
the latency threshold) serves requests at a constant rate. Per scrape interval:

- requests: Poisson;
- 5xx and slow requests, each stream independently: binomial at the cell's ratio; or
  beta-binomial (the interval's ratio drawn from a beta with that mean and intra-class
  correlation ``icc``); or in bursts (one failing dependency call fails several requests at
  once): an interval's requests, in the order the pod serves them, alternate between runs of
  good and runs of bad ones, both of geometric length, the bad runs (bursts) of the given mean
  and the good ones of ``mean (1 - ratio) / ratio``, the chain started in its stationary state
  in every interval, so that the ratio is the cell's at any traffic. A burst happens at once:
  it stays within its scrape interval (where an interval holds fewer requests than a burst,
  the burst is cut short and bursts are more frequent, the ratio unchanged). Failures that last
  several intervals are not bursts but an outage of the canary, which the judge is meant to
  abort on (``bench/README.md`` says what they do to a healthy canary at low traffic);
- a cold start: ``cold_start`` extra failing (5xx) requests at uniform times in the pod's first
  minute.

Restarts. At each crash time the container dies: requests it served since the last scrape were
never scraped and are lost; it is down for ``downtime`` seconds (a scrape then fails: a
staleness marker for every series), and starts again with every counter at 0. A lazily created
5xx series (``lazy_errors``) exists only from the process's first 5xx on; pre-created, it is
exported at 0 from the start. The 2xx series and the histogram appear with their first request.

Prometheus outages: no scrape is attempted (and no marker written) in ``[start, end)``.

A late regression (``Late``): from a time per run on (the moment the simulated rollout set a
weight), each request fails, and is slow, with an extra probability on top of the cell's
draws. An interval that straddles that time puts a binomial share of its requests (the share
of its served time after it) under the extra probability. The extra draws come from their own
generator, so that the traffic before that time is the same draw for draw as without them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bench.recording import Scraped

OK, ERR, COUNT, FAST = "ok", "err", "count", "fast"
SERIES = (OK, ERR, COUNT, FAST)


@dataclass(frozen=True)
class Variation:
    """How a stream's bad requests vary beyond independent requests."""

    icc: float = 0.0  # beta-binomial intra-class correlation per scrape interval
    burst: float = 1.0  # mean burst size (1: independent requests)


INDEPENDENT = Variation()


@dataclass(frozen=True)
class Late:
    """A regression that starts late: from ``start`` (runs,) on (inf: never) a request is a
    5xx with an extra probability ``e`` and slow with an extra ``s``, drawn from ``rng``. The
    extra errors are added to the cell's own (not their union), so that the ratio from then on
    is the cell's plus ``e`` exactly in expectation."""

    start: np.ndarray
    e: float
    s: float
    rng: np.random.Generator


def _late(late: Late, n: np.ndarray, x: np.ndarray, slow: np.ndarray, times: np.ndarray,
          opened: np.ndarray, served: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``x`` and ``slow`` with the late regression's extra bad requests added: an interval's
    requests served after ``late.start`` (a binomial share, by time) fail at the extra ratio."""
    with np.errstate(invalid="ignore"):
        after = np.clip(times - np.maximum(late.start[:, None], opened), 0.0, None)
    share = np.where(served > 0, np.minimum(after, served) / np.where(served > 0, served, 1.0),
                     0.0)
    n_after = late.rng.binomial(n.astype(np.int64), share)
    x = np.minimum(x + late.rng.binomial(n_after, late.e), n)
    slow = np.minimum(slow + late.rng.binomial(n_after, late.s), n)
    return x, slow


def _bursts(rng: np.random.Generator, n: np.ndarray, ratio: float, mean: float) -> np.ndarray:
    """Bad requests per interval when they come in bursts (module docstring): each interval's
    requests, in order, a two-state chain started in its stationary state, its bad runs
    (bursts) of geometric length ``mean`` and its good runs of ``mean (1 - ratio) / ratio``."""
    good_mean = mean * (1 - ratio) / ratio
    bad = np.zeros(n.shape)
    left = n.copy()
    in_burst = rng.random(n.shape) < ratio
    while (left > 0).any():
        length = rng.geometric(1 / np.where(in_burst, mean, max(good_mean, 1.0)))
        take = np.minimum(length, left)
        bad += np.where(in_burst, take, 0.0)
        left -= take
        in_burst = ~in_burst
    return bad


def _bad(rng: np.random.Generator, n: np.ndarray, ratio: float, v: Variation) -> np.ndarray:
    n_int = n.astype(np.int64)
    if ratio <= 0:
        return np.zeros(n.shape)
    if ratio >= 1:
        return n.astype(np.float64)
    if v.burst > 1:
        capped: np.ndarray = np.minimum(_bursts(rng, n, ratio, v.burst), n)
        return capped
    if v.icc > 0:
        a = ratio * (1 - v.icc) / v.icc
        b = (1 - ratio) * (1 - v.icc) / v.icc
        return rng.binomial(n_int, rng.beta(a, b, n.shape)).astype(np.float64)
    return rng.binomial(n_int, ratio).astype(np.float64)


def pod(
    rng: np.random.Generator,
    t0: np.ndarray,
    step: float,
    attempts: int,
    start: np.ndarray,
    per_second: float,
    e: float,
    s: float,
    *,
    variation: Variation = INDEPENDENT,
    crashes: np.ndarray | None = None,
    downtime: np.ndarray | None = None,
    lazy_errors: bool = True,
    cold_start: int = 0,
    outage: np.ndarray | None = None,
    history: tuple[float, float, float] | None = None,
    late: Late | None = None,
) -> Scraped:
    """The pod's scraped series. ``t0``: its first scrape attempt (runs,), after its ``start``;
    ``crashes`` (runs, C) crash times (NaN: none) with ``downtime`` (runs, C); ``outage``
    (runs, 2) Prometheus down [start, end) (NaN: none); ``history``: (requests, 5xx, slow)
    already in the counters at the start (old pods); ``late``: a regression from a time per run
    on."""
    times = t0[:, None] + step * np.arange(attempts)[None, :]
    previous = np.concatenate([start[:, None], times[:, :-1]], axis=1)
    up, since = _uptime(times, start, crashes, downtime)
    served = np.where(up, times - np.maximum(previous, since), 0.0)
    served = np.maximum(served, 0.0)
    reset = since > previous
    reset[:, 0] = history is None

    n = rng.poisson(per_second * served).astype(np.float64)
    x = _bad(rng, n, e, variation)
    slow = _bad(rng, n, s, variation)
    if late is not None:
        x, slow = _late(late, n, x, slow, times, np.maximum(previous, since), served)
    if cold_start:
        n, x = _cold_start(rng, cold_start, n, x, start, times, previous, up, since)
    cn, cx, cs = _counters(n, x, slow, reset, history)
    attempted = np.ones(times.shape, dtype=bool)
    if outage is not None:
        attempted = ~((times >= outage[:, :1]) & (times < outage[:, 1:2]))
    sampled = attempted & up
    ok = cn - cx

    def series(v: np.ndarray, exists: np.ndarray) -> np.ndarray:
        return np.where(sampled & exists, v, np.nan)

    return Scraped(t0=t0, step=step, attempted=attempted, values={
        OK: series(ok, ok >= 1),
        ERR: series(cx, cx >= 1 if lazy_errors else np.ones(cx.shape, dtype=bool)),
        COUNT: series(cn, cn >= 1),
        FAST: series(cn - cs, cn >= 1),
    })


def _uptime(times: np.ndarray, start: np.ndarray, crashes: np.ndarray | None,
            downtime: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Whether the container is up at each scrape attempt, and when its current process
    started: each crash takes it down for its downtime, then starts it again."""
    since = np.broadcast_to(start[:, None], times.shape).copy()  # the current process's start
    up = np.ones(times.shape, dtype=bool)
    if crashes is not None:
        assert downtime is not None
        for c in range(crashes.shape[1]):
            crash = crashes[:, c:c + 1]
            back = crash + downtime[:, c:c + 1]
            there = ~np.isnan(crash)
            up &= ~(there & (times > crash) & (times < back))
            since = np.where(there & (back <= times), np.maximum(since, back), since)
    return up, since


def _cold_start(rng: np.random.Generator, cold_start: int, n: np.ndarray, x: np.ndarray,
                start: np.ndarray, times: np.ndarray, previous: np.ndarray, up: np.ndarray,
                since: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``n`` and ``x`` with ``cold_start`` extra failing requests at uniform times in the pod's
    first minute, each in the interval it falls in, unless that interval's scrape finds the
    container down or the process that served it has crashed since."""
    at = start[:, None] + rng.uniform(0, 60, (len(start), cold_start))
    for i in range(cold_start):
        hit = (times >= at[:, i:i + 1]) & (previous < at[:, i:i + 1]) & up & (
            since <= at[:, i:i + 1])
        n += hit
        x += hit
    return n, x


def _counters(n: np.ndarray, x: np.ndarray, slow: np.ndarray, reset: np.ndarray,
              history: tuple[float, float, float] | None
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The requests, 5xx and slow counters at each scrape: each interval's counts summed from
    the last reset on, the first process's on top of ``history``."""

    def cumulative(a: np.ndarray) -> np.ndarray:
        total = np.cumsum(a, axis=1)
        base = np.where(reset, total - a, 0.0)
        return total - np.maximum.accumulate(base, axis=1)

    cn, cx, cs = cumulative(n), cumulative(x), cumulative(slow)
    if history is not None:
        first_process = ~np.logical_or.accumulate(reset, axis=1)
        cn = cn + np.where(first_process, history[0], 0.0)
        cx = cx + np.where(first_process, history[1], 0.0)
        cs = cs + np.where(first_process, history[2], 0.0)
    return cn, cx, cs
