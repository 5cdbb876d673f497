"""The report: the header, each mode's steps, the per-cell tables and the target lines."""

from __future__ import annotations

import datetime
import platform
from collections.abc import Sequence

import numpy as np

from bench.canary import counters
from bench.canary.argo import ABORT, PAUSE, PROMOTE, Step
from bench.canary.cells import (
    CATALOGUE_SERVICES,
    STABLE_MULTIPLE,
    cell_probabilities,
    probabilities,
    zone,
)
from bench.canary.modes import NEW_JUDGE, Mode, modes_for
from bench.canary.simulation import CellResult
from bench.canary.stacks import stack_slos
from bench.canary.stats import _ci, _minutes, _pct, needed_requests, summarise
from bench.canary.targets import (
    TargetLine,
    _share,
    available_requests,
    detection_cost,
    evaluate_targets,
    late_figures,
)
from delivery import judge


def _step_text(step: Step) -> str:
    if step.kind == "pause":
        return f"pause {step.seconds:g}s"
    if step.kind == "manual":
        return "pause {} (manual gate)"
    if step.kind == "analysis":
        return step.template
    return "setWeight"


def describe_mode(mode: Mode) -> list[str]:
    lines = [f"  {mode.label}: steps " + ", ".join(_step_text(s) for s in mode.steps)]
    for template in mode.templates.values():
        for m in template.metrics:
            lines.append(
                f"    {template.name}/{m.name}: interval {m.interval:g}s count {m.count} "
                f"consecutiveSuccessLimit {m.consecutive_success_limit} failureLimit "
                f"{m.failure_limit} inconclusiveLimit {m.inconclusive_limit} "
                f"consecutiveErrorLimit {m.consecutive_error_limit}"
                f"{' dryRun' if m.dry_run else ''}")
    lines.append(f"    background: {mode.background}; last possible measurement "
                 f"{mode.longest_analysis / 60:.1f} min after the start")
    return lines


def family_table(chosen: list[CellResult]) -> list[str]:
    """Issue 19's cells of one service: outcomes, and for a late cell the rollouts that set the
    weight, those aborted and stopped at it, and the requests a pause holds there against
    ``judge.late_requests``; for a burn of one SLO the canary's 5xx and slow ratios."""
    if not chosen:
        return []
    w = max(12, *(len(r.cell.title) + 1 for r in chosen))
    out = ["  issue 19's cells (late: 'set' = rollouts that set the weight, 'abort|set' and "
           "'at weight' among them, 'span req' = rate x the recent span vs judge.late_requests "
           "at the late ratio):",
           f"    {'cell':<{w}}{'rpm':>5}{'runs':>6} | {'abort':<24}{'pause':<24}{'promote':<24}"
           f"{'t_abort':>8}{'t_prom':>7} | details"]
    for r in chosen:
        s = summarise(r.outcomes[NEW_JUDGE], r.times[NEW_JUDGE])
        if r.cell.family == "late":
            f = late_figures(r)
            share = _share(f.aborted, f.reached) if f.reached else "-"
            detail = (f"set {f.reached}, abort|set {share}, at weight {f.at_weight}, "
                      f"promoted {f.promoted}; span req "
                      f"{f.held:g} {'>=' if f.held >= f.need else '<'} {f.need}")
        else:
            p = cell_probabilities(stack_slos(r.stack)[1][r.service], r.cell)
            detail = f"5xx ratio {p.e:.4g}, slow ratio {p.s:.4g}"
        out.append(f"    {r.cell.title:<{w}}{r.cell.rate:>5g}{r.runs:>6} | {_ci(s, ABORT):<24}"
                   f"{_ci(s, PAUSE):<24}{_ci(s, PROMOTE):<24}{_minutes(s.median_abort):>8}"
                   f"{_minutes(s.median_promote):>7} | {detail}")
    return out


def report(results: list[CellResult], stacks: Sequence[str], quick: bool, good_runs: int,
           seed: int, elapsed: float, jobs: int, cells: str = "") -> tuple[str, list[TargetLine]]:
    """The printed report: the header, per stack and service its cells' tables, the detection
    cost, then the target lines (not for a focused run)."""
    out = _header(results, quick, good_runs, seed, elapsed, jobs, cells)
    for stack_name in stacks:
        out.extend(_stack_section(results, stack_name))
    out.append("")
    if any(r.stack == "prod" for r in results):
        out.append("prod: 'promote' = the automated judgement reached the manual gate "
                   "(pause {}); a human promotes to 100%.")
    out.append("avail marked '<': by the first gate's last measurement the canary has fewer "
               "requests than the test needs at that ratio.")
    out.append("")
    out.extend(detection_cost(results))
    out.append("")
    if cells:  # the targets speak of every cell: a focused run shows its tables alone
        out.append("Focused run: the targets are not evaluated (they speak of every cell).")
        return "\n".join(out) + "\n", []
    lines = evaluate_targets(results, stacks)
    out.extend(line.render() for line in lines)
    return "\n".join(out) + "\n", lines


def _header(results: list[CellResult], quick: bool, good_runs: int, seed: int, elapsed: float,
            jobs: int, cells: str) -> list[str]:
    """What ran, on which semantics, and how to read the tables."""
    out = []
    today = datetime.date.today().isoformat()
    kind = "QUICK smoke run" if quick else (f"focused run: cells matching {cells!r}" if cells
                                            else "full run")
    out.append(f"Canary judgement benchmark ({kind}), "
               f"{today}, seed {seed}, {good_runs} runs per good-canary cell, "
               f"{elapsed:.0f} s on {jobs} process(es); Python {platform.python_version()}, "
               f"numpy {np.__version__}")
    engine = counters.ENGINE
    ranges = "closed ranges [t-w, t]" if engine.closed else "left-open ranges (t-w, t]"
    out.append(f"Semantics: Argo Rollouts v1.9.1 analysis; Prometheus {engine.major}.x ({ranges}, "
               f"its extrapolatedRate, subquery steps at multiples of the step since the epoch); "
               "see the module docstring for the model.")
    if quick:
        out.append("QUICK: fewer runs and cells; these figures are not the targets' evidence. "
                   "The targets below are still evaluated on what was measured.")
    out.append("P(...) in %, [95% Clopper-Pearson interval]; times in minutes from the "
               "rollout's start (median); need = requests by which the bare test has decided in "
               "99% of runs at the cell's ratios (to abort: the quickest failing gate; to promote: "
               "the slowest gate); avail = canary requests by the first gate's last measurement; "
               "ref = reference templates (84bbf00) on the "
               "same runs.")
    errors = sum(e for r in results for e in r.errors.values())
    out.append(f"Error measurements (evaluation errors) in all runs: {errors}")
    return out


def _stack_section(results: list[CellResult], stack_name: str) -> list[str]:
    """One stack's hypotheses, then each of its services' cells."""
    stack = stack_slos(stack_name)[0]
    cfg = stack.delivery.analysis
    fail = cfg.fail_burn_rate if isinstance(cfg.fail_burn_rate, str) \
        else f"{cfg.fail_burn_rate:g}"
    out = ["", f"=== stack {stack_name} (passBurnRate {cfg.pass_burn_rate:g}, failBurnRate "
               f"{fail}, per SLO below; cells: good where every gated SLO is at most its "
               "good ratio, bad where one is at least its bad ratio)"]
    for service in CATALOGUE_SERVICES:
        mine = [r for r in results if r.stack == stack_name and r.service == service]
        if mine:
            out.extend(_service_section(mine, stack_name, service))
    return out


def _service_section(mine: list[CellResult], stack_name: str, service: str) -> list[str]:
    """A service's gates, the modes compared, its family table and its cell tables."""
    stack = stack_slos(stack_name)[0]
    modes = modes_for(stack_name, service)
    slos = stack_slos(stack_name)[1][service]
    gates = judge.stack_gates(slos, stack, service)
    out = ["", f"--- {stack_name}/{service}: gates " + ", ".join(
        f"{g.name} (budget {g.slo.budget:.2%}, good {g.hypotheses.good:g}, bad "
        f"{g.hypotheses.bad:g} (cumulative {g.coarse.bad:g}), abort {g.abort:.2f}, "
        f"cusum_abort {g.cusum_abort:.2f}, accept {g.accept:.2f})"
        for g in gates)]
    p1 = probabilities(slos, 1)
    out.append(f"    canary at m x budget: 5xx ratio e = m x {p1.e:g}, slow ratio "
               f"s = min(m x {p1.s:g}, 1); stable at {STABLE_MULTIPLE:g}x unless shared; "
               f"'5xx'/'slow' cells: only that stream at m, the other at "
               f"{STABLE_MULTIPLE:g}x")
    for mode in modes:
        out.extend(describe_mode(mode))
    out.extend(family_table([r for r in mine if r.cell.family]))
    plain = [r for r in mine if not r.cell.family]
    for title, chosen in (
        ("targeted cells", [r for r in plain if zone(stack_name, service, r.cell) != "indiff"
                            and not r.cell.condition]),
        ("indifference zone (no target)",
         [r for r in plain if zone(stack_name, service, r.cell) == "indiff"]),
        ("real-traffic cells (bench/traffic.py; no reference: '-')",
         [r for r in plain if r.cell.condition]),
    ):
        if chosen:
            out.extend(_cell_table(title, chosen, stack_name, service, modes[1].label))
    return out


def _cell_table(title: str, chosen: list[CellResult], stack_name: str, service: str,
                ref_label: str) -> list[str]:
    """One table of cells: the new judge's outcomes, what the test needs and what the first
    gate gives, and the reference templates' outcomes on the same runs."""
    w = max(12, *(len(r.cell.title) + 1 for r in chosen))
    out = [f"  {title}:",
           f"    {'cell':<{w}}{'rpm':>5}{'runs':>6} {'zone':<7}| "
           f"{'abort':<24}{'pause':<24}{'promote':<24}{'t_abort':>8}{'t_prom':>7} | "
           f"{'need':>7}{'avail':>8} | ref: {'abort':>6}{'pause':>7}{'promote':>8}"
           f"{'t_abort':>8}{'t_prom':>7}"]
    for r in chosen:
        s = summarise(r.outcomes[NEW_JUDGE], r.times[NEW_JUDGE])
        q = summarise(r.outcomes[ref_label], r.times[ref_label])
        need = needed_requests(r.stack, r.service, r.cell)
        avail = available_requests(r)
        mark = "" if avail >= need else "<"
        ref = "ref: -" if r.cell.condition else (
            f"ref: {_pct(q.p(ABORT)):>6}{_pct(q.p(PAUSE)):>7}{_pct(q.p(PROMOTE)):>8}"
            f"{_minutes(q.median_abort):>8}{_minutes(q.median_promote):>7}")
        out.append(
            f"    {r.cell.title:<{w}}{r.cell.rate:>5g}{r.runs:>6} "
            f"{zone(stack_name, service, r.cell):<7}| "
            f"{_ci(s, ABORT):<24}{_ci(s, PAUSE):<24}"
            f"{_ci(s, PROMOTE):<24}{_minutes(s.median_abort):>8}"
            f"{_minutes(s.median_promote):>7} | {need:>7.0f}{avail:>7.0f}{mark:1} | "
            f"{ref}")
    return out
