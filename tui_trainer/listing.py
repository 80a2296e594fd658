"""`tui-trainer list`: datasets with their recipes, and models grouped by family, from the static
catalog (no torch, no torchvision: it prints at once)."""

from __future__ import annotations

import textwrap

from . import catalog
from .models import spec, torchvision_names as tv

WIDTH = 100


def _recipe(r: catalog.Recipe) -> str:
    return (f"default: {r.model}, {r.epochs} epochs, batch {r.batch_size}, {r.optimizer} lr {r.lr:g}, {r.scheduler}"
            f"{', augmented' if r.augment else ''}")


def _wrapped(label: str, text: str, indent: int) -> list[str]:
    lines = textwrap.wrap(text, WIDTH - indent) or [""]
    return [f"{label:<{indent}}{lines[0]}"] + [" " * indent + line for line in lines[1:]]


def lines() -> list[str]:
    out = ["datasets:"]
    for info in (*catalog.DATASETS.values(), catalog.IMAGE_FOLDER, catalog.EXPERIMENT_FILE):
        out += _wrapped(f"  {info.name}", info.summary, 16)
        out += _wrapped("", _recipe(info.recipe), 16)
    out += ["", "models:"]
    for name, summary in catalog.MODELS.items():
        out += _wrapped(f"  {name}", summary, 16)
    out += ["", f"  torchvision ({len(tv.NAMES)} models; random weights, --pretrained for ImageNet weights with a new head;",
            f"  * = small-input stem for images under {tv.SMALL_INPUT_BELOW} px):"]
    for family, members in tv.FAMILIES.items():
        mark = "*" if family in tv.SMALL_INPUT_STEM_FAMILIES else ""
        out += _wrapped(f"    {family}{mark}", "  ".join(members), 20)
    installed = "installed" if spec.timm_installed() else f"not installed: {spec.TIMM_INSTALL}"
    out += ["", *_wrapped("  timm:NAME", f"any timm model, e.g. timm:convnext_nano ({installed})", 16)]
    out += _wrapped("  FILE.py:FN", "your own: FN(num_classes, in_channels) in FILE.py (or package.module:FN) "
                    "returns a torch.nn.Module", 16)
    return out


def print_list() -> int:
    print("\n".join(lines()))
    return 0
