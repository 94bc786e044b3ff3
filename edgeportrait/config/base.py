"""The base every config section derives from: typos are errors, values are checked."""

from __future__ import annotations

import types
import typing
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator

_NUMBERS = (int, float)
_UNIONS = (typing.Union, types.UnionType)


def _is_number_literal(annotation: Any) -> bool:
    args = typing.get_args(annotation)
    return bool(args) and all(isinstance(a, _NUMBERS) and not isinstance(a, bool) for a in args)


def _not_a_number(value: Any, annotation: Any) -> str | None:
    """Why ``value`` is not the number(s) ``annotation`` asks for (a bool or a string), else None.

    Looks through ``Annotated``, ``X | None``, numeric ``Literal``s and
    ``tuple``/``list`` of numbers, so ``color: [true, "2", 3]`` is caught like
    ``blur: "50"``. Anything else (a union with a non-number, a string field)
    is left to pydantic.
    """
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return _not_a_number(value, typing.get_args(annotation)[0])
    if origin in _UNIONS:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if value is None or not all(_numeric(a) for a in args):
            return None
        return _not_a_number(value, args[0])
    if annotation in _NUMBERS or (origin is Literal and _is_number_literal(annotation)):
        if isinstance(value, (bool, str, bytes)):
            return f"a number is expected, not {type(value).__name__}"
        return None
    if origin in (tuple, list) and isinstance(value, (list, tuple)):
        types_ = typing.get_args(annotation)
        # tuple[X, Y, Z] types each item; tuple[X, ...] and list[X] type all alike
        per_item = origin is tuple and Ellipsis not in types_
        for i, item in enumerate(value):
            if per_item and i >= len(types_):
                break  # too many items: pydantic says so
            why = _not_a_number(item, types_[i] if per_item else types_[0])
            if why is not None:
                return f"item {i}: {why}"
    return None


def _numeric(annotation: Any) -> bool:
    """True for number-only annotations: int, float, numeric Literal, tuples/lists of them (optionally Annotated)."""
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return _numeric(typing.get_args(annotation)[0])
    if annotation in _NUMBERS:
        return True
    if origin is Literal:
        return _is_number_literal(annotation)
    if origin in _UNIONS:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return bool(args) and all(_numeric(a) for a in args)
    if origin in (tuple, list):
        args = [a for a in typing.get_args(annotation) if a is not Ellipsis]
        return bool(args) and all(_numeric(a) for a in args)
    return False


class Section(BaseModel):
    """A config section: unknown keys are rejected, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)

    @field_validator("*", mode="before")
    @classmethod
    def _numbers_are_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        # pydantic's lax mode reads `true` as 1 and "50" as 50 (also inside a
        # list such as portrait.color); from YAML or an MQTT command that is a
        # mistake to report, not a value to guess.
        field = cls.model_fields.get(info.field_name or "")
        if field is not None and _numeric(field.annotation):
            why = _not_a_number(value, field.annotation)
            if why is not None:
                raise ValueError(why)
        return value
