"""The compositor: I = αF + (1−α)B, with α refined from the model mask and B the background.

Two ways in:

- :class:`Compositor` — one per video stream (or per worker thread); holds the
  settings and the temporal smoothing state, the only state that carries from
  one call to the next (the smoothing behind its own lock). ``compose(frame, mask, settings_override)``.
- :func:`compose` — stateless, for single full-resolution captures and files.

Both take the full-resolution BGR uint8 frame and the model's mask at model
resolution (any size; float in [0,1], uint8 or uint16) and do the upsampling
themselves. Everything wide (the blur, the guided filter's statistics) runs at
a reduced resolution; full-resolution arithmetic happens only in the band
around the silhouette (:mod:`edgeportrait.compose.blend`). The settings are
documented in ``docs/configuration.md`` (``portrait:``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import cv2
import numpy as np
from pydantic import ValidationError

from edgeportrait.compose.background import (
    ImageCache,
    blur_sigma,
    color_background,
    gray_background,
    masked_blur,
)
from edgeportrait.compose.blend import full_alpha, render
from edgeportrait.compose.matte import (
    LowMatte,
    TemporalSmoother,
    as_float_mask,
    downscale,
    make_low_matte,
    px_at,
    ramp,
    working_factor,
)
from edgeportrait.config import validation_messages
from edgeportrait.config.portrait import PortraitConfig
from edgeportrait.errors import ConfigError

logger = logging.getLogger(__name__)

_IMAGES = ImageCache()  # background pictures, shared by every compositor (read-only entries, locked)


def resolve_settings(
    base: PortraitConfig | None, override: PortraitConfig | Mapping[str, Any] | None
) -> PortraitConfig:
    """Settings for one call: ``base`` with ``override`` applied, validated.

    A bad override raises :class:`ConfigError` whose lines name the setting,
    e.g. ``portrait.blur: Input should be less than or equal to 100 (got 200)``.
    """
    if isinstance(override, PortraitConfig):
        return override
    base = base if base is not None else PortraitConfig()
    if not override:
        return base
    if not isinstance(override, Mapping):
        raise ConfigError([f"portrait: settings must be a mapping, not {type(override).__name__}"])
    data = base.model_dump()
    data.update(override)
    try:
        return PortraitConfig.model_validate(data)
    except ValidationError as e:
        lines = []
        for line in validation_messages(e):
            top = "(top level)"
            lines.append("portrait" + (line[len(top) :] if line.startswith(top) else "." + line))
        raise ConfigError(lines) from None


def _check_frame(frame: np.ndarray) -> None:
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        shape = getattr(frame, "shape", None)
        dtype = getattr(frame, "dtype", None)
        raise ValueError(f"frame must be BGR uint8 HxWx3, got shape {shape} dtype {dtype}")
    if frame.shape[0] < 2 or frame.shape[1] < 2:
        raise ValueError(f"frame too small: {frame.shape[1]}x{frame.shape[0]}")


class Prepared:
    """The reduced-resolution work for one frame: the frame downscaled, and the matte."""

    __slots__ = ("small", "factor", "matte")

    def __init__(self, small: np.ndarray, factor: int, matte: LowMatte) -> None:
        self.small = small
        self.factor = factor
        self.matte = matte


def pad_to_factor(frame: np.ndarray) -> tuple[np.ndarray, int]:
    """The frame padded (edge pixels repeated) to a multiple of its working factor, and the factor.

    Common sizes (720p, 1080p, 4K) need no padding; odd ones get a copy, so
    that the working resolution is an exact fraction of the full one.
    """
    h, w = frame.shape[:2]
    f = working_factor(h, w)
    ph, pw = -h % f, -w % f
    if ph or pw:
        frame = cv2.copyMakeBorder(frame, 0, ph, 0, pw, cv2.BORDER_REPLICATE)
    return frame, f


def prepare(
    frame: np.ndarray,
    mask: np.ndarray,
    s: PortraitConfig,
    smoother: TemporalSmoother | None = None,
    factor: int | None = None,
) -> Prepared:
    """Model mask → the matte at working resolution (threshold/softness, feather, guided filter).

    ``frame``'s sides must be multiples of ``factor`` (see :func:`pad_to_factor`).
    """
    h, w = frame.shape[:2]
    short = min(h, w)
    m = as_float_mask(mask)
    if smoother is not None:
        m = smoother(m, s.smoothing)
    a_model = ramp(m, s.threshold, s.softness)
    f = factor if factor is not None else working_factor(h, w)
    if h % f or w % f:
        raise ValueError(f"frame {w}x{h} is not a multiple of the working factor {f}")
    small = downscale(frame, f)
    matte = make_low_matte(
        small,
        a_model,
        f,
        feather_low=px_at(short, s.feather) / f,
        radius_low=round(px_at(short, s.refine_radius) / f),
        eps=s.refine_eps,
    )
    return Prepared(small, f, matte)


def make_background(frame: np.ndarray, prep: Prepared, s: PortraitConfig) -> np.ndarray:
    """The background B for a frame in the configured mode: a new BGR uint8 array, full resolution."""
    h, w = frame.shape[:2]
    if s.mode == "blur":
        sigma = blur_sigma(s.blur, h, w)
        if sigma <= 0:
            return frame.copy()
        return masked_blur(frame, prep.matte.alpha, sigma, pyramid=(prep.small, prep.factor))
    if s.mode == "grayscale":
        return gray_background(frame)
    if s.mode == "color":
        return color_background(h, w, s.color)
    assert s.image is not None  # the config requires it for mode=image
    return _IMAGES.get(s.image, h, w).copy()  # the cached picture is shared and read-only


def _compose(frame: np.ndarray, mask: np.ndarray, s: PortraitConfig, smoother: TemporalSmoother | None) -> np.ndarray:
    _check_frame(frame)
    if s.mode == "blur" and blur_sigma(s.blur, *frame.shape[:2]) <= 0:
        if smoother is not None:  # keep the smoothing state current for when the blur comes back
            smoother(as_float_mask(mask), s.smoothing)
        return frame.copy()
    h, w = frame.shape[:2]
    work, f = pad_to_factor(frame)
    prep = prepare(work, mask, s, smoother, f)
    out = render(work, prep.matte, make_background(work, prep, s))
    return out if work is frame else np.ascontiguousarray(out[:h, :w])


def compose(
    frame: np.ndarray,
    mask: np.ndarray,
    settings: PortraitConfig | Mapping[str, Any] | None = None,
) -> np.ndarray:
    """Stateless portrait of one frame (no temporal smoothing): a new BGR uint8 array of the frame's size."""
    return _compose(frame, mask, resolve_settings(None, settings), None)


def alpha_matte(
    frame: np.ndarray, mask: np.ndarray, settings: PortraitConfig | Mapping[str, Any] | None = None
) -> np.ndarray:
    """The full-resolution alpha (float32 in [0, 1]) that :func:`compose` blends with."""
    _check_frame(frame)
    h, w = frame.shape[:2]
    work, f = pad_to_factor(frame)
    alpha = full_alpha(work, prepare(work, mask, resolve_settings(None, settings), None, f).matte)
    return np.ascontiguousarray(alpha[:h, :w])


def foreground_fraction(mask: np.ndarray, settings: PortraitConfig | None = None) -> float:
    """Share of the picture that is person (mean alpha at model resolution, before refinement)."""
    s = settings if settings is not None else PortraitConfig()
    return float(ramp(as_float_mask(mask), s.threshold, s.softness).mean())


class Compositor:
    """Composes the frames of one stream (or one worker's files).

    Keeps between calls only the temporal smoothing state (``temporal=True``,
    for video). ``settings`` are the defaults of every call; a caller whose
    settings change at run time (the daemon's stream) passes its current
    ``PortraitConfig`` to each :meth:`compose` instead.
    """

    def __init__(self, settings: PortraitConfig | None = None, *, temporal: bool = True) -> None:
        self._settings = settings if settings is not None else PortraitConfig()
        self._smoother = TemporalSmoother() if temporal else None

    @property
    def settings(self) -> PortraitConfig:
        return self._settings

    def reset(self) -> None:
        """Forget the previous frames (a scene cut, a camera reconnect)."""
        if self._smoother is not None:
            self._smoother.reset()

    def compose(
        self,
        frame: np.ndarray,
        mask: np.ndarray,
        settings_override: PortraitConfig | Mapping[str, Any] | None = None,
    ) -> np.ndarray:
        """Portrait of ``frame`` (BGR uint8, any size) from the model's ``mask``; a new array."""
        return _compose(frame, mask, resolve_settings(self._settings, settings_override), self._smoother)
