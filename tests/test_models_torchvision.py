"""`--model NAME` for every torchvision classification model: the static name list matches
torchvision's, every model builds for CIFAR- and MNIST-shaped data and returns one score per
class, the ResNet-style models get the small-input stem under 64 px (and the header says so),
other channel counts adapt the first convolution, and a few models really train.

Building all 80 models with real weights would allocate about 5 GB and take minutes, so the
test that covers every name builds them on the meta device (shapes without memory) and runs a
forward pass there: the same code path, every adaptation included. Every name is built for
MNIST-shaped data (one channel, 28 px: the first convolution, the small-input stem and the
input resize all apply); the smallest model of each family also for CIFAR-shaped data and in
its pretrained form (ImageNet architecture, new head).
"""

from __future__ import annotations

import contextlib
import json

import pytest
import torch
import torchvision.models as tvm

from tui_trainer.models import build_model, torchvision_names as tv
from tui_trainer.models.adapt_plan import plan

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@contextlib.contextmanager
def on_meta_device(monkeypatch):
    """Modules built inside get meta parameters. RegNet computes its block widths with torch ops
    and reads them back with .tolist(), which a meta tensor cannot do: that one computation runs
    on the CPU."""
    from torchvision.models import regnet

    original = regnet.BlockParams.from_init_params.__func__

    def on_cpu(cls, *args, **kwargs):
        with torch.device("cpu"):
            return original(cls, *args, **kwargs)

    monkeypatch.setattr(regnet.BlockParams, "from_init_params", classmethod(on_cpu))
    with torch.device("meta"):
        yield


def test_the_static_name_list_is_torchvisions():
    assert set(tv.NAMES) == set(tvm.list_models(module=tvm))
    assert len(tv.NAMES) == len(set(tv.NAMES))  # no model in two families


def test_the_weights_table_is_torchvisions_default_weights():
    for name in tv.NAMES:
        default = tvm.get_model_weights(name).DEFAULT
        assert tv.WEIGHTS_URL + tv.WEIGHTS[name] == default.url, name
        # the side pretrained inputs are resized up to is at least what the weights state
        needed = max(tv.MIN_SIDE.get(name, 1), tv.PRETRAINED_MIN_SIDE.get(name, 1), tv.FIXED_SIDE.get(name, 1))
        assert needed >= default.meta["min_size"][0], name


FIRST_OF_EACH_FAMILY = tuple(members[0] for members in tv.FAMILIES.values())


@pytest.mark.parametrize("shape, names", [((1, 28, 28), tv.NAMES), ((3, 32, 32), FIRST_OF_EACH_FAMILY)],
                         ids=["mnist-every-model", "cifar-each-family"])
def test_every_torchvision_model_builds_and_scores_each_class(monkeypatch, shape, names):
    failures = []
    with on_meta_device(monkeypatch):
        for name in names:
            try:
                model = build_model(name, shape, 7)
                model.eval()
                out = model(torch.empty((2, *shape)))
                if tuple(out.shape) != (2, 7):
                    failures.append(f"{name}: output {tuple(out.shape)}")
            except Exception as exc:  # noqa: BLE001 - collected, so one run names every failure
                failures.append(f"{name}: {type(exc).__name__}: {exc}")
    assert failures == []


def test_every_model_also_builds_pretrained_shaped(monkeypatch):
    """--pretrained builds the ImageNet architecture, then swaps the head: checked here without
    the weights (the builder's ImageNet model is made with random weights on the meta device)."""
    from tui_trainer.models import torchvision_build

    def imagenet_model(_tvm, name, _plan):
        kwargs = {"aux_logits": True, "init_weights": False} if name in ("googlenet", "inception_v3") else {}
        if tv.family_of(name) == "vit":
            kwargs["image_size"] = tv.PRETRAINED_MIN_SIDE[name]
        return tvm.get_model(name, **kwargs)

    monkeypatch.setattr(torchvision_build, "_pretrained", imagenet_model)
    failures = []
    with on_meta_device(monkeypatch):
        for name in FIRST_OF_EACH_FAMILY:
            try:
                model = build_model(name, (1, 28, 28), 5, pretrained=True).eval()
                out = model(torch.empty(2, 1, 28, 28))
                if tuple(out.shape) != (2, 5):
                    failures.append(f"{name}: output {tuple(out.shape)}")
            except Exception as exc:  # noqa: BLE001
                failures.append(f"{name}: {type(exc).__name__}: {exc}")
    assert failures == []


def test_small_inputs_get_the_small_input_stem_large_ones_keep_imagenets():
    small = build_model("resnet18", (3, 32, 32), 10)
    assert (small.conv1.kernel_size, small.conv1.stride) == ((3, 3), (1, 1))
    assert isinstance(small.maxpool, torch.nn.Identity)
    large = build_model("resnet18", (3, 64, 64), 10)
    assert (large.conv1.kernel_size, large.conv1.stride) == ((7, 7), (2, 2))
    assert isinstance(large.maxpool, torch.nn.MaxPool2d)
    regnet = build_model("regnet_x_400mf", (1, 28, 28), 10)
    assert regnet.stem[0].stride == (1, 1) and regnet.stem[0].in_channels == 1
    # a family outside the list keeps its stem, and only the planned families are listed
    assert plan("densenet121", (3, 32, 32)).small_stem is False
    assert {tv.family_of(n) for n in tv.NAMES if plan(n, (3, 32, 32)).small_stem} == set(tv.SMALL_INPUT_STEM_FAMILIES)


def test_one_channel_images_adapt_the_first_convolution():
    for name in ("resnet18", "mobilenet_v3_small", "vit_b_32", "efficientnet_b0"):
        model = build_model(name, (1, 28, 28), 10).eval()
        with torch.no_grad():
            assert model(torch.randn(3, 1, 28, 28)).shape == (3, 10), name


def test_architectures_that_need_larger_inputs_resize_them():
    p = plan("vgg11", (1, 28, 28))
    assert p.resize_to == (32, 32) and "inputs resized 28x28 -> 32x32" in p.describe()
    assert plan("maxvit_t", (3, 32, 32)).resize_to == (224, 224)
    vit = plan("vit_b_16", (3, 28, 28))  # trained from scratch: built for whole 16 px patches
    assert (vit.vit_image_size, vit.resize_to) == (32, (32, 32))
    assert plan("vit_b_16", (3, 32, 32), pretrained=True).resize_to == (224, 224)
    assert plan("resnet18", (3, 32, 32)).resize_to is None


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v3_small", "regnet_x_400mf", "shufflenet_v2_x0_5"])
def test_representative_models_learn_on_32px_synthetic_data(name):
    """A few optimizer steps on one fixed batch lower the loss: gradients flow through the
    adapted stem and the new head."""
    torch.manual_seed(0)
    model = build_model(name, (3, 32, 32), 4)
    x = torch.randn(8, 3, 32, 32)
    y = torch.arange(8) % 4
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(4):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0], losses


def test_a_resnet18_run_from_the_command_line_says_it_uses_the_small_input_stem(cli, tmp_path):
    run_dir = tmp_path / "run"
    result = cli("run", "synthetic", "--model", "resnet18", "--synthetic-train", "32", "--synthetic-val", "16",
                 "--batch-size", "16", "--epochs", "1", "--threads", "1", "--headless", "--run-dir", run_dir)
    assert result.code == 0, result.err
    assert "model      resnet18 (small-input stem: 3x3 conv, stride 1, no max-pool), 11,173,962 parameters" in result.out
    started = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()
               if '"event":"RunStarted"' in line]
    assert started[0]["model"].startswith("resnet18 (small-input stem")
    assert json.loads((run_dir / "config.json").read_text())["model"] == "resnet18"


def test_an_unknown_model_name_gets_the_closest_matches_and_exit_2(cli, tmp_path):
    result = cli("run", "synthetic", "--model", "resnet19", "--headless", "--run-dir", tmp_path / "run")
    assert result.code == 2 and result.out == ""
    (line,) = result.err.strip().splitlines()
    assert "unknown model 'resnet19' (did you mean resnet18" in line and "tui-trainer list" in line
    assert not (tmp_path / "run").exists()
    assert cli("run", "synthetic", "--model", "efficientnet_b9", "--run-dir", tmp_path / "run").code == 2
