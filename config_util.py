"""Validate a plain dict into a typed, frozen config dataclass with pydantic, one line per error.

Why a neutral module: both `jobs/` (the YAML job config) and `pipeline/` (each stage builds its
own config) need it, and `pipeline/` must not import `jobs/`.

Why pydantic over stdlib dataclasses rather than pydantic models: each stage's config stays a
plain frozen dataclass in its own module (other modules add fields to them freely), and pydantic
reads their type hints at validation time, so a new field is typed, coerced and checked with no
change here. Every dataclass reachable from the validated type is marked `extra="forbid"`, so an
unknown key is an error that names the closest valid key (difflib), never a silently ignored one.
Values are coerced the lax way a YAML user expects (`"1e-4"` to a float, `5.0` to an int, a list
to a tuple) and refused when they cannot be (`"abc"` for an int).
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import types
import typing
from typing import Any

from laitkit.errors import UserError

_CONFIG = {"extra": "forbid", "coerce_numbers_to_str": True}


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _inner_types(tp: Any) -> list[Any]:
    """The types a hint may hold: `X | None` → [X], `tuple[X, ...]` → [X], `dict[str, X]` → [X]."""
    origin = typing.get_origin(tp)
    if origin is None:
        return [tp]
    if origin in (typing.Union, types.UnionType, tuple, list, dict, typing.Literal):
        args = typing.get_args(tp)
        if origin is dict:
            args = args[1:]
        if origin is typing.Literal:
            return []
        return [a for a in args if a is not type(None) and a is not Ellipsis]
    return []


def mark_strict(tp: Any, seen: set[int] | None = None) -> None:
    """Give every dataclass reachable from `tp` pydantic's `extra="forbid"` (once per class)."""
    seen = set() if seen is None else seen
    for t in _inner_types(tp):
        if typing.get_origin(t) is not None:
            mark_strict(t, seen)
            continue
        if not (isinstance(t, type) and dataclasses.is_dataclass(t)) or id(t) in seen:
            continue
        seen.add(id(t))
        if "__pydantic_config__" not in t.__dict__:
            t.__pydantic_config__ = dict(_CONFIG)
        for hint in _hints(t).values():
            mark_strict(hint, seen)


@functools.cache
def adapter(tp: Any) -> Any:
    """A cached pydantic `TypeAdapter` of `tp` (building one reads every type hint: slow-ish)."""
    from pydantic import TypeAdapter

    mark_strict(tp)
    return TypeAdapter(tp)


def _class_at(tp: Any, loc: tuple[Any, ...]) -> Any:
    """The dataclass that the path `loc` points into (for naming its valid keys)."""
    current = tp
    for part in loc:
        if isinstance(part, int):
            continue
        candidates = [t for t in _inner_types(current) if isinstance(t, type) and dataclasses.is_dataclass(t)]
        if candidates and part in _hints(candidates[0]):
            current = _hints(candidates[0])[part]
            continue
        dicts = [t for t in _inner_types(current) if typing.get_origin(t) is dict]
        if typing.get_origin(current) is dict or dicts:
            current = typing.get_args(dicts[0] if dicts else current)[1]
            continue
        return None
    found = [t for t in _inner_types(current) if isinstance(t, type) and dataclasses.is_dataclass(t)]
    return found[0] if found else None


def _dotted(where: str, loc: tuple[Any, ...]) -> str:
    parts = [where] if where else []
    for p in loc:
        if isinstance(p, int):
            parts[-1:] = [f"{parts[-1]}[{p}]"] if parts else [f"[{p}]"]
        else:
            parts.append(str(p))
    return ".".join(parts) or "config"


def error_lines(exc: Any, tp: Any, where: str) -> list[str]:
    """One line per pydantic error: `where.key: what is wrong (got VALUE)`."""
    lines = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        path = _dotted(where, loc)
        kind = err["type"]
        if kind == "unexpected_keyword_argument":
            cls = _class_at(tp, loc[:-1])
            known = sorted(f.name for f in dataclasses.fields(cls)) if cls else []
            close = difflib.get_close_matches(str(loc[-1]), known, n=1)
            hint = f"did you mean {_dotted(where, (*loc[:-1], close[0]))!r}?" if close else f"known: {', '.join(known)}"
            lines.append(f"unknown key {path!r} ({hint})")
        elif kind in ("dataclass_type", "dict_type", "model_type"):
            lines.append(f"{path}: expected a mapping, got {type(err.get('input')).__name__}")
        elif kind == "value_error":
            msg = str(err["msg"]).removeprefix("Value error, ")
            lines.append(f"{path}: {msg}")
        else:
            lines.append(f"{path}: {err['msg']} (got {err.get('input')!r})")
    return lines


def validate(tp: Any, data: Any, where: str = "") -> Any:
    """`data` (plain dicts, lists, scalars) as an instance of `tp`, or a `UserError` listing each
    problem on its own line."""
    from pydantic import ValidationError

    try:
        return adapter(tp).validate_python(data)
    except ValidationError as exc:
        raise UserError("\n".join(error_lines(exc, tp, where))) from None
    except UserError:
        raise
    except (TypeError, ValueError) as exc:
        raise UserError(f"{where or 'config'}: {exc}") from None


def build_dataclass(cls: type, data: Any, where: str) -> Any:
    """Build a frozen config dataclass from a dict (None: all defaults); an instance passes through."""
    if isinstance(data, cls):
        return data
    return validate(cls, {} if data is None else data, where.replace(": ", "."))


def json_schema(tp: Any) -> dict[str, Any]:
    return adapter(tp).json_schema()
