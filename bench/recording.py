"""The canary judge's recording rules (delivery/evidence.py), simulated on many runs at once.

What Prometheus stores. Each pod's series are scraped every scrape interval ``I`` at a phase of
their own: attempt ``j`` at ``t0 + j * I``. An attempt that happened (Prometheus up) either
succeeded, storing a sample of every series the process exposes, or failed (the container was
down), storing a staleness marker for every series; a series the process does not expose at a
successful attempt (an error series a client library creates lazily, absent after a restart
until the next error) also gets a marker. While Prometheus itself is down nothing is attempted
and nothing is marked. ``Scraped.values`` is NaN where a series has no sample at an attempt, and
``Scraped.attempted`` says which attempts happened.

What the rule group does at each evaluation ``t`` (multiples of ``I`` at a phase of their own,
none while Prometheus is down), exactly as the rendered expressions do it:

- per series, read ``settle`` (S) before ``t``: ``now``: the latest attempt at or before ``t - S``
  if it stored a sample of the series within the lookback (5 m) -- a marker or nothing hides it;
  ``before``: the last sample in ``(t - S - I - MEMORY, t - S - I]`` (ranges skip markers);
  the step is ``now - before`` where that is >= 0, else ``now`` (reset, new or returning
  series); nothing without ``now``. With a warm-up, a series counts only where its pod's
  total-selector series had at least ``warm-up / I`` samples in ``(t - warm-up, t]`` and no
  reset between two samples inside it.
- a step is recorded only where the group ran at most ``MEMORY`` before it and before the two
  evaluations before it (its heartbeat; the first three evaluations after a longer Prometheus
  outage record none);
- per hash: requests = sum of the total series' steps, recorded where > 0; errors = the bad
  series' steps (0 where none has a step), or requests - the good series' steps; squares =
  errors^2 / requests; the others' (stable's) steps where this hash had traffic.
- sums over the evidence window ``(t - L, t]`` of the step points; then ``judge.evidence``.

Times are seconds from the rollout's start; arrays are (runs, ...). ``closed`` ranges
(``[t - w, t]``) copy Prometheus 2.x, left-open ones 3.x.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from delivery import judge

LOOKBACK = 300.0  # Prometheus' instant-vector lookback delta


@dataclass
class Scraped:
    """One pod's series as stored: attempt ``j`` at ``t0 + j * step``."""

    t0: np.ndarray  # (runs,)
    step: float
    attempted: np.ndarray  # (runs, J) bool
    values: dict[str, np.ndarray]  # name -> (runs, J), NaN where no sample

    @property
    def attempts(self) -> int:
        return int(self.attempted.shape[1])

    def times(self) -> np.ndarray:
        return np.asarray(self.t0[:, None] + self.step * np.arange(self.attempts)[None, :])


@dataclass
class Evaluations:
    t: np.ndarray  # (runs, K) seconds
    done: np.ndarray  # (runs, K) bool: Prometheus was up and evaluated the group
    ran_before: bool = True  # the group also ran one interval before the first evaluation


def gaps(ev: Evaluations) -> np.ndarray:
    """``slo:canary_evidence_gap:seconds`` at every evaluation (meaningful where ``done``): the
    time since the group last ran; +inf before its first run."""
    k = ev.t.shape[1]
    prev = _last_true(ev.done, np.arange(k)[None, :] - 1 + 0 * ev.t.astype(np.int64))
    interval = ev.t[:, 1:2] - ev.t[:, :1] if k > 1 else np.full((ev.t.shape[0], 1), np.inf)
    t_prev = np.where(prev >= 0, _take(ev.t, prev),
                      ev.t[:, :1] - interval if ev.ran_before else -np.inf)
    return np.asarray(ev.t - t_prev)


def continuous(ev: Evaluations, memory: float) -> np.ndarray:
    """The step rules' guard on ``slo:canary_evidence_gap:seconds``: where the group ran at most
    ``memory`` before this evaluation and before each of the two evaluations before it (the
    heartbeat's last sample is in the gap rule's range, which is at least ``memory``)."""
    gap = gaps(ev)
    first = np.isinf(gap)  # no heartbeat yet: no gap recorded, this step alone dropped
    wide = ev.done & ~first & (gap > memory)  # recorded gaps over the memory
    late = wide | first
    late[:, 1:] |= wide[:, :-1]
    late[:, 2:] |= wide[:, :-2]
    return ~late


def _take(a: np.ndarray, idx: np.ndarray) -> np.ndarray:
    return np.take_along_axis(a, np.clip(idx, 0, a.shape[1] - 1), axis=1)


def _last_true(mask: np.ndarray, upto: np.ndarray) -> np.ndarray:
    """Per row, the largest index ``i <= upto`` with ``mask[i]``, or -1."""
    idx = np.where(mask, np.arange(mask.shape[1])[None, :], -1)
    best = np.maximum.accumulate(idx, axis=1)
    return np.where(upto >= 0, _take(best, upto), -1)


def _index_at(s: Scraped, t: np.ndarray) -> np.ndarray:
    """Index of the latest attempt time <= t (may be past the end or negative)."""
    j = np.floor((t - s.t0[:, None]) / s.step).astype(np.int64)
    return np.asarray(np.minimum(j, s.attempts - 1))


def _after(time: np.ndarray, edge: np.ndarray, closed: bool) -> np.ndarray:
    return time >= edge if closed else time > edge


def increments(s: Scraped, name: str, ev: Evaluations, memory: float,
               closed: bool = False, settle: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """One series' step at every evaluation: (value, present); both samples read ``settle``
    seconds before the evaluation (the rule's ``offset``)."""
    v = s.values[name]
    has = ~np.isnan(v)
    at = ev.t - settle
    jn = _last_true(s.attempted, _index_at(s, at))
    tn = s.t0[:, None] + jn * s.step
    now = _take(v, jn)
    now_ok = (jn >= 0) & _take(has, jn) & _after(tn, at - LOOKBACK, closed)
    jb = _last_true(has, _index_at(s, at - s.step))
    tb = s.t0[:, None] + jb * s.step
    before_ok = (jb >= 0) & _after(tb, at - s.step - memory, closed)
    before = _take(v, jb)
    with np.errstate(invalid="ignore"):
        d = now - before
        step = np.where(before_ok & (d >= 0), d, now)
    present = now_ok & ev.done
    return np.where(present, step, 0.0), present


def warm(s: Scraped, total: Sequence[str], ev: Evaluations, warm_up: float,
         closed: bool = False) -> np.ndarray:
    """The warm-up filter of the pod: ``count_over_time(total[w]) >= w / I`` for some total
    series and ``resets(total[w]) == 0`` for all of them, at every evaluation."""
    need = max(1, int(warm_up // s.step))
    hi = _index_at(s, ev.t)
    count = np.zeros(ev.t.shape, dtype=np.int64)
    reset = np.zeros(ev.t.shape, dtype=bool)
    times = s.times()
    for name in total:
        v = s.values[name]
        has = ~np.isnan(v)
        prev = _last_true(has, np.arange(s.attempts)[None, :] - 1 + 0 * s.attempted)
        with np.errstate(invalid="ignore"):
            drops = has & (prev >= 0) & (v < _take(v, prev))
        prev_time = s.t0[:, None] + prev * s.step
        mine = np.zeros(ev.t.shape, dtype=np.int64)
        for back in range(math.ceil(warm_up / s.step) + 1):
            i = hi - back
            ok = (i >= 0) & _after(_take(times, i), ev.t - warm_up, closed)
            there = ok & _take(has, i)
            mine += there
            reset |= there & _take(drops, i) & _after(_take(prev_time, i), ev.t - warm_up,
                                                      closed)
        count = np.maximum(count, mine)
    return (count >= need) & ~reset


@dataclass
class Selection:
    """The synthetic series an SLO's step expressions select (bench/canary_judgement.py)."""

    total: tuple[str, ...]
    bad: tuple[str, ...] | None
    good: tuple[str, ...] | None


@dataclass
class Steps:
    """One hash's step points: (runs, K), recorded where ``present``."""

    requests: np.ndarray
    errors: np.ndarray
    squares: np.ndarray
    present: np.ndarray


def _sum_steps(pods: Sequence[Scraped], names: Sequence[str], ev: Evaluations, memory: float,
               keeps: Sequence[np.ndarray | None], closed: bool,
               settle: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    total = np.zeros(ev.t.shape)
    present = np.zeros(ev.t.shape, dtype=bool)
    for pod, keep in zip(pods, keeps, strict=True):
        for name in names:
            v, ok = increments(pod, name, ev, memory, closed, settle)
            if keep is not None:
                ok = ok & keep
            total += np.where(ok, v, 0.0)
            present |= ok
    return total, present


def hash_steps(pods: Sequence[Scraped], sel: Selection, ev: Evaluations, memory: float,
               warm_up: float | None = None, closed: bool = False, settle: float = 0.0) -> Steps:
    """``slo:canary_requests:step`` and friends of one hash whose series are ``pods``."""
    keeps = [warm(p, sel.total, ev, warm_up, closed) if warm_up else None for p in pods]
    n, n_ok = _sum_steps(pods, sel.total, ev, memory, keeps, closed, settle)
    if sel.bad is not None:
        x, x_ok = _sum_steps(pods, sel.bad, ev, memory, keeps, closed, settle)
        x = np.where(x_ok, x, 0.0)
    else:
        assert sel.good is not None
        g, g_ok = _sum_steps(pods, sel.good, ev, memory, keeps, closed, settle)
        x = n - np.where(g_ok, g, 0.0)
    recorded = n_ok & (n > 0) & continuous(ev, memory)
    with np.errstate(invalid="ignore", divide="ignore"):
        squares = np.where(recorded, x * x / np.where(recorded, n, 1.0), 0.0)
    return Steps(np.where(recorded, n, 0.0), np.where(recorded, x, 0.0), squares, recorded)


def others_steps(own: Steps, rest: Sequence[Steps]) -> Steps:
    """``slo:canary_others_*:step`` of ``own``: all hashes' steps but its own, in its steps."""
    n = sum((r.requests for r in rest), np.zeros(own.requests.shape))
    x = sum((r.errors for r in rest), np.zeros(own.requests.shape))
    q = sum((r.squares for r in rest), np.zeros(own.requests.shape))
    recorded = own.present & (n > 0)
    return Steps(np.where(recorded, n, 0.0), np.where(recorded, x, 0.0),
                 np.where(recorded, q, 0.0), recorded)


@dataclass
class Sums:
    """Sums over the evidence window at every evaluation; ``present`` where any step is."""

    requests: np.ndarray
    errors: np.ndarray
    squares: np.ndarray
    steps: np.ndarray
    present: np.ndarray


def window_sums(s: Steps, ev: Evaluations, window: float, closed: bool = False) -> Sums:
    """``sum_over_time(step[L])`` and ``count_over_time``: the step points of evaluations in
    ``(t - L, t]`` (evaluations are regular, so the first inside is found by time)."""
    def prefix(a: np.ndarray) -> np.ndarray:
        return np.concatenate([np.zeros((a.shape[0], 1)), np.cumsum(a, axis=1)], axis=1)

    k = np.arange(ev.t.shape[1])[None, :]
    step = ev.t[:, 1:2] - ev.t[:, :1] if ev.t.shape[1] > 1 else np.ones((ev.t.shape[0], 1))
    edge = (ev.t - window - ev.t[:, :1]) / step  # the window's left edge, in evaluations
    first = np.ceil(edge) if closed else np.floor(edge) + 1
    first = np.clip(np.round(first).astype(np.int64), 0, None)
    out = []
    for a in (s.requests, s.errors, s.squares, s.present.astype(np.float64)):
        p = prefix(np.where(s.present, a, 0.0))
        out.append(np.take_along_axis(p, k + 1 + 0 * first, axis=1)
                   - np.take_along_axis(p, first, axis=1))
    requests, errors, squares, steps = out
    return Sums(requests, errors, squares, steps, steps > 0)


# ---- judge.evidence, vectorised ---------------------------------------------------------------

def dispersion(requests: np.ndarray, errors: np.ndarray, squares: np.ndarray,
               steps: np.ndarray) -> np.ndarray:
    """``judge.dispersion`` elementwise."""
    usable = (requests > 0) & (errors > 0) & (errors < requests)
    with np.errstate(invalid="ignore", divide="ignore"):
        n = np.where(usable, requests, 1.0)
        q = np.where(usable, errors / n, 0.5)
        pearson = (squares - errors * errors / n) / (q * (1 - q))
        phi = np.maximum(1.0, (pearson + judge.NU) / (steps - 1 + judge.NU))
    return np.where(usable, phi, 1.0)


def llr(errors: np.ndarray, requests: np.ndarray, good: np.ndarray | float,
        bad: np.ndarray | float) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(errors * np.log(np.divide(bad, good)) + (requests - errors) * np.log(
            np.divide(np.subtract(1, bad), np.subtract(1, good))))


def evidence(gate: judge.Gate, canary: Sums, others: Sums) -> tuple[np.ndarray, list[np.ndarray]]:
    """``judge.evidence`` elementwise: (present, the EVIDENCE arrays, NaN where absent)."""
    h = gate.hypotheses
    present = canary.present & (canary.requests > 0)
    n, x = canary.requests, canary.errors
    phi = dispersion(n, x, canary.squares, canary.steps)
    per_error, per_success = judge.coefficients(h)
    absolute = (x * per_error + (n - x) * per_success) / phi
    has_stable = others.present & (others.requests > 0)
    sn = np.where(has_stable, others.requests, 0.0)
    sx = np.where(has_stable, others.errors, 0.0)
    phi_s = dispersion(sn, sx, np.where(has_stable, others.squares, 0.0),
                       np.where(has_stable, others.steps, 0.0))
    judged = absolute
    if gate.compare:
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = (sx + 1 + judge.Z * np.sqrt(phi_s * (sx + 1))) / np.where(has_stable, sn, 1)
        bad_cap = max(h.bad, judge.BAD_CAP)
        good_cap = max(h.good, judge.GOOD_CAP_SHARE * bad_cap)
        good = np.minimum(np.maximum(ratio, h.good), good_cap)
        bad = np.minimum(np.maximum(gate.margin * ratio, h.bad), bad_cap)
        judged = np.where(has_stable, llr(x, n, good, bad) / phi, np.nan)
    own = (sx * per_error + (sn - sx) * per_success) / phi_s
    vector = [judged, absolute, x, n, sx, sn, own, phi, canary.steps]
    assert len(vector) == len(judge.EVIDENCE)
    return present, [np.where(present, v, np.nan) for v in vector]
