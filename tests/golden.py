"""Golden renders: what agent.boot writes for each examples/NAME.yaml.

stages/NAME.yaml in appliance mode, stages/agent/NAME.yaml in agent mode with
STYLUS_ROOT=/persistent/spectro.

python tests/golden.py --write   regenerate them (`make stages`)
python tests/golden.py           list the stale ones, exit 1 if any
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Dict

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from provider_rke2.core.render import APPLIANCE, render  # noqa: E402
from provider_rke2.core.root import Root  # noqa: E402

EXAMPLES = ROOT / "examples"
STAGES = ROOT / "stages"
MODES = {STAGES: APPLIANCE, STAGES / "agent": Root("/persistent/spectro", "--stylus-root")}


def expected() -> Dict[Path, str]:
    """Each golden file and the text it must hold."""
    renders = {}
    for example in sorted(EXAMPLES.glob("*.yaml")):
        for folder, root in MODES.items():
            rendered = render(example.read_text(encoding="utf-8"), root)
            assert rendered is not None, f"{example} has no cluster section"
            renders[folder / example.name] = rendered.text
    return renders


def existing() -> list:
    return [path for folder in MODES for path in folder.glob("*.yaml")]


def stale() -> list:
    renders = expected()
    changed = [p for p, text in renders.items() if not p.exists() or p.read_text(encoding="utf-8") != text]
    return changed + [path for path in existing() if path not in renders]


def main(argv: list) -> int:
    if "--write" in argv:
        for old in existing():
            old.unlink()
        for path, text in expected().items():
            path.parent.mkdir(exist_ok=True)
            path.write_text(text, encoding="utf-8")
        return 0
    paths = stale()
    for path in paths:
        print(f"stale: {path.relative_to(ROOT)}")
    return 1 if paths else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
