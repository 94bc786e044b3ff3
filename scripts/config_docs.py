#!/usr/bin/env python3
"""Render the configuration reference (docs/configuration-reference.md) from the typed config models.

The models are the single source of truth for names, defaults, bounds and
descriptions; `tests/test_config_docs.py` fails when the committed page is
stale. Regenerate with:  python scripts/config_docs.py > docs/configuration-reference.md
"""

from __future__ import annotations

import json
import sys

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from edgeportrait.config import RUNTIME_SETTINGS, AppConfig

HEADER = """\
# Configuration reference

Generated from the config models by `python scripts/config_docs.py`; do not
edit by hand. Every key is optional; unknown keys are errors. Keys marked
"runtime" can also be changed while the daemon runs (`B/settings/set`) or for
one capture (`B/capture` → `settings`) or one call (`process --blur/--mode`).
"""


def _default(field: FieldInfo) -> str:
    if field.default_factory is not None:
        value = field.default_factory()  # type: ignore[call-arg]
        if isinstance(value, BaseModel):
            return "(section)"
        if field.description and "host name" in field.description:
            return "host name"
    else:
        value = field.default
    if value is None:
        return "null"
    if isinstance(value, tuple):
        value = list(value)
    return f"`{json.dumps(value, default=str)}`"


def _bounds(field: FieldInfo) -> str:
    parts = []
    for meta in field.metadata:
        for attr, sym in (("ge", "≥"), ("gt", ">"), ("le", "≤"), ("lt", "<"), ("min_length", "min length")):
            v = getattr(meta, attr, None)
            if v is not None:
                parts.append(f"{sym} {v}")
    return ", ".join(parts)


def _type(field: FieldInfo) -> str:
    text = str(field.annotation).replace("typing.", "").replace("pathlib.", "").replace("pydantic.types.", "")
    text = text.replace("<class '", "").replace("'>", "").replace("Literal", "one of ")
    return text.replace("|", "\\|")


def _section(model: type[BaseModel], path: str, out: list[str]) -> None:
    rows = []
    nested = []
    section_runtime = RUNTIME_SETTINGS.get(path.split(".")[0], frozenset()) if path else frozenset()
    for name, field in model.model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            nested.append((name, ann))
            continue
        runtime = "runtime" if (path and "." not in path and name in section_runtime) else ""
        desc = (field.description or "").replace("|", "\\|")
        rows.append(f"| `{name}` | {_type(field)} | {_default(field)} | {_bounds(field)} | {runtime} | {desc} |")
    if rows:
        out.append(f"\n## `{path or '(top level)'}`\n")
        out.append("| key | type | default | bounds | | description |")
        out.append("|---|---|---|---|---|---|")
        out.extend(rows)
    for name, sub in nested:
        _section(sub, f"{path}.{name}" if path else name, out)


def render() -> str:
    out: list[str] = [HEADER]
    _section(AppConfig, "", out)
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    sys.stdout.write(render())
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))


