"""The long fuzz run of the input boundary: N seeded mutants of the shipped catalogue and stack
files (tools/fuzz_inputs.py), in worker subprocesses so that a signal would be counted, not fatal.

    python bench/fuzz_inputs.py --cases 100000      # prints the counts; exit 1 unless all are 0

Counted: tracebacks (any exception other than the boundary's one refusal), broken promises
(a refusal line that does not name the file, files written on failure, an accepted catalogue
whose rule files ``promtool check rules`` refuses: promtool must be on the PATH), signals, cases
over 5 s (the slowest is printed; promtool's own time is not counted in it). Accepted and
refused mutants are counted too, with the most common first words of the refusals, so that a
run that refuses everything for one reason is visible.
"""

from __future__ import annotations

import argparse
import collections
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SLOW_SECONDS = 5.0

WORKER = r"""
import collections, json, sys, traceback
sys.path.insert(0, sys.argv[3])
from tools import fuzz_inputs as fuzz
first, last, SLOW = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[4])
workdir = fuzz.fresh_workdir()
counts = collections.Counter()
reasons = collections.Counter()
problems = []
slowest = 0.0
for seed in range(first, last):
    try:
        outcome = fuzz.run_case(seed, workdir)
    except fuzz.BoundaryBroken as err:
        counts["broken"] += 1
        problems.append(f"seed {seed}: {err}")
        continue
    except BaseException as err:  # noqa: BLE001 - what the run is looking for
        counts["traceback"] += 1
        problems.append(f"seed {seed}: {type(err).__name__}: {err}"[:300]
                        + " | " + traceback.format_exc().splitlines()[-3].strip())
        continue
    slowest = max(slowest, outcome.seconds)
    if outcome.seconds > SLOW:
        counts["slow"] += 1
        problems.append(f"seed {seed}: {outcome.seconds:.1f} s")
    counts["accepted" if outcome.accepted else "refused"] += 1
    counts["promtool passed"] += outcome.promtool_checked
    if not outcome.accepted:
        words = outcome.lines[0].split(": ", 1)[-1].split(":")[0].split(" ")[:3]
        reasons[" ".join(words)] += 1
print(json.dumps({"counts": counts, "reasons": reasons, "problems": problems[:20],
                  "slowest": slowest}))
"""


def run_chunk(first: int, last: int) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", WORKER, str(first), str(last), str(ROOT), str(SLOW_SECONDS)],
        capture_output=True, text=True, check=False,
    )
    if done.returncode < 0:
        return {"signal": -done.returncode, "chunk": (first, last)}
    if done.returncode != 0 or not done.stdout.strip():
        return {"crash": done.stderr[-2000:], "chunk": (first, last)}
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=20261202)
    parser.add_argument("--chunk", type=int, default=1000)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args(argv)
    chunks = [(args.seed + i, args.seed + min(i + args.chunk, args.cases))
              for i in range(0, args.cases, args.chunk)]
    started = time.perf_counter()
    counts: collections.Counter[str] = collections.Counter()
    reasons: collections.Counter[str] = collections.Counter()
    problems: list[str] = []
    slowest = 0.0
    with ThreadPoolExecutor(args.jobs) as pool:
        for result in pool.map(lambda c: run_chunk(*c), chunks):
            if "signal" in result:
                counts["signal"] += 1
                problems.append(f"signal {result['signal']} in seeds {result['chunk']}")
                continue
            if "crash" in result:
                counts["worker crash"] += 1
                problems.append(f"worker crash in seeds {result['chunk']}: {result['crash']}")
                continue
            counts.update(result["counts"])
            reasons.update(result["reasons"])
            problems += result["problems"]
            slowest = max(slowest, float(result["slowest"]))
    elapsed = time.perf_counter() - started
    total = counts["accepted"] + counts["refused"] + counts["broken"] + counts["traceback"]
    seeds = f"seeds {args.seed}..{args.seed + args.cases - 1}"
    print(f"input boundary fuzz: {args.cases} cases ({seeds}), {elapsed:.0f} s, {args.jobs} jobs")
    print(f"  accepted {counts['accepted']}, refused {counts['refused']} (checked {total}); "
          f"accepted catalogues whose rule files promtool passed: {counts['promtool passed']}")
    for name in ("traceback", "broken", "signal", "worker crash", "slow"):
        print(f"  {name:13s} {counts[name]}")
    print(f"  slowest case  {slowest:.2f} s (limit {SLOW_SECONDS:.0f} s)")
    print("  most common refusals: " + "; ".join(f"{r!r} {n}" for r, n in reasons.most_common(8)))
    for line in problems[:20]:
        print(f"  PROBLEM {line}")
    bad = sum(counts[n] for n in ("traceback", "broken", "signal", "worker crash", "slow"))
    return 0 if bad == 0 and total == args.cases else 1


if __name__ == "__main__":
    sys.exit(main())
