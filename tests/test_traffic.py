"""`python -m delivery traffic` against a real Prometheus holding a backfilled week of counters
(`promtool tsdb create-blocks-from openmetrics`), with each service's request rate known."""

import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tools.local_prometheus import backfilled, free_port

ROOT = Path(__file__).resolve().parent.parent
STEP = 300  # one sample every 5 minutes
WINDOW_SECONDS = 7 * 86400
# requests a minute per service; agent-runner's latency histogram counts fewer requests than
# its 5xx counter (a route without the histogram): the busier counter is the service's traffic
RATES = {"orchestrator": 600.0, "agent-runner": 42.0, "api-gateway": 3300.0}
HISTOGRAM_SHARE = {"agent-runner": 0.5}


def _history(end: int) -> str:
    times = range(end - WINDOW_SECONDS - 3600, end + 1, STEP)
    families: dict[str, list[str]] = {}
    for service, rate in RATES.items():
        per_step = rate * STEP / 60
        timed = per_step * HISTOGRAM_SHARE.get(service, 1.0)
        job = f'job="{service}"'
        for family, labels, gain in (
            ("http_requests_total", f'{job},code="200"', per_step),
            ("http_request_duration_seconds_count", job, timed),
            ("http_request_duration_seconds_bucket", f'{job},le="2.0"', timed),
            ("http_request_duration_seconds_bucket", f'{job},le="+Inf"', timed),
        ):
            families.setdefault(family, []).extend(
                f"{family}{{{labels}}} {gain * i:.0f} {t}" for i, t in enumerate(times))
    text = []
    for family, lines in families.items():
        text += [f"# TYPE {family} unknown", *lines]
    return "\n".join([*text, "# EOF"]) + "\n"


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory):
    assert shutil.which("prometheus"), "needs prometheus on PATH (make test builds it)"
    work = tmp_path_factory.mktemp("traffic")
    end = (int(time.time()) // STEP) * STEP - 3600
    with backfilled(_history(end), work) as prom:
        yield prom.url, end


def traffic(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "delivery", "traffic", *args], cwd=ROOT,
                          capture_output=True, text=True, check=False, timeout=300)


def test_traffic_measures_each_services_requests_a_minute_within_one_percent(prometheus):
    url, end = prometheus
    result = traffic("--stack", "Pulumi.prod.yaml", "--prometheus", url, "--at", str(end))
    assert result.returncode == 0, result.stderr
    measured = {m.group(1): float(m.group(2)) for m in re.finditer(
        r"^prod: (\S+): ([\d.]+) requests a minute over the last 7d", result.stdout, re.M)}
    assert set(measured) == set(RATES)
    for service, rate in RATES.items():
        assert measured[service] == pytest.approx(rate, rel=0.01), service
    lines = dict(line.split(": ", 2)[1:] for line in result.stdout.splitlines())
    assert "the stack states 3000 (at that rate: " in lines["api-gateway"]


def _choices(line: str) -> tuple[str, str]:
    """(at the measured rate, at the stated rate) of one output line."""
    found = re.fullmatch(r".*over the last 7d \(at that rate: (.*)\); the stack states \S+ "
                         r"\(at that rate: (.*)\)", line)
    assert found, line
    return found.group(1), found.group(2)


def test_traffic_says_what_auto_would_choose_at_the_measured_and_the_stated_rate(prometheus):
    """On prod (failBurnRate auto): orchestrator measured at its stated 600 gets the same
    choice at both; agent-runner, measured at 42 a minute against a stated 300, gets looser
    hypotheses at the measured rate (a quieter canary decides less within the first gate)."""
    url, end = prometheus
    assert "      failBurnRate: auto\n" in (ROOT / "Pulumi.prod.yaml").read_text()
    result = traffic("--stack", "Pulumi.prod.yaml", "--prometheus", url, "--at", str(end))
    assert result.returncode == 0, result.stderr
    lines = dict(line.split(": ", 2)[1:] for line in result.stdout.splitlines())
    measured, stated = _choices(lines["orchestrator"])
    assert measured == stated
    measured, stated = _choices(lines["agent-runner"])
    rates = {m.group(1): (float(m.group(2)), float(n.group(2))) for m, n in zip(
        re.finditer(r"(\S+) fails at ([\d.]+)x", measured),
        re.finditer(r"(\S+) fails at ([\d.]+)x", stated), strict=True)}
    assert rates["latency"][0] > rates["latency"][1], (measured, stated)
    assert all(at_measured >= at_stated for at_measured, at_stated in rates.values())


def test_traffic_without_requests_in_the_window_says_so(prometheus):
    url, end = prometheus
    before = end - 30 * 86400  # a window that ends before the history begins
    result = traffic("--stack", "Pulumi.prod.yaml", "--prometheus", url, "--window", "1d",
                     "--at", str(before))
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("no requests counted over the last 1d") == len(RATES)


def test_traffic_fails_clearly_when_prometheus_is_unreachable_or_the_window_is_not_a_duration():
    down = traffic("--stack", "Pulumi.prod.yaml", "--prometheus",
                   f"http://127.0.0.1:{free_port()}")
    assert down.returncode == 1 and "cannot query" in down.stderr
    bad = traffic("--stack", "Pulumi.prod.yaml", "--prometheus", "http://127.0.0.1:1",
                  "--window", "a week")
    assert bad.returncode == 2 and "--window a week: not a duration" in bad.stderr
    for result in (down, bad):
        assert "Traceback" not in result.stderr and not result.stdout
