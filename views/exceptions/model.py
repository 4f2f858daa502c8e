"""The exceptions queue's model: up to ~50,000 open exceptions as precomputed rows.

:class:`ExceptionsModel` holds the open exceptions as precomputed :class:`_Row` objects;
filtering (:class:`ExceptionFilter`) and sorting build a plain index list (a view over the
data) in Python, so a filter change over 50,000 rows takes tens of milliseconds and the Qt view
only sees the visible rows. Cells are answered through the hooks of
:class:`~views.widgets.tables.RowsTableModel` (summaries shown as plain text).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from PySide6.QtCore import QModelIndex, QObject, Qt

from services.core.domain import Severity, Side, SyncException, System, Team
from services.core.overview import SEVERITY_RANK
from services.core.reconcile import RULE_SYSTEMS
from services.core.text_safety import bidi_isolated
from views.widgets.icons import severity_icon
from views.widgets.tables import RowsTableModel
from views.widgets.text import SYSTEM_TITLES, TOOLTIP_LIMIT, clipped, human_age, utc_text

#: Role carrying the raw value a column sorts by (seconds for age, rank for severity, ...).
SORT_ROLE = Qt.ItemDataRole.UserRole + 1
#: Role carrying the exception id (same as UserRole, named for readers).
ID_ROLE = Qt.ItemDataRole.UserRole

#: the order systems are listed in (rule columns, filters)
SYSTEM_ORDER = (System.BILLING, System.ERP, System.SUPPORT)


def rule_systems(rule: str, sides: Sequence[Side] = ()) -> tuple[System, ...]:
    systems = RULE_SYSTEMS.get(rule) or frozenset(s.system for s in sides)
    return tuple(s for s in SYSTEM_ORDER if s in systems)


class Column(enum.IntEnum):
    SEVERITY = 0
    RULE = 1
    OWNER = 2
    CUSTOMER = 3
    OBJECT = 4
    SUMMARY = 5
    SYSTEMS = 6
    AGE = 7
    FIRST_SEEN = 8


COLUMN_TITLES: dict[Column, str] = {
    Column.SEVERITY: "Severity",
    Column.RULE: "Rule",
    Column.OWNER: "Owner",
    Column.CUSTOMER: "Customer",
    Column.OBJECT: "Object",
    Column.SUMMARY: "Summary",
    Column.SYSTEMS: "Systems",
    Column.AGE: "Age",
    Column.FIRST_SEEN: "First seen (UTC)",
}


@dataclass(frozen=True, slots=True)
class ExceptionFilter:
    """What the queue shows; ``None`` / empty means "any"."""

    rule: str | None = None
    owner: Team | None = None
    min_severity: Severity | None = None  # at least this severity
    system: System | None = None  # the rule compares this system
    min_age: float | None = None  # seconds; older than this
    text: str = ""  # in customer id, object id or summary (case-insensitive)
    #: only these exceptions (a set of ids, e.g. the records behind an Overview figure); None: any
    ids: frozenset[str] | None = None

    @property
    def active(self) -> bool:
        return bool(self.rule or self.owner or self.min_severity or self.system or self.min_age or self.text.strip()
                    or self.ids is not None)


class _Row:
    """One exception, precomputed once per refresh for display, filtering and sorting."""

    __slots__ = ("age", "customer", "exc", "first_seen_ts", "id", "object_id", "owner", "rule", "search",
                 "sev_rank", "shown_summary", "summary", "systems", "systems_text")

    def __init__(self, exc: SyncException, now: datetime, systems: tuple[frozenset[System], str],
                 name: str = "") -> None:
        self.exc = exc
        self.id = exc.id
        self.rule = exc.rule
        self.owner = str(exc.owner)
        #: "Acme GmbH · cus_1" (the name the customer list shows, beside the id), or the id alone
        self.customer = customer_text(name, exc.customer_id or "")
        self.object_id = exc.object_id
        self.summary = exc.summary
        #: one line, cut to a length a cell can show (the model isolates it for bidi: RowsTableModel)
        self.shown_summary = mark_badges(exc) + clipped(exc.summary, 500).replace("\n", " ")
        self.systems, self.systems_text = systems
        self.sev_rank = SEVERITY_RANK.get(exc.severity, 0)
        self.age = max(0.0, (now - exc.first_seen).total_seconds())
        self.first_seen_ts = exc.first_seen.timestamp()
        marks = "\x00".join(mark_lines(exc))
        self.search = f"{self.customer}\x00{self.object_id}\x00{self.summary}\x00{marks}".casefold()


def mark_lines(exc: SyncException) -> list[str]:
    """What operators did about ``exc`` that stays with it, one plain line each: its last failed
    fix ("Last attempt failed at …: why") and its flag ("Flagged for review by … at …: why")."""
    lines = []
    if exc.last_failure is not None:
        m = exc.last_failure
        on = f" ({m.action} on {m.rule})" if m.rule and m.rule != exc.rule else f" ({m.action})"
        lines.append(f"Last attempt failed at {utc_text(m.at)}{on} by {m.actor}: {m.text}")
    if exc.flagged is not None:
        m = exc.flagged
        lines.append(f"Flagged for review by {m.actor} ({m.role}) at {utc_text(m.at)}: {m.text}")
    return lines


def mark_badges(exc: SyncException) -> str:
    """The short marks a queue row starts with: "[flagged] ", "[last attempt failed] "."""
    return ("[last attempt failed] " if exc.last_failure is not None else "") + \
        ("[flagged] " if exc.flagged is not None else "")


def customer_text(name: str, customer_id: str) -> str:
    """A customer as the tables show it: its name beside its id (the name isolated for bidi, so
    a right-to-left name never reorders the id after it)."""
    if not customer_id:
        return ""
    return f"{bidi_isolated(clipped(name, 200))} · {customer_id}" if name else customer_id


def _systems_of(exc: SyncException, cache: dict[str, tuple[frozenset[System], str]]) -> tuple[frozenset[System], str]:
    hit = cache.get(exc.rule)
    if hit is None:
        systems = rule_systems(exc.rule, exc.sides)
        hit = (frozenset(systems), " ↔ ".join(SYSTEM_TITLES[s] for s in systems))
        if exc.rule in RULE_SYSTEMS:  # an unknown rule's systems come from its sides: not cached
            cache[exc.rule] = hit
    return hit


class ExceptionsModel(RowsTableModel[_Row]):
    """Open exceptions as a table; ``set_filter`` and ``sort`` rebuild the visible index list."""

    HEADERS = tuple(COLUMN_TITLES[c] for c in Column)
    RIGHT_ALIGNED = frozenset({Column.AGE})

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._order: list[int] = []  # all rows, in the current sort order
        self._visible: list[int] = []  # the rows shown, in order (indexes into _rows)
        self._by_id: dict[str, int] = {}
        self._filter = ExceptionFilter()
        self._sort_column = Column.AGE
        self._sort_order = Qt.SortOrder.DescendingOrder  # oldest first
        self.now = datetime.now(UTC)

    # -- data in ---------------------------------------------------------------------
    def set_exceptions(self, exceptions: Sequence[SyncException], now: datetime,
                       names: Mapping[str, str] | None = None) -> None:
        """Replace the data (closed exceptions are left out); filter and sort are kept.
        ``names``: customer id -> name (the customer list's), shown beside the id."""
        self.beginResetModel()
        self.now = now
        cache: dict[str, tuple[frozenset[System], str]] = {}
        names = names or {}
        self._rows = [_Row(exc, now, _systems_of(exc, cache), names.get(exc.customer_id or "", ""))
                      for exc in exceptions if exc.closed_at is None]
        self._by_id = {row.id: i for i, row in enumerate(self._rows)}
        self._order = self._sorted_order()
        self._visible = self._filtered(self._order)
        self.endResetModel()

    def set_filter(self, flt: ExceptionFilter) -> None:
        if flt == self._filter:
            return
        self.beginResetModel()
        self._filter = flt
        self._visible = self._filtered(self._order)
        self.endResetModel()

    @property
    def filter(self) -> ExceptionFilter:
        return self._filter

    # -- lookups ---------------------------------------------------------------------
    def total_count(self) -> int:
        return len(self._rows)

    def visible_count(self) -> int:
        return len(self._visible)

    def exceptions(self) -> list[SyncException]:
        return [row.exc for row in self._rows]

    def exception_at(self, row: int) -> SyncException | None:
        if 0 <= row < len(self._visible):
            return self._rows[self._visible[row]].exc
        return None

    def exception_by_id(self, exc_id: str) -> SyncException | None:
        i = self._by_id.get(exc_id)
        return self._rows[i].exc if i is not None else None

    def row_of(self, exc_id: str) -> int | None:
        """The visible row of an exception, or ``None`` when it is filtered out or gone."""
        i = self._by_id.get(exc_id)
        if i is None:
            return None
        try:
            return self._visible.index(i)
        except ValueError:
            return None

    def visible_ids(self) -> list[str]:
        return [self._rows[i].id for i in self._visible]

    # -- filtering and sorting -------------------------------------------------------
    def _filtered(self, order: list[int]) -> list[int]:
        f = self._filter
        if not f.active:
            return list(order)
        rows = self._rows
        idx = order
        if f.ids is not None:
            ids = f.ids
            idx = [i for i in idx if rows[i].id in ids]
        if f.rule:
            idx = [i for i in idx if rows[i].rule == f.rule]
        if f.owner:
            owner = f.owner.value
            idx = [i for i in idx if rows[i].owner == owner]
        if f.min_severity:
            rank = SEVERITY_RANK[f.min_severity]
            idx = [i for i in idx if rows[i].sev_rank >= rank]
        if f.system:
            system = f.system
            idx = [i for i in idx if system in rows[i].systems]
        if f.min_age:
            min_age = f.min_age
            idx = [i for i in idx if rows[i].age > min_age]
        text = f.text.strip().casefold()
        if text:
            idx = [i for i in idx if text in rows[i].search]
        return list(idx)

    def _sort_key(self, column: Column) -> list[Any]:
        rows = self._rows
        if column is Column.SEVERITY:
            return [r.sev_rank for r in rows]
        if column is Column.RULE:
            return [r.rule for r in rows]
        if column is Column.OWNER:
            return [r.owner for r in rows]
        if column is Column.CUSTOMER:
            return [r.customer.casefold() for r in rows]
        if column is Column.OBJECT:
            return [r.object_id.casefold() for r in rows]
        if column is Column.SUMMARY:
            return [r.summary.casefold() for r in rows]
        if column is Column.SYSTEMS:
            return [r.systems_text for r in rows]
        if column is Column.AGE:
            return [r.age for r in rows]
        return [r.first_seen_ts for r in rows]

    def _sorted_order(self) -> list[int]:
        keys = self._sort_key(self._sort_column)
        rows = self._rows
        # ties broken by id so the order is stable across refreshes
        base = sorted(range(len(rows)), key=lambda i: rows[i].id)
        return sorted(base, key=keys.__getitem__, reverse=self._sort_order == Qt.SortOrder.DescendingOrder)

    def sort_column(self) -> tuple[int, Qt.SortOrder]:
        return int(self._sort_column), self._sort_order

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        if not 0 <= column < len(Column):
            return
        self.layoutAboutToBeChanged.emit()
        persistent = self.persistentIndexList()
        old_rows = [self._visible[p.row()] if 0 <= p.row() < len(self._visible) else -1 for p in persistent]
        self._sort_column = Column(column)
        self._sort_order = order
        self._order = self._sorted_order()
        self._visible = self._filtered(self._order)
        if persistent:
            position = {row: pos for pos, row in enumerate(self._visible)}
            new_indexes = []
            for p, row in zip(persistent, old_rows, strict=True):
                pos = position.get(row)
                new_indexes.append(self.index(pos, p.column()) if pos is not None else QModelIndex())
            self.changePersistentIndexList(persistent, new_indexes)
        self.layoutChanged.emit()

    # -- cells (the hooks of RowsTableModel) ---------------------------------------
    def record_count(self) -> int:
        return len(self._visible)

    def record(self, row: int) -> _Row:
        return self._rows[self._visible[row]]

    def header_tooltip(self, section: int) -> str | None:
        return "Time since the disagreement was first seen" if section == Column.AGE else None

    def display(self, row: _Row, col: int) -> str:
        if col == Column.SEVERITY:
            return row.exc.severity.value
        if col == Column.RULE:
            return row.rule
        if col == Column.OWNER:
            return row.owner
        if col == Column.CUSTOMER:
            return row.customer or "—"
        if col == Column.OBJECT:
            return row.object_id
        if col == Column.SUMMARY:
            return row.shown_summary
        if col == Column.SYSTEMS:
            return row.systems_text
        if col == Column.AGE:
            return human_age(row.age)
        return f"{row.exc.first_seen.astimezone(UTC):%Y-%m-%d %H:%M}"  # the header says UTC

    def tooltip(self, row: _Row, col: int) -> str | None:
        if col == Column.CUSTOMER:
            return row.customer or "No billing customer"
        if col == Column.SEVERITY:
            return f"Severity: {row.exc.severity.value}"
        if col == Column.FIRST_SEEN:
            return f"First seen {utc_text(row.exc.first_seen)}; last seen {utc_text(row.exc.last_seen)}"
        return clipped("\n".join([row.summary, *mark_lines(row.exc)]), TOOLTIP_LIMIT)

    def decoration(self, row: _Row, col: int) -> Any:
        return severity_icon(row.exc.severity) if col == Column.SEVERITY else None

    def role_data(self, row: _Row, col: int, role: int) -> Any:
        if role == ID_ROLE:
            return row.id
        if role == SORT_ROLE:
            return self._sort_value(row, col)
        return None

    @staticmethod
    def _sort_value(row: _Row, col: int) -> Any:
        return {
            Column.SEVERITY: row.sev_rank, Column.RULE: row.rule, Column.OWNER: row.owner,
            Column.CUSTOMER: row.customer, Column.OBJECT: row.object_id, Column.SUMMARY: row.summary,
            Column.SYSTEMS: row.systems_text, Column.AGE: row.age, Column.FIRST_SEEN: row.first_seen_ts,
        }[Column(col)]
