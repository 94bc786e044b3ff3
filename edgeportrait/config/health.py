"""`health:` — the periodic health report."""

from __future__ import annotations

from pydantic import Field

from edgeportrait.config.base import Section


class HealthConfig(Section):
    interval_s: float = Field(10, ge=1, le=3600, description="Seconds between B/health publications.")
