"""The canary judge's evidence, recorded once per scrape interval per pod template hash.

Why recorded. Every gate measurement needs the canary's and stable's events over the canary's
whole life; computing them from the raw counters at each measurement re-reads hours of every
series. A recording rule group (evaluated every scrape interval, the ``step``) writes, per SLO
and per ``rollouts_pod_template_hash``, what the counters gained over that one step:

- ``slo:canary_requests:step`` (only where it is above zero: a step with traffic),
- ``slo:canary_errors:step``,
- ``slo:canary_errors_squared_per_request:step`` = errors^2 / requests of the step, from which
  the judge estimates how much more the errors vary from step to step than independent requests
  would (``delivery/judge.py``, dispersion).

Exact across restarts. Each series' gain over a step is its new sample minus its last sample at
least a step before (looked for within ``MEMORY``), or the whole new sample where the counter
started again from zero: a container restart (a reset), a new pod, or an error series a client
library creates at its first error (again after each restart). Summing the steps telescopes to
every request counted once: nothing is extrapolated (``increase()`` would), and an error series
that went stale at a restart cannot outlive the requests it came from (``last_over_time`` of the
counters did). What a crashed process served after its last scrape was never scraped and is lost
to requests and errors alike. Two limits: the steps telescope as long as the rule group does not
skip evaluations (``prometheus_rule_group_iterations_missed_total``), and a series that comes
back after more than ``MEMORY`` without samples is counted from zero again.

Prometheus outages. While Prometheus is down nothing is scraped and the group does not run; its
first evaluation after an outage shorter than ``MEMORY`` finds every counter's last sample from
before it, and the step across the outage carries what the counters gained meanwhile: nothing is
lost. After a longer outage that last sample is out of reach, so every counter would look new and
be counted whole, events from before the outage a second time. The group therefore records when
it ran (``slo:canary_evidence_heartbeat:time``) and, first at each evaluation, how long before it
had last run (``slo:canary_evidence_gap:seconds``); a step is recorded only where that gap is at
most ``MEMORY`` at it and at the two evaluations before (a step reads the earlier sample of a
counter a step and ``settle`` back, so the third evaluation after the outage is the first to
find one from after it). The steps across a longer outage are dropped, with what the canary and
stable served during it, requests and errors alike: less evidence, never evidence counted twice.
The background analysis reads the gap to pause the rollout after an outage longer than the
stack's ``outageLimit`` (``delivery/analysis.py``).

Warm-up. With a service's ``warmUp``, a step of a series counts only while its pod (the
``prometheus.podLabel`` label) has been scraped for the whole warm-up with no counter reset, so a
pod that is new or restarted warms up, to within one scrape interval. Warm-up requests still count
in the SLO's own rules; only the verdict leaves them out.

Kinds whose expressions aggregate the hash away (the ``query`` kind) cannot be recorded per hash;
their gates compute the same steps inline from ``rate()`` (extrapolated, approximate).
"""

from __future__ import annotations

from dataclasses import dataclass

from delivery import judge
from delivery.judge import Gate
from delivery.stack import DeliveryConfig, PrometheusConfig, ServiceDeployment, go_seconds
from slo import conventions as names
from slo import durations
from slo.rules import RecordingRule, RuleGroup

# How far back a series' previous sample is looked for: a restart or a Prometheus outage
# shorter than this loses nothing.
MEMORY_SECONDS = 300
MEMORY_STEPS = 20
# What each hash's steps are summed into, and the same for the service's other hashes.
PARTS = ("requests", "errors", "squares", "steps")
STEP_RECORDS = {"requests": names.CANARY_REQUESTS_STEP, "errors": names.CANARY_ERRORS_STEP,
                "squares": names.CANARY_SQUARES_STEP}


def step_record(part: str, others: bool) -> str:
    return STEP_RECORDS[part].replace("canary_", "canary_others_") if others else STEP_RECORDS[part]


def sum_record(part: str, others: bool) -> str:
    return f"slo:canary_{'others_' if others else ''}{part}:sum"


def dispersion_record(others: bool) -> str:
    return f"slo:canary_{'others_' if others else ''}dispersion:ratio"


OTHERS_RATIO = "slo:canary_others_error:ratio_upper"
# The running sums of the statistic's step increments (``judge.increments``), per hash: under
# the SLO's own hypotheses and under the judged ones (moved by stable); and the judged one at the
# change-point statistic's restart points.
RUNNING = {"canary": "slo:canary_llr:running", "judged": "slo:canary_judged_llr:running"}
RESTARTS = "slo:canary_judged_llr:restart"


@dataclass(frozen=True)
class Recording:
    """One gate's recorded evidence on a stack."""

    gate: Gate
    step: str  # the scrape interval: the group's evaluation interval
    window: str  # the evidence window the sums run over
    warm_up: str | None
    pod_label: str
    recent: str  # the span the ``recent`` statistic reads (``judge.Looks``)

    @property
    def memory(self) -> str:
        step = durations.parse(self.step)
        return durations.format_seconds(max(MEMORY_SECONDS, MEMORY_STEPS * step))

    @property
    def settle(self) -> str:
        """How long before each evaluation the counters are read: a third of the step (at least
        a second), so that a scrape started just before the evaluation and still being written
        is read at the next one instead of never (its step would count nothing)."""
        return durations.format_seconds(judge.settle_seconds(durations.parse(self.step)))

    @property
    def labels(self) -> dict[str, str]:
        slo = self.gate.slo
        return {names.LABEL_SERVICE: slo.service.name, names.LABEL_SLO: slo.slo.name}

    def _mine(self, record: str) -> str:
        matchers = ",".join(f'{k}="{v}"' for k, v in self.labels.items())
        return f"{record}{{{matchers}}}"

    def _keep(self) -> str:
        if self.warm_up is None:
            return ""
        by = f"{self.pod_label}, {names.HASH_LABEL}"
        sel = self.gate.slo.events.total_selector.render()
        scrapes = max(1, go_seconds(self.warm_up) // durations.parse(self.step))
        return (
            f"and on ({by}) (max by ({by}) (count_over_time({sel}[{self.warm_up}])) >= {scrapes}"
            f" unless on ({by}) max by ({by}) (resets({sel}[{self.warm_up}])) > 0)"
        )

    def expressions(self) -> tuple[str, str] | None:
        """(requests, errors) per hash over one step, or None for a kind recorded inline."""
        return self.gate.slo.events.step_counts(
            self.step, self.memory, (names.HASH_LABEL,), self._keep(), self.settle
        )

    def _rule(self, record: str, expr: str, **extra: str) -> RecordingRule:
        return {"record": record, "expr": expr, "labels": {**self.labels, **extra}}

    def _continuous(self) -> str:
        """Where the group ran within ``MEMORY`` before this evaluation and the two before it
        (module docstring): a step reads its earlier sample one step and ``settle`` back, so
        the counters have a sample from after the outage to count from only by the third."""
        gap = f'{names.CANARY_EVIDENCE_GAP}{{{names.LABEL_SERVICE}="{self.gate.slo.service.name}"}}'
        seen = durations.format_seconds(
            2 * durations.parse(self.step) + durations.parse(self.settle))
        return f"and on () (max_over_time({gap}[{seen}]) <= {durations.parse(self.memory)})"

    def _steps(self, requests: str, errors: str) -> list[RecordingRule]:
        rules = []
        for others in (False, True):
            n, x = (self._mine(step_record(p, others)) for p in ("requests", "errors"))
            on_hash = f"on ({names.HASH_LABEL})"
            if others:  # all hashes but this one, in the steps this one had traffic in
                own = {p: self._mine(step_record(p, False)) for p in PARTS[:3]}
                requests, errors, squares = (
                    f"sum({own[p]}) - on () group_right {own[p]}" for p in PARTS[:3]
                )
            else:
                squares = f"{x} ^ 2 / {on_hash} {n}"
            kept = f"{requests} > 0"
            if not others:  # stable's steps follow the canary's, so they are dropped alike
                kept = f"({kept}) {self._continuous()}"
            rules += [
                self._rule(step_record("requests", others), kept),
                self._rule(step_record("errors", others), f"({errors}) and {on_hash} {n}"),
                self._rule(step_record("squares", others),
                           f"({squares}) and {on_hash} {n}" if others else squares),
            ]
        return rules

    def _sums(self) -> list[RecordingRule]:
        rules = []
        for others in (False, True):
            for part in PARTS:
                fn = "count_over_time" if part == "steps" else "sum_over_time"
                step = self._mine(step_record("requests" if part == "steps" else part, others))
                rules.append(self._rule(sum_record(part, others), f"{fn}({step}[{self.window}])"))
        return rules

    def _counts(self, others: bool) -> judge.CountsQL:
        n, x, q, k = (self._mine(sum_record(p, others)) for p in PARTS)
        return judge.CountsQL(requests=n, errors=x, squares=q, steps=k)

    @property
    def restart_every(self) -> int:
        """Seconds between the change-point statistic's restart points (at least a step)."""
        return max(judge.RESTART_SECONDS, durations.parse(self.step))

    def _running(self) -> list[RecordingRule]:
        """Per hash, the running sums of the statistic's step increments: the last sum within
        the evidence window plus this step's increment, or the increment alone for a hash's
        first step. They are written at steps with traffic only; one of the judged sum per
        ``restart_every`` seconds is also written as a restart point."""
        n, x = (self._mine(step_record(p, False)) for p in ("requests", "errors"))
        on_hash = f"on ({names.HASH_LABEL})"
        rules = []
        for name, inc in zip(("canary", "judged"), judge.increments_ql(
                self.gate, x, n, self._mine(OTHERS_RATIO)), strict=True):
            own = self._mine(RUNNING[name])
            rules.append(self._rule(
                RUNNING[name],
                f"({inc}) + {on_hash} sum by ({names.HASH_LABEL}) "
                f"(last_over_time({own}[{self.window}]) or ({inc}) * 0)"))
        judged = self._mine(RUNNING["judged"])
        rules.append(self._rule(
            RESTARTS,
            f"{judged} and on () (vector(time()) % {self.restart_every} < "
            f"{durations.parse(self.step)})"))
        return rules

    def _change_points(self) -> tuple[str, str]:
        """(cusum, recent) before dividing by the dispersion: the judged running sum above its
        lowest restart point in the window (0, before the canary's first step, is one), and
        the absolute running sum's gain over the last ``recent`` seconds."""
        judged, canary = (f"last_over_time({self._mine(RUNNING[n])}[{self.window}])"
                          for n in ("judged", "canary"))
        lowest = f"(min_over_time({self._mine(RESTARTS)}[{self.window}]) < 0 or {judged} * 0)"
        before = (f"(last_over_time({self._mine(RUNNING['canary'])}[{self.window}] offset "
                  f"{self.recent}) or {canary} * 0)")
        return f"{judged} - {lowest}", f"{canary} - {before}"

    def _statistics(self) -> list[RecordingRule]:
        canary, others = self._counts(False), self._counts(True)
        rules = [
            self._rule(dispersion_record(False), judge.dispersion_ql(canary)),
            self._rule(dispersion_record(True), judge.dispersion_ql(others)),
            self._rule(OTHERS_RATIO, judge.stable_ratio_ql(others,
                                                           self._mine(dispersion_record(True)))),
            *self._running(),
        ]
        cusum, recent = self._change_points()
        parts = judge.evidence_ql(
            self.gate, canary, others, self._mine(dispersion_record(False)),
            self._mine(dispersion_record(True)), self._mine(OTHERS_RATIO), cusum, recent,
        )
        for name, expr in parts.items():
            rules.append(self._rule(names.CANARY_EVIDENCE, expr, **{judge.EVIDENCE_LABEL: name}))
        return rules

    def rules(self) -> list[RecordingRule]:
        found = self.expressions()
        if found is None:
            return []
        return self._steps(*found) + self._sums() + self._statistics()


def recording(gate: Gate, deployment: ServiceDeployment, delivery: DeliveryConfig,
              prometheus: PrometheusConfig) -> Recording:
    return Recording(gate, prometheus.scrape_interval, judge.evidence_window(delivery),
                     deployment.warm_up, prometheus.pod_label,
                     judge.gate_looks(delivery, prometheus.scrape_interval).span_text)


def rule_name(service: str) -> str:
    return f"{service}-canary-evidence"


def group_name(service: str) -> str:
    return f"slo-canary-evidence-{service}"


def heartbeat_rules(service: str, window: str, memory: str) -> tuple[RecordingRule, ...]:
    """The group's first rule (the gap since it last ran, seen over the evidence window or its
    memory, whichever is longer) and its last (when it ran)."""
    labels = {names.LABEL_SERVICE: service}
    beat = f'{names.CANARY_EVIDENCE_HEARTBEAT}{{{names.LABEL_SERVICE}="{service}"}}'
    seen = durations.format_seconds(max(durations.parse(window), durations.parse(memory)))
    return (
        {"record": names.CANARY_EVIDENCE_GAP, "expr": f"time() - max_over_time({beat}[{seen}])",
         "labels": labels},
        {"record": names.CANARY_EVIDENCE_HEARTBEAT, "expr": "vector(time())", "labels": labels},
    )


def rule_group(service: str, recordings: list[Recording]) -> RuleGroup | None:
    """The service's evidence group (rules in order: later ones read earlier ones at the same
    evaluation), or None when no gated SLO is recorded."""
    rules = [rule for r in recordings for rule in r.rules()]
    if not rules:
        return None
    gap, beat = heartbeat_rules(service, recordings[0].window, recordings[0].memory)
    return {"name": group_name(service), "interval": recordings[0].step,
            "rules": [gap, *rules, beat]}
