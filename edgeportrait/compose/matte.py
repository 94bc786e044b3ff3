"""From the model's low-resolution mask to a full-resolution alpha matte.

The model sees 256 pixels; hair and shoulders are drawn at 1080p. The matte is
made in three cheap steps at a reduced "working" resolution (short side about
180–359 px) and one step at full resolution, only where it matters (the band
around the silhouette; see :mod:`edgeportrait.compose.blend`):

1. threshold/softness: the model's confidence is mapped to alpha with a linear
   ramp (at model resolution, where it costs nothing);
2. feather: an optional Gaussian softening of the edge (working resolution);
3. refinement: the fast guided filter (He & Sun, "Fast Guided Filter", 2015),
   guided by the frame's luminance: its linear coefficients are computed at the
   working resolution, upsampled, and applied to the full-resolution luminance,
   so the alpha edge snaps to the frame's real edges at full resolution.

Temporal smoothing for video is a small stateful object (:class:`TemporalSmoother`)
working at model resolution.
"""

from __future__ import annotations

import logging
import threading

import cv2
import numpy as np

from edgeportrait.compose import native

logger = logging.getLogger(__name__)

REFERENCE_SHORT_SIDE = 1080  # sizes in the config are "pixels at 1080p"
SETTLED = 5e-4  # alpha this close to 0 or 1 counts as 0 or 1 (1/8 of an 8-bit level)
# Working short side stays >= this: near the model's own 256 px (the guided filter takes the detail from
# the full-resolution frame anyway). 180 rather than 256 puts 720p at 1/4 (320×180) instead of 1/2:
# measured on the astronaut photo at 720p, alpha differs by 0.001 on average and compositing is ~2x faster.
MIN_WORKING_SHORT_SIDE = 180


def px_at(frame_short_side: int, px_at_1080p: float) -> float:
    """Convert a size given in pixels at 1080p to pixels of a frame with this short side."""
    return px_at_1080p * frame_short_side / REFERENCE_SHORT_SIDE


def working_factor(h: int, w: int) -> int:
    """Power-of-two downscale factor for the working resolution (short side stays >= MIN_WORKING_SHORT_SIDE)."""
    f = 1
    while min(h, w) // (f * 2) >= MIN_WORKING_SHORT_SIDE:
        f *= 2
    return f


def downscale(img: np.ndarray, factor: int) -> np.ndarray:
    """Area-average downscale by a power of two.

    Halving with INTER_AREA when both sides are even hits OpenCV's fast 2x path
    (about 5x faster at 1080p than one generic 4x INTER_AREA resize). The C
    library, when built, does as many of the halvings as the sides allow in one
    pass with the same result; OpenCV any that are left (a side gone odd).
    """
    out = img
    lib = native.library() if factor > 1 else None
    if lib is not None:
        h, w = img.shape[:2]
        levels = 0
        while 1 << (levels + 1) <= min(factor, 16) and h % (1 << (levels + 1)) == 0 and w % (1 << (levels + 1)) == 0:
            levels += 1
        if levels:
            out = native.halve(lib, img, levels, native.threads())
            factor >>= levels
    while factor > 1:
        h, w = out.shape[:2]
        out = cv2.resize(out, ((w + 1) // 2, (h + 1) // 2), interpolation=cv2.INTER_AREA)
        factor //= 2
    return out


def as_float_mask(mask: np.ndarray) -> np.ndarray:
    """The model mask as float32 in [0, 1], 2-D; accepts float in [0,1], uint8 (255) or uint16 (65535)."""
    m = np.asarray(mask)
    if m.ndim == 3 and m.shape[2] == 1:
        m = m[:, :, 0]
    if m.ndim != 2 or m.size == 0:
        raise ValueError(f"mask must be a 2-D array, got shape {m.shape}")
    if m.dtype == np.uint8:
        return m.astype(np.float32) / np.float32(255)
    if m.dtype == np.uint16:
        return m.astype(np.float32) / np.float32(65535)
    if m.dtype == np.bool_:
        return m.astype(np.float32)
    out = m.astype(np.float32, copy=True)
    np.clip(out, 0.0, 1.0, out=out)  # ±inf included; NaN stays NaN
    if np.isnan(out).any():  # a broken model output: no confidence there (nan_to_num is 5x a clip)
        np.nan_to_num(out, copy=False, nan=0.0)
    return out


def ramp(mask: np.ndarray, threshold: float, softness: float) -> np.ndarray:
    """Map model confidence to alpha: 0 below threshold-softness/2, 1 above threshold+softness/2."""
    if softness <= 1e-6:
        return (mask >= threshold).astype(np.float32)
    lo = threshold - softness / 2
    out = (mask - np.float32(lo)) * np.float32(1 / softness)
    np.clip(out, 0.0, 1.0, out=out)
    return out


def guided_coefficients(
    guide_low: np.ndarray, p_low: np.ndarray, radius_low: int, eps: float
) -> tuple[np.ndarray, np.ndarray]:
    """The fast guided filter's smoothed linear coefficients at the working resolution.

    ``guide_low``: float32 luminance in [0, 1]; ``p_low``: float32 input.
    The filtered output at full resolution is ``up(a) · I + up(b)`` with I the
    full-resolution uint8 luminance — the returned ``a`` has 1/255 folded in,
    so the full-resolution guide never needs a float conversion.
    """
    ksize = (2 * radius_low + 1, 2 * radius_low + 1)

    def box(x: np.ndarray) -> np.ndarray:
        return cv2.boxFilter(x, cv2.CV_32F, ksize, borderType=cv2.BORDER_REFLECT)

    mean_i = box(guide_low)
    mean_p = box(p_low)
    cov_ip = box(guide_low * p_low) - mean_i * mean_p
    var_i = box(guide_low * guide_low) - mean_i * mean_i
    a = cov_ip / (var_i + np.float32(eps))
    b = mean_p - a * mean_i
    mean_a = box(a)
    mean_a *= np.float32(1 / 255)
    return mean_a, box(b)


# a working cell's kind (LowMatte.kind, and what the C pass reads)
CELL_BACKGROUND, CELL_INTERIOR, CELL_BAND = 0, 1, 2


class LowMatte:
    """Everything about the matte that is computed at the working resolution.

    The full resolution is exactly ``factor`` times the working resolution
    (the compositor pads odd sizes). ``coef``: float32 (lh, lw, 2) — per
    working pixel the linear map (a, b) that turns full-resolution luminance
    (0…255) into alpha, α = a·I + b (a = 0, b = alpha when there is no
    refinement); ``alpha``: float32 alpha at the working resolution (for the
    background weight); ``kind``: uint8 per cell, :data:`CELL_INTERIOR` where
    every full-resolution pixel has α = 1 (within 1/1000), :data:`CELL_BAND`
    where α may be strictly between 0 and 1 — the only cells that need
    per-pixel work at full resolution — and :data:`CELL_BACKGROUND` (α = 0)
    everywhere else.
    """

    __slots__ = ("coef", "alpha", "kind", "factor")

    def __init__(self, coef: np.ndarray, alpha: np.ndarray, kind: np.ndarray, factor: int) -> None:
        self.coef = coef
        self.alpha = alpha
        self.kind = kind
        self.factor = factor

    @property
    def interior(self) -> np.ndarray:
        """bool per cell: α = 1 for every pixel of it."""
        return self.kind == CELL_INTERIOR

    @property
    def band(self) -> np.ndarray:
        """bool per cell: α may be strictly between 0 and 1 somewhere in it."""
        return self.kind == CELL_BAND

    @property
    def full_shape(self) -> tuple[int, int]:
        lh, lw = self.alpha.shape
        return lh * self.factor, lw * self.factor

    def full_alpha(self, luma: np.ndarray) -> np.ndarray:
        """α for the whole frame (float32 in [0, 1]) from its uint8 luminance; not on the fast path."""
        h, w = self.full_shape
        ab = cv2.resize(self.coef, (w, h), interpolation=cv2.INTER_LINEAR)
        q = ab[:, :, 0] * luma
        q += ab[:, :, 1]
        np.clip(q, 0.0, 1.0, out=q)
        return q


def make_low_matte(
    small: np.ndarray,
    a_model: np.ndarray,
    factor: int,
    feather_low: float,
    radius_low: int,
    eps: float,
) -> LowMatte:
    """Build the :class:`LowMatte` from the frame at working resolution and the ramped model alpha.

    The guided filter and the cells' kinds are one C call where the compositor's
    C library was built (:mod:`edgeportrait.compose.native`), OpenCV and numpy
    calls otherwise; the two agree to float rounding.
    """
    lh, lw = small.shape[:2]
    p_low = cv2.resize(a_model, (lw, lh), interpolation=cv2.INTER_LINEAR)
    if feather_low >= 0.3:  # narrower than a third of a working pixel would change nothing visible
        p_low = cv2.GaussianBlur(p_low, (0, 0), feather_low, borderType=cv2.BORDER_REFLECT)
    if radius_low >= 1:
        luma = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
        lib = native.library()
        if lib is not None:
            coef, kind = native.low_matte(lib, luma, p_low, radius_low, eps, SETTLED, native.threads())
            return LowMatte(coef, p_low, kind, factor)
        guide = luma.astype(np.float32)
        guide *= np.float32(1 / 255)
        mean_a, mean_b = guided_coefficients(guide, p_low, radius_low, eps)
    else:
        mean_a, mean_b = np.zeros_like(p_low), p_low
    return LowMatte(cv2.merge([mean_a, mean_b]), p_low, cell_kinds(mean_a, mean_b), factor)


def cell_kinds(mean_a: np.ndarray, mean_b: np.ndarray) -> np.ndarray:
    """Each working cell's kind (uint8) from the guided filter's coefficients at the working resolution."""
    # Where |a|·255 and the distance of b from 0 or 1 are both below SETTLED, α = a·I + b is within
    # 2·SETTLED of 0 or 1 for every luminance — the same as 0 or 1 after rounding to 8 bits.
    # A full-resolution pixel mixes the cell with its neighbours (bilinear), hence the 3×3 erosion.
    flat = np.abs(mean_a) * np.float32(255) <= SETTLED
    one = np.ascontiguousarray((flat & (mean_b >= 1 - SETTLED)).view(np.uint8))
    zero = np.ascontiguousarray((flat & (mean_b <= SETTLED)).view(np.uint8))
    k = np.ones((3, 3), np.uint8)
    interior = cv2.erode(one, k, borderType=cv2.BORDER_REPLICATE)
    exterior = cv2.erode(zero, k, borderType=cv2.BORDER_REPLICATE)
    kind = np.full(mean_a.shape, CELL_BAND, np.uint8)
    kind[interior.view(bool)] = CELL_INTERIOR
    kind[exterior.view(bool)] = CELL_BACKGROUND  # never both: b cannot be near 1 and near 0
    return kind


class TemporalSmoother:
    """Exponential smoothing of the mask over video frames, at model resolution.

    A plain moving average would make a moving person leave a ghost; so the
    weight of the past fades where the new mask differs a lot from it (the
    person moved), and stays where the difference is small (flicker).
    The state is guarded by a lock: one smoother per stream, but the daemon
    may reset it from another thread.
    """

    # a change of this much (in confidence) or more is treated as motion: no smoothing there
    MOTION_DELTA = 0.5

    def __init__(self) -> None:
        self._prev: np.ndarray | None = None
        self._lock = threading.Lock()

    def reset(self) -> None:
        with self._lock:
            self._prev = None

    def __call__(self, mask: np.ndarray, strength: float) -> np.ndarray:
        with self._lock:
            prev = self._prev
            if strength <= 0 or prev is None or prev.shape != mask.shape:
                out = mask
            else:
                keep = np.abs(mask - prev)
                keep *= np.float32(-1 / self.MOTION_DELTA)
                keep += np.float32(1)
                np.clip(keep, 0.0, 1.0, out=keep)
                keep *= np.float32(strength)
                # out = mask + keep * (prev - mask)
                out = prev - mask
                out *= keep
                out += mask
            self._prev = out
            return out
