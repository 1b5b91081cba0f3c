"""``tuitune serve``'s gate: every request, page, static file and websocket alike, needs the start's token;
and listening beyond loopback says what it exposes. The web app here is the one serve runs, on a test server;
its websocket command is a shell that ends at once, so no app starts."""

from __future__ import annotations

import shlex
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import WSServerHandshakeError
from aiohttp.test_utils import TestClient, TestServer

from tuitune.cli.serve import (
    OTHER_ORIGIN,
    REFUSED,
    app_command,
    cookie_name,
    exposure_warning,
    is_loopback,
    make_web_app,
)

TOKEN = "s3cret-token-of-this-start"
PORT = 8765
"""The port the token's cookie is named for (the test server listens on another: only the name matters)."""

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
async def client() -> AsyncIterator[TestClient]:
    """The served web app on 127.0.0.1, its cookie jar shared by every request, as a browser's is."""
    async with TestClient(TestServer(make_web_app("exit 0", TOKEN, PORT), host="127.0.0.1")) as client:
        yield client


async def refused(client: TestClient, path: str, **kwargs: object) -> None:
    response = await client.get(path, allow_redirects=False, **kwargs)
    assert (response.status, await response.text()) == (403, REFUSED), path


async def test_no_token_and_a_wrong_one_are_refused_everywhere(client: TestClient) -> None:
    for path in ("/", "/static/js/textual.js", "/ws", "/download/x", "/nothing-here"):
        await refused(client, path)
        await refused(client, f"{path}?token=wrong")
        await refused(client, f"{path}?token={TOKEN[:-1]}")
        await refused(client, path, cookies={cookie_name(PORT): "wrong"})
    await refused(client, "/", cookies={cookie_name(PORT + 1): TOKEN})  # another serve's cookie
    await refused(client, "/?token=%C3%A9")  # not ASCII: refused, not an error


async def test_the_token_in_the_url_becomes_a_cookie_and_leaves_the_address_bar(client: TestClient) -> None:
    response = await client.get(f"/?fontsize=14&token={TOKEN}", allow_redirects=False)
    assert response.status == 302 and response.headers["Location"] == "/?fontsize=14"
    cookie = response.cookies[cookie_name(PORT)]
    assert cookie.value == TOKEN and cookie["httponly"] and cookie["samesite"] == "Lax" and cookie["path"] == "/"

    page = await client.get("/?fontsize=14")  # the cookie jar now carries the token
    html = await page.text()
    assert page.status == 200 and "textual-terminal" in html
    assert page.headers["X-Frame-Options"] == "DENY"  # no other page may frame it
    assert page.headers["Content-Security-Policy"] == "frame-ancestors 'none'"
    host = f"127.0.0.1:{client.port}"  # the page's own URLs name the address the browser used
    assert f'data-session-websocket-url="ws://{host}/ws"' in html and f"http://{host}/static/js/textual.js" in html
    script = await client.get("/static/js/textual.js")
    assert script.status == 200 and script.headers["X-Frame-Options"] == "DENY"


async def test_a_websocket_needs_the_token_and_this_server_s_page(client: TestClient) -> None:
    own = f"http://127.0.0.1:{client.port}"
    cookie, wrong = f"{cookie_name(PORT)}={TOKEN}", f"{cookie_name(PORT)}=wrong"
    for headers in ({"Origin": own}, {"Origin": own, "Cookie": wrong},
                    {"Origin": "http://127.0.0.1:9999", "Cookie": cookie},  # another server on this machine
                    {"Origin": "http://evil.example", "Cookie": cookie}):
        with pytest.raises(WSServerHandshakeError) as refusal:
            await client.ws_connect("/ws", headers=headers)
        assert refusal.value.status == 403, headers
    foreign = await client.get("/ws", headers={"Upgrade": "websocket", "Connection": "Upgrade",
                                               "Origin": "http://evil.example", "Cookie": cookie})
    assert (foreign.status, await foreign.text()) == (403, OTHER_ORIGIN.format(origin="http://evil.example",
                                                                               host=f"127.0.0.1:{client.port}"))
    websocket = await client.ws_connect("/ws", headers={"Origin": own, "Cookie": cookie})
    await websocket.close()
    websocket = await client.ws_connect(f"/ws?token={TOKEN}", headers={"Origin": own})  # the token in its URL
    await websocket.close()
    websocket = await client.ws_connect("/ws", headers={"Cookie": cookie})  # no Origin: not a browser's page
    await websocket.close()


@pytest.mark.parametrize(("address", "loopback"), [("127.0.0.1", True), ("127.0.1.1", True), ("::1", True),
                                                   ("0.0.0.0", False), ("::", False), ("192.168.1.20", False),
                                                   ("fe80::1", False)])
def test_only_loopback_addresses_need_no_warning(address: str, loopback: bool) -> None:
    assert is_loopback(address) is loopback


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "myhost.example"])
def test_beyond_loopback_says_what_is_exposed_and_recommends_ssh(host: str) -> None:
    warning = exposure_warning(host, 8123)
    lines = warning.splitlines()
    assert len(lines) == 2 and all(line.startswith("warning: ") for line in lines)
    assert f"--host {host} serves tuitune beyond this machine" in lines[0]
    assert "start, pause and stop runs" in lines[0] and "token travels unencrypted" in lines[0]
    assert "ssh -L 8123:127.0.0.1:8123 " in lines[1]


def test_an_address_it_cannot_listen_on_is_a_one_line_refusal(tmp_path: Path) -> None:
    for args, why in ((["--host", "no-such-host.invalid"], "cannot listen there"),
                      (["--host", "192.0.2.1", "--port", "0"], "cannot listen there: Cannot assign requested address")):
        done = subprocess.run([sys.executable, "-m", "tuitune", "--runs-dir", str(tmp_path), "serve", *args],
                              cwd=REPO, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
        assert done.returncode == 2 and done.stdout == "", (done.returncode, done.stdout)
        assert done.stderr.startswith(f"error: --host {args[1]} --port ") and why in done.stderr, done.stderr
        assert len(done.stderr.splitlines()) == 1, done.stderr


def test_port_must_be_a_port() -> None:
    done = subprocess.run([sys.executable, "-m", "tuitune", "serve", "--port", "65536"], cwd=REPO,
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert done.returncode == 2 and "'65536' is not a port number" in done.stderr


def test_each_tab_runs_this_tuitune_on_the_runs_folder_serve_was_given() -> None:
    """The command textual-serve runs through a shell per websocket: quoted, so any folder name comes through."""
    folder = Path("/tmp/runs with spaces; and $(a shell's) 'quotes'")
    assert shlex.split(app_command(folder)) == ["TEXTUAL_DRIVER=tuitune.web_driver:ServedDriver", "exec",
                                                sys.executable, "-m", "tuitune", "--runs-dir", str(folder)]
