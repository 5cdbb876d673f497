"""Notifications of canary verdicts through Argo Rollouts' notification engine.

What the engine gives a template (Argo Rollouts v1.9.1, ``utils/record/record.go``): the Rollout
as the controller held it when it recorded the event (its status is the one *before* that
reconcile's patch), ``analysisRuns``: the AnalysisRuns of the Rollout's current pod hash and
revision, newest first, straight from the controller's informer, ``time`` and ``secrets``.
Templates are Go ``text/template`` with sprig (no ``env``); a trigger's ``when`` is an expr
expression over the same variables. So a message can hold the whole verdict: each SLO's phase
and its last measurement, decoded here with ``judge.EVIDENCE`` (the one definition of the
vector, shared with ``delivery explain``).

Argo Rollouts sends notifications two ways: on its Kubernetes events (a trigger named after
the event reason, ``on-rollout-aborted``; the Rollout as it was *before* the reconcile that
recorded the event) and from the notification engine's own controller, which evaluates every
subscribed trigger on each change of the Rollout (the current object) and sends when a
condition turns true, remembering what it sent in the Rollout's
``notified.notifications.argoproj.io`` annotation. These triggers are named after no event, so
only the second way sends them, once per state:

- ``slo-canary-aborted``: the rollout is aborted (again after a retry);
- ``slo-canary-paused``: paused by anything but a timed pause step: an analysis that could not
  decide (a gate out of measurements, a shared incident, a budget freeze; also inside a timed
  pause), the manual gate (a pause step without duration), an operator;
- ``slo-canary-completed``: Healthy on a revision that had analysis runs, once per revision (a
  Rollout's first deployment has none).

A Rollout subscribes with ``notifications.argoproj.io/subscribe.<trigger>.<notifier>``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from delivery import judge
from delivery.analysis import OUTAGE_METRIC, SHARED_INCIDENT_SUFFIX
from delivery.names import REVISION_ANNOTATION
from delivery.stack import NOTIFY_ON, NotificationsConfig
from slo import dashboards
from slo.yamlout import dump

CONFIGMAP = "argo-rollouts-notification-configmap"
SECRET = "argo-rollouts-notification-secret"
ANNOTATION = "notifications.argoproj.io/subscribe.{trigger}.{notifier}"
FREEZE_METRIC = "error-budget-remaining"
REVISION = f'rollout.metadata.annotations["{REVISION_ANNOTATION}"]'

_STATUS = "rollout.status"
_STEP = "rollout.spec.strategy.canary.steps[rollout.status.currentStepIndex]"


@dataclass(frozen=True)
class Event:
    """What one subscribable event is: when it is sent and what its message describes."""

    name: str
    when: str  # expr over the Rollout the controller holds now and its AnalysisRuns
    headline: str
    phases: tuple[str, ...]  # the metric results the message describes...
    newest_run_only: bool  # ...of the newest AnalysisRun only, or of all of the revision's
    action: str = ""  # what to run next ({name}, {ns})
    once_per: str = ""  # an expr: sent once per its value, not once per state
    since: str = ""  # Go template: the moment the state began into ``$since`` (for the key)

    @property
    def trigger(self) -> str:
        return f"slo-canary-{self.name}"

    @property
    def template(self) -> str:
        return f"slo-canary-rollout-{self.name}"


EVENTS = {event.name: event for event in (
    Event(
        "aborted",
        when=f"{_STATUS} != nil and {_STATUS}.abort == true",
        headline="ABORTED, rolled back: stable keeps serving",
        phases=("Failed", "Error"),
        newest_run_only=False,
        action="retry this image: kubectl argo rollouts retry rollout {name} -n {ns}",
        since='{{- with .rollout.status -}}{{- $since = toString (default "" .abortedAt) -}}'
        '{{- end -}}',
    ),
    Event(
        "paused",
        when=(
            f"{_STATUS} != nil and {_STATUS}.abort != true and ("
            "rollout.spec.paused == true"
            f" or ({_STATUS}.pauseConditions != nil and ("
            f"any({_STATUS}.pauseConditions, {{.reason != 'CanaryPauseStep'}})"
            f" or ({_STATUS}.currentStepIndex != nil"
            f" and {_STATUS}.currentStepIndex < len(rollout.spec.strategy.canary.steps)"
            f" and {_STEP}.pause != nil and {_STEP}.pause.duration == nil))))"
        ),
        headline="PAUSED, waiting for a human",
        phases=("Inconclusive", "Error"),
        newest_run_only=False,
        action="go on: kubectl argo rollouts promote {name} -n {ns}; roll back: kubectl argo "
        "rollouts abort {name} -n {ns}",
        since='{{- with .rollout.status -}}{{- range .pauseConditions -}}'
        '{{- $t := toString (default "" .startTime) -}}{{- if gt $t $since -}}{{- $since = $t -}}'
        '{{- end -}}{{- end -}}{{- end -}}',
    ),
    Event(
        "completed",
        when=(
            f"{_STATUS} != nil and {_STATUS}.phase == 'Healthy'"
            f" and {_STATUS}.stableRS == {_STATUS}.currentPodHash and analysisRuns != nil"
        ),
        headline="PROMOTED: the canary is now stable",
        phases=("Successful",),
        newest_run_only=True,
        once_per=REVISION,
    ),
)}
assert set(EVENTS) == set(NOTIFY_ON), "an event the stack file offers has no definition here"


def _go(text: str) -> str:
    """A Go template string literal."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _reason() -> str:
    """Go template: the verdict of metric ``$m`` in words, into ``$why``."""
    return (
        '{{- $why := $phase -}}'
        '{{- if eq $phase "Failed" -}}{{- $why = "FAILED: fails more often than a good '
        'release would (its statistic reached the abort boundary)" -}}'
        '{{- else if eq $phase "Error" -}}{{- $why = printf "PROMETHEUS ERRORS: no verdict '
        'could be taken (%s)" (toString (default "" $m.message)) -}}'
        f'{{{{- else if hasSuffix {_go(SHARED_INCIDENT_SUFFIX)} $metric -}}}}'
        '{{- $why = "SHARED INCIDENT: canary and stable both fail; rolling back would not '
        'help" -}}'
        f'{{{{- else if and (eq $metric {_go(OUTAGE_METRIC)}) (eq $phase "Inconclusive") -}}}}'
        '{{- $why = "PROMETHEUS OUTAGE: Prometheus was away longer than the outage limit and '
        'nothing was judged meanwhile; promote past this gate, or abort" -}}'
        f'{{{{- else if eq $metric {_go(FREEZE_METRIC)} -}}}}'
        '{{- $why = "BUDGET EXHAUSTED: releases wait until the error budget recovers" -}}'
        '{{- else if eq $phase "Inconclusive" -}}{{- $why = "INCONCLUSIVE: not enough '
        'evidence either way" -}}'
        '{{- else if eq $phase "Successful" -}}{{- $why = "PASSED" -}}{{- end -}}'
        '{{- if $m.dryRun -}}{{- $why = printf "%s (advisory: dry run, it decides nothing)" '
        '$why -}}{{- end -}}'
    )


def _evidence() -> str:
    """Go template: the last judged measurement of ``$m`` decoded into ``$ev`` (a dict by
    ``judge.EVIDENCE`` name, empty when it is not the judge's vector) and a sentence ``$seen``."""
    i = {name: k for k, name in enumerate(judge.EVIDENCE)}

    def num(name: str, fmt: str = "%.0f") -> str:
        return f'(printf "{fmt}" (float64 (index $v {i[name]})))'

    pairs = " ".join(f'"{name}" (index $v {k})' for k, name in enumerate(judge.EVIDENCE))
    return (
        '{{- $value := "" -}}'
        '{{- range $m.measurements -}}{{- if ne (toString .phase) "Error" -}}'
        '{{- $value = toString (default "" .value) -}}{{- end -}}{{- end -}}'
        '{{- $v := splitList "," (trimAll "[]" $value) -}}'
        '{{- $ev := dict -}}{{- $seen := "" -}}'
        f'{{{{- if eq (len $v) {len(judge.EVIDENCE)} -}}}}'
        f'{{{{- $ev = dict {pairs} -}}}}'
        + _thresholds() +
        '{{- $seen = printf "canary %s bad of %s requests, stable %s bad of %s over the same %s '
        'scrape intervals" '
        f'{num("canary_errors")} {num("canary_requests")} {num("stable_errors")} '
        f'{num("stable_requests")} {num("steps")} -}}}}'
        f'{{{{- if hasSuffix {_go(SHARED_INCIDENT_SUFFIX)} $metric -}}}}'
        '{{- $seen = printf "%s; the canary\'s statistic %s and stable\'s %s both at or above '
        f'the abort boundary %s, the canary no worse than stable (%s)" $seen '
        f'{num("canary", "%.2f")} {num("stable", "%.2f")} $abort {num("judged", "%.2f")} -}}}}'
        '{{- else -}}'
        '{{- $seen = printf "%s; statistic %s (aborts at %s), since its lowest restart point %s '
        '(aborts at %s), the canary alone %s (passes at %s; recent %s, a pass needs it '
        f'below 0)" $seen {num("judged", "%.2f")} $abort {num("cusum", "%.2f")} $cusum '
        f'{num("canary", "%.2f")} $pass {num("recent", "%.2f")} -}}}}'
        '{{- end -}}'
        '{{- else if $value -}}{{- $seen = printf "last value %s" $value -}}{{- end -}}'
    )


def _thresholds() -> str:
    """Go template: the abort and pass boundaries of ``$metric`` in ``$run`` into ``$abort`` and
    ``$pass``, read from the conditions the controller evaluated (as ``delivery explain`` does)."""

    def bound(index: int, op: str) -> str:
        found, last = judge.condition_bound(index, op), judge.CONDITION_NUMBER + "$"
        return (f'(default "-" (regexFind {_go(last)} (regexFind {_go(found)} '
                '(printf "%s %s" $fc $sc))))')

    return (
        '{{- $fc := "" -}}{{- $sc := "" -}}{{- with $run.spec -}}{{- range .metrics -}}'
        '{{- if eq (toString .name) $metric -}}'
        '{{- $fc = toString (default "" .failureCondition) -}}'
        '{{- $sc = toString (default "" .successCondition) -}}{{- end -}}{{- end -}}{{- end -}}'
        f'{{{{- $abort := {bound(judge.JUDGED, ">=")} -}}}}'
        f'{{{{- $pass := {bound(judge.CANARY, "<=")} -}}}}'
        f'{{{{- $cusum := {bound(judge.CUSUM, ">=")} -}}}}'
        '{{- if ne $abort "-" -}}{{- $abort = printf "%.2f" (float64 $abort) -}}{{- end -}}'
        '{{- if ne $cusum "-" -}}{{- $cusum = printf "%.2f" (float64 $cusum) -}}{{- end -}}'
        '{{- if ne $pass "-" -}}{{- $pass = printf "%.2f" (float64 $pass) -}}{{- end -}}'
    )


def _prelude(event: str, dashboards: dict[str, str]) -> str:
    """Go template computing ``$lines`` (the message) and ``$slos`` (per SLO, for JSON)."""
    spec = EVENTS[event]
    phase_list = " ".join(_go(p) for p in spec.phases)
    runs = "(list (first .analysisRuns))" if spec.newest_run_only else ".analysisRuns"
    board_pairs = " ".join(f"{_go(k)} {_go(v)}" for k, v in sorted(dashboards.items()))
    action = spec.action.format(name="%[1]s", ns="%[2]s")
    lines = [
        '{{- $name := toString .rollout.metadata.name -}}',
        '{{- $ns := toString .rollout.metadata.namespace -}}',
        '{{- $rev := "?" -}}{{- with .rollout.metadata.annotations -}}'
        f'{{{{- $rev = default "?" (index . {_go(REVISION_ANNOTATION)}) -}}}}{{{{- end -}}}}',
        '{{- $image := "" -}}{{- range .rollout.spec.template.spec.containers -}}'
        '{{- if not $image -}}{{- $image = toString .image -}}{{- end -}}{{- end -}}',
        '{{- $hash := "" -}}{{- with .rollout.status -}}{{- $hash = toString '
        '(default "" .currentPodHash) -}}{{- end -}}',
        f'{{{{- $lines := list (printf "%s/%s %s (revision %s, %s)" $ns $name '
        f'{_go(spec.headline)} (toString $rev) $image) -}}}}',
        '{{- $slos := list -}}',
        f'{{{{- if .analysisRuns -}}}}{{{{- range $run := {runs} -}}}}'
        '{{- with $run.status -}}{{- range $m := .metricResults -}}',
        '{{- $phase := toString (default "" $m.phase) -}}'
        '{{- $metric := toString (default "" $m.name) -}}',
        f'{{{{- if has $phase (list {phase_list}) -}}}}',
        _reason(),
        _evidence(),
        '{{- $lines = append $lines (printf "SLO %s: %s%s [run %s]" $metric $why '
        '(ternary (printf "; %s" $seen) "" (ne $seen "")) $run.metadata.name) -}}',
        '{{- $slos = append $slos (dict "slo" $metric "phase" $phase "run" '
        '$run.metadata.name "why" $why "evidence" $ev) -}}',
        '{{- end -}}{{- end -}}{{- end -}}{{- end -}}{{- end -}}',
    ]
    if event == "paused":
        lines.append(
            '{{- if eq (len $slos) 0 -}}{{- $lines = append $lines "no analysis is '
            'inconclusive: the rollout waits at its manual gate, or an operator paused it" '
            '-}}{{- end -}}'
        )
    lines += [
        f'{{{{- $boards := dict {board_pairs} -}}}}',
        '{{- with get $boards $name -}}{{- $lines = append $lines (printf "dashboard: %s" .) '
        '-}}{{- end -}}',
        '{{- if $hash -}}{{- $lines = append $lines (printf "explain: kubectl get '
        'analysisrun -n %s -l rollouts-pod-template-hash=%s -o yaml | python -m delivery '
        'explain -" $ns $hash) -}}{{- end -}}',
    ]
    if action:
        lines.append(f'{{{{- $lines = append $lines (printf {_go(action)} $name $ns) -}}}}')
    return "".join(lines)


def template(event: str, dashboards: dict[str, str], webhooks: list[str]) -> dict[str, Any]:
    """The notification template of one event: a text message (Slack, Teams, e-mail, ...) and,
    per webhook notifier, a JSON body with the same text, each SLO's verdict and a ``key`` that
    names the state it reports (namespace/rollout/revision/event, and for an abort when it was
    aborted, for a pause when its latest pause condition began): the engine delivers at least
    once, and a receiver that must not repeat itself drops a key it has seen."""
    prelude = _prelude(event, dashboards)
    body = (
        prelude + '{{- $since := "" -}}' + EVENTS[event].since
        + f'{{{{- $key := printf "%s/%s/%s/%s" $ns $name (toString $rev) {_go(event)} -}}}}'
        '{{- if $since -}}{{- $key = printf "%s/%s" $key $since -}}{{- end -}}'
        f'{{{{ toJson (dict "event" {_go(event)} "key" $key "rollout" $name "namespace" $ns '
        '"revision" $rev "image" $image "slos" $slos "text" (join "\\n" $lines)) }}'
    )
    out: dict[str, Any] = {"message": prelude + '{{ join "\\n" $lines }}'}
    if webhooks:
        out["webhook"] = {
            name: {"method": "POST", "body": body} for name in sorted(webhooks)
        }
    return out


def configmap_data(cfg: NotificationsConfig, dashboards: dict[str, str]) -> dict[str, str]:
    """The notification ConfigMap's data: notifiers, the three templates and triggers."""
    webhooks = [name for name, n in cfg.notifiers.items() if n.type == "webhook"]
    data = {
        f"service.{n.type}.{name}": dump(dict(n.options))
        for name, n in sorted(cfg.notifiers.items())
    }
    for name, event in EVENTS.items():
        data[f"template.{event.template}"] = dump(template(name, dashboards, webhooks))
        condition: dict[str, Any] = {"when": event.when, "send": [event.template]}
        if event.once_per:
            condition["oncePer"] = event.once_per
        data[f"trigger.{event.trigger}"] = dump([condition])
    return data


def dashboard_links(cfg: NotificationsConfig, grafana_url: str | None,
                    services: list[str]) -> dict[str, str]:
    """Each service's SLO dashboard URL, when a Grafana URL is known."""
    base = cfg.dashboard_url or grafana_url
    if not base:
        return {}
    return {s: f"{base.rstrip('/')}/d/{dashboards.dashboard_uid(s)}" for s in sorted(services)}


def subscriptions(service: str, cfg: NotificationsConfig | None) -> dict[str, str]:
    """The Rollout annotations subscribing ``service`` to its notifiers."""
    out: dict[str, list[str]] = {}
    for sub in cfg.subscriptions if cfg else []:
        if sub.services and service not in sub.services:
            continue
        for event in sub.events:
            key = ANNOTATION.format(trigger=EVENTS[event].trigger, notifier=sub.to)
            if sub.recipient not in out.setdefault(key, []):
                out[key].append(sub.recipient)
    return {key: ";".join(r for r in recipients if r) for key, recipients in sorted(out.items())}
