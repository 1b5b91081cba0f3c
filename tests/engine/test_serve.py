"""``tuitune serve`` with real processes. Its apps end with it, however it ends, and a stuck one neither holds
it up nor takes along the run it started. And in a real browser: headless Chromium (Debian's package, driven
by Playwright) opens the served URL, sees the runs list, opens a live run's dashboard with the keys a person
presses, and a screenshot is taken of it; the page is refused without the token; serving listens on 127.0.0.1
only; each tab gets its own app; closing the tabs leaves the run training.

xterm.js draws the terminal on canvases (WebGL, else 2D), not into DOM rows, so the page has no text to read:
the test reads xterm's own screen buffer, catching the page's Terminal object as textual-serve's script
stores it (``this.terminal = new Terminal(...)``) through a setter put on Object.prototype before the page
loads. Chromium is a test dependency (``apt-get install -y chromium``; make test installs it): without it
the browser test fails, it does not skip.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import queue
import re
import shutil
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import psutil
import pytest
import yaml

from engine.protocol import read_events
from tuitune.runs import launch
from tuitune.runs.launch import read_pids

RUN = "browser-watched-run"

STOPS_WITHIN_S = 4.0
"""How long serve may take to stop, its open tabs' apps quit (about half a second here, when idle)."""

STUCK_STOPS_WITHIN_S = 12.0
"""How long serve may take to stop when an app does not answer (tuitune.cli.serve.SHUTDOWN_S and a margin)."""

CATCH_TERMINAL = """
Object.defineProperty(Object.prototype, "terminal", {configurable: true, set(value) {
  Object.defineProperty(this, "terminal", {value, writable: true, configurable: true, enumerable: true});
  if (value && value.buffer && value.buffer.active) window.tuituneTerminal = value;
}});
"""
"""Runs before the page's own script: keeps a reference to the xterm.js Terminal it creates."""

SCREEN_TEXT = """() => {
  const terminal = window.tuituneTerminal;
  if (!terminal) return "";
  const lines = [];
  for (let row = 0; row < terminal.rows; row++) lines.push(terminal.buffer.active.getLine(row).translateToString(true));
  return lines.join("\\n");
}"""
"""The text on the page's terminal, row by row, as xterm.js holds it."""


class Serving:
    """``tuitune serve --port 0`` started as a user starts it, its output read on a thread (never a full pipe)."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        self.url = self._line_with(r"http://127\.0\.0\.1:\d+/\?token=\S+").group(0)
        self.port = int(re.search(r":(\d+)/", self.url).group(1))
        self.base = f"http://127.0.0.1:{self.port}/"

    def _read(self) -> None:
        for line in self.process.stdout:
            self.output.append(line)
            self.lines.put(line)
        self.lines.put("")  # it ended: nothing more will come

    def _line_with(self, pattern: str, timeout: float = 30) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"serve printed no {pattern!r} in {timeout} s: {self.output}") from None
            if line == "":
                error = self.process.stderr.read()
                raise AssertionError(f"serve ended (exit {self.process.wait()}) without {pattern!r}: {error}")
            if match := re.search(pattern, line):
                return match

    def apps(self) -> list[psutil.Process]:
        """The app processes serving started, one per open tab."""
        return [child for child in psutil.Process(self.process.pid).children(recursive=True) if is_app(child)]

    def stop(self) -> int:
        """Ctrl+C, as at its terminal; its exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        return self.process.wait(timeout=30)


def is_app(process: psutil.Process) -> bool:
    """Whether ``process`` is a tab's app (``python -m tuitune --runs-dir RUNS``) and still running."""
    try:
        return process.status() != psutil.STATUS_ZOMBIE and process.cmdline()[1:4] == ["-m", "tuitune", "--runs-dir"]
    except psutil.NoSuchProcess:
        return False


async def open_tab(serving: Serving, session: aiohttp.ClientSession) -> asyncio.Task[None]:
    """A websocket as a tab's page opens it (a plain client, no browser), once its app has drawn a screen; it
    goes on reading, as a page does, so that it answers serve's close (the task ends when the socket does)."""
    url = serving.url.replace("http://", "ws://").replace("/?", "/ws?")
    socket = await session.ws_connect(f"{url}&width=80&height=24", origin=serving.base.rstrip("/"))
    while (await socket.receive(timeout=30)).type != aiohttp.WSMsgType.BINARY:
        pass

    async def read() -> None:
        async for _message in socket:
            pass

    return asyncio.create_task(read())


def status_of(url: str) -> int:
    """The HTTP status a plain client gets for ``url``."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def listeners(pids: set[int]) -> list[str]:
    """The local addresses ``ss -ltnp`` (the socket table) shows listening for any of ``pids``."""
    table = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, timeout=30, check=True).stdout
    return [line.split()[3] for line in table.splitlines()
            if {int(pid) for pid in re.findall(r"pid=(\d+)", line)} & pids]


def wait_until(condition: Any, what: str, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(0.2)
    return result


KEYS = "textarea.xterm-helper-textarea"
"""Where xterm.js takes the keys typed on the page (focused, not clicked: a click reaches the app as a mouse event)."""


def chromium() -> str:
    """Debian's Chromium, which Playwright drives (nothing to download); the test fails without it."""
    path = shutil.which("chromium")
    if path is None:
        pytest.fail("chromium is not installed: it is a test dependency (apt-get install -y chromium; "
                    "make test installs it)")
    return path


def browse(browser: Any, url: str, **context: Any) -> Any:
    """A page of a fresh browser context (another person) opened on ``url``, its terminal's text readable."""
    people = browser.new_context(**context)
    people.add_init_script(CATCH_TERMINAL)
    page = people.new_page()
    page.goto(url)
    return page


@contextlib.contextmanager
def link_page(url: str) -> Iterator[str]:
    """A page of another site (http://localhost:PORT, where the app is on 127.0.0.1) holding a link to ``url``."""

    class LinkPage(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = f'<a href="{url}">tuitune, to watch the run</a>'.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), LinkPage) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            yield f"http://localhost:{server.server_address[1]}/"
        finally:
            server.shutdown()


def screen_with(page: Any, text: str, what: str, timeout: float = 30) -> str:
    """The page's screen once it shows ``text``."""
    return wait_until(lambda: text in (shown := page.evaluate(SCREEN_TEXT)) and shown, what, timeout)


def last_step(run_dir: Path) -> int:
    return max((event["step"] for event in read_events(run_dir) if event["type"] == "log"), default=0)


def test_a_live_run_watched_in_a_browser(tmp_path: Path, tiny_model_dir: Path, tiny_data: Path, eng: Any) -> None:
    from playwright.sync_api import sync_playwright

    runs = tmp_path / "runs"
    run_dir = eng.make_run(runs, tiny_model_dir, tiny_data, name=RUN,
                           train={"max_steps": 100_000, "save_steps": 100_000})  # trains all along
    eng.launch(run_dir)
    serving = Serving(eng.cli("serve", "--port", "0", runs=runs))
    try:
        tree = {serving.process.pid}
        assert listeners(tree) == [f"127.0.0.1:{serving.port}"]
        assert [c.laddr.ip for c in psutil.Process(serving.process.pid).net_connections("inet")
                if c.status == psutil.CONN_LISTEN] == ["127.0.0.1"]
        assert status_of(serving.base) == 403
        assert status_of(f"{serving.base}?token=not-the-token") == 403
        assert status_of(f"{serving.base}static/js/textual.js") == 403

        eng.wait_for(run_dir, lambda events: last_step(run_dir) >= 1, what="training to log a step")
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium())
            page = browse(browser, serving.url, viewport={"width": 1200, "height": 700})
            assert page.url == serving.base  # the token went into a cookie, out of the address bar
            screen = screen_with(page, RUN, "the runs list")
            assert "name" in screen and "state" in screen, screen
            page.locator(KEYS).focus()
            page.keyboard.press("Enter")  # open the highlighted run, as in a terminal
            wait_until(lambda: re.search(r"step \d+/100000", text := page.evaluate(SCREEN_TEXT))
                                   and text, "the run's dashboard", timeout=20)
            shot = tmp_path / "serve-dashboard.png"
            page.screenshot(path=shot)
            shown = page.evaluate(SCREEN_TEXT)  # the frame the screenshot holds
            assert RUN in shown and "RUNNING" in shown, shown
            assert shot.stat().st_size > 10_000, "a screenshot of a drawn dashboard, not an empty page"

            # Another person, at once, who follows the URL from a link on another site (a web chat, say).
            with link_page(serving.url) as chat:
                other = browse(browser, chat)
                other.click("a")
            wait_until(lambda: len(serving.apps()) == 2, "a second app for the second tab")
            other_screen = screen_with(other, RUN, "its runs list")
            assert "state" in other_screen and "Stop & save" not in other_screen  # its own app: not on the dashboard
            assert "Stop & save" in page.evaluate(SCREEN_TEXT)  # while the first tab's app still is
            apps = serving.apps()
            assert len({app.pid for app in apps}) == 2
            assert listeners(tree | {app.pid for app in apps}) == [f"127.0.0.1:{serving.port}"]  # the apps: none

            page.close()
            other.close()
            wait_until(lambda: serving.apps() == [], "the tabs' apps to quit once their pages closed")
            browser.close()
        closed_at = last_step(run_dir)
        eng.wait_for(run_dir, lambda events: last_step(run_dir) > closed_at + 2, timeout=60,
                     what="training to go on after the pages closed")
        assert eng.terminal()(read_events(run_dir)) is None, "the run ended"
    finally:
        assert serving.stop() == 0, serving.output


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
async def test_every_tab_s_app_ends_with_serve(tmp_path: Path, eng: Any, how: signal.Signals) -> None:
    """Stopped (SIGTERM, as a service manager stops it) or killed outright, serve leaves no app behind: a killed
    serve cannot tell its apps to quit, so each app ends when its input does."""
    serving = Serving(eng.cli("serve", "--port", "0", runs=tmp_path / "runs"))
    apps: list[psutil.Process] = []
    try:
        async with aiohttp.ClientSession() as session:
            reading = await open_tab(serving, session)
            apps = wait_until(serving.apps, "the tab's app")
            serving.process.send_signal(how)
            # Stopping quits the open tabs' apps at once, rather than waiting for the tabs to close.
            stopped = await asyncio.to_thread(serving.process.wait, STOPS_WITHIN_S)  # the page reads on meanwhile
            assert stopped == (0 if how == signal.SIGTERM else -how)
            wait_until(lambda: not any(is_app(app) for app in apps), f"the app to end after serve's {how.name}", 20)
            await asyncio.wait_for(reading, 10)  # the page saw its socket closed
    finally:
        for app in apps:
            if is_app(app):
                app.kill()
        serving.stop()


def test_a_stuck_app_holds_serve_up_no_more_and_its_run_lives_on(tmp_path: Path, tiny_model_dir: Path, tiny_data: Path,
                                                                 isolated_home: Path, eng: Any) -> None:
    """A tab's app starts a run from the new-run flow, as a person does in the browser; the run is paused so it
    lasts. The app then cannot answer serve's quit (stopped with SIGSTOP): serve still stops in good time and
    ends the app, and the run, the app's child until then, lives on."""
    from playwright.sync_api import sync_playwright

    settings = isolated_home / "config" / "tuitune" / "settings.yaml"  # the new-run flow starts from these
    settings.parent.mkdir(parents=True, exist_ok=True)
    settings.write_text(yaml.safe_dump({"model": str(tiny_model_dir), "data": [str(tiny_data)],
                                        "preset": "cpu-first-try"}))
    runs = tmp_path / "runs"
    serving = Serving(eng.cli("serve", "--port", "0", runs=runs))
    apps: list[psutil.Process] = []
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium())
            page = browse(browser, serving.url, viewport={"width": 1200, "height": 700})
            screen_with(page, "No runs yet", "the runs list")
            page.locator(KEYS).focus()
            page.keyboard.press("n")
            screen_with(page, "Built-in alias, a local model folder", "the model step")
            page.keyboard.press("Enter")
            screen_with(page, "supervised fine-tuning", "the stage step")
            page.keyboard.press("Enter")
            screen_with(page, "Stage sft trains on instruction data", "the data step")
            page.keyboard.press("Enter")
            screen_with(page, "A first try on CPU", "the preset step")
            page.keyboard.press("Enter")
            screen_with(page, "fits:", "the review")
            page.keyboard.press("Tab")  # from the run's name to its max steps
            screen_with(page, "max steps", "the max steps field")
            time.sleep(0.5)  # focus moves on the app's next turn
            page.keyboard.type("100000")
            screen_with(page, "100000", "max steps typed")
            page.keyboard.press("Enter")  # start
            screen_with(page, "RUNNING", "the new run's dashboard", timeout=60)
            run_dir = wait_until(lambda: next(runs.iterdir(), None), "the run folder")
            assert eng.cli("pause", run_dir.name, runs=runs).wait(timeout=120) == 0
            assert launch.is_alive(run_dir)

            apps = serving.apps()
            (app,) = apps
            supervisor = read_pids(run_dir)["supervisor"]
            assert psutil.Process(supervisor).ppid() == app.pid  # the run is the app's child
            app.suspend()
            serving.process.send_signal(signal.SIGTERM)
            assert serving.process.wait(timeout=STUCK_STOPS_WITHIN_S) == 0, serving.output
            wait_until(lambda: not is_app(app), "the stuck app to be ended", 10)
            browser.close()
        assert launch.is_alive(run_dir), "the run went with the app"
        assert eng.terminal()(read_events(run_dir)) is None, read_events(run_dir)[-1]
    finally:
        for app in apps:
            if is_app(app):
                app.kill()
        serving.stop()
        if runs.is_dir() and (started := next(runs.iterdir(), None)) is not None:
            eng.cli("stop", "--kill", started.name, runs=runs).wait(timeout=120)
