"""`tui-trainer run exp.py`: the user's experiment file builds the data, the model and, when it
wants, the optimizer and the loss; its `defaults` sit under a --config file and the flags. The
file is copied into the run directory and `resume` runs the copy, exactly, warning in one line
when the original has changed. Our refusals are one line, exit 2, nothing written; an exception
in the user's code is their traceback and exit 1."""

from __future__ import annotations

import json
import textwrap

import pytest

from _reliability import assert_same_tensors, cli_main, epoch_metrics, load, of, tree_digest

pytestmark = pytest.mark.usefixtures("one_torch_thread")
FAST = ("--threads", "1", "--headless", "--device", "cpu")

# Gaussian blobs (3 classes, 8 features), a model with dropout, and augmentation drawn from
# torch's global generator inside the dataset: everything that makes an exact resume hard.
EXPERIMENT = '''
import json
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

defaults = {"epochs": 3, "batch-size": 16, "lr": 0.02, "checkpoint_every": 1}
HIDDEN = 16


class Blobs(Dataset):
    def __init__(self, x, y, noisy):
        self.x, self.y, self.noisy = x, y, noisy

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        x = self.x[i]
        if self.noisy:
            x = x + 0.1 * torch.randn(x.shape)
        return x, int(self.y[i])


def build_data(cfg):
    (Path(__file__).parent / "seen.json").write_text(json.dumps(
        {"type": type(cfg).__name__, "epochs": cfg.epochs, "batch_size": cfg.batch_size, "lr": cfg.lr}))
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(3, 8, generator=g) * 2
    y = torch.randint(0, 3, (150,), generator=g)
    x = centres[y] + torch.randn(150, 8, generator=g)
    train, val = Blobs(x[:120], y[:120], True), Blobs(x[120:], y[120:], False)
    if LOADERS:
        return DataLoader(train, batch_size=cfg.batch_size, shuffle=True), DataLoader(val, batch_size=50), NAMES
    return train, val, NAMES


def build_model(cfg):
    return nn.Sequential(nn.Linear(8, HIDDEN), nn.ReLU(), nn.Dropout(0.3), nn.Linear(HIDDEN, CLASSES))
'''


def digest(root) -> dict:
    """tree_digest, less what the experiment's own build_data writes (seen.json): ours only."""
    return {k: v for k, v in tree_digest(root).items() if k != "seen.json"}


def write_experiment(path, *, loaders=False, classes=3, names=("ant", "bee", "cow"), extra=""):
    path.write_text(EXPERIMENT + f"\nLOADERS = {loaders}\nCLASSES = {classes}\nNAMES = {list(names)!r}\n"
                    + textwrap.dedent(extra))
    return path


@pytest.fixture
def exp(tmp_path):
    return write_experiment(tmp_path / "exp.py")


def test_an_experiment_file_trains_and_keeps_a_copy(cli, exp, tmp_path):
    run_dir = tmp_path / "run"
    result = cli("run", exp, *FAST, "--run-dir", run_dir)
    assert result.code == 0, result.err
    assert "model      exp.py: Sequential, 195 parameters" in result.out
    assert "120 train / 30 validation, 3 classes" in result.out
    assert "  ant " in result.out and "run finished after 3 epochs" in result.out  # class names in the report
    assert (run_dir / "experiment.py").read_bytes() == exp.read_bytes()
    recorded = json.loads((run_dir / "config.json").read_text())
    assert recorded["dataset"] == str(exp) and recorded["model"] == "experiment:build_model"
    assert len(of(run_dir, "EpochEnd")) == 3


def test_flags_override_a_config_file_which_overrides_the_files_defaults(cli, exp, tmp_path):
    (tmp_path / "run.toml").write_text("batch-size = 8\nepochs = 5\n")
    result = cli("run", exp, *FAST, "--config", tmp_path / "run.toml", "--epochs", "1", "--run-dir", tmp_path / "r")
    assert result.code == 0, result.err
    # cfg, as build_data saw it: the resolved RunConfig (epochs from the flag, batch from the
    # file, lr from the experiment's defaults)
    assert json.loads((tmp_path / "seen.json").read_text()) == {"type": "RunConfig", "epochs": 1, "batch_size": 8,
                                                                 "lr": 0.02}
    assert "batch 8, 1 epoch (15 steps each)" in result.out
    printed = cli("run", exp, "--config", tmp_path / "run.toml", "--print-config")
    assert "epochs = 5" in printed.out and "lr = 0.02" in printed.out and "batch-size = 8" in printed.out
    (tmp_path / "printed.toml").write_text(printed.out)  # it reads back to the same settings
    assert cli("run", "--config", tmp_path / "printed.toml", "--print-config").out == printed.out


def test_the_files_optimizer_and_loss_are_used(cli, tmp_path):
    exp = write_experiment(tmp_path / "exp.py", extra='''
        def build_optimizer(cfg, params):
            return torch.optim.SGD(params, lr=cfg.lr)

        def build_loss(cfg):
            return lambda out, y: (out * 0).sum() + 5.0  # a constant: every reported loss is 5
    ''')
    result = cli("run", exp, *FAST, "--epochs", "1", "--run-dir", tmp_path / "run")
    assert result.code == 0, result.err
    assert "recipe     SGD lr" in result.out
    (epoch,) = of(tmp_path / "run", "EpochEnd")
    assert epoch.train_loss == 5.0 and epoch.val_loss == 5.0


# ----- resume -----

def _run(exp, run_dir, stop_at_step: int | None, **settings):
    """`tui-trainer run exp.py`, in this process, asking for a stop (as Ctrl-C does) at step
    `stop_at_step` of epoch 2."""
    from tui_trainer import events as ev, runlog
    from tui_trainer.config import make_config
    from tui_trainer.engine.control import Control
    from tui_trainer.experiment import copy_into_run
    from tui_trainer.inputs import check_inputs
    from tui_trainer.runner import execute

    cfg = check_inputs(make_config(str(exp), device="cpu", threads=1, **settings)).replace(run_dir=str(run_dir))
    run_dir.mkdir()
    runlog.write_json_atomic(run_dir / runlog.CONFIG_NAME, cfg.to_dict())
    copy_into_run(cfg, run_dir)
    control = Control()

    class Stopper:
        def emit(self, e):
            if stop_at_step and isinstance(e, ev.StepProgress) and e.epoch == 2 and e.step >= stop_at_step:
                control.request_stop("signal")

    log = runlog.RunLog(run_dir)
    try:
        return execute(cfg, run_dir, [log, Stopper()], control, system_interval=None,
                       trainer_options={"progress_interval": 0.0})
    finally:
        log.close()


@pytest.mark.parametrize("loaders, workers", [(False, None), (True, None), (False, 2)],
                         ids=["datasets", "dataloaders", "datasets-2-workers"])
def test_an_experiment_run_resumes_exactly_from_its_copy(tmp_path, loaders, workers):
    exp = write_experiment(tmp_path / "exp.py", loaders=loaders)
    reference, stopped = tmp_path / "reference", tmp_path / "stopped"
    assert _run(exp, reference, None, workers=workers).status == "finished"
    assert _run(exp, stopped, 3, workers=workers).status == "interrupted"
    assert load(stopped / "last.pth")["step_in_epoch"] >= 3  # stopped mid-epoch
    code, out, err = cli_main(["resume", stopped, "--headless", "--threads", "1"])
    assert code == 0, out + err
    assert "changed" not in out + err
    assert epoch_metrics(stopped) == epoch_metrics(reference)
    assert_same_tensors(load(stopped / "last.pth")["model_state_dict"],
                        load(reference / "last.pth")["model_state_dict"], "final weights")


def test_resume_runs_the_copy_and_warns_once_when_the_original_changed(tmp_path):
    exp = write_experiment(tmp_path / "exp.py")
    reference, stopped = tmp_path / "reference", tmp_path / "stopped"
    assert _run(exp, reference, None).status == "finished"
    assert _run(exp, stopped, 3).status == "interrupted"
    # A wider model now: a resume that ran the original could not even load the checkpoint.
    exp.write_text(exp.read_text().replace("HIDDEN = 16", "HIDDEN = 32"))
    code, out, err = cli_main(["resume", stopped, "--headless", "--threads", "1"])
    assert code == 0, out + err
    warnings = [line for line in (out + err).splitlines() if "has changed since this run started" in line]
    assert len(warnings) == 1 and str(stopped / "experiment.py") in warnings[0]
    assert epoch_metrics(stopped) == epoch_metrics(reference)
    assert any("has changed since" in e.message for e in of(stopped, "Notice"))  # and in the run's log


def test_resume_without_the_copy_is_refused_and_changes_nothing(tmp_path):
    exp = write_experiment(tmp_path / "exp.py")
    run_dir = tmp_path / "run"
    assert _run(exp, run_dir, 3).status == "interrupted"
    (run_dir / "experiment.py").unlink()
    before = digest(tmp_path)
    code, out, err = cli_main(["resume", run_dir, "--headless"])
    assert code == 2 and out == ""
    (line,) = err.strip().splitlines()
    assert "experiment.py is missing" in line
    assert digest(tmp_path) == before


def test_a_planted_link_as_the_copy_is_refused(tmp_path):
    exp = write_experiment(tmp_path / "exp.py")
    run_dir = tmp_path / "run"
    assert _run(exp, run_dir, 3).status == "interrupted"
    (run_dir / "experiment.py").unlink()
    (run_dir / "experiment.py").symlink_to(exp)
    before = digest(tmp_path)
    code, out, err = cli_main(["resume", run_dir, "--headless"])
    assert code == 2 and "symbolic link" in err and len(err.strip().splitlines()) == 1
    assert digest(tmp_path) == before


def test_datasets_are_sharded_over_torchrun_processes_in_one_order():
    import torch
    from torch.utils.data import TensorDataset

    from tui_trainer.data.user_loader import dataset_loader

    data = TensorDataset(torch.arange(10).float().view(10, 1), torch.zeros(10).long())
    ranks = [dataset_loader(data, 2, shuffle=True, seed=3, rank=r, world_size=2) for r in (0, 1)]
    seen = [[int(v) for x, _ in loader for v in x.view(-1)] for loader in ranks]
    assert len(seen[0]) == len(seen[1]) == 5 and sorted(seen[0] + seen[1]) == list(range(10))
    again = [int(v) for x, _ in dataset_loader(data, 2, shuffle=True, seed=3, rank=0, world_size=2) for v in x.view(-1)]
    assert again == seen[0]  # the order is the seed's: every process draws the same permutation


# ----- refusals: one line, exit 2, nothing written -----

BAD = {
    "no-build-model": ("import torch\ndef build_data(cfg):\n    return [], []\n", "defines no build_model(cfg)"),
    "data-not-a-pair": ("from torch import nn\ndef build_model(cfg):\n    return nn.Linear(8, 3)\n"
                        "def build_data(cfg):\n    return 5\n", "must return (train, val)"),
    "wrong-class-count": (EXPERIMENT + "\nLOADERS = False\nCLASSES = 4\nNAMES = ['a', 'b', 'c']\n",
                          "output has 4 class scores, but the data have 3 classes"),
    "labels-beyond-the-model": (EXPERIMENT.replace("int(self.y[i])", "int(self.y[i]) + 7")
                                + "\nLOADERS = False\nCLASSES = 3\nNAMES = None\n", "but the model scores 3 classes"),
    # labels past the first samples (a training or validation label the model has no class for)
    # would fail the run part-way, after its directory was written
    "a-later-training-label-beyond-the-model": (
        "import torch\nfrom torch.utils.data import TensorDataset\n"
        "def build_model(cfg):\n    return torch.nn.Linear(4, 3)\n"
        "def build_data(cfg):\n    y = torch.arange(10) % 5\n"
        "    return TensorDataset(torch.randn(10, 4), y), TensorDataset(torch.randn(4, 4), torch.zeros(4).long())\n",
        "the training set has label 4, but the model scores 3 classes"),
    "a-validation-label-beyond-the-model": (
        "import torch\nfrom torch.utils.data import Subset, TensorDataset\n"
        "def build_model(cfg):\n    return torch.nn.Linear(4, 3)\n"
        "def build_data(cfg):\n    y = torch.tensor([0, 1, 2, 0, 1, 2, 0, 9])\n"
        "    full = TensorDataset(torch.randn(8, 4), y)\n"
        "    return Subset(full, range(6)), Subset(full, [6, 7])\n",
        "the validation set has label 9, but the model scores 3 classes"),
    "model-not-a-module": ("import torch\nfrom torch.utils.data import TensorDataset\n"
                           "def build_model(cfg):\n    return 'resnet'\n"
                           "def build_data(cfg):\n    d = TensorDataset(torch.zeros(4, 2), torch.zeros(4).long())\n"
                           "    return d, d\n", "not a torch.nn.Module"),
    "not-python": (b"\x89PNG\r\n\x1a\n\x00\x00binary", "is not Python source"),
    "syntax-error": ("def build_model(cfg)\n    return 1\n", "is not valid Python"),
    "unknown-default": ("defaults = {'epoch': 3}\n", "unknown setting 'epoch' (did you mean epochs"),
}


@pytest.mark.parametrize("name", list(BAD))
def test_a_bad_experiment_file_is_one_line_and_writes_nothing(cli, tmp_path, monkeypatch, name):
    source, message = BAD[name]
    exp = tmp_path / "exp.py"
    exp.write_bytes(source if isinstance(source, bytes) else source.encode())
    monkeypatch.chdir(tmp_path)
    before = digest(tmp_path)
    result = cli("run", "exp.py", *FAST)
    assert result.code == 2 and result.out == ""
    (line,) = result.err.strip().splitlines()
    assert message in line and line.startswith("tui-trainer: error:")
    assert digest(tmp_path) == before  # no runs/, no run directory


@pytest.mark.parametrize("args, message", [
    (("missing.py",), "experiment file missing.py does not exist"),
    (("exp.py", "--model", "resnet18"), "--model does not apply to an experiment file"),
    (("exp.py", "--pretrained"), "--pretrained does not apply to an experiment file"),
    (("exp.py", "--augment"), "--augment applies to the image datasets and folders of images, not to an "
                              "experiment file (its build_data makes the data)"),
], ids=["missing-file", "model-flag", "pretrained-flag", "augment-flag"])
def test_bad_arguments_with_an_experiment_file(cli, exp, tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    before = digest(tmp_path)
    result = cli("run", *args, *FAST)
    assert result.code == 2 and result.out == ""
    (line,) = result.err.strip().splitlines()
    assert message in line
    assert digest(tmp_path) == before


def test_a_run_dir_holding_an_experiment_py_is_refused_and_kept(cli, exp, tmp_path):
    run_dir = tmp_path / "mine"
    run_dir.mkdir()
    (run_dir / "experiment.py").write_text("# someone's own file\n")
    before = digest(tmp_path)
    result = cli("run", exp, *FAST, "--run-dir", run_dir)
    assert result.code == 2 and "already holds experiment.py" in result.err
    assert len(result.err.strip().splitlines()) == 1
    assert digest(tmp_path) == before


def test_an_exception_in_the_users_code_is_their_traceback_and_exit_1(cli, tmp_path, monkeypatch):
    write_experiment(tmp_path / "exp.py", extra='''
        def build_model(cfg):
            return make_the_model(cfg)

        def make_the_model(cfg):
            return 1 / 0
    ''')
    monkeypatch.chdir(tmp_path)
    before = digest(tmp_path)
    result = cli("run", "exp.py", *FAST)
    assert result.code == 1 and result.out == ""
    assert "Traceback (most recent call last)" in result.err and "ZeroDivisionError" in result.err
    assert "in make_the_model" in result.err and str(tmp_path / "exp.py") in result.err
    assert "tui_trainer" not in result.err.split("ZeroDivisionError")[0]  # their frames, not ours
    assert result.err.strip().splitlines()[-1].startswith("tui-trainer: error: build_model(cfg) in exp.py raised")
    assert digest(tmp_path) == before


def test_diagnose_takes_an_experiment_file(cli, exp):
    result = cli("diagnose", exp, "--threads", "1", "--device", "cpu")
    assert "diagnosing exp.py: Sequential on" in result.out and "initial loss" in result.out


def test_an_exception_in_the_users_model_during_training_is_their_traceback_and_exit_1(cli, tmp_path):
    """Raised at the third training step, inside the run (not at the build-time check): the log
    says the run failed, then the user's frames and the one line; the record says it too."""
    exp = write_experiment(tmp_path / "exp.py", extra='''
        class Fragile(nn.Module):
            def __init__(self):
                super().__init__()
                self.layer, self.calls = nn.Linear(8, CLASSES), 0

            def forward(self, x):
                self.calls += 1
                return self.layer(check_the_batch(x, self.calls))

        def check_the_batch(x, calls):
            if calls >= 3:
                raise ValueError("this batch broke my model")
            return x

        def build_model(cfg):
            return Fragile()
    ''')
    run_dir = tmp_path / "run"
    result = cli("run", exp, *FAST, "--run-dir", run_dir)
    assert result.code == 1
    err = result.err
    assert "Traceback (most recent call last)" in err and "in check_the_batch" in err and "in forward" in err
    assert "tui_trainer" not in err.split("Traceback (most recent call last)")[1].split("ValueError")[0]
    assert err.strip().splitlines()[-1] == "tui-trainer: error: ValueError: this batch broke my model"
    assert of(run_dir, "RunFailed")[0].error == "ValueError: this batch broke my model"


def test_lr_find_sweeps_an_experiment_files_model_with_its_own_loss(cli, tmp_path, monkeypatch):
    exp = write_experiment(tmp_path / "exp.py", extra='''
        class CountingLoss(nn.CrossEntropyLoss):
            def forward(self, out, y):
                (Path(__file__).parent / "loss_used").touch()
                return super().forward(out, y)

        def build_loss(cfg):
            return CountingLoss()
    ''')
    monkeypatch.chdir(tmp_path)
    result = cli("lr-find", exp, "--threads", "1", "--headless", "--device", "cpu", "--steps", "20")
    assert result.code == 0, result.err
    assert "suggested lr" in result.out or "too few" in result.out
    assert (tmp_path / "loss_used").exists()  # the file's loss, not a cross-entropy of our own


def test_eval_scores_an_experiment_run_with_its_copy_as_its_report_did(cli, tmp_path):
    """eval rebuilds the run's model, data and loss from the copy in the run directory (the
    original may have changed since): `best` gives report.json's numbers, and writes nothing."""
    exp = write_experiment(tmp_path / "exp.py", extra='''
        def build_loss(cfg):
            return nn.CrossEntropyLoss(label_smoothing=0.1)  # a loss of its own: report.json's loss used it
    ''')
    run_dir = tmp_path / "run"
    assert cli("run", exp, *FAST, "--run-dir", run_dir).code == 0
    exp.write_text("raise RuntimeError('the original changed')\n")
    before = digest(tmp_path)
    result = cli("eval", run_dir, "--json", "--threads", "1", "--device", "cpu")
    assert result.code == 0, result.err
    got, report = json.loads(result.out), json.loads((run_dir / "report.json").read_text())
    for key in ("accuracy", "loss", "confusion_matrix", "precision", "recall", "f1"):
        assert got[key] == report[key], key
    assert got["epoch"] == report["best_epoch"] and got["samples"] == 30
    assert digest(tmp_path) == before


def test_a_forward_that_fails_shows_the_users_frames_without_torchs_module_calls(cli, tmp_path):
    """torch's nn.Module __call__ frames sat above the user's forward() and between its lines."""
    exp = write_experiment(tmp_path / "exp.py", extra='''
        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.layer = nn.Linear(8, CLASSES)

            def forward(self, x):
                return crop_and_apply(self.layer, x)

        def crop_and_apply(layer, x):
            return layer(x[:, :7])

        def build_model(cfg):
            return Net()
    ''')
    result = cli("run", exp, *FAST, "--run-dir", tmp_path / "run")
    assert result.code == 1
    frames = result.err.split("Traceback (most recent call last)")[1].split("RuntimeError")[0]
    assert "in forward" in frames and "in crop_and_apply" in frames
    assert "torch" not in frames.replace("torch and tui-trainer left out", "") and "tui_trainer" not in frames
    assert "RuntimeError: mat1 and mat2 shapes cannot be multiplied" in result.err


def test_a_loss_that_fails_inside_torch_names_build_loss_not_torchs_frames(cli, tmp_path):
    exp = write_experiment(tmp_path / "exp.py", extra='''
        def build_loss(cfg):
            return nn.MSELoss()  # (batch, classes) outputs against class indices: torch raises
    ''')
    result = cli("run", exp, *FAST, "--run-dir", tmp_path / "run")
    assert result.code == 1
    assert "site-packages" not in result.err and "Traceback" not in result.err
    lines = result.err.strip().splitlines()
    assert "no line of your code is on its traceback" in lines[-2]
    assert lines[-1].startswith("tui-trainer: error: the loss build_loss(cfg) returned in exp.py raised RuntimeError")
