"""Converting MediaPipe's selfie-segmentation ``.tflite`` files to OpenVINO.

OpenVINO's TFLite front end has no translator for MediaPipe's custom op
``Convolution2DTransposeBias`` (a transposed convolution with a bias, weights
OHWI). :class:`TransposeConvBiasExtension` is a front-end
``ConversionExtension`` that builds the same computation from OpenVINO ops
(``Transpose`` to NCHW, ``ConvolutionBackpropData`` — or, when the kernel equals the stride as in
these models, the equivalent and much faster 1×1 ``Convolution`` +
``DepthToSpace`` — ``Add`` of the bias, ``Transpose`` back to NHWC); the weights and the bias stay the tensors of the
``.tflite`` file, read by the front end like any other op's.

The op's parameters (padding, strides) are in its custom options, which
MediaPipe writes as a raw C struct (``TfLiteTransposeConvParams``: three
int32 — padding, stride_width, stride_height), not as the FlexBuffer map the
front end's ``NodeContext.get_attribute`` decodes; the front end cannot hand
them to us. So :func:`read_custom_options` reads them from the flatbuffer
with a few lines of standard-library code (no ``tflite`` package needed at
test time), and the extension takes them in model order.
"""

from __future__ import annotations

import logging
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import openvino as ov
import openvino.opset13 as ops
from openvino.frontend import ConversionExtension, FrontEndManager, NodeContext

logger = logging.getLogger(__name__)

CUSTOM_OP = "Convolution2DTransposeBias"

# TfLitePadding in tensorflow/lite/core/c/builtin_op_data.h
_PADDING_SAME = 1
_PADDING_VALID = 2


@dataclass(frozen=True)
class TransposeConvParams:
    """TfLiteTransposeConvParams as MediaPipe stores it in the op's custom options."""

    padding: int
    stride_w: int
    stride_h: int

    @classmethod
    def from_bytes(cls, raw: bytes) -> TransposeConvParams:
        if len(raw) < 12:
            raise ValueError(f"{CUSTOM_OP}: custom options are {len(raw)} bytes, expected 12")
        padding, stride_w, stride_h = struct.unpack_from("<iii", raw, 0)
        if padding not in (_PADDING_SAME, _PADDING_VALID) or stride_w < 1 or stride_h < 1:
            raise ValueError(f"{CUSTOM_OP}: unexpected options padding={padding} strides={stride_h}x{stride_w}")
        return cls(padding, stride_w, stride_h)


class _FlatTable:
    """Just enough of the FlatBuffers wire format to walk a .tflite file's tables."""

    def __init__(self, buf: bytes, pos: int) -> None:
        self.buf = buf
        self.pos = pos
        self.vtable = pos - struct.unpack_from("<i", buf, pos)[0]
        self.vsize = struct.unpack_from("<H", buf, self.vtable)[0]

    def _field(self, index: int) -> int | None:
        slot = 4 + 2 * index
        if slot >= self.vsize:
            return None
        off = struct.unpack_from("<H", self.buf, self.vtable + slot)[0]
        return self.pos + off if off else None

    def uint(self, index: int, default: int = 0) -> int:
        at = self._field(index)
        return struct.unpack_from("<I", self.buf, at)[0] if at is not None else default

    def byte(self, index: int, default: int = 0) -> int:
        at = self._field(index)
        return struct.unpack_from("<b", self.buf, at)[0] if at is not None else default

    def _target(self, index: int) -> int | None:
        at = self._field(index)
        return at + struct.unpack_from("<I", self.buf, at)[0] if at is not None else None

    def bytes_(self, index: int) -> bytes | None:
        vec = self._target(index)
        if vec is None:
            return None
        n = struct.unpack_from("<I", self.buf, vec)[0]
        return self.buf[vec + 4 : vec + 4 + n]

    def tables(self, index: int) -> list[_FlatTable]:
        vec = self._target(index)
        if vec is None:
            return []
        n = struct.unpack_from("<I", self.buf, vec)[0]
        out = []
        for i in range(n):
            el = vec + 4 + 4 * i
            out.append(_FlatTable(self.buf, el + struct.unpack_from("<I", self.buf, el)[0]))
        return out


def read_custom_options(tflite: bytes, op_name: str = CUSTOM_OP) -> list[bytes]:
    """The raw custom options of every ``op_name`` operator, in the model's execution order.

    Field numbers from tensorflow/lite/schema/schema.fbs: Model.operator_codes=1,
    Model.subgraphs=2; OperatorCode.custom_code=1; SubGraph.operators=3;
    Operator.opcode_index=0, Operator.custom_options=5.
    """
    if len(tflite) < 8 or tflite[4:8] != b"TFL3":
        raise ValueError("not a TFLite flatbuffer (no TFL3 identifier)")
    try:
        model = _FlatTable(tflite, struct.unpack_from("<I", tflite, 0)[0])
        codes = [t.bytes_(1) for t in model.tables(1)]
        found: list[bytes] = []
        for subgraph in model.tables(2):
            for op in subgraph.tables(3):
                idx = op.uint(0)
                if idx < len(codes) and codes[idx] == op_name.encode():
                    found.append(op.bytes_(5) or b"")
    except struct.error as e:
        raise ValueError(f"corrupt TFLite flatbuffer: {e}") from None
    return found


class TransposeConvBiasExtension(ConversionExtension):
    """Front-end translator for MediaPipe's ``Convolution2DTransposeBias``.

    Inputs as the front end gives them (TFLite layout): 0 = activations NHWC,
    1 = weights OHWI, 2 = bias [O]. Output NHWC. ``params`` are the ops' options
    in model order (the front end translates operators in that order).
    """

    def __init__(self, params: list[TransposeConvParams]) -> None:
        self.params = list(params)
        self.converted = 0
        super().__init__(CUSTOM_OP, self._convert)

    def _next_params(self) -> TransposeConvParams:
        if self.converted >= len(self.params):
            raise RuntimeError(f"more {CUSTOM_OP} ops than custom options read from the file")
        p = self.params[self.converted]
        self.converted += 1
        return p

    def _convert(self, node: NodeContext) -> list[ov.Output]:
        p = self._next_params()
        if node.get_input_size() != 3:
            raise RuntimeError(f"{CUSTOM_OP}: expected 3 inputs, got {node.get_input_size()}")
        x, w, b = node.get_input(0), node.get_input(1), node.get_input(2)
        return [transpose_conv_bias(x, w, b, p)]


def transpose_conv_bias(x: ov.Output, w: ov.Output, b: ov.Output, p: TransposeConvParams) -> ov.Output:
    """The op's computation in OpenVINO ops; x NHWC, w OHWI, b [O] -> NHWC.

    TFLite's transposed convolution with SAME padding gives an output of
    input*stride and crops the (k - stride)-wide overlap with the smaller half
    at the start; VALID gives (in-1)*stride + k and crops nothing.
    """
    xs, ws = x.get_partial_shape(), w.get_partial_shape()
    if not (xs.rank.is_static and xs.rank.get_length() == 4 and ws.is_static and len(ws) == 4):
        raise RuntimeError(f"{CUSTOM_OP}: need rank-4 input and static rank-4 weights, got {xs} and {ws}")
    kh, kw = ws[1].get_length(), ws[2].get_length()
    strides = [p.stride_h, p.stride_w]
    pads_begin, pads_end = [0, 0], [0, 0]
    if p.padding == _PADDING_SAME:
        if not (xs[1].is_static and xs[2].is_static):
            raise RuntimeError(f"{CUSTOM_OP}: SAME padding needs static height and width, got {xs}")
        for i, (size, k, s) in enumerate(((xs[1].get_length(), kh, p.stride_h), (xs[2].get_length(), kw, p.stride_w))):
            total = max(0, (size - 1) * s + k - size * s)
            pads_begin[i] = total // 2
            pads_end[i] = total - total // 2
    x_nchw = ops.transpose(x, ops.constant(np.array([0, 3, 1, 2], dtype=np.int64)))
    if kh == kw == p.stride_h == p.stride_w and pads_begin == pads_end == [0, 0]:
        y = _non_overlapping_transpose_conv(x_nchw, w, kh, ws[0].get_length(), ws[3].get_length())
    else:
        # OHWI -> IOHW, the [C_in, C_out, kH, kW] layout ConvolutionBackpropData expects
        w_iohw = ops.transpose(w, ops.constant(np.array([3, 0, 1, 2], dtype=np.int64)))
        y = ops.convolution_backprop_data(
            x_nchw, w_iohw, strides=strides, pads_begin=pads_begin, pads_end=pads_end, dilations=[1, 1]
        ).output(0)
    y_nhwc = ops.transpose(y, ops.constant(np.array([0, 2, 3, 1], dtype=np.int64)))
    # bias [O] broadcasts over NHWC's last axis
    return ops.add(y_nhwc, b).output(0)


def _non_overlapping_transpose_conv(x_nchw: ov.Output, w_ohwi: ov.Output, k: int, c_out: int, c_in: int) -> ov.Output:
    """Transposed conv whose kernel equals its stride (the selfie models' 2×2/2): every output
    pixel gets exactly one input pixel's contribution, so it is a 1×1 convolution to
    c_out·k·k channels followed by DepthToSpace.

    OpenVINO's CPU plugin is slow on ConvolutionBackpropData of this shape: 0.53 ms
    (0.94 ms once NNCF quantized it) against 0.33 ms for the 1×1 convolution +
    DepthToSpace, at 128×128×16 -> 256×256, one thread, per-layer counters.
    OHWI flattened is (o·k + i)·k + j over input channels c, exactly DEPTH_FIRST's
    channel order for output (o, i, j).
    """
    w_1x1 = ops.reshape(w_ohwi, ops.constant(np.array([c_out * k * k, c_in, 1, 1], dtype=np.int64)), False)
    y = ops.convolution(x_nchw, w_1x1, strides=[1, 1], pads_begin=[0, 0], pads_end=[0, 0], dilations=[1, 1])
    return ops.depth_to_space(y, "depth_first", k).output(0)


def convert_tflite(path: str | Path) -> ov.Model:
    """Convert a MediaPipe selfie-segmentation ``.tflite`` file to an OpenVINO model."""
    data = Path(path).read_bytes()
    params = [TransposeConvParams.from_bytes(raw) for raw in read_custom_options(data)]
    ext = TransposeConvBiasExtension(params)
    fe = FrontEndManager().load_by_framework("tflite")
    fe.add_extension(ext)
    model = fe.convert(fe.load(str(path)))
    if ext.converted != len(params):
        raise RuntimeError(f"{CUSTOM_OP}: converted {ext.converted} ops, the file has {len(params)}")
    logger.debug("converted %s: %d %s op(s)", path, ext.converted, CUSTOM_OP)
    return model
