"""The exception detail pane: one exception — what disagrees, on which sides (the differing
cells marked), who owns it (the configured owner: the same ownership the action service
enforces), its link candidates, and the fix actions it allows (disabled until a fix policy
says otherwise).

Everything from an external system is shown as plain text.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime

from PySide6.QtCore import QEvent, Qt, Signal
from PySide6.QtGui import QColor, QPalette, QResizeEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QBoxLayout,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QStackedWidget,
    QTableWidget,
    QTableWidgetItem,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from services.core.domain import Severity, Side, SyncException, System
from services.core.ownership import owner_system
from views.actions.wording import fix_button_text
from views.exceptions.model import mark_lines
from views.widgets.focus import tab_chain
from views.widgets.icons import SEVERITY_COLORS, severity_icon, system_icon
from views.widgets.sides import NOT_COMPARED, side_keys, sides_currency
from views.widgets.table_menu import install_table_menu
from views.widgets.tables import EmptyState
from views.widgets.text import (
    SYSTEM_TITLES,
    bold,
    bold_font,
    format_value,
    human_age,
    mnemonic_safe,
    money_value_text,
    muted_brush,
    plain_label,
    plain_tooltip,
    shown,
    utc_text,
)

FIX_DISABLED_TIP = "Fixing arrives with actions ([F5])"

#: what a fix policy says per action of an exception: (action, allowed, why not) — e.g.
#: ``views.actions.permissions.fix_policy(adapter)``; without one the buttons stay disabled
FixPolicy = Callable[[SyncException], Sequence[tuple[str, bool, str]]]

def _wrapping_policy() -> QSizePolicy:
    """For a wrapped label of external text: it never sets the pane's width (a word longer than
    the pane is clipped, the whole text is selectable and in the sides' tooltips)."""
    policy = QSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
    policy.setHeightForWidth(True)
    return policy


def _section_label(text: str) -> QLabel:
    return bold(plain_label(text))


class ExceptionDetail(QWidget):
    """One exception: what disagrees, on which sides, who owns it and what fixes it allows."""

    open_customer = Signal(str)
    fix_requested = Signal(str, str)  # exception id, action ("retry", "correct", ...)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.exception: SyncException | None = None
        self.fix_policy: FixPolicy | None = None
        #: the engine's configured ownership (the one the action service enforces); see set_ownership
        self.ownership: dict[str, System] = {}
        self.stack = QStackedWidget()
        self.empty = EmptyState("Select an exception", "Its sides, owner and fixes are shown here.")
        self.stack.addWidget(self.empty)

        content = QWidget()
        # what and who beside the values on each side; one above the other in a narrow pane
        columns = QBoxLayout(QBoxLayout.Direction.LeftToRight, content)
        self.columns = columns
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
        self.title = bold(plain_label(), 1.25)
        self.title.setWordWrap(True)
        self.title.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.title.setSizePolicy(_wrapping_policy())
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
        self._style_link()
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
        self.exc_id.setSizePolicy(_wrapping_policy())
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
        self.summary.setSizePolicy(_wrapping_policy())
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.summary.setFrameShape(QFrame.Shape.StyledPanel)
        self.summary.setMargin(6)
        self.summary.setBackgroundRole(QPalette.ColorRole.AlternateBase)
        self.summary.setAutoFillBackground(True)
        lay.addWidget(self.summary)
        #: the last failed fix and the flag for review, when there are (views.exceptions.model.mark_lines)
        self.marks = plain_label()
        self.marks.setWordWrap(True)
        self.marks.setSizePolicy(_wrapping_policy())
        self.marks.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.marks.hide()
        lay.addWidget(self.marks)

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
        install_table_menu(self.sides_table)
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
        scroll.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # Tab goes to the link and the fix buttons
        scroll.setWidget(content)
        self.stack.addWidget(scroll)
        self.content = scroll

        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(self.stack)

    def focus_chain(self) -> list[QWidget]:
        """The pane's keyboard stops, in Tab order (the fix buttons follow the customer link)."""
        return [self.customer_button, *self.fix_buttons]

    #: below this width the two columns stack (what and who above, the values below)
    STACK_BELOW = 720

    def _style_link(self) -> None:
        """The customer link in the palette's link colour (set again when the palette changes:
        a style sheet keeps the colour it was given)."""
        link = self.palette().color(QPalette.ColorRole.Link).name()
        self.customer_button.setStyleSheet(
            f"QPushButton#customerLink {{ color: {link}; text-decoration: underline; border: none;"
            " padding: 0px; text-align: left; }")

    def changeEvent(self, event: QEvent) -> None:
        if event.type() == QEvent.Type.PaletteChange:
            self._style_link()
        super().changeEvent(event)

    def resizeEvent(self, event: QResizeEvent) -> None:
        direction = (QBoxLayout.Direction.TopToBottom if event.size().width() < self.STACK_BELOW
                     else QBoxLayout.Direction.LeftToRight)
        if self.columns.direction() != direction:
            self.columns.setDirection(direction)
        super().resizeEvent(event)

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
        self.title.setText(shown(f"{exc.rule} — {exc.object_id}", 300))
        self.severity.setText(exc.severity.value)
        self.owner.setText(exc.owner.value)
        if exc.customer_id:
            self.customer_button.setText(mnemonic_safe(shown(exc.customer_id, 80)))
            self.customer_button.setToolTip(plain_tooltip(f"Open customer {exc.customer_id}"))
            self.customer_button.show()
            self.no_customer.hide()
        else:
            self.customer_button.hide()
            self.no_customer.show()
        self.seen.setText(f"{utc_text(exc.first_seen)} ({human_age(exc.age(now))} ago); "
                          f"last seen {utc_text(exc.last_seen)}")
        self.exc_id.setText(shown(exc.id, 300))
        self.summary.setText(shown(exc.summary, 4000))
        marks = mark_lines(exc)
        self.marks.setText(shown("\n".join(marks), 4000))
        self.marks.setVisible(bool(marks))
        owner = owner_system(exc, self.ownership)
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
        """A side's column title; ``flagged``: a side of the owning system is flagged ``owner``
        (then only that one is marked)."""
        owning = side.values.get("owner") is True if flagged else side.system is owner
        title = SYSTEM_TITLES[side.system] + (" (owner)" if owning else "")
        ref = f"{side.ref.kind} {side.ref.id}" if side.ref else "no record"
        return f"{title}\n{ref}"

    def _fill_sides(self, exc: SyncException, owner: System) -> None:
        table = self.sides_table
        sides = exc.sides
        keys = side_keys(exc)
        flagged = any(s.values.get("owner") is True and s.system is owner for s in sides)
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
        muted = muted_brush(table)
        self.differing: list[str] = []
        currency = sides_currency(sides)
        for row, key in enumerate(keys):
            held = [format_value(s.values[key]) for s in sides if key in s.values]
            differs = key not in NOT_COMPARED and len(held) >= 2 and len(set(held)) > 1
            if differs:
                self.differing.append(key)
            vheader = QTableWidgetItem(f"≠ {key}" if differs else key)
            if differs:
                vheader.setFont(bold_font(table.font()))
                vheader.setToolTip(f"{key}: the sides disagree")
            table.setVerticalHeaderItem(row, vheader)
            for col, side in enumerate(sides):
                if key in side.values:
                    text = money_value_text(key, side.values[key], currency)
                    item = QTableWidgetItem(shown(text, 500))
                    item.setToolTip(plain_tooltip(text))
                    if side.values[key] is None:
                        item.setForeground(muted)
                    if differs:
                        item.setBackground(accent)
                        item.setFont(bold_font(table.font()))
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
                item = QTreeWidgetItem([shown(f"{name} ({ref})" if ref else name, 300), str(cand.get("score", "")),
                                        shown(reason_text, 300)])
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
            button = QPushButton(mnemonic_safe(fix_button_text(action)))
            button.setObjectName(f"fix_{action}")
            button.setAutoDefault(True)  # Enter presses the focused fix button (Space too)
            button.setProperty("action", action)
            ok, why = verdicts.get(action, (False, FIX_DISABLED_TIP))
            button.setEnabled(ok)
            button.setToolTip(plain_tooltip(why) if not ok else "Opens a preview: nothing is written until you confirm")
            button.clicked.connect(lambda _checked=False, a=action: self._fix_clicked(a))
            self.fix_row.insertWidget(len(self.fix_buttons), button)
            button.show()
            self.fix_buttons.append(button)
        self.no_fixes.setVisible(not actions)
        tab_chain([self.customer_button, *self.fix_buttons])  # reached by Tab right after the queue

    def _fix_clicked(self, action: str) -> None:
        if self.exception is not None:
            self.fix_requested.emit(self.exception.id, action)

    def set_ownership(self, ownership: Mapping[str, System]) -> None:
        """The configured ownership (``ConsoleState.ownership``: the engine's ``config.ownership``)
        the owner is shown from; the next :meth:`show_exception` uses it."""
        self.ownership = dict(ownership)

    def set_fix_policy(self, policy: FixPolicy | None) -> None:
        """Enable the fix buttons as ``policy`` allows (call again when the operator changes)."""
        self.fix_policy = policy
        if self.exception is not None:
            self._fill_fixes(self.exception)


def _fit_height(table: QTableWidget) -> None:
    """Size a small table to its rows so the detail pane scrolls as a whole."""
    height = table.horizontalHeader().height() if table.horizontalHeader().isVisible() else 0
    height = max(height, table.horizontalHeader().sizeHint().height())
    for row in range(table.rowCount()):
        height += table.rowHeight(row)
    table.setFixedHeight(height + 2 * table.frameWidth() + 2)
