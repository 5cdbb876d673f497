"""Argo Rollouts v1.9 analysis semantics: measurement and metric phases, a metric's outcome
from its measurements, a run's from its metrics, and the Rollout's steps."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from bench.canary.conditions import Condition, Env
from delivery.stack import go_seconds

# Measurement and metric phases, in Argo's order from best to worst (analysisStatusOrder).
SUCCESSFUL, INCONCLUSIVE, ERROR, FAILED = 0, 1, 2, 3
RUNNING = -1
PHASE_NAMES = {SUCCESSFUL: "Successful", INCONCLUSIVE: "Inconclusive", ERROR: "Error",
               FAILED: "Failed", RUNNING: "Running"}
# Rollout outcomes, by severity at a tie.
PROMOTE, PAUSE, ABORT = 0, 1, 2
UNDECIDED = -1
OUTCOME_NAMES = {PROMOTE: "promote", PAUSE: "pause", ABORT: "abort", UNDECIDED: "undecided"}
NEVER = np.iinfo(np.int64).max // 4

# ---- Argo Rollouts v1.9 ------------------------------------------------------------------------


@dataclass(frozen=True)
class MetricSpec:
    name: str
    interval: float
    initial_delay: float  # seconds from the run's start to the first measurement
    count: int | None
    success: Condition | None
    failure: Condition | None
    failure_limit: int
    inconclusive_limit: int
    consecutive_error_limit: int
    consecutive_success_limit: int
    dry_run: bool
    query: str

    @classmethod
    def from_rendered(cls, metric: dict[str, Any], dry_run: set[str]) -> MetricSpec:
        def condition(key: str) -> Condition | None:
            return Condition(metric[key]) if metric.get(key) else None

        return cls(
            name=metric["name"],
            interval=float(go_seconds(metric["interval"])) if "interval" in metric else 0.0,
            initial_delay=float(go_seconds(metric.get("initialDelay", "0s"))),
            count=metric.get("count"),
            success=condition("successCondition"),
            failure=condition("failureCondition"),
            failure_limit=metric.get("failureLimit", 0),
            inconclusive_limit=metric.get("inconclusiveLimit", 0),
            consecutive_error_limit=metric.get("consecutiveErrorLimit", 4),  # Argo's default
            consecutive_success_limit=metric.get("consecutiveSuccessLimit", 0),
            dry_run=metric["name"] in dry_run,
            query=metric["provider"]["prometheus"]["query"],
        )

    def measure(self, env: Env) -> np.ndarray:
        """Phase of each measurement (utils/evaluate.EvaluateResult)."""
        shape = np.shape(env.length)
        error = np.zeros(shape, dtype=bool)
        succeeded = np.zeros(shape, dtype=bool)
        failed = np.zeros(shape, dtype=bool)
        if self.success:
            succeeded, e = self.success.evaluate(env)
            error |= e
        if self.failure:
            failed, e = self.failure.evaluate(env)
            error |= e
        if self.success and not self.failure:
            failed = ~succeeded
        elif self.failure and not self.success:
            succeeded = ~failed
        elif not self.success and not self.failure:
            succeeded = np.ones(shape, dtype=bool)
        phase = np.where(failed, FAILED, np.where(succeeded, SUCCESSFUL, INCONCLUSIVE))
        return np.where(error, ERROR, phase).astype(np.int8)


def _run_length(mask: np.ndarray) -> np.ndarray:
    """Length of the run of True ending at each position (along axis 1)."""
    n = np.arange(mask.shape[1])
    last_false = np.maximum.accumulate(np.where(mask, -1, n), axis=1)
    return n - last_false


def metric_outcome(
    spec: MetricSpec, phases: np.ndarray, start: np.ndarray, every: int, horizon: int,
    delay: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """When (grid index) and how one metric completes, measuring from ``start`` plus ``delay``
    (its ``initialDelay``) every ``every`` grid steps (analysis.go: assessMetricStatus,
    assessMetricFailureInconclusiveOrError)."""
    runs = phases.shape[0]
    n_max = horizon // every + 1  # an Error measurement does not count toward ``count``
    at = start[:, None] + delay + every * np.arange(n_max)[None, :]
    taken = at < horizon
    p = np.take_along_axis(phases, np.clip(at, 0, horizon - 1), axis=1)
    p = np.where(taken, p, -9)
    is_error = p == ERROR
    counted = np.cumsum(taken & ~is_error, axis=1)
    failed = np.cumsum(p == FAILED, axis=1)
    inconclusive = np.cumsum(p == INCONCLUSIVE, axis=1)
    errors_in_a_row = _run_length(is_error)
    successes_in_a_row = _run_length(p == SUCCESSFUL)

    too_many_failed = (failed > spec.failure_limit) if spec.failure_limit >= 0 else False
    too_many_inconclusive = inconclusive > spec.inconclusive_limit
    too_many_errors = errors_in_a_row > spec.consecutive_error_limit
    bad = too_many_failed | too_many_inconclusive | too_many_errors
    bad_phase = np.where(too_many_errors, ERROR,
                         np.where(too_many_inconclusive, INCONCLUSIVE, FAILED))
    limit = spec.consecutive_success_limit
    passed = (successes_in_a_row >= limit) if limit > 0 else np.zeros_like(bad)
    if spec.count:
        at_count = counted >= spec.count
        if limit > 0:  # successApplicable; failureApplicable unless failureLimit < 0
            count_phase = INCONCLUSIVE if spec.failure_limit >= 0 else FAILED
        else:
            count_phase = SUCCESSFUL
    else:
        at_count = np.zeros_like(bad)
        count_phase = SUCCESSFUL
    done = taken & (bad | passed | at_count)
    phase = np.where(bad, bad_phase, np.where(passed, SUCCESSFUL, count_phase))
    first = np.argmax(done, axis=1)
    row = np.arange(runs)
    finished = done[row, first]
    end = np.where(finished, at[row, first], NEVER)
    return end, np.where(finished, phase[row, first], RUNNING)


def run_outcome(
    specs: Sequence[MetricSpec], outcomes: Sequence[tuple[np.ndarray, np.ndarray]]
) -> tuple[np.ndarray, np.ndarray]:
    """An AnalysisRun's end and phase from its metrics' (assessRunStatus with terminating)."""
    runs = len(outcomes[0][0])
    bad_end = np.full(runs, NEVER)
    for spec, (end, phase) in zip(specs, outcomes, strict=True):
        if not spec.dry_run:
            bad_end = np.minimum(bad_end, np.where(phase >= INCONCLUSIVE, end, NEVER))
    worst = np.full(runs, RUNNING)
    last_end = np.zeros(runs, dtype=np.int64)
    all_done = np.ones(runs, dtype=bool)
    for spec, (end, phase) in zip(specs, outcomes, strict=True):
        all_done &= phase != RUNNING
        last_end = np.maximum(last_end, end)
        if not spec.dry_run:
            worst = np.maximum(worst, np.where((end == bad_end) & (phase >= INCONCLUSIVE),
                                               phase, RUNNING))
    stopped = bad_end < NEVER
    end = np.where(stopped, bad_end, np.where(all_done, last_end, NEVER))
    phase = np.where(stopped, worst, np.where(all_done, SUCCESSFUL, RUNNING))
    return end, phase


@dataclass(frozen=True)
class Template:
    name: str
    metrics: tuple[MetricSpec, ...]

    @classmethod
    def from_rendered(cls, body: dict[str, Any]) -> Template:
        dry = {d["metricName"] for d in body["spec"].get("dryRun", [])}
        specs = tuple(MetricSpec.from_rendered(m, dry) for m in body["spec"]["metrics"])
        return cls(body["metadata"]["name"], specs)


@dataclass(frozen=True)
class Step:
    kind: str  # "weight", "pause", "manual", "analysis"
    seconds: float = 0.0
    template: str = ""
    weight: float = 0.0  # a "weight" step's setWeight


def rollout_steps(canary: dict[str, Any]) -> tuple[list[Step], str | None]:
    """The rendered strategy.canary: its steps, and the background template (startingStep 0)."""
    steps = []
    for step in canary["steps"]:
        if "setWeight" in step:
            steps.append(Step("weight", weight=float(step["setWeight"])))
        elif "pause" in step:
            duration = step["pause"].get("duration")
            steps.append(Step("pause", go_seconds(duration)) if duration else Step("manual"))
        elif "analysis" in step:
            (template,) = step["analysis"]["templates"]
            steps.append(Step("analysis", template=template["templateName"]))
        else:
            raise ValueError(f"unsupported step {step}")
    background = canary.get("analysis")
    if background is not None:
        if background.get("startingStep", 0) != 0:
            raise ValueError("the benchmark starts the background analysis with the rollout")
        (template,) = background["templates"]
        return steps, template["templateName"]
    return steps, None
