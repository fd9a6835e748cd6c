"""The HTML report in a real browser: headless Chromium loads it offline, every plot decodes, no errors.

Chromium is driven through the DevTools protocol over a pipe (``--remote-debugging-pipe``: fd 3 in,
fd 4 out, NUL-terminated JSON), so console messages, uncaught exceptions and failed loads are seen as
events rather than scraped from logs. Installed by scripts/install_test_tools.sh (Debian's
``chromium``); skipped with the reason only when it cannot be installed.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "unit"))

from sample_report import make_report, rendered_html  # noqa: E402

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe",
    "--disable-background-networking", "--disable-component-update", "--disable-default-apps",
    "--disable-sync", "--disable-extensions", "--no-first-run", "--no-default-browser-check",
    "--metrics-recording-only", "--disable-breakpad", "--mute-audio", "--hide-scrollbars",
    "--window-size=1280,1000",
]
TIMEOUT_S = 40


def find_chromium() -> str | None:
    if Path("/usr/lib/chromium/chromium").is_file():  # Debian's binary, without the shell launcher
        return "/usr/lib/chromium/chromium"
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.fixture(scope="module")
def chromium() -> str:
    path = find_chromium()
    if path is None:
        subprocess.run(["bash", str(ROOT / "scripts" / "install_test_tools.sh")], check=False, timeout=900)
        path = find_chromium()
    if path is None:
        why = "not root" if os.geteuid() != 0 else "apt-get could not install it"
        pytest.skip(f"chromium not installed and cannot be installed here ({why}); "
                    "run scripts/install_test_tools.sh as root")
    return path


class DevTools:
    """A minimal DevTools-protocol client over Chromium's debugging pipe."""

    def __init__(self, chromium: str, profile: Path):
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()

        def wire_fds() -> None:  # runs in the child: fd 3 = commands in, fd 4 = replies out
            commands, replies = os.dup(to_child_r), os.dup(from_child_w)  # in case either is 3 or 4
            os.dup2(commands, 3)
            os.dup2(replies, 4)

        # subprocess closes unlisted fds after preexec_fn, so keep 3 and 4 by number
        self.proc = subprocess.Popen(
            [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            preexec_fn=wire_fds, pass_fds=(3, 4),
        )
        os.close(to_child_r)
        os.close(from_child_w)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []
        self.session: str | None = None

    def send(self, method: str, params: dict[str, Any] | None = None, session: bool = True) -> dict[str, Any]:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session and self.session:
            message["sessionId"] = self.session
        os.write(self._to_child, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._read()
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str) -> dict[str, Any]:
        for event in self.events:
            if event.get("method") == method:
                self.events.remove(event)
                return event
        while True:
            event = self._read()
            if event.get("method") == method:
                return event
            self.events.append(event)

    def _read(self) -> dict[str, Any]:
        deadline = time.monotonic() + TIMEOUT_S
        while b"\0" not in self._buffer:
            if time.monotonic() > deadline:
                raise TimeoutError("no reply from chromium")
            chunk = os.read(self._from_child, 1 << 20)
            if not chunk:
                err = self.proc.stderr.read().decode(errors="replace")[-800:] if self.proc.stderr else ""
                raise RuntimeError(f"chromium exited: {err}")
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(raw)

    def open_page(self) -> None:
        target = self.send("Target.createTarget", {"url": "about:blank"}, session=False)
        attached = self.send("Target.attachToTarget", {"targetId": target["targetId"], "flatten": True},
                             session=False)
        self.session = attached["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            self.send(f"{domain}.enable")

    def load(self, url: str) -> None:
        self.events.clear()
        self.send("Page.navigate", {"url": url})
        self.wait_for("Page.loadEventFired")

    def errors(self) -> list[str]:
        """Console errors, uncaught exceptions and browser log errors seen since the last load."""
        found = []
        for e in self.events:
            method, params = e.get("method"), e.get("params", {})
            if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                found.append("console: " + " ".join(str(a.get("value", a.get("description")))
                                                    for a in params.get("args", [])))
            elif method == "Runtime.exceptionThrown":
                found.append("exception: " + params.get("exceptionDetails", {}).get("text", "?"))
            elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
                found.append("log: " + params["entry"].get("text", "?"))
        return found

    def evaluate(self, expression: str) -> Any:
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                "awaitPromise": True})
        return result["result"].get("value")

    def screenshot(self) -> bytes:
        import base64

        metrics = self.send("Page.getLayoutMetrics")["cssContentSize"]
        clip = {"x": 0, "y": 0, "width": metrics["width"], "height": metrics["height"], "scale": 1}
        data = self.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True,
                                                    "clip": clip})["data"]
        return base64.b64decode(data)

    def close(self) -> None:
        with contextlib.suppress(RuntimeError, OSError, TimeoutError):
            self.send("Browser.close", session=False)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._to_child)
        os.close(self._from_child)
        if self.proc.stderr:
            self.proc.stderr.close()


@pytest.fixture(scope="module")
def browser(chromium):
    with tempfile.TemporaryDirectory(prefix="edgeopt-chromium-") as profile:
        tools = DevTools(chromium, Path(profile))
        try:
            tools.open_page()
            yield tools
        finally:
            tools.close()


PLOT_STATE = """(() => {
  const imgs = [...document.querySelectorAll('figure.plot img')];
  return {figures: document.querySelectorAll('figure.plot').length,
          decoded: imgs.filter(i => i.complete && i.naturalWidth > 100 && i.naturalHeight > 100).length,
          shown: imgs.filter(i => i.getBoundingClientRect().width > 100).length,
          rows: document.querySelectorAll('table tbody tr').length,
          title: document.title};
})()"""


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_html_report_renders_offline_with_all_plots_and_no_errors(browser, tmp_path, task):
    page = tmp_path / "report.html"
    page.write_text(rendered_html(task))
    browser.load(page.as_uri())
    state = browser.evaluate(PLOT_STATE)
    assert state["figures"] == 7
    assert state["decoded"] == state["figures"] == state["shown"], state
    assert state["title"] == f"edgeopt report: {make_report(task)['name']}"
    assert browser.errors() == []

    png = browser.screenshot()
    (tmp_path / "screenshot.png").write_bytes(png)
    from matplotlib.image import imread

    pixels = imread(io.BytesIO(png))
    height, width = pixels.shape[:2]
    assert width >= 1000 and height > 2000, "the whole page, plots included, is captured"
    # a blank or broken page is one or two colours; plots and text give thousands
    colours = {tuple(p) for p in (pixels[::7, ::7, :3] * 255).astype(int).reshape(-1, 3)}
    assert len(colours) > 200


def test_the_browser_check_does_see_errors_and_broken_images(browser, tmp_path):
    # The harness must be able to fail: a console error and an image that does not decode are caught.
    page = tmp_path / "broken.html"
    page.write_text("<!DOCTYPE html><html><head><title>x</title></head><body>"
                    "<figure class='plot'><img src='data:image/png;base64,AAAA'></figure>"
                    "<script>console.error('plot failed')</script></body></html>")
    browser.load(page.as_uri())
    state = browser.evaluate(PLOT_STATE)
    assert state["figures"] == 1 and state["decoded"] == 0
    assert any("plot failed" in e for e in browser.errors())
