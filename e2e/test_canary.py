"""Scenarios against the real stack: `pulumi up`, the Argo Rollouts controller, Prometheus.

Run with `make e2e`. Each scenario records a timeline; the session prints a summary table and
keeps it in out/e2e-report.md.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from e2e.harness import (
    ROOT,
    Observation,
    Pulumi,
    Stack,
    new_stack,
    start_cluster,
    start_controller,
    start_prometheus,
    start_simulator,
    wait_for,
)

SERVICES = {"orchestrator": "core", "agent-runner": "agents", "api-gateway": "api"}
REGISTRY = "registry.platform.internal/core"
RPS = 60.0
TIMELINES: list[tuple[str, dict[str, float], str]] = []


class Timeline:
    def __init__(self, scenario: str):
        self.scenario = scenario
        self.start = time.monotonic()
        self.marks: dict[str, float] = {}
        self.outcome = "did not finish"

    def mark(self, name: str) -> None:
        self.marks.setdefault(name, round(time.monotonic() - self.start, 1))

    def done(self, outcome: str) -> None:
        self.outcome = outcome
        TIMELINES.append((self.scenario, self.marks, outcome))


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = new_stack(tmp_path_factory.mktemp("e2e"))
    try:
        start_cluster(s)
        start_controller(s)
        start_simulator(s, SERVICES, RPS)
        rules = s.work / "rules"
        subprocess.run(
            [
                sys.executable,
                "-m",
                "slo",
                "rules",
                "e2e/catalogue.yaml",
                "-o",
                str(rules),
                "--format",
                "rules",
                "--no-tests",
            ],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        s.prometheus = start_prometheus(s, list(SERVICES), rules / "rules")  # type: ignore[attr-defined]
        yield s
    finally:
        s.close()
        _report()


@pytest.fixture(scope="session")
def pulumi(stack: Stack) -> Pulumi:
    return Pulumi(stack, stack.prometheus_url)


def rollout(stack: Stack, service: str) -> dict[str, Any]:
    return stack.get("rollout", service, SERVICES[service])


def weight(body: dict[str, Any]) -> int:
    """The canary weight the current step has set (100 once the rollout completed)."""
    status = body.get("status", {})
    steps = body["spec"]["strategy"]["canary"]["steps"]
    index = status.get("currentStepIndex", len(steps))
    if index >= len(steps):
        return 100
    weights = [s["setWeight"] for s in steps[: index + 1] if "setWeight" in s]
    return weights[-1] if weights else 0


def phase(body: dict[str, Any]) -> str:
    return str(body.get("status", {}).get("phase", ""))


def summary(body: dict[str, Any]) -> str:
    status = body.get("status", {})
    return (
        f"phase={status.get('phase')} step={status.get('currentStepIndex')} "
        f"weight={weight(body)} abort={status.get('abort')} "
        f"message={status.get('message', '')!r}"
    )


def analysis_runs(stack: Stack, service: str, current: bool = True) -> list[dict[str, Any]]:
    """AnalysisRuns of the service; only those of the release in progress unless ``current``
    is false (Argo labels each run with the canary's pod-template hash)."""
    selector = []
    if current:
        pod_hash = rollout(stack, service).get("status", {}).get("currentPodHash", "")
        selector = ["-l", f"rollouts-pod-template-hash={pod_hash}"]
    runs = json.loads(
        stack.kubectl("get", "analysisrun", "-n", SERVICES[service], *selector, "-o", "json")
    )
    return [r for r in runs["items"] if r["metadata"]["name"].startswith(service)]


def release(
    stack: Stack, pulumi: Pulumi, service: str, tag: str, timeline: Timeline, **changes: Any
) -> None:
    pulumi.up(services={service: {"image": f"{REGISTRY}/{service}:{tag}"}}, **changes)
    timeline.mark("pulumi up done")

    def new_revision() -> Observation:
        body = rollout(stack, service)
        image = body["spec"]["template"]["spec"]["containers"][0]["image"]
        started = image.endswith(f":{tag}") and body.get("status", {}).get(
            "currentPodHash"
        ) != body.get("status", {}).get("stableRS")
        return Observation(
            started or (phase(body) == "Healthy" and image.endswith(tag)), summary(body), body
        )

    wait_for(f"{service} to start rolling out {tag}", new_revision, 60)
    timeline.mark("canary started")


def watch(
    stack: Stack,
    service: str,
    timeline: Timeline,
    until: set[str],
    timeout: float,
    weights: list[int] | None = None,
    also: Callable[[], object] | None = None,
) -> dict[str, Any]:
    """Poll the Rollout until its phase is in ``until``; collect the weights it went through.

    ``also`` runs at every poll (to watch something else at the same time)."""

    def probe() -> Observation:
        if also is not None:
            also()
        body = rollout(stack, service)
        current = weight(body)
        if weights is not None and (not weights or weights[-1] != current):
            weights.append(current)
        if analysis_runs(stack, service):
            timeline.mark("first analysis run")
        return Observation(phase(body) in until, summary(body), body)

    body: dict[str, Any] = wait_for(f"{service} to reach {sorted(until)}", probe, timeout, 0.3)
    timeline.mark(phase(body).lower())
    return body


def stable_image(body: dict[str, Any]) -> str:
    return str(body["spec"]["template"]["spec"]["containers"][0]["image"])


# --------------------------------------------------------------------------- scenarios


def test_1_pulumi_up_creates_everything_and_a_second_up_changes_nothing(stack, pulumi):
    timeline = Timeline("1 first pulumi up, then an idempotent one")
    result = pulumi.up()
    timeline.mark("pulumi up done")
    assert result.summary.result == "succeeded"
    for service, namespace in SERVICES.items():
        wait_for(
            f"{service} Healthy",
            lambda s=service: Observation(
                phase(rollout(stack, s)) == "Healthy", summary(rollout(stack, s))
            ),
            120,
        )
        for template in ("slo-gate", "slo-background"):
            stack.get("analysistemplate", f"{service}-{template}", namespace)
        stack.get("service", f"{service}-stable", namespace)
        stack.get("service", f"{service}-canary", namespace)
        stack.get("prometheusrule", f"{service}-slos", namespace)
    timeline.mark("all Healthy")
    maps = json.loads(
        stack.kubectl(
            "get", "configmap", "-n", "monitoring", "-l", "grafana_dashboard=1", "-o", "json"
        )
    )["items"]
    assert len(maps) == 4
    for cm in maps:
        for text in cm["data"].values():
            assert json.loads(text)["panels"]
    second = pulumi.up()
    timeline.mark("second pulumi up done")
    changes = {k: v for k, v in second.summary.resource_changes.items() if k != "same"}
    assert changes == {}, f"second pulumi up changed {changes}"
    timeline.done("created; second up: no changes")


def test_2_a_good_release_goes_10_25_50_100_and_ends_healthy(stack, pulumi):
    timeline = Timeline("2 good release promoted")
    release(stack, pulumi, "orchestrator", "1.1.0", timeline)
    weights: list[int] = []
    body = watch(stack, "orchestrator", timeline, {"Healthy", "Degraded"}, 240, weights)
    assert phase(body) == "Healthy", summary(body)
    assert stable_image(body).endswith(":1.1.0")
    assert body["status"]["stableRS"] == body["status"]["currentPodHash"]
    seen = [w for w in weights if w in (10, 25, 50, 100)]
    assert [w for i, w in enumerate(seen) if i == 0 or seen[i - 1] != w] == [10, 25, 50, 100], (
        weights
    )
    timeline.done("Healthy at 1.1.0 via 10, 25, 50, 100")


def _aborted(
    stack: Stack,
    service: str,
    timeline: Timeline,
    good_image: str,
    also: Callable[[], object] | None = None,
) -> dict[str, Any]:
    body = watch(stack, service, timeline, {"Degraded", "Healthy"}, 180, also=also)
    assert phase(body) == "Degraded", summary(body)
    status = body["status"]
    assert status.get("abort") is True
    assert weight_after_abort(stack, service) == 0
    # stable untouched: the stable ReplicaSet still runs the good image
    images = {p["spec"]["containers"][0]["image"] for p in pods(stack, service, status["stableRS"])}
    assert images == {good_image}, images

    def scaled_down() -> Observation:
        if also is not None:
            also()
        pods = _canary_pods(stack, service, body)
        return Observation(pods == 0, f"{pods} canary pods")

    wait_for("the canary to be scaled down", scaled_down, 90)
    timeline.mark("canary scaled down")
    return body


def weight_after_abort(stack: Stack, service: str) -> int:
    body = rollout(stack, service)
    return 0 if body["status"].get("abort") else weight(body)


def pods(stack: Stack, service: str, pod_hash: str) -> list[dict[str, Any]]:
    """The service's pods of one ReplicaSet, by its pod-template hash."""
    selector = f"rollouts-pod-template-hash={pod_hash}"
    found = stack.kubectl("get", "pods", "-n", SERVICES[service], "-l", selector, "-o", "json")
    return list(json.loads(found)["items"])


def _canary_pods(stack: Stack, service: str, body: dict[str, Any]) -> int:
    canary = pods(stack, service, body["status"]["currentPodHash"])
    return sum(1 for p in canary if not p["metadata"].get("deletionTimestamp"))


def _recover(stack: Stack, pulumi: Pulumi, service: str, good_tag: str) -> None:
    pulumi.up(services={service: {"image": f"{REGISTRY}/{service}:{good_tag}"}})
    wait_for(
        f"{service} back to Healthy",
        lambda: Observation(
            phase(rollout(stack, service)) == "Healthy", summary(rollout(stack, service))
        ),
        120,
    )


def test_3_a_bad_release_is_aborted_and_its_page_alert_fires_then_clears(stack, pulumi):
    timeline = Timeline("3+8 bad release aborted, page fires and clears")
    good = f"{REGISTRY}/api-gateway:1.0.0"
    release(stack, pulumi, "api-gateway", "1.1.0-bad", timeline)

    def page() -> Observation:
        firing = [
            a
            for a in stack.alerts()
            if a["labels"].get("alertname") == "SLOBurnRatePage"
            and a["labels"].get("service") == "api-gateway"
            and a["state"] == "firing"
        ]
        if firing:
            timeline.mark("page alert firing")
        elif "page alert firing" in timeline.marks:
            timeline.mark("page alert cleared")
        return Observation(bool(firing), f"{len(firing)} firing page alerts", firing)

    body = _aborted(stack, "api-gateway", timeline, good, also=page)
    assert "page alert firing" in timeline.marks, "the bad release never paged"
    wait_for(
        "the page alert to clear after the rollback",
        lambda: Observation(not page().ok, "page still firing", True),
        120,
    )
    timeline.mark("page alert cleared")
    failed = [r for r in analysis_runs(stack, "api-gateway") if r["status"]["phase"] == "Failed"]
    assert failed, "no failed AnalysisRun"
    _recover(stack, pulumi, "api-gateway", "1.0.0")
    timeline.done(f"aborted: {body['status'].get('message', '')[:60]}")


def test_3b_pulumi_up_reports_an_aborted_rollout_when_waiting(stack, pulumi):
    timeline = Timeline("3b pulumi up waits and fails on abort")
    from pulumi.automation.errors import CommandError

    with pytest.raises(CommandError) as err:
        pulumi.up(
            services={"api-gateway": {"image": f"{REGISTRY}/api-gateway:1.2.0-bad"}},
            delivery={"waitForRollout": True, "timeoutSeconds": 60},
        )
    timeline.mark("pulumi up failed")
    assert "Rollout api/api-gateway was aborted" in str(err.value), str(err.value)[-2000:]
    pulumi.config["delivery"]["waitForRollout"] = False
    _recover(stack, pulumi, "api-gateway", "1.0.0")
    timeline.done("pulumi up failed after the abort")


def test_4_a_slow_release_is_aborted(stack, pulumi):
    timeline = Timeline("4 slow release aborted")
    release(stack, pulumi, "agent-runner", "1.1.0-slow", timeline)
    _aborted(stack, "agent-runner", timeline, f"{REGISTRY}/agent-runner:1.0.0")
    failed = [r for r in analysis_runs(stack, "agent-runner") if r["status"]["phase"] == "Failed"]
    assert any(
        m["name"] == "latency" and m["phase"] == "Failed"
        for r in failed
        for m in r["status"].get("metricResults", [])
    ), failed
    _recover(stack, pulumi, "agent-runner", "1.0.0")
    timeline.done("aborted on latency")


def test_5_too_little_traffic_is_inconclusive_then_proceeds(stack, pulumi):
    timeline = Timeline("5 no traffic: waits, then proceeds")
    stack.set_rate("orchestrator", 0)
    try:
        release(stack, pulumi, "orchestrator", "1.2.0", timeline)

        def gate_inconclusive() -> Observation:
            runs = analysis_runs(stack, "orchestrator")
            measured = [
                m
                for r in runs
                for res in r.get("status", {}).get("metricResults", [])
                for m in res.get("measurements", [])
            ]
            inconclusive = [m for m in measured if m.get("phase") == "Inconclusive"]
            # several rounds of both metrics (error ratio, latency) without a verdict
            return Observation(len(inconclusive) >= 8, f"{len(measured)} measurements")

        wait_for("inconclusive measurements while there is no traffic", gate_inconclusive, 60)
        timeline.mark("inconclusive without traffic")
        body = rollout(stack, "orchestrator")
        assert phase(body) not in ("Degraded", "Healthy"), summary(body)
        assert weight(body) == 10, summary(body)
    finally:
        stack.set_rate("orchestrator", RPS)
    timeline.mark("traffic restored")
    body = watch(stack, "orchestrator", timeline, {"Healthy", "Degraded"}, 240)
    assert phase(body) == "Healthy", summary(body)
    assert stable_image(body).endswith(":1.2.0")
    timeline.done("held at 10% without traffic, promoted once traffic came")


def test_6_manual_gate_holds_until_promoted(stack, pulumi):
    timeline = Timeline("6 manual gate")
    release(stack, pulumi, "api-gateway", "1.3.0", timeline, delivery={"manualGate": True})

    def at_gate() -> Observation:
        body = rollout(stack, "api-gateway")
        status = body.get("status", {})
        paused = any(
            c.get("reason") == "CanaryPauseStep" for c in status.get("pauseConditions") or []
        )
        last = (
            status.get("currentStepIndex") == len(body["spec"]["strategy"]["canary"]["steps"]) - 1
        )
        return Observation(paused and last, summary(body))

    wait_for("the rollout to hold at the manual gate", at_gate, 180)
    timeline.mark("holding at the gate")
    time.sleep(3)  # holding means: still there after a while
    assert at_gate().ok
    stack.rollouts_cli("promote", "api-gateway", "-n", "api")
    timeline.mark("promoted by hand")
    body = watch(stack, "api-gateway", timeline, {"Healthy", "Degraded"}, 120)
    assert phase(body) == "Healthy" and stable_image(body).endswith(":1.3.0"), summary(body)
    pulumi.config["delivery"]["manualGate"] = False
    timeline.done("held at the gate, completed after promote")


def test_7_prometheus_unreachable_never_promotes(stack, pulumi):
    timeline = Timeline("7 Prometheus unreachable")
    dead = "http://127.0.0.1:9"  # discard port: connection refused
    release(stack, pulumi, "agent-runner", "1.4.0", timeline, prometheus={"address": dead})
    body = watch(stack, "agent-runner", timeline, {"Degraded", "Healthy"}, 180)
    # the analysis errors out (consecutiveErrorLimit) and that aborts: never promoted blindly
    assert phase(body) == "Degraded" and body["status"].get("abort") is True, summary(body)
    assert body["status"]["stableRS"] != body["status"]["currentPodHash"], summary(body)
    errors = [
        m
        for r in analysis_runs(stack, "agent-runner")
        for res in r.get("status", {}).get("metricResults", [])
        for m in res.get("measurements", [])
        if m.get("phase") == "Error"
    ]
    assert len(errors) > 2, f"{len(errors)} Error measurements"
    pulumi.config["prometheus"]["address"] = stack.prometheus_url
    _recover(stack, pulumi, "agent-runner", "1.0.0")
    timeline.done(f"aborted after {len(errors)} query errors, never promoted")


def _report() -> None:
    if not TIMELINES:
        return
    names = sorted(
        {k for _, marks, _ in TIMELINES for k in marks},
        key=lambda k: min(m.get(k, 1e9) for _, m, _ in TIMELINES),
    )
    lines = [
        "# End-to-end report",
        "",
        "Seconds from the start of each scenario.",
        "",
        "| scenario | " + " | ".join(names) + " | outcome |",
        "|---|" + "---|" * len(names) + "---|",
    ]
    for scenario, marks, outcome in TIMELINES:
        cells = [str(marks.get(n, "")) for n in names]
        lines.append(f"| {scenario} | " + " | ".join(cells) + f" | {outcome} |")
    text = "\n".join(lines) + "\n"
    out = ROOT / "out"
    out.mkdir(exist_ok=True)
    (out / "e2e-report.md").write_text(text)
    print("\n" + text)


def test_9_nginx_canary_ingress_weight_follows_the_steps(stack, pulumi):
    timeline = Timeline("9 NGINX canary weights")
    seen: list[str] = []

    def canary_weight() -> None:
        ingresses = json.loads(stack.kubectl("get", "ingress", "-n", "core", "-o", "json"))
        for ing in ingresses["items"]:
            value = (
                ing["metadata"]
                .get("annotations", {})
                .get("nginx.ingress.kubernetes.io/canary-weight")
            )
            if value is not None and (not seen or seen[-1] != value):
                seen.append(value)
                timeline.mark(f"ingress weight {value}")

    pulumi.config["services"]["orchestrator"]["host"] = "orchestrator.e2e.internal"
    release(stack, pulumi, "orchestrator", "1.5.0", timeline, delivery={"trafficRouting": "nginx"})
    body = watch(stack, "orchestrator", timeline, {"Healthy", "Degraded"}, 240, also=canary_weight)
    assert phase(body) == "Healthy", summary(body)
    steps = [w for w in seen if w in ("10", "25", "50")]
    assert steps == ["10", "25", "50"], seen
    pulumi.config["delivery"]["trafficRouting"] = "replicas"
    pulumi.up()
    timeline.done(f"canary-weight annotation went {' -> '.join(seen)}")


def test_10_exhausted_error_budget_freezes_the_next_release(stack, pulumi):
    timeline = Timeline("10 error-budget freeze")
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
    release(stack, pulumi, "agent-runner", "2.1.0", timeline, delivery={"budgetFreeze": True})

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
    pulumi.config["delivery"]["budgetFreeze"] = False
    pulumi.up()
    timeline.done(f"held with {left:.2f} of the budget left; released after the override")
