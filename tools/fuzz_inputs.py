"""Structure-aware mutations of the shipped catalogue and stack files, and the check every
mutant must pass: it is accepted, or refused with ConfigError lines that all name the file; and
an accepted catalogue's rule files pass ``promtool check rules`` (promtool on the PATH).

Used by ``tests/test_fuzz_inputs.py`` (Hypothesis drives the random choices, bounded) and by
``bench/fuzz_inputs.py`` (a long seeded run that also watches for signals and slow cases).
"""

from __future__ import annotations

import contextlib
import copy
import io
import random
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from delivery.stack import load_stack_file, stack_catalogue
from slo import cli
from slo.problems import ConfigError

ROOT = Path(__file__).resolve().parent.parent
_DUMPER: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
CATALOGUE = ROOT / "catalogue" / "core-services.yaml"
# query SLIs, alert names, labels, annotation templates, tiers, a fleet SLO: text that reaches
# PromQL and Go templates as written
QUERY_CATALOGUE = ROOT / "tools" / "fuzz_seeds" / "queries.yaml"
CATALOGUES = (CATALOGUE, QUERY_CATALOGUE)
# spliced into text values: what breaks PromQL or a template when it lands in the wrong place
FRAGMENTS = ("{{.window}}", "{{ .window }}", "[{{.window}}]", "#", '"', "'", ")", "(", "}",
             "{", "{{", "}}", "{{ $value }}", "{{ .Broken", " or vector(1)", "\n", "\\",
             "5m", "1y", "-1s", "le=", ",", " offset 1h", "@ 0", "[5m:1m]")
STACKS = (ROOT / "Pulumi.dev.yaml", ROOT / "Pulumi.prod.yaml")

# ---- mutations -------------------------------------------------------------------------------


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a value in a parsed document."""
    out = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            out += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out += _paths(value, (*prefix, i))
    return out


def _get(node: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        node = node[part]
    return node


def _odd_value(rng: random.Random) -> Any:
    choices: list[Callable[[], Any]] = [
        lambda: None,
        lambda: rng.choice([True, False]),
        lambda: rng.choice([0, -1, 1, 2**63, -(2**70), 10**400]),
        lambda: rng.choice([0.0, -0.5, 1e308, float("inf"), float("nan")]),
        lambda: rng.choice(["", " ", "1d", "2w", "99.99.9", "{", "}}", "x" * 10_000, "é"]),
        lambda: "".join(chr(rng.randrange(0x20, 0x3000)) for _ in range(rng.randrange(1, 40))),
        lambda: [],
        lambda: {},
        lambda: [rng.randrange(100)] * rng.randrange(1, 50),
        lambda: {"k": {"k": {"k": "v"}}},
        lambda: 'job="a"} or vector(1) or {x="',
        lambda: "[" * rng.randrange(1, 200),
    ]
    return rng.choice(choices)()


def _typo(rng: random.Random, word: str) -> str:
    if not word:
        return "x"
    i = rng.randrange(len(word))
    kind = rng.randrange(4)
    if kind == 0:
        return word[:i] + word[i + 1 :]
    if kind == 1:
        return word[:i] + rng.choice("abcdefghijklmnopqrstuvwxyz_-:") + word[i:]
    if kind == 2:
        return word.upper()
    return word + word[i]


def mutate_tree(rng: random.Random, data: Any, rounds: int) -> Any:
    """Delete, rename, retype, duplicate or hugely grow values at random paths."""
    data = copy.deepcopy(data)
    for _ in range(rounds):
        paths = [p for p in _paths(data) if p]
        if not paths:
            return _odd_value(rng)
        path = rng.choice(paths)
        parent, last = _get(data, path[:-1]), path[-1]
        op = rng.randrange(7)
        if op == 6 and isinstance(parent[last], str):  # splice a fragment into text
            text = parent[last]
            at = rng.randrange(len(text) + 1)
            parent[last] = text[:at] + rng.choice(FRAGMENTS) + text[at:]
        elif op == 0:  # delete
            del parent[last]
        elif op == 1 and isinstance(parent, dict):  # rename
            parent[_typo(rng, str(last))] = parent.pop(last)
        elif op == 2 and isinstance(parent, list):  # duplicate an element
            parent.insert(last, copy.deepcopy(parent[last]))
        elif op == 3:  # huge
            parent[last] = rng.choice(
                [["x"] * 20_000, "y" * 1_000_000, {f"k{i}": i for i in range(5_000)}]
            )
        else:  # retype
            parent[last] = _odd_value(rng)
    return data


def mutate_text(rng: random.Random, text: str) -> bytes:
    """Line- and byte-level damage: duplicated or dropped lines, odd bytes, other encodings,
    deep nesting."""
    lines = text.splitlines(keepends=True)
    op = rng.randrange(7)
    if op == 0 and lines:  # a key given twice
        i = rng.randrange(len(lines))
        lines.insert(i, lines[i])
    elif op == 1 and lines:
        del lines[rng.randrange(len(lines))]
    elif op == 2 and lines:  # indentation broken
        i = rng.randrange(len(lines))
        lines[i] = " " * rng.randrange(1, 5) + lines[i]
    raw = "".join(lines).encode()
    if op == 3:
        at = rng.randrange(len(raw) + 1)
        raw = raw[:at] + bytes(rng.randrange(256) for _ in range(rng.randrange(1, 8))) + raw[at:]
    elif op == 4:
        encoding = rng.choice(["utf-16", "utf-32", "latin-1", "cp1252"])
        raw = "".join(lines).encode(encoding, "replace")
    elif op == 5:
        depth = rng.choice([100, 10_000, 60_000])
        raw += b"\ndeep: " + b"[" * depth + b"]" * rng.choice([0, depth])
    elif op == 6:
        raw = raw[: rng.randrange(len(raw) + 1)]  # truncated
    return raw


def mutant(rng: random.Random, original: Path) -> bytes:
    text = original.read_text()
    if rng.random() < 0.6:
        data = mutate_tree(rng, yaml.safe_load(text), rng.randrange(1, 4))
        try:
            text = yaml.dump(data, Dumper=_DUMPER, allow_unicode=True, sort_keys=False)
        except (yaml.YAMLError, ValueError, OverflowError):
            text = repr(data)
    return mutate_text(rng, text) if rng.random() < 0.5 else text.encode()


# ---- the check ---------------------------------------------------------------------------------


@dataclass
class Outcome:
    accepted: bool
    lines: list[str]
    seconds: float
    promtool_checked: bool = False  # an accepted catalogue whose rule files promtool passed


class BoundaryBroken(AssertionError):
    """A mutant crossed the boundary in a way the boundary promises never happens."""


def check_catalogue(raw: bytes, workdir: Path) -> Outcome:
    """``python -m slo rules`` on the mutant, in-process: exit 0, or exit 1 with lines that
    name the file and nothing written."""
    path, out = workdir / "catalogue.yaml", workdir / "out"
    path.write_bytes(raw)
    shutil.rmtree(out, ignore_errors=True)
    stderr = io.StringIO()
    started = time.perf_counter()
    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
        code = cli.main(["rules", str(path), "-o", str(out), "--no-tests"])
    seconds = time.perf_counter() - started
    if code == 0:
        refused = promtool_refusal(out)
        if refused:
            raise BoundaryBroken(f"accepted, and promtool refuses its rules: {refused}")
        return Outcome(True, [], seconds, promtool_checked=True)
    if out.exists():
        raise BoundaryBroken(f"exit {code}, and {out} was written")
    return _refused(ConfigError(stderr.getvalue().splitlines()), str(path), started)


def promtool_refusal(out: Path) -> str | None:
    """What ``promtool check rules`` says against the rule files under ``out``, or None."""
    files = sorted(str(p) for folder in ("rules", "fleet") for p in (out / folder).glob("*.yml"))
    if not files:
        return None
    promtool = shutil.which("promtool")
    if promtool is None:
        raise RuntimeError("promtool is not on the PATH (make prometheus builds it)")
    done = subprocess.run([promtool, "check", "rules", *files], capture_output=True, text=True,
                          timeout=120, check=False)
    if done.returncode == 0:
        return None
    return " ".join((done.stderr or done.stdout).split())[-400:]


def check_stack(raw: bytes, workdir: Path) -> Outcome:
    path = workdir / "Pulumi.fuzz.yaml"
    path.write_bytes(raw)
    started = time.perf_counter()
    try:
        stack = load_stack_file(path)
    except ConfigError as err:
        return _refused(err, path.name, started)
    # what __main__.py does next, with the same function: the catalogue the stack names
    try:
        stack_catalogue(stack, ROOT, path.name)
        return Outcome(True, [], time.perf_counter() - started)
    except ConfigError as err:
        lines = err.lines
        named = stack.catalogue
        # a refusal of the named catalogue's content names that file, not the stack file
        source = named if lines and lines[0].startswith(f"{named}:") else path.name
        return _refused(err, source, started)


def _refused(err: ConfigError, source: str, started: float) -> Outcome:
    seconds = time.perf_counter() - started
    if not err.lines:
        raise BoundaryBroken("refused without a message")
    for line in err.lines:
        if not line.startswith(f"{source}:") and not line.startswith(f"{source} "):
            raise BoundaryBroken(f"a line that does not name the file: {line!r}")
        if "Traceback" in line or "\n" in line:
            raise BoundaryBroken(f"not one line: {line!r}")
    return Outcome(False, err.lines, seconds)


def run_case(seed: int, workdir: Path) -> Outcome:
    """One seeded mutant of one shipped file through its check."""
    rng = random.Random(seed)
    if rng.random() < 0.5:
        return check_catalogue(mutant(rng, rng.choice(CATALOGUES)), workdir)
    return check_stack(mutant(rng, rng.choice(STACKS)), workdir)


def fresh_workdir() -> Path:
    return Path(tempfile.mkdtemp(prefix="slo-fuzz-"))
