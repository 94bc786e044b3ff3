"""The producer side of the live preview: only when wanted, at most ``max_fps``, encoded once.

The daemon's compose thread asks :meth:`PreviewEncoder.due` before it
composes a stream frame for the preview (nothing is composed while nobody
watches), then hands the composed frame to :meth:`PreviewEncoder.offer`,
which scales it to fit ``preview.width``×``preview.height``, encodes it as
JPEG once and publishes it to the :class:`FrameBroadcaster`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import numpy as np

from edgeportrait.config import AppConfig, PreviewConfig
from edgeportrait.health import Window
from edgeportrait.imageio import encode_jpeg, fit_within
from edgeportrait.messages import PreviewHealth
from edgeportrait.web.events import EventHub
from edgeportrait.web.frames import FrameBroadcaster


class PreviewEncoder:
    def __init__(
        self,
        frames: FrameBroadcaster,
        settings: Callable[[], PreviewConfig],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.frames = frames
        self._settings = settings  # read once per frame: settings/set may replace it
        self._clock = clock
        self._next_due = 0.0
        self._lock = threading.Lock()
        self.encoded = 0
        self.encode_ms = Window()

    def due(self) -> bool:
        """True when a preview frame should be made now: someone wants one and max_fps allows it."""
        if not self.frames.wanted():
            return False
        period = 1.0 / self._settings().max_fps
        with self._lock:
            # a little early (camera jitter) counts as on time, see offer
            return self._clock() >= self._next_due - period / 4

    def offer(self, image: np.ndarray, captured_ts: float) -> bool:
        """Scale, encode and publish ``image`` (BGR) if :meth:`due`; True when it was published."""
        cfg = self._settings()
        now = self._clock()
        period = 1.0 / cfg.max_fps
        with self._lock:
            # a quarter period early counts as on time: frames come at the camera's rate with
            # some jitter, and with the camera at max_fps a strict check dropped a third of them
            if now < self._next_due - period / 4 or not self.frames.wanted():
                return False
            # from the due time, not from now, so the rate holds on average; after a
            # pause, at least half a period to the next one (no burst of two)
            self._next_due = max(self._next_due + period, now + period / 2)
        t0 = time.perf_counter()
        jpeg = encode_jpeg(fit_within(image, cfg.width, cfg.height), cfg.jpeg_quality)
        self.encode_ms.add((time.perf_counter() - t0) * 1000.0)
        self.encoded += 1
        self.frames.publish(jpeg, captured_ts)
        return True


class LivePreview:
    """The kiosk's shared parts for the daemon: preview frames (one producer, many viewers), page events."""

    def __init__(self, settings: Callable[[], AppConfig]) -> None:
        self.frames = FrameBroadcaster(settings().http.max_viewers)
        self.events = EventHub()
        # preview.* are runtime settings: the encoder reads them once per frame
        self.preview = PreviewEncoder(self.frames, lambda: settings().preview)

    def stats(self) -> PreviewHealth:
        """The ``preview`` section of health."""
        s = self.frames.stats()
        return PreviewHealth(
            viewers=s["viewers"],
            max_viewers=s["max_viewers"],
            fps=s["fps"],
            published=s["published"],
            sent=s["sent"],
            refused=s["refused"],
            dropped=s["dropped"],
            latency_ms_p50=s["latency_ms_p50"],
            latency_ms_p95=s["latency_ms_p95"],
            encode_ms_p50=self.preview.encode_ms.percentile(50),
        )
