"""The kiosk page in a real browser: Debian's headless Chromium driven through chromedriver (selenium).

A fake daemon (backend + a producer publishing portrait-mode frames that
change) serves the page; the browser must show the live view changing, the
status in plain words, the countdown after a press of the capture button,
then the new portrait, then the live view again. Screenshots go to the test's
tmp dir; with EDGEPORTRAIT_KIOSK_SCREENSHOT=1 the live and the countdown
ones are also written, side by side, to docs/kiosk.png (the README's
picture) — only then, so an ordinary run leaves the work tree clean.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from conftest import free_port
from web_helpers import CHROMEDRIVER, CHROMIUM, NO_BROWSER, FakeBackend, chromium, shown

from edgeportrait.compose import compose
from edgeportrait.config import HttpConfig
from edgeportrait.web import CaptureRefused, EventHub, FrameBroadcaster, KioskServer

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data" / "heldout"
if CHROMIUM is None or CHROMEDRIVER is None:
    pytest.skip(NO_BROWSER, allow_module_level=True)

# selenium is in the dev extra: with a browser there, a missing driver library is an error, not a skip
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

COUNTDOWN_S = 2
REVIEW_S = 2


def portrait_frames(n: int = 8) -> tuple[list[bytes], np.ndarray]:
    """``n`` 1280×720 portrait-mode frames of a real photo (the compositor, a ground-truth mask), panning slightly."""
    img = cv2.imread(str(DATA / "images" / "portrait_near_002.jpg"))
    mask = cv2.imread(str(DATA / "masks" / "general" / "portrait_near_002.png"), cv2.IMREAD_GRAYSCALE)
    h, w = img.shape[:2]
    pad = (int(h * 16 / 9) + 40 - w) // 2
    # widen the 512×600 photo to 16:9 as a booth camera sees it (edges repeated, then blurred away)
    wide = cv2.copyMakeBorder(img[:, 8:-8], 0, 0, pad + 8, pad + 8, cv2.BORDER_REPLICATE)
    wide_mask = cv2.copyMakeBorder(mask[:, 8:-8], 0, 0, pad + 8, pad + 8, cv2.BORDER_CONSTANT, value=0)
    full = compose(wide, wide_mask, {"blur": 80})
    scaled = cv2.resize(full, (1320, 720), interpolation=cv2.INTER_AREA)
    frames = []
    for i in range(n):
        dx = int(20 + 16 * np.sin(2 * np.pi * i / n))  # a camera never holds perfectly still
        ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(scaled[:, dx : dx + 1280]), [cv2.IMWRITE_JPEG_QUALITY, 80])
        assert ok
        frames.append(buf.tobytes())
    return frames, full


class BoothBackend(FakeBackend):
    """Announces the countdown, then (after it) writes the portrait and announces it, like the daemon."""

    def __init__(self, events: EventHub, portrait_image: np.ndarray, out: Path) -> None:
        super().__init__(events=events, review_s=REVIEW_S, countdown_s=COUNTDOWN_S)
        self._image = portrait_image
        self._out = out
        self._seq = 0
        self.fails = False  # when set, the capture is announced but its portrait never comes

    def capture(self, countdown_s: float | None) -> str:
        cid = super().capture(countdown_s)
        seconds = self.countdown_s if countdown_s is None else countdown_s
        if not self.fails:
            threading.Timer(seconds, self._taken, args=(cid,)).start()
        return cid

    def _taken(self, cid: str) -> None:
        self._seq += 1
        path = self._out / f"{self._seq:06d}.jpg"
        cv2.imwrite(str(path), self._image)
        self.portrait = path
        assert self.events is not None
        self.events.publish("portrait", {"id": cid, "seq": self._seq})


class Booth:
    """The fake daemon's server; ``restart()`` stops it and starts a new one on the same port."""

    def __init__(self, frames: FrameBroadcaster, events: EventHub, backend: BoothBackend) -> None:
        self.frames, self.events, self.backend = frames, events, backend
        self.cfg = HttpConfig(enabled=True, port=free_port())
        self.server = KioskServer(self.cfg, frames, events, backend)
        self.server.start()

    def restart(self, down: Callable[[], None]) -> None:
        self.server.stop()
        down()
        self.server = KioskServer(self.cfg, self.frames, self.events, self.backend)
        self.server.start()


@pytest.fixture
def booth(tmp_path: Path) -> Iterator[Booth]:
    frames_jpeg, full = portrait_frames()
    events = EventHub()
    backend = BoothBackend(events, full, tmp_path)
    frames = FrameBroadcaster(3)
    b = Booth(frames, events, backend)
    stop = threading.Event()

    def produce() -> None:  # the daemon's compose thread, at 15 fps, only while wanted
        i = 0
        while not stop.wait(1 / 15):
            if frames.wanted():
                frames.publish(frames_jpeg[i % len(frames_jpeg)], time.monotonic())
                i += 1

    producer = threading.Thread(target=produce, daemon=True)
    producer.start()
    yield b
    stop.set()
    producer.join(2)
    b.server.stop()


@pytest.fixture
def browser() -> Iterator[Any]:
    driver = chromium()
    try:
        yield driver
    finally:
        driver.quit()


def test_kiosk_page_live_view_capture_countdown_review(booth: Booth, browser: Any, tmp_path: Path) -> None:
    server, backend = booth.server, booth.backend
    wait = WebDriverWait(browser, 10, poll_frequency=0.05)
    browser.get(server.url)

    # the live view plays: its picture changes
    live = browser.find_element(By.ID, "live")
    wait.until(lambda d: d.execute_script("return document.getElementById('live').naturalWidth") == 1280)
    first = live.screenshot_as_png
    wait.until(lambda d: live.screenshot_as_png != first)
    assert server.frames.viewers == 1
    browser.save_screenshot(str(tmp_path / "live.png"))

    # status in plain words, and gone again when all is well
    state = backend.kiosk_state()
    backend.events.publish("status", {**state, "camera": "offline", "message": "The camera is offline — reconnecting…"})  # type: ignore[union-attr]
    wait.until(lambda d: shown(d, "status") and "camera is offline" in d.find_element(By.ID, "status").text)
    backend.events.publish("status", {**state, "camera": "stalled", "message": ""})  # type: ignore[union-attr]
    wait.until(lambda d: "stopped sending pictures" in d.find_element(By.ID, "status").text)  # the page's own words
    backend.events.publish("status", {**state, "fallback": "The NPU failed; running on the CPU"})  # type: ignore[union-attr]
    wait.until(lambda d: "running on the CPU" in d.find_element(By.ID, "status").text)
    backend.events.publish("status", state)  # type: ignore[union-attr]
    wait.until(lambda d: not shown(d, "status"))

    # the button: a countdown over the live view, then the new portrait, then live again
    browser.find_element(By.ID, "capture").click()
    wait.until(lambda d: shown(d, "countdown"))
    assert browser.find_element(By.ID, "countdown-number").text in ("1", "2")
    assert backend.calls == [None]  # the configured countdown
    browser.save_screenshot(str(tmp_path / "countdown.png"))
    if os.environ.get("EDGEPORTRAIT_KIOSK_SCREENSHOT"):
        # the README's picture: the live view with its button | the countdown over it
        both = [cv2.imread(str(tmp_path / name)) for name in ("live.png", "countdown.png")]
        side = cv2.hconcat([cv2.resize(b, (800, 450), interpolation=cv2.INTER_AREA) for b in both])
        cv2.imwrite(str(ROOT / "docs" / "kiosk.png"), side, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    wait.until(lambda d: shown(d, "review") and not shown(d, "countdown"))
    width = browser.execute_script("return document.getElementById('review-image').naturalWidth")
    assert width == cv2.imread(str(backend.portrait)).shape[1]  # the portrait, full size
    assert "seq=1" in browser.find_element(By.ID, "review-image").get_attribute("src")
    browser.save_screenshot(str(tmp_path / "review.png"))
    wait.until(lambda d: not shown(d, "review"))  # after review_s
    assert browser.find_element(By.ID, "capture").is_enabled()

    # a refused capture is said briefly on the page
    backend.refuse = CaptureRefused("busy", "4 captures already waiting; try again later")
    browser.find_element(By.ID, "capture").click()
    wait.until(lambda d: shown(d, "message") and "try again later" in d.find_element(By.ID, "message").text)
    assert (tmp_path / "countdown.png").stat().st_size > 10_000

    # a capture of the page's own that fails later (error event with its id): said, countdown ended
    backend.refuse = None
    backend.countdown_s = 30  # long enough that only the error ends it
    browser.execute_script("document.getElementById('message').hidden = true;")
    backend.fails = True  # this portrait never comes
    browser.find_element(By.ID, "capture").click()
    wait.until(lambda d: shown(d, "countdown"))
    cid = f"cap-{len(backend.calls)}"
    backend.events.publish("error", {"id": cid, "error": "capture_failed", "detail": "no frame from the camera"})  # type: ignore[union-attr]
    wait.until(lambda d: not shown(d, "countdown") and "no frame" in d.find_element(By.ID, "message").text)

    # the daemon restarts: the page says it is reconnecting, then plays the live view again by itself
    booth.restart(down=lambda: wait.until(lambda d: "Reconnecting" in d.find_element(By.ID, "status").text))
    wait.until(lambda d: not shown(d, "status"))
    wait.until(lambda d: booth.frames.viewers == 1)
    again = live.screenshot_as_png
    wait.until(lambda d: live.screenshot_as_png != again)

