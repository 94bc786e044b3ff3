"""The configuration reference is generated from the config models and must not be stale."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_configuration_reference_matches_the_models() -> None:
    """docs/configuration-reference.md == `python scripts/config_docs.py` (regenerate it when a setting changes)."""
    generated = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "config_docs.py")], capture_output=True, text=True, check=True
    ).stdout
    committed = (ROOT / "docs" / "configuration-reference.md").read_text()
    assert committed == generated, "stale: run python scripts/config_docs.py > docs/configuration-reference.md"


def _check_section(model: type, path: str, text: str) -> None:
    for name, field in model.model_fields.items():  # type: ignore[attr-defined]
        sub = field.annotation if hasattr(field.annotation, "model_fields") else None
        full = f"{path}.{name}" if path else name
        if sub is None:
            assert f"| `{name}` |" in text, full
        else:
            assert f"## `{full}`" in text, full
            _check_section(sub, full, text)


def test_every_section_and_key_is_in_the_reference() -> None:
    from edgeportrait.config import AppConfig

    _check_section(AppConfig, "", (ROOT / "docs" / "configuration-reference.md").read_text())
