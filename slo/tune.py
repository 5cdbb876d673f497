"""Tighten objectives from history: what each SLO actually achieved over its window.

Start conservative, tighten from history. For every SLO we ask Prometheus for the share of bad
events over the window, straight from the raw counters (history can predate the SLO rules), and
propose the objective the service met, rounded down to ``step`` percentage points, with the error
budget it would have had left. A proposal never loosens an objective.
"""

from __future__ import annotations

import json
import math
import sys
import urllib.parse
import urllib.request
from dataclasses import dataclass

from slo import durations
from slo.model import ResolvedSlo


class TuneError(Exception):
    """Prometheus could not answer (unreachable, bad query, no data)."""


@dataclass(frozen=True)
class Proposal:
    service: str
    slo: str
    current: float  # percent
    achieved: float | None  # percent, None when the window had no events
    proposed: float  # percent
    budget_left: float | None  # share of the proposed objective's budget left, 0..1

    def line(self) -> str:
        name = f"{self.service}/{self.slo}"
        if self.achieved is None:
            return f"{name}: no events in the window; keep {self.current:g}%"
        verdict = "tighten to" if self.proposed > self.current else "keep"
        left = ""
        if self.budget_left is not None:
            left = (
                f", {self.budget_left:.0%} of its budget left"
                if self.budget_left >= 0
                else f", budget overspent by {-self.budget_left:.0%}"
            )
        return (
            f"{name}: achieved {self.achieved:.4f}% (objective {self.current:g}%); "
            f"{verdict} {self.proposed:g}%{left}"
        )


def ratio_query(slo: ResolvedSlo, window: str) -> str:
    """Bad over all events across ``window``, from the raw series."""
    events = slo.events
    return f"({events.bad(window)} or vector(0)) / ({events.total(window)} > 0)"


def query(prometheus: str, expr: str, at: float | None) -> float | None:
    params = {"query": expr}
    if at is not None:
        params["time"] = f"{at:.3f}"
    url = f"{prometheus.rstrip('/')}/api/v1/query?{urllib.parse.urlencode(params)}"
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            body = json.load(response)
    except OSError as err:
        raise TuneError(f"{prometheus}: cannot query ({err})") from None
    if body.get("status") != "success":
        raise TuneError(f"{prometheus}: {body.get('error', 'query failed')}: {expr}")
    result = body["data"]["result"]
    if not result:
        return None
    value = float(result[0]["value"][1])
    return None if math.isnan(value) else value


def propose(slo: ResolvedSlo, error_ratio: float | None, step: float = 0.01) -> Proposal:
    current = round(slo.objective * 100, 10)
    if error_ratio is None:
        return Proposal(slo.service.name, slo.slo.name, current, None, current, None)
    achieved = (1 - error_ratio) * 100
    rounded = math.floor(round(achieved / step, 6)) * step
    proposed = round(min(max(rounded, current), 100 - step), 10)
    budget = 1 - proposed / 100
    left = round(1 - error_ratio / budget, 6) + 0.0 if budget > 0 else None  # no -0
    return Proposal(slo.service.name, slo.slo.name, current, achieved, proposed, left)


def tune(
    slos: list[ResolvedSlo],
    prometheus: str,
    window: str | None = None,
    at: float | None = None,
    step: float = 0.01,
    progress: bool = True,
) -> list[Proposal]:
    proposals = []
    for i, slo in enumerate(slos, 1):
        span = window or slo.period
        durations.parse(span)
        if progress:
            print(
                f"[{i}/{len(slos)}] {slo.service.name}/{slo.slo.name} over {span}", file=sys.stderr
            )
        proposals.append(propose(slo, query(prometheus, ratio_query(slo, span), at), step))
    return proposals
