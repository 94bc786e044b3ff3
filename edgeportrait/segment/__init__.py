"""Person segmentation: MediaPipe selfie segmentation as OpenVINO IR, and the Segmenter that runs it.

``Segmenter`` and the helpers import OpenVINO; ``build`` (the model tool chain)
needs the ``build`` extra and is imported only by ``edgeportrait model build``.
"""

from edgeportrait.segment.segmenter import (
    CallbackErrors,
    Segmenter,
    default_cache_dir,
    model_path,
    models_dir,
    to_model_input,
    upscale_mask,
)

__all__ = [
    "CallbackErrors",
    "Segmenter",
    "default_cache_dir",
    "model_path",
    "models_dir",
    "to_model_input",
    "upscale_mask",
]
