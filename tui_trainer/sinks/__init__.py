"""Outputs fed by a run's events, beside the record and the views: `metrics.csv` (every run),
TensorBoard event files (`--tensorboard`) and an end-of-run webhook (`--notify URL`).

Each is a Sink: it sees the same events as the console and the log and knows nothing of the
engine. No torch at module level (the CLI checks the flags before torch loads).
"""

from __future__ import annotations

import sys


def check_flags(args) -> None:
    """Refuse --tensorboard without the package and a --notify that is not a URL, before the run
    directory is touched (UserError: one line, exit 2)."""
    if getattr(args, "tensorboard", False):
        from .tensorboard_log import check_available

        check_available()
    if getattr(args, "notify", None) is not None:
        from .notify import check_url

        check_url(args.notify)


class RunOutputs:
    """The optional outputs a command-line run asked for, as views of its Session."""

    def __init__(self, session, args, run_dir) -> None:
        self.notifier = None
        if getattr(args, "tensorboard", False):
            from .tensorboard_log import TensorBoardLog

            session.add_view(TensorBoardLog(run_dir))
        if getattr(args, "notify", None):
            from .notify import Notifier

            self.notifier = Notifier(args.notify, run_dir)
            session.add_view(self.notifier)

    def __enter__(self) -> "RunOutputs":
        return self

    def __exit__(self, *exc) -> None:
        self.finish()

    def finish(self) -> None:
        """Once the run (and its console) has ended: wait for the notification, say if it failed."""
        if self.notifier is not None:
            problem = self.notifier.finish()
            if problem:
                print(problem, file=sys.stderr)
