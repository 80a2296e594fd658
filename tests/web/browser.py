"""Driving the served console in a real headless Chromium (Debian's `chromium` and
`chromium-driver` packages) through Selenium and the system chromedriver: nothing is downloaded.

What the page shows is read from xterm.js's own screen buffer, the text it has drawn: the page
of textual-serve keeps its terminal in a closure, so a script installed before the page's own
(`HOOK`) catches the console object when the page assigns its fit add-on to it.
"""

from __future__ import annotations

import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
INSTALL = "apt-get install -y chromium chromium-driver"

HOOK = """
Object.defineProperty(Object.prototype, 'fitAddon', {configurable: true, set(value) {
  window.__tuiConsole = this;
  Object.defineProperty(this, 'fitAddon', {value, writable: true, configurable: true, enumerable: true});
}});
"""

READ_SCREEN = """
const c = window.__tuiConsole;
if (!c || !c.terminal) return null;
const buffer = c.terminal.buffer.active, rows = [];
for (let i = 0; i < c.terminal.rows; i++) {
  const line = buffer.getLine(buffer.viewportY + i);
  rows.push(line ? line.translateToString(true) : '');
}
return rows.join('\\n');
"""


def find_browser() -> tuple[str, str] | None:
    driver = shutil.which("chromedriver")
    browser = next((path for path in map(shutil.which, BROWSERS) if path), None)
    return (browser, driver) if browser and driver else None


def skip_without_browser() -> tuple[str, str]:
    try:
        import selenium  # noqa: F401
    except ImportError:
        pytest.skip('selenium is not installed (pip install -e ".[test]")')
    try:
        import textual_serve  # noqa: F401
    except ImportError:
        pytest.skip('textual-serve is not installed (pip install -e ".[web]")')
    found = find_browser()
    if found is None:
        pytest.skip(f"no Chromium and chromedriver on PATH (Debian: {INSTALL})")
    return found


def start_browser(width: int = 1400, height: int = 950):
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    browser, driver_path = skip_without_browser()
    options = Options()
    options.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--no-first-run", "--disable-extensions", f"--window-size={width},{height}"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(executable_path=driver_path), options=options)


def open_tab(driver, url: str) -> tuple[str, float]:
    """Open `url` in a new tab (the hook installed in it first); returns the handle of the tab
    left behind and the time the page was asked for."""
    home = driver.current_window_handle
    driver.switch_to.new_window("tab")
    driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": HOOK})
    started = time.monotonic()
    driver.get(url)
    return home, started


def close_tab(driver, home: str) -> None:
    driver.close()
    driver.switch_to.window(home)


def screen_text(driver) -> str:
    return driver.execute_script(READ_SCREEN) or ""


def wait_for_screen(driver, *needles: str, timeout: float = 30.0) -> str:
    """The page's screen once it shows every needle; fails with what it showed last."""
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        text = screen_text(driver)
        if all(needle in text for needle in needles):
            return text
        time.sleep(0.05)
    raise AssertionError(f"the page did not show {needles} within {timeout:.0f} s; it showed:\n{text}")


def press(driver, keys: str) -> None:
    """Type into the page's terminal, as a user with the tab focused does."""
    from selenium.webdriver.common.by import By

    driver.find_element(By.CSS_SELECTOR, ".xterm-helper-textarea").send_keys(keys)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def child_env() -> dict[str, str]:
    root = str(Path(__file__).resolve().parents[2])
    path = os.environ.get("PYTHONPATH", "")
    return {**os.environ, "PYTHONPATH": root + (os.pathsep + path if path else ""), "OMP_NUM_THREADS": "1"}


def read_line(stream, timeout: float) -> str:
    selector = selectors.DefaultSelector()
    selector.register(stream, selectors.EVENT_READ)
    try:
        if not selector.select(timeout):
            return ""
        return stream.readline()
    finally:
        selector.close()


@contextmanager
def served(*args: str, port: int):
    """`tui-trainer ARGS --web --port PORT` serving in a subprocess; yields (process, url)."""
    process = subprocess.Popen([sys.executable, "-m", "tui_trainer", *args, "--web", "--port", str(port)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=child_env(),
                               start_new_session=True)
    try:
        line = read_line(process.stdout, 20)
        if "serving the console on" not in line:
            process.kill()
            raise AssertionError(f"the server did not start: {line!r} {process.communicate(timeout=5)}")
        wait_until(lambda: accepts(port), 20, "the server printed its URL but does not accept connections")
        yield process, line.split("serving the console on ", 1)[1].split()[0]  # the URL as printed
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(5)
        process.stdout.close()
        process.stderr.close()


def consoles_of(server) -> list:
    """The console processes textual-serve runs for the open tabs (shells and their children)."""
    import psutil

    try:
        return [p for p in psutil.Process(server.pid).children(recursive=True) if p.is_running()
                and p.status() != psutil.STATUS_ZOMBIE]
    except psutil.NoSuchProcess:
        return []


def wait_until(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"{what}: not within {timeout:.0f} s")
