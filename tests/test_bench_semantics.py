"""bench/canary_judgement.py: its model of Argo Rollouts' analysis semantics on hand-made
measurement sequences, and its quick run in `make test`. (Its PromQL arithmetic is checked
against a real Prometheus in tests/test_judge_promql.py.)"""

import re
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
import canary_judgement as bench  # noqa: E402

from delivery.canary import bodies  # noqa: E402
from delivery.config import load_stack_file  # noqa: E402
from slo.loader import load_catalogue  # noqa: E402
from slo.model import resolve_all  # noqa: E402
from slo.rules import by_service  # noqa: E402

S, I, E, F = bench.SUCCESSFUL, bench.INCONCLUSIVE, bench.ERROR, bench.FAILED  # noqa: E741
STACK = load_stack_file(ROOT / "Pulumi.dev.yaml")
SLOS = by_service(resolve_all(load_catalogue(ROOT / "catalogue" / "core-services.yaml")))
B = bodies("api-gateway", "api", SLOS["api-gateway"], STACK)
GATE = bench.Template.from_rendered(B.templates["gate"])
BACKGROUND = bench.Template.from_rendered(B.templates["background"])


def outcome(spec, sequence):
    phases = np.array([sequence], dtype=np.int8)
    end, phase = bench.metric_outcome(spec, phases, np.array([0]), 1, len(sequence))
    return int(end[0]), int(phase[0])


def test_a_gate_metric_fails_at_the_first_failed_measurement():
    spec = GATE.metrics[0]
    assert outcome(spec, [I, I, F, S] + [I] * 60) == (2, F)


def test_a_gate_metric_passes_at_the_first_successful_measurement():
    assert outcome(GATE.metrics[0], [I, I, I, S] + [I] * 60) == (3, S)


def test_a_gate_metric_without_a_verdict_by_its_count_is_inconclusive():
    spec = GATE.metrics[0]
    assert spec.count == STACK.delivery.analysis.max_measurements
    assert outcome(spec, [I] * (spec.count + 5)) == (spec.count - 1, I)


def test_errors_in_a_row_beyond_the_limit_end_the_metric_in_error():
    spec = GATE.metrics[0]
    limit = spec.consecutive_error_limit
    assert outcome(spec, [E] * (limit + 1) + [S] * 70) == (limit, E)
    assert outcome(spec, [E] * limit + [S] + [I] * 70) == (limit, S)  # a success resets it


def test_the_shared_incident_metric_pauses_on_its_first_inconclusive_measurement():
    spec = next(m for m in BACKGROUND.metrics if m.name.endswith("-shared-incident"))
    assert outcome(spec, [S, S, I] + [S] * 10) == (2, I)


def test_a_run_ends_with_the_first_bad_metric_and_dry_runs_never_decide():
    gate, other = GATE.metrics[0], GATE.metrics[1]
    passed = (np.array([3]), np.array([S]))
    failed = (np.array([5]), np.array([F]))
    end, phase = bench.run_outcome([gate, other], [passed, failed])
    assert (int(end[0]), int(phase[0])) == (5, F)
    dry = bench.MetricSpec(**{**other.__dict__, "dry_run": True})
    end, phase = bench.run_outcome([gate, dry], [passed, failed])
    assert (int(end[0]), int(phase[0])) == (5, S)  # done when both are; the dry run's ignored


def test_rendered_conditions_follow_argo_on_empty_nan_and_decisive_results():
    spec = GATE.metrics[0]
    abort = float(re.search(r">= (\S+)$", B.templates["gate"]["spec"]["metrics"][0][
        "failureCondition"]).group(1))

    def phase(values):
        env = bench.Env([np.array([v]) for v in values], np.array([len(values)]))
        return int(spec.measure(env)[0])

    assert phase([]) == I  # no canary requests: inconclusive, not an error
    assert phase([abort, 0, 1, 10, 0, 100, 0]) == F
    assert phase([float("nan"), -5.0, 0, 600, 0, 0, 0]) == S  # no baseline yet, still passes
    assert phase([float("nan"), 0.0, 0, 10, 0, 0, 0]) == I


def test_the_quick_run_prints_every_target_and_exits_by_them(tmp_path):
    result = subprocess.run(
        [sys.executable, "bench/canary_judgement.py", "--quick", "--out", str(tmp_path / "r.txt")],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False,
    )
    targets = re.findall(r"^target (\S+): (met|missed) \(", result.stdout, re.M)
    assert [name for name, _ in targets] == [
        "good-canaries-rarely-aborted", "bad-canaries-stopped", "fast-aborts",
        "idle-canary-never-promoted", "perfect-canary-promoted", "shared-incident-pauses",
    ], result.stdout[-2000:] + result.stderr[-2000:]
    missed = [name for name, verdict in targets if verdict == "missed"]
    assert result.returncode == (1 if missed else 0)
    # a quick run is too small to bound 0.1% from above: only that target may be missed
    assert set(missed) <= {"good-canaries-rarely-aborted"}
    report = (tmp_path / "r.txt").read_text().splitlines()
    for cell in ("m=0", "m=10", "shared 10x", "idle"):  # P(outcome) [95% interval] per cell
        rows = [line for line in report if line.strip().startswith(cell)]
        assert rows and all(re.search(r"\d+\.\d+ \[\d+\.\d+-\d+\.\d+\]", r) for r in rows)
