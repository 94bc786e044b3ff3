"""OpenCV backends: V4L2 devices, RTSP/HTTP streams and video files."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import cv2
import numpy as np

from edgeportrait.capture.base import CameraError, Pacer, SourceBase, SourceEnded
from edgeportrait.config.camera import CameraConfig
from edgeportrait.logsafe import redact

logger = logging.getLogger(__name__)

# RTSP over UDP loses packets on Wi-Fi and shows smeared frames; TCP is what an
# appliance wants. Only a default: a user's own OPENCV_FFMPEG_CAPTURE_OPTIONS wins.
os.environ.setdefault("OPENCV_FFMPEG_CAPTURE_OPTIONS", "rtsp_transport;tcp")


def _release(cap: cv2.VideoCapture | None) -> None:
    if cap is not None:
        cap.release()


class _CaptureSource(SourceBase):
    """A source that reads frames from one cv2.VideoCapture."""

    read_failed = "read failed"  # what a failed read means for this kind of source

    def __init__(self, cfg: CameraConfig, name: str) -> None:
        super().__init__(cfg, name)
        self._cap: cv2.VideoCapture | None = None

    def _grab(self) -> np.ndarray:
        assert self._cap is not None
        ok, frame = self._cap.read()
        if not ok or frame is None:
            raise CameraError(f"{self.name}: {self.read_failed}")
        return frame

    def _close(self) -> None:
        _release(self._cap)
        self._cap = None


class V4L2Source(_CaptureSource):
    """A V4L2 device (USB webcam, HDMI grabber, Pi camera through the V4L2 compat layer)."""

    read_failed = "read failed (device unplugged or stopped streaming)"

    def __init__(self, cfg: CameraConfig, device: str | int) -> None:
        self.device = device
        super().__init__(cfg, device if isinstance(device, str) else f"/dev/video{device}")

    def _open(self) -> None:
        target = self.device
        if isinstance(target, str) and not os.path.exists(target):
            raise CameraError(f"{self.name}: no such device")
        cap = cv2.VideoCapture(target, cv2.CAP_V4L2)
        if not cap.isOpened():
            _release(cap)
            raise CameraError(f"{self.name}: cannot open (busy, no permission, or not a capture device)")
        # MJPG first: most USB cameras deliver 1080p at 30 fps only compressed (YUYV manages ~5 fps)
        cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter.fourcc(*"MJPG"))
        cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.cfg.width)
        cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.cfg.height)
        cap.set(cv2.CAP_PROP_FPS, self.cfg.fps)
        # one buffered frame: we want the newest picture, not a queue of old ones
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        ok, frame = cap.read()
        if not ok or frame is None:
            _release(cap)
            raise CameraError(f"{self.name}: opened but delivers no frames (not a capture node?)")
        h, w = frame.shape[:2]
        if (w, h) != (self.cfg.width, self.cfg.height):
            logger.warning(
                "camera %s: asked for %dx%d, the device delivers %dx%d",
                self.name,
                self.cfg.width,
                self.cfg.height,
                w,
                h,
            )
        self._cap = cap


class StreamSource(_CaptureSource):
    """An RTSP/HTTP stream through OpenCV's FFmpeg backend."""

    read_failed = "stream ended or timed out"

    def __init__(self, cfg: CameraConfig, url: str) -> None:
        super().__init__(cfg, redact(url))
        self.url = url

    def _open(self) -> None:
        ms = int(self.cfg.open_timeout_s * 1000)
        # FFmpeg otherwise waits ~30 s on a dead host and forever on a stream that stops sending
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms]
        cap = cv2.VideoCapture(self.url, cv2.CAP_FFMPEG, params)
        if not cap.isOpened():
            _release(cap)
            raise CameraError(f"{self.name}: cannot open stream (host unreachable, wrong path or credentials)")
        self._cap = cap


class VideoFileSource(_CaptureSource):
    """A video file played like a camera: paced at ``camera.fps``, looped when ``camera.loop``."""

    file_backed = True

    def __init__(self, cfg: CameraConfig, path: str | Path) -> None:
        super().__init__(cfg, str(path))
        self.path = Path(path)
        self._pacer = Pacer(cfg.fps)
        self._frames_this_pass = 0
        self._first: np.ndarray | None = None

    def _open_cap(self) -> cv2.VideoCapture:
        try:
            self.path.stat()
        except FileNotFoundError:
            raise CameraError(f"{self.name}: no such file") from None
        except OSError as e:
            raise CameraError(f"{self.name}: cannot read: {e.strerror or e}") from None
        if not os.access(self.path, os.R_OK):
            raise CameraError(f"{self.name}: permission denied")
        cap = cv2.VideoCapture(str(self.path))
        if not cap.isOpened():
            _release(cap)
            raise CameraError(f"{self.name}: not a video file OpenCV can decode")
        return cap

    def _open(self) -> None:
        cap = self._open_cap()
        # decode one frame now: a file FFmpeg can open but not decode is "cannot open"
        # (offline, with the reason), not a camera that opens and then never delivers
        ok, frame = cap.read()
        if not ok or frame is None:
            _release(cap)
            raise CameraError(f"{self.name}: no decodable video frames")
        self._cap = cap
        self._first = frame
        self._frames_this_pass = 1

    def _grab(self) -> np.ndarray:
        assert self._cap is not None
        if not self._pacer.wait(self._cancel):
            raise CameraError(f"{self.name}: read interrupted")
        if self._first is not None:
            frame, self._first = self._first, None
            return frame
        ok, frame = self._cap.read()
        if not ok or frame is None:
            if not self.cfg.loop:
                raise SourceEnded(f"{self.name}: end of video (camera.loop is off)")
            if self._frames_this_pass == 0:
                # a file that yields nothing would otherwise loop forever without a frame
                raise CameraError(f"{self.name}: no decodable frames")
            # reopening is more reliable than seeking to frame 0 across containers and codecs
            _release(self._cap)
            self._cap = self._open_cap()
            self._frames_this_pass = 0
            ok, frame = self._cap.read()
            if not ok or frame is None:
                raise CameraError(f"{self.name}: no decodable frames after rewinding")
        self._frames_this_pass += 1
        return frame

    def _close(self) -> None:
        super()._close()
        self._first = None
