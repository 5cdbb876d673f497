"""Fleet SLOs (``scope: fleet``) and rule placement, without Thanos: what each place gets, what
the stack refuses, what the program and the CLI deliver. The rules themselves are evaluated on a
real Thanos by ``make fleet`` (e2e/fleet)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from slo import conventions as names
from slo.bodies import service_rules
from slo.fleet import cluster_group, fleet_groups, fleet_rule_file, local_group, split
from slo.loader import load_catalogue
from slo.model import resolve_all
from slo.rules import rule_group
from tests.schemas import validate
from tests.test_program import render

ROOT = Path(__file__).resolve().parent.parent
FLEET_CATALOGUE = ROOT / "e2e" / "fleet" / "catalogue.yaml"
CORE = ROOT / "catalogue" / "core-services.yaml"


def _slos(path: Path = FLEET_CATALOGUE):
    return resolve_all(load_catalogue(path))


def _fleet_core_catalogue(tmp_path: Path) -> Path:
    """The core catalogue with orchestrator/availability held across clusters."""
    data = yaml.safe_load(CORE.read_text())
    data["services"][0]["slos"][0]["scope"] = "fleet"
    path = tmp_path / "fleet-core.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _rules_of(group):
    return {r.get("record") or r["alert"]: r for r in group["rules"]}


def test_cluster_scope_and_local_placement_render_todays_rules():
    for slo in _slos(CORE):
        assert not split(slo, "thanos")
        assert cluster_group(slo, "thanos") == rule_group(slo)
    for slo in _slos():
        assert cluster_group(slo, "local") == rule_group(slo)


def test_a_cluster_keeps_short_windows_events_and_its_fast_page_only():
    slo = _slos()[0]
    rules = _rules_of(local_group(slo))
    for window in ("10s", "2m", "5m", "30m"):
        assert names.total_rate(window) in rules and names.bad_rate(window) in rules
    assert names.total_rate("6h") not in rules and names.error_ratio("6h") not in rules
    assert names.ERROR_RATIO_PERIOD not in rules
    assert names.ERROR_BUDGET_REMAINING not in rules
    page = rules[names.ALERT_BURN["page"]]
    assert page["labels"][names.LABEL_SCOPE] == "cluster"
    assert "2m" in page["expr"] and "6h" not in page["expr"]
    assert names.ALERT_BURN["ticket"] not in rules
    assert names.ALERT_ABSENT in rules


def test_fleet_rules_sum_events_across_clusters_and_never_average_ratios():
    slo = _slos()[0]
    abort, warn = fleet_groups(slo)
    assert abort["partial_response_strategy"] == "abort"
    assert warn["partial_response_strategy"] == "warn"
    for rule in abort["rules"]:
        assert "avg(" not in rule["expr"] and "avg by" not in rule["expr"]
        # every ratio is a sum of bad events over a sum of all events
        assert "sum by (service, slo)" in rule["expr"]
    rules = _rules_of(abort)
    assert rules[names.fleet_error_ratio("6h")]["expr"].count("sum_over_time(") == 2
    for severity in ("page", "ticket"):
        alert = rules[names.ALERT_BURN[severity]]
        assert alert["labels"][names.LABEL_SCOPE] == "fleet"
        # alerts read the clusters' recordings only, never the Ruler's own
        assert "slo:fleet_" not in alert["expr"]
    reporting = _rules_of(warn)
    assert reporting[names.FLEET_REPORTING]["expr"].startswith("group by (cluster, service, slo)")
    absent = reporting[names.ALERT_NOT_REPORTING]
    assert absent["for"] == "10s"
    assert f"{names.FLEET_REPORTING}{{" in absent["expr"] and "[1h]" in absent["expr"]


def test_fleet_rule_files_load_in_promtool_once_thanos_fields_are_set_aside(tmp_path):
    """promtool refuses ``partial_response_strategy`` (a Thanos field; `make fleet` checks the
    files with ``thanos tools rules-check``): without it every expression must parse."""
    plain = fleet_rule_file(_slos())
    for group in plain["groups"]:
        group.pop("partial_response_strategy")
    path = tmp_path / "fleet.yml"
    path.write_text(yaml.safe_dump(plain))
    local = tmp_path / "local.yml"
    local.write_text(yaml.safe_dump({"groups": [cluster_group(s, "thanos") for s in _slos()]}))
    check = subprocess.run(["promtool", "check", "rules", str(path), str(local)],
                           capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stdout + check.stderr


def test_cluster_label_and_memory_come_from_the_catalogue(tmp_path):
    data = yaml.safe_load(FLEET_CATALOGUE.read_text())
    data["fleet"] = {"cluster_label": "region", "not_reporting_for": "2m", "remember": "3d"}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(data))
    warn = fleet_groups(_slos(path)[0])[1]
    alert = _rules_of(warn)[names.ALERT_NOT_REPORTING]
    assert alert["for"] == "2m" and "[3d]" in alert["expr"] and "by (region, " in alert["expr"]


@pytest.mark.parametrize(
    ("fleet", "message"),
    [
        ({"remember": "2m"}, "remember must be longer than not_reporting_for"),
        ({"cluster_label": "slo"}, "is a label the rules set"),
        ({"cluster_label": "a-b"}, "give text matching ^[a-zA-Z_]"),
    ],
)
def test_bad_fleet_settings_are_one_line(tmp_path, fleet, message):
    data = yaml.safe_load(FLEET_CATALOGUE.read_text())
    data["fleet"] = fleet
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(data))
    result = subprocess.run([sys.executable, "-m", "slo", "validate", str(path)], cwd=ROOT,
                            capture_output=True, text=True, check=False)
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and f"{path}: fleet" in lines[0] and message in lines[0], lines


def test_cli_writes_thanos_ruler_files_under_thanos_placement(tmp_path):
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-m", "slo", "rules", str(FLEET_CATALOGUE), "-o", str(out),
         "--placement", "thanos"],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0, result.stderr
    # one Ruler file per service; both SLOs are fleet SLOs, so no proofs
    assert "2 SLOs -> 2 rule files, 0 promtool test files, 2 PrometheusRules, 1 Thanos Ruler " \
        "files" in result.stdout, result.stdout
    fleet = yaml.safe_load((out / "fleet" / "checkout.yml").read_text())
    assert [g["name"] for g in fleet["groups"]] == [
        "slo-fleet-checkout-strict", "slo-fleet-checkout-strict-reporting",
        "slo-fleet-checkout-loose", "slo-fleet-checkout-loose-reporting",
    ]
    body = yaml.safe_load((out / "prometheusrule" / "checkout-fleet.yaml").read_text())
    assert body["metadata"]["name"] == "checkout-fleet-slos"
    assert result.stderr.count("no promtool proofs of a fleet SLO") == 2, result.stderr


def _stack(tmp_path: Path, **changes) -> Path:
    stack = yaml.safe_load((ROOT / "Pulumi.prod.yaml").read_text())
    config = stack["config"]
    config["slo-canary:catalogue"] = str(_fleet_core_catalogue(tmp_path))
    config["slo-canary:prometheus"]["rulePlacement"] = "thanos"
    config["slo-canary:thanos"] = {"rules": "prometheusrule", "namespace": "thanos",
                                   "ruleLabels": {"role": "fleet-rules"}}
    config["slo-canary:delivery"]["budgetFreeze"] = False
    for key, value in changes.items():
        config[f"slo-canary:{key}"] = value
    path = tmp_path / "Pulumi.fleet.yaml"
    path.write_text(yaml.safe_dump(stack))
    return path


def _objects(out: Path):
    return [yaml.safe_load(p.read_text()) for p in (out / "kubernetes").rglob("*.yaml")]


def test_a_thanos_stack_delivers_fleet_rules_to_the_ruler_and_keeps_canaries_local(tmp_path):
    stack_file = _stack(tmp_path)
    out = tmp_path / "out"
    result = render(stack_file, out)
    assert result.returncode == 0, result.stdout + result.stderr
    objects = _objects(out)
    for body in objects:
        validate(body)
    rules = {o["metadata"]["name"]: o for o in objects if o["kind"] == "PrometheusRule"}
    fleet = rules["orchestrator-fleet-slos"]
    assert fleet["metadata"]["namespace"] == "thanos"
    assert fleet["metadata"]["labels"]["role"] == "fleet-rules"
    strategies = {g["name"]: g["partial_response_strategy"] for g in fleet["spec"]["groups"]}
    assert strategies == {"slo-fleet-orchestrator-availability": "abort",
                          "slo-fleet-orchestrator-availability-reporting": "warn"}
    local = {g["name"]: g for g in rules["orchestrator-slos"]["spec"]["groups"]}
    assert names.ALERT_BURN["ticket"] not in _rules_of(local["slo-orchestrator-availability"])
    # the other SLOs of the service keep every rule in the cluster
    assert names.ALERT_BURN["ticket"] in _rules_of(local["slo-orchestrator-latency"])
    assert "agent-runner-fleet-slos" not in rules
    # the canary analysis keeps querying the canary's own cluster
    address = yaml.safe_load((ROOT / "Pulumi.prod.yaml").read_text())["config"][
        "slo-canary:prometheus"]["address"]
    templates = [o for o in objects if o["kind"] == "AnalysisTemplate"]
    assert templates
    for template in templates:
        for metric in template["spec"]["metrics"]:
            assert metric["provider"]["prometheus"]["address"] == address
    outputs = yaml.safe_load((out / "outputs.json").read_text())
    assert outputs["fleetRules"] == ["orchestrator-fleet-slos"]
    boards = {p.stem for p in (out / "dashboards").glob("*.json")}
    assert "slo-fleet-orchestrator-availability" in boards, boards


def test_a_thanos_stack_can_deliver_rule_files_in_a_config_map(tmp_path):
    stack_file = _stack(tmp_path, thanos={"rules": "configmap", "configMap": "ruler-rules"})
    out = tmp_path / "out"
    result = render(stack_file, out)
    assert result.returncode == 0, result.stdout + result.stderr
    maps = [o for o in _objects(out)
            if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "ruler-rules"]
    assert len(maps) == 1
    files = maps[0]["data"]
    assert list(files) == ["orchestrator.yaml"]
    groups = yaml.safe_load(files["orchestrator.yaml"])["groups"]
    assert groups == fleet_groups(
        next(s for s in _slos(_fleet_core_catalogue(tmp_path)) if s.is_fleet))


@pytest.mark.parametrize(
    ("changes", "line"),
    [
        ({"thanos": {"rules": "prometheusrule"}, "prometheus": "local"},
         "slo-canary:thanos.rules: prometheusrule needs prometheus.rulePlacement: thanos"),
        ({"delivery": "freeze"},
         "slo-canary:delivery.budgetFreeze: the budget of the fleet SLOs "
         "orchestrator/availability is kept by the Thanos Ruler"),
    ],
)
def test_a_stack_that_cannot_place_fleet_rules_is_one_line(tmp_path, changes, line):
    stack_file = _stack(tmp_path)
    stack = yaml.safe_load(stack_file.read_text())
    config = stack["config"]
    if changes.get("prometheus") == "local":
        config["slo-canary:prometheus"]["rulePlacement"] = "local"
    if "thanos" in changes:
        config["slo-canary:thanos"] = changes["thanos"]
    if changes.get("delivery") == "freeze":
        config["slo-canary:delivery"]["budgetFreeze"] = True
    stack_file.write_text(yaml.safe_dump(stack))
    out = tmp_path / "out"
    result = render(stack_file, out)
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and line in lines[0], lines
    assert "Traceback" not in result.stderr and not out.exists()


def test_thanos_placement_without_a_fleet_slo_is_refused(tmp_path):
    stack_file = _stack(tmp_path)
    stack = yaml.safe_load(stack_file.read_text())
    stack["config"]["slo-canary:catalogue"] = str(CORE)
    stack_file.write_text(yaml.safe_dump(stack))
    result = render(stack_file, tmp_path / "out")
    assert result.returncode == 1
    assert "no SLO of" in result.stderr and "has scope: fleet; use local" in result.stderr


def test_one_composer_gives_the_cluster_and_the_ruler_their_share(tmp_path):
    """slo.bodies.service_rules: what `slo rules` writes and the components apply."""
    slos = [s for s in _slos(_fleet_core_catalogue(tmp_path))
            if s.service.name == "orchestrator"]
    split_rules = service_rules(slos, "thanos")
    assert [s.slo.name for s in split_rules.fleet] == ["availability"]
    assert [g for _, g in split_rules.cluster] == [cluster_group(s, "thanos") for s in slos]
    ruler = split_rules.fleet_prometheus_rule("thanos", {"role": "fleet-rules"})
    assert ruler["metadata"]["name"] == "orchestrator-fleet-slos"
    assert ruler["spec"]["groups"] == fleet_groups(split_rules.fleet[0])
    assert split_rules.fleet_rule_file() == {"groups": ruler["spec"]["groups"]}
    local = service_rules(slos, "local")
    assert local.fleet == () and not local.is_split(slos[0])
    assert [g for _, g in local.cluster] == [cluster_group(s, "local") for s in slos]
