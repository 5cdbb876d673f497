"""``python -m slo import``: every document of every file, to the reader of its format."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from slo.inputs import read_yaml
from slo.interop import Import, openslo, sloth
from slo.problems import ConfigError


def read_files(paths: list[Path], window: str = "30d", namespace: str | None = None) -> Import:
    """What the files hold, as catalogue data, and one line per item that does not map.
    Sloth ``AlertWindows`` documents are read first: their period is the imported SLOs'."""
    result = Import(files=[str(p) for p in paths])
    documents: list[tuple[str, str, dict[str, Any]]] = []
    for path in paths:
        source = str(path)
        try:
            docs = read_yaml(path, source, documents=True)
        except ConfigError as err:
            result.refused.extend(err.lines)
            continue
        if not docs:
            result.refuse(source, "", "no YAML documents")
        for n, doc in enumerate(docs):
            where = source if len(docs) == 1 else f"{source} (document {n + 1})"
            if not isinstance(doc, dict):
                result.refuse(where, "", "a document must be a mapping")
                continue
            documents.append((where, _format(doc), doc))
    for where, fmt, doc in documents:
        if fmt == "sloth-windows":
            sloth.alert_windows(doc, where, result)
    v1 = openslo.Documents()
    for where, fmt, doc in documents:
        if fmt == "sloth":
            sloth.read(doc, where, result, result.window or window, namespace)
        elif fmt == "openslo/v1alpha":
            openslo.read_v1alpha(doc, where, result, result.window or window, namespace)
        elif fmt == "openslo/v1":
            v1.add(doc, where, result)
        elif fmt == "unknown":
            result.refuse(where, "", "not a format this reads: Sloth prometheus/v1 or "
                          "sloth.slok.dev/v1, OpenSLO openslo/v1 or openslo/v1alpha")
    openslo.read_v1(v1, result, result.window or window, namespace)
    return result


def _format(doc: dict[str, Any]) -> str:
    api = str(doc.get("apiVersion", ""))
    if api.startswith("sloth.slok.dev/") and api != "sloth.slok.dev/v1":
        return "unknown"  # a Sloth API version this does not know is not read as v1
    if sloth.is_sloth(doc):
        return "sloth-windows" if doc.get("kind") == "AlertWindows" else "sloth"
    if openslo.is_openslo(doc):
        return str(doc["apiVersion"])
    return "unknown"
