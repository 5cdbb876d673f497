"""The upgrade check: `pulumi up` of the sequential judge over a stack that the program before it
(commit ``BEFORE``) deployed replaces and deletes nothing an operator already runs.

On a cluster of its own (the scenarios' stack owns the same object names): `pulumi up` from the
tree of ``BEFORE`` with that commit's ``Pulumi.e2e.yaml``, Rollouts Healthy; then `pulumi preview`
and `pulumi up` from this tree with this tree's stack file, against the same backend; then a
second preview, which must change nothing. Updates are expected (AnalysisTemplates, Rollouts);
replacements and deletions are not, and neither is a new revision of any Rollout (its pods keep
running, same pod-template hash, same pods). The steps are kept in out/e2e-upgrade.md.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
from collections import Counter
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest

from e2e.harness import (
    ROOT,
    Observation,
    Stack,
    new_stack,
    pulumi_env,
    start_cluster,
    start_controller,
    wait_for,
)

BEFORE = "84bbf00"  # the last commit before delivery/ and the sequential judge
SERVICES = {"orchestrator": "core", "agent-runner": "agents", "api-gateway": "api"}
# Operations that remove or recreate something that exists (OpType values of the engine).
REPLACING = {
    "replace",
    "create-replacement",
    "delete-replaced",
    "delete",
    "discard",
    "discard-replaced",
    "read-replacement",
    "import-replacement",
}


@pytest.fixture(scope="module")
def before_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project as it was at ``BEFORE`` (``git archive``: no worktree left behind)."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", BEFORE],
        capture_output=True,
        check=False,
        timeout=120,
    )
    if archive.returncode != 0:
        pytest.skip(
            f"the tree of commit {BEFORE} cannot be created (git archive: "
            f"{archive.stderr.decode(errors='replace').strip()}); a shallow clone lacks it: "
            f"git fetch --unshallow"
        )
    tree = tmp_path_factory.mktemp("before")
    with tarfile.open(fileobj=BytesIO(archive.stdout)) as tar:
        tar.extractall(tree, filter="data")
    return tree


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = new_stack(tmp_path_factory.mktemp("upgrade"))
    try:
        start_cluster(s, "upgrade")
        start_controller(s)
        yield s
    finally:
        s.close()


def run_tree(cluster: Stack, tree: Path, action: str, workspace: str) -> dict[str, Any]:
    """`pulumi up`/`preview` of ``tree``'s program in its own process (e2e/pulumi_tree.py)."""
    env = {**cluster.env, **pulumi_env(cluster.work / "pulumi")}
    env.pop("PYTHONPATH", None)
    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / "e2e" / "pulumi_tree.py"),
            "--tree",
            str(tree),
            "--work",
            str(cluster.work / "workspaces" / workspace),
            action,
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert out.returncode == 0, (
        f"{action} of {tree} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def running(cluster: Stack) -> dict[str, dict[str, Any]]:
    """Per Rollout: phase, revision hashes and the pods it runs (by uid)."""
    seen = {}
    for service, namespace in SERVICES.items():
        body = json.loads(cluster.kubectl("get", "rollout", service, "-n", namespace, "-o", "json"))
        pods = json.loads(
            cluster.kubectl(
                "get",
                "pods",
                "-n",
                namespace,
                "-l",
                f"app.kubernetes.io/name={service}",
                "-o",
                "json",
            )
        )["items"]
        status = body.get("status", {})
        seen[service] = {
            "phase": status.get("phase"),
            "stableRS": status.get("stableRS"),
            "currentPodHash": status.get("currentPodHash"),
            "pods": sorted(p["metadata"]["uid"] for p in pods),
        }
    return seen


def all_healthy(cluster: Stack) -> Observation:
    now = running(cluster)
    ok = all(
        r["phase"] == "Healthy" and r["stableRS"] == r["currentPodHash"] and len(r["pods"]) == 4
        for r in now.values()
    )
    return Observation(ok, {k: (v["phase"], len(v["pods"])) for k, v in now.items()}, now)


def _table(title: str, result: dict[str, Any]) -> list[str]:
    lines = [
        f"## {title}",
        "",
        f"change summary: `{json.dumps(result['summary'], sort_keys=True)}`",
        "",
    ]
    if result["steps"]:
        lines += [
            "| op | type | name | changed properties | forcing replacement |",
            "|---|---|---|---|---|",
        ]
        for s in result["steps"]:
            lines.append(
                f"| {s['op']} | {s['type']} | {s['name']} | {', '.join(s['diffs'])} | "
                f"{', '.join(s['replace_keys'])} |"
            )
        lines.append("")
    return lines


def test_upgrade_from_before_the_sequential_judge_replaces_nothing(
    cluster: Stack, before_tree: Path
) -> None:
    first = run_tree(cluster, before_tree, "up", "before")
    assert first["summary"].get("create", 0) > 0, first["summary"]
    before = wait_for(
        "the Rollouts of the earlier program to be Healthy", lambda: all_healthy(cluster), 120
    )

    preview = run_tree(cluster, ROOT, "preview", "after")
    up = run_tree(cluster, ROOT, "up", "after")
    again = run_tree(cluster, ROOT, "preview", "after")

    report = [
        "# Upgrade check",
        "",
        f"`pulumi up` from commit {BEFORE} (its Pulumi.e2e.yaml), then this tree on the same "
        "backend.",
        "",
        *_table(f"pulumi up from {BEFORE}", {"summary": first["summary"], "steps": []}),
        *_table("pulumi preview from this tree", preview),
        *_table("pulumi up from this tree", up),
        *_table("pulumi preview again", again),
    ]
    out = ROOT / "out"
    out.mkdir(exist_ok=True)
    (out / "e2e-upgrade.md").write_text("\n".join(report) + "\n")
    print("\n" + "\n".join(report))

    for name, result in (("preview", preview), ("up", up)):
        removed = [s for s in result["steps"] if s["op"] in REPLACING]
        assert not removed, f"{name} replaces or deletes: {removed}"
        assert not set(result["summary"]) & REPLACING, result["summary"]
    ops = Counter(s["op"] for s in up["steps"])
    assert set(ops) <= {"update", "create"}, ops
    assert again["steps"] == [], again["steps"]

    # nothing an operator runs moved: same revisions, same pods, still Healthy
    after = wait_for("the Rollouts to stay Healthy", lambda: all_healthy(cluster), 60)
    lines = ["## Rollouts", "", "| rollout | before | after |", "|---|---|---|"]
    for service in SERVICES:
        b, a = before[service], after[service]
        lines.append(
            f"| {service} | {b['phase']} {b['currentPodHash']}, {len(b['pods'])} pods | "
            f"{a['phase']} {a['currentPodHash']}, {len(a['pods'])} pods"
            f"{' (same pods)' if a['pods'] == b['pods'] else ' (other pods)'} |"
        )
    with (out / "e2e-upgrade.md").open("a") as f:
        f.write("\n".join(["", *lines]) + "\n")
    print("\n".join(lines))
    assert after == before, {"before": before, "after": after}
