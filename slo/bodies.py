"""The SLO side's bodies for a rule placement: each service's rule groups, and the dashboards.

``slo rules`` (``slo/cli.py``) writes the rules as files; the ``SloBundle``, ``FleetRules`` and
``SloDashboard`` components apply them. All take the same bodies from here, as the canary side
takes its bodies from ``delivery.canary.bodies``. Under ``placement: thanos`` a fleet SLO is
split: each cluster evaluates its share (``slo.fleet.local_group``) and a Thanos Ruler the
fleet's rules (``slo.fleet.fleet_groups``); every other SLO is evaluated whole in the cluster.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from slo import conventions as names
from slo.fleet import cluster_group, fleet_groups, fleet_rule_file, split
from slo.model import ResolvedSlo
from slo.rules import RuleFile, RuleGroup, by_service, prometheus_rule_of_groups

if TYPE_CHECKING:  # the dashboards (and the Grafana SDK) are imported where they are built:
    from slo.dashboards import CanaryStatistic  # `slo rules` on a large catalogue never needs them


@dataclass(frozen=True)
class ServiceRules:
    """One service's rule groups under a placement."""

    service: str
    cluster: tuple[tuple[ResolvedSlo, RuleGroup], ...]  # each SLO and its cluster's group
    fleet: tuple[ResolvedSlo, ...]  # the SLOs a Thanos Ruler sums across clusters

    def is_split(self, slo: ResolvedSlo) -> bool:
        return slo in self.fleet

    def prometheus_rule(self, namespace: str, labels: dict[str, str] | None = None
                        ) -> dict[str, Any]:
        """The PrometheusRule the cluster's Prometheus selects."""
        return prometheus_rule_of_groups(self.service, namespace,
                                         [group for _, group in self.cluster], labels)

    def fleet_groups(self) -> list[RuleGroup]:
        return [g for slo in self.fleet for g in fleet_groups(slo)]

    def fleet_prometheus_rule(self, namespace: str, labels: dict[str, str] | None = None
                              ) -> dict[str, Any]:
        """The fleet's rules as a PrometheusRule for a prometheus-operator ``ThanosRuler``."""
        return prometheus_rule_of_groups(self.service, namespace, self.fleet_groups(), labels,
                                         name=names.fleet_rule_name(self.service))

    def fleet_rule_file(self) -> RuleFile:
        """The fleet's rules as a Thanos Ruler rule file (``--rule-file``)."""
        return fleet_rule_file(list(self.fleet))


def service_rules(slos: list[ResolvedSlo], placement: str) -> ServiceRules:
    """The rule groups of one service's SLOs (``slos``, all of the same service) under
    ``placement`` (``local`` or ``thanos``)."""
    (service,) = {slo.service.name for slo in slos}
    return ServiceRules(
        service=service,
        cluster=tuple((slo, cluster_group(slo, placement)) for slo in slos),
        fleet=tuple(slo for slo in slos if split(slo, placement)),
    )


def dashboards(slos: list[ResolvedSlo], datasource_uid: str, placement: str,
               statistics: dict[str, dict[str, CanaryStatistic]] | None = None,
               fleet_datasource_uid: str | None = None) -> dict[str, dict[str, Any]]:
    """Every dashboard by uid: one per service (with its canary ``statistics``, where the
    service is deployed) and the all-services overview; under placement thanos, one per fleet
    SLO where ``fleet_datasource_uid`` says the stack delivers the Thanos Ruler's rules."""
    from slo import dashboards as boards

    statistics = statistics or {}
    made = [
        boards.service_dashboard(group[0].service, group, datasource_uid,
                                 statistics.get(service), placement)
        for service, group in by_service(slos).items()
    ]
    made.append(boards.overview_dashboard(slos, datasource_uid, placement))
    if placement == "thanos" and fleet_datasource_uid is not None:
        made += [boards.fleet_slo_dashboard(slo, fleet_datasource_uid)
                 for slo in slos if slo.is_fleet]
    return {board["uid"]: board for board in made}
