"""`tui-trainer ls [DIR]`: the runs under runs/ (or DIR, or the run directory DIR), newest first,
and how each stands.

A run whose process is gone without recording an end shows as crashed, with the command that
resumes it; `--json` prints one JSON array for scripts."""

from __future__ import annotations

import json
import time
from pathlib import Path

from ..vocab import EXIT_OK


def register(sub) -> None:
    p = sub.add_parser("ls", help="list runs under runs/ (or DIR), newest first, with their status",
                       description="List the runs under runs/ (or DIR, or the one run directory DIR), newest first: name, status, epoch, best "
                                   "metric, start time and duration.")
    p.add_argument("dir", nargs="?", default=None,
                   help="a folder of run directories (default runs/), or one run directory")
    p.add_argument("--json", action="store_true", help="one JSON array of runs, for scripts")
    p.set_defaults(func=main)


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def _status(entry) -> str:
    if entry.status in ("running", "paused", "starting", "stopping") and entry.pid:
        return f"{entry.status} (pid {entry.pid})"
    return entry.status.replace("_", "-")


def main(args) -> int:
    from ..errors import UserError
    from ..event_io import printable
    from ..runs_index import RUNS_ROOT, is_run_dir, list_runs, run_entry

    root = Path(args.dir) if args.dir else RUNS_ROOT
    if args.dir and not root.is_dir():
        raise UserError(f"{args.dir} is not a directory")
    # `ls runs/NAME` names one run: list it, rather than the (no) runs inside it
    entries = [run_entry(root)] if args.dir and is_run_dir(root) else list_runs(root)
    if args.json:
        print(json.dumps([e.to_dict() for e in entries], indent=1))
        return EXIT_OK
    if not entries:
        print(f"no runs under {root}/")
        return EXIT_OK
    rows = [("NAME", "STATUS", "EPOCH", "BEST", "STARTED", "DURATION")]
    for e in entries:
        best = "-" if e.best is None else (f"{e.monitor} {e.best:.4f} @{e.best_epoch}" if e.monitor == "val_loss"
                                           else f"{e.monitor} {e.best:.2%} @{e.best_epoch}")
        rows.append((printable(e.name), _status(e), f"{e.epoch}/{e.epochs}" if e.epochs else "-", best,
                     time.strftime("%Y-%m-%d %H:%M", time.localtime(e.started)) if e.started else "-",
                     _duration(e.duration)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    for e in entries:
        if e.status == "crashed" and e.resume:
            print(f"{printable(e.name)}: crashed (no end recorded); resume with: {printable(e.resume)}")
        elif e.status == "crashed":
            print(f"{printable(e.name)}: crashed (no end recorded) before it saved a checkpoint: nothing to "
                  "resume; `tui-trainer run` starts it again")
    return EXIT_OK
