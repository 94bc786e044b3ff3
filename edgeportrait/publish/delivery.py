"""Results from the on-disk spool to the broker, in ``seq`` order, one at a time.

A result leaves the spool only when the broker has acknowledged its
``B/result`` message (QoS 1 PUBACK). While the broker is away the deliverer
waits; paho resends an unacknowledged message after reconnecting, so a
subscriber may see a duplicate (same ``seq``), never a gap.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable

from edgeportrait.logsafe import shown
from edgeportrait.publish.mqtt import MqttLink
from edgeportrait.results import Spool, SpoolEntry

logger = logging.getLogger(__name__)


class Deliverer:
    def __init__(self, link: MqttLink, spool: Spool, committed: Callable[[], int]) -> None:
        self.link = link
        self.spool = spool
        # the highest seq whose capture is complete: an entry above it is still being
        # finished (its number not yet on disk) and waits, so a crash cannot leave a
        # delivered result whose number is reused
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
        """Wait until the spool is empty (for a clean stop); False if time ran out."""
        deadline = time.monotonic() + timeout
        while len(self.spool) and time.monotonic() < deadline and self.link.connected:
            time.sleep(0.05)
        return len(self.spool) == 0

    def _run(self) -> None:
        while not self._stop.is_set():
            if not self.link.connected:
                self._stop.wait(0.2)
                continue
            entry = self.spool.oldest()
            if entry is None or entry.seq > self._committed():
                self.spool.wait(0.05 if entry is not None else 1.0)
                continue
            try:
                acked = self._send(entry)
            except Exception:
                logger.exception("delivering result seq %d failed; will retry", entry.seq)
                self._stop.wait(1.0)
                continue
            if acked:
                self.spool.remove(entry.seq)
                self.delivered += 1

    def _send(self, entry: SpoolEntry) -> bool:
        link = self.link
        try:
            image = entry.image()
        except OSError as e:
            logger.error("spool image for seq %d unreadable (%s); sending the result without it", entry.seq, e)
            image = None
        # the image first, so a client that reacts to B/result finds the matching picture retained
        if image is not None:
            link.publish(link.topic("result/image"), image, retain=True)
        payload = json.dumps(entry.result, separators=(",", ":"))
        info = link.publish(link.topic("result"), payload)
        if entry.response_topic:
            link.publish(entry.response_topic, payload, correlation_data=entry.correlation_data)
        # paho keeps an unacknowledged QoS 1 message and resends it after a
        # reconnect, so waiting on this one message covers an outage too.
        while not info.is_published():
            if self._stop.wait(0.05):
                return False
        logger.info("result seq %d (id %s) delivered", entry.seq, shown(entry.result.get("id")))
        return True
