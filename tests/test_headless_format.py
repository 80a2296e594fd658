"""How the plain log writes numbers and tables: a diverging or vanishing loss in a bounded
width, one LR format (the console's), confusion-matrix headers a reader can map to a class,
and a NaN hint that fits the run."""

from __future__ import annotations

import dataclasses
import io
import re

import pytest

from tui_trainer import events as ev
from tui_trainer.catalog import CIFAR10_CLASSES
from tui_trainer.errors import NonFiniteLossError
from tui_trainer.frontends.headless import EPOCH_HEADER, HeadlessPrinter, report_lines
from tui_trainer.frontends.tui.scenes import cifar_run, report_fields


def printed(events) -> str:
    out = io.StringIO()
    printer = HeadlessPrinter(out)
    for event in events:
        printer.emit(event)
    return out.getvalue()


def test_huge_and_tiny_losses_keep_the_columns():
    events = cifar_run(2, 0, num_epochs=3)
    ends = [e for e in events if isinstance(e, ev.EpochEnd)]
    events = [dataclasses.replace(e, train_loss=4839358926259737600.0, val_loss=1.5e-5) if e is ends[-1] else e
              for e in events]
    out = printed(events)
    rows = [line for line in out.splitlines() if re.match(r"^\s+\d+/\d+\s", line)]
    assert "4.84e18" in rows[-1] and "15.0e-6" in rows[-1]
    assert "4839358926259737600" not in out and " 0.0000 " not in rows[-1]
    assert len(rows[-1].split("  * best")[0].rstrip()) <= len(EPOCH_HEADER)
    header_ends = [m.end() for m in re.finditer(r"\S+", EPOCH_HEADER)]
    row_ends = [m.end() for m in re.finditer(r"\S+", rows[-1])][: len(header_ends)]
    assert row_ends == header_ends


def test_throughput_reads_samples_per_second_and_lrs_use_one_format():
    events = cifar_run(0, 0)
    started = next(e for e in events if isinstance(e, ev.RunStarted))
    resumed = dataclasses.replace(started, resumed=True, start_epoch=7, lr=0.000793893)
    out = printed([resumed, ev.EpochStarted(t=started.t + 1, epoch=8, num_epochs=100, steps=391),
                   ev.StepProgress(t=started.t + 7, epoch=8, step=100, steps=391, samples=12800, loss=0.5, acc=80.0,
                                   epoch_loss=0.5, epoch_acc=80.0, lr=0.000793893, samples_per_sec=8545.2,
                                   elapsed=6.0),
                   ev.LrChanged(t=started.t + 8, epoch=8, step=101, old_lr=0.000793893, new_lr=0.000396946,
                                reason="manual")])
    assert "lr 7.94e-04" in out and "0.000793893" not in out
    assert "8,545 samples/s" in out and "/s samples" not in out
    assert "learning rate 7.94e-04 -> 3.97e-04" in out


def test_confusion_matrix_headers_are_whole_names_or_indices_with_a_legend():
    report = ev.EvaluationReport(**report_fields(5, 0.8))
    lines = report_lines(report)
    at = lines.index("  confusion matrix (rows: true class, columns: predicted)")
    table = lines[at + 1:]
    legend = [line for line in table if line.strip().startswith("classes:")]
    header = next(line for line in table if not line.strip().startswith("classes:"))
    heads = header.split()
    if legend:  # indices: each maps to its full name
        assert heads == [str(i) for i in range(10)]
        for i, name in enumerate(CIFAR10_CLASSES):
            assert f"{i} {name}" in legend[0]
    else:
        assert heads == list(CIFAR10_CLASSES)
    for name in CIFAR10_CLASSES:  # and every row says whose it is
        assert any(name in row.split() for row in table[len(legend) + 1:])
    # short names fit whole
    digits = dataclasses.replace(report, class_names=tuple(str(i) for i in range(10)))
    lines = report_lines(digits)
    at = lines.index("  confusion matrix (rows: true class, columns: predicted)")
    assert lines[at + 1].split() == [str(i) for i in range(10)]
    named = dataclasses.replace(report, class_names=tuple(f"class {i}" for i in range(10)))
    lines = report_lines(named)
    at = lines.index("  confusion matrix (rows: true class, columns: predicted)")
    assert "class 0 class 1" in lines[at + 1] or lines[at + 1].split() == [str(i) for i in range(10)]


@pytest.mark.parametrize("clip, suggests", [(1.0, False), (0.0, True)])
def test_the_nan_hint_suggests_clipping_only_when_it_is_off(clip, suggests):
    message = str(NonFiniteLossError(3, 17, clip_grad=clip))
    assert "non-finite loss at epoch 3, step 17" in message and "--lr" in message
    assert ("--clip-grad" in message) == suggests
    assert "--clip-grad" not in str(NonFiniteLossError(3, 0, phase="validation", clip_grad=0.0))


def test_a_run_with_clipping_on_that_diverges_does_not_suggest_clipping(tmp_path, one_torch_thread):
    from tui_trainer.config import make_config
    from tui_trainer.engine.control import Control
    from tui_trainer.runner import execute

    sink = ev.ListSink()
    config = make_config("synthetic", model="mlp", epochs=2, synthetic_shape=(1, 8, 8), synthetic_train=128,
                         synthetic_val=32, batch_size=32, lr=1e12, scheduler="none", clip_grad=1.0,
                         run_dir=str(tmp_path / "run"), checkpoint_every=0, patience=0)
    outcome = execute(config, tmp_path / "run", [sink], Control(), system_interval=None)
    assert outcome.status == "failed"
    failed = sink.of(ev.RunFailed)[0]
    assert "non-finite loss" in failed.error and "--clip-grad" not in failed.error


def test_one_step_an_epoch_reads_as_one_step():
    started = next(e for e in cifar_run(0, 0) if isinstance(e, ev.RunStarted))
    out = printed([dataclasses.replace(started, steps_per_epoch=1, num_epochs=2)])
    assert "2 epochs (1 step each)" in out and "1 steps" not in out
    assert "(391 steps each)" in printed([started])


def test_a_class_count_not_known_at_the_start_is_not_printed_as_zero():
    started = next(e for e in cifar_run(0, 0) if isinstance(e, ev.RunStarted))
    out = printed([dataclasses.replace(started, num_classes=0, class_names=())])
    data_line = next(line for line in out.splitlines() if line.strip().startswith("data"))
    assert "0 classes" not in data_line and data_line.endswith("10,000 validation")
    assert "10,000 validation, 10 classes" in printed([started])
