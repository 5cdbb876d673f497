"""Argo Rollouts AnalysisTemplates of one service, from its gates (``delivery/judge.py``).

Upstream semantics relied on (Argo Rollouts v1.9, ``analysis/analysis.go``):

- a measurement with both conditions is Failed when the failure condition holds, Successful when
  only the success condition does, Inconclusive when neither does; a provider error is Error;
- a metric is Failed when failures exceed ``failureLimit``, Inconclusive when inconclusive
  measurements exceed ``inconclusiveLimit``, Error when consecutive errors exceed
  ``consecutiveErrorLimit``; Successful at ``consecutiveSuccessLimit``; at ``count`` without it,
  Inconclusive;
- once one metric of a run is Failed, Error or Inconclusive the run terminates with that phase
  and metrics still under their limits are marked Successful; dry-run metrics never decide;
- a blocking step's Inconclusive run pauses the rollout, Failed or Error aborts it; a background
  run acts when it ends, whatever step the rollout is at;
- a metric's ``initialDelay`` postpones its first measurement until that long after the run
  started, and the run is requeued for that moment.

Three templates per service:

- ``<service>-slo-gate`` is a blocking step after each weight's pause. Per enforced SLO one
  metric that passes once the canary's statistic falls to the accept boundary
  (``consecutiveSuccessLimit: 1``), fails once the judged statistic reaches the abort boundary
  (``failureLimit: 0``: the boundary already carries the risk), and is otherwise inconclusive;
  after ``maxMeasurements`` without a verdict the rollout pauses for a human. Where the pause is
  shorter than the recording's lag and a step, the first measurement waits (``judge.Looks``)
  so that it reads the weight's own traffic.
- ``<service>-slo-background`` runs from the first step to the end: per SLO the same statistic,
  aborting when it reaches the abort boundary, and with ``baseline: compare`` a second metric
  ``<slo>-shared-incident`` that pauses the rollout when canary and stable are both bad and the
  canary is not worse. Advisory SLOs appear here only, as dry-run metrics. Where the evidence is
  recorded, a metric ``prometheus-outage`` pauses the rollout once Prometheus answers again after
  an outage longer than ``outageLimit`` (the evidence group's gap, ``delivery/evidence.py``).

Prometheus outages. An unanswered query is an Error measurement. In v1.9.1 it adds to the
metric's error counters, not to ``count`` (``analysis.go``), so a metric whose measurements all
errored never reaches its count and is never Successful (argo-rollouts #4479 reports such runs
Successful on 1.6.6). Past ``consecutiveErrorLimit`` errors in a row the metric, then the run,
is Error, and a step's or the background's Error run aborts the rollout. The rendered limit is
therefore unlimited: while Prometheus is away every metric waits, and nothing pauses, aborts or
promotes. A pause needs a measurement, which needs Prometheus: the outage metric takes it at
the first answer after the outage.
- ``<service>-budget-freeze`` (optional) is the first step: it passes only while the service's
  error budget remaining is above zero; an exhausted or unknown budget pauses the rollout.
"""

from __future__ import annotations

from typing import Any

from delivery import judge
from delivery.judge import Gate, evidence_window
from delivery.names import template_names
from delivery.stack import AnalysisConfig, DeliveryConfig, PrometheusConfig, go_seconds
from slo import conventions as names
from slo import durations

SHARED_INCIDENT_SUFFIX = "-shared-incident"


def _metric(
    gate: Gate, cfg: AnalysisConfig, prometheus: PrometheusConfig, lookback: str
) -> dict[str, Any]:
    query = judge.query(gate, lookback, prometheus.scrape_interval)
    return {
        "name": gate.name,
        "interval": cfg.interval,
        "consecutiveErrorLimit": cfg.consecutive_error_limit,
        "provider": {"prometheus": {"address": prometheus.address, "query": query}},
    }


def _template(
    name: str,
    namespace: str,
    service: str,
    metrics: list[dict[str, Any]],
    args: bool,
    dry_run: list[str] | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {"metrics": metrics, "args": []}
    if args:
        spec["args"] = [{"name": names.CANARY_HASH_ARG}, {"name": names.STABLE_HASH_ARG}]
    if dry_run:
        spec["dryRun"] = [{"metricName": m} for m in dry_run]
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
        "spec": spec,
    }


def gate_template(
    service: str,
    namespace: str,
    gates: list[Gate],
    delivery: DeliveryConfig,
    prometheus: PrometheusConfig,
) -> dict[str, Any]:
    """The blocking step: enforced SLOs only (advisory ones never hold a rollout)."""
    cfg, lookback = delivery.analysis, evidence_window(delivery)
    delay = judge.gate_looks(delivery, prometheus.scrape_interval).delay
    metrics = []
    for gate in (g for g in gates if g.enforcement == "enforce"):
        metric = _metric(gate, cfg, prometheus, lookback)
        if delay:  # the first look waits for the weight's own traffic to be recorded
            metric["initialDelay"] = durations.format_seconds(delay)
        metric.update(
            count=cfg.max_measurements,
            consecutiveSuccessLimit=1,
            successCondition=judge.passes(gate),
            failureCondition=judge.fails(gate),
            failureLimit=0,
            inconclusiveLimit=cfg.max_measurements,
        )
        metrics.append(metric)
    return _template(template_names(service)["gate"], namespace, service, metrics, args=True)


def background_template(
    service: str,
    namespace: str,
    gates: list[Gate],
    delivery: DeliveryConfig,
    prometheus: PrometheusConfig,
) -> dict[str, Any]:
    """Runs for the whole rollout and only aborts, or pauses on an incident stable shares."""
    cfg, lookback = delivery.analysis, evidence_window(delivery)
    metrics, dry_run = [], []
    for gate in gates:
        metric = _metric(gate, cfg, prometheus, lookback)
        metric.update(
            successCondition=judge.not_failing(gate),
            failureCondition=judge.fails(gate),
            failureLimit=0,
            inconclusiveLimit=judge.BACKGROUND_INCONCLUSIVE_LIMIT,
        )
        metrics.append(metric)
        if gate.compare:
            incident = _metric(gate, cfg, prometheus, lookback)
            incident.update(
                name=gate.name + SHARED_INCIDENT_SUFFIX,
                successCondition=judge.no_shared_incident(gate),
                failureCondition="false",
                inconclusiveLimit=0,
            )
            metrics.append(incident)
        if gate.enforcement == "advisory":
            dry_run.append(gate.name)
            if gate.compare:
                dry_run.append(gate.name + SHARED_INCIDENT_SUFFIX)
    if any(g.enforcement == "enforce" and judge.recorded(g) for g in gates):
        metrics.append(outage_metric(service, cfg, prometheus))
    return _template(
        template_names(service)["background"],
        namespace,
        service,
        metrics,
        args=True,
        dry_run=dry_run,
    )


OUTAGE_METRIC = "prometheus-outage"
ERROR_RETRY_SECONDS = 10  # Argo Rollouts v1.9.1 measures again this long after an Error


def outage_view(cfg: AnalysisConfig, prometheus: PrometheusConfig) -> int:
    """Seconds the outage metric looks back: Argo's retry after an Error, the group's first
    evaluation after it, and two measurements."""
    return (ERROR_RETRY_SECONDS + go_seconds(prometheus.scrape_interval)
            + 2 * go_seconds(cfg.interval))


def outage_metric(service: str, cfg: AnalysisConfig, prometheus: PrometheusConfig
                  ) -> dict[str, Any]:
    """Pauses the rollout when the service's evidence group has just seen a gap (Prometheus
    away) longer than ``outageLimit``. The gap stays in view for ``outage_view`` seconds, so
    that a measurement catches it whether the first answer after the outage comes before the
    group's first evaluation or after it."""
    seen = durations.format_seconds(outage_view(cfg, prometheus))
    gap = f'{names.CANARY_EVIDENCE_GAP}{{{names.LABEL_SERVICE}="{service}"}}'
    limit = go_seconds(cfg.outage_limit)
    return {
        "name": OUTAGE_METRIC,
        "interval": cfg.interval,
        "consecutiveErrorLimit": cfg.consecutive_error_limit,
        "successCondition": f"len(result) == 0 || result[0] <= {limit}",
        "failureCondition": "false",
        "inconclusiveLimit": 0,
        "provider": {"prometheus": {"address": prometheus.address,
                                    "query": f"max_over_time({gap}[{seen}])"}},
    }


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
    return _template(template_names(service)["freeze"], namespace, service, [metric], args=False)
