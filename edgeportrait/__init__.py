"""edgeportrait: a portrait-mode camera appliance for the edge."""

import os
from importlib.metadata import PackageNotFoundError, version

# Decompression bombs: OpenCV refuses images that declare more pixels than this
# before it allocates them. It reads the variable once, when cv2 loads, so it is
# set here, before any module of ours imports cv2. 100 MP covers any phone photo.
MAX_IMAGE_PIXELS = 100_000_000
os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(MAX_IMAGE_PIXELS))

try:
    __version__ = version("edgeportrait")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+src"
