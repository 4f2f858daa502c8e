"""The main window: navigation, pages, a menu bar (File, Edit, View, Go, Actions, Help: every
command with its shortcut), a toolbar, and a status bar with one health light per system
(``views/systems_page.py``), the snapshot's age, and refresh progress with a cancel button.

The window only draws: it emits ``refresh_requested`` / ``cancel_requested`` and receives
:class:`ConsoleState` objects (computed off the UI thread) through :meth:`set_state`; each page is
told what the data rests on (``views/coverage.py``: loading, not loaded, empty, loaded). With
:class:`~views.settings.ConsoleSettings` it remembers its layout between sessions
(``views/memory.py``) and applies the preferences (refresh interval, appearance).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar

from PySide6.QtCore import QEvent, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QActionGroup, QCloseEvent, QIcon, QKeySequence, QPalette
from PySide6.QtWidgets import (
    QApplication,
    QHBoxLayout,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QMenu,
    QSizePolicy,
    QStackedWidget,
    QStyle,
    QTableView,
    QToolBar,
    QToolButton,
    QWidget,
)

from services.actions.model import ActionKind, ActionResult
from services.core.domain import SyncException, System
from services.io.config import Profile
from services.io.health import HealthResult
from services.metrics.model import MetricsReport
from views.action_adapter import ActionAdapter
from views.actions.launcher import FixLauncher
from views.actions.operator import OperatorWidget
from views.actions.pending import PendingActionsPage
from views.actions.permissions import apply_bulk_permissions, fix_policy
from views.actions.wording import BULK_KINDS, bulk_text
from views.adapters import ConsoleState, HealthAdapter
from views.appearance import apply_appearance
from views.audit_page import AuditPage
from views.connections.demo_badge import label_window
from views.coverage import OPENING, Coverage, names
from views.customer_view import CustomerPage
from views.customers import CustomersPage
from views.dialogs import AboutDialog, HelpDialog, SettingsDialog, open_folder
from views.evidence_export import EvidenceExporter, PackWriter, report_to
from views.exceptions.page import ExceptionsPage
from views.memory import restore_window, save_window
from views.overview.alerts import Notifier, RefreshAlerts
from views.overview.page import OverviewPage
from views.replay_notice import ReplayNotice
from views.settings import Appearance, ConsoleSettings
from views.systems_page import HealthLight, RefreshStatus, SystemsPage, snapshot_age_text
from views.table_export import ViewExporter
from views.widgets.focus import tab_chain
from views.widgets.icons import arrow_icon
from views.widgets.screen import fit_to_screen
from views.widgets.table_menu import copy_focused
from views.widgets.tables import EmptyState
from views.widgets.text import ElidedLabel, set_muted
from views.window_menus import build_menus


class MainWindow(QMainWindow):
    closed = Signal()
    refresh_requested = Signal(str)  # "auto" | "full"
    cancel_requested = Signal()

    PAGES = ("Overview", "Customers", "Exceptions", "Pending actions", "Audit log", "Systems")

    #: the size the window opens at, shrunk to the screen it opens on (views.widgets.screen)
    PREFERRED_SIZE = QSize(1400, 860)
    # set by views.window_menus.build_menus
    menus: dict[str, QMenu]
    actions_menu: QMenu
    bulk_menu: QMenu
    verify_action: QAction
    export_action: QAction
    evidence_action: QAction
    evidence: EvidenceExporter | None

    def __init__(self, settings: ConsoleSettings | None = None, data_folder: Path | None = None) -> None:
        """``settings``: the preferences and the memory of the window (None: nothing is
        remembered, e.g. in tests); ``data_folder``: the SyncDesk home, shown in About and
        Settings."""
        super().__init__()
        self.setWindowTitle("SyncDesk")
        self.setObjectName("mainWindow")
        self.settings = settings
        self.data_folder = data_folder or Path.home()
        # no fixed minimum: the pages' layouts set it, and they fit a 1024×640 screen
        fit_to_screen(self, self.PREFERRED_SIZE)
        self.state: ConsoleState | None = None

        # pages
        self.overview_page = OverviewPage()
        self.customers_page = CustomersPage()
        self.customer_page = CustomerPage()
        self.customers_stack = QStackedWidget()
        self.customers_stack.addWidget(self.customers_page)
        self.customers_stack.addWidget(self.customer_page)
        self.exceptions_page = ExceptionsPage()
        self.pending_page: QWidget = EmptyState("Pending actions", "Actions appear here once the action "
                                                                    "service is connected.")
        self.audit_page: QWidget = EmptyState("Audit log", "The audit log appears here once the action "
                                                            "service is connected.")
        self.systems_page = SystemsPage()
        self.launcher: FixLauncher | None = None
        self._refreshing = False
        self.customers_page.open_customer.connect(self.open_customer)
        self.exceptions_page.open_customer.connect(self.open_customer)
        self.customer_page.back.connect(self.show_customer_list)
        for data_page in (self.overview_page, self.customers_page, self.exceptions_page, self.customer_page):
            data_page.retry_requested.connect(lambda: self.refresh_requested.emit("auto"))
            data_page.systems_requested.connect(self.show_systems)
        self.overview_page.open_exceptions.connect(self.show_exceptions_only)
        self.overview_page.open_customers.connect(self.show_customers_only)
        self.overview_page.tiles_changed.connect(self._chain_focus)

        self.nav = QListWidget()
        self.nav.setObjectName("navigation")
        self.nav.setAccessibleName("Pages")
        self.nav.setFixedWidth(160)
        self.nav.setIconSize(QSize(18, 18))
        self.stack = QStackedWidget()
        style = self.style()
        sp = QStyle.StandardPixmap
        icons = [sp.SP_ComputerIcon, sp.SP_FileDialogDetailedView, sp.SP_MessageBoxWarning, sp.SP_BrowserReload,
                 sp.SP_FileDialogContentsView, sp.SP_DriveNetIcon]
        pages = [self.overview_page, self.customers_stack, self.exceptions_page, self.pending_page, self.audit_page,
                 self.systems_page]
        for i, (title, page, icon) in enumerate(zip(self.PAGES, pages, icons, strict=True)):
            item = QListWidgetItem(style.standardIcon(icon), title, self.nav)
            item.setToolTip(f"{title} (Ctrl+{i + 1})")
            self.stack.addWidget(page)
        self.nav.currentRowChanged.connect(self.stack.setCurrentIndex)
        central = QWidget()
        body = QHBoxLayout(central)
        body.setContentsMargins(4, 4, 4, 0)
        body.addWidget(self.nav)
        body.addWidget(self.stack, 1)
        self.setCentralWidget(central)
        self.nav.setCurrentRow(0)

        # status bar
        self.source_label = ElidedLabel()
        self.source_label.setObjectName("source")
        self.age_label = set_muted(ElidedLabel())
        self.age_label.setObjectName("snapshotAge")
        self.refresh_status = RefreshStatus()
        self.refresh_status.cancel_clicked.connect(self.cancel_requested)
        self.lights = {s: HealthLight(s) for s in System}
        bar = self.statusBar()
        bar.addWidget(self.source_label, 2)
        bar.addWidget(self.age_label, 3)
        self.exporter = ViewExporter(self, lambda text: self.statusBar().showMessage(text, 30_000))
        self.replay_notice = ReplayNotice()
        self.replay_notice.fix_chosen.connect(self.show_replayed_fix)
        self.replay_notice.pending_requested.connect(lambda: self.go_to_page(self.PAGES.index("Pending actions")))
        bar.addPermanentWidget(self.exporter.status)
        bar.addPermanentWidget(self.replay_notice)
        bar.addPermanentWidget(self.refresh_status)
        for light in self.lights.values():
            bar.addPermanentWidget(light)
        # a refresh that finds new critical exceptions or SLA breaches says so (tray, status bar)
        self.notifier = Notifier(lambda text: self.statusBar().showMessage(text, 60_000),
                                 style.standardIcon(QStyle.StandardPixmap.SP_MessageBoxWarning), self)
        self.notifier.clicked.connect(lambda: self.go_to_page(self.PAGES.index("Overview")))
        self.alerts = RefreshAlerts(self.notifier)
        self._age_timer = QTimer(self)
        self._age_timer.setInterval(15_000)
        self._age_timer.timeout.connect(self._update_age)
        self._age_timer.start()

        self._auto_refresh = QTimer(self)
        self._auto_refresh.timeout.connect(self._refresh_by_timer)

        self._build_actions()
        self._offer_export()
        if settings is not None:  # saved filters live in console.ini
            for button in (self.customers_page.saved_button, self.exceptions_page.saved_button):
                button.set_store(settings)
        self.customers_page.set_loading(True)
        self.exceptions_page.set_loading(True)
        self._chain_focus()
        if settings is not None:
            restore_window(self, settings)
            self.apply_preferences()

    def _chain_focus(self) -> None:
        """Tab order: the navigation, then the shown page's fields, table and buttons, then the
        toolbar's widgets (hidden pages are skipped)."""
        chain: list[QWidget] = [self.nav]
        for page in (self.overview_page, self.customers_page, self.customer_page, self.exceptions_page,
                     self.pending_page, self.audit_page):
            focus_chain = getattr(page, "focus_chain", None)
            if callable(focus_chain):
                chain += focus_chain()
        chain.append(self.systems_page.table)
        chain += [w for w in (getattr(self, "bulk_button", None), getattr(self, "operator_widget", None))
                  if isinstance(w, QWidget)]
        tab_chain(chain)

    def _refresh_by_timer(self) -> None:
        if not self._refreshing:
            self.refresh_requested.emit("auto")

    # -- actions, menus and shortcuts ----------------------------------------------------------
    def _action(self, text: str, shortcut: str | QKeySequence.StandardKey | None, tip: str,
                icon: QStyle.StandardPixmap | QIcon | None = None) -> QAction:
        """A window-wide command; its tooltip shows its shortcut (menus show it beside the text)."""
        act = QAction(text, self)
        if isinstance(icon, QStyle.StandardPixmap):
            act.setIcon(self.style().standardIcon(icon))
        elif isinstance(icon, QIcon):
            act.setIcon(icon)
        if shortcut is not None:
            act.setShortcut(QKeySequence(shortcut))
        keys = act.shortcut().toString(QKeySequence.SequenceFormat.NativeText)
        act.setToolTip(f"{tip} ({keys})" if keys else tip)
        act.setStatusTip(tip)
        self.addAction(act)
        return act

    def _build_actions(self) -> None:
        toolbar = QToolBar("Main toolbar")
        toolbar.setObjectName("mainToolbar")
        self.toolbar = toolbar
        toolbar.setMovable(False)
        toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.addToolBar(toolbar)
        act = self._action
        SP = QStyle.StandardPixmap

        # File
        self.export_csv_action = act("&Export the view as CSV…", "Ctrl+E",
                                     "Write what the table shows (its columns, order and filter) to a CSV file")
        self.export_csv_action.triggered.connect(lambda: self.export_view("csv"))
        self.export_xlsx_action = act("Export the view as E&xcel workbook…", "Ctrl+Shift+E",
                                      "Write what the table shows (its columns, order and filter) to an XLSX file")
        self.export_xlsx_action.triggered.connect(lambda: self.export_view("xlsx"))
        self.cancel_export_action = act("Cancel the e&xport", None, "Stop the export under way")
        self.cancel_export_action.setEnabled(False)
        self.cancel_export_action.triggered.connect(self.exporter.adapter.cancel)
        self.exporter.adapter.started.connect(lambda *_: self.cancel_export_action.setEnabled(True))
        for end in (self.exporter.adapter.done, self.exporter.adapter.cancelled, self.exporter.adapter.failed):
            end.connect(lambda *_: self.cancel_export_action.setEnabled(False))
        # the Connections dialog (views/connections/opener.py connects it, and the Systems page's button)
        self.connections_action = act("C&onnections…", "Ctrl+Shift+K", "Add, edit or test connection profiles")
        self.systems_page.connections_requested.connect(self.connections_action.trigger)
        self.settings_action = act("&Settings…", "Ctrl+,", "Refresh interval, appearance, data folder")
        self.settings_action.triggered.connect(self.show_settings)
        self.data_folder_action = act("Open the &data folder", None, "Where the databases, log and settings are")
        self.data_folder_action.triggered.connect(self.open_data_folder)
        self.quit_action = act("&Quit", "Ctrl+Q", "Close SyncDesk")
        self.quit_action.triggered.connect(self.close)
        # Edit
        self.copy_action = act("&Copy", QKeySequence.StandardKey.Copy, "Copy the selected cell or text")
        self.copy_action.setShortcutContext(Qt.ShortcutContext.WidgetShortcut)  # the focused widget's own Copy
        self.copy_action.triggered.connect(lambda: copy_focused(self, row=False))
        self.copy_row_action = act("Copy &row", "Ctrl+Shift+C", "Copy the selected row (tab-separated)")
        self.copy_row_action.triggered.connect(lambda: copy_focused(self, row=True))
        self.search_action = act("&Search customers", QKeySequence.StandardKey.Find, "Search customers",
                                 SP.SP_FileDialogContentsView)
        self.search_action.triggered.connect(self.focus_search)
        self.clear_filters_action = act("C&lear the filters", "Ctrl+Shift+L", "Clear the current page's filters")
        self.clear_filters_action.triggered.connect(self.clear_filters)
        # View
        self.refresh_action = act("&Refresh", "F5", "Fetch what changed in the three systems", SP.SP_BrowserReload)
        self.refresh_action.triggered.connect(lambda: self.refresh_requested.emit("auto"))
        self.full_refresh_action = act("&Full refresh", "Shift+F5", "Fetch everything again",
                                       SP.SP_DialogResetButton)
        self.full_refresh_action.triggered.connect(lambda: self.refresh_requested.emit("full"))
        self.cancel_action = act("&Cancel the refresh", "Esc", "Cancel the running refresh", SP.SP_BrowserStop)
        self.cancel_action.setIconText("Cancel")
        self.cancel_action.triggered.connect(self.cancel_requested)
        self.cancel_action.setEnabled(False)
        self.toolbar_action = toolbar.toggleViewAction()
        self.toolbar_action.setText("&Toolbar")
        self.toolbar_action.setToolTip("Show or hide the toolbar (this menu brings it back)")
        self.appearance_actions: dict[Appearance, QAction] = {}
        appearance_group = QActionGroup(self)
        for appearance, text in ((Appearance.SYSTEM, "Like the &system"), (Appearance.LIGHT, "&Light"),
                                 (Appearance.DARK, "&Dark")):
            a = QAction(text, self, checkable=True)
            a.triggered.connect(lambda _=False, ap=appearance: self.set_appearance(ap))
            appearance_group.addAction(a)
            self.appearance_actions[appearance] = a
        # Go
        self.go_actions: list[QAction] = []
        for i, title in enumerate(self.PAGES):
            go = act(f"&{i + 1} {title}", f"Ctrl+{i + 1}", f"Show {title}")
            go.triggered.connect(lambda _=False, row=i: self.go_to_page(row))
            self.go_actions.append(go)
        self.back_action = QAction("Back to the customer list\tAlt+Left", self)  # the page's own shortcut
        self.back_action.triggered.connect(self.show_customer_list)
        self.next_action = act("&Next exception", "F8", "Select the next exception", arrow_icon(self, down=True))
        self.next_action.triggered.connect(self.next_exception)
        self.previous_action = act("&Previous exception", "Shift+F8", "Select the previous exception",
                                   arrow_icon(self, down=False))
        self.previous_action.triggered.connect(self.previous_exception)
        self.replayed_action = act("Re&played fixes…", None, "The queued fixes that replayed by themselves")
        self.replayed_action.setEnabled(False)
        self.replayed_action.triggered.connect(self.replay_notice.open_list)
        # Actions
        self.switch_role_action = act("S&witch role…", "Ctrl+Shift+R", "Act in another of your login's roles")
        self.switch_role_action.setEnabled(False)  # until the action service is attached
        self.switch_role_action.triggered.connect(self.open_role_switch)
        # Help
        self.help_action = act("&User guide", QKeySequence.StandardKey.HelpContents, "How to use SyncDesk")
        if self.help_action.shortcut().isEmpty():
            self.help_action.setShortcut(QKeySequence("F1"))
        self.help_action.triggered.connect(self.show_help)
        self.about_action = act("&About SyncDesk", None, "Version, licences, data folder")
        self.about_action.triggered.connect(self.show_about)

        for a in (self.refresh_action, self.full_refresh_action, self.cancel_action):
            toolbar.addAction(a)
        toolbar.addSeparator()
        for a in (self.search_action, self.next_action):
            toolbar.addAction(a)

        self.evidence = None  # the shown customer's evidence pack: set by attach_evidence
        build_menus(self)

    def go_to_page(self, row: int) -> None:
        """Show a page (Ctrl+1…6) and put the keyboard in it: its table, or its first field."""
        self.nav.setCurrentRow(row)
        page = self.stack.widget(row)
        if page is self.customers_stack:
            page = self.customers_stack.currentWidget()
        target = getattr(page, "table", None) if page is not self.customer_page else page.timeline_view
        if isinstance(target, QWidget) and target.isVisibleTo(self) and target.isEnabled():
            target.setFocus(Qt.FocusReason.ShortcutFocusReason)
        elif isinstance(page, QWidget):
            page.focusNextChild()

    def clear_filters(self) -> None:
        page = self.stack.currentWidget()
        if page is self.customers_stack:
            self.customers_page.search_edit.clear()
            self.customers_page.only_exceptions.setChecked(False)
            self.customers_page.clear_only()
            return
        clear = getattr(page, "clear_filters", None)
        if callable(clear):
            clear()
        elif page is self.pending_page and isinstance(page, PendingActionsPage):
            page.set_status_filter(None)

    def verify_audit(self) -> None:
        if isinstance(self.audit_page, AuditPage):
            self.go_to_page(self.PAGES.index("Audit log"))
            if self.audit_page.verify_button.isEnabled():
                self.audit_page.verify_button.click()

    def attach_evidence(self, write: PackWriter, source: str = "") -> EvidenceExporter | None:
        """Offer the evidence pack, written by ``write`` (the shell's: app.evidence_cli.write_pack),
        once the action service is attached (None before)."""
        actions = getattr(self, "action_adapter", None)
        if not isinstance(actions, ActionAdapter):
            return None
        if self.evidence is not None:  # a profile switch: the previous profile's exporter goes
            self.customer_page.evidence_requested.disconnect(self.evidence.choose_file)
            self.evidence.deleteLater()
        self.evidence = exporter = EvidenceExporter(self, actions, write, source)
        report_to(exporter, self.statusBar())
        self.customer_page.evidence_requested.connect(exporter.choose_file)
        self.customer_page.set_evidence_enabled(True)
        self.evidence_action.setEnabled(True)
        return exporter

    def export_evidence(self) -> None:
        """The evidence pack of the customer shown (Ctrl+Shift+P); says so when none is shown."""
        shown = self.stack.currentWidget() is self.customers_stack \
            and self.customers_stack.currentWidget() is self.customer_page
        customer = self.customer_page.customer_id() if shown else None
        if self.evidence is None:
            return
        if customer is None:
            self.statusBar().showMessage("Open a customer first: the evidence pack is one customer's", 10_000)
            return
        self.evidence.choose_file(customer)

    def export_audit(self) -> None:
        if isinstance(self.audit_page, AuditPage):
            self.go_to_page(self.PAGES.index("Audit log"))
            self.audit_page.choose_export_file()

    # -- export of the current view, the role switch ------------------------------------------------
    #: the pages whose table can be exported: their file names' word
    EXPORT_NAMES: ClassVar[dict[str, str]] = {"Customers": "customers", "Exceptions": "exceptions",
                                              "Pending actions": "pending-actions", "Audit log": "audit-log"}

    def export_tables(self) -> dict[str, QTableView]:
        """Page title -> the table its export writes (pages not attached yet are left out)."""
        out: dict[str, QTableView] = {"Customers": self.customers_page.table, "Exceptions": self.exceptions_page.table}
        for title, page in (("Pending actions", self.pending_page), ("Audit log", self.audit_page)):
            table = getattr(page, "table", None)
            if isinstance(table, QTableView):
                out[title] = table
        return out

    def current_table(self) -> tuple[str, QTableView] | None:
        """The shown page's exportable table (its page title), if it has one."""
        page = self.stack.currentWidget()
        if page is self.customers_stack and self.customers_stack.currentWidget() is not self.customers_page:
            return None  # a customer's page: its timeline is not one of the exported tables
        title = self.PAGES[self.stack.currentIndex()]
        table = self.export_tables().get(title)
        return (title, table) if table is not None else None

    def export_view(self, fmt: str, title: str | None = None) -> object:
        """Export what a table shows (``title``: its page; default: the shown page's) as ``fmt``
        ("csv" / "xlsx"): the save dialog opens; the file is written off the UI thread."""
        found = self.current_table() if title is None else (title, self.export_tables()[title])
        if found is None:
            self.statusBar().showMessage("This page has no table to export: go to Customers, Exceptions, Pending "
                                         "actions or the Audit log (Ctrl+2…5).", 15_000)
            return None
        title, table = found
        return self.exporter.export(table, fmt, title.lower(), self.EXPORT_NAMES[title])

    def _offer_export(self) -> None:
        """Every exported table's right-click menu offers "Export this view"."""
        for title, table in self.export_tables().items():
            menu = getattr(table, "table_menu", None)
            if menu is not None:
                menu.export = lambda fmt, t=title: self.export_view(fmt, t)

    def open_role_switch(self) -> None:
        widget = getattr(self, "operator_widget", None)
        if isinstance(widget, OperatorWidget):
            widget.open_switch()

    # -- preferences, about, help ----------------------------------------------------------------
    def show_settings(self) -> SettingsDialog:
        dialog = SettingsDialog(self.settings or ConsoleSettings(), self.data_folder, self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.applied.connect(self.apply_preferences)
        dialog.show()
        self.settings_dialog = dialog
        return dialog

    def show_about(self) -> AboutDialog:
        dialog = AboutDialog(self.data_folder, self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.show()
        return dialog

    def show_help(self) -> HelpDialog:
        commands = [a for menu in self.menus.values() for a in menu.actions() if not a.isSeparator()]
        dialog = HelpDialog([a for a in commands if a.menu() is None], self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.show()
        return dialog

    def open_data_folder(self) -> None:
        open_folder(self.data_folder)

    def set_appearance(self, appearance: Appearance) -> None:
        if self.settings is not None:
            self.settings.appearance = appearance
        self.appearance_actions[appearance].setChecked(True)
        app = QApplication.instance()
        if isinstance(app, QApplication):
            apply_appearance(app, appearance)
            self._draw_icons(app.palette())  # now: the widgets take the new palette a moment later

    def apply_preferences(self) -> None:
        """The settings' refresh interval and appearance, now."""
        settings = self.settings or ConsoleSettings()
        minutes = settings.refresh_minutes
        if minutes:
            self._auto_refresh.start(minutes * 60_000)
        else:
            self._auto_refresh.stop()
        self.set_appearance(settings.appearance)

    def _draw_icons(self, palette: QPalette) -> None:
        """Drawn icons follow the text colour (a fixed black arrow vanishes on a dark palette)."""
        self.next_action.setIcon(arrow_icon(palette, down=True))
        self.previous_action.setIcon(arrow_icon(palette, down=False))

    def changeEvent(self, event: QEvent) -> None:
        if event.type() == QEvent.Type.PaletteChange and hasattr(self, "next_action"):
            self._draw_icons(self.palette())
        super().changeEvent(event)

    # -- fixing (actions, [F5]) -----------------------------------------------------------------
    def attach_actions(self, actions: ActionAdapter) -> None:
        """Connect the action service: operator switch, fix buttons, bulk, pending, audit. Again
        after a profile switch: the new profile's service replaces the old one in place."""
        again = self.launcher is not None
        if self.launcher is not None:  # the previous profile's dialogs act through a closed service
            self.launcher.close_all()
            self.launcher.deleteLater()
        self.action_adapter = actions
        self.launcher = FixLauncher(actions, self, ownership=self.state.ownership if self.state is not None else None)
        if again:
            self.operator_widget.set_operator(actions.operator)
        else:
            self._add_action_widgets()
        actions.operator_changed.connect(self.operator_widget.set_operator)
        actions.operator_changed.connect(lambda _op: self.apply_fix_policy())
        actions.error.connect(lambda text: self.statusBar().showMessage(text, 15_000))
        self.apply_fix_policy()
        self._attach_action_pages(actions)
        if self.settings is not None and not again:
            restore_window(self, self.settings, pages_only=True)

    def _add_action_widgets(self) -> None:
        """The toolbar's bulk button and role switch, the fix requests (once: they follow
        ``self.action_adapter`` and ``self.launcher``, whichever profile's they are)."""
        self.operator_widget = OperatorWidget(self.action_adapter.operator)
        spacer = QWidget()
        spacer.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.toolbar.addWidget(spacer)
        self.bulk_button = QToolButton()
        self.bulk_button.setText("Bulk fix")
        self.bulk_button.setToolTip("Apply one fix to every exception shown: the queue's (its filters), or the "
                                    "open customer's; the dialog lists them before anything runs")
        self.bulk_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        menu = QMenu(self.bulk_button)
        for kind in BULK_KINDS:
            act = QAction(bulk_text(kind), self)
            act.setData(kind.value)  # views.actions.permissions.apply_bulk_permissions
            act.triggered.connect(lambda _=False, k=kind: self.bulk_fix(k))
            menu.addAction(act)
            self.bulk_menu.addAction(act)
        self.bulk_menu.setEnabled(True)
        self.bulk_button.setMenu(menu)
        self.toolbar.addWidget(self.bulk_button)
        self.toolbar.addWidget(self.operator_widget)
        # checked and audited by the service
        self.operator_widget.role_changed.connect(lambda role: self.action_adapter.switch_role(role))
        self.exceptions_page.fix_requested.connect(self.request_fix)
        self.customer_page.fix_requested.connect(self.request_fix)

    def _attach_action_pages(self, actions: ActionAdapter) -> None:
        pending = PendingActionsPage()
        pending.bind(actions)
        pending.open_customer.connect(self.open_customer)
        if self.state is not None:
            pending.set_customer_names(self.state.customer_names)
        audit = AuditPage()
        audit.bind(actions)
        audit.open_customer.connect(self.open_customer)
        for old, new in ((self.pending_page, pending), (self.audit_page, audit)):
            index = self.stack.indexOf(old)
            self.stack.insertWidget(index, new)
            self.stack.removeWidget(old)
            old.deleteLater()
        self.pending_page, self.audit_page = pending, audit
        self.stack.setCurrentIndex(self.nav.currentRow())
        for a in (self.verify_action, self.export_action, self.switch_role_action):
            a.setEnabled(True)
        self._offer_export()
        self._chain_focus()

    def apply_fix_policy(self) -> None:
        """Enable the fix buttons and bulk entries as the service allows them now (the role, the
        profile: read-only, or fixes a connection test found it cannot perform)."""
        policy = fix_policy(self.action_adapter)
        self.exceptions_page.detail.set_fix_policy(policy)
        self.customer_page.set_fix_policy(policy)
        apply_bulk_permissions(self.bulk_menu.actions(), self.action_adapter)
        if self.launcher is not None:
            self.launcher.refresh_permissions()

    def _exception(self, exc_id: str) -> SyncException | None:
        if self.state is None:
            return None
        return next((e for e in self.state.exceptions if e.id == exc_id), None)

    def _still_opening(self) -> bool:
        if self.state is not None and not self.state.complete:
            self.statusBar().showMessage("The local snapshot is still being read: fixes are available in a "
                                         "moment.", 8_000)
            return True
        return False

    def request_fix(self, exc_id: str, kind: str) -> None:
        exc = self._exception(exc_id)
        if exc is None or self._still_opening():
            return
        if self.launcher is not None:
            self.launcher.open_fix(exc, kind)

    def bulk_fix(self, kind: ActionKind) -> None:
        """One fix over what is shown: the open customer's exceptions on the customer page, else
        the queue's visible rows (its filters). The dialog lists them before anything runs."""
        if self.launcher is None or self.state is None or self._still_opening():
            return
        on_customer = (self.stack.currentWidget() is self.customers_stack
                       and self.customers_stack.currentWidget() is self.customer_page)
        if on_customer:
            self.launcher.open_bulk(self.customer_page.exceptions(), kind)
            return
        shown = set(self.exceptions_page.model.visible_ids())
        self.launcher.open_bulk([e for e in self.state.exceptions if e.id in shown], kind)

    def focus_search(self) -> None:
        self.nav.setCurrentRow(self.PAGES.index("Customers"))
        self.show_customer_list()
        self.customers_page.focus_search()

    def next_exception(self) -> None:
        self.nav.setCurrentRow(self.PAGES.index("Exceptions"))
        self.exceptions_page.next_exception()

    def previous_exception(self) -> None:
        self.nav.setCurrentRow(self.PAGES.index("Exceptions"))
        self.exceptions_page.previous_exception()

    def show_exceptions_only(self, ids: frozenset[str], label: str) -> None:
        """The queue with exactly the exceptions ``ids`` (an Overview tile or bar: ``label``)."""
        self.exceptions_page.show_only(frozenset(ids), label)
        self.go_to_page(self.PAGES.index("Exceptions"))

    def show_customers_only(self, ids: frozenset[str], label: str) -> None:
        """The customer list with exactly the customers ``ids`` (an Overview tile: ``label``)."""
        self.customers_page.show_only(frozenset(ids), label)
        self.customers_stack.setCurrentWidget(self.customers_page)
        self.go_to_page(self.PAGES.index("Customers"))

    # -- navigation ---------------------------------------------------------------------------
    def open_customer(self, customer_id: str) -> None:
        if self.state is None:
            return
        row = next((r for r in self.state.rows if r.customer_id == customer_id), None)
        timeline = self.state.timeline(customer_id)
        if timeline is None:  # still opening: the customer is shown when the history is in
            self.customer_page.show_loading(customer_id)
        else:
            self.customer_page.show_customer(timeline, self.state.exceptions_of(customer_id), row)
        self.nav.setCurrentRow(self.PAGES.index("Customers"))
        self.customers_stack.setCurrentWidget(self.customer_page)

    def show_customer_list(self) -> None:
        self.customers_stack.setCurrentWidget(self.customers_page)
        self.customers_page.table.setFocus()

    # -- state ----------------------------------------------------------------------------------
    def set_state(self, state: ConsoleState) -> None:
        """Show a new snapshot in place: selections, filters and scroll positions are kept."""
        self.state = state
        self.alerts.state(state.exceptions, state.complete)
        # the owner shown is the engine's configured one (the ownership the action service enforces)
        self.exceptions_page.set_ownership(state.ownership)
        if self.launcher is not None:
            self.launcher.set_ownership(state.ownership)
        self.customers_page.set_loading(False)
        self.exceptions_page.set_loading(False)
        self.customers_page.set_rows(state.rows, state.row_filter)  # prepared with the rows (adapters)
        self.exceptions_page.set_exceptions(state.exceptions, state.now, state.customer_names)
        if isinstance(self.pending_page, PendingActionsPage):
            self.pending_page.set_customer_names(state.customer_names)
        shown = self.customer_page.customer_id()
        if shown is not None and self.customers_stack.currentWidget() is self.customer_page:
            self.open_customer(shown)
        for system, error in state.errors.items():
            self.lights[system].set_refresh_outcome(False, error)
        self._apply_coverage()
        self._update_age()

    def coverage(self) -> Coverage:
        """What the pages' data rests on now (``views.coverage``)."""
        if self.state is None:
            return OPENING
        return self.state.coverage(self._refreshing)

    def _apply_coverage(self) -> None:
        cov = self.coverage()
        now = self.state.now if self.state is not None else datetime.now(UTC)
        self.customers_page.set_coverage(cov, now)
        self.overview_page.set_coverage(cov, now)
        self.exceptions_page.set_coverage(cov)
        self.customer_page.set_coverage(cov, now)

    def show_systems(self) -> None:
        self.nav.setCurrentRow(self.PAGES.index("Systems"))

    def _update_age(self) -> None:
        self.age_label.setText(snapshot_age_text(self.state.ages if self.state else None, datetime.now(UTC)))

    def set_source(self, text: str) -> None:
        self.source_label.setText(text)
        self.systems_page.source.setText(text)

    def set_profile(self, profile: Profile) -> None:
        self.systems_page.set_profile(profile)
        label_window(self, profile)  # "SyncDesk — DEMO …" and a DEMO badge on the demo

    # -- refresh and health ---------------------------------------------------------------------
    def on_refresh_started(self, mode: str) -> None:
        self._refreshing = True
        self._apply_coverage()
        self.refresh_status.start(mode)
        self.cancel_action.setEnabled(True)
        self.refresh_action.setEnabled(False)
        self.full_refresh_action.setEnabled(False)

    def on_refresh_progress(self, system: str, phase: str, done: int, total: object) -> None:
        self.refresh_status.update_progress(system, phase, done, total)

    def on_system_refreshed(self, system: str, ok: bool, error: str) -> None:
        light = self.lights[System(system)]
        light.set_refresh_outcome(ok, error)
        self.systems_page.set_health(light.system, light.state, error or light.probe.detail)

    def on_refresh_ended(self, report: object = None) -> None:
        self._refreshing = False
        self.alerts.refresh_ended(report)  # its figures follow (views.adapters) and raise its alert
        failed = [o.system for o in getattr(report, "failed", [])]
        if failed:
            self.statusBar().showMessage(
                f"Refresh: {names(set(failed))} could not be read — see the Systems page (Ctrl+6)", 30_000)
        self._apply_coverage()
        self.refresh_status.stop()
        self.cancel_action.setEnabled(False)
        self.refresh_action.setEnabled(True)
        self.full_refresh_action.setEnabled(True)
        self._update_age()

    # -- the Overview's figures and the alert of a refresh ----------------------------------------
    def set_metrics(self, report: MetricsReport) -> None:
        """New figures (computed off the UI thread): swapped into the Overview in place; after a
        refresh, new critical exceptions and new SLA breaches raise one notification."""
        self.overview_page.set_report(report)
        self.alerts.figures(self.state.exceptions if self.state else None, report)

    def on_metrics_failed(self, text: str) -> None:
        self.overview_page.show_failed(text)
        self.alerts.figures(self.state.exceptions if self.state else None, None)

    def attach_health(self, adapter: HealthAdapter) -> None:
        adapter.checked.connect(self.on_health)

    def on_health(self, system_value: str, result: HealthResult) -> None:
        light = self.lights[System(system_value)]
        light.set_result(result)
        latency = f" in {result.latency_ms:.0f} ms" if result.latency_ms is not None else ""
        self.systems_page.set_health(light.system, light.state, result.detail + latency)

    def notify_replayed(self, results: list[ActionResult]) -> None:
        """Queued fixes replayed by themselves (a system came back): say how they went."""
        if not results:
            return
        counts: dict[str, int] = {}
        for result in results:
            status = str(getattr(result.status, "value", result.status))
            counts[status] = counts.get(status, 0) + 1
        detail = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
        n = len(results)
        self.statusBar().showMessage(f"{n} queued fix{'es' if n != 1 else ''} replayed: {detail} — the list is "
                                     "in the notice at the bottom right (Go > Replayed fixes)", 60_000)
        self.replay_notice.add(results)
        self.replayed_action.setEnabled(True)

    def show_replayed_fix(self, exception_id: str, action_id: str) -> None:
        """A fix picked in the replay notice: its exception in the queue if it is still open (a
        replay that failed or queued again), else its entries in the audit log."""
        page = self.exceptions_page
        if page.model.row_of(exception_id) is None and page.model.exception_by_id(exception_id) is not None:
            page.clear_filters()  # still open, only filtered out
        if page.select_exception(exception_id):
            self.go_to_page(self.PAGES.index("Exceptions"))
            return
        if isinstance(self.audit_page, AuditPage):
            self.go_to_page(self.PAGES.index("Audit log"))
            self.audit_page.show_action(exception_id, action_id)
            return
        self.go_to_page(self.PAGES.index("Pending actions"))

    def show_error(self, text: str) -> None:
        """The console could not open its data (a profile or snapshot error): every page says so."""
        self.set_source(f"Problem: {text}")
        self.customers_page.set_loading(False)
        self.exceptions_page.set_loading(False)
        if self.state is None:
            self.overview_page.show_not_loaded("Nothing could be loaded", text)
            self.customers_page.show_not_loaded("Nothing could be loaded", text)
            self.exceptions_page.show_not_loaded("Nothing could be loaded", text)
            self.systems_page.show_not_loaded("The connections could not be read", text)

    def closeEvent(self, event: QCloseEvent) -> None:
        if self.settings is not None:
            save_window(self, self.settings)
        self.closed.emit()
        super().closeEvent(event)
