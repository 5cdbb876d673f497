"""OpenSLO read into a catalogue: ``openslo/v1`` (SLO, SLI, AlertPolicy, AlertCondition,
DataSource, Service) and ``openslo/v1alpha`` as Sloth reads it.

v1 maps: SLOs with an inline or referenced SLI whose ``ratioMetric`` has good or bad and total
from a Prometheus data source (the ``query`` kind), rolling windows, budgeting method
``Occurrences``, ``target``/``targetPercent``, and alert policies whose conditions are
``burnrate`` conditions (a tier each: ``threshold`` is the burn-rate factor over
``lookbackWindow``). Refused, one line each: Timeslices and RatioTimeslices, calendar windows,
threshold metrics, other data sources, composite SLOs, raw (non-counter) ratios, more than one
objective.

A document this project wrote (``python -m slo export --openslo``) carries what OpenSLO has no
field for in ``metadata.annotations`` under ``slo-canary/``: the SLI kind as written in the
catalogue, the short windows, the service's namespace, owner and selector. They are used when
the queries beside them still say the same; an edited query wins.
"""

from __future__ import annotations

import json
from typing import Any

from slo import durations
from slo.interop import (
    DEFAULT_OWNER,
    Import,
    ImportedService,
    catalogue_name,
    gate_note,
    labels_of,
)
from slo.promql import WINDOW, parse_selector, with_window
from slo.yamlout import Block

PREFIX = "slo-canary/"
KINDS = ("SLO", "SLI", "AlertPolicy", "AlertCondition", "DataSource", "Service",
         "AlertNotificationTarget")


def is_openslo(doc: dict[str, Any]) -> bool:
    return str(doc.get("apiVersion", "")) in ("openslo/v1", "openslo/v1alpha")


def _meta(doc: dict[str, Any]) -> dict[str, Any]:
    meta = doc.get("metadata")
    return meta if isinstance(meta, dict) else {}


def _spec(doc: dict[str, Any]) -> dict[str, Any]:
    spec = doc.get("spec")
    return spec if isinstance(spec, dict) else {}


def _notes(doc: dict[str, Any]) -> dict[str, str]:
    found = _meta(doc).get("annotations")
    if not isinstance(found, dict):
        return {}
    return {k[len(PREFIX):]: str(v) for k, v in found.items() if str(k).startswith(PREFIX)}


def _ours(notes: dict[str, str], queries: dict[str, str], source: str, where: str,
          result: Import) -> bool:
    """The queries are the ones our export wrote beside its own indicator."""
    if "queries" not in notes:
        return not queries
    return bool(_json_note(notes, "queries", dict, source, where, result) == queries)


class _Refused(Exception):
    """An annotation of ours that is not what the exporter writes: the item is refused."""


def _json_note(notes: dict[str, str], key: str, kind: type, source: str, where: str,
               result: Import) -> Any:
    """A ``slo-canary/<key>`` annotation decoded as the JSON ``kind`` the exporter writes;
    refuses the item (``_Refused``) with one line otherwise."""
    try:
        value = json.loads(notes[key])
    except json.JSONDecodeError as err:
        value, why = None, f"not JSON ({err.msg} at character {err.pos})"
    else:
        why = f"a JSON {'object' if kind is dict else 'list'} is expected"
    if not isinstance(value, kind):
        result.refuse(source, f"{where}: metadata.annotations.{PREFIX}{key}",
                      f"{why}, as `slo export --openslo` writes it")
        raise _Refused
    return value


# ---- v1alpha, as Sloth reads it ------------------------------------------------------------


def read_v1alpha(doc: dict[str, Any], source: str, result: Import, window: str,
                 namespace: str | None) -> None:
    """Each objective an SLO named ``<name>-<index>`` (as Sloth names them), good over total,
    the window in days; no alerting (Sloth reads none from v1alpha)."""
    if doc.get("kind") != "SLO":
        result.refuse(source, "kind", f"{doc.get('kind')!r}: only SLO is read from v1alpha")
        return
    spec = _spec(doc)
    name = _meta(doc).get("name")
    service_name = spec.get("service")
    if not isinstance(service_name, str) or not catalogue_name(service_name):
        result.refuse(source, "spec.service", f"{service_name!r} is not a service name")
        return
    if not isinstance(name, str) or not catalogue_name(name):
        result.refuse(source, "metadata.name", f"{name!r} is not a name")
        return
    if spec.get("budgetingMethod", "Occurrences") != "Occurrences":
        result.refuse(source, "spec.budgetingMethod", f"{spec.get('budgetingMethod')!r}: only "
                      "Occurrences (events) is supported")
        return
    period = _v1alpha_window(spec.get("timeWindows"), source, result) or window
    if not period:
        return
    svc = catalogue_name(service_name)
    service = result.service(svc, catalogue_name(namespace or "") or svc, DEFAULT_OWNER,
                             f"from {source} (OpenSLO v1alpha), service {service_name!r}")
    objectives = spec.get("objectives")
    if not isinstance(objectives, list) or not objectives:
        result.refuse(source, "spec.objectives", "at least one objective is expected")
        return
    for i, objective in enumerate(objectives):
        path = f"spec.objectives[{i}]"
        ratio = objective.get("ratioMetrics") if isinstance(objective, dict) else None
        if not isinstance(ratio, dict):
            result.refuse(source, f"{path}.ratioMetrics", "only ratio metrics map to an SLI")
            continue
        queries = {}
        for part in ("good", "total"):
            metric = ratio.get(part)
            if not isinstance(metric, dict) or metric.get("queryType") != "promql" or \
                    metric.get("source") not in ("prometheus", "sloth"):
                result.refuse(source, f"{path}.ratioMetrics.{part}",
                              "a Prometheus source with queryType promql is expected")
                break
            queries[part] = with_window(str(metric.get("query", "")).strip())
        else:
            target = objective.get("target")
            slo = Block({"name": catalogue_name(f"{name}-{i}")},
                        comment=f"from {source}: {path}")
            if spec.get("description"):
                slo["description"] = str(spec["description"])
            slo["objective"] = round(target * 100, 10) if isinstance(target, int | float) \
                else target
            slo["window"] = period
            slo["indicator"] = Block({"kind": "query", "total": queries["total"],
                                      "good": queries["good"]})
            slo["alerting"] = Block({"page": False, "ticket": False})
            gate_note(slo)
            result.add_slo(service, slo, source, path)


def _v1alpha_window(windows: Any, source: str, result: Import) -> str | None:
    if windows is None:
        return ""
    if not isinstance(windows, list) or len(windows) != 1 or not isinstance(windows[0], dict):
        result.refuse(source, "spec.timeWindows", "exactly one time window is supported")
        return None
    window = windows[0]
    if str(window.get("unit", "")).lower() != "day" or not isinstance(window.get("count"), int):
        result.refuse(source, "spec.timeWindows[0]", "only a whole number of days is supported")
        return None
    if window.get("isRolling") is False:
        result.refuse(source, "spec.timeWindows[0].isRolling", "calendar windows are not "
                      "supported (the catalogue's windows are rolling)")
        return None
    return f"{window['count']}d"


# ---- v1 ------------------------------------------------------------------------------------


class Documents:
    """The v1 documents of one import, by kind and name (SLOs refer to the others)."""

    def __init__(self) -> None:
        self.by_kind: dict[str, dict[str, tuple[str, dict[str, Any]]]] = {k: {} for k in KINDS}
        self.slos: list[tuple[str, dict[str, Any]]] = []
        # names defined differently by two documents: whoever refers to one is refused
        self.conflicts: dict[str, dict[str, str]] = {k: {} for k in KINDS}

    def add(self, doc: dict[str, Any], source: str, result: Import) -> None:
        kind = doc.get("kind")
        if kind not in KINDS:
            result.refuse(source, "kind", f"{kind!r} is not an OpenSLO v1 kind this reads "
                          f"({', '.join(KINDS)})")
            return
        if kind == "SLO":
            self.slos.append((source, doc))
            return
        name = _meta(doc).get("name")
        if not isinstance(name, str):
            return
        first = self.by_kind[kind].get(name)
        if first is not None and first[1] != doc:
            result.refuse(source, "metadata.name", f"a second {kind} named {name!r}, different "
                          f"from the one in {first[0]}; a name means one {kind} across the "
                          "imported files")
            self.conflicts[kind][name] = f"{first[0]} and {source}"
            return
        self.by_kind[kind][name] = (source, doc)

    def get(self, kind: str, name: Any, source: str, where: str,
            result: Import) -> tuple[str, dict[str, Any]] | None:
        """The document ``name`` refers to, or None with a line saying why (no such document,
        or two different ones)."""
        if isinstance(name, str) and name in self.conflicts[kind]:
            result.refuse(source, where, f"{kind} {name!r} is defined differently in "
                          f"{self.conflicts[kind][name]}")
            return None
        found = self.by_kind[kind].get(name) if isinstance(name, str) else None
        if found is None:
            result.refuse(source, where, f"no {kind} named {name!r} in the files read")
        return found


def read_v1(docs: Documents, result: Import, window: str, namespace: str | None) -> None:
    for source, doc in docs.slos:
        try:
            _slo_v1(docs, source, doc, result, window, namespace)
        except _Refused:  # its line is in result.refused
            continue


def _slo_v1(docs: Documents, source: str, doc: dict[str, Any], result: Import, window: str,
            namespace: str | None) -> None:
    """One v1 SLO into ``result``: its catalogue SLO, or a line per problem."""
    spec, meta = _spec(doc), _meta(doc)
    name = meta.get("name")
    if not isinstance(name, str) or not catalogue_name(name):
        result.refuse(source, "metadata.name", f"{name!r} is not an SLO name")
        return
    where = f"SLO {name!r}"
    service_name = spec.get("service")
    if not isinstance(service_name, str) or not catalogue_name(service_name):
        result.refuse(source, f"{where}: spec.service", f"{service_name!r} is not a service name")
        return
    problems = len(result.refused)
    method = spec.get("budgetingMethod", "Occurrences")
    if method != "Occurrences":
        result.refuse(source, f"{where}: spec.budgetingMethod", f"{method!r}: only Occurrences "
                      "(good and bad events) maps to the catalogue; Timeslices do not")
    if "objectives" not in spec or not isinstance(spec["objectives"], list):
        result.refuse(source, f"{where}: spec.objectives", "a list of objectives is expected")
        return
    if spec.get("indicator") is None and spec.get("indicatorRef") is None:
        result.refuse(source, f"{where}: spec", "composite SLOs (objectives with their own "
                      "indicators) are not supported; give indicator or indicatorRef")
        return
    period = _v1_window(spec.get("timeWindow"), source, where, result) or window
    objectives = spec["objectives"]
    if len(objectives) != 1 or not isinstance(objectives[0], dict):
        result.refuse(source, f"{where}: spec.objectives", "exactly one objective per SLO maps "
                      "to a catalogue SLO")
        return
    objective = _target(objectives[0], source, f"{where}: spec.objectives[0]", result)
    sli = _sli_v1(docs, spec, source, where, result)
    if sli is None:
        return
    sli_doc, sli_source, sli_where = sli
    indicator = _indicator_v1(docs, sli_doc, sli_source, sli_where, result)
    tiers = _tiers(docs, spec.get("alertPolicies"), source, f"{where}: spec.alertPolicies",
                   result)
    if len(result.refused) > problems or indicator is None or objective is None:
        return
    service = _service_v1(docs, service_name, source, where, result, namespace)
    slo = _slo_block_v1(doc, name, source, where, result, objective, period, indicator, tiers)
    result.add_slo(service, slo, source, where)


def _sli_v1(docs: Documents, spec: dict[str, Any], source: str, where: str,
            result: Import) -> tuple[dict[str, Any], str, str] | None:
    """The SLO's SLI document (inline, or the one its ``indicatorRef`` names), the file it is
    in and where its problems are said; None, with a line, when the reference finds none."""
    sli_doc = spec.get("indicator") if isinstance(spec.get("indicator"), dict) else None
    sli_source, sli_where = source, f"{where}: indicator"
    if sli_doc is None:
        ref = spec.get("indicatorRef")
        found = docs.get("SLI", ref, source, f"{where}: spec.indicatorRef", result)
        if found is None:
            return None
        sli_source, sli_doc = found
        if sli_source != source:  # its problems are said in its own file
            sli_where = f"SLI {ref!r} (the indicatorRef of {where} in {source})"
    return sli_doc, sli_source, sli_where


def _service_v1(docs: Documents, service_name: str, source: str, where: str, result: Import,
                namespace: str | None) -> ImportedService:
    """The catalogue service of the SLO's ``spec.service``, with the namespace, owner, selector
    and histograms our export noted on its Service document, if there is one."""
    svc_doc = docs.by_kind["Service"].get(service_name)  # optional: its notes only
    svc_notes = _notes(svc_doc[1]) if svc_doc else {}
    svc = catalogue_name(service_name)
    service = result.service(
        svc, svc_notes.get("namespace") or catalogue_name(namespace or "") or svc,
        svc_notes.get("owner") or DEFAULT_OWNER,
        f"from {source} (OpenSLO v1), service {service_name!r}",
    )
    if svc_notes.get("selector"):
        service.selector = svc_notes["selector"]
    if svc_notes.get("histograms"):
        service.histograms = _json_note(svc_notes, "histograms", list, source, where, result)
    return service


def _slo_block_v1(doc: dict[str, Any], name: str, source: str, where: str, result: Import,
                  objective: float, period: str, indicator: Block,
                  tiers: list[dict[str, Any]] | None) -> Block:
    """The catalogue SLO of v1 SLO ``name``, whose objective, window, indicator and tiers
    mapped."""
    spec, meta = _spec(doc), _meta(doc)
    notes = _notes(doc)
    own_name = notes.get("name") or catalogue_name(name)
    slo = Block({"name": own_name}, comment=f"from {source}: {where}")
    if spec.get("description"):
        slo["description"] = str(spec["description"])
    slo["objective"] = objective
    slo["window"] = period
    labels = labels_of(meta.get("labels"), source, f"{where}: metadata.labels", result)
    if labels:
        slo["labels"] = labels
    slo["indicator"] = indicator
    alerting = _alerting_v1(notes, tiers, period, source, where, result)
    if alerting:
        slo["alerting"] = alerting
    if notes.get("canary_gate") == "false":
        slo["canary_gate"] = False
    gate_note(slo)
    return slo


def _alerting_v1(notes: dict[str, str], tiers: list[dict[str, Any]] | None, period: str,
                 source: str, where: str, result: Import) -> Block:
    """The SLO's alerting: what our export noted, and a tier per burn-rate condition of its
    alert policies (whose severities say page and ticket unless the notes do)."""
    alerting = Block(_json_note(notes, "alerting", dict, source, where, result)
                     if "alerting" in notes else {})
    for severity in ("page", "ticket"):
        if severity in notes:
            alerting[severity] = notes[severity] == "true"
    if tiers is not None:
        seconds = durations.parse(period)
        alerting["tiers"] = [
            Block({"severity": t["severity"], "long_window": t["long_window"],
                   "short_window": t["short_window"],
                   "budget_consumed": round(t["factor"] * durations.parse(t["long_window"])
                                            / seconds, 9)})
            for t in tiers
        ]
        alerting.setdefault("page", any(t["severity"] == "page" for t in tiers))
        alerting.setdefault("ticket", any(t["severity"] == "ticket" for t in tiers))
    return alerting


def _v1_window(value: Any, source: str, where: str, result: Import) -> str:
    if value is None:
        return ""
    if not isinstance(value, list) or len(value) != 1 or not isinstance(value[0], dict):
        result.refuse(source, f"{where}: spec.timeWindow", "exactly one time window is expected")
        return ""
    window = value[0]
    if "calendar" in window or window.get("isRolling") is False:
        result.refuse(source, f"{where}: spec.timeWindow[0]", "calendar windows are not "
                      "supported (the catalogue's windows are rolling)")
        return ""
    duration = str(window.get("duration", ""))
    try:
        durations.parse(duration)
    except ValueError:
        result.refuse(source, f"{where}: spec.timeWindow[0].duration",
                      f"{duration!r} is not a duration such as 28d")
        return ""
    return duration


def _target(objective: dict[str, Any], source: str, where: str, result: Import) -> float | None:
    if "timeSliceTarget" in objective or "timeSliceWindow" in objective:
        result.refuse(source, where, "time-slice objectives are not supported")
        return None
    if isinstance(objective.get("targetPercent"), int | float):
        return float(objective["targetPercent"])
    if isinstance(objective.get("target"), int | float):
        return round(float(objective["target"]) * 100, 10)
    result.refuse(source, f"{where}.target", "a target (0.999) or targetPercent (99.9) is "
                  "expected")
    return None


def _query(docs: Documents, metric: Any, source: str, where: str,
           result: Import) -> str | None:
    source_spec = metric.get("metricSource") if isinstance(metric, dict) else None
    if not isinstance(source_spec, dict):
        result.refuse(source, where, "a metricSource is expected")
        return None
    kind = source_spec.get("type")
    if kind is None and source_spec.get("metricSourceRef"):
        found = docs.get("DataSource", source_spec["metricSourceRef"], source,
                         f"{where}.metricSource.metricSourceRef", result)
        if found is None:
            return None
        kind = _spec(found[1]).get("type")
    if str(kind).lower() != "prometheus":
        result.refuse(source, f"{where}.metricSource.type", f"{kind!r}: only Prometheus data "
                      "sources map to PromQL")
        return None
    query = _spec(source_spec).get("query") if "spec" in source_spec else None
    if not isinstance(query, str) or not query.strip():
        result.refuse(source, f"{where}.metricSource.spec.query", "a PromQL query is expected")
        return None
    return with_window(" ".join(query.split()))


def _indicator_v1(docs: Documents, sli: dict[str, Any], source: str, where: str,
                  result: Import) -> Block | None:
    spec = _spec(sli)
    if "thresholdMetric" in spec:
        result.refuse(source, f"{where}.spec.thresholdMetric", "threshold metrics (a value "
                      "against a threshold per time slice) are not supported; use a ratioMetric")
        return None
    ratio = spec.get("ratioMetric")
    if not isinstance(ratio, dict):
        result.refuse(source, f"{where}.spec.ratioMetric", "a ratioMetric is expected")
        return None
    notes = _notes(sli)
    if "raw" in ratio or ratio.get("counter") is False:
        raw = _query(docs, ratio.get("raw"), source, f"{where}.spec.ratioMetric.raw", result) \
            if "raw" in ratio else None
        if raw is not None and ratio.get("rawType") == "failure" and WINDOW in raw:
            queries = {"error_ratio": raw}
            if "indicator" in notes and _ours(notes, queries, source, where, result):
                return Block(_json_note(notes, "indicator", dict, source, where, result))
            return Block({"kind": "query", **queries})
        result.refuse(source, f"{where}.spec.ratioMetric", "a raw ratio maps only as a "
                      "failure ratio with {{.window}} in its query; counter ratios (good or bad "
                      "and total) map fully")
        return None
    total = _query(docs, ratio.get("total"), source, f"{where}.spec.ratioMetric.total", result)
    picked = "bad" if "bad" in ratio else "good"
    other = _query(docs, ratio.get(picked), source, f"{where}.spec.ratioMetric.{picked}", result)
    if total is None or other is None:
        return None
    queries = {"total": total, picked: other}
    if "indicator" in notes and _ours(notes, queries, source, where, result):
        # written by our export, queries unedited: the catalogue's own kind
        return Block(_json_note(notes, "indicator", dict, source, where, result))
    if all(WINDOW in q for q in queries.values()):
        return Block({"kind": "query", **queries})
    try:  # counters as plain selectors: a ratio SLI of them
        for query in queries.values():
            parse_selector(query)
    except ValueError:
        result.refuse(source, f"{where}.spec.ratioMetric", "each query must be a counter "
                      "selector (http_requests_total{code=~\"5..\"}) or PromQL with "
                      "{{.window}} where the range goes")
        return None
    return Block({"kind": "ratio", **queries})


def _tiers(docs: Documents, policies: Any, source: str, where: str,
           result: Import) -> list[dict[str, Any]] | None:
    """The burn-rate tiers of the SLO's alert policies (None: no policies given)."""
    if policies is None:
        return None
    if not isinstance(policies, list):
        result.refuse(source, where, "a list of alert policies is expected")
        return None
    tiers = []
    for i, item in enumerate(policies):
        policy = item
        if isinstance(item, dict) and "kind" not in item and item.get("alertPolicyRef"):
            item = item["alertPolicyRef"]
        policy_source, policy_where = source, f"{where}[{i}]"
        if isinstance(item, str):
            found = docs.get("AlertPolicy", item, source, f"{where}[{i}]", result)
            if found is None:
                continue
            policy_source, policy = found
            policy_where = f"AlertPolicy {item!r}" + (
                f" (used by {where} in {source})" if policy_source != source else "")
        conditions = _spec(policy).get("conditions") if isinstance(policy, dict) else None
        if not isinstance(conditions, list):
            result.refuse(policy_source, f"{policy_where}.spec.conditions", "a list is expected")
            continue
        for j, entry in enumerate(conditions):
            at = f"{policy_where}.spec.conditions[{j}]"
            condition, condition_source = entry, policy_source
            ref = entry.get("conditionRef") if isinstance(entry, dict) else None
            if ref is not None:
                found = docs.get("AlertCondition", ref, policy_source, at, result)
                if found is None:
                    continue
                condition_source, condition = found
                if condition_source != policy_source:
                    at = f"AlertCondition {ref!r} (used by {at} in {policy_source})"
            tier = _tier(condition, condition_source, at, result)
            if tier:
                tiers.append(tier)
    return tiers


def _tier(condition: Any, source: str, at: str, result: Import) -> dict[str, Any] | None:
    spec = _spec(condition) if isinstance(condition, dict) else {}
    rule = spec.get("condition")
    if not isinstance(rule, dict) or str(rule.get("kind", "")).lower() != "burnrate":
        result.refuse(source, f"{at}.spec.condition.kind", "only burnrate conditions map to "
                      "the catalogue's multi-window alerts")
        return None
    severity = str(spec.get("severity", "")).lower()
    if severity not in ("page", "ticket"):
        result.refuse(source, f"{at}.spec.severity", f"{spec.get('severity')!r}: page or "
                      "ticket is expected")
        return None
    try:
        long = durations.parse(str(rule.get("lookbackWindow")))
        factor = float(rule["threshold"])
    except (KeyError, TypeError, ValueError):
        result.refuse(source, f"{at}.spec.condition", "lookbackWindow (a duration) and "
                      "threshold (the burn-rate factor) are expected")
        return None
    notes = _notes(condition)
    short = notes.get("short_window") or durations.format_seconds(max(60, long // 12 // 60 * 60))
    tier = {"severity": severity, "long_window": durations.format_seconds(long),
            "short_window": short, "factor": factor}
    return tier
