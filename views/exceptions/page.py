"""The Exceptions page: the queue finance analysts and support leads work from.

It puts a filter bar, the per-rule counts, the table (:mod:`views.exceptions.model`) and the
detail pane (:mod:`views.exceptions.detail`) together, and keeps the selection and scroll
position across refreshes.

Everything that comes from an external system (summaries, names, ids, values) is shown as
plain text: item views never interpret markup, labels are made with ``plain_label`` and
tooltips go through ``plain_tooltip``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from PySide6.QtCore import QEvent, QItemSelectionModel, QModelIndex, Qt, Signal
from PySide6.QtGui import QIcon, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLineEdit,
    QSplitter,
    QStackedWidget,
    QTableView,
    QToolButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from services.core.domain import RULES, Severity, SyncException, System, Team
from services.core.overview import SEVERITY_RANK, exception_counts
from views.coverage import Coverage, PageState, View, exceptions_banner, exceptions_view
from views.exceptions.detail import ExceptionDetail
from views.exceptions.model import ID_ROLE, SYSTEM_ORDER, Column, ExceptionFilter, ExceptionsModel
from views.widgets.banner import Banner
from views.widgets.focus import shrinkable, tab_chain
from views.widgets.icons import severity_icon, system_icon
from views.widgets.saved_filters import SavedFiltersButton
from views.widgets.state import StatePanel
from views.widgets.table_menu import install_table_menu
from views.widgets.tables import fit_columns, setup_readonly_table
from views.widgets.text import SYSTEM_TITLES, bold_font, muted_brush, plain_label

#: said only when all three systems were read in the latest refresh (views.coverage)
EMPTY_TITLE = "No open exceptions — everything agrees"
#: what an empty queue says when the page was not told what the refresh read
UNQUALIFIED = View(PageState.EMPTY, "No open exceptions", "The next refresh re-checks every rule.")

_SEVERITIES = (Severity.CRITICAL, Severity.HIGH, Severity.MEDIUM, Severity.LOW)


AGE_CHOICES: tuple[tuple[str, float | None], ...] = (
    ("Any age", None), ("> 1 h", 3600.0), ("> 1 d", 86400.0), ("> 7 d", 7 * 86400.0), ("> 30 d", 30 * 86400.0))


class ExceptionsPage(QWidget):
    """Filter bar, counts per rule, the exception table and the detail pane."""

    open_customer = Signal(str)
    fix_requested = Signal(str, str)  # exception id, action
    #: the state panel's Retry / "Systems" buttons (the systems could not be read)
    retry_requested = Signal()
    systems_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = ExceptionsModel(self)
        self.now = datetime.now(UTC)
        self._loading = False
        self._loaded = False
        self._pending_id: str | None = None
        #: what the queue rests on (the window sets it for each state; see views.coverage)
        self.coverage: Coverage | None = None
        #: only these exception ids, and what they are (``show_only``: the records behind an
        #: Overview figure); None: no such restriction. Clear (Ctrl+Shift+L) lifts it.
        self.only: tuple[frozenset[str], str] | None = None

        # -- filter bar ------------------------------------------------------------
        self.rule_combo = QComboBox()
        self.rule_combo.setObjectName("ruleFilter")
        self.rule_combo.addItem("All rules", None)
        for rule in RULES:
            self.rule_combo.addItem(f"{rule} (0)", rule)
        shrinkable(self.rule_combo, 9)
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
        for system in SYSTEM_ORDER:
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
        self.search_edit.setMinimumWidth(100)
        for combo, chars in ((self.owner_combo, 6), (self.severity_combo, 7), (self.system_combo, 6),
                             (self.age_combo, 5)):
            shrinkable(combo, chars)

        self.clear_button = QToolButton()  # a tool button: narrower than a push button's style minimum
        self.clear_button.setText("Clear")
        self.clear_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        self.clear_button.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.clear_button.setToolTip("Clear the filters (Ctrl+Shift+L)")
        self.clear_button.clicked.connect(lambda: self.clear_filters())
        self.saved_button = SavedFiltersButton("exceptions", self.filter_values, self.apply_filter_values)
        self.shown_label = plain_label()
        self.shown_label.setEnabled(False)

        bar = QHBoxLayout()
        bar.setSpacing(4)
        for widget in (self.rule_combo, self.owner_combo, self.severity_combo, self.system_combo, self.age_combo):
            bar.addWidget(widget)
        bar.addWidget(self.search_edit, 1)
        bar.addWidget(self.clear_button)
        bar.addWidget(self.saved_button)
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
        total_item.setFont(0, bold_font(self.rule_list.font()))
        total_item.setFont(1, bold_font(self.rule_list.font()))
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
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(Column.AGE, Qt.SortOrder.DescendingOrder)
        widths: dict[int, int] = {Column.SEVERITY: 82, Column.RULE: 190, Column.OWNER: 68, Column.CUSTOMER: 180,
                  Column.OBJECT: 106, Column.SUMMARY: 290, Column.SYSTEMS: 120, Column.AGE: 68,
                  Column.FIRST_SEEN: 130}
        # never a cut title: a column is at least as wide as its header needs (font, margins, sort arrow)
        hh = self.table.horizontalHeader()
        widths = {c: max(w, hh.sectionSizeFromContents(c).width()) for c, w in widths.items()}
        setup_readonly_table(self.table, stretch=None, selection=QAbstractItemView.SelectionMode.SingleSelection,
                             widths=widths)
        # the rule's systems and the first-seen time are in the detail pane (and the age column):
        # hidden by default so the summary has room; the header's right-click menu shows them
        self.table.setColumnHidden(Column.SYSTEMS, True)
        self.table.setColumnHidden(Column.FIRST_SEEN, True)
        fit_columns(self.table, widths)
        self.table.horizontalHeader().setMinimumSectionSize(40)
        install_table_menu(self.table, id_of=lambda i: self._exception_at(i, "id"), id_label="exception id",
                           customer_of=lambda i: self._exception_at(i, "customer_id"),
                           open_customer=self.open_customer.emit, filter_by=self.filter_by_cell)
        self.table.selectionModel().selectionChanged.connect(lambda *_: self._show_selected())

        self.table_empty = StatePanel(EMPTY_TITLE)
        self.table_empty.retry_requested.connect(self.retry_requested)
        self.table_empty.systems_requested.connect(self.systems_requested)
        self.banner = Banner()
        self.banner.setObjectName("coverageBanner")
        self.banner.hide()
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
        self.splitter.setSizes([210, 1290])
        self.splitter.setChildrenCollapsible(False)

        lay = QVBoxLayout(self)
        lay.setContentsMargins(8, 8, 8, 8)
        lay.addLayout(bar)
        lay.addWidget(self.banner)
        lay.addWidget(self.splitter, 1)

        for combo in (self.rule_combo, self.owner_combo, self.severity_combo, self.system_combo, self.age_combo):
            combo.currentIndexChanged.connect(self._filters_changed)
        self.search_edit.textChanged.connect(self._filters_changed)
        tab_chain(self.focus_chain())
        self._update_states()

    def focus_chain(self) -> list[QWidget]:
        """Tab order: the filters, the saved filters, the rule counts, the queue, then the selected
        exception's customer link and fix buttons (the detail chains those after ``table``)."""
        return [self.rule_combo, self.owner_combo, self.severity_combo, self.system_combo, self.age_combo,
                self.search_edit, self.clear_button, self.saved_button, self.rule_list, self.table,
                self.table_empty.retry_button,
                self.table_empty.systems_button, *self.detail.focus_chain()]

    # -- data in -----------------------------------------------------------------------
    def set_ownership(self, ownership: Mapping[str, System]) -> None:
        """The engine's configured ownership (``ConsoleState.ownership``, the one the action
        service enforces): the detail pane shows the owner it names."""
        if dict(ownership) == self.detail.ownership:
            return
        self.detail.set_ownership(ownership)
        self._show_selected(force=True)

    def set_coverage(self, coverage: Coverage | None) -> None:
        """What the queue rests on: which systems the latest refresh read and which rules were
        skipped. An empty queue says "everything agrees" only when everything was read; a banner
        names skipped rules and systems not read; a skipped rule's count says "skipped"."""
        self.coverage = coverage
        banner = exceptions_banner(coverage, self.now) if coverage is not None else None
        if banner is None:
            self.banner.hide()
        else:
            self.banner.show_message(*banner)
            self.banner.show()
        self._show_skipped()
        self._update_states()

    @property
    def page_state(self) -> PageState:
        """loading / not loaded / empty / loaded: what the queue says now."""
        return PageState.LOADED if self.table_stack.currentWidget() is self.table else self.table_empty.state

    def _show_skipped(self) -> None:
        skipped = dict(self.coverage.skipped_rules) if self.coverage is not None else {}
        counts = getattr(self, "rule_counts", {})
        for key, item in self._rule_items.items():
            if key is None:
                continue
            why = skipped.get(key)
            if why is not None:
                item.setText(1, "skipped")
                item.setToolTip(0, f"{key}: not checked in the latest reconciliation ({why})")
                item.setToolTip(1, f"Not checked: {why}")
                self.rule_combo.setItemText(self.rule_combo.findData(key), f"{key} (skipped)")
            elif item.text(1) == "skipped":
                item.setText(1, str(counts.get(key, 0)))
                item.setToolTip(1, "")
                self.rule_combo.setItemText(self.rule_combo.findData(key), f"{key} ({counts.get(key, 0)})")
        self.rule_list.resizeColumnToContents(1)
        self._tint_counts()

    def show_not_loaded(self, title: str, text: str) -> None:
        """The data could not be opened at all (e.g. the snapshot database): say why."""
        self.table_empty.show_state(PageState.NOT_LOADED, title, text, retry=True)
        self.table_stack.setCurrentWidget(self.table_empty)
        self.detail.show_empty(title, text)

    def set_loading(self, loading: bool = True) -> None:
        """Show "loading" until the first ``set_exceptions`` (later refreshes update in place)."""
        self._loading = loading
        self._update_states()

    def set_exceptions(self, exceptions: Sequence[SyncException], now: datetime,
                       names: Mapping[str, str] | None = None) -> None:
        """Refresh in place: filters, sort, selection (by id) and scroll position are kept.
        ``names``: customer id -> name, shown beside the id."""
        selected = self.selected_id()
        bar = self.table.verticalScrollBar()
        scroll = bar.value()
        self.now = now
        self._loading = False
        self._loaded = True
        self.model.set_exceptions(exceptions, now, names)
        self._update_counts(exceptions)
        self._show_skipped()
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
            ids=self.only[0] if self.only is not None else None,
        )

    def show_only(self, ids: frozenset[str], label: str) -> None:
        """Show exactly the exceptions ``ids`` (the other filters cleared); ``label`` says what
        they are ("finance, open < 1 d") beside the count until the filters are cleared."""
        self.only = (frozenset(ids), label)
        self.clear_filters(keep_only=True)

    def filter_values(self) -> dict[str, str]:
        """The filters as plain text (what a saved filter holds): each combo's value, the search."""
        values = {key: "" if combo.currentData() is None else str(combo.currentData())
                  for key, combo in self._filter_combos().items()}
        values["text"] = self.search_edit.text()
        return values

    def apply_filter_values(self, values: Mapping[str, str]) -> None:
        """Put a saved filter back: each combo to its value ("any" where the value is no longer
        offered, e.g. a rule gone from the catalogue), the search, then one filter pass."""
        self.only = None
        for key, combo in self._filter_combos().items():
            raw = values.get(key, "")
            index = next((i for i in range(combo.count()) if raw and str(combo.itemData(i)) == raw), 0)
            combo.blockSignals(True)
            combo.setCurrentIndex(index)
            combo.blockSignals(False)
        self.search_edit.blockSignals(True)
        self.search_edit.setText(values.get("text", ""))
        self.search_edit.blockSignals(False)
        self._filters_changed()

    def _filter_combos(self) -> dict[str, QComboBox]:
        return {"rule": self.rule_combo, "owner": self.owner_combo, "severity": self.severity_combo,
                "system": self.system_combo, "age": self.age_combo}

    def _exception_at(self, index: QModelIndex, attr: str) -> str | None:
        exc = self.model.exception_at(index.row())
        value = getattr(exc, attr, None) if exc is not None else None
        return str(value) if value else None

    def filter_by_cell(self, index: QModelIndex) -> bool:
        """Right-click "Filter by": the rule, team or severity filter for those columns, else the
        search for the cell's text (the customer's id for the customer column)."""
        exc = self.model.exception_at(index.row())
        if exc is None:
            return False
        col = index.column()
        if col == Column.RULE:
            self.set_rule_filter(exc.rule)
        elif col == Column.OWNER:
            self.owner_combo.setCurrentIndex(max(0, self.owner_combo.findData(str(exc.owner))))
        elif col == Column.SEVERITY:
            self.severity_combo.setCurrentIndex(max(0, self.severity_combo.findData(exc.severity.value)))
        else:
            text = exc.customer_id if col == Column.CUSTOMER else str(index.data() or "")
            if not text:
                return False
            self.search_edit.setText(text)
        return True

    def set_rule_filter(self, rule: str | None) -> None:
        index = self.rule_combo.findData(rule) if rule else 0
        self.rule_combo.setCurrentIndex(max(0, index))

    def clear_filters(self, keep_only: bool = False) -> None:
        if not keep_only:
            self.only = None
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
        self._total = total
        for key, item in self._rule_items.items():
            count = total if key is None else self.rule_counts.get(key, 0)
            item.setText(1, str(count))
            if key is not None:
                self.rule_combo.setItemText(self.rule_combo.findData(key), f"{key} ({count})")
                sev = worst.get(key)
                item.setIcon(0, severity_icon(sev) if sev else QIcon())
                item.setToolTip(1, f"{count} open; worst severity {sev.value}" if sev else "none open")

        self._tint_counts()

    def _tint_counts(self) -> None:
        """Rules with nothing open in the palette's muted colour, the others in its text colour
        (again whenever the palette changes: light, dark)."""
        muted = muted_brush(self.rule_list)
        counts = getattr(self, "rule_counts", {})
        skipped = set(self.coverage.skipped_rules) if self.coverage is not None else set()
        for key, item in self._rule_items.items():
            count = getattr(self, "_total", 0) if key is None else counts.get(key, 0)
            for col in (0, 1):
                if count == 0 and key not in skipped:
                    item.setForeground(col, muted)
                else:
                    item.setData(col, Qt.ItemDataRole.ForegroundRole, None)  # the palette's text colour

    def changeEvent(self, event: QEvent) -> None:
        if event.type() == QEvent.Type.PaletteChange:
            self._tint_counts()
        super().changeEvent(event)

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
    def _empty_view(self) -> View:
        """What the queue says while it has no row (views.coverage.exceptions_view)."""
        if self._loading and not self._loaded:
            return View(PageState.LOADING, "Loading exceptions…", "Reading the latest reconciliation.")
        if self.coverage is None:
            return UNQUALIFIED if self._loaded else View(PageState.LOADING, "Loading exceptions…")
        return exceptions_view(self.coverage, 0)

    def _update_detail_empty(self) -> None:
        if self._loading and not self._loaded:
            self.detail.show_empty("Loading exceptions…", "The queue fills in after the first reconciliation.")
        elif self.model.total_count() == 0:
            view = self._empty_view()
            self.detail.show_empty(view.title, view.text)
        elif self.model.visible_count() == 0:
            self.detail.show_empty("No exception matches the filters", "Clear the filters to see the whole queue.")
        else:
            self.detail.show_empty("Select an exception", "Its sides, owner and fixes are shown here.")

    def _update_states(self) -> None:
        total, visible = self.model.total_count(), self.model.visible_count()
        if total == 0 or (self._loading and not self._loaded):
            self.table_empty.show_view(self._empty_view())
            self.table_stack.setCurrentWidget(self.table_empty)
        else:
            self.table_stack.setCurrentWidget(self.table)
        filtering = self.model.filter.active
        self.shown_label.setText(f"{visible:,} of {total:,} shown" if filtering else f"{total:,} open")
        if self.only is not None:
            self.shown_label.setText(f"{self.only[1]}: {visible:,} of {total:,} shown")
        self.clear_button.setEnabled(filtering)
        if self.selected_exception() is None:
            self._update_detail_empty()

    # -- keyboard ----------------------------------------------------------------------
    @staticmethod
    def shortcuts() -> dict[str, QKeySequence]:
        """The keys the main window binds to :meth:`next_exception` / :meth:`previous_exception`."""
        return {"next": QKeySequence(Qt.Key.Key_F8), "previous": QKeySequence(Qt.Modifier.SHIFT | Qt.Key.Key_F8)}
