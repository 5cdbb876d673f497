"""Deterministic YAML: sorted keys, block style, one line per scalar, multi-line strings as
literal blocks.

The writer builds the text directly. Emitting through PyYAML (even through libyaml's events)
spent most of the rules command's time on Python event objects; the documents written here are
plain data (dicts with string keys, lists, strings, numbers, booleans, None), so the block style
needs only the few rules below. Every string is written in the first of these styles that reads
back as the same string:

* plain, when YAML's grammar allows it (no indicator at the start, no ``": "`` or ``" #"``, no
  surrounding blanks, printable) and PyYAML's own resolver reads it back as a string (so
  ``"true"``, ``"30"`` or ``"~"`` are quoted);
* a literal block (``|``, ``|-``, ``|+``) for printable multi-line text;
* single quotes for any other printable line;
* double quotes with escapes for everything else.

Long lines are never folded, so an expression stays on one line (easy to grep and diff).
``tests/test_rules.py`` checks with hypothesis that PyYAML reads every written document back to the
same data.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

import yaml

_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_RESOLVER = yaml.resolver.Resolver()
_STR = "tag:yaml.org,2002:str"
_INDICATORS = frozenset("-?:,[]{}#&*!|>'\"%@`")
_SHORT_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t", "\r": "\\r", "\0": "\\0"}


class Block(dict[str, Any]):
    """A mapping written in its own key order (not sorted), with comment lines above it when
    it is an item of a sequence or the document: for files people read, such as an imported
    catalogue."""

    def __init__(self, items: Any = (), comment: str = "") -> None:
        super().__init__(items)
        self.comment = comment


def _comment(text: str, indent: str, out: list[str]) -> None:
    for line in text.splitlines():
        out.append(f"{indent}# {line}".rstrip() + "\n")


@lru_cache(maxsize=65536)
def _string(value: str) -> str:
    """``value`` as a one-line YAML scalar (never a block)."""
    if _plain_ok(value):
        return value
    if value.isprintable():
        return "'" + value.replace("'", "''") + "'"
    return _double_quoted(value)


def _plain_ok(value: str) -> bool:
    return bool(
        value
        and value[0] not in _INDICATORS
        and value[0] != " "
        and value[-1] not in " :"
        and ": " not in value
        and " #" not in value
        and not value.startswith("...")
        and value.isprintable()
        and _RESOLVER.resolve(yaml.ScalarNode, value, (True, False)) == _STR  # type: ignore[no-untyped-call]
    )


def _double_quoted(value: str) -> str:
    out = []
    for char in value:
        if char in _SHORT_ESCAPES:
            out.append(_SHORT_ESCAPES[char])
        elif char.isprintable():
            out.append(char)
        elif ord(char) < 0x100:
            out.append(f"\\x{ord(char):02x}")
        elif ord(char) < 0x10000:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(f"\\U{ord(char):08x}")
    return '"' + "".join(out) + '"'


def _literal_block(value: str, indent: str) -> str | None:
    """``value`` as a literal block scalar (after ``key:``), or None if it cannot be one."""
    body = value.rstrip("\n")
    lines = body.split("\n")
    if not body or body[0] in " \n" or not all(line.isprintable() for line in lines):
        return None
    trailing = len(value) - len(body)
    chomp = "-" if trailing == 0 else "" if trailing == 1 else "+"
    text = "\n".join(indent + line if line else "" for line in lines)
    return f" |{chomp}\n{text}\n" + "\n" * max(trailing - 1, 0)


def _multi_line(value: str, indent: str) -> str:
    """What follows ``key:`` or ``-`` for a string with line breaks, up to its last newline."""
    block = _literal_block(value, indent)
    return block if block is not None else " " + _double_quoted(value) + "\n"


def _scalar(value: Any) -> str:
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _float(value)
    if value is None:
        return "null"
    raise TypeError(f"cannot write {type(value).__name__} as YAML")


def _float(value: float) -> str:
    if math.isnan(value):
        return ".nan"
    if math.isinf(value):
        return ".inf" if value > 0 else "-.inf"
    text = repr(value)
    if "." not in text:  # YAML 1.1 floats need a dot: 1e-05 -> 1.0e-05
        text = text.replace("e", ".0e") if "e" in text else text + ".0"
    return text


def _after_key(value: Any, indent: str, out: list[str]) -> None:
    """Write what follows ``key:`` (or ``-``): the value inline, or a block below it."""
    if isinstance(value, dict) and value:
        out.append("\n")
        _mapping(value, indent + "  ", out)
    elif isinstance(value, list | tuple) and value:
        out.append("\n")
        _sequence(value, indent, out)  # sequences in mappings are not indented (as libyaml does)
    elif isinstance(value, str) and "\n" in value:
        out.append(_multi_line(value, indent + "  "))
    else:
        out.append(" " + _inline(value) + "\n")


def _inline(value: Any) -> str:
    """A one-line value: a scalar, or an empty mapping or sequence (callers write multi-line
    strings and non-empty collections as blocks)."""
    if isinstance(value, dict):
        return "{}"
    if isinstance(value, list | tuple):
        return "[]"
    return _scalar(value)


@lru_cache(maxsize=4096)
def _key(key: Any) -> str:
    """``key:`` as written in a block mapping."""
    if not isinstance(key, str):
        raise TypeError(f"cannot write a {type(key).__name__} key as YAML")
    text = _string(key)
    if len(text) > 1000:  # YAML's limit on implicit keys is 1024 characters
        raise ValueError(f"cannot write a key of {len(text)} characters as YAML")
    return text + ":"


def _mapping(value: dict[Any, Any], indent: str, out: list[str], first: str | None = None) -> None:
    """Block mapping at ``indent``; ``first`` replaces the indent of its first line."""
    lead = indent if first is None else first
    for key in value if isinstance(value, Block) else sorted(value):
        item = value[key]
        if type(item) is str and "\n" not in item:  # most values: one line, no call below
            out.append(f"{lead}{_key(key)} {_string(item)}\n")
        else:
            out.append(lead + _key(key))
            _after_key(item, indent, out)
        lead = indent


def _sequence(value: list[Any] | tuple[Any, ...], indent: str, out: list[str]) -> None:
    for item in value:
        if isinstance(item, Block) and item.comment:
            _comment(item.comment, indent, out)
        if isinstance(item, dict) and item:
            _mapping(item, indent + "  ", out, first=indent + "- ")
        elif isinstance(item, list | tuple) and item:
            out.append(indent + "-\n")
            _sequence(item, indent + "  ", out)
        elif isinstance(item, str) and "\n" in item:
            out.append(indent + "-" + _multi_line(item, indent + "  "))
        else:
            out.append(indent + "- " + _inline(item) + "\n")


def dump(data: Any) -> str:
    out: list[str] = []
    if isinstance(data, Block) and data.comment:
        _comment(data.comment, "", out)
    if isinstance(data, dict) and data:
        _mapping(data, "", out)
    elif isinstance(data, list | tuple) and data:
        _sequence(data, "", out)
    elif isinstance(data, str) and "\n" in data:
        out.append("---" + _multi_line(data, "  "))
    else:
        out.append(_inline(data) + "\n")
    return "".join(out)


def load(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)


def load_all(text: str) -> list[Any]:
    return list(yaml.load_all(text, Loader=_Loader))
