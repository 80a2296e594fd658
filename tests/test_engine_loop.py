"""The fit loop: what each optimizer step sees, per-sample averaging, evaluation mode,
host syncs, checkpoints, the report and loading the best model at the end."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support
from torch.utils.data import DataLoader, TensorDataset

from tui_trainer import events as ev
from tui_trainer.data.loader import TensorLoader
from tui_trainer.engine import Trainer, train_epoch, validate_epoch
from tui_trainer.engine.metrics import evaluate_classification

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CE = torch.nn.CrossEntropyLoss


def linear(features: int, classes: int, seed: int = 0) -> torch.nn.Linear:
    torch.manual_seed(seed)
    return torch.nn.Linear(features, classes)


def batch_grads(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor]:
    """The gradient of the batch-mean cross-entropy, computed on a private copy of the model."""
    ref = copy.deepcopy(model)
    ref.zero_grad(set_to_none=True)
    CE()(ref(x), y).backward()
    return [p.grad.detach().clone() for p in ref.parameters()]


def batches(x, y, size):
    return [(x[i:i + size], y[i:i + size]) for i in range(0, len(x), size)]


def norm(tensors) -> float:
    return float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(t) for t in tensors])))


# ---------------------------------------------------------------------- one optimizer step at a time

def test_each_step_sees_only_its_own_batch_gradient_and_gradients_are_released(blobs, recording_sgd):
    x, y = blobs(n=20, features=5, classes=3, seed=1)
    model = linear(5, 3)
    opt = recording_sgd(model.parameters(), lr=0.0)  # lr 0: the weights stay put, references stay exact
    grads_were_released = []
    model.register_forward_pre_hook(
        lambda m, args: grads_were_released.append(all(p.grad is None for p in m.parameters()))
        if m.training else None)
    trainer = Trainer(model, TensorLoader(x, y, 6), TensorLoader(x, y, 20), CE(), opt, "cpu", None, clip_grad=0)
    trainer.fit(1)

    expected = [batch_grads(model, bx, by) for bx, by in batches(x, y, 6)]
    assert len(opt.seen) == 4  # 6 + 6 + 6 + 2 samples
    for seen, ref in zip(opt.seen, expected):
        for g, r in zip(seen["grads"], ref):
            torch.testing.assert_close(g, r, rtol=1e-5, atol=1e-7)
    # set_to_none=True: the gradient memory is freed after every step, not kept as zeros
    assert grads_were_released == [True] * 4
    assert opt.zero_grad_calls and all(opt.zero_grad_calls)
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize("clip", [None, 0.25, 3.0, 0.0], ids=["default", "0.25", "3.0", "off"])
def test_gradient_clipping_limits_the_norm_the_optimizer_sees(blobs, recording_sgd, clip):
    x, y = blobs(n=24, features=6, classes=4, seed=2, scale=20.0)  # large inputs: large gradients
    model = linear(6, 4)
    opt = recording_sgd(model.parameters(), lr=0.0)
    options = {} if clip is None else {"clip_grad": clip}
    Trainer(model, TensorLoader(x, y, 8), TensorLoader(x, y, 24), CE(), opt, "cpu", None, **options).fit(1)

    limit = 1.0 if clip is None else clip
    expected = [batch_grads(model, bx, by) for bx, by in batches(x, y, 8)]
    raw_norms = [norm(g) for g in expected]
    assert min(raw_norms) > 3.5, "the data must produce gradients above every clip level tested"
    assert len(opt.seen) == 3
    for seen, ref, raw in zip(opt.seen, expected, raw_norms):
        factor = min(1.0, limit / raw) if limit else 1.0
        assert seen["norm"] == pytest.approx(raw * factor, rel=1e-4)
        for g, r in zip(seen["grads"], ref):
            torch.testing.assert_close(g, r * factor, rtol=1e-4, atol=1e-6)


# ---------------------------------------------------------------------- averaging

@pytest.fixture
def uneven():
    """10 samples in batches of 4: the last batch holds 2, so per-batch and per-sample means differ."""
    g = torch.Generator().manual_seed(3)
    x = torch.randn(10, 4, generator=g)
    y = torch.tensor([0, 1, 0, 1, 1, 0, 0, 1, 2, 2])
    model = linear(4, 3, seed=3)
    with torch.no_grad():
        model.bias.copy_(torch.tensor([0.0, 0.0, -3.0]))  # the last batch (class 2 only) costs far more

        per_sample_loss = float(CE(reduction="sum")(model(x), y)) / 10
        per_batch_loss = float(np.mean([float(CE()(model(bx), by)) for bx, by in batches(x, y, 4)]))
        accuracy = 100.0 * float((model(x).argmax(1) == y).sum()) / 10
    assert abs(per_sample_loss - per_batch_loss) > 0.05, "the fixture must tell the two averages apart"
    return x, y, model, per_sample_loss, accuracy


def test_trainer_losses_are_averaged_per_sample(uneven, recording_sgd):
    x, y, model, per_sample, accuracy = uneven
    opt = recording_sgd(model.parameters(), lr=0.0)
    trainer = Trainer(model, TensorLoader(x, y, 4), TensorLoader(x, y, 4), CE(), opt, "cpu", None)
    trainer.fit(1)
    assert trainer.train_losses[0] == pytest.approx(per_sample, rel=1e-5)
    assert trainer.val_losses[0] == pytest.approx(per_sample, rel=1e-5)
    assert trainer.train_accs[0] == pytest.approx(accuracy)
    assert trainer.val_accs[0] == pytest.approx(accuracy)


def test_seed_functions_average_per_sample_over_a_torch_dataloader(uneven, recording_sgd):
    x, y, model, per_sample, accuracy = uneven
    loader = DataLoader(TensorDataset(x, y), batch_size=4, shuffle=False)
    opt = recording_sgd(model.parameters(), lr=0.0)
    train_loss, train_acc = train_epoch(model, loader, CE(), opt, "cpu", 0)
    val_loss, val_acc = validate_epoch(model, loader, CE(), "cpu")
    assert train_loss == pytest.approx(per_sample, rel=1e-5)
    assert val_loss == pytest.approx(per_sample, rel=1e-5)
    assert (train_acc, val_acc) == (pytest.approx(accuracy), pytest.approx(accuracy))
    assert len(opt.seen) == 3


# ---------------------------------------------------------------------- evaluation mode

class ModeProbe(torch.nn.Module):
    """Records, for every forward: training flag, inference mode, grad mode, batch size."""

    def __init__(self, features: int, classes: int) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(features, classes)
        self.calls: list[tuple[bool, bool, bool, int]] = []

    def forward(self, x):
        self.calls.append((self.training, torch.is_inference_mode_enabled(), torch.is_grad_enabled(), x.shape[0]))
        return self.fc(x)


def test_validation_uses_eval_mode_and_inference_mode(blobs):
    x, y = blobs(n=8, features=3, classes=2)
    vx, vy = blobs(n=5, features=3, classes=2, seed=9)
    model = ModeProbe(3, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    Trainer(model, TensorLoader(x, y, 4), TensorLoader(vx, vy, 5), CE(), opt, "cpu", None).fit(2)

    train_calls = [c[:3] for c in model.calls if c[3] == 4]
    val_calls = [c[:3] for c in model.calls if c[3] == 5]
    assert train_calls == [(True, False, True)] * 4  # 2 epochs x 2 batches, back in train mode after validating
    assert val_calls == [(False, True, False)] * 2  # 2 validations; the report reuses the best one's result

    model.calls.clear()
    validate_epoch(model, TensorLoader(vx, vy, 5), CE(), "cpu")
    model.train()
    evaluate_classification(model, TensorLoader(vx, vy, 5), "cpu", 2)
    assert [c[:3] for c in model.calls] == [(False, True, False)] * 2


def test_training_reads_metrics_back_a_few_times_not_every_step(blobs, monkeypatch):
    """40 training steps and a validation pass of 10 batches: each reads its metrics back from the
    device a few times in all, not once per step or batch."""
    x, y = blobs(n=400, features=20, classes=4)
    model = torch.nn.Sequential(torch.nn.Linear(20, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)

    class Phase:
        name = None

        def emit(self, e):
            if isinstance(e, ev.EpochStarted):
                self.name = "train"
            elif isinstance(e, ev.ValidationStarted):
                self.name = "validate"
            elif isinstance(e, ev.EpochEnd):
                self.name = None
                self.end = e

    phase = Phase()
    trainer = Trainer(model, TensorLoader(x, y, 10), TensorLoader(x[:50], y[:50], 5), CE(), opt, "cpu", None,
                      sinks=[phase], progress_interval=1e9)
    syncs: list[tuple] = []
    for name in ("item", "tolist", "__float__", "__int__", "__bool__", "numpy", "cpu"):
        original = getattr(torch.Tensor, name)

        def counted(self, *args, _original=original, _name=name, **kwargs):
            syncs.append((phase.name, _name))
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)
    trainer.fit(1)
    monkeypatch.undo()
    assert trainer.global_step == 40
    training = [name for where, name in syncs if where == "train"]
    validation = [name for where, name in syncs if where == "validate"]
    assert len(training) <= 4, f"{len(training)} host read-backs in 40 steps: {training}"
    assert len(validation) <= 4, f"{len(validation)} host read-backs in 10 validation batches: {validation}"
    assert 0 < phase.end.train_loss < 10 and 0 <= phase.end.train_acc <= 100


def test_an_epoch_shorter_than_the_progress_interval_still_reports_its_steps(blobs):
    """The console's step sparklines and progress line come from StepProgress: an epoch that ends
    before the first interval has passed (digits takes ~0.3 s) must still report its steps."""
    x, y = blobs(n=120, features=6, classes=3)
    model = torch.nn.Linear(6, 3)
    events = ev.ListSink()
    trainer = Trainer(model, TensorLoader(x, y, 10), TensorLoader(x, y, 60), CE(),
                      torch.optim.SGD(model.parameters(), lr=0.1), "cpu", None, sinks=[events], progress_interval=1e9)
    trainer.fit(3)
    ends = {e.epoch: e for e in events.of(ev.EpochEnd)}
    for epoch in (1, 2, 3):
        reports = [e for e in events.of(ev.StepProgress) if e.epoch == epoch]
        assert reports, f"epoch {epoch} reported no steps"
        last = reports[-1]
        assert (last.step, last.steps) == (12, 12)
        assert last.epoch_loss == pytest.approx(ends[epoch].train_loss)
        assert last.epoch_acc == pytest.approx(ends[epoch].train_acc)


# ---------------------------------------------------------------------- checkpoints, report, best model

@pytest.fixture
def separable():
    """Well separated 3-class data, and a linear model that classifies all of it except two
    mislabelled validation samples (so that per-class precision and recall differ)."""
    g = torch.Generator().manual_seed(5)
    centres = torch.tensor([[6.0, 0.0], [-6.0, 6.0], [-6.0, -6.0]])
    y = torch.arange(45) % 3
    x = centres[y] + torch.randn(45, 2, generator=g)
    vy = torch.arange(30) % 3
    vx = centres[vy] + torch.randn(30, 2, generator=g)
    good = torch.nn.Linear(2, 3)
    with torch.no_grad():
        good.weight.copy_(centres / 6)
        good.bias.zero_()
        assert bool((good(vx).argmax(1) == vy).all())
    vy[0], vy[1] = 1, 2  # a class-0 sample labelled 1, a class-1 sample labelled 2
    return x, y, vx, vy, good.state_dict()


def scaled(state: dict, factor: float) -> dict:
    return {k: v * factor for k, v in state.items()}


def equal_states(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_run_writes_checkpoints_and_report_and_ends_with_the_best_model(tmp_path, separable, scripted_optimizer):
    x, y, vx, vy, good = separable
    # after epoch 1: all-zero weights (one class for everything), 2: the good model (the best),
    # 3: its mirror image (everything wrong), 4: an overconfident version of the good model, same
    # accuracy as epoch 2 but a higher loss (the two mislabelled samples cost more), so epoch 2
    # stays the best.
    states = [scaled(good, 0.0), good, scaled(good, -1.0), scaled(good, 2.0)]
    model = torch.nn.Linear(2, 3)
    opt = scripted_optimizer(model, states)
    sink = ev.ListSink()
    names = ("north", "west", "south")
    trainer = Trainer(model, TensorLoader(x, y, 64), TensorLoader(vx, vy, 7), CE(), opt, "cpu", tmp_path,
                      sinks=[sink], checkpoint_every=2, class_names=names, num_classes=3)
    histories = trainer.fit(4)

    assert [e.val_acc for e in sink.of(ev.EpochEnd)] == pytest.approx([900 / 30, 2800 / 30, 0.0, 2800 / 30])
    assert trainer.best_epoch == 2 and histories[3] == trainer.val_accs
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["best_model.pth", "checkpoint_epoch_2.pth", "checkpoint_epoch_4.pth", "last.pth", "report.json"]
    saved = [(e.kind, e.epoch) for e in sink.of(ev.CheckpointSaved)]
    assert [epoch for kind, epoch in saved if kind == "last"] == [1, 2, 3, 4]
    assert [epoch for kind, epoch in saved if kind == "best"] == [1, 2]
    assert [epoch for kind, epoch in saved if kind == "periodic"] == [2, 4]

    def load(name):
        return torch.load(tmp_path / name, map_location="cpu", weights_only=True)

    best, last, ck2, ck4 = (load(n) for n in ("best_model.pth", "last.pth", "checkpoint_epoch_2.pth",
                                              "checkpoint_epoch_4.pth"))
    assert best["epoch"] == 2 and best["best_epoch"] == 2 and equal_states(best["model_state_dict"], states[1])
    assert ck2["epoch"] == 2 and equal_states(ck2["model_state_dict"], states[1])
    assert ck4["epoch"] == 4 and equal_states(ck4["model_state_dict"], states[3])
    assert last["epoch"] == 4 and equal_states(last["model_state_dict"], states[3])
    assert "optimizer_state_dict" in last and last["history"]["val_acc"] == pytest.approx(trainer.val_accs)

    # the best model is loaded at the end, not the last epoch's weights
    assert equal_states(model.state_dict(), states[1])

    report = json.loads((tmp_path / "report.json").read_text())
    with torch.no_grad():
        preds = torch.nn.functional.linear(vx, states[1]["weight"], states[1]["bias"]).argmax(1)
    p, r, f, _ = precision_recall_fscore_support(vy, preds, average="weighted", zero_division=0)
    assert report["best_epoch"] == 2 and report["status"] == "finished" and report["epochs_completed"] == 4
    assert report["accuracy"] == pytest.approx(accuracy_score(vy, preds))
    assert (report["precision"], report["recall"], report["f1"]) == pytest.approx((p, r, f))
    mp, mr, mf, _ = precision_recall_fscore_support(vy, preds, average="macro", zero_division=0)
    assert (report["macro_precision"], report["macro_recall"], report["macro_f1"]) == pytest.approx((mp, mr, mf))
    cp, cr, cf, support = precision_recall_fscore_support(vy, preds, average=None, zero_division=0)
    assert report["per_class_precision"] == pytest.approx(list(cp))
    assert report["per_class_recall"] == pytest.approx(list(cr))
    assert report["per_class_f1"] == pytest.approx(list(cf))
    assert report["support"] == [9, 10, 11] == list(support)
    assert report["per_class_precision"][0] == pytest.approx(0.9) and report["per_class_recall"][0] == 1.0
    assert report["class_names"] == list(names)
    assert report["confusion_matrix"] == confusion_matrix(vy, preds).tolist()
    assert report["history"]["val_acc"] == pytest.approx(trainer.val_accs)
    with torch.no_grad():
        best_loss = float(CE()(model(vx), vy))
    assert report["loss"] == pytest.approx(best_loss, rel=1e-5)


def test_checkpoint_every_zero_writes_no_periodic_checkpoints(tmp_path, separable, scripted_optimizer):
    x, y, vx, vy, good = separable
    model = torch.nn.Linear(2, 3)
    opt = scripted_optimizer(model, [good, good, good])
    Trainer(model, TensorLoader(x, y, 64), TensorLoader(vx, vy, 30), CE(), opt, "cpu", tmp_path,
            checkpoint_every=0).fit(3)
    assert not list(tmp_path.glob("checkpoint_epoch_*.pth"))
    assert (tmp_path / "last.pth").exists() and (tmp_path / "best_model.pth").exists()
