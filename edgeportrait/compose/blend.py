"""I = αF + (1−α)B where it matters, a plain copy where it does not.

In a portrait most pixels are all person (α = 1) or all background (α = 0);
only a band a few dozen pixels wide around the silhouette needs arithmetic.
Working through every pixel of a 1080p frame in float (the guided filter's
final step, the blend) moves ~150 MB through memory and alone costs more than
the 8 ms budget on a 2-core CPU. So the band is found at the working
resolution and the frame is cut into horizontal strips of equal height; in
each strip, runs of interior columns are copied from the frame, the rest
keeps the background already in place, and the runs of band columns are
*packed* side by side into one narrow image, so that computing α (upsampled
guided-filter coefficients × luminance) and blending are a handful of large
OpenCV calls instead of a few per run.
"""

from __future__ import annotations

import cv2
import numpy as np

from edgeportrait.compose import native
from edgeportrait.compose.matte import LowMatte

STRIP_PX = 32  # rows per strip at full resolution
GAP_PX = 32  # band runs closer than this are blended as one block (a block costs a few µs of Python)

Block = tuple[int, int, int]  # strip index, first cell column, end cell column (working resolution)


def plan(low: LowMatte) -> tuple[int, list[Block], list[Block]]:
    """Cells per strip, the blocks to blend (covering every cell with 0 < α < 1), the blocks to copy (α = 1)."""
    lh, lw = low.band.shape
    rows = max(1, round(STRIP_PX / low.factor))
    gap = max(1, round(GAP_PX / low.factor))
    n = -(-lh // rows)
    pad = n * rows - lh
    band, interior = low.band, low.interior
    if pad:
        band = np.vstack([band, np.zeros((pad, lw), bool)])
        # padding rows count as interior for "all" and as nothing for "any"
        interior_all = np.vstack([interior, np.ones((pad, lw), bool)])
        interior_any = np.vstack([interior, np.zeros((pad, lw), bool)])
    else:
        interior_all = interior_any = interior
    all_in = interior_all.reshape(n, rows, lw).all(axis=1)
    mixed = band.reshape(n, rows, lw).any(axis=1) | (interior_any.reshape(n, rows, lw).any(axis=1) & ~all_in)
    # closing along each strip joins band runs less than `gap` cells apart into one block
    kernel = np.ones((1, 2 * (gap // 2) + 1), np.uint8)  # odd: centred, so runs neither move nor grow
    mixed_u8 = cv2.morphologyEx(np.asarray(mixed, dtype=np.uint8), cv2.MORPH_CLOSE, kernel)
    closed = mixed_u8.astype(bool)
    blend = _runs(closed)
    copy = _runs(all_in & ~closed)
    return rows, blend, copy


def render(frame: np.ndarray, low: LowMatte, out: np.ndarray) -> np.ndarray:
    """``out`` holds the background B; writes αF + (1−α)B into it and returns it.

    Pixels with α = 1 get the frame exactly, α = 0 keep B exactly. The C band
    pass does it when it was built (:mod:`edgeportrait.compose.native`: one call,
    the GIL released, the rows shared by OpenCV's number of threads),
    :func:`render_opencv` otherwise; the two differ by at most one level.
    """
    lib = native.library()
    if lib is None:
        return render_opencv(frame, low, out)
    assert frame.shape[:2] == low.full_shape, "frame must be the matte's factor times its working size"
    native.render_band(lib, frame, out, low, native.threads())
    return out


def render_opencv(frame: np.ndarray, low: LowMatte, out: np.ndarray) -> np.ndarray:
    """:func:`render` in OpenCV and numpy calls: the band packed into one narrow image (see the module's text)."""
    f = low.factor
    h, w = frame.shape[:2]
    assert (h, w) == low.full_shape, "frame must be the matte's factor times its working size"
    rows, blend, copy = plan(low)
    strip = rows * f
    for si, c0, c1 in copy:
        y0, x0, x1 = si * strip, c0 * f, c1 * f
        out[y0 : y0 + strip, x0:x1] = frame[y0 : y0 + strip, x0:x1]
    if not blend:
        return out
    # Pack the band blocks side by side, each with one working cell of margin on every side so that
    # upsampling the packed coefficients gives, inside each block, exactly what upsampling the whole
    # frame's coefficients would (the bilinear taps reach one cell). Edge padding stands for the
    # clamping cv2.resize does at the frame's border.
    lh = low.coef.shape[0]
    n_rows = -(-lh // rows) * rows
    coef = cv2.copyMakeBorder(low.coef, 1, 1 + n_rows - lh, 1, 1, cv2.BORDER_REPLICATE)
    widths = [c1 - c0 + 2 for _, c0, c1 in blend]
    offsets = np.cumsum([0] + widths).tolist()
    packed = np.concatenate([coef[si * rows : si * rows + rows + 2, c0 : c1 + 2] for si, c0, c1 in blend], axis=1)
    up = cv2.resize(packed, (packed.shape[1] * f, packed.shape[0] * f), interpolation=cv2.INTER_LINEAR)
    up = up[f : f + strip]
    pw = up.shape[1]
    # margins and the rows below a short last strip are never read back: no need to clear them
    fp = np.empty((strip, pw, 3), np.uint8)
    bp = np.empty((strip, pw, 3), np.uint8)
    for (si, c0, c1), off in zip(blend, offsets[:-1], strict=True):
        y0, y1, x0, x1 = si * strip, min(h, (si + 1) * strip), c0 * f, c1 * f
        px = (off + 1) * f
        fp[: y1 - y0, px : px + x1 - x0] = frame[y0:y1, x0:x1]
        bp[: y1 - y0, px : px + x1 - x0] = out[y0:y1, x0:x1]
    q = up[:, :, 0] * cv2.cvtColor(fp, cv2.COLOR_BGR2GRAY)
    q += up[:, :, 1]
    np.clip(q, 0.0, 1.0, out=q)
    mixed = cv2.blendLinear(fp, bp, q, 1.0 - q)
    for (si, c0, c1), off in zip(blend, offsets[:-1], strict=True):
        y0, y1, x0, x1 = si * strip, min(h, (si + 1) * strip), c0 * f, c1 * f
        px = (off + 1) * f
        out[y0:y1, x0:x1] = mixed[: y1 - y0, px : px + x1 - x0]
    return out


def full_alpha(frame: np.ndarray, low: LowMatte) -> np.ndarray:
    """The whole full-resolution alpha (float32); for tests and inspection, not on the fast path."""
    return low.full_alpha(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY))


def _runs(grid: np.ndarray) -> list[Block]:
    """(row, start, end) of every run of True in each row of a 2-D bool array, row by row."""
    n = grid.shape[0]
    edged = np.zeros((n, grid.shape[1] + 2), np.int8)
    edged[:, 1:-1] = grid
    rows, cols = np.nonzero(np.diff(edged, axis=1))
    # in each row the changes alternate: start, end, start, end…
    return list(zip(rows[0::2].tolist(), cols[0::2].tolist(), cols[1::2].tolist(), strict=True))
