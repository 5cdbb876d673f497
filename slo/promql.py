"""Parsing and composing PromQL selectors with ``promql-parser``.

Selectors in the catalogue are parsed once; rules are composed from the parsed matchers, never
by pasting operator text into expressions, so a stray brace cannot change a rule's meaning.
"""

from __future__ import annotations

import json
import re
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


# ---- PromQL expressions of the catalogue's `query` kind ----------------------------------------

WINDOW = "{{.window}}"  # where an expression's range goes (Sloth's placeholder)


def with_window(text: str) -> str:
    """``text`` with Go template spellings of the placeholder (``{{ .window }}``) as WINDOW."""
    return re.sub(r"\{\{-?\s*\.window\s*-?\}\}", WINDOW, text)


@dataclass(frozen=True)
class Query:
    """A PromQL expression with ``{{.window}}`` where its range goes, parsed once."""

    text: str

    def at(self, window: str) -> str:
        """The expression over ``window`` (``5m``, ``1h``), as written otherwise."""
        return self.text.replace(WINDOW, window)

    def tree(self) -> promql_parser.Expr:
        return promql_parser.parse(self.at("5m"))

    def selectors(self) -> list[Selector]:
        """Every vector selector of the expression (with a metric name), in order."""
        found: list[Selector] = []

        def visit(node: promql_parser.Expr) -> None:
            if isinstance(node, promql_parser.VectorSelector) and node.name:
                found.append(Selector(node.name, _matchers(node)))

        promql_parser.walk(self.tree(), pre_visit=visit)
        return found

    def plain_rate_selector(self) -> Selector | None:
        """The selector when the expression is exactly ``sum(rate(<selector>[{{.window}}]))``."""
        tree = self.tree()
        if self.text.count(WINDOW) != 1 or f"[{WINDOW}]" not in self.text.replace(" ", ""):
            return None
        if not (isinstance(tree, promql_parser.AggregateExpr) and str(tree.op) == "sum"
                and tree.modifier is None and tree.param is None):
            return None
        call = tree.expr
        if not (isinstance(call, promql_parser.Call) and call.func.name == "rate"):
            return None
        matrix = call.args[0]
        if not isinstance(matrix, promql_parser.MatrixSelector):
            return None
        vs = matrix.vector_selector
        if not vs.name or vs.offset is not None or vs.at is not None or vs.matchers.or_matchers:
            return None
        selector = Selector(vs.name, _matchers(vs))
        plain = promql_parser.parse(f"sum(rate({selector.render()}[5m]))")
        return selector if plain.prettify() == tree.prettify() else None

    def why_not_per_hash(self, label: str) -> str | None:
        """Why adding ``label="..."`` to every vector selector would not restrict the expression
        to one pod template's series, or None when it would."""
        problems: list[str] = []

        def visit(node: promql_parser.Expr) -> None:
            if isinstance(node, promql_parser.SubqueryExpr):
                problems.append("it has a subquery")
            elif isinstance(node, promql_parser.VectorSelector):
                if any(m.name == label for m in node.matchers.matchers):
                    problems.append(f"a selector already sets {label}")
                if node.matchers.or_matchers:
                    problems.append("a selector uses 'or' matchers")
                if node.offset is not None or node.at is not None:
                    problems.append("a selector uses offset or @ (it would read before the canary)")
            elif isinstance(node, promql_parser.Call):
                windowed = [a for a in node.args if isinstance(a, promql_parser.MatrixSelector)]
                if windowed and node.func.name != "rate":
                    problems.append(f"{node.func.name}() of a range (only rate() gives per-second "
                                    "counts the judge can total)")
            elif isinstance(node, promql_parser.AggregateExpr) and node.modifier is not None:
                problems.append("an aggregation keeps labels (by/without)")

        promql_parser.walk(self.tree(), pre_visit=visit)
        if not problems:
            return None
        return "; ".join(dict.fromkeys(problems))

    def with_matchers(self, extra: tuple[Matcher, ...]) -> Query:
        """The same expression with ``extra`` added to every vector selector, done on the parsed
        tree; checked by parsing the result back and comparing it with the original."""
        if not extra:
            return self
        names = {m.name for m in extra}

        def add(node: promql_parser.Expr) -> promql_parser.Expr | None:
            if not isinstance(node, promql_parser.VectorSelector):
                return None
            node.matchers = promql_parser.Matchers(
                list(node.matchers.matchers)
                + [promql_parser.Matcher(_MATCH_OPS[m.op], m.name, m.value) for m in extra]
            )
            return promql_parser.parse(str(node))

        def drop(node: promql_parser.Expr) -> promql_parser.Expr | None:
            if not isinstance(node, promql_parser.VectorSelector):
                return None
            node.matchers = promql_parser.Matchers(
                [m for m in node.matchers.matchers if m.name not in names]
            )
            return promql_parser.parse(str(node))

        # the placeholder is not PromQL: rewrite at a sentinel range, then put it back
        sentinel = "7777s"
        if sentinel in self.text:
            raise ValueError(f"{self.text!r} holds {sentinel}, which the rewrite uses")
        tree = promql_parser.parse(self.at(sentinel))
        rewritten = str(promql_parser.transform(tree, post_visit=add))
        back = promql_parser.transform(promql_parser.parse(rewritten), post_visit=drop)
        if back.prettify() != tree.prettify():
            raise ValueError(f"adding {', '.join(sorted(names))} to {self.text!r} changed it")
        rendered = rewritten.replace("[2h9m37s]", f"[{WINDOW}]").replace(
            f"[{sentinel}]", f"[{WINDOW}]"
        )
        if WINDOW not in rendered:
            raise ValueError(f"the range of {self.text!r} did not survive the rewrite")
        return Query(rendered)


_MATCH_OPS = {
    "=": promql_parser.MatchOp.Equal,
    "!=": promql_parser.MatchOp.NotEqual,
    "=~": promql_parser.MatchOp.Re,
    "!~": promql_parser.MatchOp.NotRe,
}


def check_query(text: str) -> None:
    """A catalogue query: valid PromQL once ``{{.window}}`` is a range, and it has one."""
    if WINDOW not in text:
        raise ValueError(
            f"{text!r} has no {WINDOW}: write it where the range goes, e.g. "
            f"sum(rate(http_requests_total[{WINDOW}]))"
        )
    five = text.replace(WINDOW, "5m")
    try:
        tree = promql_parser.parse(five)
    except ValueError as err:
        raise ValueError(f"{text!r} is not valid PromQL with {WINDOW} as 5m ({err})") from None
    try:  # the rules put it inside other expressions: it must parse there too
        promql_parser.parse(f"(\n{five}\n) * 1")
        if "\n" not in five:
            promql_parser.parse(f"({five}) * 1")
    except ValueError:
        raise ValueError(
            f"{text!r} is valid alone but not inside the rules' expressions: a comment (#) "
            "would swallow what they add after it; remove it"
        ) from None
    at = -1
    while (at := text.find(WINDOW, at + 1)) >= 0:  # each one where a duration goes
        probe = (text[:at] + "not a duration" + text[at + len(WINDOW):]).replace(WINDOW, "5m")
        try:
            promql_parser.parse(probe)
        except ValueError:
            continue
        raise ValueError(
            f"{text!r}: the {WINDOW} at character {at} is not a range (it is inside a quoted "
            f"string); write it where the range goes, e.g. rate(http_requests_total[{WINDOW}])"
        )
    selectors: list[promql_parser.Expr] = []
    promql_parser.walk(tree, pre_visit=lambda node: selectors.append(node) if isinstance(
        node, promql_parser.VectorSelector) else None)
    if not selectors:
        raise ValueError(
            f"{text!r} selects no series: it needs a metric, e.g. "
            f"sum(rate(http_requests_total{{code=~\"5..\"}}[{WINDOW}]))"
        )
