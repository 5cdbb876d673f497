"""Rule generation: golden files, conventions every rule must follow, and burn-rate arithmetic."""

from pathlib import Path

import promql_parser
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from slo import conventions as names
from slo.loader import load_catalogue, parse_catalogue
from slo.model import NativeLatencyEvents, le_matcher, minutes_to_fire, resolve_all
from slo.rules import prometheus_rule, rule_file
from tests.golden.regen import render

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = sorted((ROOT / "tests" / "golden").glob("in-*.yaml"))
CATALOGUES = [ROOT / "catalogue" / "core-services.yaml", *GOLDEN]


@pytest.mark.parametrize("source", GOLDEN, ids=lambda p: p.stem)
def test_rules_match_the_golden_file(source):
    golden = source.with_name("out-" + source.name.removeprefix("in-"))
    assert yaml.safe_load(render(source)) == yaml.safe_load(golden.read_text()), (
        "rules changed: review, then run python tests/golden/regen.py"
    )


def all_rules(path):
    return [
        (group["name"], rule)
        for group in rule_file(resolve_all(load_catalogue(path)))["groups"]
        for rule in group["rules"]
    ]


@pytest.mark.parametrize("source", CATALOGUES, ids=lambda p: p.stem)
def test_every_series_and_alert_carries_service_and_slo(source):
    for _, rule in all_rules(source):
        assert {names.LABEL_SERVICE, names.LABEL_SLO} <= set(rule["labels"]), rule


@pytest.mark.parametrize("source", CATALOGUES, ids=lambda p: p.stem)
def test_burn_alerts_carry_a_severity_and_annotations(source):
    alerts = [r for _, r in all_rules(source) if "alert" in r]
    assert alerts
    for rule in alerts:
        assert rule["labels"][names.LABEL_SEVERITY] in ("page", "ticket")
        assert {"summary", "description"} <= set(rule["annotations"])
        if rule["alert"] in names.ALERT_BURN.values():
            assert rule["labels"][names.LABEL_SEVERITY] == next(
                s for s, a in names.ALERT_BURN.items() if a == rule["alert"]
            )


@pytest.mark.parametrize("source", CATALOGUES, ids=lambda p: p.stem)
def test_every_expression_is_valid_promql(source):
    for _, rule in all_rules(source):
        promql_parser.parse(rule["expr"])


@pytest.mark.parametrize("source", CATALOGUES, ids=lambda p: p.stem)
def test_every_division_is_by_a_denominator_filtered_above_zero(source):
    for _, rule in all_rules(source):
        if rule.get("record", "").startswith("slo:sli_error:"):
            assert rule["expr"].rstrip().endswith("> 0)"), rule["expr"]


def test_an_slo_is_one_group_in_dependency_order():
    groups = rule_file(resolve_all(load_catalogue(CATALOGUES[0])))["groups"]
    assert len(groups) == 9
    for group in groups:
        produced: set[str] = set()
        for rule in group["rules"]:
            used = {name for name in _recorded_names(rule["expr"]) if name.startswith("slo:")}
            assert used <= produced, f"{group['name']}: {rule} reads a later recording"
            if "record" in rule:
                produced.add(rule["record"])


def _recorded_names(expr):
    return {token.split("{")[0] for token in expr.replace("(", " ").split() if ":" in token}


def test_core_services_start_conservative():
    catalogue = load_catalogue(CATALOGUES[0])
    for service in catalogue.services:
        objectives = {slo.name: slo.objective for slo in service.slos}
        assert objectives == {"availability": 99.5, "latency": 95, "error-rate": 99.9}
        latency = next(s for s in service.slos if s.name == "latency").indicator
        assert latency.threshold == 2


@pytest.mark.parametrize(
    "window, factors",
    [("30d", [14.4, 6, 3, 1]), ("28d", [13.44, 5.6, 2.8, 0.933333333])],
    ids=["30 days gives the Workbook's factors", "28 days scales them down"],
)
def test_burn_rate_factors_scale_with_the_period(window, factors):
    catalogue = _one_slo(objective=99.9, window=window)
    slo = resolve_all(catalogue)[0]
    assert [t.factor for t in slo.tiers] == pytest.approx(factors)
    assert [t.threshold for t in slo.tiers] == pytest.approx([f * 0.001 for f in factors])


def test_a_full_outage_reaches_the_1h_page_in_52_seconds_at_99_9():
    tier = resolve_all(_one_slo(objective=99.9, window="30d"))[0].tiers[0]
    assert minutes_to_fire(tier, 1.0) * 60 == pytest.approx(51.84)


@given(
    objective=st.floats(min_value=99.0, max_value=99.999),
    days=st.integers(min_value=3, max_value=90),
)
def test_tiers_spend_the_tabled_share_of_budget(objective, days):
    slo = resolve_all(_one_slo(objective=round(objective, 3), window=f"{days}d"))[0]
    shares = {"1h": 0.02, "6h": 0.05, "1d": 0.1, "3d": 0.1}
    for tier in slo.tiers:
        spent = tier.factor * tier.long_seconds / slo.period_seconds
        assert spent == pytest.approx(shares[tier.long_window], rel=1e-6)
        assert tier.short_seconds * 12 == tier.long_seconds
    windows = slo.windows()
    assert windows[0] == "5m" and len(set(windows)) == len(windows)


@pytest.mark.parametrize("printed", ["2", "2.0", "2.00"])
def test_latency_bucket_matches_however_the_client_prints_le(printed):
    import re

    matcher = le_matcher(2.0)
    assert matcher.op == "=~" and re.fullmatch(matcher.value, printed)


def test_prometheus_rule_wraps_the_same_groups():
    slos = resolve_all(load_catalogue(CATALOGUES[0]))[:3]
    body = prometheus_rule("orchestrator", "core", slos, {"release": "kube-prometheus-stack"})
    assert body["apiVersion"] == "monitoring.coreos.com/v1"
    assert body["kind"] == "PrometheusRule"
    assert body["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert body["spec"] == rule_file(slos)


ERRORS = {"kind": "ratio", "total": "req_total", "bad": 'req_total{code=~"5.."}'}


def _api(slos: list[dict]) -> dict:
    """A one-service catalogue holding ``slos``."""
    return {
        "services": [
            {"name": "api", "namespace": "api", "owner": "t", "selector": 'job="api"', "slos": slos}
        ]
    }


def _one_slo(objective, window):
    slo = {"name": "errors", "objective": objective, "window": window, "indicator": ERRORS}
    return parse_catalogue(_api([slo]), "inline")


# Characters that decide how YAML must quote a string, mixed with any text.
tricky_text = st.text(
    alphabet=st.sampled_from(
        list(" \n\t\r:#-?'\"|>{}[],!&*%@`.~=<01eynE\\\x00\x85\u2028\ufeffé😀")
    ),
    max_size=30,
)
scalars = st.one_of(
    st.text(max_size=30), tricky_text, st.integers(), st.booleans(), st.none(),
    st.floats(allow_nan=False), st.sampled_from(["30", "true", "null", "1e5", "- a", "x: y", "~"]),
)
documents = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(max_size=10) | tricky_text, inner, max_size=4),
    max_leaves=20,
)


@given(documents)
def test_yaml_writer_reads_back_to_the_same_document(doc):
    from slo.yamlout import dump

    text = dump(doc)
    assert yaml.load(text, Loader=yaml.SafeLoader) == doc
    assert yaml.load(text, Loader=yaml.CSafeLoader) == doc


def test_yaml_writer_style():
    from slo.yamlout import dump

    expr = 'sum(rate(http_requests_total{code=~"5..",job="api"}[5m])) / ' * 3 + "1"
    doc = {"b": [{"expr": expr, "for": "5m"}], "a": {"x": "true", "y": "a: b", "z": "l1\nl2\n"}}
    text = dump(doc)
    assert text == (
        "a:\n"
        "  x: 'true'\n"
        "  y: 'a: b'\n"
        "  z: |\n"
        "    l1\n"
        "    l2\n"
        "b:\n"
        f"- expr: {expr}\n"  # long expressions stay on one line, unquoted
        "  for: 5m\n"
    )


# What a proof scenario's name promises, and what its checks must then expect.
PROMISES = {
    r"(?<!never )\bpages\b": names.ALERT_BURN["page"],
    r"\bopens a ticket\b": names.ALERT_BURN["ticket"],
    r"\braise SLOMetricsAbsent\b": names.ALERT_ABSENT,
}
QUIET = r"\braises nothing\b|\bno alert\b"


def _proof_groups():
    from slo.proofs import proof_files

    for slo in (s for path in CATALOGUES for s in resolve_all(load_catalogue(path))):
        if isinstance(slo.events, NativeLatencyEvents):
            continue
        for doc in proof_files(slo, "rules.yml").values():
            yield from doc["tests"]


@pytest.mark.parametrize("group", list(_proof_groups()), ids=lambda g: g["name"])
def test_every_proof_asserts_what_its_name_promises(group):
    import re

    firing = {t["alertname"] for t in group.get("alert_rule_test", []) if t["exp_alerts"]}
    for pattern, alert in PROMISES.items():
        if re.search(pattern, group["name"]):
            assert alert in firing, f"named for {alert}, but no check expects it: {firing}"
    if re.search(QUIET, group["name"]):
        assert not firing, firing
    assert group.get("alert_rule_test") or group.get("promql_expr_test"), "checks nothing"


def test_an_slo_alerting_override_keeps_the_defaults_it_does_not_set():
    overrides = {
        "guarded": {"min_events": 100, "labels": {"tier": "1"}},
        "cleared": {"runbook_url": "", "labels": {"team": ""}},
    }
    catalogue = {
        "defaults": {
            "alerting": {"runbook_url": "https://runbooks/slo", "labels": {"team": "core"}}
        },
        **_api(
            [
                {"name": name, "objective": 99.9, "indicator": ERRORS, "alerting": alerting}
                for name, alerting in overrides.items()
            ]
        ),
    }
    guarded, cleared = resolve_all(parse_catalogue(catalogue, "c.yaml"))
    assert guarded.alerting.min_events == 100
    assert guarded.alerting.runbook_url == "https://runbooks/slo"
    assert guarded.alerting.labels == {"team": "core", "tier": "1"}
    page = next(
        r
        for g in rule_file([guarded])["groups"]
        for r in g["rules"]
        if r.get("alert") == names.ALERT_BURN["page"]
    )
    assert page["labels"]["team"] == "core" and page["labels"]["tier"] == "1"
    assert page["annotations"]["runbook_url"] == "https://runbooks/slo"
    assert cleared.alerting.runbook_url == "" and cleared.alerting.labels == {}
    assert cleared.alerting.min_events == 0
