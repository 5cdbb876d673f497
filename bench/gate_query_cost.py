"""What one canary gate evaluation costs a real Prometheus, before and after recording the evidence.

    python bench/gate_query_cost.py            # 20 repetitions per query
    python bench/gate_query_cost.py --quick    # 3 repetitions

The series (issue 24's measurement): one service (prod's orchestrator: availability, latency and
error-rate gated) with 10 stable pods and 2 canary pods, 4 hours of 30-second scrapes of
``http_requests_total`` (codes 200 and 500) and ``http_request_duration_seconds`` (8 buckets,
+Inf, _count, _sum) per pod; the canary started 2 hours before the query time. Everything is
backfilled with ``promtool tsdb create-blocks-from openmetrics`` into a fresh TSDB, then a
Prometheus on 127.0.0.1 answers instant queries at the last sample's time with ``stats=all``:
``totalQueryableSamples`` (samples touched) and the engine's ``evalTotalTime`` (median of the
repetitions).

Before: the gate query of commit bd35930 (``delivery/judge.py`` there, loaded from git): the
canary's counters' last values over the evidence window and stable's rates summed by a subquery,
in the query, at every measurement. The gate, the background metric and the shared-incident
metric each ran it every 30 s.

After: the gate query reads the eleven recorded evidence series; what every evaluation needs is
recorded once per scrape interval by the ``<service>-canary-evidence`` rule group, whose every
rule is measured here the same way (a rule evaluation is an instant query at its evaluation
time) and reported as the per-interval cost of the group. The recorded series the group and the
gate read are backfilled with the values the group records (exact per-step increments of the same
counters, then the sums, dispersions and statistics of ``delivery/judge.py``, and the running sums
of the statistic's step increments and their restart points at every step, which the
change-point rules read over the whole evidence window).

Prints a table and, without ``--quick``, writes bench/results/gate_query_cost.txt.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import subprocess
import sys
import tempfile
import types
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from delivery import evidence, judge  # noqa: E402
from delivery.analysis import outage_metric  # noqa: E402
from delivery.canary import evidence_group  # noqa: E402
from delivery.judge import evidence_window  # noqa: E402
from delivery.stack import go_seconds, load_stack_file  # noqa: E402
from slo import conventions as names  # noqa: E402
from slo import durations  # noqa: E402
from slo.loader import load_catalogue  # noqa: E402
from slo.model import resolve_all  # noqa: E402
from slo.rules import Rule, by_service  # noqa: E402
from tools.local_prometheus import LocalPrometheus  # noqa: E402

BEFORE_COMMIT = "bd35930"
SERVICE = "orchestrator"
STABLE_PODS, CANARY_PODS = 10, 2
HOURS = 4
CANARY_HOURS = 2
PER_POD_PER_MINUTE = 120.0
ERROR_RATIO, SLOW_RATIO = 0.0005, 0.01
BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10)
TARGET_SAMPLES = 40_000
RESULTS = ROOT / "bench" / "results" / "gate_query_cost.txt"


def old_judge() -> types.ModuleType:
    source = subprocess.run(["git", "show", f"{BEFORE_COMMIT}:delivery/judge.py"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout
    # delivery/config.py has since been renamed delivery/stack.py;
    # the classes it imports are the same
    source = source.replace("from delivery.config import", "from delivery.stack import")
    module = types.ModuleType("judge_before")
    sys.modules[module.__name__] = module  # dataclasses look their module up
    exec(compile(source, f"{BEFORE_COMMIT}:delivery/judge.py", "exec"), module.__dict__)
    return module


def pod_counters(rng: np.random.Generator, steps: int, alive_from: int) -> dict[str, np.ndarray]:
    """Cumulative counters per scrape of one pod (NaN before it starts)."""
    n = rng.poisson(PER_POD_PER_MINUTE / 2, steps).astype(float)
    n[:alive_from] = 0
    errors = rng.binomial(n.astype(int), ERROR_RATIO).astype(float)
    slow = rng.binomial(n.astype(int), SLOW_RATIO).astype(float)
    out = {"200": np.cumsum(n - errors), "500": np.cumsum(errors), "count": np.cumsum(n)}
    fast = np.cumsum(n - slow)
    for le in BUCKETS:
        out[f"le{le}"] = fast if le <= 2 else out["count"]
    for value in out.values():
        value[:alive_from] = np.nan
    return out


def openmetrics(pods: dict[tuple[str, str], dict[str, np.ndarray]], times: np.ndarray,
                recorded: list[tuple[str, dict[str, str], np.ndarray]]) -> str:
    lines = []
    for (pod, h), c in pods.items():
        base = f'job="{SERVICE}",namespace="core",pod="{pod}",rollouts_pod_template_hash="{h}"'
        series = {
            f'http_requests_total{{{base},code="200"}}': c["200"],
            f'http_requests_total{{{base},code="500"}}': c["500"],
            f"http_request_duration_seconds_count{{{base}}}": c["count"],
            f'http_request_duration_seconds_bucket{{{base},le="+Inf"}}': c["count"],
            **{f'http_request_duration_seconds_bucket{{{base},le="{le}"}}': c[f"le{le}"]
               for le in BUCKETS},
        }
        for name, values in series.items():
            lines += [f"{name} {v:g} {t:d}" for t, v in zip(times, values, strict=True)
                      if not math.isnan(v)]
    for name, labels, values in recorded:
        text = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        lines += [f"{name}{{{text}}} {float(v)!r} {t:d}" for t, v in zip(times, values, strict=True)
                  if not math.isnan(v)]
    return "\n".join(lines) + "\n# EOF\n"


def _window_counts(rec: dict[str, np.ndarray], keep: np.ndarray, k: int,
                   window_steps: int) -> judge.Counts:
    """The sums over the evidence window ending at step ``k`` of recorded steps."""
    last = slice(max(0, k + 1 - window_steps), k + 1)
    return judge.Counts(
        requests=float(np.nansum(rec["requests"][last])),
        errors=float(np.nansum(rec["errors"][last])),
        squares=float(np.nansum(rec["squares"][last])),
        steps=float(np.sum(keep[last])),
    )


def running_series(gate: judge.Gate, own: dict[str, np.ndarray], others: dict[str, np.ndarray],
                   keep: np.ndarray, keep_others: np.ndarray, times: np.ndarray,
                   window_steps: int, recent_steps: int, restart_every: int, scrape: int
                   ) -> tuple[dict[str, np.ndarray], np.ndarray, float, float]:
    """The running sums (per ``evidence.RUNNING``, NaN where not written), the restart points,
    and at the last step (cusum, recent) before dividing by the dispersion. The steps here have
    no gap longer than the window, so each running sum adds to the one before."""
    sums = {"canary": np.full(len(times), np.nan), "judged": np.full(len(times), np.nan)}
    total = {"canary": 0.0, "judged": 0.0}
    for k in np.nonzero(keep)[0]:
        step = judge.Counts(float(own["requests"][k]), float(own["errors"][k]))
        increments = judge.increments(gate, step, _window_counts(others, keep_others, int(k),
                                                                 window_steps))
        for name, inc in zip(("canary", "judged"), increments, strict=True):
            total[name] += inc
            sums[name][k] = total[name]
    restart = np.where((times % restart_every < scrape) & keep, sums["judged"], np.nan)
    last = len(times) - 1
    lowest = np.nanmin(restart[last + 1 - window_steps:], initial=np.inf)
    cusum = sums["judged"][last] - min(0.0, lowest)
    back = sums["canary"][max(0, last + 1 - recent_steps - window_steps):last + 1 - recent_steps]
    before = back[~np.isnan(back)]
    recent = sums["canary"][last] - (float(before[-1]) if len(before) else 0.0)
    return sums, restart, cusum, recent


Series = tuple[str, dict[str, str], np.ndarray]  # a recorded series: name, labels, values


def recorded_series(pods: dict[tuple[str, str], dict[str, np.ndarray]], times: np.ndarray,
                    window_steps: int) -> list[Series]:
    """What the evidence group records, computed here from the same counters."""
    stack = load_stack_file(ROOT / "Pulumi.prod.yaml")
    slos = by_service(resolve_all(load_catalogue(ROOT / stack.catalogue)))[SERVICE]
    scrape = go_seconds(stack.prometheus.scrape_interval)
    recent_steps = judge.gate_looks(stack.delivery, stack.prometheus.scrape_interval).span // scrape
    restart_every = max(judge.RESTART_SECONDS, scrape)
    out = []
    for gate in judge.stack_gates(slos, stack, SERVICE):
        per_hash = _steps_per_hash(pods, gate.name, len(times))
        hashes = sorted(per_hash)
        for h in hashes:
            own = per_hash[h]
            others = {k: sum(per_hash[o][k] for o in hashes if o != h) for k in own}
            labels = {"service": SERVICE, "slo": gate.name, "rollouts_pod_template_hash": h}
            traffic = own["requests"] > 0
            counts: dict[str, judge.Counts] = {}
            recs: dict[str, dict[str, np.ndarray]] = {}
            keeps: dict[str, np.ndarray] = {}
            for side, steps in (("own", own), ("others", others)):
                series, recs[side], keeps[side], counts[side] = _side_steps(
                    steps, traffic, side == "others", labels, len(times), window_steps)
                out += series
            running, restart, cusum, recent = running_series(
                gate, recs["own"], recs["others"], keeps["own"], keeps["others"], times,
                window_steps, recent_steps, restart_every, scrape)
            for name, values in running.items():
                out.append((evidence.RUNNING[name], labels, values))
            out.append((evidence.RESTARTS, labels, restart))
            out += _window_series(gate, counts, labels, len(times), cusum, recent)
    # the group's own rules, every evaluation: when it ran, and the gap since the one before
    service = {"service": SERVICE}
    out.append((names.CANARY_EVIDENCE_HEARTBEAT, service, times.astype(np.float64)))
    out.append((names.CANARY_EVIDENCE_GAP, service, np.diff(times, prepend=times[0] - 30.0)))
    return out


def _steps_per_hash(pods: dict[tuple[str, str], dict[str, np.ndarray]], slo: str,
                    length: int) -> dict[str, dict[str, np.ndarray]]:
    """Per pod template hash, its pods' requests and bad requests (5xx, or slow for the
    latency SLO) in each scrape interval, summed."""
    bad_key = {"latency": "slow"}.get(slo, "500")
    per_hash: dict[str, dict[str, np.ndarray]] = {}
    for (_, h), c in pods.items():
        steps = {"requests": np.diff(np.nan_to_num(c["count"]), prepend=0.0)}
        bad = np.nan_to_num(c["500"]) if bad_key == "500" else \
            np.nan_to_num(c["count"] - c["le2"])
        steps["errors"] = np.diff(bad, prepend=0.0)
        acc = per_hash.setdefault(h, {k: np.zeros(length) for k in steps})
        for k, v in steps.items():
            acc[k] += v
    return per_hash


def _side_steps(steps: dict[str, Any], traffic: np.ndarray, others: bool,
                labels: dict[str, str], length: int, window_steps: int
                ) -> tuple[list[Series], dict[str, np.ndarray], np.ndarray, judge.Counts]:
    """One side's (the hash's own, or the other hashes') recorded steps, where the hash has
    traffic and the side has requests: their series, the steps kept and their sums over the
    evidence window at the last step."""
    sq = np.where(traffic & (steps["requests"] > 0),
                  steps["errors"] ** 2 / np.maximum(steps["requests"], 1), np.nan)
    keep = traffic & (steps["requests"] > 0)
    rec = {p: np.where(keep, steps[p], np.nan) for p in ("requests", "errors")}
    rec["squares"] = sq
    series = [(evidence.step_record(part, others), labels, values) for part, values in rec.items()]
    return series, rec, keep, _window_counts(rec, keep, length - 1, window_steps)


def _window_series(gate: judge.Gate, counts: dict[str, judge.Counts], labels: dict[str, str],
                   length: int, cusum: float, recent: float) -> list[Series]:
    """The sums over the evidence window, their dispersions, stable's ratio and the evidence
    vector, at the last steps only."""
    out: list[Series] = []
    tail = np.full(length, np.nan)
    tail[-20:] = 1.0  # the last 10 minutes: enough for every lookback
    for side, summed in counts.items():
        for part in evidence.PARTS:
            out.append((evidence.sum_record(part, side == "others"), labels,
                        tail * getattr(summed, part)))
        out.append((evidence.dispersion_record(side == "others"), labels,
                    tail * judge.dispersion(summed)))
    if counts["others"].requests > 0:
        out.append((evidence.OTHERS_RATIO, labels, tail * judge.stable_ratio(counts["others"])))
    vector = judge.evidence(gate, counts["own"], counts["others"], cusum, recent)
    if vector is not None:
        for name, value in zip(judge.EVIDENCE, vector, strict=True):
            out.append(("slo:canary_evidence:value", {**labels, "evidence": name}, tail * value))
    return out


def query_stats(url: str, expr: str, at: int, repeat: int) -> tuple[int, float]:
    """(samples touched, median evaluation seconds) of an instant query at ``at``."""
    samples, seconds = 0, []
    for _ in range(repeat):
        params = urllib.parse.urlencode({"query": expr, "time": at, "stats": "all"})
        with urllib.request.urlopen(f"{url}/api/v1/query?{params}", timeout=120) as response:
            body = json.load(response)
        if body.get("status") != "success":
            raise RuntimeError(f"query failed: {body}")
        stats = body["data"]["stats"]
        samples = int(stats["samples"]["totalQueryableSamples"])
        seconds.append(float(stats["timings"]["evalTotalTime"]))
    return samples, statistics.median(seconds)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    repeat = 3 if args.quick else 20
    stack = load_stack_file(ROOT / "Pulumi.prod.yaml")
    scrape = go_seconds(stack.prometheus.scrape_interval)
    window = evidence_window(stack.delivery)
    times, pods = _synthetic_pods(scrape)
    window_steps = min(len(times), durations.parse(window) // scrape)
    recorded = recorded_series(pods, times, window_steps)
    slos = by_service(resolve_all(load_catalogue(ROOT / stack.catalogue)))[SERVICE]
    before = old_judge()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "series.om").write_text(openmetrics(pods, times, recorded))
        subprocess.run(["promtool", "tsdb", "create-blocks-from", "openmetrics", "-q",
                        str(work / "series.om"), str(work / "data")], check=True,
                       stdout=subprocess.DEVNULL)
        config = {"global": {"scrape_interval": stack.prometheus.scrape_interval}}
        with LocalPrometheus(config, work, data_dir=work / "data",
                             args=("--storage.tsdb.retention.time=30d",)) as prom:
            at = int(times[-1])
            group = evidence_group(SERVICE, slos, stack)
            assert group is not None
            per_slo = _group_cost(prom.url, group["rules"], at, repeat)
            outage = outage_metric(SERVICE, stack.delivery.analysis, stack.prometheus)
            shared = (per_slo.get(SERVICE_RULES, (0, 0.0)),
                      query_stats(prom.url, outage["provider"]["prometheus"]["query"], at,
                                  repeat))
            # the judge before took the analysis config, its fail burn rate a number (it
            # knew no "auto"); what a query reads does not depend on the hypotheses
            analysis = stack.delivery.analysis.model_copy(update={"fail_burn_rate": 10.0})
            for gate, old in zip(judge.stack_gates(slos, stack, SERVICE),
                                 before.gates(slos, analysis), strict=True):
                old_text = before.query(old, window, scrape)
                new_text = judge.query(gate, window, stack.prometheus.scrape_interval)
                rows.append(_gate_row(prom.url, gate.name, old_text, new_text, at, repeat,
                                      per_slo, len(before.EVIDENCE)))
    report = _report(rows, repeat, window, shared)
    print(report, end="")
    if not args.quick:  # a full run's report only: a smoke run keeps it
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(report)
    return 0 if all(r[4][0] <= TARGET_SAMPLES for r in rows) else 1


def _synthetic_pods(scrape: int) -> tuple[np.ndarray, dict[tuple[str, str], dict[str, np.ndarray]]]:
    """The scrape times (``HOURS`` of them, the last at the start of the previous hour) and
    every pod's counters: the stable pods' throughout, the canary pods' for the last
    ``CANARY_HOURS``."""
    steps = HOURS * 3600 // scrape
    end = (int(__import__("time").time()) // 3600 - 1) * 3600
    times = np.arange(end - (steps - 1) * scrape, end + 1, scrape, dtype=np.int64)
    rng = np.random.default_rng(24)
    canary_from = steps - CANARY_HOURS * 3600 // scrape
    pods = {(f"stable-{i}", "s"): pod_counters(rng, steps, 0) for i in range(STABLE_PODS)}
    pods |= {(f"canary-{i}", "c"): pod_counters(rng, steps, canary_from)
             for i in range(CANARY_PODS)}
    return times, pods


def _group_cost(url: str, rules: list[Rule], at: int,
                repeat: int) -> dict[str, tuple[int, float]]:
    """The evidence group's rules' cost (samples, seconds) summed per SLO, and the service's
    own rules' under ``SERVICE_RULES``."""
    group_cost = [query_stats(url, r["expr"], at, repeat) for r in rules]
    per_slo: dict[str, tuple[int, float]] = {}
    for rule, cost in zip(rules, group_cost, strict=True):
        # the heartbeat and gap rules are the service's, not one SLO's
        key = rule["labels"].get("slo", SERVICE_RULES)
        s, t = per_slo.get(key, (0, 0.0))
        per_slo[key] = (s + cost[0], t + cost[1])
    return per_slo


def _bind(text: str) -> str:
    """A gate query with the canary's and stable's pod template hashes of the synthetic pods."""
    return text.replace("{{args.canary-hash}}", "c").replace("{{args.stable-hash}}", "s")


def _gate_row(url: str, slo: str, old_text: str, new_text: str, at: int, repeat: int,
              per_slo: dict[str, tuple[int, float]], old_evidence: int) -> tuple[Any, ...]:
    """One SLO's row of the report: the query before and after, their length and cost, and its
    evidence rules' cost; each query must answer with its whole evidence vector."""
    old_cost = query_stats(url, _bind(old_text), at, repeat)
    new_cost = query_stats(url, _bind(new_text), at, repeat)
    row = (slo, len(old_text), old_cost, len(new_text), new_cost, per_slo[slo])
    # both queries answer with their whole vector on these series
    values = _vector(url, _bind(new_text), at)
    if len(values) != len(judge.EVIDENCE):
        raise RuntimeError(f"{slo}: the gate query returned {values}")
    old_values = _vector(url, _bind(old_text), at)
    if len(old_values) != old_evidence:
        raise RuntimeError(f"{slo}: the query before returned {old_values}")
    return row


def _vector(url: str, expr: str, at: int) -> list[Any]:
    params = urllib.parse.urlencode({"query": expr, "time": at})
    with urllib.request.urlopen(f"{url}/api/v1/query?{params}", timeout=120) as response:
        return list(json.load(response)["data"]["result"])


SERVICE_RULES = "(service)"


def _report(rows: list[Any], repeat: int, window: str,
            shared: tuple[tuple[int, float], tuple[int, float]]) -> str:
    out = [
        f"gate query cost on Prometheus (prod {SERVICE}: {STABLE_PODS} stable + {CANARY_PODS} "
        f"canary pods, {HOURS}h of 30s scrapes, evidence window {window}; median of {repeat}; "
        f"{platform.machine()}, {platform.python_version()})",
        "",
        "| SLO | before: query | before: samples | before: CPU | after: query | after: samples "
        "| after: CPU | evidence rules per 30 s: samples | their CPU |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, old_len, (old_s, old_t), new_len, (new_s, new_t), (g_s, g_t) in rows:
        out.append(
            f"| {name} | {old_len / 1000:.1f} KB | {old_s:,} | {old_t * 1000:.1f} ms | "
            f"{new_len / 1000:.1f} KB | {new_s:,} | {new_t * 1000:.2f} ms | {g_s:,} | "
            f"{g_t * 1000:.1f} ms |"
        )
    (rules_s, rules_t), (outage_s, outage_t) = shared
    old_total = sum(3 * r[2][0] for r in rows)  # gate, background and shared incident
    new_total = sum(3 * r[4][0] + r[5][0] for r in rows) + rules_s + outage_s
    out += [
        "",
        f"the service's own evidence rules (heartbeat and gap): {rules_s:,} samples, "
        f"{rules_t * 1000:.1f} ms per 30 s; the background's prometheus-outage query: "
        f"{outage_s:,} samples, {outage_t * 1000:.2f} ms",
        "",
        f"per 30 s during a rollout (gate + background + shared-incident metric per SLO, plus "
        f"the evidence rules): before {old_total:,} samples, after {new_total:,}",
        f"target gate query samples <= {TARGET_SAMPLES:,}: "
        f"{'met' if all(r[4][0] <= TARGET_SAMPLES for r in rows) else 'missed'}",
        "",
    ]
    return "\n".join(out)


if __name__ == "__main__":
    raise SystemExit(main())
