"""The headless Chromium page check (tests/headless_chromium.py) passes a page that shows what it should, and
reports each kind of fault: console.error, an uncaught exception, an image that does not load, a page that never
finishes loading, a browser that exits or does not answer (killed, with what it started). Without Chromium the
tests that need it skip, unless NEURODEPLOY_REQUIRE_CHROMIUM=1 (`make test-main`), where they fail."""

from __future__ import annotations

import base64
import re
import struct
import time
import zlib
from pathlib import Path

import headless_chromium
import pytest
from headless_chromium import chromium_or_skip, load_page

MAKEFILE = Path(__file__).resolve().parents[1] / "Makefile"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png(width: int, height: int) -> bytes:
    """A valid RGB PNG of ``width`` x ``height`` red pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\0" + b"\xff\x00\x00" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return PNG_SIGNATURE + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def _page(tmp_path: Path, body: str, title: str = "check") -> Path:
    html = tmp_path / "page.html"
    html.write_text(f"<!DOCTYPE html><html><head><title>{title}</title></head><body>{body}</body></html>")
    return html


def _alive(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def test_a_page_that_shows_its_image_and_svg_passes(tmp_path: Path) -> None:
    chromium = chromium_or_skip()
    data = base64.b64encode(_png(4, 3)).decode()
    body = (
        f'<img src="data:image/png;base64,{data}" width="40" height="30">'
        '<svg width="120" height="80"><svg width="10" height="10"></svg><rect width="50" height="50"/></svg>'
        '<div style="height: 2000px; background: linear-gradient(#36c, #fc3)"></div>'
        '<script>console.log("fine"); console.warn("only a warning")</script>'
    )
    shot = tmp_path / "shot.png"
    start = time.monotonic()
    check = load_page(_page(tmp_path, body, title="A report"), screenshot=shot, browser=chromium)
    assert time.monotonic() - start < 20
    assert check.title == "A report"
    assert check.console_errors == []
    assert len(check.images) == 1
    assert check.broken_images == []
    image = check.images[0]
    assert image.complete
    assert (image.natural_width, image.natural_height) == (4, 3)
    assert image.src.startswith("data:image/png;base64,")
    assert len(image.src) <= headless_chromium.DATA_URI_CHARS + 1
    assert check.svgs == [(120.0, 80.0)]  # the nested <svg> is part of the outer one
    png = shot.read_bytes()
    assert png.startswith(PNG_SIGNATURE)
    assert len(png) > 2000
    width, height = struct.unpack(">II", png[16:24])
    assert width == headless_chromium.VIEWPORT[0]
    assert height > 2000


def test_console_error_is_reported(tmp_path: Path) -> None:
    chromium = chromium_or_skip()
    check = load_page(_page(tmp_path, '<script>console.error("boom", 42)</script>'), browser=chromium)
    assert check.console_errors == ["console.error: boom 42"]


def test_uncaught_exception_is_reported(tmp_path: Path) -> None:
    chromium = chromium_or_skip()
    check = load_page(_page(tmp_path, '<script>throw new TypeError("no plot")</script>'), browser=chromium)
    assert len(check.console_errors) == 1
    assert "Uncaught TypeError: no plot" in check.console_errors[0]
    assert "page.html" in check.console_errors[0]


def test_an_image_that_does_not_load_is_broken(tmp_path: Path) -> None:
    chromium = chromium_or_skip()
    body = '<img src="missing.png"><img src="data:image/png;base64,bm90IGFuIGltYWdl">'
    check = load_page(_page(tmp_path, body), browser=chromium)
    assert check.broken_images == check.images
    assert len(check.images) == 2
    assert check.images[0].src == (tmp_path / "missing.png").as_uri()
    assert [(image.natural_width, image.natural_height) for image in check.images] == [(0, 0), (0, 0)]
    assert any("missing.png" in error and "ERR_FILE_NOT_FOUND" in error for error in check.console_errors)


def test_a_page_that_never_loads_times_out(tmp_path: Path) -> None:
    chromium = chromium_or_skip()
    start = time.monotonic()
    with pytest.raises(RuntimeError, match="timed out after 2 s waiting for the load event"):
        load_page(_page(tmp_path, "<script>while (true) {}</script>"), timeout=2, browser=chromium)
    assert time.monotonic() - start < 2 + headless_chromium.CLOSE_GRACE + 3


def test_a_browser_that_exits_early_is_reported_with_its_stderr(tmp_path: Path) -> None:
    browser = tmp_path / "browser"
    browser.write_text("#!/bin/sh\necho 'cannot open display' >&2\nexit 3\n")
    browser.chmod(0o755)
    with pytest.raises(RuntimeError, match=r"exited early \(status 3\)(.|\n)*cannot open display"):
        load_page(_page(tmp_path, "<p>hi</p>"), timeout=10, browser=str(browser))


def test_a_browser_that_does_not_answer_is_killed_with_its_children(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(headless_chromium, "CLOSE_GRACE", 0.5)
    browser = tmp_path / "browser"
    browser.write_text(f"#!/bin/sh\nsleep 60 &\necho $! > {tmp_path}/child\necho $$ > {tmp_path}/pid\nexec sleep 60\n")
    browser.chmod(0o755)
    with pytest.raises(RuntimeError, match=r"timed out after 1 s waiting for the reply to Target\.createTarget"):
        load_page(_page(tmp_path, "<p>hi</p>"), timeout=1, browser=str(browser))
    pids = [int((tmp_path / name).read_text()) for name in ("pid", "child")]
    deadline = time.monotonic() + 5
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(pid) for pid in pids)


def test_a_missing_browser_or_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="cannot start Chromium"):
        load_page(_page(tmp_path, "<p>hi</p>"), browser=str(tmp_path / "no-such-browser"))
    with pytest.raises(FileNotFoundError, match="no such HTML file"):
        load_page(tmp_path / "absent.html", browser=str(tmp_path / "no-such-browser"))


@pytest.mark.parametrize(("required", "outcome"), [(None, pytest.skip.Exception), ("1", pytest.fail.Exception)])
def test_no_chromium_skips_unless_required(
    required: str | None, outcome: type[BaseException], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(headless_chromium, "find_chromium", lambda: None)
    if required is None:
        monkeypatch.delenv(headless_chromium.REQUIRE, raising=False)
    else:
        monkeypatch.setenv(headless_chromium.REQUIRE, required)
    with pytest.raises(outcome, match="make browser-tools"):
        chromium_or_skip()


def test_make_test_main_installs_and_requires_chromium() -> None:
    """test-main depends on browser-tools and sets NEURODEPLOY_REQUIRE_CHROMIUM=1."""
    recipe = re.search(r"^test-main:(.*)\n((?:\t.*\n)+)", MAKEFILE.read_text(), re.MULTILINE)
    assert recipe is not None
    assert "browser-tools" in recipe[1].split()
    assert "NEURODEPLOY_REQUIRE_CHROMIUM=1" in recipe[2]
