"""The expr-lang subset of the rendered AnalysisTemplate conditions: a small
evaluator of the strings Argo Rollouts evaluates (never Python's eval), vectorised over runs."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np

# ---- the expr-lang subset of the rendered conditions ----------------------------------------

_TOKEN = re.compile(
    r"\s*(?:(?P<num>(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?)"
    r"|(?P<op>&&|\|\||==|!=|<=|>=|<|>|!|\(|\)|\[|\]|,|-)"
    r"|(?P<name>[A-Za-z_][A-Za-z_0-9]*))"
)
_COMPARE = {
    "==": np.equal, "!=": np.not_equal, "<": np.less, "<=": np.less_equal,
    ">": np.greater, ">=": np.greater_equal,
}


class Env(NamedTuple):
    """What a condition sees: ``result`` as arrays of its elements and its length per cell."""

    values: Sequence[np.ndarray]
    length: np.ndarray


Evaluator = Callable[[Env], tuple[Any, Any]]  # -> (value, evaluation error), elementwise


class Condition:
    """One rendered condition, parsed once, evaluated on whole arrays of measurements.

    Supported: ``&&``/``and``, ``||``/``or``, ``!``/``not``, unary ``-``, ``== != < <= > >=``,
    numbers, ``true``/``false``, ``len(result)``, ``result[<int>]``, ``isNaN(<number>)``, with
    expr-lang's precedence (``!`` binds tighter than comparisons, ``&&`` tighter than ``||``)
    and short-circuit evaluation: ``result[i]`` past the end is an evaluation error (Argo: the
    measurement is Error) unless the left side of ``&&``/``||`` already decided.
    """

    def __init__(self, text: str):
        self.text = text
        self._tokens = self._tokenize(text)
        self._pos = 0
        kind, self._fn = self._or()
        if self._pos != len(self._tokens):
            raise ValueError(f"unexpected {self._tokens[self._pos][1]!r} in {text!r}")
        if kind != "bool":
            raise ValueError(f"condition {text!r} is not boolean")

    @staticmethod
    def _tokenize(text: str) -> list[tuple[str, str]]:
        tokens, pos = [], 0
        while pos < len(text):
            if text[pos:].strip() == "":
                break
            match = _TOKEN.match(text, pos)
            if not match:
                raise ValueError(f"cannot read {text[pos:]!r} in {text!r}")
            kind = match.lastgroup
            assert kind is not None
            value = match.group(kind)
            if kind == "name" and value in ("and", "or", "not"):
                kind, value = "op", {"and": "&&", "or": "||", "not": "!"}[value]
            tokens.append((kind, value))
            pos = match.end()
        return tokens

    def _peek(self) -> tuple[str, str] | None:
        return self._tokens[self._pos] if self._pos < len(self._tokens) else None

    def _take(self, value: str | None = None) -> tuple[str, str]:
        token = self._peek()
        if token is None or (value is not None and token[1] != value):
            raise ValueError(f"expected {value or 'more'} in {self.text!r}")
        self._pos += 1
        return token

    def _or(self) -> tuple[str, Evaluator]:
        kind, left = self._and()
        while self._peek() == ("op", "||"):
            self._take()
            right_kind, right = self._and()
            if kind != "bool" or right_kind != "bool":
                raise ValueError(f"|| needs booleans in {self.text!r}")
            left = self._logical(left, right, is_and=False)
        return kind, left

    def _and(self) -> tuple[str, Evaluator]:
        kind, left = self._compare()
        while self._peek() == ("op", "&&"):
            self._take()
            right_kind, right = self._compare()
            if kind != "bool" or right_kind != "bool":
                raise ValueError(f"&& needs booleans in {self.text!r}")
            left = self._logical(left, right, is_and=True)
        return kind, left

    @staticmethod
    def _logical(left: Evaluator, right: Evaluator, is_and: bool) -> Evaluator:
        def run(env: Env) -> tuple[Any, Any]:
            lv, le = left(env)
            rv, re_ = right(env)
            lv = np.asarray(lv, dtype=bool)
            rv = np.asarray(rv, dtype=bool)
            decided = ~lv if is_and else lv  # the right side is not evaluated there
            error = le | (~np.asarray(le) & ~decided & re_)
            return (lv & rv) if is_and else (lv | rv), error

        return run

    def _compare(self) -> tuple[str, Evaluator]:
        kind, left = self._unary()
        token = self._peek()
        if token and token[0] == "op" and token[1] in _COMPARE:
            self._take()
            right_kind, right = self._unary()
            if kind != "num" or right_kind != "num":
                raise ValueError(f"{token[1]} needs numbers in {self.text!r}")
            op = _COMPARE[token[1]]

            def run(env: Env) -> tuple[Any, Any]:
                lv, le = left(env)
                rv, re_ = right(env)
                with np.errstate(invalid="ignore"):
                    return op(lv, rv), le | re_

            return "bool", run
        return kind, left

    def _unary(self) -> tuple[str, Evaluator]:
        token = self._peek()
        if token == ("op", "!"):
            self._take()
            kind, inner = self._unary()
            if kind != "bool":
                raise ValueError(f"! needs a boolean in {self.text!r}")
            return "bool", lambda env: (lambda v, e: (~np.asarray(v, dtype=bool), e))(*inner(env))
        if token == ("op", "-"):
            self._take()
            kind, inner = self._unary()
            if kind != "num":
                raise ValueError(f"- needs a number in {self.text!r}")
            return "num", lambda env: (lambda v, e: (-np.asarray(v), e))(*inner(env))
        return self._primary()

    def _primary(self) -> tuple[str, Evaluator]:
        kind, value = self._take()
        if kind == "num":
            number = float(value)
            return "num", lambda env: (number, False)
        if kind == "op" and value == "(":
            inner = self._or()
            self._take(")")
            return inner
        if kind != "name":
            raise ValueError(f"unexpected {value!r} in {self.text!r}")
        if value in ("true", "false"):
            truth = value == "true"
            return "bool", lambda env: (truth, False)
        if value == "result":
            self._take("[")
            index_kind, index = self._take()
            if index_kind != "num" or not index.isdigit():
                raise ValueError(f"result[...] needs a whole number in {self.text!r}")
            self._take("]")
            i = int(index)

            def element(env: Env) -> tuple[Any, Any]:
                value = env.values[i] if i < len(env.values) else np.nan
                return value, env.length <= i

            return "num", element
        if value == "len":
            self._take("(")
            if self._take() != ("name", "result"):
                raise ValueError(f"len() takes result only in {self.text!r}")
            self._take(")")
            return "num", lambda env: (env.length, False)
        if value == "isNaN":
            self._take("(")
            arg_kind, arg = self._or()
            self._take(")")
            if arg_kind != "num":
                raise ValueError(f"isNaN needs a number in {self.text!r}")
            return "bool", lambda env: (lambda v, e: (np.isnan(v), e))(*arg(env))
        raise ValueError(f"{value!r} is not supported in {self.text!r}")

    def evaluate(self, env: Env) -> tuple[np.ndarray, np.ndarray]:
        """(truth, evaluation error) per element, broadcast to the shape of ``env.length``."""
        value, error = self._fn(env)
        shape = np.shape(env.length)
        return (
            np.broadcast_to(np.asarray(value, dtype=bool), shape),
            np.broadcast_to(np.asarray(error, dtype=bool), shape),
        )
