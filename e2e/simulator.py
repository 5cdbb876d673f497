"""Traffic for pods that run no containers.

KWOK makes pods Running without starting anything, so this process plays the service: every
second it lists each service's Running pods, splits the service's request rate evenly over them
(what a Service does when the canary weight is set by replica count), and counts requests,
5xx responses and latencies per pod, labelled with the pod (``pod``) and its real
``rollouts_pod_template_hash``. Prometheus scrapes ``/metrics/<service>``.

How a release behaves is declared by the scenario, never read from its image tag: the scenario
registers the release's tag before `pulumi up` and the simulator looks every pod's behaviour up
by the tag of its image; a tag nobody registered is healthy. It and everything else is set over
HTTP:

- ``POST /behaviour/<service>/<tag>`` with a JSON body: pods of the release ``tag`` answer the
  share ``{"errors": e}`` of their requests with 500 and serve the share ``{"slow": s}`` of them
  in 3 s (the rest in 0.1 s); ``{}`` clears it (a :class:`Behaviour`);
- ``POST /rate/<service>/<requests per second>``: the service's traffic (0 for none);
- ``POST /errors/<service>/<share>``: every pod of the service fails at least that share of
  requests (an incident that is not a release);
- ``POST /lazy/<service>/<1|0>``: whether the service's pods create their error series
  (``code="500"``) lazily, as client libraries do: absent until the pod's first error, and again
  after each restart. Default 0: every series is created at 0 when the pod starts;
- ``POST /restart/<service>/<pod or pod-template hash>``: the container restarts: its counters
  (requests, errors, histogram) start again from 0, lazily created series disappear, and a
  cold start (below) begins again. Answers the pods restarted and what each had served;
- ``POST /inject/<service>/<pod or hash>/<n>``: the next ``n`` requests of each such pod fail;
- ``POST /coldstart/<service>/<tag>`` with a JSON body: pods of the release ``tag`` fail their
  first ``{"requests": N}`` requests, or ``{"share": s, "seconds": S}`` of their requests in
  their first ``S`` seconds, after starting and after every restart; ``{}`` clears it;
- ``POST /reset``: every control above back to its start (each service's rate the ``--rps``, no
  incident, series created at start, no behaviour or cold start registered, no injection
  pending); the pods and their counters stay;
- ``GET /served/<service>``: per pod, everything it served in its life, restarts included
  (the truth a verdict's counts are checked against).

Counts are expected values (fractions of a request), so a scenario's error ratio is exact and
every run sees the same numbers; injected and cold-start errors are whole requests where the
rate allows. A pod's counters start at zero: the tick that first sees a pod only registers it,
so Prometheus scrapes it at 0 before any request (the canary judge sums the last value of every
canary series, and a rate over a series that starts high would lose its first requests).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script by the suite

from tools.loopback import LoopbackServer, Reply, Request

BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0)


@dataclass
class PodCounters:
    namespace: str
    hash: str
    lazy: bool = False  # the error series is created at the first error
    requests: dict[str, float] = field(default_factory=dict)
    buckets: list[float] = field(default_factory=lambda: [0.0] * len(BUCKETS))
    count: float = 0.0
    total_seconds: float = 0.0
    started: float = field(default_factory=time.monotonic)  # registered or last restarted
    served: float = 0.0  # requests since it started or restarted (its cold start)
    inject: float = 0.0  # errors still to inject into its next requests
    life_requests: float = 0.0  # everything it served, restarts included
    life_errors: float = 0.0
    restarts: int = 0

    def __post_init__(self) -> None:
        self.requests = {"200": 0.0} if self.lazy else {"200": 0.0, "500": 0.0}

    def restart(self, lazy: bool) -> None:
        """The container restarts: its counters start again from zero."""
        self.lazy = lazy
        self.__post_init__()
        self.buckets = [0.0] * len(BUCKETS)
        self.count = self.total_seconds = self.served = 0.0
        self.started = time.monotonic()
        self.restarts += 1


def cold_start_errors(cold: dict[str, float], counters: PodCounters, requests: float,
                      seconds: float, now: float) -> float:
    """Errors of a cold start among the ``requests`` a pod serves in the tick ending ``now``."""
    if "requests" in cold:
        return max(0.0, min(requests, float(cold["requests"]) - counters.served))
    if "seconds" in cold and seconds > 0:
        age_end, age_start = now - counters.started, now - counters.started - seconds
        inside = max(0.0, min(age_end, float(cold["seconds"])) - max(age_start, 0.0))
        return requests * float(cold.get("share", 1.0)) * min(1.0, inside / seconds)
    return 0.0


FAST, SLOW = 0.1, 3.0  # seconds a request takes, and a slow one (over the SLOs' 2 s)


@dataclass(frozen=True)
class Behaviour:
    """How the pods of a release serve: the share of their requests they answer with 500, and
    the share they serve slowly (in 3 s, over the SLOs' 2 s; the rest in 0.1 s). A scenario
    registers it for the release's tag (``POST /behaviour/<service>/<tag>``)."""

    errors: float = 0.0
    slow: float = 0.0

    def __post_init__(self) -> None:
        for name, share in asdict(self).items():
            if not 0.0 <= share <= 1.0:
                raise ValueError(f"{name} is a share of requests, from 0 to 1: {share}")

    @classmethod
    def from_json(cls, body: dict[str, float]) -> Behaviour:
        unknown = set(body) - {f.name for f in fields(cls)}
        if unknown:
            raise KeyError(f"unknown behaviour fields {sorted(unknown)}")
        return cls(**{k: float(v) for k, v in body.items()})


HEALTHY = Behaviour()


def release_tag(image: str) -> str:
    return image.rsplit(":", 1)[-1]


class Simulator:
    def __init__(self, services: dict[str, str], kubectl: list[str], rps: float):
        self.services = services  # name -> namespace
        self.kubectl = kubectl
        self.rps = rps
        self.pods: dict[str, dict[str, PodCounters]] = {s: {} for s in services}
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """Every control back to its start; the pods and their counters stay."""
        with self.lock:
            self.rates = dict.fromkeys(self.services, self.rps)
            self.incident = dict.fromkeys(self.services, 0.0)
            self.lazy = dict.fromkeys(self.services, False)
            self.cold: dict[tuple[str, str], dict[str, float]] = {}  # (service, tag) -> cold start
            self.behaviours: dict[tuple[str, str], Behaviour] = {}  # (service, tag) -> behaviour
            for pods in self.pods.values():
                for counters in pods.values():
                    counters.inject = 0.0

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
                now = time.monotonic()
                rate = self.rates[service]
                known = self.pods[service]
                serving = [p for p in pods if p[0] in known]
                for name, pod_hash, _ in pods:
                    known.setdefault(name, PodCounters(namespace, pod_hash, self.lazy[service]))
                for name, _, image in serving:
                    counters = known[name]
                    requests = rate * seconds / len(serving)
                    release = (service, release_tag(image))
                    behaves = self.behaviours.get(release, HEALTHY)
                    slow = behaves.slow
                    errors = requests * max(behaves.errors, self.incident[service])
                    cold = self.cold.get(release)
                    if cold:
                        errors = max(
                            errors, cold_start_errors(cold, counters, requests, seconds, now)
                        )
                    injected = min(counters.inject, requests - errors)
                    counters.inject -= injected
                    errors += injected
                    if errors > 0:
                        counters.requests["500"] = counters.requests.get("500", 0.0) + errors
                    counters.requests["200"] += requests - errors
                    counters.served += requests
                    counters.life_requests += requests
                    counters.life_errors += errors
                    counters.count += requests
                    counters.total_seconds += requests * (slow * SLOW + (1 - slow) * FAST)
                    for i, bound in enumerate(BUCKETS):
                        counters.buckets[i] += requests * (
                            (slow if bound >= SLOW else 0.0) + (1 - slow if bound >= FAST else 0.0))

    def run(self, interval: float = 1.0) -> None:
        last = time.monotonic()
        while True:
            time.sleep(interval)
            now = time.monotonic()
            self.tick(now - last)
            last = now

    def matching(self, service: str, which: str) -> list[str]:
        """The service's pods named ``which``, or of the pod-template hash ``which``."""
        return sorted(
            name for name, c in self.pods[service].items() if which in (name, c.hash)
        )

    def restart(self, service: str, which: str) -> dict[str, float]:
        """Restart the matching pods; what each had served before, by name."""
        with self.lock:
            before = {}
            for name in self.matching(service, which):
                counters = self.pods[service][name]
                before[name] = counters.life_requests
                counters.restart(self.lazy[service])
            return before

    def inject(self, service: str, which: str, errors: float) -> list[str]:
        with self.lock:
            names = self.matching(service, which)
            for name in names:
                self.pods[service][name].inject += errors
            return names

    def served(self, service: str) -> dict[str, dict[str, object]]:
        with self.lock:
            now = time.monotonic()
            return {
                name: {
                    "hash": c.hash,
                    "requests": c.life_requests,
                    "errors": c.life_errors,
                    "restarts": c.restarts,
                    "seconds_since_start": now - c.started,
                    "series": sorted(c.requests),
                }
                for name, c in sorted(self.pods[service].items())
            }

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


def serve(sim: Simulator, port: int) -> LoopbackServer:
    """GET /metrics/<service>, /served/<service>; POST the controls (module docstring)."""

    def answer(request: Request) -> Reply:
        parts = request.path.strip("/").split("/")
        if request.method == "GET":
            if len(parts) != 2 or parts[0] not in ("metrics", "served") or (
                parts[1] not in sim.services
            ):
                return Reply.error(404)
            if parts[0] == "served":
                return Reply.json(sim.served(parts[1]))
            return Reply.text(sim.exposition(parts[1]))
        try:
            return control(parts, request.json() or {})
        except (ValueError, TypeError, KeyError) as err:
            return Reply.error(400, str(err))

    def control(parts: list[str], body: dict[str, float]) -> Reply:
        what = parts[0] if parts else ""
        if parts == ["reset"]:
            sim.reset()
            return Reply(204)
        arity = {"rate": 3, "errors": 3, "lazy": 3, "restart": 3, "coldstart": 3, "inject": 4,
                 "behaviour": 3}
        if arity.get(what) != len(parts) or parts[1] not in sim.services:
            return Reply.error(404)
        service = parts[1]
        if what == "restart":
            before = sim.restart(service, parts[2])
            return Reply.json(before) if before else Reply.error(
                404, f"no pod or hash {parts[2]} of {service}")
        if what == "inject":
            names = sim.inject(service, parts[2], float(parts[3]))
            return Reply.json(names) if names else Reply.error(
                404, f"no pod or hash {parts[2]} of {service}")
        with sim.lock:
            if what == "rate":
                sim.rates[service] = float(parts[2])
            elif what == "errors":
                sim.incident[service] = float(parts[2])
            elif what == "lazy":
                sim.lazy[service] = parts[2] not in ("0", "false")
            elif what == "behaviour":
                if body:
                    sim.behaviours[(service, parts[2])] = Behaviour.from_json(body)
                else:
                    sim.behaviours.pop((service, parts[2]), None)
            elif body:
                unknown = set(body) - {"requests", "share", "seconds"}
                if unknown:
                    raise KeyError(f"unknown cold-start fields {sorted(unknown)}")
                sim.cold[(service, parts[2])] = {k: float(v) for k, v in body.items()}
            else:
                sim.cold.pop((service, parts[2]), None)
        return Reply(204)

    return LoopbackServer(answer, port)


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
