"""The payloads the daemon sends out, one definition each.

``B/result``, ``B/error``, ``B/health`` and ``B/settings/state`` on MQTT, and
the same JSON on the kiosk server's ``/healthz`` and events. The code builds
these models and nothing else; the tests parse what was received with them
(``model_validate_json``, which refuses unknown or missing fields), and the
examples in ``docs/mqtt.md`` are checked against them
(``tests/test_messages.py``). Field meanings are documented in ``docs/mqtt.md``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from edgeportrait.config import RUNTIME_SETTINGS, AppConfig


class _Message(BaseModel):
    # what is sent is exactly what is declared here: a missing or an extra field is a bug
    model_config = ConfigDict(extra="forbid", frozen=True)

    def json_bytes(self) -> bytes:
        return self.model_dump_json().encode()


def utc_now(timespec: str = "seconds") -> str:
    """``2026-11-22T00:04:10Z``: ISO 8601 UTC as every payload writes it."""
    return utc_iso(dt.datetime.now(dt.timezone.utc), timespec)


def utc_iso(t: dt.datetime, timespec: str = "seconds") -> str:
    return t.isoformat(timespec=timespec).replace("+00:00", "Z")


class ErrorMessage(_Message):
    """``B/error``: a refused command or a capture that failed."""

    id: str | None
    error: str
    detail: str


class ResultMessage(_Message):
    """``B/result``: one per portrait (``bytes``/``sha256`` describe the JPEG on ``B/result/image``)."""

    id: str
    seq: int
    ts: str
    trigger: str
    width: int
    height: int
    path: str
    bytes: int
    sha256: str
    foreground_fraction: float
    timings_ms: dict[str, float]
    model: str
    precision: str
    precision_reason: str
    device: str


class CameraHealth(_Message):
    state: str  # ok | stalled | offline | …
    fps: float
    frames: int
    dropped: int
    reconnects: int
    error: str | None


class InferenceHealth(_Message):
    device: str | None
    precision: str | None
    precision_reason: str | None
    model: str | None
    ms_p50: float | None
    ms_p95: float | None
    fallbacks: list[str]
    switching_to: str | None
    swaps: int
    models_loaded: int


class PipelineHealth(_Message):
    fps: float
    latency_ms_p50: float | None
    latency_ms_p95: float | None
    frames: int
    composed: int  # frames composed for the live preview (none while nobody watches)
    compose_ms_p50: float | None  # scaling to the preview size + composing, per preview frame
    dropped: int
    skipped: int
    errors: int


class CapturesHealth(_Message):
    made: int
    failed: int
    refused: int
    waiting: int
    latency_ms_p50: float | None
    latency_ms_p95: float | None
    files_pruned: int


class SpoolHealth(_Message):
    entries: int
    bytes: int
    dropped: int


class MqttHealth(_Message):
    pending: int
    connected: bool
    connects: int
    duplicate: str | None
    spool: SpoolHealth | None


class PreviewHealth(_Message):
    """The kiosk's live preview (``http.enabled``): viewers, frames, capture → socket latency."""

    viewers: int
    max_viewers: int
    fps: float  # preview frames published per second
    published: int
    sent: int  # frames handed to viewers' sockets, all viewers
    refused: int  # viewers turned away (max_viewers)
    dropped: int  # viewers whose connection stalled or failed
    latency_ms_p50: float | None  # camera frame → its last byte to a viewer's socket
    latency_ms_p95: float | None
    encode_ms_p50: float | None


class SystemHealth(_Message):
    cpu_percent: float | None
    rss_mb: float | None
    temperature_c: float | None


MQTT_OFF = MqttHealth(pending=0, connected=False, connects=0, duplicate=None, spool=None)


class HealthMessage(_Message):
    """``B/health`` (retained) and the kiosk's ``/healthz``."""

    ts: str
    uptime_s: float
    version: str
    device_id: str
    instance: str
    state: Literal["starting", "running", "degraded", "stopping"]
    camera: CameraHealth
    inference: InferenceHealth
    pipeline: PipelineHealth
    captures: CapturesHealth
    mqtt: MqttHealth
    preview: PreviewHealth | None = None  # null unless http.enabled
    system: SystemHealth


def settings_state(cfg: AppConfig) -> dict[str, Any]:
    """``B/settings/state``: every runtime setting (``config.RUNTIME_SETTINGS``), nested as in the YAML.

    Its shape is the config's own (typed there); this picks the sections and
    keys that can change at run time.
    """
    dump = cfg.model_dump(mode="json")
    return {section: {k: dump[section][k] for k in sorted(keys)} for section, keys in RUNTIME_SETTINGS.items()}
