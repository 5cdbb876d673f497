"""The canary judge: a sequential probability ratio test per gated SLO, run by stock Argo Rollouts.

What is tested. From the SLO's error budget ``b`` and the stack's burn rates come two
hypotheses about the canary's error ratio ``p``: ``good``: p <= passBurnRate x b, and ``bad``:
p >= failBurnRate x b (capped below 1). Between them either verdict is acceptable.

The statistic. After ``n`` canary requests with ``x`` bad ones the log likelihood ratio of
independent requests is ``llr = x ln(bad/good) + (n - x) ln((1 - bad)/(1 - good))``. Under
``good`` its exponential is a nonnegative martingale with mean 1, so by Ville's inequality it
ever reaches ``ln(1/alpha)`` with probability at most ``alpha``, however often it is looked at;
symmetrically for ``bad`` and ``ln(beta)``.

Real requests are not independent. Errors come in bursts (one failing dependency call fails
several requests at once) and the error ratio drifts from minute to minute, so the counts vary
more than a binomial's: by a dispersion factor ``phi`` (variance over binomial variance). The
likelihood ratio of independent requests then overstates the evidence about ``phi``-fold: a
burst of ten errors would count as ten independent ones. The judge divides it by an estimate of
``phi`` (quasi-likelihood), taken from the canary's own steps (one scrape interval each,
``delivery/evidence.py``): with ``k`` steps of ``n_i`` requests and ``x_i`` errors, the pooled
ratio ``q = x/n`` and Pearson's ``X2 = sum (x_i - n_i q)^2 / (n_i q (1 - q))``,

    phi = max(1, (X2 + NU) / (k - 1 + NU)),

``NU`` steps' worth of prior weight on ``phi = 1``, so that one step cannot make a large
estimate alone; no errors, or only errors, give 1. ``NU`` is small (half a step) because the
estimate errs low, not high: a few steps rarely hold a burst's tail, and a low ``phi`` errs
toward aborting (measured: at 1x budget with bursts of mean 10, NU 2 aborted 0.18% of healthy
rollouts, NU 0.5 0.07%). For a burst process ``phi`` estimates
E[size^2]/E[size] (a geometric burst size of mean 3 gives 5, of mean 10 gives 19), so that the
statistic counts bursts rather than requests; a clean canary or one whose requests fail
independently keeps ``phi`` near 1 and loses little. Why the canary's own steps rather than
stable's: a burst in the canary alone (its new code path) is invisible in stable's counts, and
the canary's bursts are what inflate its statistic. Dividing by ``phi >= 1`` moves the statistic
toward zero on both sides: it slows passes as much as aborts. The bound is then no longer
Ville's exact one; ``bench/canary_judgement.py`` measures the false-abort and miss rates on
bursty, over-dispersed, restarting and cold-starting traffic. No verdict either way before the
canary has had traffic in ``MIN_STEPS`` steps: with fewer the dispersion cannot be estimated.

The estimate is itself noisy, and on the abort side a low one is what aborts a healthy
canary. With ``d = k - 1 + NU`` degrees of freedom, ``phi_hat`` is about ``phi W``, ``W``
distributed as chi-square with ``d`` degrees of freedom over ``d``: at ``MIN_STEPS`` steps ``W``
is below 0.3 one time in twenty. In the diffusion approximation a statistic ``L / phi`` crosses
``h`` with probability ``e^-h``; divided by ``phi W`` instead, with probability ``e^-hW``, whose
mean over ``W`` is ``(1 + 2h/d)^(-d/2)``: at 6 steps and ``h = 8.7`` (dev's abort) 0.015
instead of 0.00017. The change-point statistic (``cusum``, below) is therefore divided
further by

    abort_scale(d, h) = d (e^(2h/d) - 1) / (2h),

the ``c`` that solves ``(1 + 2hc/d)^(-d/2) = e^-h``, with its boundary ``h``: the mean
crossing probability is ``e^-h`` again. It falls towards 1 as steps accumulate (at
``h = 8.7``: 7.2 at 6 steps, 4.0 at 8, 1.6 at 20, 1.16 at 60), so it costs abort time early in
the rollout and little later (``bench/canary_judgement.py`` prints both). The pass side is not
scaled: a pass needs the canary statistic at ``accept`` and ``recent < 0``, its risk ``beta``
is measured to hold on bursty traffic, and scaling it would slow every clean release.

Two abort tests. A release that fails many times its budget must be stopped within minutes, on
what the first steps hold; a moderate burn (2-5x, where the stack or ``auto`` sets a small
``failBurnRate``) needs hundreds of requests however it is judged. The scale above would hold
the first kind back as long as the second (at 300 canary requests a minute, a 10x canary whose
errors come in bursts of 10 was aborted within 5 minutes in 92% of rollouts instead of 100%).
So the abort side reads two statistics, each with half the SLO's false-abort risk (below):

- ``judged``: the cumulative statistic under coarse hypotheses (``coarse()``): the SLO's good
  one, and a bad one at least ``COARSE_BURN`` (10) times the budget, divided by the dispersion
  and not scaled. Each error moves it by ``ln(bad/good)``, ``ln 10 = 2.3`` at 10x, so a gross
  regression reaches ``abort`` within a few steps of ``MIN_STEPS``. The diffusion argument above
  is for small increments; for these large ones the estimate adapts with the evidence (a burst
  of ``s`` errors in a few steps estimates ``phi`` near ``s`` itself, so a burst counts about
  as one error), and its false-abort risk on bursty, restarting and cold-starting traffic is
  measured by ``bench/canary_judgement.py`` (``real-traffic-healthy-rarely-aborted``: at most
  0.1% in every cell) rather than bounded here.
- ``cusum``: the change-point statistic below, under the SLO's own hypotheses, scaled. It is
  at least the cumulative statistic under them (the canary's start is one of its restart
  points), so it also catches a moderate burn that is there from the start.

Regressions that start late. Summed over the canary's whole life, the statistic lets clean
requests at 10% and 25% hide a regression that starts at 50% (a load-dependent one, or a bad
pod added at a later weight): its rise has to undo everything the clean steps took off. Two
change-point statistics read the same step increments as running sums ``L_t`` (one per
hypotheses, ``delivery/evidence.py``):

- ``cusum``: the judged sum (the increments under the SLO's own hypotheses, moved by stable
  as below) above its lowest restart point within the evidence window,
  ``L_t - min(0, min_r L_r)``, the restart points ``r`` being one step every ``RESTART_SECONDS``
  (and the canary's start, where ``L = 0``). A regression that starts at time ``s`` is judged
  on the evidence since the restart point before it: at most ``RESTART_SECONDS`` of earlier
  clean traffic dilutes it, not the whole rollout. It fails at ``cusum_abort``.
- ``recent``: the absolute sum's change over its span, ``L_t - L_{t - span}``, the span being
  the pause less the recording's lag (``Looks``; the gate's first look waits where the pause
  is shorter than that lag and a step). A gate passes only while it is below 0, so a gate never
  passes on evidence from earlier weights alone: the requests served at this weight since its
  pause began must lean good.

The bounds, per gated SLO and per rollout. Under ``good`` each ``exp(L_t - L_r)`` for ``t >= r``
is a nonnegative martingale with mean 1 from the restart point ``r`` on (the judged increments'
hypotheses are fixed by stable's counts and the canary's past, so each step's factor still has
mean at most 1), so by Ville's inequality it ever reaches ``h`` with probability at most
``e^-h``. ``cusum >= h`` at some time means ``L_t - L_r >= h`` for some restart point, so over
the ``R`` restart points of the evidence window (``restart_points()``: the window over
``RESTART_SECONDS``, plus the start) the probability is at most ``R e^-h``. The cumulative test
(under the coarse hypotheses: its likelihood ratio is a martingale under ``good`` as well) takes
half of the SLO's false-abort risk, ``abort = ln(2/alpha_slo)``, and the change-point test
the other half, ``cusum_abort = ln(2 R/alpha_slo)``: together at most ``alpha_slo``, over every
step and every gate of the rollout. (A rollout that stays paused longer than the evidence window
keeps measuring in the background and adds restart points: the bound is per evidence window.)
Under ``bad`` from the moment ``s`` a weight is set, the gate at that weight passes only if
``recent < 0`` at one of its ``M`` (``maxMeasurements``) looks; each look's ``recent`` sums the
``n`` requests of a span served after ``s`` (``Looks``: the first look waits for them), and
``P(L < 0) <= rho^n`` (Chernoff: ``rho = min_t E[exp(-t X)]`` over one request's increment
``X``; at the bad hypothesis it is at most the Bhattacharyya coefficient of the two), so that
gate is passed with probability at most ``M rho^n``: the plan prints the traffic a span needs
for this to be at most ``beta`` (``late_requests()``), at the bad hypothesis and at 10x the
budget, and otherwise says the pause is too short for that weight to catch a regression that
starts there.

So the canary

- fails (the rollout aborts) once the cumulative statistic under the coarse hypotheses reaches
  ``abort = ln(2/alpha_slo)``, or the change-point statistic under the SLO's own reaches
  ``cusum_abort``;
- passes a gate once the statistic falls to ``accept = ln(beta)`` while ``recent < 0``;
- is undecided in between, and without traffic there is no statistic at all: no data is never a
  pass and never a failure.

``alpha`` (false-abort risk) is split evenly over the service's enforced SLOs (Bonferroni), so a
good release is rolled back with probability at most ``alpha`` whatever the number of gates;
``beta`` (missed-regression risk) is not split: a bad release is promoted only if its bad SLO's
own test accepts.

The stable baseline (``baseline: compare``). Stable's steps are summed over the steps in which
the canary had traffic (the same period). Its error ratio, taken at an upper bound
``(x_s + 1 + Z sqrt(phi_s (x_s + 1))) / n_s`` so that a stable with little traffic is not read
as healthier than it is, moves the hypotheses to ``good = max(good, ps)`` and
``bad = max(bad, margin x ps)``. Until stable has traffic in that period there is no baseline:
the judged statistic is NaN and cannot abort. While stable is healthy and busy this is the
absolute test almost unchanged; when stable is as bad as the canary (an incident both share)
the canary cannot fail, and a separate background metric pauses the rollout with a message
naming the shared incident: rolling back would not help. A gate still passes only on the
absolute test, so a shared incident never promotes.

What Argo sees. One instant query per gated SLO returns the samples of ``EVIDENCE`` in that
order (Prometheus keeps the order of the operands of ``or`` in an instant query, and every
sample carries its own ``evidence`` label so that ``or`` keeps them all): the value that
``kubectl argo rollouts`` and the AnalysisRun show is
``[judged, canary, canary errors, canary requests, stable errors, stable requests, stable,
canary dispersion, canary steps, cusum, recent]``. The ``query`` kind, judged inline, has no
running sums: its ``cusum`` and ``recent`` are the cumulative statistics. Conditions check the
length first: an empty result (no canary traffic yet) is inconclusive, never an evaluation
error.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass

from delivery.routers import ROUTERS
from delivery.stack import (
    AUTO_FAIL_BURN_RATES,
    AnalysisConfig,
    DeliveryConfig,
    Enforcement,
    StackConfig,
    go_seconds,
)
from slo import conventions as names
from slo import durations
from slo.conventions import CANARY_HASH_ARG, HASH_LABEL, STABLE_HASH_ARG
from slo.model import Events, ResolvedSlo, number
from slo.promql import Matcher

# Positions in the measurement's result vector.
EVIDENCE = (
    "judged",  # statistic against the baseline-adjusted coarse hypotheses: fails at >= abort
    "canary",  # statistic against the SLO's own hypotheses: passes at <= accept
    "canary_errors",
    "canary_requests",
    "stable_errors",
    "stable_requests",
    "stable",  # stable's own statistic: a shared incident when it and the canary's reach abort
    "dispersion",  # the canary's phi, which the two statistics above are divided by
    "steps",  # steps (scrape intervals) in which the canary had traffic
    "cusum",  # the SLO's own, adjusted, since its lowest restart point: fails at >= cusum_abort
    "recent",  # the canary's statistic over the last span (Looks): a gate passes only while < 0
)
(JUDGED, CANARY, CANARY_ERRORS, CANARY_REQUESTS, STABLE_ERRORS, STABLE_REQUESTS, STABLE,
 DISPERSION, STEPS, CUSUM, RECENT) = range(len(EVIDENCE))
EVIDENCE_LABEL = "evidence"
BACKGROUND_INCONCLUSIVE_LIMIT = 1_000_000
# Prior weight, in steps, on no over-dispersion (phi = 1).
NU = 0.5
# No verdict before the canary has had traffic in this many steps.
MIN_STEPS = 6
# Stable's error ratio is read at this many standard deviations above its estimate.
Z = 2.33
# The change-point statistic restarts at most once per this many seconds (its restart points).
RESTART_SECONDS = 300
MIN_EVIDENCE_WINDOW_SECONDS = 1800
# The cumulative statistic's bad hypothesis is at least this many times the budget.
COARSE_BURN = 10.0
# Hypotheses moved by stable stay below these, so that the logarithms stay finite.
BAD_CAP = 0.95
GOOD_CAP_SHARE = 0.9


@dataclass(frozen=True)
class Hypotheses:
    good: float  # error ratio a good release has at most
    bad: float  # error ratio a bad release has at least

    def __post_init__(self) -> None:
        if not 0 < self.good < self.bad < 1:
            raise ValueError(f"need 0 < good < bad < 1, got {self.good} and {self.bad}")


@dataclass(frozen=True)
class Gate:
    """Everything that decides one SLO's canary verdict on one stack."""

    slo: ResolvedSlo
    hypotheses: Hypotheses  # the SLO's own: the pass side and the change-point statistic
    coarse: Hypotheses  # the cumulative statistic's: bad at least COARSE_BURN x the budget
    abort: float  # ln(2/alpha_slo): the cumulative statistic's boundary
    accept: float  # ln(beta)
    cusum_abort: float  # ln(2 R/alpha_slo), R restart points in the evidence window
    alpha: float  # false-abort risk of this SLO's test
    beta: float
    margin: float
    compare: bool  # judged against the stable baseline
    enforcement: Enforcement
    fail_burn_source: str = ""  # where the fail burn rate came from, for the plan

    @property
    def name(self) -> str:
        return self.slo.slo.name


def hypotheses(slo: ResolvedSlo, pass_burn: float, fail_burn: float) -> Hypotheses:
    good = round(slo.budget * pass_burn, 12)
    bad = round(min(slo.budget * fail_burn, 1 - slo.budget * 1e-3), 12)
    return Hypotheses(good, bad)


def coarse(slo: ResolvedSlo, h: Hypotheses) -> Hypotheses:
    """The cumulative statistic's hypotheses: the SLO's own good one, and a bad one at least
    ``COARSE_BURN`` times the budget (the SLO's own where that is higher already)."""
    return Hypotheses(h.good, max(h.bad, hypotheses(slo, 1.0, COARSE_BURN).bad))


def settle_seconds(step: int) -> int:
    """How long before each evaluation the evidence group reads the counters: a third of the
    step, at least a second (``delivery/evidence.py``)."""
    return max(1, step // 3)


@dataclass(frozen=True)
class Looks:
    """When a gate looks, and what its ``recent`` statistic reads, in seconds.

    Traffic served at ``s`` is in the recorded evidence by ``s + lag`` at the latest, ``lag`` =
    two steps and ``settle``: each step's increment reads its counters ``settle`` back, and its
    earlier sample one step before that, from a scrape up to one step older still. So
    ``recent`` read at ``t`` over ``span`` holds only traffic served after ``t - span - lag``.
    For the gate's first look (a weight set at ``s``, the pause, then ``delay``) to read only
    the traffic of its own weight, ``pause + delay >= span + lag``: ``span`` is the pause less
    the lag in whole steps, at least one, and ``delay`` is what of ``span + lag`` the pause does not
    cover (none for a pause longer than the lag and a step), rounded up to the gate's
    ``interval`` so that its looks keep their beat."""

    span: int  # seconds of running sum the ``recent`` statistic reads back
    delay: int  # seconds from the end of a weight's pause to its gate's first look

    @property
    def span_text(self) -> str:
        return durations.format_seconds(self.span)


def gate_looks(delivery: DeliveryConfig, scrape_interval: str) -> Looks:
    step = go_seconds(scrape_interval)
    lag = 2 * step + settle_seconds(step)
    pause = go_seconds(delivery.pause)
    span = max(step, (pause - lag) // step * step)  # whole steps: as many at every phase
    interval = go_seconds(delivery.analysis.interval)
    short = max(0, span + lag - pause)
    return Looks(span=span, delay=-(-short // interval) * interval)


def first_gate_seconds(delivery: DeliveryConfig, scrape_interval: str) -> int:
    """From the rollout's start to the first gate's last measurement: the first step's pause,
    the gate's delay (``Looks``), then its measurements (the first at once, then one per
    interval). A canary that has no verdict by then pauses the rollout for a human."""
    cfg = delivery.analysis
    return (go_seconds(delivery.pause) + gate_looks(delivery, scrape_interval).delay
            + go_seconds(cfg.interval) * (cfg.max_measurements - 1))


def decides_in(gate: Gate, requests: float) -> bool:
    """The test decides within ``requests`` canary requests: twice Wald's expected requests,
    for a canary at the pass ratio and for one at the fail ratio."""
    h = gate.hypotheses
    return 2 * max(expected_requests(gate, h.good), expected_requests(gate, h.bad)) <= requests


@dataclass(frozen=True)
class Traffic:
    """A service's expected canary traffic at the first weight, and the first gate's length."""

    canary_rate: float  # canary requests a minute
    first_gate_seconds: int

    @property
    def first_gate_requests(self) -> float:
        return self.canary_rate * self.first_gate_seconds / 60


def _burns(slo: ResolvedSlo, delivery: DeliveryConfig, traffic: Traffic | None,
           make: Callable[[Hypotheses, str], Gate]) -> Gate:
    """The SLO's gate, its fail burn rate chosen where the stack says ``auto`` (``AnalysisConfig``
    ``failBurnRate``): the smallest that decides within the first gate at the expected canary
    traffic."""
    cfg = delivery.analysis
    key = f"{slo.service.name}/{slo.slo.name}"
    passing, failing = cfg.burn_rates(key, slo.slo.indicator.kind)
    if failing != "auto":
        return make(hypotheses(slo, passing, failing), "set in the stack")
    fallback = AUTO_FAIL_BURN_RATES[-1]
    if traffic is None:
        return make(hypotheses(slo, passing, fallback),
                    f"auto: {number(fallback)}, the service states no expected traffic")
    available, canary_rate = traffic.first_gate_requests, traffic.canary_rate
    candidates = [r for r in AUTO_FAIL_BURN_RATES if r > passing] or [fallback]
    for rate in candidates:
        gate = make(hypotheses(slo, passing, rate), "")
        if decides_in(gate, available) or rate == candidates[-1]:
            decided = "decides" if decides_in(gate, available) else "cannot decide"
            return make(gate.hypotheses,
                        f"auto: {number(rate)}, the smallest that {decided} within the first "
                        f"gate at {number(round(canary_rate, 1))} canary requests a minute")
    raise AssertionError("unreachable")


def enforcement(slo: ResolvedSlo, cfg: AnalysisConfig) -> Enforcement:
    key = f"{slo.service.name}/{slo.slo.name}"
    return cfg.enforcement_by_slo.get(key, cfg.enforcement)


def gated(slos: list[ResolvedSlo]) -> list[ResolvedSlo]:
    """SLOs that judge canaries: their catalogue entry opts in and their kind can be counted."""
    return [s for s in slos if s.slo.canary_gate and s.events.can_gate]


def evidence_window(delivery: DeliveryConfig) -> str:
    """The range canary counts are read over, as a PromQL duration: the judge's horizon."""
    cfg = delivery.analysis
    if cfg.evidence_window is not None:
        seconds = go_seconds(cfg.evidence_window)
    else:
        per_step = go_seconds(delivery.pause) + go_seconds(cfg.interval) * cfg.max_measurements
        seconds = max(2 * per_step * len(delivery.weights), MIN_EVIDENCE_WINDOW_SECONDS)
        seconds = -(-seconds // 60) * 60
    return durations.format_seconds(seconds)


def restart_points(delivery: DeliveryConfig) -> int:
    """How many restart points the change-point statistic has within the evidence window."""
    return -(-durations.parse(evidence_window(delivery)) // RESTART_SECONDS) + 1


def gates(slos: list[ResolvedSlo], delivery: DeliveryConfig,
          traffic: Traffic | None = None) -> list[Gate]:
    """The gates of one service: the one place where thresholds are computed. ``traffic``: the
    canary's expected traffic at the first weight (``stack_gates``)."""
    cfg = delivery.analysis
    active = [s for s in gated(slos) if enforcement(s, cfg) != "off"]
    enforced = sum(1 for s in active if enforcement(s, cfg) == "enforce")
    alpha = cfg.false_abort_risk / max(enforced, 1)
    beta = cfg.missed_regression_risk

    def gate(s: ResolvedSlo) -> Callable[[Hypotheses, str], Gate]:
        return lambda h, why: Gate(
            slo=s,
            hypotheses=h,
            coarse=coarse(s, h),
            abort=math.log(2 / alpha),
            accept=math.log(beta),
            cusum_abort=math.log(2 * restart_points(delivery) / alpha),
            alpha=alpha,
            beta=beta,
            margin=cfg.baseline_margin,
            compare=cfg.baseline == "compare",
            enforcement=enforcement(s, cfg),
            fail_burn_source=why,
        )

    return [_burns(s, delivery, traffic, gate(s)) for s in active]


def stack_gates(slos: list[ResolvedSlo], stack: StackConfig, service: str) -> list[Gate]:
    """``gates()`` of a service on a stack, at its expected canary traffic (the service's
    ``expectedRequestsPerMinute`` times the router's real share at the first weight)."""
    return gates(slos, stack.delivery, expected_traffic(stack, service))


def expected_traffic(stack: StackConfig, service: str) -> Traffic | None:
    """The service's ``expectedRequestsPerMinute`` times the router's real share at the first
    weight, or None when the stack states no rate."""
    deployment = stack.services[service]
    rate = deployment.expected_requests_per_minute
    if rate is None:
        return None
    router = ROUTERS[stack.delivery.traffic_routing]
    return Traffic(rate * router.share(deployment.replicas, stack.delivery.weights[0]),
                   first_gate_seconds(stack.delivery, stack.prometheus.scrape_interval))


# ---- the arithmetic, in Python (the benchmark and the tests use it; PromQL below mirrors it) --


@dataclass(frozen=True)
class Counts:
    """One hash's steps over a period: sums of requests, errors and errors^2/requests, and the
    number of steps with traffic."""

    requests: float
    errors: float
    squares: float = 0.0
    steps: float = 0.0


def coefficients(h: Hypotheses) -> tuple[float, float]:
    """The statistic's change per bad and per good request: the log likelihood ratio written
    once (the PromQL, the plan, the dashboards and the benchmark use these)."""
    return math.log(h.bad / h.good), math.log((1 - h.bad) / (1 - h.good))


def llr(errors: float, requests: float, h: Hypotheses) -> float:
    """Log likelihood ratio of ``bad`` against ``good`` after ``requests`` with ``errors``,
    for independent requests."""
    per_error, per_success = coefficients(h)
    return errors * per_error + (requests - errors) * per_success


def dispersion(c: Counts) -> float:
    """The estimate of phi in the module docstring."""
    if c.requests <= 0 or not 0 < c.errors < c.requests:
        return 1.0
    q = c.errors / c.requests
    pearson = (c.squares - c.errors * c.errors / c.requests) / (q * (1 - q))
    return max(1.0, (pearson + NU) / (c.steps - 1 + NU))


def abort_scale(steps: float, h: float) -> float:
    """The abort side's further divisor for a dispersion estimated from ``steps`` steps, at the
    boundary ``h`` (module docstring)."""
    d = max(steps - 1 + NU, NU)
    return d * math.expm1(2 * h / d) / (2 * h)


def stable_ratio(stable: Counts) -> float:
    """Stable's error ratio at its upper bound (module docstring)."""
    x = stable.errors + 1
    return (x + Z * math.sqrt(dispersion(stable) * x)) / stable.requests


def adjusted(h: Hypotheses, ratio: float, margin: float) -> Hypotheses:
    """The hypotheses moved by stable's error ratio over the same period (see module doc)."""
    bad_cap = max(h.bad, BAD_CAP)
    good_cap = max(h.good, GOOD_CAP_SHARE * bad_cap)
    return Hypotheses(
        good=min(max(ratio, h.good), good_cap), bad=min(max(margin * ratio, h.bad), bad_cap)
    )


def moved(gate: Gate, stable: Counts, h: Hypotheses | None = None) -> Hypotheses | None:
    """The hypotheses a statistic tests (the SLO's own, or ``h``: the cumulative statistic's
    ``gate.coarse``): moved by stable with ``baseline: compare`` (None until stable has
    traffic), as they are otherwise."""
    h = h or gate.hypotheses
    if not gate.compare:
        return h
    if stable.requests <= 0:
        return None
    return adjusted(h, stable_ratio(stable), gate.margin)


def increments(gate: Gate, step: Counts, stable: Counts) -> tuple[float, float]:
    """One step's additions to the two running statistics the change-point test reads
    (``delivery/evidence.py``): (absolute, judged); the judged one adds nothing while there is
    no baseline. ``stable`` is stable's sums over the evidence window at that step."""
    h = moved(gate, stable)
    absolute = llr(step.errors, step.requests, gate.hypotheses)
    return absolute, 0.0 if h is None else llr(step.errors, step.requests, h)


def evidence(gate: Gate, canary: Counts, stable: Counts, cusum: float | None = None,
             recent: float | None = None) -> tuple[float, ...] | None:
    """The measurement's result vector, or None where the query returns nothing. ``cusum`` and
    ``recent`` are the change-point statistics before dividing by the dispersion (the running
    sums' differences, ``delivery/evidence.py``); without them (a kind judged inline) they are
    the cumulative statistic under the SLO's own hypotheses (``_cusum``) and the absolute one."""
    if canary.requests <= 0:
        return None
    phi = dispersion(canary)
    absolute = llr(canary.errors, canary.requests, gate.hypotheses) / phi
    coarse = moved(gate, stable, gate.coarse)
    judged = math.nan if coarse is None else llr(canary.errors, canary.requests, coarse) / phi
    own = llr(stable.errors, stable.requests, gate.hypotheses) / dispersion(stable)
    return (judged, absolute, canary.errors, canary.requests, stable.errors, stable.requests,
            own, phi, canary.steps,
            _cusum(gate, canary, stable, phi) if cusum is None
            else cusum / phi / abort_scale(canary.steps, gate.cusum_abort),
            absolute if recent is None else recent / phi)


def _cusum(gate: Gate, canary: Counts, stable: Counts, phi: float) -> float:
    """A kind judged inline has no running sums: its change-point statistic is the cumulative
    one under the SLO's own hypotheses (moved by stable), scaled as the recorded one is."""
    h = moved(gate, stable)
    if h is None:
        return math.nan
    return llr(canary.errors, canary.requests, h) / phi / abort_scale(canary.steps,
                                                                      gate.cusum_abort)


def drift(gate: Gate, error_ratio: float) -> float:
    """The statistic's expected change per request at a constant error ratio (no dispersion):
    positive moves it towards abort, negative towards accept."""
    return llr(error_ratio, 1.0, gate.hypotheses)


def late_requests(gate: Gate, looks: int, ratio: float | None = None) -> int | None:
    """Canary requests a ``recent`` span (``Looks``) must hold at a weight so that a release
    that turns bad when the weight is set (to the error ratio ``ratio``; by default the bad
    hypothesis) passes that weight's gate with probability at most ``beta`` (module doc):
    ``looks x rho^n <= beta``, where ``rho = min_t E[exp(-t X)]`` over one request's increment
    ``X`` bounds ``P(sum of n increments < 0) <= rho^n`` (Chernoff). None where the ratio does
    not lean bad (no traffic suffices)."""
    per_error, per_success = coefficients(gate.hypotheses)
    p = gate.hypotheses.bad if ratio is None else min(max(ratio, 0.0), 1.0)
    if p * per_error + (1 - p) * per_success <= 0:
        return None
    if p >= 1:  # every request leans bad: one look that sees a request never passes
        return 1
    t = math.log(p * per_error / (-(1 - p) * per_success)) / (per_error - per_success)
    rho = p * math.exp(-t * per_error) + (1 - p) * math.exp(-t * per_success)
    return math.ceil(math.log(looks / gate.beta) / -math.log(rho))


def expected_requests(gate: Gate, error_ratio: float) -> float:
    """Wald's approximation of the canary requests the test needs at a constant error ratio:
    to abort, the sooner of the cumulative statistic (coarse hypotheses, ``abort``) and the
    change-point one (the SLO's own, ``cusum_abort``; before its scale)."""
    step = drift(gate, error_ratio)
    if step > 0:
        gross = llr(error_ratio, 1.0, gate.coarse)
        return min(gate.cusum_abort / step, gate.abort / gross if gross > 0 else math.inf)
    if step < 0:
        return gate.accept / step
    return math.inf


# ---- the PromQL ------------------------------------------------------------------------------


@dataclass(frozen=True)
class CountsQL:
    """``Counts`` as PromQL: recorded sums per hash, or a kind's inline sums."""

    requests: str
    errors: str
    squares: str
    steps: str


def _llr(errors: str, requests: str, good: float | str, bad: float | str) -> str:
    """The statistic in PromQL; fixed hypotheses have their coefficients computed here (PromQL's
    ``ln`` takes vectors only), moved ones are vectors."""
    if isinstance(good, float) and isinstance(bad, float):
        per_error, per_success = coefficients(Hypotheses(good, bad))
        return f"{errors} * {per_error!r} + ({requests} - {errors}) * {per_success!r}"
    return (
        f"{errors} * ln({bad} / {good}) + ({requests} - {errors}) * "
        f"ln((1 - {bad}) / (1 - {good}))"
    )


def dispersion_ql(c: CountsQL) -> str:
    """``dispersion()``: 1 where the estimate is NaN (no errors, or only errors) or below 1."""
    n, x, q, k = c.requests, c.errors, c.squares, c.steps
    pearson = f"({q} - {x} ^ 2 / {n}) / ({x} / {n} * (1 - {x} / {n}))"
    return f"({pearson} + {NU!r}) / ({k} - 1 + {NU!r}) > 1 or {n} * 0 + 1"


def abort_scale_ql(steps: str, h: float) -> str:
    """``abort_scale()`` of a vector of steps."""
    d = f"clamp_min({steps} - 1 + {NU!r}, {NU!r})"
    return f"({d} * (exp({2 * h!r} / {d}) - 1) / {2 * h!r})"


def stable_ratio_ql(stable: CountsQL, phi: str) -> str:
    """``stable_ratio()``; nothing where stable had no traffic."""
    x = f"({stable.errors} + 1)"
    return f"({x} + {Z!r} * sqrt({phi} * {x})) / ({stable.requests} > 0)"


def moved_ql(gate: Gate, ratio: str, h: Hypotheses | None = None) -> tuple[str, str]:
    """``moved()``'s (good, bad) as PromQL from stable's ratio (a vector): of the SLO's own
    hypotheses, or of ``h`` (the cumulative statistic's, ``adjusted()``)."""
    h = h or gate.hypotheses
    bad_cap = max(h.bad, BAD_CAP)
    good_cap = max(h.good, GOOD_CAP_SHARE * bad_cap)
    return (f"clamp({ratio}, {number(h.good)}, {number(good_cap)})",
            f"clamp({number(gate.margin)} * {ratio}, {number(h.bad)}, {number(bad_cap)})")


def increments_ql(gate: Gate, errors: str, requests: str, ratio: str) -> tuple[str, str]:
    """``increments()`` as PromQL."""
    h = gate.hypotheses
    absolute = _llr(errors, requests, h.good, h.bad)
    if not gate.compare:
        return absolute, absolute
    good, bad = moved_ql(gate, ratio)
    return absolute, f"({_llr(errors, requests, good, bad)}) or {requests} * 0"


def evidence_ql(
    gate: Gate, canary: CountsQL, stable: CountsQL, phi: str, stable_phi: str, ratio: str,
    cusum: str | None = None, recent: str | None = None,
) -> dict[str, str]:
    """``evidence()`` as PromQL, one expression per element of ``EVIDENCE``."""
    n, x = canary.requests, canary.errors
    h, c = gate.hypotheses, gate.coarse
    absolute = f"({_llr(x, n, h.good, h.bad)}) / {phi}"
    judged = f"({_llr(x, n, c.good, c.bad)}) / {phi}"
    scale = abort_scale_ql(canary.steps, gate.cusum_abort)
    inline_cusum = f"{absolute} / {scale}"
    if gate.compare:
        # no stable traffic over the canary's period yet: no baseline, so no verdict to abort on
        good, bad = moved_ql(gate, ratio, c)
        judged = f"({_llr(x, n, good, bad)}) / {phi} or {n} * 0 + NaN"
        good, bad = moved_ql(gate, ratio)
        inline_cusum = f"({_llr(x, n, good, bad)}) / {phi} / {scale} or {n} * 0 + NaN"
    parts = {
        "judged": judged,
        "canary": absolute,
        "canary_errors": x,
        "canary_requests": n,
        "stable_errors": f"{stable.errors} or {n} * 0",
        "stable_requests": f"{stable.requests} or {n} * 0",
        "stable": f"({_llr(stable.errors, stable.requests, h.good, h.bad)}) / {stable_phi}"
                  f" or {n} * 0",
        "dispersion": phi,
        "steps": canary.steps,
        "cusum": inline_cusum if cusum is None else f"({cusum}) / {phi} / {scale}",
        "recent": absolute if recent is None else f"({recent}) / {phi}",
    }
    assert tuple(parts) == EVIDENCE
    return parts


def _hash(arg: str) -> tuple[Matcher, ...]:
    return (Matcher(HASH_LABEL, "=", "{{args.%s}}" % arg),)  # noqa: UP031 (Argo's braces)


def _inline_counts(gate: Gate, step: str, lookback: str) -> tuple[CountsQL, CountsQL]:
    """A kind whose expressions aggregate the hash away: canary and stable counts computed in
    the query from ``rate()`` over two steps, summed step by step (approximate)."""
    seconds = durations.parse(step)
    window = durations.format_seconds(2 * seconds)

    def parts(arg: str) -> tuple[str, str, str]:
        events: Events = gate.slo.events.with_matchers(_hash(arg))
        n = f"({events.total(window)} * {seconds} > 0)"
        x = f"(({events.bad(window)} or vector(0)) * {seconds} and {n})"
        return n, x, f"({x} ^ 2 / {n})"

    canary_n = parts(CANARY_HASH_ARG)[0]

    def sums(arg: str, during: str | None) -> CountsQL:
        def over(expr: str, fn: str = "sum_over_time") -> str:
            if during is not None:
                expr = f"{expr} and on () {during}"
            return f"sum({fn}(({expr})[{lookback}:{step}]))"

        n, x, q = parts(arg)
        return CountsQL(over(n), f"({over(x)} or vector(0))", over(q),
                        over(n, "count_over_time"))

    return sums(CANARY_HASH_ARG, None), sums(STABLE_HASH_ARG, canary_n)


def _evidence_selector(gate: Gate, name: str) -> str:
    slo = gate.slo
    return (
        f'{names.CANARY_EVIDENCE}{{{names.LABEL_SERVICE}="{slo.service.name}",'
        f'{names.LABEL_SLO}="{slo.slo.name}",{HASH_LABEL}="{{{{args.{CANARY_HASH_ARG}}}}}",'
        f'{EVIDENCE_LABEL}="{name}"}}'
    )


def recorded(gate: Gate) -> bool:
    """The gate reads recorded evidence (``delivery/evidence.py``), not inline PromQL."""
    return gate.slo.events.step_counts("1m", "1m", (HASH_LABEL,)) is not None


def query(gate: Gate, lookback: str, step: str) -> str:
    """The instant query whose result is ``EVIDENCE`` for the canary hash: the recorded
    evidence, one line per element, in order."""
    if recorded(gate):
        return "\nor ".join(_evidence_selector(gate, name) for name in EVIDENCE)
    canary, stable = _inline_counts(gate, step, lookback)
    phi, stable_phi = dispersion_ql(canary), dispersion_ql(stable)
    parts = evidence_ql(gate, canary, stable, f"({phi})", f"({stable_phi})",
                        f"({stable_ratio_ql(stable, f'({stable_phi})')})")
    vector = "\nor ".join(
        f'label_replace({expr}, "{EVIDENCE_LABEL}", "{name}", "", "")'
        for name, expr in ((k, f"({v})") for k, v in parts.items())
    )
    return f"({vector})\nand on () ({canary.requests} > 0)"


# ---- Argo conditions -------------------------------------------------------------------------


# A number as the conditions above write it (``slo.model.number``)
CONDITION_NUMBER = r"-?[0-9.]+(?:e[-+]?[0-9]+)?"


def condition_bound(index: int, op: str) -> str:
    """A regular expression (Python's and Go's alike) finding ``result[index] op <number>`` in
    a condition written here, the number its one group: how ``delivery explain`` and the
    notification templates read a run's boundaries back."""
    return rf"result\[{index}\] {re.escape(op)} ({CONDITION_NUMBER})"


def _has_evidence() -> str:
    return f"len(result) == {len(EVIDENCE)} && result[{STEPS}] >= {MIN_STEPS}"


def passes(gate: Gate) -> str:
    return (f"{_has_evidence()} && result[{CANARY}] <= {number(gate.accept)} && "
            f"result[{RECENT}] < 0")


def fails(gate: Gate) -> str:
    a, c = number(gate.abort), number(gate.cusum_abort)
    return (f"{_has_evidence()} && "
            f"(result[{JUDGED}] >= {a} || result[{CUSUM}] >= {c})")


def not_failing(gate: Gate) -> str:
    a, c = number(gate.abort), number(gate.cusum_abort)
    return (
        f"len(result) == {len(EVIDENCE)} && (result[{STEPS}] < {MIN_STEPS} || "
        f"(result[{JUDGED}] < {a} && result[{CUSUM}] < {c}))"
    )


def no_shared_incident(gate: Gate) -> str:
    """False only while canary and stable are both bad and the canary is not worse."""
    a = number(gate.abort)
    return (
        f"len(result) < {len(EVIDENCE)} || result[{STEPS}] < {MIN_STEPS} || "
        f"result[{CANARY}] < {a} || result[{STABLE}] < {a} || result[{JUDGED}] >= {a}"
    )
