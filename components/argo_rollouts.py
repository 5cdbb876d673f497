"""ArgoRollouts: the Argo Rollouts controller and CRDs, from Helm or from local manifests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import yaml

from delivery.notifications import CONFIGMAP, SECRET
from delivery.routers import PLUGIN_DIR, ROUTERS, Router
from delivery.stack import ArgoRolloutsConfig, RouterPlugin

CONTROLLER_CONFIG = "argo-rollouts-config"  # the controller's ConfigMap (plugins)

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


def plugin_of(cfg: ArgoRolloutsConfig, router: Router) -> RouterPlugin | None:
    """Where the controller gets the router's plugin (the stack file says; checked on load)."""
    if router.plugin is None:
        return None
    if cfg.gateway_api_plugin is None:
        raise ValueError(f"the {router.plugin} plugin needs argoRollouts.gatewayApiPlugin")
    return cfg.gateway_api_plugin


def _copy_plugin(plugin: RouterPlugin) -> dict[str, Any]:
    """The init container that copies an air-gapped plugin binary from its image into the
    controller's plugin directory (the emptyDir both the chart and the manifests mount)."""
    return {
        "name": "copy-traffic-router-plugin",
        "image": plugin.image,
        "command": ["cp", plugin.binary_path, f"{PLUGIN_DIR}/{plugin.FILE}"],
        "volumeMounts": [{"name": "plugin-bin", "mountPath": PLUGIN_DIR}],
    }


def helm_values(
    cfg: ArgoRolloutsConfig,
    notifications: NotificationSettings | None = None,
    router: Router = ROUTERS["replicas"],
) -> dict[str, Any]:
    """The chart's values; the chart's own providerRBAC already lets the controller change
    Gateway API routes and the plugin's ConfigMap."""
    values = _helm_values(cfg)
    if router.controller_args:
        values["controller"]["extraArgs"] = list(router.controller_args)
    plugin = plugin_of(cfg, router)
    if plugin is not None and router.plugin is not None:
        values["controller"]["trafficRouterPlugins"] = [plugin.entry(router.plugin)]
        if plugin.image is not None:
            values["controller"]["initContainers"] = [_copy_plugin(plugin)]
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
    router: Router = ROUTERS["replicas"], plugin: RouterPlugin | None = None,
) -> list[dict[str, Any]]:
    """The controller's install manifests with namespaced objects placed in ``namespace``; the
    empty notification Secret they carry left out when the stack provides its own; what the
    stack's router needs added: the controller's flags, its plugin in the controller's ConfigMap
    (with the init container that copies it from an image), and the permissions it lacks."""
    objects = [o for o in yaml.safe_load_all(Path(path).read_text()) if o]
    for obj in objects:
        pod = obj.get("spec", {}).get("template", {}).get("spec", {})
        if obj.get("kind") == "Deployment" and router.controller_args:
            for container in pod.get("containers", []):
                container["args"] = [*container.get("args", []), *router.controller_args]
        if obj.get("kind") == "Deployment" and plugin is not None and plugin.image is not None:
            pod["initContainers"] = [*pod.get("initContainers", []), _copy_plugin(plugin)]
        if (obj.get("kind") == "ConfigMap" and obj.get("metadata", {}).get("name")
                == CONTROLLER_CONFIG and plugin is not None and router.plugin is not None):
            obj["data"] = {**(obj.get("data") or {}), "trafficRouterPlugins": yaml.safe_dump(
                [plugin.entry(router.plugin)], sort_keys=False)}
    if router.controller_rules:
        objects += _router_rbac(router)
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


def _router_rbac(router: Router) -> list[dict[str, Any]]:
    """A ClusterRole with what the router needs beyond the manifests' own, bound to the
    controller's ServiceAccount."""
    name = "argo-rollouts-traffic-router"
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": name}, "rules": [dict(rule) for rule in router.controller_rules]}
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": "argo-rollouts"}],
    }
    return [role, binding]


class ArgoRollouts(pulumi.ComponentResource):
    """Installs Argo Rollouts in its namespace, or does nothing when the cluster has it."""

    def __init__(
        self,
        name: str,
        args: ArgoRolloutsConfig,
        opts: pulumi.ResourceOptions | None = None,
        notifications: NotificationSettings | None = None,
        router: Router = ROUTERS["replicas"],
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
                        values=helm_values(args, notifications, router),
                        opts=after,
                    )
                )
            else:
                assert args.manifests_path is not None
                self.ready.append(
                    k8s.yaml.v2.ConfigGroup(
                        f"{name}-manifests",
                        objs=manifest_objects(
                            args.manifests_path, args.namespace, own_secret, router,
                            plugin_of(args, router),
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
