"""The Segmenter's three parts, each alone: model (pure pre/post-processing), adapter (OpenVINO)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import openvino as ov
import pytest
from segment_helpers import MODELS, golden

from edgeportrait.config import ModelConfig
from edgeportrait.errors import FatalError
from edgeportrait.segment.adapter import DeviceAdapter, with_preprocessing
from edgeportrait.segment.model import input_size, mask_from_output, to_ir_input, to_model_input, upscale_mask


def test_the_model_part_needs_no_openvino() -> None:
    """model.py alone (loaded by path: importing it by name runs segment/__init__, which loads the runtime)."""
    path = Path(__file__).resolve().parent.parent / "edgeportrait" / "segment" / "model.py"
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('model', {str(path)!r})\n"
        "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
        "print('openvino' in sys.modules)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.stdout.strip() == "False", r.stderr


@pytest.mark.parametrize(
    ("dims", "size"), [([1, 256, 256, 3], (256, 256)), ([1, 144, 256, 3], (144, 256))]
)
def test_input_size_of_a_segmentation_input(dims: list[int], size: tuple[int, int]) -> None:
    assert input_size(dims) == size


@pytest.mark.parametrize("dims", [None, [1, 256, 256], [1, 3, 256, 256], [1, None, 256, 3]])
def test_input_size_refuses_anything_else(dims: list[int | None] | None) -> None:
    with pytest.raises(ValueError, match="not a segmentation model input"):
        input_size(dims)


def test_output_to_mask_and_upscale() -> None:
    out = np.linspace(0, 1, 2 * 3, dtype=np.float32).reshape(1, 2, 3, 1)
    mask = mask_from_output(out)
    assert mask.shape == (2, 3) and mask.dtype == np.float32
    out[0, 0, 0, 0] = 9.0
    assert mask[0, 0] == 0.0  # a copy: the request's buffer may be reused
    big = upscale_mask(mask, 20, 30)
    assert big.shape == (20, 30) and big.min() >= 0.0 and big.max() <= 1.0


def test_the_runtime_preprocessing_is_what_the_offline_tools_do_in_numpy() -> None:
    """with_preprocessing(IR) on to_model_input == the bare IR on to_ir_input: the build and the
    report measure what the daemon runs."""
    core = ov.Core()
    ir = core.read_model(MODELS / "selfie_general_fp32.xml")
    frame = golden.load_case("astronaut")
    cfg = {"INFERENCE_PRECISION_HINT": "f32"}
    with_ppp = core.compile_model(with_preprocessing(ir), "CPU", cfg)(to_model_input(frame, (256, 256)))[0]
    bare = core.compile_model(core.read_model(MODELS / "selfie_general_fp32.xml"), "CPU", cfg)(
        to_ir_input(frame, (256, 256))
    )[0]
    assert np.allclose(with_ppp, bare, atol=1e-5)


def test_the_adapter_compiles_and_records_the_devices_it_passed_over(tmp_path: Path) -> None:
    if any(d.startswith("NPU") for d in ov.Core().available_devices):
        pytest.skip("this machine has an NPU")
    adapter = DeviceAdapter(ModelConfig(device="NPU", fallback=["CPU"], precision="fp32", cache_dir=tmp_path))
    assert (adapter.device, adapter.precision, adapter.input_size) == ("CPU", "fp32", (256, 256))
    assert adapter.fallbacks == ["NPU: not present"]
    with pytest.raises(FatalError, match="CPU failed at run time \\(lost\\) and .*no device could run the model"):
        adapter.fail_over("lost")
    assert adapter.fallbacks[-1] == "CPU: failed at run time: lost"
