"""Deterministic YAML: sorted keys, block style, multi-line strings as literal blocks.

libyaml's emitter does the work (the pure-Python one dominated the time of large catalogues).
"""

from __future__ import annotations

from typing import Any

import yaml

_Base: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Dumper(_Base):  # type: ignore[misc]
    pass


def _str(dumper: Any, value: str) -> Any:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def dump(data: Any) -> str:
    return str(yaml.dump(data, Dumper=_Dumper, sort_keys=True, width=100, allow_unicode=True))


def load(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)
