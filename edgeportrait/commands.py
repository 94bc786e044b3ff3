"""Commands, whatever brought them (MQTT, the kiosk page): parsing, validation, dispatch.

Every bad payload becomes one ``CommandError``. A command that is not valid
(bad JSON, wrong types, unknown setting, value out of range) changes nothing; the daemon answers it on ``B/error`` as
``{"id", "error", "detail"}``. Settings changes are checked by merging them
into the current config and validating the whole ``AppConfig`` again, so the
same rules apply as at start.
"""

from __future__ import annotations

import difflib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edgeportrait.config import RUNTIME_SETTINGS, AppConfig, merge_settings, validation_messages
from edgeportrait.errors import Refusal

logger = logging.getLogger(__name__)

MAX_ID_CHARS = 128
MAX_DETAIL_CHARS = Refusal.MAX_DETAIL_CHARS
JSON_WHITESPACE = " \t\r\n"  # RFC 8259; str.strip() would also eat control characters

# Sections a single capture may override: composing a portrait differently is
# cheap; a different model for one capture would mean compiling one.
PER_CAPTURE_SETTINGS: dict[str, frozenset[str]] = {
    "portrait": RUNTIME_SETTINGS["portrait"],
    "capture": frozenset({"jpeg_quality"}),
}


class CommandError(Refusal):
    """A refused command: ``code`` is the machine-readable reason on ``B/error``."""


class CommandKind(StrEnum):
    """What a message asks for; the key of :class:`Dispatcher`'s handler table."""

    CAPTURE = "capture"
    SETTINGS = "settings"
    HEALTH = "health"
    HA_STATUS = "ha_status"  # Home Assistant came (back) online: announce the entities again


@dataclass(frozen=True)
class Command:
    """One incoming message, as the handlers see it (the transport filled in what it has)."""

    kind: CommandKind
    payload: bytes
    origin: str = ""  # where it came from (the MQTT topic)
    response_topic: str | None = None
    correlation_data: bytes | None = None


Handler = Callable[[Command], None]
ErrorSink = Callable[[str | None, str, str], None]


class Dispatcher:
    """The handler table: one handler per :class:`CommandKind`.

    A transport (``publish.mqtt.MqttLink``, the kiosk server) turns a message into
    a :class:`Command` and calls the dispatcher; it knows no handler. A handler
    refuses by raising :class:`~edgeportrait.errors.Refusal` (``CommandError``,
    ``CaptureError``); the dispatcher answers that on ``on_error`` (``B/error``), so
    no message can stop the daemon.
    """

    def __init__(self, on_error: ErrorSink) -> None:
        self._handlers: dict[CommandKind, Handler] = {}
        self._on_error = on_error

    def register(self, kind: CommandKind, handler: Handler) -> None:
        if kind in self._handlers:
            raise ValueError(f"a handler for {kind} is registered already")
        self._handlers[kind] = handler

    def __call__(self, cmd: Command) -> None:
        handler = self._handlers.get(cmd.kind)
        if handler is None:
            logger.debug("no handler for %s; ignored", cmd.kind)
            return
        try:
            handler(cmd)
        except Refusal as e:
            self._on_error(e.command_id, e.code, e.detail)


class CaptureCommand(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    id: str | None = Field(None, min_length=1, max_length=MAX_ID_CHARS)
    countdown_s: float | None = Field(None, ge=0, le=60, allow_inf_nan=False)
    settings: dict[str, Any] | None = None


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number")


def parse_json(payload: bytes, *, allow_empty: bool) -> dict[str, Any]:
    """Decode a JSON object; empty (or whitespace) is ``{}`` when allowed."""
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as e:
        raise CommandError("bad_json", f"not UTF-8 (byte {e.start})") from None
    if not text.strip(JSON_WHITESPACE):
        if allow_empty:
            return {}
        raise CommandError("bad_json", "empty payload; a JSON object is expected")
    try:
        data = json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise CommandError("bad_json", "JSON nested too deeply") from None
    except ValueError as e:  # JSONDecodeError, and ints longer than Python accepts
        raise CommandError("bad_json", f"not valid JSON: {str(e)[:200]}") from None
    if not isinstance(data, dict):
        raise CommandError("bad_payload", f"a JSON object is expected, not {type(data).__name__}")
    return data


def peek_id(data: Any) -> str | None:
    """The command's own id, if it has a usable one (so its error can be matched)."""
    if isinstance(data, dict):
        cid = data.get("id")
        if isinstance(cid, str) and 0 < len(cid) <= MAX_ID_CHARS:
            return cid
    return None


def peek_payload_id(payload: bytes) -> str | None:
    """The id of a command not otherwise parsed (e.g. refused as retained), if it has one."""
    try:
        return peek_id(parse_json(payload, allow_empty=True))
    except CommandError:
        return None


def _first_errors(err: ValidationError) -> str:
    return "; ".join(validation_messages(err))


def parse_capture(payload: bytes) -> CaptureCommand:
    """A capture command: empty, or ``{"id"?, "countdown_s"?, "settings"?}``."""
    data = parse_json(payload, allow_empty=True)
    try:
        cmd = CaptureCommand.model_validate(data)
    except ValidationError as e:
        raise CommandError("bad_payload", _first_errors(e), peek_id(data)) from None
    if cmd.settings:
        check_keys(cmd.settings, PER_CAPTURE_SETTINGS, cmd.id, per_capture=True)
    return cmd


def check_keys(
    changes: dict[str, Any],
    allowed: dict[str, frozenset[str]],
    command_id: str | None,
    *,
    per_capture: bool = False,
) -> None:
    """Refuse keys that do not exist or may not change now, naming their key path."""
    for section, sub in changes.items():
        field = AppConfig.model_fields.get(section) if isinstance(section, str) else None
        if field is None:
            hint = _did_you_mean(section, list(AppConfig.model_fields))
            raise CommandError("unknown_setting", f"{section}: no such setting{hint}", command_id)
        if section not in allowed:
            raise CommandError("not_runtime", _not_runtime(str(section), per_capture), command_id)
        if not isinstance(sub, dict):
            raise CommandError("invalid_value", f"{section}: an object of settings is expected", command_id)
        section_model = field.annotation
        known = getattr(section_model, "model_fields", {})
        for key in sub:
            path = f"{section}.{key}"
            if key not in known:
                hint = _did_you_mean(key, list(known))
                raise CommandError("unknown_setting", f"{path}: no such setting{hint}", command_id)
            if key not in allowed[section]:
                raise CommandError("not_runtime", _not_runtime(path, per_capture), command_id)


def _did_you_mean(key: object, known: list[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6) if isinstance(key, str) else []
    return f" (did you mean {close[0]!r}?)" if close else ""


def _not_runtime(path: str, per_capture: bool) -> str:
    if per_capture:
        return f"{path}: cannot be set for a single capture (use settings/set)"
    return f"{path}: cannot change while running (edit the config and restart)"


def apply_settings(current: AppConfig, changes: dict[str, Any], command_id: str | None = None) -> AppConfig:
    """The config with ``changes`` merged in, validated as a whole; ``current`` is untouched."""
    check_keys(changes, RUNTIME_SETTINGS, command_id)
    merged = merge_settings(current.model_dump(mode="json"), changes)
    try:
        return AppConfig.model_validate(merged)
    except ValidationError as e:
        raise CommandError("invalid_value", _first_errors(e), command_id) from None


def parse_settings(payload: bytes) -> tuple[dict[str, Any], str | None]:
    """A settings/set payload: the changes (nested as in the YAML) and an optional id."""
    data = parse_json(payload, allow_empty=False)
    cid = peek_id(data)
    if "id" in data:
        if cid is None:
            raise CommandError("bad_payload", f"id: a string of 1…{MAX_ID_CHARS} characters is expected")
        data = {k: v for k, v in data.items() if k != "id"}
    return data, cid
