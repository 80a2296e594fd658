"""MNIST, Fashion-MNIST, CIFAR-100 and SVHN through torchvision's own classes, from small files
written here in each dataset's real on-disk format:

  MNIST, Fashion-MNIST  idx-ubyte files, gzipped as downloaded (big-endian magic 2051 for images,
                        2049 for labels, then the sizes, then one byte per pixel or label)
  CIFAR-100             cifar-100-python/{train,test,meta}: pickled dicts, "data" rows of
                        3072 bytes (R, G, B planes), "fine_labels", "fine_label_names"
  SVHN                  train_32x32.mat / test_32x32.mat (MATLAB, scipy.io.savemat): X of shape
                        (32, 32, 3, N), y of shape (N, 1) with 10 for the digit 0

Where torchvision compares MD5s of the files (CIFAR-100, SVHN), only that comparison is patched,
since generated files cannot have the originals' checksums; a test keeps the real check and
sees it refuse them. Nothing may touch the network.
"""

from __future__ import annotations

import gzip
import pickle
import struct
import tarfile
import urllib.error
import urllib.request

import numpy as np
import pytest
import torch

from tui_trainer.config import make_config
from tui_trainer.data import build_data, cifar100, mnist, preflight, svhn
from tui_trainer.errors import UserError

pytestmark = pytest.mark.usefixtures("one_torch_thread")
CPU = torch.device("cpu")
N_TRAIN, N_TEST = 12, 5


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    attempts = []

    def refuse(url, *args, **kwargs):
        attempts.append(url)
        raise urllib.error.URLError(OSError(101, "Network is unreachable"))

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    return attempts


@pytest.fixture
def skip_md5(monkeypatch):
    import torchvision.datasets.cifar
    import torchvision.datasets.svhn

    def exists(fpath, md5=None):
        import os

        return os.path.isfile(fpath)

    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", exists)
    monkeypatch.setattr(torchvision.datasets.svhn, "check_integrity", exists)


def _idx(path, magic: int, array: np.ndarray, compress: bool) -> None:
    payload = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in array.shape) + array.tobytes()
    if compress:
        with gzip.open(str(path) + ".gz", "wb") as fh:
            fh.write(payload)
    else:
        path.write_bytes(payload)


def write_mnist(data_dir, folder="MNIST", compress=True, seed=0):
    raw = data_dir / folder / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    out = {}
    for split, n in (("train", N_TRAIN), ("t10k", N_TEST)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, n, dtype=np.uint8)
        _idx(raw / f"{split}-images-idx3-ubyte", 2051, images, compress)
        _idx(raw / f"{split}-labels-idx1-ubyte", 2049, labels, compress)
        out[split] = (images[:, None], labels)
    return out["train"], out["t10k"]


def write_cifar100(data_dir, seed=0):
    folder = data_dir / "cifar-100-python"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    out = {}
    for split, n in (("train", N_TRAIN), ("test", N_TEST)):
        rows = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        fine = [int(v) for v in rng.integers(0, 100, n)]
        entry = {"filenames": [f"{split}_{i}.png" for i in range(n)], "batch_label": f"{split} batch",
                 "fine_labels": fine, "coarse_labels": [v // 5 for v in fine], "data": rows}
        with open(folder / split, "wb") as fh:
            pickle.dump(entry, fh, protocol=2)
        out[split] = (rows.reshape(n, 3, 32, 32), np.array(fine))
    meta = {"fine_label_names": [f"fine{i}" for i in range(100)], "coarse_label_names": [f"c{i}" for i in range(20)]}
    with open(folder / "meta", "wb") as fh:
        pickle.dump(meta, fh, protocol=2)
    return out["train"], out["test"]


def write_svhn(data_dir, seed=0):
    from scipy.io import savemat

    folder = data_dir / "svhn"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    out = {}
    for split, n in (("train", N_TRAIN), ("test", N_TEST)):
        images = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
        digits = rng.integers(0, 10, n)
        y = np.where(digits == 0, 10, digits).astype(np.uint8).reshape(n, 1)  # SVHN writes 0 as 10
        savemat(folder / f"{split}_32x32.mat", {"X": images.transpose(2, 3, 1, 0), "y": y})
        out[split] = (images, digits)
    return out["train"], out["test"]


WRITERS = {"mnist": write_mnist, "fashion-mnist": lambda d: write_mnist(d, "FashionMNIST"),
           "cifar100": write_cifar100, "svhn": write_svhn}
# (crop padding, flip) each dataset augments with
AUGMENTATION = {"mnist": (2, False), "fashion-mnist": (2, True), "cifar100": (4, True), "svhn": (4, False)}
MODULES = {"mnist": mnist, "fashion-mnist": mnist, "cifar100": cifar100, "svhn": svhn}


def config(name, data_dir, **overrides):
    values = dict(data_dir=str(data_dir), download=False, batch_size=4, eval_batch_size=N_TEST, augment=True)
    values.update(overrides)
    return make_config(name, **values)


def normalised(images, transform):
    mean = torch.tensor(transform.mean).view(1, -1, 1, 1)
    std = torch.tensor(transform.std).view(1, -1, 1, 1)
    return (torch.from_numpy(np.ascontiguousarray(images)).float() / 255 - mean) / std


@pytest.mark.parametrize("name", list(WRITERS))
def test_each_dataset_loads_through_torchvision_from_its_real_format(tmp_path, skip_md5, name):
    (x_train, y_train), (x_test, y_test) = WRITERS[name](tmp_path)
    bundle = build_data(config(name, tmp_path), CPU)
    channels = 1 if "mnist" in name else 3
    assert bundle.input_shape == (channels, 28 if "mnist" in name else 32, 28 if "mnist" in name else 32)
    assert (bundle.train_size, bundle.val_size) == (N_TRAIN, N_TEST)
    assert bundle.num_classes == (100 if name == "cifar100" else 10) == len(bundle.class_names)
    x, y = next(iter(bundle.val_loader))  # in file order: a wrong reshape would scramble the pixels
    assert y.tolist() == [int(v) for v in y_test]
    torch.testing.assert_close(x, normalised(x_test, bundle.val_loader.transform), rtol=1e-5, atol=1e-5)
    train = bundle.train_loader
    assert train.inputs.dtype == torch.uint8
    assert torch.equal(train.inputs, torch.from_numpy(np.ascontiguousarray(x_train)))
    assert train.targets.tolist() == [int(v) for v in y_train]
    assert (train.transform.crop_padding, train.transform.flip) == AUGMENTATION[name]


def test_class_names_come_from_the_dataset(tmp_path, skip_md5):
    write_cifar100(tmp_path / "c")
    assert build_data(config("cifar100", tmp_path / "c"), CPU).class_names[:2] == ("fine0", "fine1")
    write_mnist(tmp_path / "f", "FashionMNIST")
    assert build_data(config("fashion-mnist", tmp_path / "f"), CPU).class_names[0] == "T-shirt/top"
    write_svhn(tmp_path / "s")
    assert build_data(config("svhn", tmp_path / "s"), CPU).class_names == tuple("0123456789")


def test_mnist_files_already_decompressed_are_used_as_they_are(tmp_path):
    (x_train, _), _ = write_mnist(tmp_path, compress=False)
    bundle = build_data(config("mnist", tmp_path), CPU)
    assert torch.equal(bundle.train_loader.inputs, torch.from_numpy(x_train))


def test_data_dir_may_name_the_datasets_own_folder(tmp_path, skip_md5):
    write_mnist(tmp_path)
    assert build_data(config("mnist", tmp_path / "MNIST" / "raw"), CPU).val_size == N_TEST
    write_svhn(tmp_path)
    assert build_data(config("svhn", tmp_path / "svhn"), CPU).val_size == N_TEST


def test_the_cifar100_archive_is_extracted_when_only_it_is_there(tmp_path, skip_md5):
    staging, data_dir = tmp_path / "staging", tmp_path / "data"
    _, (_, y_test) = write_cifar100(staging)
    data_dir.mkdir()
    with tarfile.open(data_dir / "cifar-100-python.tar.gz", "w:gz") as tar:
        tar.add(staging / "cifar-100-python", arcname="cifar-100-python")
    bundle = build_data(config("cifar100", data_dir), CPU)
    assert next(iter(bundle.val_loader))[1].tolist() == y_test.tolist()


@pytest.mark.parametrize("name", ["cifar100", "svhn"])
def test_files_that_fail_torchvisions_md5_check_are_reported_as_corrupted(tmp_path, name):
    WRITERS[name](tmp_path)  # the real check runs: these are not the real files
    with pytest.raises(UserError, match="incomplete or corrupted") as info:
        build_data(config(name, tmp_path), CPU)
    assert "\n" not in str(info.value)


def test_a_damaged_mnist_file_is_one_line(tmp_path):
    write_mnist(tmp_path)
    preflight(config("mnist", tmp_path))  # decompresses
    (tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03" + b"\xff" * 20)
    with pytest.raises(UserError, match="incomplete or corrupted"):
        build_data(config("mnist", tmp_path), CPU)


def test_a_damaged_gzip_is_one_line(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in mnist.FILES["mnist"].remotes:
        (raw / name.filename).write_bytes(b"\x1f\x8b\x08" + b"junk" * 10)
    with pytest.raises(UserError, match="could not decompress"):
        preflight(config("mnist", tmp_path))
    assert not any(p.name.endswith(".part") for p in raw.iterdir())


@pytest.mark.parametrize("name, files", [
    ("mnist", ["train-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", "MNIST/raw"]),
    ("fashion-mnist", ["train-images-idx3-ubyte.gz", "FashionMNIST/raw"]),
    ("cifar100", ["cifar-100-python.tar.gz", "cifar-100-python/"]),
    ("svhn", ["train_32x32.mat", "test_32x32.mat", "svhn"]),
])
@pytest.mark.parametrize("download", [True, False], ids=["offline", "no-download"])
def test_missing_data_is_one_line_saying_what_to_put_where_and_nothing_is_made(cli, tmp_path, no_network, monkeypatch,
                                                                               name, files, download):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    args = [] if download else ["--no-download"]
    result = cli("run", name, "--data-dir", tmp_path / "data", *args, "--headless", "--run-dir", tmp_path / "run")
    assert result.code == 2 and result.out == ""
    (line,) = result.err.strip().splitlines()
    assert all(f in line for f in files) and str(tmp_path / "data") in line
    assert ("could not be downloaded" in line and "Network is unreachable" in line) if download else True
    first = MODULES[name].FILES[name] if name in ("mnist", "fashion-mnist") else MODULES[name].FILES
    assert no_network == (list(first.remotes[0].urls) if download else [])  # the first file's mirrors, then stop
    assert "downloading" not in result.err
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no data dir, no cache, no run dir


def test_an_mnist_run_from_the_command_line(cli, tmp_path):
    write_mnist(tmp_path / "data")
    run_dir = tmp_path / "run"
    result = cli("run", "mnist", "--data-dir", tmp_path / "data", "--no-download", "--epochs", "1", "--batch-size",
                 "4", "--model", "resnet18", "--threads", "1", "--headless", "--run-dir", run_dir)
    assert result.code == 0, result.err
    assert "12 train / 5 validation" in result.out
    assert "resnet18 (small-input stem: 3x3 conv, stride 1, no max-pool; first conv takes 1 channel)" in result.out


class Served:
    """A response of urlopen serving `data`."""

    def __init__(self, data: bytes) -> None:
        self.data, self.headers = data, {"Content-Length": str(len(data))}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def read(self, n):
        chunk, self.data = self.data[:n], self.data[n:]
        return chunk


def test_a_download_is_checked_and_moved_into_place(tmp_path, monkeypatch, skip_md5, capsys):
    import dataclasses
    import hashlib

    staging = tmp_path / "staging"
    _, (_, y_test) = write_svhn(staging)
    served = {name: (staging / "svhn" / name).read_bytes() for name in svhn.FILES.needed}
    remotes = tuple(dataclasses.replace(r, md5=hashlib.md5(served[r.filename]).hexdigest()) for r in svhn.FILES.remotes)
    monkeypatch.setattr(svhn, "FILES", dataclasses.replace(svhn.FILES, remotes=remotes))
    monkeypatch.setattr(urllib.request, "urlopen", lambda url, **kw: Served(served[url.rsplit("/", 1)[1]]))
    bundle = build_data(config("svhn", tmp_path / "data", download=True), CPU)
    assert next(iter(bundle.val_loader))[1].tolist() == y_test.tolist()
    assert "downloading SVHN (train_32x32.mat)" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "data" / "svhn").iterdir()) == ["test_32x32.mat", "train_32x32.mat"]


def test_a_download_with_the_wrong_checksum_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(urllib.request, "urlopen", lambda url, **kw: Served(b"not the dataset"))
    with pytest.raises(UserError, match="checksum mismatch"):
        preflight(config("svhn", tmp_path / "data", download=True))
    assert not (tmp_path / "data").exists()
