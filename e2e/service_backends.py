"""Real HTTP servers on the cluster IPs of Services whose pods run no containers.

KWOK makes pods Running without starting anything, and the API server refuses loopback
addresses in EndpointSlices (``ValidateEndpointIP``), so pods cannot have addresses this host
serves on. A Service's cluster IP can: e2e/test_traefik_dataplane.py gives its Services cluster
IPs from a loopback ServiceCIDR. This process plays kube-proxy for them: it lists the Services
and Running pods of a namespace twice a second and keeps one HTTP/1.1 server listening on
``<cluster IP>:<port>`` for each port of each such Service. Each request goes to the next of the
Running pods the Service's selector picks at that moment (round robin, as kube-proxy spreads
connections), and is answered with JSON naming the Service, that pod, its image tag
(``version``) and its ``rollouts-pod-template-hash``: which release served it. With no pod
selected it answers 503.

It refuses any cluster IP outside 127.0.0.0/8: it never listens on an address of another network.
"""

from __future__ import annotations

import argparse
import ipaddress
import itertools
import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tools.loopback import LoopbackServer, Reply, Request


class Backends:
    """Which pods each Service selects, as last listed."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.selected: dict[str, list[dict[str, str]]] = {}  # service -> identities
        self.turn = itertools.count()

    def pick(self, service: str) -> dict[str, str] | None:
        with self.lock:
            pods = self.selected.get(service, [])
            return pods[next(self.turn) % len(pods)] if pods else None


def serve(backends: Backends, service: str, address: str, port: int) -> LoopbackServer:
    """One keep-alive HTTP/1.1 server for ``service`` on its cluster IP (loopback only)."""

    def answer(request: Request) -> Reply:
        pod = backends.pick(service)
        return Reply.json({"service": service, **(pod or {})}, 200 if pod else 503)

    return LoopbackServer(answer, port, address, keep_alive=True)


def listed(kubectl: list[str], namespace: str, kind: str) -> list[dict[str, Any]]:
    out = subprocess.run(
        [*kubectl, "get", kind, "-n", namespace, "-o", "json"],
        capture_output=True, text=True, check=False, timeout=10,
    )
    return list(json.loads(out.stdout)["items"]) if out.returncode == 0 else []


def run(kubectl: list[str], namespace: str, interval: float = 0.5) -> None:
    backends = Backends()
    servers: dict[tuple[str, int], tuple[str, LoopbackServer]] = {}
    while True:
        pods = [
            p for p in listed(kubectl, namespace, "pods")
            if p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")
        ]
        wanted: dict[tuple[str, int], str] = {}
        selected: dict[str, list[dict[str, str]]] = {}
        for svc in listed(kubectl, namespace, "services"):
            name, ip = svc["metadata"]["name"], svc["spec"].get("clusterIP", "")
            selector = svc["spec"].get("selector") or {}
            if not ip or ip == "None" or not ipaddress.ip_address(ip).is_loopback:
                continue
            selected[name] = [
                {
                    "pod": p["metadata"]["name"],
                    "version": p["spec"]["containers"][0]["image"].rsplit(":", 1)[-1],
                    "hash": p["metadata"].get("labels", {}).get("rollouts-pod-template-hash", ""),
                }
                for p in sorted(pods, key=lambda p: str(p["metadata"]["name"]))
                if selector and all(
                    p["metadata"].get("labels", {}).get(k) == v for k, v in selector.items())
            ]
            for port in svc["spec"].get("ports", []):
                wanted[(ip, int(port["port"]))] = name
        with backends.lock:
            backends.selected = selected
        for key in list(servers):
            if wanted.get(key) != servers[key][0]:
                servers.pop(key)[1].close()
        for (ip, port), name in wanted.items():
            if (ip, port) not in servers:
                try:
                    servers[(ip, port)] = (name, serve(backends, name, ip, port))
                except OSError as err:
                    print(f"cannot serve {name} on {ip}:{port}: {err}", flush=True)
                else:
                    print(f"serving {name} on {ip}:{port}", flush=True)
        time.sleep(interval)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--namespace", required=True)
    args = parser.parse_args()
    run(["kubectl", "--kubeconfig", args.kubeconfig], args.namespace)


if __name__ == "__main__":
    main()
