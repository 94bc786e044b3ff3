"""The forms of ``camera.source`` that name a kind of camera by their text alone: stream URLs and
``picamera2[:N]``.

One definition for the two places that read them: the config validator
(:mod:`edgeportrait.config.camera`, which must not import OpenCV or the camera
code) refuses the wrong ones, and the capture factory
(:mod:`edgeportrait.capture.factory`) picks the backend.
"""

from __future__ import annotations

import re

#: URL schemes the capture layer opens (through OpenCV's FFmpeg backend)
STREAM_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https")

_URL_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")
_PICAMERA2 = re.compile(r"picamera2(?::(\d+))?")


def url_scheme(source: str) -> str | None:
    """The scheme of ``source`` as written if it is a URL (``scheme://…``), else None."""
    m = _URL_SCHEME.match(source)
    return m.group(1) if m else None


def is_stream(source: str) -> bool:
    """Whether ``source`` is a URL of one of :data:`STREAM_SCHEMES` (any case)."""
    scheme = url_scheme(source)
    return scheme is not None and scheme.lower() in STREAM_SCHEMES


def picamera2_index(source: str) -> int | None:
    """N of ``picamera2:N`` (0 for plain ``picamera2``); None if ``source`` is not of that form."""
    m = _PICAMERA2.fullmatch(source)
    return int(m.group(1) or 0) if m else None
