"""ArgoRollouts: the Argo Rollouts controller and CRDs, from Helm or from local manifests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import yaml

from delivery.config import ArgoRolloutsConfig

CLUSTER_SCOPED = {
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleBinding",
    "Namespace",
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
}


def helm_values(cfg: ArgoRolloutsConfig) -> dict[str, Any]:
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


def manifest_objects(path: str, namespace: str) -> list[dict[str, Any]]:
    """The controller's install manifests with namespaced objects placed in ``namespace``."""
    objects = [o for o in yaml.safe_load_all(Path(path).read_text()) if o]
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
        self, name: str, args: ArgoRolloutsConfig, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("slo-canary:delivery:ArgoRollouts", name, None, opts)
        self.namespace = args.namespace
        self.ready: list[pulumi.Resource] = []
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
                        values=helm_values(args),
                        opts=after,
                    )
                )
            else:
                assert args.manifests_path is not None
                self.ready.append(
                    k8s.yaml.v2.ConfigGroup(
                        f"{name}-manifests",
                        objs=manifest_objects(args.manifests_path, args.namespace),
                        opts=after,
                    )
                )
        self.register_outputs({"namespace": self.namespace})
