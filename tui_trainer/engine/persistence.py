"""A trainer's state in checkpoints: what goes in (everything an exact resume needs), how it is
written (atomically, never with non-finite weights) and read back. A mixin of `Trainer`."""

from __future__ import annotations

from pathlib import Path

from .. import events as ev
from ..errors import NonFiniteLossError
from . import checkpoint as ckpt
from .outcomes import CheckpointWriteError


class Persistence:
    def _history_dict(self) -> dict:
        return {"train_loss": list(self.train_losses), "train_acc": list(self.train_accs),
                "val_loss": list(self.val_losses), "val_acc": list(self.val_accs), "lr": list(self.lrs)}

    def state_dict(self, progress: dict | None = None, model_state: dict | None = None) -> dict:
        """Everything needed to continue exactly where training is now (model_state: the
        weights to store instead of the model's current ones)."""
        loader_state = None
        if hasattr(self.train_loader, "state_dict"):
            loader_state = self.train_loader.state_dict(progress["step"] if progress else 0)
        es = self.early_stopping
        return {
            "format": ckpt.FORMAT, "format_version": ckpt.FORMAT_VERSION,
            "epoch": self.epoch, "step_in_epoch": progress["step"] if progress else 0,
            "epoch_sums": progress["sums"] if progress else None,
            "epoch_start_lr": self._epoch_start_lr if progress else None,
            "global_step": self.global_step,
            "model_state_dict": model_state if model_state is not None else self.raw_model.state_dict(),
            "optimizer_state_dict": self.optimizer.state_dict(),
            "scheduler_state_dict": self.scheduler.state_dict() if self.scheduler is not None else None,
            "scaler_state_dict": self.scaler.state_dict() if self.scaler is not None else None,
            "early_stopping": es.state_dict() if es is not None else None,
            "history": self._history_dict(),
            "best_val_acc": self.best_val_acc, "best_epoch": self.best_epoch,
            "best_val_loss": self.best_val_loss, "monitor": self.monitor,
            "manual_lr_changes": list(self.manual_lr_changes),
            "rng": ckpt.capture_rng(), "loader": loader_state,
            "num_classes": self.num_classes, "class_names": list(self.class_names or ()),
            "model_name": self.model_name, "config": self.config,
            "active_time": self._active_time,
            "world_size": self.dist.world_size if self.dist is not None else 1,
        }

    def save(self, filename: str, kind: str, progress: dict | None = None,
             model_state: dict | None = None) -> Path | None:
        if self.save_dir is None:
            return None
        # Every rank reaches each save; each sends rank 0 its random state, for an exact resume.
        rank_rng = self.dist.gather_rng() if self.dist is not None else None
        if not self.is_main:
            return None
        state = self.state_dict(progress, model_state)
        if rank_rng is not None:
            state["rank_rng"] = rank_rng
        if not ckpt.all_finite(state["model_state_dict"]):
            raise NonFiniteLossError(self.epoch + (1 if progress else 0), progress["step"] if progress else 0,
                                     phase="weights")
        path = self.save_dir / filename
        try:
            ckpt.atomic_save(state, path)
        except OSError as exc:
            raise CheckpointWriteError(f"could not write {path}: {exc.strerror or exc}; "
                                       "the previous checkpoint is intact",
                                       self.epoch + (1 if progress else 0), progress["step"] if progress else 0) from None
        self.emit(ev.CheckpointSaved(epoch=self.epoch + (1 if progress else 0), kind=kind, path=str(path),
                                     step=progress["step"] if progress else 0))
        return path

    def save_checkpoint(self, epoch: int, is_best: bool = False) -> None:
        """The seed's method: a periodic checkpoint for (0-based) `epoch`, and best_model.pth."""
        self.save(f"checkpoint_epoch_{epoch + 1}.pth", "periodic")
        if is_best:
            self.save("best_model.pth", "best")

    def restore_missing_periodic(self) -> None:
        """A resume at the end of epoch N writes checkpoint_epoch_N.pth if it is due and missing: a
        kill after best_model.pth (written first) but before it leaves it out, and training on
        would never write it. The state just loaded is exactly the one it would have held."""
        epoch = self.epoch
        if self.save_dir is None or self._resume is not None or not epoch or not self.checkpoint_every \
                or epoch % self.checkpoint_every:
            return
        name = f"checkpoint_epoch_{epoch}.pth"
        missing = self.is_main and not (self.save_dir / name).exists()
        if self.dist is not None:  # every rank takes part in a save: rank 0 decides for all
            missing = self.dist.broadcast_object(missing)
        if missing:
            self.save(name, "periodic")
            self.emit(ev.Notice(level="info", message=f"wrote {name}, which the interrupted run had not saved"))

    def load_best_model(self) -> bool:
        if self.save_dir is None:
            return False
        path = self.save_dir / "best_model.pth"
        if self.dist is not None:
            self.dist.barrier()
        if not path.exists():
            return False
        data = ckpt.load_run_checkpoint(path, map_location=self.device, resumable=False)
        self.raw_model.load_state_dict(data["model_state_dict"])
        loss = data.get("best_val_loss")
        self.emit(ev.Notice(level="info", message=f"loaded the best model (epoch {data.get('best_epoch')}, "
                                                  + (f"val_loss {loss:.4f}, " if loss is not None else "")
                                                  + f"val acc {data.get('best_val_acc', 0):.2f}%)"))
        return True

    def load_state_dict(self, data: dict) -> None:
        """Restore a checkpoint made by `state_dict` (call before `fit`)."""
        self.raw_model.load_state_dict(data["model_state_dict"])
        self.optimizer.load_state_dict(data["optimizer_state_dict"])
        if self.scheduler is not None and data.get("scheduler_state_dict") is not None:
            self.scheduler.load_state_dict(data["scheduler_state_dict"])
        if self.scaler is not None and data.get("scaler_state_dict") is not None:
            self.scaler.load_state_dict(data["scaler_state_dict"])
        if self.early_stopping is not None and data.get("early_stopping") is not None:
            self.early_stopping.load_state_dict(data["early_stopping"])
        h = data["history"]
        self.train_losses, self.train_accs = list(h["train_loss"]), list(h["train_acc"])
        self.val_losses, self.val_accs, self.lrs = list(h["val_loss"]), list(h["val_acc"]), list(h["lr"])
        self.best_val_acc, self.best_epoch = data["best_val_acc"], data["best_epoch"]
        self.best_val_loss = data.get("best_val_loss")
        if self.best_val_loss is None and 0 < self.best_epoch <= len(self.val_losses):  # older checkpoints
            self.best_val_loss = self.val_losses[self.best_epoch - 1]
        self.epoch, self.global_step = data["epoch"], data["global_step"]
        self.manual_lr_changes = list(data.get("manual_lr_changes") or [])
        self._active_time = float(data.get("active_time", 0.0))
        if data.get("loader") is not None and hasattr(self.train_loader, "load_state_dict"):
            self.train_loader.load_state_dict(data["loader"])
        if data.get("step_in_epoch") and data.get("loader") is not None and hasattr(self.train_loader, "load_state_dict"):
            self._resume = {"step": data["step_in_epoch"], "sums": data["epoch_sums"],
                            "epoch_start_lr": data.get("epoch_start_lr")}
        ckpt.restore_rng(data["rng"])

    def _restored_history(self) -> dict:
        """The RunStarted fields of a resumed run: what the epochs before the resume left."""
        steps = max(1, self.steps_per_epoch())
        changes = tuple((c["epoch"] - 1 + min(c["step"], steps) / steps, c["lr"], c.get("reason", "manual"))
                        for c in self.manual_lr_changes)
        es = self.early_stopping
        return dict(history_train_loss=tuple(self.train_losses), history_train_acc=tuple(self.train_accs),
                    history_val_loss=tuple(self.val_losses), history_val_acc=tuple(self.val_accs),
                    history_lr=tuple(self.lrs), best_epoch=self.best_epoch,
                    best_val_acc=self.best_val_acc if self.best_epoch else None, best_val_loss=self.best_val_loss,
                    lr_changes=changes, early_stop_counter=es.counter if es is not None else 0)

    def _newest_checkpoint(self) -> str:
        if self.save_dir is None:
            return ""
        last = self.save_dir / "last.pth"
        return str(last) if last.exists() else ""

