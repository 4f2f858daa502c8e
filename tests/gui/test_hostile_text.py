"""External text is data, wherever the console shows it: markup is shown as typed (labels and
tooltips plain), right-to-left text and directional controls are isolated (a name cannot reorder
the id beside it), a 1 MB name is cut to what a cell or label can show and never widens the
window or pushes the fix buttons off it; and the console's own texts use only glyphs every
default font has (no ✓ / ✗ / ⚠ boxes: those are drawn)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from PySide6 import QtGui
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QLabel, QWidget
from pytestqt.qtbot import QtBot

from services.actions.model import ActionKind
from services.core.domain import Side, System
from services.core.text_safety import FSI, PDI
from tests.gui.fake_actions import OWNERSHIP, FakeActionService, amount_mismatch, missing_in_erp
from tests.gui.test_keyboard import console_state, make_window
from views.actions.fix_dialog import FixDialog
from views.customers import COL_NAME
from views.exceptions.model import Column
from views.widgets.text import DISPLAY_LIMIT, TOOLTIP_LIMIT

pytestmark = pytest.mark.gui

ROOT = Path(__file__).resolve().parents[2]
MEGA = "Ω" * 1_000_000  # a 1 MB name, one unbreakable word
RTL = "\u202eexe.txt"  # a right-to-left override: "txt.exe" read backwards
ARABIC = "شركة الأمل"
HTML = "<b>x</b> & <i>y</i> <img src=q>"
#: the characters the console's own texts may use: in every default font (WGL4)
ALLOWED = set("·×—–“”‘’…←→↑↓↔−≠≤≥•é") | {"\u00a0"}  # and the no-break space: a space, no glyph to lack


def hostile_service() -> FakeActionService:
    big = amount_mismatch(1, summary=f"{MEGA}: total differs")
    rtl = missing_in_erp(10)
    rtl.summary = f"{RTL} never reached the ERP"
    html = missing_in_erp(11)
    html.summary = HTML
    return FakeActionService([big, rtl, html])


def inside(window: QWidget, widget: QWidget) -> bool:
    top_left = widget.mapTo(window, widget.rect().topLeft())
    bottom_right = widget.mapTo(window, widget.rect().bottomRight())
    return window.rect().contains(top_left) and window.rect().contains(bottom_right)


async def test_hostile_names_in_the_tables_are_data(qtbot: QtBot) -> None:
    service = hostile_service()
    window, adapter = make_window(qtbot, service)
    try:
        window.set_state(console_state(service, names={"cus_1": MEGA, "cus_10": RTL + " Ltd", "cus_11": HTML}))
        customers = window.customers_page.model
        shown = {customers.row_at(r).customer_id: customers.index(r, COL_NAME).data()
                 for r in range(customers.rowCount())}
        assert len(shown["cus_1"]) <= DISPLAY_LIMIT + 1 and shown["cus_1"].endswith("…")  # cut, never 1 MB
        assert shown["cus_10"] == f"{FSI}{RTL} Ltd{PDI}"  # isolated: cannot reorder what follows it
        assert shown["cus_11"] == HTML  # markup shown as typed
        tip = customers.index(0, COL_NAME).data(Qt.ItemDataRole.ToolTipRole)
        assert len(tip) <= TOOLTIP_LIMIT + 20
        queue = window.exceptions_page.model
        cells = {queue.exception_at(r).id: (queue.index(r, Column.CUSTOMER).data(),
                                            queue.index(r, Column.SUMMARY).data()) for r in range(queue.rowCount())}
        customer, summary = cells["invoice.missing_in_erp:in_10"]
        assert customer == f"{FSI}{RTL} Ltd{PDI} · cus_10"  # the id keeps its place after a right-to-left name
        assert summary.startswith(FSI) and summary.endswith(PDI)
        customer, summary = cells["invoice.amount_mismatch:in_1"]
        assert len(customer) < 300 and len(summary) < 600
        tip = queue.index(0, Column.SUMMARY).data(Qt.ItemDataRole.ToolTipRole)
        assert not QtGui.Qt.mightBeRichText(tip) or tip.startswith("<qt>")
    finally:
        await adapter.aclose()


async def test_a_1mb_name_never_widens_the_window_nor_hides_the_fix_buttons(qtbot: QtBot) -> None:
    service = hostile_service()
    window, adapter = make_window(qtbot, service)
    try:
        window.set_state(console_state(service, names={"cus_1": MEGA}))
        window.resize(1024, 640)
        # the queue, the 1 MB summary selected: the window may still be 1024 wide, the buttons in it
        window.go_to_page(window.PAGES.index("Exceptions"))
        page = window.exceptions_page
        assert page.select_exception("invoice.amount_mismatch:in_1")
        qtbot.waitUntil(lambda: page.detail.is_showing_exception())
        assert window.minimumSizeHint().width() <= 1024
        assert window.width() == 1024
        detail = page.detail
        viewport = detail.content.viewport()
        for button in detail.fix_buttons:
            right = button.mapTo(viewport, button.rect().bottomRight()).x()
            assert right <= viewport.width(), (button.text(), right, viewport.width())
        assert len(detail.summary.text()) <= 4001 and len(detail.title.text()) <= 303
        # the customer: its name elided on one line, whole in the label (copyable) and its tooltip
        window.open_customer("cus_1")
        qtbot.waitUntil(lambda: window.customer_page.page_state.value == "loaded")
        name = window.customer_page.name_label
        assert name.text() == MEGA  # the whole name is there to copy (Ctrl+C, right-click)
        assert name.elided().endswith("…") and len(name.elided()) < 200
        assert len(name.toolTip()) <= TOOLTIP_LIMIT + 20
        assert window.minimumSizeHint().width() <= 1024 and window.width() == 1024
        cards = window.customer_page.exceptions_scroll.viewport()
        for card in window.customer_page.cards:
            for button in card.fix_buttons:  # never pushed past the right edge (the list scrolls down)
                assert button.mapTo(cards, button.rect().bottomRight()).x() <= cards.width(), button.text()
        name.setFocus()
        name.copy()
        assert QApplication.clipboard().text() == MEGA
        # the fix dialog: the reason and Confirm in sight
        assert window.launcher is not None
        dialog = window.launcher.open_fix(service.exceptions["invoice.amount_mismatch:in_1"], ActionKind.CORRECT)
        assert isinstance(dialog, FixDialog)
        qtbot.waitExposed(dialog)
        assert dialog.minimumSizeHint().width() <= 1024
        assert inside(dialog, dialog.confirm_button) and inside(dialog, dialog.reason_edit)
        dialog.close()
    finally:
        await adapter.aclose()


def test_labels_and_tooltips_show_markup_as_typed(qtbot: QtBot) -> None:
    exc = amount_mismatch(1, summary=HTML)
    exc.sides.append(Side(System.SUPPORT, None, {"name": HTML}))
    dialog = FixDialog(exc, ActionKind.CORRECT, FakeActionService([exc]).operator, ownership=OWNERSHIP)
    qtbot.addWidget(dialog)
    for label in dialog.findChildren(QLabel):
        assert label.textFormat() == Qt.TextFormat.PlainText, label.objectName()
    assert dialog.summary_label.text() == HTML
    for widget in dialog.findChildren(QWidget):
        tip = widget.toolTip()
        if HTML in tip or "&lt;b&gt;" in tip:
            assert tip.startswith("<qt>") and "<b>x</b>" not in tip  # escaped: the characters, not bold


def test_the_consoles_own_texts_use_only_glyphs_every_font_has() -> None:
    """Every string the views show (docstrings aside) uses only characters of the common default
    fonts: no empty boxes where a font lacks ✓, ✗, ⚠ or ⧗ (the views draw those marks)."""
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / "views").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                      if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
                      and node.body and isinstance(node.body[0], ast.Expr)
                      and isinstance(node.body[0].value, ast.Constant)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
                odd = {ch for ch in node.value if ord(ch) > 127 and ch not in ALLOWED}
                if odd:
                    found.setdefault(str(path.relative_to(ROOT)), set()).update(odd)
    assert found == {}, found
