"""The plan's operating characteristic (delivery/oc.py) against a simulation of the same model."""

from pathlib import Path

import numpy as np

from delivery import judge, oc
from delivery.plan import plan
from delivery.stack import go_seconds, load_stack_file
from slo.loader import load_catalogue
from slo.model import resolve_all
from slo.rules import by_service

ROOT = Path(__file__).resolve().parent.parent
STACK = load_stack_file(ROOT / "Pulumi.prod.yaml")
SLOS = by_service(resolve_all(load_catalogue(ROOT / STACK.catalogue)))


def simulate(gate: judge.Gate, rate: float, ratio: float, runs: int, seed: int) -> oc.Outcome:
    """The first gate, run by run: binomial errors per look, the abort boundaries at every look
    (the coarse statistic at ``abort``; the SLO's own divided by the abort side's scale at the
    scrape intervals elapsed at ``cusum_abort``), the pass boundary at the gate's looks."""
    cfg = STACK.delivery.analysis
    interval = go_seconds(cfg.interval)
    per_look = round(rate * interval / 60)
    pause_looks = go_seconds(STACK.delivery.pause) // interval
    per_error, per_success = judge.coefficients(gate.hypotheses)
    errors = np.random.default_rng(seed).binomial(
        per_look, ratio, (runs, pause_looks + cfg.max_measurements)).cumsum(axis=1)
    n = per_look * np.arange(1, errors.shape[1] + 1)
    statistic = errors * per_error + (n - errors) * per_success
    coarse_error, coarse_success = judge.coefficients(gate.coarse)
    coarse = errors * coarse_error + (n - errors) * coarse_success
    steps = n / per_look * interval / go_seconds(STACK.prometheus.scrape_interval)
    scale = np.array([judge.abort_scale(k, gate.cusum_abort) for k in steps])
    over = (statistic / scale >= gate.cusum_abort) | (coarse >= gate.abort)
    under = (statistic <= gate.accept) & (np.arange(errors.shape[1]) >= pause_looks)
    big = errors.shape[1]
    first_over = np.where(over.any(axis=1), over.argmax(axis=1), big)
    first_under = np.where(under.any(axis=1), under.argmax(axis=1), big)
    return oc.Outcome(abort=float(np.mean(first_over < first_under)),
                      passed=float(np.mean(first_under < first_over)))


def test_the_first_gate_outcome_is_the_simulated_one():
    gate = next(g for g in judge.gates(SLOS["agent-runner"], STACK.delivery)
                if g.name == "error-rate")
    for burn in (3.0, 5.0):  # where both outcomes are likely
        exact = oc.first_gate(gate, STACK, 40, burn * gate.slo.budget)
        seen = simulate(gate, 40, burn * gate.slo.budget, 20_000, int(burn))
        # 20,000 runs: a standard error of at most 0.35 points
        assert abs(exact.abort - seen.abort) < 0.015, (burn, exact, seen)
        assert abs(exact.passed - seen.passed) < 0.015, (burn, exact, seen)


def test_the_smallest_burn_caught_is_where_the_abort_probability_reaches_99_percent():
    gate = next(g for g in judge.gates(SLOS["api-gateway"], STACK.delivery)
                if g.name == "availability")
    caught = oc.smallest_caught(gate, STACK, 600)
    assert caught is not None
    budget = gate.slo.budget
    assert oc.first_gate(gate, STACK, 600, caught * budget).abort >= oc.CAUGHT
    assert oc.first_gate(gate, STACK, 600, (caught - 0.2) * budget).abort < oc.CAUGHT


def test_the_plan_prints_what_each_gate_catches_at_the_stated_traffic():
    gates = judge.stack_gates(SLOS["api-gateway"], STACK, "api-gateway")
    lines = plan("api-gateway", STACK, gates).lines()
    table = [line for line in lines if "by the end of the first gate at 600 canary" in line]
    assert len(table) == 3 and all("10x: abort" in line for line in table), lines
    bare = STACK.model_copy(update={"services": {
        name: s.model_copy(update={"expected_requests_per_minute": None})
        for name, s in STACK.services.items()}})
    gates = judge.stack_gates(SLOS["api-gateway"], bare, "api-gateway")
    lines = plan("api-gateway", bare, gates).lines()
    assert any("no expectedRequestsPerMinute" in line for line in lines), lines
