"""What the rendered queries select, and their arithmetic: the SLO's series, one batch of
simulated runs (``World``), the gate's recorded evidence, the outage metric and the
reference templates' queries."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bench import recording
from bench.canary import counters
from bench.canary.counters import Counters, extrapolated_sum
from bench.recording import (
    Evaluations,
    Scraped,
    Selection,
    _last_true,
    hash_steps,
    others_steps,
    window_sums,
)
from bench.reference_templates import canary_query
from bench.traffic import COUNT, ERR, FAST, OK
from delivery import evidence as evidence_rules
from delivery import judge
from slo import durations
from slo.conventions import CANARY_EVIDENCE
from slo.model import Events, RatioEvents, ResolvedSlo
from slo.promql import Selector

# ---- what the rendered queries select, and their arithmetic ---------------------------------

# Synthetic series per pod (bench/traffic.py): 2xx and 5xx request counters, the histogram's
# _count and its bucket at the latency threshold.


@dataclass(frozen=True)
class SloSeries:
    """Which synthetic series an SLO's selectors pick: total, and bad or good ones."""

    total: tuple[str, ...]
    bad: tuple[str, ...] | None
    good: tuple[str, ...] | None
    latency: bool


def _series_of(selector: Selector) -> tuple[str, ...]:
    codes = [m for m in selector.matchers if m.name == "code"]
    if selector.metric == "http_requests_total":
        if not codes:
            return (OK, ERR)
        (code,) = codes
        if (code.op, code.value) == ("=~", "5.."):
            return (ERR,)
        if (code.op, code.value) == ("!~", "5.."):
            return (OK,)
    elif selector.metric.endswith("_count") and not codes:
        return (COUNT,)
    elif selector.metric.endswith("_bucket") and any(m.name == "le" for m in selector.matchers):
        return (FAST,)
    raise ValueError(f"the benchmark has no synthetic series for {selector.render()}")


def slo_series(events: Events) -> SloSeries:
    if not isinstance(events, RatioEvents):
        raise ValueError(f"cannot simulate {type(events).__name__}")
    return SloSeries(
        total=_series_of(events.total_selector),
        bad=_series_of(events.bad_selector) if events.bad_selector else None,
        good=_series_of(events.good_selector) if events.good_selector else None,
        latency=events.is_latency,
    )


def _seconds(text: str) -> float:
    return float(durations.parse(text))


def _bad_count(
    s: SloSeries, c: Counters, t: np.ndarray, window: float, total: np.ndarray,
    reader: Callable[..., tuple[np.ndarray, np.ndarray]],
) -> np.ndarray:
    if s.bad is not None:
        bad, present = reader(c, s.bad, t, window)
        return np.where(present, bad, 0.0)  # ... or vector(0)
    assert s.good is not None
    good, present = reader(c, s.good, t, window)
    return total - np.where(present, good, 0.0)  # total - (good or vector(0))


@dataclass
class World:
    """One batch of runs: the canary's and stable's pods as scraped, the evidence group's
    evaluations, when Prometheus was down (runs, 2: [start, end), NaN: never), and, where the
    canary's counters neither reset nor miss scrapes, the same counters for the reference."""

    canary: list[Scraped]
    stable: list[Scraped]
    evaluations: Evaluations
    down: np.ndarray
    reference: Counters | None = None
    _evidence: dict[Any, tuple[np.ndarray, list[np.ndarray]]] = field(default_factory=dict)

    def is_down(self, t: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore"):
            return (t >= self.down[:, :1]) & (t < self.down[:, 1:2])


@dataclass(frozen=True)
class OutageQuery:
    """The background's ``prometheus-outage`` metric: the largest gap the evidence group
    recorded in the last ``seen`` seconds (``delivery.analysis.outage_metric``)."""

    seen: float
    step: float  # the group's interval

    def measured(self, world: World, t: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        ev = world.evaluations
        gap = recording.gaps(ev)
        recorded = ev.done & ~np.isinf(gap)
        k = np.floor((t - ev.t[:, :1]) / self.step).astype(np.int64)
        best = np.full(t.shape, -np.inf)
        for back in range(int(self.seen // self.step) + 2):
            i = k - back
            inside = (i >= 0) & (i < ev.t.shape[1])
            ic = np.clip(i, 0, ev.t.shape[1] - 1)
            te = np.take_along_axis(ev.t, ic, axis=1)
            ok = inside & (te <= t) & (te > t - self.seen) & np.take_along_axis(recorded, ic, 1)
            best = np.where(ok, np.maximum(best, np.take_along_axis(gap, ic, axis=1)), best)
        present = best > -np.inf
        return present, [np.where(present, best, 0.0)]


@dataclass(frozen=True)
class RecordedGate:
    """A gate whose rendered query reads the recorded evidence, and how its rule group (the
    rendered one: ``delivery.canary.evidence_group``) records it."""

    gate: judge.Gate
    series: SloSeries
    step: float  # the group's interval: the scrape interval
    memory: float
    window: float
    warm_up: float | None
    settle: float = 0.0
    recent: float = 0.0  # the span the ``recent`` statistic reads back
    restart_every: float = float(judge.RESTART_SECONDS)  # seconds between restart points

    @property
    def selection(self) -> Selection:
        return Selection(self.series.total, self.series.bad, self.series.good)

    def records(self, world: World) -> dict[tuple[str, str, str], tuple[np.ndarray, np.ndarray]]:
        """Every series the group records for this gate at every evaluation, keyed by (record,
        hash: "canary" or "stable", evidence element or ""): (present, value)."""
        ev, closed = world.evaluations, counters.ENGINE.closed
        own = hash_steps(world.canary, self.selection, ev, self.memory, self.warm_up, closed,
                         self.settle)
        stable = hash_steps(world.stable, self.selection, ev, self.memory, self.warm_up, closed,
                            self.settle)
        others = others_steps(own, [stable])
        out: dict[tuple[str, str, str], tuple[np.ndarray, np.ndarray]] = {}
        for hash_, steps, is_others in (("canary", own, False), ("stable", stable, False),
                                        ("canary", others, True)):
            for part in ("requests", "errors", "squares"):
                out[(evidence_rules.step_record(part, is_others), hash_, "")] = (
                    steps.present, getattr(steps, part))
        sums = {False: window_sums(own, ev, self.window, closed),
                True: window_sums(others, ev, self.window, closed)}
        for is_others, total in sums.items():
            for part in evidence_rules.PARTS:
                out[(evidence_rules.sum_record(part, is_others), "canary", "")] = (
                    total.present, getattr(total, part))
        run = recording.running(self.gate, own, sums[True], ev, self.window, self.recent,
                                self.restart_every, self.step, closed)
        for name, values in (("canary", run.canary), ("judged", run.judged)):
            out[(evidence_rules.RUNNING[name], "canary", "")] = (run.present, values)
        out[(evidence_rules.RESTARTS, "canary", "")] = (run.restarted, run.restart)
        present, vector = recording.evidence(self.gate, sums[False], sums[True], run.cusum,
                                             run.recent)
        for name, v in zip(judge.EVIDENCE, vector, strict=True):
            out[(CANARY_EVIDENCE, "canary", name)] = (present, v)
        return out

    def recorded(self, world: World) -> tuple[np.ndarray, list[np.ndarray]]:
        """The evidence vector at every evaluation of the group: (present, EVIDENCE arrays)."""
        key = (self.gate.name, self.warm_up)
        if key not in world._evidence:
            records = self.records(world)
            present = records[(CANARY_EVIDENCE, "canary", judge.EVIDENCE[0])][0]
            world._evidence[key] = (present, [records[(CANARY_EVIDENCE, "canary", name)][1]
                                              for name in judge.EVIDENCE])
        return world._evidence[key]

    def measured(self, world: World, t: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        """What the instant query returns at times ``t`` (runs x times): the last evaluation's
        evidence within the lookback (a stale marker where the evidence went away)."""
        present, vector = self.recorded(world)
        ev = world.evaluations
        step = ev.t[:, 1:2] - ev.t[:, :1]
        index = np.floor((t - ev.t[:, :1]) / step).astype(np.int64)
        index = np.minimum(index, ev.t.shape[1] - 1)
        k = _last_true(ev.done, index)
        at = np.take_along_axis(ev.t, np.clip(k, 0, None), axis=1)
        seen = (k >= 0) & np.take_along_axis(present, np.clip(k, 0, None), axis=1) & (
            at > t - recording.LOOKBACK)
        out = [np.where(seen, np.take_along_axis(v, np.clip(k, 0, None), axis=1), np.nan)
               for v in vector]
        return seen, out


@dataclass(frozen=True)
class ReferenceQuery:
    """84bbf00's query: the canary's error ratio over a window, with a minimum of requests."""

    slo: ResolvedSlo
    series: SloSeries
    window: float
    min_requests: float

    @classmethod
    def parse(cls, text: str, slo: ResolvedSlo) -> ReferenceQuery:
        found = re.search(r"rate\([^\[]*\[(\w+)\]\)\).*>= (\d+)\)$", text)
        if not found:
            raise ValueError("not a reference query")
        if text != canary_query(slo, found.group(1), int(found.group(2))):
            raise ValueError(f"the reference query of {slo.slo.name} is not canary_query()'s")
        return cls(slo, slo_series(slo.events), _seconds(found.group(1)), float(found.group(2)))


def reference_evidence(
    q: ReferenceQuery, canary: Counters, t: np.ndarray
) -> tuple[np.ndarray, list[np.ndarray]]:
    s = q.series
    total, total_present = extrapolated_sum(canary, s.total, t, q.window)
    increase, _ = extrapolated_sum(canary, s.total, t, q.window, is_rate=False)
    bad = _bad_count(s, canary, t, q.window, total, extrapolated_sum)
    non_empty = total_present & (total > 0) & (increase >= q.min_requests)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(non_empty, bad / np.where(non_empty, total, 1.0), np.nan)
    return non_empty, [ratio]
