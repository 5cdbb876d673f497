"""The Pulumi program and its components under Pulumi's mock runtime.

Stacks are rendered in a subprocess (as `make render` does) so each run has a fresh Pulumi
runtime; components are built inside tests with mocks installed by a fixture.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pulumi
import pytest
import yaml

from delivery.stack import DeliveryConfig, GrafanaConfig, PrometheusConfig, ServiceDeployment
from slo import dashboards
from slo.loader import load_catalogue
from slo.model import resolve_all
from slo.rules import by_service
from tests.schemas import validate

ROOT = Path(__file__).resolve().parent.parent
SLOS = resolve_all(load_catalogue(ROOT / "catalogue" / "core-services.yaml"))
STACK_FILES = sorted(ROOT.glob("Pulumi.*.yaml"))
BROKEN = sorted((ROOT / "tests" / "stacks" / "broken").glob("Pulumi.*.yaml"))


SECRET_SENTINEL = "sentinel-grafana-token-5b7e2a91"


def render(
    stack_file: Path, out: Path, hash_seed: str = "0", script: str = "tools/render.py"
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONHASHSEED": hash_seed, "SLO_CANARY_RENDER_SECRET": SECRET_SENTINEL}
    return subprocess.run(
        [sys.executable, script, "--stack-file", str(stack_file), "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        env=env,
    )


def leaks(out: Path) -> list[Path]:
    """Rendered files that hold the stand-in secret."""
    return [
        p for p in sorted(out.rglob("*"))
        if p.is_file() and SECRET_SENTINEL.encode() in p.read_bytes()
    ]


@pytest.fixture(
    scope="module",
    params=[p for p in STACK_FILES if p.name != "Pulumi.yaml"],
    ids=lambda p: p.stem.removeprefix("Pulumi."),
)
def rendered(request, tmp_path_factory):
    out = tmp_path_factory.mktemp(request.param.stem)
    result = render(request.param, out)
    assert result.returncode == 0, result.stderr
    return out


def test_every_stack_file_renders_and_every_object_fits_its_schema(rendered):
    objects = [yaml.safe_load(p.read_text()) for p in (rendered / "kubernetes").rglob("*.yaml")]
    kinds = {o["kind"] for o in objects}
    assert {"Rollout", "AnalysisTemplate", "Service", "PrometheusRule", "NetworkPolicy"} <= kinds
    for body in objects:
        validate(body)
        # the API server's rule for object names (the schemas above do not check it)
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*",
                            body["metadata"]["name"]), body["metadata"]["name"]


def test_rendered_rules_pass_promtool(rendered):
    files = sorted((rendered / "rules").glob("*.yml"))
    # one SLO rule file and one of the canary judge's recorded evidence per service
    assert len(files) == 6
    assert len([f for f in files if f.name.endswith("-canary-evidence.yml")]) == 3
    result = subprocess.run(
        ["promtool", "check", "rules", *map(str, files)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_rendered_dashboards_are_valid_json_with_promql(rendered):
    boards = sorted((rendered / "dashboards").glob("*.json"))
    assert len(boards) == 4  # one per service and the fleet overview
    for path in boards:
        board = json.loads(path.read_text())
        assert dashboards.all_expressions(board)


def test_exports_name_rollouts_rules_dashboards_and_images(rendered):
    outputs = json.loads((rendered / "outputs.json").read_text())
    assert set(outputs["rollouts"]) == {"orchestrator", "agent-runner", "api-gateway"}
    assert set(outputs["prometheusRules"].values()) == {
        "orchestrator-slos",
        "agent-runner-slos",
        "api-gateway-slos",
    }
    assert len(outputs["dashboardUids"]) == 4
    assert all(":" in image for image in outputs["images"].values())


def test_no_secret_reaches_a_rendered_file(rendered):
    assert leaks(rendered) == []


def test_the_secret_check_catches_a_component_that_leaks_the_token(tmp_path):
    out = tmp_path / "leaky"
    result = render(ROOT / "Pulumi.prod.yaml", out, script="tests/leaky_render.py")
    assert result.returncode == 0, result.stderr
    assert [p.name for p in leaks(out)] == ["configmap-leaked-token.yaml"]


@pytest.mark.parametrize("stack_file", [ROOT / "Pulumi.dev.yaml", ROOT / "Pulumi.prod.yaml"],
                         ids=["dev", "prod"])
def test_rendering_is_deterministic_across_processes_and_hash_seeds(stack_file, tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    assert render(stack_file, first, hash_seed="1").returncode == 0
    assert render(stack_file, second, hash_seed="4242").returncode == 0
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(second) for p in second.rglob("*") if p.is_file())
    for rel in files:
        assert (first / rel).read_bytes() == (second / rel).read_bytes(), rel


@pytest.mark.parametrize("stack_file", BROKEN, ids=lambda p: p.stem.removeprefix("Pulumi."))
def test_broken_stack_config_stops_before_any_resource(stack_file, tmp_path):
    out = tmp_path / "out"
    result = render(stack_file, out)
    expected = [
        line.removeprefix("# expect: ")
        for line in stack_file.read_bytes().decode("utf-8", "replace").splitlines()
        if line.startswith("# expect: ")
    ]
    assert result.returncode == 1
    assert result.stderr.splitlines() == expected
    assert "Traceback" not in result.stderr
    assert not out.exists()


# ---------------------------------------------------------------- components under mocks


class Mocks(pulumi.runtime.Mocks):
    def __init__(self):
        self.created = []

    def new_resource(self, args):
        self.created.append(args)
        return f"{args.name}-id", dict(args.inputs)

    def call(self, args):
        return {}, None


@pytest.fixture
def mocks():
    recorder = Mocks()
    pulumi.runtime.set_mocks(recorder, project="slo-canary", stack="test", preview=False)
    return recorder


def _urns():
    monitor = pulumi.runtime.settings.SETTINGS.monitor
    return list(monitor.resources)


def _service_slos(name):
    return by_service(SLOS)[name]


@pulumi.runtime.test
def test_canary_service_children_are_parented_and_named(mocks):
    from components.canary_service import CanaryService, CanaryServiceArgs
    from delivery.canary import bodies
    from delivery.stack import StackConfig

    stack = StackConfig(
        catalogue="catalogue/core-services.yaml",
        environment="test",
        prometheus=PrometheusConfig(address="http://prom:9090"),
        delivery=DeliveryConfig(budgetFreeze=True, trafficRouting="nginx"),
        services={"api-gateway": ServiceDeployment(image="r/api:1", host="api.example")},
    )
    svc = CanaryService(
        "api-gateway",
        CanaryServiceArgs(
            "api-gateway", "api", bodies("api-gateway", "api", _service_slos("api-gateway"), stack)
        ),
    )

    def check(_):
        names = {a.name: a for a in mocks.created}
        for child in (
            "rollout",
            "gate",
            "background",
            "freeze",
            "stable",
            "canary",
            "ingress",
            "podmonitor",
            "evidence",
        ):
            assert f"api-gateway-{child}" in names, child
        rollout = names["api-gateway-rollout"].inputs
        assert rollout["kind"] == "Rollout"
        assert rollout["spec"]["strategy"]["canary"]["trafficRouting"] == {
            "nginx": {"stableIngress": "api-gateway"}
        }
        gate = names["api-gateway-gate"].inputs
        assert gate["spec"]["metrics"][0]["provider"]["prometheus"]["address"] == "http://prom:9090"
        parented = [u for u in _urns() if "slo-canary:delivery:CanaryService$" in u]
        assert len(parented) == 10

    return svc.rollout.urn.apply(check)


@pulumi.runtime.test
def test_slo_bundle_is_a_prometheus_rule_selected_by_the_operator(mocks):
    from components.slo_bundle import SloBundle, SloBundleArgs

    bundle = SloBundle(
        "orchestrator-slos",
        SloBundleArgs(
            "orchestrator",
            "core",
            _service_slos("orchestrator"),
            {"release": "kube-prometheus-stack"},
        ),
    )

    def check(_):
        rule = next(a for a in mocks.created if a.name == "orchestrator-slos-rule").inputs
        assert rule["kind"] == "PrometheusRule"
        assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
        assert len(rule["spec"]["groups"]) == 3
        assert bundle.group_names == [
            "slo-orchestrator-availability",
            "slo-orchestrator-latency",
            "slo-orchestrator-error-rate",
        ]

    return bundle.rule.urn.apply(check)


@pulumi.runtime.test
def test_dashboards_as_sidecar_configmaps(mocks):
    from components.slo_dashboard import SloDashboard, SloDashboardArgs

    board = SloDashboard("dash", SloDashboardArgs(SLOS, GrafanaConfig()))

    def check(_):
        maps = [a for a in mocks.created if a.typ == "kubernetes:core/v1:ConfigMap"]
        assert len(maps) == 4
        for cm in maps:
            assert cm.inputs["metadata"]["labels"] == {"grafana_dashboard": "1"}
            (text,) = cm.inputs["data"].values()
            assert json.loads(text)["uid"] in board.uids

    return pulumi.Output.all(*[cm.urn for cm in board.config_maps]).apply(check)


def test_grafana_token_stays_a_secret(mocks, monkeypatch):
    import pulumiverse_grafana as grafana

    from components.slo_dashboard import SloDashboard, SloDashboardArgs

    seen = {}
    real = grafana.Provider

    def capture(name, **kwargs):
        seen.update(kwargs)
        return real(name, **kwargs)

    monkeypatch.setattr(grafana, "Provider", capture)

    @pulumi.runtime.test
    def build():
        SloDashboard(
            "dash",
            SloDashboardArgs(
                SLOS,
                GrafanaConfig(delivery="api", url="https://g", alertRules=True),
                token="s3cret",
            ),
        )
        return pulumi.Output.from_input(seen["auth"].is_secret()).apply(found.append)

    found = []
    build()
    assert found == [True]
    rule_groups = [a for a in mocks.created if a.typ == "grafana:alerting/ruleGroup:RuleGroup"]
    assert len(rule_groups) == 3


def _delivers_configmaps(path: Path) -> bool:
    config = yaml.safe_load(path.read_text())["config"]
    return (config.get("slo-canary:grafana") or {}).get("delivery", "configmap") == "configmap"


CONFIGMAP_STACKS = [p for p in STACK_FILES if p.name != "Pulumi.yaml" and _delivers_configmaps(p)]


def test_dev_and_e2e_deliver_dashboards_as_configmaps():
    assert [p.name for p in CONFIGMAP_STACKS] == ["Pulumi.dev.yaml", "Pulumi.e2e.yaml"]


@pytest.mark.parametrize(
    "stack_file", CONFIGMAP_STACKS, ids=lambda p: p.stem.removeprefix("Pulumi.")
)
def test_stacks_with_dashboard_configmaps_change_them_in_place(stack_file):
    config = yaml.safe_load(stack_file.read_text())["config"]
    # without it pulumi-kubernetes replaces a ConfigMap whose data changed: delete, then create
    assert config.get("kubernetes:enableConfigMapMutable") == "true"


def test_the_program_names_config_keys_nobody_reads_and_plain_secrets(tmp_path):
    """The engine's config, not only the stack file: a namespace typo and a plain-text token."""
    extra = {"slo-canery:delivery": {"weights": [50]}, "slo-canary:grafanaToken": "glsa_x"}
    env_backup = os.environ.get("SLO_CANARY_EXTRA_CONFIG")
    os.environ["SLO_CANARY_EXTRA_CONFIG"] = json.dumps(extra)
    try:
        result = render(ROOT / "Pulumi.dev.yaml", tmp_path / "out",
                        script="tests/engine_config_render.py")
    finally:
        if env_backup is None:
            os.environ.pop("SLO_CANARY_EXTRA_CONFIG")
        else:
            os.environ["SLO_CANARY_EXTRA_CONFIG"] = env_backup
    assert result.returncode == 1, result.stdout + result.stderr
    assert "slo-canary:grafanaToken: a secret in plain text" in result.stderr
    assert "slo-canery:delivery: 'slo-canery' is not a config namespace" in result.stderr
    assert "glsa_x" not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


NATIVE_CATALOGUE = {
    "services": [{
        "name": "rpc-api", "namespace": "rpc", "owner": "platform", "selector": 'job="rpc-api"',
        "histograms": [{"name": "rpc_duration_seconds", "buckets": [0.5, 2], "native": True}],
        "slos": [
            {"name": "latency", "objective": 95,
             "indicator": {"kind": "latency", "histogram": "rpc_duration_seconds",
                           "threshold": 2}},
            {"name": "errors", "objective": 99.9,
             "indicator": {"kind": "ratio", "total": "rpc_requests_total",
                           "bad": 'rpc_requests_total{code="error"}'}},
        ],
    }]
}


def test_a_native_histogram_catalogue_renders_through_the_whole_program(tmp_path):
    """A stack whose catalogue holds a native-histogram latency SLO (gated by default): the
    program renders it, the gate judges it with histogram_fraction, the rules pass promtool."""
    catalogue = tmp_path / "native.yaml"
    catalogue.write_text(yaml.safe_dump(NATIVE_CATALOGUE))
    stack = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())
    stack["config"]["slo-canary:catalogue"] = str(catalogue)
    stack["config"]["slo-canary:services"] = {"rpc-api": {"image": "registry.example/rpc:1.0.0"}}
    stack_file = tmp_path / "Pulumi.native.yaml"
    stack_file.write_text(yaml.safe_dump(stack))
    out = tmp_path / "out"
    result = render(stack_file, out)
    assert result.returncode == 0, result.stdout + result.stderr
    objects = [yaml.safe_load(p.read_text()) for p in (out / "kubernetes").rglob("*.yaml")]
    for body in objects:
        validate(body)
    gates = [o for o in objects if o["kind"] == "AnalysisTemplate"
             and o["metadata"]["name"].endswith("-gate")]
    assert len(gates) == 1, [o["metadata"]["name"] for o in objects]
    queries = {m["name"]: m["provider"]["prometheus"]["query"] for m in gates[0]["spec"]["metrics"]}
    assert set(queries) == {"latency", "errors"}
    assert 'slo="latency"' in queries["latency"]
    evidence = [o for o in objects if o["kind"] == "PrometheusRule"
                and o["metadata"]["name"] == "rpc-api-canary-evidence"]
    assert len(evidence) == 1
    recorded = yaml.safe_dump(evidence[0]["spec"])
    assert "histogram_fraction(0, 2, " in recorded and "rpc_duration_seconds{" in recorded
    rules = sorted((out / "rules").glob("*.yml"))
    assert rules
    check = subprocess.run(["promtool", "check", "rules", *map(str, rules)],
                           capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stdout + check.stderr


def test_stacks_that_promote_from_each_other_are_one_line_not_a_hang(tmp_path):
    config = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())
    for name, upstream in (("alpha", "beta"), ("beta", "alpha")):
        stack = {"config": {**config["config"],
                            "slo-canary:promotion": {"fromStack": f"acme/slo-canary/{upstream}"}}}
        (tmp_path / f"Pulumi.{name}.yaml").write_text(yaml.safe_dump(stack))
    out = tmp_path / "out" / "alpha"
    result = render(tmp_path / "Pulumi.alpha.yaml", out)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "Pulumi.beta.yaml: slo-canary:promotion.fromStack: acme/slo-canary/alpha: the stacks "
        "promote from each other (alpha -> beta -> alpha); promote from a stack that does not "
        "promote from this one"
    ]
    assert not (tmp_path / "out").exists()


def test_the_upstream_stacks_render_leaves_nothing_beside_the_output(tmp_path):
    out = tmp_path / "out" / "prod"
    result = render(ROOT / "Pulumi.prod.yaml", out)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["prod"]


def test_a_gatewayapi_stack_renders_routes_on_its_gateway_and_the_controllers_plugin(tmp_path):
    """The whole program with trafficRouting: gatewayapi: one route per service (a GRPCRoute
    for a gRPC service) fitting the Gateway API CRDs, the Rollouts pointing the plugin at them,
    no Ingress, and the chart told to load the pinned plugin."""
    stack = yaml.safe_load((ROOT / "Pulumi.prod.yaml").read_text())
    config = stack["config"]
    config["slo-canary:delivery"].update(
        trafficRouting="gatewayapi", gateway={"name": "public", "namespace": "gateways"})
    config["slo-canary:argoRollouts"]["gatewayApiPlugin"] = {"sha256": "cd" * 32}
    config["slo-canary:services"]["agent-runner"]["grpc"] = True
    (tmp_path / "catalogue").symlink_to(ROOT / "catalogue")
    stack_file = tmp_path / "Pulumi.gateway.yaml"
    stack_file.write_text(yaml.safe_dump(stack))
    out = tmp_path / "out"
    result = render(stack_file, out)
    assert result.returncode == 0, result.stderr
    objects = [yaml.safe_load(p.read_text()) for p in (out / "kubernetes").rglob("*.yaml")]
    routes = {o["metadata"]["name"]: o["kind"] for o in objects
              if o["apiVersion"] == "gateway.networking.k8s.io/v1"}
    assert routes == {"orchestrator": "HTTPRoute", "agent-runner": "GRPCRoute",
                      "api-gateway": "HTTPRoute"}
    assert not [o for o in objects if o["kind"] in ("Ingress", "IngressRoute")]
    for body in objects:
        validate(body)
        if body["kind"] == "Rollout":
            plugin = body["spec"]["strategy"]["canary"]["trafficRouting"]["plugins"][
                "argoproj-labs/gatewayAPI"]
            assert plugin["namespace"] == body["metadata"]["namespace"]
            assert routes[next(v for k, v in plugin.items() if k.endswith("Route"))]
    release = yaml.safe_load(next((out / "other").glob("*Release*")).read_text())
    (entry,) = release["inputs"]["values"]["controller"]["trafficRouterPlugins"]
    assert entry["name"] == "argoproj-labs/gatewayAPI" and entry["sha256"] == "cd" * 32
