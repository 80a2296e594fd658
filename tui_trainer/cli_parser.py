"""The command line's parser: every command's flags, and the RunConfig a run's flags resolve to.
Imports no torch or Textual (`tui-trainer --help` must stay instant)."""

from __future__ import annotations

import argparse

from . import __version__, catalog
from .config import RunConfig, make_config, parse_shape
from .errors import UserError
from .lr_find_run import lr_flag, request_find
from .web import add_web_flags


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, not usage + traceback
        raise UserError(f"{message} (see `{self.prog} --help`)")


def _add_training_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("training")
    g.add_argument("--model", help="model: simplecnn, mlp, any torchvision model (resnet18, ...), timm:NAME, or "
                                   "path/to/file.py:factory (default: the dataset's; `tui-trainer list` shows them)")
    g.add_argument("--pretrained", action="store_true", default=None,
                   help="start from ImageNet weights (torchvision or timm) with a new head for the data's classes")
    g.add_argument("--epochs", type=int, help="number of epochs")
    g.add_argument("--batch-size", type=int, help="training batch size")
    g.add_argument("--eval-batch-size", type=int, help="validation batch size")
    g.add_argument("--lr", type=lr_flag, help="learning rate, or `find`: the LR range test first, then train with "
                                              "its suggestion (see `tui-trainer lr-find`)")
    g.add_argument("--weight-decay", type=float, help="weight decay")
    g.add_argument("--optimizer", help=f"optimizer: {', '.join(catalog.OPTIMIZERS)}")
    g.add_argument("--momentum", type=float, help="SGD momentum (default 0.9, Nesterov)")
    g.add_argument("--scheduler", help=f"LR schedule: {', '.join(catalog.SCHEDULERS)}")
    g.add_argument("--plateau-patience", type=int, help="epochs without improvement before plateau halves the LR")
    g.add_argument("--patience", type=int, help="early-stopping patience in epochs (0: off)")
    g.add_argument("--monitor", help="metric that picks the best epoch and drives early stopping: val_loss "
                                     "(default) or val_acc; ties go to the better value of the other")
    g.add_argument("--min-delta", type=float, help="smallest improvement of the monitored metric that counts")
    g.add_argument("--no-restore-best", dest="restore_best", action="store_false", default=None,
                   help="when early stopping, keep the last weights instead of restoring the best")
    g.add_argument("--accum-steps", type=int, help="micro-batches per optimizer step (gradient accumulation)")
    g.add_argument("--clip-grad", type=float, help="max gradient norm (default 1.0; 0 turns clipping off)")
    g.add_argument("--amp", help=f"mixed precision: {', '.join(catalog.AMP_MODES)} (default auto: bf16 on GPUs "
                                 "that support it)")
    g.add_argument("--on-nan", help="non-finite loss: stop (default) or skip the batch")
    g.add_argument("--augment", action=argparse.BooleanOptionalAction, default=None,
                   help="random crop + flip on the training device (default: on for cifar10)")
    g.add_argument("--channels-last", action="store_true", default=None, help="use channels_last memory format")
    g.add_argument("--compile", action="store_true", default=None, help="torch.compile the model")
    g.add_argument("--cuda-graphs", help="the training step as one CUDA graph: auto (default; eager until verified "
                                         "on a GPU), on (EXPERIMENTAL, unmeasured), off; the header says why")
    g.add_argument("--seed", type=int, help="random seed (default 0): a CPU run is repeatable")
    g.add_argument("--limit-batches", type=int, help="at most N batches per epoch (quick checks)")
    g = p.add_argument_group("where")
    g.add_argument("--run-dir", help="run directory (default runs/<dataset>-<model>-<time>)")
    g.add_argument("--data-dir", help="dataset directory (default ~/.cache/tui-trainer/data)")
    g.add_argument("--no-download", dest="download", action="store_false", default=None,
                   help="never try to download a missing dataset")
    g.add_argument("--device", help=f"device: {', '.join(catalog.DEVICES)}")
    g.add_argument("--checkpoint-every", type=int, help="save checkpoint_epoch_N.pth every N epochs (0: never)")
    _add_threads_flag(g)
    g = p.add_argument_group("synthetic dataset")
    g.add_argument("--synthetic-shape", type=parse_shape, help="sample shape CxHxW (default 3x32x32)")
    g.add_argument("--synthetic-classes", type=int, help="number of classes (default 10)")
    g.add_argument("--synthetic-train", type=int, help="training samples (default 5000)")
    g.add_argument("--synthetic-val", type=int, help="validation samples (default 1000)")
    g = p.add_argument_group("image folders")
    g.add_argument("--val-split", type=float, help="hold out this fraction of each class for validation (a folder "
                                                   "without val/), e.g. 0.1; the split is fixed by --seed")
    g.add_argument("--image-size", type=int, help="resize images to this side (default: their own size when they "
                                                  "all share it, else 224)")
    g.add_argument("--memory-budget", type=float, metavar="GB", help="keep the decoded images on the training "
                                                                     "device when they fit in this (default: see README)")
    g.add_argument("--workers", type=int, help="DataLoader workers when the images are streamed (default: CPU cores, "
                                               "at most 8)")
    g = p.add_argument_group("settings file")
    g.add_argument("--config", metavar="FILE.toml", help="read settings from a TOML file with the flags' names as "
                                                         "keys (batch-size = 128); flags given here override it")
    g.add_argument("--print-config", action="store_true", help="print the resolved settings as TOML and exit")


def run_flag_settings() -> dict[str, str]:
    """Every long flag of `tui-trainer run`, as a config key would spell it (`no_download`), and the
    setting it sets (`download`): a config file's unknown key may be a flag that no file can hold."""
    p = argparse.ArgumentParser(add_help=False)
    _add_training_flags(p)
    _add_output_flags(p)
    return {option[2:].replace("-", "_"): action.dest for action in p._actions
            for option in action.option_strings if option.startswith("--")}


def _add_threads_flag(g) -> None:
    g.add_argument("--threads", type=int, help="CPU threads for torch's operators (default: torch's choice, one per "
                                               "core; see the README on busy machines)")


def _add_output_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("output")
    g.add_argument("--headless", action="store_true", help="plain log lines instead of the live console "
                                                         "(automatic when stdout is not a terminal)")
    g.add_argument("--log-format", choices=catalog.LOG_FORMATS, default="text",
                   help="headless output: aligned text (default) or JSON lines")
    g.add_argument("--tensorboard", action="store_true", help="also write TensorBoard event files into the run "
                                                            'directory (pip install -e ".[tensorboard]")')
    g.add_argument("--notify", metavar="URL", help="POST a JSON message when the run ends (a Slack or Discord "
                                                   "incoming webhook)")
    g.add_argument("--detach", action="store_true", help="train in the background; print the run dir and attach command")
    g.add_argument("--on-hangup", choices=("continue", "stop"), default="continue", help="the console's terminal went "
                   "away: keep training (default) or save and stop")
    g = p.add_argument_group("under torchrun")
    g.add_argument("--dist-timeout", type=float, default=600.0, metavar="SECONDS",
                   help="how long a process waits for the others before the run fails (default 600)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="tui-trainer", description="Train PyTorch models from a terminal: a live console "
                     "when run in one, clean logs when piped.")
    parser.add_argument("--version", action="version", version=f"tui-trainer {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    run = sub.add_parser("run", help="train a model on a dataset", description="Train a model on a dataset.")
    run.add_argument("dataset", nargs="?", help=f"dataset: {', '.join(catalog.DATASETS)}, a folder of images, or "
                                                "an experiment file exp.py (optional with --config)")
    _add_training_flags(run)
    _add_output_flags(run)
    res = sub.add_parser("resume", help="continue a run from its newest valid checkpoint",
                         description="Continue a run from its newest valid checkpoint.")
    res.add_argument("run_dir", help="the run directory")
    res.add_argument("--epochs", type=int, help="train to this many epochs in total")
    res.add_argument("--device", help="device for the resumed run")
    res.add_argument("--cuda-graphs", help="the training step as one CUDA graph from here on: auto, on "
                                           "(EXPERIMENTAL), off (default: as the run was started)")
    _add_threads_flag(res)
    _add_output_flags(res)
    diag = sub.add_parser("diagnose", help="check data, model, loss and gradients on one batch",
                          description="Check data, model, initial loss and gradients on one batch.")
    diag.add_argument("dataset", nargs="?")
    _add_training_flags(diag)
    sub.add_parser("list", help="list datasets and models")
    show = sub.add_parser("show", help="open a finished run's dashboard from its events.jsonl")
    show.add_argument("run_dir")
    add_web_flags(show)
    from .commands import register_all

    register_all(sub)
    return parser


CONFIG_FLAGS = ("model", "epochs", "batch_size", "eval_batch_size", "lr", "weight_decay", "optimizer", "momentum",
                "scheduler", "plateau_patience", "patience", "min_delta", "restore_best", "accum_steps", "clip_grad",
                "amp", "on_nan", "augment", "channels_last", "compile", "cuda_graphs", "seed", "limit_batches",
                "run_dir", "data_dir", "download", "device", "checkpoint_every", "synthetic_shape", "synthetic_classes",
                "synthetic_train", "synthetic_val", "monitor", "threads", "pretrained", "val_split", "image_size",
                "memory_budget", "workers")


def config_from_args(args: argparse.Namespace) -> RunConfig:
    """The dataset's recipe, then the --config file's settings, then the flags given."""
    from_file: dict = {}
    if getattr(args, "config", None):
        from .config_file import load

        from_file = load(args.config)
    flags = {k: getattr(args, k, None) for k in CONFIG_FLAGS}
    overrides = {**from_file, **{k: v for k, v in flags.items() if v is not None}}
    find_lr = overrides.get("lr") == "find"  # `--lr find`, or lr = "find" in the file and no --lr given
    if find_lr:
        del overrides["lr"]
    dataset = overrides.pop("dataset", None)
    dataset = args.dataset if getattr(args, "dataset", None) is not None else dataset
    if dataset is None:
        raise UserError("no dataset: give one (`tui-trainer run cifar10`, or a folder of images), or set "
                        "dataset in the --config file")
    _refuse_settings_for_other_datasets(dataset, flags, from_file, getattr(args, "config", None))
    config = make_config(dataset, **overrides)
    return request_find(config) if find_lr else config


# Settings that mean something for some datasets only, and the datasets they apply to: given for
# another dataset they would be ignored without a word, so they are refused instead.
SYNTHETIC, FOLDER, EXPERIMENT = "the synthetic dataset", "a folder of images", "an experiment file"
DATASET_SETTINGS = {
    "synthetic_shape": (SYNTHETIC,), "synthetic_classes": (SYNTHETIC,), "synthetic_train": (SYNTHETIC,),
    "synthetic_val": (SYNTHETIC,), "val_split": (FOLDER,), "image_size": (FOLDER,), "memory_budget": (FOLDER,),
    "workers": (FOLDER, EXPERIMENT),
}


NOT_AUGMENTED = ("digits",)  # datasets whose loader has no random crop or flip


def _dataset_kind(dataset: str) -> str | None:
    from .config import is_image_folder
    from .experiment import is_experiment_file

    if dataset == "synthetic":
        return SYNTHETIC
    if is_experiment_file(dataset):
        return EXPERIMENT
    return FOLDER if is_image_folder(dataset) else None


def _refuse_settings_for_other_datasets(dataset: str, flags: dict, from_file: dict, config_path) -> None:
    """A dataset-specific flag given for another dataset, or such a key in the --config file set to
    anything but its default (what --print-config writes for every dataset), is one line."""
    import dataclasses

    defaults = {f.name: f.default for f in dataclasses.fields(RunConfig)}
    kind = _dataset_kind(dataset)
    for key, kinds in DATASET_SETTINGS.items():
        if kind in kinds:
            continue
        if flags.get(key) is not None:
            given = f"--{key.replace('_', '-')}"
        elif from_file.get(key, defaults[key]) != defaults[key]:
            given = f"{key.replace('_', '-')} (in {config_path})"
        else:
            continue
        raise UserError(f"{given} applies to {' or '.join(kinds)}, not to {dataset}")
    # Augmentation asked for where nothing augments: digits' 8x8 images are not, and an experiment
    # file's build_data makes its own data (--no-augment there asks for what happens anyway).
    if kind == EXPERIMENT or dataset in NOT_AUGMENTED:
        if flags.get("augment"):
            given = "--augment"
        elif from_file.get("augment") is True:
            given = f"augment (in {config_path})"
        else:
            return
        whose = "an experiment file (its build_data makes the data)" if kind == EXPERIMENT else dataset
        raise UserError(f"{given} applies to the image datasets and folders of images, not to {whose}")


def wants_tui(args: argparse.Namespace) -> bool:
    if getattr(args, "headless", False) or getattr(args, "log_format", "text") == "json":
        return False
    from .frontends import terminal_available

    return terminal_available()
