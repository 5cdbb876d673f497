"""``python -m delivery explain``: an AnalysisRun's canary verdicts in words.

It reads what the controller stored (``kubectl get analysisrun <run> -o yaml``, a file or
standard input, one run or a ``List`` of them; or, with a stack file and a service, the runs of
the Rollout's current revision from the stack's cluster) and, per metric the templates of this
project wrote, decodes the last measurement with ``judge.EVIDENCE`` (the one definition of the
vector) and the thresholds from the metric's own conditions (the ones the controller evaluated).
So the explanation is of the run as it was judged, not of the current stack.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from delivery import judge
from delivery.analysis import OUTAGE_METRIC, SHARED_INCIDENT_SUFFIX
from delivery.names import REVISION_ANNOTATION
from delivery.stack import load_stack_file, read_stack_file, stack_catalogue
from slo.problems import ConfigError


@dataclass
class MetricVerdict:
    name: str
    role: str  # gate, background, shared-incident or outage
    phase: str
    # aborted, failed-advisory, passed, waiting, paused, no-traffic, prometheus-errors
    verdict: str
    reason: str
    evidence: dict[str, float] = field(default_factory=dict)
    advisory: bool = False  # a dry-run metric: measured, never holds or aborts the rollout
    abort: float | None = None
    accept: float | None = None
    cusum_abort: float | None = None
    min_steps: int | None = None
    measurements: int = 0
    errors: int = 0
    last_error: str = ""


@dataclass
class RunVerdict:
    name: str
    phase: str
    message: str
    metrics: list[MetricVerdict]


def _threshold(condition: str, index: int, op: str) -> float | None:
    found = re.search(judge.condition_bound(index, op), condition)
    return float(found.group(1)) if found else None


def _vector(text: Any) -> list[float] | None:
    """A measurement's value as Argo's Prometheus provider writes it: ``[v1,v2,...]``."""
    text = str(text or "").strip()
    if not (text.startswith("[") and text.endswith("]")):
        return None
    inner = text[1:-1].strip()
    try:
        return [float(v) for v in inner.split(",")] if inner else []
    except ValueError:
        return None


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _count(value: float) -> str:
    return f"{value:,.0f}" if value == int(value) else f"{value:,.1f}"


def _ratio(errors: float, requests: float) -> str:
    return f"{100 * errors / requests:.3g}%" if requests > 0 else "-"


def _more_requests(evidence: dict[str, float], target: float, statistic: float) -> str:
    """Roughly how many more canary requests the statistic needs to reach ``target`` if it keeps
    moving at its average rate so far (a straight line, not a promise)."""
    n = evidence["canary_requests"]
    more = (target - statistic) * n / statistic if n > 0 and statistic else 0.0
    return f"; at its pace so far about {_count(math.ceil(more))} more canary requests" \
        if more > 0 else ""


def _metric(spec: dict[str, Any], result: dict[str, Any], advisory: bool) -> MetricVerdict:
    name = str(spec.get("name", result.get("name", "")))
    failure, success = str(spec.get("failureCondition", "")), str(spec.get("successCondition", ""))
    role = "shared-incident" if name.endswith(SHARED_INCIDENT_SUFFIX) else (
        "outage" if name == OUTAGE_METRIC else
        "gate" if _threshold(success, judge.CANARY, "<=") is not None else "background")
    measured = [m for m in result.get("measurements") or [] if isinstance(m, dict)]
    errors = [m for m in measured if m.get("phase") == "Error"]
    judged = [m for m in measured if m.get("phase") != "Error"]
    verdict = MetricVerdict(
        name=name, role=role, phase=str(result.get("phase", "Pending")), verdict="waiting",
        reason="", abort=_threshold(failure, judge.JUDGED, ">=")
        or _threshold(success, judge.JUDGED, ">="),
        accept=_threshold(success, judge.CANARY, "<="),
        cusum_abort=_threshold(failure, judge.CUSUM, ">=")
        or _threshold(success, judge.CUSUM, "<"),
        min_steps=int(s) if (s := _threshold(failure or success, judge.STEPS, ">=")) else None,
        measurements=len(measured), errors=len(errors), advisory=advisory,
        last_error=str(errors[-1].get("message", "")) if errors else "",
    )
    values = _vector(judged[-1].get("value")) if judged else None
    if role == "outage":
        _outage(verdict, values, _threshold(success, 0, "<="))
        return verdict
    if values and len(values) == len(judge.EVIDENCE):
        verdict.evidence = dict(zip(judge.EVIDENCE, values, strict=True))
    _decide(verdict)
    return verdict


def _outage(v: MetricVerdict, values: list[float] | None, limit: float | None) -> None:
    """The background's prometheus-outage metric: the evidence group's longest recent gap."""
    if values:
        v.evidence = {"gap": values[0]}
    gap = values[0] if values else None
    if v.phase == "Inconclusive" or (gap is not None and limit is not None and gap > limit):
        v.verdict = "paused"
        v.reason = (f"Prometheus was away for {_count(gap or 0)} s, longer than the outage limit "
                    f"({_count(limit or 0)} s); nothing was judged meanwhile and the evidence "
                    "of those minutes is left out; the rollout pauses for a human: promote to "
                    "take it past this gate (later gates still judge it), or abort")
    elif v.measurements and v.measurements == v.errors:
        v.verdict = "prometheus-errors"
        v.reason = (f"every measurement was an error ({v.errors}; last: {v.last_error}): "
                    "Prometheus did not answer")
    else:
        v.verdict = "passed" if v.measurements else "waiting"
        v.reason = "no Prometheus outage longer than the limit" if v.measurements else \
            "not measured (yet, or the run ended first)"


def _decide(v: MetricVerdict) -> None:
    """The verdict of a gate, background or shared-incident metric from its last evidence and
    its thresholds, and the reason in words."""
    e = v.evidence
    if not v.measurements:
        v.verdict, v.reason = "waiting", "not measured (yet, or the run ended first)"
        return
    if not e:
        if v.measurements == v.errors:
            v.verdict = "prometheus-errors"
            v.reason = (f"every measurement was an error ({v.errors}; last: {v.last_error}): "
                        "Prometheus did not answer, and no verdict was taken")
        else:
            v.verdict, v.reason = "no-traffic", "no canary traffic recorded yet: no verdict"
        return
    abort, accept = v.abort, v.accept
    steps = e["steps"]
    if v.min_steps is not None and steps < v.min_steps:
        v.verdict = "waiting"
        v.reason = (f"canary traffic in {_count(steps)} of the {v.min_steps} scrape intervals "
                    "needed before any verdict")
        return
    if v.role == "shared-incident":
        _shared_incident(v)
        return
    cusum = v.cusum_abort
    late = cusum is not None and e["cusum"] >= cusum and not (
        abort is not None and e["judged"] >= abort)
    if v.phase == "Failed" or (abort is not None and e["judged"] >= abort) or late:
        _reached_abort(v, late)
        return
    if v.role == "gate" and accept is not None and e["canary"] <= accept:
        _within_pass(v)
        return
    _undecided(v)


def _shared_incident(v: MetricVerdict) -> None:
    """The background's shared-incident metric: paused when canary and stable both reached the
    abort boundary and the canary is not the worse."""
    e, abort = v.evidence, v.abort
    shared = v.phase in ("Inconclusive", "Failed") or (
        abort is not None and e["canary"] >= abort and e["stable"] >= abort
        and e["judged"] < abort)
    v.verdict = "paused" if shared else "waiting"
    v.reason = (
        f"shared incident: the canary ({e['canary']:.2f}) and stable ({e['stable']:.2f}) "
        f"both reached the abort boundary {_num(abort)} while the canary is not worse than "
        "stable; rolling back would not help, so the rollout pauses for a human"
        if shared else "no shared incident")


def _reached_abort(v: MetricVerdict, late: bool) -> None:
    """A metric that failed: its statistic reached abort, over the whole canary or (``late``)
    since its lowest restart point; an advisory metric's rollout goes on."""
    e = v.evidence
    against = "against stable's error ratio" if e["stable_requests"] > 0 else "absolute"
    if late:
        v.reason = (f"statistic since its lowest restart point ({against}) "
                    f"{e['cusum']:.2f} >= abort {_num(v.cusum_abort)}: the canary fails more "
                    "often than a good release would, over the rollout or since a later weight "
                    "(a moderate burn, or a regression that started during the rollout); ")
    else:
        v.reason = (f"statistic ({against}) {e['judged']:.2f} >= abort {_num(v.abort)}: the "
                    "canary fails many times more often than a good release would; ")
    if v.advisory:
        v.verdict = "failed-advisory"
        v.reason += "this SLO is advisory (dry run), so the rollout goes on"
    else:
        v.verdict = "aborted"
        v.reason += "the rollout is rolled back"


def _within_pass(v: MetricVerdict) -> None:
    """A gate whose statistic is at or below pass: passed when its recent requests lean good."""
    e = v.evidence
    if e["recent"] < 0:
        v.verdict = "passed"
        v.reason = (f"statistic {e['canary']:.2f} <= pass {_num(v.accept)} and the evidence "
                    f"of this weight's recent requests leans good ({e['recent']:.2f} < 0): "
                    "good enough for this step")
    else:
        v.reason = (f"statistic {e['canary']:.2f} <= pass {_num(v.accept)}, but the evidence "
                    f"of this weight's recent requests leans bad or is missing "
                    f"({e['recent']:.2f} >= 0): "
                    "no pass until the canary's recent requests look good")


def _undecided(v: MetricVerdict) -> None:
    """No verdict yet: where the statistic is between the boundaries, and roughly how many more
    canary requests it needs to reach one."""
    e, abort, accept = v.evidence, v.abort, v.accept
    if math.isnan(e["judged"]):
        v.reason = "no stable traffic over the canary's intervals yet: no baseline to abort on"
        return
    bounds = f"between pass {_num(accept)} and abort {_num(abort)}" if accept is not None \
        else f"below abort {_num(abort)}"
    v.reason = f"statistic {e['judged']:.2f}, {bounds}"
    if accept is not None and e["canary"] < 0:
        v.reason += _more_requests(e, accept, e["canary"]) + " to pass"
    elif abort is not None and e["judged"] > 0:
        v.reason += _more_requests(e, abort, e["judged"]) + " to abort"


def explain_run(run: dict[str, Any]) -> RunVerdict:
    specs = {m.get("name"): m for m in run.get("spec", {}).get("metrics") or []
             if isinstance(m, dict)}
    status = run.get("status") or {}
    results = {r.get("name"): r for r in status.get("metricResults") or [] if isinstance(r, dict)}
    dry_run = {d.get("metricName") for d in run.get("spec", {}).get("dryRun") or []
               if isinstance(d, dict)}
    metrics = [_metric(specs.get(name) or {"name": name}, results.get(name) or {},
                       name in dry_run or "*" in dry_run)
               for name in list(specs) + [n for n in results if n not in specs]]
    return RunVerdict(
        name=str(run.get("metadata", {}).get("name", "")), phase=str(status.get("phase", "")),
        message=str(status.get("message", "")), metrics=metrics,
    )


def read_runs(text: str, source: str) -> list[dict[str, Any]]:
    """The AnalysisRuns in ``text`` (YAML or JSON: one run or a List), or ConfigError."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise ConfigError([f"{source}: not YAML or JSON{where}"]) from None
    items = data.get("items") if isinstance(data, dict) and data.get("kind") == "List" else [data]
    runs = [i for i in items or [] if isinstance(i, dict) and i.get("kind") == "AnalysisRun"]
    if not runs or len(runs) != len(items or []):
        raise ConfigError([f"{source}: not an AnalysisRun (kubectl get analysisrun NAME -o yaml)"])
    for run in runs:
        if not isinstance(run.get("spec", {}).get("metrics"), list):
            raise ConfigError([f"{source}: {run.get('metadata', {}).get('name', 'a run')}: "
                               "spec.metrics: a list of metrics is expected"])
    return runs


def cluster_runs(
    stack_path: Path, service: str, kubectl: str = "kubectl"
) -> list[dict[str, Any]]:
    """The AnalysisRuns of the Rollout ``service``'s current revision, oldest first, from the
    cluster of the stack's Kubernetes provider (its ``kubernetes:kubeconfig`` and
    ``kubernetes:context``, else kubectl's own defaults). ConfigError when the stack, kubectl or
    the cluster cannot say."""
    source = stack_path.name
    stack = load_stack_file(stack_path)
    catalogue, _ = stack_catalogue(stack, Path.cwd(), source)
    namespaces = {s.name: s.namespace for s in catalogue.services}
    if service not in stack.services:
        raise ConfigError([f"{source}: {service}: not a service of this stack (services: "
                           f"{', '.join(sorted(stack.services))})"])
    namespace = namespaces[service]
    config = read_stack_file(stack_path)
    base = [kubectl]
    kubeconfig, context = config.get("kubernetes:kubeconfig"), config.get("kubernetes:context")
    with tempfile.TemporaryDirectory() as tmp:
        if isinstance(kubeconfig, str) and "\n" in kubeconfig:  # the provider takes contents too
            (Path(tmp) / "kubeconfig").write_text(kubeconfig)
            kubeconfig = str(Path(tmp) / "kubeconfig")
        if isinstance(kubeconfig, str):
            base += ["--kubeconfig", kubeconfig]
        if isinstance(context, str):
            base += ["--context", context]
        rollout = _kubectl([*base, "get", "rollout", service, "-n", namespace, "-o", "json"],
                           f"rollout {namespace}/{service}")
        status, metadata = rollout.get("status") or {}, rollout.get("metadata") or {}
        pod_hash = status.get("currentPodHash")
        if not pod_hash:
            raise ConfigError([f"rollout {namespace}/{service}: no current revision yet"])
        found = _kubectl([*base, "get", "analysisrun", "-n", namespace, "-l",
                          f"rollouts-pod-template-hash={pod_hash}", "-o", "json"],
                         f"analysis runs of {namespace}/{service}")
    revision = (metadata.get("annotations") or {}).get(REVISION_ANNOTATION)
    runs = sorted(
        (r for r in found.get("items") or []
         if (r.get("metadata", {}).get("annotations") or {}).get(REVISION_ANNOTATION) == revision),
        key=lambda r: str(r.get("metadata", {}).get("creationTimestamp", "")),
    )
    if not runs:
        raise ConfigError([f"rollout {namespace}/{service} revision {revision} ({pod_hash}): "
                           "no AnalysisRun yet"])
    return runs


def _kubectl(args: list[str], what: str) -> dict[str, Any]:
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)
    except FileNotFoundError:
        raise ConfigError([f"{args[0]}: not found; install kubectl, or save the run with kubectl "
                           "elsewhere and explain the file"]) from None
    except subprocess.TimeoutExpired:
        raise ConfigError([f"{what}: kubectl did not answer within 60 s"]) from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise ConfigError([f"{what}: kubectl failed: {last}"])
    try:
        return dict(json.loads(done.stdout))
    except ValueError:
        raise ConfigError([f"{what}: kubectl did not print JSON"]) from None


def render_text(verdicts: list[RunVerdict]) -> str:
    lines = []
    for run in verdicts:
        lines.append(f"AnalysisRun {run.name}: {run.phase or 'Running'}"
                     + (f" ({run.message})" if run.message else ""))
        for m in run.metrics:
            lines.append(f"  {m.name} [{m.role}]: {m.verdict.upper()}: {m.reason}")
            e = m.evidence
            if e and m.role not in ("shared-incident", "outage"):
                lines.append(
                    f"    canary: {_count(e['canary_errors'])} bad of "
                    f"{_count(e['canary_requests'])} requests "
                    f"({_ratio(e['canary_errors'], e['canary_requests'])}) over "
                    f"{_count(e['steps'])} scrape intervals; dispersion {e['dispersion']:.2g}")
                lines.append(
                    f"    stable, same intervals: {_count(e['stable_errors'])} bad of "
                    f"{_count(e['stable_requests'])} "
                    f"({_ratio(e['stable_errors'], e['stable_requests'])})")
            if m.errors and m.verdict != "prometheus-errors":
                lines.append(f"    {m.errors} of {m.measurements} measurements were errors "
                             f"(Prometheus not answering; last: {m.last_error}); no verdict "
                             "was taken from them")
    return "\n".join(lines) + "\n"


def render_json(verdicts: list[RunVerdict]) -> str:
    def clean(value: Any) -> Any:
        if isinstance(value, float) and not math.isfinite(value):
            return None if math.isnan(value) else str(value)
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, list):
            return [clean(v) for v in value]
        return value

    return json.dumps([clean(asdict(v)) for v in verdicts], indent=2) + "\n"
