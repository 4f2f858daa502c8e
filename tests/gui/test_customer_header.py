"""The customer page's header says what the customer has now and who it is in each system, as
the CLI's ``timeline`` header does (issue G6, item 3): the current plan with its quantity and
status, the support tier, the billing customer id, the ERP party id and code, the support
organization id — "not linked" where a system holds none, "not loaded" where a system was never
read (and what was read replaces it when a refresh brings the system in). Plain text on one
line, elided, whole in its tooltip and copyable.

The window is a real MainWindow fed a ConsoleState built from a real snapshot (tests/worlds.py)
as the engine adapter builds it; the customer is opened the way a user opens it.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from services.core.domain import ExternalRef, Plan, System, Tier
from services.core.overview import RowFilter, build_customer_rows
from services.core.timeline import TimelineIndex
from tests.worlds import NOW, World
from views.adapters import ConsoleState
from views.coverage import skipped_by_data
from views.customer_view import CustomerPage
from views.main_window import MainWindow

pytestmark = pytest.mark.gui

B, E, S = System.BILLING, System.ERP, System.SUPPORT
SUPPORT_DOWN = "support unavailable: timed out"


def blue_world(quantity: int = 7) -> World:
    """Blue Robotics on Pro × ``quantity`` (billing and the ERP agree), support tier premium."""
    world = World().customer("cus_blue", "Blue Robotics GmbH", plan="pro_monthly", tier=Tier.PREMIUM)
    world.b.subscriptions["sub_cus_blue"].quantity = quantity
    world.e.subscriptions["scus_blue"].quantity = quantity
    return world


def console_state(world: World, systems: Iterable[System] = (B, E, S),
                  unread: dict[System, str] | None = None) -> ConsoleState:
    """What the engine adapter hands the window after a refresh that read ``systems`` (the
    others never read: ``unread`` says why)."""
    read = tuple(systems)
    snapshot = world.snapshot(*read)
    rows = build_customer_rows(snapshot, world.exceptions)
    ages = {s: (NOW - timedelta(minutes=5) if s in read else None) for s in System}
    refreshed = {s: "" for s in read} | (unread or {})
    return ConsoleState(rows, list(world.exceptions), NOW, TimelineIndex(snapshot), ages,
                        row_filter=RowFilter(rows), refreshed=refreshed,
                        skipped_rules=skipped_by_data(frozenset(read)))


@pytest.fixture
def window(qtbot: QtBot) -> MainWindow:
    w = MainWindow()
    qtbot.addWidget(w)
    w.resize(MainWindow.PREFERRED_SIZE)  # the size the window opens at on a large enough screen
    w.show()
    qtbot.waitExposed(w)
    return w


def open_customer(qtbot: QtBot, window: MainWindow, customer_id: str) -> CustomerPage:
    window.open_customer(customer_id)
    page = window.customer_page
    qtbot.waitUntil(lambda: page.isVisible() and page.customer_id() == customer_id)
    return page


def chip_texts(page: CustomerPage) -> dict[System, str]:
    return {s: chip.value.text() for s, chip in page.chips.items()}


def test_the_header_shows_plan_quantity_tier_and_each_systems_identity(qtbot: QtBot, window: MainWindow) -> None:
    world = blue_world(quantity=7)
    state = console_state(world)
    window.set_state(state)
    page = open_customer(qtbot, window, "cus_blue")

    assert page.name_label.text() == "Blue Robotics GmbH"
    assert page.id_label.text() == "cus_blue"
    text = page.state_label.text()
    assert text == "plan Pro (pro_monthly) × 7, active · support tier premium"
    timeline = state.timeline("cus_blue")
    assert timeline is not None and text == timeline.state.summary()  # the CLI's `timeline` header says the same
    assert chip_texts(page) == {B: "cus_blue", E: "party pcus_blue · code cus_blue", S: "org ocus_blue"}
    # at the default size the whole line is shown, and it is in the header above the timeline
    assert page.state_label.isVisible() and page.state_label.elided() == text
    assert page.state_label.mapTo(page, page.state_label.rect().topLeft()).y() < \
        page.timeline_view.mapTo(page, page.timeline_view.rect().topLeft()).y()


def test_a_customer_without_subscription_or_organization_says_so(qtbot: QtBot, window: MainWindow) -> None:
    world = World().customer("cus_solo", "Solo Studio", support=False)
    del world.b.subscriptions["sub_cus_solo"]
    del world.e.subscriptions["scus_solo"]
    window.set_state(console_state(world))
    page = open_customer(qtbot, window, "cus_solo")
    assert page.state_label.text() == "no subscription · no support organization"
    assert chip_texts(page) == {B: "cus_solo", E: "party pcus_solo · code cus_solo", S: "not linked"}
    assert not page.chips[S].linked and page.chips[B].linked and page.chips[E].linked


def test_a_system_never_read_says_not_loaded_until_a_refresh_reads_it(qtbot: QtBot, window: MainWindow) -> None:
    world = blue_world(quantity=4)
    window.set_state(console_state(world, (B, E), {S: SUPPORT_DOWN}))
    page = open_customer(qtbot, window, "cus_blue")
    # support was never read: its tier and organization are unknown, not absent
    assert page.state_label.text() == "plan Pro (pro_monthly) × 4, active · support tier not loaded"
    assert page.chips[S].value.text() == "not loaded" and SUPPORT_DOWN in page.chips[S].toolTip()

    # the next refresh reads support: the header shows what it holds, the customer still open
    window.set_state(console_state(world))
    assert window.customers_stack.currentWidget() is page
    assert page.state_label.text() == "plan Pro (pro_monthly) × 4, active · support tier premium"
    assert page.chips[S].value.text() == "org ocus_blue"

    # billing never read: the plan is unknown, not "no subscription"
    window.set_state(console_state(world, (E, S), {B: "billing unavailable: HTTP 401"}))
    assert page.state_label.text() == "plan not loaded · support tier premium"
    assert page.chips[B].value.text() == "not loaded"


def test_a_long_plan_name_is_elided_whole_in_its_tooltip_and_copyable(qtbot: QtBot, window: MainWindow) -> None:
    long_name = "Pro " + "with every add-on the sales team could think of, " * 12 + "end"
    world = blue_world(quantity=3)
    world.b.plans["price_pro"] = Plan(ExternalRef(B, "price", "price_pro"), "pro_monthly", long_name,
                                      tier=Tier.PREMIUM)
    window.resize(1024, 640)  # the smallest window the console supports
    window.set_state(console_state(world))
    page = open_customer(qtbot, window, "cus_blue")
    label = page.state_label
    whole = f"plan {long_name} (pro_monthly) × 3, active · support tier premium"
    assert label.text() == whole
    qtbot.waitUntil(lambda: label.elided() != whole)  # laid out at its width: cut with "…"
    assert label.elided().endswith("…") and whole.startswith(label.elided()[:-1])
    assert label.toolTip() == whole
    assert window.width() <= 1024, "a long plan name never widens the window"
    # the keyboard reaches it (Tab) and Ctrl+C copies the whole text
    QApplication.clipboard().clear()
    label.setFocus(Qt.FocusReason.TabFocusReason)
    qtbot.waitUntil(label.hasFocus)
    qtbot.keyClick(label, Qt.Key.Key_C, Qt.KeyboardModifier.ControlModifier)
    assert QApplication.clipboard().text() == whole
    assert label in page.focus_chain()
