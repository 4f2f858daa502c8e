"""The window's memory between sessions: geometry, toolbar, splitters, table columns (widths,
order, hidden ones, sort) and each page's filters, kept in :class:`views.settings.ConsoleSettings`.

Restoring never trusts the stored geometry blindly: a window saved on a larger screen is shrunk
to the one it opens on (``views.widgets.screen``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QByteArray
from PySide6.QtWidgets import QComboBox, QHeaderView, QSplitter

from views.actions.pending import PendingActionsPage
from views.audit_page import AuditPage
from views.settings import ConsoleSettings
from views.widgets.screen import available

if TYPE_CHECKING:
    from views.main_window import MainWindow


def _splitters(window: MainWindow) -> dict[str, QSplitter]:
    out = {"exceptions": window.exceptions_page.splitter, "exceptions-detail": window.exceptions_page.detail_splitter,
           "customer": window.customer_page.splitter}
    if isinstance(window.audit_page, AuditPage):
        out["audit"] = window.audit_page.splitter
    return out


def _headers(window: MainWindow) -> dict[str, QHeaderView]:
    out = {"customers": window.customers_page.table.horizontalHeader(),
           "exceptions": window.exceptions_page.table.horizontalHeader(),
           "timeline": window.customer_page.timeline_view.horizontalHeader()}
    if isinstance(window.audit_page, AuditPage):
        out["audit"] = window.audit_page.table.horizontalHeader()
    if isinstance(window.pending_page, PendingActionsPage):
        out["pending"] = window.pending_page.table.horizontalHeader()
    return out


def _combos(window: MainWindow) -> dict[str, QComboBox]:
    page = window.exceptions_page
    out = {"exceptions/rule": page.rule_combo, "exceptions/owner": page.owner_combo,
           "exceptions/severity": page.severity_combo, "exceptions/system": page.system_combo,
           "exceptions/age": page.age_combo}
    if isinstance(window.audit_page, AuditPage):
        audit = window.audit_page
        out |= {"audit/system": audit.system_combo, "audit/kind": audit.kind_combo,
                "audit/outcome": audit.outcome_combo}
    if isinstance(window.pending_page, PendingActionsPage):
        out["pending/status"] = window.pending_page.status_combo
    return out


def save_window(window: MainWindow, settings: ConsoleSettings) -> None:
    """Remember the window as it is now (called when it closes)."""
    settings.save_bytes("window/geometry", window.saveGeometry())
    settings.save_bytes("window/state", window.saveState())
    settings.save_value("window/page", window.nav.currentRow())
    for name, splitter in _splitters(window).items():
        settings.save_bytes(f"splitter/{name}", splitter.saveState())
    for name, header in _headers(window).items():
        settings.save_bytes(f"columns/{name}", header.saveState())
    customers = window.customers_page
    settings.save_value("customers/search", customers.search_edit.text())
    settings.save_value("customers/only_exceptions", customers.only_exceptions.isChecked())
    settings.save_value("exceptions/search", window.exceptions_page.search_edit.text())
    for name, combo in _combos(window).items():
        data = combo.currentData()
        settings.save_value(f"filters/{name}", "" if data is None else str(data))
    if isinstance(window.audit_page, AuditPage):
        audit = window.audit_page
        for name, edit in (("operator", audit.operator_edit), ("customer", audit.customer_edit),
                           ("text", audit.text_edit)):
            settings.save_value(f"audit/{name}", edit.text())
    settings.mark_saved()
    settings.sync()


def restore_window(window: MainWindow, settings: ConsoleSettings, *, pages_only: bool = False) -> None:
    """Put the window back as it was saved (``pages_only``: only what the pages attached later —
    pending actions, audit log — hold)."""
    if not pages_only:
        geometry = settings.load_bytes("window/geometry")
        if geometry is not None:
            window.restoreGeometry(geometry)
            area = available(window)
            if window.width() > area.width() or window.height() > area.height():
                window.resize(min(window.width(), area.width()), min(window.height(), area.height()))
        state = settings.load_bytes("window/state")
        if state is not None:
            window.restoreState(state)
        page = settings.load_str("window/page", "0")
        if page.isdigit() and int(page) < window.nav.count():
            window.nav.setCurrentRow(int(page))
    for name, splitter in _splitters(window).items():
        data = settings.load_bytes(f"splitter/{name}")
        if data is not None:
            splitter.restoreState(data)
    for name, header in _headers(window).items():
        data = settings.load_bytes(f"columns/{name}")
        if data is not None:
            _restore_header(header, data)
    for name, combo in _combos(window).items():
        if pages_only and name.startswith("exceptions/"):
            continue
        raw = settings.load_str(f"filters/{name}")
        if raw:
            index = next((i for i in range(combo.count()) if str(combo.itemData(i)) == raw), -1)
            if index >= 0:
                combo.setCurrentIndex(index)
    if isinstance(window.audit_page, AuditPage):
        audit = window.audit_page
        for name, edit in (("operator", audit.operator_edit), ("customer", audit.customer_edit),
                           ("text", audit.text_edit)):
            edit.setText(settings.load_str(f"audit/{name}"))
    if pages_only:
        return
    customers = window.customers_page
    customers.search_edit.setText(settings.load_str("customers/search"))
    customers.only_exceptions.setChecked(settings.load_bool("customers/only_exceptions"))
    window.exceptions_page.search_edit.setText(settings.load_str("exceptions/search"))


def _restore_header(header: QHeaderView, data: QByteArray) -> None:
    """Widths, order, hidden columns and the sort (the table is sorted again by it); a column
    count that changed since (another version) leaves the defaults."""
    count = header.count()
    header.restoreState(data)
    if header.count() != count:
        return
    fitter = getattr(header.parent(), "column_fit", None)
    if fitter is not None:
        fitter.stop()  # the remembered widths are the operator's
    if header.isSortIndicatorShown():
        view = header.parent()
        sort = getattr(view, "sortByColumn", None)
        if callable(sort) and header.sortIndicatorSection() < count:
            sort(header.sortIndicatorSection(), header.sortIndicatorOrder())
