"""TLS and authentication against a real mosquitto with a TLS listener and require_certificate.

The tests make their own CA and certificates (tests/pki.py) and start a broker
with three listeners: plain (for the test's own observer), TLS with the right
certificate and `require_certificate true`, and TLS presenting a certificate
for another host name. A second broker checks username/password.
"""

from __future__ import annotations

import logging
import queue
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from conftest import Broker, _wait_accepting, free_port, start_mosquitto, stop_mosquitto
from mqtt_watch import Watcher
from pki import Pki, make_pki

from edgeportrait.commands import Command
from edgeportrait.config import MqttConfig
from edgeportrait.publish.mqtt import MqttLink


@dataclass
class TlsBroker:
    broker: Broker
    tls_port: int
    wrong_host_port: int
    pki: Pki


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsBroker]:
    tmp = tmp_path_factory.mktemp("tls")
    pki = make_pki(tmp / "pki")
    tls_port, wrong_port = free_port(), free_port()
    extra = f"""
listener {tls_port} 127.0.0.1
cafile {pki.ca}
certfile {pki.server_cert}
keyfile {pki.server_key}
require_certificate true
listener {wrong_port} 127.0.0.1
cafile {pki.ca}
certfile {pki.wrong_host_cert}
keyfile {pki.wrong_host_key}
require_certificate true
"""
    broker = start_mosquitto(tmp, extra)
    _wait_accepting(tls_port, broker.process)
    _wait_accepting(wrong_port, broker.process)
    yield TlsBroker(broker, tls_port, wrong_port, pki)
    stop_mosquitto(broker)


def _link(port: int, device: str, **cfg: object) -> MqttLink:
    commands: queue.Queue[Command] = queue.Queue()
    mcfg = MqttConfig.model_validate(
        {"host": "localhost", "port": port, "reconnect_min_s": 1, "reconnect_max_s": 2, **cfg}
    )
    return MqttLink(mcfg, device, commands.put, lambda *_: None)


def _tls(ca: Path, cert: Path | None = None, key: Path | None = None) -> dict[str, object]:
    return {"enabled": True, "ca_file": str(ca), "cert_file": cert and str(cert), "key_file": key and str(key)}


def test_connects_with_the_right_client_certificate(tls_broker: TlsBroker) -> None:
    """CA + client certificate: connected, and `online` is visible to other clients."""
    p = tls_broker.pki
    watch = Watcher("127.0.0.1", tls_broker.broker.port, ["edgeportrait/tls-ok/status"])
    link = _link(tls_broker.tls_port, "tls-ok", tls=_tls(p.ca, p.client_cert, p.client_key))
    link.start()
    try:
        assert link.wait_connected(15), link.last_error
        watch.wait_for(lambda m: m.payload == b"online")
    finally:
        link.stop()
        watch.close()


@pytest.mark.parametrize(
    ("case", "port_attr", "ca_attr", "expect"),
    [
        ("broker signed by an unknown CA", "tls_port", "other_ca", "certificate verify failed"),
        ("broker certificate for another host", "wrong_host_port", "ca", "certificate verify failed"),
    ],
)
def test_refuses_a_broker_whose_certificate_does_not_match(
    tls_broker: TlsBroker, case: str, port_attr: str, ca_attr: str, expect: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The daemon never talks MQTT to a broker it cannot verify, and says why."""
    p = tls_broker.pki
    caplog.set_level(logging.WARNING, logger="edgeportrait")
    link = _link(
        getattr(tls_broker, port_attr),
        f"tls-bad-{port_attr}",
        tls=_tls(getattr(p, ca_attr), p.client_cert, p.client_key),
    )
    link.start()
    try:
        assert not link.wait_connected(4), case
        assert link.last_error is not None and expect in link.last_error, link.last_error
        assert expect in caplog.text
    finally:
        link.stop()


def test_a_client_certificate_from_another_ca_is_refused_by_the_broker(tls_broker: TlsBroker) -> None:
    p = tls_broker.pki
    link = _link(tls_broker.tls_port, "tls-rogue", tls=_tls(p.ca, p.rogue_client_cert, p.rogue_client_key))
    link.start()
    try:
        assert not link.wait_connected(4)
        assert link.last_error
    finally:
        link.stop()


@pytest.fixture(scope="module")
def auth_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    tmp = tmp_path_factory.mktemp("auth")
    pwfile = tmp / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(pwfile), "booth", "right-password"], check=True)
    # a later allow_anonymous overrides the fixture's default of true
    broker = start_mosquitto(tmp, f"password_file {pwfile}\nallow_anonymous false\n")
    anonymous = paho.Client(paho.CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
    anonymous.connect(broker.host, broker.port)
    try:
        rc = anonymous.loop(2)
        assert not anonymous.is_connected(), f"the auth broker let an anonymous client in ({rc})"
    finally:
        anonymous.disconnect()
    yield broker
    stop_mosquitto(broker)


def test_right_password_from_a_file_connects(auth_broker: Broker, tmp_path: Path) -> None:
    secret = tmp_path / "mqtt-password"
    secret.write_text("right-password\n")
    link = _link(auth_broker.port, "auth-ok", username="booth", password_file=str(secret))
    link.start()
    try:
        assert link.wait_connected(10), link.last_error
    finally:
        link.stop()


def test_bad_password_is_a_clear_error_with_backoff_and_never_logged(
    auth_broker: Broker, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A wrong password: refused with a reason, retried with backoff (not a tight loop), secret never in logs."""
    secret = tmp_path / "mqtt-password"
    secret.write_text("Wr0ng-S3cret-xyzzy\n")
    caplog.set_level(logging.DEBUG)
    link = _link(auth_broker.port, "auth-bad", username="booth", password_file=str(secret))
    link.start()
    try:
        assert not link.wait_connected(5)
    finally:
        link.stop()
    refusals = [r for r in caplog.records if "refused" in r.getMessage()]
    assert refusals, caplog.text
    assert "authori" in refusals[0].getMessage().lower() or "password" in refusals[0].getMessage().lower()
    # with reconnect_min_s=1, five seconds allow a handful of attempts, a tight loop would make hundreds
    assert len(refusals) <= 8, len(refusals)
    assert "Wr0ng-S3cret-xyzzy" not in caplog.text
    assert "Wr0ng-S3cret-xyzzy" not in (link.last_error or "")
