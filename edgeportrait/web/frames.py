"""Preview frames from one producer to many viewers: encoded once, newest first, nobody waits.

The producer (the daemon's compose thread) publishes each JPEG once;
:class:`FrameBroadcaster` frames it as a ``multipart/x-mixed-replace`` part
once, and every viewer thread sends that same bytes object. A viewer waits on
a Condition for a frame newer than the one it sent last and then sends the
newest there is: a slow viewer skips frames, it never holds up the producer
or the other viewers (``publish`` only swaps a reference under a lock).

The producer composes and encodes only while a frame is :meth:`wanted`: a
viewer is connected, or a snapshot was asked for in the last few seconds.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from edgeportrait.health import RateMeter, Window

# The multipart boundary of /stream.mjpg. Any token that cannot occur at the
# start of a line inside a JPEG part would do; Content-Length per part makes
# the boundary a formality for clients that read it (browsers, HA, ffmpeg).
BOUNDARY = "edgeportraitframe"

# /snapshot.jpg keeps frames coming this long after a request, so a client
# polling every few seconds (Home Assistant's still image) gets fresh frames.
SNAPSHOT_HOLD_S = 5.0


# A frame older than this is not shown to a viewer that just connected.
STALE_S = 1.0


class Frame(NamedTuple):
    jpeg: bytes
    captured_ts: float  # time.monotonic() when the camera took it
    n: int  # 1, 2, 3… in publish order
    part: bytes  # the multipart part: headers, JPEG, CRLF


class ViewersFull(Exception):
    """``max_viewers`` are already watching."""


@dataclass
class Viewer:
    """One /stream.mjpg connection: what it was sent."""

    id: int
    since: float = field(default_factory=time.monotonic)
    last_n: int = 0  # the newest frame it was sent
    sent: int = 0
    skipped: int = 0  # frames published while it was still sending an older one
    closed: bool = False


def multipart_part(jpeg: bytes) -> bytes:
    head = f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n".encode("ascii")
    return head + jpeg + b"\r\n"


class FrameBroadcaster:
    def __init__(
        self,
        max_viewers: int,
        snapshot_hold_s: float = SNAPSHOT_HOLD_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_viewers = max_viewers
        self._hold_s = snapshot_hold_s
        self._clock = clock
        self._cond = threading.Condition()
        self._frame: Frame | None = None
        self._viewers: dict[int, Viewer] = {}
        self._ids = itertools.count(1)
        self._snapshot_until = -1.0
        self.published = 0
        self.sent = 0
        self.refused = 0  # viewers turned away: max_viewers reached
        self.dropped = 0  # viewers whose socket stalled (see KioskServer) or failed
        self.latency_ms = Window()
        self.fps = RateMeter()  # frames published per second

    # -- producer ------------------------------------------------------------------

    def wanted(self) -> bool:
        """True while a viewer is connected or a snapshot was asked for lately: compose and encode then."""
        with self._cond:
            return bool(self._viewers) or self._clock() < self._snapshot_until

    def publish(self, jpeg: bytes, captured_ts: float) -> int:
        """Hand over one encoded frame (never blocks on viewers). Returns its number."""
        part = multipart_part(jpeg)
        with self._cond:
            self.published += 1
            self._frame = Frame(jpeg, captured_ts, self.published, part)
            self._cond.notify_all()
        self.fps.tick()
        return self.published

    def latest(self) -> tuple[bytes, float, int] | None:
        """The newest frame as ``(jpeg, captured_ts, n)``, or None before the first."""
        f = self._frame
        return None if f is None else (f.jpeg, f.captured_ts, f.n)

    # -- snapshots -------------------------------------------------------------------

    def snapshot(self, timeout: float = 1.0, max_age_s: float = 1.0) -> Frame | None:
        """The latest frame for /snapshot.jpg; waits up to ``timeout`` for a fresh one when it is older.

        Asking marks frames as wanted for ``snapshot_hold_s``, so the producer
        (idle while nobody watches) starts again; the first request after a
        quiet spell waits for it instead of getting a picture from minutes ago.
        """
        deadline = self._clock() + timeout
        with self._cond:
            self._snapshot_until = max(self._snapshot_until, self._clock() + self._hold_s)
            while True:
                f = self._frame
                if f is not None and self._clock() - f.captured_ts <= max_age_s:
                    return f
                left = deadline - self._clock()
                if left <= 0:
                    return f
                self._cond.wait(left)

    # -- viewers ---------------------------------------------------------------------

    def register(self) -> Viewer:
        """A new viewer, or ``ViewersFull``. The caller calls :meth:`unregister` when it goes."""
        with self._cond:
            if len(self._viewers) >= self.max_viewers:
                self.refused += 1
                raise ViewersFull(f"{self.max_viewers} viewers already watching")
            v = Viewer(next(self._ids))
            f = self._frame
            if f is not None and self._clock() - f.captured_ts > STALE_S:
                # left over from before a quiet spell (the producer idles while nobody watches):
                # start with the next frame rather than show a moment from minutes ago
                v.last_n = f.n
            self._viewers[v.id] = v
            self._cond.notify_all()
            return v

    def unregister(self, viewer: Viewer, *, dropped: bool = False) -> None:
        with self._cond:
            viewer.closed = True
            if self._viewers.pop(viewer.id, None) is not None and dropped:
                self.dropped += 1
            self._cond.notify_all()

    def next_frame(self, viewer: Viewer, timeout: float) -> Frame | None:
        """The newest frame after the one ``viewer`` was sent last; None on timeout or once it is closed."""
        deadline = self._clock() + timeout
        with self._cond:
            while not viewer.closed:
                f = self._frame
                if f is not None and f.n > viewer.last_n:
                    if viewer.last_n:
                        viewer.skipped += f.n - viewer.last_n - 1
                    viewer.last_n = f.n
                    return f
                left = deadline - self._clock()
                if left <= 0:
                    return None
                self._cond.wait(left)
        return None

    def sent_frame(self, viewer: Viewer, frame: Frame, now: float | None = None) -> None:
        """``frame``'s last byte went to ``viewer``'s socket: count it, record capture-to-socket latency."""
        now = self._clock() if now is None else now
        self.latency_ms.add((now - frame.captured_ts) * 1000.0)
        with self._cond:
            viewer.sent += 1
            self.sent += 1

    def close_viewers(self) -> None:
        """Wake every viewer and tell it to go (the server is stopping)."""
        with self._cond:
            for v in self._viewers.values():
                v.closed = True
            self._viewers.clear()
            self._cond.notify_all()

    def wait_viewers(self, count: int, timeout: float) -> bool:
        """Wait until exactly ``count`` viewers are connected (False on timeout)."""
        with self._cond:
            return self._cond.wait_for(lambda: len(self._viewers) == count, timeout)

    @property
    def viewers(self) -> int:
        with self._cond:
            return len(self._viewers)

    def stats(self) -> dict[str, Any]:
        """Figures for health and benchmarks: frames published and sent, latency capture → socket."""
        with self._cond:
            viewers = [
                {"id": v.id, "sent": v.sent, "skipped": v.skipped, "connected_s": round(self._clock() - v.since, 1)}
                for v in self._viewers.values()
            ]
            published, sent, refused, dropped = self.published, self.sent, self.refused, self.dropped
        return {
            "viewers": len(viewers),
            "max_viewers": self.max_viewers,
            "fps": self.fps.rate(),
            "published": published,
            "sent": sent,
            "refused": refused,
            "dropped": dropped,
            "latency_ms_p50": self.latency_ms.percentile(50),
            "latency_ms_p95": self.latency_ms.percentile(95),
            "per_viewer": viewers,
        }
