"""Reference masks: MediaPipe's own runtime on every image of a data set part.

Run with a Python that has ``mediapipe==0.10.14`` (it is not a dependency of
edgeportrait, not even a build one); ``edgeportrait model build`` makes such a
virtual environment itself when it needs reference masks, or by hand:

    python3.11 -m venv /tmp/mpvenv && /tmp/mpvenv/bin/pip install mediapipe==0.10.14
    /tmp/mpvenv/bin/python edgeportrait_build/reference_masks.py DIR [DIR ...]

DIR is a part of the data set (a folder with ``manifest.json`` and ``images/``).
For each image it writes ``DIR/masks/<model>/<stem>.png`` (8-bit grayscale,
round(mask × 255), the image's size) for ``general`` (model_selection=0) and
``landscape`` (model_selection=1). Each image gets a fresh SelfieSegmentation,
so nothing (e.g. smoothing over frames) carries from one image to the next.
Only numpy, OpenCV (mediapipe's own dependency) and the standard library are
used, and nothing of edgeportrait, so this runs outside edgeportrait's
environment (by its file path).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import cv2
import numpy as np

MODELS = {"general": 0, "landscape": 1}


def main(argv: list[str]) -> int:
    import mediapipe as mp

    if mp.__version__ != "0.10.14":
        print(f"need mediapipe 0.10.14, found {mp.__version__}", file=sys.stderr)
        return 1
    for d in map(Path, argv):
        manifest = json.loads((d / "manifest.json").read_text())
        for model, selection in MODELS.items():
            (d / "masks" / model).mkdir(parents=True, exist_ok=True)
            for entry in manifest["images"]:
                bgr = cv2.imread(str(d / entry["file"]), cv2.IMREAD_COLOR)
                if bgr is None:
                    print(f"{d / entry['file']}: cannot read", file=sys.stderr)
                    return 1
                rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)  # mediapipe's solutions take RGB
                with mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=selection) as seg:
                    mask = seg.process(rgb).segmentation_mask
                out = np.round(np.clip(mask, 0.0, 1.0) * 255.0).astype(np.uint8)
                target = d / "masks" / model / (Path(entry["file"]).stem + ".png")
                tmp = target.with_suffix(".tmp.png")
                cv2.imwrite(str(tmp), out)
                os.replace(tmp, target)
        print(f"{d}: reference masks for {len(manifest['images'])} images", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
