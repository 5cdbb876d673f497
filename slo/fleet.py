"""Fleet SLOs (``scope: fleet``) under ``rulePlacement: thanos``: what stays in each cluster's
Prometheus, and what a Thanos Ruler evaluates over all of them.

Each cluster keeps the cheap part, which needs nothing global:

- per-second event rates (all and bad) of every alert window up to an hour, read from the
  source series, and the 5m base the longer windows are built from;
- the fastest page tier (both windows up to an hour) on the cluster's own traffic, labelled
  ``scope: cluster``, so that a cluster burning fast still pages with the global layer down;
- ``SLOMetricsAbsent`` and the objective's constants.

The Thanos Ruler holds the fleet: error ratios of every window, the period, the budget left, and
the page and ticket alerts (``scope: fleet``). Every expression sums the clusters' *events*
(``sum by (service, slo)`` of their rates, ``sum_over_time`` of the 5m base for the long
windows) and divides once, so a cluster weighs what its traffic weighs; a mean of ratios is never
taken. Alerts compute their ratios inline rather than reading the Ruler's own recordings, so a
page depends only on the clusters' series.

Those rules sit in a group with ``partial_response_strategy: abort``: when a cluster's store does
not answer, the evaluation fails, and neither a recording nor an alert is computed from the
clusters that did answer (a burn never looks smaller because a cluster is missing; an alert that
fired stays firing on the Ruler). A second group, with ``warn``, remembers which clusters
reported and raises ``SLOClusterNotReporting`` for one that went silent.
"""

from __future__ import annotations

from slo import conventions as names
from slo import durations
from slo.annotations import literal
from slo.model import ResolvedSlo, Tier, number
from slo.rules import (
    Rule,
    RuleFile,
    RuleGroup,
    absent_alert,
    burn_alert,
    metadata_rules,
    record,
    rule_group,
)

PLACEMENTS = ("local", "thanos")
BY_SLO = f"{names.LABEL_SERVICE}, {names.LABEL_SLO}"


def split(slo: ResolvedSlo, placement: str) -> bool:
    """Whether ``slo`` is split between the clusters and a Thanos Ruler under ``placement``."""
    if placement not in PLACEMENTS:
        raise ValueError(f"rule placement {placement!r}: one of {', '.join(PLACEMENTS)}")
    return placement == "thanos" and slo.is_fleet


def _local(window: str) -> bool:
    return durations.parse(window) <= names.RAW_WINDOW_MAX_SECONDS


def local_windows(slo: ResolvedSlo) -> list[str]:
    """The windows whose event rates each cluster records for the Ruler (5m included)."""
    return [w for w in slo.windows() if _local(w)]


def local_tiers(slo: ResolvedSlo) -> list[Tier]:
    """The page tiers each cluster evaluates on its own: both windows up to an hour."""
    return [t for t in slo.tiers if t.severity == "page" and _local(t.long_window)]


# ---- each cluster's Prometheus ----------------------------------------------------------------


def local_group(slo: ResolvedSlo) -> RuleGroup:
    """The cluster's share of a fleet SLO, under the group name :func:`rule_group` uses."""
    events = slo.events
    rules: list[Rule] = []
    for window in local_windows(slo):
        total = slo.selector_of(names.total_rate(window))
        rules += [
            record(slo, names.total_rate(window), events.total(window)),
            record(slo, names.bad_rate(window),
                    f"({events.bad(window)} or vector(0)) and on() {total}"),
            record(slo, names.error_ratio(window),
                    f"{slo.selector_of(names.bad_rate(window))} / ({total} > 0)"),
        ]
    constants = {names.OBJECTIVE, names.ERROR_BUDGET, names.PERIOD_DAYS}
    rules += [r for r in metadata_rules(slo) if r["record"] in constants]
    tiers = local_tiers(slo)
    if tiers:
        rules.append(burn_alert(
            slo, "page", tiers,
            lambda window: slo.selector_of(names.error_ratio(window)),
            lambda tier: _local_guard(slo, tier),
            {names.LABEL_SCOPE: "cluster"},
        ))
    rules.append(absent_alert(slo))
    return {"name": names.rule_group_name(slo.service.name, slo.slo.name), "rules": rules}


def _local_guard(slo: ResolvedSlo, tier: Tier) -> str:
    if not slo.alerting.min_events or not slo.events.counts_traffic:
        return ""
    total = slo.selector_of(names.total_rate(tier.long_window))
    return f"{total} * {tier.long_seconds} >= {slo.alerting.min_events}"


# ---- the Thanos Ruler -------------------------------------------------------------------------


def _fleet_sum(expr: str) -> str:
    return f"sum by ({BY_SLO}) ({expr})"


def _events(slo: ResolvedSlo, window: str) -> tuple[str, str]:
    """(all, bad) events of the fleet over ``window``, as sums of the clusters' recordings: the
    rates themselves up to an hour, their ``sum_over_time`` of the 5m base beyond (the same
    evaluation interval in every cluster weighs each cluster by its events)."""
    if _local(window):
        return (_fleet_sum(slo.selector_of(names.total_rate(window))),
                _fleet_sum(slo.selector_of(names.bad_rate(window))))
    return (_fleet_sum(f"sum_over_time({slo.selector_of(names.TOTAL_RATE_5M)}[{window}])"),
            _fleet_sum(f"sum_over_time({slo.selector_of(names.BAD_RATE_5M)}[{window}])"))


def fleet_ratio(slo: ResolvedSlo, window: str) -> str:
    """The fleet's error ratio over ``window``: bad events over all events, across clusters."""
    total, bad = _events(slo, window)
    return f"{bad} / ({total} > 0)"


def _fleet_guard(slo: ResolvedSlo, tier: Tier) -> str:
    if not slo.alerting.min_events or not slo.events.counts_traffic:
        return ""
    if _local(tier.long_window):
        total = _fleet_sum(slo.selector_of(names.total_rate(tier.long_window)))
    else:
        total = _fleet_sum(
            f"avg_over_time({slo.selector_of(names.TOTAL_RATE_5M)}[{tier.long_window}])"
        )
    return f"{total} * {tier.long_seconds} >= {slo.alerting.min_events}"


def fleet_groups(slo: ResolvedSlo) -> list[RuleGroup]:
    """The Thanos Ruler's groups of a fleet SLO: the SLO itself (``abort``), then the memory of
    the clusters that reported it (``warn``)."""
    budget = number(slo.budget)
    period = fleet_ratio(slo, slo.period)
    rules: list[Rule] = [
        record(slo, names.fleet_error_ratio(w), fleet_ratio(slo, w)) for w in slo.windows()
    ]
    rules += [
        record(slo, names.FLEET_ERROR_RATIO_PERIOD, period),
        record(slo, names.FLEET_PERIOD_BURN_RATE, f"({period}) / {budget}"),
        record(slo, names.FLEET_ERROR_BUDGET_REMAINING, f"1 - ({period}) / {budget}"),
    ]
    for severity in ("page", "ticket"):
        tiers = [t for t in slo.tiers if t.severity == severity]
        if tiers:
            rules.append(burn_alert(
                slo, severity, tiers,
                lambda window: f"({fleet_ratio(slo, window)})",
                lambda tier: _fleet_guard(slo, tier),
                {names.LABEL_SCOPE: "fleet"},
            ))
    cluster = slo.fleet.cluster_label
    keys = f"{cluster}, {BY_SLO}"
    total = slo.selector_of(names.TOTAL_RATE_5M)
    remembered = f"max_over_time({slo.selector_of(names.FLEET_REPORTING)}[{slo.fleet.remember}])"
    not_reporting: Rule = {
        "alert": names.ALERT_NOT_REPORTING,
        "expr": f"group by ({keys}) ({remembered})\n unless on ({keys}) "
                f"group by ({keys}) ({total})",
        "for": slo.fleet.not_reporting_for,
        "labels": {
            **slo.alerting.labels, **slo.rule_labels,
            names.LABEL_SEVERITY: "page", names.LABEL_SCOPE: "fleet",
        },
        "annotations": {
            "summary": f"{{{{ $labels.{cluster} }}}} reports no events of the {slo.slo.name} "
                       f"SLO of {slo.service.name}",
            "description": (
                f"{cluster} {{{{ $labels.{cluster} }}}} reported {literal(total)} within the last "
                f"{slo.fleet.remember} and has not for {slo.fleet.not_reporting_for}. While its "
                "store does not answer, the fleet rules of this SLO fail (partial response, "
                "abort) and keep their last state; once its series are gone for good, the fleet "
                "sums the clusters that remain."
            ),
            **({"runbook_url": slo.alerting.runbook_url} if slo.alerting.runbook_url else {}),
        },
    }
    name = names.fleet_rule_group_name(slo.service.name, slo.slo.name)
    return [
        {"name": name, "partial_response_strategy": "abort", "rules": rules},
        {"name": f"{name}-reporting",
         "partial_response_strategy": "warn",
         "rules": [record(slo, names.FLEET_REPORTING, f"group by ({keys}) ({total})"),
                   not_reporting]},
    ]


def cluster_group(slo: ResolvedSlo, placement: str) -> RuleGroup:
    """The group a cluster's Prometheus evaluates for ``slo`` under ``placement``."""
    return local_group(slo) if split(slo, placement) else rule_group(slo)


def fleet_rule_file(slos: list[ResolvedSlo]) -> RuleFile:
    """A Thanos Ruler rule file (``--rule-file``) with the groups of every fleet SLO given."""
    return {"groups": [g for slo in slos if slo.is_fleet for g in fleet_groups(slo)]}
