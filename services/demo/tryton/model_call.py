"""One model method call: the generic ModelStorage / ModelView operations every model serves.

:class:`ModelCall` searches, reads, creates, writes and deletes within one
:class:`~services.demo.tryton.transaction.Transaction`; :data:`GENERIC_METHODS` names the ones
served over RPC. Model-specific checks run through the service's
:class:`~services.demo.tryton.model_hooks.ModelHooks`.
"""

from __future__ import annotations

import bisect
import zoneinfo
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from itertools import islice
from typing import TYPE_CHECKING, Any

from services.demo.tryton.coercion import coerce
from services.demo.tryton.domains import mentions
from services.demo.tryton.errors import UserError
from services.demo.tryton.schema import (
    BASE_FIELDS,
    DEFAULTS,
    REQUIRED,
    SELECTIONS,
    FieldDef,
    Getter,
    Record,
    field_label,
    model_label,
)
from services.demo.tryton.transaction import Transaction
from services.demo.tryton.watermarks import MAX_ID

if TYPE_CHECKING:
    from services.demo.tryton.service import TrytonService


def ids_list(ids: Any) -> list[int]:
    if isinstance(ids, int) and not isinstance(ids, bool):
        return [ids]
    if not isinstance(ids, list | tuple) or not all(isinstance(i, int) and not isinstance(i, bool)
                                                     for i in ids):
        raise TypeError(f"invalid ids {ids!r}")
    return list(ids)


@dataclass(frozen=True, slots=True)
class OrderKey:
    path: str
    getter: Getter
    desc: bool
    nulls_first: bool


class ModelCall:
    """One model method call: the generic ModelStorage/ModelView operations on ``model``."""

    def __init__(self, service: TrytonService, tx: Transaction, model: str) -> None:
        self.service = service
        self.tx = tx
        self.model = model
        self.store = service.store
        self.schema = service.schema
        self.values = service.values
        self.reader = service.reader
        self.domains = service.domains

    # -- searching ----------------------------------------------------------------------

    def _active_domain(self, model: str, domain: Any) -> Any:
        if domain is None:
            domain = []
        if ("active" in self.schema.fields(model) and self.tx.context.get("active_test", True)
                and not mentions(domain, "active")):
            return [domain, ["active", "=", True]]
        return domain

    def _order(self, model: str, order: Any) -> list[OrderKey]:
        if not order:
            return []
        if not isinstance(order, list | tuple):
            raise TypeError(f"invalid order {order!r}")
        keys: list[OrderKey] = []
        for item in order:
            if not isinstance(item, list | tuple) or len(item) != 2 or not isinstance(item[0], str):
                raise ValueError(f"invalid order {item!r}")
            name, direction = item
            words = (direction or "ASC").upper().split()
            if not words or words[0] not in ("ASC", "DESC") or words[1:] not in (
                    [], ["NULLS", "FIRST"], ["NULLS", "LAST"]):
                raise ValueError(f"invalid order direction {direction!r}")
            desc = words[0] == "DESC"
            nulls_first = words[2] == "FIRST" if len(words) == 3 else not desc
            keys.append(OrderKey(name, self._order_getter(model, name), desc, nulls_first))
        return keys

    def _order_getter(self, model: str, path: str) -> Getter:
        names = path.split(".")
        fds = self.domains.path_fields(model, names)
        if any(fd.kind in ("one2many", "many2many") for fd in fds):
            raise ValueError(f"cannot order by {path!r}")
        getters = self.domains.path_getters(model, names, fds)
        if len(getters) == 1:
            return getters[0]
        tables = [self.store.tables.get(fd.relation or "", {}) for fd in fds]

        def get(rec: Record) -> Any:
            current: Any = rec
            for depth, fn in enumerate(getters):
                value = fn(current)
                if depth == len(getters) - 1:
                    return value
                current = tables[depth].get(value) if value is not None else None
                if current is None:
                    return None
            return None
        return get

    def search_ids(self, domain: Any, offset: Any = 0, limit: Any = None, order: Any = None) -> list[int]:
        model = self.model
        domain = self._active_domain(model, domain)
        pred = self.domains.compile(model, domain)
        keys = self._order(model, order)
        candidates = self.domains.candidates(model, domain)
        table = self.store.tables[model]
        ids = sorted(table) if candidates is None else sorted(i for i in candidates if i in table)
        low, high = self.domains.id_bounds(domain)
        if low > 0 or high < MAX_ID:
            ids = ids[bisect.bisect_left(ids, low):bisect.bisect_left(ids, high)]
        start = int(offset or 0)
        stop = None if limit is None or int(limit) < 0 else start + int(limit)
        by_id = not keys or (len(keys) == 1 and keys[0].path == "id")
        if by_id:
            if keys and keys[0].desc:
                ids.reverse()
            matched: Iterable[int] = ids if pred is None else (i for i in ids if pred(table[i]))
            return list(islice(matched, start, stop))
        result = ids if pred is None else [i for i in ids if pred(table[i])]
        for key in reversed(keys):
            result.sort(key=self._sort_key(key, table), reverse=key.desc)
        return result[start:stop]

    @staticmethod
    def _sort_key(key: OrderKey, table: dict[int, Record]) -> Callable[[int], tuple[int, Any]]:
        null = (0, 0) if key.nulls_first != key.desc else (2, 0)
        get = key.getter

        def sort_key(rid: int) -> tuple[int, Any]:
            value = get(table[rid])
            return null if value is None else (1, value)
        return sort_key

    def count(self, domain: Any) -> int:
        model = self.model
        domain = self._active_domain(model, domain)
        pred = self.domains.compile(model, domain)
        candidates = self.domains.candidates(model, domain)
        table = self.store.tables[model]
        if candidates is None and pred is None:
            return len(table)
        ids: Iterable[int] = table if candidates is None else (i for i in candidates if i in table)
        if pred is None:
            return sum(1 for _ in ids)
        return sum(1 for i in ids if pred(table[i]))

    # -- writing ------------------------------------------------------------------------

    def defaults(self, model: str) -> Record:
        values = dict(DEFAULTS.get(model, {}))
        fields = self.schema.fields(model)
        ctx = self.tx.context
        if "company" in fields:
            company = ctx.get("company")
            values["company"] = company if isinstance(company, int) and not isinstance(company, bool) else None
            comp = self.store.tables["company.company"].get(values["company"] or 0)
            if "currency" in fields and comp is not None:
                values["currency"] = comp.get("currency")
        if model == "account.invoice" and ctx.get("type") in ("out", "in"):
            values["type"] = ctx["type"]
        return values

    def _split_values(self, model: str, values: Any) -> tuple[Record, dict[str, Any]]:
        if not isinstance(values, dict):
            raise TypeError(f"invalid values {values!r}")
        plain: Record = {}
        x2many: dict[str, Any] = {}
        for name, value in values.items():
            fd = self.schema.field(model, name)
            if fd.kind == "one2many" or (fd.kind == "many2many" and not fd.readonly):
                x2many[name] = value
            elif not fd.readonly:
                plain[name] = coerce(fd, value)
        return plain, x2many

    def create_record(self, model: str, values: Any, parent: tuple[str, int] | None = None) -> int:
        plain, x2many = self._split_values(model, values)
        record = self.defaults(model)
        record.update(plain)
        if parent is not None:
            record[parent[0]] = parent[1]
        self.service.hooks.before_create(self, model, record)
        for fd in self.schema.fields(model).values():
            if fd.kind == "one2many" and fd.trytond is None:
                record[fd.name] = []
        record.update(create_date=self.tx.now, write_date=None, create_uid=self.tx.user, write_uid=None)
        self._check_references(model, record)
        rid = self.tx.insert(model, record)
        for name, actions in x2many.items():
            self.apply_x2many(model, rid, name, actions)
        self._validate(model, rid)
        self.service.hooks.after_modify(self, model, [rid])
        return rid

    def write_records(self, model: str, ids: list[int], values: Any, check: bool = True) -> None:
        table = self.store.tables[model]
        missing = [i for i in ids if i not in table]
        if missing:
            raise UserError(f'You are trying to write on records "{", ".join(map(str, missing[:5]))}" of '
                            f'"{model_label(model)}" that don\'t exist anymore.')
        plain, x2many = self._split_values(model, values)
        if check:
            self.service.hooks.before_write(self, model, ids, plain)
        self._check_references(model, plain)
        stamp = {"write_date": self.tx.now, "write_uid": self.tx.user}
        for rid in ids:
            self.tx.update(model, rid, {**plain, **stamp})
            for name, actions in x2many.items():
                self.apply_x2many(model, rid, name, actions)
            self._validate(model, rid)
        self.service.hooks.after_modify(self, model, ids)

    def delete_records(self, model: str, ids: list[int], check: bool = True) -> None:
        table = self.store.tables[model]
        ids = [i for i in dict.fromkeys(ids)]
        missing = [i for i in ids if i not in table]
        if missing:
            raise UserError(f'You are trying to delete records "{", ".join(map(str, missing[:5]))}" of '
                            f'"{model_label(model)}" that don\'t exist anymore.')
        if check:
            self.service.hooks.before_delete(self, model, ids)
        self._check_not_referenced(model, ids)
        o2ms = [fd for fd in self.schema.fields(model).values() if fd.kind == "one2many" and fd.trytond is None]
        for rid in ids:
            for fd in o2ms:
                assert fd.relation is not None
                children = [c for c in self.values.children(model, fd.name, rid)
                            if c in self.store.tables[fd.relation]]
                if children:
                    self.delete_records(fd.relation, children, check=False)
            if rid in table:
                self.tx.delete(model, rid)

    def apply_x2many(self, model: str, rid: int, name: str, actions: Any) -> None:
        fd = self.schema.field(model, name)
        if not isinstance(actions, list | tuple):
            raise TypeError(f"invalid value {actions!r} for field {name!r}")
        if fd.kind == "many2many":
            self._apply_many2many(model, rid, fd, actions)
            return
        assert fd.relation is not None
        if fd.relation not in self.store.tables or fd.reverse is None:
            raise UserError(f'The demo ERP holds no "{fd.relation}" records: it cannot change field '
                            f'"{field_label(name)}" of "{model_label(model)}".')
        target, reverse = fd.relation, fd.reverse
        for action in actions:
            if not isinstance(action, list | tuple) or not action or not isinstance(action[0], str):
                raise ValueError(f"invalid action {action!r} for field {name!r}")
            kind, args = action[0], list(action[1:])
            if kind == "create":
                for values in args[0] if args else []:
                    self.create_record(target, values, parent=(reverse, rid))
            elif kind == "write":
                if len(args) % 2:
                    raise ValueError(f"invalid action {action!r} for field {name!r}")
                for ids, values in zip(args[::2], args[1::2], strict=True):
                    self.write_records(target, ids_list(ids), values)
            elif kind == "delete":
                self.delete_records(target, ids_list(args[0] if args else []))
            elif kind in ("add", "remove"):
                link = rid if kind == "add" else None
                ids = ids_list(args[0] if args else [])
                self.write_records(target, ids, {reverse: link})
            else:
                raise ValueError(f"unsupported action {kind!r} for field {name!r}")

    def _apply_many2many(self, model: str, rid: int, fd: FieldDef, actions: list[Any] | tuple[Any, ...]) -> None:
        """trytond's many2many actions on the list of ids the record keeps (``add``/``remove``
        for any relation; ``create``/``write``/``delete`` of targets the demo serves)."""
        target = fd.relation or ""
        linked = list(self.store.tables[model][rid].get(fd.name) or [])
        for action in actions:
            if not isinstance(action, list | tuple) or not action or not isinstance(action[0], str):
                raise ValueError(f"invalid action {action!r} for field {fd.name!r}")
            kind, args = action[0], list(action[1:])
            if kind in ("add", "remove"):
                ids = ids_list(args[0] if args else [])
                linked = ([*linked, *(i for i in ids if i not in linked)] if kind == "add"
                          else [i for i in linked if i not in ids])
                continue
            if target not in self.store.tables:
                raise UserError(f'The demo ERP holds no "{target}" records: it cannot change field '
                                f'"{field_label(fd.name)}" of "{model_label(model)}".')
            if kind == "create":
                linked.extend(self.create_record(target, values) for values in (args[0] if args else []))
            elif kind == "write":
                if len(args) % 2:
                    raise ValueError(f"invalid action {action!r} for field {fd.name!r}")
                for ids, values in zip(args[::2], args[1::2], strict=True):
                    self.write_records(target, ids_list(ids), values)
            elif kind == "delete":
                ids = ids_list(args[0] if args else [])
                self.delete_records(target, ids)
                linked = [i for i in linked if i not in ids]
            else:
                raise ValueError(f"unsupported action {kind!r} for field {fd.name!r}")
        self.tx.update(model, rid, {fd.name: linked})

    def _check_references(self, model: str, values: Record) -> None:
        for name, value in values.items():
            fd = self.schema.fields(model).get(name)
            if (fd is None or fd.kind != "many2one" or value is None or fd.relation not in self.store.tables
                    or name in BASE_FIELDS):
                continue
            assert fd.relation is not None
            if value not in self.store.tables[fd.relation]:
                raise UserError(f'The value "{value}" for field "{field_label(name)}" in '
                                f'"{model_label(model)}" does not exist.')

    def _check_not_referenced(self, model: str, ids: list[int]) -> None:
        for (other, fname) in self.store.indexes:
            fd = self.schema.fields(other).get(fname)
            if fd is None or fd.kind != "many2one" or fd.relation != model:
                continue
            if (other, fname) in self.schema.parents:  # one2many children: cascaded
                continue
            if any(self.store.lookup(other, fname, rid) for rid in ids):
                raise UserError(f'The records could not be deleted because they are used by field '
                                f'"{field_label(fname)}" of "{model_label(other)}".')

    def _validate(self, model: str, rid: int) -> None:
        rec = self.store.tables[model][rid]
        for name in REQUIRED.get(model, ()):
            if rec.get(name) is None:
                raise UserError(f'A value is required for field "{field_label(name)}" in '
                                f'"{model_label(model)}".')
        checks: list[tuple[str, tuple[str | None, ...]]] = [
            (name, options) for (m, name), options in SELECTIONS.items() if m == model]
        checks += [(fd.name, fd.trytond.selection) for fd in self.schema.fields(model).values()
                   if fd.trytond is not None and fd.trytond.selection and fd.kind == "selection" and not fd.readonly]
        for name, options in checks:
            value = rec.get(name)
            if value is not None and value not in options:
                raise UserError(f'The value "{value}" for field "{field_label(name)}" in '
                                f'"{self.values.rec_name(model, rid)}" of "{model_label(model)}" is not one '
                                f'of the allowed options.')
        self.service.hooks.validate(self, model, rec)
        rec_name = self.values.rec_name(model, rid)
        if rec.get("rec_name") != rec_name:
            self.tx.update(model, rid, {"rec_name": rec_name})

    # -- RPC methods (dispatch table below) --------------------------------------------

    def search(self, domain: Any, offset: Any = 0, limit: Any = None, order: Any = None,
               count: bool = False) -> list[int] | int:
        if count:
            return self.count(domain)
        return self.search_ids(domain, offset, limit, order)

    def search_count(self, domain: Any, offset: Any = 0, limit: Any = None) -> int:
        total = self.count(domain)
        total = max(0, total - int(offset or 0))
        return total if limit is None else min(total, int(limit))

    def read(self, ids: Any, fields_names: Any = None) -> list[dict[str, Any]]:
        return self.reader.read(self.model, ids_list(ids), fields_names)

    def search_read(self, domain: Any, offset: Any = 0, limit: Any = None, order: Any = None,
                    fields_names: Any = None) -> list[dict[str, Any]]:
        names = fields_names or self.reader.all_fields(self.model)
        build = self.reader.plan(self.model, names)  # validates names even when nothing matches
        table = self.store.tables[self.model]
        return [build(table[i]) for i in self.search_ids(domain, offset, limit, order)]

    def create(self, vlist: Any) -> list[int]:
        if not isinstance(vlist, list | tuple):
            raise TypeError(f"invalid values {vlist!r}")
        return [self.create_record(self.model, values) for values in vlist]

    def write(self, *args: Any) -> None:
        if not args or len(args) % 2:
            raise TypeError("write() takes pairs of ids and values")
        for ids, values in zip(args[::2], args[1::2], strict=True):
            self.write_records(self.model, ids_list(ids), values)

    def delete(self, ids: Any) -> None:
        self.delete_records(self.model, ids_list(ids))

    def fields_get(self, fields_names: Any = None, level: Any = 0) -> dict[str, Any]:
        result: dict[str, Any] = {}
        required = REQUIRED.get(self.model, ())
        for name, fd in self.schema.fields(self.model).items():
            if fields_names and name not in fields_names:
                continue
            info: dict[str, Any] = {"name": name, "type": fd.kind, "string": field_label(name),
                                    "readonly": fd.readonly,
                                    "required": name in required or bool(fd.trytond and fd.trytond.required)}
            if fd.relation:
                info["relation"] = fd.relation
            if fd.reverse:
                info["relation_field"] = fd.reverse
            options = SELECTIONS.get((self.model, name)) or (fd.trytond.selection if fd.trytond else None)
            if options:
                info["selection"] = [[o, (o or "").replace("_", " ").title()] for o in options]
            elif (self.model, name) == ("company.company", "timezone"):
                info["selection"] = [[None, ""], *([z, z] for z in sorted(zoneinfo.available_timezones()))]
            result[name] = info
        return result

    def default_get(self, fields_names: Any, with_rec_name: Any = True) -> dict[str, Any]:
        defaults = {fd.name: fd.trytond.default for fd in self.schema.fields(self.model).values()
                    if fd.trytond is not None and fd.trytond.default is not None}
        defaults.update(self.defaults(self.model))
        names = fields_names or list(defaults)
        return {k: v for k, v in defaults.items() if k in names}

    def on_change(self, values: Any, fieldnames: Any) -> list[dict[str, Any]]:
        if not isinstance(values, dict) or not isinstance(fieldnames, list | tuple):
            raise TypeError("on_change() takes values and field names")
        return [self.service.hooks.on_change(self, self.model, values, list(fieldnames))]


GENERIC_METHODS: dict[str, Callable[..., Any]] = {
    name: getattr(ModelCall, name)
    for name in ("search", "search_count", "read", "search_read", "create", "write", "delete",
                 "fields_get", "default_get", "on_change")
}
