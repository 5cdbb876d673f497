"""What every canary scenario uses: the services, the judge's numbers, releases, watching a
Rollout, reading the verdicts its AnalysisRuns show, and the end-of-run report.

The fixtures (one cluster for the whole package, the baseline every scenario starts from) are in
``conftest.py``; the scenarios are in the ``test_<family>.py`` files next to this one.
"""

from __future__ import annotations

import copy
import json
import math
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import pytest

from delivery import judge
from e2e.harness import ROOT, Observation, Pulumi, Stack, wait_for, with_images
from e2e.inbox import Inbox, Notification
from e2e.simulator import HEALTHY as HEALTHY  # the scenarios declare releases with these
from e2e.simulator import Behaviour as Behaviour
from slo.loader import load_catalogue

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
    """Seconds from the start of a scenario to each moment it marks, and its outcome: a row of
    the report. ``after``: the marks of what a fixture did for the scenario before it started
    (the first `pulumi up`); the scenario's own marks continue from the last of them."""

    def __init__(self, scenario: str, after: dict[str, float] | None = None):
        self.scenario = scenario
        self.marks: dict[str, float] = dict(after or {})
        self.start = time.monotonic() - max(self.marks.values(), default=0.0)
        self.outcome = "did not finish"

    def mark(self, name: str) -> None:
        self.marks.setdefault(name, round(time.monotonic() - self.start, 1))

    def done(self, outcome: str) -> None:
        self.outcome = outcome
        TIMELINES.append((self.scenario, self.marks, outcome))


@dataclass
class Installed:
    """The first `pulumi up` of the package: its result, its timeline's marks, and the
    notifications sent from its start until 2 s after every Rollout was Healthy."""

    result: Any
    marks: dict[str, float]
    notifications: list[Notification]


def notified(inbox: Inbox, pulumi: Pulumi, mark: int, service: str, event: str,
             why: str, slo: str | None = None) -> Notification:
    """The one ``event`` notification of ``service`` since ``mark``: it names the rollout and
    says ``why``, names ``slo`` among its verdicts, carries the token from the notification
    Secret, and links the dashboard and the explain command. The engine delivers at least once
    (docs/notifications.md): a second delivery of the same state, with the same key, may come;
    a second state may not."""
    note = inbox.wait(mark, service, event)
    got = [(n.rollout, n.event, n.key) for n in inbox.since(mark)]
    assert note is not None, f"no {event} notification of {service} (got {got})"
    assert {n.key for n in inbox.since(mark, service) if n.event == event} == {note.key}, got
    assert note.key.startswith(f"{SERVICES[service]}/{service}/"), note.key
    assert f"/{event}" in note.key, note.key
    assert note.token == pulumi.notification_token, "the header token is not the Secret's"
    assert note.text.startswith(f"{SERVICES[service]}/{service} "), note.text
    assert why in note.text, note.text
    assert "dashboard: http://127.0.0.1:3000/d/slo-" + service in note.text, note.text
    assert "| python -m delivery explain -" in note.text, note.text
    if slo is not None:
        assert slo in note.slos(), (slo, note.body)
    return note


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


def cusum_boundary(run: dict[str, Any], metric: str) -> float:
    """The change-point statistic's abort boundary in a metric's failure condition, read from
    the run the controller executes."""
    spec = next(m for m in run["spec"]["metrics"] if m["name"] == metric)
    found = re.search(judge.condition_bound(CUSUM, ">="), spec["failureCondition"])
    assert found, spec["failureCondition"]
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


def image_of(service: str, tag: str) -> str:
    return f"{REGISTRY}/{service}:{tag}"


def declare(stack: Stack, service: str, tag: str, behaviour: Behaviour = HEALTHY) -> None:
    """Tell the simulator how the pods of the release ``tag`` serve, before any of them runs;
    until the next scenario's baseline (:func:`recover`) clears it."""
    stack.simulator(f"behaviour/{service}/{tag}", asdict(behaviour))


def release(
    stack: Stack, pulumi: Pulumi, service: str, tag: str, timeline: Timeline,
    behaviour: Behaviour = HEALTHY, **changes: Any,
) -> None:
    """`pulumi up` of ``service`` at ``tag`` (with ``changes`` to the stack's settings), whose
    pods serve as ``behaviour`` says; returns once the rollout has started."""
    declare(stack, service, tag, behaviour)
    pulumi.up(services={service: {"image": image_of(service, tag)}}, **changes)
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


def spec_image(body: dict[str, Any]) -> str:
    """The image of the Rollout's pod template: the release asked for, which is the stable one
    only once that release is promoted (see ``stable_release_image``)."""
    return str(body["spec"]["template"]["spec"]["containers"][0]["image"])


def running_tag(stack: Stack, service: str) -> str:
    return spec_image(rollout(stack, service)).rsplit(":", 1)[-1]


def went_through(weights: list[int]) -> list[int]:
    seen = [w for w in weights if w in (10, 25, 50, 100)]
    return [w for i, w in enumerate(seen) if i == 0 or seen[i - 1] != w]


def all_calls(*calls: Callable[[], object]) -> Callable[[], None]:
    def call() -> None:
        for c in calls:
            c()

    return call


def aborted(
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
        pods = canary_pods(stack, service, body)
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


def canary_pods(stack: Stack, service: str, body: dict[str, Any]) -> int:
    canary = pods(stack, service, body["status"]["currentPodHash"])
    return sum(1 for p in canary if not p["metadata"].get("deletionTimestamp"))


def failed_metric(runs: list[dict[str, Any]], metric: str) -> tuple[dict[str, Any], list[float]]:
    """The run whose ``metric`` failed and the vector of its failing measurement."""
    for run in runs:
        if results(run).get(metric, {}).get("phase") == "Failed":
            failing = [m for m in measurements(run, metric) if m.get("phase") == "Failed"]
            assert failing, results(run)[metric]
            return run, vector(failing[-1])
    raise AssertionError(f"no run with {metric} Failed: {[results(r) for r in runs]}")


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


# --------------------------------------------------------------------------- the baseline


def stable_release_image(stack: Stack, service: str, body: dict[str, Any]) -> str:
    """The image of the Rollout's stable ReplicaSet: what it serves when no release is in
    progress, and what it goes back to when one is aborted or replaced."""
    status = body.get("status", {})
    if (status.get("stableRS") == status.get("currentPodHash")
            and str(status.get("observedGeneration")) == str(body["metadata"]["generation"])):
        return spec_image(body)
    replicaset = stack.get("replicaset", f"{service}-{status['stableRS']}", SERVICES[service])
    return str(replicaset["spec"]["template"]["spec"]["containers"][0]["image"])


def settled(stack: Stack, service: str, body: dict[str, Any] | None = None) -> Observation:
    """Whether the Rollout is Healthy on its stable release, with no release in progress."""
    body = body or rollout(stack, service)
    status = body.get("status", {})
    ok = (
        phase(body) == "Healthy"
        and not status.get("abort")
        and status.get("stableRS") == status.get("currentPodHash")
        and str(status.get("observedGeneration")) == str(body["metadata"]["generation"])
    )
    return Observation(ok, summary(body), body)


def recover(stack: Stack, pulumi: Pulumi, shipped: dict[str, Any]) -> None:
    """Bring the stack back to what every scenario starts from, whatever the last one left:
    Prometheus running; the simulator's controls at their start (the full rate, no incident,
    no release behaving badly: a stable release that was declared bad is healthy from now on);
    the e2e stack file's settings (``shipped``) applied; and every service Healthy on its stable
    release, a release in progress or aborted replaced by the stable one (Argo goes straight
    back to the stable ReplicaSet). One `pulumi up`, only if anything differs."""
    if stack.prometheus is not None and stack.prometheus.proc is None:
        stack.start_prometheus_again()
    stack.simulator("reset")
    bodies = {service: rollout(stack, service) for service in SERVICES}
    stable = {s: stable_release_image(stack, s, body) for s, body in bodies.items()}
    wanted = with_images(shipped, {"services": {s: {"image": i} for s, i in stable.items()}})
    changed = pulumi.settings_differ(wanted) or any(  # the spec's image is not the stable one
        spec_image(body) != stable[s] for s, body in bodies.items())
    pulumi.config = copy.deepcopy(wanted)
    if changed:
        pulumi.up()
    for service, body in bodies.items():
        if changed or not settled(stack, service, body).ok:
            wait_for(f"{service} Healthy on its stable release",
                     lambda s=service: settled(stack, s), 120)  # type: ignore[misc]


# --------------------------------------------------------------------------- the report


def report() -> None:
    """The timelines and verdicts of the scenarios that ran: printed, and kept in
    out/e2e-report.md."""
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

