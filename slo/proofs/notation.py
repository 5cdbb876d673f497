"""promtool's series notation: the scraped series that produce a timeline through an SLO's
selectors."""

from __future__ import annotations

import random
import re

import rstr

from slo.model import Events, RatioEvents, SeriesNotation
from slo.promql import Matcher, Selector
from slo.proofs.oracle import ProofError, Timeline


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


def series_name(selector_metric: str, labels: dict[str, str]) -> str:
    inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    return f"{selector_metric}{{{inner}}}" if inner else selector_metric


def input_series(
    events: Events,
    timeline: Timeline,
    gauge_values: list[float] | None,
    without_bad_series: bool = False,
) -> list[dict[str, str]]:
    """The scraped series that produce ``timeline`` through the SLO's selectors, written the
    way its kind declares (``Events.promtool_series``)."""
    notation = events.promtool_series
    writer = None if notation is None else _WRITERS[notation]
    if writer is None:
        raise ProofError(f"{events.describe()}: promtool's series notation cannot write it")
    return writer(events, timeline, gauge_values, without_bad_series)


def _gauge_series(
    events: Events, timeline: Timeline, gauge_values: list[float] | None, _without_bad: bool
) -> list[dict[str, str]]:
    assert gauge_values is not None
    labels = labels_for(events.total_selector.matchers)
    return [
        {
            "series": series_name(events.total_selector.metric, labels),
            "values": _gauge_values(gauge_values, timeline.present),
        }
    ]


def _histogram_series(
    events: Events, timeline: Timeline, _gauge: list[float] | None, _without_bad: bool
) -> list[dict[str, str]]:
    """``_count``, the bucket at the threshold (the good events) and ``+Inf``."""
    assert isinstance(events, RatioEvents) and events.good_selector is not None
    present = timeline.present
    good = [t - b for t, b in zip(timeline.total, timeline.bad, strict=True)]
    bucket = events.good_selector
    labels = labels_for([m for m in bucket.matchers if m.name != "le"])
    le = format(events.threshold, "g")
    return [
        {
            "series": series_name(events.total_selector.metric, labels),
            "values": _counter_values(timeline.total, present),
        },
        {
            "series": series_name(bucket.metric, {**labels, "le": le}),
            "values": _counter_values(good, present),
        },
        {
            "series": series_name(bucket.metric, {**labels, "le": "+Inf"}),
            "values": _counter_values(timeline.total, present),
        },
    ]


def _counter_series(
    events: Events, timeline: Timeline, _gauge: list[float] | None, without_bad_series: bool
) -> list[dict[str, str]]:
    """A total and a bad (or good) counter: two metrics, or one metric split by its labels."""
    assert isinstance(events, RatioEvents)
    present = timeline.present
    good = [t - b for t, b in zip(timeline.total, timeline.bad, strict=True)]
    total = events.total_selector
    if events.bad_selector is not None:
        picked, picked_values, other_values = events.bad_selector, timeline.bad, good
    else:
        assert events.good_selector is not None
        picked, picked_values, other_values = events.good_selector, good, timeline.bad
    if picked.metric != total.metric:
        return [
            {
                "series": series_name(total.metric, labels_for(total.matchers)),
                "values": _counter_values(timeline.total, present),
            },
            {
                "series": series_name(picked.metric, labels_for(picked.matchers)),
                "values": _counter_values(picked_values, present),
            },
        ]
    series = [
        {
            "series": series_name(total.metric, labels_for(total.matchers + picked.matchers)),
            "values": _counter_values(picked_values, present),
        },
        {
            "series": series_name(total.metric, _labels_outside(total, picked)),
            "values": _counter_values(other_values, present),
        },
    ]
    if without_bad_series:  # only the bad-events series may be missing: drop it
        assert events.bad_series_optional
        series = series[1:]
    return series


_WRITERS = {
    SeriesNotation.COUNTERS: _counter_series,
    SeriesNotation.HISTOGRAM: _histogram_series,
    SeriesNotation.GAUGE: _gauge_series,
}


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
