"""Releases that are aborted, the stable version untouched: a bad one (its page alert fires and
clears), one `pulumi up` waits for and fails on, a slow one, a subtle regression (3x the error
budget where the gate is set to catch it), one that turns bad when the rollout sets 50%, and a
3x latency regression where the latency gate is set to catch it."""

from __future__ import annotations

import datetime
import json
import math
import subprocess
import sys
import time
from typing import Any

import pytest

from e2e.canary.kit import (
    ABORT,
    BAD,
    CANARY,
    CANARY_ERRORS,
    CANARY_REQUESTS,
    CATALOGUE_SERVICES,
    CUSUM,
    DISPERSION,
    EVIDENCE,
    EVIDENCE_LEN,
    JUDGED,
    RECENT,
    RPS,
    SLOW,
    SUBTLE_RPS,
    Behaviour,
    Runs,
    Timeline,
    aborted,
    all_calls,
    boundary,
    canary_hash,
    cusum_boundary,
    declare,
    failed_metric,
    image_of,
    kind,
    notified,
    passed,
    phase,
    record,
    release,
    results,
    run_phase,
    running_tag,
    step_index,
    summary,
    watch,
    weight,
    went_through,
)
from e2e.harness import ROOT, Observation, Pulumi, Stack, wait_for
from e2e.inbox import Inbox
from slo.dashboards import rollout_events_query


def firing_pages(stack: Stack, service: str) -> list[dict[str, Any]]:
    return [
        a
        for a in stack.alerts()
        if a["labels"].get("alertname") == "SLOBurnRatePage"
        and a["labels"].get("service") == service
        and a["state"] == "firing"
    ]


def abort_marks(stack: Stack, service: str, start: float, end: float) -> list[float]:
    """When the dashboards' rollout-events annotation shows an abort of ``service`` (each
    abort from the first scrape after it, for a minute)."""
    found = stack.query_range(rollout_events_query(CATALOGUE_SERVICES[service]), start, end)
    return [float(v[0]) for r in found if r["metric"].get("reason") == "RolloutAborted"
            for v in r["values"]]


def _explained_live(stack: Stack, service: str, run: str, metric: str) -> dict[str, Any]:
    """``python -m delivery explain --json`` run on the stack's cluster: what it says of
    ``metric`` in the AnalysisRun ``run`` (which it must list)."""
    live = subprocess.run(
        [sys.executable, "-m", "delivery", "explain", "--stack", "Pulumi.e2e.yaml", "--service",
         service, "--json"], cwd=ROOT, env=stack.env, capture_output=True, text=True,
        check=False, timeout=120,
    )
    assert live.returncode == 0, live.stderr
    runs_said = {r["name"]: r for r in json.loads(live.stdout)}
    assert run in runs_said, sorted(runs_said)
    return dict(next(m for m in runs_said[run]["metrics"] if m["name"] == metric))


def _marked(stack: Stack, service: str, since: float) -> Observation:
    """Whether the dashboards' annotation query shows an abort of ``service`` since ``since``;
    the first one's time."""
    aborts = abort_marks(stack, service, since, time.time())
    return Observation(bool(aborts), f"abort marks at {aborts[:3]}", min(aborts or [0]))


def _abort_marked(stack: Stack, service: str, body: dict[str, Any], released_at: float) -> None:
    """The dashboards' rollout-events annotation marks the abort at its time: within a scrape
    (1 s) of the Rollout's ``abortedAt``, which is whole seconds."""
    aborted_at = datetime.datetime.fromisoformat(
        body["status"]["abortedAt"].replace("Z", "+00:00")).timestamp()
    first_mark = wait_for(
        "the abort on the dashboards' annotation query",
        lambda: _marked(stack, service, max(aborted_at - 60, released_at)), 30)
    assert aborted_at - 1 <= first_mark <= aborted_at + 3, (first_mark, aborted_at)


def test_a_bad_release_is_aborted_and_its_page_alert_fires_then_clears(
    stack: Stack, pulumi: Pulumi, inbox: Inbox
) -> None:
    timeline = Timeline("bad release aborted, page fires and clears")
    good = image_of("api-gateway", running_tag(stack, "api-gateway"))
    # the page this release causes, not one an earlier incident left firing
    wait_for("no page alert of api-gateway firing before the release", lambda: Observation(
        not firing_pages(stack, "api-gateway"), "a page alert firing"), 180)
    # and the abort mark it causes, not one an earlier abort of api-gateway left
    wait_for("no abort of api-gateway on the dashboards' annotation", lambda: Observation(
        not abort_marks(stack, "api-gateway", time.time() - 2, time.time()), "one shown"), 90)
    released_at = time.time()
    mark = inbox.mark()
    release(stack, pulumi, "api-gateway", "1.1.0", timeline, BAD)

    def page() -> Observation:
        firing = firing_pages(stack, "api-gateway")
        if firing:
            timeline.mark("page alert firing")
        elif "page alert firing" in timeline.marks:
            timeline.mark("page alert cleared")
        return Observation(bool(firing), f"{len(firing)} firing page alerts", firing)

    runs = Runs(stack, "api-gateway")
    body = aborted(stack, "api-gateway", timeline, good, also=all_calls(page, runs))
    runs()
    assert "page alert firing" in timeline.marks, "the bad release never paged"
    failed = [r for r in runs.seen.values() if run_phase(r) == "Failed"]
    assert failed, "no failed AnalysisRun"
    note = notified(inbox, pulumi, mark, "api-gateway", "aborted", "ABORTED", "error-rate")
    # the gate's run and the background run can both fail on error-rate before the abort lands:
    # the message has an entry per run that had failed when it was sent; check the first of them
    said_runs = {s.get("run"): s for s in note.entries() if s.get("slo") == "error-rate"}
    run, value = failed_metric([r for r in failed if r["metadata"]["name"] in said_runs],
                               "error-rate")
    said = said_runs[run["metadata"]["name"]]
    record(timeline.scenario, run, "error-rate")
    assert len(value) == EVIDENCE_LEN, value
    assert value[0] >= boundary(run, "error-rate", "failureCondition"), value
    assert value[2] / value[3] == pytest.approx(0.5, rel=0.05), value  # the canary's 50% errors
    assert said["phase"] == "Failed" and said["why"].startswith("FAILED"), said
    # the numbers in the message are the measurement Argo failed the canary on
    assert [float(said["evidence"][name]) for name in EVIDENCE] == pytest.approx(value), said
    # the message's explain, run live on the stack's cluster: the same run, the same verdict
    live_metric = _explained_live(stack, "api-gateway", run["metadata"]["name"], "error-rate")
    assert live_metric["verdict"] == "aborted", live_metric
    _abort_marked(stack, "api-gateway", body, released_at)
    wait_for(
        "the page alert to clear after the rollback",
        lambda: Observation(not page().ok, "page still firing", True),
        120,
    )
    timeline.mark("page alert cleared")
    timeline.done(f"aborted: {body['status'].get('message', '')[:60]}")


def test_pulumi_up_reports_an_aborted_rollout_when_waiting(stack: Stack, pulumi: Pulumi) -> None:
    """With ``waitForRollout``, `pulumi up` of a bad release waits for its rollout, which is
    aborted, and fails saying so."""
    timeline = Timeline("pulumi up waits and fails on abort")
    from pulumi.automation.errors import CommandError

    declare(stack, "api-gateway", "1.2.0", BAD)
    with (
        pulumi.override(delivery={"waitForRollout": True, "timeoutSeconds": 60}),
        pytest.raises(CommandError) as err,
    ):
        pulumi.up(services={"api-gateway": {"image": image_of("api-gateway", "1.2.0")}})
    timeline.mark("pulumi up failed")
    assert "Rollout api/api-gateway was aborted" in str(err.value), str(err.value)[-2000:]
    timeline.done("pulumi up failed after the abort")


def test_a_slow_release_is_aborted(stack: Stack, pulumi: Pulumi, inbox: Inbox) -> None:
    timeline = Timeline("slow release aborted")
    good = image_of("agent-runner", running_tag(stack, "agent-runner"))
    mark = inbox.mark()
    release(stack, pulumi, "agent-runner", "1.1.0", timeline, SLOW)
    runs = Runs(stack, "agent-runner")
    aborted(stack, "agent-runner", timeline, good, also=runs)
    runs()
    failed = [r for r in runs.seen.values() if run_phase(r) == "Failed"]
    run, value = failed_metric(failed, "latency")
    record(timeline.scenario, run, "latency")
    assert len(value) == EVIDENCE_LEN and value[0] >= boundary(run, "latency", "failureCondition")
    assert value[2] == pytest.approx(value[3]), value  # every canary request slower than 2s
    note = notified(inbox, pulumi, mark, "agent-runner", "aborted", "ABORTED", "latency")
    assert note.slos()["latency"]["phase"] == "Failed", note.body
    timeline.done("aborted on latency")


def test_a_subtle_regression_is_aborted(stack: Stack, pulumi: Pulumi) -> None:
    """3x the error budget: inside the default indifference zone (passBurnRate 1, failBurnRate
    10, where a 3x canary would pass), outside it at failBurnRate 2.5, which must abort."""
    timeline = Timeline("subtle regression (3x budget) aborted")
    service, good_tag = "api-gateway", running_tag(stack, "api-gateway")
    runs = Runs(stack, service)
    stack.set_rate(service, SUBTLE_RPS)
    try:
        with pulumi.override(delivery={"analysis": {"failBurnRate": 2.5}}):
            release(stack, pulumi, service, "1.6.0", timeline, Behaviour(errors=0.003))
            aborted(stack, service, timeline, image_of(service, good_tag), also=runs)
    finally:
        stack.set_rate(service, RPS)
    runs()
    failed = [r for r in runs.seen.values() if run_phase(r) == "Failed"]
    run, value = failed_metric(failed, "error-rate")
    record(timeline.scenario, run, "error-rate")
    abort = boundary(run, "error-rate", "failureCondition")
    assert abort == pytest.approx(ABORT)
    cusum_abort = cusum_boundary(run, "error-rate")
    assert len(value) == EVIDENCE_LEN, value
    assert value[2] / value[3] == pytest.approx(0.003, rel=0.05), value  # 3x the 0.1% budget
    assert value[4] == 0 and value[5] > 0, value  # stable clean
    # 3x leans good under the cumulative test's coarse hypotheses (bad 10x): the change-point
    # statistic, under the SLO's own (bad 2.5x), aborted it
    assert value[JUDGED] < abort <= cusum_abort <= value[CUSUM], value
    # the gate never passed it (a gate the abort terminated is marked Successful: no pass)
    for gate in (r for r in runs.seen.values() if kind(r) == "Step"):
        metric = results(gate).get("error-rate", {})
        assert not passed(gate, "error-rate"), metric
        assert metric.get("phase") != "Successful" or gate["spec"].get("terminate"), metric
    timeline.done(
        f"aborted by {kind(run)} error-rate at {value[CUSUM]:.2f} >= {cusum_abort:.2f} after "
        f"{value[3]:.0f} canary requests"
    )


def test_a_release_that_turns_bad_at_50_percent_is_aborted_at_50(
    stack: Stack, pulumi: Pulumi
) -> None:
    """A release healthy at 10% and 25% whose canary pods fail every request from the moment the
    rollout sets 50% (a load-dependent regression). Its evidence from 10% and 25% is clean, so
    the cumulative statistic alone would let the 50% gate pass at its first look (issue 19);
    the gate passes only while the weight's recent evidence leans good, and the rollout is aborted
    at 50% with the stable version untouched. The pause is 20 s here so that the errors are
    scraped before the 50% gate's first look."""
    timeline = Timeline("a release that turns bad at 50% is aborted at 50%")
    service, good_tag = "agent-runner", running_tag(stack, "agent-runner")
    runs = Runs(stack, service)
    weights: list[int] = []
    with pulumi.override(delivery={"pause": "20s"}):
        release(stack, pulumi, service, "1.10.0", timeline)
        canary = canary_hash(stack, service)
        body = watch(stack, service, timeline, {"Healthy", "Degraded", "Paused"}, 120, weights,
                     runs, at_weight=50)
        assert weight(body) == 50 and phase(body) != "Degraded", summary(body)
        stack.simulator(f"inject/{service}/{canary}/1000000")
        timeline.mark("the canary fails every request from 50%")
        aborted(stack, service, timeline, image_of(service, good_tag), also=runs)
    runs()
    assert went_through(weights)[:3] == [10, 25, 50], weights
    gates = sorted((r for r in runs.seen.values() if kind(r) == "Step"), key=step_index)
    assert len(gates) >= 2 and all(passed(g, "error-rate") for g in gates[:2]), gates
    # no gate at 50% passed: the weight's recent evidence leaned bad at every look
    assert not any(passed(g, "error-rate") for g in gates[2:]), gates[2:]
    failed = [r for r in runs.seen.values() if run_phase(r) == "Failed"]
    run, value = failed_metric(failed, "error-rate")
    record(timeline.scenario, run, "error-rate")
    assert len(value) == EVIDENCE_LEN, value
    # aborted on the evidence since 50% leaning bad: one of the abort boundaries reached
    abort = boundary(run, "error-rate", "failureCondition")
    assert value[JUDGED] >= abort or value[CUSUM] >= cusum_boundary(run, "error-rate"), value
    assert value[RECENT] > 0, value
    timeline.done(
        f"aborted by {kind(run)} error-rate: cumulative {value[JUDGED]:.2f}, since its lowest "
        f"restart point {value[CUSUM]:.2f}, recent {value[RECENT]:.2f}"
    )


def test_a_3x_latency_regression_is_aborted_where_the_latency_gate_is_set_to_catch_it(
    stack: Stack, pulumi: Pulumi
) -> None:
    """15% of requests over the 2 s threshold: 3x the 5% budget of the p95 latency SLO. Inside
    the stack's indifference zone (failBurnRate 10, where a 3x canary may pass); outside it where
    `burnRatesByKind` sets the latency kind's failBurnRate to 2, which must abort it on the
    latency SLO, the error-rate SLO untouched."""
    timeline = Timeline("3x latency regression aborted (latency failBurnRate 2)")
    service, good_tag = "orchestrator", running_tag(stack, "orchestrator")
    runs = Runs(stack, service)
    with pulumi.override(delivery={"analysis": {
            "burnRatesByKind": {"latency": {"failBurnRate": 2}}}}):
        release(stack, pulumi, service, "1.11.0", timeline, Behaviour(slow=0.15))
        aborted(stack, service, timeline, image_of(service, good_tag), also=runs)
    runs()
    failed = [r for r in runs.seen.values() if run_phase(r) == "Failed"]
    run, value = failed_metric(failed, "latency")
    record(timeline.scenario, run, "latency")
    assert len(value) == EVIDENCE_LEN, value
    assert value[CANARY_ERRORS] / value[CANARY_REQUESTS] == pytest.approx(0.15, rel=0.05), value
    assert boundary(run, "latency", "failureCondition") == pytest.approx(ABORT)
    # the hypotheses the run judged: good 5%, bad 10% (2x): a clean request takes off
    # ln(0.90 / 0.95), a slow one adds ln 2
    expected = (value[CANARY_ERRORS] * math.log(2) + (value[CANARY_REQUESTS] - value[CANARY_ERRORS])
                * math.log(0.90 / 0.95)) / value[DISPERSION]
    assert value[CANARY] == pytest.approx(expected, rel=1e-3), (value, expected)
    assert not any(r for r in failed if results(r).get("error-rate", {}).get("phase") == "Failed")
    timeline.done(
        f"aborted by {kind(run)} latency at {value[JUDGED]:.2f} (cusum {value[CUSUM]:.2f}) with "
        f"{value[CANARY_ERRORS]:.0f} slow of {value[CANARY_REQUESTS]:.0f} canary requests"
    )
