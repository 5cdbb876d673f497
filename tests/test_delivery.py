"""Canary bodies rendered by delivery/, checked against the real CRD schemas and against the
semantics of Argo Rollouts' analysis that the judge relies on."""

import json
import os
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import promql_parser
import pytest
import yaml

from delivery import judge, rollout
from delivery.canary import bodies
from delivery.routers import GATEWAY_API_PLUGIN_URL, PLUGIN_DIR, ROUTERS, replica_split
from delivery.stack import (
    DeliveryConfig,
    GatewayRef,
    ServiceDeployment,
    check_against_catalogue,
    parse_stack,
    project_values,
)
from slo import conventions as names
from slo.loader import load_catalogue, parse_catalogue
from slo.model import resolve_all
from slo.problems import ConfigError
from slo.rules import by_service
from tests.schemas import validate

ROOT = Path(__file__).resolve().parent.parent
CATALOGUE = load_catalogue(ROOT / "catalogue" / "core-services.yaml")
SLOS = by_service(resolve_all(CATALOGUE))
NAMESPACES = {s.name: s.namespace for s in CATALOGUE.services}


def stack_values(name: str) -> dict:
    raw = yaml.safe_load((ROOT / f"Pulumi.{name}.yaml").read_text())["config"]
    return project_values(json.loads(json.dumps(raw)))  # a copy each test may change


def stack(name: str, **analysis):
    values = stack_values(name)
    values["delivery"]["analysis"].update(analysis)
    return parse_stack(values, f"Pulumi.{name}.yaml")


STACKS = {name: stack(name) for name in ("dev", "prod")}


def render(service: str, stack_name: str = "dev", **analysis):
    cfg = stack(stack_name, **analysis) if analysis else STACKS[stack_name]
    return bodies(service, NAMESPACES[service], SLOS[service], cfg)


def metrics(body) -> dict:
    return {m["name"]: m for m in body["spec"]["metrics"]}


@pytest.mark.parametrize("stack_name", STACKS)
@pytest.mark.parametrize("service", sorted(SLOS))
def test_templates_and_rollout_fit_the_argo_rollouts_crds(stack_name, service):
    b = render(service, stack_name)
    nginx = STACKS[stack_name].model_copy(
        update={"delivery": STACKS[stack_name].delivery.model_copy(
            update={"traffic_routing": "nginx"})}
    )
    with_ingress = bodies(service, NAMESPACES[service], SLOS[service], nginx)
    traefik = bodies(service, NAMESPACES[service], SLOS[service], _routed(stack_name, "traefik"))
    gateway = _routed(stack_name, "gatewayapi", GATEWAY)
    http = bodies(service, NAMESPACES[service], SLOS[service], gateway)
    grpc = bodies(service, NAMESPACES[service], SLOS[service],
                  _with_service(gateway, service, grpc=True, host="svc.example.internal"))
    for body in [
        *b.templates.values(),
        b.rollout(b.image),
        b.pod_monitor,
        b.network_policy,
        *b.services.values(),
        with_ingress.ingress,
        with_ingress.rollout("x:1"),
        traefik.rollout("x:1"),
        *(route.body for route in traefik.routes),
        http.rollout("x:1"),
        *(route.body for route in [*http.routes, *grpc.routes]),
    ]:
        validate(body)


def _routed(stack_name: str, router: str, gateway: GatewayRef | None = None):
    stack = STACKS[stack_name]
    return stack.model_copy(update={"delivery": stack.delivery.model_copy(
        update={"traffic_routing": router, "gateway": gateway})})


GATEWAY = GatewayRef(name="public", namespace="gateways", sectionName="web")


def _with_service(cfg, service: str, **changes):
    return cfg.model_copy(update={"services": {
        **cfg.services, service: cfg.services[service].model_copy(update=changes)}})


def test_a_misspelt_field_fails_the_crd_schema():
    body = render("orchestrator").templates["gate"]
    body["spec"]["metrics"][0]["consecutiveSuccesLimit"] = 2
    with pytest.raises(Exception, match="consecutiveSuccesLimit"):
        validate(body)


def test_default_steps_go_10_25_50_with_pauses_and_gates():
    steps = rollout.steps("api", DeliveryConfig(), freeze=False, gated=True)
    assert [s["setWeight"] for s in steps if "setWeight" in s] == [10, 25, 50]
    assert [next(iter(s)) for s in steps] == ["setWeight", "pause", "analysis"] * 3
    assert all(s["pause"] == {"duration": "5m"} for s in steps if "pause" in s)


def test_gates_get_the_canary_and_the_stable_hash():
    steps = render("api-gateway", "prod").rollout("x:1")["spec"]["strategy"]["canary"]["steps"]
    gates = [s["analysis"] for s in steps if "analysis" in s and "args" in s["analysis"]]
    assert len(gates) == 3
    for gate in gates:
        assert gate["args"] == [
            {"name": "canary-hash", "valueFrom": {"podTemplateHashValue": "Latest"}},
            {"name": "stable-hash", "valueFrom": {"podTemplateHashValue": "Stable"}},
        ]


def test_prod_holds_at_a_manual_gate_before_full_promotion():
    steps = rollout.steps("api", STACKS["prod"].delivery, freeze=True, gated=True)
    assert steps[0] == {"analysis": {"templates": [{"templateName": "api-budget-freeze"}]}}
    assert steps[-1] == {"pause": {}}
    assert [s["pause"]["duration"] for s in steps if s.get("pause")] == ["5m"] * 3


def test_dev_has_short_pauses_and_no_manual_gate():
    steps = rollout.steps("api", STACKS["dev"].delivery, freeze=False, gated=True)
    assert {"pause": {}} not in steps
    assert {s["pause"]["duration"] for s in steps if "pause" in s} == {"30s"}


def test_a_gate_passes_on_one_measurement_past_the_accept_boundary_and_pauses_without_one():
    cfg = STACKS["prod"].delivery.analysis
    b = render("api-gateway", "prod")
    gate = metrics(b.templates["gate"])
    assert set(gate) == {"error-rate", "latency", "availability"}
    accept = judge.gates(SLOS["api-gateway"], STACKS["prod"].delivery)[0].accept
    for metric in gate.values():
        assert metric["consecutiveSuccessLimit"] == 1
        assert metric["count"] == cfg.max_measurements
        # undecided measurements never end the gate early; a count reached without a pass is
        # Inconclusive, so the rollout pauses for a human
        assert metric["inconclusiveLimit"] == cfg.max_measurements
        assert metric["failureLimit"] == 0
        # an unanswered query is never a measurement and never ends the analysis (int32 max)
        assert metric["consecutiveErrorLimit"] == cfg.consecutive_error_limit == 2**31 - 1
        assert metric["successCondition"] == (
            f"len(result) == 11 && result[8] >= 6 && result[1] <= {accept:.12g} && "
            "result[10] < 0"
        )


def test_abort_boundary_splits_the_false_abort_risk_over_the_enforced_slos():
    gate = metrics(render("orchestrator", "prod").templates["gate"])
    # three enforced SLOs share 0.1%: each gives half of its 0.000333... to the cumulative
    # statistic, ln(2 x 3000), and half to the change-point one over prod's 390m evidence window,
    # 390 / 5 + 1 = 79 restart points: ln(2 x 79 x 3000)
    for metric in gate.values():
        assert metric["failureCondition"] == (
            "len(result) == 11 && result[8] >= 6 && "
            "(result[0] >= 8.69951474821 || result[9] >= 13.0689626007)"
        )
    two = metrics(render("agent-runner", "prod").templates["gate"])
    assert set(two) == {"error-rate", "latency"}  # the gauge SLO cannot judge a canary
    for metric in two.values():  # ln(4000), ln(2 x 79 x 2000)
        assert metric["failureCondition"].endswith(
            "(result[0] >= 8.2940496401 || result[9] >= 12.6634974926)")


def test_queries_read_the_recorded_evidence_of_the_canary_in_order():
    b = render("agent-runner")
    assert b.evidence_rule is not None
    recorded = {
        (r["labels"]["slo"], r["labels"][judge.EVIDENCE_LABEL])
        for g in b.evidence_rule["spec"]["groups"] for r in g["rules"]
        if r["record"] == names.CANARY_EVIDENCE
    }
    for metric in b.templates["gate"]["spec"]["metrics"]:
        query = metric["provider"]["prometheus"]["query"]
        promql_parser.parse(query.replace("{{args.canary-hash}}", "c"))
        lines = query.split("\n")
        assert len(lines) == len(judge.EVIDENCE)
        for line, name in zip(lines, judge.EVIDENCE, strict=True):
            assert 'rollouts_pod_template_hash="{{args.canary-hash}}"' in line
            assert f'evidence="{name}"' in line
            assert (metric["name"], name) in recorded
    for group in b.evidence_rule["spec"]["groups"]:
        for rule in group["rules"]:
            promql_parser.parse(rule["expr"])
        assert group["interval"] == STACKS["dev"].prometheus.scrape_interval


def test_background_aborts_on_the_same_statistic_and_pauses_on_a_shared_incident():
    b = render("api-gateway")
    canary = b.rollout("x:1")["spec"]["strategy"]["canary"]
    assert canary["analysis"]["startingStep"] == 0
    assert canary["analysis"]["templates"] == [{"templateName": "api-gateway-slo-background"}]
    assert [a["name"] for a in canary["analysis"]["args"]] == ["canary-hash", "stable-hash"]
    background = metrics(b.templates["background"])
    gate = metrics(b.templates["gate"])
    assert set(background) == {
        *gate, *(f"{name}-shared-incident" for name in gate), "prometheus-outage"
    }
    for name, metric in gate.items():
        assert background[name]["failureCondition"] == metric["failureCondition"]
        assert "count" not in background[name]
        incident = background[f"{name}-shared-incident"]
        assert incident["failureCondition"] == "false"
        assert incident["inconclusiveLimit"] == 0  # one shared-incident measurement pauses


def test_an_outage_longer_than_the_limit_pauses_once_prometheus_answers():
    """The background's outage metric reads the evidence group's gap: a gap over
    ``outageLimit`` is an inconclusive measurement, and one pauses the rollout; no gap in view
    (or an answer without one) passes; it never fails. While Prometheus is away its queries
    error like every other metric's, without limit."""
    b = render("api-gateway", outageLimit="15m")
    outage = metrics(b.templates["background"])["prometheus-outage"]
    assert outage["failureCondition"] == "false" and outage["inconclusiveLimit"] == 0
    assert outage["successCondition"] == "len(result) == 0 || result[0] <= 900"
    assert outage["consecutiveErrorLimit"] == 2**31 - 1
    assert "count" not in outage  # runs as long as the background does
    query = outage["provider"]["prometheus"]["query"]
    assert query == 'max_over_time(slo:canary_evidence_gap:seconds{service="api-gateway"}[100s])'
    group = b.evidence_rule["spec"]["groups"][0]
    assert group["rules"][0]["record"] == "slo:canary_evidence_gap:seconds"
    assert group["rules"][-1] == {"record": "slo:canary_evidence_heartbeat:time",
                                  "expr": "vector(time())", "labels": {"service": "api-gateway"}}


@pytest.mark.parametrize(("limit", "why"), [("1m", "shorter than 2m"), ("25h", "longer than 24h"),
                                            ("ten", "")])
def test_an_outage_limit_outside_its_range_is_refused(limit, why):
    with pytest.raises(ConfigError) as err:
        render("api-gateway", outageLimit=limit)
    assert "delivery.analysis.outageLimit" in str(err.value) and why in str(err.value)


def test_baseline_ignore_judges_against_the_slo_alone():
    b = render("api-gateway", baseline="ignore")
    assert not any(n.endswith("-shared-incident") for n in metrics(b.templates["background"]))
    query = b.templates["gate"]["spec"]["metrics"][0]["provider"]["prometheus"]["query"]
    assert "clamp(" not in query


def test_advisory_gates_are_measured_in_the_background_only_and_never_decide():
    key = "api-gateway/latency"
    b = render("api-gateway", enforcementBySlo={key: "advisory"})
    assert "latency" not in metrics(b.templates["gate"])
    assert {"metricName": "latency"} in b.templates["background"]["spec"]["dryRun"]
    assert {"metricName": "latency-shared-incident"} in b.templates["background"]["spec"]["dryRun"]
    # two enforced SLOs now share the false-abort risk
    assert metrics(b.templates["gate"])["error-rate"]["failureCondition"].startswith(
        "len(result) == 11 && result[8] >= 6 && (result[0] >= 8.2940496401 ||"
    )


def test_a_stack_whose_gates_are_all_advisory_has_no_blocking_gate():
    b = render("api-gateway", enforcement="advisory")
    assert "gate" not in b.templates
    steps = b.rollout("x:1")["spec"]["strategy"]["canary"]["steps"]
    assert not any("analysis" in s for s in steps)
    assert "analysis" in b.rollout("x:1")["spec"]["strategy"]["canary"]


def test_enforcement_off_renders_no_analysis():
    b = render("api-gateway", enforcement="off")
    assert set(b.templates) == set()
    assert "analysis" not in b.rollout("x:1")["spec"]["strategy"]["canary"]


def test_native_histogram_latency_slos_gate_canaries():
    catalogue = parse_catalogue(
        {
            "services": [{
                "name": "api", "namespace": "api", "owner": "t", "selector": 'job="api"',
                "histograms": [{"name": "http_request_duration_seconds", "native": True,
                                "buckets": [2]}],
                "slos": [{
                    "name": "latency", "objective": 95,
                    "indicator": {"kind": "latency", "histogram": "http_request_duration_seconds",
                                  "threshold": 2},
                }],
            }]
        },
        "native.yaml",
    )
    values = stack_values("dev")
    values["services"] = {"api": {"image": "r/api:1"}}
    cfg = parse_stack(values, "Pulumi.dev.yaml")
    b = bodies("api", "api", resolve_all(catalogue), cfg)
    query = metrics(b.templates["gate"])["latency"]["provider"]["prometheus"]["query"]
    promql_parser.parse(query.replace("{{args.canary-hash}}", "c"))
    assert b.evidence_rule is not None
    steps = [r["expr"] for r in b.evidence_rule["spec"]["groups"][0]["rules"]][1:3]
    assert "histogram_count(http_request_duration_seconds{" in steps[0]
    assert "histogram_fraction(0, 2, last_over_time(http_request_duration_seconds{" in steps[1]
    for expr in steps:
        promql_parser.parse(expr)
    validate(b.templates["gate"])


@pytest.mark.parametrize("field", ["pause", "interval"])
@pytest.mark.parametrize("value", ["1d", "2w", "30 seconds", "0s"])
def test_argo_facing_durations_take_only_what_go_parses(field, value):
    values = stack_values("dev")
    if field == "pause":
        values["delivery"]["pause"] = value
    else:
        values["delivery"]["analysis"]["interval"] = value
    with pytest.raises(ConfigError) as err:
        parse_stack(values, "Pulumi.dev.yaml")
    assert len(err.value.lines) == 1
    assert f"{field}: " in err.value.lines[0]


@pytest.mark.parametrize(
    "where, value, line",
    [
        (("pause",), "25h", "slo-canary:delivery.pause: 25h is longer than 24h"),
        (("analysis", "interval"), "2h", "slo-canary:delivery.analysis.interval: 2h is longer "
         "than 1h"),
        (("analysis", "evidenceWindow"), "200h", "slo-canary:delivery.analysis.evidenceWindow: "
         "200h is longer than 168h"),
        (("analysis", "maxMeasurements"), 20_000, "slo-canary:delivery.analysis.maxMeasurements: "
         "20000"),
    ],
    ids=["pause", "interval", "evidence window", "measurements"],
)
def test_schedules_too_long_for_a_prometheus_range_are_refused(where, value, line):
    values = stack_values("dev")
    target = values["delivery"]
    for key in where[:-1]:
        target = target[key]
    target[where[-1]] = value
    with pytest.raises(ConfigError) as err:
        parse_stack(values, "Pulumi.dev.yaml")
    assert len(err.value.lines) == 1
    assert err.value.lines[0].startswith(f"Pulumi.dev.yaml: {line}"), err.value.lines[0]


def test_freeze_pauses_instead_of_aborting():
    metric = render("api-gateway", "prod").templates["freeze"]["spec"]["metrics"][0]
    assert metric["failureCondition"] == "false"
    assert metric["inconclusiveLimit"] == 0
    assert 'slo:error_budget_remaining:ratio{service="api-gateway"}' in (
        metric["provider"]["prometheus"]["query"]
    )


def test_pods_run_with_secure_defaults():
    b = render("api-gateway")
    pod = b.rollout("x:1")["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "runAsUser": 10001,
        "capabilities": {"drop": ["ALL"]},
    }
    assert container["image"] == "x:1"
    assert set(container["resources"]) == {"requests", "limits"}
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"


def test_pod_monitor_keeps_the_pod_template_hash_and_the_stack_scrape_interval():
    endpoint = render("api-gateway").pod_monitor["spec"]["podMetricsEndpoints"][0]
    assert {
        "sourceLabels": ["__meta_kubernetes_pod_label_rollouts_pod_template_hash"],
        "targetLabel": "rollouts_pod_template_hash",
    } in endpoint["relabelings"]
    assert endpoint["interval"] == "30s"


@pytest.mark.parametrize(
    "replicas, weight, canary, stable",
    [(2, 10, 1, 2), (2, 50, 1, 1), (4, 10, 1, 4), (4, 25, 1, 3), (4, 50, 2, 2), (6, 10, 1, 6)],
    ids=lambda v: str(v),
)
def test_replica_routing_rounds_to_whole_pods_as_argo_does(replicas, weight, canary, stable):
    assert replica_split(replicas, weight) == (canary, stable)


def test_two_replicas_at_ten_percent_send_a_third_of_the_traffic():
    assert ROUTERS["replicas"].share(2, 10) == pytest.approx(1 / 3)
    assert ROUTERS["nginx"].share(2, 10) == pytest.approx(0.10)


def test_router_table_and_config_agree():
    from typing import get_args

    from delivery.stack import DeliveryConfig as D

    allowed = get_args(D.model_fields["traffic_routing"].annotation)
    assert set(allowed) == set(ROUTERS)


@pytest.mark.parametrize(
    "status, verdict",
    [
        ({"observedGeneration": "4", "phase": "Healthy"}, "waiting"),
        ({"observedGeneration": "5", "phase": "Progressing"}, "waiting"),
        ({"observedGeneration": "5", "phase": "Healthy"}, "healthy"),
        ({"observedGeneration": "6", "phase": "Healthy"}, "healthy"),
        ({"observedGeneration": "5", "phase": "Degraded", "abort": True}, "aborted"),
        ({}, "waiting"),
    ],
    ids=["the previous release's Healthy does not count", "progressing", "healthy",
         "a generation the controller bumped itself",
         "aborted fails at once", "no status yet"],
)
def test_waiting_for_a_rollout_checks_the_observed_generation(status, verdict):
    from components.rollout_wait import state

    assert state({"status": status}, 5)[0] == verdict


def test_nginx_routing_points_at_the_stable_ingress():
    cfg = STACKS["dev"].model_copy(
        update={"delivery": STACKS["dev"].delivery.model_copy(update={"traffic_routing": "nginx"})}
    )
    b = bodies("api-gateway", "api", SLOS["api-gateway"], cfg)
    assert b.rollout("x:1")["spec"]["strategy"]["canary"]["trafficRouting"] == {
        "nginx": {"stableIngress": "api-gateway"}
    }
    assert b.ingress is not None
    assert render("api-gateway").ingress is None


def test_traefik_routing_weighs_a_traefikservice_behind_an_ingressroute():
    cfg = _routed("dev", "traefik")
    b = bodies("api-gateway", "api", SLOS["api-gateway"], cfg)
    canary = b.rollout("x:1")["spec"]["strategy"]["canary"]
    assert canary["trafficRouting"] == {"traefik": {"weightedTraefikServiceName": "api-gateway"}}
    weighted, route = (r.body for r in b.routes)
    assert weighted["kind"] == "TraefikService" and route["kind"] == "IngressRoute"
    # the names Argo Rollouts looks for, stable at 100 until it moves them
    assert [(s["name"], s["weight"]) for s in weighted["spec"]["weighted"]["services"]] == [
        (canary["stableService"], 100), (canary["canaryService"], 0)]
    assert b.routes[0].managed_by_argo == ("spec.weighted.services",)
    assert route["spec"]["routes"][0]["services"] == [
        {"name": "api-gateway", "kind": "TraefikService"}]
    assert b.ingress is None
    hosted = cfg.model_copy(update={"services": {**cfg.services, "api-gateway": cfg.services[
        "api-gateway"].model_copy(update={"host": "api.example.internal"})}})
    routed = bodies("api-gateway", "api", SLOS["api-gateway"], hosted).routes[1].body
    assert routed["spec"]["routes"][0]["match"] == "Host(`api.example.internal`)"
    assert ROUTERS["traefik"].share(2, 10) == pytest.approx(0.10)


@pytest.mark.parametrize("grpc", [False, True], ids=["http", "grpc"])
def test_gatewayapi_routing_weighs_a_route_on_the_stacks_gateway(grpc):
    cfg = _with_service(_routed("prod", "gatewayapi", GATEWAY), "api-gateway",
                        host="api.example.internal", grpc=grpc)
    b = bodies("api-gateway", "api", SLOS["api-gateway"], cfg)
    canary = b.rollout("x:1")["spec"]["strategy"]["canary"]
    key, kind = ("grpcRoute", "GRPCRoute") if grpc else ("httpRoute", "HTTPRoute")
    assert canary["trafficRouting"] == {
        "plugins": {"argoproj-labs/gatewayAPI": {key: "api-gateway", "namespace": "api"}}}
    (route,) = b.routes
    body = route.body
    assert (body["kind"], body["metadata"]["name"], body["metadata"]["namespace"]) == (
        kind, "api-gateway", "api")
    assert body["spec"]["parentRefs"] == [
        {"name": "public", "namespace": "gateways", "sectionName": "web"}]
    assert body["spec"]["hostnames"] == ["api.example.internal"]
    (rule,) = body["spec"]["rules"]
    # the Services Argo Rollouts names, on the port they serve, stable at 100 until it moves them
    assert [(r["name"], r["port"], r["weight"]) for r in rule["backendRefs"]] == [
        (canary["stableService"], 80, 100), (canary["canaryService"], 80, 0)]
    ports = {s["metadata"]["name"]: s["spec"]["ports"][0]["port"] for s in b.services.values()}
    assert ports == {canary["stableService"]: 80, canary["canaryService"]: 80}
    assert route.managed_by_argo == ("spec.rules",)
    assert b.ingress is None
    validate(body)
    assert ROUTERS["gatewayapi"].share(2, 10) == pytest.approx(0.10)


def test_gatewayapi_without_a_host_or_section_matches_every_host_and_listener():
    cfg = _routed("dev", "gatewayapi", GatewayRef(name="public", namespace="gateways"))
    body = bodies("orchestrator", "core", SLOS["orchestrator"], cfg).routes[0].body
    assert "hostnames" not in body["spec"]
    assert body["spec"]["parentRefs"] == [{"name": "public", "namespace": "gateways"}]


def test_testers_header_goes_to_the_canary_from_the_first_step_until_the_last_gate():
    from delivery.stack import CanaryHeader

    header = CanaryHeader(name="X-Canary", value="always")
    cfg = _routed("prod", "gatewayapi", GATEWAY)
    cfg = cfg.model_copy(update={"delivery": cfg.delivery.model_copy(
        update={"canary_header": header})})
    routed = bodies("api-gateway", "api", SLOS["api-gateway"], cfg).rollout("x:1")
    validate(routed)
    canary = routed["spec"]["strategy"]["canary"]
    assert canary["trafficRouting"] == {
        "managedRoutes": [{"name": "canary-header"}],
        "plugins": {"argoproj-labs/gatewayAPI": {
            "httpRoutes": [{"name": "api-gateway", "useHeaderRoutes": True}], "namespace": "api"}}}
    kinds = [next(iter(step)) for step in canary["steps"]]
    first_weight, last_gate = kinds.index("setWeight"), len(kinds) - 1 - kinds[::-1].index(
        "analysis")
    set_route, remove_route = (i for i, k in enumerate(kinds) if k == "setHeaderRoute")
    assert set_route < first_weight and remove_route == last_gate + 1
    assert canary["steps"][set_route]["setHeaderRoute"] == {"name": "canary-header", "match": [
        {"headerName": "X-Canary", "headerValue": {"exact": "always"}}]}
    assert canary["steps"][remove_route]["setHeaderRoute"] == {"name": "canary-header"}
    assert kinds[remove_route + 1] == "pause"  # prod's manual gate comes after
    # a gRPC service's GRPCRoute gets no header route
    grpc = _with_service(cfg, "agent-runner", grpc=True)
    canary = bodies("agent-runner", "agents", SLOS["agent-runner"], grpc).rollout("x:1")["spec"][
        "strategy"]["canary"]
    assert "managedRoutes" not in canary["trafficRouting"]
    assert not [s for s in canary["steps"] if "setHeaderRoute" in s]


def test_the_controllers_config_names_the_gatewayapi_plugin_it_is_given(tmp_path):
    from components.argo_rollouts import helm_values, manifest_objects
    from delivery.stack import ArgoRolloutsConfig, RouterPlugin

    router = ROUTERS["gatewayapi"]
    digest = "ab" * 32
    pinned = ArgoRolloutsConfig(gatewayApiPlugin=RouterPlugin(sha256=digest))
    controller = helm_values(pinned, router=router)["controller"]
    assert controller["trafficRouterPlugins"] == [{
        "name": "argoproj-labs/gatewayAPI", "location": GATEWAY_API_PLUGIN_URL, "sha256": digest}]
    assert "initContainers" not in controller and "extraArgs" not in controller
    image = ArgoRolloutsConfig(gatewayApiPlugin=RouterPlugin(
        image="registry.platform.internal/argo/gatewayapi-plugin:v0.15.0"))
    controller = helm_values(image, router=router)["controller"]
    (entry,) = controller["trafficRouterPlugins"]
    (init,) = controller["initContainers"]
    assert entry["location"] == f"file://{PLUGIN_DIR}/{RouterPlugin.FILE}"
    assert init["command"][-1] == f"{PLUGIN_DIR}/{RouterPlugin.FILE}"
    assert init["volumeMounts"] == [{"name": "plugin-bin", "mountPath": PLUGIN_DIR}]
    validate({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
              "spec": {"initContainers": [init], "containers": [{"name": "c", "image": "i"}],
                       "volumes": [{"name": "plugin-bin", "emptyDir": {}}]}})
    # the install manifests: the plugin in the controller's ConfigMap, the init container, and
    # the permissions their ClusterRole lacks, bound to the controller's ServiceAccount
    install = tmp_path / "install.yaml"
    install.write_text(yaml.safe_dump_all([
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "argo-rollouts-config"}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "argo-rollouts"},
         "spec": {"template": {"spec": {"containers": [{"name": "argo-rollouts"}]}}}},
    ]))
    config, deployment, role, binding = manifest_objects(
        str(install), "argo-rollouts", router=router, plugin=image.gateway_api_plugin)
    assert yaml.safe_load(config["data"]["trafficRouterPlugins"]) == [entry]
    assert deployment["spec"]["template"]["spec"]["initContainers"] == [init]
    assert role["rules"] == list(router.controller_rules)
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "argo-rollouts", "namespace": "argo-rollouts"}]
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    for body in (config, role, binding):
        validate(body)


def test_the_controller_gets_the_flags_a_router_needs(tmp_path):
    from components.argo_rollouts import helm_values, manifest_objects
    from delivery.stack import ArgoRolloutsConfig

    flags = ROUTERS["traefik"].controller_args
    assert flags == ("--traefik-api-group=traefik.io",
                     "--traefik-api-version=traefik.io/v1alpha1")
    assert helm_values(ArgoRolloutsConfig(), router=ROUTERS["traefik"])["controller"][
        "extraArgs"] == list(flags)
    assert "extraArgs" not in helm_values(ArgoRolloutsConfig())["controller"]
    install = tmp_path / "install.yaml"
    install.write_text(yaml.safe_dump({"apiVersion": "apps/v1", "kind": "Deployment",
                                       "metadata": {"name": "argo-rollouts"}, "spec": {
                                           "template": {"spec": {"containers": [
                                               {"name": "argo-rollouts", "args": ["--a"]}]}}}}))
    (deployment,) = manifest_objects(str(install), "argo-rollouts", router=ROUTERS["traefik"])
    assert deployment["spec"]["template"]["spec"]["containers"][0]["args"] == ["--a", *flags]


def test_the_plan_says_once_that_nginx_is_deprecated(tmp_path):
    stack = tmp_path / "Pulumi.dev.yaml"
    stack.write_text((ROOT / "Pulumi.dev.yaml").read_text().replace(
        "  slo-canary:delivery:\n", "  slo-canary:delivery:\n    trafficRouting: nginx\n", 1))
    (tmp_path / "catalogue").symlink_to(ROOT / "catalogue")
    done = subprocess.run([sys.executable, "-m", "delivery", "plan", "--stack", str(stack)],
                          cwd=tmp_path, capture_output=True, text=True, check=False,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    deprecated = [line for line in done.stdout.splitlines() if "deprecated" in line
                  or "retired" in line]
    assert deprecated == [f"dev: trafficRouting nginx: {ROUTERS['nginx'].deprecated}"]
    assert "docs/traffic-routing.md" in deprecated[0]


def test_promotion_accepts_dev_healthy_images_and_listed_exceptions():
    from delivery.stack import check_promotion

    prod = STACKS["prod"]
    healthy = {name: d.image for name, d in prod.services.items()}
    assert check_promotion(prod, healthy, "Pulumi.prod.yaml") == healthy
    stale = {**healthy, "api-gateway": "registry.platform.internal/core/api-gateway:3.0.3"}
    with pytest.raises(ConfigError) as err:
        check_promotion(prod, stale, "Pulumi.prod.yaml")
    assert err.value.lines == [
        "Pulumi.prod.yaml: slo-canary:services.api-gateway.image: "
        "registry.platform.internal/core/api-gateway:3.0.4 has not been rolled out to Healthy in "
        "acme/slo-canary/dev (it runs registry.platform.internal/core/api-gateway:3.0.3); release "
        "it there first, or list it in slo-canary:promotion.allowImages"
    ]
    allowed = prod.model_copy(update={"promotion": prod.promotion.model_copy(
        update={"allow_images": ["registry.platform.internal/core/api-gateway:3.0.4"]})})
    assert check_promotion(allowed, stale, "Pulumi.prod.yaml")["api-gateway"].endswith("3.0.4")
    with pytest.raises(ConfigError, match="nothing Healthy"):
        check_promotion(prod, None, "Pulumi.prod.yaml")


@pytest.mark.parametrize(
    "image",
    ["registry.example:5000/team/app:1.2.3", "team/app:1", "localhost/app:dev",
     "team/app@sha256:" + "a" * 64, "registry.example/app:1@sha256:" + "b" * 64],
)
def test_pinned_image_references_are_accepted(image):
    assert ServiceDeployment(image=image).image == image


@pytest.mark.parametrize(
    "image, says",
    [
        ("registry.example:5000/team/app", "the colon belongs to the registry's port"),
        ("team/app", "has no tag or digest"),
        ("Team/App:1", "is not an image reference"),
        ("team/app:", "is not an image reference"),
    ],
)
def test_unpinned_or_malformed_image_references_are_refused(image, says):
    with pytest.raises(ValueError, match=re.escape(says)):
        ServiceDeployment(image=image)


KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters:
- {name: a, cluster: {server: "https://cluster-a.example:6443"}}
- {name: b, cluster: {server: "https://cluster-b.example:6443"}}
users:
- {name: u, user: {token: t}}
contexts:
- {name: ctx-a, context: {cluster: a, user: u}}
- {name: ctx-b, context: {cluster: b, user: u}}
current-context: ctx-a
"""


def test_the_rollout_watcher_talks_to_the_stacks_cluster(tmp_path, monkeypatch):
    from components.rollout_wait import api_client

    default = tmp_path / "default-kubeconfig"
    default.write_text(KUBECONFIG.replace("cluster-a", "machine-default"))
    monkeypatch.setenv("KUBECONFIG", str(default))

    def host(api):
        return api.api_client.configuration.host

    # the provider's kubeconfig (contents, as `kubernetes:kubeconfig` may hold), its context
    assert host(api_client(KUBECONFIG)) == "https://cluster-a.example:6443"
    assert host(api_client(KUBECONFIG, "ctx-b")) == "https://cluster-b.example:6443"
    path = tmp_path / "stack-kubeconfig"
    path.write_text(KUBECONFIG)
    assert host(api_client(str(path), "ctx-b")) == "https://cluster-b.example:6443"
    # only a stack that configures nothing falls back to the machine's default, like the provider
    assert host(api_client(None)) == "https://machine-default.example:6443"
    assert host(api_client(None, "ctx-b")) == "https://cluster-b.example:6443"


def test_waits_for_several_rollouts_run_at_once(monkeypatch):
    import asyncio
    import time

    from components import rollout_wait

    class Api:
        def get_namespaced_custom_object(self, *args):
            time.sleep(0.2)  # a slow API server
            return {"status": {"observedGeneration": "1", "phase": "Healthy"}}

    monkeypatch.setattr(rollout_wait, "api_client", lambda *a: Api())

    async def all_three():
        return await asyncio.gather(
            *(rollout_wait.wait_healthy("ns", name, 1, 10) for name in ("a", "b", "c"))
        )

    loop = asyncio.new_event_loop()  # not asyncio.run: it would unset the loop Pulumi's tests use
    start = time.monotonic()
    try:
        assert loop.run_until_complete(all_three()) == ["Healthy"] * 3
    finally:
        loop.close()
    assert time.monotonic() - start < 0.5  # not 0.6: the three polls overlapped


def test_config_keys_nobody_reads_and_plain_secrets_are_named():
    from delivery.stack import check_config_keys

    keys = [
        "slo-canary:delivery",
        "slo-canery:delivery",
        "kubernetes:context",
        "grafana:url",
        "aws:region",
        "slo-canary:grafanaToken",
        "plain",
    ]
    lines = check_config_keys(keys, secrets=set(), source="Pulumi.x.yaml")
    assert lines == [
        "Pulumi.x.yaml: slo-canery:delivery: 'slo-canery' is not a config namespace of this "
        "program or its providers (did you mean 'slo-canary'?); nothing reads this key (known: "
        "slo-canary, grafana, kubernetes, pulumi)",
        "Pulumi.x.yaml: aws:region: 'aws' is not a config namespace of this program or its "
        "providers; nothing reads this key (known: slo-canary, grafana, kubernetes, pulumi)",
        "Pulumi.x.yaml: slo-canary:grafanaToken: a secret in plain text, committed with the "
        "file; remove it and run: pulumi config set --secret slo-canary:grafanaToken <value>",
    ]
    assert check_config_keys(["slo-canary:grafanaToken"], {"slo-canary:grafanaToken"}, "s") == []


@pytest.mark.parametrize("value, accepted", [
    # written by `pulumi config set --secret` (passphrase provider), and a secrets-provider blob
    ("v1:pu+Va7FOv4CWGjDi:pF0c/FuWQzJEhkO+cGrc6mQ=", True),
    ("v1:ddMFuHVPwHSIASHm:yqBwlqUqsu9PBasYN42Za/VVT3k+ZrOoNKOj2As097cV7JquCzPXPTy62V4u4J77GJPO5l"
     "OE31jW", True),
    ("AAABAJ9vW6dY0p3vKk0oQyq0ZJxkqQ4s8M3V2uH7xq5y2r8=", True),
    # a token pasted under secure: by hand
    ("glsa_plaintext_sentinel_4d1f", False),
    ("hunter2", False),
    ("0123456789abcdef0123456789abcdef", False),
    ("v1:a:b", False),
    ({"nested": "map"}, False),
])
def test_a_secure_value_must_be_a_ciphertext_pulumi_wrote(value, accepted):
    from delivery.stack import is_ciphertext

    assert is_ciphertext(value) is accepted


ADD_A_ROUTER = '''
import json
from pathlib import Path
from delivery.routers import ROUTERS, Router
ROUTERS["dummy"] = Router("a dummy router", lambda replicas, weight: weight / 100, "dummy-class",
                          lambda target: {"dummy": {"stable": target.service}})
from delivery.canary import bodies
from delivery.stack import load_stack_file, stack_catalogue
from delivery.plan import plan
from slo.rules import by_service
path = Path("Pulumi.dev.yaml")
values = load_stack_file(path).model_dump(by_alias=True)
values["delivery"]["trafficRouting"] = "dummy"
from delivery.stack import parse_stack
stack = parse_stack(values, path.name)
_, slos = stack_catalogue(stack, Path.cwd(), path.name)
mine = by_service(slos)["api-gateway"]
built = bodies("api-gateway", "api", mine, stack)
print(json.dumps({
    "routing": built.rollout(built.image)["spec"]["strategy"]["canary"]["trafficRouting"],
    "ingress_class": built.ingress["spec"]["ingressClassName"] if built.ingress else None,
    "plan": plan("api-gateway", stack, built.gates).output(),
}, default=str))
'''


def test_a_router_is_one_entry_in_the_routers_table():
    """The README's recipe: a router added to ROUTERS alone is accepted by the stack file,
    routes the Rollout, gets its stable Ingress with its class, and the plan uses its share."""
    done = subprocess.run([sys.executable, "-c", ADD_A_ROUTER], cwd=ROOT, capture_output=True,
                          text=True, check=False, timeout=120)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert found["routing"] == {"dummy": {"stable": "api-gateway"}}
    assert found["ingress_class"] == "dummy-class"
    assert found["plan"]["trafficShareByWeight"]["10%"] == "10%"  # its share, not the replicas'
    assert ROUTERS["replicas"].share(2, 10) != pytest.approx(0.10)


def _rates(cfg, service: str) -> dict[str, tuple[float, float, str]]:
    return {g.name: (g.hypotheses.good, g.hypotheses.bad, g.fail_burn_source)
            for g in judge.stack_gates(SLOS[service], cfg, service)}


def test_burn_rates_per_kind_and_per_slo_override_the_stacks():
    cfg = stack("dev", burnRatesByKind={"latency": {"failBurnRate": 3}},
                burnRatesBySlo={"api-gateway/error-rate": {"passBurnRate": 2, "failBurnRate": 5}})
    rates = _rates(cfg, "api-gateway")
    assert rates["latency"][:2] == (0.05, 0.15)  # 5% budget: 1x and 3x
    assert rates["error-rate"][:2] == (0.002, 0.005)  # 0.1% budget: 2x and 5x
    assert rates["availability"][1] == pytest.approx(10 * (1 - 0.995))  # the stack's 10x


def test_auto_chooses_the_smallest_fail_burn_rate_the_first_gate_decides_at_the_traffic():
    def at(rate: float | None):
        values = stack_values("prod")
        values["delivery"]["analysis"]["failBurnRate"] = "auto"
        values["services"]["api-gateway"]["expectedRequestsPerMinute"] = rate
        if rate is None:
            del values["services"]["api-gateway"]["expectedRequestsPerMinute"]
        return _rates(parse_stack(values, "Pulumi.prod.yaml"), "api-gateway")

    unknown = at(None)["error-rate"]
    assert unknown[1] == pytest.approx(0.01) and "no expected traffic" in unknown[2]
    busy, quiet = at(50_000)["error-rate"], at(200)["error-rate"]
    assert busy[1] == pytest.approx(0.002) and "smallest that decides" in busy[2]
    assert busy[1] < quiet[1] <= 0.01
    # what auto promises: twice Wald's requests at both hypotheses fit in the first gate, and
    # the next smaller rate's would not
    prod = STACKS["prod"]
    share = 0.2  # api-gateway's real share at 10% on prod's router
    seconds = judge.first_gate_seconds(prod.delivery, prod.prometheus.scrape_interval)
    available = 200 * share * seconds / 60
    [gate] = [g for g in judge.stack_gates(SLOS["api-gateway"], prod, "api-gateway")
              if g.name == "error-rate"]
    chosen = judge.Hypotheses(0.001, quiet[1])
    assert judge.decides_in(replace(gate, hypotheses=chosen), available)
    smaller = {0.01: 0.005, 0.005: 0.003, 0.003: 0.002}.get(round(quiet[1], 6))
    if smaller is not None:
        assert not judge.decides_in(
            replace(gate, hypotheses=judge.Hypotheses(0.001, smaller)), available)


@pytest.mark.parametrize(("analysis", "field"), [
    ({"burnRatesByKind": {"latncy": {"failBurnRate": 3}}}, "burnRatesByKind"),
    ({"burnRatesBySlo": {"api-gateway/nope": {"failBurnRate": 3}}},
     "burnRatesBySlo.api-gateway/nope"),
    ({"burnRatesBySlo": {"api-gateway/latency": {"passBurnRate": 12}}}, "failBurnRate"),
])
def test_a_wrong_burn_rate_override_is_one_clear_error(analysis, field):
    with pytest.raises(ConfigError) as err:
        cfg = stack("dev", **analysis)
        check_against_catalogue(cfg, [s for group in SLOS.values() for s in group],
                                "Pulumi.dev.yaml")
    assert str(err.value).count("\n") == 0 and field in str(err.value)


def test_slos_doc_says_what_each_prod_gate_does_at_the_expected_traffic():
    """docs/slos.md: per gated SLO on a stack that states the service's traffic, P(abort) /
    P(pass) by the end of the first gate at 1, 2, 3, 5 and 10x the budget (``oc.curve``) and
    the smallest burn caught; dev states no traffic, so it has no such rows."""
    from delivery import oc
    from delivery.docs import first_gate_tables

    prod = STACKS["prod"]
    for service, slos in SLOS.items():
        rows = [r for r in first_gate_tables(slos, {"prod": prod, "dev": STACKS["dev"]})
                if r.startswith("| ") and not r.startswith("| SLO")]
        gates = judge.stack_gates(slos, prod, service)
        assert [r.split(" | ")[:2] for r in rows] == [[f"| {g.name}", "prod"] for g in gates]
        traffic = judge.expected_traffic(prod, service)
        assert traffic is not None
        for row, gate in zip(rows, gates, strict=True):
            cells = row.strip("| ").split(" | ")
            curve = oc.curve(gate, prod, traffic.canary_rate)
            assert len(cells) == 3 + len(oc.BURNS) + 1
            ten = curve[10.0]
            assert cells[3 + oc.BURNS.index(10.0)].startswith(">99.9%" if ten.abort > 0.999
                                                               else f"{ten.abort:.1%}")
