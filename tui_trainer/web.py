"""The console in a browser: a command's console served through textual-serve.

textual-serve runs a command line in a new subprocess for every browser tab, with the tab's
keys on its stdin and its screen on its stdout (both pipes), and `TEXTUAL_DRIVER` naming
Textual's web driver; closing the tab asks that process to quit. So each tab is a whole
console of its own, and a command served here must choose the console, not the plain log, when
`TEXTUAL_DRIVER` is set (`frontends.terminal_available` does).

A command offers this with `add_web_flags(parser)` and, once its own input is checked,
`maybe_serve(args, tab_command(...))`, which serves and returns the exit code (None without
--web). Nothing here imports textual-serve until it serves: the flags cost `--help` nothing.

The server binds 127.0.0.1 unless --host says otherwise, because whoever reaches the port
drives the console (and, attached to a live run, the run). A port on the loopback interface
is still reachable from any web page open in a browser on the same machine (a WebSocket is not
bound by the same-origin policy, and DNS rebinding can give a foreign site a loopback address),
so the server also refuses a WebSocket whose Origin is not the page's own and, while bound to
the loopback, a request whose Host header does not name the loopback. Other programs, and other
users of a shared machine, reach the loopback port too and send any Origin they like, while the
run's own control socket is its owner's alone: so the page and its console open only with a
secret made for each serving and printed, in the URL, to the one who served it.
"""

from __future__ import annotations

import argparse
import errno
import ipaddress
import os
import secrets
import shlex
import socket
import sys
from urllib.parse import urlsplit

from .errors import UserError
from .vocab import EXIT_OK

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
INSTALL_HINT = 'pip install "tui-trainer[web]"'
LOOPBACK_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost")
SERVER_PID_VARIABLE = "TUI_TRAINER_WEB_SERVER"  # a tab's console: the process id of the server that started it
SERVER_WATCH_INTERVAL = 0.5


def driver_from_environment() -> bool:
    """Textual draws through the driver `TEXTUAL_DRIVER` names (textual-serve's web driver, with
    stdout a pipe): the console can be shown there although no terminal is."""
    return bool(os.environ.get("TEXTUAL_DRIVER", "").strip())


def add_web_flags(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("in a browser")
    g.add_argument("--web", action="store_true",
                   help=f"serve the console on http://{DEFAULT_HOST}:{DEFAULT_PORT} instead of drawing it here: "
                        f"every browser tab gets its own console (needs {INSTALL_HINT})")
    g.add_argument("--port", type=int, metavar="N", help=f"port for --web (default {DEFAULT_PORT})")
    g.add_argument("--host", metavar="ADDRESS",
                   help=f"address for --web to listen on (default {DEFAULT_HOST}, this machine only); "
                        "anyone who can reach another can control the console")


def tab_command(*tui_trainer_args: str) -> str:
    """The shell command line a browser tab runs: this Python, this tui-trainer (the serving
    process's PYTHONPATH and working directory are inherited), the given arguments quoted.
    On POSIX the shell execs it, so the console's parent is the server, whose process id it is
    given (see `end_with_server`)."""
    line = [sys.executable, "-m", "tui_trainer", *map(str, tui_trainer_args)]
    if os.name != "posix":
        return shlex.join(line)
    return "exec " + shlex.join(["env", f"{SERVER_PID_VARIABLE}={os.getpid()}", *line])


def end_with_server() -> None:
    """In a tab's console: end when the server that started it is gone. A killed server (or one
    whose terminal hung up) leaves the console reading a closed pipe, which Textual's web driver
    does not treat as the end: it would follow the run, unseen, for ever. The console holds
    nothing to save (the run is another process), so it just exits."""
    pid = os.environ.pop(SERVER_PID_VARIABLE, "")
    if not pid.isdigit() or not driver_from_environment():
        return
    import threading
    import time

    def watch() -> None:
        while os.getppid() == int(pid):
            time.sleep(SERVER_WATCH_INTERVAL)
        os._exit(0)

    threading.Thread(target=watch, name="end-with-server", daemon=True).start()


def maybe_serve(args: argparse.Namespace, command_line: str, *, title: str | None = None) -> int | None:
    """With --web: serve `command_line` and return the exit code once the server stops.
    Without it: None (the caller draws its console here), after refusing --port or --host."""
    port, host = getattr(args, "port", None), getattr(args, "host", None)
    if not getattr(args, "web", False):
        if port is not None or host is not None:
            flag = "--port" if port is not None else "--host"
            raise UserError(f"{flag} is for --web (serving the console to a browser); add --web")
        return None
    return serve(command_line, host=host or DEFAULT_HOST, port=DEFAULT_PORT if port is None else port, title=title)


def serve(command: str, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, *, title: str | None = None) -> int:
    """Serve `command`'s console on http://host:port until Ctrl-C or SIGTERM. Every refusal
    (textual-serve missing, a bad or busy port) comes before anything is printed or bound."""
    if not 1 <= port <= 65535:
        raise UserError(f"--port {port} is not a port number (1-65535)")
    server_class = _server_class()
    check_port_free(host, port)
    local = is_loopback(host)
    if not local:
        print(f"tui-trainer: warning: listening on {host} over plain HTTP: anyone who can reach port {port} there "
              "and read the URL below (its secret travels unencrypted) can watch and control this console "
              "(pause, stop, change the learning rate)", file=sys.stderr)
    token = secrets.token_urlsafe(24)
    for line in reach_lines(host, port, token):
        print(line)
    sys.stdout.flush()
    server = server_class(command, host=host, port=port, title=title or "tui-trainer", loopback_only=local,
                          token=token)
    try:
        server.serve()
    except OSError as exc:  # lost the port between the check and the bind
        raise UserError(f"cannot listen on {_host_port(host, port)}: {exc.strerror or exc}") from None
    return EXIT_OK


def reach_lines(host: str, port: int, token: str = "") -> list[str]:
    """Where to point a browser, here and, through an SSH tunnel, from a laptop. The tunnel's
    far end is the address the server listens on (127.0.0.1 reaches neither ::1 nor 127.0.0.2);
    a name such as localhost, or every address, is reached on 127.0.0.1."""
    machine = socket.gethostname() or "HOST"
    wildcard = host in ("0.0.0.0", "::", "")
    target = "127.0.0.1" if wildcard or not _is_address(host) else host
    if ":" in target:
        target = f"[{target}]"
    url_host = DEFAULT_HOST if wildcard else host
    lines = [f"tui-trainer: serving the console on {_url(url_host, port, token)} (Ctrl-C stops serving; "
             "closing a browser tab only closes its console)",
             f"  from another computer: ssh -L {port}:{target}:{port} {machine}",
             f"  then open {_url('127.0.0.1', port, token)} there"]
    if not is_loopback(host):
        lines.append(f"  on the network: {_url(machine if wildcard else host, port, token)}")
    return lines


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
        return True
    except ValueError:
        return False


def is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_port_free(host: str, port: int) -> None:
    """Bind the port as the server will (address reuse on, as aiohttp sets it), then let it go:
    a port another program listens on is one line, not a traceback from deep in aiohttp."""
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise UserError(f"--host {host}: {exc.strerror or exc}") from None
    for family, kind, proto, _, address in infos:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(address)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    raise UserError(f"port {port} on {host} is already in use; choose another with --port") from None
                if exc.errno == errno.EACCES:
                    raise UserError(f"no permission to listen on port {port}; choose one above 1023 with --port") \
                        from None
                raise UserError(f"cannot listen on {_host_port(host, port)}: {exc.strerror or exc}") from None


def _url(host: str, port: int, token: str = "") -> str:
    return f"http://{_host_port(host, port)}/" + (f"?token={token}" if token else "")


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _server_class():
    try:
        from .web_server import ConsoleServer
    except ImportError as exc:
        if getattr(exc, "name", "") and not str(exc.name).startswith(("textual_serve", "aiohttp", "jinja2")):
            raise
        raise UserError(f"--web needs textual-serve, which is not installed: {INSTALL_HINT}") from None
    return ConsoleServer


def origin_matches(origin: str | None, host_header: str | None) -> bool:
    """A WebSocket may open only from a page this server served: its Origin's host and port
    are the Host it asked for (through an SSH tunnel both name the tunnel's local end)."""
    if not origin or not host_header:
        return False
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return False
    return parts.netloc.lower() == host_header.lower()


def host_header_is_loopback(host_header: str | None) -> bool:
    """A Host header naming the loopback (any port: a tunnel may forward from another one).
    Anything else reaching a loopback-only server came by DNS rebinding."""
    if not host_header:
        return False
    name = urlsplit(f"//{host_header}").hostname
    return name is not None and is_loopback(name)



def token_matches(given: str | None, token: str) -> bool:
    """The secret of this serving, compared in constant time."""
    return bool(given) and secrets.compare_digest(given.encode(), token.encode())
