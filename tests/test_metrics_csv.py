"""metrics.csv: every run keeps one row per epoch, and a resume leaves exactly the rows of the
checkpoint it continued from plus the epochs it trained (a kill between an epoch's row and its
checkpoint leaves no duplicate; a torn row no damage)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from _reliability import cli_main, one_thread, tiny_run_args
from tui_trainer import events as ev

COLUMNS = ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "epoch_time", "samples_per_sec"]


@pytest.fixture(autouse=True)
def _single_thread():
    with one_thread():
        yield


def rows(run_dir: Path) -> list[dict]:
    with open(run_dir / "metrics.csv", newline="") as fh:
        reader = csv.DictReader(fh)
        assert reader.fieldnames == COLUMNS
        return list(reader)


def logged(run_dir: Path, kind: type) -> list:
    return [e for e in ev.read_events(run_dir / "events.jsonl") if isinstance(e, kind)]


def test_every_run_writes_one_row_per_epoch_with_the_logged_metrics(tmp_path):
    run_dir = tmp_path / "run"
    code, out, err = cli_main(tiny_run_args(run_dir, 3))
    assert code == 0, err
    table = rows(run_dir)
    ends = logged(run_dir, ev.EpochEnd)
    assert [r["epoch"] for r in table] == ["1", "2", "3"]
    for row, end in zip(table, ends):
        for name in ("train_loss", "train_acc", "val_loss", "val_acc", "lr"):
            assert float(row[name]) == getattr(end, name)  # exact: the file holds every digit
        assert float(row["epoch_time"]) == pytest.approx(end.epoch_time, abs=1e-3)
        assert float(row["samples_per_sec"]) == pytest.approx(end.samples_per_sec, abs=0.1)


def test_each_row_is_on_disk_as_its_epoch_ends(tmp_path):
    """Read while the run trains: by each EpochEnd after the first, the previous rows are there."""
    from tui_trainer import cli

    seen: list[int] = []
    original = cli.run_headless

    def headless_with_probe(session, config, run_dir, **kw):
        class Probe:
            def emit(self, event):
                if isinstance(event, ev.EpochEnd):
                    seen.append(len(rows(run_dir)))
        session.add_view(Probe())
        return original(session, config, run_dir, **kw)

    cli.run_headless = headless_with_probe
    try:
        code, _, err = cli_main(tiny_run_args(tmp_path / "run", 3))
    finally:
        cli.run_headless = original
    assert code == 0, err
    assert seen == [1, 2, 3]  # the csv is a sink ahead of later views: its row is written first


def test_a_resume_after_a_kill_between_a_row_and_its_checkpoint_keeps_one_row_per_epoch(tmp_path):
    """The engine logs epoch 3 (its csv row) before it saves epoch 3's checkpoints: a kill in
    between leaves a row the checkpoint has not. Here the newest checkpoint is epoch 2's, the csv
    holds epoch 3 and a torn half row, and the resume must rebuild rows 1-2 from the checkpoint
    and add 3 and 4 once each."""
    run_dir = tmp_path / "run"
    code, _, err = cli_main(tiny_run_args(run_dir, 3, "--checkpoint-every", "1"))
    assert code == 0, err
    first = rows(run_dir)
    for name in ("last.pth", "best_model.pth", "checkpoint_epoch_3.pth"):
        (run_dir / name).unlink(missing_ok=True)
    with open(run_dir / "metrics.csv", "a") as fh:
        fh.write("4,0.12,97.5")  # torn: the process died mid-row
    report = json.loads((run_dir / "report.json").read_text())
    report["status"] = "interrupted"  # as a killed run leaves it: not done
    (run_dir / "report.json").write_text(json.dumps(report))

    code, out, err = cli_main(["resume", run_dir, "--headless", "--epochs", "4"])
    assert code == 0, out + err
    assert "resuming after epoch 2" in out

    table = rows(run_dir)
    assert [r["epoch"] for r in table] == ["1", "2", "3", "4"]
    started = logged(run_dir, ev.RunStarted)[-1]
    assert started.resumed and started.start_epoch == 2
    for i, row in enumerate(table[:2]):  # as the checkpoint has them, timings kept from the first session
        assert float(row["val_loss"]) == started.history_val_loss[i]
        assert float(row["train_acc"]) == started.history_train_acc[i]
        assert row["epoch_time"] == first[i]["epoch_time"] and row["epoch_time"]
    resumed_ends = [e for e in logged(run_dir, ev.EpochEnd) if e.t >= started.t]
    assert [float(r["val_loss"]) for r in table[2:]] == [e.val_loss for e in resumed_ends]


def test_a_resume_from_a_checkpoint_older_than_the_csv_rebuilds_what_the_csv_lacks(tmp_path):
    """A csv that lost rows (deleted, or from a version without it) is rebuilt from the
    checkpoint's history: the metrics are there, the timings it never had are empty."""
    run_dir = tmp_path / "run"
    assert cli_main(tiny_run_args(run_dir, 2))[0] == 0
    (run_dir / "metrics.csv").unlink()
    code, out, err = cli_main(["resume", run_dir, "--headless", "--epochs", "3"])
    assert code == 0, out + err
    table = rows(run_dir)
    assert [r["epoch"] for r in table] == ["1", "2", "3"]
    assert table[0]["epoch_time"] == "" and table[2]["epoch_time"] != ""
    assert float(table[1]["val_acc"]) == logged(run_dir, ev.EpochEnd)[1].val_acc


def test_a_link_planted_at_metrics_csv_is_refused_before_the_run(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    (run_dir / "metrics.csv").symlink_to(victim)
    code, out, err = cli_main(tiny_run_args(run_dir, 1))
    assert code == 2 and len(err.splitlines()) == 1 and "symbolic link" in err, err
    assert victim.read_text() == "keep me"
    assert sorted(p.name for p in run_dir.iterdir()) == ["metrics.csv"]


def test_the_sink_never_writes_through_a_link_planted_while_the_run_trains(tmp_path):
    """Planted after the start checks: the sink's atomic rewrite refuses it (the run goes on)."""
    from tui_trainer.sinks.metrics_csv import MetricsCsv

    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    (tmp_path / "metrics.csv").symlink_to(victim)
    sink = MetricsCsv(tmp_path)
    sink.emit(_started(resumed=False))
    assert victim.read_text() == "keep me" and sink.error is not None


def _started(resumed: bool, start_epoch: int = 0, history: int = 0) -> ev.RunStarted:
    h = tuple(float(i + 1) for i in range(history))
    return ev.RunStarted(run_name="r", run_dir="r", dataset="d", model="m", num_params=1, device="cpu",
                         device_name="cpu", precision="fp32", num_epochs=5, start_epoch=start_epoch,
                         steps_per_epoch=1, batch_size=1, accum_steps=1, train_size=1, val_size=1, num_classes=2,
                         class_names=("a", "b"), optimizer="SGD", lr=0.1, scheduler="none", resumed=resumed,
                         history_train_loss=h, history_train_acc=h, history_val_loss=h, history_val_acc=h,
                         history_lr=h, t=1.0)


def test_a_new_run_in_a_directory_with_an_old_csv_starts_a_new_one(tmp_path):
    from tui_trainer.sinks.metrics_csv import MetricsCsv

    (tmp_path / "metrics.csv").write_text("epoch,x\n1,2\n7,8\n")
    sink = MetricsCsv(tmp_path)
    sink.emit(_started(resumed=False))
    sink.close()
    assert (tmp_path / "metrics.csv").read_text() == ",".join(COLUMNS) + "\n"
