"""List endpoints: ``limit``, the ``created`` filter and cursor pagination newest first
(``starting_after`` / ``ending_before``) over a per-collection creation-order index
(id -> position), so paging is O(page) and not O(N)."""

from __future__ import annotations

import itertools
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from services.demo.stripe.errors import _invalid, _unknown_param
from services.demo.stripe.forms import _as_int

MAX_LIMIT = 100
DEFAULT_LIMIT = 10

_LIST_PARAMS = ("limit", "starting_after", "ending_before", "expand")


@dataclass(slots=True)
class CreatedRange:
    """Inclusive lower / exclusive upper bound on ``created``."""

    lo: int | None = None
    hi: int | None = None

    def contains(self, created: int) -> bool:
        return (self.lo is None or created >= self.lo) and (self.hi is None or created < self.hi)

    def tighten_lo(self, lo: int) -> None:
        self.lo = lo if self.lo is None else max(self.lo, lo)


def _parse_created(value: Any, param: str = "created") -> CreatedRange:
    rng = CreatedRange()
    if isinstance(value, str):
        exact = _as_int(value, param)
        return CreatedRange(exact, exact + 1)
    if not isinstance(value, dict):
        raise _invalid(f"Invalid {param}", param)
    for op, raw in value.items():
        n = _as_int(raw, f"{param}[{op}]")
        if op == "gt":
            lo, hi = n + 1, None
        elif op == "gte":
            lo, hi = n, None
        elif op == "lt":
            lo, hi = None, n
        elif op == "lte":
            lo, hi = None, n + 1
        else:
            raise _unknown_param(f"{param}[{op}]")
        if lo is not None:
            rng.lo = lo if rng.lo is None else max(rng.lo, lo)
        if hi is not None:
            rng.hi = hi if rng.hi is None else min(rng.hi, hi)
    return rng


def _parse_limit(params: dict[str, Any]) -> int:
    if "limit" not in params:
        return DEFAULT_LIMIT
    limit = _as_int(params["limit"], "limit")
    if limit < 1:
        raise _invalid("This value must be greater than or equal to 1.", "limit", "parameter_invalid_integer")
    if limit > MAX_LIMIT:
        raise _invalid(f"This value must be less than or equal to {MAX_LIMIT}.", "limit",
                       "parameter_invalid_integer")
    return limit


class _Record(Protocol):
    @property
    def id(self) -> str: ...

    @property
    def created(self) -> int: ...


class OrderIndex:
    """Creation order (oldest first; ties in insertion order) of one store collection, with
    ``id -> position`` so a cursor is found in O(1). Kept in step with the collection by
    :meth:`sync`: appended records are added incrementally; a shrunk or replaced collection
    is re-indexed."""

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.created: list[int] = []
        self.records: list[Any] = []
        self.pos: dict[str, int] = {}
        self._source: int = 0
        self._count = 0

    def sync(self, source: dict[str, Any] | list[Any]) -> None:
        n = len(source)
        if id(source) != self._source or n < self._count:
            self._rebuild(source)
        elif n > self._count:
            added = n - self._count
            if isinstance(source, dict):
                tail: list[_Record] = list(itertools.islice(reversed(source.values()), added))[::-1]
            else:
                tail = source[self._count:]
            for rec in tail:
                self._add(rec)
            self._count = n

    def _rebuild(self, source: dict[str, Any] | list[Any]) -> None:
        records: list[_Record] = list(source.values()) if isinstance(source, dict) else list(source)
        records.sort(key=lambda r: r.created)  # stable: ties keep insertion order
        self.records = records
        self.ids = [r.id for r in records]
        self.created = [r.created for r in records]
        self.pos = {oid: i for i, oid in enumerate(self.ids)}
        self._source = id(source)
        self._count = len(source)

    def _add(self, rec: _Record) -> None:
        oid, created = rec.id, rec.created
        if not self.created or created >= self.created[-1]:
            self.pos[oid] = len(self.ids)
            self.ids.append(oid)
            self.created.append(created)
            self.records.append(rec)
            return
        at = bisect_right(self.created, created)
        self.ids.insert(at, oid)
        self.created.insert(at, created)
        self.records.insert(at, rec)
        for i in range(at, len(self.ids)):
            self.pos[self.ids[i]] = i

    def record(self, oid: str) -> Any:
        """The record with this id as indexed (``None`` if unknown)."""
        p = self.pos.get(oid)
        return None if p is None else self.records[p]

    def span(self, rng: CreatedRange) -> range:
        """Positions whose ``created`` lies in ``rng``."""
        lo = 0 if rng.lo is None else bisect_left(self.created, rng.lo)
        hi = len(self.ids) if rng.hi is None else bisect_left(self.created, rng.hi)
        return range(lo, max(lo, hi))

    def positions(self, ids: Iterable[str]) -> list[int]:
        """Sorted positions of a (small) subset of ids, e.g. from a secondary index."""
        pos = self.pos
        return sorted(pos[i] for i in ids if i in pos)


@dataclass(slots=True)
class Page:
    ids: list[str]
    has_more: bool


def paginate(index: OrderIndex, candidates: Sequence[int], match: Callable[[str], bool], limit: int,
             starting_after: str | None = None, ending_before: str | None = None) -> Page:
    """One page newest first. ``candidates`` are ascending positions in ``index``;
    ``match(id)`` filters. Work is proportional to the records walked, not to the collection."""
    ids = index.ids
    out: list[str] = []
    if ending_before is not None:
        start = bisect_right(candidates, index.pos[ending_before])
        walk: Iterator[int] = (candidates[i] for i in range(start, len(candidates)))
    else:
        end = len(candidates) if starting_after is None else bisect_left(candidates, index.pos[starting_after])
        walk = (candidates[i] for i in range(end - 1, -1, -1))
    for p in walk:
        oid = ids[p]
        if match(oid):
            out.append(oid)
            if len(out) > limit:
                break
    has_more = len(out) > limit
    out = out[:limit]
    if ending_before is not None:
        out.reverse()
    return Page(out, has_more)
