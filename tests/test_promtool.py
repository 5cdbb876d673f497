"""Real Prometheus tooling: ``promtool check rules`` on every generated rule file and
``promtool test rules`` on every generated proof; and proof that the proofs bite, by running them
against deliberately broken rules."""

import dataclasses
import shutil
import subprocess
from pathlib import Path

import pytest

from slo.loader import load_catalogue
from slo.model import ResolvedSlo, le_matcher, resolve_all
from slo.proofs import proof_files
from slo.rules import rule_file
from slo.yamlout import dump

ROOT = Path(__file__).resolve().parent.parent
CATALOGUES = [
    ROOT / "catalogue" / "core-services.yaml",
    *sorted((ROOT / "tests" / "golden").glob("in-*.yaml")),
]
SLOS = [slo for path in CATALOGUES for slo in resolve_all(load_catalogue(path))]
PROMTOOL = shutil.which("promtool")


@pytest.fixture(scope="session", autouse=True)
def _promtool_present():
    assert PROMTOOL, "promtool is required (make test builds it; make compat uses Debian's)"


def write(slo: ResolvedSlo, directory: Path, rules: dict | None = None) -> list[Path]:
    stem = f"{slo.service.name}-{slo.slo.name}"
    (directory / "rules").mkdir(parents=True, exist_ok=True)
    (directory / "tests").mkdir(exist_ok=True)
    (directory / "rules" / f"{stem}.yml").write_text(dump(rules or rule_file([slo])))
    written = []
    for step, doc in proof_files(slo, f"../rules/{stem}.yml").items():
        path = directory / "tests" / f"{stem}.{step}m.test.yml"
        path.write_text(dump(doc))
        written.append(path)
    return written


def promtool(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PROMTOOL, *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )


@pytest.mark.parametrize("slo", SLOS, ids=lambda s: f"{s.service.name}/{s.slo.name}")
def test_rules_pass_promtool_check_and_their_proofs(slo, tmp_path):
    tests = write(slo, tmp_path)
    checked = promtool("check", "rules", *sorted((tmp_path / "rules").iterdir()), cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    for test in tests:
        result = promtool("test", "rules", test.name, cwd=test.parent)
        assert result.returncode == 0, result.stdout + result.stderr


def _error_rate() -> ResolvedSlo:
    return next(s for s in SLOS if s.service.name == "orchestrator" and s.slo.name == "error-rate")


def _fast_proof_fails_against(broken_rules: dict, tmp_path: Path) -> str:
    slo = _error_rate()
    tests = write(slo, tmp_path, rules=broken_rules)
    fast = next(t for t in tests if t.name.endswith(".1m.test.yml"))
    result = promtool("test", "rules", fast.name, cwd=fast.parent)
    assert result.returncode != 0, "the proofs passed against broken rules"
    return result.stdout + result.stderr


def test_proofs_catch_burn_thresholds_that_are_too_high(tmp_path):
    slo = _error_rate()
    lax = dataclasses.replace(
        slo, tiers=tuple(dataclasses.replace(t, threshold=t.threshold * 3) for t in slo.tiers)
    )
    output = _fast_proof_fails_against(rule_file([lax]), tmp_path)
    assert "full outage" in output or "10x burn" in output


def test_proofs_catch_an_sli_that_goes_missing_without_errors(tmp_path):
    rules = rule_file([_error_rate()])
    for rule in rules["groups"][0]["rules"]:
        rule["expr"] = rule["expr"].replace(" or vector(0)", "")
    output = _fast_proof_fails_against(rules, tmp_path)
    assert 'slo:sli_error:ratio_period", service="orchestrator"' in output
    assert "got: nil" in output


def test_proofs_catch_a_missing_absent_alert(tmp_path):
    rules = rule_file([_error_rate()])
    rules["groups"][0]["rules"] = [
        r for r in rules["groups"][0]["rules"] if r.get("alert") != "SLOMetricsAbsent"
    ]
    output = _fast_proof_fails_against(rules, tmp_path)
    assert "absent metrics" in output


@pytest.mark.parametrize(
    ("threshold", "printed"),
    [
        (2.0, ("2", "2.0")),
        (0.25, ("0.25",)),
        (1e-05, ("1e-05", "0.00001")),
        (1e6, ("1e+06", "1000000", "1000000.0")),
        (2.5e-07, ("2.5e-07",)),
    ],
)
def test_le_matcher_selects_every_spelling_of_its_bucket_and_no_other(threshold, printed, tmp_path):
    """Prometheus itself decides: one series per spelling, plus neighbours that must not match."""
    others = ("20", "0.025", "1e-06", "1e+05", "2.5e-08", "+Inf")
    series = [
        {"series": f'h_bucket{{le="{le}"}}', "values": "1"} for le in printed + others
    ]
    matcher = le_matcher(threshold)
    selector = f"h_bucket{{{matcher.render()}}}"
    doc = {
        "rule_files": [],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": series,
                "promql_expr_test": [
                    {
                        "expr": f"count({selector})",
                        "eval_time": "0m",
                        "exp_samples": [{"labels": "{}", "value": len(printed)}],
                    }
                ],
            }
        ],
    }
    (tmp_path / "le.test.yml").write_text(dump(doc))
    ran = promtool("test", "rules", "le.test.yml", cwd=tmp_path)
    assert ran.returncode == 0, selector + "\n" + ran.stdout + ran.stderr
