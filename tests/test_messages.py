"""The outgoing payloads have one definition (edgeportrait.messages); the docs' examples follow it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from edgeportrait.config import RUNTIME_SETTINGS, AppConfig
from edgeportrait.messages import ErrorMessage, HealthMessage, ResultMessage, settings_state

DOC = Path(__file__).resolve().parents[1] / "docs" / "mqtt.md"


def _examples() -> list[dict]:
    blocks = re.findall(r"```json\n(.*?)```", DOC.read_text(), flags=re.S)
    out = []
    for b in blocks:
        doc = json.loads(b)
        if isinstance(doc, dict):
            out.append(doc)
    return out


def _example(key: str) -> dict:
    found = [d for d in _examples() if key in d]
    assert found, f"docs/mqtt.md has no example with {key!r}"
    return found[0]


@pytest.mark.parametrize(
    ("model", "key"), [(ResultMessage, "seq"), (HealthMessage, "uptime_s"), (ErrorMessage, "error")]
)
def test_docs_example_is_a_valid_message(model: type, key: str) -> None:
    """Each example payload in docs/mqtt.md parses as the message the code sends, no field missing or extra."""
    model.model_validate(_example(key))


def test_a_field_the_model_does_not_declare_is_refused() -> None:
    """The models are strict, so a test or doc example with a stray or a missing field fails."""
    result = _example("seq")
    with pytest.raises(ValidationError):
        ResultMessage.model_validate({**result, "extra": 1})
    with pytest.raises(ValidationError):
        ResultMessage.model_validate({k: v for k, v in result.items() if k != "sha256"})


def test_settings_state_has_every_runtime_setting_and_nothing_else() -> None:
    state = settings_state(AppConfig())
    assert {s: set(keys) for s, keys in state.items()} == {s: set(k) for s, k in RUNTIME_SETTINGS.items()}
