"""EarlyStopping: patience, min_delta, and restoring weights that are exactly the best epoch's
(the seed kept `state_dict().copy()`, whose tensors keep following training)."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from tui_trainer import events as ev
from tui_trainer.data.loader import TensorLoader
from tui_trainer.engine import EarlyStopping, Trainer

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def snapshot(model: torch.nn.Module) -> dict:
    return copy.deepcopy(model.state_dict())


def equal_states(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def train_a_little(model, opt, x, y, steps: int = 3) -> None:
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()


def test_restored_weights_are_exactly_those_of_the_best_epoch(blobs):
    x, y = blobs(n=32, features=4, classes=3)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.BatchNorm1d(8), torch.nn.Linear(8, 3))
    opt = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)  # updates the tensors in place
    es = EarlyStopping(patience=2)
    decisions, best_state = [], None
    for epoch, val_loss in enumerate([1.0, 0.5, 0.7, 0.8], start=1):
        train_a_little(model, opt, x, y)
        if epoch == 2:
            best_state = snapshot(model)
        if epoch == 4:
            before_restore = snapshot(model)
        decisions.append(es(val_loss, model))

    assert decisions == [False, False, False, True]
    assert not equal_states(before_restore, best_state), "training must have moved the weights on"
    # every parameter and buffer (BatchNorm statistics too) is the epoch-2 value, bit for bit
    assert equal_states(model.state_dict(), best_state)
    assert es.best_epoch == 2 and es.best_loss == 0.5 and es.stopped
    live = {t.data_ptr() for t in model.state_dict().values()}
    assert not live & {t.data_ptr() for t in es.best_weights.values()}, "best weights must not share storage"


def test_without_restore_the_last_weights_are_kept(blobs):
    x, y = blobs(n=16, features=4, classes=2)
    model = torch.nn.Linear(4, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    es = EarlyStopping(patience=1, restore_best_weights=False)
    train_a_little(model, opt, x, y)
    assert es(0.3, model) is False
    train_a_little(model, opt, x, y)
    last = snapshot(model)
    assert es(0.4, model) is True
    assert equal_states(model.state_dict(), last)


def test_patience_and_min_delta():
    model = torch.nn.Linear(2, 2)
    es = EarlyStopping(patience=2, min_delta=0.1)
    # 0.95 and 0.8 improve on the best by less than min_delta; 0.85 improves by 0.15
    results = [(es(v, model), es.counter) for v in (1.0, 0.95, 0.85, 0.8, 0.79)]
    assert results == [(False, 0), (False, 1), (False, 0), (False, 1), (True, 2)]
    assert es.best_loss == 0.85 and es.best_epoch == 3


def test_a_non_finite_loss_is_never_an_improvement():
    model = torch.nn.Linear(2, 2)
    es = EarlyStopping(patience=3)
    es(0.5, model)
    es(math.nan, model)
    es(math.inf, model)
    assert es.best_loss == 0.5 and es.counter == 2


def test_trainer_stops_early_and_restores_the_best_val_loss_epoch(tmp_path, scripted_optimizer):
    """Scripted weights: val loss is best after epoch 2 (the confident model), then worse twice."""
    centres = torch.tensor([[4.0, 0.0], [-4.0, 4.0], [-4.0, -4.0]])
    g = torch.Generator().manual_seed(1)
    y = torch.arange(30) % 3
    x = centres[y] + 0.5 * torch.randn(30, 2, generator=g)
    good = {"weight": centres / 4, "bias": torch.zeros(3)}
    confident = {k: v * 3 for k, v in good.items()}  # same predictions, lower loss
    wrong = {k: -v for k, v in good.items()}
    states = [good, confident, wrong, wrong, good, good]
    model = torch.nn.Linear(2, 3)
    opt = scripted_optimizer(model, states)
    restored: list[dict] = []

    class AtTrigger:
        def emit(self, event):
            if isinstance(event, ev.EarlyStopUpdate) and event.triggered:
                restored.append(snapshot(model))

    sink = ev.ListSink()
    es = EarlyStopping(patience=2)
    trainer = Trainer(model, TensorLoader(x, y, 64), TensorLoader(x, y, 30), torch.nn.CrossEntropyLoss(), opt,
                      "cpu", tmp_path, sinks=[sink, AtTrigger()])
    trainer.fit(6, early_stopping=es)

    losses = [e.val_loss for e in sink.of(ev.EpochEnd)]
    assert len(losses) == 4 and losses[1] < losses[0] < losses[2]
    updates = sink.of(ev.EarlyStopUpdate)
    assert [(u.counter, u.improved, u.triggered) for u in updates] == [
        (0, True, False), (0, True, False), (1, False, False), (2, False, True)]
    assert updates[-1].best_epoch == 2 and updates[-1].best_score == pytest.approx(losses[1])
    assert sink.of(ev.RunFinished)[0].status == "early_stopped" and trainer.epoch == 4
    assert len(restored) == 1 and equal_states(restored[0], confident)
    assert equal_states(es.best_weights, confident)
