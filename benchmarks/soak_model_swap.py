#!/usr/bin/env python3
"""Soak: model changes over MQTT, alternating, against a running daemon (issue 9).

Not part of the test suite. Starts a real mosquitto and the real daemon
(`edgeportrait run`, a folder of one photo as the camera, the stream running),
then sends --swaps model changes on B/settings/set, alternating between
landscape/int8, general/fp32, landscape/fp32 and general/int8, each one
waited for on B/settings/state. RSS, threads and open fds of the daemon are
read from /proc before the first swap (after --warmup swaps, which fill the
compiled-model cache and start OpenVINO's thread pools) and after the last
(once the swapped-out model has been released). A capture at the end checks
that the daemon still serves with the model asked for last.

    python benchmarks/soak_model_swap.py                 # 200 swaps
    python benchmarks/soak_model_swap.py --swaps 20 --json
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as paho
import yaml
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from conftest import start_mosquitto, stop_mosquitto  # noqa: E402

sys.path.insert(0, str(ROOT / "benchmarks"))
from soak import proc_stats  # noqa: E402

MODELS = [("landscape", "int8"), ("general", "fp32"), ("landscape", "fp32"), ("general", "int8")]


class Client:
    """Sends commands and waits for what the daemon publishes."""

    def __init__(self, port: int, base: str) -> None:
        self.base = base
        self.cond = threading.Condition()
        self.state: dict | None = None
        self.results: dict[str, dict] = {}
        self.online = False
        self.client = paho.Client(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5)
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(
            [(f"{base}/settings/state", 1), (f"{base}/result", 1), (f"{base}/status", 1)]
        )
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_message(self, client: paho.Client, userdata: object, msg: paho.MQTTMessage) -> None:
        with self.cond:
            if msg.topic.endswith("/settings/state"):
                self.state = json.loads(msg.payload)
            elif msg.topic.endswith("/result"):
                r = json.loads(msg.payload)
                self.results[r["id"]] = r
            elif msg.topic.endswith("/status"):
                self.online = msg.payload == b"online"
            self.cond.notify_all()

    def wait(self, pred, timeout: float) -> None:  # noqa: ANN001
        with self.cond:
            if not self.cond.wait_for(pred, timeout):
                raise SystemExit(f"timed out after {timeout} s")

    def swap(self, name: str, precision: str, timeout: float = 120) -> float:
        t0 = time.monotonic()
        payload = json.dumps({"model": {"name": name, "precision": precision}})
        self.client.publish(f"{self.base}/settings/set", payload, qos=1).wait_for_publish(10)
        self.wait(lambda: self.state is not None
                  and (self.state["model"]["name"], self.state["model"]["precision"]) == (name, precision), timeout)
        return time.monotonic() - t0

    def capture(self, cid: str) -> dict:
        self.client.publish(f"{self.base}/capture", json.dumps({"id": cid}), qos=1).wait_for_publish(10)
        self.wait(lambda: cid in self.results, 60)
        return self.results[cid]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def settle(pid: int, seconds: float = 3.0) -> dict[str, float]:
    """Stats once the released model's threads have ended (thread count steady for a second)."""
    deadline = time.monotonic() + seconds
    last = proc_stats(pid)
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = proc_stats(pid)
        if now["threads"] == last["threads"] and now["fds"] == last["fds"]:
            return now
        last = now
    return last


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--swaps", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=4, help="swaps before the first measurement (default 4)")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory (daemon log, config)")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="soak-swap-"))
    broker = start_mosquitto(tmp / "broker")
    photos = tmp / "photos"
    photos.mkdir()
    (photos / "grace_hopper.jpg").write_bytes((ROOT / "tests" / "data" / "grace_hopper.jpg").read_bytes())
    device = "soak-swap"
    cfg = {
        "device_id": device,
        "state_dir": str(tmp / "state"),
        "camera": {"source": str(photos), "width": 640, "height": 360, "fps": 10},
        "model": {"name": "landscape", "precision": "int8", "device": "CPU", "cache_dir": str(tmp / "cache")},
        "pipeline": {"max_fps": 5},
        "mqtt": {"host": broker.host, "port": broker.port},
        "capture": {"output_dir": str(tmp / "out")},
    }
    (tmp / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    log = open(tmp / "daemon.log", "wb")  # noqa: SIM115 (open for the daemon's lifetime)
    proc = subprocess.Popen([sys.executable, "-m", "edgeportrait", "run", "-c", str(tmp / "cfg.yaml")],
                            stdout=log, stderr=subprocess.STDOUT)
    client = Client(broker.port, f"edgeportrait/{device}")
    try:
        client.wait(lambda: client.online and client.state is not None, 120)
        for i in range(args.warmup):
            client.swap(*MODELS[(i + 1) % len(MODELS)])
        client.swap(*MODELS[0])
        before = settle(proc.pid)
        times = []
        t0 = time.monotonic()
        for i in range(args.swaps):
            times.append(client.swap(*MODELS[(i + 1) % len(MODELS)]))
        elapsed = time.monotonic() - t0
        after = settle(proc.pid)
        last = MODELS[args.swaps % len(MODELS)]
        r = client.capture("after-soak")
        serves = (r["model"], r["precision"]) == last
        times.sort()
        report = {
            "swaps": args.swaps,
            "warmup_swaps": args.warmup + 1,
            "seconds": round(elapsed, 1),
            "swap_s_p50": round(times[len(times) // 2], 2),
            "swap_s_max": round(times[-1], 2),
            "before": before,
            "after": after,
            "delta": {k: round(after[k] - before[k], 1) for k in before},
            "capture_after_uses_last_model": serves,
        }
    finally:
        client.close()
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        stop_mosquitto(broker)
        if args.keep:
            print(f"kept {tmp} (daemon.log, config)", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        print(json.dumps(report))
    else:
        b, a = report["before"], report["after"]
        print(f"{report['swaps']} swaps in {report['seconds']} s (p50 {report['swap_s_p50']} s, "
              f"max {report['swap_s_max']} s per swap)")
        for k in ("rss_mb", "threads", "fds"):
            print(f"  {k:8s} before {b[k]:>7}  after {a[k]:>7}  delta {report['delta'][k]:+}")
        print(f"  capture after the soak uses the last model asked for: {serves}")
    ok = report["delta"]["rss_mb"] <= 20 and report["delta"]["threads"] <= 0 and report["delta"]["fds"] <= 0
    return 0 if ok and serves else 1


if __name__ == "__main__":
    sys.exit(main())
