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
- sums over the evidence window ``(t - L, t]`` of the step points;
- per hash, at its steps: running sums of the statistic's step increments (``judge.increments``:
  absolute, and judged under the hypotheses stable's window sums at ``t`` move), each the last
  running sum in the window before ``t`` plus the increment; the judged one also as a restart
  point where ``t % restart_every < I`` (``t`` the evaluation's time: promtool's start at 0);
  cusum = the last judged sum minus the lowest restart point in the window (if below 0), and
  recent = the last absolute sum minus the last one in the window ``recent`` seconds before;
- then ``judge.evidence`` with them.

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
    kept: np.ndarray = ~late
    return kept


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


def _position(ev: Evaluations, t: np.ndarray) -> np.ndarray:
    """Where time ``t`` falls on the (regular) evaluations, in evaluations from the first;
    snapped to a whole evaluation within rounding error (Prometheus' times are whole
    milliseconds: an edge that is an evaluation time is exactly one there)."""
    step = ev.t[:, 1:2] - ev.t[:, :1] if ev.t.shape[1] > 1 else np.ones((ev.t.shape[0], 1))
    pos = (t - ev.t[:, :1]) / step
    whole = np.round(pos)
    return np.asarray(np.where(np.abs(pos - whole) < 1e-6, whole, pos))


def _first_inside(ev: Evaluations, edge: np.ndarray, closed: bool) -> np.ndarray:
    """Index of the first evaluation inside a range whose left edge is ``edge``: at or after it
    with ``closed`` ranges (2.x), after it with left-open ones (3.x)."""
    pos = _position(ev, edge)
    first = np.ceil(pos) if closed else np.floor(pos) + 1
    return np.asarray(first.astype(np.int64))


def _last_at(ev: Evaluations, t: np.ndarray) -> np.ndarray:
    """Index of the last evaluation at or before ``t`` (may be negative or past the end)."""
    return np.asarray(np.floor(_position(ev, t)).astype(np.int64))


def window_sums(s: Steps, ev: Evaluations, window: float, closed: bool = False) -> Sums:
    """``sum_over_time(step[L])`` and ``count_over_time``: the step points of evaluations in
    ``(t - L, t]`` (evaluations are regular, so the first inside is found by time)."""
    def prefix(a: np.ndarray) -> np.ndarray:
        return np.concatenate([np.zeros((a.shape[0], 1)), np.cumsum(a, axis=1)], axis=1)

    k = np.arange(ev.t.shape[1])[None, :]
    first = np.clip(_first_inside(ev, ev.t - window, closed), 0, None)
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


def abort_scale(steps: np.ndarray, h: float) -> np.ndarray:
    """``judge.abort_scale`` elementwise."""
    d = np.maximum(steps - 1 + judge.NU, judge.NU)
    return np.asarray(d * np.expm1(2 * h / d) / (2 * h))


def llr(errors: np.ndarray, requests: np.ndarray, good: np.ndarray | float,
        bad: np.ndarray | float) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(errors * np.log(np.divide(bad, good)) + (requests - errors) * np.log(
            np.divide(np.subtract(1, bad), np.subtract(1, good))))


def _stable(others: Sums) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(has stable, stable's requests, errors, dispersion), zero where stable had no traffic."""
    has_stable = others.present & (others.requests > 0)
    sn = np.where(has_stable, others.requests, 0.0)
    sx = np.where(has_stable, others.errors, 0.0)
    phi_s = dispersion(sn, sx, np.where(has_stable, others.squares, 0.0),
                       np.where(has_stable, others.steps, 0.0))
    return has_stable, sn, sx, phi_s


def moved(gate: judge.Gate, others: Sums, h: judge.Hypotheses | None = None
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``judge.moved`` elementwise for a gate with ``baseline: compare``: (has a baseline,
    good, bad), the hypotheses (the SLO's own, or ``h``) moved by stable's ratio
    (``stable_ratio``) over its sums."""
    h = h or gate.hypotheses
    has_stable, sn, sx, phi_s = _stable(others)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = (sx + 1 + judge.Z * np.sqrt(phi_s * (sx + 1))) / np.where(has_stable, sn, 1)
    bad_cap = max(h.bad, judge.BAD_CAP)
    good_cap = max(h.good, judge.GOOD_CAP_SHARE * bad_cap)
    good = np.minimum(np.maximum(ratio, h.good), good_cap)
    bad = np.minimum(np.maximum(gate.margin * ratio, h.bad), bad_cap)
    return has_stable, good, bad


def step_increments(gate: judge.Gate, steps: Steps, others: Sums) -> tuple[np.ndarray, np.ndarray]:
    """``judge.increments`` elementwise: (absolute, judged) at every step of ``steps``, the
    judged one under the hypotheses stable's sums ``others`` (at that evaluation) move; 0 where
    there is no step or (judged) no baseline."""
    per_error, per_success = judge.coefficients(gate.hypotheses)
    n = np.where(steps.present, steps.requests, 0.0)
    x = np.where(steps.present, steps.errors, 0.0)
    absolute = x * per_error + (n - x) * per_success
    if not gate.compare:
        return absolute, absolute
    has_stable, good, bad = moved(gate, others)
    judged = np.where(has_stable, llr(x, n, good, bad), 0.0)
    return absolute, np.where(steps.present, judged, 0.0)


@dataclass
class Running:
    """The running sums (``slo:canary_llr:running``, ``slo:canary_judged_llr:running``), the
    restart points (``slo:canary_judged_llr:restart``) and the change-point statistics before
    dividing by the dispersion, at every evaluation: (runs, K), recorded where ``present``
    (the running sums at the hash's steps; ``restart`` where ``restarted``; ``cusum`` and
    ``recent`` where the last running sum is within the window)."""

    canary: np.ndarray
    judged: np.ndarray
    present: np.ndarray
    restart: np.ndarray
    restarted: np.ndarray
    cusum: np.ndarray
    recent: np.ndarray
    measured: np.ndarray


def _window_min(values: np.ndarray, first: np.ndarray) -> np.ndarray:
    """Per row and column k, the minimum of ``values[first[k] .. k]`` (+inf where empty): a
    sparse table of minima over power-of-two spans, two looks per column."""
    runs, k = values.shape
    cols = np.arange(k)[None, :] + 0 * first
    lo = np.clip(first, 0, None)
    length = cols - lo + 1
    table = [values]
    while 2 ** len(table) <= k:
        span = 2 ** (len(table) - 1)
        prev = table[-1]
        shifted = np.concatenate([np.full((runs, span), np.inf), prev[:, :-span]], axis=1)
        table.append(np.minimum(prev, shifted))  # min of values[k - 2 span + 1 .. k]
    out = np.full(values.shape, np.inf)
    level = np.floor(np.log2(np.maximum(length, 1))).astype(np.int64)
    for lv, mins in enumerate(table):
        at = (level == lv) & (length > 0)
        if not at.any():
            continue
        left = lo + 2 ** lv - 1  # the span ending there covers lo .. lo + 2^lv - 1
        both = np.minimum(mins, _take(mins, left))
        out = np.where(at, both, out)
    return out


def running(gate: judge.Gate, steps: Steps, others: Sums, ev: Evaluations, window: float,
            recent: float, restart_every: float, step: float,
            closed: bool = False) -> Running:
    """The running-sum rules of one hash (``Recording._running``, ``_change_points``), ``steps``
    its step points and ``others`` the window sums of the other hashes' steps in them.

    At a step, each running sum is the last one in the window before this evaluation (its own
    sample is not written yet) plus the step's increment, or the increment alone. A restart
    point is the judged sum where ``time() % restart_every < step`` (the evaluation's time:
    ``ev.t``; promtool's evaluations start at 0). Then, after them at the same evaluation: cusum
    = the last judged sum in the window minus the lowest restart point in it where that is
    below 0; recent = the last absolute sum in the window minus the last one in the window
    ``recent`` seconds before (``offset``), or 0."""
    inc_canary, inc_judged = step_increments(gate, steps, others)
    present = steps.present
    k = ev.t.shape[1]
    cols = np.arange(k)[None, :] + 0 * ev.t.astype(np.int64)
    first = _first_inside(ev, ev.t - window, closed)  # of the window ending at each evaluation
    prev = _last_true(present, cols - 1)
    chained = (prev >= 0) & (prev >= first)
    canary = np.zeros(ev.t.shape)
    judged = np.zeros(ev.t.shape)
    rows = np.arange(ev.t.shape[0])
    for i in range(k):  # in order: each sum adds to the one before, as PromQL does
        j, on = prev[:, i], chained[:, i]
        base_c = np.where(on, canary[rows, np.clip(j, 0, None)], 0.0)
        base_j = np.where(on, judged[rows, np.clip(j, 0, None)], 0.0)
        canary[:, i] = np.where(present[:, i], inc_canary[:, i] + base_c, 0.0)
        judged[:, i] = np.where(present[:, i], inc_judged[:, i] + base_j, 0.0)
    with np.errstate(invalid="ignore"):
        restarted = present & (np.fmod(ev.t, restart_every) < step)
    restart = np.where(restarted, judged, 0.0)
    last = _last_true(present, cols)
    measured = (last >= 0) & (last >= first)
    lowest = _window_min(np.where(restarted, restart, np.inf), first)
    cusum = _take(judged, last) - np.minimum(lowest, 0.0)
    at = _last_at(ev, ev.t - recent)
    before = _last_true(present, np.minimum(at, k - 1))
    earlier = (at >= 0) & (before >= 0) & (before >= _first_inside(ev, ev.t - recent - window,
                                                                    closed))
    recent_gain = _take(canary, last) - np.where(earlier, _take(canary, before), 0.0)
    return Running(canary, judged, present, restart, restarted,
                   np.where(measured, cusum, np.nan), np.where(measured, recent_gain, np.nan),
                   measured)


def evidence(gate: judge.Gate, canary: Sums, others: Sums, cusum: np.ndarray | None = None,
             recent: np.ndarray | None = None) -> tuple[np.ndarray, list[np.ndarray]]:
    """``judge.evidence`` elementwise: (present, the EVIDENCE arrays, NaN where absent);
    ``cusum`` and ``recent`` before dividing by the dispersion, or (None) the cumulative
    statistics under the SLO's own hypotheses (moved by stable) and the absolute one."""
    h = gate.hypotheses
    present = canary.present & (canary.requests > 0)
    n, x = canary.requests, canary.errors
    phi = dispersion(n, x, canary.squares, canary.steps)
    per_error, per_success = judge.coefficients(h)
    absolute = (x * per_error + (n - x) * per_success) / phi
    has_stable, sn, sx, phi_s = _stable(others)

    def against(hypotheses: judge.Hypotheses) -> np.ndarray:
        """The cumulative statistic under ``hypotheses``, moved by stable with a baseline."""
        if not gate.compare:
            return np.asarray(llr(x, n, hypotheses.good, hypotheses.bad) / phi)
        _, good, bad = moved(gate, others, hypotheses)
        return np.where(has_stable, llr(x, n, good, bad) / phi, np.nan)

    judged = against(gate.coarse)
    own = (sx * per_error + (sn - sx) * per_success) / phi_s
    scale = abort_scale(canary.steps, gate.cusum_abort)
    vector = [judged, absolute, x, n, sx, sn, own, phi, canary.steps,
              (against(h) if cusum is None else cusum / phi) / scale,
              absolute if recent is None else recent / phi]
    assert len(vector) == len(judge.EVIDENCE)
    return present, [np.where(present, v, np.nan) for v in vector]
