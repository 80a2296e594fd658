"""What tui-trainer writes into a run directory, and what a refusal leaves there.

- A symbolic link (or hard link, pipe, directory) planted under a name tui-trainer writes is
  refused with one line and exit 2, and its target is never touched; the run directory itself
  may be a link.
- A refused command changes nothing: the whole directory is hashed before and after (lock
  file bytes, log, config, checkpoints), in the live console's path as in the log's.
- Input that cannot work is refused before anything is created: a seed beyond NumPy's range,
  synthetic data that cannot fit in memory, a missing GPU, a full disk.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from pathlib import Path

import pytest

from _reliability import cli_main, fill_disk, one_thread, small_disk, tiny_run_args, tree_digest

VICTIM_TEXT = "a file outside the run directory that must never change\n"


@pytest.fixture(autouse=True)
def _single_thread():
    with one_thread():
        yield


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A finished 2-epoch run with every kind of file: lock, log, config, report, last, best and
    periodic checkpoints (read-only for the tests)."""
    run_dir = tmp_path_factory.mktemp("finished") / "run"
    with one_thread():
        code, out, err = cli_main(tiny_run_args(run_dir, 2, "--checkpoint-every", "1"))
    assert code == 0, out + err
    return run_dir


def _copy(run_dir: Path, root: Path) -> Path:
    return Path(shutil.copytree(run_dir, root / "run", symlinks=True))


def _one_line_refusal(code: int, out: str, err: str, says: str) -> None:
    assert code == 2, f"exit {code}\n{out[-2000:]}\n{err[-2000:]}"
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("tui-trainer: error: ") and says in lines[0], err
    assert "Traceback" not in out + err


# ----------------------------------------------------------------------------- 1. planted links
@pytest.mark.parametrize("name", [".lock", "events.jsonl", "config.json", "report.json", "metrics.csv", "last.pth",
                                  "best_model.pth", "checkpoint_epoch_1.pth"])
def test_a_link_planted_under_a_name_tui_trainer_writes_is_refused_and_its_target_untouched(
        tmp_path, finished_run, name):
    run_dir = _copy(finished_run, tmp_path)
    victim = tmp_path / "victim.txt"
    victim.write_text(VICTIM_TEXT)
    (run_dir / name).unlink()
    (run_dir / name).symlink_to(victim)
    before = tree_digest(tmp_path)

    code, out, err = cli_main(["resume", run_dir, "--headless", "--epochs", "3"])

    _one_line_refusal(code, out, err, f"refusing to write {run_dir / name}: it is a symbolic link (to '{victim}')")
    assert victim.read_text() == VICTIM_TEXT
    assert tree_digest(tmp_path) == before


def test_a_link_planted_in_an_empty_run_directory_is_refused_by_run(tmp_path):
    """`run` into an existing, empty directory holding only a planted .lock link: on the old code
    the victim was truncated and the pid written into it."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text(VICTIM_TEXT)
    (run_dir / ".lock").symlink_to(victim)
    before = tree_digest(tmp_path)

    code, out, err = cli_main(tiny_run_args(run_dir, 1))

    _one_line_refusal(code, out, err, "it is a symbolic link")
    assert victim.read_text() == VICTIM_TEXT
    assert tree_digest(tmp_path) == before


def test_a_link_planted_while_the_run_trains_is_never_written_through(tmp_path):
    """A link put in place of last.pth after epoch 1: the next save refuses it (one line, exit 2)
    instead of renaming over it, and the target keeps its bytes."""
    from tui_trainer import cli, events as ev, runlog
    from tui_trainer.engine.control import Control
    from tui_trainer.runner import execute

    run_dir = tmp_path / "run"
    victim = tmp_path / "victim.txt"
    victim.write_text(VICTIM_TEXT)
    config = cli.config_from_args(cli.build_parser().parse_args(tiny_run_args(run_dir, 3)))
    run_dir.mkdir()

    class PlantAfterEpoch1:
        def emit(self, e):
            if isinstance(e, ev.CheckpointSaved) and e.epoch == 1 and e.kind == "last":
                (run_dir / "last.pth").unlink()
                (run_dir / "last.pth").symlink_to(victim)

    sink = ev.ListSink()
    outcome = execute(config, run_dir, [sink, PlantAfterEpoch1()], Control(), system_interval=None)

    assert outcome.status == "failed" and outcome.exit_code == 2
    assert f"refusing to write {run_dir / 'best_model.pth'}" not in outcome.error
    assert "it is a symbolic link" in outcome.error and "\n" not in outcome.error
    assert victim.read_text() == VICTIM_TEXT
    assert (run_dir / "last.pth").is_symlink()
    assert runlog.TMP_MARK not in "".join(os.listdir(run_dir))


def test_hard_links_pipes_and_directories_are_refused_too(tmp_path, finished_run):
    """A hard link would make an append change every linked copy; a pipe would block the start."""
    outside = tmp_path / "outside"
    outside.mkdir()
    cases = {"hard link": ("events.jsonl", lambda p: os.link(outside / "victim.txt", p), "has 2 hard links"),
             "pipe": ("events.jsonl", os.mkfifo, "is not a regular file"),
             "directory": ("last.pth", os.mkdir, "is a directory")}
    (outside / "victim.txt").write_text(VICTIM_TEXT)
    for what, (name, plant, says) in cases.items():
        run_dir = _copy(finished_run, tmp_path / what.replace(" ", "-"))
        (run_dir / name).unlink()
        plant(run_dir / name)
        before = tree_digest(tmp_path)
        code, out, err = cli_main(["resume", run_dir, "--headless", "--epochs", "3"])
        _one_line_refusal(code, out, err, says)
        assert tree_digest(tmp_path) == before, what
    assert (outside / "victim.txt").read_text() == VICTIM_TEXT


def test_open_run_file_never_follows_a_link_and_never_blocks_on_a_pipe(tmp_path):
    from tui_trainer.errors import UnsafeRunFileError
    from tui_trainer.runlog import open_run_file

    victim = tmp_path / "victim.txt"
    victim.write_text(VICTIM_TEXT)
    (tmp_path / "link").symlink_to(victim)
    os.mkfifo(tmp_path / "pipe")
    for name in ("link", "pipe"):
        with pytest.raises(UnsafeRunFileError):
            open_run_file(tmp_path / name, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    assert victim.read_text() == VICTIM_TEXT
    fd = open_run_file(tmp_path / "plain", os.O_WRONLY | os.O_CREAT)
    os.close(fd)
    assert (tmp_path / "plain").is_file()


def test_the_run_directory_itself_may_be_a_link(tmp_path):
    real = tmp_path / "storage" / "run"
    real.parent.mkdir()
    link = tmp_path / "run"
    real.mkdir()
    link.symlink_to(real, target_is_directory=True)
    code, out, err = cli_main(tiny_run_args(link, 1))
    assert code == 0, out + err
    code, out, err = cli_main(["resume", link, "--headless", "--epochs", "2"])
    assert code == 0, out + err
    assert (real / "report.json").is_file() and link.is_symlink()


def test_a_run_directory_that_links_to_nothing_is_refused(tmp_path):
    (tmp_path / "run").symlink_to(tmp_path / "nowhere", target_is_directory=True)
    before = tree_digest(tmp_path)
    code, out, err = cli_main(tiny_run_args(tmp_path / "run", 1))
    _one_line_refusal(code, out, err, "is a symbolic link to")
    assert tree_digest(tmp_path) == before


# ----------------------------------------------------------------------------- 3. refusals change nothing
def _unavailable_device() -> str:
    import torch

    return "cuda" if not torch.cuda.is_available() else "mps"


@pytest.mark.parametrize("extra", [(), ("--epochs", "2"), ("--epochs", "20", "--device", "<unavailable>"),
                                   ("--device", "<unavailable>"), ("--epochs", str(10**8))],
                         ids=["finished", "finished-same-epochs", "epochs-and-no-gpu", "no-gpu", "epochs-too-many"])
def test_a_refused_resume_changes_nothing_in_the_run_directory(tmp_path, finished_run, extra):
    run_dir = _copy(finished_run, tmp_path)
    before = tree_digest(tmp_path)
    argv = ["resume", run_dir, "--headless", *[_unavailable_device() if a == "<unavailable>" else a for a in extra]]
    code, out, err = cli_main(argv)
    _one_line_refusal(code, out, err, "")
    assert tree_digest(tmp_path) == before
    if "--device" in extra:  # and a plain resume still works as before: nothing was recorded
        code, out, err = cli_main(["resume", run_dir, "--headless", "--epochs", "3"])
        assert code == 0, out + err


def test_a_refused_resume_in_a_terminal_changes_nothing(tmp_path, finished_run):
    """In a terminal the resume would open the console; refused, it must not: no Preparing or
    RunFailed events (`show` would call the run failed), no new pid in .lock, no config.json."""
    from tui_trainer.testing import PtyRun

    runs = {}
    for name, extra in {"finished": (), "epochs": ("--epochs", "2"), "no-gpu": ("--device", _unavailable_device()),
                        "epochs-no-gpu": ("--epochs", "9", "--device", _unavailable_device())}.items():
        root = tmp_path / name
        root.mkdir()
        runs[name] = (_copy(finished_run, root), root, extra)
    before = {name: tree_digest(root) for name, (_, root, _) in runs.items()}
    results = {}

    def drive(name):
        run_dir, root, extra = runs[name]
        run = PtyRun(["resume", str(run_dir), *extra], cwd=root, env={"OMP_NUM_THREADS": "1"})
        try:
            results[name] = (run.wait(timeout=60), bytes(run.output))
        except subprocess.TimeoutExpired:  # the console opened and waits for a key
            results[name] = (None, bytes(run.output))
        finally:
            run.kill()

    threads = [threading.Thread(target=drive, args=(name,)) for name in runs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for name, (_, root, _) in runs.items():
        code, output = results[name]
        assert code == 2, (name, output[-2000:])
        assert b"\x1b[?1049h" not in output, name  # the console never opened
        assert output.count(b"tui-trainer: error: ") == 1 and b"Traceback" not in output, (name, output[-2000:])
        assert tree_digest(root) == before[name], name


# ----------------------------------------------------------------------------- 4. nothing left by a run that never started
@pytest.mark.parametrize("flags, says", [
    (("--seed", "4294967296"), "--seed must be at most 4,294,967,295, got 4,294,967,296"),
    (("--synthetic-classes", "1000000000"), "--synthetic-classes must be at most 1,000"),
    (("--synthetic-train", "10000000000"), "--synthetic-train must be at most 2,147,483,647"),
    (("--synthetic-train", "1000000000"), "need at least 36.9 TB of memory, but"),
    (("--synthetic-shape", "3x100000x100000"), "TB of memory, but"),
    (("--epochs", "100000000"), "--epochs must be at most 1,000,000"),
], ids=["seed", "classes", "train-size", "train-memory", "shape", "epochs"])
def test_input_that_cannot_work_is_refused_before_anything_is_created(tmp_path, monkeypatch, flags, says):
    monkeypatch.chdir(tmp_path)
    before = tree_digest(tmp_path)
    code, out, err = cli_main(["run", "synthetic", "--model", "mlp", "--headless", *flags])
    _one_line_refusal(code, out, err, says)
    assert tree_digest(tmp_path) == before  # no runs/, no run directory


def test_the_largest_seed_works(tmp_path):
    code, out, err = cli_main(tiny_run_args(tmp_path / "run", 1, "--seed", str(2**32 - 1)))
    assert code == 0, out + err


def test_no_gpu_leaves_no_runs_directory_behind(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = [a if a != "cpu" else _unavailable_device() for a in tiny_run_args("runs/new/run", 1)]
    code, out, err = cli_main(argv)
    _one_line_refusal(code, out, err, "available here")
    assert os.listdir(tmp_path) == []


def test_a_full_disk_at_start_leaves_nothing(tmp_path):
    with small_disk(tmp_path / "disk") as disk:
        filler = fill_disk(disk)
        code, out, err = cli_main(tiny_run_args(disk / "runs" / "run", 1))
        _one_line_refusal(code, out, err, "No space left on device")
        assert sorted(os.listdir(disk)) == [filler.name]  # no runs/, no run/.lock
