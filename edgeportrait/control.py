"""What the daemon does for each command: the handlers of the dispatcher's table.

``Control.register`` puts one handler per :class:`~edgeportrait.commands.CommandKind`
into a :class:`~edgeportrait.commands.Dispatcher`; a transport (MQTT, the kiosk
page) only parses its own framing and calls the dispatcher. A handler refuses
by raising (``CommandError``, ``CaptureError``): the dispatcher answers on
``B/error``.

- ``capture``: parsed and checked (per-capture settings validated against the
  running settings, nothing changed), then queued on the capture service;
- ``settings``: applied through :class:`~edgeportrait.settings.RuntimeSettings`
  (its subscribers take the change: the model slot, the MQTT state, the health loop);
- ``health``: a report now.
"""

from __future__ import annotations

from collections.abc import Callable

from edgeportrait.captures import CaptureRequest, CaptureService
from edgeportrait.commands import Command, CommandKind, Dispatcher, parse_capture, parse_settings
from edgeportrait.settings import RuntimeSettings


class Control:
    def __init__(
        self, settings: RuntimeSettings, captures: CaptureService, health_now: Callable[[], None]
    ) -> None:
        self._settings = settings
        self._captures = captures
        self._health_now = health_now

    def register(self, dispatcher: Dispatcher) -> None:
        dispatcher.register(CommandKind.CAPTURE, self.capture)
        dispatcher.register(CommandKind.SETTINGS, self.settings)
        dispatcher.register(CommandKind.HEALTH, self.health)

    def capture(self, cmd: Command) -> None:
        c = parse_capture(cmd.payload)
        if c.settings:
            self._settings.validate(c.settings, c.id)  # checks the values; changes nothing
        req = CaptureRequest(
            trigger="mqtt",  # (the kiosk page queues its captures itself: web.booth.Booth.capture)
            countdown_s=c.countdown_s,
            settings=c.settings,
            response_topic=cmd.response_topic,
            correlation_data=cmd.correlation_data,
        )
        if c.id is not None:
            req.id = c.id
        self._captures.submit(req)

    def settings(self, cmd: Command) -> None:
        changes, cid = parse_settings(cmd.payload)
        self._settings.apply(changes, cid)

    def health(self, cmd: Command) -> None:
        self._health_now()
