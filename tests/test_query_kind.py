"""The catalogue's `query` kind: PromQL of the operator's own with a `{{.window}}` placeholder,
its rules on a real promtool, its canary gate rewritten on the parsed tree, and its refusals."""

import shutil
import subprocess

import promql_parser
import pytest

from delivery import judge
from delivery.stack import parse_stack
from slo import conventions as names
from slo.loader import parse_catalogue
from slo.model import QueryEvents, RatioEvents, resolve_all
from slo.problems import ConfigError
from slo.proofs import proof_files
from slo.rules import rule_file
from slo.yamlout import dump
from tests.test_delivery import stack_values

PROMTOOL = shutil.which("promtool")
COUNT = 'http_request_duration_seconds_count{job="myservice"}'
BUCKET = 'http_request_duration_seconds_bucket{job="myservice",le="0.25"}'
LATENCY = {
    "kind": "query",
    "total": f"sum(rate({COUNT}[{{{{.window}}}}]))",
    "bad": f"sum(rate({COUNT}[{{{{.window}}}}])) - sum(rate({BUCKET}[{{{{.window}}}}]))",
}
PLAIN = {
    "kind": "query",
    "total": 'sum(rate(http_requests_total{job="myservice"}[{{.window}}]))',
    "bad": 'sum(rate(http_requests_total{job="myservice",code=~"(5..|429)"}[{{.window}}]))',
}
RAW = {
    "kind": "query",
    "error_ratio": "1 - avg(avg_over_time(wifi_satisfaction_ratio[{{.window}}]))",
}


def catalogue(*slos: dict) -> list:
    return resolve_all(parse_catalogue({"services": [{
        "name": "myservice", "namespace": "myservice", "owner": "team", "selector": "",
        "slos": list(slos),
    }]}, "query.yaml"))


def slo(name: str, indicator: dict, **extra) -> dict:
    return {"name": name, "objective": 99.9, "indicator": indicator, **extra}


def refused(*slos: dict) -> list[str]:
    with pytest.raises(ConfigError) as err:
        catalogue(*slos)
    return err.value.lines


def test_a_plain_sum_of_rates_is_a_ratio_sli_of_its_selectors():
    [resolved] = catalogue(slo("errors", PLAIN))
    assert isinstance(resolved.events, RatioEvents)
    assert resolved.events.total("1h") == PLAIN["total"].replace("{{.window}}", "1h")
    assert resolved.events.bad("1h") == PLAIN["bad"].replace("{{.window}}", "1h")
    assert proof_files(resolved, "r.yml")  # a ratio SLI has its generated proofs


def test_other_queries_are_used_as_written_at_every_raw_window():
    [resolved] = catalogue(slo("latency", LATENCY))
    assert isinstance(resolved.events, QueryEvents)
    exprs = {r.get("record"): r["expr"] for r in rule_file([resolved])["groups"][0]["rules"]}
    one_hour = exprs[names.error_ratio("1h")]
    assert f"rate({BUCKET}[1h])" in one_hour and f"rate({COUNT}[1h])" in one_hour
    assert "{{.window}}" not in dump(rule_file([resolved]))


def test_the_gate_adds_the_canary_hash_to_every_selector_of_the_parsed_query():
    [resolved] = catalogue(slo("latency", LATENCY))
    cfg = parse_stack(stack_values("dev"), "Pulumi.dev.yaml")
    [gate] = judge.gates([resolved], cfg.delivery)
    query = judge.query(gate, "1h", "30s")
    tree = promql_parser.parse(query.replace("{{args.canary-hash}}", "c")
                               .replace("{{args.stable-hash}}", "s"))
    selectors: list = []
    promql_parser.walk(tree, pre_visit=lambda n: selectors.append(n)
                       if isinstance(n, promql_parser.VectorSelector) else None)
    assert len(selectors) > 6
    for vs in selectors:
        hashes = [m.value for m in vs.matchers.matchers if m.name == names.HASH_LABEL]
        assert hashes in (["c"], ["s"]), str(vs)
        assert any(m.name == "job" for m in vs.matchers.matchers), str(vs)


@pytest.mark.parametrize(("bad", "reason"), [
    (f"sum(rate({COUNT}[{{{{.window}}}}] offset 5m))", "offset or @"),
    (f"max_over_time(sum(rate({COUNT}[5m]))[{{{{.window}}}}:1m])", "subquery"),
    (f"sum by (code) (rate({COUNT}[{{{{.window}}}}]))", "by/without"),
    (f"sum(increase({COUNT}[{{{{.window}}}}]))", "increase() of a range"),
    ('sum(rate(x{rollouts_pod_template_hash="abc"}[{{.window}}]))', "already sets"),
    ('sum(rate(x{rollouts_pod_template_hash="abc"}[{{.window}}])) * 1', "already sets"),
])
def test_a_query_the_judge_cannot_restrict_to_the_canary_is_refused_as_a_gate(bad, reason):
    indicator = {**LATENCY, "bad": bad}
    [line] = refused(slo("latency", indicator))
    assert line.startswith("query.yaml: services[0].slos[0].canary_gate: ")
    assert reason in line and "set canary_gate: false" in line
    # the same SLO without a gate is a valid catalogue
    assert catalogue(slo("latency", indicator, canary_gate=False))


def test_a_raw_error_ratio_needs_no_gate_and_has_no_traffic_guard():
    [line] = refused(slo("wifi", RAW))
    assert "a raw error_ratio has no event counts" in line
    [resolved] = catalogue(slo("wifi", RAW, canary_gate=False))
    assert not resolved.events.counts_traffic
    total = resolved.events.total("5m")
    assert total.startswith("(sum(1 - avg(avg_over_time(") and total.endswith(") * 0 + 1)")


@pytest.mark.parametrize(("indicator", "says"), [
    ({"kind": "query", "total": "sum(rate(x[5m]))", "bad": "sum(rate(y[{{.window}}]))"},
     "has no {{.window}}"),
    ({"kind": "query", "total": "sum(rate(x[{{.window}}])", "bad": "sum(rate(y[{{.window}}]))"},
     "is not valid PromQL"),
    ({"kind": "query", "total": "sum(rate(x[{{.window}}]))"},
     "give total with exactly one of bad or good"),
    ({**RAW, "total": "sum(rate(x[{{.window}}]))"}, "give error_ratio alone"),
])
def test_bad_queries_get_one_line(indicator, says):
    [line] = refused(slo("xy", indicator, canary_gate=False))
    assert line.startswith("query.yaml: services[0].slos[0].indicator.query")
    assert says in line


@pytest.mark.skipif(PROMTOOL is None, reason="make test builds promtool")
def test_query_rules_record_what_prometheus_computes(tmp_path):
    """promtool evaluates the recorded 5m error ratio of the latency query on hand-written
    series: 600 requests a minute, 60 of them slower than 0.25 s, so 10% are bad."""
    [resolved] = catalogue(slo("latency", LATENCY))
    (tmp_path / "rules.yml").write_text(dump(rule_file([resolved])))
    labels = 'job="myservice"'
    test = {
        "rule_files": ["rules.yml"],
        "evaluation_interval": "1m",
        "tests": [{
            "interval": "1m",
            "input_series": [
                {"series": f"http_request_duration_seconds_count{{{labels}}}",
                 "values": "0+600x30"},
                {"series": f'http_request_duration_seconds_bucket{{{labels},le="0.25"}}',
                 "values": "0+540x30"},
            ],
            "promql_expr_test": [{
                "eval_time": "20m",
                "expr": resolved.selector_of(names.error_ratio("5m")),
                "exp_samples": [{
                    "labels": f'{names.error_ratio("5m")}'
                              '{service="myservice",slo="latency"}',
                    "value": 0.1,
                }],
            }],
        }],
    }
    (tmp_path / "test.yml").write_text(dump(test))
    result = subprocess.run([PROMTOOL, "test", "rules", "test.yml"], cwd=tmp_path,
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.skipif(PROMTOOL is None, reason="make test builds promtool")
def test_raw_long_windows_read_the_counters_and_are_proven_by_promtool(tmp_path):
    [resolved] = catalogue(slo("errors", PLAIN, alerting={"long_windows": "raw"}))
    exprs = {r.get("record"): r["expr"] for r in rule_file([resolved])["groups"][0]["rules"]}
    assert "rate(http_requests_total{" in exprs[names.error_ratio("3d")]
    assert "[3d]" in exprs[names.error_ratio("3d")] and "avg_over_time" not in exprs[
        names.error_ratio("3d")]
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "r.yml").write_text(dump(rule_file([resolved])))
    files = []
    for step, doc in proof_files(resolved, "rules/r.yml").items():
        files.append(f"proof.{step}m.test.yml")
        (tmp_path / files[-1]).write_text(dump(doc))
    result = subprocess.run([PROMTOOL, "test", "rules", *files], cwd=tmp_path,
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


@pytest.mark.skipif(PROMTOOL is None, reason="make test builds promtool")
def test_one_alert_name_for_both_severities_is_proven_by_promtool(tmp_path):
    """Sloth names page and ticket alike; the proofs expect both under that name."""
    alerting = {"name": "MyServiceHighErrorRate", "page_labels": {"severity": "pageteam"},
                "ticket_labels": {"severity": "slack"},
                "annotations": {"summary": "High error rate"}}
    [resolved] = catalogue(slo("errors", PLAIN, alerting=alerting, labels={"tier": "2"}))
    rules = rule_file([resolved])["groups"][0]["rules"]
    burn = [r for r in rules if r.get("alert") == "MyServiceHighErrorRate"]
    assert [r["labels"]["severity"] for r in burn] == ["pageteam", "slack"]
    assert all(r["labels"]["tier"] == "2" and r["annotations"]["summary"] == "High error rate"
               for r in burn)
    assert all(r["labels"].get("tier") == "2" for r in rules if "record" in r)
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "r.yml").write_text(dump(rule_file([resolved])))
    files = []
    for step, doc in proof_files(resolved, "rules/r.yml").items():
        path = tmp_path / f"proof.{step}m.test.yml"
        path.write_text(dump(doc))
        files.append(path.name)
    docs = "".join((tmp_path / f).read_text() for f in files)
    assert "alertname: MyServiceHighErrorRate" in docs and "SLOBurnRate" not in docs
    result = subprocess.run([PROMTOOL, "test", "rules", *files], cwd=tmp_path,
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


@pytest.mark.parametrize(("extra", "field"), [
    ({"labels": {"slo": "x"}}, "labels"),
    ({"alerting": {"page_labels": {"service": "x"}}}, "page_labels"),
    ({"alerting": {"labels": {"slo": "x"}}}, "labels"),
])
def test_labels_that_would_replace_service_or_slo_are_refused(extra, field):
    [line] = refused(slo("errors", PLAIN, **extra))
    assert f"{field} must not set " in line and "set from the service and SLO names" in line
