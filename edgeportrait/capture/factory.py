"""``camera.source`` → a :class:`~edgeportrait.capture.base.FrameSource`."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

from edgeportrait.camera_source import STREAM_SCHEMES, is_stream, picamera2_index
from edgeportrait.capture.base import CameraError, FrameSource
from edgeportrait.capture.folder import ImageFolderSource
from edgeportrait.capture.opencv import StreamSource, V4L2Source, VideoFileSource
from edgeportrait.capture.picam import Picamera2Source, picamera2_cameras
from edgeportrait.config.camera import CameraConfig
from edgeportrait.logsafe import redact

logger = logging.getLogger(__name__)

# Video nodes that are no use to cv2's V4L2 backend, by their sysfs name: memory-to-memory
# codecs and ISPs (Pi: bcm2835-codec/-isp, rpi-hevc, pispbe; SoC decoders), and the Pi's CSI
# receivers (unicam, rp1-cfe), which deliver frames only once libcamera has configured the
# sensor — a Pi camera module is used through picamera2, not through these nodes.
_NOT_A_CAMERA = re.compile(r"bcm2835-(codec|isp)|rpi-hevc|pispbe|rp1-cfe|unicam|hantro|meson|rkvdec|cedrus", re.I)
_LIBCAMERA_NODE = re.compile(r"rp1-cfe|unicam", re.I)


def create_source(cfg: CameraConfig) -> FrameSource:
    """The backend ``cfg.source`` names (not opened, except what ``auto`` had to open to decide).

    * ``auto`` — picamera2 when it is installed and sees a camera, else the first
      ``/dev/videoN`` that opens and delivers a frame, else CameraError listing what was tried.
    * ``picamera2`` (or ``picamera2:N`` for camera N) — a Raspberry Pi camera module.
    * ``/dev/videoN``, any other ``/dev/…`` path (``/dev/v4l/by-id/…`` is stable across
      reboots) or a bare number ``N`` — a V4L2 device.
    * ``rtsp://``, ``rtsps://``, ``rtmp://``, ``http(s)://`` — a network stream (FFmpeg).
    * an existing folder — its images, in name order (:mod:`.folder`).
    * an existing file — a video file, paced at ``camera.fps``.
    """
    source = cfg.source.strip()
    if source == "auto":
        return _auto(cfg)
    camera = picamera2_index(source)
    if camera is not None:
        return Picamera2Source(cfg, camera)
    if source.isdigit():
        return V4L2Source(cfg, int(source))
    if source.startswith("/dev/"):
        return V4L2Source(cfg, source)
    if is_stream(source):
        return StreamSource(cfg, source)
    if "://" in source:
        use = ", ".join(f"{s}://" for s in STREAM_SCHEMES)
        raise CameraError(f"{redact(source)}: unsupported URL scheme (use {use})")
    path = Path(source).expanduser()
    if path.is_dir():
        return ImageFolderSource(cfg, path)
    if path.is_file():
        return VideoFileSource(cfg, path)
    if source.endswith("/"):
        raise CameraError(f"{source}: folder does not exist")
    if path.exists():
        raise CameraError(f"{source}: neither a regular file nor a folder")
    raise CameraError(f"{source}: no such file or folder")


def video_devices() -> list[str]:
    """``/dev/videoN`` nodes that may be cameras for OpenCV's V4L2 backend, in number order."""
    return _scan_video_devices()[0]


def _scan_video_devices() -> tuple[list[str], list[str]]:
    """(candidate nodes, names of libcamera-only nodes that were skipped)."""
    found: list[tuple[int, str]] = []
    libcamera: list[str] = []
    try:
        names = os.listdir("/dev")
    except OSError:
        return [], []
    for name in names:
        m = re.fullmatch(r"video(\d+)", name)
        if not m:
            continue
        label = _sysfs_name(name)
        if label and _LIBCAMERA_NODE.search(label):
            libcamera.append(f"/dev/{name} ({label})")
        if _looks_like_camera(name, label):
            found.append((int(m.group(1)), f"/dev/{name}"))
    return [dev for _, dev in sorted(found)], sorted(libcamera)


def _sysfs_name(node: str) -> str:
    try:
        return (Path("/sys/class/video4linux") / node / "name").read_text().strip()
    except OSError:
        return ""  # no sysfs (a container): let the open attempt decide


def _looks_like_camera(node: str, label: str) -> bool:
    try:
        # a UVC camera has two nodes; index 1 is its metadata stream, not pictures
        if (Path("/sys/class/video4linux") / node / "index").read_text().strip() not in ("", "0"):
            return False
    except OSError:
        pass
    return not (label and _NOT_A_CAMERA.search(label))


def _auto(cfg: CameraConfig) -> FrameSource:
    tried: list[str] = []
    cameras = picamera2_cameras()
    if cameras:
        logger.info("camera auto: picamera2 sees %d camera(s); using camera 0", len(cameras))
        return Picamera2Source(cfg, 0)
    tried.append("picamera2: not installed or no camera")
    devices, libcamera_nodes = _scan_video_devices()
    if libcamera_nodes:
        tried.append(
            f"{', '.join(libcamera_nodes)} need libcamera: install python3-picamera2 "
            "(venv with --system-site-packages) or set camera.source: picamera2"
        )
    for dev in devices:
        src = V4L2Source(cfg, dev)
        try:
            src.open()
        except CameraError as e:
            tried.append(str(e))
            continue
        logger.info("camera auto: using %s", dev)
        return src
    if not devices:
        tried.append("no /dev/video* devices")
    raise CameraError("auto: no camera found (" + "; ".join(tried) + ")")
