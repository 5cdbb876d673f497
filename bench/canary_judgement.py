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
"""

from __future__ import annotations

import argparse
import copy
import datetime
import math
import os
import platform
import re
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from scipy.stats import beta as beta_distribution  # type: ignore[import-untyped]

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import recording, traffic  # noqa: E402
from bench.recording import (  # noqa: E402
    Evaluations,
    Scraped,
    Selection,
    _last_true,
    hash_steps,
    others_steps,
    window_sums,
)
from bench.reference_templates import REFERENCE_COMMIT, canary_query, reference_bodies  # noqa: E402
from bench.traffic import COUNT, ERR, FAST, OK  # noqa: E402
from delivery import evidence as evidence_rules  # noqa: E402
from delivery import judge, oc  # noqa: E402
from delivery.analysis import outage_metric, outage_view  # noqa: E402
from delivery.canary import bodies, evidence_group  # noqa: E402
from delivery.plan import rate_needed  # noqa: E402
from delivery.stack import StackConfig, go_seconds, load_stack_file  # noqa: E402
from slo import durations  # noqa: E402
from slo.conventions import CANARY_EVIDENCE  # noqa: E402
from slo.loader import load_catalogue  # noqa: E402
from slo.model import Events, RatioEvents, ResolvedSlo, resolve_all  # noqa: E402
from slo.promql import Selector  # noqa: E402
from slo.rules import by_service  # noqa: E402

CATALOGUE_SERVICES = ("orchestrator", "agent-runner", "api-gateway")
STACKS = ("dev", "prod")
RATES = (20, 50, 100, 300, 1000, 5000)  # canary requests per minute
MULTIPLES = (0, 0.5, 1, 2, 5, 10, 50)  # canary error ratio, x budget
STABLE_MULTIPLE = 0.5
INCIDENT_MULTIPLE = 10
ONE_STREAM_MULTIPLES = (10, 50)  # a regression in 5xx alone, or in latency alone
STABLE_TRAFFIC = 9  # stable pods' requests per canary request
IDLE_STABLE_RATE = 180  # requests/minute of the stable pods beside an idle canary
FREEZE_BUDGET_REMAINING = 0.5  # what prod's budget-freeze query is taken to return
MAX_OUTAGE = 1200.0  # seconds the horizon leaves for gates prolonged by Error measurements
STABLE_HISTORY_SECONDS = 86400  # the stable pods' counters hold a day of traffic at the start
BATCH = 1000
RESULTS = ROOT / "bench" / "results" / "canary_judgement.txt"

# Measurement and metric phases, in Argo's order from best to worst (analysisStatusOrder).
SUCCESSFUL, INCONCLUSIVE, ERROR, FAILED = 0, 1, 2, 3
RUNNING = -1
PHASE_NAMES = {SUCCESSFUL: "Successful", INCONCLUSIVE: "Inconclusive", ERROR: "Error",
               FAILED: "Failed", RUNNING: "Running"}
# Rollout outcomes, by severity at a tie.
PROMOTE, PAUSE, ABORT = 0, 1, 2
UNDECIDED = -1
OUTCOME_NAMES = {PROMOTE: "promote", PAUSE: "pause", ABORT: "abort", UNDECIDED: "undecided"}
NEVER = np.iinfo(np.int64).max // 4


# ---- the expr-lang subset of the rendered conditions ----------------------------------------

_TOKEN = re.compile(
    r"\s*(?:(?P<num>(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?)"
    r"|(?P<op>&&|\|\||==|!=|<=|>=|<|>|!|\(|\)|\[|\]|,|-)"
    r"|(?P<name>[A-Za-z_][A-Za-z_0-9]*))"
)
_COMPARE = {
    "==": np.equal, "!=": np.not_equal, "<": np.less, "<=": np.less_equal,
    ">": np.greater, ">=": np.greater_equal,
}


class Env(NamedTuple):
    """What a condition sees: ``result`` as arrays of its elements and its length per cell."""

    values: Sequence[np.ndarray]
    length: np.ndarray


Evaluator = Callable[[Env], tuple[Any, Any]]  # -> (value, evaluation error), elementwise


class Condition:
    """One rendered condition, parsed once, evaluated on whole arrays of measurements.

    Supported: ``&&``/``and``, ``||``/``or``, ``!``/``not``, unary ``-``, ``== != < <= > >=``,
    numbers, ``true``/``false``, ``len(result)``, ``result[<int>]``, ``isNaN(<number>)``, with
    expr-lang's precedence (``!`` binds tighter than comparisons, ``&&`` tighter than ``||``)
    and short-circuit evaluation: ``result[i]`` past the end is an evaluation error (Argo: the
    measurement is Error) unless the left side of ``&&``/``||`` already decided.
    """

    def __init__(self, text: str):
        self.text = text
        self._tokens = self._tokenize(text)
        self._pos = 0
        kind, self._fn = self._or()
        if self._pos != len(self._tokens):
            raise ValueError(f"unexpected {self._tokens[self._pos][1]!r} in {text!r}")
        if kind != "bool":
            raise ValueError(f"condition {text!r} is not boolean")

    @staticmethod
    def _tokenize(text: str) -> list[tuple[str, str]]:
        tokens, pos = [], 0
        while pos < len(text):
            if text[pos:].strip() == "":
                break
            match = _TOKEN.match(text, pos)
            if not match:
                raise ValueError(f"cannot read {text[pos:]!r} in {text!r}")
            kind = match.lastgroup
            assert kind is not None
            value = match.group(kind)
            if kind == "name" and value in ("and", "or", "not"):
                kind, value = "op", {"and": "&&", "or": "||", "not": "!"}[value]
            tokens.append((kind, value))
            pos = match.end()
        return tokens

    def _peek(self) -> tuple[str, str] | None:
        return self._tokens[self._pos] if self._pos < len(self._tokens) else None

    def _take(self, value: str | None = None) -> tuple[str, str]:
        token = self._peek()
        if token is None or (value is not None and token[1] != value):
            raise ValueError(f"expected {value or 'more'} in {self.text!r}")
        self._pos += 1
        return token

    def _or(self) -> tuple[str, Evaluator]:
        kind, left = self._and()
        while self._peek() == ("op", "||"):
            self._take()
            right_kind, right = self._and()
            if kind != "bool" or right_kind != "bool":
                raise ValueError(f"|| needs booleans in {self.text!r}")
            left = self._logical(left, right, is_and=False)
        return kind, left

    def _and(self) -> tuple[str, Evaluator]:
        kind, left = self._compare()
        while self._peek() == ("op", "&&"):
            self._take()
            right_kind, right = self._compare()
            if kind != "bool" or right_kind != "bool":
                raise ValueError(f"&& needs booleans in {self.text!r}")
            left = self._logical(left, right, is_and=True)
        return kind, left

    @staticmethod
    def _logical(left: Evaluator, right: Evaluator, is_and: bool) -> Evaluator:
        def run(env: Env) -> tuple[Any, Any]:
            lv, le = left(env)
            rv, re_ = right(env)
            lv = np.asarray(lv, dtype=bool)
            rv = np.asarray(rv, dtype=bool)
            decided = ~lv if is_and else lv  # the right side is not evaluated there
            error = le | (~np.asarray(le) & ~decided & re_)
            return (lv & rv) if is_and else (lv | rv), error

        return run

    def _compare(self) -> tuple[str, Evaluator]:
        kind, left = self._unary()
        token = self._peek()
        if token and token[0] == "op" and token[1] in _COMPARE:
            self._take()
            right_kind, right = self._unary()
            if kind != "num" or right_kind != "num":
                raise ValueError(f"{token[1]} needs numbers in {self.text!r}")
            op = _COMPARE[token[1]]

            def run(env: Env) -> tuple[Any, Any]:
                lv, le = left(env)
                rv, re_ = right(env)
                with np.errstate(invalid="ignore"):
                    return op(lv, rv), le | re_

            return "bool", run
        return kind, left

    def _unary(self) -> tuple[str, Evaluator]:
        token = self._peek()
        if token == ("op", "!"):
            self._take()
            kind, inner = self._unary()
            if kind != "bool":
                raise ValueError(f"! needs a boolean in {self.text!r}")
            return "bool", lambda env: (lambda v, e: (~np.asarray(v, dtype=bool), e))(*inner(env))
        if token == ("op", "-"):
            self._take()
            kind, inner = self._unary()
            if kind != "num":
                raise ValueError(f"- needs a number in {self.text!r}")
            return "num", lambda env: (lambda v, e: (-np.asarray(v), e))(*inner(env))
        return self._primary()

    def _primary(self) -> tuple[str, Evaluator]:
        kind, value = self._take()
        if kind == "num":
            number = float(value)
            return "num", lambda env: (number, False)
        if kind == "op" and value == "(":
            inner = self._or()
            self._take(")")
            return inner
        if kind != "name":
            raise ValueError(f"unexpected {value!r} in {self.text!r}")
        if value in ("true", "false"):
            truth = value == "true"
            return "bool", lambda env: (truth, False)
        if value == "result":
            self._take("[")
            index_kind, index = self._take()
            if index_kind != "num" or not index.isdigit():
                raise ValueError(f"result[...] needs a whole number in {self.text!r}")
            self._take("]")
            i = int(index)

            def element(env: Env) -> tuple[Any, Any]:
                value = env.values[i] if i < len(env.values) else np.nan
                return value, env.length <= i

            return "num", element
        if value == "len":
            self._take("(")
            if self._take() != ("name", "result"):
                raise ValueError(f"len() takes result only in {self.text!r}")
            self._take(")")
            return "num", lambda env: (env.length, False)
        if value == "isNaN":
            self._take("(")
            arg_kind, arg = self._or()
            self._take(")")
            if arg_kind != "num":
                raise ValueError(f"isNaN needs a number in {self.text!r}")
            return "bool", lambda env: (lambda v, e: (np.isnan(v), e))(*arg(env))
        raise ValueError(f"{value!r} is not supported in {self.text!r}")

    def evaluate(self, env: Env) -> tuple[np.ndarray, np.ndarray]:
        """(truth, evaluation error) per element, broadcast to the shape of ``env.length``."""
        value, error = self._fn(env)
        shape = np.shape(env.length)
        return (
            np.broadcast_to(np.asarray(value, dtype=bool), shape),
            np.broadcast_to(np.asarray(error, dtype=bool), shape),
        )


# ---- Prometheus arithmetic on regularly scraped counters -------------------------------------


@dataclass(frozen=True)
class Engine:
    """Where the PromQL engine's versions differ, as far as these queries go."""

    major: int

    @property
    def closed(self) -> bool:
        """Ranges include their left edge (2.x); 3.x made them left-open."""
        return self.major < 3

    def first_index(self, edge: np.ndarray, step: float) -> np.ndarray:
        """Index of the first grid point (multiples of ``step``) inside a range from ``edge``."""
        if self.closed:
            return np.ceil(edge / step).astype(np.int64)
        return np.floor(edge / step).astype(np.int64) + 1


ENGINE = Engine(3)  # what the arithmetic below copies; use_engine() switches


def use_engine(major: int) -> None:
    global ENGINE
    ENGINE = Engine(major)


@dataclass
class Counters:
    """Counter samples of one pod group: sample ``k`` of every run at ``t0 + k * step`` seconds.

    ``values[name]`` is (runs, samples); NaN where the series does not exist (yet).
    """

    t0: np.ndarray
    step: float
    values: dict[str, np.ndarray]
    _first: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def samples(self) -> int:
        return int(next(iter(self.values.values())).shape[1])

    def first_present(self, name: str) -> np.ndarray:
        """Index of each run's first sample of ``name`` (``samples`` when it never appears)."""
        if name not in self._first:
            present = ~np.isnan(self.values[name])
            first = np.argmax(present, axis=1)
            self._first[name] = np.where(present.any(axis=1), first, self.samples)
        return self._first[name]


def _rows(a: np.ndarray, t: np.ndarray) -> np.ndarray:
    return a.reshape((-1,) + (1,) * (t.ndim - 1))


def extrapolated_sum(
    c: Counters, names: Sequence[str], t: np.ndarray, window: float, is_rate: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """``sum(rate(sel[window]))`` (or ``increase``) at times ``t``: Prometheus' extrapolatedRate
    per series over the range ending at ``t``, then summed."""
    t0 = _rows(c.t0, t)
    hi = np.floor((t - t0) / c.step).astype(np.int64)
    lo = ENGINE.first_index(t - window - t0, c.step)
    hi = np.minimum(hi, c.samples - 1)
    total = np.zeros(t.shape)
    present = np.zeros(t.shape, dtype=bool)
    runs = len(c.t0)
    for name in names:
        first = np.maximum(lo, _rows(c.first_present(name), t))
        n = hi - first + 1
        ok = n >= 2
        a = np.clip(first, 0, c.samples - 1).reshape(runs, -1)
        b = np.clip(hi, 0, c.samples - 1).reshape(runs, -1)
        v1 = np.take_along_axis(c.values[name], a, axis=1).reshape(t.shape)
        v2 = np.take_along_axis(c.values[name], b, axis=1).reshape(t.shape)
        with np.errstate(invalid="ignore", divide="ignore"):
            delta = v2 - v1  # no counter resets in these series
            t1 = t0 + first * c.step
            t2 = t0 + hi * c.step
            to_start = t1 - (t - window)
            to_end = t - t2
            sampled = t2 - t1
            average = sampled / (n - 1)
            to_zero = sampled * (v1 / delta)
            zero_point = (delta > 0) & (v1 >= 0)
            threshold = average * 1.1
            if ENGINE.closed:  # 2.x: the zero point shortens the distance before the 1.1x test
                to_start = np.where(zero_point & (to_zero < to_start), to_zero, to_start)
                to_start = np.where(to_start < threshold, to_start, average / 2)
            else:  # 3.x: after it
                to_start = np.where(to_start < threshold, to_start, average / 2)
                to_start = np.where(zero_point & (to_zero < to_start), to_zero, to_start)
            span = sampled + to_start + np.where(to_end < threshold, to_end, average / 2)
            value = delta * (span / sampled)
            if is_rate:
                value = value / window
        total += np.where(ok, value, 0.0)
        present |= ok
    return total, present


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
        ev, closed = world.evaluations, ENGINE.closed
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


# ---- Argo Rollouts v1.9 ------------------------------------------------------------------------


@dataclass(frozen=True)
class MetricSpec:
    name: str
    interval: float
    initial_delay: float  # seconds from the run's start to the first measurement
    count: int | None
    success: Condition | None
    failure: Condition | None
    failure_limit: int
    inconclusive_limit: int
    consecutive_error_limit: int
    consecutive_success_limit: int
    dry_run: bool
    query: str

    @classmethod
    def from_rendered(cls, metric: dict[str, Any], dry_run: set[str]) -> MetricSpec:
        def condition(key: str) -> Condition | None:
            return Condition(metric[key]) if metric.get(key) else None

        return cls(
            name=metric["name"],
            interval=float(go_seconds(metric["interval"])) if "interval" in metric else 0.0,
            initial_delay=float(go_seconds(metric.get("initialDelay", "0s"))),
            count=metric.get("count"),
            success=condition("successCondition"),
            failure=condition("failureCondition"),
            failure_limit=metric.get("failureLimit", 0),
            inconclusive_limit=metric.get("inconclusiveLimit", 0),
            consecutive_error_limit=metric.get("consecutiveErrorLimit", 4),  # Argo's default
            consecutive_success_limit=metric.get("consecutiveSuccessLimit", 0),
            dry_run=metric["name"] in dry_run,
            query=metric["provider"]["prometheus"]["query"],
        )

    def measure(self, env: Env) -> np.ndarray:
        """Phase of each measurement (utils/evaluate.EvaluateResult)."""
        shape = np.shape(env.length)
        error = np.zeros(shape, dtype=bool)
        succeeded = np.zeros(shape, dtype=bool)
        failed = np.zeros(shape, dtype=bool)
        if self.success:
            succeeded, e = self.success.evaluate(env)
            error |= e
        if self.failure:
            failed, e = self.failure.evaluate(env)
            error |= e
        if self.success and not self.failure:
            failed = ~succeeded
        elif self.failure and not self.success:
            succeeded = ~failed
        elif not self.success and not self.failure:
            succeeded = np.ones(shape, dtype=bool)
        phase = np.where(failed, FAILED, np.where(succeeded, SUCCESSFUL, INCONCLUSIVE))
        return np.where(error, ERROR, phase).astype(np.int8)


def _run_length(mask: np.ndarray) -> np.ndarray:
    """Length of the run of True ending at each position (along axis 1)."""
    n = np.arange(mask.shape[1])
    last_false = np.maximum.accumulate(np.where(mask, -1, n), axis=1)
    return n - last_false


def metric_outcome(
    spec: MetricSpec, phases: np.ndarray, start: np.ndarray, every: int, horizon: int,
    delay: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """When (grid index) and how one metric completes, measuring from ``start`` plus ``delay``
    (its ``initialDelay``) every ``every`` grid steps (analysis.go: assessMetricStatus,
    assessMetricFailureInconclusiveOrError)."""
    runs = phases.shape[0]
    n_max = horizon // every + 1  # an Error measurement does not count toward ``count``
    at = start[:, None] + delay + every * np.arange(n_max)[None, :]
    taken = at < horizon
    p = np.take_along_axis(phases, np.clip(at, 0, horizon - 1), axis=1)
    p = np.where(taken, p, -9)
    is_error = p == ERROR
    counted = np.cumsum(taken & ~is_error, axis=1)
    failed = np.cumsum(p == FAILED, axis=1)
    inconclusive = np.cumsum(p == INCONCLUSIVE, axis=1)
    errors_in_a_row = _run_length(is_error)
    successes_in_a_row = _run_length(p == SUCCESSFUL)

    too_many_failed = (failed > spec.failure_limit) if spec.failure_limit >= 0 else False
    too_many_inconclusive = inconclusive > spec.inconclusive_limit
    too_many_errors = errors_in_a_row > spec.consecutive_error_limit
    bad = too_many_failed | too_many_inconclusive | too_many_errors
    bad_phase = np.where(too_many_errors, ERROR,
                         np.where(too_many_inconclusive, INCONCLUSIVE, FAILED))
    limit = spec.consecutive_success_limit
    passed = (successes_in_a_row >= limit) if limit > 0 else np.zeros_like(bad)
    if spec.count:
        at_count = counted >= spec.count
        if limit > 0:  # successApplicable; failureApplicable unless failureLimit < 0
            count_phase = INCONCLUSIVE if spec.failure_limit >= 0 else FAILED
        else:
            count_phase = SUCCESSFUL
    else:
        at_count = np.zeros_like(bad)
        count_phase = SUCCESSFUL
    done = taken & (bad | passed | at_count)
    phase = np.where(bad, bad_phase, np.where(passed, SUCCESSFUL, count_phase))
    first = np.argmax(done, axis=1)
    row = np.arange(runs)
    finished = done[row, first]
    end = np.where(finished, at[row, first], NEVER)
    return end, np.where(finished, phase[row, first], RUNNING)


def run_outcome(
    specs: Sequence[MetricSpec], outcomes: Sequence[tuple[np.ndarray, np.ndarray]]
) -> tuple[np.ndarray, np.ndarray]:
    """An AnalysisRun's end and phase from its metrics' (assessRunStatus with terminating)."""
    runs = len(outcomes[0][0])
    bad_end = np.full(runs, NEVER)
    for spec, (end, phase) in zip(specs, outcomes, strict=True):
        if not spec.dry_run:
            bad_end = np.minimum(bad_end, np.where(phase >= INCONCLUSIVE, end, NEVER))
    worst = np.full(runs, RUNNING)
    last_end = np.zeros(runs, dtype=np.int64)
    all_done = np.ones(runs, dtype=bool)
    for spec, (end, phase) in zip(specs, outcomes, strict=True):
        all_done &= phase != RUNNING
        last_end = np.maximum(last_end, end)
        if not spec.dry_run:
            worst = np.maximum(worst, np.where((end == bad_end) & (phase >= INCONCLUSIVE),
                                               phase, RUNNING))
    stopped = bad_end < NEVER
    end = np.where(stopped, bad_end, np.where(all_done, last_end, NEVER))
    phase = np.where(stopped, worst, np.where(all_done, SUCCESSFUL, RUNNING))
    return end, phase


@dataclass(frozen=True)
class Template:
    name: str
    metrics: tuple[MetricSpec, ...]

    @classmethod
    def from_rendered(cls, body: dict[str, Any]) -> Template:
        dry = {d["metricName"] for d in body["spec"].get("dryRun", [])}
        specs = tuple(MetricSpec.from_rendered(m, dry) for m in body["spec"]["metrics"])
        return cls(body["metadata"]["name"], specs)


@dataclass(frozen=True)
class Step:
    kind: str  # "weight", "pause", "manual", "analysis"
    seconds: float = 0.0
    template: str = ""
    weight: float = 0.0  # a "weight" step's setWeight


def rollout_steps(canary: dict[str, Any]) -> tuple[list[Step], str | None]:
    """The rendered strategy.canary: its steps, and the background template (startingStep 0)."""
    steps = []
    for step in canary["steps"]:
        if "setWeight" in step:
            steps.append(Step("weight", weight=float(step["setWeight"])))
        elif "pause" in step:
            duration = step["pause"].get("duration")
            steps.append(Step("pause", go_seconds(duration)) if duration else Step("manual"))
        elif "analysis" in step:
            (template,) = step["analysis"]["templates"]
            steps.append(Step("analysis", template=template["templateName"]))
        else:
            raise ValueError(f"unsupported step {step}")
    background = canary.get("analysis")
    if background is not None:
        if background.get("startingStep", 0) != 0:
            raise ValueError("the benchmark starts the background analysis with the rollout")
        (template,) = background["templates"]
        return steps, template["templateName"]
    return steps, None


# ---- one rollout mode: templates + steps, and how its measurements are computed -------------


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
    return _mode("new judge", steps, background, templates, queries)


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


# ---- traffic -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cell:
    kind: str  # "m", "shared", "idle"
    rate: float  # canary requests per minute
    m: float  # canary's multiple of the budget
    stable_m: float
    stream: str = "both"  # "5xx" or "slow": only that stream at m, the other as stable's
    # real-traffic conditions (bench/traffic.py); the defaults are the plain cells
    restart: str = ""  # "once": the canary's container restarts once mid-gate; "5m": every 5 min
    lazy: bool = True  # the canary's 5xx series is created at its first 5xx (else pre-created)
    icc: float = 0.0  # beta-binomial per-interval variation of the bad requests
    burst: float = 1.0  # mean burst size of the bad requests
    vary_stable: bool = False  # the same variation in stable's requests (else independent)
    cold: int = 0  # failing requests in the canary pod's first minute
    warm_up: str = ""  # the service's warmUp for this cell ("" : the stack file's)
    stable_traffic: float = STABLE_TRAFFIC  # stable's requests per canary request
    outage: float = 0.0  # seconds Prometheus does not answer, mid-gate
    # issue 19's families (``family_cells``): "" for the cells above, else "late", "moderate"
    # or "caught"
    family: str = ""
    slo: str = ""  # m is a multiple of this SLO's budget, on its stream; the other at stable's
    late_weight: float = 0.0  # from the moment the rollout sets this weight ...
    late_m: float = 0.0  # ... the canary's late_stream fails this multiple of the budget
    late_stream: str = "5xx"

    @property
    def condition(self) -> str:
        """The real-traffic condition, "" for a plain cell."""
        parts = []
        if self.slo:
            parts.append(f"burn {self.slo}")
        if self.late_weight:
            parts.append(f"late {self.late_m:g}x {self.late_stream} at {self.late_weight:g}%")
        if self.restart:
            parts.append(f"restart {self.restart} {'lazy' if self.lazy else 'pre-created'}")
        if self.burst > 1:
            parts.append(f"bursts {self.burst:g}")
        if self.icc:
            parts.append(f"icc {self.icc:g}")
        if (self.burst > 1 or self.icc) and self.vary_stable:
            parts.append("both")
        if self.cold:
            parts.append(f"cold {self.cold}")
        if self.warm_up:
            parts.append(f"warmUp {self.warm_up}")
        if self.kind == "shared" and self.stable_traffic != STABLE_TRAFFIC:
            parts.append(f"stable {self.stable_traffic:g}x")
        if self.outage:
            parts.append(f"outage {self.outage:g}s")
        return " ".join(parts)

    @property
    def title(self) -> str:
        if self.kind == "shared":
            base = f"shared {self.m:g}x"
        elif self.kind == "idle":
            base = "idle"
        else:
            base = f"m={self.m:g}" + ("" if self.stream == "both" else f" {self.stream}")
        return f"{base} {self.condition}".strip()


@dataclass(frozen=True)
class Probabilities:
    e: float  # per-request 5xx probability
    s: float  # per-request slow probability


def probabilities(slos: list[ResolvedSlo], m: float, stream: str = "both",
                  other_m: float = STABLE_MULTIPLE) -> Probabilities:
    """Per-request ratios at ``m`` x the tightest budget of each kind; with ``stream`` "5xx" or
    "slow" only that stream is at ``m`` and the other at ``other_m``."""
    gated = judge.gated(slos)
    errors = [s.budget for s in gated if not s.events.is_latency]
    latency = [s.budget for s in gated if s.events.is_latency]
    e_m = other_m if stream == "slow" else m
    s_m = other_m if stream == "5xx" else m
    return Probabilities(
        e=min(e_m * min(errors), 1.0) if errors else 0.0,
        s=min(s_m * min(latency), 1.0) if latency else 0.0,
    )


def cell_probabilities(slos: list[ResolvedSlo], cell: Cell) -> Probabilities:
    """The canary's ratios in a cell: ``probabilities``, or for a cell that burns one SLO
    (``cell.slo``) ``m`` x that SLO's budget on its stream and stable's multiple of the tightest
    budget on the other. The 5xx stream is shared: an availability burn is also a burn of the
    error-rate SLO, at the ratio of their budgets."""
    if not cell.slo:
        return probabilities(slos, cell.m, cell.stream)
    (slo,) = [s for s in judge.gated(slos) if s.slo.name == cell.slo]
    other = probabilities(slos, STABLE_MULTIPLE)
    ratio = min(cell.m * slo.budget, 1.0)
    if slo.events.is_latency:
        return Probabilities(e=other.e, s=ratio)
    return Probabilities(e=ratio, s=other.s)


def late_extra(slos: list[ResolvedSlo], cell: Cell) -> Probabilities:
    """What a late regression adds to the canary's ratios: its stream at ``late_m`` x the
    tightest budget of its kind (``probabilities``), the other stream as before."""
    before = cell_probabilities(slos, cell)
    after = probabilities(slos, cell.late_m, cell.late_stream, other_m=cell.m)
    return Probabilities(e=max(after.e - before.e, 0.0), s=max(after.s - before.s, 0.0))


def one_stream_applies(slos: list[ResolvedSlo]) -> bool:
    """5xx-only and slow-only cells mean something where the service gates both kinds."""
    kinds = {s.events.is_latency for s in judge.gated(slos)}
    return kinds == {True, False}


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


@cache
def _stack(stack_name: str) -> tuple[StackConfig, dict[str, list[ResolvedSlo]]]:
    stack = load_stack_file(ROOT / f"Pulumi.{stack_name}.yaml")
    slos = by_service(resolve_all(load_catalogue(ROOT / stack.catalogue)))
    return stack, slos


@cache
def modes_for(stack_name: str, service: str, warm_up: str = "") -> tuple[Mode, Mode]:
    """The new judge's and the reference's modes; ``warm_up`` overrides the service's warmUp
    in the stack file (the rendered templates and evidence group follow it)."""
    stack, slos = _stack(stack_name)
    if warm_up:
        deployment = stack.services[service].model_copy(update={"warm_up": warm_up})
        stack = stack.model_copy(update={"services": {**stack.services, service: deployment}})
    mine = slos[service]
    namespace = mine[0].service.namespace
    return (
        new_mode(service, namespace, mine, stack),
        reference_mode(service, namespace, mine, stack_name, stack.prometheus.address),
    )


def simulate_cell(stack_name: str, service: str, cell: Cell, runs: int,
                  seed: Sequence[int]) -> CellResult:
    started = time.perf_counter()
    stack, slos = _stack(stack_name)
    modes = modes_for(stack_name, service, cell.warm_up)
    scrape = float(go_seconds(stack.prometheus.scrape_interval))
    rng = np.random.default_rng(np.random.SeedSequence(list(seed)))
    canary_p = cell_probabilities(slos[service], cell)
    stable_p = probabilities(slos[service], cell.stable_m)
    stable_rate = cell.rate * cell.stable_traffic if cell.kind != "idle" else IDLE_STABLE_RATE
    horizon_seconds = max(m.horizon * m.grid for m in modes)
    gate_start = modes[0].first_gate_start()
    outcomes: dict[str, list[np.ndarray]] = {m.label: [] for m in modes}
    times: dict[str, list[np.ndarray]] = {m.label: [] for m in modes}
    gates: dict[str, list[np.ndarray]] = {m.label: [] for m in modes}
    errors = {m.label: 0 for m in modes}
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
            if mode is not modes[0] and (world.reference is None or cell.condition):
                outcome = np.full(n, UNDECIDED)
                when = first_gate = np.full(n, np.nan)
                errs = np.array([0])
            else:
                phases = phases_of(mode, world)
                weights: dict[float, np.ndarray] = {}
                outcome, when, first_gate, errs = simulate_rollout(mode, phases, weights)
                if late is not None and mode is modes[0]:
                    # the same rollout up to the weight: it sets it at the same moments
                    if not np.array_equal(weights[cell.late_weight], late.start):
                        raise RuntimeError("the late regression changed the rollout before it")
                    later = [w for w in weights if w > cell.late_weight]
                    late_start.append(late.start)
                    late_next.append(weights[min(later)] if later else np.full(n, np.inf))
            outcomes[mode.label].append(outcome)
            times[mode.label].append(when)
            gates[mode.label].append(first_gate)
            errors[mode.label] += int(errs[0])
        done += n
    return CellResult(
        stack=stack_name, service=service, cell=cell, runs=runs,
        outcomes={k: np.concatenate(v) for k, v in outcomes.items()},
        times={k: np.concatenate(v) for k, v in times.items()},
        first_gate={k: np.concatenate(v) for k, v in gates.items()},
        errors=errors, seconds=time.perf_counter() - started, down=np.concatenate(downs),
        paired=np.concatenate(paired) if paired else None,
        late_start=np.concatenate(late_start) if late_start else None,
        late_next=np.concatenate(late_next) if late_next else None,
    )


def _task(args: tuple[int, str, str, Cell, int, tuple[int, ...]]) -> CellResult:
    engine, stack_name, service, cell, runs, seed = args
    use_engine(engine)  # worker processes do not share the parent's globals
    return simulate_cell(stack_name, service, cell, runs, seed)


# ---- statistics, report, targets ---------------------------------------------------------------


def clopper_pearson(x: int, n: int) -> tuple[float, float]:
    low = 0.0 if x == 0 else float(beta_distribution.ppf(0.025, x, n - x + 1))
    high = 1.0 if x == n else float(beta_distribution.ppf(0.975, x + 1, n - x))
    return low, high


@dataclass
class Summary:
    n: int
    counts: dict[int, int]
    median_abort: float  # minutes, nan when none
    median_promote: float
    p99_promote: float

    def p(self, outcome: int) -> float:
        return self.counts.get(outcome, 0) / self.n

    def ci(self, outcome: int) -> tuple[float, float]:
        return clopper_pearson(self.counts.get(outcome, 0), self.n)


def summarise(outcome: np.ndarray, when: np.ndarray) -> Summary:
    counts = {k: int((outcome == k).sum()) for k in (PROMOTE, PAUSE, ABORT, UNDECIDED)}
    minutes = when / 60

    def median(k: int) -> float:
        chosen = minutes[outcome == k]
        return float(np.median(chosen)) if len(chosen) else math.nan

    promoted = minutes[outcome == PROMOTE]
    p99 = float(np.quantile(promoted, 0.99)) if len(promoted) else math.nan
    return Summary(len(outcome), counts, median(ABORT), median(PROMOTE), p99)


@cache
def stack_gates(stack_name: str, service: str) -> tuple[judge.Gate, ...]:
    """The service's gates on the stack, each SLO at its own hypotheses (``judge.stack_gates``)."""
    stack, slos = _stack(stack_name)
    return tuple(judge.stack_gates(slos[service], stack, service))


def zone(stack_name: str, service: str, cell: Cell) -> str:
    """``good`` where every enforced gate's SLO sees at most its good ratio, ``bad`` where one
    sees at least its bad ratio (hypotheses per SLO: failBurnRate auto, per kind, per SLO),
    else ``indiff``; shared incidents and idle canaries are their own kinds."""
    if cell.kind != "m":
        return cell.kind
    p = cell_probabilities(_stack(stack_name)[1][service], cell)
    gates = [g for g in stack_gates(stack_name, service) if g.enforcement == "enforce"]
    seen = [(p.s if g.slo.events.is_latency else p.e, g.hypotheses) for g in gates]
    tolerance = 1 + 1e-9
    if all(ratio <= h.good * tolerance for ratio, h in seen):
        return "good"
    if any(ratio * tolerance >= h.bad for ratio, h in seen):
        return "bad"
    return "indiff"


DECIDED_SHARE = 0.99  # the "requests the test needs": by then it has decided in 99% of runs
WALKS = 4000


@cache
def decision_requests(abort: float, accept: float, per_error: float, per_success: float,
                      ratio: float) -> float:
    """Requests by which the bare test (the statistic on the canary's own counts, one request at
    a time) has decided in DECIDED_SHARE of WALKS random walks at a constant error ratio; inf
    when it has not within 10^6 requests. Wald's expected count is a mean: at that many
    requests about half the runs are still undecided, so a 99% target needs this quantile."""
    rng = np.random.default_rng(20261202)
    total = np.zeros(WALKS)
    decided_at = np.full(WALKS, np.inf)
    n, chunk = 0, 256
    while n < 1_000_000:
        errors = rng.random((WALKS, chunk)) < ratio
        path = total[:, None] + np.cumsum(np.where(errors, per_error, per_success), axis=1)
        crossed = (path >= abort) | (path <= accept)
        first = np.where(crossed.any(axis=1), crossed.argmax(axis=1), -1)
        newly = np.isinf(decided_at) & (first >= 0)
        decided_at[newly] = n + first[newly] + 1
        total = path[:, -1]
        n += chunk
        if np.isfinite(decided_at).mean() >= DECIDED_SHARE:
            return float(np.quantile(decided_at, DECIDED_SHARE))
        chunk = min(chunk * 2, 65536)
    return math.inf


def needed_requests(stack_name: str, service: str, cell: Cell) -> float:
    """Requests the test needs at the cell's ratios (decision_requests): to abort, one failing
    gate suffices (the fewest over the gates whose ratio drifts towards abort); to promote,
    every gate must pass (the most over the gates)."""
    stack, slos = _stack(stack_name)
    p = probabilities(slos[service], cell.m, cell.stream)
    needs = []
    for g in judge.stack_gates(slos[service], stack, service):
        ratio = p.s if g.slo.events.is_latency else p.e
        h = g.hypotheses
        n = decision_requests(g.abort, g.accept, math.log(h.bad / h.good),
                              math.log((1 - h.bad) / (1 - h.good)), ratio)
        needs.append((judge.drift(g, ratio), n))
    failing = [n for drift, n in needs if drift > 0]
    return min(failing) if failing else max(n for _, n in needs)


def cells_for(quick: bool, one_stream: bool = True, service: str = "") -> list[Cell]:
    """The plain cells, then (for ``service``) the real-traffic ones."""
    rates = (20, 300, 5000) if quick else RATES
    multiples = (0, 1, 10, 50) if quick else MULTIPLES
    cells = [Cell("m", r, m, STABLE_MULTIPLE) for m in multiples for r in rates]
    cells += [Cell("shared", r, INCIDENT_MULTIPLE, INCIDENT_MULTIPLE) for r in rates]
    cells.append(Cell("idle", 0.0, 0.0, STABLE_MULTIPLE))
    if one_stream:  # last, so that the other cells keep their seeds
        cells += [Cell("m", r, m, STABLE_MULTIPLE, stream) for stream in ("5xx", "slow")
                  for m in ((10,) if quick else ONE_STREAM_MULTIPLES) for r in rates]
    return cells + real_traffic_cells(quick, service)


REAL_RATES = (20, 50, 100, 300, 1000)
HEALTHY_MULTIPLES = (0.5, 1)
BAD_MULTIPLE = 10
COLD_STARTS = (1, 3, 5, 10, 20)
WARM_UP = "2m"  # covers a first minute of errors: warm-up counts whole scrape intervals
REAL_TRAFFIC_SERVICES = ("api-gateway", "agent-runner")
LONG_OUTAGE = 900.0  # seconds: longer than the stacks' outageLimit (10m) and evidence memory


def real_traffic_cells(quick: bool, service: str) -> list[Cell]:
    """Issue 24's conditions: api-gateway (its 5xx counted by a bad selector; the latency gate
    too) gets every one; agent-runner (5xx as total - 2xx) the restarts, where the selector
    matters."""
    if service not in REAL_TRAFFIC_SERVICES:
        return []
    rates = (300,) if quick else REAL_RATES
    both = (*HEALTHY_MULTIPLES, BAD_MULTIPLE)
    conditions: list[tuple[tuple[float, ...], dict[str, Any]]] = []
    restarts = [("once", True), ("5m", False)] if quick else [
        (r, lazy) for r in ("once", "5m") for lazy in (True, False)]
    conditions += [(both, {"restart": r, "lazy": lazy}) for r, lazy in restarts]
    if service == "api-gateway":
        bursts = [(10.0, True)] if quick else [(b, v) for b in (3.0, 10.0) for v in (False, True)]
        conditions += [(both, {"burst": b, "vary_stable": v}) for b, v in bursts]
        conditions += [(both, {"icc": 0.01, "vary_stable": v})
                       for v in ((False,) if quick else (False, True))]
        colds = (5,) if quick else COLD_STARTS
        conditions += [(HEALTHY_MULTIPLES, {"cold": c, "warm_up": w})
                       for c in colds for w in ("", WARM_UP)]
        conditions += [(both, {"outage": o})
                       for o in ((LONG_OUTAGE,) if quick else (60.0, 300.0, LONG_OUTAGE))]
    cells = []
    for multiples, extra in conditions:
        for m in multiples:
            if quick and m == 1:
                continue
            cells += [Cell("m", r, m, STABLE_MULTIPLE, **extra) for r in rates]
    if service == "api-gateway":
        cells += [Cell("shared", r, INCIDENT_MULTIPLE, INCIDENT_MULTIPLE, stable_traffic=f)
                  for f in ((1.0,) if quick else (1.0, 2.0)) for r in rates]
    return cells


# ---- issue 19's families: late regressions, moderate burns, the plan's smallest burn caught ----

FAMILIES = ("late", "moderate", "caught")
FAMILY_RATES = (50, 200, 1000)
FAMILY_SERVICE = "api-gateway"  # gates all three kinds (availability, latency, error-rate)
LATE_WEIGHTS = (25, 50)
LATE_MULTIPLES = (10, 20)
LATE_STREAMS = ("5xx", "slow")  # the error-rate SLO's stream (the tightest 5xx budget), latency's
LATE_BEFORE = 0.5  # the canary's multiple before the regression (stable's)
MODERATE_MULTIPLES = (2, 3, 5)
MODERATE_LATENCY = 3.0  # moderate-latency-burn: this burn of the latency SLO ...
MODERATE_PROMOTE = 0.05  # ... promoted in at most this share of rollouts
CAUGHT_PROMOTE = 0.01


def family_cells(family: str, quick: bool, stack_name: str, service: str) -> list[Cell]:
    """Issue 19's cells. ``late``: the canary at LATE_BEFORE x budget until the rollout sets a
    weight, then one stream at 10x or 20x (api-gateway). ``moderate``: 2x, 3x, 5x one SLO's own
    budget from the start, per gated SLO (api-gateway). ``caught``: every gated SLO of every
    service at the plan's smallest burn caught at the cell's rate (``oc.smallest_caught``)."""
    rates = (200,) if quick else FAMILY_RATES
    if family == "late":
        if service != FAMILY_SERVICE:
            return []
        weights = (50,) if quick else LATE_WEIGHTS
        multiples: tuple[float, ...] = (10,) if quick else LATE_MULTIPLES
        return [Cell("m", r, LATE_BEFORE, STABLE_MULTIPLE, family="late", late_weight=w,
                     late_m=m, late_stream=stream)
                for stream in LATE_STREAMS for w in weights for m in multiples for r in rates]
    stack, slos = _stack(stack_name)
    gates = judge.stack_gates(slos[service], stack, service)
    if family == "moderate":
        if service != FAMILY_SERVICE:
            return []
        multiples = (MODERATE_LATENCY,) if quick else MODERATE_MULTIPLES
        return [Cell("m", r, m, STABLE_MULTIPLE, family="moderate", slo=g.name)
                for g in gates for m in multiples for r in rates]
    if family == "caught":
        cells = []
        for g in gates:
            for r in rates:
                m = oc.smallest_caught(g, stack, r)
                if m is not None:
                    cells.append(Cell("m", r, m, STABLE_MULTIPLE, family="caught", slo=g.name))
        return cells
    raise ValueError(f"unknown family {family!r}")


def all_cells(quick: bool, stack_name: str, service: str) -> list[Cell]:
    """Every cell of a service, in seed order: the plain and real-traffic cells first (their
    seeds as before issue 19's families were added), then the families'."""
    slos = _stack(stack_name)[1][service]
    cells = cells_for(quick, one_stream_applies(slos), service)
    for family in FAMILIES:
        cells += family_cells(family, quick, stack_name, service)
    return cells


def runs_for(stack_name: str, service: str, cell: Cell, good_runs: int, real_runs: int) -> int:
    """Runs per cell. Healthy real-traffic cells at the pass burn rate (the edge of ``good``,
    where aborts happen) get as many as the good plain cells: at 2000 runs a cell meets the
    0.3% upper bound only with at most one abort, so a rate of 0.01% spread over 210 such cells
    would miss in about four of them by chance alone. Issue 19's families: as many as a
    healthy real-traffic cell."""
    if cell.family:
        return real_runs
    if cell.condition:
        if zone(stack_name, service, cell) == "good":
            at_edge = cell.m >= _stack(stack_name)[0].delivery.analysis.pass_burn_rate
            return max(real_runs, good_runs) if at_edge else real_runs
        return max(100, real_runs // (2 if cell.kind == "shared" else 4))
    if zone(stack_name, service, cell) == "good":
        return good_runs
    if cell.kind == "idle":
        return max(50, good_runs // 20)
    return max(100, good_runs // 4)


def _pct(p: float) -> str:
    return f"{100 * p:.2f}"


def _ci(s: Summary, outcome: int) -> str:
    low, high = s.ci(outcome)
    return f"{_pct(s.p(outcome)):>6} [{_pct(low)}-{_pct(high)}]"


def _minutes(v: float) -> str:
    return "-" if math.isnan(v) else f"{v:.1f}"


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


@dataclass
class TargetLine:
    name: str
    met: bool
    figure: str
    informative: bool = False  # what the bench shows without holding the judge to it

    def render(self) -> str:
        if self.informative:
            return f"info {self.name}: ({self.figure})"
        return f"target {self.name}: {'met' if self.met else 'missed'} ({self.figure})"


def evaluate_targets(results: list[CellResult], stacks: Sequence[str]) -> list[TargetLine]:
    """The plain and real-traffic cells' targets (when they were run), then issue 19's."""
    new = "new judge"
    stack_cfg = {s: _stack(s)[0] for s in stacks}
    base = [r for r in results if not r.cell.family]
    family = [(r, summarise(r.outcomes[new], r.times[new])) for r in results if r.cell.family]
    lines = base_targets(base, stacks) if base else []
    return lines + (family_targets(family, stack_cfg) if family else [])


def base_targets(results: list[CellResult], stacks: Sequence[str]) -> list[TargetLine]:
    new = "new judge"
    every = [(r, summarise(r.outcomes[new], r.times[new])) for r in results]
    by = [(r, s) for r, s in every if not r.cell.condition]  # the plain cells
    stack_cfg = {s: _stack(s)[0] for s in stacks}
    lines = []

    good = [(r, s) for r, s in by if zone(r.stack, r.service, r.cell) == "good"]
    worst_p = max(good, key=lambda rs: rs[1].p(ABORT))
    worst_hi = max(good, key=lambda rs: rs[1].ci(ABORT)[1])
    met = all(s.p(ABORT) <= 0.001 and s.ci(ABORT)[1] <= 0.003 for _, s in good)
    lines.append(TargetLine(
        "good-canaries-rarely-aborted", met and bool(good),
        f"{len(good)} cells; highest P(abort) {_pct(worst_p[1].p(ABORT))}% at "
        f"{_where(worst_p[0])}; highest 95% upper bound {_pct(worst_hi[1].ci(ABORT)[1])}% at "
        f"{_where(worst_hi[0])}; need <= 0.10% and <= 0.30%"))

    bad = [(r, s) for r, s in by if zone(r.stack, r.service, r.cell) == "bad"]
    reach = [(r, s) for r, s in bad if reaches(r)]
    worst_promote = max(bad, key=lambda rs: rs[1].p(PROMOTE))
    worst_abort = min(reach, key=lambda rs: rs[1].p(ABORT)) if reach else None
    met = all(s.p(PROMOTE) <= 0.01 for _, s in bad) and all(
        s.p(ABORT) >= 0.99 for _, s in reach)
    lines.append(TargetLine(
        "bad-canaries-stopped", met and bool(bad),
        f"{len(bad)} cells; highest P(promote) {_pct(worst_promote[1].p(PROMOTE))}% at "
        f"{_where(worst_promote[0])} (need <= 1%); lowest P(abort) where the rollout gives the "
        f"test its requests ({len(reach)} cells) "
        + (f"{_pct(worst_abort[1].p(ABORT))}% at {_where(worst_abort[0])}" if worst_abort
           else "-") + " (need >= 99%)"))

    fast = []
    for r, s in bad:
        limit = None
        if r.cell.m >= 50 and r.cell.rate >= 50:
            limit = 2.0
        if r.cell.rate >= 300:
            limit = min(limit or math.inf, 3.0 if r.stack == "dev" else 5.0)
        if limit is not None:
            fast.append((r, s, limit))
    slowest = max(fast, key=lambda x: (math.inf if math.isnan(x[1].median_abort)
                                       else x[1].median_abort - x[2]))
    met = all(not math.isnan(s.median_abort) and s.median_abort <= lim for _, s, lim in fast)
    lines.append(TargetLine(
        "fast-aborts", met and bool(fast),
        f"{len(fast)} cells; closest to its limit: median {_minutes(slowest[1].median_abort)} "
        f"min at {_where(slowest[0])} (limit {slowest[2]:g} min); limits 3 min dev / 5 min prod "
        "at >= 10x and >= 300 req/min, 2 min at 50x and >= 50 req/min"))

    idle = [(r, s) for r, s in by if r.cell.kind == "idle"]
    promoted = sum(s.counts.get(PROMOTE, 0) for _, s in idle)
    lines.append(TargetLine(
        "idle-canary-never-promoted", promoted == 0 and bool(idle),
        f"{promoted} promotions in {sum(s.n for _, s in idle)} idle runs over {len(idle)} "
        f"rollouts; outcome: " + ", ".join(sorted({
            f"{OUTCOME_NAMES[k]} {_pct(s.p(k))}%" for _, s in idle for k in s.counts
            if s.counts[k]}))))

    perfect = [(r, s) for r, s in by if r.cell.kind == "m" and r.cell.m == 0
               and r.cell.rate == perfect_rate(r.stack, r.service)]
    parts, met = [], bool(perfect)
    for r, s in perfect:
        mode = modes_for(r.stack, r.service)[0]
        gate = r.first_gate[new]
        passed = gate[~np.isnan(gate)] / 60
        p_gate = float(np.median(passed)) if len(passed) else math.nan
        parts.append(f"{r.stack}/{r.service} at {r.cell.rate:g}/min "
                     f"{_pct(s.p(PROMOTE))}% promoted, first gate passed "
                     f"at median {_minutes(p_gate)} min (its wait ends at "
                     f"{mode.gate_deadline() / 60:.1f} min), promoted at median "
                     f"{_minutes(s.median_promote)} min")
        met &= s.p(PROMOTE) >= 0.99
    lines.append(TargetLine("perfect-canary-promoted", met,
                            "; ".join(parts) + "; need >= 99% promoted at 20 req/min, or at "
                            "the lowest rate at which the plan says a clean canary can pass the "
                            "first gate where that is higher"))

    shared = [(r, s) for r, s in by if r.cell.kind == "shared"]
    worst = min(shared, key=lambda rs: rs[1].p(PAUSE))
    met = all(s.p(PAUSE) >= 0.99 for _, s in shared)
    lines.append(TargetLine(
        "shared-incident-pauses", met and bool(shared),
        f"{len(shared)} cells; lowest P(pause) {_pct(worst[1].p(PAUSE))}% "
        f"(abort {_pct(worst[1].p(ABORT))}%) at {_where(worst[0])}; need >= 99%"))
    return lines + real_traffic_targets(every, stack_cfg)


@cache
def perfect_rate(stack_name: str, service: str) -> float:
    """The bench rate a perfect canary is held to promotion at: 20 requests a minute, or where
    a gate's hypotheses are set for a busier service (failBurnRate auto) the lowest rate at
    which the plan says a clean canary can pass the first gate (its "below N canary requests
    a minute it cannot pass")."""
    stack = _stack(stack_name)[0]
    first_gate = judge.first_gate_seconds(stack.delivery, stack.prometheus.scrape_interval)
    need = max(rate_needed(g, first_gate) for g in stack_gates(stack_name, service)
               if g.enforcement == "enforce")
    return min((r for r in RATES if r >= need), default=RATES[-1])


def _share(x: int, n: int) -> str:
    low, high = clopper_pearson(x, n)
    return f"{_pct(x / n)}% [{_pct(low)}-{_pct(high)}] ({x}/{n})"


def _rarely(name: str, chosen: list[tuple[CellResult, Summary]], what: str) -> TargetLine:
    """At most 0.1% aborted, 95% upper bound at most 0.3%, in every chosen cell."""
    if not chosen:
        return TargetLine(name, False, "no cells")
    worst = max(chosen, key=lambda rs: (rs[1].ci(ABORT)[1], rs[1].p(ABORT)))
    met = all(s.p(ABORT) <= 0.001 and s.ci(ABORT)[1] <= 0.003 for _, s in chosen)
    failing = sum(1 for _, s in chosen if not (s.p(ABORT) <= 0.001 and s.ci(ABORT)[1] <= 0.003))
    return TargetLine(name, met, f"{len(chosen)} cells ({what}); worst P(abort) "
                      f"{_share(worst[1].counts.get(ABORT, 0), worst[1].n)} at "
                      f"{_where(worst[0])}; {failing} cells over; need <= 0.10% and 95% upper "
                      "bound <= 0.30% in every cell")


ABORT_WITHIN = 300.0  # seconds from the rollout's start


def real_traffic_targets(every: list[tuple[CellResult, Summary]],
                         stack_cfg: dict[str, StackConfig]) -> list[TargetLine]:
    """Issue 24's targets over the real-traffic cells (and, for the 5-minute aborts, the plain
    ones too)."""
    new = "new judge"
    real = [(r, s) for r, s in every if r.cell.condition]
    lines = []
    healthy = [(r, s) for r, s in real if zone(r.stack, r.service, r.cell) == "good"]
    # Without a warm-up, start-up errors are evidence like any others, and they come all at
    # once: in its first minutes the canary fails many times its budget. Whether they should
    # count is the service's warmUp, so these cells are shown, not held to a target.
    cold_bare = [(r, s) for r, s in healthy if r.cell.cold and not r.cell.warm_up]
    lines.append(_rarely("real-traffic-healthy-rarely-aborted",
                         [rs for rs in healthy if rs not in cold_bare],
                         "restarts, bursts, beta-binomial, cold starts with warmUp "
                         f"{WARM_UP}, Prometheus outages; 0.5x and 1x budget"))
    if cold_bare:
        worst = max(cold_bare, key=lambda rs: rs[1].p(ABORT))
        least = min(cold_bare, key=lambda rs: rs[1].p(ABORT))
        lines.append(TargetLine(
            "cold-starts-without-warm-up", True,
            f"{len(cold_bare)} cells of 1-20 failing requests per canary pod in its first "
            "minute, no warmUp: judged as the errors they are, no target; P(abort) from "
            f"{_share(least[1].counts.get(ABORT, 0), least[1].n)} at {_where(least[0])} to "
            f"{_share(worst[1].counts.get(ABORT, 0), worst[1].n)} at {_where(worst[0])}; "
            f"with warmUp {WARM_UP} they are in the target above", informative=True))

    bad = [(r, s) for r, s in real if zone(r.stack, r.service, r.cell) == "bad"]
    if bad:
        worst = max(bad, key=lambda rs: rs[1].ci(PROMOTE)[1])
        met = all(s.p(PROMOTE) <= 0.01 for _, s in bad)
        lines.append(TargetLine(
            "real-traffic-bad-not-promoted", met,
            f"{len(bad)} cells at {BAD_MULTIPLE}x; worst P(promote) "
            f"{_share(worst[1].counts.get(PROMOTE, 0), worst[1].n)} at {_where(worst[0])}; "
            "need <= 1%"))
    else:
        lines.append(TargetLine("real-traffic-bad-not-promoted", False, "no cells"))

    fast = [(r, s) for r, s in every if r.cell.kind == "m" and r.cell.m >= BAD_MULTIPLE
            and r.cell.rate >= 300 and r.cell.stream == "both" and not r.cell.outage]
    shares = []
    for r, _ in fast:
        when = r.times[new]
        x = int(((r.outcomes[new] == ABORT) & (when <= ABORT_WITHIN)).sum())
        shares.append((r, x, r.runs))
    if shares:
        worst_fast = min(shares, key=lambda t: clopper_pearson(t[1], t[2])[0] + t[1] / t[2])
        met = all(x / n >= 0.99 for _, x, n in shares)
        lines.append(TargetLine(
            "bad-aborted-within-5-minutes", met,
            f"{len(shares)} cells >= {BAD_MULTIPLE}x at >= 300 req/min (plain and real-traffic "
            f"cells but outages); lowest share aborted within {ABORT_WITHIN / 60:g} min of the "
            f"start {_share(worst_fast[1], worst_fast[2])} at {_where(worst_fast[0])}; "
            "need >= 99%"))
    else:
        lines.append(TargetLine("bad-aborted-within-5-minutes", False, "no cells"))

    shared = [(r, s) for r, s in every if r.cell.kind == "shared"]
    if shared:
        worst_shared = min(shared, key=lambda rs: rs[1].p(PAUSE))
        met = all(s.p(PAUSE) >= 0.99 for _, s in shared)
        lines.append(TargetLine(
            "shared-incidents-pause-at-any-stable-share", met,
            f"{len(shared)} cells, stable 1x, 2x, 9x the canary's traffic; lowest P(pause) "
            f"{_share(worst_shared[1].counts.get(PAUSE, 0), worst_shared[1].n)} (abort "
            f"{_pct(worst_shared[1].p(ABORT))}%) at {_where(worst_shared[0])}; need >= 99%"))
    else:
        lines.append(TargetLine("shared-incidents-pause-at-any-stable-share", False, "no cells"))

    outages = [(r, s) for r, s in real if r.cell.outage]
    if outages:
        aborted = promoted = during = runs = base_aborted = base_promoted = 0
        for r, _ in outages:
            outcome, when = r.outcomes[new], r.times[new]
            assert r.paired is not None and r.down is not None
            runs += r.runs
            z = zone(r.stack, r.service, r.cell)
            if z == "good":  # aborted with the outage where the same traffic without it was not
                aborted += int(((outcome == ABORT) & (r.paired != ABORT)).sum())
                base_aborted += int((r.paired == ABORT).sum())
            if z == "bad":
                promoted += int(((outcome == PROMOTE) & (r.paired != PROMOTE)).sum())
                base_promoted += int((r.paired == PROMOTE).sum())
            inside = (when >= r.down[:, 0]) & (when < r.down[:, 1]) & (
                (outcome == ABORT) | (outcome == PROMOTE))
            during += int(inside.sum())
        lines.append(TargetLine(
            "prometheus-outages-neither-abort-nor-promote",
            aborted == 0 and promoted == 0 and during == 0,
            f"{len(outages)} cells, {runs} rollouts with Prometheus away 1, 5 or "
            f"{LONG_OUTAGE / 60:g} min mid-gate, "
            "each against the same traffic with Prometheus up: healthy canaries aborted because "
            f"of the outage {aborted} (aborted without it: {base_aborted}), {BAD_MULTIPLE}x "
            f"canaries promoted because of it {promoted} (without it: {base_promoted}), verdicts "
            f"taken while Prometheus was away {during}; need 0, 0, 0"))
    else:
        lines.append(TargetLine("prometheus-outages-neither-abort-nor-promote", False,
                                "no cells"))
    lines.append(long_outage_target(real, stack_cfg))
    return lines


def long_outage_target(real: list[tuple[CellResult, Summary]],
                       stack_cfg: dict[str, StackConfig]) -> TargetLine:
    """Past ``outageLimit`` a healthy rollout that was still undecided when Prometheus went away
    pauses for a human once it answers again; a bad one is never promoted (it may be aborted
    on the evidence from before and after the outage)."""
    name = "long-prometheus-outages-pause"
    new = "new judge"
    long = [(r, s) for r, s in real if r.cell.outage
            and r.cell.outage > go_seconds(stack_cfg[r.stack].delivery.analysis.outage_limit)]
    if not long:
        return TargetLine(name, False, "no cells")
    paused = undecided = promoted = bad_runs = 0
    worst: tuple[float, CellResult] | None = None
    for r, _ in long:
        assert r.down is not None
        outcome, when = r.outcomes[new], r.times[new]
        if zone(r.stack, r.service, r.cell) == "bad":
            promoted += int((outcome == PROMOTE).sum())
            bad_runs += r.runs
            continue
        open_ = when >= r.down[:, 0]
        n, x = int(open_.sum()), int((open_ & (outcome == PAUSE)).sum())
        paused, undecided = paused + x, undecided + n
        share = x / n if n else 1.0
        if worst is None or share < worst[0]:
            worst = (share, r)
    assert worst is not None
    met = worst[0] >= 0.99 and promoted == 0
    return TargetLine(
        name, met,
        f"{len(long)} cells with Prometheus away {LONG_OUTAGE / 60:g} min (outageLimit 10m): "
        f"healthy rollouts undecided when it went away paused {_share(paused, undecided)}, "
        f"lowest cell {_pct(worst[0])}% at {_where(worst[1])}; {BAD_MULTIPLE}x rollouts "
        f"promoted {promoted} of {bad_runs}; need >= 99% paused in every cell, 0 promoted")


def detection_cost(results: list[CellResult]) -> list[str]:
    """Time to abort at 10x, new judge against the reference, per stack and rate (plain cells,
    all services pooled; a run that did not abort counts as never)."""
    new = "new judge"
    results = [r for r in results if not r.cell.family]
    out = ["Detection time at 10x (plain cells, services pooled): median and p99 minutes from "
           "the rollout's start to the abort (inf: fewer than that share aborted)"]
    for stack_name in STACKS:
        for rate in RATES:
            chosen = [r for r in results if r.stack == stack_name and r.cell.kind == "m"
                      and r.cell.m == BAD_MULTIPLE and r.cell.rate == rate
                      and r.cell.stream == "both" and not r.cell.condition]
            if not chosen:
                continue
            ref = next(k for k in chosen[0].outcomes if k != new)
            parts = []
            for label in (new, ref):
                t = np.concatenate([np.where(r.outcomes[label] == ABORT, r.times[label], np.inf)
                                    for r in chosen]) / 60
                med = np.quantile(t, 0.5, method="higher")
                p99 = np.quantile(t, 0.99, method="higher")
                parts.append(f"{'new' if label == new else 'ref'} {med:.1f}/{p99:.1f}")
            out.append(f"  {stack_name} {rate:>5g}/min: " + ", ".join(parts))
    burst = [r for r in results if r.cell.kind == "m" and r.cell.m == BAD_MULTIPLE
             and r.cell.condition]
    for condition in sorted({r.cell.condition for r in burst}):
        for stack_name in STACKS:
            chosen = [r for r in burst if r.cell.condition == condition and r.stack == stack_name]
            if not chosen:
                continue
            t = np.concatenate([np.where(r.outcomes[new] == ABORT, r.times[new], np.inf)
                                for r in chosen]) / 60
            med = np.quantile(t, 0.5, method="higher")
            p99 = np.quantile(t, 0.99, method="higher")
            out.append(f"  {stack_name} {condition} (rates pooled): new {med:.1f}/{p99:.1f}")
    return out





def regressed_gate(r: CellResult) -> judge.Gate:
    """The gate of a late cell's regressed SLO: the tightest budget of its stream's kind (the
    one its multiple refers to)."""
    stack, slos = _stack(r.stack)
    gates = judge.stack_gates(slos[r.service], stack, r.service)
    kind = [g for g in gates if g.slo.events.is_latency == (r.cell.late_stream == "slow")]
    return min(kind, key=lambda g: g.slo.budget)


def late_need(r: CellResult) -> int:
    """``judge.late_requests`` for the regressed SLO at the cell's late ratio (the plan prints
    it at the bad hypothesis and at 10x the budget)."""
    gate = regressed_gate(r)
    looks = _stack(r.stack)[0].delivery.analysis.max_measurements
    need = judge.late_requests(gate, looks, min(r.cell.late_m * gate.slo.budget, 1.0))
    assert need is not None, "a late regression leans bad"
    return need


@dataclass(frozen=True)
class LateFigures:
    held: float  # canary requests a ``recent`` span holds at the weight (judge.Looks)
    need: int  # judge.late_requests for the regressed SLO at the late ratio
    reached: int  # rollouts that set the weight (the regression started)
    aborted: int  # ... of them aborted
    at_weight: int  # ... aborted before the next weight was set
    promoted: int


def late_figures(r: CellResult) -> LateFigures:
    assert r.late_start is not None and r.late_next is not None
    stack = _stack(r.stack)[0]
    reached = np.isfinite(r.late_start)
    outcome, when = r.outcomes["new judge"][reached], r.times["new judge"][reached]
    aborted = outcome == ABORT
    return LateFigures(
        held=r.cell.rate * judge.gate_looks(stack.delivery,
                                            stack.prometheus.scrape_interval).span / 60,
        need=late_need(r),
        reached=int(reached.sum()), aborted=int(aborted.sum()),
        at_weight=int((aborted & (when < r.late_next[reached])).sum()),
        promoted=int((outcome == PROMOTE).sum()))


def family_targets(every: list[tuple[CellResult, Summary]],
                   stack_cfg: dict[str, StackConfig]) -> list[TargetLine]:
    """Issue 19's targets: late regressions, a moderate latency burn, the plan's smallest burn
    caught."""
    lines = []
    late = [(r, late_figures(r)) for r, _ in every if r.cell.family == "late"]
    enough = [(r, f) for r, f in late if f.held >= f.need]
    short = [(r, f) for r, f in late if f.held < f.need]
    name = "late-regressions-aborted"
    if enough:
        worst = min(enough, key=lambda rf: rf[1].aborted / max(rf[1].reached, 1))
        slowest = min(enough, key=lambda rf: rf[1].at_weight / max(rf[1].reached, 1))
        def holds(f: LateFigures) -> bool:
            return bool(f.reached) and f.aborted >= 0.99 * f.reached

        met = all(holds(f) for _, f in enough)
        per_stack = ", ".join(
            f"{st} {sum(holds(f) for r, f in enough if r.stack == st)} of "
            f"{sum(1 for r, _ in enough if r.stack == st)}"
            for st in STACKS if any(r.stack == st for r, _ in enough))
        w, f = worst
        lines.append(TargetLine(
            name, met,
            f"cells holding it: {per_stack}; {len(enough)} cells where the recent span at the "
            f"weight holds >= judge.late_requests canary requests of the regressed SLO at its "
            f"late ratio (weights "
            f"{', '.join(f'{x:g}' for x in LATE_WEIGHTS)}%, "
            f"{', '.join(f'{x:g}' for x in LATE_MULTIPLES)}x from {LATE_BEFORE:g}x); lowest "
            f"P(abort | the rollout set the weight) {_share(f.aborted, f.reached)} at "
            f"{_where(w)} ({f.held:g} requests per span, need {f.need}); lowest share stopped "
            f"at that weight {_share(slowest[1].at_weight, slowest[1].reached)} at "
            f"{_where(slowest[0])}; promoted {sum(f.promoted for _, f in enough)} of "
            f"{sum(f.reached for _, f in enough)}; need >= 99% aborted in every cell"))
    else:
        lines.append(TargetLine(name, False, "no cells where the plan says the pause suffices"))
    if short:
        least = min(short, key=lambda rf: rf[1].aborted / max(rf[1].reached, 1))
        most = max(short, key=lambda rf: rf[1].promoted / max(rf[1].reached, 1))
        lines.append(TargetLine(
            "late-regressions-short-pauses", True,
            f"{len(short)} cells where the recent span at the weight holds fewer canary requests "
            "than judge.late_requests (the plan says the pause is too short): no target; lowest "
            f"P(abort | the rollout set the weight) {_share(least[1].aborted, least[1].reached)} "
            f"at {_where(least[0])} ({least[1].held:g} requests per span, need "
            f"{least[1].need}); highest P(promote) {_share(most[1].promoted, most[1].reached)} "
            f"at {_where(most[0])}", informative=True))

    def is_latency(r: CellResult) -> bool:
        slos = _stack(r.stack)[1][r.service]
        return next(s for s in slos if s.slo.name == r.cell.slo).events.is_latency

    moderate = [(r, s) for r, s in every if r.cell.family == "moderate"]
    chosen = [(r, s) for r, s in moderate if is_latency(r) and r.cell.m == MODERATE_LATENCY
              and r.cell.rate >= 50]
    name = "moderate-latency-burn"
    if chosen:
        worst_m = max(chosen, key=lambda rs: rs[1].p(PROMOTE))
        lines.append(TargetLine(
            name, all(s.p(PROMOTE) <= MODERATE_PROMOTE for _, s in chosen),
            f"{len(chosen)} cells of a {MODERATE_LATENCY:g}x latency burn at >= 50 req/min; "
            f"highest P(promote) {_share(worst_m[1].counts.get(PROMOTE, 0), worst_m[1].n)} at "
            f"{_where(worst_m[0])}; need <= {MODERATE_PROMOTE:.0%} in every cell"))
    else:
        lines.append(TargetLine(name, False, "no cells"))
    if moderate:
        parts = []
        for slo in sorted({r.cell.slo for r, _ in moderate}):
            for m in sorted({r.cell.m for r, _ in moderate}):
                cell_s = [s for r, s in moderate if r.cell.slo == slo and r.cell.m == m]
                if cell_s:
                    lo = min(s.p(PROMOTE) for s in cell_s)
                    hi = max(s.p(PROMOTE) for s in cell_s)
                    parts.append(f"{slo} {m:g}x {_pct(lo)}-{_pct(hi)}%")
        lines.append(TargetLine(
            "moderate-burns", True, f"{len(moderate)} cells, constant burns of one SLO's "
            "budget from the start; P(promote) over rates and stacks: " + ", ".join(parts),
            informative=True))

    caught = [(r, s) for r, s in every if r.cell.family == "caught"]
    name = "smallest-burn-caught-holds"
    if caught:
        worst_c = max(caught, key=lambda rs: (rs[1].p(PROMOTE), rs[1].ci(PROMOTE)[1]))
        first = []
        for r, _ in caught:
            deadline = modes_for(r.stack, r.service)[0].gate_deadline()
            out, when = r.outcomes["new judge"], r.times["new judge"]
            first.append((r, int(((out == ABORT) & (when <= deadline)).sum())))
        least_c = min(first, key=lambda rx: rx[1] / rx[0].runs)
        lines.append(TargetLine(
            name, all(s.p(PROMOTE) <= CAUGHT_PROMOTE for _, s in caught),
            f"{len(caught)} cells, every gated SLO at oc.smallest_caught at the cell's canary "
            f"rate; highest P(promote) {_share(worst_c[1].counts.get(PROMOTE, 0), worst_c[1].n)}"
            f" at {_where(worst_c[0])}; lowest share aborted by the first gate's last "
            f"measurement (the plan's {oc.CAUGHT:.0%} for independent requests) "
            f"{_share(least_c[1], least_c[0].runs)} at {_where(least_c[0])}; need P(promote) "
            f"<= {CAUGHT_PROMOTE:.0%} in every cell"))
    else:
        lines.append(TargetLine(name, False, "no cells"))
    return lines


def _where(r: CellResult) -> str:
    return f"{r.stack}/{r.service} {r.cell.title} {r.cell.rate:g}/min"


def available_requests(r: CellResult) -> float:
    """Canary requests by the first gate's last measurement: a canary still undecided then
    pauses the rollout, so this is what the test can count on."""
    mode = modes_for(r.stack, r.service)[0]
    return r.cell.rate * mode.gate_deadline() / 60


def reaches(r: CellResult) -> bool:
    return available_requests(r) >= needed_requests(r.stack, r.service, r.cell)


def family_table(chosen: list[CellResult]) -> list[str]:
    """Issue 19's cells of one service: outcomes, and for a late cell the rollouts that set the
    weight, those aborted and stopped at it, and the requests a pause holds there against
    ``judge.late_requests``; for a burn of one SLO the canary's 5xx and slow ratios."""
    if not chosen:
        return []
    new = "new judge"
    w = max(12, *(len(r.cell.title) + 1 for r in chosen))
    out = ["  issue 19's cells (late: 'set' = rollouts that set the weight, 'abort|set' and "
           "'at weight' among them, 'span req' = rate x the recent span vs judge.late_requests "
           "at the late ratio):",
           f"    {'cell':<{w}}{'rpm':>5}{'runs':>6} | {'abort':<24}{'pause':<24}{'promote':<24}"
           f"{'t_abort':>8}{'t_prom':>7} | details"]
    for r in chosen:
        s = summarise(r.outcomes[new], r.times[new])
        if r.cell.family == "late":
            f = late_figures(r)
            share = _share(f.aborted, f.reached) if f.reached else "-"
            detail = (f"set {f.reached}, abort|set {share}, at weight {f.at_weight}, "
                      f"promoted {f.promoted}; span req "
                      f"{f.held:g} {'>=' if f.held >= f.need else '<'} {f.need}")
        else:
            p = cell_probabilities(_stack(r.stack)[1][r.service], r.cell)
            detail = f"5xx ratio {p.e:.4g}, slow ratio {p.s:.4g}"
        out.append(f"    {r.cell.title:<{w}}{r.cell.rate:>5g}{r.runs:>6} | {_ci(s, ABORT):<24}"
                   f"{_ci(s, PAUSE):<24}{_ci(s, PROMOTE):<24}{_minutes(s.median_abort):>8}"
                   f"{_minutes(s.median_promote):>7} | {detail}")
    return out


def report(results: list[CellResult], stacks: Sequence[str], quick: bool, good_runs: int,
           seed: int, elapsed: float, jobs: int, cells: str = "") -> tuple[str, list[TargetLine]]:
    out = []
    today = datetime.date.today().isoformat()
    kind = "QUICK smoke run" if quick else (f"focused run: cells matching {cells!r}" if cells
                                            else "full run")
    out.append(f"Canary judgement benchmark ({kind}), "
               f"{today}, seed {seed}, {good_runs} runs per good-canary cell, "
               f"{elapsed:.0f} s on {jobs} process(es); Python {platform.python_version()}, "
               f"numpy {np.__version__}")
    ranges = "closed ranges [t-w, t]" if ENGINE.closed else "left-open ranges (t-w, t]"
    out.append(f"Semantics: Argo Rollouts v1.9.1 analysis; Prometheus {ENGINE.major}.x ({ranges}, "
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
    new, ref_label = "new judge", None
    for stack_name in stacks:
        stack = _stack(stack_name)[0]
        cfg = stack.delivery.analysis
        out.append("")
        fail = cfg.fail_burn_rate if isinstance(cfg.fail_burn_rate, str) \
            else f"{cfg.fail_burn_rate:g}"
        out.append(f"=== stack {stack_name} (passBurnRate {cfg.pass_burn_rate:g}, failBurnRate "
                   f"{fail}, per SLO below; cells: good where every gated SLO is at most its "
                   "good ratio, bad where one is at least its bad ratio)")
        for service in CATALOGUE_SERVICES:
            mine = [r for r in results if r.stack == stack_name and r.service == service]
            if not mine:
                continue
            modes = modes_for(stack_name, service)
            ref_label = modes[1].label
            slos = _stack(stack_name)[1][service]
            gates = judge.stack_gates(slos, stack, service)
            out.append("")
            out.append(f"--- {stack_name}/{service}: gates " + ", ".join(
                f"{g.name} (budget {g.slo.budget:.2%}, good {g.hypotheses.good:g}, bad "
                f"{g.hypotheses.bad:g}, abort {g.abort:.2f}, accept {g.accept:.2f})"
                for g in gates))
            p1 = probabilities(slos, 1)
            out.append(f"    canary at m x budget: 5xx ratio e = m x {p1.e:g}, slow ratio "
                       f"s = min(m x {p1.s:g}, 1); stable at {STABLE_MULTIPLE:g}x unless shared; "
                       f"'5xx'/'slow' cells: only that stream at m, the other at "
                       f"{STABLE_MULTIPLE:g}x")
            for mode in modes:
                out.extend(describe_mode(mode))
            out.extend(family_table([r for r in mine if r.cell.family]))
            mine = [r for r in mine if not r.cell.family]
            for title, chosen in (
                ("targeted cells", [r for r in mine if zone(stack_name, service, r.cell) != "indiff"
                                    and not r.cell.condition]),
                ("indifference zone (no target)",
                 [r for r in mine if zone(stack_name, service, r.cell) == "indiff"]),
                ("real-traffic cells (bench/traffic.py; no reference: '-')",
                 [r for r in mine if r.cell.condition]),
            ):
                if not chosen:
                    continue
                w = max(12, *(len(r.cell.title) + 1 for r in chosen))
                out.append(f"  {title}:")
                out.append(
                    f"    {'cell':<{w}}{'rpm':>5}{'runs':>6} {'zone':<7}| "
                    f"{'abort':<24}{'pause':<24}{'promote':<24}{'t_abort':>8}{'t_prom':>7} | "
                    f"{'need':>7}{'avail':>8} | ref: {'abort':>6}{'pause':>7}{'promote':>8}"
                    f"{'t_abort':>8}{'t_prom':>7}")
                for r in chosen:
                    s = summarise(r.outcomes[new], r.times[new])
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


def main(argv: Sequence[str] | None = None) -> int:
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
    args = parser.parse_args(argv)
    families = set(args.family.split(","))
    if not families <= {"base", *FAMILIES}:
        parser.error(f"unknown family in {args.family!r}")
    use_engine(args.engine)
    good_runs = args.runs or (300 if args.quick else 8000)
    real_runs = args.real_runs or (200 if args.quick else 2000)
    stacks = tuple(args.stack or STACKS)
    tasks = []
    for si, stack_name in enumerate(STACKS):
        if stack_name not in stacks:
            continue
        slos = _stack(stack_name)[1]
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
    started = time.perf_counter()
    if args.jobs > 1:
        with ProcessPoolExecutor(args.jobs) as pool:
            results = list(pool.map(_task, tasks))
    else:
        results = [_task(t) for t in tasks]
    results.sort(key=lambda r: (STACKS.index(r.stack), CATALOGUE_SERVICES.index(r.service),
                                all_cells(args.quick, r.stack, r.service).index(r.cell)))
    elapsed = time.perf_counter() - started
    text, lines = report(results, stacks, args.quick, good_runs, args.seed, elapsed, args.jobs,
                         args.cells)
    sys.stdout.write(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    return 0 if all(line.met for line in lines if not line.informative) else 1


if __name__ == "__main__":
    sys.exit(main())
