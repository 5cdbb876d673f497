"""The error-budget freeze: with ``budgetFreeze``, a release of a service whose error budget is
spent (an incident spends it here) is held at its first step, and goes out after the freeze
override and `promote`. The incident's spending stays in Prometheus's history: agent-runner's 1h
budget is exhausted for every later scenario (none of them freezes on it)."""

from __future__ import annotations

import time

from e2e.canary.kit import (
    Timeline,
    analysis_runs,
    notified,
    phase,
    release,
    rollout,
    summary,
    watch,
    weight,
)
from e2e.harness import Observation, Pulumi, Stack, wait_for
from e2e.inbox import Inbox


def test_exhausted_error_budget_freezes_the_next_release(
    stack: Stack, pulumi: Pulumi, inbox: Inbox
) -> None:
    timeline = Timeline("error-budget freeze")
    query = 'min(slo:error_budget_remaining:ratio{service="agent-runner"})'

    def remaining() -> float | None:
        result = stack.query(query)
        return float(result[0]["value"][1]) if result else None

    def exhausted() -> Observation:
        value = remaining()
        return Observation(value is not None and value <= 0, f"{query} = {value}", value)

    stack.set_incident("agent-runner", 0.5)  # an incident spends the budget
    try:
        left = wait_for("the error budget to be exhausted", exhausted, 120)
    finally:
        stack.set_incident("agent-runner", 0.0)
    timeline.mark("budget exhausted")
    with pulumi.override(delivery={"budgetFreeze": True}):
        mark = inbox.mark()
        release(stack, pulumi, "agent-runner", "2.1.0", timeline)

        def frozen() -> Observation:
            body = rollout(stack, "agent-runner")
            status = body.get("status", {})
            paused = bool(status.get("pauseConditions")) or status.get("phase") == "Paused"
            runs = analysis_runs(stack, "agent-runner")
            inconclusive = any(r.get("status", {}).get("phase") == "Inconclusive" for r in runs)
            return Observation(
                paused and inconclusive and status.get("currentStepIndex") == 0, summary(body)
            )

        wait_for("the release to be held at its first step", frozen, 90)
        timeline.mark("held by the freeze")
        time.sleep(3)
        body = rollout(stack, "agent-runner")
        assert body["status"].get("currentStepIndex") == 0 and weight(body) == 0, summary(body)
        assert phase(body) != "Degraded", summary(body)
        notified(inbox, pulumi, mark, "agent-runner", "paused", "BUDGET EXHAUSTED",
                 "error-budget-remaining")
        stack.kubectl(
            "annotate",
            "rollout",
            "agent-runner",
            "-n",
            "agents",
            "--overwrite",
            "slo.platform/freeze-override=e2e: shipping the fix",
        )
        stack.rollouts_cli("promote", "agent-runner", "-n", "agents")
        timeline.mark("override promoted")
        body = watch(stack, "agent-runner", timeline, {"Healthy", "Degraded"}, 240)
        assert phase(body) == "Healthy", summary(body)
    timeline.done(f"held with {left:.2f} of the budget left; released after the override")


