"""Fast, safe (no pickle) JSON codec for the canonical dataclasses.

A record is encoded as a JSON array of its fields in declaration order; converters are
derived once per type from its type hints (Decimal -> str, datetime/date -> ISO string,
enums -> value, nested dataclasses -> arrays, lists/tuples, optionals). Decoding 100,000
invoices takes a fraction of a second, where a validating library took seconds; the
snapshot is our own cache, validated when it was fetched.

Two decode-time economies matter at 100,000 customers (millions of records):
- identifiers and codes (fields named ``id``, ``kind``, ``currency``, ``*_id``, ``*_key``) are
  interned: the same customer id repeated on a dozen records is one string, and dictionary
  look-ups by it succeed on identity instead of comparing characters;
- value classes marked ``__codec_shared__`` (immutable, e.g. ``Money``) are decoded once per
  distinct value and shared: a few thousand amounts instead of a million objects, and equal
  amounts compare by identity.
:func:`gc_paused` keeps the cyclic garbage collector out of a bulk decode (it would otherwise
traverse every freshly made record again and again: more than half of a large load).

A row shorter than its class (written before fields with defaults were added at the end of
it) decodes with those fields at their defaults: a snapshot stays readable across versions.
"""

from __future__ import annotations

import dataclasses
import enum
import gc
import json
import sys
import threading
import types
import typing
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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


#: the most distinct values one shared class keeps (past it, values decode unshared)
SHARED_CAP = 200_000


def interned_field(name: str) -> bool:
    """Identifier and code fields: short, heavily repeated, used as dictionary keys."""
    return name in ("id", "kind", "currency") or name.endswith(("_id", "_key"))


def _converters(tp: Any, name: str = "") -> tuple[Conv, Conv]:
    """(encode, decode) for a type hint (``name``: the field's, when it is one)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) != 1:
            return _identity, _identity  # only JSON scalars are expected in wider unions
        enc, dec = _converters(args[0], name)
        return _optional(enc), _optional(dec)
    if tp is str and name and interned_field(name):
        return _identity, _intern
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
        return (lambda v: v.value), _enum_decoder(tp)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return encoder(tp), decoder(tp)
    raise TypeError(f"codec: unsupported type {tp!r}")


def _plan(cls: type) -> list[tuple[str, Conv, Conv]]:
    hints = typing.get_type_hints(cls)
    return [(f.name, *_converters(hints[f.name], f.name)) for f in dataclasses.fields(cls)]


def _required_count(cls: type) -> int:
    """How many leading fields a row must hold: up to the last field without a default (a row
    written before fields with defaults were added at the end still decodes: the snapshot of
    an older version)."""
    count = 0
    for i, f in enumerate(dataclasses.fields(cls)):
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            count = i + 1
    return count


def _enum_decoder(tp: type[enum.Enum]) -> Conv:
    """A dictionary look-up by value (``Enum.__call__`` is Python code, ten times slower); an
    unknown value still raises the enum's own ValueError."""
    members = tp._value2member_map_

    def decode(value: Any) -> Any:
        try:
            return members[value]
        except (KeyError, TypeError):
            return tp(value)

    return decode


def _intern(value: Any) -> Any:
    return sys.intern(value) if type(value) is str else value


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
        required = _required_count(cls)

        def decode(row: list[Any]) -> Any:
            if len(row) != n:
                if not required <= len(row) < n:
                    raise ValueError(f"{cls.__name__}: expected {n} fields, got {len(row)}")
                # written before the trailing fields existed: those take their defaults
                m = len(row)
                for i, dec in convs:
                    if i < m:
                        row[i] = dec(row[i])
                return cls(*row)
            for i, dec in convs:
                row[i] = dec(row[i])
            return cls(*row)

        if getattr(cls, "__codec_shared__", False):
            _DEC[cls] = _shared(decode)
        else:
            _DEC[cls] = decode
    built = _DEC[cls]
    if built is _identity:  # still being built (a recursive type): look it up when called
        return lambda row: _DEC[cls](row)
    return built


def _shared(decode: Conv) -> Conv:
    """One object per distinct encoded value (the class must be immutable)."""
    cache: dict[tuple[Any, ...], Any] = {}

    def shared(row: list[Any]) -> Any:
        try:
            key = tuple(row)
            hit = cache.get(key)
        except TypeError:  # a nested list: not a plain value row
            return decode(row)
        if hit is None:
            hit = decode(row)
            if len(cache) < SHARED_CAP:
                cache[key] = hit
        return hit

    return shared


class _GcPause:
    """Counts pauses across threads; the collector comes back when the last one ends (and
    only if it was on before the first)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.depth = 0
        self.was_enabled = True

    def enter(self) -> None:
        with self.lock:
            if self.depth == 0:
                self.was_enabled = gc.isenabled()
                gc.disable()
            self.depth += 1

    def leave(self) -> None:
        with self.lock:
            self.depth -= 1
            if self.depth == 0 and self.was_enabled:
                gc.enable()


_GC_PAUSE = _GcPause()


@contextmanager
def gc_paused(freeze: bool = False) -> Iterator[None]:
    """Keep the cyclic collector off during a bulk decode (nested and multi-thread safe).
    ``freeze``: afterwards, move every tracked object to the permanent generation (for
    long-lived results: the collector never walks them again; refcounting still frees them)."""
    _GC_PAUSE.enter()
    try:
        yield
    finally:
        if freeze:
            gc.freeze()
        _GC_PAUSE.leave()


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
