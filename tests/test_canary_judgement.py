"""bench/canary_judgement.py against the real tools: its simulation of the evidence rule group
(bench/recording.py: steps per series, per hash and of the other hashes, sums over the window,
the running sums of the statistic's increments and their restart points, the judge's eleven
numbers) against the rendered group evaluated by ``promtool test rules`` on the same scraped
samples -- restarts, a lazily created error series that goes stale, a failed scrape, scrapes
missed while Prometheus is away, a warm-up, an evidence window shorter than the trace and a
pause longer than a step (the windows' edges, running sums that start again) -- with proof
that the check bites when the simulation is wrong; its Argo Rollouts semantics on hand-made
sequences; the reference renderer against commit 84bbf00; and a ``--quick`` run."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from bench import recording, traffic
from bench.canary import argo, cells, conditions, counters, modes, queries, simulation, stacks
from delivery import evidence as evidence_rules
from delivery import judge
from delivery.canary import evidence_group
from delivery.stack import StackConfig
from slo import conventions as names
from slo.model import ResolvedSlo
from slo.yamlout import dump
from tools.local_prometheus import major_version

ROOT = Path(__file__).resolve().parent.parent
PROMTOOL = shutil.which("promtool")
SCRAPE = 30.0  # the dev stack's scrape interval: the group's evaluation interval
GRID = 10  # promtool's input grid: scrapes may fall between evaluations
END = 2400  # seconds of synthetic series
PROM_NAMES = {
    traffic.OK: ("http_requests_total", {"code": "200"}),
    traffic.ERR: ("http_requests_total", {"code": "500"}),
    traffic.COUNT: ("http_request_duration_seconds_count", {}),
    traffic.FAST: ("http_request_duration_seconds_bucket", {"le": "2"}),
}
HASHES = {"canary": "c1", "stable": "s1"}
# Evaluation times compared (multiples of the interval): before the canary, its first steps,
# around its restarts, inside and after the scrapes Prometheus missed, late.
EVAL_TIMES = (270, 330, 360, 450, 690, 720, 750, 780, 900, 1110, 1140, 1170, 1530, 1560, 1620,
              1650, 2100, 2370)


@pytest.fixture(scope="module", autouse=True)
def _engine_of_the_promtool_on_path():
    """The bench's arithmetic copies the range semantics of the Prometheus it is checked on."""
    assert PROMTOOL, "promtool is required (make test builds it)"
    counters.use_engine(major_version(PROMTOOL))
    yield
    counters.use_engine(3)


@dataclass
class Trace:
    name: str
    world: queries.World


def trace(name: str, canary_phase: float, stable_phase: float, seed: int,
          stable_from: float | None = None) -> Trace:
    """One run: stable pods (a day of counts) all along; a canary pod from 300 s with bursty
    5xx whose series is created at its first 5xx; its container crashing at 705 s (down 30 s:
    the scrape at 730 s fails) and at 1105 s (down 10 s: no scrape fails, the counters reset);
    no scrape attempted in [1500 s, 1590 s) (Prometheus away; the rules still evaluate, as
    promtool's do)."""
    rng = np.random.default_rng(seed)
    attempts = int(END // SCRAPE) + 1
    outage = np.array([[1500.0, 1590.0]])
    crashes = np.array([[705.0, 1105.0]])
    downtime = np.array([[30.0, 10.0]])
    canary = traffic.pod(rng, np.array([300.0 + canary_phase]), SCRAPE, attempts - 10,
                         np.array([300.0]), 60 / 30, 0.01, 0.1,
                         variation=traffic.Variation(burst=4.0), crashes=crashes,
                         downtime=downtime, outage=outage)
    if stable_from is None:  # old pods
        stable = traffic.pod(rng, np.array([stable_phase]), SCRAPE, attempts,
                             np.array([stable_phase - SCRAPE]), 600 / 30, 0.006, 0.03,
                             outage=outage, history=(5e5, 3e3, 1.5e4))
    else:  # new ones, from stable_from on
        stable = traffic.pod(rng, np.array([stable_from + stable_phase]), SCRAPE,
                             attempts - int(stable_from // SCRAPE), np.array([stable_from]),
                             600 / 30, 0.006, 0.03, outage=outage)
    times = np.arange(0, END + 1, SCRAPE)[None, :]
    evaluations = recording.Evaluations(t=times.astype(float),
                                        done=np.ones(times.shape, dtype=bool), ran_before=False)
    return Trace(name, queries.World([canary], [stable], evaluations, outage))


TRACES = (
    trace("between", canary_phase=10, stable_phase=20, seed=13),
    # every scrape on an evaluation and on the edges of every range: closed ranges matter;
    # stable's pods new after the canary's (no baseline at first: judged is NaN)
    trace("aligned", canary_phase=0, stable_phase=0, seed=2, stable_from=390),
)


def _labels(job: str, hash_: str, pod: str, extra: dict[str, str]) -> str:
    labels = {"job": job, "rollouts_pod_template_hash": hash_, "pod": pod, **extra}
    return ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))


def promtool_values(s: recording.Scraped, name: str) -> str:
    """The series on promtool's grid: its samples, a staleness marker where a scrape was
    attempted without it after one with it (Prometheus writes one then), nothing elsewhere."""
    slots = ["_"] * (END // GRID + 1)
    values = s.values[name][0]
    had = False
    for j in range(s.attempts):
        t = s.t0[0] + j * s.step
        if not s.attempted[0, j]:
            continue
        slot = round(t / GRID)
        assert slot * GRID == t, "samples on promtool's grid"
        if slot >= len(slots):
            break
        if not np.isnan(values[j]):
            slots[slot] = repr(float(values[j]))
            had = True
        elif had:
            slots[slot] = "stale"
            had = False
    return " ".join(slots)


def input_series(tr: Trace, job: str) -> list[dict[str, str]]:
    out = []
    for role, pods in (("canary", tr.world.canary), ("stable", tr.world.stable)):
        for i, s in enumerate(pods):
            pod = f"{HASHES[role]}-{i}"
            for key, (metric, extra) in PROM_NAMES.items():
                out.append({"series": f"{metric}{{{_labels(job, HASHES[role], pod, extra)}}}",
                            "values": promtool_values(s, key)})
            inf = _labels(job, HASHES[role], pod, {"le": "+Inf"})  # selected by no rule
            out.append({"series": f"http_request_duration_seconds_bucket{{{inf}}}",
                        "values": promtool_values(s, traffic.COUNT)})
    noise = " ".join(f"{7.0 * i!r}" for i in range(END // GRID + 1))  # another job's 5xx
    elsewhere = _labels("elsewhere", "c1", "x", {"code": "500"})
    out.append({"series": f"http_requests_total{{{elsewhere}}}", "values": noise})
    return out


@dataclass(frozen=True)
class Check:
    selector: str
    expected: float | None  # None: no sample


def checks(tr: Trace, gate: queries.RecordedGate, service: str,
           eval_times: tuple[int, ...] = EVAL_TIMES) -> dict[int, list[Check]]:
    """Per evaluation time, every recorded series of the gate the bench simulates (its value or
    its absence) as a selector of the rendered group's output."""
    records = gate.records(tr.world)
    times = tr.world.evaluations.t[0]
    out: dict[int, list[Check]] = {}
    for t in eval_times:
        (k,) = np.nonzero(times == t)[0]
        found = []
        for (record, role, element), (present, value) in records.items():
            labels = {"service": service, "slo": gate.gate.name,
                      "rollouts_pod_template_hash": HASHES[role]}
            if element:
                labels["evidence"] = element
            selector = record + "{" + ",".join(f'{a}="{b}"' for a, b in labels.items()) + "}"
            found.append(Check(selector, float(value[0, k]) if present[0, k] else None))
        out[t] = found
    return out


def heartbeat_input(service: str, ev: recording.Evaluations) -> dict[str, str]:
    """The group's heartbeat as an input series, for a trace whose group did not run at every
    evaluation (promtool runs it at all): each evaluation that ran leaves its time one grid
    slot later, so that the rules at an evaluation see the previous one, as they do in
    Prometheus, where the heartbeat is the group's last rule."""
    slots = ["_"] * (END // GRID + 1)
    for t, done in zip(ev.t[0], ev.done[0], strict=True):
        if done and int(t) // GRID + 1 < len(slots):
            slots[int(t) // GRID + 1] = repr(float(t))
    return {"series": f'{names.CANARY_EVIDENCE_HEARTBEAT}{{service="{service}"}}',
            "values": " ".join(slots)}


def _judged_stack(service: str, stack: str, warm_up: str, delivery: dict | None
                  ) -> tuple[StackConfig, dict[str, list[ResolvedSlo]], modes.Mode]:
    """The stack's config with the service's ``warm_up`` and the ``delivery`` overrides
    (``analysis``: of its analysis config), its SLOs, and the bench's mode for the service."""
    mode = modes.modes_for(stack, service, warm_up)[0]
    stack_cfg, slos = stacks.stack_slos(stack)
    if warm_up:
        deployment = stack_cfg.services[service].model_copy(update={"warm_up": warm_up})
        stack_cfg = stack_cfg.model_copy(
            update={"services": {**stack_cfg.services, service: deployment}})
    if delivery:
        update = dict(delivery)
        if "analysis" in update:
            update["analysis"] = stack_cfg.delivery.analysis.model_copy(
                update=update["analysis"])
        stack_cfg = stack_cfg.model_copy(
            update={"delivery": stack_cfg.delivery.model_copy(update=update)})
        mine = slos[service]
        mode = modes.new_mode(service, mine[0].service.namespace, mine, stack_cfg)
    return stack_cfg, slos, mode


def _checks_at(tr: Trace, gates: dict[str, queries.RecordedGate], service: str,
               eval_times: tuple[int, ...], t: int, counts: dict[str, int]
               ) -> tuple[list[dict], list[dict]]:
    """At ``t``: the expected values as input series, and the expressions that must be empty
    (a record absent, NaN, or off by more than 1e-6 relative); ``counts`` counted on."""
    series, exprs = [], []
    for gate in gates.values():
        for i, c in enumerate(checks(tr, gate, service, eval_times)[t]):
            if c.expected is None:
                exprs.append({"expr": c.selector, "eval_time": f"{t}s", "exp_samples": []})
                counts["absent"] += 1
                continue
            expected = f'bench_expected{{check="{gate.gate.name}-{i}"}}'
            nan = bool(np.isnan(c.expected))
            counts["nan" if nan else "value"] += 1
            series.append({"series": expected, "values": "NaN" if nan else repr(c.expected)})
            found = [f"{expected} unless on() {c.selector}"]
            if nan:
                found.append(f"{c.selector} == {c.selector}")
            else:
                found += [f"{c.selector} != {c.selector}",
                          f"abs({c.selector} - on() {expected}) > on() "
                          f"(1e-6 * abs({expected}) + 1e-9)"]
            exprs += [{"expr": e, "eval_time": f"{t}s", "exp_samples": []} for e in found]
    # the expected values are written at time t, read at t
    for s in series:
        s["values"] = " ".join(["_"] * (t // GRID) + [s["values"]])
    return series, exprs


def promtool_report(tr: Trace, service: str, stack: str, tmp: Path, warm_up: str = "",
                    eval_times: tuple[int, ...] = EVAL_TIMES, delivery: dict | None = None
                    ) -> tuple[str | None, dict[str, int]]:
    """``promtool test rules`` with the service's rendered evidence group over the trace's
    samples: at every ``eval_times``, each of the bench's records equal (1e-6 relative; NaN only
    where the bench has NaN) or absent where the bench has none. (promtool's report or None,
    counts of the compared samples by kind). Where the trace's group did not run at every
    evaluation, its heartbeat rule gives way to ``heartbeat_input``. ``delivery`` overrides
    fields of the stack's delivery config (``analysis``: of its analysis config)."""
    stack_cfg, slos, mode = _judged_stack(service, stack, warm_up, delivery)
    group = evidence_group(service, slos[service], stack_cfg)
    assert group is not None
    gates = {q.gate.name: q for q in mode.queries.values() if isinstance(q, queries.RecordedGate)}
    assert {g.warm_up for g in gates.values()} == {queries._seconds(warm_up) if warm_up else None}
    tests, counts = [], {"value": 0, "absent": 0, "nan": 0}
    inputs = input_series(tr, service)
    if not tr.world.evaluations.done.all():
        assert group["rules"][-1]["record"] == names.CANARY_EVIDENCE_HEARTBEAT
        group = {**group, "rules": group["rules"][:-1]}
        inputs.append(heartbeat_input(service, tr.world.evaluations))
    for t in eval_times:
        series, exprs = _checks_at(tr, gates, service, eval_times, t, counts)
        tests.append({"name": f"{tr.name} {service} at {t}s", "interval": f"{GRID}s",
                      "input_series": inputs + series, "promql_expr_test": exprs})
    (tmp / "rules.yml").write_text(dump({"groups": [group]}))
    path = tmp / f"recording-{tr.name}-{service}.test.yml"
    path.write_text(json.dumps({"rule_files": ["rules.yml"], "evaluation_interval": "30s",
                                "tests": tests}))
    result = subprocess.run([PROMTOOL, "test", "rules", path.name], cwd=tmp,
                            capture_output=True, text=True, timeout=600, check=False)
    return (None if result.returncode == 0 else result.stdout + result.stderr), counts


def test_traces_have_what_they_claim():
    tr = TRACES[0]
    canary = tr.world.canary[0]
    times = canary.times()[0]
    err = canary.values[traffic.ERR][0]
    req = canary.values[traffic.OK][0]
    assert np.isnan(req[times == 730]).all() and canary.attempted[0, times == 730].all()
    assert (req[times == 760] < req[times == 700]).all()  # the counters restarted from 0
    assert (req[times == 1120] < req[times == 1090]).all()  # again, without a failed scrape
    # the lazily created 5xx series: absent at the canary's start and after a restart
    assert np.isnan(err[0]) and not np.isnan(err[times == 1090]).any()
    assert np.isnan(err[(times > 1105) & (times < 1200)]).all()
    # a restart whose new 5xx count is above the old one reads as an increase (Prometheus'
    # reset ambiguity): the trace has one
    assert (err[times == 760] >= err[times == 700]).all()
    assert (~canary.attempted[0, (times >= 1500) & (times < 1590)]).all()


@pytest.mark.parametrize(("per_interval", "ratio", "mean"), [
    (10, 0.01, 10.0),  # 20 req/min at 10x the error-rate budget: bursts longer than intervals
    (10, 0.5, 10.0),  # 10x the latency budget
    (500, 0.005, 10.0),
    (500, 0.001, 3.0),
])
def test_bursts_fail_the_cells_ratio_at_any_traffic(per_interval, ratio, mean):
    """A bursty cell is judged at the ratio it names, also where an interval holds fewer
    requests than a burst (bursts once cut at an interval's requests without making up for it
    gave 20 req/min at "10x" about 6.5x). Where an interval holds many bursts' worth of
    requests, the per-interval dispersion is a geometric burst's E[size^2]/E[size] = 2 mean - 1."""
    rng = np.random.default_rng(7)
    n = rng.poisson(per_interval, (800, 400)).astype(np.float64)
    bad = traffic._bad(rng, n, ratio, traffic.Variation(burst=mean))
    assert (bad <= n).all() and (bad >= 0).all()
    assert bad.sum() / n.sum() == pytest.approx(ratio, rel=0.05)  # about 3 sd
    if per_interval >= 10 * mean:  # bursts seldom cut at the interval's end
        pearson = ((bad - n * ratio) ** 2 / (n * ratio * (1 - ratio))).mean()
        assert pearson == pytest.approx(2 * mean - 1, rel=0.15)


@pytest.mark.parametrize("tr", TRACES, ids=lambda t: t.name)
@pytest.mark.parametrize("service", ["api-gateway", "agent-runner"])
def test_simulated_recording_agrees_with_promtool(tr, service, tmp_path):
    report, counts = promtool_report(tr, service, "dev", tmp_path)
    assert report is None, report
    assert counts["value"] >= 500 and counts["absent"] >= 50, counts
    assert (counts["nan"] > 0) == (tr.name == "aligned"), counts


def test_simulated_warm_up_agrees_with_promtool(tmp_path):
    report, counts = promtool_report(TRACES[0], "api-gateway", "dev", tmp_path, warm_up="2m")
    assert report is None, report
    assert counts["value"] >= 500, counts
    plain = modes.modes_for("dev", "api-gateway")[0]
    warmed = modes.modes_for("dev", "api-gateway", "2m")[0]
    q_plain = next(q for q in plain.queries.values() if isinstance(q, queries.RecordedGate))
    q_warm = next(q for q in warmed.queries.values() if isinstance(q, queries.RecordedGate))
    n_plain = q_plain.recorded(TRACES[0].world)[1][judge.CANARY_REQUESTS][0, -1]
    n_warm = q_warm.recorded(queries.World(**{**TRACES[0].world.__dict__, "_evidence": {}}))[1][
        judge.CANARY_REQUESTS][0, -1]
    assert n_warm < n_plain  # the warm-up left requests out


# ---- proof that the agreement check bites ---------------------------------------------------


ORIGINAL_INCREMENTS = recording.increments


def _ignoring_resets(s, name, ev, memory, closed=False, settle=0.0):
    """Steps where a counter that went down counts nothing (reset read as a decrease)."""
    value, present = ORIGINAL_INCREMENTS(s, name, ev, memory, closed, settle)
    v = s.values[name]
    jn = recording._last_true(s.attempted, recording._index_at(s, ev.t))
    jb = recording._last_true(~np.isnan(v), recording._index_at(s, ev.t - s.step))
    with np.errstate(invalid="ignore"):
        dropped = (jb >= 0) & (recording._take(v, jn) < recording._take(v, jb))
    return np.where(dropped, 0.0, value), present


def _zero_steps_kept(pods, sel, ev, memory, warm_up=None, closed=False, settle=0.0):
    """Steps without requests recorded too (the rule's ``> 0`` forgotten): while no scrape comes
    in (Prometheus away), every evaluation would count as a step with traffic."""
    steps = ORIGINAL_HASH_STEPS(pods, sel, ev, memory, warm_up, closed, settle)
    _, any_step = recording._sum_steps(pods, sel.total, ev, memory, [None] * len(pods), closed,
                                       settle)
    return recording.Steps(steps.requests, steps.errors, steps.squares, steps.present | any_step)


ORIGINAL_HASH_STEPS = recording.hash_steps


LONG_OUTAGE = (900.0, 1710.0)  # Prometheus away 13.5 min: longer than the group's memory (10 min)


def long_outage_trace() -> Trace:
    """A canary from 300 s and old stable pods, scraped every 30 s; Prometheus away in
    LONG_OUTAGE: no scrapes and no evaluations of the group."""
    rng = np.random.default_rng(3)
    attempts = int(END // SCRAPE) + 1
    outage = np.array([LONG_OUTAGE])
    canary = traffic.pod(rng, np.array([310.0]), SCRAPE, attempts - 10, np.array([300.0]),
                         60 / 30, 0.01, 0.1, outage=outage)
    stable = traffic.pod(rng, np.array([20.0]), SCRAPE, attempts, np.array([-10.0]), 600 / 30,
                         0.006, 0.03, outage=outage, history=(5e5, 3e3, 1.5e4))
    times = np.arange(0, END + 1, SCRAPE)[None, :].astype(float)
    # the evaluation at the outage's start still ran (on the samples from before it): promtool
    # runs the group at every evaluation and would count a step there
    done = ~((times > LONG_OUTAGE[0]) & (times < LONG_OUTAGE[1]))
    evaluations = recording.Evaluations(t=times, done=done, ran_before=False)
    return Trace("long-outage", queries.World([canary], [stable], evaluations, outage))


def test_a_step_across_an_outage_longer_than_the_memory_is_dropped_not_counted_twice(tmp_path):
    """After Prometheus was away longer than the group's memory, the counters' last samples from
    before the outage are out of reach: counted as new they would count the canary's earlier
    requests twice. The rendered group (promtool, its heartbeat as the group left it) and the
    bench's simulation both drop that one step, and the canary's recorded requests stay below
    what it served."""
    tr = long_outage_trace()
    after = (870, 900, 1710, 1740, 1770, 1800, 2100, 2370)
    report, counts = promtool_report(tr, "api-gateway", "dev", tmp_path, eval_times=after)
    assert report is None, report
    assert counts["value"] > 0 and counts["absent"] > 0
    gate = next(q for q in modes.modes_for("dev", "api-gateway")[0].queries.values()
                if isinstance(q, queries.RecordedGate))
    records = gate.records(tr.world)
    present, steps = records[(names.CANARY_REQUESTS_STEP, "canary", "")]
    k = list(tr.world.evaluations.t[0]).index(1710.0)
    assert not present[0, k:k + 3].any() and present[0, k + 3]  # dropped, then counted again
    served = np.nanmax(tr.world.canary[0].values[traffic.COUNT][0])
    assert steps[0, present[0]].sum() < served
    # with the guard off, that step counts the canary's counter whole: more than it served
    loose = recording.Evaluations(tr.world.evaluations.t, np.ones_like(present), False)
    sel = gate.selection
    doubled = recording.hash_steps(tr.world.canary, sel, loose, gate.memory, settle=gate.settle)
    assert doubled.requests[0].sum() > served


def test_the_outage_metric_reads_the_gap_the_group_records(tmp_path):
    """The background's prometheus-outage query on promtool (the rendered group, its heartbeat
    as the group left it) against the bench's ``OutageQuery``: the outage's length right after
    it, for as long as the query's range holds it, and the scrape interval otherwise."""
    tr = long_outage_trace()
    mode = modes.modes_for("dev", "api-gateway")[0]
    (query, model), = [(q, m) for q, m in mode.queries.items()
                       if isinstance(m, queries.OutageQuery)]
    stack_cfg, slos = stacks.stack_slos("dev")
    group = evidence_group("api-gateway", slos["api-gateway"], stack_cfg)
    assert group is not None
    group = {**group, "rules": group["rules"][:-1]}
    times = np.array([[870.0, 1710.0, 1740.0, 1770.0, 1800.0, 1830.0, 2370.0]])
    present, (value,) = model.measured(tr.world, times)
    assert present.all() and value[0, 1] == 1710 - 900 and value[0, -1] == 30
    tests = [{"interval": f"{GRID}s",
              "input_series": [*input_series(tr, "api-gateway"),
                               heartbeat_input("api-gateway", tr.world.evaluations)],
              "promql_expr_test": [
                  {"expr": query, "eval_time": f"{t:.0f}s",
                   "exp_samples": [{"labels": "{service=\"api-gateway\"}", "value": v}]}
                  for t, v in zip(times[0], value[0], strict=True)]}]
    (tmp_path / "rules.yml").write_text(dump({"groups": [group]}))
    (tmp_path / "outage.test.yml").write_text(json.dumps(
        {"rule_files": ["rules.yml"], "evaluation_interval": "30s", "tests": tests}))
    result = subprocess.run([PROMTOOL, "test", "rules", "outage.test.yml"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout + result.stderr



# windows the traces outlast: 14 m, longer than the long outage (the gap rule, which reads the
# heartbeat over the window, sees it) and shorter than the canary's time without steps across it
SHORT = {"pause": "3m", "analysis": {"evidence_window": "14m"}}


@pytest.mark.parametrize("tr", [*TRACES, long_outage_trace()], ids=lambda t: t.name)
def test_simulated_running_sums_agree_with_promtool_over_short_windows(tr, tmp_path):
    """A 14 m evidence window (restart points: at most 3 in it) and a 3 m pause (``recent``
    reads back 90 s: the pause less the recording's lag, in whole steps): the sums,
    the lowest restart point and the running sum ``recent`` reads back all fall off the
    windows' edges (left-open or closed as the engine's), and across the long outage (13.5 m
    without steps) the running sums start again from the increment alone."""
    times = (*range(270, END, 90), 2100)
    report, counts = promtool_report(tr, "api-gateway", "dev", tmp_path, eval_times=times,
                                     delivery=SHORT)
    assert report is None, report
    assert counts["value"] >= 500, counts
    gate = next(q for q in modes.modes_for("dev", "api-gateway")[0].queries.values()
                if isinstance(q, queries.RecordedGate))
    assert gate.window > 3600  # the stack's own window: the traces never leave it


def test_the_short_windows_reach_what_they_claim():
    stack, slos = stacks.stack_slos("dev")
    analysis = stack.delivery.analysis.model_copy(update=SHORT["analysis"])
    stack = stack.model_copy(update={"delivery": stack.delivery.model_copy(
        update={**SHORT, "analysis": analysis})})
    mode = modes.new_mode("api-gateway", "x", slos["api-gateway"], stack)
    gate = next(q for q in mode.queries.values() if isinstance(q, queries.RecordedGate)
                and q.gate.name == "error-rate")
    assert (gate.window, gate.recent, gate.restart_every) == (840.0, 90.0, 300.0)
    tr = long_outage_trace()
    records = gate.records(tr.world)
    present, canary = records[(evidence_rules.RUNNING["canary"], "canary", "")]
    n = records[(names.CANARY_REQUESTS_STEP, "canary", "")][1][0]
    x = records[(names.CANARY_ERRORS_STEP, "canary", "")][1][0]
    per_error, per_success = judge.coefficients(gate.gate.hypotheses)
    times = tr.world.evaluations.t[0]
    after = np.nonzero(present[0] & (times > LONG_OUTAGE[1]))[0][0]
    # started again: the last running sum, from before the outage, is out of the window
    assert canary[0, after] == pytest.approx(x[after] * per_error + (n[after] - x[after])
                                             * per_success)
    assert canary[0, after - 1 - np.argmax(present[0, after - 1::-1])] != 0
    restarted, restart = records[(evidence_rules.RESTARTS, "canary", "")]
    assert restarted[0].sum() >= 4 and (restart[0, restarted[0]] < 0).any()
    assert set(times[restarted[0]] % 300) == {0.0}


ORIGINAL_RUNNING, ORIGINAL_STEP_INCREMENTS = recording.running, recording.step_increments


@pytest.mark.parametrize(("wrong", "caught"), [
    ("resets ignored", "slo:canary_"), ("zero steps kept", "slo:canary_"),
    ("no warm-up", "slo:canary_"),
    # the judged increments under the SLO's own hypotheses, not those stable moves
    ("judged increments unmoved", "slo:canary_judged_llr:running"),
    # a restart point at every step, not once per restart_every
    ("restarts at every step", "slo:canary_judged_llr:restart"),
])
def test_the_promtool_check_catches_a_wrong_simulation(tmp_path, monkeypatch, wrong, caught):
    warm_up = ""
    if wrong == "judged increments unmoved":
        monkeypatch.setattr(recording, "step_increments", lambda gate, steps, others: (
            (ORIGINAL_STEP_INCREMENTS(gate, steps, others)[0],) * 2))
    elif wrong == "restarts at every step":
        monkeypatch.setattr(recording, "running", lambda gate, steps, others, ev, window,
                            recent, restart_every, step, closed=False: ORIGINAL_RUNNING(
                                gate, steps, others, ev, window, recent, step, step, closed))
    elif wrong == "resets ignored":
        monkeypatch.setattr(recording, "increments", _ignoring_resets)
    elif wrong == "zero steps kept":
        monkeypatch.setattr(queries, "hash_steps", _zero_steps_kept)
    else:
        warm_up = "2m"
        monkeypatch.setattr(recording, "warm", lambda s, total, ev, w, closed=False:
                            np.ones(ev.t.shape, dtype=bool))
    modes.modes_for.cache_clear()
    try:
        report, _ = promtool_report(TRACES[0], "api-gateway", "dev", tmp_path, warm_up)
    finally:
        modes.modes_for.cache_clear()
    assert report is not None, f"the check passed with {wrong}"
    assert caught in report


# ---- Argo Rollouts semantics on hand-made measurement sequences -------------------------------

S, N, E, F = argo.SUCCESSFUL, argo.INCONCLUSIVE, argo.ERROR, argo.FAILED  # N: iNconclusive


def spec(**kw) -> argo.MetricSpec:
    base = dict(name="m", interval=30.0, initial_delay=0.0, count=None, success=None,
                failure=None, failure_limit=0,
                inconclusive_limit=0, consecutive_error_limit=4, consecutive_success_limit=0,
                dry_run=False, query="q")
    return argo.MetricSpec(**{**base, **kw})


def outcome(s: argo.MetricSpec, sequence: list[int], start: int = 0) -> tuple[int, int]:
    phases = np.array([[N] * start + sequence], dtype=np.int8)
    end, phase = argo.metric_outcome(s, phases, np.array([start]), 1, phases.shape[1])
    return int(end[0]), int(phase[0])


GATE = spec(count=5, consecutive_success_limit=1, inconclusive_limit=5)
BACKGROUND = spec(inconclusive_limit=1_000_000)
INCIDENT = spec(inconclusive_limit=0)


def test_measurements_follow_evaluate_result():
    env = conditions.Env([np.array([1.0, 9.0, 9.0, np.nan])] * 7, np.array([7, 7, 7, 0]))
    both = spec(success=conditions.Condition("len(result) == 7 && result[0] < 5"),
                failure=conditions.Condition("len(result) == 7 && result[1] >= 9"))
    assert both.measure(env).tolist() == [S, F, F, N]  # the last: empty result
    always_both = spec(success=conditions.Condition("true"), failure=conditions.Condition("true"))
    assert always_both.measure(env).tolist() == [F] * 4  # failure wins
    never_fails = spec(success=conditions.Condition("len(result) < 7 || result[0] < 5"),
                       failure=conditions.Condition("false"))
    assert never_fails.measure(env).tolist() == [S, N, N, S]
    unguarded = spec(success=conditions.Condition("result[0] < 5"))
    assert unguarded.measure(env).tolist() == [S, F, F, E]  # index past an empty result
    negated = conditions.Condition("!isNaN(result[0]) && -result[0] < -2")
    assert negated.evaluate(env)[0].tolist() == [
        False, True, True, False]
    with pytest.raises(ValueError):
        conditions.Condition("__import__('os')")


def test_gate_fail_at_measurement_k_aborts_then():
    assert outcome(GATE, [N, N, F, S, S]) == (2, F)
    assert outcome(GATE, [N, N, N, F, N], start=3) == (6, F)


def test_initial_delay_postpones_the_first_measurement():
    delayed = spec(count=5, consecutive_success_limit=1, inconclusive_limit=5)
    phases = np.array([[S, S, S, N, N, S, N, N, N, N, N, N]], dtype=np.int8)
    assert argo.metric_outcome(delayed, phases, np.array([0]), 1, 12) == (0, S)
    end, phase = argo.metric_outcome(delayed, phases, np.array([0]), 1, 12, delay=3)
    assert (int(end[0]), int(phase[0])) == (5, S)  # the successes before 3 are never measured


def test_gate_inconclusive_to_count_pauses():
    assert outcome(GATE, [N, N, N, N, N, S]) == (4, N)
    assert outcome(GATE, [N, S, N, N, N]) == (1, S)
    stricter = spec(count=5, consecutive_success_limit=2, inconclusive_limit=5, failure_limit=1)
    assert outcome(stricter, [S, N, S, F, S]) == (4, N)  # one failure tolerated, no 2 in a row
    assert outcome(stricter, [S, F, N, F, S]) == (3, F)


def test_background_and_incident_metrics():
    assert outcome(BACKGROUND, [N] * 30 + [F]) == (30, F)
    assert outcome(BACKGROUND, [N, S, N, S]) == (argo.NEVER, argo.RUNNING)  # runs until stopped
    assert outcome(INCIDENT, [S, S, S, N, S]) == (3, N)
    assert outcome(spec(consecutive_error_limit=2), [E, E, S, E, E, E]) == (5, E)


def test_run_ends_at_first_decisive_metric_and_dry_run_never_decides():
    never = (np.array([argo.NEVER]), np.array([argo.RUNNING]))
    failed_at_3 = (np.array([3]), np.array([F]))
    paused_at_3 = (np.array([3]), np.array([N]))
    passed_at_2 = (np.array([2]), np.array([S]))
    dry = spec(name="d", dry_run=True)
    assert argo.run_outcome([spec(), spec()], [failed_at_3, never]) == (3, F)
    assert argo.run_outcome([spec(), spec()], [failed_at_3, paused_at_3]) == (3, F)
    assert argo.run_outcome([dry, spec()], [failed_at_3, never]) == (argo.NEVER, argo.RUNNING)
    assert argo.run_outcome([dry, spec()], [failed_at_3, passed_at_2]) == (3, S)
    assert argo.run_outcome([spec(), spec()], [passed_at_2, (np.array([5]), np.array([S]))]) == (
        5, S)


def _rollout(background_phase: int, at: int, gate_phase: int = S) -> tuple[int, float]:
    """Steps: weight, pause 30s, gate; the gate metric measures ``gate_phase`` from grid index 5
    (Inconclusive before); the background's abort metric turns Failed, or its shared-incident
    metric Inconclusive, at grid index ``at``."""
    horizon = 40
    bg = spec(name="bg", inconclusive_limit=1_000_000)
    incident = spec(name="incident", inconclusive_limit=0)
    gate = spec(name="g", count=20, consecutive_success_limit=1, inconclusive_limit=20)
    mode = modes.Mode(
        label="t", steps=[argo.Step("weight"), argo.Step("pause", 30.0),
                          argo.Step("analysis", template="gate")],
        background="background",
        templates={"gate": argo.Template("gate", (gate,)),
                   "background": argo.Template("background", (bg, incident))},
        queries={}, grid=30.0, horizon=horizon, longest_analysis=600.0)
    bg_phases = np.full((1, horizon), N, dtype=np.int8)
    incident_phases = np.full((1, horizon), S, dtype=np.int8)
    if background_phase == F:
        bg_phases[0, at:] = F
    elif background_phase == N:
        incident_phases[0, at:] = N
    gate_phases = np.full((1, horizon), N, dtype=np.int8)
    gate_phases[0, 5:] = gate_phase
    phases = {"gate/g": gate_phases, "background/bg": bg_phases,
              "background/incident": incident_phases}
    result, when, _, _ = modes.simulate_rollout(mode, phases)
    return int(result[0]), float(when[0])


def test_rollout_gate_and_background():
    assert _rollout(S, 0) == (argo.PROMOTE, 150.0)  # the gate passes at index 5
    assert _rollout(S, 0, gate_phase=F) == (argo.ABORT, 150.0)
    assert _rollout(F, 3) == (argo.ABORT, 90.0)  # the background aborts before the gate passes
    assert _rollout(N, 2) == (argo.PAUSE, 60.0)  # the shared-incident metric pauses the rollout
    assert _rollout(F, 9) == (argo.PROMOTE, 150.0)  # after promotion the background is gone


def test_rendered_templates_are_read_not_rederived():
    new, ref = modes.modes_for("prod", "orchestrator")
    gate = new.templates["orchestrator-slo-gate"].metrics
    assert [m.count for m in gate] == [120] * 3 and new.grid == 30
    assert new.steps[0].template == "orchestrator-budget-freeze"
    assert new.steps[-1].kind == "manual"
    background = new.templates["orchestrator-slo-background"].metrics
    assert [m.name for m in background if m.inconclusive_limit == 0] == [
        "availability-shared-incident", "latency-shared-incident", "error-rate-shared-incident",
        "prometheus-outage"]
    assert ref.grid == 60 and [m.consecutive_success_limit for m in
                               ref.templates["orchestrator-slo-gate"].metrics] == [3] * 3


_OLD_RENDER = """
import json, sys
from pathlib import Path
from slo import analysis, rollout
from slo.loader import load_catalogue
from slo.model import resolve_all
from slo.stack import load_stack_file
out = {}
for st in ("dev", "prod"):
    stack = load_stack_file(Path(f"Pulumi.{st}.yaml"))
    slos = resolve_all(load_catalogue(Path(stack.catalogue)))
    for svc in ("orchestrator", "agent-runner", "api-gateway"):
        mine = [s for s in slos if s.service.name == svc]
        ns, cfg, addr = mine[0].service.namespace, stack.delivery.analysis, stack.prometheus.address
        r = rollout.rollout(svc, ns, stack.services[svc], stack.delivery,
                            freeze=stack.delivery.budget_freeze, gated=True, annotate_scrape=False)
        c = r["spec"]["strategy"]["canary"]
        out[f"{st}/{svc}"] = {
            "gate": analysis.gate_template(svc, ns, mine, cfg, addr),
            "background": analysis.background_template(svc, ns, mine, cfg, addr),
            "freeze": analysis.freeze_template(svc, ns, cfg, addr),
            "canary": {"steps": c["steps"], "analysis": c["analysis"]},
        }
json.dump(out, sys.stdout)
"""


def test_reference_renderer_reproduces_84bbf00(tmp_path):
    has = subprocess.run(["git", "-C", str(ROOT), "cat-file", "-e", "84bbf00^{commit}"],
                         capture_output=True, check=False)
    # a clone without it cannot prove the reference renderer: fail, never pass by skipping
    assert has.returncode == 0, ("commit 84bbf00 is not in this clone (a shallow one?): "
                                 "git fetch --unshallow, then run this test again")
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", "84bbf00", "slo", "catalogue",
                              "Pulumi.dev.yaml", "Pulumi.prod.yaml"], capture_output=True,
                             check=True)
    subprocess.run(["tar", "-x", "-C", str(tmp_path)], input=archive.stdout, check=True)
    old = json.loads(subprocess.run([sys.executable, "-c", _OLD_RENDER], cwd=tmp_path,
                                    check=True, capture_output=True, text=True).stdout)
    from bench.reference_templates import reference_bodies

    assert len(old) == 6
    for key, rendered in old.items():
        stack_name, service = key.split("/")
        stack, slos = stacks.stack_slos(stack_name)
        mine = slos[service]
        ours = reference_bodies(service, mine[0].service.namespace, mine, stack_name,
                                stack.prometheus.address)
        assert ours.templates["gate"] == rendered["gate"], key
        assert ours.templates["background"] == rendered["background"], key
        assert ours.canary == rendered["canary"], key
        if stack_name == "prod":
            assert ours.templates["freeze"] == rendered["freeze"], key


# ---- a --quick run ----------------------------------------------------------------------------

TARGET_LINE = re.compile(r"^target ([a-z0-9-]+): (met|missed) \((.+)\)$")


def test_quick_run_prints_every_target_line_and_exits_by_them(tmp_path):
    out = tmp_path / "quick.txt"
    # the timeout only stops a hang; how long --quick takes is not asserted (a loaded CI
    # machine is slower, and speed is not what this test is about)
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "canary_judgement.py"),
                             "--quick", "--jobs", "1", "--out", str(out)],
                            capture_output=True, text=True, timeout=900, check=False)
    assert result.returncode in (0, 1), result.stderr
    assert "QUICK" in result.stdout and "not the targets' evidence" in result.stdout
    targets = [line for line in result.stdout.splitlines() if line.startswith("target ")]
    matches = [TARGET_LINE.match(line) for line in targets]
    assert all(matches), targets
    assert [m.group(1) for m in matches if m] == [
        "good-canaries-rarely-aborted", "bad-canaries-stopped", "fast-aborts",
        "idle-canary-never-promoted", "perfect-canary-promoted", "shared-incident-pauses",
        "real-traffic-healthy-rarely-aborted", "real-traffic-bad-not-promoted",
        "bad-aborted-within-5-minutes", "shared-incidents-pause-at-any-stable-share",
        "prometheus-outages-neither-abort-nor-promote", "long-prometheus-outages-pause",
        "late-regressions-aborted", "moderate-latency-burn", "smallest-burn-caught-holds"]
    # start-up errors that take the first gate over the budget are shown, not a target
    assert any(line.startswith("info cold-starts-without-warm-up: (") and "no target" in line
               for line in result.stdout.splitlines())
    missed = any(m.group(2) == "missed" for m in matches if m)
    assert result.returncode == (1 if missed else 0)
    assert out.read_text() == result.stdout


def test_error_measurements_do_not_count_and_never_end_the_gate():
    """Argo v1.9.1: an Error (Prometheus not answering) is not counted toward ``count`` and, with
    the rendered consecutiveErrorLimit (2^31 - 1), never errors the metric."""
    gate = spec(count=3, consecutive_success_limit=1, inconclusive_limit=3,
                consecutive_error_limit=2**31 - 1)
    assert outcome(gate, [N, E, E, E, N, N, N]) == (5, N)  # counted at 0, 4 and 5
    assert outcome(gate, [E] * 10 + [S]) == (10, S)
    new = modes.modes_for("dev", "api-gateway")[0]
    limits = {m.consecutive_error_limit for t in new.templates.values() for m in t.metrics}
    assert limits == {2**31 - 1}


def test_prometheus_away_is_an_error_measurement_of_every_metric():
    mode = modes.modes_for("dev", "api-gateway")[0]
    _, slos = stacks.stack_slos("dev")
    cell = cells.Cell("m", 300, 10, 0.5, outage=300)
    p = cells.probabilities(slos["api-gateway"], 10)
    world = simulation.sample_world(np.random.default_rng(3), 4, cell, p, cells.probabilities(
        slos["api-gateway"], 0.5), 30.0, mode.horizon * mode.grid, 2700, mode.first_gate_start())
    phases = modes.phases_of(mode, world)
    t = np.arange(mode.horizon) * mode.grid
    down = world.is_down(np.broadcast_to(t, (4, mode.horizon)))
    assert down.sum(axis=1).tolist() == [10] * 4  # 300 s at 30 s measurements
    for p_ in phases.values():
        assert (p_[down] == argo.ERROR).all() and (p_[~down] != argo.ERROR).all()
    assert not world.evaluations.done[
        (world.evaluations.t >= world.down[:, :1]) & (world.evaluations.t < world.down[:, 1:2])
    ].any()


# ---- issue 19: a regression that starts when the rollout sets a weight ------------------------


def test_a_late_regression_starts_when_the_rollout_sets_its_weight():
    """The canary of a late cell fails at its healthy ratio until the simulated rollout sets the
    cell's weight (prod: 10% first, then 25%) and at the named multiple from then on; the
    rollout sets that weight at the same moments with the regression as without it."""
    mode = modes.modes_for("prod", "api-gateway")[0]
    slos = stacks.stack_slos("prod")[1]["api-gateway"]
    cell = cells.Cell("m", 1000, 0.5, 0.5, family="late", late_weight=25, late_m=20,
                   late_stream="5xx")
    canary_p, stable_p = cells.cell_probabilities(slos, cell), cells.probabilities(slos, 0.5)
    runs, scrape = 200, 30.0
    args = (runs, cell, canary_p, stable_p, scrape, mode.horizon * mode.grid, 9000.0,
            mode.first_gate_start())
    rng = np.random.default_rng(11)
    late = simulation.late_regression(rng, mode, slos, *args, np.random.default_rng(12))
    world = simulation.sample_world(rng, *args, late=late)
    weights: dict[float, np.ndarray] = {}
    modes.simulate_rollout(mode, modes.phases_of(mode, world), weights)
    start = weights[25.0]
    assert np.array_equal(start, late.start)
    reached = np.isfinite(start)
    assert reached.mean() > 0.9 and (weights[10.0][reached] < start[reached]).all()

    canary = world.canary[0]
    errors = np.nan_to_num(canary.values[traffic.ERR])
    requests = np.nan_to_num(canary.values[traffic.COUNT])
    ends = canary.t0[:, None] + scrape * np.arange(errors.shape[1])[None, :]
    d_err, d_n = np.diff(errors, axis=1), np.diff(requests, axis=1)
    begin, end = ends[:, :-1], ends[:, 1:]
    before = reached[:, None] & (end <= start[:, None])
    after = reached[:, None] & (begin >= start[:, None])
    ratio_before = d_err[before].sum() / d_n[before].sum()
    ratio_after = d_err[after].sum() / d_n[after].sum()
    assert before.sum() > 5 * runs and after.sum() > 10 * runs
    assert ratio_before == pytest.approx(0.5 * 0.001, rel=0.3)
    assert ratio_after == pytest.approx(20 * 0.001, rel=0.05)
