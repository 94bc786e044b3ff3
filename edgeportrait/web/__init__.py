"""The kiosk: a web page with the live portrait preview, a capture button, countdown and review.

The daemon owns a :class:`FrameBroadcaster` (its compose thread publishes
preview JPEGs through a :class:`PreviewEncoder`), an :class:`EventHub`
(it publishes ``status``, ``countdown``, ``portrait`` and ``error``) and
implements :class:`KioskBackend`; :class:`KioskServer` serves them over
HTTP. See docs/kiosk.md.
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
