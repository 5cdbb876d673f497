"""`python -m delivery explain` on AnalysisRuns built from the rendered dev templates (their real
conditions) with measurements in the form Argo's Prometheus provider stores, the values from
``judge.evidence``: every outcome is said in words, the JSON carries the vector, and malformed
input is one line."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from delivery import explain, judge
from tests.analysis_runs import BACKGROUND, GATE, GATE_BY_NAME
from tests.analysis_runs import evidence as _evidence
from tests.analysis_runs import run as _run
from tests.analysis_runs import value as _value

ROOT = Path(__file__).resolve().parent.parent


def _explain(run: dict[str, Any]) -> dict[str, explain.MetricVerdict]:
    return {m.name: m for m in explain.explain_run(run).metrics}


def test_a_failed_gate_is_an_abort_with_its_numbers_and_threshold():
    bad = _evidence("error-rate", (30, 600, 20), (20, 60_000, 20))
    run = _run(GATE, {"error-rate": [("Inconclusive", _value(bad)), ("Failed", _value(bad))]},
               {"error-rate": "Failed"}, "Failed", 'Metric "error-rate" assessed Failed')
    verdict = _explain(run)["error-rate"]
    assert verdict.verdict == "aborted" and verdict.role == "gate"
    assert verdict.abort == pytest.approx(GATE_BY_NAME["error-rate"].abort, rel=1e-9)
    assert verdict.evidence["canary_errors"] == 30 and verdict.evidence["canary_requests"] == 600
    text = explain.render_text([explain.explain_run(run)])
    assert "error-rate [gate]: ABORTED" in text
    assert "30 bad of 600 requests (5%) over 20 scrape intervals" in text
    assert "20 bad of 60,000 (0.0333%)" in text


def test_a_passed_gate_and_a_waiting_one_say_what_is_missing():
    good = _evidence("error-rate", (0, 5_000, 30), (10, 50_000, 30))
    early = _evidence("availability", (0, 40, 10), (10, 50_000, 10))
    run = _run(GATE, {"error-rate": [("Successful", _value(good))],
                      "availability": [("Inconclusive", _value(early))]},
               {"error-rate": "Successful", "availability": "Running"})
    verdicts = _explain(run)
    assert verdicts["error-rate"].verdict == "passed"
    waiting = verdicts["availability"]
    assert waiting.verdict == "waiting"
    assert "between pass" in waiting.reason and "more canary requests to pass" in waiting.reason


def test_too_few_intervals_and_no_traffic_are_no_verdict():
    few = _evidence("error-rate", (5, 50, judge.MIN_STEPS - 1), (10, 5_000, judge.MIN_STEPS - 1))
    run = _run(GATE, {"error-rate": [("Inconclusive", _value(few))],
                      "availability": [("Inconclusive", "[]")]}, {})
    verdicts = _explain(run)
    assert verdicts["error-rate"].verdict == "waiting"
    assert f"of the {judge.MIN_STEPS} scrape intervals" in verdicts["error-rate"].reason
    assert verdicts["availability"].verdict == "no-traffic"


def test_prometheus_errors_are_said_and_are_no_verdict():
    run = _run(BACKGROUND, {"error-rate": [("Error", "dial tcp: connection refused")] * 3},
               {"error-rate": "Running"})
    verdict = _explain(run)["error-rate"]
    assert verdict.verdict == "prometheus-errors" and verdict.errors == 3
    assert "connection refused" in verdict.reason and "no verdict" in verdict.reason


def test_a_shared_incident_is_a_pause_not_an_abort():
    both = _evidence("error-rate", (60, 600, 20), (6_000, 60_000, 20))
    run = _run(BACKGROUND, {"error-rate": [("Successful", _value(both))],
                            "error-rate-shared-incident": [("Inconclusive", _value(both))]},
               {"error-rate-shared-incident": "Inconclusive"}, "Inconclusive")
    verdicts = _explain(run)
    assert verdicts["error-rate-shared-incident"].role == "shared-incident"
    assert verdicts["error-rate-shared-incident"].verdict == "paused"
    assert "shared incident" in verdicts["error-rate-shared-incident"].reason
    assert verdicts["error-rate"].verdict != "aborted"


def test_an_outage_past_the_limit_is_a_pause_that_says_how_long_prometheus_was_away():
    run = _run(BACKGROUND, {"prometheus-outage": [("Successful", "[30]"), ("Error", "refused"),
                                                  ("Inconclusive", "[754]")]},
               {"prometheus-outage": "Inconclusive"}, "Inconclusive")
    verdict = _explain(run)["prometheus-outage"]
    assert verdict.role == "outage" and verdict.verdict == "paused"
    assert "away for 754 s, longer than the outage limit (600 s)" in verdict.reason
    assert "promote" in verdict.reason and "abort" in verdict.reason
    text = explain.render_text([explain.explain_run(run)])
    assert "prometheus-outage [outage]: PAUSED" in text and "canary:" not in text
    quiet = _run(BACKGROUND, {"prometheus-outage": [("Successful", "[30]")]}, {})
    assert _explain(quiet)["prometheus-outage"].verdict == "passed"


def test_the_json_carries_the_vector_by_name(tmp_path):
    bad = _evidence("error-rate", (30, 600, 20), (20, 60_000, 20))
    run = _run(GATE, {"error-rate": [("Failed", _value(bad))]}, {"error-rate": "Failed"},
               "Failed")
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": [run]}))
    done = subprocess.run([sys.executable, "-m", "delivery", "explain", str(path), "--json"],
                          cwd=ROOT, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    (found,) = json.loads(done.stdout)
    metric = next(m for m in found["metrics"] if m["name"] == "error-rate")
    assert metric["verdict"] == "aborted"
    assert [metric["evidence"][k] for k in judge.EVIDENCE] == pytest.approx(list(bad))


@pytest.mark.parametrize("text, line", [
    ("{", "{src}: not YAML or JSON (line 1)"),
    ("kind: Rollout\n", "{src}: not an AnalysisRun (kubectl get analysisrun NAME -o yaml)"),
    ("kind: AnalysisRun\nmetadata: {name: r}\nspec: {metrics: 3}\n",
     "{src}: r: spec.metrics: a list of metrics is expected"),
    ("", "{src}: not an AnalysisRun (kubectl get analysisrun NAME -o yaml)"),
])
def test_malformed_input_is_one_line(text, line, tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text(text)
    done = subprocess.run([sys.executable, "-m", "delivery", "explain", str(path)], cwd=ROOT,
                          capture_output=True, text=True, check=False)
    assert done.returncode == 1
    assert done.stderr.splitlines() == [line.replace("{src}", str(path))]


def test_standard_input_and_a_missing_file(tmp_path):
    good = _evidence("error-rate", (0, 5_000, 30), (10, 50_000, 30))
    run = _run(GATE, {"error-rate": [("Successful", _value(good))]}, {"error-rate": "Successful"})
    done = subprocess.run([sys.executable, "-m", "delivery", "explain", "-"], cwd=ROOT,
                          input=json.dumps(run), capture_output=True, text=True, check=False)
    assert done.returncode == 0 and "error-rate [gate]: PASSED" in done.stdout
    missing = tmp_path / "nope.yaml"
    done = subprocess.run([sys.executable, "-m", "delivery", "explain", str(missing)], cwd=ROOT,
                          capture_output=True, text=True, check=False)
    assert done.returncode == 1
    assert done.stderr.splitlines() == [f"{missing}: cannot read it (No such file or directory)"]


def test_an_advisory_metric_that_fails_is_not_called_an_abort():
    bad = _evidence("error-rate", (30, 600, 20), (20, 60_000, 20))
    run = _run(BACKGROUND, {"error-rate": [("Failed", _value(bad))]}, {"error-rate": "Failed"})
    run["spec"]["dryRun"] = [{"metricName": "error-rate"}]
    verdict = _explain(run)["error-rate"]
    assert verdict.verdict == "failed-advisory" and verdict.advisory
    assert "advisory (dry run), so the rollout goes on" in verdict.reason
    del run["spec"]["dryRun"]
    assert _explain(run)["error-rate"].verdict == "aborted"


FAKE_KUBECTL = '''#!{python}
"""A kubectl that answers from files: the Rollout, the AnalysisRuns; records its arguments."""
import json, sys
from pathlib import Path
here = Path(__file__).parent
with (here / "calls").open("a") as calls:
    calls.write(json.dumps(sys.argv[1:]) + "\\n")
if (here / "fail").exists():
    sys.stderr.write("Unable to connect to the server: dial tcp 10.0.0.1:6443: i/o timeout\\n")
    sys.exit(1)
kind = "rollout" if "rollout" in sys.argv else "analysisrun"
sys.stdout.write((here / f"{{kind}}.json").read_text())
'''


def _fake_kubectl(tmp_path: Path, rollout: dict[str, Any], runs: list[dict[str, Any]]) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "kubectl"
    fake.write_text(FAKE_KUBECTL.format(python=sys.executable))
    fake.chmod(0o755)
    (bin_dir / "rollout.json").write_text(json.dumps(rollout))
    (bin_dir / "analysisrun.json").write_text(json.dumps({"kind": "List", "items": runs}))
    return bin_dir


def _explain_live(bin_dir: Path, stack: Path, service: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": str(bin_dir), "HOME": str(bin_dir)}  # no other kubectl
    return subprocess.run(
        [sys.executable, "-m", "delivery", "explain", "--stack", str(stack), "--service", service,
         "--json"], cwd=ROOT, env=env, capture_output=True, text=True, check=False)


def _revision(run: dict[str, Any], revision: str, name: str, created: str) -> dict[str, Any]:
    run = copy.deepcopy(run)
    run["metadata"].update(name=name, creationTimestamp=created,
                           annotations={"rollout.argoproj.io/revision": revision})
    return run


def test_explain_reads_the_current_revisions_runs_from_the_stacks_cluster(tmp_path):
    bad = _evidence("error-rate", (30, 600, 20), (20, 60_000, 20))
    failed = _run(GATE, {"error-rate": [("Failed", _value(bad))]}, {"error-rate": "Failed"},
                  "Failed")
    runs = [_revision(failed, "4", "api-gateway-6f7c9-4-5", "2026-12-05T08:02:00Z"),
            _revision(failed, "3", "api-gateway-6f7c9-3-2", "2026-12-04T10:00:00Z"),
            _revision(failed, "4", "api-gateway-6f7c9-4-2", "2026-12-05T08:00:00Z")]
    rollout = {"kind": "Rollout", "metadata": {"name": "api-gateway", "annotations": {
        "rollout.argoproj.io/revision": "4"}}, "status": {"currentPodHash": "6f7c9"}}
    bin_dir = _fake_kubectl(tmp_path, rollout, runs)
    stack = tmp_path / "Pulumi.dev.yaml"
    stack.write_text((ROOT / "Pulumi.dev.yaml").read_text().replace(
        "config:\n", "config:\n  kubernetes:context: dev-cluster\n", 1))
    (tmp_path / "catalogue").symlink_to(ROOT / "catalogue")
    done = _explain_live(bin_dir, stack, "api-gateway")
    assert done.returncode == 0, done.stderr
    # revision 4's runs only, in the order they were created
    assert [r["name"] for r in json.loads(done.stdout)] == [
        "api-gateway-6f7c9-4-2", "api-gateway-6f7c9-4-5"]
    calls = [json.loads(line) for line in (bin_dir / "calls").read_text().splitlines()]
    assert calls == [
        ["--context", "dev-cluster", "get", "rollout", "api-gateway", "-n", "api", "-o", "json"],
        ["--context", "dev-cluster", "get", "analysisrun", "-n", "api", "-l",
         "rollouts-pod-template-hash=6f7c9", "-o", "json"],
    ]


def test_explain_from_a_cluster_says_in_one_line_what_went_wrong(tmp_path):
    rollout = {"kind": "Rollout", "metadata": {"name": "api-gateway"}, "status": {}}
    bin_dir = _fake_kubectl(tmp_path, rollout, [])
    stack = ROOT / "Pulumi.dev.yaml"
    done = _explain_live(bin_dir, stack, "api-gateway")
    assert (done.returncode, done.stderr) == (
        1, "rollout api/api-gateway: no current revision yet\n")
    (bin_dir / "fail").touch()
    done = _explain_live(bin_dir, stack, "api-gateway")
    assert (done.returncode, done.stderr) == (1, (
        "rollout api/api-gateway: kubectl failed: Unable to connect to the server: dial tcp "
        "10.0.0.1:6443: i/o timeout\n"))
    (bin_dir / "kubectl").unlink()
    done = _explain_live(bin_dir, stack, "api-gateway")
    assert done.returncode == 1 and done.stderr.startswith("kubectl: not found")
    done = _explain_live(bin_dir, stack, "billing")
    assert done.returncode == 1 and done.stderr.startswith(
        "Pulumi.dev.yaml: billing: not a service of this stack")
    done = subprocess.run([sys.executable, "-m", "delivery", "explain", "run.yaml", "--stack",
                           str(stack), "--service", "api-gateway"], cwd=ROOT,
                          capture_output=True, text=True, check=False)
    assert done.returncode == 2 and "give FILE (or - for stdin), or --stack and" in done.stderr
