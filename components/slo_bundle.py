"""SloBundle: a service's SLO rules as a PrometheusRule the cluster's Prometheus selects.

Under ``placement: thanos`` a fleet SLO's group holds only the cluster's share of it
(``slo.fleet.local_group``); the fleet's rules go to the Thanos Ruler (``FleetRules``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s

from slo.fleet import cluster_group
from slo.model import ResolvedSlo
from slo.rules import prometheus_rule_of_groups


@dataclass(frozen=True)
class SloBundleArgs:
    service: str
    namespace: str
    slos: list[ResolvedSlo]
    labels: dict[str, str] = field(default_factory=dict)
    placement: str = "local"


class SloBundle(pulumi.ComponentResource):
    def __init__(
        self, name: str, args: SloBundleArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("slo-canary:slo:SloBundle", name, None, opts)
        groups = [cluster_group(slo, args.placement) for slo in args.slos]
        body = prometheus_rule_of_groups(args.service, args.namespace, groups, args.labels)
        self.rule = k8s.apiextensions.CustomResource(
            f"{name}-rule",
            api_version=body["apiVersion"],
            kind=body["kind"],
            metadata=body["metadata"],
            spec=body["spec"],
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.rule_name = body["metadata"]["name"]
        self.group_names = [g["name"] for g in body["spec"]["groups"]]
        self.register_outputs({"rule_name": self.rule_name, "groups": self.group_names})
