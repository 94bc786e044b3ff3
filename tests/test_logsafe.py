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


def test_throttle_allows_the_first_then_every_nth() -> None:
    from edgeportrait.logsafe import Throttle

    t = Throttle(every=10, first=3)
    allowed = [n for n in range(1, 41) if t.allow("broker down")]
    assert allowed == [1, 2, 3, 10, 20, 30, 40]
    assert t.count("broker down") == 40 and t.suppressed("broker down") == 0
    t.allow("broker down")
    assert t.suppressed("broker down") == 1


def test_throttle_counts_each_message_apart_and_starts_over_on_reset() -> None:
    from edgeportrait.logsafe import Throttle

    t = Throttle(every=20)
    assert t.allow("a") and not t.allow("a") and t.allow("b")
    t.reset()
    assert t.allow("a") and t.count("a") == 1


def test_throttle_memory_is_bounded() -> None:
    """A stream of distinct messages (each error text different) forgets old counts instead of growing."""
    from edgeportrait.logsafe import Throttle

    t = Throttle(every=20, max_keys=4)
    assert all(t.allow(f"error {i}") for i in range(100))
    assert len(t._counts) <= 4
