"""Benchmark: the whole Pulumi program under the mock runtime for 10, 50 and 200 services.

Prints, per size, the median wall time and peak memory of a fresh process that validates the
stack, renders every resource and registers it with the mock engine, and the growth ratios
(time and memory per service should stay flat: linear growth).

    python bench/program_bench.py [--runs 3] [--sizes 10 50 200]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def write_inputs(services: int, directory: Path) -> Path:
    """A catalogue of ``services`` services (3 SLOs each) and a stack file deploying them all."""
    base = yaml.safe_load((ROOT / "catalogue" / "core-services.yaml").read_text())
    template = base["services"][0]
    catalogue = {"defaults": base["defaults"], "services": []}
    deployments = {}
    for i in range(services):
        name = f"svc-{i:04d}"
        catalogue["services"].append(
            {**template, "name": name, "namespace": f"team-{i % 7}", "selector": f'job="{name}"'}
        )
        deployments[name] = {"image": f"registry.example/{name}:1.0.{i}", "replicas": 2}
    (directory / "catalogue.yaml").write_text(yaml.safe_dump(catalogue))
    stack = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())
    stack["config"]["slo-canary:catalogue"] = str(directory / "catalogue.yaml")
    stack["config"]["slo-canary:services"] = deployments
    path = directory / "Pulumi.bench.yaml"
    path.write_text(yaml.safe_dump(stack))
    return path


def child(services: int) -> None:
    from tools import render

    with tempfile.TemporaryDirectory() as tmp:
        stack_file = write_inputs(services, Path(tmp))
        start = time.perf_counter()
        resources, _ = render.run(stack_file)
        seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "peak_mb": peak_mb, "resources": len(resources)}))


def measure(services: int, runs: int) -> dict[str, float]:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        out = subprocess.run(
            [sys.executable, __file__, "--child", str(services)],
            capture_output=True, text=True, check=True,
        )
        sample = json.loads(out.stdout.strip().splitlines()[-1])
        sample["process_seconds"] = time.perf_counter() - started
        samples.append(sample)
    return {key: statistics.median(s[key] for s in samples) for key in samples[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 50, 200])
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    print(f"program under mocks, median of {args.runs} runs per size")
    print(f"{'services':>8} {'resources':>9} {'program s':>9} {'process s':>9} {'peak MB':>8}"
          f" {'ms/service':>10} {'time growth':>11} {'mem growth':>10}")
    previous = None
    for size in args.sizes:
        m = measure(size, args.runs)
        growth = mem = ""
        if previous:
            factor = size / previous[0]
            growth = f"{m['seconds'] / previous[1]['seconds']:.2f} (x{factor:g})"
            mem = f"{m['peak_mb'] / previous[1]['peak_mb']:.2f}"
        print(f"{size:>8} {m['resources']:>9.0f} {m['seconds']:>9.2f} {m['process_seconds']:>9.2f}"
              f" {m['peak_mb']:>8.0f} {1000 * m['seconds'] / size:>10.1f} {growth:>11} {mem:>10}")
        previous = (size, m)


if __name__ == "__main__":
    main()
