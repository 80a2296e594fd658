"""A run from a config: build data, model, optimizer and scheduler on the calling thread,
then train. The TUI calls this from its worker thread, headless mode from the main thread.

Everything torch-related is imported inside `execute`, after the first `Preparing` event,
so the console can draw its first frame while torch loads.
"""

from __future__ import annotations

import dataclasses
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from . import events as ev
from .config import RunConfig
from .errors import CheckpointError, UserError


@dataclass
class Outcome:
    status: str  # finished | early_stopped | stopped | interrupted | failed
    error: str = ""
    exit_code: int = 0
    run_dir: str = ""
    user_traceback: str = ""  # a failure raised in the user's own code (an experiment file, a factory): its frames


def resolve_device(name: str):
    import torch

    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)) if torch.cuda.device_count() > 1 else 0)
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA GPU is available here (torch.cuda.is_available() is False); "
                        "use --device cpu or auto")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise UserError("--device mps: Apple's Metal backend is not available here; use --device cpu or auto")
    if name == "cuda" and "LOCAL_RANK" in os.environ:
        return torch.device("cuda", int(os.environ["LOCAL_RANK"]))
    return torch.device(name)


def seed_everything(seed: int | None) -> None:
    if seed is None:
        return
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)  # NumPy's range; config checks --seed, this covers seed + rank
    torch.manual_seed(seed)


def busy_cpu_hint(threads: int) -> str:
    """A warning when torch will train on `threads` threads while other processes keep the cores
    busy: its threads then wait on each other, and one thread trained SimpleCNN on digits 6 to
    70 times faster on a shared 2-core machine (benchmarks/threads.py, README "Threads")."""
    try:
        load, cores = os.getloadavg()[0], len(os.sched_getaffinity(0))
    except (OSError, AttributeError):  # no load average or affinity on this platform
        return ""
    if threads <= 1 or load < cores - 0.5:
        return ""
    return (f"the CPU is busy (load {load:.1f} on {cores} cores): torch's {threads} threads will wait on each "
            "other; --threads 1 may train many times faster")


def build_optimizer(config: RunConfig, params, device=None):
    """The config's optimizer; on a CUDA device the fused implementation where torch has one for
    it (one kernel for the whole step, and the LR may be a device tensor: graphed_step.py)."""
    import torch

    kind = {"adamw": torch.optim.AdamW, "adam": torch.optim.Adam, "sgd": torch.optim.SGD}.get(config.optimizer)
    if kind is None:
        raise UserError(f"unknown optimizer '{config.optimizer}'")
    options = {"lr": config.lr, "weight_decay": config.weight_decay}
    if kind is torch.optim.SGD:
        options.update(momentum=config.momentum, nesterov=config.momentum > 0)
    if device is not None and torch.device(device).type == "cuda" and _supports_fused(kind):
        options["fused"] = True
    return kind(params, **options)


def _supports_fused(optimizer_class) -> bool:
    import inspect

    return "fused" in inspect.signature(optimizer_class).parameters


def build_trainer(config: RunConfig, run_dir: Path, sinks: Sequence[ev.Sink], control, emit, dist=None,
                  **trainer_options):
    """Construct everything for a run; returns (trainer, scheduler, early_stopping).
    dist: the process (torchrun's DistContext), None alone."""
    import torch

    from .engine import EarlyStopping, Trainer
    from .engine.lr_schedules import schedule_for_run
    from .engine.process import SingleProcess
    from .run_parts import parts_for

    process = dist if dist is not None else SingleProcess()
    rank, world = process.rank, process.world_size
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    # Under torchrun each rank draws its own dropout masks; DDP starts all from rank 0's weights.
    seed_everything(config.seed + rank if config.seed is not None else None)
    device = resolve_device(config.device)
    if config.threads is None and device.type == "cpu":
        hint = busy_cpu_hint(torch.get_num_threads())
        if hint:
            emit(ev.Notice(level="warning", message=hint))
    parts = parts_for(config, run_dir)  # the built-in data and models, or an experiment file's
    emit(ev.Preparing(stage="loading data", detail=config.dataset))
    data = parts.build_data(config, device, rank=rank, world_size=world, emit=emit)
    emit(ev.Preparing(stage="building model", detail=config.model))
    model = parts.build_model(config, data, emit).to(device)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = parts.build_optimizer(config, model.parameters(), device)
    if config.seed is not None:
        # Building may import modules that draw from Python's generator as they load (rich.style
        # does), and which were loaded already depends on the view (the console has loaded rich,
        # the plain log has not): training starts from the seed's own state of that generator, so
        # an augmentation using `random` draws the same numbers whichever view runs. NumPy's and
        # torch's generators are left as building left them (the data split, the weights).
        random.seed(config.seed + rank)
    if device.type == "cuda":
        # Every batch but an epoch's last has one shape: cuDNN's benchmark picks the fastest
        # algorithm for it once (unmeasured here: README, Performance).
        torch.backends.cudnn.benchmark = True
    if config.extra.get("lr_find"):  # `run --lr find`: the range test first, on these very parts
        from .lr_find_run import find_in_run

        config = find_in_run(config, data, model, optimizer, device, run_dir, emit, control, parts.build_loss(config))
    steps = len(data.train_loader)
    if config.limit_batches:
        steps = min(steps, config.limit_batches)
    opt_steps = -(-steps // config.accum_steps)
    scheduler = schedule_for_run(config.scheduler, config.epochs, opt_steps, config.plateau_patience)
    early = EarlyStopping(patience=config.patience, min_delta=config.min_delta, restore_best_weights=config.restore_best,
                          monitor=config.monitor) if config.patience > 0 else None
    run_model = process.wrap_model(model, device)
    if config.compile:
        emit(ev.Preparing(stage="compiling", detail="torch.compile (the first steps compile the model)"))
        run_model = torch.compile(run_model)
    trainer = Trainer(
        run_model, data.train_loader, data.val_loader, parts.build_loss(config), optimizer, device, run_dir,
        sinks=sinks, control=control, clip_grad=config.clip_grad, accum_steps=config.accum_steps,
        amp=config.amp, checkpoint_every=config.checkpoint_every, class_names=data.class_names,
        num_classes=data.num_classes, on_nan=config.on_nan, limit_batches=config.limit_batches,
        channels_last=config.channels_last, run_name=run_dir.name, dataset_name=config.dataset,
        model_name=parts.describe(config, data.input_shape), config=config.to_dict(), dist=process,
        compiled=config.compile, monitor=config.monitor, cuda_graphs=config.cuda_graphs, **trainer_options,
    )
    trainer.scheduler = scheduler
    trainer.early_stopping = early
    return trainer, scheduler, early


# What the weights, the optimizer state and the position in the data order depend on.
COMPATIBLE_KEYS = ("dataset", "model", "synthetic_shape", "synthetic_classes", "synthetic_train", "synthetic_val",
                   "optimizer", "scheduler", "accum_steps", "batch_size", "limit_batches")


RESUME_ADVICE = "resume with the config.json the run was started with, or start a new run"


def check_compatible(saved: dict, config: RunConfig, advice: str = RESUME_ADVICE) -> None:
    """Refuse to resume into (or evaluate with) a run that differs in what the weights depend on."""
    old = saved.get("config") or {}
    new = config.to_dict()
    for key in COMPATIBLE_KEYS:
        if key in old and old[key] != new.get(key):
            raise CheckpointError(f"the checkpoint was trained with {key}={old[key]!r:.60}, but the run's config says "
                                  f"{new.get(key)!r:.60}; {advice}")


def select_checkpoint(run_dir: Path, config: RunConfig) -> tuple[Path, dict, list[str]]:
    """The checkpoint a resume continues from: the newest valid one, checked against the config.

    Raises UserError (nothing written) when none can be used, when one holds pickled code, or
    when the run has nothing left to do. Returns (path, checkpoint, warnings about skipped files).
    """
    from .engine import checkpoint as ckpt

    path, saved, problems = ckpt.find_resumable(run_dir)
    check_compatible(saved, config)
    done, step = saved["epoch"], saved.get("step_in_epoch") or 0
    if config.scheduler == "onecycle" and (saved.get("config") or {}).get("epochs", config.epochs) != config.epochs:
        raise UserError("a onecycle schedule cannot be extended; resume without --epochs")
    report = _read_report(Path(run_dir) / "report.json")
    completed = report.get("epochs_completed")
    completed = completed if isinstance(completed, int) and not isinstance(completed, bool) else done
    if report.get("status") == "early_stopped" and done <= completed:
        raise UserError(f"the run already stopped early after epoch {completed} "
                        "(no improvement within its patience); there is nothing to resume")
    if done > config.epochs or (done == config.epochs and not step and report.get("status") == "finished"):
        raise UserError(f"the run already completed {done} epochs; pass --epochs N with N > {done} to train further")
    return path, saved, problems


def _read_report(path: Path) -> dict:
    """report.json's status and epochs, or {} when there is none yet (a run killed before its end
    writes none; the resume writes it) or it is damaged (it is rewritten at the end)."""
    import json

    try:
        with open(path, "rb") as fh:
            report = json.loads(fh.read(64 * 1024 * 1024).decode("utf-8"))
    except (OSError, ValueError, RecursionError):
        return {}
    return report if isinstance(report, dict) else {}


def refuse_a_run_stopped_by_the_user(run_dir: Path, epochs: int | None) -> None:
    """A run stopped with `s` counts as done (it was evaluated and reported): plain `resume`
    refuses it, `resume --epochs N` trains it on to N epochs. How the last session of the run
    ended is the last RunFinished in events.jsonl, with no RunStarted after it."""
    import json

    from .runlog import EVENTS_NAME

    last = None
    try:
        with open(run_dir / EVENTS_NAME, encoding="utf-8") as fh:
            for line in fh:
                if '"event":"RunFinished"' in line or '"event":"RunStarted"' in line:
                    try:
                        last = json.loads(line)
                    except (ValueError, RecursionError):
                        continue  # a torn or damaged line: what came before still counts
    except (OSError, UnicodeDecodeError):
        return  # no log to tell: the checkpoint decides
    if not isinstance(last, dict) or last.get("event") != "RunFinished" or last.get("status") != "stopped":
        return
    done = last.get("epochs_completed")
    if epochs is None:
        raise UserError(f"the run was stopped with `s` after epoch {done}, so it counts as done; "
                        "pass --epochs N to train it on to N epochs")
    if isinstance(done, int) and epochs <= done:
        raise UserError(f"the run was stopped with `s` after epoch {done}; pass --epochs N with N > {done} "
                        "to train it on")


def execute(config: RunConfig, run_dir: Path, sinks: Sequence[ev.Sink], control, *,
            resume: bool = False, dist=None, system_interval: float | None = 2.0,
            trainer_options: dict | None = None, checkpoint: tuple | None = None) -> Outcome:
    """Run training to the end. Errors the user can fix raise UserError before training
    starts; failures during training are reported as events and returned as an Outcome.

    checkpoint: for a resume, what `select_checkpoint` returned, when the caller already chose
    (the headless CLI does, so that a bad checkpoint is refused before anything is written).
    dist: the process this is, when torchrun started several (the caller created it); None alone."""
    from .engine.process import SingleProcess

    process = dist if dist is not None else SingleProcess()
    fan = ev.Fanout(sinks)
    is_main = process.is_main
    emit = fan.emit if is_main else (lambda e: None)
    emit(ev.Preparing(stage="loading torch"))
    import torch  # noqa: F401,I001  (the slow import, now that the first frame is up)

    from .engine.system import SystemSampler

    def sample_emit(event):  # under torchrun the system panel also shows each rank's throughput
        if isinstance(event, ev.SystemSample) and process.rank_rates:
            event = dataclasses.replace(event, rank_samples_per_sec=process.rank_rates)
        emit(event)

    if is_main:
        process.on_peer_failure = lambda text: emit(ev.Notice(level="error", message=text))
    sampler = SystemSampler(sample_emit, system_interval).start() if system_interval and is_main else None
    trainer = None
    try:
        saved = None
        if resume:
            emit(ev.Preparing(stage="loading checkpoint", detail=str(run_dir)))
            # a run stopped during its `--lr find` sweep resumes with the LR it has: never a second sweep
            config = config.replace(extra={k: v for k, v in config.extra.items() if k != "lr_find"})
            path, saved, problems = checkpoint if checkpoint is not None else select_checkpoint(run_dir, config)
            for problem in problems:
                emit(ev.Notice(level="warning", message=problem))
            emit(ev.Notice(level="info", message=f"resuming from {path.name} (epoch {saved['epoch']}"
                                                 + (f", step {saved['step_in_epoch']})" if saved.get("step_in_epoch") else ")")))
        trainer_control = process.attach(control)  # under torchrun: fed by the exchanges
        trainer, scheduler, early = build_trainer(config, run_dir, [fan] if is_main else [], trainer_control,
                                                  emit, process, **(trainer_options or {}))
        if saved is not None:
            from .engine.process import resume_for_process_count

            saved = resume_for_process_count(saved, process, emit)
            _load_checkpoint_into(trainer, saved, path)
        trainer.fit(config.epochs, scheduler, early)
        return Outcome(trainer.status, run_dir=str(run_dir))
    except UserError as exc:
        message = str(exc)
        if trainer is None or trainer.status != "failed":
            message = process.describe_failure(exc, message)
            emit(ev.RunFailed(error=message))
        return Outcome("failed", message, exc.exit_code, str(run_dir))
    except KeyboardInterrupt:
        return Outcome("interrupted", "interrupted", 130, str(run_dir))
    except Exception as exc:  # noqa: BLE001 - reported as RunFailed by the trainer (or here, before it)
        failed = trainer is not None and trainer.status == "failed"
        message = getattr(trainer, "failure", None) or str(exc) if failed else f"{type(exc).__name__}: {exc}"
        if trainer is None:
            message = process.describe_failure(exc, message)
            emit(ev.RunFailed(error=message))
        from .inputs import user_code_files, user_traceback

        return Outcome("failed", message, 1, str(run_dir), user_traceback(exc, user_code_files(config, run_dir)))
    finally:
        if sampler is not None:
            sampler.stop()


def _load_checkpoint_into(trainer, saved: dict, path: Path) -> None:
    """Restore a checkpoint; one that does not fit the model is a clear UserError, not a traceback."""
    saved_classes = saved.get("num_classes")
    if saved_classes and trainer.num_classes and saved_classes != trainer.num_classes:
        raise CheckpointError(f"{path.name} was trained for {saved_classes} classes, but the data now have "
                              f"{trainer.num_classes}; start a new run")
    try:
        trainer.load_state_dict(saved)
    except (RuntimeError, KeyError, ValueError, TypeError, IndexError) as exc:
        lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
        detail = (lines[1] if len(lines) > 1 else lines[0] if lines else type(exc).__name__)[:200]
        raise CheckpointError(f"{path.name} does not fit the model ({detail}); resume with the code and "
                              "config.json the run was started with, or start a new run") from None
