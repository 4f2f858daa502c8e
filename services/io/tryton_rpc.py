"""Tryton's JSON-RPC value encoding, both ways (as ``trytond.protocols.jsonrpc``).

Typed values travel as objects tagged with ``__class__``::

    Decimal    {"__class__": "Decimal", "decimal": "810.00"}
    date       {"__class__": "date", "year": 2024, "month": 1, "day": 31}
    datetime   {"__class__": "datetime", "year", "month", "day", "hour", "minute", "second",
                "microsecond"}                       (naive, UTC)
    time       {"__class__": "time", "hour", "minute", "second", "microsecond"}
    timedelta  {"__class__": "timedelta", "seconds": 90.0}
    bytes      {"__class__": "bytes", "base64": "..."}

Shared by the demo server and usable by clients; no third-party imports.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any


def _encode_scalar(value: Any) -> Any:
    """The tagged object for a typed value; raises TypeError for anything else."""
    if isinstance(value, Decimal):
        return {"__class__": "Decimal", "decimal": str(value)}
    if isinstance(value, datetime):  # before date: datetime is a date
        return {"__class__": "datetime", "year": value.year, "month": value.month, "day": value.day,
                "hour": value.hour, "minute": value.minute, "second": value.second,
                "microsecond": value.microsecond}
    if isinstance(value, date):
        return {"__class__": "date", "year": value.year, "month": value.month, "day": value.day}
    if isinstance(value, time):
        return {"__class__": "time", "hour": value.hour, "minute": value.minute,
                "second": value.second, "microsecond": value.microsecond}
    if isinstance(value, timedelta):
        return {"__class__": "timedelta", "seconds": value.total_seconds()}
    if isinstance(value, bytes | bytearray | memoryview):
        return {"__class__": "bytes", "base64": base64.encodebytes(bytes(value)).decode("ascii")}
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def encode(value: Any) -> Any:
    """A JSON-able copy of ``value`` with Tryton's typed values tagged (recursively)."""
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, dict):
        return {str(k): encode(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [encode(v) for v in value]
    return _encode_scalar(value)


def _decode_datetime(d: dict[str, Any]) -> datetime:
    return datetime(d["year"], d["month"], d["day"], d.get("hour", 0), d.get("minute", 0),
                    d.get("second", 0), d.get("microsecond", 0))


def _decode_bytes(d: dict[str, Any]) -> bytes:
    raw = d["base64"]
    return base64.decodebytes(raw.encode("ascii") if isinstance(raw, str) else bytes(raw))


_DECODERS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "Decimal": lambda d: Decimal(d["decimal"]),
    "date": lambda d: date(d["year"], d["month"], d["day"]),
    "datetime": _decode_datetime,
    "time": lambda d: time(d.get("hour", 0), d.get("minute", 0), d.get("second", 0),
                           d.get("microsecond", 0)),
    "timedelta": lambda d: timedelta(seconds=d["seconds"]),
    "bytes": _decode_bytes,
}


def object_hook(obj: dict[str, Any]) -> Any:
    """``json.loads`` hook: tagged objects become Python values, other objects stay dicts."""
    cls = obj.get("__class__")
    if isinstance(cls, str) and cls in _DECODERS:
        return _DECODERS[cls](obj)
    return obj


def decode(obj: Any) -> Any:
    """Python values from already-parsed JSON (recursively), the inverse of :func:`encode`."""
    if isinstance(obj, dict):
        return object_hook({k: decode(v) for k, v in obj.items()})
    if isinstance(obj, list):
        return [decode(v) for v in obj]
    return obj


def dumps(value: Any) -> bytes:
    """Compact JSON bytes, Tryton-encoded (typed values tagged)."""
    return json.dumps(value, default=_encode_scalar, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8")


def loads(data: bytes | str) -> Any:
    """Parse JSON, turning tagged objects back into Python values."""
    return json.loads(data, object_hook=object_hook)
