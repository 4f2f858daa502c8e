"""The status bar's notice of queued fixes that replayed by themselves (a system came back, or
the console started with actions an earlier session left): "3 queued fixes replayed" stays in
the status bar until dismissed, and its menu lists each fix — what it was, on which exception,
how it went — a click on one opening it where it is now (the exception in the queue, else its
trace in the audit log); "Open Pending actions" and "Dismiss" end the list.

The menu is popped up (``popup()``), never ``exec()``-ed; the window's Go > Replayed fixes opens
it from the keyboard.
"""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import QPoint, Qt, Signal
from PySide6.QtWidgets import QMenu, QToolButton, QWidget

from services.actions.model import ActionResult
from views.actions.wording import kind_title
from views.widgets.icons import PENDING_COLOR, STATUS_COLORS, dot_icon
from views.widgets.text import clipped, plain_tooltip, text_of

#: how many replayed fixes the notice keeps (the newest)
KEEP = 50


def replay_line(result: ActionResult) -> str:
    """"Retry · invoice.missing_in_erp:in_12 — succeeded, verified"."""
    status = text_of(result.status)
    verified = ", verified" if result.verified else ""
    return f"{kind_title(text_of(result.kind))} · {result.exception_id} — {status}{verified}"


class ReplayNotice(QToolButton):
    """"N queued fixes replayed" and the list of them (see the module's docstring)."""

    #: exception id, action id: the operator picked this fix in the list
    fix_chosen = Signal(str, str)
    pending_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("replayNotice")
        self.setAutoRaise(True)
        self.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.results: list[ActionResult] = []
        self.list_menu = QMenu(self)
        self.list_menu.setObjectName("replayedFixes")
        self.list_menu.setToolTipsVisible(True)
        self.clicked.connect(self.open_list)
        self.hide()

    def add(self, results: Sequence[ActionResult]) -> None:
        """Queued fixes replayed: add them to the notice (above those of earlier replays) and show it."""
        if not results:
            return
        self.results = [*results, *self.results][:KEEP]  # the latest replay first, in its order
        n = len(self.results)
        failed = sum(1 for r in self.results if text_of(r.status) != "succeeded")
        self.setText(f"{n} queued fix{'es' if n != 1 else ''} replayed")
        self.setIcon(dot_icon(STATUS_COLORS["failed"] if failed else STATUS_COLORS.get("succeeded", PENDING_COLOR)))
        self.setToolTip(plain_tooltip("Replayed by themselves when their system came back:\n"
                                      + "\n".join(replay_line(r) for r in self.results[:10])
                                      + ("\n…" if n > 10 else "") + "\nClick to list them (Go > Replayed fixes)."))
        self._fill()
        self.show()

    def lines(self) -> list[str]:
        return [replay_line(r) for r in self.results]

    def dismiss(self) -> None:
        self.results = []
        self.list_menu.hide()
        self.hide()

    def open_list(self) -> QMenu:
        """Pop the list up above the notice (it sits at the window's bottom edge)."""
        self._fill()
        menu = self.list_menu
        size = menu.sizeHint()
        menu.popup(self.mapToGlobal(QPoint(self.width() - size.width(), -size.height())))
        return menu

    def _fill(self) -> None:
        menu = self.list_menu
        menu.clear()
        for result in self.results:
            action = menu.addAction(dot_icon(STATUS_COLORS.get(text_of(result.status), PENDING_COLOR)),
                                    clipped(replay_line(result), 160).replace("&", "&&"))
            action.setToolTip(plain_tooltip(f"{replay_line(result)}\n{result.message}\naction {result.action_id}"))
            action.triggered.connect(
                lambda _=False, e=result.exception_id, a=result.action_id: self.fix_chosen.emit(e, a))
        menu.addSeparator()
        menu.addAction("Open Pending actions", self.pending_requested.emit)
        menu.addAction("Dismiss", self.dismiss)
