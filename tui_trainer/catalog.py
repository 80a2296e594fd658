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
    # One sample's shape and the class count, where fixed (None: they follow the config or the folder).
    input_shape: tuple[int, int, int] | None = None
    num_classes: int | None = None


DATASETS: dict[str, DatasetInfo] = {
    "digits": DatasetInfo(
        "digits",
        "scikit-learn's bundled 8x8 handwritten digits (1,797 images, 10 classes; offline)",
        Recipe(model="simplecnn", epochs=30, batch_size=64, eval_batch_size=500, lr=1e-3,
               weight_decay=0.01, optimizer="adamw", scheduler="cosine", patience=10),
        (1, 8, 8), 10,
    ),
    "cifar10": DatasetInfo(
        "cifar10",
        "CIFAR-10 through torchvision (60,000 32x32 colour images, 10 classes)",
        # The seed's recipe: SimpleCNN, AdamW 1e-3 / wd 0.01, cosine over 100 epochs, batch 128,
        # crop+flip augmentation, early stopping patience 15. Evaluation batches are larger than
        # the seed's 100: results are identical (loss is averaged per sample), evaluation is faster.
        Recipe(model="simplecnn", epochs=100, batch_size=128, eval_batch_size=500, lr=1e-3,
               weight_decay=0.01, optimizer="adamw", scheduler="cosine", patience=15, augment=True),
        (3, 32, 32), 10,
    ),
    "cifar100": DatasetInfo(
        "cifar100",
        "CIFAR-100 through torchvision (60,000 32x32 colour images, 100 classes); crop + flip",
        Recipe(model="simplecnn", epochs=100, batch_size=128, eval_batch_size=500, lr=1e-3,
               weight_decay=0.01, optimizer="adamw", scheduler="cosine", patience=15, augment=True),
        (3, 32, 32), 100,
    ),
    "mnist": DatasetInfo(
        "mnist",
        "MNIST through torchvision (70,000 28x28 handwritten digits, 10 classes); --augment crops, never flips",
        Recipe(model="simplecnn", epochs=20, batch_size=128, eval_batch_size=1000, lr=1e-3,
               weight_decay=0.01, optimizer="adamw", scheduler="cosine", patience=5, augment=False),
        (1, 28, 28), 10,
    ),
    "fashion-mnist": DatasetInfo(
        "fashion-mnist",
        "Fashion-MNIST through torchvision (70,000 28x28 clothing images, 10 classes); crop + flip",
        Recipe(model="simplecnn", epochs=30, batch_size=128, eval_batch_size=1000, lr=1e-3,
               weight_decay=0.01, optimizer="adamw", scheduler="cosine", patience=8, augment=True),
        (1, 28, 28), 10,
    ),
    "svhn": DatasetInfo(
        "svhn",
        "SVHN through torchvision (99,289 32x32 house-number digits, 10 classes); crop, no flip",
        Recipe(model="simplecnn", epochs=30, batch_size=128, eval_batch_size=1000, lr=1e-3,
               weight_decay=0.01, optimizer="adamw", scheduler="cosine", patience=8, augment=True),
        (3, 32, 32), 10,
    ),
    "synthetic": DatasetInfo(
        "synthetic",
        "random tensors of a chosen shape and class count (learnable; for tests and benchmarks)",
        Recipe(model="simplecnn", epochs=10, batch_size=128, eval_batch_size=500, lr=1e-3,
               weight_decay=0.01, optimizer="adamw", scheduler="cosine", patience=10),
    ),
}

# `tui-trainer run path/to/folder`: the user's own images (see data/folder_scan.py for the layouts).
IMAGE_FOLDER = DatasetInfo(
    "FOLDER",
    "your own images: FOLDER/train/<class>/*.jpg and FOLDER/val/<class>/..., or FOLDER/<class>/... "
    "with --val-split 0.1",
    Recipe(model="resnet18", epochs=30, batch_size=64, eval_batch_size=256, lr=1e-3,
           weight_decay=0.01, optimizer="adamw", scheduler="cosine", patience=8, augment=True),
)

# `tui-trainer run exp.py`: the user's experiment file (experiment.py); its `defaults` come after this.
EXPERIMENT_FILE = DatasetInfo(
    "FILE.py",
    "your own experiment file: build_model(cfg), build_data(cfg), optionally build_optimizer, build_loss, defaults",
    Recipe(model="experiment:build_model", epochs=10, batch_size=64, eval_batch_size=256, lr=1e-3,
           weight_decay=0.01, optimizer="adamw", scheduler="cosine", patience=10),
)

MODELS: dict[str, str] = {
    "simplecnn": "the seed's SimpleCNN: 3 conv-BN-ReLU-pool blocks (64/128/256), MLP head",
    "mlp": "a small multilayer perceptron (256-128 hidden units, ReLU, dropout)",
}

OPTIMIZERS = ("adamw", "adam", "sgd")
SCHEDULERS = ("cosine", "step", "multistep", "plateau", "warmup_cosine", "onecycle", "none")
AMP_MODES = ("auto", "bf16", "fp16", "off")
DEVICES = ("auto", "cpu", "cuda", "mps")
CUDA_GRAPH_MODES = ("auto", "on", "off")  # engine/capture.py decides what each means for a run
LOG_FORMATS = ("text", "json")
NAN_POLICIES = ("stop", "skip")

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck")
