"""`capture:` — portraits taken on command or on a timer."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from edgeportrait.config.base import Section


class CaptureConfig(Section):
    output_dir: Path = Field(Path("/var/lib/edgeportrait/captures"), description="Where portraits are written.")
    interval_s: float = Field(0, ge=0, le=86400 * 7, description="Capture every N seconds; 0 = only on command.")
    countdown_s: float = Field(0, ge=0, le=60, description="Default wait between trigger and capture.")
    queue_limit: int = Field(4, ge=1, le=100, description="Triggers waiting beyond this are answered `busy`.")
    timeout_s: float = Field(10, gt=0, le=300, description="A capture that gets no frame this long fails.")
    jpeg_quality: int = Field(92, ge=1, le=100)
    max_files: int = Field(10000, ge=1, description="Oldest captures are deleted beyond this count.")
    max_bytes: int = Field(2 * 1024**3, ge=1024 * 1024, description="…or beyond this many bytes.")
