"""A resumed run shows the whole run: the RunStarted of a resume carries what the epochs before
it left (per-epoch losses, accuracies and LRs, the best epoch, LR changes, the early-stopping
count), so the console of the resuming process, its report and a replay of the whole
events.jsonl all show every epoch, once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from _reliability import cli_main, events, of, one_thread, tiny_run_args
from tui_trainer import events as ev
from tui_trainer.state import replay


@pytest.fixture(autouse=True)
def _single_thread():
    with one_thread():
        yield


def _run_until_terminated(run_dir: Path, epochs: int, stop_after: int) -> None:
    """`tui-trainer run` as the CLI starts it, with the LR halved by hand after epoch 1 and a
    SIGTERM's stop request (reason "term", what StopSignals asks for) when epoch `stop_after` ends."""
    from tui_trainer import cli, runlog
    from tui_trainer.engine.control import Control
    from tui_trainer.runner import execute

    config = cli.config_from_args(cli.build_parser().parse_args(tiny_run_args(run_dir, epochs, "--patience", "5")))
    run_dir.mkdir()
    runlog.write_json_atomic(run_dir / runlog.CONFIG_NAME, config.to_dict())
    control = Control()

    class Driver:
        def emit(self, e):
            if isinstance(e, ev.EpochEnd) and e.epoch == 1:
                control.scale_lr(0.5)
            if isinstance(e, ev.EpochEnd) and e.epoch == stop_after:
                control.request_stop("term")

    log = runlog.RunLog(run_dir)
    try:
        outcome = execute(config, run_dir, [log, Driver()], control, system_interval=None)
    finally:
        log.close()
    assert outcome.status == "interrupted"


@pytest.fixture(scope="module")
def resumed_run(tmp_path_factory):
    """Stopped after epoch 2 of 4, resumed by `tui-trainer resume` to the end. Returns the run
    directory and the events the resuming process emitted (what its console was fed)."""
    run_dir = tmp_path_factory.mktemp("resumed") / "run"
    with one_thread():
        _run_until_terminated(run_dir, 4, stop_after=2)
        before = len(events(run_dir))
        code, out, err = cli_main(["resume", run_dir, "--headless"])
    assert code == 0, out + err
    return run_dir, events(run_dir)[before:], out


def test_the_last_line_of_a_resumed_run_says_whose_time_it_gives(resumed_run):
    """4 epochs done, but the time is the resuming process's (epochs 3 and 4): it must not read as
    the time all 4 epochs took."""
    run_dir, resumed_part, out = resumed_run
    end = next(e for e in resumed_part if isinstance(e, ev.RunFinished))
    assert end.start_epoch == 2
    last = [line for line in out.splitlines() if "run finished after" in line]
    assert len(last) == 1 and "run finished after 4 epochs (" in last[0], out
    assert " since it resumed after epoch 2)" in last[0], last[0]


def test_the_resumed_processs_console_shows_every_epoch(resumed_run):
    run_dir, resumed_part, _ = resumed_run
    report = json.loads((run_dir / "report.json").read_text())
    state = replay(resumed_part)
    assert state.epochs_done == (1, 2, 3, 4)
    history = report["history"]
    assert list(state.val_loss) == history["val_loss"] and list(state.val_acc) == history["val_acc"]
    assert list(state.train_loss) == history["train_loss"] and list(state.train_acc) == history["train_acc"]
    assert list(state.epoch_lrs) == history["lr"]  # the LR "actual" line starts at epoch 1
    assert state.best_epoch == report["best_epoch"]
    # the manual change made before the stop (after epoch 1) is still marked on the LR chart
    assert [(pos, reason) for pos, _, reason in state.lr_changes] == [(1.0, "manual")]
    assert state.status == "FINISHED" and state.report is not None


def test_a_replay_of_the_whole_log_shows_each_epoch_once(resumed_run):
    run_dir, resumed_part, _ = resumed_run
    whole = replay(events(run_dir))
    only_resumed = replay(resumed_part)
    for field in ("epochs_done", "train_loss", "train_acc", "val_loss", "val_acc", "epoch_lrs", "best_epoch"):
        assert getattr(whole, field) == getattr(only_resumed, field), field
    (first_start, second_start) = of(run_dir, "RunStarted")
    assert first_start.history_val_loss == () and len(second_start.history_val_loss) == 2


def test_the_early_stopping_panel_continues_from_the_checkpoint(resumed_run):
    run_dir, resumed_part, _ = resumed_run
    start = next(e for e in resumed_part if isinstance(e, ev.RunStarted))
    before = [u for u in of(run_dir, "EarlyStopUpdate") if u.epoch <= 2][-1]
    state = replay(resumed_part[:resumed_part.index(start) + 1])  # right after the resumed RunStarted
    assert state.early_stop is not None
    assert (state.early_stop.counter, state.early_stop.best_epoch) == (before.counter, before.best_epoch)
    assert state.early_stop.best_score == pytest.approx(before.best_score)


def _started(**fields) -> ev.RunStarted:
    base = dict(run_name="r", run_dir="r", dataset="d", model="m", num_params=1, device="cpu", device_name="cpu",
                precision="fp32", num_epochs=5, start_epoch=0, steps_per_epoch=10, batch_size=1, accum_steps=1,
                train_size=10, val_size=10, num_classes=2, class_names=("a", "b"), optimizer="SGD", lr=0.1,
                scheduler="none", t=0.0)
    return ev.RunStarted(**{**base, **fields})


def _epoch(n: int, val_time: float = 1.0) -> ev.EpochEnd:
    return ev.EpochEnd(epoch=n, num_epochs=5, train_loss=1.0 / n, train_acc=50.0, val_loss=1.0 / n, val_acc=50.0,
                       lr=0.1, epoch_time=2.0, train_time=1.0, val_time=val_time, samples_per_sec=10.0,
                       is_best=True, best_epoch=n, best_val_acc=50.0, monitor="val_loss", t=float(n))


def test_a_resume_drops_an_epoch_its_checkpoint_does_not_have():
    """Epoch 3 ended (and was logged) but the process died before last.pth was written: the
    resume continues from epoch 2, and epoch 3 is not shown twice."""
    logged = [_started(), _epoch(1), _epoch(2), _epoch(3)]
    resumed = _started(resumed=True, start_epoch=2, history_train_loss=(1.0, 0.5), history_train_acc=(50.0, 50.0),
                       history_val_loss=(1.0, 0.5), history_val_acc=(50.0, 50.0), history_lr=(0.1, 0.1),
                       best_epoch=2, best_val_acc=50.0, best_val_loss=0.5, t=10.0)
    state = replay([*logged, resumed, _epoch(3), _epoch(4)])
    assert state.epochs_done == (1, 2, 3, 4) and state.val_loss == (1.0, 0.5, 1 / 3, 0.25)


def test_the_eta_counts_validation_time_of_the_epochs_timed_in_this_process():
    resumed = _started(resumed=True, start_epoch=3, history_train_loss=(1.0,) * 3, history_train_acc=(50.0,) * 3,
                       history_val_loss=(1.0,) * 3, history_val_acc=(50.0,) * 3, history_lr=(0.1,) * 3)
    progress = ev.StepProgress(epoch=5, step=0, steps=10, samples=0, loss=1.0, acc=50.0, epoch_loss=1.0,
                               epoch_acc=50.0, lr=0.1, samples_per_sec=1e9, elapsed=1.0, t=5.0)
    state = replay([resumed, _epoch(4, val_time=8.0), progress])
    assert state.eta == pytest.approx(8.0, rel=1e-3)  # one more validation of 8 s, not 8 s / 4 epochs


def test_a_log_from_before_runstarted_carried_history_keeps_the_replayed_epochs():
    legacy_resume = _started(resumed=True, start_epoch=2, t=10.0)
    state = replay([_started(), _epoch(1), _epoch(2), legacy_resume, _epoch(3)])
    assert state.epochs_done == (1, 2, 3)
