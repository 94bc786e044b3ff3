"""The base every config section derives from: typos are errors, values are checked."""

from __future__ import annotations

import types
import typing
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator

_NUMBERS = (int, float)


def _numeric_only(annotation: Any) -> bool:
    """True for int, float and their optional forms (not bool, str or unions with them)."""
    if annotation in _NUMBERS:
        return True
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return bool(args) and all(a in _NUMBERS for a in args)
    return False


class Section(BaseModel):
    """A config section: unknown keys are rejected, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)

    @field_validator("*", mode="before")
    @classmethod
    def _numbers_are_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        # pydantic's lax mode reads `true` as 1 and "50" as 50; from YAML or an
        # MQTT command that is a mistake to report, not a value to guess.
        field = cls.model_fields.get(info.field_name or "")
        if field is not None and isinstance(value, (bool, str)) and _numeric_only(field.annotation):
            raise ValueError(f"a number is expected, not {type(value).__name__}")
        return value
