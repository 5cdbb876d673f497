"""The notification ConfigMap against Argo Rollouts' own notification engine.

``notifycheck`` (e2e/tools/notifycheck, built with the rollouts controller's module graph) parses
the ConfigMap and Secret as the controller does, creates every notifier, compiles every trigger
condition and template, and runs the triggers on Rollouts and AnalysisRuns: the bodies the
stack renders, and runs of every outcome built from the gate templates
(tests/analysis_runs.py, as tests/test_explain.py does). What a message says is compared with
``delivery explain`` on the same run: template and explainer decode one vector.
"""

from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from delivery import explain, judge, notifications
from delivery import rollout as rollout_bodies
from delivery.stack import NotificationsConfig, load_stack_file
from tests import analysis_runs as runs

ROOT = Path(__file__).resolve().parent.parent
CHECKER = Path.home() / ".cache" / "slo-canary-e2e" / "bin" / "notifycheck"
DASHBOARD = "https://grafana.example.internal/d/slo-api-gateway"
CONFIG = NotificationsConfig.model_validate({
    "notifiers": {
        "oncall": {"type": "webhook", "options": {
            "url": "http://127.0.0.1:9/hook",
            "headers": [{"name": "Authorization", "value": "Bearer $oncall-token"}]}},
        "team": {"type": "slack", "options": {"token": "$slack-token"}},
    },
    "subscriptions": [{"to": "oncall"}, {"to": "team", "recipient": "deploys"}],
})
DATA = notifications.configmap_data(CONFIG, {"api-gateway": DASHBOARD})
SECRET = {"oncall-token": "t0ken", "slack-token": "xoxb-test"}


def _rollout(step: int | None, status: dict[str, Any] | None = None, **spec: Any
             ) -> dict[str, Any]:
    """The prod api-gateway Rollout at ``step`` with ``status`` (the controller's view now)."""
    stack = load_stack_file(ROOT / "Pulumi.prod.yaml")
    body = rollout_bodies.rollout(
        "api-gateway", "api", stack.services["api-gateway"], stack.delivery,
        freeze=True, gate=True, background=True, annotate_scrape=False,
    )
    body["metadata"]["annotations"] = {"rollout.argoproj.io/revision": "7"}
    body["spec"].update(spec)
    if step is not None:
        body["status"] = {"currentStepIndex": step, "currentPodHash": "6f7c9",
                          "stableRS": "5d4b8", "phase": "Progressing", **(status or {})}
    return body


def _paused(*reasons: str) -> dict[str, Any]:
    return {"phase": "Paused", "pauseConditions": [{"reason": r} for r in reasons]}


ABORTED = {"abort": True, "phase": "Degraded"}
PROMOTED = {"phase": "Healthy", "stableRS": "6f7c9"}


STEPS = _rollout(None)["spec"]["strategy"]["canary"]["steps"]
TIMED = next(i for i, s in enumerate(STEPS) if s.get("pause", {}).get("duration"))
MANUAL = next(i for i, s in enumerate(STEPS) if s.get("pause") == {})
GATE_STEP = next(i for i, s in enumerate(STEPS) if "analysis" in s and i > 0)


def check(cases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if not CHECKER.exists():
        pytest.fail(f"{CHECKER} missing: run `make e2e-tools` (e2e/tools/build.sh notifycheck)")
    out = subprocess.run(
        [str(CHECKER)], input=json.dumps({"configMap": DATA, "secret": SECRET, "cases": cases}),
        capture_output=True, text=True, timeout=60, check=True,
    )
    result = json.loads(out.stdout)
    assert not result.get("error"), result["error"]
    for case in result["cases"]:
        assert not case.get("error"), case["error"]
    return list(result["cases"])


def one(trigger: str, rollout: dict[str, Any], analysis_runs: list[dict[str, Any]] | None
        ) -> dict[str, Any] | None:
    (case,) = check([{"trigger": trigger, "rollout": rollout, "analysisRuns": analysis_runs}])
    sent = case["sent"]
    assert len(sent) <= 1, sent
    return sent[0] if sent else None


def webhook(sent: dict[str, Any]) -> dict[str, Any]:
    return dict(json.loads(sent["webhook"]["oncall"]["body"]))


def test_the_engine_takes_the_configmap_every_trigger_and_both_notifiers() -> None:
    assert {k for k in DATA if k.startswith("trigger.")} == {
        f"trigger.{e.trigger}" for e in notifications.EVENTS.values()}
    assert "service.webhook.oncall" in DATA and "service.slack.team" in DATA
    check([])  # parsed, every notifier created, every condition and template compiled


def test_an_abort_names_the_slo_with_the_numbers_explain_decodes() -> None:
    bad = runs.evidence("error-rate", (30, 600, 20), (20, 60_000, 20))
    run = runs.run(runs.GATE, {"error-rate": [("Inconclusive", runs.value(bad)),
                                               ("Failed", runs.value(bad))]},
                    {"error-rate": "Failed"}, "Failed", 'Metric "error-rate" assessed Failed')
    assert one("slo-canary-aborted", _rollout(GATE_STEP), [run]) is None  # not yet aborted
    sent = one("slo-canary-aborted", _rollout(GATE_STEP, ABORTED), [run])
    assert sent is not None and sent["template"] == "slo-canary-rollout-aborted"
    said = {m.name: m for m in explain.explain_run(run).metrics}["error-rate"]
    assert said.verdict == "aborted" and said.abort is not None
    lines = sent["message"].splitlines()
    assert lines[0] == ("api/api-gateway ABORTED, rolled back: stable keeps serving (revision 7, "
                        f"{_rollout(None)['spec']['template']['spec']['containers'][0]['image']})")
    assert lines[1].startswith("SLO error-rate: FAILED"), lines
    assert "canary 30 bad of 600 requests, stable 20 bad of 60000" in lines[1]
    assert f"statistic {said.evidence['judged']:.2f} (aborts at {said.abort:.2f})" in lines[1]
    assert f"dashboard: {DASHBOARD}" in lines
    assert ("explain: kubectl get analysisrun -n api -l rollouts-pod-template-hash=6f7c9 -o yaml "
            "| python -m delivery explain -") in lines
    assert lines[-1] == "retry this image: kubectl argo rollouts retry rollout api-gateway -n api"
    body = webhook(sent)
    assert body["event"] == "aborted" and body["text"] == sent["message"]
    (slo,) = body["slos"]
    assert slo["slo"] == "error-rate" and slo["phase"] == "Failed"
    assert {k: float(v) for k, v in slo["evidence"].items()} == pytest.approx(said.evidence)
    assert list(slo["evidence"]) == sorted(judge.EVIDENCE)


def test_prometheus_errors_and_advisory_failures_are_said_as_such() -> None:
    errored = runs.run(runs.BACKGROUND, {"error-rate": [("Error", "dial tcp: refused")] * 3},
                        {"error-rate": "Error"}, "Error")
    sent = one("slo-canary-aborted", _rollout(GATE_STEP, ABORTED), [errored])
    assert sent is not None
    assert "SLO error-rate: PROMETHEUS ERRORS: no verdict could be taken" in sent["message"]
    bad = runs.evidence("latency", (300, 600, 20), (20, 60_000, 20))
    advisory = runs.run(runs.GATE, {"latency": [("Failed", runs.value(bad))]},
                         {"latency": "Failed"}, "Successful")
    advisory["status"]["metricResults"][0]["dryRun"] = True
    sent = one("slo-canary-aborted", _rollout(GATE_STEP, ABORTED), [advisory])
    assert sent is not None and "(advisory: dry run, it decides nothing)" in sent["message"]


def test_a_shared_incident_pauses_with_both_statistics_whatever_the_step() -> None:
    both = runs.evidence("error-rate", (60, 600, 20), (6_000, 60_000, 20))
    run = runs.run(runs.BACKGROUND, {
        "error-rate": [("Successful", runs.value(both))],
        "error-rate-shared-incident": [("Inconclusive", runs.value(both))]},
        {"error-rate-shared-incident": "Inconclusive"}, "Inconclusive")
    said = {m.name: m for m in explain.explain_run(run).metrics}["error-rate-shared-incident"]
    assert said.verdict == "paused"
    inside_timed_pause = _rollout(TIMED, _paused("CanaryPauseStep", "InconclusiveAnalysisRun"))
    for rollout in (inside_timed_pause, _rollout(GATE_STEP, _paused("InconclusiveAnalysisRun"))):
        sent = one("slo-canary-paused", rollout, [run])
        assert sent is not None and sent["template"] == "slo-canary-rollout-paused"
        text = sent["message"]
        assert "SLO error-rate-shared-incident: SHARED INCIDENT" in text
        assert (f"the canary's statistic {said.evidence['canary']:.2f} and stable's "
                f"{said.evidence['stable']:.2f} both at or above the abort boundary "
                f"{said.abort:.2f}") in text
        assert "go on: kubectl argo rollouts promote api-gateway -n api" in text


def test_a_budget_freeze_pauses_and_says_so() -> None:
    freeze = {"apiVersion": "argoproj.io/v1alpha1", "kind": "AnalysisRun",
              "metadata": {"name": "api-gateway-6f7c9-7-0"},
              "spec": {"metrics": [{"name": notifications.FREEZE_METRIC}]},
              "status": {"phase": "Inconclusive", "metricResults": [{
                  "name": notifications.FREEZE_METRIC, "phase": "Inconclusive",
                  "measurements": [{"phase": "Inconclusive", "value": "[-0.25]"}]}]}}
    sent = one("slo-canary-paused", _rollout(0, _paused("InconclusiveAnalysisRun")), [freeze])
    assert sent is not None
    assert ("SLO error-budget-remaining: BUDGET EXHAUSTED: releases wait until the error budget "
            "recovers; last value [-0.25]") in sent["message"]


def test_a_prometheus_outage_past_the_limit_pauses_and_says_so() -> None:
    run = runs.run(runs.BACKGROUND, {"prometheus-outage": [("Inconclusive", "[754]")]},
                   {"prometheus-outage": "Inconclusive"}, "Inconclusive")
    sent = one("slo-canary-paused", _rollout(GATE_STEP, _paused("InconclusiveAnalysisRun")), [run])
    assert sent is not None
    assert ("SLO prometheus-outage: PROMETHEUS OUTAGE: Prometheus was away longer than the outage "
            "limit and nothing was judged meanwhile; promote past this gate, or abort; last value "
            "[754]") in sent["message"]


def test_only_the_pauses_a_human_must_end_notify() -> None:
    timed = _rollout(TIMED, _paused("CanaryPauseStep"))
    assert one("slo-canary-paused", timed, None) is None  # every step's timed pause
    assert one("slo-canary-paused", _rollout(MANUAL), None) is None  # at the gate, not paused yet
    assert one("slo-canary-paused", {**_rollout(None), "status": {}}, None) is None
    assert one("slo-canary-paused", _rollout(None), None) is None  # no status at all
    manual = one("slo-canary-paused", _rollout(MANUAL, _paused("CanaryPauseStep")), None)
    assert manual is not None and "waits at its manual gate" in manual["message"]
    operator = one("slo-canary-paused", _rollout(TIMED, paused=True), None)
    assert operator is not None and "an operator paused it" in operator["message"]
    aborted = _rollout(GATE_STEP, {**ABORTED, **_paused("InconclusiveAnalysisRun")})
    assert one("slo-canary-paused", aborted, None) is None


def test_completed_is_said_once_per_judged_revision() -> None:
    end = len(STEPS)
    assert one("slo-canary-completed", _rollout(end, PROMOTED), None) is None  # first deployment
    good = runs.evidence("error-rate", (0, 5_000, 30), (10, 50_000, 30))
    older = runs.run(runs.GATE, {"error-rate": [("Successful", runs.value(good))]},
                      {"error-rate": "Successful"}, "Successful")
    newest = copy.deepcopy(older)
    newest["metadata"]["name"] = "api-gateway-6f7c9-7-8"
    assert one("slo-canary-completed", _rollout(end), [newest, older]) is None  # still canary
    sent = one("slo-canary-completed", _rollout(end, PROMOTED), [newest, older])
    assert sent is not None and sent["message"].startswith(
        "api/api-gateway PROMOTED: the canary is now stable")
    assert sent["oncePer"] == "7"  # the revision: a later scale-out does not say it again
    slos = webhook(sent)["slos"]
    assert [(s["slo"], s["phase"], s["run"]) for s in slos] == [
        ("error-rate", "Successful", "api-gateway-6f7c9-7-8")]  # the last gate only


def test_a_webhook_body_keys_the_state_it_reports() -> None:
    """The engine delivers at least once (docs/notifications.md): the key names the state a
    message reports, so a duplicate carries the same key and a later state a new one."""
    at = {"reason": "InconclusiveAnalysisRun", "startTime": "2026-12-07T05:24:09Z"}
    step = {"reason": "CanaryPauseStep", "startTime": "2026-12-07T05:23:57Z"}
    inside_timed_pause = _rollout(TIMED, {"phase": "Paused", "pauseConditions": [step, at]})
    gate = _rollout(MANUAL, {"phase": "Paused", "pauseConditions": [step]})
    operator = _rollout(TIMED, paused=True)
    aborted = _rollout(GATE_STEP, {**ABORTED, "abortedAt": "2026-12-07T05:25:00Z"})
    good = runs.evidence("error-rate", (0, 5_000, 30), (10, 50_000, 30))
    run = runs.run(runs.GATE, {"error-rate": [("Successful", runs.value(good))]},
                   {"error-rate": "Successful"}, "Successful")
    keys: dict[str, str] = {}
    for name, trigger, rollout, analysis in (
        ("shared", "slo-canary-paused", inside_timed_pause, None),
        ("gate", "slo-canary-paused", gate, None),
        ("operator", "slo-canary-paused", operator, None),
        ("aborted", "slo-canary-aborted", aborted, None),
        ("completed", "slo-canary-completed", _rollout(len(STEPS), PROMOTED), [run]),
    ):
        sent = one(trigger, rollout, analysis)
        assert sent is not None, name
        keys[name] = webhook(sent)["key"]
    assert keys == {
        "shared": "api/api-gateway/7/paused/2026-12-07T05:24:09Z",  # the latest condition's
        "gate": "api/api-gateway/7/paused/2026-12-07T05:23:57Z",
        "operator": "api/api-gateway/7/paused",  # no pause condition: one per revision
        "aborted": "api/api-gateway/7/aborted/2026-12-07T05:25:00Z",
        "completed": "api/api-gateway/7/completed",
    }
