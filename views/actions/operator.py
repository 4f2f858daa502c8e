"""Who acts, in the toolbar: "alice · finance". The name is the login (never typed); a click
(or Space, Enter, Down when it has the keyboard; or Actions > Switch role, Ctrl+Shift+R) opens a
role switch among the roles the role policy grants that login: a small pop-up whose role list
has the keyboard, Tab reaches "Switch role", Enter switches and Esc closes. The pop-up is shown,
never ``exec()``-ed (no nested event loop).

The widget only shows and asks: ``role_changed(Role)`` is a request, which the console hands to
the action service (``ActionAdapter.switch_role``: checked against the policy and audited); the
widget shows the new role when the service answers (:meth:`OperatorWidget.set_operator`)."""

from __future__ import annotations

from PySide6.QtCore import QPoint, Qt, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QFrame,
    QPushButton,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from services.actions.model import Operator, Role
from services.core.identity import Identity
from views.actions.wording import AUDITOR_TIP, operator_text
from views.widgets.icons import PENDING_COLOR, dot_icon
from views.widgets.text import plain_label, plain_tooltip, set_muted, text_of

ROLE_COLORS: dict[str, str] = {"finance": "#635bff", "support": "#1f9d8a", "auditor": "#8a8f98"}
ROLE_HINTS: dict[str, str] = {
    Role.FINANCE.value: "fixes finance exceptions (invoices, customers, subscriptions)",
    Role.SUPPORT.value: "fixes entitlement exceptions (tiers, SLAs)",
    Role.AUDITOR.value: AUDITOR_TIP,
}


class RolePopup(QFrame):
    """The role switch's pop-up: Enter (in the role list too) switches, Esc closes."""

    def __init__(self, owner: OperatorWidget) -> None:
        super().__init__(owner, Qt.WindowType.Popup)
        self.owner = owner
        self.setObjectName("operatorPopup")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)  # Esc closes it when the role list is disabled

    def keyPressEvent(self, event: QKeyEvent) -> None:
        key = event.key()
        if key == Qt.Key.Key_Escape:
            self.close()
            event.accept()
            return
        if key in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            if self.owner.apply_button.isEnabled():
                self.owner.apply()
            event.accept()
            return
        super().keyPressEvent(event)


class OperatorWidget(QToolButton):
    """"alice · finance" in the toolbar; click to switch the login's role (only the roles its
    :class:`~services.core.identity.Identity` holds are offered; the login cannot be changed).

    Emits ``role_changed(Role)`` when the operator asks for another role; :meth:`set_operator`
    only shows (no signal)."""

    role_changed = Signal(object)  # Role

    def __init__(self, operator: Operator, parent: QWidget | None = None, identity: Identity | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("operatorWidget")
        self.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.operator = operator
        self.identity = identity

        self.form = QFrame()
        self.form.setObjectName("operatorForm")
        self.form.setMinimumWidth(300)
        form = QFormLayout(self.form)
        form.setContentsMargins(10, 8, 10, 8)
        self.login_label = plain_label("")
        self.login_label.setObjectName("operatorLogin")
        self.login_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.role_combo = QComboBox()
        self.role_combo.setObjectName("operatorRole")
        self.role_hint = set_muted(plain_label(""))
        self.role_hint.setWordWrap(True)
        self.policy_note = set_muted(plain_label(""))
        self.policy_note.setObjectName("operatorPolicy")
        self.policy_note.setWordWrap(True)
        self.apply_button = QPushButton("Switch role")
        self.apply_button.setObjectName("operatorApply")
        self.apply_button.setDefault(True)
        form.addRow(plain_label("Logged in as"), self.login_label)
        form.addRow(plain_label("Role"), self.role_combo)
        form.addRow(self.role_hint)
        form.addRow(self.policy_note)
        form.addRow(self.apply_button)
        self.role_combo.currentIndexChanged.connect(self._role_hint)
        self.apply_button.clicked.connect(self.apply)

        self.popup = RolePopup(self)
        popup_lay = QVBoxLayout(self.popup)
        popup_lay.setContentsMargins(0, 0, 0, 0)
        popup_lay.addWidget(self.form)
        self.clicked.connect(self.open_switch)
        self._fill_roles()
        self.set_operator(operator)

    # -- what the widget shows ------------------------------------------------------------------
    def offered_roles(self) -> list[Role]:
        """The roles the switch offers: the identity's (without one, only the current role)."""
        if self.identity is None:
            return [Role(text_of(self.operator.role))]
        return list(self.identity.roles)

    def set_identity(self, identity: Identity) -> None:
        """The login and the roles the policy grants it (the console sets it at start-up)."""
        self.identity = identity
        self._fill_roles()
        self.set_operator(self.operator)

    def set_operator(self, operator: Operator) -> None:
        self.operator = operator
        role = text_of(operator.role)
        self.setText(operator_text(operator))
        self.setIcon(dot_icon(ROLE_COLORS.get(role, PENDING_COLOR)))
        tip = f"Logged in as {operator.name}, acting as {role}; recorded with every audit entry."
        if len(self.offered_roles()) > 1:
            tip += " Click to switch role."
        if self.identity is not None and not self.identity.can_act:
            tip += f"\n{self.identity.read_only_reason()}."
        self.setToolTip(plain_tooltip(tip + (f"\n{AUDITOR_TIP}" if role == Role.AUDITOR.value else "")))
        self._fill_form()

    def _fill_roles(self) -> None:
        self.role_combo.blockSignals(True)
        self.role_combo.clear()
        for role in self.offered_roles():
            self.role_combo.addItem(dot_icon(ROLE_COLORS.get(role.value, PENDING_COLOR)), role.value, role.value)
        self.role_combo.blockSignals(False)
        self.role_combo.setEnabled(self.role_combo.count() > 1)
        self.policy_note.setText(self._policy_text())

    def _policy_text(self) -> str:
        identity = self.identity
        if identity is None:
            return ""
        if not identity.can_act:
            return identity.read_only_reason()
        if identity.policy is None:
            return "No [roles] table in config.toml: this login holds every role."
        granted = ", ".join(r.value for r in identity.roles)
        return f"Granted by {identity.where()}: {granted}."

    def _fill_form(self) -> None:
        self.login_label.setText(self.operator.name)
        self.role_combo.setCurrentIndex(max(0, self.role_combo.findData(text_of(self.operator.role))))
        self._role_hint()

    def _role_hint(self, *_: object) -> None:
        role = self.role_combo.currentData()
        self.role_hint.setText(ROLE_HINTS.get(role, ""))
        self.apply_button.setEnabled(role is not None and role != text_of(self.operator.role))

    # -- asking for another role ----------------------------------------------------------------
    def open_switch(self) -> RolePopup:
        """Show the role switch below the button, the role list (else the pop-up) holding the keyboard."""
        self._fill_form()
        popup = self.popup
        popup.adjustSize()
        below = self.mapToGlobal(QPoint(0, self.height()))
        screen = self.screen().availableGeometry() if self.screen() is not None else None
        if screen is not None:  # kept on the screen (the button sits at the toolbar's right end)
            below.setX(max(screen.left(), min(below.x(), screen.right() - popup.width())))
            if below.y() + popup.height() > screen.bottom():
                below.setY(max(screen.top(), self.mapToGlobal(QPoint(0, 0)).y() - popup.height()))
        popup.move(below)
        popup.show()
        (self.role_combo if self.role_combo.isEnabled() else popup).setFocus(Qt.FocusReason.PopupFocusReason)
        return popup

    def keyPressEvent(self, event: QKeyEvent) -> None:
        # Enter, Return and Down open the switch too (Space clicks, as on any button)
        if event.key() in (Qt.Key.Key_Down, Qt.Key.Key_Return, Qt.Key.Key_Enter):
            self.open_switch()
            event.accept()
            return
        super().keyPressEvent(event)

    def apply(self) -> None:
        """Ask for the chosen role (``role_changed``); shown once the service switched."""
        data = self.role_combo.currentData()
        self.popup.hide()
        if data is None or data == text_of(self.operator.role):
            return
        role = Role(data)
        if role in self.offered_roles():
            self.role_changed.emit(role)
