"""`camera:` — where frames come from and how they are oriented."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from edgeportrait.config.base import Section


class CameraConfig(Section):
    source: str = Field(
        "auto",
        min_length=1,
        description="auto | picamera2 | /dev/videoN | rtsp://… | http://… | path/to/video | path/to/folder/",
    )
    width: int = Field(1920, ge=64, le=8192, description="Stream width in pixels.")
    height: int = Field(1080, ge=64, le=8192, description="Stream height in pixels.")
    fps: float = Field(30, gt=0, le=240, description="Frame rate asked of the camera.")
    rotate: Literal[0, 90, 180, 270] = Field(0, description="Clockwise rotation applied to every frame.")
    flip: Literal["none", "horizontal", "vertical", "both"] = Field(
        "none", description="Mirror applied after rotation (a booth usually wants horizontal)."
    )
    still_width: int | None = Field(
        None, ge=64, le=16384, description="picamera2 only: still resolution for captures (default: stream size)."
    )
    still_height: int | None = Field(None, ge=64, le=16384)
    stall_timeout_s: float = Field(
        5, gt=0, le=300, description="No frame for this long marks the camera stalled and reopens it."
    )
    loop: bool = Field(True, description="Video files and image folders start over at the end.")
    fit: Literal["contain", "cover", "stretch"] = Field(
        "contain",
        description=(
            "Image folders and video files: how a picture of another size is made width×height — "
            "contain (scaled to fit, black bars), cover (scaled to fill, centre cropped), stretch."
        ),
    )
    reopen_backoff_max_s: float = Field(
        30, gt=0, le=3600, description="Longest wait between attempts to reopen a failed camera."
    )
    open_timeout_s: float = Field(
        15, gt=0, le=300, description="An open (device, RTSP connect) that takes longer counts as failed."
    )
