"""The benchmark's vectorised judge (bench/recording.py) is ``delivery.judge.evidence``, and the
gate query a real Prometheus answers returns the recorded evidence in the order of
``judge.EVIDENCE``.

- ``recording.evidence`` against ``judge.evidence`` on random counts of every gate of both
  stacks, with and without the stable baseline, at the edges (no errors, only errors, no
  stable traffic, one step), with and without the change-point statistics (running-sum
  differences), and proof that the comparison rejects a mirror with a wrong dispersion, a
  wrong stable bound or two elements swapped;
- ``recording.step_increments`` against ``judge.increments`` (the running sums' steps), and
  proof that the comparison rejects judged increments under unmoved hypotheses;
- the rendered gate query on a real ``prometheus`` (HTTP API) over backfilled evidence series:
  the eleven samples come back in EVIDENCE order, with their values; nothing for another hash.
  (That the recorded values are what the rule group computes from the counters is
  tests/test_canary_judgement.py's check against promtool.)
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from bench import recording
from delivery import judge
from delivery.analysis import evidence_window
from delivery.stack import load_stack_file
from slo.conventions import CANARY_EVIDENCE
from slo.loader import load_catalogue
from slo.model import resolve_all
from slo.rules import by_service
from tools.local_prometheus import backfilled

ROOT = Path(__file__).resolve().parent.parent
STACKS = {name: load_stack_file(ROOT / f"Pulumi.{name}.yaml") for name in ("dev", "prod")}
SLOS = by_service(resolve_all(load_catalogue(ROOT / "catalogue" / "core-services.yaml")))


def all_gates() -> list[judge.Gate]:
    gates = []
    for stack in STACKS.values():
        for service in ("orchestrator", "agent-runner", "api-gateway"):
            for g in judge.gates(SLOS[service], stack.delivery):
                gates += [g, dataclasses.replace(g, compare=False)]
    return gates


def random_counts(rng: np.random.Generator, size: int) -> tuple[recording.Sums, recording.Sums]:
    """Canary and stable window sums as the rules record them: per-step requests and errors
    (with no errors, only errors, one step, no stable traffic among them)."""
    def sums(scale: float, absent_share: float) -> recording.Sums:
        steps = rng.integers(1, 40, size)
        requests = np.zeros(size)
        errors = np.zeros(size)
        squares = np.zeros(size)
        ratio = rng.choice([0.0, 1.0, 1e-3, 0.01, 0.05, 0.3], size)
        for i in range(size):
            n = rng.poisson(scale * rng.uniform(0.2, 3), steps[i]) + 1.0
            x = rng.binomial(n.astype(int), ratio[i]).astype(float)
            if rng.random() < 0.2:  # a burst in one step
                j = rng.integers(steps[i])
                x[j] = n[j]
            requests[i], errors[i], squares[i] = n.sum(), x.sum(), (x * x / n).sum()
        absent = rng.random(size) < absent_share
        z = np.where(absent, 0.0, 1.0)
        return recording.Sums(requests * z, errors * z, squares * z, steps * z, ~absent)

    return sums(20, 0.0), sums(200, 0.15)


def change_points(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Random (cusum, recent) before dividing by the dispersion: running-sum differences."""
    return rng.normal(0, 20, size), rng.normal(0, 5, size)


def _counts(c: recording.Sums, i: int) -> judge.Counts:
    return judge.Counts(float(c.requests[i]), float(c.errors[i]), float(c.squares[i]),
                        float(c.steps[i]))


def python_vector(gate: judge.Gate, c: recording.Sums, s: recording.Sums, i: int,
                  points: tuple[np.ndarray, np.ndarray] | None = None
                  ) -> tuple[float, ...] | None:
    extra = () if points is None else (float(points[0][i]), float(points[1][i]))
    return judge.evidence(gate, _counts(c, i), _counts(s, i), *extra)


def mirror_mismatches(gate: judge.Gate, c: recording.Sums, s: recording.Sums,
                      points: tuple[np.ndarray, np.ndarray] | None = None) -> set[str]:
    """Elements where the vectorised evidence differs from judge.evidence somewhere; with
    ``points`` (cusum, recent) given to both, without them their defaults."""
    present, vector = recording.evidence(gate, c, s, *(points or ()))
    wrong = set()
    for i in range(len(c.requests)):
        want = python_vector(gate, c, s, i, points)
        if want is None:
            if present[i]:
                wrong.add("present")
            continue
        if not present[i]:
            wrong.add("present")
            continue
        for name, w, v in zip(judge.EVIDENCE, want, (float(a[i]) for a in vector), strict=True):
            same = (math.isnan(w) and math.isnan(v)) or math.isclose(w, v, rel_tol=1e-9,
                                                                    abs_tol=1e-9)
            if not same:
                wrong.add(name)
    return wrong


CASES = 300


def test_vectorised_evidence_is_judge_evidence():
    rng = np.random.default_rng(1)
    gates = all_gates()
    assert sum(g.compare for g in gates) == len(gates) // 2 == 16
    for gate in gates:
        c, s = random_counts(rng, CASES)
        assert mirror_mismatches(gate, c, s) == set(), gate.name
        assert mirror_mismatches(gate, c, s, change_points(rng, CASES)) == set(), gate.name


def random_steps(rng: np.random.Generator, size: int) -> recording.Steps:
    """One evaluation's steps of a hash: requests, errors (none, some, all), absent ones."""
    n = rng.poisson(rng.choice([2.0, 20.0, 500.0], size)) + 1.0
    ratio = rng.choice([0.0, 1.0, 1e-3, 0.01, 0.3], size)
    x = rng.binomial(n.astype(int), ratio).astype(float)
    present = rng.random(size) > 0.1
    return recording.Steps(np.where(present, n, 0.0), np.where(present, x, 0.0),
                           np.where(present, x * x / n, 0.0), present)


def increment_mismatches(gate: judge.Gate, steps: recording.Steps, s: recording.Sums
                         ) -> set[str]:
    """Where ``recording.step_increments`` differs from ``judge.increments`` (0 without a
    step: the rules write nothing there, and the bench adds nothing)."""
    absolute, judged = recording.step_increments(gate, steps, s)
    wrong = set()
    for i in range(len(steps.requests)):
        want = (judge.increments(gate, judge.Counts(float(steps.requests[i]),
                                                    float(steps.errors[i])), _counts(s, i))
                if steps.present[i] else (0.0, 0.0))
        for name, w, v in zip(("absolute", "judged"), want,
                              (float(absolute[i]), float(judged[i])), strict=True):
            if not math.isclose(w, v, rel_tol=1e-9, abs_tol=1e-9):
                wrong.add(name)
    return wrong


def test_vectorised_increments_are_judge_increments():
    rng = np.random.default_rng(4)
    for gate in all_gates():
        _, s = random_counts(rng, CASES)
        assert increment_mismatches(gate, random_steps(rng, CASES), s) == set(), gate.name


def test_the_increment_comparison_catches_unmoved_hypotheses(monkeypatch):
    rng = np.random.default_rng(5)
    gate = next(g for g in all_gates() if g.compare and g.name == "error-rate")
    _, s = random_counts(rng, CASES)
    steps = random_steps(rng, CASES)
    assert increment_mismatches(gate, steps, s) == set()
    h = gate.hypotheses
    monkeypatch.setattr(recording, "moved", lambda g, others: (
        others.present & (others.requests > 0), h.good, h.bad))
    assert increment_mismatches(gate, steps, s) == {"judged"}


def test_the_inputs_reach_every_branch():
    rng = np.random.default_rng(1)
    c, s = random_counts(rng, CASES)
    assert (c.errors == 0).any() and (c.errors == c.requests).any()
    assert ((c.errors > 0) & (c.errors < c.requests)).any()
    assert (~s.present).any() and (c.steps == 1).any()
    gate = next(g for g in all_gates() if g.compare)
    _, vector = recording.evidence(gate, c, s)
    assert np.isnan(vector[judge.JUDGED]).any()  # no stable traffic: no baseline
    assert (vector[judge.DISPERSION] > 1).any() and (vector[judge.DISPERSION] == 1).any()


def _without_prior(requests, errors, squares, steps):
    """The dispersion estimate without NU's prior weight on phi = 1."""
    usable = (requests > 0) & (errors > 0) & (errors < requests)
    with np.errstate(invalid="ignore", divide="ignore"):
        q = errors / requests
        pearson = (squares - errors * errors / requests) / (q * (1 - q))
        phi = np.maximum(1.0, pearson / np.maximum(steps - 1, 1))
    return np.where(usable, phi, 1.0)


def _stable_read_as_independent(dispersion):
    """A dispersion that forgets stable's (the call with stable's far larger counts)."""
    def run(requests, errors, squares, steps):
        phi = dispersion(requests, errors, squares, steps)
        return np.where(requests > 5000, 1.0, phi)
    return run


@pytest.mark.parametrize("wrong", ["dispersion without the prior",
                                   "stable bound without dispersion",
                                   "swapped errors and requests", "swapped cusum and recent"])
def test_the_comparison_catches_a_wrong_mirror(monkeypatch, wrong):
    rng = np.random.default_rng(2)
    gate = next(g for g in all_gates() if g.compare and g.name == "error-rate")
    c, s = random_counts(rng, CASES)
    points = change_points(rng, CASES)
    assert mirror_mismatches(gate, c, s, points) == set()
    original_dispersion, original_evidence = recording.dispersion, recording.evidence
    if wrong == "dispersion without the prior":
        monkeypatch.setattr(recording, "dispersion", _without_prior)
        expected = {"dispersion", "canary", "judged", "cusum", "recent"}
    elif wrong == "stable bound without dispersion":
        monkeypatch.setattr(recording, "dispersion",
                            _stable_read_as_independent(original_dispersion))
        expected = {"judged", "stable"}
    else:
        first, second = ((judge.CANARY_ERRORS, judge.CANARY_REQUESTS)
                         if wrong == "swapped errors and requests" else (judge.CUSUM, judge.RECENT))

        def swapped(*args, **kwargs):
            present, vector = original_evidence(*args, **kwargs)
            vector = list(vector)
            vector[first], vector[second] = vector[second], vector[first]
            return present, vector
        monkeypatch.setattr(recording, "evidence", swapped)
        expected = {judge.EVIDENCE[first], judge.EVIDENCE[second]}
    found = mirror_mismatches(gate, c, s, points)
    assert expected <= found, found


# ---- the gate query on a real Prometheus: order and values --------------------------------


GATE_SERVICE = "api-gateway"
VALUES = {  # per evidence element, a distinct value (the order is read from the values too)
    "judged": 9.5, "canary": 8.25, "canary_errors": 31.0, "canary_requests": 2000.0,
    "stable_errors": 12.0, "stable_requests": 18000.0, "stable": -3.75, "dispersion": 1.5,
    "steps": 22.0, "cusum": 4.125, "recent": -0.625,
}
assert tuple(VALUES) == judge.EVIDENCE


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory):
    """A real Prometheus over backfilled evidence series of hashes c1 and s1 (as the rule group
    records them: one sample per scrape interval)."""
    work = tmp_path_factory.mktemp("evidence")
    end = (int(time.time()) // 3600) * 3600 - 3600
    lines = []
    for gate in judge.gates(SLOS[GATE_SERVICE], STACKS["dev"].delivery):
        for pods, shift in (("c1", 0.0), ("s1", 100.0)):
            for name, value in VALUES.items():
                labels = (f'evidence="{name}",rollouts_pod_template_hash="{pods}",'
                          f'service="{GATE_SERVICE}",slo="{gate.name}"')
                lines += [f"{CANARY_EVIDENCE}{{{labels}}} {value + shift} {t}"
                          for t in range(end - 600, end + 1, 30)]
    with backfilled("\n".join([*lines, "# EOF"]) + "\n", work) as prom:
        yield prom.url, end


def _query(url: str, expr: str, at: int) -> list[dict]:
    body = urllib.parse.urlencode({"query": expr, "time": str(at)}).encode()
    with urllib.request.urlopen(f"{url}/api/v1/query", data=body, timeout=30) as response:
        data = json.load(response)
    assert data["status"] == "success", data
    return data["data"]["result"]


def _rendered(gate: judge.Gate, canary: str = "c1") -> str:
    stack = STACKS["dev"]
    text = judge.query(gate, evidence_window(stack.delivery), stack.prometheus.scrape_interval)
    return text.replace("{{args.canary-hash}}", canary)


def order_problems(result: list[dict], expected: list[tuple[str, float]]) -> list[str]:
    got = [(r["metric"].get("evidence", ""), float(r["value"][1])) for r in result]
    return [f"position {i}: got {g}, want {w}" for i, (g, w) in
            enumerate(zip(got, expected, strict=True)) if g != w] + (
        [f"{len(got)} samples, want {len(expected)}"] if len(got) != len(expected) else [])


@pytest.mark.parametrize("slo", ["availability", "latency", "error-rate"])
def test_prometheus_returns_the_evidence_in_order(prometheus, slo):
    url, end = prometheus
    gate = next(g for g in judge.gates(SLOS[GATE_SERVICE], STACKS["dev"].delivery)
                if g.name == slo)
    result = _query(url, _rendered(gate), end)
    assert order_problems(result, list(VALUES.items())) == []
    assert _query(url, _rendered(gate, canary="nothing-runs-here"), end) == []
    assert _query(url, _rendered(gate), end - 900) == []  # before the first evaluation


def test_the_order_check_catches_a_wrong_order(prometheus):
    url, end = prometheus
    gate = judge.gates(SLOS[GATE_SERVICE], STACKS["dev"].delivery)[0]
    result = _query(url, _rendered(gate), end)
    swapped = list(VALUES.items())
    swapped[judge.STABLE_ERRORS], swapped[judge.STABLE_REQUESTS] = (
        swapped[judge.STABLE_REQUESTS], swapped[judge.STABLE_ERRORS])
    problems = order_problems(result, swapped)
    assert len(problems) == 2, problems
    stable = _query(url, _rendered(gate, canary="s1"), end)  # the other hash: other values
    assert order_problems(stable, list(VALUES.items())) != []
