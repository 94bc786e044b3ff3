"""model.precision auto: INT8 where the device runs it fast, FP32 where it does not, and why."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import openvino as ov
import openvino.opset13 as ops
import pytest

from edgeportrait.config import ModelConfig
from edgeportrait.segment import Segmenter
from edgeportrait.segment.precision import choose, cpu_flags, cpu_int8
from edgeportrait.segment.segmenter import is_quantized

MODELS = Path(__file__).resolve().parent.parent / "models"

AVX2 = {"sse4_2", "avx", "avx2", "fma"}
VNNI = AVX2 | {"avx512f", "avx512_vnni"}


@pytest.mark.parametrize(
    ("flags", "machine", "fast"),
    [
        (AVX2, "x86_64", False),
        (VNNI, "x86_64", True),
        (AVX2 | {"avx_vnni"}, "x86_64", True),  # Alder Lake and later: VNNI without AVX-512
        (AVX2 | {"amx_int8", "amx_tile"}, "x86_64", True),
        ({"fp", "asimd", "crc32"}, "aarch64", False),  # Cortex-A72 (Raspberry Pi 4)
        ({"fp", "asimd", "asimddp"}, "aarch64", True),  # Cortex-A76 (Raspberry Pi 5)
        (set(), "x86_64", False),  # unknown CPU: the safe choice
        ({"asimddp"}, "x86_64", False),  # an ARM flag means nothing on x86
    ],
)
def test_cpu_int8_follows_the_isa(flags: set[str], machine: str, fast: bool) -> None:
    assert cpu_int8(flags, machine)[0] is fast


def test_auto_picks_by_device_and_says_why() -> None:
    assert choose("auto", "CPU", ["CPU"], AVX2, "x86_64") == (
        "fp32", "auto: CPU has no amx_int8/avx512_vnni/avx_vnni, so INT8 is no faster than FP32 there and FP32 runs"
    )
    precision, why = choose("auto", "CPU", ["CPU"], VNNI, "x86_64")
    assert precision == "int8" and "avx512_vnni" in why
    assert choose("auto", "NPU", ["CPU", "NPU"], AVX2, "x86_64")[0] == "int8"
    assert choose("auto", "GPU", ["CPU", "GPU.0"], AVX2, "x86_64")[0] == "int8"
    # AUTO runs on the accelerator when there is one, else on the CPU
    assert choose("auto", "AUTO", ["CPU", "GPU.0"], AVX2, "x86_64")[0] == "int8"
    assert choose("auto", "AUTO", ["CPU"], AVX2, "x86_64")[0] == "fp32"


@pytest.mark.parametrize("forced", ["int8", "fp32"])
def test_forced_precision_is_kept_on_every_device(forced: str) -> None:
    for device, flags in (("CPU", AVX2), ("CPU", VNNI), ("NPU", AVX2), ("AUTO", AVX2)):
        assert choose(forced, device, ["CPU", "NPU"], flags, "x86_64") == (forced, f"model.precision is {forced}")


def test_cpu_flags_reads_x86_and_arm_cpuinfo(tmp_path: Path) -> None:
    x86 = tmp_path / "x86"
    x86.write_text("processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse avx2 avx512_vnni\n\nprocessor\t: 1\n")
    arm = tmp_path / "arm"
    arm.write_text("processor\t: 0\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm asimddp\n")
    assert cpu_flags(x86) == {"fpu", "sse", "avx2", "avx512_vnni"}
    assert cpu_flags(arm) == {"fp", "asimd", "evtstrm", "asimddp"}
    assert cpu_flags(tmp_path / "missing") == set()


def test_segmenter_runs_what_auto_chose_on_this_machine(tmp_path: Path) -> None:
    """The Segmenter loads the IR of the precision choose() gives for this CPU, and says so."""
    seg = Segmenter(ModelConfig(name="landscape", precision="auto", device="CPU", cache_dir=tmp_path))
    want, why = choose("auto", "CPU", ["CPU"])
    if want == "int8" and not is_quantized(ov.Core().read_model(MODELS / "selfie_landscape_int8.xml")):
        want, why = "fp32", f"{why}, but the INT8 model has no quantized layer (see models/README.md)"
    assert (seg.precision, seg.precision_reason) == (want, why)
    assert seg.path.name == f"selfie_landscape_{want}.xml"
    forced = Segmenter(ModelConfig(name="landscape", precision="int8", device="CPU", cache_dir=tmp_path))
    assert forced.precision == "int8" and forced.path.name == "selfie_landscape_int8.xml"


def test_auto_does_not_pick_an_int8_model_that_has_no_quantized_layer(tmp_path: Path, monkeypatch) -> None:
    """On a device where auto would pick INT8, an INT8 IR without FakeQuantize (accuracy control kept
    every layer in float) runs as FP32, and the reason says so; a quantized one runs as INT8."""
    import edgeportrait.segment.adapter as adapter_module

    monkeypatch.setattr(adapter_module, "choose", lambda *a: ("int8", "auto: test CPU has avx512_vnni"))
    for name in ("general", "landscape"):
        for p in ("fp32", "int8"):
            for ext in ("xml", "bin"):
                (tmp_path / f"selfie_{name}_{p}.{ext}").symlink_to(MODELS / f"selfie_{name}_fp32.{ext}")
    seg = Segmenter(ModelConfig(name="landscape", precision="auto", device="CPU", dir=tmp_path, cache_dir=tmp_path))
    assert seg.precision == "fp32" and "no quantized layer" in seg.precision_reason

    x = ops.parameter([1, 4, 4, 3], ov.Type.f32)
    lo, hi = ops.constant(np.float32(0)), ops.constant(np.float32(1))
    fq = ops.fake_quantize(x, lo, hi, lo, hi, 256)
    assert is_quantized(ov.Model([fq], [x])) and not is_quantized(ov.Model([ops.relu(x)], [x]))
