"""What `s` (stop early) means: the run is done - evaluated on its best epoch, reported - and
`tui-trainer resume` refuses it in one line, changing nothing; `resume --epochs N` trains it on
to N epochs, as it does for a finished run. A run cut short by a signal or a quit still resumes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from _reliability import cli_main, of, one_thread, snapshot, tiny_run_args
from tui_trainer import events as ev


@pytest.fixture(autouse=True)
def _single_thread():
    with one_thread():
        yield


def _run_and_stop(run_dir: Path, epochs: int, stop_after: int, reason: str) -> str:
    """`tui-trainer run` as the CLI starts it, stopped when epoch `stop_after` ends the way the
    stop key ("user") or Ctrl-C ("signal") does."""
    from tui_trainer import cli, runlog
    from tui_trainer.engine.control import Control
    from tui_trainer.runner import execute

    config = cli.config_from_args(cli.build_parser().parse_args(tiny_run_args(run_dir, epochs)))
    run_dir.mkdir()
    runlog.write_json_atomic(run_dir / runlog.CONFIG_NAME, config.to_dict())
    control = Control()

    class StopKey:
        def emit(self, e):
            if isinstance(e, ev.EpochEnd) and e.epoch == stop_after:
                control.request_stop(reason)

    log = runlog.RunLog(run_dir)
    try:
        return execute(config, run_dir, [log, StopKey()], control, system_interval=None).status
    finally:
        log.close()


def test_a_run_stopped_with_s_is_done_and_resume_epochs_trains_it_on(tmp_path):
    run_dir = tmp_path / "run"
    assert _run_and_stop(run_dir, 4, stop_after=2, reason="user") == "stopped"
    assert json.loads((run_dir / "report.json").read_text())["status"] == "stopped"

    before = snapshot(run_dir)
    code, out, err = cli_main(["resume", run_dir, "--headless"])
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert "stopped with `s` after epoch 2, so it counts as done; pass --epochs N" in err
    code, out, err = cli_main(["resume", run_dir, "--headless", "--epochs", "2"])
    assert code == 2 and "pass --epochs N with N > 2" in err
    assert snapshot(run_dir) == before  # the refusals changed nothing

    code, out, err = cli_main(["resume", run_dir, "--headless", "--epochs", "4"])
    assert code == 0, out + err
    assert "resuming after epoch 2" in out
    assert [e.epoch for e in of(run_dir, "EpochEnd")] == [1, 2, 3, 4]
    report = json.loads((run_dir / "report.json").read_text())
    assert (report["status"], report["epochs_completed"]) == ("finished", 4)


def test_a_run_interrupted_by_ctrl_c_still_resumes_without_epochs(tmp_path):
    run_dir = tmp_path / "run"
    assert _run_and_stop(run_dir, 3, stop_after=1, reason="signal") == "interrupted"
    code, out, err = cli_main(["resume", run_dir, "--headless"])
    assert code == 0, out + err
    assert [e.epoch for e in of(run_dir, "EpochEnd")] == [1, 2, 3]
