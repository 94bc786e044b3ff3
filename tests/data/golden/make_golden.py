"""Make the golden masks: MediaPipe's own runtime on the test photos.

The masks in this folder are what the reference implementation
(``mediapipe==0.10.14``, ``mp.solutions.selfie_segmentation``) returns for the
photos in ``tests/data``; the tests check that our OpenVINO models agree with
them. Run it once, in a throwaway environment that has mediapipe (it is not a
dependency of edgeportrait, not even a build one):

    python3.11 -m venv /tmp/mpvenv
    /tmp/mpvenv/bin/pip install mediapipe==0.10.14
    /tmp/mpvenv/bin/python tests/data/golden/make_golden.py

It writes ``<model>/<case>.png`` (16-bit grayscale, mask x 65535, the input's
width x height) for model ``general`` (model_selection=0) and ``landscape``
(model_selection=1). Every image gets a fresh SelfieSegmentation instance, so
no state (e.g. smoothing over frames) carries from one image to the next.

``CASES`` is also imported by the tests (this module imports mediapipe only in
``main``), so the inputs are built the same way on both sides.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

HERE = Path(__file__).resolve().parent
DATA = HERE.parent

# case name -> (photo in tests/data, transform applied to the BGR image).
# The photos: astronaut.png (NASA, public domain, via scikit-image),
# camera.png (the "cameraman", scikit-image, grayscale), grace_hopper.jpg
# (US Navy, public domain, via matplotlib). The derived cases give other
# aspect ratios and a mirrored pose from the same public photos.
CASES: dict[str, tuple[str, Callable[[np.ndarray], np.ndarray]]] = {
    "astronaut": ("astronaut.png", lambda im: im),
    "camera": ("camera.png", lambda im: im),
    "grace_hopper": ("grace_hopper.jpg", lambda im: im),
    "grace_hopper_flip_wide": ("grace_hopper.jpg", lambda im: cv2.flip(im, 1)[120:408, :]),
    "astronaut_tall": ("astronaut.png", lambda im: im[:, 96:416]),
}

MODELS = {"general": 0, "landscape": 1}


def load_case(name: str) -> np.ndarray:
    """The BGR uint8 input of one case."""
    fname, transform = CASES[name]
    img = cv2.imread(str(DATA / fname), cv2.IMREAD_COLOR)
    if img is None:
        raise FileNotFoundError(DATA / fname)
    return np.ascontiguousarray(transform(img))


def read_golden(model: str, name: str) -> np.ndarray:
    """The reference mask of one case as float32 in [0, 1]."""
    m = cv2.imread(str(HERE / model / f"{name}.png"), cv2.IMREAD_UNCHANGED)
    if m is None:
        raise FileNotFoundError(HERE / model / f"{name}.png")
    return m.astype(np.float32) / 65535.0


def main() -> int:
    import mediapipe as mp

    if mp.__version__ != "0.10.14":
        print(f"need mediapipe 0.10.14, found {mp.__version__}", file=sys.stderr)
        return 1
    for model, selection in MODELS.items():
        (HERE / model).mkdir(exist_ok=True)
        for name in CASES:
            bgr = load_case(name)
            # mediapipe's solutions take RGB
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            with mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=selection) as seg:
                mask = seg.process(rgb).segmentation_mask
            assert mask.shape == bgr.shape[:2], (mask.shape, bgr.shape)
            out = np.round(np.clip(mask, 0.0, 1.0) * 65535.0).astype(np.uint16)
            cv2.imwrite(str(HERE / model / f"{name}.png"), out)
            print(f"{model}/{name}.png {bgr.shape[1]}x{bgr.shape[0]} person={float((mask > 0.5).mean()):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
