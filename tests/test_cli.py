import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from slo.cli import main

ROOT = Path(__file__).resolve().parent.parent
CATALOGUE = ROOT / "catalogue" / "core-services.yaml"


def run(*args: str, hash_seed: str = "0") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "slo", *args], cwd=ROOT, capture_output=True, text=True,
        check=False, env={**os.environ, "PYTHONHASHSEED": hash_seed},
    )


def test_help_lists_the_commands():
    result = run("--help")
    assert result.returncode == 0
    listed = re.findall(r"^    (\w+) ", result.stdout, flags=re.MULTILINE)
    assert listed == ["validate", "rules", "tune", "docs", "import", "export"], result.stdout


def test_validate_accepts_the_core_catalogue():
    result = run("validate", str(CATALOGUE))
    assert result.returncode == 0, result.stderr
    assert "3 services, 9 SLOs, valid" in result.stdout


def test_rules_are_byte_identical_across_processes_and_hash_seeds(tmp_path):
    for out, seed in (("a", "1"), ("b", "4242")):
        result = run("rules", str(CATALOGUE), "-o", str(tmp_path / out), hash_seed=seed)
        assert result.returncode == 0, result.stderr
    first = {
        p.relative_to(tmp_path / "a"): p.read_bytes() for p in (tmp_path / "a").rglob("*.y*ml")
    }
    second = {
        p.relative_to(tmp_path / "b"): p.read_bytes() for p in (tmp_path / "b").rglob("*.y*ml")
    }
    assert first == second
    assert len([p for p in first if p.parts[0] == "rules"]) == 9
    assert len([p for p in first if p.parts[0] == "tests"]) == 18
    assert len([p for p in first if p.parts[0] == "prometheusrule"]) == 3


def test_catalogue_reference_is_fresh():
    result = run("docs")
    assert result.returncode == 0
    assert (ROOT / "docs" / "slo-catalogue.md").read_text() == result.stdout, (
        "docs/slo-catalogue.md is stale: run `python -m slo docs > docs/slo-catalogue.md`"
    )


def run_delivery(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "delivery", *args], cwd=ROOT, capture_output=True, text=True
    )


def test_slo_summary_is_fresh():
    result = run_delivery("docs", "--slos", str(CATALOGUE.relative_to(ROOT)),
                          "--stack", "Pulumi.dev.yaml", "--stack", "Pulumi.prod.yaml")
    assert result.returncode == 0, result.stderr
    assert (ROOT / "docs" / "slos.md").read_text() == result.stdout, (
        "docs/slos.md is stale: run `make docs`"
    )


def test_stack_reference_is_fresh_and_describes_every_field():
    from delivery.docs import STACK_MODELS

    result = run_delivery("docs", "--stack-reference")
    assert result.returncode == 0, result.stderr
    assert (ROOT / "docs" / "stack-config.md").read_text() == result.stdout, (
        "docs/stack-config.md is stale: run `make docs`"
    )
    undescribed = [
        f"{model.__name__}.{name}"
        for model in STACK_MODELS
        for name, field in model.model_fields.items()
        if not field.description
    ]
    assert undescribed == []


def _tree(root: Path) -> dict[Path, bytes]:
    return {p.relative_to(root): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_parallel_rendering_writes_exactly_what_one_process_writes(tmp_path, monkeypatch):
    import multiprocessing

    from slo import cli

    monkeypatch.setattr(cli, "PARALLEL_MIN_SLOS", 2)  # the core catalogue has 9 SLOs
    forks = []
    get_context = multiprocessing.get_context
    monkeypatch.setattr(multiprocessing, "get_context", lambda m: forks.append(m) or get_context(m))
    for jobs in ("1", "3"):
        assert main(["rules", str(CATALOGUE), "-o", str(tmp_path / jobs), "-j", jobs]) == 0
    assert forks == ["fork"], "-j 3 did not render in other processes"
    one, three = _tree(tmp_path / "1"), _tree(tmp_path / "3")
    assert len(one) == 9 + 18 + 3
    assert one == three


# every broken stack but those whose problem is their promotion: the stack it promotes from and
# the images that ran Healthy there are the program's checks at `pulumi preview`, not the files'
BROKEN_STACKS = [
    p for p in sorted((ROOT / "tests" / "stacks" / "broken").glob("Pulumi.*.yaml"))
    if "promotion" not in p.read_text().split("\nconfig:")[0]
]


@pytest.mark.parametrize("stack_file", BROKEN_STACKS, ids=lambda p: p.stem.removeprefix("Pulumi."))
def test_plan_rules_and_docs_refuse_what_render_refuses_with_the_same_lines(stack_file, tmp_path):
    expected = [
        line.removeprefix("# expect: ")
        for line in stack_file.read_bytes().decode("utf-8", "replace").splitlines()
        if line.startswith("# expect: ")
    ]
    for args in (["plan"], ["rules", "-o", str(tmp_path / "rules")],
                 ["docs", "--slos", "catalogue/core-services.yaml"]):
        result = run_delivery(*args, "--stack", str(stack_file))
        assert result.returncode == 1, (args, result.stdout)
        assert result.stderr.splitlines() == expected, args
        assert not (tmp_path / "rules").exists()


def test_rules_writes_one_evidence_rule_file_per_deployed_service(tmp_path):
    result = run_delivery("rules", "--stack", "Pulumi.dev.yaml", "-o", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "agent-runner-canary-evidence.yml", "api-gateway-canary-evidence.yml",
        "orchestrator-canary-evidence.yml",
    ]


CATALOGUE_FILE = ROOT / "catalogue" / "core-services.yaml"
OPENSLO_FILE = ROOT / "tests" / "openslo" / "checkout.yaml"


@pytest.mark.parametrize(
    "args, line",
    [
        (["export", "--openslo", str(CATALOGUE_FILE), "-o", "{tmp}"],
         "{tmp}: -o names a directory; give the file to write"),
        (["export", "--openslo", str(CATALOGUE_FILE), "-o", str(CATALOGUE_FILE)],
         f"{CATALOGUE_FILE}: -o is one of the input files; write the output elsewhere"),
        (["export", "--openslo", str(CATALOGUE_FILE), "-o", "{tmp}/no/such/dir/x.yaml"],
         "{tmp}/no/such/dir/x.yaml: the directory {tmp}/no/such/dir does not exist"),
        (["rules", str(CATALOGUE_FILE), "-o", "{tmp}/a-file"],
         "{tmp}/a-file: -o names a file; give the directory to write the rule files into"),
        (["import", str(OPENSLO_FILE), "-o", str(OPENSLO_FILE)],
         f"{OPENSLO_FILE}: -o is one of the input files; write the output elsewhere"),
    ],
    ids=["export into a directory", "export over its input", "export into a missing directory",
         "rules into a file", "import over its input"],
)
def test_an_output_path_that_cannot_be_written_is_one_line_and_nothing_is_written(
    args, line, tmp_path
):
    (tmp_path / "a-file").write_text("kept\n")
    before = CATALOGUE_FILE.read_bytes(), OPENSLO_FILE.read_bytes()
    result = subprocess.run(
        [sys.executable, "-m", "slo", *(a.replace("{tmp}", str(tmp_path)) for a in args)],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )
    assert result.returncode == 1
    assert result.stderr.splitlines() == [line.replace("{tmp}", str(tmp_path))]
    assert "Traceback" not in result.stderr
    assert (CATALOGUE_FILE.read_bytes(), OPENSLO_FILE.read_bytes()) == before
    assert (tmp_path / "a-file").read_text() == "kept\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]


@pytest.mark.parametrize("service", ["orchestrator", "agent-runner", "api-gateway"])
def test_operating_characteristic_pictures_are_fresh(service):
    result = run_delivery("docs", "--oc", service, "--stack", "Pulumi.prod.yaml")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("<?xml") and "</svg>" in result.stdout
    assert (ROOT / "docs" / f"oc-prod-{service}.svg").read_text() == result.stdout, (
        f"docs/oc-prod-{service}.svg is stale: run `make docs`"
    )


def test_a_picture_of_a_service_without_traffic_is_one_clear_error():
    result = run_delivery("docs", "--oc", "orchestrator", "--stack", "Pulumi.dev.yaml")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip().endswith("with its expectedRequestsPerMinute"), result.stderr
    assert "Traceback" not in result.stderr
