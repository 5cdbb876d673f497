"""The fleet split against real processes: two Prometheus 3 "clusters" (a, b) with Thanos
sidecars, a Thanos Query over them and the Ruler, and a Thanos Ruler evaluating the fleet rules of
e2e/fleet/catalogue.yaml (service checkout, SLOs strict 99.9% and loose 99%; page tier 14.4x over
2m/10s).

Cluster a serves 100 req/s at 0.2% errors, b 10 req/s at 1%: a has ten times b's traffic, so the
fleet's error ratio (0.2 + 0.1) / 110 = 0.27% is far from the mean of the two ratios (0.6%).

One fleet for the whole module, tests in file order, each one leaving the fleet in the state the
next one starts from: b's full outage (test b) keeps running through test c, which stops b's
Prometheus (and starts it again), and test d stops Thanos Query for good.

Timing tolerances: a change of the exporter shows in a scrape up to 1 s later, in the cluster's
recordings up to 1 s after that (evaluation interval 1 s), in the Ruler's next evaluation up to
1 s later, plus Query's fan-out and our 0.25 s poll: up to ~3.5 s late on an idle machine, so +6 s
on two busy cores. A firing can come early by rate()'s extrapolation at the window edges and the
scrape jitter: -3 s.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from e2e.fleet.fleet import BUILD_HINT, Fleet, QueryError, find_alerts, firing, thanos_binary, value
from slo import conventions as names
from slo.fleet import cluster_group, fleet_rule_file
from slo.loader import load_catalogue
from slo.model import ResolvedSlo, Tier, minutes_to_fire, resolve_all
from slo.yamlout import dump

HERE = Path(__file__).resolve().parent
SERVICE = "checkout"
RPS = {"a": 100.0, "b": 10.0}
ERRORS = {"a": 0.002, "b": 0.01}
WARMUP = 130  # s: the 2m windows full, and a few evaluations more
EARLY, LATE = 3.0, 6.0  # tolerance on a firing time (module docstring)
POLL = 0.25
# rate() over 2m of a cluster whose scrapes stall for ~10 s on two busy cores reads up to ~10 %
# low (it extrapolates half an interval past the last sample, not to the window's end): the
# Ruler is held to the clusters' own recordings within 1 %, the traffic we set within this
RATE_TOLERANCE = 0.15
OBSERVED: dict[str, Any] = {}  # what the tests measured, printed at the end of the module


def fleet_ratio(rps: dict[str, float], errors: dict[str, float]) -> float:
    """Bad events over all events, across the clusters."""
    return sum(rps[c] * errors[c] for c in rps) / sum(rps.values())


def recorded_ratio(fleet: Fleet, slo: ResolvedSlo, window: str) -> float:
    """The event-weighted error ratio of what each cluster recorded over ``window`` right now:
    the sum of their bad rates over the sum of their total rates."""
    bad = total = 0.0
    for cluster in fleet.clusters:
        rates = [value(fleet.prometheus_query(cluster, slo.selector_of(name(window))))
                 for name in (names.bad_rate, names.total_rate)]
        print(f"cluster {cluster} recorded over {window}: bad, total = {rates} /s")
        assert rates[0] is not None and rates[1] is not None, (cluster, rates)
        bad, total = bad + rates[0], total + rates[1]
    return bad / total


def workbook_seconds(tier: Tier, ratio: float, background: float) -> float:
    """Seconds until both windows of ``tier`` cross its threshold when the error ratio steps
    from ``background`` to ``ratio`` (the Workbook formula, for the long and the short window:
    the formula is linear in the window's length)."""
    long = minutes_to_fire(tier, ratio, background) * 60
    return max(long, long * tier.short_seconds / tier.long_seconds)


def page_tier(slo: ResolvedSlo) -> Tier:
    (tier,) = [t for t in slo.tiers if t.severity == "page"]
    return tier


@pytest.fixture(scope="module")
def slos() -> dict[str, ResolvedSlo]:
    return {s.slo.name: s for s in resolve_all(load_catalogue(HERE / "catalogue.yaml"))}


@pytest.fixture(scope="module")
def fleet(slos: dict[str, ResolvedSlo], tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[Fleet]:
    try:
        thanos_binary()
    except RuntimeError as err:
        pytest.fail(f"{err}: {BUILD_HINT}")
    work = tmp_path_factory.mktemp("fleet")
    local, central = work / "local-rules.yml", work / "fleet-rules.yml"
    local.write_text(dump({"groups": [cluster_group(s, "thanos") for s in slos.values()]}))
    central.write_text(dump(fleet_rule_file(list(slos.values()))))
    fleet = Fleet(work, local, central, [SERVICE], rps=dict(RPS), error_ratio=dict(ERRORS),
                  ruler_resend_delay="2s")
    started = time.time()
    fleet.start()
    try:
        print(f"fleet up in {time.time() - started:.1f} s, logs in {work}")
        deadline = started + WARMUP
        while time.time() < deadline:
            time.sleep(min(5.0, max(0.0, deadline - time.time())))
        for name in slos:
            got = fleet.query(f'slo:fleet_sli_error:ratio_rate2m{{slo="{name}"}}')
            assert got, f"after {WARMUP} s of warm-up the Ruler records no 2m ratio of {name}"
        print(f"warm-up done after {time.time() - started:.0f} s")
        yield fleet
    finally:
        fleet.close()
        print(f"fleet stopped at {time.strftime('%H:%M:%S')}; measured: {OBSERVED}")


# ---------------------------------------------------------------------------------------------


def test_fleet_sli_is_the_event_weighted_ratio(
    fleet: Fleet, slos: dict[str, ResolvedSlo]
) -> None:
    """Proves the Ruler's fleet ratio sums the clusters' events and divides once: with a 10x
    bigger cluster at 0.2% and a small one at 1%, it is (0.2 + 0.1) / 110, not the mean 0.6%."""
    expected = fleet_ratio(RPS, ERRORS)
    mean = sum(ERRORS.values()) / len(ERRORS)
    inputs = {
        c: value(fleet.prometheus_query(c, 'slo:sli_error:ratio_rate2m{slo="strict"}'))
        for c in fleet.clusters
    }
    print(f"cluster ratios (2m, each Prometheus): {inputs}; weighted {expected:.6f}, mean {mean}")
    for c, got in inputs.items():
        assert got is not None and math.isclose(got, ERRORS[c], rel_tol=0.01), (c, got)
    for window in ("2m", "5m"):
        for slo in ("strict", "loose"):
            got = value(fleet.query(f'slo:fleet_sli_error:ratio_rate{window}{{slo="{slo}"}}'))
            recorded = recorded_ratio(fleet, slos[slo], window)
            print(f"slo:fleet_sli_error:ratio_rate{window}{{slo={slo}}} = {got} "
                  f"(event-weighted from the clusters' recordings {recorded:.6f})")
            assert got is not None
            assert math.isclose(got, recorded, rel_tol=0.01), (window, slo, got, recorded)
            assert math.isclose(got, expected, rel_tol=RATE_TOLERANCE), (window, slo, got)
            assert abs(got - mean) / mean > 0.3, "the fleet ratio looks like a mean of ratios"
    OBSERVED["fleet_ratio_2m"] = expected


def test_full_outage_in_the_small_cluster_pages_when_the_workbook_says(
    fleet: Fleet, slos: dict[str, ResolvedSlo]
) -> None:
    """Proves the fleet page follows the fleet's events: b (1/11 of the traffic) failing every
    request puts the fleet at 9.27% errors. strict (threshold 1.44%) pages when the Workbook
    says; loose (threshold 14.4%) never does, over two long windows, although the mean of the
    clusters' ratios (what averaging ratios would page on) is far above 14.4%."""
    before = fleet_ratio(RPS, ERRORS)
    during = fleet_ratio(RPS, {**ERRORS, "b": 1.0})
    strict, loose = page_tier(slos["strict"]), page_tier(slos["loose"])
    expected = workbook_seconds(strict, during, before)
    assert math.isinf(minutes_to_fire(loose, during, before))
    assert not firing(fleet.ruler_alerts(), "SLOBurnRatePage", slo="strict"), "paging already"

    t0 = fleet.clusters["b"].exporter.set(SERVICE, error_ratio=1.0)
    observe = max(2 * loose.long_seconds, 240)
    first: float | None = None
    loose_seen: list[dict[str, Any]] = []
    mean_ratio = 0.0
    next_mean = t0
    while time.time() < t0 + observe:
        alerts = fleet.ruler_alerts()
        if first is None and firing(alerts, "SLOBurnRatePage", slo="strict", scope="fleet"):
            first = time.time() - t0
            print(f"strict fleet page firing {first:.2f} s after the outage "
                  f"(Workbook {expected:.2f} s)")
        loose_seen += find_alerts(alerts, "SLOBurnRatePage", slo="loose")
        if time.time() >= next_mean:
            avg = value(fleet.query(
                'avg by (slo) (slo:sli_error:ratio_rate2m{slo="loose"})', partial_response=False
            ))
            mean_ratio = max(mean_ratio, avg or 0.0)
            next_mean = time.time() + 5
        if first is not None and time.time() > t0 + observe - 1:
            break
        time.sleep(POLL)
    fleet_now = value(fleet.query('slo:fleet_sli_error:ratio_rate2m{slo="loose"}'))
    recorded = recorded_ratio(fleet, slos["loose"], "2m")
    OBSERVED.update(strict_page_expected_s=round(expected, 2),
                    strict_page_measured_s=None if first is None else round(first, 2),
                    loose_mean_of_ratios_max=mean_ratio, loose_fleet_ratio_2m=fleet_now)
    print(f"strict: first firing {first} s, Workbook {expected:.2f} s "
          f"(tolerance -{EARLY:g}/+{LATE:g} s); loose over {observe:.0f} s: "
          f"{len(loose_seen)} alert observations; fleet 2m ratio {fleet_now} "
          f"(expected {during:.4f}, event-weighted from the clusters' recordings "
          f"{recorded:.4f}); highest mean of the clusters' ratios {mean_ratio:.3f} "
          f"(loose threshold {loose.threshold:.3f})")
    assert first is not None, f"strict fleet page did not fire within {observe:.0f} s"
    assert expected - EARLY <= first <= expected + LATE, (first, expected)
    assert not loose_seen, f"loose paged on the fleet: {loose_seen[:1]}"
    assert fleet_now is not None and math.isclose(fleet_now, recorded, rel_tol=0.01), (
        "the Ruler's ratio is not the clusters' events summed and divided once")
    assert math.isclose(fleet_now, during, rel_tol=RATE_TOLERANCE), (fleet_now, during)
    assert mean_ratio > loose.threshold, "averaging ratios would not have paged either"


@dataclass
class _StoppedWatch:
    """What the Ruler showed in the seconds after a cluster's Prometheus stopped, seconds counted
    from the stop: when every rule of the abort group had health err and their lastErrors, when
    SLOClusterNotReporting{cluster} fired per SLO, and at which polls the strict page was not
    firing."""
    errored: float | None = None
    errors: dict[str, str] = field(default_factory=dict)
    silent: dict[str, float] = field(default_factory=dict)
    not_firing: list[float] = field(default_factory=list)
    polls: int = 0

    def show(self) -> None:
        print(f"abort group all rules health=err after {self.errored} s; lastError:")
        for name, text in self.errors.items():
            print(f"  {name}: {text}")
        print(f"SLOClusterNotReporting{{cluster=b}} firing after {self.silent} s; strict fleet "
              f"page not firing at {len(self.not_firing)} of {self.polls} polls")


def _watch_after_stop(fleet: Fleet, slos: dict[str, ResolvedSlo], abort_group: str,
                      stopped: float) -> _StoppedWatch:
    """Poll the Ruler every 0.5 s from the stop until the abort group errs and every SLO's
    not-reporting alert fires, for at least 30 s and at most 45 s."""
    seen = _StoppedWatch()
    while True:
        now = time.time()
        seen.polls += 1
        rules = {g["name"]: g for g in fleet.ruler_rules()}[abort_group]["rules"]
        if seen.errored is None and all(r["health"] == "err" for r in rules):
            seen.errored = now - stopped
            seen.errors = {r["name"]: r.get("lastError", "") for r in rules}
        alerts = fleet.ruler_alerts()
        if not firing(alerts, "SLOBurnRatePage", slo="strict", scope="fleet"):
            seen.not_firing.append(now - stopped)
        for name in slos:
            if name not in seen.silent and firing(alerts, "SLOClusterNotReporting", slo=name,
                                                  cluster="b"):
                seen.silent[name] = now - stopped
        elapsed = now - stopped
        if (elapsed >= 30 and seen.errored is not None and len(seen.silent) == len(slos)) \
                or elapsed > 45:
            return seen
        time.sleep(0.5)


def _strict_ratio_around(fleet: Fleet, stopped: float) -> tuple[
        list[float], list[tuple[float, float]], list[tuple[float, Any]]]:
    """The strict fleet ratio's samples as the Ruler wrote them, before the stop (values) and
    after it (seconds after the stop, value), and the strict page's sends to the Alertmanager
    (seconds after the stop, endsAt); printed with a range query over the same span."""
    span = int(time.time() - stopped) + 30
    raw = fleet.query(f'slo:fleet_sli_error:ratio_rate2m{{slo="strict"}}[{span}s]',
                      partial_response=True)
    samples = [(float(t), float(v)) for series in raw for t, v in series["values"]]
    pre = [v for t, v in samples if t <= stopped]
    post = [(t - stopped, v) for t, v in samples if t > stopped]
    ranged = fleet.query_range('slo:fleet_sli_error:ratio_rate2m{slo="strict"}', stopped - 10,
                               time.time(), step=1, partial_response=True)
    points = [float(v) for series in ranged for _, v in series["values"]]
    sent = [(at - stopped, a.get("endsAt")) for at, a in
            (fleet.alertmanager.received if fleet.alertmanager else [])
            if a.get("labels", {}).get("alertname") == "SLOBurnRatePage"
            and a.get("labels", {}).get("slo") == "strict"]
    print(f"raw samples written after the stop: {len(post)} {post[:5]}; last before "
          f"{pre[-1] if pre else None}; range query (step 1s, partial response) "
          f"{len(points)} points, min {min(points) if points else None}")
    return pre, post, sent


def _restart_and_recover(fleet: Fleet, abort_group: str) -> float:
    """Start b's Prometheus again and wait (30 s at most) until the abort group is healthy and
    SLOClusterNotReporting{cluster=b} resolved; the seconds that took."""
    fleet.start_prometheus("b")
    restarted = time.time()

    def recovered() -> bool:
        groups = {g["name"]: g for g in fleet.ruler_rules()}
        healthy = all(r["health"] == "ok" for r in groups[abort_group]["rules"])
        alerts = find_alerts(fleet.ruler_alerts(), "SLOClusterNotReporting", cluster="b")
        return healthy and not alerts

    deadline = restarted + 30
    while not recovered():
        assert time.time() < deadline, "the fleet rules did not recover after b came back"
        time.sleep(0.5)
    return time.time() - restarted


def test_a_stopped_cluster_fails_the_fleet_rules_and_raises_not_reporting(
    fleet: Fleet, slos: dict[str, ResolvedSlo]
) -> None:
    """Proves what happens on the Ruler when a cluster's store stops answering (Prometheus b
    down, its sidecar up): the abort group's evaluations fail (health err; lastError is only
    "no query API server reachable", Query's 422 "Aborted ... receive series from" is in the
    Ruler's log) rather than summing a alone; the strict page that fired stays firing;
    no fleet ratio lower than before is written; and the warn group raises
    SLOClusterNotReporting{cluster="b"} after fleet.not_reporting_for. Then b comes back and the
    group is healthy again."""
    abort_group = "slo-fleet-checkout-strict"
    not_reporting_for = 10.0  # catalogue: fleet.not_reporting_for
    assert firing(fleet.ruler_alerts(), "SLOBurnRatePage", slo="strict", scope="fleet"), \
        "precondition: the strict fleet page fires (test b)"
    log_offset = fleet.ruler.log_size()
    signalled = time.time()
    stopped = fleet.stop_prometheus("b")
    print(f"Prometheus b stopped in {stopped - signalled:.1f} s")

    seen = _watch_after_stop(fleet, slos, abort_group, stopped)
    seen.show()
    # the API's lastError is the Ruler's generic "no query API server reachable"; the reason
    # (Query's 422: the partial response aborted) is in its log
    logged = [line for line in fleet.ruler.log_since(log_offset).splitlines()
              if "level=error" in line and "got 422" in line]
    print(f"Ruler log after the stop: {len(logged)} errors like: "
          f"{logged[0][:600] if logged else None}")

    pre, post, sent = _strict_ratio_around(fleet, stopped)
    sends_after = [s for s in sent if s[0] > 0]
    sends_before = [s for s in sent if s[0] <= 0]
    print(f"strict fleet page sent to the Alertmanager after the stop: {sends_after[:3]} "
          f"({len(sends_after)} sends); last before: {sends_before[-1:]}")
    OBSERVED.update(abort_health_err_s=seen.errored, not_reporting_s=seen.silent,
                    samples_after_stop=len(post), last_error=next(iter(seen.errors.values()), None),
                    page_sends_after_stop=len([s for s in sent if s[0] > 2]))

    assert seen.errored is not None and seen.errored <= 15, \
        f"abort group not failing: {fleet.ruler_rules()}"
    assert all(seen.errors.values()), seen.errors
    assert any("code = Aborted" in line and "receive series from" in line for line in logged), \
        "the Ruler did not log Query's aborted partial response"
    assert all(k in slos for k in seen.silent) and len(seen.silent) == len(slos), seen.silent
    for name, after in seen.silent.items():
        assert not_reporting_for <= after <= not_reporting_for + 8, (name, after)
    assert not seen.not_firing, f"the strict fleet page was not firing at {seen.not_firing}"
    assert pre, "no sample of the strict fleet ratio before the stop"
    # one evaluation may have been in flight while b shut down: allow samples in the first 2 s
    late = [(t, v) for t, v in post if t > 2]
    assert not late, f"the Ruler wrote fleet ratios from the clusters that answered: {late[:5]}"
    assert all(v >= pre[-1] * 0.99 for _, v in post), (pre[-1], post)
    # Prometheus' rule manager sends an alert only after an evaluation that succeeded: the page
    # stays firing on the Ruler, but the Alertmanager gets no update and resolves it at the
    # endsAt of the last send (4 x max(resend delay, eval interval) later)
    assert not [s for s in sends_after if s[0] > 2], f"sent while failing: {sends_after[:3]}"

    recovered = _restart_and_recover(fleet, abort_group)
    OBSERVED["recovered_after_restart_s"] = round(recovered, 1)
    print(f"abort group healthy and SLOClusterNotReporting resolved {recovered:.1f} s after b "
          f"restarted")


def test_the_cluster_fast_page_works_without_thanos_query(
    fleet: Fleet, slos: dict[str, ResolvedSlo]
) -> None:
    """Proves each cluster pages on its own traffic with the global layer down: Thanos Query
    stopped, cluster a failing every request, a's Prometheus fires its SLOBurnRatePage
    {scope="cluster"} for both SLOs when the Workbook says for a's own ratio."""
    fleet.stop_query()
    with pytest.raises(OSError):
        fleet.query("up")
    for name in slos:
        assert not find_alerts(fleet.prometheus_alerts("a"), "SLOBurnRatePage", slo=name), \
            f"precondition: a does not page for {name} yet"
    expected = {name: workbook_seconds(page_tier(s), 1.0, ERRORS["a"])
                for name, s in slos.items()}
    t0 = fleet.clusters["a"].exporter.set(SERVICE, error_ratio=1.0)
    first: dict[str, float] = {}
    deadline = t0 + max(expected.values()) + LATE + 5
    while len(first) < len(slos) and time.time() < deadline:
        alerts = fleet.prometheus_alerts("a")
        for name in slos:
            if name not in first and firing(alerts, "SLOBurnRatePage", slo=name,
                                            scope="cluster"):
                first[name] = time.time() - t0
        assert not fleet.query_process.running, "Thanos Query came back"
        time.sleep(POLL)
    print(f"a's own page (Query down): first firing {first}, Workbook "
          f"{ {k: round(v, 2) for k, v in expected.items()} }")
    OBSERVED["cluster_page_measured_s"] = {k: round(v, 2) for k, v in first.items()}
    OBSERVED["cluster_page_expected_s"] = {k: round(v, 2) for k, v in expected.items()}
    for name in slos:
        assert name in first, f"a's {name} page did not fire with Query down"
        assert expected[name] - EARLY <= first[name] <= expected[name] + LATE, \
            (name, first[name], expected[name])
    with pytest.raises((OSError, QueryError)):
        fleet.query("up")
