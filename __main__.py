"""The Pulumi program: SLO rules, gated canaries and dashboards for the core services.

This is the only module that reads Pulumi config. Everything is validated before the first
resource is registered; a bad stack file stops the program with one line per problem.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.argo_rollouts import ArgoRollouts, NotificationSettings
from components.canary_service import CanaryService, CanaryServiceArgs
from components.fleet_rules import FleetRules, FleetRulesArgs
from components.slo_bundle import SloBundle, SloBundleArgs
from components.slo_dashboard import SloDashboard, SloDashboardArgs
from delivery import notifications
from delivery.canary import bodies
from delivery.judge import Gate, evidence_window
from delivery.plan import plan
from delivery.routers import ROUTERS
from delivery.stack import (
    PROJECT,
    StackConfig,
    check_config_keys,
    check_promotion,
    notification_secrets,
    parse_stack,
    project_values,
    stack_catalogue,
)
from slo.dashboards import CanaryStatistic
from slo.model import ResolvedSlo
from slo.problems import ConfigError
from slo.rules import by_service
from slo.spec import Catalogue

HERE = Path(__file__).resolve().parent


def every_config() -> dict[str, Any]:
    """Every config value of the stack, any namespace: the engine hands config over through
    PULUMI_CONFIG or the runtime's config map."""
    return {**pulumi.runtime.get_config_env(), **pulumi.runtime.config.CONFIG.get({})}


def stack_values() -> dict[str, Any]:
    """Every ``slo-canary:*`` config value except secrets, objects decoded from JSON."""
    values: dict[str, Any] = {}
    for name, raw in sorted(project_values(every_config()).items()):
        try:
            values[name] = json.loads(raw)
        except json.JSONDecodeError:
            values[name] = raw
    return values


def main() -> None:
    source = f"Pulumi.{pulumi.get_stack()}.yaml"
    stack, catalogue, slos, secrets_of_notifiers = _load(source)
    token = _grafana_token(stack, source)
    promoted = _promoted_images(stack, source)
    argo = _controller(stack, secrets_of_notifiers, source)
    deployed = _services(stack, catalogue, slos, argo, promoted)
    placement = stack.prometheus.rule_placement
    fleet_rules = _fleet_rules(stack, slos)
    dashboard = SloDashboard(
        "slo-dashboards",
        SloDashboardArgs(slos, stack.grafana, token,
                         statistics=canary_statistics(stack, deployed.gates),
                         placement=placement, thanos=stack.thanos),
    )

    pulumi.export("environment", stack.environment)
    pulumi.export("rollouts", deployed.rollouts)
    images = {name: d.image for name, d in sorted(stack.services.items())}
    pulumi.export("images", images)
    # With waitForRollout, `pulumi up` succeeds only once every Rollout is Healthy, so these
    # images are proven here and another stack may promote them (promotion.fromStack).
    pulumi.export("healthyImages", images if stack.delivery.wait_for_rollout else {})
    pulumi.export("prometheusRules", deployed.rules)
    if placement == "thanos":
        pulumi.export("fleetRules", fleet_rules)
    # What a canary verdict needs here, before any rollout: traffic share per weight, requests.
    pulumi.export("canaryPlan", deployed.plans)
    pulumi.export("dashboardUids", dashboard.uids)
    pulumi.export("dashboardUrls", dashboard.urls)


def _load(source: str) -> tuple[StackConfig, Catalogue, list[ResolvedSlo], dict[str, str] | None]:
    """The stack file, its catalogue and the notifiers' secrets, or one line per problem."""
    try:
        keys = sorted(every_config())
        secrets = {k for k in keys if pulumi.runtime.config.is_config_secret(k)}
        ignored = check_config_keys(keys, secrets, source)
        if ignored:
            raise ConfigError(ignored)
        stack = parse_stack(stack_values(), source)
        catalogue, slos = stack_catalogue(stack, HERE, source)
        secrets_of_notifiers = notification_secrets(
            every_config().get(f"{PROJECT}:notificationSecrets"), source
        )
    except ConfigError as err:  # catalogue and stack alike: one line per problem, no traceback
        raise pulumi.RunError("\n".join(err.lines)) from None
    return stack, catalogue, slos, secrets_of_notifiers


def _grafana_token(stack: StackConfig, source: str) -> pulumi.Output[str] | None:
    token = pulumi.Config(PROJECT).get_secret("grafanaToken")
    if stack.grafana.delivery == "api" and token is None:
        raise pulumi.RunError(
            f"{source}: {PROJECT}:grafanaToken: required by grafana.delivery api; set it with "
            f"pulumi config set --secret {PROJECT}:grafanaToken <token>"
        )
    return token


def _promoted_images(stack: StackConfig, source: str) -> pulumi.Output[dict[str, str]] | None:
    """With promotion.fromStack, the images that stack proved healthy."""
    if stack.promotion is None:
        return None
    upstream = pulumi.StackReference("promotion-source", stack_name=stack.promotion.from_stack)
    return upstream.get_output("healthyImages").apply(
        lambda healthy: _promoted(stack, healthy, source)
    )


def _controller(stack: StackConfig, secrets_of_notifiers: dict[str, str] | None,
                source: str) -> ArgoRollouts:
    """The Argo Rollouts controller as the stack installs it, told about the traffic router."""
    router = ROUTERS[stack.delivery.traffic_routing]
    if router.deprecated:
        pulumi.log.warn(f"{source}: {PROJECT}:delivery.trafficRouting: "
                        f"{stack.delivery.traffic_routing}: {router.deprecated}")
    if router.controller_args and stack.argo_rollouts.install == "none":
        pulumi.log.info(f"trafficRouting {stack.delivery.traffic_routing}: the Argo Rollouts "
                        f"controller must run with {' '.join(router.controller_args)}")
    if router.plugin and stack.argo_rollouts.install == "none":
        pulumi.log.info(f"trafficRouting {stack.delivery.traffic_routing}: the Argo Rollouts "
                        f"controller must load the {router.plugin} traffic router plugin and may "
                        "update its routes (docs/traffic-routing.md)")
    return ArgoRollouts("argo-rollouts", stack.argo_rollouts,
                        notifications=notification_settings(stack, secrets_of_notifiers),
                        router=router)


@dataclass
class Deployed:
    """What the services' resources export, per service."""

    rollouts: dict[str, str] = field(default_factory=dict)
    rules: dict[str, str] = field(default_factory=dict)
    plans: dict[str, object] = field(default_factory=dict)
    gates: dict[str, list[Gate]] = field(default_factory=dict)  # computed once, read after


def _services(stack: StackConfig, catalogue: Catalogue, slos: list[ResolvedSlo],
              argo: ArgoRollouts, promoted: pulumi.Output[dict[str, str]] | None) -> Deployed:
    """Each service's SLO rules, and for each deployed one its canary (plan in the log)."""
    grouped = by_service(slos)
    namespaces = {
        ns: k8s.core.v1.Namespace(f"namespace-{ns}", metadata={"name": ns})
        for ns in sorted({svc.namespace for svc in catalogue.services})
    }
    # `pulumi up` may wait for rollouts: on the cluster the stack's provider talks to.
    kubernetes = pulumi.Config("kubernetes")
    kubeconfig, context = kubernetes.get("kubeconfig"), kubernetes.get("context")
    out = Deployed()
    for service in catalogue.services:
        after = pulumi.ResourceOptions(depends_on=[namespaces[service.namespace], *argo.ready])
        bundle = SloBundle(
            f"{service.name}-slos",
            SloBundleArgs(
                service.name,
                service.namespace,
                grouped[service.name],
                dict(stack.prometheus.rule_labels),
                stack.prometheus.rule_placement,
            ),
            opts=pulumi.ResourceOptions(depends_on=[namespaces[service.namespace]]),
        )
        out.rules[service.name] = bundle.rule_name
        deployment = stack.services.get(service.name)
        if deployment is None:
            continue
        built = bodies(service.name, service.namespace, grouped[service.name], stack)
        out.gates[service.name] = built.gates
        service_plan = plan(service.name, stack, built.gates)
        out.plans[service.name] = service_plan.output()
        for line in service_plan.lines():
            pulumi.log.info(line)
        canary = CanaryService(
            service.name,
            CanaryServiceArgs(
                service.name,
                service.namespace,
                built,
                wait_for_rollout=stack.delivery.wait_for_rollout,
                timeout_seconds=stack.delivery.timeout_seconds,
                image=None if promoted is None else promoted[service.name],
                kubeconfig=kubeconfig,
                context=context,
            ),
            opts=after,
        )
        out.rollouts[service.name] = canary.rollout_name
    return out


def _fleet_rules(stack: StackConfig, slos: list[ResolvedSlo]) -> list[str]:
    """The Thanos Ruler's rules under rulePlacement thanos (their names), else none."""
    placement = stack.prometheus.rule_placement
    fleet_slos = sorted(f"{s.service.name}/{s.slo.name}" for s in slos if s.is_fleet)
    if fleet_slos and placement == "local":
        pulumi.log.info(f"fleet SLOs evaluated on this cluster alone (rulePlacement local): "
                        f"{', '.join(fleet_slos)}")
    if placement != "thanos":
        return []
    return FleetRules("slo-fleet-rules", FleetRulesArgs(slos, stack.thanos)).names


def notification_settings(
    stack: StackConfig, secrets: dict[str, str] | None
) -> NotificationSettings | None:
    """The notification engine's configuration, with the Secret's values (a Pulumi secret) when
    the stack sets ``slo-canary:notificationSecrets``."""
    if stack.notifications is None:
        return None
    links = notifications.dashboard_links(stack.notifications, stack.grafana.url,
                                          list(stack.services))
    return NotificationSettings(
        notifications.configmap_data(stack.notifications, links),
        None if secrets is None else pulumi.Output.secret(secrets),
    )


def canary_statistics(
    stack: StackConfig, gates: dict[str, list[Gate]]
) -> dict[str, dict[str, CanaryStatistic]]:
    """The judge's hypotheses and boundaries per deployed service and SLO, for the dashboards:
    those of the statistic the panel plots (``judged``: the cumulative one, coarse hypotheses)."""
    lookback = evidence_window(stack.delivery)
    return {
        service: {
            gate.name: CanaryStatistic(
                gate.coarse.good, gate.coarse.bad, gate.abort, gate.accept, lookback
            )
            for gate in service_gates
        }
        for service, service_gates in gates.items()
    }


def _promoted(stack: StackConfig, healthy: Any, source: str) -> dict[str, str]:
    try:
        return check_promotion(stack, healthy, source)
    except ConfigError as err:
        raise pulumi.RunError("\n".join(err.lines)) from None


main()
