"""The traefik router's data plane: real requests through a real Traefik v3, split by the weights
the real Argo Rollouts controller sets.

Its own KWOK cluster (independent of the other e2e modules and of test order). Traefik
(`e2e/tools/build.sh traefik`, from its Go module) runs on the host with its Kubernetes CRD
provider on the cluster (the admin kubeconfig) and the router's entry point on a free loopback
port. The Rollout, Services, TraefikService and IngressRoute are the project's own
(delivery/rollout.py, delivery/routers.py) for ``trafficRouting: traefik``, applied with kubectl:
the stack's program would create the same objects, and this test is about what Traefik does with
them, not about `pulumi up` (e2e/canary/ covers that).

Where requests go: KWOK's pods run nothing, and the API server refuses loopback addresses in
EndpointSlices, so pods cannot have addresses this host can serve (the only ones traffic may go
to here). Services can: the test adds a loopback ServiceCIDR and gives the stable and canary
Services cluster IPs from it, Traefik runs in its native load-balancing mode
(``nativeLB`` on each Service of the weighted TraefikService: it is reached at its cluster IP,
and kube-proxy spreads over the pods), and e2e/service_backends.py plays kube-proxy on those
cluster IPs, answering each request as one of the Running pods the Service's selector picks (the
pod-template hash Argo Rollouts puts there), with that pod's release. So the split between
stable and canary, the router's job, is Traefik's own weighted round robin over the weights Argo
set; which pod of a Service answers is the stand-in's.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from delivery.rollout import rollout, services
from delivery.routers import ROUTERS
from delivery.stack import DeliveryConfig, ServiceDeployment
from e2e.harness import Observation, Stack, new_stack, start_cluster, start_controller, wait_for
from e2e.traefik import Traefik, answers, apply, loopback_net, send, serve_services, traefik_bin

SERVICE, NAMESPACE = "web", "dataplane"
HOST = f"{SERVICE}.e2e.internal"
REGISTRY = "registry.platform.internal/dataplane"
STABLE_TAG, CANARY_TAG = "1.0.0", "2.0.0"
REPLICAS = 4
LOOPBACK_NET = loopback_net(0)  # the Services' cluster IPs
CLUSTER_IPS = {f"{SERVICE}-stable": f"{LOOPBACK_NET}.10", f"{SERVICE}-canary": f"{LOOPBACK_NET}.11"}
REQUESTS = 10_000  # per step: see the test's docstring
TOLERANCE = 0.02  # 2 points of share
SHARES: list[tuple[int, float, int]] = []  # (weight, measured canary share, requests)


def routing(traefik: Traefik) -> dict[str, Any]:
    """What Traefik routes the service's requests with: the weight of each Service of the
    weighted TraefikService, and the servers (cluster IPs) behind each."""
    found = {s["name"]: s for s in traefik.get("/api/http/services")}
    weighted = found.get(f"{NAMESPACE}-{SERVICE}@kubernetescrd", {}).get("weighted", {})
    out: dict[str, Any] = {}
    for child in weighted.get("services", []):
        name = child["name"]
        body = found.get(name if "@" in name else f"{name}@kubernetescrd", {})
        servers = sorted(s["url"] for s in body.get("loadBalancer", {}).get("servers", []))
        out[name.split("@")[0]] = {"weight": child.get("weight"), "servers": servers}
    return out


@pytest.fixture(scope="module")
def dataplane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, Traefik]]:
    binary = traefik_bin()  # first, so that a build failure says so before a cluster starts
    s = new_stack(tmp_path_factory.mktemp("traefik"))
    try:
        start_cluster(s, "traefik")
        start_controller(s)  # with the traefik router's flags (Traefik v3's API group)
        serve_services(s, LOOPBACK_NET, NAMESPACE)
        # each Service at its cluster IP (the test's ServiceCIDR is loopback), not its pods'
        # (for IngressRoutes; the TraefikService's services say so themselves: objects())
        yield s, Traefik(s, binary, {
            "kubernetesCRD": {"namespaces": [NAMESPACE], "nativeLBByDefault": True}})
    finally:
        s.close()
        if SHARES:
            print("\nTraefik data plane, canary share per weight: " + "; ".join(
                f"{w}% -> {share:.2%} of {n}" for w, share, n in SHARES))


def objects(tag: str) -> list[dict[str, Any]]:
    """The project's objects for the service at ``tag`` with ``trafficRouting: traefik``; a
    pause of 24 h (the longest the stack allows) at each weight holds every step until the test
    promotes it. The Services get cluster IPs from the test's loopback ServiceCIDR."""
    delivery = DeliveryConfig.model_validate(
        {"weights": [10, 25, 50], "pause": "24h", "trafficRouting": "traefik"})
    spec = ServiceDeployment.model_validate(
        {"image": f"{REGISTRY}/{SERVICE}:{tag}", "replicas": REPLICAS})
    svcs = services(SERVICE, NAMESPACE, spec)
    for svc in svcs:
        svc["spec"]["clusterIP"] = CLUSTER_IPS[svc["metadata"]["name"]]
    target = delivery.route_target(SERVICE, NAMESPACE, spec)
    routes = [r.body for r in ROUTERS["traefik"].routes(target)]
    for body in routes:
        # Traefik v3.7.13 does not apply the provider's nativeLBByDefault to the services of a
        # TraefikService (its configBuilder for them leaves it out), so each says it itself
        for child in body["spec"].get("weighted", {}).get("services", []):
            child["nativeLB"] = True
    return [
        rollout(SERVICE, NAMESPACE, spec, delivery, freeze=False, gate=False, background=False,
                annotate_scrape=False),
        *svcs,
        *routes,
    ]


def converged(stack: Stack, traefik: Traefik, weight: int, new: str) -> Observation:
    """Argo has set ``weight`` for the release ``new`` (tag) and Traefik routes with it: the
    weighted service's stable and canary weights, each Service's cluster IP as its server, each
    Service selecting its release's pods (Argo's pod-template hash), and each answering, asked
    directly, as that release. At 100 the release has completed: its pods are the stable ones,
    the canary weight is back to 0."""
    body = stack.get("rollout", SERVICE, NAMESPACE)
    status = body.get("status", {})
    stable_hash, canary_hash = status.get("stableRS", ""), status.get("currentPodHash", "")
    selectors = {
        name: stack.get("service", name, NAMESPACE)["spec"]["selector"].get(
            "rollouts-pod-template-hash") for name in CLUSTER_IPS}
    routes = routing(traefik)
    seen: dict[str, Any] = {
        "rollout": {k: status.get(k) for k in ("phase", "currentStepIndex", "message")},
        "stableRS": stable_hash, "currentPodHash": canary_hash, "selectors": selectors,
        "traefik": routes}
    url = {name: f"http://{ip}:80" for name, ip in CLUSTER_IPS.items()}
    stable = routes.get(f"{NAMESPACE}-{SERVICE}-stable-80", {})
    canary = routes.get(f"{NAMESPACE}-{SERVICE}-canary-80", {})
    if weight == 100:
        ok = status.get("phase") == "Healthy" and stable_hash == canary_hash
        want = {"stable": 100, "canary": 0}
        versions = {f"{SERVICE}-stable": new}
    else:
        ok = status.get("phase") == "Paused" and stable_hash != canary_hash
        want = {"stable": 100 - weight, "canary": weight}
        versions = {f"{SERVICE}-stable": STABLE_TAG, f"{SERVICE}-canary": new}
    ok = ok and stable.get("weight") == want["stable"] and canary.get("weight") == want["canary"]
    ok = ok and stable.get("servers") == [url[f"{SERVICE}-stable"]]
    ok = ok and canary.get("servers") == [url[f"{SERVICE}-canary"]]
    ok = ok and selectors == {f"{SERVICE}-stable": stable_hash, f"{SERVICE}-canary": canary_hash}
    if ok:
        said = {name: (answers(url[name]) or {}).get("version") for name in versions}
        seen["answers"] = said
        ok = said == versions
    return Observation(ok, seen)


def test_requests_through_traefik_follow_the_canary_weights(
    dataplane: tuple[Stack, Traefik]
) -> None:
    """A release of ``web`` goes 10 -> 25 -> 50 -> 100 through the traefik router; at each step,
    once Traefik routes with the weights Argo set, 10,000 requests go through Traefik's entry
    point and the share answered by the new release must be within 2 points of the weight
    (before the release: 0).

    Why 10,000: the test must not depend on how Traefik spreads requests (its weighted round
    robin is deterministic, so a correct split is off by a request or two). Even if each request
    went to the canary independently with probability w, the measured share's standard deviation
    would be at most sqrt(0.5 * 0.5 / 10,000) = 0.5 points, so a correct split falls outside 2
    points with probability below 1e-4 per step (4 sigma), while a split that ignored the weight
    (the previous step's weight, 15 points or more away, or stable only) fails at every step."""
    stack, traefik = dataplane
    apply(stack, objects(STABLE_TAG), "first-release")
    wait_for("the first release to be Healthy behind Traefik",
             lambda: converged(stack, traefik, 100, STABLE_TAG), 180)
    counts, _ = send(traefik.port, 2000, HOST)
    assert counts == Counter({STABLE_TAG: 2000}), counts  # no canary yet: everything is stable

    # the next release: the Rollout's new image only (the TraefikService's weights are Argo's)
    apply(stack, [b for b in objects(CANARY_TAG) if b["kind"] == "Rollout"], "release")
    for weight in (10, 25, 50, 100):
        if weight != 10:
            stack.kubectl_plugin("argo", "rollouts", "promote", SERVICE, "-n", NAMESPACE)
        routed = functools.partial(converged, stack, traefik, weight, CANARY_TAG)
        wait_for(f"Traefik to route {weight}% to the new release", routed, 180)
        counts, seconds = send(traefik.port, REQUESTS, HOST)
        share = counts[CANARY_TAG] / REQUESTS
        SHARES.append((weight, share, REQUESTS))
        print(f"weight {weight}%: canary share {share:.2%} ({dict(counts)}, {seconds:.1f} s)")
        assert set(counts) <= {STABLE_TAG, CANARY_TAG}, counts
        assert abs(share - weight / 100) <= TOLERANCE, (weight, share, dict(counts))
