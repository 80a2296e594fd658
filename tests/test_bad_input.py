"""The bad-input matrix: every row is one mistake (or one awkward environment). A mistake gets
exactly one clear line on stderr, exit code 2, no traceback, nothing on stdout, and no file
changed or created; an awkward environment (TERM=dumb, stdin closed, stdout a pipe) still
gets a clean headless run. Rows that depend on the process itself run as real processes."""

from __future__ import annotations

import os
import pty
import shutil
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest

from _reliability import CLI, child_env, cli_main, one_thread, snapshot, tiny_run_args, write_malicious_checkpoint

OK, USAGE = 0, 2


@dataclass(frozen=True)
class Row:
    argv: tuple
    code: int
    says: str = ""  # the stderr line contains this (for code 2)
    setup: Callable[[Path], None] | None = None
    process: str = ""  # "" in this process; else the terminal set-up of a real child process
    also: Callable[[Path], None] | None = None  # extra checks after the run


def _file(name: str) -> Callable[[Path], None]:
    return lambda root: (root / name).write_text("not a directory\n")


def _run_without_checkpoint(root: Path) -> None:
    """What a run killed before its first checkpoint leaves: config.json and a few events."""
    run = _finished_run(root)
    for path in run.glob("*.pth"):
        path.unlink()


def _finished_run(root: Path) -> Path:
    shutil.copytree(FINISHED["dir"], root / "run")
    return root / "run"


def _truncated_checkpoint(root: Path) -> None:
    run = _finished_run(root)
    (run / "best_model.pth").unlink()
    data = (run / "last.pth").read_bytes()
    (run / "last.pth").write_bytes(data[: len(data) // 3])


def _pickled_code(root: Path) -> None:
    run = _finished_run(root)
    write_malicious_checkpoint(run / "last.pth", root / "created-by-payload")


def _payload_did_not_run(root: Path) -> None:
    assert not (root / "created-by-payload").exists()


def _unavailable_device() -> str:
    import torch

    return "cuda" if not torch.cuda.is_available() else "mps"


TINY_RUN = tuple(tiny_run_args("fresh", 1))
ROWS = {
    "unknown-dataset": Row(("run", "imagenet"), USAGE, "unknown dataset 'imagenet'; choose one of: digits, cifar10"),
    "unknown-model": Row(("run", "synthetic", "--model", "resnet"), USAGE, "unknown model 'resnet': a family of models; choose one of resnet18, resnet34"),
    "unknown-scheduler": Row(("run", "synthetic", "--scheduler", "linear"), USAGE, "unknown scheduler 'linear'"),
    "unknown-optimizer": Row(("run", "synthetic", "--optimizer", "lion"), USAGE, "unknown optimizer 'lion'"),
    "epochs-0": Row(("run", "synthetic", "--epochs", "0"), USAGE, "--epochs must be an integer >= 1, got 0"),
    "epochs-negative": Row(("run", "synthetic", "--epochs", "-1"), USAGE, "--epochs must be an integer >= 1, got -1"),
    "lr-nan": Row(("run", "synthetic", "--lr", "nan"), USAGE, "--lr must be a finite number, got nan"),
    "lr-negative": Row(("run", "synthetic", "--lr", "-1"), USAGE, "--lr must be greater than zero, got -1"),
    "lr-not-a-number": Row(("run", "synthetic", "--lr", "abc"), USAGE, "argument --lr: invalid float value: 'abc'"),
    "batch-size-0": Row(("run", "synthetic", "--batch-size", "0"), USAGE, "--batch-size must be an integer >= 1, got 0"),
    "accum-steps-0": Row(("run", "synthetic", "--accum-steps", "0"), USAGE,
                         "--accum-steps must be an integer >= 1, got 0"),
    "run-dir-is-a-file": Row(TINY_RUN[:-3] + ("--run-dir", "taken"), USAGE,
                             "run directory taken exists and is not a directory", _file("taken")),
    "run-dir-under-a-file": Row(TINY_RUN[:-3] + ("--run-dir", "taken/run"), USAGE,
                                "cannot create run directory taken/run:", _file("taken")),
    # Permission bits do not stop root, which runs these tests; /proc refuses everyone.
    "run-dir-unwritable": Row(TINY_RUN[:-3] + ("--run-dir", "/proc/tui-trainer-run"), USAGE,
                              "cannot write"),
    "device-unavailable": Row(TINY_RUN + ("--device", "<unavailable>"), USAGE, "available here"),
    "cifar10-missing-offline": Row(("run", "cifar10", "--data-dir", "nothing-here", "--no-download"), USAGE,
                                   "put cifar-10-python.tar.gz"),
    "resume-missing-dir": Row(("resume", "gone"), USAGE, "run directory gone does not exist"),
    "resume-no-checkpoint": Row(("resume", "run"), USAGE, "no checkpoint in run: the run stopped before it saved one",
                                _run_without_checkpoint),
    "resume-truncated-checkpoint": Row(("resume", "run", "--epochs", "5"), USAGE,
                                       "no valid checkpoint in run: skipping last.pth: checkpoint run/last.pth is "
                                       "truncated or corrupted", _truncated_checkpoint),
    "resume-pickled-code": Row(("resume", "run", "--epochs", "5"), USAGE, "refusing to load run/last.pth: it holds "
                               "pickled code or objects", _pickled_code, also=_payload_did_not_run),
    # Awkward environments, in real processes: no live console, a clean headless run.
    "term-dumb": Row(TINY_RUN[:-1], OK, process="TERM=dumb, stdin and stdout a terminal"),
    "stdin-closed": Row(TINY_RUN[:-1], OK, process="stdin closed, stdout a terminal"),
    "stdout-a-pipe": Row(TINY_RUN[:-1], OK, process="stdout a pipe, stdin a terminal"),
}


def _run_in_process(row: Row, root: Path, monkeypatch) -> tuple[int, str, str]:
    monkeypatch.chdir(root)
    argv = [a if a != "<unavailable>" else _unavailable_device() for a in row.argv]
    with one_thread():
        return cli_main(argv)


def _run_in_a_terminal_setup(row: Row, root: Path) -> tuple[int, str, str]:
    """A child whose stdin/stdout are a pseudo-terminal, a pipe or closed, as the row says. Were
    the live console chosen, it would draw escape sequences (or wait for keys) here."""
    master, slave = pty.openpty()
    env = child_env(TERM="dumb" if row.process.startswith("TERM=dumb") else "xterm-256color")
    argv = [*CLI, *row.argv]
    stdin = subprocess.DEVNULL if "stdin closed" in row.process else slave
    if "stdin closed" in row.process:
        argv = ["sh", "-c", 'exec "$@" <&-', "sh", *argv]  # fd 0 really closed, not /dev/null
    stdout = subprocess.PIPE if "stdout a pipe" in row.process else slave
    proc = subprocess.Popen(argv, cwd=root, env=env, stdin=stdin, stdout=stdout, stderr=subprocess.PIPE,
                            start_new_session=True)
    os.close(slave)
    chunks: list[bytes] = []

    def drain_terminal():
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=drain_terminal, daemon=True)
    reader.start()
    try:
        out, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        out, err = proc.communicate()
        raise AssertionError(f"{row.process}: the run did not end (live console waiting for keys?)") from None
    finally:
        reader.join(timeout=5)
        os.close(master)
    text = (out or b"").decode() + b"".join(chunks).decode(errors="replace")
    return proc.returncode, text, err.decode()


@pytest.fixture(scope="module")
def process_rows(tmp_path_factory):
    """The real-process rows, run side by side; {name: (root, before, code, out, err)}."""
    rows = {name: row for name, row in ROWS.items() if row.process}
    roots = {}
    for name in rows:
        roots[name] = tmp_path_factory.mktemp(name)
        (roots[name] / "notes.txt").write_text("an existing file that must not change\n")
    before = {name: snapshot(root) for name, root in roots.items()}
    results = {}
    threads = [threading.Thread(target=lambda n=name: results.__setitem__(
        n, _run_in_a_terminal_setup(rows[n], roots[n]))) for name in rows]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {name: (roots[name], before[name], *results[name]) for name in rows}


FINISHED: dict = {}


@pytest.fixture(scope="module", autouse=True)
def finished_run(tmp_path_factory):
    """A finished run to damage, for the resume rows."""
    run_dir = tmp_path_factory.mktemp("finished") / "run"
    with one_thread():
        code, out, err = cli_main(tiny_run_args(run_dir, 1))
    assert code == 0, out + err
    FINISHED["dir"] = run_dir
    yield run_dir


@pytest.mark.parametrize("name", ROWS)
def test_bad_input(name, tmp_path, monkeypatch, request):
    row = ROWS[name]
    if row.process:
        root, before, code, out, err = request.getfixturevalue("process_rows")[name]
    else:
        root = tmp_path
        (root / "notes.txt").write_text("an existing file that must not change\n")
        if row.setup is not None:
            row.setup(root)
        before = snapshot(root)
        code, out, err = _run_in_process(row, root, monkeypatch)

    assert code == row.code, f"exit {code}\nstdout: {out[-1500:]}\nstderr: {err[-1500:]}"
    assert "Traceback" not in out + err
    after = snapshot(root)
    if row.code == USAGE:
        lines = err.splitlines()
        assert len(lines) == 1, err
        assert lines[0].startswith("tui-trainer: error: ") and row.says in lines[0], lines[0]
        assert out == ""
        assert after == before  # nothing changed, nothing created
    else:
        assert err == ""
        assert "\x1b" not in out  # no escape sequences: the plain log, not the live console
        assert "tui-trainer: training run fresh" in out and "run finished after 1 epoch in" in out
        assert {k: v for k, v in after.items() if k in before} == before
        assert (root / "fresh" / "report.json").is_file()
    if row.also is not None:
        row.also(root)
