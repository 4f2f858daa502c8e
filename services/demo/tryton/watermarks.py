"""The incremental-sync index: records sorted by when they last changed.

The incremental-sync domain ``["OR", ["create_date", ">", W], ["write_date", ">", W]]`` is
answered from a sorted ``(max(create_date, write_date), id)`` index per model, kept up to date
on writes (:class:`~services.demo.tryton.transaction.Transaction` reports every move) and
rebuilt when the table changed behind the server's back.
"""

from __future__ import annotations

import bisect
from datetime import datetime
from itertools import islice
from typing import Any

from services.demo.store import ErpStore
from services.demo.tryton.schema import Record

MAX_ID = 1 << 62


def record_stamp(rec: Record) -> datetime:
    created = rec.get("create_date") or datetime.min
    written = rec.get("write_date")
    return written if written is not None and written > created else created


class WatermarkIndex:
    """Per model, the records sorted by ``(max(create_date, write_date), id)``."""

    def __init__(self, store: ErpStore) -> None:
        self.store = store
        self._keys: dict[str, list[tuple[datetime, int]]] = {}
        self._signatures: dict[str, tuple[Any, ...]] = {}
        self._last: tuple[tuple[str, datetime, bool], list[tuple[datetime, int]], set[int] | None] | None = None

    def _signature(self, model: str) -> tuple[Any, ...]:
        """Changes a server can see without a change counter on the store: inserts and
        deletes. A per-model ``store.versions[model]`` (or a global ``store.version``), if the
        store ever grows one, makes updates behind the server's back visible too."""
        versions = getattr(self.store, "versions", None)
        version = versions.get(model) if isinstance(versions, dict) else getattr(self.store, "version", None)
        return (len(self.store.tables[model]), self.store.next_ids[model], version)

    def _ensure(self, model: str) -> list[tuple[datetime, int]]:
        keys = self._keys.get(model)
        if keys is None or self._signatures.get(model) != self._signature(model):
            keys = sorted((record_stamp(rec), rid) for rid, rec in self.store.tables[model].items())
            self._keys[model] = keys
            self._signatures[model] = self._signature(model)
        return keys

    def after(self, model: str, watermark: datetime, inclusive: bool) -> set[int] | None:
        """Ids stamped after ``watermark``; None when that is every record. The last answer
        is kept until the model's keys change (a query asks twice: predicate and candidates)."""
        keys = self._ensure(model)
        query = (model, watermark, inclusive)
        if self._last is not None and self._last[0] == query and self._last[1] is keys:
            return self._last[2]
        pos = bisect.bisect_left(keys, (watermark,)) if inclusive else bisect.bisect_right(
            keys, (watermark, MAX_ID))
        ids = None if pos == 0 else {rid for _, rid in islice(keys, pos, None)}
        self._last = (query, keys, ids)
        return ids

    def moved(self, model: str, rid: int, old: datetime | None, new: datetime | None) -> None:
        """Record ``rid``'s stamp changed (None: absent) through this server."""
        keys = self._keys.get(model)
        if keys is None:
            return
        if old != new:
            self._last = None
            if old is not None:
                pos = bisect.bisect_left(keys, (old, rid))
                if pos < len(keys) and keys[pos] == (old, rid):
                    del keys[pos]
            if new is not None:
                bisect.insort(keys, (new, rid))
        self._signatures[model] = self._signature(model)

    def invalidate(self, model: str) -> None:
        self._keys.pop(model, None)
        self._last = None
