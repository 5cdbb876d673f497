"""``promtool test rules`` files that prove each SLO's alerts behave as the Workbook says.

For every SLO we synthesise series for a set of scenarios (a full outage, a 10x and a 2x burn, a
0.9x burn for three days, a short outage, recovery, no traffic, absent metrics), always after
enough good history to fill the longest alert window. The expected alerts at each checked
moment come from an independent model of the windows: plain sums of events per minute, not the
rules' PromQL. A moment is only checked where the model's answer does not change when the
windows shift by a minute either way, so the proof is exact where it asserts and never flaky.
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass, field
from itertools import product
from typing import Any

import rstr

from slo import conventions as names
from slo import durations
from slo.model import (
    Events,
    GaugeEvents,
    LatencyEvents,
    RatioEvents,
    ResolvedSlo,
    Tier,
    minutes_to_fire,
)
from slo.promql import Matcher, Selector
from slo.rules import alert_rules

REQUESTS_PER_MINUTE = 10000.0  # integer event counts keep promtool's float sums exact
BACKGROUND_BURN = 0.1  # good periods still spend 10% of the budget rate, as real services do


class ProofError(Exception):
    """The proofs for an SLO cannot be generated (e.g. no label values satisfy its selectors)."""


# --------------------------------------------------------------------------------------------
# Synthetic traffic: per-minute events, and what promtool is fed.


@dataclass
class Timeline:
    """Events per minute; minute k holds what happened between samples k-1 and k."""

    total: list[float] = field(default_factory=lambda: [0.0])
    bad: list[float] = field(default_factory=lambda: [0.0])
    present: list[bool] = field(default_factory=lambda: [True])

    @property
    def end(self) -> int:
        return len(self.total) - 1

    def add(self, minutes: int, error_ratio: float | None, rpm: float = REQUESTS_PER_MINUTE) -> int:
        """Append a phase; ``error_ratio=None`` means the series stop being scraped."""
        start = self.end
        for _ in range(minutes):
            if error_ratio is None:
                self.total.append(0.0)
                self.bad.append(0.0)
                self.present.append(False)
            else:
                self.total.append(rpm)
                self.bad.append(float(round(rpm * error_ratio)))
                self.present.append(True)
        return start


class Model:
    """The SLO's windows computed from per-minute sums (see the module docstring).

    Raw windows sum the minutes in the range; averaged windows sum the 5m base (itself a sum
    over 5 minutes) at every rule evaluation in the range, ``step`` minutes apart, as
    ``avg_over_time`` over the recorded base does.
    """

    def __init__(
        self,
        slo: ResolvedSlo,
        timeline: Timeline,
        gauge_values: list[float] | None,
        step: int = 1,
    ):
        self.slo = slo
        self.step = step
        self.gauge = gauge_values is not None
        if gauge_values is not None:  # a gauge: one sample per minute is one event
            total = [1.0 if p else 0.0 for p in timeline.present]
            present = timeline.present
            bad = [(1.0 - v) if p else 0.0 for v, p in zip(gauge_values, present, strict=True)]
        else:
            total, bad = timeline.total, timeline.bad
        self.end = timeline.end
        self.cum_total = _cumulative(total)
        self.cum_bad = _cumulative(bad)
        self.cum_present = _cumulative([1.0 if p else 0.0 for p in timeline.present])
        self._bases: dict[int, tuple[list[float], list[float], list[float]]] = {}

    def _sum(self, cum: list[float], t: int, width: int) -> float:
        """Sum of the ``width`` minutes ending at minute t."""
        t = min(t, self.end)
        if t < 0:
            return 0.0
        return cum[t + 1] - cum[max(t + 1 - width, 0)]

    def _raw(self, t: int, minutes: int) -> tuple[float, float] | None:
        """(bad, total) over the last ``minutes``, None when the range holds < 2 samples.

        A range selector holds the samples in [t - minutes, t]: ``minutes`` counter increments,
        or ``minutes + 1`` gauge samples.
        """
        if self._sum(self.cum_present, t, minutes + 1) < 2:
            return None
        width = minutes + 1 if self.gauge else minutes
        return self._sum(self.cum_bad, t, width), self._sum(self.cum_total, t, width)

    def _base(self, base: int) -> tuple[list[float], list[float], list[float]]:
        """Strided running sums of the recorded 5m base: bad, total and 'was recorded'."""
        if base not in self._bases:
            n = self.end + 1
            bad, total, seen = [0.0] * n, [0.0] * n, [0.0] * n
            for s in range(n):
                sample = self._raw(s, base)
                prev = s - self.step
                bad[s] = (bad[prev] if prev >= 0 else 0.0) + (sample[0] if sample else 0.0)
                total[s] = (total[prev] if prev >= 0 else 0.0) + (sample[1] if sample else 0.0)
                seen[s] = (seen[prev] if prev >= 0 else 0.0) + (1.0 if sample else 0.0)
            self._bases[base] = (bad, total, seen)
        return self._bases[base]

    def _averaged(self, t: int, minutes: int, base: int) -> tuple[float, float] | None:
        bad, total, seen = self._base(base)
        t = min(t, self.end)
        t -= t % self.step
        first = t - (minutes // self.step + 1) * self.step  # last evaluation before the range

        def upto(arr: list[float]) -> float:
            return arr[t] - (arr[first] if first >= 0 else 0.0)

        if upto(seen) == 0:
            return None
        return upto(bad), upto(total)

    def ratio(self, t: int, window_seconds: int, shift: int, base: int) -> float | None:
        minutes = window_seconds // 60 + shift
        if window_seconds <= names.RAW_WINDOW_MAX_SECONDS:
            sums = self._raw(t, minutes if window_seconds > 300 else base)
        else:
            sums = self._averaged(t, minutes, base)
        if sums is None or sums[1] <= 0:
            return None
        return sums[0] / sums[1]

    def events(self, t: int, window_seconds: int, shift: int) -> float:
        return self._sum(self.cum_total, t, window_seconds // 60 + shift)

    def tier_fires(self, tier: Tier, t: int, shift: int, base: int) -> bool:
        long = self.ratio(t, tier.long_seconds, shift, base)
        short = self.ratio(t, tier.short_seconds, shift, base)
        if long is None or short is None or long <= tier.threshold or short <= tier.threshold:
            return False
        guard = self.slo.alerting.min_events
        if guard and self.slo.events.counts_traffic:
            return self.events(t, tier.long_seconds, shift) >= guard
        return True

    def firing(self, alert: str, t: int, shift: int = 0, base: int = 5) -> bool:
        if alert == names.ALERT_ABSENT:
            wait = durations.parse(self.slo.alerting.absent_for) // 60
            return all(self._raw(s, base) is None for s in range(max(t - wait, 0), t + 1))
        severity = next(s for s, a in names.ALERT_BURN.items() if a == alert)
        return any(
            self.tier_fires(tier, t, shift, base)
            for tier in self.slo.tiers
            if tier.severity == severity
        )

    def robust(self, alert: str, t: int) -> bool | None:
        """The alert's state at minute t if it holds however the windows shift by a minute."""
        states = {
            self.firing(alert, t + dt, shift, base)
            for dt, shift, base in product((-1, 0, 1), (-1, 0, 1), (5,))
        }
        return states.pop() if len(states) == 1 else None


def _cumulative(values: list[float]) -> list[float]:
    out = [0.0]
    for v in values:
        out.append(out[-1] + v)
    return out


# --------------------------------------------------------------------------------------------
# Series in promtool's expanding notation.


def _counter_values(increments: list[float], present: list[bool]) -> str:
    """Cumulative counter samples, run-length encoded as ``start+stepxN`` segments."""
    parts: list[str] = []
    value = 0.0
    k = 0
    n = len(increments)
    while k < n:
        if not present[k]:
            run = 1
            while k + run < n and not present[k + run]:
                run += 1
            parts.append("_" if run == 1 else f"_x{run}")
            k += run
            continue
        step = increments[k + 1] if k + 1 < n and present[k + 1] else None
        run = 0
        while k + run + 1 < n and present[k + run + 1] and increments[k + run + 1] == step:
            run += 1
        start = value + (increments[k] if k > 0 else 0.0)
        parts.append(f"{_num(start)}+{_num(step or 0.0)}x{run}" if run else _num(start))
        value = start + (step or 0.0) * run
        k += run + 1
    return " ".join(parts)


def _gauge_values(values: list[float], present: list[bool]) -> str:
    parts: list[str] = []
    k = 0
    while k < len(values):
        run = 1
        while (
            k + run < len(values)
            and present[k + run] == present[k]
            and values[k + run] == values[k]
        ):
            run += 1
        token = _num(values[k]) if present[k] else "_"
        parts.append(token if run == 1 else f"{token}x{run - 1}" if present[k] else f"_x{run}")
        k += run
    return " ".join(parts)


def _num(value: float) -> str:
    text = format(round(value, 6), ".10g")
    return "0" if text == "-0" else text


def _negate(m: Matcher) -> Matcher:
    flip = {"=": "!=", "!=": "=", "=~": "!~", "!~": "=~"}
    return Matcher(m.name, flip[m.op], m.value)


def _satisfies(value: str, m: Matcher) -> bool:
    if m.op == "=":
        return value == m.value
    if m.op == "!=":
        return value != m.value
    matched = re.fullmatch(m.value, value) is not None
    return matched if m.op == "=~" else not matched


def labels_for(matchers: tuple[Matcher, ...] | list[Matcher]) -> dict[str, str]:
    """Concrete label values that satisfy every matcher (RE2 regexes read as Python ones)."""
    generator = rstr.Rstr(random.Random(7))
    by_name: dict[str, list[Matcher]] = {}
    for m in matchers:
        by_name.setdefault(m.name, []).append(m)
    labels = {}
    for name, constraints in sorted(by_name.items()):
        candidates = ["", "500", "200"]
        for m in constraints:
            if m.op == "=":
                candidates.append(m.value)
            elif m.op == "=~":
                candidates += [generator.xeger(m.value) for _ in range(20)]
        candidates += ["ok", "other", "x1"]
        value = next((c for c in candidates if all(_satisfies(c, m) for m in constraints)), None)
        if value is None:
            raise ProofError(f"no value of label {name!r} satisfies {constraints}")
        if value:
            labels[name] = value
    return labels


def _series_name(selector_metric: str, labels: dict[str, str]) -> str:
    inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    return f"{selector_metric}{{{inner}}}" if inner else selector_metric


def input_series(
    events: Events,
    timeline: Timeline,
    gauge_values: list[float] | None,
    without_bad_series: bool = False,
) -> list[dict[str, str]]:
    """The scraped series that produce ``timeline`` through the SLO's selectors."""
    present = timeline.present
    if isinstance(events, GaugeEvents):
        assert gauge_values is not None
        labels = labels_for(events.total_selector.matchers)
        return [
            {
                "series": _series_name(events.total_selector.metric, labels),
                "values": _gauge_values(gauge_values, present),
            }
        ]
    good = [t - b for t, b in zip(timeline.total, timeline.bad, strict=True)]
    if isinstance(events, LatencyEvents):
        assert events.good_selector is not None
        bucket = events.good_selector
        labels = labels_for([m for m in bucket.matchers if m.name != "le"])
        le = format(events.threshold, "g")
        return [
            {
                "series": _series_name(events.total_selector.metric, labels),
                "values": _counter_values(timeline.total, present),
            },
            {
                "series": _series_name(bucket.metric, {**labels, "le": le}),
                "values": _counter_values(good, present),
            },
            {
                "series": _series_name(bucket.metric, {**labels, "le": "+Inf"}),
                "values": _counter_values(timeline.total, present),
            },
        ]
    assert isinstance(events, RatioEvents), "native histograms have no promtool series here"
    total = events.total_selector
    if events.bad_selector is not None:
        picked, picked_values, other_values = events.bad_selector, timeline.bad, good
    else:
        assert events.good_selector is not None
        picked, picked_values, other_values = events.good_selector, good, timeline.bad
    if picked.metric != total.metric:
        return [
            {
                "series": _series_name(total.metric, labels_for(total.matchers)),
                "values": _counter_values(timeline.total, present),
            },
            {
                "series": _series_name(picked.metric, labels_for(picked.matchers)),
                "values": _counter_values(picked_values, present),
            },
        ]
    series = [
        {
            "series": _series_name(total.metric, labels_for(total.matchers + picked.matchers)),
            "values": _counter_values(picked_values, present),
        },
        {
            "series": _series_name(total.metric, _labels_outside(total, picked)),
            "values": _counter_values(other_values, present),
        },
    ]
    if without_bad_series:  # only the bad-events series may be missing: drop it
        assert events.bad_selector is not None
        series = series[1:]
    return series


def _labels_outside(total: Selector, picked: Selector) -> dict[str, str]:
    """Labels of a series counted by ``total`` but not by ``picked``."""
    for m in picked.matchers:
        if m in total.matchers:
            continue
        try:
            labels = labels_for((*total.matchers, _negate(m)))
        except ProofError:
            continue
        if not all(_satisfies(labels.get(x.name, ""), x) for x in picked.matchers):
            return labels
    raise ProofError(f"no series can match {total.render()} without matching {picked.render()}")


# --------------------------------------------------------------------------------------------
# Scenarios.


@dataclass
class Check:
    minute: int
    alert: str
    why: str


@dataclass
class Scenario:
    name: str
    timeline: Timeline
    checks: list[Check]
    step: int = 1  # rule evaluation interval of the test file, in minutes
    gauge_values: list[float] | None = None
    without_bad_series: bool = False
    expr_checks: list[tuple[int, str, float | None]] = field(default_factory=list)


def _history_minutes(slo: ResolvedSlo, severity: str | None = None) -> int:
    """Good history that fills the longest window of the tiers a scenario asserts on."""
    longs = [t.long_seconds for t in slo.tiers if severity in (None, t.severity)]
    return max([*longs, 3600]) // 60


def _good(slo: ResolvedSlo) -> float:
    return BACKGROUND_BURN * slo.budget


def _page_minutes(
    slo: ResolvedSlo, error_ratio: float, severity: str = "page", background: float = 0.0
) -> float:
    """Earliest time to fire of a severity's tiers, both windows considered."""
    times = []
    for tier in slo.tiers:
        if tier.severity != severity:
            continue
        long = minutes_to_fire(tier, error_ratio, background)
        short = tier.threshold / error_ratio * tier.short_seconds / 60 if error_ratio else math.inf
        times.append(max(long, short))
    return min(times, default=math.inf)


def scenarios(slo: ResolvedSlo) -> list[Scenario]:
    history = _history_minutes(slo, "page")
    long_history = _history_minutes(slo)
    found: list[Scenario] = []
    severities = {t.severity for t in slo.tiers}
    page, ticket = names.ALERT_BURN["page"], names.ALERT_BURN["ticket"]

    if "page" in severities:
        fire = _page_minutes(slo, 1.0)
        if math.isfinite(fire):
            tl = Timeline()
            tl.add(history, _good(slo))
            start = tl.add(math.ceil(fire) + 15, 1.0)
            recovered = tl.add(60, _good(slo))
            due = start + max(2, math.ceil(fire) + 1)
            found.append(
                Scenario(
                    "a full outage pages within the Workbook's time "
                    f"({fire * 60:.0f}s at this objective) and clears after recovery",
                    tl,
                    [
                        Check(start - 1, page, "nothing before the outage"),
                        Check(due, page, f"paging {due - start} min into the outage"),
                        Check(recovered + 25, page, "still paging while the 30m window is bad"),
                        Check(recovered + 35, page, "cleared once the short windows are clean"),
                    ],
                )
            )
        found += _short_outage(slo, history)
        burn = 10.0
        if burn * slo.budget <= 1:
            tl = Timeline()
            tl.add(history, _good(slo))
            workbook = _page_minutes(slo, burn * slo.budget)
            predicted = _page_minutes(slo, burn * slo.budget, background=_good(slo))
            if math.isfinite(predicted):
                start = tl.add(math.ceil(predicted) + 30, burn * slo.budget)
                found.append(
                    Scenario(
                        f"a 10x burn pages close to the Workbook's {workbook:.0f} min "
                        f"({predicted:.0f} min after a history at 0.1x)",
                        tl,
                        [
                            Check(start + math.floor(predicted) - 10, page, "not yet paging"),
                            Check(start + math.ceil(predicted) + 10, page, "paging"),
                        ],
                    )
                )
    if "ticket" in severities and 2 * slo.budget <= 1:
        tl = Timeline()
        tl.add(long_history, _good(slo))
        predicted = _page_minutes(slo, 2 * slo.budget, "ticket", background=_good(slo))
        start = tl.add(math.ceil(predicted) + 120, 2 * slo.budget)
        checks = [Check(start + hours * 60, page, "a 2x burn never pages") for hours in (1, 6, 24)]
        checks += [
            Check(start + math.floor(predicted) - 60, ticket, "no ticket yet"),
            Check(start + math.ceil(predicted) + 60, ticket, "a 2x burn opens a ticket"),
            Check(tl.end, page, "still no page at the end"),
        ]
        found.append(
            Scenario(f"a 2x burn opens a ticket after {predicted / 60:.1f} h", tl, checks, step=5)
        )
    tl = Timeline()
    tl.add(long_history, _good(slo))
    start = tl.add(3 * 1440, 0.9 * slo.budget)
    found.append(
        Scenario(
            "a 0.9x burn for three days raises nothing",
            tl,
            [
                Check(start + day * 1440, alert, f"quiet after {day} day(s)")
                for day in (1, 2, 3)
                for alert in (page, ticket, names.ALERT_ABSENT)
            ],
            step=5,
        )
    )
    if slo.events.counts_traffic:
        tl = Timeline()
        tl.add(history, _good(slo))
        start = tl.add(180, _good(slo), rpm=0.0)
        found.append(
            Scenario(
                "zero traffic is not an outage: no alert, and no SLI sample instead of NaN",
                tl,
                [
                    Check(start + m, a, "quiet")
                    for m in (30, 179)
                    for a in (page, ticket, names.ALERT_ABSENT)
                ],
                expr_checks=[
                    (start + 30, names.error_ratio(names.BASE_WINDOW), None),
                    (start + 120, names.error_ratio(_longest_raw_window(slo)), None),
                ],
            )
        )
    tl = Timeline()
    tl.add(history, _good(slo))
    stop = tl.add(60, None)
    wait = durations.parse(slo.alerting.absent_for) // 60
    found.append(
        Scenario(
            "absent metrics raise SLOMetricsAbsent and nothing else",
            tl,
            [
                Check(stop + 2, names.ALERT_ABSENT, "not before the series go stale"),
                Check(stop + wait + 10, names.ALERT_ABSENT, "absent after the wait"),
                Check(stop + wait + 10, page, "no page for missing data"),
                Check(stop + wait + 10, ticket, "no ticket for missing data"),
            ],
        )
    )
    if isinstance(slo.events, RatioEvents) and slo.events.bad_selector is not None:
        tl = Timeline()
        tl.add(history, 0.0)
        found.append(
            Scenario(
                "a service that never failed has an SLI of 0, not a gap",
                tl,
                [],
                expr_checks=[
                    (history, names.error_ratio(names.BASE_WINDOW), 0.0),
                    (history, names.error_ratio(_longest_raw_window(slo)), 0.0),
                    (history, names.error_ratio(slo.windows()[-1]), 0.0),
                    (history, names.ERROR_RATIO_PERIOD, 0.0),
                ],
            )
        )
        found[-1].without_bad_series = True
    if isinstance(slo.events, GaugeEvents):
        for sc in found:
            sc.gauge_values = _gauge_pattern(sc.timeline)
    return found


def _longest_raw_window(slo: ResolvedSlo) -> str:
    raw = [w for w in slo.windows() if durations.parse(w) <= names.RAW_WINDOW_MAX_SECONDS]
    return raw[-1]


def _short_outage(slo: ResolvedSlo, history: int) -> list[Scenario]:
    """An outage that only the 1h tier catches, to show that tier clears in about 5 minutes."""
    page_tiers = sorted(
        (t for t in slo.tiers if t.severity == "page"), key=lambda t: t.long_seconds
    )
    if len(page_tiers) < 2:
        return []
    fast = page_tiers[0]
    page = names.ALERT_BURN["page"]
    for error_ratio in (1.0, 0.5, 0.2, 0.1, 0.05):
        for minutes in range(1, fast.long_seconds // 60):
            tl = Timeline()
            tl.add(history, _good(slo))
            start = tl.add(minutes, error_ratio)
            recovered = tl.add(120, _good(slo))
            model = Model(slo, tl, None)
            fast_fired = model.tier_fires(fast, recovered, 0, 5)
            slow_quiet = all(
                not model.tier_fires(t, m, s, b)
                for t in page_tiers[1:]
                for m in range(start, tl.end + 1)
                for s, b in product((-1, 0, 1), (5,))
            )
            if fast_fired and slow_quiet and model.robust(page, recovered) is True:
                clear = recovered + fast.short_seconds // 60 + 2
                return [
                    Scenario(
                        f"a {minutes} min outage at {error_ratio:.0%} errors pages on the "
                        f"{fast.long_window} tier only and clears within its "
                        f"{fast.short_window} short window",
                        tl,
                        [
                            Check(recovered, page, "paging when the outage ends"),
                            Check(clear, page, f"cleared {clear - recovered} min after recovery"),
                        ],
                    )
                ]
            if not slow_quiet:
                break
    return []


def _gauge_pattern(timeline: Timeline) -> list[float]:
    """0/1 samples whose share of zeros follows the timeline's error ratio, evenly spread."""
    values, debt = [], 0.0
    for total, bad in zip(timeline.total, timeline.bad, strict=True):
        ratio = bad / total if total else 0.0
        debt += ratio
        if debt >= 1.0 - 1e-9:
            values.append(0.0)
            debt -= 1.0
        else:
            values.append(1.0)
    return values


# --------------------------------------------------------------------------------------------
# Rendering the test file.


def _expected(slo: ResolvedSlo, alert: str) -> list[dict[str, Any]]:
    rule = next(r for r in alert_rules(slo) if r["alert"] == alert)
    return [{"exp_labels": dict(rule["labels"]), "exp_annotations": dict(rule["annotations"])}]


def test_group(slo: ResolvedSlo, scenario: Scenario) -> dict[str, Any]:
    model = Model(slo, scenario.timeline, scenario.gauge_values, scenario.step)
    alert_tests = []
    for check in scenario.checks:
        minute = _robust_minute(model, check)
        state = model.robust(check.alert, minute)
        alert_tests.append(
            {
                "eval_time": f"{minute}m",
                "alertname": check.alert,
                "exp_alerts": _expected(slo, check.alert) if state else [],
            }
        )
    group: dict[str, Any] = {
        "name": f"{slo.service.name}/{slo.slo.name}: {scenario.name}",
        "interval": "1m",
        "input_series": input_series(
            slo.events, scenario.timeline, scenario.gauge_values, scenario.without_bad_series
        ),
        "alert_rule_test": alert_tests,
    }
    if scenario.expr_checks:
        group["promql_expr_test"] = [
            {
                "eval_time": f"{minute}m",
                "expr": slo.selector_of(record),
                "exp_samples": []
                if value is None
                else [{"labels": _series_name(record, slo.labels), "value": value}],
            }
            for minute, record, value in scenario.expr_checks
        ]
    if not alert_tests:
        del group["alert_rule_test"]
    return group


def _robust_minute(model: Model, check: Check) -> int:
    """The checked minute, moved by at most 3 evaluations to where the answer is certain."""
    aligned = check.minute - check.minute % model.step
    for offset in (0, 1, -1, 2, -2, 3, -3):
        minute = aligned + offset * model.step
        if model.robust(check.alert, minute) is not None:
            return minute
    raise ProofError(
        f"{model.slo.service.name}/{model.slo.slo.name}: the check '{check.why}' at minute "
        f"{check.minute} sits on an alert boundary; the scenario needs another moment"
    )


def proof_files(slo: ResolvedSlo, rule_file: str) -> dict[int, dict[str, Any]]:
    """promtool test files for one SLO by evaluation interval in minutes.

    Scenarios about paging run at a 1m evaluation interval for minute precision; the
    multi-day ticket scenarios run at 5m, which keeps promtool's work small.
    """
    if slo.events.native:
        raise ProofError(
            f"{slo.service.name}/{slo.slo.name}: native histograms cannot be written in "
            "promtool's series notation; this SLO has no generated proof"
        )
    files: dict[int, dict[str, Any]] = {}
    for scenario in scenarios(slo):
        doc = files.setdefault(
            scenario.step,
            {"rule_files": [rule_file], "evaluation_interval": f"{scenario.step}m", "tests": []},
        )
        doc["tests"].append(test_group(slo, scenario))
    return files
