"""Evaluation cost of the fleet split: what each cluster's Prometheus and the Thanos Ruler spend
per evaluation round on fleet SLOs (``scope: fleet``, rule placement thanos).

    python bench/fleet_eval_cost.py                      # 200 SLOs, 12 rounds of 30 s
    python bench/fleet_eval_cost.py --slos 40 --rounds 4 --out /tmp/fleet-cost.json

What it does (everything on 127.0.0.1, in a temporary directory, every process stopped at the end):

1. A catalogue of ``--slos`` fleet SLOs: services of 4 availability SLOs each (objectives 99.9,
   99.5, 99, 95; 30d windows) with the project's default tiers (slo/burn_rates.yaml).
2. The harness of the fleet suite (e2e/fleet/fleet.py): two clusters, a and b, each an exporter
   of every service's ``http_requests_total`` (a 100 req/s at 0.2% errors, b 10 req/s at 1%) and
   a Prometheus 3 loading the local groups, with a Thanos sidecar; a Thanos Query over the
   sidecars and the Ruler; a Thanos Ruler loading the fleet groups. Scrape, cluster evaluation
   and Ruler evaluation interval (``--eval-interval`` of the Ruler, the default of its groups):
   ``--interval`` (30 s).
3. Every interval, ``prometheus_rule_group_last_duration_seconds`` of the Ruler and of each
   Prometheus (their /metrics), summed per place and group kind; evaluation failures and missed
   iterations over the measured rounds.

The 30d windows (period, budget) read only the minutes of history a fresh fleet has: the cost of
range selectors grows with history, so this measures a fresh fleet, a lower bound for the long
windows' share.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))

from e2e.fleet.fleet import Fleet, parse_metrics, thanos_binary  # noqa: E402
from slo.fleet import cluster_group, fleet_rule_file  # noqa: E402
from slo.loader import load_catalogue  # noqa: E402
from slo.model import resolve_all  # noqa: E402
from slo.rules import RuleGroup  # noqa: E402
from slo.yamlout import dump  # noqa: E402
from tools.local_prometheus import binary  # noqa: E402

OBJECTIVES = (99.9, 99.5, 99.0, 95.0)
RPS = {"a": 100.0, "b": 10.0}
ERRORS = {"a": 0.002, "b": 0.01}
DURATION = "prometheus_rule_group_last_duration_seconds"
FAILURES = "prometheus_rule_evaluation_failures_total"
MISSED = "prometheus_rule_group_iterations_missed_total"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def catalogue(n: int) -> dict[str, Any]:
    services = []
    for i in range(math.ceil(n / len(OBJECTIVES))):
        name = f"svc-{i:03d}"
        slos = []
        for objective in OBJECTIVES[: min(len(OBJECTIVES), n - i * len(OBJECTIVES))]:
            slos.append({
                "name": f"avail-{str(objective).replace('.', '')}",
                "description": f"{objective}% of {name}'s requests succeed, in every cluster.",
                "objective": objective,
                "window": "30d",
                "scope": "fleet",
                "indicator": {"kind": "availability", "total": "http_requests_total",
                              "bad": 'http_requests_total{code=~"5.."}'},
            })
        services.append({"name": name, "namespace": "bench", "owner": "bench-team",
                         "selector": f'job="{name}"', "slos": slos})
    return {"defaults": {"alerting": {"labels": {"team": "platform"}}}, "services": services}


def count(groups: Iterable[RuleGroup]) -> tuple[int, int]:
    rules = [r for g in groups for r in g["rules"]]
    return sum("record" in r for r in rules), sum("alert" in r for r in rules)


def durations(text: str) -> dict[str, float]:
    """Summed last duration of the rule groups, by kind (the group name's ending)."""
    out = {"abort": 0.0, "reporting": 0.0, "local": 0.0}
    for labels, seconds in parse_metrics(text, DURATION):
        group = labels.get("rule_group", "").rsplit(";", 1)[-1]
        kind = ("reporting" if group.endswith("-reporting")
                else "abort" if group.startswith("slo-fleet-") else "local")
        out[kind] += seconds
    out["total"] = out["abort"] + out["reporting"] + out["local"]
    return out


def counter_sum(text: str, name: str) -> float:
    return sum(v for _, v in parse_metrics(text, name))


def median_ci(values: list[float], level: float = 0.95) -> tuple[float, float] | None:
    """Distribution-free CI of the median from order statistics: the narrowest (X_(j),
    X_(n-j+1)) with P = 1 - 2 P(Binomial(n, 1/2) <= j - 1) >= level; None when n is too small
    (n < 6 at 95%)."""
    n = len(values)
    ordered = sorted(values)
    best = None
    for j in range(1, n // 2 + 1):
        tail = sum(math.comb(n, i) for i in range(j)) / 2**n
        if 1 - 2 * tail >= level:
            best = (ordered[j - 1], ordered[n - j])
    return best


def summary(values: list[float]) -> dict[str, Any]:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)]
    ci = median_ci(values)
    return {"median": statistics.median(values), "p95": p95, "min": ordered[0],
            "max": ordered[-1], "median_ci95": list(ci) if ci else None, "n": len(values)}


def fmt(s: dict[str, Any]) -> str:
    ci = s["median_ci95"]
    interval = (f"[{ci[0] * 1e3:.1f}, {ci[1] * 1e3:.1f}]" if ci
                else f"(n={s['n']} too few for a 95% CI; range "
                     f"{s['min'] * 1e3:.1f}..{s['max'] * 1e3:.1f})")
    return (f"median {s['median'] * 1e3:8.1f} ms, 95% CI of the median {interval} ms, "
            f"p95 {s['p95'] * 1e3:.1f} ms")


def version(tool: str) -> str:
    """The first line ``--version`` prints (Thanos prints it on stderr)."""
    ran = subprocess.run([tool, "--version"], capture_output=True, text=True, check=False)
    lines = (ran.stdout + ran.stderr).splitlines()
    return lines[0] if lines else tool


@dataclass(frozen=True)
class FleetRules:
    """The rule files written for the fleet, and what they hold."""

    slos: int
    services: list[str]
    counts: dict[str, tuple[int, int]]  # (record, alert) rules per place


@dataclass(frozen=True)
class Measured:
    """Durations of every measured round, by place, and the counters' increase over them."""

    rounds: dict[str, list[dict[str, float]]]
    faults: dict[str, dict[str, float]]
    present: dict[str, list[str]]


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slos", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=12,
                        help="measured rounds of --interval (default 12: >= 10 Ruler rounds)")
    parser.add_argument("--interval", type=int, default=30,
                        help="scrape, Prometheus and Ruler evaluation interval, s (default 30)")
    parser.add_argument("--warmup-rounds", type=int, default=2)
    parser.add_argument("--out", type=Path, help="write the figures as JSON here")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    return parser.parse_args()


def _exit_on_signals() -> None:
    """SIGTERM and SIGINT raise SystemExit, so that the fleet is closed on the way out."""

    def terminate(signum: int, frame: Any) -> None:
        raise SystemExit(f"stopped by signal {signum}")

    signal.signal(signal.SIGTERM, terminate)
    signal.signal(signal.SIGINT, terminate)


def _write_rules(work: Path, n: int) -> FleetRules:
    """Step 1: the catalogue, the clusters' rule file (local.yml) and the Ruler's (fleet.yml)."""
    path = work / "catalogue.yaml"
    path.write_text(yaml.safe_dump(catalogue(n), sort_keys=False))
    slos = resolve_all(load_catalogue(path))
    local = [cluster_group(s, "thanos") for s in slos]
    central = fleet_rule_file(slos)["groups"]
    (work / "local.yml").write_text(dump({"groups": local}))
    (work / "fleet.yml").write_text(dump({"groups": central}))
    counts = {
        "cluster": count(local),
        "ruler_abort": count(g for g in central if g["partial_response_strategy"] == "abort"),
        "ruler_reporting": count(g for g in central if g["partial_response_strategy"] == "warn"),
    }
    return FleetRules(len(slos), sorted({s.service.name for s in slos}), counts)


def _measure(fleet: Fleet, args: argparse.Namespace, rules: FleetRules) -> Measured:
    """Step 3 on a started fleet: warm-up, then the measured rounds of every place."""
    bases = {"ruler": fleet.ruler_url, "a": "", "b": ""}
    bases.update({c: fleet.clusters[c].url for c in fleet.clusters})
    log(f"fleet up: {rules.slos} SLOs, {len(rules.services)} services; warming up "
        f"{args.warmup_rounds} rounds of {args.interval}s")
    time.sleep(args.interval * args.warmup_rounds)
    start = {k: fleet.metrics(b) for k, b in bases.items()}
    rounds: dict[str, list[dict[str, float]]] = {"ruler": [], "a": [], "b": []}
    for i in range(args.rounds):
        time.sleep(args.interval)
        for place, base in bases.items():
            rounds[place].append(durations(fleet.metrics(base)))
        log(f"round {i + 1}/{args.rounds}: ruler {rounds['ruler'][-1]['total'] * 1e3:.0f} ms,"
            f" a {rounds['a'][-1]['total'] * 1e3:.0f} ms,"
            f" b {rounds['b'][-1]['total'] * 1e3:.0f} ms")
    end = {k: fleet.metrics(b) for k, b in bases.items()}
    faults = {k: {"evaluation_failures": counter_sum(end[k], FAILURES)
                  - counter_sum(start[k], FAILURES),
                  "iterations_missed": counter_sum(end[k], MISSED)
                  - counter_sum(start[k], MISSED)} for k in bases}
    present = {k: [n for n in (DURATION, FAILURES, MISSED) if parse_metrics(end[k], n)]
               for k in bases}
    return Measured(rounds, faults, present)


def _figures(args: argparse.Namespace, rules: FleetRules, measured: Measured, thanos: str,
             wall: float) -> dict[str, Any]:
    """Everything the report prints, as written by ``--out``."""
    n = rules.slos
    counts = rules.counts
    return {
        "slos": n, "services": len(rules.services), "interval_s": args.interval,
        "rounds": args.rounds, "wall_s": round(time.time() - wall, 1),
        "rules_per_slo": {k: {"record": r / n, "alert": a / n} for k, (r, a) in counts.items()},
        "rules_total": {k: {"record": r, "alert": a} for k, (r, a) in counts.items()},
        "eval_seconds_per_round": {
            place: {kind: summary([r[kind] for r in rs]) for kind in rs[0]
                    if any(r[kind] for r in rs) or kind == "total"}
            for place, rs in measured.rounds.items()
        },
        "faults_over_measured_rounds": measured.faults, "metrics_exposed": measured.present,
        "prometheus": version(binary()),
        "thanos": version(thanos),
        "machine": f"{os.cpu_count()} cores, {platform.platform()}",
    }


def _print_report(args: argparse.Namespace, rules: FleetRules, measured: Measured,
                  figures: dict[str, Any]) -> None:
    n = rules.slos
    p = print
    p("Fleet SLO evaluation cost: each cluster's Prometheus (local groups) and the Thanos Ruler")
    p(f"{figures['machine']}; {figures['prometheus']}; {figures['thanos']}")
    p(f"{n} fleet SLOs in {len(rules.services)} services (objectives {OBJECTIVES}, 30d, default "
      f"tiers of slo/burn_rates.yaml); 2 clusters; scrape, Prometheus and Ruler (--eval-interval) "
      f"interval {args.interval}s; {args.rounds} measured rounds after {args.warmup_rounds} "
      "warm-up")
    p("Fresh fleet: the 30d windows read only minutes of history. The cost of range selectors "
      "grows with history, so the long windows' cost here is a lower bound.")
    p("Rules per SLO (record + alert):")
    for k, (r, a) in rules.counts.items():
        p(f"  {k:<16} {r / n:5.2f} record + {a / n:4.2f} alert   ({r} + {a} in all)")
    p("Sum of prometheus_rule_group_last_duration_seconds per round:")
    for place, kinds in figures["eval_seconds_per_round"].items():
        for kind, s in kinds.items():
            p(f"  {place:<6} {kind:<10} {fmt(s)}")
    p("Over the measured rounds (counter increase):")
    for place, f in measured.faults.items():
        p(f"  {place:<6} evaluation failures {f['evaluation_failures']:.0f}, "
          f"iterations missed {f['iterations_missed']:.0f}")
    p(f"metrics found: {measured.present}")
    p(f"wall time {figures['wall_s']:.0f} s")


def main() -> int:
    args = _parse_args()
    _exit_on_signals()
    wall = time.time()
    thanos = thanos_binary()
    work = Path(tempfile.mkdtemp(prefix="slo-fleet-cost-"))
    log(f"workdir {work}")
    rules = _write_rules(work, args.slos)
    interval = f"{args.interval}s"
    fleet = Fleet(work, work / "local.yml", work / "fleet.yml", rules.services, rps=dict(RPS),
                  error_ratio=dict(ERRORS), scrape_interval=interval,
                  evaluation_interval=interval, ruler_eval_interval=interval)
    try:
        fleet.start(timeout=180)
        measured = _measure(fleet, args, rules)
    finally:
        fleet.close()
        if args.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    figures = _figures(args, rules, measured, thanos, wall)
    _print_report(args, rules, measured, figures)
    if args.out:
        args.out.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
