#!/usr/bin/env python3
"""Soak: stream for a long time, a capture every second, the broker restarted every two minutes.

Not part of the test suite. Starts a real mosquitto (with persistence, so a
subscriber's persistent session survives the restarts) and the real daemon
(`edgeportrait run`, a folder of one 1080p photo as the camera, interval
capture every second), and a subscriber with a persistent MQTT 5 session on
B/result. Every --restart-every seconds the broker is stopped for --down-s
seconds and started again. At the end it reports captures made vs results
delivered (by seq: gaps, duplicates, order), and the daemon's RSS and open file
descriptors at start (after warm-up) and end.

    python benchmarks/soak.py --minutes 10            # the issue's soak
    python benchmarks/soak.py --minutes 2 --json      # a shorter run
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import paho.mqtt.client as paho
import yaml
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from conftest import Broker, free_port, start_mosquitto, stop_mosquitto  # noqa: E402


def proc_stats(pid: int) -> dict[str, float]:
    rss_kb = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss_kb = int(line.split()[1])
    return {
        "rss_mb": round(rss_kb / 1024, 1),
        "threads": len(os.listdir(f"/proc/{pid}/task")),
        "fds": len(os.listdir(f"/proc/{pid}/fd")),
    }


class Subscriber:
    """A client with a persistent session: the broker keeps its QoS 1 messages while it is away."""

    def __init__(self, port: int, topic: str) -> None:
        self.seqs: list[int] = []
        self.lock = threading.Lock()
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id="soak-subscriber", protocol=MQTTProtocolVersion.MQTTv5
        )
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, qos=1)
        self.client.reconnect_delay_set(1, 2)
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600
        self.client.connect("127.0.0.1", port, keepalive=10, clean_start=False, properties=props)
        self.client.loop_start()

    def _on_message(self, client: paho.Client, userdata: object, msg: paho.MQTTMessage) -> None:
        with self.lock:
            self.seqs.append(int(json.loads(msg.payload)["seq"]))

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--restart-every", type=float, default=120, help="seconds between broker restarts")
    ap.add_argument("--down-s", type=float, default=15, help="seconds the broker stays down each time")
    ap.add_argument("--precision", default="int8")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="edgeportrait-soak-"))
    photos = work / "photos"
    photos.mkdir()
    photo = cv2.imread(str(ROOT / "tests/data/astronaut.png"))
    frame = cv2.resize(photo, (1080, 1080))
    canvas = np.zeros((1080, 1920, 3), np.uint8)
    canvas[:, 420:1500] = frame
    cv2.imwrite(str(photos / "astronaut-1080p.png"), canvas)

    (work / "mq").mkdir()
    port = free_port()
    persist = f"persistence true\npersistence_location {work / 'mq'}/\nautosave_interval 5\n"
    broker: Broker | None = start_mosquitto(work / "mq", persist, port=port)
    device = "soak-1"
    base = f"edgeportrait/{device}"
    cfg = {
        "device_id": device,
        "state_dir": str(work / "state"),
        "camera": {"source": str(photos), "width": 1920, "height": 1080, "fps": 15},
        "model": {"name": "landscape", "precision": args.precision, "device": "CPU", "cache_dir": str(work / "cache")},
        "pipeline": {"max_fps": 10},
        "mqtt": {"host": "127.0.0.1", "port": port, "reconnect_min_s": 1, "reconnect_max_s": 4},
        "capture": {"output_dir": str(work / "out"), "interval_s": 1, "max_files": 100000},
        "health": {"interval_s": 10},
    }
    (work / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    sub = Subscriber(port, f"{base}/result")
    log = open(work / "daemon.log", "wb")  # noqa: SIM115 - open for the daemon's whole life
    daemon = subprocess.Popen(
        [sys.executable, "-m", "edgeportrait", "run", "-c", str(work / "cfg.yaml")],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    t_start = time.monotonic()
    end_at = t_start + args.minutes * 60
    restarts = 0
    time.sleep(30)  # warm-up: model compiled, stream running
    start_stats = proc_stats(daemon.pid)
    next_restart = t_start + args.restart_every
    try:
        while time.monotonic() < end_at:
            if daemon.poll() is not None:
                raise SystemExit(f"daemon exited with {daemon.returncode}; see {work / 'daemon.log'}")
            if time.monotonic() >= next_restart and broker is not None:
                stop_mosquitto(broker)  # SIGTERM: mosquitto saves its sessions
                time.sleep(args.down_s)
                broker = start_mosquitto(work / "mq", persist, port=port)
                restarts += 1
                next_restart += args.restart_every
            time.sleep(0.5)
        end_stats = proc_stats(daemon.pid)
        made = len(list((work / "out").glob("*.jpg")))
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(30)
        # the spool drains after the last reconnect; give delivery time to finish
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with sub.lock:
                if set(range(1, made + 1)) <= set(sub.seqs):
                    break
            time.sleep(0.5)
    finally:
        if daemon.poll() is None:
            daemon.kill()
        sub.close()
        if broker is not None:
            stop_mosquitto(broker)
        log.close()

    with sub.lock:
        seqs = list(sub.seqs)
    delivered = set(seqs)
    missing = sorted(set(range(1, made + 1)) - delivered)
    # order of first arrivals: a QoS 1 duplicate may repeat an old number later, which is allowed
    first: list[int] = []
    for s in seqs:
        if s not in first:
            first.append(s)
    out_of_order = sum(1 for a, b in zip(first, first[1:], strict=False) if b < a)
    report = {
        "minutes": args.minutes,
        "broker_restarts": restarts,
        "captures_made": made,
        "results_delivered_unique": len(delivered & set(range(1, made + 1))),
        "missing_seqs": missing[:50],
        "duplicates": len(seqs) - len(delivered),
        "out_of_order": out_of_order,
        "daemon_start": start_stats,
        "daemon_end": end_stats,
        "rss_growth_mb": round(end_stats["rss_mb"] - start_stats["rss_mb"], 1),
        "fd_growth": end_stats["fds"] - start_stats["fds"],
        "daemon_exit": daemon.returncode,
        "work_dir": str(work) if args.keep else None,
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for k, v in report.items():
            print(f"{k:>26}: {v}")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if not missing else 1


if __name__ == "__main__":
    raise SystemExit(main())
