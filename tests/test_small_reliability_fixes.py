"""Smaller reliability fixes: the failure hint never suggests the option already in use; names with
newlines or escape sequences stay one escaped line in the log, the errors and the console;
closing the terminal on a finished run's report is not a hang-up; and the run log grows by a
bounded amount per hour however long an epoch runs."""

from __future__ import annotations

import time

import pytest

from _reliability import cli_main, of, one_thread, tiny_run_args


@pytest.fixture(autouse=True)
def _single_thread():
    with one_thread():
        yield


def test_with_on_nan_skip_the_failure_does_not_suggest_on_nan_skip(tmp_path):
    code, out, err = cli_main(tiny_run_args(tmp_path / "run", 2, "--lr", "1e30", "--on-nan", "skip"))
    assert code == 1, out + err
    (failed,) = of(tmp_path / "run", "RunFailed")
    assert "non-finite loss" in failed.error and "--on-nan skip" not in failed.error
    assert "--on-nan skip" not in out + err


WEIRD = "run\nforged line\x1b[2J\x1b]0;title\x07\u202eend"


def test_a_run_name_with_newlines_and_escape_sequences_is_escaped_in_the_log(tmp_path):
    run_dir = tmp_path / WEIRD
    code, out, err = cli_main(tiny_run_args(run_dir, 1))
    assert code == 0, out + err
    assert "\x1b" not in out and "\u202e" not in out and "\x07" not in out
    assert not any(line.startswith("forged line") for line in out.splitlines())
    assert "tui-trainer: training run run\\nforged line\\x1b[2J\\x1b]0;title\\x07\\u202eend" in out

    # an error naming the directory is one escaped line too
    code, out, err = cli_main(tiny_run_args(run_dir, 1))
    assert code == 2
    assert len(err.splitlines()) == 1 and "\x1b" not in err and "run\\nforged line" in err


async def test_the_console_shows_a_weird_run_name_escaped(tmp_path):
    from tui_trainer.config import make_config
    from tui_trainer.frontends.tui.launch import build_app

    run_dir = tmp_path / WEIRD
    config = make_config("synthetic", model="mlp", epochs=1, synthetic_shape=(1, 8, 8), synthetic_train=64,
                         synthetic_val=32, batch_size=32, run_dir=str(run_dir))
    app, store, control, _ = build_app(config, run_dir)
    async with app.run_test(size=(120, 36)) as pilot:
        end = time.monotonic() + 60
        while store.snapshot().info is None and time.monotonic() < end:
            await pilot.pause(0.05)
        await pilot.pause(0.3)
        header = str(app.query_one("#header-info").render())
        control.request_stop("quit")
    assert "run\\nforged line\\x1b[2J" in header
    assert "\n" not in header and "\x1b" not in header


def test_closing_the_terminal_on_a_finished_report_exits_0(tmp_path):
    from tui_trainer.testing import PtyRun

    run_dir = tmp_path / "run"
    run = PtyRun(["run", "synthetic", "--model", "mlp", "--synthetic-shape", "1x8x8", "--synthetic-train", "256",
                  "--synthetic-val", "64", "--epochs", "1", "--run-dir", str(run_dir)], cwd=tmp_path,
                 env={"OMP_NUM_THREADS": "1"})
    try:
        end = time.monotonic() + 90
        while not (run_dir / "report.json").exists() and time.monotonic() < end and run.proc.poll() is None:
            time.sleep(0.1)
        run.wait_for(b"FINISHED", timeout=30)
        time.sleep(1.0)  # the report is on screen
        assert run.proc.poll() is None
        run.close_terminal()  # the SSH connection drops while the user reads the report
        code = run.wait(timeout=30)
    finally:
        run.kill()
    assert code == 0


def test_the_run_log_grows_by_a_bounded_amount_per_hour_of_one_long_epoch(tmp_path):
    """An hour of one epoch at the headless progress rate (4 a second) and a system sample every
    2 seconds: the first minutes of progress are all kept, then one line per interval."""
    from tui_trainer import events as ev, runlog

    log = runlog.RunLog(tmp_path)
    t0 = 1_800_000_000.0
    log.emit(ev.EpochStarted(epoch=1, num_epochs=1, steps=10**7, t=t0))
    for i in range(4 * 3600):
        t = t0 + i / 4
        log.emit(ev.StepProgress(epoch=1, step=i, steps=10**7, samples=32 * i, loss=1.0, acc=50.0, epoch_loss=1.0,
                                 epoch_acc=50.0, lr=1e-3, samples_per_sec=1234.5, elapsed=t - t0, t=t))
        if i % 8 == 0:
            log.emit(ev.SystemSample(cpu_percent=50.0, ram_used=2**33, ram_total=2**34, process_rss=2**30, t=t))
    log.close()
    size = (tmp_path / "events.jsonl").stat().st_size
    assert size < 500_000, f"{size / 1e6:.1f} MB in an hour"
    steps = [e for e in ev.read_events(tmp_path / "events.jsonl") if isinstance(e, ev.StepProgress)]
    assert [e.step for e in steps[:240]] == list(range(240))  # the first minute, every progress line
    assert steps[-1].t >= t0 + 3600 - 10  # and the epoch's progress to its end
