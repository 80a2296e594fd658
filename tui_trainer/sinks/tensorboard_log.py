"""--tensorboard: TensorBoard event files in the run directory, written by torch.utils.tensorboard.

Everything is on one axis, the training step (`(epoch - 1) * steps_per_epoch + step`), as
TensorBoard expects: per-epoch scalars (`epoch/...`) at the epoch's last step, the loss, accuracy
and LR of each window of steps the engine reports (`step/...`), and when the run ends its
hyperparameters with the final metrics (the HParams tab). A resumed run purges what the earlier
process logged past the point it continues from, so a curve never doubles back.

`tensorboard` is an optional extra: `check_available` refuses `--tensorboard` before anything is
written, without importing torch.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from .. import events as ev
from ..errors import UserError

INSTALL_HINT = 'pip install -e ".[tensorboard]" (or pip install tensorboard)'


def check_available() -> None:
    if importlib.util.find_spec("tensorboard") is None:
        raise UserError(f"--tensorboard needs the tensorboard package, which is not installed: {INSTALL_HINT}")


def hyperparameters(e: ev.RunStarted) -> dict:
    return {"dataset": e.dataset, "model": e.model, "optimizer": e.optimizer, "lr": e.lr,
            "weight_decay": e.weight_decay, "scheduler": e.scheduler, "batch_size": e.batch_size,
            "accum_steps": e.accum_steps, "epochs": e.num_epochs, "precision": e.precision,
            "clip_grad": e.clip_grad, "patience": e.patience, "monitor": e.monitor,
            "seed": -1 if e.seed is None else e.seed, "world_size": e.world_size}


class TensorBoardLog:
    """A sink writing RUN_DIR/events.out.tfevents.* (through SummaryWriter, created once the run
    has started and on the engine's thread, where torch is already loaded)."""

    def __init__(self, run_dir: str | os.PathLike) -> None:
        self.run_dir = Path(run_dir)
        self._writer = None
        self._started: ev.RunStarted | None = None
        self._steps = 1
        self._best: dict[str, float] = {}

    def _global_step(self, epoch: int, step: int) -> int:
        return max(0, epoch - 1) * self._steps + step

    def _open(self, first_step: int):
        """The writer, created at the first thing logged: a resumed run purges from there on."""
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            resumed = self._started is not None and self._started.resumed
            self._writer = SummaryWriter(log_dir=str(self.run_dir), purge_step=first_step if resumed else None,
                                         flush_secs=30)
        return self._writer

    def emit(self, event: ev.Event) -> None:
        if isinstance(event, ev.RunStarted):
            self.close()
            self._started, self._steps = event, max(1, event.steps_per_epoch)
        elif self._started is None:
            return
        elif isinstance(event, ev.StepProgress):
            step = self._global_step(event.epoch, event.step)
            writer = self._open(step)
            writer.add_scalar("step/loss", event.loss, step, walltime=event.t)
            writer.add_scalar("step/acc", event.acc, step, walltime=event.t)
            writer.add_scalar("step/lr", event.lr, step, walltime=event.t)
        elif isinstance(event, ev.EpochEnd):
            step = self._global_step(event.epoch, self._steps)
            writer = self._open(step)
            for name in ("train_loss", "train_acc", "val_loss", "val_acc", "lr", "epoch_time", "samples_per_sec"):
                writer.add_scalar(f"epoch/{name}", getattr(event, name), step, walltime=event.t)
            writer.flush()  # an epoch's curves are on disk as it ends
        elif isinstance(event, ev.RunFinished):
            self._write_hparams({"hparam/best_val_acc": event.best_val_acc,
                                 "hparam/best_val_loss": event.best_val_loss,
                                 "hparam/best_epoch": event.best_epoch,
                                 "hparam/epochs_completed": event.epochs_completed}, event.epochs_completed)
            self.close()
        elif isinstance(event, ev.RunFailed):
            self.close()

    def _write_hparams(self, metrics: dict, epochs: int) -> None:
        from torch.utils.tensorboard.summary import hparams

        metrics = {k: float(v) for k, v in metrics.items() if v is not None}
        step = self._global_step(epochs, self._steps)
        writer = self._open(step)
        # In this run's own files (SummaryWriter.add_hparams would start a sub-run beside it).
        for summary in hparams(hyperparameters(self._started), metrics):
            writer.file_writer.add_summary(summary, step)
        for name, value in metrics.items():
            writer.add_scalar(name, value, step)

    def close(self) -> None:
        if self._writer is not None:
            writer, self._writer = self._writer, None
            writer.close()
