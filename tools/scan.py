"""Security scan of the rendered manifests with checkov's Kubernetes policies.

    python tools/scan.py --checkov .venv-scan/bin/checkov [--stack dev --stack prod]

Each stack is rendered offline; Rollouts are scanned as the Deployments they stand in for (same
pod template), since checkov's workload policies do not know the Argo kind. Any failed check
fails the scan, except the accepted findings below, each with its reason.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
ACCEPTED = {
    "CKV_K8S_43": "images are pinned by tag, and promotion between stacks compares tags",
}


# A workload that breaks the rules we care about; the scan must flag each of these first, so a
# silently disabled policy set cannot pass as a clean scan.
BAD_POD = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "bad", "namespace": "selfcheck"},
    "spec": {
        "selector": {"matchLabels": {"app": "bad"}},
        "template": {
            "metadata": {"labels": {"app": "bad"}},
            "spec": {
                "containers": [
                    {
                        "name": "bad",
                        "image": "bad:1",
                        "securityContext": {"privileged": True, "runAsUser": 0},
                    }
                ]
            },
        },
    },
}
MUST_FLAG = {
    "CKV_K8S_16": "privileged container",
    "CKV_K8S_23": "root container",
    "CKV_K8S_11": "no CPU limit",
    "CKV_K8S_13": "no memory limit",
    "CKV_K8S_8": "no liveness probe",
    "CKV_K8S_20": "privilege escalation allowed",
}


def checkov(binary: str, directory: Path) -> dict[str, Any]:
    result = subprocess.run(
        [
            binary,
            "-d",
            str(directory),
            "--framework",
            "kubernetes",
            "--quiet",
            "--skip-download",
            "--skip-check",
            ",".join(ACCEPTED),
            "-o",
            "json",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    report = json.loads(result.stdout)
    if isinstance(report, list):  # one entry per check type
        report = next(r for r in report if r.get("check_type") == "kubernetes")
    return dict(report)


def self_check(binary: str) -> list[str]:
    """The policies that failed to flag the known-bad workload (empty when all did)."""
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "bad.yaml").write_text(yaml.safe_dump(BAD_POD))
        report = checkov(binary, Path(tmp))
    flagged = {c["check_id"] for c in report.get("results", {}).get("failed_checks", [])}
    return [f"{k} ({v})" for k, v in MUST_FLAG.items() if k not in flagged]


def scan_inputs(rendered: Path, target: Path) -> int:
    """Copy the rendered Kubernetes objects, Rollouts as Deployments; returns how many."""
    count = 0
    for path in sorted((rendered / "kubernetes").rglob("*.yaml")):
        body = yaml.safe_load(path.read_text())
        if body["kind"] == "Rollout":
            spec = {k: v for k, v in body["spec"].items() if k != "strategy"}
            body = {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": body["metadata"],
                "spec": spec,
            }
        (target / f"{path.parent.name}-{path.name}").write_text(yaml.safe_dump(body))
        count += 1
    return count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkov", default="checkov")
    parser.add_argument("--stack", action="append", default=[])
    args = parser.parse_args()
    missed = self_check(args.checkov)
    if missed:
        print(f"self-check: the scan did not flag a known-bad pod for: {', '.join(missed)}")
        return 1
    print(f"self-check: a known-bad pod is flagged for {', '.join(MUST_FLAG.values())}")
    failed = 0
    for stack in args.stack or ["dev", "prod"]:
        with tempfile.TemporaryDirectory() as tmp:
            rendered, target = Path(tmp) / "out" / stack, Path(tmp) / "scan"
            target.mkdir()
            subprocess.run(
                [
                    sys.executable,
                    str(ROOT / "tools" / "render.py"),
                    "--stack",
                    stack,
                    "--out",
                    str(rendered),
                ],
                check=True,
                stdout=subprocess.DEVNULL,
            )
            objects = scan_inputs(rendered, target)
            report = checkov(args.checkov, target)
            failures = report.get("results", {}).get("failed_checks", [])
            summary = report["summary"]
            print(
                f"{stack}: {objects} objects, {summary['passed']} checks passed, "
                f"{len(failures)} failed, {summary['parsing_errors']} unparsable; "
                f"accepted: {', '.join(f'{k} ({v})' for k, v in ACCEPTED.items())}"
            )
            failed += summary["parsing_errors"]
            for check in failures:
                print(f"  FAILED {check['check_id']} {check['check_name']}: {check['resource']}")
            failed += len(failures)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
