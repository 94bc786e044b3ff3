"""Segmenter(cpu_threads=N): the inference runs on N CPU threads (process asks for one per photo)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgeportrait.config import ModelConfig
from edgeportrait.segment.segmenter import Segmenter


@pytest.mark.parametrize("device", ["CPU", "AUTO"])
def test_cpu_threads_is_what_the_compiled_model_uses(tmp_path: Path, device: str) -> None:
    cfg = ModelConfig(precision="fp32", device=device, cache_dir=tmp_path)
    one = Segmenter(cfg, cpu_threads=1)
    if device == "CPU":  # AUTO passes it on to the CPU plugin but does not report it back
        assert int(one.compiled.get_property("INFERENCE_NUM_THREADS")) == 1
    default = Segmenter(cfg)
    frame = np.random.default_rng(0).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    # the same mask either way: only where the work runs changes
    assert np.array_equal(one.infer(frame), default.infer(frame))
