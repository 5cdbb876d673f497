"""The sequential judge's boundaries and hypotheses, pinned against values computed by hand.

Hand values: budget 0.1% (99.9%), passBurnRate 1, failBurnRate 10 -> good 0.001, bad 0.01;
falseAbortRisk 0.001 split over n enforced SLOs, half of it for the cumulative statistic -> abort
at ln(2 n / 0.001); missedRegressionRisk
0.01 -> pass at ln(0.01) = -4.60517.
"""

import math
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from delivery import judge
from delivery.plan import requests_to_pass_clean
from delivery.stack import AnalysisConfig, DeliveryConfig
from slo.loader import load_catalogue
from slo.model import resolve_all
from slo.rules import by_service

ROOT = Path(__file__).resolve().parent.parent
SLOS = by_service(resolve_all(load_catalogue(ROOT / "catalogue" / "core-services.yaml")))


def gate_for(service: str, slo: str, **cfg) -> judge.Gate:
    gates = judge.gates(SLOS[service], DeliveryConfig(analysis=AnalysisConfig(**cfg)))
    return next(g for g in gates if g.name == slo)


def test_hypotheses_come_from_the_error_budget_and_the_burn_rates():
    gate = gate_for("api-gateway", "error-rate", passBurnRate=1, failBurnRate=10)
    assert gate.hypotheses == judge.Hypotheses(good=0.001, bad=0.01)
    latency = gate_for("api-gateway", "latency", passBurnRate=2, failBurnRate=5)
    assert latency.hypotheses == judge.Hypotheses(good=0.10, bad=0.25)


@pytest.mark.parametrize(
    "service, enforced, abort",
    [("orchestrator", 3, 8.699514748210191), ("agent-runner", 2, 8.294049640102028)],
    ids=["three gated SLOs share the risk", "the gauge SLO does not count"],
)
def test_abort_boundary_is_ln_of_two_over_the_split_false_abort_risk(service, enforced, abort):
    gates = judge.gates(SLOS[service], DeliveryConfig())
    assert len(gates) == enforced
    for gate in gates:
        assert gate.alpha == pytest.approx(0.001 / enforced)
        assert gate.abort == pytest.approx(abort, rel=1e-12)
        assert gate.accept == pytest.approx(-4.605170185988092, rel=1e-12)


def test_advisory_slos_do_not_take_a_share_of_the_false_abort_risk():
    gates = judge.gates(SLOS["orchestrator"], DeliveryConfig(
        analysis=AnalysisConfig(enforcementBySlo={"orchestrator/latency": "advisory"})))
    enforced = [g for g in gates if g.enforcement == "enforce"]
    assert len(enforced) == 2
    assert enforced[0].abort == pytest.approx(8.294049640102028)


def test_off_removes_an_slo_from_judgement():
    gates = judge.gates(SLOS["orchestrator"], DeliveryConfig(
        analysis=AnalysisConfig(enforcementBySlo={"orchestrator/latency": "off"})))
    assert [g.name for g in gates] == ["availability", "error-rate"]


def test_log_likelihood_ratio_by_hand():
    # 3 errors in 1000 requests: 3 ln 10 + 997 ln(0.99 / 0.999)
    h = judge.Hypotheses(0.001, 0.01)
    assert judge.llr(3, 1000, h) == pytest.approx(-2.1149307343760375, rel=1e-12)
    assert judge.llr(0, 0, h) == 0


def test_a_clean_canary_passes_after_509_requests_at_99_9():
    gate = gate_for("api-gateway", "error-rate")
    # ln(0.01) / ln(0.99 / 0.999) = 508.6
    assert requests_to_pass_clean(gate) == 509
    assert judge.llr(0, 508, gate.hypotheses) > gate.accept
    assert judge.llr(0, 509, gate.hypotheses) <= gate.accept


def test_walds_sample_size_at_the_bad_hypothesis():
    gate = gate_for("agent-runner", "error-rate")  # two enforced SLOs: abort at ln(4000)
    # ln(4000) / (0.01 ln 10 + 0.99 ln(0.99 / 0.999))
    assert judge.expected_requests(gate, 0.01) == pytest.approx(589.6307911494304, rel=1e-9)
    assert judge.expected_requests(gate, 0.0) == pytest.approx(requests_to_pass_clean(gate), abs=1)


def steady(errors: float, requests: float, steps: int = 20) -> judge.Counts:
    """Counts spread evenly over ``steps``: no over-dispersion."""
    return judge.Counts(requests, errors, squares=errors**2 / requests, steps=steps)


def test_stable_moves_the_hypotheses_only_when_it_is_worse_than_good():
    h = judge.Hypotheses(0.001, 0.01)
    assert judge.adjusted(h, 0.0005, margin=2) == h  # stable at 0.05%: unchanged
    shared = judge.adjusted(h, 0.01, margin=2)  # stable at 1%, i.e. 10x
    assert shared == judge.Hypotheses(good=0.01, bad=0.02)
    outage = judge.adjusted(h, 1.0, margin=2)  # stable failing everything
    assert 0 < outage.good < outage.bad < 1


def test_stables_ratio_is_read_at_its_upper_bound_which_tightens_with_traffic():
    # 10 errors in 1,000 requests: (11 + 2.33 sqrt(11)) / 1000
    assert judge.stable_ratio(steady(10, 1_000)) == pytest.approx(0.018727, rel=1e-4)
    assert judge.stable_ratio(steady(1_000, 100_000)) == pytest.approx(0.01075, rel=1e-3)
    # a stable whose errors come in bursts is known less precisely
    bursty = judge.Counts(1_000, 10, squares=100 / 50, steps=20)  # all 10 errors in one step
    assert judge.stable_ratio(bursty) > judge.stable_ratio(steady(10, 1_000))


def test_independent_errors_keep_the_dispersion_at_one():
    assert judge.dispersion(steady(10, 10_000)) == 1.0
    assert judge.dispersion(judge.Counts(10_000, 0, 0, 20)) == 1.0  # no errors
    assert judge.dispersion(judge.Counts(100, 100, 100, 20)) == 1.0  # only errors


def test_a_burst_counts_as_about_one_event_not_as_its_size():
    # 20 steps of 50 requests; all 10 errors in one step: Pearson X2 = (2 - 0.01 * 10) / ...
    burst = judge.Counts(1_000, 10, squares=10**2 / 50, steps=20)
    q = 10 / 1_000
    pearson = (2 - 10**2 / 1_000) / (q * (1 - q))
    assert judge.dispersion(burst) == pytest.approx((pearson + judge.NU) / (19 + judge.NU))
    assert 8 < judge.dispersion(burst) < 10
    gate = gate_for("api-gateway", "error-rate")
    values = judge.evidence(gate, burst, steady(50, 100_000))
    assert values is not None
    independent = judge.llr(10, 1_000, gate.hypotheses)
    assert independent >= gate.abort  # ten independent errors would abort
    assert values[judge.CANARY] == pytest.approx(independent / judge.dispersion(burst))
    assert values[judge.JUDGED] < gate.abort  # one burst does not


def test_a_canary_as_bad_as_stable_cannot_fail_but_is_flagged_as_a_shared_incident():
    gate = gate_for("api-gateway", "error-rate")
    both_bad = judge.evidence(gate, steady(100, 10_000), steady(1_000, 100_000))  # both at 1%
    assert both_bad is not None
    judged, canary, *_ = both_bad
    stable = both_bad[judge.STABLE]
    assert canary >= gate.abort and stable >= gate.abort  # each is bad on its own
    assert judged < gate.abort  # but the canary is not worse than stable: no abort


def test_a_shared_incident_with_as_little_stable_traffic_as_canary_is_not_an_abort():
    gate = gate_for("api-gateway", "error-rate")
    # stable saw fewer errors than the canary by chance: 1% and 0.7% on 3,000 requests each
    values = judge.evidence(gate, steady(30, 3_000), steady(21, 3_000))
    assert values is not None
    assert values[judge.CANARY] >= gate.abort and values[judge.STABLE] >= gate.abort
    assert values[judge.JUDGED] < gate.abort


def test_a_bad_canary_beside_a_healthy_stable_fails_almost_as_fast_as_without_a_baseline():
    gate = gate_for("api-gateway", "error-rate")
    values = judge.evidence(gate, steady(20, 1_000), steady(50, 100_000))  # 2% beside 0.05%
    assert values is not None
    # stable's bound (0.05% and its interval) stays below good: the hypotheses are not moved
    assert judge.moved(gate, steady(50, 100_000)) == gate.hypotheses
    assert values[judge.JUDGED] == pytest.approx(values[judge.CANARY], rel=1e-12)
    assert values[judge.JUDGED] >= gate.abort


def test_the_cumulative_statistic_reads_coarse_hypotheses_at_least_10x_the_budget():
    tight = gate_for("api-gateway", "error-rate", failBurnRate=2)
    assert tight.hypotheses == judge.Hypotheses(0.001, 0.002)
    assert tight.coarse == judge.Hypotheses(0.001, 0.01)
    loose = gate_for("api-gateway", "error-rate", failBurnRate=20)
    assert loose.coarse == loose.hypotheses == judge.Hypotheses(0.001, 0.02)


def test_a_gross_regression_aborts_at_the_minimum_of_steps_on_the_unscaled_coarse_statistic():
    """50x a 0.1% budget at 25 requests a step: at MIN_STEPS the coarse statistic is past its
    boundary, while the SLO's own at 2x, scaled for a dispersion read from 6 steps, is not."""
    gate = gate_for("api-gateway", "error-rate", failBurnRate=2)
    canary = steady(8, 150, steps=judge.MIN_STEPS)
    values = judge.evidence(gate, canary, steady(50, 100_000), cusum=judge.llr(8, 150,
                                                                                gate.hypotheses))
    assert values is not None
    assert values[judge.JUDGED] == pytest.approx(judge.llr(8, 150, gate.coarse))
    assert values[judge.JUDGED] >= gate.abort
    assert values[judge.CUSUM] < gate.cusum_abort


def test_a_moderate_burn_leans_good_under_the_coarse_hypotheses_and_bad_under_the_tight_ones():
    gate = gate_for("api-gateway", "error-rate", failBurnRate=2)
    canary = steady(30, 10_000, steps=200)  # 3x the budget
    values = judge.evidence(gate, canary, steady(50, 100_000, steps=200))
    assert values is not None
    assert values[judge.JUDGED] < 0 < values[judge.CANARY]
    # judged inline (no running sums), the change-point statistic is the tight cumulative one
    assert values[judge.CUSUM] == pytest.approx(
        values[judge.CANARY] / judge.abort_scale(200, gate.cusum_abort))


@given(d=st.floats(0.5, 500), h=st.floats(1, 20))
def test_abort_scale_brings_the_mean_crossing_probability_back_to_e_to_the_minus_h(d, h):
    """(1 + 2hc/d)^(-d/2) is the mean of e^(-h c W) over W ~ chi2_d / d (module docstring)."""
    c = judge.abort_scale(d + 1 - judge.NU, h)
    assert (-d / 2) * math.log1p(2 * h * c / d) == pytest.approx(-h, rel=1e-9)


def test_abort_scale_falls_towards_one_as_steps_accumulate():
    h = math.log(6000)  # dev's abort boundary
    scales = [judge.abort_scale(k, h) for k in (6, 8, 20, 60, 600)]
    assert scales == sorted(scales, reverse=True)
    assert 3.9 < scales[1] < 4 and 1.5 < scales[2] < 1.7 and 1.1 < scales[3] < 1.2
    assert 1 < scales[-1] < 1.02


def test_only_the_change_point_statistic_is_scaled():
    gate = gate_for("api-gateway", "error-rate")
    canary, stable = steady(3, 2_000, steps=8), steady(50, 100_000, steps=8)
    values = judge.evidence(gate, canary, stable, cusum=4.0, recent=-1.0)
    assert values is not None
    phi = values[judge.DISPERSION]
    assert values[judge.CANARY] == pytest.approx(judge.llr(3, 2_000, gate.hypotheses) / phi)
    assert values[judge.RECENT] == pytest.approx(-1.0 / phi)
    assert values[judge.CUSUM] == pytest.approx(
        4.0 / phi / judge.abort_scale(8, gate.cusum_abort))
    coarse = judge.adjusted(gate.coarse, judge.stable_ratio(stable), gate.margin)
    assert values[judge.JUDGED] == pytest.approx(judge.llr(3, 2_000, coarse) / phi)


def test_no_canary_requests_is_no_evidence():
    gate = gate_for("api-gateway", "error-rate")
    assert judge.evidence(gate, judge.Counts(0, 0), steady(10, 1000)) is None


def test_hypotheses_must_be_ordered():
    with pytest.raises(ValueError):
        judge.Hypotheses(0.01, 0.001)


def test_without_stable_traffic_in_the_canarys_period_the_judged_statistic_cannot_abort():
    import math

    gate = gate_for("api-gateway", "error-rate")
    values = judge.evidence(gate, steady(50, 1_000), judge.Counts(0, 0))  # no baseline yet
    assert values is not None
    assert math.isnan(values[judge.JUDGED])
    assert values[judge.CANARY] >= gate.abort  # its own evidence is still shown
    ignoring = gate_for("api-gateway", "error-rate", baseline="ignore")
    no_baseline = judge.evidence(ignoring, steady(50, 1_000), judge.Counts(0, 0))
    assert no_baseline is not None and no_baseline[judge.JUDGED] >= ignoring.abort


def test_no_verdict_before_the_minimum_of_steps():
    gate = gate_for("api-gateway", "error-rate")
    early = f"len(result) == {len(judge.EVIDENCE)} && result[{judge.STEPS}] >= {judge.MIN_STEPS}"
    assert judge.passes(gate).startswith(early) and judge.fails(gate).startswith(early)


def test_a_regression_that_starts_late_is_judged_on_the_evidence_since_it_started():
    """Prod's error-rate gate (30 s steps, restart points every 5 min): 40 clean minutes at
    200 requests a step, then 10x the budget at 400 a step. The cumulative statistic is still
    far below its abort boundary when the change-point statistic, which reads only the steps
    since the restart point before the change, aborts."""
    from delivery.stack import load_stack_file

    stack = load_stack_file(ROOT / "Pulumi.prod.yaml")
    gate = next(g for g in judge.gates(SLOS["api-gateway"], stack.delivery)
                if g.name == "error-rate")
    restart_every = judge.RESTART_SECONDS // 30
    steps = [(200, 0)] * 80 + [(400, 4)] * 40  # 1% = 10x a 0.1% budget from minute 40
    running, restarts, total = 0.0, [0.0], judge.Counts(0, 0)
    stable = judge.Counts(100_000, 20, 20 / 1000, 100)  # a healthy stable: 0.02%
    aborted_at = None
    for k, (n, x) in enumerate(steps, start=1):
        running += judge.increments(gate, judge.Counts(n, x), stable)[1]
        total = judge.Counts(total.requests + n, total.errors + x)
        if k % restart_every == 0:
            restarts.append(running)
        cusum = running - min(restarts)
        if cusum >= gate.cusum_abort and aborted_at is None:
            aborted_at = k
            cumulative = judge.llr(total.errors, total.requests,
                                   judge.moved(gate, stable) or gate.hypotheses)
    assert aborted_at is not None and 80 < aborted_at <= 80 + 20  # within 10 minutes
    assert cumulative < 0 < gate.abort  # the whole life still looks good


@pytest.mark.parametrize("stack, span, delay", [("dev", 30, 90), ("prod", 210, 0), ("e2e", 1, 2)])
def test_a_gate_first_looks_when_its_recent_span_holds_only_its_weights_traffic(stack, span,
                                                                                 delay):
    """dev: 30 s steps read 10 s back, so traffic is recorded within 70 s; its 30 s pause cannot
    hold a step of it, so the first look waits 90 s (70 s + a step - the pause, to the gate's
    30 s beat). prod: 5 min pauses, recent reads 3.5 min of them, no wait. The rendered gate
    carries the wait as Argo's ``initialDelay``."""
    from delivery.analysis import gate_template
    from delivery.stack import load_stack_file

    cfg = load_stack_file(ROOT / f"Pulumi.{stack}.yaml")
    looks = judge.gate_looks(cfg.delivery, cfg.prometheus.scrape_interval)
    assert (looks.span, looks.delay) == (span, delay)
    template = gate_template("api-gateway", "x", judge.gates(SLOS["api-gateway"], cfg.delivery),
                             cfg.delivery, cfg.prometheus)
    delays = {m.get("initialDelay") for m in template["spec"]["metrics"]}
    assert delays == ({f"{delay}s"} if delay else {None})


@given(pause=st.integers(1, 900), step=st.sampled_from([1, 5, 10, 15, 30, 60]),
       interval=st.sampled_from([1, 2, 10, 30, 60]))
def test_the_recent_span_at_a_first_look_never_reaches_before_the_weight(pause, step, interval):
    """Traffic served at ``s`` is recorded by ``s + 2 steps + settle``; a first look at ``s +
    pause + delay`` reading ``span`` back must therefore have ``pause + delay >= span + lag``,
    with a span of whole steps and a delay on the gate's beat, and no wait beyond one beat."""
    delivery = DeliveryConfig(pause=f"{pause}s",
                              analysis=AnalysisConfig(interval=f"{interval}s"))
    looks = judge.gate_looks(delivery, f"{step}s")
    lag = 2 * step + judge.settle_seconds(step)
    assert pause + looks.delay >= looks.span + lag
    assert looks.span >= step and looks.span % step == 0
    assert looks.delay % interval == 0
    assert looks.delay < max(0, looks.span + lag - pause) + interval


@pytest.mark.parametrize("slo, fail, burn", [
    ("error-rate", 10, None), ("error-rate", 3, None), ("error-rate", 3, 10),
    ("latency", 2, None), ("latency", 2, 10), ("availability", 2, 20)])
def test_late_requests_bound_a_pass_on_a_span_that_leans_bad(slo, fail, burn):
    """A gate passes a weight that turned bad only on a look whose ``recent`` sum is below 0:
    with ``late_requests(gate, 1, ratio)`` requests in the span that happens with probability at
    most beta, checked exactly on the binomial (the sum is below 0 below a count of errors)."""
    from scipy.stats import binom

    gate = gate_for("api-gateway", slo, passBurnRate=1, failBurnRate=fail)
    ratio = gate.hypotheses.bad if burn is None else burn * gate.slo.budget
    n = judge.late_requests(gate, 1, ratio)
    assert n is not None
    per_error, per_success = judge.coefficients(gate.hypotheses)
    below = math.ceil(n * -per_success / (per_error - per_success)) - 1  # errors with sum < 0
    assert binom.cdf(below, n, ratio) <= gate.beta
    if burn is not None:  # a bigger regression needs fewer requests than the bad hypothesis
        assert n < judge.late_requests(gate, 1)


def test_a_ratio_that_does_not_lean_bad_has_no_late_requests():
    gate = gate_for("api-gateway", "latency", passBurnRate=1, failBurnRate=2)
    assert judge.late_requests(gate, 60, gate.hypotheses.good) is None
    assert judge.late_requests(gate, 60, 1.0) == 1
