"""Sloth's formats read into a catalogue: ``prometheus/v1`` specs, ``sloth.slok.dev/v1``
``PrometheusServiceLevel`` objects (the same fields in camelCase) and ``AlertWindows`` (a
period's burn-rate table).

Mapped: the service and its labels, each SLO's name, objective, description and labels, events
SLIs (``error_query``/``total_query``) and raw SLIs (``error_ratio_query``) as the ``query`` kind,
the alert name, labels and annotations, and the page and ticket alerts' labels, annotations and
``disable``. Refused, one line each: SLI plugins and SLO plugins (Sloth's Go code), anything that
is not of the type Sloth reads.
"""

from __future__ import annotations

import re
from typing import Any

from slo import durations
from slo.interop import DEFAULT_OWNER, Import, catalogue_name, gate_note, labels_of
from slo.promql import with_window
from slo.yamlout import Block

CAMEL = {
    "errorQuery": "error_query",
    "totalQuery": "total_query",
    "errorRatioQuery": "error_ratio_query",
    "pageAlert": "page_alert",
    "ticketAlert": "ticket_alert",
    "sloPlugins": "slo_plugins",
}


def _snake(value: Any) -> Any:
    if isinstance(value, dict):
        return {CAMEL.get(k, k): _snake(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_snake(v) for v in value]
    return value


def is_sloth(doc: dict[str, Any]) -> bool:
    return doc.get("version") == "prometheus/v1" or str(doc.get("apiVersion", "")).startswith(
        "sloth.slok.dev/"
    )


def read(doc: dict[str, Any], source: str, result: Import, window: str,
         namespace: str | None) -> None:
    if doc.get("version") == "prometheus/v1":
        _spec(doc, source, "", result, window, namespace)
        return
    kind = doc.get("kind")
    if kind == "PrometheusServiceLevel":
        meta = doc.get("metadata")
        meta = meta if isinstance(meta, dict) else {}
        spec = doc.get("spec")
        if not isinstance(spec, dict):
            result.refuse(source, "spec", "a PrometheusServiceLevel needs a spec mapping")
            return
        _spec(_snake(spec), source, "spec.", result, window, namespace or meta.get("namespace"))
    elif kind == "AlertWindows":
        alert_windows(doc, source, result)
    else:
        result.refuse(source, "kind", f"{kind!r} is not a Sloth kind this reads "
                      "(PrometheusServiceLevel, AlertWindows)")


def _spec(spec: dict[str, Any], source: str, at: str, result: Import, window: str,
          namespace: str | None) -> None:
    service_name = spec.get("service")
    if not isinstance(service_name, str) or not catalogue_name(service_name):
        result.refuse(source, f"{at}service", f"{service_name!r} is not a service name")
        return
    name = catalogue_name(service_name)
    labels = labels_of(spec.get("labels"), source, f"{at}labels", result)
    _plugins(spec.get("slo_plugins"), source, f"{at}slo_plugins", result)
    owner = labels.get("owner") or labels.get("team") or DEFAULT_OWNER
    ns = catalogue_name(namespace) if isinstance(namespace, str) else name
    kind = "PrometheusServiceLevel" if at else "prometheus/v1"
    service = result.service(name, ns or name, owner, f"from {source} (Sloth {kind}), "
                             f"service {service_name!r}")
    slos = spec.get("slos")
    if not isinstance(slos, list) or not slos:
        result.refuse(source, f"{at}slos", "no SLOs (a list of them is expected)")
        return
    for i, raw in enumerate(slos):
        path = f"{at}slos[{i}]"
        if not isinstance(raw, dict):
            result.refuse(source, path, "an SLO must be a mapping")
            continue
        slo = _slo(raw, labels, source, path, result, window)
        if slo is not None:
            result.add_slo(service, slo, source, path)


def _plugins(value: Any, source: str, path: str, result: Import) -> None:
    chain = value.get("chain") if isinstance(value, dict) else None
    for j, plugin in enumerate(chain or []):
        pid = plugin.get("id") if isinstance(plugin, dict) else plugin
        result.refuse(source, f"{path}.chain[{j}]", f"SLO plugin {pid!r} is Sloth Go code that "
                      "changes its generated rules; not imported (the catalogue's rules apply)")


def _slo(raw: dict[str, Any], service_labels: dict[str, str], source: str, path: str,
         result: Import, window: str) -> Block | None:
    name = raw.get("name")
    if not isinstance(name, str) or not catalogue_name(name):
        result.refuse(source, f"{path}.name", f"{name!r} is not an SLO name")
        return None
    _plugins(raw.get("plugins"), source, f"{path}.plugins", result)
    indicator = _indicator(raw.get("sli"), source, f"{path}.sli", result)
    if indicator is None:
        return None
    renamed = "" if catalogue_name(name) == name else f" (named {name!r} there)"
    slo = Block({"name": catalogue_name(name)},
                comment=f"from {source}: {path}{renamed}")
    if raw.get("description"):
        slo["description"] = str(raw["description"]).strip()
    slo["objective"] = raw.get("objective")
    slo["window"] = window
    labels = {**service_labels, **labels_of(raw.get("labels"), source, f"{path}.labels", result)}
    if labels:
        slo["labels"] = labels
    slo["indicator"] = indicator
    alerting = _alerting(raw.get("alerting"), source, f"{path}.alerting", result)
    if alerting:
        slo["alerting"] = alerting
    gate_note(slo)
    return slo


def _indicator(sli: Any, source: str, path: str, result: Import) -> Block | None:
    if not isinstance(sli, dict):
        result.refuse(source, path, "an SLI mapping (events, raw or plugin) is expected")
        return None
    if "plugin" in sli:
        plugin = sli["plugin"] if isinstance(sli["plugin"], dict) else {}
        result.refuse(source, f"{path}.plugin", f"SLI plugin {plugin.get('id')!r} is Sloth Go "
                      "code; write its queries as an events SLI (the query kind) instead")
        return None
    events, raw = sli.get("events"), sli.get("raw")
    if isinstance(events, dict):
        error, total = events.get("error_query"), events.get("total_query")
        if not isinstance(error, str) or not isinstance(total, str):
            result.refuse(source, f"{path}.events", "error_query and total_query are expected")
            return None
        return Block({"kind": "query", "total": _tidy(total), "bad": _tidy(error)})
    if isinstance(raw, dict) and isinstance(raw.get("error_ratio_query"), str):
        return Block({"kind": "query", "error_ratio": _tidy(raw["error_ratio_query"])})
    result.refuse(source, path, "no events or raw SLI")
    return None


def _tidy(query: str) -> str:
    """A query on one line where it was written on several (easier to read in a catalogue)."""
    return with_window(re.sub(r"\s*\n\s*", " ", query.strip()))


def _alerting(raw: Any, source: str, path: str, result: Import) -> Block:
    if raw is None:
        return Block({"long_windows": "raw"})
    if not isinstance(raw, dict):
        result.refuse(source, path, "alerting must be a mapping")
        return Block()
    out = Block({"long_windows": "raw"})  # as Sloth computes them: the same alert minutes
    if raw.get("name"):
        out["name"] = str(raw["name"])
    for key in ("labels", "annotations"):
        value = labels_of(raw.get(key), source, f"{path}.{key}", result)
        if value:
            out[key] = value
    for severity in ("page", "ticket"):
        alert = raw.get(f"{severity}_alert") or {}
        if not isinstance(alert, dict):
            result.refuse(source, f"{path}.{severity}_alert", "must be a mapping")
            continue
        if alert.get("disable"):
            out[severity] = False
        for key in ("labels", "annotations"):
            value = labels_of(alert.get(key), source, f"{path}.{severity}_alert.{key}", result)
            if value:
                out[f"{severity}_{key}"] = value
    return out


def alert_windows(doc: dict[str, Any], source: str, result: Import) -> None:
    """Sloth's ``AlertWindows``: the SLO period and its page and ticket tiers, which become the
    catalogue's ``defaults.alerting.tiers`` (and the window of the SLOs imported with it)."""
    spec = doc.get("spec")
    if not isinstance(spec, dict):
        result.refuse(source, "spec", "an AlertWindows needs a spec mapping")
        return
    tiers = []
    for severity in ("page", "ticket"):
        for speed in ("quick", "slow"):
            row = (spec.get(severity) or {}).get(speed) if isinstance(spec.get(severity),
                                                                      dict) else None
            if not isinstance(row, dict):
                result.refuse(source, f"spec.{severity}.{speed}", "a window row is expected")
                return
            try:
                tiers.append({
                    "severity": severity,
                    "long_window": str(row["longWindow"]),
                    "short_window": str(row["shortWindow"]),
                    "budget_consumed": round(float(row["errorBudgetPercent"]) / 100, 12),
                })
            except (KeyError, TypeError, ValueError):
                result.refuse(source, f"spec.{severity}.{speed}",
                              "longWindow, shortWindow and errorBudgetPercent are expected")
                return
    period = spec.get("sloPeriod")
    try:
        durations.parse(str(period))
    except ValueError:
        result.refuse(source, "spec.sloPeriod", f"{period!r} is not a duration")
        return
    result.defaults = {"alerting": {"tiers": tiers}}
    result.window = str(period)
