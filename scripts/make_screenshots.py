"""Regenerate the SVG screenshots in screenshots/ from the scripted scenes (the same scenes the
snapshot tests check). Run: python scripts/make_screenshots.py"""

from __future__ import annotations

import asyncio
from pathlib import Path

from tui_trainer.frontends.tui.scenes_app import scene_app

OUT = Path(__file__).resolve().parent.parent / "screenshots"

SHOTS = [
    # (file, scene, size, keys pressed first)
    ("running.svg", "running", (120, 36), []),
    ("paused.svg", "paused", (120, 36), []),
    ("report.svg", "early-stopped", (120, 36), []),
    ("early-stopped-dashboard.svg", "early-stopped", (120, 36), ["d"]),
    ("running-cpu-80x24.svg", "running-cpu", (80, 24), []),
    ("help.svg", "running", (120, 36), ["question_mark"]),
]


async def shoot(filename: str, scene: str, size: tuple[int, int], keys: list[str]) -> None:
    app = scene_app(scene)
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        for key in keys:
            await pilot.press(key)
        await pilot.pause()
        await pilot.pause()
        app.save_screenshot(filename, path=str(OUT))


def main() -> None:
    OUT.mkdir(exist_ok=True)
    for filename, scene, size, keys in SHOTS:
        asyncio.run(shoot(filename, scene, size, keys))
        print(f"wrote {OUT / filename}")


if __name__ == "__main__":
    main()
