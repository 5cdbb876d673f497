"""One rollout mode (the rendered templates and steps, or the reference's) and the
simulation of a batch of rollouts through its steps."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np

from bench.canary.argo import (
    ABORT,
    ERROR,
    INCONCLUSIVE,
    NEVER,
    PAUSE,
    PROMOTE,
    RUNNING,
    SUCCESSFUL,
    UNDECIDED,
    Step,
    Template,
    metric_outcome,
    rollout_steps,
    run_outcome,
)
from bench.canary.conditions import Env
from bench.canary.queries import (
    OutageQuery,
    RecordedGate,
    ReferenceQuery,
    World,
    _seconds,
    reference_evidence,
    slo_series,
)
from bench.canary.stacks import stack_slos
from bench.reference_templates import REFERENCE_COMMIT, reference_bodies
from delivery import evidence as evidence_rules
from delivery import judge
from delivery.analysis import outage_metric, outage_view
from delivery.canary import bodies, evidence_group
from delivery.stack import StackConfig, go_seconds
from slo.model import ResolvedSlo

FREEZE_BUDGET_REMAINING = 0.5  # what prod's budget-freeze query is taken to return

MAX_OUTAGE = 1200.0  # seconds the horizon leaves for gates prolonged by Error measurements

# ---- one rollout mode: templates + steps, and how its measurements are computed -------------

NEW_JUDGE = "new judge"  # the label of the rendered templates' mode (results are keyed by it)


@dataclass
class Mode:
    """A rendered rollout (new judge or reference) of one service on one stack."""

    label: str
    steps: list[Step]
    background: str | None
    templates: dict[str, Template]
    queries: dict[str, RecordedGate | OutageQuery | ReferenceQuery]  # query text -> its model
    grid: float  # seconds between possible measurement times
    horizon: int  # grid points simulated
    longest_analysis: float  # seconds to the last measurement the steps can take

    def evidence(self, query: str, world: World, t: np.ndarray
                 ) -> tuple[np.ndarray, list[np.ndarray]]:
        q = self.queries[query]
        if isinstance(q, RecordedGate | OutageQuery):
            return q.measured(world, t)
        assert world.reference is not None
        return reference_evidence(q, world.reference, t)

    def first_gate_start(self) -> float:
        """Seconds from the rollout's start to the first gate's first measurement."""
        seconds = 0.0
        for step in self.steps:
            if step.kind == "pause":
                seconds += step.seconds
            elif step.kind == "analysis" and not is_freeze(self.templates[step.template]):
                return seconds
        return seconds

    def gate_deadline(self) -> float:
        """Seconds from the rollout's start to the first gate's last measurement."""
        seconds = 0.0
        for step in self.steps:
            if step.kind == "pause":
                seconds += step.seconds
            elif step.kind == "analysis" and not is_freeze(self.templates[step.template]):
                metrics = self.templates[step.template].metrics
                return seconds + max(m.initial_delay + ((m.count or 1) - 1) * m.interval
                                     for m in metrics)
        return seconds


def _grid_of(steps: list[Step], templates: dict[str, Template]) -> float:
    values = [int(s.seconds) for s in steps if s.kind == "pause"]
    values += [int(x) for t in templates.values() for m in t.metrics
               for x in (m.interval, m.initial_delay) if x]
    return float(math.gcd(*values))


def _longest(steps: list[Step], templates: dict[str, Template]) -> float:
    seconds = 0.0
    for step in steps:
        if step.kind == "pause":
            seconds += step.seconds
        elif step.kind == "analysis":
            metrics = templates[step.template].metrics
            seconds += max(m.initial_delay + ((m.count or 1) - 1) * m.interval
                           for m in metrics)
    return seconds


def new_mode(service: str, namespace: str, slos: list[ResolvedSlo], stack: StackConfig) -> Mode:
    """The rendered templates and steps; each gate query's evidence is simulated from the
    rendered evidence rule group, whose parameters are read from it (and checked to be what
    ``delivery/evidence.py`` renders for those parameters)."""
    b = bodies(service, namespace, slos, stack)
    templates = {body["metadata"]["name"]: Template.from_rendered(body)
                 for body in b.templates.values()}
    steps, background = rollout_steps(b.rollout(b.image)["spec"]["strategy"]["canary"])
    group = evidence_group(service, slos, stack)
    if group is None or b.evidence_rule is None:
        raise ValueError(f"{service} has no recorded evidence")
    if b.evidence_rule["spec"]["groups"] != [group]:
        raise ValueError("the rendered evidence rule is not evidence_group()'s")
    recordings = [evidence_rules.recording(g, stack.services[service], stack.delivery,
                                           stack.prometheus) for g in b.gates]
    if evidence_rules.rule_group(service, recordings) != group:
        raise ValueError("the evidence group is not rendered from these recordings")
    queries: dict[str, RecordedGate | OutageQuery | ReferenceQuery] = {}
    outage = outage_metric(service, stack.delivery.analysis, stack.prometheus)
    for template in templates.values():
        for metric in template.metrics:
            if metric.query in queries or metric.query.startswith("min("):
                continue
            if metric.name == outage["name"]:
                if metric.query != outage["provider"]["prometheus"]["query"]:
                    raise ValueError("the outage metric is not outage_metric()'s")
                queries[metric.query] = OutageQuery(
                    seen=float(outage_view(stack.delivery.analysis, stack.prometheus)),
                    step=_seconds(stack.prometheus.scrape_interval))
                continue
            for r in recordings:
                if metric.query == judge.query(r.gate, r.window, r.step):
                    queries[metric.query] = RecordedGate(
                        gate=r.gate, series=slo_series(r.gate.slo.events),
                        step=_seconds(r.step), memory=_seconds(r.memory),
                        window=_seconds(r.window),
                        warm_up=float(go_seconds(r.warm_up)) if r.warm_up else None,
                        settle=_seconds(r.settle), recent=_seconds(r.recent),
                        restart_every=float(r.restart_every))
                    break
            else:
                raise ValueError(f"no gate renders the query of {metric.name}")
    return _mode(NEW_JUDGE, steps, background, templates, queries)


def reference_mode(service: str, namespace: str, slos: list[ResolvedSlo], stack_name: str,
                   address: str) -> Mode:
    ref = reference_bodies(service, namespace, slos, stack_name, address)
    templates = {body["metadata"]["name"]: Template.from_rendered(body)
                 for body in ref.templates.values()}
    steps, background = rollout_steps(ref.canary)
    queries: dict[str, RecordedGate | OutageQuery | ReferenceQuery] = {}
    for template in templates.values():
        for metric in template.metrics:
            if metric.query.startswith("min(") or metric.query in queries:
                continue
            slo = next(s for s in slos if s.slo.name == metric.name)
            queries[metric.query] = ReferenceQuery.parse(metric.query, slo)
    return _mode(f"reference ({REFERENCE_COMMIT})", steps, background, templates, queries)


def _mode(label: str, steps: list[Step], background: str | None,
          templates: dict[str, Template],
          queries: dict[str, RecordedGate | OutageQuery | ReferenceQuery]) -> Mode:
    grid = _grid_of(steps, templates)
    longest = _longest(steps, templates)
    # Error measurements (Prometheus down) do not count: a gate can last that much longer
    return Mode(label, steps, background, templates, queries, grid,
                int((longest + MAX_OUTAGE) // grid) + 2, longest)


def phases_of(mode: Mode, world: World) -> dict[str, Any]:
    """Every metric's measurement phase at every grid time, keyed by (template, metric); Error
    wherever Prometheus does not answer."""
    runs = len(world.down)
    t = np.broadcast_to(np.arange(mode.horizon) * mode.grid, (runs, mode.horizon))
    down = world.is_down(t)
    cache: dict[str, tuple[np.ndarray, list[np.ndarray]]] = {}
    out: dict[str, Any] = {}
    for template in mode.templates.values():
        for metric in template.metrics:
            if metric.query.startswith("min("):  # the budget freeze: a constant remaining budget
                env = Env([np.full(t.shape, FREEZE_BUDGET_REMAINING)], np.ones(t.shape, int))
            else:
                if metric.query not in cache:
                    cache[metric.query] = mode.evidence(metric.query, world, t)
                present, vector = cache[metric.query]
                env = Env(vector, np.where(present, len(vector), 0))
            out[f"{template.name}/{metric.name}"] = np.where(
                down, ERROR, metric.measure(env)).astype(np.int8)
    return out


def simulate_rollout(mode: Mode, phases: dict[str, np.ndarray],
                     weights: dict[float, np.ndarray] | None = None) -> tuple[np.ndarray, ...]:
    """(outcome, time in seconds, first gate's end or NEVER, error measurements) per run.
    ``weights``, when given, receives for every setWeight step the seconds at which each run
    set that weight (inf: a gate before it halted the run; the background analysis, which may
    stop the rollout earlier, is not applied to these times)."""
    runs = next(iter(phases.values())).shape[0]

    def analysis(name: str, start: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        template = mode.templates[name]
        outcomes = [
            metric_outcome(m, phases[f"{name}/{m.name}"], start,
                           max(1, round(m.interval / mode.grid)), mode.horizon,
                           round(m.initial_delay / mode.grid))
            for m in template.metrics
        ]
        return run_outcome(template.metrics, outcomes)

    at = np.zeros(runs, dtype=np.int64)
    outcome = np.full(runs, UNDECIDED)
    when = np.full(runs, NEVER)
    first_gate = np.full(runs, NEVER)
    gates_seen = 0
    for step in mode.steps:
        active = outcome == UNDECIDED
        if step.kind == "weight" and weights is not None:
            weights[step.weight] = np.where(active, at.astype(np.float64) * mode.grid, np.inf)
        if step.kind == "pause":
            at = at + round(step.seconds / mode.grid)
        elif step.kind == "manual":
            outcome = np.where(active, PROMOTE, outcome)
            when = np.where(active, at, when)
            break
        elif step.kind == "analysis":
            end, phase = analysis(step.template, at)
            if not is_freeze(mode.templates[step.template]):
                if gates_seen == 0:
                    first_gate = np.where(active & (phase == SUCCESSFUL), end, NEVER)
                gates_seen += 1
            if (active & (phase == RUNNING)).any():
                raise RuntimeError(f"{step.template} still running at the horizon")
            stop = np.where(phase >= ERROR, ABORT, PAUSE)
            halted = active & (phase != SUCCESSFUL)
            outcome = np.where(halted, stop, outcome)
            when = np.where(halted, end, when)
            at = np.where(active & (phase == SUCCESSFUL), end, at)
    active = outcome == UNDECIDED
    outcome = np.where(active, PROMOTE, outcome)
    when = np.where(active, at, when)
    if mode.background:
        end, phase = analysis(mode.background, np.zeros(runs, dtype=np.int64))
        verdict = np.where(phase >= ERROR, ABORT, np.where(phase == INCONCLUSIVE, PAUSE, -1))
        acts = (verdict >= 0) & ((end < when) | ((end == when) & (verdict > outcome)))
        outcome = np.where(acts, verdict, outcome)
        when = np.where(acts, end, when)
    errors = sum(int((p == ERROR).sum()) for p in phases.values())
    return outcome, _seconds_or_nan(when, mode.grid), _seconds_or_nan(first_gate, mode.grid), \
        np.array([errors])


def _seconds_or_nan(index: np.ndarray, grid: float) -> np.ndarray:
    return np.where(index >= NEVER, np.nan, index.astype(np.float64) * grid)


def is_freeze(template: Template) -> bool:
    """prod's budget-freeze step: its query reads the recorded budget, not the canary."""
    return all(m.query.startswith("min(") for m in template.metrics)


@cache
def modes_for(stack_name: str, service: str, warm_up: str = "") -> tuple[Mode, Mode]:
    """The new judge's and the reference's modes; ``warm_up`` overrides the service's warmUp
    in the stack file (the rendered templates and evidence group follow it)."""
    stack, slos = stack_slos(stack_name)
    if warm_up:
        deployment = stack.services[service].model_copy(update={"warm_up": warm_up})
        stack = stack.model_copy(update={"services": {**stack.services, service: deployment}})
    mine = slos[service]
    namespace = mine[0].service.namespace
    return (
        new_mode(service, namespace, mine, stack),
        reference_mode(service, namespace, mine, stack_name, stack.prometheus.address),
    )
