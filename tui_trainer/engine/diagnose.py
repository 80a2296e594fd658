"""The seed's diagnose_training_issues, with its checks kept and a few added.

One training-mode forward and backward pass on the first batch: data and label shapes and
ranges, output shape and range, the initial loss against ln(num_classes) (what an untrained
classifier should score), gradient norms per layer with warnings, the total norm, parameter
counts, the learning rate, and a non-finite check on every stage. The model is left exactly
as it was (buffers such as BatchNorm statistics are restored, gradients cleared).
"""

from __future__ import annotations

import math
from typing import Callable

import torch

from .early_stopping import clone_state_dict

LARGE_GRAD = 10.0  # the seed's threshold for a per-layer warning
TINY_GRAD = 1e-7


def diagnose_training_issues(model, dataloader, criterion, optimizer, device, num_classes: int | None = None,
                             out: Callable[[str], None] | None = print) -> dict:
    """Print a diagnosis (unless out=None) and return it as a dict with a list of warnings."""
    lines: list[str] = []
    warnings: list[str] = []

    def say(text: str) -> None:
        lines.append(text)
        if out is not None:
            out(text)

    def warn(text: str) -> None:
        warnings.append(text)
        say(f"WARNING: {text}")

    saved = clone_state_dict(model.state_dict())
    was_training = model.training
    model.train()
    data, target = next(iter(dataloader))
    say(f"data shape:        {tuple(data.shape)} ({data.dtype})")
    say(f"label shape:       {tuple(target.shape)} ({target.dtype})")
    dmin, dmax = float(data.float().min()), float(data.float().max())
    say(f"data range:        [{dmin:.3f}, {dmax:.3f}]  mean {float(data.float().mean()):.3f}, "
        f"std {float(data.float().std()):.3f}")
    tmin, tmax = int(target.min()), int(target.max())
    say(f"label range:       [{tmin}, {tmax}]")
    if not torch.isfinite(data.float()).all():
        warn("the input batch contains NaN or infinite values")
    if dmax - dmin > 50:
        warn("inputs span a wide range; normalise them (e.g. to zero mean, unit variance)")
    data, target = data.to(device), target.to(device)
    optimizer.zero_grad(set_to_none=True)
    try:
        output = model(data)
        say(f"output shape:      {tuple(output.shape)}")
        omin, omax = float(output.detach().min()), float(output.detach().max())
        say(f"output range:      [{omin:.3f}, {omax:.3f}]")
        classes = num_classes or output.shape[1]
        if tmin < 0 or tmax >= output.shape[1]:
            warn(f"labels [{tmin}, {tmax}] fall outside the model's {output.shape[1]} outputs")
            # The loss would raise on them; clamped, the rest of the report can still be made.
            target = target.clamp(0, output.shape[1] - 1)
            say("(the loss and gradients below use the labels clamped into range)")
        if not torch.isfinite(output).all():
            warn("the model's output contains NaN or infinite values")
        loss = criterion(output, target)
        expected = math.log(classes)
        say(f"initial loss:      {loss.item():.4f} (an untrained {classes}-class model should be near "
            f"ln({classes}) = {expected:.4f})")
        if not math.isfinite(loss.item()):
            warn("the initial loss is not finite")
        elif loss.item() > 2.0 * expected:
            warn("the initial loss is far above ln(num_classes): check the labels, the output layer and "
                 "the initialisation")
        loss.backward()
        total_sq = 0.0
        tensors_with_grad = 0
        say("gradient norms per layer:")
        for name, param in model.named_parameters():
            if param.grad is None:
                say(f"  {name:<40} (no gradient)")
                continue
            norm = float(param.grad.detach().norm(2))
            total_sq += norm ** 2
            tensors_with_grad += 1
            flag = ""
            if not math.isfinite(norm):
                flag = "  <- not finite"
                warn(f"{name} has a non-finite gradient")
            elif norm > LARGE_GRAD:
                flag = "  <- large"
                warn(f"{name} gradient norm is large: {norm:.4f}")
            elif norm < TINY_GRAD and param.dim() > 1:
                # Only weights: a bias feeding a normalisation layer (conv -> BatchNorm, as in
                # SimpleCNN) has a zero gradient by construction, which is harmless.
                flag = "  <- vanishing"
                warn(f"{name} gradient norm is vanishing: {norm:.2e}")
            say(f"  {name:<40} {norm:12.6f}{flag}")
        total_norm = math.sqrt(total_sq)
        say(f"total grad norm:   {total_norm:.4f}")
        n_params = sum(p.numel() for p in model.parameters())
        n_trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        say(f"parameters:        {n_params:,} ({n_trainable:,} trainable) in "
            f"{tensors_with_grad} tensors with gradients")
        lr = optimizer.param_groups[0]["lr"]
        say(f"learning rate:     {lr:.6f}")
    finally:
        optimizer.zero_grad(set_to_none=True)
        model.load_state_dict(saved)
        model.train(was_training)
    say("no problems found" if not warnings else f"{len(warnings)} warning(s)")
    return {
        "data_shape": tuple(data.shape), "target_shape": tuple(target.shape),
        "data_range": (dmin, dmax), "label_range": (tmin, tmax),
        "output_shape": tuple(output.shape), "output_range": (omin, omax),
        "initial_loss": float(loss.item()), "expected_loss": expected,
        "total_grad_norm": total_norm, "num_params": n_params, "lr": lr,
        "warnings": warnings, "lines": lines,
    }
