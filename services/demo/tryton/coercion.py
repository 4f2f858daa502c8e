"""Value coercion: what trytond's fields accept on write and in domains.

:func:`coerce` turns a client value into the value stored for a field; :func:`coerce_operand`
makes a domain operand comparable with stored values.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from services.demo.tryton.schema import FieldDef


def _to_decimal(value: Any) -> Decimal:
    if isinstance(value, Decimal):
        return value
    if isinstance(value, bool):
        raise TypeError(f"invalid Numeric value {value!r}")
    if isinstance(value, int | float | str):
        try:
            return Decimal(str(value))
        except InvalidOperation:
            raise ValueError(f"invalid Numeric value {value!r}") from None
    raise TypeError(f"invalid Numeric value {value!r}")


def to_date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        return date.fromisoformat(value)
    raise TypeError(f"invalid Date value {value!r}")


def _to_datetime(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value
    if isinstance(value, date):
        return datetime.combine(value, time())
    if isinstance(value, str):
        return _to_datetime(datetime.fromisoformat(value))
    raise TypeError(f"invalid DateTime value {value!r}")


def _to_seconds(value: Any) -> float:
    """A TimeDelta as stored here: seconds (the demo world's file has no timedelta tag)."""
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    raise TypeError(f"invalid TimeDelta value {value!r}")


def coerce(fd: FieldDef, value: Any) -> Any:
    """A stored value for ``fd`` from a client value (``None`` stays ``None``)."""
    if value is None:
        return False if fd.kind == "boolean" else None
    kind = fd.kind
    if kind in ("char", "text", "selection"):
        if not isinstance(value, str):
            raise TypeError(f"invalid value {value!r} for field {fd.name!r}")
        return value
    if kind == "multiselection":
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise TypeError(f"invalid value {value!r} for field {fd.name!r}")
        return sorted(set(value))
    if kind == "binary":
        if isinstance(value, bytes | bytearray | memoryview):
            return bytes(value)
        if isinstance(value, str):
            return value.encode("utf-8")
        raise TypeError(f"invalid value {value!r} for field {fd.name!r}")
    if kind == "timedelta":
        return _to_seconds(value)
    if kind == "boolean":
        return bool(value)
    if kind in ("many2one", "integer"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"invalid value {value!r} for field {fd.name!r}")
        return value
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
            raise TypeError(f"invalid value {value!r} for field {fd.name!r}")
        return float(value)
    if kind == "numeric":
        return _to_decimal(value)
    if kind == "date":
        return to_date(value)
    if kind in ("datetime", "timestamp"):
        return _to_datetime(value)
    if kind == "reference":  # "model,id", or [model, id] as clients may send it
        if isinstance(value, list | tuple) and len(value) == 2:
            return f"{value[0]},{value[1]}"
        if not isinstance(value, str):
            raise TypeError(f"invalid value {value!r} for field {fd.name!r}")
        return value
    return value


def coerce_operand(fd: FieldDef, value: Any) -> Any:
    """A domain operand comparable with stored values of ``fd``."""
    if value is None:
        return None
    with contextlib.suppress(TypeError, ValueError):
        if fd.kind == "numeric" and not isinstance(value, bool):
            return _to_decimal(value)
        if fd.kind == "date" and isinstance(value, date | str):
            return to_date(value)
        if fd.kind in ("datetime", "timestamp") and isinstance(value, date | str):
            return _to_datetime(value)
        if fd.kind == "timedelta" and isinstance(value, timedelta):
            return value.total_seconds()
        if fd.kind == "float" and isinstance(value, Decimal):
            return float(value)
    return value
