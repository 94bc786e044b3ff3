"""The broker connection: paho-mqtt v2 with last will, reconnect and command routing.

``MqttLink`` owns one paho client and its network thread. It publishes
``online`` (retained) after every (re)connect, leaves ``offline`` as the last
will, and ``stopped`` on a clean stop. It subscribes only to this device's
command topics (and the fleet capture topic, and Home Assistant's status topic
when discovery is on), refuses oversized messages, and hands every command to
one handler. The password is read from a file and never logged.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from edgeportrait.commands import Command, CommandKind, peek_payload_id
from edgeportrait.config.mqtt import MqttConfig
from edgeportrait.errors import FatalError
from edgeportrait.logsafe import Throttle, shown
from edgeportrait.paths import read_secret

logger = logging.getLogger(__name__)

STATUS_ONLINE = "online"
STATUS_OFFLINE = "offline"
STATUS_STOPPED = "stopped"

# Two booths with one device_id (flashed from the same SD image) share a client id:
# the broker closes the older connection as the newer one arrives, and both reconnect
# at once, forever. A connection closed this soon after it was made counts as taken over.
TAKEOVER_WINDOW_S = 10.0
TAKEOVERS_TO_SUSPECT = 2
DUPLICATE_BACKOFF_MIN_S = 5
DUPLICATE_BACKOFF_MAX_S = 300
DUPLICATE_FORGET_S = 600.0  # no evidence for this long: the other one is gone
OWN_HEALTH = "own_health"  # our own B/health topic, watched for another daemon with our device_id


CommandHandler = Callable[[Command], None]
ErrorPublisher = Callable[[str | None, str, str], None]


def read_password(cfg: MqttConfig) -> str | None:
    """The broker password from ``mqtt.password_file`` (a bare name: $CREDENTIALS_DIRECTORY)."""
    if cfg.password_file is None:
        return None
    raw = read_secret("mqtt.password_file", cfg.password_file)
    try:
        return raw.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError:
        raise FatalError(f"mqtt.password_file: {cfg.password_file} is not UTF-8 text") from None


def _describe_connect_error(exc: BaseException) -> str:
    """Why a connection attempt failed, in words an installer can act on."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS: certificate verify failed: {exc.verify_message} (check mqtt.tls.ca_file and mqtt.host)"
    if isinstance(exc, ssl.SSLError):
        return f"TLS: {exc.reason or exc}"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (is the broker running on that port?)"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _no_delay(client: paho.Client) -> None:
    """Send small MQTT packets at once (TCP_NODELAY).

    A PUBACK or a result JSON written right after another small packet would
    otherwise wait for the broker's delayed ACK (Nagle's algorithm): measured
    here as a steady ~40 ms on every capture command's round trip.
    """
    sock = client.socket()
    if sock is None:
        return
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # type: ignore[attr-defined]
    except (OSError, AttributeError) as e:
        logger.debug("TCP_NODELAY not set: %s", e)


class MqttLink:
    """One broker connection with status, reconnect and the command subscriptions."""

    def __init__(
        self,
        cfg: MqttConfig,
        device_id: str,
        on_command: CommandHandler,
        on_error: ErrorPublisher,
        on_connected: Callable[[], None] | None = None,
        instance: str | None = None,
    ) -> None:
        self.cfg = cfg
        self.device_id = device_id
        # this start's id, in every B/health: a health report with another id, newer
        # than this start, is another daemon publishing as this device
        self.instance = instance
        self._started_wall = time.time()
        self._connected_at = 0.0
        self._short_lived = 0  # consecutive connections closed by the broker within TAKEOVER_WINDOW_S
        self._duplicate_at = 0.0
        self._duplicate_why: str | None = None
        self._backoff = 0
        self.base = f"{cfg.topic_prefix}/{device_id}"
        self.fleet_capture = f"{cfg.topic_prefix}/all/capture"
        self.ha_status = f"{cfg.discovery.prefix}/status"
        self._on_command = on_command
        self._on_error = on_error
        self._on_connected = on_connected
        self._connected = threading.Event()
        self._subscribed = threading.Event()  # commands can arrive only after the SUBACK
        self._stopping = False
        self._inflight: list[paho.MQTTMessageInfo] = []
        self._inflight_lock = threading.Lock()
        # command topics on which a retained message was found: with MQTT 3.1.1 the
        # broker forwards the empty message that clears it without the retain flag
        self._retained_seen: set[str] = set()
        self.connects = 0
        self.failures = 0  # connection attempts that failed since the last success
        # every attempt while few, then one line in ten: an absent broker must not flood the journal
        self._fail_log = Throttle(every=10, first=3)
        self.last_error: str | None = None
        self.v5 = cfg.protocol == "5"
        client_id = self.client_id = cfg.client_id or f"edgeportrait-{device_id}"
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=MQTTProtocolVersion.MQTTv5 if self.v5 else MQTTProtocolVersion.MQTTv311,
        )
        self.client.will_set(self.topic("status"), STATUS_OFFLINE, qos=1, retain=True)
        if cfg.username:
            self.client.username_pw_set(cfg.username, read_password(cfg))
        if cfg.tls.enabled:
            self._setup_tls()
        self.client.reconnect_delay_set(
            min_delay=max(1, round(cfg.reconnect_min_s)),
            max_delay=max(1, round(max(cfg.reconnect_min_s, cfg.reconnect_max_s))),
        )
        self.client.on_connect = self._handle_connect
        self.client.on_disconnect = self._handle_disconnect
        self.client.on_connect_fail = self._handle_connect_fail
        self.client.on_message = self._handle_message
        self.client.on_subscribe = self._handle_subscribe

    def _setup_tls(self) -> None:
        tls = self.cfg.tls
        for name in ("ca_file", "cert_file", "key_file"):
            p = getattr(tls, name)
            if p is not None and not Path(p).is_file():
                raise FatalError(f"mqtt.tls.{name}: no such file: {p}")
        if (tls.cert_file is None) != (tls.key_file is None):
            raise FatalError("mqtt.tls: cert_file and key_file go together")
        try:
            self.client.tls_set(
                ca_certs=str(tls.ca_file) if tls.ca_file else None,
                certfile=str(tls.cert_file) if tls.cert_file else None,
                keyfile=str(tls.key_file) if tls.key_file else None,
                cert_reqs=ssl.CERT_REQUIRED,
                tls_version=ssl.PROTOCOL_TLS_CLIENT,
            )
        except (ssl.SSLError, OSError, ValueError) as e:
            raise FatalError(f"mqtt.tls: cannot load certificates: {e}") from None
        if tls.insecure:
            self.client.tls_insecure_set(True)

    # -- topics -------------------------------------------------------------

    def topic(self, suffix: str) -> str:
        return f"{self.base}/{suffix}"

    def subscriptions(self) -> list[tuple[str, CommandKind | str]]:
        """(topic, kind) pairs this daemon listens to — nothing else."""
        subs: list[tuple[str, CommandKind | str]] = [
            (self.topic("capture"), CommandKind.CAPTURE),
            (self.fleet_capture, CommandKind.CAPTURE),
            (self.topic("settings/set"), CommandKind.SETTINGS),
            (self.topic("health/get"), CommandKind.HEALTH),
        ]
        if self.cfg.discovery.enabled:
            subs.append((self.ha_status, CommandKind.HA_STATUS))
        if self.instance is not None:
            subs.append((self.topic("health"), OWN_HEALTH))  # not a command: who else publishes here?
        return subs

    # -- lifecycle ----------------------------------------------------------

    def start(self) -> None:
        """Connect in the background; a broker that is absent is retried with backoff."""
        logger.info(
            "MQTT: connecting to %s:%d (MQTT %s%s) as %s",
            self.cfg.host,
            self.cfg.port,
            self.cfg.protocol,
            ", TLS" if self.cfg.tls.enabled else "",
            self.base,
        )
        self.client.connect_async(self.cfg.host, self.cfg.port, keepalive=self.cfg.keepalive_s)
        self.client.loop_start()

    def stop(self, timeout: float = 3.0) -> None:
        """Publish ``stopped``, wait briefly for it to be acknowledged, disconnect."""
        self._stopping = True
        deadline = time.monotonic() + timeout
        if self._connected.is_set():
            info = self.client.publish(self.topic("status"), STATUS_STOPPED, qos=1, retain=True)
            while not info.is_published() and time.monotonic() < deadline and self._connected.is_set():
                time.sleep(0.02)
        self.client.disconnect()
        self.client.loop_stop()
        self._connected.clear()
        logger.info("MQTT: disconnected")

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def wait_connected(self, timeout: float | None = None) -> bool:
        """Wait until connected and subscribed (so commands sent now are received)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        if not self._connected.wait(timeout):
            return False
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        return self._subscribed.wait(left) and self._connected.is_set()

    @property
    def pending(self) -> int:
        """QoS 1 messages handed to the client and not yet acknowledged by the broker."""
        with self._inflight_lock:
            self._inflight = [i for i in self._inflight if not i.is_published()]
            return len(self._inflight)

    # -- publishing ---------------------------------------------------------

    def publish(
        self,
        topic: str,
        payload: bytes | str,
        *,
        qos: int = 1,
        retain: bool = False,
        correlation_data: bytes | None = None,
    ) -> paho.MQTTMessageInfo:
        props = None
        if correlation_data is not None and self.v5:
            props = Properties(PacketTypes.PUBLISH)
            props.CorrelationData = correlation_data
        info = self.client.publish(topic, payload, qos=qos, retain=retain, properties=props)
        if qos > 0:
            with self._inflight_lock:
                self._inflight.append(info)
        return info

    # -- paho callbacks (network thread: must not block) --------------------

    def _handle_connect(self, client: paho.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            # A wrong password or a refused client id: paho retries with backoff;
            # say clearly why, once per attempt, without the secret.
            self.last_error = f"broker refused the connection: {reason}"
            logger.error("MQTT: %s (retrying with backoff)", self.last_error)
            return
        self.connects += 1
        if self.failures:
            # the broker was away in between (a restart): not a connection taken over
            self._short_lived = 0
        self.failures = 0
        self._fail_log.reset()
        self.last_error = None
        self._connected_at = time.monotonic()
        self._subscribed.clear()
        _no_delay(client)
        self._connected.set()
        logger.info("MQTT: connected to %s:%d", self.cfg.host, self.cfg.port)
        if self.v5:
            # retain-as-published: a live message keeps its retain flag, so the empty
            # retained message that clears a command is told apart from an empty capture
            opts = SubscribeOptions(qos=1, retainAsPublished=True)
            own = SubscribeOptions(qos=1, noLocal=True)  # other daemons' health, not our own echo
            client.subscribe([(t, own if k == OWN_HEALTH else opts) for t, k in self.subscriptions()])
        else:
            client.subscribe([(t, 1) for t, _ in self.subscriptions()])

    def _handle_subscribe(self, client: paho.Client, userdata: Any, mid: int, reasons: Any, props: Any) -> None:
        # `online` only once the broker confirmed the subscriptions: a client that
        # sends a capture as soon as it sees `online` must not have it fall on deaf ears
        self._subscribed.set()
        client.publish(self.topic("status"), STATUS_ONLINE, qos=1, retain=True)
        if self._on_connected is not None:
            try:
                self._on_connected()
            except Exception:
                logger.exception("MQTT: on-connect hook failed")

    def _handle_connect_fail(self, client: paho.Client, userdata: Any) -> None:
        self.failures += 1
        # paho calls this from inside its `except OSError` around the connect, so
        # the exception (refused, DNS, TLS verification...) is still the one being
        # handled; it is the only place the reason is available.
        exc = sys.exc_info()[1]
        reason = _describe_connect_error(exc) if exc is not None else "unreachable"
        self.last_error = f"broker {self.cfg.host}:{self.cfg.port}: {reason}"
        if self._fail_log.allow():
            logger.warning("MQTT: %s (attempt %d); retrying with backoff", self.last_error, self.failures)

    def _handle_disconnect(
        self, client: paho.Client, userdata: Any, flags: Any, reason: Any, props: Any
    ) -> None:
        was = self._connected.is_set()
        self._connected.clear()
        self._subscribed.clear()
        if not was and not self._stopping and self.last_error is None:
            # Closed before CONNACK: with TLS this is the broker refusing our
            # client certificate after the handshake.
            where = f"{self.cfg.host}:{self.cfg.port}"
            self.last_error = f"broker {where} closed the connection before accepting it ({reason})"
            logger.warning("MQTT: %s; retrying with backoff", self.last_error)
        if not self._stopping and was:
            lasted = time.monotonic() - self._connected_at
            self._short_lived = self._short_lived + 1 if lasted < TAKEOVER_WINDOW_S else 0
            if self._short_lived >= TAKEOVERS_TO_SUSPECT:
                self._suspect_duplicate(
                    f"the broker closed the connection {self._short_lived} times in a row within "
                    f"{TAKEOVER_WINDOW_S:.0f} s of connecting"
                )
            if self.duplicate is not None:
                self._back_off()
                logger.warning(
                    "MQTT: connection lost (%s) after %.1f s; another daemon uses device_id %s: "
                    "reconnecting in %d s", reason, lasted, self.device_id, self._backoff,
                )
            else:
                self._reset_backoff()
                logger.warning("MQTT: connection lost (%s); reconnecting with backoff", reason)

    # -- a second daemon with this device id --------------------------------------

    @property
    def duplicate(self) -> str | None:
        """Why another daemon is believed to use this device id (for health), or None."""
        if self._duplicate_why is None or time.monotonic() - self._duplicate_at > DUPLICATE_FORGET_S:
            return None
        return self._duplicate_why

    def _suspect_duplicate(self, evidence: str) -> None:
        first = self.duplicate is None
        self._duplicate_at = time.monotonic()
        self._duplicate_why = (
            f"another daemon seems to use device_id {self.device_id!r} "
            f"(client id {self.client_id!r}): {evidence}. Two booths flashed from the same "
            "image? Give each its own device_id; until then this one reconnects less and less often"
        )
        if first:
            logger.error("MQTT: %s", self._duplicate_why)

    def _back_off(self) -> None:
        self._backoff = min(max(2 * self._backoff, DUPLICATE_BACKOFF_MIN_S), DUPLICATE_BACKOFF_MAX_S)
        self.client.reconnect_delay_set(min_delay=self._backoff, max_delay=self._backoff)

    def _reset_backoff(self) -> None:
        if self._backoff:
            self._backoff = 0
            self.client.reconnect_delay_set(
                min_delay=max(1, round(self.cfg.reconnect_min_s)),
                max_delay=max(1, round(max(self.cfg.reconnect_min_s, self.cfg.reconnect_max_s))),
            )

    def _check_own_health(self, msg: paho.MQTTMessage) -> None:
        """A health report on our topic from another start of edgeportrait, newer than ours: a duplicate."""
        try:
            data = json.loads(bytes(msg.payload).decode("utf-8"))
            other = data.get("instance")
            ts = dt.datetime.fromisoformat(str(data.get("ts")).replace("Z", "+00:00")).timestamp()
        except (ValueError, AttributeError, TypeError, UnicodeDecodeError):
            return
        # an older report is this device's previous life (a restart), not another daemon
        if isinstance(other, str) and other != self.instance and ts >= self._started_wall - 1:
            self._suspect_duplicate(f"its health reports (instance {shown(other, 40)}) appear on {self.base}")

    def _is_retained_clear(self, msg: paho.MQTTMessage) -> bool:
        """An empty message that clears a retained one (never a command)."""
        if len(msg.payload) != 0:
            return False
        if msg.retain:  # found on the broker, or live with retain-as-published (MQTT 5)
            self._retained_seen.discard(msg.topic)
            return True
        # MQTT 3.1.1 forwards a live clear without the flag: it is a clear when a
        # retained command was seen on that topic (and an empty capture otherwise)
        if msg.topic in self._retained_seen:
            self._retained_seen.discard(msg.topic)
            return True
        return False

    def _handle_message(self, client: paho.Client, userdata: Any, msg: paho.MQTTMessage) -> None:
        kind = next((k for t, k in self.subscriptions() if t == msg.topic), None)
        if kind is None:
            logger.debug("MQTT: ignoring message on %s", msg.topic)
            return
        if not isinstance(kind, CommandKind):  # OWN_HEALTH
            self._check_own_health(msg)
            return
        if kind != CommandKind.HA_STATUS and self._is_retained_clear(msg):
            # `mosquitto_pub -r -n` (the cure for a `retained` error) is not a command,
            # on any topic: on the fleet topic it would make every booth take a picture
            logger.info("MQTT: retained message on %s cleared (not a command)", shown(msg.topic))
            return
        if msg.retain and kind != CommandKind.HA_STATUS:
            # A retained command left on the broker would re-fire on every
            # reconnect; commands are events, not state.
            self._retained_seen.add(msg.topic)
            cid = peek_payload_id(bytes(msg.payload)) if len(msg.payload) <= self.cfg.max_message_bytes else None
            self._on_error(
                cid,
                "retained",
                f"{msg.topic}: retained commands are not executed "
                "(clear it: mosquitto_pub -r -n -t TOPIC; send commands without the retain flag)",
            )
            return
        if len(msg.payload) > self.cfg.max_message_bytes:
            self._on_error(
                None, "too_large", f"{msg.topic}: {len(msg.payload)} bytes; the limit is {self.cfg.max_message_bytes}"
            )
            return
        response_topic = None
        correlation = None
        if self.v5 and msg.properties is not None:
            response_topic = getattr(msg.properties, "ResponseTopic", None)
            correlation = getattr(msg.properties, "CorrelationData", None)
            if response_topic is not None and ("#" in response_topic or "+" in response_topic):
                response_topic = None  # wildcards are not publishable topics
        try:
            self._on_command(Command(kind, bytes(msg.payload), msg.topic, response_topic, correlation))
        except Exception as e:  # the daemon never stops because of a message
            logger.exception("MQTT: handling %s failed", msg.topic)
            self._on_error(None, "internal", f"{type(e).__name__}: {e}")
