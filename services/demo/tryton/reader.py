"""Reading records as trytond's ``read`` answers: plain, computed and dotted field names."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from services.demo.tryton.errors import UserError
from services.demo.tryton.schema import STATIC_NAMES, Getter, Record, model_label
from services.demo.tryton.values import FieldValues

RowBuilder = Callable[[Record], dict[str, Any]]


class FieldReader:
    """Builds trytond ``read`` rows: ``{"id": .., field: value, "party.": {...}}``."""

    def __init__(self, values: FieldValues) -> None:
        self.values = values
        self.schema = values.schema
        self.store = values.store

    def all_fields(self, model: str) -> list[str]:
        return list(self.schema.fields(model))

    def plan(self, model: str, names: Iterable[str]) -> RowBuilder:
        """A function record -> row for the requested field names (validated now)."""
        plain: list[tuple[str, Getter]] = []
        related: dict[str, list[str]] = {}
        for name in names:
            if not isinstance(name, str):
                raise TypeError(f"invalid field name {name!r}")
            if name == "_timestamp":
                plain.append((name, self._timestamp))
                continue
            head, dot, rest = name.partition(".")
            if dot:
                self.schema.field(model, head)
                related.setdefault(head, []).append(rest)
            elif name != "id":
                plain.append((name, self.values.getter(model, name)))
        nested = [(head + ".", self._related_builder(model, head, subs)) for head, subs in related.items()]

        def build(rec: Record) -> dict[str, Any]:
            row: dict[str, Any] = {"id": rec["id"]}
            for key, get in plain:
                row[key] = get(rec)
            for key, fn in nested:
                row[key] = fn(rec)
            return row

        return build

    def _related_builder(self, model: str, head: str, subs: list[str]) -> Getter:
        fd = self.schema.field(model, head)
        if fd.kind not in ("many2one", "one2many", "many2many") or fd.relation is None:
            raise KeyError(f"{head}.{subs[0]}")
        target = fd.relation
        if target not in self.schema.models:
            return self._static_builder(target, head, subs)
        sub_plan = self.plan(target, subs)
        table = self.store.tables[target]
        if fd.kind == "many2one":
            def one(rec: Record) -> dict[str, Any] | None:
                tid = rec.get(head)
                trec = table.get(tid) if tid is not None else None
                return None if trec is None else sub_plan(trec)
            return one
        children = self.values.getter(model, head)

        def many(rec: Record) -> list[dict[str, Any]]:
            return [sub_plan(table[cid]) for cid in children(rec) if cid in table]
        return many

    def _static_builder(self, target: str, head: str, subs: list[str]) -> Getter:
        names = STATIC_NAMES.get(target, {})

        def one(rec: Record) -> dict[str, Any] | None:
            tid = rec.get(head)
            if tid is None:
                return None
            row: dict[str, Any] = {"id": tid}
            for sub in subs:
                if sub in ("rec_name", "name"):
                    row[sub] = names.get(tid, str(tid))
                elif sub != "id":
                    row[sub] = None
            return row
        return one

    @staticmethod
    def _timestamp(rec: Record) -> str:
        stamp = rec.get("write_date") or rec.get("create_date")
        return str(stamp.replace(tzinfo=UTC).timestamp()) if isinstance(stamp, datetime) else ""

    def read(self, model: str, ids: list[int], names: list[str] | None) -> list[dict[str, Any]]:
        table = self.store.tables[model]
        missing = [i for i in ids if i not in table]
        if missing:
            raise UserError(f'You are trying to read records "{", ".join(map(str, missing[:5]))}" of '
                            f'"{model_label(model)}" that don\'t exist anymore.')
        build = self.plan(model, names or self.all_fields(model))
        return [build(table[i]) for i in ids]
