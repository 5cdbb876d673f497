"""What a gate can see before the rollout: its operating characteristic at the first gate.

For a canary whose requests fail independently at a constant ratio ``p`` and arrive at a
constant ``rate`` a minute, the probability that the rollout is aborted, and that the first gate
passes, by the end of the first gate (its pause and delay, then ``maxMeasurements`` looks). Computed
exactly for that model by dynamic programming over the canary's error count at each look
(``interval`` apart): between looks the count grows by a binomial draw of the look's requests;
at each look (every look: the background analysis) the rollout aborts where the cumulative
statistic under the coarse hypotheses reaches ``abort`` or the one under the SLO's own, divided
by the abort side's scale at the steps (scrape intervals) elapsed (``judge.abort_scale``),
reaches ``cusum_abort`` (the change-point statistic is at least that cumulative one); during
the gate it passes where the latter is at the pass boundary. Left out, and measured by
``bench/canary_judgement.py`` instead: bursts and dispersion, Poisson arrivals, the minimum
evidence, the change-point statistic's restarts and the ``recent`` condition (which only delay
a pass and only hasten an abort), and the gates after the first.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from delivery.judge import Gate, abort_scale, coefficients, gate_looks
from delivery.stack import StackConfig, go_seconds

BURNS = (1.0, 2.0, 3.0, 5.0, 10.0)  # multiples of the budget the plan shows
CAUGHT = 0.99  # "caught": aborted by the end of the first gate in this share of rollouts


@dataclass(frozen=True)
class Outcome:
    abort: float  # aborted by the end of the first gate
    passed: float  # the first gate passed
    # the rest: no verdict by the end of the first gate (the rollout pauses for a human)


def _binomial(n: int, p: float) -> np.ndarray:
    """Binomial(n, p) probabilities of 0..n."""
    if p <= 0 or p >= 1:
        out = np.zeros(n + 1)
        out[0 if p <= 0 else n] = 1.0
        return out
    logs = [math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
            + k * math.log(p) + (n - k) * math.log1p(-p) for k in range(n + 1)]
    return np.asarray(np.exp(np.array(logs)))


def first_gate(gate: Gate, stack: StackConfig, rate: float, ratio: float) -> Outcome:
    """The first gate's outcome for a canary at ``rate`` requests a minute failing ``ratio``."""
    cfg = stack.delivery.analysis
    interval = go_seconds(cfg.interval)
    per_look = max(1, round(rate * interval / 60))
    delay = gate_looks(stack.delivery, stack.prometheus.scrape_interval).delay
    waited = go_seconds(stack.delivery.pause) + delay
    pause_looks = waited // interval
    looks = pause_looks + cfg.max_measurements
    steps_per_look = interval / go_seconds(stack.prometheus.scrape_interval)
    per_error, per_success = coefficients(gate.hypotheses)
    coarse_error, coarse_success = coefficients(gate.coarse)
    ratio = min(max(ratio, 0.0), 1.0)
    pmf = _binomial(per_look, ratio)
    alive = np.array([1.0])  # probability of each error count, no verdict yet
    aborted = passed = 0.0
    for look in range(1, looks + 1):
        alive = np.convolve(alive, pmf)
        n = look * per_look
        x = np.arange(alive.size)
        statistic = x * per_error + (n - x) * per_success
        scale = abort_scale(look * steps_per_look, gate.cusum_abort)
        over = ((x * coarse_error + (n - x) * coarse_success >= gate.abort)
                | (statistic / scale >= gate.cusum_abort))
        aborted += float(alive[over].sum())
        alive[over] = 0.0
        if look > pause_looks:
            under = statistic <= gate.accept
            passed += float(alive[under].sum())
            alive[under] = 0.0
        top = np.nonzero(alive)[0]
        alive = alive[: top[-1] + 1] if top.size else np.array([0.0])
    return Outcome(abort=aborted, passed=passed)


def curve(gate: Gate, stack: StackConfig, rate: float,
          burns: tuple[float, ...] = BURNS) -> dict[float, Outcome]:
    """``first_gate`` at each multiple of the SLO's budget."""
    return {b: first_gate(gate, stack, rate, b * gate.slo.budget) for b in burns}


def smallest_caught(gate: Gate, stack: StackConfig, rate: float) -> float | None:
    """The smallest multiple of the budget (to 0.1) aborted by the end of the first gate in at
    least ``CAUGHT`` of rollouts, or None when even a canary failing every request is not."""
    top = 1 / gate.slo.budget
    if first_gate(gate, stack, rate, 1.0).abort < CAUGHT:
        return None
    low, high = 1.0, top
    while high - low > 0.05:
        mid = (low + high) / 2
        if first_gate(gate, stack, rate, mid * gate.slo.budget).abort >= CAUGHT:
            high = mid
        else:
            low = mid
    return math.ceil(high * 10) / 10
