"""What real pods do to the evidence: a canary pod whose container restarts mid-gate (its
counters start again, its lazily created error series goes stale), and pods that fail requests
while they start (a cold start), judged with the service's ``warmUp`` and without it."""

from __future__ import annotations

import time
from typing import Any

import pytest

from delivery import judge
from delivery.stack import DeliveryConfig
from e2e.canary.kit import (
    ACCEPT,
    CANARY,
    CANARY_ERRORS,
    CANARY_REQUESTS,
    CUSUM,
    DISPERSION,
    EVIDENCE_LEN,
    JUDGED,
    MIN_STEPS,
    STABLE_ERRORS,
    STABLE_REQUESTS,
    STEPS,
    Runs,
    Timeline,
    boundary,
    canary_hash,
    cusum_boundary,
    failed_metric,
    first_gate,
    measurements,
    pause_reasons,
    phase,
    record,
    release,
    rollout,
    run_phase,
    served,
    spec_image,
    step_index,
    summary,
    vector,
    watch,
    went_through,
)
from e2e.harness import ROOT, Observation, Pulumi, Stack, wait_for
from slo.loader import load_catalogue
from slo.model import resolve_all

INJECTED = 4.0  # errors the restarting canary pod serves before its restart
COLD_START = {"share": 0.01, "seconds": 5}  # 1% of a new pod's requests in its first 5 s
# 3%: about 30 errors per pod, so that the abort without warm-up does not hang on when the first
# measurement allowed to decide falls (at 1% the statistic crosses the abort boundary only while
# the canary has served fewer than about 2,000 requests: a busy machine measures later)
COLD_START_NO_WARM_UP = {"share": 0.03, "seconds": 5}
WARM_UP = "10s"  # the e2e stack's seconds-for-minutes: twice the cold start


def _serving(stack: Stack, service: str, canary: str) -> Observation:
    """The canary's pods (pod-template hash ``canary``) that have served requests."""
    pods = stack.simulated(service)
    mine = [n for n, p in pods.items() if p["hash"] == canary and p["requests"] > 0]
    return Observation(bool(mine), pods, mine)


def _gate_saw_the_errors(stack: Stack, service: str, runs: Runs) -> Observation:
    """Whether the first gate has measured the INJECTED errors (an Inconclusive measurement
    counting them) and is still running, undecided."""
    runs()
    gate = first_gate(runs)
    taken = measurements(gate, "error-rate") if gate else []
    values = [vector(m) for m in taken if m.get("phase") == "Inconclusive"]
    saw = any(len(v) == EVIDENCE_LEN and v[CANARY_ERRORS] == pytest.approx(INJECTED)
              for v in values)
    undecided = gate is not None and run_phase(gate) == "Running"
    return Observation(saw and undecided, f"{[m.get('phase') for m in taken]} "
                       f"{values[-1:]} {summary(rollout(stack, service))}")


def _restarted_mid_gate(stack: Stack, service: str, pod: str, timeline: Timeline, runs: Runs
                       ) -> float:
    """Restart ``pod``'s container while the first gate still runs, and wait until Prometheus
    sees its lazily created error series go stale; the requests it had served before."""
    before = float(stack.simulator(f"restart/{service}/{pod}")[pod])
    timeline.mark("canary pod restarted")
    runs()
    gate = first_gate(runs)
    assert gate is not None and run_phase(gate) == "Running", "restarted after the gate"
    assert stack.simulated(service)[pod]["series"] == ["200"]
    wait_for(
        "the restarted pod's error series to go stale",
        lambda: Observation(
            not stack.query(f'http_requests_total{{pod="{pod}",code="500"}}'), "still there"
        ),
        30,
    )
    timeline.mark("error series stale")
    return before


def test_a_healthy_canary_whose_pod_restarts_mid_gate_is_promoted(
    stack: Stack, pulumi: Pulumi
) -> None:
    """Error series created lazily, as client libraries do (orchestrator's pods expose
    ``code="500"`` only from their first error): the healthy canary's pod serves a few errors,
    then its container restarts while the 10% gate is undecided. Its counters start again from
    0 and its error series is gone (no error comes after). Every request is counted once: the
    errors are neither lost nor counted again, the requests before the restart stay counted,
    and the gate passes on the clean requests after it (issue 24: summing the counters' last
    values aborted such canaries, the stale error series outliving the requests it came
    from)."""
    timeline = Timeline("canary pod restarts mid-gate (lazy error series), promoted")
    service, tag = "orchestrator", "1.8.0"
    runs = Runs(stack, service)
    weights: list[int] = []
    stack.simulator(f"lazy/{service}/1")
    try:
        release(stack, pulumi, service, tag, timeline)
        canary = canary_hash(stack, service)
        pod = wait_for("the canary pod to serve requests",
                       lambda: _serving(stack, service, canary), 60)[0]
        assert stack.simulated(service)[pod]["series"] == ["200"], "not created lazily"
        stack.simulator(f"inject/{service}/{pod}/{INJECTED}")
        timeline.mark("errors injected")
        wait_for("the 10% gate to see the errors, undecided",
                 lambda: _gate_saw_the_errors(stack, service, runs), 60)
        before = _restarted_mid_gate(stack, service, pod, timeline, runs)
        body = watch(stack, service, timeline, {"Healthy", "Degraded"}, 240, weights, runs)
    finally:
        stack.simulator(f"lazy/{service}/0")
    runs()
    assert phase(body) == "Healthy", summary(body)
    assert spec_image(body).endswith(f":{tag}")
    assert went_through(weights) == [10, 25, 50, 100], weights
    gate = first_gate(runs)
    assert gate is not None and run_phase(gate) == "Successful", gate and gate.get("status")
    taken = measurements(gate, "error-rate")
    assert [m["phase"] for m in taken][-1] == "Successful", taken
    assert "Inconclusive" in [m["phase"] for m in taken], taken  # undecided at the restart
    value = record(timeline.scenario, gate, "error-rate")
    requests, errors = served(stack, service, canary)
    assert errors == pytest.approx(INJECTED), errors  # the simulator served exactly these
    assert value[CANARY_ERRORS] == pytest.approx(INJECTED, abs=1e-3), value  # once, not lost
    assert before < value[CANARY_REQUESTS] <= requests + 1e-3, (before, value, requests)
    assert value[CANARY] <= ACCEPT and value[DISPERSION] > 1, value
    timeline.done(
        f"promoted; {INJECTED:.0f} errors and {before:.0f} requests before the restart, gate "
        f"passed at {value[CANARY]:.2f} with {value[CANARY_ERRORS]:.0f} errors in "
        f"{value[CANARY_REQUESTS]:.0f} requests (dispersion {value[DISPERSION]:.2f})"
    )


def cold_start_release(
    stack: Stack, pulumi: Pulumi, service: str, tag: str, timeline: Timeline, runs: Runs,
    weights: list[int], warm_up: str | None, cold_start: dict[str, float] = COLD_START,
    held: bool = False,
) -> dict[str, Any]:
    """Release ``tag``, whose pods fail ``cold_start`` of their first requests, with or without
    the service's ``warmUp``; watch it to its end (with ``held``, or to an inconclusive pause)."""
    stack.simulator(f"coldstart/{service}/{tag}", cold_start)
    try:
        with pulumi.override(services={service: {"warmUp": warm_up}} if warm_up else {}):
            release(stack, pulumi, service, tag, timeline)
            return watch(stack, service, timeline, {"Healthy", "Degraded"}, 240, weights, runs,
                         held=held)
    finally:
        stack.simulator(f"coldstart/{service}/{tag}")  # {}: no cold start for later pods


def test_start_up_errors_are_left_out_of_the_verdict_with_warm_up(
    stack: Stack, pulumi: Pulumi
) -> None:
    """A release whose every pod fails 1% of its requests in its first 5 seconds (about 10
    each at 200 a second: pools and caches filling) and is healthy after, with api-gateway's
    ``warmUp`` at 10s: every pod's first 10 seconds count in the SLO but not in the verdict,
    so the canary is judged on its warm requests and promoted."""
    timeline = Timeline("start-up errors, warmUp 10s: promoted")
    service, tag = "api-gateway", "1.8.0"
    runs = Runs(stack, service)
    weights: list[int] = []
    started = time.monotonic()
    body = cold_start_release(stack, pulumi, service, tag, timeline, runs, weights, WARM_UP)
    runs()
    assert phase(body) == "Healthy", summary(body)
    assert spec_image(body).endswith(f":{tag}")
    assert went_through(weights) == [10, 25, 50, 100], weights
    canary = body["status"]["currentPodHash"]
    requests, errors = served(stack, service, canary)
    assert errors >= 5, (requests, errors)  # the cold starts happened
    gates = runs.of("Step")
    assert [step_index(r) for r in gates] == [2, 5, 8]
    for gate in gates:
        assert run_phase(gate) == "Successful", gate.get("status")
        value = record(timeline.scenario, gate, "error-rate")
        assert value[CANARY_ERRORS] == 0 and value[CANARY_REQUESTS] > 0, value  # warm only
        assert value[CANARY] <= ACCEPT and value[STEPS] >= MIN_STEPS, value
    first = vector(measurements(gates[0], "error-rate")[-1])
    # the SLO's own rules counted the start-up errors
    seconds = int(time.monotonic() - started) + 5
    seen = stack.query(
        f'max_over_time(slo:sli_error:ratio_rate10s{{service="{service}",slo="error-rate"}}'
        f"[{seconds}s])"
    )
    assert seen and float(seen[0]["value"][1]) > 0, seen
    timeline.done(
        f"promoted; {errors:.0f} start-up errors served, none judged; the 10% gate passed "
        f"after {first[CANARY_REQUESTS]:.0f} warm requests"
    )


def test_the_same_start_up_errors_without_warm_up(stack: Stack, pulumi: Pulumi) -> None:
    """The same kind of release without ``warmUp``: start-up errors are evidence, and they come
    as a burst, about 30 errors (3%) in each pod's first five one-second scrape intervals and
    none after. The judge reads errors concentrated in a few intervals through the dispersion
    (both abort tests), and the change-point test while the intervals are few also through the
    abort side's scale (``judge.abort_scale``), so they weigh as a few intervals' worth of
    evidence: whether that reaches an abort boundary depends on when the first measurement
    allowed to decide comes (a busy machine measures later). Nor can the gate pass on them: the
    canary statistic stays above the pass boundary through the 10% gate's 15 measurements.
    Asserted, as the runbook says ("Warm-up"): the release does not get past 10%. Either it is
    aborted there (one statistic at or above its abort boundary), or its gate ends
    inconclusive and the rollout waits for the operator (both below their boundaries at every
    measurement, the canary statistic above the pass boundary). The outcome and its numbers are
    in the e2e report."""
    timeline = Timeline("start-up errors, no warmUp: stopped at 10%")
    service, tag = "api-gateway", "1.9.0"
    runs = Runs(stack, service)
    weights: list[int] = []
    body = cold_start_release(stack, pulumi, service, tag, timeline, runs, weights, None,
                               COLD_START_NO_WARM_UP, held=True)
    runs()
    assert went_through(weights) == [10], weights
    gate = runs.of("Step")[-1]
    abort = boundary(gate, "error-rate", "failureCondition")
    cusum_abort = cusum_boundary(gate, "error-rate")
    if phase(body) == "Degraded":
        assert body["status"].get("abort") is True, summary(body)
        failed = [r for r in runs.seen.values() if run_phase(r) == "Failed"]
        run, value = failed_metric(failed, "error-rate")
        assert value[JUDGED] >= abort or value[CUSUM] >= cusum_abort, value
        assert value[STEPS] >= MIN_STEPS, value
        outcome = (f"aborted at 10%: judged {value[JUDGED]:.2f} (aborts at {abort:.2f}), "
                   f"cusum {value[CUSUM]:.2f} (at {cusum_abort:.2f})")
    else:
        assert phase(body) == "Paused" and not body["status"].get("abort"), summary(body)
        assert "InconclusiveAnalysisRun" in pause_reasons(body), summary(body)
        run = gate
        assert run_phase(run) == "Inconclusive", run.get("status")
        taken = [vector(m) for m in measurements(run, "error-rate")]
        assert taken and all(v[JUDGED] < abort and v[CUSUM] < cusum_abort
                             for v in taken if len(v) == EVIDENCE_LEN), taken
        value = taken[-1]
        assert value[CANARY] > ACCEPT, value  # not a pass either
        outcome = (f"paused at 10%, gate inconclusive: judged {value[JUDGED]:.2f} < {abort:.2f}, "
                   f"cusum {value[CUSUM]:.2f} < {cusum_abort:.2f}, "
                   f"canary {value[CANARY]:.2f} > {ACCEPT:.2f}")
    record(timeline.scenario, run, "error-rate")
    assert 0 < value[CANARY_ERRORS] <= 33, value  # the canary pod's start-up errors only
    assert value[STABLE_ERRORS] == 0 and value[STABLE_REQUESTS] > 0, value
    _statistics_from_the_counts(pulumi, service, value)
    timeline.done(
        f"{outcome}; {value[CANARY_ERRORS]:.1f} start-up errors in "
        f"{value[CANARY_REQUESTS]:.0f} requests, {value[STEPS]:.0f} steps, "
        f"dispersion {value[DISPERSION]:.2f}"
    )


def _statistics_from_the_counts(pulumi: Pulumi, service: str, value: list[float]) -> None:
    """The canary and judged statistics of a measurement recomputed from its counts."""
    # the canary statistic is the log likelihood ratio of its counts, divided by its dispersion;
    # with stable clean and busy, judged is the same under the coarse hypotheses (the
    # change-point statistic sums each step's increment under the hypotheses stable's counts
    # then gave, so it is not a function of these totals)
    slo = next(
        s
        for s in resolve_all(load_catalogue(ROOT / "e2e" / "catalogue.yaml"))
        if s.service.name == service and s.slo.name == "error-rate"
    )
    [gate_spec] = judge.gates([slo], DeliveryConfig.model_validate(pulumi.config["delivery"]))
    expected = (judge.llr(value[CANARY_ERRORS], value[CANARY_REQUESTS], gate_spec.hypotheses)
                / value[DISPERSION])
    assert value[CANARY] == pytest.approx(expected, rel=1e-3), (value, expected)
    coarse = (judge.llr(value[CANARY_ERRORS], value[CANARY_REQUESTS], gate_spec.coarse)
              / value[DISPERSION])
    assert value[JUDGED] == pytest.approx(coarse, rel=1e-3), (value, coarse)


