"""Validation of MQTT command payloads: every bad payload is a CommandError with a code and nothing changes."""

from __future__ import annotations

import json

import pytest

from edgeportrait.commands import (
    CommandError,
    apply_settings,
    parse_capture,
    parse_settings,
)
from edgeportrait.config import AppConfig
from edgeportrait.messages import ErrorMessage, settings_state


def test_empty_capture_is_a_plain_capture() -> None:
    """An empty payload is a valid capture with no id (one is generated later)."""
    c = parse_capture(b"")
    assert c.id is None and c.countdown_s is None and c.settings is None


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        (b"\xff\xfe", "bad_json"),
        (b"{not json", "bad_json"),
        (b"[" * 50_000, "bad_json"),
        (b'{"countdown_s": NaN}', "bad_json"),
        (b"[1, 2]", "bad_payload"),
        (b'"text"', "bad_payload"),
        (b'{"countdown_s": "3"}', "bad_payload"),
        (b'{"countdown_s": true}', "bad_payload"),
        (b'{"countdown_s": 61}', "bad_payload"),
        (b'{"id": ""}', "bad_payload"),
        (b'{"unknown": 1}', "bad_payload"),
        (b'{"settings": {"model": {"name": "landscape"}}}', "not_runtime"),
        (b'{"settings": {"portrait": {"nope": 1}}}', "unknown_setting"),
    ],
)
def test_bad_capture_payloads_are_refused_with_a_code(payload: bytes, code: str) -> None:
    """Each kind of broken capture command maps to its B/error code."""
    with pytest.raises(CommandError) as e:
        parse_capture(payload)
    assert e.value.code == code


def test_error_echoes_the_commands_id_when_it_has_one() -> None:
    """A refused capture with a usable id carries that id in its error payload."""
    with pytest.raises(CommandError) as e:
        parse_capture(b'{"id": "abc", "countdown_s": -1}')
    assert e.value.command_id == "abc"
    answer = ErrorMessage(id=e.value.command_id, error=e.value.code, detail=e.value.detail)
    assert set(json.loads(answer.json_bytes())) == {"id", "error", "detail"}


def test_settings_change_is_validated_against_the_whole_config() -> None:
    """A good change yields a new config; the current one is not modified."""
    cur = AppConfig()
    new = apply_settings(cur, {"portrait": {"blur": 12}, "pipeline": {"segment_every": 3}})
    assert new.portrait.blur == 12 and new.pipeline.segment_every == 3
    assert cur.portrait.blur == 50 and cur.pipeline.segment_every == 1


@pytest.mark.parametrize(
    ("changes", "code", "path"),
    [
        ({"portrait": {"blur": 101}}, "invalid_value", "portrait.blur"),
        ({"portrait": {"mode": "sepia"}}, "invalid_value", "portrait.mode"),
        ({"pipeline": {"queue_size": 4}}, "not_runtime", "pipeline.queue_size"),
        ({"mqtt": {"host": "evil"}}, "not_runtime", "mqtt"),
        ({"portrait": {"blurr": 3}}, "unknown_setting", "portrait.blurr"),
        ({"nosuch": {}}, "unknown_setting", "nosuch"),
        ({"portrait": 5}, "invalid_value", "portrait"),
        ({"portrait": {"image": "/etc/shadow"}}, "not_runtime", "portrait.image"),
    ],
)
def test_bad_settings_are_refused_naming_the_key(changes: dict, code: str, path: str) -> None:
    """Unknown, restart-only and out-of-range settings are refused with their key path."""
    with pytest.raises(CommandError) as e:
        apply_settings(AppConfig(), changes)
    assert e.value.code == code
    assert e.value.detail.startswith(path)


def test_a_capture_cannot_point_the_daemon_at_a_file() -> None:
    """A per-capture background path is refused like a settings/set one: no file is read on a client's word."""
    with pytest.raises(CommandError) as e:
        parse_capture(b'{"settings": {"portrait": {"image": "/etc/hostname", "mode": "image"}}}')
    assert e.value.code == "not_runtime"


def test_settings_payload_may_carry_an_id() -> None:
    """settings/set accepts an optional id (echoed in errors) that is not a setting itself."""
    changes, cid = parse_settings(b'{"id": "s1", "portrait": {"blur": 3}}')
    assert cid == "s1" and changes == {"portrait": {"blur": 3}}
    with pytest.raises(CommandError) as e:
        parse_settings(b"")
    assert e.value.code == "bad_json"


def test_settings_state_lists_only_runtime_settings() -> None:
    """B/settings/state shows the runtime settings, not the broker address or paths."""
    state = settings_state(AppConfig())
    assert set(state) == {"portrait", "pipeline", "model", "capture", "health", "preview"}
    assert "http" not in state  # the listening address and the token are not runtime settings
    assert "queue_size" not in state["pipeline"] and "output_dir" not in state["capture"]
    json.dumps(state)
