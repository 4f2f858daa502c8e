"""GUI tests for the Exceptions page: filters, counts, sorting, detail pane, refresh, scale."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from PySide6.QtCore import QModelIndex, QPoint, Qt
from PySide6.QtGui import QTextDocument
from PySide6.QtWidgets import QApplication, QComboBox
from pytestqt.qtbot import QtBot

from services.core.domain import RULES, ExternalRef, Severity, Side, SyncException, System, Team
from services.core.reconcile import RULE_SYSTEMS
from views.coverage import ALL_READ
from views.exceptions.detail import FIX_DISABLED_TIP
from views.exceptions.model import ID_ROLE, SORT_ROLE, Column, ExceptionsModel
from views.exceptions.page import ExceptionsPage
from views.widgets.icons import severity_icon
from views.widgets.text import human_age

pytestmark = pytest.mark.gui

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
HOSTILE = "<b>x</b> & <i>y</i> <img src=q>"


def _sides(rule: str, n: int) -> list[Side]:
    cid = f"cus_{n:04d}"
    if rule == "customer.unmapped_erp":
        cands = [{"ref": "erp:party.party:7", "id": "7", "name": f"Acme {n} GmbH", "score": 5,
                  "reasons": ["same tax id", "same email domain"]},
                 {"ref": "erp:party.party:9", "id": "9", "name": f"ACME {n}", "score": 1, "reasons": ["same name"]}]
        return [Side(System.BILLING, ExternalRef(System.BILLING, "customer", cid),
                     {"name": f"Acme {n}", "tax_id": "DE123", "email": "a@acme.test", "country": "DE"}),
                Side(System.ERP, None, {"party": None, "candidates": cands})]
    if rule == "customer.unmapped_support":
        return [Side(System.BILLING, ExternalRef(System.BILLING, "customer", cid), {"name": f"Acme {n}"}),
                Side(System.SUPPORT, None, {"organization": None, "candidates": []})]
    if rule == "customer.master_drift":
        return [Side(System.ERP, ExternalRef(System.ERP, "party.party", str(n)),
                     {"name": f"Acme {n} GmbH", "tax_id": "DE1", "country": "DE", "owner": True}),
                Side(System.BILLING, ExternalRef(System.BILLING, "customer", cid), {"name": f"Acme {n}"})]
    if rule.startswith("invoice."):
        return [Side(System.BILLING, ExternalRef(System.BILLING, "invoice", f"in_{n}"),
                     {"status": "paid", "total": "100.00", "currency": "EUR", "number": f"INV-{n}"}),
                Side(System.ERP, ExternalRef(System.ERP, "account.invoice", str(n)),
                     {"state": "posted", "total": "90.00" if rule == "invoice.amount_mismatch" else "100.00",
                      "currency": "EUR", "number": f"E-{n}"})]
    if rule == "subscription.terms_mismatch":
        return [Side(System.BILLING, ExternalRef(System.BILLING, "subscription", f"sub_{n}"), {"quantity": 5}),
                Side(System.ERP, ExternalRef(System.ERP, "sale.subscription", str(n)), {"quantity": 3})]
    return [Side(System.BILLING, None, {"plans": ["pro_monthly"], "tier": "premium"}),
            Side(System.SUPPORT, ExternalRef(System.SUPPORT, "organization", str(n)), {"tier": "standard"})]


AGES_H = [0.5, 2, 30, 200, 900]  # hours; > 1 h, > 1 d, > 7 d, > 30 d boundaries
SEVS = [Severity.CRITICAL, Severity.HIGH, Severity.MEDIUM, Severity.LOW]


def make_exception(rule: str, n: int, *, age_h: float, severity: Severity, summary: str | None = None,
                   customer: str | None = "default") -> SyncException:
    owner, fixes = RULES[rule]
    first = NOW - timedelta(hours=age_h)
    cid = f"cus_{n:04d}" if customer == "default" else customer
    obj = f"obj_{n:04d}"
    return SyncException(id=f"{rule}:{obj}", rule=rule, severity=severity, owner=owner, customer_id=cid,
                         object_id=obj, summary=summary or f"{rule} problem number {n}", sides=_sides(rule, n),
                         first_seen=first, last_seen=NOW, fix_actions=fixes)


#: the twelve first rules in their order (the object numbers the tests name follow it), then every
#: rule added since (invoice.not_posted_in_erp, ...), each with two exceptions numbered 30, 31, ...
FIRST_RULES = ("customer.unmapped_erp", "customer.unmapped_support", "customer.master_drift",
               "invoice.missing_in_erp", "invoice.amount_mismatch", "invoice.duplicate_in_erp",
               "invoice.payment_state", "invoice.orphan_in_erp", "subscription.terms_mismatch",
               "entitlement.missing", "entitlement.tier_mismatch", "entitlement.orphan")
RULE_ORDER = FIRST_RULES + tuple(r for r in RULES if r not in FIRST_RULES)
TOTAL = 30 + 2 * (len(RULE_ORDER) - len(FIRST_RULES))


def make_exceptions() -> list[SyncException]:
    """TOTAL exceptions: rule i of RULE_ORDER gets 3 for i < 6 and 2 for the others (6*3 + 6*2 = 30
    for the first twelve)."""
    assert set(RULE_ORDER) == set(RULES)
    out: list[SyncException] = []
    n = 0
    for i, rule in enumerate(RULE_ORDER):
        for _ in range(3 if i < 6 else 2):
            out.append(make_exception(rule, n, age_h=AGES_H[n % 5] + n / 100, severity=SEVS[n % 4]))
            n += 1
    return out


@pytest.fixture
def excs() -> list[SyncException]:
    return make_exceptions()


@pytest.fixture
def page(qtbot: QtBot, excs: list[SyncException]) -> ExceptionsPage:
    widget = ExceptionsPage()
    qtbot.addWidget(widget)
    widget.resize(1500, 850)
    widget.set_exceptions(excs, NOW)
    widget.show()
    qtbot.waitExposed(widget)
    return widget


def visible_ids(page: ExceptionsPage) -> list[str]:
    m = page.model
    return [m.data(m.index(r, 0), ID_ROLE) for r in range(m.rowCount())]


def set_combo(combo: QComboBox, data: object) -> None:
    if isinstance(data, str):
        data = str(data)  # combos hold plain strings, not the StrEnum members
    idx = combo.findData(data)
    assert idx >= 0
    combo.setCurrentIndex(idx)


# -- filters ---------------------------------------------------------------------------------
def test_filter_by_rule(page: ExceptionsPage, excs: list[SyncException]) -> None:
    assert page.model.rowCount() == TOTAL
    set_combo(page.rule_combo, "invoice.missing_in_erp")
    assert page.model.rowCount() == 3
    assert {e.split(":")[0] for e in visible_ids(page)} == {"invoice.missing_in_erp"}
    set_combo(page.rule_combo, "entitlement.orphan")
    assert page.model.rowCount() == 2
    page.rule_combo.setCurrentIndex(0)
    assert page.model.rowCount() == TOTAL


def test_filter_by_owner(page: ExceptionsPage, excs: list[SyncException]) -> None:
    set_combo(page.owner_combo, Team.SUPPORT)
    expected = sum(1 for e in excs if e.owner is Team.SUPPORT)
    assert expected == 3 + 2 + 2 + 2  # unmapped_support (3) + three entitlement rules (2 each)
    assert page.model.rowCount() == expected
    set_combo(page.owner_combo, Team.FINANCE)
    assert page.model.rowCount() == TOTAL - expected


def test_filter_by_severity_is_at_least(page: ExceptionsPage, excs: list[SyncException]) -> None:
    assert "at least" in page.severity_combo.toolTip().lower()
    set_combo(page.severity_combo, Severity.CRITICAL)
    assert page.model.rowCount() == sum(1 for e in excs if e.severity is Severity.CRITICAL)
    set_combo(page.severity_combo, Severity.HIGH)
    assert page.model.rowCount() == sum(1 for e in excs if e.severity in (Severity.CRITICAL, Severity.HIGH))
    set_combo(page.severity_combo, Severity.LOW)
    assert page.model.rowCount() == TOTAL


def test_filter_by_system(page: ExceptionsPage) -> None:
    set_combo(page.system_combo, System.SUPPORT)
    # unmapped_support (3) + entitlement.* (2 + 2 + 2)
    assert page.model.rowCount() == 9
    set_combo(page.system_combo, System.ERP)
    # the first twelve rules: every rule but the four above (3 + 2 + 2 + 2) = 21; later ones by their systems
    assert page.model.rowCount() == 21 + sum(2 for r in RULE_ORDER[len(FIRST_RULES):] if System.ERP in RULE_SYSTEMS[r])
    set_combo(page.system_combo, System.BILLING)
    assert page.model.rowCount() == TOTAL


def test_filter_by_age(page: ExceptionsPage, excs: list[SyncException]) -> None:
    for seconds in (3600.0, 86400.0, 7 * 86400.0, 30 * 86400.0):
        set_combo(page.age_combo, seconds)
        expected = sum(1 for e in excs if e.age(NOW) > seconds)
        assert 0 < expected < TOTAL
        assert page.model.rowCount() == expected
    page.age_combo.setCurrentIndex(0)
    assert page.model.rowCount() == TOTAL


def test_text_search_and_combined(page: ExceptionsPage, qtbot: QtBot, excs: list[SyncException]) -> None:
    qtbot.keyClicks(page.search_edit, "CUS_0007")  # customer id, case-insensitive
    assert visible_ids(page) == ["customer.master_drift:obj_0007"]
    page.search_edit.setText("obj_0012")  # object id
    assert visible_ids(page) == ["invoice.amount_mismatch:obj_0012"]
    page.search_edit.setText("problem number 2")  # summary: 2, 20..29
    assert page.model.rowCount() == 11
    set_combo(page.owner_combo, Team.SUPPORT)
    expected = {e.id for e in excs if "problem number 2" in e.summary and e.owner is Team.SUPPORT}
    assert len(expected) == 6  # n = 24 .. 29: the entitlement rules
    assert set(visible_ids(page)) == expected
    assert f"of {TOTAL} shown" in page.shown_label.text()
    assert page.clear_button.isEnabled()
    page.clear_filters()
    assert page.model.rowCount() == TOTAL
    assert page.search_edit.text() == ""
    assert not page.clear_button.isEnabled()


def test_no_match_shows_empty_detail(page: ExceptionsPage) -> None:
    page.search_edit.setText("nothing matches this")
    assert page.model.rowCount() == 0
    assert not page.detail.is_showing_exception()
    assert "match" in page.detail.empty.title()


# -- counts per rule ---------------------------------------------------------------------------
def test_counts_per_rule(page: ExceptionsPage, excs: list[SyncException]) -> None:
    for i, rule in enumerate(RULE_ORDER):
        expected = 3 if i < 6 else 2
        assert page.rule_counts[rule] == expected
        assert page.rule_combo.itemText(page.rule_combo.findData(rule)) == f"{rule} ({expected})"
        assert page._rule_items[rule].text(1) == str(expected)
    assert page._rule_items[None].text(1) == str(TOTAL)
    assert page.rule_combo.itemText(0) == f"All rules ({TOTAL})"


def test_clicking_a_rule_count_filters(page: ExceptionsPage, qtbot: QtBot) -> None:
    item = page._rule_items["entitlement.tier_mismatch"]
    rect = page.rule_list.visualItemRect(item)
    qtbot.mouseClick(page.rule_list.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert page.rule_combo.currentData() == "entitlement.tier_mismatch"
    assert page.model.rowCount() == 2
    total = page._rule_items[None]
    qtbot.mouseClick(page.rule_list.viewport(), Qt.MouseButton.LeftButton,
                     pos=page.rule_list.visualItemRect(total).center())
    assert page.model.rowCount() == TOTAL
    # and the combo moves the list's current item
    set_combo(page.rule_combo, "invoice.orphan_in_erp")
    assert page.rule_list.currentItem() is page._rule_items["invoice.orphan_in_erp"]


# -- sorting -----------------------------------------------------------------------------------
def test_sorted_by_age_oldest_first_by_default(page: ExceptionsPage) -> None:
    m = page.model
    ages = [m.data(m.index(r, Column.AGE), SORT_ROLE) for r in range(m.rowCount())]
    assert ages == sorted(ages, reverse=True)
    assert page.table.horizontalHeader().sortIndicatorSection() == Column.AGE
    assert m.data(m.index(0, Column.AGE)) == human_age(ages[0])


def test_sort_by_header_click(page: ExceptionsPage, qtbot: QtBot) -> None:
    header = page.table.horizontalHeader()
    m = page.model

    def click(col: int) -> None:
        x = header.sectionViewportPosition(col) + header.sectionSize(col) // 2
        qtbot.mouseClick(header.viewport(), Qt.MouseButton.LeftButton, pos=QPoint(x, header.height() // 2))
        assert header.sortIndicatorSection() == col

    page.next_exception()
    selected = page.selected_id()
    click(Column.SEVERITY)
    ranks = [m.data(m.index(r, Column.SEVERITY), SORT_ROLE) for r in range(m.rowCount())]
    assert ranks == sorted(ranks) or ranks == sorted(ranks, reverse=True)
    assert page.selected_id() == selected  # sorting keeps the selection
    click(Column.AGE)
    if header.sortIndicatorOrder() == Qt.SortOrder.DescendingOrder:
        click(Column.AGE)
    ages = [m.data(m.index(r, Column.AGE), SORT_ROLE) for r in range(m.rowCount())]
    assert ages == sorted(ages)  # ascending: newest first
    click(Column.CUSTOMER)
    custs = [m.data(m.index(r, Column.CUSTOMER)) for r in range(m.rowCount())]
    assert custs in (sorted(custs), sorted(custs, reverse=True))


# -- detail pane -------------------------------------------------------------------------------
def test_detail_shows_both_sides_and_owner(page: ExceptionsPage, qtbot: QtBot) -> None:
    assert not page.detail.is_showing_exception()
    assert page.select_exception("invoice.amount_mismatch:obj_0012")
    d = page.detail
    assert d.is_showing_exception()
    assert d.title.text() == "invoice.amount_mismatch — obj_0012"
    t = d.sides_table
    assert t.columnCount() == 2
    headers = [t.horizontalHeaderItem(c).text() for c in range(2)]
    assert headers[0].startswith("Billing (owner)") and "in_12" in headers[0]
    assert headers[1].startswith("ERP\n") and "(owner)" not in headers[1]
    keys = [t.verticalHeaderItem(r).text().removeprefix("≠ ") for r in range(t.rowCount())]
    assert keys == ["status", "total", "currency", "number", "state"]
    cells = {keys[r]: [t.item(r, c).text() for c in range(2)] for r in range(t.rowCount())}
    assert cells["total"] == ["100.00 EUR", "90.00 EUR"]
    assert cells["status"] == ["paid", "—"]  # not reported by the ERP side
    assert d.differing == ["total"]  # currency agrees; each system numbers invoices on its own
    assert d.owner_line.text() == "Owner system: Billing — corrections flow from the owner to the copies"
    assert d.severity.text() == "critical"  # n = 12 -> SEVS[12 % 4]
    assert not d.candidates.isVisible()


def test_detail_owner_flag_side(page: ExceptionsPage) -> None:
    page.select_exception("customer.master_drift:obj_0006")
    t = page.detail.sides_table
    headers = [t.horizontalHeaderItem(c).text() for c in range(t.columnCount())]
    assert headers[0].startswith("ERP (owner)")
    assert not headers[1].startswith("Billing (owner)")
    keys = [t.verticalHeaderItem(r).text() for r in range(t.rowCount())]
    assert "owner" not in [k.removeprefix("≠ ") for k in keys]
    assert "≠ name" in keys
    assert "Owner system: ERP" in page.detail.owner_line.text()


def test_detail_candidates(page: ExceptionsPage) -> None:
    page.select_exception("customer.unmapped_erp:obj_0000")
    d = page.detail
    assert d.candidates.isVisible()
    assert d.candidates.topLevelItemCount() == 2
    first = d.candidates.topLevelItem(0)
    assert first.text(0) == "Acme 0 GmbH (erp:party.party:7)"
    assert first.text(1) == "5"
    assert first.text(2) == "same tax id, same email domain"
    keys = [d.sides_table.verticalHeaderItem(r).text() for r in range(d.sides_table.rowCount())]
    assert "candidates" not in keys
    assert "no record" in d.sides_table.horizontalHeaderItem(1).text()
    # an empty candidate list says so
    page.select_exception("customer.unmapped_support:obj_0003")
    assert not d.candidates.isVisible()
    assert d.no_candidates.isVisible()


def test_fix_buttons_disabled_with_tooltip(page: ExceptionsPage, excs: list[SyncException]) -> None:
    for exc in excs:
        page.select_exception(exc.id)
        buttons = page.detail.fix_buttons
        assert [b.property("action") for b in buttons] == list(exc.fix_actions)
        for b in buttons:
            assert not b.isEnabled()
            assert b.toolTip() == FIX_DISABLED_TIP
            assert b.isVisible()


def test_open_customer_signal(page: ExceptionsPage, qtbot: QtBot) -> None:
    page.select_exception("entitlement.orphan:obj_0028")
    button = page.detail.customer_button
    assert button.isVisible() and button.text() == "cus_0028"
    with qtbot.waitSignal(page.open_customer, timeout=1000) as blocker:
        qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    assert blocker.args == ["cus_0028"]
    with qtbot.waitSignal(page.detail.open_customer, timeout=1000) as blocker2:
        button.click()
    assert blocker2.args == ["cus_0028"]


def test_no_customer(qtbot: QtBot) -> None:
    page = ExceptionsPage()
    qtbot.addWidget(page)
    exc = make_exception("invoice.orphan_in_erp", 1, age_h=3, severity=Severity.LOW, customer=None)
    page.set_exceptions([exc], NOW)
    page.next_exception()
    assert page.detail.customer_button.isHidden()
    assert not page.detail.no_customer.isHidden()
    assert page.model.data(page.model.index(0, Column.CUSTOMER)) == "—"


# -- navigation and refresh --------------------------------------------------------------------
def test_next_previous_exception(page: ExceptionsPage, qtbot: QtBot) -> None:
    ids = visible_ids(page)
    assert page.selected_id() is None
    assert page.next_exception()
    assert page.selected_id() == ids[0]
    assert page.next_exception()
    assert page.next_exception()
    assert page.selected_id() == ids[2]
    assert page.detail.exception is not None and page.detail.exception.id == ids[2]
    assert page.previous_exception()
    assert page.selected_id() == ids[1]
    page.select_exception(ids[-1])
    assert not page.next_exception()  # stays at the end
    assert page.selected_id() == ids[-1]
    page.select_exception(ids[0])
    assert not page.previous_exception()
    # keyboard navigation in the table moves the detail too
    page.table.setFocus()
    qtbot.keyClick(page.table, Qt.Key.Key_Down)
    assert page.selected_id() == ids[1]
    assert page.detail.exception is not None and page.detail.exception.id == ids[1]


def test_selection_and_scroll_kept_across_refresh(page: ExceptionsPage, excs: list[SyncException],
                                                  qtbot: QtBot) -> None:
    page.resize(1500, 400)
    ids = visible_ids(page)
    target = ids[20]
    page.select_exception(target)
    bar = page.table.verticalScrollBar()
    assert bar.maximum() > 0
    scroll = bar.value()
    assert scroll > 0
    # refresh: one exception closed, one new, changed summary of the selected one, later "now"
    changed = [e for e in excs if e.id != ids[0]]
    sel = next(e for e in changed if e.id == target)
    sel.summary = "updated summary"
    changed.append(make_exception("entitlement.missing", 99, age_h=1.5, severity=Severity.HIGH))
    page.set_exceptions(changed, NOW + timedelta(minutes=5))
    assert page.selected_id() == target
    assert bar.value() == scroll
    qtbot.wait(50)  # and still after the view has laid itself out again
    assert bar.value() == scroll
    assert page.selected_id() == target
    assert page.detail.summary.text() == "updated summary"
    assert page.model.rowCount() == TOTAL
    # the selected exception is resolved: nothing selected, the detail says so
    page.set_exceptions([e for e in changed if e.id != target], NOW + timedelta(minutes=10))
    assert page.selected_id() is None
    assert not page.detail.is_showing_exception()


def test_filters_kept_across_refresh(page: ExceptionsPage, excs: list[SyncException]) -> None:
    set_combo(page.rule_combo, "invoice.missing_in_erp")
    page.set_exceptions([*excs, make_exception("invoice.missing_in_erp", 77, age_h=1, severity=Severity.LOW)], NOW)
    assert page.model.rowCount() == 4
    assert page.rule_combo.currentText() == "invoice.missing_in_erp (4)"


def test_closed_exceptions_are_left_out(qtbot: QtBot, excs: list[SyncException]) -> None:
    page = ExceptionsPage()
    qtbot.addWidget(page)
    excs[0].closed_at = NOW
    page.set_exceptions(excs, NOW)
    assert page.model.rowCount() == TOTAL - 1
    assert page._rule_items[None].text(1) == str(TOTAL - 1)


def test_empty_and_loading_states(qtbot: QtBot) -> None:
    page = ExceptionsPage()
    qtbot.addWidget(page)
    page.set_loading(True)
    assert page.detail.empty.title().startswith("Loading")
    assert page.table_stack.currentWidget() is page.table_empty
    page.set_exceptions([], NOW)
    # told nothing about what was read, an empty queue never claims agreement
    assert page.detail.empty.title() == page.table_empty.title() == "No open exceptions"
    assert "agree" not in page.table_empty.text()
    # all three systems read in the latest refresh, every rule run: now it may say so
    page.set_coverage(ALL_READ)
    assert page.detail.empty.title() == "No open exceptions — everything agrees"
    assert page.table_empty.title() == "No open exceptions — everything agrees"
    assert not page.next_exception()
    page.set_exceptions(make_exceptions(), NOW)
    assert page.table_stack.currentWidget() is page.table
    assert page.detail.empty.title() == "Select an exception"


# -- plain text --------------------------------------------------------------------------------
def test_hostile_text_is_shown_verbatim(qtbot: QtBot) -> None:
    page = ExceptionsPage()
    qtbot.addWidget(page)
    exc = make_exception("customer.master_drift", 5, age_h=3, severity=Severity.LOW, summary=HOSTILE,
                         customer="cus_<b>&amp;</b>")
    exc.sides[1].values["name"] = HOSTILE
    page.set_exceptions([exc], NOW)
    m = page.model
    assert m.data(m.index(0, Column.SUMMARY)) == HOSTILE
    tip = m.data(m.index(0, Column.SUMMARY), Qt.ItemDataRole.ToolTipRole)
    doc = QTextDocument()
    doc.setHtml(tip)
    assert doc.toPlainText() == HOSTILE  # rendered as rich text, it still shows the characters
    page.next_exception()
    d = page.detail
    assert d.summary.text() == HOSTILE
    assert d.summary.textFormat() == Qt.TextFormat.PlainText
    assert d.title.textFormat() == Qt.TextFormat.PlainText
    assert d.customer_button.text().replace("&&", "&") == "cus_<b>&amp;</b>"
    name_row = next(r for r in range(d.sides_table.rowCount())
                    if d.sides_table.verticalHeaderItem(r).text().endswith("name"))
    assert d.sides_table.item(name_row, 1).text() == HOSTILE
    with qtbot.waitSignal(page.open_customer, timeout=1000) as blocker:
        d.customer_button.click()
    assert blocker.args == ["cus_<b>&amp;</b>"]
    page.search_edit.setText("<i>y</i>")
    assert page.model.rowCount() == 1


# -- model -------------------------------------------------------------------------------------
def test_model_roles(qapp: QApplication, excs: list[SyncException]) -> None:  # icons need a QGuiApplication
    model = ExceptionsModel()
    model.set_exceptions(excs, NOW)
    idx = model.index(0, Column.SEVERITY)
    exc = model.exception_at(0)
    assert exc is not None
    assert model.data(idx) == exc.severity.value
    icon = model.data(idx, Qt.ItemDataRole.DecorationRole)
    drawn = {sev: severity_icon(sev).pixmap(12, 12).toImage() for sev in Severity}
    assert [sev for sev, img in drawn.items() if icon.pixmap(12, 12).toImage() == img] == [exc.severity]
    assert model.data(idx, ID_ROLE) == exc.id
    assert model.data(model.index(0, Column.SUMMARY), Qt.ItemDataRole.ToolTipRole) == exc.summary
    assert model.data(model.index(0, Column.FIRST_SEEN)) == f"{exc.first_seen:%Y-%m-%d %H:%M}"
    assert model.headerData(Column.FIRST_SEEN, Qt.Orientation.Horizontal) == "First seen (UTC)"
    assert model.data(model.index(0, Column.SYSTEMS)) in ("Billing ↔ ERP", "Billing ↔ Support")
    assert model.headerData(Column.AGE, Qt.Orientation.Horizontal) == "Age"
    assert model.data(model.index(0, 0, QModelIndex())) == exc.severity.value  # column 0 is the severity
    assert human_age(3 * 86400 + 4 * 3600 + 59) == "3 d 4 h"
    assert human_age(5 * 3600 + 12 * 60) == "5 h 12 min"
    assert human_age(30) == "< 1 min"


def test_qtmodeltester(qtmodeltester: object, excs: list[SyncException]) -> None:
    model = ExceptionsModel()
    model.set_exceptions(excs, NOW)
    qtmodeltester.check(model)  # type: ignore[attr-defined]
    model.sort(Column.RULE, Qt.SortOrder.AscendingOrder)
    qtmodeltester.check(model)  # type: ignore[attr-defined]


def test_qtmodeltester_live_changes(qtmodeltester: object, excs: list[SyncException]) -> None:
    from views.exceptions.model import ExceptionFilter

    model = ExceptionsModel()
    qtmodeltester.check(model, force_py=True)  # type: ignore[attr-defined]
    model.set_exceptions(excs, NOW)
    model.sort(Column.SEVERITY, Qt.SortOrder.DescendingOrder)
    model.set_filter(ExceptionFilter(owner=Team.SUPPORT))
    model.sort(Column.AGE, Qt.SortOrder.AscendingOrder)
    model.set_exceptions(excs[:5], NOW)
    support = sorted((e for e in excs[:5] if e.owner is Team.SUPPORT), key=lambda e: NOW - e.first_seen)
    assert len(support) == 2  # the filter keeps a part of the new data, not all and not nothing
    assert model.rowCount() == len(support)
    assert [model.data(model.index(r, 0), ID_ROLE) for r in range(model.rowCount())] == [e.id for e in support]


# -- rendering ---------------------------------------------------------------------------------
def test_render_png(page: ExceptionsPage, tmp_path: Path) -> None:
    page.select_exception("customer.unmapped_erp:obj_0000")
    out = tmp_path / "exceptions.png"
    assert page.grab().save(str(out))
    assert out.stat().st_size > 20_000
    page.select_exception("invoice.amount_mismatch:obj_0012")
    out2 = tmp_path / "exceptions-invoice.png"
    assert page.grab().save(str(out2))
    assert out2.stat().st_size > 20_000


# -- scale -------------------------------------------------------------------------------------
@pytest.mark.slow
def test_fifty_thousand_exceptions(qtbot: QtBot) -> None:
    rules = list(RULES)
    t0 = time.perf_counter()
    big = [make_exception(rules[n % 12], n, age_h=(n * 7919) % 2000 / 2, severity=SEVS[n % 4]) for n in range(50_000)]
    t_build = time.perf_counter() - t0
    page = ExceptionsPage()
    qtbot.addWidget(page)
    page.resize(1500, 850)
    page.show()
    t0 = time.perf_counter()
    page.set_exceptions(big, NOW)
    qtbot.wait(1)
    t_load = time.perf_counter() - t0
    assert page.model.rowCount() == 50_000
    assert page._rule_items[None].text(1) == "50000"
    ages = [page.model.data(page.model.index(r, Column.AGE), SORT_ROLE) for r in range(0, 50_000, 997)]
    assert ages == sorted(ages, reverse=True)

    page.select_exception(big[12_345].id)
    t0 = time.perf_counter()
    set_combo(page.rule_combo, rules[12_345 % 12])
    t_rule = time.perf_counter() - t0
    assert page.model.rowCount() == 50_000 // 12 + (1 if 50_000 % 12 > 12_345 % 12 else 0)
    assert page.selected_id() == big[12_345].id

    t0 = time.perf_counter()
    page.search_edit.setText("number 1234")  # 1234, 12340..12349
    t_text = time.perf_counter() - t0
    assert 1 <= page.model.rowCount() <= 11
    page.clear_filters()

    t0 = time.perf_counter()
    page.table.sortByColumn(Column.SUMMARY, Qt.SortOrder.AscendingOrder)
    t_sort = time.perf_counter() - t0
    assert page.selected_id() == big[12_345].id

    t0 = time.perf_counter()
    page.set_exceptions(big[:49_000] + big[49_500:], NOW + timedelta(minutes=1))
    t_refresh = time.perf_counter() - t0
    assert page.model.rowCount() == 49_500
    assert page.selected_id() == big[12_345].id

    t0 = time.perf_counter()
    for _ in range(50):
        page.next_exception()
    t_next = (time.perf_counter() - t0) / 50
    print(f"\n50k exceptions: build {t_build:.2f}s, load {t_load * 1000:.0f} ms, rule filter {t_rule * 1000:.0f} ms, "
          f"text filter {t_text * 1000:.0f} ms, sort {t_sort * 1000:.0f} ms, refresh {t_refresh * 1000:.0f} ms, "
          f"next {t_next * 1000:.1f} ms")
    assert t_rule < 1.0 and t_text < 1.0 and t_sort < 2.0 and t_refresh < 3.0
