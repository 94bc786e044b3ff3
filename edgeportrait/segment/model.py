"""The model's side of segmentation: where its files are, what it takes, what it gives back.

Nothing here touches OpenVINO (that is :mod:`edgeportrait.segment.adapter`):
these are pure functions on numpy arrays, the same for every device, and the
offline tools (the model build, the agreement report) prepare their inputs
with them so that what they measure is what the daemon runs.

Pre- and postprocessing reproduce MediaPipe's own CPU graph for selfie
segmentation (``selfie_segmentation_cpu.pbtxt``), so our masks match the
reference runtime's:

* ``ImageToTensorCalculator`` (keep_aspect_ratio false, range [0, 1], border
  zero): the whole frame is mapped corner to corner onto the model input by
  ``cv::warpPerspective`` with ``INTER_LINEAR`` on the 8-bit image — plain
  bilinear sampling at ``x_src = x_dst * w / W`` with no half-pixel offset and
  no area averaging. ``cv2.resize`` samples differently and costs about one
  point of IoU against the reference masks (measured, see models/README.md),
  so :func:`to_model_input` does the same warp. Only the small output is
  computed, so this is cheap even for a 4K frame.
* RGB order, uint8 -> float32 and the /255 scale are done inside the model by
  OpenVINO's ``PrePostProcessor`` (:func:`edgeportrait.segment.adapter.with_preprocessing`);
  the frame goes in as BGR uint8.
  ``benchmarks/bench_segment.py --preprocessing`` (1920×1080 frame, general
  FP32, CPU time, one thread): warp + PrePostProcessor 4.57 ms, warp + numpy
  conversion 4.54 ms (the same, within noise), whole frame into the model with
  PrePostProcessor's linear resize 8.92 ms and mean IoU against the reference
  0.990 instead of 0.9999 — so the resize stays out of the model, and the
  conversion sits in it because it costs nothing and the request takes 8-bit
  input (a quarter of the bytes).
* ``TensorsToSegmentationCalculator`` (activation NONE — the model ends in a
  sigmoid): the model-sized mask is upscaled to the frame with ``cv::resize``
  ``INTER_LINEAR``; :func:`upscale_mask` does the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np


def models_dir(configured: str | Path | None = None) -> Path:
    """Where the IR files are: ``configured`` if given, else the copy inside an
    installed wheel (``edgeportrait/_models``), else ``models/`` of the source tree."""
    if configured is not None:
        return Path(configured)
    package = Path(__file__).resolve().parent.parent
    shipped = package / "_models"
    if shipped.is_dir():
        return shipped
    return package.parent / "models"


def model_path(name: str, precision: str, directory: str | Path | None = None) -> Path:
    """The IR (.xml) of one model variant, e.g. ``models/selfie_general_int8.xml``."""
    return models_dir(directory) / f"selfie_{name}_{precision}.xml"


def input_size(dims: Sequence[int | None] | None) -> tuple[int, int]:
    """(H, W) of a model input of shape 1×H×W×3 (``None`` for a dynamic dimension or rank);
    ValueError if the input is not one of a segmentation model."""
    if dims is None or len(dims) != 4 or any(d is None for d in dims) or dims[3] != 3:
        raise ValueError(f"not a segmentation model input: {dims}, want 1×H×W×3")
    h, w = dims[1], dims[2]
    assert h is not None and w is not None
    return h, w


def check_frame(frame: np.ndarray) -> np.ndarray:
    """``frame`` as H×W×3 BGR uint8 (a grayscale frame is converted); ValueError for anything else."""
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8:
        raise ValueError("frame must be a uint8 numpy array (BGR)")
    if frame.ndim == 2:
        frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.shape[0] < 1 or frame.shape[1] < 1:
        raise ValueError(f"frame must be H×W×3 BGR, got shape {frame.shape}")
    return frame


def to_model_input(frame_bgr: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The frame as the model sees it: ``size`` = (H, W), BGR uint8, shape (1, H, W, 3).

    MediaPipe's ImageToTensorCalculator maps the frame's corners (0,0)…(w,h)
    onto (0,0)…(W,H) and samples with cv::warpPerspective, INTER_LINEAR,
    BORDER_CONSTANT 0; for an unrotated full-frame ROI that matrix is a pure
    scale, which warpAffine applies identically (checked against warpPerspective).
    """
    frame = check_frame(frame_bgr)
    h, w = frame.shape[:2]
    H, W = size
    m = np.array([[W / w, 0.0, 0.0], [0.0, H / h, 0.0]], dtype=np.float64)
    out = cv2.warpAffine(frame, m, (W, H), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return out[np.newaxis]


def to_ir_input(frame_bgr: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """What the IR itself takes, without the preprocessing the runtime adds to it: RGB float32
    in [0, 1], shape (1, H, W, 3), made from :func:`to_model_input` (for the offline tools)."""
    x = to_model_input(frame_bgr, size)[..., ::-1].astype(np.float32) / 255.0
    return np.ascontiguousarray(x)


def mask_from_output(output: np.ndarray) -> np.ndarray:
    """The model's output (1×H×W×1, person probability) as an H×W float32 mask the caller owns."""
    return np.array(output[0, :, :, 0], dtype=np.float32, copy=True)


def upscale_mask(mask: np.ndarray, height: int, width: int) -> np.ndarray:
    """Model-sized mask -> frame-sized, as TensorsToSegmentationCalculator does (cv::resize, bilinear)."""
    if mask.shape == (height, width):
        return mask.astype(np.float32, copy=True)
    out = cv2.resize(mask.astype(np.float32, copy=False), (width, height), interpolation=cv2.INTER_LINEAR)
    return np.clip(out, 0.0, 1.0, out=out)
