"""Statistics of the outcomes: Clopper-Pearson intervals, per-cell summaries, the requests
the bare test needs, and their formatting."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache

import numpy as np
from scipy.stats import beta as beta_distribution  # type: ignore[import-untyped]

from bench.canary.argo import ABORT, PAUSE, PROMOTE, UNDECIDED
from bench.canary.cells import Cell, probabilities
from bench.canary.stacks import stack_slos
from bench.recording import abort_scale
from delivery import judge
from delivery.stack import go_seconds

# ---- statistics, report, targets ---------------------------------------------------------------


def clopper_pearson(x: int, n: int) -> tuple[float, float]:
    low = 0.0 if x == 0 else float(beta_distribution.ppf(0.025, x, n - x + 1))
    high = 1.0 if x == n else float(beta_distribution.ppf(0.975, x + 1, n - x))
    return low, high


@dataclass
class Summary:
    n: int
    counts: dict[int, int]
    median_abort: float  # minutes, nan when none
    median_promote: float
    p99_promote: float

    def p(self, outcome: int) -> float:
        return self.counts.get(outcome, 0) / self.n

    def ci(self, outcome: int) -> tuple[float, float]:
        return clopper_pearson(self.counts.get(outcome, 0), self.n)


def summarise(outcome: np.ndarray, when: np.ndarray) -> Summary:
    counts = {k: int((outcome == k).sum()) for k in (PROMOTE, PAUSE, ABORT, UNDECIDED)}
    minutes = when / 60

    def median(k: int) -> float:
        chosen = minutes[outcome == k]
        return float(np.median(chosen)) if len(chosen) else math.nan

    promoted = minutes[outcome == PROMOTE]
    p99 = float(np.quantile(promoted, 0.99)) if len(promoted) else math.nan
    return Summary(len(outcome), counts, median(ABORT), median(PROMOTE), p99)


DECIDED_SHARE = 0.99  # the "requests the test needs": by then it has decided in 99% of runs
WALKS = 4000


def decision_requests(gate: judge.Gate, ratio: float, per_step: float) -> float:
    """Requests by which the bare test (the gate's statistics on the canary's own counts, one
    request at a time, before the dispersion and the abort side's scale) has decided in
    DECIDED_SHARE of WALKS random walks at a constant error ratio: aborted where the cumulative
    statistic under the coarse hypotheses reaches ``abort`` or the one under the SLO's own
    reaches ``cusum_abort``, passed where the latter falls to ``accept``; inf when it has not
    within 10^6 requests. Wald's expected count is a mean: at that many requests about half the
    runs are still undecided, so a 99% target needs this quantile. The tight test's boundary
    is widened by the abort side's scale at the steps its requests span (``per_step`` requests
    a step), as the judge's is."""
    return _walks((gate.cusum_abort, gate.abort, gate.accept),
                  judge.coefficients(gate.hypotheses) + judge.coefficients(gate.coarse), ratio,
                  per_step)


@cache
def _walks(bounds: tuple[float, float, float], steps: tuple[float, float, float, float],
           ratio: float, per_step: float) -> float:
    cusum_abort, abort, accept = bounds
    per_error, per_success, coarse_error, coarse_success = steps
    rng = np.random.default_rng(20261202)
    own, gross = np.zeros(WALKS), np.zeros(WALKS)
    decided_at = np.full(WALKS, np.inf)
    n, chunk = 0, 256
    while n < 1_000_000:
        errors = rng.random((WALKS, chunk)) < ratio
        path = own[:, None] + np.cumsum(np.where(errors, per_error, per_success), axis=1)
        coarse = gross[:, None] + np.cumsum(np.where(errors, coarse_error, coarse_success),
                                            axis=1)
        scale: float | np.ndarray = 1.0  # an idle cell (no rate): no steps, no scale
        if per_step > 0:
            spanned = (n + np.arange(1, chunk + 1)) / per_step  # steps the requests so far span
            with np.errstate(over="ignore"):
                scale = abort_scale(spanned, cusum_abort)
        crossed = (path >= cusum_abort * scale) | (coarse >= abort) | (path <= accept)
        first = np.where(crossed.any(axis=1), crossed.argmax(axis=1), -1)
        newly = np.isinf(decided_at) & (first >= 0)
        decided_at[newly] = n + first[newly] + 1
        own, gross = path[:, -1], coarse[:, -1]
        n += chunk
        if np.isfinite(decided_at).mean() >= DECIDED_SHARE:
            return float(np.quantile(decided_at, DECIDED_SHARE))
        chunk = min(chunk * 2, 65536)
    return math.inf


def needed_requests(stack_name: str, service: str, cell: Cell) -> float:
    """Requests the test needs at the cell's ratios (decision_requests): to abort, one failing
    gate suffices (the fewest over the gates whose ratio drifts towards abort); to promote,
    every gate must pass (the most over the gates)."""
    stack, slos = stack_slos(stack_name)
    p = probabilities(slos[service], cell.m, cell.stream)
    per_step = cell.rate * go_seconds(stack.prometheus.scrape_interval) / 60
    needs = []
    for g in judge.stack_gates(slos[service], stack, service):
        ratio = p.s if g.slo.events.is_latency else p.e
        needs.append((judge.drift(g, ratio), decision_requests(g, ratio, per_step)))
    failing = [n for drift, n in needs if drift > 0]
    return min(failing) if failing else max(n for _, n in needs)


def _pct(p: float) -> str:
    return f"{100 * p:.2f}"


def _ci(s: Summary, outcome: int) -> str:
    low, high = s.ci(outcome)
    return f"{_pct(s.p(outcome)):>6} [{_pct(low)}-{_pct(high)}]"


def _minutes(v: float) -> str:
    return "-" if math.isnan(v) else f"{v:.1f}"
