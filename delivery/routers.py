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


@dataclass(frozen=True)
class Router:
    description: str
    share: Callable[[int, int], float]  # (replicas, weight) -> canary's share of the traffic
    # the class of the stable Ingress the program renders for the router to clone; None: none
    ingress_class: str | None
    traffic_routing: Callable[[str], dict[str, Any] | None]  # the Rollout's trafficRouting


ROUTERS: dict[str, Router] = {
    "replicas": Router(
        "split by pod count (no router)", _replica_share, None, lambda service: None
    ),
    "nginx": Router(
        "NGINX ingress canary weights",
        lambda replicas, weight: weight / 100,
        "nginx",
        lambda service: {"nginx": {"stableIngress": service}},
    ),
    # gatewayapi: Argo's Gateway API plugin (trafficRouting.plugins) would be one more entry.
}
