"""--notify URL: one JSON POST when the run ends; a failing or hanging server is one line on
stderr and changes neither the run nor its exit code. Against a local http.server."""

from __future__ import annotations

import http.server
import json
import threading
import time

import pytest

from _reliability import cli_main, one_thread, tiny_run_args


@pytest.fixture(autouse=True)
def _single_thread():
    with one_thread():
        yield


class Server:
    """A local webhook: answers `status` after `delay` seconds and keeps each body it got."""

    def __init__(self, status: int = 200, delay: float = 0.0) -> None:
        self.bodies: list[dict] = []
        self.headers: list[dict] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.bodies.append(json.loads(body))
                outer.headers.append(dict(self.headers))
                time.sleep(delay)
                try:
                    self.send_response(status)
                    self.end_headers()
                except OSError:
                    pass  # the client gave up waiting

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/hook"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(request):
    s = Server(*getattr(request, "param", (200, 0.0)))
    yield s
    s.close()


def test_a_finished_run_posts_one_message_for_slack_and_discord(tmp_path, server):
    run_dir = tmp_path / "run"
    code, out, err = cli_main(tiny_run_args(run_dir, 2, "--notify", server.url))
    assert code == 0 and err == "", err
    assert len(server.bodies) == 1
    body = server.bodies[0]
    final_line = out.strip().splitlines()[-1]  # "run finished after 2 epochs in ...; best val_loss ..."
    assert body["text"] == body["content"] == f"tui-trainer: run on {body['host']}: {final_line}"
    assert body["run"] == "run" and body["status"] == "finished"
    assert body["best_metric"] == "val_loss" and body["best_epoch"] in (1, 2)
    report = json.loads((run_dir / "report.json").read_text())
    assert body["best_value"] == pytest.approx(report["best_val_loss"])
    assert body["duration_s"] > 0 and body["host"]
    assert server.headers[0]["Content-Type"] == "application/json"


def test_a_failed_run_posts_its_failure_and_keeps_its_exit_code(tmp_path, server):
    code, out, err = cli_main(tiny_run_args(tmp_path / "run", 2, "--lr", "1e30", "--accum-steps", "1",
                                            "--notify", server.url))
    assert code == 1
    (body,) = server.bodies
    assert body["status"] == "failed" and "non-finite loss at epoch 1" in body["text"]


@pytest.mark.parametrize("server", [(500, 0.0)], indirect=True)
def test_a_server_error_is_one_line_and_the_run_still_succeeds(tmp_path, server):
    code, out, err = cli_main(tiny_run_args(tmp_path / "run", 1, "--notify", server.url))
    assert code == 0
    assert len(server.bodies) == 1
    assert err.splitlines() == ["tui-trainer: warning: --notify: could not post the run's end to 127.0.0.1: "
                                "the server answered 500 Internal Server Error"]
    assert "run finished after 1 epoch" in out


@pytest.mark.parametrize("server", [(200, 30.0)], indirect=True)
def test_a_server_that_hangs_costs_at_most_the_timeout(tmp_path, server, monkeypatch):
    from tui_trainer.sinks import notify

    monkeypatch.setattr(notify, "TIMEOUT", 1.0)
    started = time.monotonic()
    code, out, err = cli_main(tiny_run_args(tmp_path / "run", 1, "--notify", server.url))
    took = time.monotonic() - started
    assert code == 0
    assert err.splitlines() == ["tui-trainer: warning: --notify: could not post the run's end to 127.0.0.1: "
                                "no answer within 1s"]
    assert took < 4  # a second of tiny training, plus the 1 s timeout; the server would hang for 30


def test_nobody_listening_is_one_line_too(tmp_path):
    s = Server()
    url = s.url
    s.close()  # the port is free again: connection refused
    code, out, err = cli_main(tiny_run_args(tmp_path / "run", 1, "--notify", url))
    assert code == 0
    assert len(err.splitlines()) == 1 and "could not post the run's end to 127.0.0.1" in err


@pytest.mark.parametrize("url", ["ftp://example.com/x", "hooks.slack.com/services/x", "http://"])
def test_a_notify_that_is_not_a_url_is_refused_before_anything_is_written(tmp_path, url):
    code, out, err = cli_main(tiny_run_args(tmp_path / "run", 1, "--notify", url))
    assert code == 2 and len(err.splitlines()) == 1 and "expected an http:// or https:// URL" in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("status", ["early_stopped", "stopped", "interrupted"])
def test_every_way_a_run_ends_is_posted_once(tmp_path, server, status):
    from tui_trainer import events as ev
    from tui_trainer.sinks.notify import Notifier

    notifier = Notifier(server.url, tmp_path / "digits-run")
    notifier.emit(ev.Notice(level="info", message="x", t=100.0))
    notifier.emit(ev.RunFinished(status=status, epochs_completed=3, best_epoch=2, best_val_acc=97.5,
                                 elapsed=12.5, best_val_loss=0.08, monitor="val_acc", t=113.0))
    notifier.emit(ev.RunFinished(status=status, epochs_completed=3, best_epoch=2, best_val_acc=97.5,
                                 elapsed=12.5, t=113.0))
    assert notifier.finish() == ""
    (body,) = server.bodies
    assert body["status"] == status and body["run"] == "digits-run"
    assert (body["best_metric"], body["best_value"], body["best_epoch"]) == ("val_acc", 97.5, 2)
    assert body["duration_s"] == 12.5
