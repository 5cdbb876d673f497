"""The traffic routers' control planes: the canary weight the real Argo Rollouts controller
sets through the steps on the NGINX canary Ingress (its annotation) and on the weighted
TraefikService, and back to 0 when a release is aborted. What the routers' data planes do with
those weights is tested on clusters of their own (e2e/test_traefik_dataplane.py,
e2e/test_gatewayapi_dataplane.py)."""

from __future__ import annotations

import json

from e2e.canary.kit import (
    BAD,
    SERVICES,
    Timeline,
    aborted,
    image_of,
    phase,
    release,
    running_tag,
    summary,
    watch,
)
from e2e.harness import Pulumi, Stack


def test_nginx_canary_ingress_weight_follows_the_steps(stack: Stack, pulumi: Pulumi) -> None:
    timeline = Timeline("NGINX canary weights")
    seen: list[str] = []

    def canary_weight() -> None:
        ingresses = json.loads(stack.kubectl("get", "ingress", "-n", "core", "-o", "json"))
        for ing in ingresses["items"]:
            value = (
                ing["metadata"]
                .get("annotations", {})
                .get("nginx.ingress.kubernetes.io/canary-weight")
            )
            if value is not None and (not seen or seen[-1] != value):
                seen.append(value)
                timeline.mark(f"ingress weight {value}")

    with pulumi.override(
        delivery={"trafficRouting": "nginx"},
        services={"orchestrator": {"host": "orchestrator.e2e.internal"}},
    ):
        release(stack, pulumi, "orchestrator", "1.5.0", timeline)
        body = watch(
            stack, "orchestrator", timeline, {"Healthy", "Degraded"}, 240, also=canary_weight
        )
    assert phase(body) == "Healthy", summary(body)
    steps = [w for w in seen if w in ("10", "25", "50")]
    assert steps == ["10", "25", "50"], seen
    timeline.done(f"canary-weight annotation went {' -> '.join(seen)}")


def test_traefik_weights_follow_the_steps_and_go_back_to_0_on_abort(
    stack: Stack, pulumi: Pulumi
) -> None:
    """trafficRouting: traefik: the real controller moves the weighted TraefikService's weights
    (Traefik v3's CRDs, traefik.io) through the steps, and back to 0 when a release aborts."""
    timeline = Timeline("Traefik weights")
    service, namespace = "orchestrator", SERVICES["orchestrator"]
    good_tag = running_tag(stack, service)
    seen: list[int] = []

    def canary_weight() -> None:
        found = json.loads(stack.kubectl("get", "traefikservice", service, "-n", namespace,
                                         "-o", "json", check=False) or "{}")
        weights = {s["name"]: s.get("weight") for s in
                   found.get("spec", {}).get("weighted", {}).get("services", [])}
        value = weights.get(f"{service}-canary")
        if value is not None and (not seen or seen[-1] != value):
            assert weights[f"{service}-stable"] == 100 - value, weights
            seen.append(value)
            timeline.mark(f"canary weight {value}")

    with pulumi.override(delivery={"trafficRouting": "traefik"}):
        release(stack, pulumi, service, "1.5.2", timeline)
        body = watch(stack, service, timeline, {"Healthy", "Degraded"}, 240, also=canary_weight)
        assert phase(body) == "Healthy", summary(body)
        route = stack.get("ingressroute", service, namespace)
        assert route["spec"]["routes"][0]["services"] == [
            {"name": service, "kind": "TraefikService"}]
        assert [w for w in seen if w in (10, 25, 50)] == [10, 25, 50], seen
        promoted = list(seen)
        seen.clear()
        release(stack, pulumi, service, "1.5.3", timeline, BAD)
        aborted(stack, service, timeline, image_of(service, "1.5.2"), also=canary_weight)
        canary_weight()
        assert seen and seen[-1] == 0 and 10 in seen, seen  # up to 10, back to 0 on abort
    timeline.done(f"weights {' -> '.join(map(str, promoted))}; aborted: "
                  f"{' -> '.join(map(str, seen))} (was {good_tag})")


