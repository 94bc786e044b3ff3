"""MqttLink against a real mosquitto: status topic, subscriptions, size cap, reconnect."""

from __future__ import annotations

import queue
import time
from pathlib import Path

import pytest
from conftest import Broker, free_port, start_mosquitto, stop_mosquitto
from mqtt_watch import Watcher

from edgeportrait.commands import Command
from edgeportrait.config import MqttConfig
from edgeportrait.errors import FatalError
from edgeportrait.publish.mqtt import MqttLink, read_password


def _link(broker_port: int, device: str, **cfg: object) -> tuple[MqttLink, queue.Queue, list]:
    commands: queue.Queue[Command] = queue.Queue()
    errors: list[tuple[str | None, str, str]] = []
    mcfg = MqttConfig.model_validate(
        {"host": "127.0.0.1", "port": broker_port, "reconnect_min_s": 1, "reconnect_max_s": 2, **cfg}
    )
    link = MqttLink(mcfg, device, commands.put, lambda i, c, d: errors.append((i, c, d)))
    return link, commands, errors


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_online_retained_after_connect_and_stopped_on_clean_stop(mosquitto: Broker, protocol: str) -> None:
    """`online` is retained on B/status after connecting; stop() leaves `stopped` (not the will)."""
    device = f"link-status-{protocol.replace('.', '')}"
    link, _, _ = _link(mosquitto.port, device, protocol=protocol)
    early = Watcher(mosquitto.host, mosquitto.port, [f"edgeportrait/{device}/status"])
    link.start()
    try:
        assert link.wait_connected(10)
        # the broker has `online` once an earlier subscriber got it live; only then can a late
        # subscriber be expected to see it retained (sooner, its SUBACK may beat the publish and
        # the message arrives live, with retain unset)
        early.wait_for(lambda m: m.payload == b"online")
        early.close()
        w = Watcher(mosquitto.host, mosquitto.port, [f"edgeportrait/{device}/status"])
        w.wait_for(lambda m: m.payload == b"online" and m.retain)
    finally:
        link.stop()
    w.wait_for(lambda m: m.payload == b"stopped")
    w.close()
    late = Watcher(mosquitto.host, mosquitto.port, [f"edgeportrait/{device}/status"])
    late.wait_for(lambda m: m.retain and m.payload == b"stopped")
    late.close()


def test_commands_routed_only_from_own_topics_and_fleet_topic(mosquitto: Broker) -> None:
    """Only B/capture, <prefix>/all/capture, B/settings/set and B/health/get reach the handler."""
    link, commands, _ = _link(mosquitto.port, "link-route")
    link.start()
    w = Watcher(mosquitto.host, mosquitto.port, ["edgeportrait/link-route/status"])
    try:
        assert link.wait_connected(10)
        w.wait_for(lambda m: m.payload == b"online")
        for topic in (
            "edgeportrait/other-device/capture",
            "edgeportrait/link-route/result",
            "edgeportrait/link-route/capture/extra",
            "homeassistant/status",  # discovery is off: not subscribed
        ):
            w.publish(topic, b"{}")
        w.publish("edgeportrait/link-route/capture", b'{"id": "own"}')
        w.publish("edgeportrait/all/capture", b'{"id": "fleet"}')
        w.publish("edgeportrait/link-route/settings/set", b"{}")
        w.publish("edgeportrait/link-route/health/get", b"")
        got = [commands.get(timeout=10) for _ in range(4)]
        assert [(c.kind, c.payload) for c in got] == [
            ("capture", b'{"id": "own"}'),
            ("capture", b'{"id": "fleet"}'),
            ("settings", b"{}"),
            ("health", b""),
        ]
        # delivered in order: once this one is in, nothing from the foreign topics can follow
        w.publish("edgeportrait/link-route/health/get", b"sentinel")
        assert commands.get(timeout=10).payload == b"sentinel"
        assert commands.empty()
    finally:
        w.close()
        link.stop()


def test_oversized_and_retained_commands_refused(mosquitto: Broker) -> None:
    """A command above max_message_bytes, or one left retained on the broker, is answered as an error."""
    w = Watcher(mosquitto.host, mosquitto.port, ["edgeportrait/link-size/status"])
    # left on the broker before the daemon connects: it must not fire on (re)connect
    w.publish("edgeportrait/link-size/capture", b"{}", retain=True)
    link, commands, errors = _link(mosquitto.port, "link-size", max_message_bytes=1000)
    link.start()
    try:
        assert link.wait_connected(10)
        w.publish("edgeportrait/link-size/capture", b"x" * 1001)
        w.publish("edgeportrait/link-size/capture", b"y" * 1000)
        assert commands.get(timeout=10).payload == b"y" * 1000
        assert [e[1] for e in errors] == ["retained", "too_large"]
        assert "1001 bytes" in errors[1][2]
        assert commands.empty()
    finally:
        w.publish("edgeportrait/link-size/capture", b"", retain=True)  # clear the retained message
        w.close()
        link.stop()


def test_broker_absent_at_start_is_retried_until_it_appears(tmp_path: Path) -> None:
    """Starting without a broker does not fail: the link connects once the broker comes up."""
    port = free_port()
    link, _, _ = _link(port, "link-late")
    link.start()
    broker = None
    try:
        assert not link.wait_connected(1.5)
        broker = start_mosquitto(tmp_path, port=port)
        assert link.wait_connected(30), "did not connect after the broker appeared"
        w = Watcher(broker.host, broker.port, ["edgeportrait/link-late/status"])
        w.wait_for(lambda m: m.payload == b"online")
        w.close()
        # and again after the broker restarts
        stop_mosquitto(broker)
        deadline = time.monotonic() + 10
        while link.connected and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not link.connected
        broker = start_mosquitto(tmp_path, port=port)
        assert link.wait_connected(30), "did not reconnect after a broker restart"
        assert link.connects == 2
    finally:
        link.stop()
        if broker is not None:
            stop_mosquitto(broker)


def test_password_read_from_credentials_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A bare password_file name is looked up in $CREDENTIALS_DIRECTORY (systemd LoadCredential)."""
    (tmp_path / "mqtt-password").write_text("s3cret\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    cfg = MqttConfig(username="u", password_file=Path("mqtt-password"))
    assert read_password(cfg) == "s3cret"
    missing = MqttConfig(username="u", password_file=tmp_path / "nope")
    with pytest.raises(FatalError, match="password_file"):
        read_password(missing)

