"""Headless mode: the default digits run end to end, clean aligned log lines, JSON lines, and
repeatable runs."""

from __future__ import annotations

import contextlib
import io
import json
import re
import sys

import pytest

from tui_trainer import events as ev
from tui_trainer import fmt
from tui_trainer.cli import main
from tui_trainer.frontends.headless import EPOCH_HEADER, HeadlessPrinter

pytestmark = pytest.mark.usefixtures("one_torch_thread")

EPOCH_LINE = re.compile(r"^\s+\d+/\d+\s")
TINY = ("--model", "mlp", "--epochs", "3", "--limit-batches", "4", "--batch-size", "32")


def column_ends(line: str) -> list[int]:
    return [m.end() for m in re.finditer(r"\S+", line)]


def epoch_lines(out: str) -> list[str]:
    return [line for line in out.splitlines() if EPOCH_LINE.match(line)]


def assert_clean_and_aligned(out: str, epochs: int) -> None:
    assert "\x1b" not in out and "\r" not in out
    lines = out.splitlines()
    assert lines.count(EPOCH_HEADER) == 1
    rows = epoch_lines(out)
    assert len(rows) == epochs
    header_ends = column_ends(EPOCH_HEADER)
    assert len(header_ends) == 8
    for row in rows:
        assert column_ends(row.split("  * best")[0]) == header_ends, f"misaligned:\n{EPOCH_HEADER}\n{row}"


@pytest.fixture(scope="module")
def default_digits_run(tmp_path_factory):
    """`tui-trainer run digits --headless` with every default: the one full-length run here."""
    import torch

    run_dir = tmp_path_factory.mktemp("digits") / "run"
    out, err = io.StringIO(), io.StringIO()
    threads = torch.get_num_threads()
    # One OpenMP team: on a busy 2-core machine two threads stall each other (and the results
    # do not depend on it).
    torch.set_num_threads(1)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(["run", "digits", "--headless", "--run-dir", str(run_dir)])
    finally:
        torch.set_num_threads(threads)
    return code, out.getvalue(), err.getvalue(), run_dir


def test_default_digits_run_reaches_95_percent(default_digits_run):
    code, out, err, run_dir = default_digits_run
    assert code == 0, err
    report = json.loads((run_dir / "report.json").read_text())
    assert report["accuracy"] >= 0.95 and report["best_val_acc"] >= 95.0
    assert report["status"] in ("finished", "early_stopped")
    epochs = report["epochs_completed"]
    names = {p.name for p in run_dir.iterdir()}
    assert {"config.json", "events.jsonl", "best_model.pth", "last.pth", "report.json"} <= names
    assert {n for n in names if n.startswith("checkpoint_epoch_")} == {
        f"checkpoint_epoch_{e}.pth" for e in range(10, epochs + 1, 10)}
    config = json.loads((run_dir / "config.json").read_text())
    assert (config["dataset"], config["model"], config["epochs"]) == ("digits", "simplecnn", 30)
    assert len(report["confusion_matrix"]) == 10 and report["class_names"] == list("0123456789")


def test_default_run_log_is_clean_and_complete(default_digits_run):
    code, out, _, run_dir = default_digits_run
    report = json.loads((run_dir / "report.json").read_text())
    assert_clean_and_aligned(out, report["epochs_completed"])
    assert "device     cpu" in out
    assert "digits: 1,437 train / 360 validation, 10 classes" in out
    assert re.search(r"model      simplecnn, [\d,]+ parameters", out)
    assert "AdamW lr 1.00e-03 wd 0.01, scheduler cosine, batch 64" in out and "clip 1" in out
    assert "early stop patience 10" in out
    assert "checkpoint: " in out and "checkpoint_epoch_10.pth" in out
    assert "confusion matrix (rows: true class, columns: predicted)" in out
    matrix_rows = [line for line in out.splitlines() if re.match(r"^  \d(\s+\d+){10}$", line)]
    assert len(matrix_rows) == 10
    assert re.search(r"^run (finished|stopped early) after \d+ epochs", out, re.M)
    # the epoch lines show what the events recorded
    ends = [e for e in ev.read_events(run_dir / "events.jsonl") if isinstance(e, ev.EpochEnd)]
    for event, row in zip(ends, epoch_lines(out)):
        assert f"{event.val_acc:.2f}%" in row and fmt.metric(event.train_loss, 10) in row
        assert row.endswith("* best") == event.is_best


def test_json_mode_prints_the_event_stream(cli, tmp_path):
    run_dir = tmp_path / "run"
    result = cli("run", "digits", *TINY, "--headless", "--log-format", "json", "--run-dir", run_dir)
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    parsed = [json.loads(line) for line in lines]
    names = [p["event"] for p in parsed]
    assert set(names) <= set(ev.EVENT_TYPES)
    run_events = [n for n in names if n != "SystemSample"]  # samples come from a timer thread, at any point
    assert run_events.count("RunStarted") == 1 and run_events.count("EpochEnd") == 3
    assert run_events[-1] == "RunFinished"
    assert "EvaluationReport" in names
    for data in parsed:
        assert ev.to_dict(ev.from_dict(data)) == data
    assert lines == (run_dir / "events.jsonl").read_text().splitlines()


def epoch_metrics(run_dir):
    return [(e.train_loss, e.train_acc, e.val_loss, e.val_acc, e.lr)
            for e in ev.read_events(run_dir / "events.jsonl") if isinstance(e, ev.EpochEnd)]


def test_the_same_seed_gives_the_same_metrics(cli, tmp_path):
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        assert cli("run", "digits", *TINY, "--seed", seed, "--headless", "--run-dir", tmp_path / name).code == 0
    a, b, c = (epoch_metrics(tmp_path / n) for n in "abc")
    assert len(a) == 3
    assert a == b
    assert a != c  # the seed matters, so the equality above means something


def test_without_a_terminal_the_plain_log_is_chosen(cli, tmp_path):
    textual_was_loaded = "textual" in sys.modules
    result = cli("run", "digits", *TINY, "--checkpoint-every", "1", "--clip-grad", "0", "--run-dir", tmp_path / "r")
    assert result.code == 0, result.err
    assert_clean_and_aligned(result.out, 3)
    assert "no clipping" in result.out
    assert [line.split(" (")[0] for line in result.out.splitlines() if line.startswith("checkpoint:")] == [
        f"checkpoint: {tmp_path / 'r' / f'checkpoint_epoch_{e}.pth'}" for e in (1, 2, 3)]
    if not textual_was_loaded:
        assert "textual" not in sys.modules


def run_started(**overrides) -> ev.RunStarted:
    values = dict(run_name="r", run_dir="", dataset="d", model="m", num_params=1, device="cpu", device_name="cpu",
                  precision="fp32", num_epochs=1, start_epoch=0, steps_per_epoch=100, batch_size=1, accum_steps=1,
                  train_size=100, val_size=10, num_classes=2, class_names=("a", "b"), optimizer="SGD", lr=0.1,
                  scheduler="none")
    values.update(overrides)
    return ev.RunStarted(**values)


def test_progress_lines_appear_at_most_every_few_seconds():
    stream = io.StringIO()
    printer = HeadlessPrinter(stream, progress_every=5.0)
    printer.emit(run_started(t=0.0))
    printer.emit(ev.EpochStarted(epoch=1, num_epochs=1, steps=100, t=0.0))
    for second in range(1, 13):
        printer.emit(ev.StepProgress(epoch=1, step=second * 8, steps=100, samples=second * 8, loss=0.5, acc=50.0,
                                     epoch_loss=0.5, epoch_acc=50.0, lr=0.1, samples_per_sec=8.0,
                                     elapsed=float(second), t=float(second)))
    progress = [line for line in stream.getvalue().splitlines() if line.startswith("  [epoch")]
    assert [re.search(r"step (\d+)/100", line).group(1) for line in progress] == ["40", "80"]
    assert "\r" not in stream.getvalue() and "\x1b" not in stream.getvalue()


def test_early_stopping_and_checkpoint_notices():
    stream = io.StringIO()
    printer = HeadlessPrinter(stream)
    printer.emit(run_started(patience=2))
    printer.emit(ev.CheckpointSaved(epoch=10, kind="periodic", path="runs/x/checkpoint_epoch_10.pth"))
    printer.emit(ev.CheckpointSaved(epoch=10, kind="last", path="runs/x/last.pth"))
    printer.emit(ev.EarlyStopUpdate(epoch=11, counter=1, patience=2, best_score=0.25, best_epoch=10, min_delta=0.0))
    printer.emit(ev.EarlyStopUpdate(epoch=12, counter=2, patience=2, best_score=0.25, best_epoch=10, min_delta=0.0,
                                    triggered=True))
    lines = stream.getvalue().splitlines()
    assert "checkpoint: runs/x/checkpoint_epoch_10.pth (periodic, epoch 10)" in lines
    assert not any("last.pth" in line for line in lines)  # saved every epoch: not worth a line each time
    notices = [line for line in lines if line.startswith("early stopping")]
    assert notices == ["early stopping: val_loss has not improved for 2 epochs (best 0.2500 at epoch 10)"]
