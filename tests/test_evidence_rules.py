"""The judge's recorded evidence, evaluated by promtool on counters that restart.

The trace (prod, 30 s steps): a canary pod serving 10 requests a step whose container restarts
at the fifth sample (its counters start again from 0), with an error series its client library
creates at the first error, that goes stale at the restart and comes back at the next error; a
stable pod beside it. Every request and error is counted once: 78 requests and 3 errors by
the sample at 4m, where reading the counters' last values would see 45 + 1 and keep a
pre-restart error series alive.
The expected vector is ``judge.evidence`` of the hand counts, so the Python arithmetic the
benchmark uses and the rules Prometheus evaluates are the same.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from delivery import judge
from delivery.canary import evidence_group
from delivery.stack import load_stack_file
from slo.loader import load_catalogue
from slo.model import resolve_all
from slo.rules import by_service
from slo.yamlout import dump

ROOT = Path(__file__).resolve().parent.parent
STACK = load_stack_file(ROOT / "Pulumi.prod.yaml")
SLOS = by_service(resolve_all(load_catalogue(ROOT / STACK.catalogue)))
PROMTOOL = shutil.which("promtool")
SERIES = (
    'http_requests_total{{job="orchestrator",code="{code}",'
    'rollouts_pod_template_hash="{h}",pod="{pod}"}}'
)
TRACE = {
    SERIES.format(code="200", h="c", pod="p1"): "0 10 20 30 5 15 25 35 45 55",
    SERIES.format(code="500", h="c", pod="p1"): "_ _ 1 2 stale _ 1 1 1 1",
    SERIES.format(code="200", h="s", pod="p2"): "100000+100x9",
    SERIES.format(code="500", h="s", pod="p2"): "70+1x9",
}
# by hand, at 4m30s: the rules read the counters 10s back (the evidence's settle), so the last
# sample counted is the one at 4m; 200s gain 10, 10, 10, then 5 after the restart and 10 four
# times; the 500 series is new at the third sample (1), gains 1, and after the restart counts
# its new 1: 78 requests in 8 steps with traffic
CANARY = judge.Counts(requests=78, errors=3, squares=3 * 1**2 / 11, steps=8)
STABLE = judge.Counts(requests=808, errors=8, squares=8 * 1**2 / 101, steps=8)
# the same steps one by one, (requests, errors): the running sums add them up; stable serves
# 101 requests with one error in each
CANARY_STEPS = [(10, 0), (11, 1), (11, 1), (5, 0), (10, 0), (11, 1), (10, 0), (10, 0)]


def running_sums(gate: judge.Gate) -> tuple[float, float]:
    """(cusum, recent) at 4m30s: step k (the evaluation at 30 (k + 1) s) has its judged
    increment tested against the hypotheses stable's first k steps move. No restart point has a
    sum yet (the first is the evaluation at 0s), so cusum is the judged running sum itself;
    recent is the absolute increments of the steps evaluated within its span (prod: 3m30s, so
    from the second step on)."""
    span = judge.gate_looks(STACK.delivery, STACK.prometheus.scrape_interval).span
    judged = recent = 0.0
    for k, (n, x) in enumerate(CANARY_STEPS, start=1):
        a, j = judge.increments(gate, judge.Counts(n, x),
                                judge.Counts(101 * k, k, k / 101, k))
        judged += j
        if 30 * (k + 1) > 270 - span:
            recent += a
    return judged, recent


def _gate() -> judge.Gate:
    gates = judge.stack_gates(SLOS["orchestrator"], STACK, "orchestrator")
    return next(g for g in gates if g.name == "error-rate")


def _promtool_test(tmp_path: Path, group: dict) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL, "promtool is required (make test builds it)"
    (tmp_path / "rules.yml").write_text(dump({"groups": [group]}))
    gate = _gate()
    assert sum(n for n, _ in CANARY_STEPS) == CANARY.requests
    expected = judge.evidence(gate, CANARY, STABLE, *running_sums(gate))
    assert expected is not None
    selector = (
        'slo:canary_evidence:value{{slo="error-rate",rollouts_pod_template_hash="c",'
        'evidence="{}"}}'
    )
    test = {
        "rule_files": ["rules.yml"],
        "evaluation_interval": "30s",
        "tests": [{
            "interval": "30s",
            "input_series": [{"series": s, "values": v} for s, v in TRACE.items()],
            "promql_expr_test": [
                {
                    "expr": f"round({selector.format(name)}, 0.000001)",
                    "eval_time": "4m30s",
                    "exp_samples": [{
                        "labels": f'{{evidence="{name}",rollouts_pod_template_hash="c",'
                                  'service="orchestrator",slo="error-rate"}',
                        "value": round(value, 6),
                    }],
                }
                for name, value in zip(judge.EVIDENCE, expected, strict=True)
            ],
        }],
    }
    (tmp_path / "test.yml").write_text(dump(test))
    return subprocess.run([PROMTOOL, "test", "rules", "test.yml"], cwd=tmp_path,
                          capture_output=True, text=True, check=False, timeout=300)


def test_recorded_evidence_counts_every_request_once_across_a_restart(tmp_path):
    group = evidence_group("orchestrator", SLOS["orchestrator"], STACK)
    assert group is not None
    result = _promtool_test(tmp_path, group)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    "wrong, right",
    [
        # a reset read as a decrease: the restarted pod's requests go missing
        (") >= 0 or http_requests_total", ") >= -1e9 or http_requests_total"),
        # no restart from zero: a new or returning series adds nothing
        (">= 0 or http_requests_total", ">= 0 or 0 * http_requests_total"),
    ],
    ids=["counter resets ignored", "new series ignored"],
)
def test_the_promtool_check_catches_a_count_that_is_not_exact(tmp_path, wrong, right):
    group = evidence_group("orchestrator", SLOS["orchestrator"], STACK)
    assert group is not None
    broken = {**group, "rules": [
        {**r, "expr": r["expr"].replace(wrong, right)} for r in group["rules"]
    ]}
    assert broken != group
    result = _promtool_test(tmp_path, broken)
    assert result.returncode != 0
