"""Grafana dashboards for resolved SLOs, built with grafana-foundation-sdk.

One dashboard per service (a row per SLO, plus a rollout row with canary-versus-stable panels and
the Argo Rollouts controller's view of the rollout) and one all-services overview. The result is
plain, JSON-able data with sorted keys, ids and uids derived from names, so a render diffs cleanly.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import prometheus, stat, statetimeline, table, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

from slo import conventions as names
from slo import promql
from slo.fleet import local_windows, split
from slo.model import ResolvedSlo, number
from slo.spec import Service

UID_MAX_LENGTH = 40
UID_PREFIX = "slo-"
# The all-services overview of this cluster's SLOs. Its uid and title keep the word "fleet" they
# shipped with (a new uid would be a new dashboard); it is not about fleet SLOs (``scope: fleet``,
# summed across clusters), which have dashboards of their own (``fleet_slo_dashboard``).
# Service names never contain "_", so this uid cannot collide with a service dashboard's.
OVERVIEW_NAME = "fleet_overview"
DATASOURCE_TYPE = "prometheus"
RATE_INTERVAL = "$__rate_interval"
SLI_SHORT_WINDOW = "1h"

# Canary pods are told apart by this label (copied from the pod label at scrape time).
CANARY_LABEL = names.HASH_LABEL
# Metrics of the Argo Rollouts controller. The Rollout of a service is named after the service.
ROLLOUT_INFO = "rollout_info"
ANALYSIS_RUN_INFO = "analysis_run_info"
ANALYSIS_RUN_METRIC_PHASE = "analysis_run_metric_phase"
# The Argo Rollouts controller counts the events it records per Rollout (labels namespace, name,
# type, reason); a release's steps, pauses, abort and promotion are these reasons.
ROLLOUT_EVENTS = "rollout_events_total"
ROLLOUT_EVENT_REASONS = (
    "RolloutUpdated", "RolloutStepCompleted", "RolloutPaused", "RolloutResumed",
    "RolloutAborted", "RolloutCompleted",
)
# How long after an event its mark stays: each event is a short region, its start within a
# scrape of the event
ROLLOUT_EVENT_SPAN = "1m"
# How Grafana titles and tags a Prometheus annotation: fields the SDK's AnnotationQuery does not
# model, added to the built dashboard
PROMETHEUS_ANNOTATION_FIELDS = {
    "titleFormat": "{{reason}}", "textFormat": "{{name}}: {{reason}}", "tagKeys": "reason",
    "step": "15s", "useValueForTime": False,
}

Dashboard = dict[str, Any]


def dashboard_uid(name: str) -> str:
    """``slo-<name>``, or a truncated form with a hash when too long or not uid-safe."""
    uid = UID_PREFIX + re.sub(r"[^a-zA-Z0-9_-]", "-", name)
    if len(uid) <= UID_MAX_LENGTH and uid == UID_PREFIX + name:
        return uid
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{uid[: UID_MAX_LENGTH - len(digest) - 1]}-{digest}"


def all_expressions(dashboard: Dashboard) -> list[str]:
    """Every PromQL expression in the dashboard's panel targets, rows included, in order."""
    found = []
    for panel in dashboard.get("panels", []):
        for inner in [panel, *panel.get("panels", [])]:
            found += [t["expr"] for t in inner.get("targets", []) if "expr" in t]
    return found


@dataclass(frozen=True)
class CanaryStatistic:
    """How a stack's canary judge weighs one SLO's evidence (from ``delivery.judge``), so the
    dashboard plots the statistic the AnalysisRuns decide on."""

    good: float
    bad: float
    abort: float
    accept: float
    lookback: str


def service_dashboard(
    service: Service,
    slos: list[ResolvedSlo],
    datasource_uid: str,
    statistics: Mapping[str, CanaryStatistic] | None = None,
    placement: str = "local",
) -> Dashboard:
    """SLI, budget, burn rate and canary panels for each SLO of ``service``, and its rollout.

    ``statistics`` (by SLO name) adds a panel of each pod template's verdict statistic. Under
    ``placement: thanos`` a fleet SLO shows what this cluster records of it (its windows up to an
    hour); its budget is on its fleet dashboard (:func:`fleet_slo_dashboard`)."""
    ds = _datasource(datasource_uid)
    builder = (
        _dashboard(dashboard_uid(service.name), f"SLOs: {service.name}")
        .description(f"Service level objectives of {service.name}, owned by {service.owner}.")
        .tags(["slo", service.name])
    )
    builder.with_row(dash.Row(f"Rollout of {service.name}"))
    for panel in _rollout_panels(service, ds):
        builder.with_panel(panel)
    builder.annotation(
        dash.AnnotationQuery()
        .name("Rollout events")
        .datasource(ds)
        .enable(True)
        .icon_color("purple")
        .expr(rollout_events_query(service))
    )
    for slo in slos:
        if slo.service.name != service.name:
            raise ValueError(
                f"SLO {slo.slo.name} belongs to {slo.service.name}, not {service.name}"
            )
        builder.with_row(dash.Row(_row_title(slo)))
        for panel in _slo_panels(slo, ds, split(slo, placement)):
            builder.with_panel(panel)
        if statistics and slo.slo.name in statistics and slo.events.per_pod_template:
            builder.with_panel(_statistic_panel(slo, statistics[slo.slo.name], ds))
    board = _to_dict(builder)
    for annotation in board["annotations"]["list"]:
        annotation.update(PROMETHEUS_ANNOTATION_FIELDS)
    return board


def rollout_events_query(service: Service) -> str:
    """The service's rollout events (a release started, each step, pause, resume, the abort or
    promotion), each from the first scrape after it for ``ROLLOUT_EVENT_SPAN``: the counter's
    increase, and a series seen for the first time (the controller creates one per reason at its
    first event, so an increase alone would miss every first abort)."""
    span = ROLLOUT_EVENT_SPAN
    return " or ".join(
        f"({e} - {e} offset {span} > 0) or ({e} unless {e} offset {span})"
        for e in _controller_selectors(ROLLOUT_EVENTS, service, regex=("reason",),
                                       name=service.name, reason="|".join(ROLLOUT_EVENT_REASONS))
    )


def _statistic_panel(
    slo: ResolvedSlo, statistic: CanaryStatistic, ds: model.DataSourceRef
) -> timeseries.Panel:
    """The canary judge's statistic per pod template hash, as Prometheus records it for the
    AnalysisRuns (``delivery/evidence.py``), with its boundaries."""
    expr = (
        f'{names.CANARY_EVIDENCE}{{{names.LABEL_SERVICE}="{slo.service.name}",'
        f'{names.LABEL_SLO}="{slo.slo.name}",evidence="judged"}}'
    )
    return (
        _timeseries(f"{slo.slo.name}: canary verdict statistic", ds, 12)
        .description(
            f"Evidence that a pod template is a bad release for {slo.slo.name} (good: at most "
            f"{number(statistic.good * 100)}% bad events, bad: at least "
            f"{number(statistic.bad * 100)}%). "
            f"A canary aborts at {number(round(statistic.abort, 3))} and passes a gate at "
            f"{number(round(statistic.accept, 3))}; see the canary runbook."
        )
        .with_target(_query(expr, ds, legend="{{" + CANARY_LABEL + "}}"))
        .thresholds(_steps(("green", None), ("orange", statistic.accept), ("red", statistic.abort)))
        .thresholds_style(
            common_builders.GraphThresholdsStyleConfig().mode(
                common.GraphThresholdsStyleMode.DASHED
            )
        )
    )


def overview_dashboard(
    slos: list[ResolvedSlo], datasource_uid: str, placement: str = "local"
) -> Dashboard:
    """The all-services overview: every SLO's SLI against its objective and budget, burn-rate
    alerts firing, rollouts.

    Fleet SLOs under ``placement: thanos`` have a dashboard each (:func:`fleet_slo_dashboard`)."""
    ds = _datasource(datasource_uid)
    slos = [s for s in slos if not split(s, placement)]
    builder = (
        _dashboard(dashboard_uid(OVERVIEW_NAME), "SLOs: fleet overview")
        .description("Every service level objective, its burn-rate alerts and the rollouts.")
        .tags(["slo"])
    )
    builder.with_row(dash.Row("Alerts and rollouts"))
    for panel in _alert_and_rollout_panels(slos, ds):
        builder.with_panel(panel)
    for service in sorted({s.service.name for s in slos}):
        builder.with_row(dash.Row(service))
        for slo in (s for s in slos if s.service.name == service):
            builder.with_panel(_objective_panel(slo, ds))
            builder.with_panel(_budget_panel(slo, ds, 4))
    return _to_dict(builder)


def _alert_and_rollout_panels(slos: list[ResolvedSlo], ds: model.DataSourceRef) -> list[Any]:
    """The overview's first row: page and ticket alerts firing, which burn-rate alerts, and the
    services' rollouts by phase."""
    panels: list[Any] = [
        _stat(f"{severity.capitalize()} alerts firing", ds, 4)
        .with_target(_query(f"count({_burn_alerts(slos, severity)}) or vector(0)", ds))
        .thresholds(_steps(("green", None), ("red", 1)))
        for severity in ("page", "ticket")
    ]
    panels.append(
        table.Panel()
        .title("Burn-rate alerts firing")
        .datasource(ds)
        .height(8)
        .span(8)
        .with_target(
            _query(
                f"max by ({names.LABEL_SERVICE}, {names.LABEL_SLO}, {names.LABEL_SEVERITY}) "
                f"({_burn_alerts(slos)})",
                ds,
                instant=True,
            ).format(PromQueryFormat.TABLE)
        )
    )
    rollouts = _selector(
        ROLLOUT_INFO,
        regex=("name", "namespace"),
        name=_any_of(sorted({s.service.name for s in slos})),
        namespace=_any_of(sorted({s.service.namespace for s in slos})),
    )
    panels.append(
        _stat("Rollouts by phase", ds, 8)
        .with_target(_query(f"count by (phase) ({rollouts})", ds, legend="{{phase}}"))
        .text_mode(common.BigValueTextMode.VALUE_AND_NAME)
        .color_mode(common.BigValueColorMode.NONE)
    )
    return panels


def _objective_panel(slo: ResolvedSlo, ds: model.DataSourceRef) -> stat.Panel:
    """The overview's SLI of one SLO over its period, against its objective."""
    return (
        _stat(f"{slo.slo.name}: SLI over {slo.period} vs objective", ds, 4)
        .with_target(_query(_sli_period(slo), ds, legend="SLI", ref_id="A"))
        .with_target(
            _query(slo.selector_of(names.OBJECTIVE), ds, legend="objective", ref_id="B")
        )
        .unit("percentunit")
        .decimals(3)
        .thresholds(_steps(("red", None), ("green", slo.objective)))
    )


# Panels of one SLO


def fleet_slo_dashboard(slo: ResolvedSlo, datasource_uid: str) -> Dashboard:
    """One fleet SLO as the Thanos Ruler evaluates it (through a Thanos Query data source): the
    fleet's SLI, budget and burn rates, and each cluster's share of the traffic and of the
    budget burned over the SLO's period."""
    ds = _datasource(datasource_uid)
    service, name = slo.service.name, slo.slo.name
    builder = (
        _dashboard(dashboard_uid(f"fleet-{service}-{name}"), f"Fleet SLO: {service} {name}")
        .description(f"The {name} SLO of {service} over every cluster "
                     f"({slo.fleet.cluster_label} label), evaluated by the Thanos Ruler.")
        .tags(["slo", "fleet", service])
    )
    builder.with_row(dash.Row(f"{_row_title(slo)}, across clusters"))
    for panel in _fleet_panels(slo, ds):
        builder.with_panel(panel)
    builder.with_row(dash.Row(f"Each cluster's share over {slo.period}"))
    for panel in _cluster_share_panels(slo, ds):
        builder.with_panel(panel)
    return _to_dict(builder)


def _fleet_panels(slo: ResolvedSlo, ds: model.DataSourceRef) -> list[Any]:
    """The fleet SLO across clusters: SLI, budget remaining, alerts firing, burn rates."""
    cluster, budget = slo.fleet.cluster_label, number(slo.budget)
    alerts = _selector("ALERTS", (), alertstate="firing", service=slo.service.name,
                       slo=slo.slo.name, scope="fleet")
    burn = _timeseries("Fleet burn rate per alert window", ds, 24).min(0)
    for window in slo.windows():
        ratio = slo.selector_of(names.fleet_error_ratio(window))
        burn.with_target(_query(f"{ratio} / {budget}", ds, legend=f"burn rate {window}"))
    return [
        _stat(f"Fleet SLI over {slo.period} vs objective", ds, 6)
        .with_target(_query(f"1 - {slo.selector_of(names.FLEET_ERROR_RATIO_PERIOD)}", ds,
                            legend="SLI"))
        .unit("percentunit")
        .decimals(3)
        .thresholds(_steps(("red", None), ("green", slo.objective))),
        _stat("Fleet error budget remaining", ds, 6)
        .description(f"Share of the {slo.period} error budget ({number(slo.budget * 100)}%) "
                     "left, from the events of every cluster.")
        .with_target(_query(slo.selector_of(names.FLEET_ERROR_BUDGET_REMAINING), ds,
                            legend="remaining"))
        .unit("percentunit")
        .decimals(1)
        .graph_mode(common.BigValueGraphMode.AREA)
        .thresholds(_steps(("red", None), ("orange", 0), ("green", 0.25))),
        table.Panel().title("Fleet alerts firing (burn rate, clusters not reporting)")
        .datasource(ds).height(8).span(12)
        .with_target(_query(f"max by (alertname, {names.LABEL_SEVERITY}, {cluster}) ({alerts})",
                            ds, instant=True).format(PromQueryFormat.TABLE)),
        burn,
    ]


def _cluster_share_panels(slo: ResolvedSlo, ds: model.DataSourceRef) -> list[Any]:
    """Each cluster's share over the SLO's period: of the fleet's traffic, of the budget
    burned, and its own error ratio."""
    cluster, budget = slo.fleet.cluster_label, number(slo.budget)
    by_cluster = f"sum by ({cluster}) "
    total = f"sum_over_time({slo.selector_of(names.TOTAL_RATE_5M)}[{slo.period}])"
    bad = f"sum_over_time({slo.selector_of(names.BAD_RATE_5M)}[{slo.period}])"
    legend = "{{" + cluster + "}}"
    return [
        _timeseries("Share of the fleet's traffic", ds, 8)
        .description("Each cluster's events over the period, over the fleet's.")
        .with_target(_query(f"{by_cluster}({total}) / ignoring ({cluster}) group_left() "
                            f"sum({total})", ds, legend=legend))
        .unit("percentunit"),
        _timeseries("Budget burned, by cluster", ds, 8)
        .description("Each cluster's bad events over the fleet's events, over the budget: "
                     "the clusters' lines add up to the budget the fleet has burned.")
        .with_target(_query(f"{by_cluster}({bad}) / ignoring ({cluster}) group_left() "
                            f"sum({total}) / {budget}", ds, legend=legend))
        .unit("percentunit"),
        _timeseries("Error ratio over 5m, by cluster", ds, 8)
        .with_target(_query(f"{by_cluster}({slo.selector_of(names.error_ratio(names.BASE_WINDOW))})",
                            ds, legend=legend))
        .unit("percentunit"),
    ]


def _slo_panels(slo: ResolvedSlo, ds: model.DataSourceRef, split: bool = False) -> list[Any]:
    if split:  # the fleet SLO's share in this cluster: windows up to an hour, no budget here
        panels: list[Any] = [_sli_panel(slo, ds, cluster_share=True),
                             _burn_rate_panel(slo, ds, local_windows(slo))]
    else:
        panels = [_sli_panel(slo, ds), _budget_panel(slo, ds, 4), _burn_rate_panel(slo, ds)]
    if slo.events.is_latency:
        panels.append(_latency_panel(slo, ds))
    if slo.events.per_pod_template:
        panels += _canary_panels(slo, ds)
    return panels


def _sli_panel(
    slo: ResolvedSlo, ds: model.DataSourceRef, cluster_share: bool = False
) -> timeseries.Panel:
    short = SLI_SHORT_WINDOW
    if short in slo.windows():
        short_sli = f"1 - {slo.selector_of(names.error_ratio(short))}"
    else:
        events = slo.events
        short_sli = f"1 - ({events.bad(short)} or vector(0)) / ({events.total(short)} > 0)"
    panel = _timeseries(f"{slo.slo.name}: SLI vs objective", ds, 8 if not cluster_share else 12)
    if cluster_share:
        panel.description("A fleet SLO: this cluster's SLI; the fleet's SLI and budget are on "
                          "its fleet dashboard (Thanos).")
    else:
        panel.description(slo.slo.description or f"The {slo.slo.name} SLI of {slo.service.name}.")
        panel.with_target(_query(_sli_period(slo), ds, legend=f"SLI ({slo.period})", ref_id="A"))
    return (
        panel.with_target(_query(short_sli, ds, legend=f"SLI ({short})", ref_id="B"))
        .with_target(_query(slo.selector_of(names.OBJECTIVE), ds, legend="objective", ref_id="C"))
        .override_by_query("C", [_dashed()])
        .unit("percentunit")
        .decimals(3)
    )


def _budget_panel(slo: ResolvedSlo, ds: model.DataSourceRef, span: int) -> stat.Panel:
    return (
        _stat(f"{slo.slo.name}: error budget remaining", ds, span)
        .description(f"Share of the {slo.period} error budget ({number(slo.budget * 100)}%) left.")
        .with_target(_query(slo.selector_of(names.ERROR_BUDGET_REMAINING), ds, legend="remaining"))
        .unit("percentunit")
        .decimals(1)
        .graph_mode(common.BigValueGraphMode.AREA)
        .thresholds(_steps(("red", None), ("orange", 0), ("green", 0.25)))
    )


def _burn_rate_panel(
    slo: ResolvedSlo, ds: model.DataSourceRef, windows: list[str] | None = None
) -> timeseries.Panel:
    budget = number(slo.budget)
    panel = _timeseries(f"{slo.slo.name}: burn rate per alert window", ds, 12).description(
        "Error ratio over each window divided by the error budget; the lines are the alert "
        "factors: "
        + ", ".join(
            f"{t.severity} {t.factor:g}x over {t.long_window}/{t.short_window}" for t in slo.tiers
        )
        + "."
    )
    for window in windows or slo.windows():
        ratio = slo.selector_of(names.error_ratio(window))
        panel.with_target(_query(f"{ratio} / {budget}", ds, legend=f"burn rate {window}"))
    factors = sorted({t.factor: t.severity for t in slo.tiers}.items())
    colors = {"page": "red", "ticket": "orange"}
    return (
        panel.thresholds(_steps(("green", None), *((colors[s], f) for f, s in factors)))
        .thresholds_style(
            common_builders.GraphThresholdsStyleConfig().mode(
                common.GraphThresholdsStyleMode.DASHED
            )
        )
        .min(0)
    )


def _latency_panel(slo: ResolvedSlo, ds: model.DataSourceRef) -> timeseries.Panel:
    events = slo.events
    quantile = _quantile_name(slo)
    return (
        _timeseries(f"{slo.slo.name}: {quantile} latency vs threshold", ds, 12)
        .description(
            f"{quantile} of the raw histogram against the {number(events.threshold)}s threshold."
        )
        .with_target(_query(_latency_quantile(slo), ds, legend=quantile))
        .unit("s")
        .thresholds(_steps(("green", None), ("red", events.threshold)))
        .thresholds_style(
            common_builders.GraphThresholdsStyleConfig().mode(
                common.GraphThresholdsStyleMode.DASHED
            )
        )
    )


def _canary_panels(slo: ResolvedSlo, ds: model.DataSourceRef) -> list[Any]:
    legend = "{{" + CANARY_LABEL + "}}"
    panels: list[Any] = [
        _timeseries(f"{slo.slo.name}: canary vs stable {slo.events.good_events_name()}", ds, 12)
        .description(
            f"The {slo.slo.name} SLI of each pod template (canary and stable) during a rollout."
        )
        .with_target(_query(slo.events.canary_sli(CANARY_LABEL, RATE_INTERVAL), ds, legend=legend))
        .unit("percentunit")
        .decimals(3)
        .thresholds(_steps(("red", None), ("green", slo.objective)))
        .thresholds_style(
            common_builders.GraphThresholdsStyleConfig().mode(
                common.GraphThresholdsStyleMode.DASHED
            )
        )
    ]
    if slo.events.is_latency:
        quantile = _quantile_name(slo)
        panels.append(
            _timeseries(f"{slo.slo.name}: canary vs stable {quantile} latency", ds, 12)
            .with_target(_query(_latency_quantile(slo, CANARY_LABEL), ds, legend=legend))
            .unit("s")
            .thresholds(_steps(("green", None), ("red", slo.events.threshold)))
            .thresholds_style(
                common_builders.GraphThresholdsStyleConfig().mode(
                    common.GraphThresholdsStyleMode.DASHED
                )
            )
        )
    return panels


def _rollout_panels(service: Service, ds: model.DataSourceRef) -> list[Any]:
    rollout = " or ".join(_controller_selectors(ROLLOUT_INFO, service, name=service.name))
    # AnalysisRuns are named <rollout>-<pod template hash>-<revision>[-<step>].
    runs = f"{service.name}-[a-z0-9]+-[0-9]+.*"
    run_info = " or ".join(
        _controller_selectors(ANALYSIS_RUN_INFO, service, regex=("name",), name=runs))
    metric_phase = " or ".join(
        _controller_selectors(ANALYSIS_RUN_METRIC_PHASE, service, regex=("name",), name=runs))
    return [
        _stat("Rollout phase", ds, 4)
        .with_target(_query(rollout, ds, legend="{{phase}}", instant=True))
        .text_mode(common.BigValueTextMode.NAME)
        .color_mode(common.BigValueColorMode.NONE)
        .no_value("no rollout"),
        _state_timeline("Analysis runs", ds, 10).with_target(
            _query(f"max by (name, phase) ({run_info})", ds, legend="{{name}}: {{phase}}")
        ),
        _state_timeline("Analysis metric results", ds, 10).with_target(
            _query(
                f"max by (name, metric, phase) ({metric_phase})",
                ds,
                legend="{{name}} {{metric}}: {{phase}}",
            )
        ),
    ]


# PromQL


def _sli_period(slo: ResolvedSlo) -> str:
    return f"1 - {slo.selector_of(names.ERROR_RATIO_PERIOD)}"


def _latency_quantile(slo: ResolvedSlo, *by: str) -> str:
    return slo.events.latency_quantile(number(slo.objective), by, RATE_INTERVAL)


def _burn_alerts(slos: list[ResolvedSlo], severity: str = "") -> str:
    services = sorted({s.service.name for s in slos})
    alert_names = {s.alert_name(sev) for s in slos for sev in ("page", "ticket")}
    matchers = {
        "alertname": _any_of(sorted(alert_names)),
        "alertstate": "firing",
        names.LABEL_SERVICE: _any_of(services),
    }
    if severity:
        matchers[names.LABEL_SEVERITY] = severity
    return _selector("ALERTS", regex=("alertname", names.LABEL_SERVICE), **matchers)


def _controller_selectors(
    metric: str, service: Service, regex: tuple[str, ...] = (), **labels: str
) -> list[str]:
    """``metric`` of the Argo Rollouts controller for objects in the service's namespace. The
    controller labels them ``namespace``; a scrape that does not honour the target's labels
    (the Helm chart's ServiceMonitor) renames that to ``exported_namespace``: both are read."""
    return [_selector(metric, regex=regex, **labels, **{key: service.namespace})
            for key in ("namespace", "exported_namespace")]


def _selector(metric: str, regex: tuple[str, ...] = (), **labels: str) -> str:
    matchers = tuple(
        promql.Matcher(key, "=~" if key in regex else "=", value) for key, value in labels.items()
    )
    return promql.Selector(metric, matchers).render()


def _any_of(values: list[str]) -> str:
    return "|".join(values)


# Names


def _row_title(slo: ResolvedSlo) -> str:
    return f"{slo.slo.name}: {number(slo.objective * 100)}% over {slo.period}"


def _quantile_name(slo: ResolvedSlo) -> str:
    return f"p{number(slo.objective * 100)}"


# Builders


def _datasource(uid: str) -> model.DataSourceRef:
    return model.DataSourceRef(type_val=DATASOURCE_TYPE, uid=uid)


def _dashboard(uid: str, title: str) -> dash.Dashboard:
    return (
        dash.Dashboard(title)
        .uid(uid)
        .time("now-6h", "now")
        .refresh("1m")
        .timezone("utc")
        .tooltip(model.DashboardCursorSync.CROSSHAIR)
        .link(
            dash.DashboardLink("SLO dashboards")
            .type(model.DashboardLinkType.DASHBOARDS)
            .tags(["slo"])
            .as_dropdown(True)
            .keep_time(True)
        )
    )


def _query(
    expr: str,
    ds: model.DataSourceRef,
    legend: str = "",
    ref_id: str = "A",
    instant: bool = False,
) -> prometheus.Dataquery:
    query = prometheus.Dataquery().expr(expr).ref_id(ref_id).datasource(ds)
    if legend:
        query.legend_format(legend)
    return query.instant() if instant else query.range()


def _timeseries(title: str, ds: model.DataSourceRef, span: int) -> timeseries.Panel:
    return timeseries.Panel().title(title).datasource(ds).height(8).span(span).fill_opacity(10)


def _stat(title: str, ds: model.DataSourceRef, span: int) -> stat.Panel:
    return (
        stat.Panel()
        .title(title)
        .datasource(ds)
        .height(8)
        .span(span)
        .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]))
    )


def _state_timeline(title: str, ds: model.DataSourceRef, span: int) -> statetimeline.Panel:
    return statetimeline.Panel().title(title).datasource(ds).height(8).span(span)


def _steps(*steps: tuple[str, float | None]) -> dash.ThresholdsConfig:
    return (
        dash.ThresholdsConfig()
        .mode(model.ThresholdsMode.ABSOLUTE)
        .steps([model.Threshold(value=value, color=color) for color, value in steps])
    )


def _dashed() -> model.DynamicConfigValue:
    return model.DynamicConfigValue(
        id_val="custom.lineStyle", value={"fill": "dash", "dash": [10, 10]}
    )


def _to_dict(builder: dash.Dashboard) -> Dashboard:
    built = builder.build()
    for number_, panel in enumerate(built.panels or [], start=1):
        panel.id_val = number_
    data: Dashboard = json.loads(json.dumps(built, cls=JSONEncoder, sort_keys=True))
    return data
