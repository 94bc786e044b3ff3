"""Events for the kiosk page, as Server-Sent Events (``GET /events``).

The daemon calls :meth:`EventHub.publish` from any thread; each subscriber
(one /events connection) has a small bounded queue. A subscriber that falls
that far behind is dropped — its connection ends and the browser's
EventSource reconnects — rather than making the publisher wait or letting
the queue grow. The newest ``status`` event is kept and replayed first to a
new subscriber, so a page that (re)connects knows at once whether the camera
is offline.

Events (``data`` is one JSON object):

- ``status``    what :meth:`KioskBackend.kiosk_state` returns, whenever it changes
- ``countdown`` ``{"id", "seconds", "trigger"}`` a capture was triggered (from anywhere)
- ``portrait``  ``{"id", "seq"}`` a new portrait is on disk (the page shows ``/latest.jpg?seq=N``)
- ``error``     ``{"id", "error", "detail"}`` a capture failed or was refused
"""

from __future__ import annotations

import contextlib
import itertools
import json
import queue
import re
import threading
from dataclasses import dataclass, field
from typing import Any

# Seconds between keep-alive comments: proxies and NAT boxes close a connection
# that is silent for a minute or so, and a dead client is found on the next write.
KEEPALIVE_S = 15.0
QUEUE_SIZE = 32
MAX_SUBSCRIBERS = 16
# What the browser waits before reconnecting an EventSource (ms), sent once per connection.
RETRY_MS = 2000

_NAME = re.compile(r"^[a-z][a-z_]{0,31}$")


class SubscribersFull(Exception):
    """``max_subscribers`` event streams are already open."""


def sse(event: str, data: dict[str, Any]) -> bytes:
    """One SSE message. ``json.dumps`` never writes a raw newline, so ``data`` is one line."""
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


KEEPALIVE = b": keep-alive\n\n"


@dataclass
class Subscription:
    id: int
    queue: queue.Queue[bytes | None] = field(default_factory=lambda: queue.Queue(QUEUE_SIZE))
    dropped: bool = False  # fell behind: the connection is ended
    replayed: bool = False  # the newest status was put first in its queue
    closed: bool = False

    def get(self, timeout: float) -> bytes | None:
        """The next message, or None on timeout or once closed (check ``closed``)."""
        if self.closed:
            return None
        try:
            return self.queue.get(timeout=timeout)
        except queue.Empty:
            return None


class EventHub:
    def __init__(self, max_subscribers: int = MAX_SUBSCRIBERS, queue_size: int = QUEUE_SIZE) -> None:
        self.max_subscribers = max_subscribers
        self._queue_size = queue_size
        self._lock = threading.Lock()
        self._subs: dict[int, Subscription] = {}
        self._ids = itertools.count(1)
        self._status: bytes | None = None
        self.published = 0
        self.dropped = 0
        self.refused = 0

    def publish(self, event: str, data: dict[str, Any]) -> None:
        """Send ``event`` to every subscriber now (never blocks); a ``status`` is also kept for new ones."""
        if not _NAME.match(event):
            raise ValueError(f"not an event name: {event!r}")
        msg = sse(event, data)
        with self._lock:
            self.published += 1
            if event == "status":
                self._status = msg
            for sub in list(self._subs.values()):
                try:
                    sub.queue.put_nowait(msg)
                except queue.Full:
                    self._drop(sub)

    def _drop(self, sub: Subscription) -> None:
        # lock held. The subscriber's thread finds closed and ends its connection;
        # None wakes it if it is waiting (there is room: its queue was just emptied).
        sub.dropped = sub.closed = True
        self.dropped += 1
        self._subs.pop(sub.id, None)
        with contextlib.suppress(queue.Full, queue.Empty):
            while True:
                sub.queue.get_nowait()
        sub.queue.put_nowait(None)

    def subscribe(self) -> Subscription:
        """A new subscriber, the newest ``status`` already in its queue; ``SubscribersFull`` beyond the bound."""
        with self._lock:
            if len(self._subs) >= self.max_subscribers:
                self.refused += 1
                raise SubscribersFull(f"{self.max_subscribers} event streams already open")
            sub = Subscription(next(self._ids), queue.Queue(self._queue_size))
            if self._status is not None:
                sub.queue.put_nowait(self._status)
                sub.replayed = True
            self._subs[sub.id] = sub
            return sub

    def has_status(self) -> bool:
        with self._lock:
            return self._status is not None

    def unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            sub.closed = True
            self._subs.pop(sub.id, None)

    def close_subscribers(self) -> None:
        """End every event stream (the server is stopping)."""
        with self._lock:
            for sub in list(self._subs.values()):
                sub.closed = True
                with contextlib.suppress(queue.Full, queue.Empty):
                    sub.queue.put_nowait(None)
            self._subs.clear()

    @property
    def subscribers(self) -> int:
        with self._lock:
            return len(self._subs)

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "subscribers": len(self._subs),
                "published": self.published,
                "dropped": self.dropped,
                "refused": self.refused,
            }

