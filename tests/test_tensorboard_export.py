"""--tensorboard: event files in the run directory, read back with TensorBoard's own reader."""

from __future__ import annotations

import sys

import pytest

from _reliability import cli_main, one_thread, tiny_run_args, tree_digest
from tui_trainer import events as ev

pytest.importorskip("tensorboard")


@pytest.fixture(autouse=True)
def _single_thread():
    with one_thread():
        yield


def accumulator(run_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    return acc


def test_epoch_and_step_scalars_and_hparams_with_the_final_metrics(tmp_path):
    run_dir = tmp_path / "run"
    code, out, err = cli_main(tiny_run_args(run_dir, 2, "--tensorboard"))
    assert code == 0, out + err
    assert list(run_dir.glob("events.out.tfevents.*"))
    acc = accumulator(run_dir)
    ends = [e for e in ev.read_events(run_dir / "events.jsonl") if isinstance(e, ev.EpochEnd)]
    steps = [e for e in ev.read_events(run_dir / "events.jsonl") if isinstance(e, ev.StepProgress)]
    finished = [e for e in ev.read_events(run_dir / "events.jsonl") if isinstance(e, ev.RunFinished)][0]
    per_epoch = 16  # 512 samples / batch 32

    val_loss = acc.Scalars("epoch/val_loss")
    assert [s.step for s in val_loss] == [per_epoch, 2 * per_epoch]
    assert [s.value for s in val_loss] == pytest.approx([e.val_loss for e in ends], rel=1e-6)
    assert [s.value for s in acc.Scalars("epoch/val_acc")] == pytest.approx([e.val_acc for e in ends], rel=1e-6)
    assert [s.value for s in acc.Scalars("epoch/lr")] == pytest.approx([e.lr for e in ends], rel=1e-6)
    step_loss = acc.Scalars("step/loss")
    assert [s.value for s in step_loss] == pytest.approx([e.loss for e in steps], rel=1e-6)
    assert [s.step for s in step_loss] == [(e.epoch - 1) * per_epoch + e.step for e in steps]
    assert "step/lr" in acc.Tags()["scalars"]

    from tensorboard.plugins.hparams import plugin_data_pb2

    data = plugin_data_pb2.HParamsPluginData.FromString(
        acc.SummaryMetadata("_hparams_/session_start_info").plugin_data.content)
    hparams = data.session_start_info.hparams
    import json

    assert hparams["lr"].number_value == pytest.approx(json.loads((run_dir / "config.json").read_text())["lr"])
    assert hparams["model"].string_value == "mlp" and hparams["dataset"].string_value == "synthetic"
    assert acc.Scalars("hparam/best_val_loss")[0].value == pytest.approx(finished.best_val_loss, rel=1e-6)
    assert acc.Scalars("hparam/best_epoch")[0].value == finished.best_epoch


def test_a_resumed_run_continues_the_curves_without_doubling_back(tmp_path):
    """Killed after epoch 2 was logged but before its checkpoint: the resume trains epoch 2
    again, and TensorBoard shows it once (what the first process logged from there is purged)."""
    import json

    run_dir = tmp_path / "run"
    assert cli_main(tiny_run_args(run_dir, 2, "--tensorboard", "--checkpoint-every", "1"))[0] == 0
    for name in ("last.pth", "best_model.pth", "checkpoint_epoch_2.pth"):
        (run_dir / name).unlink(missing_ok=True)
    report = json.loads((run_dir / "report.json").read_text())
    (run_dir / "report.json").write_text(json.dumps({**report, "status": "interrupted"}))
    code, out, err = cli_main(["resume", run_dir, "--headless", "--epochs", "3", "--tensorboard"])
    assert code == 0, out + err
    steps = [s.step for s in accumulator(run_dir).Scalars("epoch/val_loss")]
    assert steps == [16, 32, 48]


def test_without_tensorboard_installed_one_line_and_nothing_written(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # as if not installed: find_spec finds nothing
    before = tree_digest(tmp_path)
    code, out, err = cli_main(tiny_run_args(tmp_path / "run", 1, "--tensorboard"))
    assert code == 2 and out == ""
    assert err.splitlines() == [
        'tui-trainer: error: --tensorboard needs the tensorboard package, which is not installed: '
        'pip install -e ".[tensorboard]" (or pip install tensorboard)']
    assert tree_digest(tmp_path) == before and not (tmp_path / "run").exists()
