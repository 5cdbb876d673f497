"""Prometheus recording rules and multi-window, multi-burn-rate alerts for resolved SLOs.

One rule group per SLO, in dependency order, so alerts read the recordings of the same
evaluation. Every expression divides only by a denominator filtered with ``> 0``: a window without
traffic yields no sample at all, never NaN or Inf.
"""

from __future__ import annotations

from typing import Any

from slo import conventions as names
from slo import durations
from slo.annotations import alert_text
from slo.model import ResolvedSlo, number

Rule = dict[str, Any]


def _record(slo: ResolvedSlo, record: str, expr: str) -> Rule:
    return {"record": record, "expr": expr, "labels": slo.rule_labels}


def sli_rules(slo: ResolvedSlo) -> list[Rule]:
    events = slo.events
    base = names.BASE_WINDOW
    total_5m = slo.selector_of(names.TOTAL_RATE_5M)
    bad_5m = slo.selector_of(names.BAD_RATE_5M)
    rules = [
        _record(slo, names.TOTAL_RATE_5M, events.total(base)),
        _record(slo, names.BAD_RATE_5M, f"({events.bad(base)} or vector(0)) and on() {total_5m}"),
    ]
    guarded = _guarded_windows(slo)
    for window in slo.windows():
        if window == base:
            expr = f"{bad_5m} / ({total_5m} > 0)"
        elif _raw(slo, window):
            expr = f"({events.bad(window)} or vector(0)) / ({events.total(window)} > 0)"
        elif window in guarded:
            # the minimum-traffic guard reads this total too: record it once
            total = f"avg_over_time({total_5m}[{window}])"
            rules.append(_record(slo, names.total_rate(window), total))
            bad = f"avg_over_time({bad_5m}[{window}])"
            expr = f"{bad} / ({slo.selector_of(names.total_rate(window))} > 0)"
        else:
            expr = _averaged_ratio(slo, window)
        rules.append(_record(slo, names.error_ratio(window), expr))
    rules.append(_record(slo, names.ERROR_RATIO_PERIOD, _averaged_ratio(slo, slo.period)))
    return rules


def _raw(slo: ResolvedSlo, window: str) -> bool:
    """The window reads the source series (up to an hour, or every window with
    ``long_windows: raw``), not the recorded 5m base."""
    seconds = durations.parse(window)
    return seconds <= names.RAW_WINDOW_MAX_SECONDS or slo.alerting.long_windows == "raw"


def _guarded_windows(slo: ResolvedSlo) -> set[str]:
    """Long windows, read from the 5m base, whose traffic the minimum-traffic guard checks."""
    if not slo.alerting.min_events or not slo.events.counts_traffic:
        return set()
    if slo.alerting.long_windows == "raw":
        return set()
    return {t.long_window for t in slo.tiers if t.long_seconds > names.RAW_WINDOW_MAX_SECONDS}


def _averaged_ratio(slo: ResolvedSlo, window: str) -> str:
    """Bad over all events across ``window``, weighted by traffic (not a mean of ratios)."""
    bad = f"avg_over_time({slo.selector_of(names.BAD_RATE_5M)}[{window}])"
    total = f"avg_over_time({slo.selector_of(names.TOTAL_RATE_5M)}[{window}])"
    return f"{bad} / ({total} > 0)"


def metadata_rules(slo: ResolvedSlo) -> list[Rule]:
    budget = number(slo.budget)
    return [
        _record(slo, names.OBJECTIVE, f"vector({number(slo.objective)})"),
        _record(slo, names.ERROR_BUDGET, f"vector({budget})"),
        _record(slo, names.PERIOD_DAYS, f"vector({number(slo.period_seconds / 86400)})"),
        _record(
            slo,
            names.CURRENT_BURN_RATE,
            f"{slo.selector_of(names.error_ratio(names.BASE_WINDOW))} / {budget}",
        ),
        _record(
            slo, names.PERIOD_BURN_RATE, f"{slo.selector_of(names.ERROR_RATIO_PERIOD)} / {budget}"
        ),
        _record(
            slo,
            names.ERROR_BUDGET_REMAINING,
            f"1 - {slo.selector_of(names.PERIOD_BURN_RATE)}",
        ),
    ]


def alert_rules(slo: ResolvedSlo) -> list[Rule]:
    alerting = slo.alerting
    rules: list[Rule] = []
    for severity in ("page", "ticket"):
        tiers = [t for t in slo.tiers if t.severity == severity]
        if not tiers:
            continue
        clauses = []
        for tier in tiers:
            threshold = number(tier.threshold)
            long_ratio = slo.selector_of(names.error_ratio(tier.long_window))
            short_ratio = slo.selector_of(names.error_ratio(tier.short_window))
            clause = f"{long_ratio} > {threshold} and {short_ratio} > {threshold}"
            if tier.long_window in _guarded_windows(slo):
                total = slo.selector_of(names.total_rate(tier.long_window))
                clause += f" and {total} * {tier.long_seconds} >= {alerting.min_events}"
            elif alerting.min_events and slo.events.counts_traffic:
                total = slo.selector_of(names.TOTAL_RATE_5M)
                clause += (
                    f" and avg_over_time({total}[{tier.long_window}]) * {tier.long_seconds}"
                    f" >= {alerting.min_events}"
                )
            clauses.append(f"({clause})")
        windows = ", ".join(f"{t.factor:g}x over {t.long_window}/{t.short_window}" for t in tiers)
        rules.append(
            {
                "alert": slo.alert_name(severity),
                "expr": "\n or ".join(clauses),
                "labels": slo.alert_labels(severity),
                "annotations": alert_text(slo, severity, burning=f"at one of: {windows}"),
            }
        )
    rules.append(
        {
            "alert": names.ALERT_ABSENT,
            "expr": f"absent({slo.selector_of(names.TOTAL_RATE_5M)})",
            "for": alerting.absent_for,
            "labels": {**alerting.labels, **slo.rule_labels, names.LABEL_SEVERITY: "ticket"},
            "annotations": alert_text(slo, names.ALERT_ABSENT),
        }
    )
    return rules


def rule_group(slo: ResolvedSlo) -> dict[str, Any]:
    return {
        "name": names.rule_group_name(slo.service.name, slo.slo.name),
        "rules": sli_rules(slo) + metadata_rules(slo) + alert_rules(slo),
    }


def rule_file(slos: list[ResolvedSlo]) -> dict[str, Any]:
    """A Prometheus rule file (``rule_files:``) with one group per SLO."""
    return {"groups": [rule_group(s) for s in slos]}


def prometheus_rule(
    service: str, namespace: str, slos: list[ResolvedSlo], labels: dict[str, str] | None = None
) -> dict[str, Any]:
    """The same groups as a ``monitoring.coreos.com/v1`` PrometheusRule body."""
    return prometheus_rule_of_groups(service, namespace, [rule_group(s) for s in slos], labels)


def prometheus_rule_of_groups(
    service: str, namespace: str, groups: list[dict[str, Any]], labels: dict[str, str] | None = None
) -> dict[str, Any]:
    """A PrometheusRule body holding rule groups already built by :func:`rule_group`."""
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": names.prometheus_rule_name(service),
            "namespace": namespace,
            "labels": {
                "app.kubernetes.io/part-of": names.PART_OF_SLO,
                names.LABEL_SERVICE: service,
                **(labels or {}),
            },
        },
        "spec": {"groups": groups},
    }


def by_service(slos: list[ResolvedSlo]) -> dict[str, list[ResolvedSlo]]:
    grouped: dict[str, list[ResolvedSlo]] = {}
    for slo in slos:
        grouped.setdefault(slo.service.name, []).append(slo)
    return grouped
