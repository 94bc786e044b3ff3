"""What every frame source shares: the Frame, the error, orientation, fitting and pacing.

A backend implements :class:`SourceBase` by providing ``_open``, ``_grab`` and
``_close`` (and ``_grab_still`` when a still differs from a stream frame);
:meth:`SourceBase.read` then numbers, timestamps and orients every frame, so
rotation and mirroring happen in exactly one place for all backends.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import cv2
import numpy as np

from edgeportrait.config.camera import CameraConfig

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Frame:
    """One picture from a camera.

    ``image``: BGR uint8, H×W×3, already rotated/flipped per ``camera.rotate``/``camera.flip``.
    ``ts``: ``time.monotonic()`` when it was captured.
    ``index``: frame number — per source from a :class:`FrameSource`; from a
    :class:`~edgeportrait.capture.camera.Camera` a camera-wide number that keeps
    increasing across reconnects (so "newer than index N" stays meaningful).

    Stream frames from a Camera are shared by every listener and ``latest()``, so
    their ``image`` is read-only: copy it before drawing on it.
    """

    image: np.ndarray
    ts: float
    index: int

    @property
    def width(self) -> int:
        return int(self.image.shape[1])

    @property
    def height(self) -> int:
        return int(self.image.shape[0])


class CameraError(Exception):
    """Opening or reading a camera failed; the message names the source and says why."""


class SourceEnded(CameraError):
    """A video file or image folder reached its end and ``camera.loop`` is off: not a fault to retry."""


@runtime_checkable
class FrameSource(Protocol):
    """One camera backend. Not thread-safe: one thread opens, reads and closes it.

    ``interrupt()`` is the exception: any thread may call it to make a blocked
    ``read()`` return (with CameraError) as soon as the backend allows.
    """

    name: str

    def open(self) -> None: ...

    def read(self) -> Frame: ...

    def capture_still(self) -> Frame: ...

    def close(self) -> None: ...

    def interrupt(self) -> None: ...


_ROTATE = {90: cv2.ROTATE_90_CLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_COUNTERCLOCKWISE}
_FLIP = {"horizontal": 1, "vertical": 0, "both": -1}


def orient(image: np.ndarray, rotate: int, flip: str) -> np.ndarray:
    """Rotate clockwise by ``rotate`` degrees, then mirror per ``flip`` (a camera's mounting)."""
    if rotate:
        image = cv2.rotate(image, _ROTATE[rotate])
    if flip != "none":
        image = cv2.flip(image, _FLIP[flip])
    return image


def fit(image: np.ndarray, width: int, height: int, how: str) -> np.ndarray:
    """Make ``image`` exactly width×height: ``contain`` (letterbox), ``cover`` (crop) or ``stretch``."""
    h, w = image.shape[:2]
    if (w, h) == (width, height):
        return image
    if how == "stretch":
        return cv2.resize(image, (width, height), interpolation=_interp(w, width))
    scale = min(width / w, height / h) if how == "contain" else max(width / w, height / h)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    scaled = cv2.resize(image, (nw, nh), interpolation=_interp(w, nw))
    if how == "cover":
        x, y = (nw - width) // 2, (nh - height) // 2
        return np.ascontiguousarray(scaled[y : y + height, x : x + width])
    out = np.zeros((height, width, 3), np.uint8)
    x, y = (width - nw) // 2, (height - nh) // 2
    out[y : y + nh, x : x + nw] = scaled
    return out


def _interp(src: int, dst: int) -> int:
    # INTER_AREA is the one that does not alias when shrinking; it is slow and blurry when enlarging
    return cv2.INTER_AREA if dst < src else cv2.INTER_LINEAR


def as_bgr(image: np.ndarray, name: str) -> np.ndarray:
    """Normalise what a backend delivered to BGR uint8 H×W×3, or raise CameraError."""
    if image is None or not isinstance(image, np.ndarray) or image.size == 0:
        raise CameraError(f"{name}: delivered an empty frame")
    if image.dtype != np.uint8:
        raise CameraError(f"{name}: unsupported frame type {image.dtype}")
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if image.ndim == 3 and image.shape[2] == 3:
        return image
    raise CameraError(f"{name}: unsupported frame shape {image.shape}")


class Pacer:
    """Releases one tick every 1/fps seconds, so a file behaves like a camera.

    When the consumer falls behind, ticks are not saved up: the schedule restarts
    from now, so a slow reader never gets a burst of instant frames afterwards.
    ``wait`` returns False when ``cancel`` was set (stop/interrupt) meanwhile.
    """

    def __init__(self, fps: float) -> None:
        self.period = 1.0 / fps
        self._next: float | None = None

    def wait(self, cancel: threading.Event) -> bool:
        now = time.monotonic()
        if self._next is None or self._next < now - self.period:
            self._next = now
        delay = self._next - now
        self._next += self.period
        if delay > 0:
            return not cancel.wait(delay)
        return not cancel.is_set()


class SourceBase:
    """The shared half of every backend: numbering, timestamps, orientation, interrupt.

    Subclasses implement ``_open()``, ``_grab() -> np.ndarray`` (any size, BGR),
    ``_close()`` and optionally ``_grab_still()``. ``_grab`` should check
    ``self._cancel`` where it waits, so :meth:`interrupt` can cut a wait short.
    """

    #: file-backed sources scale to width×height and are paced at cfg.fps
    file_backed = False

    def __init__(self, cfg: CameraConfig, name: str) -> None:
        self.cfg = cfg
        self.name = name
        self._index = 0
        self._cancel = threading.Event()
        self._opened = False

    def open(self) -> None:
        """Open the device; a no-op when already open (``auto`` hands over an opened source)."""
        if self._opened:
            return
        self._cancel.clear()
        self._open()
        self._opened = True
        logger.info("camera %s opened", self.name)

    def read(self) -> Frame:
        if not self._opened:
            raise CameraError(f"{self.name}: not open")
        if self._cancel.is_set():
            raise CameraError(f"{self.name}: read interrupted")
        return self._frame(self._grab())

    def capture_still(self) -> Frame:
        if not self._opened:
            raise CameraError(f"{self.name}: not open")
        return self._frame(self._grab_still())

    def close(self) -> None:
        if self._opened:
            self._opened = False
            try:
                self._close()
            except Exception as e:  # closing a vanished device may fail; it is gone either way
                logger.debug("camera %s: error while closing: %s", self.name, e)
            logger.info("camera %s closed", self.name)

    def interrupt(self) -> None:
        self._cancel.set()

    def _frame(self, raw: np.ndarray) -> Frame:
        ts = time.monotonic()
        image = as_bgr(raw, self.name)
        if self.file_backed:
            image = fit(image, self.cfg.width, self.cfg.height, self.cfg.fit)
        image = orient(image, self.cfg.rotate, self.cfg.flip)
        self._index += 1
        return Frame(image=image, ts=ts, index=self._index)

    # --- for subclasses -------------------------------------------------------------
    def _open(self) -> None:
        raise NotImplementedError

    def _grab(self) -> np.ndarray:
        raise NotImplementedError

    def _grab_still(self) -> np.ndarray:
        return self._grab()

    def _close(self) -> None:
        raise NotImplementedError
