"""`tui-trainer run|resume` as one of several processes started by torchrun.

Every process joins the process group first (engine/distributed.py). Rank 0 then runs the
ordinary command: it alone checks and claims the run directory (choosing its name, so every
rank uses the one it chose), writes config.json, and shows the console or the log. When it
reaches the launch step it sends the others ("followers") the config and the run directory;
they check what they need on their own node, then train without a console and print nothing
but their own errors. Bad input ends every process with one message, printed by rank 0.

The CLI imports this module only under torchrun, so a single-process start pays nothing.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Callable

from .errors import UserError
from .vocab import Status


def run_command(args, command: Callable) -> int:
    """Rank 0 runs `command(args, dist=context)`, whose launch step calls `announce`; the others
    follow. The context this creates is passed to whatever needs it; no module holds it."""
    from .engine.distributed import DEFAULT_TIMEOUT, DistContext

    context = DistContext.from_env(timeout=float(getattr(args, "dist_timeout", None) or DEFAULT_TIMEOUT))
    try:
        if context.is_main:
            try:
                code = command(args, dist=context)
            except BaseException as exc:
                _release_followers(context, str(exc))
                raise
            _release_followers(context, "rank 0 ended before training")
            return code
        order = follow(context)
        if order is None:
            return UserError.exit_code
        return run_follower(context, *order)
    finally:
        context.close()


def announce(context, config, run_dir: Path, resume: bool) -> str:
    """Rank 0's launch step: send the followers what to run, and wait until each is ready.
    Returns a problem that ends the run before training (one line), or ""."""
    if context is None or not context.is_main:
        return ""
    context.announced = True
    if config.on_nan == "skip":
        problem = ("--on-nan skip is not available with several processes (a batch skipped on one rank "
                   "would leave the others waiting for its gradients); use --on-nan stop")
        context.broadcast_object({"abort": problem})
        return problem
    run_dir = Path(run_dir).absolute()
    context.broadcast_object({"config": config.to_dict(), "run_dir": str(run_dir), "resume": resume})
    return _prepare(context, config, run_dir)


def _release_followers(context, message: str) -> None:
    """Rank 0 ended before it announced a run (bad input): let the waiting followers go."""
    if context.announced:
        return
    context.announced = True
    with contextlib.suppress(Exception):
        context.broadcast_object({"abort": message})


def follow(context) -> tuple | None:
    """A follower: wait for rank 0; returns (config, run_dir, resume), or None to exit."""
    from .config import RunConfig

    order = context.broadcast_object(None)
    if "abort" in order:
        return None
    config = RunConfig.from_dict(order["config"])
    run_dir = Path(order["run_dir"])
    if _prepare(context, config, run_dir):
        return None
    return config, run_dir, order["resume"]


def _prepare(context, config, run_dir: Path) -> str:
    """Each node's first process fetches the data (rank 0 did already), then the rest; every
    rank must see the run directory. Every rank returns the first problem, as rank 0 shows it."""
    from . import data, runlog

    where = f"rank {context.rank}" + (f" ({context.host})" if context.local_world_size != context.world_size else "")
    for my_turn in (context.local_rank == 0 and not context.is_main, context.local_rank != 0):
        problem = ""
        if my_turn:
            try:
                data.preflight(config)
            except UserError as exc:
                problem = f"{where}: {exc}"
            if not problem and not (run_dir / runlog.CONFIG_NAME).is_file():
                problem = (f"{where} cannot see the run directory {run_dir}: on several nodes --run-dir "
                           "must be on a filesystem every node shares")
        problems = [p for p in context.gather_objects(problem) if p]
        if problems:
            return problems[0]
    return ""


def run_follower(context, config, run_dir: Path, resume: bool) -> int:
    """A rank other than 0: train without a console or a record (rank 0 writes the run
    directory); print only this rank's own error. Its Session's Control is fed by this
    process's signals; the exchanges carry a stop to every rank."""
    from .session import Session, config_job

    with Session(honour_ignored_signals=False) as session:
        code = session.run(config_job(config, run_dir, resume=resume, dist=context, system_interval=None,
                                      record_sinks=False))
    outcome = session.outcome
    if outcome is not None and outcome.status == Status.FAILED:
        # A UserError is the same on every rank (rank 0 shows it) or recorded for rank 0 to show.
        if not context.peer_failed and outcome.exit_code != UserError.exit_code:
            print(f"tui-trainer: rank {context.rank}: error: {outcome.error}", file=sys.stderr, flush=True)
    return code
