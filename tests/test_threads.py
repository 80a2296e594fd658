"""`--threads N` sets torch's intra-op threads for a run (and its resume); without it torch picks,
and a CPU run on a busy machine says that one thread may be much faster (benchmarks/threads.py)."""

from __future__ import annotations

import json
import os

import pytest
import torch

ARGS = ("run", "synthetic", "--model", "mlp", "--synthetic-shape", "1x4x4", "--synthetic-train", "64",
        "--synthetic-val", "32", "--epochs", "1", "--headless", "--device", "cpu")


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def busy_machine(monkeypatch):
    monkeypatch.setattr(os, "getloadavg", lambda: (3.4, 3.0, 2.5))
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})


def test_threads_sets_torchs_intra_op_threads_and_is_recorded(cli, tmp_path, two_threads):
    result = cli(*ARGS, "--threads", "1", "--run-dir", tmp_path / "run")
    assert result.code == 0, result.err
    assert torch.get_num_threads() == 1
    assert json.loads((tmp_path / "run" / "config.json").read_text())["threads"] == 1


def test_a_busy_cpu_gets_a_hint_unless_threads_was_chosen(cli, tmp_path, two_threads, busy_machine):
    result = cli(*ARGS, "--run-dir", tmp_path / "default")
    assert result.code == 0, result.err
    assert ("warning: the CPU is busy (load 3.4 on 2 cores): torch's 2 threads will wait on each other; "
            "--threads 1 may train many times faster") in result.out
    chosen = cli(*ARGS, "--threads", "2", "--run-dir", tmp_path / "chosen")
    assert chosen.code == 0 and "CPU is busy" not in chosen.out


def test_an_idle_cpu_gets_no_hint(cli, tmp_path, two_threads, monkeypatch):
    monkeypatch.setattr(os, "getloadavg", lambda: (0.2, 0.3, 0.3))
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    result = cli(*ARGS, "--run-dir", tmp_path / "run")
    assert result.code == 0 and "CPU is busy" not in result.out


@pytest.mark.parametrize("value", ["0", "-2", "two"])
def test_a_bad_thread_count_is_refused_in_one_line(cli, tmp_path, value):
    result = cli(*ARGS, "--threads", value, "--run-dir", tmp_path / "run")
    assert result.code == 2 and len(result.err.strip().splitlines()) == 1 and "--threads" in result.err
    assert not (tmp_path / "run").exists()
