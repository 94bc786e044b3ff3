"""Keep large temporary arrays on the heap, so per-frame work does not pay page faults.

glibc serves allocations above its mmap threshold (128 KB, rising only as big
blocks are freed) with fresh mmap'ed pages, and returns them on free. A 1080p
frame's temporaries (the blend band, its alpha, the background) are megabytes
each, so every frame faulted in and zeroed ~15 MB of new pages: measured here
on the astronaut photo, render took 12.8 ms with glibc's defaults and 7.6 ms
with the thresholds below. Raising them keeps freed blocks on the heap for the
next frame. The cost is memory held for reuse, bounded by the trim threshold.
"""

from __future__ import annotations

import ctypes
import logging
import sys

logger = logging.getLogger(__name__)

# mallopt parameters from glibc's <malloc.h>
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3

MMAP_THRESHOLD = 64 * 1024 * 1024  # a 4K BGR frame is 25 MB: every frame-sized array stays on the heap
TRIM_THRESHOLD = 128 * 1024 * 1024  # at most this much free heap is kept for reuse


def tune() -> bool:
    """Raise glibc's mmap and trim thresholds; False (and nothing changed) where that is not glibc."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        # the symbols already loaded into this process (libc among them): ctypes.util.find_library("c")
        # would run ldconfig in a subprocess, ~50 ms of every start
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # musl and others have no mallopt
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    ok = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    logger.debug("allocator thresholds %s", "raised" if ok else "unchanged (mallopt refused)")
    return ok
