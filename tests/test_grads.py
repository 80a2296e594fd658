"""grads.py: clipping and clearing gradients give torch's numbers bit for bit."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from tui_trainer.engine.grads import GradClipper, clear_grads


def _mlp(dtype=torch.float32) -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(12, 32), torch.nn.ReLU(), torch.nn.Linear(32, 5)).to(dtype)


def _set_grads(model: torch.nn.Module, scale: float, seed: int = 1) -> None:
    g = torch.Generator().manual_seed(seed)
    for p in model.parameters():
        if p.requires_grad:
            p.grad = (torch.randn(p.shape, generator=g) * scale).to(p.dtype)


def _both(model: torch.nn.Module, max_norm: float):
    """(torch's norm and grads, ours) from the same starting gradients."""
    ours = copy.deepcopy(model)
    for theirs_p, our_p in zip(model.parameters(), ours.parameters()):
        our_p.grad = None if theirs_p.grad is None else theirs_p.grad.clone()
    theirs_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
    clipper = GradClipper(ours)
    our_norm = clipper(max_norm)
    return (theirs_norm, [p.grad for p in model.parameters()]), (our_norm, [p.grad for p in ours.parameters()]), clipper


def _assert_same(a, b) -> None:
    (norm_a, grads_a), (norm_b, grads_b) = a, b
    torch.testing.assert_close(norm_b, norm_a, rtol=0, atol=0, equal_nan=True)
    for ga, gb in zip(grads_a, grads_b):
        if ga is None:
            assert gb is None
        else:
            torch.testing.assert_close(gb, ga, rtol=0, atol=0, equal_nan=True)


@pytest.mark.parametrize("scale,max_norm", [(5.0, 1.0), (1e-3, 1.0), (3.0, 0.25), (0.0, 1.0), (1e30, 1.0),
                                            (1e-4, 1e-4)])
def test_clipping_matches_clip_grad_norm_bit_for_bit(scale, max_norm):
    model = _mlp()
    _set_grads(model, scale)
    theirs, ours, clipper = _both(model, max_norm)
    assert clipper.fast  # one device and dtype on the CPU: the short path was taken
    _assert_same(theirs, ours)
    if scale == 5.0:  # the case actually clipped: the norm is now max_norm
        norm = math.sqrt(sum(float(g.double().pow(2).sum()) for g in ours[1]))
        assert norm == pytest.approx(max_norm, rel=1e-4)


def test_non_finite_gradients_scale_the_same_way():
    model = _mlp()
    _set_grads(model, 1.0)
    next(model.parameters()).grad[0, 0] = float("inf")
    theirs, ours, _ = _both(model, 1.0)
    assert not torch.isfinite(ours[0])
    _assert_same(theirs, ours)


def test_frozen_parameters_and_missing_grads():
    model = _mlp()
    model[0].weight.requires_grad_(False)
    _set_grads(model, 4.0)
    theirs, ours, _ = _both(model, 1.0)
    assert ours[1][0] is None
    _assert_same(theirs, ours)


def test_no_gradients_at_all_returns_torchs_zero():
    model = _mlp()
    theirs, ours, _ = _both(model, 1.0)
    _assert_same(theirs, ours)


def test_mixed_dtypes_take_torchs_own_path():
    model = _mlp()
    model[2].double()
    _set_grads(model, 5.0)
    theirs, ours, clipper = _both(model, 1.0)
    assert not clipper.fast
    _assert_same(theirs, ours)


def test_clear_grads_sets_them_to_none():
    model = _mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    _set_grads(model, 1.0)
    clear_grads(opt)
    assert all(p.grad is None for p in model.parameters())


def test_an_optimizers_own_zero_grad_is_called():
    calls = []

    class Custom(torch.optim.SGD):
        def zero_grad(self, set_to_none: bool = True) -> None:
            calls.append(set_to_none)
            super().zero_grad(set_to_none=set_to_none)

    model = _mlp()
    opt = Custom(model.parameters(), lr=0.1)
    _set_grads(model, 1.0)
    clear_grads(opt)
    assert calls == [True]
    assert all(p.grad is None for p in model.parameters())


def test_training_with_the_clipper_matches_torchs_loop_exactly():
    """Ten AdamW steps clipped and cleared by grads.py give the same weights as the loop written
    with clip_grad_norm_ and zero_grad."""
    torch.manual_seed(0)
    x, y = torch.randn(64, 12), torch.randint(0, 5, (64,))
    ref, ours = _mlp(), _mlp()
    opt_ref = torch.optim.AdamW(ref.parameters(), lr=1e-2)
    opt_ours = torch.optim.AdamW(ours.parameters(), lr=1e-2)
    clipper = GradClipper(ours)
    for i in range(10):
        xb, yb = x[i * 6:(i + 1) * 6], y[i * 6:(i + 1) * 6]
        opt_ref.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(ref(xb), yb).backward()
        torch.nn.utils.clip_grad_norm_(ref.parameters(), 0.5)
        opt_ref.step()
        torch.nn.functional.cross_entropy(ours(xb), yb).backward()
        clipper(0.5)
        opt_ours.step()
        clear_grads(opt_ours)
    for a, b in zip(ref.parameters(), ours.parameters()):
        assert torch.equal(a, b)


def test_parameters_added_between_epochs_are_clipped_too():
    """refresh() (each epoch) takes the model's parameters anew: a layer added later counts in the
    norm and is clipped, as clip_grad_norm_(model.parameters()) would do."""
    model = _mlp()
    clipper = GradClipper(model)
    _set_grads(model, 1.0)
    clipper(1.0)
    model.add_module("extra", torch.nn.Linear(5, 5))
    _set_grads(model, 5.0, seed=2)
    clipper.refresh()
    theirs, ours, _ = _both(model, 1.0)  # torch's result on a copy of the same gradients
    _assert_same(theirs, ours)
    expected = copy.deepcopy(model)
    for p, q in zip(model.parameters(), expected.parameters()):
        q.grad = p.grad.clone()
    torch.nn.utils.clip_grad_norm_(expected.parameters(), 1.0)
    clipper(1.0)
    for p, q in zip(model.parameters(), expected.parameters()):
        assert torch.equal(p.grad, q.grad)
