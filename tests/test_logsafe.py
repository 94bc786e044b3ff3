"""logsafe: one credential redaction for camera sources and config errors."""

from __future__ import annotations

import pytest

from edgeportrait.logsafe import redact


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("rtsp://admin:s3cret@10.0.0.9:554/h264", "rtsp://***@10.0.0.9:554/h264"),
        ("RTSP://admin:s3cret@cam/x", "RTSP://***@cam/x"),
        ("rtsp://admin:pass word@cam/x", "rtsp://***@cam/x"),  # a source may hold a space
        ("'ftp://u:p@host/x'", "'ftp://***@host/x'"),  # inside a repr, as config errors show it
        ("['rtsp://a:b@h1/', 'http://c:d@h2/']", "['rtsp://***@h1/', 'http://***@h2/']"),
        ("rtsp://cam.local/live", "rtsp://cam.local/live"),
        ("rtsp://cam.local/path@v2", "rtsp://cam.local/path@v2"),  # an '@' after the host is no password
        ("/dev/video0", "/dev/video0"),
        ("user@example.com", "user@example.com"),
    ],
)
def test_redact_hides_the_userinfo_of_every_url(text: str, expected: str) -> None:
    assert redact(text) == expected
