"""`edgeportrait run -c FILE`: wires camera → segment → compose → publish, until SIGTERM.

This module connects stages; it does not do their work. Start order: state
(seq, spool, capture dir) → model → camera → stream pipeline → captures →
MQTT → health. :meth:`Daemon.stop` tears down in the reverse order: the
capture in progress finishes and is handed to the spool before MQTT says
``stopped`` and disconnects.
"""

from __future__ import annotations

import argparse
import datetime as dt
import faulthandler
import json
import logging
import signal
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from edgeportrait import __version__, sdnotify
from edgeportrait.capture import Camera, CameraError
from edgeportrait.captures import CaptureOutcome, CaptureRequest, CaptureService
from edgeportrait.compose import Compositor
from edgeportrait.config import AppConfig, ModelConfig, load_config
from edgeportrait.errors import FatalError
from edgeportrait.health import SystemStats, percentile
from edgeportrait.logsafe import shown
from edgeportrait.pipeline import StreamPipeline
from edgeportrait.publish.commands import (
    CommandError,
    apply_settings,
    parse_capture,
    parse_settings,
    runtime_state,
)
from edgeportrait.publish.delivery import Deliverer
from edgeportrait.publish.discovery import discovery_messages
from edgeportrait.publish.mqtt import Command, MqttLink
from edgeportrait.results import CaptureStore, SeqCounter, Spool, default_state_dir
from edgeportrait.segment.swap import ModelSlot, model_key

logger = logging.getLogger(__name__)

# How long a clean stop may wait for the spool to reach the broker; what is
# not acknowledged by then stays in the spool for the next start.
DRAIN_S = 2.0


class Daemon:
    def __init__(self, cfg: AppConfig) -> None:
        self.cfg = cfg
        self._cfg_lock = threading.Lock()
        self._stop = threading.Event()
        self._started = time.monotonic()
        # this start's id, in every health report: two daemons with one device_id tell each other apart
        self.instance = uuid.uuid4().hex[:12]
        self.state = "starting"
        self._teardown: list[tuple[str, Any]] = []
        self.models: ModelSlot | None = None
        self.camera: Camera | None = None
        self.pipeline: StreamPipeline | None = None
        self.captures: CaptureService | None = None
        self.link: MqttLink | None = None
        self.spool: Spool | None = None
        self.deliverer: Deliverer | None = None
        self.watchdog: sdnotify.Watchdog | None = None
        self.system = SystemStats()
        self._health_thread: threading.Thread | None = None

    def config(self) -> AppConfig:
        return self.cfg

    # -- start / stop ------------------------------------------------------------

    def start(self) -> None:
        cfg = self.cfg
        state_dir = Path(cfg.state_dir) if cfg.state_dir is not None else default_state_dir()
        try:
            state_dir.mkdir(parents=True, exist_ok=True)
            seq = SeqCounter(state_dir)
            store = CaptureStore(cfg.capture.output_dir, cfg.capture.max_files, cfg.capture.max_bytes)
            store.prepare()
            if cfg.mqtt.enabled:
                self.spool = Spool(state_dir / "spool", cfg.mqtt.spool_max_files, cfg.mqtt.spool_max_bytes)
                # a result spooled just before a crash keeps its number
                seq.bump_to(self.spool.highest_seq())
            if seq.trusted and self.spool is not None:
                # a portrait above every recorded number never got a result out: a capture
                # cut short (results leave only once their number is on disk)
                store.remove_unfinished(seq.last)
            else:
                # no counter on disk (first start, or lost), or no MQTT (the file is the
                # delivery, and nothing else records its number): never reuse a file's number
                seq.bump_to(store.highest_seq())
            if seq.last > seq.durable:
                try:  # what the spool or the files said, recorded for the next start
                    seq.commit(seq.last)
                except OSError as e:
                    # not fatal: results above the recorded number wait in the spool until it is
                    logger.error("cannot record seq %d in %s: %s", seq.last, state_dir, e.strerror or e)
        except OSError as e:
            raise FatalError(f"cannot prepare {e.filename or state_dir}: {e.strerror or e}") from None
        logger.info("state in %s, portraits to %s", state_dir, cfg.capture.output_dir)

        sdnotify.status("compiling the model")
        self.models = ModelSlot(cfg.model, self._model_swapped, self._model_failed)
        self._teardown.append(("model", self.models.close))

        self.camera = Camera(cfg.camera)
        self.camera.start()
        self._teardown.append(("camera", self.camera.stop))

        camera = self.camera
        # an outage the camera supervisor is already handling (offline, reopening)
        # is shown in health rather than answered by a systemd restart loop
        self.watchdog = sdnotify.Watchdog(excuse=lambda: camera.state != "ok" and camera.supervisor_alive())
        self.compositor = Compositor(cfg.portrait)
        self.pipeline = StreamPipeline(
            self.camera, self.models.use, self.compositor, cfg.pipeline, self.watchdog.frame_flowed
        )
        self.pipeline.start()
        self._teardown.append(("pipeline", self.pipeline.stop))

        if cfg.mqtt.enabled and self.spool is not None:
            # built (password, TLS files checked) before anything else starts
            self.link = MqttLink(
                cfg.mqtt,
                cfg.device_id,
                self._on_command,
                self.publish_error,
                on_connected=self._on_connected,
                instance=self.instance,
            )
            # only results whose number is on disk leave the spool (retrying a failed seq write)
            self.deliverer = Deliverer(self.link, self.spool, seq.durable_now)

        # Captures are ready before MQTT announces `online`, so no command finds the
        # daemon half started; they stop before MQTT, so a stop finishes the capture in
        # progress while it can still be delivered (the one exception to reverse order).
        self.captures = CaptureService(
            self.camera,
            self.models.use,
            self.config,
            store,
            seq,
            self._on_result,
            self.publish_error,
            on_committed=self.spool.wake if self.spool is not None else None,
            quiet=self.pipeline.paused,
            on_unspooled=self._publish_unspooled,
        )
        self.captures.start()
        if self.link is not None and self.deliverer is not None:
            self.link.start()
            self.deliverer.start()
            self._teardown.append(("mqtt", self._stop_mqtt))
        else:
            logger.info("MQTT disabled: portraits only go to %s", cfg.capture.output_dir)
        self._teardown.append(("captures", self.captures.stop))

        self._health_thread = threading.Thread(target=self._health_loop, name="health", daemon=True)
        self._health_thread.start()

    def _stop_mqtt(self) -> None:
        assert self.link is not None and self.deliverer is not None
        if not self.deliverer.drain(DRAIN_S):
            left = len(self.spool) if self.spool is not None else 0
            logger.warning("stopping with %d result(s) not yet delivered; they stay in the spool", left)
        self.deliverer.stop()
        self.link.stop()

    def request_stop(self) -> None:
        self._stop.set()

    def stop(self) -> None:
        """Tear down in the reverse order of start (each step on its own; one failing does not skip the rest)."""
        self.state = "stopping"
        self._stop.set()
        sdnotify.stopping()
        while self._teardown:
            name, fn = self._teardown.pop()
            try:
                fn()
            except Exception:
                logger.exception("stopping %s failed", name)
        if self._health_thread is not None:
            self._health_thread.join(2.0)
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
                self._teardown.append(("watchdog", self.watchdog.stop))
            break
        self._stop.wait()

    # -- stages' hooks ---------------------------------------------------------------

    def _on_result(self, outcome: CaptureOutcome) -> None:
        """Into the spool (an OSError goes back to the capture, which decides what is safe)."""
        if self.spool is None:
            return
        req = outcome.request
        self.spool.put(
            outcome.result["seq"], outcome.result, outcome.mqtt_jpeg, req.response_topic, req.correlation_data
        )

    def _publish_unspooled(self, outcome: CaptureOutcome) -> None:
        # the portrait and its number are on disk, the spool is not: it can still go out now
        if self.link is not None:
            req = outcome.request
            payload = json.dumps(outcome.result)
            self.link.publish(self.link.topic("result/image"), outcome.mqtt_jpeg, retain=True)
            self.link.publish(self.link.topic("result"), payload)
            if req.response_topic:
                self.link.publish(req.response_topic, payload, correlation_data=req.correlation_data)

    def publish_error(self, command_id: str | None, code: str, detail: str) -> None:
        logger.warning("error %s for id %s: %s", code, shown(command_id), shown(detail, 500))
        if self.link is not None and self.link.connected:
            payload = {"id": command_id, "error": code, "detail": detail}
            self.link.publish(self.link.topic("error"), json.dumps(payload))

    def _on_connected(self) -> None:
        # network thread: only quick publishes here
        self._publish_settings_state()
        self.publish_health()
        if self.cfg.mqtt.discovery.enabled:
            self._publish_discovery()

    def _on_command(self, cmd: Command) -> None:
        try:
            if cmd.kind == "capture":
                self._capture_command(cmd)
            elif cmd.kind == "settings":
                changes, cid = parse_settings(cmd.payload)
                with self._cfg_lock:
                    # a model change merges into the model asked for last (still compiling, maybe)
                    base = self.cfg
                    if self.models is not None:
                        base = base.model_copy(update={"model": self.models.target})
                    new = apply_settings(base, changes, cid)
                    self._apply(base, new, cid)
            elif cmd.kind == "health":
                self.publish_health()
            elif cmd.kind == "ha_status" and cmd.payload.strip() == b"online":
                self._publish_discovery()
        except CommandError as e:
            self.publish_error(e.command_id, e.code, e.detail)

    def _capture_command(self, cmd: Command) -> None:
        assert self.captures is not None  # started before MQTT
        c = parse_capture(cmd.payload)
        if c.settings:
            apply_settings(self.cfg, c.settings, c.id)  # validates the values; changes nothing
        req = CaptureRequest(
            trigger="mqtt",
            countdown_s=c.countdown_s,
            settings=c.settings,
            response_topic=cmd.response_topic,
            correlation_data=cmd.correlation_data,
        )
        if c.id is not None:
            req.id = c.id
        self.captures.submit(req)

    # -- settings ----------------------------------------------------------------------

    def _apply(self, base: AppConfig, new: AppConfig, cid: str | None) -> None:
        """Switch to ``new`` (validated against ``base``); a model change compiles in the background.

        ``B/settings/state`` describes what runs: the running model stays in the
        config until the one asked for is swapped in (:meth:`_model_swapped`).
        """
        if self.models is not None and model_key(new.model) != model_key(base.model):
            # the last request wins, also one for the model that runs (it cancels a pending switch)
            self.models.request(new.model, cid)
        new = new.model_copy(update={"model": self.cfg.model})
        self.cfg = new
        self.compositor.settings = new.portrait
        if self.pipeline is not None:
            self.pipeline.cfg = new.pipeline
        logger.info("settings changed: %s", json.dumps(runtime_state(new)))
        self._publish_settings_state()

    def _model_swapped(self, model: ModelConfig) -> None:
        # the swap worker: the model asked for runs now
        with self._cfg_lock:
            self.cfg = self.cfg.model_copy(update={"model": model})
        self._publish_settings_state()

    def _model_failed(self, cid: str | None, detail: str) -> None:
        self.publish_error(cid, "model_failed", detail)

    def _publish_settings_state(self) -> None:
        if self.link is not None and self.link.connected:
            self.link.publish(
                self.link.topic("settings/state"), json.dumps(runtime_state(self.cfg)), retain=True
            )

    def _publish_discovery(self) -> None:
        assert self.link is not None
        for topic, payload in discovery_messages(self.cfg.mqtt.discovery.prefix, self.link.base, self.cfg.device_id):
            self.link.publish(topic, payload, retain=True)

    # -- health ------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        seg = self.models.current if self.models is not None else None
        lat = list(seg.latencies_ms) if seg is not None else []
        cam = self.camera.stats() if self.camera is not None else {"state": "offline"}
        pipe = self.pipeline.stats() if self.pipeline is not None else {}
        state = self.state
        if state == "running" and (cam.get("state") != "ok" or not pipe.get("fps")):
            state = "degraded"
        cap = self.captures
        report: dict[str, Any] = {
            "ts": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z"),
            "uptime_s": round(time.monotonic() - self._started, 1),
            "version": __version__,
            "device_id": self.cfg.device_id,
            "instance": self.instance,
            "state": state,
            "camera": cam,
            "inference": {
                "device": seg.device if seg else None,
                "precision": seg.precision if seg else None,
                "precision_reason": seg.precision_reason if seg else None,
                "model": seg.name if seg else None,
                "ms_p50": percentile(lat, 50),
                "ms_p95": percentile(lat, 95),
                # devices passed over and why (absent, failed to compile, failed at run time)
                "fallbacks": list(seg.fallbacks[-5:]) if seg else [],
                # "general/fp32 on CPU" while a model change compiles, else null
                "switching_to": self.models.switching_to if self.models is not None else None,
                "swaps": self.models.swaps if self.models is not None else 0,
                # compiled models in memory: 2 only while one is compiled or the one it replaced finishes
                "models_loaded": self.models.loaded if self.models is not None else 0,
            },
            "pipeline": pipe,
            "captures": {
                "made": cap.made if cap else 0,
                "failed": cap.failed if cap else 0,
                "refused": cap.refused if cap else 0,
                "waiting": cap.waiting if cap else 0,
                "latency_ms_p50": cap.latency_ms.percentile(50) if cap else None,
                "latency_ms_p95": cap.latency_ms.percentile(95) if cap else None,
                "files_pruned": cap.store.pruned if cap else 0,
            },
            "mqtt": {
                "pending": self.link.pending if self.link else 0,
                "connected": self.link.connected if self.link else False,
                "connects": self.link.connects if self.link else 0,
                # in plain words, when another daemon seems to publish as this device_id
                "duplicate": self.link.duplicate if self.link else None,
                # (an empty spool is falsy: test for None, not truth)
                "spool": self.spool.stats() if self.spool is not None else None,
            },
            "system": self.system.snapshot(),
        }
        return report

    def publish_health(self) -> None:
        report = self.health()
        if self.link is not None and self.link.connected:
            self.link.publish(self.link.topic("health"), json.dumps(report), retain=True)
        logger.info(
            "health: %s, camera %s %.1f fps, pipeline %.1f fps, inference p50 %s ms, %d captures",
            report["state"],
            report["camera"].get("state"),
            report["camera"].get("fps") or 0.0,
            report["pipeline"].get("fps") or 0.0,
            report["inference"]["ms_p50"],
            report["captures"]["made"],
        )

    def _health_loop(self) -> None:
        next_at = time.monotonic() + self.cfg.health.interval_s
        while not self._stop.wait(0.5):
            if time.monotonic() < next_at:
                continue
            next_at = time.monotonic() + self.cfg.health.interval_s
            try:
                self.publish_health()
            except Exception:
                logger.exception("health report failed")


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
