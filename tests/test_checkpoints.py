"""Checkpoints that survive crashes: atomic writes (a full disk or SIGKILL mid-save leaves the
previous file intact), validation on load with fallback, no unpickling of code, and one writer
per run directory."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from _reliability import (cli_main, kill_group, load, of, one_thread, snapshot, spawn, temporaries, tiny_run_args,
                          wait_for, write_malicious_checkpoint)


@pytest.fixture(autouse=True)
def _single_thread():
    with one_thread():
        yield


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A finished 3-epoch run with a periodic checkpoint at epoch 2 (read-only for the tests)."""
    run_dir = tmp_path_factory.mktemp("finished") / "run"
    with one_thread():
        code, out, err = cli_main(tiny_run_args(run_dir, 3, "--checkpoint-every", "2"))
    assert code == 0, out + err
    return run_dir


def _copy(run_dir: Path, dest: Path) -> Path:
    import shutil

    shutil.copytree(run_dir, dest)
    return dest


def _flip_byte_in_tensor_data(path: Path) -> None:
    """Corrupt one byte inside a stored tensor (not in the zip structure), as a bad disk would."""
    with zipfile.ZipFile(path) as zf:
        info = max((i for i in zf.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
        offset = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    with open(path, "r+b") as fh:
        fh.seek(offset + info.file_size // 2)
        byte = fh.read(1)
        fh.seek(-1, os.SEEK_CUR)
        fh.write(bytes([byte[0] ^ 0x5A]))


# ----------------------------------------------------------------------------- validation on load
def test_our_checkpoints_load_with_weights_only(finished_run):
    import torch

    for name in ("last.pth", "best_model.pth", "checkpoint_epoch_2.pth"):
        data = torch.load(finished_run / name, map_location="cpu", weights_only=True)
        assert data["format"] == "tui-trainer/checkpoint"


def test_a_flipped_byte_is_caught_although_torch_load_alone_accepts_it(tmp_path, finished_run):
    import torch

    from tui_trainer.engine import checkpoint as ckpt
    from tui_trainer.errors import CheckpointError

    path = tmp_path / "last.pth"
    path.write_bytes((finished_run / "last.pth").read_bytes())
    _flip_byte_in_tensor_data(path)
    silently_wrong = torch.load(path, map_location="cpu", weights_only=True)  # no error: why we check CRCs
    assert silently_wrong["format"] == "tui-trainer/checkpoint"
    with pytest.raises(CheckpointError, match=r"is corrupted \(CRC mismatch in "):
        ckpt.safe_load(path)


@pytest.mark.parametrize("damage, message", [
    (lambda b: b[: len(b) // 2], "is truncated or corrupted"),
    (lambda b: b"", "is empty (0 bytes)"),
    (lambda b: os.urandom(4096), "is truncated or corrupted"),
], ids=["truncated", "empty", "garbage"])
def test_damaged_checkpoints_are_reported(tmp_path, finished_run, damage, message):
    from tui_trainer.engine import checkpoint as ckpt
    from tui_trainer.errors import CheckpointError

    path = tmp_path / "last.pth"
    path.write_bytes(damage((finished_run / "last.pth").read_bytes()))
    with pytest.raises(CheckpointError) as info:
        ckpt.load_run_checkpoint(path)
    assert message in str(info.value)


def test_resume_falls_back_to_the_previous_valid_checkpoint_with_a_warning(tmp_path, finished_run):
    run_dir = _copy(finished_run, tmp_path / "run")
    _flip_byte_in_tensor_data(run_dir / "last.pth")
    (run_dir / "best_model.pth").write_bytes((run_dir / "best_model.pth").read_bytes()[:-1000])
    code, out, err = cli_main(["resume", run_dir, "--headless", "--epochs", "4"])
    assert code == 0, out + err
    assert "warning: skipping last.pth: checkpoint" in out and "CRC mismatch" in out
    assert "warning: skipping best_model.pth: checkpoint" in out and "is truncated or corrupted" in out
    resumed = [e for e in of(run_dir, "RunStarted") if e.resumed]
    assert [e.start_epoch for e in resumed] == [2]  # from checkpoint_epoch_2.pth, the newest valid one
    assert [e.epoch for e in of(run_dir, "EpochEnd")] == [1, 2, 3, 3, 4]
    assert load(run_dir / "last.pth")["epoch"] == 4


def test_resume_fails_with_one_line_when_no_checkpoint_is_valid(tmp_path, finished_run):
    run_dir = _copy(finished_run, tmp_path / "run")
    for path in run_dir.glob("*.pth"):
        path.write_bytes(path.read_bytes()[:100])
    before = snapshot(run_dir)
    code, out, err = cli_main(["resume", run_dir, "--headless", "--epochs", "4"])
    assert (code, out) == (2, "")
    assert err.startswith(f"tui-trainer: error: no valid checkpoint in {run_dir}: skipping last.pth")
    assert len(err.splitlines()) == 1
    assert snapshot(run_dir) == before


# ----------------------------------------------------------------------------- no code execution
def test_a_checkpoint_with_pickled_code_is_refused_without_running_it(tmp_path):
    from tui_trainer.engine import checkpoint as ckpt

    marker = tmp_path / "created-by-payload"
    write_malicious_checkpoint(tmp_path / "last.pth", marker)
    with pytest.raises(ckpt.UnsafeCheckpointError) as info:
        ckpt.safe_load(tmp_path / "last.pth")
    message = str(info.value)
    assert "refusing to load" in message and "it references io.open" in message
    assert "\x1b" not in message and "weights_only=False" not in message and "\n" not in message
    assert not marker.exists()


def test_resume_stops_at_a_planted_checkpoint_instead_of_falling_back(tmp_path, finished_run):
    """A valid checkpoint_epoch_2.pth is there, but the newest file holds code: the resume is
    refused as a whole (someone wrote that file), and nothing runs or changes."""
    run_dir = _copy(finished_run, tmp_path / "run")
    marker = tmp_path / "created-by-payload"
    write_malicious_checkpoint(run_dir / "last.pth", marker)
    before = snapshot(run_dir)
    code, out, err = cli_main(["resume", run_dir, "--headless", "--epochs", "4"])
    assert (code, out) == (2, "")
    assert "error: refusing to load" in err and "last.pth" in err and len(err.splitlines()) == 1
    assert not marker.exists()
    assert snapshot(run_dir) == before


# ----------------------------------------------------------------------------- atomic writes
class _DiskFillsUp:
    """A file whose writes fail with ENOSPC once `budget` bytes are written (part-way through)."""

    def __init__(self, fh, budget: int) -> None:
        self._fh, self._left = fh, budget

    def write(self, data) -> int:
        if len(data) > self._left:
            self._fh.write(bytes(data[: self._left]))
            self._left = 0
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self._left -= len(data)
        return self._fh.write(data)

    def __getattr__(self, name):
        return getattr(self._fh, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._fh.close()
        return False


def _name(file) -> str:
    """The name of what `open` was given: a path, or a descriptor (atomic writes open their
    temporary with O_NOFOLLOW first, then wrap the descriptor)."""
    return Path(os.readlink(f"/proc/self/fd/{file}") if isinstance(file, int) else file).name


def test_a_full_disk_during_a_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    """The disk fills up part-way through writing epoch 2's checkpoint: the run stops with the
    reason, epoch 1's last.pth is untouched and loadable, no temporary is left, and the run
    resumes from it once there is space again."""
    from tui_trainer import runlog  # every atomic write (checkpoints, JSON files) goes through it

    run_dir = tmp_path / "run"
    saves = []

    def open_on_a_filling_disk(path, mode="r", *args, **kwargs):
        fh = open(path, mode, *args, **kwargs)
        if ".pth" not in _name(path):
            return fh  # config.json
        saves.append(_name(path))
        return _DiskFillsUp(fh, 50_000) if len(saves) > 2 else fh  # epoch 1: best + last fit

    monkeypatch.setattr(runlog, "open", open_on_a_filling_disk, raising=False)
    code, out, err = cli_main(tiny_run_args(run_dir, 3))
    assert code == 1, out + err
    assert "error: could not write " in out and "No space left on device; the previous checkpoint is intact" in out
    assert f"last good checkpoint: {run_dir / 'last.pth'}" in out
    assert "Traceback" not in out + err
    (failed,) = of(run_dir, "RunFailed")
    assert "No space left on device" in failed.error and failed.epoch == 2
    assert temporaries(run_dir) == []
    assert load(run_dir / "last.pth")["epoch"] == 1
    assert not (run_dir / "report.json").exists()

    monkeypatch.undo()
    code, out, err = cli_main(["resume", run_dir, "--headless"])
    assert code == 0, out + err
    assert load(run_dir / "last.pth")["epoch"] == 3


def test_sigkill_during_a_save_leaves_the_previous_checkpoint_and_a_temporary_the_resume_removes(tmp_path):
    """A real process, killed while its checkpoint temporary exists (between open and rename):
    the previous last.pth is intact, and the next start removes the temporary and resumes."""
    run_dir = tmp_path / "run"
    # Large checkpoints (a 3x32x32 input makes the MLP ~0.8M parameters, ~13 MB a file with the
    # optimizer state) keep each save open long enough to be caught; checkpoint-every 1 adds saves.
    args = ["run", "synthetic", "--model", "mlp", "--synthetic-shape", "3x32x32", "--synthetic-train", "256",
            "--synthetic-val", "64", "--batch-size", "64", "--epochs", "10", "--checkpoint-every", "1",
            "--device", "cpu", "--run-dir", run_dir, "--headless"]
    caught = None
    for attempt in range(4):
        proc = spawn(args if attempt == 0 else ["resume", run_dir, "--headless"])
        try:
            if attempt == 0:
                wait_for(lambda: (run_dir / "last.pth").exists(), 60, "the first checkpoint", proc, poll=0.005)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and proc.poll() is None:
                if any(".pth.tmp-" in name for name in temporaries(run_dir)):
                    kill_group(proc)
                    proc.wait()
                    caught = [n for n in temporaries(run_dir) if ".pth.tmp-" in n]
                    break
                time.sleep(0.0005)
        finally:
            kill_group(proc)
            proc.communicate()
        if caught:
            break
    assert caught, "no kill landed during a checkpoint write in 4 attempts"
    from tui_trainer.engine import checkpoint as ckpt

    for name in ("last.pth", "best_model.pth"):
        ckpt.load_run_checkpoint(run_dir / name)  # intact: the old file, never a torn one
    epoch = load(run_dir / "last.pth")["epoch"]

    code, out, err = cli_main(["resume", run_dir, "--headless", "--epochs", str(epoch + 1)])
    assert code == 0, out + err
    for name in caught:
        assert f"warning: removed {name} left by an interrupted save" in out
    assert temporaries(run_dir) == []
    assert load(run_dir / "last.pth")["epoch"] == epoch + 1


def test_a_failed_write_never_touches_the_target(tmp_path, monkeypatch):
    """atomic_save directly: the exception is the real OSError, and the old bytes stay."""
    import torch

    from tui_trainer import runlog
    from tui_trainer.engine import checkpoint as ckpt

    target = tmp_path / "last.pth"
    ckpt.atomic_save({"w": torch.arange(10.0)}, target)
    before = target.read_bytes()
    monkeypatch.setattr(runlog, "open", lambda p, m="r", *a, **k: _DiskFillsUp(open(p, m, *a, **k), 100),
                        raising=False)
    with pytest.raises(OSError) as info:
        ckpt.atomic_save({"w": torch.zeros(100_000)}, target)
    assert info.value.errno == errno.ENOSPC
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pth"]


# ----------------------------------------------------------------------------- one writer per directory
def test_a_second_process_cannot_write_to_a_run_directory_in_use(tmp_path, finished_run):
    run_dir = _copy(finished_run, tmp_path / "run")
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from tui_trainer.runlog import RunDirLock; "
         "RunDirLock(sys.argv[1]).acquire(); print('locked', flush=True); time.sleep(60)", str(run_dir)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        before = snapshot(run_dir)
        code, out, err = cli_main(["resume", run_dir, "--headless", "--epochs", "4"])
        assert (code, out) == (2, "")
        assert err.strip() == f"tui-trainer: error: run directory {run_dir} is in use by another tui-trainer " \
                              f"process (pid {holder.pid})"
        assert snapshot(run_dir) == before
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # The kernel drops the lock with its holder: a killed run never leaves the directory locked.
    code, out, err = cli_main(["resume", run_dir, "--headless", "--epochs", "4"])
    assert code == 0, out + err


def test_best_and_newest_checkpoints_are_kept(tmp_path):
    """Early stopping ends the run; every checkpoint a resume or the report needs is still there."""
    run_dir = tmp_path / "run"
    code, out, err = cli_main(tiny_run_args(run_dir, 12, "--patience", "1", "--lr", "0.05",
                                            "--checkpoint-every", "3"))
    assert code == 0, out + err
    (finished,) = of(run_dir, "RunFinished")
    assert finished.status == "early_stopped", "the recipe should stop early"
    saved = {e.path for e in of(run_dir, "CheckpointSaved")}
    assert {Path(p).name for p in saved} <= {p.name for p in run_dir.glob("*.pth")}
    best = load(run_dir / "best_model.pth")
    assert best["best_epoch"] == finished.best_epoch
    # last.pth is the end of the newest epoch, the one early stopping ended the run in, too
    last = load(run_dir / "last.pth")
    assert last["epoch"] == finished.epochs_completed and last["early_stopping"]["stopped"]


def test_checkpoints_hold_their_epochs_weights_when_early_stopping_restores_older_ones(tmp_path, scripted_optimizer):
    """Epoch 2's loss ends the patience: early stopping puts epoch 1's weights (the best) back into
    the model, but epoch 2's checkpoint must hold epoch 2's weights, and best_model.pth epoch 1's;
    a resume from that checkpoint does not train on."""
    import torch

    from tui_trainer import events as ev
    from tui_trainer.data.loader import TensorLoader
    from tui_trainer.engine import EarlyStopping, Trainer
    from tui_trainer.engine.early_stopping import clone_state_dict

    # One optimizer step an epoch, whose weights the test chooses: epoch 2's are worse on the
    # validation loss (the monitored metric), so patience 1 ends the run there.
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0]] * 4)
    y = torch.tensor([0, 1] * 4)
    good = {"weight": torch.eye(2) * 2, "bias": torch.zeros(2)}
    worse = {"weight": torch.eye(2) * 0.5, "bias": torch.zeros(2)}
    at_epoch_end = {}

    class Snapshot:
        def __init__(self, model):
            self.model = model

        def emit(self, e):
            if isinstance(e, ev.EpochEnd):
                at_epoch_end[e.epoch] = clone_state_dict(self.model.state_dict())

    def make(save_dir):
        model = torch.nn.Linear(2, 2)
        trainer = Trainer(model, TensorLoader(x, y, 8, shuffle=True), TensorLoader(x, y, 8),
                          torch.nn.CrossEntropyLoss(), scripted_optimizer(model, [good, worse]), "cpu",
                          save_dir, sinks=[Snapshot(model)], num_classes=2, checkpoint_every=2)
        return trainer, EarlyStopping(patience=1, restore_best_weights=True)

    trainer, early = make(tmp_path / "run")
    trainer.fit(5, early_stopping=early)
    assert trainer.status == "early_stopped" and trainer.best_epoch == 1
    best = load(tmp_path / "run" / "best_model.pth")
    assert best["best_epoch"] == 1
    assert all(torch.equal(best["model_state_dict"][k], at_epoch_end[1][k]) for k in at_epoch_end[1]), \
        "best_model.pth must hold epoch 1's weights"
    assert not torch.equal(at_epoch_end[1]["weight"], at_epoch_end[2]["weight"])
    periodic = load(tmp_path / "run" / "checkpoint_epoch_2.pth")
    assert torch.equal(periodic["model_state_dict"]["weight"], at_epoch_end[2]["weight"])

    # Resuming from the checkpoint of the stopping epoch ends at once, as the run did.
    resumed, early = make(tmp_path / "run")
    resumed.early_stopping = early  # as build_trainer sets it up before a resume loads the state
    resumed.load_state_dict(periodic)
    resumed.fit(5, early_stopping=early)
    assert resumed.status == "early_stopped" and resumed.epoch == 2


def test_every_torch_load_in_the_package_is_weights_only():
    """One place loads checkpoints (checkpoint.safe_load); any other torch.load must be as safe."""
    import ast

    import tui_trainer

    calls = []
    for path in Path(tui_trainer.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "load" \
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "torch":
                safe = any(k.arg == "weights_only" and isinstance(k.value, ast.Constant) and k.value.value is True
                           for k in node.keywords)
                calls.append((path.name, node.lineno, safe))
    assert calls, "safe_load's torch.load should be found"
    assert all(safe for _, _, safe in calls), calls
