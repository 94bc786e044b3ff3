"""edgeportrait: a portrait-mode camera appliance for the edge."""

from __future__ import annotations

import os

# Decompression bombs: OpenCV refuses images that declare more pixels than this
# before it allocates them. It reads the variable once, when cv2 loads, so it is
# set here, before any module of ours imports cv2. 100 MP covers any phone photo.
MAX_IMAGE_PIXELS = 100_000_000
os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(MAX_IMAGE_PIXELS))

_version: str | None = None


def __getattr__(name: str) -> str:
    # __version__ is looked up when first asked for: importlib.metadata costs ~60 ms of start-up
    # (it parses e-mail headers), which `process` and `config check` have no use for
    global _version
    if name != "__version__":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if _version is None:
        from importlib.metadata import PackageNotFoundError, version

        try:
            _version = version("edgeportrait")
        except PackageNotFoundError:  # running from a source tree that was never installed
            _version = "0.0.0+src"
    return _version
