"""Compositing: the person sharp, the background replaced, joined by I = αF + (1−α)B.

See :mod:`edgeportrait.compose.compositor` for the entry points.
"""

from edgeportrait.compose.background import blur_sigma, fast_blur
from edgeportrait.compose.compositor import (
    Compositor,
    alpha_matte,
    compose,
    foreground_fraction,
    make_background,
    prepare,
    resolve_settings,
)
from edgeportrait.compose.naive import naive_compose

__all__ = [
    "Compositor",
    "alpha_matte",
    "blur_sigma",
    "compose",
    "fast_blur",
    "foreground_fraction",
    "make_background",
    "naive_compose",
    "prepare",
    "resolve_settings",
]
