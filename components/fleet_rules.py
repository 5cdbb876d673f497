"""FleetRules: the Thanos Ruler's rules of the fleet SLOs, as the stack delivers them.

``prometheusrule``: one PrometheusRule per service for a prometheus-operator ``ThanosRuler``
(its ``ruleSelector`` picks them by ``thanos.ruleLabels``). ``configmap``: one ConfigMap holding
one rule file per service, for a Ruler that mounts it and names the files with ``--rule-file``.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from delivery.stack import ThanosConfig
from slo import conventions as names
from slo.bodies import service_rules
from slo.model import ResolvedSlo
from slo.rules import by_service
from slo.yamlout import dump


@dataclass(frozen=True)
class FleetRulesArgs:
    slos: list[ResolvedSlo]  # the catalogue's; only those with scope: fleet are used
    thanos: ThanosConfig


class FleetRules(pulumi.ComponentResource):
    def __init__(
        self, name: str, args: FleetRulesArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("slo-canary:slo:FleetRules", name, None, opts)
        cfg = args.thanos
        fleet = [service_rules(slos, "thanos")
                 for slos in by_service([s for s in args.slos if s.is_fleet]).values()]
        child = pulumi.ResourceOptions(parent=self)
        self.names: list[str] = []
        if cfg.rules == "prometheusrule":
            for rules in fleet:
                body = rules.fleet_prometheus_rule(cfg.namespace, dict(cfg.rule_labels))
                k8s.apiextensions.CustomResource(
                    f"{name}-{rules.service}",
                    api_version=body["apiVersion"],
                    kind=body["kind"],
                    metadata=body["metadata"],
                    spec=body["spec"],
                    opts=child,
                )
                self.names.append(body["metadata"]["name"])
        elif cfg.rules == "configmap" and fleet:
            k8s.core.v1.ConfigMap(
                f"{name}-files",
                metadata={
                    "name": cfg.config_map,
                    "namespace": cfg.namespace,
                    "labels": {"app.kubernetes.io/part-of": names.PART_OF_SLO,
                               **cfg.rule_labels},
                },
                data={f"{rules.service}.yaml": dump(rules.fleet_rule_file()) for rules in fleet},
                opts=child,
            )
            self.names.append(cfg.config_map)
        self.register_outputs({"names": self.names})
