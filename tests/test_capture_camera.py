"""The Camera supervisor: frames, listeners, stills, and faults injected through the source factory.

Times here are upper bounds that only catch a hang (generous on a busy 2-core box); nothing
asserts how fast anything is.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgeportrait.capture import Camera, CameraError, Frame
from edgeportrait.capture.base import SourceBase
from edgeportrait.capture.camera import MAX_ABANDONED, reopen_delay
from edgeportrait.config.camera import CameraConfig

HANG = 15.0  # seconds after which a wait is a hang, not slowness


def cfg(**kw: object) -> CameraConfig:
    base: dict[str, object] = {"width": 80, "height": 64, "fps": 100, "stall_timeout_s": 0.4, "open_timeout_s": 0.5}
    base.update(kw)
    return CameraConfig.model_validate(base)


def eventually(pred: Callable[[], bool], what: str, limit: float = HANG) -> None:
    deadline = time.monotonic() + limit
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        time.sleep(0.01)


class World:
    """What the fake camera does right now: ``ok``, ``error`` (reads fail), ``gone`` (cannot open),
    ``block`` (reads hang until interrupted), ``wedge`` (reads hang and ignore interrupt),
    ``wedge_holding_device`` (one read hangs, and the device cannot be opened meanwhile),
    ``hang_open`` (open hangs until released)."""

    def __init__(self, mode: str = "ok") -> None:
        self.mode = mode
        self.opens = 0
        self.release = threading.Event()  # ends every hang (test teardown)
        self.value = 0


class FakeSource(SourceBase):
    def __init__(self, cfg: CameraConfig, world: World) -> None:
        super().__init__(cfg, "fake")
        self.world = world

    def _open(self) -> None:
        self.world.opens += 1
        if self.world.mode == "gone":
            raise CameraError("fake: no such device")
        if self.world.mode == "hang_open":
            self.world.release.wait(HANG)
            raise CameraError("fake: open gave up")

    def _grab(self) -> np.ndarray:
        mode = self.world.mode
        if mode in ("error", "gone"):
            raise CameraError("fake: read failed")
        if mode == "block":
            # an interruptible hang, like a paced wait
            for _ in range(int(HANG * 100)):
                if self._cancel.is_set() or self.world.release.is_set():
                    raise CameraError("fake: interrupted")
                time.sleep(0.01)
        if mode == "wedge_holding_device":
            self.world.mode = "gone"  # while this read is stuck, nobody else can open the device
            mode = "wedge"
        if mode == "wedge":
            self.world.release.wait(HANG)  # ignores interrupt(), like a stuck driver call
            raise CameraError("fake: wedged read returned")
        time.sleep(0.005)
        self.world.value = (self.world.value + 1) % 256
        return np.full((64, 80, 3), self.world.value, np.uint8)

    def _close(self) -> None:
        pass


@pytest.fixture
def world() -> World:
    w = World()
    yield w
    w.release.set()


def camera(world: World, **kw: object) -> Camera:
    return Camera(cfg(**kw), lambda c: FakeSource(c, world), backoff_initial_s=0.05)


@pytest.fixture
def running() -> list[Camera]:
    cams: list[Camera] = []
    yield cams
    for c in cams:
        c.stop()


def start(cams: list[Camera], cam: Camera) -> Camera:
    cams.append(cam)
    cam.start()
    return cam


def write_folder(path: Path, n: int = 3) -> Path:
    for i in range(n):
        cv2.imwrite(str(path / f"{i:02d}.png"), np.full((64, 80, 3), 10 * (i + 1), np.uint8))
    return path


# --- normal operation -------------------------------------------------------------------------


def test_frames_from_a_folder_reach_listeners_with_increasing_indices(tmp_path: Path, running: list[Camera]) -> None:
    cam = Camera(cfg(source=str(write_folder(tmp_path)), fps=200))
    seen: list[Frame] = []
    cam.add_listener(seen.append)
    start(running, cam)
    eventually(lambda: len(seen) >= 6, "six frames")
    indices = [f.index for f in seen[:6]]
    assert indices == list(range(indices[0], indices[0] + 6))
    assert [int(f.image[0, 0, 0]) for f in seen[:6]] == [10, 20, 30, 10, 20, 30]  # the folder, looped
    stats = cam.stats()
    assert stats["state"] == "ok" and stats["frames"] >= 6 and stats["reconnects"] == 0
    assert stats["fps"] > 0
    assert cam.latest() is not None


def test_shared_stream_frames_are_read_only(world: World, running: list[Camera]) -> None:
    """Listeners and latest() get the same array; one consumer must not corrupt it for the others."""
    cam = start(running, camera(world))
    frame = cam.wait_frame(None, HANG)
    with pytest.raises(ValueError, match="read-only"):
        frame.image[0, 0] = 255


def test_wait_frame_returns_a_frame_newer_than_the_one_given(world: World, running: list[Camera]) -> None:
    cam = start(running, camera(world))
    first = cam.wait_frame(None, HANG)
    assert cam.wait_frame(first, HANG).index > first.index
    assert cam.wait_frame(first.index, HANG).index > first.index
    assert cam.wait_frame(first.ts, HANG).ts > first.ts


def test_capture_still_is_taken_by_the_reader_and_not_given_to_listeners(world: World, running: list[Camera]) -> None:
    cam = camera(world)
    seen: list[int] = []
    cam.add_listener(lambda f: seen.append(f.index))
    start(running, cam)
    cam.wait_frame(None, HANG)
    still = cam.capture_still(HANG)
    later = cam.wait_frame(still, HANG)
    assert still.image.shape == (64, 80, 3)
    assert still.index not in seen and later.index > still.index


def test_a_failing_listener_does_not_stop_the_stream(world: World, running: list[Camera]) -> None:
    cam = camera(world)

    def broken(frame: Frame) -> None:
        raise RuntimeError("consumer bug")

    cam.add_listener(broken)
    start(running, cam)
    first = cam.wait_frame(None, HANG)
    assert cam.wait_frame(first, HANG).index > first.index
    assert cam.state == "ok"


def test_dropped_frames_counted_by_the_consumer_show_in_stats(world: World) -> None:
    cam = camera(world)
    cam.count_dropped()
    cam.count_dropped(4)
    assert cam.stats()["dropped"] == 5


def test_stop_closes_the_camera_and_waiters_fail_at_once(world: World) -> None:
    cam = camera(world)
    cam.start()
    cam.wait_frame(None, HANG)
    cam.stop()
    assert cam.state == "offline"
    with pytest.raises(CameraError, match="not running"):
        cam.wait_frame(None, HANG)
    with pytest.raises(CameraError, match="not running"):
        cam.capture_still(HANG)


def test_a_still_waiting_when_the_camera_stops_fails_then_not_at_its_timeout(world: World) -> None:
    """stop() completes every pending still request (a Future) with "camera stopped"."""
    world.mode = "gone"  # no reader that could take the still
    cam = camera(world)
    cam.start()
    errors: list[str] = []

    def ask() -> None:
        try:
            cam.capture_still(HANG)
        except CameraError as e:
            errors.append(str(e))

    waiter = threading.Thread(target=ask)
    waiter.start()
    eventually(lambda: bool(cam._stills), "still request queued")
    t0 = time.monotonic()
    cam.stop()
    waiter.join(HANG)
    assert not waiter.is_alive() and time.monotonic() - t0 < HANG / 2
    assert errors == ["camera stopped"]


def test_a_video_that_ends_without_loop_goes_offline_and_is_not_reopened(tmp_path: Path) -> None:
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter.fourcc(*"MJPG"), 10, (80, 64))
    for v in (50, 100):
        writer.write(np.full((64, 80, 3), v, np.uint8))
    writer.release()
    cam = Camera(cfg(source=str(video), loop=False))
    cam.start()
    try:
        eventually(lambda: cam.stats()["frames"] == 2 and cam.state == "offline", "end of video")
        with pytest.raises(CameraError, match="end of video"):
            cam.wait_frame(None, HANG)
        assert cam.stats()["reconnects"] == 0
    finally:
        cam.stop()


# --- faults -------------------------------------------------------------------------------


def test_reopen_backoff_doubles_up_to_the_cap() -> None:
    assert [reopen_delay(n, 0.5, 5.0) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]
    assert reopen_delay(10_000, 0.5, 30.0) == 30.0  # no overflow after months of failures


def test_a_camera_that_cannot_open_is_offline_and_wait_frame_fails_in_bounded_time(
    world: World, running: list[Camera]
) -> None:
    world.mode = "gone"
    cam = start(running, camera(world))
    eventually(lambda: world.opens >= 3, "repeated open attempts")
    assert cam.state == "offline"
    assert "no such device" in str(cam.stats()["error"])
    t0 = time.monotonic()
    with pytest.raises(CameraError, match=r"no new frame within 0.3s \(camera offline: fake: no such device\)"):
        cam.wait_frame(None, 0.3)
    with pytest.raises(CameraError, match="no still"):
        cam.capture_still(0.3)
    assert time.monotonic() - t0 < HANG


def test_read_errors_are_reconnected_and_the_stream_resumes(world: World, running: list[Camera]) -> None:
    cam = start(running, camera(world))
    before = cam.wait_frame(None, HANG)
    world.mode = "error"
    eventually(lambda: world.opens >= 3, "reopen attempts while reads fail")
    stale = cam.latest()
    world.mode = "ok"
    after = cam.wait_frame(stale, HANG)
    assert stale is not None and after.index > stale.index >= before.index
    eventually(lambda: cam.state == "ok", "state back to ok")
    assert cam.stats()["reconnects"] >= 2


def test_a_read_that_hangs_is_detected_as_stalled_and_replaced(world: World, running: list[Camera]) -> None:
    cam = start(running, camera(world))
    before = cam.wait_frame(None, HANG)
    world.mode = "block"
    eventually(lambda: cam.state == "stalled", "stalled state")
    assert "no frame" in str(cam.stats()["error"])
    stale = cam.latest()
    world.mode = "ok"
    after = cam.wait_frame(stale, HANG)
    assert stale is not None and after.index > stale.index >= before.index
    eventually(lambda: cam.state == "ok", "state back to ok")
    assert cam.stats()["reconnects"] >= 1
    # the hung reader honoured interrupt() and ended: no thread left behind
    eventually(lambda: not [t for t in threading.enumerate() if t.name.startswith("camera-reader-1")], "reader 1 ended")


def test_a_camera_that_vanishes_goes_offline_and_comes_back_by_itself(world: World, running: list[Camera]) -> None:
    cam = camera(world)
    changes: list[str] = []
    cam.add_state_listener(changes.append)  # (the kiosk page is told this way)
    start(running, cam)
    before = cam.wait_frame(None, HANG)
    world.mode = "gone"  # unplugged: reads fail, then opens fail
    eventually(lambda: cam.state == "offline", "offline state")
    assert cam.stats()["fps"] == 0.0
    stale = cam.latest()
    world.mode = "ok"  # plugged back in
    after = cam.wait_frame(stale, HANG)
    assert stale is not None and after.index > stale.index >= before.index and cam.state == "ok"
    assert cam.stats()["reconnects"] >= 1
    # each change once, in order (no repeats of a state it was already in)
    assert changes[0] == "ok" and changes[-1] == "ok" and "offline" in changes
    assert all(a != b for a, b in zip(changes, changes[1:], strict=False))


def test_an_open_that_hangs_counts_as_offline(world: World, running: list[Camera]) -> None:
    world.mode = "hang_open"
    cam = start(running, camera(world))
    eventually(lambda: "opening took longer" in str(cam.stats()["error"]), "open timeout")
    assert cam.state == "offline"


def test_readers_wedged_in_the_backend_are_bounded_and_stop_still_returns(world: World) -> None:
    cam = camera(world)
    cam.start()
    try:
        cam.wait_frame(None, HANG)
        world.mode = "wedge"
        eventually(lambda: world.opens >= MAX_ABANDONED, "replacement readers")
        eventually(lambda: cam.state == "stalled", "stalled state")
        eventually(lambda: not cam.supervisor_alive(), "wedged: the watchdog excuse is withdrawn")
        # the supervisor, wedged, ticks ten more times past the moment a reopen was due (its own
        # clock, not a sleep of the test's): a camera not wedged would have started a reader there
        since = max(cam._next_attempt, cam._heartbeat)
        eventually(lambda: cam._heartbeat > since + 10 * cam._tick, "supervisor ticks past the reopen time")
        assert world.opens <= MAX_ABANDONED + 1
        assert "restart is needed" in str(cam.stats()["error"])
    finally:
        stopper = threading.Thread(target=cam.stop)
        stopper.start()
        stopper.join(HANG)
        assert not stopper.is_alive(), "stop() hung on a wedged backend"


def test_a_camera_gone_for_long_does_not_flood_the_log(
    world: World, running: list[Camera], caplog: pytest.LogCaptureFixture
) -> None:
    world.mode = "gone"
    with caplog.at_level(logging.INFO, logger="edgeportrait.capture.camera"):
        start(running, camera(world, stall_timeout_s=0.1, reopen_backoff_max_s=0.01))
        eventually(lambda: world.opens >= 45, "many reopen attempts")
        running[0].stop()
    attempts = world.opens
    warned = [r for r in caplog.records if "no such device" in r.getMessage() and r.levelno >= logging.WARNING]
    assert 1 <= len(warned) <= attempts // 20 + 1, (len(warned), attempts)


def test_a_network_stream_that_drops_is_reopened_and_continues(tmp_path: Path, running: list[Camera]) -> None:
    import functools
    import http.server

    clip = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter.fourcc(*"MJPG"), 10, (80, 64))
    for v in (50, 100, 150):
        writer.write(np.full((64, 80, 3), v, np.uint8))
    writer.release()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler.log_message = lambda *a, **k: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/clip.avi"
        cam = start(running, Camera(cfg(source=url, stall_timeout_s=2, open_timeout_s=5), backoff_initial_s=0.05))
        # every 3 frames the "stream" ends; more than 3 frames means it was reopened and continued
        eventually(lambda: cam.stats()["frames"] >= 7, "frames across stream drops")
        assert cam.stats()["reconnects"] >= 2
    finally:
        server.shutdown()
        server.server_close()


def test_one_reader_stuck_for_too_long_also_counts_as_wedged(world: World, running: list[Camera]) -> None:
    """A stuck read that holds the device makes every reopen fail; after wedged_after_s, give up."""
    cam = camera(world)
    cam.wedged_after_s = 0.5
    start(running, cam)
    cam.wait_frame(None, HANG)
    world.mode = "wedge_holding_device"
    eventually(lambda: cam.state == "stalled", "stalled state")
    assert cam.supervisor_alive()  # one stuck reader: still worth trying for a while
    eventually(lambda: not cam.supervisor_alive(), "wedged after wedged_after_s")
    world.release.set()  # the driver call finally returns
    world.mode = "ok"
    eventually(lambda: cam.supervisor_alive() and cam.state == "ok", "recovered once the reader returned")


def test_reconnecting_many_times_leaks_neither_threads_nor_file_descriptors(
    tmp_path: Path, running: list[Camera]
) -> None:
    """An appliance reconnects for months: 15 real FFmpeg stream reopens must leave nothing behind."""
    import functools
    import http.server
    import os

    clip = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter.fourcc(*"MJPG"), 10, (80, 64))
    for v in (50, 100):
        writer.write(np.full((64, 80, 3), v, np.uint8))
    writer.release()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler.log_message = lambda *a, **k: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/clip.avi"
    try:
        fds_before = len(os.listdir("/proc/self/fd"))
        cam = Camera(cfg(source=url, stall_timeout_s=0.5, open_timeout_s=5), backoff_initial_s=0.01)
        cam.start()
        eventually(lambda: cam.stats()["reconnects"] >= 15, "15 reconnects", limit=60)
        cam.stop()
        eventually(
            lambda: not [t for t in threading.enumerate() if t.name.startswith("camera-")], "camera threads ended"
        )
        # the HTTP server's handler threads may still be closing their sockets
        eventually(lambda: len(os.listdir("/proc/self/fd")) <= fds_before + 2, "descriptors released")
    finally:
        server.shutdown()
        server.server_close()
