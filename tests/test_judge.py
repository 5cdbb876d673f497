"""The sequential judge's boundaries and hypotheses, pinned against values computed by hand.

Hand values: budget 0.1% (99.9%), passBurnRate 1, failBurnRate 10 -> good 0.001, bad 0.01;
falseAbortRisk 0.001 split over n enforced SLOs -> abort at ln(n / 0.001); missedRegressionRisk
0.01 -> pass at ln(0.01) = -4.60517.
"""

from pathlib import Path

import pytest

from delivery import judge
from delivery.config import AnalysisConfig
from delivery.docs import requests_to_pass_clean
from slo.loader import load_catalogue
from slo.model import resolve_all
from slo.rules import by_service

ROOT = Path(__file__).resolve().parent.parent
SLOS = by_service(resolve_all(load_catalogue(ROOT / "catalogue" / "core-services.yaml")))


def gate_for(service: str, slo: str, **cfg) -> judge.Gate:
    gates = judge.gates(SLOS[service], AnalysisConfig(**cfg))
    return next(g for g in gates if g.name == slo)


def test_hypotheses_come_from_the_error_budget_and_the_burn_rates():
    gate = gate_for("api-gateway", "error-rate", passBurnRate=1, failBurnRate=10)
    assert gate.hypotheses == judge.Hypotheses(good=0.001, bad=0.01)
    latency = gate_for("api-gateway", "latency", passBurnRate=2, failBurnRate=5)
    assert latency.hypotheses == judge.Hypotheses(good=0.10, bad=0.25)


@pytest.mark.parametrize(
    "service, enforced, abort",
    [("orchestrator", 3, 8.006367567650248), ("agent-runner", 2, 7.600902459542083)],
    ids=["three gated SLOs share the risk", "the gauge SLO does not count"],
)
def test_abort_boundary_is_ln_of_one_over_the_split_false_abort_risk(service, enforced, abort):
    gates = judge.gates(SLOS[service], AnalysisConfig())
    assert len(gates) == enforced
    for gate in gates:
        assert gate.alpha == pytest.approx(0.001 / enforced)
        assert gate.abort == pytest.approx(abort, rel=1e-12)
        assert gate.accept == pytest.approx(-4.605170185988092, rel=1e-12)


def test_advisory_slos_do_not_take_a_share_of_the_false_abort_risk():
    gates = judge.gates(
        SLOS["orchestrator"], AnalysisConfig(enforcementBySlo={"orchestrator/latency": "advisory"})
    )
    enforced = [g for g in gates if g.enforcement == "enforce"]
    assert len(enforced) == 2
    assert enforced[0].abort == pytest.approx(7.600902459542083)


def test_off_removes_an_slo_from_judgement():
    gates = judge.gates(
        SLOS["orchestrator"], AnalysisConfig(enforcementBySlo={"orchestrator/latency": "off"})
    )
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
    gate = gate_for("agent-runner", "error-rate")  # two enforced SLOs: abort at ln(2000)
    # ln(2000) / (0.01 ln 10 + 0.99 ln(0.99 / 0.999))
    assert judge.expected_requests(gate, 0.01) == pytest.approx(540.3543896096476, rel=1e-9)
    assert judge.expected_requests(gate, 0.0) == pytest.approx(requests_to_pass_clean(gate), abs=1)


def test_stable_moves_the_hypotheses_only_when_it_is_worse_than_good():
    h = judge.Hypotheses(0.001, 0.01)
    assert judge.adjusted(h, 5, 10_000, margin=2) == h  # stable at 0.05%: unchanged
    assert judge.adjusted(h, 0, 0, margin=2) == h  # no stable traffic: unchanged
    shared = judge.adjusted(h, 100, 10_000, margin=2)  # stable at 1%, i.e. 10x
    assert shared == judge.Hypotheses(good=0.01, bad=0.02)
    outage = judge.adjusted(h, 10_000, 10_000, margin=2)  # stable failing everything
    assert 0 < outage.good < outage.bad < 1


def test_a_canary_as_bad_as_stable_cannot_fail_but_is_flagged_as_a_shared_incident():
    gate = gate_for("api-gateway", "error-rate")
    both_bad = judge.evidence(gate, 100, 10_000, 1_000, 100_000)  # both at 1%
    assert both_bad is not None
    judged, canary, *_, stable = both_bad
    assert canary >= gate.abort and stable >= gate.abort  # each is bad on its own
    assert judged < gate.abort  # but the canary is not worse than stable: no abort


def test_a_bad_canary_beside_a_healthy_stable_fails_as_fast_as_without_a_baseline():
    gate = gate_for("api-gateway", "error-rate")
    values = judge.evidence(gate, 20, 1_000, 50, 100_000)  # canary 2%, stable 0.05%
    assert values is not None
    assert values[judge.JUDGED] == values[judge.CANARY] >= gate.abort


def test_no_canary_requests_is_no_evidence():
    assert judge.evidence(gate_for("api-gateway", "error-rate"), 0, 0, 10, 1000) is None


def test_hypotheses_must_be_ordered():
    with pytest.raises(ValueError):
        judge.Hypotheses(0.01, 0.001)


def test_without_stable_traffic_in_the_canarys_period_the_judged_statistic_cannot_abort():
    import math

    gate = gate_for("api-gateway", "error-rate")
    values = judge.evidence(gate, 50, 1_000, 0, 0)  # a bad canary, but no baseline yet
    assert values is not None
    assert math.isnan(values[judge.JUDGED])
    assert values[judge.CANARY] >= gate.abort  # its own evidence is still shown
    ignoring = gate_for("api-gateway", "error-rate", baseline="ignore")
    assert judge.evidence(ignoring, 50, 1_000, 0, 0)[judge.JUDGED] >= ignoring.abort
