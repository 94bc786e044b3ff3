"""`mqtt:` — the broker connection and topics."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from edgeportrait.config.base import Section


class TLSConfig(Section):
    enabled: bool = Field(False, description="Connect with TLS.")
    ca_file: Path | None = Field(None, description="CA certificate(s) that sign the broker's certificate.")
    cert_file: Path | None = Field(None, description="Client certificate, for brokers that require one.")
    key_file: Path | None = Field(None, description="Private key of the client certificate.")
    insecure: bool = Field(False, description="Skip the broker host-name check (testing only).")


class DiscoveryConfig(Section):
    enabled: bool = Field(False, description="Publish Home Assistant MQTT discovery.")
    prefix: str = Field("homeassistant", min_length=1, description="Home Assistant discovery prefix.")
    style: Literal["device", "entities"] = Field(
        "device",
        description="device: one message for all entities (Home Assistant 2024.11 and later); entities: one "
        "message per entity, for older Home Assistant (which ignores device messages).",
    )


class MqttConfig(Section):
    enabled: bool = True
    host: str = Field("localhost", min_length=1)
    port: int = Field(1883, ge=1, le=65535)
    protocol: Literal["5", "3.1.1"] = Field("5", description="MQTT protocol version.")
    topic_prefix: str = Field("edgeportrait", min_length=1, pattern=r"^[^#+\x00]+$")
    client_id: str | None = Field(None, description="Default: edgeportrait-<device_id>.")
    username: str | None = None
    password_file: Path | None = Field(
        None,
        description="File holding the password; a bare name is looked up in $CREDENTIALS_DIRECTORY (systemd).",
    )
    keepalive_s: int = Field(30, ge=5, le=3600)
    reconnect_min_s: float = Field(1, gt=0, le=60)
    reconnect_max_s: float = Field(60, gt=0, le=3600)
    max_image_bytes: int = Field(262144, ge=4096, le=256 * 1024 * 1024)
    max_message_bytes: int = Field(65536, ge=256, le=16 * 1024 * 1024, description="Larger commands are refused.")
    spool_max_files: int = Field(
        1000, ge=1, le=1_000_000, description="Undelivered results kept on disk; beyond, the oldest are dropped."
    )
    spool_max_bytes: int = Field(
        256 * 1024 * 1024, ge=1024 * 1024, description="…or beyond this many bytes (images included)."
    )
    tls: TLSConfig = Field(default_factory=TLSConfig)
    discovery: DiscoveryConfig = Field(default_factory=DiscoveryConfig)
