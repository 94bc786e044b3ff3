"""Layering rules of docs/architecture.md, checked on the source (ast), so a change that breaks one fails here."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "edgeportrait"


def _imports(path: Path) -> set[str]:
    """Every module a file imports, at module level or inside functions (relative imports resolved)."""
    mod = ".".join(path.relative_to(PKG.parent).with_suffix("").parts)
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = mod.rsplit(".", node.level)[0]
                base = f"{parent}.{base}" if base else parent
            out.add(base)
            out.update(f"{base}.{a.name}" for a in node.names)
    return out


@pytest.mark.parametrize("package", ["publish", "web"])
def test_only_the_composition_root_and_the_cli_import_the_transports(package: str) -> None:
    """The MQTT package and the kiosk server are wired in by daemon.py; no other part knows them."""
    allowed = {PKG / "daemon.py", PKG / "cli.py"}
    name = f"edgeportrait.{package}"
    offenders = sorted(
        str(p.relative_to(PKG.parent))
        for p in PKG.rglob("*.py")
        if p not in allowed
        and PKG / package not in p.parents
        and any(m == name or m.startswith(name + ".") for m in _imports(p))
    )
    assert offenders == []


def test_the_capture_core_raises_no_command_errors_and_sizes_nothing_for_mqtt() -> None:
    src = (PKG / "captures.py").read_text()
    assert "CommandError" not in src and "jpeg_for_mqtt" not in src
    assert not any(m.startswith(("paho", "edgeportrait.commands")) for m in _imports(PKG / "captures.py"))
