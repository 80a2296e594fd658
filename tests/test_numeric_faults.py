"""Numeric faults: a non-finite loss stops the run with the reason (epoch, step), never becomes
"best" and leaves no non-finite checkpoint; `--on-nan skip` skips and counts such batches;
fp16 steps the GradScaler skips are counted and shown, not fatal."""

from __future__ import annotations

import io
import math

import pytest

from _reliability import cli_main, load, of, one_thread, tiny_run_args

STEPS = 12  # 96 samples / batch 8


@pytest.fixture(autouse=True)
def _single_thread():
    with one_thread():
        yield


def _faulty_model_class():
    import torch

    class Faulty(torch.nn.Module):
        """A linear classifier that can be told to go wrong: NaN logits on chosen training
        forward calls (1-based, counted over the run) or while `poison_eval` is set; `unused`
        takes part in no computation, so NaN there leaves the loss finite."""

        def __init__(self, nan_calls=()):
            super().__init__()
            self.linear = torch.nn.Linear(8, 3)
            self.unused = torch.nn.Parameter(torch.zeros(2))
            self.nan_calls = set(nan_calls)
            self.calls = 0
            self.poison_eval = False

        def forward(self, x):
            out = self.linear(x)
            if self.training:
                self.calls += 1
                if self.calls in self.nan_calls:
                    out = out * float("nan")
            elif self.poison_eval:
                out = out * float("nan")
            return out

    return Faulty


def _trainer(tmp_path, model, sinks=(), **options):
    import torch

    from tui_trainer.data.loader import TensorLoader
    from tui_trainer.engine import Trainer

    g = torch.Generator().manual_seed(0)
    centres = torch.randn(3, 8, generator=g) * 3
    y = torch.randint(0, 3, (96,), generator=g)
    x = centres[y] + torch.randn(96, 8, generator=g)
    train = TensorLoader(x, y, 8, shuffle=True, seed=1)
    val = TensorLoader(x[:48], y[:48], 16)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    return Trainer(model, train, val, torch.nn.CrossEntropyLoss(), optimizer, "cpu", tmp_path / "run",
                   sinks=list(sinks), num_classes=3, progress_interval=0.0, **options)


def _all_checkpoints_finite(run_dir) -> list[str]:
    import torch

    names = []
    for path in sorted(run_dir.glob("*.pth")):
        data = load(path)
        for name, value in data["model_state_dict"].items():
            assert torch.isfinite(value).all(), f"{path.name}: {name} is not finite"
        names.append(path.name)
    return names


def test_a_nan_loss_stops_the_run_naming_epoch_and_step(tmp_path):
    from tui_trainer.errors import NonFiniteLossError
    from tui_trainer.events import ListSink

    sink = ListSink()
    trainer = _trainer(tmp_path, _faulty_model_class()(nan_calls={STEPS + 7}), [sink])
    with pytest.raises(NonFiniteLossError):
        trainer.fit(4)
    (failed,) = [e for e in sink.events if type(e).__name__ == "RunFailed"]
    assert (failed.epoch, failed.step) == (2, 7)
    assert failed.error.startswith("non-finite loss at epoch 2, step 7; stopping")
    assert trainer.best_epoch == 1
    assert _all_checkpoints_finite(tmp_path / "run") == ["best_model.pth", "last.pth"]
    assert load(tmp_path / "run" / "last.pth")["epoch"] == 1
    assert load(tmp_path / "run" / "best_model.pth")["best_epoch"] == 1


def test_a_nan_validation_loss_never_becomes_best(tmp_path):
    from tui_trainer import events as ev
    from tui_trainer.errors import NonFiniteLossError

    model = _faulty_model_class()()

    class PoisonEpoch2:
        def emit(self, e):
            if isinstance(e, ev.ValidationStarted):
                model.poison_eval = e.epoch == 2

    sink = ev.ListSink()
    trainer = _trainer(tmp_path, model, [sink, PoisonEpoch2()])
    with pytest.raises(NonFiniteLossError):
        trainer.fit(3)
    (failed,) = sink.of(ev.RunFailed)
    assert failed.error.startswith("non-finite loss at epoch 2 (validation)")
    assert [e.epoch for e in sink.of(ev.EpochEnd)] == [1]
    assert all(e.epoch == 1 for e in sink.of(ev.CheckpointSaved))
    assert load(tmp_path / "run" / "best_model.pth")["best_epoch"] == 1


def test_non_finite_weights_are_never_written(tmp_path):
    """The loss stays finite but a weight is NaN: the save is refused and the run stops."""
    import torch

    from tui_trainer import events as ev
    from tui_trainer.errors import NonFiniteLossError

    model = _faulty_model_class()()

    class BreakAWeight:
        def emit(self, e):
            if isinstance(e, ev.EpochStarted) and e.epoch == 2:
                with torch.no_grad():
                    model.unused.fill_(float("nan"))

    sink = ev.ListSink()
    trainer = _trainer(tmp_path, model, [sink, BreakAWeight()])
    with pytest.raises(NonFiniteLossError):
        trainer.fit(3)
    (end,) = [e for e in sink.of(ev.EpochEnd) if e.epoch == 2]
    assert math.isfinite(end.train_loss) and math.isfinite(end.val_loss)
    (failed,) = sink.of(ev.RunFailed)
    assert failed.epoch == 2 and "(weights)" in failed.error
    assert all(e.epoch == 1 for e in sink.of(ev.CheckpointSaved))
    assert _all_checkpoints_finite(tmp_path / "run") == ["best_model.pth", "last.pth"]


def test_on_nan_skip_skips_and_counts_the_batches_and_shows_them(tmp_path):
    from tui_trainer import events as ev
    from tui_trainer.frontends.headless import HeadlessPrinter

    sink, shown = ev.ListSink(), io.StringIO()
    trainer = _trainer(tmp_path, _faulty_model_class()(nan_calls={3, STEPS + 5, STEPS + 9}),
                       [sink, HeadlessPrinter(shown)], on_nan="skip")
    trainer.fit(3)
    assert trainer.status == "finished"
    assert [e.skipped for e in sink.of(ev.EpochEnd)] == [1, 2, 0]
    assert max(e.skipped for e in sink.of(ev.StepProgress) if e.epoch == 2) == 2
    assert all(math.isfinite(e.train_loss) for e in sink.of(ev.EpochEnd))
    epoch_lines = [line for line in shown.getvalue().splitlines() if line.lstrip().startswith(("1/3", "2/3", "3/3"))]
    assert len(epoch_lines) == 3
    assert "(1 skipped)" in epoch_lines[0] and "(2 skipped)" in epoch_lines[1] and "skipped" not in epoch_lines[2]
    assert _all_checkpoints_finite(tmp_path / "run")


def test_a_huge_learning_rate_fails_cleanly_through_the_cli(tmp_path):
    run_dir = tmp_path / "run"
    code, out, err = cli_main(tiny_run_args(run_dir, 2, "--lr", "1e30", "--accum-steps", "1"))
    assert code == 1, out + err
    (failed,) = of(run_dir, "RunFailed")
    assert failed.epoch == 1 and failed.step >= 1
    assert f"error: non-finite loss at epoch 1, step {failed.step}; stopping (use --on-nan skip" in out
    assert err == "" and "Traceback" not in out
    assert _all_checkpoints_finite(run_dir) == []  # nothing finite to keep: nothing written
    assert not (run_dir / "report.json").exists()


def test_fp16_steps_skipped_by_the_grad_scaler_are_counted_and_shown(tmp_path, monkeypatch):
    """A scaler starting far too high overflows the fp16 gradients for its first steps: those
    steps are skipped, counted in the events and the log, and the run carries on."""
    import torch

    class HighScaler(torch.amp.GradScaler):
        def __init__(self, device="cuda", **kw):
            super().__init__(device, init_scale=2.0 ** 24, **kw)

    monkeypatch.setattr(torch.amp, "GradScaler", HighScaler)
    run_dir = tmp_path / "run"
    code, out, err = cli_main(tiny_run_args(run_dir, 2, "--amp", "fp16", "--accum-steps", "1"))
    assert code == 0, out + err
    skipped = [e.skipped for e in of(run_dir, "EpochEnd")]
    assert skipped[0] > 0, "the high initial scale should overflow the first steps"
    epoch_line = next(line for line in out.splitlines() if line.lstrip().startswith("1/2"))
    assert f"({skipped[0]} skipped)" in epoch_line
    assert load(run_dir / "last.pth")["scaler_state_dict"]["scale"] < 2.0 ** 24
    assert [e.status for e in of(run_dir, "RunFinished")] == ["finished"]
