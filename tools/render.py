"""Render a stack offline: run the Pulumi program under Pulumi's mock runtime and write every
resource's inputs to ``out/<stack>/``. No cluster, no Pulumi CLI, no backend.

    python tools/render.py --stack dev [--out out/dev]

Secrets in the stack file are never decrypted: the program gets a stand-in value
(``$SLO_CANARY_RENDER_SECRET``, or a fixed one), and inputs the Grafana provider marks as
credentials render as ``[secret]``. A stand-in found in a rendered file is a leak.
"""

from __future__ import annotations

import argparse
import json
import os
import runpy
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pulumi
from pulumi.runtime.rpc import is_rpc_secret

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from delivery.stack import PROJECT, read_stack_file  # noqa: E402
from slo.problems import ConfigError  # noqa: E402
from slo.yamlout import dump  # noqa: E402

SECRET = "[secret]"
STAND_IN = os.environ.get("SLO_CANARY_RENDER_SECRET", "render-stand-in-secret-7d1f0c")
SECRET_INPUTS = {"auth", "token", "password"}


def _integers(value: Any) -> Any:
    """Whole floats back to ints: the engine's wire format carries every number as a double;
    a value the program made a Pulumi secret (anywhere in an input) as ``[secret]``."""
    if is_rpc_secret(value):
        return SECRET
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _integers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_integers(v) for v in value]
    return value


class RecordingMocks(pulumi.runtime.Mocks):
    """Records every resource; answers stack references from rendered ``outputs.json`` files."""

    def __init__(
        self, outputs_root: Path | None = None, upstream: dict[str, dict[str, Any]] | None = None
    ) -> None:
        self.resources: list[tuple[str, str, dict[str, Any]]] = []
        self.outputs_root = outputs_root
        self.upstream = upstream or {}

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        if args.typ == "pulumi:pulumi:StackReference":
            name = args.inputs["name"]
            return name, {"name": name, "outputs": self.stack_outputs(name)}
        inputs = {
            k: (SECRET if k in SECRET_INPUTS else _integers(v)) for k, v in args.inputs.items()
        }
        self.resources.append((args.typ, args.name, inputs))
        return f"{args.name}-id", dict(args.inputs)

    def stack_outputs(self, qualified: str) -> dict[str, Any]:
        """Outputs of another stack: rendered next to this one, or rendered by ``main`` into a
        temporary directory before this program ran (``upstream``)."""
        stack = qualified.rsplit("/", 1)[-1]
        if stack in self.upstream:
            return self.upstream[stack]
        root = self.outputs_root or ROOT / "out"
        return dict(json.loads((root / stack / "outputs.json").read_text()))

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], None]:
        return {}, None


def stack_file(stack: str) -> Path:
    return ROOT / f"Pulumi.{stack}.yaml"


def stack_config(path: Path) -> tuple[dict[str, str], list[str]]:
    """Config values as the Pulumi engine hands them to a program, and the secret keys."""
    config = read_stack_file(path)
    values, secrets = {}, []
    for key, value in config.items():
        full = key if ":" in key else f"{PROJECT}:{key}"
        if isinstance(value, dict) and set(value) == {"secure"}:
            # the notifiers' secrets are a JSON object of key to value
            values[full] = (json.dumps({"stand-in": STAND_IN})
                            if full == f"{PROJECT}:notificationSecrets" else STAND_IN)
            secrets.append(full)
        else:
            values[full] = value if isinstance(value, str) else json.dumps(value)
    if f"{PROJECT}:grafanaToken" not in values:  # offline render has no token: use a stand-in
        values[f"{PROJECT}:grafanaToken"] = STAND_IN
        secrets.append(f"{PROJECT}:grafanaToken")
    return values, secrets


def stack_name(path: Path) -> str:
    return path.name.removeprefix("Pulumi.").removesuffix(".yaml")


def run(
    path: Path, outputs_root: Path | None = None, upstream: dict[str, dict[str, Any]] | None = None
) -> tuple[list[tuple[str, str, dict[str, Any]]], dict[str, Any]]:
    """Run the program for the stack file at ``path``; RunError when its config is refused."""
    stack = stack_name(path)
    values, secrets = stack_config(path)
    mocks = RecordingMocks(outputs_root, upstream)
    # a preview: what `pulumi preview` would send, and nothing waits on a live cluster
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=stack, preview=True)
    pulumi.runtime.set_all_config(values, secrets)
    exports: dict[str, Any] = {}
    real_export = pulumi.export

    def export(name: str, value: Any) -> None:
        exports[name] = value
        real_export(name, value)

    @pulumi.runtime.test  # type: ignore[untyped-decorator]
    def program() -> pulumi.Output[Any]:
        pulumi.export = export
        try:
            runpy.run_path(str(ROOT / "__main__.py"), run_name="__main__")
        finally:
            pulumi.export = real_export
        return pulumi.Output.from_input(exports)

    program()
    resolved: dict[str, Any] = {}

    @pulumi.runtime.test  # type: ignore[untyped-decorator]
    def collect() -> pulumi.Output[Any]:
        return pulumi.Output.from_input(exports).apply(resolved.update)

    collect()
    return [r for r in mocks.resources if r[0] != "pulumi:pulumi:StackReference"], resolved


def files(
    resources: list[tuple[str, str, dict[str, Any]]], exports: dict[str, Any]
) -> dict[str, str]:
    out: dict[str, str] = {"outputs.json": json.dumps(exports, indent=2, sort_keys=True) + "\n"}
    for typ, name, inputs in resources:
        if typ.startswith("kubernetes:") and "kind" in inputs and "apiVersion" in inputs:
            body = {
                k: v
                for k, v in inputs.items()
                if k in ("apiVersion", "kind", "metadata", "spec", "data")
            }
            meta = body.get("metadata", {})
            kind = body["kind"].lower()
            out[f"kubernetes/{meta.get('namespace', '_cluster')}/{kind}-{meta['name']}.yaml"] = (
                dump(body)
            )
            if body["kind"] == "PrometheusRule":
                out[f"rules/{meta['name']}.yml"] = dump(body["spec"])
            if body["kind"] == "ConfigMap":
                for key, text in body.get("data", {}).items():
                    if key.endswith(".json"):
                        out[f"dashboards/{key}"] = text + "\n"
        elif typ == "grafana:oss/dashboard:Dashboard":
            board = json.loads(inputs["configJson"])
            out[f"dashboards/{board['uid']}.json"] = (
                json.dumps(board, indent=2, sort_keys=True) + "\n"
            )
        else:
            safe = typ.replace(":", "_").replace("/", "_")
            out[f"other/{safe}-{name}.yaml"] = dump({"type": typ, "name": name, "inputs": inputs})
    return out


CHAIN = "SLO_CANARY_RENDER_CHAIN"  # the stacks whose renders are waiting on this one


def upstream_outputs(path: Path, outputs_root: Path) -> dict[str, dict[str, Any]]:
    """The outputs of the stack ``promotion.fromStack`` names, when none are rendered beside
    this one: rendered into a temporary directory that is removed. ConfigError, one line naming
    the key, for a stack that does not exist, a cycle, or an upstream stack that is refused."""
    promotion = read_stack_file(path).get(f"{PROJECT}:promotion")
    if not isinstance(promotion, dict) or not isinstance(promotion.get("fromStack"), str):
        return {}
    qualified = promotion["fromStack"]
    upstream = qualified.rsplit("/", 1)[-1]
    if (outputs_root / upstream / "outputs.json").exists():
        return {}
    where = f"{path.name}: {PROJECT}:promotion.fromStack: {qualified}"
    chain = [s for s in os.environ.get(CHAIN, "").split(",") if s] + [stack_name(path)]
    if upstream in chain:
        cycle = " -> ".join([*chain[chain.index(upstream):], upstream])
        raise ConfigError([f"{where}: the stacks promote from each other ({cycle}); promote "
                           "from a stack that does not promote from this one"])
    source = path.parent / f"Pulumi.{upstream}.yaml"  # beside it, else the project's own
    if not source.is_file():
        source = stack_file(upstream)
    if not source.is_file():
        raise ConfigError([f"{where}: there is no {source.name} to render {upstream} from; "
                           "name a stack of this project"])
    with tempfile.TemporaryDirectory() as tmp:
        ran = subprocess.run(
            [sys.executable, __file__, "--stack-file", str(source), "--out", tmp + "/out"],
            capture_output=True, text=True, check=False,
            env={**os.environ, CHAIN: ",".join(chain)},
        )
        if ran.returncode != 0:
            lines = ran.stderr.strip().splitlines()
            if (lines and lines[0].startswith(f"{source.name}: ")) or any(
                f"{PROJECT}:promotion.fromStack" in line for line in lines
            ):
                raise ConfigError(lines)
            raise ConfigError([f"{where}: rendering {upstream} failed: {' '.join(lines[-3:])}"])
        return {upstream: dict(json.loads(Path(tmp, "out", "outputs.json").read_text()))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stack", default="dev")
    parser.add_argument("--stack-file", type=Path, help="render this Pulumi.<stack>.yaml instead")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    path = args.stack_file or stack_file(args.stack)
    target = args.out or ROOT / "out" / stack_name(path)
    try:
        upstream = upstream_outputs(path, target.parent)
        resources, exports = run(path, target.parent, upstream)
    except ConfigError as err:  # the stack file itself (the program reports the rest)
        print("\n".join(err.lines), file=sys.stderr)
        return 1
    except pulumi.RunError as err:
        print(str(err), file=sys.stderr)
        return 1
    rendered = files(resources, exports)
    if target.exists():
        shutil.rmtree(target)
    for relative, text in sorted(rendered.items()):
        path = target / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    kinds: dict[str, int] = {}
    for typ, _, inputs in resources:
        kind = inputs.get("kind", typ.rsplit(":", 1)[-1]) if typ.startswith("kubernetes:") else typ
        kinds[kind] = kinds.get(kind, 0) + 1
    summary = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
    print(f"{target}: {len(resources)} resources ({summary})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
