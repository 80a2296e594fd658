"""`tui-trainer run ... --detach`: the run in the background, in a session of its own, so that it
survives the shell and the SSH connection that started it.

The command starts itself again without --detach, as a child in a new session (setsid: no
controlling terminal, so no hang-up can reach it) whose stdin is /dev/null, and waits. The
child validates and prepares exactly as a foreground run does, printing any refusal on the
same stderr (one line, exit 2, nothing left behind), and writes its log to RUN_DIR/output.log.
Once it has started training it tells the parent its run directory through a pipe and lets go
of the parent's stderr; the parent prints the run directory and the attach command and exits 0.
If the child ends before that, the parent exits with the child's code.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

from . import events as ev

READY_FD_ENV = "TUI_TRAINER_READY_FD"
LOG_NAME = "output.log"


def start_detached(argv: list[str], under_torchrun: bool = False) -> int:
    if under_torchrun:
        from .errors import UserError

        raise UserError("--detach does not apply under torchrun: detach torchrun itself (nohup, setsid, a scheduler)")
    read_end, write_end = os.pipe()
    child_argv = [a for a in argv if a != "--detach"]
    env = {k: v for k, v in os.environ.items() if k != "TEXTUAL_DRIVER"}
    env[READY_FD_ENV] = str(write_end)
    proc = subprocess.Popen([sys.executable, "-m", "tui_trainer", *child_argv], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, pass_fds=(write_end,), start_new_session=True, env=env)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as ready:
        message = ready.read(65536)  # EOF: the child started training (and said where), or ended
    if not message:
        return proc.wait()
    run_dir = message.decode("utf-8", errors="replace").strip()
    from .event_io import printable

    print(f"tui-trainer: training in the background (pid {proc.pid})")
    print(f"  run dir    {printable(run_dir)}")
    print(f"  log        {printable(os.path.join(run_dir, LOG_NAME))}")
    quoted = printable(shlex.quote(run_dir))  # commands to copy: a run directory with a space stays one word
    print(f"  attach     tui-trainer attach {quoted}")
    print(f"  control    tui-trainer ctl {quoted} status|pause|resume|stop|checkpoint|lr VALUE")
    return 0


class DetachedRun:
    """In the detached child: the log goes to RUN_DIR/output.log from the start; on RunStarted the
    parent is told the run directory and the parent's stderr is let go (it may be a terminal
    that is about to disappear)."""

    def __init__(self, run_dir: Path, ready_fd: int) -> None:
        from .runlog import open_run_file

        self.run_dir = Path(run_dir)
        self.ready_fd = ready_fd
        self.log_fd = open_run_file(self.run_dir / LOG_NAME, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        sys.stdout.flush()
        os.dup2(self.log_fd, 1)

    def emit(self, event: ev.Event) -> None:
        if self.ready_fd < 0 or not isinstance(event, ev.RunStarted):
            return
        sys.stderr.flush()
        os.dup2(self.log_fd, 2)
        fd, self.ready_fd = self.ready_fd, -1
        try:
            os.write(fd, os.fsencode(str(self.run_dir)))
        except OSError:
            pass  # the parent is gone (Ctrl-C while waiting): the run goes on all the same
        finally:
            os.close(fd)


def detached_view(run_dir: Path) -> DetachedRun | None:
    """The detached child's view, when this process is one (None otherwise)."""
    value = os.environ.pop(READY_FD_ENV, "")
    if not value.isdigit():
        return None
    return DetachedRun(run_dir, int(value))
