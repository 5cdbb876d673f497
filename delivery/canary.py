"""Which Kubernetes bodies one canary service has on a stack, decided in one place.

``bodies`` is pure: ``components/canary_service.py`` only turns what it returns into resources.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from delivery import analysis, evidence, judge, notifications, rollout
from delivery.judge import Gate
from delivery.routers import ROUTERS, Route
from delivery.stack import StackConfig
from slo.model import ResolvedSlo
from slo.rules import RuleGroup, prometheus_rule_of_groups


@dataclass(frozen=True)
class CanaryBodies:
    """Bodies keyed by the child-resource suffix they are registered under."""

    templates: dict[str, dict[str, Any]]  # gate, background, freeze
    services: dict[str, dict[str, Any]]  # stable, canary
    network_policy: dict[str, Any]
    rollout: Callable[[str], dict[str, Any]]  # image -> Rollout body
    ingress: dict[str, Any] | None = None
    pod_monitor: dict[str, Any] | None = None
    image: str = ""  # the stack file's image
    evidence_rule: dict[str, Any] | None = None  # the judge's recordings (delivery/evidence.py)
    gates: list[Gate] = field(default_factory=list)  # computed once: the plan and dashboards
    routes: list[Route] = field(default_factory=list)  # the router's objects besides an Ingress


def evidence_group(
    service: str, slos: list[ResolvedSlo], stack: StackConfig
) -> RuleGroup | None:
    """The rule group recording the evidence of the service's gates on this stack."""
    return _evidence_group(service, judge.stack_gates(slos, stack, service), stack)


def _evidence_group(service: str, gates: list[Gate], stack: StackConfig) -> RuleGroup | None:
    deployment = stack.services[service]
    recordings = [evidence.recording(g, deployment, stack.delivery, stack.prometheus)
                  for g in gates]
    return evidence.rule_group(service, recordings)


def bodies(
    service: str, namespace: str, slos: list[ResolvedSlo], stack: StackConfig
) -> CanaryBodies:
    """The bodies of ``service`` on ``stack``: its analysis templates and evidence rule, the
    Services, NetworkPolicy, Rollout (per image) and what its router and scrape need."""
    deployment = stack.services[service]
    prometheus = stack.prometheus
    gates = judge.stack_gates(slos, stack, service)
    gate = any(g.enforcement == "enforce" for g in gates)
    background = bool(gates)
    templates = _analysis_templates(
        service, namespace, gates, stack, gate=gate, background=background
    )
    evidence_rule = _evidence_rule(service, namespace, gates, stack)
    router = ROUTERS[stack.delivery.traffic_routing]
    return CanaryBodies(
        templates=templates,
        services={
            body["metadata"]["name"].removeprefix(service + "-"): body
            for body in rollout.services(service, namespace, deployment)
        },
        network_policy=rollout.network_policy(service, namespace, deployment, prometheus.namespace),
        rollout=_rollout_for(service, namespace, stack, gate=gate, background=background),
        ingress=(rollout.ingress(service, namespace, deployment, router.ingress_class)
                 if router.ingress_class else None),
        pod_monitor=(
            rollout.pod_monitor(
                service, namespace, prometheus.rule_labels, prometheus.scrape_interval
            )
            if prometheus.scrape == "podmonitor"
            else None
        ),
        image=deployment.image,
        gates=gates,
        routes=router.routes(stack.delivery.route_target(service, namespace, deployment)),
        evidence_rule=evidence_rule,
    )


def _analysis_templates(
    service: str, namespace: str, gates: list[Gate], stack: StackConfig, *, gate: bool,
    background: bool,
) -> dict[str, dict[str, Any]]:
    """The service's AnalysisTemplates by suffix: gate, background and the budget freeze."""
    delivery, prometheus = stack.delivery, stack.prometheus
    templates: dict[str, dict[str, Any]] = {}
    if gate:
        templates["gate"] = analysis.gate_template(service, namespace, gates, delivery, prometheus)
    if background:
        templates["background"] = analysis.background_template(
            service, namespace, gates, delivery, prometheus
        )
    if delivery.budget_freeze:
        templates["freeze"] = analysis.freeze_template(
            service, namespace, delivery.analysis, prometheus.address
        )
    return templates


def _evidence_rule(
    service: str, namespace: str, gates: list[Gate], stack: StackConfig
) -> dict[str, Any] | None:
    """The PrometheusRule recording the evidence the gates read, if they read any."""
    group = _evidence_group(service, gates, stack)
    if group is None:
        return None
    return prometheus_rule_of_groups(
        service, namespace, [group], stack.prometheus.rule_labels,
        name=evidence.rule_name(service),
    )


def _rollout_for(
    service: str, namespace: str, stack: StackConfig, *, gate: bool, background: bool
) -> Callable[[str], dict[str, Any]]:
    """The service's Rollout body as a function of its image (the stack's, or a promoted one)."""
    deployment, delivery = stack.services[service], stack.delivery

    def rollout_for(image: str) -> dict[str, Any]:
        return rollout.rollout(
            service,
            namespace,
            deployment.model_copy(update={"image": image}),
            delivery,
            freeze=delivery.budget_freeze,
            gate=gate,
            background=background,
            annotate_scrape=stack.prometheus.scrape == "annotations",
            annotations=notifications.subscriptions(service, stack.notifications),
        )

    return rollout_for
