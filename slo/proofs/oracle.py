"""The window oracle: expected alerts from plain per-minute sums of events, independent of
the rules' PromQL (see ``slo/proofs/__init__.py``)."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from functools import cached_property
from itertools import product

from slo import conventions as names
from slo import durations
from slo.model import (
    ResolvedSlo,
    Tier,
)

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

    ``closed`` is the range convention of the engine: Prometheus 2.x selects the samples in
    ``[t - range, t]``, 3.x those in ``(t - range, t]``. Counters do not care (an increase is
    the same either way); a gauge's ``count_over_time`` holds one sample more on 2.x.
    """

    def __init__(
        self,
        slo: ResolvedSlo,
        timeline: Timeline,
        gauge_values: list[float] | None,
        step: int = 1,
        closed: bool = False,
    ):
        self.slo = slo
        self.step = step
        self.closed = closed
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

        ``minutes`` counter increments; ``minutes`` gauge samples, one more in a closed range.
        """
        if self._sum(self.cum_present, t, minutes + 1) < 2:
            return None
        width = minutes + 1 if self.gauge and self.closed else minutes
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
        if window_seconds <= names.RAW_WINDOW_MAX_SECONDS or (
            self.slo.alerting.long_windows == "raw"
        ):
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
        """The alert's state at minute t if it holds however the windows shift by a minute, on
        both range conventions (the other one is a second model of the same timeline)."""
        states = {
            model.firing(alert, t + dt, shift, base)
            for model in (self, self.other)
            for dt, shift, base in product((-1, 0, 1), (-1, 0, 1), (5,))
        }
        return states.pop() if len(states) == 1 else None

    @cached_property
    def other(self) -> Model:
        """This model on the other engine's range convention (itself where that changes nothing)."""
        if not self.gauge:
            return self
        twin = copy.copy(self)
        twin.closed = not self.closed
        twin._bases = {}
        return twin


def _cumulative(values: list[float]) -> list[float]:
    out = [0.0]
    for v in values:
        out.append(out[-1] + v)
    return out


# --------------------------------------------------------------------------------------------
# Series in promtool's expanding notation.
