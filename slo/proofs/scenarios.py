"""The scenarios every SLO is proven on: outages, burns, recovery, no traffic, absent metrics."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from itertools import product

from slo import conventions as names
from slo import durations
from slo.model import (
    ResolvedSlo,
    SeriesNotation,
    minutes_to_fire,
)
from slo.proofs.oracle import BACKGROUND_BURN, Model, ProofError, Timeline


@dataclass
class Check:
    """What the scenario says of one alert at one minute; the oracle must agree."""

    minute: int
    alert: str
    why: str
    firing: bool


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
    """The scenarios ``slo`` is proven on, in the order they are written out."""
    history = _history_minutes(slo, "page")
    long_history = _history_minutes(slo)
    found: list[Scenario] = []
    severities = {t.severity for t in slo.tiers}
    if "page" in severities:
        found += _full_outage(slo, history)
        found += _short_outage(slo, history)
        found += _tenfold_burn(slo, history)
    if "ticket" in severities and 2 * slo.budget <= 1:
        found += _ticket(slo, long_history)
    found.append(_burn_within_budget(slo, long_history))
    if slo.events.counts_traffic:
        found.append(_zero_traffic(slo, history))
    found.append(_absent_metrics(slo, history))
    if slo.events.bad_series_optional:
        found.append(_never_failed(slo, history))
    if slo.events.promtool_series is SeriesNotation.GAUGE:
        for sc in found:
            sc.gauge_values = _gauge_pattern(sc.timeline)
    return found


def _full_outage(slo: ResolvedSlo, history: int) -> list[Scenario]:
    """A full outage pages within the Workbook's time and clears after recovery."""
    page = names.ALERT_BURN["page"]
    fire = _page_minutes(slo, 1.0)
    if not math.isfinite(fire):
        return []
    tl = Timeline()
    tl.add(history, _good(slo))
    start = tl.add(math.ceil(fire) + 15, 1.0)
    recovered = tl.add(60, _good(slo))
    due = start + max(2, math.ceil(fire) + 1)
    checks = [
        Check(start - 1, page, "nothing before the outage", False),
        Check(due, page, f"paging {due - start} min into the outage", True),
        *_after_recovery(slo, tl, recovered),
    ]
    return [
        Scenario(
            "a full outage pages within the Workbook's time "
            f"({fire * 60:.0f}s at this objective) and clears after recovery",
            tl,
            checks,
        )
    ]


def _tenfold_burn(slo: ResolvedSlo, history: int) -> list[Scenario]:
    """A 10x burn pages close to the Workbook's time, given a history at the background burn."""
    page = names.ALERT_BURN["page"]
    burn = 10.0
    if burn * slo.budget > 1:
        return []
    tl = Timeline()
    tl.add(history, _good(slo))
    workbook = _page_minutes(slo, burn * slo.budget)
    predicted = _page_minutes(slo, burn * slo.budget, background=_good(slo))
    if not math.isfinite(predicted):
        return []
    start = tl.add(math.ceil(predicted) + 30, burn * slo.budget)
    return [
        Scenario(
            f"a 10x burn pages close to the Workbook's {workbook:.0f} min "
            f"({predicted:.0f} min after a history at 0.1x)",
            tl,
            [
                Check(start + math.floor(predicted) - 10, page, "not yet paging", False),
                Check(start + math.ceil(predicted) + 10, page, "paging", True),
            ],
        )
    ]


def _burn_within_budget(slo: ResolvedSlo, history: int) -> Scenario:
    """A 0.9x burn for three days raises no alert."""
    page, ticket = names.ALERT_BURN["page"], names.ALERT_BURN["ticket"]
    tl = Timeline()
    tl.add(history, _good(slo))
    start = tl.add(3 * 1440, 0.9 * slo.budget)
    return Scenario(
        "a 0.9x burn for three days raises nothing",
        tl,
        [
            Check(start + day * 1440, alert, f"quiet after {day} day(s)", False)
            for day in (1, 2, 3)
            for alert in (page, ticket, names.ALERT_ABSENT)
        ],
        step=5,
    )


def _zero_traffic(slo: ResolvedSlo, history: int) -> Scenario:
    """Three hours without requests: no alert, and no SLI sample rather than NaN."""
    page, ticket = names.ALERT_BURN["page"], names.ALERT_BURN["ticket"]
    tl = Timeline()
    tl.add(history, _good(slo))
    start = tl.add(180, _good(slo), rpm=0.0)
    return Scenario(
        "zero traffic is not an outage: no alert, and no SLI sample instead of NaN",
        tl,
        [
            Check(start + m, a, "quiet", False)
            for m in (30, 179)
            for a in (page, ticket, names.ALERT_ABSENT)
        ],
        expr_checks=[
            (start + 30, names.error_ratio(names.BASE_WINDOW), None),
            (start + 120, names.error_ratio(_longest_raw_window(slo)), None),
        ],
    )


def _absent_metrics(slo: ResolvedSlo, history: int) -> Scenario:
    """The series stop: SLOMetricsAbsent fires after ``absent_for``, the burn alerts do not."""
    page, ticket = names.ALERT_BURN["page"], names.ALERT_BURN["ticket"]
    tl = Timeline()
    tl.add(history, _good(slo))
    stop = tl.add(60, None)
    wait = durations.parse(slo.alerting.absent_for) // 60
    return Scenario(
        "absent metrics raise SLOMetricsAbsent and nothing else",
        tl,
        [
            Check(stop + 2, names.ALERT_ABSENT, "not before the series go stale", False),
            Check(stop + wait + 10, names.ALERT_ABSENT, "absent after the wait", True),
            Check(stop + wait + 10, page, "no page for missing data", False),
            Check(stop + wait + 10, ticket, "no ticket for missing data", False),
        ],
    )


def _never_failed(slo: ResolvedSlo, history: int) -> Scenario:
    """No bad-events series at all: every error ratio is 0, not a gap."""
    tl = Timeline()
    tl.add(history, 0.0)
    return Scenario(
        "a service that never failed has an SLI of 0, not a gap",
        tl,
        [],
        without_bad_series=True,
        expr_checks=[
            (history, names.error_ratio(names.BASE_WINDOW), 0.0),
            (history, names.error_ratio(_longest_raw_window(slo)), 0.0),
            (history, names.error_ratio(slo.windows()[-1]), 0.0),
            (history, names.ERROR_RATIO_PERIOD, 0.0),
        ],
    )


def _after_recovery(slo: ResolvedSlo, tl: Timeline, recovered: int) -> list[Check]:
    """The page holds while a short window still sees the outage, then clears: the last
    minute the oracle says it fires and the first it says it is quiet."""
    page = names.ALERT_BURN["page"]
    values = _gauge_pattern(tl) if slo.events.promtool_series is SeriesNotation.GAUGE else None
    model = Model(slo, tl, values)
    states = [(m, model.robust(page, m)) for m in range(recovered, tl.end + 1)]
    cleared = next((m for m, state in states if state is False), None)
    if cleared is None:
        raise ProofError(f"{slo.service.name}/{slo.slo.name}: the page never clears after recovery")
    held = [m for m, state in states if m < cleared and state is True]
    checks = []
    if held and held[-1] > recovered + 2:
        checks.append(
            Check(held[-1] - 2, page, "still paging while a short window holds the outage", True)
        )
    after = cleared + 2 - recovered
    return [*checks, Check(cleared + 2, page, f"cleared {after} min after recovery", False)]


def _ticket(slo: ResolvedSlo, history: int) -> list[Scenario]:
    """A 2x burn: no page, and a ticket once the oracle says so on every engine. The Workbook's
    time is where the search starts; a gauge's coarse samples can make it later."""
    page, ticket = names.ALERT_BURN["page"], names.ALERT_BURN["ticket"]
    predicted = _page_minutes(slo, 2 * slo.budget, "ticket", background=_good(slo))
    step = 5

    def timeline(minutes: int) -> tuple[Timeline, int, Model]:
        tl = Timeline()
        tl.add(history, _good(slo))
        start = tl.add(minutes, 2 * slo.budget)
        values = _gauge_pattern(tl) if slo.events.promtool_series is SeriesNotation.GAUGE else None
        return tl, start, Model(slo, tl, values, step)

    longest = max(t.long_seconds for t in slo.tiers if t.severity == "ticket") // 60
    tl, start, model = timeline(longest)
    first = start + math.floor(predicted) - 60
    first -= first % step
    states = {m: model.robust(ticket, m) for m in range(first, tl.end + 1, step)}
    opens = next((m for m, state in states.items() if state is True), None)
    if opens is None:
        return []
    quiet = max((m for m, state in states.items() if m < opens and state is False), default=None)
    tl, start, model = timeline(opens - start + 60)
    checks = [
        Check(start + hours * 60, page, "a 2x burn never pages", False) for hours in (1, 6, 24)
    ]
    if quiet is not None:
        checks.append(Check(quiet, ticket, "no ticket yet", False))
    checks += [
        Check(opens, ticket, "a 2x burn opens a ticket", True),
        Check(tl.end, page, "still no page at the end", False),
    ]
    hours = (opens - start) / 60
    return [Scenario(f"a 2x burn opens a ticket after {hours:.1f} h", tl, checks, step=step)]


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
                            Check(recovered, page, "paging when the outage ends", True),
                            Check(
                                clear,
                                page,
                                f"cleared {clear - recovered} min after recovery",
                                False,
                            ),
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
