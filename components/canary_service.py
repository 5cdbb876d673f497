"""CanaryService: one core service as an SLO-gated Argo Rollouts canary."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.rollout_wait import wait_healthy
from delivery.canary import CanaryBodies


@dataclass(frozen=True)
class CanaryServiceArgs:
    service: str
    namespace: str
    bodies: CanaryBodies
    wait_for_rollout: bool = False
    timeout_seconds: int = 1800
    image: pulumi.Input[str] | None = None  # replaces the stack's image once promotion allows it
    kubeconfig: str | None = None  # the stack's `kubernetes:kubeconfig`, if it sets one
    context: str | None = None  # the stack's `kubernetes:context`


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
        bodies = args.bodies
        templates = [
            _custom(f"{name}-{key}", body, child) for key, body in bodies.templates.items()
        ]
        services = [
            k8s.core.v1.Service(
                f"{name}-{key}", metadata=body["metadata"], spec=body["spec"], opts=child
            )
            for key, body in bodies.services.items()
        ]
        routing = self._routing(name, bodies)
        policy = bodies.network_policy
        k8s.networking.v1.NetworkPolicy(
            f"{name}-network-policy", metadata=policy["metadata"], spec=policy["spec"], opts=child
        )
        if bodies.pod_monitor is not None:
            _custom(f"{name}-podmonitor", bodies.pod_monitor, child)
        if bodies.evidence_rule is not None:  # what the AnalysisTemplates read
            templates.append(_custom(f"{name}-evidence", bodies.evidence_rule, child))

        body = bodies.rollout(bodies.image)
        self.rollout = self._rollout(name, body, args, [*templates, *services, *routing])
        self.rollout_name = body["metadata"]["name"]
        outputs: dict[str, Any] = {"rollout_name": self.rollout_name}
        if args.wait_for_rollout and not pulumi.runtime.is_dry_run():
            ns, svc, timeout = args.namespace, args.service, args.timeout_seconds
            config, context = args.kubeconfig, args.context
            self.status = self.rollout.metadata.apply(  # type: ignore[attr-defined]
                lambda meta: wait_healthy(
                    ns, svc, int(meta["generation"]), timeout, kubeconfig=config, context=context
                )
            )
            outputs["status"] = self.status
        self.register_outputs(outputs)

    def _routing(self, name: str, bodies: CanaryBodies) -> list[pulumi.Resource]:
        """The stable Ingress a router clones, and the router's own objects."""
        routing: list[pulumi.Resource] = []
        if bodies.ingress is not None:
            routing.append(
                k8s.networking.v1.Ingress(
                    f"{name}-ingress",
                    metadata=bodies.ingress["metadata"],
                    spec=bodies.ingress["spec"],
                    opts=pulumi.ResourceOptions(parent=self),
                )
            )
        for route in bodies.routes:  # Argo Rollouts moves the weights in some of them
            routing.append(_custom(
                f"{name}-{route.body['kind'].lower()}", route.body,
                pulumi.ResourceOptions(parent=self, ignore_changes=list(route.managed_by_argo)),
            ))
        return routing

    def _rollout(
        self, name: str, body: dict[str, Any], args: CanaryServiceArgs,
        depends_on: list[pulumi.Resource],
    ) -> k8s.apiextensions.CustomResource:
        """The Rollout, after the objects it refers to; with the promoted image once
        ``args.image`` resolves, if the stack has one."""
        bodies = args.bodies
        spec: pulumi.Input[dict[str, Any]] = body["spec"]
        if args.image is not None:
            spec = pulumi.Output.from_input(args.image).apply(
                lambda image: bodies.rollout(image)["spec"]
            )
        return k8s.apiextensions.CustomResource(
            f"{name}-rollout",
            api_version=body["apiVersion"],
            kind=body["kind"],
            metadata=body["metadata"],
            spec=spec,
            opts=pulumi.ResourceOptions(parent=self, depends_on=depends_on),
        )
