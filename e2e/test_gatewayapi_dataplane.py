"""The gatewayapi router against real parts: the project's HTTPRoute served by a real Gateway API
implementation (Traefik v3's kubernetesGateway provider) splitting real requests by its
backendRef weights, and the rest of what the router renders accepted by the real API server.

Its own KWOK cluster, with the Gateway API CRDs (standard channel) of the pinned
``sigs.k8s.io/gateway-api`` module. Traefik (e2e/traefik.py) runs on the host with only its
Gateway API provider, a GatewayClass for its controller and a Gateway whose listener is its entry
point's port. The Rollout, Services and HTTPRoute are the project's own for
``trafficRouting: gatewayapi`` (delivery/rollout.py, delivery/routers.py).

What moves the weights: in a cluster, Argo Rollouts' Gateway API plugin. Its Go module is refused
by the module proxy here (403), so no plugin binary can be built and the Argo Rollouts controller
cannot run this router; nothing here stands in for it. The data-plane test sets the HTTPRoute's
backendRef weights itself, as the plugin would at each step, and measures what Traefik does
with them. The release's pods are two ReplicaSets of the Rollout's own pod template, labelled with
a pod-template hash as Argo Rollouts would, and the Services select them by it; requests reach
them through e2e/service_backends.py on the Services' loopback cluster IPs (see that module and
test_traefik_dataplane.py for why).
"""

from __future__ import annotations

import copy
import functools
import http.client
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from components.argo_rollouts import manifest_objects
from delivery.rollout import rollout, services
from delivery.routers import (
    GATEWAY_API,
    GATEWAY_API_CRDS,
    GATEWAY_API_MODULE,
    ROUTERS,
    TRAEFIK_ENTRY_POINT,
)
from delivery.stack import ArgoRolloutsConfig, DeliveryConfig, ServiceDeployment
from e2e.harness import (
    Observation,
    Stack,
    module_dir,
    new_stack,
    start_cluster,
    wait_for,
)
from e2e.traefik import Traefik, answers, apply, loopback_net, send, serve_services, traefik_bin

SERVICE, NAMESPACE = "web", "gateway-dataplane"
HOST = f"{SERVICE}.e2e.internal"
GATEWAY, GATEWAY_NAMESPACE, GATEWAY_CLASS = "public", "gateways", "traefik"
CONTROLLER = "traefik.io/gateway-controller"  # the GatewayClass controller Traefik serves
REGISTRY = "registry.platform.internal/dataplane"
RELEASES = {"1.0.0": "5d8f7c6b9a", "2.0.0": "7b6c5d4e3f"}  # tag -> pod-template hash
STABLE_TAG, CANARY_TAG = "1.0.0", "2.0.0"
REPLICAS = 4
LOOPBACK_NET = loopback_net(1)  # the Services' cluster IPs (the traefik scenario has 0)
CLUSTER_IPS = {f"{SERVICE}-stable": f"{LOOPBACK_NET}.10", f"{SERVICE}-canary": f"{LOOPBACK_NET}.11"}
ARGO_ROLLOUTS_MODULE = "github.com/argoproj/argo-rollouts@v1.9.1"
REQUESTS = 10_000  # per step: as in test_traefik_dataplane.py, 4 sigma of a random split
TOLERANCE = 0.02
SHARES: list[tuple[int, float, int]] = []  # (weight, measured canary share, requests)


def delivery(**changes: Any) -> DeliveryConfig:
    return DeliveryConfig.model_validate({
        "weights": [10, 25, 50], "pause": "24h", "trafficRouting": "gatewayapi",
        "gateway": {"name": GATEWAY, "namespace": GATEWAY_NAMESPACE,
                    "sectionName": TRAEFIK_ENTRY_POINT}, **changes})


def spec(tag: str, **changes: Any) -> ServiceDeployment:
    return ServiceDeployment.model_validate(
        {"image": f"{REGISTRY}/{SERVICE}:{tag}", "replicas": REPLICAS, "host": HOST, **changes})


def gateway(port: int) -> list[dict[str, Any]]:
    """Traefik's GatewayClass and the stack's Gateway, its listener on Traefik's entry point
    (Traefik maps a listener to the entry point on its port) and open to routes of every
    namespace (the services' routes live in theirs)."""
    return [
        {"apiVersion": GATEWAY_API, "kind": "GatewayClass", "metadata": {"name": GATEWAY_CLASS},
         "spec": {"controllerName": CONTROLLER}},
        {"apiVersion": GATEWAY_API, "kind": "Gateway",
         "metadata": {"name": GATEWAY, "namespace": GATEWAY_NAMESPACE},
         "spec": {"gatewayClassName": GATEWAY_CLASS, "listeners": [
             {"name": TRAEFIK_ENTRY_POINT, "port": port, "protocol": "HTTP",
              "allowedRoutes": {"namespaces": {"from": "All"}}}]}},
    ]


@pytest.fixture(scope="module")
def dataplane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, Traefik]]:
    binary = traefik_bin()  # first, so that a build failure says so before a cluster starts
    s = new_stack(tmp_path_factory.mktemp("gatewayapi"))
    try:
        start_cluster(s, "gatewayapi")
        crds = sorted(module_dir(GATEWAY_API_MODULE).glob(GATEWAY_API_CRDS))
        assert crds, f"no CRDs at {GATEWAY_API_MODULE}/{GATEWAY_API_CRDS}"
        for crd in crds:
            s.kubectl("apply", "--server-side", "-f", str(crd))
        s.kubectl("wait", "--for=condition=Established", "--timeout=60s",
                  "crd/gateways.gateway.networking.k8s.io",
                  "crd/httproutes.gateway.networking.k8s.io",
                  "crd/grpcroutes.gateway.networking.k8s.io")
        serve_services(s, LOOPBACK_NET, NAMESPACE)
        s.kubectl("create", "namespace", GATEWAY_NAMESPACE)
        # each Service at its cluster IP (the test's ServiceCIDR is loopback), not its pods'
        traefik = Traefik(s, binary, {"kubernetesGateway": {"nativeLBByDefault": True}})
        apply(s, gateway(traefik.port), "gateway")
        yield s, traefik
    finally:
        s.close()
        if SHARES:
            print("\nGateway API data plane (Traefik), canary share per weight: " + "; ".join(
                f"{w}% -> {share:.2%} of {n}" for w, share, n in SHARES))


def release_pods(tag: str) -> dict[str, Any]:
    """A ReplicaSet of the Rollout's own pod template at ``tag``, labelled with its release's
    pod-template hash as Argo Rollouts labels its ReplicaSets."""
    template = rollout(SERVICE, NAMESPACE, spec(tag), delivery(), freeze=False, gate=False,
                       background=False, annotate_scrape=False)["spec"]["template"]
    labels = {**template["metadata"]["labels"], "rollouts-pod-template-hash": RELEASES[tag]}
    template = {**template, "metadata": {**template["metadata"], "labels": labels}}
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": f"{SERVICE}-{RELEASES[tag]}", "namespace": NAMESPACE,
                         "labels": labels},
            "spec": {"replicas": REPLICAS, "selector": {"matchLabels": labels},
                     "template": template}}


def weighted(route: dict[str, Any], canary: int) -> dict[str, Any]:
    """The HTTPRoute with the canary at ``canary`` percent and stable at the rest, as the plugin
    sets its backendRefs at each step."""
    body = copy.deepcopy(route)
    for ref in body["spec"]["rules"][0]["backendRefs"]:
        ref["weight"] = canary if ref["name"].endswith("-canary") else 100 - canary
    return body


def routing(traefik: Traefik) -> dict[str, Any]:
    """What Traefik routes the HTTPRoute's requests with: per Service of its weighted service
    (from the Gateway API provider), the weight and the servers behind it."""
    found = {s["name"]: s for s in traefik.get("/api/http/services")}
    out: dict[str, Any] = {}
    for body in found.values():
        if body.get("provider") != "kubernetesgateway" or "weighted" not in body:
            continue
        for child in body["weighted"].get("services", []):
            inner = found.get(child["name"], found.get(f"{child['name']}@kubernetesgateway", {}))
            servers = sorted(s["url"] for s in inner.get("loadBalancer", {}).get("servers", []))
            for svc in CLUSTER_IPS:
                if f"-{svc}-" in f"-{child['name']}-":
                    out[svc] = {"weight": child.get("weight"), "servers": servers}
    return out


def accepted(stack: Stack, kind: str, name: str) -> Observation:
    """The route's status from the Gateway's controller: Accepted and its refs resolved."""
    status = stack.get(kind, name, NAMESPACE).get("status", {})
    conditions = {c["type"]: c["status"] for parent in status.get("parents", [])
                  for c in parent.get("conditions", [])}
    return Observation(conditions.get("Accepted") == conditions.get("ResolvedRefs") == "True",
                       status)


def converged(stack: Stack, traefik: Traefik, canary: int) -> Observation:
    """Traefik routes with the HTTPRoute's weights (``canary`` percent to the canary), each
    Service's cluster IP as its server, and each Service answering, asked directly, as its
    release."""
    routes = routing(traefik)
    url = {name: f"http://{ip}:80" for name, ip in CLUSTER_IPS.items()}
    want = {f"{SERVICE}-stable": {"weight": 100 - canary, "servers": [url[f"{SERVICE}-stable"]]},
            f"{SERVICE}-canary": {"weight": canary, "servers": [url[f"{SERVICE}-canary"]]}}
    status = accepted(stack, "httproute", SERVICE)
    seen: dict[str, Any] = {"traefik": routes, "route": status.seen}
    ok = routes == want and status.ok
    if ok:
        said = {name: (answers(u) or {}).get("version") for name, u in url.items()}
        seen["answers"] = said
        ok = said == {f"{SERVICE}-stable": STABLE_TAG, f"{SERVICE}-canary": CANARY_TAG}
    return Observation(ok, seen)


def test_requests_through_a_gateway_follow_the_httproute_weights(
    dataplane: tuple[Stack, Traefik]
) -> None:
    """The project's HTTPRoute for ``web`` on a real Gateway: before the release the canary's
    weight is 0 and every request is stable's; then, with the weights set as the plugin sets
    them at 10, 25, 50 and 100, 10,000 requests through the Gateway's listener each, and the
    share the new release answers must be within 2 points of the weight."""
    stack, traefik = dataplane
    target = delivery().route_target(SERVICE, NAMESPACE, spec(STABLE_TAG))
    (route,) = [r.body for r in ROUTERS["gatewayapi"].routes(target)]
    svcs = services(SERVICE, NAMESPACE, spec(STABLE_TAG))
    for svc in svcs:  # the hash selectors Argo Rollouts adds
        name = svc["metadata"]["name"]
        svc["spec"]["clusterIP"] = CLUSTER_IPS[name]
        tag = STABLE_TAG if name.endswith("-stable") else CANARY_TAG
        svc["spec"]["selector"]["rollouts-pod-template-hash"] = RELEASES[tag]
    apply(stack, [release_pods(STABLE_TAG), release_pods(CANARY_TAG), *svcs, route], "release")
    wait_for("Traefik to route the rendered HTTPRoute (stable 100, canary 0)",
             functools.partial(converged, stack, traefik, 0), 180)
    counts, _ = send(traefik.port, 2000, HOST)
    assert counts == Counter({STABLE_TAG: 2000}), counts
    for canary in (10, 25, 50, 100):
        apply(stack, [weighted(route, canary)], f"weights-{canary}")
        wait_for(f"Traefik to route {canary}% to the canary",
                 functools.partial(converged, stack, traefik, canary), 120)
        counts, seconds = send(traefik.port, REQUESTS, HOST)
        share = counts[CANARY_TAG] / REQUESTS
        SHARES.append((canary, share, REQUESTS))
        print(f"weight {canary}%: canary share {share:.2%} ({dict(counts)}, {seconds:.1f} s)")
        assert set(counts) <= {STABLE_TAG, CANARY_TAG}, counts
        assert abs(share - canary / 100) <= TOLERANCE, (canary, share, dict(counts))
    # another host is not this route's: the Gateway answers 404, not the service
    other = send_status(traefik.port, "other.e2e.internal")
    assert other == 404, other


def send_status(port: int, host: str) -> int:
    """The status of one request for ``host`` through the Gateway's listener."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/", headers={"Host": host})
        return conn.getresponse().status
    finally:
        conn.close()


def test_the_routers_other_objects_are_accepted_by_the_api_server_and_the_gateway(
    dataplane: tuple[Stack, Traefik]
) -> None:
    """What the plugin and the controller would act on, accepted by the real API server: the
    Rollout with the plugin's configuration and the testers' header route (server-side dry run:
    no controller here runs it), Argo Rollouts v1.9.1's own install manifests with the plugin in
    their ConfigMap, the init container that copies it, and the ClusterRole and binding for the
    routes; and a gRPC service's GRPCRoute, accepted by the Gateway's real controller."""
    stack, _ = dataplane
    header = delivery(canaryHeader={"name": "X-Canary", "value": "always"})
    body = rollout(SERVICE, NAMESPACE, spec(CANARY_TAG), header, freeze=False, gate=False,
                   background=False, annotate_scrape=False)
    assert "managedRoutes" in body["spec"]["strategy"]["canary"]["trafficRouting"]
    out = apply(stack, [body], "rollout-dry-run", "--server-side", "--dry-run=server")
    assert "serverside-applied (server dry run)" in out, out

    argo = ArgoRolloutsConfig.model_validate({"gatewayApiPlugin": {
        "image": "registry.platform.internal/argo/gatewayapi-plugin:v0.15.0"}})
    install = module_dir(ARGO_ROLLOUTS_MODULE) / "manifests" / "install.yaml"
    objects = [o for o in manifest_objects(str(install), "argo-rollouts",
                                           router=ROUTERS["gatewayapi"],
                                           plugin=argo.gateway_api_plugin)
               if o["kind"] != "CustomResourceDefinition"]  # the cluster has Argo's CRDs
    kinds = Counter(o["kind"] for o in objects)
    assert kinds["ClusterRole"] >= 2 and kinds["ConfigMap"] >= 1, kinds
    out = apply(stack, objects, "argo-install-dry-run", "--server-side", "--dry-run=server")
    for name in ("configmap/argo-rollouts-config", "deployment.apps/argo-rollouts",
                 "clusterrole.rbac.authorization.k8s.io/argo-rollouts-traffic-router",
                 "clusterrolebinding.rbac.authorization.k8s.io/argo-rollouts-traffic-router"):
        assert f"{name} serverside-applied (server dry run)" in out, out

    grpc = spec(CANARY_TAG, grpc=True)
    target = delivery().route_target(f"{SERVICE}-grpc", NAMESPACE, grpc)
    (route,) = [r.body for r in ROUTERS["gatewayapi"].routes(target)]
    assert route["kind"] == "GRPCRoute"
    grpc_services = services(f"{SERVICE}-grpc", NAMESPACE, grpc)
    for svc in grpc_services:  # cluster IPs the stand-in does not serve: no traffic here
        svc["spec"]["clusterIP"] = f"{LOOPBACK_NET}.{20 + grpc_services.index(svc)}"
    apply(stack, [*grpc_services, route], "grpc")
    wait_for("the Gateway's controller to accept the GRPCRoute",
             lambda: accepted(stack, "grpcroute", f"{SERVICE}-grpc"), 60)
