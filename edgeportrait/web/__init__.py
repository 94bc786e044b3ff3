"""The kiosk: a web page with the live portrait preview, a capture button, countdown and review.

The daemon owns a :class:`FrameBroadcaster` (its compose thread publishes
preview JPEGs through a :class:`PreviewEncoder`), an :class:`EventHub`
(it publishes ``status``, ``countdown``, ``portrait`` and ``error``) and
implements :class:`KioskBackend`; :class:`KioskServer` serves them over
HTTP. See docs/kiosk.md.

Wiring, in the daemon (start after the pipeline, stop before it)::

    frames = FrameBroadcaster(cfg.http.max_viewers)
    events = EventHub()
    preview = PreviewEncoder(frames, lambda: self.cfg.preview)
    # compose thread, per stream frame: compose only when a preview is due
    #     if preview.due(): preview.offer(compositor.compose(frame.image, mask), frame.ts)
    # captures: events.publish("countdown", {"id", "seconds", "trigger"}) when a countdown
    #     starts, ("portrait", {"id", "seq"}) when the file is written, ("error", {...}) on failure;
    # camera/model changes: events.publish("status", backend.kiosk_state())
    server = KioskServer(cfg.http, frames, events, backend)   # backend: a KioskBackend
    server.start()   # FatalError when the port is taken or the token file unreadable
    ...
    server.stop()
"""

from edgeportrait.web.backend import CaptureRefused, KioskBackend
from edgeportrait.web.events import EventHub, SubscribersFull
from edgeportrait.web.frames import FrameBroadcaster, ViewersFull
from edgeportrait.web.preview import PreviewEncoder
from edgeportrait.web.server import KioskServer, read_token

__all__ = [
    "CaptureRefused",
    "EventHub",
    "FrameBroadcaster",
    "KioskBackend",
    "KioskServer",
    "PreviewEncoder",
    "SubscribersFull",
    "ViewersFull",
    "read_token",
]
