"""camera_source: the one definition of stream URLs and picamera2[:N] that config and capture share."""

from __future__ import annotations

import pytest

from edgeportrait.camera_source import is_stream, picamera2_index, url_scheme
from edgeportrait.capture.base import CameraError
from edgeportrait.capture.factory import create_source
from edgeportrait.config.camera import CameraConfig


@pytest.mark.parametrize(
    ("source", "scheme", "stream"),
    [
        ("rtsp://cam/live", "rtsp", True),
        ("RTSPS://cam/live", "RTSPS", True),
        ("https://cam/mjpg", "https", True),
        ("ftp://cam/x", "ftp", False),
        ("/dev/video0", None, False),
        ("clips/a.mp4", None, False),
    ],
)
def test_url_scheme_and_stream(source: str, scheme: str | None, stream: bool) -> None:
    assert url_scheme(source) == scheme
    assert is_stream(source) is stream


@pytest.mark.parametrize(
    ("source", "index"),
    [("picamera2", 0), ("picamera2:1", 1), ("picamera2:", None), ("picamera2x", None), ("picamera", None)],
)
def test_picamera2_index(source: str, index: int | None) -> None:
    assert picamera2_index(source) == index


def test_config_and_factory_agree_on_what_is_not_a_stream() -> None:
    """What the config refuses as a URL scheme the factory refuses too (given a config built unchecked)."""
    with pytest.raises(ValueError, match="unsupported URL scheme 'ftp'"):
        CameraConfig(source="ftp://cam/x")
    unchecked = CameraConfig.model_construct(**{**CameraConfig().model_dump(), "source": "ftp://cam/x"})
    with pytest.raises(CameraError, match="unsupported URL scheme"):
        create_source(unchecked)
    with pytest.raises(ValueError, match="picamera2:N"):
        CameraConfig(source="picamera2:x")
