"""`tui-trainer lr-find DATASET [training flags]`: the LR range test before a run.

Headless: a table of the sweep and the suggested LR. In a terminal: the curve on a log-x axis
with both suggestions marked and a cursor; Enter starts the training run (a normal `run`, with
--lr set to the LR under the cursor). Nothing is written but lr_find.json, in a run directory
of its own (runs/DATASET-MODEL-lr-find-TIME, or --run-dir).
"""

from __future__ import annotations

import math
from pathlib import Path

from ..errors import UserError
from ..lr_find_run import DEFAULTS, RESULT_NAME, FIND_KEY
from ..vocab import EXIT_OK


def register(sub) -> None:
    from ..cli_parser import _add_output_flags, _add_training_flags

    p = sub.add_parser("lr-find", help="the LR range test: suggest a learning rate for a run",
                       description="The LR range test: train for --steps optimizer steps while the learning rate "
                                   "grows exponentially from --lr-min to --lr-max, and suggest the LR to train "
                                   "with (the valley of the smoothed loss; the steepest descent is shown too). "
                                   "The model and optimizer are put back afterwards; only lr_find.json is "
                                   "written. In a terminal, Enter trains with the LR under the cursor.")
    p.add_argument("dataset", nargs="?", help="dataset name or image folder, as for `run`")
    g = p.add_argument_group("range test")
    g.add_argument("--lr-min", type=float, default=DEFAULTS["lr_min"], help="first LR (default 1e-7)")
    g.add_argument("--lr-max", type=float, default=DEFAULTS["lr_max"], help="last LR (default 10)")
    g.add_argument("--steps", type=int, default=DEFAULTS["steps"],
                   help="optimizer steps of the sweep (default 100); it stops early once the smoothed loss "
                        "exceeds 4x its minimum")
    _add_training_flags(p)
    _add_output_flags(p)
    p.set_defaults(func=main)


def main(args) -> int:
    from .. import runlog
    from ..cli import config_from_args, wants_tui
    from ..inputs import check_inputs
    from ..lr_find_run import check_sweep

    in_console = wants_tui(args)
    if not in_console:
        _refuse_run_outputs(args)
    plan = check_sweep(args.lr_min, args.lr_max, args.steps)
    config = check_inputs(config_from_args(args))
    config = config.replace(extra={k: v for k, v in config.extra.items() if k != FIND_KEY})
    if config.run_dir:
        runlog.check_new_run_dir(Path(config.run_dir))
        if (Path(config.run_dir) / RESULT_NAME).exists():
            raise UserError(f"{Path(config.run_dir) / RESULT_NAME} exists; choose another --run-dir")
    if in_console:
        return _in_console(args, config, plan)
    result = _sweep_headless(config, plan)
    where = write_record(result, config)
    for line in table_lines(result):
        print(line)
    print(f"saved {where}")
    print(f"train with it: {train_command(args, config, result.suggested_lr)}")
    return EXIT_OK


def _refuse_run_outputs(args) -> None:
    """Headless, lr-find trains nothing: the outputs of a training run (which the console's Enter
    starts, with these flags) would be silently dropped."""
    for flag, given in (("--tensorboard", args.tensorboard), ("--notify", args.notify)):
        if given:
            raise UserError(f"{flag} applies to a training run; headless, lr-find only sweeps (in a terminal, the "
                            f"run Enter starts takes it): pass it to `tui-trainer run ... --lr LR`")
    if args.log_format == "json":
        raise UserError(f"--log-format json: lr-find prints its sweep as a table; the sweep's record, every step "
                        f"and both suggestions, is JSON in {RESULT_NAME}")


def _sweep_headless(config, plan):
    from ..lr_find_run import build_parts, no_suggestion, sweep

    print(f"tui-trainer: LR range test on {config.dataset} ({config.model}, {config.optimizer} wd "
          f"{config.weight_decay:g}, batch {config.batch_size}): {plan.lr_min:.0e} to {plan.lr_max:g} over "
          f"{plan.steps} steps", flush=True)
    data, model, optimizer, device = build_parts(config)
    result = sweep(config, data, model, optimizer, device, plan)
    if result.suggestion is None:
        raise no_suggestion(result)
    return result


def write_record(result, config) -> Path:
    """lr_find.json in the sweep's own run directory, claimed only now: a sweep that failed leaves nothing."""
    from .. import runlog
    from ..inputs import run_name_parts
    from ..lr_find_run import as_record

    try:
        if config.run_dir:
            run_dir = Path(config.run_dir)
            run_dir.mkdir(parents=True, exist_ok=True)
        else:
            dataset, model = run_name_parts(config)
            run_dir = runlog.default_run_dir(dataset, f"{model}-lr-find")
        path = run_dir / RESULT_NAME
        runlog.write_json_atomic(path, as_record(result, config))
    except OSError as exc:
        raise UserError(f"cannot write {RESULT_NAME}: {exc.strerror or exc}; choose a writable --run-dir") from None
    return path


TABLE_ROWS = 24  # about this many rows of the sweep; the suggestions' and the last step's always


def table_lines(result) -> list[str]:
    """The sweep as a table (every few steps, the marked ones always), then what it suggests."""
    from .. import fmt

    n = len(result.lrs)
    every = max(1, math.ceil(n / TABLE_ROWS))
    lowest = min(range(n), key=lambda i: result.smoothed[i])
    marks = {lowest: "lowest smoothed loss"}
    if result.steepest is not None:
        marks[result.steepest] = "steepest descent"
    if result.valley is not None:
        marks[result.valley] = "valley" + (" (suggested)" if result.valley == result.suggestion else "")
    if result.suggestion == result.steepest and result.steepest is not None:
        marks[result.steepest] += " (suggested)"
    rows = sorted({*range(0, n, every), n - 1, *marks})
    lines = [f"{'step':>6}  {'lr':>9}  {'loss':>9}  {'smoothed':>9}"]
    for i in rows:
        mark = f"  <- {marks[i]}" if i in marks else ""
        lines.append(f"{i + 1:>6}  {fmt.lr(result.lrs[i]):>9}  {fmt.metric(result.losses[i], 9):>9}  "
                     f"{fmt.metric(result.smoothed[i], 9):>9}{mark}")
    if result.stopped_early:
        lines.append(f"stopped after step {n} of {result.steps}: the smoothed loss passed 4x its minimum")
    best = result.suggestion
    other = result.steepest if best == result.valley else result.valley
    other_name = "steepest descent" if best == result.valley else "valley"
    also = f"; {other_name} at {fmt.lr(result.lrs[other])}" if other is not None and other != best else ""
    by = "valley" if best == result.valley else "steepest descent"
    lines.append(f"suggested lr {fmt.lr(result.lrs[best])} ({by}{also})")
    return lines


def train_command(args, config, lr: float) -> str:
    """The `tui-trainer run` line that trains with `lr` (the other training flags as given here)."""
    import shlex

    dataset = [args.dataset] if args.dataset else ["--config", args.config or "FILE.toml"]
    others = " (with the training flags given here)" if any(
        getattr(args, k, None) is not None for k in ("model", "batch_size", "optimizer", "weight_decay", "config",
                                                      "accum_steps", "amp", "seed", "epochs")) else ""
    return shlex.join(["tui-trainer", "run", *dataset, "--lr", f"{lr:.3g}"]) + others


def _in_console(args, config, plan) -> int:
    """The sweep drawn as it runs; Enter trains with the LR under the cursor."""
    from ..frontends.tui.lr_find_app import LrFindApp
    from ..lr_find_run import build_parts, sweep

    def job(progress, should_stop):
        data, model, optimizer, device = build_parts(config)
        return sweep(config, data, model, optimizer, device, plan, progress=progress, should_stop=should_stop)

    app = LrFindApp(job=job, title=f"LR range test: {config.dataset} / {config.model}, {plan.lr_min:.0e} to "
                                   f"{plan.lr_max:g} over {plan.steps} steps")
    chosen = app.run()
    if app.failure is not None:
        raise app.failure
    if app.result is not None and app.result.suggestion is not None:
        print(f"saved {write_record(app.result, config)}")
    if chosen is None:
        return EXIT_OK
    from ..cli import cmd_run

    print(f"training with lr {chosen:.3g}")
    args.lr, args.run_dir = chosen, None  # the run gets a directory of its own
    return cmd_run(args)
