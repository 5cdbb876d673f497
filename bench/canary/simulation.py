"""One cell simulated: a batch of worlds (traffic, scrapes, evaluations), the late
regression's second pass, and the rollout outcomes of both modes."""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from bench import traffic
from bench.canary.argo import UNDECIDED
from bench.canary.cells import (
    IDLE_STABLE_RATE,
    Cell,
    Probabilities,
    cell_probabilities,
    late_extra,
    probabilities,
)
from bench.canary.counters import Counters, use_engine
from bench.canary.modes import Mode, modes_for, phases_of, simulate_rollout
from bench.canary.queries import World
from bench.canary.stacks import stack_slos
from bench.recording import (
    Evaluations,
)
from delivery.stack import go_seconds
from slo.model import ResolvedSlo

STABLE_HISTORY_SECONDS = 86400  # the stable pods' counters hold a day of traffic at the start
BATCH = 1000


def sample_world(rng: np.random.Generator, runs: int, cell: Cell, canary_p: Probabilities,
                 stable_p: Probabilities, scrape: float, horizon: float, stable_rate: float,
                 gate_start: float, outage: bool = True,
                 late: traffic.Late | None = None) -> World:
    """One batch of runs of a cell: the canary pod starts with the rollout, its first scrape
    and the evidence group's evaluations at random phases; stable's pod has a day of counts.
    ``outage=False`` draws the cell's outage but leaves Prometheus up: from the same generator
    state it gives the same traffic as the outage world, its pair. ``late``: the canary's late
    regression (its extra draws have their own generator, so the rest is the same draw for
    draw)."""
    attempts = int(horizon // scrape) + 3
    canary_t0 = rng.uniform(0, scrape, runs)
    eval_phase = rng.uniform(0, scrape, runs)
    lead = 3  # stable's scrapes before the rollout: the first steps have a sample before them
    stable_t0 = rng.uniform(0, scrape, runs) - lead * scrape
    down = np.full((runs, 2), np.nan)
    if cell.outage:
        start = gate_start + rng.uniform(30, 150, runs)
        if outage:
            down = np.stack([start, start + cell.outage], axis=1)
    crashes = downtime = None
    if cell.restart == "once":
        crashes = (gate_start + rng.uniform(30, 270, runs))[:, None]
    elif cell.restart == "5m":
        first = rng.uniform(60, 360, runs)
        crashes = first[:, None] + 300.0 * np.arange(int(horizon // 300) + 1)[None, :]
    if crashes is not None:
        downtime = rng.uniform(5, 25, crashes.shape)
    variation = traffic.Variation(icc=cell.icc, burst=cell.burst)
    canary = traffic.pod(
        rng, canary_t0, scrape, attempts, np.zeros(runs), cell.rate / 60, canary_p.e,
        canary_p.s, variation=variation, crashes=crashes, downtime=downtime,
        lazy_errors=cell.lazy, cold_start=cell.cold, outage=down, late=late)
    day = stable_rate / 60 * STABLE_HISTORY_SECONDS
    stable = traffic.pod(
        rng, stable_t0, scrape, attempts + lead, stable_t0 - scrape, stable_rate / 60,
        stable_p.e, stable_p.s, variation=variation if cell.vary_stable else traffic.INDEPENDENT,
        outage=down, history=(day, day * stable_p.e, day * stable_p.s))
    evaluations = Evaluations(
        t=eval_phase[:, None] + scrape * np.arange(attempts)[None, :], done=np.ones(
            (runs, attempts), dtype=bool))
    with np.errstate(invalid="ignore"):
        evaluations.done &= ~((evaluations.t >= down[:, :1]) & (evaluations.t < down[:, 1:2]))
    reference = None
    if not cell.restart and not cell.outage:
        reference = Counters(t0=canary_t0, step=scrape, values=canary.values)
    return World([canary], [stable], evaluations, down, reference)


def late_regression(rng: np.random.Generator, mode: Mode, slos: list[ResolvedSlo], runs: int,
                    cell: Cell, canary_p: Probabilities, stable_p: Probabilities, scrape: float,
                    horizon: float, stable_rate: float, gate_start: float,
                    late_rng: np.random.Generator) -> traffic.Late:
    """A late cell's regression for the batch that ``sample_world(rng, runs, ...)`` draws next.
    It starts when the rollout sets the cell's weight, which depends on the outcome so far: the
    same runs are simulated first without it (from a copy of ``rng``: the same draws), to learn
    when each sets the weight; the traffic before then is the same draw for draw with it
    (``traffic.Late``), so the rollout sets the weight at the same moments."""
    healthy = sample_world(copy.deepcopy(rng), runs, cell, canary_p, stable_p, scrape, horizon,
                           stable_rate, gate_start)
    set_at: dict[float, np.ndarray] = {}
    simulate_rollout(mode, phases_of(mode, healthy), set_at)
    extra = late_extra(slos, cell)
    return traffic.Late(set_at[cell.late_weight], extra.e, extra.s, late_rng)


@dataclass
class CellResult:
    stack: str
    service: str
    cell: Cell
    runs: int
    outcomes: dict[str, np.ndarray]  # mode label -> outcome per run
    times: dict[str, np.ndarray]  # seconds
    first_gate: dict[str, np.ndarray]
    errors: dict[str, int]
    seconds: float
    down: np.ndarray | None = None  # (runs, 2): when Prometheus was away, NaN: never
    # outage cells: the new judge's outcome on the same traffic with Prometheus up throughout
    paired: np.ndarray | None = None
    # late cells: when the rollout set the cell's late weight (inf: never), and the next one
    late_start: np.ndarray | None = None
    late_next: np.ndarray | None = None


class _Rollouts(NamedTuple):
    """One mode's rollouts of a batch (``simulate_rollout``'s results)."""

    outcome: np.ndarray
    when: np.ndarray  # seconds
    first_gate: np.ndarray
    errors: np.ndarray  # [error measurements]


def simulate_cell(stack_name: str, service: str, cell: Cell, runs: int,
                  seed: Sequence[int]) -> CellResult:
    """The cell's runs, in batches of ``BATCH``: each batch's world (a late cell's regression
    learnt first; an outage cell's twin with Prometheus up judged by the new judge), then each
    mode's rollout on it."""
    started = time.perf_counter()
    stack, slos = stack_slos(stack_name)
    modes = modes_for(stack_name, service, cell.warm_up)
    scrape = float(go_seconds(stack.prometheus.scrape_interval))
    rng = np.random.default_rng(np.random.SeedSequence(list(seed)))
    canary_p = cell_probabilities(slos[service], cell)
    stable_p = probabilities(slos[service], cell.stable_m)
    stable_rate = cell.rate * cell.stable_traffic if cell.kind != "idle" else IDLE_STABLE_RATE
    horizon_seconds = max(m.horizon * m.grid for m in modes)
    gate_start = modes[0].first_gate_start()
    per_mode: dict[str, list[_Rollouts]] = {m.label: [] for m in modes}  # batch by batch
    downs = []
    paired = []
    late_start: list[np.ndarray] = []
    late_next: list[np.ndarray] = []
    done = 0
    while done < runs:
        n = min(BATCH, runs - done)
        twin = copy.deepcopy(rng) if cell.outage else None  # the same draws, Prometheus up
        late = None
        if cell.late_weight:
            late = late_regression(
                rng, modes[0], slos[service], n, cell, canary_p, stable_p, scrape,
                horizon_seconds, stable_rate, gate_start,
                np.random.default_rng(np.random.SeedSequence([*seed, 19, done])))
        world = sample_world(rng, n, cell, canary_p, stable_p, scrape, horizon_seconds,
                             stable_rate, gate_start, late=late)
        downs.append(world.down)
        if twin is not None:
            pair = sample_world(twin, n, cell, canary_p, stable_p, scrape, horizon_seconds,
                                stable_rate, gate_start, outage=False)
            paired.append(simulate_rollout(modes[0], phases_of(modes[0], pair))[0])
        for mode in modes:
            rollouts, weights = _rollouts(mode, world, cell, n, reference=mode is not modes[0])
            if late is not None and mode is modes[0]:
                late_start.append(late.start)
                late_next.append(_next_weight(cell, late, weights, n))
            per_mode[mode.label].append(rollouts)
        done += n
    return CellResult(
        stack=stack_name, service=service, cell=cell, runs=runs,
        outcomes={k: np.concatenate([b.outcome for b in v]) for k, v in per_mode.items()},
        times={k: np.concatenate([b.when for b in v]) for k, v in per_mode.items()},
        first_gate={k: np.concatenate([b.first_gate for b in v]) for k, v in per_mode.items()},
        errors={k: sum(int(b.errors[0]) for b in v) for k, v in per_mode.items()},
        seconds=time.perf_counter() - started, down=np.concatenate(downs),
        paired=np.concatenate(paired) if paired else None,
        late_start=np.concatenate(late_start) if late_start else None,
        late_next=np.concatenate(late_next) if late_next else None,
    )


def _rollouts(mode: Mode, world: World, cell: Cell, runs: int, reference: bool
              ) -> tuple[_Rollouts, dict[float, np.ndarray]]:
    """One mode's rollouts on a batch's world, and when each run set each weight. The reference
    is not simulated (undecided, no times, no errors) where it has no counters to read or on a
    real-traffic cell."""
    weights: dict[float, np.ndarray] = {}
    if reference and (world.reference is None or cell.condition):
        never = np.full(runs, np.nan)
        return _Rollouts(np.full(runs, UNDECIDED), never, never, np.array([0])), weights
    return _Rollouts(*simulate_rollout(mode, phases_of(mode, world), weights)), weights


def _next_weight(cell: Cell, late: traffic.Late, weights: dict[float, np.ndarray],
                 runs: int) -> np.ndarray:
    """When each run set the weight after the cell's late one (inf: never, or none); it set the
    late one itself when the regression started."""
    # the same rollout up to the weight: it sets it at the same moments
    if not np.array_equal(weights[cell.late_weight], late.start):
        raise RuntimeError("the late regression changed the rollout before it")
    later = [w for w in weights if w > cell.late_weight]
    return weights[min(later)] if later else np.full(runs, np.inf)


def _task(args: tuple[int, str, str, Cell, int, tuple[int, ...]]) -> CellResult:
    engine, stack_name, service, cell, runs, seed = args
    use_engine(engine)  # worker processes do not share the parent's globals
    return simulate_cell(stack_name, service, cell, runs, seed)
