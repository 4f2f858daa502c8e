"""An open exception as the customer page shows it: a card with its severity, rule, summary, the
values of every system side by side (the owner's column marked, differing rows emphasised) and
its fix buttons (named as everywhere: views/actions/wording.py).

Everything from external systems is shown as plain text, cut to what a cell can show and isolated
for bidirectional text.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeAlias

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QFont
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QPushButton,
    QSizePolicy,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from services.core.domain import Side, SyncException, System
from views.actions.wording import fix_button_text
from views.exceptions.model import mark_lines
from views.widgets.icons import (
    LATE_COLOR,
    MISSING_COLOR,
    SEVERITY_COLORS,
    severity_icon,
    system_icon,
    unlinked_icon,
)
from views.widgets.sides import NOT_COMPARED, sides_currency
from views.widgets.table_menu import install_table_menu
from views.widgets.text import (
    SYSTEM_TITLES,
    ElidedLabel,
    mnemonic_safe,
    money_value_text,
    plain_label,
    plain_tooltip,
    set_muted,
    shown,
    wrapping_label,
)

FIX_TOOLTIP = "Fixing arrives with actions ([F5])"


def _tint(color: str, alpha: int) -> QColor:
    c = QColor(color)
    c.setAlpha(alpha)
    return c


def format_value(value: object) -> str:
    """A side's value as short plain text (None: "—")."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict):
        if "id" in value:
            rest = ", ".join(format_value(v) for k, v in value.items() if k != "id" and v not in (None, [], ""))
            return f"{value['id']} ({rest})" if rest else str(value["id"])
        return ", ".join(f"{k}: {format_value(v)}" for k, v in value.items())
    if isinstance(value, list | tuple | set):
        if not value:
            return "none"
        return "; ".join(format_value(v) for v in value)
    return str(value)


def side_is_derived(exc: SyncException, side: Side) -> bool:
    """A side with no record of its own whose values are derived from the customer's data (the
    tier billing's plans grant): the customer's record, not "not present"."""
    values = [v for k, v in side.values.items() if k not in ("owner", "candidates")]
    return side.system is System.BILLING and bool(exc.customer_id) and any(v not in (None, [], "") for v in values)


def record_text(side: Side) -> str:
    """The record a side names: its id, and "cancelled" when the record is a cancelled copy (the
    related record that explains an invoice missing in the ERP: ``"42 (cancelled copy)"``)."""
    if side.ref is None:
        return ""
    return f"{side.ref.id} (cancelled copy)" if side.values.get("state") == "cancelled" else side.ref.id


def side_header(exc: SyncException, i: int) -> str:
    side = exc.sides[i]
    title = SYSTEM_TITLES[side.system]
    same = [s for s in exc.sides if s.system is side.system]
    if len(same) > 1 and side.ref is not None:
        title = f"{title} {side.ref.id}"
    if side.values.get("owner") is True:
        title = f"{title} (owner)"
    return title


class SideBySideTable(QTableWidget):
    """Rows = fields, columns = the systems' sides; rows whose values differ are emphasised."""

    def __init__(self, exc: SyncException, parent: QWidget | None = None) -> None:
        fields: list[str] = []
        for side in exc.sides:
            for key in side.values:
                if key != "owner" and key not in fields:
                    fields.append(key)
        super().__init__(len(fields) + 1, len(exc.sides), parent)
        self.fields = fields
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.setWordWrap(False)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        for col, side in enumerate(exc.sides):
            head = QTableWidgetItem(side_header(exc, col))  # QTableWidgetItem text is always plain
            head.setIcon(system_icon(side.system))
            if side.values.get("owner") is True:
                head.setToolTip(f"{SYSTEM_TITLES[side.system]} owns these fields: corrections flow from it")
            self.setHorizontalHeaderItem(col, head)
            derived = side.ref is None and side_is_derived(exc, side)
            ref = QTableWidgetItem(record_text(side) if side.ref is not None else
                                   f"customer {exc.customer_id}" if derived else "not present")
            ref.setToolTip(plain_tooltip(str(side.ref)) if side.ref is not None else
                           f"{SYSTEM_TITLES[side.system]}: these values come from the customer's data (its "
                           "subscriptions), not from one record" if derived else
                           f"{SYSTEM_TITLES[side.system]} holds no record for this")
            if side.ref is None and not derived:
                ref.setForeground(QColor(MISSING_COLOR))
                ref.setIcon(unlinked_icon())
            self.setItem(0, col, ref)
        labels = ["record", *fields]
        self.setVerticalHeaderLabels(labels)
        bold = QFont()
        bold.setBold(True)
        currency = sides_currency(exc.sides)
        for row, key in enumerate(fields, start=1):
            present = [side.values[key] for side in exc.sides if key in side.values]
            differs = key not in NOT_COMPARED and len({format_value(v) for v in present}) > 1
            for col, side in enumerate(exc.sides):
                text = money_value_text(key, side.values[key], currency) if key in side.values else ""
                item = QTableWidgetItem(shown(text, 500))
                item.setToolTip(plain_tooltip(text))
                if differs and key in side.values:
                    item.setFont(bold)
                    item.setBackground(_tint(LATE_COLOR, 40))
                self.setItem(row, col, item)
        hh = self.horizontalHeader()
        hh.setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        vh = self.verticalHeader()
        vh.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        vh.setDefaultSectionSize(self.fontMetrics().height() + 8)
        height = hh.sizeHint().height() + vh.defaultSectionSize() * self.rowCount() + 2 * self.frameWidth() + 2
        self.setFixedHeight(height)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        install_table_menu(self)


#: (action, allowed, why not) per fix of an exception, e.g. ``views.actions.permissions.fix_policy(adapter)``
FixPolicy: TypeAlias = Callable[[SyncException], Sequence[tuple[str, bool, str]]]


class ExceptionCard(QFrame):
    """One open exception: severity, rule, summary, the side-by-side values and fix actions."""

    fix_requested = Signal(str, str)  # exception id, action

    def __init__(self, exc: SyncException, parent: QWidget | None = None, policy: FixPolicy | None = None) -> None:
        super().__init__(parent)
        self.exception = exc
        self.setObjectName("exceptionCard")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setStyleSheet(f"#exceptionCard {{ border-left: 4px solid {SEVERITY_COLORS[exc.severity]}; }}")
        icon = plain_label()
        icon.setPixmap(severity_icon(exc.severity).pixmap(12, 12))
        self.rule_label = plain_label(exc.rule)
        bold = self.rule_label.font()
        bold.setBold(True)
        self.rule_label.setFont(bold)
        meta = ElidedLabel(f"{exc.severity.value} · owner team: {exc.owner.value} · object {exc.object_id} · "
                           f"first seen {exc.first_seen:%Y-%m-%d %H:%M} UTC")
        set_muted(meta)
        self.summary_label = wrapping_label(shown(exc.summary, 4000))
        self.summary_label.setWordWrap(True)
        self.summary_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        #: the last failed fix and the flag for review, when there are (views.exceptions.model.mark_lines)
        self.marks_label = wrapping_label(shown("\n".join(mark_lines(exc)), 4000))
        self.marks_label.setWordWrap(True)
        self.marks_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.marks_label.setVisible(bool(mark_lines(exc)))
        self.table = SideBySideTable(exc)
        self.fix_buttons: list[QPushButton] = []
        actions = QHBoxLayout()
        verdicts = [(str(a), ok, why) for a, ok, why in policy(exc)] if policy is not None else \
            [(a, False, FIX_TOOLTIP) for a in exc.fix_actions]
        for action, ok, why in verdicts:
            button = QPushButton(mnemonic_safe(fix_button_text(action)))
            button.setProperty("action", action)
            button.setAutoDefault(True)  # Enter presses the focused fix button (Space too)
            button.setEnabled(ok)
            button.setToolTip(plain_tooltip(why) if not ok else "Opens a preview: nothing is written until you confirm")
            button.clicked.connect(lambda _checked=False, a=action: self.fix_requested.emit(exc.id, a))
            self.fix_buttons.append(button)
            actions.addWidget(button)
        actions.addStretch(1)

        head = QHBoxLayout()
        head.addWidget(icon)
        head.addWidget(self.rule_label)
        head.addWidget(meta, 1)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(10, 6, 8, 8)
        lay.addLayout(head)
        lay.addWidget(self.summary_label)
        lay.addWidget(self.marks_label)
        lay.addWidget(self.table)
        lay.addLayout(actions)
