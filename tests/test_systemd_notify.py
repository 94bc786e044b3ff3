"""sd_notify and the frame-fed watchdog, against a fake NOTIFY_SOCKET (an AF_UNIX datagram socket)."""

from __future__ import annotations

import os
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from edgeportrait import sdnotify
from edgeportrait.capture import Camera, CameraError
from edgeportrait.capture.base import SourceBase
from edgeportrait.config.camera import CameraConfig

HANG = 15.0


class FakeSystemd:
    """The receiving end of NOTIFY_SOCKET."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def receive(self, timeout: float) -> str | None:
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(4096).decode()
        except TimeoutError:
            return None

    def drain(self) -> list[str]:
        out = []
        while (msg := self.receive(0.05)) is not None:
            out.append(msg)
        return out

    def wait_for(self, text: str, limit: float = HANG) -> None:
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            msg = self.receive(0.2)
            if msg is not None and text in msg.split("\n"):
                return
        raise AssertionError(f"systemd never received {text!r}")


@pytest.fixture
def fake_systemd(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeSystemd]:
    # a short directory: AF_UNIX paths are limited to 107 bytes, pytest's tmp_path can be longer
    directory = tempfile.mkdtemp(prefix="sdn-")
    path = os.path.join(directory, "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    yield FakeSystemd(sock)
    sock.close()
    os.unlink(path)
    os.rmdir(directory)


def test_without_notify_socket_nothing_is_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert sdnotify.notify("READY=1") is False
    assert sdnotify.ready() is False


def test_ready_status_and_stopping_reach_systemd(fake_systemd: FakeSystemd) -> None:
    assert sdnotify.ready("serving\nbooth-1")
    assert fake_systemd.receive(HANG) == "READY=1\nSTATUS=serving booth-1"  # one line per value
    assert sdnotify.status("camera offline")
    assert fake_systemd.receive(HANG) == "STATUS=camera offline"
    assert sdnotify.stopping()
    assert fake_systemd.receive(HANG) == "STOPPING=1"


def test_abstract_notify_socket_is_supported(monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"edgeportrait-test-{os.getpid()}-{time.monotonic_ns()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    try:
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert sdnotify.notify("READY=1")
        sock.settimeout(HANG)
        assert sock.recv(100) == b"READY=1"
    finally:
        sock.close()


def test_a_vanished_notify_socket_is_logged_not_raised(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "gone"))
    assert sdnotify.notify("WATCHDOG=1") is False


@pytest.mark.parametrize(
    ("usec", "pid", "expected"),
    [
        ("30000000", None, 30.0),
        ("30000000", "self", 30.0),
        ("30000000", "1", None),  # meant for another process (we inherited its environment)
        ("garbage", None, None),
        ("0", None, None),
        (None, None, None),
    ],
)
def test_watchdog_interval_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, usec: str | None, pid: str | None, expected: float | None
) -> None:
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    if usec is not None:
        monkeypatch.setenv("WATCHDOG_USEC", usec)
    if pid is not None:
        monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()) if pid == "self" else pid)
    assert sdnotify.watchdog_interval_s() == expected


def test_keepalive_is_sent_only_when_a_frame_flowed_since_the_last_one(fake_systemd: FakeSystemd) -> None:
    dog = sdnotify.Watchdog(10.0)
    assert dog.tick() is False  # nothing flowed yet
    dog.frame_flowed()
    dog.frame_flowed()
    assert dog.tick() is True
    assert dog.tick() is False  # two frames earlier do not cover the next period
    assert fake_systemd.drain() == ["WATCHDOG=1"]
    assert (dog.pings, dog.missed) == (1, 1)


def test_an_excuse_keeps_the_watchdog_fed_through_a_handled_outage(fake_systemd: FakeSystemd) -> None:
    camera_down_and_handled = True
    dog = sdnotify.Watchdog(10.0, excuse=lambda: camera_down_and_handled)
    assert dog.tick() is True
    camera_down_and_handled = False
    assert dog.tick() is False
    assert fake_systemd.drain() == ["WATCHDOG=1"]


def test_watchdog_without_watchdogsec_does_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    dog = sdnotify.Watchdog()
    dog.start()
    assert not dog.enabled and dog._thread is None
    dog.stop()


class _Switchable(SourceBase):
    """Frames while ``flowing`` is set; a read that hangs (ignoring interrupt) once it is cleared."""

    def __init__(self, cfg: CameraConfig, flowing: threading.Event, release: threading.Event) -> None:
        super().__init__(cfg, "switchable")
        self.flowing, self.release = flowing, release

    def _open(self) -> None:
        pass

    def _grab(self) -> np.ndarray:
        if not self.flowing.is_set():
            self.release.wait(HANG)
            raise CameraError("switchable: released")
        time.sleep(0.01)
        return np.zeros((64, 80, 3), np.uint8)

    def _close(self) -> None:
        pass


def test_a_stalled_camera_misses_keepalives_so_systemd_would_restart_us(fake_systemd: FakeSystemd) -> None:
    """End to end: frames → listener → frame_flowed → WATCHDOG=1; camera stalls → no WATCHDOG=1."""
    flowing, release = threading.Event(), threading.Event()
    flowing.set()
    cfg = CameraConfig(width=80, height=64, fps=100, stall_timeout_s=0.3)
    cam = Camera(cfg, lambda c: _Switchable(c, flowing, release), backoff_initial_s=0.05)
    dog = sdnotify.Watchdog(0.2)  # keep-alive decision every 0.1 s
    cam.add_listener(lambda frame: dog.frame_flowed())
    cam.start()
    dog.start()
    try:
        fake_systemd.wait_for("WATCHDOG=1")
        fake_systemd.wait_for("WATCHDOG=1")
        flowing.clear()  # the camera wedges inside read()
        deadline = time.monotonic() + HANG
        while cam.state == "ok" and time.monotonic() < deadline:
            time.sleep(0.02)
        assert cam.state == "stalled"
        # the first withheld keep-alive: from here on nothing sets the flag again
        while dog.missed == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        fake_systemd.drain()  # keep-alives decided while the last frames were still flowing
        missed_before = dog.missed
        time.sleep(0.6)  # about three keep-alive periods
        assert fake_systemd.drain() == []
        assert dog.missed > missed_before
    finally:
        dog.stop()
        release.set()
        cam.stop()


def test_the_daemon_speaks_sd_notify_ready_watchdog_stopping(fake_systemd: FakeSystemd, tmp_path: Path) -> None:
    """`edgeportrait run` as systemd starts it: READY=1 after the first frame, WATCHDOG=1 while
    frames flow, STOPPING=1 and exit 0 on SIGTERM (a folder camera, no broker)."""
    import signal
    import subprocess
    import sys

    data = Path(__file__).parent / "data"
    config = tmp_path / "config.yaml"
    config.write_text(
        f"device_id: sdtest\nstate_dir: {tmp_path / 'state'}\n"
        f"camera: {{source: '{data}', width: 320, height: 240, fps: 10}}\n"
        "mqtt: {enabled: false}\n"
        f"capture: {{output_dir: '{tmp_path / 'out'}'}}\n"
        "model: {precision: fp32, device: CPU}\n"
    )
    env = dict(os.environ, WATCHDOG_USEC="1000000")  # keep-alive decisions every 0.5 s
    env.pop("WATCHDOG_PID", None)
    log = (tmp_path / "daemon.log").open("w")  # a file, not a pipe nobody drains
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgeportrait", "run", "-c", str(config)], env=env, stdout=log, stderr=log
    )
    try:
        messages: list[str] = []
        deadline = time.monotonic() + 120  # a cold model compile on a busy 2-core machine
        while time.monotonic() < deadline and not any("READY=1" in m.split("\n") for m in messages):
            msg = fake_systemd.receive(0.5)
            if msg is not None:
                messages.append(msg)
            assert proc.poll() is None, (tmp_path / "daemon.log").read_text()
        assert any("READY=1" in m.split("\n") for m in messages), messages
        fake_systemd.wait_for("WATCHDOG=1")
        proc.send_signal(signal.SIGTERM)
        fake_systemd.wait_for("STOPPING=1")
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
