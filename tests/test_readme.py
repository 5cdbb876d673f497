"""The README's quick start works on a fresh clone: `make render` sets everything up and renders
the dev stack offline. (`make test`, the other command, is what CI runs on a fresh clone.)"""

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def quick_start_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.DOTALL)
    assert block, "README quick start has no bash block"
    return [line.split("#", 1)[0].strip() for line in block.group(1).splitlines() if line.strip()]


def test_readme_quick_start_is_two_commands():
    assert quick_start_commands() == ["make render", "make test"]


def test_make_render_on_a_fresh_clone(tmp_path):
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
    result = subprocess.run(
        quick_start_commands()[0].split(), cwd=clone, capture_output=True, text=True,
        check=False, timeout=1200,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert (clone / "out" / "dev" / "outputs.json").is_file()
    assert len(list((clone / "out" / "dev" / "kubernetes").rglob("rollout-*.yaml"))) == 3
