"""`portrait:` — how the portrait is composed. Every field can be overridden per call.

Sizes are given "in pixels at 1080p" and scaled with the frame's short side,
so one setting looks the same at 720p, 1080p and 4K.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, get_args

from pydantic import Field, field_validator, model_validator

from edgeportrait.config.base import Section

Channel = Annotated[int, Field(ge=0, le=255)]

Mode = Literal["blur", "grayscale", "color", "image"]
#: the background modes (``portrait.mode``), for the command line's --mode and MQTT discovery
MODES: tuple[str, ...] = get_args(Mode)


class PortraitConfig(Section):
    mode: Mode = Field(
        "blur",
        description="What replaces the background: blur = the scene blurred; grayscale = the scene in "
        "gray (sharp); color = a solid `color`; image = the picture `image`.",
    )
    blur: float = Field(
        50,
        ge=0,
        le=100,
        description="Background blur strength: 0 none … 100 strongest (Gaussian sigma = blur/100 × short "
        "side/36, i.e. 30 px at 1080p); resolution independent. Used by mode=blur.",
    )
    color: tuple[Channel, Channel, Channel] = Field(
        (40, 40, 40), description="mode=color: background colour as [R, G, B], 0…255 each."
    )
    image: Path | None = Field(
        None, description="mode=image: background picture, scaled to cover the frame (centre crop)."
    )
    threshold: float = Field(
        0.5, ge=0.02, le=0.98, description="Model confidence that counts as half person (centre of the edge ramp)."
    )
    softness: float = Field(
        0.3,
        ge=0,
        le=1,
        description="Width of the confidence ramp from background to person; 0 = hard cut at `threshold`.",
    )
    feather: float = Field(
        2,
        ge=0,
        le=50,
        description="Extra Gaussian softening of the matte edge, in pixels at 1080p; 0 = none.",
    )
    refine_radius: float = Field(
        8,
        ge=0,
        le=64,
        description="Edge-aware refinement (guided filter guided by the frame): window radius in pixels at "
        "1080p; 0 = off (the mask is only upscaled).",
    )
    refine_eps: float = Field(
        0.001,
        gt=0,
        le=1,
        description="Guided-filter regularisation: smaller follows image edges more closely, larger is smoother.",
    )
    smoothing: float = Field(
        0.5,
        ge=0,
        le=0.95,
        description="Video only: temporal smoothing of the mask (weight of the previous frames) so the edge "
        "does not flicker; it fades where the person moves. 0 = off. Single captures are not smoothed.",
    )

    @field_validator("image")
    @classmethod
    def _picture_exists(cls, v: Path | None) -> Path | None:
        # fail at start (config check, exit 78) or at settings/set, not at the first capture
        if v is not None and not v.is_file():
            raise ValueError(f"no such file: {v}")
        return v

    @model_validator(mode="after")
    def _image_needs_a_picture(self) -> PortraitConfig:
        if self.mode == "image" and self.image is None:
            raise ValueError("mode 'image' needs a background picture: set portrait.image in the config (-c FILE)")
        return self
