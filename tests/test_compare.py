"""`tui-trainer compare`: runs side by side from their events.jsonl, headless (not a terminal)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from _reliability import cli_main, one_thread, tiny_run_args, tree_digest
from tui_trainer import events as ev


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """Two tiny real runs that differ in their learning rate (and one in its epochs)."""
    root = tmp_path_factory.mktemp("runs")
    with one_thread():
        for name, lr, epochs in (("slow", "1e-4", 3), ("fast", "3e-3", 2)):
            code, out, err = cli_main(tiny_run_args(root / name, epochs, "--lr", lr))
            assert code == 0, out + err
    return root / "slow", root / "fast"


def table_rows(out: str) -> dict[str, list[str]]:
    """The summary table's rows by label (A, B ...), split on runs of two spaces."""
    import re

    lines = out.split("\n\n")[0].splitlines()
    return {line.split()[0]: re.split(r"\s{2,}", line.strip()) for line in lines[1:] if line[:1].isalpha()}


def test_the_table_shows_what_differs_and_each_runs_best_epoch(cli, two_runs):
    slow, fast = two_runs
    result = cli("compare", slow, fast)
    assert result.code == 0 and result.err == ""
    header = result.out.splitlines()[0].split()
    assert header[:5] == ["run", "status", "epochs", "lr", "best"]  # only the keys that differ
    rows = table_rows(result.out)
    for label, run_dir, lr, epochs in (("A", slow, "0.0001", "3"), ("B", fast, "0.003", "2")):
        report = json.loads((run_dir / "report.json").read_text())
        row = rows[label]
        assert row[1:5] == [run_dir.name, "FINISHED", epochs, lr]
        assert row[5] == f"{report['best_val_loss']:.4f}" and row[6] == str(report["best_epoch"])
        assert row[7] == f"{report['best_val_acc']:.2f}%" and row[8] == f"{epochs}/{epochs}"
        finished = [e for e in ev.read_events(run_dir / "events.jsonl") if isinstance(e, ev.RunFinished)][0]
        from tui_trainer import fmt

        assert row[9] == fmt.duration(finished.elapsed)


def test_the_per_epoch_table_has_each_runs_validation_metrics(cli, two_runs):
    slow, fast = two_runs
    out = cli("compare", slow, fast).out
    per_epoch = out.split("\n\n")[1].splitlines()
    assert per_epoch[0].startswith("validation per epoch")
    assert per_epoch[1].split() == ["epoch", "A", "val_loss", "A", "val_acc", "B", "val_loss", "B", "val_acc"]
    ends = {run: [e for e in ev.read_events(run / "events.jsonl") if isinstance(e, ev.EpochEnd)] for run in two_runs}
    rows = [line.split() for line in per_epoch[2:]]
    assert [r[0] for r in rows] == ["1", "2", "3"]
    assert rows[0][1].rstrip("*") == f"{ends[slow][0].val_loss:.4f}"
    assert rows[1][4] == f"{ends[fast][1].val_acc:.2f}%"
    assert len(rows[2]) == 3  # the second run has no epoch 3


def test_last_n_takes_the_runs_started_most_recently(cli, two_runs, tmp_path, monkeypatch):
    import shutil

    root = tmp_path / "runs"
    for run in two_runs:
        shutil.copytree(run, root / run.name)
    (root / "not-a-run").mkdir()
    monkeypatch.chdir(tmp_path)
    result = cli("compare", "--last", "2")
    assert result.code == 0, result.err
    rows = table_rows(result.out)
    assert [rows["A"][1], rows["B"][1]] == ["slow", "fast"]  # oldest first


@pytest.mark.parametrize("argv, says", [
    (["one"], "compare needs at least two run directories"),
    ([], "compare needs at least two run directories"),
    (["one", "missing"], "missing is not a run directory (no such directory)"),
    (["one", "empty"], "empty is not a run directory (no events.jsonl)"),
    (["--last", "1"], "compare --last 1: compare needs at least two runs"),
    (["--last", "3", "--root", "nowhere"], "compare --last 3: 0 runs in nowhere/"),
])
def test_bad_input_is_one_line_and_exit_2(cli, two_runs, tmp_path, monkeypatch, argv, says):
    import shutil

    shutil.copytree(two_runs[0], tmp_path / "one")
    (tmp_path / "empty").mkdir()
    monkeypatch.chdir(tmp_path)
    before = tree_digest(tmp_path)
    result = cli("compare", *argv)
    assert result.code == 2 and result.out == ""
    assert len(result.err.splitlines()) == 1 and result.err.startswith("tui-trainer: error: ") and says in result.err
    assert tree_digest(tmp_path) == before


def test_a_run_still_training_is_shown_as_it_is_now_and_followed(two_runs, tmp_path):
    """A run whose writer holds its lock and has logged two of three epochs: RUNNING, two epochs;
    once it logs the third, `update` brings it in (what the console's timer calls)."""
    import shutil

    from tui_trainer import runlog
    from tui_trainer.compare import open_runs, report_lines

    slow, fast = two_runs
    live = tmp_path / "live"
    live.mkdir()
    shutil.copy(slow / "config.json", live / "config.json")
    lines = (slow / "events.jsonl").read_bytes().splitlines(keepends=True)
    third_end = next(i for i, line in enumerate(lines) if b'"EpochEnd"' in line and b'"epoch":3,' in line)
    (live / "events.jsonl").write_bytes(b"".join(lines[:third_end]) + lines[third_end][:40])  # mid-line
    lock = runlog.RunDirLock(live).acquire()
    try:
        runs = open_runs([live, fast])
        text = "\n".join(report_lines(runs))
        row = table_rows(text)["A"]
        assert row[2] == "RUNNING" and row[-2] == "2/3"
        assert text.rstrip().endswith("(A still training: a snapshot; in a terminal `compare` follows them)")
        with open(live / "events.jsonl", "ab") as fh:  # the writer finishes its line, then the run
            fh.write(lines[third_end][40:])
            fh.writelines(lines[third_end + 1:])
        assert runs[0].update()
        assert runs[0].history("val_loss")[0] == (1, 2, 3)
    finally:
        lock.release()
    assert table_rows("\n".join(report_lines(runs)))["A"][2] == "FINISHED"


def test_a_run_whose_process_died_says_so(two_runs, tmp_path):
    from tui_trainer.compare import open_runs, report_lines

    dead = tmp_path / "dead"
    dead.mkdir()
    lines = (two_runs[0] / "events.jsonl").read_bytes().splitlines(keepends=True)
    (dead / "events.jsonl").write_bytes(b"".join(lines[:len(lines) // 2]))
    assert table_rows("\n".join(report_lines(open_runs([dead, two_runs[1]]))))["A"][2] == "NO END"


def test_hostile_config_values_and_event_lines_are_shown_escaped_or_skipped(cli, two_runs, tmp_path):
    import shutil

    slow, fast = two_runs
    odd = Path(shutil.copytree(slow, tmp_path / "odd"))
    config = json.loads((odd / "config.json").read_text())
    config["model"] = "mlp\x1b[2J\nrm -rf /" + "x" * 200
    (odd / "config.json").write_text(json.dumps(config))
    with open(odd / "events.jsonl", "ab") as fh:
        fh.write(b'{"event":"EpochEnd","epoch":1e99}\n\xff\xfe garbage\n{"event":"RunStarted"}\n')
    result = cli("compare", odd, fast)
    assert result.code == 0, result.err
    assert "\x1b" not in result.out and "mlp\\x1b[2J\\nrm -rf /xxx" in result.out
    assert max(len(line) for line in result.out.splitlines()) < 200  # long values are cut


def test_runs_that_monitor_different_metrics_say_which_each_one_used(cli, tmp_path):
    import shutil

    recorded = Path(__file__).parent / "tui" / "compare_runs"
    by_loss = shutil.copytree(recorded / "digits-lr1e-3", tmp_path / "by-loss")
    by_acc = shutil.copytree(recorded / "digits-lr1e-2", tmp_path / "by-acc")
    for name in ("events.jsonl", "config.json"):
        path = by_acc / name
        path.write_text(path.read_text().replace('"monitor":"val_loss"', '"monitor":"val_acc"')
                        .replace('"monitor": "val_loss"', '"monitor": "val_acc"'))
    result = cli("compare", by_loss, by_acc)
    assert result.code == 0, result.err
    assert result.out.splitlines()[0].split()[:9] == ["run", "status", "lr", "monitor", "best", "by", "epoch",
                                                      "val_loss", "val_acc"]
    rows = table_rows(result.out)
    assert rows["A"][5:9] == ["val_loss", "9", "0.0173", "99.17%"]
    assert rows["B"][5:9] == ["val_acc", "17", "0.0267", "99.17%"]


def test_a_long_run_is_thinned_to_about_30_epoch_rows_keeping_each_best_and_the_last(cli, tmp_path):
    """Two runs of 100 and 70 epochs (events written as the engine writes them): every 4th epoch,
    the last, and each run's best epoch, which is marked."""
    def write_run(path: Path, epochs: int, best: int) -> None:
        path.mkdir()
        lines = []
        for e in range(1, epochs + 1):
            loss = 1.0 / e if e != best else 0.001
            lines.append(ev.to_json(ev.EpochEnd(
                epoch=e, num_epochs=epochs, train_loss=loss, train_acc=50.0, val_loss=loss, val_acc=50.0 + e / 10,
                lr=1e-3, epoch_time=1.0, train_time=0.9, val_time=0.1, samples_per_sec=100.0, is_best=e == best,
                best_epoch=best if e >= best else 1, best_val_acc=50.0, best_val_loss=0.001, monitor="val_loss",
                t=1000.0 + e)))
        (path / "events.jsonl").write_text("\n".join(lines) + "\n")

    write_run(tmp_path / "long", 100, best=37)
    write_run(tmp_path / "short", 70, best=70)
    result = cli("compare", tmp_path / "long", tmp_path / "short")
    assert result.code == 0, result.err
    section = result.out.split("\n\n")[1].splitlines()
    assert section[0] == "validation per epoch (* best epoch), every 4th epoch shown"
    rows = [line.split() for line in section[2:]]
    epochs = [int(r[0]) for r in rows]
    assert epochs == sorted({*range(1, 101, 4), 37, 70, 100})
    assert rows[epochs.index(37)][1] == "0.0010*" and rows[epochs.index(70)][3] == "0.0010*"
