"""Rule generation: `python -m slo rules` against Sloth v0.16.0 on the same synthetic SLOs.

    python bench/rules_bench.py          # N = 10, 100, 1000, 5000; 3 runs; + proofs, profile
    python bench/rules_bench.py --quick  # N = 10, 100, 1000; 1 run each (smoke)

For every N, bench/synth.py writes our catalogue and the equivalent Sloth prometheus/v1 specs
(one file per service). Each generator runs as a fresh process, so interpreter / runtime start is
included: ``<this python> -m slo rules CATALOGUE -o DIR --no-tests`` and
``sloth generate -i SPEC_DIR -o DIR``. Wall time is measured around the child; peak memory is the
child's maximum resident set size from wait4() (the same figure as /usr/bin/time -v). The median
of the runs is reported. The interpreter is this script's own (sys.executable), not a shell shim
such as pyenv's, which would add its own start-up to every run.

Also reported: rules per SLO (record and alert) in the generated files, and, separately, the full
`python -m slo rules` WITH the promtool proofs for N = 10 and 100 (the per-SLO cost of proof
generation), and a cProfile of `python -m slo rules --no-tests` at N = 1000.

The report is printed and, on a full run (no option but ``--on-disk``), written to
bench/results/rules_bench.txt.
"""

from __future__ import annotations

import argparse
import io
import itertools
import os
import platform
import pstats
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))

from bench import synth  # noqa: E402

RESULTS = BENCH / "results"
ArgvFor = Callable[[Path], list[str]]  # a command's argv, given its output directory


@dataclass(frozen=True)
class Run:
    seconds: float  # wall
    peak_mb: float
    cpu: float  # user + system CPU seconds of the child


def run_measured(argv: list[str], cwd: Path) -> Run:
    """Run ``argv`` to completion; wall time and the child's peak RSS (ru_maxrss, KiB)."""
    with tempfile.TemporaryFile(mode="w+") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=err)
        # reap the child ourselves: wait4 returns its resource usage, including peak RSS
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            err.seek(0)
            tail = err.read()[-3000:]
            raise RuntimeError(f"{' '.join(argv)} failed ({proc.returncode}):\n{tail}")
    return Run(elapsed, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime)


def median_run(runs: list[Run]) -> Run:
    return Run(
        statistics.median(r.seconds for r in runs),
        statistics.median(r.peak_mb for r in runs),
        statistics.median(r.cpu for r in runs),
    )


def build_sloth() -> Path:
    out = subprocess.run(
        [str(BENCH / "peers" / "build_sloth.sh")], check=True, stdout=subprocess.PIPE, text=True
    ).stdout
    return Path(out.strip().splitlines()[-1])


def ours_argv(catalogue: Path, out: Path, tests: bool, fmt: str | None = None) -> list[str]:
    argv = [sys.executable, "-m", "slo", "rules", str(catalogue), "-o", str(out)]
    if fmt:
        argv += ["--format", fmt]
    return argv if tests else [*argv, "--no-tests"]


def ours(catalogue: Path, tests: bool, fmt: str | None = None) -> ArgvFor:
    return lambda out: ours_argv(catalogue, out, tests, fmt)


def has_format_option() -> bool:
    """Whether this version of `python -m slo rules` has --format (rules|prometheusrule|both)."""
    help_text = subprocess.run([sys.executable, "-m", "slo", "rules", "--help"], cwd=ROOT,
                               capture_output=True, text=True).stdout
    return "--format" in help_text


def sloth_argv(sloth: Path, specs: Path, out: Path) -> list[str]:
    return [str(sloth), "generate", "-i", str(specs), "-o", str(out)]


def fresh(path: Path) -> Path:
    """An empty ``path``; the previous run's files are deleted and synced to disk first, so
    that freeing them is not charged to the next measured run (of either generator)."""
    shutil.rmtree(path, ignore_errors=True)
    os.sync()
    path.mkdir(parents=True)
    return path


def measure(argv_for: ArgvFor, runs: int, out_dir: Path) -> tuple[Run, list[Run]]:
    results = []
    for _ in range(runs):
        fresh(out_dir)
        results.append(run_measured(argv_for(out_dir), ROOT))
    return median_run(results), results


Commands = dict[str, tuple[ArgvFor, Path]]  # name -> (argv for an output dir, output dir)


def measure_interleaved(commands: Commands, runs: int) -> dict[str, list[Run]]:
    """Run each command once per round, in turn, ``runs`` rounds: drifts in the machine's speed
    (other load, the disk) then touch every command alike instead of whichever ran last."""
    results: dict[str, list[Run]] = {name: [] for name in commands}
    for _ in range(runs):
        for name, (argv_for, out_dir) in commands.items():
            fresh(out_dir)
            results[name].append(run_measured(argv_for(out_dir), ROOT))
    return results


def output_root(tmp: Path, on_disk: bool) -> tuple[Path, str]:
    """Where the generators write: a tmpfs when there is one (unless ``on_disk``).

    On disk, creating a thousand small files costs a system time that swings from 0.1 to 0.8 s
    between identical runs on the machines this was developed on; RAM-backed output measures
    generation itself. ``--on-disk`` measures with the disk instead.
    """
    shm = Path("/dev/shm")
    if not on_disk and shm.is_dir() and os.access(shm, os.W_OK):
        return Path(tempfile.mkdtemp(prefix="slo-rules-bench-", dir=shm)), "tmpfs (/dev/shm)"
    return tmp, f"disk ({tmp})"


@dataclass
class Row:
    n: int
    ours: Run
    sloth: Run
    ours_counts: dict[str, int]
    sloth_counts: dict[str, int]
    ours_rules_only: Run | None = None  # --format rules: plain rule files only, as Sloth writes


def profile_ours(catalogue: Path, out: Path, top: int = 20) -> str:
    """cProfile of the whole ``python -m slo rules --no-tests`` process (imports included)."""
    fresh(out)
    prof = out / "rules.prof"
    argv = [sys.executable, "-m", "cProfile", "-o", str(prof), "-m", "slo", "rules",
            str(catalogue), "-o", str(out / "gen"), "--no-tests", "-j", "1"]
    run = run_measured(argv, ROOT)
    text = io.StringIO()
    stats = pstats.Stats(str(prof), stream=text)
    total = stats.total_tt  # type: ignore[attr-defined]
    stats.strip_dirs()
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)
    lines = [ln for ln in text.getvalue().splitlines()
             if ln.strip() and not ln.lstrip().startswith(("Ordered by", "List reduced"))
             and "rules.prof" not in ln]
    return (f"profiled process: {run.seconds:.2f} s wall (profiler overhead included), "
            f"{total:.2f} s profiled CPU; sorted by tottime, then by cumulative\n"
            + "\n".join(lines))


PHASES = r"""
import json, sys, time
t0 = time.perf_counter()
from slo.loader import load_catalogue
from slo.model import resolve_all
from slo.rules import by_service, prometheus_rule, rule_file
from slo import yamlout
t1 = time.perf_counter()
cat = load_catalogue(sys.argv[1]); t2 = time.perf_counter()
slos = resolve_all(cat); t3 = time.perf_counter()
files = [rule_file([s]) for s in slos]
bodies = [prometheus_rule(n, g[0].service.namespace, g) for n, g in by_service(slos).items()]
t4 = time.perf_counter()
for d in files:
    yamlout.dump(d)
t5 = time.perf_counter()
for d in bodies:
    yamlout.dump(d)
t6 = time.perf_counter()
for d in files + bodies:
    json.dumps(d, sort_keys=True)
t7 = time.perf_counter()
def row(label, seconds, note=""):
    print(f"  {label:<44}{seconds:7.2f} s   {note}".rstrip())
print("  (one process; `python -m slo rules` splits build and dump over its -j processes)")
row("import slo modules", t1 - t0)
row("load + validate catalogue", t2 - t1)
row("resolve SLOs", t3 - t2)
row("build rule dicts", t4 - t3)
row(f"YAML dump, {len(files)} rule files", t5 - t4)
row(f"YAML dump, {len(bodies)} PrometheusRule bodies", t6 - t5, "(the same groups again)")
row("what-if: json.dumps of all those documents", t7 - t6, "(C encoder, no indentation)")
"""


def phase_breakdown(catalogue: Path) -> str:
    """Where the in-process time of the rules command goes (reads slo internals; best effort)."""
    proc = subprocess.run([sys.executable, "-c", PHASES, str(catalogue)], cwd=ROOT, text=True,
                          capture_output=True)
    if proc.returncode != 0:
        return "  phase breakdown unavailable: " + (proc.stderr.strip().splitlines() or ["?"])[-1]
    return proc.stdout.rstrip()


def fmt_ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if b else "-"


def ratios(ours: Run, sloth: Run) -> str:
    """The 'time ours/Sloth', 'CPU o/S' and 'mem o/S' columns."""
    return (f"{fmt_ratio(ours.seconds, sloth.seconds):>15} {fmt_ratio(ours.cpu, sloth.cpu):>7} "
            f"{fmt_ratio(ours.peak_mb, sloth.peak_mb):>7}")


def report(rows: list[Row], proofs: list[tuple[int, Run, Run]], runs: int, sloth: Path,
           profile: str | None, load: tuple[float, float], where: str) -> str:
    """The printed report: the header, the timings, the rules-only timings (when measured), the
    growth, the rules per SLO, the proofs' cost and the profile (when run)."""
    out = _header(runs, sloth, load, where)
    out += _timings(rows)
    if any(r.ours_rules_only for r in rows):
        out += _rules_only_timings(rows)
    out += _growth(rows)
    out += _rules_per_slo(rows)
    if proofs:
        out += _proofs_cost(proofs)
    if profile:
        out += ["", "cProfile of python -m slo rules --no-tests -j 1, N=1000 (top functions):",
                profile]
    return "\n".join(out) + "\n"


def _table(header: str, lines: list[str]) -> list[str]:
    """A table's header, its rule and its lines."""
    return [header, "-" * len(header), *lines]


def _header(runs: int, sloth: Path, load: tuple[float, float], where: str) -> list[str]:
    """What was measured, how, on which machine and at which commit of slo/."""
    rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True,
                         capture_output=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "slo"], cwd=ROOT, text=True,
                           capture_output=True).stdout.strip()
    sloth_version = subprocess.run([str(sloth), "version"], text=True, capture_output=True)
    return [
        "Rule generation benchmark: python -m slo rules vs Sloth generate",
        f"machine: {os.cpu_count()} cores, {platform.platform()}, "
        f"{platform.python_implementation()} {platform.python_version()}; "
        f"sloth {sloth_version.stdout.strip()} ({sloth})",
        f"slo/ at {rev}{' + uncommitted changes' if dirty else ''}; "
        f"{runs} run(s) per point, median; wall time and peak RSS of the whole process "
        "(interpreter/runtime start included)",
        f"load average (1 min) at start / end: {load[0]:.2f} / {load[1]:.2f} -- other processes "
        "on the machine share its cores; CPU s (user + system of the child) is less sensitive to "
        "that than wall time",
        f"generated files written to {where}; each round runs every command once, in turn",
        "ours:  python -m slo rules CATALOGUE -o DIR --no-tests",
        "sloth: sloth generate -i SPEC_DIR -o DIR   (one prometheus/v1 file per service)",
        "",
    ]


def _timings(rows: list[Row]) -> list[str]:
    """Ours and Sloth's wall time, CPU and peak memory per N, and their ratios."""
    return _table(
        f"{'N SLOs':>7} | {'ours s':>7} {'CPU s':>7} {'MB':>6} | {'Sloth s':>7} "
        f"{'CPU s':>7} {'MB':>6} | {'time ours/Sloth':>15} {'CPU o/S':>7} {'mem o/S':>7}",
        [f"{r.n:>7} | {r.ours.seconds:>7.3f} {r.ours.cpu:>7.3f} {r.ours.peak_mb:>6.1f} | "
         f"{r.sloth.seconds:>7.3f} {r.sloth.cpu:>7.3f} {r.sloth.peak_mb:>6.1f} | "
         f"{ratios(r.ours, r.sloth)}" for r in rows])


def _rules_only_timings(rows: list[Row]) -> list[str]:
    """Ours with --format rules per N (where measured), against Sloth."""
    return ["",
            "ours with --format rules (plain rule files only -- the output Sloth writes; the "
            "default above also writes the PrometheusRule bodies):",
            *_table(f"{'N SLOs':>7} | {'ours s':>7} {'CPU s':>7} {'MB':>6} | "
                    f"{'time ours/Sloth':>15} {'CPU o/S':>7} {'mem o/S':>7}",
                    [f"{r.n:>7} | {o.seconds:>7.3f} {o.cpu:>7.3f} {o.peak_mb:>6.1f} | "
                     f"{ratios(o, r.sloth)}"
                     for r in rows if (o := r.ours_rules_only) is not None])]


def _growth(rows: list[Row]) -> list[str]:
    """From each N to the next: the time ratios and the marginal time per extra SLO."""
    lines = []
    for prev, cur in itertools.pairwise(rows):
        dn = cur.n - prev.n
        lines.append(
            f"{prev.n:>5} -> {cur.n:<5} | {cur.n / prev.n:>7.0f} | "
            f"{cur.ours.seconds / prev.ours.seconds:>6.2f} {cur.ours.cpu / prev.ours.cpu:>6.2f} "
            f"{1000 * (cur.ours.seconds - prev.ours.seconds) / dn:>7.2f} | "
            f"{cur.sloth.seconds / prev.sloth.seconds:>7.2f} "
            f"{cur.sloth.cpu / prev.sloth.cpu:>6.2f} "
            f"{1000 * (cur.sloth.seconds - prev.sloth.seconds) / dn:>7.2f}")
    return ["",
            "Growth: time(N) / time(previous N), wall and CPU, and the marginal wall time per "
            "extra SLO ((t(N) - t(prev)) / (N - prev)); linear generation shows a constant "
            "marginal cost and a growth close to the N ratio once process start no longer "
            "dominates:",
            *_table(f"{'N':>13} | {'N ratio':>7} | {'ours x':>6} {'CPU x':>6} {'ms/SLO':>7} | "
                    f"{'Sloth x':>7} {'CPU x':>6} {'ms/SLO':>7}", lines)]


def _rules_per_slo(rows: list[Row]) -> list[str]:
    """Record rules, alerts and groups per SLO in both generators' files."""
    lines = []
    for r in rows:
        mine, theirs = r.ours_counts, r.sloth_counts
        lines.append(
            f"{r.n:>7} | {mine['record'] / r.n:>8.2f} {mine['alert'] / r.n:>10.2f} "
            f"{mine['groups'] / r.n:>11.2f} | {theirs['record'] / r.n:>9.2f} "
            f"{theirs['alert'] / r.n:>11.2f} {theirs['groups'] / r.n:>12.2f}")
    return ["",
            "Rules per SLO in the generated rule files (each record rule aggregates to one series "
            "per SLO, so record rules = recorded series per SLO):",
            *_table(f"{'N':>7} | {'ours rec':>8} {'ours alert':>10} {'ours groups':>11} | "
                    f"{'sloth rec':>9} {'sloth alert':>11} {'sloth groups':>12}", lines)]


def _proofs_cost(proofs: list[tuple[int, Run, Run]]) -> list[str]:
    """The full command, promtool proofs included, against --no-tests, per N."""
    lines = [f"{n:>5} | {with_tests.seconds:>13.2f} {with_tests.cpu:>7.2f} "
             f"{with_tests.peak_mb:>7.1f} | "
             f"{without.seconds:>12.3f} | {(with_tests.seconds - without.seconds) / n:>20.3f}"
             for n, with_tests, without in proofs]
    return ["",
            "WITH promtool proofs (python -m slo rules CATALOGUE -o DIR, no --no-tests) -- "
            "separate from the table above:",
            *_table(f"{'N':>5} | {'with proofs s':>13} {'CPU s':>7} {'MB':>7} | "
                    f"{'--no-tests s':>12} | {'proof cost per SLO s':>20}", lines)]


def main() -> int:
    args = _arguments()
    sizes = args.sizes or ([10, 100, 1000] if args.quick else [10, 100, 1000, 5000])
    runs = args.runs or (1 if args.quick else 3)

    def terminate(signum: int, frame: object) -> None:
        raise SystemExit(f"stopped by signal {signum}")

    signal.signal(signal.SIGTERM, terminate)
    sloth = build_sloth()
    load_start = os.getloadavg()[0]
    rules_only = has_format_option()
    rows: list[Row] = []
    proofs: list[tuple[int, Run, Run]] = []
    profile = None
    with tempfile.TemporaryDirectory(prefix="slo-rules-bench-") as tmp_name:
        tmp = Path(tmp_name)
        out_root, where = output_root(tmp, args.on_disk)
        try:
            for n in sizes:
                catalogue, specs = synth.write_both(n, tmp / f"in-{n}")
                rows.append(_measure_size(n, catalogue, specs, sloth, out_root, runs, rules_only))
                if n in (10, 100) and not args.no_proofs:
                    print(f"N={n}: ours with proofs ...", file=sys.stderr, flush=True)
                    with_tests, _ = measure(ours(catalogue, True), runs, out_root / f"proofs-{n}")
                    proofs.append((n, with_tests, rows[-1].ours))
                if n == 1000 and not args.no_profile:
                    print("N=1000: cProfile ...", file=sys.stderr, flush=True)
                    profile = (
                        "phase breakdown (separate process, no profiler):\n"
                        + phase_breakdown(catalogue) + "\n"
                        + profile_ours(catalogue, tmp / "profile-out")
                    )
                for d in (out_root / f"ours-{n}", out_root / f"sloth-{n}", out_root / f"r-{n}",
                          out_root / f"proofs-{n}"):
                    shutil.rmtree(d, ignore_errors=True)
        finally:
            if out_root != tmp:
                shutil.rmtree(out_root, ignore_errors=True)
    text = report(rows, proofs, runs, sloth, profile, (load_start, os.getloadavg()[0]), where)
    print(text)
    if not (args.quick or args.sizes or args.runs or args.no_proofs or args.no_profile):
        RESULTS.mkdir(exist_ok=True)  # a full run's report only: a smoke run keeps it
        (RESULTS / "rules_bench.txt").write_text(text)
    return 0


def _arguments() -> argparse.Namespace:
    """The command line's options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="N up to 1000, 1 run (smoke)")
    parser.add_argument("--runs", type=int, help="runs per point (default 3, 1 with --quick)")
    parser.add_argument("--sizes", type=int, nargs="+", help="override the N values")
    parser.add_argument("--no-proofs", action="store_true", help="skip the WITH-proofs runs")
    parser.add_argument("--no-profile", action="store_true", help="skip the cProfile run")
    parser.add_argument("--on-disk", action="store_true",
                        help="write the generated files to disk, not to /dev/shm")
    return parser.parse_args()


def _measure_size(n: int, catalogue: Path, specs: Path, sloth: Path, out_root: Path, runs: int,
                  rules_only: bool) -> Row:
    """Ours, Sloth and (with ``rules_only``) ours with --format rules on N SLOs, in turn, and
    the rules each generator wrote (its files are left in ``out_root`` for the caller)."""
    ours_out, sloth_out = out_root / f"ours-{n}", out_root / f"sloth-{n}"
    commands: Commands = {
        "ours": (ours(catalogue, False), ours_out),
        "sloth": (partial(sloth_argv, sloth, specs), sloth_out),
    }
    if rules_only:
        commands["rules"] = (ours(catalogue, False, "rules"), out_root / f"r-{n}")
    print(f"N={n}: {', '.join(commands)} in turn, {runs} round(s) ...", file=sys.stderr,
          flush=True)
    measured = measure_interleaved(commands, runs)
    seconds = {k: [round(r.seconds, 3) for r in v] for k, v in measured.items()}
    print(f"N={n}: {seconds} s", file=sys.stderr, flush=True)
    row = Row(
        n,
        median_run(measured["ours"]),
        median_run(measured["sloth"]),
        synth.count_rules(sorted((ours_out / "rules").glob("*.yml"))),
        synth.count_rules(sorted(sloth_out.rglob("*.yml"))),
    )
    if rules_only:
        row.ours_rules_only = median_run(measured["rules"])
    return row


if __name__ == "__main__":
    raise SystemExit(main())
