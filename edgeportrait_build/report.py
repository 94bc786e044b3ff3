"""Figures for ``models/README.md``: agreement with the reference runtime, FP32 vs INT8 speed.

Used by ``edgeportrait model build`` (which writes the README) and by
``benchmarks/bench_segment.py`` (which prints them). Agreement is measured on
the data set's held-out part, per scene class
(:mod:`edgeportrait_build.agreement`), and, in a source tree, on the golden
photos of ``tests/data/golden`` too. Every figure is tied to the CPU it was
measured on (model name and the ISA flags that change INT8's numerics).
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
from edgeportrait_build import agreement
from edgeportrait_build.dataset import CLASSES
from edgeportrait_build.pinned import MEDIAPIPE_VERSION, SOURCES, WHEEL_DIR

REPO = Path(__file__).resolve().parents[1]
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


def isa(flags: set[str] | None = None) -> str:
    """The ISA flags that decide which INT8 kernels the CPU plugin runs, e.g. ``avx2`` or
    ``avx2 avx512f avx512_vnni``, or ``arm64`` / ``arm64 asimddp``."""
    from edgeportrait.segment.precision import cpu_flags

    flags = cpu_flags() if flags is None else flags
    machine = platform.machine().lower()
    if machine in ("aarch64", "arm64"):
        return "arm64" + (" asimddp" if "asimddp" in flags else "")
    wanted = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8")
    have = " ".join(f for f in wanted if f in flags) or machine
    limit = os.environ.get("ONEDNN_MAX_CPU_ISA")
    return have + (f" (ONEDNN_MAX_CPU_ISA={limit})" if limit else "")


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


def golden_agreement(seg: Any, name: str, golden: ModuleType) -> dict[str, Any]:
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

    from edgeportrait.segment.adapter import with_preprocessing
    from edgeportrait.segment.model import to_model_input

    core = ov.Core()
    cfg = {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": 1}
    reqs, inputs = {}, {}
    for k, xml in xmls.items():
        model = with_preprocessing(core.read_model(xml))
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


def heldout_agreement(seg: Any, name: str, heldout: Path) -> dict[str, Any]:
    """The score of every held-out image of ``seg.segment`` and the per-class summary of each metric."""
    per_image = agreement.scores(heldout, name, seg.segment)
    return {
        **{f"by_class_{m}": agreement.by_class(heldout, per_image, m) for m in agreement.METRICS},
        "per_image": {k: {m: round(v, 5) for m, v in d.items()} for k, d in per_image.items()},
    }


def measure(models_dir: Path | None, heldout: Path, runs: int = 1000, names: tuple[str, ...] = NAMES) -> dict[str, Any]:
    """Agreement and speed of every model in ``models_dir`` (CPU, f32 execution, as the daemon runs)."""
    from edgeportrait.config import ModelConfig
    from edgeportrait.segment.segmenter import Segmenter

    out: dict[str, Any] = {"runs": runs, "cpu": cpu_name(), "isa": isa(), "heldout": {}}
    golden = golden_module() if (GOLDEN / "make_golden.py").is_file() else None
    if golden is not None:
        out["cases"] = list(golden.CASES)
    frame = agreement.read_image(next(c for c in agreement.cases(heldout) if c.cls == "portrait_near"))
    for name in names:
        segs = {
            p: Segmenter(ModelConfig(name=name, precision=p, device="CPU", dir=models_dir, infer_requests=1))
            for p in PRECISIONS
        }
        out["heldout"][name] = {p: heldout_agreement(s, name, heldout) for p, s in segs.items()}
        res: dict[str, Any] = {p: (golden_agreement(s, name, golden) if golden else {}) for p, s in segs.items()}
        ms = timing(segs, frame, runs)
        cpu = cpu_timing({p: s.path for p, s in segs.items()}, frame, runs)
        for p in PRECISIONS:
            res[p]["infer_ms_median"] = ms[p]
            res[p]["cpu_ms_1thread_median"] = cpu[p]
        res["int8_vs_fp32_time"] = round(ms["int8"] / ms["fp32"], 3)
        res["int8_vs_fp32_cpu_time"] = round(cpu["int8"] / cpu["fp32"], 3)
        out[name] = res
    return out


def heldout_table(fig: dict[str, Any], metric: str) -> str:
    rows = [
        (f"{name} {p.upper()}", fig["heldout"][name][p][f"by_class_{metric}"])
        for name in NAMES
        if name in fig["heldout"]
        for p in PRECISIONS
    ]
    return agreement.table(rows, [*CLASSES, "all"])


def speed_table(fig: dict[str, Any]) -> str:
    lines = ["| model | precision | wall ms (median) | CPU ms, 1 thread (median) |", "|---|---|---|---|"]
    for name in NAMES:
        if name in fig:
            for p in PRECISIONS:
                a = fig[name][p]
                lines.append(
                    f"| {name} | {p.upper()} | {a['infer_ms_median']:.2f} | {a['cpu_ms_1thread_median']:.2f} |"
                )
    return "\n".join(lines)


def figures_table(fig: dict[str, Any]) -> str:
    """Golden photos: IoU mean / worst and mean abs diff per model and precision."""
    lines = ["| model | precision | IoU mean | IoU worst | mean abs diff |", "|---|---|---|---|---|"]
    for name in NAMES:
        if name in fig and "iou_mean" in fig[name]["fp32"]:
            for p in PRECISIONS:
                a = fig[name][p]
                lines.append(
                    f"| {name} | {p.upper()} | {a['iou_mean']:.4f} | {a['iou_worst']:.4f} | {a['mean_abs_diff']:.4f} |"
                )
    return "\n".join(lines)


def write_readme(out: Path, fig: dict[str, Any], notes: str = "") -> None:
    """models/README.md from the template below and the measured figures (also kept as figures.json)."""
    sources = "\n".join(
        f"| `{s.name}` | `{WHEEL_DIR}/{s.member}` | {s.input_hw[0]}×{s.input_hw[1]} | `{s.sha256}` |"
        for s in SOURCES
    )
    ratios = ", ".join(f"{n} {fig[n]['int8_vs_fp32_time']:.3f}" for n in NAMES if n in fig)
    cpu_ratios = ", ".join(f"{n} {fig[n].get('int8_vs_fp32_cpu_time', float('nan')):.3f}" for n in NAMES if n in fig)
    wheel = fig.get("wheel", {})
    calib = fig.get("calibration", {})
    per_model = calib.get("per_model", {})
    val = ", ".join(
        f"{n} {v['validation_vs_fp32_mean']:.4f} (worst image {v['validation_vs_fp32_worst']:.4f}, "
        f"{v['fake_quantize_ops']} FakeQuantize ops)"
        for n, v in per_model.items()
    ) or "?"
    where = f"`{fig.get('cpu', '?')}`, ISA `{fig.get('isa', '?')}`"
    golden = ""
    if "cases" in fig:
        golden = f"""
On the golden photos of `tests/data/golden` ({', '.join(fig['cases'])}; the three public portraits the
project started with; IoU@0.5, mean / worst / mean absolute difference of the soft masks), measured on {where}:

{figures_table(fig)}
"""
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
preprocessing at load time (BGR uint8 in, via OpenVINO's PrePostProcessor), and
with `model.precision: auto` (the default) runs INT8 only where the device runs
it natively (NPU, GPU, a CPU with VNNI/AMX, ARM with dot-product), FP32 elsewhere.

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
(`edgeportrait_build/tflite_ext.py`) for MediaPipe's custom op
`Convolution2DTransposeBias`, built from OpenVINO ops (1×1 convolution +
DepthToSpace, equal to the transposed 2×2/stride-2 convolution, + bias). No
weights are copied by hand and no model file is edited.

## The data set

`edgeportrait_build/dataset.py` makes it reproducibly (seed {calib.get('seed', '?')}) from public
material that ships through the package registries — Debian's `opencv-doc`
(`vtest.avi`, a street with many walking people; `basketball1/2.png`; `messi5.jpg`;
the `leftNN/rightNN.jpg` series of a man half hidden behind a chessboard; photos
with nobody), scikit-image's `astronaut.png` and `camera.png`, matplotlib's
`grace_hopper.jpg` — in three parts split by *source* (other people, other frames
of the video, other backgrounds): **calibration**, **validation** (accuracy
control) and **held-out** (`tests/data/heldout`, committed with the reference
runtime's masks; no choice of the recipe was made on it). Scene classes:
{', '.join(CLASSES)}. Groups, far portraits, backlight and part of the
partly-out-of-frame and low-light images are composed (people cut out with
the FP32 mask, scaled and placed over real backgrounds of the same part, or
relit); the manifest marks them `synthetic`.

## INT8

{calib.get('method', '')}

This build's INT8 against FP32 on the validation part (mean sure_iou): {val}.

## Measured agreement and speed

Agreement with the masks of the reference runtime (mediapipe {MEDIAPIPE_VERSION}'s own,
made by `edgeportrait_build/reference_masks.py`) on the held-out part, per scene class,
mean / worst image, measured on {where}. INT8's numerics depend on the CPU's
instruction set (VNNI or not, x86 or ARM): these figures hold for that ISA;
`tests/test_heldout.py` checks the targets on whatever CPU runs the tests, and
again with the CPU plugin restricted to a lower ISA.

**sure_iou** — IoU@0.5 counting only the pixels where the reference is sure
(|p − 0.5| ≥ 0.1); on frames with (almost) nobody, the fraction of pixels that agree:

{heldout_table(fig, "sure_iou")}

**IoU@0.5**, all pixels (where the reference hesitates — blurred people of a few
pixels — float rounding alone moves pixels across 0.5: FP32 is not 1.0 there):

{heldout_table(fig, "iou")}
{golden}
Time on CPU ({where}, f32 execution), FP32 and INT8 alternating in blocks in one
process, median of {fig['runs']} runs each: wall time of `Segmenter.infer` (warp to the
input size + inference), INT8/FP32 ratio {ratios}; and process CPU time per inference
on one inference thread, which other load on a shared machine disturbs much less,
INT8/FP32 ratio {cpu_ratios}.

{speed_table(fig)}

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
edgeportrait model build            # downloads the pinned wheel and the data set's sources
edgeportrait model build --wheel mediapipe-{MEDIAPIPE_VERSION}-....whl --data DIR   # local wheel, data set in DIR
```

It rewrites everything in this folder, including this README and its figures.
The data set is made where it is missing (default `~/.cache/edgeportrait/dataset`):
its sources are fetched with `pip download` and `apt-get download opencv-doc`
(or taken from `--sources DIR`) and checked against pinned sha256; outside a
source tree, the held-out part's reference masks are made by mediapipe's own
runtime in a virtual environment the build creates.
{notes}
"""
    atomic_write(out / "README.md", text.encode())
    atomic_write(out / "figures.json", (json.dumps(fig, indent=2) + "\n").encode())
