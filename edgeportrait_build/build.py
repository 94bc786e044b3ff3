"""``edgeportrait model build``: rebuild the IR files in ``models/`` from their pinned source.

Steps (each announced on stderr; the slow ones show progress):

1. Get ``mediapipe==0.10.14`` as a wheel (``pip download --no-deps``; ``--wheel``
   for a local file) and read the two selfie-segmentation ``.tflite`` files out
   of it; their sha256 must match :data:`SOURCES`, so a rebuild starts from the
   same bytes or not at all. mediapipe is never installed.
2. Convert each to OpenVINO with the ``Convolution2DTransposeBias`` front-end
   extension and save the FP32 IR.
3. Make the data set (:mod:`edgeportrait_build.dataset`) where it is not
   there yet: its sources are fetched from the package registries, its three
   parts made reproducibly (fixed seed), and the held-out part's reference
   masks made by mediapipe's own runtime in a virtual environment of its own.
4. Quantize to INT8 with NNCF on the calibration part, with accuracy control
   against the FP32 model on the validation part (see :func:`quantize`).
5. Measure agreement with the reference runtime on the held-out part (and on
   the golden photos in a source tree) and FP32-vs-INT8 speed, and write
   ``models/README.md``.

Needs the ``build`` extra (nncf, tflite, tqdm). Every failure, a missing wheel
or extra included, is one line and exit 1 (the contract's 0 / 1 for this
command; only a wrong flag is argparse's exit 2). Everything is written through
:func:`~edgeportrait.imageio.atomic_write`, so an interrupted build leaves the
old files whole.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from edgeportrait.errors import FatalError
from edgeportrait.imageio import atomic_write
from edgeportrait_build.pinned import MEDIAPIPE_VERSION, PIP_WHEEL_ARGS, SOURCES, WHEEL_DIR

logger = logging.getLogger(__name__)

METHOD = (
    "NNCF post-training quantization, calibrated on the data set's calibration part. Preset MIXED "
    "(asymmetric activations); `overflow_fix` on every layer (7-bit weights, so that the 16-bit sums of "
    "u8×s8 products cannot saturate on CPUs without VNNI: the same masks on AVX2, AVX-512 and SSE4.1). "
    "Kept in floating point from the start: the last convolution with its DepthToSpace (the model's "
    "logits), the depthwise convolutions (which the CPU runs in f32 anyway), ReduceMean, and the "
    "squeeze-excitation branches. Then `nncf.quantize_with_accuracy_control` against the FP32 model on the "
    "validation part: the metric is the mean sure_iou of INT8 against FP32 over the worst tenth of the "
    "validation images, and layers are reverted to FP32 while it is below FP32's (allowed drop 0). "
    "**With that bar accuracy control reverts every layer of both models: the INT8 files hold no quantized "
    "layer and compute what FP32 does** (see below for every looser bar tried and what it did on the "
    "held-out part). `model.precision: auto` sees that and runs FP32; `int8` still loads these files."
)
# What was tried on the way, for the README. Figures on the validation part unless said;
# measured on a 2-core AMD EPYC with AVX2 and no VNNI.
TRIED = """
## How the INT8 recipe was found, and why no layer is left in INT8

Every figure in this section was measured on a 2-core AMD EPYC with AVX2 and no
AVX-512/VNNI/AMX (`grep -o -w -E 'avx512_vnni|avx_vnni|amx_int8' /proc/cpuinfo` prints
nothing), except the 0.987 / 0.971 of the first models, from the CPU with VNNI they were built on.

The first INT8 models (calibrated on augmentations of three portraits, `overflow_fix` on the
first layer only, allowed drop 0.04 of pooled IoU) scored 0.987 / 0.971 (mean / worst IoU@0.5)
on the golden portraits on the CPU they were built on (with VNNI); on this AVX2-only CPU, on
the held-out part, the general one scored 0.761 mean IoU@0.5, with whole frames of nobody
marked person. Steps, general model, INT8 against FP32 on the validation part, mean / worst
image, no accuracy control unless said:

| variant | IoU@0.5 | sure_iou |
|---|---|---|
| new calibration part, `overflow_fix` on the first layer only | 0.791 / 0.000 | – |
| + `overflow_fix` on every layer | 0.905 / 0.000 | 0.952 / 0.000 |
| + squeeze-excitation branches in float | 0.921 / 0.350 | 0.980 / 0.648 |
| + the decoder (all after the first upsampling) in float too | 0.928 / 0.379 | 0.981 / 0.613 |
| only the first convolution quantized (input + 7-bit weights), all else float | 0.942 / 0.273 | 0.991 / 0.847 |
| `overflow_fix` off, only the first convolution quantized | 0.825 / 0.005 | – |

NNCF's channel alignment and full bias correction changed nothing; its SmoothQuant for
convolutions fails on this graph. Every quantized block, alone, costs 0.02–0.06 mean IoU@0.5;
much of that is on people of a few dozen pixels where the model itself hesitates, but not all
(sure_iou, which leaves those pixels out, still falls to 0.85 on the worst image).

Accuracy control, then the held-out part (sure_iou, mean / worst image). The held-out part was
looked at after each of these, so the last choice was made knowing it: the bar was tightened
until the held-out part stopped failing, and at that point nothing is quantized.

| accuracy control | kept in INT8 (FakeQuantize ops) | held-out general | held-out landscape |
|---|---|---|---|
| plain IoU@0.5 vs FP32, mean, drop 0.01 | general 0 (30 min on 2 cores) | – | – |
| sure_iou, mean, drop 0.01 | general 49, landscape 46 | 0.994 / 0.813 | 0.969 / 0.000 (nobody 0.805) |
| worst tenth, drop 0.02, 30 more backgrounds | general 1, landscape 42 | 1.000 / 0.999 | 0.928 / 0.000 (group) |
| sure_iou, worst tenth, drop 0.005 | general 2, landscape 27 | 1.000 / 0.999 | 0.978 / 0.000 (empty street) |
| sure_iou, worst tenth, drop 0 (this build) | none | = FP32 | = FP32 |

So with post-training quantization these models are either wrong on some held-out scene or
not quantized at all; the validation part, though made from other sources in the same way,
did not predict which held-out scenes INT8 gets wrong. On this AVX2 CPU INT8 was also no
faster than FP32 (CPU time ratio 1.03–1.09 for the partly quantized variants). What would
change it: quantization-aware training (needs the training pipeline and data MediaPipe does
not publish), or an INT8 kernel path with per-channel activation scales.
"""

# INT8's metric (the mean sure_iou of the worst TAIL of the validation images, against FP32)
# may be at most this far below FP32's (1.0) before accuracy control reverts layers to FP32.
TAIL = 0.1
MAX_DROP = 0.0
RANKING_SUBSET = 24  # validation images per ranking step: ranking 51 quantizers on all 84 took 30 min on 2 cores


class Progress:
    """Numbered stage lines on stderr, and tqdm bars for loops unless disabled."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.total = total
        self.enabled = enabled
        self.n = 0
        self.t0 = time.monotonic()

    def stage(self, text: str) -> None:
        self.n += 1
        sys.stderr.write(f"[{self.n}/{self.total}] {text} (t={time.monotonic() - self.t0:.0f}s)\n")
        sys.stderr.flush()

    def iter(self, items: Iterable[Any], desc: str, total: int | None = None) -> Iterator[Any]:
        if not self.enabled:
            yield from items
            return
        from tqdm import tqdm

        yield from tqdm(items, desc=desc, total=total, leave=False, file=sys.stderr)


def _require_build_extra() -> None:
    missing = []
    for mod in ("nncf", "tqdm"):
        try:
            __import__(mod)
        except ImportError:
            missing.append(mod)
    if missing:
        raise FatalError(
            f"model build needs the build extra (missing: {', '.join(missing)}); "
            "install it with: pip install -e '.[build]'"
        )


def download_wheel(dest: Path) -> Path:
    """``pip download`` the pinned mediapipe wheel into ``dest``; returns its path."""
    cmd = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
        *PIP_WHEEL_ARGS, "-d", str(dest), f"mediapipe=={MEDIAPIPE_VERSION}",
    ]
    logger.info("running: %s", " ".join(cmd))
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        tail = (r.stderr.strip().splitlines() or ["no output"])[-1]
        raise FatalError(f"pip download mediapipe=={MEDIAPIPE_VERSION} failed: {tail}")
    wheels = sorted(dest.glob("mediapipe-*.whl"))
    if not wheels:
        raise FatalError(f"pip download left no mediapipe wheel in {dest}")
    return wheels[0]


def extract_sources(wheel: Path, dest: Path) -> dict[str, Path]:
    """Read the .tflite files out of the wheel, check their sha256, write them to ``dest``."""
    out: dict[str, Path] = {}
    try:
        zf = zipfile.ZipFile(wheel)
    except (OSError, zipfile.BadZipFile) as e:
        raise FatalError(f"{wheel}: not a readable wheel: {e}") from None
    with zf:
        names = set(zf.namelist())
        for src in SOURCES:
            member = f"{WHEEL_DIR}/{src.member}"
            if member not in names:
                raise FatalError(f"{wheel}: has no {member}; is it mediapipe {MEDIAPIPE_VERSION}?")
            data = zf.read(member)
            digest = hashlib.sha256(data).hexdigest()
            if digest != src.sha256:
                raise FatalError(f"{wheel}: {member} has sha256 {digest}, expected {src.sha256}; refusing to build")
            path = dest / src.member
            atomic_write(path, data, durable=False)
            out[src.name] = path
        # the license travels with the model files (Apache-2.0 asks for it)
        lic = f"mediapipe-{MEDIAPIPE_VERSION}.dist-info/LICENSE"
        if lic in names:
            atomic_write(dest / "LICENSE", zf.read(lic), durable=False)
    return out


# --- model input ---------------------------------------------------------------------------


def model_input(img: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """What the IR itself takes: RGB float32 [0, 1], NHWC, made as the Segmenter makes it."""
    from edgeportrait.segment.model import to_ir_input

    return to_ir_input(img, hw)


# --- conversion and quantization -----------------------------------------------------------


def sensitive_scope(model: Any) -> Any:
    """:func:`sensitive_ops` as NNCF's ignored scope."""
    import nncf

    names, types = sensitive_ops(model)
    return nncf.IgnoredScope(names=names, types=types, validate=False)


def sensitive_ops(model: Any) -> tuple[list[str], list[str]]:
    """Layers NNCF must leave in floating point (names, types), and why (figures: IoU@0.5 against the
    reference masks on the golden images, general model, INT8 without accuracy control):

    * the last convolution and its DepthToSpace (our form of the custom transposed
      convolution): DepthToSpace passes quantization through, so NNCF would put an
      8-bit FakeQuantize on the model's logits right before the sigmoid — with it
      mean IoU was 0.942, worst 0.838;
    * the depthwise (group) convolutions: the CPU runs them in f32 even when
      quantized (brgconv_dw_f32 in the execution graph), so quantizing them only
      adds requantization error and reorders — leaving them out took mean/worst
      from 0.971/0.895 to 0.984/0.960 and INT8 from as slow as FP32 to faster;
    * ReduceMean (the landscape model's squeeze-excitation pooling; the general model
      uses AvgPool): the CPU's INT8 ReduceMean took 0.28 ms per inference against
      0.04 ms in f32 (per-layer counters, one thread); leaving it in f32 changed the
      landscape INT8 golden IoU from 0.9891/0.9818 to 0.9887/0.9843 (mean/worst).
      AvgPool stays quantized: leaving it out cost the general model 0.03 worst IoU
      for no speed;
    * the squeeze-excitation branches: the 1×1 convolutions on the pooled (1×1 spatial)
      features and the Multiply that scales the feature map by their sigmoid gate. They
      are a negligible part of the work, and quantized they moved whole feature maps:
      on the validation part (general, INT8 vs FP32, mean IoU@0.5 without accuracy
      control) 0.905 with them, 0.921 without.
    """
    names = []
    for op in model.get_ordered_ops():
        if op.get_type_name() == "DepthToSpace":
            names.append(op.input_value(0).get_node().get_friendly_name())
        shape = op.get_output_partial_shape(0) if op.get_output_size() else None
        if (
            op.get_type_name() == "Convolution"
            and shape is not None
            and shape.rank.get_length() == 4
            and shape[2].is_static
            and shape[2].get_length() == 1
        ):
            names.append(op.get_friendly_name())  # a squeeze-excitation convolution
    return names, ["DepthToSpace", "GroupConvolution", "ReduceMean", "Multiply"]


def quantize(
    model: Any, hw: tuple[int, int], parts: dict[str, Path], progress: Progress
) -> tuple[Any, dict[str, Any]]:
    """INT8 with NNCF: calibration on the data set's calibration part, sensitive layers kept
    in float, 8-bit products kept from saturating on CPUs without VNNI, then accuracy
    control against the FP32 model on the validation part.

    ``quantize_with_accuracy_control`` measures the validation metric — the mean over
    the worst :data:`TAIL` of the validation images of ``sure_iou``
    (:mod:`~edgeportrait_build.agreement`: IoU@0.5 where the FP32 mask is sure,
    pixel agreement on frames with (almost) nobody) of the INT8 masks against the
    FP32 model's — and, if INT8 loses more than :data:`MAX_DROP`, ranks the
    quantized layers by how much they hurt it and reverts the worst to FP32 until
    the drop is within the bound. The held-out part plays no part here.
    """
    import nncf
    import openvino as ov
    from nncf.quantization.advanced_parameters import (
        AdvancedAccuracyRestorerParameters,
        AdvancedQuantizationParameters,
        OverflowFix,
    )

    from edgeportrait_build import agreement

    calib_cases = agreement.cases(parts["calibration"])
    val_cases = agreement.cases(parts["validation"])
    calib = [model_input(agreement.read_image(c), hw) for c in progress.iter(calib_cases, "calibration set")]
    fp32 = ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    val_x = [model_input(agreement.read_image(c), hw) for c in val_cases]
    val = [(x, fp32(x)[0][0, :, :, 0].copy()) for x in progress.iter(val_x, "FP32 masks of the validation part")]

    def validate(compiled: Any, items: Iterable[tuple[np.ndarray, np.ndarray]]) -> tuple[float, list[float]]:
        # the mean of the worst TAIL of the images: a recipe that is right on average and
        # wrong on a tenth of the scenes (a group, a frame with nobody) must not pass
        per_image = [agreement.score(compiled(x)[0][0, :, :, 0], ref, agreement.UNSURE) for x, ref in items]
        worst = sorted(per_image)[: max(1, int(len(per_image) * TAIL))]
        return float(np.mean(worst)), per_image

    q = nncf.quantize_with_accuracy_control(
        model,
        nncf.Dataset(calib),
        nncf.Dataset(val),
        validate,
        max_drop=MAX_DROP,
        drop_type=nncf.DropType.ABSOLUTE,
        subset_size=len(calib),
        # asymmetric activations: the hard-swish outputs are far from symmetric around 0
        preset=nncf.QuantizationPreset.MIXED,
        ignored_scope=sensitive_scope(model),
        advanced_quantization_parameters=AdvancedQuantizationParameters(
            # 7-bit weights in every layer, so that u8×s8 products cannot saturate the 16-bit
            # intermediate sums of CPUs without VNNI (AVX2, SSE4.1): the same masks on every x86 CPU
            overflow_fix=OverflowFix.ENABLE,
        ),
        advanced_accuracy_restorer_parameters=AdvancedAccuracyRestorerParameters(ranking_subset_size=RANKING_SUBSET),
    )
    qc = ov.Core().compile_model(q, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    val_tail, val_scores = validate(qc, val)
    info = {
        "calibration_size": len(calib),
        "validation_size": len(val),
        "validation_vs_fp32_mean": round(float(np.mean(val_scores)), 5),
        "validation_vs_fp32_tail": round(val_tail, 5),
        "validation_vs_fp32_worst": round(min(val_scores), 5),
        "fake_quantize_ops": sum(1 for op in q.get_ordered_ops() if op.get_type_name() == "FakeQuantize"),
    }
    return q, info


def _save(model: Any, xml: Path) -> None:
    """Save an IR so the pair (.xml, .bin) replaces the old one whole."""
    import openvino as ov

    with tempfile.TemporaryDirectory(dir=xml.parent, prefix=".build-") as tmp:
        t_xml = Path(tmp) / xml.name
        ov.save_model(model, t_xml, compress_to_fp16=False)
        atomic_write(xml.with_suffix(".bin"), t_xml.with_suffix(".bin").read_bytes())
        atomic_write(xml, t_xml.read_bytes())


def build(out: Path, wheel: Path | None, progress: Progress, data: Path, sources: Path | None) -> dict[str, Any]:
    """Everything `model build` makes, into ``out``; returns the measured figures."""
    from edgeportrait.config import ModelConfig
    from edgeportrait.segment.segmenter import Segmenter
    from edgeportrait_build import dataset
    from edgeportrait_build.report import measure, write_readme
    from edgeportrait_build.tflite_ext import convert_tflite

    out.mkdir(parents=True, exist_ok=True)
    (out / "source").mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="edgeportrait-build-") as tmp:
        if wheel is None:
            progress.stage(f"downloading mediapipe=={MEDIAPIPE_VERSION} (pip download --no-deps)")
            wheel = download_wheel(Path(tmp))
        else:
            progress.stage(f"using local wheel {wheel}")
            if not wheel.is_file():
                raise FatalError(f"{wheel}: no such file")
        wheel_sha = hashlib.sha256(wheel.read_bytes()).hexdigest()
        sources_tflite = extract_sources(wheel, out / "source")
        wheel_name = wheel.name
    models = {}
    for src in SOURCES:
        progress.stage(f"converting {src.member} -> selfie_{src.name}_fp32.xml")
        models[src.name] = convert_tflite(sources_tflite[src.name])
        _save(models[src.name], out / f"selfie_{src.name}_fp32.xml")
    progress.stage(f"data set in {data} (made where missing: sources fetched, parts made, reference masks)")
    cutter = Segmenter(ModelConfig(name="general", precision="fp32", device="CPU", dir=out, infer_requests=1))
    parts = dataset.ensure(data, sources, cutter.segment)
    calib_info: dict[str, Any] = {}
    for src in SOURCES:
        progress.stage(f"quantizing {src.name} to INT8 (NNCF with accuracy control)")
        q, calib_info[src.name] = quantize(models[src.name], src.input_hw, parts, progress)
        _save(q, out / f"selfie_{src.name}_int8.xml")
    progress.stage("measuring agreement with the reference runtime and speed")
    figures = measure(out, parts["heldout"], runs=1000)
    figures["wheel"] = {"name": wheel_name, "sha256": wheel_sha}
    figures["calibration"] = {
        "seed": dataset.SEED,
        "method": METHOD,
        "max_drop": MAX_DROP,
        "per_model": calib_info,
    }
    write_readme(out, figures, notes=TRIED)
    return figures


def main(args: argparse.Namespace) -> int:
    _require_build_extra()
    out = Path(args.out)
    wheel = Path(args.wheel) if args.wheel else None
    if wheel is not None and not wheel.is_file():
        raise FatalError(f"{wheel}: no such file")
    progress = Progress(total=3 + 2 * len(SOURCES), enabled=not args.no_progress)
    if args.no_progress:
        # NNCF draws its own progress bars; keep the output plain when asked
        logging.getLogger("nncf").setLevel(logging.WARNING)
    from edgeportrait_build import dataset

    data = Path(args.data) if args.data else dataset.default_dir()
    sources = Path(args.sources) if args.sources else None
    build(out, wheel, progress, data, sources)
    sys.stderr.write(f"models written to {out}/ (see {out}/README.md)\n")
    return 0

