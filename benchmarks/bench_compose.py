"""The compositor alone: fast vs naive at 720p and 1080p, and where the time goes.

    python benchmarks/bench_compose.py [--runs N] [--threads 1,2] [--json]

Frame: the astronaut photo (tests/data) scaled to cover the size; mask: the
reference mask for it (tests/data/golden) at the model's 256×256, so the
band around the silhouette is a real one. The fast compositor, its three parts
(prepare: matte at working resolution; background: mask-normalised blur and
upscale; render: band-only blend) and the naive compositor (full-resolution
GaussianBlur, float32 numpy blend) run interleaved in one loop, so the load
of other processes falls on all alike. Reported: median, p95 and min in ms,
the median CPU time of the calling thread (with ``--threads 1`` that is the
whole cost of a call, and much less disturbed by other processes than the
wall time), and naive/fast as the ratio of the medians. Also the approximation error of
the reduced-resolution blur against the full-resolution GaussianBlur.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import cv2
import numpy as np

from edgeportrait.compose import Compositor, blur_sigma, fast_blur, make_background, naive_compose, prepare
from edgeportrait.compose.background import cover
from edgeportrait.compose.blend import render
from edgeportrait.compose.compositor import pad_to_factor
from edgeportrait.config import PortraitConfig

DATA = Path(__file__).resolve().parent.parent / "tests" / "data"
SIZES = {"720p": (1280, 720), "1080p": (1920, 1080)}


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * math.log10(255**2 / mse) if mse else float("inf")


def measure(runs: int, threads: int) -> dict[str, object]:
    cv2.setNumThreads(threads)
    photo = cv2.imread(str(DATA / "astronaut.png"))
    golden = cv2.imread(str(DATA / "golden/general/astronaut.png"), cv2.IMREAD_UNCHANGED).astype(np.float32) / 65535
    s = PortraitConfig()
    out: dict[str, object] = {"threads": threads, "runs": runs, "sizes": {}}
    for label, (w, h) in SIZES.items():
        frame = cover(photo, h, w)
        mask = cv2.resize(cover(golden, h, w), (256, 256), interpolation=cv2.INTER_AREA)
        comp = Compositor(s, temporal=False)
        work, f = pad_to_factor(frame)
        prep = prepare(work, mask, s, None, f)
        bg = make_background(work, prep, s)
        fns = {
            "compose": lambda frame=frame, mask=mask, comp=comp: comp.compose(frame, mask),
            "prepare": lambda work=work, mask=mask, f=f: prepare(work, mask, s, None, f),
            "background": lambda work=work, prep=prep: make_background(work, prep, s),
            "render": lambda work=work, prep=prep, bg=bg: render(work, prep.matte, bg.copy()),
            "naive": lambda frame=frame, mask=mask: naive_compose(frame, mask, s),
        }
        times: dict[str, list[float]] = {k: [] for k in fns}
        cpu: dict[str, list[float]] = {k: [] for k in fns}
        for fn in fns.values():
            fn()
        for i in range(runs):
            for k, fn in fns.items():
                if k == "naive" and i % 4:  # the slow one a quarter as often: same conditions, less waiting
                    continue
                c0 = time.thread_time()
                t0 = time.perf_counter()
                fn()
                times[k].append((time.perf_counter() - t0) * 1000)
                cpu[k].append((time.thread_time() - c0) * 1000)
        stats = {
            k: {
                "median_ms": round(float(np.median(v)), 2),
                "p95_ms": round(float(np.percentile(v, 95)), 2),
                "min_ms": round(float(np.min(v)), 2),
                # CPU time of this thread: with one cv2 thread, what the call costs on an idle core
                "cpu_median_ms": round(float(np.median(cpu[k])), 2),
            }
            for k, v in times.items()
        }
        sigma = blur_sigma(s.blur, h, w)
        full = cv2.GaussianBlur(frame, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
        fast = fast_blur(frame, sigma)
        out["sizes"][label] = {  # type: ignore[index]
            "stats": stats,
            "naive_over_compose": round(stats["naive"]["median_ms"] / stats["compose"]["median_ms"], 1),
            "blur_psnr_db": round(_psnr(fast, full), 1),
            "blur_mean_abs_diff": round(float(np.abs(fast.astype(int) - full).mean()), 3),
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--threads", default="2", help="cv2 thread counts to try, e.g. 1,2")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    results = [measure(a.runs, int(t)) for t in a.threads.split(",")]
    if a.json:
        print(json.dumps(results, indent=2))
        return
    for r in results:
        print(f"cv2 threads {r['threads']}, {r['runs']} runs (naive every 4th)")
        for label, d in r["sizes"].items():  # type: ignore[attr-defined]
            parts = ", ".join(
                f"{k} {v['median_ms']:.2f} (p95 {v['p95_ms']:.2f}, min {v['min_ms']:.2f}, cpu {v['cpu_median_ms']:.2f})"
                for k, v in d["stats"].items()
            )
            print(f"  {label}: {parts}")
            print(
                f"  {label}: naive/compose {d['naive_over_compose']}x; reduced-resolution blur vs full "
                f"GaussianBlur: PSNR {d['blur_psnr_db']} dB, mean |diff| {d['blur_mean_abs_diff']}"
            )


if __name__ == "__main__":
    main()
