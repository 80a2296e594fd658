"""textual-serve's Server, with the changes serving a training console needs (see web.py).

- The page's WebSocket and static URLs come from the Host the browser asked for, so the page
  works through an SSH tunnel from any local port and on a widened --host (textual-serve would
  write `ws://0.0.0.0:8000/ws` into the page, which no browser can open).
- The page opens only with the secret of this serving in its URL (`/?token=...`, as printed), and
  its console's WebSocket only on the path that carries the secret (`/ws/SECRET`: textual-serve's
  page appends its own query to the WebSocket URL). A WebSocket opens only from the server's own
  page (Origin checked), and, while bound to the loopback, only a request whose Host names the
  loopback is answered (no DNS rebinding).
- Its banner and per-request log lines are left out: the command has printed where to go.
- Ctrl-C closes the open tabs' consoles and stops: textual-serve leaves a WebSocket open until its
  browser closes it, so the server would wait on every open tab.

Imported only when serving: it imports textual-serve and aiohttp.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Any

import aiohttp_jinja2
from aiohttp import web
from textual_serve.server import Server, to_int

from .web import host_header_is_loopback, origin_matches, token_matches


class ConsoleServer(Server):
    def __init__(self, command: str, *, host: str, port: int, title: str, loopback_only: bool, token: str) -> None:
        super().__init__(command, host=host, port=port, title=title)
        self.loopback_only = loopback_only
        self.token = token
        self._tabs: set[asyncio.Task] = set()

    async def _make_app(self) -> web.Application:
        app = await super()._make_app()
        app.router.add_get("/ws/{token}", self.handle_websocket, name="console_websocket")
        return app

    def initialize_logging(self) -> None:
        logging.basicConfig(level=logging.WARNING, format="tui-trainer: %(name)s: %(message)s")

    async def on_startup(self, app: web.Application) -> None:
        """The command printed the URL and the SSH line before serving. The terminal it was
        started from hanging up (an SSH session closing) stops it as Ctrl-C does, closing the
        open tabs' consoles; under nohup (SIGHUP ignored) it serves on."""
        if hasattr(signal, "SIGHUP") and signal.getsignal(signal.SIGHUP) is not signal.SIG_IGN:
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self.request_exit)

    async def on_shutdown(self, app: web.Application) -> None:
        """Cancelled, textual-serve's handler asks its console to quit and waits for it."""
        for tab in list(self._tabs):
            tab.cancel()
        await asyncio.gather(*self._tabs, return_exceptions=True)

    def _refuse_foreign_host(self, request: web.Request) -> None:
        if self.loopback_only and not host_header_is_loopback(request.headers.get("Host")):
            raise web.HTTPForbidden(text="this console is served to 127.0.0.1 only\n")

    @aiohttp_jinja2.template("app_index.html")
    async def handle_index(self, request: web.Request) -> dict[str, Any]:
        self._refuse_foreign_host(request)
        if not token_matches(request.query.get("token"), self.token):
            raise web.HTTPForbidden(text="open the URL tui-trainer printed when it started serving: "
                                         "it carries this console's secret (?token=...)\n")
        base = f"{request.scheme}://{request.host}"
        websocket_url = request.app.router["console_websocket"].url_for(token=self.token)
        static_url = request.app.router["static"].url_for(filename="/")
        return {
            "font_size": to_int(request.query.get("fontsize", "16"), 16),
            "app_websocket_url": f"{'wss' if request.scheme == 'https' else 'ws'}://{request.host}{websocket_url}",
            "config": {"static": {"url": f"{base}{static_url}".rstrip("/") + "/"}},
            "application": {"name": self.title},
        }

    async def handle_websocket(self, request: web.Request) -> web.WebSocketResponse:
        self._refuse_foreign_host(request)
        if not token_matches(request.match_info.get("token"), self.token):
            raise web.HTTPForbidden(text="a console opens only from the page of the URL tui-trainer printed\n")
        if not origin_matches(request.headers.get("Origin"), request.headers.get("Host")):
            raise web.HTTPForbidden(text="a console opens only from its own page\n")
        tab = asyncio.current_task()
        self._tabs.add(tab)
        try:
            return await super().handle_websocket(request)
        finally:
            self._tabs.discard(tab)
