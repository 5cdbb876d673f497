"""Installing the stack: the first `pulumi up` creates everything (the package's ``installed``
fixture does it, so that every scenario finds the stack deployed), and a second one changes
nothing."""

from __future__ import annotations

import json
import re
import time
import urllib.request

import yaml

from e2e.canary.kit import SERVICES, Installed, Timeline, rollout
from e2e.harness import ROOT, Pulumi, Stack
from e2e.inbox import Inbox


def test_the_cluster_is_watched_by_the_pinned_prometheus_3(stack: Stack) -> None:
    """Every canary scenario runs on the Prometheus `make test` proves the rules on."""
    pinned = "3." + re.search(
        r"^PROMETHEUS_VERSION=v0\.3(\d+\.\d+)", (ROOT / "e2e/tools/build.sh").read_text(), re.M
    ).group(1)  # type: ignore[union-attr]
    with urllib.request.urlopen(f"{stack.prometheus_url}/api/v1/status/buildinfo") as reply:
        info = json.load(reply)["data"]
    assert info["version"] == pinned, info


def test_pulumi_up_creates_everything_and_a_second_up_changes_nothing(
    stack: Stack, pulumi: Pulumi, inbox: Inbox, installed: Installed
) -> None:
    """The package's first `pulumi up` (the ``installed`` fixture, before whichever scenario
    came first) created the stack, every Rollout Healthy, and notified nobody; a second one,
    now, changes nothing and notifies nobody either."""
    timeline = Timeline("first pulumi up, then an idempotent one", after=installed.marks)
    result = installed.result
    assert result.summary.result == "succeeded"
    assert result.summary.resource_changes.get("create", 0) > 0, result.summary.resource_changes
    # a first deployment notifies nobody
    assert installed.notifications == [], [n.text for n in installed.notifications]
    for service, namespace in SERVICES.items():
        _deployed(stack, service, namespace)
    _evidence_evaluated(stack)
    _dashboards_delivered(stack)
    mark = inbox.mark()
    second = pulumi.up()
    timeline.mark("second pulumi up done")
    changes = {k: v for k, v in second.summary.resource_changes.items() if k != "same"}
    assert changes == {}, f"second pulumi up changed {changes}"
    _subscribed(stack)
    time.sleep(2)  # a notification the controller would send arrives within this
    # a `pulumi up` that changes nothing notifies nobody
    assert inbox.since(mark) == [], [n.text for n in inbox.since(mark)]
    assert not inbox.refused, inbox.refused
    timeline.done("created; second up: no changes, no notifications")


def _deployed(stack: Stack, service: str, namespace: str) -> None:
    """The service's analysis templates, Services and PrometheusRules exist, and its gates read
    the evidence `python -m delivery rules` wrote for this Prometheus."""
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


def _evidence_evaluated(stack: Stack) -> None:
    """Prometheus evaluates every service's evidence group each second, without errors."""
    with urllib.request.urlopen(f"{stack.prometheus_url}/api/v1/rules", timeout=10) as reply:
        groups = {g["name"]: g for g in json.load(reply)["data"]["groups"]}
    for service in SERVICES:
        group = groups[f"slo-canary-evidence-{service}"]
        assert group["interval"] == 1, group["interval"]
        assert all(r["health"] in ("ok", "unknown") for r in group["rules"]), [
            (r["name"], r.get("lastError")) for r in group["rules"] if r["health"] == "err"
        ]


def _dashboards_delivered(stack: Stack) -> None:
    """Four dashboard ConfigMaps for Grafana's sidecar, each dashboard with panels."""
    maps = json.loads(
        stack.kubectl(
            "get", "configmap", "-n", "monitoring", "-l", "grafana_dashboard=1", "-o", "json"
        )
    )["items"]
    assert len(maps) == 4
    for cm in maps:
        for text in cm["data"].values():
            assert json.loads(text)["panels"]


def _subscribed(stack: Stack) -> None:
    """The notification engine's ConfigMap holds the triggers and the suite's webhook, and
    every Rollout is subscribed to it."""
    notes = json.loads(stack.kubectl("get", "configmap", "argo-rollouts-notification-configmap",
                                     "-n", "argo-rollouts", "-o", "json"))["data"]
    assert "trigger.slo-canary-aborted" in notes and "service.webhook.e2e-inbox" in notes
    for service in SERVICES:
        annotations = rollout(stack, service)["metadata"].get("annotations") or {}
        assert annotations.get(
            "notifications.argoproj.io/subscribe.slo-canary-aborted.e2e-inbox") == "", annotations
