"""The console served to a real browser: headless Chromium loads the page, the page shows the
dashboard of a live headless digits run, keys typed into the page reach the console, and closing
the tab closes only that tab's console. Skipped without Chromium, chromedriver and selenium
(Debian: apt-get install -y chromium chromium-driver; .ci/run installs them).

WEB_SCREENSHOT_DIR=screenshots keeps the page as the browser drew it (web-*.png) there.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .browser import (child_env, close_tab, consoles_of, free_port, open_tab, press, served, skip_without_browser,
                      start_browser, wait_for_screen, wait_until)

DASHBOARD = ("Progress", "Loss & accuracy", "Learning rate", "Early stopping", "System", "Events")


def events_of(run_dir: Path) -> list[dict]:
    lines = (run_dir / "events.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.endswith("}")]


def count(run_dir: Path, kind: str) -> int:
    return sum(1 for e in events_of(run_dir) if e["event"] == kind)


@pytest.fixture(scope="module")
def browser(live_run):
    """Chromium, started while the run (started first) loads torch and its data."""
    driver = start_browser()
    try:
        wait_until(lambda: (live_run[1] / "events.jsonl").is_file() and count(live_run[1], "RunStarted") == 1, 60,
                   "the digits run did not start training")
    except AssertionError as exc:
        driver.quit()
        raise AssertionError(f"{exc}: {(live_run[1].parent / 'run.stderr').read_text()[-2000:]}") from None
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def live_run(tmp_path_factory):
    """A headless digits run in another process, training on (no early stop) until the tests end."""
    skip_without_browser()
    run_dir = tmp_path_factory.mktemp("web") / "digits-run"
    errors = open(run_dir.parent / "run.stderr", "wb")
    process = subprocess.Popen([sys.executable, "-m", "tui_trainer", "run", "digits", "--headless", "--threads", "1",
                                "--epochs", "400", "--patience", "0", "--checkpoint-every", "0",
                                "--run-dir", str(run_dir)],
                               stdout=subprocess.DEVNULL, stderr=errors, env=child_env())
    try:
        yield process, run_dir
    finally:
        process.kill()  # only the test's scaffolding: nothing of it is kept
        process.wait(30)
        errors.close()


def shoot(driver, name: str) -> None:
    folder = os.environ.get("WEB_SCREENSHOT_DIR")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(Path(folder) / name))


def test_show_web_serves_a_live_runs_dashboard_to_the_browser(browser, live_run, record_property):
    run_process, run_dir = live_run
    with served("show", str(run_dir), port=free_port()) as (server, url):
        home, started = open_tab(browser, url)
        screen = wait_for_screen(browser, *DASHBOARD, "digits · simplecnn", "LIVE")
        seconds = time.monotonic() - started
        record_property("seconds_to_dashboard", round(seconds, 2))
        print(f"\nshow --web: the page showed the dashboard {seconds:.2f} s after it was opened")
        assert "RUNNING" in screen.splitlines()[0]
        epochs_shown = count(run_dir, "EpochEnd")
        shoot(browser, "web-show.png")

        assert "pause or resume" not in screen
        press(browser, "?")  # keys typed into the page reach the tab's console: its help opens
        wait_for_screen(browser, "pause or resume", "a read-only view", timeout=10)
        assert len(consoles_of(server)) >= 1
        close_tab(browser, home)
        wait_until(lambda: not consoles_of(server), 10, "the closed tab's console is still running")
        assert server.poll() is None, "the server stopped with the tab"
        assert run_process.poll() is None, "the run stopped with the tab"
        wait_until(lambda: count(run_dir, "EpochEnd") > epochs_shown, 20, "the run trained on after the tab closed")


ATTACH_MISSING = importlib.util.find_spec("tui_trainer.commands.attach") is None


@pytest.mark.skipif(ATTACH_MISSING, reason="the attach command (tui_trainer.commands.attach) is not here yet")
def test_attach_web_pauses_the_live_run_from_the_browser(browser, live_run, record_property):
    run_process, run_dir = live_run
    with served("attach", str(run_dir), port=free_port()) as (server, url):
        home, started = open_tab(browser, url)
        wait_for_screen(browser, *DASHBOARD, "digits · simplecnn", "RUNNING")
        seconds = time.monotonic() - started
        record_property("seconds_to_dashboard", round(seconds, 2))
        print(f"\nattach --web: the page showed the dashboard {seconds:.2f} s after it was opened")
        shoot(browser, "web-attach.png")

        paused, resumed = count(run_dir, "Paused"), count(run_dir, "Resumed")
        press(browser, "p")
        wait_until(lambda: count(run_dir, "Paused") > paused, 15, "p in the page wrote no Paused event")
        wait_for_screen(browser, "PAUSED", timeout=10)
        press(browser, "p")
        wait_until(lambda: count(run_dir, "Resumed") > resumed, 15, "p again wrote no Resumed event")

        close_tab(browser, home)
        wait_until(lambda: not consoles_of(server), 10, "the closed tab's console is still running")
        epochs = count(run_dir, "EpochEnd")
        wait_until(lambda: count(run_dir, "EpochEnd") > epochs, 20, "the run did not train on after the tab closed")
        assert run_process.poll() is None
        from tui_trainer.events import TERMINAL_EVENTS

        assert not [e for e in events_of(run_dir) if e["event"] in TERMINAL_EVENTS], "closing the tab ended the run"
