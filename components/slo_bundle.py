"""SloBundle: a service's SLO rules as a PrometheusRule the cluster's Prometheus selects.

The body comes from ``slo.bodies.service_rules``: under ``placement: thanos`` a fleet SLO's group
holds only the cluster's share of it; the fleet's rules go to the Thanos Ruler (``FleetRules``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s

from slo.bodies import service_rules
from slo.model import ResolvedSlo


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
        body = service_rules(args.slos, args.placement).prometheus_rule(args.namespace,
                                                                        args.labels)
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
