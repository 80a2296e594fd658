"""Helpers for the reliability tests (resume, checkpoints, signals, numeric faults, bad input,
torture): small runs on the synthetic dataset, real child processes, and run-directory checks.

Every run here is pinned to one CPU thread, in this process and in child processes alike: two
processes with the same seed and thread count compute bit-identical results, and on a busy
2-core machine one thread is also much faster than two competing OpenMP teams.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

# A small, quick run with everything that makes exact resume hard switched on: augmentation
# (random crops and flips drawn from the loader's generator), dropout (the global torch RNG),
# a cosine schedule, early-stopping state and gradient accumulation.
TINY = ("--model", "mlp", "--synthetic-shape", "3x8x8", "--synthetic-train", "512", "--synthetic-val", "128",
        "--batch-size", "32", "--augment", "--accum-steps", "2", "--device", "cpu", "--seed", "7")


def tiny_run_args(run_dir, epochs: int = 3, *extra: str) -> list[str]:
    return ["run", "synthetic", *TINY, "--epochs", str(epochs), "--run-dir", str(run_dir), "--headless", *extra]


def child_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1", TERM="dumb")
    env.pop("PYTEST_CURRENT_TEST", None)
    env.update(extra)
    return env


CLI = [sys.executable, "-m", "tui_trainer"]


def spawn(args, *, cwd=None, env=None, **popen) -> subprocess.Popen:
    """Start `tui-trainer ARGS` as a real child process (its own process group)."""
    popen.setdefault("stdout", subprocess.PIPE)
    popen.setdefault("stderr", subprocess.PIPE)
    return subprocess.Popen([*CLI, *map(str, args)], cwd=cwd, env=env or child_env(), text=True,
                            start_new_session=True, **popen)


@contextlib.contextmanager
def one_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def cli_main(argv) -> tuple[int, str, str]:
    """Run the CLI in this process; returns (exit code, stdout, stderr)."""
    from tui_trainer.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


# ----------------------------------------------------------------------------- run directories
def events(run_dir) -> list:
    from tui_trainer.events import read_events

    return read_events(Path(run_dir) / "events.jsonl")


def of(run_dir, name: str) -> list:
    return [e for e in events(run_dir) if type(e).__name__ == name]


EPOCH_FIELDS = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "is_best", "best_epoch",
                "best_val_acc", "skipped")


def epoch_metrics(run_dir) -> list[tuple]:
    """What a user compares between runs: every EpochEnd's numbers, in order (no timings)."""
    return [tuple(getattr(e, f) for f in EPOCH_FIELDS) for e in of(run_dir, "EpochEnd")]


def load(path) -> dict:
    import torch

    return torch.load(path, map_location="cpu", weights_only=True)


def assert_same_tensors(a: dict, b: dict, what: str) -> None:
    import torch

    assert a.keys() == b.keys(), what
    for key in a:
        assert torch.equal(a[key], b[key]), f"{what}: {key} differs"


def wait_for(predicate, timeout: float, what: str, proc: subprocess.Popen | None = None, poll: float = 0.01):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"the child exited ({proc.returncode}) before {what}:\n{out[-2000:]}\n{err[-2000:]}")
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def has_event(run_dir, name: str, after: int = 0, **fields) -> bool:
    """True once events.jsonl holds an event `name` (past line `after`) with these fields."""
    path = Path(run_dir) / "events.jsonl"
    try:
        lines = path.read_text(encoding="utf-8").splitlines()[after:]
    except OSError:
        return False
    for line in lines:
        if f'"event":"{name}"' not in line:
            continue
        try:
            data = json.loads(line)
        except ValueError:
            continue
        if all(data.get(k) == v for k, v in fields.items()):
            return True
    return False


def temporaries(run_dir) -> list[str]:
    return sorted(p.name for p in Path(run_dir).iterdir() if p.name.startswith(".") and ".tmp-" in p.name)


def kill_group(proc: subprocess.Popen, sig=signal.SIGKILL) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)


def snapshot(root) -> dict[str, tuple[bytes, int]]:
    """Every file under root: (bytes, mtime_ns). Equal snapshots: nothing changed or appeared."""
    root = Path(root)
    return {str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file()}


def write_malicious_checkpoint(path: Path, marker: Path) -> None:
    """A torch zip file whose pickle, if unpickled unsafely, creates `marker`."""
    import torch

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    torch.save({"format": "tui-trainer/checkpoint", "epoch": 9, "model_state_dict": {}, "config": {},
                "payload": Payload()}, path)


def tree_digest(root) -> dict[str, tuple]:
    """Everything under root, never following a link: per entry its type, mode, size, mtime and
    content hash (a link: its target). Equal digests: nothing was written, added or removed, the
    lock file's bytes included."""
    import hashlib
    import stat as st

    root = Path(root)
    found: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            info = os.lstat(path)
            if st.S_ISLNK(info.st_mode):
                found[str(path.relative_to(root))] = ("link", os.readlink(path))
            elif st.S_ISREG(info.st_mode):
                found[str(path.relative_to(root))] = ("file", info.st_mode, info.st_size, info.st_mtime_ns,
                                                      hashlib.sha256(path.read_bytes()).hexdigest())
            else:
                found[str(path.relative_to(root))] = ("other", info.st_mode, info.st_mtime_ns)
    return found


@contextlib.contextmanager
def small_disk(path, size: str = "4m"):
    """A real, separate tmpfs of `size` mounted at `path` (needs root and mount rights; the test
    is skipped without them): a full disk is a full disk, not a simulation."""
    import pytest

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def fill_disk(directory) -> Path:
    """Fill the filesystem holding `directory` to the last byte; returns the filler file."""
    filler = Path(directory) / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        for size in (1 << 20, 4096, 1):
            while True:
                try:
                    os.write(fd, b"\0" * size)
                except OSError:
                    break
    finally:
        os.close(fd)
    return filler
