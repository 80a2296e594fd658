"""While paused the engine is idle at a step boundary: a checkpoint asked for then (`c`) is saved
at once, and an LR change (`+`/`-`) is applied and reported at once, not when the run resumes."""

from __future__ import annotations

import threading
import time

import pytest
import torch

from tui_trainer import events as ev
from tui_trainer.data.loader import TensorLoader
from tui_trainer.engine import Trainer
from tui_trainer.engine.checkpoint import load_run_checkpoint

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class Recorder:
    """Keeps every event, and lets the test wait for one."""

    def __init__(self) -> None:
        self.events: list[ev.Event] = []
        self._cond = threading.Condition()

    def emit(self, event: ev.Event) -> None:
        with self._cond:
            self.events.append(event)
            self._cond.notify_all()

    def wait_for(self, event_type: type, timeout: float, **fields):
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = [e for e in self.events if isinstance(e, event_type)
                         and all(getattr(e, k) == v for k, v in fields.items())]
                if found:
                    return found[-1]
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no {event_type.__name__} {fields} within {timeout}s; saw "
                                         f"{[type(e).__name__ for e in self.events[-8:]]}")
                self._cond.wait(left)


def test_checkpoint_and_lr_change_while_paused_happen_at_once(tmp_path, blobs):
    x, y = blobs(n=256, features=8, classes=3)
    model = torch.nn.Linear(8, 3)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    rec = Recorder()
    trainer = Trainer(model, TensorLoader(x, y, 8), TensorLoader(x, y, 64), torch.nn.CrossEntropyLoss(), optimizer,
                      "cpu", tmp_path, sinks=[rec], progress_interval=0.0)

    class PauseInEpoch2:
        def emit(self, event):
            if isinstance(event, ev.StepProgress) and event.epoch == 2 and event.step == 5:
                trainer.control.pause()

    trainer.events.add(PauseInEpoch2())
    engine = threading.Thread(target=trainer.fit, args=(3,), daemon=True)
    engine.start()
    try:
        paused = rec.wait_for(ev.Paused, 30)
        assert paused.epoch == 2

        trainer.control.request_checkpoint()
        saved = rec.wait_for(ev.CheckpointSaved, 2.0, kind="manual")
        assert (saved.epoch, saved.step) == (2, paused.step)
        checkpoint = load_run_checkpoint(tmp_path / "last.pth")
        assert (checkpoint["epoch"], checkpoint["step_in_epoch"]) == (1, paused.step)

        trainer.control.scale_lr(0.5)
        changed = rec.wait_for(ev.LrChanged, 2.0, reason="manual")
        assert (changed.old_lr, changed.new_lr) == pytest.approx((0.1, 0.05))
        assert optimizer.param_groups[0]["lr"] == pytest.approx(0.05)

        assert not any(isinstance(e, ev.Resumed) for e in rec.events), "all of it happened while paused"
        assert engine.is_alive()
    finally:
        trainer.control.resume()
        engine.join(60)
    assert [e.status for e in rec.events if isinstance(e, ev.RunFinished)] == ["finished"]
    # the order a user sees in the log: paused, saved, LR changed, resumed
    order = [type(e).__name__ for e in rec.events if isinstance(e, (ev.Paused, ev.CheckpointSaved, ev.LrChanged,
                                                                    ev.Resumed)) and getattr(e, "kind", "manual")
             == "manual"]
    assert order[:4] == ["Paused", "CheckpointSaved", "LrChanged", "Resumed"]
