"""Parsing and composing PromQL selectors with ``promql-parser``.

Selectors in the catalogue are parsed once; rules are composed from the parsed matchers, never
by pasting operator text into expressions, so a stray brace cannot change a rule's meaning.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import promql_parser

_OPS = {"Equal": "=", "NotEqual": "!=", "Re": "=~", "NotRe": "!~"}


@dataclass(frozen=True, order=True)
class Matcher:
    name: str
    op: str
    value: str

    def render(self) -> str:
        return f"{self.name}{self.op}{json.dumps(self.value)}"


@dataclass(frozen=True)
class Selector:
    """A metric name and label matchers, e.g. ``http_requests_total{code=~"5.."}``."""

    metric: str
    matchers: tuple[Matcher, ...] = ()

    def with_matchers(self, extra: tuple[Matcher, ...]) -> Selector:
        merged = dict.fromkeys(self.matchers + extra)
        return Selector(self.metric, tuple(merged))

    def render(self) -> str:
        if not self.matchers:
            return self.metric
        return self.metric + "{" + ",".join(m.render() for m in self.matchers) + "}"


def check(expr: str) -> None:
    """Raise ValueError with the parser's reason when ``expr`` is not valid PromQL."""
    try:
        promql_parser.parse(expr)
    except ValueError as err:
        raise ValueError(f"not valid PromQL ({err}): {expr}") from None


def parse_matchers(text: str) -> tuple[Matcher, ...]:
    """Label matchers written as in PromQL, without braces: ``job="api", code=~"5.."``."""
    if not text.strip():
        return ()
    try:
        parsed = promql_parser.parse("matchers_only{" + text + "}")
    except ValueError as err:
        raise ValueError(
            f"{text!r} is not a list of PromQL label matchers ({err}); "
            'write them as in a selector, e.g. job="api", code=~"5.."'
        ) from None
    if not isinstance(parsed, promql_parser.VectorSelector) or parsed.name != "matchers_only":
        raise ValueError(f"{text!r} is not a list of PromQL label matchers")
    return _matchers(parsed)


def parse_selector(text: str) -> Selector:
    """A plain instant selector such as ``http_requests_total{code=~"5.."}``."""
    try:
        parsed = promql_parser.parse(text)
    except ValueError as err:
        raise ValueError(
            f"{text!r} is not a PromQL selector ({err}); write a metric name with optional "
            'label matchers, e.g. http_requests_total{code=~"5.."}'
        ) from None
    if not isinstance(parsed, promql_parser.VectorSelector) or not parsed.name:
        raise ValueError(
            f"{text!r} must be a plain selector: a metric name with optional label matchers, "
            "no functions, ranges or operators"
        )
    if parsed.offset is not None or parsed.at is not None:
        raise ValueError(f"{text!r} must not use offset or @")
    return Selector(parsed.name, _matchers(parsed))


def _matchers(parsed: promql_parser.VectorSelector) -> tuple[Matcher, ...]:
    if parsed.matchers.or_matchers:
        raise ValueError("'or' inside a selector is not supported")
    return tuple(
        Matcher(m.name, _OPS[str(m.op).rsplit(".", 1)[-1]], m.value)
        for m in parsed.matchers.matchers
        if m.name != "__name__"
    )
