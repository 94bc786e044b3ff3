"""Helpers for the kiosk server tests: a fake backend, raw HTTP over sockets, an MJPEG part reader."""

from __future__ import annotations

import json
import os
import shutil
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edgeportrait.web import CaptureRefused, EventHub


@dataclass
class FakeBackend:
    """KioskBackend for tests: records captures; optionally announces countdown and portrait on an EventHub."""

    portrait: Path | None = None
    state: str = "running"
    refuse: CaptureRefused | None = None
    capture_allowed: bool = True
    review_s: float = 5
    countdown_s: float = 0
    events: EventHub | None = None
    calls: list[float | None] = field(default_factory=list)
    captured: threading.Event = field(default_factory=threading.Event)
    _n: int = 0

    def health(self) -> dict[str, Any]:
        if self.state == "explode":
            raise RuntimeError("boom")
        return {"state": self.state, "camera": {"state": "ok"}}

    def latest_portrait(self) -> Path | None:
        return self.portrait

    def capture(self, countdown_s: float | None) -> str:
        if self.refuse is not None:
            raise self.refuse
        self.calls.append(countdown_s)
        self._n += 1
        cid = f"cap-{self._n}"
        self.captured.set()
        if self.events is not None:
            seconds = self.countdown_s if countdown_s is None else countdown_s
            self.events.publish("countdown", {"id": cid, "seconds": seconds, "trigger": "kiosk"})
        return cid

    def kiosk_state(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "camera": "ok",
            "message": "",
            "model": "landscape INT8 on CPU",
            "fallback": None,
            "review_s": self.review_s,
            "countdown_s": self.countdown_s,
            "capture_allowed": self.capture_allowed,
        }


def jpeg(i: int, width: int = 64, height: int = 48) -> bytes:
    """A small, real JPEG that differs with ``i``."""
    img = np.full((height, width, 3), (i * 37) % 256, np.uint8)
    cv2.putText(img, str(i), (2, height - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (255, 255, 255), 2)
    ok, buf = cv2.imencode(".jpg", img)
    assert ok
    return buf.tobytes()


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def connect(port: int, timeout: float = 5.0) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=timeout)


def read_head(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Status, headers (lower-case names; repeated ones joined by "\\n") and what was read past them."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            break
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1]) if lines and len(lines[0].split()) > 1 else 0
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        key = name.strip().lower()
        headers[key] = (headers[key] + "\n" if key in headers else "") + value.strip()
    return status, headers, rest


def raw(port: int, request: bytes, timeout: float = 5.0) -> Response:
    """Send ``request`` as is; read the whole response (the server closes after one)."""
    with connect(port, timeout) as s:
        s.sendall(request)
        status, headers, rest = read_head(s)
        body = rest
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            body += chunk
    return Response(status, headers, body)


def request(
    port: int, method: str, target: str, headers: dict[str, str] | None = None, body: bytes = b""
) -> Response:
    lines = [f"{method} {target} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Connection: close"]
    for k, v in (headers or {}).items():
        lines.append(f"{k}: {v}")
    if body or method == "POST":
        lines.append(f"Content-Length: {len(body)}")
    return raw(port, ("\r\n".join(lines) + "\r\n\r\n").encode() + body)


class MjpegReader:
    """Reads /stream.mjpg part by part from a socket, checking each part's headers."""

    def __init__(self, port: int, target: str = "/stream.mjpg", headers: dict[str, str] | None = None) -> None:
        self.sock = connect(port)
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        self.sock.sendall(f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{extra}\r\n".encode())
        self.status, self.headers, self._buf = read_head(self.sock)
        ctype = self.headers.get("content-type", "")
        self.boundary = ctype.split("boundary=", 1)[1].encode() if "boundary=" in ctype else b""

    def _fill(self, n: int) -> None:
        while len(self._buf) < n:
            chunk = self.sock.recv(max(65536, n - len(self._buf)))
            if not chunk:
                raise EOFError("stream ended")
            self._buf += chunk

    def _line(self) -> bytes:
        while b"\r\n" not in self._buf:
            self._fill(len(self._buf) + 1)
        line, _, self._buf = self._buf.partition(b"\r\n")
        return line

    def part(self) -> bytes:
        """The next part's body (its Content-Length bytes), after checking boundary and headers."""
        assert self._line() == b"--" + self.boundary
        headers = {}
        while True:
            line = self._line()
            if not line:
                break
            name, _, value = line.decode("ascii").partition(":")
            headers[name.strip().lower()] = value.strip()
        assert headers["content-type"] == "image/jpeg"
        n = int(headers["content-length"])
        self._fill(n + 2)
        body, crlf, self._buf = self._buf[:n], self._buf[n : n + 2], self._buf[n + 2 :]
        assert crlf == b"\r\n"
        return body

    def close(self) -> None:
        self.sock.close()


# -- a real browser: Debian's chromium through its chromedriver -----------------------------

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver") or next(
    (p for p in ("/usr/bin/chromedriver",) if os.access(p, os.X_OK)), None
)
NO_BROWSER = "Debian's chromium and chromium-driver are not installed (scripts/test.sh installs them)"


def chromium() -> Any:
    """Headless Chromium with a 1280×720 viewport (a booth screen); the caller quits it."""
    # selenium is in the dev extra: with a browser there, a missing driver library is an error
    from selenium import webdriver

    assert CHROMIUM is not None and CHROMEDRIVER is not None, NO_BROWSER
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1280,720", "--hide-scrollbars", "--no-first-run", "--mute-audio"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(15)
    # the page's viewport, not the window: a 720p booth screen
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride", {"width": 1280, "height": 720, "deviceScaleFactor": 1, "mobile": False}
    )
    return driver


def shown(driver: Any, element_id: str) -> bool:
    """The page's element is not hidden."""
    return bool(driver.execute_script(f"var e = document.getElementById('{element_id}'); return !e.hidden;"))
