"""Run configuration: one frozen dataclass, defaults from the dataset's recipe, clear validation.

Nothing here imports torch; the CLI builds and validates a config before any heavy import.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import catalog
from .errors import UserError

MONITORS = ("val_loss", "val_acc")  # what --monitor accepts (engine/early_stopping.py says what "better" is)


def default_data_dir() -> Path:
    """Where datasets live unless --data-dir says otherwise: the user's cache dir."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "tui-trainer" / "data"


@dataclass(frozen=True)
class RunConfig:
    dataset: str
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
    restore_best: bool = True
    momentum: float = 0.9
    plateau_patience: int = 5
    accum_steps: int = 1
    clip_grad: float = 1.0
    amp: str = "auto"
    checkpoint_every: int = 10
    run_dir: str | None = None
    data_dir: str | None = None
    device: str = "auto"
    seed: int | None = 0
    limit_batches: int | None = None
    augment: bool = False
    on_nan: str = "stop"
    channels_last: bool = False
    compile: bool = False
    # the training step as a CUDA graph: auto (eager until a GPU run verified it), on
    # (experimental), off; engine/capture.py decides per run and says why
    cuda_graphs: str = "auto"
    download: bool = True
    # synthetic dataset shape: (channels, height, width), classes and sample counts
    synthetic_shape: tuple[int, int, int] = (3, 32, 32)
    synthetic_classes: int = 10
    synthetic_train: int = 5000
    synthetic_val: int = 1000
    monitor: str = "val_loss"  # decides the best epoch and early stopping; ties go to the other metric
    threads: int | None = None  # torch intra-op threads; None: torch's default
    pretrained: bool = False  # torchvision/timm ImageNet weights and a new head for the data's classes
    # image folders: the held-out fraction of each class when there is no val/, the side images are
    # resized to (None: their own size when they all share it, else 224), the memory they may take
    # on the training device in GB (None: see data/image_folder.py), DataLoader workers when streamed
    val_split: float | None = None
    image_size: int | None = None
    memory_budget: float | None = None
    workers: int | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["synthetic_shape"] = list(self.synthetic_shape)
        return d

    @classmethod
    def from_dict(cls, data: Any) -> "RunConfig":
        """A config read back from disk (config.json, a checkpoint). Raises UserError when it is
        not an object with every required field; `validate` then checks each field's type and range."""
        if not isinstance(data, dict):
            raise UserError(f"expected a JSON object of settings, got {type(data).__name__}")
        fields = dataclasses.fields(cls)
        missing = [f.name for f in fields if f.name not in data and f.default is dataclasses.MISSING
                   and f.default_factory is dataclasses.MISSING]
        if missing:
            raise UserError(f"settings missing: {', '.join(missing)}")
        known = {f.name for f in fields}
        kwargs = {k: v for k, v in data.items() if k in known}
        if isinstance(kwargs.get("synthetic_shape"), list):
            kwargs["synthetic_shape"] = tuple(kwargs["synthetic_shape"])
        return cls(**kwargs)

    def replace(self, **changes: Any) -> "RunConfig":
        return dataclasses.replace(self, **changes)

    @property
    def resolved_data_dir(self) -> Path:
        return Path(self.data_dir).expanduser() if self.data_dir else default_data_dir()


def is_image_folder(dataset: Any) -> bool:
    """A dataset that is a path to the user's own folder of images, not one of ours by name."""
    from .experiment import is_experiment_file

    return isinstance(dataset, str) and dataset not in catalog.DATASETS and not is_experiment_file(dataset) and (
        "/" in dataset or os.sep in dataset or os.path.isdir(dataset))


def resolve_dataset(dataset: str) -> tuple[str, catalog.DatasetInfo]:
    """A dataset name, or a folder of images as an absolute path (a resume may start elsewhere)."""
    info = catalog.DATASETS.get(dataset)
    if info is not None:
        return dataset, info
    from .experiment import is_experiment_file, resolve_file

    if is_experiment_file(dataset):
        return resolve_file(dataset), catalog.EXPERIMENT_FILE
    if not is_image_folder(dataset):
        from .models.spec import did_you_mean

        raise UserError(f"unknown dataset '{dataset}'{did_you_mean(dataset, catalog.DATASETS)}; choose one of: "
                        f"{', '.join(catalog.DATASETS)}, or give a folder of images (path/to/folder)")
    path = Path(dataset).expanduser()
    if not path.is_dir():
        what = "is not a folder" if path.exists() else "does not exist"
        raise UserError(f"{dataset} {what}; give a folder of images: FOLDER/train/<class>/*.jpg with "
                        "FOLDER/val/<class>/..., or FOLDER/<class>/*.jpg with --val-split 0.1")
    return str(path.resolve()), catalog.IMAGE_FOLDER


def make_config(dataset: str, **overrides: Any) -> RunConfig:
    """Build a validated config: the dataset's recipe, with every override that is not None."""
    dataset, info = resolve_dataset(dataset)
    recipe = dataclasses.asdict(info.recipe)
    values: dict[str, Any] = {"dataset": dataset, **recipe}
    if info is catalog.EXPERIMENT_FILE:  # the file's own defaults come next; it builds the model
        from .experiment import settings_for

        values.update(settings_for(dataset, overrides))
    values.update({k: v for k, v in overrides.items() if v is not None})
    if isinstance(values.get("model"), str):
        from .models.spec import canonical

        values["model"] = canonical(values["model"])
    known = {f.name for f in dataclasses.fields(RunConfig)}
    unknown = set(values) - known
    if unknown:
        raise TypeError(f"unknown config fields: {sorted(unknown)}")
    config = RunConfig(**values)
    validate(config)
    return config


def _check_choice(what: str, value: str, choices) -> None:
    if value not in choices:
        raise UserError(f"unknown {what} '{value}'; choose one of: {', '.join(choices)}")


def _check_positive_number(flag: str, value: float, *, allow_zero: bool = False) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise UserError(f"{flag} must be a finite number, got {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        need = "zero or more" if allow_zero else "greater than zero"
        raise UserError(f"{flag} must be {need}, got {value:g}")


MAX_EPOCHS = 1_000_000  # far beyond any real run; a typo of more would only hang the start-up
MAX_SEED = 2**32 - 1  # NumPy's limit (torch's is 2**64 - 1); every generator is seeded from it
MAX_COUNT = 2**31 - 1  # batch sizes, steps, patience: beyond this they only overflow something
MAX_SYNTHETIC_CLASSES = 1000  # the report's confusion matrix is classes x classes


def _check_int(flag: str, value: int, minimum: int, maximum: int = MAX_COUNT) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise UserError(f"{flag} must be an integer >= {minimum}, got {value!r:.60}")
    if value > maximum:
        raise UserError(f"{flag} must be at most {maximum:,}, got {value:,}")


# Fields whose type validate() checks beyond the choices and numbers below.
_TEXT_FIELDS = ("dataset", "model", "optimizer", "scheduler", "amp", "device", "on_nan", "cuda_graphs")
_OPTIONAL_PATHS = ("run_dir", "data_dir")
_SWITCHES = ("restore_best", "augment", "channels_last", "compile", "download", "pretrained")
MAX_IMAGE_SIZE = 4096  # px: a side beyond this is a typo; a batch of such images fills any GPU
MAX_WORKERS = 64


def _check_types(c: RunConfig) -> None:
    for name in _TEXT_FIELDS:
        if not isinstance(getattr(c, name), str):
            raise UserError(f"{name} must be a string, got {getattr(c, name)!r:.60}")
    for name in _OPTIONAL_PATHS:
        value = getattr(c, name)
        if value is not None and (not isinstance(value, str) or "\x00" in value):
            raise UserError(f"{name} must be a path, got {value!r:.60}")
    for name in _SWITCHES:
        if not isinstance(getattr(c, name), bool):
            raise UserError(f"{name} must be true or false, got {getattr(c, name)!r:.60}")
    if not isinstance(c.synthetic_shape, tuple):
        raise UserError(f"--synthetic-shape must be CxHxW, got {c.synthetic_shape!r:.60}")
    if not isinstance(c.extra, dict):
        raise UserError(f"extra must be an object, got {c.extra!r:.60}")


def validate(c: RunConfig) -> None:
    """Raise UserError naming the first problem; the message tells the fix."""
    _check_types(c)
    from .experiment import is_experiment_file

    if not is_image_folder(c.dataset) and not is_experiment_file(c.dataset):
        _check_choice("dataset", c.dataset, catalog.DATASETS)
    _check_model(c)
    _check_image_options(c)
    _check_choice("optimizer", c.optimizer, catalog.OPTIMIZERS)
    _check_choice("scheduler", c.scheduler, catalog.SCHEDULERS)
    _check_choice("precision (--amp)", c.amp, catalog.AMP_MODES)
    _check_choice("device", c.device, catalog.DEVICES)
    _check_choice("--cuda-graphs mode", c.cuda_graphs, catalog.CUDA_GRAPH_MODES)
    _check_choice("--on-nan policy", c.on_nan, catalog.NAN_POLICIES)
    _check_choice("--monitor metric", c.monitor, MONITORS)
    if c.threads is not None:
        _check_int("--threads", c.threads, 1)
    _check_int("--epochs", c.epochs, 1, MAX_EPOCHS)
    _check_int("--batch-size", c.batch_size, 1)
    _check_int("--eval-batch-size", c.eval_batch_size, 1)
    _check_int("--accum-steps", c.accum_steps, 1)
    _check_int("--patience", c.patience, 0)
    _check_int("--checkpoint-every", c.checkpoint_every, 0)
    _check_int("--plateau-patience", c.plateau_patience, 0)
    if c.limit_batches is not None:
        _check_int("--limit-batches", c.limit_batches, 1)
    if c.seed is not None:
        _check_int("--seed", c.seed, 0, MAX_SEED)
    _check_positive_number("--lr", c.lr)
    _check_positive_number("--weight-decay", c.weight_decay, allow_zero=True)
    _check_positive_number("--min-delta", c.min_delta, allow_zero=True)
    _check_positive_number("--clip-grad", c.clip_grad, allow_zero=True)
    _check_positive_number("--momentum", c.momentum, allow_zero=True)
    if len(c.synthetic_shape) != 3 or any(
        isinstance(s, bool) or not isinstance(s, int) or not 1 <= s <= MAX_COUNT for s in c.synthetic_shape
    ):
        raise UserError(f"--synthetic-shape must be CxHxW with positive sizes, got {c.synthetic_shape!r:.60}")
    _check_int("--synthetic-classes", c.synthetic_classes, 2, MAX_SYNTHETIC_CLASSES)
    _check_int("--synthetic-train", c.synthetic_train, 1)
    _check_int("--synthetic-val", c.synthetic_val, 1)
    if c.model == "simplecnn" and c.dataset == "synthetic" and min(c.synthetic_shape[1:]) < 8:
        raise UserError("simplecnn needs images of at least 8x8; use --model mlp for smaller shapes")


def _check_model(c: RunConfig) -> None:
    from .models.spec import parse

    spec = parse(c.model)
    if c.pretrained and spec.kind in ("builtin", "factory"):
        raise UserError(f"--pretrained: {c.model} has no pretrained weights; choose a torchvision model "
                        "(`tui-trainer list`) or timm:NAME, or drop --pretrained")


def _check_image_options(c: RunConfig) -> None:
    folder = is_image_folder(c.dataset)
    for flag, value in (("--val-split", c.val_split), ("--image-size", c.image_size)):
        if value is not None and not folder:
            raise UserError(f"{flag} applies to a folder of images, not to {c.dataset}")
    if c.val_split is not None:
        if isinstance(c.val_split, bool) or not isinstance(c.val_split, (int, float)) or not 0 < c.val_split < 1:
            raise UserError(f"--val-split must be a fraction between 0 and 1 (e.g. 0.1), got {c.val_split!r:.60}")
    if c.image_size is not None:
        _check_int("--image-size", c.image_size, 1, MAX_IMAGE_SIZE)
    if c.memory_budget is not None:
        _check_positive_number("--memory-budget", c.memory_budget)
    if c.workers is not None:
        _check_int("--workers", c.workers, 0, MAX_WORKERS)


def read_config_file(config_path: Path) -> RunConfig:
    """config.json as a validated RunConfig; anything else is one line naming the file."""
    import json

    try:
        with open(config_path, "rb") as fh:
            raw = fh.read(1_000_001)
        if len(raw) > 1_000_000:
            raise UserError("it is over 1 MB")
        config = RunConfig.from_dict(json.loads(raw.decode("utf-8")))
        validate(config)
    except (ValueError, TypeError, RecursionError, UserError, OSError) as exc:
        detail = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise UserError(f"{config_path} is not a valid run config ({detail}); restore it, or start a new run") from None
    return config


def parse_shape(text: str) -> tuple[int, int, int]:
    """'3x32x32' -> (3, 32, 32)."""
    parts = text.lower().replace(",", "x").split("x")
    try:
        shape = tuple(int(p) for p in parts)
    except ValueError:
        raise UserError(f"--synthetic-shape must look like 3x32x32, got '{text}'") from None
    if len(shape) != 3:
        raise UserError(f"--synthetic-shape must look like 3x32x32, got '{text}'")
    return shape  # type: ignore[return-value]
