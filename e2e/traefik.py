"""A real Traefik v3 on the host for the router data-plane scenarios (test_traefik_dataplane.py,
test_gatewayapi_dataplane.py): its binary, the process on a test cluster, and the load generator
that sends requests through its entry point.

Traefik (`e2e/tools/build.sh traefik`, from its Go module) runs with its Kubernetes providers on
the cluster (the admin kubeconfig), the router's entry point on a free loopback port and its API
(read-only: what it really routes with) on another. Services are reached at their cluster IPs
(native load balancing), which the scenarios take from a loopback ServiceCIDR, where
e2e/service_backends.py answers as the pods each Service selects: see those modules' docstrings.
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

from delivery.routers import TRAEFIK_ENTRY_POINT
from e2e.harness import ROOT, Stack, free_port, wait_for

CLIENTS = 4  # concurrent keep-alive connections of the load generator


def loopback_net(index: int) -> str:
    """A /24 of 127.0.0.0/8 for one scenario's cluster IPs (``index``: which scenario), chosen by
    pid too, so that two suites running at once (their clusters are named by pid) do not serve
    the same addresses."""
    return f"127.{100 + os.getpid() % 100}.{index}"


BUILD = ["bash", str(ROOT / "e2e" / "tools" / "build.sh"), "traefik"]
DATA_PLANE_TESTS = ("test_traefik_dataplane.py", "test_gatewayapi_dataplane.py")


def prebuild(log: Path) -> subprocess.Popen[bytes]:
    """Start Traefik's build (or cache check) in the background at the lowest CPU priority, its
    output in ``log``. A cold build takes about ten minutes of both cores; the canary scenarios
    that run first spend most of theirs waiting on the cluster, so the build takes the CPU they
    leave idle (nice 19 yields to every other process). ``traefik_bin`` then waits for it on
    build.sh's per-tool lock instead of starting it."""
    with log.open("wb") as out:
        return subprocess.Popen(["nice", "-n", "19", *BUILD], stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)


def traefik_bin() -> Path:
    """Build (or find cached) Traefik; the path of its binary."""
    out = subprocess.run(BUILD, check=True, capture_output=True, text=True)
    return Path(out.stdout.strip().splitlines()[-1]) / "traefik"


class Traefik:
    """A Traefik process on the test cluster with ``providers`` (its static configuration's
    providers section): the entry point ``web`` on ``port`` and its API on ``api``, both on
    127.0.0.1."""

    def __init__(self, stack: Stack, binary: Path, providers: dict[str, Any]):
        self.port, self.api = free_port(), free_port()
        config = {
            "global": {"checkNewVersion": False, "sendAnonymousUsage": False},
            "entryPoints": {
                TRAEFIK_ENTRY_POINT: {"address": f"127.0.0.1:{self.port}"},
                "traefik": {"address": f"127.0.0.1:{self.api}"},
            },
            "api": {"insecure": True, "dashboard": False},
            "providers": providers,
            "log": {"level": "INFO"},
        }
        path = stack.work / "traefik.yml"
        path.write_text(yaml.safe_dump(config))
        # the providers connect with the cluster's admin kubeconfig (KUBECONFIG)
        stack.start("traefik", [str(binary), f"--configFile={path}"])
        wait_for("Traefik's API", lambda: self.get("/api/overview"), 60)

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.api}{path}", timeout=5) as resp:
            return json.load(resp)


def serve_services(stack: Stack, net: str, namespace: str) -> None:
    """A loopback ServiceCIDR ``net``.0/24 for the Services' cluster IPs, the namespace, and
    e2e/service_backends.py answering on those cluster IPs as the pods they select."""
    name = f"e2e-loopback-{net.rsplit('.', 1)[-1]}"
    cidr = {"apiVersion": "networking.k8s.io/v1", "kind": "ServiceCIDR",
            "metadata": {"name": name}, "spec": {"cidrs": [f"{net}.0/24"]}}
    apply(stack, [cidr], "servicecidr")
    stack.kubectl("wait", "--for=condition=Ready", "--timeout=60s", f"servicecidr/{name}")
    stack.kubectl("create", "namespace", namespace)
    stack.start("service-backends", [
        sys.executable, str(ROOT / "e2e" / "service_backends.py"), "--kubeconfig",
        stack.env["KUBECONFIG"], "--namespace", namespace])


def apply(stack: Stack, bodies: list[dict[str, Any]], name: str, *flags: str) -> str:
    path = stack.work / f"{name}.yaml"
    path.write_text(yaml.safe_dump_all(bodies))
    return stack.kubectl("apply", *flags, "-f", str(path))


def answers(url: str) -> dict[str, str] | None:
    """What the Service at ``url`` answers, asked directly (not through Traefik)."""
    try:
        with urllib.request.urlopen(url + "/", timeout=2) as resp:
            return dict(json.load(resp))
    except OSError:
        return None


def send(port: int, total: int, host: str, clients: int = CLIENTS) -> tuple[Counter[str], float]:
    """``total`` GET requests for ``host`` through Traefik's entry point on ``clients``
    keep-alive connections; the releases that answered them, counted, and the seconds it took.
    Any answer other than 200 fails the test."""
    counts: Counter[str] = Counter()
    errors: list[str] = []
    lock = threading.Lock()

    def client(n: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        local: Counter[str] = Counter()
        try:
            for _ in range(n):
                conn.request("GET", "/", headers={"Host": host})
                resp = conn.getresponse()
                body = resp.read()
                if resp.status != 200:
                    errors.append(f"{resp.status}: {body[:200]!r}")
                    return
                local[json.loads(body)["version"]] += 1
        except Exception as err:  # a failed request is a failed measurement: say which
            errors.append(f"{type(err).__name__}: {err}")
        finally:
            conn.close()
            with lock:
                counts.update(local)

    start = time.monotonic()
    threads = [
        threading.Thread(target=client, args=(total // clients + (i < total % clients),))
        for i in range(clients)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, f"requests through Traefik failed: {errors[:5]}"
    assert sum(counts.values()) == total, counts
    return counts, time.monotonic() - start
