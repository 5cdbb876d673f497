"""A two-cluster fleet on 127.0.0.1 for the fleet suite and the fleet benchmark: per cluster an
exporter and a Prometheus 3 with a Thanos sidecar, then a Thanos Query over the sidecars and the
Ruler, and a Thanos Ruler that evaluates the fleet rules through that Query.

    fleet = Fleet(work, local_rules, fleet_rules, services=["checkout"])
    fleet.start()                      # every process ready; stops what it started if one fails
    fleet.exporters["b"].set("checkout", error_ratio=1.0)
    fleet.query("slo:fleet_sli_error:ratio_rate2m")
    fleet.close()                      # SIGTERM, then SIGKILL, every process still running

Counters are the integral of a piecewise-constant rate (requests/s and error ratio, changed at
runtime), so the rates Prometheus computes are exact. Ports are picked before anything starts:
Query is given the Ruler's gRPC address and the Ruler Query's HTTP one. Logs go to ``work``
(one file per process, appended across restarts); :meth:`Fleet.log_tails` shows their ends.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from e2e.harness import wait_for
from tools.local_prometheus import LocalPrometheus, free_port
from tools.loopback import LoopbackServer, Reply, Request

CLUSTERS = ("a", "b")
# what a Thanos built without its `slicelabels` tag panics with (Prometheus' default labels
# layout is not the one Thanos' zero-copy protobuf casts assume)
SLICELABELS_PANICS = ("labels.decodeSize", "BinaryTieredBufferPool")
BUILD_HINT = "run `bash e2e/tools/build.sh thanos` and put its directory on PATH"


def thanos_binary() -> str:
    """``$SLO_CANARY_THANOS`` when set, else ``thanos`` on PATH."""
    found = os.environ.get("SLO_CANARY_THANOS") or shutil.which("thanos")
    if not found or not Path(found).exists():
        raise RuntimeError(f"no Thanos binary (set SLO_CANARY_THANOS or {BUILD_HINT})")
    return found


def get_json(url: str, timeout: float = 10) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.load(response)


# ---------------------------------------------------------------------------------------------
# Traffic


@dataclass
class Traffic:
    """One service's requests: phases of (start, requests/s, error ratio), the last one open."""

    phases: list[tuple[float, float, float]]

    def counts(self, t: float) -> tuple[float, float]:
        """(requests, errors) served up to ``t``."""
        total = bad = 0.0
        for k, (start, rps, ratio) in enumerate(self.phases):
            end = self.phases[k + 1][0] if k + 1 < len(self.phases) else t
            span = max(0.0, min(t, end) - start)
            total += rps * span
            bad += rps * ratio * span
        return total, bad


class Exporter:
    """Serves ``http_requests_total{job=<service>, code="200"|"500"}`` of its services."""

    def __init__(self, services: Iterable[str], rps: float, error_ratio: float):
        now = time.time()
        self.traffic = {name: Traffic([(now, rps, error_ratio)]) for name in services}
        self.lock = threading.Lock()
        self.server = LoopbackServer(lambda _: Reply.text(self.exposition(time.time())))
        self.port = self.server.port

    def exposition(self, t: float) -> str:
        lines = ["# TYPE http_requests_total counter"]
        with self.lock:
            for name, traffic in self.traffic.items():
                total, bad = traffic.counts(t)
                lines.append(f'http_requests_total{{job="{name}",code="200"}} {total - bad!r}')
                lines.append(f'http_requests_total{{job="{name}",code="500"}} {bad!r}')
        return "\n".join(lines) + "\n"

    def set(self, service: str | None = None, *, rps: float | None = None,
            error_ratio: float | None = None, at: float | None = None) -> float:
        """Change one service's (all when ``service`` is None) rate and/or error ratio from
        ``at`` (now by default); returns the time of the change."""
        at = time.time() if at is None else at
        with self.lock:
            for name, traffic in self.traffic.items():
                if service is None or name == service:
                    _, last_rps, last_ratio = traffic.phases[-1]
                    traffic.phases.append((at, last_rps if rps is None else rps,
                                           last_ratio if error_ratio is None else error_ratio))
        return at

    def stop(self) -> None:
        self.server.close()


class FakeAlertmanager:
    """Records what the Ruler sends (any POST path: v1 or v2 API), to see its endsAt; answers
    any GET (status probes)."""

    def __init__(self) -> None:
        self.received: list[tuple[float, dict[str, Any]]] = []
        self.server = LoopbackServer(self._answer)
        self.port, self.url = self.server.port, self.server.url

    def _answer(self, request: Request) -> Reply:
        if request.method == "POST":
            try:
                alerts = request.json() or []
            except ValueError:
                alerts = []
            now = time.time()
            self.received.extend((now, a) for a in alerts if isinstance(a, dict))
        return Reply()

    def stop(self) -> None:
        self.server.close()


# ---------------------------------------------------------------------------------------------
# Processes


@dataclass
class Process:
    """A command in its own session, logging to ``work/<name>.log`` (appended on restart)."""

    name: str
    argv: list[str]
    work: Path
    ready_url: str
    proc: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.work / f"{self.name}.log"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def spawn(self, argv: list[str] | None = None) -> subprocess.Popen[bytes]:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(argv or self.argv, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        return self.proc

    def start(self, timeout: float = 60) -> None:
        self.spawn()
        self.wait_ready(timeout)

    def wait_ready(self, timeout: float) -> None:
        def ready() -> bool | str:
            if self.proc is None or self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited:\n{self.tail()}")
            with urllib.request.urlopen(self.ready_url, timeout=2) as response:
                return response.status == 200 or f"HTTP {response.status}"

        try:
            wait_for(f"{self.name} to be ready", ready, timeout, every=0.2)
        except TimeoutError as err:
            raise TimeoutError(f"{err}\n{self.tail()}") from None

    def stop(self, timeout: float = 20) -> float:
        """SIGTERM, then SIGKILL after ``timeout``; returns when it has exited (the time)."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        return time.time()

    def log_size(self) -> int:
        return self.log_path.stat().st_size if self.log_path.exists() else 0

    def log_since(self, offset: int) -> str:
        """What the process logged after ``offset`` (a :meth:`log_size`)."""
        with self.log_path.open("rb") as log:
            log.seek(offset)
            return log.read().decode(errors="replace")

    def tail(self, lines: int = 25) -> str:
        if not self.log_path.exists():
            return f"({self.log_path} missing)"
        text = self.log_path.read_text(errors="replace").splitlines()[-lines:]
        return "\n".join(f"  {line}" for line in text)


@dataclass
class Cluster:
    name: str
    exporter: Exporter
    prometheus: LocalPrometheus
    server: Process  # the Prometheus process (LocalPrometheus' argv, our supervision)
    sidecar: Process
    sidecar_grpc: int

    @property
    def url(self) -> str:
        return self.prometheus.url


@dataclass
class Fleet:
    work: Path
    local_rules: Path  # each cluster's Prometheus
    fleet_rules: Path  # the Thanos Ruler
    services: list[str]
    rps: dict[str, float] = field(default_factory=lambda: {"a": 100.0, "b": 10.0})
    error_ratio: dict[str, float] = field(default_factory=lambda: {"a": 0.002, "b": 0.01})
    scrape_interval: str = "1s"
    evaluation_interval: str = "1s"
    ruler_eval_interval: str = "1s"
    ruler_resend_delay: str = "1m"
    clusters: dict[str, Cluster] = field(default_factory=dict)
    processes: list[Process] = field(default_factory=list)
    alertmanager: FakeAlertmanager | None = None

    def __post_init__(self) -> None:
        self.thanos = thanos_binary()
        self.query_http, self.query_grpc = free_port(), free_port()
        self.ruler_http, self.ruler_grpc = free_port(), free_port()
        self.query_url = f"http://127.0.0.1:{self.query_http}"
        self.ruler_url = f"http://127.0.0.1:{self.ruler_http}"

    # ------------------------------------------------------------------ lifecycle

    def _thanos(self, name: str, command: str, http: int, grpc: int, *args: str) -> Process:
        argv = [self.thanos, command, f"--http-address=127.0.0.1:{http}",
                f"--grpc-address=127.0.0.1:{grpc}", "--http-grace-period=0s",
                "--grpc-grace-period=0s", *args]
        process = Process(name, argv, self.work, f"http://127.0.0.1:{http}/-/ready")
        self.processes.append(process)
        return process

    def start(self, timeout: float = 90) -> Fleet:
        """Every process, each waited for; on failure everything started is stopped."""
        try:
            self._start(timeout)
        except BaseException as err:
            tails = self.log_tails()
            self.close()
            if isinstance(err, Exception):
                raise RuntimeError(f"the fleet did not start: {err}\n{tails}") from err
            raise
        return self

    def _start(self, timeout: float) -> None:
        self.alertmanager = FakeAlertmanager()
        for name in CLUSTERS:
            exporter = Exporter(self.services, self.rps[name], self.error_ratio[name])
            config = {
                "global": {"scrape_interval": self.scrape_interval,
                           "evaluation_interval": self.evaluation_interval,
                           "external_labels": {"cluster": name}},
                "rule_files": [str(self.local_rules)],
                "scrape_configs": [{
                    "job_name": "exporter",
                    "honor_labels": True,
                    "static_configs": [{"targets": [f"127.0.0.1:{exporter.port}"]}],
                }],
            }
            data = self.work / f"prometheus-{name}-data"
            # a sidecar wants equal min and max block durations (no local compaction)
            prometheus = LocalPrometheus(
                config, self.work, data_dir=data, name=f"prometheus-{name}",
                args=("--storage.tsdb.min-block-duration=2h",
                      "--storage.tsdb.max-block-duration=2h"),
            )
            server = Process(f"prometheus-{name}", prometheus.argv, self.work,
                             f"{prometheus.url}/-/ready")
            self.processes.append(server)
            grpc = free_port()
            sidecar = self._thanos(f"sidecar-{name}", "sidecar", free_port(), grpc,
                                   f"--prometheus.url={prometheus.url}", f"--tsdb.path={data}")
            self.clusters[name] = Cluster(name, exporter, prometheus, server, sidecar, grpc)
        for cluster in self.clusters.values():
            cluster.prometheus.start(timeout, spawn=cluster.server.spawn)
            cluster.sidecar.start(timeout)
        ruler = self._thanos(
            "ruler", "rule", self.ruler_http, self.ruler_grpc,
            f"--query={self.query_url}", f"--eval-interval={self.ruler_eval_interval}",
            '--label=ruler="fleet"', f"--rule-file={self.fleet_rules}",
            f"--data-dir={self.work / 'ruler-data'}",
            f"--alertmanagers.url={self.alertmanager.url}",
            f"--resend-delay={self.ruler_resend_delay}",
        )
        query = self._thanos(
            "query", "query", self.query_http, self.query_grpc,
            *(f"--endpoint-strict=127.0.0.1:{c.sidecar_grpc}" for c in self.clusters.values()),
            f"--endpoint-strict=127.0.0.1:{self.ruler_grpc}",
        )
        self.ruler, self.query_process = ruler, query
        ruler.start(timeout)
        query.start(timeout)
        wait_for("Query to see both sidecars and the Ruler", self._stores_up, timeout)

    def _stores_up(self) -> bool | str:
        stores = get_json(f"{self.query_url}/api/v1/stores")["data"] or {}
        healthy = [s for group in stores.values() for s in group if not s.get("lastError")]
        return len(healthy) >= len(self.clusters) + 1 or f"stores: {stores}"

    def close(self) -> None:
        """Stop every process still running (last started first), then the exporters."""
        for process in reversed(self.processes):
            with contextlib.suppress(Exception):  # keep stopping the others
                process.stop()
        for cluster in self.clusters.values():
            cluster.exporter.stop()
        if self.alertmanager is not None:
            self.alertmanager.stop()
            self.alertmanager = None

    def log_tails(self, lines: int = 25) -> str:
        text = "\n".join(f"--- {p.log_path}\n{p.tail(lines)}" for p in self.processes)
        if any(sign in text for sign in SLICELABELS_PANICS):
            text += ("\nThanos panicked on its labels: the binary was built without "
                     "`-tags slicelabels` (Thanos' .promu.yml builds with netgo,slicelabels)")
        return text

    # ------------------------------------------------------------------ control

    def stop_prometheus(self, cluster: str) -> float:
        return self.clusters[cluster].server.stop()

    def start_prometheus(self, cluster: str, timeout: float = 60) -> None:
        """Start a stopped Prometheus again: same port, same data directory."""
        self.clusters[cluster].prometheus.start(timeout, spawn=self.clusters[cluster].server.spawn)

    def stop_query(self) -> float:
        return self.query_process.stop()

    def start_query(self, timeout: float = 60) -> None:
        self.query_process.start(timeout)

    # ------------------------------------------------------------------ HTTP API

    @staticmethod
    def _api(base: str, path: str, params: dict[str, Any] | None = None,
             timeout: float = 10) -> Any:
        url = f"{base}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        try:
            body = get_json(url, timeout)
        except urllib.error.HTTPError as err:  # Prometheus' API says why in the body
            body = json.loads(err.read() or b"{}")
            raise QueryError(body.get("error") or str(err), body.get("warnings") or []) from None
        if body.get("status") != "success":
            raise QueryError(body.get("error", str(body)), body.get("warnings") or [])
        return body

    def query(self, expr: str, partial_response: bool = False,
              at: float | None = None) -> list[dict[str, Any]]:
        """An instant query through Thanos Query."""
        return self.query_with_warnings(expr, partial_response, at)[0]

    def query_with_warnings(self, expr: str, partial_response: bool = False,
                            at: float | None = None) -> tuple[list[dict[str, Any]], list[str]]:
        params: dict[str, Any] = {"query": expr,
                                  "partial_response": str(partial_response).lower()}
        if at is not None:
            params["time"] = f"{at:.3f}"
        body = self._api(self.query_url, "query", params)
        return list(body["data"]["result"]), list(body.get("warnings") or [])

    def query_range(self, expr: str, start: float, end: float, step: float = 1,
                    partial_response: bool = True) -> list[dict[str, Any]]:
        params = {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": step,
                  "partial_response": str(partial_response).lower()}
        return list(self._api(self.query_url, "query_range", params)["data"]["result"])

    def prometheus_query(self, cluster: str, expr: str) -> list[dict[str, Any]]:
        """An instant query against one cluster's Prometheus (no Thanos in between)."""
        body = self._api(self.clusters[cluster].url, "query", {"query": expr})
        return list(body["data"]["result"])

    def prometheus_alerts(self, cluster: str) -> list[dict[str, Any]]:
        return list(self._api(self.clusters[cluster].url, "alerts")["data"]["alerts"])

    def ruler_rules(self) -> list[dict[str, Any]]:
        return list(self._api(self.ruler_url, "rules")["data"]["groups"])

    def ruler_alerts(self) -> list[dict[str, Any]]:
        data = self._api(self.ruler_url, "alerts")["data"]  # Thanos spells it "Alerts"
        return list(data.get("alerts") or data.get("Alerts") or [])

    def metrics(self, base: str) -> str:
        with urllib.request.urlopen(f"{base}/metrics", timeout=10) as response:
            return str(response.read().decode())


class QueryError(RuntimeError):
    def __init__(self, message: str, warnings: list[str]):
        super().__init__(message)
        self.warnings = warnings


def find_alerts(alerts: list[dict[str, Any]], name: str, **labels: str) -> list[dict[str, Any]]:
    return [a for a in alerts if a["labels"].get("alertname") == name
            and all(a["labels"].get(k) == v for k, v in labels.items())]


def firing(alerts: list[dict[str, Any]], name: str, **labels: str) -> bool:
    return any(a["state"] == "firing" for a in find_alerts(alerts, name, **labels))


def value(result: list[dict[str, Any]]) -> float | None:
    """The value of a one-series instant vector (None when empty)."""
    if not result:
        return None
    if len(result) > 1:
        raise AssertionError(f"expected one series, got {len(result)}: {result}")
    return float(result[0]["value"][1])


SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    """Samples of ``name`` in a Prometheus text exposition: (labels, value)."""
    out = []
    for line in text.splitlines():
        match = SAMPLE.match(line)
        if match and match.group(1) == name:
            labels = {k: json.loads(f'"{v}"') for k, v in LABEL.findall(match.group(2) or "")}
            out.append((labels, float(match.group(3))))
    return out
