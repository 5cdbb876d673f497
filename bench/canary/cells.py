"""The cells of the benchmark: the canary's traffic and error ratios per cell, the plain,
real-traffic and issue 19 families, and how many runs each gets."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bench.canary.stacks import stack_gates, stack_slos
from delivery import judge, oc
from slo.model import ResolvedSlo

CATALOGUE_SERVICES = ("orchestrator", "agent-runner", "api-gateway")
STACKS = ("dev", "prod")
RATES = (20, 50, 100, 300, 1000, 5000)  # canary requests per minute
MULTIPLES = (0, 0.5, 1, 2, 5, 10, 50)  # canary error ratio, x budget
STABLE_MULTIPLE = 0.5
INCIDENT_MULTIPLE = 10
ONE_STREAM_MULTIPLES = (10, 50)  # a regression in 5xx alone, or in latency alone
STABLE_TRAFFIC = 9  # stable pods' requests per canary request
IDLE_STABLE_RATE = 180  # requests/minute of the stable pods beside an idle canary

# ---- traffic -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cell:
    kind: str  # "m", "shared", "idle"
    rate: float  # canary requests per minute
    m: float  # canary's multiple of the budget
    stable_m: float
    stream: str = "both"  # "5xx" or "slow": only that stream at m, the other as stable's
    # real-traffic conditions (bench/traffic.py); the defaults are the plain cells
    restart: str = ""  # "once": the canary's container restarts once mid-gate; "5m": every 5 min
    lazy: bool = True  # the canary's 5xx series is created at its first 5xx (else pre-created)
    icc: float = 0.0  # beta-binomial per-interval variation of the bad requests
    burst: float = 1.0  # mean burst size of the bad requests
    vary_stable: bool = False  # the same variation in stable's requests (else independent)
    cold: int = 0  # failing requests in the canary pod's first minute
    warm_up: str = ""  # the service's warmUp for this cell ("" : the stack file's)
    stable_traffic: float = STABLE_TRAFFIC  # stable's requests per canary request
    outage: float = 0.0  # seconds Prometheus does not answer, mid-gate
    # issue 19's families (``family_cells``): "" for the cells above, else "late", "moderate"
    # or "caught"
    family: str = ""
    slo: str = ""  # m is a multiple of this SLO's budget, on its stream; the other at stable's
    late_weight: float = 0.0  # from the moment the rollout sets this weight ...
    late_m: float = 0.0  # ... the canary's late_stream fails this multiple of the budget
    late_stream: str = "5xx"

    @property
    def condition(self) -> str:
        """The real-traffic condition, "" for a plain cell."""
        parts = []
        if self.slo:
            parts.append(f"burn {self.slo}")
        if self.late_weight:
            parts.append(f"late {self.late_m:g}x {self.late_stream} at {self.late_weight:g}%")
        if self.restart:
            parts.append(f"restart {self.restart} {'lazy' if self.lazy else 'pre-created'}")
        if self.burst > 1:
            parts.append(f"bursts {self.burst:g}")
        if self.icc:
            parts.append(f"icc {self.icc:g}")
        if (self.burst > 1 or self.icc) and self.vary_stable:
            parts.append("both")
        if self.cold:
            parts.append(f"cold {self.cold}")
        if self.warm_up:
            parts.append(f"warmUp {self.warm_up}")
        if self.kind == "shared" and self.stable_traffic != STABLE_TRAFFIC:
            parts.append(f"stable {self.stable_traffic:g}x")
        if self.outage:
            parts.append(f"outage {self.outage:g}s")
        return " ".join(parts)

    @property
    def title(self) -> str:
        if self.kind == "shared":
            base = f"shared {self.m:g}x"
        elif self.kind == "idle":
            base = "idle"
        else:
            base = f"m={self.m:g}" + ("" if self.stream == "both" else f" {self.stream}")
        return f"{base} {self.condition}".strip()


@dataclass(frozen=True)
class Probabilities:
    e: float  # per-request 5xx probability
    s: float  # per-request slow probability


def probabilities(slos: list[ResolvedSlo], m: float, stream: str = "both",
                  other_m: float = STABLE_MULTIPLE) -> Probabilities:
    """Per-request ratios at ``m`` x the tightest budget of each kind; with ``stream`` "5xx" or
    "slow" only that stream is at ``m`` and the other at ``other_m``."""
    gated = judge.gated(slos)
    errors = [s.budget for s in gated if not s.events.is_latency]
    latency = [s.budget for s in gated if s.events.is_latency]
    e_m = other_m if stream == "slow" else m
    s_m = other_m if stream == "5xx" else m
    return Probabilities(
        e=min(e_m * min(errors), 1.0) if errors else 0.0,
        s=min(s_m * min(latency), 1.0) if latency else 0.0,
    )


def cell_probabilities(slos: list[ResolvedSlo], cell: Cell) -> Probabilities:
    """The canary's ratios in a cell: ``probabilities``, or for a cell that burns one SLO
    (``cell.slo``) ``m`` x that SLO's budget on its stream and stable's multiple of the tightest
    budget on the other. The 5xx stream is shared: an availability burn is also a burn of the
    error-rate SLO, at the ratio of their budgets."""
    if not cell.slo:
        return probabilities(slos, cell.m, cell.stream)
    (slo,) = [s for s in judge.gated(slos) if s.slo.name == cell.slo]
    other = probabilities(slos, STABLE_MULTIPLE)
    ratio = min(cell.m * slo.budget, 1.0)
    if slo.events.is_latency:
        return Probabilities(e=other.e, s=ratio)
    return Probabilities(e=ratio, s=other.s)


def late_extra(slos: list[ResolvedSlo], cell: Cell) -> Probabilities:
    """What a late regression adds to the canary's ratios: its stream at ``late_m`` x the
    tightest budget of its kind (``probabilities``), the other stream as before."""
    before = cell_probabilities(slos, cell)
    after = probabilities(slos, cell.late_m, cell.late_stream, other_m=cell.m)
    return Probabilities(e=max(after.e - before.e, 0.0), s=max(after.s - before.s, 0.0))


def one_stream_applies(slos: list[ResolvedSlo]) -> bool:
    """5xx-only and slow-only cells mean something where the service gates both kinds."""
    kinds = {s.events.is_latency for s in judge.gated(slos)}
    return kinds == {True, False}


def cells_for(quick: bool, one_stream: bool = True, service: str = "") -> list[Cell]:
    """The plain cells, then (for ``service``) the real-traffic ones."""
    rates = (20, 300, 5000) if quick else RATES
    multiples = (0, 1, 10, 50) if quick else MULTIPLES
    cells = [Cell("m", r, m, STABLE_MULTIPLE) for m in multiples for r in rates]
    cells += [Cell("shared", r, INCIDENT_MULTIPLE, INCIDENT_MULTIPLE) for r in rates]
    cells.append(Cell("idle", 0.0, 0.0, STABLE_MULTIPLE))
    if one_stream:  # last, so that the other cells keep their seeds
        cells += [Cell("m", r, m, STABLE_MULTIPLE, stream) for stream in ("5xx", "slow")
                  for m in ((10,) if quick else ONE_STREAM_MULTIPLES) for r in rates]
    return cells + real_traffic_cells(quick, service)


REAL_RATES = (20, 50, 100, 300, 1000)
HEALTHY_MULTIPLES = (0.5, 1)
BAD_MULTIPLE = 10
COLD_STARTS = (1, 3, 5, 10, 20)
WARM_UP = "2m"  # covers a first minute of errors: warm-up counts whole scrape intervals
REAL_TRAFFIC_SERVICES = ("api-gateway", "agent-runner")
LONG_OUTAGE = 900.0  # seconds: longer than the stacks' outageLimit (10m) and evidence memory


def real_traffic_cells(quick: bool, service: str) -> list[Cell]:
    """Issue 24's conditions: api-gateway (its 5xx counted by a bad selector; the latency gate
    too) gets every one; agent-runner (5xx as total - 2xx) the restarts, where the selector
    matters."""
    if service not in REAL_TRAFFIC_SERVICES:
        return []
    rates = (300,) if quick else REAL_RATES
    both = (*HEALTHY_MULTIPLES, BAD_MULTIPLE)
    conditions: list[tuple[tuple[float, ...], dict[str, Any]]] = []
    restarts = [("once", True), ("5m", False)] if quick else [
        (r, lazy) for r in ("once", "5m") for lazy in (True, False)]
    conditions += [(both, {"restart": r, "lazy": lazy}) for r, lazy in restarts]
    if service == "api-gateway":
        bursts = [(10.0, True)] if quick else [(b, v) for b in (3.0, 10.0) for v in (False, True)]
        conditions += [(both, {"burst": b, "vary_stable": v}) for b, v in bursts]
        conditions += [(both, {"icc": 0.01, "vary_stable": v})
                       for v in ((False,) if quick else (False, True))]
        colds = (5,) if quick else COLD_STARTS
        conditions += [(HEALTHY_MULTIPLES, {"cold": c, "warm_up": w})
                       for c in colds for w in ("", WARM_UP)]
        conditions += [(both, {"outage": o})
                       for o in ((LONG_OUTAGE,) if quick else (60.0, 300.0, LONG_OUTAGE))]
    cells = []
    for multiples, extra in conditions:
        for m in multiples:
            if quick and m == 1:
                continue
            cells += [Cell("m", r, m, STABLE_MULTIPLE, **extra) for r in rates]
    if service == "api-gateway":
        cells += [Cell("shared", r, INCIDENT_MULTIPLE, INCIDENT_MULTIPLE, stable_traffic=f)
                  for f in ((1.0,) if quick else (1.0, 2.0)) for r in rates]
    return cells


# ---- issue 19's families: late regressions, moderate burns, the plan's smallest burn caught ----

FAMILIES = ("late", "moderate", "caught")
FAMILY_RATES = (50, 200, 1000)
FAMILY_SERVICE = "api-gateway"  # gates all three kinds (availability, latency, error-rate)
LATE_WEIGHTS = (25, 50)
LATE_MULTIPLES = (10, 20)
LATE_STREAMS = ("5xx", "slow")  # the error-rate SLO's stream (the tightest 5xx budget), latency's
LATE_BEFORE = 0.5  # the canary's multiple before the regression (stable's)
MODERATE_MULTIPLES = (2, 3, 5)
MODERATE_LATENCY = 3.0  # moderate-latency-burn: this burn of the latency SLO ...
MODERATE_PROMOTE = 0.05  # ... promoted in at most this share of rollouts
CAUGHT_PROMOTE = 0.01


def family_cells(family: str, quick: bool, stack_name: str, service: str) -> list[Cell]:
    """Issue 19's cells. ``late``: the canary at LATE_BEFORE x budget until the rollout sets a
    weight, then one stream at 10x or 20x (api-gateway). ``moderate``: 2x, 3x, 5x one SLO's own
    budget from the start, per gated SLO (api-gateway). ``caught``: every gated SLO of every
    service at the plan's smallest burn caught at the cell's rate (``oc.smallest_caught``)."""
    rates = (200,) if quick else FAMILY_RATES
    if family == "late":
        if service != FAMILY_SERVICE:
            return []
        weights = (50,) if quick else LATE_WEIGHTS
        multiples: tuple[float, ...] = (10,) if quick else LATE_MULTIPLES
        return [Cell("m", r, LATE_BEFORE, STABLE_MULTIPLE, family="late", late_weight=w,
                     late_m=m, late_stream=stream)
                for stream in LATE_STREAMS for w in weights for m in multiples for r in rates]
    stack, slos = stack_slos(stack_name)
    gates = judge.stack_gates(slos[service], stack, service)
    if family == "moderate":
        if service != FAMILY_SERVICE:
            return []
        multiples = (MODERATE_LATENCY,) if quick else MODERATE_MULTIPLES
        return [Cell("m", r, m, STABLE_MULTIPLE, family="moderate", slo=g.name)
                for g in gates for m in multiples for r in rates]
    if family == "caught":
        cells = []
        for g in gates:
            for r in rates:
                m = oc.smallest_caught(g, stack, r)
                if m is not None:
                    cells.append(Cell("m", r, m, STABLE_MULTIPLE, family="caught", slo=g.name))
        return cells
    raise ValueError(f"unknown family {family!r}")


def all_cells(quick: bool, stack_name: str, service: str) -> list[Cell]:
    """Every cell of a service, in seed order: the plain and real-traffic cells first (their
    seeds as before issue 19's families were added), then the families'."""
    slos = stack_slos(stack_name)[1][service]
    cells = cells_for(quick, one_stream_applies(slos), service)
    for family in FAMILIES:
        cells += family_cells(family, quick, stack_name, service)
    return cells


def runs_for(stack_name: str, service: str, cell: Cell, good_runs: int, real_runs: int) -> int:
    """Runs per cell. Healthy real-traffic cells at the pass burn rate (the edge of ``good``,
    where aborts happen) get as many as the good plain cells: at 2000 runs a cell meets the
    0.3% upper bound only with at most one abort, so a rate of 0.01% spread over 210 such cells
    would miss in about four of them by chance alone. Issue 19's families: as many as a
    healthy real-traffic cell."""
    if cell.family:
        return real_runs
    if cell.condition:
        if zone(stack_name, service, cell) == "good":
            at_edge = cell.m >= stack_slos(stack_name)[0].delivery.analysis.pass_burn_rate
            return max(real_runs, good_runs) if at_edge else real_runs
        return max(100, real_runs // (2 if cell.kind == "shared" else 4))
    if zone(stack_name, service, cell) == "good":
        return good_runs
    if cell.kind == "idle":
        return max(50, good_runs // 20)
    return max(100, good_runs // 4)


def zone(stack_name: str, service: str, cell: Cell) -> str:
    """``good`` where every enforced gate's SLO sees at most its good ratio, ``bad`` where one
    sees at least its bad ratio (hypotheses per SLO: failBurnRate auto, per kind, per SLO),
    else ``indiff``; shared incidents and idle canaries are their own kinds."""
    if cell.kind != "m":
        return cell.kind
    p = cell_probabilities(stack_slos(stack_name)[1][service], cell)
    gates = [g for g in stack_gates(stack_name, service) if g.enforcement == "enforce"]
    seen = [(p.s if g.slo.events.is_latency else p.e, g.hypotheses) for g in gates]
    tolerance = 1 + 1e-9
    if all(ratio <= h.good * tolerance for ratio, h in seen):
        return "good"
    if any(ratio * tolerance >= h.bad for ratio, h in seen):
        return "bad"
    return "indiff"
