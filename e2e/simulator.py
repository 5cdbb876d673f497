"""Traffic for pods that run no containers.

KWOK makes pods Running without starting anything, so this process plays the service: every
second it lists each service's Running pods, splits the service's request rate evenly over them
(what a Service does when the canary weight is set by replica count), and counts requests,
5xx responses and latencies per pod, labelled with the pod's real
``rollouts_pod_template_hash``. Prometheus scrapes ``/metrics/<service>``.

How a release behaves is read from its image tag: ``…-bad`` answers half of its requests with
500, ``…-errors<share>`` (e.g. ``1.6.0-errors0.003``) that share of them, ``…-slow`` serves its
requests in 3 s; anything else is healthy. ``POST /rate/<service>/<requests per second>`` changes
a service's traffic (0 for none), and ``POST /errors/<service>/<share>`` makes every pod of a
service fail at least that share of requests (an incident that is not a release).

Counts are expected values (fractions of a request), so a scenario's error ratio is exact and
every run sees the same numbers. A pod's counters start at zero: the tick that first sees a pod
only registers it, so Prometheus scrapes it at 0 before any request (the canary judge sums the
last value of every canary series, and a rate over a series that starts high would lose its
first requests).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0)


@dataclass
class PodCounters:
    namespace: str
    hash: str
    requests: dict[str, float] = field(default_factory=lambda: {"200": 0.0, "500": 0.0})
    buckets: list[float] = field(default_factory=lambda: [0.0] * len(BUCKETS))
    count: float = 0.0
    total_seconds: float = 0.0


def behaviour(image: str) -> tuple[float, float]:
    """(error share, latency in seconds) of a release, from its image tag."""
    tag = image.rsplit(":", 1)[-1]
    if tag.endswith("-bad"):
        return 0.5, 0.1
    share = re.search(r"-errors([0-9]*\.?[0-9]+)$", tag)
    if share:
        return min(float(share.group(1)), 1.0), 0.1
    if tag.endswith("-slow"):
        return 0.0, 3.0
    return 0.0, 0.1


class Simulator:
    def __init__(self, services: dict[str, str], kubectl: list[str], rps: float):
        self.services = services  # name -> namespace
        self.kubectl = kubectl
        self.rates = dict.fromkeys(services, rps)
        self.incident = dict.fromkeys(services, 0.0)
        self.pods: dict[str, dict[str, PodCounters]] = {s: {} for s in services}
        self.lock = threading.Lock()

    def running_pods(self, service: str) -> list[tuple[str, str, str]]:
        out = subprocess.run(
            [
                *self.kubectl,
                "get",
                "pods",
                "-n",
                self.services[service],
                "-l",
                f"app.kubernetes.io/name={service}",
                "-o",
                "json",
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=10,
        )
        if out.returncode != 0:
            return []
        pods = []
        for pod in json.loads(out.stdout)["items"]:
            if pod["status"].get("phase") != "Running" or pod["metadata"].get("deletionTimestamp"):
                continue
            labels = pod["metadata"].get("labels", {})
            image = pod["spec"]["containers"][0]["image"]
            pods.append(
                (pod["metadata"]["name"], labels.get("rollouts-pod-template-hash", ""), image)
            )
        return pods

    def tick(self, seconds: float) -> None:
        for service, namespace in self.services.items():
            pods = self.running_pods(service)
            with self.lock:
                rate = self.rates[service]
                known = self.pods[service]
                serving = [p for p in pods if p[0] in known]
                for name, pod_hash, _ in pods:
                    known.setdefault(name, PodCounters(namespace, pod_hash))
                for name, _, image in serving:
                    counters = known[name]
                    requests = rate * seconds / len(serving)
                    errors, latency = behaviour(image)
                    errors = max(errors, self.incident[service])
                    counters.requests["500"] += requests * errors
                    counters.requests["200"] += requests * (1 - errors)
                    counters.count += requests
                    counters.total_seconds += requests * latency
                    for i, bound in enumerate(BUCKETS):
                        if latency <= bound:
                            counters.buckets[i] += requests

    def run(self, interval: float = 1.0) -> None:
        last = time.monotonic()
        while True:
            time.sleep(interval)
            now = time.monotonic()
            self.tick(now - last)
            last = now

    def exposition(self, service: str) -> str:
        lines = [
            "# TYPE http_requests_total counter",
            "# TYPE http_request_duration_seconds histogram",
        ]
        with self.lock:
            for pod, c in sorted(self.pods[service].items()):
                base = (
                    f'namespace="{c.namespace}",pod="{pod}",rollouts_pod_template_hash="{c.hash}"'
                )
                for code, value in sorted(c.requests.items()):
                    lines.append(f'http_requests_total{{{base},code="{code}"}} {value:.3f}')
                for bound, value in zip(BUCKETS, c.buckets, strict=True):
                    lines.append(
                        f'http_request_duration_seconds_bucket{{{base},le="{bound}"}} {value:.3f}'
                    )
                lines.append(
                    f'http_request_duration_seconds_bucket{{{base},le="+Inf"}} {c.count:.3f}'
                )
                lines.append(f"http_request_duration_seconds_count{{{base}}} {c.count:.3f}")
                lines.append(f"http_request_duration_seconds_sum{{{base}}} {c.total_seconds:.3f}")
        return "\n".join(lines) + "\n"


def serve(sim: Simulator, port: int) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            service = self.path.removeprefix("/metrics/")
            if service not in sim.services:
                self.send_error(404)
                return
            body = sim.exposition(service).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            parts = self.path.strip("/").split("/")
            if (
                len(parts) != 3
                or parts[0] not in ("rate", "errors")
                or parts[1] not in sim.services
            ):
                self.send_error(404)
                return
            with sim.lock:
                target = sim.rates if parts[0] == "rate" else sim.incident
                target[parts[1]] = float(parts[2])
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--service", action="append", required=True, metavar="NAME=NAMESPACE")
    parser.add_argument("--rps", type=float, default=50.0)
    args = parser.parse_args()
    services = dict(s.split("=", 1) for s in args.service)
    sim = Simulator(services, ["kubectl", "--kubeconfig", args.kubeconfig], args.rps)
    serve(sim, args.port)
    sim.run()


if __name__ == "__main__":
    main()
