"""Imported Sloth SLOs alert when Sloth's own rules do: Sloth v0.16.0 (built from its Go module,
bench/peers/build_sloth.sh) generates its rules from the example, `python -m slo import` and
`python -m slo rules` generate ours, and promtool evaluates both rule sets on the same synthetic
series (scraped every minute). For a full outage, a 10x, a 2x and a 0.9x burn, the page and
the ticket of each rule set first fire within one evaluation step of the other's, or neither
fires. Rules are evaluated every minute for the outage and every 5 minutes for the day-long
burns (as the generated proofs do). Imported Sloth SLOs read their long windows raw
(`long_windows: raw`), as Sloth does; with the catalogue's default (`averaged`, from the
recorded 5m rates) the full outage's ticket comes 2 minutes after Sloth's.

Both rule sets share recording-rule names (`slo:sli_error:ratio_rate5m`, ...) but not labels
(ours: service/slo; Sloth's: sloth_id/sloth_service/sloth_slo), so they are evaluated side by
side; Sloth's alerts carry `sloth_severity`, ours do not.
"""

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from slo.yamlout import dump, load

ROOT = Path(__file__).resolve().parent.parent
PROMTOOL = "promtool"
RATE = 1000  # requests a minute


@dataclass(frozen=True)
class Case:
    example: str
    slo: str
    alert: str
    page_severity: str
    ticket_severity: str
    budget: float
    good: str  # series counting good requests
    bad: str  # series counting bad requests, or "" when bad = total - good (total below)
    total: str = ""


CASES = [
    Case("getting-started.yml", "requests-availability", "MyServiceHighErrorRate", "pageteam",
         "slack", 0.001, 'http_request_duration_seconds_count{job="myservice",code="200"}',
         'http_request_duration_seconds_count{job="myservice",code="500"}'),
    Case("kubernetes-apiserver.yml", "requests-availability", "K8sApiserverAvailabilityAlert",
         "critical", "warning", 0.001, 'apiserver_request_total{code="200"}',
         'apiserver_request_total{code="500"}'),
    Case("kubernetes-apiserver.yml", "requests-latency", "K8sApiserverLatencyAlert",
         "critical", "warning", 0.01,
         'apiserver_request_duration_seconds_bucket{le="0.4",verb="GET"}', "",
         'apiserver_request_duration_seconds_count{verb="GET"}'),
]

# (name, evaluation step in minutes, history in minutes at no errors, burn in minutes,
#  burn x budget (None: every request fails), which alerts fire: page, ticket)
SCENARIOS = [
    ("full outage", 1, 1440, 60, None, True, True),
    ("10x burn", 5, 3 * 1440, 1440, 10, True, True),
    ("2x burn", 5, 3 * 1440, 3 * 1440, 2, False, True),
    ("0.9x burn", 5, 3 * 1440, 3 * 1440, 0.9, False, False),
]


@pytest.fixture(scope="session")
def sloth_binary() -> Path:
    done = subprocess.run(["bash", str(ROOT / "bench" / "peers" / "build_sloth.sh")],
                          capture_output=True, text=True, check=False, timeout=1800)
    assert done.returncode == 0, done.stderr[-3000:]
    return Path(done.stdout.strip().splitlines()[-1])


def _counter(increments: list[float]) -> str:
    """promtool's notation for a counter from 0 growing by ``increments`` per sample: one
    ``start+step x n`` segment per run of equal increments."""
    parts, value, i = ["0"], 0.0, 0
    while i < len(increments):
        j = i
        while j + 1 < len(increments) and increments[j + 1] == increments[i]:
            j += 1
        run, step = j - i + 1, increments[i]
        parts.append(f"{value + step:g}+{step:g}x{run - 1}")
        value += run * step
        i = j + 1
    return " ".join(parts)


def _series(case: Case, history: int, burn: int, ratio: float) -> list[dict]:
    """One sample a minute: ``history`` minutes without errors, then ``burn`` at ``ratio``."""
    per_step = float(RATE)
    bad = [0.0] * history + [per_step * ratio] * burn
    good = [per_step - b for b in bad]
    if case.bad:
        return [{"series": case.good, "values": _counter(good)},
                {"series": case.bad, "values": _counter(bad)}]
    return [{"series": case.total, "values": _counter([per_step] * len(bad))},
            {"series": case.good, "values": _counter(good)}]


def _first(selector: str, span: int, step: int) -> str:
    return f"min(min_over_time(timestamp({selector})[{span}m:{step}m]))"


def _fired(selector: str, span: int, step: int) -> str:
    return f"max_over_time((count({selector}) or vector(0))[{span}m:{step}m])"


def _tests(case: Case) -> list[dict]:
    groups = []
    for name, step, history, burn, times, pages, tickets in SCENARIOS:
        ratio = 1.0 if times is None else times * case.budget
        end = history + burn
        checks = []
        for severity, own, fires in (("page", case.page_severity, pages),
                                     ("ticket", case.ticket_severity, tickets)):
            ours = (f'ALERTS{{alertname="{case.alert}",alertstate="firing",sloth_severity="",'
                    f'slo="{case.slo}",severity="{own}"}}')
            theirs = (f'ALERTS{{alertname="{case.alert}",alertstate="firing",'
                      f'sloth_severity="{severity}",sloth_slo="{case.slo}"}}')
            for selector in (ours, theirs):
                checks.append({"eval_time": f"{end}m", "expr": _fired(selector, burn, step),
                               "exp_samples": [{"labels": "{}", "value": 1 if fires else 0}]})
            if not fires:
                continue
            gap = f"{_first(ours, burn, step)} - {_first(theirs, burn, step)}"
            within = f"abs({gap}) <= bool {step * 60}"
            checks.append({"eval_time": f"{end}m", "expr": within,
                           "exp_samples": [{"labels": "{}", "value": 1}]})
        groups.append({
            "name": f"{case.example} {case.slo}: {name}",
            "interval": "1m",
            "input_series": _series(case, history, burn, ratio),
            "promql_expr_test": checks,
            "step": step,
        })
    return groups


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.example}:{c.slo}")
def test_imported_sloth_slos_page_and_ticket_with_sloth(case, sloth_examples, sloth_binary,
                                                        tmp_path):
    example = sloth_examples / case.example
    sloth_rules = tmp_path / "sloth.yml"
    done = subprocess.run([str(sloth_binary), "generate", "-i", str(example), "-o",
                           str(sloth_rules)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    catalogue = tmp_path / "catalogue.yaml"
    for argv in (["import", str(example), "-o", str(catalogue)],
                 ["rules", str(catalogue), "-o", str(tmp_path / "ours"), "--no-tests",
                  "--format", "rules"]):
        done = subprocess.run([sys.executable, "-m", "slo", *argv], capture_output=True,
                              text=True, check=False, env=env, cwd=ROOT)
        assert done.returncode == 0, done.stderr
    files = [*sorted((tmp_path / "ours" / "rules").glob("*.yml")), sloth_rules]
    # promtool evaluates groups in a random order unless told; Sloth's alerts read recordings of
    # its other groups, so both sets are evaluated in the order their files give
    order = [g["name"] for f in files for g in load(f.read_text())["groups"]]
    for step in sorted({s[1] for s in SCENARIOS}):
        test = {
            "rule_files": [str(p) for p in files],
            "evaluation_interval": f"{step}m",
            "group_eval_order": order,
            "tests": [{k: v for k, v in g.items() if k != "step"} for g in _tests(case)
                      if g["step"] == step],
        }
        path = tmp_path / f"equivalence.{step}m.test.yml"
        path.write_text(dump(test))
        result = subprocess.run([PROMTOOL, "test", "rules", str(path)], capture_output=True,
                                text=True, check=False, timeout=900)
        assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
