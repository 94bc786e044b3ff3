"""Capture round trip: `B/capture` published → `B/result` received, against the real daemon.

Starts a private mosquitto on a free port and `edgeportrait run` as a
subprocess (a folder of photos as a 1080p camera), sends captures one after
another, and prints the median and p95 round trip, the daemon's own per-stage
timings, and the pipeline fps it reports in `B/health`.

    python benchmarks/bench_capture_latency.py [--captures 50] [--model general] [--precision int8]

Not part of the test suite; figures depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from machine import compositor_path, machine  # benchmarks/machine.py (this script's directory is on sys.path)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import yaml  # noqa: E402
from conftest import start_mosquitto, stop_mosquitto  # noqa: E402
from mqtt_watch import Watcher  # noqa: E402

from edgeportrait.health import percentile  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--captures", type=int, default=50)
    ap.add_argument("--width", type=int, default=1920)
    ap.add_argument("--height", type=int, default=1080)
    ap.add_argument("--model", default="general", choices=["general", "landscape"])
    ap.add_argument("--precision", default="int8", choices=["int8", "fp32"])
    ap.add_argument("--device", default="CPU")
    ap.add_argument("--max-fps", type=float, default=15)
    ap.add_argument("--source", default=str(ROOT / "tests" / "data"), help="folder or video used as the camera")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="ep-bench-"))
    broker = start_mosquitto(tmp / "broker")
    device = f"bench-{uuid.uuid4().hex[:6]}"
    cfg = {
        "device_id": device,
        "state_dir": str(tmp / "state"),
        "camera": {"source": args.source, "width": args.width, "height": args.height, "fps": 30},
        "model": {"name": args.model, "precision": args.precision, "device": args.device},
        "pipeline": {"max_fps": args.max_fps},
        "mqtt": {"host": broker.host, "port": broker.port},
        "capture": {"output_dir": str(tmp / "out")},
        "health": {"interval_s": 2},
    }
    cfg_path = tmp / "cfg.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    base = f"edgeportrait/{device}"
    watch = Watcher(broker.host, broker.port, [f"{base}/#"])
    log = open(tmp / "daemon.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-m", "edgeportrait", "run", "-c", str(cfg_path)], stdout=log,
                            stderr=subprocess.STDOUT)
    try:
        watch.wait_for(lambda m: m.topic == f"{base}/status" and m.payload == b"online", timeout=120)
        # warm-up: the stream running and one capture done (first-call costs are not the steady state)
        watch.wait_for(lambda m: m.topic == f"{base}/health" and json.loads(m.payload)["pipeline"]["fps"] > 0,
                       timeout=60)
        rtts: list[float] = []
        stages: dict[str, list[float]] = {}
        split: dict[str, list[float]] = {}
        sizes = set()
        for i in range(args.captures + 1):
            cid = f"b{i}"
            mark = watch.mark()
            t0 = time.perf_counter()
            w0 = time.time()
            watch.client.publish(f"{base}/capture", json.dumps({"id": cid}), qos=1)
            m = watch.wait_for(lambda m, cid=cid: m.topic == f"{base}/result" and json.loads(m.payload)["id"] == cid,
                               timeout=60, start=mark)
            rtt = (time.perf_counter() - t0) * 1000
            w1 = time.time()
            r = json.loads(m.payload)
            # the result's ts is taken after encoding, before the file is written: it splits
            # the round trip into "until the portrait is encoded" and "saving and delivering"
            ts = dt.datetime.fromisoformat(r["ts"].replace("Z", "+00:00")).timestamp()
            if i == 0:
                continue  # warm-up capture
            rtts.append(rtt)
            split.setdefault("until encoded", []).append((ts - w0) * 1000)
            split.setdefault("save + spool + deliver", []).append((w1 - ts) * 1000)
            sizes.add((r["width"], r["height"]))
            for k, v in r["timings_ms"].items():
                stages.setdefault(k, []).append(v)
        mark = watch.mark()
        watch.client.publish(f"{base}/health/get", b"", qos=1)
        h = json.loads(watch.wait_for(lambda m: m.topic == f"{base}/health", start=mark).payload)
        # and the stream's figures without captures competing for the CPU
        time.sleep(6)
        mark = watch.mark()
        watch.client.publish(f"{base}/health/get", b"", qos=1)
        idle = json.loads(watch.wait_for(lambda m: m.topic == f"{base}/health", start=mark).payload)
    finally:
        proc.terminate()
        proc.wait(30)
        watch.close()
        stop_mosquitto(broker)
        log.close()

    print(f"compositor: {compositor_path(tmp / 'daemon.log')}")
    print(f"capture round trip (B/capture published -> B/result received), {len(rtts)} captures, "
          f"frames {sorted(sizes)}, model {args.model} {args.precision} on {h['inference']['device']}; {machine()}")
    print(f"  median {statistics.median(rtts):.1f} ms   p95 {percentile(rtts, 95):.1f} ms   "
          f"min {min(rtts):.1f} ms   max {max(rtts):.1f} ms")
    print("  split by the result's ts, median ms: " + ", ".join(f"{k} {statistics.median(v):.1f}"
                                                             for k, v in split.items()))
    print("  daemon stages, median ms: " + ", ".join(f"{k} {statistics.median(v):.1f}" for k, v in stages.items()))
    for label, rep in (("during captures", h), ("stream only", idle)):
        p = rep["pipeline"]
        print(f"health {label}: pipeline fps {p['fps']}, latency p50 {p['latency_ms_p50']} ms "
              f"p95 {p['latency_ms_p95']} ms, camera fps {rep['camera']['fps']}, "
              f"inference p50 {rep['inference']['ms_p50']} ms p95 {rep['inference']['ms_p95']} ms, "
              f"cpu {rep['system']['cpu_percent']}%, rss {rep['system']['rss_mb']} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
