"""Grafana dashboards and alert rules: they load into Grafana's own models, their PromQL parses,
and every SLO gets the panels and alert tiers it is owed."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import promql_parser
import pulumiverse_grafana.alerting as grafana_alerting
import pytest
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.cog.plugins import register_default_plugins
from grafana_foundation_sdk.models.dashboard import Dashboard, RowPanel
from grafana_foundation_sdk.models.prometheus import Dataquery

from slo import conventions as names
from slo.dashboards import (
    CANARY_LABEL,
    PROMETHEUS_ANNOTATION_FIELDS,
    all_expressions,
    dashboard_uid,
    overview_dashboard,
    rollout_events_query,
    service_dashboard,
)
from slo.grafana_alerts import EXPR_DATASOURCE_UID, rule_group
from slo.loader import load_catalogue, parse_catalogue
from slo.model import resolve_all
from slo.rules import by_service

ROOT = Path(__file__).resolve().parent.parent
CATALOGUE = ROOT / "catalogue" / "core-services.yaml"
GOLDEN = sorted((ROOT / "tests" / "golden").glob("in-*.yaml"))
DATASOURCE = "prometheus-main"
# Grafana substitutes these before the query reaches Prometheus.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}

NATIVE_AND_CUSTOM_TIERS = {
    "services": [
        {
            "name": "native",
            "namespace": "web",
            "owner": "web-team",
            "selector": 'job="native"',
            "histograms": [{"name": "rpc_duration_seconds", "buckets": [0.5, 1], "native": True}],
            "slos": [
                {
                    "name": "fast",
                    "objective": 99,
                    "alerting": {
                        "tiers": [
                            {
                                "severity": "page",
                                "long_window": "2h",
                                "short_window": "10m",
                                "budget_consumed": 0.05,
                            }
                        ]
                    },
                    "indicator": {
                        "kind": "latency",
                        "histogram": "rpc_duration_seconds",
                        "threshold": 0.5,
                    },
                }
            ],
        }
    ]
}


def catalogues():
    yield pytest.param(load_catalogue(CATALOGUE), id="core-services")
    for path in GOLDEN:
        yield pytest.param(load_catalogue(path), id=path.stem)
    yield pytest.param(
        parse_catalogue(NATIVE_AND_CUSTOM_TIERS, "inline"), id="native-histogram-custom-tiers"
    )


def boards(catalogue):
    slos = resolve_all(catalogue)
    services = {s.name: s for s in catalogue.services}
    per_service = [
        service_dashboard(services[name], group, DATASOURCE)
        for name, group in by_service(slos).items()
    ]
    return [*per_service, overview_dashboard(slos, DATASOURCE)]


def panels(board):
    return [p for p in board["panels"] if p["type"] != "row"]


def rows(board):
    return [p for p in board["panels"] if p["type"] == "row"]


def parse(expr):
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    return promql_parser.parse(expr)


def models(rule):
    return {data["ref_id"]: json.loads(data["model"]) for data in rule["datas"]}


@pytest.fixture(scope="module")
def core():
    catalogue = load_catalogue(CATALOGUE)
    return catalogue, resolve_all(catalogue)


# Dashboards


@pytest.mark.parametrize("catalogue", catalogues())
def test_every_dashboard_loads_back_into_grafana_foundation_sdk_models(catalogue):
    register_default_plugins()
    for board in boards(catalogue):
        loaded = Dashboard.from_json(board)
        assert loaded.uid == board["uid"]
        assert [p.title for p in loaded.panels] == [p["title"] for p in board["panels"]]
        assert [isinstance(p, RowPanel) for p in loaded.panels] == [
            p["type"] == "row" for p in board["panels"]
        ]
        for panel in loaded.panels:
            if not isinstance(panel, RowPanel):
                assert panel.targets and all(isinstance(t, Dataquery) for t in panel.targets)
        again = json.loads(json.dumps(loaded, cls=JSONEncoder, sort_keys=True))
        # everything but the Prometheus annotation fields the SDK does not model
        listed = board.get("annotations", {}).get("list", [])
        assert len(listed) == len(again.get("annotations", {}).get("list", []))
        for annotation in listed:
            assert set(PROMETHEUS_ANNOTATION_FIELDS) <= set(annotation)
            annotation = {k: v for k, v in annotation.items()
                          if k not in PROMETHEUS_ANNOTATION_FIELDS}
            assert annotation in again["annotations"]["list"]
        board = {**board, "annotations": again.get("annotations", {})}
        assert again == board


@pytest.mark.parametrize("catalogue", catalogues())
def test_every_panel_expression_is_valid_promql(catalogue):
    for board in boards(catalogue):
        expressions = all_expressions(board)
        assert len(expressions) == sum(len(p["targets"]) for p in panels(board))
        for expr in expressions:
            parse(expr)


@pytest.mark.parametrize("catalogue", catalogues())
def test_uids_are_stable_unique_and_fit_grafanas_limit(catalogue):
    uids = [board["uid"] for board in boards(catalogue)]
    assert uids == [board["uid"] for board in boards(catalogue)]
    assert len(set(uids)) == len(uids)
    assert all(len(uid) <= 40 and re.fullmatch(r"[a-zA-Z0-9_-]+", uid) for uid in uids)


def test_a_long_or_unsafe_name_gets_a_hashed_uid_within_the_limit():
    long_name = "a-very-long-service-name-that-goes-on-and-on-and-on"
    assert dashboard_uid("orchestrator") == "slo-orchestrator"
    for name in (long_name, "has spaces/and slashes"):
        uid = dashboard_uid(name)
        assert len(uid) <= 40 and re.fullmatch(r"[a-zA-Z0-9_-]+", uid)
        assert uid == dashboard_uid(name)
    assert dashboard_uid(long_name) != dashboard_uid(long_name + "x")


def test_rendering_twice_gives_identical_json(core):
    catalogue, _ = core
    first = [json.dumps(b, sort_keys=True) for b in boards(catalogue)]
    assert first == [json.dumps(b, sort_keys=True) for b in boards(catalogue)]


def test_panel_ids_are_unique_within_a_dashboard(core):
    catalogue, _ = core
    for board in boards(catalogue):
        ids = [p["id"] for p in board["panels"]]
        assert len(set(ids)) == len(ids)


@pytest.mark.parametrize("catalogue", catalogues())
def test_each_slo_has_sli_budget_burn_rate_and_canary_panels_in_its_row(catalogue):
    slos = resolve_all(catalogue)
    services = {s.name: s for s in catalogue.services}
    for name, group in by_service(slos).items():
        board = service_dashboard(services[name], group, DATASOURCE)
        for slo in group:
            own = [p for p in panels(board) if p["title"].startswith(f"{slo.slo.name}: ")]
            titles = [p["title"] for p in own]
            exprs = {p["title"]: [t["expr"] for t in p["targets"]] for p in own}
            sli = exprs[f"{slo.slo.name}: SLI vs objective"]
            assert slo.selector_of(names.ERROR_RATIO_PERIOD) in sli[0]
            assert sli[-1] == slo.selector_of(names.OBJECTIVE)
            budget = exprs[f"{slo.slo.name}: error budget remaining"]
            assert budget == [slo.selector_of(names.ERROR_BUDGET_REMAINING)]
            burn = exprs[f"{slo.slo.name}: burn rate per alert window"]
            assert burn == [
                f"{slo.selector_of(names.error_ratio(w))} / {slo.budget:g}" for w in slo.windows()
            ]
            canary = [p for p in own if "canary vs stable" in p["title"]]
            assert canary, titles
            for panel in canary:
                for target in panel["targets"]:
                    assert CANARY_LABEL in target["expr"]
                    assert target["legendFormat"] == "{{" + CANARY_LABEL + "}}"
        assert len(rows(board)) == len(group) + 1


@pytest.mark.parametrize("catalogue", catalogues())
def test_burn_rate_panels_draw_every_tier_factor_as_a_threshold(catalogue):
    for slo in resolve_all(catalogue):
        board = service_dashboard(slo.service, [slo], DATASOURCE)
        (panel,) = [p for p in panels(board) if p["title"].endswith("burn rate per alert window")]
        steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
        assert steps[0]["value"] is None
        assert [s["value"] for s in steps[1:]] == sorted({t.factor for t in slo.tiers})


@pytest.mark.parametrize("catalogue", [
    p for p in catalogues() if any(s.events.is_latency for s in resolve_all(p.values[0]))
])
def test_latency_slos_plot_the_quantile_of_the_raw_histogram_against_the_threshold(catalogue):
    latency = [s for s in resolve_all(catalogue) if s.events.is_latency]
    assert latency  # only catalogues with a latency SLO are parametrized
    for slo in latency:
        board = service_dashboard(slo.service, [slo], DATASOURCE)
        (panel,) = [p for p in panels(board) if p["title"].endswith("latency vs threshold")]
        (expr,) = [t["expr"] for t in panel["targets"]]
        assert expr.startswith(f"histogram_quantile({slo.objective:g}, ")
        metric = slo.events.total_selector.metric.removesuffix("_count")
        assert metric in expr and "slo:" not in expr
        steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
        assert steps[-1]["value"] == slo.events.threshold


def test_the_rollout_row_reads_the_argo_rollouts_controller_metrics(core):
    catalogue, slos = core
    service = catalogue.services[0]
    board = service_dashboard(service, [s for s in slos if s.service == service], DATASOURCE)
    exprs = all_expressions(board)
    assert (f'rollout_info{{name="{service.name}",namespace="{service.namespace}"}} or '
            f'rollout_info{{name="{service.name}",exported_namespace="{service.namespace}"}}'
            ) in exprs  # the controller's label, or the name a ServiceMonitor scrape gives it
    assert any("analysis_run_info{" in e and "by (name, phase)" in e for e in exprs)
    assert any("analysis_run_metric_phase{" in e for e in exprs)


def test_every_panel_queries_the_given_datasource(core):
    catalogue, _ = core
    for board in boards(catalogue):
        for panel in panels(board):
            assert panel["datasource"] == {"type": "prometheus", "uid": DATASOURCE}
            for target in panel["targets"]:
                assert target["datasource"] == panel["datasource"]


def test_the_fleet_dashboard_shows_every_slo_alerts_firing_and_rollouts(core):
    _, slos = core
    board = overview_dashboard(slos, DATASOURCE)
    exprs = all_expressions(board)
    for slo in slos:
        assert f"1 - {slo.selector_of(names.ERROR_RATIO_PERIOD)}" in exprs
        assert slo.selector_of(names.OBJECTIVE) in exprs
        assert slo.selector_of(names.ERROR_BUDGET_REMAINING) in exprs
    alerts = [e for e in exprs if "ALERTS{" in e]
    assert alerts and all('alertname=~"SLOBurnRatePage|SLOBurnRateTicket"' in e for e in alerts)
    assert any('severity="page"' in e for e in alerts)
    assert any('severity="ticket"' in e for e in alerts)
    assert any(e.startswith("count by (phase) (rollout_info{") for e in exprs)
    assert {r["title"] for r in rows(board)} >= {s.service.name for s in slos}


def test_a_dashboard_refuses_an_slo_of_another_service(core):
    catalogue, slos = core
    with pytest.raises(ValueError, match="belongs to"):
        service_dashboard(catalogue.services[0], slos, DATASOURCE)


# Grafana-managed alert rules


def groups(catalogue):
    return [
        (group, rule_group(service, group, DATASOURCE))
        for service, group in by_service(resolve_all(catalogue)).items()
    ]


@pytest.mark.parametrize("catalogue", catalogues())
def test_each_page_and_ticket_tier_has_a_rule_over_both_windows_at_its_threshold(catalogue):
    for slos, group in groups(catalogue):
        rules = {r["name"]: r for r in group["rules"]}
        for slo in slos:
            for tier in slo.tiers:
                alert = names.ALERT_BURN[tier.severity]
                title = (
                    f"{alert} {slo.service.name} {slo.slo.name} "
                    f"({tier.long_window}, {tier.short_window})"
                )
                rule = rules[title]
                data = models(rule)
                long_expr, short_expr = data["long"]["expr"], data["short"]["expr"]
                assert slo.selector_of(names.error_ratio(tier.long_window)) in long_expr
                assert slo.selector_of(names.error_ratio(tier.short_window)) in short_expr
                for ref in ("longOver", "shortOver"):
                    assert data[ref]["type"] == "threshold"
                    (condition,) = data[ref]["conditions"]
                    assert condition["evaluator"] == {"type": "gt", "params": [tier.threshold]}
                assert data["longOver"]["expression"] == "long"
                assert data["shortOver"]["expression"] == "short"
                assert rule["condition"] == "firing"
                assert data["firing"]["type"] == "math"
                assert "$longOver && $shortOver" in data["firing"]["expression"]
                assert rule["labels"][names.LABEL_SEVERITY] == tier.severity
        burn = [r for r in group["rules"] if r["name"].startswith("SLOBurnRate")]
        assert len(burn) == sum(len(s.tiers) for s in slos)


@pytest.mark.parametrize("catalogue", catalogues())
def test_the_minimum_traffic_guard_is_mirrored_when_the_slo_has_one(catalogue):
    for slos, group in groups(catalogue):
        for slo in slos:
            rules = [
                r
                for r in group["rules"]
                if r["name"].startswith("SLOBurnRate")
                and r["labels"][names.LABEL_SLO] == slo.slo.name
            ]
            guarded = bool(slo.alerting.min_events) and slo.events.counts_traffic
            for rule in rules:
                data = models(rule)
                assert ("events" in data) == guarded
                if guarded:
                    assert f"$events >= {slo.alerting.min_events}" in data["firing"]["expression"]


@pytest.mark.parametrize("catalogue", catalogues())
def test_every_slo_has_an_absent_metrics_rule(catalogue):
    for slos, group in groups(catalogue):
        for slo in slos:
            title = f"{names.ALERT_ABSENT} {slo.service.name} {slo.slo.name}"
            (rule,) = [r for r in group["rules"] if r["name"] == title]
            data = models(rule)
            assert data["absent"]["expr"] == f"absent({slo.selector_of(names.TOTAL_RATE_5M)})"
            assert rule["condition"] == "missing"
            assert rule["for_"] == slo.alerting.absent_for


@pytest.mark.parametrize("catalogue", catalogues())
def test_alert_rules_carry_labels_annotations_and_states(catalogue):
    for slos, group in groups(catalogue):
        assert group["name"] == names.prometheus_rule_name(slos[0].service.name)
        assert group["interval_seconds"] == 60
        for rule in group["rules"]:
            slo = next(s for s in slos if s.slo.name == rule["labels"][names.LABEL_SLO])
            assert rule["labels"][names.LABEL_SERVICE] == slo.service.name
            assert rule["labels"][names.LABEL_SEVERITY] in ("page", "ticket")
            assert slo.alerting.labels.items() <= rule["labels"].items()
            assert {"summary", "description"} <= set(rule["annotations"])
            if slo.alerting.runbook_url:
                assert rule["annotations"]["runbook_url"] == slo.alerting.runbook_url
            assert rule["no_data_state"] == "OK"
            assert rule["exec_err_state"] == "Error"
            assert len({r["name"] for r in group["rules"]}) == len(group["rules"])


@pytest.mark.parametrize("catalogue", catalogues())
def test_every_alert_query_is_valid_promql_and_expressions_reference_known_refs(catalogue):
    for _, group in groups(catalogue):
        for rule in group["rules"]:
            data = models(rule)
            assert rule["condition"] in data
            for ref_id, model in data.items():
                assert model["refId"] == ref_id
                entry = next(d for d in rule["datas"] if d["ref_id"] == ref_id)
                if entry["datasource_uid"] == EXPR_DATASOURCE_UID:
                    assert model["type"] in ("math", "threshold", "reduce")
                    refs = re.findall(r"\$(\w+)", model["expression"]) or [model["expression"]]
                    assert set(refs) <= set(data) - {ref_id}
                    assert entry["relative_time_range"] == {"from_": 0, "to": 0}
                else:
                    assert entry["datasource_uid"] == DATASOURCE
                    assert model["instant"] is True
                    assert entry["relative_time_range"]["from_"] > 0
                    parse(model["expr"])


def test_rule_groups_match_the_pulumi_grafana_argument_types(core):
    _, slos = core
    for service, group in by_service(slos).items():
        args = rule_group(service, group, DATASOURCE)
        assert set(args) == {"name", "interval_seconds", "rules"}
        for rule in args["rules"]:
            datas = [
                grafana_alerting.RuleGroupRuleDataArgs(
                    **{
                        **data,
                        "relative_time_range": (
                            grafana_alerting.RuleGroupRuleDataRelativeTimeRangeArgs(
                                **data["relative_time_range"]
                            )
                        ),
                    }
                )
                for data in rule["datas"]
            ]
            built = grafana_alerting.RuleGroupRuleArgs(**{**rule, "datas": datas})
            assert built.condition == rule["condition"]
            assert built.for_ == rule["for_"]


def test_a_rule_group_refuses_an_slo_of_another_service(core):
    _, slos = core
    with pytest.raises(ValueError, match="belongs to"):
        rule_group("orchestrator", slos, DATASOURCE)


def test_service_dashboards_plot_the_judges_statistic_for_each_pod_template():
    from delivery.judge import evidence_window, gates
    from delivery.stack import load_stack_file
    from slo.dashboards import CanaryStatistic, service_dashboard

    stack = load_stack_file(ROOT / "Pulumi.prod.yaml")
    slos = by_service(resolve_all(load_catalogue(ROOT / "catalogue" / "core-services.yaml")))
    group = slos["api-gateway"]
    statistics = {
        g.name: CanaryStatistic(g.hypotheses.good, g.hypotheses.bad, g.abort, g.accept,
                                evidence_window(stack.delivery))
        for g in gates(group, stack.delivery)
    }
    board = service_dashboard(group[0].service, group, "prometheus", statistics)
    panels = [p for p in board["panels"] if p.get("title", "").endswith("verdict statistic")]
    assert [p["title"].split(":")[0] for p in panels] == ["availability", "latency", "error-rate"]
    for panel in panels:
        expr = panel["targets"][0]["expr"]
        promql_parser.parse(expr)
        # the statistic the AnalysisRuns decide on, as the evidence rules record it per hash
        name = panel["title"].split(":")[0]
        assert expr == (
            f'slo:canary_evidence:value{{service="api-gateway",slo="{name}",evidence="judged"}}'
        )
        steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
        assert steps[-1]["value"] == pytest.approx(statistics[panel["title"].split(":")[0]].abort)


def test_service_dashboards_mark_rollout_events(core):
    catalogue, slos = core
    service = catalogue.services[0]
    board = service_dashboard(service, [s for s in slos if s.service == service], DATASOURCE)
    (annotation,) = board["annotations"]["list"]
    assert annotation["expr"] == rollout_events_query(service)
    assert annotation["datasource"]["uid"] == DATASOURCE and annotation["enable"] is True
    assert annotation["titleFormat"] == "{{reason}}" and annotation["tagKeys"] == "reason"
    parse(annotation["expr"])


def test_the_rollout_events_query_marks_a_first_abort_and_a_later_one(core, tmp_path):
    """On the real engine (promtool): the controller creates a reason's series at its first
    event, so the first abort shows as a new series, the second as an increase; each for one
    ROLLOUT_EVENT_SPAN (1m) from the first scrape after it, nothing in between."""
    catalogue, _ = core
    service = catalogue.services[0]
    labels = (f'name="{service.name}",namespace="{service.namespace}",reason="RolloutAborted",'
              'type="Warning"')
    other = f'name="someone-else",namespace="{service.namespace}",reason="RolloutAborted"'
    # scraped through a ServiceMonitor: the Rollout's namespace as exported_namespace
    exported = (f'name="{service.name}",exported_namespace="{service.namespace}",'
                'namespace="argo-rollouts",reason="RolloutCompleted"')
    query = rollout_events_query(service)

    def at(minute: int, *samples: str) -> dict:
        return {"expr": query, "eval_time": f"{minute}m",
                "exp_samples": [{"labels": s, "value": 1} for s in samples]}

    test = {"evaluation_interval": "1m", "tests": [{
        "interval": "30s",
        "input_series": [
            {"series": f"rollout_events_total{{{labels}}}", "values": "_x9 1x19 2x19"},
            {"series": f"rollout_events_total{{{other}}}", "values": "1x48"},
            {"series": f"rollout_events_total{{{exported}}}", "values": "_x19 1x29"},
        ],
        "promql_expr_test": [
            at(4),
            at(5, f"rollout_events_total{{{labels}}}"),  # first seen at 5m
            at(6),
            at(10, f"rollout_events_total{{{exported}}}"),
            at(15, f"{{{labels}}}"),  # the second abort at 15m, an increase
            at(17),
        ],
    }]}
    (tmp_path / "test.yml").write_text(json.dumps(test))
    result = subprocess.run([shutil.which("promtool") or "promtool", "test", "rules",
                             "test.yml"], cwd=tmp_path, capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
