"""`edgeportrait run -c FILE`: the composition root — builds the parts, connects them, owns their life.

Nothing here does a part's work: no command routing (``control.Control``
fills the ``commands.Dispatcher``'s table), no payload building
(``messages``), no health assembly (``status.HealthReporter`` asks each part
for its ``stats()``), no MQTT (``publish.outlet.MqttOutlet``). See
``docs/architecture.md`` for how a capture and a frame travel.

Start order: state (seq, capture dir, spool) → settings → model → camera →
stream pipeline → captures → MQTT → health. Each started part registers its
stop on an ``ExitStack``; :meth:`Daemon.stop` unwinds it in reverse, each step
on its own (one failing does not skip the rest). The one exception to plain
reverse order: captures stop *before* MQTT, so the capture in progress
finishes and is handed to the spool while it can still be delivered.
"""

from __future__ import annotations

import argparse
import contextlib
import faulthandler
import logging
import signal
import threading
import uuid
from collections.abc import Callable
from pathlib import Path

from edgeportrait import sdnotify
from edgeportrait.capture import Camera, CameraError
from edgeportrait.captures import CaptureService, Outlets
from edgeportrait.commands import Dispatcher
from edgeportrait.compose import Compositor
from edgeportrait.config import AppConfig, load_config
from edgeportrait.control import Control
from edgeportrait.errors import FatalError
from edgeportrait.logsafe import shown
from edgeportrait.messages import HealthMessage
from edgeportrait.pipeline import StreamPipeline
from edgeportrait.results import default_state_dir, recover_numbering
from edgeportrait.segment.swap import ModelSlot
from edgeportrait.settings import RuntimeSettings
from edgeportrait.status import HealthLoop, HealthReporter, log_health

logger = logging.getLogger(__name__)


class Daemon:
    def __init__(self, cfg: AppConfig) -> None:
        self.settings = RuntimeSettings(cfg)
        self._stop = threading.Event()
        # this start's id, in every health report: two daemons with one device_id tell each other apart
        self.instance = uuid.uuid4().hex[:12]
        self._state = "starting"
        self._on_state: list[Callable[[], None]] = []
        self._parts = contextlib.ExitStack()
        self.camera: Camera | None = None
        self.watchdog: sdnotify.Watchdog | None = None

    @property
    def state(self) -> str:
        """starting → running → stopping (health makes "degraded" of running when the camera is not ok)."""
        return self._state

    @state.setter
    def state(self, value: str) -> None:
        self._state = value
        for fn in self._on_state:
            fn()

    # -- start / stop ------------------------------------------------------------

    def start(self) -> None:
        cfg = self.settings.snapshot()
        settings = self.settings.snapshot
        parts = self._parts
        outlets = Outlets()  # where captures and answers go: MQTT, the kiosk page

        def answer(request_id: str | None, code: str, detail: str) -> None:
            # a refused command (any transport) or a model that failed to compile
            logger.warning("error %s for id %s: %s", code, shown(request_id), shown(detail, 500))
            outlets.failed(request_id, code, detail)

        dispatcher = Dispatcher(answer)

        state_dir = Path(cfg.state_dir) if cfg.state_dir is not None else default_state_dir()
        spool = None
        try:
            state_dir.mkdir(parents=True, exist_ok=True)
            if cfg.mqtt.enabled:
                from edgeportrait.publish.spool import Spool

                spool = Spool(state_dir / "spool", cfg.mqtt.spool_max_files, cfg.mqtt.spool_max_bytes)
            seq, store = recover_numbering(cfg.capture, state_dir, spool.highest_seq() if spool is not None else None)
        except OSError as e:
            raise FatalError(f"cannot prepare {e.filename or state_dir}: {e.strerror or e}") from None
        logger.info("state in %s, portraits to %s", state_dir, cfg.capture.output_dir)

        sdnotify.status("compiling the model")
        models = ModelSlot(cfg.model, self.settings.model_running, lambda cid, why: answer(cid, "model_failed", why))
        parts.callback(_step, "model", models.close)
        parts.callback(self.settings.subscribe(models.settings_changed))

        camera = self.camera = Camera(cfg.camera)
        camera.start()
        parts.callback(_step, "camera", camera.stop)

        # an outage the camera supervisor is already handling (offline, reopening)
        # is shown in health rather than answered by a systemd restart loop
        self.watchdog = sdnotify.Watchdog(excuse=lambda: camera.state != "ok" and camera.supervisor_alive())
        kiosk = None
        if cfg.http.enabled:
            from edgeportrait.web.preview import LivePreview

            kiosk = LivePreview(settings)
        pipeline = StreamPipeline(
            camera, models.use, Compositor(cfg.portrait), settings, self.watchdog.frame_flowed,
            preview=kiosk.preview if kiosk is not None else None,
        )
        pipeline.start()
        parts.callback(_step, "pipeline", pipeline.stop)

        captures = CaptureService(camera, models.use, settings, store, seq, outlets, quiet=pipeline.paused)
        parts.callback(self.settings.subscribe(captures.settings_changed))
        reporter = HealthReporter(settings, self.instance, lambda: self.state, camera, pipeline, models, captures)
        health_sinks: list[Callable[[HealthMessage], None]] = [log_health]
        health = HealthLoop(settings, reporter.report, health_sinks)
        parts.callback(self.settings.subscribe(health.settings_changed))

        if kiosk is not None:
            from edgeportrait.web.booth import Booth
            from edgeportrait.web.server import KioskServer

            booth = Booth(settings, kiosk.events, captures, store, reporter.report)
            outlets.add(booth)  # countdown, portrait and error events for the page
            health_sinks.append(booth.health_report)
            reporter.preview = kiosk.stats
            camera.add_state_listener(booth.poke)
            self._on_state.append(booth.poke)
            parts.callback(self.settings.subscribe(booth.poke))
            booth.start()
            parts.callback(_step, "kiosk status", booth.stop)
            server = KioskServer(cfg.http, kiosk.frames, kiosk.events, booth)
            server.start()  # FatalError when the port is taken or the token file unreadable
            parts.callback(_step, "kiosk server", server.stop)

        Control(self.settings, captures, health.now).register(dispatcher)

        mqtt = None
        if cfg.mqtt.enabled and spool is not None:
            from edgeportrait.publish.outlet import MqttOutlet

            # built (password, TLS files checked) before anything else starts
            mqtt = MqttOutlet(settings, spool, seq.durable_now, dispatcher, answer, reporter.report, self.instance)
            outlets.add(mqtt)
            reporter.mqtt = mqtt.stats
            health_sinks.insert(0, mqtt.publish_health)
            parts.callback(self.settings.subscribe(mqtt.settings_changed))

        # Captures are ready before MQTT announces `online`, so no command finds the
        # daemon half started; they stop before MQTT, so a stop finishes the capture in
        # progress while it can still be delivered (the one exception to reverse order).
        captures.start()
        if mqtt is not None:
            mqtt.start()
            parts.callback(_step, "mqtt", mqtt.stop)
        else:
            logger.info("MQTT disabled: portraits only go to %s", cfg.capture.output_dir)
        parts.callback(_step, "captures", captures.stop)

        health.start()
        parts.callback(_step, "health", health.stop)

    def request_stop(self) -> None:
        self._stop.set()

    def stop(self) -> None:
        """Tear down in the reverse order of start (each step on its own; one failing does not skip the rest)."""
        self.state = "stopping"
        self._stop.set()
        sdnotify.stopping()
        self._parts.close()
        logger.info("stopped")

    def run_until_stopped(self) -> None:
        """Wait for the first frame (then READY=1), then until a stop is requested."""
        assert self.camera is not None
        sdnotify.status("waiting for the first camera frame")
        while not self._stop.is_set():
            try:
                frame = self.camera.wait_frame(None, timeout=1.0)
            except CameraError as e:
                logger.debug("waiting for the first frame: %s", e)
                # wait_frame fails at once when the camera is down for good (a
                # video without loop that ended): do not spin on it
                self._stop.wait(0.5)
                continue
            self.state = "running"
            logger.info("first frame %dx%d from %s; ready", frame.width, frame.height, self.camera.source_name)
            sdnotify.ready(f"running: {self.camera.source_name}")
            if self.watchdog is not None:
                self.watchdog.start()
                self._parts.callback(_step, "watchdog", self.watchdog.stop)
            break
        self._stop.wait()


def _step(name: str, fn: Callable[[], object]) -> None:
    """One teardown step: a failure is logged and the next step still runs."""
    try:
        fn()
    except Exception:
        logger.exception("stopping %s failed", name)


def main(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)  # ConfigError → exit 78 in the CLI
    if not getattr(args, "verbose", False):
        logging.getLogger().setLevel(cfg.log_level)
    daemon = Daemon(cfg)
    # `kill -USR1 <pid>` writes every thread's stack to the log: the one way to see
    # where a wedged appliance is stuck without stopping it
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    # SIGTERM (systemd) and SIGINT (Ctrl-C) both mean: finish and stop cleanly
    signal.signal(signal.SIGTERM, lambda *_: daemon.request_stop())
    signal.signal(signal.SIGINT, lambda *_: daemon.request_stop())
    try:
        daemon.start()
        daemon.run_until_stopped()
    finally:
        daemon.stop()
    return 0
