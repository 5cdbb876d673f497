"""The resolved form of a catalogue SLO: selectors merged, windows in seconds, tiers with factors.

Renderers (rules, promtool proofs, canary gates, dashboards) take these, never raw catalogue
dicts, so the arithmetic of budgets and factors lives in one place.
"""

from __future__ import annotations

import decimal
import enum
import math
from dataclasses import dataclass, field, fields, replace
from functools import cache, cached_property
from pathlib import Path
from typing import ClassVar

import yaml

from slo import conventions as names
from slo import durations, promql
from slo.spec import (
    Alerting,
    AvailabilityIndicator,
    BurnRateTier,
    Catalogue,
    Fleet,
    LatencyIndicator,
    QueryIndicator,
    RatioIndicator,
    Service,
    Slo,
)

BURN_RATES_FILE = Path(__file__).with_name("burn_rates.yaml")


@cache
def default_tiers() -> tuple[BurnRateTier, ...]:
    data = yaml.safe_load(BURN_RATES_FILE.read_text())
    return tuple(BurnRateTier.model_validate(row) for row in data["tiers"])


def number(value: float) -> str:
    """A float as PromQL text without binary noise: 1 - 0.999 -> ``0.001``."""
    text = format(round(value, 12), ".12g")
    return text if "e" not in text else format(value, ".15f").rstrip("0")


@dataclass(frozen=True)
class Tier:
    severity: str
    long_window: str
    short_window: str
    long_seconds: int
    short_seconds: int
    factor: float
    threshold: float  # error ratio at which both windows must be to fire: factor x budget


def _sum_rate(selector: promql.Selector, window: str) -> str:
    return f"sum(rate({selector.render()}[{window}]))"


def _sum_last(selector: promql.Selector, lookback: str, by: tuple[str, ...] = ()) -> str:
    grouping = f" by ({', '.join(by)}) " if by else ""
    return f"sum{grouping}(last_over_time({selector.render()}[{lookback}]))"


def _rate_by(selector: promql.Selector, interval: str, by: tuple[str, ...] = ()) -> str:
    grouping = f" by ({', '.join(by)})" if by else ""
    return f"sum{grouping} (rate({selector.render()}[{interval}]))"


def _increments(selector: promql.Selector, step: str, memory: str, keep: str,
                value: str = "{}", settle: str = "") -> str:
    """Per series, what its counter gained over one ``step``, exactly: the new sample minus the
    last one at least ``step`` before it (within ``memory``), or the whole new sample where the
    counter restarted from zero (a reset, or a series that is new or came back after a
    restart). ``value`` maps a sample to the counted number (``{}``: the sample itself);
    ``keep`` filters series (``and on(...) (...)``); both samples are read ``settle`` earlier,
    so that a scrape still being written when the rule runs is counted at the next step."""
    sel = selector.render()
    back = durations.parse(step) + (durations.parse(settle) if settle else 0)
    now = value.format(f"{sel} offset {settle}" if settle else sel)
    before = value.format(f"last_over_time({sel}[{memory}] offset "
                          f"{durations.format_seconds(back)})")
    increments = f"(({now} - {before}) >= 0 or {now})"
    return f"({increments} {keep})" if keep else increments


def _sum_increments(selector: promql.Selector, step: str, memory: str, by: tuple[str, ...],
                    keep: str, value: str = "{}", settle: str = "") -> str:
    inc = _increments(selector, step, memory, keep, value, settle)
    return f"sum by ({', '.join(by)}) {inc}"


def _none_as_zero(expr: str, like: str, by: tuple[str, ...]) -> str:
    """``expr``, or 0 where it has no series: per group of ``like`` when grouped."""
    return f"({expr} or 0 * {like})" if by else f"({expr} or vector(0))"


class SeriesNotation(enum.Enum):
    """How the promtool proofs write a kind's scraped series (``slo/proofs/notation.py``)."""

    COUNTERS = "counters"  # a total and a bad or good counter
    HISTOGRAM = "histogram"  # _count and two _bucket series
    GAUGE = "gauge"  # 0/1 samples


@dataclass(frozen=True)
class Events:
    """One SLI kind: where its events are and how PromQL counts all of them and the bad ones.

    ``total``/``bad`` are per-second rates over a window, summed over the service's series;
    ``counts`` are cumulative counts since the series began (a canary's whole life). ``bad`` may
    be empty when no bad event was ever counted (a 5xx series that does not exist); callers add
    ``or vector(0)``. Adding an SLI kind means a catalogue model and one subclass here.
    """

    total_selector: promql.Selector

    is_latency: ClassVar[bool] = False
    # How the promtool proofs write its scraped series; None: promtool's series notation cannot
    # write them (native histograms, arbitrary expressions).
    promtool_series: ClassVar[SeriesNotation | None] = SeriesNotation.COUNTERS
    # Its PromQL can be split per pod template hash (the canary-vs-stable dashboard panels).
    per_pod_template: ClassVar[bool] = True
    threshold: float = 0.0

    @property
    def counts_traffic(self) -> bool:
        """Each request is an event: zero traffic is meaningful and the minimum-traffic guard
        applies."""
        return True

    @property
    def can_gate(self) -> bool:
        """Bad and total events of the canary's pods can be counted, so a canary can be
        judged."""
        return True

    @property
    def bad_series_optional(self) -> bool:
        """The bad events are a series of their own, absent until the first bad event."""
        return False

    def total(self, window: str) -> str:
        return _sum_rate(self.total_selector, window)

    def bad(self, window: str) -> str:
        raise NotImplementedError

    def counts(self, lookback: str, by: tuple[str, ...] = ()) -> tuple[str, str]:
        """(all, bad) events counted by series that existed in the last ``lookback``, summed,
        or summed ``by`` labels (one pair per pod template hash, say).

        Summing each series' last value counts every event exactly once, without the
        extrapolation of ``increase()``, for series that start at zero (a new pod's counters).
        """
        raise NotImplementedError

    def step_counts(
        self, step: str, memory: str, by: tuple[str, ...], keep: str = "", settle: str = ""
    ) -> tuple[str, str] | None:
        """(all, bad) events per ``by`` group over one ``step``, counted exactly from the
        counters across restarts, lazily created and stale series (see ``_increments``); None
        where the kind's expressions cannot be split by label. ``keep`` filters series."""
        return None

    def with_matchers(self, extra: tuple[promql.Matcher, ...]) -> Events:
        """The same events restricted by ``extra`` (e.g. one pod-template hash)."""
        changes = {
            f.name: getattr(self, f.name).with_matchers(extra)
            for f in fields(self)
            if isinstance(getattr(self, f.name), promql.Selector)
        }
        return replace(self, **changes)

    def source_selectors(self) -> list[promql.Selector]:
        found = [getattr(self, f.name) for f in fields(self)]
        return [s for s in found if isinstance(s, promql.Selector)]

    def describe(self) -> str:
        raise NotImplementedError

    def good_events_name(self) -> str:
        return "success rate"

    def canary_sli(self, label: str, interval: str) -> str:
        """The share of good events per value of ``label`` (the pod template hash), from the
        raw series, with ``rate()`` over ``interval``."""
        raise NotImplementedError

    def window_queries(self) -> dict[str, str]:
        """All and bad events as PromQL with ``{{.window}}`` where the range goes (what
        OpenSLO's ratioMetric and Sloth's events SLIs hold)."""
        return {"total": self.total(promql.WINDOW), "bad": self.bad(promql.WINDOW)}

    def latency_quantile(self, quantile: str, by: tuple[str, ...], interval: str) -> str:
        """The objective's latency quantile of the raw histogram, per ``by``."""
        raise ValueError(f"{self.describe()} is not a latency SLI")


@dataclass(frozen=True)
class RatioEvents(Events):
    """Requests and the bad (or the good) ones among them, as counters."""

    bad_selector: promql.Selector | None = None
    good_selector: promql.Selector | None = None

    def __post_init__(self) -> None:
        if (self.bad_selector is None) == (self.good_selector is None):
            raise ValueError("a ratio needs exactly one of a bad and a good selector")

    def bad(self, window: str) -> str:
        if self.bad_selector is not None:
            return _sum_rate(self.bad_selector, window)
        assert self.good_selector is not None
        good = _sum_rate(self.good_selector, window)
        return f"{self.total(window)} - ({good} or vector(0))"

    def counts(self, lookback: str, by: tuple[str, ...] = ()) -> tuple[str, str]:
        total = _sum_last(self.total_selector, lookback, by)
        if self.bad_selector is not None:
            return total, _none_as_zero(_sum_last(self.bad_selector, lookback, by), total, by)
        assert self.good_selector is not None
        good = _none_as_zero(_sum_last(self.good_selector, lookback, by), total, by)
        return total, f"({total} - {good})"

    @property
    def bad_series_optional(self) -> bool:
        return self.bad_selector is not None

    def step_counts(
        self, step: str, memory: str, by: tuple[str, ...], keep: str = "", settle: str = ""
    ) -> tuple[str, str] | None:
        total = _sum_increments(self.total_selector, step, memory, by, keep, settle=settle)
        if self.bad_selector is not None:
            bad = _sum_increments(self.bad_selector, step, memory, by, keep, settle=settle)
            return total, _none_as_zero(bad, total, by)
        assert self.good_selector is not None
        good = _sum_increments(self.good_selector, step, memory, by, keep, settle=settle)
        return total, f"({total} - {_none_as_zero(good, total, by)})"

    def window_queries(self) -> dict[str, str]:
        if self.good_selector is None:
            return super().window_queries()
        return {"total": self.total(promql.WINDOW),
                "good": _sum_rate(self.good_selector, promql.WINDOW)}

    def describe(self) -> str:
        word = "bad" if self.bad_selector else "good"
        picked = self.bad_selector or self.good_selector
        assert picked is not None
        return f"{word} `{picked.render()}` of `{self.total_selector.render()}`"

    def canary_sli(self, label: str, interval: str) -> str:
        total = _rate_by(self.total_selector, interval, (label,))
        if self.good_selector is not None:
            good = _rate_by(self.good_selector, interval, (label,))
            return f"({good} or 0 * {total}) / ({total} > 0)"
        assert self.bad_selector is not None
        bad = _rate_by(self.bad_selector, interval, (label,))
        return f"1 - ({bad} or 0 * {total}) / ({total} > 0)"


@dataclass(frozen=True)
class LatencyEvents(RatioEvents):
    """A classic histogram: requests are ``_count``, good ones the ``le`` bucket at threshold."""

    is_latency: ClassVar[bool] = True
    promtool_series: ClassVar[SeriesNotation | None] = SeriesNotation.HISTOGRAM

    def describe(self) -> str:
        return f"latency under {self.threshold:g}s (`{self.total_selector.metric}`)"

    def latency_quantile(self, quantile: str, by: tuple[str, ...], interval: str) -> str:
        assert self.good_selector is not None
        good = self.good_selector
        buckets = promql.Selector(good.metric, tuple(m for m in good.matchers if m.name != "le"))
        return f"histogram_quantile({quantile}, {_rate_by(buckets, interval, ('le', *by))})"

    def good_events_name(self) -> str:
        return f"requests under {number(self.threshold)}s"


@dataclass(frozen=True)
class NativeLatencyEvents(Events):
    """A native histogram: counts and the share above the threshold come from the histogram."""

    is_latency: ClassVar[bool] = True
    promtool_series: ClassVar[SeriesNotation | None] = None

    def _slow(self, histogram: str) -> str:
        return (
            f"histogram_count({histogram}) * "
            f"(1 - histogram_fraction(0, {number(self.threshold)}, {histogram}))"
        )

    def total(self, window: str) -> str:
        return f"histogram_count({_sum_rate(self.total_selector, window)})"

    def bad(self, window: str) -> str:
        return self._slow(_sum_rate(self.total_selector, window))

    def counts(self, lookback: str, by: tuple[str, ...] = ()) -> tuple[str, str]:
        histogram = _sum_last(self.total_selector, lookback, by)
        return f"histogram_count({histogram})", self._slow(histogram)

    def step_counts(
        self, step: str, memory: str, by: tuple[str, ...], keep: str = "", settle: str = ""
    ) -> tuple[str, str] | None:
        count = "histogram_count({})"
        total = _sum_increments(self.total_selector, step, memory, by, keep, count, settle)
        slow = _sum_increments(self.total_selector, step, memory, by, keep,
                               self._slow("{}").replace("{}", "{0}"), settle)
        return total, slow

    def describe(self) -> str:
        return f"latency under {self.threshold:g}s (native `{self.total_selector.metric}`)"

    def canary_sli(self, label: str, interval: str) -> str:
        total = _rate_by(self.total_selector, interval, (label,))
        return f"histogram_fraction(0, {number(self.threshold)}, {total})"

    def latency_quantile(self, quantile: str, by: tuple[str, ...], interval: str) -> str:
        return f"histogram_quantile({quantile}, {_rate_by(self.total_selector, interval, by)})"

    def good_events_name(self) -> str:
        return f"requests under {number(self.threshold)}s"


@dataclass(frozen=True)
class GaugeEvents(Events):
    """A 0/1 gauge such as ``up``: each sample is an event, a 0 is a bad one."""

    promtool_series: ClassVar[SeriesNotation | None] = SeriesNotation.GAUGE

    @property
    def counts_traffic(self) -> bool:
        return False

    @property
    def can_gate(self) -> bool:
        return False  # a pod's `up` says nothing about the release it runs

    def total(self, window: str) -> str:
        sel = self.total_selector.render()
        return f"sum(count_over_time({sel}[{window}])) / {durations.parse(window)}"

    def bad(self, window: str) -> str:
        sel = self.total_selector.render()
        seconds = durations.parse(window)
        return (
            f"(sum(count_over_time({sel}[{window}])) - sum(sum_over_time({sel}[{window}])))"
            f" / {seconds}"
        )

    def describe(self) -> str:
        return f"gauge `{self.total_selector.render()}`"

    def good_events_name(self) -> str:
        return "availability"

    def canary_sli(self, label: str, interval: str) -> str:
        return f"avg by ({label}) ({self.total_selector.render()})"

    def window_queries(self) -> dict[str, str]:
        sel = self.total_selector.render()
        return {
            "total": f"sum(count_over_time({sel}[{promql.WINDOW}]))",
            "good": f"sum(sum_over_time({sel}[{promql.WINDOW}]))",
        }


@dataclass(frozen=True)
class QueryEvents(Events):
    """PromQL of the catalogue's own (the ``query`` kind), used as written: ``total`` and
    ``bad`` (or ``good``) per-second rates, or a raw ``error_ratio``.

    ``total_selector`` is the first selector of the expressions: what ``SLOMetricsAbsent``
    names and what shows that a canary's series exist.
    """

    total_query: promql.Query | None = None
    bad_query: promql.Query | None = None
    good_query: promql.Query | None = None
    ratio_query: promql.Query | None = None

    promtool_series: ClassVar[SeriesNotation | None] = None
    per_pod_template: ClassVar[bool] = False  # the expressions aggregate the hash away

    @property
    def queries(self) -> list[promql.Query]:
        found = [self.total_query, self.bad_query, self.good_query, self.ratio_query]
        return [q for q in found if q is not None]

    @property
    def counts_traffic(self) -> bool:
        return self.ratio_query is None

    @property
    def can_gate(self) -> bool:
        return self.why_not_gated() is None

    def why_not_gated(self) -> str | None:
        """Why the canary's events cannot be counted from these expressions, or None."""
        if self.ratio_query is not None:
            return "a raw error_ratio has no event counts for the sequential test"
        probe = (promql.Matcher(names.HASH_LABEL, "=", "probe"),)
        for query in self.queries:
            why = query.why_not_per_hash(names.HASH_LABEL)
            if why:
                return f"{query.text}: {why}"
            try:  # the rewrite the gate renders, so that it cannot fail later
                query.with_matchers(probe)
            except ValueError as err:
                return str(err)
        return None

    def total(self, window: str) -> str:
        if self.ratio_query is not None:  # 1 wherever the ratio exists: the ratio's weight
            return f"(sum({self.ratio_query.at(window)}) * 0 + 1)"
        assert self.total_query is not None
        return f"sum({self.total_query.at(window)})"

    def bad(self, window: str) -> str:
        if self.ratio_query is not None:
            return f"max({self.ratio_query.at(window)})"
        if self.bad_query is not None:
            return f"sum({self.bad_query.at(window)})"
        assert self.good_query is not None
        return f"{self.total(window)} - (sum({self.good_query.at(window)}) or vector(0))"

    def counts(self, lookback: str, by: tuple[str, ...] = ()) -> tuple[str, str]:
        """The rates over ``lookback`` times its seconds: ``rate()`` extrapolates, so a count is
        off by at most about a scrape interval of traffic (the counters' own arithmetic is not
        reachable through arbitrary PromQL). Not per label: the expressions aggregate."""
        if by:
            raise ValueError("a query SLI's counts cannot be split by label")
        seconds = durations.parse(lookback)
        bad = self.bad(lookback)
        return f"({self.total(lookback)} * {seconds})", f"(({bad} or vector(0)) * {seconds})"

    def with_matchers(self, extra: tuple[promql.Matcher, ...]) -> Events:
        return replace(
            self,
            total_selector=self.total_selector.with_matchers(extra),
            **{
                f.name: getattr(self, f.name).with_matchers(extra)
                for f in fields(self)
                if isinstance(getattr(self, f.name), promql.Query)
            },
        )

    def source_selectors(self) -> list[promql.Selector]:
        return [s for q in self.queries for s in q.selectors()]

    def describe(self) -> str:
        if self.ratio_query is not None:
            return f"error ratio `{self.ratio_query.text}`"
        word = "bad" if self.bad_query is not None else "good"
        picked = self.bad_query or self.good_query
        assert picked is not None and self.total_query is not None
        return f"{word} `{picked.text}` of `{self.total_query.text}`"

    def canary_sli(self, label: str, interval: str) -> str:
        raise ValueError(f"{self.describe()}: its expressions aggregate away {label}")

    def window_queries(self) -> dict[str, str]:
        if self.ratio_query is not None:
            return {"error_ratio": self.ratio_query.text}
        picked = ("bad", self.bad_query) if self.bad_query is not None else ("good",
                                                                              self.good_query)
        assert self.total_query is not None and picked[1] is not None
        return {"total": self.total_query.text, picked[0]: picked[1].text}


@dataclass(frozen=True)
class ResolvedSlo:
    service: Service
    slo: Slo
    alerting: Alerting
    events: Events
    objective: float  # ratio, 0.999
    budget: float  # ratio, 0.001
    period: str
    period_seconds: int
    tiers: tuple[Tier, ...]
    # the catalogue's fleet settings (used by `scope: fleet` SLOs); frozen, so one is shared
    fleet: Fleet = field(default_factory=Fleet)

    @property
    def is_fleet(self) -> bool:
        return self.slo.scope == "fleet"

    @property
    def labels(self) -> dict[str, str]:
        return {names.LABEL_SERVICE: self.service.name, names.LABEL_SLO: self.slo.name}

    @property
    def rule_labels(self) -> dict[str, str]:
        """The labels of every recorded series of the SLO: its own, then service and SLO."""
        return {**self.slo.labels, **self.labels}

    def alert_name(self, severity: str) -> str:
        return self.alerting.name or names.ALERT_BURN[severity]

    def alert_labels(self, severity: str) -> dict[str, str]:
        """Labels of one burn-rate alert: the catalogue's, the SLO's, service and SLO,
        ``severity``, and the severity's own labels (which may replace ``severity``)."""
        own = {"page": self.alerting.page_labels, "ticket": self.alerting.ticket_labels}
        return {
            **self.alerting.labels,
            **self.rule_labels,
            names.LABEL_SEVERITY: severity,
            **own[severity],  # never service or slo (the catalogue refuses them)
        }

    @cached_property
    def _matchers(self) -> str:
        return ",".join(f'{k}="{v}"' for k, v in self.labels.items())

    def selector_of(self, record: str) -> str:
        """A recorded series of this SLO, e.g. ``slo:sli_total:rate5m{service="api",slo="x"}``."""
        return f"{record}{{{self._matchers}}}"

    def windows(self) -> list[str]:
        """Every alert window, shortest first, always including the 5m base."""
        seconds = {durations.parse(names.BASE_WINDOW)}
        for tier in self.tiers:
            seconds |= {tier.long_seconds, tier.short_seconds}
        return [durations.format_seconds(s) for s in sorted(seconds)]


def le_spellings(value: float) -> tuple[str, ...]:
    """The ways clients and Prometheus write a bucket boundary: Go's shortest ``%g`` form, which
    switches to an exponent below 1e-4 and from 1e6 (``1e-05``, ``1e+06``; the Python client
    copies it), and the same number in plain decimals (``0.00001``, ``1000000``). Integers may
    also carry a ``.0`` (Prometheus 3 and OpenMetrics write ``2.0``): see :func:`le_matcher`."""
    exact = decimal.Decimal(repr(float(value)))
    sign, digits, exp = exact.normalize().as_tuple()
    if sign or not isinstance(exp, int) or not exact:
        raise ValueError(f"a latency threshold is a positive number of seconds, not {value}")
    plain = format(exact.normalize(), "f")
    places = len(digits) + exp - 1  # decimal exponent of the leading digit
    if -4 <= places < 6:
        return (plain,)
    mantissa = "".join(map(str, digits))
    if len(mantissa) > 1:
        mantissa = f"{mantissa[0]}.{mantissa[1:]}"
    return (f"{mantissa}e{'-' if places < 0 else '+'}{abs(places):02d}", plain)


def le_matcher(threshold: float) -> promql.Matcher:
    """Match a bucket boundary however it was printed (``2`` or ``2.0``, ``1e-05`` or
    ``0.00001``): one regular expression over :func:`le_spellings`."""
    spellings = le_spellings(threshold)
    if len(spellings) == 1 and "." in spellings[0]:
        return promql.Matcher("le", "=", spellings[0])

    def pattern(spelling: str) -> str:
        escaped = spelling.replace(".", "\\.").replace("+", "\\+")
        return escaped if "." in spelling or "e" in spelling else f"{escaped}(\\.0+)?"

    return promql.Matcher("le", "=~", "|".join(map(pattern, spellings)))


def events_for(service: Service, slo: Slo) -> Events:
    service_matchers = promql.parse_matchers(service.selector)

    def sel(text: str) -> promql.Selector:
        return promql.parse_selector(text).with_matchers(service_matchers)

    indicator = slo.indicator
    if isinstance(indicator, QueryIndicator):
        return query_events(indicator)
    if isinstance(indicator, RatioIndicator):
        return RatioEvents(
            sel(indicator.total),
            bad_selector=sel(indicator.bad) if indicator.bad else None,
            good_selector=sel(indicator.good) if indicator.good else None,
        )
    if isinstance(indicator, AvailabilityIndicator):
        if indicator.gauge is not None:
            return GaugeEvents(sel(indicator.gauge))
        assert indicator.total is not None and indicator.bad is not None
        return RatioEvents(sel(indicator.total), bad_selector=sel(indicator.bad))
    assert isinstance(indicator, LatencyIndicator)
    histogram = next(h for h in service.histograms if h.name == indicator.histogram)
    extra = promql.parse_matchers(indicator.matchers)
    if histogram.native:
        total = promql.Selector(histogram.name).with_matchers(extra + service_matchers)
        return NativeLatencyEvents(total, threshold=indicator.threshold)
    count = promql.Selector(f"{histogram.name}_count").with_matchers(extra + service_matchers)
    good = promql.Selector(f"{histogram.name}_bucket").with_matchers(
        extra + service_matchers + (le_matcher(indicator.threshold),)
    )
    return LatencyEvents(count, good_selector=good, threshold=indicator.threshold)


def query_events(indicator: QueryIndicator) -> Events:
    """A query SLI; one whose expressions are all ``sum(rate(<selector>[{{.window}}]))`` is a
    ratio SLI of those selectors, with everything a ratio SLI has."""
    total = promql.Query(indicator.total) if indicator.total else None
    bad = promql.Query(indicator.bad) if indicator.bad else None
    good = promql.Query(indicator.good) if indicator.good else None
    ratio = promql.Query(indicator.error_ratio) if indicator.error_ratio else None
    if total is not None and ratio is None:
        picked = bad or good
        assert picked is not None
        total_sel, picked_sel = total.plain_rate_selector(), picked.plain_rate_selector()
        if total_sel is not None and picked_sel is not None:
            return RatioEvents(
                total_sel,
                bad_selector=picked_sel if bad is not None else None,
                good_selector=picked_sel if good is not None else None,
            )
    first = next(q for q in (total, ratio) if q is not None).selectors()
    if not first:
        raise ValueError(f"{(total or ratio).text!r} selects no metric")  # type: ignore[union-attr]
    return QueryEvents(first[0], total_query=total, bad_query=bad, good_query=good,
                       ratio_query=ratio)


def tiers_for(alerting: Alerting, period_seconds: int, budget: float) -> tuple[Tier, ...]:
    rows = alerting.tiers if alerting.tiers is not None else default_tiers()
    enabled = {"page": alerting.page, "ticket": alerting.ticket}
    tiers = []
    for row in rows:
        if not enabled[row.severity]:
            continue
        long_seconds = durations.parse(row.long_window)
        factor = row.budget_consumed * period_seconds / long_seconds
        tiers.append(
            Tier(
                severity=row.severity,
                long_window=row.long_window,
                short_window=row.short_window,
                long_seconds=long_seconds,
                short_seconds=durations.parse(row.short_window),
                factor=round(factor, 9),
                threshold=round(round(factor, 9) * budget, 12),
            )
        )
    return tuple(tiers)


def resolve(catalogue: Catalogue, service: Service, slo: Slo) -> ResolvedSlo:
    alerting = catalogue.alerting_for(slo)
    period_seconds = durations.parse(slo.window)
    objective = round(slo.objective / 100, 12)
    budget = round(1 - objective, 12)
    return ResolvedSlo(
        service=service,
        slo=slo,
        alerting=alerting,
        events=events_for(service, slo),
        objective=objective,
        budget=budget,
        period=slo.window,
        period_seconds=period_seconds,
        tiers=tiers_for(alerting, period_seconds, budget),
        fleet=catalogue.fleet,
    )


def resolve_all(catalogue: Catalogue) -> list[ResolvedSlo]:
    return [resolve(catalogue, svc, slo) for svc in catalogue.services for slo in svc.slos]


def minutes_to_fire(tier: Tier, error_ratio: float, background: float = 0.0) -> float:
    """The Workbook's time for the long window to fire at a constant error ratio, in minutes.

    ``background`` is the error ratio the window held before (0 in the Workbook's formula).
    Infinite when the tier never fires.
    """
    if error_ratio <= tier.threshold:
        return math.inf
    share = max(tier.threshold - background, 0.0) / (error_ratio - background)
    return share * tier.long_seconds / 60
