"""Canary bodies rendered by slo/analysis.py and slo/rollout.py, checked against the real CRD
schemas and against Argo Rollouts' analysis semantics."""

from pathlib import Path

import promql_parser
import pytest
import yaml

from delivery import analysis, rollout
from slo.loader import load_catalogue
from slo.model import resolve_all
from slo.rules import by_service
from delivery.config import DeliveryConfig, ServiceDeployment, parse_stack
from tests.schemas import validate

ROOT = Path(__file__).resolve().parent.parent
SLOS = by_service(resolve_all(load_catalogue(ROOT / "catalogue" / "core-services.yaml")))
ADDRESS = "http://prometheus.monitoring:9090"


def stack(name: str):
    import json

    raw = yaml.safe_load((ROOT / f"Pulumi.{name}.yaml").read_text())["config"]
    values = {k.split(":", 1)[1]: json.loads(json.dumps(v)) for k, v in raw.items()}
    return parse_stack(values, f"Pulumi.{name}.yaml")


STACKS = {name: stack(name) for name in ("dev", "prod")}


@pytest.mark.parametrize("stack_name", STACKS)
@pytest.mark.parametrize("service", sorted(SLOS))
def test_templates_and_rollout_fit_the_argo_rollouts_crds(stack_name, service):
    cfg = STACKS[stack_name]
    slos = SLOS[service]
    delivery = cfg.delivery
    bodies = [
        analysis.gate_template(service, "core", slos, delivery.analysis, ADDRESS),
        analysis.background_template(service, "core", slos, delivery.analysis, ADDRESS),
        analysis.freeze_template(service, "core", delivery.analysis, ADDRESS),
        rollout.rollout(
            service,
            "core",
            cfg.services[service],
            delivery,
            freeze=delivery.budget_freeze,
            gated=True,
            annotate_scrape=False,
        ),
        rollout.pod_monitor(service, "core", {}),
        rollout.ingress(service, "core", cfg.services[service]),
        rollout.network_policy(service, "core", cfg.services[service], "monitoring"),
        *rollout.services(service, "core", cfg.services[service]),
    ]
    for body in bodies:
        validate(body)


def test_a_misspelt_field_fails_the_crd_schema():
    body = analysis.gate_template(
        "orchestrator", "core", SLOS["orchestrator"], STACKS["dev"].delivery.analysis, ADDRESS
    )
    body["spec"]["metrics"][0]["consecutiveSuccesLimit"] = 2
    with pytest.raises(Exception, match="consecutiveSuccesLimit"):
        validate(body)


def test_default_steps_go_10_25_50_with_pauses_and_gates():
    delivery = DeliveryConfig()
    steps = rollout.steps("api", delivery, freeze=False, gated=True)
    weights = [s["setWeight"] for s in steps if "setWeight" in s]
    assert weights == [10, 25, 50]
    kinds = [next(iter(s)) for s in steps]
    assert kinds == ["setWeight", "pause", "analysis"] * 3
    assert all(s["pause"] == {"duration": "5m"} for s in steps if "pause" in s)


def test_prod_holds_at_a_manual_gate_before_full_promotion():
    steps = rollout.steps("api", STACKS["prod"].delivery, freeze=True, gated=True)
    assert steps[0] == {"analysis": {"templates": [{"templateName": "api-budget-freeze"}]}}
    assert steps[-1] == {"pause": {}}
    assert [s["pause"]["duration"] for s in steps if s.get("pause")] == ["5m"] * 3


def test_dev_has_short_pauses_and_no_manual_gate():
    steps = rollout.steps("api", STACKS["dev"].delivery, freeze=False, gated=True)
    assert {"pause": {}} not in steps
    assert {s["pause"]["duration"] for s in steps if "pause" in s} == {"30s"}


def test_gate_needs_consecutive_evidence_and_pauses_without_it():
    cfg = STACKS["prod"].delivery.analysis
    gate = analysis.gate_template("api-gateway", "api", SLOS["api-gateway"], cfg, ADDRESS)
    metrics = gate["spec"]["metrics"]
    assert {m["name"] for m in metrics} == {"error-rate", "latency", "availability"}
    for metric in metrics:
        assert metric["consecutiveSuccessLimit"] == cfg.consecutive_successes
        assert metric["count"] == cfg.max_measurements
        # inconclusive measurements never end the gate early: only the count does, and a count
        # reached without consecutive successes is Inconclusive (the rollout pauses)
        assert metric["inconclusiveLimit"] == cfg.max_measurements
        assert metric["failureLimit"] == cfg.failure_limit
        assert metric["consecutiveErrorLimit"] == cfg.consecutive_error_limit
        for condition in (metric["successCondition"], metric["failureCondition"]):
            assert condition.startswith("len(result) > 0 && !isNaN(result[0]) && ")


def test_conditions_compare_against_the_error_budget():
    cfg = STACKS["prod"].delivery.analysis
    gate = analysis.gate_template("orchestrator", "core", SLOS["orchestrator"], cfg, ADDRESS)
    by_name = {m["name"]: m for m in gate["spec"]["metrics"]}
    assert by_name["error-rate"]["successCondition"].endswith("result[0] <= 0.001")
    assert by_name["error-rate"]["failureCondition"].endswith("result[0] > 0.005")
    assert by_name["latency"]["successCondition"].endswith("result[0] <= 0.05")
    assert by_name["latency"]["failureCondition"].endswith("result[0] > 0.25")


def test_canary_queries_look_at_the_canary_only_and_need_enough_requests():
    cfg = STACKS["dev"].delivery.analysis
    gate = analysis.gate_template("agent-runner", "agents", SLOS["agent-runner"], cfg, ADDRESS)
    for metric in gate["spec"]["metrics"]:
        query = metric["provider"]["prometheus"]["query"]
        promql_parser.parse(query)
        assert query.count('rollouts_pod_template_hash="{{args.canary-hash}}"') >= 3
        assert query.endswith(f">= {cfg.min_requests})")
        assert metric["provider"]["prometheus"]["address"] == ADDRESS
    assert gate["spec"]["args"] == [{"name": "canary-hash"}]


def test_gauge_slos_do_not_gate_canaries():
    names = {
        m["name"]
        for m in analysis.gate_template(
            "agent-runner", "agents", SLOS["agent-runner"], STACKS["dev"].delivery.analysis, ADDRESS
        )["spec"]["metrics"]
    }
    assert names == {"error-rate", "latency"}


def test_background_analysis_starts_at_the_first_step_with_the_canary_hash():
    body = rollout.rollout(
        "api-gateway",
        "api",
        ServiceDeployment(image="x:1"),
        DeliveryConfig(),
        freeze=False,
        gated=True,
        annotate_scrape=False,
    )
    canary = body["spec"]["strategy"]["canary"]
    assert canary["analysis"]["startingStep"] == 0
    assert canary["analysis"]["templates"] == [{"templateName": "api-gateway-slo-background"}]
    assert canary["analysis"]["args"] == [
        {"name": "canary-hash", "valueFrom": {"podTemplateHashValue": "Latest"}}
    ]
    assert canary["stableService"] == "api-gateway-stable"
    assert canary["canaryService"] == "api-gateway-canary"


def test_freeze_pauses_instead_of_aborting():
    metric = analysis.freeze_template("api", "api", DeliveryConfig().analysis, ADDRESS)["spec"][
        "metrics"
    ][0]
    assert metric["failureCondition"] == "false"
    assert metric["inconclusiveLimit"] == 0
    assert (
        'slo:error_budget_remaining:ratio{service="api"}'
        in metric["provider"]["prometheus"]["query"]
    )


def test_pods_run_with_secure_defaults():
    body = rollout.rollout(
        "api",
        "api",
        ServiceDeployment(image="x:1"),
        DeliveryConfig(),
        freeze=False,
        gated=True,
        annotate_scrape=False,
    )
    pod = body["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "runAsUser": 10001,
        "capabilities": {"drop": ["ALL"]},
    }
    assert set(container["resources"]) == {"requests", "limits"}
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"


def test_pod_monitor_keeps_the_pod_template_hash():
    endpoint = rollout.pod_monitor("api", "api", {})["spec"]["podMetricsEndpoints"][0]
    assert {
        "sourceLabels": ["__meta_kubernetes_pod_label_rollouts_pod_template_hash"],
        "targetLabel": "rollouts_pod_template_hash",
    } in endpoint["relabelings"]


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
    delivery = DeliveryConfig(trafficRouting="nginx")
    body = rollout.rollout(
        "api",
        "api",
        ServiceDeployment(image="x:1"),
        delivery,
        freeze=False,
        gated=True,
        annotate_scrape=False,
    )
    assert body["spec"]["strategy"]["canary"]["trafficRouting"] == {
        "nginx": {"stableIngress": "api"}
    }


def test_promotion_accepts_dev_healthy_images_and_listed_exceptions():
    from delivery.config import ConfigError, check_promotion

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
