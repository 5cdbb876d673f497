"""A catalogue as OpenSLO v1 (``python -m slo export --openslo``).

Written: one Prometheus ``DataSource``; per service a ``Service``; per SLO an ``SLI`` (a counter
``ratioMetric`` of PromQL with ``{{.window}}``, or a raw error ratio), an ``SLO`` (rolling window,
``Occurrences``, its target), an ``AlertPolicy`` and one burn-rate ``AlertCondition`` per tier
(``threshold`` is the factor over ``lookbackWindow``). What OpenSLO has no field for goes into
``metadata.annotations`` under ``slo-canary/`` (see :mod:`slo.interop.openslo`), so that
importing the export gives the catalogue back.
"""

from __future__ import annotations

import json
from typing import Any

from slo.interop.openslo import PREFIX
from slo.model import ResolvedSlo, resolve_all
from slo.spec import Catalogue

DATASOURCE = "prometheus"
API = "openslo/v1"


def _doc(kind: str, name: str, spec: dict[str, Any], notes: dict[str, Any] | None = None,
         labels: dict[str, str] | None = None, display: str = "") -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if display:
        meta["displayName"] = display
    if labels:
        meta["labels"] = dict(labels)
    if notes:
        meta["annotations"] = {
            PREFIX + k: v if isinstance(v, str) else json.dumps(v, sort_keys=True)
            for k, v in notes.items()
        }
    return {"apiVersion": API, "kind": kind, "metadata": meta, "spec": spec}


def _metric(query: str) -> dict[str, Any]:
    return {"metricSource": {"metricSourceRef": DATASOURCE, "type": "Prometheus",
                             "spec": {"query": query}}}


def documents(catalogue: Catalogue) -> list[dict[str, Any]]:
    docs = [_doc("DataSource", DATASOURCE, {"type": "Prometheus", "connectionDetails": {}},
                 display="Prometheus")]
    for service in catalogue.services:
        notes: dict[str, Any] = {"namespace": service.namespace, "owner": service.owner,
                                 "selector": service.selector}
        if service.histograms:
            notes["histograms"] = [h.model_dump() for h in service.histograms]
        docs.append(_doc("Service", service.name, {"description": f"Owner: {service.owner}"},
                         notes))
    for slo in resolve_all(catalogue):
        docs += _slo_documents(slo)
    return docs


def _slo_documents(slo: ResolvedSlo) -> list[dict[str, Any]]:
    name = f"{slo.service.name}-{slo.slo.name}"
    queries = slo.events.window_queries()
    if "error_ratio" in queries:
        ratio: dict[str, Any] = {"counter": False, "rawType": "failure",
                                 "raw": _metric(queries["error_ratio"])}
    else:
        ratio = {"counter": True, **{k: _metric(q) for k, q in queries.items()}}
    indicator = slo.slo.indicator.model_dump(exclude_none=True)
    sli = _doc("SLI", name, {"description": slo.events.describe(), "ratioMetric": ratio},
               {"indicator": indicator, "queries": queries})
    alerting = slo.alerting.model_dump(exclude={"tiers", "page", "ticket"}, exclude_defaults=True)
    conditions = []
    for tier in slo.tiers:
        conditions.append(_doc(
            "AlertCondition", f"{name}-{tier.severity}-{tier.long_window}",
            {
                "description": f"{tier.factor:g}x burn over {tier.long_window} and "
                               f"{tier.short_window}",
                "severity": tier.severity,
                "condition": {"kind": "burnrate", "op": "gte", "threshold": tier.factor,
                              "lookbackWindow": tier.long_window, "alertAfter": "0m"},
            },
            {"short_window": tier.short_window},
        ))
    policy = _doc("AlertPolicy", f"{name}-burn-rate", {
        "description": f"Multi-window burn-rate alerts of {slo.service.name}/{slo.slo.name}",
        "alertWhenBreaching": True, "alertWhenResolved": False, "alertWhenNoData": False,
        "conditions": [{"conditionRef": c["metadata"]["name"]} for c in conditions],
    })
    spec: dict[str, Any] = {
        "description": slo.slo.description,
        "service": slo.service.name,
        "indicatorRef": name,
        "timeWindow": [{"duration": slo.period, "isRolling": True}],
        "budgetingMethod": "Occurrences",
        "objectives": [{"displayName": slo.slo.name, "target": slo.objective}],
        "alertPolicies": [policy["metadata"]["name"]],
    }
    notes: dict[str, Any] = {"name": slo.slo.name, "alerting": alerting,
                             "page": slo.alerting.page, "ticket": slo.alerting.ticket}
    if not slo.slo.canary_gate:
        notes["canary_gate"] = "false"
    slo_doc = _doc("SLO", name, spec, notes, labels=slo.slo.labels, display=slo.slo.name)
    return [sli, slo_doc, policy, *conditions]

