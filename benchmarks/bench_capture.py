"""What the capture layer costs per frame at the stream size, and what rate it sustains.

Not part of the test suite. Run:  python benchmarks/bench_capture.py [--width 1920 --height 1080]

Prints medians over repeated runs (the machine is shared and noisy, so absolute
numbers vary; the ratios within one run are what to read):

* orient(): rotate/flip per frame — the price of ``camera.rotate``/``camera.flip``;
* fit(): a 12 MP photo made stream-sized — what an uncached folder picture costs;
* folder source read(): cached pictures (the steady state of a small folder), unpaced;
* Camera end to end: frames per second delivered to a listener from a folder source
  asked for ``--fps``, and the supervisor's per-frame overhead.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from edgeportrait.capture import Camera, fit, orient
from edgeportrait.capture.base import Pacer
from edgeportrait.capture.folder import ImageFolderSource
from edgeportrait.config.camera import CameraConfig


def median_ms(fn, repeat: int = 30) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--width", type=int, default=1920)
    ap.add_argument("--height", type=int, default=1080)
    ap.add_argument("--fps", type=float, default=30)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    w, h = args.width, args.height
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    photo = rng.integers(0, 256, (3000, 4000, 3), dtype=np.uint8)

    out: dict[str, float] = {}
    out["copy_ms"] = median_ms(lambda: frame.copy())
    out["orient_none_ms"] = median_ms(lambda: orient(frame, 0, "none"))
    out["orient_flip_h_ms"] = median_ms(lambda: orient(frame, 0, "horizontal"))
    out["orient_rot180_ms"] = median_ms(lambda: orient(frame, 180, "none"))
    out["orient_rot90_ms"] = median_ms(lambda: orient(frame, 90, "none"))
    out["fit_12mp_contain_ms"] = median_ms(lambda: fit(photo, w, h, "contain"), repeat=10)
    out["fit_12mp_cover_ms"] = median_ms(lambda: fit(photo, w, h, "cover"), repeat=10)

    with tempfile.TemporaryDirectory() as d:
        for i in range(4):
            cv2.imwrite(str(Path(d) / f"{i}.jpg"), rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        cfg = CameraConfig(source=d, width=w, height=h, fps=240)
        src = ImageFolderSource(cfg, d)
        src._pacer = Pacer(1e9)  # measure the read, not the frame-rate pacing
        src.open()
        src.read()  # warm the cache
        out["folder_read_cached_ms"] = median_ms(src.read, repeat=60)
        src.close()

        cfg = CameraConfig(source=d, width=w, height=h, fps=args.fps)
        cam = Camera(cfg)
        stamps: list[float] = []
        cam.add_listener(lambda f: stamps.append(f.ts))
        cpu0 = time.process_time()
        cam.start()
        time.sleep(args.seconds)
        cam.stop()
        cpu = time.process_time() - cpu0
        gaps = np.diff(stamps[1:]) if len(stamps) > 2 else np.array([0.0])
        out["camera_fps_asked"] = args.fps
        out["camera_fps_delivered"] = round((len(stamps) - 1) / (stamps[-1] - stamps[0]), 2) if len(stamps) > 1 else 0
        out["camera_gap_ms_p50"] = float(np.median(gaps) * 1000)
        out["camera_gap_ms_max"] = float(gaps.max() * 1000)
        out["camera_cpu_percent_of_one_core"] = round(100 * cpu / args.seconds, 1)

    if args.json:
        print(json.dumps({k: round(v, 3) for k, v in out.items()}))
        return
    print(f"capture layer at {w}x{h} (medians, ms unless said)")
    for k, v in out.items():
        print(f"  {k:34s} {v:10.3f}")


if __name__ == "__main__":
    main()
