"""`python -m slo tune` against a real Prometheus holding backfilled history
(`promtool tsdb create-blocks-from openmetrics`), with error ratios known in advance."""

import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tools.local_prometheus import backfilled, free_port

ROOT = Path(__file__).resolve().parent.parent
CATALOGUE = ROOT / "catalogue" / "core-services.yaml"
STEP = 300  # one sample every 5 minutes
WINDOW_SECONDS = 7 * 86400
REQUESTS = 10_000  # per step and service

# service -> (5xx per step, slow requests per step, gauge zeros: one in every N samples)
HISTORY = {
    "orchestrator": (12, 250, None),
    "agent-runner": (3, 100, 250),
    "api-gateway": (0, 40, None),
}


def _history(end: int) -> tuple[str, dict[str, float]]:
    """OpenMetrics text with the catalogue's series, and each SLO's achieved objective."""
    start = end - WINDOW_SECONDS - 3600
    times = list(range(start, end + 1, STEP))
    families: dict[str, list[str]] = {}
    expected = {}
    in_window = [t for t in times if t >= end - WINDOW_SECONDS]
    for service, (errors, slow, gauge_every) in HISTORY.items():
        job = f'job="{service}"'
        series = {
            ("http_requests_total", f'{job},code="200"'): REQUESTS - errors,
            ("http_requests_total", f'{job},code="500"'): errors,
            ("http_request_duration_seconds_count", job): REQUESTS,
            ("http_request_duration_seconds_bucket", f'{job},le="2.0"'): REQUESTS - slow,
            ("http_request_duration_seconds_bucket", f'{job},le="+Inf"'): REQUESTS,
        }
        for (family, labels), per_step in series.items():
            lines = families.setdefault(family, [])
            lines += [f"{family}{{{labels}}} {per_step * i} {t}" for i, t in enumerate(times)]
        expected[f"{service}/error-rate"] = 100 * (1 - errors / REQUESTS)
        expected[f"{service}/latency"] = 100 * (1 - slow / REQUESTS)
        if gauge_every:
            values = [0 if i % gauge_every == gauge_every - 1 else 1 for i in range(len(times))]
            families.setdefault("up", []).extend(
                f"up{{{job}}} {v} {t}" for v, t in zip(values, times, strict=True)
            )
            window_values = values[-len(in_window) :]
            expected[f"{service}/availability"] = 100 * sum(window_values) / len(window_values)
        else:
            expected[f"{service}/availability"] = 100 * (1 - errors / REQUESTS)
    text = []
    for family, lines in families.items():
        text.append(f"# TYPE {family} unknown")
        text.extend(lines)
    text.append("# EOF")
    return "\n".join(text) + "\n", expected


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory):
    assert shutil.which("prometheus"), "needs prometheus on PATH (make test builds it)"
    work = tmp_path_factory.mktemp("tune")
    end = (int(time.time()) // STEP) * STEP - 3600
    text, expected = _history(end)
    with backfilled(text, work) as prom:
        yield prom.url, end, expected


def tune(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "slo", "tune", str(CATALOGUE), "--prometheus", url, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


def test_tune_reports_what_each_slo_achieved_within_a_hundredth_of_a_point(prometheus):
    url, end, expected = prometheus
    result = tune(url, "--window", "7d", "--at", str(end))
    assert result.returncode == 0, result.stderr
    assert "[9/9]" in result.stderr  # progress
    achieved = {
        m.group(1): float(m.group(2))
        for m in re.finditer(r"^(\S+): achieved ([\d.]+)%", result.stdout, re.MULTILINE)
    }
    assert set(achieved) == set(expected)
    for name, value in expected.items():
        assert achieved[name] == pytest.approx(value, abs=0.01), name


def test_tune_tightens_only_where_history_allows(prometheus):
    url, end, _ = prometheus
    result = tune(url, "--window", "7d", "--at", str(end))
    assert result.returncode == 0, result.stderr
    lines = dict(line.split(": ", 1) for line in result.stdout.splitlines())
    # 0.12% errors against a 0.1% budget: the service misses 99.9, so keep it
    assert lines["orchestrator/error-rate"].endswith("keep 99.9%, budget overspent by 20%")
    # 2.5% slow requests: p95 objective can go to 97.5%, leaving nothing of the budget
    assert "tighten to 97.5%, 0% of its budget left" in lines["orchestrator/latency"]
    # no 5xx at all: tighten as far as the granularity allows
    assert "tighten to 99.99%, 100% of its budget left" in lines["api-gateway/error-rate"]


def test_tune_fails_clearly_when_prometheus_is_unreachable():
    result = tune(f"http://127.0.0.1:{free_port()}")
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1].startswith("error: http://127.0.0.1:")
    assert "Traceback" not in result.stderr
