"""`model:` — which segmentation model runs, at which precision, on which device."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from edgeportrait.config.base import Section

Device = Literal["AUTO", "CPU", "GPU", "NPU"]


def _default_fallback() -> list[Device]:
    return ["CPU"]


class ModelConfig(Section):
    name: Literal["general", "landscape"] = Field(
        "general", description="general: 256×256 input; landscape: 144×256, faster, for 16:9 video."
    )
    precision: Literal["auto", "int8", "fp32"] = Field(
        "auto",
        description="auto: INT8 where the device runs it fast (NPU, GPU, a CPU with VNNI/AMX, ARM with "
        "dot-product), else FP32; int8 / fp32 force one.",
    )
    device: Device = Field("AUTO", description="OpenVINO device to compile for.")
    fallback: list[Device] = Field(
        default_factory=_default_fallback,
        description="Devices tried in order when `device` is absent or fails to compile.",
    )
    dir: Path | None = Field(None, description="Directory with the IR files (default: the shipped models).")
    cache_dir: Path | None = Field(
        None,
        description="OpenVINO compiled-model cache (default: $CACHE_DIRECTORY/ov under systemd, "
        "else ~/.cache/edgeportrait/ov).",
    )
    infer_requests: int = Field(2, ge=1, le=8, description="Inference requests in flight at once.")

    def key(self) -> tuple[str, str, str]:
        """What a model change at run time changes: name, precision, device."""
        return (self.name, self.precision, self.device)
