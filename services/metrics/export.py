"""The metrics report as plain data (JSON-ready dicts) and as text for people: the figures'
values in their units (percent with two decimals, durations as ``1 h 05 min``)."""

from __future__ import annotations

import dataclasses
import enum
import math
from datetime import datetime
from typing import Any

from services.metrics.model import Figure, MetricsReport, Unit


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, float) and math.isinf(value):
        return None  # JSON has no infinity: an open-ended bucket edge
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(_plain(k)): _plain(v) for k, v in value.items()}
    return value


def report_dict(report: MetricsReport) -> dict[str, Any]:
    """Every part of the report, records included (datetimes ISO 8601, infinity None)."""
    out: dict[str, Any] = _plain(report)
    out["breaches"] = [f.key for f in report.breaches]
    return out


def duration_text(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    s = round(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    if s < 86400:
        return f"{s // 3600} h {s % 3600 // 60:02d} min"
    return f"{s // 86400} d {s % 86400 // 3600:02d} h"


def value_text(value: float | None, unit: Unit) -> str:
    if value is None:
        return "—"
    if unit is Unit.PERCENT:
        return f"{value:.2f} %"
    if unit is Unit.SECONDS:
        return duration_text(value)
    return str(round(value))


def target_text(figure: Figure) -> str:
    t = figure.target
    if t is None:
        return ""
    return f"{t.comparison.value} {value_text(t.value, figure.unit)}"
