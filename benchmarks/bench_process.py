"""Photos per second of `edgeportrait process` on a folder of 1080p JPEGs, and the side-by-side run.

    python benchmarks/bench_process.py [--photos 50] [--jobs 1,2,3] [--repeats 3] [-c CONFIG] [--trees A,B]
    python benchmarks/bench_process.py --stages [--jobs 1,2,3]
    python benchmarks/bench_process.py --versus-mediapipe [--photos 60] [--repeats 5]

Makes a folder of 1920×1080 JPEGs from the test photos (each a different
crop, so no two are the same).

Default: runs the real command line on it for each ``--jobs`` value,
``--repeats`` times, interleaved. Reported: the rate the command itself logs
(photos written / time from the workers' start to the last photo written: no
interpreter start and imports, but the part of the model load that the first
decodes do not hide, since the model loads while they run), median over the repeats, and the
wall time of the whole command. On a shared machine the wall-clock rate
follows the other load; so it also reports the CPU time one photo costs
(children's user+sys of an N-photo run minus a 1-photo run, over N−1), and
what that allows on this many idle cores.

``--stages``: one ``process`` run per ``--jobs`` value with each stage of a
photo wrapped (the real functions, patched in the child): the CPU time the
worker thread spends in it, its wall time, and the context switches the
worker makes inside it, median per photo. Inference runs on an OpenVINO thread,
so ``infer`` shows only the caller's share (the input preparation and the
hand-off); the OpenVINO thread's CPU is reported apart. A stage that releases
the GIL for one long call switches once or twice; one that returns to Python
between many short calls waits for the GIL each time another worker holds it.

``--versus-mediapipe``: the same photos through MediaPipe 0.10.14's own
runtime (SelfieSegmentation, the general model, the one ours is converted
from) with the compositing done plainly — GaussianBlur of the whole frame at
full size (the same sigma as ours), the mask ramped with the same
threshold/softness, a float32 blend, JPEG at the same quality — against
``edgeportrait process`` with its defaults. Each side is a whole process
(interpreter start, imports, model load, every photo written), the two
alternate, ``--repeats`` times; reported: the median wall time of each and
the ratio of the medians. MediaPipe is not a dependency of edgeportrait: it
runs in its own virtual environment, created on first use (``pip install
mediapipe==0.10.14``) under ``--mediapipe-venv``.
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
from machine import machine  # benchmarks/machine.py (this script's directory is on sys.path)

DATA = Path(__file__).resolve().parent.parent / "tests" / "data"
RATE = re.compile(r"\(([\d.]+) photos/s\)")
MEDIAPIPE = "mediapipe==0.10.14"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
DEFAULT_VENV = CACHE / "edgeportrait" / "bench-mediapipe-0.10.14"

# The plain approach, run by the MediaPipe venv's interpreter (it has no edgeportrait): MediaPipe's own
# runtime for the mask, then I = αF + (1−α)·GaussianBlur(F) at full size in float32. Sigma, ramp and
# JPEG quality are edgeportrait's defaults (portrait.blur 50, threshold 0.5, softness 0.3, quality 92).
PLAIN = r"""
import sys
from pathlib import Path

import cv2
import numpy as np
from mediapipe.python.solutions import selfie_segmentation

BLUR, THRESHOLD, SOFTNESS, QUALITY = 50.0, 0.5, 0.3, 92
src, out = Path(sys.argv[1]), Path(sys.argv[2])
out.mkdir(parents=True, exist_ok=True)
with selfie_segmentation.SelfieSegmentation(model_selection=0) as seg:
    for path in sorted(src.glob("*.jpg")):
        frame = cv2.imread(str(path))
        mask = seg.process(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)).segmentation_mask
        sigma = BLUR / 100 * min(frame.shape[:2]) / 36
        background = cv2.GaussianBlur(frame, (0, 0), sigma)
        alpha = np.clip((mask - (THRESHOLD - SOFTNESS / 2)) / SOFTNESS, 0, 1)[:, :, None]
        image = alpha * frame.astype(np.float32) + (1 - alpha) * background.astype(np.float32)
        cv2.imwrite(str(out / path.name), np.clip(image + 0.5, 0, 255).astype(np.uint8),
                    [cv2.IMWRITE_JPEG_QUALITY, QUALITY])
"""


# Run in the child (``python -c STAGES ARGS…``): `edgeportrait process` with its stages wrapped.
STAGES = r"""
import collections, os, resource, statistics, sys, threading, time
import edgeportrait.imageio as io
from edgeportrait.compose import compositor
from edgeportrait.segment import segmenter

T = collections.defaultdict(list)
TIDS = {}

def wrap(owner, name, key):
    f = getattr(owner, name)
    def timed(*a, **kw):
        TIDS[threading.get_native_id()] = "worker"
        r0, c0, w0 = resource.getrusage(resource.RUSAGE_THREAD), time.thread_time(), time.perf_counter()
        try:
            return f(*a, **kw)
        finally:
            c1, w1, r1 = time.thread_time(), time.perf_counter(), resource.getrusage(resource.RUSAGE_THREAD)
            switches = r1.ru_nvcsw - r0.ru_nvcsw + r1.ru_nivcsw - r0.ru_nivcsw
            T[key].append(((c1 - c0) * 1e3, (w1 - w0) * 1e3, switches))
    setattr(owner, name, timed)

wrap(io, "read_image", "read + decode")
wrap(segmenter.Segmenter, "infer", "infer (caller)")
wrap(compositor.Compositor, "compose", "compose")
wrap(io, "encode_jpeg", "encode")
wrap(io, "atomic_write", "write")
CPU = {}

def sample():  # every thread's CPU time, kept after it ends
    for tid in os.listdir("/proc/self/task"):
        try:
            f = open(f"/proc/self/task/{tid}/stat").read()
        except OSError:
            continue
        fields = f[f.rindex(")") + 2 :].split()
        CPU[int(tid)] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

def sampler():
    while True:
        sample()
        time.sleep(0.01)

threading.Thread(target=sampler, daemon=True).start()

def report():
    sample()
    n = len(T["encode"])
    for key, rows in T.items():
        cpu, wall, sw = (statistics.median(r[i] for r in rows) for i in range(3))
        print(f"    {key:15s} CPU {cpu:6.2f} ms  wall {wall:6.2f} ms  switches {sw:4.1f}")
    main, workers = threading.main_thread().native_id, [t for t in TIDS]
    other = sum(c for t, c in CPU.items() if t != main and t not in workers)
    print(f"    workers' CPU {1e3 * sum(CPU.get(t, 0) for t in workers) / n:.1f} ms/photo; "
          f"other threads (OpenVINO, the model load, OpenCV's pool) {1e3 * other / n:.1f} ms/photo; "
          f"main thread {CPU.get(main, 0):.2f} s")
    sys.stdout.flush()

_exit = os._exit
os._exit = lambda code: (report(), _exit(code))
from edgeportrait.cli import main
sys.argv = ["edgeportrait", *sys.argv[1:]]
code = main()
report()
raise SystemExit(code)
"""


def stages(a: argparse.Namespace) -> None:
    tree = Path(a.trees.split(",")[0]).resolve()
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "in"
        src.mkdir()
        make_photos(src, a.photos)
        print(f"{a.photos} photos 1920x1080 JPEG, per stage, median per photo; {machine()}")
        for j in (int(j) for j in a.jobs.split(",")):
            cmd = [sys.executable, "-c", STAGES, "process", str(src), "-o", str(Path(tmp) / f"out-{j}")]
            cmd += ["--jobs", str(j), "--no-progress"] + (["-c", a.config] if a.config else [])
            p = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp, env=dict(os.environ, PYTHONPATH=str(tree)))
            if p.returncode != 0:
                sys.exit(f"process failed ({p.returncode}): {p.stderr.strip()[-2000:]}")
            m = RATE.search(p.stderr)
            print(f"  --jobs {j}: {m.group(1) if m else '?'} photos/s")
            print(p.stdout.rstrip())


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


def mediapipe_python(venv: Path) -> Path:
    """The interpreter of a venv with mediapipe 0.10.14, created on first use."""
    py = venv / "bin" / "python"
    check = [str(py), "-c", "import mediapipe; assert mediapipe.__version__ == '0.10.14'"]
    if py.exists() and subprocess.run(check, capture_output=True).returncode == 0:
        return py
    print(f"creating {venv} with {MEDIAPIPE} (once)…", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", MEDIAPIPE], check=True)
    subprocess.run(check, check=True)
    return py


def _timed_run(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """Wall time and CPU time (user + sys of the child and its threads) of one whole run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode != 0:
        sys.exit(f"{cmd[0]} … failed ({p.returncode}): {p.stderr.strip()[-2000:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def versus_mediapipe(a: argparse.Namespace) -> None:
    py = mediapipe_python(Path(a.mediapipe_venv))
    load_before = _loadavg()
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "in"
        src.mkdir()
        make_photos(src, a.photos)
        script = Path(tmp) / "plain.py"
        script.write_text(PLAIN)
        mp_env = dict(os.environ, GLOG_minloglevel="2", TF_CPP_MIN_LOG_LEVEL="2")
        ours: list[tuple[float, float]] = []
        theirs: list[tuple[float, float]] = []
        for r in range(a.repeats):
            # alternating, and which goes first alternates too: both see the same load on average
            order = ("ours", "theirs") if r % 2 == 0 else ("theirs", "ours")
            for side in order:
                out = Path(tmp) / f"out-{side}-{r}"
                if side == "ours":
                    cmd = [sys.executable, "-m", "edgeportrait", "process", str(src), "-o", str(out), "--no-progress"]
                    cmd += ["-c", a.config] if a.config else []
                    ours.append(_timed_run(cmd))
                else:
                    theirs.append(_timed_run([str(py), str(script), str(src), str(out)], mp_env))
        mo, mt = statistics.median(w for w, _ in ours), statistics.median(w for w, _ in theirs)
        co, ct = statistics.median(c for _, c in ours), statistics.median(c for _, c in theirs)
        print(f"{a.photos} photos 1920x1080 JPEG, whole process each, {a.repeats} alternating runs, median")
        print(f"  machine: {machine()}; load average before/after: {load_before} / {_loadavg()}")
        for name, runs, wall, cpu in (
            ("edgeportrait process:                 ", ours, mo, co),
            ("MediaPipe 0.10.14 + plain compositing:", theirs, mt, ct),
        ):
            print(f"  {name} {wall:.2f} s (runs: {', '.join(f'{w:.2f}' for w, _ in runs)}); CPU time {cpu:.2f} s")
        print(f"  ratio of medians: {mt / mo:.2f}x wall, {ct / co:.2f}x CPU time")
        # On a shared machine the longer side soaks up more of the others' load: the CPU-time ratio is the
        # steadier figure; on an idle machine the wall ratio is the one that matters to a user.


def _loadavg() -> str:
    try:
        return " ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def compose_path(tree: Path, cwd: Path) -> str:
    """Which path composes when edgeportrait is imported from ``tree`` (``native.status()``, or why not)."""
    code = (
        "import importlib.util as u\n"
        "if u.find_spec('edgeportrait.compose.native') is None: print('OpenCV path (no C library in this tree)')\n"
        "else: from edgeportrait.compose import native; print(native.status())"
    )
    env = dict(os.environ, PYTHONPATH=str(tree))
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd, env=env)
    return p.stdout.strip() or f"unknown ({p.stderr.strip()[-300:]})"


def jobs_sweep(a: argparse.Namespace) -> None:
    jobs = [int(j) for j in a.jobs.split(",")]
    trees = [Path(t).resolve() for t in a.trees.split(",")]
    keys = [(j, t) for j in jobs for t in trees]
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "in"
        src.mkdir()
        make_photos(src, a.photos)
        one = Path(tmp) / "one"
        one.mkdir()
        (one / "photo000.jpg").write_bytes((src / "photo000.jpg").read_bytes())
        for tree in trees:  # a C library older than its source is not used: say which path each tree runs
            print(f"  {tree}: compositor: {compose_path(tree, Path(tmp))}")
        rates: dict[tuple[int, Path], list[float]] = {k: [] for k in keys}
        walls: dict[tuple[int, Path], list[float]] = {k: [] for k in keys}
        cpus: dict[tuple[int, Path], list[float]] = {k: [] for k in keys}
        for r in range(a.repeats):
            for k, (j, tree) in enumerate(keys):
                # each tree's copy of edgeportrait, run from outside every tree (``-m`` puts the cwd
                # first on sys.path); the tree that goes first changes from repeat to repeat
                tree = trees[(trees.index(tree) + r) % len(trees)]
                env = dict(os.environ, PYTHONPATH=str(tree))
                cpu = {}
                for folder in (one, src):
                    out = Path(tmp) / f"out-{folder.name}-{k}-{r}"
                    cmd = [sys.executable, "-m", "edgeportrait", "process", str(folder), "-o", str(out)]
                    cmd += ["--jobs", str(j), "--no-progress"] + (["-c", a.config] if a.config else [])
                    before = resource.getrusage(resource.RUSAGE_CHILDREN)
                    t0 = time.perf_counter()
                    p = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp)
                    wall = time.perf_counter() - t0
                    after = resource.getrusage(resource.RUSAGE_CHILDREN)
                    cpu[folder] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
                    if p.returncode != 0:
                        sys.exit(f"process failed ({p.returncode}): {p.stderr.strip()}")
                m = RATE.search(p.stderr)
                assert m, p.stderr
                rates[j, tree].append(float(m.group(1)))
                walls[j, tree].append(wall)
                cpus[j, tree].append((cpu[src] - cpu[one]) / max(1, a.photos - 1))
        cores = os.cpu_count() or 1
        print(f"{a.photos} photos 1920x1080 JPEG, {a.repeats} repeats, median; {machine()}")
        for j, tree in keys:
            cpu_ms = statistics.median(cpus[j, tree]) * 1000
            print(
                f"  --jobs {j}{f' {tree}' if len(trees) > 1 else ''}: "
                + f"{statistics.median(rates[j, tree]):.1f} photos/s (runs: "
                + ", ".join(f"{x:.1f}" for x in rates[j, tree])
                + f"); whole command {statistics.median(walls[j, tree]):.2f} s; "
                + f"CPU {cpu_ms:.1f} ms/photo = at most {cores * 1000 / cpu_ms:.1f} photos/s on {cores} idle cores"
            )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", type=int, default=None, help="photos in the folder (default 50; 60 side by side)")
    ap.add_argument("--jobs", default="1,2,3")
    ap.add_argument("--repeats", type=int, default=None, help="runs of each (default 3; 5 side by side)")
    ap.add_argument("-c", "--config")
    ap.add_argument(
        "--trees", default=str(Path(__file__).resolve().parent.parent),
        help="comma-separated source trees to compare (e.g. a checkout of main and this one), alternated run by run",
    )
    ap.add_argument("--stages", action="store_true", help="CPU, wall and context switches of each stage")
    ap.add_argument("--versus-mediapipe", action="store_true", help="the side-by-side run against MediaPipe")
    ap.add_argument("--mediapipe-venv", default=str(DEFAULT_VENV), help=f"venv for {MEDIAPIPE} (made if missing)")
    a = ap.parse_args()
    if a.versus_mediapipe:
        a.photos = a.photos or 60
        a.repeats = a.repeats or 5
        versus_mediapipe(a)
    elif a.stages:
        a.photos = a.photos or 50
        stages(a)
    else:
        a.photos = a.photos or 50
        a.repeats = a.repeats or 3
        jobs_sweep(a)


if __name__ == "__main__":
    main()
