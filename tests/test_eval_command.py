"""`tui-trainer eval`: a saved run's checkpoint scored again on the run's own data split."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
from pathlib import Path

import pytest

from tui_trainer.cli import main

REPORT_KEYS = ("loss", "accuracy", "precision", "recall", "f1", "macro_precision", "macro_recall", "macro_f1",
               "class_names", "per_class_precision", "per_class_recall", "per_class_f1", "support",
               "confusion_matrix")


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """A real digits run: 3 epochs, a periodic checkpoint every epoch."""
    run_dir = tmp_path_factory.mktemp("eval") / "run"
    with contextlib.redirect_stdout(io.StringIO()):
        code = main(["run", "digits", "--epochs", "3", "--threads", "1", "--headless", "--checkpoint-every", "1",
                     "--lr", "3e-3", "--run-dir", str(run_dir)])
    assert code == 0
    return run_dir


def _tree(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _one_line(err: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("tui-trainer: error: "), err
    return lines[0]


def test_best_equals_the_runs_report_exactly(cli, digits_run):
    before = _tree(digits_run)
    result = cli("eval", digits_run, "--json", "--threads", "1")
    assert result.code == 0, result.err
    got = json.loads(result.out)
    report = json.loads((digits_run / "report.json").read_text())
    for key in REPORT_KEYS:
        assert got[key] == report[key], key
    assert got["epoch"] == report["best_epoch"] and got["samples"] == 360
    assert got["split"] == "validation" and "20%" in got["split_is"]
    assert _tree(digits_run) == before  # nothing written


def test_a_periodic_checkpoint_scores_what_its_epoch_validated_to(cli, digits_run):
    ends = [json.loads(line) for line in (digits_run / "events.jsonl").read_text().splitlines()
            if '"event":"EpochEnd"' in line]
    for epoch in (1, 2):
        result = cli("eval", digits_run, "--checkpoint", str(epoch), "--json", "--threads", "1")
        assert result.code == 0, result.err
        got = json.loads(result.out)
        end = next(e for e in ends if e["epoch"] == epoch)
        assert got["epoch"] == epoch
        assert got["loss"] == pytest.approx(end["val_loss"], rel=1e-12)
        assert 100 * got["accuracy"] == pytest.approx(end["val_acc"], rel=1e-12)


def test_text_output_names_the_split_and_shows_every_table(cli, digits_run):
    result = cli("eval", digits_run / "last.pth", "--threads", "1")
    assert result.code == 0, result.err
    out = result.out
    assert f"{digits_run / 'last.pth'} (epoch 3) on validation: 360 samples" in out
    assert "validation = digits' validation split: a fixed stratified 20%" in out
    assert "weighted precision" in out and "macro    precision" in out
    assert "class  precision  recall      f1  support" in out
    assert "confusion matrix (rows: true class, columns: predicted)" in out
    assert len([line for line in out.splitlines() if line.startswith("  9 ")]) == 2  # per-class row and matrix row


@pytest.mark.parametrize("args, expected", [
    (["--split", "test"], "digits has no test split"),
    (["--checkpoint", "7"], "no checkpoint_epoch_7.pth in"),
    (["--checkpoint", "worst"], "--checkpoint must be best, last or an epoch number"),
])
def test_choices_the_run_cannot_meet_are_one_line_exit_2(cli, digits_run, args, expected):
    result = cli("eval", digits_run, *args)
    assert result.code == 2 and expected in _one_line(result.err)


def test_paths_that_are_no_run_or_checkpoint_are_one_line_exit_2(cli, tmp_path, digits_run):
    empty_run = tmp_path / "empty"
    empty_run.mkdir()
    shutil.copy(digits_run / "config.json", empty_run / "config.json")
    stray = tmp_path / "notes.txt"
    stray.write_text("hello")
    cases = [(empty_run, "no checkpoint in"), (tmp_path, "is not a tui-trainer run directory"),
             (tmp_path / "missing", "does not exist"), (stray, "not a checkpoint in a run directory")]
    for target, expected in cases:
        before = _tree(tmp_path)
        result = cli("eval", target)
        assert result.code == 2 and expected in _one_line(result.err), target
        assert _tree(tmp_path) == before


def test_a_checkpoint_of_another_run_is_one_line_that_does_not_say_resume(cli, tmp_path, digits_run):
    """Another run's checkpoint put into a run directory: the refusal named `resume`, which eval
    is not, instead of saying the checkpoint belongs elsewhere."""
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    config = json.loads((digits_run / "config.json").read_text())
    (mixed / "config.json").write_text(json.dumps({**config, "model": "mlp"}))
    shutil.copy(digits_run / "best_model.pth", mixed / "best_model.pth")
    before = _tree(tmp_path)
    result = cli("eval", mixed)
    line = _one_line(result.err)
    assert result.code == 2 and "trained with model='simplecnn', but the run's config says 'mlp'" in line
    assert "best_model.pth belongs to another run" in line and "resume" not in line
    assert _tree(tmp_path) == before


class _RunsAShellCommand:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_hostile_or_damaged_checkpoint_is_refused_in_one_line(cli, digits_run, tmp_path):
    import torch

    run = Path(shutil.copytree(digits_run, tmp_path / "run"))
    marker = tmp_path / "pwned"
    torch.save({"format": "tui-trainer/checkpoint", "epoch": 3, "payload": _RunsAShellCommand(marker)},
               run / "best_model.pth")
    before = _tree(run)
    result = cli("eval", run)
    assert result.code == 2 and "refusing to load" in _one_line(result.err)
    assert not marker.exists() and _tree(run) == before

    data = bytearray((run / "last.pth").read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte inside the tensors
    (run / "last.pth").write_bytes(bytes(data))
    result = cli("eval", run, "--checkpoint", "last")
    assert result.code == 2 and "corrupted" in _one_line(result.err)


def test_an_image_folder_run_is_evaluated_on_its_held_out_images(cli, tmp_path, monkeypatch):
    np = pytest.importorskip("numpy")
    from PIL import Image

    rng = np.random.default_rng(0)
    for c, name in enumerate(("ant", "bee", "cow")):
        (tmp_path / "pics" / name).mkdir(parents=True)
        for i in range(10):
            pixels = np.clip(rng.normal(50 + 70 * c, 40, (12, 12, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(tmp_path / "pics" / name / f"{i:03d}.png")
    run = tmp_path / "run"
    trained = cli("run", tmp_path / "pics", "--val-split", "0.2", "--model", "mlp", "--epochs", "2", "--batch-size",
                  "8", "--data-dir", tmp_path / "data", "--headless", "--threads", "1", "--run-dir", run)
    assert trained.code == 0, trained.err
    result = cli("eval", run, "--json")
    assert result.code == 0, result.err
    got, report = json.loads(result.out), json.loads((run / "report.json").read_text())
    assert got["samples"] == 6 and got["class_names"] == ["ant", "bee", "cow"]
    assert "validation images" in got["split_is"]
    for key in REPORT_KEYS:
        assert got[key] == report[key], key
    refused = cli("eval", run, "--split", "test")
    assert refused.code == 2 and "pics has no test split" in _one_line(refused.err)


def test_a_cifar10_run_is_evaluated_on_the_test_split_it_validated_on(cli, tmp_path, monkeypatch):
    """CIFAR-10's test split is its validation split: --split val and --split test score the same
    images, and say so. (Tiny files in the real format; torchvision's MD5 check skipped.)"""
    import pickle

    import numpy as np
    import torchvision

    from tui_trainer import catalog

    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda fpath, md5=None: os.path.isfile(fpath))
    folder = tmp_path / "data" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)

    def dump(name, n):
        entry = {"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                 "labels": [int(v) for v in rng.integers(0, 10, n)], "filenames": [f"{j}.png" for j in range(n)]}
        with open(folder / name, "wb") as fh:
            pickle.dump(entry, fh, protocol=2)

    for i in range(1, 6):
        dump(f"data_batch_{i}", 4)
    dump("test_batch", 6)
    with open(folder / "batches.meta", "wb") as fh:
        pickle.dump({"label_names": list(catalog.CIFAR10_CLASSES)}, fh, protocol=2)
    run = tmp_path / "run"
    trained = cli("run", "cifar10", "--data-dir", tmp_path / "data", "--no-download", "--epochs", "1", "--batch-size",
                  "8", "--model", "mlp", "--headless", "--threads", "1", "--run-dir", run)
    assert trained.code == 0, trained.err
    report = json.loads((run / "report.json").read_text())
    for split in ("val", "test"):
        result = cli("eval", run, "--split", split, "--json")
        assert result.code == 0, result.err
        got = json.loads(result.out)
        assert got["split_is"].startswith("CIFAR-10's official test split") and got["samples"] == 6
        assert got["confusion_matrix"] == report["confusion_matrix"] and got["loss"] == report["loss"]
    text = cli("eval", run, "--split", "test")
    assert "on test: 6 samples" in text.out and "test = CIFAR-10's official test split" in text.out
