"""Writes tests/data/v1-run: a run directory as tui-trainer wrote it before the engine's second
version (checkpoint format_version 1), for tests/test_engine_shape.py. It must be run with that
version of the package (commit 7fc0c1e), e.g.:

    git archive 7fc0c1e | tar -x -C /tmp/old
    cd tests/data && PYTHONPATH=/tmp/old OMP_NUM_THREADS=1 python -P make_v1_run.py

The run: a small MLP on synthetic data, cosine schedule over 4 epochs, the LR halved by hand
after epoch 1, stopped (as Ctrl-C does) after epoch 2. Momentum 0 and no early stopping keep the files small.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from tui_trainer import cli, events as ev, runlog
from tui_trainer.engine.control import Control
from tui_trainer.runner import execute

HERE = Path(__file__).resolve().parent
ARGS = ["run", "synthetic", "--model", "mlp", "--synthetic-shape", "1x2x2", "--synthetic-classes", "3",
        "--synthetic-train", "96", "--synthetic-val", "48", "--batch-size", "16", "--epochs", "4",
        "--optimizer", "sgd", "--momentum", "0", "--lr", "0.05", "--scheduler", "cosine", "--device", "cpu",
        "--seed", "5", "--patience", "0", "--headless"]


def main() -> None:
    run_dir = HERE / "v1-run"
    shutil.rmtree(run_dir, ignore_errors=True)
    config = cli.config_from_args(cli.build_parser().parse_args([*ARGS, "--run-dir", str(run_dir)]))
    run_dir.mkdir()
    lock = runlog.RunDirLock(run_dir).acquire()
    runlog.write_json_atomic(run_dir / runlog.CONFIG_NAME, config.to_dict())
    control = Control()

    class Driver:
        def emit(self, e):
            if isinstance(e, ev.EpochEnd) and e.epoch == 1:
                control.scale_lr(0.5)
            if isinstance(e, ev.EpochEnd) and e.epoch == 2:
                control.request_stop("signal")

    log = runlog.RunLog(run_dir)
    try:
        outcome = execute(config, run_dir, [log, Driver()], control, system_interval=None)
    finally:
        log.close()
        lock.release()
    (run_dir / ".lock").unlink(missing_ok=True)
    print(outcome, sorted(p.name for p in run_dir.iterdir()))


if __name__ == "__main__":
    main()
