"""tools/render.py as `pulumi up` would run the program when the engine hands it config keys
that no stack file check saw (set with `pulumi config set`, or by an ESC environment): the
program itself must name them. Extra keys come from $SLO_CANARY_EXTRA_CONFIG (JSON)."""

import json
import os
import runpy
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import delivery.stack as config  # noqa: E402

real = config.read_stack_file


def read_stack_file(path: Path) -> dict[str, object]:
    return {**real(path), **json.loads(os.environ["SLO_CANARY_EXTRA_CONFIG"])}


config.read_stack_file = read_stack_file
runpy.run_path(str(ROOT / "tools" / "render.py"), run_name="__main__")
