"""Traffic routers: how a canary weight becomes traffic. Adding one is one entry in ``ROUTERS``
(the stack file's ``trafficRouting`` accepts its name, the plan uses its share, the Rollout its
``trafficRouting``, the stable Ingress its class, the Argo Rollouts controller its flags, plugin
and permissions).

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

from delivery.names import service_names

SERVICE_PORT = 80  # the port of the stable and canary Services (delivery/rollout.py)

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


@dataclass(frozen=True)
class Gateway:
    """A Gateway API Gateway the stack routes through (``delivery.gateway``): its listener
    ``section`` when the Gateway has several."""

    name: str
    namespace: str
    section: str | None = None


@dataclass(frozen=True)
class Target:
    """What a router routes: one service in its namespace, with the service's host, whether it
    speaks gRPC, the stack's Gateway, and whether testers get a header route to the canary."""

    service: str
    namespace: str
    host: str | None = None
    grpc: bool = False
    gateway: Gateway | None = None
    header_route: bool = False


# the route Argo Rollouts adds for testers' header (setHeaderRoute) and removes after the gates
HEADER_ROUTE = "canary-header"


def _no_routes(target: Target) -> list[Route]:
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
    traffic_routing: Callable[[Target], dict[str, Any] | None]  # the Rollout's trafficRouting
    # the objects it routes with, beside an Ingress
    routes: Callable[[Target], list[Route]] = _no_routes
    # flags the Argo Rollouts controller needs for this router
    controller_args: tuple[str, ...] = ()
    # the traffic router plugin the controller loads (its name in trafficRouterPlugins), if any
    plugin: str | None = None
    # what the controller must be allowed beyond the install manifests' ClusterRole (the Helm
    # chart's providerRBAC grants it already)
    controller_rules: tuple[dict[str, Any], ...] = ()
    needs_gateway: bool = False  # the stack must name a Gateway (delivery.gateway)
    header_routes: bool = False  # can send a header's requests to the canary (setHeaderRoute)
    deprecated: str = ""  # why, and where to go instead


# Traefik v3 serves its CRDs under traefik.io only; Argo Rollouts looks under the older
# traefik.containo.us unless told otherwise.
TRAEFIK_API = "traefik.io/v1alpha1"
TRAEFIK_MODULE = "github.com/traefik/traefik/v3@v3.7.13"
TRAEFIK_CRDS = "docs/content/reference/dynamic-configuration/kubernetes-crd-definition-v1.yml"
TRAEFIK_ENTRY_POINT = "web"


def _traefik_routes(target: Target) -> list[Route]:
    """A weighted TraefikService over the stable and canary Services (Argo Rollouts sets the
    weights) and the IngressRoute that sends the service's requests to it."""
    service, namespace, host = target.service, target.namespace, target.host
    labels, names = {"app.kubernetes.io/name": service}, service_names(service)
    weighted = {
        "apiVersion": TRAEFIK_API,
        "kind": "TraefikService",
        "metadata": {"name": service, "namespace": namespace, "labels": labels},
        "spec": {"weighted": {"services": [
            {"name": names["stable"], "port": SERVICE_PORT, "weight": 100},
            {"name": names["canary"], "port": SERVICE_PORT, "weight": 0},
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


# Gateway API: routes of the standard channel, the version the Traefik the e2e builds serves
# (its go.mod), and Argo Rollouts' plugin for them, which moves the backendRefs' weights.
GATEWAY_API = "gateway.networking.k8s.io/v1"
GATEWAY_API_MODULE = "sigs.k8s.io/gateway-api@v1.6.1"
GATEWAY_API_CRDS = "config/crd/standard/gateway.networking.k8s.io_*.yaml"
GATEWAY_API_PLUGIN = "argoproj-labs/gatewayAPI"
GATEWAY_API_PLUGIN_VERSION = "v0.15.0"
GATEWAY_API_PLUGIN_URL = (
    "https://github.com/argoproj-labs/rollouts-plugin-trafficrouter-gatewayapi/releases/download/"
    f"{GATEWAY_API_PLUGIN_VERSION}/gatewayapi-plugin-linux-amd64")
# where the Helm chart's controller keeps plugin binaries (an emptyDir it mounts)
PLUGIN_DIR = "/home/argo-rollouts/plugin-bin"


def _gateway_kind(target: Target) -> str:
    return "GRPCRoute" if target.grpc else "HTTPRoute"


def _gateway_routing(target: Target) -> dict[str, Any]:
    if target.header_route:  # the plugin adds header rules only to routes that ask for them
        plugin: dict[str, Any] = {
            "httpRoutes": [{"name": target.service, "useHeaderRoutes": True}]}
        return {"managedRoutes": [{"name": HEADER_ROUTE}],
                "plugins": {GATEWAY_API_PLUGIN: {**plugin, "namespace": target.namespace}}}
    key = "grpcRoute" if target.grpc else "httpRoute"
    return {"plugins": {GATEWAY_API_PLUGIN: {key: target.service, "namespace": target.namespace}}}


def _gateway_routes(target: Target) -> list[Route]:
    """The service's HTTPRoute (GRPCRoute for a gRPC service) on the stack's Gateway: one rule
    with the stable and the canary Service as weighted backends (stable 100 until the plugin
    moves them; its header routes for testers are rules it adds and removes)."""
    if target.gateway is None:
        raise ValueError("the gatewayapi router needs the stack's Gateway (delivery.gateway)")
    names = service_names(target.service)
    parent: dict[str, Any] = {"name": target.gateway.name, "namespace": target.gateway.namespace}
    if target.gateway.section:
        parent["sectionName"] = target.gateway.section
    backends = [
        {"name": names["stable"], "port": SERVICE_PORT, "weight": 100},
        {"name": names["canary"], "port": SERVICE_PORT, "weight": 0},
    ]
    rule: dict[str, Any] = {"backendRefs": backends}
    if not target.grpc:
        rule = {"matches": [{"path": {"type": "PathPrefix", "value": "/"}}], **rule}
    spec: dict[str, Any] = {"parentRefs": [parent]}
    if target.host:
        spec["hostnames"] = [target.host]
    spec["rules"] = [rule]
    body = {
        "apiVersion": GATEWAY_API,
        "kind": _gateway_kind(target),
        "metadata": {"name": target.service, "namespace": target.namespace,
                     "labels": {"app.kubernetes.io/name": target.service}},
        "spec": spec,
    }
    return [Route(body, managed_by_argo=("spec.rules",))]


ROUTERS: dict[str, Router] = {
    "replicas": Router(
        "split by pod count (no router)", _replica_share, None, lambda service: None
    ),
    "nginx": Router(
        "NGINX ingress canary weights (deprecated: ingress-nginx gets no releases or security "
        "fixes after March 2026)",
        lambda replicas, weight: weight / 100,
        "nginx",
        lambda target: {"nginx": {"stableIngress": target.service}},
        deprecated="ingress-nginx is retired (no releases or security fixes after March 2026); "
        "move to traefik between releases: docs/traffic-routing.md",
    ),
    "traefik": Router(
        "Traefik v3 weighted TraefikService behind an IngressRoute",
        lambda replicas, weight: weight / 100,
        None,
        lambda target: {"traefik": {"weightedTraefikServiceName": target.service}},
        routes=_traefik_routes,
        controller_args=("--traefik-api-group=traefik.io", f"--traefik-api-version={TRAEFIK_API}"),
    ),
    "gatewayapi": Router(
        "Gateway API HTTPRoute (GRPCRoute for gRPC services) on the stack's Gateway, weighted "
        f"by Argo Rollouts' {GATEWAY_API_PLUGIN} plugin",
        lambda replicas, weight: weight / 100,
        None,
        _gateway_routing,
        routes=_gateway_routes,
        plugin=GATEWAY_API_PLUGIN,
        controller_rules=(  # what the plugin changes: its routes' weights, its state ConfigMap
            {"apiGroups": ["gateway.networking.k8s.io"], "resources": ["httproutes", "grpcroutes"],
             "verbs": ["get", "list", "watch", "update"]},
            {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["create", "update"]},
        ),
        needs_gateway=True,
        header_routes=True,
    ),
}
