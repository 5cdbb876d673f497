"""Traffic routers: how a canary weight becomes traffic. Adding one is one entry in ``ROUTERS``
(the stack file's ``trafficRouting`` accepts its name, the plan uses its share, the Rollout its
``trafficRouting``, the stable Ingress its class).

``share`` is the part of the traffic the canary really receives at a weight. Without a router
Argo Rollouts splits by replica count, choosing among rounded canary counts (with one pod of
surge) the one closest to the weight (``utils/replicaset/canary.go``), so two replicas at 10%
run one canary pod beside two stable ones: a third of the traffic.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

MAX_SURGE_SHARE = 0.25  # Argo's default maxSurge for canaries, rounded up to whole pods


def replica_split(replicas: int, weight: int) -> tuple[int, int]:
    """(canary pods, stable pods) Argo Rollouts runs at ``weight`` percent without a router."""
    surge = math.ceil(replicas * MAX_SURGE_SHARE)
    exact = replicas * weight / 100
    ceil, floor = math.ceil(exact), math.floor(exact)
    tied = exact - floor == 0.5
    options = []
    if ceil < replicas:
        options.append((ceil, replicas))
    if not tied and floor != 0:
        options.append((floor, replicas))
    if surge > 0:
        options.append((ceil, replicas + 1))
        surge_exact = (replicas + 1) * weight / 100
        if surge_exact - math.floor(surge_exact) != 0.5 and floor != 0:
            options.append((floor, replicas + 1))
    if not options:
        return 0, replicas
    best = min(options, key=lambda o: abs(o[0] * 100 / o[1] - weight))
    return best[0], best[1] - best[0]


def _replica_share(replicas: int, weight: int) -> float:
    canary, stable = replica_split(replicas, weight)
    return canary / (canary + stable)


def _no_routes(service: str, namespace: str, host: str | None) -> list[Route]:
    return []


@dataclass(frozen=True)
class Route:
    """An object the router needs beside the Rollout, and the fields Argo Rollouts changes in it
    while a canary runs (the program leaves those alone)."""

    body: dict[str, Any]
    managed_by_argo: tuple[str, ...] = ()


@dataclass(frozen=True)
class Router:
    description: str
    share: Callable[[int, int], float]  # (replicas, weight) -> canary's share of the traffic
    # the class of the stable Ingress the program renders for the router to clone; None: none
    ingress_class: str | None
    traffic_routing: Callable[[str], dict[str, Any] | None]  # the Rollout's trafficRouting
    # (service, namespace, host) -> the objects it routes with, beside an Ingress
    routes: Callable[[str, str, str | None], list[Route]] = _no_routes
    # flags the Argo Rollouts controller needs for this router
    controller_args: tuple[str, ...] = ()
    deprecated: str = ""  # why, and where to go instead


# Traefik v3 serves its CRDs under traefik.io only; Argo Rollouts looks under the older
# traefik.containo.us unless told otherwise.
TRAEFIK_API = "traefik.io/v1alpha1"
TRAEFIK_MODULE = "github.com/traefik/traefik/v3@v3.7.13"
TRAEFIK_CRDS = "docs/content/reference/dynamic-configuration/kubernetes-crd-definition-v1.yml"
TRAEFIK_ENTRY_POINT = "web"


def _traefik_routes(service: str, namespace: str, host: str | None) -> list[Route]:
    """A weighted TraefikService over the stable and canary Services (Argo Rollouts sets the
    weights) and the IngressRoute that sends the service's requests to it."""
    labels = {"app.kubernetes.io/name": service}
    weighted = {
        "apiVersion": TRAEFIK_API,
        "kind": "TraefikService",
        "metadata": {"name": service, "namespace": namespace, "labels": labels},
        "spec": {"weighted": {"services": [
            {"name": f"{service}-stable", "port": 80, "weight": 100},
            {"name": f"{service}-canary", "port": 80, "weight": 0},
        ]}},
    }
    match = f"Host(`{host}`)" if host else "PathPrefix(`/`)"
    route = {
        "apiVersion": TRAEFIK_API,
        "kind": "IngressRoute",
        "metadata": {"name": service, "namespace": namespace, "labels": labels},
        "spec": {
            "entryPoints": [TRAEFIK_ENTRY_POINT],
            "routes": [{"match": match, "kind": "Rule",
                        "services": [{"name": service, "kind": "TraefikService"}]}],
        },
    }
    return [Route(weighted, managed_by_argo=("spec.weighted.services",)), Route(route)]


ROUTERS: dict[str, Router] = {
    "replicas": Router(
        "split by pod count (no router)", _replica_share, None, lambda service: None
    ),
    "nginx": Router(
        "NGINX ingress canary weights (deprecated: ingress-nginx gets no releases or security "
        "fixes after March 2026)",
        lambda replicas, weight: weight / 100,
        "nginx",
        lambda service: {"nginx": {"stableIngress": service}},
        deprecated="ingress-nginx is retired (no releases or security fixes after March 2026); "
        "move to traefik between releases: docs/traffic-routing.md",
    ),
    "traefik": Router(
        "Traefik v3 weighted TraefikService behind an IngressRoute",
        lambda replicas, weight: weight / 100,
        None,
        lambda service: {"traefik": {"weightedTraefikServiceName": service}},
        routes=_traefik_routes,
        controller_args=("--traefik-api-group=traefik.io", f"--traefik-api-version={TRAEFIK_API}"),
    ),
    # gatewayapi: Argo's Gateway API plugin (trafficRouting.plugins) would be one more entry.
}
