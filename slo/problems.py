"""The one error type for input an operator wrote: one line per problem, file and field first."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    path: str
    message: str

    def render(self, source: str) -> str:
        where = f"{source}: {self.path}" if self.path else source
        return f"{where}: {self.message}"


class ConfigError(Exception):
    """A catalogue or stack file that cannot be used; ``lines`` holds one message per problem."""

    def __init__(self, lines: list[str]):
        # one line each, whatever the input held: a line break or other control character
        # quoted from a value is shown escaped
        lines = [line if line.isprintable() else _escaped(line) for line in lines]
        super().__init__("\n".join(lines))
        self.lines = lines


def _escaped(line: str) -> str:
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in line)
