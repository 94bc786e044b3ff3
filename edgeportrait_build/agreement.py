"""How well our masks agree with the reference runtime's, per image and per scene class.

Used by the model build's report, the tests and ``scripts/agreement.py``; nothing
at run time imports it. Two figures per image, both 1.0 for identical masks:

``iou``
    IoU of the person areas (mask > 0.5) — except where both masks together mark
    less than :data:`EMPTY_FRACTION` of the image as person (a frame with nobody,
    or a person of a few pixels), where IoU is a ratio of two tiny numbers: there
    it is the fraction of pixels on which the two masks agree.
``sure_iou``
    the same, counting only the pixels where the reference is sure: its value is
    at least :data:`UNSURE` away from 0.5. Where the model itself hesitates (a
    blurred person of 20 pixels, a dark figure against a window), a change of
    0.01 in the output moves pixels across 0.5 and plain IoU measures that
    hesitation, not agreement: FP32, which differs from the reference by float
    rounding only, scores 0.92 plain IoU on such images and 1.000 here.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

EMPTY_FRACTION = 0.01
UNSURE = 0.1
METRICS = ("iou", "sure_iou")


def score(mask: np.ndarray, ref: np.ndarray, unsure: float = 0.0) -> float:
    """IoU@0.5 (pixel agreement where (almost) nobody is), over the pixels where |ref - 0.5| >= ``unsure``."""
    counted = np.abs(ref - 0.5) >= unsure if unsure > 0 else np.ones(ref.shape, bool)
    a, b = (mask > 0.5) & counted, (ref > 0.5) & counted
    union = int(np.logical_or(a, b).sum())
    if union < EMPTY_FRACTION * a.size:
        return 1.0 - float(np.logical_xor(a, b).mean())
    return int(np.logical_and(a, b).sum()) / union


def measures(mask: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    return {"iou": score(mask, ref), "sure_iou": score(mask, ref, UNSURE)}


@dataclass(frozen=True)
class Case:
    name: str
    cls: str
    synthetic: bool
    path: Path


def cases(directory: Path) -> list[Case]:
    """The images of a data set part (a folder with ``manifest.json``)."""
    manifest = json.loads((directory / "manifest.json").read_text())
    return [
        Case(Path(e["file"]).stem, e["class"], bool(e["synthetic"]), directory / e["file"])
        for e in manifest["images"]
    ]


def read_image(case: Case) -> np.ndarray:
    img = cv2.imread(str(case.path), cv2.IMREAD_COLOR)
    if img is None:
        raise FileNotFoundError(case.path)
    return img


def read_reference(directory: Path, model: str, case: Case) -> np.ndarray:
    """The reference runtime's mask of one image, float32 in [0, 1]."""
    m = cv2.imread(str(directory / "masks" / model / f"{case.name}.png"), cv2.IMREAD_GRAYSCALE)
    if m is None:
        raise FileNotFoundError(directory / "masks" / model / f"{case.name}.png")
    return m.astype(np.float32) / 255.0


def scores(
    directory: Path, model: str, segment: Callable[[np.ndarray], np.ndarray]
) -> dict[str, dict[str, float]]:
    """:func:`measures` of every image: ``segment`` (BGR -> mask at the image size) against the reference."""
    return {c.name: measures(segment(read_image(c)), read_reference(directory, model, c)) for c in cases(directory)}


def by_class(directory: Path, per_image: dict[str, dict[str, float]], metric: str) -> dict[str, dict[str, Any]]:
    """Mean, worst and count of one metric per scene class of the part, plus ``all``; the worst image named."""
    return summarize(per_image, {c.name: c.cls for c in cases(directory)}, metric)


def summarize(
    per_image: dict[str, dict[str, float]], classes: dict[str, str], metric: str
) -> dict[str, dict[str, Any]]:
    """:func:`by_class` for images whose classes are given (``classes``: image -> class; the images
    it does not name count only in ``all``)."""
    groups: dict[str, list[tuple[float, str]]] = {}
    for name, m in per_image.items():
        for key in dict.fromkeys((classes.get(name, "all"), "all")):
            groups.setdefault(key, []).append((m[metric], name))
    return {
        k: {"n": len(v), "mean": float(np.mean([s for s, _ in v])), "worst": min(v)[0], "worst_image": min(v)[1]}
        for k, v in groups.items()
    }


def table(rows: Iterable[tuple[str, dict[str, dict[str, Any]]]], classes: Iterable[str]) -> str:
    """A markdown table: one row per (label, by_class result), columns mean / worst per class."""
    classes = list(classes)
    head = "| model / precision | " + " | ".join(classes) + " |"
    sep = "|---|" + "---|" * len(classes)
    lines = [head, sep]
    for label, res in rows:
        cells = [f"{res[c]['mean']:.3f} / {res[c]['worst']:.3f}" if c in res else "–" for c in classes]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
