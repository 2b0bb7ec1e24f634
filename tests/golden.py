"""Golden renders: stages/NAME.yaml is what agent.boot writes for examples/NAME.yaml.

python tests/golden.py --write   regenerate them (`make stages`)
python tests/golden.py           list the stale ones, exit 1 if any
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Dict

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from provider_rke2.render import render  # noqa: E402

EXAMPLES = ROOT / "examples"
STAGES = ROOT / "stages"


def expected() -> Dict[Path, str]:
    """Each golden file and the text it must hold."""
    renders = {}
    for example in sorted(EXAMPLES.glob("*.yaml")):
        rendered = render(example.read_text(encoding="utf-8"))
        assert rendered is not None, f"{example} has no cluster section"
        renders[STAGES / example.name] = rendered.text
    return renders


def stale() -> list:
    return [
        path
        for path, text in expected().items()
        if not path.exists() or path.read_text(encoding="utf-8") != text
    ] + [path for path in STAGES.glob("*.yaml") if not (EXAMPLES / path.name).exists()]


def main(argv: list) -> int:
    if "--write" in argv:
        for old in STAGES.glob("*.yaml"):
            old.unlink()
        for path, text in expected().items():
            path.write_text(text, encoding="utf-8")
        return 0
    paths = stale()
    for path in paths:
        print(f"stale: {path.relative_to(ROOT)}")
    return 1 if paths else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
