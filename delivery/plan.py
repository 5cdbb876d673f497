"""What a canary verdict needs on a stack, told before the rollout: requests, time, traffic.

One ``Plan`` per service and stack. ``python -m delivery plan``, ``pulumi preview`` (the program
logs ``lines()``) and the stack output ``canaryPlan`` (``output()``) all read the same one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from delivery import oc
from delivery.judge import (
    MIN_STEPS,
    Gate,
    coefficients,
    evidence_window,
    expected_requests,
    expected_traffic,
    first_gate_seconds,
    gate_looks,
    late_requests,
)
from delivery.routers import ROUTERS
from delivery.stack import StackConfig, go_seconds
from slo import durations
from slo.model import number

PLAN_RATES = (20, 100, 1000)  # canary requests per minute the plan shows times for


def requests_to_pass_clean(gate: Gate) -> int:
    """Canary requests without a single error that take the statistic to the pass boundary."""
    return math.ceil(gate.accept / coefficients(gate.hypotheses)[1])


def percent(ratio: float) -> str:
    """A probability to a tenth of a point, <0.1% and >99.9% at the ends."""
    return f"{ratio:.1%}" if 0.001 <= ratio <= 0.999 or ratio in (0.0, 1.0) else (
        "<0.1%" if ratio < 0.001 else ">99.9%")


@dataclass(frozen=True)
class GatePlan:
    """One gated SLO's figures on the stack."""

    mode: str
    requests_to_pass: int  # clean requests that reach the pass boundary
    minutes_to_pass: dict[int, float]  # at each of PLAN_RATES canary requests a minute
    rate_needed: int  # canary requests a minute below which the first gate cannot pass
    requests_to_abort: int  # Wald's expected requests at the bad hypothesis
    fail_burn_rate: float
    fail_burn_from: str
    late_requests: int | None  # a recent span's requests to stop a late regression ...
    late_tenfold: int | None  # ... and one at 10x the budget
    first_gate: dict[float, oc.Outcome] | None  # at the expected traffic, by burn
    smallest_caught: float | None

    def output(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "mode": self.mode,
            "requestsToPass": self.requests_to_pass,
            "minutesToPass": {f"{r}/min": m for r, m in self.minutes_to_pass.items()},
            "canaryRequestsPerMinuteNeeded": self.rate_needed,
            "requestsToAbortAtBad": self.requests_to_abort,
            "failBurnRate": number(self.fail_burn_rate),
            "failBurnRateFrom": self.fail_burn_from,
            "requestsPerPauseForLateRegressions": self.late_requests,
            "requestsPerPauseForLateTenfold": self.late_tenfold,
        }
        if self.first_gate is not None:
            out["firstGate"] = {f"{number(b)}x": {"abort": o.abort, "pass": o.passed}
                                for b, o in self.first_gate.items()}
            out["smallestBurnCaught"] = self.smallest_caught
        return out


@dataclass(frozen=True)
class Plan:
    """One service's canary plan on one stack."""

    service: str
    shares: dict[int, float]  # the real traffic share at each weight
    minimum_evidence_minutes: float
    warm_up: str | None
    first_gate_minutes: float
    evidence_window: str
    outage_limit: str
    pause: str
    recent_span: str
    gate_delay: str | None  # the gate's wait after a pause shorter than the recording's lag
    late_catch: float  # 1 - missedRegressionRisk
    canary_rate: float | None  # expected canary requests a minute at the first weight
    gates: dict[str, GatePlan]

    def output(self) -> dict[str, Any]:
        """The stack output ``canaryPlan.<service>``."""
        return {
            "trafficShareByWeight": {f"{w}%": f"{s:.0%}" for w, s in self.shares.items()},
            "minimumEvidenceMinutes": self.minimum_evidence_minutes,
            "warmUp": self.warm_up,
            "firstGateMinutes": self.first_gate_minutes,
            "evidenceWindow": self.evidence_window,
            "outageLimit": self.outage_limit,
            "pause": self.pause,
            "recentSpan": self.recent_span,
            "gateDelay": self.gate_delay,
            "lateCatch": f"{self.late_catch:.0%}",
            "canaryRequestsPerMinute": self.canary_rate,
            "gates": {name: g.output() for name, g in self.gates.items()},
        }

    def lines(self) -> list[str]:
        """What ``python -m delivery plan`` and ``pulumi preview`` print."""
        service = self.service
        shares = ", ".join(f"{w}% -> {s:.0%}" for w, s in self.shares.items())
        lines = [f"{service}: canary weight -> real traffic share: {shares}"]
        excluded = (
            f"a new or restarted pod's first {self.warm_up} of requests count in the SLO, not in "
            "the verdict" if self.warm_up else "no warm-up: every canary request is evidence, a "
            "pod's start-up errors included"
        )
        lines.append(
            f"{service}: no verdict before {self.minimum_evidence_minutes} min of canary "
            f"traffic ({MIN_STEPS} scrape intervals); {excluded}; errors that come in bursts "
            "count about as bursts, not as independent requests; Prometheus not answering is "
            "never a verdict (the gate waits), and once it answers after an outage longer than "
            f"{self.outage_limit} the rollout pauses for a human"
        )
        if self.gate_delay:
            lines.append(
                f"{service}: each gate's first look waits {self.gate_delay} after its "
                f"{self.pause} pause, until the weight's own traffic is recorded (a pause "
                "shorter than the recording's lag and a scrape interval)"
            )
        if self.canary_rate is None:
            lines.append(
                f"{service}: no expectedRequestsPerMinute in the stack: set it to see what each "
                "gate can catch at the service's traffic"
            )
        for name, gate in self.gates.items():
            lines += self._gate_lines(name, gate)
        return lines

    def _gate_lines(self, name: str, gate: GatePlan) -> list[str]:
        service = self.service
        times = ", ".join(f"{m} min at {r}/min" for r, m in gate.minutes_to_pass.items())
        tenfold = (f" ({gate.late_tenfold} for one at 10x the budget)"
                   if gate.late_tenfold != gate.late_requests else "")
        lines = [
            f"{service}/{name} ({gate.mode}): fails at {number(gate.fail_burn_rate)}x the budget "
            f"({gate.fail_burn_from}); a clean canary passes after {gate.requests_to_pass} "
            f"requests ({times}); below {gate.rate_needed} canary requests a minute it cannot "
            f"pass the first gate within its {self.first_gate_minutes} min and the rollout "
            f"pauses for a human; a canary at the bad ratio is aborted after about "
            f"{gate.requests_to_abort} requests on average; a release that turns bad at a later "
            f"weight is stopped at that weight's gate ({self.late_catch:.0%}) when "
            f"{self.recent_span} of its pause holds at least {gate.late_requests} canary "
            f"requests there{tenfold}, and otherwise only by the change-point statistic as the "
            "rollout goes on"
        ]
        if self.canary_rate is not None and gate.first_gate is not None:
            seen = "; ".join(f"{number(b)}x: abort {percent(o.abort)}, pass {percent(o.passed)}"
                             for b, o in gate.first_gate.items())
            caught = gate.smallest_caught
            lines.append(
                f"{service}/{name}: by the end of the first gate at {number(self.canary_rate)} "
                f"canary requests a minute (expectedRequestsPerMinute x the first weight's "
                f"share), a canary burning the budget at {seen}; "
                + (f"the smallest burn aborted in {oc.CAUGHT:.0%} of rollouts within it: "
                   f"{number(caught)}x" if caught is not None else
                   "no burn is aborted within it in 99% of rollouts at this traffic")
            )
        return lines


def rate_needed(gate: Gate, first_gate: int) -> int:
    """Canary requests a minute below which a clean canary cannot pass within ``first_gate``
    seconds (``first_gate_seconds``)."""
    return math.ceil(requests_to_pass_clean(gate) / (first_gate / 60))


def _gate_plan(gate: Gate, stack: StackConfig, first_gate: int,
               canary_rate: float | None) -> GatePlan:
    clean = requests_to_pass_clean(gate)
    looks = stack.delivery.analysis.max_measurements
    return GatePlan(
        mode=gate.enforcement,
        requests_to_pass=clean,
        minutes_to_pass={rate: round(clean / rate, 1) for rate in PLAN_RATES},
        rate_needed=rate_needed(gate, first_gate),
        requests_to_abort=round(expected_requests(gate, gate.hypotheses.bad)),
        fail_burn_rate=round(gate.hypotheses.bad / gate.slo.budget, 2),
        fail_burn_from=gate.fail_burn_source,
        late_requests=late_requests(gate, looks),
        late_tenfold=late_requests(gate, looks, 10 * gate.slo.budget),
        first_gate=None if canary_rate is None else oc.curve(gate, stack, canary_rate),
        smallest_caught=None if canary_rate is None else oc.smallest_caught(
            gate, stack, canary_rate),
    )


def plan(service: str, stack: StackConfig, gates: list[Gate]) -> Plan:
    """The service's plan on the stack, for its gates (``judge.stack_gates``)."""
    deployment = stack.services[service]
    router = ROUTERS[stack.delivery.traffic_routing]
    scrape = stack.prometheus.scrape_interval
    first_gate = first_gate_seconds(stack.delivery, scrape)
    timing = gate_looks(stack.delivery, scrape)
    traffic = expected_traffic(stack, service)
    canary_rate = None if traffic is None else traffic.canary_rate
    analysis = stack.delivery.analysis
    return Plan(
        service=service,
        shares={w: router.share(deployment.replicas, w) for w in stack.delivery.weights},
        minimum_evidence_minutes=round(MIN_STEPS * go_seconds(scrape) / 60, 1),
        warm_up=deployment.warm_up,
        first_gate_minutes=round(first_gate / 60, 1),
        evidence_window=evidence_window(stack.delivery),
        outage_limit=analysis.outage_limit,
        pause=stack.delivery.pause,
        recent_span=timing.span_text,
        gate_delay=durations.format_seconds(timing.delay) if timing.delay else None,
        late_catch=1 - analysis.missed_regression_risk,
        canary_rate=None if canary_rate is None else round(canary_rate, 1),
        gates={gate.name: _gate_plan(gate, stack, first_gate, canary_rate) for gate in gates},
    )
