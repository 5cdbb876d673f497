"""The e2e traffic simulator (e2e/simulator.py) serves each release as the scenario declared it
over its HTTP API, whatever its image tag says; no cluster: the pods it would list are given."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from e2e.simulator import BUCKETS, SLOW, Simulator, serve


@pytest.fixture
def sim() -> Iterator[tuple[Simulator, str]]:
    simulator = Simulator({"api": "core"}, ["kubectl"], rps=100.0)
    pods = [("api-a", "aaa", "registry/api:1.0.0"), ("api-b", "bbb", "registry/api:1.1.0-bad")]
    simulator.running_pods = lambda service: pods  # type: ignore[method-assign]
    server = serve(simulator, 0)
    try:
        yield simulator, server.url
    finally:
        server.close()


def post(url: str, body: dict[str, Any] | None = None) -> int:
    request = urllib.request.Request(url, data=json.dumps(body or {}).encode(), method="POST")
    try:
        with urllib.request.urlopen(request, timeout=5) as reply:
            return int(reply.status)
    except urllib.error.HTTPError as err:
        return int(err.code)


def served(simulator: Simulator, seconds: float = 10.0) -> dict[str, tuple[float, float]]:
    """Per pod: (share of its requests failed, share served over the 2 s threshold)."""
    simulator.tick(0.0)  # the first tick only registers the pods
    simulator.tick(seconds)
    out = {}
    for name, pod in simulator.pods["api"].items():
        within_2s = pod.buckets[BUCKETS.index(2.0)]
        out[name] = (pod.requests.get("500", 0.0) / pod.count, 1 - within_2s / pod.count)
    return out


def test_an_unregistered_release_is_healthy_whatever_its_tag_says(sim: tuple[Simulator, str]
                                                                  ) -> None:
    simulator, _ = sim
    assert served(simulator) == {"api-a": (0.0, 0.0), "api-b": (0.0, 0.0)}


def test_a_declared_behaviour_is_served_by_the_pods_of_that_release_only(
    sim: tuple[Simulator, str]
) -> None:
    simulator, url = sim
    assert post(f"{url}/behaviour/api/1.0.0", {"errors": 0.25, "slow": 0.5}) == 204
    shares = served(simulator)
    assert shares["api-a"] == pytest.approx((0.25, 0.5))
    assert shares["api-b"] == (0.0, 0.0)
    mean = simulator.pods["api"]["api-a"].total_seconds / simulator.pods["api"]["api-a"].count
    assert mean == pytest.approx(0.5 * SLOW + 0.5 * 0.1)


def test_an_empty_body_or_a_reset_clears_a_behaviour(sim: tuple[Simulator, str]) -> None:
    simulator, url = sim
    post(f"{url}/behaviour/api/1.0.0", {"errors": 0.5})
    assert post(f"{url}/behaviour/api/1.0.0", {}) == 204
    assert simulator.behaviours == {}
    post(f"{url}/behaviour/api/1.0.0", {"errors": 0.5})
    post(f"{url}/rate/api/0")
    post(f"{url}/errors/api/0.1")
    assert post(f"{url}/reset") == 204
    assert (simulator.behaviours, simulator.rates, simulator.incident) == (
        {}, {"api": 100.0}, {"api": 0.0})


@pytest.mark.parametrize("body", [{"errors": 1.5}, {"slow": -0.1}, {"bad": 1}, {"errors": "x"}])
def test_a_behaviour_that_is_not_two_shares_is_refused(sim: tuple[Simulator, str],
                                                        body: dict[str, Any]) -> None:
    simulator, url = sim
    assert post(f"{url}/behaviour/api/1.0.0", body) == 400
    assert post(f"{url}/behaviour/nope/1.0.0", {"errors": 0.1}) == 404
    assert simulator.behaviours == {}
