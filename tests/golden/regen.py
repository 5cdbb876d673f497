"""Regenerate the golden rule files (never edit out-*.yaml by hand):

    python tests/golden/regen.py
"""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

from slo.loader import load_catalogue  # noqa: E402
from slo.model import resolve_all  # noqa: E402
from slo.rules import rule_file  # noqa: E402
from slo.yamlout import dump  # noqa: E402


def render(path: Path) -> str:
    return dump(rule_file(resolve_all(load_catalogue(path))))


if __name__ == "__main__":
    for source in sorted(HERE.glob("in-*.yaml")):
        target = source.with_name("out-" + source.name.removeprefix("in-"))
        target.write_text(render(source))
        print(f"wrote {target.relative_to(HERE.parent.parent)}")
