"""How a torchvision model is fitted to the data, decided without torch: the small-input stem,
the input channels, and an input resize where the architecture (or its weights) needs a larger
or a fixed size. The builder follows this plan, and the run's header shows its summary."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import UserError
from . import torchvision_names as tv


@dataclass(frozen=True)
class Plan:
    name: str
    pretrained: bool
    in_channels: int
    input_size: tuple[int, int]  # (height, width) of the data
    small_stem: bool = False
    resize_to: tuple[int, int] | None = None  # resized to this on the device before the first layer
    vit_image_size: int | None = None  # a Vision Transformer built for this side (random weights)

    def notes(self) -> list[str]:
        notes = []
        if self.pretrained:
            notes.append("ImageNet weights, new head")
        if self.small_stem:
            notes.append("small-input stem: 3x3 conv, stride 1, no max-pool")
        if self.in_channels != 3:
            notes.append(f"first conv takes {self.in_channels} channel{'s' if self.in_channels != 1 else ''}")
        if self.resize_to is not None:
            (h, w), (rh, rw) = self.input_size, self.resize_to
            notes.append(f"inputs resized {h}x{w} -> {rh}x{rw}")
        return notes

    def describe(self) -> str:
        notes = self.notes()
        return f"{self.name} ({'; '.join(notes)})" if notes else self.name


def plan(name: str, input_shape: tuple[int, ...], pretrained: bool = False) -> Plan:
    if len(input_shape) != 3:
        raise UserError(f"{name} needs images (channels x height x width), but the data are {input_shape}; "
                        "use --model mlp for flat features")
    channels, height, width = (int(v) for v in input_shape)
    family = tv.family_of(name)
    small_stem = (not pretrained and family in tv.SMALL_INPUT_STEM_FAMILIES
                  and min(height, width) < tv.SMALL_INPUT_BELOW)
    resize_to, vit_side = None, None
    if family == "vit":
        patch = int(name.rsplit("_", 1)[1])
        if pretrained:
            side = tv.PRETRAINED_MIN_SIDE[name]
        else:  # the smallest square of whole patches that holds the image
            side = max(patch, -(-max(height, width) // patch) * patch)
            vit_side = side
        if (height, width) != (side, side):
            resize_to = (side, side)
    elif name in tv.FIXED_SIDE:
        side = tv.FIXED_SIDE[name]
        if (height, width) != (side, side):
            resize_to = (side, side)
    else:
        minimum = tv.MIN_SIDE.get(name, 1)
        if pretrained:
            minimum = max(minimum, tv.PRETRAINED_MIN_SIDE.get(name, 1))
        if min(height, width) < minimum:
            resize_to = (max(height, minimum), max(width, minimum))
    return Plan(name, pretrained, channels, (height, width), small_stem, resize_to, vit_side)
