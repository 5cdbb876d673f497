"""``promtool test rules`` files that prove each SLO's alerts behave as the Workbook says.

For every SLO we synthesise series for a set of scenarios (a full outage, a 10x and a 2x burn, a
0.9x burn for three days, a short outage, recovery, no traffic, absent metrics), always after
enough good history to fill the longest alert window. The expected alerts at each checked
moment come from an independent model of the windows: plain sums of events per minute, not the
rules' PromQL. A moment is only checked where the model's answer does not change when the
windows shift by a minute either way, so the proof is exact where it asserts and never flaky.

Four parts: ``oracle`` (the window model), ``notation`` (promtool's input series),
``scenarios`` (what is proven) and this module (the test files).
"""

from __future__ import annotations

from typing import Any

from slo import conventions as names
from slo.model import ResolvedSlo
from slo.proofs.notation import input_series, series_name
from slo.proofs.oracle import Model, ProofError
from slo.proofs.scenarios import Check, Scenario, scenarios
from slo.rules import alert_rules

__all__ = ["ProofError", "proof_files", "scenarios"]


def _severity(alert: str) -> str | None:
    """The severity a check's logical alert name stands for (None: ``SLOMetricsAbsent``)."""
    return next((sev for sev, name in names.ALERT_BURN.items() if name == alert), None)


def _expected(slo: ResolvedSlo, alert: str) -> list[dict[str, Any]]:
    severity = _severity(alert)
    if severity is None:
        rule = next(r for r in alert_rules(slo) if r["alert"] == alert)
    else:
        rule = next(r for r in alert_rules(slo) if r["labels"] == slo.alert_labels(severity)
                    and r["alert"] == slo.alert_name(severity))
    return [{"exp_labels": dict(rule["labels"]), "exp_annotations": dict(rule["annotations"])}]


def _sharing(slo: ResolvedSlo, alert: str) -> list[str]:
    """The logical burn-rate alerts promtool sees under the same name as ``alert``."""
    severity = _severity(alert)
    if severity is None:
        return [alert]
    return [
        logical
        for other, logical in names.ALERT_BURN.items()
        if slo.alert_name(other) == slo.alert_name(severity)
        and any(t.severity == other for t in slo.tiers)
    ]


def _alert_test(slo: ResolvedSlo, model: Model, check: Check, minute: int) -> dict[str, Any]:
    """promtool's expectation at ``minute``. Checks name alerts by their logical names
    (``SLOBurnRatePage``); where the catalogue gives both burn-rate alerts one name, promtool
    sees both under it, so every severity that shares the name is expected as the oracle says."""
    severity = _severity(check.alert)
    if severity is None:
        return {
            "eval_time": f"{minute}m",
            "alertname": check.alert,
            "exp_alerts": _expected(slo, check.alert) if check.firing else [],
        }
    expected = []
    for logical in _sharing(slo, check.alert):
        state = check.firing if logical == check.alert else model.robust(logical, minute)
        if state:  # robust: _robust_minute chose a minute where every sharing alert is
            expected += _expected(slo, logical)
    return {"eval_time": f"{minute}m", "alertname": slo.alert_name(severity),
            "exp_alerts": expected}


def test_group(slo: ResolvedSlo, scenario: Scenario) -> dict[str, Any]:
    model = Model(slo, scenario.timeline, scenario.gauge_values, scenario.step)
    alert_tests = []
    for check in scenario.checks:
        minute = _robust_minute(model, check, _sharing(slo, check.alert))
        if model.robust(check.alert, minute) is not check.firing:
            raise ProofError(
                f"{slo.service.name}/{slo.slo.name}: '{scenario.name}': the check "
                f"'{check.why}' expects {check.alert} {'firing' if check.firing else 'quiet'} "
                f"at minute {minute}, and the window oracle says otherwise"
            )
        alert_tests.append(_alert_test(slo, model, check, minute))
    group: dict[str, Any] = {
        "name": f"{slo.service.name}/{slo.slo.name}: {scenario.name}",
        "interval": "1m",
        "input_series": input_series(
            slo.events, scenario.timeline, scenario.gauge_values, scenario.without_bad_series
        ),
        "alert_rule_test": alert_tests,
    }
    if scenario.expr_checks:
        group["promql_expr_test"] = [
            {
                "eval_time": f"{minute}m",
                "expr": slo.selector_of(record),
                "exp_samples": []
                if value is None
                else [{"labels": series_name(record, slo.rule_labels), "value": value}],
            }
            for minute, record, value in scenario.expr_checks
        ]
    if not alert_tests:
        del group["alert_rule_test"]
    return group


def _robust_minute(model: Model, check: Check, alerts: list[str]) -> int:
    """The checked minute, moved by at most 3 evaluations to where the answer is certain for
    every alert promtool sees under the checked name."""
    aligned = check.minute - check.minute % model.step
    for offset in (0, 1, -1, 2, -2, 3, -3):
        minute = aligned + offset * model.step
        if all(model.robust(alert, minute) is not None for alert in alerts):
            return minute
    raise ProofError(
        f"{model.slo.service.name}/{model.slo.slo.name}: the check '{check.why}' at minute "
        f"{check.minute} sits on an alert boundary; the scenario needs another moment"
    )


def proof_files(slo: ResolvedSlo, rule_file: str) -> dict[int, dict[str, Any]]:
    """promtool test files for one SLO by evaluation interval in minutes.

    Scenarios about paging run at a 1m evaluation interval for minute precision; the
    multi-day ticket scenarios run at 5m, which keeps promtool's work small.
    """
    if slo.events.promtool_series is None:
        raise ProofError(
            f"{slo.service.name}/{slo.slo.name}: {slo.events.describe()} cannot be written in "
            "promtool's series notation; this SLO has no generated proof"
        )
    files: dict[int, dict[str, Any]] = {}
    for scenario in scenarios(slo):
        doc = files.setdefault(
            scenario.step,
            {"rule_files": [rule_file], "evaluation_interval": f"{scenario.step}m", "tests": []},
        )
        doc["tests"].append(test_group(slo, scenario))
    return files
