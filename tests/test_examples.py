"""examples/: each runs on small generated data - CIFAR-10 written in its real python-pickle
format (tests/test_cifar10.py's writer; only torchvision's MD5 check is patched, as there), and a
small folder of images drawn by the walk-through's own script. Nothing touches the network."""

from __future__ import annotations

import os
import pickle
import runpy
from pathlib import Path

import pytest
import torchvision.datasets.cifar

from test_cifar10 import FOLDER, write_cifar

pytestmark = pytest.mark.usefixtures("one_torch_thread")
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.fixture
def cifar(tmp_path, monkeypatch):
    """A data folder holding cifar-10-batches-py; every training image labelled 0 (airplane),
    every test image 1 (automobile): the validation loss rises from the first epoch on, so
    early stopping (patience 15) ends the seed's 100-epoch script after 16 epochs."""
    data = tmp_path / "data"
    write_cifar(data / FOLDER)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        path = data / FOLDER / name
        with open(path, "rb") as fh:
            entry = pickle.load(fh, encoding="latin1")
        entry["labels"] = [0 if name != "test_batch" else 1] * len(entry["labels"])
        with open(path, "wb") as fh:
            pickle.dump(entry, fh, protocol=2)
    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity",
                        lambda fpath, md5=None: os.path.isfile(fpath))  # the generated files' MD5s differ
    return data


def test_the_seed_cifar10_script_ported_by_its_imports_runs(cifar, tmp_path, monkeypatch, capsys):
    import torch.utils.data

    source = (EXAMPLES / "seed_cifar10.py").read_text(encoding="utf-8")
    assert "from tui_trainer import" in source and "class SimpleCNN(nn.Module):" in source  # the seed's own body
    monkeypatch.chdir(tmp_path)  # the script reads ./data (the fixture's), as the seed does
    # The seed's loaders use 2 worker processes; forking them each epoch only slows a test down.
    real_init = torch.utils.data.DataLoader.__init__

    def in_process(self, *args, **kwargs):
        real_init(self, *args, **{**kwargs, "num_workers": 0})

    monkeypatch.setattr(torch.utils.data.DataLoader, "__init__", in_process)
    runpy.run_path(str(EXAMPLES / "seed_cifar10.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "20 train / 6 validation" in out
    assert "run stopped early after 16 epochs" in out and "best val_loss" in out
    assert "confusion matrix" in out and "automobile" in out  # the seed's two plots, in the terminal
    assert (tmp_path / "checkpoints" / "best_model.pth").is_file()


def test_the_experiment_file_example_trains_its_own_model(cli, cifar, tmp_path):
    result = cli("run", EXAMPLES / "experiment.py", "--data-dir", cifar, "--epochs", "2", "--batch-size", "8",
                 "--threads", "1", "--headless", "--run-dir", tmp_path / "run")
    assert result.code == 0, result.err
    assert "model      experiment.py: SmallResNet" in result.out
    assert "recipe     SGD lr 5.00e-02" in result.out  # its build_optimizer, its defaults' lr
    assert "airplane" in result.out and "run finished after 2 epochs" in result.out  # CIFAR10's own class names
    assert (tmp_path / "run" / "experiment.py").read_bytes() == (EXAMPLES / "experiment.py").read_bytes()


def test_the_image_folder_walk_through(cli, tmp_path, monkeypatch):
    shapes = runpy.run_path(str(EXAMPLES / "image_folder" / "make_shapes.py"))
    monkeypatch.chdir(tmp_path)
    assert shapes["main"](["shapes", "--per-class", "10", "--size", "16"]) == 0
    assert sorted(p.name for p in (tmp_path / "shapes").iterdir()) == ["circle", "square", "triangle"]
    command = "tui-trainer run shapes --val-split 0.2 --model simplecnn --epochs 5"
    assert command in (EXAMPLES / "image_folder" / "README.md").read_text(encoding="utf-8")
    args = command.split()[1:]
    result = cli(*args, "--epochs", "1", "--threads", "1", "--headless", "--data-dir", tmp_path / "cache")
    assert result.code == 0, result.err
    assert "24 train / 6 validation, 3 classes" in result.out and "run finished after 1 epoch" in result.out
    assert [p.name.split("-")[:2] for p in (tmp_path / "runs").iterdir()] == [["shapes", "simplecnn"]]
