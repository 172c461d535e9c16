"""Loads an HTML file in headless Chromium and reports what a person would see: the console's errors (uncaught
exceptions, ``console.error`` and ``console.assert``, resources that failed to load), whether each ``<img>``
loaded and at what size, the size of each inline ``<svg>``, and optionally a full-page screenshot.

It speaks the Chrome DevTools Protocol over ``--remote-debugging-pipe``, with the standard library only: Chromium
reads commands on its file descriptor 3 and writes replies and events on its descriptor 4, each message a JSON
text ended by a NUL byte. Chromium runs in its own session (process group) with a throwaway profile, and is
closed, or killed with everything it started, whatever happens.

Tests that need Chromium call :func:`chromium_or_skip`: without it they skip, unless NEURODEPLOY_REQUIRE_CHROMIUM=1
(``make test-main``, so CI), where they fail; ``make browser-tools`` installs it (the Debian package chromium)."""

from __future__ import annotations

import base64
import contextlib
import fcntl
import itertools
import json
import math
import os
import select
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
REQUIRE = "NEURODEPLOY_REQUIRE_CHROMIUM"
DATA_URI_CHARS = 60  # a data URI is reported by its first 60 characters
CLOSE_GRACE = 5.0  # seconds Chromium gets to exit after Browser.close before it is killed
STDERR_TAIL = 2000  # characters of Chromium's stderr quoted when it fails
VIEWPORT = (1280, 800)
# The page is a file:// URL: nothing needs the network, an extension or a GPU. /dev/shm is often small in
# containers, and Chromium then crashes rendering; its temporary folder serves as well.
FLAGS = (
    "--headless=new",
    "--remote-debugging-pipe",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-extensions",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-breakpad",
    "--no-first-run",
    "--no-default-browser-check",
    "--hide-scrollbars",
    "--mute-audio",
    f"--window-size={VIEWPORT[0]},{VIEWPORT[1]}",
)
# Everything read from the page after its load event, in one evaluation. An <svg> inside another is part of it.
INSPECT = """(() => ({
  title: document.title,
  images: Array.from(document.images, (img) => ({
    src: img.currentSrc || img.src, complete: img.complete, width: img.naturalWidth, height: img.naturalHeight,
  })),
  svgs: Array.from(document.querySelectorAll("svg"))
    .filter((svg) => !(svg.parentElement && svg.parentElement.closest("svg")))
    .map((svg) => { const box = svg.getBoundingClientRect(); return [box.width, box.height]; }),
}))()"""


def find_chromium() -> str | None:
    """The path of the first of ``chromium``, ``chromium-browser`` and ``google-chrome`` found on PATH, or None."""
    for name in BROWSERS:
        path = shutil.which(name)
        if path is not None:
            return path
    return None


def chromium_or_skip() -> str:
    """The path of Chromium, for a test that needs it. Without it the calling test skips, or, when the environment
    variable NEURODEPLOY_REQUIRE_CHROMIUM is 1, fails with a message that says how to install it. Called in the
    test itself rather than in a fixture, the failure is the test's (a fixture's would be reported as an error)."""
    path = find_chromium()
    if path is not None:
        return path
    problem = f"no Chromium on PATH (looked for {', '.join(BROWSERS)}); `make browser-tools` installs it"
    if os.environ.get(REQUIRE) == "1":
        pytest.fail(f"{REQUIRE}=1 but {problem}")
    pytest.skip(f"{problem} (set {REQUIRE}=1 to fail instead)")


@dataclass(frozen=True)
class ImageCheck:
    """One ``<img>`` after the page's load event: its source (a data URI cut to its first 60 characters), whether
    the browser is done with it, and the size it decoded to (0 x 0 when it did not load)."""

    src: str
    complete: bool
    natural_width: int
    natural_height: int

    @property
    def broken(self) -> bool:
        """Whether a person sees no picture: the image is still loading, or it decoded to no pixels (a missing
        file, or bytes that are no image; the browser then calls it complete, with a natural size of 0 x 0)."""
        return not self.complete or self.natural_width == 0 or self.natural_height == 0


@dataclass
class PageCheck:
    """What a page showed once loaded: its title, the console's errors (one line each, in the order they came),
    its images and the width and height (CSS pixels) of each outermost inline ``<svg>``."""

    title: str
    console_errors: list[str] = field(default_factory=list)
    images: list[ImageCheck] = field(default_factory=list)
    svgs: list[tuple[float, float]] = field(default_factory=list)

    @property
    def broken_images(self) -> list[ImageCheck]:
        """The images a person sees no picture of (:attr:`ImageCheck.broken`)."""
        return [image for image in self.images if image.broken]


class _DevTools:
    """A running Chromium and its DevTools pipe. Every event that arrives is kept, in order, in ``events``;
    :meth:`call` returns a command's reply. Each wait ends at one deadline, set when Chromium starts."""

    def __init__(self, process: subprocess.Popen[bytes], commands: int, replies: int, log: Path, timeout: float):
        self.process, self.commands, self.replies, self.log, self.timeout = process, commands, replies, log, timeout
        self.deadline = time.monotonic() + timeout
        self.events: list[dict[str, Any]] = []
        self._ids = itertools.count(1)
        self._buffer = bytearray()
        os.set_blocking(commands, False)

    def send(self, method: str, params: dict[str, Any] | None = None, session: str | None = None) -> int:
        """Writes one command (to the page's session if given) and returns its id."""
        ident = next(self._ids)
        message: dict[str, Any] = {"id": ident, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        data = memoryview(json.dumps(message).encode() + b"\0")
        while data:
            self._wait_ready(self.commands, f"Chromium to read {method}", write=True)
            try:
                data = data[os.write(self.commands, data) :]
            except BrokenPipeError:
                self._exited(f"sending {method}")
        return ident

    def call(self, method: str, params: dict[str, Any] | None = None, session: str | None = None) -> dict[str, Any]:
        """Sends a command and returns its result; a refused command raises RuntimeError with Chromium's reason."""
        ident = self.send(method, params, session)
        while True:
            message = self._receive(f"the reply to {method}")
            if message.get("id") == ident:
                if "error" in message:
                    raise RuntimeError(f"Chromium refused {method}: {message['error'].get('message', message)}")
                return message.get("result", {})

    def wait_for(self, method: str, session: str, after: int, what: str) -> dict[str, Any]:
        """The first event ``method`` of ``session`` among the events from index ``after`` on, waited for."""
        seen = after
        while True:
            for event in self.events[seen:]:
                if event.get("method") == method and event.get("sessionId") == session:
                    return event
            seen = len(self.events)
            self._receive(what)

    def _receive(self, what: str) -> dict[str, Any]:
        """The next message (an event is also appended to ``events``)."""
        while b"\0" not in self._buffer:
            self._wait_ready(self.replies, what, write=False)
            chunk = os.read(self.replies, 1 << 20)
            if not chunk:
                self._exited(f"waiting for {what}")
            self._buffer += chunk
        end = self._buffer.index(b"\0")
        message = json.loads(bytes(self._buffer[:end]))
        del self._buffer[: end + 1]
        if "method" in message:
            self.events.append(message)
        return message

    def _wait_ready(self, fd: int, what: str, *, write: bool) -> None:
        remaining = max(self.deadline - time.monotonic(), 0)
        readable, writable, _ = select.select([] if write else [fd], [fd] if write else [], [], remaining)
        if not (writable if write else readable):
            raise RuntimeError(f"timed out after {self.timeout:g} s waiting for {what}")

    def _exited(self, doing: str) -> None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(1.0)
        status = self.process.poll()
        state = "closed its DevTools pipe" if status is None else f"exited early (status {status})"
        raise RuntimeError(f"{self.process.args[0]} {state} while {doing}; its stderr ends:\n{self.stderr_tail()}")

    def stderr_tail(self) -> str:
        """The last characters Chromium wrote to stderr (and stdout)."""
        with contextlib.suppress(OSError):
            return self.log.read_bytes()[-STDERR_TAIL:].decode(errors="replace").strip() or "(nothing)"
        return "(unreadable)"

    def close(self) -> None:
        """Asks Chromium to close, kills it if it has not exited after a few seconds, kills anything left in its
        process group, and closes the pipe."""
        try:
            if self.process.poll() is None:
                self.deadline = time.monotonic() + 1.0
                with contextlib.suppress(RuntimeError, OSError):
                    self.send("Browser.close")
                try:
                    self.process.wait(CLOSE_GRACE)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait()
        finally:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)
            _kill_mentioning(str(self.log.parent))
            os.close(self.commands)
            os.close(self.replies)


def _kill_mentioning(scratch: str) -> None:
    """Kills the processes whose command line names ``scratch``: Chromium's crash handlers, which start their own
    sessions (so the process group's kill misses them) and keep their reports under it (XDG_CONFIG_HOME)."""
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError, ValueError):
            if scratch.encode() in cmdline.read_bytes():
                os.kill(int(cmdline.parent.name), signal.SIGKILL)


def _onto_3_and_4(reads: int, writes: int) -> Callable[[], None]:
    """A ``preexec_fn`` that puts ``reads`` on descriptor 3 and ``writes`` on 4 in the child (dup2 makes them
    inheritable). Both go through descriptors above 9 first, so that neither overwrites the other when one of them
    already is 3 or 4."""

    def move() -> None:
        high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (reads, writes)]
        os.dup2(high[0], 3)
        os.dup2(high[1], 4)
        for fd in high:
            os.close(fd)

    return move


def _flags(profile: Path) -> list[str]:
    flags = [*FLAGS, f"--user-data-dir={profile}"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        flags.append("--no-sandbox")  # Chromium refuses to start as root with its sandbox
    return [*flags, "about:blank"]


@contextlib.contextmanager
def _chromium(browser: str, timeout: float) -> Iterator[_DevTools]:
    """Chromium started headless with a throwaway profile, its DevTools pipe open; closed on leaving. Its
    configuration and cache folders (crash reports among them) are in the same temporary folder, not in $HOME."""
    with tempfile.TemporaryDirectory(prefix="neurodeploy-chromium-", ignore_cleanup_errors=True) as scratch:
        log = Path(scratch) / "chromium.log"
        commands_read, commands = os.pipe()
        replies, replies_write = os.pipe()
        try:
            with log.open("wb") as sink:
                # close_fds=False: descriptors Python opens are not inheritable (PEP 446), so Chromium gets 0-2
                # and the two the preexec_fn puts on 3 and 4 (pass_fds would close those: they keep their number).
                process = subprocess.Popen(
                    [browser, *_flags(Path(scratch) / "profile")],
                    env={**os.environ, "XDG_CONFIG_HOME": f"{scratch}/config", "XDG_CACHE_HOME": f"{scratch}/cache"},
                    stdin=subprocess.DEVNULL,
                    stdout=sink,
                    stderr=sink,
                    close_fds=False,
                    start_new_session=True,
                    preexec_fn=_onto_3_and_4(commands_read, replies_write),
                )
        except BaseException as exc:
            os.close(commands)
            os.close(replies)
            if isinstance(exc, (OSError, subprocess.SubprocessError)):
                raise RuntimeError(f"cannot start Chromium ({browser}): {exc}") from exc
            raise
        finally:
            os.close(commands_read)
            os.close(replies_write)
        devtools = _DevTools(process, commands, replies, log, timeout)
        try:
            yield devtools
        finally:
            devtools.close()


def _open_page(devtools: _DevTools) -> str:
    """A new page target, attached in flat mode, with the Runtime, Log and Page domains on: its session id."""
    target = devtools.call("Target.createTarget", {"url": "about:blank"})["targetId"]
    session = devtools.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
    for domain in ("Runtime", "Log", "Page"):
        devtools.call(f"{domain}.enable", session=session)
    metrics = {"width": VIEWPORT[0], "height": VIEWPORT[1], "deviceScaleFactor": 1, "mobile": False}
    devtools.call("Emulation.setDeviceMetricsOverride", metrics, session)
    return session


def _navigate(devtools: _DevTools, session: str, url: str) -> None:
    """Opens ``url`` in the page and waits for its load event (all images loaded or failed)."""
    mark = len(devtools.events)
    result = devtools.call("Page.navigate", {"url": url}, session)
    if result.get("errorText"):
        raise RuntimeError(f"Chromium cannot open {url}: {result['errorText']}")
    devtools.wait_for("Page.loadEventFired", session, mark, f"the load event of {url}")


def _inspect(devtools: _DevTools, session: str) -> PageCheck:
    """The page's title, images and inline SVGs, read in the page."""
    reply = devtools.call("Runtime.evaluate", {"expression": INSPECT, "returnByValue": True}, session)
    if "exceptionDetails" in reply:
        raise RuntimeError(f"inspecting the page failed: {_exception_text(reply['exceptionDetails'])}")
    page = reply["result"]["value"]
    images = [
        ImageCheck(_short(image["src"]), bool(image["complete"]), int(image["width"]), int(image["height"]))
        for image in page["images"]
    ]
    svgs = [(float(width), float(height)) for width, height in page["svgs"]]
    return PageCheck(title=page["title"], images=images, svgs=svgs)


def _short(src: str) -> str:
    return src if not src.startswith("data:") or len(src) <= DATA_URI_CHARS else src[:DATA_URI_CHARS] + "…"


def _capture(devtools: _DevTools, session: str, path: Path) -> None:
    """Writes a PNG of the whole page (not only the viewport) to ``path``."""
    metrics = devtools.call("Page.getLayoutMetrics", session=session)
    size = metrics.get("cssContentSize") or metrics["contentSize"]
    clip = {"x": 0, "y": 0, "width": max(1, math.ceil(size["width"])), "height": max(1, math.ceil(size["height"]))}
    params = {"format": "png", "captureBeyondViewport": True, "clip": {**clip, "scale": 1}}
    shot = devtools.call("Page.captureScreenshot", params, session)
    path.write_bytes(base64.b64decode(shot["data"]))


def _exception_text(details: dict[str, Any]) -> str:
    exception = details.get("exception", {})
    text = f"{details.get('text', 'exception')} {exception.get('description') or exception.get('value', '')}".strip()
    return f"{text} ({details['url']}:{details.get('lineNumber', 0) + 1})" if details.get("url") else text


def _remote_text(value: dict[str, Any]) -> str:
    if "value" in value:
        return value["value"] if isinstance(value["value"], str) else json.dumps(value["value"])
    return str(value.get("description") or value.get("unserializableValue") or value.get("type", "?"))


def _console_errors(events: list[dict[str, Any]], session: str) -> list[str]:
    """The page's errors among ``events``, one line each: console.error and console.assert calls, uncaught
    exceptions, and the log's errors (a resource that failed to load, among others)."""
    errors = []
    for event in events:
        method, params = event.get("method"), event.get("params", {})
        if event.get("sessionId") != session:
            continue
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            errors.append(f"console.{params['type']}: {' '.join(_remote_text(a) for a in params.get('args', []))}")
        elif method == "Runtime.exceptionThrown":
            errors.append(f"exception: {_exception_text(params['exceptionDetails'])}")
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            entry = params["entry"]
            where = f" ({entry['url']})" if entry.get("url") else ""
            errors.append(f"log ({entry.get('source', '?')}): {entry.get('text', '')}{where}")
    return errors


def load_page(
    html: Path, *, screenshot: Path | None = None, timeout: float = 60.0, browser: str | None = None
) -> PageCheck:
    """Opens ``html`` (a file) in headless Chromium (``browser``, or :func:`find_chromium`'s), waits for its load
    event, and returns what it showed; with ``screenshot``, also writes a PNG of the whole page there. Raises
    FileNotFoundError when there is no such file, and RuntimeError when there is no Chromium, when it cannot start
    or exits early (quoting its stderr), refuses a command, or when the page has not loaded within ``timeout``
    seconds (all steps together). Chromium is closed, or killed, before it returns or raises."""
    html = Path(html)
    if not html.is_file():
        raise FileNotFoundError(f"no such HTML file: {html}")
    browser = browser or find_chromium()
    if browser is None:
        raise RuntimeError(f"no Chromium on PATH (looked for {', '.join(BROWSERS)}); `make browser-tools` installs it")
    with _chromium(browser, timeout) as devtools:
        session = _open_page(devtools)
        _navigate(devtools, session, html.resolve().as_uri())
        check = _inspect(devtools, session)
        if screenshot is not None:
            _capture(devtools, session, Path(screenshot))
        check.console_errors.extend(_console_errors(devtools.events, session))
        return check
