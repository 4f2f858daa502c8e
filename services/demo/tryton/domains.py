"""trytond domains: operators, predicates and candidate ids from the store's indexes.

Equality / ``in`` leaves on indexed fields (``ErpStore.INDEXED``, also through a many2one path
such as ``party.code``) and on ``id`` narrow the candidates before the domain predicate runs;
the incremental-sync OR is answered by the :class:`~services.demo.tryton.watermarks.WatermarkIndex`.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

from services.demo.tryton.coercion import coerce_operand
from services.demo.tryton.schema import FieldDef, Getter, Record
from services.demo.tryton.values import FieldValues
from services.demo.tryton.watermarks import MAX_ID, WatermarkIndex

Predicate = Callable[[Record], bool]

LIKE_OPERATORS = ("like", "ilike", "not like", "not ilike")
OPERATORS = ("=", "!=", "<", "<=", ">", ">=", "in", "not in", *LIKE_OPERATORS,
             "child_of", "not child_of", "parent_of", "not parent_of", "where", "not where")
SUPPORTED_OPERATORS = frozenset(OPERATORS[:12])


def _like_regex(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    """SQL LIKE (``%``, ``_``, backslash escape) as an anchored regular expression."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        out.append(".*" if c == "%" else "." if c == "_" else re.escape(c))
        i += 1
    return re.compile("".join(out) + r"\Z", re.S | (re.I if ignore_case else 0))


def is_leaf(clause: Any) -> bool:
    return (isinstance(clause, list | tuple) and len(clause) in (3, 4) and isinstance(clause[0], str)
            and clause[0] not in ("AND", "OR") and isinstance(clause[1], str))


def _split(domain: Any) -> tuple[str, list[Any]]:
    if not isinstance(domain, list | tuple):
        raise ValueError(f"Invalid domain: {domain!r}")
    items = list(domain)
    if items and isinstance(items[0], str) and items[0] in ("AND", "OR"):
        return items[0], items[1:]
    return "AND", items


def mentions(domain: Any, name: str) -> bool:
    if is_leaf(domain):
        return bool(domain[0] == name)
    if isinstance(domain, list | tuple):
        return any(mentions(d, name) for d in domain)
    return False


def _test(fd: FieldDef, op: str, operand: Any) -> Predicate:
    """A predicate on one field value for ``value <op> operand`` with SQL NULL semantics."""
    if op in ("in", "not in"):
        if not isinstance(operand, list | tuple):
            raise TypeError(f"'{op}' operator requires a list, got {operand!r}")
        items = [coerce_operand(fd, v) for v in operand]
        try:
            pool: set[Any] | list[Any] = set(items)
        except TypeError:
            pool = items
        if op == "in":
            return lambda v: v in pool
        return lambda v: v is not None and v not in pool
    value = coerce_operand(fd, operand)
    if op in LIKE_OPERATORS:
        if not isinstance(value, str):
            raise TypeError(f"'{op}' operator requires a string, got {operand!r}")
        regex = _like_regex(value, "ilike" in op)
        if op.startswith("not"):
            return lambda v: isinstance(v, str) and regex.match(v) is None
        return lambda v: isinstance(v, str) and regex.match(v) is not None
    if op == "=":
        if value is None:
            return lambda v: v is None
        if fd.kind == "boolean" and value is False:
            return lambda v: not v
        return lambda v: v is not None and v == value
    if op == "!=":
        if value is None:
            return lambda v: v is not None
        return lambda v: v is not None and v != value
    if value is None:
        return lambda v: False
    if op == "<":
        return lambda v: v is not None and v < value
    if op == "<=":
        return lambda v: v is not None and v <= value
    if op == ">":
        return lambda v: v is not None and v > value
    return lambda v: v is not None and v >= value


class DomainEvaluator:
    """Compiles trytond domains to predicates and narrows candidates through indexes."""

    def __init__(self, values: FieldValues, watermarks: WatermarkIndex) -> None:
        self.values = values
        self.schema = values.schema
        self.store = values.store
        self.watermarks = watermarks

    # -- predicates ---------------------------------------------------------------------

    def compile(self, model: str, domain: Any) -> Predicate | None:
        """The predicate of ``domain`` on ``model`` records; None means always true."""
        if is_leaf(domain):
            return self._leaf(model, domain)
        mode, items = _split(domain)
        if mode == "OR":
            shaped, newer = self._watermark(model, items)
            if shaped:  # answered by the index: every record, or a membership test
                return None if newer is None else (lambda r: r["id"] in newer)
        preds = [p for p in (self.compile(model, d) for d in items)]
        if mode == "OR":
            if not items or any(p is None for p in preds):
                return None
            ors = [p for p in preds if p is not None]
            return ors[0] if len(ors) == 1 else (lambda r: any(p(r) for p in ors))
        ands = [p for p in preds if p is not None]
        if not ands:
            return None
        return ands[0] if len(ands) == 1 else (lambda r: all(p(r) for p in ands))

    def _leaf(self, model: str, leaf: Any) -> Predicate:
        path, op, operand = leaf[0], leaf[1], leaf[2]
        if op not in OPERATORS:
            raise ValueError(f"Invalid operator {op!r} in domain {list(leaf)!r}")
        if op not in SUPPORTED_OPERATORS:
            raise NotImplementedError(f"operator {op!r} is not supported by the demo server")
        names = path.split(".")
        fds = self.path_fields(model, names)
        last = fds[-1]
        if last.kind == "many2one" and last.relation is not None and self._is_name_search(op, operand):
            names.append("rec_name")
            fds.append(FieldDef("rec_name", "char"))
            last = fds[-1]
        test = _test(last, op, operand)
        if len(names) == 1 and last.kind not in ("one2many", "many2many"):
            get = self.values.getter(model, names[0])
            return lambda r: test(get(r))
        collect = self._collector(model, names, fds)
        return lambda r: any(test(v) for v in collect(r))

    @staticmethod
    def _is_name_search(op: str, operand: Any) -> bool:
        if op in LIKE_OPERATORS:
            return True
        if op in ("in", "not in") and isinstance(operand, list | tuple):
            return any(isinstance(v, str) for v in operand)
        return isinstance(operand, str)

    def path_fields(self, model: str, names: list[str]) -> list[FieldDef]:
        fds: list[FieldDef] = []
        current = model
        for i, name in enumerate(names):
            fd = self.schema.field(current, name)
            fds.append(fd)
            if i < len(names) - 1:
                if fd.kind not in ("many2one", "one2many", "many2many") or fd.relation not in self.schema.models:
                    raise KeyError(".".join(names[: i + 2]))
                assert fd.relation is not None
                current = fd.relation
        return fds

    def path_getters(self, model: str, names: list[str], fds: list[FieldDef]) -> list[Getter]:
        getters: list[Getter] = []
        current = model
        for name, fd in zip(names, fds, strict=True):
            getters.append(self.values.getter(current, name))
            current = fd.relation or current
        return getters

    def _collector(self, model: str, names: list[str], fds: list[FieldDef]) -> Callable[[Record], list[Any]]:
        getters = self.path_getters(model, names, fds)
        tables = [self.store.tables.get(fd.relation or "", {}) for fd in fds]

        def collect(rec: Record) -> list[Any]:
            """The values at the end of the path (any-semantics through one2many; a missing
            many2one ends the path with no value, as SQL's join would)."""
            current: list[Any] = [rec]
            for depth, (get, fd) in enumerate(zip(getters, fds, strict=True)):
                last = depth == len(fds) - 1
                table = tables[depth]
                nxt: list[Any] = []
                for r in current:
                    value = get(r)
                    if fd.kind in ("one2many", "many2many"):
                        if last:
                            nxt.extend(value or [None])
                        else:
                            nxt.extend(table[c] for c in value if c in table)
                    elif last:
                        nxt.append(value)
                    elif value is not None and value in table:
                        nxt.append(table[value])
                current = nxt
            return current

        return collect

    # -- candidates through indexes ----------------------------------------------------

    def candidates(self, model: str, domain: Any) -> set[int] | None:
        """A superset of the matching ids from indexes, or None (every record)."""
        if is_leaf(domain):
            return self._leaf_candidates(model, domain)
        mode, items = _split(domain)
        if mode == "OR":
            shaped, ids = self._watermark(model, items)
            if shaped:
                return ids
            sets = [self.candidates(model, d) for d in items]
            if not sets or any(s is None for s in sets):
                return None
            return set().union(*[s for s in sets if s is not None])
        found = [s for s in (self.candidates(model, d) for d in items) if s is not None]
        if not found:
            return None
        found.sort(key=len)
        return found[0].intersection(*found[1:])

    def _leaf_candidates(self, model: str, leaf: Any) -> set[int] | None:
        path, op, operand = leaf[0], leaf[1], leaf[2]
        if op == "=":
            operands = [operand]
        elif op == "in" and isinstance(operand, list | tuple):
            operands = list(operand)
        else:
            return None
        head, dot, rest = path.partition(".")
        table = self.store.tables[model]
        try:
            if head == "id" and not dot:
                return {v for v in operands if isinstance(v, int) and not isinstance(v, bool) and v in table}
            fd = self.schema.fields(model).get(head)
            if fd is None or (model, head) not in self.store.indexes:
                return None
            if not dot:
                if fd.kind == "many2one" and any(isinstance(v, str) for v in operands):
                    return None
                if fd.kind in ("char", "text", "selection") and not all(isinstance(v, str) or v is None
                                                                for v in operands):
                    return None
                result: set[int] = set()
                for v in operands:
                    result |= self.store.lookup(model, head, v)
                return result
            if fd.kind != "many2one" or fd.relation not in self.schema.models:
                return None
            assert fd.relation is not None
            targets = self.candidates(fd.relation, [rest, op, operand])
            if targets is None:
                return None
            result = set()
            for tid in targets:
                result |= self.store.lookup(model, head, tid)
            return result
        except TypeError:  # unhashable operand: the predicate reports it
            return None

    def _watermark(self, model: str, items: list[Any]) -> tuple[bool, set[int] | None]:
        """For the OR of ``create_date > W`` and ``write_date > W`` (or ``>=``): (True, the
        matching ids or None for all); for any other OR: (False, None)."""
        if len(items) != 2 or not all(is_leaf(i) and len(i) == 3 for i in items):
            return False, None
        (f1, op1, v1), (f2, op2, v2) = items
        if {f1, f2} != {"create_date", "write_date"} or op1 != op2 or op1 not in (">", ">="):
            return False, None
        if not isinstance(v1, datetime) or v1 != v2:
            return False, None
        return True, self.watermarks.after(model, v1, inclusive=op1 == ">=")

    def id_bounds(self, domain: Any) -> tuple[int, int]:
        """The id range ``[low, high)`` implied by ``id`` comparisons ANDed at the top (keyset
        paging: ``["id", ">", last]``); the predicate still checks every record."""
        low, high = 0, MAX_ID
        if is_leaf(domain):
            path, op, value = domain[0], domain[1], domain[2]
            if path != "id" or isinstance(value, bool) or not isinstance(value, int):
                return low, high
            if op in (">", ">="):
                low = value + (op == ">")
            elif op in ("<", "<="):
                high = value + (op == "<=")
            elif op == "=":
                low, high = value, value + 1
            return low, high
        with contextlib.suppress(ValueError):
            mode, items = _split(domain)
            if mode == "AND":
                for item in items:
                    lo, hi = self.id_bounds(item)
                    low, high = max(low, lo), min(high, hi)
        return low, high
