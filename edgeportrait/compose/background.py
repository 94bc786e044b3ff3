"""Backgrounds: the blurred scene (without the person's colours), gray, a colour, a picture.

Blur strength is resolution independent: sigma = blur/100 × short side / 36
(30 px at 1080p for blur 100, a strong DSLR-like background). A Gaussian
that wide is computed at a reduced resolution (area downscale by a power of
two, a small Gaussian, bilinear upscale), which is visually the same as the
full-resolution blur because the blur removes the detail the downscale drops;
`bench` and the tests measure the difference.

Halo: blurring the whole frame would smear the sharp person's colours into
the background around the silhouette (the classic bright rim). The blur here
is *mask-normalised*: the frame is weighted by a background weight w (0 on
and near the person), blurred, and divided by the blurred weight, so every
background pixel is an average of background pixels only.
"""

from __future__ import annotations

import logging
import math
import threading
from collections import OrderedDict
from pathlib import Path

import cv2
import numpy as np

from edgeportrait.compose import native
from edgeportrait.compose.matte import downscale
from edgeportrait.errors import InputError
from edgeportrait.imageio import read_image

logger = logging.getLogger(__name__)

SIGMA_AT_100 = 1 / 36  # of the short side: 30 px at 1080p
# sigma at the reduced resolution stays at or above this: measured on a 1080p photo, sigma 15 px
# blurred at 1/8 resolution (1.9 px) differs from the full-resolution blur by 0.3 grey levels on
# average (PSNR 53 dB); at 0.94 px (sigma 7.5 at 1/8) it would be 48.7 dB with errors up to 10 levels.
MIN_LOW_SIGMA = 1.5
MAX_BLUR_FACTOR = 16
# Background weight excludes a margin around the mask (the model's edge can be a few px off)
EXCLUDE_MARGIN_FRAC = 0.01
# Weight of the global background mean where no background pixel is near (deep inside the person;
# always under alpha = 1 there, but it must be a background colour, never a division by ~0)
FILL_WEIGHT = 1e-3


def blur_sigma(blur: float, h: int, w: int) -> float:
    """Gaussian sigma in pixels for a blur setting 0…100 on an h×w frame."""
    return max(0.0, float(blur)) / 100.0 * SIGMA_AT_100 * min(h, w)


def blur_factor(sigma: float) -> int:
    """Power-of-two downscale for blurring with this sigma (sigma stays >= MIN_LOW_SIGMA at the low resolution)."""
    f = 1
    while sigma / (f * 2) >= MIN_LOW_SIGMA and f * 2 <= MAX_BLUR_FACTOR:
        f *= 2
    return f


def low_sigma(sigma: float, factor: int) -> float:
    """Sigma at 1/factor resolution so that downscale + blur + upscale has the variance of ``sigma``.

    The area downscale adds a box of width f (variance f²/12) and the bilinear
    upscale a triangle of width 2f (variance f²/6): together f²/4.
    """
    if factor == 1:
        return sigma
    return math.sqrt(max(sigma * sigma - factor * factor / 4, (sigma / 2) ** 2)) / factor


def fast_blur(frame: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of the whole frame at reduced resolution (no mask); used by bench/tests to rate it."""
    if sigma <= 0:
        return frame.copy()
    h, w = frame.shape[:2]
    f = blur_factor(sigma)
    small = downscale(frame, f)
    small = cv2.GaussianBlur(small, (0, 0), low_sigma(sigma, f), borderType=cv2.BORDER_REFLECT)
    return upscale(small, h, w)


def upscale(small: np.ndarray, h: int, w: int) -> np.ndarray:
    """A low-resolution background (BGR uint8) bilinearly to h×w: a new array (``small`` if it is that size).

    The C library's upsample when it is built and the factor across is 2, 4, 8
    or 16 (byte for byte cv2.resize's result, ~2× faster), cv2.resize otherwise.
    """
    if small.shape[:2] == (h, w):
        return small
    lib = native.library()
    if lib is not None:
        out = native.upsample(lib, small, h, w, native.threads())
        if out is not None:
            return out
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def masked_blur(
    frame: np.ndarray,
    alpha_low: np.ndarray,
    sigma: float,
    pyramid: tuple[np.ndarray, int] | None = None,
) -> np.ndarray:
    """The frame blurred with ``sigma``, using only background pixels (mask-normalised blur).

    ``alpha_low``: person alpha (float32, [0,1]) at any reduced resolution.
    ``pyramid``: the frame already downscaled by a power of two, (image, factor),
    to continue from. Returns a new uint8 BGR array at the frame's size.
    """
    h, w = frame.shape[:2]
    return upscale(masked_blur_low(frame, alpha_low, sigma, pyramid), h, w)


def masked_blur_low(
    frame: np.ndarray,
    alpha_low: np.ndarray,
    sigma: float,
    pyramid: tuple[np.ndarray, int] | None = None,
) -> np.ndarray:
    """:func:`masked_blur` before its upsample: the blurred background at 1/:func:`blur_factor` size."""
    h, w = frame.shape[:2]
    f = blur_factor(sigma)
    start, done = pyramid if pyramid is not None and pyramid[1] <= f else (frame, 1)
    small = downscale(start, f // done)
    sh, sw = small.shape[:2]
    a = alpha_low
    if a.shape != (sh, sw):
        a = cv2.resize(a, (sw, sh), interpolation=cv2.INTER_LINEAR)
    margin = max(1, round(EXCLUDE_MARGIN_FRAC * min(h, w) / f))
    a = cv2.dilate(a, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * margin + 1, 2 * margin + 1)))
    sigma_low = low_sigma(sigma, f)
    lib = native.library()
    if lib is not None:  # the rest in one C call (the same arithmetic, float rounding aside)
        ksize = round(sigma_low * 8 + 1) | 1  # the size cv2.GaussianBlur picks for float images
        kernel = cv2.getGaussianKernel(ksize, sigma_low, cv2.CV_32F)
        return native.masked_blur(lib, small, a, kernel, FILL_WEIGHT, native.threads())
    # pixels that are a third or more person carry its colour: weight 0
    weight = 1.0 - 3.0 * a
    np.clip(weight, 0.0, 1.0, out=weight)
    # one 4-channel image (B·w, G·w, R·w, 255·w): numerator and denominator blurred in one pass.
    # OpenCV calls throughout: numpy broadcasting over a last axis of 3 or 4 is several times slower.
    acc = cv2.multiply(cv2.cvtColor(small, cv2.COLOR_BGR2BGRA), cv2.merge([weight] * 4), dtype=cv2.CV_32F)
    sums = cv2.sumElems(acc)
    # the mean background colour fills where no background is near; with no background visible at
    # all, any neutral value will do (it is fully covered)
    fill = [255.0 * v / sums[3] for v in sums[:3]] if sums[3] > 255.0 else list(cv2.mean(small)[:3])
    blurred = cv2.GaussianBlur(acc, (0, 0), sigma_low, borderType=cv2.BORDER_REFLECT)
    blurred = cv2.add(blurred, tuple(FILL_WEIGHT * v for v in (*fill, 255.0)))  # type: ignore[call-overload]  # a Scalar; the stubs miss it
    den = cv2.extractChannel(blurred, 3)
    rgb = cv2.divide(cv2.cvtColor(blurred, cv2.COLOR_BGRA2BGR), cv2.merge([den, den, den]), scale=255.0)
    return cv2.convertScaleAbs(rgb)  # rounds and saturates to uint8 (values are >= 0)


def gray_background(frame: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)


def color_background(h: int, w: int, rgb: tuple[int, int, int]) -> np.ndarray:
    out = np.empty((h, w, 3), np.uint8)
    out[:] = (rgb[2], rgb[1], rgb[0])  # config is RGB, frames are BGR
    return out


def cover(img: np.ndarray, h: int, w: int) -> np.ndarray:
    """Scale ``img`` to cover h×w (keeping its aspect ratio) and crop the centre."""
    ih, iw = img.shape[:2]
    scale = max(h / ih, w / iw)
    nh, nw = max(h, math.ceil(ih * scale - 1e-9)), max(w, math.ceil(iw * scale - 1e-9))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    resized = cv2.resize(img, (nw, nh), interpolation=interp)
    y0, x0 = (nh - h) // 2, (nw - w) // 2
    return np.ascontiguousarray(resized[y0 : y0 + h, x0 : x0 + w])


class ImageCache:
    """Background pictures, decoded once and kept scaled to the frame sizes in use.

    Keyed by (path, mtime, size, frame size) so an edited file is picked up.
    Small and locked: the daemon's stream thread and capture thread share it.
    """

    def __init__(self, max_entries: int = 4) -> None:
        self._lock = threading.Lock()
        self._entries: OrderedDict[tuple[str, int, int, int, int], np.ndarray] = OrderedDict()
        self._max = max_entries

    def get(self, path: Path, h: int, w: int) -> np.ndarray:
        try:
            st = path.stat()
        except OSError:
            raise InputError(f"{path}: background image: no such file or not readable") from None
        key = (str(path), st.st_mtime_ns, st.st_size, h, w)
        with self._lock:
            hit = self._entries.get(key)
            if hit is not None:
                self._entries.move_to_end(key)
                return hit
        try:
            img = read_image(path)
        except InputError as e:
            raise InputError(f"background image: {e}") from None
        scaled = cover(img, h, w)
        scaled.setflags(write=False)  # shared between calls: nobody may draw on it
        with self._lock:
            self._entries[key] = scaled
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)
        return scaled
