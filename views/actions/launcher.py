"""Opening fixes: one fix dialog per exception (raising an open one) and one bulk run at a time,
each flow a task owned by the action adapter."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime

from PySide6.QtCore import QObject, Qt
from PySide6.QtWidgets import QWidget

from services.actions.model import ActionKind, Operator
from services.core.domain import SyncException, System
from views.action_adapter import ActionAdapter
from views.actions.bulk_dialog import BulkDialog
from views.actions.fix_dialog import FixDialog
from views.actions.fix_flow import run_fix
from views.actions.permissions import bulk_eligible
from views.actions.wording import NOT_BULK, kind_of, kind_title
from views.widgets.text import text_of


class FixLauncher(QObject):
    """Opens one :class:`FixDialog` per exception (raising an open one) and one bulk run at a
    time; each flow runs as a task owned by the adapter.

    ``ownership`` is the engine's configured ownership (``ConsoleState.ownership``, set again with
    :meth:`set_ownership` for each new state): the dialogs show the owner it names."""

    def __init__(self, adapter: ActionAdapter, parent_widget: QWidget | None = None,
                 today: Callable[[], datetime] | None = None, *,
                 ownership: Mapping[str, System] | None = None) -> None:
        super().__init__(parent_widget)
        self.adapter = adapter
        self.parent_widget = parent_widget
        self.today = today or (lambda: datetime.now(UTC))
        self.ownership: dict[str, System] = dict(ownership or {})
        self.dialogs: dict[str, FixDialog] = {}
        self.bulk_dialog: BulkDialog | None = None
        adapter.operator_changed.connect(self._operator_changed)

    def set_ownership(self, ownership: Mapping[str, System]) -> None:
        """The configured ownership the next dialogs show (from the engine, via the console state)."""
        self.ownership = dict(ownership)

    def refresh_permissions(self) -> None:
        """What the profile may do changed (a connection test): the open dialogs say it again."""
        self._operator_changed(self.adapter.operator)

    def close_all(self) -> None:
        """Close every fix dialog and the bulk run (the profile they act through is going away:
        a profile switch). Their tasks are the adapter's, cancelled when it closes."""
        for dialog in list(self.dialogs.values()):
            dialog.close()
        self.dialogs.clear()
        if self.bulk_dialog is not None:
            self.bulk_dialog.close()
            self.bulk_dialog = None

    def _operator_changed(self, operator: Operator) -> None:
        for dialog in list(self.dialogs.values()):
            allowed = {text_of(k): (ok, why) for k, ok, why in self.adapter.allowed_actions(dialog.exception)}
            ok, why = allowed.get(dialog.kind.value, (False, "this exception does not allow that action"))
            dialog.set_operator(operator, ok, why)
        if self.bulk_dialog is not None:
            self.bulk_dialog.set_operator(operator)

    def open_fix(self, exc: SyncException, kind: ActionKind | str) -> FixDialog | None:
        k = kind if isinstance(kind, ActionKind) else kind_of(kind)
        if k is None:
            self.adapter.error.emit(f"The action {kind!r} is not available yet")
            return None
        open_dialog = self.dialogs.get(exc.id)
        if open_dialog is not None:
            open_dialog.raise_()
            open_dialog.activateWindow()
            return open_dialog
        allowed = {text_of(kk): (ok, why) for kk, ok, why in self.adapter.allowed_actions(exc)}
        ok, why = allowed.get(k.value, (False, "this exception does not allow that action"))
        dialog = FixDialog(exc, k, self.adapter.operator, ownership=self.ownership, allowed=ok, why_not=why,
                           today=self.today(), parent=self.parent_widget)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.dialogs[exc.id] = dialog
        dialog.finished.connect(lambda *_: self.dialogs.pop(exc.id, None))
        dialog.show()
        dialog.raise_()
        dialog.activateWindow()  # the keyboard goes on in the dialog
        self.adapter.tasks.start(f"fix:{exc.id}", run_fix(self.adapter, dialog))
        return dialog

    def open_bulk(self, exceptions: Sequence[SyncException], kind: ActionKind | str) -> BulkDialog | None:
        k = kind if isinstance(kind, ActionKind) else kind_of(kind)
        if k is None or k in NOT_BULK:
            self.adapter.error.emit(f"{kind_title(str(kind))} needs a value per exception: do it one by one")
            return None
        if self.bulk_dialog is not None or self.adapter.bulk_running:
            if self.bulk_dialog is not None:
                self.bulk_dialog.raise_()
            self.adapter.error.emit("A bulk action is already running")
            return self.bulk_dialog
        eligible, skipped = bulk_eligible(self.adapter, exceptions, k)
        dialog = BulkDialog(k, eligible, skipped, operator=self.adapter.operator, today=self.today(),
                            parent=self.parent_widget)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.bind(self.adapter)
        self.bulk_dialog = dialog
        dialog.finished.connect(self._bulk_closed)
        dialog.show()
        dialog.raise_()
        dialog.activateWindow()
        return dialog

    def _bulk_closed(self, *_: object) -> None:
        self.bulk_dialog = None
