"""Which checkpoint files a run writes, when, and in what order; the best model read back.

After each epoch: `best_model.pth` (a new best), `checkpoint_epoch_N.pth` (every N epochs), then
`last.pth`, one snapshot for all three, written in that order by the CheckpointWriter off the
training thread. A kill between two of them leaves the epoch's complete state in the one written
first. A save someone asked for (a checkpoint key, a stop) is waited for. Only the main process
writes; every process takes part in a save (each sends its random state to the main one).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from .. import events as ev
from ..errors import NonFiniteLossError
from . import checkpoint as ckpt
from .checkpoint_writer import CheckpointWriter, clone_tensors

PERIODIC = "checkpoint_epoch_{}.pth"


class Checkpointing:
    def __init__(self, save_dir: Path | None, every: int, process, emit: Callable[[ev.Event], None],
                 header: Callable[[], dict]) -> None:
        self.save_dir = save_dir
        self.every = every
        self.process = process
        self.emit = emit
        self.header = header  # the checkpoint's own fields: format, class names, config, ...
        self.writer = CheckpointWriter()
        self.writes = save_dir is not None and process.is_main
        # The weights best_model.pth got in this session (every process keeps them): the end of
        # the run restores them from memory rather than reading the file back.
        self.best_weights: dict | None = None

    @property
    def failed(self) -> bool:
        return self.writer.failure is not None

    def prepare(self) -> None:
        self.writer.forget_failure()
        if not self.writes:
            return
        self.save_dir.mkdir(parents=True, exist_ok=True)
        for stale in ckpt.clean_stale_temporaries(self.save_dir):
            self.emit(ev.Notice(level="warning", message=f"removed {stale.name} left by an interrupted save"))

    def snapshot_weights(self, model, is_best: bool) -> dict | None:
        """The model's weights as they are now (early stopping may put older ones back before
        the epoch's checkpoints are queued; they must hold this epoch's). Every process keeps the
        best epoch's, to restore them at the end without reading best_model.pth back."""
        state = model.state_dict()
        kept = is_best and self.save_dir is not None and _on_host(state)
        return clone_tensors(state) if self.writes or kept else None

    def save_epoch(self, parts, state, is_best: bool, weights: dict | None = None) -> None:
        epoch = state.epoch
        if is_best and self.save_dir is not None:
            # Kept in host memory only: an accelerator's memory is too dear for a second copy of the
            # weights for the whole run, so there the end of the run reads best_model.pth back.
            self.best_weights = weights if weights is not None and _on_host(weights) else None
        files = []
        if is_best:
            files.append(("best_model.pth", "best"))
        if self.every and epoch % self.every == 0:
            files.append((PERIODIC.format(epoch), "periodic"))
        files.append(("last.pth", "last"))
        self.save(parts, state, files, weights)

    def save_now(self, parts, state, kind: str) -> None:
        """last.pth at this step boundary (mid-epoch: with the step and the epoch's running sums),
        on disk when this returns."""
        self.save(parts, state, [("last.pth", kind)], wait=True)

    def save(self, parts, state, files, weights: dict | None = None, wait: bool = False) -> None:
        """Queue one snapshot of `parts` for `files` ((name, kind) pairs, written in that order);
        wait: until they are on disk. weights: the model's, as snapshot_weights took them."""
        if self.save_dir is None:
            return
        mid_epoch = state.step_in_epoch > 0
        epoch, step = state.epoch + (1 if mid_epoch else 0), state.step_in_epoch
        rank_rng = self.process.gather_rng()  # every process takes part
        sums = self.process.reduce_sums(state.sums.as_dict()) if mid_epoch else None
        if not self.writes:
            return
        snapshot = parts.state_dict(snapshot=True, replace={"model_state_dict": weights} if weights else None)
        snapshot.update(self.header())
        if sums is not None:
            snapshot["epoch_sums"] = sums  # every process's: a resume carries them on the main one
        if rank_rng is not None:
            snapshot["rank_rng"] = rank_rng
        if not ckpt.all_finite(snapshot["model_state_dict"]):
            raise NonFiniteLossError(epoch, step, phase="weights")
        self.poll()
        self.writer.submit(snapshot, [(self.save_dir / name, kind) for name, kind in files], epoch, step)
        if wait:
            self.finish()

    def poll(self) -> None:
        """Announce the files written since the last call; raise a failed write's error."""
        for written in self.writer.take_written():
            self.emit(ev.CheckpointSaved(epoch=written.epoch, kind=written.kind, path=str(written.path),
                                         step=written.step))
        self.writer.raise_failure()

    def finish(self) -> None:
        """Wait for every queued write, announce them, raise a failed write's error."""
        self.writer.wait()
        self.poll()

    def abandon(self) -> None:
        """The run is failing anyway: wait for a write under way, announce what got written."""
        self.writer.wait()
        for written in self.writer.take_written():
            self.emit(ev.CheckpointSaved(epoch=written.epoch, kind=written.kind, path=str(written.path),
                                         step=written.step))

    def restore_missing_periodic(self, parts, state, resumed_mid_epoch: bool) -> None:
        """A resume at the end of epoch N writes checkpoint_epoch_N.pth if it is due and missing: a
        kill after best_model.pth (written first) but before it leaves it out, and training on
        would never write it. The state just loaded is exactly the one it would have held."""
        epoch = state.epoch
        if self.save_dir is None or resumed_mid_epoch or not epoch or not self.every or epoch % self.every:
            return
        name = PERIODIC.format(epoch)
        missing = self.process.is_main and not (self.save_dir / name).exists()
        missing = self.process.broadcast_object(missing)  # every process takes part in a save
        if missing:
            self.save(parts, state, [(name, "periodic")], wait=True)
            self.emit(ev.Notice(level="info", message=f"wrote {name}, which the interrupted run had not saved"))

    def load_best(self, model, device, state=None) -> bool:
        """Put best_model.pth's weights into `model`; False without one. state: the run's
        TrainState, when the weights this session saved there may be restored from memory."""
        if self.save_dir is None:
            return False
        if self.best_weights is not None and state is not None:
            model.load_state_dict(self.best_weights)
            self._loaded(state.best_epoch, state.best_val_loss, state.best_val_acc)
            return True
        self.finish()
        self.process.barrier()  # the main process has written it
        path = self.save_dir / "best_model.pth"
        if not path.exists():
            return False
        data = ckpt.load_run_checkpoint(path, map_location=device, resumable=False)
        model.load_state_dict(data["model_state_dict"])
        self._loaded(data.get("best_epoch"), data.get("best_val_loss"), data.get("best_val_acc", 0))
        return True

    def _loaded(self, epoch, loss, acc) -> None:
        self.emit(ev.Notice(level="info", message=f"loaded the best model (epoch {epoch}, "
                                                  + (f"val_loss {loss:.4f}, " if loss is not None else "")
                                                  + f"val acc {acc:.2f}%)"))

    def newest(self) -> str:
        if self.save_dir is None:
            return ""
        last = self.save_dir / "last.pth"
        return str(last) if last.exists() else ""


def _on_host(state: dict) -> bool:
    return all(value.device.type == "cpu" for value in state.values() if hasattr(value, "device"))
