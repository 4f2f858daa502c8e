"""The ``metadata`` parameter: parsed with Stripe's limits (40-character keys, 500-character
values, 50 keys) and merged into an object's metadata (an empty string unsets)."""

from __future__ import annotations

from typing import Any

from services.demo.stripe.errors import _invalid


def _parse_metadata(value: Any, param: str = "metadata") -> dict[str, str | None] | None:
    """``None`` = unset all; otherwise key -> value (``None`` unsets that key)."""
    if isinstance(value, str):
        if value == "":
            return None
        raise _invalid("Invalid object", param)
    if not isinstance(value, dict):
        raise _invalid("Invalid object", param)
    out: dict[str, str | None] = {}
    for k, v in value.items():
        if not isinstance(v, str):
            raise _invalid(f"Invalid value for {param}[{k}]: metadata values must be strings", f"{param}[{k}]")
        if len(k) > 40:
            raise _invalid("Metadata keys can have up to 40 characters.", f"{param}[{k}]")
        if len(v) > 500:
            raise _invalid("Metadata values can have up to 500 characters.", f"{param}[{k}]")
        out[k] = v or None
    return out


def _apply_metadata(current: dict[str, str], changes: dict[str, str | None] | None) -> dict[str, str | None]:
    """Merge in place; returns previous values of changed keys (``None`` = was absent)."""
    previous: dict[str, str | None] = {}
    if changes is None:
        previous = dict(current)
        current.clear()
        return previous
    for k, v in changes.items():
        old = current.get(k)
        if old == v:
            continue
        previous[k] = old
        if v is None:
            current.pop(k, None)
        else:
            current[k] = v
    if len(current) > 50:
        raise _invalid("Metadata can have up to 50 keys.", "metadata")
    return previous
