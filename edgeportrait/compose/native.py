"""The compositor's band pass in C (``_band.c``), when it was built; the OpenCV path otherwise.

The wheel's build (``hatch_build.py``) compiles ``_band.c`` into ``_band.so``
beside this module when a C compiler is at hand (``pip install`` on a Pi with
``gcc``, or any x86 box with ``build-essential``); without one it warns and the
package is the same minus this file. It is loaded with ctypes, which releases
the GIL for the call. The two paths give the same look: their outputs differ by
at most one level per channel (``tests/test_compose_native.py``).

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

import numpy as np

if TYPE_CHECKING:
    from edgeportrait.compose.matte import LowMatte

logger = logging.getLogger(__name__)

ABI = 1  # EP_BAND_ABI in _band.c: a library built from another version is not called
LIBRARY = Path(__file__).with_name("_band.so")
SOURCE = Path(__file__).with_name("_band.c")
ENV = "EDGEPORTRAIT_NATIVE"
CELL_BAND = 2  # a cell's kind for _band.c: 0 background (left), 1 interior (copied), 2 band (blended)

_lock = threading.Lock()
_loaded: tuple[ctypes.CDLL | None, str] | None = None


def _load() -> tuple[ctypes.CDLL | None, str]:
    if os.environ.get(ENV, "").strip() == "0":
        return None, f"OpenCV path ({ENV}=0)"
    if not LIBRARY.exists():
        return None, (
            "OpenCV path (the C band pass was not built at install: no C compiler, or the compile failed; "
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
    lib.ep_render_band.argtypes = [p, long_, p, long_, i, i, p, p, i, i, i]
    lib.ep_render_band.restype = i
    return lib, f"C band pass ({LIBRARY})"


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
    """Which path composes the band, and why: e.g. ``C band pass (/…/_band.so)``."""
    library()
    assert _loaded is not None
    return _loaded[1]


def reset() -> None:
    """Forget the loaded state, so the next call looks again (tests set the environment between)."""
    global _loaded
    with _lock:
        _loaded = None


def _rows_packed(a: np.ndarray) -> bool:
    """Pixels packed within each row (rows may be apart, as in a crop of a wider frame)."""
    return a.dtype == np.uint8 and a.ndim == 3 and a.shape[2] == 3 and a.strides[2] == 1 and a.strides[1] == 3


def render_band(lib: ctypes.CDLL, frame: np.ndarray, out: np.ndarray, low: LowMatte) -> None:
    """Copies the interior and blends the band of ``frame`` into ``out`` (which holds B), in C."""
    h, w = frame.shape[:2]
    if not _rows_packed(frame) or frame.strides[0] < 3 * w:  # e.g. a flipped view: rows go backwards
        frame = np.ascontiguousarray(frame)
    if not _rows_packed(out) or out.strides[0] < 3 * w or not out.flags.writeable:
        raise ValueError("render_band: out must be a writable BGR uint8 array with packed rows")
    coef = np.ascontiguousarray(low.coef, dtype=np.float32)
    kind = np.ascontiguousarray(low.band, dtype=np.uint8) * np.uint8(CELL_BAND)
    kind |= low.interior.view(np.uint8)  # interior cells: 1, the byte of a True
    lh, lw = kind.shape
    if out.shape != frame.shape or coef.shape != (lh, lw, 2):
        raise ValueError(f"render_band: shapes do not fit: frame {frame.shape}, out {out.shape}, coef {coef.shape}")
    rc = lib.ep_render_band(
        frame.ctypes.data, frame.strides[0], out.ctypes.data, out.strides[0], h, w,
        coef.ctypes.data, kind.ctypes.data, lh, lw, low.factor,
    )  # fmt: skip
    if rc != 0:
        raise ValueError(
            f"render_band: a {w}x{h} frame does not fit {lw}x{lh} cells at factor {low.factor} (or memory ran out)"
        )
