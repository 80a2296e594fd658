"""Default run directory names: two runs started in the same second never share a directory,
and no run reuses a directory that is already there."""

from __future__ import annotations

import time

from tui_trainer import runlog


def test_two_runs_in_the_same_second_get_two_new_directories(tmp_path, monkeypatch):
    monkeypatch.setattr(time, "strftime", lambda fmt, *a: "20261127-101500")
    root = tmp_path / "runs"
    first = runlog.default_run_dir("digits", "simplecnn", root)
    second = runlog.default_run_dir("digits", "simplecnn", root)
    assert first != second
    # each name is claimed (created) at once, so a third process cannot pick either of them
    assert first.is_dir() and second.is_dir()
    assert first.name == "digits-simplecnn-20261127-101500"
    assert second.name == "digits-simplecnn-20261127-101500-2"


def test_an_existing_directory_is_never_reused(tmp_path, monkeypatch):
    monkeypatch.setattr(time, "strftime", lambda fmt, *a: "20261127-101500")
    root = tmp_path / "runs"
    (root / "digits-simplecnn-20261127-101500").mkdir(parents=True)
    (root / "digits-simplecnn-20261127-101500" / "notes.txt").write_text("mine")
    claimed = runlog.default_run_dir("digits", "simplecnn", root)
    assert claimed.name == "digits-simplecnn-20261127-101500-2" and list(claimed.iterdir()) == []
    assert (root / "digits-simplecnn-20261127-101500" / "notes.txt").read_text() == "mine"


def test_cli_runs_without_run_dir_in_the_same_second_both_start(cli, tmp_path, monkeypatch):
    monkeypatch.setattr(time, "strftime", lambda fmt, *a: "20261127-101500")
    monkeypatch.chdir(tmp_path)
    args = ("run", "synthetic", "--model", "mlp", "--synthetic-shape", "1x4x4", "--synthetic-train", "64",
            "--synthetic-val", "32", "--epochs", "1", "--headless", "--device", "cpu")
    results = [cli(*args), cli(*args)]
    assert [r.code for r in results] == [0, 0], [r.err for r in results]
    names = sorted(p.name for p in (tmp_path / "runs").iterdir())
    assert names == ["synthetic-mlp-20261127-101500", "synthetic-mlp-20261127-101500-2"]
    for name in names:
        assert (tmp_path / "runs" / name / "report.json").is_file()
