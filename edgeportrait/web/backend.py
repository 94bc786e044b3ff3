"""What the kiosk server needs from the daemon: :class:`KioskBackend`, a small Protocol.

The server knows nothing about cameras, models or MQTT; the daemon
implements these four methods (tests use a fake). Everything the page shows
comes through them or through the :class:`~edgeportrait.web.events.EventHub`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, runtime_checkable


class CaptureRefused(Exception):
    """A capture that cannot be taken now; ``code`` says why, ``detail`` in words.

    ``busy`` (captures already waiting) → HTTP 409; ``stopping`` (the daemon is
    going down) → 503; ``not_allowed`` (captures from the page are switched
    off) → 403; any other code → 409. The codes are those of ``B/error``, so
    the daemon can turn its ``CommandError`` into this one as it is.
    """

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


@runtime_checkable
class KioskBackend(Protocol):
    def health(self) -> dict[str, Any]:
        """The ``B/health`` report; ``/healthz`` answers 200 when its ``state`` is ``running``, else 503."""
        ...

    def latest_portrait(self) -> Path | None:
        """The newest portrait file (served as ``/latest.jpg``), or None before the first."""
        ...

    def capture(self, countdown_s: float | None) -> str:
        """Queue a capture (trigger ``kiosk``); returns its id. Raises :class:`CaptureRefused`.

        ``countdown_s`` None means the configured ``capture.countdown_s``. The
        daemon announces the countdown and the portrait on the EventHub as for
        any other trigger.
        """
        ...

    def kiosk_state(self) -> dict[str, Any]:
        """What the page shows and needs, in plain words; also the payload of ``status`` events::

            {
              "state": "running",            # starting | running | degraded | stopping
              "camera": "ok",                # ok | stalled | offline
              "message": "",                 # what is wrong, for people ("" when nothing is):
                                             #   "The camera is offline — reconnecting…"
              "model": "landscape INT8 on CPU",
              "fallback": null,              # or e.g. "The NPU failed; running on the CPU"
              "review_s": 5,                 # preview.review_s
              "countdown_s": 3,              # capture.countdown_s
              "capture_allowed": true        # the page shows its capture button
            }
        """
        ...
