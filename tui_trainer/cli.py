"""The `tui-trainer` command. Parses and validates without importing torch or Textual, so
`--help` and every input error are instant; then picks the live console (a terminal) or
the plain log (a pipe, a file, --headless, TERM=dumb).

Exit codes: 0 finished, early-stopped or stopped by the user; 1 training failed; 2 bad
input; 130 interrupted (SIGINT); 143 terminated (SIGTERM); 129 hung up (SIGHUP, headless).
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

from .config import RunConfig, read_config_file
from .cli_parser import (  # noqa: F401  (the parser's names, as callers import them from here)
    CONFIG_FLAGS, _add_output_flags, _add_training_flags, build_parser, config_from_args, wants_tui)
from .errors import UserCodeError, UserError
from .sinks import RunOutputs, check_flags
from .vocab import EXIT_FAILED, EXIT_OK, EXIT_SIGINT, EXIT_USAGE, Status
from .web import driver_from_environment, maybe_serve, tab_command


def _print_config(args: argparse.Namespace) -> int:
    from .config_file import to_toml

    print(to_toml(config_from_args(args)), end="")
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except UserError as exc:
        if os.environ.get("RANK", "0") == "0":  # under torchrun, rank 0 speaks for every process
            from .event_io import printable

            print(f"tui-trainer: error: {printable(str(exc))}", file=sys.stderr)  # one line, whatever a path holds
        return exc.exit_code
    except UserCodeError as exc:  # the user's own code raised: their traceback, then what to do
        from .inputs import print_user_traceback

        print_user_traceback(exc)
        return exc.exit_code
    except BrokenPipeError:
        return EXIT_FAILED
    except KeyboardInterrupt:  # Ctrl-C before the run's own handlers were installed
        print("tui-trainer: interrupted", file=sys.stderr)
        return EXIT_SIGINT


def _main(argv: list[str] | None) -> int:
    if os.environ.get("TUI_TRAINER_WEB_SERVER"):  # web.SERVER_PID_VARIABLE: a browser tab's console (--web)
        from .web import end_with_server

        end_with_server()  # none outlives the server that started it
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "detach", False) and args.command not in ("run", "resume"):
        # lr-find has the run's flags, but its child would print its table to /dev/null and train nothing
        raise UserError(f"--detach applies to run and resume, not to {args.command}: run `tui-trainer "
                        f"{args.command}` in the foreground, then `tui-trainer run ... --lr LR --detach`")
    if getattr(args, "detach", False) and not getattr(args, "print_config", False):
        from .detach import start_detached

        return start_detached(sys.argv[1:] if argv is None else list(argv), under_torchrun=_under_torchrun())
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    if args.command == "list":
        return cmd_list()
    if getattr(args, "print_config", False):
        return _print_config(args)
    check_flags(args)  # --tensorboard, --notify: before anything is written
    if args.command in ("run", "resume") and _under_torchrun():
        from .torchrun import run_command

        return run_command(args, cmd_run if args.command == "run" else cmd_resume)
    if args.command == "run":
        return cmd_run(args)
    if args.command == "resume":
        return cmd_resume(args)
    if args.command == "diagnose":
        return cmd_diagnose(args)
    if args.command == "show":
        return cmd_show(args)
    if getattr(args, "func", None) is not None:  # a command of tui_trainer.commands
        return args.func(args)
    raise UserError(f"unknown command {args.command}")


def cmd_list() -> int:
    from .listing import print_list

    return print_list()


def cmd_run(args: argparse.Namespace, dist=None) -> int:
    from . import runlog
    from .inputs import check_inputs, run_name_parts

    config = check_inputs(config_from_args(args))
    if config.run_dir:
        run_dir = Path(config.run_dir)
        runlog.check_new_run_dir(run_dir)
        runlog.check_run_files(run_dir)
        created = runlog.missing_dirs(run_dir)
    else:
        root_missing = runlog.missing_dirs(Path("runs"))
        try:  # claimed with mkdir: a name no other run has, even one started in the same second
            run_dir = runlog.default_run_dir(*run_name_parts(config))
        except OSError as exc:
            raise UserError(f"cannot create a run directory in runs/: {exc.strerror or exc}; "
                            "choose a writable --run-dir") from None
        created = [*root_missing, run_dir]
    config = config.replace(run_dir=str(run_dir))
    existing = set() if created else {p.name for p in run_dir.iterdir()}
    lock = None
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        lock = runlog.RunDirLock(run_dir).acquire()
        runlog.write_json_atomic(run_dir / runlog.CONFIG_NAME, config.to_dict())
        from .experiment import copy_into_run

        copy_into_run(config, run_dir)  # an experiment file: the copy `resume` runs
    except (OSError, UserError) as exc:  # e.g. a full disk: a run that never started leaves nothing
        if lock is not None:
            lock.release()
        runlog.remove_unstarted_run(run_dir, existing, created)
        if isinstance(exc, UserError):
            raise
        raise UserError(f"cannot write run directory {run_dir}: {exc.strerror or exc}") from None
    code = None
    try:
        code = _launch(args, config, run_dir, lock, resume=False, dist=dist)
    except UserError:
        code = EXIT_USAGE
        raise
    finally:
        lock.release()  # the run's Session gave it back already, unless the run never reached one
        if code == EXIT_USAGE:
            runlog.remove_unstarted_run(run_dir, existing, created)
    return code


def _refuse_a_script_run(run_dir: Path, config_path: Path) -> None:
    """A Python script's run directory records what it can, not a config the CLI can rebuild."""
    import json

    from .script_run import is_script_run

    try:
        with open(config_path, "rb") as fh:
            recorded = json.loads(fh.read(1_000_001).decode("utf-8"))
    except (OSError, ValueError, RecursionError):
        return  # read_config_file says what is wrong with it
    if isinstance(recorded, dict) and is_script_run(recorded):
        raise UserError(f"{run_dir} was trained by a Python script, whose model and data the command line "
                        f'cannot rebuild; continue it from the script: trainer.train(..., resume_from="{run_dir}")')


def cmd_resume(args: argparse.Namespace, dist=None) -> int:
    """Every check comes before the first write: a refused resume leaves the run directory as it
    was, byte for byte (lock file, log, config and checkpoints alike)."""
    from . import runlog
    from .config import validate
    from .inputs import check_inputs

    run_dir = Path(args.run_dir)
    if not run_dir.is_dir():
        raise UserError(f"run directory {run_dir} does not exist")
    config_path = run_dir / runlog.CONFIG_NAME
    runlog.check_run_files(run_dir)
    if not config_path.is_file():
        raise UserError(f"{run_dir} is not a tui-trainer run (no {runlog.CONFIG_NAME})")
    _refuse_a_script_run(run_dir, config_path)
    stored = read_config_file(config_path)
    changes = {"run_dir": str(run_dir)}
    if args.epochs is not None:
        changes["epochs"] = args.epochs
    if args.device is not None:
        changes["device"] = args.device
    if args.threads is not None:
        changes["threads"] = args.threads
    if args.cuda_graphs is not None:  # how the step runs, not what it computes: a resume may change it
        changes["cuda_graphs"] = args.cuda_graphs
    config = stored.replace(**changes)
    validate(config)
    check_inputs(config, resume_dir=run_dir)
    if not os.access(run_dir, os.W_OK | os.X_OK):
        raise UserError(f"cannot write to run directory {run_dir}")
    # Fail fast, before torch loads, when there is no checkpoint file at all.
    if not any(run_dir.glob("*.pth")):
        raise UserError(f"no checkpoint in {run_dir}: the run stopped before it saved one, so there is nothing "
                        "to resume; start it again with `tui-trainer run` (a new --run-dir, or delete this one)")
    from .runner import refuse_a_run_stopped_by_the_user

    refuse_a_run_stopped_by_the_user(run_dir, args.epochs)
    # The lock file keeps its bytes until the resume is accepted: a refused resume changes nothing.
    lock = runlog.RunDirLock(run_dir).acquire(record_pid=False)
    try:
        # Choose and check the device and the checkpoint (this loads torch) before anything is
        # written, for the console as for the log: a refusal is one line, never a failed run.
        from .runner import resolve_device, select_checkpoint

        resolve_device(config.device)
        chosen = select_checkpoint(run_dir, config)
        if args.epochs is not None and args.epochs != stored.epochs:
            # Only the new length is kept: --device applies to this resume alone.
            try:
                runlog.write_json_atomic(config_path, stored.replace(epochs=args.epochs, run_dir=str(run_dir)).to_dict())
            except OSError as exc:
                raise UserError(f"cannot write {config_path}: {exc.strerror or exc}; nothing was changed") from None
        lock.record_pid()
        return _launch(args, config, run_dir, lock, resume=True, checkpoint=chosen, dist=dist)
    finally:
        lock.release()  # as in cmd_run: the Session released it, unless the run never reached one


def _under_torchrun() -> bool:
    """One of several processes started by torchrun (see torchrun.py)."""
    return "RANK" in os.environ and os.environ.get("WORLD_SIZE", "1") not in ("", "0", "1")


def _launch(args, config: RunConfig, run_dir: Path, lock, resume: bool, checkpoint: tuple | None = None,
            dist=None) -> int:
    """Train in a Session that holds the claimed run directory (and, from here on, its lock).
    dist: this process's torchrun context (rank 0's), None alone."""
    if dist is not None:
        from .torchrun import announce

        problem = announce(dist, config, run_dir, resume)  # rank 0: tell the other processes what to run
        if problem:
            print(f"tui-trainer: error: {problem}", file=sys.stderr)
            return EXIT_USAGE
    from .detach import detached_view
    from .session import Session

    detached = detached_view(run_dir)  # a --detach run's process: its log goes to a file
    with Session(run_dir, lock=lock, on_hangup=args.on_hangup) as session, RunOutputs(session, args, run_dir):
        if detached is not None:
            session.add_view(detached)
        elif wants_tui(args):
            from .frontends.tui.launch import run_tui

            return run_tui(session, config, run_dir, resume=resume, checkpoint=checkpoint, dist=dist)
        return run_headless(session, config, run_dir, resume=resume, log_format=args.log_format,
                            checkpoint=checkpoint, dist=dist)


def run_headless(session, config: RunConfig, run_dir: Path, *, resume: bool, log_format: str = "text",
                 checkpoint: tuple | None = None, dist=None) -> int:
    """The plain log as the session's view; training on this thread."""
    from .frontends.headless import HeadlessPrinter
    from .session import config_job

    printer = HeadlessPrinter(sys.stdout, log_format=log_format)
    session.add_view(printer)
    code = session.run(config_job(config, run_dir, resume=resume, checkpoint=checkpoint, dist=dist))
    outcome = session.outcome
    if outcome is not None and outcome.status == Status.FAILED and (outcome.user_traceback or
                                                                     not printer.showed_failure):
        # One line on stderr unless the log above already ended with it (a failure during
        # training); events.jsonl records the failure either way. A failure in the user's own
        # code shows their traceback first: it is their bug to fix.
        print(f"{outcome.user_traceback}tui-trainer: error: {outcome.error}", file=sys.stderr)
    return code


def cmd_diagnose(args: argparse.Namespace) -> int:
    from .inputs import check_inputs

    config = check_inputs(config_from_args(args))
    import torch

    from .engine import diagnose_training_issues
    from .run_parts import parts_for
    from .runner import resolve_device, seed_everything

    seed_everything(config.seed)
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    device = resolve_device(config.device)
    parts = parts_for(config)
    bundle = parts.build_data(config, device)
    model = parts.build_model(config, bundle).to(device)
    optimizer = parts.build_optimizer(config, model.parameters())
    print(f"diagnosing {parts.describe(config, bundle.input_shape)} on {config.dataset} ({device}), batch "
          f"{config.batch_size}")
    report = diagnose_training_issues(model, bundle.train_loader, parts.build_loss(config), optimizer, device,
                                      num_classes=bundle.num_classes)
    return EXIT_OK if not report["warnings"] else EXIT_FAILED


def cmd_show(args: argparse.Namespace) -> int:
    from . import runlog

    run_dir = Path(args.run_dir)
    path = run_dir / runlog.EVENTS_NAME
    if not path.is_file():
        raise UserError(f"no {runlog.EVENTS_NAME} in {args.run_dir}")
    served = maybe_serve(args, tab_command("show", str(run_dir.resolve())))
    if served is not None:
        return served
    if not (sys.stdout.isatty() or driver_from_environment()):
        from .event_io import read_event_log, skipped_notice
        from .events import TERMINAL_EVENTS
        from .frontends.follow import writer_alive
        from .frontends.headless import HeadlessPrinter
        from .runs_index import has_checkpoint

        try:
            events, skipped = read_event_log(path)
        except OSError as exc:
            raise UserError(f"cannot read {path}: {exc.strerror or exc}") from None
        printer = HeadlessPrinter(sys.stdout)
        for event in events:
            printer.emit(event)
        if skipped:
            printer.emit(skipped_notice(skipped, path, events[-1].t if events else 0.0))
        if not any(type(e).__name__ in TERMINAL_EVENTS for e in events):
            # The log stops where the file does: say why, rather than let it read as complete.
            if writer_alive(run_dir):
                print(f"(a snapshot of a live run: it is still training; `tui-trainer show {args.run_dir}` "
                      "in a terminal follows it)")
            elif has_checkpoint(run_dir):
                print("(no end recorded: the process writing this run is gone; "
                      f"`tui-trainer resume {shlex.quote(args.run_dir)}` continues it from its last checkpoint)")
            else:
                print("(no end recorded: the process writing this run is gone before it saved a checkpoint; "
                      "there is nothing to resume)")
        return EXIT_OK
    from .frontends.tui.launch import show_run

    return show_run(run_dir)
