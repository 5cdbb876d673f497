"""Scenarios against the real stack: `pulumi up`, the Argo Rollouts controller, Prometheus.

Run with `make e2e`. Each scenario records a timeline and the verdicts the AnalysisRuns show; the
module prints a summary and keeps it in out/e2e-report.md.

The canary judge (delivery/judge.py) is a sequential test on the canary's cumulative counts,
which Prometheus records every scrape interval (delivery/evidence.py): a verdict needs a number
of requests, and at least 6 scrape intervals with canary traffic. On a cluster with the
Prometheus operator the evidence rules are the ``<service>-canary-evidence`` PrometheusRules;
this Prometheus reads rule files, so every `pulumi up` of the harness first writes them with
``python -m delivery rules`` for the settings it applies and reloads Prometheus. The simulator
sends 1000 requests a second per service (a 10% canary of 4 replicas gets 1 pod in 5, 200 a
second), so that a clean canary passes the error-rate gate (509 requests, 4 intervals) on its
first few measurements. Scenarios that need another rate, lazily created error series, a pod
restart, injected errors or a cold start ask the simulator over HTTP (e2e/simulator.py) and put
it back. How a release serves is declared with it (``release(..., behaviour)``, registered with
the simulator before `pulumi up`); a release declared with none is healthy. Scenarios that
change stack settings do so in ``pulumi.override(...)``, and the ``settings_restored`` fixture
re-applies the e2e stack file's settings after any scenario that leaves others applied, pass or
fail.

Order matters where scenarios share a service: each release's stable is the last promoted one;
the budget freeze exhausts agent-runner's 1h error budget, so no later scenario releases
agent-runner.
"""

from __future__ import annotations

import copy
import datetime
import itertools
import json
import math
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import asdict
from typing import Any

import pytest
import yaml

from delivery import judge
from delivery.analysis import outage_view
from delivery.stack import AnalysisConfig, DeliveryConfig, PrometheusConfig
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
    with_images,
)
from e2e.inbox import Inbox, Notification
from e2e.simulator import HEALTHY, Behaviour
from slo.dashboards import rollout_events_query
from slo.loader import load_catalogue
from slo.model import resolve_all

SERVICES = {"orchestrator": "core", "agent-runner": "agents", "api-gateway": "api"}
CATALOGUE_SERVICES = {s.name: s for s in load_catalogue(ROOT / "e2e" / "catalogue.yaml").services}
REGISTRY = "registry.platform.internal/core"
RPS = 1000.0  # requests a second per service: 60,000 a minute
SUBTLE_RPS = 4000.0  # a 3x-budget regression needs ~6,000 canary requests at failBurnRate 2.5
LOW_RPS = 150.0  # a 10% canary then gets 30 a second: a verdict takes several measurements
EVIDENCE = (
    "judged",
    "canary",
    "canary_errors",
    "canary_requests",
    "stable_errors",
    "stable_requests",
    "stable",
    "dispersion",
    "steps",
    "cusum",
    "recent",
)  # delivery.judge.EVIDENCE: the order Argo reads a measurement's value in
EVIDENCE_LEN = len(EVIDENCE)
JUDGED, CANARY, CANARY_ERRORS, CANARY_REQUESTS, STABLE_ERRORS, STABLE_REQUESTS = range(6)
STABLE, DISPERSION, STEPS, CUSUM, RECENT = 6, 7, 8, 9, 10
MIN_STEPS = 6  # delivery.judge.MIN_STEPS: no verdict before the canary had traffic in 6 steps
UNLIMITED_ERRORS = 2**31 - 1  # consecutiveErrorLimit: Argo never errors the analysis
# the e2e stack's 2 gated SLOs per service at falseAbortRisk 0.001, half of each SLO's share
# for the cumulative statistic: ln(2 / (0.001 / 2))
ABORT = math.log(4000)
ACCEPT = math.log(0.01)  # missedRegressionRisk 0.01
TIMELINES: list[tuple[str, dict[str, float], str]] = []
VERDICTS: list[tuple[str, str, str, str, int, str]] = []


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


@pytest.fixture(scope="module")
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
        # the canary judge's evidence rules join the SLO rules there at every `pulumi up`
        start_prometheus(s, list(SERVICES), rules / "rules")
        yield s
    finally:
        s.close()
        _report()


@pytest.fixture(scope="module")
def inbox() -> Iterator[Inbox]:
    """The webhook receiver every service's notifications go to (Pulumi.e2e.yaml)."""
    box = Inbox()
    try:
        yield box
    finally:
        box.close()


@pytest.fixture(scope="module")
def pulumi(stack: Stack, inbox: Inbox) -> Pulumi:
    return Pulumi(stack, stack.prometheus_url, notifications=inbox.url)


def notified(inbox: Inbox, pulumi: Pulumi, mark: int, service: str, event: str,
             why: str, slo: str | None = None) -> Notification:
    """The one ``event`` notification of ``service`` since ``mark``: it names the rollout and
    says ``why``, names ``slo`` among its verdicts, carries the token from the notification
    Secret, and links the dashboard and the explain command."""
    note = inbox.wait(mark, service, event)
    got = [(n.rollout, n.event) for n in inbox.since(mark)]
    assert note is not None, f"no {event} notification of {service} (got {got})"
    assert len([n for n in inbox.since(mark, service) if n.event == event]) == 1, got
    assert note.token == pulumi.notification_token, "the header token is not the Secret's"
    assert note.text.startswith(f"{SERVICES[service]}/{service} "), note.text
    assert why in note.text, note.text
    assert "dashboard: http://127.0.0.1:3000/d/slo-" + service in note.text, note.text
    assert "| python -m delivery explain -" in note.text, note.text
    if slo is not None:
        assert slo in note.slos(), (slo, note.body)
    return note


@pytest.fixture(autouse=True)
def settings_restored(pulumi: Pulumi) -> Iterator[None]:
    """After each scenario, pass or fail: the settings it started with (images aside), and a
    `pulumi up` if the cluster was left with others."""
    saved = copy.deepcopy(pulumi.config)
    yield
    pulumi.config = with_images(saved, pulumi.config)
    if pulumi.settings_differ(saved):
        pulumi.up()


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


def pause_reasons(body: dict[str, Any]) -> list[str]:
    return [str(c.get("reason")) for c in body.get("status", {}).get("pauseConditions") or []]


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


# --------------------------------------------------------------------------- verdicts


def kind(run: dict[str, Any]) -> str:
    """``Step`` (a gate) or ``Background``: Argo's own label on the run."""
    return str(run["metadata"].get("labels", {}).get("rollout-type", ""))


def run_phase(run: dict[str, Any]) -> str:
    return str(run.get("status", {}).get("phase", ""))


def results(run: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {m["name"]: m for m in run.get("status", {}).get("metricResults") or []}


def measurements(run: dict[str, Any], metric: str) -> list[dict[str, Any]]:
    return list(results(run).get(metric, {}).get("measurements") or [])


def terminated(entry: dict[str, Any]) -> bool:
    """A measurement Argo cut short when it terminated the run: marked Successful, with the
    message "Metric Terminated"; that is no verdict."""
    return "terminated" in str(entry.get("message", "")).lower()


def passed(run: dict[str, Any], metric: str) -> bool:
    """Whether a measurement of ``metric`` met its success condition. The metric's own phase
    says less: Argo marks every unfinished metric of a run it terminates (the rollout aborted)
    Successful, with no measurement behind it."""
    return any(
        m.get("phase") == "Successful" and not terminated(m) for m in measurements(run, metric)
    )


def vector(measurement: dict[str, Any]) -> list[float]:
    """A measurement's value as Argo's Prometheus provider writes it: ``[v1,v2,...]``."""
    text = str(measurement.get("value", "")).strip()
    assert text.startswith("[") and text.endswith("]"), f"not a vector: {text!r}"
    inner = text[1:-1].strip()
    return [float(v) for v in inner.split(",")] if inner else []


def boundary(run: dict[str, Any], metric: str, condition: str) -> float:
    """The number a metric's condition compares ``result[0]`` (failure) or ``result[1]``
    (success) with, read from the run the controller executes."""
    spec = next(m for m in run["spec"]["metrics"] if m["name"] == metric)
    found = re.search(r"result\[[01]\] (?:>=|<=) (-?[0-9.]+(?:e-?[0-9]+)?)", spec[condition])
    assert found, spec[condition]
    return float(found.group(1))


def step_index(run: dict[str, Any]) -> int:
    return int(run["metadata"].get("labels", {}).get("step-index", -1))


def record(scenario: str, run: dict[str, Any], metric: str) -> list[float]:
    """Keep the metric's last measurement for the report; return its vector."""
    taken = measurements(run, metric)
    last = taken[-1] if taken else {}
    label = kind(run) + (f" step {step_index(run)}" if kind(run) == "Step" else "")
    VERDICTS.append(
        (
            scenario,
            label,
            metric,
            str(results(run).get(metric, {}).get("phase", "")),
            len(taken),
            str(last.get("value", last.get("message", ""))),
        )
    )
    try:
        found = vector(last)
    except AssertionError:  # an Error measurement has a message, no value
        found = []
    explained(run, metric, found)
    return found


def explained(run: dict[str, Any], metric: str, found: list[float]) -> dict[str, Any]:
    """``python -m delivery explain --json`` on the run as the controller stored it: it decodes
    the same vector and calls a failed metric an abort (an advisory one's: no abort)."""
    done = subprocess.run(
        [sys.executable, "-m", "delivery", "explain", "-", "--json"], cwd=ROOT,
        input=json.dumps(run), capture_output=True, text=True, check=False,
    )
    assert done.returncode == 0, done.stderr
    (verdict,) = json.loads(done.stdout)
    said = next(m for m in verdict["metrics"] if m["name"] == metric)
    if len(found) == EVIDENCE_LEN:
        decoded = [said["evidence"][name] for name in EVIDENCE]
        assert all(d == pytest.approx(v) for d, v in zip(decoded, found, strict=True)
                   if not math.isnan(v)), (decoded, found)
    if str(results(run).get(metric, {}).get("phase")) == "Failed":
        dry_run = {d["metricName"] for d in run["spec"].get("dryRun") or []}
        assert said["verdict"] == ("failed-advisory" if metric in dry_run else "aborted"), said
    return dict(said)


class Runs:
    """Every AnalysisRun of the release in progress, as last seen (Argo deletes old ones and
    terminates the background run at the end, so scenarios keep what they saw while watching)."""

    def __init__(self, stack: Stack, service: str):
        self.stack, self.service = stack, service
        self.seen: dict[str, dict[str, Any]] = {}
        self.history: list[dict[str, Any]] = []  # every snapshot, oldest first

    def __call__(self) -> None:
        for run in analysis_runs(self.stack, self.service):
            self.seen[run["metadata"]["name"]] = run
            self.history.append(run)

    def of(self, which: str) -> list[dict[str, Any]]:
        runs = [r for r in self.seen.values() if kind(r) == which]
        return sorted(runs, key=lambda r: (step_index(r), r["metadata"]["creationTimestamp"]))


# --------------------------------------------------------------------------- releases

# How the releases of the scenarios serve (e2e/simulator.py's Behaviour); a release declared
# with none is healthy
BAD = Behaviour(errors=0.5)  # fails half of its requests
SLOW = Behaviour(slow=1.0)  # every request over the latency SLOs' 2 s


def declare(stack: Stack, service: str, tag: str, behaviour: Behaviour = HEALTHY) -> None:
    """Tell the simulator how the pods of the release ``tag`` serve, before any of them runs."""
    stack.simulator(f"behaviour/{service}/{tag}", asdict(behaviour))


def release(
    stack: Stack, pulumi: Pulumi, service: str, tag: str, timeline: Timeline,
    behaviour: Behaviour = HEALTHY, **changes: Any,
) -> None:
    """`pulumi up` of ``service`` at ``tag`` (with ``changes`` to the stack's settings), whose
    pods serve as ``behaviour`` says; returns once the rollout has started."""
    declare(stack, service, tag, behaviour)
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
    at_weight: int | None = None,
    held: bool = False,
) -> dict[str, Any]:
    """Poll the Rollout until its phase is in ``until`` (or, with ``at_weight``, until it has
    set that weight; with ``held``, also once an inconclusive AnalysisRun paused it); collect
    the weights it went through.

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
        done = phase(body) in until if at_weight is None else (
            current >= at_weight or phase(body) in {"Healthy", "Degraded"})
        done = done or (held and "InconclusiveAnalysisRun" in pause_reasons(body))
        return Observation(done, summary(body), body)

    body: dict[str, Any] = wait_for(f"{service} to reach {sorted(until)}", probe, timeout, 0.3)
    timeline.mark(phase(body).lower())
    return body


def paused_by_background(stack: Stack, service: str, runs: Runs, why: str) -> dict[str, Any]:
    """Wait until a background run is Inconclusive and the rollout paused on it
    (InconclusiveAnalysisRun); a rollout that ends instead is returned for the caller's
    assertions to fail on."""

    def paused() -> Observation:
        runs()
        body = rollout(stack, service)
        reasons = pause_reasons(body)
        background = [r for r in runs.of("Background") if run_phase(r) == "Inconclusive"]
        held = "InconclusiveAnalysisRun" in reasons and bool(background)
        ended = phase(body) in ("Degraded", "Healthy")
        return Observation(held or ended, summary(body) + f" pause={reasons}", body)

    body: dict[str, Any] = wait_for(f"the rollout to pause {why}", paused, 90)
    return body


def stable_image(body: dict[str, Any]) -> str:
    return str(body["spec"]["template"]["spec"]["containers"][0]["image"])


def running_tag(stack: Stack, service: str) -> str:
    return stable_image(rollout(stack, service)).rsplit(":", 1)[-1]


def went_through(weights: list[int]) -> list[int]:
    seen = [w for w in weights if w in (10, 25, 50, 100)]
    return [w for i, w in enumerate(seen) if i == 0 or seen[i - 1] != w]


def all_calls(*calls: Callable[[], object]) -> Callable[[], None]:
    def call() -> None:
        for c in calls:
            c()

    return call


# --------------------------------------------------------------------------- scenarios


def test_0_the_cluster_is_watched_by_the_pinned_prometheus_3(stack: Stack) -> None:
    """Every scenario below runs on the Prometheus `make test` proves the rules on."""
    pinned = "3." + re.search(
        r"^PROMETHEUS_VERSION=v0\.3(\d+\.\d+)", (ROOT / "e2e/tools/build.sh").read_text(), re.M
    ).group(1)  # type: ignore[union-attr]
    with urllib.request.urlopen(f"{stack.prometheus_url}/api/v1/status/buildinfo") as reply:
        info = json.load(reply)["data"]
    assert info["version"] == pinned, info


def test_1_pulumi_up_creates_everything_and_a_second_up_changes_nothing(
    stack: Stack, pulumi: Pulumi, inbox: Inbox
) -> None:
    timeline = Timeline("1 first pulumi up, then an idempotent one")
    result = pulumi.up()
    timeline.mark("pulumi up done")
    assert result.summary.result == "succeeded"
    for service, namespace in SERVICES.items():
        wait_for(
            f"{service} Healthy",
            lambda s=service: Observation(  # type: ignore[misc]
                phase(rollout(stack, s)) == "Healthy", summary(rollout(stack, s))
            ),
            120,
        )
        gate = stack.get("analysistemplate", f"{service}-slo-gate", namespace)
        assert [m["name"] for m in gate["spec"]["metrics"]] == ["error-rate", "latency"]
        background = stack.get("analysistemplate", f"{service}-slo-background", namespace)
        assert [m["name"] for m in background["spec"]["metrics"]] == [
            "error-rate",
            "error-rate-shared-incident",
            "latency",
            "latency-shared-incident",
            "prometheus-outage",
        ]
        assert not background["spec"].get("dryRun")
        stack.get("service", f"{service}-stable", namespace)
        stack.get("service", f"{service}-canary", namespace)
        stack.get("prometheusrule", f"{service}-slos", namespace)
        # the evidence the gates read: the PrometheusRule `pulumi up` created is what
        # `python -m delivery rules` wrote for this Prometheus, and Prometheus evaluates it
        evidence = stack.get("prometheusrule", f"{service}-canary-evidence", namespace)
        assert stack.rules_dir is not None
        written = yaml.safe_load(
            (stack.rules_dir / f"{service}-canary-evidence.yml").read_text()
        )["groups"]
        assert evidence["spec"]["groups"] == written, service
        assert (gate["spec"]["metrics"][0]["provider"]["prometheus"]["query"]).startswith(
            "slo:canary_evidence:value{"
        ), gate["spec"]["metrics"][0]
    with urllib.request.urlopen(f"{stack.prometheus_url}/api/v1/rules", timeout=10) as reply:
        groups = {g["name"]: g for g in json.load(reply)["data"]["groups"]}
    for service in SERVICES:
        group = groups[f"slo-canary-evidence-{service}"]
        assert group["interval"] == 1, group["interval"]
        assert all(r["health"] in ("ok", "unknown") for r in group["rules"]), [
            (r["name"], r.get("lastError")) for r in group["rules"] if r["health"] == "err"
        ]
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
    notes = json.loads(stack.kubectl("get", "configmap", "argo-rollouts-notification-configmap",
                                     "-n", "argo-rollouts", "-o", "json"))["data"]
    assert "trigger.slo-canary-aborted" in notes and "service.webhook.e2e-inbox" in notes
    for service in SERVICES:
        annotations = rollout(stack, service)["metadata"].get("annotations") or {}
        assert annotations.get(
            "notifications.argoproj.io/subscribe.slo-canary-aborted.e2e-inbox") == "", annotations
    time.sleep(2)  # a notification the controller would send arrives within this
    # a first deployment and a `pulumi up` that changes nothing notify nobody
    assert inbox.since(0) == [], [n.text for n in inbox.since(0)]
    assert not inbox.refused, inbox.refused
    timeline.done("created; second up: no changes, no notifications")


def _evidence_order(stack: Stack, run: dict[str, Any], metric: str) -> list[str]:
    """The ``evidence`` labels of the metric's query, asked of Prometheus directly with the
    run's arguments: the order Argo reads the values in."""
    spec = next(m for m in run["spec"]["metrics"] if m["name"] == metric)
    query = spec["provider"]["prometheus"]["query"]
    for arg in run["spec"].get("args") or []:
        query = query.replace("{{args.%s}}" % arg["name"], arg["value"])  # noqa: UP031
    return [r["metric"].get("evidence", "") for r in stack.query(query)]


def test_2_a_good_release_goes_10_25_50_100_and_ends_healthy(
    stack: Stack, pulumi: Pulumi, inbox: Inbox
) -> None:
    timeline = Timeline("2 good release promoted")
    mark = inbox.mark()
    release(stack, pulumi, "orchestrator", "1.1.0", timeline)
    weights: list[int] = []
    runs = Runs(stack, "orchestrator")
    body = watch(stack, "orchestrator", timeline, {"Healthy", "Degraded"}, 240, weights, runs)
    runs()
    assert phase(body) == "Healthy", summary(body)
    assert stable_image(body).endswith(":1.1.0")
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
    assert [n.event for n in inbox.since(mark, "orchestrator")] == ["completed"]
    first = gates[0]
    assert _evidence_order(stack, first, "error-rate") == list(EVIDENCE)
    clean = vector(measurements(first, "error-rate")[-1])
    timeline.done(
        f"Healthy at 1.1.0 via 10, 25, 50, 100; 10% gate passed after "
        f"{len(measurements(first, 'error-rate'))} measurement(s) at "
        f"{clean[3]:.0f} canary requests"
    )


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


def _failed_metric(runs: list[dict[str, Any]], metric: str) -> tuple[dict[str, Any], list[float]]:
    """The run whose ``metric`` failed and the vector of its failing measurement."""
    for run in runs:
        if results(run).get(metric, {}).get("phase") == "Failed":
            failing = [m for m in measurements(run, metric) if m.get("phase") == "Failed"]
            assert failing, results(run)[metric]
            return run, vector(failing[-1])
    raise AssertionError(f"no run with {metric} Failed: {[results(r) for r in runs]}")


def test_3_a_bad_release_is_aborted_and_its_page_alert_fires_then_clears(
    stack: Stack, pulumi: Pulumi, inbox: Inbox
) -> None:
    timeline = Timeline("3+8 bad release aborted, page fires and clears")
    good = f"{REGISTRY}/api-gateway:1.0.0"
    mark = inbox.mark()
    release(stack, pulumi, "api-gateway", "1.1.0", timeline, BAD)

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

    runs = Runs(stack, "api-gateway")
    body = _aborted(stack, "api-gateway", timeline, good, also=all_calls(page, runs))
    runs()
    assert "page alert firing" in timeline.marks, "the bad release never paged"
    failed = [r for r in runs.seen.values() if run_phase(r) == "Failed"]
    assert failed, "no failed AnalysisRun"
    note = notified(inbox, pulumi, mark, "api-gateway", "aborted", "ABORTED", "error-rate")
    # the gate's run and the background run can both fail on error-rate before the abort lands:
    # the message has an entry per run that had failed when it was sent; check the first of them
    said_runs = {s.get("run"): s for s in note.entries() if s.get("slo") == "error-rate"}
    run, value = _failed_metric([r for r in failed if r["metadata"]["name"] in said_runs],
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
    live = subprocess.run(
        [sys.executable, "-m", "delivery", "explain", "--stack", "Pulumi.e2e.yaml", "--service",
         "api-gateway", "--json"], cwd=ROOT, env=stack.env, capture_output=True, text=True,
        check=False, timeout=120,
    )
    assert live.returncode == 0, live.stderr
    runs_said = {r["name"]: r for r in json.loads(live.stdout)}
    assert run["metadata"]["name"] in runs_said, sorted(runs_said)
    live_metric = next(m for m in runs_said[run["metadata"]["name"]]["metrics"]
                       if m["name"] == "error-rate")
    assert live_metric["verdict"] == "aborted", live_metric
    # the dashboards' rollout-events annotation marks the abort at its time
    aborted_at = datetime.datetime.fromisoformat(
        body["status"]["abortedAt"].replace("Z", "+00:00")).timestamp()

    def marked() -> Observation:
        found = stack.query_range(rollout_events_query(CATALOGUE_SERVICES["api-gateway"]),
                                  aborted_at - 60, time.time())
        aborts = [float(v[0]) for r in found if r["metric"].get("reason") == "RolloutAborted"
                  for v in r["values"]]
        return Observation(bool(aborts), f"abort marks at {aborts[:3]}", min(aborts or [0]))

    first_mark = wait_for("the abort on the dashboards' annotation query", marked, 30)
    # within a scrape (1 s) of the abort, abortedAt being whole seconds
    assert aborted_at - 1 <= first_mark <= aborted_at + 3, (first_mark, aborted_at)
    wait_for(
        "the page alert to clear after the rollback",
        lambda: Observation(not page().ok, "page still firing", True),
        120,
    )
    timeline.mark("page alert cleared")
    _recover(stack, pulumi, "api-gateway", "1.0.0")
    timeline.done(f"aborted: {body['status'].get('message', '')[:60]}")


def test_3b_pulumi_up_reports_an_aborted_rollout_when_waiting(stack: Stack, pulumi: Pulumi) -> None:
    timeline = Timeline("3b pulumi up waits and fails on abort")
    from pulumi.automation.errors import CommandError

    declare(stack, "api-gateway", "1.2.0", BAD)
    with (
        pulumi.override(delivery={"waitForRollout": True, "timeoutSeconds": 60}),
        pytest.raises(CommandError) as err,
    ):
        pulumi.up(services={"api-gateway": {"image": f"{REGISTRY}/api-gateway:1.2.0"}})
    timeline.mark("pulumi up failed")
    assert "Rollout api/api-gateway was aborted" in str(err.value), str(err.value)[-2000:]
    _recover(stack, pulumi, "api-gateway", "1.0.0")
    timeline.done("pulumi up failed after the abort")


def test_4_a_slow_release_is_aborted(stack: Stack, pulumi: Pulumi, inbox: Inbox) -> None:
    timeline = Timeline("4 slow release aborted")
    mark = inbox.mark()
    release(stack, pulumi, "agent-runner", "1.1.0", timeline, SLOW)
    runs = Runs(stack, "agent-runner")
    _aborted(stack, "agent-runner", timeline, f"{REGISTRY}/agent-runner:1.0.0", also=runs)
    runs()
    failed = [r for r in runs.seen.values() if run_phase(r) == "Failed"]
    run, value = _failed_metric(failed, "latency")
    record(timeline.scenario, run, "latency")
    assert len(value) == EVIDENCE_LEN and value[0] >= boundary(run, "latency", "failureCondition")
    assert value[2] == pytest.approx(value[3]), value  # every canary request slower than 2s
    note = notified(inbox, pulumi, mark, "agent-runner", "aborted", "ABORTED", "latency")
    assert note.slos()["latency"]["phase"] == "Failed", note.body
    _recover(stack, pulumi, "agent-runner", "1.0.0")
    timeline.done("aborted on latency")


def test_5_too_little_traffic_is_inconclusive_then_proceeds(stack: Stack, pulumi: Pulumi) -> None:
    timeline = Timeline("5 no traffic: held, then proceeds")
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
    assert stable_image(body).endswith(":1.2.0")
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


def test_6_manual_gate_holds_until_promoted(stack: Stack, pulumi: Pulumi, inbox: Inbox) -> None:
    timeline = Timeline("6 manual gate")
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
        assert phase(body) == "Healthy" and stable_image(body).endswith(":1.3.0"), summary(body)
        notified(inbox, pulumi, mark, "api-gateway", "completed", "PROMOTED", "error-rate")
    timeline.done("held at the gate (one paused notification), completed after promote")


OUTAGE = 120.0  # seconds Prometheus is stopped in scenario 7
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


def test_7_prometheus_stopped_mid_rollout_never_aborts_nor_promotes(
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
    timeline = Timeline("7 Prometheus stopped for 2 minutes mid-rollout")
    service = "agent-runner"
    runs = Runs(stack, service)
    release(stack, pulumi, service, "1.4.0", timeline)
    stack.stop_prometheus()
    timeline.mark("prometheus stopped")
    seen: list[tuple[float, str, int, bool]] = []  # (seconds, phase, step, abort)
    stopped = time.monotonic()
    try:
        while time.monotonic() - stopped < OUTAGE:
            runs()
            body = rollout(stack, service)
            status = body.get("status", {})
            seen.append(
                (
                    round(time.monotonic() - stopped, 1),
                    phase(body),
                    int(status.get("currentStepIndex", -1)),
                    bool(status.get("abort")),
                )
            )
            # waiting or paused: never aborted, never promoted, while Prometheus is down
            assert phase(body) not in ("Degraded", "Healthy"), summary(body)
            assert not status.get("abort"), summary(body)
            assert status.get("stableRS") != status.get("currentPodHash"), summary(body)
            time.sleep(1)
    finally:
        if stack.prometheus is not None and stack.prometheus.proc is None:
            stack.start_prometheus_again()
    timeline.mark("prometheus started again")
    # what the canary served until Prometheus came back: none of it may be lost
    canary = rollout(stack, service)["status"]["currentPodHash"]
    during_outage = served(stack, service, canary)[0]
    # where it waited: one gate, for (nearly) the whole outage
    late = {step for t, _, step, _ in seen if t >= 20}
    assert len(late) == 1 and late <= GATE_STEPS, seen
    waited_at = late.pop()
    phases = sorted({p for _, p, _, _ in seen})
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

    weights: list[int] = []
    body = watch(stack, service, timeline, {"Healthy", "Degraded"}, 240, weights, runs)
    runs()
    assert phase(body) == "Healthy", summary(body)
    assert stable_image(body).endswith(":1.4.0"), summary(body)
    assert body["status"]["stableRS"] == body["status"]["currentPodHash"]
    gate = next(r for r in runs.of("Step") if step_index(r) == waited_at)
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
    for run in runs.of("Step") + runs.of("Background"):
        assert run_phase(run) not in ("Error", "Failed", "Inconclusive"), run.get("status")
    timeline.done(
        f"waited at step {waited_at} ({', '.join(phases)}) through {len(errors)} Error "
        f"measurements (retried every {retries[len(retries) // 2]:.0f} s), never aborted; "
        f"Healthy after Prometheus came back"
    )


LONG_OUTAGE = 150.0  # seconds Prometheus is stopped in scenario 7b: past its outageLimit, 2m


def test_7b_prometheus_away_past_the_outage_limit_pauses_then_goes_on_when_promoted(
    stack: Stack, pulumi: Pulumi
) -> None:
    """outageLimit 2m and Prometheus stopped for 150 s mid-rollout: while it is away the
    rollout waits, neither aborted nor promoted (as in 7). Once it answers, the background's
    prometheus-outage metric reads the evidence group's gap, over 120 s, and pauses the rollout
    for a human (InconclusiveAnalysisRun). `kubectl argo rollouts promote`, as the runbook says,
    takes it past the gate it waited at; the next gates judge it and it completes."""
    timeline = Timeline("7b Prometheus away past outageLimit pauses")
    service = "agent-runner"
    runs = Runs(stack, service)
    with pulumi.override(delivery={"analysis": {"outageLimit": "2m"}}):
        release(stack, pulumi, service, "1.4.1", timeline)
        stack.stop_prometheus()
        timeline.mark("prometheus stopped")
        stopped = time.monotonic()
        try:
            while time.monotonic() - stopped < LONG_OUTAGE:
                runs()
                body = rollout(stack, service)
                assert phase(body) not in ("Degraded", "Healthy"), summary(body)
                assert not body.get("status", {}).get("abort"), summary(body)
                time.sleep(1)
        finally:
            if stack.prometheus is not None and stack.prometheus.proc is None:
                stack.start_prometheus_again()
        timeline.mark("prometheus started again")

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


def test_9_nginx_canary_ingress_weight_follows_the_steps(stack: Stack, pulumi: Pulumi) -> None:
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

    with pulumi.override(
        delivery={"trafficRouting": "nginx"},
        services={"orchestrator": {"host": "orchestrator.e2e.internal"}},
    ):
        release(stack, pulumi, "orchestrator", "1.5.0", timeline)
        body = watch(
            stack, "orchestrator", timeline, {"Healthy", "Degraded"}, 240, also=canary_weight
        )
    assert phase(body) == "Healthy", summary(body)
    steps = [w for w in seen if w in ("10", "25", "50")]
    assert steps == ["10", "25", "50"], seen
    timeline.done(f"canary-weight annotation went {' -> '.join(seen)}")


def test_9b_traefik_weights_follow_the_steps_and_go_back_to_0_on_abort(
    stack: Stack, pulumi: Pulumi
) -> None:
    """trafficRouting: traefik: the real controller moves the weighted TraefikService's weights
    (Traefik v3's CRDs, traefik.io) through the steps, and back to 0 when a release aborts."""
    timeline = Timeline("9b Traefik weights")
    service, namespace = "orchestrator", SERVICES["orchestrator"]
    good_tag = running_tag(stack, service)
    seen: list[int] = []

    def canary_weight() -> None:
        found = json.loads(stack.kubectl("get", "traefikservice", service, "-n", namespace,
                                         "-o", "json", check=False) or "{}")
        weights = {s["name"]: s.get("weight") for s in
                   found.get("spec", {}).get("weighted", {}).get("services", [])}
        value = weights.get(f"{service}-canary")
        if value is not None and (not seen or seen[-1] != value):
            assert weights[f"{service}-stable"] == 100 - value, weights
            seen.append(value)
            timeline.mark(f"canary weight {value}")

    with pulumi.override(delivery={"trafficRouting": "traefik"}):
        release(stack, pulumi, service, "1.5.2", timeline)
        body = watch(stack, service, timeline, {"Healthy", "Degraded"}, 240, also=canary_weight)
        assert phase(body) == "Healthy", summary(body)
        route = stack.get("ingressroute", service, namespace)
        assert route["spec"]["routes"][0]["services"] == [
            {"name": service, "kind": "TraefikService"}]
        assert [w for w in seen if w in (10, 25, 50)] == [10, 25, 50], seen
        promoted = list(seen)
        seen.clear()
        release(stack, pulumi, service, "1.5.3", timeline, BAD)
        _aborted(stack, service, timeline, f"{REGISTRY}/{service}:1.5.2", also=canary_weight)
        canary_weight()
        assert seen and seen[-1] == 0 and 10 in seen, seen  # up to 10, back to 0 on abort
        _recover(stack, pulumi, service, "1.5.2")
    timeline.done(f"weights {' -> '.join(map(str, promoted))}; aborted: "
                  f"{' -> '.join(map(str, seen))} (was {good_tag})")


def test_10_exhausted_error_budget_freezes_the_next_release(
    stack: Stack, pulumi: Pulumi, inbox: Inbox
) -> None:
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


def test_11_a_subtle_regression_is_aborted(stack: Stack, pulumi: Pulumi) -> None:
    """3x the error budget: inside the default indifference zone (passBurnRate 1, failBurnRate
    10, where a 3x canary would pass), outside it at failBurnRate 2.5, which must abort."""
    timeline = Timeline("11 subtle regression (3x budget) aborted")
    service, good_tag = "api-gateway", running_tag(stack, "api-gateway")
    runs = Runs(stack, service)
    stack.set_rate(service, SUBTLE_RPS)
    try:
        with pulumi.override(delivery={"analysis": {"failBurnRate": 2.5}}):
            release(stack, pulumi, service, "1.6.0", timeline, Behaviour(errors=0.003))
            _aborted(stack, service, timeline, f"{REGISTRY}/{service}:{good_tag}", also=runs)
    finally:
        stack.set_rate(service, RPS)
    runs()
    failed = [r for r in runs.seen.values() if run_phase(r) == "Failed"]
    run, value = _failed_metric(failed, "error-rate")
    record(timeline.scenario, run, "error-rate")
    abort = boundary(run, "error-rate", "failureCondition")
    assert abort == pytest.approx(ABORT)
    assert len(value) == EVIDENCE_LEN, value
    assert value[0] >= abort, value
    assert value[2] / value[3] == pytest.approx(0.003, rel=0.05), value  # 3x the 0.1% budget
    assert value[4] == 0 and value[5] > 0, value  # stable clean: judged on the SLO alone
    # judged is the canary's own statistic (stable clean), divided by the abort side's scale
    assert value[0] == pytest.approx(value[1] / judge.abort_scale(value[STEPS], abort)), value
    # the gate never passed it (a gate the abort terminated is marked Successful: no pass)
    for gate in (r for r in runs.seen.values() if kind(r) == "Step"):
        metric = results(gate).get("error-rate", {})
        assert not passed(gate, "error-rate"), metric
        assert metric.get("phase") != "Successful" or gate["spec"].get("terminate"), metric
    _recover(stack, pulumi, service, good_tag)
    timeline.done(
        f"aborted by {kind(run)} error-rate at {value[0]:.2f} >= {abort:.2f} after "
        f"{value[3]:.0f} canary requests"
    )


def test_12_a_good_release_with_occasional_errors_at_low_traffic_is_promoted(
    stack: Stack, pulumi: Pulumi
) -> None:
    """Half the error budget, at a rate where the gate needs several measurements."""
    timeline = Timeline("12 0.5x-budget release at low traffic promoted")
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
    assert stable_image(body).endswith(":1.6.0")
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


def test_13_a_shared_incident_pauses_the_rollout_instead_of_aborting(
    stack: Stack, pulumi: Pulumi, inbox: Inbox
) -> None:
    """Stable and canary both at 10x the budget: rolling back would not help, so the rollout
    pauses and says why."""
    timeline = Timeline("13 shared incident pauses")
    service, good_tag = "api-gateway", running_tag(stack, "api-gateway")
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
    _recover(stack, pulumi, service, good_tag)
    timeline.done(f"paused, not aborted: {message[:70]}")


def test_14_an_advisory_gate_is_measured_but_never_aborts(stack: Stack, pulumi: Pulumi) -> None:
    """orchestrator/latency advisory, the canary slow: its dry-run metric fails in the
    background run, the error-rate gate promotes the release."""
    timeline = Timeline("14 advisory gate measured, not enforced")
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
    assert stable_image(body).endswith(":1.7.0")
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


# --------------------------------------------------------------------------- restarts, cold starts


INJECTED = 4.0  # errors the restarting canary pod serves before its restart
COLD_START = {"share": 0.01, "seconds": 5}  # 1% of a new pod's requests in its first 5 s
# 3%: about 30 errors per pod, so that the abort without warm-up does not hang on when the first
# measurement allowed to decide falls (at 1% the statistic crosses the abort boundary only while
# the canary has served fewer than about 2,000 requests: a busy machine measures later)
COLD_START_NO_WARM_UP = {"share": 0.03, "seconds": 5}
WARM_UP = "10s"  # the e2e stack's seconds-for-minutes: twice the cold start


def canary_hash(stack: Stack, service: str) -> str:
    return str(rollout(stack, service)["status"]["currentPodHash"])


def served(stack: Stack, service: str, pod_hash: str) -> tuple[float, float]:
    """(requests, errors) the simulator served from the pods of ``pod_hash``, restarts
    included: the truth the verdict's counts are checked against."""
    pods = [p for p in stack.simulated(service).values() if p["hash"] == pod_hash]
    return sum(p["requests"] for p in pods), sum(p["errors"] for p in pods)


def first_gate(runs: Runs) -> dict[str, Any] | None:
    gates = [r for r in runs.of("Step") if step_index(r) == 2]
    return gates[0] if gates else None


def test_15_a_healthy_canary_whose_pod_restarts_mid_gate_is_promoted(
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
    timeline = Timeline("15 canary pod restarts mid-gate (lazy error series), promoted")
    service, tag = "orchestrator", "1.8.0"
    runs = Runs(stack, service)
    weights: list[int] = []
    stack.simulator(f"lazy/{service}/1")
    try:
        release(stack, pulumi, service, tag, timeline)
        canary = canary_hash(stack, service)

        def serving() -> Observation:
            pods = stack.simulated(service)
            mine = [n for n, p in pods.items() if p["hash"] == canary and p["requests"] > 0]
            return Observation(bool(mine), pods, mine)

        pod = wait_for("the canary pod to serve requests", serving, 60)[0]
        assert stack.simulated(service)[pod]["series"] == ["200"], "not created lazily"
        stack.simulator(f"inject/{service}/{pod}/{INJECTED}")
        timeline.mark("errors injected")

        def gate_saw_errors() -> Observation:
            runs()
            gate = first_gate(runs)
            taken = measurements(gate, "error-rate") if gate else []
            values = [vector(m) for m in taken if m.get("phase") == "Inconclusive"]
            saw = any(
                len(v) == EVIDENCE_LEN and v[CANARY_ERRORS] == pytest.approx(INJECTED)
                for v in values
            )
            undecided = gate is not None and run_phase(gate) == "Running"
            return Observation(saw and undecided, f"{[m.get('phase') for m in taken]} "
                               f"{values[-1:]} {summary(rollout(stack, service))}")

        wait_for("the 10% gate to see the errors, undecided", gate_saw_errors, 60)
        before = stack.simulator(f"restart/{service}/{pod}")[pod]
        timeline.mark("canary pod restarted")
        runs()
        gate = first_gate(runs)
        assert gate is not None and run_phase(gate) == "Running", "restarted after the gate"
        assert stack.simulated(service)[pod]["series"] == ["200"]
        # Prometheus sees the series go: the lazily created error series is stale
        wait_for(
            "the restarted pod's error series to go stale",
            lambda: Observation(
                not stack.query(f'http_requests_total{{pod="{pod}",code="500"}}'), "still there"
            ),
            30,
        )
        timeline.mark("error series stale")
        body = watch(stack, service, timeline, {"Healthy", "Degraded"}, 240, weights, runs)
    finally:
        stack.simulator(f"lazy/{service}/0")
    runs()
    assert phase(body) == "Healthy", summary(body)
    assert stable_image(body).endswith(f":{tag}")
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


def _cold_start_release(
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


def test_16_start_up_errors_are_left_out_of_the_verdict_with_warm_up(
    stack: Stack, pulumi: Pulumi
) -> None:
    """A release whose every pod fails 1% of its requests in its first 5 seconds (about 10
    each at 200 a second: pools and caches filling) and is healthy after, with api-gateway's
    ``warmUp`` at 10s: every pod's first 10 seconds count in the SLO but not in the verdict,
    so the canary is judged on its warm requests and promoted."""
    timeline = Timeline("16 start-up errors, warmUp 10s: promoted")
    service, tag = "api-gateway", "1.8.0"
    runs = Runs(stack, service)
    weights: list[int] = []
    started = time.monotonic()
    body = _cold_start_release(stack, pulumi, service, tag, timeline, runs, weights, WARM_UP)
    runs()
    assert phase(body) == "Healthy", summary(body)
    assert stable_image(body).endswith(f":{tag}")
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


def test_17_the_same_start_up_errors_without_warm_up(stack: Stack, pulumi: Pulumi) -> None:
    """The same kind of release without ``warmUp``: start-up errors are evidence, and they come
    as a burst, about 30 errors (3%) in each pod's first five one-second scrape intervals and
    none after. The judge reads errors concentrated in a few intervals through the dispersion,
    and while the intervals are few through the abort side's scale (``judge.abort_scale``), so
    they weigh as a few intervals' worth of evidence: enough to abort if the first measurement
    allowed to decide comes within about two intervals of the minimum, too little later (a
    busy machine measures later). Nor can the gate pass on them: the canary statistic stays
    above the pass boundary through the 10% gate's 15 measurements. Asserted, as the runbook
    says ("Warm-up"): the release does not get past 10%. Either it is aborted there (judged at
    or above the abort boundary), or its gate ends inconclusive and the rollout waits for the
    operator (judged below the abort boundary at every measurement, the canary statistic above
    the pass boundary). The outcome and its numbers are in the e2e report."""
    timeline = Timeline("17 start-up errors, no warmUp: stopped at 10%")
    service, good_tag, tag = "api-gateway", running_tag(stack, "api-gateway"), "1.9.0"
    runs = Runs(stack, service)
    weights: list[int] = []
    body = _cold_start_release(stack, pulumi, service, tag, timeline, runs, weights, None,
                               COLD_START_NO_WARM_UP, held=True)
    runs()
    assert went_through(weights) == [10], weights
    gate = runs.of("Step")[-1]
    abort = boundary(gate, "error-rate", "failureCondition")
    if phase(body) == "Degraded":
        assert body["status"].get("abort") is True, summary(body)
        failed = [r for r in runs.seen.values() if run_phase(r) == "Failed"]
        run, value = _failed_metric(failed, "error-rate")
        assert value[JUDGED] >= abort and value[STEPS] >= MIN_STEPS, value
        outcome = f"aborted at 10%: judged {value[JUDGED]:.2f} >= {abort:.2f}"
    else:
        assert phase(body) == "Paused" and not body["status"].get("abort"), summary(body)
        assert "InconclusiveAnalysisRun" in pause_reasons(body), summary(body)
        run = gate
        assert run_phase(run) == "Inconclusive", run.get("status")
        taken = [vector(m) for m in measurements(run, "error-rate")]
        assert taken and all(v[JUDGED] < abort for v in taken if len(v) > JUDGED), taken
        value = taken[-1]
        assert value[CANARY] > ACCEPT, value  # not a pass either
        outcome = (f"paused at 10%, gate inconclusive: judged {value[JUDGED]:.2f} < {abort:.2f}, "
                   f"canary {value[CANARY]:.2f} > {ACCEPT:.2f}")
    record(timeline.scenario, run, "error-rate")
    assert 0 < value[CANARY_ERRORS] <= 33, value  # the canary pod's start-up errors only
    assert value[STABLE_ERRORS] == 0 and value[STABLE_REQUESTS] > 0, value
    # the canary statistic is the log likelihood ratio of its counts, divided by its dispersion;
    # with stable clean and busy, judged is that divided by the abort side's scale
    slo = next(
        s
        for s in resolve_all(load_catalogue(ROOT / "e2e" / "catalogue.yaml"))
        if s.service.name == service and s.slo.name == "error-rate"
    )
    [gate_spec] = judge.gates([slo], DeliveryConfig.model_validate(pulumi.config["delivery"]))
    expected = (judge.llr(value[CANARY_ERRORS], value[CANARY_REQUESTS], gate_spec.hypotheses)
                / value[DISPERSION])
    assert value[CANARY] == pytest.approx(expected, rel=1e-3), (value, expected)
    # the scale at the rendered abort boundary: the service's two enforced SLOs share the
    # false-abort risk, which a gate computed from this SLO alone would not
    assert value[JUDGED] == pytest.approx(
        value[CANARY] / judge.abort_scale(value[STEPS], abort), rel=1e-3), value
    _recover(stack, pulumi, service, good_tag)
    timeline.done(
        f"{outcome}; {value[CANARY_ERRORS]:.1f} start-up errors in "
        f"{value[CANARY_REQUESTS]:.0f} requests, {value[STEPS]:.0f} steps, "
        f"dispersion {value[DISPERSION]:.2f}"
    )


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
    lines += [
        "",
        "Verdicts as the AnalysisRuns show them: the last measurement of each metric, "
        "[judged, canary, canary errors, canary requests, stable errors, stable requests, "
        "stable, dispersion, steps].",
        "",
        "| scenario | run | metric | phase | measurements | last value |",
        "|---|---|---|---|---|---|",
    ]
    for scenario, run, metric, result, count, value in VERDICTS:
        lines.append(f"| {scenario} | {run} | {metric} | {result} | {count} | `{value}` |")
    text = "\n".join(lines) + "\n"
    out = ROOT / "out"
    out.mkdir(exist_ok=True)
    (out / "e2e-report.md").write_text(text)
    print("\n" + text)


def test_18_a_release_that_turns_bad_at_50_percent_is_aborted_at_50(
    stack: Stack, pulumi: Pulumi
) -> None:
    """A release healthy at 10% and 25% whose canary pods fail every request from the moment the
    rollout sets 50% (a load-dependent regression). Its evidence from 10% and 25% is clean, so
    the cumulative statistic alone would let the 50% gate pass at its first look (issue 19);
    the gate passes only while the weight's recent evidence leans good, and the rollout is aborted
    at 50% with the stable version untouched. The pause is 20 s here so that the errors are
    scraped before the 50% gate's first look."""
    timeline = Timeline("18 a release that turns bad at 50% is aborted at 50%")
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
        _aborted(stack, service, timeline, f"{REGISTRY}/{service}:{good_tag}", also=runs)
    runs()
    assert went_through(weights)[:3] == [10, 25, 50], weights
    gates = sorted((r for r in runs.seen.values() if kind(r) == "Step"), key=step_index)
    assert len(gates) >= 2 and all(passed(g, "error-rate") for g in gates[:2]), gates
    # no gate at 50% passed: the weight's recent evidence leaned bad at every look
    assert not any(passed(g, "error-rate") for g in gates[2:]), gates[2:]
    failed = [r for r in runs.seen.values() if run_phase(r) == "Failed"]
    run, value = _failed_metric(failed, "error-rate")
    record(timeline.scenario, run, "error-rate")
    assert len(value) == EVIDENCE_LEN, value
    # before the abort side's scales (each at its own boundary), the change-point statistic is
    # at least the cumulative one: it drops the clean evidence of 10% and 25%
    spec = next(m for m in run["spec"]["metrics"] if m["name"] == "error-rate")
    cusum_abort = re.search(judge.condition_bound(CUSUM, ">="), spec["failureCondition"])
    assert cusum_abort, spec["failureCondition"]
    abort = boundary(run, "error-rate", "failureCondition")
    raw_cusum = value[CUSUM] * judge.abort_scale(value[STEPS], float(cusum_abort.group(1)))
    raw_judged = value[JUDGED] * judge.abort_scale(value[STEPS], abort)
    assert raw_cusum >= raw_judged - 1e-6 and value[RECENT] > 0, value
    _recover(stack, pulumi, service, good_tag)
    timeline.done(
        f"aborted by {kind(run)} error-rate: cumulative {value[JUDGED]:.2f}, since its lowest "
        f"restart point {value[CUSUM]:.2f}, recent {value[RECENT]:.2f}"
    )


def test_19_a_3x_latency_regression_is_aborted_where_the_latency_gate_is_set_to_catch_it(
    stack: Stack, pulumi: Pulumi
) -> None:
    """15% of requests over the 2 s threshold: 3x the 5% budget of the p95 latency SLO. Inside
    the stack's indifference zone (failBurnRate 10, where a 3x canary may pass); outside it where
    `burnRatesByKind` sets the latency kind's failBurnRate to 2, which must abort it on the
    latency SLO, the error-rate SLO untouched."""
    timeline = Timeline("19 3x latency regression aborted (latency failBurnRate 2)")
    service, good_tag = "orchestrator", running_tag(stack, "orchestrator")
    runs = Runs(stack, service)
    with pulumi.override(delivery={"analysis": {
            "burnRatesByKind": {"latency": {"failBurnRate": 2}}}}):
        release(stack, pulumi, service, "1.11.0", timeline, Behaviour(slow=0.15))
        _aborted(stack, service, timeline, f"{REGISTRY}/{service}:{good_tag}", also=runs)
    runs()
    failed = [r for r in runs.seen.values() if run_phase(r) == "Failed"]
    run, value = _failed_metric(failed, "latency")
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
    _recover(stack, pulumi, service, good_tag)
    timeline.done(
        f"aborted by {kind(run)} latency at {value[JUDGED]:.2f} (cusum {value[CUSUM]:.2f}) with "
        f"{value[CANARY_ERRORS]:.0f} slow of {value[CANARY_REQUESTS]:.0f} canary requests"
    )
