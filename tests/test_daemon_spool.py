"""Nothing lost: results made while the broker is down survive a SIGKILL and arrive in seq order."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

from conftest import start_mosquitto, stop_mosquitto
from mqtt_watch import Watcher
from test_daemon import end_daemon, start_daemon


def _seqs(w: Watcher, base: str) -> list[int]:
    return [json.loads(m.payload)["seq"] for m in w.messages if m.topic == f"{base}/result"]


def test_results_spooled_through_outage_and_sigkill_arrive_in_order(tmp_path: Path) -> None:
    """Broker down → interval captures spool on disk → SIGKILL → broker and daemon back: every seq, in order."""
    broker = start_mosquitto(tmp_path / "b1")
    port = broker.port
    root = tmp_path / "d"
    overrides = {"capture": {"interval_s": 1}, "mqtt": {"host": broker.host, "port": port, "reconnect_min_s": 1}}
    d = start_daemon(root, broker, "it-spool", **overrides)
    d2 = None
    w2 = None
    try:
        first = d.wait("result", timeout=60)
        s0 = json.loads(first.payload)["seq"]
        assert json.loads(first.payload)["trigger"] == "interval"
        stop_mosquitto(broker)
        # captures go on without the broker: wait for three more portraits on disk
        out = root / "out"
        deadline = time.monotonic() + 60
        while len(list(out.glob("*.jpg"))) < s0 + 3 and time.monotonic() < deadline:
            time.sleep(0.1)
        d.proc.send_signal(signal.SIGKILL)
        d.proc.wait(10)
        made = len(list(out.glob("*.jpg")))
        assert made >= s0 + 3, d.log_tail()
        before = _seqs(d.watch, d.base)

        broker = start_mosquitto(tmp_path / "b2", port=port)
        w2 = Watcher(broker.host, port, [f"{d.base}/result"])
        d2 = start_daemon(root, broker, "it-spool", **overrides)
        deadline = time.monotonic() + 90
        while not set(range(1, made + 1)) <= set(before) | set(_seqs(w2, d.base)):
            assert time.monotonic() < deadline, (before, _seqs(w2, d.base), d2.log_tail())
            time.sleep(0.2)
        after = _seqs(w2, d.base)
        # in seq order (a QoS 1 duplicate may repeat a number, never go back past it)
        assert after == sorted(after), after
        # numbering continues after the restart: the new daemon's own captures come after the spooled ones
        assert max(after) >= made
    finally:
        if d2 is not None:
            end_daemon(d2)
        if w2 is not None:
            w2.close()
        end_daemon(d)
        stop_mosquitto(broker)
