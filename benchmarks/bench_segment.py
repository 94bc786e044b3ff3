"""FP32 vs INT8 segmentation: agreement with the reference runtime and inference time.

    python benchmarks/bench_segment.py [--models-dir DIR] [--heldout DIR] [--runs N] [--model M] [--json]

For each model and precision it runs the Segmenter (CPU, f32 execution, as the
daemon does) on the held-out part of the data set (tests/data/heldout) and
reports agreement with the reference masks made by mediapipe 0.10.14 per scene
class (sure_iou and IoU@0.5, mean / worst), and on the golden photos
(tests/data/golden) IoU@0.5 and the mean absolute difference of the soft masks.
Prefix ``ONEDNN_MAX_CPU_ISA=AVX2 OV_CPU_MAX_ISA=AVX2`` (both, the same value) to
measure the CPU plugin restricted to a lower instruction set. Timing is ``Segmenter.infer``
(warp to the model input + inference) on one photo: FP32 and INT8 alternate in
blocks within one process, so load from other processes falls on both alike;
each figure is the median over all runs, and the ratio of the medians is what
to compare. `edgeportrait model build` puts the same figures in models/README.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

from edgeportrait_build.report import NAMES, figures_table, heldout_table, measure

HELDOUT = Path(__file__).resolve().parents[1] / "tests" / "data" / "heldout"


def preprocessing_variants(runs: int, precision: str = "fp32") -> dict[str, dict[str, float]]:
    """Where preprocessing runs, measured on a 1920×1080 frame (general model, CPU):

    * ``warp+ppp`` (what the Segmenter does): cv2.warpAffine to 256×256 in Python,
      BGR->RGB, u8->f32 and /255 inside the model (PrePostProcessor);
    * ``warp+numpy``: the same warp, conversion in numpy, f32 input;
    * ``ppp_resize``: the whole frame into the model, PrePostProcessor's linear resize.

    Each gives the mean IoU against the reference masks (on the golden cases) and the
    median process CPU time of preprocessing + inference (one inference thread).
    """
    import cv2
    import numpy as np
    import openvino as ov
    from openvino.preprocess import ColorFormat, PrePostProcessor, ResizeAlgorithm

    from edgeportrait.segment import models_dir, to_model_input, upscale_mask
    from edgeportrait_build.report import golden_module, iou

    golden = golden_module()
    core = ov.Core()
    # one inference thread, process CPU time: steadier than wall time on a shared machine
    cfg = {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": 1}
    xml = models_dir() / f"selfie_general_{precision}.xml"
    size = (256, 256)

    def ppp_model(resize: bool) -> ov.CompiledModel:
        m = core.read_model(xml)
        ppp = PrePostProcessor(m)
        t = ppp.input().tensor().set_element_type(ov.Type.u8).set_layout(ov.Layout("NHWC"))
        t.set_color_format(ColorFormat.BGR)
        if resize:
            t.set_spatial_dynamic_shape()
            ppp.input().preprocess().resize(ResizeAlgorithm.RESIZE_LINEAR)
        ppp.input().model().set_layout(ov.Layout("NHWC"))
        ppp.input().preprocess().convert_color(ColorFormat.RGB).convert_element_type(ov.Type.f32).scale(255.0)
        return core.compile_model(ppp.build(), "CPU", cfg)

    plain = core.compile_model(core.read_model(xml), "CPU", cfg)
    with_ppp, with_resize = ppp_model(False), ppp_model(True)

    def v_warp_ppp(img: np.ndarray) -> np.ndarray:
        return with_ppp(to_model_input(img, size))[0][0, :, :, 0]

    def v_warp_numpy(img: np.ndarray) -> np.ndarray:
        x = cv2.cvtColor(to_model_input(img, size)[0], cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0
        return plain(x[np.newaxis])[0][0, :, :, 0]

    def v_ppp_resize(img: np.ndarray) -> np.ndarray:
        return with_resize(img[np.newaxis])[0][0, :, :, 0]

    variants = {"warp+ppp": v_warp_ppp, "warp+numpy": v_warp_numpy, "ppp_resize": v_ppp_resize}
    frame = cv2.resize(golden.load_case("grace_hopper"), (1920, 1080), interpolation=cv2.INTER_LINEAR)
    out: dict[str, dict[str, float]] = {}
    times: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(max(1, runs // 10)):
        for k, fn in variants.items():
            t0 = time.process_time()
            for _ in range(10):
                fn(frame)
            times[k].append((time.process_time() - t0) * 100.0)  # ms per call
    for k, fn in variants.items():
        scores = []
        for case in golden.CASES:
            img = golden.load_case(case)
            mask = upscale_mask(fn(img), img.shape[0], img.shape[1])
            scores.append(iou(mask, golden.read_golden("general", case)))
        out[k] = {"iou_mean": round(float(np.mean(scores)), 5), "iou_worst": round(float(np.min(scores)), 5),
                  "cpu_ms_median_1080p": round(float(np.median(times[k])), 3)}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description="FP32 vs INT8: IoU against the reference masks and inference time")
    ap.add_argument("--models-dir", type=Path, help="IR files to measure (default: the shipped models)")
    ap.add_argument("--heldout", type=Path, default=HELDOUT, help="held-out part of the data set")
    ap.add_argument("--runs", type=int, default=1000, help="timed runs per model and precision (default 1000)")
    ap.add_argument("--model", action="append", choices=NAMES, help="only this model (repeatable)")
    ap.add_argument("--json", action="store_true", help="all figures as JSON")
    ap.add_argument("--preprocessing", action="store_true", help="compare where preprocessing runs instead")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.preprocessing:
        pre = preprocessing_variants(args.runs)
        if args.json:
            print(json.dumps(pre, indent=2))
            return 0
        print("| variant (general FP32, 1920×1080 frame) | IoU mean | IoU worst | CPU ms median |")
        print("|---|---|---|---|")
        for k, v in pre.items():
            print(f"| {k} | {v['iou_mean']:.4f} | {v['iou_worst']:.4f} | {v['cpu_ms_median_1080p']:.2f} |")
        return 0
    fig = measure(args.models_dir, args.heldout, args.runs, tuple(args.model or NAMES))
    if args.json:
        print(json.dumps(fig, indent=2))
        return 0
    print(f"CPU: {fig['cpu']}, ISA {fig['isa']}\n")
    for metric in ("sure_iou", "iou"):
        print(f"held-out, {metric} (mean / worst):\n{heldout_table(fig, metric)}\n")
    print(figures_table(fig))
    for name in args.model or NAMES:
        print(f"{name}: INT8/FP32 ratio of medians ({args.runs} runs each): wall {fig[name]['int8_vs_fp32_time']:.3f}, "
              f"CPU time 1 thread {fig[name]['int8_vs_fp32_cpu_time']:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
