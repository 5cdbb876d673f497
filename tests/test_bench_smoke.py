"""Smoke runs of the benchmarks under bench/, so that none can break unnoticed.

Each runs at its smallest size and must exit 0 and print its table; the figures themselves are
the benchmarks' business (bench/README.md), not these tests'. ``canary_judgement.py --quick``
has its own test (tests/test_canary_judgement.py). ``eval_cost.py`` and ``fleet_eval_cost.py``
need a backfilled Prometheus or Thanos for minutes; ``eval_cost.py --quick`` is run by hand
(bench/README.md) and ``fleet_eval_cost.py`` beside ``make fleet``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run(*argv: str) -> str:
    result = subprocess.run([sys.executable, *argv], cwd=ROOT, capture_output=True, text=True,
                            timeout=900, check=False)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return result.stdout


def test_program_bench_renders_five_services_under_mocks():
    out = _run("bench/program_bench.py", "--runs", "1", "--sizes", "5")
    header = next(i for i, line in enumerate(out.splitlines()) if line.split()[:2] == [
        "services", "resources"])
    row = out.splitlines()[header + 1].split()
    assert row[0] == "5" and int(row[1]) > 5, out


def test_gate_query_cost_counts_the_samples_a_gate_reads():
    out = _run("bench/gate_query_cost.py", "--quick")
    assert "target gate query samples <= 40,000: met" in out, out


def test_rules_bench_runs_beside_sloth_and_prints_the_ten_slo_row():
    out = _run("bench/rules_bench.py", "--sizes", "10", "--runs", "1", "--no-proofs",
               "--no-profile")
    assert any(line.split()[:1] == ["10"] for line in out.splitlines()), out
