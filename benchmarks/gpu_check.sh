#!/usr/bin/env bash
# SimpleCNN on CIFAR-10-shaped data on one GPU: epoch times for the torchvision DataLoader vs
# our GPU-resident loader, fp32 vs bf16, NCHW vs channels_last, eager vs torch.compile, our
# engine vs the plain loop, and peak GPU memory, as one table. Under 8 minutes on one GPU.
#
#   bash benchmarks/gpu_check.sh                        # needs a CUDA GPU
#   bash benchmarks/gpu_check.sh --device cpu --quick   # every code path, tiny, on the CPU
#
# Options are those of benchmarks/gpu_check.py (--help). PYTHON picks the interpreter.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export PYTHONPATH="$(dirname "$here")${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
exec "${PYTHON:-python3}" "$here/gpu_check.py" "$@"
