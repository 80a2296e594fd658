"""Models from elsewhere: torchvision's ImageNet weights (`--pretrained`), timm (`timm:NAME`),
the user's own factory (`file.py:factory`, `package.module:factory`), and `tui-trainer list`.

Refusals are one line, exit 2, and leave nothing behind (no run directory, no cache folder);
an exception in the user's code is their traceback and exit 1. Nothing here touches the network.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import urllib.error
import urllib.request

import pytest
import torch

from tui_trainer.models import build_model, torchvision_names as tv

pytestmark = pytest.mark.usefixtures("one_torch_thread")
TINY = ["--synthetic-train", "32", "--synthetic-val", "16", "--batch-size", "16", "--epochs", "1", "--threads", "1",
        "--headless"]


@pytest.fixture
def offline(monkeypatch):
    attempts = []

    def refuse(url, *args, **kwargs):
        attempts.append(getattr(url, "full_url", url))
        raise urllib.error.URLError(OSError(101, "Network is unreachable"))

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    return attempts


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    home = tmp_path / "torch-home"
    monkeypatch.setenv("TORCH_HOME", str(home))
    return home


def write_imagenet_weights(torch_home, name):
    """A stand-in for torchvision's weights file: the ImageNet architecture's state dict under
    the real file name (torchvision checks the hash only when it downloads)."""
    import torchvision.models as tvm

    torch.manual_seed(1)
    state = tvm.get_model(name).state_dict()
    path = torch_home / "hub" / "checkpoints" / tv.WEIGHTS[name]
    path.parent.mkdir(parents=True)
    torch.save(state, path)
    return state


# ----- --pretrained -----

def test_pretrained_loads_the_cached_weights_and_replaces_the_head(torch_home, offline):
    state = write_imagenet_weights(torch_home, "mobilenet_v3_small")
    model = build_model("mobilenet_v3_small", (1, 32, 32), 4, pretrained=True)
    got = model.state_dict()
    assert got["classifier.3.weight"].shape == (4, 1024)  # the new head: the data's classes
    torch.testing.assert_close(got["features.1.block.0.0.weight"], state["features.1.block.0.0.weight"])
    # one input channel: the RGB filters summed, so a grey image gives what its RGB copy gave
    torch.testing.assert_close(got["features.0.0.weight"], state["features.0.0.weight"].sum(1, keepdim=True))
    assert offline == []


def test_pretrained_squeezenet_gets_a_new_convolutional_head(torch_home, offline):
    write_imagenet_weights(torch_home, "squeezenet1_1")
    model = build_model("squeezenet1_1", (3, 32, 32), 6, pretrained=True).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, 32, 32)).shape == (2, 6)


def test_a_pretrained_run_from_the_command_line(cli, tmp_path, torch_home, offline):
    write_imagenet_weights(torch_home, "mobilenet_v3_small")
    run_dir = tmp_path / "run"
    result = cli("run", "synthetic", "--model", "mobilenet_v3_small", "--pretrained", *TINY, "--run-dir", run_dir)
    assert result.code == 0, result.err
    assert "model      mobilenet_v3_small (ImageNet weights, new head)" in result.out
    assert json.loads((run_dir / "config.json").read_text())["pretrained"] is True


@pytest.mark.parametrize("download", [True, False], ids=["offline", "no-download"])
def test_pretrained_weights_missing_offline_name_the_file_and_folder_and_write_nothing(cli, tmp_path, torch_home,
                                                                                        offline, download):
    run_dir = tmp_path / "run"
    args = [] if download else ["--no-download"]
    result = cli("run", "synthetic", "--model", "resnet18", "--pretrained", *TINY, *args, "--run-dir", run_dir)
    assert result.code == 2 and result.out == ""
    (line,) = result.err.strip().splitlines()
    assert "resnet18-f37072fd.pth" in line and str(torch_home / "hub" / "checkpoints") in line
    assert "https://download.pytorch.org/models/resnet18-f37072fd.pth" in line
    assert offline == (["https://download.pytorch.org/models/resnet18-f37072fd.pth"] if download else [])
    assert not run_dir.exists() and not torch_home.exists()  # checked before anything was made


def test_pretrained_with_a_model_that_has_no_weights_is_refused(cli, tmp_path):
    result = cli("run", "synthetic", "--model", "simplecnn", "--pretrained", "--run-dir", tmp_path / "run")
    assert result.code == 2 and "simplecnn has no pretrained weights" in result.err


# ----- timm -----

def test_without_timm_a_timm_model_says_how_to_install_it(cli, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "timm", None)  # as if it were not installed
    result = cli("run", "synthetic", "--model", "timm:resnet18", "--run-dir", tmp_path / "run")
    assert result.code == 2
    (line,) = result.err.strip().splitlines()
    assert 'pip install -e ".[timm]"' in line and not (tmp_path / "run").exists()


def test_a_timm_model_trains(cli, tmp_path):
    pytest.importorskip("timm")
    run_dir = tmp_path / "run"
    result = cli("run", "synthetic", "--model", "timm:test_resnet", "--synthetic-shape", "1x16x16", *TINY,
                 "--run-dir", run_dir)
    assert result.code == 0, result.err
    assert "model      timm:test_resnet," in result.out


def test_an_unknown_timm_model_gets_the_closest_names(cli, tmp_path):
    pytest.importorskip("timm")
    result = cli("run", "synthetic", "--model", "timm:test_resnot", "--run-dir", tmp_path / "run")
    assert result.code == 2 and "unknown timm model 'test_resnot' (did you mean test_resnet" in result.err
    assert not (tmp_path / "run").exists()


@pytest.fixture
def hub_offline(tmp_path, monkeypatch):
    """An empty Hugging Face hub cache of our own, and no connection to anywhere."""
    pytest.importorskip("timm")
    import socket

    from huggingface_hub import constants

    cache = tmp_path / "hf-hub"
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)

    def unreachable(*args, **kwargs):
        raise OSError(101, "Network is unreachable")

    monkeypatch.setattr(socket, "create_connection", unreachable)
    return cache


def test_timm_pretrained_offline_without_cached_weights_is_one_line_at_once(cli, tmp_path, hub_offline):
    """huggingface_hub retried each weights file five times (~50 s), printing a line per try,
    before the one error line."""
    import time

    started = time.monotonic()
    result = cli("run", "synthetic", "--model", "timm:test_resnet", "--pretrained", "--run-dir", tmp_path / "run")
    assert result.code == 2 and result.out == ""
    (line,) = result.err.strip().splitlines()
    assert "timm weights of test_resnet are not in the Hugging Face cache" in line and str(hub_offline) in line
    assert time.monotonic() - started < 15 and not (tmp_path / "run").exists()


def test_timm_pretrained_weights_in_the_hub_cache_load_without_the_network(cli, tmp_path, hub_offline):
    import timm
    from safetensors.torch import save_file

    torch.manual_seed(3)
    state = timm.create_model("test_resnet").state_dict()
    repo = hub_offline / "models--timm--test_resnet.r160_in1k"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0123abcd")
    (repo / "snapshots" / "0123abcd").mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in state.items()}, str(repo / "snapshots" / "0123abcd" / "model.safetensors"))
    from tui_trainer.models.timm_build import build

    model = build("test_resnet", (3, 16, 16), 1000, pretrained=True)
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    result = cli("run", "synthetic", "--model", "timm:test_resnet", "--pretrained", "--synthetic-shape", "3x16x16",
                 *TINY, "--run-dir", tmp_path / "run")
    assert result.code == 0, result.err


# ----- the user's own factory -----

GOOD = """
import torch.nn as nn

def build(num_classes, in_channels):
    return nn.Sequential(nn.Conv2d(in_channels, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(8, num_classes))

def three_classes(num_classes, in_channels):
    return build(3, in_channels)

def not_a_module(num_classes, in_channels):
    return 42

def broken(num_classes, in_channels):
    return helper(num_classes)

def helper(n):
    return n / 0

NOT_CALLABLE = 3
"""


@pytest.fixture
def factory_file(tmp_path):
    path = tmp_path / "my_net.py"
    path.write_text(textwrap.dedent(GOOD))
    return path


def test_a_factory_from_a_file_trains_and_names_the_run(cli, tmp_path, factory_file, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = cli("run", "synthetic", "--model", f"{factory_file}:build", *TINY)
    assert result.code == 0, result.err
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert run_dir.name.startswith("synthetic-my_net-build-")
    assert json.loads((run_dir / "config.json").read_text())["model"] == f"{factory_file.resolve()}:build"


def test_a_factory_from_a_module(cli, tmp_path, monkeypatch):
    package = tmp_path / "netpkg_for_test"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "models.py").write_text(textwrap.dedent(GOOD))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    run_dir = tmp_path / "run"
    result = cli("run", "synthetic", "--model", "netpkg_for_test.models:build", *TINY, "--run-dir", run_dir)
    assert result.code == 0, result.err
    for name in [m for m in sys.modules if m.startswith("netpkg_for_test")]:
        monkeypatch.delitem(sys.modules, name)


@pytest.mark.parametrize("target, expected", [
    ("missing.py:build", "no file missing.py"),
    ("{file}:build2", "defines no build2"),
    ("{file}:NOT_CALLABLE", "NOT_CALLABLE is a int, not a function"),
    ("{file}:not_a_module", "not_a_module() returned int, not a torch.nn.Module"),
    ("{file}:three_classes", "output has shape (2, 3) for a batch of 2, but the data have 10 classes"),
    ("no_such_module_xyz:build", "no module named no_such_module_xyz"),
])
def test_a_factory_problem_is_one_line_exit_2_and_nothing_written(cli, tmp_path, factory_file, monkeypatch,
                                                                   target, expected):
    monkeypatch.chdir(tmp_path)
    result = cli("run", "synthetic", "--model", target.format(file=factory_file), *TINY)
    assert result.code == 2, result.err
    (line,) = result.err.strip().splitlines()
    assert expected in line and "Traceback" not in result.err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["my_net.py"]  # no runs/


def test_an_exception_in_the_factory_shows_the_users_traceback_and_exits_1(cli, tmp_path, factory_file, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = cli("run", "synthetic", "--model", f"{factory_file}:broken", *TINY)
    assert result.code == 1
    assert result.err.startswith("Traceback") and "ZeroDivisionError: division by zero" in result.err
    assert f'File "{factory_file}", line' in result.err and "in helper" in result.err
    assert "tui_trainer" not in result.err.split("ZeroDivisionError")[0]  # their frames, not ours
    assert result.err.strip().splitlines()[-1].startswith("tui-trainer: error: ")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["my_net.py"]


# ----- tui-trainer list -----

def test_list_groups_the_models_by_family_readably(cli):
    result = cli("list")
    assert result.code == 0
    lines = result.out.splitlines()
    assert len(lines) < 70 and max(len(line) for line in lines) <= 100
    resnets = next(line for line in lines if line.strip().startswith("resnet*"))
    assert resnets.split()[1:] == ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152"]
    section = lines[next(i for i, line in enumerate(lines) if line.startswith("  torchvision (")) + 2:]
    section = section[:next(i for i, line in enumerate(section) if not line.strip())]
    listed = [word for line in section for word in line.split()[0 if line.startswith(" " * 20) else 1:]]
    assert sorted(listed) == sorted(tv.NAMES)  # each model once, under its family
    for dataset in ("mnist", "fashion-mnist", "cifar100", "svhn", "FOLDER"):
        assert f"  {dataset} " in result.out
    assert "timm:NAME" in result.out and "FILE.py:FN" in result.out


def test_list_imports_neither_torch_nor_torchvision():
    code = ("import sys, time; t = time.perf_counter(); from tui_trainer.cli import main; main(['list']); "
            "print(round(time.perf_counter() - t, 3), 'torch' in sys.modules, 'torchvision' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    seconds, torch_loaded, torchvision_loaded = done.stdout.strip().splitlines()[-1].split()
    assert (torch_loaded, torchvision_loaded) == ("False", "False")
    assert float(seconds) < 1.0
