"""Argo Rollouts AnalysisTemplates generated from a service's SLOs.

Each gated SLO becomes one metric that looks at the canary's pods only (by the
``rollouts_pod_template_hash`` label) and has three outcomes:

- no result, or fewer than ``minRequests`` canary requests: *inconclusive* (neither condition
  holds). Argo turns an empty result into an error when a condition reads ``result[0]`` without
  a length check, so both conditions check ``len(result) > 0`` first;
- error ratio at or below ``passBurnRate`` x the SLO's error budget: *successful*;
- above ``failBurnRate`` x the budget: *failed*; in between: *inconclusive*.

Three templates per service:

- ``<service>-slo-gate`` runs as a blocking step before each weight increase. It ends
  Successful only after ``consecutiveSuccesses`` good measurements in a row. If that evidence has
  not come within ``maxMeasurements``, Argo marks the metric Inconclusive and the rollout pauses
  for a human: a canary without traffic is never promoted.
- ``<service>-slo-background`` runs from the first step to the end and only aborts: failures
  beyond ``failureLimit``, or ``consecutiveErrorLimit`` query errors in a row (Prometheus
  unreachable), end it Failed/Error, which aborts the rollout. Inconclusive measurements there are
  tolerated (``inconclusiveLimit`` is the largest the schema allows) since the gates decide
  promotion.
- ``<service>-budget-freeze`` (optional) is the first step: it passes only while the service's
  error budget remaining is above zero; an exhausted or unknown budget pauses the rollout.
"""

from __future__ import annotations

from typing import Any

from slo import conventions as names
from slo import durations
from slo.model import Events, ResolvedSlo, number
from slo.promql import Matcher, Selector
from slo.stack import AnalysisConfig

CANARY_HASH_ARG = "canary-hash"
HASH_LABEL = "rollouts_pod_template_hash"
BACKGROUND_INCONCLUSIVE_LIMIT = 1_000_000
_HASH = Matcher(HASH_LABEL, "=", "{{args.%s}}" % CANARY_HASH_ARG)  # noqa: UP031 (Argo braces)


def gated(slos: list[ResolvedSlo]) -> list[ResolvedSlo]:
    """SLOs that judge canaries: ratio and latency indicators whose catalogue entry opts in."""
    return [s for s in slos if s.slo.canary_gate and s.events.kind != "gauge"]


def template_names(service: str) -> dict[str, str]:
    return {
        "gate": f"{service}-slo-gate",
        "background": f"{service}-slo-background",
        "freeze": f"{service}-budget-freeze",
    }


def _canary(selector: Selector) -> str:
    return selector.with_matchers((_HASH,)).render()


def canary_query(events: Events, window: str, min_requests: int) -> str:
    """The canary's error ratio over ``window``; empty below ``min_requests`` requests."""
    total = f"sum(rate({_canary(events.total_selector)}[{window}]))"
    if events.bad_selector is not None:
        bad = f"(sum(rate({_canary(events.bad_selector)}[{window}])) or vector(0))"
    else:
        assert events.good_selector is not None
        good = f"(sum(rate({_canary(events.good_selector)}[{window}])) or vector(0))"
        bad = f"({total} - {good})"
    requests = f"sum(increase({_canary(events.total_selector)}[{window}]))"
    return f"{bad} / ({total} > 0) and on() ({requests} >= {min_requests})"


def _conditions(limit_pass: float, limit_fail: float) -> tuple[str, str]:
    evidence = "len(result) > 0 && !isNaN(result[0])"
    return (
        f"{evidence} && result[0] <= {number(limit_pass)}",
        f"{evidence} && result[0] > {number(limit_fail)}",
    )


def _metric(slo: ResolvedSlo, cfg: AnalysisConfig, address: str) -> dict[str, Any]:
    success, failure = _conditions(
        slo.budget * cfg.pass_burn_rate, min(slo.budget * cfg.fail_burn_rate, 1.0)
    )
    return {
        "name": slo.slo.name,
        "interval": cfg.interval,
        "successCondition": success,
        "failureCondition": failure,
        "failureLimit": cfg.failure_limit,
        "consecutiveErrorLimit": cfg.consecutive_error_limit,
        "provider": {
            "prometheus": {
                "address": address,
                "query": canary_query(slo.events, cfg.window, cfg.min_requests),
            }
        },
    }


def _template(
    name: str,
    namespace: str,
    service: str,
    metrics: list[dict[str, Any]],
    args: list[dict[str, Any]],
) -> dict[str, Any]:
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "AnalysisTemplate",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/part-of": "slo", names.LABEL_SERVICE: service},
        },
        "spec": {"args": args, "metrics": metrics},
    }


def gate_template(
    service: str, namespace: str, slos: list[ResolvedSlo], cfg: AnalysisConfig, address: str
) -> dict[str, Any]:
    metrics = []
    for slo in gated(slos):
        metric = _metric(slo, cfg, address)
        metric.update(
            count=cfg.max_measurements,
            consecutiveSuccessLimit=cfg.consecutive_successes,
            inconclusiveLimit=cfg.max_measurements,
        )
        metrics.append(metric)
    return _template(
        template_names(service)["gate"], namespace, service, metrics, [{"name": CANARY_HASH_ARG}]
    )


def background_template(
    service: str, namespace: str, slos: list[ResolvedSlo], cfg: AnalysisConfig, address: str
) -> dict[str, Any]:
    metrics = []
    for slo in gated(slos):
        metric = _metric(slo, cfg, address)
        metric["inconclusiveLimit"] = BACKGROUND_INCONCLUSIVE_LIMIT
        metrics.append(metric)
    return _template(
        template_names(service)["background"],
        namespace,
        service,
        metrics,
        [{"name": CANARY_HASH_ARG}],
    )


def freeze_template(
    service: str, namespace: str, cfg: AnalysisConfig, address: str
) -> dict[str, Any]:
    """Passes while every SLO of the service has budget left; otherwise pauses (never aborts)."""
    query = f'min({names.ERROR_BUDGET_REMAINING}{{{names.LABEL_SERVICE}="{service}"}})'
    metric = {
        "name": "error-budget-remaining",
        "count": 1,
        "successCondition": "len(result) > 0 && !isNaN(result[0]) && result[0] > 0",
        "failureCondition": "false",
        "inconclusiveLimit": 0,
        "consecutiveErrorLimit": cfg.consecutive_error_limit,
        "provider": {"prometheus": {"address": address, "query": query}},
    }
    return _template(template_names(service)["freeze"], namespace, service, [metric], [])


def analysis_seconds(cfg: AnalysisConfig) -> int:
    """Longest a gate can take before it pauses for a human."""
    return durations.parse(cfg.interval) * cfg.max_measurements
