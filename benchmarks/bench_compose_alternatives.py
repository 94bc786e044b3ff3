"""The compositor's full-resolution pass three ways: OpenCV calls (what edgeportrait runs), compiled C, OpenVINO.

    python benchmarks/bench_compose_alternatives.py [--runs 100] [--device CPU] [--no-native] [--no-openvino]

Issue 12 set the compositor a goal of 4 ms per 1080p frame, reasoning that one
read of the frame and the background and one write of the portrait is ~19 MB of
memory traffic (~2 ms). The part of a compose that touches every pixel at full
resolution — the low-resolution blurred background upsampled to full size, the
person's interior copied from the frame, the band around the silhouette blended
with α = clamp(a·Y + b) — is about half of it; the other half (the downscale
and everything at the working resolution) is a few dozen calls on arrays 16
times smaller. This script times that full-resolution pass, on the same frame,
matte and low-resolution background, as:

- ``opencv``: ``cv2.resize`` of the background and ``blend.render`` — the
  package's path;
- ``native``: one C function doing the whole pass row by row
  (``benchmarks/native/fused_render.c``, built here with ``cc -O3
  -march=native -ffast-math``, loaded with ctypes: the best case compiled code
  gets on this machine) and ``native-band``: the same function for the
  interior and the band only, after ``cv2.resize`` wrote the background;
- ``openvino``: the pass as a small OpenVINO model (two Interpolate ops for
  the background and the coefficients, the luminance, α, the blend), compiled
  for ``--device`` — on an iGPU or NPU machine it would keep the frame on the
  accelerator; here it runs on the CPU plugin, with 1 and 2 inference threads.

Reported per size: median and min in ms, the calling thread's CPU time (for
OpenVINO, whose own threads do the work, the process's), the share of a whole
compose (timed in the same loop), and the largest difference from the OpenCV
path's output per channel. The frame and mask are the ones
``bench_compose.py`` uses (the astronaut photo and its reference mask).

What it showed (Nov 2026, AMD EPYC 2-core VM, AVX2 without AVX-512/VNNI,
OpenVINO 2026.4.1, OpenCV 4.x with 2 threads; medians of 100 interleaved
runs; figures in the commit message that added this script). In short, compiled code saves
about a third of this pass, not the half of the whole compose that 4 ms needs;
writing a 6 MB frame with per-pixel interpolation is not the 2 ms memory copy
the goal assumed, and OpenVINO's CPU plugin runs the pass several times slower
than OpenCV. So edgeportrait carries neither: a C extension would need a
compiler on every Pi it is installed on (or per-platform wheels) for ~1.5 ms
of ~9.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from machine import machine  # benchmarks/machine.py (this script's directory is on sys.path)

from edgeportrait import allocator
from edgeportrait.compose import Compositor, blur_sigma, prepare
from edgeportrait.compose.background import cover, masked_blur_low
from edgeportrait.compose.blend import render
from edgeportrait.compose.compositor import pad_to_factor
from edgeportrait.config import PortraitConfig

HERE = Path(__file__).resolve().parent
DATA = HERE.parent / "tests" / "data"
SOURCE = HERE / "native" / "fused_render.c"
SIZES = {"720p": (1280, 720), "1080p": (1920, 1080)}
CELL_INTERIOR, CELL_BAND = 1, 2


def build_native(into: Path) -> ctypes.CDLL | None:
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        print("native: no C compiler (cc/gcc) on PATH; skipped", file=sys.stderr)
        return None
    lib = into / "fused_render.so"
    cmd = [cc, "-O3", "-march=native", "-ffast-math", "-fPIC", "-shared", "-o", str(lib), str(SOURCE), "-lm"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        print(f"native: {' '.join(cmd)} failed:\n{done.stderr}", file=sys.stderr)
        return None
    dll = ctypes.CDLL(str(lib))  # a CDLL call releases the GIL, as an extension would
    p, i, long_ = ctypes.c_void_p, ctypes.c_int, ctypes.c_long
    dll.ep_compose.argtypes = [p, long_, p, long_, i, i, p, i, i, p, p, i, i, i]
    dll.ep_compose.restype = i
    return dll


def openvino_pass(core: object, device: str, threads: int, shapes: tuple[int, ...]) -> Callable[..., np.ndarray]:
    """The full-resolution pass as an OpenVINO model; returns run(frame, coef, bg_small) -> portrait."""
    import openvino as ov
    import openvino.opset13 as op

    h, w, lh, lw, bh, bw = shapes
    frame = op.parameter([1, h, w, 3], ov.Type.u8, name="frame")
    coef = op.parameter([1, 2, lh, lw], ov.Type.f32, name="coef")
    small = op.parameter([1, 3, bh, bw], ov.Type.u8, name="background")

    def up(x: object) -> object:  # bilinear, half-pixel centres, edges clamped: cv2.resize's INTER_LINEAR
        sizes = op.constant(np.array([h, w], np.int64))
        axes = op.constant(np.array([2, 3], np.int64))
        return op.interpolate(x, sizes, "linear_onnx", "sizes", axes=axes, coordinate_transformation_mode="half_pixel")

    f = op.transpose(op.convert(frame, ov.Type.f32), op.constant(np.array([0, 3, 1, 2], np.int64)))
    ab = up(coef)
    a = op.gather(ab, op.constant(np.array([0], np.int64)), op.constant(np.int64(1)))
    b = op.gather(ab, op.constant(np.array([1], np.int64)), op.constant(np.int64(1)))
    bgr_to_y = op.constant(np.array([0.114, 0.587, 0.299], np.float32).reshape(1, 3, 1, 1))
    luma = op.reduce_sum(op.multiply(f, bgr_to_y), op.constant(np.array([1], np.int64)), keep_dims=True)
    alpha = op.clamp(op.add(op.multiply(a, luma), b), 0.0, 1.0)
    bg = up(op.convert(small, ov.Type.f32))
    out = op.add(op.add(bg, op.multiply(alpha, op.subtract(f, bg))), op.constant(np.float32(0.5)))
    out = op.convert(op.clamp(op.transpose(out, op.constant(np.array([0, 2, 3, 1], np.int64))), 0.0, 255.0), ov.Type.u8)
    model = ov.Model([out], [frame, coef, small], "portrait_pass")
    compiled = core.compile_model(model, device, {"INFERENCE_NUM_THREADS": threads} if device == "CPU" else {})  # type: ignore[attr-defined]
    req = compiled.create_infer_request()

    def run(fr: np.ndarray, cf: np.ndarray, sm: np.ndarray) -> np.ndarray:
        req.infer({0: fr[None], 1: cf, 2: sm}, share_inputs=True)
        return req.get_output_tensor(0).data[0]

    return run


def variants(
    w: int, h: int, native: ctypes.CDLL | None, core: object, device: str | None
) -> dict[str, Callable[[], np.ndarray]]:
    """The astronaut photo at w×h with its reference mask: a whole compose, and the full-resolution pass each way."""
    photo = cv2.imread(str(DATA / "astronaut.png"))
    golden = cv2.imread(str(DATA / "golden/general/astronaut.png"), cv2.IMREAD_UNCHANGED).astype(np.float32) / 65535
    s = PortraitConfig()
    frame = cover(photo, h, w)
    mask = cv2.resize(cover(golden, h, w), (256, 256), interpolation=cv2.INTER_AREA)
    work, f = pad_to_factor(frame)
    assert work is frame, "the sizes measured need no padding"
    prep = prepare(work, mask, s, None, f)
    low = prep.matte
    small = masked_blur_low(work, low.alpha, blur_sigma(s.blur, h, w), pyramid=(prep.small, f))
    kind = np.zeros(low.band.shape, np.uint8)
    kind[low.interior] = CELL_INTERIOR
    kind[low.band] = CELL_BAND
    coef = np.ascontiguousarray(low.coef, np.float32)
    comp = Compositor(s, temporal=False)
    out = np.empty_like(frame)

    def opencv() -> np.ndarray:
        cv2.resize(small, (w, h), dst=out, interpolation=cv2.INTER_LINEAR)
        return render(frame, low, out)

    fns: dict[str, Callable[[], np.ndarray]] = {"compose": lambda: comp.compose(frame, mask), "opencv": opencv}
    if native is not None:

        def fused(with_bg: bool = True) -> np.ndarray:
            if not with_bg:
                cv2.resize(small, (w, h), dst=out, interpolation=cv2.INTER_LINEAR)
            rc = native.ep_compose(
                frame.ctypes.data, frame.strides[0], out.ctypes.data, out.strides[0], h, w,
                small.ctypes.data if with_bg else None, small.shape[0], small.shape[1],
                coef.ctypes.data, kind.ctypes.data, kind.shape[0], kind.shape[1], f,
            )  # fmt: skip
            if rc != 0:
                raise RuntimeError("ep_compose refused its arguments")
            return out

        fns["native"] = fused
        fns["native-band"] = lambda: fused(False)
    if core is not None and device is not None:
        coef_nchw = np.ascontiguousarray(coef.transpose(2, 0, 1)[None])
        small_nchw = np.ascontiguousarray(small.transpose(2, 0, 1)[None])
        shapes = (h, w, *coef.shape[:2], *small.shape[:2])
        for threads in (1, 2) if device == "CPU" else (0,):
            run = openvino_pass(core, device, threads, shapes)
            name = f"openvino-{device}" + (f"-{threads}t" if device == "CPU" else "")
            fns[name] = lambda run=run: run(frame, coef_nchw, small_nchw)
    return fns


def measure(runs: int, native: ctypes.CDLL | None, device: str | None) -> dict[str, dict[str, dict[str, float]]]:
    core = None
    if device is not None:
        import openvino as ov

        core = ov.Core()
    results: dict[str, dict[str, dict[str, float]]] = {}
    for label, (w, h) in SIZES.items():
        fns = variants(w, h, native, core, device)
        reference = fns["opencv"]().copy()
        diffs = {k: int(np.abs(fn().astype(np.int16) - reference).max()) for k, fn in fns.items() if k != "compose"}
        times: dict[str, list[float]] = {k: [] for k in fns}
        cpu: dict[str, list[float]] = {k: [] for k in fns}
        order = list(fns.items())
        for i in range(runs):
            for k, fn in order[i % len(order) :] + order[: i % len(order)]:
                clock = time.process_time if k.startswith("openvino") else time.thread_time
                c0, t0 = clock(), time.perf_counter()
                fn()
                times[k].append((time.perf_counter() - t0) * 1000)
                cpu[k].append((clock() - c0) * 1000)
        whole = float(np.median(times["compose"]))
        results[label] = {
            k: {
                "median_ms": float(np.median(v)),
                "min_ms": float(np.min(v)),
                "cpu_ms": float(np.median(cpu[k])),
                "share_of_compose": float(np.median(v)) / whole,
                "max_diff": float(diffs.get(k, 0)),
            }
            for k, v in times.items()
        }
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--device", default="CPU", help="OpenVINO device for the OpenVINO variant (CPU, GPU, NPU)")
    ap.add_argument("--no-native", action="store_true", help="skip the compiled-C variant")
    ap.add_argument("--no-openvino", action="store_true", help="skip the OpenVINO variant")
    a = ap.parse_args()
    allocator.tune()
    with tempfile.TemporaryDirectory() as tmp:
        native = None if a.no_native else build_native(Path(tmp))
        results = measure(a.runs, native, None if a.no_openvino else a.device)
    print(machine())
    print(f"cv2 threads {cv2.getNumThreads()}, {a.runs} interleaved runs, medians")
    for label, rows in results.items():
        print(f"  {label}:")
        for k, v in rows.items():
            diff = "" if k == "compose" else f", max diff from opencv {v['max_diff']:.0f}"
            print(
                f"    {k:20s} {v['median_ms']:6.2f} ms (min {v['min_ms']:.2f}, cpu {v['cpu_ms']:.2f}), "
                f"{100 * v['share_of_compose']:.0f}% of a compose{diff}"
            )


if __name__ == "__main__":
    main()
