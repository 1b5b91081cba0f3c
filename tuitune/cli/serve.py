"""``tuitune serve``: the app in a browser, one app process per browser tab, behind a one-time access token.

textual-serve does the serving: every websocket it accepts starts the command it was given (here the same
``tuitune --runs-dir RUNS`` a terminal runs) in a process of its own under Textual's web driver (here
:data:`APP_DRIVER`), and quits that process when the socket closes. The app is only a viewer of run folders
and starts runs detached, so a closed tab or a lost tunnel ends that tab's app and never a run, as a closed
terminal does.

What this module adds around it: the listening socket (loopback unless ``--host`` says otherwise, ``--port 0``
for any free port), a random token that every request must carry (in the URL once, then in a cookie the
first answer sets, so the page's own script, styles and websocket pass), a refusal of websockets opened by
pages of another origin, and page URLs built from the address the browser used (a tunnel's local port may
differ from ours). aiohttp and textual_serve are imported only when ``serve`` runs: the app never loads them.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import secrets
import shlex
import signal
import socket
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuitune.cli.common import Refusal, runs_root

if TYPE_CHECKING:
    from aiohttp import web

TOKEN_PARAM = "token"
"""The query parameter of the printed URL that holds the token."""

REFUSED = ("403: this tuitune serve needs its access token: open the URL it printed when it started "
           "(a new start makes a new token)")
"""The body of a refused request: no token, or not this start's."""

OTHER_ORIGIN = "403: tuitune serve takes websockets from its own page only: Origin {origin} is not {host}"
"""The body of a refused websocket that another site's page opened (or a proxy that rewrote the Host header)."""

NOT_FRAMED = {"X-Frame-Options": "DENY", "Content-Security-Policy": "frame-ancestors 'none'"}
"""Headers of every answer that forbid other pages to frame it (and overlay it to steer clicks)."""

SHUTDOWN_S = 5.0
"""How long the open tabs' apps get to quit when serving stops; one still there after it is killed."""

Handler = Callable[["web.Request"], Awaitable["web.StreamResponse"]]


def run(args: argparse.Namespace) -> int:
    """Serve the app until Ctrl+C (or SIGTERM); exit 2 when the address cannot be listened on."""
    command = app_command(runs_root(args))
    asyncio.run(serve(command, args.host, args.port, secrets.token_urlsafe(24)))
    return 0


APP_DRIVER = "tuitune.web_driver:ServedDriver"
"""The Textual driver of each tab's app, over textual-serve's choice: Textual's web driver, ending the app when
serve goes away without asking it to quit (killed), where Textual's own would leave it running."""


def app_command(runs_dir: Path) -> str:
    """The shell command each browser tab's app runs: this tuitune on the runs folder serve resolved, with
    :data:`APP_DRIVER`, in place of the shell (``exec``) so that serve's child is the app itself."""
    app = shlex.join([sys.executable, "-m", "tuitune", "--runs-dir", str(runs_dir)])
    return f"TEXTUAL_DRIVER={APP_DRIVER} exec {app}"


def is_loopback(address: str) -> bool:
    """Whether a socket bound to ``address`` (an IP address, as the socket reports it) is reachable from this
    machine only (127.0.0.0/8, ::1)."""
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def exposure_warning(host: str, port: int) -> str:
    """What serving on ``host`` (an address beyond loopback) exposes, and the tunnel to use instead: two lines."""
    return (f"warning: --host {host} serves tuitune beyond this machine, over plain HTTP: anyone who can reach "
            f"port {port} here and sees the URL (its token travels unencrypted) can do all you can in the app: "
            "read the run folders and data files it shows, start, pause and stop runs, export models.\n"
            f"warning: prefer the default --host 127.0.0.1, reached from your own machine through SSH: "
            f"ssh -L {port}:127.0.0.1:{port} {socket.gethostname()}")


def cookie_name(port: int) -> str:
    """The cookie that carries the token: named for the port, as cookies of one host are shared by its ports."""
    return f"tuitune_serve_{port}"


def token_middleware(token: str, cookie: str) -> Any:
    """An aiohttp middleware that lets a request through only with ``token``.

    The token comes in the ``token`` query parameter (the printed URL) or the ``cookie``; either is compared
    in constant time. A request that brings it in the URL is redirected to the same URL without it, with the
    cookie set: the address bar stops showing it, and the page's script, styles and websocket carry the cookie.
    The cookie is HttpOnly and SameSite=Lax, not Strict: a link to the URL followed from another site (a web
    chat) is a cross-site navigation, on whose redirect a Strict cookie is not sent (403, reload or not). What
    Lax lets through from another site is a top-level page load only: a websocket must come from a page of
    this server (its Origin header names the host the browser asked for), and no page may frame ours, so
    another site cannot drive or overlay the app. Anything else gets 403.
    """
    from aiohttp import hdrs, web

    expected = token.encode()

    @web.middleware
    async def check_token(request: web.Request, handler: Handler) -> web.StreamResponse:
        given = request.query.get(TOKEN_PARAM, request.cookies.get(cookie, ""))
        websocket = request.headers.get(hdrs.UPGRADE, "").lower() == "websocket"
        if not secrets.compare_digest(given.encode(), expected):
            return web.Response(status=403, text=REFUSED)
        origin = request.headers.get(hdrs.ORIGIN)
        if websocket and origin is not None and origin.split("://", 1)[-1] != request.host:
            return web.Response(status=403, text=OTHER_ORIGIN.format(origin=origin, host=request.host))
        if TOKEN_PARAM in request.query and not websocket:
            query = request.query.copy()
            del query[TOKEN_PARAM]
            found = web.HTTPFound(request.rel_url.with_query(query))
            found.set_cookie(cookie, token, httponly=True, samesite="Lax", path="/")
            raise found
        response = await handler(request)
        if not response.prepared:  # a websocket's headers are gone already, and it is no page
            response.headers.update(NOT_FRAMED)
        return response

    return check_token


def page_urls(request: web.Request) -> tuple[str, str]:
    """The websocket and static-files URLs for the page ``request`` asks for, on the address the browser used."""
    http = f"{request.scheme}://{request.host}"
    return f"ws{http.removeprefix('http')}/ws", f"{http}/static/"


def make_web_app(command: str, token: str, port: int,
                 end_apps: Callable[[], None] | None = None) -> web.Application:
    """The aiohttp application: textual-serve's page, websocket and static files behind :func:`token_middleware`.

    ``port`` names the token's cookie (the port listened on). When it shuts down, the open tabs' apps are told
    to quit, and after SHUTDOWN_S ``end_apps`` (if given) ends those that did not.
    """
    import aiohttp_jinja2
    import jinja2
    from aiohttp import web
    from textual_serve.server import Server

    server = Server(command, title="tuitune")
    tabs: set[asyncio.Task[object]] = set()

    async def websocket(request: web.Request) -> web.StreamResponse:
        tabs.add(task := asyncio.current_task())
        try:
            return await server.handle_websocket(request)
        finally:
            tabs.discard(task)

    async def quit_tabs(app: web.Application) -> None:
        # Without this, stopping waits SHUTDOWN_S for open tabs to close by themselves. Cancelled, textual-serve's
        # handler quits its app and closes the socket, as when the tab closes; it waits for the app without end,
        # so the wait here has one: an app ended, its handler sees its output end and returns.
        for task in tabs:
            task.cancel()
        if tabs and (await asyncio.wait(tabs, timeout=SHUTDOWN_S))[1] and end_apps is not None:
            end_apps()
            await asyncio.wait(tabs, timeout=SHUTDOWN_S)

    async def index(request: web.Request) -> web.StreamResponse:
        websocket_url, static_url = page_urls(request)
        font_size = request.query.get("fontsize", "16")
        context = {"font_size": int(font_size) if font_size.isdigit() else 16, "app_websocket_url": websocket_url,
                   "config": {"static": {"url": static_url}}, "application": {"name": "tuitune"}}
        return aiohttp_jinja2.render_template("app_index.html", request, context)

    app = web.Application(middlewares=[token_middleware(token, cookie_name(port))])
    aiohttp_jinja2.setup(app, loader=jinja2.FileSystemLoader(server.templates_path))
    app.on_shutdown.append(quit_tabs)
    app.add_routes([web.get("/", index), web.get("/ws", websocket),
                    web.get("/download/{key}", server.handle_download),
                    web.static("/static", server.statics_path)])
    return app


async def serve(command: str, host: str, port: int, token: str) -> None:
    """Listen on ``host``:``port`` (0: any free port), print the URL with its token, serve until SIGINT or SIGTERM.

    Raises:
        Refusal: the address cannot be listened on (in use, not this machine's, not an address).
    """
    from aiohttp import web

    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(signum, stop.set)
    listening = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a restart right after Ctrl+C finds it free
    try:
        listening.bind((host.strip("[]"), port))
    except (OSError, OverflowError) as exc:
        listening.close()
        why = getattr(exc, "strerror", None) or exc
        raise Refusal(f"--host {host} --port {port}: cannot listen there: {why}") from None
    address, port = listening.getsockname()[:2]
    if not is_loopback(address):  # asked by address or by name: what counts is the address bound
        print(exposure_warning(host, port), file=sys.stderr, flush=True)
    runner = web.AppRunner(make_web_app(command, token, port, end_stuck_apps), access_log=None,
                           handle_signals=False, shutdown_timeout=SHUTDOWN_S)
    await runner.setup()
    await web.SockSite(runner, listening).start()
    print_address(host, address, port, token)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def end_stuck_apps() -> None:
    """Kill what is left of the tabs' apps (serve's only children) as serving stops: an app that did not answer
    quit (stopped, hung) would otherwise hold serve up, then outlive it. Nothing an app holds needs saving.

    Only the apps themselves, never their children: a run an app started is its child until the app ends, and
    must live on (its supervisor is in a session of its own, and is reparented when the app goes).
    """
    import psutil

    for child in psutil.Process().children(recursive=False):
        try:
            child.kill()
        except psutil.NoSuchProcess:
            pass


def print_address(host: str, address: str, port: int, token: str) -> None:
    """Say where the app is (``host`` as asked, bound to ``address``), with its token, and how to reach it from
    another machine."""

    def bracketed(name: str) -> str:
        return f"[{name}]" if ":" in name and not name.startswith("[") else name

    shown = socket.gethostname() if ipaddress.ip_address(address).is_unspecified else host
    print(f"tuitune in a browser: http://{bracketed(shown)}:{port}/?{TOKEN_PARAM}={token}", flush=True)
    if is_loopback(address):
        print(f"from another machine: ssh -L {port}:{bracketed(address)}:{port} {socket.gethostname()}, then open "
              "the URL there", flush=True)
    print("each tab runs its own app; closing one never stops a run; Ctrl+C stops serving", flush=True)
