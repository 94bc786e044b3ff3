"""`portrait:` — how the portrait is composed. Every field can be overridden per call."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from edgeportrait.config.base import Section


class PortraitConfig(Section):
    mode: Literal["blur", "grayscale", "color", "image"] = Field(
        "blur", description="What replaces the background."
    )
    blur: float = Field(
        50, ge=0, le=100, description="Background blur strength: 0 none … 100 strongest; resolution independent."
    )
    color: tuple[int, int, int] = Field(
        (40, 40, 40), description="mode=color: background colour as [R, G, B], 0…255 each."
    )
    image: Path | None = Field(None, description="mode=image: background picture, scaled to cover the frame.")
