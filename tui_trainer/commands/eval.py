"""`tui-trainer eval RUN|CHECKPOINT`: a saved run's weights evaluated again, on its own data.

The checkpoint is loaded as a resume loads one (the zip's CRCs, then `torch.load(weights_only=
True)`, then every field checked), the model and the data split are rebuilt from the run's
config.json, and the engine's own Validator (evaluation.py) scores them: the same pass, on the
same batches, as the one that produced report.json, so `--checkpoint best` reproduces its
numbers exactly. Nothing is written.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import UserError
from ..vocab import EXIT_OK

CHECKPOINT_NAMES = {"best": "best_model.pth", "last": "last.pth"}
# Which data each split is: only the torchvision datasets have a test split of their own, and
# today it is also the split every run validates on (there is no third one to keep apart).
OFFICIAL_TEST = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100", "mnist": "MNIST",
                 "fashion-mnist": "Fashion-MNIST", "svhn": "SVHN"}


def register(sub) -> None:
    p = sub.add_parser("eval", help="evaluate a saved run's checkpoint on its validation or test split",
                       description="Evaluate a run's checkpoint on the run's own data: accuracy, weighted and "
                                   "macro precision/recall/F1, per-class scores and the confusion matrix. "
                                   "Nothing is written.")
    p.add_argument("target", metavar="RUN|CHECKPOINT", help="a run directory, or a checkpoint file inside one")
    p.add_argument("--checkpoint", metavar="best|last|N",
                   help="which of the run's checkpoints: best (best_model.pth, default), last (last.pth) or N "
                        "(checkpoint_epoch_N.pth)")
    p.add_argument("--split", choices=("val", "test"), default="val",
                   help="val (default): the split the run validated on; test: the dataset's official test split "
                        "(CIFAR, MNIST, Fashion-MNIST, SVHN, where it is also the validation split)")
    p.add_argument("--json", action="store_true", help="print the results as one JSON object")
    p.add_argument("--device", help="device to evaluate on (default: the run's)")
    p.add_argument("--threads", type=int, help="CPU threads for torch's operators")
    p.set_defaults(func=main)


def choose_checkpoint(target: str, which: str | None) -> tuple[Path, Path]:
    """(the run directory, the checkpoint file) from the command line, checked without torch."""
    path = Path(target)
    if path.is_file():
        if which is not None:
            raise UserError(f"{target} is a checkpoint file: give the run directory with --checkpoint "
                            f"{which}, or the file alone")
        run_dir = path.parent
        if not (run_dir / "config.json").is_file():
            raise UserError(f"{target} is not a checkpoint in a run directory (no config.json beside it)")
        return run_dir, path
    if not path.is_dir():
        raise UserError(f"{target} does not exist; give a run directory (runs/NAME) or a checkpoint file in one")
    if not (path / "config.json").is_file():
        raise UserError(f"{target} is not a tui-trainer run directory (no config.json)")
    which = which or "best"
    if which in CHECKPOINT_NAMES:
        name = CHECKPOINT_NAMES[which]
    elif which.isdigit() and int(which) > 0:
        name = f"checkpoint_epoch_{int(which)}.pth"
    else:
        raise UserError(f"--checkpoint must be best, last or an epoch number, not {which!r:.40}")
    chosen = path / name
    if not chosen.is_file():
        present = sorted(p.name for p in path.glob("*.pth"))
        if not present:
            raise UserError(f"no checkpoint in {target}: the run stopped before it saved one, so there is "
                            "nothing to evaluate")
        raise UserError(f"no {name} in {target} (it has {', '.join(present)}); choose one with --checkpoint")
    return path, chosen


def split_description(dataset: str, split: str) -> str:
    """Which data `split` is for `dataset`, in words; UserError when the dataset has no such split."""
    from ..config import is_image_folder

    official = OFFICIAL_TEST.get(dataset)
    if official:
        return f"{official}'s official test split, which the run also validated on (its validation split)"
    if split == "test":
        what = ("digits has no test split: its validation split is a fixed 20% of scikit-learn's digits, "
                "held out from training" if dataset == "digits" else
                f"{Path(dataset).name} has no test split, only the validation images (val/ or --val-split)"
                if is_image_folder(dataset) else f"{dataset} has no test split, only its validation split")
        raise UserError(f"{what}; use --split val")
    if dataset == "digits":
        return "digits' validation split: a fixed stratified 20% of scikit-learn's digits, never trained on"
    if is_image_folder(dataset):
        return "the folder's validation images (val/, or the --val-split share of each class held out by seed)"
    return f"{dataset}'s validation split"


def main(args) -> int:
    from .. import runlog
    from ..config import read_config_file, validate
    from ..inputs import check_inputs

    run_dir, path = choose_checkpoint(args.target, args.checkpoint)
    runlog.check_run_files(run_dir)
    config_path = run_dir / runlog.CONFIG_NAME
    from ..cli import _refuse_a_script_run

    _refuse_a_script_run(run_dir, config_path)
    config = read_config_file(config_path)
    changes = {k: getattr(args, k) for k in ("device", "threads") if getattr(args, k) is not None}
    config = config.replace(**changes)
    validate(config)
    described = split_description(config.dataset, args.split)
    check_inputs(config, resume_dir=run_dir)  # the data are there (one line if not); the recorded config is the one built
    result = evaluate(config, path, run_dir)
    split = "test" if args.split == "test" else "validation"
    if args.json:
        print(json.dumps(as_json(result, run_dir, path, split, described), indent=2))
    else:
        for line in text_lines(result, path, split, described):
            print(line)
    return EXIT_OK


def evaluate(config, path: Path, run_dir: Path | None = None) -> dict:
    """Load `path` into the run's model and validate it on the run's validation loader with the
    run's loss (an experiment file's run: the model, data and loss of its copy in `run_dir`)."""
    import torch

    from ..engine import checkpoint as ckpt
    from ..engine.control import Control
    from ..engine.evaluation import Validator
    from ..engine.metrics import classification_metrics_from_confusion
    from ..engine.precision import resolve_precision
    from ..engine.process import SingleProcess
    from ..errors import CheckpointError
    from ..run_parts import parts_for
    from ..runner import check_compatible, resolve_device, seed_everything

    if config.threads is not None:
        torch.set_num_threads(config.threads)
    device = resolve_device(config.device)
    saved = ckpt.load_run_checkpoint(path, map_location="cpu", resumable=False)
    check_compatible(saved, config, advice=f"{path.name} belongs to another run: evaluate it in the run directory "
                                           "it was saved in")
    seed_everything(config.seed)
    parts = parts_for(config, run_dir)  # the built-in data and models, or the run's experiment file
    data = parts.build_data(config, device)
    if saved.get("num_classes") and saved["num_classes"] != data.num_classes:
        raise CheckpointError(f"{path.name} was trained for {saved['num_classes']} classes, but the data now have "
                              f"{data.num_classes}")
    model = parts.build_model(config, data, None)
    try:
        model.load_state_dict(saved["model_state_dict"])
    except (RuntimeError, KeyError, ValueError, TypeError) as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        detail = (lines[1] if len(lines) > 1 else lines[0] if lines else type(exc).__name__)[:200]
        raise CheckpointError(f"{path.name} does not fit the run's model ({detail})") from None
    model = model.to(device)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    precision = resolve_precision(config.amp, device)
    validator = Validator(data.val_loader, parts.build_loss(config), device, precision.autocast, SingleProcess(),
                          limit_batches=config.limit_batches, channels_last=config.channels_last,
                          num_classes=data.num_classes)
    outcome = validator.run(model, Control(), int(saved["epoch"]))
    metrics = classification_metrics_from_confusion(outcome.confusion.numpy(), data.class_names)
    step = int(saved.get("step_in_epoch") or 0)
    return {"metrics": metrics, "loss": outcome.loss, "count": outcome.count,
            "epoch": int(saved["epoch"]) + (1 if step else 0), "step": step,
            "limit_batches": config.limit_batches, "dataset": config.dataset}


def _report(result: dict, split: str):
    from ..engine.metrics import report_event

    return report_event(result["metrics"], split, result["loss"], 0)


def as_json(result: dict, run_dir: Path, path: Path, split: str, described: str) -> dict:
    from .. import events as ev

    data = ev.to_dict(_report(result, split))
    for key in ("event", "t", "best_epoch"):
        data.pop(key, None)
    return {"run_dir": str(run_dir), "checkpoint": str(path), "epoch": result["epoch"], "step": result["step"],
            "dataset": result["dataset"], "split_is": described, "samples": result["count"],
            "limit_batches": result["limit_batches"], **data}


def text_lines(result: dict, path: Path, split: str, described: str) -> list[str]:
    from .. import fmt
    from ..frontends.headless import report_lines

    weights = f"epoch {result['epoch']}" + (f", step {result['step']}" if result["step"] else "")
    limit = f" (the first {result['limit_batches']} batches, as the run validated)" if result["limit_batches"] else ""
    return [f"{path} ({weights}) on {split}: {result['count']:,} samples{limit}, loss {fmt.metric(result['loss'])}",
            f"  {split} = {described}",
            *report_lines(_report(result, split))[1:]]

