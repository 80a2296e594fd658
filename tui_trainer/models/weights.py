"""torchvision's ImageNet weights for `--pretrained`: found in torch's hub cache before the run
starts (without importing torch), downloaded there when allowed, and otherwise one line that
names the file and the folder to put it in."""

from __future__ import annotations

import os
import re
from pathlib import Path

from ..errors import UserError
from . import torchvision_names as tv


def hub_checkpoints_dir() -> Path:
    """torch.hub.get_dir()/checkpoints, as torch computes it: $TORCH_HOME/hub, else
    $XDG_CACHE_HOME/torch/hub, else ~/.cache/torch/hub."""
    cache = os.getenv("XDG_CACHE_HOME", os.path.join(os.path.expanduser("~"), ".cache"))
    torch_home = os.path.expanduser(os.getenv("TORCH_HOME", os.path.join(cache, "torch")))
    return Path(torch_home) / "hub" / "checkpoints"


def weights_url(name: str) -> str:
    return tv.WEIGHTS_URL + tv.WEIGHTS[name]


def cached_weights_path(name: str) -> Path:
    return hub_checkpoints_dir() / tv.WEIGHTS[name]


def missing_weights_message(name: str, reason: str) -> str:
    path = cached_weights_path(name)
    return (f"--pretrained: the {name} weights are not in torch's hub cache and could not be downloaded ({reason}); "
            f"put {path.name} (from {weights_url(name)}) in {path.parent}, or train without --pretrained")


def _sha256_prefix(filename: str) -> str:
    """torch.hub's check: the hex digits after the last '-' of the file name start its SHA-256."""
    match = re.search(r"-([a-f0-9]*)\.", filename)
    return match.group(1) if match else ""


def ensure_weights(name: str, download: bool) -> None:
    """Make sure the DEFAULT weights of torchvision model `name` are in the hub cache."""
    path = cached_weights_path(name)
    if path.is_file():
        return
    if not download:
        raise UserError(missing_weights_message(name, "downloads are off (--no-download)"))
    from ..data.fetch import DownloadError, download_file

    try:
        download_file(weights_url(name), path, what=f"the {name} weights", sha256_prefix=_sha256_prefix(path.name))
    except DownloadError as exc:
        raise UserError(missing_weights_message(name, exc.reason)) from None
