"""`--web` without a browser: what it prints, what it refuses (one line, exit 2, before anything
is printed or bound), what the server answers, and that a command run the way textual-serve runs
a tab's (pipes, TEXTUAL_DRIVER) draws its console rather than the plain log."""

from __future__ import annotations

import asyncio
import http.client
import json
import re
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from tui_trainer.web import tab_command

from .browser import child_env, consoles_of, free_port, served, wait_until

RECORDING = Path(__file__).resolve().parents[2] / "screenshots" / "recordings" / "digits.events.jsonl"
WEB_DRIVER = "textual.drivers.web_driver:WebDriver"


@pytest.fixture
def finished_run(tmp_path):
    """A real finished digits run's directory (its recorded events.jsonl)."""
    run_dir = tmp_path / "digits run"
    run_dir.mkdir()
    shutil.copy(RECORDING, run_dir / "events.jsonl")
    return run_dir


@pytest.fixture
def no_serving(monkeypatch):
    """Serve nothing: the server's loop returns at once (the tests look at what is printed)."""
    pytest.importorskip("textual_serve")
    from tui_trainer import web_server

    monkeypatch.setattr(web_server.ConsoleServer, "serve", lambda self, debug=False: None)


def one_line_refusal(result, *words: str) -> None:
    assert result.code == 2, result
    assert result.out == ""
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tui-trainer: error: "), result.err
    for word in words:
        assert word in lines[0]


def test_web_prints_the_url_and_the_ssh_tunnel(cli, finished_run, no_serving):
    port = free_port()
    result = cli("show", finished_run, "--web", "--port", port)
    assert result.code == 0 and result.err == ""
    assert f"serving the console on http://127.0.0.1:{port}/" in result.out
    assert re.search(rf"^  from another computer: ssh -L {port}:127\.0\.0\.1:{port} \S+$", result.out, re.M)
    assert "on the network" not in result.out


def test_a_wider_host_is_served_only_with_a_warning(cli, finished_run, no_serving):
    port = free_port()
    result = cli("show", finished_run, "--web", "--port", port, "--host", "0.0.0.0")
    assert result.code == 0
    assert "warning: listening on 0.0.0.0" in result.err
    assert "anyone who can reach port" in result.err and "control" in result.err
    assert f"ssh -L {port}:127.0.0.1:{port}" in result.out
    assert f"  on the network: http://{socket.gethostname()}:{port}/" in result.out
    assert cli("show", finished_run, "--web", "--port", port, "--host", "127.0.0.1").err == ""


def test_the_tunnel_reaches_the_loopback_address_listened_on(cli, finished_run, no_serving):
    """Served on ::1 only, a tunnel to 127.0.0.1 would find nothing listening."""
    if not socket.has_ipv6:
        pytest.skip("no IPv6 here")
    port = free_port()
    result = cli("show", finished_run, "--web", "--port", port, "--host", "::1")
    if result.code == 2 and "cannot listen" in result.err:
        pytest.skip(f"::1 cannot be bound here: {result.err.strip()}")
    assert result.code == 0 and result.err == "", result
    assert re.search(rf"^  from another computer: ssh -L {port}:\[::1\]:{port} \S+$", result.out, re.M), result.out
    assert f"serving the console on http://[::1]:{port}/?token=" in result.out


def test_a_port_in_use_is_one_line(cli, finished_run):
    pytest.importorskip("textual_serve")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        one_line_refusal(cli("show", finished_run, "--web", "--port", port), f"port {port}", "in use", "--port")


def test_a_missing_run_is_one_line(cli, tmp_path):
    one_line_refusal(cli("show", tmp_path / "no-such-run", "--web"), "no events.jsonl")


def test_without_textual_serve_web_says_how_to_install_it(cli, finished_run, monkeypatch):
    for name in [n for n in sys.modules if n.startswith(("textual_serve", "tui_trainer.web_server"))]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "textual_serve", None)  # import textual_serve fails
    one_line_refusal(cli("show", finished_run, "--web", "--port", free_port()), "textual-serve",
                     'pip install "tui-trainer[web]"')


@pytest.mark.parametrize("argv, words", [
    (["--web", "--port", "70000"], ["70000", "1-65535"]),
    (["--port", "8000"], ["--port", "--web"]),
    (["--host", "0.0.0.0"], ["--host", "--web"]),
    (["--web", "--host", "no-such-host.invalid"], ["--host no-such-host.invalid"]),
])
def test_bad_web_flags_are_one_line(cli, finished_run, argv, words):
    pytest.importorskip("textual_serve")
    one_line_refusal(cli("show", finished_run, *argv), *words)


def packets(stream):
    """textual-serve's framing of a tab's stdout: type byte, 4-byte length, payload."""
    while header := stream.read(5):
        if len(header) < 5:
            return
        yield header[:1], stream.read(int.from_bytes(header[1:], "big"))


def test_a_tab_command_draws_the_console_under_textual_serve(finished_run):
    """Run the tab's command as textual-serve does: stdin and stdout pipes, TEXTUAL_DRIVER set."""
    pytest.importorskip("textual_serve")
    env = {**child_env(), "TEXTUAL_DRIVER": WEB_DRIVER, "COLUMNS": "120", "ROWS": "36"}
    process = subprocess.Popen(tab_command("show", finished_run), shell=True, env=env, stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert process.stdout.readline() == b"__GANGLION__\n"  # what textual-serve waits for
        drawn = b""
        for kind, payload in packets(process.stdout):
            drawn += payload if kind == b"D" else b""
            if b"Final report" in drawn:
                break
        assert b"Final report" in drawn and b"EARLY STOPPED" in drawn
        quit_packet = json.dumps({"type": "quit"}).encode()  # what textual-serve sends when a tab closes
        process.stdin.write(b"M" + len(quit_packet).to_bytes(4, "big") + quit_packet)
        process.stdin.flush()
        assert process.wait(15) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for stream in (process.stdin, process.stdout, process.stderr):
            stream.close()


def get(port: int, path: str = "/", **headers: str) -> tuple[int, str]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        return response.status, response.read().decode("utf-8", "replace")
    finally:
        connection.close()


def websocket_upgrade(port: int, origin: str | None, path: str = "/ws") -> int:
    headers = {"Host": f"127.0.0.1:{port}", "Upgrade": "websocket", "Connection": "Upgrade",
               "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version": "13"}
    if origin is not None:
        headers["Origin"] = origin
    return get(port, path, **headers)[0]


def test_only_the_printed_url_opens_a_console(finished_run):
    """Any program of any user on the machine can reach a loopback port and send whatever Origin
    it likes (only browsers are bound to theirs): the console, and through it the run (whose
    control socket is its owner's alone), opens only with the secret in the URL printed to the
    one who served it."""
    pytest.importorskip("textual_serve")
    port = free_port()
    with served("show", str(finished_run), port=port) as (server, url):
        query = urlsplit(url).query
        token = parse_qs(query)["token"][0]
        assert len(token) >= 20
        own = f"http://127.0.0.1:{port}"
        assert get(port, Host=f"127.0.0.1:{port}")[0] == 403  # the page without the URL's secret
        assert get(port, f"/?token={token[:-1]}x", Host=f"127.0.0.1:{port}")[0] == 403
        assert websocket_upgrade(port, origin=own) == 403  # a forged Origin, no secret
        assert websocket_upgrade(port, origin=own, path="/ws/wrong-secret") == 403
        status, page = get(port, f"/?{query}", Host=f"127.0.0.1:{port}")
        assert status == 200
        websocket_url = re.search(r'data-session-websocket-url="([^"]+)"', page).group(1)
        assert websocket_url.startswith(f"ws://127.0.0.1:{port}/")
        assert websocket_upgrade(port, origin=own, path=urlsplit(websocket_url).path) == 101
        assert server.poll() is None


def test_the_server_listens_on_the_loopback_and_answers_only_its_own_pages(finished_run):
    pytest.importorskip("textual_serve")
    import psutil

    port = free_port()
    with served("show", str(finished_run), port=port) as (server, url):
        listening = [c.laddr for c in psutil.Process(server.pid).net_connections() if c.status == psutil.CONN_LISTEN]
        assert listening and all(address.ip == "127.0.0.1" for address in listening), listening

        page_path = f"/?{urlsplit(url).query}"
        status, page = get(port, page_path, Host=f"127.0.0.1:{port}")
        assert status == 200 and f'data-session-websocket-url="ws://127.0.0.1:{port}/ws/' in page
        status, page = get(port, page_path, Host="localhost:9000")  # through `ssh -L 9000:127.0.0.1:PORT`
        assert status == 200 and 'data-session-websocket-url="ws://localhost:9000/ws/' in page
        assert get(port, page_path, Host=f"rebound.example:{port}")[0] == 403  # DNS rebinding

        websocket_path = urlsplit(re.search(r'data-session-websocket-url="([^"]+)"', page).group(1)).path
        assert websocket_upgrade(port, "http://attacker.example", websocket_path) == 403  # another site's page
        assert websocket_upgrade(port, None, websocket_path) == 403
        assert server.poll() is None


async def read_until_closed(tab) -> None:
    async for _ in tab:  # answers the server's close, as a browser does
        pass


def test_ctrl_c_closes_the_open_tabs_consoles_and_stops(finished_run):
    """A tab from the server's own page gets a console; Ctrl-C with it open ends both."""
    aiohttp = pytest.importorskip("aiohttp")
    pytest.importorskip("textual_serve")
    port = free_port()
    with served("show", str(finished_run), port=port) as (server, url):
        token = parse_qs(urlsplit(url).query)["token"][0]

        async def open_a_tab_then_interrupt():
            async with aiohttp.ClientSession() as http:
                async with http.ws_connect(f"ws://127.0.0.1:{port}/ws/{token}?width=120&height=36",
                                           origin=f"http://127.0.0.1:{port}") as tab:
                    frame = await tab.receive(timeout=20)
                    consoles = consoles_of(server)
                    browsing = asyncio.create_task(read_until_closed(tab))  # as a browser would
                    server.send_signal(signal.SIGINT)
                    code = await asyncio.to_thread(server.wait, 20)
                    await browsing
                    return frame, consoles, code

        frame, consoles, code = asyncio.run(open_a_tab_then_interrupt())
        assert frame.type == aiohttp.WSMsgType.BINARY and consoles  # the console drew for the tab
        assert code == 0
        wait_until(lambda: not any(p.is_running() and p.status() != "zombie" for p in consoles), 10,
                   "the tab's console outlived the server")


def test_a_driver_named_in_textual_driver_means_the_console_is_chosen(monkeypatch):
    """Under pytest stdout is not a terminal: the plain log, unless Textual is told how to draw."""
    from tui_trainer.frontends import terminal_available

    monkeypatch.setenv("TERM", "xterm-256color")
    monkeypatch.delenv("TEXTUAL_DRIVER", raising=False)
    assert terminal_available() is False
    monkeypatch.setenv("TEXTUAL_DRIVER", WEB_DRIVER)
    monkeypatch.setenv("TERM", "dumb")  # textual-serve passes on the server's TERM, whatever it is
    assert terminal_available() is True


def open_a_tab_then_signal(server, url: str, signum: int):
    """Open a tab from the server's own page, send the server `signum`; the consoles it had."""
    aiohttp = pytest.importorskip("aiohttp")
    parts = urlsplit(url)
    token = parse_qs(parts.query)["token"][0]

    async def run():
        async with aiohttp.ClientSession() as http:
            async with http.ws_connect(f"ws://{parts.netloc}/ws/{token}?width=120&height=36",
                                       origin=f"http://{parts.netloc}") as tab:
                await tab.receive(timeout=20)
                consoles = consoles_of(server)
                browsing = asyncio.create_task(read_until_closed(tab))
                server.send_signal(signum)
                await asyncio.to_thread(server.wait, 20)
                browsing.cancel()
                await asyncio.gather(browsing, return_exceptions=True)
                return consoles

    return asyncio.run(run())


def alive(processes) -> list:
    return [p for p in processes if p.is_running() and p.status() != "zombie"]


@pytest.mark.parametrize("signum", [signal.SIGHUP, signal.SIGKILL], ids=["hangup", "killed"])
def test_no_console_outlives_the_server(finished_run, signum):
    """The SSH session serving the page closes (SIGHUP), or the server is killed: the open tabs'
    consoles end too, rather than run on unseen, following the run for ever."""
    pytest.importorskip("textual_serve")
    with served("show", str(finished_run), port=free_port()) as (server, url):
        consoles = open_a_tab_then_signal(server, url, signum)
        assert consoles
        try:
            wait_until(lambda: not alive(consoles), 10, "a tab's console outlived its server")
        finally:
            for process in alive(consoles):
                process.kill()
        if signum == signal.SIGHUP:
            assert server.returncode == 0


def test_the_help_in_a_browser_does_not_offer_suspending_to_a_shell(finished_run):
    """ctrl+z suspends a console to the shell of its terminal; a browser tab has none (Textual's
    web driver cannot suspend), so its help says so instead of promising `fg`."""
    pytest.importorskip("textual_serve")
    env = {**child_env(), "TEXTUAL_DRIVER": WEB_DRIVER, "COLUMNS": "120", "ROWS": "36"}
    process = subprocess.Popen(tab_command("show", finished_run), shell=True, env=env, stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert process.stdout.readline() == b"__GANGLION__\n"
        drawn, asked = b"", False
        for kind, payload in packets(process.stdout):
            drawn += payload if kind == b"D" else b""
            if not asked and b"Final report" in drawn:
                process.stdin.write(b"D" + (1).to_bytes(4, "big") + b"?")  # the key, as the page sends it
                process.stdin.flush()
                drawn, asked = b"", True
            if asked and b"this help" in drawn:
                break
        text = re.sub(rb"\x1b\[[0-9;?]*[A-Za-z]", b"", drawn).decode("utf-8", "replace")
        assert "this help" in text
        assert "fg brings it back" not in text
        assert "not in a browser" in text
    finally:
        process.kill()
        process.wait()
