"""Releases that are promoted: a good one through every step, one held while it has too little
traffic, one held at the manual gate until promoted by hand, one with occasional errors at low
traffic, and a slow one whose latency gate is advisory."""

from __future__ import annotations

import time
from typing import Any

import pytest

from e2e.canary.kit import (
    ABORT,
    ACCEPT,
    EVIDENCE,
    EVIDENCE_LEN,
    LOW_RPS,
    RPS,
    SERVICES,
    SLOW,
    Behaviour,
    Runs,
    Timeline,
    boundary,
    kind,
    measurements,
    notified,
    phase,
    record,
    release,
    results,
    rollout,
    run_phase,
    spec_image,
    step_index,
    summary,
    vector,
    watch,
    weight,
    went_through,
)
from e2e.harness import Observation, Pulumi, Stack, wait_for
from e2e.inbox import Inbox


def evidence_order(stack: Stack, run: dict[str, Any], metric: str) -> list[str]:
    """The ``evidence`` labels of the metric's query, asked of Prometheus directly with the
    run's arguments: the order Argo reads the values in."""
    spec = next(m for m in run["spec"]["metrics"] if m["name"] == metric)
    query = spec["provider"]["prometheus"]["query"]
    for arg in run["spec"].get("args") or []:
        query = query.replace("{{args.%s}}" % arg["name"], arg["value"])  # noqa: UP031
    return [r["metric"].get("evidence", "") for r in stack.query(query)]


def test_a_good_release_goes_10_25_50_100_and_ends_healthy(
    stack: Stack, pulumi: Pulumi, inbox: Inbox
) -> None:
    timeline = Timeline("good release promoted")
    mark = inbox.mark()
    release(stack, pulumi, "orchestrator", "1.1.0", timeline)
    weights: list[int] = []
    runs = Runs(stack, "orchestrator")
    body = watch(stack, "orchestrator", timeline, {"Healthy", "Degraded"}, 240, weights, runs)
    runs()
    assert phase(body) == "Healthy", summary(body)
    assert spec_image(body).endswith(":1.1.0")
    assert body["status"]["stableRS"] == body["status"]["currentPodHash"]
    assert went_through(weights) == [10, 25, 50, 100], weights
    gates = runs.of("Step")
    assert [step_index(r) for r in gates] == [2, 5, 8], [r["metadata"]["name"] for r in gates]
    for run in gates:
        assert run_phase(run) == "Successful", run.get("status")
        for metric in ("error-rate", "latency"):
            value = record(timeline.scenario, run, metric)
            assert len(value) == EVIDENCE_LEN, value
            assert value[1] <= boundary(run, metric, "successCondition") == pytest.approx(ACCEPT)
            assert value[2] == 0 and value[3] > 0, value  # no errors, some requests
    note = notified(inbox, pulumi, mark, "orchestrator", "completed", "PROMOTED", "error-rate")
    assert note.slos()["error-rate"]["phase"] == "Successful", note.body
    # the timed pause steps (10%, 25%, 50%) paused the rollout three times: nobody is told
    assert {(n.event, n.key) for n in inbox.since(mark, "orchestrator")} == {
        ("completed", note.key)}
    first = gates[0]
    assert evidence_order(stack, first, "error-rate") == list(EVIDENCE)
    clean = vector(measurements(first, "error-rate")[-1])
    timeline.done(
        f"Healthy at 1.1.0 via 10, 25, 50, 100; 10% gate passed after "
        f"{len(measurements(first, 'error-rate'))} measurement(s) at "
        f"{clean[3]:.0f} canary requests"
    )


def test_too_little_traffic_is_inconclusive_then_proceeds(stack: Stack, pulumi: Pulumi) -> None:
    timeline = Timeline("no traffic: held, then proceeds")
    runs = Runs(stack, "orchestrator")
    stack.set_rate("orchestrator", 0)
    try:
        release(stack, pulumi, "orchestrator", "1.2.0", timeline)

        def gate_inconclusive() -> Observation:
            runs()
            gates = runs.of("Step")
            taken = [m for r in gates for m in measurements(r, "error-rate")]
            empty = [m for m in taken if m.get("phase") == "Inconclusive" and vector(m) == []]
            # several rounds of the gate without a verdict: no canary requests, no statistic
            return Observation(len(empty) >= 5, f"{len(taken)} gate measurements")

        wait_for("inconclusive gate measurements without traffic", gate_inconclusive, 60)
        timeline.mark("inconclusive without traffic")
        body = rollout(stack, "orchestrator")
        assert phase(body) not in ("Degraded", "Healthy"), summary(body)
        assert weight(body) == 10, summary(body)
        assert body["status"]["stableRS"] != body["status"]["currentPodHash"]
    finally:
        stack.set_rate("orchestrator", RPS)
    timeline.mark("traffic restored")
    body = watch(stack, "orchestrator", timeline, {"Healthy", "Degraded"}, 240, also=runs)
    runs()
    assert phase(body) == "Healthy", summary(body)
    assert spec_image(body).endswith(":1.2.0")
    first = runs.of("Step")[0]
    assert run_phase(first) == "Successful"
    taken = measurements(first, "error-rate")
    assert [m["phase"] for m in taken[:5]] == ["Inconclusive"] * 5
    assert taken[-1]["phase"] == "Successful"
    record(timeline.scenario, first, "error-rate")
    timeline.done(
        f"held at 10% ({sum(m['phase'] == 'Inconclusive' for m in taken)} inconclusive gate "
        "measurements), promoted once traffic came"
    )


def test_manual_gate_holds_until_promoted(stack: Stack, pulumi: Pulumi, inbox: Inbox) -> None:
    timeline = Timeline("manual gate")
    mark = inbox.mark()
    with pulumi.override(delivery={"manualGate": True}):
        release(stack, pulumi, "api-gateway", "1.3.0", timeline)

        def at_gate() -> Observation:
            body = rollout(stack, "api-gateway")
            status = body.get("status", {})
            paused = any(
                c.get("reason") == "CanaryPauseStep" for c in status.get("pauseConditions") or []
            )
            last = (
                status.get("currentStepIndex")
                == len(body["spec"]["strategy"]["canary"]["steps"]) - 1
            )
            return Observation(paused and last, summary(body))

        wait_for("the rollout to hold at the manual gate", at_gate, 180)
        timeline.mark("holding at the gate")
        time.sleep(3)  # holding means: still there after a while
        assert at_gate().ok
        notified(inbox, pulumi, mark, "api-gateway", "paused", "waits at its manual gate")
        stack.rollouts_cli("promote", "api-gateway", "-n", "api")
        timeline.mark("promoted by hand")
        body = watch(stack, "api-gateway", timeline, {"Healthy", "Degraded"}, 120)
        assert phase(body) == "Healthy" and spec_image(body).endswith(":1.3.0"), summary(body)
        notified(inbox, pulumi, mark, "api-gateway", "completed", "PROMOTED", "error-rate")
    timeline.done("held at the gate (one paused notification), completed after promote")


def test_a_good_release_with_occasional_errors_at_low_traffic_is_promoted(
    stack: Stack, pulumi: Pulumi
) -> None:
    """Half the error budget, at a rate where the gate needs several measurements."""
    timeline = Timeline("0.5x-budget release at low traffic promoted")
    service = "orchestrator"
    runs = Runs(stack, service)
    weights: list[int] = []
    stack.set_rate(service, LOW_RPS)
    try:
        release(stack, pulumi, service, "1.6.0", timeline, Behaviour(errors=0.0005))
        body = watch(stack, service, timeline, {"Healthy", "Degraded"}, 240, weights, runs)
    finally:
        stack.set_rate(service, RPS)
    runs()
    assert phase(body) == "Healthy", summary(body)
    assert spec_image(body).endswith(":1.6.0")
    assert went_through(weights) == [10, 25, 50, 100], weights
    first = runs.of("Step")[0]
    assert step_index(first) == 2 and run_phase(first) == "Successful", first.get("status")
    taken = measurements(first, "error-rate")
    assert len(taken) > 1, taken
    assert [m["phase"] for m in taken] == ["Inconclusive"] * (len(taken) - 1) + ["Successful"]
    value = record(timeline.scenario, first, "error-rate")
    assert len(value) == EVIDENCE_LEN and value[1] <= ACCEPT, value
    assert value[2] > 0, value  # it had errors, and passed anyway
    assert value[2] / value[3] == pytest.approx(0.0005, rel=0.05), value
    for run in runs.of("Step")[1:]:
        record(timeline.scenario, run, "error-rate")
        assert run_phase(run) == "Successful"
    timeline.done(
        f"promoted; the 10% gate took {len(taken)} measurements, passing at "
        f"{value[1]:.2f} <= {ACCEPT:.2f} with {value[2]:.2f} errors in {value[3]:.0f} requests"
    )


def test_an_advisory_gate_is_measured_but_never_aborts(stack: Stack, pulumi: Pulumi) -> None:
    """orchestrator/latency advisory, the canary slow: its dry-run metric fails in the
    background run, the error-rate gate promotes the release."""
    timeline = Timeline("advisory gate measured, not enforced")
    service = "orchestrator"
    runs = Runs(stack, service)
    weights: list[int] = []
    with pulumi.override(
        delivery={"analysis": {"enforcementBySlo": {"orchestrator/latency": "advisory"}}}
    ):
        release(stack, pulumi, service, "1.7.0", timeline, SLOW)
        namespace = SERVICES[service]
        gate = stack.get("analysistemplate", f"{service}-slo-gate", namespace)
        assert [m["name"] for m in gate["spec"]["metrics"]] == ["error-rate"]
        background = stack.get("analysistemplate", f"{service}-slo-background", namespace)
        assert background["spec"]["dryRun"] == [
            {"metricName": "latency"},
            {"metricName": "latency-shared-incident"},
        ]
        body = watch(stack, service, timeline, {"Healthy", "Degraded"}, 240, weights, runs)
    runs()
    assert phase(body) == "Healthy", summary(body)
    assert spec_image(body).endswith(":1.7.0")
    assert went_through(weights) == [10, 25, 50, 100], weights
    for run in runs.of("Step"):
        assert list(results(run)) == ["error-rate"] and run_phase(run) == "Successful"
    failed_seen = [
        r
        for r in runs.history
        if kind(r) == "Background" and results(r).get("latency", {}).get("phase") == "Failed"
    ]
    assert failed_seen, "the advisory latency metric never failed"
    snapshot = failed_seen[-1]
    assert run_phase(snapshot) not in ("Failed", "Error", "Inconclusive"), snapshot["status"]
    dry = snapshot["status"].get("dryRunSummary") or {}
    assert dry.get("failed", 0) >= 1 and dry.get("count") == 2, dry
    value = record(timeline.scenario, snapshot, "latency")
    assert len(value) == EVIDENCE_LEN and value[0] >= ABORT, value
    final = runs.of("Background")[-1]
    assert run_phase(final) == "Successful", final.get("status")
    timeline.done(f"promoted; dry run {dry}")


