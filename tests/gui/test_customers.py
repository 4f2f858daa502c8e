"""Customers list and Customer page, driven as an operator would (pytest-qt, offscreen)."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import pytest
from PySide6.QtCore import QModelIndex, QPoint, Qt
from PySide6.QtGui import QTextDocument
from PySide6.QtWidgets import QLabel
from pytestqt.qtbot import QtBot

from services.core.domain import Severity, Side, Tier
from services.core.overview import CustomerRow, RowFilter, build_customer_rows
from services.core.reconcile import reconcile
from tests.worlds import NOW, T0, B, E, S, World, ref
from views.customer_view import CustomerPage, TimelineModel
from views.customers import COL_ERP, COL_NAME, COL_SUPPORT, CustomersModel, CustomersPage
from views.exception_card import FIX_TOOLTIP

pytestmark = pytest.mark.gui

HOSTILE = "<b>x</b>"
HOSTILE_IMG = "<img src=x>"


def demo_world() -> World:
    """Acme (consistent but one invoice missing in the ERP, one amount mismatch), a hostile name,
    a customer without ERP party, a customer without support organization, and a few more."""
    w = World()
    w.customer("cus_acme", "Acme GmbH")
    w.invoice("cus_acme", "in_0001", finalized=T0 + timedelta(days=1))
    w.invoice("cus_acme", "in_0002", finalized=T0 + timedelta(days=8), erp_after=timedelta(hours=3))
    w.invoice("cus_acme", "in_0003", finalized=T0 + timedelta(days=15), erp_after=None)
    w.invoice("cus_acme", "in_0004", finalized=T0 + timedelta(days=20), total="500.00", erp_total="450.00")
    w.ticket("cus_acme", "881", "Invoice PDF is empty", T0 + timedelta(days=16))
    w.exception("invoice.missing_in_erp", "cus_acme", "in_0003", [
        Side(B, ref(B, "invoice", "in_0003"), {"status": "open", "total": "1234.00", "currency": "EUR",
                                              "number": "ACME-0003", "owner": True}),
        Side(E, None, {"invoice": None}),
    ], severity=Severity.CRITICAL, summary="ACME-0003 (1,234.00 EUR) finalized has not reached the ERP")
    w.exception("invoice.amount_mismatch", "cus_acme", "in_0004", [
        Side(B, ref(B, "invoice", "in_0004"), {"status": "open", "total": "500.00", "currency": "EUR",
                                              "owner": True}),
        Side(E, ref(E, "account.invoice", "ein_0004"), {"state": "posted", "total": "450.00", "currency": "EUR"}),
    ], severity=Severity.HIGH, fixes=("correct", "accept"), summary="ACME-0004: billing 500.00 EUR, ERP 450.00 EUR")
    w.customer("cus_hostile", HOSTILE)
    w.customer("cus_img", HOSTILE_IMG, support=False)
    w.customer("cus_noerp", "Zeta Traders", erp=False, plan="ent_monthly", tier=Tier.ENTERPRISE)
    w.exception("customer.unmapped_erp", "cus_noerp", "cus_noerp", [
        Side(B, ref(B, "customer", "cus_noerp"), {"name": "Zeta Traders", "tax_id": "DE1234", "email": None}),
        Side(E, None, {"party": None,
                       "candidates": [{"id": "77", "name": "Zeta Trading", "reasons": ["same tax id"]}]}),
    ], severity=Severity.MEDIUM, fixes=("create", "link"))
    for i in range(12):
        w.customer(f"cus_{i:03d}", f"Customer {i:03d} Ltd")
    return w


@pytest.fixture
def world() -> World:
    return demo_world()


@pytest.fixture
def page(qtbot: QtBot, world: World) -> CustomersPage:
    p = CustomersPage()
    qtbot.addWidget(p)
    p.resize(1200, 520)
    p.show()
    qtbot.waitExposed(p)
    p.set_rows(world.rows())
    return p


def shown_ids(page: CustomersPage) -> list[str]:
    return [page.model.customer_id(r) for r in range(page.model.rowCount())]


def type_search(qtbot: QtBot, page: CustomersPage, text: str) -> None:
    page.search_edit.clear()
    qtbot.keyClicks(page.search_edit, text)
    qtbot.waitUntil(lambda: not page._debounce.isActive(), timeout=2000)


# -- customers list --------------------------------------------------------------------------
def test_empty_states_before_and_after_data(qtbot: QtBot) -> None:
    p = CustomersPage()
    qtbot.addWidget(p)
    assert p.stack.currentWidget() is p.empty
    assert p.empty.title() == "No snapshot yet"
    p.set_loading(True)
    assert p.empty.title() == "Loading customers…"
    p.set_rows([])
    assert p.empty.title() == "No customers"
    assert p.count_label.text() == "0 of 0 customers"


def test_search_as_you_type_filters_and_counts(qtbot: QtBot, page: CustomersPage) -> None:
    assert page.count_label.text() == "16 of 16 customers"
    assert page.stack.currentWidget() is page.table
    type_search(qtbot, page, "acme")
    qtbot.waitUntil(lambda: shown_ids(page) == ["cus_acme"])
    assert page.count_label.text() == "1 of 16 customers"
    type_search(qtbot, page, "customer 00")  # two terms, each must match
    assert shown_ids(page) == [f"cus_{i:03d}" for i in range(10)]
    type_search(qtbot, page, "pcus_noerp")  # ERP party id is searchable... but Zeta has none
    assert shown_ids(page) == []
    assert page.stack.currentWidget() is page.empty
    assert page.empty.title() == "No customer matches"
    assert "pcus_noerp" in page.empty.text()
    type_search(qtbot, page, "ocus_acme")  # support org id
    assert shown_ids(page) == ["cus_acme"]
    page.search_edit.clear()
    page.apply_filter()
    assert page.model.rowCount() == 16


def test_only_with_exceptions(qtbot: QtBot, page: CustomersPage) -> None:
    page.only_exceptions.setChecked(True)
    assert sorted(shown_ids(page)) == ["cus_acme", "cus_noerp"]
    assert page.count_label.text() == "2 of 16 customers"


def test_sort_by_header_click(qtbot: QtBot, page: CustomersPage) -> None:
    names = [page.model.row_at(r).name for r in range(page.model.rowCount())]
    assert names == sorted(names, key=str.casefold)  # default: by name
    header = page.table.horizontalHeader()
    x = header.sectionViewportPosition(COL_NAME) + 10
    qtbot.mouseClick(header.viewport(), Qt.MouseButton.LeftButton, pos=QPoint(x, 5))
    names_desc = [page.model.row_at(r).name for r in range(page.model.rowCount())]
    assert names_desc == sorted(names, key=str.casefold, reverse=True)
    page.table.sortByColumn(COL_ERP, Qt.SortOrder.AscendingOrder)
    erp = [page.model.row_at(r).erp_party for r in range(page.model.rowCount())]
    assert erp[-1] is None  # unmapped last
    assert page.model.index(page.model.rowCount() - 1, COL_ERP).data() == "unmapped"


def test_enter_and_double_click_open_the_customer(qtbot: QtBot, page: CustomersPage) -> None:
    type_search(qtbot, page, "zeta")
    qtbot.keyClick(page.search_edit, Qt.Key.Key_Down)  # into the results, first row selected
    assert page.table.currentIndex().isValid()
    assert page.selected_customer_id() == "cus_noerp"
    with qtbot.waitSignal(page.open_customer, timeout=1000) as blocker:
        qtbot.keyClick(page.table, Qt.Key.Key_Return)
    assert blocker.args == ["cus_noerp"]
    page.search_edit.clear()
    page.apply_filter()
    row = page.model.row_of("cus_acme")
    assert row is not None
    rect = page.table.visualRect(page.model.index(row, COL_NAME))
    qtbot.mouseClick(page.table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert page.selected_customer_id() == "cus_acme"
    with qtbot.waitSignal(page.open_customer, timeout=1000) as blocker:
        qtbot.mouseDClick(page.table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert blocker.args == ["cus_acme"]


def test_keyboard_navigation_and_ctrl_f(qtbot: QtBot, page: CustomersPage) -> None:
    page.table.setFocus()
    page.select_customer(page.model.customer_id(0))
    qtbot.keyClick(page.table, Qt.Key.Key_Down)
    assert page.selected_customer_id() == page.model.customer_id(1)
    qtbot.keyClick(page.table, Qt.Key.Key_F, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(page.search_edit.hasFocus, timeout=1000)


def test_set_rows_keeps_selection_and_scroll(qtbot: QtBot, world: World) -> None:
    rows = [CustomerRow(f"cus_{i:05d}", f"Name {i:05d}", f"n{i}@x.example") for i in range(2000)]
    p = CustomersPage()
    qtbot.addWidget(p)
    p.resize(900, 400)
    p.show()
    qtbot.waitExposed(p)
    p.set_rows(rows)
    assert p.select_customer("cus_01000")
    bar = p.table.verticalScrollBar()
    qtbot.waitUntil(lambda: bar.value() > 0)
    before = bar.value()
    top_before = p.model.customer_id(p.table.rowAt(0))
    # a refresh: same customers, data changed in place, plus new ones sorting before the visible rows
    fresh = [CustomerRow(r.customer_id, r.name, r.email, open_exceptions=1) for r in rows]
    fresh += [CustomerRow(f"cus_a{i}", f"Name 00000a{i}") for i in range(30)]
    p.set_rows(fresh)
    assert p.selected_customer_id() == "cus_01000"
    assert p.model.row_at(p.table.currentIndex().row()).open_exceptions == 1
    assert p.model.customer_id(p.table.rowAt(0)) == top_before  # the same row stays at the top
    assert bar.value() > before  # ... which now lies 30 rows further down
    # the filtered-out selection is dropped quietly, and comes back when it matches again
    type_search(qtbot, p, "Name 0000")
    assert p.selected_customer_id() is None
    p.search_edit.clear()
    p.apply_filter()
    assert p.model.rowCount() == 2030


def test_hostile_names_are_plain_text(qtbot: QtBot, page: CustomersPage, world: World) -> None:
    for cid, name in (("cus_hostile", HOSTILE), ("cus_img", HOSTILE_IMG)):
        row = page.model.row_of(cid)
        assert row is not None
        assert page.model.index(row, COL_NAME).data() == name
    img_row = page.model.row_of("cus_img")
    assert img_row is not None
    assert page.model.index(img_row, COL_SUPPORT).data() == "unmapped"
    cp = CustomerPage()
    qtbot.addWidget(cp)
    cp.show_customer(world.timeline("cus_hostile"), world.exceptions, None)
    assert cp.name_label.text() == HOSTILE
    assert cp.name_label.textFormat() == Qt.TextFormat.PlainText
    for label in cp.findChildren(QLabel):
        assert label.textFormat() == Qt.TextFormat.PlainText, label.text()
    summaries = [cp.timeline_model.index(r, 5).data() for r in range(cp.timeline_model.rowCount())]
    assert f"Customer {HOSTILE} created in billing" in summaries


def test_hostile_names_in_tooltips_are_plain_text(qtbot: QtBot, page: CustomersPage, world: World) -> None:
    """Qt renders a tooltip that looks like markup as rich text: the tables' tooltips show the
    characters of an external name, never its markup."""
    def shown(tip: object) -> str:
        doc = QTextDocument()
        doc.setHtml(str(tip))  # how Qt would show it if it took it for rich text
        return doc.toPlainText()

    for cid, name in (("cus_hostile", HOSTILE), ("cus_img", HOSTILE_IMG)):
        row = page.model.row_of(cid)
        assert row is not None
        assert name in shown(page.model.index(row, COL_NAME).data(Qt.ItemDataRole.ToolTipRole))
    cp = CustomerPage()
    qtbot.addWidget(cp)
    cp.show_customer(world.timeline("cus_hostile"), world.exceptions, None)
    model = cp.timeline_model
    tips = [shown(model.index(r, 5).data(Qt.ItemDataRole.ToolTipRole)) for r in range(model.rowCount())]
    assert any(f"Customer {HOSTILE} created in billing" in tip for tip in tips)


def test_customers_model_passes_modeltester(qtmodeltester: object, world: World) -> None:
    model = CustomersModel()
    model.set_rows(world.rows())
    qtmodeltester.check(model)  # type: ignore[attr-defined]
    model.set_view([3, 1, 2])
    qtmodeltester.check(model)  # type: ignore[attr-defined]
    assert model.index(0, 0).data(Qt.ItemDataRole.UserRole) == model.customer_id(0)
    assert model.index(0, COL_ERP).data(Qt.ItemDataRole.DecorationRole) is not None
    assert model.rowCount(model.index(0, 0)) == 0
    assert model.data(QModelIndex()) is None


def test_timeline_model_passes_modeltester(qtmodeltester: object, world: World) -> None:
    model = TimelineModel()
    model.set_timeline(world.timeline("cus_acme"))
    qtmodeltester.check(model)  # type: ignore[attr-defined]
    model.set_newest_first(False)
    qtmodeltester.check(model)  # type: ignore[attr-defined]


# -- customer page -------------------------------------------------------------------------
@pytest.fixture
def customer_page(qtbot: QtBot, world: World) -> CustomerPage:
    cp = CustomerPage()
    qtbot.addWidget(cp)
    cp.resize(1280, 860)
    cp.show()
    qtbot.waitExposed(cp)
    row = next(r for r in world.rows() if r.customer_id == "cus_acme")
    cp.show_customer(world.timeline("cus_acme"), world.exceptions, row)
    return cp


def test_customer_page_identities(customer_page: CustomerPage, world: World, qtbot: QtBot) -> None:
    cp = customer_page
    assert cp.name_label.text() == "Acme GmbH"
    assert cp.id_label.text() == "cus_acme"
    assert cp.chips[B].value.text() == "cus_acme"
    assert cp.chips[E].value.text() == "party pcus_acme · code cus_acme"
    assert cp.chips[S].value.text() == "org ocus_acme"
    assert all(chip.linked for chip in cp.chips.values())
    cp.show_customer(world.timeline("cus_noerp"), world.exceptions, None)
    assert not cp.chips[E].linked
    assert cp.chips[E].value.text() == "not linked"
    assert "color: #d0453b" in cp.chips[E].value.styleSheet()


def test_customer_page_timeline_orders_and_missing(customer_page: CustomerPage) -> None:
    cp = customer_page
    model = cp.timeline_model
    whens = [model.entry(r).at for r in range(model.rowCount())]
    assert whens == sorted(whens, reverse=True)  # newest first by default
    cp.oldest_button.click()
    assert not model.newest_first()
    whens = [model.entry(r).at for r in range(model.rowCount())]
    assert whens == sorted(whens)
    cp.newest_button.click()
    assert model.newest_first()

    missing = [r for r in range(model.rowCount()) if model.entry(r).status == "missing"]
    assert missing, "the invoice that never reached the ERP is on the timeline"
    r = missing[0]
    assert model.index(r, 2).data() == "→ Invoice created (expected)"
    assert model.index(r, 3).data() == "missing"
    assert model.index(r, 2).data(Qt.ItemDataRole.FontRole).italic()
    assert model.index(r, 1).data() == "ERP"
    late = [r for r in range(model.rowCount()) if model.entry(r).status == "late"]
    assert late and model.index(late[0], 4).data() == "+3 h"
    # correlated entries: the billing finalization and its ERP copy share a group; selecting one tints both
    fin = next(r for r in range(model.rowCount()) if model.entry(r).group == "invoice:in_0001"
               and model.entry(r).lag is None)
    cp.timeline_view.selectRow(fin)
    tinted = [r for r in range(model.rowCount()) if model.index(r, 0).data(Qt.ItemDataRole.BackgroundRole)]
    assert {model.entry(r).group for r in tinted} >= {"invoice:in_0001"}
    assert "Correlated with 2 other entries: invoice:in_0001" in model.index(fin, 5).data(Qt.ItemDataRole.ToolTipRole)
    exc_cells = [model.index(r, 6).data() for r in range(model.rowCount())]
    assert "invoice.missing_in_erp:in_0003" in exc_cells


def test_customer_page_exceptions_side_by_side(customer_page: CustomerPage) -> None:
    cp = customer_page
    assert cp.exceptions_title.text() == "Open exceptions (2)"
    first, second = cp.cards
    assert first.exception.rule == "invoice.missing_in_erp"  # critical before high
    table = first.table
    headers = [table.horizontalHeaderItem(c).text() for c in range(table.columnCount())]
    assert headers == ["Billing (owner)", "ERP"]
    labels = [table.verticalHeaderItem(r).text() for r in range(table.rowCount())]
    assert labels == ["record", "status", "total", "currency", "number", "invoice"]
    assert table.item(0, 1).text() == "not present"
    assert table.item(2, 0).text() == "1,234.00 EUR"
    mismatch = second.table
    total_row = [mismatch.verticalHeaderItem(r).text() for r in range(mismatch.rowCount())].index("total")
    assert (mismatch.item(total_row, 0).text(), mismatch.item(total_row, 1).text()) == ("500.00 EUR", "450.00 EUR")
    assert mismatch.item(total_row, 0).font().bold()  # the differing values stand out
    # the same names as the exception detail's buttons (views.actions.wording), never "Accept"
    assert [b.text() for b in second.fix_buttons] == ["Correct…", "Accept difference…"]
    for card in cp.cards:
        for button in card.fix_buttons:
            assert not button.isEnabled()
            assert button.toolTip() == FIX_TOOLTIP


def test_customer_page_with_reconciled_exceptions(qtbot: QtBot) -> None:
    """Exceptions as the reconciliation engine makes them: master drift names the ERP the owner."""
    w = World().customer("cus_d", "Delta AG")
    w.e.customers["pcus_d"].name = "Delta Aktiengesellschaft"
    found = reconcile(w.snapshot(), now=NOW).exceptions
    drift = next(x for x in found if x.rule == "customer.master_drift")
    cp = CustomerPage()
    qtbot.addWidget(cp)
    cp.show_customer(w.timeline("cus_d"), found, next(r for r in build_customer_rows(w.snapshot(), found)))
    card = next(c for c in cp.cards if c.exception.id == drift.id)
    headers = [card.table.horizontalHeaderItem(c).text() for c in range(card.table.columnCount())]
    assert headers == ["ERP (owner)", "Billing", "Support"]  # the support org name differs too
    names = card.table.fields.index("name") + 1
    assert (card.table.item(names, 0).text(), card.table.item(names, 1).text()) == ("Delta Aktiengesellschaft",
                                                                                    "Delta AG")
    # the fixes the action service offers for the rule (services.actions.model.RULE_ACTIONS)
    assert [b.text() for b in card.fix_buttons] == ["Push owner value…", "Correct…", "Accept difference…"]
    assert not card.fix_buttons[0].isEnabled()


def test_customer_page_back_and_unknown(qtbot: QtBot, customer_page: CustomerPage, world: World) -> None:
    cp = customer_page
    with qtbot.waitSignal(cp.back, timeout=1000):
        cp.back_button.click()
    cp.timeline_view.setFocus()
    with qtbot.waitSignal(cp.back, timeout=1000):
        qtbot.keyClick(cp.timeline_view, Qt.Key.Key_Left, Qt.KeyboardModifier.AltModifier)
    with qtbot.waitSignal(cp.back, timeout=1000):
        qtbot.keyClick(cp.timeline_view, Qt.Key.Key_Backspace)
    cp.show_customer(world.timeline("cus_nobody"), world.exceptions, None)
    assert cp.stack.currentWidget() is cp.empty
    assert cp.empty.title() == "Unknown customer"
    assert cp.timeline_model.rowCount() == 0


def test_render_pages_to_png(qtbot: QtBot, page: CustomersPage, customer_page: CustomerPage,
                             tmp_path: Path) -> None:
    page.select_customer("cus_acme")
    out = {"customers": page, "customer": customer_page}
    for name, widget in out.items():
        path = tmp_path / f"{name}.png"
        assert widget.grab().save(str(path))
        assert path.stat().st_size > 10_000, name
    customer_page.timeline_view.selectRow(3)
    assert customer_page.grab().save(str(tmp_path / "customer-selected.png"))


# -- scale ---------------------------------------------------------------------------------
def test_hundred_thousand_rows(qtbot: QtBot, capsys: pytest.CaptureFixture[str]) -> None:
    n = 100_000
    rows = []
    for i in range(n):
        row = CustomerRow(f"cus_{i:06d}", f"Company {i:06d} {'GmbH' if i % 3 else 'Ltd'}", f"ops{i}@c{i % 97}.example",
                          erp_party=str(i) if i % 10 else None, support_org=f"o{i}" if i % 7 else None,
                          status="active", plan="pro_monthly", tier="premium", open_exceptions=i % 13 == 0)
        row.search = "\x00".join([row.customer_id, row.name, row.email, row.erp_party or "",
                                  row.support_org or ""]).casefold()
        rows.append(row)
    p = CustomersPage()
    qtbot.addWidget(p)
    p.resize(1200, 700)
    p.show()
    qtbot.waitExposed(p)
    t0 = time.perf_counter()
    p.set_rows(rows)
    qtbot.wait(1)
    t1 = time.perf_counter()
    assert p.count_label.text() == "100,000 of 100,000 customers"
    p.select_customer("cus_050000")
    p.search_edit.setText("company 0499")
    p.apply_filter()
    qtbot.wait(1)
    t2 = time.perf_counter()
    expected = sum(1 for r in rows if "company" in r.search and "0499" in r.search)
    assert p.model.rowCount() == expected > 100
    assert p.count_label.text() == f"{expected} of 100,000 customers"
    p.table.sortByColumn(COL_NAME, Qt.SortOrder.DescendingOrder)
    t3 = time.perf_counter()
    names = [p.model.row_at(r).name for r in range(p.model.rowCount())]
    assert names == sorted(names, key=str.casefold, reverse=True)
    p.search_edit.clear()
    p.apply_filter()
    p.set_rows(rows)  # a refresh in place at full size
    t4 = time.perf_counter()
    assert p.model.rowCount() == n
    prepared = RowFilter(rows)
    prepared.order("name")  # what a worker thread would do before handing the rows over
    t5 = time.perf_counter()
    p.set_rows(rows, prepared)
    t6 = time.perf_counter()
    assert p.count_label.text() == "100,000 of 100,000 customers"
    with pytest.raises(ValueError, match="other rows"):
        p.set_rows(rows[:10], prepared)
    with capsys.disabled():
        print(f"\n100k rows: set_rows {1000 * (t1 - t0):.0f} ms, search {1000 * (t2 - t1):.0f} ms, "
              f"sort {1000 * (t3 - t2):.0f} ms, clear+refresh {1000 * (t4 - t3):.0f} ms, "
              f"refresh with a prepared RowFilter {1000 * (t6 - t5):.0f} ms")
