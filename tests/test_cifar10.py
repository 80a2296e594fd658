"""CIFAR-10 through torchvision's own CIFAR10 class, from small files written here in the real
format (the python version: pickled dicts of uint8 rows, R then G then B planes of 32x32).

Only the checksum is patched - torchvision's `check_integrity`, the function its own dataset
tests patch - because the generated files cannot have the real files' MD5s. Nothing here may
touch the network: every config says download=False, and the download paths fail the test.
"""

from __future__ import annotations

import json
import os
import pickle
import tarfile
import urllib.error
import urllib.request

import numpy as np
import pytest
import torch
import torchvision.datasets.cifar

from tui_trainer import catalog
from tui_trainer.config import make_config
from tui_trainer.data import build_data, cifar10, preflight
from tui_trainer.errors import UserError

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CPU = torch.device("cpu")
PER_BATCH, TEST_SIZE = 4, 6
FOLDER = "cifar-10-batches-py"
REAL_DOWNLOAD = cifar10._download  # before the fixture below replaces it


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the CIFAR-10 tests must not touch the network")

    monkeypatch.setattr(cifar10, "_download", refuse)
    monkeypatch.setattr(urllib.request, "urlopen", refuse)


@pytest.fixture
def checked_files(monkeypatch):
    """Skip the MD5 comparison (still require each file), and record which files were checked."""
    seen: list[str] = []

    def exists_without_checksum(fpath, md5=None):
        seen.append(os.path.basename(fpath))
        return os.path.isfile(fpath)

    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", exists_without_checksum)
    return seen


def write_cifar(folder, seed: int = 0) -> dict:
    """The seven files of cifar-10-batches-py; returns the images (N, 3, 32, 32) and labels."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    out = {"train_x": [], "train_y": []}

    def dump(name, entry):
        with open(folder / name, "wb") as fh:
            pickle.dump(entry, fh, protocol=2)

    for i in range(1, 6):
        rows = rng.integers(0, 256, (PER_BATCH, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, PER_BATCH)]
        dump(f"data_batch_{i}", {"batch_label": f"training batch {i} of 5", "labels": labels, "data": rows,
                                 "filenames": [f"train_{i}_{j}.png" for j in range(PER_BATCH)]})
        out["train_x"].append(rows)
        out["train_y"] += labels
    rows = rng.integers(0, 256, (TEST_SIZE, 3072), dtype=np.uint8)
    labels = [int(v) for v in rng.integers(0, 10, TEST_SIZE)]
    dump("test_batch", {"batch_label": "testing batch 1 of 1", "labels": labels, "data": rows,
                        "filenames": [f"test_{j}.png" for j in range(TEST_SIZE)]})
    dump("batches.meta", {"num_cases_per_batch": PER_BATCH, "label_names": list(catalog.CIFAR10_CLASSES),
                          "num_vis": 3072})
    out["train_x"] = np.concatenate(out["train_x"]).reshape(-1, 3, 32, 32)
    out["test_x"], out["test_y"] = rows.reshape(-1, 3, 32, 32), labels
    return out


def config(data_dir, **overrides):
    values = dict(data_dir=str(data_dir), download=False, batch_size=8, eval_batch_size=TEST_SIZE)
    values.update(overrides)
    return make_config("cifar10", **values)


def normalised(images: np.ndarray) -> torch.Tensor:
    mean = torch.tensor(cifar10.MEAN).view(1, 3, 1, 1)
    std = torch.tensor(cifar10.STD).view(1, 3, 1, 1)
    return (torch.from_numpy(images).float() / 255 - mean) / std


def test_cifar10_loads_through_torchvision(tmp_path, checked_files):
    written = write_cifar(tmp_path / FOLDER)
    bundle = build_data(config(tmp_path), CPU)
    assert set(checked_files) >= {"data_batch_1", "data_batch_5", "test_batch", "batches.meta"}
    assert (bundle.train_size, bundle.val_size, bundle.num_classes) == (5 * PER_BATCH, TEST_SIZE, 10)
    assert bundle.class_names == catalog.CIFAR10_CLASSES and bundle.input_shape == (3, 32, 32)
    x, y = next(iter(bundle.val_loader))
    assert y.tolist() == written["test_y"]
    # each row is three 32x32 planes, R then G then B: a wrong reshape would scramble the pixels
    torch.testing.assert_close(x, normalised(written["test_x"]), rtol=1e-5, atol=1e-5)


def test_training_images_are_kept_as_uint8_and_augmented_in_batches(tmp_path, checked_files):
    written = write_cifar(tmp_path / FOLDER)
    bundle = build_data(config(tmp_path), CPU)
    loader = bundle.train_loader
    assert loader.inputs.dtype == torch.uint8 and loader.inputs.shape == (20, 3, 32, 32)
    assert (loader.transform.crop_padding, loader.transform.flip) == (4, True)
    assert loader.transform.mean == cifar10.MEAN and loader.transform.std == cifar10.STD
    xb, yb = next(iter(loader))
    assert xb.shape == (8, 3, 32, 32) and xb.dtype == torch.float32

    plain = build_data(config(tmp_path, augment=False), CPU).train_loader
    batches = list(plain)  # one epoch
    images = torch.cat([xb for xb, _ in batches])
    labels = torch.cat([yb for _, yb in batches])
    order = torch.argsort(images.flatten(1)[:, :8].sum(1))
    expected = normalised(written["train_x"])
    expected_order = torch.argsort(expected.flatten(1)[:, :8].sum(1))
    torch.testing.assert_close(images[order], expected[expected_order], rtol=1e-5, atol=1e-5)
    assert labels[order].tolist() == [written["train_y"][i] for i in expected_order]


def test_data_dir_may_name_the_extracted_folder_itself(tmp_path, checked_files):
    write_cifar(tmp_path / FOLDER)
    bundle = build_data(config(tmp_path / FOLDER), CPU)
    assert bundle.val_size == TEST_SIZE


def test_the_archive_is_extracted_when_only_it_is_there(tmp_path, checked_files):
    staging = tmp_path / "staging"
    written = write_cifar(staging / FOLDER)
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    with tarfile.open(data_dir / cifar10.ARCHIVE, "w:gz") as tar:
        tar.add(staging / FOLDER, arcname=FOLDER)
    bundle = build_data(config(data_dir), CPU)
    assert (data_dir / FOLDER / "batches.meta").is_file()
    assert next(iter(bundle.val_loader))[1].tolist() == written["test_y"]


def test_an_archive_without_the_folder_is_a_clear_error(tmp_path):
    (tmp_path / "readme.txt").write_text("not cifar")
    with tarfile.open(tmp_path / cifar10.ARCHIVE, "w:gz") as tar:
        tar.add(tmp_path / "readme.txt", arcname="readme.txt")
    with pytest.raises(UserError, match=f"does not contain {FOLDER}"):
        preflight(config(tmp_path))


def test_a_corrupted_archive_is_a_clear_error(tmp_path):
    (tmp_path / cifar10.ARCHIVE).write_bytes(b"\x1f\x8b\x08" + os.urandom(200))
    with pytest.raises(UserError, match="could not extract") as info:
        preflight(config(tmp_path))
    assert "\n" not in str(info.value)


def test_files_that_fail_torchvisions_checksum_are_reported_as_corrupted(tmp_path):
    write_cifar(tmp_path / FOLDER)  # the real check runs: these are not the real files
    with pytest.raises(UserError, match="incomplete or corrupted"):
        build_data(config(tmp_path), CPU)


def test_missing_data_offline_is_one_line_saying_where_to_put_it(tmp_path):
    with pytest.raises(UserError) as info:
        preflight(config(tmp_path / "empty"))
    message = str(info.value)
    assert "\n" not in message
    assert cifar10.ARCHIVE in message and FOLDER in message and str(tmp_path / "empty") in message


def test_missing_data_on_the_command_line_exits_2_and_writes_nothing(cli, tmp_path):
    run_dir = tmp_path / "run"
    result = cli("run", "cifar10", "--data-dir", tmp_path / "none", "--no-download", "--headless",
                 "--run-dir", run_dir)
    assert result.code == 2
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and cifar10.ARCHIVE in lines[0] and "Traceback" not in result.err
    assert not run_dir.exists() and not (tmp_path / "none").exists()


def test_a_cifar10_run_from_the_command_line(cli, tmp_path, checked_files):
    write_cifar(tmp_path / "data" / FOLDER)
    run_dir = tmp_path / "run"
    result = cli("run", "cifar10", "--data-dir", tmp_path / "data", "--no-download", "--epochs", "1",
                 "--batch-size", "8", "--model", "mlp", "--headless", "--run-dir", run_dir)
    assert result.code == 0, result.err
    assert "20 train / 6 validation" in result.out
    report = json.loads((run_dir / "report.json").read_text())
    assert report["class_names"] == list(catalog.CIFAR10_CLASSES)
    assert sum(report["support"]) == TEST_SIZE


@pytest.mark.parametrize("where", ["data-dir", "default-cache"])
def test_offline_download_prints_and_creates_nothing_before_its_one_line_error(cli, tmp_path, monkeypatch, where):
    """No network: the connection fails before anything is said or made (no "downloading" line,
    no empty data folder, no run directory), then one line on stderr and exit 2."""
    attempts = []

    def offline(url, *args, **kwargs):
        attempts.append(url)
        raise urllib.error.URLError(OSError(101, "Network is unreachable"))

    monkeypatch.setattr(cifar10, "_download", REAL_DOWNLOAD)
    monkeypatch.setattr(urllib.request, "urlopen", offline)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    data_args = ["--data-dir", tmp_path / "data"] if where == "data-dir" else []
    result = cli("run", "cifar10", *data_args, "--headless", "--run-dir", tmp_path / "run")
    assert attempts == [cifar10.URL]
    assert result.code == 2 and result.out == ""
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and "could not be downloaded" in lines[0] and "Network is unreachable" in lines[0]
    assert "downloading" not in result.err
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no data dir, no cache dir, no run dir


def test_a_download_that_breaks_off_leaves_no_partial_file_or_folder(tmp_path, monkeypatch, capsys):
    class Broken:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def read(self, n):
            raise ConnectionResetError(104, "Connection reset by peer")

    monkeypatch.setattr(cifar10, "_download", REAL_DOWNLOAD)
    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: Broken())
    with pytest.raises(UserError, match="Connection reset by peer"):
        preflight(config(tmp_path / "data", download=True))
    assert "downloading CIFAR-10" in capsys.readouterr().err  # it had started, so it said so
    assert not (tmp_path / "data").exists()
