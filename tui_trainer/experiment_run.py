"""Experiment files, the torch side: what the file's functions return is checked before anything
is written (`preflight`), then built again on the engine thread, seeded, for the run
(`ExperimentParts`, which `run_parts.parts_for` hands the runner).

What the functions may return:
- `build_data(cfg)`: `(train, val)` or `(train, val, class_names)`; `train` and `val` are
  map-style datasets giving `(input tensor, class index)` pairs, or DataLoaders over such
  datasets. Datasets are batched by tui-trainer (`--batch-size`, `--eval-batch-size`,
  `--workers`, default 0) in an order drawn from `--seed`; a training DataLoader keeps its own
  batching, and its order is drawn from the same seeded generator. Class names come from the
  third item, else the training dataset's `classes` (torchvision's datasets have one), else
  they are the numbers 0..N-1, N being the model's output width.
- `build_model(cfg)`: a `torch.nn.Module` whose output for a batch is `(batch, classes)`.
- `build_optimizer(cfg, params)`: a `torch.optim.Optimizer` (default: `--optimizer`, `--lr`, ...).
- `build_loss(cfg)`: a callable `loss(outputs, labels)` (default: cross-entropy).

Our errors (a missing function, the wrong kind of return value, an output that does not fit the
classes) are one line and exit 2; an exception raised by the user's code is their traceback and
exit 1 (UserCodeError).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import DataLoader, IterableDataset
from torch.utils.data._utils.collate import default_collate

from . import events as ev
from .errors import UserCodeError, UserError
from .experiment import check_copy, check_no_copy, load_for_run

REQUIRED = ("build_model", "build_data")
OPTIONAL = ("build_optimizer", "build_loss")


def _call(label: str, what: str, fn, *args):
    try:
        return fn(*args)
    except Exception as exc:  # noqa: BLE001 - their code's error: their traceback
        detail = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        raise UserCodeError(f"{what} in {label} raised {type(exc).__name__}" + (f": {detail}" if detail else "")
                            + "; fix it") from exc


def _what(value) -> str:
    return f"a {type(value).__name__}" + (f" of {len(value)}" if isinstance(value, (tuple, list)) else "")


def check_functions(module, label: str) -> None:
    for name in REQUIRED:
        fn = getattr(module, name, None)
        if fn is None:
            raise UserError(f"{label} defines no {name}(cfg); an experiment file defines build_model(cfg) and "
                            "build_data(cfg) (see examples/experiment.py)")
    for name in REQUIRED + OPTIONAL:
        fn = getattr(module, name, None)
        if fn is not None and not callable(fn):
            raise UserError(f"{label}: {name} is {_what(fn)}, not a function")


def _dataset(split):
    return split.dataset if isinstance(split, DataLoader) else split


def unpack_data(result, label: str):
    """(train, val, class_names or None) from what build_data returned; UserError if it is not that."""
    if not isinstance(result, (tuple, list)) or len(result) not in (2, 3):
        raise UserError(f"{label}: build_data(cfg) must return (train, val) or (train, val, class_names), datasets "
                        f"or DataLoaders; it returned {_what(result)}")
    train, val = result[0], result[1]
    for name, split in (("training", train), ("validation", val)):
        data = _dataset(split)
        if isinstance(data, IterableDataset) or not (hasattr(data, "__getitem__") and hasattr(data, "__len__")):
            raise UserError(f"{label}: build_data(cfg) returned {_what(split)} as the {name} set; return a map-style "
                            "dataset (with __len__ and __getitem__) or a DataLoader over one")
        if len(data) == 0:
            raise UserError(f"{label}: the {name} set build_data(cfg) returned is empty")
    names = result[2] if len(result) == 3 else getattr(_dataset(train), "classes", None)
    if names is not None:
        if isinstance(names, str) or not isinstance(names, (tuple, list)) or \
                not all(isinstance(n, str) for n in names) or len(names) < 2:
            if len(result) == 3:
                raise UserError(f"{label}: class_names (build_data's third item) must be a list of two or more "
                                f"strings, got {_what(names)}")
            names = None  # a dataset's `classes` of some other kind: not names we can use
    return train, val, tuple(names) if names is not None else None


def first_batch(train, label: str):
    """The first two training samples as one batch (x, y), collated as the run will."""
    data = _dataset(train)
    samples = [_call(label, f"the training set's __getitem__({i})", data.__getitem__, i)
               for i in range(min(2, len(data)))]
    collate = train.collate_fn if isinstance(train, DataLoader) else None
    if collate is not None and collate is not default_collate:
        batch = _call(label, "the training DataLoader's collate_fn", collate, samples)
    else:
        try:
            batch = default_collate(samples)
        except Exception:  # noqa: BLE001 - the samples are not what a batch is made of
            batch = None
    if not isinstance(batch, (tuple, list)) or len(batch) != 2 or not all(isinstance(t, torch.Tensor) for t in batch):
        raise UserError(f"{label}: the training set's samples are {_describe_sample(samples[0])}; each must be "
                        "(input, class index), the input a tensor (e.g. transforms.ToTensor())")
    x, y = batch
    if y.dim() != 1 or y.dtype.is_floating_point or y.dtype == torch.bool or y.dtype.is_complex:
        raise UserError(f"{label}: the training set's labels must be integer class indices, got a {y.dtype} "
                        f"tensor of shape {tuple(y.shape)} per batch")
    return x, y


def _describe_sample(sample) -> str:
    if isinstance(sample, (tuple, list)):
        return "(" + ", ".join(type(s).__name__ for s in sample) + ")"
    return type(sample).__name__


def check_model(model, x, y, names, label: str) -> int:
    """One forward pass on the first training samples, in eval mode, without gradients or any
    random draw: the output must be (batch, classes) with a class for every label. Returns the
    number of classes."""
    if not isinstance(model, torch.nn.Module):
        raise UserError(f"{label}: build_model(cfg) returned {_what(model)}, not a torch.nn.Module; return the "
                        "model itself")
    was_training = model.training
    x = x.to(next((p.device for p in model.parameters()), x.device))  # a model built on the GPU takes GPU inputs
    try:
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            model.eval()
            out = _call(label, f"the model's forward() on a batch of shape {tuple(x.shape)}", model, x)
    finally:
        model.train(was_training)
    if not isinstance(out, torch.Tensor) or out.dim() != 2 or out.shape[0] != len(x):
        got = f"shape {tuple(out.shape)}" if isinstance(out, torch.Tensor) else _what(out)
        raise UserError(f"{label}: the model's output for a batch of {len(x)} is {got}; return one tensor of shape "
                        "(batch, classes) from forward()")
    classes = int(out.shape[1])
    if names is not None and classes != len(names):
        raise UserError(f"{label}: the model's output has {classes} class scores, but the data have {len(names)} "
                        f"classes; build the last layer with {len(names)} outputs")
    if classes < 2:
        raise UserError(f"{label}: the model's output has {classes} class score; a classifier needs two or more")
    if int(y.min()) < 0 or int(y.max()) >= classes:
        raise UserError(f"{label}: the training set has label {int(y.max()) if int(y.max()) >= classes else int(y.min())}, "
                        f"but the model scores {classes} classes (labels 0 to {classes - 1})")
    return classes


def known_labels(split):
    """Every label of a split when it can be read without loading a sample (a TensorDataset's
    label tensor; a dataset's `targets` or `labels` when no target_transform changes them; a
    Subset of either), else None. Only a check: a split whose labels are not known this way is
    checked on its first batch alone."""
    from torch.utils.data import Subset, TensorDataset

    data = _dataset(split)
    indices = None
    while isinstance(data, Subset):
        indices = list(data.indices) if indices is None else [data.indices[i] for i in indices]
        data = data.dataset
    if isinstance(data, TensorDataset):
        labels = data.tensors[-1] if len(data.tensors) == 2 else None
    elif getattr(data, "target_transform", None) is None:
        labels = getattr(data, "targets", None)
        labels = getattr(data, "labels", None) if labels is None else labels
    else:
        labels = None
    if labels is None:
        return None
    try:
        labels = torch.as_tensor(labels)
    except Exception:  # noqa: BLE001 - targets of some other kind (boxes, strings): not class indices
        return None
    if labels.dim() != 1 or labels.dtype.is_floating_point or labels.dtype == torch.bool or labels.dtype.is_complex:
        return None
    if indices is not None:
        labels = labels[torch.as_tensor(indices, dtype=torch.long)] if indices else labels[:0]
    return labels if len(labels) == len(_dataset(split)) else None


def check_labels(splits, classes: int, label: str) -> None:
    """Every known label of the training and validation sets is a class the model scores: a label
    beyond it would fail the run part-way (cross-entropy's "Target 7 is out of bounds"), after the
    run directory was written."""
    for name, split in splits:
        labels = known_labels(split)
        if labels is None or len(labels) == 0:
            continue
        low, high = int(labels.min()), int(labels.max())
        if low < 0 or high >= classes:
            raise UserError(f"{label}: the {name} set has label {high if high >= classes else low}, but the model "
                            f"scores {classes} classes (labels 0 to {classes - 1})")


def _check_optimizer(optimizer, label: str):
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise UserError(f"{label}: build_optimizer(cfg, params) returned {_what(optimizer)}, not a "
                        "torch.optim.Optimizer")
    return optimizer


def _check_loss(loss, label: str):
    if not callable(loss):
        raise UserError(f"{label}: build_loss(cfg) returned {_what(loss)}; return a loss such as "
                        "torch.nn.CrossEntropyLoss()")
    return loss


def untouched_rng(fn, *args):
    """fn(*args) with every global generator (torch, Python, NumPy) put back afterwards."""
    from .engine.checkpoint import capture_rng, restore_rng

    state = capture_rng()
    try:
        return fn(*args)
    finally:
        restore_rng(state)


class ExperimentParts:
    """The run's data, model, optimizer and loss from the experiment file (the run directory's
    copy when it has one). See run_parts.BuiltinParts for the interface."""

    def __init__(self, config, run_dir: Path | None = None) -> None:
        self.module, self.warning = load_for_run(config, run_dir)
        self.label = Path(config.dataset).name
        check_functions(self.module, self.label)
        self.sample = None
        self.splits = ()
        self.names = None
        self.model_class = ""

    def build_data(self, config, device, rank: int = 0, world_size: int = 1, emit=None):
        from .data import DataBundle
        from .data.user_loader import adopt_loader, dataset_loader

        if self.warning and emit is not None:
            emit(ev.Notice(level="warning", message=self.warning))
        result = _call(self.label, "build_data(cfg)", self.module.build_data, config)
        train, val, self.names = unpack_data(result, self.label)
        self.splits = (("training", train), ("validation", val))
        self.sample = untouched_rng(first_batch, train, self.label)  # the seeded run draws as if not checked
        if world_size > 1 and (isinstance(train, DataLoader) or isinstance(val, DataLoader)):
            raise UserError(f"{self.label}: under torchrun build_data(cfg) must return datasets, not DataLoaders: "
                            "tui-trainer shards datasets over the processes")
        seed = config.seed if config.seed is not None else 0
        options = dict(seed=seed, workers=config.workers or 0, rank=rank, world_size=world_size,
                       pin_memory=torch.device(device).type == "cuda")
        train_loader = adopt_loader(train, seed) if isinstance(train, DataLoader) else \
            dataset_loader(train, config.batch_size, shuffle=True, **options)
        val_loader = val if isinstance(val, DataLoader) else \
            dataset_loader(val, config.eval_batch_size, shuffle=False, pad_shards=False, **options)
        # The class count is the model's output width when no names were given: set by build_model.
        names = self.names or ()
        return DataBundle(self.label, train_loader, val_loader, len(names), names, tuple(self.sample[0].shape[1:]))

    def build_model(self, config, data, emit=None):
        model = _call(self.label, "build_model(cfg)", self.module.build_model, config)
        classes = check_model(model, *self.sample, self.names, self.label)
        check_labels(self.splits, classes, self.label)
        data.num_classes = classes
        data.class_names = self.names or tuple(str(i) for i in range(classes))
        self.model_class = type(model).__name__
        return model

    def build_optimizer(self, config, params, device=None):
        fn = getattr(self.module, "build_optimizer", None)
        if fn is None:
            from .runner import build_optimizer

            return build_optimizer(config, params, device)
        return _check_optimizer(_call(self.label, "build_optimizer(cfg, params)", fn, config, params), self.label)

    def build_loss(self, config):
        fn = getattr(self.module, "build_loss", None)
        if fn is None:
            return torch.nn.CrossEntropyLoss()
        return _check_loss(_call(self.label, "build_loss(cfg)", fn, config), self.label)

    def describe(self, config, input_shape) -> str:
        return f"{self.label}: {self.model_class}" if self.model_class else self.label


def preflight(config, resume_dir: Path | None = None) -> None:
    """Before anything is written: load the file (a resume: the run's copy), call its functions
    and check what they return, on one batch of real samples. Raises UserError or UserCodeError.
    Nothing here draws from a random generator the run uses (the run builds everything again,
    seeded, on its own thread)."""
    from .models.factory import one_thread

    if resume_dir is not None:
        check_copy(resume_dir)
    elif config.run_dir:
        check_no_copy(Path(config.run_dir))
    with one_thread(), torch.random.fork_rng(devices=[]):
        parts = ExperimentParts(config, resume_dir)
        data = parts.build_data(config, torch.device("cpu"))
        model = parts.build_model(config, data)
        optimizer = parts.build_optimizer(config, model.parameters())
        loss_fn = parts.build_loss(config)
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
        x, y = (t.to(device) for t in parts.sample)
        out = _call(parts.label, "the model's forward()", model, x)
        loss_name = "the loss build_loss(cfg) returned" if hasattr(parts.module, "build_loss") else \
            "the default loss (cross-entropy) on the model's output"
        value = _call(parts.label, loss_name, loss_fn, out, y)
        if not isinstance(value, torch.Tensor) or value.numel() != 1:
            raise UserError(f"{parts.label}: the loss returned {_what(value)}, not a single-value tensor")
        del optimizer
