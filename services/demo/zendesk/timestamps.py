"""Time in the demo Zendesk server: its clock, Zendesk's timestamp format, the incremental
export's microsecond key, JSON-ready values and the dates search and custom fields accept."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

Clock = Callable[[], datetime]


def iso(value: datetime | None) -> str | None:
    """Zendesk's timestamp format: ``2024-01-31T12:00:00Z`` (UTC, whole seconds)."""
    if value is None:
        return None
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def micros(value: datetime) -> int:
    """Exact microseconds since the epoch (the incremental export's sort key)."""
    return (value - EPOCH) // timedelta(microseconds=1)


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def _parse_when(value: str) -> datetime | None:
    try:
        if len(value) == 10:
            return datetime.fromisoformat(value).replace(tzinfo=UTC)
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
