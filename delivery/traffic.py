"""A service's traffic as Prometheus saw it: what to state as its ``expectedRequestsPerMinute``.

``failBurnRate: auto`` and the plan's operating characteristic read the stack's
``expectedRequestsPerMinute``, so that the hypotheses a gate renders are reviewed in the stack file
and do not move with each preview. ``python -m delivery traffic`` measures the rate to state:
per service, its requests a minute over a window (a week by default), all pods together, from
the raw counters of its gated SLOs (the busiest of them where they count different requests),
next to what the stack states and to the fail burn rates ``auto`` would choose at each.
"""

from __future__ import annotations

from dataclasses import dataclass

from delivery import judge
from delivery.stack import StackConfig
from slo.model import ResolvedSlo, number
from slo.tune import query


@dataclass(frozen=True)
class Measured:
    service: str
    window: str
    per_minute: float | None  # None: no requests counted in the window
    stated: float | None  # the stack's expectedRequestsPerMinute

    def line(self, auto_at_measured: str, auto_at_stated: str) -> str:
        stated = ("states none" if self.stated is None
                  else f"states {number(self.stated)} (at that rate: {auto_at_stated})")
        if self.per_minute is None:
            return f"{self.service}: no requests counted over the last {self.window}; the stack " \
                   f"{stated}"
        return (f"{self.service}: {number(round(self.per_minute, 1))} requests a minute over the "
                f"last {self.window} (at that rate: {auto_at_measured}); the stack {stated}")


def requests_queries(slos: list[ResolvedSlo], window: str) -> list[str]:
    """Requests a minute over ``window``, one query per gated SLO that counts requests."""
    return [f"{s.events.total(window)} * 60" for s in judge.gated(slos)
            if s.events.counts_traffic]


def auto_choice(slos: list[ResolvedSlo], stack: StackConfig, service: str,
                per_minute: float | None) -> str:
    """The fail burn rates the stack's settings give each gated SLO at ``per_minute``."""
    deployment = stack.services[service].model_copy(
        update={"expected_requests_per_minute": per_minute})
    at = stack.model_copy(update={"services": {**stack.services, service: deployment}})
    gates = judge.stack_gates(slos, at, service)
    return ", ".join(
        f"{g.name} fails at {number(round(g.hypotheses.bad / g.slo.budget, 2))}x" for g in gates
    ) or "no gated SLOs"


def measure(service: str, slos: list[ResolvedSlo], stack: StackConfig, prometheus: str,
            window: str, at: float | None) -> Measured:
    """The busiest of the service's request counters over ``window`` (raises ``TuneError``
    where Prometheus cannot answer)."""
    values = [v for expr in requests_queries(slos, window)
              if (v := query(prometheus, expr, at))]
    stated = stack.services[service].expected_requests_per_minute
    return Measured(service, window, max(values) if values else None, stated)
