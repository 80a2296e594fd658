"""`tui-trainer compare RUN RUN... | --last N`: runs side by side.

In a terminal: the validation loss and accuracy of every run overlaid (one colour each) above
the table of what differs; runs still training are followed. Without one (or --headless): the
tables as text.
"""

from __future__ import annotations

import sys


def register(sub) -> None:
    p = sub.add_parser("compare", help="runs side by side: validation curves, what differs, best epochs",
                       description="Compare runs: validation loss and accuracy per epoch, the config keys that "
                                   "differ, and each run's best epoch and duration.")
    p.add_argument("runs", nargs="*", metavar="RUN", help="run directories (at least two)")
    p.add_argument("--last", type=int, metavar="N", help="the N runs started most recently under --root")
    p.add_argument("--root", default="runs", metavar="DIR", help="where --last looks (default runs)")
    p.add_argument("--headless", action="store_true", help="print the tables instead of opening the console")
    p.set_defaults(func=main)


def main(args) -> int:
    from ..compare import open_runs, report_lines, resolve_runs
    from ..vocab import EXIT_OK

    runs = open_runs(resolve_runs(args.runs, args.last, args.root))
    from ..cli import wants_tui

    if wants_tui(args):
        from ..frontends.tui.compare import CompareApp

        CompareApp(runs).run()
        return EXIT_OK
    print("\n".join(report_lines(runs)))
    return EXIT_OK
