"""Column headers are never cut (issue G6, item 6: "Summary" once showed as "ımma"), and the
customer table's Health column is in sight, at the size the window opens at (1400 × 860).

"Never cut" is measured the way Qt lays a header section out: each section is at least as wide
as ``QHeaderView.sectionSizeFromContents`` — its title's text width in the header's font, the
style's margins and the room of the sort arrow — so the title is drawn whole whichever column
the table is sorted by. The window is a real MainWindow fed a ConsoleState built from a real
snapshot (tests/worlds.py), 60 customers (a vertical scroll bar takes its share of the width)
and their exceptions.
"""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QTableView
from pytestqt.qtbot import QtBot

from services.core.domain import System
from services.core.overview import RowFilter
from services.core.timeline import TimelineIndex
from tests.gui.fake_actions import amount_mismatch, missing_in_erp, tier_mismatch, unmapped
from tests.worlds import NOW, World
from views.adapters import ConsoleState
from views.customers import COL_HEALTH, COLUMNS
from views.main_window import MainWindow

pytestmark = pytest.mark.gui


@pytest.fixture
def window(qtbot: QtBot) -> MainWindow:
    world = World(60)
    exceptions = [amount_mismatch(n) for n in range(1, 30)] + [missing_in_erp(n) for n in range(30, 40)] + [
        unmapped(), tier_mismatch(41)]
    rows = world.rows()
    state = ConsoleState(rows, exceptions, NOW, TimelineIndex(world.snapshot()), {s: NOW for s in System},
                         row_filter=RowFilter(rows), refreshed={s: "" for s in System})
    w = MainWindow()
    qtbot.addWidget(w)
    w.resize(MainWindow.PREFERRED_SIZE)
    w.set_state(state)
    w.show()
    qtbot.waitExposed(w)
    return w


def cut_titles(table: QTableView) -> list[str]:
    """The titles of the shown sections narrower than their header needs, with both widths."""
    header = table.horizontalHeader()
    model = table.model()
    cut = []
    for col in range(header.count()):
        if header.isSectionHidden(col):
            continue
        title = str(model.headerData(col, Qt.Orientation.Horizontal, Qt.ItemDataRole.DisplayRole))
        needed = header.sectionSizeFromContents(col).width()
        text = header.fontMetrics().horizontalAdvance(title)
        assert needed >= text  # what is measured holds the title's text
        if header.sectionSize(col) < needed:
            cut.append(f"{title!r}: {header.sectionSize(col)} px < {needed} px")
    return cut


def show_page(qtbot: QtBot, window: MainWindow, page: int, table: QTableView) -> None:
    window.go_to_page(page)
    qtbot.waitUntil(lambda: table.isVisible() and table.viewport().width() > 0)


def test_no_customers_header_is_cut_and_health_is_in_sight(qtbot: QtBot, window: MainWindow) -> None:
    table = window.customers_page.table
    show_page(qtbot, window, window.PAGES.index("Customers"), table)
    assert table.model().rowCount() == 60
    qtbot.waitUntil(lambda: table.verticalScrollBar().isVisible())  # 60 rows: the scroll bar takes room too
    assert cut_titles(table) == []
    header = table.horizontalHeader()
    assert COLUMNS[COL_HEALTH].title == "Health" and not header.isSectionHidden(COL_HEALTH)
    assert table.horizontalScrollBar().value() == 0
    right = header.sectionViewportPosition(COL_HEALTH) + header.sectionSize(COL_HEALTH)
    assert header.sectionViewportPosition(COL_HEALTH) >= 0 and right <= table.viewport().width(), (
        f"Health ends at {right} px, the table shows {table.viewport().width()} px")


def test_no_exceptions_header_is_cut(qtbot: QtBot, window: MainWindow) -> None:
    table = window.exceptions_page.table
    show_page(qtbot, window, window.PAGES.index("Exceptions"), table)
    assert table.model().rowCount() > 0
    assert cut_titles(table) == []
    # the columns the header's menu hides by default are not cut either once shown
    for col in range(table.horizontalHeader().count()):
        table.setColumnHidden(col, False)
    assert cut_titles(table) == []
