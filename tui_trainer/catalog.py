"""What can be trained: dataset recipes and model names, in plain sight and free of torch.

The CLI validates names and fills defaults from here without importing torch, so `--help`
and bad-input errors stay instant. The torch-side registries in `data/` and `models/` must
cover exactly these names (a test checks it).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Recipe:
    """The defaults a dataset trains with when a flag is not given."""

    model: str
    epochs: int
    batch_size: int
    eval_batch_size: int
    lr: float
    weight_decay: float
    optimizer: str
    scheduler: str
    patience: int
    min_delta: float = 0.0
    augment: bool = False


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    summary: str
    recipe: Recipe


DATASETS: dict[str, DatasetInfo] = {
    "digits": DatasetInfo(
        "digits",
        "scikit-learn's bundled 8x8 handwritten digits (1,797 images, 10 classes; offline)",
        Recipe(model="simplecnn", epochs=30, batch_size=64, eval_batch_size=500, lr=1e-3,
               weight_decay=0.01, optimizer="adamw", scheduler="cosine", patience=10),
    ),
    "cifar10": DatasetInfo(
        "cifar10",
        "CIFAR-10 through torchvision (60,000 32x32 colour images, 10 classes)",
        # The seed's recipe: SimpleCNN, AdamW 1e-3 / wd 0.01, cosine over 100 epochs, batch 128,
        # crop+flip augmentation, early stopping patience 15. Evaluation batches are larger than
        # the seed's 100: results are identical (loss is averaged per sample), evaluation is faster.
        Recipe(model="simplecnn", epochs=100, batch_size=128, eval_batch_size=500, lr=1e-3,
               weight_decay=0.01, optimizer="adamw", scheduler="cosine", patience=15, augment=True),
    ),
    "synthetic": DatasetInfo(
        "synthetic",
        "random tensors of a chosen shape and class count (learnable; for tests and benchmarks)",
        Recipe(model="simplecnn", epochs=10, batch_size=128, eval_batch_size=500, lr=1e-3,
               weight_decay=0.01, optimizer="adamw", scheduler="cosine", patience=10),
    ),
}

MODELS: dict[str, str] = {
    "simplecnn": "the seed's SimpleCNN: 3 conv-BN-ReLU-pool blocks (64/128/256), MLP head",
    "mlp": "a small multilayer perceptron (256-128 hidden units, ReLU, dropout)",
}

OPTIMIZERS = ("adamw", "adam", "sgd")
SCHEDULERS = ("cosine", "step", "multistep", "plateau", "warmup_cosine", "onecycle", "none")
AMP_MODES = ("auto", "bf16", "fp16", "off")
DEVICES = ("auto", "cpu", "cuda", "mps")
LOG_FORMATS = ("text", "json")
NAN_POLICIES = ("stop", "skip")

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck")
