"""`python -m delivery`: what the canary renderer tells operators without running Pulumi.

python -m delivery docs --slos CATALOGUE --stack Pulumi.dev.yaml ...   docs/slos.md
python -m delivery docs --stack-reference                             docs/stack-config.md
python -m delivery docs --oc SERVICE --stack Pulumi.prod.yaml         docs/oc-prod-SERVICE.svg
python -m delivery plan --stack Pulumi.prod.yaml                      what verdicts need
python -m delivery traffic --stack Pulumi.prod.yaml --prometheus URL  requests a minute to state
python -m delivery rules --stack Pulumi.prod.yaml -o DIR              the judge's recording rules
python -m delivery explain RUN.yaml [--json]                          an AnalysisRun's verdicts
python -m delivery explain --stack Pulumi.prod.yaml --service NAME    ... of a release, live
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from delivery import docs, evidence
from delivery.canary import evidence_group
from delivery.judge import stack_gates
from delivery.plan import plan
from delivery.routers import ROUTERS
from delivery.stack import StackConfig, load_stack_file, stack_catalogue
from slo.loader import load_catalogue
from slo.model import ResolvedSlo, resolve_all
from slo.problems import ConfigError
from slo.rules import by_service
from slo.yamlout import dump


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m delivery", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    docs_cmd = sub.add_parser("docs", help="print docs/slos.md or the stack file reference")
    docs_cmd.add_argument("--slos", type=Path, metavar="CATALOGUE")
    docs_cmd.add_argument("--stack-reference", action="store_true")
    docs_cmd.add_argument("--oc", metavar="SERVICE",
                          help="the SVG picture of the service's first gate on the one --stack")
    plan_cmd = sub.add_parser("plan", help="print what canary verdicts need on a stack")
    traffic_cmd = sub.add_parser(
        "traffic", help="measure each service's requests a minute in Prometheus: the "
        "expectedRequestsPerMinute to state (failBurnRate auto and the plan read it)")
    traffic_cmd.add_argument("--prometheus", required=True, metavar="URL",
                             help="e.g. http://localhost:9090 after kubectl port-forward")
    traffic_cmd.add_argument("--window", default="7d", help="how far back (default 7d)")
    traffic_cmd.add_argument("--at", type=float, default=None, metavar="UNIX_SECONDS",
                             help="the window's end (default now)")
    rules_cmd = sub.add_parser(
        "rules", help="write the canary judge's recording rules (one Prometheus rule file per "
        "service) for a Prometheus that does not read PrometheusRules"
    )
    rules_cmd.add_argument("-o", "--out", type=Path, required=True, metavar="DIR")
    explain_cmd = sub.add_parser(
        "explain", help="say in words what an AnalysisRun's canary measurements mean "
        "(kubectl get analysisrun NAME -o yaml > run.yaml, or - for standard input)"
    )
    explain_cmd.add_argument("run", metavar="FILE", nargs="?",
                             help="AnalysisRun YAML or JSON; - reads stdin")
    explain_cmd.add_argument("--json", action="store_true", help="one JSON document, for tools")
    explain_cmd.add_argument(
        "--stack", type=Path, metavar="Pulumi.<stack>.yaml",
        help="instead of FILE: read the runs from the stack's cluster (with --service)")
    explain_cmd.add_argument("--service", metavar="NAME",
                             help="the service whose current release to explain (with --stack)")
    for cmd in (docs_cmd, plan_cmd, rules_cmd, traffic_cmd):
        cmd.add_argument(
            "--stack", type=Path, action="append", default=[], metavar="Pulumi.<stack>.yaml"
        )
    return parser


def _checked(paths: list[Path]) -> dict[str, tuple[StackConfig, dict[str, list[ResolvedSlo]]]]:
    """Each stack (by name) with its catalogue's SLOs by service, after every check render runs."""
    checked = {}
    for path in paths:
        stack = load_stack_file(path)
        _, slos = stack_catalogue(stack, Path.cwd(), path.name)
        checked[path.name.removeprefix("Pulumi.").removesuffix(".yaml")] = (stack, by_service(slos))
    return checked


def _write_rules(paths: list[Path], out: Path) -> int:
    files: dict[Path, str] = {}
    for stack, grouped in _checked(paths).values():
        for service in sorted(stack.services):
            group = evidence_group(service, grouped.get(service, []), stack)
            if group is not None:
                files[out / f"{evidence.rule_name(service)}.yml"] = dump({"groups": [group]})
    if out.exists() and not out.is_dir():
        print(f"{out}: -o must name a directory", file=sys.stderr)
        return 1
    try:
        out.mkdir(parents=True, exist_ok=True)
        for path, text in files.items():
            path.write_text(text)
    except OSError as err:
        print(f"{out}: cannot write the rule files ({err.strerror})", file=sys.stderr)
        return 1
    return 0


def _explain(args: argparse.Namespace) -> int:
    from delivery import explain

    source, as_json = args.run, args.json
    if (source is None) == (args.stack is None) or (args.stack is None) != (args.service is None):
        print("python -m delivery explain: give FILE (or - for stdin), or --stack and --service",
              file=sys.stderr)
        return 2
    if args.stack is not None:
        runs = explain.cluster_runs(args.stack, args.service)
    else:
        if source == "-":
            text = sys.stdin.read()
        else:
            try:
                text = Path(source).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as err:
                reason = err.strerror if isinstance(err, OSError) else "not UTF-8 text"
                raise ConfigError([f"{source}: cannot read it ({reason})"]) from None
        runs = explain.read_runs(text, source)
    verdicts = [explain.explain_run(run) for run in runs]
    print((explain.render_json if as_json else explain.render_text)(verdicts), end="")
    return 0


def _traffic(args: argparse.Namespace) -> int:
    from delivery import traffic
    from slo import durations
    from slo.tune import TuneError

    try:
        durations.parse(args.window)
    except ValueError:
        print(f"--window {args.window}: not a duration (e.g. 7d, 24h)", file=sys.stderr)
        return 2
    for name, (stack, grouped) in _checked(args.stack).items():
        for service in sorted(stack.services):
            slos = grouped.get(service, [])
            try:
                seen = traffic.measure(service, slos, stack, args.prometheus, args.window,
                                       args.at)
            except TuneError as err:
                print(err, file=sys.stderr)
                return 1
            print(f"{name}: " + seen.line(
                traffic.auto_choice(slos, stack, service, seen.per_minute),
                traffic.auto_choice(slos, stack, service, seen.stated)))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "explain":
            return _explain(args)
        if args.command == "docs" and args.stack_reference:
            print(docs.stack_reference(), end="")
        elif args.command == "docs" and args.oc:
            from delivery import pictures  # matplotlib only where a picture is drawn

            checked = _checked(args.stack[:1])
            found = [(n, s, g) for n, (s, g) in checked.items() if args.oc in s.services]
            if len(args.stack) != 1 or not found or \
                    found[0][1].services[args.oc].expected_requests_per_minute is None:
                print(f"python -m delivery docs --oc: give one --stack that deploys {args.oc} "
                      "with its expectedRequestsPerMinute", file=sys.stderr)
                return 2
            name, stack, grouped = found[0]
            print(pictures.operating_characteristic(args.oc, grouped.get(args.oc, []), stack,
                                                    name), end="")
        elif args.command == "docs":
            if args.slos is None:
                print(
                    "python -m delivery docs: give --slos CATALOGUE or --stack-reference",
                    file=sys.stderr,
                )
                return 2
            slos = resolve_all(load_catalogue(args.slos))
            stacks = {name: stack for name, (stack, _) in _checked(args.stack).items()}
            print(docs.render_slos(slos, stacks), end="")
        elif args.command == "rules":
            return _write_rules(args.stack, args.out)
        elif args.command == "traffic":
            return _traffic(args)
        else:
            for name, (stack, grouped) in _checked(args.stack).items():
                routing = stack.delivery.traffic_routing
                if ROUTERS[routing].deprecated:
                    print(f"{name}: trafficRouting {routing}: {ROUTERS[routing].deprecated}")
                for service in sorted(stack.services):
                    gates = stack_gates(grouped.get(service, []), stack, service)
                    for line in plan(service, stack, gates).lines():
                        print(f"{name}: {line}")
    except ConfigError as err:
        for line in err.lines:
            print(line, file=sys.stderr)
        return 1
    return 0
