"""Everything the daemon says on MQTT, and the one connection it says it on.

``MqttOutlet`` owns the broker link (``MqttLink``), the spool and the
deliverer. The daemon's parts never see them: captures reach it as a
``captures.CaptureOutlet`` (``record`` → the spool, ``committed`` → delivery,
``failed`` → ``B/error``), settings changes as a ``RuntimeSettings``
subscriber (→ ``B/settings/state``), health reports through
:meth:`MqttOutlet.publish_health`, and incoming messages go to the
``commands.Dispatcher`` it was given. Here the capture domain meets MQTT: the
portrait's JPEG is sized for ``mqtt.max_image_bytes`` and the
:class:`~edgeportrait.messages.ResultMessage` is built.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable

from edgeportrait.captures import CaptureRequest, Portrait
from edgeportrait.commands import Command, CommandKind, Dispatcher
from edgeportrait.config import AppConfig
from edgeportrait.messages import (
    ErrorMessage,
    HealthMessage,
    MqttHealth,
    ResultMessage,
    SpoolHealth,
    settings_state,
    utc_iso,
)
from edgeportrait.publish.delivery import Deliverer, send_result
from edgeportrait.publish.discovery import discovery_messages, usable_modes
from edgeportrait.publish.mqtt import MqttLink
from edgeportrait.publish.spool import Spool, jpeg_for_mqtt
from edgeportrait.settings import SettingsChange

logger = logging.getLogger(__name__)

# How long a clean stop may wait for the spool to reach the broker; what is
# not acknowledged by then stays in the spool for the next start.
DRAIN_S = 2.0


def result_message(portrait: Portrait, mqtt_jpeg: bytes) -> ResultMessage:
    """``B/result`` for ``portrait``; ``bytes``/``sha256`` describe ``mqtt_jpeg`` (what ``B/result/image`` carries)."""
    h, w = portrait.image.shape[:2]
    return ResultMessage(
        id=portrait.request.id,
        seq=portrait.seq,
        ts=utc_iso(portrait.ts, "milliseconds"),
        trigger=portrait.request.trigger,
        width=int(w),
        height=int(h),
        path=str(portrait.path),
        bytes=len(mqtt_jpeg),
        sha256=hashlib.sha256(mqtt_jpeg).hexdigest(),
        foreground_fraction=portrait.foreground_fraction,
        timings_ms=portrait.timings_ms,
        model=portrait.model,
        precision=portrait.precision,
        precision_reason=portrait.precision_reason,
        device=portrait.device,
    )


class MqttOutlet:
    def __init__(
        self,
        settings: Callable[[], AppConfig],
        spool: Spool,
        seq_durable: Callable[[], int],
        dispatcher: Dispatcher,
        on_error: Callable[[str | None, str, str], None],
        health: Callable[[], HealthMessage],
        instance: str,
    ) -> None:
        cfg = settings()
        self._settings = settings
        self._health = health
        self.spool = spool
        # built here (password, TLS files checked) before anything else starts
        self.link = MqttLink(
            cfg.mqtt, cfg.device_id, dispatcher, on_error, on_connected=self._on_connected, instance=instance
        )
        # only results whose number is on disk leave the spool (retrying a failed seq write)
        self.deliverer = Deliverer(self.link, spool, seq_durable)
        # results whose spool entry could not be written, waiting for their number (committed)
        self._unrecorded: dict[int, tuple[ResultMessage, bytes]] = {}
        self._lock = threading.Lock()
        self._legacy_cleared = False
        if cfg.mqtt.discovery.enabled:
            dispatcher.register(CommandKind.HA_STATUS, self._on_ha_status)

    # -- life cycle ----------------------------------------------------------------

    def start(self) -> None:
        self.link.start()
        self.deliverer.start()

    def stop(self) -> None:
        """Deliver what the spool holds (up to ``DRAIN_S``), say ``stopped``, disconnect."""
        if not self.deliverer.drain(DRAIN_S):
            logger.warning("stopping with %d result(s) not yet delivered; they stay in the spool", len(self.spool))
        self.deliverer.stop()
        self.link.stop()

    # -- captures (captures.CaptureOutlet; the capture thread) ----------------------------

    def countdown(self, request: CaptureRequest, seconds: float) -> None:
        pass  # nothing on MQTT before the result

    def record(self, portrait: Portrait) -> None:
        """Into the spool, durably; an ``OSError`` goes back to the capture, which decides what is safe."""
        cfg = self._settings()
        t0 = time.perf_counter()
        mqtt_jpeg = jpeg_for_mqtt(portrait.image, portrait.jpeg, cfg.mqtt.max_image_bytes, portrait.quality)
        if mqtt_jpeg is not portrait.jpeg:
            portrait.timings_ms["mqtt_jpeg"] = round((time.perf_counter() - t0) * 1000, 1)
        result = result_message(portrait, mqtt_jpeg)
        req = portrait.request
        try:
            self.spool.put(portrait.seq, result, mqtt_jpeg, req.response_topic, req.correlation_data)
        except OSError:
            with self._lock:
                self._unrecorded[portrait.seq] = (result, mqtt_jpeg)
            raise

    def committed(self, portrait: Portrait, recorded: bool) -> None:
        with self._lock:
            unrecorded = self._unrecorded.pop(portrait.seq, None)
        if recorded:
            self.spool.wake()  # the deliverer sends it (it may have already)
        elif unrecorded is not None and self.link.connected:
            # the portrait and its number are on disk, the spool is not: it can still go out now
            req = portrait.request
            send_result(self.link, unrecorded[0], unrecorded[1], req.response_topic, req.correlation_data)

    def failed(self, request_id: str | None, code: str, detail: str) -> None:
        """``B/error`` (when connected; an error is an event, not kept for later)."""
        if self.link.connected:
            message = ErrorMessage(id=request_id, error=code, detail=detail)
            self.link.publish(self.link.topic("error"), message.json_bytes())

    # -- settings, health, discovery -----------------------------------------------------

    def settings_changed(self, change: SettingsChange) -> None:
        self._publish_settings_state(change.new)

    def _publish_settings_state(self, cfg: AppConfig) -> None:
        if self.link.connected:
            self.link.publish(self.link.topic("settings/state"), json.dumps(settings_state(cfg)).encode(), retain=True)

    def publish_health(self, report: HealthMessage) -> None:
        if self.link.connected:
            self.link.publish(self.link.topic("health"), report.json_bytes(), retain=True)

    def stats(self) -> MqttHealth:
        spool = self.spool.stats()
        return MqttHealth(
            pending=self.link.pending,
            connected=self.link.connected,
            connects=self.link.connects,
            # in plain words, when another daemon seems to publish as this device_id
            duplicate=self.link.duplicate,
            spool=SpoolHealth(**spool),
        )

    def _on_connected(self) -> None:
        # network thread: only quick publishes here
        cfg = self._settings()
        self._publish_settings_state(cfg)
        self.publish_health(self._health())
        if cfg.mqtt.discovery.enabled:
            self._publish_discovery(cfg)

    def _on_ha_status(self, cmd: Command) -> None:
        if cmd.payload.strip() == b"online":
            self._publish_discovery(self._settings())

    def _publish_discovery(self, cfg: AppConfig) -> None:
        d = cfg.mqtt.discovery
        # the per-entity topics of earlier versions are cleared once per start (before the
        # device message); cleared again on every HA `online`, HA would warn of a conflict
        with self._lock:
            clear, self._legacy_cleared = not self._legacy_cleared, True
        messages = discovery_messages(
            d.prefix, self.link.base, cfg.device_id, modes=usable_modes(cfg.portrait), style=d.style,
            clear_legacy=clear,
        )
        for topic, payload in messages:
            self.link.publish(topic, payload, retain=True)
