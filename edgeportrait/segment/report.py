"""Figures for ``models/README.md``: agreement with the reference runtime, FP32 vs INT8 speed.

Used by ``edgeportrait model build`` (which writes the README) and by
``benchmarks/bench_segment.py`` (which prints them). Both need a source tree:
the reference masks and the script that made them are in ``tests/data/golden``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from edgeportrait.imageio import atomic_write

REPO = Path(__file__).resolve().parents[2]
GOLDEN = REPO / "tests" / "data" / "golden"
NAMES = ("general", "landscape")
PRECISIONS = ("fp32", "int8")


def cpu_name() -> str:
    """The CPU model as /proc/cpuinfo names it, with the core count (platform.processor() is often empty)."""
    name = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{name}, {os.cpu_count()} cores"


def golden_module() -> ModuleType:
    """tests/data/golden/make_golden.py, which defines the cases and reads the reference masks."""
    path = GOLDEN / "make_golden.py"
    spec = importlib.util.spec_from_file_location("make_golden", path)
    if spec is None or spec.loader is None:
        raise FileNotFoundError(path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def iou(a: np.ndarray, b: np.ndarray, threshold: float = 0.5) -> float:
    pa, pb = a > threshold, b > threshold
    union = np.logical_or(pa, pb).sum()
    return 1.0 if union == 0 else float(np.logical_and(pa, pb).sum() / union)


def agreement(seg: Any, name: str, golden: ModuleType) -> dict[str, Any]:
    """IoU@0.5 per golden case of ``seg.segment`` against the reference mask, mean and worst."""
    scores: dict[str, float] = {}
    diffs = []
    for case in golden.CASES:
        ref = golden.read_golden(name, case)
        mask = seg.segment(golden.load_case(case))
        scores[case] = round(iou(mask, ref), 5)
        diffs.append(float(np.abs(mask - ref).mean()))
    vals = list(scores.values())
    return {
        "iou_mean": round(float(np.mean(vals)), 5),
        "iou_worst": round(float(np.min(vals)), 5),
        "iou": scores,
        "mean_abs_diff": round(float(np.mean(diffs)), 5),
    }


def timing(segs: dict[str, Any], frame: np.ndarray, runs: int, block: int = 5) -> dict[str, float]:
    """Median ``infer`` time (ms) of each segmenter; they alternate in blocks so that
    load from other processes falls on all of them alike."""
    times: dict[str, list[float]] = {k: [] for k in segs}
    for seg in segs.values():
        for _ in range(10):  # warm-up: first runs allocate
            seg.infer(frame)
    for _ in range(max(1, runs // block)):
        for k, seg in segs.items():
            for _ in range(block):
                t0 = time.perf_counter()
                seg.infer(frame)
                times[k].append((time.perf_counter() - t0) * 1000.0)
    return {k: round(float(np.median(v)), 3) for k, v in times.items()}


def cpu_timing(xmls: dict[str, Path], frame: np.ndarray, runs: int, block: int = 5) -> dict[str, float]:
    """Median process CPU time (ms) per inference on ONE inference thread, models alternating
    in blocks. On a machine shared with other work, wall time measures the neighbours as
    much as the model; CPU time of one thread is much steadier (cache effects remain)."""
    import openvino as ov

    from edgeportrait.segment.segmenter import _with_preprocessing, to_model_input

    core = ov.Core()
    cfg = {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": 1}
    reqs, inputs = {}, {}
    for k, xml in xmls.items():
        model = _with_preprocessing(core.read_model(xml))
        reqs[k] = core.compile_model(model, "CPU", cfg).create_infer_request()
        shape = model.input(0).get_partial_shape()
        inputs[k] = to_model_input(frame, (shape[1].get_length(), shape[2].get_length()))
    for k, r in reqs.items():
        for _ in range(10):
            r.infer({0: inputs[k]})
    times: dict[str, list[float]] = {k: [] for k in reqs}
    for _ in range(max(1, runs // block)):
        for k, r in reqs.items():
            t0 = time.process_time()
            for _ in range(block):
                r.infer({0: inputs[k]})
            times[k].append((time.process_time() - t0) * 1000.0 / block)
    return {k: round(float(np.median(v)), 3) for k, v in times.items()}


def measure(models_dir: Path | None, runs: int = 1000, names: tuple[str, ...] = NAMES) -> dict[str, Any]:
    """Agreement and speed of every model in ``models_dir`` (CPU, f32 execution, as the daemon runs)."""
    from edgeportrait.config import ModelConfig
    from edgeportrait.segment.segmenter import Segmenter

    golden = golden_module()
    out: dict[str, Any] = {"cases": list(golden.CASES), "runs": runs, "cpu": cpu_name()}
    for name in names:
        segs = {
            p: Segmenter(
                ModelConfig.model_validate(
                    {"name": name, "precision": p, "device": "CPU", "dir": models_dir, "infer_requests": 1}
                )
            )
            for p in PRECISIONS
        }
        res: dict[str, Any] = {p: agreement(s, name, golden) for p, s in segs.items()}
        frame = golden.load_case("grace_hopper")
        ms = timing(segs, frame, runs)
        cpu = cpu_timing({p: s.path for p, s in segs.items()}, frame, runs)
        for p in PRECISIONS:
            res[p]["infer_ms_median"] = ms[p]
            res[p]["cpu_ms_1thread_median"] = cpu[p]
        res["int8_vs_fp32_time"] = round(ms["int8"] / ms["fp32"], 3)
        res["int8_vs_fp32_cpu_time"] = round(cpu["int8"] / cpu["fp32"], 3)
        out[name] = res
    return out


def figures_table(fig: dict[str, Any]) -> str:
    lines = [
        "| model | precision | IoU mean | IoU worst | mean abs diff | wall ms (median) | CPU ms, 1 thread (median) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in NAMES:
        if name not in fig:
            continue
        for p in PRECISIONS:
            a = fig[name][p]
            lines.append(
                f"| {name} | {p.upper()} | {a['iou_mean']:.4f} | {a['iou_worst']:.4f} | "
                f"{a['mean_abs_diff']:.4f} | {a['infer_ms_median']:.2f} | "
                f"{a.get('cpu_ms_1thread_median', float('nan')):.2f} |"
            )
    return "\n".join(lines)


def per_case_table(fig: dict[str, Any]) -> str:
    cases = fig["cases"]
    lines = ["| model | precision | " + " | ".join(cases) + " |", "|---|---|" + "---|" * len(cases)]
    for name in NAMES:
        if name not in fig:
            continue
        for p in PRECISIONS:
            vals = " | ".join(f"{fig[name][p]['iou'][c]:.4f}" for c in cases)
            lines.append(f"| {name} | {p.upper()} | {vals} |")
    return "\n".join(lines)


def write_readme(out: Path, fig: dict[str, Any], notes: str = "") -> None:
    """models/README.md from the template below and the measured figures (also kept as figures.json)."""
    from edgeportrait.segment.build import MEDIAPIPE_VERSION, SOURCES, WHEEL_DIR

    sources = "\n".join(
        f"| `{s.name}` | `{WHEEL_DIR}/{s.member}` | {s.input_hw[0]}×{s.input_hw[1]} | `{s.sha256}` |"
        for s in SOURCES
    )
    ratios = ", ".join(f"{n} {fig[n]['int8_vs_fp32_time']:.3f}" for n in NAMES if n in fig)
    cpu_ratios = ", ".join(f"{n} {fig[n].get('int8_vs_fp32_cpu_time', float('nan')):.3f}" for n in NAMES if n in fig)
    wheel = fig.get("wheel", {})
    per_model = fig.get("calibration", {}).get("per_model", {})
    val_ious = ", ".join(f"{n} {v['validation_iou_vs_fp32']:.4f}" for n, v in per_model.items()) or "?"
    text = f"""# models/

OpenVINO IR of **MediaPipe Selfie Segmentation**, made by `edgeportrait model build`.

| file | what |
|---|---|
| `selfie_general_fp32.xml/.bin` | general model, 256×256 input, FP32 |
| `selfie_general_int8.xml/.bin` | the same, INT8 (NNCF post-training quantization) |
| `selfie_landscape_fp32.xml/.bin` | landscape model, 144×256 input, FP32 |
| `selfie_landscape_int8.xml/.bin` | the same, INT8 |
| `source/*.tflite` | the original models, as read out of the mediapipe wheel (used by the tests) |
| `source/LICENSE` | mediapipe's license file from the same wheel |
| `figures.json` | the figures below, machine-readable |

Each IR takes `input_1`: 1×H×W×3 float32 RGB in [0, 1] (NHWC) and returns 1×H×W×1,
the person probability (the model ends in a sigmoid). The Segmenter adds its
preprocessing at load time (BGR uint8 in, via OpenVINO's PrePostProcessor).

## Provenance

Source: the `mediapipe=={MEDIAPIPE_VERSION}` wheel from PyPI
(`pip download --no-deps mediapipe=={MEDIAPIPE_VERSION}`; last build used
`{wheel.get('name', '?')}`, sha256 `{wheel.get('sha256', '?')}`). mediapipe is never
installed; the build reads the files out of the wheel (a zip) and refuses to go
on unless their sha256 matches the pin:

| model | file in the wheel | input (H×W) | sha256 |
|---|---|---|---|
{sources}

Conversion: OpenVINO's TFLite front end, plus a front-end `ConversionExtension`
(`edgeportrait/segment/tflite_ext.py`) for MediaPipe's custom op
`Convolution2DTransposeBias`, built from OpenVINO ops (1×1 convolution +
DepthToSpace, equal to the transposed 2×2/stride-2 convolution, + bias). No
weights are copied by hand and no model file is edited.

INT8: NNCF post-training quantization, calibrated on {fig.get('calibration', {}).get('size', '?')} images made
reproducibly (fixed seed) from the public photos of people in `tests/data`
by augmentation (crops of other aspect ratios, flips, brightness/contrast,
gamma, blur). {fig.get('calibration', {}).get('method', '')}
Allowed drop: {fig.get('calibration', {}).get('max_drop', '?')} pooled IoU; this build's INT8 against FP32 on the
{fig.get('calibration', {}).get('validation_size', '?')} held-out augmentations: {val_ious}.

## License and attribution

The models are MediaPipe Selfie Segmentation, Copyright The MediaPipe Authors
(Google), licensed under the Apache License 2.0: `source/LICENSE` is the license
file of the mediapipe wheel they come from. The IR files here are a format
conversion (FP32) and a post-training quantization (INT8) of those models, made
by edgeportrait's build; they are distributed under the same license. The model
card is linked from MediaPipe's selfie-segmentation documentation.

## Rebuild

```sh
pip install -e '.[build]'
edgeportrait model build            # downloads the pinned wheel with pip
edgeportrait model build --wheel mediapipe-{MEDIAPIPE_VERSION}-....whl   # or from a local wheel
```

It rewrites everything in this folder, including this README and its figures.
The build is deterministic (fixed calibration seed): with the same openvino and
nncf versions it makes these IR files byte for byte —
`EDGEPORTRAIT_MEDIAPIPE_WHEEL=<wheel> pytest tests/test_segment_convert.py -k reproduces`
checks that (about a minute).

## Measured agreement and speed

Against the masks of the reference runtime (mediapipe {MEDIAPIPE_VERSION}, made by
`tests/data/golden/make_golden.py`), on {len(fig['cases'])} images from the three public photos
in `tests/data` ({', '.join(fig['cases'])}): IoU of the person area
(mask > 0.5), mean and worst over the images; mean absolute difference of the
soft masks. Time on CPU (`{fig.get('cpu', '?')}`, f32 execution), FP32 and INT8
alternating in blocks in one process, median of {fig['runs']} runs each: wall time of
`Segmenter.infer` (warp to the input size + inference, two threads), INT8/FP32 ratio
{ratios}; and process CPU time per inference on one inference thread, which other
load on this shared machine disturbs much less, INT8/FP32 ratio {cpu_ratios}.

{figures_table(fig)}

IoU per image:

{per_case_table(fig)}

Caveat: the only public photos of people at hand are the three in `tests/data`,
so the INT8 calibration set is made from the same photos as the golden images,
and the INT8 figures above are optimistic for other photos. The held-out
augmentations of the accuracy-control step (crops, light changes; INT8 against
FP32 pooled IoU given under Provenance) are the more conservative figure. FP32
involves no calibration and matches the reference to rounding.
{notes}
"""
    atomic_write(out / "README.md", text.encode())
    atomic_write(out / "figures.json", (json.dumps(fig, indent=2) + "\n").encode())
