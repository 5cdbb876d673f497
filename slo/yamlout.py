"""Deterministic YAML: sorted keys, block style, multi-line strings as literal blocks.

Documents are turned straight into libyaml events, skipping PyYAML's Python representer, which
dominated the time of large catalogues; whether a string must be quoted is asked of PyYAML's own
resolver, once per distinct string.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

import yaml
from yaml import events as ev

_Dumper: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_RESOLVER = yaml.resolver.Resolver()
_STR = "tag:yaml.org,2002:str"


@lru_cache(maxsize=65536)
def _plain_is_str(value: str) -> bool:
    """True when ``value`` written unquoted still reads back as this string."""
    resolved = _RESOLVER.resolve(yaml.ScalarNode, value, (True, False))  # type: ignore[no-untyped-call]
    return bool(resolved == _STR)


def _scalar(value: Any) -> ev.ScalarEvent:
    if isinstance(value, str):
        if "\n" in value:
            return ev.ScalarEvent(None, None, (False, True), value, style="|")
        return ev.ScalarEvent(None, None, (_plain_is_str(value), True), value)
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, int):
        text = str(value)
    elif isinstance(value, float):
        text = _float(value)
    elif value is None:
        text = "null"
    else:
        raise TypeError(f"cannot write {type(value).__name__} as YAML")
    return ev.ScalarEvent(None, None, (True, False), text)


def _float(value: float) -> str:
    if math.isnan(value):
        return ".nan"
    if math.isinf(value):
        return ".inf" if value > 0 else "-.inf"
    text = repr(value)
    if "." not in text:  # YAML 1.1 floats need a dot: 1e-05 -> 1.0e-05
        text = text.replace("e", ".0e") if "e" in text else text + ".0"
    return text


def _events(value: Any) -> Iterator[ev.Event]:
    if isinstance(value, dict):
        yield ev.MappingStartEvent(None, None, True, flow_style=False)
        for key in sorted(value):
            yield _scalar(key)
            yield from _events(value[key])
        yield ev.MappingEndEvent()
    elif isinstance(value, list | tuple):
        yield ev.SequenceStartEvent(None, None, True, flow_style=False)
        for item in value:
            yield from _events(item)
        yield ev.SequenceEndEvent()
    else:
        yield _scalar(value)


def dump(data: Any) -> str:
    stream = [ev.StreamStartEvent(), ev.DocumentStartEvent(explicit=False), *_events(data),
              ev.DocumentEndEvent(explicit=False), ev.StreamEndEvent()]
    return str(yaml.emit(stream, Dumper=_Dumper, width=100, allow_unicode=True))


def load(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)
