"""Whether a run's training step is captured as a CUDA graph, and why (or why not).

`decide_capture` is a pure function of what the run is (device, precision, accumulation,
processes, optimizer, compile, whose scheduler): the engine asks it once before training, shows
its reason in the run header, and reports every fallback to eager as a Notice. It imports no
torch, so the CLI and the tests can ask it anything.

Capture replays one fixed sequence of kernels, so it refuses what needs the host inside a step
(fp16's GradScaler deciding whether to skip, `--on-nan skip` reading each loss), what changes
the sequence per step (gradient accumulation's groups, DDP's bucketed all-reduce), and an LR
written by anyone but the engine's LR owner (a torch scheduler of the user's own replaces the
LR it would have to write into the device tensor the graph reads).
"""

from __future__ import annotations

from dataclasses import dataclass

CUDA_GRAPH_MODES = ("auto", "on", "off")

# `auto` captures only once a GPU run has checked the captured step against the eager one
# (tests/test_graphed_step_gpu.py and benchmarks/gpu_check.sh on a CUDA machine). No such run
# has been made yet, so `auto` means eager; flip this after one has, and say so in the README.
CAPTURE_VERIFIED_ON_GPU = False

CAPTURABLE_OPTIMIZERS = ("AdamW", "Adam", "SGD")


@dataclass(frozen=True)
class CaptureInputs:
    requested: str  # auto | on | off (--cuda-graphs)
    device_type: str  # cuda | cpu | mps
    precision: str = "fp32"  # fp32 | bf16 | fp16 (fp16 comes with a GradScaler)
    accum_steps: int = 1
    world_size: int = 1
    optimizer: str = "AdamW"  # the optimizer's class name
    optimizer_fused: bool = True  # built with fused=True (the LR is then read from a device tensor)
    compiled: bool = False
    own_scheduler: bool = False  # a torch LR scheduler passed in by the user's code
    skip_nan: bool = False  # --on-nan skip
    fixed_batch_size: bool = True  # the loader yields batches of one size (the last may be short)


@dataclass(frozen=True)
class CaptureDecision:
    captured: bool
    reason: str  # one sentence, shown in the run header
    requested: str = "auto"
    # Capture was asked for (`on`, or a verified `auto` on a CUDA GPU) and the run trains
    # eagerly instead: reported as a Notice too, never silently.
    fallback: bool = False

    def header(self, device_type: str) -> str:
        """The run header's `step` line: said whenever capture was asked for, happens, or the run
        is on a CUDA GPU (where it could); empty for an eager run elsewhere."""
        return self.label if self.captured or self.fallback or device_type == "cuda" else ""

    @property
    def label(self) -> str:
        """The run header's `step` line."""
        if self.captured:
            return f"captured as a CUDA graph (--cuda-graphs {self.requested}, experimental)"
        return f"eager ({self.reason})"


def decide_capture(inputs: CaptureInputs, *, verified: bool = CAPTURE_VERIFIED_ON_GPU) -> CaptureDecision:
    """Captured or eager, with the reason. `verified`: whether `auto` may capture (see above)."""
    mode = inputs.requested
    if mode not in CUDA_GRAPH_MODES:
        raise ValueError(f"cuda_graphs must be one of {', '.join(CUDA_GRAPH_MODES)}, not {mode!r}")
    if mode == "off":
        return CaptureDecision(False, "--cuda-graphs off", mode)
    if mode == "auto" and not verified:
        return CaptureDecision(False, "--cuda-graphs auto stays eager until a GPU run has verified the captured "
                                      "step; --cuda-graphs on tries it (experimental)", mode)
    blocker = _blocker(inputs)
    if blocker is None:
        return CaptureDecision(True, "every step has the same shapes and kernels", mode)
    if mode == "auto":
        return CaptureDecision(False, f"--cuda-graphs auto: {blocker}", mode, fallback=inputs.device_type == "cuda")
    return CaptureDecision(False, f"--cuda-graphs on, but {blocker}: training eagerly", mode, fallback=True)


def _blocker(i: CaptureInputs) -> str | None:
    """The first reason this run's step cannot be captured, or None."""
    if i.device_type != "cuda":
        return f"CUDA graphs need a CUDA GPU and this run is on {i.device_type}"
    if i.compiled:
        # --compile is torch.compile's default mode: no CUDA graph of its own, and capturing a
        # compiled model has not been tried
        return "--compile is on and a torch.compile'd model is not captured (use one or the other)"
    if i.world_size > 1:
        return f"DDP's gradient all-reduce is not captured ({i.world_size} processes)"
    if i.accum_steps > 1:
        return f"gradient accumulation (--accum-steps {i.accum_steps}) is not captured"
    if i.precision == "fp16":
        return "fp16's GradScaler decides on the host whether to skip a step (use --amp bf16 or off)"
    if i.skip_nan:
        return "--on-nan skip reads every loss on the host"
    if i.own_scheduler:
        return "a torch LR scheduler of your own writes the LR that the graph reads from the device"
    if i.optimizer not in CAPTURABLE_OPTIMIZERS:
        return f"the optimizer is {i.optimizer} (captured: {', '.join(CAPTURABLE_OPTIMIZERS)})"
    if not i.optimizer_fused:
        return f"the {i.optimizer} optimizer is not fused (build it with fused=True)"
    if not i.fixed_batch_size:
        return "the loader's batches have no fixed size"
    return None
