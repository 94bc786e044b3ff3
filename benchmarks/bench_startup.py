"""Start-up of `edgeportrait process` on one 1080p photo: whole process, imports, and a timeline.

    python benchmarks/bench_startup.py [--repeats 9] [-c CONFIG] [--photo IMAGE] [--runs-only]

Makes a 1920×1080 JPEG from ``tests/data/grace_hopper.jpg`` (or ``--photo``)
and runs three kinds of whole process on it, alternating, ``--repeats`` times
each (on a shared machine the three see the same load on average):

* ``wall``: ``python -m edgeportrait process PHOTO -o OUT --no-progress``,
  from the parent's spawn to the child's exit (what a script calling it waits);
* ``importtime``: the same with ``-X importtime``; reported is each top-level
  package's share (the sum of its modules' own times). Two threads import at
  once (the model-load thread imports OpenVINO while the main thread reads the
  config), so the shares add up to more than the wall time they cover;
* ``timeline``: the same command run under a small wrapper that records, on
  each thread, when the interesting imports and calls start and end
  (config, OpenVINO's Core / read / compile from the cache, decode, infer,
  compose, encode, write) and when ``os._exit`` is called; the parent adds the
  interpreter's start (spawn → wrapper) and the exit (``os._exit`` → reaped).

Reported: medians of each figure. The compiled-model cache is warmed by one
run first (``model.cache_dir``, on by default), as it is for every run but a
device's very first.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from machine import machine  # benchmarks/machine.py (this script's directory is on sys.path)

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"
IMPORT_LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \| (\s*)(\S+)")

# Run as `python -c WRAPPER LOG -m edgeportrait …`: records a timeline into LOG (JSON lines) and then runs
# the command as `python -m edgeportrait` would. Functions are wrapped when their module has been imported
# (a meta-path hook), so the wrapper imports nothing of the program ahead of time.
WRAPPER = r"""
import functools, importlib.abc, json, os, sys, threading, time
T0 = time.time()
_log_path = sys.argv[1]
del sys.argv[1]
events = []

def note(name, start, end):
    events.append((threading.current_thread().name, name, start - T0, end - T0))

def timed(name, fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        start = time.time()
        try:
            return fn(*args, **kwargs)
        finally:
            note(name, start, time.time())
    return wrapper

def patch(obj, attr, name):
    setattr(obj, attr, timed(name, getattr(obj, attr)))

PATCHES = {
    "edgeportrait.config": lambda m: patch(m, "load_config", "config: load_config"),
    "edgeportrait.imageio": lambda m: [
        patch(m, "read_image", "read + decode photo"),
        patch(m, "encode_jpeg", "encode JPEG"),
        patch(m, "atomic_write", "write file"),
        patch(m, "fsync_dir", "fsync dir"),
    ],
    "edgeportrait.segment.adapter": lambda m: [
        patch(m.DeviceAdapter, "__init__", "model: adapter total"),
        patch(m.DeviceAdapter, "_read_model", "model: read_model"),
        patch(m, "with_preprocessing", "model: add preprocessing"),
        patch(m.DeviceAdapter, "_compile", "model: compile (cache)"),
    ],
    "edgeportrait.segment.segmenter": lambda m: [
        patch(m.Segmenter, "__init__", "model: Segmenter total"),
        patch(m.Segmenter, "infer", "infer"),
    ],
    "edgeportrait.compose.compositor": lambda m: patch(m.Compositor, "compose", "compose"),
}
IMPORTS = {"pydantic", "yaml", "numpy", "cv2", "openvino", "edgeportrait.config", "edgeportrait.segment",
           "edgeportrait.compose", "edgeportrait.imageio", "edgeportrait.process"}

class Hook(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name not in PATCHES and name not in IMPORTS:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                break
        else:
            return None
        loader = spec.loader
        run = loader.exec_module

        def exec_module(module):
            start = time.time()
            run(module)
            if name in IMPORTS:
                note("import " + name, start, time.time())
            if name in PATCHES:
                PATCHES[name](module)
        loader.exec_module = exec_module
        return spec

sys.meta_path.insert(0, Hook())
_exit = os._exit

def exit_now(code):
    note("os._exit", time.time(), time.time())
    with open(_log_path, "w") as f:
        json.dump({"t0": T0, "events": events}, f)
    _exit(code)
os._exit = exit_now
import runpy
sys.argv = sys.argv[2:]  # drop "-m"
sys.argv[0] = sys.argv[0]
runpy.run_module("edgeportrait", run_name="__main__", alter_sys=True)
"""


def make_photo(source: Path, out: Path) -> None:
    import cv2

    img = cv2.imread(str(source))
    if img is None:
        sys.exit(f"{source}: cannot read")
    cv2.imwrite(str(out), cv2.resize(img, (1920, 1080), interpolation=cv2.INTER_AREA), [cv2.IMWRITE_JPEG_QUALITY, 92])


def run(cmd: list[str], env: dict[str, str], cwd: str) -> tuple[float, float, float, subprocess.CompletedProcess[str]]:
    """(spawn time as time.time(), wall seconds, CPU seconds of all its threads, the result) of one process.

    ``cwd`` must hold no ``edgeportrait``: ``-m`` and ``-c`` put the working directory ahead of PYTHONPATH.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    spawned = time.time()
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode != 0:
        sys.exit(f"failed ({p.returncode}): {' '.join(cmd)}\n{p.stderr[-3000:]}")
    return spawned, wall, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime, p


def import_shares(stderr: str) -> dict[str, float]:
    """Seconds of each top-level package's imports (sum of its modules' own times)."""
    shares: dict[str, float] = defaultdict(float)
    for line in stderr.splitlines():
        m = IMPORT_LINE.match(line)
        if m:
            shares[m.group(4).split(".")[0]] += max(int(m.group(1)), 0) / 1e6
    return shares


class Figures:
    """What the runs of one source tree measured."""

    def __init__(self) -> None:
        self.walls: list[float] = []
        self.cpus: list[float] = []
        self.shares: dict[str, list[float]] = defaultdict(list)
        self.starts: dict[str, list[float]] = defaultdict(list)
        self.ends: dict[str, list[float]] = defaultdict(list)
        self.durations: dict[str, list[float]] = defaultdict(list)

    def add_timeline(self, spawned: float, wall: float, data: dict[str, object]) -> None:
        offset = float(data["t0"]) - spawned  # type: ignore[arg-type]
        first = "interpreter start (spawn → first line)"
        self.starts[first].append(0.0)
        self.ends[first].append(offset)
        self.durations[first].append(offset)
        seen: set[str] = set()
        events: list[tuple[str, str, float, float]] = data["events"]  # type: ignore[assignment]
        for thread, name, start, end in events:
            key = f"{name} [{'main' if thread == 'MainThread' else thread.rsplit('_', 1)[0]}]"
            if key in seen:  # several calls (write file…): the first
                continue
            seen.add(key)
            self.starts[key].append(offset + start)
            self.ends[key].append(offset + end)
            self.durations[key].append(end - start)
        exit_at = next(offset + s for _, n, s, _ in events if n == "os._exit")
        last = "exit (os._exit → reaped)"
        self.starts[last].append(exit_at)
        self.ends[last].append(wall)
        self.durations[last].append(wall - exit_at)
        self.durations["whole (timeline run)"].append(wall)

    def report(self, runs_only: bool) -> None:
        med = statistics.median
        print(f"  whole process: {med(self.walls):.3f} s (runs: {', '.join(f'{w:.2f}' for w in sorted(self.walls))})")
        print(f"  its CPU time (user + sys, all threads): {med(self.cpus):.3f} s")
        if runs_only:
            return
        print("  imports (-X importtime, sum of own times per top-level package; two threads overlap):")
        top = sorted(self.shares.items(), key=lambda kv: -med(kv[1]))
        for pkg, vals in top[:14]:
            print(f"    {pkg:<22} {med(vals) * 1000:7.1f} ms")
        n = max(len(v) for v in self.shares.values())
        total = med([sum(v[i] for v in self.shares.values() if i < len(v)) for i in range(n)])
        print(f"    {'all':<22} {total * 1000:7.1f} ms")
        print("  timeline (ms from spawn; median start … end, duration):")
        for key in sorted(self.starts, key=lambda k: med(self.starts[k])):
            span = f"{med(self.starts[key]) * 1000:7.1f} … {med(self.ends[key]) * 1000:7.1f}"
            print(f"    {span}  {med(self.durations[key]) * 1000:7.1f}  {key}")
        print(f"    whole (timeline run): {med(self.durations['whole (timeline run)']) * 1000:.1f} ms")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("-c", "--config")
    ap.add_argument("--photo", default=str(DATA / "grace_hopper.jpg"))
    ap.add_argument("--runs-only", action="store_true", help="only the plain whole-process runs")
    ap.add_argument("--python", default=sys.executable, help="the interpreter that runs edgeportrait")
    ap.add_argument(
        "--trees", default=str(ROOT),
        help="comma-separated source trees to compare (e.g. a checkout of main and this one), alternated run by run",
    )
    a = ap.parse_args()
    trees = [Path(t).resolve() for t in a.trees.split(",")]
    envs = {}
    for tree in trees:
        env = dict(os.environ)
        env["PYTHONPATH"] = str(tree) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        envs[tree] = env
    figures = {tree: Figures() for tree in trees}
    with tempfile.TemporaryDirectory() as tmp:
        photo = Path(tmp) / "photo.jpg"
        make_photo(Path(a.photo), photo)
        log = Path(tmp) / "timeline.json"

        def command(out: str, *pre: str) -> list[str]:
            cmd = [a.python, *pre, "process", str(photo), "-o", str(Path(tmp) / out), "--no-progress"]
            return cmd + (["-c", a.config] if a.config else [])

        for tree in trees:
            where = [a.python, "-c", "import edgeportrait; print(edgeportrait.__file__)"]
            _, _, _, p = run(where, envs[tree], tmp)
            if not Path(p.stdout.strip()).is_relative_to(tree):
                sys.exit(f"{tree}: the interpreter imports edgeportrait from {p.stdout.strip()} instead")
            # the compiled-model cache holds the model now
            run(command("warm", "-m", "edgeportrait"), envs[tree], tmp)
        kinds = ["wall"] if a.runs_only else ["wall", "importtime", "timeline"]
        jobs = [(kind, tree) for kind in kinds for tree in trees]
        for r in range(a.repeats):
            for kind, tree in jobs[r % len(jobs) :] + jobs[: r % len(jobs)]:  # the order rotates too
                f, env = figures[tree], envs[tree]
                if kind == "wall":
                    _, wall, cpu, _ = run(command(f"w{r}", "-m", "edgeportrait"), env, tmp)
                    f.walls.append(wall)
                    f.cpus.append(cpu)
                elif kind == "importtime":
                    _, _, _, p = run(command(f"i{r}", "-X", "importtime", "-m", "edgeportrait"), env, tmp)
                    for pkg, s in import_shares(p.stderr).items():
                        f.shares[pkg].append(s)
                else:
                    spawned, wall, _, _ = run(command(f"t{r}", "-c", WRAPPER, str(log), "-m", "edgeportrait"), env, tmp)
                    f.add_timeline(spawned, wall, json.loads(log.read_text()))

    print(f"`process` on one 1920x1080 JPEG, {a.repeats} alternating runs of each, medians; {machine()}")
    print(f"  load average after: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    for tree in trees:
        print(f"{tree}:")
        figures[tree].report(a.runs_only)


if __name__ == "__main__":
    main()
