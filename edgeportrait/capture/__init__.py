"""Capture: camera backends behind one small interface, and the supervisor the daemon runs.

* :class:`Frame`, :class:`CameraError`, :class:`FrameSource` — the interface (:mod:`.base`).
* :func:`create_source` — ``camera.source`` → a backend (:mod:`.factory`): picamera2
  (:mod:`.picam`), V4L2 / RTSP / HTTP / video files (:mod:`.opencv`), image folders
  (:mod:`.folder`).
* :class:`Camera` — reader thread, stall watchdog, reopen with backoff, stats (:mod:`.camera`).
"""

from edgeportrait.capture.base import CameraError, Frame, FrameSource, SourceEnded, fit, orient
from edgeportrait.capture.camera import Camera, State
from edgeportrait.capture.factory import create_source, video_devices

__all__ = [
    "Camera",
    "CameraError",
    "Frame",
    "FrameSource",
    "SourceEnded",
    "State",
    "create_source",
    "fit",
    "orient",
    "video_devices",
]
