"""One image file to a uint8 (3, H, W) tensor of the run's size: torchvision.io decodes JPEG,
PNG, WebP and GIF; PIL the rest (BMP, TIFF, PPM); a shorter side other than the target's is
resized (antialiased) and the centre cropped."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

# torchvision 0.29 deprecates its image decoders in favour of TorchCodec (not a dependency here)
# and warns on every call; they still decode, and PIL stands behind them.
warnings.filterwarnings("ignore", message="The image decoding and encoding capabilities of TorchVision are deprecated",
                        category=DeprecationWarning)


def _decode_with_pil(path: Path) -> torch.Tensor:
    import numpy as np
    from PIL import Image

    with Image.open(path) as im:
        array = np.asarray(im.convert("RGB"))
    return torch.from_numpy(array.copy()).permute(2, 0, 1).contiguous()


def decode(path: Path, size: tuple[int, int]) -> torch.Tensor:
    """Raises (anything) when the file cannot be read as an image."""
    from torchvision.io import ImageReadMode, decode_image, read_file

    try:
        image = decode_image(read_file(str(path)), mode=ImageReadMode.RGB)
    except (RuntimeError, ValueError):
        image = _decode_with_pil(path)
    if image.dim() == 4:  # an animated GIF: its first frame
        image = image[0]
    if tuple(image.shape[-2:]) != tuple(size):
        image = resize(image, size)
    return image


def resize(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    from torchvision.transforms.v2 import functional as F

    height, width = size
    scale = max(height / image.shape[-2], width / image.shape[-1])
    new = (max(height, round(image.shape[-2] * scale)), max(width, round(image.shape[-1] * scale)))
    image = F.resize(image, list(new), antialias=True)
    return F.center_crop(image, [height, width]).contiguous()
