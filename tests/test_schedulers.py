"""LR schedulers: create_scheduler by name, the planned schedule against the real one, and
how the loop steps them (per epoch, per optimizer step, or on the validation loss)."""

from __future__ import annotations

import json

import pytest
import torch
from torch.optim import lr_scheduler as sched

from tui_trainer import events as ev
from tui_trainer.data.loader import TensorLoader
from tui_trainer.engine import Trainer, create_scheduler, planned_lrs
from tui_trainer.errors import UserError

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def make_optimizer(lr: float = 0.1) -> torch.optim.Optimizer:
    return torch.optim.SGD(torch.nn.Linear(2, 2).parameters(), lr=lr, momentum=0.9)


@pytest.mark.parametrize("name, kind, attrs", [
    ("step", sched.StepLR, {"step_size": 30, "gamma": 0.1}),
    ("multistep", sched.MultiStepLR, {"gamma": 0.1}),
    ("cosine", sched.CosineAnnealingLR, {"T_max": 100}),
    ("plateau", sched.ReduceLROnPlateau, {"factor": 0.5, "patience": 10, "mode": "min"}),
    ("warmup_cosine", sched.CosineAnnealingWarmRestarts, {"T_0": 10}),
])
def test_create_scheduler_keeps_the_seed_defaults(name, kind, attrs):
    s = create_scheduler(make_optimizer(), name)
    assert type(s) is kind
    for attr, value in attrs.items():
        assert getattr(s, attr) == value
    if name == "multistep":
        assert sorted(s.milestones) == [30, 60, 90]


def test_create_scheduler_passes_options_through():
    assert create_scheduler(make_optimizer(), "cosine", T_max=7).T_max == 7
    assert create_scheduler(make_optimizer(), "step", step_size=3, gamma=0.5).gamma == 0.5
    assert create_scheduler(make_optimizer(), "plateau", patience=2).patience == 2


def test_onecycle_needs_its_length_and_peaks_at_max_lr():
    with pytest.raises(ValueError, match="total_steps"):
        create_scheduler(make_optimizer(), "onecycle")
    opt = make_optimizer(0.2)
    s = create_scheduler(opt, "onecycle", epochs=2, steps_per_epoch=5)
    assert type(s) is sched.OneCycleLR and s.total_steps == 10
    lrs = []
    for _ in range(9):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        s.step()
    assert max(lrs) == pytest.approx(0.2, rel=0.05) and lrs[0] < 0.02 and lrs[-1] < 0.02


def test_none_gives_no_scheduler_and_unknown_names_are_a_clear_error():
    assert create_scheduler(make_optimizer(), "none") is None
    with pytest.raises(UserError) as info:
        create_scheduler(make_optimizer(), "cosine_warm")
    message = str(info.value)
    assert "cosine_warm" in message and "\n" not in message
    for name in ("step", "multistep", "cosine", "plateau", "warmup_cosine", "onecycle", "none"):
        assert name in message


def test_an_unknown_scheduler_on_the_command_line_is_one_line_and_exit_2(cli, tmp_path):
    result = cli("run", "digits", "--scheduler", "exponential", "--headless", "--run-dir", tmp_path / "r")
    assert result.code == 2
    assert result.err.count("\n") == 1 and "exponential" in result.err and "cosine" in result.err
    assert "Traceback" not in result.err and not (tmp_path / "r").exists()


def real_lrs(name: str, epochs: int, steps_per_epoch: int, **kwargs) -> list[float]:
    opt = make_optimizer()
    s = create_scheduler(opt, name, **kwargs)
    per_step = name == "onecycle"
    lrs = [opt.param_groups[0]["lr"]]
    n = epochs * steps_per_epoch - 1 if per_step else epochs
    for _ in range(n):
        opt.step()
        if s is not None:
            s.step()
        lrs.append(opt.param_groups[0]["lr"])
    return lrs


@pytest.mark.parametrize("name, kwargs", [
    ("cosine", {"T_max": 6}), ("step", {"step_size": 2, "gamma": 0.5}),
    ("multistep", {"milestones": [1, 4]}), ("warmup_cosine", {"T_0": 2}),
    ("onecycle", {"total_steps": 18}), ("none", {}),
])
def test_planned_lrs_match_the_real_scheduler_and_leave_it_untouched(name, kwargs):
    epochs, steps = 6, 3
    opt = make_optimizer()
    s = create_scheduler(opt, name, **kwargs)
    state_before = None if s is None else json.dumps(s.state_dict(), default=str, sort_keys=True)
    lr_before = opt.param_groups[0]["lr"]
    plan = planned_lrs(s, opt, epochs, 0, steps)

    assert opt.param_groups[0]["lr"] == lr_before
    if s is not None:
        assert json.dumps(s.state_dict(), default=str, sort_keys=True) == state_before
    expected = real_lrs(name, epochs, steps, **kwargs)
    if name == "none":
        assert [lr for _, lr in plan] == [0.1, 0.1] and plan[-1][0] == epochs
        return
    assert [lr for _, lr in plan] == pytest.approx(expected, rel=1e-9)
    unit = 1 / steps if name == "onecycle" else 1
    assert [pos for pos, _ in plan] == pytest.approx([i * unit for i in range(len(expected))])


def test_planned_lrs_thin_out_long_schedules_without_drifting():
    opt = make_optimizer()
    s = create_scheduler(opt, "onecycle", total_steps=1200)
    plan = planned_lrs(s, opt, 4, 0, 300)
    expected = real_lrs("onecycle", 4, 300, total_steps=1200)
    assert 100 < len(plan) <= 401
    for pos, lr in plan:
        assert lr == pytest.approx(expected[round(pos * 300)], rel=1e-9)


def test_plateau_has_no_plan():
    opt = make_optimizer()
    assert planned_lrs(create_scheduler(opt, "plateau"), opt, 5) == ()


# ---------------------------------------------------------------------- inside the loop

def run(blobs, model, optimizer, scheduler, epochs, sink, batch=8, accum=1):
    x, y = blobs(n=32, features=4, classes=3)
    trainer = Trainer(model, TensorLoader(x, y, batch), TensorLoader(x, y, 32),
                      torch.nn.CrossEntropyLoss(), optimizer, "cpu", None, sinks=[sink], accum_steps=accum)
    trainer.fit(epochs, scheduler)
    return trainer


def test_epoch_schedulers_step_once_per_epoch_as_planned(blobs, recording_sgd):
    model = torch.nn.Linear(4, 3)
    opt = recording_sgd(model.parameters(), lr=0.1)
    sink = ev.ListSink()
    run(blobs, model, opt, create_scheduler(opt, "cosine", T_max=4), 4, sink)
    plan = sink.of(ev.RunStarted)[0].lr_plan
    used = [e.lr for e in sink.of(ev.EpochEnd)]
    assert used == pytest.approx([lr for _, lr in plan[:4]])
    assert len(set(used)) == 4
    # within an epoch every optimizer step used that epoch's LR
    assert [s["lr"] for s in opt.seen] == pytest.approx([lr for lr in used for _ in range(4)])


def test_onecycle_steps_after_every_optimizer_step_as_planned(blobs, recording_sgd):
    model = torch.nn.Linear(4, 3)
    opt = recording_sgd(model.parameters(), lr=0.1)
    sink = ev.ListSink()
    # 4 micro-batches per epoch, 3 per optimizer step: 2 optimizer steps per epoch
    run(blobs, model, opt, create_scheduler(opt, "onecycle", total_steps=6), 3, sink, accum=3)
    plan = sink.of(ev.RunStarted)[0].lr_plan
    seen = [s["lr"] for s in opt.seen]
    assert len(seen) == 6
    assert seen == pytest.approx([lr for _, lr in plan])
    assert [pos for pos, _ in plan] == pytest.approx([0, 0.5, 1, 1.5, 2, 2.5])


def test_plateau_is_stepped_with_the_validation_loss(blobs):
    class RecordingPlateau(sched.ReduceLROnPlateau):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.metrics_seen = []

        def step(self, metrics, *args, **kwargs):
            self.metrics_seen.append(metrics)
            return super().step(metrics, *args, **kwargs)

    model = torch.nn.Linear(4, 3)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    plateau = RecordingPlateau(opt, mode="min", factor=0.5, patience=0)
    sink = ev.ListSink()
    trainer = run(blobs, model, opt, plateau, 3, sink)
    assert plateau.metrics_seen == trainer.val_losses
    assert plateau.metrics_seen != trainer.train_losses


def test_plateau_halves_the_lr_when_the_validation_loss_stops_improving(tmp_path, scripted_optimizer):
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0]] * 4)
    y = torch.tensor([0, 1] * 4)
    good = {"weight": torch.eye(2), "bias": torch.zeros(2)}
    worse = {"weight": torch.eye(2) * 0.5, "bias": torch.zeros(2)}
    better = {"weight": torch.eye(2) * 2, "bias": torch.zeros(2)}
    model = torch.nn.Linear(2, 2)
    opt = scripted_optimizer(model, [good, worse, worse, better])
    sink = ev.ListSink()
    Trainer(model, TensorLoader(x, y, 8), TensorLoader(x, y, 8), torch.nn.CrossEntropyLoss(), opt, "cpu", None,
            sinks=[sink]).fit(4, create_scheduler(opt, "plateau", patience=0))
    assert [e.lr for e in sink.of(ev.EpochEnd)] == pytest.approx([0.1, 0.1, 0.05, 0.025])
    changes = sink.of(ev.LrChanged)
    assert [(c.epoch, c.reason) for c in changes] == [(2, "plateau"), (3, "plateau")]
    assert changes[0].old_lr == pytest.approx(0.1) and changes[0].new_lr == pytest.approx(0.05)


@pytest.mark.parametrize("name", ["cosine", "plateau", "onecycle", "none"])
def test_schedulers_run_from_the_command_line(cli, tmp_path, name):
    run_dir = tmp_path / "run"
    result = cli("run", "synthetic", "--model", "mlp", "--synthetic-shape", "1x4x4", "--synthetic-train", "80",
                 "--synthetic-val", "20", "--batch-size", "16", "--epochs", "3", "--accum-steps", "2",
                 "--limit-batches", "3", "--scheduler", name, "--headless", "--log-format", "json",
                 "--run-dir", run_dir)
    assert result.code == 0, result.err
    events = ev.read_events(run_dir / "events.jsonl")
    started = next(e for e in events if isinstance(e, ev.RunStarted))
    used = [e.lr for e in events if isinstance(e, ev.EpochEnd)]
    assert len(used) == 3 and [e.status for e in events if isinstance(e, ev.RunFinished)] == ["finished"]
    if name == "onecycle":
        # 3 micro-batches of 2 per optimizer step: 2 optimizer steps per epoch, 6 in all
        assert len(started.lr_plan) == 6 and [pos for pos, _ in started.lr_plan][:3] == [0, 0.5, 1]
        assert used == pytest.approx([lr for pos, lr in started.lr_plan if pos == int(pos)])
    elif name == "none":
        assert used == [1e-3] * 3 and [lr for _, lr in started.lr_plan] == [1e-3, 1e-3]
    elif name != "plateau":
        assert used == pytest.approx([lr for _, lr in started.lr_plan[:3]])


# ---------------------------------------------------------------------- one owner of the LR
def test_the_plateau_schedule_cuts_the_lr_as_torchs_reduce_lr_on_plateau_does():
    from tui_trainer.engine.learning_rate import LearningRate
    from tui_trainer.engine.lr_schedules import schedule_for_run
    from tui_trainer.engine.train_state import TrainState

    losses = [1.0, 0.9, 0.95, 0.9, 0.89999, 0.7, 0.71, 0.72, 0.73, 0.6, 0.6, 0.6, float("nan"), 0.5]
    ours, theirs = make_optimizer(0.1), make_optimizer(0.1)
    owner = LearningRate(ours, schedule_for_run("plateau", 20, 1, plateau_patience=1))
    torch_plateau = create_scheduler(theirs, "plateau", patience=1)
    state = TrainState()
    for loss in losses:
        state.epoch += 1
        owner.end_epoch(state, loss)
        torch_plateau.step(loss)
        assert ours.param_groups[0]["lr"] == theirs.param_groups[0]["lr"], loss
    assert ours.param_groups[0]["lr"] < 0.1 / 4  # it did cut, several times


def test_a_users_torch_scheduler_follows_torch_and_the_manual_factor_multiplies_it(blobs, recording_sgd):
    """The seed API's own scheduler keeps stepping as torch's does; x2 from the console scales the
    LR from then on, and is kept in the checkpoint (not in the scheduler's state)."""
    from tui_trainer.engine.control import Control

    model = torch.nn.Linear(4, 3)
    opt = recording_sgd(model.parameters(), lr=0.1)
    control = Control()

    class DoubleAfterEpoch2:
        def emit(self, e):
            if isinstance(e, ev.EpochEnd) and e.epoch == 2:
                control.scale_lr(2.0)

    x, y = blobs(n=32, features=4, classes=3)
    trainer = Trainer(model, TensorLoader(x, y, 8), TensorLoader(x, y, 32), torch.nn.CrossEntropyLoss(), opt, "cpu",
                      None, sinks=[DoubleAfterEpoch2()], control=control)
    trainer.fit(5, create_scheduler(opt, "step", step_size=2, gamma=0.5))
    per_epoch = [s["lr"] for s in opt.seen[::4]]
    torch_values = real_lrs("step", 5, 1, step_size=2, gamma=0.5)[:5]
    assert per_epoch == pytest.approx([v * (2.0 if e >= 2 else 1.0) for e, v in enumerate(torch_values)], rel=1e-12)
    saved = trainer.state_dict()
    assert saved["lr_factor"] == 2.0
    assert saved["scheduler_state_dict"]["torch"]["base_lrs"] == [0.1]  # the scheduler's own view is unscaled
