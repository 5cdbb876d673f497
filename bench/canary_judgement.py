"""Monte Carlo benchmark of canary verdicts: the rendered AnalysisTemplates and Rollout steps.

    python bench/canary_judgement.py                 # full run (targets' evidence)
    python bench/canary_judgement.py --quick         # smoke run for `make test`
    python bench/canary_judgement.py --stack dev --runs 8000 --seed 7
    python bench/canary_judgement.py --family late,moderate,caught  # issue 19's cells only

For every service of catalogue/core-services.yaml with gated SLOs, on the dev and prod stacks,
all gated SLOs of the service judged together in one rollout:

Traffic (bench/traffic.py). The canary pod starts with the rollout and receives Poisson traffic
at a constant rate (20 ... 5000 requests/minute), the stable pods 9x that rate (a day of counts
already in their counters). Each request is a 5xx with probability ``e`` and slower than the
latency threshold with probability ``s``, independently: every ratio/availability SLO on the
``http_requests_total`` 5xx selector sees the same 5xx (orchestrator's 99.5% availability and
99.9% error rate count the very same errors), every latency SLO the same slow requests. A cell
puts the canary at ``m`` x budget: ``e = m x`` the strictest budget among the service's
error-type SLOs, ``s = min(m x latency budget, 1)``; stable runs at 0.5x. The shared incident
puts stable and canary both at 10x; the idle canary gets no requests (stable keeps 180/min).
The real-traffic cells (``Cell.condition``) add container restarts (lazily created or
pre-created 5xx series), bursts, beta-binomial variation, cold starts, a warm-up, stable's
traffic share in a shared incident and Prometheus outages; see ``real_traffic_cells``.
Issue 19's families (``family_cells``): a regression that starts when the simulated rollout sets
a later weight (``late``: the same runs are simulated first without it to learn when each sets
the weight, then with it from that moment; ``late_regression``), constant moderate burns of one
SLO's budget (``moderate``) and every SLO at the plan's smallest burn caught (``caught``).

Prometheus (3.x; ``--engine 2`` closes the ranges as 2.x does). The new judge's gate queries
read the evidence the service's rendered rule group records (``delivery/evidence.py``); the
group is simulated (bench/recording.py): every pod's series scraped every scrape interval at a
random phase per run and pod (staleness markers where a scrape fails or a series is gone), the
group evaluated every interval at a random phase of its own, each series' exact step (new
sample minus the last one a step earlier, or the whole sample after a reset), the steps per
hash and of the other hashes, their sums over the evidence window, and ``judge.evidence``
vectorised. tests/test_canary_judgement.py checks that simulation against the rendered group
run by ``promtool test rules``. A query at time ``t`` sees the last evaluation's evidence within
the lookback (5m). While Prometheus is away nothing is scraped, nothing evaluated, and every
measurement (gate, background, budget freeze) is an Error. The reference's queries (``rate()``
over the canary's counters) use Prometheus' extrapolatedRate, as copied below; it is run on the
cells whose counters neither reset nor miss scrapes.

Argo Rollouts v1.9 (analysis/analysis.go, utils/evaluate/evaluate.go of v1.9.1). Conditions are
the rendered strings, evaluated by a small evaluator of the expr-lang subset they use (never by
Python's eval). A measurement with both conditions true is Failed; success only: Successful;
neither: Inconclusive; an evaluation error: Error. A metric is Failed when failed >
failureLimit, Inconclusive when inconclusive > inconclusiveLimit, Error when consecutive errors
> consecutiveErrorLimit (in that order of precedence, the last wins), Successful at
consecutiveSuccessLimit, and at ``count`` without that limit reached Inconclusive. Its first
measurement is taken when the run starts, then every ``interval``; an Error does not count
toward ``count`` and is retried at the next interval (v1.9.1 retries after ``interval``); the
report counts Error measurements. Once a
non-dry-run metric is Failed/Error/Inconclusive the run ends with the worst phase at that moment
(Failed > Error > Inconclusive); dry-run metrics never decide. The Rollout runs its steps in
order: setWeight is immediate, pause {duration} waits, an analysis step blocks until its run
completes (Successful: next step; Inconclusive: the rollout pauses; Failed/Error: abort). The
background analysis starts with the rollout and acts when it ends (Failed/Error: abort;
Inconclusive: pause). Reaching ``pause: {}`` (prod's manual gate) or the end of the steps is
"promote": for prod that means the automated judgement promoted and a human has the last word.
prod's budget-freeze step is evaluated with its rendered conditions on a remaining budget of
50% (the 30-day budget is not simulated). Controller and reconciliation latency are zero.

Reference mode: the same runs (same traffic, same scrapes) judged by the templates shipped
before the sequential judge (``bench/reference_templates.py``, commit 84bbf00).

Prints a report and writes bench/results/canary_judgement.txt; the exit status is 1 when a
target is missed.

The code is the package bench/canary/, one module per idea: ``conditions`` (the expr-lang
evaluator), ``counters`` (Prometheus' range arithmetic), ``queries`` (what the rendered queries
read), ``argo`` (Argo Rollouts' analysis and steps), ``modes`` (a rollout through its steps),
``cells`` (what is simulated), ``simulation`` (one cell), ``stats``, ``targets`` and ``report``;
this file is the command line.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.canary.cells import (  # noqa: E402
    CATALOGUE_SERVICES,
    FAMILIES,
    STACKS,
    Cell,
    all_cells,
    runs_for,
)
from bench.canary.counters import use_engine  # noqa: E402
from bench.canary.report import report  # noqa: E402
from bench.canary.simulation import CellResult, _task  # noqa: E402
from bench.canary.stacks import stack_slos  # noqa: E402
from delivery import judge  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "canary_judgement.txt"


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    families = set(args.family.split(","))
    if not families <= {"base", *FAMILIES}:
        parser.error(f"unknown family in {args.family!r}")
    use_engine(args.engine)
    good_runs = args.runs or (300 if args.quick else 8000)
    real_runs = args.real_runs or (200 if args.quick else 2000)
    stacks = tuple(args.stack or STACKS)
    tasks = _tasks(args, stacks, families, good_runs, real_runs)
    started = time.perf_counter()
    results = _simulate(tasks, args.jobs)
    elapsed = time.perf_counter() - started
    text, lines = report(results, stacks, args.quick, good_runs, args.seed, elapsed, args.jobs,
                         args.cells)
    sys.stdout.write(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    return 0 if all(line.met for line in lines if not line.informative) else 1


def _parser() -> argparse.ArgumentParser:
    """The command line's options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: fewer runs and cells")
    parser.add_argument("--runs", type=int, default=None,
                        help="runs per good-canary cell (default 8000; --quick 300); other "
                             "cells get a quarter")
    parser.add_argument("--real-runs", type=int, default=None,
                        help="runs per healthy real-traffic cell (default 2000; --quick 200); "
                             "bad ones get a quarter, shared incidents half")
    parser.add_argument("--seed", type=int, default=20261127)
    parser.add_argument("--stack", choices=STACKS, action="append",
                        help="only this stack (repeatable; default both)")
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--engine", type=int, choices=(2, 3), default=3,
                        help="Prometheus major version whose range semantics to copy")
    parser.add_argument("--cells", default="", metavar="REGEX",
                        help="only the cells whose 'service title' matches (a focused check: "
                        "the targets then speak of those cells alone; seeds as in a full run)")
    parser.add_argument("--family", default=",".join(("base", *FAMILIES)),
                        help="comma-separated cell families to run: base (the plain and "
                             "real-traffic cells), " + ", ".join(FAMILIES) + " (default: all); "
                             "only the targets of the families run are evaluated")
    return parser


Task = tuple[int, str, str, Cell, int, tuple[int, ...]]  # simulation._task's arguments


def _tasks(args: argparse.Namespace, stacks: tuple[str, ...], families: set[str],
           good_runs: int, real_runs: int) -> list[Task]:
    """The cells to simulate, each with its runs and its seed (the run's seed and the cell's
    place among every stack, service and cell: the same whichever --stack, --family or --cells
    select it), the longest first."""
    tasks: list[Task] = []
    for si, stack_name in enumerate(STACKS):
        if stack_name not in stacks:
            continue
        slos = stack_slos(stack_name)[1]
        for vi, service in enumerate(CATALOGUE_SERVICES):
            if not judge.gated(slos[service]):
                continue
            for ci, cell in enumerate(all_cells(args.quick, stack_name, service)):
                if (cell.family or "base") not in families:
                    continue
                if args.cells and not re.search(args.cells, f"{service} {cell.title}"):
                    continue
                tasks.append((args.engine, stack_name, service, cell,
                              runs_for(stack_name, service, cell, good_runs, real_runs),
                              (args.seed, si, vi, ci)))
    # the longest cells first, so that the two workers finish together
    tasks.sort(key=lambda t: -t[4] * (2 if t[1] == "prod" else 1))
    return tasks


def _simulate(tasks: list[Task], jobs: int) -> list[CellResult]:
    """Every task's cell simulated (on ``jobs`` processes), in the report's order: by stack,
    service and cell."""
    if jobs > 1:
        with ProcessPoolExecutor(jobs) as pool:
            results = list(pool.map(_task, tasks))
    else:
        results = [_task(t) for t in tasks]
    # a task's seed holds its stack's, service's and cell's places (_tasks); recomputing a
    # service's cells per result instead took half an hour on tight hypotheses (oc.smallest_caught)
    placed = sorted(zip((t[5][1:] for t in tasks), results, strict=True), key=lambda p: p[0])
    return [r for _, r in placed]


if __name__ == "__main__":
    sys.exit(main())
