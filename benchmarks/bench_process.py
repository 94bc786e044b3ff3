"""Photos per second of `edgeportrait process` on a folder of 1080p JPEGs.

    python benchmarks/bench_process.py [--photos 50] [--jobs 1,2,3] [--repeats 3] [-c CONFIG]

Makes a folder of 1920×1080 JPEGs from the test photos (each a different
crop, so no two are the same), then runs the real command line on it for each
``--jobs`` value, ``--repeats`` times, interleaved. Reported: the rate the
command itself logs (photos written / time from the first photo started to the
last written, i.e. without interpreter start and model load), median over the
repeats, and the wall time of the whole command. On a shared machine the
wall-clock rate follows the other load; so it also reports the CPU time one
photo costs (children's user+sys of an N-photo run minus a 1-photo run, over
N−1), and what that allows on this many idle cores.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

DATA = Path(__file__).resolve().parent.parent / "tests" / "data"
RATE = re.compile(r"\(([\d.]+) photos/s\)")


def make_photos(folder: Path, n: int) -> None:
    sources = [cv2.imread(str(DATA / name)) for name in ("astronaut.png", "grace_hopper.jpg", "camera.png")]
    rng = np.random.default_rng(0)
    for i in range(n):
        img = sources[i % len(sources)]
        h, w = img.shape[:2]
        zoom = 1.0 + 0.3 * rng.random()
        big = cv2.resize(img, None, fx=zoom * 1920 / w, fy=zoom * 1920 / w, interpolation=cv2.INTER_CUBIC)
        y0 = int(rng.integers(0, max(1, big.shape[0] - 1080)))
        x0 = int(rng.integers(0, max(1, big.shape[1] - 1920)))
        frame = big[y0 : y0 + 1080, x0 : x0 + 1920]
        frame = cv2.copyMakeBorder(frame, 0, 1080 - frame.shape[0], 0, 1920 - frame.shape[1], cv2.BORDER_REFLECT)
        cv2.imwrite(str(folder / f"photo{i:03d}.jpg"), frame, [cv2.IMWRITE_JPEG_QUALITY, 92])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", type=int, default=50)
    ap.add_argument("--jobs", default="1,2,3")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("-c", "--config")
    a = ap.parse_args()
    jobs = [int(j) for j in a.jobs.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "in"
        src.mkdir()
        make_photos(src, a.photos)
        one = Path(tmp) / "one"
        one.mkdir()
        (one / "photo000.jpg").write_bytes((src / "photo000.jpg").read_bytes())
        rates: dict[int, list[float]] = {j: [] for j in jobs}
        walls: dict[int, list[float]] = {j: [] for j in jobs}
        cpus: dict[int, list[float]] = {j: [] for j in jobs}
        for r in range(a.repeats):
            for j in jobs:
                cpu = {}
                for folder in (one, src):
                    out = Path(tmp) / f"out-{folder.name}-{j}-{r}"
                    cmd = [sys.executable, "-m", "edgeportrait", "process", str(folder), "-o", str(out)]
                    cmd += ["--jobs", str(j), "--no-progress"] + (["-c", a.config] if a.config else [])
                    before = resource.getrusage(resource.RUSAGE_CHILDREN)
                    t0 = time.perf_counter()
                    p = subprocess.run(cmd, capture_output=True, text=True)
                    wall = time.perf_counter() - t0
                    after = resource.getrusage(resource.RUSAGE_CHILDREN)
                    cpu[folder] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
                    if p.returncode != 0:
                        sys.exit(f"process failed ({p.returncode}): {p.stderr.strip()}")
                m = RATE.search(p.stderr)
                assert m, p.stderr
                rates[j].append(float(m.group(1)))
                walls[j].append(wall)
                cpus[j].append((cpu[src] - cpu[one]) / max(1, a.photos - 1))
        cores = os.cpu_count() or 1
        print(f"{a.photos} photos 1920x1080 JPEG, {a.repeats} repeats, median")
        for j in jobs:
            cpu_ms = statistics.median(cpus[j]) * 1000
            print(
                f"  --jobs {j}: {statistics.median(rates[j]):.1f} photos/s (runs: "
                + ", ".join(f"{x:.1f}" for x in rates[j])
                + f"); whole command {statistics.median(walls[j]):.2f} s; "
                + f"CPU {cpu_ms:.1f} ms/photo = at most {cores * 1000 / cpu_ms:.1f} photos/s on {cores} idle cores"
            )


if __name__ == "__main__":
    main()
