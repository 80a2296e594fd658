"""Build a torchvision classification model for the data: the dataset's class count, its input
channels, the small-input stem for small images, and ImageNet weights with a new head when
asked (`--pretrained`). `adapt_plan.plan` decides what changes; this module carries it out."""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn

from ..errors import UserError
from . import torchvision_names as tv
from .adapt_plan import Plan, plan
from .weights import cached_weights_path, missing_weights_message

IMAGENET_CLASSES = 1000
_AUX_HEADS = {"googlenet": ("aux1", "aux2"), "inception_v3": ("AuxLogits",)}


class ResizedInput(nn.Module):
    """Resizes each batch (bilinear) to the size the wrapped network needs, on the device."""

    def __init__(self, model: nn.Module, size: tuple[int, int]) -> None:
        super().__init__()
        self.model = model
        self.size = tuple(size)

    def forward(self, x):
        if tuple(x.shape[-2:]) != self.size:
            x = nn.functional.interpolate(x, size=self.size, mode="bilinear", align_corners=False)
        return self.model(x)


def build(name: str, input_shape: tuple[int, ...], num_classes: int, pretrained: bool = False) -> nn.Module:
    import torchvision.models as tvm

    p = plan(name, input_shape, pretrained)
    family = tv.family_of(name)
    if pretrained:
        model = _pretrained(tvm, name, p)
        _drop_aux_heads(model, name)
        _replace_head(model, num_classes)
    else:
        kwargs: dict = {"num_classes": num_classes}
        if name in _AUX_HEADS:  # the auxiliary heads return tuples while training; one output here
            kwargs.update(aux_logits=False, init_weights=True)
        if p.vit_image_size is not None:
            kwargs["image_size"] = p.vit_image_size
        model = tvm.get_model(name, **kwargs)
    if p.small_stem:
        _small_input_stem(model, family, p.in_channels)
    elif p.in_channels != 3:
        _adapt_first_conv(model, p.in_channels)
    if p.in_channels != 3 and hasattr(model, "transform_input"):
        model.transform_input = False  # it re-normalises three RGB channels
    if p.resize_to is not None:
        model = ResizedInput(model, p.resize_to)
    return model


def _pretrained(tvm, name: str, p: Plan) -> nn.Module:
    path = cached_weights_path(name)
    if not path.is_file():  # checked before the run started; gone since
        raise UserError(missing_weights_message(name, "not found"))
    try:
        return tvm.get_model(name, weights="DEFAULT", progress=False)
    except (RuntimeError, OSError, ValueError, EOFError, KeyError) as exc:
        detail = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise UserError(f"the {name} weights in {path} cannot be used ({detail}); delete the file and run again to "
                        f"download it, or put a good copy of {Path(path).name} there") from None


def _drop_aux_heads(model: nn.Module, name: str) -> None:
    for attr in _AUX_HEADS.get(name, ()):
        setattr(model, attr, None)
    if name in _AUX_HEADS:
        model.aux_logits = False


def _replace_head(model: nn.Module, num_classes: int) -> None:
    """The last layer with ImageNet's 1000 outputs becomes a fresh one with the data's classes."""
    last = None
    for module_name, module in model.named_modules():
        if (isinstance(module, nn.Linear) and module.out_features == IMAGENET_CLASSES) or (
                isinstance(module, nn.Conv2d) and module.out_channels == IMAGENET_CLASSES):
            last = module_name
    if last is None:
        raise RuntimeError(f"no ImageNet classifier layer found in {type(model).__name__}")
    old = model.get_submodule(last)
    if isinstance(old, nn.Linear):
        new = nn.Linear(old.in_features, num_classes, bias=old.bias is not None)
    else:
        new = nn.Conv2d(old.in_channels, num_classes, old.kernel_size, old.stride, old.padding,
                        bias=old.bias is not None)
    _set_submodule(model, last, new)
    if hasattr(model, "num_classes"):
        model.num_classes = num_classes


def _set_submodule(model: nn.Module, path: str, new: nn.Module) -> None:
    parent_name, _, attr = path.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, attr, new)


def _first_rgb_conv(model: nn.Module) -> str:
    for module_name, module in model.named_modules():
        if isinstance(module, nn.Conv2d) and module.in_channels == 3:
            return module_name
    raise RuntimeError(f"no 3-channel input convolution found in {type(model).__name__}")


def _adapt_first_conv(model: nn.Module, in_channels: int) -> None:
    """The first convolution takes `in_channels`; ImageNet weights are summed over RGB for one
    channel, or tiled and rescaled for more (so the layer's output keeps its scale)."""
    path = _first_rgb_conv(model)
    old = model.get_submodule(path)
    new = nn.Conv2d(in_channels, old.out_channels, old.kernel_size, old.stride, old.padding, old.dilation,
                    old.groups, bias=old.bias is not None, padding_mode=old.padding_mode)
    if not old.weight.is_meta:
        with torch.no_grad():
            w = old.weight
            if in_channels == 1:
                new.weight.copy_(w.sum(dim=1, keepdim=True))
            else:
                repeats = math.ceil(in_channels / 3)
                new.weight.copy_(w.repeat(1, repeats, 1, 1)[:, :in_channels] * (3 / in_channels))
            if old.bias is not None:
                new.bias.copy_(old.bias)
    _set_submodule(model, path, new)


def _small_input_stem(model: nn.Module, family: str, in_channels: int) -> None:
    if family.startswith("regnet"):
        old = model.stem[0]
        model.stem[0] = nn.Conv2d(in_channels, old.out_channels, 3, stride=1, padding=1, bias=False)
        nn.init.kaiming_normal_(model.stem[0].weight, mode="fan_out", nonlinearity="relu")
        return
    model.conv1 = nn.Conv2d(in_channels, model.conv1.out_channels, 3, stride=1, padding=1, bias=False)
    nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")
    model.maxpool = nn.Identity()
