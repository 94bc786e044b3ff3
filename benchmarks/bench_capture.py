"""What the capture layer costs per frame at the stream size, and what rate it sustains.

Not part of the test suite. Run:  python benchmarks/bench_capture.py [--width 1920 --height 1080]

Prints medians over repeated runs (the machine is shared and noisy, so absolute
numbers vary; the ratios within one run are what to read):

* orient(): rotate/flip per frame — the price of ``camera.rotate``/``camera.flip``;
* fit(): a 12 MP photo made stream-sized — what an uncached folder picture costs;
* folder source read(): cached pictures (the steady state of a small folder), unpaced;
* Camera end to end: frames per second delivered to a listener from a folder source
  asked for ``--fps``, and the supervisor's per-frame overhead;
* faults (``--faults``): how long after a read hangs the camera reports ``stalled``
  (``camera.stall_timeout_s`` = 1 s), and how long after the source is back frames flow.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import tempfile
import threading
import time
from pathlib import Path

import cv2
import numpy as np

from edgeportrait.capture import Camera, CameraError, fit, orient
from edgeportrait.capture.base import Pacer, SourceBase
from edgeportrait.capture.folder import ImageFolderSource
from edgeportrait.config.camera import CameraConfig


def median_ms(fn, repeat: int = 30) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


class _Hangable(SourceBase):
    """Frames at 100 fps; a read hangs (ignoring interrupt) while ``hang`` is set; opens fail while ``gone``."""

    hang = threading.Event()
    gone = threading.Event()

    def _open(self) -> None:
        if self.gone.is_set():
            raise CameraError("bench: gone")

    def _grab(self) -> np.ndarray:
        if self.hang.is_set():
            while self.hang.is_set():
                time.sleep(0.005)
            raise CameraError("bench: hung read returned")
        time.sleep(0.01)
        return np.zeros((64, 80, 3), np.uint8)

    def _close(self) -> None:
        pass


def fault_timings(trials: int) -> dict[str, float]:
    cfg = CameraConfig(width=80, height=64, fps=100, stall_timeout_s=1.0)
    detect, recover = [], []
    for _ in range(trials):
        _Hangable.hang.clear()
        _Hangable.gone.clear()
        cam = Camera(cfg, lambda c: _Hangable(c, "bench"), backoff_initial_s=0.1)
        cam.start()
        cam.wait_frame(None, 10)
        _Hangable.gone.set()  # while the read hangs the device cannot be reopened
        t0 = time.monotonic()
        _Hangable.hang.set()
        while cam.state == "ok":
            time.sleep(0.002)
        detect.append(time.monotonic() - t0)
        _Hangable.hang.clear()
        _Hangable.gone.clear()
        t1 = time.monotonic()
        stale = cam.latest()
        cam.wait_frame(stale, 30)
        recover.append(time.monotonic() - t1)
        cam.stop()
    return {
        "stall_detect_s_p50": statistics.median(detect),
        "stall_detect_s_max": max(detect),
        "recover_s_p50": statistics.median(recover),
        "recover_s_max": max(recover),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--width", type=int, default=1920)
    ap.add_argument("--height", type=int, default=1080)
    ap.add_argument("--fps", type=float, default=30)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--faults", type=int, default=0, metavar="N", help="also time N stall/recover cycles")
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)  # the fault cycles would log every stall
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

    if args.faults:
        out.update(fault_timings(args.faults))

    if args.json:
        print(json.dumps({k: round(v, 3) for k, v in out.items()}))
        return
    print(f"capture layer at {w}x{h} (medians, ms unless said)")
    for k, v in out.items():
        print(f"  {k:34s} {v:10.3f}")


if __name__ == "__main__":
    main()
