"""The input boundary: every YAML file a command reads is decoded and parsed here.

Whatever its bytes, size or depth, a file either parses or raises one :class:`ConfigError` line
naming the file, where, what is wrong and what is allowed; never a traceback and never a signal.
The YAML is streamed as events first (libyaml's event parser is not recursive), which bounds
what the recursive loader then builds:

- at most ``MAX_BYTES`` bytes, UTF-8 only (with or without a byte-order mark);
- nesting at most ``MAX_DEPTH`` collections deep (libyaml's loader overflows the C stack on
  tens of thousands of ``[``: the process dies with SIGSEGV);
- at most ``MAX_NODES`` nodes once aliases are expanded (no "billion laughs");
- no key twice in one mapping (YAML would keep the last silently).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from slo import yamlout
from slo.problems import ConfigError

MAX_BYTES = 8 * 1024 * 1024
MAX_DEPTH = 64
MAX_NODES = 1_000_000
_Parser: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def read_yaml(path: str | Path, source: str | None = None, documents: bool = False) -> Any:
    """The parsed document in ``path`` (None when empty), or with ``documents`` the list of
    every document of the stream; or ConfigError."""
    source = source or str(path)
    try:
        if not Path(path).is_file():  # a directory, a FIFO or a device would hang or fail late
            exists = Path(path).exists()
            problem = "not a regular file" if exists else "No such file or directory"
            raise ConfigError([f"{source}: cannot read the file ({problem})"])
        with Path(path).open("rb") as handle:
            raw = handle.read(MAX_BYTES + 1)
    except OSError as err:  # also a name too long for the filesystem
        raise ConfigError([f"{source}: cannot read the file ({err.strerror})"]) from None
    except ValueError:  # a NUL in the name
        raise ConfigError([f"{source}: cannot read the file (a NUL in its name)"]) from None
    if len(raw) > MAX_BYTES:
        raise ConfigError([f"{source}: larger than {MAX_BYTES // 2**20} MiB; not read"])
    return parse_yaml(raw, source, documents)


def parse_yaml(raw: bytes, source: str, documents: bool = False) -> Any:
    text = _decode(raw, source)
    try:
        _check_events(text, source)
        if documents:
            return [d for d in yamlout.load_all(text) if d is not None]
        return yamlout.load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError([f"{source}:{where}: not valid YAML ({problem})"]) from None
    except RecursionError:  # the pure-Python loader, where libyaml is missing
        raise ConfigError([f"{source}: nested too deeply (at most {MAX_DEPTH} levels)"]) from None


def _decode(raw: bytes, source: str) -> str:
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise ConfigError(
            [
                f"{source}: line {line}: byte 0x{raw[err.start]:02x} is not UTF-8; "
                "save the file as UTF-8"
            ]
        ) from None
    if "\x00" in text:
        line = text[: text.index("\x00")].count("\n") + 1
        raise ConfigError([f"{source}: line {line}: a NUL character; this is not a text file"])
    return text


def _check_events(text: str, source: str) -> None:
    """Depth, expanded size and duplicate keys, from the event stream alone."""
    # One frame per open collection: [nodes counted before it opened, anchor, keys seen
    # (mappings), key next]; its size (itself and every node inside) is the count since then
    frames: list[list[Any]] = []
    sizes: dict[str, int] = {}
    total = 0

    def add(count: int) -> None:
        nonlocal total
        total += count
        if total > MAX_NODES:
            raise ConfigError(
                [f"{source}: more than {MAX_NODES:,} values once aliases are expanded; not read"]
            )

    def key_or_value(event: Any, key: Any) -> None:
        if not frames or frames[-1][2] is None:
            return
        frame = frames[-1]
        if frame[3] and key is not None and key != "<<":  # this node is a key
            if key in frame[2]:
                line = event.start_mark.line + 1 if event.start_mark else 0
                raise ConfigError(
                    [f"{source}: line {line}: '{key}' is given twice in one mapping; keep one"]
                )
            frame[2].add(key)
        frame[3] = not frame[3]

    for event in yaml.parse(text, Loader=_Parser):
        if isinstance(event, yaml.ScalarEvent):
            key_or_value(event, event.value)
            add(1)
            if event.anchor:
                sizes[event.anchor] = 1
        elif isinstance(event, yaml.AliasEvent):
            key_or_value(event, None)
            add(sizes.get(event.anchor or "", 1))
        elif isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
            key_or_value(event, None)
            add(1)
            if len(frames) >= MAX_DEPTH:
                line = event.start_mark.line + 1 if event.start_mark else 0
                raise ConfigError(
                    [f"{source}: line {line}: nested more than {MAX_DEPTH} levels deep; not read"]
                )
            keys: set[str] | None = set() if isinstance(event, yaml.MappingStartEvent) else None
            frames.append([total - 1, event.anchor, keys, True])
        elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
            before, anchor, _, _ = frames.pop()
            if anchor:
                sizes[anchor] = total - before
