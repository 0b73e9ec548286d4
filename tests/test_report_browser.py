"""The report of the committed results, opened in a real headless chromium over the DevTools protocol.

Checks what a person would see: every board and figure in the DOM, no broken image, no console error or
uncaught exception, and a 1280 px wide screenshot written (``$BENCHBED_SCREENSHOT_DIR`` or the test's tmp
dir). In CI (``CI=true``) a missing browser fails; elsewhere the test skips with a message. No network: the
page is a file:// URL and chromium's background networking is off.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from benchbed.cli.board_defaults import registry_defaults
from benchbed.report.build import build_report
from benchbed.results.reference import load_references
from benchbed.results.store import load_records

RESULTS = Path(__file__).resolve().parent.parent / "results"
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "chrome")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--remote-debugging-port=0",
    "--window-size=1280,900",
]


def find_browser() -> str | None:
    for name in BROWSERS:
        if path := shutil.which(name):
            return path
    return None


class DevTools:
    """A minimal Chrome DevTools Protocol client: send a command, collect the events that arrive."""

    def __init__(self, url: str) -> None:
        import websocket

        self.ws = websocket.create_connection(url, timeout=30, suppress_origin=True)
        self.next_id = 0
        self.events: list[dict] = []

    def call(self, method: str, **params: object) -> dict:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self.events.append(message)

    def wait_for(self, event: str, timeout: float = 30.0) -> None:
        end = time.monotonic() + timeout
        while not any(e.get("method") == event for e in self.events):
            if time.monotonic() > end:
                raise TimeoutError(event)
            self.events.append(json.loads(self.ws.recv()))

    def evaluate(self, expression: str) -> object:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")


def _page_socket(user_dir: Path, proc: subprocess.Popen, timeout: float = 30.0) -> str:
    """The websocket URL of the browser's first page, from DevToolsActivePort and /json/list."""
    from urllib.request import urlopen

    port_file = user_dir / "DevToolsActivePort"
    end = time.monotonic() + timeout
    while not port_file.exists() or not port_file.read_text().strip():
        if proc.poll() is not None or time.monotonic() > end:
            raise RuntimeError(f"chromium did not start (exit {proc.poll()})")
        time.sleep(0.1)
    port = port_file.read_text().split()[0]
    while True:
        with urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as resp:  # loopback only
            pages = [t for t in json.load(resp) if t.get("type") == "page"]
        if pages:
            return str(pages[0]["webSocketDebuggerUrl"])
        if time.monotonic() > end:
            raise RuntimeError("chromium has no page target")
        time.sleep(0.1)


@pytest.fixture(scope="module")
def browser() -> str:
    path = find_browser()
    if path is None:
        message = "no chromium on PATH (Debian: apt-get install -y chromium)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message + "; CI must run the browser test")
        pytest.skip(message)
    pytest.importorskip("websocket", reason="websocket-client (the test extra) drives the browser")
    return path


def test_report_of_committed_results_renders_in_chromium(browser: str, tmp_path: Path) -> None:
    loaded = load_records([RESULTS])
    records = [r for _, r in loaded.records]
    report = build_report(records, load_references(None), sources=["results"], defaults=registry_defaults)
    page = tmp_path / "report.html"
    page.write_text(report.html, encoding="utf-8")
    shots = Path(os.environ.get("BENCHBED_SCREENSHOT_DIR") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)

    user_dir = tmp_path / "profile"
    proc = subprocess.Popen(
        [browser, *FLAGS, f"--user-data-dir={user_dir}", "about:blank"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        tools = DevTools(_page_socket(user_dir, proc))
        for domain in ("Page.enable", "Runtime.enable", "Log.enable"):
            tools.call(domain)
        tools.call(
            "Emulation.setDeviceMetricsOverride", width=1280, height=900, deviceScaleFactor=1, mobile=False
        )
        tools.call("Page.navigate", url=page.as_uri())
        tools.wait_for("Page.loadEventFired")

        counts = tools.evaluate(
            "({sections: document.querySelectorAll('section.board-section[data-board-title]').length,"
            " tables: document.querySelectorAll('table.board').length,"
            " figures: document.querySelectorAll('figure.report-figure svg').length,"
            " index: document.querySelectorAll('nav.index li').length,"
            " broken: Array.from(document.images).filter(i => !i.complete || i.naturalWidth === 0).length,"
            " external: Array.from(document.querySelectorAll('[src],link[href]')).length,"
            " width: document.documentElement.clientWidth})"
        )
        assert isinstance(counts, dict)
        assert counts["sections"] == report.boards and counts["tables"] == report.boards
        assert counts["figures"] == report.figures > 0
        assert counts["index"] >= report.boards
        assert counts["broken"] == 0 and counts["external"] == 0  # nothing to fetch, nothing broken
        assert counts["width"] == 1280
        first = tools.call("Page.captureScreenshot", format="png")
        (shots / "report-first-screen.png").write_bytes(base64.b64decode(first["data"]))
        assert (shots / "report-first-screen.png").stat().st_size > 10_000

        # the sort script: a click on a higher-is-better column puts the best row first, a second reverses
        order = (
            "(function(){var t=document.querySelector('table.board'),"
            "th=t.querySelector('th[data-col=\"3\"]'),"
            "col=()=>Array.from(t.querySelectorAll('tbody.ours tr')).map(r=>r.children[3].dataset.v);"
            "th.click();var a=col();th.click();var b=col();"
            "return {low: th.dataset.low, a: a, b: b};})()"
        )
        clicked = tools.evaluate(order)
        assert isinstance(clicked, dict)
        values = [float(v) for v in clicked["a"] if v]
        higher_first = clicked["low"] == "0"
        assert values == sorted(values, reverse=higher_first) and len(values) >= 2
        assert [float(v) for v in clicked["b"] if v] == sorted(values, reverse=not higher_first)

        errors = [
            e
            for e in tools.events
            if e.get("method") == "Runtime.exceptionThrown"
            or (
                e.get("method") == "Runtime.consoleAPICalled"
                and e["params"].get("type") in ("error", "assert")
            )
            or (e.get("method") == "Log.entryAdded" and e["params"]["entry"].get("level") == "error")
        ]
        assert errors == []
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
