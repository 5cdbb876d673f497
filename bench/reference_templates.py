"""The canary analysis shipped before the sequential judge, for the benchmark's reference mode.

``bench/canary_judgement.py`` judges the same traffic twice: with today's rendered templates
(``delivery/``) and with these, the templates of commit 84bbf00 (``slo/analysis.py`` and
``slo/rollout.py`` there, with that commit's ``Pulumi.dev.yaml`` / ``Pulumi.prod.yaml``). One gated
SLO became one metric per template whose query is the canary's error ratio over a sliding
window, empty below ``minRequests`` requests in that window:

    bad_rate / (total_rate > 0) and on() (increase(total[window]) >= minRequests)

It passes at or below ``passBurnRate`` x budget and fails above ``failBurnRate`` x budget. The
gate needed ``consecutiveSuccesses`` passes in a row within ``maxMeasurements``; the background
run only aborted, once failures exceeded ``failureLimit``. Only the canary's hash was an argument.

``tests/test_canary_judgement.py`` checks that :func:`reference_bodies` renders exactly what
84bbf00's code rendered, when that commit is in the repository.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from delivery.names import template_names
from slo import conventions as names
from slo.model import RatioEvents, ResolvedSlo, number
from slo.promql import Matcher, Selector

REFERENCE_COMMIT = "84bbf00"


@dataclass(frozen=True)
class OldDelivery:
    """What 84bbf00's stack files set under ``delivery`` (weights and pauses as today)."""

    weights: tuple[int, ...]
    pause: str
    manual_gate: bool
    budget_freeze: bool
    interval: str
    window: str
    min_requests: int
    consecutive_successes: int
    max_measurements: int
    failure_limit: int
    consecutive_error_limit: int
    pass_burn_rate: float
    fail_burn_rate: float


OLD_STACKS = {
    "dev": OldDelivery((10, 25, 50), "30s", False, False, "30s", "1m", 50, 2, 10, 1, 4, 2, 10),
    "prod": OldDelivery((10, 25, 50), "5m", True, True, "1m", "5m", 200, 3, 15, 0, 3, 1, 5),
}

_CANARY = Matcher(names.HASH_LABEL, "=", "{{args.%s}}" % names.CANARY_HASH_ARG)  # noqa: UP031


def _canary(selector: Selector) -> str:
    return selector.with_matchers((_CANARY,)).render()


def canary_query(slo: ResolvedSlo, window: str, min_requests: int) -> str:
    """The old measurement: the canary's error ratio over ``window``, if it had enough requests."""
    events = slo.events
    assert isinstance(events, RatioEvents), "only counted ratios and classic latency were gated"
    total = f"sum(rate({_canary(events.total_selector)}[{window}]))"
    if events.bad_selector is not None:
        bad = f"(sum(rate({_canary(events.bad_selector)}[{window}])) or vector(0))"
    else:
        assert events.good_selector is not None
        bad = f"({total} - (sum(rate({_canary(events.good_selector)}[{window}])) or vector(0)))"
    requests = f"sum(increase({_canary(events.total_selector)}[{window}]))"
    return f"{bad} / ({total} > 0) and on() ({requests} >= {min_requests})"


def _metric(slo: ResolvedSlo, old: OldDelivery, address: str) -> dict[str, Any]:
    evidence = "len(result) > 0 && !isNaN(result[0])"
    passes = number(slo.budget * old.pass_burn_rate)
    fails = number(min(slo.budget * old.fail_burn_rate, 1.0))
    return {
        "name": slo.slo.name,
        "interval": old.interval,
        "successCondition": f"{evidence} && result[0] <= {passes}",
        "failureCondition": f"{evidence} && result[0] > {fails}",
        "failureLimit": old.failure_limit,
        "consecutiveErrorLimit": old.consecutive_error_limit,
        "provider": {
            "prometheus": {
                "address": address,
                "query": canary_query(slo, old.window, old.min_requests),
            }
        },
    }


def _template(
    name: str, namespace: str, service: str, metrics: list[dict[str, Any]], args: bool = True
) -> dict[str, Any]:
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "AnalysisTemplate",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {
                "app.kubernetes.io/part-of": names.PART_OF_SLO,
                names.LABEL_SERVICE: service,
            },
        },
        "spec": {"args": [{"name": names.CANARY_HASH_ARG}] if args else [], "metrics": metrics},
    }


@dataclass(frozen=True)
class ReferenceBodies:
    templates: dict[str, dict[str, Any]]  # gate, background, freeze (when the stack froze)
    canary: dict[str, Any]  # the Rollout's strategy.canary: steps and background analysis


def reference_bodies(
    service: str, namespace: str, slos: list[ResolvedSlo], stack: str, address: str
) -> ReferenceBodies:
    """84bbf00's gate, background and freeze templates and canary steps of one service."""
    old = OLD_STACKS[stack]
    gated = [s for s in slos if s.slo.canary_gate and s.events.can_gate]
    tnames = template_names(service)
    gate = [
        {
            **_metric(s, old, address),
            "count": old.max_measurements,
            "consecutiveSuccessLimit": old.consecutive_successes,
            "inconclusiveLimit": old.max_measurements,
        }
        for s in gated
    ]
    background = [{**_metric(s, old, address), "inconclusiveLimit": 1_000_000} for s in gated]
    templates = {
        "gate": _template(tnames["gate"], namespace, service, gate),
        "background": _template(tnames["background"], namespace, service, background),
    }
    hash_arg = [{"name": names.CANARY_HASH_ARG, "valueFrom": {"podTemplateHashValue": "Latest"}}]
    steps: list[dict[str, Any]] = []
    if old.budget_freeze:
        budget = f'min({names.ERROR_BUDGET_REMAINING}{{{names.LABEL_SERVICE}="{service}"}})'
        freeze = {
            "name": "error-budget-remaining",
            "count": 1,
            "successCondition": "len(result) > 0 && !isNaN(result[0]) && result[0] > 0",
            "failureCondition": "false",
            "inconclusiveLimit": 0,
            "consecutiveErrorLimit": old.consecutive_error_limit,
            "provider": {
                "prometheus": {
                    "address": address,
                    "query": budget,
                }
            },
        }
        templates["freeze"] = _template(tnames["freeze"], namespace, service, [freeze], args=False)
        steps.append({"analysis": {"templates": [{"templateName": tnames["freeze"]}]}})
    for weight in old.weights:
        steps.append({"setWeight": weight})
        steps.append({"pause": {"duration": old.pause}})
        if gated:
            steps.append(
                {"analysis": {"templates": [{"templateName": tnames["gate"]}], "args": hash_arg}}
            )
    if old.manual_gate:
        steps.append({"pause": {}})
    canary: dict[str, Any] = {"steps": steps}
    if gated:
        canary["analysis"] = {
            "templates": [{"templateName": tnames["background"]}],
            "startingStep": 0,
            "args": hash_arg,
        }
    return ReferenceBodies(templates=templates, canary=canary)
