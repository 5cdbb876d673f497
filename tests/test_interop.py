"""`python -m slo import` and `export --openslo`: Sloth's own examples (from its Go module,
fetched at test time), OpenSLO v1 fixtures written from the specification, bad inputs, and
import(export(catalogue)) == catalogue for every catalogue in the repository."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from slo.interop import to_catalogue
from slo.interop.read import read_files
from slo.loader import load_catalogue, parse_catalogue
from slo.model import resolve_all
from slo.rules import rule_file
from slo.yamlout import dump, load_all

ROOT = Path(__file__).resolve().parent.parent
PROMTOOL = shutil.which("promtool")
OPENSLO = ROOT / "tests" / "openslo"
CATALOGUES = [
    ROOT / "catalogue" / "core-services.yaml",
    *sorted((ROOT / "tests" / "golden").glob("in-*.yaml")),
]

# Every example of Sloth v0.16.0: imported (with its SLO count), or refused with these reasons.
IMPORTS = {
    "getting-started.yml": 1, "k8s-getting-started.yml": 1, "home-wifi.yml": 2,
    "k8s-home-wifi.yml": 2, "k8s-multifile.yml": 2, "kubernetes-apiserver.yml": 2,
    "multifile.yml": 2, "no-alerts.yml": 1, "raw-home-wifi.yml": 1,
    "openslo-getting-started.yml": 1, "openslo-kubernetes-apiserver.yml": 3,
}
REFUSALS = {
    "contrib-denominator-corrected.yaml": {"SLO plugin": 1},
    "contrib-slo-plugins.yml": {"SLO plugin": 2},
    "plugin-getting-started.yml": {"SLI plugin": 1},
    "plugin-k8s-getting-started.yml": {"SLI plugin": 1},
    "slo-plugin-getting-started.yml": {"SLO plugin": 7},
    "slo-plugin-k8s-getting-started.yml": {"SLO plugin": 7},
    "victoria-metrics.yml": {"SLO plugin": 4, "is not valid PromQL": 4, "alerting.name": 2},
}


def run_slo(*args: str | Path, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "slo", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, check=False, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_the_table_names_every_example_of_the_module(sloth_examples):
    files = {p.name for p in sloth_examples.glob("*.y*ml")}
    assert files == set(IMPORTS) | set(REFUSALS)


@pytest.mark.parametrize("name", sorted(IMPORTS))
def test_a_sloth_example_imports_validates_and_renders(name, sloth_examples, tmp_path):
    out = tmp_path / "catalogue.yaml"
    result = run_slo("import", sloth_examples / name, "-o", out)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    slos = resolve_all(load_catalogue(out))
    assert len(slos) == IMPORTS[name]
    rendered = run_slo("rules", out, "-o", tmp_path / "rules")
    assert rendered.returncode == 0, rendered.stderr
    assert PROMTOOL, "make test builds promtool"
    files = sorted((tmp_path / "rules" / "rules").glob("*.yml"))
    check = subprocess.run([PROMTOOL, "check", "rules", *map(str, files)],
                           capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    proofs = sorted(p.name for p in (tmp_path / "rules" / "tests").glob("*.yml"))
    if proofs:  # SLOs of plain sums of rates are ratio SLIs, with generated proofs
        proven = subprocess.run([PROMTOOL, "test", "rules", *proofs],
                                cwd=tmp_path / "rules" / "tests", capture_output=True,
                                text=True, check=False)
        assert proven.returncode == 0, proven.stdout[-3000:] + proven.stderr[-3000:]


@pytest.mark.parametrize("name", sorted(REFUSALS))
def test_a_sloth_example_with_what_does_not_map_is_refused_line_by_line(
    name, sloth_examples, tmp_path
):
    out = tmp_path / "catalogue.yaml"
    result = run_slo("import", sloth_examples / name, "-o", out)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert not out.exists()
    *lines, summary = result.stderr.splitlines()
    assert "nothing written" in summary
    assert all(line.startswith(str(sloth_examples / name)) for line in lines), lines
    found = {reason: sum(reason in line for line in lines) for reason in REFUSALS[name]}
    assert found == REFUSALS[name], lines
    assert len(lines) == sum(REFUSALS[name].values())


def test_partial_writes_what_maps(sloth_examples, tmp_path):
    out = tmp_path / "catalogue.yaml"
    result = run_slo("import", "--partial", sloth_examples / "contrib-slo-plugins.yml",
                     "-o", out)
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("warning: ") == 2
    assert len(resolve_all(load_catalogue(out))) == 2


def test_an_imported_sloth_slo_keeps_its_alerting_and_says_where_it_came_from(
    sloth_examples, tmp_path
):
    out = tmp_path / "catalogue.yaml"
    assert run_slo("import", sloth_examples / "getting-started.yml", "-o", out).returncode == 0
    text = out.read_text()
    assert "# from " in text and "getting-started.yml: slos[0]" in text
    [slo] = resolve_all(load_catalogue(out))
    rules = rule_file([slo])["groups"][0]["rules"]
    page, ticket = [r for r in rules if r.get("alert") == "MyServiceHighErrorRate"]
    assert page["labels"]["severity"] == "pageteam" and page["labels"]["routing_key"] == "myteam"
    assert ticket["labels"]["slack_channel"] == "#alerts-myteam"
    assert page["annotations"]["summary"] == "High error rate on 'myservice' requests responses"
    assert page["labels"]["owner"] == "myteam" and page["labels"]["tier"] == "2"


def test_alert_windows_set_the_period_and_tiers(sloth_examples, tmp_path):
    out = tmp_path / "catalogue.yaml"
    result = run_slo("import", sloth_examples / "windows" / "7d.yaml",
                     sloth_examples / "getting-started.yml", "-o", out)
    assert result.returncode == 0, result.stderr
    [slo] = resolve_all(load_catalogue(out))
    assert slo.period == "7d"
    assert [(t.long_window, t.factor) for t in slo.tiers] == [
        ("1h", 13.44), ("6h", 3.5), ("1d", 1.4), ("3d", 0.98)]


def test_openslo_v1_fixture_imports_to_the_expected_catalogue():
    result = read_files([OPENSLO / "checkout.yaml"])
    assert result.refused == []
    data = to_catalogue(result)
    [service] = data["services"]
    assert (service["name"], service["namespace"], service["owner"]) == (
        "checkout", "checkout", "unknown")
    availability, latency = resolve_all(parse_catalogue(data, "imported"))
    assert availability.slo.name == "checkout-availability"
    assert (availability.objective, availability.period) == (0.999, "28d")
    assert availability.slo.labels == {"tier": "1"}
    assert availability.slo.indicator.kind == "ratio"
    assert availability.events.total_selector.render() == 'http_requests_total{job="checkout"}'
    assert [(t.severity, t.long_window, t.short_window, t.factor) for t in availability.tiers] \
        == [("page", "1h", "5m", 13.44), ("page", "6h", "30m", 5.6),
            ("ticket", "1d", "2h", 2.8)]
    assert latency.slo.indicator.kind == "query" and latency.objective == 0.99
    assert latency.events.window_queries() == {
        "total": 'sum(rate(http_request_duration_seconds_count{job="checkout"}[{{.window}}]))',
        "good": 'sum(rate(http_request_duration_seconds_bucket{job="checkout",le="0.5"}'
                '[{{.window}}]))',
    }


@pytest.mark.parametrize("path", sorted((OPENSLO / "broken").glob("*.yaml")), ids=lambda p: p.stem)
def test_bad_openslo_gets_one_line_each_and_nothing_written(path, tmp_path):
    expected = [line.removeprefix("# expect: ") for line in path.read_text().splitlines()
                if line.startswith("# expect: ")]
    out = tmp_path / "catalogue.yaml"
    result = run_slo("import", path, "-o", out)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert not out.exists()
    lines = result.stderr.splitlines()[:-1]
    assert [line.split(": ", 1)[1] for line in lines][: len(expected)] == expected
    assert all(line.startswith(str(path)) for line in lines)


SLO_USING_SLI = """apiVersion: openslo/v1
kind: SLO
metadata: {name: a-slo}
spec:
  service: svc
  indicatorRef: errors
  budgetingMethod: Occurrences
  timeWindow: [{duration: 28d, isRolling: true}]
  objectives: [{target: 0.99}]
"""


def _sli(source_type: str, job: str = "svc") -> str:
    query = {"bad": f'http_requests_total{{job="{job}",code=~"5.."}}',
             "total": f'http_requests_total{{job="{job}"}}'}
    parts = "".join(
        f"    {part}:\n      metricSource:\n        type: {source_type}\n"
        f"        spec: {{query: '{q}'}}\n" for part, q in query.items())
    return ("apiVersion: openslo/v1\nkind: SLI\nmetadata: {name: errors}\nspec:\n"
            f"  ratioMetric:\n    counter: true\n{parts}")


def test_a_problem_in_a_referenced_sli_is_reported_against_its_own_file(tmp_path):
    slo_file, sli_file = tmp_path / "slo.yaml", tmp_path / "sli.yaml"
    slo_file.write_text(SLO_USING_SLI)
    sli_file.write_text(_sli("Datadog"))
    out = tmp_path / "catalogue.yaml"
    result = run_slo("import", slo_file, sli_file, "-o", out)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert not out.exists()
    lines = result.stderr.splitlines()[:-1]
    assert lines == [
        f"{sli_file}: SLI 'errors' (the indicatorRef of SLO 'a-slo' in {slo_file})"
        f".spec.ratioMetric.{part}.metricSource.type: 'Datadog': only Prometheus data sources "
        "map to PromQL" for part in ("total", "bad")], result.stderr


def test_two_files_defining_one_sli_differently_are_refused(tmp_path):
    slo_file, first, second = (tmp_path / f"{n}.yaml" for n in ("slo", "first", "second"))
    slo_file.write_text(SLO_USING_SLI)
    first.write_text(_sli("Prometheus", "svc"))
    second.write_text(_sli("Prometheus", "other"))
    out = tmp_path / "catalogue.yaml"
    result = run_slo("import", slo_file, first, second, "-o", out)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert not out.exists()
    lines = result.stderr.splitlines()[:-1]
    assert lines == [
        f"{second}: metadata.name: a second SLI named 'errors', different from the one in "
        f"{first}; a name means one SLI across the imported files",
        f"{slo_file}: SLO 'a-slo': spec.indicatorRef: SLI 'errors' is defined differently in "
        f"{first} and {second}"], result.stderr
    # the same document twice is one SLI, not a conflict
    second.write_text(_sli("Prometheus", "svc"))
    result = run_slo("import", slo_file, first, second, "-o", out)
    assert result.returncode == 0, result.stderr


def _same(original, imported) -> None:
    """What a catalogue says, compared: services, and per SLO its fields and its rules."""
    a = {s.name: s for s in original.services}
    b = {s.name: s for s in imported.services}
    assert set(a) == set(b)
    for name in a:
        for field in ("namespace", "owner", "selector", "histograms"):
            assert getattr(a[name], field) == getattr(b[name], field), (name, field)
    ra = {(s.service.name, s.slo.name): s for s in resolve_all(original)}
    rb = {(s.service.name, s.slo.name): s for s in resolve_all(imported)}
    assert set(ra) == set(rb)
    for key, slo in ra.items():
        other = rb[key]
        for field in ("description", "objective", "window", "indicator", "canary_gate",
                      "labels"):
            assert getattr(slo.slo, field) == getattr(other.slo, field), (key, field)
        assert slo.alerting.model_dump(exclude={"tiers"}) == other.alerting.model_dump(
            exclude={"tiers"}), key
        assert slo.tiers == other.tiers, key
        assert dump(rule_file([slo])) == dump(rule_file([other])), key


@pytest.mark.parametrize("path", CATALOGUES, ids=lambda p: p.stem)
def test_import_of_the_openslo_export_is_the_catalogue(path, tmp_path):
    exported = tmp_path / "openslo.yaml"
    result = run_slo("export", "--openslo", path, "-o", exported)
    assert result.returncode == 0, result.stderr
    kinds = {d["kind"] for d in load_all(exported.read_text())}
    assert {"DataSource", "Service", "SLI", "SLO", "AlertPolicy", "AlertCondition"} <= kinds
    back = tmp_path / "catalogue.yaml"
    result = run_slo("import", exported, "-o", back)
    assert result.returncode == 0, result.stderr
    _same(load_catalogue(path), load_catalogue(back))


def test_an_edited_query_in_the_export_wins_over_the_annotation(tmp_path):
    exported = run_slo("export", "--openslo", CATALOGUES[0]).stdout
    lines = exported.splitlines(keepends=True)
    at = next(i for i, line in enumerate(lines)
              if line.lstrip().startswith("query: ") and 'code=~"5.."' in line)
    lines[at] = lines[at].replace('code=~"5.."', 'code=~"5..|429"')
    edited = "".join(lines)
    path = tmp_path / "edited.yaml"
    path.write_text(edited)
    result = read_files([path])
    assert result.refused == []
    changed = [s for svc in result.services.values() for s in svc.slos
               if s["indicator"]["kind"] == "query"]
    assert len(changed) == 1 and "429" in changed[0]["indicator"]["bad"]


@pytest.mark.parametrize(
    "key, value, why",
    [
        ("histograms", '[{"buckets": oops', "not JSON (Expecting value at character 13)"),
        ("histograms", '{"name": "x"}', "a JSON list is expected"),
        ("indicator", "[1]", "a JSON object is expected"),
        ("alerting", "not json", "not JSON (Expecting value at character 0)"),
    ],
    ids=["malformed JSON", "an object where a list belongs", "a list where an object belongs",
         "text where JSON belongs"],
)
def test_annotations_that_are_not_what_the_exporter_writes_are_refused_line_by_line(
    key, value, why, tmp_path
):
    exported = run_slo("export", "--openslo", CATALOGUES[0]).stdout
    lines = exported.splitlines(keepends=True)
    at = next(i for i, line in enumerate(lines)
              if line.lstrip().startswith(f"slo-canary/{key}: "))
    indent = lines[at][: len(lines[at]) - len(lines[at].lstrip())]
    lines[at] = f"{indent}slo-canary/{key}: '{value}'\n"
    path = tmp_path / "edited.yaml"
    path.write_text("".join(lines))
    out = tmp_path / "catalogue.yaml"
    result = run_slo("import", path, "-o", out)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    refused = [line for line in result.stderr.splitlines() if f"slo-canary/{key}" in line]
    assert refused and all(line.endswith(f"{why}, as `slo export --openslo` writes it")
                           for line in refused)
    assert not out.exists()


@pytest.mark.parametrize("spelling", ["{{ .window }}", "{{.window}}", "{{- .window -}}"])
def test_sloth_queries_import_whichever_way_the_window_placeholder_is_spaced(spelling, tmp_path):
    spec = tmp_path / "spaced.yml"
    spec.write_text(
        'version: "prometheus/v1"\nservice: "myservice"\nlabels: {owner: "myteam"}\nslos:\n'
        '  - name: "requests-availability"\n    objective: 99.9\n    sli:\n      events:\n'
        f'        error_query: sum(rate(http_requests_total{{job="my",code=~"5.."}}[{spelling}]))\n'
        f'        total_query: sum(rate(http_requests_total{{job="my"}}[{spelling}]))\n'
        "    alerting: {name: MyServiceHighErrorRate}\n"
    )
    out = tmp_path / "catalogue.yaml"
    result = run_slo("import", spec, "-o", out)
    assert result.returncode == 0, result.stderr
    [slo] = resolve_all(load_catalogue(out))
    assert slo.events.window_queries() == {
        "total": 'sum(rate(http_requests_total{job="my"}[{{.window}}]))',
        "bad": 'sum(rate(http_requests_total{job="my",code=~"5.."}[{{.window}}]))',
    }


def test_a_sloth_api_version_other_than_v1_is_not_read_as_v1(tmp_path):
    spec = tmp_path / "v2.yaml"
    spec.write_text("apiVersion: sloth.slok.dev/v2\nkind: PrometheusServiceLevel\n"
                    "metadata: {name: x}\nspec: {service: x, slos: []}\n")
    result = run_slo("import", spec, "-o", tmp_path / "out.yaml")
    assert result.returncode == 1
    assert result.stderr.splitlines()[0] == (
        f"{spec}: not a format this reads: Sloth prometheus/v1 or sloth.slok.dev/v1, OpenSLO "
        "openslo/v1 or openslo/v1alpha"
    )
    assert not (tmp_path / "out.yaml").exists()
