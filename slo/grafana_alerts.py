"""Grafana-managed alert rules mirroring the Prometheus burn-rate and absent-metrics alerts.

One rule per burn-rate tier: the recorded error ratios of the long and the short window are each
compared with the tier's threshold by a Grafana ``threshold`` expression, and a ``math``
expression fires when both are over (and, with a minimum-traffic guard, when the long window saw
enough events). The output is plain data in the shape of the keyword arguments of
``pulumiverse_grafana.alerting.RuleGroup``.

A window without traffic has no recorded sample, so a rule sees no data: that is not an outage
(``no_data_state: OK``); the absent-metrics rule reports missing series on its own.
"""

from __future__ import annotations

import json
from typing import Any

from grafana_foundation_sdk.builders import expr, prometheus
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.cog.variants import Dataquery
from grafana_foundation_sdk.models import dashboard as model

from slo import conventions as names
from slo.annotations import alert_text
from slo.model import ResolvedSlo, Tier, number

EXPR_DATASOURCE_UID = "__expr__"
PROMETHEUS_TYPE = "prometheus"
# Instant queries of recorded series: the range only bounds the lookback of the query.
QUERY_RANGE_SECONDS = 600
NO_DATA_STATE = "OK"
EXEC_ERR_STATE = "Error"

# one entry of a Grafana RuleGroup's ``rules`` (pulumiverse_grafana.alerting.RuleGroupRuleArgs as a
# dict): not a Prometheus rule (slo.rules)
GrafanaRule = dict[str, Any]


def rule_group(
    service_name: str, slos: list[ResolvedSlo], datasource_uid: str, interval_seconds: int = 60
) -> dict[str, Any]:
    """Keyword arguments of a ``RuleGroup`` holding every alert of the service's SLOs."""
    rules: list[GrafanaRule] = []
    for slo in slos:
        if slo.service.name != service_name:
            raise ValueError(
                f"SLO {slo.slo.name} belongs to {slo.service.name}, not {service_name}"
            )
        rules += [burn_rate_rule(slo, tier, datasource_uid) for tier in slo.tiers]
        rules.append(absent_rule(slo, datasource_uid))
    return {
        "name": names.prometheus_rule_name(service_name),
        "interval_seconds": interval_seconds,
        "rules": rules,
    }


def burn_rate_rule(slo: ResolvedSlo, tier: Tier, datasource_uid: str) -> GrafanaRule:
    """Fires while both windows of ``tier`` burn faster than ``tier.factor`` x budget."""
    threshold = tier.threshold
    datas = [
        _prometheus("long", _ratio(slo, tier.long_window), datasource_uid),
        _prometheus("short", _ratio(slo, tier.short_window), datasource_uid),
        _threshold("longOver", "long", threshold),
        _threshold("shortOver", "short", threshold),
    ]
    condition = "$longOver && $shortOver"
    min_events = slo.alerting.min_events
    if min_events and slo.events.counts_traffic:
        datas.append(_prometheus("events", _events(slo, tier), datasource_uid))
        condition += f" && $events >= {min_events}"
    datas.append(_math("firing", condition))
    service, name = slo.service.name, slo.slo.name
    return _rule(
        slo,
        title=(
            f"{slo.alert_name(tier.severity)} {service} {name} "
            f"({tier.long_window}, {tier.short_window})"
        ),
        labels=slo.alert_labels(tier.severity),
        condition="firing",
        for_="0s",
        datas=datas,
        annotations=alert_text(
            slo,
            tier.severity,
            burning=f"faster than {tier.factor:g}x over both {tier.long_window} and "
            f"{tier.short_window} (error ratio above {number(threshold)})",
        ),
    )


def absent_rule(slo: ResolvedSlo, datasource_uid: str) -> GrafanaRule:
    """Mirror of ``SLOMetricsAbsent``: the SLO's event rate has no series at all."""
    service, name = slo.service.name, slo.slo.name
    absent = f"absent({slo.selector_of(names.TOTAL_RATE_5M)})"
    return _rule(
        slo,
        title=f"{names.ALERT_ABSENT} {service} {name}",
        labels={**slo.alerting.labels, **slo.rule_labels, names.LABEL_SEVERITY: "ticket"},
        condition="missing",
        for_=slo.alerting.absent_for,
        datas=[
            _prometheus("absent", absent, datasource_uid),
            _threshold("missing", "absent", 0),
        ],
        annotations=alert_text(slo, names.ALERT_ABSENT),
    )


def _rule(
    slo: ResolvedSlo,
    *,
    title: str,
    labels: dict[str, str],
    condition: str,
    for_: str,
    datas: list[dict[str, Any]],
    annotations: dict[str, str],
) -> GrafanaRule:
    return {
        "name": title,
        "for_": for_,
        "condition": condition,
        "no_data_state": NO_DATA_STATE,
        "exec_err_state": EXEC_ERR_STATE,
        "labels": labels,
        "annotations": annotations,
        "datas": datas,
    }


def _ratio(slo: ResolvedSlo, window: str) -> str:
    # Aggregating drops __name__, so the long and short series join on service and slo alone.
    return f"max by ({_keep()}) ({slo.selector_of(names.error_ratio(window))})"


def _events(slo: ResolvedSlo, tier: Tier) -> str:
    rate = slo.selector_of(names.TOTAL_RATE_5M)
    return f"max by ({_keep()}) (avg_over_time({rate}[{tier.long_window}])) * {tier.long_seconds}"


def _keep() -> str:
    return f"{names.LABEL_SERVICE}, {names.LABEL_SLO}"


def _prometheus(ref_id: str, query: str, datasource_uid: str) -> dict[str, Any]:
    source = model.DataSourceRef(type_val=PROMETHEUS_TYPE, uid=datasource_uid)
    builder = prometheus.Dataquery().ref_id(ref_id).expr(query).instant().datasource(source)
    return _data(ref_id, datasource_uid, builder, QUERY_RANGE_SECONDS)


def _threshold(ref_id: str, source: str, above: float) -> dict[str, Any]:
    evaluator = expr.ExprTypeThresholdConditionsEvaluator().type("gt").params([above])
    builder = (
        expr.TypeThreshold()
        .ref_id(ref_id)
        .expression(source)
        .conditions([expr.ExprTypeThresholdConditions().evaluator(evaluator)])
        .datasource(_expressions())
    )
    return _data(ref_id, EXPR_DATASOURCE_UID, builder, 0)


def _math(ref_id: str, expression: str) -> dict[str, Any]:
    builder = expr.TypeMath().ref_id(ref_id).expression(expression).datasource(_expressions())
    return _data(ref_id, EXPR_DATASOURCE_UID, builder, 0)


def _expressions() -> model.DataSourceRef:
    return model.DataSourceRef(type_val=EXPR_DATASOURCE_UID, uid=EXPR_DATASOURCE_UID)


def _data(
    ref_id: str, datasource_uid: str, builder: Builder[Dataquery], seconds: int
) -> dict[str, Any]:
    return {
        "ref_id": ref_id,
        "datasource_uid": datasource_uid,
        "relative_time_range": {"from_": seconds, "to": 0},
        "model": json.dumps(builder.build(), cls=JSONEncoder, sort_keys=True),
    }
