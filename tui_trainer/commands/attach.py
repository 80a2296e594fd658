"""`tui-trainer attach [RUN]`: the live console of a run another process trains (a run
directory, a run's name under runs/, or nothing for the most recent run), with its keys acting
on the run through its control channel. `q` asks: detach (the run goes on), stop, or cancel.

Where there is no terminal (and no TEXTUAL_DRIVER serving the console elsewhere) it prints the
run's log so far, as `show` does."""

from __future__ import annotations

import sys

from ..vocab import EXIT_OK


def register(sub) -> None:
    p = sub.add_parser("attach", help="open the live console of a running run (or a finished run's report)",
                       description="Open the live console of a run another process trains: the dashboard rebuilt "
                                   "from its events.jsonl, then followed live; keys act on the run. q asks: "
                                   "detach (the run goes on), stop it, or cancel.")
    p.add_argument("run", nargs="?", default=None,
                   help="a run directory, a run's name under runs/, or nothing for the most recent run")
    from ..web import add_web_flags

    add_web_flags(p)  # --web: the same attached console in a browser, one per tab
    p.set_defaults(func=main)


def wants_console() -> bool:
    from ..frontends import terminal_available

    return terminal_available()  # also where TEXTUAL_DRIVER serves the console elsewhere (a browser tab)


def main(args) -> int:
    from ..errors import UserError
    from ..runlog import EVENTS_NAME
    from ..runs_index import resolve_run

    run_dir = resolve_run(args.run)
    if not (run_dir / EVENTS_NAME).is_file():
        raise UserError(f"no {EVENTS_NAME} in {run_dir}: the run has not started yet")
    from ..web import driver_from_environment, maybe_serve, tab_command

    served = maybe_serve(args, tab_command("attach", str(run_dir.resolve())))
    if served is not None:
        return served
    if not wants_console():
        import argparse

        from ..cli import cmd_show

        return cmd_show(argparse.Namespace(run_dir=str(run_dir)))
    from ..frontends.tui.attach import build_attach_app

    app = build_attach_app(run_dir)
    app.run()
    state = app.store.snapshot()
    if state.end is not None:
        from ..frontends.tui.launch import print_outcome

        print_outcome(state)
    elif app.live and not driver_from_environment():  # a browser tab closing says nothing into the server's log
        import shlex

        from ..event_io import printable

        print(f"detached; the run goes on. Attach again with: tui-trainer attach "
              f"{printable(shlex.quote(str(run_dir)))}", file=sys.stderr)
    return EXIT_OK
