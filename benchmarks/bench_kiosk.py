"""The live preview end to end: a 1080p 60 fps video camera → segment → compose → encode → N viewers.

Not part of the test suite. Run:

    python benchmarks/bench_kiosk.py [--video FILE] [--seconds 20] [--json OUT]

For each preview size (720p, 1080p) and viewer count (1, 5) it starts the
real daemon (``edgeportrait run``, MQTT off, the kiosk on a free loopback
port) with a video-file camera at 1920×1080 and 60 fps, ``pipeline.max_fps``
and ``preview.max_fps`` at 60 (so the figure is what the machine can do, not
a configured cap), waits for it to run, lets the viewers (a separate process,
one thread per connection, reading every part by its Content-Length) watch
``/stream.mjpg`` for ``--seconds``, and reads ``/healthz``: preview frames
per second each viewer received, the latency from the camera's frame to its
last byte handed to a viewer's socket (p50/p95, the daemon's own figure), the
camera's fps, inference and compose/encode times, and the daemon's CPU (% of
one core, from /proc). Then the daemon's CPU with nobody watching and with one
720p viewer, side by side.

The default video is made once from the data set's street footage (Debian's
opencv-doc ``vtest.avi``, fetched by ``python -m edgeportrait_build.dataset
fetch .cache/dataset-sources``), scaled to 1080p and written as MJPEG at 60
fps; ``--video`` takes any other file.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import cv2
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).parent))
from bench_kiosk_stream import _viewers  # noqa: E402
from machine import compositor_path, machine  # noqa: E402

SOURCES = ROOT / ".cache" / "dataset-sources"


def make_video(out: Path, seconds: float = 8.0) -> Path:
    """vtest.avi (768×576, pedestrians) scaled to 1920×1080, MJPEG at 60 fps."""
    src = SOURCES / "vtest.avi"
    if not src.exists():
        sys.exit(f"{src}: missing; run: python -m edgeportrait_build.dataset fetch {SOURCES} (or pass --video)")
    cap = cv2.VideoCapture(str(src))
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"MJPG"), 60.0, (1920, 1080))
    n = 0
    while n < seconds * 60:
        ok, frame = cap.read()
        if not ok:
            break
        writer.write(cv2.resize(frame, (1920, 1080), interpolation=cv2.INTER_LINEAR))
        n += 1
    writer.release()
    return out


def decode_ms(video: Path, frames: int = 120) -> float:
    """Median time to read (decode) one frame of the video, on one thread."""
    cv2.setNumThreads(1)
    cap = cv2.VideoCapture(str(video))
    times = []
    for _ in range(frames):
        t0 = time.perf_counter()
        ok, _ = cap.read()
        if not ok:
            break
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Daemon:
    def __init__(self, video: Path, preview: tuple[int, int], work: Path) -> None:
        self.port = _free_port()
        cfg = {
            "device_id": "bench-kiosk",
            "state_dir": str(work / "state"),
            "camera": {"source": str(video), "width": 1920, "height": 1080, "fps": 60, "loop": True},
            "model": {"name": "landscape", "device": "CPU", "cache_dir": str(work / "cache")},
            "pipeline": {"max_fps": 60},
            "mqtt": {"enabled": False},
            "capture": {"output_dir": str(work / "out")},
            "health": {"interval_s": 60},
            "http": {"enabled": True, "port": self.port, "max_viewers": 5},
            "preview": {"width": preview[0], "height": preview[1], "max_fps": 60},
        }
        path = work / "bench.yaml"
        path.write_text(yaml.safe_dump(cfg))
        self.log = open(work / "daemon.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen([sys.executable, "-m", "edgeportrait", "run", "-c", str(path)],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while True:
            try:
                if self.health()["state"] == "running":
                    break
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"daemon did not start; see {work / 'daemon.log'}")
            time.sleep(0.2)

    def health(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=5) as r:
            return json.loads(r.read())  # type: ignore[no-any-return]

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(30)
        self.log.close()


def watch(d: Daemon, viewers: int, seconds: float) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    out: Any = ctx.Queue()
    client = ctx.Process(target=_viewers, args=(d.port, viewers, seconds, out))
    cpu0, t0 = _cpu_s(d.proc.pid), time.monotonic()
    client.start()
    rates = out.get(timeout=seconds + 60)
    client.join(10)
    cpu = (_cpu_s(d.proc.pid) - cpu0) / (time.monotonic() - t0) * 100
    h = d.health()
    return {
        "viewers": viewers,
        "fps_per_viewer_min": round(min(rates), 1),
        "fps_per_viewer_median": round(statistics.median(rates), 1),
        "latency_ms_p50": h["preview"]["latency_ms_p50"],
        "latency_ms_p95": h["preview"]["latency_ms_p95"],
        "camera_fps": h["camera"]["fps"],
        "camera_dropped": h["camera"]["dropped"],
        "inference_ms_p50": h["inference"]["ms_p50"],
        "compose_ms_p50": h["pipeline"]["compose_ms_p50"],
        "encode_ms_p50": h["preview"]["encode_ms_p50"],
        "daemon_cpu_percent": round(cpu, 1),
    }


def idle_cpu(d: Daemon, seconds: float) -> float:
    time.sleep(3)  # the last viewer's frames drain
    cpu0, t0 = _cpu_s(d.proc.pid), time.monotonic()
    time.sleep(seconds)
    return round((_cpu_s(d.proc.pid) - cpu0) / (time.monotonic() - t0) * 100, 1)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--video", type=Path)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-kiosk-") as tmp:
        work = Path(tmp)
        video = args.video or make_video(work / "street-1080p60.avi")
        figures: dict[str, Any] = {"machine": machine(), "decode_ms_1080p_one_thread": round(decode_ms(video), 1),
                                   "runs": []}
        print(f"machine: {figures['machine']}", flush=True)
        print(f"decode (one thread, 1080p MJPEG): {figures['decode_ms_1080p_one_thread']} ms/frame", flush=True)
        for size in ((1280, 720), (1920, 1080)):
            d = Daemon(video, size, work)
            try:
                if size == (1280, 720):
                    figures["idle_cpu_percent"] = idle_cpu(d, args.seconds)
                for viewers in (1, 5):
                    time.sleep(2)
                    r = {"preview": f"{size[0]}x{size[1]}", **watch(d, viewers, args.seconds)}
                    figures["runs"].append(r)
                    print(json.dumps(r), flush=True)
            finally:
                d.stop()
            figures.setdefault("compositor", compositor_path(work / "daemon.log"))
        print(f"compositor: {figures['compositor']}")
        print(f"daemon CPU, nobody watching: {figures['idle_cpu_percent']} % of one core")
        print()
        print("| preview | viewers | fps per viewer (min / median) | latency p50 / p95 ms | camera fps | "
              "inference ms | compose ms | encode ms | daemon CPU % |")
        print("|---|---|---|---|---|---|---|---|---|")
        for r in figures["runs"]:
            print(f"| {r['preview']} | {r['viewers']} | {r['fps_per_viewer_min']} / {r['fps_per_viewer_median']} | "
                  f"{r['latency_ms_p50']} / {r['latency_ms_p95']} | {r['camera_fps']} | {r['inference_ms_p50']} | "
                  f"{r['compose_ms_p50']} | {r['encode_ms_p50']} | {r['daemon_cpu_percent']} |")
        if args.json:
            args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
