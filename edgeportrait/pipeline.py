"""The live stream: camera frames → bounded queue → segment → compose.

Three stages, each on its own thread, joined by small bounded queues:

1. the camera's reader thread hands each frame to :meth:`StreamPipeline._on_frame`,
   which never blocks: when the queue is full the oldest frame is dropped and
   counted (camera frames are perishable);
2. the feeder thread paces frames to ``pipeline.max_fps``, submits every
   ``segment_every``-th one for asynchronous inference (up to
   ``model.infer_requests`` in flight) and passes the others on with the last mask;
3. the compose thread composes each frame with its mask; a frame older than
   one already composed (inference results can finish out of order) is stale,
   dropped and counted.

The stream feeds the live preview (the kiosk page, ``/stream.mjpg``): a frame
is composed only when the preview wants one (:class:`PreviewSink.due`: a
viewer is connected and ``preview.max_fps`` allows it), at the preview's size
(the camera frame is scaled down *before* composing, so a 720p preview of a
1080p camera composes 720p), with the same compositor and settings as a
capture and the temporal smoothing between frames. While nobody watches,
nothing is composed: the stream segments ``IDLE_FPS`` frames a second, which
keeps the mask warm (the first preview frame has one), the inference figures
and the watchdog alive. Captures do their own full-resolution inference.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any, Protocol

import numpy as np

from edgeportrait.capture import Camera, Frame
from edgeportrait.compose import Compositor
from edgeportrait.config import AppConfig
from edgeportrait.health import RateMeter, Window
from edgeportrait.imageio import fit_within
from edgeportrait.segment.segmenter import Segmenter

logger = logging.getLogger(__name__)

_Item = tuple[Frame, np.ndarray]

# frames segmented per second while no preview is wanted
IDLE_FPS = 2.0


class PreviewSink(Protocol):
    """Where composed stream frames go (``web.preview.PreviewEncoder``)."""

    def due(self) -> bool:
        """A preview frame is wanted now (a viewer, within max_fps)."""
        ...

    def offer(self, image: np.ndarray, captured_ts: float) -> bool:
        """Encode and publish a composed frame; False if it was not wanted after all."""
        ...


def _put_newest(q: queue.Queue[Any], item: Any) -> int:
    """Put without blocking; when full, drop the oldest entries first. Returns how many were dropped."""
    dropped = 0
    while True:
        try:
            q.put_nowait(item)
            return dropped
        except queue.Full:
            try:
                q.get_nowait()
                dropped += 1
            except queue.Empty:
                pass


class StreamPipeline:
    def __init__(
        self,
        camera: Camera,
        segmenter: Callable[[], AbstractContextManager[Segmenter]],
        compositor: Compositor,
        settings: Callable[[], AppConfig],
        on_frame_done: Callable[[], None] | None = None,
        preview: PreviewSink | None = None,
    ) -> None:
        self.camera = camera
        self._segmenter = segmenter  # borrows the model in use (it may be switched at run time)
        self.compositor = compositor
        # RuntimeSettings.snapshot: each stage reads it once per frame, so a change
        # applies from the next frame and a frame never sees half of one
        self._settings = settings
        self._on_frame_done = on_frame_done
        self.preview = preview
        size = settings().pipeline.queue_size  # (not a runtime setting)
        # None in a queue tells its stage to end (stop)
        self._frames: queue.Queue[Frame | None] = queue.Queue(maxsize=size)
        self._masked: queue.Queue[_Item | None] = queue.Queue(maxsize=size)
        self._stop = threading.Event()
        self._held = threading.Event()  # set while a capture runs (see paused)
        self._threads: list[threading.Thread] = []
        self._last_mask: np.ndarray | None = None
        self._last_composed = -1
        self._lock = threading.Lock()
        self.dropped = 0  # frames lost to full queues or staleness (also counted in camera stats)
        self.skipped = 0  # frames left out on purpose to stay within max_fps
        self.frames = 0  # frames through the stream (a mask each)
        self.composed = 0  # of them, composed for the preview
        self.errors = 0
        self.fps = RateMeter()
        self.latency_ms = Window()
        self.compose_ms = Window()  # scale to the preview size + compose, per preview frame

    # -- life cycle -----------------------------------------------------------

    def start(self) -> None:
        self._stop.clear()
        for name, target in (("pipeline-feed", self._feed_loop), ("pipeline-compose", self._compose_loop)):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)
        self.camera.add_listener(self._on_frame)

    def stop(self, timeout: float = 3.0) -> None:
        """Reverse of start: stop taking frames, stop the stages, let in-flight inference finish."""
        with contextlib.suppress(ValueError):
            self.camera.remove_listener(self._on_frame)
        self._stop.set()
        # wake each stage (a late frame or mask may push its None out of a full queue; the
        # stage then finds _stop set after that item)
        _put_newest(self._frames, None)
        _put_newest(self._masked, None)
        for t in self._threads:
            t.join(timeout)
        self._threads.clear()

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """While inside, the stream starts no inference and composes nothing (frames count as skipped).

        A capture's full-resolution inference and compose then have the cores to themselves: on two
        cores the stream's own inference and compose (every frame at max_fps) made them take two to
        three times as long as alone. Only captures pause, one at a time.
        """
        self._held.set()
        try:
            yield
        finally:
            self._held.clear()

    # -- stage 1: camera reader thread (must not block) -------------------------

    def _on_frame(self, frame: Frame) -> None:
        self._drop(_put_newest(self._frames, frame))

    def _drop(self, n: int) -> None:
        if n:
            with self._lock:
                self.dropped += n
            self.camera.count_dropped(n)

    # -- stage 2: pacing and inference -------------------------------------------

    def _feed_loop(self) -> None:
        next_due = 0.0
        n = 0
        while True:
            frame = self._frames.get()
            if frame is None or self._stop.is_set():  # stop (see stop)
                return
            cfg = self._settings().pipeline
            now = time.monotonic()
            wanted = self.preview is not None and self.preview.due()
            # composed frames at max_fps while the preview wants them; else a few masks a second
            rate = cfg.max_fps if wanted else min(cfg.max_fps, IDLE_FPS)
            if wanted and next_due > now + 1.0 / rate:
                next_due = now  # a viewer came while idling: no idle period to wait out
            period = 1.0 / rate
            # a frame a little early (camera jitter) counts as on time: with the camera at
            # max_fps, a strict check skipped a third of the frames (60 fps → 40 measured)
            if now < next_due - period / 4 or self._held.is_set():
                with self._lock:
                    self.skipped += 1
                continue
            # schedule from the due time, not from now, so the rate holds on average
            next_due = max(next_due + period, now - period)
            mask = self._last_mask
            if mask is None or n % cfg.segment_every == 0:
                try:
                    # blocks while every infer request is busy: this is the back-pressure
                    # that makes stage 1 drop frames instead of piling them up
                    with self._segmenter() as seg:
                        seg.submit(frame.image, frame, self._on_mask)
                except Exception:
                    logger.exception("pipeline: inference submit failed")
                    with self._lock:
                        self.errors += 1
                    self._stop.wait(0.5)
            else:
                self._drop(_put_newest(self._masked, (frame, mask)))
            n += 1

    def _on_mask(self, mask: np.ndarray | None, frame: Frame, error: BaseException | None) -> None:
        # OpenVINO callback thread: hand over and return
        if error is not None or mask is None:
            with self._lock:
                self.errors += 1
            logger.warning("pipeline: inference failed for frame %d: %s", frame.index, error)
            return
        self._last_mask = mask
        self._drop(_put_newest(self._masked, (frame, mask)))

    # -- stage 3: composing ----------------------------------------------------------

    def _compose_loop(self) -> None:
        while True:
            item = self._masked.get()
            if item is None or self._stop.is_set():  # stop (see stop)
                return
            frame, mask = item
            if frame.index <= self._last_composed:
                self._drop(1)  # overtaken by a newer frame: showing it would step back in time
                continue
            if self._held.is_set():
                with self._lock:
                    self.skipped += 1
                continue
            try:
                self._preview(frame, mask)
            except Exception:
                logger.exception("pipeline: composing frame %d failed", frame.index)
                with self._lock:
                    self.errors += 1
                continue
            self._last_composed = frame.index
            self.frames += 1
            self.latency_ms.add((time.monotonic() - frame.ts) * 1000.0)
            self.fps.tick()
            if self._on_frame_done is not None:
                self._on_frame_done()

    def _preview(self, frame: Frame, mask: np.ndarray) -> None:
        """Compose ``frame`` at the preview's size and hand it to the preview, if one is wanted now."""
        preview = self.preview
        if preview is None or not preview.due():
            return  # nobody watches: the mask kept the stream warm, nothing to compose
        snap = self._settings()
        image = fit_within(frame.image, snap.preview.width, snap.preview.height)
        t0 = time.perf_counter()
        composed = self.compositor.compose(image, mask, snap.portrait)
        self.compose_ms.add((time.perf_counter() - t0) * 1000.0)
        if preview.offer(composed, frame.ts):
            self.composed += 1

    def stats(self) -> dict[str, Any]:
        return {
            "fps": self.fps.rate(),
            "latency_ms_p50": self.latency_ms.percentile(50),
            "latency_ms_p95": self.latency_ms.percentile(95),
            "frames": self.frames,
            "composed": self.composed,
            "compose_ms_p50": self.compose_ms.percentile(50),
            "dropped": self.dropped,
            "skipped": self.skipped,
            "errors": self.errors,
        }
