"""ArgoRollouts: the Argo Rollouts controller and CRDs, from Helm or from local manifests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import yaml

from delivery.notifications import CONFIGMAP, SECRET
from delivery.stack import ArgoRolloutsConfig

CLUSTER_SCOPED = {
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleBinding",
    "Namespace",
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
}


@dataclass(frozen=True)
class NotificationSettings:
    """The notification engine's ConfigMap data (delivery/notifications.py) and, when the stack
    sets ``slo-canary:notificationSecrets``, the values of its Secret (a Pulumi secret)."""

    data: dict[str, str]
    secrets: pulumi.Input[dict[str, str]] | None = None


def helm_values(
    cfg: ArgoRolloutsConfig,
    notifications: NotificationSettings | None = None,
    controller_args: tuple[str, ...] = (),
) -> dict[str, Any]:
    values = _helm_values(cfg)
    if controller_args:
        values["controller"]["extraArgs"] = list(controller_args)
    if notifications is not None:
        data = notifications.data
        values["notifications"] = {
            "notifiers": {k: v for k, v in data.items() if k.startswith("service.")},
            "templates": {k: v for k, v in data.items() if k.startswith("template.")},
            "triggers": {k: v for k, v in data.items() if k.startswith("trigger.")},
        }
        if notifications.secrets is not None:
            values["notifications"]["secret"] = {"create": True, "items": notifications.secrets}
    return values


def _helm_values(cfg: ArgoRolloutsConfig) -> dict[str, Any]:
    return {
        "installCRDs": True,
        "keepCRDs": True,
        "controller": {
            "metrics": {
                "enabled": True,
                "serviceMonitor": {"enabled": cfg.service_monitor},
            }
        },
        "dashboard": {"enabled": cfg.dashboard},
    }


def manifest_objects(
    path: str, namespace: str, without_notification_secret: bool = False,
    controller_args: tuple[str, ...] = (),
) -> list[dict[str, Any]]:
    """The controller's install manifests with namespaced objects placed in ``namespace``; the
    empty notification Secret they carry left out when the stack provides its own; the
    controller's container given ``controller_args`` (what the stack's router needs)."""
    objects = [o for o in yaml.safe_load_all(Path(path).read_text()) if o]
    for obj in objects:
        if obj.get("kind") == "Deployment" and controller_args:
            for container in obj.get("spec", {}).get("template", {}).get("spec", {}).get(
                "containers", []
            ):
                container["args"] = [*container.get("args", []), *controller_args]
    if without_notification_secret:
        objects = [o for o in objects if not (
            o.get("kind") == "Secret" and o.get("metadata", {}).get("name") == SECRET)]
    for obj in objects:
        if obj.get("kind") not in CLUSTER_SCOPED:
            obj.setdefault("metadata", {})["namespace"] = namespace
        for subject in obj.get("subjects", []):
            if subject.get("kind") == "ServiceAccount":
                subject["namespace"] = namespace
    return objects


class ArgoRollouts(pulumi.ComponentResource):
    """Installs Argo Rollouts in its namespace, or does nothing when the cluster has it."""

    def __init__(
        self,
        name: str,
        args: ArgoRolloutsConfig,
        opts: pulumi.ResourceOptions | None = None,
        notifications: NotificationSettings | None = None,
        controller_args: tuple[str, ...] = (),
    ) -> None:
        super().__init__("slo-canary:delivery:ArgoRollouts", name, None, opts)
        self.namespace = args.namespace
        self.ready: list[pulumi.Resource] = []
        own_secret = notifications is not None and notifications.secrets is not None
        if args.install != "none":
            namespace = k8s.core.v1.Namespace(
                f"{name}-namespace",
                metadata={"name": args.namespace},
                opts=pulumi.ResourceOptions(parent=self),
            )
            after = pulumi.ResourceOptions(parent=self, depends_on=[namespace])
            if args.install == "helm":
                self.ready.append(
                    k8s.helm.v3.Release(
                        f"{name}-chart",
                        chart="argo-rollouts",
                        version=args.chart_version,
                        repository_opts={"repo": args.repository},
                        namespace=args.namespace,
                        values=helm_values(args, notifications, controller_args),
                        opts=after,
                    )
                )
            else:
                assert args.manifests_path is not None
                self.ready.append(
                    k8s.yaml.v2.ConfigGroup(
                        f"{name}-manifests",
                        objs=manifest_objects(
                            args.manifests_path, args.namespace, own_secret, controller_args
                        ),
                        opts=after,
                    )
                )
        if notifications is not None and args.install != "helm":
            self._notifications(name, args.namespace, notifications)
        self.register_outputs({"namespace": self.namespace})

    def _notifications(
        self, name: str, namespace: str, notifications: NotificationSettings
    ) -> None:
        """The notification engine's ConfigMap (and Secret) beside a controller not installed
        by Helm (the chart writes them from its values)."""
        after = pulumi.ResourceOptions(parent=self, depends_on=list(self.ready))
        k8s.core.v1.ConfigMap(
            f"{name}-notifications",
            metadata={"name": CONFIGMAP, "namespace": namespace},
            data=notifications.data,
            opts=after,
        )
        if notifications.secrets is not None:
            k8s.core.v1.Secret(
                f"{name}-notification-secret",
                metadata={"name": SECRET, "namespace": namespace},
                string_data=notifications.secrets,
                opts=after,
            )
