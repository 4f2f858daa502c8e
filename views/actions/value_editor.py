"""The fix dialog's value editors: what an action writes, per kind.

- CORRECT: the owner's values prefilled (for master data, which copy to write);
- LINK: the candidates to map the record to;
- ACCEPT: the expiry date;
- RETRY of a missing invoice: the invoice date, optionally.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any

from PySide6.QtCore import QDate, Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDateEdit,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLineEdit,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from services.actions.model import ActionKind
from services.actions.roles import CONTENT_RULES
from services.core.domain import SyncException, System
from views.actions.wording import ACCEPT_DEFAULT_DAYS
from views.widgets.icons import system_icon
from views.widgets.sides import HIDDEN_KEYS, candidate_key, candidates_of, differing_keys, owner_side
from views.widgets.tables import WholeRows
from views.widgets.text import SYSTEM_TITLES, format_value, plain_label, plain_tooltip, set_muted, shown

MASTER_FIELDS = ("name", "tax_id", "country")
#: candidates shown whole before the list scrolls; the widest the name column starts at (px)
CANDIDATE_ROWS = 6
CANDIDATE_COLUMN_MAX = 360


class ValueEditor(QGroupBox):
    """The editors the action needs (none for most kinds: then it stays hidden).

    ``edited`` while typing (the dialog waits for a pause), ``edited_now`` on a choice (a
    candidate, a date, a target)."""

    edited = Signal()
    edited_now = Signal()

    def __init__(self, exc: SyncException, kind: ActionKind, today: date, ownership: Mapping[str, System],
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.exception = exc
        self.kind = kind
        self.ownership = ownership
        self._today = today
        self.setTitle(self._value_title())
        self.value_edits: dict[str, QLineEdit] = {}
        self.candidate_list: QTreeWidget | None = None
        self.expiry_edit: QDateEdit | None = None
        self.target_combo: QComboBox | None = None
        self.date_check: QCheckBox | None = None
        self.date_edit: QDateEdit | None = None
        self._build_value_editor()
        self.setVisible(self.has_value_editor())

    def _value_title(self) -> str:
        return {ActionKind.CORRECT: "Values to write", ActionKind.LINK: "Link to",
                ActionKind.ACCEPT: "Accept until", ActionKind.RETRY: "Invoice date"}.get(self.kind, "Value")

    def has_value_editor(self) -> bool:
        return self.kind in (ActionKind.CORRECT, ActionKind.LINK, ActionKind.ACCEPT) or (
            self.kind is ActionKind.RETRY and self.exception.rule == "invoice.missing_in_erp")

    def _edited(self, *_: object) -> None:
        self.edited.emit()

    def _edited_now(self, *_: object) -> None:
        self.edited_now.emit()

    def _date_edit(self, days: int) -> QDateEdit:
        edit = QDateEdit()
        edit.setCalendarPopup(True)
        edit.setDisplayFormat("yyyy-MM-dd")
        today = QDate(self._today.year, self._today.month, self._today.day)
        edit.setDate(today.addDays(days))
        return edit

    # -- building, per kind ----------------------------------------------------------------
    def _build_value_editor(self) -> None:
        lay = QVBoxLayout(self)
        if self.kind is ActionKind.CORRECT:
            self._build_correct_editor(lay)
        elif self.kind is ActionKind.LINK:
            self._build_link_editor(lay)
        elif self.kind is ActionKind.ACCEPT:
            self._build_expiry_editor(lay)
        elif self.has_value_editor():  # RETRY of a missing invoice: the date may be chosen
            self._build_invoice_date_editor(lay)

    def _build_link_editor(self, lay: QVBoxLayout) -> None:
        cands = candidates_of(self.exception)
        tree = QTreeWidget()
        tree.setObjectName("candidates")
        tree.setRootIsDecorated(False)
        tree.setHeaderLabels(["Candidate", "Score", "Why it matches"])
        tree.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        for system, cand in cands:
            name, ref = str(cand.get("name") or ""), candidate_key(cand)
            reasons = cand.get("reasons") or []
            why = ", ".join(str(r) for r in reasons) if isinstance(reasons, list | tuple) else str(reasons)
            item = QTreeWidgetItem([shown(f"{name} ({ref})" if ref else name, 300), str(cand.get("score", "")),
                                    shown(why, 300)])
            item.setData(0, Qt.ItemDataRole.UserRole, ref)
            item.setIcon(0, system_icon(system))
            item.setToolTip(0, plain_tooltip(f"{name}\n{ref}"))
            item.setToolTip(2, plain_tooltip(why))
            tree.addTopLevelItem(item)
        for col in (0, 1):
            tree.resizeColumnToContents(col)
        # the reasons take the room that is left (elided, whole in the tooltip): no sideways scroll
        # in the common case, and a long name does not push them out of sight
        tree.setColumnWidth(0, min(tree.columnWidth(0), CANDIDATE_COLUMN_MAX))
        tree.header().setStretchLastSection(True)
        # as tall as its rows (at most CANDIDATE_ROWS), measured as drawn, the scroll bar included
        self.candidate_fit = WholeRows(tree, CANDIDATE_ROWS)
        tree.itemSelectionChanged.connect(self._edited_now)
        self.candidate_list = tree
        if cands:
            lay.addWidget(tree)
        else:
            lay.addWidget(set_muted(plain_label("No candidate matches its tax id, email domain or name: "
                                                "create the record instead.")))

    def _build_expiry_editor(self, lay: QVBoxLayout) -> None:
        self.expiry_edit = self._date_edit(ACCEPT_DEFAULT_DAYS)
        self.expiry_edit.setObjectName("expiry")
        today = QDate(self._today.year, self._today.month, self._today.day)
        self.expiry_edit.setMinimumDate(today.addDays(1))
        self.expiry_edit.dateChanged.connect(self._edited_now)
        row = QHBoxLayout()
        row.addWidget(plain_label("Expires on"))
        row.addWidget(self.expiry_edit)
        row.addWidget(set_muted(plain_label("(UTC; the exception reopens then, or earlier if the data changes)")))
        row.addStretch(1)
        lay.addLayout(row)

    def _build_invoice_date_editor(self, lay: QVBoxLayout) -> None:
        self.date_check = QCheckBox("Choose the invoice date")
        self.date_check.setObjectName("chooseDate")
        self.date_edit = self._date_edit(0)
        self.date_edit.setObjectName("invoiceDate")
        self.date_edit.setEnabled(False)
        self.date_check.toggled.connect(self.date_edit.setEnabled)
        self.date_check.toggled.connect(self._edited_now)
        self.date_edit.dateChanged.connect(self._edited_now)
        row = QHBoxLayout()
        row.addWidget(self.date_check)
        row.addWidget(self.date_edit)
        row.addWidget(set_muted(plain_label("(otherwise billing's finalization date, or today when the ERP's "
                                            "invoice sequence is already later)")))
        row.addStretch(1)
        lay.addLayout(row)

    def _build_correct_editor(self, lay: QVBoxLayout) -> None:
        """CORRECT: the owner's values prefilled; for master data, which copy to write."""
        exc = self.exception
        source = owner_side(exc, self.ownership)
        if exc.rule == "customer.master_drift":
            # the service corrects master data only as copies of the ERP's party (it never writes
            # the ERP from here): prefilled from the ERP, whatever the configured owner
            source = next((s for s in exc.sides if s.system is System.ERP), source)
        owner_values = source.values if source is not None else {}
        if exc.rule in CONTENT_RULES or exc.rule == "credit_note.amount_mismatch":
            keys = ["currency"]
            if "currency" not in owner_values and str(owner_values.get("total", "")).rpartition(" ")[2].isalpha():
                # a side without its own currency key names it in its total ("7,690.04 EUR")
                owner_values = {**owner_values, "currency": str(owner_values["total"]).rpartition(" ")[2]}
            note = ("The draft ERP invoice's lines are replaced by billing's lines, each with its rate's ERP tax "
                    "(billing owns the invoice's content); the currency is prefilled from billing.")
            if exc.rule == "credit_note.amount_mismatch":
                note = ("The draft ERP credit note's lines are replaced by billing's, each crediting a line of the "
                        "ERP invoice with its rate's ERP tax; a credit note stays in its invoice's currency.")
        elif exc.rule == "customer.master_drift":
            keys = [k for k in MASTER_FIELDS if k in owner_values] or list(MASTER_FIELDS)
            note = ("Writes these values to the copy you choose; the ERP (the owner) is never written from "
                    "here. Prefilled from the ERP.")
            copies = [s.system for s in exc.sides if s is not source and s.system is not System.ERP]
            self.target_combo = QComboBox()
            self.target_combo.setObjectName("target")
            for system in copies or [System.BILLING]:
                self.target_combo.addItem(system_icon(system), SYSTEM_TITLES[system], system.value)
            self.target_combo.currentIndexChanged.connect(self._target_changed)
        else:
            keys = differing_keys(exc) or [k for k in owner_values if k not in HIDDEN_KEYS]
            note = f"Prefilled from {SYSTEM_TITLES[source.system]} (the owner)." if source is not None else ""
        form = QFormLayout()
        if self.target_combo is not None:
            form.addRow(plain_label("Write to"), self.target_combo)
        for key in keys:
            edit = QLineEdit(format_value(owner_values[key]) if key in owner_values else "")
            edit.setObjectName(f"value_{key}")
            copies_text = [f"{SYSTEM_TITLES[s.system]} holds {format_value(s.values[key])}"
                           for s in exc.sides if s is not source and key in s.values]
            edit.setToolTip(plain_tooltip("; ".join(copies_text) or key))
            edit.textEdited.connect(self._edited)
            self.value_edits[key] = edit
            row = QHBoxLayout()
            row.addWidget(edit, 1)
            if copies_text:
                row.addWidget(set_muted(plain_label("; ".join(copies_text))))
            form.addRow(plain_label(key), row)
        if note:
            hint = set_muted(plain_label(note))
            hint.setWordWrap(True)
            lay.addWidget(hint)
        lay.addLayout(form)
        self._target_changed()

    def _target_changed(self, *changed: object) -> None:
        if self.target_combo is None:
            return
        support = self.target_combo.currentData() == System.SUPPORT.value
        for key, edit in self.value_edits.items():
            edit.setEnabled(not support or key == "name")  # the organization holds only the name
            edit.setToolTip(plain_tooltip("the support organization holds only the name")
                            if support and key != "name" else edit.toolTip())
        if changed:
            self.edited_now.emit()

    def focus_chain(self) -> list[QWidget]:
        """The editors in Tab order (none when the action takes no value)."""
        widgets: list[QWidget | None] = [self.target_combo, *self.value_edits.values(), self.candidate_list,
                                         self.expiry_edit, self.date_check, self.date_edit]
        return [w for w in widgets if w is not None]

    # -- what the editors hold ---------------------------------------------------------------
    def value(self) -> dict[str, Any] | None:
        """The ActionRequest value the editors hold (``None`` when the action takes none)."""
        value: dict[str, Any] | None = None
        if self.kind is ActionKind.CORRECT:
            value = {key: edit.text().strip() for key, edit in self.value_edits.items() if edit.isEnabled()}
            if self.target_combo is not None:
                value = {"target": self.target_combo.currentData(), **value}
        elif self.kind is ActionKind.LINK:
            items = self.candidate_list.selectedItems() if self.candidate_list is not None else []
            value = {"candidate": str(items[0].data(0, Qt.ItemDataRole.UserRole))} if items else None
        elif self.kind is ActionKind.ACCEPT and self.expiry_edit is not None:
            d = self.expiry_edit.date()
            value = {"expires_at": datetime(d.year(), d.month(), d.day(), tzinfo=UTC).isoformat()}
        elif self.date_check is not None and self.date_edit is not None and self.date_check.isChecked():
            value = {"invoice_date": self.date_edit.date().toString("yyyy-MM-dd")}
        return value

    def values_filled(self) -> bool:
        """Every enabled value editor holds some text (CORRECT)."""
        return all(e.text().strip() for e in self.value_edits.values() if e.isEnabled())

    def set_editable(self, editable: bool) -> None:
        for edit in self.value_edits.values():
            edit.setReadOnly(not editable)
        if self.candidate_list is not None:
            self.candidate_list.setEnabled(editable)
        if self.expiry_edit is not None:
            self.expiry_edit.setEnabled(editable)
        if self.target_combo is not None:
            self.target_combo.setEnabled(editable)
        if self.date_check is not None:
            self.date_check.setEnabled(editable)
