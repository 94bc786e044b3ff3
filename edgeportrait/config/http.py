"""`http:` — the kiosk web server; `preview:` — the live preview it streams.

The server listens on loopback unless told otherwise. Any other address
needs an access token: the stream shows the room and the page triggers
captures, so on a network only those who know the token may use them.
The token is kept like the MQTT password: preferably in a file
(``token_file``, a bare name read from systemd's $CREDENTIALS_DIRECTORY),
or in the YAML as ``token``; it is never logged, echoed in an error or
published.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path

from pydantic import Field, SecretStr, field_validator, model_validator

from edgeportrait.config.base import Section

# URL-safe characters only: the token also travels as ?token=… (kiosk browser,
# Home Assistant's MJPEG camera) and in a cookie, where anything else needs quoting.
# 16 characters of this alphabet are ~96 bits: not guessable over a LAN.
TOKEN_PATTERN = re.compile(r"^[A-Za-z0-9._~-]{16,256}$")
TOKEN_RULE = (
    "16 to 256 characters of A-Z a-z 0-9 . _ ~ - "
    "(e.g. python3 -c 'import secrets; print(secrets.token_urlsafe(24))')"
)


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback IP literals (127.0.0.0/8, ::1); a name or any other address is not."""
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class HttpConfig(Section):
    enabled: bool = Field(False, description="Serve the kiosk page, the live preview stream and /healthz.")
    host: str = Field(
        "127.0.0.1",
        min_length=1,
        max_length=253,
        pattern=r"^[A-Za-z0-9.:\[\]_-]+$",
        description="Address to listen on. Anything but loopback (127.0.0.1, ::1, localhost) needs a token; "
        "0.0.0.0 = every IPv4 interface, :: = every interface.",
    )
    port: int = Field(8080, ge=1, le=65535)
    token: SecretStr | None = Field(
        None,
        description="Access token (Authorization: Bearer, ?token= or the page's cookie). Required on any "
        "address but loopback; prefer token_file.",
    )
    token_file: Path | None = Field(
        None,
        description="File holding the token; a bare name is looked up in $CREDENTIALS_DIRECTORY (systemd).",
    )
    max_viewers: int = Field(5, ge=1, le=100, description="Live stream viewers at once; more are answered 503.")

    @field_validator("token")
    @classmethod
    def _token_is_url_safe(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None and not TOKEN_PATTERN.match(v.get_secret_value()):
            raise ValueError(f"the token must be {TOKEN_RULE}")
        return v

    @model_validator(mode="after")
    def _network_needs_a_token(self) -> HttpConfig:
        if self.token is not None and self.token_file is not None:
            raise ValueError("set http.token or http.token_file, not both")
        if not is_loopback(self.host) and self.token is None and self.token_file is None:
            raise ValueError(
                f"http.host {self.host} is reachable from the network: set http.token_file (or http.token) so "
                "that only those who know the token see the camera and trigger captures, or listen on 127.0.0.1"
            )
        return self


class PreviewConfig(Section):
    width: int = Field(1280, ge=64, le=3840, description="Live preview width in pixels (the frame is fitted inside).")
    height: int = Field(720, ge=64, le=2160, description="Live preview height in pixels.")
    max_fps: float = Field(30, gt=0, le=60, description="Upper bound on preview frames per second.")
    jpeg_quality: int = Field(80, ge=1, le=100, description="JPEG quality of preview frames.")
    review_s: float = Field(
        5, ge=0, le=120, description="How long the kiosk page shows a new portrait; 0 = not at all."
    )
