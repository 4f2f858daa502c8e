"""Every page says which of four states it is in — loading, not loaded (which system, why, Retry,
a way to the Systems page), loaded and empty, loaded — and "everything agrees" is said only
when all three systems were read in the latest refresh (DESIGN.md, "What the console promises
on screen"). The window is fed ConsoleState objects as the engine adapter builds them."""

from __future__ import annotations

from datetime import timedelta

import pytest
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from services.actions.model import ActionStatus, OutboxItem
from services.core.domain import System
from services.core.overview import RowFilter
from services.core.reconcile import RULE_SYSTEMS
from tests.gui.fake_actions import NOW, FakeActionService, amount_mismatch, outbox_item, sample_entries, until
from tests.worlds import World
from views.action_adapter import ActionAdapter
from views.actions.pending import PendingActionsPage
from views.adapters import ConsoleState
from views.audit_page import AuditPage
from views.coverage import (
    ALL_READ,
    NOT_YET,
    Coverage,
    PageState,
    coverage_of,
    exceptions_banner,
    exceptions_view,
    skipped_by_data,
)
from views.main_window import MainWindow

pytestmark = pytest.mark.gui

DOWN = "billing unavailable: connection failed (ConnectError)"
ERP_DOWN = "erp unavailable: HTTP 503"


def state(*, rows: int = 0, exceptions: int = 0, with_data: tuple[System, ...] = (),
          refreshed: dict[System, str] | None = None) -> ConsoleState:
    world = World()
    for i in range(rows):
        world.customer(f"cus_{i}", f"Customer {i}")
    customer_rows = world.rows()
    have = frozenset(with_data)
    ages = {s: (NOW - timedelta(hours=3) if s in have else None) for s in System}
    return ConsoleState(customer_rows, [amount_mismatch(n) for n in range(1, exceptions + 1)], NOW, None, ages,
                        row_filter=RowFilter(customer_rows), refreshed=refreshed,
                        skipped_rules=skipped_by_data(have))


ALL_DOWN = {System.BILLING: DOWN, System.ERP: ERP_DOWN, System.SUPPORT: "support unavailable: timed out"}


@pytest.fixture
def window(qtbot: QtBot) -> MainWindow:
    w = MainWindow()
    qtbot.addWidget(w)
    w.resize(1200, 760)
    w.show()
    qtbot.waitExposed(w)
    return w


# -- the rules of honesty, as plain functions --------------------------------------------------
def test_everything_agrees_only_when_all_three_were_read_in_the_latest_refresh() -> None:
    everything = frozenset(System)
    read = {s: "" for s in System}
    assert exceptions_view(coverage_of(everything, read, {}, {}, False), 0).title.endswith("everything agrees")
    # the same empty queue, before any refresh finished in this session: still being checked
    before = exceptions_view(coverage_of(everything, None, {}, {}, True), 0)
    assert before.state is PageState.LOADING and "agree" not in before.title + before.text
    # the ERP was not read this time (its data is from an earlier refresh)
    stale = exceptions_view(coverage_of(everything, {**read, System.ERP: ERP_DOWN}, {}, {}, False), 0)
    assert stale.state is PageState.EMPTY and "agree" not in stale.title + stale.text
    assert ERP_DOWN in stale.text and stale.retry
    # a system that is not configured is never read: no agreement either
    unconfigured = coverage_of(frozenset({System.BILLING, System.ERP}),
                               {System.BILLING: "", System.ERP: ""}, {}, {}, False)
    assert unconfigured.unread == {System.SUPPORT: "not configured"}
    assert "agree" not in exceptions_view(unconfigured, 0).title


def test_a_rule_skipped_for_want_of_a_system_is_named_in_the_banner() -> None:
    have = frozenset({System.BILLING, System.SUPPORT})
    skipped = skipped_by_data(have)
    assert set(skipped) == {r for r, needs in RULE_SYSTEMS.items() if System.ERP in needs}
    cov = coverage_of(have, {System.BILLING: "", System.SUPPORT: "", System.ERP: ERP_DOWN}, skipped,
                      {s: NOW for s in have}, False)
    banner = exceptions_banner(cov, NOW)
    assert banner is not None
    text, tone = banner
    assert tone == "warn"
    assert f"Skipped — {len(skipped)} rules could not be checked (no data from erp)" in text
    for rule in skipped:
        assert rule in text
    assert exceptions_banner(ALL_READ, NOW) is None


# -- the window, state by state ---------------------------------------------------------------
def test_launch_says_loading_never_no_customers_while_data_is_read(qtbot: QtBot, window: MainWindow) -> None:
    pages = (window.customers_page, window.exceptions_page)
    assert [p.page_state for p in pages] == [PageState.LOADING] * 2
    window.on_refresh_started("auto")
    # the snapshot opened empty (first launch) while the first refresh runs
    window.set_state(state())
    assert [p.page_state for p in pages] == [PageState.LOADING] * 2
    assert window.customers_page.empty.title() == "Reading customers from billing…"
    assert "No customers" not in window.customers_page.empty.title()
    assert window.customers_page.empty.busy.isVisibleTo(window.customers_page.empty)
    assert not window.customers_page.empty.retry_button.isVisibleTo(window.customers_page.empty)
    # the refresh read everything: billing holds no customer and nothing disagrees
    window.set_state(state(with_data=tuple(System), refreshed={s: "" for s in System}))
    window.on_refresh_ended(None)
    assert window.customers_page.page_state is PageState.EMPTY
    assert window.customers_page.empty.title() == "No customers"
    assert window.exceptions_page.page_state is PageState.EMPTY
    assert window.exceptions_page.table_empty.title() == "No open exceptions — everything agrees"


def test_all_three_unreachable_every_page_says_so_and_f5_retries(qtbot: QtBot, window: MainWindow) -> None:
    window.activateWindow()
    qtbot.waitActive(window)
    window.on_refresh_started("auto")
    window.set_state(state(refreshed=ALL_DOWN))
    window.on_refresh_ended(None)
    customers, exceptions = window.customers_page, window.exceptions_page
    assert customers.page_state is PageState.NOT_LOADED
    assert customers.empty.title() == "Billing could not be read" and DOWN in customers.empty.text()
    assert exceptions.page_state is PageState.NOT_LOADED
    assert exceptions.table_empty.title() == "No system could be read"
    for why in ALL_DOWN.values():
        assert why in exceptions.table_empty.text()
    texts = exceptions.table_empty.title() + exceptions.table_empty.text() + exceptions.detail.empty.title()
    assert "agree" not in texts
    panel = customers.empty
    assert panel.retry_button.isVisibleTo(panel) and panel.systems_button.isVisibleTo(panel)
    asked: list[str] = []
    window.refresh_requested.connect(asked.append)
    # F5, as a key press on the window
    qtbot.keyClick(window, Qt.Key.Key_F5)
    assert asked == ["auto"]
    window.on_refresh_started("auto")
    assert customers.page_state is PageState.LOADING and exceptions.page_state is PageState.LOADING
    window.on_refresh_ended(None)
    assert customers.page_state is PageState.NOT_LOADED
    # the Retry button asks for a refresh; the Systems button shows the Systems page
    qtbot.mouseClick(panel.retry_button, Qt.MouseButton.LeftButton)
    assert asked == ["auto", "auto"]
    qtbot.mouseClick(panel.systems_button, Qt.MouseButton.LeftButton)
    assert window.stack.currentWidget() is window.systems_page


def test_only_the_erp_down_names_its_skipped_rules_and_never_says_agree(qtbot: QtBot, window: MainWindow) -> None:
    have = (System.BILLING, System.SUPPORT)
    window.set_state(state(rows=3, with_data=have,
                           refreshed={System.BILLING: "", System.SUPPORT: "", System.ERP: ERP_DOWN}))
    page = window.exceptions_page
    assert page.page_state is PageState.EMPTY
    assert page.table_empty.title() == "No open exceptions among the rules that ran"
    assert page.banner.isVisibleTo(page)
    for rule in ("invoice.missing_in_erp", "customer.unmapped_erp", "subscription.terms_mismatch"):
        assert rule in page.banner.text()
        assert page._rule_items[rule].text(1) == "skipped"
        assert "no data from erp" in page._rule_items[rule].toolTip(1)
        assert page.rule_combo.itemText(page.rule_combo.findData(rule)) == f"{rule} (skipped)"
    assert page._rule_items["entitlement.missing"].text(1) == "0"  # billing and support were read
    # customers: billing was read, so the list is loaded; the ERP column is "not loaded" with a banner
    customers = window.customers_page
    assert customers.page_state is PageState.LOADED
    assert "ERP has not been read" in customers.banner.text() and ERP_DOWN in customers.banner.text()
    # the ERP comes back: the banner goes, the counts come back, and now everything agrees
    window.set_state(state(rows=3, with_data=tuple(System), refreshed={s: "" for s in System}))
    assert not page.banner.isVisibleTo(page) and not customers.banner.isVisibleTo(customers)
    assert page._rule_items["invoice.missing_in_erp"].text(1) == "0"
    assert page.table_empty.title() == "No open exceptions — everything agrees"


def test_a_stale_system_is_named_with_the_age_of_its_data(qtbot: QtBot, window: MainWindow) -> None:
    window.set_state(state(rows=2, exceptions=2, with_data=tuple(System),
                           refreshed={System.BILLING: "", System.SUPPORT: "", System.ERP: ERP_DOWN}))
    page = window.exceptions_page
    assert page.page_state is PageState.LOADED
    assert page.banner.isVisibleTo(page)
    assert f"ERP was not read in the latest refresh ({ERP_DOWN}): its rules ran on data from 3 h ago." \
        in page.banner.text()


def test_the_customer_view_says_not_loaded_never_not_linked_for_a_system_never_read(
        qtbot: QtBot, window: MainWindow) -> None:
    world = World()
    world.customer("cus_1", "Acme GmbH")
    rows = world.rows()
    ages = {System.BILLING: NOW, System.ERP: None, System.SUPPORT: NOW}
    refreshed = {System.BILLING: "", System.SUPPORT: "", System.ERP: ERP_DOWN}
    timeline = world.timeline("cus_1", System.BILLING, System.SUPPORT)
    st = ConsoleState(rows, [], NOW, None, ages, row_filter=RowFilter(rows), refreshed=refreshed,
                      skipped_rules=skipped_by_data(frozenset({System.BILLING, System.SUPPORT})))
    window.set_state(st)
    page = window.customer_page
    page.show_customer(timeline, [], rows[0])
    window.customers_stack.setCurrentWidget(page)
    assert page.page_state is PageState.LOADED
    assert page.chips[System.ERP].value.text() == "not loaded"
    assert ERP_DOWN in page.chips[System.ERP].toolTip()
    assert page.chips[System.SUPPORT].value.text() != "not loaded"
    assert page.banner.isVisibleTo(page) and "ERP has not been read" in page.banner.text()


def test_systems_page_loading_then_loaded_then_not_loaded(qtbot: QtBot, window: MainWindow) -> None:
    assert window.systems_page.page_state is PageState.LOADING
    window.show_error("config.toml: [profiles.x] has no [billing] table")
    assert window.systems_page.page_state is PageState.NOT_LOADED
    assert "has no [billing] table" in window.systems_page.empty.text()
    assert window.customers_page.page_state is PageState.NOT_LOADED
    assert window.exceptions_page.page_state is PageState.NOT_LOADED


def test_coverage_is_plain_data() -> None:
    cov = Coverage(with_data=frozenset({System.BILLING}), unread={System.ERP: NOT_YET})
    assert not cov.refreshed and not cov.all_read and cov.pending(System.ERP)


# -- the local stores: pending actions and the audit log ----------------------------------------
async def test_pending_page_loading_not_loaded_retry_empty_loaded(qtbot: QtBot) -> None:
    service = FakeActionService([amount_mismatch()])
    broken = True

    def pending() -> list[OutboxItem]:
        if broken:
            raise OSError("database is locked")
        return list(service.outbox)

    service.pending = pending  # type: ignore[method-assign]
    adapter = ActionAdapter(service)  # type: ignore[arg-type]
    page = PendingActionsPage()
    qtbot.addWidget(page)
    try:
        page.bind(adapter)
        assert page.page_state is PageState.LOADING
        page.show()  # asks for the outbox
        await until(lambda: page.page_state is PageState.NOT_LOADED)
        assert page.empty.title() == "The pending actions could not be read"
        assert "database is locked" in page.empty.text()
        assert page.empty.retry_button.isVisibleTo(page.empty)
        assert not page.empty.systems_button.isVisibleTo(page.empty)  # a local file, not a system
        broken = False
        qtbot.mouseClick(page.empty.retry_button, Qt.MouseButton.LeftButton)
        await until(lambda: page.page_state is PageState.EMPTY)
        assert page.empty.title() == "No pending action"
        service.outbox = [outbox_item(1, ActionStatus.QUEUED)]
        adapter.refresh_pending()
        await until(lambda: page.page_state is PageState.LOADED)
    finally:
        page.hide()
        await adapter.aclose()


async def test_audit_page_says_why_it_could_not_read_the_log(qtbot: QtBot) -> None:
    adapter = ActionAdapter(FakeActionService([]), audit=None)  # type: ignore[arg-type]
    page = AuditPage()
    qtbot.addWidget(page)
    try:
        page.bind(adapter)
        assert page.page_state is PageState.LOADING
        page.show()
        await until(lambda: page.page_state is PageState.NOT_LOADED)
        assert page.empty.title() == "The audit log could not be read"
        assert "no audit log is open" in page.empty.text()
        page.set_entries([])
        assert page.page_state is PageState.EMPTY and page.empty.title() == "The audit log is empty"
        page.set_entries(sample_entries())
        assert page.page_state is PageState.LOADED
    finally:
        await adapter.aclose()
