"""A shared incident: stable and canary failing alike pause the rollout (rolling back would not
help) instead of aborting it, and say why."""

from __future__ import annotations

import time

import pytest

from e2e.canary.kit import (
    ABORT,
    EVIDENCE_LEN,
    Runs,
    Timeline,
    explained,
    notified,
    paused_by_background,
    phase,
    record,
    release,
    results,
    rollout,
    summary,
    weight,
)
from e2e.harness import Pulumi, Stack
from e2e.inbox import Inbox


def test_a_shared_incident_pauses_the_rollout_instead_of_aborting(
    stack: Stack, pulumi: Pulumi, inbox: Inbox
) -> None:
    """Stable and canary both at 10x the budget: rolling back would not help, so the rollout
    pauses and says why."""
    timeline = Timeline("shared incident pauses")
    service = "api-gateway"
    runs = Runs(stack, service)
    stack.set_incident(service, 0.01)
    mark = inbox.mark()
    try:
        time.sleep(3)  # stable's rates show the incident before the canary starts
        release(stack, pulumi, service, "1.7.0", timeline)

        body = paused_by_background(stack, service, runs, "on the shared incident")
        timeline.mark("paused")
        assert phase(body) == "Paused" and not body["status"].get("abort"), summary(body)
        background = runs.of("Background")[-1]
        message = background["status"].get("message", "")
        assert "error-rate-shared-incident" in message, message
        rollout_says = body["status"]["canary"]["currentBackgroundAnalysisRunStatus"]
        assert rollout_says["status"] == "Inconclusive", rollout_says
        assert "error-rate-shared-incident" in rollout_says.get("message", ""), rollout_says
        value = record(timeline.scenario, background, "error-rate-shared-incident")
        assert len(value) == EVIDENCE_LEN, value
        assert value[1] >= ABORT and value[6] >= ABORT and value[0] < ABORT, value
        assert value[4] / value[5] == pytest.approx(0.01, rel=0.05), value  # stable at 10x
        assert value[2] / value[3] == pytest.approx(0.01, rel=0.05), value  # canary too
        assert results(background)["error-rate"]["phase"] != "Failed"
        said = explained(background, "error-rate-shared-incident", value)
        assert said["verdict"] == "paused" and "shared incident" in said["reason"], said
        note = notified(inbox, pulumi, mark, service, "paused", "SHARED INCIDENT",
                        "error-rate-shared-incident")
        assert note.slos()["error-rate-shared-incident"]["run"] == background["metadata"]["name"]
        assert not [n for n in inbox.since(mark, service) if n.event == "aborted"]
        record(timeline.scenario, background, "error-rate")
        time.sleep(4)  # paused means: still there, neither aborted nor promoted
        body = rollout(stack, service)
        assert phase(body) == "Paused" and not body["status"].get("abort"), summary(body)
        assert (
            weight(body) == 10 and body["status"]["stableRS"] != body["status"]["currentPodHash"]
        ), summary(body)
    finally:
        stack.set_incident(service, 0.0)
    timeline.done(f"paused, not aborted: {message[:70]}")


