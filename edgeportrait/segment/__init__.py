"""Person segmentation: MediaPipe selfie segmentation as OpenVINO IR, and the Segmenter that runs it.

``model`` (pre/post-processing), ``adapter`` (OpenVINO: compile, device
fail-over) and ``segmenter`` (the facade); ``swap`` switches models at run
time. The model tool chain is the separate package ``edgeportrait_build``.
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
