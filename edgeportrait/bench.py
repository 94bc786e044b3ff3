"""``edgeportrait bench``: how long each stage takes, per frame size, on this machine.

For each size (720p and 1080p by default) it measures decode (JPEG → BGR),
segment (the Segmenter's ``infer``, resize included), compose (at the
configured ``portrait:`` settings), encode (BGR → JPEG) and the whole chain,
each over ``--runs`` runs after a warm-up, and reports median and p95. The
naive compositor (full-resolution GaussianBlur, float32 blending in numpy) runs
on the same frames in the same loop, interleaved with the real one, so that
their ratio is fair on a machine whose load changes. It also reports how far
the fast compositor's reduced-resolution blur is from the full-resolution one
(PSNR, mean absolute difference).

The frame is generated (a textured background and a head-and-shoulders
figure whose mask is known exactly) unless ``--input`` names a photo, which
is then scaled to cover each size and segmented for its mask.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import platform
import re
import sys
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import cv2
import numpy as np

from edgeportrait.errors import EX_OK, FatalError, UserError

logger = logging.getLogger(__name__)

NAMED_SIZES = {
    "480p": (854, 480),
    "720p": (1280, 720),
    "1080p": (1920, 1080),
    "1440p": (2560, 1440),
    "4k": (3840, 2160),
}
MAX_RUNS = 100_000
WARMUP = 2
STAGES = ("decode", "segment", "segment_fp32", "segment_int8", "compose", "encode", "chain", "naive_compose")


def parse_sizes(text: str) -> list[tuple[str, int, int]]:
    """``720p,1080p,4k,640x480`` → [(label, width, height)]; anything else is a UserError."""
    out = []
    for item in (s.strip().lower() for s in text.split(",")):
        if not item:
            continue
        if item in NAMED_SIZES:
            w, h = NAMED_SIZES[item]
        else:
            m = re.fullmatch(r"(\d{2,5})x(\d{2,5})", item)
            if not m:
                raise UserError(f"--sizes: {item!r} is not 720p, 1080p, 4k or WIDTHxHEIGHT")
            w, h = int(m.group(1)), int(m.group(2))
            if not (64 <= w <= 8192 and 64 <= h <= 8192):
                raise UserError(f"--sizes: {item} is outside 64…8192 pixels a side")
        out.append((item, w, h))
    if not out:
        raise UserError("--sizes: no size given")
    return out


def generated_frame(width: int, height: int, seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """A portrait-like frame and its exact person mask (uint8, 255 = person, at the frame's size).

    Smooth gradients with fine noise (so JPEG and blur have real work) and a
    head-and-shoulders figure with detail of its own.
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    frame = np.empty((height, width, 3), np.float32)
    frame[:, :, 0] = 90 + 60 * xx / width
    frame[:, :, 1] = 120 + 50 * np.sin(yy / height * 3.0)
    frame[:, :, 2] = 150 - 40 * yy / height
    frame += rng.normal(0, 12, (height // 4 + 1, width // 4 + 1, 3)).repeat(4, 0).repeat(4, 1)[:height, :width]
    mask = np.zeros((height, width), np.uint8)
    cx, s = width // 2, min(width, height)
    cv2.ellipse(mask, (cx, int(height * 0.38)), (int(s * 0.13), int(s * 0.17)), 0, 0, 360, 255, -1)  # head
    cv2.ellipse(mask, (cx, height + int(s * 0.05)), (int(s * 0.42), int(s * 0.45)), 0, 180, 360, 255, -1)
    cv2.rectangle(mask, (cx - int(s * 0.06), int(height * 0.5)), (cx + int(s * 0.06), int(height * 0.66)), 255, -1)
    person = mask > 0
    stripes = (np.sin(xx / max(2.0, s / 120)) * 30).astype(np.float32)
    frame[person] = np.stack([70 + stripes, 90 + stripes, 200 + stripes * 0.5], axis=-1)[person]
    out = np.clip(frame + rng.normal(0, 4, frame.shape), 0, 255).astype(np.uint8)
    return out, mask


def _chain(jpeg: bytes, segmenter: Any, compositor: Any, quality: int) -> bytes:
    """The whole way of one photo: JPEG in, portrait JPEG out."""
    from edgeportrait.imageio import decode_image, encode_jpeg

    frame = decode_image(jpeg)
    return encode_jpeg(compositor.compose(frame, segmenter.infer(frame)), quality)


def _stats(ms: list[float]) -> dict[str, float]:
    return {"median_ms": round(float(np.median(ms)), 3), "p95_ms": round(float(np.percentile(ms, 95)), 3)}


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * math.log10(255.0**2 / mse) if mse > 0 else float("inf")


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    result = fn()
    return (time.perf_counter() - t0) * 1000.0, result


def main(args: argparse.Namespace) -> int:
    from edgeportrait.compose import Compositor, blur_sigma, fast_blur, naive_compose, native
    from edgeportrait.compose.background import cover
    from edgeportrait.config import load_config
    from edgeportrait.imageio import decode_image, encode_jpeg, read_image

    runs = int(args.runs)
    if not 1 <= runs <= MAX_RUNS:
        raise UserError(f"--runs: must be between 1 and {MAX_RUNS} (got {runs})")
    sizes = parse_sizes(args.sizes)
    cfg = load_config(args.config)
    photo = read_image(args.input) if args.input else None
    quality = cfg.capture.jpeg_quality

    segmenter = None
    segment_error = None
    try:
        from edgeportrait.segment.segmenter import Segmenter

        segmenter = Segmenter(cfg.model)
    except FatalError as e:
        # the compositor and codecs can still be measured; say why segment is missing
        segment_error = str(e)
        sys.stderr.write(f"edgeportrait: segment stage skipped: {e}\n")

    report: dict[str, Any] = {
        "runs": runs,
        "input": str(args.input) if args.input else "generated",
        "portrait": cfg.portrait.model_dump(mode="json"),
        "model": {
            "name": cfg.model.name,
            "precision": segmenter.precision if segmenter else cfg.model.precision,
            "precision_reason": segmenter.precision_reason if segmenter else None,
            "device": segmenter.device if segmenter else None,
            "error": segment_error,
        },
        "machine": {"cpus": os.cpu_count(), "cv2_threads": cv2.getNumThreads(), "python": platform.python_version()},
        "compose_path": native.status(),
        "sizes": {},
    }
    # both precisions side by side on the device in use, whatever `auto` chose
    by_precision: dict[str, Any] = {}
    if segmenter is not None:
        for precision in ("fp32", "int8"):
            model_cfg = cfg.model.model_copy(update={"precision": precision, "device": segmenter.device.split(",")[0]})
            try:
                by_precision[precision] = Segmenter(model_cfg)
            except FatalError as e:
                sys.stderr.write(f"edgeportrait: segment_{precision} stage skipped: {e}\n")
    compositor = Compositor(cfg.portrait, temporal=False)
    for label, w, h in sizes:
        generated, known_mask = generated_frame(w, h)
        frame = cover(photo, h, w) if photo is not None else generated
        if segmenter is not None and photo is not None:
            mask = segmenter.infer(frame)
        else:
            # the generated figure's exact silhouette at model resolution, as the model would give it
            # (also the stand-in for a photo when no model could be loaded)
            mask = cv2.resize(known_mask, (256, 256), interpolation=cv2.INTER_AREA)
        jpeg = encode_jpeg(frame, quality)
        settings = cfg.portrait

        composed = compositor.compose(frame, mask)
        stages: dict[str, Callable[[], Any]] = {
            "decode": partial(decode_image, jpeg),
            "compose": partial(compositor.compose, frame, mask),
            "encode": partial(encode_jpeg, composed, quality),
            "naive_compose": partial(naive_compose, frame, mask, settings),
        }
        if segmenter is not None:
            stages["segment"] = partial(segmenter.infer, frame)
            stages["chain"] = partial(_chain, jpeg, segmenter, compositor, quality)
        for precision, seg in by_precision.items():
            stages[f"segment_{precision}"] = partial(seg.infer, frame)
        times: dict[str, list[float]] = {name: [] for name in stages}
        for fn in stages.values():
            for _ in range(WARMUP):
                fn()
        # interleaved: every stage (and the naive compositor) sees the same machine load
        for _ in range(runs):
            for name, fn in stages.items():
                times[name].append(_timed(fn)[0])
        result: dict[str, Any] = {"width": w, "height": h, "stages": {}}
        for name in STAGES:
            if name in times:
                result["stages"][name] = _stats(times[name])
        if len(by_precision) == 2:
            fp32_ms, int8_ms = (result["stages"][f"segment_{p}"]["median_ms"] for p in ("fp32", "int8"))
            result["int8_over_fp32"] = round(int8_ms / max(fp32_ms, 1e-9), 3)
        comp, naive = result["stages"]["compose"], result["stages"]["naive_compose"]
        result["naive_over_compose"] = round(naive["median_ms"] / max(comp["median_ms"], 1e-9), 2)
        sigma = blur_sigma(settings.blur, h, w)
        if sigma > 0:
            full = cv2.GaussianBlur(frame, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
            fast = fast_blur(frame, sigma)
            result["blur_vs_full_resolution"] = {
                "sigma_px": round(sigma, 2),
                "psnr_db": round(_psnr(fast, full), 2),
                "mean_abs_diff": round(float(np.abs(fast.astype(np.int16) - full).mean()), 3),
                "max_abs_diff": int(np.abs(fast.astype(np.int16) - full).max()),
            }
        result["compose_vs_naive_mean_abs_diff"] = round(
            float(np.abs(composed.astype(np.int16) - naive_compose(frame, mask, settings)).mean()), 3
        )
        report["sizes"][label] = result

    if args.json:
        json.dump(report, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(format_table(report))
    return EX_OK


def format_table(report: dict[str, Any]) -> str:
    sizes = report["sizes"]
    labels = list(sizes)
    model = report["model"]
    where = f"{model['name']} {model['precision']} on {model['device']}" if model["device"] else "segment: n/a"
    p = report["portrait"]
    lines = [
        f"edgeportrait bench: {report['runs']} runs, input {report['input']}, {where}, "
        f"portrait mode={p['mode']} blur={p['blur']:g}, {report['machine']['cpus']} CPUs, "
        f"cv2 threads {report['machine']['cv2_threads']}",
        f"compositor: {report['compose_path']}",
        "",
    ]
    head = f"{'stage (ms)':<16}" + "".join(f"{lab + ' median':>16}{'p95':>9}" for lab in labels)
    lines.append(head)
    lines.append("-" * len(head))
    for name in STAGES:
        row = f"{name:<16}"
        for lab in labels:
            s = sizes[lab]["stages"].get(name)
            row += f"{s['median_ms']:>16.2f}{s['p95_ms']:>9.2f}" if s else f"{'n/a':>16}{'':>9}"
        lines.append(row)
    lines.append("")
    if all("int8_over_fp32" in sizes[lab] for lab in labels):
        ratios = ", ".join(f"{lab} {sizes[lab]['int8_over_fp32']:.2f}" for lab in labels)
        lines.append(f"INT8/FP32 segment time: {ratios}")
    if model.get("precision_reason"):
        lines.append(f"precision {model['precision']}: {model['precision_reason']}")
    lines.append("naive/compose: " + ", ".join(f"{lab} {sizes[lab]['naive_over_compose']:.1f}x" for lab in labels))
    for lab in labels:
        b = sizes[lab].get("blur_vs_full_resolution")
        if b:
            lines.append(
                f"{lab}: reduced-resolution blur vs full-resolution GaussianBlur (sigma {b['sigma_px']} px): "
                f"PSNR {b['psnr_db']} dB, mean |diff| {b['mean_abs_diff']}, max {b['max_abs_diff']}; "
                f"composite vs naive mean |diff| {sizes[lab]['compose_vs_naive_mean_abs_diff']}"
            )
    return "\n".join(lines) + "\n"
