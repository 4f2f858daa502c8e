"""One RPC call as a transaction: every mutation journalled and undone when the call fails,
as trytond rolls back its database transaction."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from services.demo.tryton.schema import Record
from services.demo.tryton.watermarks import record_stamp

if TYPE_CHECKING:
    from services.demo.tryton.service import TrytonService


def _copy_record(rec: Record) -> Record:
    return {k: (list(v) if isinstance(v, list) else v) for k, v in rec.items()}


class Transaction:
    """One RPC call: user, context, start time and an undo journal of every mutation."""

    def __init__(self, service: TrytonService, user: int, context: dict[str, Any], now: datetime) -> None:
        self.service = service
        self.store = service.store
        self.schema = service.schema
        self.user = user
        self.context = context
        self.now = now
        self._undo: dict[tuple[str, int], Record | None] = {}
        self._on_rollback: list[Callable[[], None]] = []
        #: the ids created in this call, per model, in order (trytond's ``Transaction.create_records``:
        #: ``res.user.warning.format`` names such a record by its rank, not its id)
        self.created: defaultdict[str, list[int]] = defaultdict(list)

    @property
    def wrote(self) -> bool:
        return bool(self._undo)

    def on_rollback(self, fn: Callable[[], None]) -> None:
        self._on_rollback.append(fn)

    def _journal(self, model: str, rid: int) -> None:
        key = (model, rid)
        if key not in self._undo:
            rec = self.store.tables[model].get(rid)
            self._undo[key] = None if rec is None else _copy_record(rec)

    def insert(self, model: str, values: Record) -> int:
        rid = self.store.insert(model, values)
        self.created[model].append(rid)
        self._undo.setdefault((model, rid), None)
        rec = self.store.tables[model][rid]
        self._link(model, rid, {}, rec)
        self.service.watermarks.moved(model, rid, None, record_stamp(rec))
        return rid

    def update(self, model: str, rid: int, values: Record) -> None:
        self._journal(model, rid)
        rec = self.store.tables[model][rid]
        before = {k: rec.get(k) for k in values}
        old_stamp = record_stamp(rec)
        self.store.update(model, rid, values)
        self._link(model, rid, before, values)
        self.service.watermarks.moved(model, rid, old_stamp, record_stamp(rec))

    def delete(self, model: str, rid: int) -> None:
        self._journal(model, rid)
        rec = self.store.tables[model][rid]
        old_stamp = record_stamp(rec)
        self.store.delete(model, rid)
        self._link(model, rid, rec, {k: None for k in rec})
        self.service.watermarks.moved(model, rid, old_stamp, None)

    def _link(self, model: str, rid: int, before: Record, after: Record) -> None:
        """Keep parents' one2many id lists in step with the children's many2one."""
        for (child, m2o), parents in self.schema.parents.items():
            if child != model or m2o not in after:
                continue
            old, new = before.get(m2o), after.get(m2o)
            if old == new:
                continue
            for parent_model, o2m in parents:
                table = self.store.tables[parent_model]
                if old is not None and old in table:
                    ids = [i for i in table[old].get(o2m) or [] if i != rid]
                    self._set_list(parent_model, old, o2m, ids)
                if new is not None and new in table:
                    ids = list(table[new].get(o2m) or [])
                    if rid not in ids:
                        ids.append(rid)
                    self._set_list(parent_model, new, o2m, ids)

    def _set_list(self, model: str, rid: int, name: str, ids: list[int]) -> None:
        self._journal(model, rid)
        self.store.update(model, rid, {name: ids})
        stamp = record_stamp(self.store.tables[model][rid])
        self.service.watermarks.moved(model, rid, stamp, stamp)  # unchanged; re-signs the index

    def rollback(self) -> None:
        for fn in reversed(self._on_rollback):
            fn()
        for (model, rid), original in reversed(list(self._undo.items())):
            table = self.store.tables[model]
            current = table.get(rid)
            if original is None:
                if current is not None:
                    self.store.delete(model, rid)
            elif current is None:
                table[rid] = original
                for f in self.store.INDEXED.get(model, ()):
                    self.store.indexes[(model, f)][original.get(f)].add(rid)
            else:
                self.store.update(model, rid, original)
                for k in [k for k in current if k not in original]:
                    del current[k]
            self.service.watermarks.invalidate(model)
        self._undo.clear()
