"""AnalysisRuns for tests: built from the rendered dev templates of api-gateway (their real
conditions), with measurements in the form Argo's Prometheus provider stores them and values
from ``judge.evidence``. Used by tests/test_explain.py and e2e/test_notification_engine.py."""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

from delivery import analysis, judge
from delivery.stack import load_stack_file, stack_catalogue
from slo.rules import by_service

ROOT = Path(__file__).resolve().parent.parent


def templates() -> tuple[dict[str, Any], dict[str, Any], list[judge.Gate]]:
    stack = load_stack_file(ROOT / "Pulumi.dev.yaml")
    _, slos = stack_catalogue(stack, ROOT, "Pulumi.dev.yaml")
    mine = by_service(slos)["api-gateway"]
    gates = judge.gates(mine, stack.delivery)
    ns = mine[0].service.namespace
    args = (ns, gates, stack.delivery, stack.prometheus)
    return (analysis.gate_template("api-gateway", *args),
            analysis.background_template("api-gateway", *args), gates)


GATE, BACKGROUND, GATES = templates()
GATE_BY_NAME = {g.name: g for g in GATES}


def value(vector: tuple[float, ...] | None) -> str:
    """As Argo's Prometheus provider writes a vector result."""
    if vector is None:
        return "[]"
    return "[" + ",".join("NaN" if math.isnan(v) else repr(v) for v in vector) + "]"


def run(template: dict[str, Any], measured: dict[str, list[tuple[str, str]]],
         phases: dict[str, str], phase: str = "Running", message: str = "") -> dict[str, Any]:
    run: dict[str, Any] = {"apiVersion": "argoproj.io/v1alpha1", "kind": "AnalysisRun",
           "metadata": {"name": "api-gateway-6f7c9-2-1", "namespace": "api"},
           "spec": {"metrics": copy.deepcopy(template["spec"]["metrics"])},
           "status": {"phase": phase, "message": message, "metricResults": []}}
    for name, entries in measured.items():
        run["status"]["metricResults"].append({
            "name": name, "phase": phases.get(name, "Running"), "count": len(entries),
            "measurements": [
                {"phase": p, "value": v} if p != "Error" else {"phase": p, "message": v}
                for p, v in entries],
        })
    return run


def evidence(slo: str, canary: tuple[float, float, int], stable: tuple[float, float, int]
              ) -> tuple[float, ...]:
    gate = GATE_BY_NAME[slo]
    c, s = (judge.Counts(requests=n, errors=x, squares=x * x / n / k if n else 0, steps=k)
            for x, n, k in (canary, stable))
    found = judge.evidence(gate, c, s)
    assert found is not None
    return found
