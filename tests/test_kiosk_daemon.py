"""The kiosk against the real daemon (a subprocess, a folder of photos as its camera, no broker).

Over HTTP: the live preview is made only while someone watches, at the
preview size, and its frames change; /healthz is the health report. In
Debian's headless Chromium: the page's live image changes, the capture
button gives the countdown and then the new portrait (the file the daemon
wrote, full size), and a screenshot of each step is kept in the test's tmp
dir.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import yaml
from conftest import free_port
from web_helpers import CHROMEDRIVER, CHROMIUM, NO_BROWSER, chromium, shown

from edgeportrait.messages import HealthMessage

ROOT = Path(__file__).resolve().parent.parent
HELDOUT = ROOT / "tests" / "data" / "heldout" / "images"
PHOTOS = ["portrait_near_002.jpg", "group_001.jpg", "full_body_000.jpg"]
COUNTDOWN_S = 2
REVIEW_S = 3


@dataclass
class Kiosk:
    proc: subprocess.Popen[bytes]
    url: str
    log: Path
    out: Path

    def get(self, path: str, timeout: float = 10.0) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=timeout) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def health(self) -> HealthMessage:
        return HealthMessage.model_validate_json(self.get("healthz")[1])

    def log_tail(self) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-30:])


def _wait(pred: Any, timeout: float, what: str, kiosk: Kiosk | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not reached" + (f"\n{kiosk.log_tail()}" if kiosk else ""))
        time.sleep(0.1)


@pytest.fixture(scope="module")
def kiosk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kiosk]:
    root = tmp_path_factory.mktemp("kiosk")
    photos = root / "photos"
    photos.mkdir()
    for name in PHOTOS:  # different pictures in turn: the live view changes
        img = cv2.imread(str(HELDOUT / name))
        cv2.imwrite(str(photos / name), cv2.resize(img, (640, 360), interpolation=cv2.INTER_AREA))
    port = free_port()
    cfg = {
        "device_id": "kiosk-test",
        "state_dir": str(root / "state"),
        "camera": {"source": str(photos), "width": 640, "height": 360, "fps": 10},
        "model": {"name": "landscape", "precision": "fp32", "device": "CPU", "cache_dir": str(root / "cache")},
        "pipeline": {"max_fps": 10},
        "mqtt": {"enabled": False},
        "capture": {"output_dir": str(root / "out"), "countdown_s": COUNTDOWN_S},
        "health": {"interval_s": 1},
        "http": {"enabled": True, "port": port},
        "preview": {"width": 320, "height": 180, "max_fps": 10, "review_s": REVIEW_S},
    }
    (root / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    log = root / "daemon.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "edgeportrait", "run", "-c", str(root / "cfg.yaml")],
                                stdout=out, stderr=subprocess.STDOUT)
    k = Kiosk(proc, f"http://127.0.0.1:{port}/", log, root / "out")
    try:
        _wait(lambda: proc.poll() is not None or _running(k), 90, "the daemon running", k)
        assert proc.poll() is None, k.log_tail()
        yield k
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            assert proc.wait(30) == 0, k.log_tail()
        finally:
            if proc.poll() is None:
                proc.kill()


def _running(k: Kiosk) -> bool:
    try:
        return k.get("healthz", 2)[0] == 200
    except OSError:
        return False


def _mjpeg_frames(k: Kiosk, n: int) -> list[np.ndarray]:
    """The first ``n`` frames of /stream.mjpg, decoded."""
    frames = []
    with urllib.request.urlopen(k.url + "stream.mjpg", timeout=20) as r:
        assert r.headers.get_content_type() == "multipart/x-mixed-replace"
        while len(frames) < n:
            line = r.readline()
            if line.lower().startswith(b"content-length:"):
                size = int(line.split(b":")[1])
                r.readline()  # the blank line before the part's body
                frames.append(cv2.imdecode(np.frombuffer(r.read(size), np.uint8), cv2.IMREAD_COLOR))
    return frames


def test_the_preview_is_composed_only_while_watched_at_the_preview_size(kiosk: Kiosk) -> None:
    h = kiosk.health()
    assert h.state == "running" and h.preview is not None and h.preview.viewers == 0
    # nobody watching: nothing composed however long the stream runs (it still segments, at the idle rate)
    composed, frames = h.pipeline.composed, h.pipeline.frames
    _wait(lambda: kiosk.health().pipeline.frames >= frames + 2, 30, "the idle stream going on", kiosk)
    assert kiosk.health().pipeline.composed == composed

    shots = _mjpeg_frames(kiosk, 12)
    assert all(f is not None and f.shape == (180, 320, 3) for f in shots)  # 640×360 fitted into 320×180
    diffs = [float(np.abs(a.astype(int) - b.astype(int)).mean()) for a, b in zip(shots, shots[1:], strict=False)]
    assert max(diffs) > 5.0  # the live view changes (the folder camera shows each photo in turn)
    # a frame counts as sent once sendall returned in the daemon, which may be just after the viewer
    # has its last byte
    _wait(lambda: (p := kiosk.health().preview) is not None and p.sent >= 12, 10, "12 frames counted as sent", kiosk)
    after = kiosk.health()
    assert after.pipeline.composed >= composed + 12 and after.preview is not None
    assert after.preview.sent >= 12 and after.preview.latency_ms_p50 is not None


def test_healthz_is_the_health_report(kiosk: Kiosk) -> None:
    code, body = kiosk.get("healthz")
    assert code == 200
    report = json.loads(body)
    assert report["device_id"] == "kiosk-test" and report["mqtt"]["connected"] is False


@pytest.mark.skipif(CHROMIUM is None or CHROMEDRIVER is None, reason=NO_BROWSER)
def test_kiosk_page_in_chromium_live_capture_countdown_portrait(kiosk: Kiosk, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver = chromium()
    shots = Path(os.environ.get("EDGEPORTRAIT_KIOSK_SHOTS", tmp_path))
    try:
        wait = WebDriverWait(driver, 30, poll_frequency=0.05)
        driver.get(kiosk.url)

        live = driver.find_element(By.ID, "live")
        wait.until(lambda d: d.execute_script("return document.getElementById('live').naturalWidth") == 320)
        first = live.screenshot_as_png
        wait.until(lambda d: live.screenshot_as_png != first)  # the live view plays
        driver.save_screenshot(str(shots / "kiosk-live.png"))
        before = set(kiosk.out.glob("*.jpg")) if kiosk.out.exists() else set()

        driver.find_element(By.ID, "capture").click()
        wait.until(lambda d: shown(driver, "countdown"))
        assert driver.find_element(By.ID, "countdown-number").text in {str(i) for i in range(1, COUNTDOWN_S + 1)}
        driver.save_screenshot(str(shots / "kiosk-countdown.png"))

        wait.until(lambda d: shown(driver, "review") and not shown(driver, "countdown"))
        new = set(kiosk.out.glob("*.jpg")) - before
        assert len(new) == 1  # the daemon wrote the portrait the page shows
        width = driver.execute_script("return document.getElementById('review-image').naturalWidth")
        assert width == cv2.imread(str(new.pop())).shape[1] == 640  # full size, not the preview
        driver.save_screenshot(str(shots / "kiosk-review.png"))
        wait.until(lambda d: not shown(driver, "review"))  # back to live after review_s
    finally:
        driver.quit()
    assert (shots / "kiosk-review.png").stat().st_size > 10_000
