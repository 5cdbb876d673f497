"""The canary judge: a sequential probability ratio test per gated SLO, run by stock Argo Rollouts.

What is tested. Each request of the canary is a Bernoulli trial, bad with probability ``p``.
From the SLO's error budget ``b`` and the stack's burn rates come two hypotheses:
``good``: p <= passBurnRate x b, and ``bad``: p >= failBurnRate x b (capped below 1). Between
them is an indifference zone where either verdict is acceptable.

The statistic. After ``n`` canary requests with ``x`` bad ones the log likelihood ratio is
``x ln(bad/good) + (n - x) ln((1 - bad)/(1 - good))``. Under ``good`` its exponential is a
nonnegative martingale with mean 1, so by Ville's inequality it ever reaches ``ln(1/alpha)`` with
probability at most ``alpha``, however often it is looked at; symmetrically, under ``bad`` it
ever falls to ``ln(beta)`` with probability at most ``beta``. So the canary

- fails (the rollout aborts) once the statistic reaches ``abort = ln(1/alpha_slo)``;
- passes a gate once it falls to ``accept = ln(beta)``;
- is undecided in between, and without traffic there is no statistic at all: no data is never a
  pass and never a failure.

``alpha`` (false-abort risk) is split evenly over the service's enforced SLOs (Bonferroni), so a
good release is rolled back with probability at most ``alpha`` whatever the number of gates;
``beta`` (missed-regression risk) is not split: a bad release is promoted only if its bad SLO's
own test accepts.

Evidence. Counts accumulate over the canary's whole life: the sum of the last value of every
canary series (selected by ``rollouts_pod_template_hash``) seen within the evidence window.
Nothing is counted twice and nothing is extrapolated; a few requests a minute still add up.

The stable baseline (``baseline: compare``). Stable's error ratio over the same period
(``ps``: stable's rates summed step by step while canary series exist) moves the
hypotheses to ``good = max(good, ps)`` and ``bad = max(bad, margin x ps)``. Until stable has
traffic in that period there is no baseline: the judged statistic is NaN and cannot abort.
While stable is healthy this is the absolute test unchanged; when stable is as bad as the
canary (an incident both share) the canary cannot fail, and a separate background metric pauses
the rollout with a message naming the shared incident: rolling back would not help. A gate
still passes only on the absolute test, so a shared incident never promotes.

What Argo sees. One instant query per gated SLO returns seven samples in a fixed order
(``EVIDENCE``): Prometheus keeps the order of the operands of ``or`` in an instant query, and
every sample carries its own ``evidence`` label so that ``or`` keeps them all. The measurement
value that ``kubectl argo rollouts`` and the AnalysisRun show is therefore
``[judged, canary, canary errors, canary requests, stable errors, stable requests, stable]``.
Conditions check ``len(result) == 7`` first: an empty result (no canary traffic yet) is
inconclusive, never an evaluation error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from delivery.config import AnalysisConfig, Enforcement
from slo import durations
from slo.conventions import CANARY_HASH_ARG, HASH_LABEL, STABLE_HASH_ARG
from slo.model import Events, ResolvedSlo, number
from slo.promql import Matcher

# Positions in the measurement's result vector.
EVIDENCE = (
    "judged",  # statistic against the baseline-adjusted hypotheses: fails at >= abort
    "canary",  # statistic against the SLO's own hypotheses: passes at <= accept
    "canary_errors",
    "canary_requests",
    "stable_errors",
    "stable_requests",
    "stable",  # stable's own statistic: a shared incident when it and the canary's reach abort
)
JUDGED, CANARY, CANARY_ERRORS, CANARY_REQUESTS, STABLE_ERRORS, STABLE_REQUESTS, STABLE = range(7)
EVIDENCE_LABEL = "evidence"
BACKGROUND_INCONCLUSIVE_LIMIT = 1_000_000
# Stable's rates are summed step by step while the canary runs: a step of two scrape
# intervals, each rate over four, so that every rate has at least two samples.
STABLE_STEP_SCRAPES = 2
STABLE_RATE_SCRAPES = 4
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
    hypotheses: Hypotheses
    abort: float  # ln(1/alpha_slo)
    accept: float  # ln(beta)
    alpha: float  # false-abort risk of this SLO's test
    beta: float
    margin: float
    compare: bool  # judged against the stable baseline
    enforcement: Enforcement

    @property
    def name(self) -> str:
        return self.slo.slo.name


def hypotheses(slo: ResolvedSlo, cfg: AnalysisConfig) -> Hypotheses:
    good = round(slo.budget * cfg.pass_burn_rate, 12)
    bad = round(min(slo.budget * cfg.fail_burn_rate, 1 - slo.budget * 1e-3), 12)
    return Hypotheses(good, bad)


def enforcement(slo: ResolvedSlo, cfg: AnalysisConfig) -> Enforcement:
    key = f"{slo.service.name}/{slo.slo.name}"
    return cfg.enforcement_by_slo.get(key, cfg.enforcement)


def gated(slos: list[ResolvedSlo]) -> list[ResolvedSlo]:
    """SLOs that judge canaries: their catalogue entry opts in and their kind can be counted."""
    return [s for s in slos if s.slo.canary_gate and s.events.can_gate]


def gates(slos: list[ResolvedSlo], cfg: AnalysisConfig) -> list[Gate]:
    """The gates of one service: the one place where thresholds are computed."""
    active = [s for s in gated(slos) if enforcement(s, cfg) != "off"]
    enforced = sum(1 for s in active if enforcement(s, cfg) == "enforce")
    alpha = cfg.false_abort_risk / max(enforced, 1)
    beta = cfg.missed_regression_risk
    return [
        Gate(
            slo=s,
            hypotheses=hypotheses(s, cfg),
            abort=math.log(1 / alpha),
            accept=math.log(beta),
            alpha=alpha,
            beta=beta,
            margin=cfg.baseline_margin,
            compare=cfg.baseline == "compare",
            enforcement=enforcement(s, cfg),
        )
        for s in active
    ]


# ---- the arithmetic, in Python (the benchmark and the tests use it; PromQL below mirrors it) --


def llr(errors: float, requests: float, h: Hypotheses) -> float:
    """Log likelihood ratio of ``bad`` against ``good`` after ``requests`` with ``errors``."""
    return errors * math.log(h.bad / h.good) + (requests - errors) * math.log(
        (1 - h.bad) / (1 - h.good)
    )


def adjusted(
    h: Hypotheses, stable_errors: float, stable_requests: float, margin: float
) -> Hypotheses:
    """The hypotheses moved by stable's error ratio over the same period (see module doc)."""
    if stable_requests <= 0:
        return h
    ratio = stable_errors / stable_requests
    bad_cap = max(h.bad, BAD_CAP)
    good_cap = max(h.good, GOOD_CAP_SHARE * bad_cap)
    return Hypotheses(
        good=min(max(ratio, h.good), good_cap), bad=min(max(margin * ratio, h.bad), bad_cap)
    )


def evidence(
    gate: Gate, errors: float, requests: float, stable_errors: float, stable_requests: float
) -> tuple[float, ...] | None:
    """The measurement's result vector, or None where the query returns nothing."""
    if requests <= 0:
        return None
    canary = llr(errors, requests, gate.hypotheses)
    judged = canary
    if gate.compare:
        judged = math.nan
        if stable_requests > 0:
            moved = adjusted(gate.hypotheses, stable_errors, stable_requests, gate.margin)
            judged = llr(errors, requests, moved)
    stable = llr(stable_errors, stable_requests, gate.hypotheses)
    return (judged, canary, errors, requests, stable_errors, stable_requests, stable)


def drift(gate: Gate, error_ratio: float) -> float:
    """The statistic's expected change per request at a constant error ratio: positive moves
    it towards abort, negative towards accept."""
    h = gate.hypotheses
    return error_ratio * math.log(h.bad / h.good) + (1 - error_ratio) * math.log(
        (1 - h.bad) / (1 - h.good)
    )


def expected_requests(gate: Gate, error_ratio: float) -> float:
    """Wald's approximation of the canary requests the test needs at a constant error ratio."""
    step = drift(gate, error_ratio)
    if step > 0:
        return gate.abort / step
    if step < 0:
        return gate.accept / step
    return math.inf


# ---- the PromQL ------------------------------------------------------------------------------


def _hash(arg: str) -> tuple[Matcher, ...]:
    return (Matcher(HASH_LABEL, "=", "{{args.%s}}" % arg),)  # noqa: UP031 (Argo's braces)


def _llr(errors: str, requests: str, good: float | str, bad: float | str) -> str:
    """The statistic in PromQL; fixed hypotheses have their logarithms computed here (PromQL's
    ``ln`` takes vectors only), moved ones are vectors."""
    if isinstance(good, float) and isinstance(bad, float):
        per_error = repr(math.log(bad / good))
        per_success = repr(math.log((1 - bad) / (1 - good)))
        return f"({errors}) * {per_error} + (({requests}) - ({errors})) * {per_success}"
    return (
        f"({errors}) * ln(({bad}) / ({good})) + (({requests}) - ({errors})) * "
        f"ln((1 - ({bad})) / (1 - ({good})))"
    )


def _labelled(expr: str, name: str) -> str:
    return f'label_replace({expr}, "{EVIDENCE_LABEL}", "{name}", "", "")'


def query(gate: Gate, lookback: str, scrape_seconds: int) -> str:
    """The instant query whose result is ``EVIDENCE`` for the canary and stable hashes."""
    canary: Events = gate.slo.events.with_matchers(_hash(CANARY_HASH_ARG))
    stable: Events = gate.slo.events.with_matchers(_hash(STABLE_HASH_ARG))
    requests, errors = canary.counts(lookback)
    present = f"count({canary.total_selector.render()})"
    step_seconds = STABLE_STEP_SCRAPES * scrape_seconds
    step = durations.format_seconds(step_seconds)
    rate_window = durations.format_seconds(STABLE_RATE_SCRAPES * scrape_seconds)

    def while_canary(rate: str) -> str:
        return f"(sum_over_time(({rate} and on() {present})[{lookback}:{step}]) * {step_seconds})"

    stable_requests = while_canary(stable.total(rate_window))
    stable_errors = while_canary(f"({stable.bad(rate_window)} or vector(0))")
    h = gate.hypotheses
    good, bad = number(h.good), number(h.bad)
    judged = _llr(errors, requests, h.good, h.bad)
    if gate.compare:
        ratio = f"({stable_errors} / ({stable_requests} > 0))"
        bad_cap = max(h.bad, BAD_CAP)
        good_cap = max(h.good, GOOD_CAP_SHARE * bad_cap)
        moved_good = f"clamp({ratio}, {good}, {number(good_cap)})"
        moved_bad = f"clamp({number(gate.margin)} * {ratio}, {bad}, {number(bad_cap)})"
        # no stable traffic over the canary's period yet: no baseline, so no verdict to abort on
        judged = f"({_llr(errors, requests, moved_good, moved_bad)} or vector(NaN))"
    parts = {
        "judged": judged,
        "canary": _llr(errors, requests, h.good, h.bad),
        "canary_errors": errors,
        "canary_requests": requests,
        "stable_errors": f"({stable_errors} or vector(0))",
        "stable_requests": f"({stable_requests} or vector(0))",
        "stable": f"({_llr(stable_errors, stable_requests, h.good, h.bad)} or vector(0))",
    }
    assert tuple(parts) == EVIDENCE
    vector = " or ".join(_labelled(expr, name) for name, expr in parts.items())
    return f"({vector}) and on() ({requests} > 0)"


# ---- Argo conditions -------------------------------------------------------------------------


def _has_evidence() -> str:
    return f"len(result) == {len(EVIDENCE)}"


def passes(gate: Gate) -> str:
    return f"{_has_evidence()} && result[{CANARY}] <= {number(gate.accept)}"


def fails(gate: Gate) -> str:
    return f"{_has_evidence()} && result[{JUDGED}] >= {number(gate.abort)}"


def not_failing(gate: Gate) -> str:
    return f"{_has_evidence()} && result[{JUDGED}] < {number(gate.abort)}"


def no_shared_incident(gate: Gate) -> str:
    """False only while canary and stable are both bad and the canary is not worse."""
    a = number(gate.abort)
    return (
        f"len(result) < {len(EVIDENCE)} || result[{CANARY}] < {a} || "
        f"result[{STABLE}] < {a} || result[{JUDGED}] >= {a}"
    )
