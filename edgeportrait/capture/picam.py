"""Raspberry Pi camera modules through picamera2 (libcamera).

picamera2 exists only on Raspberry Pi OS (``apt install python3-picamera2``),
so it is imported when a source is opened, never at package import. The video
stream runs at ``camera.width``×``camera.height``/``camera.fps``; a still
(``capture_still``) switches to a still configuration at
``camera.still_width``×``camera.still_height`` (default: the stream size) for
one frame and back, which is how a booth gets a sharper portrait than its
preview stream.

Colour order: picamera2 names formats after libcamera/DRM fourccs, which are
little-endian, so ``"RGB888"`` is stored B, G, R in memory — exactly OpenCV's
BGR — while ``"BGR888"`` is stored R, G, B. We ask for ``RGB888`` and use the
arrays as they come, without a copy or a channel swap.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from edgeportrait.capture.base import CameraError, SourceBase
from edgeportrait.config.camera import CameraConfig

logger = logging.getLogger(__name__)

#: the picamera2 format whose memory layout is OpenCV's BGR (see the module docstring)
OPENCV_BGR_FORMAT = "RGB888"


def import_picamera2() -> Any:
    """The Picamera2 class, or CameraError saying how to get it."""
    try:
        from picamera2 import Picamera2
    except ImportError as e:
        raise CameraError(
            f"picamera2: not available ({e}); on Raspberry Pi OS: sudo apt install python3-picamera2 "
            "and create the venv with --system-site-packages"
        ) from None
    return Picamera2


def picamera2_cameras() -> list[dict[str, Any]]:
    """The cameras libcamera sees ([] when picamera2 is missing or finds none)."""
    try:
        picamera2 = import_picamera2()
        return list(picamera2.global_camera_info())
    except CameraError:
        return []
    except Exception as e:  # libcamera errors are not ImportError; "no camera" is the honest answer
        logger.debug("picamera2: listing cameras failed: %s", e)
        return []


class Picamera2Source(SourceBase):
    def __init__(self, cfg: CameraConfig, camera_num: int = 0) -> None:
        super().__init__(cfg, f"picamera2:{camera_num}")
        self.camera_num = camera_num
        self._cam: Any = None
        self._still_config: Any = None

    def _open(self) -> None:
        picamera2 = import_picamera2()
        try:
            cameras = picamera2.global_camera_info()
        except Exception as e:
            raise CameraError(f"{self.name}: libcamera cannot list cameras: {e}") from None
        if len(cameras) <= self.camera_num:
            raise CameraError(f"{self.name}: no camera connected (libcamera sees {len(cameras)})")
        cfg = self.cfg
        cam = None
        try:
            cam = picamera2(self.camera_num)
            video = cam.create_video_configuration(
                main={"size": (cfg.width, cfg.height), "format": OPENCV_BGR_FORMAT},
                controls={"FrameRate": float(cfg.fps)},
                # few buffers: we want the newest frame, and each 1080p buffer is 6 MB of CMA memory
                buffer_count=4,
            )
            still_size = (cfg.still_width or cfg.width, cfg.still_height or cfg.height)
            self._still_config = cam.create_still_configuration(main={"size": still_size, "format": OPENCV_BGR_FORMAT})
            cam.configure(video)
            self._warn_if_resized(cam)
            cam.start()
        except CameraError:
            raise
        except Exception as e:  # busy camera, bad size, libcamera failure: all "cannot open"
            if cam is not None:
                _close_quietly(cam)
            raise CameraError(f"{self.name}: cannot start camera: {e}") from None
        self._cam = cam

    def _warn_if_resized(self, cam: Any) -> None:
        # libcamera may align the size to what the ISP can do; frames then differ from the config
        try:
            actual = tuple(cam.camera_configuration()["main"]["size"])
        except Exception as e:  # the configuration object's shape differs between picamera2 versions
            logger.debug("camera %s: cannot read back the configured size: %s", self.name, e)
            return
        if actual != (self.cfg.width, self.cfg.height):
            logger.warning(
                "camera %s: asked for %dx%d, the camera delivers %s",
                self.name,
                self.cfg.width,
                self.cfg.height,
                "x".join(str(v) for v in actual),
            )

    def _grab(self) -> np.ndarray:
        try:
            return self._cam.capture_array("main")
        except Exception as e:
            raise CameraError(f"{self.name}: capture failed: {e}") from None

    def _grab_still(self) -> np.ndarray:
        try:
            # switches to the still mode for one frame and back to the video mode
            return self._cam.switch_mode_and_capture_array(self._still_config, "main")
        except Exception as e:
            raise CameraError(f"{self.name}: still capture failed: {e}") from None

    def _close(self) -> None:
        if self._cam is not None:
            _close_quietly(self._cam)
            self._cam = None


def _close_quietly(cam: Any) -> None:
    for step in (cam.stop, cam.close):
        try:
            step()
        except Exception as e:
            logger.debug("picamera2: %s failed while closing: %s", step.__name__, e)
