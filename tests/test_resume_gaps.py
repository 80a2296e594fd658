"""Exact resume, the corners: a run stopped mid-epoch and resumed must end exactly like the same
run done in one go - its last.pth when early stopping ends it in that very epoch, its LR history
with a per-step (onecycle) schedule - and a kill between two of an epoch's checkpoint writes must
leave nothing missing: the resume continues from the newest complete state and writes the
periodic checkpoint the kill left out."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from _reliability import assert_same_tensors, cli_main, epoch_metrics, load, of, one_thread, tiny_run_args


@pytest.fixture(autouse=True)
def _single_thread():
    with one_thread():
        yield


def _run_until(run_dir: Path, argv: list[str], stop=None, interrupt=None):
    """`tui-trainer run` in this process (config.json, events.jsonl, the lock, as the CLI does),
    asking for a stop the way Ctrl-C does (a run stopped with the stop key counts as done) when `stop(event)` says so, or raising
    KeyboardInterrupt as a file's save begins when `interrupt(path)` says so (a kill at that point:
    that file and nothing after it is written)."""
    from tui_trainer import cli, runlog
    from tui_trainer.engine.control import Control
    from tui_trainer.runner import execute

    config = cli.config_from_args(cli.build_parser().parse_args(argv))
    run_dir.mkdir(parents=True)
    lock = runlog.RunDirLock(run_dir).acquire()
    runlog.write_json_atomic(run_dir / runlog.CONFIG_NAME, config.to_dict())
    control = Control()

    class Driver:
        def emit(self, e):
            if stop is not None and stop(e):
                control.request_stop("signal")

    check_run_file = runlog.check_run_file  # every write of a run file starts with it

    def killed_here(path):
        if interrupt is not None and interrupt(Path(path)):
            raise KeyboardInterrupt
        check_run_file(path)

    log = runlog.RunLog(run_dir)
    runlog.check_run_file = killed_here
    try:
        return execute(config, run_dir, [log, Driver()], control, system_interval=None,
                       trainer_options={"progress_interval": 0.0})
    finally:
        runlog.check_run_file = check_run_file
        log.close()
        lock.release()


def _same_run_state(a: dict, b: dict, what: str) -> None:
    assert a["epoch"] == b["epoch"] and a["step_in_epoch"] == b["step_in_epoch"], what
    assert_same_tensors(a["model_state_dict"], b["model_state_dict"], f"{what}: weights")
    for key in ("train_loss", "train_acc", "val_loss", "val_acc", "lr"):
        assert a["history"][key] == b["history"][key], f"{what}: history {key}"


def _mid_epoch(epoch: int, step: int):
    from tui_trainer import events as ev

    return lambda e: isinstance(e, ev.StepProgress) and e.epoch == epoch and e.step >= step


# ----------------------------------------------------------------------------- 9. early stop after a mid-epoch resume
EARLY = ("--patience", "1", "--lr", "0.05")


def test_last_pth_is_the_end_of_the_epoch_early_stopping_ends_even_after_a_mid_epoch_resume(tmp_path):
    reference = tmp_path / "reference"
    code, out, err = cli_main(tiny_run_args(reference, 12, *EARLY))
    assert code == 0, out + err
    (end,) = of(reference, "RunFinished")
    assert end.status == "early_stopped" and end.epochs_completed < 12
    stop_epoch = end.epochs_completed

    run_dir = tmp_path / "stopped"
    outcome = _run_until(run_dir, tiny_run_args(run_dir, 12, *EARLY), stop=_mid_epoch(stop_epoch, 4))
    assert outcome.status == "interrupted"
    assert load(run_dir / "last.pth")["step_in_epoch"] >= 4
    code, out, err = cli_main(["resume", run_dir, "--headless"])
    assert code == 0, out + err
    assert of(run_dir, "RunFinished")[-1].status == "early_stopped"

    mine, theirs = load(run_dir / "last.pth"), load(reference / "last.pth")
    assert theirs["epoch"] == stop_epoch
    _same_run_state(mine, theirs, "last.pth")
    assert_same_tensors(mine["optimizer_state_dict"]["state"][0], theirs["optimizer_state_dict"]["state"][0],
                        "last.pth: optimizer state")


# ----------------------------------------------------------------------------- 10. onecycle history
def test_a_onecycle_epoch_resumed_mid_way_records_the_lr_it_began_with(tmp_path):
    args = ("--scheduler", "onecycle")
    reference = tmp_path / "reference"
    code, out, err = cli_main(tiny_run_args(reference, 4, *args))
    assert code == 0, out + err

    run_dir = tmp_path / "stopped"
    outcome = _run_until(run_dir, tiny_run_args(run_dir, 4, *args), stop=_mid_epoch(3, 5))
    assert outcome.status == "interrupted"
    code, out, err = cli_main(["resume", run_dir, "--headless"])
    assert code == 0, out + err

    def last_record_of_each_epoch(path):
        return {m[0]: m for m in epoch_metrics(path)}

    assert last_record_of_each_epoch(run_dir) == last_record_of_each_epoch(reference)  # lr included
    report, expected = (json.loads((p / "report.json").read_text()) for p in (run_dir, reference))
    assert report["history"] == expected["history"]
    _same_run_state(load(run_dir / "last.pth"), load(reference / "last.pth"), "last.pth")


# ----------------------------------------------------------------------------- 11. a kill between two saves
@pytest.mark.parametrize("killed_after", ["best", "periodic"])
def test_a_kill_between_an_epochs_saves_leaves_no_periodic_checkpoint_missing(tmp_path, killed_after):
    args = ("--checkpoint-every", "1")
    reference = tmp_path / "reference"
    code, out, err = cli_main(tiny_run_args(reference, 4, *args))
    assert code == 0, out + err

    run_dir = tmp_path / "killed"
    # epoch 2 is a new best on this recipe: best_model.pth, then checkpoint_epoch_2.pth, then last.pth;
    # the kill comes as the write after `killed_after`'s begins
    next_write = "checkpoint_epoch_2.pth" if killed_after == "best" else "last.pth"
    writes = []

    def kill(path: Path) -> bool:
        writes.append(path.name)
        return path.name == next_write and "best_model.pth" in writes[writes.index("last.pth"):]

    outcome = _run_until(run_dir, tiny_run_args(run_dir, 4, *args), interrupt=kill)
    assert outcome.status == "interrupted"
    assert load(run_dir / "last.pth")["epoch"] == 1 and load(run_dir / "best_model.pth")["epoch"] == 2
    assert (run_dir / "checkpoint_epoch_2.pth").exists() == (killed_after == "periodic")

    code, out, err = cli_main(["resume", run_dir, "--headless"])
    assert code == 0, out + err
    assert "resuming after epoch 2" in out  # from the newest complete state, not epoch 1's last.pth
    for epoch in range(1, 5):
        _same_run_state(load(run_dir / f"checkpoint_epoch_{epoch}.pth"),
                        load(reference / f"checkpoint_epoch_{epoch}.pth"), f"checkpoint_epoch_{epoch}.pth")
    _same_run_state(load(run_dir / "last.pth"), load(reference / "last.pth"), "last.pth")
    report, expected = (json.loads((p / "report.json").read_text()) for p in (run_dir, reference))
    assert report["history"] == expected["history"]
