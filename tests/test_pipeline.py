"""The stream pipeline with stand-in stages: mask reuse every N frames, drop-and-count, no stepping back."""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Any

import numpy as np

from edgeportrait.capture import Frame
from edgeportrait.config import AppConfig
from edgeportrait.pipeline import IDLE_FPS, StreamPipeline


class FakeCamera:
    def __init__(self) -> None:
        self.listeners: list[Any] = []
        self.dropped = 0

    def add_listener(self, fn: Any) -> None:
        self.listeners.append(fn)

    def remove_listener(self, fn: Any) -> None:
        self.listeners.remove(fn)

    def count_dropped(self, n: int = 1) -> None:
        self.dropped += n

    def push(self, index: int) -> None:
        frame = Frame(np.full((4, 4, 3), index % 256, np.uint8), time.monotonic(), index)
        for fn in self.listeners:
            fn(frame)


class FakeSegmenter:
    def __init__(self) -> None:
        self.seen: list[int] = []
        self.gate = threading.Event()
        self.gate.set()

    def submit(self, image: np.ndarray, frame: Frame, callback: Any) -> None:
        self.gate.wait(10)  # like a busy device: submit blocks while every request is in use
        self.seen.append(frame.index)
        callback(np.full((2, 2), float(frame.index), np.float32), frame, None)


class FakeCompositor:
    def __init__(self) -> None:
        self.calls: list[tuple[int, float]] = []

    def compose(self, image: np.ndarray, mask: np.ndarray, settings: object = None) -> np.ndarray:
        self.calls.append((int(image[0, 0, 0]), float(mask[0, 0])))
        return image


def _wait(pred: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.005)


class FakePreview:
    """A preview with a viewer (``watching``) that takes every frame offered."""

    def __init__(self, watching: bool = True) -> None:
        self.watching = watching
        self.offered: list[tuple[tuple[int, ...], float]] = []

    def due(self) -> bool:
        return self.watching

    def offer(self, image: np.ndarray, captured_ts: float) -> bool:
        self.offered.append((image.shape, captured_ts))
        return True


def _pipeline(
    preview: FakePreview | None = None, size: tuple[int, int] = (1280, 720), **cfg: Any
) -> tuple[StreamPipeline, FakeCamera, FakeSegmenter, FakeCompositor]:
    cam, seg, comp = FakeCamera(), FakeSegmenter(), FakeCompositor()
    flowed: list[int] = []
    settings = AppConfig.model_validate(
        {"pipeline": {"max_fps": 120, **cfg}, "preview": {"width": size[0], "height": size[1]}}
    )
    p = StreamPipeline(
        cam,  # type: ignore[arg-type]
        lambda: contextlib.nullcontext(seg),  # type: ignore[arg-type,return-value]
        comp,  # type: ignore[arg-type]
        lambda: settings,
        on_frame_done=lambda: flowed.append(1),
        preview=preview if preview is not None else FakePreview(),
    )
    return p, cam, seg, comp


def test_model_runs_every_nth_frame_and_the_mask_is_reused_between() -> None:
    """segment_every=3: frames 0, 3, 6 are segmented; 1-2 and 4-5 are composed with the previous mask."""
    p, cam, seg, comp = _pipeline(segment_every=3)
    p.start()
    try:
        for i in range(9):
            cam.push(i)
            _wait(lambda i=i: len(comp.calls) == i + 1)
            time.sleep(1 / 100)  # stay under max_fps so no frame is skipped on purpose
    finally:
        p.stop()
    assert seg.seen == [0, 3, 6]
    assert comp.calls == [(i, float(i - i % 3)) for i in range(9)]
    assert p.stats()["frames"] == 9 and cam.dropped == 0


def test_slow_inference_drops_and_counts_frames_instead_of_queueing() -> None:
    """While inference is stuck, new frames replace old ones in a bounded queue; each drop is counted."""
    p, cam, seg, comp = _pipeline(queue_size=2)
    seg.gate.clear()
    p.start()
    try:
        cam.push(0)
        _wait(lambda: p._frames.empty())  # frame 0 is inside the (blocked) submit
        for i in range(1, 11):
            cam.push(i)
        assert cam.dropped == 8 and p.stats()["dropped"] == 8  # 10 pushed, 2 fit in the queue
        seg.gate.set()
        _wait(lambda: bool(comp.calls) and comp.calls[-1][0] == 10)
    finally:
        p.stop()
    shown = [c[0] for c in comp.calls]
    # the newest frame got through, in order, and every frame was either shown or counted as dropped
    assert shown == sorted(set(shown)) and shown[-1] == 10
    assert len(shown) + cam.dropped == 11 and p.stats()["dropped"] == cam.dropped


def test_frame_overtaken_by_a_newer_one_is_dropped_as_stale() -> None:
    """A mask that arrives for an older frame than one already composed is not shown (no stepping back)."""
    p, cam, seg, comp = _pipeline()
    p.start()
    try:
        frame5 = Frame(np.full((4, 4, 3), 5, np.uint8), time.monotonic(), 5)
        frame3 = Frame(np.full((4, 4, 3), 3, np.uint8), time.monotonic(), 3)
        p._on_mask(np.zeros((2, 2), np.float32), frame5, None)
        _wait(lambda: len(comp.calls) == 1)
        p._on_mask(np.zeros((2, 2), np.float32), frame3, None)
        _wait(lambda: cam.dropped == 1)
    finally:
        p.stop()
    assert [c[0] for c in comp.calls] == [5]


def test_paused_stream_leaves_the_cores_to_a_capture_and_resumes() -> None:
    """Inside paused() frames start no inference and are not composed (counted as skipped); after it, they are."""
    p, cam, seg, comp = _pipeline()
    p.start()
    try:
        with p.paused():
            for i in range(5):
                cam.push(i)
                time.sleep(1 / 100)
            _wait(lambda: p.stats()["skipped"] == 5)
            assert seg.seen == [] and comp.calls == []
        cam.push(5)
        _wait(lambda: len(comp.calls) == 1)
    finally:
        p.stop()
    assert seg.seen == [5] and comp.calls[0][0] == 5


def test_nothing_is_composed_while_nobody_watches_and_inference_slows_to_the_idle_rate() -> None:
    """No viewer: frames still get masks (at IDLE_FPS, the rest skipped) but none is composed or offered."""
    preview = FakePreview(watching=False)
    p, cam, seg, comp = _pipeline(preview)
    p.start()
    try:
        t0 = time.monotonic()
        for i in range(100):
            cam.push(i)
            time.sleep(1 / 100)
        _wait(lambda: p.stats()["frames"] + p.stats()["skipped"] + cam.dropped == 100)
        elapsed = time.monotonic() - t0
    finally:
        p.stop()
    assert comp.calls == [] and preview.offered == []
    # 100 frames in ~1 s at 120 max_fps: only the idle rate (2/s) is segmented (the pacing
    # lets the first frames through as a burst of up to three: it catches up one period)
    assert 1 <= len(seg.seen) <= IDLE_FPS * elapsed + 3
    assert p.stats()["composed"] == 0


def test_a_preview_frame_is_composed_at_the_preview_size_from_the_camera_frame() -> None:
    """The camera frame is scaled down to fit the preview before composing (aspect kept), never up."""
    preview = FakePreview()
    p, cam, seg, comp = _pipeline(preview, size=(64, 64))
    p.start()
    try:
        p._on_frame(Frame(np.full((100, 200, 3), 1, np.uint8), time.monotonic(), 1))
        _wait(lambda: len(preview.offered) == 1)
    finally:
        p.stop()
    assert preview.offered[0][0] == (32, 64, 3)  # 200×100 into a 64×64 preview: 64×32
    assert p.stats()["composed"] == 1
