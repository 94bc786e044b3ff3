"""The daemon's side of the kiosk: captures become page events, the page's button becomes a capture.

:class:`Booth` is two things the composition root plugs in:

- a ``captures.CaptureOutlet``: a capture's countdown (from any trigger: the
  page, MQTT, the fleet topic, the interval timer), its portrait and its
  failure become ``countdown``, ``portrait`` and ``error`` events on the
  :class:`~edgeportrait.web.events.EventHub`;
- the :class:`~edgeportrait.web.backend.KioskBackend` the server asks for the
  health report, the newest portrait, a capture, and the page's state in
  plain words (also sent as a ``status`` event whenever it changes: the health
  loop hands each report to :meth:`Booth.health_report`, and :meth:`Booth.poke`
  is called when the camera's state, the daemon's state or the settings change;
  the ``kiosk-status`` thread then looks).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgeportrait.captures import CaptureError, CaptureRequest, CaptureService, Portrait
from edgeportrait.config import AppConfig
from edgeportrait.messages import HealthMessage
from edgeportrait.results import CaptureStore
from edgeportrait.web.backend import CaptureRefused
from edgeportrait.web.events import EventHub

logger = logging.getLogger(__name__)

CAMERA_WORDS = {
    "ok": "",
    "stalled": "The camera stopped sending pictures — waiting for it…",
    "offline": "The camera is offline — reconnecting…",
}


def kiosk_words(report: HealthMessage, cfg: AppConfig) -> dict[str, Any]:
    """The page's state in plain words, from one health report (see ``KioskBackend.kiosk_state``)."""
    inf = report.inference
    message = CAMERA_WORDS.get(report.camera.state, f"The camera is {report.camera.state}…")
    if not message and report.state == "starting":
        message = "Starting…"
    if not message and report.state == "stopping":
        message = "Stopping…"
    model = f"{inf.model} {(inf.precision or '').upper()} on {inf.device}" if inf.model else None
    fallback = None
    if inf.device and cfg.model.device not in ("AUTO", inf.device) and inf.fallbacks:
        fallback = f"The {cfg.model.device} is not available; running on the {inf.device}"
    return {
        "state": report.state,
        "camera": report.camera.state,
        "message": message,
        "model": model,
        "fallback": fallback,
        "review_s": cfg.preview.review_s,
        "countdown_s": cfg.capture.countdown_s,
        "capture_allowed": True,
    }


class Booth:
    def __init__(
        self,
        settings: Callable[[], AppConfig],
        events: EventHub,
        captures: CaptureService,
        store: CaptureStore,
        health: Callable[[], HealthMessage],
    ) -> None:
        self._settings = settings
        self.events = events
        self._captures = captures
        self._store = store
        self._health = health
        self._lock = threading.Lock()
        self._latest: Path | None = None
        self._state: dict[str, Any] | None = None
        self._dirty = threading.Event()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="kiosk-status", daemon=True)

    def start(self) -> None:
        self._thread.start()
        self.poke()

    def stop(self) -> None:
        self._stopping = True
        self._dirty.set()
        self._thread.join(2.0)

    def poke(self, *_: object) -> None:
        """Something the page shows may have changed; never blocks (camera lock held, settings lock held)."""
        self._dirty.set()

    def _run(self) -> None:
        while True:
            self._dirty.wait()
            self._dirty.clear()
            if self._stopping:
                return
            try:
                self._status(self.kiosk_state())
            except Exception:
                logger.exception("kiosk status failed")

    # -- KioskBackend -------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        return self._health().model_dump(mode="json")

    def latest_portrait(self) -> Path | None:
        with self._lock:
            latest = self._latest
        if latest is not None and latest.is_file():
            return latest
        return self._store.newest()  # before the first capture of this run, or pruned since

    def capture(self, countdown_s: float | None) -> str:
        req = CaptureRequest(trigger="kiosk", countdown_s=countdown_s)
        try:
            self._captures.submit(req)
        except CaptureError as e:
            raise CaptureRefused(e.code, e.detail) from None
        return req.id

    def kiosk_state(self) -> dict[str, Any]:
        return kiosk_words(self._health(), self._settings())

    # -- status events ---------------------------------------------------------------------

    def health_report(self, report: HealthMessage) -> None:
        """A health sink: a ``status`` event when what the page shows changed."""
        self._status(kiosk_words(report, self._settings()))

    def _status(self, state: dict[str, Any]) -> None:
        with self._lock:
            if state == self._state:
                return
            self._state = state
        self.events.publish("status", state)

    # -- captures.CaptureOutlet --------------------------------------------------------------

    def countdown(self, request: CaptureRequest, seconds: float) -> None:
        self.events.publish("countdown", {"id": request.id, "seconds": seconds, "trigger": request.trigger})

    def record(self, portrait: Portrait) -> None:
        pass  # the file is the kiosk's copy

    def committed(self, portrait: Portrait, recorded: bool) -> None:
        with self._lock:
            self._latest = portrait.path
        self.events.publish("portrait", {"id": portrait.request.id, "seq": portrait.seq})

    def failed(self, request_id: str | None, code: str, detail: str) -> None:
        self.events.publish("error", {"id": request_id, "error": code, "detail": detail})
