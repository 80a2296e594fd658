"""The README's pictures, from real runs.

    python scripts/make_screenshots.py           # draw screenshots/*.svg and *.png from the recordings
    python scripts/make_screenshots.py --record  # first record the runs again (a minute or two on a CPU)

Recording trains for real through the console the CLI builds (`build_app`, the same engine,
sinks and progress interval as `tui-trainer run`), presses keys as a person would, and keeps
the run's events.jsonl under screenshots/recordings/ with a line in its README saying where,
when and how it was recorded. Drawing replays a recording, whole or up to a chosen moment,
through the same reducer and console: every number in a picture is one that run produced.

Each SVG is also rendered to PNG (rsvg-convert, from Debian's librsvg2-bin; the Fira Code font
from fonts-firacode if installed): Textual's SVGs name a web font, and viewed offline their text
runs together. The PNG is drawn from a copy of the SVG with every character placed in its own
terminal cell, so the fallback fonts' glyph widths (braille, block elements) cannot shift it.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import html
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rich.cells import cell_len  # noqa: E402

from tui_trainer import events as ev  # noqa: E402

OUT = ROOT / "screenshots"
RECORDINGS = OUT / "recordings"
DIGITS = RECORDINGS / "digits.events.jsonl"


# ----- recording -----
async def record_digits(run_dir: Path) -> str:
    """`tui-trainer run digits` (the default recipe) in a 120x36 console; returns what was pressed."""
    from tui_trainer.config import make_config
    from tui_trainer.frontends.tui.launch import build_app

    config = make_config("digits", run_dir=str(run_dir))
    app, store, control, _ = build_app(config, run_dir)
    pressed = []

    async def wait_for(condition, what: str, timeout: float = 300.0) -> None:
        end = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > end:
                raise RuntimeError(f"timed out waiting for {what}")
            await pilot.pause(0.05)

    def epochs() -> int:
        return len(store.snapshot().epochs_done)

    async with app.run_test(size=(120, 36)) as pilot:
        await wait_for(lambda: epochs() >= 8, "epoch 8")
        await pilot.press("minus")
        pressed.append(f"- after epoch {epochs()}")
        await wait_for(lambda: epochs() >= 12 and store.snapshot().step > 0, "epoch 13")
        await pilot.press("p")
        await wait_for(lambda: store.snapshot().status == "PAUSED", "the pause")
        pressed.append(f"p after epoch 12 ({store.snapshot().log[-1].text})")
        await pilot.pause(3.0)
        await pilot.press("p")
        pressed.append("p again 3 s later")
        await wait_for(lambda: not store.snapshot().active, "the end of the run")
        await pilot.pause(0.5)
    return ", ".join(pressed)


def record() -> None:
    RECORDINGS.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        here = os.getcwd()
        os.chdir(tmp)  # the run directory the pictures show is the CLI's relative default
        try:
            from tui_trainer.runlog import default_run_dir

            run_dir = default_run_dir("digits", "simplecnn")
            keys = asyncio.run(record_digits(run_dir))
        finally:
            os.chdir(here)
        shutil.copyfile(Path(tmp) / run_dir / "events.jsonl", DIGITS)
    note(DIGITS, f"`tui-trainer run digits` (default recipe) in a 120x36 console, keys pressed: {keys}")
    print(f"recorded {DIGITS}")


def note(recording: Path, how: str) -> None:
    """One line per recording in recordings/README.md: where, when, how, and with what."""
    import torch

    readme = RECORDINGS / "README.md"
    lines = readme.read_text().splitlines() if readme.exists() else [
        "# Recorded runs", "",
        "Real runs whose events.jsonl `scripts/make_screenshots.py` replays into the pictures in",
        "screenshots/. `python scripts/make_screenshots.py --record` records them again.", ""]
    lines = [line for line in lines if not line.startswith(f"- `{recording.name}`")]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip() or "unknown"
    if subprocess.run(["git", "status", "--porcelain", "--", "tui_trainer"], cwd=ROOT, capture_output=True,
                      text=True).stdout.strip():
        commit += " with uncommitted changes to tui_trainer/"
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    lines.append(f"- `{recording.name}`: {how}; recorded {datetime.date.today().isoformat()} on {cpu} "
                 f"({os.cpu_count()} CPUs, shared with other work, no GPU), Linux, Python "
                 f"{platform.python_version()}, torch {torch.__version__}, tui-trainer at commit {commit}.")
    readme.write_text("\n".join(lines) + "\n")


# ----- drawing -----
def moment(events: list[ev.Event], what: str) -> int:
    """How many of the recording's events to replay for a picture of `what`."""
    names = [type(e).__name__ for e in events]
    if what == "end":
        return len(events)
    paused = names.index("Paused")
    if what == "paused":
        return paused + 1
    # running: mid-epoch, after the LR change and a few epochs before the pause
    target = max(1, sum(1 for n in names[:paused] if n == "EpochEnd") - 3)
    done = 0
    for i, event in enumerate(events[:paused]):
        done += isinstance(event, ev.EpochEnd)
        if done >= target and isinstance(event, ev.StepProgress):
            return i + 1
    return paused


def console_for(events: list[ev.Event], live: bool):
    from tui_trainer.engine.control import Control
    from tui_trainer.frontends.tui.app import TrainerApp
    from tui_trainer.frontends.tui.store import StateStore
    from tui_trainer.state import replay

    state = replay(events)
    control = Control() if live else None  # a live run's keys are there; a finished one's dimmed
    if control is not None and state.status == "PAUSED":
        control.pause()
    return TrainerApp(StateStore(state), control)


SHOTS = [
    # (file, recording, moment, size, keys pressed first)
    ("running", DIGITS, "running", (120, 36), []),
    ("paused", DIGITS, "paused", (120, 36), []),
    ("report", DIGITS, "end", (120, 36), []),
    ("final-dashboard", DIGITS, "end", (120, 36), ["d"]),
    ("running-80x24", DIGITS, "running", (80, 24), []),
    ("help", DIGITS, "running", (120, 36), ["question_mark"]),
]


async def shoot(name: str, events: list[ev.Event], size: tuple[int, int], keys: list[str]) -> Path:
    app = console_for(events, live=True)
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        for key in keys:
            await pilot.press(key)
        await pilot.pause()
        await pilot.pause()
        app.save_screenshot(f"{name}.svg", path=str(OUT))
    return OUT / f"{name}.svg"


TEXT = re.compile(r'<text class="([^"]*)" x="([\d.]+)" y="([\d.]+)" textLength="([\d.]+)" '
                  r'clip-path="([^"]*)">([^<]*)</text>')


def one_cell_per_character(svg: str) -> str:
    """The SVG with each run of text split into one <text> per character at its cell's x."""
    def split(match: re.Match) -> str:
        cls, x, y, length, clip, content = match.groups()
        chars = html.unescape(content)
        cells = cell_len(chars)
        if cells == 0:
            return ""
        width = float(length) / cells
        out, at = [], float(x)
        for char in chars:
            if char not in (" ", "\u00a0"):
                out.append(f'<text class="{cls}" x="{at:.1f}" y="{y}" clip-path="{clip}">{html.escape(char)}</text>')
            at += width * cell_len(char)
        return "".join(out)
    return TEXT.sub(split, svg)


def to_png(svg_path: Path) -> Path:
    png = svg_path.with_suffix(".png")
    fixed = one_cell_per_character(svg_path.read_text())
    with tempfile.NamedTemporaryFile("w", suffix=".svg", delete=False) as fh:
        fh.write(fixed)
    try:
        subprocess.run(["rsvg-convert", "--zoom", "1", fh.name, "-o", str(png)], check=True)
    finally:
        os.unlink(fh.name)
    return png


def draw() -> None:
    if shutil.which("rsvg-convert") is None:
        sys.exit("make_screenshots: rsvg-convert not found (apt-get install librsvg2-bin)")
    recordings: dict[Path, list[ev.Event]] = {}
    for name, recording, when, size, keys in SHOTS:
        if recording not in recordings:
            recordings[recording] = ev.read_events(recording)
        events = recordings[recording]
        svg = asyncio.run(shoot(name, events[:moment(events, when)], size, keys))
        print(f"wrote {svg} and {to_png(svg).name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--record", action="store_true", help="record the runs again before drawing")
    args = parser.parse_args()
    if args.record or not DIGITS.exists():
        record()
    draw()


if __name__ == "__main__":
    main()
