"""The operator in the toolbar: "alice · finance"; click to switch the operator's name and role."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QFrame,
    QLineEdit,
    QMenu,
    QPushButton,
    QToolButton,
    QWidget,
    QWidgetAction,
)

from services.actions.model import Operator, Role
from views.actions.wording import AUDITOR_TIP, operator_text
from views.widgets.icons import PENDING_COLOR, dot_icon
from views.widgets.text import plain_label, plain_tooltip, set_muted, text_of

ROLE_COLORS: dict[str, str] = {"finance": "#635bff", "support": "#1f9d8a", "auditor": "#8a8f98"}


class OperatorWidget(QToolButton):
    """"alice · finance" in the toolbar; click to switch the operator's name and role.

    Emits ``operator_changed(Operator)``; :meth:`set_operator` only shows (no signal)."""

    operator_changed = Signal(object)

    def __init__(self, operator: Operator, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("operatorWidget")
        self.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.operator = operator

        self.form = QFrame()
        self.form.setObjectName("operatorForm")
        self.form.setMinimumWidth(300)
        form = QFormLayout(self.form)
        form.setContentsMargins(10, 8, 10, 8)
        self.name_edit = QLineEdit()
        self.name_edit.setObjectName("operatorName")
        self.name_edit.setPlaceholderText("your name")
        self.name_edit.setMaxLength(80)
        self.role_combo = QComboBox()
        self.role_combo.setObjectName("operatorRole")
        for role in Role:
            self.role_combo.addItem(dot_icon(ROLE_COLORS.get(role.value, PENDING_COLOR)), role.value, role.value)
        self.role_hint = set_muted(plain_label(""))
        self.role_hint.setWordWrap(True)
        self.apply_button = QPushButton("Switch")
        self.apply_button.setObjectName("operatorApply")
        self.apply_button.setDefault(True)
        form.addRow(plain_label("Operator"), self.name_edit)
        form.addRow(plain_label("Role"), self.role_combo)
        form.addRow(self.role_hint)
        form.addRow(self.apply_button)
        self.role_combo.currentIndexChanged.connect(self._role_hint)
        self.name_edit.textChanged.connect(self._validate)
        self.name_edit.returnPressed.connect(self.apply)
        self.apply_button.clicked.connect(self.apply)

        self._menu = QMenu(self)
        action = QWidgetAction(self._menu)
        action.setDefaultWidget(self.form)
        self._menu.addAction(action)
        self._menu.aboutToShow.connect(self._fill_form)
        self.setMenu(self._menu)
        self.set_operator(operator)

    def set_operator(self, operator: Operator) -> None:
        self.operator = operator
        role = text_of(operator.role)
        self.setText(operator_text(operator))
        self.setIcon(dot_icon(ROLE_COLORS.get(role, PENDING_COLOR)))
        self.setToolTip(plain_tooltip(f"Acting as {operator.name} ({role}). Click to switch operator or role."
                                      + (f"\n{AUDITOR_TIP}" if role == Role.AUDITOR.value else "")))
        self._fill_form()

    def _fill_form(self) -> None:
        self.name_edit.setText(self.operator.name)
        self.role_combo.setCurrentIndex(max(0, self.role_combo.findData(text_of(self.operator.role))))
        self._role_hint()

    def _role_hint(self, *_: object) -> None:
        role = self.role_combo.currentData()
        self.role_hint.setText({
            Role.FINANCE.value: "fixes finance exceptions (invoices, customers, subscriptions)",
            Role.SUPPORT.value: "fixes entitlement exceptions (tiers, SLAs)",
            Role.AUDITOR.value: AUDITOR_TIP,
        }.get(role, ""))

    def _validate(self) -> None:
        self.apply_button.setEnabled(bool(self.name_edit.text().strip()))

    def apply(self) -> None:
        name = self.name_edit.text().strip()
        if not name:
            return
        new = Operator(name=name, role=Role(self.role_combo.currentData()))
        self._menu.hide()
        if new != self.operator:
            self.set_operator(new)
            self.operator_changed.emit(new)
