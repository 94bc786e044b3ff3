"""Shared fixtures: a real mosquitto broker on a free localhost port.

The MQTT tests talk to a real broker (as paho's own suite does) because a mock
client cannot show that a last will fires or that a retained message is kept.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

MOSQUITTO_CANDIDATES = ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto")


def _find_mosquitto() -> str | None:
    for c in MOSQUITTO_CANDIDATES:
        if os.access(c, os.X_OK):
            return c
    return shutil.which("mosquitto")


def run_in_threads(target: Callable[[int], None], n: int) -> None:
    """Runs target(0) … target(n-1) on n threads at once and waits for all of them."""
    threads = [threading.Thread(target=target, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Broker:
    host: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path


def _wait_accepting(port: int, proc: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"mosquitto exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"mosquitto did not accept connections on port {port}")


def start_mosquitto(tmp: Path, extra_conf: str = "", port: int | None = None) -> Broker:
    """Start mosquitto with a config in ``tmp``; the caller terminates ``.process``."""
    exe = _find_mosquitto()
    if exe is None:
        pytest.skip("mosquitto is not installed (scripts/test.sh installs it)")
    port = port or free_port()
    tmp.mkdir(parents=True, exist_ok=True)
    conf = tmp / "mosquitto.conf"
    log = tmp / "mosquitto.log"
    lines = [
        f"listener {port} 127.0.0.1",
        "allow_anonymous true",
        "persistence false",
        # mosquitto's default leaves Nagle on: small packets wait ~40 ms for a delayed ACK
        "set_tcp_nodelay true",
        f"log_dest file {log}",
        "log_type error",
        "log_type warning",
        "log_type notice",
    ]
    # Started as root, mosquitto would switch to the user "mosquitto" and could
    # then not write its log in our tmp dir.
    if os.geteuid() == 0:
        lines.append("user root")
    conf.write_text("\n".join(lines) + "\n" + extra_conf)
    proc = subprocess.Popen([exe, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _wait_accepting(port, proc)
    except RuntimeError:
        proc.kill()
        _, err = proc.communicate(timeout=5)
        raise RuntimeError(f"mosquitto failed to start: {err.decode(errors='replace')[-500:]}") from None
    return Broker("127.0.0.1", port, proc, log)


def stop_mosquitto(broker: Broker) -> None:
    if broker.process.poll() is None:
        broker.process.terminate()
        try:
            broker.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            broker.process.kill()
            broker.process.wait(timeout=10)


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """A real mosquitto on a free localhost port for the whole test session."""
    broker = start_mosquitto(tmp_path_factory.mktemp("mosquitto"))
    try:
        yield broker
    finally:
        stop_mosquitto(broker)
