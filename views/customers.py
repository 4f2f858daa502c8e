"""The Customers page: every billing customer with its links into the ERP and support.

Scale: the list holds up to ~100,000 rows. Search and sort run in
:class:`services.core.overview.RowFilter` (precomputed search strings and cached sort orders); the
Qt model only exposes the resulting list of row indices, so a new search is one model reset
and Qt then asks for the few dozen visible cells. No per-row Qt work, no Python
``filterAcceptsRow`` proxy, no ``resizeColumnsToContents``.

A refresh (``set_rows`` with new data) keeps the selected customer and the scroll position:
both are remembered by customer id before the reset and restored after it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from PySide6.QtCore import (
    QItemSelectionModel,
    QModelIndex,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import QColor, QKeyEvent, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QHBoxLayout,
    QHeaderView,
    QLineEdit,
    QStackedWidget,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from services.core.domain import Severity, System
from services.core.overview import CustomerRow, Health, RowFilter
from views.coverage import ALL_READ, Coverage, PageState, View, customers_view, stale_banner
from views.widgets.banner import Banner
from views.widgets.focus import tab_chain
from views.widgets.icons import (
    LATE_COLOR,
    MISSING_COLOR,
    OK_COLOR,
    dot_icon,
    severity_icon,
    system_icon,
    unlinked_icon,
)
from views.widgets.saved_filters import SavedFiltersButton
from views.widgets.state import StatePanel
from views.widgets.table_menu import install_table_menu
from views.widgets.tables import RowsTableModel, fit_columns, setup_readonly_table
from views.widgets.text import SYSTEM_TITLES, plain_label

HEALTH_COLORS: dict[Health, str] = {Health.OK: OK_COLOR, Health.ATTENTION: LATE_COLOR,
                                    Health.CRITICAL: MISSING_COLOR}
UNMAPPED = "unmapped"
NOT_LOADED = "not loaded"


@dataclass(frozen=True, slots=True)
class Column:
    title: str
    sort_key: str
    width: int


#: default widths (px at 1×), each at least what its header's title needs (``_setup_table``): together
#: they fit a 1400-pixel window with the Health column in sight; wider, every column grows in proportion
COLUMNS: tuple[Column, ...] = (
    Column("Customer id", "customer_id", 130),
    Column("Name", "name", 200),
    Column("Email", "email", 180),
    Column("ERP", "erp", 95),
    Column("Support", "support", 95),
    Column("Status", "status", 75),
    Column("Plan", "plan", 110),
    Column("Tier", "tier", 75),
    Column("Open exceptions", "open_exceptions", 105),
    Column("Health", "health", 80),
)
(COL_ID, COL_NAME, COL_EMAIL, COL_ERP, COL_SUPPORT, COL_STATUS, COL_PLAN, COL_TIER, COL_EXC,
 COL_HEALTH) = range(len(COLUMNS))


class CustomersModel(RowsTableModel[CustomerRow]):
    """Read-only table over ``rows``, showing only the row indices of the current view.

    ``sort()`` (a header click) does not sort here: it emits ``sort_requested(key, descending)``
    and the page answers with :meth:`set_view` from :class:`RowFilter`.
    """

    sort_requested = Signal(str, bool)
    HEADERS = tuple(c.title for c in COLUMNS)
    RIGHT_ALIGNED = frozenset({COL_EXC})

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._view: list[int] = []
        self._row_index: dict[str, int] | None = None  # customer id -> index in rows (lazy, per set_rows)

    # -- data in -------------------------------------------------------------------------
    def set_rows(self, rows: list[CustomerRow], view: Sequence[int] | None = None) -> None:
        """New data; the view is ``view`` or every row in the given order."""
        self.beginResetModel()
        self._rows = rows
        self._view = list(view) if view is not None else list(range(len(rows)))
        self._row_index = None
        self.endResetModel()

    def set_view(self, indices: Sequence[int]) -> None:
        """Show these row indices (from :meth:`RowFilter.apply`), in this order."""
        self.beginResetModel()
        self._view = list(indices)
        self.endResetModel()

    # -- lookups ---------------------------------------------------------------------------
    def rows(self) -> list[CustomerRow]:
        return self._rows

    def view(self) -> list[int]:
        return self._view

    def row_at(self, row: int) -> CustomerRow:
        return self._rows[self._view[row]]

    def customer_id(self, row: int) -> str:
        return self._rows[self._view[row]].customer_id

    def row_of(self, customer_id: str) -> int | None:
        """The view row showing ``customer_id`` (None when filtered out or unknown)."""
        if self._row_index is None:
            self._row_index = {r.customer_id: i for i, r in enumerate(self._rows)}
        i = self._row_index.get(customer_id)
        if i is None:
            return None
        try:
            return self._view.index(i)  # a C-speed scan: no per-view dict to rebuild on each keystroke
        except ValueError:
            return None

    # -- Qt model API ----------------------------------------------------------------------
    def record_count(self) -> int:
        return len(self._view)

    def record(self, row: int) -> CustomerRow:
        return self._rows[self._view[row]]

    def shown_records(self) -> list[CustomerRow]:
        rows = self._rows
        return [rows[i] for i in self._view]

    def header_tooltip(self, section: int) -> str | None:
        return f"Sort by {COLUMNS[section].title.lower()}"

    def role_data(self, r: CustomerRow, col: int, role: int) -> Any:
        if role == Qt.ItemDataRole.UserRole:
            return r.customer_id
        if role == Qt.ItemDataRole.ForegroundRole:
            if (col == COL_ERP and r.erp_party is None and System.ERP not in r.unknown) or (
                    col == COL_SUPPORT and r.support_org is None and System.SUPPORT not in r.unknown):
                return QColor(MISSING_COLOR)
            return None
        return None

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        if 0 <= column < len(COLUMNS):
            self.sort_requested.emit(COLUMNS[column].sort_key, order == Qt.SortOrder.DescendingOrder)

    # -- cells -----------------------------------------------------------------------------
    def display(self, r: CustomerRow, col: int) -> str:
        if col == COL_ID:
            return r.customer_id
        if col == COL_NAME:
            return r.name
        if col == COL_EMAIL:
            return r.email
        if col == COL_ERP:
            return r.erp_party if r.erp_party is not None else (
                NOT_LOADED if System.ERP in r.unknown else UNMAPPED)
        if col == COL_SUPPORT:
            return r.support_org if r.support_org is not None else (
                NOT_LOADED if System.SUPPORT in r.unknown else UNMAPPED)
        if col == COL_STATUS:
            return r.status.replace("_", " ")
        if col == COL_PLAN:
            return r.plan
        if col == COL_TIER:
            return r.tier
        if col == COL_EXC:
            return f"{r.open_exceptions:,}" if r.open_exceptions else ""
        if col == COL_HEALTH:
            return r.health.value
        return ""

    def decoration(self, r: CustomerRow, col: int) -> Any:
        if col == COL_ERP:
            if System.ERP in r.unknown:
                return None
            return system_icon(System.ERP) if r.erp_party is not None else unlinked_icon()
        if col == COL_SUPPORT:
            if System.SUPPORT in r.unknown:
                return None
            return system_icon(System.SUPPORT) if r.support_org is not None else unlinked_icon()
        if col == COL_ID:
            return system_icon(System.BILLING)
        if col == COL_HEALTH:
            return dot_icon(HEALTH_COLORS[r.health])
        if col == COL_EXC and r.worst is not None:
            return severity_icon(r.worst)
        return None

    def tooltip(self, r: CustomerRow, col: int) -> str | None:
        if col in (COL_ERP, COL_SUPPORT) and (System.ERP if col == COL_ERP else System.SUPPORT) in r.unknown:
            return "No data from this system yet: whether the customer is linked there is unknown"
        if col == COL_ERP:
            if r.erp_party is None:
                return f"No ERP party carries {r.customer_id}"
            return f"ERP party {r.erp_party} (code {r.erp_code or '—'})"
        if col == COL_SUPPORT:
            if r.support_org is None:
                return f"No support organization carries {r.customer_id}"
            return f"Support organization {r.support_org}: {r.support_name or '—'}"
        if col in (COL_EXC, COL_HEALTH):
            if not r.open_exceptions:
                return "No open exceptions"
            worst = r.worst.value if isinstance(r.worst, Severity) else "—"
            return f"{r.open_exceptions} open (worst: {worst})\n" + "\n".join(r.rules)
        parts = [f"{r.name}", f"{SYSTEM_TITLES[System.BILLING]} {r.customer_id}"]
        if r.email:
            parts.append(r.email)
        if r.tax_id:
            parts.append(f"Tax id {r.tax_id}")
        if r.country:
            parts.append(f"Country {r.country}")
        return "\n".join(parts)


class CustomerTable(QTableView):
    """The table: Enter/Return on the current row emits ``open_requested(row)``."""

    open_requested = Signal(int)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and self.currentIndex().isValid():
            self.open_requested.emit(self.currentIndex().row())
            event.accept()
            return
        super().keyPressEvent(event)


class SearchEdit(QLineEdit):
    """Down arrow / Enter move into the results; Escape clears."""

    to_results = Signal()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        key = event.key()
        if key in (Qt.Key.Key_Down, Qt.Key.Key_Return, Qt.Key.Key_Enter):
            self.to_results.emit()
            event.accept()
            return
        if key == Qt.Key.Key_Escape and self.text():
            self.clear()
            event.accept()
            return
        super().keyPressEvent(event)


class CustomersPage(QWidget):
    """Search + "only with exceptions" + count + the customer table (or an empty state)."""

    open_customer = Signal(str)
    #: the state panel's Retry / "Systems" buttons (data could not be loaded)
    retry_requested = Signal()
    systems_requested = Signal()
    DEBOUNCE_MS = 60

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._filter: RowFilter | None = None
        self._loaded = False
        self._loading = False
        self._sort_key = "name"
        self._descending = False
        #: what the rows rest on (set by the window for each state); None: the rows are all there is
        self._coverage: Coverage | None = None
        #: only these customer ids, and what they are (``show_only``: the records behind an
        #: Overview figure); None: no such restriction. Clearing the filters lifts it.
        self.only: tuple[frozenset[str], str] | None = None

        self.heading = plain_label("Customers")
        font = self.heading.font()
        font.setPointSizeF(font.pointSizeF() * 1.6)
        font.setBold(True)
        self.heading.setFont(font)

        self.search_edit = SearchEdit()
        self.search_edit.setPlaceholderText("Search id, name, email, tax id, ERP code, support org… (Ctrl+F)")
        self.search_edit.setClearButtonEnabled(True)
        self.search_edit.setAccessibleName("Search customers")
        self.search_edit.setMinimumWidth(220)
        self.only_exceptions = QCheckBox("Only with exceptions")
        self.saved_button = SavedFiltersButton("customers", self.filter_values, self.apply_filter_values)
        self.count_label = plain_label("")
        self.count_label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)

        self.model = CustomersModel(self)
        self.table = CustomerTable()
        self.table.setModel(self.model)
        self._setup_table()

        self.empty = StatePanel("No snapshot yet", "Refresh to load customers from billing, ERP and support.")
        self.empty.retry_requested.connect(self.retry_requested)
        self.empty.systems_requested.connect(self.systems_requested)
        self.banner = Banner()
        self.banner.setObjectName("coverageBanner")
        self.banner.hide()
        self.stack = QStackedWidget()
        self.stack.addWidget(self.table)
        self.stack.addWidget(self.empty)

        bar = QHBoxLayout()
        bar.addWidget(self.search_edit, 3)
        bar.addWidget(self.only_exceptions)
        bar.addWidget(self.saved_button)
        bar.addStretch(1)
        bar.addWidget(self.count_label)
        lay = QVBoxLayout(self)
        lay.addWidget(self.heading)
        lay.addLayout(bar)
        lay.addWidget(self.banner)
        lay.addWidget(self.stack, 1)

        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(self.DEBOUNCE_MS)
        self._debounce.timeout.connect(self.apply_filter)
        self.search_edit.textChanged.connect(self._debounce.start)
        self.search_edit.to_results.connect(self._focus_results)
        self.only_exceptions.toggled.connect(self.apply_filter)
        self.model.sort_requested.connect(self._on_sort)
        self.table.open_requested.connect(self._open_row)
        self.table.doubleClicked.connect(lambda index: self._open_row(index.row()))
        install_table_menu(self.table, id_of=self._id_at, id_label="customer id", customer_of=self._id_at,
                           open_customer=self.open_customer.emit, filter_by=self._filter_by_cell)

        tab_chain(self.focus_chain())
        find = QShortcut(QKeySequence.StandardKey.Find, self)
        find.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        find.activated.connect(self.focus_search)
        self._update_state()

    def _setup_table(self) -> None:
        t = self.table
        hh = t.horizontalHeader()
        hh.setSortIndicatorShown(True)  # before measuring: a title needs room beside the sort arrow
        # never a cut title ("Open exceptio…"): a column is at least as wide as its header needs in
        # this font and style (margins and the sort arrow included)
        widths = {i: max(col.width, hh.sectionSizeFromContents(i).width()) for i, col in enumerate(COLUMNS)}
        setup_readonly_table(t, stretch=None, widths=widths, selection=QAbstractItemView.SelectionMode.SingleSelection)
        fit_columns(t, widths)
        t.setShowGrid(False)
        t.setTabKeyNavigation(False)
        t.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        t.setHorizontalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        # uniform row heights: no per-row measuring
        t.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        hh.setHighlightSections(False)
        hh.setSortIndicator(COL_NAME, Qt.SortOrder.AscendingOrder)
        t.setSortingEnabled(True)

    def focus_chain(self) -> list[QWidget]:
        """Tab order: the search, the filter, the saved filters, the table (or the state panel's
        buttons)."""
        return [self.search_edit, self.only_exceptions, self.saved_button, self.table, self.empty.retry_button,
                self.empty.systems_button]

    # -- public API --------------------------------------------------------------------------
    @property
    def page_state(self) -> PageState:
        """loading / not loaded / empty / loaded: what the page says now."""
        return PageState.LOADED if self.stack.currentWidget() is self.table else self.empty.state

    @property
    def sort_key(self) -> str:
        """The key the table is sorted by (``services.core.overview.SORT_KEYS``)."""
        return self._sort_key

    def set_rows(self, rows: list[CustomerRow], prepared: RowFilter | None = None) -> None:
        """New data (e.g. after a refresh). Keeps the selected customer and the scroll position.

        ``prepared``: a :class:`RowFilter` over the same ``rows`` whose sort order and search
        haystack were already computed off the UI thread (``RowFilter.prepare(key)``); without
        it the first sort of 100,000 rows (~70 ms) happens here."""
        if prepared is not None and prepared.rows is not rows:
            raise ValueError("prepared RowFilter is over other rows")
        selected = self.selected_customer_id()
        anchor = self._top_anchor()
        self._filter = prepared or RowFilter(rows)
        self._loaded = True
        self._loading = False
        view = self._current_view()
        self.model.set_rows(rows, view)
        self._restore(selected, anchor)
        self._update_state()

    def set_coverage(self, coverage: Coverage | None, now: datetime | None = None) -> None:
        """What the rows rest on: the empty state says whether billing was read, is being read
        or could not be read, and a banner names the systems the latest refresh did not read."""
        self._coverage = coverage
        banner = stale_banner(coverage, list(System), now or datetime.now(UTC)) if coverage is not None else None
        if banner is None:
            self.banner.hide()
        else:
            self.banner.show_message(*banner)
            self.banner.show()
        self._update_state()

    def show_not_loaded(self, title: str, text: str) -> None:
        """The data could not be opened at all (e.g. the snapshot database): say why."""
        self.empty.show_state(PageState.NOT_LOADED, title, text, retry=True)
        self.count_label.setText("")
        self.stack.setCurrentWidget(self.empty)

    def set_loading(self, loading: bool) -> None:
        """Shows "Loading…" while no rows are there yet (a refresh of shown data keeps the table)."""
        self._loading = loading
        self._update_state()

    def clear(self) -> None:
        self._filter = None
        self._loaded = False
        self.model.set_rows([])
        self._update_state()

    def focus_search(self) -> None:
        self.search_edit.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.search_edit.selectAll()

    def selected_customer_id(self) -> str | None:
        index = self.table.currentIndex()
        sel = self.table.selectionModel()
        if not index.isValid() or sel is None or not sel.isRowSelected(index.row(), QModelIndex()):
            return None
        return self.model.customer_id(index.row())

    def select_customer(self, customer_id: str, scroll: bool = True) -> bool:
        row = self.model.row_of(customer_id)
        if row is None:
            return False
        index = self.model.index(row, 0)
        sel = self.table.selectionModel()
        sel.setCurrentIndex(index, QItemSelectionModel.SelectionFlag.ClearAndSelect
                            | QItemSelectionModel.SelectionFlag.Rows)
        if scroll:
            self.table.scrollTo(index, QAbstractItemView.ScrollHint.EnsureVisible)
        return True

    def apply_filter(self) -> None:
        """Run the search now (the debounce timer calls this ~60 ms after the last keystroke)."""
        self._debounce.stop()
        if self._filter is None:
            self._update_state()
            return
        selected = self.selected_customer_id()
        self.model.set_view(self._current_view())
        if selected is None or not self.select_customer(selected):
            self.table.scrollToTop()
        self._update_state()

    def show_only(self, ids: frozenset[str], label: str) -> None:
        """Show exactly the customers ``ids`` (search and "only with exceptions" cleared);
        ``label`` says what they are beside the count until the filters are cleared."""
        self.only = (frozenset(ids), label)
        for box in (self.only_exceptions, self.search_edit):
            box.blockSignals(True)
        self.only_exceptions.setChecked(False)
        self.search_edit.clear()
        for box in (self.only_exceptions, self.search_edit):
            box.blockSignals(False)
        self.apply_filter()

    def clear_only(self) -> None:
        if self.only is not None:
            self.only = None
            self.apply_filter()

    def filter_values(self) -> dict[str, str]:
        """The search and "only with exceptions" as plain text (what a saved filter holds)."""
        return {"text": self.search_edit.text(), "only_exceptions": "true" if self.only_exceptions.isChecked()
                else "false"}

    def apply_filter_values(self, values: Mapping[str, str]) -> None:
        """Put a saved filter back, and search at once (no typing pause to wait for)."""
        self.only = None
        self.only_exceptions.blockSignals(True)
        self.only_exceptions.setChecked(values.get("only_exceptions", "false") == "true")
        self.only_exceptions.blockSignals(False)
        self.search_edit.setText(values.get("text", ""))
        self.apply_filter()

    # -- internals ---------------------------------------------------------------------------
    def _id_at(self, index: QModelIndex) -> str | None:
        return self.model.customer_id(index.row()) if 0 <= index.row() < self.model.rowCount() else None

    def _filter_by_cell(self, index: QModelIndex) -> bool:
        """Right-click "Filter by": search for the cell's text."""
        text = str(index.data() or "")
        if not text or text in (UNMAPPED, NOT_LOADED):
            return False
        self.search_edit.setText(text)
        self.apply_filter()
        return True

    def _current_view(self) -> list[int]:
        assert self._filter is not None
        view = self._filter.apply(self.search_edit.text(), self._sort_key, self._descending,
                                  self.only_exceptions.isChecked())
        if self.only is not None:
            ids, rows = self.only[0], self._filter.rows
            view = [i for i in view if rows[i].customer_id in ids]
        return view

    def _on_sort(self, key: str, descending: bool) -> None:
        self._sort_key, self._descending = key, descending
        if self._filter is None:
            return
        selected = self.selected_customer_id()
        self.model.set_view(self._current_view())
        if selected is None or not self.select_customer(selected):
            self.table.scrollToTop()

    def _top_anchor(self) -> tuple[str, int] | None:
        """(customer id of the first visible row, pixel offset of the viewport inside it)."""
        if self.model.rowCount() == 0:
            return None
        row = self.table.rowAt(0)
        if row < 0:
            return None
        offset = -self.table.rowViewportPosition(row)
        return self.model.customer_id(row), offset

    def _restore(self, selected: str | None, anchor: tuple[str, int] | None) -> None:
        kept = selected is not None and self.select_customer(selected, scroll=False)
        row = self.model.row_of(anchor[0]) if anchor is not None else None
        if row is None or anchor is None:  # the top row is gone: keep the selection in sight instead
            if kept:
                self.table.scrollTo(self.table.currentIndex(), QAbstractItemView.ScrollHint.EnsureVisible)
            return
        bar = self.table.verticalScrollBar()
        # uniform row heights: the row's top is row * height (ScrollPerPixel)
        bar.setValue(row * self.table.verticalHeader().defaultSectionSize() + anchor[1])

    def _focus_results(self) -> None:
        if self.model.rowCount() == 0:
            return
        self.table.setFocus(Qt.FocusReason.OtherFocusReason)
        if self.selected_customer_id() is None:
            self.select_customer(self.model.customer_id(0))

    def _open_row(self, row: int) -> None:
        if 0 <= row < self.model.rowCount():
            self.open_customer.emit(self.model.customer_id(row))

    def _update_state(self) -> None:
        total = len(self._filter.rows) if self._filter is not None else 0
        shown = self.model.rowCount()
        if not self._loaded:
            if self._loading:
                self.empty.show_state(PageState.LOADING, "Loading customers…", "Reading billing, ERP and support.")
            else:
                self.empty.show_state(PageState.NOT_LOADED, "No snapshot yet",
                                      "Refresh to load customers from billing, ERP and support.", retry=True)
            self.count_label.setText("")
            self.stack.setCurrentWidget(self.empty)
            return
        noun = "customer" if total == 1 else "customers"
        self.count_label.setText(f"{shown:,} of {total:,} {noun}")
        if self.only is not None:
            self.count_label.setText(f"{self.only[1]}: {shown:,} of {total:,} {noun}")
        if shown:
            self.stack.setCurrentWidget(self.table)
            return
        if total == 0:
            view = customers_view(self._coverage or ALL_READ, 0)
            self.empty.show_view(view)
            if view.state is not PageState.EMPTY:  # nothing counted yet: no "0 of 0"
                self.count_label.setText("")
        else:
            query = self.search_edit.text().strip()
            parts = []
            if query:
                parts.append(f"Nothing matches “{query}”.")
            if self.only_exceptions.isChecked():
                parts.append("Only customers with open exceptions are shown.")
            if self.only is not None:
                parts.append(f"Only the customers of “{self.only[1]}” are shown.")
            self.empty.show_view(View(PageState.EMPTY, "No customer matches",
                                      " ".join(parts) + " Clear the search to see all."))
        self.stack.setCurrentWidget(self.empty)
