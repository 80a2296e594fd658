"""`tui-trainer ctl RUN pause|resume|stop|checkpoint|status|lr VALUE`: steer a run from a script
or a scheduler through its control channel. Prints the run's JSON reply and exits 0; a run that
is not running is one line on stderr and exit 2 (as is a request the run refuses)."""

from __future__ import annotations

import json

from ..vocab import EXIT_OK

ACTIONS = ("pause", "resume", "stop", "checkpoint", "status", "lr")


def register(sub) -> None:
    p = sub.add_parser("ctl", help="pause, resume, stop, checkpoint, status or lr of a running run",
                       description="Steer a running run: pause, resume, stop (early, with the report), checkpoint "
                                   "(save last.pth), status, or lr VALUE (x2, /2, or a learning rate such as 3e-4).")
    p.add_argument("run", help="a run directory, or a run's name under runs/")
    p.add_argument("action", choices=ACTIONS, metavar="ACTION", help=", ".join(ACTIONS))
    p.add_argument("value", nargs="?", help="for lr: x2, /2, or a learning rate such as 3e-4")
    p.set_defaults(func=main)


def main(args) -> int:
    from ..control_client import ControlUnavailable, request
    from ..control_socket import parse_lr_value
    from ..errors import UserError
    from ..runs_index import run_entry, resolve_run

    if args.action == "lr":
        if args.value is None:
            raise UserError("ctl lr needs a VALUE: x2, /2, or a learning rate such as 3e-4")
        try:
            parse_lr_value(args.value)
        except ValueError as exc:
            raise UserError(str(exc)) from None
    elif args.value is not None:
        raise UserError(f"ctl {args.action} takes no value (only lr does)")
    run_dir = resolve_run(args.run)
    try:
        reply = request(run_dir, args.action, args.value)
    except ControlUnavailable as exc:
        entry = run_entry(run_dir)
        status = entry.status.replace("_", "-")
        if entry.status in ("running", "paused", "starting", "stopping"):  # alive, yet no answer
            raise UserError(f"{run_dir} does not answer on its control socket ({status}): {exc}") from None
        if entry.resume:
            hint = f"; resume with: {entry.resume}"
        elif entry.status == "crashed":
            hint = ": it died before it saved a checkpoint, so there is nothing to resume"
        else:
            hint = ""
        raise UserError(f"{run_dir} is not running ({status}){hint}") from None
    print(json.dumps(reply))
    if not reply.get("ok"):
        raise UserError(f"{run_dir}: {reply.get('error', 'refused')}")
    return EXIT_OK
