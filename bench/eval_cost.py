"""Evaluation cost of our rules and Sloth's in a real Prometheus, and their alerts on the same data.

    python bench/eval_cost.py                 # 200 SLOs, both rule sets in one Prometheus
    python bench/eval_cost.py --isolated      # also: each rule set alone (no CPU contention)
    python bench/eval_cost.py --quick         # smaller smoke run (fewer rounds, shorter waits)

What it does (everything on 127.0.0.1, in a temporary directory, every process stopped at the end):

1. bench/synth.py writes 200 SLOs (67 services) in our format and as Sloth prometheus/v1 specs;
   ``python -m slo rules --no-tests`` and ``sloth generate`` turn them into rule files.
2. Synthetic traffic for every service: 3 instances x (http_requests_total for codes 200, 404,
   500, 503 + http_request_duration_seconds_bucket (9 le) + _count) = 42 series per service.
   Healthy services fail 0.01-0.04% of requests and serve 1% of them slower than 2 s.
3. Raw history: ``promtool tsdb create-blocks-from openmetrics`` backfills the last 3d + 2-4h of
   those series at the scrape interval (one OpenMetrics file per 2h block, 2 in parallel).
4. A small HTTP exporter (a thread here) serves the current values of the same counters, which
   continue the backfilled ones; Prometheus (the first on PATH) scrapes it (honor_labels).
5. Recorded history: the 5m base recordings that windows read with *_over_time (ours:
   slo:sli_total:rate5m and slo:sli_bad:rate5m, read by avg_over_time for windows of 2h..30d and
   by the min-events guard; Sloth's slo:sli_error:ratio_rate5m, read by its 30d window) are
   backfilled with ``promtool tsdb create-blocks-from rules`` over the same range, from a
   Prometheus serving the raw history. 2.42 writes one block per rule per 2h, so each metric's
   200 per-SLO rules are backfilled as one rule whose expression is the union of the 200
   expressions, each labelled with label_replace() exactly as its rule labels it.
6. Prometheus restarts on that data with both rule sets (rule_files) and the same interval for
   scrape and evaluation. Once the backfilled blocks are compacted and a few rounds have run,
   ``prometheus_rule_group_last_duration_seconds`` is read every round through the HTTP API and
   summed per rule set (by rule file); the median over the rounds is reported.
7. Alerts: one service (svc-00002) switches to 100% 5xx in the exporter; /api/v1/alerts is
   polled until both rule sets page for its availability and error-rate SLOs (or a timeout). Every
   other service (and its own latency SLO) must raise nothing, in either set.

Prints a report and writes bench/results/eval_cost.txt.
"""

from __future__ import annotations

import argparse
import calendar
import io
import json
import math
import multiprocessing
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))

from bench import synth  # noqa: E402

RESULTS = BENCH / "results"
AlertKey = tuple[str, str, str, str]  # (rule set, service, slo, severity)
from tools.local_prometheus import LocalPrometheus, binary, free_port  # noqa: E402
from tools.loopback import LoopbackServer, Reply, Request  # noqa: E402

PROMETHEUS = binary()
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
BLOCK = 2 * 3600  # TSDB block range; backfill files are aligned on it
INSTANCES = 3
CODES = ("200", "404", "500", "503")
LE = ("0.05", "0.1", "0.25", "0.5", "1", "2", "5", "10", "+Inf")
# share of requests at or under each bucket boundary (healthy: 1% slower than 2 s)
CDF = (0.30, 0.55, 0.80, 0.92, 0.97, 0.99, 0.998, 0.9995, 1.0)
NOT_FOUND = 0.01
BURN_SERVICE = "svc-00002"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Synthetic traffic: every counter is rate x share x time, piecewise over phases


@dataclass(frozen=True)
class Profile:
    error_ratio: float  # share of requests answered 5xx

    def share(self, kind: str, key: str) -> float:
        """Share of the instance's requests counted by a series (``kind``: code, le, count)."""
        if kind == "code":
            ok = max(0.0, 1.0 - self.error_ratio - NOT_FOUND)
            if self.error_ratio >= 1.0:
                return {"500": 0.7, "503": 0.3}.get(key, 0.0)
            return {"200": ok, "404": NOT_FOUND, "500": 0.7 * self.error_ratio,
                    "503": 0.3 * self.error_ratio}[key]
        if kind == "le":
            return CDF[LE.index(key)]
        return 1.0


@dataclass
class ServiceTraffic:
    name: str
    rps: float  # requests per second, over all instances
    phases: list[tuple[float, Profile]]  # (start, profile), sorted

    def series(self) -> list[tuple[str, str, str, float]]:
        """(label text, kind, key, per-instance share of rps) for every series of the service."""
        out = []
        for i in range(INSTANCES):
            base = f'instance="{self.name}-{i}",job="{self.name}"'
            for code in CODES:
                out.append((f"http_requests_total{{code=\"{code}\",{base}}}", "code", code, 1.0))
            for le in LE:
                out.append(
                    (f'http_request_duration_seconds_bucket{{{base},le="{le}"}}', "le", le, 1.0)
                )
            out.append((f"http_request_duration_seconds_count{{{base}}}", "count", "", 1.0))
        return out

    def value(self, kind: str, key: str, t: float) -> int:
        """Cumulative count of a series of one instance at time ``t``."""
        per_instance = self.rps / INSTANCES
        total = 0.0
        for k, (start, profile) in enumerate(self.phases):
            end = self.phases[k + 1][0] if k + 1 < len(self.phases) else math.inf
            if t <= start:
                break
            total += per_instance * profile.share(kind, key) * (min(t, end) - start)
        return round(total)


def traffic_for(n_slos: int, t0: float) -> list[ServiceTraffic]:
    out = []
    for svc in synth.services(n_slos):
        error_ratio = 0.0001 * (1 + svc.index % 4)  # 0.01%..0.04%: well inside every budget
        rps = 30.0 + 10.0 * (svc.index % 5)
        out.append(ServiceTraffic(svc.name, rps, [(t0, Profile(error_ratio))]))
    return out


def render_exposition(services: list[ServiceTraffic], t: float) -> str:
    lines = [
        "# TYPE http_requests_total counter",
    ]
    hist = ["# TYPE http_request_duration_seconds histogram"]
    for svc in services:
        for labels, kind, key, _ in svc.series():
            line = f"{labels} {svc.value(kind, key, t)}"
            (lines if kind == "code" else hist).append(line)
    return "\n".join(lines + hist) + "\n"


class Exporter:
    """Serves the current values of the synthetic series on 127.0.0.1."""

    def __init__(self, services: list[ServiceTraffic]):
        self.services = services
        self.lock = threading.Lock()
        self.server: LoopbackServer | None = None
        self.port = 0

    def _answer(self, _: Request) -> Reply:
        with self.lock:
            return Reply.text(render_exposition(self.services, time.time()))

    def start(self) -> None:
        self.server = LoopbackServer(self._answer)
        self.port = self.server.port

    def stop(self) -> None:
        if self.server is not None:
            self.server.close()

    def switch(self, service: str, at: float, profile: Profile) -> None:
        with self.lock:
            for svc in self.services:
                if svc.name == service:
                    svc.phases.append((at, profile))


# ---------------------------------------------------------------------------------------------
# Backfill of the raw series


# A backfill job: (rows, t0, start, end, step, tmpdir, outdir); a row is (series text, rate,
# fixed): the value at t is round(rate * (t - t0)) for a counter, or ``fixed`` when it is given.
Row = tuple[str, float, "str | None"]
Job = tuple[list[Row], float, float, float, int, str, str]


def _write_and_import(job: Job) -> int:
    """Write one 2h block's samples as OpenMetrics and turn them into a TSDB block."""
    rows, t0, start, end, step, tmpdir, outdir = job
    path = Path(tmpdir) / f"backfill-{int(start)}-{os.getpid()}.om"
    with path.open("w") as f:
        t = start
        while t < end:
            dt = t - t0
            tail = f" {int(t)}\n"
            f.write("".join([
                f"{labels} {fixed if fixed is not None else round(rate * dt)}{tail}"
                for labels, rate, fixed in rows
            ]))
            t += step
        f.write("# EOF\n")
    subprocess.run([PROMTOOL, "tsdb", "create-blocks-from", "openmetrics", "-q", str(path),
                    outdir], check=True, stdout=subprocess.DEVNULL)
    path.unlink()
    return len(rows) * math.ceil((end - start) / step)


def _default_signals() -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def backfill(rows: list[Row], t0: float, start: float, end: float, step: int, tmpdir: Path,
             data_dir: Path) -> int:
    """Samples of ``rows`` every ``step`` s in [start, end), one promtool run per 2h block."""
    jobs: list[Job] = []
    while start < end:
        stop = min((start // BLOCK + 1) * BLOCK, end)
        jobs.append((rows, t0, start, stop, step, str(tmpdir), str(data_dir)))
        start = stop
    with multiprocessing.get_context("fork").Pool(2, initializer=_default_signals) as pool:
        return sum(pool.map(_write_and_import, jobs))


def raw_rows(services: list[ServiceTraffic]) -> list[Row]:
    rows: list[Row] = []
    for svc in services:
        per_instance = svc.rps / INSTANCES
        _, profile = svc.phases[0]
        for labels, kind, key, _ in svc.series():
            rows.append((labels, per_instance * profile.share(kind, key), None))
    return rows


def recorded_rows(services: list[ServiceTraffic], ours_files: list[Path],
                  sloth_files: list[Path]) -> list[Row]:
    """The 5m base recordings of both rule sets at their healthy steady-state values."""
    by_name = {svc.name: svc for svc in services}

    def bad_share(service: str, slo: str) -> float:
        if slo == "latency":
            return 1.0 - CDF[LE.index(f"{synth.LATENCY_THRESHOLD:g}")]
        return by_name[service].phases[0][1].error_ratio

    def text(record: str, labels: dict[str, str]) -> str:
        inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        return f"{record}{{{inner}}}"

    known = {"slo:sli_total:rate5m", "slo:sli_bad:rate5m", "slo:sli_error:ratio_rate5m"}
    rows: list[Row] = []
    for files in (ours_files, sloth_files):
        wanted = ranged_recordings(files)
        if wanted - known:
            raise RuntimeError(f"no steady-state value known for {sorted(wanted - known)}")
        for rule in synth.iter_rules(files):
            record, labels = str(rule.get("record")), dict(rule.get("labels") or {})
            if record not in wanted:
                continue
            service = labels.get("service") or labels["sloth_service"]
            slo = labels.get("slo") or labels["sloth_slo"]
            rps = by_name[service].rps
            share = bad_share(service, slo)
            value = {"slo:sli_total:rate5m": rps, "slo:sli_bad:rate5m": rps * share,
                     "slo:sli_error:ratio_rate5m": share}[record]
            rows.append((text(record, labels), 0.0, repr(value)))
    return rows


# ---------------------------------------------------------------------------------------------
# Backfill of the 5m base recordings


# Recordings read over a range (``name{...}[w]``) need a history of their own; the others are
# read at the instant of evaluation only. Found in the rule files, not assumed.
RANGED = re.compile(r"(slo:[A-Za-z0-9_:]+)\{[^}]*\}\s*\[")
RECORDING_REF = re.compile(r"(slo:[A-Za-z0-9_:]+)\{([^}]*)\}(?!\s*\[)")
MATCHER = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)\s*=\s*"([^"]*)"')


def ranged_recordings(files: list[Path]) -> set[str]:
    return {m for rule in synth.iter_rules(files) for m in RANGED.findall(str(rule["expr"]))}


def _labelled(expr: str, labels: dict[str, str]) -> str:
    out = f"({expr.strip()})"
    for key, value in sorted(labels.items()):
        out = f'label_replace({out}, "{key}", "{value.replace("$", "$$")}", "", "")'
    return out


def _inline(expr: str, rules: list[dict[str, Any]], depth: int = 0) -> str:
    """Replace instant references to recordings by the expression that records them."""

    def expand(match: re.Match[str]) -> str:
        name, wanted = match.group(1), dict(MATCHER.findall(match.group(2)))
        for rule in rules:
            labels = rule.get("labels") or {}
            if rule.get("record") == name and all(labels.get(k) == v for k, v in wanted.items()):
                return f"({_inline(str(rule['expr']), rules, depth + 1)})"
        raise RuntimeError(f"no rule records {match.group(0)}")

    if depth > 5:
        raise RuntimeError(f"recordings nested too deep: {expr}")
    return RECORDING_REF.sub(expand, expr)


def base_backfill_rules(rule_sets: list[list[Path]]) -> dict[str, Any]:
    """One rule per recording read over a range: the union of its per-SLO rules, each labelled
    as its rule labels it, with the recordings it reads inlined (promtool cannot read what it is
    backfilling)."""
    union: dict[str, list[str]] = {}
    for files in rule_sets:
        rules = list(synth.iter_rules(files))
        wanted = ranged_recordings(files)
        for rule in rules:
            if rule.get("record") in wanted:
                expr = _inline(str(rule["expr"]), rules)
                union.setdefault(str(rule["record"]), []).append(
                    _labelled(expr, dict(rule.get("labels") or {}))
                )
    return {
        "groups": [
            {"name": "bench-base-backfill",
             "rules": [{"record": r, "expr": "\nor ".join(e)} for r, e in union.items()]}
        ]
    }


# ---------------------------------------------------------------------------------------------
# Prometheus


class Prometheus(LocalPrometheus):
    """The bench's server: scrapes the exporter and itself (for its rule-group metrics)."""

    def __init__(self, workdir: Path, data_dir: Path, exporter_port: int, interval: int,
                 rule_files: list[str], name: str):
        port = free_port()
        # its own scraped series: earlier runs on the same data dir used other ports
        self.itself = f'{{job="prometheus",instance="127.0.0.1:{port}"}}'
        super().__init__(
            {
                "global": {"scrape_interval": f"{interval}s",
                           "evaluation_interval": f"{interval}s"},
                "scrape_configs": [
                    {
                        "job_name": "bench-exporter",
                        "honor_labels": True,
                        "static_configs": [{"targets": [f"127.0.0.1:{exporter_port}"]}],
                    },
                    {
                        "job_name": "prometheus",
                        "static_configs": [{"targets": [f"127.0.0.1:{port}"]}],
                    },
                ],
                "rule_files": rule_files,
            },
            workdir,
            data_dir=data_dir,
            port=port,
            args=("--storage.tsdb.retention.time=90d", "--log.level=warn"),
            name=f"prometheus-{name}",
        )

    def start(
        self,
        timeout: float = 300,
        spawn: Callable[[list[str]], subprocess.Popen[bytes]] | None = None,
    ) -> LocalPrometheus:
        return super().start(timeout, spawn)

    def api(self, path: str, **params: Any) -> Any:
        url = f"{self.url}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        with urllib.request.urlopen(url, timeout=120) as reply:
            body = json.load(reply)
        if body.get("status") != "success":
            raise RuntimeError(f"{path}: {body}")
        return body["data"]

    def own_metrics(self) -> dict[str, float]:
        """Label-less samples of Prometheus' own /metrics (e.g. prometheus_tsdb_blocks_loaded)."""
        with urllib.request.urlopen(f"{self.url}/metrics", timeout=30) as reply:
            text = reply.read().decode()
        out = {}
        for line in text.splitlines():
            if line and not line.startswith("#") and "{" not in line:
                name, _, value = line.partition(" ")
                out[name] = float(value)
        return out

    def query(self, expr: str) -> list[dict[str, Any]]:
        return list(self.api("query", query=expr)["result"])

    def scalar(self, expr: str) -> float:
        result = self.query(expr)
        return float(result[0]["value"][1]) if result else float("nan")


# ---------------------------------------------------------------------------------------------
# Measurement


@dataclass
class RoundSample:
    at: float
    ours: float
    sloth: float
    ours_groups: int
    sloth_groups: int


@dataclass
class CostResult:
    label: str
    rounds: list[RoundSample] = field(default_factory=list)
    missed_ours: float = 0.0
    missed_sloth: float = 0.0
    cpu_per_round: float = 0.0  # Prometheus process CPU seconds per evaluation interval
    # per round: {(rule set, rule name): summed evaluationTime of that rule over all SLOs}
    by_rule: list[dict[tuple[str, str], float]] = field(default_factory=list)

    def median(self, attr: str) -> float:
        return float(statistics.median(getattr(r, attr) for r in self.rounds))


def classify(group: str, ours_dir: Path, sloth_dir: Path) -> str | None:
    file = group.split(";", 1)[0]
    if file.startswith(str(ours_dir)):
        return "ours"
    if file.startswith(str(sloth_dir)):
        return "sloth"
    return None


def wait_compacted(prom: Prometheus, timeout: float, interval: int) -> None:
    """Until the overlapping backfilled blocks are merged and no compaction ran for a while."""
    deadline = time.time() + timeout
    last: tuple[float, float] | None = None
    stable_since = time.time()
    while time.time() < deadline:
        metrics = prom.own_metrics()
        state = (metrics.get("prometheus_tsdb_blocks_loaded", -1.0),
                 metrics.get("prometheus_tsdb_compactions_total", -1.0))
        if state != last:
            last, stable_since = state, time.time()
            log(f"  blocks loaded {state[0]:.0f}, compactions {state[1]:.0f}")
        # compaction is triggered every minute: 150 s without change means it is done
        if time.time() - prom.started > 90 and time.time() - stable_since > 150:
            return
        time.sleep(max(5, interval // 3))
    log("  compaction did not settle before the timeout; measuring anyway")


def measure_rounds(prom: Prometheus, label: str, rounds: int, interval: int, ours_dir: Path,
                   sloth_dir: Path) -> CostResult:
    result = CostResult(label)
    missed_before = _missed(prom, ours_dir, sloth_dir)
    cpu_before, cpu_since = prom.own_metrics()["process_cpu_seconds_total"], time.time()
    for _ in range(rounds):
        time.sleep(interval)
        sums = {"ours": 0.0, "sloth": 0.0}
        counts = {"ours": 0, "sloth": 0}
        for item in prom.query(f"prometheus_rule_group_last_duration_seconds{prom.itself}"):
            which = classify(item["metric"].get("rule_group", ""), ours_dir, sloth_dir)
            if which:
                sums[which] += float(item["value"][1])
                counts[which] += 1
        result.rounds.append(RoundSample(time.time(), sums["ours"], sums["sloth"],
                                         counts["ours"], counts["sloth"]))
        per_rule: dict[tuple[str, str], float] = {}
        for group in prom.api("rules")["groups"]:
            which = classify(f"{group['file']};", ours_dir, sloth_dir)
            for rule in group["rules"] if which else []:
                assert which is not None
                key = (which, str(rule["name"]))
                per_rule[key] = per_rule.get(key, 0.0) + float(rule.get("evaluationTime", 0))
        result.by_rule.append(per_rule)
        log(f"  {label}: ours {sums['ours'] * 1000:.1f} ms ({counts['ours']} groups), "
            f"sloth {sums['sloth'] * 1000:.1f} ms ({counts['sloth']} groups)")
    cpu_after, cpu_until = prom.own_metrics()["process_cpu_seconds_total"], time.time()
    result.cpu_per_round = (cpu_after - cpu_before) / ((cpu_until - cpu_since) / interval)
    missed_after = _missed(prom, ours_dir, sloth_dir)
    result.missed_ours = missed_after["ours"] - missed_before["ours"]
    result.missed_sloth = missed_after["sloth"] - missed_before["sloth"]
    return result


def _missed(prom: Prometheus, ours_dir: Path, sloth_dir: Path) -> dict[str, float]:
    out = {"ours": 0.0, "sloth": 0.0}
    for item in prom.query(f"prometheus_rule_group_iterations_missed_total{prom.itself}"):
        which = classify(item["metric"].get("rule_group", ""), ours_dir, sloth_dir)
        if which:
            out[which] += float(item["value"][1])
    return out


def series_per_slo(prom: Prometheus, n: int) -> tuple[float, float]:
    ours = prom.scalar('count({__name__=~"slo:.+", service!="", slo!=""})')
    sloth = prom.scalar('count({__name__=~"slo:.+|sloth_slo_info", sloth_id!=""})')
    return ours / n, sloth / n


# ---------------------------------------------------------------------------------------------
# Alerts


def alert_key(alert: dict[str, Any]) -> tuple[str, str, str, str] | None:
    """(rule set, service, slo, page|ticket|absent) of an active alert."""
    labels = alert["labels"]
    name = labels.get("alertname", "")
    if name == synth.SLOTH_ALERT:
        return ("sloth", labels.get("sloth_service", "?"), labels.get("sloth_slo", "?"),
                labels.get("sloth_severity", "?"))
    if name.startswith("SLO"):
        kind = {"SLOBurnRatePage": "page", "SLOBurnRateTicket": "ticket",
                "SLOMetricsAbsent": "absent"}.get(name, name)
        return ("ours", labels.get("service", "?"), labels.get("slo", "?"), kind)
    return None


def parse_time(text: str) -> float:
    # RFC3339 with nanoseconds, e.g. 2026-11-27T09:30:15.123456789Z
    main, _, frac = text.rstrip("Z").partition(".")
    base = calendar.timegm(time.strptime(main, "%Y-%m-%dT%H:%M:%S"))
    return base + (float("0." + frac[:9]) if frac else 0.0)


def watch_alerts(prom: Prometheus, since: float, until: float, expected: set[AlertKey],
                 poll: float) -> dict[AlertKey, dict[str, float]]:
    """First time (seconds after ``since``) each alert was seen active/firing, by key."""
    seen: dict[AlertKey, dict[str, float]] = {}
    while time.time() < until:
        for alert in prom.api("alerts")["alerts"]:
            key = alert_key(alert)
            if key is None:
                continue
            entry = seen.setdefault(key, {})
            if "active" not in entry and alert.get("activeAt"):
                entry["active"] = parse_time(alert["activeAt"]) - since
            if alert["state"] == "firing" and "firing_seen" not in entry:
                entry["firing_seen"] = time.time() - since
        if expected and all("firing_seen" in seen.get(k, {}) for k in expected):
            break
        time.sleep(poll)
    return seen


# ---------------------------------------------------------------------------------------------
# Main


def run_generators(n: int, work: Path, sloth: Path) -> tuple[Path, Path]:
    catalogue, specs = synth.write_both(n, work / "input")
    ours_dir, sloth_dir = work / "ours", work / "sloth"
    subprocess.run([sys.executable, "-m", "slo", "rules", str(catalogue), "-o", str(ours_dir),
                    "--no-tests"], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    sloth_dir.mkdir()
    subprocess.run([str(sloth), "generate", "-i", str(specs), "-o", str(sloth_dir), "--no-log"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return ours_dir / "rules", sloth_dir


def build_sloth() -> Path:
    out = subprocess.run([str(BENCH / "peers" / "build_sloth.sh")], check=True,
                         stdout=subprocess.PIPE, text=True).stdout
    return Path(out.strip().splitlines()[-1])


def workbook_minutes(objective: float, factor: float, long_window_h: float) -> float:
    """Minutes of 100% errors before the long window crosses factor x budget."""
    return factor * (1 - objective / 100) * long_window_h * 60


@dataclass(frozen=True)
class RuleSets:
    """The two generated rule sets of the same SLOs."""

    ours_dir: Path
    sloth_dir: Path
    ours_files: list[Path]
    sloth_files: list[Path]
    counts_ours: dict[str, int]
    counts_sloth: dict[str, int]

    def globs(self) -> list[str]:
        return [str(self.ours_dir / "*.yml"), str(self.sloth_dir / "*.yml")]


@dataclass(frozen=True)
class RawHistory:
    """The backfilled raw series (step 3) and the traffic that continues them."""

    services: list[ServiceTraffic]
    t0: float
    t_end: float
    data_dir: Path
    samples: int
    seconds: float


@dataclass(frozen=True)
class RecordedHistory:
    """The backfilled 5m base recordings (step 5)."""

    blocks: int
    seconds: float
    rules_end: int
    period_start: float
    period_samples: int


@dataclass(frozen=True)
class Measurements:
    """Evaluation cost (step 6) and what the healthy Prometheus holds."""

    results: list[CostResult]
    ours_series: float
    sloth_series: float
    healthy_alerts: list[Any]
    prom_started: float


@dataclass(frozen=True)
class BurnOutcome:
    """The alerts seen while one service burns (step 7)."""

    expected: set[AlertKey]
    seen: dict[AlertKey, dict[str, float]]
    watched: float


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slos", type=int, default=200)
    parser.add_argument("--interval", type=int, default=30,
                        help="scrape and evaluation interval, seconds (default 30)")
    parser.add_argument("--backfill-hours", type=float, default=74,
                        help="raw history to backfill, hours (default 74 = 3d + 2h, rounded "
                        "down to a 2h boundary at the start)")
    parser.add_argument("--period-days", type=float, default=0,
                        help="also backfill the 5m base recordings of both sets this many days "
                        "back (steady-state values), so the 30d period windows read a full "
                        "period; default 0: only the raw history's span")
    parser.add_argument("--rounds", type=int, default=10, help="measured evaluation rounds")
    parser.add_argument("--warmup-rounds", type=int, default=3)
    parser.add_argument("--alert-timeout", type=float, default=600,
                        help="seconds to wait for the page alerts after the burn starts")
    parser.add_argument("--isolated", action="store_true",
                        help="also measure each rule set alone in Prometheus (no contention)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 20 SLOs, 26h of history, 3 rounds")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    if args.quick:
        args.slos, args.backfill_hours, args.rounds, args.warmup_rounds = 20, 26, 3, 1
        args.alert_timeout = min(args.alert_timeout, 420)
    return args


def _exit_on_signals() -> None:
    """SIGTERM and SIGINT raise SystemExit, so that every ``finally`` stops its processes."""

    def terminate(signum: int, frame: Any) -> None:
        raise SystemExit(f"stopped by signal {signum}")

    signal.signal(signal.SIGTERM, terminate)
    signal.signal(signal.SIGINT, terminate)


def _generate_rule_sets(n: int, work: Path, sloth: Path) -> RuleSets:
    """Step 1: the SLOs in both formats, and both generators' rule files."""
    ours_dir, sloth_dir = run_generators(n, work, sloth)
    ours_files = sorted(ours_dir.glob("*.yml"))
    sloth_files = sorted(sloth_dir.glob("*.yml"))
    return RuleSets(ours_dir, sloth_dir, ours_files, sloth_files,
                    synth.count_rules(ours_files), synth.count_rules(sloth_files))


def _backfill_raw_history(args: argparse.Namespace, work: Path) -> RawHistory:
    """Steps 2 and 3: the synthetic traffic, and its raw series backfilled up to now."""
    now = time.time()
    t0 = (now - args.backfill_hours * 3600) // BLOCK * BLOCK
    t_end = float(int(now) // args.interval * args.interval)
    services = traffic_for(args.slos, t0)
    data_dir = work / "data"
    data_dir.mkdir()
    log(f"backfilling raw series: {len(services)} services, "
        f"{len(services) * len(services[0].series())} series, "
        f"{(t_end - t0) / 3600:.1f} h at {args.interval}s")
    started = time.time()
    samples = backfill(raw_rows(services), t0, t0, t_end, args.interval, work, data_dir)
    seconds = time.time() - started
    log(f"  {samples / 1e6:.1f} M samples in {seconds:.0f} s")
    return RawHistory(services, t0, t_end, data_dir, samples, seconds)


def _backfill_recorded_history(args: argparse.Namespace, work: Path, rules: RuleSets,
                               raw: RawHistory, exporter_port: int) -> RecordedHistory:
    """Step 5: the 5m base recordings over the raw history's range, then (``--period-days``)
    their steady-state values further back."""
    blocks, seconds, rules_end = _create_rule_blocks(args, work, rules, raw, exporter_port)
    period_samples = 0
    period_start = (raw.t_end - args.period_days * 86400) // BLOCK * BLOCK
    if period_start < raw.t0:
        # older recorded history than the raw one: the base recordings' steady-state values
        log(f"backfilling {(raw.t0 - period_start) / 86400:.1f} more days of the 5m base "
            "recordings (healthy steady state)")
        period_samples = backfill(
            recorded_rows(raw.services, rules.ours_files, rules.sloth_files), raw.t0,
            period_start, raw.t0 + 600, args.interval, work, raw.data_dir)
        log(f"  {period_samples / 1e6:.1f} M samples")
    return RecordedHistory(blocks, seconds, rules_end, period_start, period_samples)


def _create_rule_blocks(args: argparse.Namespace, work: Path, rules: RuleSets, raw: RawHistory,
                        exporter_port: int) -> tuple[int, float, int]:
    """Phase A: a Prometheus on the raw history only serves it to ``promtool tsdb
    create-blocks-from rules``; the blocks join the data dir. (blocks, seconds, end of range)"""
    prom = Prometheus(work, raw.data_dir, exporter_port, args.interval, [], "backfill")
    try:
        prom.start()
        backfill_rules = work / "base-backfill.yml"
        backfill_rules.write_text(yaml.safe_dump(
            base_backfill_rules([rules.ours_files, rules.sloth_files]), width=1 << 20))
        staging = work / "rule-blocks"
        log("backfilling the 5m base recordings with promtool tsdb create-blocks-from rules")
        started = time.time()
        rules_end = int(time.time())
        subprocess.run([PROMTOOL, "tsdb", "create-blocks-from", "rules", "-q",
                        f"--url={prom.url}", f"--start={int(raw.t0) + 600}", f"--end={rules_end}",
                        f"--eval-interval={args.interval}s", f"--output-dir={staging}",
                        str(backfill_rules)], check=True, stdout=subprocess.DEVNULL)
        rule_blocks = [p for p in staging.iterdir() if p.is_dir()]
        seconds = time.time() - started
        log(f"  {len(rule_blocks)} blocks in {seconds:.0f} s")
    finally:
        prom.stop()
    for block in rule_blocks:
        shutil.move(str(block), raw.data_dir / block.name)
    return len(rule_blocks), seconds, rules_end


def _run_both_rule_sets(args: argparse.Namespace, work: Path, rules: RuleSets, raw: RawHistory,
                        exporter: Exporter) -> tuple[Measurements, BurnOutcome]:
    """Phase B: both rule sets in one Prometheus, measured while healthy, then the burn."""
    prom = Prometheus(work, raw.data_dir, exporter.port, args.interval, rules.globs(), "both")
    try:
        prom.start()
        measured = _measure_healthy(prom, args, rules)
        burn = _burn_and_watch(prom, exporter, args.alert_timeout)
        if args.isolated:
            # heal the service first so that both isolated runs see the same, healthy traffic
            exporter.switch(BURN_SERVICE, time.time(), raw.services[0].phases[0][1])
    finally:
        prom.stop()
    return measured, burn


def _measure_healthy(prom: Prometheus, args: argparse.Namespace,
                     rules: RuleSets) -> Measurements:
    """Step 6 on a Prometheus just started: compaction, warm-up, then the measured rounds."""
    prom_started = time.time()
    log("waiting for compaction of the backfilled blocks")
    wait_compacted(prom, 2400, args.interval)
    time.sleep(args.interval * args.warmup_rounds)
    results = [measure_rounds(prom, "both rule sets in one Prometheus", args.rounds,
                              args.interval, rules.ours_dir, rules.sloth_dir)]
    ours_series, sloth_series = series_per_slo(prom, args.slos)
    healthy_alerts = [a for a in prom.api("alerts")["alerts"] if alert_key(a)]
    return Measurements(results, ours_series, sloth_series, healthy_alerts, prom_started)


def _burn_and_watch(prom: Prometheus, exporter: Exporter, timeout: float) -> BurnOutcome:
    """Step 7: one service burns at 100% errors; the alerts of both sets are watched."""
    expected = {(s, BURN_SERVICE, slo, "page") for s in ("ours", "sloth")
                for slo in ("availability", "error-rate")}
    expected |= {(s, BURN_SERVICE, "error-rate", "ticket") for s in ("ours", "sloth")}
    burn_at = time.time()
    log(f"{BURN_SERVICE} now answers 100% 5xx; watching alerts")
    exporter.switch(BURN_SERVICE, burn_at, Profile(1.0))
    seen = watch_alerts(prom, burn_at, burn_at + timeout, expected, poll=5)
    return BurnOutcome(expected, seen, time.time() - burn_at)


def _measure_isolated(args: argparse.Namespace, work: Path, rules: RuleSets, data_dir: Path,
                      exporter_port: int) -> list[CostResult]:
    """``--isolated``: each rule set alone, then no rules (baseline), one Prometheus each."""
    rule_globs = rules.globs()
    results = []
    for label, globs in (("ours alone", rule_globs[:1]), ("Sloth alone", rule_globs[1:]),
                         ("no rules (baseline)", [])):
        prom = Prometheus(work, data_dir, exporter_port, args.interval, globs,
                          label.split()[0].lower())
        try:
            prom.start()
            time.sleep(args.interval * (args.warmup_rounds + 2))
            results.append(measure_rounds(prom, label, args.rounds, args.interval,
                                          rules.ours_dir, rules.sloth_dir))
        finally:
            prom.stop()
    return results


def main() -> int:
    args = _parse_args()
    _exit_on_signals()
    sloth = build_sloth()
    work = Path(tempfile.mkdtemp(prefix="slo-eval-cost-"))
    log(f"workdir {work}")
    exporter: Exporter | None = None
    report = io.StringIO()
    try:
        rules = _generate_rule_sets(args.slos, work, sloth)
        raw = _backfill_raw_history(args, work)
        exporter = Exporter(raw.services)
        exporter.start()
        recorded = _backfill_recorded_history(args, work, rules, raw, exporter.port)
        measured, burn = _run_both_rule_sets(args, work, rules, raw, exporter)
        if args.isolated:
            isolated = _measure_isolated(args, work, rules, raw.data_dir, exporter.port)
            measured = replace(measured, results=measured.results + isolated)
        write_report(report, args, rules, raw, recorded, measured, burn)
    finally:
        if exporter is not None:
            exporter.stop()
        if args.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    text = report.getvalue()
    print(text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "eval_cost.txt").write_text(text)
    return 0


# ---------------------------------------------------------------------------------------------
# Report


def write_report(out: io.StringIO, args: argparse.Namespace, rules: RuleSets, raw: RawHistory,
                 recorded: RecordedHistory, measured: Measurements, burn: BurnOutcome) -> None:
    def p(line: str = "") -> None:
        out.write(line + "\n")

    _report_setup(p, args, rules, raw, recorded, measured)
    p()
    _report_cost(p, args, measured.results)
    p()
    for r in measured.results:
        p(f"rounds ({r.label}), ours/Sloth ms: " + ", ".join(
            f"{s.ours * 1e3:.0f}/{s.sloth * 1e3:.0f}" for s in r.rounds))
    p()
    _report_where_time_goes(p, measured.results[0])
    p()
    _report_alerts(p, measured.healthy_alerts, burn)


def _history_notes(args: argparse.Namespace, raw: RawHistory, recorded: RecordedHistory,
                   prom_started: float) -> list[str]:
    """How much recorded history the windows read, and the gap before the measuring run."""
    span_days = (raw.t_end - recorded.period_start) / 86400
    return [
        f"5m base recordings: steady-state history from {span_days:.1f} "
        f"days back ({recorded.period_samples / 1e6:.1f} M samples), so the 30d windows read "
        f"{min(30.0, span_days):.1f} days"
        if recorded.period_samples else
        f"the 30d period windows of both sets read only the {args.backfill_hours:g} h of "
        "history (run with --period-days 30 for a full period)",
        f"gap without recorded base samples between the rule backfill and the measuring "
        f"Prometheus: {(prom_started - recorded.rules_end) / 60:.0f} min",
    ]


def _report_setup(p: Callable[[str], None], args: argparse.Namespace, rules: RuleSets,
                  raw: RawHistory, recorded: RecordedHistory, measured: Measurements) -> None:
    """Machine, inputs, history and rule counts."""
    version = subprocess.run([PROMETHEUS, "--version"], capture_output=True, text=True)
    services = raw.services
    counts_ours, counts_sloth = rules.counts_ours, rules.counts_sloth
    p("Rule evaluation cost in Prometheus: our rules vs Sloth's, same SLOs, same series")
    p(f"machine: {os.cpu_count()} cores, {platform.platform()}; "
      f"{version.stdout.splitlines()[0] if version.stdout else PROMETHEUS}")
    p(f"{args.slos} SLOs in {len(services)} services; {INSTANCES} instances x "
      f"{len(services[0].series()) // INSTANCES} series each = "
      f"{len(services) * len(services[0].series())} raw series")
    p(f"scrape and evaluation interval {args.interval}s; raw history backfilled: "
      f"{args.backfill_hours:g} h (start on a 2h boundary), {raw.samples / 1e6:.1f} M samples "
      f"({raw.seconds:.0f} s); 5m base recordings of both sets backfilled over the same range "
      f"with promtool tsdb create-blocks-from rules ({recorded.blocks} blocks, "
      f"{recorded.seconds:.0f} s)")
    for note in _history_notes(args, raw, recorded, measured.prom_started):
        p(note)
    p(f"rule files: ours {counts_ours['groups']} groups, {counts_ours['record']} record + "
      f"{counts_ours['alert']} alert rules; Sloth {counts_sloth['groups']} groups, "
      f"{counts_sloth['record']} record + {counts_sloth['alert']} alert rules")
    p(f"recorded series per SLO, counted in the TSDB: ours {measured.ours_series:.2f}, "
      f"Sloth {measured.sloth_series:.2f}")


def _report_cost(p: Callable[[str], None], args: argparse.Namespace,
                 results: list[CostResult]) -> None:
    """The table of summed rule-group durations per run, and the CPU spent on rules."""
    n = args.slos
    p("Sum of prometheus_rule_group_last_duration_seconds per rule set, per evaluation round "
      f"(median of {args.rounds} rounds):")
    header = (f"{'run':<34} | {'ours ms':>8} | {'Sloth ms':>9} | {'ours/Sloth':>10} | "
              f"{'ours us/SLO':>11} | {'Sloth us/SLO':>12} | {'missed o/S':>10} | "
              f"{'Prometheus CPU s/round':>22}")
    p(header)
    p("-" * len(header))
    for r in results:
        ours, sloth = r.median("ours"), r.median("sloth")
        ratio = f"{ours / sloth:.3f}" if sloth and ours else "-"
        p(f"{r.label:<34} | {ours * 1e3:>8.1f} | {sloth * 1e3:>9.1f} | {ratio:>10} | "
          f"{ours * 1e6 / n:>11.0f} | {sloth * 1e6 / n:>12.0f} | "
          f"{r.missed_ours:>4.0f}/{r.missed_sloth:<5.0f} | {r.cpu_per_round:>22.3f}")
    by_label = {r.label: r for r in results}
    if {"ours alone", "Sloth alone", "no rules (baseline)"} <= set(by_label):
        base = by_label["no rules (baseline)"].cpu_per_round
        ours_cpu = by_label["ours alone"].cpu_per_round - base
        sloth_cpu = by_label["Sloth alone"].cpu_per_round - base
        p(f"Prometheus CPU per round spent on rules (run alone minus the no-rules baseline): "
          f"ours {ours_cpu:.3f} s, Sloth {sloth_cpu:.3f} s, ours/Sloth "
          f"{ours_cpu / sloth_cpu if sloth_cpu > 0 else float('nan'):.3f}")


def _report_where_time_goes(p: Callable[[str], None], first: CostResult) -> None:
    """The ten costliest rules of each set in the first run."""
    p(f"Where the time goes ({first.label}): evaluationTime of each rule from /api/v1/rules, "
      "summed over the SLOs, median over the rounds (rules of the same name and set together):")
    keys = sorted({k for r in first.by_rule for k in r})
    medians = {k: statistics.median(r.get(k, 0.0) for r in first.by_rule) for k in keys}
    for which in ("ours", "sloth"):
        ranked = sorted((k for k in keys if k[0] == which), key=lambda k: -medians[k])
        total = sum(medians[k] for k in ranked) or 1.0
        p(f"  {'ours' if which == 'ours' else 'Sloth'} (rules sum {total * 1e3:.1f} ms):")
        for k in ranked[:10]:
            p(f"    {k[1]:<42} {medians[k] * 1e3:>8.1f} ms  {100 * medians[k] / total:>5.1f}%")


def _report_alerts(p: Callable[[str], None], healthy_alerts: list[Any],
                   burn: BurnOutcome) -> None:
    """Alerts while healthy, then when each alert of the burn was seen, and stray alerts."""
    seen = burn.seen
    p(f"Alerts while every service was healthy (after warm-up): "
      f"{len(healthy_alerts)} active"
      + ("" if not healthy_alerts else ": " + ", ".join(
          str(alert_key(a)) for a in healthy_alerts)))
    p(f"Burn: {BURN_SERVICE} answers 100% 5xx from t=0 (its latency stays healthy); watched "
      f"/api/v1/alerts for {burn.watched:.0f} s. Workbook time to cross the 1h page threshold "
      f"(14.4x): error-rate 99.9% {workbook_minutes(99.9, 14.4, 1) * 60:.0f} s, "
      f"availability 99.5% {workbook_minutes(99.5, 14.4, 1) * 60:.0f} s; ticket (3x over 1d) "
      f"error-rate {workbook_minutes(99.9, 3, 24) * 60:.0f} s.")
    header = f"{'rule set':<8} {'service':<10} {'slo':<13} {'alert':<7} | {'active at':>9} | " \
             f"{'seen firing':>11}"
    p(header)
    p("-" * len(header))
    for key in sorted(set(seen) | burn.expected):
        entry = seen.get(key, {})
        active = f"{entry['active']:.0f} s" if "active" in entry else "never"
        firing = f"{entry['firing_seen']:.0f} s" if "firing_seen" in entry else "never"
        p(f"{key[0]:<8} {key[1]:<10} {key[2]:<13} {key[3]:<7} | {active:>9} | {firing:>11}")
    others = [k for k in seen if k[1] != BURN_SERVICE]
    burn_latency = [k for k in seen if k[1] == BURN_SERVICE and k[2] == "latency"]
    p(f"alerts of healthy services during the burn: {len(others)}"
      + ("" if not others else " " + str(others)))
    p(f"alerts of {BURN_SERVICE}'s latency SLO (healthy) during the burn: {len(burn_latency)}")


if __name__ == "__main__":
    raise SystemExit(main())
