"""Portrait captures: trigger → next frame → full-resolution portrait → file → result.

Triggers (MQTT, the fleet topic, the interval timer) queue up to
``capture.queue_limit``; beyond that a trigger is refused as ``busy``. One
worker thread takes them in order: waits out the countdown, takes the next
frame after it, runs a fresh inference on that frame, composes it at full
resolution, writes the JPEG (whole or not at all), numbers the result and
hands it on to the outlets (:class:`CaptureOutlet`: the MQTT results, the kiosk
page). Captured portraits are never dropped silently: every trigger ends in a
portrait or an error.

This module knows nothing of MQTT: a failure is a :class:`CaptureError` whose
code is one of :class:`CaptureFailure` (the codes the contract publishes on
``B/error``); sizing the JPEG for a broker, spooling and publishing are the
outlets' business.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from edgeportrait.capture import Camera, CameraError, Frame
from edgeportrait.compose import compose, foreground_fraction
from edgeportrait.config import AppConfig, PortraitConfig
from edgeportrait.errors import Refusal
from edgeportrait.health import Window
from edgeportrait.imageio import encode_jpeg
from edgeportrait.logsafe import shown
from edgeportrait.results import CaptureStore, SeqCounter
from edgeportrait.segment.segmenter import Segmenter

logger = logging.getLogger(__name__)


class CaptureFailure(StrEnum):
    """Why a capture did not end in a portrait (the values are the contract's error codes)."""

    BUSY = "busy"  # capture.queue_limit triggers already waiting
    STOPPING = "stopping"
    CAMERA_UNAVAILABLE = "camera_unavailable"
    WRITE_FAILED = "write_failed"
    NOT_RECORDED = "spool_failed"  # neither the outlets' durable copy nor the seq file could be written
    FAILED = "capture_failed"  # inference or composing raised


class CaptureError(Refusal):
    def __init__(self, failure: CaptureFailure, detail: str, request_id: str | None = None) -> None:
        super().__init__(failure.value, detail, request_id)
        self.failure = failure


@dataclass
class CaptureRequest:
    trigger: str  # mqtt | interval | kiosk | cli
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    countdown_s: float | None = None
    settings: dict[str, Any] | None = None  # per-capture overrides, already checked
    response_topic: str | None = None
    correlation_data: bytes | None = None
    received: float = field(default_factory=time.monotonic)


@dataclass(frozen=True)
class Portrait:
    """A finished capture: the picture (array and full-size JPEG), where it is saved, how it was made."""

    request: CaptureRequest
    seq: int
    ts: dt.datetime
    image: np.ndarray
    jpeg: bytes
    path: Path
    foreground_fraction: float
    timings_ms: dict[str, float]
    model: str
    precision: str
    precision_reason: str
    device: str
    quality: int


class CaptureOutlet(Protocol):
    """Where captures go (the MQTT results, the kiosk page). Called on the capture thread, in order.

    ``record`` keeps a durable copy of a portrait before its number is committed and may
    raise ``OSError`` (the capture then decides what is safe); ``committed`` says the
    number is on disk (``recorded`` False: ``record`` failed, send it now without a copy).
    """

    def countdown(self, request: CaptureRequest, seconds: float) -> None: ...

    def record(self, portrait: Portrait) -> None: ...

    def committed(self, portrait: Portrait, recorded: bool) -> None: ...

    def failed(self, request_id: str | None, code: str, detail: str) -> None: ...


class Outlets:
    """Several outlets as one, in order; one that fails (other than ``record``) does not stop the rest."""

    def __init__(self, *outlets: CaptureOutlet) -> None:
        self._outlets = list(outlets)

    def add(self, outlet: CaptureOutlet) -> None:
        self._outlets.append(outlet)

    def countdown(self, request: CaptureRequest, seconds: float) -> None:
        self._each("countdown", request, seconds)

    def record(self, portrait: Portrait) -> None:
        for o in self._outlets:
            o.record(portrait)  # an OSError goes back to the capture

    def committed(self, portrait: Portrait, recorded: bool) -> None:
        self._each("committed", portrait, recorded)

    def failed(self, request_id: str | None, code: str, detail: str) -> None:
        self._each("failed", request_id, code, detail)

    def _each(self, name: str, *args: Any) -> None:
        for o in self._outlets:
            try:
                getattr(o, name)(*args)
            except Exception:
                logger.exception("capture outlet %s.%s failed", type(o).__name__, name)


class CaptureService:
    def __init__(
        self,
        camera: Camera,
        segmenter: Callable[[], AbstractContextManager[Segmenter]],
        config: Callable[[], AppConfig],
        store: CaptureStore,
        seq: SeqCounter,
        outlet: CaptureOutlet,
        quiet: Callable[[], contextlib.AbstractContextManager[None]] | None = None,
    ) -> None:
        self.camera = camera
        self._segmenter = segmenter
        self._config = config  # RuntimeSettings.snapshot: read once per capture
        self.store = store
        self.seq = seq
        self._outlet = outlet
        # keeps the live stream off the cores while a portrait is made (StreamPipeline.paused)
        self._quiet = quiet or contextlib.nullcontext
        limit = config().capture.queue_limit
        self._queue: queue.Queue[CaptureRequest | None] = queue.Queue(maxsize=limit)
        self._stop = threading.Event()
        self._rethink = threading.Event()  # wakes the interval timer: settings changed, or stop
        self._worker = threading.Thread(target=self._run, name="capture", daemon=True)
        self._timer = threading.Thread(target=self._interval_loop, name="capture-interval", daemon=True)
        self.made = 0
        self.failed = 0
        self.refused = 0
        self.latency_ms = Window(100)

    # -- life cycle -----------------------------------------------------------

    def start(self) -> None:
        self._worker.start()
        self._timer.start()

    def stop(self, timeout: float = 15.0) -> None:
        """Finish the capture in progress (countdown cut short); refuse what is still queued."""
        self._stop.set()
        self._rethink.set()
        while True:
            try:
                req = self._queue.get_nowait()
            except queue.Empty:
                break
            if req is not None:
                self._outlet.failed(req.id, CaptureFailure.STOPPING, "the daemon is stopping; capture not taken")
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(None)  # wake the worker
        self._worker.join(timeout)
        self._timer.join(1.0)

    def submit(self, req: CaptureRequest) -> None:
        """Queue a capture; ``CaptureError`` ``busy`` when ``capture.queue_limit`` are waiting."""
        if self._stop.is_set():
            raise CaptureError(CaptureFailure.STOPPING, "the daemon is stopping", req.id)
        try:
            self._queue.put_nowait(req)
        except queue.Full:
            self.refused += 1
            raise CaptureError(
                CaptureFailure.BUSY, f"{self._queue.maxsize} captures already waiting; try again later", req.id
            ) from None
        logger.info("capture %s queued (trigger %s)", shown(req.id), req.trigger)

    @property
    def waiting(self) -> int:
        return self._queue.qsize()

    def stats(self) -> dict[str, Any]:
        """The ``captures`` section of health."""
        return {
            "made": self.made,
            "failed": self.failed,
            "refused": self.refused,
            "waiting": self.waiting,
            "latency_ms_p50": self.latency_ms.percentile(50),
            "latency_ms_p95": self.latency_ms.percentile(95),
            "files_pruned": self.store.pruned,
        }

    # -- the worker ---------------------------------------------------------------

    def _run(self) -> None:
        while True:
            req = self._queue.get()
            if req is None:
                return
            try:
                self._take(req)
            except CaptureError as e:
                self.failed += 1
                logger.warning("capture %s failed: %s", shown(req.id), shown(e.detail, 500))
                self._outlet.failed(req.id, e.code, e.detail)
            except Exception as e:  # a capture failing must not end the worker
                self.failed += 1
                logger.exception("capture %s failed", shown(req.id))
                self._outlet.failed(req.id, CaptureFailure.FAILED, f"{type(e).__name__}: {e}")
            if self._stop.is_set() and self._queue.empty():
                return

    def _take(self, req: CaptureRequest) -> None:
        cfg = self._config()
        countdown = cfg.capture.countdown_s if req.countdown_s is None else req.countdown_s
        self._outlet.countdown(req, countdown)
        if countdown > 0:
            # a stop cuts the countdown short: the capture in progress still happens
            self._stop.wait(countdown)
        with self._quiet():
            self._shoot(req, cfg)

    def _shoot(self, req: CaptureRequest, cfg: AppConfig) -> None:
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        frame = self._frame(cfg, req)
        t1 = time.perf_counter()
        timings["frame"] = (t1 - t0) * 1000
        with self._segmenter() as segmenter:  # the model in use, kept open for this inference
            mask = segmenter.infer(frame.image)
        t2 = time.perf_counter()
        timings["segment"] = (t2 - t1) * 1000
        portrait_cfg, quality = self._settings_for(cfg, req)
        image = compose(frame.image, mask, portrait_cfg)
        t3 = time.perf_counter()
        timings["compose"] = (t3 - t2) * 1000
        full = encode_jpeg(image, quality)
        t4 = time.perf_counter()
        timings["encode"] = (t4 - t3) * 1000
        now = dt.datetime.now(dt.timezone.utc)
        # Only this thread numbers results. The number is committed last, once the
        # file is saved and the result handed on (recorded): a crash before that
        # leaves a file above the committed number, removed at the next start, and
        # never a number that subscribers would miss.
        seq = self.seq.last + 1
        try:
            path = self.store.write(f"{now:%Y%m%d-%H%M%S}-{seq:06d}.jpg", full)
        except OSError as e:
            raise CaptureError(
                CaptureFailure.WRITE_FAILED,
                f"cannot save the portrait in {self.store.dir}: {e.strerror or e}",
                req.id,
            ) from None
        t5 = time.perf_counter()
        timings["write"] = (t5 - t4) * 1000
        timings["total"] = (t5 - t0) * 1000
        portrait = Portrait(
            request=req,
            seq=seq,
            ts=now,
            image=image,
            jpeg=full,
            path=path,
            foreground_fraction=round(foreground_fraction(mask, portrait_cfg), 4),
            timings_ms={k: round(v, 1) for k, v in timings.items()},
            model=segmenter.name,
            precision=segmenter.precision,
            precision_reason=segmenter.precision_reason,
            device=segmenter.device,
            quality=quality,
        )
        # A result may leave the device only once its number is on disk (in the outlets'
        # durable copy or the seq file): a start after a crash numbers from what is on disk,
        # and removes portraits above it as captures cut short, so a number published but
        # not recorded would be handed out again, and its portrait deleted.
        record_error: OSError | None = None
        try:
            self._outlet.record(portrait)  # the spool (durable), when MQTT is on
        except OSError as e:
            record_error = e
        try:
            self.seq.commit(seq)
        except OSError as e:
            if record_error is not None:
                # neither the durable copy nor the seq file: the state directory is unusable.
                # The result cannot be published safely; its portrait would be taken for
                # an unfinished capture at the next start, so it goes now. One answer: this error.
                self._discard(path)
                raise CaptureError(
                    CaptureFailure.NOT_RECORDED,
                    f"cannot record the result in the state directory ({e.strerror or e}); "
                    "nothing published and the portrait not kept",
                    req.id,
                ) from None
            # the result is recorded and waits there until its number can be written;
            # numbering goes on in memory so this run never repeats a number
            logger.error("cannot record seq %d in the state directory: %s; its result waits in the spool",
                         seq, e.strerror or e)
            self.seq.bump_to(seq)
        if record_error is not None:
            # the number is on disk, the durable copy is not: the outlets send it now
            logger.error("recording the result failed (%s); publishing seq %d without a durable copy",
                         record_error.strerror or record_error, seq)
        self._outlet.committed(portrait, record_error is None)
        self.made += 1
        self.latency_ms.add((time.monotonic() - req.received) * 1000)
        logger.info("capture %s: seq %d, %s (%d bytes)", shown(req.id), seq, shown(path), len(full))

    def _discard(self, path: Path) -> None:
        try:
            path.unlink()
        except OSError as e:
            logger.warning("%s: cannot remove: %s", shown(path), e.strerror or e)

    def _frame(self, cfg: AppConfig, req: CaptureRequest) -> Frame:
        timeout = cfg.capture.timeout_s
        try:
            if cfg.camera.still_width is not None:
                return self.camera.capture_still(timeout)
            # "the next frame after the trigger (and countdown)": newer than now
            return self.camera.wait_frame(time.monotonic(), timeout)
        except CameraError as e:
            raise CaptureError(CaptureFailure.CAMERA_UNAVAILABLE, str(e), req.id) from None

    @staticmethod
    def _settings_for(cfg: AppConfig, req: CaptureRequest) -> tuple[PortraitConfig, int]:
        portrait = cfg.portrait
        quality = cfg.capture.jpeg_quality
        if req.settings:
            # already validated as a whole config when the command arrived
            if "portrait" in req.settings:
                portrait = PortraitConfig.model_validate({**portrait.model_dump(), **req.settings["portrait"]})
            quality = int(req.settings.get("capture", {}).get("jpeg_quality", quality))
        return portrait, quality

    # -- interval captures ------------------------------------------------------------

    def settings_changed(self, change: object) -> None:
        """A ``RuntimeSettings`` subscriber: the interval timer looks at ``capture.interval_s`` again."""
        self._rethink.set()

    def _interval_loop(self) -> None:
        next_at: float | None = None
        while not self._stop.is_set():
            interval = self._config().capture.interval_s
            now = time.monotonic()
            if interval <= 0:
                next_at = None
                self._rethink.wait()  # until the interval is switched on (or a stop)
                self._rethink.clear()
                continue
            if next_at is None or next_at > now + interval:  # (re)started or interval shortened
                next_at = now + interval
            if now < next_at:
                if self._rethink.wait(next_at - now):
                    self._rethink.clear()
                continue
            next_at += interval
            if next_at < now:  # fell behind (a long capture): do not fire a burst
                next_at = now + interval
            try:
                self.submit(CaptureRequest(trigger="interval"))
            except CaptureError as e:
                logger.warning("interval capture skipped: %s", e.detail)
