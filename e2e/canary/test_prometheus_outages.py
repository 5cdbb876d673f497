"""Prometheus stopped mid-rollout (the real process): for 2 minutes, where the rollout waits and
completes once it is back, and past the stack's ``outageLimit``, where it pauses for a human once
Prometheus answers and completes after `promote`."""

from __future__ import annotations

import datetime
import itertools
import time
from typing import Any

from delivery.analysis import outage_view
from delivery.stack import AnalysisConfig, PrometheusConfig
from e2e.canary.kit import (
    CANARY,
    CANARY_REQUESTS,
    EVIDENCE_LEN,
    MIN_STEPS,
    SERVICES,
    STEPS,
    UNLIMITED_ERRORS,
    Runs,
    Timeline,
    boundary,
    measurements,
    paused_by_background,
    phase,
    record,
    release,
    results,
    rollout,
    run_phase,
    served,
    spec_image,
    step_index,
    summary,
    terminated,
    watch,
)
from e2e.harness import Pulumi, Stack

OUTAGE = 120.0  # seconds Prometheus is stopped mid-rollout
GATE_STEPS = {2, 5, 8}  # the gates' step indexes: weights 10, 25, 50, each after its pause


def error_measurements(runs: Runs) -> dict[tuple[str, str, str], dict[str, Any]]:
    """Every Error measurement seen in any snapshot (Argo keeps the last 10 per metric), by
    (run, metric, start)."""
    found = {}
    for run in runs.history:
        for metric, result in results(run).items():
            for m in result.get("measurements") or []:
                if m.get("phase") == "Error":
                    found[(run["metadata"]["name"], metric, str(m.get("startedAt")))] = m
    return found


def error_retry_gaps(errors: dict[tuple[str, str, str], dict[str, Any]]) -> list[float]:
    """Seconds between consecutive Error measurements of the same run and metric."""
    starts: dict[tuple[str, str], list[float]] = {}
    for (run, metric, _), m in errors.items():
        stamp = datetime.datetime.fromisoformat(str(m["startedAt"]).replace("Z", "+00:00"))
        starts.setdefault((run, metric), []).append(stamp.timestamp())
    return [b - a for times in starts.values() for a, b in itertools.pairwise(sorted(times))]


def _stopped_for(outage: float, stack: Stack, service: str, runs: Runs, timeline: Timeline
                 ) -> list[tuple[float, str, int, bool]]:
    """Stop Prometheus for ``outage`` seconds, then start it again on the same port; every
    second meanwhile, the rollout is neither aborted nor promoted. What was seen: (seconds,
    phase, step, abort)."""
    stack.stop_prometheus()
    timeline.mark("prometheus stopped")
    seen: list[tuple[float, str, int, bool]] = []
    stopped = time.monotonic()
    try:
        while time.monotonic() - stopped < outage:
            runs()
            body = rollout(stack, service)
            status = body.get("status", {})
            seen.append((round(time.monotonic() - stopped, 1), phase(body),
                         int(status.get("currentStepIndex", -1)), bool(status.get("abort"))))
            # waiting or paused: never aborted, never promoted, while Prometheus is down
            assert phase(body) not in ("Degraded", "Healthy"), summary(body)
            assert not status.get("abort"), summary(body)
            assert status.get("stableRS") != status.get("currentPodHash"), summary(body)
            time.sleep(1)
    finally:
        if stack.prometheus is not None and stack.prometheus.proc is None:
            stack.start_prometheus_again()
    timeline.mark("prometheus started again")
    return seen


def _errors_retried(runs: Runs, waited_at: int
                    ) -> tuple[dict[tuple[str, str, str], dict[str, Any]], float]:
    """The outage's Error measurements (connection refused, at least 6 of the gate's, retried
    one after another) and the median seconds between retries (Argo's own 10 s)."""
    errors = error_measurements(runs)
    assert errors, "no Error measurement while Prometheus was down"
    assert all("connection refused" in m.get("message", "") for m in errors.values()), [
        m.get("message") for m in errors.values()
    ]
    gate_errors = [k for k in errors if k[0] in {
        r["metadata"]["name"] for r in runs.of("Step") if step_index(r) == waited_at
    }]
    assert len(gate_errors) >= 6, sorted(errors)  # about one per 10 s for 2 minutes, per metric
    peak = max(
        int(res.get("consecutiveError", 0))
        for r in runs.history
        for res in r.get("status", {}).get("metricResults") or []
    )
    assert peak >= 6, peak
    # Argo retries an Error after its own 10 s (DefaultErrorRetryInterval), not the interval
    retries = sorted(error_retry_gaps(errors))
    assert retries and retries[len(retries) // 2] >= 8, retries
    return errors, retries[len(retries) // 2]


def _passed_with_the_outage_counted(gate: dict[str, Any], timeline: Timeline,
                                    during_outage: float) -> None:
    """The gate that waited through the outage passed, its errors kept in its count, on
    evidence that holds the requests served during the outage."""
    assert run_phase(gate) == "Successful", gate.get("status")
    for metric, result in results(gate).items():
        spec = next(m for m in gate["spec"]["metrics"] if m["name"] == metric)
        assert spec["consecutiveErrorLimit"] == UNLIMITED_ERRORS, spec
        assert result.get("error", 0) >= 6, (metric, result)  # its errors, kept in its count
        last = measurements(gate, metric)[-1]
        assert last["phase"] == "Successful" and not terminated(last), last
        value = record(timeline.scenario, gate, metric)
        assert len(value) == EVIDENCE_LEN and value[STEPS] >= MIN_STEPS, value
        assert value[CANARY] <= boundary(gate, metric, "successCondition"), value
        # the outage's requests counted: the first step after it holds what the counters gained
        assert value[CANARY_REQUESTS] >= 0.95 * during_outage, (value, during_outage)


def test_prometheus_stopped_mid_rollout_never_aborts_nor_promotes(
    stack: Stack, pulumi: Pulumi
) -> None:
    """Prometheus stopped for 2 minutes mid-rollout (the real process, SIGTERM, its TSDB
    kept), then started again on the same port (issue 24). While it is down every measurement
    is an Error (connection refused) that Argo retries every 10 s: with consecutiveErrorLimit
    2^31-1 no number of them errors the analysis, and Error measurements do not count towards
    a gate's maxMeasurements, so the rollout waits at its gate, neither aborted nor promoted.
    Once Prometheus answers, the evidence recorded before and after the gap (the first step
    after it holds everything the counters gained during it) passes the gate and the rollout
    completes."""
    timeline = Timeline("Prometheus stopped for 2 minutes mid-rollout")
    service = "agent-runner"
    runs = Runs(stack, service)
    release(stack, pulumi, service, "1.4.0", timeline)
    seen = _stopped_for(OUTAGE, stack, service, runs, timeline)
    # what the canary served until Prometheus came back: none of it may be lost
    canary = rollout(stack, service)["status"]["currentPodHash"]
    during_outage = served(stack, service, canary)[0]
    # where it waited: one gate, for (nearly) the whole outage
    late = {step for t, _, step, _ in seen if t >= 20}
    assert len(late) == 1 and late <= GATE_STEPS, seen
    waited_at = late.pop()
    phases = sorted({p for _, p, _, _ in seen})
    errors, retried = _errors_retried(runs, waited_at)

    weights: list[int] = []
    body = watch(stack, service, timeline, {"Healthy", "Degraded"}, 240, weights, runs)
    runs()
    assert phase(body) == "Healthy", summary(body)
    assert spec_image(body).endswith(":1.4.0"), summary(body)
    assert body["status"]["stableRS"] == body["status"]["currentPodHash"]
    gate = next(r for r in runs.of("Step") if step_index(r) == waited_at)
    _passed_with_the_outage_counted(gate, timeline, during_outage)
    for run in runs.of("Step") + runs.of("Background"):
        assert run_phase(run) not in ("Error", "Failed", "Inconclusive"), run.get("status")
    timeline.done(
        f"waited at step {waited_at} ({', '.join(phases)}) through {len(errors)} Error "
        f"measurements (retried every {retried:.0f} s), never aborted; "
        f"Healthy after Prometheus came back"
    )


LONG_OUTAGE = 150.0  # seconds Prometheus is stopped past the outageLimit, 2m


def test_prometheus_away_past_the_outage_limit_pauses_then_goes_on_when_promoted(
    stack: Stack, pulumi: Pulumi
) -> None:
    """outageLimit 2m and Prometheus stopped for 150 s mid-rollout: while it is away the
    rollout waits, neither aborted nor promoted (as in the 2-minute outage). Once it answers,
    the background's prometheus-outage metric reads the evidence group's gap, over 120 s, and
    pauses the rollout for a human (InconclusiveAnalysisRun). `kubectl argo rollouts
    promote`, as the runbook says, takes it past the gate it waited at; the next gates judge it
    and it completes."""
    timeline = Timeline("Prometheus away past outageLimit pauses")
    service = "agent-runner"
    runs = Runs(stack, service)
    with pulumi.override(delivery={"analysis": {"outageLimit": "2m"}}):
        release(stack, pulumi, service, "1.4.1", timeline)
        _stopped_for(LONG_OUTAGE, stack, service, runs, timeline)
        body = paused_by_background(stack, service, runs, "after the outage")
        timeline.mark("paused")
        assert phase(body) == "Paused" and not body["status"].get("abort"), summary(body)
        background = next(r for r in reversed(runs.of("Background"))
                          if run_phase(r) == "Inconclusive")
        assert "prometheus-outage" in background["status"].get("message", ""), background
        gap = record(timeline.scenario, background, "prometheus-outage")
        assert LONG_OUTAGE - 10 <= gap[0] <= LONG_OUTAGE + 60, gap
        # as the runbook says: promote once the gap is out of the metric's view, or the next
        # background run reads it again
        view = outage_view(AnalysisConfig.model_validate(pulumi.config["delivery"]["analysis"]),
                           PrometheusConfig.model_validate(pulumi.config["prometheus"]))
        time.sleep(view + 2)
        stack.rollouts_cli("promote", service, "-n", SERVICES[service])
        timeline.mark("promoted past the gate")
        body = watch(stack, service, timeline, {"Healthy", "Degraded"}, 240, also=runs)
    runs()
    assert phase(body) == "Healthy", summary(body)
    assert not any(run_phase(r) in ("Error", "Failed") for r in runs.seen.values())
    timeline.done(f"waited {LONG_OUTAGE:.0f} s, paused on a gap of {gap[0]:.0f} s once "
                  "Prometheus answered, completed after promote")


