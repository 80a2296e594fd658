"""Exact resume: a run stopped and resumed in a new process ends bit-identical to one that ran
straight through, and a resume that cannot be exact is refused with one clear line."""

from __future__ import annotations

import json
import random
import subprocess
from pathlib import Path

import pytest

from _reliability import (TINY, assert_same_tensors, cli_main, epoch_metrics, kill_group, load, of, one_thread,
                          snapshot, spawn, tiny_run_args)

EPOCHS = 4


@pytest.fixture(autouse=True)
def _single_thread():
    with one_thread():
        yield


def _start(run_dir: Path, stop_at: tuple[int, int] | None, lr_change_after: int = 1):
    """Run the tiny recipe in this process the way `tui-trainer run` does (config.json, events.jsonl,
    the lock), halving the LR by hand after epoch `lr_change_after`, and asking for a stop at
    (epoch, step) - step 0 meaning the end of that epoch, step -1 its validation - the way Ctrl-C
    does (a run stopped with the stop key counts as done; see test_stop_key.py)."""
    from tui_trainer import cli, events as ev, runlog
    from tui_trainer.engine.control import Control
    from tui_trainer.runner import execute

    args = cli.build_parser().parse_args(tiny_run_args(run_dir, EPOCHS))
    config = cli.config_from_args(args)
    run_dir.mkdir()
    lock = runlog.RunDirLock(run_dir).acquire()
    runlog.write_json_atomic(run_dir / runlog.CONFIG_NAME, config.to_dict())
    control = Control()

    class Driver:
        def emit(self, e):
            if isinstance(e, ev.EpochEnd) and e.epoch == lr_change_after:
                control.scale_lr(0.5)
            if stop_at is None:
                return
            epoch, step = stop_at
            if step == 0 and isinstance(e, ev.EpochEnd) and e.epoch == epoch:
                control.request_stop("signal")
            if step > 0 and isinstance(e, ev.StepProgress) and e.epoch == epoch and e.step >= step:
                control.request_stop("signal")
            if step < 0 and isinstance(e, ev.ValidationStarted) and e.epoch == epoch:
                control.request_stop("signal")

    log = runlog.RunLog(run_dir)
    try:
        outcome = execute(config, run_dir, [log, Driver()], control, system_interval=None,
                          trainer_options={"progress_interval": 0.0})
    finally:
        log.close()
        lock.release()
    return outcome


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The same recipe run straight through, once for the module."""
    run_dir = tmp_path_factory.mktemp("reference") / "run"
    with one_thread():
        outcome = _start(run_dir, stop_at=None)
    assert outcome.status == "finished"
    return run_dir


STOPS = {"after-epoch-2": (2, 0), "mid-epoch-3": (3, 6), "during-validation-3": (3, -1)}


@pytest.fixture(scope="module")
def resumed(tmp_path_factory):
    """Each run of STOPS stopped in this process, then resumed to the end by `tui-trainer resume`
    in a new process (the three children run side by side). Returns {name: (run_dir, saved
    checkpoint at the stop, epochs logged before the resume, completed child)}."""
    runs = {}
    with one_thread():
        for name, stop_at in STOPS.items():
            run_dir = tmp_path_factory.mktemp(name) / "run"
            outcome = _start(run_dir, stop_at=stop_at)
            assert outcome.status == "interrupted", outcome
            runs[name] = (run_dir, load(run_dir / "last.pth"), len(epoch_metrics(run_dir)))
    children = {name: spawn(["resume", run_dir, "--headless"]) for name, (run_dir, _, _) in runs.items()}
    results = {}
    for name, proc in children.items():
        try:
            out, err = proc.communicate(timeout=180)
        finally:
            kill_group(proc)
        results[name] = (*runs[name], subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    return results


@pytest.mark.parametrize("name", STOPS)
def test_resume_in_a_new_process_is_bit_identical(reference, resumed, name):
    run_dir, saved, logged_before, done = resumed[name]
    epoch, step = STOPS[name]
    if step > 0:
        assert saved["epoch"] == epoch - 1 and saved["step_in_epoch"] >= step  # really mid-epoch
    elif step < 0:  # every training step of the epoch done, its validation not
        assert saved["epoch"] == epoch - 1 and saved["step_in_epoch"] == 512 // 32
    else:
        assert saved["epoch"] == epoch and saved["step_in_epoch"] == 0
    assert logged_before == (epoch if step == 0 else epoch - 1)

    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert f"resuming after epoch {saved['epoch']}" in done.stdout

    # Identical metrics in events.jsonl: the stopped part and the resumed part together equal the
    # uninterrupted run, epoch by epoch, to the last bit.
    assert epoch_metrics(run_dir) == epoch_metrics(reference)
    assert [(e.epoch, e.counter, e.best_score) for e in of(run_dir, "EarlyStopUpdate")] == \
        [(e.epoch, e.counter, e.best_score) for e in of(reference, "EarlyStopUpdate")]
    # Bit-identical weights, optimizer and scheduler state at the end, and the same best model.
    mine, theirs = load(run_dir / "last.pth"), load(reference / "last.pth")
    assert_same_tensors(mine["model_state_dict"], theirs["model_state_dict"], "final weights")
    assert_same_tensors(load(run_dir / "best_model.pth")["model_state_dict"],
                        load(reference / "best_model.pth")["model_state_dict"], "best weights")
    assert mine["scheduler_state_dict"] == theirs["scheduler_state_dict"]
    for a, b in zip(mine["optimizer_state_dict"]["state"].values(), theirs["optimizer_state_dict"]["state"].values()):
        assert_same_tensors(a, b, "optimizer state")
    # The manual LR change made before the stop survived it.
    assert [c["epoch"] for c in mine["manual_lr_changes"]] == [2]
    assert mine["history"] == theirs["history"]
    report, expected = (json.loads((d / "report.json").read_text()) for d in (run_dir, reference))
    for key in ("accuracy", "loss", "f1", "confusion_matrix", "best_epoch", "history"):
        assert report[key] == expected[key], key


def test_checkpoints_carry_every_random_state_and_restore_it(tmp_path):
    """Python's, NumPy's and torch's generators go into the checkpoint as plain data (loadable with
    weights_only=True) and come back exactly."""
    import numpy as np
    import torch

    from tui_trainer.engine import checkpoint as ckpt

    random.seed(1); np.random.seed(2); torch.manual_seed(3)
    np.random.randn()  # leaves a cached Gaussian in NumPy's state, which must survive too
    ckpt.atomic_save({"rng": ckpt.capture_rng()}, tmp_path / "rng.pth")
    expected = (random.random(), np.random.randn(3).tolist(), torch.rand(3).tolist())
    random.seed(9); np.random.seed(9); torch.manual_seed(9)
    ckpt.restore_rng(ckpt.safe_load(tmp_path / "rng.pth")["rng"])
    assert (random.random(), np.random.randn(3).tolist(), torch.rand(3).tolist()) == expected


def test_grad_scaler_and_early_stopping_state_survive_a_resume(tmp_path):
    """fp16 (GradScaler) and early stopping: their state is in the checkpoint and is restored."""
    code, out, err = cli_main(tiny_run_args(tmp_path / "run", 2, "--amp", "fp16", "--patience", "5"))
    assert code == 0, out + err
    saved = load(tmp_path / "run" / "last.pth")
    assert saved["scaler_state_dict"]["scale"] > 0
    assert saved["early_stopping"]["calls"] == 2

    from tui_trainer.config import RunConfig
    from tui_trainer.runner import build_trainer

    config = RunConfig.from_dict(json.loads((tmp_path / "run" / "config.json").read_text()))
    trainer, _, early = build_trainer(config, tmp_path / "run", [], None, lambda e: None)
    trainer.load_state_dict(saved)
    assert trainer.scaler.state_dict() == saved["scaler_state_dict"]
    assert (early.best_loss, early.counter, early.best_epoch) == \
        (saved["early_stopping"]["best_loss"], saved["early_stopping"]["counter"], saved["early_stopping"]["best_epoch"])
    assert trainer.epoch == 2 and trainer.best_epoch == saved["best_epoch"]


@pytest.mark.parametrize("draws", [0, 1, 3])
def test_pythons_generator_starts_training_from_the_seed_whatever_building_drew(tmp_path, monkeypatch, draws):
    """A module imported while the data is built may draw from Python's generator (rich.style does
    on import, and the console has imported it before the plain log has): training must start
    from the same state of that generator either way."""
    from tui_trainer import run_parts
    from tui_trainer.config import make_config
    from tui_trainer.runner import build_trainer

    real = run_parts.BuiltinParts.build_data

    def build_data(self, *args, **kwargs):
        for _ in range(draws):
            random.getrandbits(24)  # what an import with that side effect does
        return real(self, *args, **kwargs)

    monkeypatch.setattr(run_parts.BuiltinParts, "build_data", build_data)
    build_trainer(make_config("digits", model="mlp", seed=5, epochs=1), tmp_path / "run", [], None, lambda e: None)
    assert random.random() == random.Random(5).random()  # the seed's own first number, however many were drawn


def test_resume_with_more_epochs_continues_and_without_refuses_a_finished_run(tmp_path):
    run_dir = tmp_path / "run"
    assert cli_main(tiny_run_args(run_dir, 2))[0] == 0
    before = snapshot(run_dir)
    code, out, err = cli_main(["resume", run_dir, "--headless"])
    assert code == 2 and out == ""
    assert err.strip() == "tui-trainer: error: the run already completed 2 epochs; pass --epochs N with N > 2 " \
                          "to train further"
    assert snapshot(run_dir) == before

    code, out, err = cli_main(["resume", run_dir, "--headless", "--epochs", "3"])
    assert code == 0, out + err
    assert [m[0] for m in epoch_metrics(run_dir)] == [1, 2, 3]
    assert json.loads((run_dir / "config.json").read_text())["epochs"] == 3
    assert load(run_dir / "last.pth")["epoch"] == 3


def test_resume_of_a_run_killed_before_its_report_writes_the_report(tmp_path):
    run_dir = tmp_path / "run"
    assert cli_main(tiny_run_args(run_dir, 2))[0] == 0
    (run_dir / "report.json").unlink()  # as if killed during the final evaluation
    code, out, err = cli_main(["resume", run_dir, "--headless"])
    assert code == 0, out + err
    report = json.loads((run_dir / "report.json").read_text())
    assert report["status"] == "finished" and report["epochs_completed"] == 2


def _edit_config(run_dir: Path, **changes) -> None:
    path = run_dir / "config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


@pytest.mark.parametrize("changes, message", [
    ({"model": "simplecnn"}, "the checkpoint was trained with model='mlp', but the run's config says 'simplecnn'"),
    ({"synthetic_classes": 5}, "the checkpoint was trained with synthetic_classes=10, but the run's config says 5"),
    ({"batch_size": 64}, "the checkpoint was trained with batch_size=32, but the run's config says 64"),
], ids=["model", "class-count", "batch-size"])
def test_resume_refuses_an_incompatible_config(tmp_path, changes, message):
    run_dir = tmp_path / "run"
    assert cli_main(tiny_run_args(run_dir, 1))[0] == 0
    _edit_config(run_dir, epochs=3, **changes)
    before = snapshot(run_dir)
    code, out, err = cli_main(["resume", run_dir, "--headless"])
    assert (code, out) == (2, "")
    assert err.startswith(f"tui-trainer: error: {message}") and err.count("\n") == 1, err
    assert snapshot(run_dir) == before


def test_resume_refuses_a_checkpoint_that_does_not_fit_the_model(tmp_path, monkeypatch):
    """The model's code changed since the checkpoint was written (same name, other layers)."""
    run_dir = tmp_path / "run"
    assert cli_main(tiny_run_args(run_dir, 1))[0] == 0
    _edit_config(run_dir, epochs=2)
    from tui_trainer import models
    from tui_trainer.models.mlp import MLP

    monkeypatch.setattr(models, "build_model",
                        lambda name, shape, classes: MLP(192, classes, hidden=(64,)))
    code, out, err = cli_main(["resume", run_dir, "--headless"])
    assert code == 2, out + err
    assert "error: last.pth does not fit the model (" in err and "Traceback" not in err + out
    assert len(err.strip().splitlines()) == 1
    assert "error:" not in out  # one line, on stderr only


def test_tiny_recipe_really_augments():
    """The resume tests above mean something only if the recipe draws random augmentation."""
    from tui_trainer.cli import build_parser, config_from_args
    from tui_trainer.data import build_data

    config = config_from_args(build_parser().parse_args(["run", "synthetic", *TINY]))
    transform = build_data(config, "cpu").train_loader.transform
    assert transform.crop_padding > 0 and transform.flip
