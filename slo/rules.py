"""Prometheus recording rules and multi-window, multi-burn-rate alerts for resolved SLOs.

One rule group per SLO, in dependency order, so alerts read the recordings of the same
evaluation. Every expression divides only by a denominator filtered with ``> 0``: a window without
traffic yields no sample at all, never NaN or Inf.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NotRequired, TypedDict

from slo import conventions as names
from slo import durations
from slo.annotations import alert_text
from slo.model import ResolvedSlo, Tier, number


class RecordingRule(TypedDict):
    """A Prometheus recording rule, as a rule file and a PrometheusRule hold it."""

    record: str
    expr: str
    labels: dict[str, str]


# "for" is a Python keyword: the functional form
AlertingRule = TypedDict("AlertingRule", {
    "alert": str,
    "expr": str,
    "for": NotRequired[str],
    "labels": dict[str, str],
    "annotations": dict[str, str],
})
Rule = RecordingRule | AlertingRule


class RuleGroup(TypedDict):
    """A rule group: evaluated together, in order. A Thanos Ruler's groups may also set
    ``partial_response_strategy``."""

    name: str
    rules: list[Rule]
    interval: NotRequired[str]
    partial_response_strategy: NotRequired[str]


class RuleFile(TypedDict):
    """What Prometheus' ``rule_files:`` read, and a PrometheusRule's ``spec``."""

    groups: list[RuleGroup]


def record(slo: ResolvedSlo, name: str, expr: str) -> RecordingRule:
    """A recording rule of ``slo``'s series, with its labels."""
    return {"record": name, "expr": expr, "labels": slo.rule_labels}


def sli_rules(slo: ResolvedSlo) -> list[RecordingRule]:
    events = slo.events
    base = names.BASE_WINDOW
    total_5m = slo.selector_of(names.TOTAL_RATE_5M)
    bad_5m = slo.selector_of(names.BAD_RATE_5M)
    rules = [
        record(slo, names.TOTAL_RATE_5M, events.total(base)),
        record(slo, names.BAD_RATE_5M, f"({events.bad(base)} or vector(0)) and on() {total_5m}"),
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
            rules.append(record(slo, names.total_rate(window), total))
            bad = f"avg_over_time({bad_5m}[{window}])"
            expr = f"{bad} / ({slo.selector_of(names.total_rate(window))} > 0)"
        else:
            expr = _averaged_ratio(slo, window)
        rules.append(record(slo, names.error_ratio(window), expr))
    rules.append(record(slo, names.ERROR_RATIO_PERIOD, _averaged_ratio(slo, slo.period)))
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


def metadata_rules(slo: ResolvedSlo) -> list[RecordingRule]:
    budget = number(slo.budget)
    return [
        record(slo, names.OBJECTIVE, f"vector({number(slo.objective)})"),
        record(slo, names.ERROR_BUDGET, f"vector({budget})"),
        record(slo, names.PERIOD_DAYS, f"vector({number(slo.period_seconds / 86400)})"),
        record(
            slo,
            names.CURRENT_BURN_RATE,
            f"{slo.selector_of(names.error_ratio(names.BASE_WINDOW))} / {budget}",
        ),
        record(
            slo, names.PERIOD_BURN_RATE, f"{slo.selector_of(names.ERROR_RATIO_PERIOD)} / {budget}"
        ),
        record(
            slo,
            names.ERROR_BUDGET_REMAINING,
            f"1 - {slo.selector_of(names.PERIOD_BURN_RATE)}",
        ),
    ]


def min_events_clause(slo: ResolvedSlo, tier: Tier) -> str:
    """The minimum-traffic guard of ``tier`` read from this Prometheus' recordings, or ""."""
    if tier.long_window in _guarded_windows(slo):
        total = slo.selector_of(names.total_rate(tier.long_window))
        return f"{total} * {tier.long_seconds} >= {slo.alerting.min_events}"
    if slo.alerting.min_events and slo.events.counts_traffic:
        total = slo.selector_of(names.TOTAL_RATE_5M)
        return (
            f"avg_over_time({total}[{tier.long_window}]) * {tier.long_seconds}"
            f" >= {slo.alerting.min_events}"
        )
    return ""


def burn_alert(
    slo: ResolvedSlo,
    severity: str,
    tiers: list[Tier],
    ratio: Callable[[str], str],
    guard: Callable[[Tier], str],
    extra_labels: dict[str, str] | None = None,
) -> AlertingRule:
    """The ``severity`` alert over ``tiers``: fires while both windows of one tier are over its
    threshold (and its long window saw enough traffic). ``ratio(window)`` is the PromQL of the
    error ratio over a window, ``guard(tier)`` the traffic clause ("" for none)."""
    clauses = []
    for tier in tiers:
        threshold = number(tier.threshold)
        clause = (
            f"{ratio(tier.long_window)} > {threshold} and {ratio(tier.short_window)} > {threshold}"
        )
        traffic = guard(tier)
        clauses.append(f"({clause} and {traffic})" if traffic else f"({clause})")
    windows = ", ".join(f"{t.factor:g}x over {t.long_window}/{t.short_window}" for t in tiers)
    return {
        "alert": slo.alert_name(severity),
        "expr": "\n or ".join(clauses),
        "labels": {**slo.alert_labels(severity), **(extra_labels or {})},
        "annotations": alert_text(slo, severity, burning=f"at one of: {windows}"),
    }


def absent_alert(slo: ResolvedSlo) -> AlertingRule:
    return {
        "alert": names.ALERT_ABSENT,
        "expr": f"absent({slo.selector_of(names.TOTAL_RATE_5M)})",
        "for": slo.alerting.absent_for,
        "labels": {**slo.alerting.labels, **slo.rule_labels, names.LABEL_SEVERITY: "ticket"},
        "annotations": alert_text(slo, names.ALERT_ABSENT),
    }


def alert_rules(slo: ResolvedSlo) -> list[AlertingRule]:
    rules: list[AlertingRule] = []
    for severity in ("page", "ticket"):
        tiers = [t for t in slo.tiers if t.severity == severity]
        if tiers:
            ratio = lambda window: slo.selector_of(names.error_ratio(window))  # noqa: E731
            rules.append(
                burn_alert(slo, severity, tiers, ratio, lambda t: min_events_clause(slo, t))
            )
    rules.append(absent_alert(slo))
    return rules


def rule_group(slo: ResolvedSlo) -> RuleGroup:
    return {
        "name": names.rule_group_name(slo.service.name, slo.slo.name),
        "rules": [*sli_rules(slo), *metadata_rules(slo), *alert_rules(slo)],
    }


def rule_file(slos: list[ResolvedSlo]) -> RuleFile:
    """A Prometheus rule file (``rule_files:``) with one group per SLO."""
    return {"groups": [rule_group(s) for s in slos]}


def prometheus_rule(
    service: str, namespace: str, slos: list[ResolvedSlo], labels: dict[str, str] | None = None
) -> dict[str, Any]:
    """The same groups as a ``monitoring.coreos.com/v1`` PrometheusRule body."""
    return prometheus_rule_of_groups(service, namespace, [rule_group(s) for s in slos], labels)


def prometheus_rule_of_groups(
    service: str,
    namespace: str,
    groups: list[RuleGroup],
    labels: dict[str, str] | None = None,
    name: str = "",
) -> dict[str, Any]:
    """A PrometheusRule body holding rule groups already built by :func:`rule_group` (or a
    Thanos Ruler's, whose groups may set ``partial_response_strategy``)."""
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": name or names.prometheus_rule_name(service),
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
