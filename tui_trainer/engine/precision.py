"""Mixed precision with torch.amp (never the deprecated torch.cuda.amp).

`auto` picks bf16 autocast on GPUs that support it and full precision elsewhere; bf16 also
works on the CPU when asked for. fp16 uses a GradScaler, which the loop unscales before
clipping so the clip threshold applies to the true gradient.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from ..errors import UserError

_FULL_PRECISION = contextlib.nullcontext()  # reusable: entering it does nothing


@dataclass(frozen=True)
class Precision:
    mode: str  # bf16 | fp16 | fp32
    device_type: str

    @property
    def dtype(self) -> torch.dtype | None:
        return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.mode)

    def autocast(self):
        if self.dtype is None:
            return _FULL_PRECISION
        return torch.autocast(device_type=self.device_type, dtype=self.dtype)

    def make_scaler(self) -> torch.amp.GradScaler | None:
        if self.mode != "fp16":
            return None
        return torch.amp.GradScaler(self.device_type)


def resolve_precision(amp: str, device: torch.device) -> Precision:
    dtype = device.type
    if amp == "off":
        return Precision("fp32", dtype)
    if amp == "auto":
        if dtype == "cuda" and torch.cuda.is_bf16_supported():
            return Precision("bf16", dtype)
        return Precision("fp32", dtype)
    if amp == "bf16":
        if dtype == "cuda" and not torch.cuda.is_bf16_supported():
            raise UserError("this GPU does not support bf16; use --amp fp16 or --amp off")
        return Precision("bf16", dtype)
    if amp == "fp16":
        if dtype == "mps":
            raise UserError("--amp fp16 is not supported on mps; use --amp off")
        return Precision("fp16", dtype)
    raise UserError(f"unknown precision '{amp}'; choose one of: auto, bf16, fp16, off")
