"""How long a browser tab takes to show the dashboard of `tui-trainer show RUN --web`.

Opens the served page TRIALS times in headless Chromium (Debian's chromium and chromium-driver,
as the browser tests use), each in a new tab, which starts a new console process, and prints per
trial: the page loaded (HTML, script), the first frame of the console arrived, and the page's
terminal showing the dashboard (every panel title). The run is a live headless digits run it
starts (--threads 1), followed by `show`.

    python scripts/web_dashboard_time.py [--trials 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.web.browser import (child_env, close_tab, free_port, open_tab, served, start_browser,  # noqa: E402
                               wait_for_screen, wait_until)

PANELS = ("Progress", "Loss & accuracy", "Learning rate", "Early stopping", "System", "Events")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=5)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        run_dir = Path(scratch) / "digits"
        run = subprocess.Popen([sys.executable, "-m", "tui_trainer", "run", "digits", "--headless", "--threads", "1",
                                "--epochs", "400", "--patience", "0", "--checkpoint-every", "0", "--run-dir",
                                str(run_dir)], stdout=subprocess.DEVNULL, env=child_env())
        driver = start_browser()
        try:
            wait_until(lambda: (run_dir / "events.jsonl").is_file(), 60, "the run did not start")
            with served("show", str(run_dir), port=free_port()) as (_, url):
                for _ in range(args.trials):
                    home, started = open_tab(driver, url)
                    loaded = time.monotonic() - started  # driver.get returns after the load event
                    wait_until(lambda: driver.execute_script(
                        "return document.body.classList.contains('-first-byte')"), 20, "no frame")
                    first_frame = time.monotonic() - started
                    wait_for_screen(driver, *PANELS, "RUNNING")
                    rows.append((loaded, first_frame, time.monotonic() - started))
                    close_tab(driver, home)
                    time.sleep(1)
        finally:
            driver.quit()
            run.kill()
            run.wait()
    load = os.getloadavg()[0]
    print(f"{'trial':>5} {'page loaded':>12} {'first frame':>12} {'dashboard':>10}   (seconds; load average {load:.1f}, "
          f"{os.cpu_count()} CPUs)")
    for i, (loaded, first, shown) in enumerate(rows, 1):
        print(f"{i:>5} {loaded:>12.2f} {first:>12.2f} {shown:>10.2f}")
    print(f"{'median':>5} {statistics.median(r[0] for r in rows):>12.2f} {statistics.median(r[1] for r in rows):>12.2f} "
          f"{statistics.median(r[2] for r in rows):>10.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
