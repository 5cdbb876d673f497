"""`python -m delivery`: what the canary renderer tells operators without running Pulumi.

python -m delivery docs --slos CATALOGUE --stack Pulumi.dev.yaml ...   docs/slos.md
python -m delivery docs --stack-reference                             docs/stack-config.md
python -m delivery plan --stack Pulumi.prod.yaml                      what verdicts need
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from delivery import docs
from delivery.config import StackConfig, load_stack_file
from slo.loader import load_catalogue
from slo.model import resolve_all
from slo.problems import ConfigError
from slo.rules import by_service


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m delivery", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    docs_cmd = sub.add_parser("docs", help="print docs/slos.md or the stack file reference")
    docs_cmd.add_argument("--slos", type=Path, metavar="CATALOGUE")
    docs_cmd.add_argument("--stack-reference", action="store_true")
    plan_cmd = sub.add_parser("plan", help="print what canary verdicts need on a stack")
    for cmd in (docs_cmd, plan_cmd):
        cmd.add_argument(
            "--stack", type=Path, action="append", default=[], metavar="Pulumi.<stack>.yaml"
        )
    return parser


def _stacks(paths: list[Path]) -> dict[str, StackConfig]:
    return {p.name.removeprefix("Pulumi.").removesuffix(".yaml"): load_stack_file(p) for p in paths}


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "docs" and args.stack_reference:
            print(docs.stack_reference(), end="")
        elif args.command == "docs":
            if args.slos is None:
                print(
                    "python -m delivery docs: give --slos CATALOGUE or --stack-reference",
                    file=sys.stderr,
                )
                return 2
            slos = resolve_all(load_catalogue(args.slos))
            print(docs.render_slos(slos, _stacks(args.stack)), end="")
        else:
            for name, stack in _stacks(args.stack).items():
                grouped = by_service(resolve_all(load_catalogue(stack.catalogue)))
                for service in sorted(stack.services):
                    summary = docs.plan(service, grouped.get(service, []), stack)
                    for line in docs.plan_lines(service, summary):
                        print(f"{name}: {line}")
    except ConfigError as err:
        for line in err.lines:
            print(line, file=sys.stderr)
        return 1
    return 0
