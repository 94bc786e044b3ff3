"""The compositor's C library (``_band.c``), when it was built; the OpenCV path otherwise.

The passes of a compose that touch many pixels are in it: the frame's
downscale (:func:`halve`), the guided filter with the cells' kinds
(:func:`low_matte`), the mask-normalised blur (:func:`masked_blur`), its
upsample to full resolution (:func:`upsample`) and the band pass
(:func:`render_band`). The wheel's build (``hatch_build.py``) compiles
``_band.c`` into ``_band.so`` beside this module when a C compiler is at hand
(``pip install`` on a Pi with ``gcc``, or any x86 box with ``build-essential``);
without one it warns and the package is the same minus this file. It is loaded
with ctypes, which releases the GIL for each call; each call shares the frame's
rows between :func:`threads` threads. The two paths give the same look: their
outputs differ by at most one level per channel, the downscale and the upsample
not at all (``tests/test_compose_native.py``).

``EDGEPORTRAIT_NATIVE=0`` in the environment turns it off (to compare, or to
rule it out); :func:`status` says which path runs and why, for the log and
``edgeportrait bench``.
"""

from __future__ import annotations

import ctypes
import logging
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

if TYPE_CHECKING:
    from edgeportrait.compose.matte import LowMatte

logger = logging.getLogger(__name__)

ABI = 5  # EP_BAND_ABI in _band.c: a library built from another version is not called
LIBRARY = Path(__file__).with_name("_band.so")
SOURCE = Path(__file__).with_name("_band.c")
ENV = "EDGEPORTRAIT_NATIVE"

_lock = threading.Lock()
_loaded: tuple[ctypes.CDLL | None, str] | None = None


def _load() -> tuple[ctypes.CDLL | None, str]:
    if os.environ.get(ENV, "").strip() == "0":
        return None, f"OpenCV path ({ENV}=0)"
    if not LIBRARY.exists():
        return None, (
            "OpenCV path (the C library was not built at install: no C compiler, or the compile failed; "
            "`pip install -v` shows why)"
        )
    try:
        if SOURCE.exists() and SOURCE.stat().st_mtime > LIBRARY.stat().st_mtime:
            # a checkout whose _band.c changed since the last `pip install -e .`
            return None, f"OpenCV path ({LIBRARY.name} is older than {SOURCE.name}: reinstall to rebuild it)"
        lib = ctypes.CDLL(str(LIBRARY))
        abi = lib.ep_band_abi()
    except (OSError, AttributeError) as e:
        return None, f"OpenCV path (cannot load {LIBRARY.name}: {e})"
    if abi != ABI:
        return None, f"OpenCV path ({LIBRARY.name} has ABI {abi}, this version needs {ABI}: reinstall)"
    p, i, long_ = ctypes.c_void_p, ctypes.c_int, ctypes.c_long
    lib.ep_render_band.argtypes = [p, long_, p, long_, i, i, p, p, i, i, i, i]
    lib.ep_render_band.restype = i
    f32 = ctypes.c_float
    lib.ep_low_matte.argtypes = [p, p, i, i, i, f32, f32, p, p, i]
    lib.ep_low_matte.restype = i
    lib.ep_masked_blur.argtypes = [p, long_, p, i, i, p, i, f32, p, long_, i]
    lib.ep_masked_blur.restype = i
    lib.ep_upsample.argtypes = [p, long_, i, i, p, long_, i, i, i]
    lib.ep_upsample.restype = i
    lib.ep_downscale.argtypes = [p, long_, i, i, i, p, long_, i]
    lib.ep_downscale.restype = i
    return lib, f"C library ({LIBRARY})"


def library() -> ctypes.CDLL | None:
    """The loaded library, or None (loaded once, on first use: importing this costs nothing)."""
    global _loaded
    if _loaded is None:
        with _lock:
            if _loaded is None:
                _loaded = _load()
                logger.info("compositor: %s", _loaded[1])
    return _loaded[0]


def status() -> str:
    """Which path composes, and why: e.g. ``C library (/…/_band.so)``."""
    library()
    assert _loaded is not None
    return _loaded[1]


def reset() -> None:
    """Forget the loaded state, so the next call looks again (tests set the environment between)."""
    global _loaded
    with _lock:
        _loaded = None


def _rows_packed(a: np.ndarray) -> bool:
    """BGR uint8 with the pixels packed within each row and the rows going forward (they may be apart,
    as in a crop of a wider frame): what the C passes take as they are."""
    return (
        a.dtype == np.uint8
        and a.ndim == 3
        and a.shape[2] == 3
        and a.strides[2] == 1
        and a.strides[1] == 3
        and a.strides[0] >= 3 * a.shape[1]
    )


def _bgr_rows(a: np.ndarray) -> np.ndarray:
    """``a`` itself when the C passes can read it (:func:`_rows_packed`), else a packed copy (e.g. of a
    flipped view, whose rows go backwards)."""
    return a if _rows_packed(a) else np.ascontiguousarray(a)


def threads() -> int:
    """Threads for one call: as many as OpenCV may use (``cv2.setNumThreads``; 1 in ``process``'s workers)."""
    return max(1, cv2.getNumThreads())


def render_band(lib: ctypes.CDLL, frame: np.ndarray, out: np.ndarray, low: LowMatte, n_threads: int = 1) -> None:
    """Copies the interior and blends the band of ``frame`` into ``out`` (which holds B), in C.

    ``n_threads`` threads share the rows (the GIL is released for the whole call).
    """
    h, w = frame.shape[:2]
    frame = _bgr_rows(frame)
    if not _rows_packed(out) or not out.flags.writeable:
        raise ValueError("render_band: out must be a writable BGR uint8 array with packed rows")
    coef = np.ascontiguousarray(low.coef, dtype=np.float32)
    kind = np.ascontiguousarray(low.kind, dtype=np.uint8)
    lh, lw = kind.shape
    if out.shape != frame.shape or coef.shape != (lh, lw, 2):
        raise ValueError(f"render_band: shapes do not fit: frame {frame.shape}, out {out.shape}, coef {coef.shape}")
    rc = lib.ep_render_band(
        frame.ctypes.data, frame.strides[0], out.ctypes.data, out.strides[0], h, w,
        coef.ctypes.data, kind.ctypes.data, lh, lw, low.factor, n_threads,
    )  # fmt: skip
    if rc != 0:
        raise ValueError(
            f"render_band: a {w}x{h} frame does not fit {lw}x{lh} cells at factor {low.factor} (or memory ran out)"
        )


def low_matte(
    lib: ctypes.CDLL, luma: np.ndarray, p: np.ndarray, radius: int, eps: float, settled: float, n_threads: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """The guided filter's coefficients (lh, lw, 2) and the cells' kinds (lh, lw), in C.

    ``luma``: uint8 luminance at the working resolution; ``p``: float32 alpha
    there (see :func:`edgeportrait.compose.matte.make_low_matte`).
    """
    luma, p = np.ascontiguousarray(luma, dtype=np.uint8), np.ascontiguousarray(p, dtype=np.float32)
    if luma.ndim != 2 or luma.shape != p.shape or radius < 1:
        raise ValueError(f"low_matte: luma {luma.shape} and p {p.shape} must be one 2-D size, radius {radius} >= 1")
    lh, lw = luma.shape
    coef = np.empty((lh, lw, 2), np.float32)
    kind = np.empty((lh, lw), np.uint8)
    rc = lib.ep_low_matte(
        luma.ctypes.data, p.ctypes.data, lh, lw, radius, eps, settled, coef.ctypes.data, kind.ctypes.data, n_threads
    )
    if rc != 0:
        raise MemoryError(f"low_matte: no memory for a {lw}x{lh} guided filter")
    return coef, kind


def masked_blur(
    lib: ctypes.CDLL, small: np.ndarray, alpha: np.ndarray, kernel: np.ndarray, fill_weight: float, n_threads: int = 1
) -> np.ndarray:
    """The mask-normalised blur of ``small`` (BGR uint8) in C: a new array of its size.

    ``alpha``: float32 person alpha at its size, already dilated by the margin;
    ``kernel``: the separable Gaussian (odd length) — see
    :func:`edgeportrait.compose.background.masked_blur_low`.
    """
    small = _bgr_rows(small)
    alpha = np.ascontiguousarray(alpha, dtype=np.float32)
    kernel = np.ascontiguousarray(kernel.ravel(), dtype=np.float32)
    sh, sw = small.shape[:2]
    if alpha.shape != (sh, sw) or kernel.size % 2 == 0:
        raise ValueError(f"masked_blur: alpha {alpha.shape} must be {sh}x{sw}, the kernel odd ({kernel.size})")
    out = np.empty((sh, sw, 3), np.uint8)
    rc = lib.ep_masked_blur(
        small.ctypes.data, small.strides[0], alpha.ctypes.data, sh, sw, kernel.ctypes.data, kernel.size,
        fill_weight, out.ctypes.data, out.strides[0], n_threads,
    )  # fmt: skip
    if rc != 0:
        raise MemoryError(f"masked_blur: no memory for a {sw}x{sh} blur")
    return out


UPSAMPLE_FACTORS = (2, 4, 8, 16)


def upsample(lib: ctypes.CDLL, small: np.ndarray, h: int, w: int, n_threads: int = 1) -> np.ndarray | None:
    """``cv2.resize(small, (w, h), interpolation=INTER_LINEAR)`` in C, byte for byte.

    Only for a whole factor across (``w`` = 2, 4, 8 or 16 × ``small``'s width);
    None for any other size, for which cv2.resize is the way.
    """
    sh, sw = small.shape[:2]
    f = w // sw
    if f not in UPSAMPLE_FACTORS or f * sw != w or h < 1:
        return None
    small = _bgr_rows(small)
    out = np.empty((h, w, 3), np.uint8)
    rc = lib.ep_upsample(small.ctypes.data, small.strides[0], sh, sw, out.ctypes.data, out.strides[0], h, f, n_threads)
    if rc != 0:
        raise MemoryError(f"upsample: no memory for {sw}x{sh} -> {w}x{h}")
    return out


def halve(lib: ctypes.CDLL, img: np.ndarray, levels: int, n_threads: int = 1) -> np.ndarray:
    """``img`` (BGR uint8) halved ``levels`` (1…4) times in C, equal to as many INTER_AREA halvings.

    Both sides must be multiples of 2**levels.
    """
    h, w = img.shape[:2]
    if not 1 <= levels <= 4 or h % (1 << levels) or w % (1 << levels):
        raise ValueError(f"halve: {w}x{h} cannot be halved {levels} times")
    img = _bgr_rows(img)
    out = np.empty((h >> levels, w >> levels, 3), np.uint8)
    rc = lib.ep_downscale(img.ctypes.data, img.strides[0], h, w, levels, out.ctypes.data, out.strides[0], n_threads)
    if rc != 0:
        raise MemoryError(f"halve: no memory for a {w}x{h} frame")
    return out
