"""Person segmentation: MediaPipe selfie segmentation as OpenVINO IR, and the Segmenter that runs it.

``Segmenter`` and the helpers import OpenVINO; ``build`` (the model tool chain)
needs the ``build`` extra and is imported only by ``edgeportrait model build``.
"""

from edgeportrait._openvino import import_openvino

import_openvino()  # before segmenter's `import openvino`: the runtime without the converter (see there)

from edgeportrait.segment.segmenter import (  # noqa: E402
    CallbackErrors,
    Segmenter,
    default_cache_dir,
    model_path,
    models_dir,
    to_model_input,
    upscale_mask,
    with_preprocessing,
)

__all__ = [
    "CallbackErrors",
    "Segmenter",
    "default_cache_dir",
    "model_path",
    "models_dir",
    "to_model_input",
    "upscale_mask",
    "with_preprocessing",
]
