"""What the kiosk stream costs: preview frames per second to N viewers, and capture → socket latency.

Not part of the test suite. Run:

    python benchmarks/bench_kiosk_stream.py [--viewers 5] [--preview 1280x720] [--fps 30] [--seconds 10] [--json]

An in-process KioskServer on a loopback port; a producer thread stands in for
the daemon's compose thread: for each frame it takes a 1080p picture (a real
photo, composed once beforehand), and — only while ``wanted()`` — scales and
encodes it through :class:`PreviewEncoder` at ``--fps`` (the JPEG encode is
the producer's real per-frame cost; segmentation and compose are not in this
figure, see ``bench_compose.py``). The viewers are a separate process (so
their parsing does not share the server's GIL) with one thread per
connection that reads every part by its Content-Length.

Prints frames per second each viewer received, frames published and encoded,
the latency from "camera took it" (the producer's timestamp) to the frame's
last byte handed to each socket (p50/p95, from ``FrameBroadcaster.stats()``),
and the CPU the whole process used (server + producer, % of one core).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

import cv2
from machine import machine  # benchmarks/machine.py (this script's directory is on sys.path)

from edgeportrait.config import HttpConfig, PreviewConfig
from edgeportrait.web import EventHub, FrameBroadcaster, KioskServer, PreviewEncoder

ROOT = Path(__file__).resolve().parent.parent


class _Backend:
    def health(self) -> dict[str, Any]:
        return {"state": "running"}

    def latest_portrait(self) -> None:
        return None

    def capture(self, countdown_s: float | None) -> str:
        return "bench"

    def kiosk_state(self) -> dict[str, Any]:
        return {"review_s": 5, "capture_allowed": True, "message": ""}


def _viewer(port: int, seconds: float, out: Any) -> None:
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(f"GET /stream.mjpg HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        buf += s.recv(65536)
    buf = buf.split(b"\r\n\r\n", 1)[1]
    frames = 0
    start = time.monotonic()
    end = start + seconds
    s.settimeout(2)
    try:
        while time.monotonic() < end:
            while b"\r\n\r\n" not in buf:
                buf += s.recv(262144)
            head, buf = buf.split(b"\r\n\r\n", 1)
            n = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
            need = n + 2
            while len(buf) < need:
                buf += s.recv(max(262144, need - len(buf)))
            buf = buf[need:]
            frames += 1
    except (TimeoutError, OSError):
        pass
    out.put(frames / (time.monotonic() - start))
    s.close()


def _viewers(port: int, n: int, seconds: float, out: Any) -> None:
    import queue

    q: queue.Queue[float] = queue.Queue()
    threads = [threading.Thread(target=_viewer, args=(port, seconds, q)) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out.put(sorted(q.get() for _ in range(n)))


def _cpu_s() -> float:
    t = os.times()
    return t.user + t.system


def run(viewers: int, width: int, height: int, fps: float, seconds: float, quality: int) -> dict[str, Any]:
    img = cv2.imread(str(ROOT / "docs" / "astronaut_after.jpg"))
    frame = cv2.resize(img, (1920, 1080), interpolation=cv2.INTER_LINEAR)  # a 1080p composed frame
    frames = FrameBroadcaster(max(viewers, 1))
    cfg = PreviewConfig(width=width, height=height, max_fps=fps, jpeg_quality=quality)
    encoder = PreviewEncoder(frames, lambda: cfg)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    http = HttpConfig(enabled=True, port=port, max_viewers=max(viewers, 1))
    server = KioskServer(http, frames, EventHub(), _Backend())
    server.start()
    stop = threading.Event()

    def produce() -> None:
        period = 1.0 / 60  # the camera: 60 fps; the encoder keeps to preview.max_fps
        next_at = time.monotonic()
        while not stop.is_set():
            if encoder.due():
                encoder.offer(frame, time.monotonic())
            next_at += period
            stop.wait(max(0.0, next_at - time.monotonic()))

    producer = threading.Thread(target=produce, daemon=True)
    producer.start()
    out: Any = mp.get_context("spawn").Queue()
    client = mp.get_context("spawn").Process(target=_viewers, args=(port, viewers, seconds, out))
    cpu0, t0 = _cpu_s(), time.monotonic()
    client.start()
    rates = out.get(timeout=seconds + 30)
    cpu = 100.0 * (_cpu_s() - cpu0) / (time.monotonic() - t0)
    client.join(10)
    stop.set()
    producer.join(2)
    stats = frames.stats()
    server.stop()
    return {
        "viewers": viewers,
        "preview": f"{width}x{height}",
        "max_fps": fps,
        "fps_per_viewer_min": round(min(rates), 1),
        "fps_per_viewer_max": round(max(rates), 1),
        "published": stats["published"],
        "encoded": encoder.encoded,
        "encode_ms_p50": encoder.encode_ms.percentile(50),
        "latency_ms_p50": stats["latency_ms_p50"],
        "latency_ms_p95": stats["latency_ms_p95"],
        "jpeg_kb": round(len(frames.latest()[0]) / 1024, 1) if frames.latest() else None,  # type: ignore[index]
        "process_cpu_percent": round(cpu, 1),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--viewers", type=int, nargs="+", default=[1, 5])
    p.add_argument("--preview", nargs="+", default=["1280x720", "1920x1080"])
    p.add_argument("--fps", type=float, default=30)
    p.add_argument("--quality", type=int, default=80)
    p.add_argument("--seconds", type=float, default=10)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    rows = []
    if not args.json:
        print(machine(), flush=True)
    for size in args.preview:
        w, h = (int(x) for x in size.split("x"))
        for n in args.viewers:
            rows.append(run(n, w, h, args.fps, args.seconds, args.quality))
            if not args.json:
                print(json.dumps(rows[-1]), flush=True)
    if args.json:
        json.dump(rows, sys.stdout, indent=1)
        print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
