"""Gradient accumulation and mixed precision, checked against gradients computed by hand."""

from __future__ import annotations

import copy
import math
import warnings

import pytest
import torch

from tui_trainer import events as ev
from tui_trainer.data.loader import TensorLoader
from tui_trainer.engine import Trainer, resolve_precision, train_epoch
from tui_trainer.errors import UserError

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CE = torch.nn.CrossEntropyLoss


def linear(features: int, classes: int, seed: int = 0) -> torch.nn.Linear:
    torch.manual_seed(seed)
    return torch.nn.Linear(features, classes)


def micro_batches(x, y, size):
    return [(x[i:i + size], y[i:i + size]) for i in range(0, len(x), size)]


def groups_of(items, k):
    return [items[i:i + k] for i in range(0, len(items), k)]


def accumulated_grads(model, group) -> list[torch.Tensor]:
    """Mean over the group's micro-batches of each batch-mean loss's gradient."""
    ref = copy.deepcopy(model)
    for bx, by in group:
        (CE()(ref(bx), by) / len(group)).backward()
    return [p.grad.detach().clone() for p in ref.parameters()]


def norm(tensors) -> float:
    return float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(t) for t in tensors])))


# ---------------------------------------------------------------------- accumulation

def test_accumulated_gradient_is_the_mean_over_real_micro_batches_and_clipped_as_a_whole(blobs, recording_sgd):
    x, y = blobs(n=14, features=5, classes=3, seed=4, scale=5.0)
    model = linear(5, 3)
    opt = recording_sgd(model.parameters(), lr=0.0)
    clip = 0.5
    Trainer(model, TensorLoader(x, y, 2), TensorLoader(x, y, 14), CE(), opt, "cpu", None,
            accum_steps=3, clip_grad=clip).fit(1)

    groups = groups_of(micro_batches(x, y, 2), 3)  # 7 micro-batches: 3 + 3 + 1
    assert [len(g) for g in groups] == [3, 3, 1]
    assert len(opt.seen) == 3, "the short last group must still make an optimizer step"
    for seen, group in zip(opt.seen, groups):
        expected = accumulated_grads(model, group)
        whole = norm(expected)
        assert whole > 2 * clip
        # clipping scales the accumulated gradient by one factor; per micro-batch clipping would not
        for g, e in zip(seen["grads"], expected):
            torch.testing.assert_close(g, e * (clip / whole), rtol=1e-4, atol=1e-6)
        assert seen["norm"] == pytest.approx(clip, rel=1e-4)


def test_accumulation_matches_a_hand_written_loop_over_two_epochs(blobs):
    x, y = blobs(n=10, features=4, classes=3, seed=6, scale=3.0)
    model = linear(4, 3, seed=1)
    ref = copy.deepcopy(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.2, momentum=0.9)
    trainer = Trainer(model, TensorLoader(x, y, 2), TensorLoader(x, y, 10), CE(), opt, "cpu", None,
                      accum_steps=2, clip_grad=0.3)
    trainer.fit(2)

    ref_opt = torch.optim.SGD(ref.parameters(), lr=0.2, momentum=0.9)
    losses = []
    for _ in range(2):
        total = 0.0
        for group in groups_of(micro_batches(x, y, 2), 2):  # 2 + 2 + 1 per epoch
            for bx, by in group:
                loss = CE()(ref(bx), by)
                total += float(loss.detach()) * len(by)
                (loss / len(group)).backward()
            torch.nn.utils.clip_grad_norm_(ref.parameters(), 0.3)
            ref_opt.step()
            ref_opt.zero_grad(set_to_none=True)
        losses.append(total / 10)
    for p, r in zip(model.parameters(), ref.parameters()):
        torch.testing.assert_close(p, r, rtol=1e-5, atol=1e-6)
    assert trainer.train_losses == pytest.approx(losses, rel=1e-5)
    assert trainer.global_step == 6


def test_limit_batches_ends_the_epoch_with_a_short_group(blobs, recording_sgd):
    x, y = blobs(n=16, features=3, classes=2, seed=7)
    model = linear(3, 2)
    opt = recording_sgd(model.parameters(), lr=0.0)
    Trainer(model, TensorLoader(x, y, 2), TensorLoader(x, y, 16), CE(), opt, "cpu", None,
            accum_steps=2, clip_grad=0, limit_batches=5).fit(1)
    groups = groups_of(micro_batches(x, y, 2)[:5], 2)
    assert len(opt.seen) == 3
    for g, e in zip(opt.seen[2]["grads"], accumulated_grads(model, groups[2])):
        torch.testing.assert_close(g, e, rtol=1e-5, atol=1e-7)


def test_seed_train_epoch_accepts_accumulation(blobs, recording_sgd):
    x, y = blobs(n=18, features=3, classes=2)
    model = linear(3, 2)
    opt = recording_sgd(model.parameters(), lr=0.0)
    train_epoch(model, TensorLoader(x, y, 4), CE(), opt, "cpu", 0, accum_steps=4)  # 5 micro-batches: 4 + 1
    assert len(opt.seen) == 2


# ---------------------------------------------------------------------- mixed precision

class AutocastProbe(torch.nn.Module):
    def __init__(self, features: int, classes: int) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.body = torch.nn.Sequential(torch.nn.Linear(features, 32), torch.nn.ReLU(), torch.nn.Linear(32, classes))
        self.calls: list[tuple[bool, bool, torch.dtype | None, torch.dtype]] = []

    def forward(self, x):
        out = self.body(x)
        enabled = torch.is_autocast_enabled("cpu")
        dtype = torch.get_autocast_dtype("cpu") if enabled else None
        self.calls.append((self.training, enabled, dtype, out.dtype))
        return out


def test_bf16_autocast_trains_on_the_cpu(blobs):
    x, y = blobs(n=64, features=8, classes=3)
    model = AutocastProbe(8, 3)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    trainer = Trainer(model, TensorLoader(x, y, 16), TensorLoader(x, y, 64), CE(), opt, "cpu", None, amp="bf16")
    trainer.fit(3)
    assert trainer.precision.mode == "bf16" and trainer.scaler is None
    train_calls = {c[1:] for c in model.calls if c[0]}
    val_calls = {c[1:] for c in model.calls if not c[0]}
    assert train_calls == {(True, torch.bfloat16, torch.bfloat16)}
    assert val_calls == {(True, torch.bfloat16, torch.bfloat16)}
    assert all(p.dtype == torch.float32 for p in model.parameters())  # master weights stay fp32
    assert trainer.train_losses[-1] < trainer.train_losses[0]
    assert trainer.val_accs[-1] > 80


def test_without_amp_there_is_no_autocast(blobs):
    x, y = blobs(n=16, features=8, classes=3)
    model = AutocastProbe(8, 3)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    Trainer(model, TensorLoader(x, y, 8), TensorLoader(x, y, 16), CE(), opt, "cpu", None, amp="off").fit(1)
    assert {c[1:] for c in model.calls} == {(False, None, torch.float32)}


def _fp16_works_on_cpu() -> bool:
    try:
        with torch.autocast("cpu", dtype=torch.float16):
            out = torch.nn.Linear(2, 2)(torch.ones(1, 2))
        out.float().sum().backward()
        return out.dtype == torch.float16 and torch.amp.GradScaler("cpu").is_enabled()
    except (RuntimeError, AssertionError):
        return False


fp16_on_cpu = pytest.mark.skipif(not _fp16_works_on_cpu(),
                                 reason="this torch build has no float16 autocast or GradScaler on the CPU")


@fp16_on_cpu
def test_fp16_unscales_before_clipping(blobs, recording_sgd):
    x, y = blobs(n=24, features=6, classes=3, seed=8, scale=10.0)
    model = linear(6, 3)
    opt = recording_sgd(model.parameters(), lr=0.0)
    clip = 0.5
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer = Trainer(model, TensorLoader(x, y, 8), TensorLoader(x, y, 24), CE(), opt, "cpu", None,
                          amp="fp16", clip_grad=clip)
        assert type(trainer.scaler) is torch.amp.GradScaler and trainer.scaler.is_enabled()
        # A start scale at which these gradients do not overflow fp16, so that no step is skipped.
        trainer.scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 8)
        trainer.fit(1)
    assert not [w for w in caught if "torch.cuda.amp" in str(w.message)]
    assert len(opt.seen) == 3
    for seen, (bx, by) in zip(opt.seen, micro_batches(x, y, 8)):
        expected = accumulated_grads(model, [(bx, by)])
        assert norm(expected) > 4 * clip
        # clipped to the threshold in true units: clipping the scaled gradient instead would leave
        # the optimizer a gradient 256 times smaller
        assert seen["norm"] == pytest.approx(clip, rel=1e-3)
        cosine = torch.nn.functional.cosine_similarity(
            torch.cat([g.flatten() for g in seen["grads"]]), torch.cat([e.flatten() for e in expected]), dim=0)
        assert float(cosine) > 0.999


@fp16_on_cpu
def test_fp16_without_clipping_hands_the_optimizer_true_gradients(blobs, recording_sgd):
    x, y = blobs(n=16, features=6, classes=3, seed=9)
    model = linear(6, 3)
    opt = recording_sgd(model.parameters(), lr=0.0)
    trainer = Trainer(model, TensorLoader(x, y, 8), TensorLoader(x, y, 16), CE(), opt, "cpu", None,
                      amp="fp16", clip_grad=0)
    trainer.scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 8)  # no overflow, so no skipped step
    trainer.fit(1)
    assert len(opt.seen) == 2
    for seen, (bx, by) in zip(opt.seen, micro_batches(x, y, 8)):
        for g, e in zip(seen["grads"], accumulated_grads(model, [(bx, by)])):
            torch.testing.assert_close(g, e, rtol=2e-2, atol=2e-3)


@fp16_on_cpu
def test_fp16_overflowing_steps_are_skipped_and_counted(blobs, recording_sgd):
    x, y = blobs(n=24, features=6, classes=3, seed=8, scale=10.0)  # overflows fp16 at the default scale
    model = linear(6, 3)
    opt = recording_sgd(model.parameters(), lr=0.0)
    sink = ev.ListSink()
    trainer = Trainer(model, TensorLoader(x, y, 8), TensorLoader(x, y, 24), CE(), opt, "cpu", None,
                      amp="fp16", clip_grad=0.5, sinks=[sink])
    trainer.fit(2)
    skipped = [e.skipped for e in sink.of(ev.EpochEnd)]
    assert skipped[0] > 0 and trainer.scaler.get_scale() < 65536
    assert len(opt.seen) == 6 - sum(skipped) > 0
    assert all(math.isfinite(s["norm"]) for s in opt.seen)
    assert all(math.isfinite(loss) for loss in trainer.train_losses)


def test_precision_choices(monkeypatch):
    cpu, cuda, mps = torch.device("cpu"), torch.device("cuda"), torch.device("mps")
    assert resolve_precision("off", cpu).mode == "fp32"
    assert resolve_precision("auto", cpu).mode == "fp32"
    assert resolve_precision("bf16", cpu).mode == "bf16"
    assert resolve_precision("fp16", cpu).mode == "fp16"
    assert resolve_precision("off", cpu).make_scaler() is None
    assert resolve_precision("bf16", cpu).make_scaler() is None
    assert type(resolve_precision("fp16", cpu).make_scaler()) is torch.amp.GradScaler

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert resolve_precision("auto", cuda).mode == "bf16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert resolve_precision("auto", cuda).mode == "fp32"
    with pytest.raises(UserError, match="bf16"):
        resolve_precision("bf16", cuda)
    with pytest.raises(UserError, match="mps"):
        resolve_precision("fp16", mps)
    with pytest.raises(UserError, match="auto, bf16, fp16, off"):
        resolve_precision("fp8", cpu)
