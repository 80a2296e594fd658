"""screenshots/compare.svg and .png: `tui-trainer compare` on two recorded digits runs.

    python scripts/make_compare_screenshot.py

The runs are tests/tui/compare_runs/ (the snapshot test's too): `tui-trainer run digits --epochs 20
--threads 1` with --lr 1e-3 and with --lr 1e-2 on a shared 2-core CPU, their events.jsonl kept
without the step and system samples (compare reads neither). The PNG is drawn as
make_screenshots.py draws the console's.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from make_screenshots import OUT, to_png  # noqa: E402

RUNS = ROOT / "tests" / "tui" / "compare_runs"


async def shoot(size: tuple[int, int] = (120, 36)) -> Path:
    from tui_trainer.compare import open_runs
    from tui_trainer.frontends.tui.compare import CompareApp

    app = CompareApp(open_runs([RUNS / "digits-lr1e-3", RUNS / "digits-lr1e-2"]), follow=False)
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        await pilot.pause()
        app.save_screenshot("compare.svg", path=str(OUT))
    return OUT / "compare.svg"


if __name__ == "__main__":
    svg = asyncio.run(shoot())
    print(f"wrote {svg} and {to_png(svg).name}")
