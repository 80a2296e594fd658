"""`Trainer.train()` in a user's own script behaves like `tui-trainer run`: the plain log where
there is no terminal (even with ui="tui"), SIGTERM saves last.pth, says so and ends the process
with 143 (as TrainingInterrupted, which a script may catch), and a save_dir is a run directory
that `tui-trainer show` reads."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor

import pytest

from _reliability import child_env, kill_group, load, of, snapshot, wait_for
from tui_trainer.testing import PtyRun

SCRIPT = textwrap.dedent('''
    import sys
    import torch
    from torch.utils.data import DataLoader, TensorDataset
    import tui_trainer
    from tui_trainer import MLP, Trainer

    TrainingInterrupted = getattr(tui_trainer, "TrainingInterrupted", SystemExit)  # older versions lack it

    save_dir, epochs, ui, catch = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4] == "catch"
    torch.manual_seed(0)
    x, y = torch.randn(256, 8), torch.randint(0, 3, (256,))
    loader = DataLoader(TensorDataset(x, y), batch_size=16)
    model = MLP(8, 3)
    trainer = Trainer(model, loader, loader, torch.nn.CrossEntropyLoss(),
                      torch.optim.SGD(model.parameters(), lr=0.05), "cpu", save_dir, class_names=["a", "b", "c"])
    try:
        histories = trainer.train(epochs, ui=None if ui == "default" else ui)
    except TrainingInterrupted as exc:
        if not catch:
            raise
        print(f"caught: code {exc.code}, {exc.reason}, {exc.checkpoint}", flush=True)
        sys.exit(0)
    print(f"script carried on with {len(histories[0])} epochs", flush=True)
''')


@pytest.fixture(scope="module")
def script(tmp_path_factory):
    path = tmp_path_factory.mktemp("script") / "train.py"
    path.write_text(SCRIPT)
    return path


def _start(script, save_dir, epochs: int, ui: str, catch: bool = False, **popen) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(script), str(save_dir), str(epochs), ui, "catch" if catch else "-"],
                            env=child_env(TERM="xterm-256color"), text=True, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **popen)


def test_ui_tui_without_a_terminal_prints_the_plain_log_and_returns(script, tmp_path):
    """`python script.py > out 2> err < /dev/null`: no console, no escape codes, no hang."""
    proc = _start(script, tmp_path / "run", 2, "tui", stdin=subprocess.DEVNULL)
    try:
        out, err = proc.communicate(timeout=90)
    finally:
        kill_group(proc)
    assert proc.returncode == 0, out + err
    assert "\x1b" not in out + err and "\r" not in out
    assert "script carried on with 2 epochs" in out
    assert "  data       custom: 256 train / 256 validation, 3 classes" in out
    assert "run finished after 2 epochs" in out


def _sigterm_scenario(script, save_dir, ui: str, catch: bool) -> dict:
    proc = _start(script, save_dir, 1000, ui, catch)
    try:
        wait_for(lambda: (save_dir / "last.pth").exists(), 120, "epoch 1's last.pth", proc)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        kill_group(proc)
    return {"code": proc.returncode, "out": out, "err": err, "dir": save_dir}


def _console_sigterm_scenario(script, save_dir) -> dict:
    run = PtyRun([str(script), str(save_dir), "1000", "tui", "-"], cwd=save_dir.parent, program=[sys.executable],
                 env={"OMP_NUM_THREADS": "1"})
    try:
        wait_for(lambda: (save_dir / "last.pth").exists(), 120, "epoch 1's last.pth")
        run.proc.send_signal(signal.SIGTERM)
        code = run.wait(timeout=60)
    finally:
        run.kill()
    return {"code": code, "out": bytes(run.output).decode(errors="replace"), "dir": save_dir}


@pytest.fixture(scope="module")
def sigterm(script, tmp_path_factory):
    """The headless SIGTERM scenarios side by side (each mostly waits for its child)."""
    base = tmp_path_factory.mktemp("sigterm")
    with ThreadPoolExecutor(2) as pool:
        futures = {"headless": pool.submit(_sigterm_scenario, script, base / "headless", "default", False),
                   "caught": pool.submit(_sigterm_scenario, script, base / "caught", "default", True)}
        return {name: f.result() for name, f in futures.items()}


def _saved_and_marked_interrupted(save_dir) -> None:
    assert load(save_dir / "last.pth")["epoch"] >= 1
    assert [e.status for e in of(save_dir, "RunFinished")] == ["interrupted"]


def test_sigterm_in_a_headless_script_saves_says_so_and_exits_143(sigterm):
    result = sigterm["headless"]
    assert result["code"] == 143, result["out"][-2000:] + result["err"]
    assert "Traceback" not in result["err"] and result["err"] == ""
    assert "terminate received: saving last.pth and exiting" in result["out"]
    assert f'resume with: trainer.train(..., resume_from="{result["dir"]}")' in result["out"]
    assert "script carried on" not in result["out"]  # no plots or evaluation on partial histories
    _saved_and_marked_interrupted(result["dir"])


def test_a_script_can_catch_the_interruption(sigterm):
    result = sigterm["caught"]
    assert result["code"] == 0, result["out"][-2000:] + result["err"]
    assert f"caught: code 143, SIGTERM, {result['dir'] / 'last.pth'}" in result["out"]
    _saved_and_marked_interrupted(result["dir"])


@pytest.mark.timeout(180)
def test_sigterm_under_the_console_saves_says_so_and_exits_143(script, tmp_path):
    result = _console_sigterm_scenario(script, tmp_path / "console")
    assert result["code"] == 143, result["out"][-3000:]
    assert "Traceback" not in result["out"]
    assert f"tui-trainer: interrupted (SIGTERM); saved {result['dir'] / 'last.pth'}" in result["out"]
    assert "script carried on" not in result["out"]
    _saved_and_marked_interrupted(result["dir"])


# ------------------------------------------------------------------ a script's run directory

@pytest.fixture
def api_trainer(blobs, one_torch_thread):
    import torch

    from tui_trainer import MLP, Trainer
    from tui_trainer.data.loader import TensorLoader

    def make(save_dir, sinks=()):
        torch.manual_seed(0)
        x, y = blobs(n=96, features=6, classes=3)
        model = MLP(6, 3)
        return Trainer(model, TensorLoader(x, y, 16), TensorLoader(x, y, 32), torch.nn.CrossEntropyLoss(),
                       torch.optim.SGD(model.parameters(), lr=0.05), "cpu", save_dir, sinks=sinks,
                       class_names=("north", "west", "south"))

    return make


def test_a_scripts_save_dir_is_a_run_directory_that_show_reads(api_trainer, cli, tmp_path):
    run_dir = tmp_path / "run"
    api_trainer(run_dir).train(2, ui="none")
    assert {"config.json", "events.jsonl", "report.json", "last.pth", "best_model.pth"} <= \
        {p.name for p in run_dir.iterdir()}
    config = json.loads((run_dir / "config.json").read_text())
    assert config["class_names"] == ["north", "west", "south"] and config["num_classes"] == 3
    assert (config["optimizer"], config["epochs"], config["batch_size"], config["monitor"]) == ("SGD", 2, 16,
                                                                                               "val_loss")
    (started,) = of(run_dir, "RunStarted")
    assert started.num_classes == 3 and started.class_names == ("north", "west", "south")
    assert json.loads((run_dir / "report.json").read_text())["class_names"] == ["north", "west", "south"]

    shown = cli("show", run_dir)
    assert shown.code == 0, shown.err
    assert "96 train / 96 validation, 3 classes" in shown.out and "run finished after 2 epochs" in shown.out

    before = snapshot(run_dir)
    refused = cli("resume", run_dir, "--headless")
    assert refused.code == 2 and len(refused.err.strip().splitlines()) == 1
    assert "trained by a Python script" in refused.err and "resume_from" in refused.err
    assert snapshot(run_dir) == before


def test_resume_from_continues_an_interrupted_script_run(api_trainer, tmp_path):
    from tui_trainer import events as ev

    run_dir = tmp_path / "run"
    first = api_trainer(run_dir)

    class QuitAfterEpoch2:
        def emit(self, event):
            if isinstance(event, ev.EpochEnd) and event.epoch == 2:
                first.control.request_stop("quit")

    first.events.add(QuitAfterEpoch2())
    assert len(first.train(4, ui="none")[0]) == 2
    histories = api_trainer(run_dir).train(4, ui="none", resume_from=run_dir)
    assert len(histories[0]) == 4 and histories[0][:2] == first.train_losses
    starts = of(run_dir, "RunStarted")
    assert [s.resumed for s in starts] == [False, True] and starts[1].start_epoch == 2
    assert [e.epoch for e in of(run_dir, "EpochEnd")] == [1, 2, 3, 4]
    assert json.loads((run_dir / "report.json").read_text())["epochs_completed"] == 4
