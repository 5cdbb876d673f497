"""The printed targets: each a rule over the cells' results with its met/missed line."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np

from bench.canary.argo import ABORT, OUTCOME_NAMES, PAUSE, PROMOTE
from bench.canary.cells import (
    BAD_MULTIPLE,
    CAUGHT_PROMOTE,
    LATE_BEFORE,
    LATE_MULTIPLES,
    LATE_WEIGHTS,
    LONG_OUTAGE,
    MODERATE_LATENCY,
    MODERATE_PROMOTE,
    RATES,
    STACKS,
    WARM_UP,
    zone,
)
from bench.canary.modes import NEW_JUDGE, modes_for
from bench.canary.simulation import CellResult
from bench.canary.stacks import stack_gates, stack_slos
from bench.canary.stats import Summary, _minutes, _pct, clopper_pearson, needed_requests, summarise
from delivery import judge, oc
from delivery.plan import rate_needed
from delivery.stack import StackConfig, go_seconds


@dataclass
class TargetLine:
    name: str
    met: bool
    figure: str
    informative: bool = False  # what the bench shows without holding the judge to it

    def render(self) -> str:
        if self.informative:
            return f"info {self.name}: ({self.figure})"
        return f"target {self.name}: {'met' if self.met else 'missed'} ({self.figure})"


def evaluate_targets(results: list[CellResult], stacks: Sequence[str]) -> list[TargetLine]:
    """The plain and real-traffic cells' targets (when they were run), then issue 19's."""
    base = [r for r in results if not r.cell.family]
    family = [(r, summarise(r.outcomes[NEW_JUDGE], r.times[NEW_JUDGE])) for r in results
              if r.cell.family]
    lines = base_targets(base, stacks) if base else []
    return lines + (family_targets(family) if family else [])


def base_targets(results: list[CellResult], stacks: Sequence[str]) -> list[TargetLine]:
    """The plain cells' targets (one function each), then the real-traffic cells'."""
    every = [(r, summarise(r.outcomes[NEW_JUDGE], r.times[NEW_JUDGE])) for r in results]
    by = [(r, s) for r, s in every if not r.cell.condition]  # the plain cells
    stack_cfg = {s: stack_slos(s)[0] for s in stacks}
    bad = [(r, s) for r, s in by if zone(r.stack, r.service, r.cell) == "bad"]
    lines = [_good_target(by), _bad_target(bad), _fast_target(bad), _idle_target(by),
             _perfect_target(by), _shared_target(by)]
    return lines + real_traffic_targets(every, stack_cfg)


def _good_target(by: list[tuple[CellResult, Summary]]) -> TargetLine:
    good = [(r, s) for r, s in by if zone(r.stack, r.service, r.cell) == "good"]
    worst_p = max(good, key=lambda rs: rs[1].p(ABORT))
    worst_hi = max(good, key=lambda rs: rs[1].ci(ABORT)[1])
    met = all(s.p(ABORT) <= 0.001 and s.ci(ABORT)[1] <= 0.003 for _, s in good)
    return TargetLine(
        "good-canaries-rarely-aborted", met and bool(good),
        f"{len(good)} cells; highest P(abort) {_pct(worst_p[1].p(ABORT))}% at "
        f"{_where(worst_p[0])}; highest 95% upper bound {_pct(worst_hi[1].ci(ABORT)[1])}% at "
        f"{_where(worst_hi[0])}; need <= 0.10% and <= 0.30%")


def _bad_target(bad: list[tuple[CellResult, Summary]]) -> TargetLine:
    reach = [(r, s) for r, s in bad if reaches(r)]
    worst_promote = max(bad, key=lambda rs: rs[1].p(PROMOTE))
    worst_abort = min(reach, key=lambda rs: rs[1].p(ABORT)) if reach else None
    met = all(s.p(PROMOTE) <= 0.01 for _, s in bad) and all(
        s.p(ABORT) >= 0.99 for _, s in reach)
    return TargetLine(
        "bad-canaries-stopped", met and bool(bad),
        f"{len(bad)} cells; highest P(promote) {_pct(worst_promote[1].p(PROMOTE))}% at "
        f"{_where(worst_promote[0])} (need <= 1%); lowest P(abort) where the rollout gives the "
        f"test its requests ({len(reach)} cells) "
        + (f"{_pct(worst_abort[1].p(ABORT))}% at {_where(worst_abort[0])}" if worst_abort
           else "-") + " (need >= 99%)")


def _fast_target(bad: list[tuple[CellResult, Summary]]) -> TargetLine:
    fast = []
    for r, s in bad:
        limit = None
        if r.cell.m >= 50 and r.cell.rate >= 50:
            limit = 2.0
        if r.cell.m >= 10 and r.cell.rate >= 300:  # a bad cell may be 2x where a gate is tight
            limit = min(limit or math.inf, 3.0 if r.stack == "dev" else 5.0)
        if limit is not None:
            fast.append((r, s, limit))
    slowest = max(fast, key=lambda x: (math.inf if math.isnan(x[1].median_abort)
                                       else x[1].median_abort - x[2]))
    met = all(not math.isnan(s.median_abort) and s.median_abort <= lim for _, s, lim in fast)
    return TargetLine(
        "fast-aborts", met and bool(fast),
        f"{len(fast)} cells; closest to its limit: median {_minutes(slowest[1].median_abort)} "
        f"min at {_where(slowest[0])} (limit {slowest[2]:g} min); limits 3 min dev / 5 min prod "
        "at >= 10x and >= 300 req/min, 2 min at 50x and >= 50 req/min")


def _idle_target(by: list[tuple[CellResult, Summary]]) -> TargetLine:
    idle = [(r, s) for r, s in by if r.cell.kind == "idle"]
    promoted = sum(s.counts.get(PROMOTE, 0) for _, s in idle)
    return TargetLine(
        "idle-canary-never-promoted", promoted == 0 and bool(idle),
        f"{promoted} promotions in {sum(s.n for _, s in idle)} idle runs over {len(idle)} "
        f"rollouts; outcome: " + ", ".join(sorted({
            f"{OUTCOME_NAMES[k]} {_pct(s.p(k))}%" for _, s in idle for k in s.counts
            if s.counts[k]})))


def _perfect_target(by: list[tuple[CellResult, Summary]]) -> TargetLine:
    perfect = [(r, s) for r, s in by if r.cell.kind == "m" and r.cell.m == 0
               and r.cell.rate == perfect_rate(r.stack, r.service)]
    parts, met = [], bool(perfect)
    for r, s in perfect:
        mode = modes_for(r.stack, r.service)[0]
        gate = r.first_gate[NEW_JUDGE]
        passed = gate[~np.isnan(gate)] / 60
        p_gate = float(np.median(passed)) if len(passed) else math.nan
        parts.append(f"{r.stack}/{r.service} at {r.cell.rate:g}/min "
                     f"{_pct(s.p(PROMOTE))}% promoted, first gate passed "
                     f"at median {_minutes(p_gate)} min (its wait ends at "
                     f"{mode.gate_deadline() / 60:.1f} min), promoted at median "
                     f"{_minutes(s.median_promote)} min")
        met &= s.p(PROMOTE) >= 0.99
    return TargetLine("perfect-canary-promoted", met,
                      "; ".join(parts) + "; need >= 99% promoted at 20 req/min, or at "
                      "the lowest rate at which the plan says a clean canary can pass the "
                      "first gate where that is higher")


def _shared_target(by: list[tuple[CellResult, Summary]]) -> TargetLine:
    shared = [(r, s) for r, s in by if r.cell.kind == "shared"]
    worst = min(shared, key=lambda rs: rs[1].p(PAUSE))
    met = all(s.p(PAUSE) >= 0.99 for _, s in shared)
    return TargetLine(
        "shared-incident-pauses", met and bool(shared),
        f"{len(shared)} cells; lowest P(pause) {_pct(worst[1].p(PAUSE))}% "
        f"(abort {_pct(worst[1].p(ABORT))}%) at {_where(worst[0])}; need >= 99%")


@cache
def perfect_rate(stack_name: str, service: str) -> float:
    """The bench rate a perfect canary is held to promotion at: 20 requests a minute, or where
    a gate's hypotheses are set for a busier service (failBurnRate auto) the lowest rate at
    which the plan says a clean canary can pass the first gate (its "below N canary requests
    a minute it cannot pass")."""
    stack = stack_slos(stack_name)[0]
    first_gate = judge.first_gate_seconds(stack.delivery, stack.prometheus.scrape_interval)
    need = max(rate_needed(g, first_gate) for g in stack_gates(stack_name, service)
               if g.enforcement == "enforce")
    return min((r for r in RATES if r >= need), default=RATES[-1])


def _share(x: int, n: int) -> str:
    low, high = clopper_pearson(x, n)
    return f"{_pct(x / n)}% [{_pct(low)}-{_pct(high)}] ({x}/{n})"


def _rarely(name: str, chosen: list[tuple[CellResult, Summary]], what: str) -> TargetLine:
    """At most 0.1% aborted, 95% upper bound at most 0.3%, in every chosen cell."""
    if not chosen:
        return TargetLine(name, False, "no cells")
    worst = max(chosen, key=lambda rs: (rs[1].ci(ABORT)[1], rs[1].p(ABORT)))
    met = all(s.p(ABORT) <= 0.001 and s.ci(ABORT)[1] <= 0.003 for _, s in chosen)
    failing = sum(1 for _, s in chosen if not (s.p(ABORT) <= 0.001 and s.ci(ABORT)[1] <= 0.003))
    return TargetLine(name, met, f"{len(chosen)} cells ({what}); worst P(abort) "
                      f"{_share(worst[1].counts.get(ABORT, 0), worst[1].n)} at "
                      f"{_where(worst[0])}; {failing} cells over; need <= 0.10% and 95% upper "
                      "bound <= 0.30% in every cell")


ABORT_WITHIN = 300.0  # seconds from the rollout's start


def real_traffic_targets(every: list[tuple[CellResult, Summary]],
                         stack_cfg: dict[str, StackConfig]) -> list[TargetLine]:
    """Issue 24's targets over the real-traffic cells (and, for the 5-minute aborts, the plain
    ones too)."""
    real = [(r, s) for r, s in every if r.cell.condition]
    return [*_healthy_real_targets(real), _bad_real_target(real), _five_minutes_target(every),
            _shared_any_share_target(every), _outage_target(real),
            long_outage_target(real, stack_cfg)]


def _healthy_real_targets(real: list[tuple[CellResult, Summary]]) -> list[TargetLine]:
    healthy = [(r, s) for r, s in real if zone(r.stack, r.service, r.cell) == "good"]
    # Without a warm-up, start-up errors are evidence like any others, and they come all at
    # once: in its first minutes the canary fails many times its budget. Whether they should
    # count is the service's warmUp, so these cells are shown, not held to a target.
    cold_bare = [(r, s) for r, s in healthy if r.cell.cold and not r.cell.warm_up]
    lines = [_rarely("real-traffic-healthy-rarely-aborted",
                     [rs for rs in healthy if rs not in cold_bare],
                     "restarts, bursts, beta-binomial, cold starts with warmUp "
                     f"{WARM_UP}, Prometheus outages; 0.5x and 1x budget")]
    if cold_bare:
        worst = max(cold_bare, key=lambda rs: rs[1].p(ABORT))
        least = min(cold_bare, key=lambda rs: rs[1].p(ABORT))
        lines.append(TargetLine(
            "cold-starts-without-warm-up", True,
            f"{len(cold_bare)} cells of 1-20 failing requests per canary pod in its first "
            "minute, no warmUp: judged as the errors they are, no target; P(abort) from "
            f"{_share(least[1].counts.get(ABORT, 0), least[1].n)} at {_where(least[0])} to "
            f"{_share(worst[1].counts.get(ABORT, 0), worst[1].n)} at {_where(worst[0])}; "
            f"with warmUp {WARM_UP} they are in the target above", informative=True))
    return lines


def _bad_real_target(real: list[tuple[CellResult, Summary]]) -> TargetLine:
    bad = [(r, s) for r, s in real if zone(r.stack, r.service, r.cell) == "bad"]
    if not bad:
        return TargetLine("real-traffic-bad-not-promoted", False, "no cells")
    worst = max(bad, key=lambda rs: rs[1].ci(PROMOTE)[1])
    met = all(s.p(PROMOTE) <= 0.01 for _, s in bad)
    return TargetLine(
        "real-traffic-bad-not-promoted", met,
        f"{len(bad)} cells at {BAD_MULTIPLE}x; worst P(promote) "
        f"{_share(worst[1].counts.get(PROMOTE, 0), worst[1].n)} at {_where(worst[0])}; "
        "need <= 1%")


def _five_minutes_target(every: list[tuple[CellResult, Summary]]) -> TargetLine:
    fast = [(r, s) for r, s in every if r.cell.kind == "m" and r.cell.m >= BAD_MULTIPLE
            and r.cell.rate >= 300 and r.cell.stream == "both" and not r.cell.outage]
    shares = []
    for r, _ in fast:
        when = r.times[NEW_JUDGE]
        x = int(((r.outcomes[NEW_JUDGE] == ABORT) & (when <= ABORT_WITHIN)).sum())
        shares.append((r, x, r.runs))
    if not shares:
        return TargetLine("bad-aborted-within-5-minutes", False, "no cells")
    worst_fast = min(shares, key=lambda t: clopper_pearson(t[1], t[2])[0] + t[1] / t[2])
    met = all(x / n >= 0.99 for _, x, n in shares)
    return TargetLine(
        "bad-aborted-within-5-minutes", met,
        f"{len(shares)} cells >= {BAD_MULTIPLE}x at >= 300 req/min (plain and real-traffic "
        f"cells but outages); lowest share aborted within {ABORT_WITHIN / 60:g} min of the "
        f"start {_share(worst_fast[1], worst_fast[2])} at {_where(worst_fast[0])}; "
        "need >= 99%")


def _shared_any_share_target(every: list[tuple[CellResult, Summary]]) -> TargetLine:
    shared = [(r, s) for r, s in every if r.cell.kind == "shared"]
    if not shared:
        return TargetLine("shared-incidents-pause-at-any-stable-share", False, "no cells")
    worst_shared = min(shared, key=lambda rs: rs[1].p(PAUSE))
    met = all(s.p(PAUSE) >= 0.99 for _, s in shared)
    return TargetLine(
        "shared-incidents-pause-at-any-stable-share", met,
        f"{len(shared)} cells, stable 1x, 2x, 9x the canary's traffic; lowest P(pause) "
        f"{_share(worst_shared[1].counts.get(PAUSE, 0), worst_shared[1].n)} (abort "
        f"{_pct(worst_shared[1].p(ABORT))}%) at {_where(worst_shared[0])}; need >= 99%")


def _outage_target(real: list[tuple[CellResult, Summary]]) -> TargetLine:
    outages = [(r, s) for r, s in real if r.cell.outage]
    if not outages:
        return TargetLine("prometheus-outages-neither-abort-nor-promote", False, "no cells")
    aborted = promoted = during = runs = base_aborted = base_promoted = 0
    for r, _ in outages:
        outcome, when = r.outcomes[NEW_JUDGE], r.times[NEW_JUDGE]
        assert r.paired is not None and r.down is not None
        runs += r.runs
        z = zone(r.stack, r.service, r.cell)
        if z == "good":  # aborted with the outage where the same traffic without it was not
            aborted += int(((outcome == ABORT) & (r.paired != ABORT)).sum())
            base_aborted += int((r.paired == ABORT).sum())
        if z == "bad":
            promoted += int(((outcome == PROMOTE) & (r.paired != PROMOTE)).sum())
            base_promoted += int((r.paired == PROMOTE).sum())
        inside = (when >= r.down[:, 0]) & (when < r.down[:, 1]) & (
            (outcome == ABORT) | (outcome == PROMOTE))
        during += int(inside.sum())
    return TargetLine(
        "prometheus-outages-neither-abort-nor-promote",
        aborted == 0 and promoted == 0 and during == 0,
        f"{len(outages)} cells, {runs} rollouts with Prometheus away 1, 5 or "
        f"{LONG_OUTAGE / 60:g} min mid-gate, "
        "each against the same traffic with Prometheus up: healthy canaries aborted because "
        f"of the outage {aborted} (aborted without it: {base_aborted}), {BAD_MULTIPLE}x "
        f"canaries promoted because of it {promoted} (without it: {base_promoted}), verdicts "
        f"taken while Prometheus was away {during}; need 0, 0, 0")


def long_outage_target(real: list[tuple[CellResult, Summary]],
                       stack_cfg: dict[str, StackConfig]) -> TargetLine:
    """Past ``outageLimit`` a healthy rollout that was still undecided when Prometheus went away
    pauses for a human once it answers again; a bad one is never promoted (it may be aborted
    on the evidence from before and after the outage)."""
    name = "long-prometheus-outages-pause"
    long = [(r, s) for r, s in real if r.cell.outage
            and r.cell.outage > go_seconds(stack_cfg[r.stack].delivery.analysis.outage_limit)]
    if not long:
        return TargetLine(name, False, "no cells")
    paused = undecided = promoted = bad_runs = 0
    worst: tuple[float, CellResult] | None = None
    for r, _ in long:
        assert r.down is not None
        outcome, when = r.outcomes[NEW_JUDGE], r.times[NEW_JUDGE]
        if zone(r.stack, r.service, r.cell) == "bad":
            promoted += int((outcome == PROMOTE).sum())
            bad_runs += r.runs
            continue
        open_ = when >= r.down[:, 0]
        n, x = int(open_.sum()), int((open_ & (outcome == PAUSE)).sum())
        paused, undecided = paused + x, undecided + n
        share = x / n if n else 1.0
        if worst is None or share < worst[0]:
            worst = (share, r)
    assert worst is not None
    met = worst[0] >= 0.99 and promoted == 0
    return TargetLine(
        name, met,
        f"{len(long)} cells with Prometheus away {LONG_OUTAGE / 60:g} min (outageLimit 10m): "
        f"healthy rollouts undecided when it went away paused {_share(paused, undecided)}, "
        f"lowest cell {_pct(worst[0])}% at {_where(worst[1])}; {BAD_MULTIPLE}x rollouts "
        f"promoted {promoted} of {bad_runs}; need >= 99% paused in every cell, 0 promoted")


def detection_cost(results: list[CellResult]) -> list[str]:
    """Time to abort at 10x, new judge against the reference, per stack and rate (plain cells,
    all services pooled; a run that did not abort counts as never)."""
    results = [r for r in results if not r.cell.family]
    out = ["Detection time at 10x (plain cells, services pooled): median and p99 minutes from "
           "the rollout's start to the abort (inf: fewer than that share aborted)"]
    for stack_name in STACKS:
        for rate in RATES:
            chosen = [r for r in results if r.stack == stack_name and r.cell.kind == "m"
                      and r.cell.m == BAD_MULTIPLE and r.cell.rate == rate
                      and r.cell.stream == "both" and not r.cell.condition]
            if not chosen:
                continue
            ref = next(k for k in chosen[0].outcomes if k != NEW_JUDGE)
            parts = []
            for label in (NEW_JUDGE, ref):
                t = np.concatenate([np.where(r.outcomes[label] == ABORT, r.times[label], np.inf)
                                    for r in chosen]) / 60
                med = np.quantile(t, 0.5, method="higher")
                p99 = np.quantile(t, 0.99, method="higher")
                parts.append(f"{'new' if label == NEW_JUDGE else 'ref'} {med:.1f}/{p99:.1f}")
            out.append(f"  {stack_name} {rate:>5g}/min: " + ", ".join(parts))
    burst = [r for r in results if r.cell.kind == "m" and r.cell.m == BAD_MULTIPLE
             and r.cell.condition]
    for condition in sorted({r.cell.condition for r in burst}):
        for stack_name in STACKS:
            chosen = [r for r in burst if r.cell.condition == condition and r.stack == stack_name]
            if not chosen:
                continue
            t = np.concatenate([np.where(r.outcomes[NEW_JUDGE] == ABORT, r.times[NEW_JUDGE], np.inf)
                                for r in chosen]) / 60
            med = np.quantile(t, 0.5, method="higher")
            p99 = np.quantile(t, 0.99, method="higher")
            out.append(f"  {stack_name} {condition} (rates pooled): new {med:.1f}/{p99:.1f}")
    return out





def regressed_gate(r: CellResult) -> judge.Gate:
    """The gate of a late cell's regressed SLO: the tightest budget of its stream's kind (the
    one its multiple refers to)."""
    stack, slos = stack_slos(r.stack)
    gates = judge.stack_gates(slos[r.service], stack, r.service)
    kind = [g for g in gates if g.slo.events.is_latency == (r.cell.late_stream == "slow")]
    return min(kind, key=lambda g: g.slo.budget)


def late_need(r: CellResult) -> int:
    """``judge.late_requests`` for the regressed SLO at the cell's late ratio (the plan prints
    it at the bad hypothesis and at 10x the budget)."""
    gate = regressed_gate(r)
    looks = stack_slos(r.stack)[0].delivery.analysis.max_measurements
    need = judge.late_requests(gate, looks, min(r.cell.late_m * gate.slo.budget, 1.0))
    assert need is not None, "a late regression leans bad"
    return need


@dataclass(frozen=True)
class LateFigures:
    held: float  # canary requests a ``recent`` span holds at the weight (judge.Looks)
    need: int  # judge.late_requests for the regressed SLO at the late ratio
    reached: int  # rollouts that set the weight (the regression started)
    aborted: int  # ... of them aborted
    at_weight: int  # ... aborted before the next weight was set
    promoted: int


def late_figures(r: CellResult) -> LateFigures:
    assert r.late_start is not None and r.late_next is not None
    stack = stack_slos(r.stack)[0]
    reached = np.isfinite(r.late_start)
    outcome, when = r.outcomes[NEW_JUDGE][reached], r.times[NEW_JUDGE][reached]
    aborted = outcome == ABORT
    return LateFigures(
        held=r.cell.rate * judge.gate_looks(stack.delivery,
                                            stack.prometheus.scrape_interval).span / 60,
        need=late_need(r),
        reached=int(reached.sum()), aborted=int(aborted.sum()),
        at_weight=int((aborted & (when < r.late_next[reached])).sum()),
        promoted=int((outcome == PROMOTE).sum()))


def family_targets(every: list[tuple[CellResult, Summary]]) -> list[TargetLine]:
    """Issue 19's targets: late regressions, a moderate latency burn, the plan's smallest burn
    caught."""
    return [*_late_targets(every), *_moderate_targets(every), *_caught_targets(every)]


def _late_targets(every: list[tuple[CellResult, Summary]]) -> list[TargetLine]:
    lines = []
    late = [(r, late_figures(r)) for r, _ in every if r.cell.family == "late"]
    enough = [(r, f) for r, f in late if f.held >= f.need]
    short = [(r, f) for r, f in late if f.held < f.need]
    name = "late-regressions-aborted"
    if enough:
        worst = min(enough, key=lambda rf: rf[1].aborted / max(rf[1].reached, 1))
        slowest = min(enough, key=lambda rf: rf[1].at_weight / max(rf[1].reached, 1))
        def holds(f: LateFigures) -> bool:
            return bool(f.reached) and f.aborted >= 0.99 * f.reached

        met = all(holds(f) for _, f in enough)
        per_stack = ", ".join(
            f"{st} {sum(holds(f) for r, f in enough if r.stack == st)} of "
            f"{sum(1 for r, _ in enough if r.stack == st)}"
            for st in STACKS if any(r.stack == st for r, _ in enough))
        w, f = worst
        lines.append(TargetLine(
            name, met,
            f"cells holding it: {per_stack}; {len(enough)} cells where the recent span at the "
            f"weight holds >= judge.late_requests canary requests of the regressed SLO at its "
            f"late ratio (weights "
            f"{', '.join(f'{x:g}' for x in LATE_WEIGHTS)}%, "
            f"{', '.join(f'{x:g}' for x in LATE_MULTIPLES)}x from {LATE_BEFORE:g}x); lowest "
            f"P(abort | the rollout set the weight) {_share(f.aborted, f.reached)} at "
            f"{_where(w)} ({f.held:g} requests per span, need {f.need}); lowest share stopped "
            f"at that weight {_share(slowest[1].at_weight, slowest[1].reached)} at "
            f"{_where(slowest[0])}; promoted {sum(f.promoted for _, f in enough)} of "
            f"{sum(f.reached for _, f in enough)}; need >= 99% aborted in every cell"))
    else:
        lines.append(TargetLine(name, False, "no cells where the plan says the pause suffices"))
    if short:
        least = min(short, key=lambda rf: rf[1].aborted / max(rf[1].reached, 1))
        most = max(short, key=lambda rf: rf[1].promoted / max(rf[1].reached, 1))
        lines.append(TargetLine(
            "late-regressions-short-pauses", True,
            f"{len(short)} cells where the recent span at the weight holds fewer canary requests "
            "than judge.late_requests (the plan says the pause is too short): no target; lowest "
            f"P(abort | the rollout set the weight) {_share(least[1].aborted, least[1].reached)} "
            f"at {_where(least[0])} ({least[1].held:g} requests per span, need "
            f"{least[1].need}); highest P(promote) {_share(most[1].promoted, most[1].reached)} "
            f"at {_where(most[0])}", informative=True))
    return lines


def _moderate_targets(every: list[tuple[CellResult, Summary]]) -> list[TargetLine]:
    lines = []

    def is_latency(r: CellResult) -> bool:
        slos = stack_slos(r.stack)[1][r.service]
        return next(s for s in slos if s.slo.name == r.cell.slo).events.is_latency

    moderate = [(r, s) for r, s in every if r.cell.family == "moderate"]
    chosen = [(r, s) for r, s in moderate if is_latency(r) and r.cell.m == MODERATE_LATENCY
              and r.cell.rate >= 50]
    name = "moderate-latency-burn"
    if chosen:
        worst_m = max(chosen, key=lambda rs: rs[1].p(PROMOTE))
        lines.append(TargetLine(
            name, all(s.p(PROMOTE) <= MODERATE_PROMOTE for _, s in chosen),
            f"{len(chosen)} cells of a {MODERATE_LATENCY:g}x latency burn at >= 50 req/min; "
            f"highest P(promote) {_share(worst_m[1].counts.get(PROMOTE, 0), worst_m[1].n)} at "
            f"{_where(worst_m[0])}; need <= {MODERATE_PROMOTE:.0%} in every cell"))
    else:
        lines.append(TargetLine(name, False, "no cells"))
    if moderate:
        parts = []
        for slo in sorted({r.cell.slo for r, _ in moderate}):
            for m in sorted({r.cell.m for r, _ in moderate}):
                cell_s = [s for r, s in moderate if r.cell.slo == slo and r.cell.m == m]
                if cell_s:
                    lo = min(s.p(PROMOTE) for s in cell_s)
                    hi = max(s.p(PROMOTE) for s in cell_s)
                    parts.append(f"{slo} {m:g}x {_pct(lo)}-{_pct(hi)}%")
        lines.append(TargetLine(
            "moderate-burns", True, f"{len(moderate)} cells, constant burns of one SLO's "
            "budget from the start; P(promote) over rates and stacks: " + ", ".join(parts),
            informative=True))
    return lines


def _caught_targets(every: list[tuple[CellResult, Summary]]) -> list[TargetLine]:
    lines = []
    caught = [(r, s) for r, s in every if r.cell.family == "caught"]
    name = "smallest-burn-caught-holds"
    if caught:
        worst_c = max(caught, key=lambda rs: (rs[1].p(PROMOTE), rs[1].ci(PROMOTE)[1]))
        first = []
        for r, _ in caught:
            deadline = modes_for(r.stack, r.service)[0].gate_deadline()
            out, when = r.outcomes[NEW_JUDGE], r.times[NEW_JUDGE]
            first.append((r, int(((out == ABORT) & (when <= deadline)).sum())))
        least_c = min(first, key=lambda rx: rx[1] / rx[0].runs)
        lines.append(TargetLine(
            name, all(s.p(PROMOTE) <= CAUGHT_PROMOTE for _, s in caught),
            f"{len(caught)} cells, every gated SLO at oc.smallest_caught at the cell's canary "
            f"rate; highest P(promote) {_share(worst_c[1].counts.get(PROMOTE, 0), worst_c[1].n)}"
            f" at {_where(worst_c[0])}; lowest share aborted by the first gate's last "
            f"measurement (the plan's {oc.CAUGHT:.0%} for independent requests) "
            f"{_share(least_c[1], least_c[0].runs)} at {_where(least_c[0])}; need P(promote) "
            f"<= {CAUGHT_PROMOTE:.0%} in every cell"))
    else:
        lines.append(TargetLine(name, False, "no cells"))
    return lines


def _where(r: CellResult) -> str:
    return f"{r.stack}/{r.service} {r.cell.title} {r.cell.rate:g}/min"


def available_requests(r: CellResult) -> float:
    """Canary requests by the first gate's last measurement: a canary still undecided then
    pauses the rollout, so this is what the test can count on."""
    mode = modes_for(r.stack, r.service)[0]
    return r.cell.rate * mode.gate_deadline() / 60


def reaches(r: CellResult) -> bool:
    return available_requests(r) >= needed_requests(r.stack, r.service, r.cell)
