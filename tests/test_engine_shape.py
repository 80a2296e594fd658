"""The engine's shape, as a user (or a view) can tell: it imports no view, the report needs no
second validation pass, the pieces that keep the loop short behave, and a checkpoint is exactly
the registry of the run's stateful parts."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

import tui_trainer
from tui_trainer import events as ev
from tui_trainer.data.loader import TensorLoader

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ENGINE = Path(tui_trainer.__file__).parent / "engine"
VIEWS = ("tui_trainer.frontends", "textual", "rich")


def _imported_modules(path: Path):
    """Every module a file imports, at the top or inside a function, relative imports resolved."""
    package = "tui_trainer.engine"
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            yield node.lineno, base
            for alias in node.names:  # `from .. import frontends`
                yield node.lineno, f"{base}.{alias.name}"


def test_no_engine_module_imports_a_view():
    """Nothing under tui_trainer/engine/ imports tui_trainer.frontends, Textual or Rich, not even
    lazily inside a function (Trainer.train hands over to tui_trainer.script_run, outside the engine)."""
    modules = sorted(ENGINE.glob("*.py"))
    assert len(modules) > 10
    found = [(path.name, line, name) for path in modules for line, name in _imported_modules(path)
             if any(name == view or name.startswith(view + ".") for view in VIEWS)]
    assert found == []


def test_the_import_scan_sees_lazy_and_relative_imports(tmp_path):
    """The scan above would catch each way of importing a view."""
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    from ..frontends import headless\n    import rich.text\n"
                     "from .. import frontends\nimport textual\n")
    names = [name for _, name in _imported_modules(probe)]
    assert "tui_trainer.frontends" in names and "rich.text" in names and "textual" in names


# ----------------------------------------------------------------------------- the report
class CountingLoader(TensorLoader):
    passes = 0

    def __iter__(self):
        type(self).passes += 1
        return super().__iter__()


def test_the_seed_api_validates_once_per_epoch_and_reports_the_restored_models_confusion(tmp_path):
    """Trainer.train(3) iterates the validation loader exactly 3 times; report.json's confusion
    matrix and scores are scikit-learn's on the model the run leaves behind (the best epoch's)."""
    from tui_trainer import Trainer

    g = torch.Generator().manual_seed(0)
    centres = torch.randn(4, 6, generator=g) * 1.5
    y = torch.randint(0, 4, (400,), generator=g)
    x = centres[y] + torch.randn(400, 6, generator=g) * 1.5
    vy = torch.randint(0, 4, (150,), generator=g)
    vx = centres[vy] + torch.randn(150, 6, generator=g) * 1.5
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))
    CountingLoader.passes = 0
    val_loader = CountingLoader(vx, vy, 32)
    trainer = Trainer(model, TensorLoader(x, y, 32, shuffle=True), val_loader, torch.nn.CrossEntropyLoss(),
                      torch.optim.SGD(model.parameters(), lr=0.05), "cpu", tmp_path / "run")
    trainer.train(3, ui="none")

    assert CountingLoader.passes == 3
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    with torch.no_grad():
        preds = model.eval()(vx).argmax(1).numpy()
    labels = list(range(4))
    assert report["confusion_matrix"] == confusion_matrix(vy.numpy(), preds, labels=labels).tolist()
    p, r, f, s = precision_recall_fscore_support(vy.numpy(), preds, labels=labels, average="weighted", zero_division=0)
    assert (report["precision"], report["recall"], report["f1"]) == pytest.approx((p, r, f), rel=1e-12)
    best = torch.load(tmp_path / "run" / "best_model.pth", map_location="cpu", weights_only=True)
    assert report["best_epoch"] == best["best_epoch"]
    assert all(torch.equal(v, best["model_state_dict"][k]) for k, v in model.state_dict().items())
    assert report["loss"] == pytest.approx(trainer.val_losses[report["best_epoch"] - 1], rel=0, abs=0)


@pytest.mark.parametrize("seed", range(5))
def test_scores_from_a_confusion_matrix_are_scikit_learns(seed):
    from tui_trainer.engine.metrics import classification_metrics_from_confusion

    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 9))
    targets = rng.integers(0, n, 300)
    preds = np.where(rng.random(300) < 0.5, targets, rng.integers(0, n, 300))
    preds[preds == n - 1] = 0  # one class never predicted
    targets[targets == 1] = 0  # one class never present
    labels = list(range(n))
    result = classification_metrics_from_confusion(confusion_matrix(targets, preds, labels=labels))
    for average, prefix in (("weighted", ""), ("macro", "macro_")):
        p, r, f, _ = precision_recall_fscore_support(targets, preds, labels=labels, average=average, zero_division=0)
        assert [result[prefix + k] for k in ("precision", "recall", "f1")] == pytest.approx([p, r, f], rel=1e-12)
    p, r, f, s = precision_recall_fscore_support(targets, preds, labels=labels, average=None, zero_division=0)
    assert result["per_class"]["f1"] == pytest.approx(list(f), rel=1e-12)
    assert result["per_class"]["support"] == list(s)
    assert result["accuracy"] == pytest.approx(float((targets == preds).mean()), rel=1e-12)


def test_a_resumed_run_that_never_improves_again_still_reports_its_best_epoch(tmp_path, scripted_optimizer):
    """The best epoch's result travels in the checkpoint: a resume whose epochs are all worse
    reports what the best epoch measured, without validating again."""
    from tui_trainer.engine import Trainer

    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.2]] * 4)
    y = torch.tensor([0, 1, 1] * 4)
    good = {"weight": torch.eye(2) * 2, "bias": torch.zeros(2)}  # gets the [1, 0.2] samples wrong
    worse = {"weight": torch.eye(2) * 2, "bias": torch.tensor([1.5, -1.5])}  # gets every class-1 sample wrong

    def run(states, epochs, resume_from=None):
        CountingLoader.passes = 0
        model = torch.nn.Linear(2, 2)
        trainer = Trainer(model, TensorLoader(x, y, 12), CountingLoader(x, y, 12), torch.nn.CrossEntropyLoss(),
                          scripted_optimizer(model, states), "cpu", tmp_path / "run", num_classes=2)
        if resume_from is not None:
            trainer.load_state_dict(torch.load(resume_from, map_location="cpu", weights_only=True))
        trainer.fit(epochs)
        return json.loads((tmp_path / "run" / "report.json").read_text()), CountingLoader.passes

    first, passes = run([good, worse], 2)
    assert passes == 2 and first["best_epoch"] == 1
    assert first["confusion_matrix"] == [[4, 0], [4, 4]]
    resumed, passes = run([worse, worse], 4, resume_from=tmp_path / "run" / "last.pth")
    assert passes == 2  # epochs 3 and 4, nothing more
    assert resumed["best_epoch"] == 1 and resumed["epochs_completed"] == 4
    for key in ("confusion_matrix", "loss", "accuracy", "f1", "per_class_f1"):
        assert resumed[key] == first[key], key


# ----------------------------------------------------------------------------- the loop's helpers
def test_the_metric_window_reads_back_once_and_empties():
    from tui_trainer.engine.metric_window import MetricWindow

    window = MetricWindow(max_elements=10)
    out = torch.tensor([[2.0, 1.0], [0.0, 3.0], [5.0, 1.0]])
    window.add(torch.tensor(0.5), out, torch.tensor([0, 1, 1]))
    window.add(torch.tensor(1.5), out[:1], torch.tensor([1]))
    assert (len(window), window.samples, window.elements, window.full) == (2, 4, 8, False)
    window.add(torch.tensor(2.5), out[:2], torch.tensor([0, 0]))
    assert window.full  # 12 elements buffered: time to read back
    losses, sizes, correct = window.read()
    assert losses == [0.5, 1.5, 2.5] and sizes == [3, 1, 2] and correct == 3
    assert (len(window), window.samples, window.elements) == (0, 0, 0)
    assert window.read() == ([], [], 0)


def test_throughput_leaves_out_the_warm_up_and_pauses():
    from tui_trainer.engine.throughput import Throughput

    meter = Throughput(warmup_steps=2)
    meter.start_epoch(samples=0, now=0.0)
    assert meter.rate(100, now=1.0) == 0.0  # still warming up
    assert meter.warm_up_step() is False and meter.warm_up_step() is True
    meter.restart(samples=128, now=2.0)
    meter.add_pause(3.0)  # paused for 3 of the next 5 seconds
    assert meter.rate(128 + 400, now=7.0) == pytest.approx(200.0)
    assert meter.epoch_seconds(now=7.0) == pytest.approx(4.0)
    meter.start_epoch(samples=0, now=10.0)  # warmed up: the next epoch measures from its start
    assert meter.rate(300, now=11.0) == pytest.approx(300.0)


# ----------------------------------------------------------------------------- the checkpoint registry
def test_a_checkpoint_is_the_registry_of_parts_plus_a_header(tmp_path, blobs):
    from tui_trainer.engine import EarlyStopping, Trainer
    from tui_trainer.engine.lr_schedules import schedule_for_run

    x, y = blobs(n=64, features=4, classes=3)
    model = torch.nn.Linear(4, 3)
    opt = torch.optim.AdamW(model.parameters(), lr=0.01)
    trainer = Trainer(model, TensorLoader(x, y, 16, shuffle=True), TensorLoader(x, y, 32), torch.nn.CrossEntropyLoss(),
                      opt, "cpu", tmp_path / "run", num_classes=3)
    trainer.fit(2, schedule_for_run("cosine", 4, 4), EarlyStopping(patience=5))
    saved = torch.load(tmp_path / "run" / "last.pth", map_location="cpu", weights_only=True)
    parts = trainer.stateful_parts().state_dict()
    header = {"format", "format_version", "num_classes", "class_names", "model_name", "config", "world_size"}
    assert set(saved) == set(parts) | header
    assert saved["format_version"] == 2 and saved["epoch"] == 2 and saved["lr_factor"] == 1.0
    assert saved["scheduler_state_dict"] == {"schedule": "cosine", "epochs": 4}
    assert saved["best_confusion"].sum() == 64 and saved["best_confusion"].shape == (3, 3)

    # loaded by the same registry into a fresh run, every part comes back
    model2 = torch.nn.Linear(4, 3)
    resumed = Trainer(model2, TensorLoader(x, y, 16, shuffle=True), TensorLoader(x, y, 32),
                      torch.nn.CrossEntropyLoss(), torch.optim.AdamW(model2.parameters(), lr=0.01), "cpu", None,
                      num_classes=3)
    resumed.scheduler, resumed.early_stopping = schedule_for_run("cosine", 4, 4), EarlyStopping(patience=5)
    resumed.load_state_dict(saved)
    again = resumed.stateful_parts().state_dict()
    for key in ("epoch", "global_step", "history", "best_epoch", "best_val_loss", "lr_factor",
                "scheduler_state_dict", "manual_lr_changes"):
        assert again[key] == saved[key], key
    assert all(torch.equal(a, saved["model_state_dict"][k]) for k, a in again["model_state_dict"].items())
    assert torch.equal(again["best_confusion"], saved["best_confusion"])
    assert again["early_stopping"]["best_epoch"] == saved["early_stopping"]["best_epoch"]


# ----------------------------------------------------------------------------- earlier run directories
V1_RUN = Path(__file__).parent / "data" / "v1-run"  # written by the previous version: see data/make_v1_run.py


def test_a_run_directory_of_the_previous_checkpoint_format_resumes(tmp_path, cli):
    """Checkpoint format 1 kept the manual LR factor inside the optimizer's and the torch
    scheduler's state; it is converted on load: the resumed epochs follow the same schedule with
    the same factor, the history carries over, and the run ends with its report."""
    import math
    import shutil

    run_dir = tmp_path / "run"
    shutil.copytree(V1_RUN, run_dir)
    old = torch.load(run_dir / "last.pth", map_location="cpu", weights_only=True)
    assert old["format_version"] == 1 and old["epoch"] == 2 and "lr_factor" not in old

    result = cli("resume", run_dir, "--headless", "--log-format", "json")
    assert result.code == 0, result.out[-2000:] + result.err
    ends = [e for e in ev.read_events(run_dir / "events.jsonl") if isinstance(e, ev.EpochEnd)]
    assert [e.epoch for e in ends] == [1, 2, 3, 4]
    factor = math.prod(c["factor"] for c in old["manual_lr_changes"])
    assert factor == 0.5
    for e in ends[2:]:  # cosine over 4 epochs from lr 0.05, halved by hand
        assert e.lr == pytest.approx(0.05 * factor * (1 + math.cos(math.pi * (e.epoch - 1) / 4)) / 2, rel=1e-12)
    new = torch.load(run_dir / "last.pth", map_location="cpu", weights_only=True)
    assert new["format_version"] == 2 and new["epoch"] == 4 and new["lr_factor"] == factor
    assert {k: v[:2] for k, v in new["history"].items()} == old["history"]
    report = json.loads((run_dir / "report.json").read_text())
    assert report["status"] == "finished" and report["epochs_completed"] == 4
    assert sum(map(sum, report["confusion_matrix"])) == 48


def test_a_plateau_schedule_of_the_previous_format_keeps_its_cuts():
    from torch.optim import lr_scheduler as sched

    from tui_trainer.engine.checkpoint_fields import upgrade
    from tui_trainer.engine.plateau import Plateau

    optimizer = torch.optim.SGD(torch.nn.Linear(2, 2).parameters(), lr=0.1)
    torch_plateau = sched.ReduceLROnPlateau(optimizer, factor=0.5, patience=0)
    for loss in (1.0, 1.0, 1.0, 0.5, 0.6):
        torch_plateau.step(loss)
    changes = [{"epoch": 1, "step": 0, "factor": 2.0, "lr": 0.2, "reason": "manual"},
               {"epoch": 2, "step": 4, "factor": 0.5, "lr": 0.1, "reason": "plateau"},
               {"epoch": 3, "step": 4, "factor": 0.5, "lr": 0.05, "reason": "plateau"}]
    v1 = {"format_version": 1, "manual_lr_changes": changes, "scheduler_state_dict": torch_plateau.state_dict()}
    converted = upgrade(v1)
    assert converted["lr_factor"] == 2.0 and converted["format_version"] == 2 and v1["format_version"] == 1
    plateau = Plateau(patience=0)
    plateau.load_state_dict(converted["scheduler_state_dict"])
    assert (plateau.scale, plateau.best, plateau.bad_epochs) == (0.25, 0.5, torch_plateau.num_bad_epochs)
