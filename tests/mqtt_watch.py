"""A test-side MQTT client that records what crosses the wire, for assertions."""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties


@dataclass
class Msg:
    topic: str
    payload: bytes
    retain: bool
    correlation_data: bytes | None = None


class Watcher:
    """Subscribes to topics and keeps every message; waits for one that matches."""

    def __init__(self, host: str, port: int, topics: list[str], *, v5: bool = True) -> None:
        self.messages: list[Msg] = []
        self._cond = threading.Condition()
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"test-{uuid.uuid4().hex[:8]}",
            protocol=MQTTProtocolVersion.MQTTv5 if v5 else MQTTProtocolVersion.MQTTv311,
        )
        self.client.on_message = self._on_message
        self._subscribed = threading.Event()
        self.client.on_subscribe = lambda *a: self._subscribed.set()
        self.client.connect(host, port, keepalive=30)
        # like the daemon: no Nagle delay on small packets, so latencies measured with this
        # client are the daemon's, not TCP's delayed-ACK timer
        self.client.socket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.client.loop_start()
        self.client.subscribe([(t, 1) for t in topics])
        if not self._subscribed.wait(10):
            raise RuntimeError("test subscriber: SUBACK not received")

    def _on_message(self, client: paho.Client, userdata: object, msg: paho.MQTTMessage) -> None:
        corr = getattr(msg.properties, "CorrelationData", None) if msg.properties else None
        with self._cond:
            self.messages.append(Msg(msg.topic, bytes(msg.payload), bool(msg.retain), corr))
            self._cond.notify_all()

    def wait_for(
        self, pred: Callable[[Msg], bool], timeout: float = 20.0, start: int = 0
    ) -> Msg:
        """The first message (from index ``start``) matching ``pred``; fails after ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for m in self.messages[start:]:
                    if pred(m):
                        return m
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = [(m.topic, m.payload[:80]) for m in self.messages[-10:]]
                    raise AssertionError(f"no matching message within {timeout}s; last seen: {seen}")
                self._cond.wait(left)

    def mark(self) -> int:
        with self._cond:
            return len(self.messages)

    def publish(
        self,
        topic: str,
        payload: bytes | str,
        *,
        retain: bool = False,
        response_topic: str | None = None,
        correlation_data: bytes | None = None,
    ) -> None:
        props = None
        if response_topic is not None or correlation_data is not None:
            props = Properties(PacketTypes.PUBLISH)
            if response_topic is not None:
                props.ResponseTopic = response_topic
            if correlation_data is not None:
                props.CorrelationData = correlation_data
        info = self.client.publish(topic, payload, qos=1, retain=retain, properties=props)
        info.wait_for_publish(10)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
