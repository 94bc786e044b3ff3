"""Results from the on-disk spool to the broker, in ``seq`` order, one at a time.

A result is sent as soon as its spool entry is on disk, and leaves the spool
only when the broker has acknowledged its ``B/result`` message (QoS 1 PUBACK)
*and* its number is recorded in the seq file (``committed``): until then the
spool entry is what tells a start after a crash that the number was used. While
the broker is away the deliverer waits; paho resends an unacknowledged message
after reconnecting, so a subscriber may see a duplicate (same ``seq``), never a
gap.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import paho.mqtt.client as paho

from edgeportrait.logsafe import shown
from edgeportrait.messages import ResultMessage
from edgeportrait.publish.mqtt import MqttLink
from edgeportrait.publish.spool import Spool, SpoolEntry

logger = logging.getLogger(__name__)


def send_result(
    link: MqttLink,
    result: ResultMessage,
    image: bytes | None,
    response_topic: str | None,
    correlation_data: bytes | None,
) -> paho.MQTTMessageInfo:
    """Publish one result: ``B/result/image`` (retained) first, then ``B/result`` and the response topic.

    The image goes first so a client that reacts to ``B/result`` finds the matching
    picture retained. Returns the ``B/result`` message's info (its PUBACK is the delivery).
    """
    if image is not None:
        link.publish(link.topic("result/image"), image, retain=True)
    payload = result.json_bytes()
    info = link.publish(link.topic("result"), payload)
    if response_topic:
        link.publish(response_topic, payload, correlation_data=correlation_data)
    return info


class Deliverer:
    def __init__(self, link: MqttLink, spool: Spool, committed: Callable[[], int]) -> None:
        self.link = link
        self.spool = spool
        # the highest seq recorded in the seq file: an acknowledged entry above it stays
        # in the spool until it is, so a crash cannot leave a number used but unrecorded
        self._committed = committed
        self.delivered = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mqtt-delivery", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Stop waiting; what is not acknowledged stays in the spool for the next start."""
        self._stop.set()
        self.spool.wake()
        self._thread.join(timeout)

    def drain(self, timeout: float) -> bool:
        """Wait until the spool is empty (for a clean stop); False if time ran out or the broker is away."""
        return self.spool.wait_empty(timeout, give_up=lambda: not self.link.connected)

    def _run(self) -> None:
        sent: int | None = None  # the seq sent and acknowledged, waiting for its number to be recorded
        while not self._stop.is_set():
            if not self.link.wait_connected(0.5):
                sent = None  # resent after the reconnect (paho resends it too: a duplicate at worst)
                continue
            entry = self.spool.oldest()
            if entry is None:
                self.spool.wait(1.0)
                continue
            if sent != entry.seq:
                try:
                    if not self._send(entry):
                        continue
                except Exception:
                    logger.exception("delivering result seq %d failed; will retry", entry.seq)
                    self._stop.wait(1.0)
                    continue
                sent = entry.seq
            if entry.seq > self._committed():
                # its number is being written (an fsync), or the seq file is failing (durable_now
                # retries it at most once a second). A short wait, not a long one woken by
                # MqttOutlet.committed: the seq is read outside the spool's lock, so that wake-up
                # could fall between the check and the wait and cost the whole timeout.
                self.spool.wait(0.01)
                continue
            self.spool.remove(entry.seq)
            self.delivered += 1
            sent = None

    def _send(self, entry: SpoolEntry) -> bool:
        try:
            image = entry.image()
        except OSError as e:
            logger.error("spool image for seq %d unreadable (%s); sending the result without it", entry.seq, e)
            image = None
        info = send_result(self.link, entry.result, image, entry.response_topic, entry.correlation_data)
        # paho keeps an unacknowledged QoS 1 message and resends it after a
        # reconnect, so waiting on this one message covers an outage too.
        while not info.is_published():
            if self._stop.is_set():
                return False
            try:
                info.wait_for_publish(0.5)
            except (RuntimeError, ValueError):  # not connected now: paho resends once it is
                self._stop.wait(0.2)
        logger.info("result seq %d (id %s) delivered", entry.seq, shown(entry.result.id))
        return True
