"""The compositor's full-resolution pass three ways: OpenCV calls, the C band pass, OpenVINO.

    python benchmarks/bench_compose_alternatives.py [--runs 100] [--device CPU] [--no-openvino]
    python benchmarks/bench_compose_alternatives.py --floor [--runs 300]

Issue 12 set the compositor a goal of 4 ms per 1080p frame, reasoning that one
read of the frame and the background and one write of the portrait is ~19 MB of
memory traffic (~2 ms). The part of a compose that touches every pixel at full
resolution — the low-resolution blurred background upsampled to full size, the
person's interior copied from the frame, the band around the silhouette blended
with α = clamp(a·Y + b) — is about half of it; the other half (the downscale
and everything at the working resolution) is a few dozen calls on arrays 16
times smaller. This script times that full-resolution pass, on the same frame,
matte and low-resolution background, as:

- ``opencv``: ``cv2.resize`` of the background and ``blend.render_opencv``,
  about a hundred short OpenCV/numpy calls (what runs where no C compiler was
  at hand when edgeportrait was installed);
- ``native``: ``cv2.resize`` of the background and the C band pass
  (``edgeportrait/compose/_band.c``, built by the wheel's build; skipped if it
  was not built);
- ``openvino``: the pass as a small OpenVINO model (two Interpolate ops for
  the background and the coefficients, the luminance, α, the blend), compiled
  for ``--device`` — on an iGPU or NPU machine it would keep the frame on the
  accelerator; here it runs on the CPU plugin, with 1 and 2 inference threads.

Reported per size: median and min in ms, the calling thread's CPU time (for
OpenVINO, whose own threads do the work, the process's), the share of a whole
compose (timed in the same loop, with the C band pass when it is built), and
the largest difference from the OpenCV path's output per channel. The frame
and mask are the ones ``bench_compose.py`` uses (the astronaut photo and its
reference mask).

What it showed (Nov 2026, AMD EPYC 2-core VM, AVX2 without AVX-512/VNNI,
OpenVINO 2026.4.1, 30 interleaved runs, medians) at 1080p: opencv 4.67 ms,
native 2.59 ms, OpenVINO's CPU plugin 36 ms with two threads and 45 ms with
one — several times slower than OpenCV, so the OpenVINO variant is not used on
a CPU. A C function that also upsampled the background itself (commit 8805fdc,
``benchmarks/native/fused_render.c``) took 3.90 ms: cv2.resize writes the 6 MB
background faster than a plain C loop, so the shipped band pass leaves it to
OpenCV. Even with the pass at 2.6 ms the whole compose is ~7 ms, not 4: the
downscale, the guided filter and the blur at working resolution are the other
half.

``--floor`` bounds what moving those too would give: a 1080p compose as it
is, and with the guided filter and the low-resolution masked blur taking no
time (their first results cached), interleaved. The last of these is below
what any implementation of the two could reach. Nov 2026, same machine, 300
runs: as it is 6.32 ms, guided filter free 5.20, both free 4.26 (min 3.39) —
so even a C guided filter and blur would leave the 1080p compose above 4 ms
on one thread. They are in C now (``_band.c``: ep_low_matte, ep_masked_blur;
``--floor`` makes whichever implementation runs free), and with the C passes
sharing rows between threads the 1080p compose is 4.1 ms on two threads, 5.4
on one (``bench_compose.py``).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import cv2
import numpy as np
from bench_compose import SIZES, scene  # this script's directory is on sys.path
from machine import machine, one_blas_thread  # benchmarks/machine.py

from edgeportrait import allocator
from edgeportrait.compose import Compositor, blur_sigma, native, prepare
from edgeportrait.compose.background import masked_blur_low
from edgeportrait.compose.blend import render_opencv
from edgeportrait.compose.compositor import pad_to_factor
from edgeportrait.config import PortraitConfig


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


def variants(w: int, h: int, core: object, device: str | None) -> dict[str, Callable[[], np.ndarray]]:
    """The astronaut photo at w×h with its reference mask: a whole compose, and the full-resolution pass each way."""
    s = PortraitConfig()
    frame, mask = scene(w, h)
    work, f = pad_to_factor(frame)
    assert work is frame, "the sizes measured need no padding"
    prep = prepare(work, mask, s, None, f)
    low = prep.matte
    small = masked_blur_low(work, low.alpha, blur_sigma(s.blur, h, w), pyramid=(prep.small, f))
    comp = Compositor(s, temporal=False)
    out = np.empty_like(frame)

    def opencv() -> np.ndarray:
        cv2.resize(small, (w, h), dst=out, interpolation=cv2.INTER_LINEAR)
        return render_opencv(frame, low, out)

    fns: dict[str, Callable[[], np.ndarray]] = {"compose": lambda: comp.compose(frame, mask), "opencv": opencv}
    lib = native.library()
    if lib is not None:

        def band() -> np.ndarray:
            cv2.resize(small, (w, h), dst=out, interpolation=cv2.INTER_LINEAR)
            native.render_band(lib, frame, out, low)
            return out

        fns["native"] = band
    if core is not None and device is not None:
        coef_nchw = np.ascontiguousarray(low.coef.transpose(2, 0, 1)[None])
        small_nchw = np.ascontiguousarray(small.transpose(2, 0, 1)[None])
        shapes = (h, w, *low.coef.shape[:2], *small.shape[:2])
        for threads in (1, 2) if device == "CPU" else (0,):
            run = openvino_pass(core, device, threads, shapes)
            name = f"openvino-{device}" + (f"-{threads}t" if device == "CPU" else "")
            fns[name] = lambda run=run: run(frame, coef_nchw, small_nchw)
    return fns


def measure(runs: int, device: str | None) -> dict[str, dict[str, dict[str, float]]]:
    core = None
    if device is not None:
        import openvino as ov

        core = ov.Core()
    results: dict[str, dict[str, dict[str, float]]] = {}
    for label, (w, h) in SIZES.items():
        fns = variants(w, h, core, device)
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


def floor(runs: int) -> dict[str, dict[str, float]]:
    """A 1080p compose as it is, and with the working-resolution steps made free (their results cached).

    What is left when the guided filter and the low-resolution masked blur take no time is what no
    amount of compiled code for those two could go below: the bound on moving them to C.
    """
    from edgeportrait.compose import background, matte

    frame, mask = scene(*SIZES["1080p"])
    comp = Compositor(PortraitConfig(), temporal=False)
    # the guided filter is native.low_matte with the C library, matte.guided_coefficients without
    real = {"guided": matte.guided_coefficients, "low_matte": native.low_matte, "blur_low": background.masked_blur_low}
    cached: dict[str, object] = {}

    def once(name: str) -> Callable[..., object]:
        def call(*args: object, **kw: object) -> object:
            if name not in cached:
                cached[name] = real[name](*args, **kw)
            return cached[name]

        return call

    guided_free = {"guided": once("guided"), "low_matte": once("low_matte")}
    setups = {
        "as it is": {},
        "guided filter free": guided_free,
        "guided filter and blur free": {**guided_free, "blur_low": once("blur_low")},
    }
    times: dict[str, list[float]] = {k: [] for k in setups}
    try:
        for i in range(runs):
            for name, patch in list(setups.items())[i % 3 :] + list(setups.items())[: i % 3]:
                matte.guided_coefficients = patch.get("guided", real["guided"])  # type: ignore[assignment]
                native.low_matte = patch.get("low_matte", real["low_matte"])  # type: ignore[assignment]
                background.masked_blur_low = patch.get("blur_low", real["blur_low"])  # type: ignore[assignment]
                t0 = time.perf_counter()
                comp.compose(frame, mask)
                times[name].append((time.perf_counter() - t0) * 1000)
    finally:
        matte.guided_coefficients = real["guided"]  # type: ignore[assignment]
        native.low_matte = real["low_matte"]  # type: ignore[assignment]
        background.masked_blur_low = real["blur_low"]  # type: ignore[assignment]
    return {k: {"median_ms": float(np.median(v)), "min_ms": float(np.min(v))} for k, v in times.items()}


def main() -> None:
    one_blas_thread()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--device", default="CPU", help="OpenVINO device for the OpenVINO variant (CPU, GPU, NPU)")
    ap.add_argument("--no-openvino", action="store_true", help="skip the OpenVINO variant")
    ap.add_argument("--floor", action="store_true", help="only: 1080p compose with the working-resolution steps free")
    a = ap.parse_args()
    allocator.tune()
    if a.floor:
        print(machine())
        print(f"compositor: {native.status()}; 1080p compose, {a.runs} interleaved runs")
        for k, v in floor(a.runs).items():
            print(f"  {k:30s} median {v['median_ms']:.2f} ms, min {v['min_ms']:.2f}")
        return
    results = measure(a.runs, None if a.no_openvino else a.device)
    print(machine())
    print(f"compositor: {native.status()}")
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
