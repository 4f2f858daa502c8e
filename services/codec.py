"""Fast, safe (no pickle) JSON codec for the canonical dataclasses.

A record is encoded as a JSON array of its fields in declaration order; converters are
derived once per type from its type hints (Decimal -> str, datetime/date -> ISO string,
enums -> value, nested dataclasses -> arrays, lists/tuples, optionals). Decoding 100,000
invoices takes a fraction of a second, where a validating library took seconds; the
snapshot is our own cache, validated when it was fetched.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import types
import typing
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from typing import Any

Conv = Callable[[Any], Any]


def _identity(v: Any) -> Any:
    return v


def _optional(conv: Conv) -> Conv:
    if conv is _identity:
        return _identity
    return lambda v: None if v is None else conv(v)


_ENC: dict[Any, Conv] = {}
_DEC: dict[Any, Conv] = {}


def _converters(tp: Any) -> tuple[Conv, Conv]:
    """(encode, decode) for a type hint."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) != 1:
            return _identity, _identity  # only JSON scalars are expected in wider unions
        enc, dec = _converters(args[0])
        return _optional(enc), _optional(dec)
    if origin in (list, tuple):
        type_args = typing.get_args(tp)
        item = type_args[0] if type_args else Any
        enc, dec = _converters(item)
        if origin is tuple:
            return (lambda v: [enc(x) for x in v]), (lambda v: tuple(dec(x) for x in v))
        if enc is _identity:
            return list, list
        return (lambda v: [enc(x) for x in v]), (lambda v: [dec(x) for x in v])
    if origin is dict:
        return _identity, _identity
    if tp in (str, int, float, bool, Any, object):
        return _identity, _identity
    if tp is Decimal:
        return str, Decimal
    if tp is datetime:
        return (lambda v: v.isoformat()), datetime.fromisoformat
    if tp is date:
        return (lambda v: v.isoformat()), date.fromisoformat
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return (lambda v: v.value), tp
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return encoder(tp), decoder(tp)
    raise TypeError(f"codec: unsupported type {tp!r}")


def _plan(cls: type) -> list[tuple[str, Conv, Conv]]:
    hints = typing.get_type_hints(cls)
    return [(f.name, *_converters(hints[f.name])) for f in dataclasses.fields(cls)]


def encoder(cls: type) -> Conv:
    if cls not in _ENC:
        _ENC[cls] = _identity  # placeholder for recursive types
        plan = _plan(cls)
        _ENC[cls] = lambda obj: [enc(getattr(obj, name)) for name, enc, _ in plan]
    return lambda obj: _ENC[cls](obj)


def decoder(cls: type) -> Conv:
    if cls not in _DEC:
        _DEC[cls] = _identity
        plan = _plan(cls)
        # only the fields that need converting are touched; the rest pass straight through
        convs = [(i, dec) for i, (_, _, dec) in enumerate(plan) if dec is not _identity]
        n = len(plan)

        def decode(row: list[Any]) -> Any:
            if len(row) != n:
                raise ValueError(f"{cls.__name__}: expected {n} fields, got {len(row)}")
            for i, dec in convs:
                row[i] = dec(row[i])
            return cls(*row)

        _DEC[cls] = decode
    return lambda row: _DEC[cls](row)


def dumps(obj: Any) -> str:
    return json.dumps(encoder(type(obj))(obj), separators=(",", ":"), ensure_ascii=False)


def loads(cls: type, text: str | bytes) -> Any:
    return decoder(cls)(json.loads(text))


def loads_many(cls: type, texts: list[str]) -> list[Any]:
    """Decode many rows with one JSON parse (joins them into one array first)."""
    if not texts:
        return []
    dec = decoder(cls)
    return [dec(row) for row in json.loads("[" + ",".join(texts) + "]")]
