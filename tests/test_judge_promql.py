"""The judge's rendered query, evaluated by a real Prometheus, returns what delivery/judge.py's
arithmetic says, element by element and in the order of ``judge.EVIDENCE``.

Synthetic history: stable pods (hash s1) serve all along, canary pods (hash c1) start 10
minutes before the evaluation time, both scraped every 30 s, as the dev stack declares. Counts
per scrape are constant, so stable's rates over whole scrape intervals are exact and the
expected stable counts follow by hand: rate x 60 s x the subquery steps the canary is present.
"""

import json
import math
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from delivery import judge
from delivery.analysis import evidence_window
from delivery.config import load_stack_file
from slo.loader import load_catalogue
from slo.model import resolve_all
from slo.rules import by_service
from tools.local_prometheus import LocalPrometheus

ROOT = Path(__file__).resolve().parent.parent
STACK = load_stack_file(ROOT / "Pulumi.dev.yaml")
SLOS = by_service(resolve_all(load_catalogue(ROOT / "catalogue" / "core-services.yaml")))
SCRAPE = 30
CANARY_MINUTES = 10
HISTORY_MINUTES = 40
# per scrape: (2xx, 5xx) of the canary, of stable in the healthy case, of stable in an incident
CANARY, STABLE, STABLE_INCIDENT = (297, 3), (2997, 3), (2970, 30)


def _history(end: int, stable: tuple[int, int]) -> str:
    lines: dict[str, list[str]] = {}
    for pods, per_scrape, minutes in (("c1", CANARY, CANARY_MINUTES), ("s1", stable,
                                                                        HISTORY_MINUTES)):
        times = list(range(end - minutes * 60, end + 1, SCRAPE))
        for code, count in zip(("200", "500"), per_scrape, strict=True):
            labels = f'job="api-gateway",code="{code}",rollouts_pod_template_hash="{pods}"'
            lines.setdefault("http_requests_total", []).extend(
                f"http_requests_total{{{labels}}} {count * (i + 1)} {t}"
                for i, t in enumerate(times)
            )
    text = ["# TYPE http_requests_total counter"]
    for series in lines.values():
        text += series
    return "\n".join([*text, "# EOF"]) + "\n"


@pytest.fixture(scope="module", params=["healthy stable", "shared incident"])
def prometheus(request, tmp_path_factory):
    work = tmp_path_factory.mktemp("judge")
    end = (int(time.time()) // 3600) * 3600 - 3600  # whole hour: subquery steps on the minute
    stable = STABLE if request.param == "healthy stable" else STABLE_INCIDENT
    (work / "history.om").write_text(_history(end, stable))
    subprocess.run(
        ["promtool", "tsdb", "create-blocks-from", "openmetrics", str(work / "history.om"),
         str(work / "data")],
        check=True, capture_output=True,
    )
    with LocalPrometheus(
        {"global": {"scrape_interval": "1m"}}, work, data_dir=work / "data",
        args=("--storage.tsdb.retention.time=30d",),
    ) as prom:
        yield prom.url, end, stable


def _query(url: str, expr: str, at: int) -> list[dict]:
    body = urllib.parse.urlencode({"query": expr, "time": str(at)}).encode()
    with urllib.request.urlopen(f"{url}/api/v1/query", data=body, timeout=30) as response:
        data = json.load(response)
    assert data["status"] == "success", data
    return data["data"]["result"]


def _rendered(gate: judge.Gate, canary: str = "c1", stable: str = "s1") -> str:
    text = judge.query(gate, evidence_window(STACK.delivery), SCRAPE)
    return text.replace("{{args.canary-hash}}", canary).replace("{{args.stable-hash}}", stable)


@pytest.mark.parametrize("slo", ["error-rate", "availability"])
def test_prometheus_returns_the_judges_evidence_in_order(prometheus, slo):
    url, end, stable = prometheus
    gate = next(g for g in judge.gates(SLOS["api-gateway"], STACK.delivery.analysis)
                if g.name == slo)
    result = _query(url, _rendered(gate), end)
    assert [r["metric"] for r in result] == [{"evidence": name} for name in judge.EVIDENCE]
    got = [float(r["value"][1]) for r in result]

    scrapes = CANARY_MINUTES * 60 // SCRAPE + 1
    canary_errors, canary_requests = CANARY[1] * scrapes, sum(CANARY) * scrapes
    steps = CANARY_MINUTES + 1  # subquery steps on each minute the canary's series exist
    stable_requests = sum(stable) / SCRAPE * 60 * steps
    stable_errors = stable[1] / SCRAPE * 60 * steps
    want = judge.evidence(gate, canary_errors, canary_requests, stable_errors, stable_requests)
    assert want is not None
    assert mismatches(got, want) == []
    print(slo, dict(zip(judge.EVIDENCE, got, strict=True)))


def mismatches(got: list[float], want: tuple[float, ...]) -> list[str]:
    return [
        name for name, g, w in zip(judge.EVIDENCE, got, want, strict=True)
        if not math.isclose(g, w, rel_tol=1e-9, abs_tol=1e-9)
    ]


def test_a_shared_incident_is_told_apart_from_a_regression(prometheus):
    url, end, stable = prometheus
    gate = next(g for g in judge.gates(SLOS["api-gateway"], STACK.delivery.analysis)
                if g.name == "error-rate")
    values = [float(r["value"][1]) for r in _query(url, _rendered(gate), end)]
    canary_bad = values[judge.CANARY] >= gate.abort  # 1% errors, against 0.1% allowed
    assert canary_bad
    if stable == STABLE_INCIDENT:  # stable at 1% too: no abort, the incident metric pauses
        assert values[judge.STABLE] >= gate.abort and values[judge.JUDGED] < gate.abort
    else:  # stable at 0.1%: the judged statistic aborts
        assert values[judge.JUDGED] >= gate.abort


def test_no_canary_requests_is_an_empty_result_not_a_number(prometheus):
    url, end, _ = prometheus
    gate = judge.gates(SLOS["api-gateway"], STACK.delivery.analysis)[0]
    assert _query(url, _rendered(gate, canary="nothing-runs-here"), end) == []
    # before the canary's first scrape: nothing either
    assert _query(url, _rendered(gate), end - CANARY_MINUTES * 60 - 60) == []


def test_the_comparison_would_catch_a_wrong_arithmetic(prometheus):
    """The agreement check rejects a mirror that forgets the baseline or swaps two elements."""
    url, end, stable = prometheus
    gate = next(g for g in judge.gates(SLOS["api-gateway"], STACK.delivery.analysis)
                if g.name == "error-rate")
    got = [float(r["value"][1]) for r in _query(url, _rendered(gate), end)]
    scrapes = CANARY_MINUTES * 60 // SCRAPE + 1
    x, n = CANARY[1] * scrapes, sum(CANARY) * scrapes
    without_stable = judge.evidence(gate, x, n, 0.0, 0.0)
    assert without_stable is not None
    assert "stable_requests" in mismatches(got, without_stable)
    right = judge.evidence(gate, x, n, stable[1] / SCRAPE * 60 * (CANARY_MINUTES + 1),
                           sum(stable) / SCRAPE * 60 * (CANARY_MINUTES + 1))
    assert right is not None and mismatches(got, right) == []
    swapped = list(right)
    swapped[judge.CANARY_ERRORS], swapped[judge.CANARY_REQUESTS] = (
        right[judge.CANARY_REQUESTS], right[judge.CANARY_ERRORS])
    assert mismatches(got, tuple(swapped)) == ["canary_errors", "canary_requests"]


# ---- the benchmark's vectorised arithmetic (bench/canary_judgement.py) against the same engine

def _irregular(seed: int, samples: int, per_scrape: tuple[int, int], errors_from: int) -> tuple[
    list[float], list[float]
]:
    """Cumulative (2xx, 5xx) counters with uneven increments; no 5xx series before a sample."""
    import random

    rng = random.Random(seed)
    ok, err, a, b = [], [], 0.0, 0.0
    for k in range(samples):
        a += rng.randint(per_scrape[0] // 2, per_scrape[0] * 3 // 2)
        b += rng.randint(0, 2 * per_scrape[1]) if k >= errors_from else 0
        ok.append(a)
        err.append(b if k >= errors_from else math.nan)
    return ok, err


@pytest.fixture(scope="module")
def uneven(tmp_path_factory):
    """Canary and stable counters scraped off the minute, 5xx of the canary only from its 5th
    scrape on; a real Prometheus over them, and the same samples for the benchmark."""
    work = tmp_path_factory.mktemp("bench-vs-prometheus")
    end = (int(time.time()) // 3600) * 3600 - 3600
    start = end - CANARY_MINUTES * 60  # the canary starts here, on the minute
    groups = {  # hash: (first sample offset from start, samples, counters)
        "c1": (7, CANARY_MINUTES * 2, _irregular(1, CANARY_MINUTES * 2, (300, 6), 4)),
        "s1": (13 - 1800, 60 + CANARY_MINUTES * 2, _irregular(2, 60 + CANARY_MINUTES * 2,
                                                                (3000, 9), 0)),
    }
    lines = ["# TYPE http_requests_total counter"]
    for pods, (offset, _, (ok, err)) in groups.items():
        for code, values in (("200", ok), ("500", err)):
            labels = f'job="api-gateway",code="{code}",rollouts_pod_template_hash="{pods}"'
            lines += [f"http_requests_total{{{labels}}} {v:g} {start + offset + 30 * k}"
                      for k, v in enumerate(values) if not math.isnan(v)]
    (work / "history.om").write_text("\n".join([*lines, "# EOF"]) + "\n")
    subprocess.run(["promtool", "tsdb", "create-blocks-from", "openmetrics",
                    str(work / "history.om"), str(work / "data")], check=True, capture_output=True)
    with LocalPrometheus({"global": {"scrape_interval": "1m"}}, work, data_dir=work / "data",
                         args=("--storage.tsdb.retention.time=30d",)) as prom:
        yield prom.url, start, groups


def test_the_benchmarks_arithmetic_agrees_with_prometheus(uneven):
    import sys

    import numpy as np

    sys.path.insert(0, str(ROOT / "bench"))
    import canary_judgement as bench

    url, start, groups = uneven

    def counters(pods: str) -> "bench.Counters":
        offset, _, (ok, err) = groups[pods]
        ok_a, err_a = np.array([ok]), np.array([err])
        total = ok_a + np.nan_to_num(err_a)
        return bench.Counters(t0=np.array([float(offset)]), step=30.0, values={
            bench.OK: ok_a, bench.ERR: err_a, bench.COUNT: total, bench.FAST: total})

    moments = np.array([[61.0, 200.0, 331.0, 452.0, 599.0]])  # seconds after the canary started
    compared = with_errors = 0
    for gate in judge.gates(SLOS["api-gateway"], STACK.delivery.analysis):
        if gate.slo.events.is_latency:
            continue  # the synthetic series carry no histogram
        query = bench.JudgeQuery.parse(judge.query(gate, evidence_window(STACK.delivery), SCRAPE),
                                       gate, SCRAPE)
        grid = bench.StepGrid(60.0, np.array([0.0]), CANARY_MINUTES + 2)
        present, vector = bench.judge_evidence(query, counters("c1"), counters("s1"), grid,
                                               moments)
        for i, t in enumerate(moments[0]):
            result = _query(url, _rendered(gate), int(start + t))
            if not present[0, i]:
                assert result == [], (gate.name, t)
                continue
            got = [float(r["value"][1]) for r in result]
            mine = [float(v[0, i]) for v in vector]
            assert len(got) == len(judge.EVIDENCE), (gate.name, t)
            wrong = [name for name, g, m in zip(judge.EVIDENCE, got, mine, strict=True)
                     if not (math.isclose(g, m, rel_tol=1e-9, abs_tol=1e-9)
                             or (math.isnan(g) and math.isnan(m)))]
            pairs = dict(zip(judge.EVIDENCE, zip(got, mine, strict=True), strict=True))
            assert wrong == [], (gate.name, t, pairs)
            assert got[judge.STABLE_REQUESTS] > 0
            compared += 1
            with_errors += got[judge.CANARY_ERRORS] > 0
    assert compared == 2 * len(moments[0])  # error-rate and availability, at every moment
    assert with_errors == 2 * (len(moments[0]) - 1)  # the canary's 5xx series from 127 s on
