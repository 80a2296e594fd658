"""The live console on an experiment file's run, built as the CLI builds it: the header names
the file's model, keys reach the engine, and a stop saves what a built-in run saves."""

import time

import pytest

from tui_trainer.config import make_config
from tui_trainer.experiment import copy_into_run
from tui_trainer.frontends.tui.launch import build_app

from .screen import screen_text

pytestmark = pytest.mark.timeout(120)

EXPERIMENT = '''
import torch
from torch import nn
from torch.utils.data import TensorDataset


class BlobNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))

    def forward(self, x):
        return self.layers(x)


def build_model(cfg):
    return BlobNet()


def build_data(cfg):
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(512, 8, generator=g), torch.randint(0, 3, (512,), generator=g)
    return TensorDataset(x[:448], y[:448]), TensorDataset(x[448:], y[448:]), ["ant", "bee", "cow"]
'''


async def wait_until(pilot, condition, timeout: float = 60.0, what: str = "condition"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return
        await pilot.pause(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def test_the_console_trains_an_experiment_file(tmp_path):
    exp = tmp_path / "exp.py"
    exp.write_text(EXPERIMENT)
    run_dir = tmp_path / "run"
    # 2,000 epochs: the run never ends on its own while the test presses keys
    config = make_config(str(exp), epochs=2000, batch_size=16, patience=0, checkpoint_every=0, threads=1,
                         device="cpu", run_dir=str(run_dir))
    run_dir.mkdir()
    copy_into_run(config, run_dir)
    app, store, control, _ = build_app(config, run_dir, trainer_options={"progress_interval": 0.05})
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_until(pilot, lambda: store.snapshot().status == "RUNNING" and store.snapshot().step > 0,
                         what="training to start")
        await pilot.press("p")
        await wait_until(pilot, lambda: store.snapshot().status == "PAUSED", what="PAUSED")
        await pilot.pause(0.2)
        assert "exp.py: BlobNet" in screen_text(app)
        await pilot.press("p")
        await wait_until(pilot, lambda: len(store.snapshot().epochs_done) >= 1, what="an epoch")
        await pilot.press("s")
        await wait_until(pilot, lambda: store.snapshot().status == "STOPPED", what="STOPPED")
        await pilot.pause(0.2)
        assert store.snapshot().report.class_names == ("ant", "bee", "cow")
        await pilot.press("q")
    assert app.outcome.status == "stopped"
    for name in ("best_model.pth", "last.pth", "report.json", "events.jsonl", "experiment.py"):
        assert (run_dir / name).is_file(), name
