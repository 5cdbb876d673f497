"""CanaryService: one core service as an SLO-gated Argo Rollouts canary."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.rollout_wait import wait_healthy
from slo import analysis, rollout
from slo.model import ResolvedSlo
from slo.stack import DeliveryConfig, PrometheusConfig, ServiceDeployment


@dataclass(frozen=True)
class CanaryServiceArgs:
    service: str
    namespace: str
    slos: list[ResolvedSlo]
    deployment: ServiceDeployment
    delivery: DeliveryConfig
    prometheus: PrometheusConfig
    image: pulumi.Input[str] | None = None  # replaces deployment.image once promotion allows it


def _custom(
    name: str, body: dict[str, Any], opts: pulumi.ResourceOptions
) -> k8s.apiextensions.CustomResource:
    return k8s.apiextensions.CustomResource(
        name,
        api_version=body["apiVersion"],
        kind=body["kind"],
        metadata=body["metadata"],
        spec=body["spec"],
        opts=opts,
    )


class CanaryService(pulumi.ComponentResource):
    """Rollout, stable and canary Services, AnalysisTemplates, scraping and optional Ingress."""

    def __init__(
        self, name: str, args: CanaryServiceArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("slo-canary:delivery:CanaryService", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        svc, ns, cfg = args.service, args.namespace, args.delivery.analysis
        address = args.prometheus.address
        gated = bool(analysis.gated(args.slos))
        freeze = args.delivery.budget_freeze

        templates = []
        if gated:
            templates.append(
                _custom(
                    f"{name}-gate", analysis.gate_template(svc, ns, args.slos, cfg, address), child
                )
            )
            templates.append(
                _custom(
                    f"{name}-background",
                    analysis.background_template(svc, ns, args.slos, cfg, address),
                    child,
                )
            )
        if freeze:
            templates.append(
                _custom(f"{name}-freeze", analysis.freeze_template(svc, ns, cfg, address), child)
            )

        services = [
            k8s.core.v1.Service(
                f"{name}-{body['metadata']['name'].removeprefix(svc + '-')}",
                metadata=body["metadata"],
                spec=body["spec"],
                opts=child,
            )
            for body in rollout.services(svc, ns, args.deployment)
        ]
        routing: list[pulumi.Resource] = []
        if args.delivery.traffic_routing == "nginx":
            body = rollout.ingress(svc, ns, args.deployment)
            routing.append(
                k8s.networking.v1.Ingress(
                    f"{name}-ingress", metadata=body["metadata"], spec=body["spec"], opts=child
                )
            )
        policy = rollout.network_policy(svc, ns, args.deployment, args.prometheus.namespace)
        k8s.networking.v1.NetworkPolicy(
            f"{name}-network-policy", metadata=policy["metadata"], spec=policy["spec"], opts=child
        )
        if args.prometheus.scrape == "podmonitor":
            _custom(
                f"{name}-podmonitor",
                rollout.pod_monitor(svc, ns, args.prometheus.rule_labels),
                child,
            )

        def body_for(image: str) -> dict[str, Any]:
            return rollout.rollout(
                svc,
                ns,
                args.deployment.model_copy(update={"image": image}),
                args.delivery,
                freeze=freeze,
                gated=gated,
                annotate_scrape=args.prometheus.scrape == "annotations",
            )

        body = body_for(args.deployment.image)
        spec: pulumi.Input[dict[str, Any]] = body["spec"]
        if args.image is not None:
            spec = pulumi.Output.from_input(args.image).apply(lambda image: body_for(image)["spec"])
        self.rollout = k8s.apiextensions.CustomResource(
            f"{name}-rollout",
            api_version=body["apiVersion"],
            kind=body["kind"],
            metadata=body["metadata"],
            spec=spec,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[*templates, *services, *routing]),
        )
        self.rollout_name = body["metadata"]["name"]
        outputs: dict[str, Any] = {"rollout_name": self.rollout_name}
        if args.delivery.wait_for_rollout and not pulumi.runtime.is_dry_run():
            timeout = args.delivery.timeout_seconds
            self.status = self.rollout.metadata.apply(  # type: ignore[attr-defined]
                lambda meta: wait_healthy(ns, svc, int(meta["generation"]), timeout)
            )
            outputs["status"] = self.status
        self.register_outputs(outputs)
