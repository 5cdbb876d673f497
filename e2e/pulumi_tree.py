"""`pulumi up` or `pulumi preview` of the e2e stack from one source tree, in its own process.

The upgrade check (e2e/test_upgrade.py) runs the program as it was at an earlier commit and then
as it is now, against one backend. Each tree's ``slo`` and ``delivery`` packages must be the only
ones imported, so each run is a process of its own:

    python e2e/pulumi_tree.py --tree DIR --work DIR [--prometheus URL] {up,preview}

The Pulumi environment (PULUMI_BACKEND_URL, PULUMI_HOME, PULUMI_CONFIG_PASSPHRASE, KUBECONFIG,
PATH) comes from the caller. The stack config is the tree's own ``Pulumi.e2e.yaml`` (another
Prometheus address with ``--prometheus``), as an operator would upgrade: code and stack file of
the same commit. The last line of stdout is JSON: the change summary and every step other than
``same`` (operation, type, name, the properties that differ and those that force a replacement).
"""

from __future__ import annotations

import argparse
import json
import os
import runpy
import sys
from pathlib import Path
from typing import Any

import yaml

STACK = "e2e"
PROJECT = "slo-canary"


def stack_config(tree: Path, prometheus: str | None) -> dict[str, str]:
    """The tree's stack file, every namespace (``kubernetes:`` provider settings too)."""
    config = dict(yaml.safe_load((tree / f"Pulumi.{STACK}.yaml").read_text())["config"])
    if prometheus:
        config[f"{PROJECT}:prometheus"]["address"] = prometheus
    return {
        key: value if isinstance(value, str) else json.dumps(value) for key, value in config.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", type=Path, required=True, help="project root to run")
    parser.add_argument("--work", type=Path, required=True, help="workspace directory")
    parser.add_argument("--prometheus", help="Prometheus address (default: the stack file's)")
    parser.add_argument("action", choices=("up", "preview"))
    args = parser.parse_args()
    tree = args.tree.resolve()
    sys.path[0] = str(tree)  # the tree's packages (in place of this script's directory)
    os.chdir(tree)

    from pulumi import automation as auto

    def program() -> None:
        runpy.run_path(str(tree / "__main__.py"), run_name="__main__")

    args.work.mkdir(parents=True, exist_ok=True)
    stack = auto.create_or_select_stack(
        stack_name=STACK,
        project_name=PROJECT,
        program=program,
        opts=auto.LocalWorkspaceOptions(
            work_dir=str(args.work),
            project_settings=auto.ProjectSettings(name=PROJECT, runtime="python"),
        ),
    )
    stack.set_all_config(
        {k: auto.ConfigValue(value=v) for k, v in stack_config(tree, args.prometheus).items()}
    )
    steps: list[dict[str, Any]] = []

    def on_event(event: auto.EngineEvent) -> None:
        pre = event.resource_pre_event
        if pre is None or pre.metadata.op == auto.OpType.SAME:
            return
        meta = pre.metadata
        steps.append(
            {
                "op": meta.op.value,
                "type": meta.type,
                "name": meta.urn.rsplit("::", 1)[-1],
                "diffs": sorted(meta.detailed_diff or {}) or sorted(meta.diffs or []),
                "replace_keys": sorted(meta.keys or []),
            }
        )

    if args.action == "preview":
        preview = stack.preview(on_event=on_event, color="never", on_output=lambda line: None)
        summary = {str(getattr(k, "value", k)): v for k, v in preview.change_summary.items()}
    else:
        up = stack.up(on_event=on_event, color="never", on_output=lambda line: None)
        summary = {str(getattr(k, "value", k)): v
                   for k, v in (up.summary.resource_changes or {}).items()}
    print(json.dumps({"summary": summary, "steps": steps}, sort_keys=True))


if __name__ == "__main__":
    main()
