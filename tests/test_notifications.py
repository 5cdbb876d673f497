"""Notifications: what the stack subscribes, what the ArgoRollouts component installs, what a
stack may not say. What Argo's engine makes of the ConfigMap: e2e/test_notification_engine.py."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from components.argo_rollouts import NotificationSettings, helm_values, manifest_objects
from delivery import notifications
from delivery.canary import bodies
from delivery.stack import (
    ArgoRolloutsConfig,
    NotificationsConfig,
    load_stack_file,
    notification_secrets,
    stack_catalogue,
)
from slo.problems import ConfigError
from slo.rules import by_service
from tests.test_program import leaks, render

ROOT = Path(__file__).resolve().parent.parent
PROD = load_stack_file(ROOT / "Pulumi.prod.yaml")
DEV = load_stack_file(ROOT / "Pulumi.dev.yaml")


def _rollout(stack, service):
    _, slos = stack_catalogue(stack, ROOT, "stack")
    mine = by_service(slos)[service]
    built = bodies(service, mine[0].service.namespace, mine, stack)
    return built.rollout(built.image)


def test_each_event_subscribes_its_triggers_with_the_recipients():
    assert PROD.notifications is not None
    got = notifications.subscriptions("api-gateway", PROD.notifications)
    prefix = "notifications.argoproj.io/subscribe."
    assert got == {
        f"{prefix}slo-canary-aborted.oncall": "",
        f"{prefix}slo-canary-aborted.team-slack": "platform-deploys",
        f"{prefix}slo-canary-completed.team-slack": "platform-deploys",
        f"{prefix}slo-canary-paused.team-slack": "platform-deploys",
    }
    assert _rollout(PROD, "api-gateway")["metadata"]["annotations"] == got


def test_a_subscription_for_some_services_leaves_the_others_alone():
    cfg = NotificationsConfig.model_validate({
        "notifiers": {"ops": {"type": "webhook", "options": {"url": "https://a.example"}}},
        "subscriptions": [{"to": "ops", "services": ["orchestrator"], "events": ["aborted"]},
                          {"to": "ops", "services": ["orchestrator"], "recipient": ""}],
    })
    assert notifications.subscriptions("api-gateway", cfg) == {}
    assert len(notifications.subscriptions("orchestrator", cfg)) == 3  # 3 triggers, once each


def test_a_stack_without_notifications_renders_its_rollouts_as_before():
    assert DEV.notifications is None
    for service in DEV.services:
        assert "annotations" not in _rollout(DEV, service)["metadata"]


def test_the_configmap_has_the_notifiers_and_a_template_and_trigger_per_event():
    assert PROD.notifications is not None
    data = notifications.configmap_data(
        PROD.notifications, notifications.dashboard_links(PROD.notifications, PROD.grafana.url,
                                                          list(PROD.services)))
    assert sorted(data) == [
        "service.slack.team-slack", "service.webhook.oncall",
        "template.slo-canary-rollout-aborted", "template.slo-canary-rollout-completed",
        "template.slo-canary-rollout-paused",
        "trigger.slo-canary-aborted", "trigger.slo-canary-completed", "trigger.slo-canary-paused",
    ]
    assert yaml.safe_load(data["service.slack.team-slack"]) == {"token": "$slack-token"}
    assert yaml.safe_load(data["trigger.slo-canary-paused"]) == [
        {"send": ["slo-canary-rollout-paused"], "when": notifications.EVENTS["paused"].when}]
    assert yaml.safe_load(data["trigger.slo-canary-completed"]) == [
        {"send": ["slo-canary-rollout-completed"], "when": notifications.EVENTS["completed"].when,
         "oncePer": notifications.REVISION}]
    # named after no Kubernetes event: only the engine's controller sends them, once per state
    assert not any(e.trigger.startswith("on-") for e in notifications.EVENTS.values())
    aborted = yaml.safe_load(data["template.slo-canary-rollout-aborted"])
    assert set(aborted) == {"message", "webhook"} and set(aborted["webhook"]) == {"oncall"}
    assert "https://grafana.platform.internal/d/slo-api-gateway" in aborted["message"]


def test_helm_carries_the_notification_settings_and_a_secret_only_when_given():
    data = {"service.webhook.a": "url: https://a.example\n", "template.t": "message: x\n",
            "trigger.on-rollout-aborted": "- send: [t]\n"}
    cfg = ArgoRolloutsConfig()
    values = helm_values(cfg, NotificationSettings(data))
    assert values["notifications"] == {
        "notifiers": {"service.webhook.a": data["service.webhook.a"]},
        "templates": {"template.t": data["template.t"]},
        "triggers": {"trigger.on-rollout-aborted": data["trigger.on-rollout-aborted"]},
    }
    with_secret = helm_values(cfg, NotificationSettings(data, {"k": "v"}))
    assert with_secret["notifications"]["secret"] == {"create": True, "items": {"k": "v"}}
    assert "notifications" not in helm_values(cfg)


def test_manifests_leave_their_empty_secret_out_when_the_stack_brings_one(tmp_path):
    install = tmp_path / "install.yaml"
    install.write_text(yaml.safe_dump_all([
        {"apiVersion": "v1", "kind": "Secret",
         "metadata": {"name": notifications.SECRET}},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "argo-rollouts"}},
    ]))
    kinds = [o["kind"] for o in manifest_objects(str(install), "argo-rollouts")]
    assert kinds == ["Secret", "ServiceAccount"]
    kinds = [o["kind"] for o in manifest_objects(str(install), "argo-rollouts", True)]
    assert kinds == ["ServiceAccount"]


@pytest.mark.parametrize("raw", [
    "xoxb-not-json-sentinel", '["xoxb-list-sentinel"]', '{"a b": "x-sentinel"}',
    '{"k": 12345}',
])
def test_notification_secrets_must_be_an_object_of_text_and_are_never_echoed(raw):
    with pytest.raises(ConfigError) as err:
        notification_secrets(raw, "Pulumi.prod.yaml")
    (line,) = err.value.lines
    assert line.startswith("Pulumi.prod.yaml: slo-canary:notificationSecrets: a JSON object")
    assert "sentinel" not in line and "12345" not in line


def test_notification_secrets_read_and_absent():
    assert notification_secrets(None, "s") is None
    assert notification_secrets('{"slack-token": "xoxb-1"}', "s") == {"slack-token": "xoxb-1"}


def test_a_rendered_stack_with_notifier_secrets_holds_no_secret(tmp_path):
    """prod with its notifiers' secrets set: the Helm values carry them as a Pulumi secret;
    without them, in plain view."""
    stack = tmp_path / "Pulumi.prod.yaml"
    text = (ROOT / "Pulumi.prod.yaml").read_text()
    stack.write_text(text + "  slo-canary:notificationSecrets:\n"
                     "    secure: v1:6bOr2CiS2xP1HStb:dGhpcyBpcyBhIHRlc3QgY2lwaGVydGV4dA==\n")
    out = tmp_path / "out"
    result = render(stack, out)
    assert result.returncode == 0, result.stderr
    assert leaks(out) == []
    (release,) = [p for p in (out / "other").glob("*Release*")]
    # a secret inside the chart's values makes Pulumi hold the whole values input as a secret
    assert yaml.safe_load(release.read_text())["inputs"]["values"] == "[secret]"
    plain = tmp_path / "plain"
    assert render(ROOT / "Pulumi.prod.yaml", plain).returncode == 0  # no notifier secrets
    (release,) = [p for p in (plain / "other").glob("*Release*")]
    values = yaml.safe_load(release.read_text())["inputs"]["values"]
    assert "secret" not in values["notifications"] and values["notifications"]["triggers"]
