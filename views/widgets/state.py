"""The state panel: what a page shows instead of its table while loading, when its data could
not be loaded (why, with Retry and a way to the Systems page), or when there is nothing to list.

One widget for every page (customers, exceptions, pending actions, audit log, systems, the
customer view), so each says its state the same way (``views.coverage.PageState``).
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QBoxLayout, QHBoxLayout, QProgressBar, QPushButton, QWidget

from views.coverage import PageState, View
from views.widgets.tables import EmptyState


class StatePanel(EmptyState):
    """A centred title and explanation; a busy bar while loading; Retry and "Systems" buttons
    when the data could not be loaded (``retry_requested`` / ``systems_requested``)."""

    retry_requested = Signal()
    systems_requested = Signal()

    def __init__(self, title: str = "", text: str = "", parent: QWidget | None = None, *,
                 retry_text: str = "Retry (F5)", systems_link: bool = True) -> None:
        super().__init__(title, text, parent)
        self.state = PageState.LOADING
        self.busy = QProgressBar()
        self.busy.setRange(0, 0)
        self.busy.setTextVisible(False)
        self.busy.setMaximumWidth(220)
        self.busy.setMaximumHeight(8)
        self.retry_button = QPushButton(retry_text)
        self.retry_button.setObjectName("retry")
        self.retry_button.setToolTip("Try to read the data again")
        self.retry_button.clicked.connect(self.retry_requested)
        self.retry_button.setAutoDefault(True)  # Enter presses the focused button
        self.systems_button = QPushButton("Show the Systems page (Ctrl+6)")
        self.systems_button.setObjectName("showSystems")
        self.systems_button.setToolTip("Each system's address, health and last error")
        self.systems_button.clicked.connect(self.systems_requested)
        self.systems_button.setAutoDefault(True)
        self._systems_link = systems_link
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(self.retry_button)
        row.addWidget(self.systems_button)
        row.addStretch(1)
        busy_row = QHBoxLayout()
        busy_row.addStretch(1)
        busy_row.addWidget(self.busy)
        busy_row.addStretch(1)
        box = self.layout()
        assert isinstance(box, QBoxLayout)
        # after the title and the text (EmptyState's layout: stretch, title, text, stretch)
        box.insertLayout(3, busy_row)
        box.insertLayout(4, row)
        self.text_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.show_view(View(PageState.LOADING, title, text))

    def show_view(self, view: View) -> None:
        """Show ``view``'s state, title and text (the buttons only when it offers Retry)."""
        self.state = view.state
        self.set_message(view.title, view.text)
        self.busy.setVisible(view.state is PageState.LOADING)
        self.retry_button.setVisible(view.retry)
        self.systems_button.setVisible(view.retry and self._systems_link)

    def show_state(self, state: PageState, title: str, text: str = "", retry: bool = False) -> None:
        self.show_view(View(state, title, text, retry))
