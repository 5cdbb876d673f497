"""SLOs in other formats: Sloth and OpenSLO read into a catalogue (``python -m slo import``),
a catalogue written as OpenSLO v1 (``python -m slo export --openslo``).

Readers turn each document into catalogue data and say, one line per item with its file and
path, what does not map. An :class:`Import` collects both; :func:`catalogue_text` writes the
catalogue with a comment above every service and SLO saying where it came from. Every imported
SLO is validated on its own by the catalogue loader, so one that the catalogue cannot hold is
refused with the loader's line instead of spoiling the file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from slo.loader import parse_catalogue
from slo.model import QueryEvents, query_events
from slo.problems import ConfigError
from slo.spec import NAME_PATTERN, QueryIndicator
from slo.yamlout import Block, dump

DEFAULT_OWNER = "unknown"


@dataclass
class ImportedService:
    name: str
    namespace: str
    owner: str
    source: str
    slos: list[Block] = field(default_factory=list)
    selector: str = ""
    histograms: list[dict[str, Any]] = field(default_factory=list)

    def body(self, slos: list[Any]) -> Block:
        """The catalogue's service entry holding ``slos``."""
        body = Block({"name": self.name, "namespace": self.namespace, "owner": self.owner,
                      "selector": self.selector}, comment=self.source)
        if self.histograms:
            body["histograms"] = self.histograms
        body["slos"] = slos
        return body


@dataclass
class Import:
    """What the readers made of the input files."""

    services: dict[str, ImportedService] = field(default_factory=dict)
    refused: list[str] = field(default_factory=list)
    defaults: dict[str, Any] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    window: str = ""  # the period an imported AlertWindows sets

    def refuse(self, source: str, path: str, why: str) -> None:
        self.refused.append(f"{source}: {path}: {why}" if path else f"{source}: {why}")

    def service(self, name: str, namespace: str, owner: str, source: str) -> ImportedService:
        found = self.services.get(name)
        if found is None:
            found = self.services[name] = ImportedService(name, namespace, owner, source)
        return found

    def add_slo(self, service: ImportedService, slo: Block, source: str, path: str) -> None:
        """Keep ``slo`` when the catalogue accepts it on its own; otherwise one line per
        problem the loader finds."""
        if any(s["name"] == slo["name"] for s in service.slos):
            self.refuse(source, path, f"a second SLO named {slo['name']!r} in service "
                        f"{service.name!r}; SLO names are unique within a service")
            return
        try:
            parse_catalogue(self._catalogue_of(service, [slo]), "imported")
        except ConfigError as err:
            for line in err.lines:
                problem = line.split(": ", 1)[-1]
                problem = re.sub(r"^services\[0\]\.slos\[0\]\.?", "", problem)
                self.refuse(source, path, problem)
            return
        service.slos.append(slo)

    def _catalogue_of(self, service: ImportedService, slos: list[Block]) -> dict[str, Any]:
        data: dict[str, Any] = {"services": [service.body(slos)]}
        if self.defaults:
            data["defaults"] = self.defaults
        return data


def gate_note(slo: Block) -> None:
    """``canary_gate: false``, with a comment saying why, for an imported query SLI the judge
    cannot restrict to the canary's pods (the catalogue would refuse it as a gate)."""
    if slo.get("canary_gate") is False or slo["indicator"].get("kind") != "query":
        return
    try:
        events = query_events(QueryIndicator.model_validate(dict(slo["indicator"])))
    except (ValidationError, ValueError):
        return  # the loader says what is wrong with it
    why = events.why_not_gated() if isinstance(events, QueryEvents) else None
    if why:
        slo["canary_gate"] = False
        slo.comment += f"\ncanary_gate: false, since {why}"


def catalogue_name(text: str) -> str:
    """A service or SLO name as the catalogue allows (lowercase, digits and '-')."""
    name = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")
    name = re.sub(r"-{2,}", "-", name)
    if name and not name[0].isalpha():
        name = f"x-{name}"
    name = name[:53].rstrip("-")
    return name if re.fullmatch(NAME_PATTERN, name) else ""


def labels_of(value: Any, source: str, path: str, result: Import) -> dict[str, str]:
    """A label map; numbers and booleans become their text (YAML reads `tier: 2` as a number)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        result.refuse(source, path, f"labels must be a mapping, not {type(value).__name__}")
        return {}
    out = {}
    for key, item in value.items():
        if isinstance(item, bool):
            item = "true" if item else "false"
        if isinstance(item, int | float):
            item = format(item, "g")
        if not isinstance(item, str) or not isinstance(key, str):
            result.refuse(source, f"{path}.{key}", "a label value must be text")
            continue
        out[key] = item
    return out


def catalogue_text(result: Import) -> str:
    """The imported catalogue as YAML, with where every service and SLO came from."""
    services = []
    for service in result.services.values():
        if not service.slos:
            continue
        services.append(service.body(service.slos))
    head = "Written by `python -m slo import` from " + ", ".join(result.files) + (
        ".\nCheck namespace and owner: the source formats do not always say them."
    )
    doc = Block(comment=head)
    if result.defaults:
        doc["defaults"] = result.defaults
    doc["services"] = services
    return dump(doc)


def to_catalogue(result: Import) -> dict[str, Any]:
    """The imported catalogue as data (what :func:`catalogue_text` writes)."""
    data: dict[str, Any] = {"services": [
        s.body(list(s.slos)) for s in result.services.values() if s.slos
    ]}
    if result.defaults:
        data["defaults"] = result.defaults
    return data
