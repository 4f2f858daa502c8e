"""The Exceptions page: the queue finance analysts and support leads work from.

- :class:`ExceptionsModel` holds up to ~50,000 open exceptions as precomputed tuples; filtering
  and sorting build a plain index list (a view over the data) in Python, so a filter change
  over 50,000 rows takes tens of milliseconds and the Qt view only sees the visible rows;
- :class:`ExceptionDetail` shows one exception: both (or all) sides' values side by side with the
  differing cells marked, the owning side, link candidates, and the fix actions it allows
  (disabled until actions arrive);
- :class:`ExceptionsPage` puts a filter bar, the per-rule counts, the table and the detail pane
  together, and keeps the selection and scroll position across refreshes.

Everything that comes from an external system (summaries, names, ids, values) is shown as
plain text: item views never interpret markup, labels are made with ``plain_label`` and
tooltips go through :func:`plain_tooltip`.
"""

from __future__ import annotations

import enum
import html
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from PySide6 import QtGui
from PySide6.QtCore import (
    QAbstractTableModel,
    QItemSelectionModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    Qt,
    Signal,
)
from PySide6.QtGui import QBrush, QColor, QFont, QIcon, QKeySequence, QPalette
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QSplitter,
    QStackedWidget,
    QTableView,
    QTableWidget,
    QTableWidgetItem,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from services.core.domain import RULES, Severity, Side, SyncException, System, Team
from services.core.overview import SEVERITY_RANK, exception_counts
from services.core.reconcile import DEFAULT_OWNERSHIP, RULE_SYSTEMS
from views.widgets import ROW_FLAGS, SEVERITY_COLORS, SYSTEM_TITLES, EmptyState, plain_label, severity_icon, system_icon

#: Role carrying the raw value a column sorts by (seconds for age, rank for severity, ...).
SORT_ROLE = Qt.ItemDataRole.UserRole + 1
#: Role carrying the exception id (same as UserRole, named for readers).
ID_ROLE = Qt.ItemDataRole.UserRole

FIX_DISABLED_TIP = "Fixing arrives with actions ([F5])"
EMPTY_TITLE = "No open exceptions — everything agrees"

_SYSTEM_ORDER = (System.BILLING, System.ERP, System.SUPPORT)
_SEVERITIES = (Severity.CRITICAL, Severity.HIGH, Severity.MEDIUM, Severity.LOW)

#: what a fix policy says per action of an exception: (action, allowed, why not) — e.g.
#: ``views.actions_ui.fix_policy(adapter)``; without one the buttons stay disabled
FixPolicy = Callable[[SyncException], Sequence[tuple[str, bool, str]]]

#: fix action id -> button text
FIX_LABELS: dict[str, str] = {
    "create": "Create from owner data",
    "link": "Link to a candidate…",
    "push": "Push owner value",
    "retry": "Retry posting",
    "correct": "Correct…",
    "accept": "Accept difference…",
    "cancel": "Cancel extra draft",
    "flag": "Flag for review",
    "record": "Record in ERP",
    "revoke": "Revoke / downgrade",
}

#: rule -> which DEFAULT_OWNERSHIP entry decides the owning system
_RULE_OWNERSHIP_KEY: dict[str, str] = {
    "customer.master_drift": "customer.name",
    "invoice.missing_in_erp": "invoice.content",
    "invoice.amount_mismatch": "invoice.content",
    "invoice.duplicate_in_erp": "invoice.content",
    "invoice.orphan_in_erp": "invoice.content",
    "invoice.payment_state": "invoice.payment",
    "subscription.terms_mismatch": "subscription.terms",
    "entitlement.missing": "entitlement.tier",
    "entitlement.tier_mismatch": "entitlement.tier",
    "entitlement.orphan": "entitlement.tier",
}


#: value keys each system numbers on its own (billing INV-12 vs ERP E-12): shown, never marked as differing
_NOT_COMPARED = frozenset({"number"})


# -- small helpers -------------------------------------------------------------------------
def plain_tooltip(text: str) -> str:
    """A tooltip that shows ``text`` verbatim: Qt renders tooltips that *look* like markup as
    rich text, so such text is escaped (the characters are shown, never interpreted)."""
    if not QtGui.Qt.mightBeRichText(text):
        return text
    return "<qt>" + html.escape(text).replace("\n", "<br>") + "</qt>"


def _mnemonic_safe(text: str) -> str:
    """Button text is plain, but ``&`` marks a shortcut: double it to show it as typed."""
    return text.replace("&", "&&")


def human_age(seconds: float) -> str:
    """``"3 d 4 h"``, ``"5 h 12 min"``, ``"12 min"``, ``"< 1 min"``."""
    s = int(seconds)
    days, rest = divmod(s, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min"
    return "< 1 min"


def utc_text(dt: datetime) -> str:
    if dt.tzinfo is not None:
        dt = dt.astimezone(UTC)
    return f"{dt:%Y-%m-%d %H:%M} UTC"


def rule_systems(rule: str, sides: Sequence[Side] = ()) -> tuple[System, ...]:
    systems = RULE_SYSTEMS.get(rule) or frozenset(s.system for s in sides)
    return tuple(s for s in _SYSTEM_ORDER if s in systems)


def owner_system(exc: SyncException) -> System:
    """The system of record for this disagreement: a side flagged ``owner`` wins; otherwise the
    catalogue's default ownership (master data → ERP; invoice, subscription, entitlement →
    billing). An unmapped customer exists only in billing, whose id is the cross-system key."""
    for side in exc.sides:
        if side.values.get("owner") is True:
            return side.system
    key = _RULE_OWNERSHIP_KEY.get(exc.rule)
    if key is not None and key in DEFAULT_OWNERSHIP:
        return DEFAULT_OWNERSHIP[key]
    return System.BILLING


def format_value(value: object) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        return utc_text(value)
    if isinstance(value, list | tuple | set | frozenset):
        return ", ".join(format_value(v) for v in value) or "(empty)"
    if isinstance(value, enum.Enum):
        return str(value.value)
    return str(value)


def _muted_brush(widget: QWidget) -> QBrush:
    return widget.palette().brush(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Text)


# -- the model -----------------------------------------------------------------------------
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


HEADERS: dict[Column, str] = {
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

    @property
    def active(self) -> bool:
        return bool(self.rule or self.owner or self.min_severity or self.system or self.min_age or self.text.strip())


class _Row:
    """One exception, precomputed once per refresh for display, filtering and sorting."""

    __slots__ = ("age", "customer", "exc", "first_seen_ts", "id", "object_id", "owner", "rule", "search",
                 "sev_rank", "summary", "systems", "systems_text")

    def __init__(self, exc: SyncException, now: datetime, systems: tuple[frozenset[System], str]) -> None:
        self.exc = exc
        self.id = exc.id
        self.rule = exc.rule
        self.owner = str(exc.owner)
        self.customer = exc.customer_id or ""
        self.object_id = exc.object_id
        self.summary = exc.summary
        self.systems, self.systems_text = systems
        self.sev_rank = SEVERITY_RANK.get(exc.severity, 0)
        self.age = max(0.0, (now - exc.first_seen).total_seconds())
        self.first_seen_ts = exc.first_seen.timestamp()
        self.search = f"{self.customer}\x00{self.object_id}\x00{self.summary}".casefold()


def _systems_of(exc: SyncException, cache: dict[str, tuple[frozenset[System], str]]) -> tuple[frozenset[System], str]:
    hit = cache.get(exc.rule)
    if hit is None:
        systems = rule_systems(exc.rule, exc.sides)
        hit = (frozenset(systems), " ↔ ".join(SYSTEM_TITLES[s] for s in systems))
        if exc.rule in RULE_SYSTEMS:  # an unknown rule's systems come from its sides: not cached
            cache[exc.rule] = hit
    return hit


class ExceptionsModel(QAbstractTableModel):
    """Open exceptions as a table; ``set_filter`` and ``sort`` rebuild the visible index list."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._rows: list[_Row] = []
        self._order: list[int] = []  # all rows, in the current sort order
        self._visible: list[int] = []  # the rows shown, in order (indexes into _rows)
        self._by_id: dict[str, int] = {}
        self._filter = ExceptionFilter()
        self._sort_column = Column.AGE
        self._sort_order = Qt.SortOrder.DescendingOrder  # oldest first
        self.now = datetime.now(UTC)

    # -- data in ---------------------------------------------------------------------
    def set_exceptions(self, exceptions: Sequence[SyncException], now: datetime) -> None:
        """Replace the data (closed exceptions are left out); filter and sort are kept."""
        self.beginResetModel()
        self.now = now
        cache: dict[str, tuple[frozenset[System], str]] = {}
        self._rows = [_Row(exc, now, _systems_of(exc, cache)) for exc in exceptions if exc.closed_at is None]
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

    # -- Qt model API ----------------------------------------------------------------
    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self._visible)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(Column)

    def headerData(self, section: int, orientation: Qt.Orientation,
                   role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation == Qt.Orientation.Horizontal and 0 <= section < len(Column):
            if role == Qt.ItemDataRole.DisplayRole:
                return HEADERS[Column(section)]
            if role == Qt.ItemDataRole.ToolTipRole and section == Column.AGE:
                return "Time since the disagreement was first seen"
        return None

    def flags(self, index: QModelIndex | QPersistentModelIndex) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return ROW_FLAGS

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._visible):
            return None
        row = self._rows[self._visible[index.row()]]
        col = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return self._display(row, col)
        if role == Qt.ItemDataRole.ToolTipRole:
            if col == Column.SEVERITY:
                return f"Severity: {row.exc.severity.value}"
            if col == Column.FIRST_SEEN:
                return f"First seen {utc_text(row.exc.first_seen)}; last seen {utc_text(row.exc.last_seen)}"
            return plain_tooltip(row.summary)
        if role == Qt.ItemDataRole.DecorationRole and col == Column.SEVERITY:
            return severity_icon(row.exc.severity)
        if role == ID_ROLE:
            return row.id
        if role == SORT_ROLE:
            return self._sort_value(row, col)
        if role == Qt.ItemDataRole.TextAlignmentRole and col == Column.AGE:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    @staticmethod
    def _display(row: _Row, col: int) -> str:
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
            return row.summary.replace("\n", " ")
        if col == Column.SYSTEMS:
            return row.systems_text
        if col == Column.AGE:
            return human_age(row.age)
        return f"{row.exc.first_seen.astimezone(UTC):%Y-%m-%d %H:%M}"  # the header says UTC

    @staticmethod
    def _sort_value(row: _Row, col: int) -> Any:
        return {
            Column.SEVERITY: row.sev_rank, Column.RULE: row.rule, Column.OWNER: row.owner,
            Column.CUSTOMER: row.customer, Column.OBJECT: row.object_id, Column.SUMMARY: row.summary,
            Column.SYSTEMS: row.systems_text, Column.AGE: row.age, Column.FIRST_SEEN: row.first_seen_ts,
        }[Column(col)]


# -- the detail pane -----------------------------------------------------------------------
def _bold(label: QLabel, scale: float = 1.0) -> QLabel:
    font = QFont(label.font())
    font.setBold(True)
    if scale != 1.0:
        font.setPointSizeF(font.pointSizeF() * scale)
    label.setFont(font)
    return label


def _section_label(text: str) -> QLabel:
    return _bold(plain_label(text))


class ExceptionDetail(QWidget):
    """One exception: what disagrees, on which sides, who owns it and what fixes it allows."""

    open_customer = Signal(str)
    fix_requested = Signal(str, str)  # exception id, action ("retry", "correct", ...)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.exception: SyncException | None = None
        self.fix_policy: FixPolicy | None = None
        self.stack = QStackedWidget()
        self.empty = EmptyState("Select an exception", "Its sides, owner and fixes are shown here.")
        self.stack.addWidget(self.empty)

        content = QWidget()
        columns = QHBoxLayout(content)
        columns.setContentsMargins(12, 10, 12, 10)
        columns.setSpacing(18)
        lay = QVBoxLayout()  # left: what, who, when, fixes
        lay.setSpacing(8)
        rlay = QVBoxLayout()  # right: the values on each side
        rlay.setSpacing(6)
        columns.addLayout(lay, 2)
        columns.addLayout(rlay, 3)

        head = QHBoxLayout()
        self.severity_icon = QLabel()
        self.title = _bold(plain_label(), 1.25)
        self.title.setWordWrap(True)
        self.title.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.title.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        head.addWidget(self.severity_icon, 0, Qt.AlignmentFlag.AlignTop)
        head.addWidget(self.title, 1)
        lay.addLayout(head)

        form = QFormLayout()
        form.setContentsMargins(0, 0, 0, 0)
        form.setHorizontalSpacing(12)
        form.setVerticalSpacing(4)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self.severity = plain_label()
        self.owner = plain_label()
        self.customer_button = QPushButton()
        self.customer_button.setObjectName("customerLink")
        self.customer_button.setFlat(True)
        self.customer_button.setCursor(Qt.CursorShape.PointingHandCursor)
        self.customer_button.setSizePolicy(QSizePolicy.Policy.Maximum, QSizePolicy.Policy.Fixed)
        self.customer_button.setStyleSheet(
            "QPushButton#customerLink { color: palette(link); text-decoration: underline; border: none;"
            " padding: 0px; text-align: left; }")
        self.customer_button.clicked.connect(self._customer_clicked)
        self.no_customer = plain_label("— (no billing customer)")
        self.no_customer.setEnabled(False)
        customer_row = QHBoxLayout()
        customer_row.setContentsMargins(0, 0, 0, 0)
        customer_row.addWidget(self.customer_button)
        customer_row.addWidget(self.no_customer)
        customer_row.addStretch(1)
        self.seen = plain_label()
        self.seen.setWordWrap(True)
        self.exc_id = plain_label()
        self.exc_id.setWordWrap(True)
        self.exc_id.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.exc_id.setEnabled(False)
        form.addRow(plain_label("Severity"), self.severity)
        form.addRow(plain_label("Owner team"), self.owner)
        form.addRow(plain_label("Customer"), customer_row)
        form.addRow(plain_label("First seen"), self.seen)
        form.addRow(plain_label("Id"), self.exc_id)
        lay.addLayout(form)

        self.summary = plain_label()
        self.summary.setWordWrap(True)
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.summary.setFrameShape(QFrame.Shape.StyledPanel)
        self.summary.setMargin(6)
        self.summary.setBackgroundRole(QPalette.ColorRole.AlternateBase)
        self.summary.setAutoFillBackground(True)
        lay.addWidget(self.summary)

        rlay.addWidget(_section_label("Values on each side"))
        self.sides_table = QTableWidget()
        self.sides_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.sides_table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.sides_table.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.sides_table.setWordWrap(True)
        self.sides_table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.sides_table.horizontalHeader().setDefaultAlignment(
            Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        self.sides_table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.sides_table.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.sides_table.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        rlay.addWidget(self.sides_table)
        self.legend = plain_label("≠ marks a value that differs between the sides.")
        self.legend.setEnabled(False)
        rlay.addWidget(self.legend)

        self.owner_line = plain_label()
        self.owner_line.setWordWrap(True)

        self.candidates_title = _section_label("Link candidates")
        self.candidates = QTreeWidget()
        self.candidates.setRootIsDecorated(False)
        self.candidates.setHeaderLabels(["Candidate", "Score", "Reasons"])
        self.candidates.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.candidates.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.candidates.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.candidates.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.candidates.header().setStretchLastSection(True)
        self.no_candidates = plain_label("No candidate matches its tax id, email domain or name.")
        self.no_candidates.setEnabled(False)
        rlay.addWidget(self.candidates_title)
        rlay.addWidget(self.candidates)
        rlay.addWidget(self.no_candidates)
        rlay.addStretch(1)

        lay.addWidget(self.owner_line)
        lay.addWidget(_section_label("Fix actions"))
        self.fix_row = QHBoxLayout()
        self.fix_row.setContentsMargins(0, 0, 0, 0)
        self.fix_buttons: list[QPushButton] = []
        self.fix_row.addStretch(1)
        lay.addLayout(self.fix_row)
        self.no_fixes = plain_label("This rule allows no fix action.")
        self.no_fixes.setEnabled(False)
        lay.addWidget(self.no_fixes)
        lay.addStretch(1)

        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setWidget(content)
        self.stack.addWidget(scroll)
        self.content = scroll

        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(self.stack)

    # -- states ----------------------------------------------------------------------
    def show_empty(self, title: str, text: str = "") -> None:
        self.exception = None
        self.empty.set_message(title, text)
        self.stack.setCurrentWidget(self.empty)

    def is_showing_exception(self) -> bool:
        return self.stack.currentWidget() is self.content

    def _customer_clicked(self) -> None:
        if self.exception is not None and self.exception.customer_id:
            self.open_customer.emit(self.exception.customer_id)

    # -- content ---------------------------------------------------------------------
    def show_exception(self, exc: SyncException, now: datetime) -> None:
        same = self.exception is not None and self.exception.id == exc.id and self.is_showing_exception()
        bar = self.content.verticalScrollBar()
        scroll = bar.value() if same else 0
        self.exception = exc
        self.severity_icon.setPixmap(severity_icon(exc.severity).pixmap(16, 16))
        self.title.setText(f"{exc.rule} — {exc.object_id}")
        self.severity.setText(exc.severity.value)
        self.owner.setText(exc.owner.value)
        if exc.customer_id:
            self.customer_button.setText(_mnemonic_safe(exc.customer_id))
            self.customer_button.setToolTip(plain_tooltip(f"Open customer {exc.customer_id}"))
            self.customer_button.show()
            self.no_customer.hide()
        else:
            self.customer_button.hide()
            self.no_customer.show()
        self.seen.setText(f"{utc_text(exc.first_seen)} ({human_age(exc.age(now))} ago); "
                          f"last seen {utc_text(exc.last_seen)}")
        self.exc_id.setText(exc.id)
        self.summary.setText(exc.summary)
        owner = owner_system(exc)
        self._fill_sides(exc, owner)
        self.owner_line.setText(f"Owner system: {SYSTEM_TITLES[owner]} — corrections flow from the owner to the copies")
        self._fill_candidates(exc)
        self._fill_fixes(exc)
        self.stack.setCurrentWidget(self.content)
        inner = self.content.widget()
        if inner is not None:
            inner.adjustSize()
        bar.setValue(scroll)  # a refresh of the same exception keeps the reader's place

    def side_header(self, side: Side, owner: System, flagged: bool) -> str:
        owning = side.values.get("owner") is True if flagged else side.system is owner
        title = SYSTEM_TITLES[side.system] + (" (owner)" if owning else "")
        ref = f"{side.ref.kind} {side.ref.id}" if side.ref else "no record"
        return f"{title}\n{ref}"

    def _fill_sides(self, exc: SyncException, owner: System) -> None:
        table = self.sides_table
        sides = exc.sides
        keys: list[str] = []
        for side in sides:
            for key in side.values:
                if key not in ("candidates", "owner") and key not in keys:
                    keys.append(key)
        flagged = any(s.values.get("owner") is True for s in sides)
        table.clear()
        table.setColumnCount(len(sides))
        table.setRowCount(len(keys))
        table.setHorizontalHeaderLabels([self.side_header(s, owner, flagged) for s in sides])
        for col, side in enumerate(sides):
            header = table.horizontalHeaderItem(col)
            if header is not None:
                header.setIcon(system_icon(side.system))
                header.setToolTip(plain_tooltip(str(side.ref) if side.ref else "This system holds no record"))
        accent = QColor(SEVERITY_COLORS[Severity.MEDIUM])
        accent.setAlpha(70)
        muted = _muted_brush(table)
        self.differing: list[str] = []
        for row, key in enumerate(keys):
            held = [format_value(s.values[key]) for s in sides if key in s.values]
            differs = key not in _NOT_COMPARED and len(held) >= 2 and len(set(held)) > 1
            if differs:
                self.differing.append(key)
            vheader = QTableWidgetItem(f"≠ {key}" if differs else key)
            if differs:
                vheader.setFont(_bold_font(table.font()))
                vheader.setToolTip(f"{key}: the sides disagree")
            table.setVerticalHeaderItem(row, vheader)
            for col, side in enumerate(sides):
                if key in side.values:
                    text = format_value(side.values[key])
                    item = QTableWidgetItem(text)
                    item.setToolTip(plain_tooltip(text))
                    if side.values[key] is None:
                        item.setForeground(muted)
                    if differs:
                        item.setBackground(accent)
                        item.setFont(_bold_font(table.font()))
                else:
                    item = QTableWidgetItem("—")
                    item.setForeground(muted)
                    item.setToolTip("Not reported by this side")
                item.setFlags(Qt.ItemFlag.ItemIsEnabled)
                table.setItem(row, col, item)
        table.resizeRowsToContents()
        _fit_height(table)

    def _fill_candidates(self, exc: SyncException) -> None:
        self.candidates.clear()
        found = False
        any_key = False
        for side in exc.sides:
            if "candidates" not in side.values:
                continue
            any_key = True
            raw = side.values.get("candidates") or []
            for cand in raw if isinstance(raw, list | tuple) else []:
                if not isinstance(cand, dict):
                    continue
                found = True
                name = str(cand.get("name") or "")
                ref = str(cand.get("ref") or cand.get("id") or "")
                reasons = cand.get("reasons") or []
                reason_text = ", ".join(str(r) for r in reasons) if isinstance(reasons, list | tuple) else str(reasons)
                item = QTreeWidgetItem([f"{name} ({ref})" if ref else name, str(cand.get("score", "")), reason_text])
                item.setIcon(0, system_icon(side.system))
                item.setToolTip(0, plain_tooltip(f"{name}\n{ref}"))
                item.setTextAlignment(1, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.candidates.addTopLevelItem(item)
        self.candidates_title.setVisible(any_key)
        self.candidates.setVisible(found)
        self.no_candidates.setVisible(any_key and not found)
        if found:
            for col in range(2):
                self.candidates.resizeColumnToContents(col)
            rows = self.candidates.topLevelItemCount()
            row_h = self.candidates.sizeHintForRow(0) if rows else 20
            self.candidates.setFixedHeight(self.candidates.header().sizeHint().height() + rows * row_h + 6)

    def _fill_fixes(self, exc: SyncException) -> None:
        for button in self.fix_buttons:
            self.fix_row.removeWidget(button)
            button.deleteLater()
        self.fix_buttons = []
        policy = list(self.fix_policy(exc)) if self.fix_policy is not None else None
        actions = [str(a) for a, _, _ in policy] if policy is not None else list(exc.fix_actions)
        verdicts = {str(a): (ok, why) for a, ok, why in policy or ()}
        for action in actions:
            button = QPushButton(_mnemonic_safe(FIX_LABELS.get(action, action.capitalize())))
            button.setObjectName(f"fix_{action}")
            button.setProperty("action", action)
            ok, why = verdicts.get(action, (False, FIX_DISABLED_TIP))
            button.setEnabled(ok)
            button.setToolTip(plain_tooltip(why) if not ok else "Opens a preview: nothing is written until you confirm")
            button.clicked.connect(lambda _checked=False, a=action: self._fix_clicked(a))
            self.fix_row.insertWidget(len(self.fix_buttons), button)
            button.show()
            self.fix_buttons.append(button)
        self.no_fixes.setVisible(not actions)

    def _fix_clicked(self, action: str) -> None:
        if self.exception is not None:
            self.fix_requested.emit(self.exception.id, action)

    def set_fix_policy(self, policy: FixPolicy | None) -> None:
        """Enable the fix buttons as ``policy`` allows (call again when the operator changes)."""
        self.fix_policy = policy
        if self.exception is not None:
            self._fill_fixes(self.exception)


def _bold_font(base: QFont) -> QFont:
    font = QFont(base)
    font.setBold(True)
    return font


def _fit_height(table: QTableWidget) -> None:
    """Size a small table to its rows so the detail pane scrolls as a whole."""
    height = table.horizontalHeader().height() if table.horizontalHeader().isVisible() else 0
    height = max(height, table.horizontalHeader().sizeHint().height())
    for row in range(table.rowCount()):
        height += table.rowHeight(row)
    table.setFixedHeight(height + 2 * table.frameWidth() + 2)


# -- the page ------------------------------------------------------------------------------
AGE_CHOICES: tuple[tuple[str, float | None], ...] = (
    ("Any age", None), ("> 1 h", 3600.0), ("> 1 d", 86400.0), ("> 7 d", 7 * 86400.0), ("> 30 d", 30 * 86400.0))


class ExceptionsPage(QWidget):
    """Filter bar, counts per rule, the exception table and the detail pane."""

    open_customer = Signal(str)
    fix_requested = Signal(str, str)  # exception id, action

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = ExceptionsModel(self)
        self.now = datetime.now(UTC)
        self._loading = False
        self._loaded = False
        self._pending_id: str | None = None

        # -- filter bar ------------------------------------------------------------
        self.rule_combo = QComboBox()
        self.rule_combo.setObjectName("ruleFilter")
        self.rule_combo.addItem("All rules", None)
        for rule in RULES:
            self.rule_combo.addItem(f"{rule} (0)", rule)
        self.rule_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.rule_combo.setToolTip("Only exceptions of this rule (count of open exceptions)")

        self.owner_combo = QComboBox()
        self.owner_combo.addItem("All teams", None)
        for team in Team:
            self.owner_combo.addItem(team.value, team.value)
        self.owner_combo.setToolTip("Only exceptions owned by this team")

        self.severity_combo = QComboBox()
        self.severity_combo.addItem("Any severity", None)
        for sev in _SEVERITIES:
            self.severity_combo.addItem(severity_icon(sev), sev.value if sev is Severity.CRITICAL
                                        else f"{sev.value} or worse", sev.value)
        self.severity_combo.setToolTip("At least this severity: “high or worse” shows high and critical")

        self.system_combo = QComboBox()
        self.system_combo.addItem("All systems", None)
        for system in _SYSTEM_ORDER:
            self.system_combo.addItem(system_icon(system), SYSTEM_TITLES[system], system.value)
        self.system_combo.setToolTip("Only exceptions whose rule compares this system")

        self.age_combo = QComboBox()
        for text, seconds in AGE_CHOICES:
            self.age_combo.addItem(text, seconds)
        self.age_combo.setToolTip("Only exceptions first seen longer ago than this")

        self.search_edit = QLineEdit()
        self.search_edit.setPlaceholderText("Search customer, object, summary…")
        self.search_edit.setClearButtonEnabled(True)
        self.search_edit.setToolTip("Case-insensitive text in the customer id, object id or summary")
        self.search_edit.setMinimumWidth(200)

        self.clear_button = QPushButton("Clear filters")
        self.clear_button.clicked.connect(self.clear_filters)
        self.shown_label = plain_label()
        self.shown_label.setEnabled(False)

        bar = QHBoxLayout()
        bar.setSpacing(6)
        for widget in (self.rule_combo, self.owner_combo, self.severity_combo, self.system_combo, self.age_combo):
            bar.addWidget(widget)
        bar.addWidget(self.search_edit, 1)
        bar.addWidget(self.clear_button)
        bar.addWidget(self.shown_label)

        # -- counts per rule -------------------------------------------------------
        self.rule_list = QTreeWidget()
        self.rule_list.setObjectName("ruleCounts")
        self.rule_list.setRootIsDecorated(False)
        self.rule_list.setHeaderLabels(["Rule", "Open"])
        self.rule_list.setUniformRowHeights(True)
        self.rule_list.header().setStretchLastSection(False)
        self.rule_list.header().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.rule_list.header().setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        self.rule_list.setToolTip("Open exceptions per rule; click one to show only that rule")
        self._rule_items: dict[str | None, QTreeWidgetItem] = {}
        total_item = QTreeWidgetItem(["All rules", "0"])
        total_item.setData(0, Qt.ItemDataRole.UserRole, None)
        total_item.setFont(0, _bold_font(self.rule_list.font()))
        total_item.setFont(1, _bold_font(self.rule_list.font()))
        self._rule_items[None] = total_item
        self.rule_list.addTopLevelItem(total_item)
        for rule, (team, _fixes) in RULES.items():
            item = QTreeWidgetItem([rule, "0"])
            item.setData(0, Qt.ItemDataRole.UserRole, rule)
            item.setToolTip(0, f"{rule} — owned by {team.value}")
            self._rule_items[rule] = item
            self.rule_list.addTopLevelItem(item)
        for item in self._rule_items.values():
            item.setTextAlignment(1, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.rule_list.itemClicked.connect(self._rule_item_clicked)
        self.rule_list.currentItemChanged.connect(self._rule_item_current)
        self.rule_list.setCurrentItem(total_item)

        # -- table -------------------------------------------------------------------
        self.table = QTableView()
        self.table.setObjectName("exceptionsTable")
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setAlternatingRowColors(True)
        self.table.setWordWrap(False)
        self.table.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setDefaultSectionSize(self.table.fontMetrics().height() + 10)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(Column.AGE, Qt.SortOrder.DescendingOrder)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(False)
        header.setSectionResizeMode(Column.SUMMARY, QHeaderView.ResizeMode.Stretch)
        widths = {Column.SEVERITY: 88, Column.RULE: 200, Column.OWNER: 70, Column.CUSTOMER: 110,
                  Column.OBJECT: 120, Column.SYSTEMS: 120, Column.AGE: 80, Column.FIRST_SEEN: 140}
        for col, width in widths.items():
            self.table.setColumnWidth(col, width)
        header.setMinimumSectionSize(40)
        self.table.selectionModel().selectionChanged.connect(lambda *_: self._show_selected())

        self.table_empty = EmptyState(EMPTY_TITLE)
        self.table_stack = QStackedWidget()
        self.table_stack.addWidget(self.table)
        self.table_stack.addWidget(self.table_empty)

        # -- detail ------------------------------------------------------------------
        self.detail = ExceptionDetail()
        self.detail.open_customer.connect(self.open_customer)
        self.detail.fix_requested.connect(self.fix_requested)

        # the queue on top, the selected exception below it; the counts per rule on the left
        self.detail_splitter = QSplitter(Qt.Orientation.Vertical)
        self.detail_splitter.addWidget(self.table_stack)
        self.detail_splitter.addWidget(self.detail)
        self.detail_splitter.setStretchFactor(0, 3)
        self.detail_splitter.setStretchFactor(1, 2)
        self.detail_splitter.setSizes([460, 380])
        self.detail_splitter.setChildrenCollapsible(False)
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(self.rule_list)
        self.splitter.addWidget(self.detail_splitter)
        self.splitter.setStretchFactor(0, 0)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setSizes([250, 1250])
        self.splitter.setChildrenCollapsible(False)

        lay = QVBoxLayout(self)
        lay.setContentsMargins(8, 8, 8, 8)
        lay.addLayout(bar)
        lay.addWidget(self.splitter, 1)

        for combo in (self.rule_combo, self.owner_combo, self.severity_combo, self.system_combo, self.age_combo):
            combo.currentIndexChanged.connect(self._filters_changed)
        self.search_edit.textChanged.connect(self._filters_changed)
        self._update_states()

    # -- data in -----------------------------------------------------------------------
    def set_loading(self, loading: bool = True) -> None:
        """Show "loading" until the first ``set_exceptions`` (later refreshes update in place)."""
        self._loading = loading
        self._update_states()

    def set_exceptions(self, exceptions: Sequence[SyncException], now: datetime) -> None:
        """Refresh in place: filters, sort, selection (by id) and scroll position are kept."""
        selected = self.selected_id()
        bar = self.table.verticalScrollBar()
        scroll = bar.value()
        self.now = now
        self._loading = False
        self._loaded = True
        self.model.set_exceptions(exceptions, now)
        self._update_counts(exceptions)
        self._restore(selected, scroll, refresh=True)
        self._update_states()

    # -- filters -----------------------------------------------------------------------
    def current_filter(self) -> ExceptionFilter:
        # combo data is stored as plain strings (Qt turns a StrEnum into str anyway)
        owner, severity, system = (c.currentData() for c in (self.owner_combo, self.severity_combo, self.system_combo))
        return ExceptionFilter(
            rule=self.rule_combo.currentData(),
            owner=Team(owner) if owner else None,
            min_severity=Severity(severity) if severity else None,
            system=System(system) if system else None,
            min_age=self.age_combo.currentData(),
            text=self.search_edit.text(),
        )

    def set_rule_filter(self, rule: str | None) -> None:
        index = self.rule_combo.findData(rule) if rule else 0
        self.rule_combo.setCurrentIndex(max(0, index))

    def clear_filters(self) -> None:
        for combo in (self.rule_combo, self.owner_combo, self.severity_combo, self.system_combo, self.age_combo):
            combo.blockSignals(True)
            combo.setCurrentIndex(0)
            combo.blockSignals(False)
        self.search_edit.blockSignals(True)
        self.search_edit.clear()
        self.search_edit.blockSignals(False)
        self._filters_changed()

    def _filters_changed(self) -> None:
        selected = self.selected_id()
        self.model.set_filter(self.current_filter())
        self._restore(selected, None)
        self._sync_rule_list()
        self._update_states()

    def _sync_rule_list(self) -> None:
        item = self._rule_items.get(self.rule_combo.currentData())
        if item is not None and self.rule_list.currentItem() is not item:
            self.rule_list.blockSignals(True)
            self.rule_list.setCurrentItem(item)
            self.rule_list.blockSignals(False)

    def _rule_item_clicked(self, item: QTreeWidgetItem, _column: int = 0) -> None:
        self.set_rule_filter(item.data(0, Qt.ItemDataRole.UserRole))

    def _rule_item_current(self, item: QTreeWidgetItem | None, _previous: QTreeWidgetItem | None = None) -> None:
        if item is not None:  # keyboard navigation in the list filters too
            self.set_rule_filter(item.data(0, Qt.ItemDataRole.UserRole))

    def _update_counts(self, exceptions: Sequence[SyncException]) -> None:
        counts = exception_counts(exceptions)
        total = sum(counts.values())
        worst: dict[str, Severity] = {}
        for exc in exceptions:
            prev = worst.get(exc.rule)
            if exc.is_open and (prev is None or SEVERITY_RANK[exc.severity] > SEVERITY_RANK[prev]):
                worst[exc.rule] = exc.severity
        self.rule_counts: dict[str, int] = {rule: counts.get(rule, 0) for rule in RULES}
        for rule in counts:  # a rule the catalogue does not know yet still gets a line
            if rule not in self._rule_items:
                self.rule_combo.addItem(f"{rule} (0)", rule)
                item = QTreeWidgetItem([rule, "0"])
                item.setData(0, Qt.ItemDataRole.UserRole, rule)
                item.setTextAlignment(1, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self._rule_items[rule] = item
                self.rule_list.addTopLevelItem(item)
            self.rule_counts[rule] = counts[rule]
        self.rule_combo.setItemText(0, f"All rules ({total})")
        muted = _muted_brush(self.rule_list)
        normal = self.rule_list.palette().brush(QPalette.ColorGroup.Active, QPalette.ColorRole.Text)
        for key, item in self._rule_items.items():
            count = total if key is None else self.rule_counts.get(key, 0)
            item.setText(1, str(count))
            brush = muted if count == 0 else normal
            item.setForeground(0, brush)
            item.setForeground(1, brush)
            if key is not None:
                self.rule_combo.setItemText(self.rule_combo.findData(key), f"{key} ({count})")
                sev = worst.get(key)
                item.setIcon(0, severity_icon(sev) if sev else QIcon())
                item.setToolTip(1, f"{count} open; worst severity {sev.value}" if sev else "none open")

    # -- selection ---------------------------------------------------------------------
    def selected_id(self) -> str | None:
        rows = self.table.selectionModel().selectedRows()
        if not rows:
            return None
        value = self.model.data(rows[0], ID_ROLE)
        return str(value) if value is not None else None

    def selected_exception(self) -> SyncException | None:
        exc_id = self.selected_id()
        return self.model.exception_by_id(exc_id) if exc_id else None

    def select_exception(self, exc_id: str) -> bool:
        row = self.model.row_of(exc_id)
        if row is None:
            return False
        self._select_row(row)
        return True

    def _select_row(self, row: int) -> None:
        index = self.model.index(row, 0)
        self.table.selectionModel().setCurrentIndex(
            index, QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows)
        self.table.scrollTo(index)

    def next_exception(self) -> bool:
        """Select the next exception in the queue (F8); ``False`` at the end."""
        return self._step(+1)

    def previous_exception(self) -> bool:
        """Select the previous exception in the queue (Shift+F8); ``False`` at the start."""
        return self._step(-1)

    def _step(self, delta: int) -> bool:
        count = self.model.rowCount()
        if count == 0:
            return False
        exc_id = self.selected_id()
        row = self.model.row_of(exc_id) if exc_id else None
        if row is None:
            target = 0 if delta > 0 else count - 1
        else:
            target = row + delta
            if not 0 <= target < count:
                return False
        self._select_row(target)
        return True

    def _restore(self, selected: str | None, scroll: int | None, refresh: bool = False) -> None:
        row = self.model.row_of(selected) if selected else None
        selection = self.table.selectionModel()
        if row is not None:
            index = self.model.index(row, 0)
            selection.setCurrentIndex(
                index, QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows)
        else:
            selection.clearSelection()
        if scroll is not None:
            self.table.verticalScrollBar().setValue(scroll)
        elif row is not None:
            self.table.scrollTo(self.model.index(row, 0))
        self._show_selected(force=refresh)

    def _show_selected(self, force: bool = False) -> None:
        exc = self.selected_exception()
        if exc is not None:
            if force or self.detail.exception is not exc or not self.detail.is_showing_exception():
                self.detail.show_exception(exc, self.now)
            return
        self._update_detail_empty()

    # -- states ------------------------------------------------------------------------
    def _update_detail_empty(self) -> None:
        if self._loading and not self._loaded:
            self.detail.show_empty("Loading exceptions…", "The queue fills in after the first reconciliation.")
        elif self.model.total_count() == 0:
            self.detail.show_empty(EMPTY_TITLE, "Billing, ERP and support hold the same values.")
        elif self.model.visible_count() == 0:
            self.detail.show_empty("No exception matches the filters", "Clear the filters to see the whole queue.")
        else:
            self.detail.show_empty("Select an exception", "Its sides, owner and fixes are shown here.")

    def _update_states(self) -> None:
        total, visible = self.model.total_count(), self.model.visible_count()
        if self._loading and not self._loaded:
            self.table_empty.set_message("Loading exceptions…", "Reading the latest reconciliation.")
            self.table_stack.setCurrentWidget(self.table_empty)
        elif total == 0:
            self.table_empty.set_message(EMPTY_TITLE, "The next refresh re-checks every rule.")
            self.table_stack.setCurrentWidget(self.table_empty)
        else:
            self.table_stack.setCurrentWidget(self.table)
        filtering = self.model.filter.active
        self.shown_label.setText(f"{visible:,} of {total:,} shown" if filtering else f"{total:,} open")
        self.clear_button.setEnabled(filtering)
        if self.selected_exception() is None:
            self._update_detail_empty()

    # -- keyboard ----------------------------------------------------------------------
    @staticmethod
    def shortcuts() -> dict[str, QKeySequence]:
        """The keys the main window binds to :meth:`next_exception` / :meth:`previous_exception`."""
        return {"next": QKeySequence(Qt.Key.Key_F8), "previous": QKeySequence(Qt.Modifier.SHIFT | Qt.Key.Key_F8)}
