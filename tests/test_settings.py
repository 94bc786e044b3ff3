"""RuntimeSettings (one owner of the running settings) and the command Dispatcher (the handler table)."""

from __future__ import annotations

import pytest

from edgeportrait.commands import Command, CommandError, CommandKind, Dispatcher
from edgeportrait.config import AppConfig, ModelConfig
from edgeportrait.errors import Refusal
from edgeportrait.settings import RuntimeSettings, SettingsChange


def _settings() -> tuple[RuntimeSettings, list[SettingsChange]]:
    rs = RuntimeSettings(AppConfig(model=ModelConfig(name="landscape", precision="fp32", device="CPU")))
    seen: list[SettingsChange] = []
    rs.subscribe(seen.append)
    return rs, seen


def test_a_valid_change_makes_a_new_snapshot_and_reaches_subscribers() -> None:
    rs, seen = _settings()
    before = rs.snapshot()
    rs.apply({"portrait": {"blur": 7}}, "c1")
    assert rs.snapshot().portrait.blur == 7
    assert before.portrait.blur != 7  # a reader's snapshot never changes under it
    assert [(c.old, c.new.portrait.blur, c.command_id, c.model_requested) for c in seen] == [(before, 7, "c1", False)]


def test_an_invalid_change_changes_nothing_and_tells_nobody() -> None:
    rs, seen = _settings()
    before = rs.snapshot()
    with pytest.raises(CommandError) as e:
        rs.apply({"portrait": {"blur": 1000}}, "bad")
    assert e.value.code == "invalid_value" and e.value.command_id == "bad"
    assert rs.snapshot() is before and seen == []


def test_a_model_change_runs_only_once_the_model_slot_says_so() -> None:
    """The snapshot names the model that runs; the one asked for waits in wanted_model."""
    rs, seen = _settings()
    rs.apply({"model": {"name": "general"}})
    assert rs.snapshot().model.name == "landscape" and rs.wanted_model.name == "general"
    assert seen[-1].model_requested and seen[-1].wanted_model.name == "general"
    # a partial change applies to the model asked for last (still compiling)
    rs.apply({"model": {"precision": "int8"}})
    assert (rs.wanted_model.name, rs.wanted_model.precision) == ("general", "int8")
    rs.model_running(rs.wanted_model)
    assert rs.snapshot().model.key() == ("general", "int8", "CPU")
    assert not seen[-1].model_requested and seen[-1].new.model.name == "general"


def test_asking_again_for_the_running_model_is_a_request_that_cancels_the_pending_one() -> None:
    rs, seen = _settings()
    rs.apply({"model": {"name": "general"}})
    rs.apply({"model": {"name": "landscape"}})
    assert seen[-1].model_requested and seen[-1].wanted_model.name == "landscape"
    rs.apply({"portrait": {"blur": 3}})
    assert not seen[-1].model_requested


def test_a_failing_subscriber_does_not_keep_the_change_from_the_next() -> None:
    rs = RuntimeSettings(AppConfig())
    got: list[int] = []

    def broken(change: SettingsChange) -> None:
        raise RuntimeError("boom")

    rs.subscribe(broken)
    unsubscribe = rs.subscribe(lambda c: got.append(c.new.portrait.blur))
    rs.apply({"portrait": {"blur": 11}})
    unsubscribe()
    rs.apply({"portrait": {"blur": 12}})
    assert got == [11]


def test_dispatcher_routes_by_kind_and_answers_refusals() -> None:
    answers: list[tuple[str | None, str, str]] = []
    handled: list[Command] = []
    d = Dispatcher(lambda *a: answers.append(a))
    d.register(CommandKind.CAPTURE, handled.append)

    def refuse(cmd: Command) -> None:
        raise Refusal("busy", "full", "id-1")

    d.register(CommandKind.SETTINGS, refuse)
    d(Command(CommandKind.CAPTURE, b"{}"))
    d(Command(CommandKind.SETTINGS, b"{}"))
    d(Command(CommandKind.HEALTH, b""))  # no handler: ignored
    assert [c.kind for c in handled] == [CommandKind.CAPTURE]
    assert answers == [("id-1", "busy", "full")]
    with pytest.raises(ValueError):
        d.register(CommandKind.CAPTURE, handled.append)
