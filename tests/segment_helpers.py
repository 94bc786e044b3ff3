"""Shared by the segment tests: the golden cases and mask comparison."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import numpy as np

REPO = Path(__file__).resolve().parent.parent
MODELS = REPO / "models"
GOLDEN_DIR = REPO / "tests" / "data" / "golden"


def _load_golden_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_golden", GOLDEN_DIR / "make_golden.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


golden = _load_golden_module()


def iou(a: np.ndarray, b: np.ndarray, threshold: float = 0.5) -> float:
    """IoU of the person areas (mask > threshold) of two masks."""
    pa, pb = a > threshold, b > threshold
    union = np.logical_or(pa, pb).sum()
    return 1.0 if union == 0 else float(np.logical_and(pa, pb).sum() / union)
