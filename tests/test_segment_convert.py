"""Conversion of MediaPipe's .tflite to OpenVINO: the custom op and the committed IR."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import numpy as np
import openvino as ov
import openvino.opset13 as ops
import pytest
from segment_helpers import MODELS, golden

from edgeportrait.errors import FatalError
from edgeportrait_build import build
from edgeportrait_build.tflite_ext import (
    TransposeConvParams,
    convert_tflite,
    read_custom_options,
    transpose_conv_bias,
)

SOURCE = MODELS / "source"
SAME, VALID = 1, 2


def reference_transpose_conv(
    x: np.ndarray, w: np.ndarray, b: np.ndarray, stride: tuple[int, int], padding: int
) -> np.ndarray:
    """Plain scatter-add transposed convolution with TFLite's output size and cropping.

    x NHWC, w OHWI, b [O]. Every input pixel adds w * value into a stride-spaced
    window of the full output ((in-1)*s + k); SAME keeps in*s of it, dropping
    the smaller half of the excess at the start, VALID keeps all.
    """
    n, h, wd, c = x.shape
    o, kh, kw, ci = w.shape
    assert ci == c
    sh, sw = stride
    full = np.zeros((n, (h - 1) * sh + kh, (wd - 1) * sw + kw, o), dtype=np.float64)
    for i in range(h):
        for j in range(wd):
            # (n, c) x (o, kh, kw, c) -> (n, kh, kw, o)
            contrib = np.einsum("nc,okwc->nkwo", x[:, i, j, :].astype(np.float64), w.astype(np.float64))
            full[:, i * sh : i * sh + kh, j * sw : j * sw + kw, :] += contrib
    if padding == SAME:
        oh, ow = h * sh, wd * sw
        top = max(0, full.shape[1] - oh) // 2
        left = max(0, full.shape[2] - ow) // 2
        full = full[:, top : top + oh, left : left + ow, :]
    return (full + b.astype(np.float64)).astype(np.float32)


@pytest.mark.parametrize(
    ("hw", "cin", "cout", "k", "stride", "padding"),
    [
        ((8, 8), 16, 1, (2, 2), (2, 2), SAME),  # the shape of the op in the selfie models
        ((5, 7), 3, 4, (3, 3), (2, 2), SAME),  # odd excess: asymmetric crop
        ((6, 4), 2, 3, (4, 3), (2, 1), SAME),
        ((4, 5), 3, 2, (3, 2), (2, 2), VALID),
        ((3, 3), 1, 1, (1, 1), (1, 1), SAME),
    ],
)
def test_transpose_conv_bias_matches_numpy_reference(hw, cin, cout, k, stride, padding) -> None:
    """The OpenVINO ops built for Convolution2DTransposeBias compute TFLite's transposed conv + bias."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((1, *hw, cin)).astype(np.float32)
    w = rng.standard_normal((cout, *k, cin)).astype(np.float32)
    b = rng.standard_normal((cout,)).astype(np.float32)
    param = ops.parameter([1, *hw, cin], ov.Type.f32)
    out = transpose_conv_bias(param.output(0), ops.constant(w).output(0), ops.constant(b).output(0),
                              TransposeConvParams(padding, stride[1], stride[0]))
    model = ov.Model([out], [param])
    got = ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})(x)[0]
    want = reference_transpose_conv(x, w, b, stride, padding)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_custom_options_are_read_from_the_flatbuffer() -> None:
    """The op's raw-struct options decode to what MediaPipe documents: SAME padding, stride 2×2."""
    for name in ("selfie_segmentation.tflite", "selfie_segmentation_landscape.tflite"):
        raws = read_custom_options((SOURCE / name).read_bytes())
        assert len(raws) == 1
        assert TransposeConvParams.from_bytes(raws[0]) == TransposeConvParams(SAME, 2, 2)


def test_custom_options_agree_with_the_tflite_schema_package() -> None:
    """Our few-line flatbuffer walk reads the same bytes as the official schema reader."""
    tflite = pytest.importorskip("tflite")
    data = (SOURCE / "selfie_segmentation.tflite").read_bytes()
    model = tflite.Model.GetRootAsModel(data, 0)
    graph = model.Subgraphs(0)
    expected = []
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        code = model.OperatorCodes(op.OpcodeIndex()).CustomCode()
        if code == b"Convolution2DTransposeBias":
            expected.append(op.CustomOptionsAsNumpy().tobytes())
    assert read_custom_options(data) == expected


def test_non_tflite_bytes_are_refused() -> None:
    with pytest.raises(ValueError, match="not a TFLite"):
        read_custom_options(b"\x00" * 64)
    with pytest.raises(ValueError):
        TransposeConvParams.from_bytes(b"\x01\x00")


@pytest.mark.parametrize("name", ["general", "landscape"])
def test_committed_fp32_ir_is_what_the_conversion_makes(name: str) -> None:
    """models/selfie_<name>_fp32 computes the same as a fresh conversion of the pinned .tflite."""
    src = {"general": "selfie_segmentation.tflite", "landscape": "selfie_segmentation_landscape.tflite"}[name]
    core = ov.Core()
    cfg = {"INFERENCE_PRECISION_HINT": "f32"}
    fresh = core.compile_model(convert_tflite(SOURCE / src), "CPU", cfg)
    committed = core.compile_model(core.read_model(MODELS / f"selfie_{name}_fp32.xml"), "CPU", cfg)
    shape = list(committed.input(0).shape)
    x = build.model_input(golden.load_case("astronaut"), (shape[1], shape[2]))
    np.testing.assert_allclose(fresh(x)[0], committed(x)[0], atol=1e-5)


def _fake_wheel(path: Path, payloads: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for member, data in payloads.items():
            zf.writestr(f"{build.WHEEL_DIR}/{member}", data)
    return path


def test_sources_come_out_of_the_wheel_with_pinned_hashes(tmp_path: Path) -> None:
    """A wheel holding the pinned files yields them byte for byte."""
    payloads = {s.member: (SOURCE / s.member).read_bytes() for s in build.SOURCES}
    wheel = _fake_wheel(tmp_path / "mediapipe-0.10.14-py3-none-any.whl", payloads)
    out = tmp_path / "out"
    out.mkdir()
    got = build.extract_sources(wheel, out)
    for s in build.SOURCES:
        assert hashlib.sha256(got[s.name].read_bytes()).hexdigest() == s.sha256


def test_a_tampered_source_is_refused(tmp_path: Path) -> None:
    """A .tflite whose sha256 differs from the pin stops the build before anything is converted."""
    payloads = {s.member: (SOURCE / s.member).read_bytes() for s in build.SOURCES}
    first = build.SOURCES[0].member
    payloads[first] = payloads[first][:-1] + bytes([payloads[first][-1] ^ 1])
    wheel = _fake_wheel(tmp_path / "mediapipe.whl", payloads)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(FatalError, match="sha256"):
        build.extract_sources(wheel, out)
    with pytest.raises(FatalError, match="not a readable wheel"):
        build.extract_sources(tmp_path / "out", out)


@pytest.mark.parametrize("name", ["general", "landscape"])
def test_sensitive_layers_stay_in_float(name: str) -> None:
    """The logits' convolution and every squeeze-excitation convolution (1×1 spatial) are named,
    and no convolution of the main path is."""
    model = ov.Core().read_model(MODELS / f"selfie_{name}_fp32.xml")
    names, types = build.sensitive_ops(model)
    ops_by_name = {op.get_friendly_name(): op for op in model.get_ordered_ops()}
    assert {"DepthToSpace", "GroupConvolution", "Multiply"} <= set(types)
    convs = [op for op in model.get_ordered_ops() if op.get_type_name() == "Convolution"]
    squeeze = {op.get_friendly_name() for op in convs if op.get_output_partial_shape(0)[2].get_length() == 1}
    logits = next(op for op in model.get_ordered_ops() if op.get_type_name() == "DepthToSpace").input_value(0)
    assert squeeze and squeeze <= set(names)
    assert logits.get_node().get_friendly_name() in names
    assert all(ops_by_name[n].get_type_name() == "Convolution" for n in names)
    assert len(names) == len(squeeze) + 1 < len(convs)


def test_kernel_equal_to_stride_avoids_convolution_backprop_data() -> None:
    """The selfie models' 2×2/2 transposed conv becomes 1×1 conv + DepthToSpace (the CPU runs
    ConvolutionBackpropData of that shape slowly); an overlapping kernel keeps ConvolutionBackpropData."""
    def op_types(k: int) -> set[str]:
        x = ops.parameter([1, 4, 4, 8], ov.Type.f32)
        w = ops.constant(np.ones((2, k, k, 8), dtype=np.float32))
        b = ops.constant(np.zeros((2,), dtype=np.float32))
        out = transpose_conv_bias(x.output(0), w.output(0), b.output(0), TransposeConvParams(SAME, 2, 2))
        return {op.get_type_name() for op in ov.Model([out], [x]).get_ordered_ops()}

    fast, general = op_types(2), op_types(3)
    assert "DepthToSpace" in fast and "ConvolutionBackpropData" not in fast
    assert "ConvolutionBackpropData" in general


@pytest.mark.slow
def test_model_build_reproduces_the_committed_ir(tmp_path: Path) -> None:
    """`edgeportrait model build` from the pinned wheel makes the committed IR byte for byte.

    Needs the build extra and a local mediapipe 0.10.14 wheel named by
    $EDGEPORTRAIT_MEDIAPIPE_WHEEL (CI has neither; 5-15 minutes on two cores), and the
    data set: $EDGEPORTRAIT_DATASET, or it is made in ~/.cache/edgeportrait/dataset.
    """
    import os

    wheel = os.environ.get("EDGEPORTRAIT_MEDIAPIPE_WHEEL")
    if not wheel:
        pytest.skip("set EDGEPORTRAIT_MEDIAPIPE_WHEEL to a mediapipe 0.10.14 wheel to run the build")
    pytest.importorskip("nncf")
    import argparse

    out = tmp_path / "models"
    args = argparse.Namespace(
        out=str(out), wheel=wheel, no_progress=True, data=os.environ.get("EDGEPORTRAIT_DATASET"), sources=None
    )
    rc = build.main(args)
    assert rc == 0
    for xml in sorted(MODELS.glob("selfie_*.xml")):
        for f in (xml, xml.with_suffix(".bin")):
            assert (out / f.name).read_bytes() == f.read_bytes(), f.name
    assert (out / "README.md").is_file()
