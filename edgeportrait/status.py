"""The daemon's health: one report made from the parts' own figures, sent where it is wanted.

``HealthReporter.report`` asks each part for its figures through its public
``stats()`` (camera, stream pipeline, model slot, captures, the MQTT outlet)
and makes one :class:`~edgeportrait.messages.HealthMessage`. ``HealthLoop``
makes one every ``health.interval_s`` (read from the settings each turn, so a
change applies at the next report) and on request, and hands it to its sinks
(``B/health``, the log).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from edgeportrait import __version__
from edgeportrait.config import AppConfig
from edgeportrait.health import SystemStats
from edgeportrait.messages import (
    MQTT_OFF,
    CameraHealth,
    CapturesHealth,
    HealthMessage,
    InferenceHealth,
    MqttHealth,
    PipelineHealth,
    PreviewHealth,
    SystemHealth,
    utc_now,
)

logger = logging.getLogger(__name__)


class _Stats(Protocol):
    def stats(self) -> dict[str, Any]: ...


class HealthReporter:
    def __init__(
        self,
        settings: Callable[[], AppConfig],
        instance: str,
        state: Callable[[], str],
        camera: _Stats,
        pipeline: _Stats,
        models: _Stats,
        captures: _Stats,
        mqtt: Callable[[], MqttHealth] | None = None,
        preview: Callable[[], PreviewHealth] | None = None,
    ) -> None:
        self._settings = settings
        self.instance = instance
        self._state = state
        self._camera = camera
        self._pipeline = pipeline
        self._models = models
        self._captures = captures
        self.mqtt = mqtt  # set by the daemon once the MQTT outlet exists (it reports health too)
        self.preview = preview
        self._system = SystemStats()
        self._started = time.monotonic()

    def report(self) -> HealthMessage:
        cam = CameraHealth(**self._camera.stats())
        pipe = PipelineHealth(**self._pipeline.stats())
        state = self._state()
        if state == "running" and (cam.state != "ok" or not pipe.fps):
            state = "degraded"
        return HealthMessage(
            ts=utc_now(),
            uptime_s=round(time.monotonic() - self._started, 1),
            version=__version__,
            device_id=self._settings().device_id,
            # this start's id: two daemons with one device_id tell each other apart
            instance=self.instance,
            state=state,  # checked by the model
            camera=cam,
            inference=InferenceHealth(**self._models.stats()),
            pipeline=pipe,
            captures=CapturesHealth(**self._captures.stats()),
            mqtt=self.mqtt() if self.mqtt is not None else MQTT_OFF,
            preview=self.preview() if self.preview is not None else None,
            system=SystemHealth(**self._system.snapshot()),
        )


def log_health(report: HealthMessage) -> None:
    logger.info(
        "health: %s, camera %s %.1f fps, pipeline %.1f fps, inference p50 %s ms, %d captures",
        report.state,
        report.camera.state,
        report.camera.fps,
        report.pipeline.fps,
        report.inference.ms_p50,
        report.captures.made,
    )


class HealthLoop:
    """A report every ``health.interval_s`` and on :meth:`now`, to each sink in turn."""

    def __init__(
        self,
        settings: Callable[[], AppConfig],
        report: Callable[[], HealthMessage],
        sinks: list[Callable[[HealthMessage], None]],
    ) -> None:
        self._settings = settings
        self._report = report
        self._sinks = sinks
        self._cond = threading.Condition()
        self._stopping = False
        self._asked = False
        self._thread = threading.Thread(target=self._run, name="health", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._thread.join(2.0)

    def now(self) -> None:
        """Report now (``B/health/get``), then every interval from here."""
        with self._cond:
            self._asked = True
            self._cond.notify_all()

    def settings_changed(self, change: object) -> None:
        """A ``RuntimeSettings`` subscriber: a new ``health.interval_s`` counts from the last report."""
        with self._cond:
            self._cond.notify_all()

    def _run(self) -> None:
        last = time.monotonic()
        while True:
            with self._cond:
                while True:
                    if self._stopping:
                        return
                    left = last + self._settings().health.interval_s - time.monotonic()
                    if self._asked or left <= 0:
                        self._asked = False
                        break
                    self._cond.wait(left)
            last = time.monotonic()
            self.publish()

    def publish(self) -> None:
        try:
            report = self._report()
        except Exception:
            logger.exception("health report failed")
            return
        for sink in self._sinks:
            try:
                sink(report)
            except Exception:
                logger.exception("health sink %r failed", sink)
