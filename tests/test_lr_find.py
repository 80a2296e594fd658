"""The LR range test: the engine's sweep, `tui-trainer lr-find`, and `run --lr find`."""

from __future__ import annotations

import json
import math

import pytest

from tui_trainer.engine.lr_finder import exponential_lr, smooth, suggestions


# ----------------------------------------------------------------------------- the sweep
def _blobs_setup(blobs, optimizer_cls, lr=0.1):
    import torch

    from tui_trainer.data.loader import TensorLoader

    torch.manual_seed(0)
    x, y = blobs(n=256, features=8, classes=3)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    optimizer = optimizer_cls(model.parameters(), lr=lr)
    loader = TensorLoader(x, y, 32, shuffle=True, seed=3)
    return model, optimizer, loader, torch.nn.CrossEntropyLoss()


def test_the_optimizer_steps_with_an_exponentially_growing_lr(blobs, recording_sgd, one_torch_thread):
    from tui_trainer.engine.lr_finder import range_test

    model, optimizer, loader, criterion = _blobs_setup(blobs, recording_sgd)
    result = range_test(model, optimizer, criterion, loader, "cpu", lr_min=1e-5, lr_max=1e-1, steps=20)
    seen = [s["lr"] for s in optimizer.seen]
    assert len(seen) == 20 and not result.stopped_early  # more steps than one epoch's 8 batches
    for i, lr in enumerate(seen):
        assert lr == pytest.approx(1e-5 * (1e4 ** (i / 19)), rel=1e-12)
    assert list(result.lrs) == seen and result.lrs[-1] == pytest.approx(1e-1)
    assert list(result.smoothed) == pytest.approx(smooth(result.losses), rel=1e-12)


def test_smoothing_is_bias_corrected():
    assert smooth([2.0] * 10) == pytest.approx([2.0] * 10)  # no pull towards zero at the start
    assert smooth([1.0, 3.0], beta=0.5) == pytest.approx([1.0, (0.5 * 0.5 + 0.5 * 3.0) / (1 - 0.5 ** 2)])


def test_the_sweep_stops_once_the_smoothed_loss_passes_4x_its_minimum(blobs, one_torch_thread):
    import torch

    from tui_trainer.engine.lr_finder import range_test

    model, optimizer, loader, criterion = _blobs_setup(blobs, torch.optim.SGD)
    result = range_test(model, optimizer, criterion, loader, "cpu", lr_min=1e-3, lr_max=1e4, steps=200)
    assert result.stopped_early and len(result.lrs) < 200
    lowest = min(result.smoothed)
    assert result.smoothed[-1] > 4 * lowest or not math.isfinite(result.losses[-1])
    assert all(s <= 4 * min(result.smoothed[: i + 1]) for i, s in enumerate(result.smoothed[:-1]))


def test_model_optimizer_loader_and_random_state_are_put_back(blobs, one_torch_thread):
    """Training after a sweep is exactly training without one."""
    import torch

    from tui_trainer.engine.lr_finder import range_test

    def train_an_epoch(model, optimizer, loader, criterion):
        for x, y in loader:
            loss = criterion(model(torch.nn.functional.dropout(x, 0.1)), y)  # uses the global RNG too
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
        return [p.detach().clone() for p in model.parameters()]

    plain = train_an_epoch(*_blobs_setup(blobs, torch.optim.AdamW, lr=1e-2))
    model, optimizer, loader, criterion = _blobs_setup(blobs, torch.optim.AdamW, lr=1e-2)
    range_test(model, optimizer, criterion, loader, "cpu", lr_min=1e-4, lr_max=1.0, steps=15)
    assert optimizer.param_groups[0]["lr"] == 1e-2 and not optimizer.state
    after = train_an_epoch(model, optimizer, loader, criterion)
    assert all(torch.equal(a, b) for a, b in zip(plain, after))


def test_suggestions_on_a_known_curve():
    """A loss that falls fastest at 1e-3 (per decade), bottoms out, then climbs."""
    lr_at = exponential_lr(1e-6, 1.0, 100)
    lrs = [lr_at(i) for i in range(100)]
    curve = [2.0 - 1.5 / (1 + math.exp(-3 * (math.log10(lr) + 3))) + max(0.0, math.log10(lr) + 1) ** 2
             for lr in lrs]
    steepest, valley = suggestions(lrs, curve)
    assert abs(math.log10(lrs[steepest]) + 3) < 0.1
    # the valley: half way down the longest falling stretch (from the first step kept, the tenth,
    # to the bottom)
    bottom = min(range(100), key=curve.__getitem__)
    assert bottom > 80 and abs(valley - (10 + bottom) / 2) <= 2


# ----------------------------------------------------------------------------- the command line
@pytest.mark.parametrize("args, expected", [
    (["--lr-min", "1", "--lr-max", "0.1"], "--lr-min (1) must be below --lr-max (0.1)"),
    (["--lr-min", "0.01", "--lr-max", "0.01"], "must be below --lr-max"),
    (["--lr-min", "0"], "--lr-min must be a positive number"),
    (["--lr-max", "-1"], "--lr-max must be a positive number"),
    (["--lr-max", "inf"], "--lr-max must be a positive number"),
    (["--steps", "1"], "--steps must be an integer from 5"),
])
def test_a_bad_range_is_one_line_exit_2_and_nothing_written(cli, tmp_path, monkeypatch, args, expected):
    monkeypatch.chdir(tmp_path)
    result = cli("lr-find", "digits", "--headless", *args)
    lines = result.err.splitlines()
    assert result.code == 2 and len(lines) == 1 and expected in lines[0], result.err
    assert list(tmp_path.iterdir()) == []


def test_lr_accepts_a_number_or_find_only(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = cli("run", "digits", "--lr", "fast", "--headless")
    assert result.code == 2 and "argument --lr: invalid float value: 'fast' (a learning rate, or `find`)" in result.err
    assert len(result.err.splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_lr_find_headless_prints_the_table_and_writes_only_lr_find_json(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = cli("lr-find", "digits", "--threads", "1", "--headless", "--steps", "60")
    assert result.code == 0, result.err
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert run_dir.name.startswith("digits-simplecnn-lr-find-")
    assert [p.name for p in run_dir.iterdir()] == ["lr_find.json"]
    record = json.loads((run_dir / "lr_find.json").read_text())
    assert record["steps"] == 60 and len(record["points"]) == record["steps_done"]
    lr = record["suggested_lr"]
    assert f"suggested lr {lr:.2e} ({record['suggested_by']}" in result.out
    assert "  step         lr       loss   smoothed" in result.out
    assert f"train with it: tui-trainer run digits --lr {lr:.3g}" in result.out


@pytest.fixture(scope="module")
def found_run(tmp_path_factory):
    """`run digits --lr find`, 3 epochs on one thread."""
    import contextlib
    import io

    from tui_trainer.cli import main

    run_dir = tmp_path_factory.mktemp("lrfind") / "run"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["run", "digits", "--lr", "find", "--epochs", "3", "--threads", "1", "--headless",
                     "--run-dir", str(run_dir)])
    assert code == 0
    return run_dir, out.getvalue()


def test_run_with_lr_find_trains_with_the_suggestion_and_logs_it(found_run):
    run_dir, out = found_run
    record = json.loads((run_dir / "lr_find.json").read_text())
    config = json.loads((run_dir / "config.json").read_text())
    lr = record["suggested_lr"]
    assert config["lr"] == lr and "lr_find" not in config["extra"]  # a resume trains with it, no second sweep
    found = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()
             if '"event":"LrFound"' in line]
    assert len(found) == 1 and found[0]["lr"] == lr
    assert f"training with lr {lr:.2e}" in out and f"AdamW lr {lr:.2e}" in out
    from tui_trainer.event_io import read_event_log
    from tui_trainer.state import replay

    logged = [line.text for line in replay(read_event_log(run_dir / "events.jsonl")[0]).log]
    assert any(f"training with lr {lr:.2e}" in text for text in logged)  # the console's events panel too
    # the suggestion trains digits well, and lies within a decade of the recipe's 1e-3
    report = json.loads((run_dir / "report.json").read_text())
    assert report["accuracy"] >= 0.95
    assert 1e-4 <= lr <= 1e-2


def test_run_with_lr_find_trains_exactly_as_run_with_that_lr(found_run, tmp_path):
    """The sweep's parts are put back: the same run with --lr set gives the same numbers."""
    import contextlib
    import io

    from tui_trainer.cli import main

    run_dir, _ = found_run
    lr = json.loads((run_dir / "config.json").read_text())["lr"]
    with contextlib.redirect_stdout(io.StringIO()):
        code = main(["run", "digits", "--lr", repr(lr), "--epochs", "3", "--threads", "1", "--headless",
                     "--run-dir", str(tmp_path / "plain")])
    assert code == 0

    def ends(folder):
        keys = ("train_loss", "train_acc", "val_loss", "val_acc", "lr")
        return [tuple(e[k] for k in keys) for e in map(json.loads, (folder / "events.jsonl").read_text().splitlines())
                if e["event"] == "EpochEnd"]

    assert ends(run_dir) == ends(tmp_path / "plain") and len(ends(run_dir)) == 3


def test_enter_in_the_console_trains_with_the_lr_under_the_cursor(cli, tmp_path, monkeypatch):
    """The command's console path: the sweep runs through the app, lr_find.json is written, and
    the LR the app returns starts a normal run (here the app's keys are stood in for: it returns
    the LR one step right of the suggestion)."""
    from tui_trainer import cli as cli_module
    from tui_trainer.frontends.tui import lr_find_app

    asked = []
    monkeypatch.setattr(cli_module, "wants_tui", lambda args: not asked.append(1) and len(asked) == 1)

    def run(app):
        app.result = app.job(lambda *a: None, lambda: False)
        return app.result.lrs[app.result.suggestion + 1]

    monkeypatch.setattr(lr_find_app.LrFindApp, "run", run)
    monkeypatch.chdir(tmp_path)
    result = cli("lr-find", "digits", "--threads", "1", "--steps", "40", "--epochs", "1", "--limit-batches", "3")
    assert result.code == 0, result.err
    sweep_dir, = (tmp_path / "runs").glob("*-lr-find-*")
    record = json.loads((sweep_dir / "lr_find.json").read_text())
    picked = record["points"][record[record["suggested_by"]]["step"]]["lr"]  # the step after the suggestion
    (run_dir,) = [p for p in (tmp_path / "runs").iterdir() if p != sweep_dir]
    assert json.loads((run_dir / "config.json").read_text())["lr"] == picked
    assert (run_dir / "report.json").exists() and not (run_dir / "lr_find.json").exists()


def test_a_stop_during_the_sweep_ends_the_run_before_training(tmp_path, one_torch_thread):
    """A key or signal during `run --lr find`'s sweep ends the sweep at its next step; the run
    then stops at its first boundary, having chosen no LR and trained nothing."""
    from tui_trainer import events as ev, runlog
    from tui_trainer.config import make_config
    from tui_trainer.engine.control import Control
    from tui_trainer.lr_find_run import request_find
    from tui_trainer.runner import execute

    config = request_find(make_config("digits", epochs=2, threads=1, run_dir=str(tmp_path)))
    runlog.write_json_atomic(tmp_path / "config.json", config.to_dict())
    control, seen = Control(), []

    class StopWhenTheSweepStarts:
        def emit(self, event):
            seen.append(event)
            if isinstance(event, ev.Preparing) and event.stage == "finding the learning rate":
                control.request_stop("user")

    outcome = execute(config, tmp_path, [StopWhenTheSweepStarts()], control, system_interval=None)
    assert outcome.status == "stopped"
    names = [type(e).__name__ for e in seen]
    assert "LrFound" not in names and "EpochEnd" not in names and "RunFinished" in names
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json"]


@pytest.mark.parametrize("args, expected", [
    (["--detach"], "--detach applies to run and resume, not to lr-find"),
    (["--headless", "--notify", "http://127.0.0.1:9/hook"], "--notify applies to a training run"),
    (["--headless", "--tensorboard"], "--tensorboard applies to a training run"),
    (["--log-format", "json"], "--log-format json: lr-find prints its sweep as a table"),
], ids=["detach", "notify", "tensorboard", "json-log"])
def test_run_only_output_flags_are_refused_by_a_headless_lr_find(cli, tmp_path, monkeypatch, args, expected):
    """Headless, lr-find trains nothing: --notify and --tensorboard were dropped without a word,
    --log-format json still printed text, and --detach ran the sweep with its output going
    nowhere (the command printed nothing at all)."""
    monkeypatch.chdir(tmp_path)
    result = cli("lr-find", "digits", "--threads", "1", "--steps", "5", *args)
    lines = result.err.splitlines()
    assert result.code == 2 and len(lines) == 1 and expected in lines[0], result.err
    assert result.out == "" and list(tmp_path.iterdir()) == []
