"""Build a typed, frozen config dataclass from a plain dict, naming unknown keys and bad values.

Why a neutral module: both `jobs/` (the YAML job config) and `pipeline/` (each stage builds its
own config from the job's dict) need it, and `pipeline/` must not import `jobs/`.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from laitkit.errors import UserError


def build_dataclass(cls: type, data: dict[str, Any] | None, where: str) -> Any:
    """Build a (frozen, kw_only) dataclass from a dict; lists become tuples (frozen configs hash)."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise UserError(f"{where}: expected a mapping, got {type(data).__name__}")
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise UserError(f"unknown config key(s) in {where}: {', '.join(unknown)} (known: {', '.join(sorted(names))})")
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
    try:
        return cls(**kwargs)
    except UserError:
        raise
    except (TypeError, ValueError) as exc:
        raise UserError(f"{where}: {exc}") from None
