"""The main window's menu bar: File, Edit, View, Go, Actions, Help — every command of the window
(built by :meth:`views.main_window.MainWindow._build_actions`, each with its shortcut) in the
menu a user looks for it in. The Actions menu also holds the bulk fixes (filled once the action
service is attached), the audit log's verify and export, and the shown customer's evidence pack.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from views.main_window import MainWindow


def build_menus(w: MainWindow) -> None:
    """Put the window's commands into its menu bar; sets ``w.menus`` (title -> menu) and the
    Actions menu's own entries."""
    bar = w.menuBar()
    file_menu = bar.addMenu("&File")
    file_menu.addActions([w.export_csv_action, w.export_xlsx_action, w.cancel_export_action])
    file_menu.addSeparator()
    file_menu.addActions([w.connections_action, w.settings_action, w.data_folder_action])
    file_menu.addSeparator()
    file_menu.addAction(w.quit_action)
    edit_menu = bar.addMenu("&Edit")
    edit_menu.addActions([w.copy_action, w.copy_row_action])
    edit_menu.addSeparator()
    edit_menu.addActions([w.search_action, w.clear_filters_action])
    view_menu = bar.addMenu("&View")
    view_menu.addActions([w.refresh_action, w.full_refresh_action, w.cancel_action])
    view_menu.addSeparator()
    view_menu.addAction(w.toolbar_action)
    appearance_menu = view_menu.addMenu("&Appearance")
    appearance_menu.addActions(list(w.appearance_actions.values()))
    go_menu = bar.addMenu("&Go")
    go_menu.addActions(w.go_actions)
    go_menu.addSeparator()
    go_menu.addActions([w.back_action, w.next_action, w.previous_action])
    go_menu.addSeparator()
    go_menu.addAction(w.replayed_action)
    w.actions_menu = bar.addMenu("&Actions")
    w.actions_menu.setObjectName("actionsMenu")
    w.actions_menu.addAction(w.switch_role_action)
    w.actions_menu.addSeparator()
    w.bulk_menu = w.actions_menu.addMenu("&Bulk fix")
    w.bulk_menu.setEnabled(False)  # until the action service is attached
    w.verify_action = w.actions_menu.addAction("&Verify the audit log")
    w.verify_action.triggered.connect(w.verify_audit)
    w.export_action = w.actions_menu.addAction("&Export the audit log…")
    w.export_action.triggered.connect(w.export_audit)
    for a in (w.verify_action, w.export_action):
        a.setEnabled(False)
    # the shown customer's evidence pack (views/evidence_export.py; enabled by attach_evidence)
    w.evidence_action = w._action("E&vidence pack of this customer…", "Ctrl+Shift+P",
                                  "Write the shown customer's evidence pack (PDF and JSON twin)")
    w.evidence_action.triggered.connect(w.export_evidence)
    w.evidence_action.setEnabled(False)
    w.actions_menu.addAction(w.evidence_action)
    help_menu = bar.addMenu("&Help")
    help_menu.addAction(w.help_action)
    help_menu.addSeparator()
    help_menu.addAction(w.about_action)
    w.menus = {"File": file_menu, "Edit": edit_menu, "View": view_menu, "Go": go_menu,
               "Actions": w.actions_menu, "Help": help_menu}
