import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def pytest_report_header() -> list[str]:
    """Which Prometheus the proofs and queries run on (``make test``: the pinned 3.x build;
    ``make compat``: Debian's 2.x)."""
    lines = []
    for tool in ("promtool", "prometheus"):
        path = shutil.which(tool)
        if path is None:
            lines.append(f"{tool}: not found on PATH")
            continue
        ran = subprocess.run([path, "--version"], capture_output=True, text=True, check=False)
        first = (ran.stdout or ran.stderr).strip().splitlines()[:1]
        lines.append(f"{tool}: {path}: {first[0] if first else 'no version'}")
    return lines


SLOTH_MODULE = "github.com/slok/sloth@v0.16.0"


@pytest.fixture(scope="session")
def sloth_examples(tmp_path_factory) -> Path:
    """Sloth's examples/ from its module in the Go module cache (downloaded if missing)."""
    env = {**os.environ, "GOFLAGS": "-mod=mod", "GOTOOLCHAIN": "local", "GOWORK": "off"}
    done = subprocess.run(["go", "mod", "download", "-json", SLOTH_MODULE], capture_output=True,
                          text=True, check=False, env=env, cwd=tmp_path_factory.mktemp("go"),
                          timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    return Path(json.loads(done.stdout)["Dir"]) / "examples"
