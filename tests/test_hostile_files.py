"""Damaged and hostile files in a run directory: one line, never a traceback.

- A pickle stream that is not a zip checkpoint (torch's legacy format, pickle.dump) is refused
  as unsafe - not called corrupted, not skipped for an older checkpoint - naming the global it
  references, in one complete line.
- Loadable checkpoints with wrong-typed fields are reported by name and skipped, even when they
  are not the newest; a config.json that is not a valid config is refused.
- `show` reads a damaged events.jsonl line by line, skips and counts what it cannot use, and
  nothing a line says can crash a view or make it allocate without bound.
- A full disk during a resume: the promised line and exit 1, events appended whole or not at
  all, and a torn last line left by a crash is cut before the next append.
"""

from __future__ import annotations

import errno
import json
import os
import pickle
import shutil
from pathlib import Path

import pytest

from _reliability import cli_main, fill_disk, load, one_thread, small_disk, tiny_run_args, tree_digest


@pytest.fixture(autouse=True)
def _single_thread():
    with one_thread():
        yield


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A finished 2-epoch run with last, best and periodic checkpoints (read-only)."""
    run_dir = tmp_path_factory.mktemp("finished") / "run"
    with one_thread():
        code, out, err = cli_main(tiny_run_args(run_dir, 2, "--checkpoint-every", "1"))
    assert code == 0, out + err
    return run_dir


def _copy(run_dir: Path, dest: Path) -> Path:
    return Path(shutil.copytree(run_dir, dest))


def _one_line(err: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("tui-trainer: error: "), err
    return lines[0]


class _RunsAShellCommand:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


# ----------------------------------------------------------------------------- 2. pickle streams
def _legacy(path: Path, marker: Path) -> None:
    import torch

    torch.save({"format": "tui-trainer/checkpoint", "epoch": 9, "payload": _RunsAShellCommand(marker)}, path,
               _use_new_zipfile_serialization=False)


def _raw(path: Path, marker: Path) -> None:
    path.write_bytes(pickle.dumps({"epoch": 9, "payload": _RunsAShellCommand(marker)}, protocol=4))


def _zip(path: Path, marker: Path) -> None:
    import torch

    torch.save({"format": "tui-trainer/checkpoint", "epoch": 9, "payload": _RunsAShellCommand(marker)}, path)


@pytest.mark.parametrize("plant", [_legacy, _raw, _zip], ids=["legacy-torch-format", "raw-pickle", "zip"])
def test_a_planted_pickle_is_refused_as_unsafe_naming_its_global(tmp_path, finished_run, plant):
    run_dir = _copy(finished_run, tmp_path / "run")
    marker = tmp_path / "payload-ran"
    plant(run_dir / "last.pth", marker)
    before = tree_digest(tmp_path)

    code, out, err = cli_main(["resume", run_dir, "--headless", "--epochs", "4"])

    assert code == 2, out + err  # not a quiet fallback to checkpoint_epoch_2.pth
    line = _one_line(err)
    assert f"refusing to load {run_dir / 'last.pth'}" in line and "it references posix.system" in line, line
    assert line.endswith("- delete it, or replace it with a trusted copy")  # one complete line
    assert "Traceback" not in out + err and out == ""
    assert not marker.exists()
    assert tree_digest(tmp_path) == before


@pytest.mark.parametrize("content", [
    b"N." + bytes(range(256)) * 16,  # random bytes can open with a tiny complete pickle, then noise
    b".\xbc\x8b\x0e" * 1024,  # a bare STOP leaves no object: not a pickle at all
    b"\x8d" + (2 ** 40).to_bytes(8, "little") + b"x" * 4096,  # claims a 1 TiB string
    b"\x80\x04\x95" + b"\xff" * 4096,  # a protocol header followed by nothing that parses
], ids=["tiny-pickle-then-noise", "bare-stop", "huge-length", "header-only"])
def test_noise_that_resembles_a_pickle_is_corrupted_not_planted(tmp_path, content):
    from tui_trainer.engine import checkpoint as ckpt
    from tui_trainer.errors import CheckpointError

    path = tmp_path / "last.pth"
    path.write_bytes(content)
    with pytest.raises(CheckpointError) as info:
        ckpt.verify_file(path)
    assert not isinstance(info.value, ckpt.UnsafeCheckpointError), str(info.value)
    assert "is truncated or corrupted" in str(info.value)


def test_random_bytes_are_never_taken_for_a_planted_pickle(tmp_path):
    import random

    from tui_trainer.engine import checkpoint as ckpt
    from tui_trainer.errors import CheckpointError

    rng = random.Random(20261201)
    path = tmp_path / "last.pth"
    for _ in range(3000):
        path.write_bytes(rng.randbytes(512))
        with pytest.raises(CheckpointError) as info:
            ckpt.verify_file(path)
        assert not isinstance(info.value, ckpt.UnsafeCheckpointError), str(info.value)


# ----------------------------------------------------------------------------- 5. wrong-typed fields
def _rewrite(path: Path, **changes) -> None:
    import torch

    data = load(path)
    data.update(changes)
    torch.save(data, path)


@pytest.mark.parametrize("changes, says", [
    ({"epoch": "x"}, "epoch must be an integer"),
    ({"epoch": None}, "epoch must be an integer"),
    ({"format_version": "2"}, "format_version must be an integer"),
    ({"config": "a string"}, "config must be a dict"),
    ({"history": {"train_loss": "abc"}}, "history"),
    ({"step_in_epoch": -3}, "step_in_epoch must be an integer"),
    ({"lr_factor": -1.0}, "lr_factor must be a finite positive number"),
    ({"lr_factor": float("inf")}, "lr_factor must be a finite positive number"),
    ({"best_confusion": "x"}, "best_confusion must be a square int64 matrix"),
    ({"best_confusion": [[1, 2], [3, 4]]}, "best_confusion must be a square int64 matrix"),
    ({"scheduler_state_dict": {"schedule": "plateau", "best": 1.0, "bad_epochs": 0, "scale": "x"}},
     "scheduler_state_dict.scale must be a finite positive number"),
    ({"scheduler_state_dict": {"no": "name"}}, "scheduler_state_dict does not say which schedule it is"),
    ({"manual_lr_changes": [{"epoch": 1, "step": 0, "factor": 0.0, "lr": 0.1}]},
     "manual_lr_changes[0].factor must be a finite positive number"),
    ({"format_version": 1, "manual_lr_changes": "x"}, "manual_lr_changes must be a list"),
], ids=["epoch-str", "epoch-none", "format-version-str", "config-str", "history", "negative-step", "lr-factor",
        "lr-factor-inf", "confusion-str", "confusion-list", "plateau-scale", "schedule-unnamed", "lr-change-factor",
        "v1-lr-changes"])
def test_a_damaged_checkpoint_that_is_not_the_newest_is_skipped_by_name(tmp_path, finished_run, changes, says):
    run_dir = _copy(finished_run, tmp_path / "run")
    _rewrite(run_dir / "checkpoint_epoch_1.pth", **changes)

    code, out, err = cli_main(["resume", run_dir, "--headless", "--epochs", "3"])

    assert code == 0, out + err
    assert "Traceback" not in out + err
    warning = [line for line in out.splitlines() if line.startswith("warning: skipping checkpoint_epoch_1.pth")]
    assert len(warning) == 1 and says in warning[0], out
    assert load(run_dir / "last.pth")["epoch"] == 3


def test_only_damaged_checkpoints_refuse_the_resume_and_change_nothing(tmp_path, finished_run):
    run_dir = _copy(finished_run, tmp_path / "run")
    for path in run_dir.glob("*.pth"):
        _rewrite(path, epoch="x")
    before = tree_digest(tmp_path)
    code, out, err = cli_main(["resume", run_dir, "--headless", "--epochs", "3"])
    assert code == 2
    line = _one_line(err)
    assert "no valid checkpoint in" in line and "last.pth: checkpoint" in line and "epoch must be an integer" in line
    assert tree_digest(tmp_path) == before


@pytest.mark.parametrize("text", ["[]", "null", '"a string"', "{}", "{not json", "[" * 200_000,
                                  '{"epochs": 1e30}', '{"epochs": 10**30}', "\xff"],
                         ids=["list", "null", "string", "empty", "broken", "deep", "epochs-1e30-float", "epochs-10**30",
                              "not-utf8"])
def test_a_config_json_that_is_not_a_run_config_is_refused(tmp_path, finished_run, text):
    run_dir = _copy(finished_run, tmp_path / "run")
    config = run_dir / "config.json"
    if text.startswith('{"epochs"'):
        data = json.loads(config.read_text())
        data["epochs"] = 1e30 if "1e30" in text else 10**30  # on the old code, the int ran for ever
        config.write_text(json.dumps(data))
    else:
        config.write_bytes(text.encode("latin-1") if text == "\xff" else text.encode())
    before = tree_digest(tmp_path)
    code, out, err = cli_main(["resume", run_dir, "--headless"])
    assert code == 2, out + err
    line = _one_line(err)
    assert f"{config} is not a valid run config" in line
    assert "Traceback" not in out + err
    assert tree_digest(tmp_path) == before


# ----------------------------------------------------------------------------- 6. damaged event logs
DAMAGED_LINES = [
    b"\xff\xfe not UTF-8 \xc3\x28\n",
    b"[" * 200_000 + b"\n",
    b'{"event":"EpochEnd","epoch":2,"num_epochs":2,"train_loss":"abc","train_acc":1,"val_loss":1,"val_acc":1,'
    b'"lr":0.1,"epoch_time":1,"train_time":1,"val_time":1,"samples_per_sec":1,"is_best":true,"best_epoch":1,'
    b'"best_val_acc":1,"t":1}\n',
    b'{"event":"RunStarted","num_epochs":"many"}\n',
    b'{"event":"EpochEnd","epoch":1000000000,"num_epochs":1000000000,"train_loss":1,"train_acc":1,"val_loss":1,'
    b'"val_acc":1,"lr":0.1,"epoch_time":1,"train_time":1,"val_time":1,"samples_per_sec":1,"is_best":true,'
    b'"best_epoch":1,"best_val_acc":1,"t":1}\n',
    b'{"event":"Notice","level":"info","message":"x","t":"soon"}\n',
    b'{"event":"EvaluationReport","split":"v","loss":1,"accuracy":1,"precision":1,"recall":1,"f1":1,'
    b'"macro_precision":1,"macro_recall":1,"macro_f1":1,"class_names":["a","b"],"per_class_precision":[1],'
    b'"per_class_recall":[1],"per_class_f1":[1],"support":[1],"confusion_matrix":[[1]],"t":1}\n',
    b'{"event":"StepProgress","epoch":1,"step":1,"steps":1,"samples":1,"loss":1,"acc":1,"epoch_loss":1,"epoch_a',
]


def _damaged_log(tmp_path: Path, finished_run: Path) -> Path:
    run_dir = _copy(finished_run, tmp_path / "run")
    lines = (run_dir / "events.jsonl").read_bytes().splitlines(keepends=True)
    middle = len(lines) // 2
    (run_dir / "events.jsonl").write_bytes(b"".join(lines[:middle] + DAMAGED_LINES[:-1] + lines[middle:]
                                                    + DAMAGED_LINES[-1:]))
    return run_dir


def test_show_skips_and_counts_unreadable_lines(tmp_path, finished_run):
    run_dir = _damaged_log(tmp_path, finished_run)
    code, out, err = cli_main(["show", run_dir])
    assert code == 0, out + err
    assert "Traceback" not in out + err
    assert out.splitlines()[-1] == f"warning: skipped {len(DAMAGED_LINES)} unreadable lines of {run_dir / 'events.jsonl'}"
    assert "run finished after 2 epochs" in out  # everything readable is still shown


def test_each_event_is_validated_as_it_is_read(tmp_path, finished_run):
    from tui_trainer import events as ev
    from tui_trainer.event_io import read_event_log

    run_dir = _damaged_log(tmp_path, finished_run)
    events, skipped = read_event_log(run_dir / "events.jsonl")
    assert skipped == len(DAMAGED_LINES)
    assert events == ev.read_events(finished_run / "events.jsonl")  # the intact lines, all of them
    assert max(e.epoch for e in events if isinstance(e, ev.EpochEnd)) == 2


async def test_the_console_shows_a_damaged_log_without_growing(tmp_path, finished_run):
    """The replayed dashboard and report of a damaged log: no exception, the skipped lines named,
    and memory that does not grow with what the file claims (an epoch of 1e9 once took 4 GB)."""
    import resource

    from tui_trainer.frontends.tui.launch import build_show_app

    run_dir = _damaged_log(tmp_path, finished_run)
    app = build_show_app(run_dir)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.pause()
        await pilot.press("d")
        await pilot.pause()
        await pilot.press("d")
        await pilot.pause()
        state = app.store.snapshot()
    grew_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert state.status == "FINISHED" and state.epochs_done == (1, 2)
    assert any(f"skipped {len(DAMAGED_LINES)} unreadable lines" in line.text for line in state.log)
    assert grew_mb < 200


# ----------------------------------------------------------------------------- 7. full disk, torn lines
def _resumable(run_dir: Path, epochs: int) -> None:
    """Make a finished run want more epochs, as if it had been stopped (no config write needed)."""
    config = json.loads((run_dir / "config.json").read_text())
    config["epochs"] = epochs
    (run_dir / "config.json").write_text(json.dumps(config))
    (run_dir / "report.json").unlink()


def _whole_lines(path: Path) -> None:
    from tui_trainer.event_io import read_event_log

    data = path.read_bytes()
    assert data.endswith(b"\n")
    assert read_event_log(path)[1] == 0, "every line of the log is a whole event"


def test_a_full_disk_during_a_resume_is_one_line_and_exit_1(tmp_path, finished_run):
    with small_disk(tmp_path / "disk", "32m") as disk:
        run_dir = _copy(finished_run, disk / "run")
        _resumable(run_dir, 4)
        filler = fill_disk(disk)
        code, out, err = cli_main(["resume", run_dir, "--headless"])
        assert code == 1, out + err
        assert "Traceback" not in out + err and err == ""
        failures = [line for line in out.splitlines() if line.startswith("error: ")]
        assert len(failures) == 1 and "No space left on device; the previous checkpoint is intact" in failures[0]
        _whole_lines(run_dir / "events.jsonl")
        assert load(run_dir / "last.pth")["epoch"] == 2

        filler.unlink()
        code, out, err = cli_main(["resume", run_dir, "--headless"])
        assert code == 0, out + err
        _whole_lines(run_dir / "events.jsonl")
        assert load(run_dir / "last.pth")["epoch"] == 4


def test_a_torn_last_line_is_cut_before_the_next_append(tmp_path, finished_run):
    run_dir = _copy(finished_run, tmp_path / "run")
    _resumable(run_dir, 3)
    whole = (run_dir / "events.jsonl").read_bytes()
    with open(run_dir / "events.jsonl", "ab") as fh:
        fh.write(b'{"event":"EpochEnd","epoch":2,"num_epo')  # what a kill mid-write leaves
    code, out, err = cli_main(["resume", run_dir, "--headless"])
    assert code == 0, out + err
    data = (run_dir / "events.jsonl").read_bytes()
    assert data.startswith(whole) and b"num_epo{" not in data
    _whole_lines(run_dir / "events.jsonl")
    first_new = json.loads(data[len(whole):].split(b"\n")[0])
    assert first_new["event"] == "Preparing"


def test_an_event_is_appended_whole_or_not_at_all(tmp_path, monkeypatch):
    """The disk fills up in the middle of a line: the part written is cut back, so the next
    event, once there is space again, starts on a line of its own."""
    from tui_trainer import events as ev, runlog

    log = runlog.RunLog(tmp_path)
    log.emit(ev.Notice(level="info", message="first"))
    real_write = os.write
    calls = []

    def write_half_then_fail(fd, data):
        if b"lost to the full disk" not in bytes(data) and not calls:
            return real_write(fd, data)
        calls.append(len(data))
        if len(calls) == 1:
            return real_write(fd, bytes(data)[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(runlog.os, "write", write_half_then_fail)
    log.emit(ev.Notice(level="info", message="lost to the full disk"))
    monkeypatch.undo()
    log.emit(ev.Notice(level="info", message="after"))
    log.close()
    messages = [e.message for e in ev.read_events(tmp_path / "events.jsonl")]
    assert messages == ["first", "after"]
    _whole_lines(tmp_path / "events.jsonl")
