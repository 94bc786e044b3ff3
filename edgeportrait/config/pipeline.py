"""`pipeline:` — throughput of the live stream."""

from __future__ import annotations

from pydantic import Field

from edgeportrait.config.base import Section


class PipelineConfig(Section):
    max_fps: float = Field(15, gt=0, le=120, description="Upper bound on frames processed per second.")
    segment_every: int = Field(
        1, ge=1, le=30, description="Run the model every N frames, reusing the last mask in between."
    )
    queue_size: int = Field(2, ge=1, le=16, description="Frames buffered between stages; older ones are dropped.")
