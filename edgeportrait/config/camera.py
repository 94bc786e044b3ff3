"""`camera:` — where frames come from and how they are oriented."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from edgeportrait.camera_source import STREAM_SCHEMES, picamera2_index, url_scheme
from edgeportrait.config.base import Section


class CameraConfig(Section):
    source: str = Field(
        "auto",
        min_length=1,
        max_length=4096,
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

    @field_validator("source")
    @classmethod
    def _known_kind_of_source(cls, value: str) -> str:
        # Only what is wrong whatever the machine: a path that does not exist yet may be a USB
        # stick or a camera plugged in later, so that is the camera's "offline", not a config error.
        source = value.strip()
        if not source:
            raise ValueError("must not be empty")
        if "\x00" in source:
            raise ValueError("contains a NUL character")
        scheme = url_scheme(source)
        if scheme is not None and scheme.lower() not in STREAM_SCHEMES:
            # the scheme only: the rest of a URL may hold a password
            raise ValueError(f"unsupported URL scheme {scheme!r} (use {', '.join(STREAM_SCHEMES)})")
        if source.startswith("picamera2") and picamera2_index(source) is None:
            raise ValueError("picamera2 sources are 'picamera2' or 'picamera2:N' (camera number N)")
        return source

    @model_validator(mode="after")
    def _still_size_complete(self) -> CameraConfig:
        if (self.still_width is None) != (self.still_height is None):
            raise ValueError("still_width and still_height go together: set both or neither")
        return self
