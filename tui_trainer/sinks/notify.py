"""--notify URL: one JSON POST when the run ends, for Slack's and Discord's incoming webhooks.

The body carries `text` (Slack) and `content` (Discord) with the same sentence, and the facts as
fields: run name, status, best metric and epoch, duration, host. The POST runs on a thread of
its own with a timeout, so a slow or failing server never holds the engine up nor changes how
the run ends or its exit code; `finish()` waits what is left of the timeout and says in one line
what went wrong, if anything did (after the console has closed, where there is one).
"""

from __future__ import annotations

import json
import socket
import threading
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from .. import events as ev
from ..describe import describe
from ..errors import UserError
from ..event_io import printable

TIMEOUT = 5.0  # seconds for the whole POST: connect, send, answer


def check_url(url: str) -> None:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UserError(f"--notify {printable(url)!r}: expected an http:// or https:// URL (a Slack or Discord "
                        "incoming webhook)")


def message(run_name: str, end: ev.Event, best: dict, duration: float, host: str) -> dict:
    """The JSON body for the run's end (RunFinished or RunFailed)."""
    status = end.status if isinstance(end, ev.RunFinished) else "failed"
    sentence = describe(end).text if describe(end) is not None else status
    text = f"tui-trainer: {run_name} on {host}: {sentence}"
    return {"text": text, "content": text[:2000],  # Discord refuses longer content
            "run": run_name, "status": status, "host": host, "duration_s": round(duration, 3), **best}


class Notifier:
    """A sink that posts `message(...)` to `url` once, when the run ends."""

    def __init__(self, url: str, run_dir: str | Path, timeout: float | None = None) -> None:
        self.url = url
        self.run_name = Path(run_dir).name
        self.timeout = TIMEOUT if timeout is None else timeout
        self._first_t: float | None = None
        self._best: dict = {"best_metric": None, "best_value": None, "best_epoch": None}
        self._thread: threading.Thread | None = None
        self.problem = ""  # why the POST failed, once it has
        self.sent = False

    def emit(self, event: ev.Event) -> None:
        if self._first_t is None:
            self._first_t = event.t
        if isinstance(event, ev.RunStarted):
            self.run_name = event.run_name or self.run_name
        elif isinstance(event, ev.EpochEnd):
            monitor = event.monitor
            value = event.best_val_acc if monitor == "val_acc" else event.best_val_loss
            self._best = {"best_metric": monitor, "best_value": value, "best_epoch": event.best_epoch}
        elif isinstance(event, (ev.RunFinished, ev.RunFailed)) and self._thread is None:
            if isinstance(event, ev.RunFinished):
                monitor = event.monitor
                value = event.best_val_acc if monitor == "val_acc" else event.best_val_loss
                if event.best_epoch:
                    self._best = {"best_metric": monitor, "best_value": value, "best_epoch": event.best_epoch}
                duration = event.elapsed
            else:
                duration = event.t - self._first_t
            body = message(self.run_name, event, self._best, duration, socket.gethostname())
            self._thread = threading.Thread(target=self._post, args=(body,), name="notify", daemon=True)
            self._thread.start()

    def _post(self, body: dict) -> None:
        data = json.dumps(ev._jsonable(body), allow_nan=False).encode("utf-8")  # a nan loss as "nan"
        request = urllib.request.Request(self.url, data=data, method="POST",
                                         headers={"Content-Type": "application/json",
                                                  "User-Agent": "tui-trainer"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                answer.read(65536)
            self.sent = True
        except urllib.error.HTTPError as exc:
            self.problem = f"the server answered {exc.code} {exc.reason}"
        except (OSError, ValueError) as exc:  # refused, unreachable, timed out, a bad answer
            reason = getattr(exc, "reason", None) or exc
            self.problem = "no answer within {:g}s".format(self.timeout) if isinstance(reason, TimeoutError) \
                or "timed out" in str(reason) else str(reason)

    def finish(self) -> str:
        """Wait for the POST (at most its timeout); returns the line to log when it failed, else ''."""
        if self._thread is None:
            return ""
        self._thread.join(self.timeout + 1.0)
        if self._thread.is_alive():
            self.problem = f"no answer within {self.timeout:g}s"
        if self.sent or not self.problem:
            return ""
        host = urllib.parse.urlsplit(self.url).hostname or "?"
        return f"tui-trainer: warning: --notify: could not post the run's end to {printable(host)}: " \
               f"{printable(self.problem)}"

