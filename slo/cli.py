"""``python -m slo``: validate a catalogue, write its rules and their promtool proofs.

No Pulumi and no cluster: this is what a pull request check or an operator's laptop runs.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from slo import durations
from slo.bodies import service_rules
from slo.fleet import PLACEMENTS
from slo.loader import load_catalogue
from slo.model import ResolvedSlo, resolve_all
from slo.problems import ConfigError
from slo.rules import by_service
from slo.yamlout import dump

# Catalogues at least this large are rendered by several processes (one per CPU by default).
PARALLEL_MIN_SLOS = 200

# docs, tune, proofs and stack files are imported where used: `rules` on a large catalogue is
# timed from process start, and most runs need none of them.


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return int(text)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m slo",
        description="SLO catalogue tools: validation, Prometheus rules, promtool proofs.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_validate(sub)
    _add_rules(sub)
    _add_tune(sub)
    _add_docs(sub)
    _add_import(sub)
    _add_export(sub)
    return parser


def _add_validate(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    validate = sub.add_parser(
        "validate",
        help="check a catalogue and print one line per problem",
        description="Check a catalogue file. Exit status 0 when valid, 1 with one line per "
        "problem otherwise.",
    )
    validate.add_argument("file", type=Path, help="catalogue YAML file")


def _add_rules(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    rules = sub.add_parser(
        "rules",
        help="write Prometheus rule files, PrometheusRule bodies and promtool tests",
        description="Write, under DIR: rules/<service>-<slo>.yml (Prometheus rule files), "
        "prometheusrule/<service>.yaml (monitoring.coreos.com/v1 bodies) and "
        "tests/<service>-<slo>.<interval>.test.yml (promtool test rules proofs). Nothing is "
        "written unless the catalogue is valid.",
    )
    rules.add_argument("file", type=Path, help="catalogue YAML file")
    rules.add_argument(
        "-o",
        "--output",
        type=Path,
        required=True,
        metavar="DIR",
        help="output directory (created if missing)",
    )
    rules.add_argument(
        "--format",
        choices=["rules", "prometheusrule", "both"],
        default="both",
        help="plain rule files, PrometheusRule bodies, or both (default)",
    )
    rules.add_argument(
        "-j",
        "--jobs",
        type=_positive_int,
        default=len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1,
        help=f"processes to render with (default: one per CPU; catalogues under "
        f"{PARALLEL_MIN_SLOS} SLOs always use one)",
    )
    rules.add_argument(
        "--placement",
        choices=list(PLACEMENTS),
        default="local",
        help="local (default): every rule for the cluster's Prometheus; thanos: SLOs with "
        "scope: fleet keep their short windows in the cluster and get fleet/<service>.yml "
        "(Thanos Ruler rule files) and prometheusrule/<service>-fleet.yaml",
    )
    rules.add_argument(
        "--no-tests",
        action="store_true",
        help="skip the promtool proofs (faster for very large catalogues)",
    )


def _add_tune(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    tune_cmd = sub.add_parser(
        "tune",
        help="propose objectives from what each SLO achieved (reads Prometheus)",
        description="For every SLO, query the share of bad events over its window from the raw "
        "series and propose the objective it met (never looser than today), with the budget it "
        "would have left.",
    )
    tune_cmd.add_argument("file", type=Path, help="catalogue YAML file")
    tune_cmd.add_argument("--prometheus", required=True, metavar="URL")
    tune_cmd.add_argument("--window", help="history to judge (default: each SLO's window)")
    tune_cmd.add_argument("--at", type=float, help="end of the history, Unix time (default: now)")
    tune_cmd.add_argument(
        "--step",
        type=float,
        default=0.01,
        help="granularity of proposals in percentage points (default 0.01)",
    )


def _add_docs(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    docs_cmd = sub.add_parser(
        "docs",
        help="print the catalogue reference, or with --slos the SLO summary",
        description="Print docs/slo-catalogue.md; with --slos CATALOGUE, the SLOs and alert "
        "thresholds of that catalogue (`python -m delivery docs` adds the canary gates).",
    )
    docs_cmd.add_argument("--slos", type=Path, metavar="CATALOGUE")


def _add_import(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    import_cmd = sub.add_parser(
        "import",
        help="read Sloth or OpenSLO files into a catalogue",
        description="Read Sloth (prometheus/v1, PrometheusServiceLevel, AlertWindows) and "
        "OpenSLO (v1, v1alpha) files and write one catalogue. What does not map is printed "
        "one line per item, and nothing is written unless --partial is given.",
    )
    import_cmd.add_argument("files", type=Path, nargs="+", metavar="FILE")
    import_cmd.add_argument("-o", "--output", type=Path, metavar="CATALOGUE",
                            help="write here (default: standard output)")
    import_cmd.add_argument("--partial", action="store_true",
                            help="write what maps even when some items do not")
    import_cmd.add_argument("--window", default="30d",
                            help="period of SLOs whose format does not say it (Sloth's "
                            "default: 30d)")
    import_cmd.add_argument("--namespace", help="Kubernetes namespace of every imported service "
                            "(default: from the file, else the service's name)")


def _add_export(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    export_cmd = sub.add_parser(
        "export",
        help="write a catalogue in another format (OpenSLO v1)",
        description="Write the catalogue as OpenSLO v1 documents: a Prometheus DataSource, and "
        "per SLO an SLI, an SLO and the AlertPolicies and AlertConditions of its burn-rate "
        "tiers.",
    )
    export_cmd.add_argument("file", type=Path, help="catalogue YAML file")
    export_cmd.add_argument("--openslo", action="store_true", required=True,
                            help="OpenSLO v1 (the only format written)")
    export_cmd.add_argument("-o", "--output", type=Path, metavar="FILE",
                            help="write here (default: standard output)")


def _output_file_problem(output: Path, inputs: list[Path]) -> str | None:
    """Why ``-o`` cannot be written as one file, or None."""
    if output.is_dir():
        return f"{output}: -o names a directory; give the file to write"
    if any(i.exists() and output.exists() and output.samefile(i) for i in inputs):
        return f"{output}: -o is one of the input files; write the output elsewhere"
    if not output.parent.is_dir():
        return f"{output}: the directory {output.parent} does not exist"
    if not os.access(output.parent, os.W_OK) or (output.exists()
                                                 and not os.access(output, os.W_OK)):
        return f"{output}: not writable"
    return None


def _write_output(output: Path, text: str, inputs: list[Path]) -> int:
    """Write ``text`` to ``output`` whole (a temporary file renamed into place), or print one
    line saying why not and return 1."""
    problem = _output_file_problem(output, inputs)
    if problem is None:
        partial = output.with_name(f".{output.name}.partial")
        try:
            partial.write_text(text)
            partial.replace(output)
            return 0
        except OSError as err:
            partial.unlink(missing_ok=True)
            problem = f"{output}: cannot write it ({err.strerror})"
    print(problem, file=sys.stderr)
    return 1


def _export(args: argparse.Namespace) -> int:
    from slo.interop.export import documents

    try:
        catalogue = load_catalogue(args.file)
    except ConfigError as err:
        for line in err.lines:
            print(line, file=sys.stderr)
        return 1
    text = "".join(f"---\n{dump(doc)}" for doc in documents(catalogue))
    if args.output is None:
        sys.stdout.write(text)
        return 0
    return _write_output(args.output, text, [args.file])


def _import(args: argparse.Namespace) -> int:
    from slo.interop import catalogue_text
    from slo.interop.read import read_files

    try:
        durations.parse(args.window)
    except ValueError as err:
        print(f"--window: {err}", file=sys.stderr)
        return 1
    result = read_files(args.files, args.window, args.namespace)
    for line in result.refused:
        print(("warning: " if args.partial else "") + line, file=sys.stderr)
    imported = sum(len(s.slos) for s in result.services.values())
    if result.refused and not args.partial:
        print(f"{len(result.refused)} item(s) do not map; nothing written (--partial writes "
              f"the {imported} SLO(s) that do)", file=sys.stderr)
        return 1
    if not imported:
        print("no SLO to write", file=sys.stderr)
        return 1
    text = catalogue_text(result)
    if args.output is None:
        sys.stdout.write(text)
    else:
        if _write_output(args.output, text, list(args.files)):
            return 1
        print(f"{args.output}: {len(result.services)} services, {imported} SLOs imported",
              file=sys.stderr)
    return 0


def _tune(args: argparse.Namespace, slos: list[ResolvedSlo]) -> int:
    from slo import tune

    try:
        if args.window:
            durations.parse(args.window)
        proposals = tune.tune(slos, args.prometheus, args.window, args.at, args.step)
    except (tune.TuneError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    for proposal in proposals:
        print(proposal.line())
    return 0


def _docs(args: argparse.Namespace) -> int:
    from slo import docs

    if args.slos is None:
        print(docs.render(), end="")
        return 0
    try:
        slos = resolve_all(load_catalogue(args.slos))
    except ConfigError as err:
        for line in err.lines:
            print(line, file=sys.stderr)
        return 1
    print(docs.render_slos(slos), end="")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "docs":
        return _docs(args)
    if args.command == "import":
        return _import(args)
    if args.command == "export":
        return _export(args)
    try:
        catalogue = load_catalogue(args.file)
    except ConfigError as err:
        for line in err.lines:
            print(line, file=sys.stderr)
        return 1
    slos = resolve_all(catalogue)
    if args.command == "tune":
        return _tune(args, slos)
    if args.command == "validate":
        print(f"{args.file}: {len(catalogue.services)} services, {len(slos)} SLOs, valid")
        return 0

    return _rules(args, slos)


Written = tuple[Counter[str], list[str]]  # files written per folder, warnings
Share = list[list[ResolvedSlo]]  # some services, each with its SLOs
_shared: tuple[list[Share], argparse.Namespace] | None = None  # what forked workers render


def _folders(args: argparse.Namespace) -> list[str]:
    """The output folders ``args`` asks for (proofs need the rule files they test)."""
    wanted = {"rules": args.format != "prometheusrule" or not args.no_tests,
              "tests": not args.no_tests, "prometheusrule": args.format != "rules",
              "fleet": args.placement == "thanos" and args.format != "prometheusrule"}
    return [folder for folder, yes in wanted.items() if yes]


def _write(args: argparse.Namespace, folder: str, name: str, text: str, n: Counter[str]) -> None:
    (args.output / folder / name).write_text(text)
    n[folder] += 1


def _render(groups: Share, args: argparse.Namespace) -> Written:
    """Write the rule files, proofs and PrometheusRules of ``groups`` (each a service's SLOs)."""
    if not args.no_tests:
        from slo.proofs import ProofError, proof_files
    folders = _folders(args)
    counts: Counter[str] = Counter()
    skipped: list[str] = []
    for group in groups:
        service = group[0].service
        bodies = service_rules(group, args.placement)
        for slo, built in bodies.cluster:
            stem = f"{slo.service.name}-{slo.slo.name}"
            if "rules" in folders:
                _write(args, "rules", f"{stem}.yml", dump({"groups": [built]}), counts)
            if args.no_tests:
                continue
            if bodies.is_split(slo):
                skipped.append(f"{stem}: no promtool proofs of a fleet SLO's cluster share "
                               "(its fleet rules are proven on Thanos by `make fleet`)")
                continue
            try:
                proofs = proof_files(slo, f"../rules/{stem}.yml")
            except ProofError as err:
                skipped.append(str(err))
                continue
            for step, doc in proofs.items():
                _write(args, "tests", f"{stem}.{step}m.test.yml", dump(doc), counts)
        if "prometheusrule" in folders:
            body = bodies.prometheus_rule(service.namespace)
            _write(args, "prometheusrule", f"{service.name}.yaml", dump(body), counts)
        if not bodies.fleet:
            continue
        if "fleet" in folders:
            _write(args, "fleet", f"{service.name}.yml", dump(bodies.fleet_rule_file()), counts)
        if "prometheusrule" in folders:
            body = bodies.fleet_prometheus_rule(service.namespace)
            _write(args, "prometheusrule", f"{service.name}-fleet.yaml", dump(body), counts)
    return counts, skipped


def _render_share(index: int) -> Written:
    assert _shared is not None
    shares, args = _shared
    return _render(shares[index], args)


def _render_all(slos: list[ResolvedSlo], args: argparse.Namespace) -> Written:
    """Render in this process, or split by service over ``args.jobs`` forked processes.

    The output does not depend on the split: every file is rendered from its own SLOs only.
    """
    global _shared
    import multiprocessing as mp

    for folder in _folders(args):
        (args.output / folder).mkdir(parents=True, exist_ok=True)
    groups = list(by_service(slos).values())
    jobs = min(args.jobs, len(groups))
    if jobs < 2 or len(slos) < PARALLEL_MIN_SLOS or "fork" not in mp.get_all_start_methods():
        return _render(groups, args)
    from concurrent.futures import ProcessPoolExecutor

    shares = [groups[i::jobs] for i in range(jobs)]
    _shared = (shares, args)
    try:  # a worker that dies raises BrokenProcessPool here instead of leaving us waiting
        with ProcessPoolExecutor(jobs - 1, mp_context=mp.get_context("fork")) as pool:
            pending = [pool.submit(_render_share, index) for index in range(1, jobs)]
            results = [_render(shares[0], args), *(future.result() for future in pending)]
    finally:
        _shared = None
    counts: Counter[str] = Counter()
    skipped: list[str] = []
    for share_counts, share_skipped in results:
        counts += share_counts
        skipped += share_skipped
    return counts, skipped


def _rules(args: argparse.Namespace, slos: list[ResolvedSlo]) -> int:
    out: Path = args.output
    problem = None
    if out.exists() and not out.is_dir():
        problem = f"{out}: -o names a file; give the directory to write the rule files into"
    else:
        try:
            out.mkdir(parents=True, exist_ok=True)
            for folder in _folders(args):
                (out / folder).mkdir(exist_ok=True)
            if not os.access(out, os.W_OK):
                problem = f"{out}: not writable"
        except OSError as err:
            problem = f"{out}: cannot write the rule files there ({err.strerror})"
    if problem is None:
        try:
            counts, skipped = _render_all(slos, args)
        except OSError as err:
            problem = f"{out}: cannot write the rule files there ({err.strerror})"
    if problem is not None:
        print(problem, file=sys.stderr)
        return 1
    skipped.sort()  # the same order however the work was split
    print(
        f"{args.output}: {len(slos)} SLOs -> {counts['rules']} rule files, "
        f"{counts['tests']} promtool test files, {counts['prometheusrule']} PrometheusRules"
        + (f", {counts['fleet']} Thanos Ruler files" if args.placement == "thanos" else "")
    )
    for line in skipped:
        print(f"warning: {line}", file=sys.stderr)
    return 0
