"""The compositor alone: fast vs naive at 720p and 1080p, and where the time goes.

    python benchmarks/bench_compose.py [--runs N] [--threads 1,2] [--baseline main] [--default-malloc] [--json]

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

Finer steps, timed the same way: ``downscale`` (the frame to the working
resolution), ``matte`` (guided filter etc. at working resolution), ``upsample``
(the low-resolution background to full size: the one full-frame write besides
the copy) — parts of prepare/background, so they do not add up to compose.
``faults`` is the page faults per compose call.

The allocator is tuned as ``edgeportrait run/process/bench`` tune it
(:mod:`edgeportrait.allocator`); ``--default-malloc`` leaves glibc's defaults. Under
those, a loop of 1080p composes alone faulted in ~6 MB of fresh pages per call
(~1600 faults; 16.8 vs 13.4 ms median on a loaded 2-core machine); here the naive
compositor's large blocks raise glibc's dynamic threshold, so it shows less.
``--baseline REF`` loads ``edgeportrait/compose`` as it is at the git revision
REF into a scratch package and times its compose in the same loop, alternating,
and reports the largest per-channel difference of the outputs.

Where a 1080p compose went (Nov 2026, 2-core AVX2 EPYC shared with another
job, one cv2 thread, medians): compose 10.2 ms = prepare 3.3 (downscale 1.1,
matte 1.8) + background 2.7 (upsample 1.6) + render 4.4. Render on the
grace_hopper photo with the model's mask: plan 0.5, interior copy 0.4, band
3.6 (pack coefficients 0.3, upsample them 0.7, pack F and B 0.8, luminance
0.1, α 0.6, blendLinear 1.4, unpack 0.4) for ~296k blended pixels (14 % of
the frame; 7 % have 0 < α < 1). Tried against this, output-exact, alternating,
and none paid 0.3 ms: α from contiguous planes with cv2 arithmetic (−0.25 ms,
and off by 1 in places at 720p); blending each block in
place on views of the frame and output (no F/B packing or unpacking: slower,
136 more cv2 calls); fixed 32-px tiles gathered and scattered with one numpy
fancy index each (no Python loop, but +1.2 ms: tiles blend 341k pixels and
resize 533k coefficients against 296k/370k); blendLinear on the 1-channel view
with tripled weights; strip/gap 16–64/32–256 px (32/32 is fastest); one
4-channel boxFilter for the guided filter (+0.8 ms) or cv2 instead of numpy
arithmetic there; INTER_LINEAR(_EXACT) for the 2× downscale (same output,
same time); a looser SETTLED (band 11.0 → 10.2 % of cells at 1/255); cv2 threads
1 vs 2 (9.1 vs 9.1 ms; with a JPEG decoder on the other core 17.8 vs 18.6).
Upsampling the background only outside the interior needs a scratch and a copy
per run (cv2.resize of a crop clamps its first and last half-factor rows), more
traffic than it saves. What must touch full resolution — the downscale (reads
6 MB), the upsample (writes 6 MB), the interior copy and the band (~8 OpenCV
passes) — is ~5.5 ms on one core; with the matte and the low-resolution blur
~8 ms is the floor of this design in OpenCV/numpy calls. 4 ms needs one fused
pass (B upsampled, F copied, the band blended in one traversal, ~19 MB of
traffic, ~2 ms): compiled code.

Since then (Nov 2026, same machine) the interior copy and the band are one C
function (``edgeportrait/compose/_band.c``, see
``bench_compose_alternatives.py``): with ``--baseline 8805fdc`` (the OpenCV
path) and 100 runs, 1080p 7.81 → 6.04 ms, 720p 4.83 → 3.76 ms (a quieter
moment than the figures above), outputs within one level. Of the 6.04 ms:
prepare 2.48 (downscale 0.59, matte 1.53), background 1.77 (upsample 0.88),
render 1.78. A C pass that also upsampled B was slower than cv2.resize (3.90 vs
2.59 ms for the whole full-resolution pass).

Then the guided filter with the cells' kinds and the masked blur moved into the
C library too, its passes share a frame's rows between OpenCV's number of
threads, and the band pass interpolates coefficients only under the band. With
``--baseline 8805fdc --threads 2,1``, 150 runs (Nov 2026, same machine, this
script restarting itself with one OpenBLAS thread): 1080p 7.82 → 4.09 ms on two
threads and 9.27 → 5.44 ms on one, 720p 5.47 → 3.18 and 6.01 → 3.65 ms, outputs
within one level. Of the one-thread 5.44 ms: prepare 2.11 (downscale 0.94,
matte 0.88), background 2.21 (upsample 1.52), render 1.32. The machine's speed
wanders by half over minutes (the naive compositor took 78 to 139 ms in these
runs), so compare within a run. Tried again, bit-exact with cv2.resize this
time (its fixed point and edge rules): B upsampled inside the band pass, 3.30
vs 3.45 ms on one thread and 2.60 vs 2.41 on two; and in two stages (B's rows
interpolated across once, threads sharing them, then mixed down only outside
the interior in the band pass; outputs byte-identical), a whole 1080p compose
6.17 vs 6.48 ms on one thread and 4.89 vs 4.84 on two — neither kept. A C 2× area
downscale, exact with OpenCV's, was 1.55 ms against its 0.87 (not vectorised
by the compiler).

Then the last full-resolution OpenCV steps became C too, byte for byte
OpenCV's: the downscale (each output row from its 2^levels frame rows, every
halving's sums in 16-bit lanes: 1080p to 1/4 0.60 vs 0.84 ms on one thread) and
the background's upsample (OpenCV's 32-bit sums fit 16 bits for a whole factor
across: 1/8 to 1080p 0.95 vs 2.02 ms); the masked blur lost its scalar double
sums and two of its three divisions per pixel, symmetric kernels are summed in
pairs, and the band pass scans its cells eight bytes at a time. With
``--baseline 688a42c`` (the previous stop), 150 runs, a slow hour (naive 118
and 166 ms): 1080p 4.97 → 4.05 ms on two threads, 7.33 → 5.65 on one; with
``--baseline 8805fdc``: 10.60 → 4.24 and 12.45 → 5.91 ms (naive 121 and 184).
Of a one-thread 5.65 ms: prepare 2.34 (downscale 0.93, matte 1.08),
background 1.72 (upsample 0.91), render 1.57; the Python and the small OpenCV
calls between the C passes are ~0.85 ms of it. Tried and not kept, none
measurable here: upsampling only outside the person's interior (render copies
the frame over it; 0.67 vs 0.64 ms, the whole compose the same), and the model
alpha's resize and feather in one C call (0.28 ms against OpenCV's 0.24).
``EDGEPORTRAIT_NATIVE=0`` times the OpenCV path.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import json
import math
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

import cv2
import numpy as np
from machine import machine, one_blas_thread  # benchmarks/machine.py (this script's directory is on sys.path)

from edgeportrait import allocator
from edgeportrait.compose import Compositor, blur_sigma, fast_blur, make_background, naive_compose, native, prepare
from edgeportrait.compose.background import blur_factor, cover, upscale
from edgeportrait.compose.blend import render
from edgeportrait.compose.compositor import pad_to_factor
from edgeportrait.compose.matte import as_float_mask, downscale, make_low_matte, px_at, ramp
from edgeportrait.config import PortraitConfig

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"


def _build_flags() -> list[str]:
    """The C compiler flags the wheel's build uses (``FLAGS`` in hatch_build.py, which needs hatchling to import)."""
    tree = ast.parse((ROOT / "hatch_build.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "FLAGS" for t in node.targets):
            return list(ast.literal_eval(node.value))
    raise RuntimeError("hatch_build.py has no FLAGS")


def load_baseline(ref: str, into: Path) -> ModuleType:
    """``edgeportrait/compose`` at git revision ``ref`` as a package of its own (``baseline_compose``).

    Its C library, if that revision has one, is compiled from that revision's
    source into the scratch package, as the wheel's build would.
    """
    pkg = into / "baseline_compose"
    pkg.mkdir()
    names = subprocess.run(
        ["git", "-C", str(ROOT), "ls-tree", "--name-only", ref, "edgeportrait/compose/"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    for path in names:
        name = Path(path).name
        if not name.endswith((".py", ".c")):
            continue
        text = subprocess.run(
            ["git", "-C", str(ROOT), "show", f"{ref}:{path}"], check=True, capture_output=True, text=True
        ).stdout
        text = text.replace("from edgeportrait.compose import", "from baseline_compose import")
        (pkg / name).write_text(text.replace("edgeportrait.compose.", "baseline_compose."))
    for src in pkg.glob("*.c"):
        cc = shutil.which("cc") or shutil.which("gcc")
        if cc:
            cmd = [cc, *_build_flags(), "-o", str(src.with_suffix(".so")), str(src), "-lm"]
            subprocess.run(cmd, check=True, capture_output=True)
    sys.path.insert(0, str(into))
    return importlib.import_module("baseline_compose")


SIZES = {"720p": (1280, 720), "1080p": (1920, 1080)}


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * math.log10(255**2 / mse) if mse else float("inf")


def scene(w: int, h: int) -> tuple[np.ndarray, np.ndarray]:
    """The astronaut photo scaled to cover w×h, and its reference mask at the model's 256×256."""
    photo = cv2.imread(str(DATA / "astronaut.png"))
    golden = cv2.imread(str(DATA / "golden/general/astronaut.png"), cv2.IMREAD_UNCHANGED).astype(np.float32) / 65535
    return cover(photo, h, w), cv2.resize(cover(golden, h, w), (256, 256), interpolation=cv2.INTER_AREA)


def measure(runs: int, threads: int, baseline: ModuleType | None = None) -> dict[str, object]:
    cv2.setNumThreads(threads)
    s = PortraitConfig()
    out: dict[str, object] = {"threads": threads, "runs": runs, "sizes": {}}
    for label, (w, h) in SIZES.items():
        frame, mask = scene(w, h)
        comp = Compositor(s, temporal=False)
        work, f = pad_to_factor(frame)
        prep = prepare(work, mask, s, None, f)
        bg = make_background(work, prep, s)
        a_model = ramp(as_float_mask(mask), s.threshold, s.softness)
        short = min(h, w)
        matte_args = (px_at(short, s.feather) / f, round(px_at(short, s.refine_radius) / f), s.refine_eps)
        low_bg = downscale(prep.small, blur_factor(blur_sigma(s.blur, h, w)) // f)
        scratch = bg.copy()
        fns = {
            "compose": lambda frame=frame, mask=mask, comp=comp: comp.compose(frame, mask),
            "prepare": lambda work=work, mask=mask, f=f: prepare(work, mask, s, None, f),
            "downscale": lambda work=work, f=f: downscale(work, f),
            "matte": lambda prep=prep, a_model=a_model, f=f, args=matte_args: make_low_matte(
                prep.small, a_model, f, *args
            ),
            "background": lambda work=work, prep=prep: make_background(work, prep, s),
            "upsample": lambda low_bg=low_bg, w=w, h=h: upscale(low_bg, h, w),
            # into one buffer refilled outside the timing: a fresh 6 MB copy per call would be timed too
            "render": lambda work=work, prep=prep, scratch=scratch: render(work, prep.matte, scratch),
            "naive": lambda frame=frame, mask=mask: naive_compose(frame, mask, s),
        }
        max_diff = None
        if baseline is not None:
            old = baseline.Compositor(s, temporal=False)
            fns["baseline"] = lambda frame=frame, mask=mask, old=old: old.compose(frame, mask)
            max_diff = int(np.abs(comp.compose(frame, mask).astype(np.int16) - old.compose(frame, mask)).max())
        times: dict[str, list[float]] = {k: [] for k in fns}
        cpu: dict[str, list[float]] = {k: [] for k in fns}
        for fn in fns.values():
            fn()
        faults = 0
        order = list(fns.items())
        for i in range(runs):
            # a different stage first each round: none always runs on the cache another left
            for k, fn in order[i % len(order) :] + order[: i % len(order)]:
                if k == "naive" and i % 4:  # the slow one a quarter as often: same conditions, less waiting
                    continue
                if k == "render":
                    np.copyto(scratch, bg)
                f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt if k == "compose" else 0
                c0 = time.thread_time()
                t0 = time.perf_counter()
                fn()
                times[k].append((time.perf_counter() - t0) * 1000)
                cpu[k].append((time.thread_time() - c0) * 1000)
                if k == "compose":
                    faults += resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0
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
            "faults_per_compose": round(faults / runs, 1),
            "baseline_max_abs_diff": max_diff,
            "naive_over_compose": round(stats["naive"]["median_ms"] / stats["compose"]["median_ms"], 1),
            "blur_psnr_db": round(_psnr(fast, full), 1),
            "blur_mean_abs_diff": round(float(np.abs(fast.astype(int) - full).mean()), 3),
        }
    return out


def main() -> None:
    one_blas_thread()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--threads", default="2", help="cv2 thread counts to try, e.g. 1,2")
    ap.add_argument("--baseline", metavar="REF", help="also time the compositor at this git revision, e.g. main")
    ap.add_argument("--default-malloc", action="store_true", help="leave glibc's malloc thresholds as they are")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    if not a.default_malloc:
        allocator.tune()
    with tempfile.TemporaryDirectory() as tmp:
        baseline = load_baseline(a.baseline, Path(tmp)) if a.baseline else None
        paths = {"compositor": native.status()}
        if baseline is not None and hasattr(baseline, "native"):
            paths[f"baseline {a.baseline}"] = baseline.native.status()
        results = [measure(a.runs, int(t), baseline) for t in a.threads.split(",")]
    if a.json:
        print(json.dumps({"paths": paths, "results": results}, indent=2))
        return
    print(machine())
    for who, path in paths.items():  # a C library older than its source is not used: say which path ran
        print(f"{who}: {path}")
    for r in results:
        print(f"cv2 threads {r['threads']}, {r['runs']} runs (naive every 4th)")
        for label, d in r["sizes"].items():  # type: ignore[attr-defined]
            parts = ", ".join(
                f"{k} {v['median_ms']:.2f} (p95 {v['p95_ms']:.2f}, min {v['min_ms']:.2f}, cpu {v['cpu_median_ms']:.2f})"
                for k, v in d["stats"].items()
            )
            print(f"  {label}: {parts}")
            print(f"  {label}: page faults per compose {d['faults_per_compose']}")
            if d["baseline_max_abs_diff"] is not None:
                base, comp = d["stats"]["baseline"]["median_ms"], d["stats"]["compose"]["median_ms"]
                print(
                    f"  {label}: baseline {a.baseline} {base:.2f} ms vs compose {comp:.2f} ms "
                    f"({base / comp:.2f}x), outputs differ by at most {d['baseline_max_abs_diff']} per channel"
                )
            print(
                f"  {label}: naive/compose {d['naive_over_compose']}x; reduced-resolution blur vs full "
                f"GaussianBlur: PSNR {d['blur_psnr_db']} dB, mean |diff| {d['blur_mean_abs_diff']}"
            )


if __name__ == "__main__":
    main()
