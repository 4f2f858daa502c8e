"""Every window and dialog fits the screen it opens on, from a 1024×640 screen to a 2560×1600
one at 2× scale (1280×800 logical pixels) and a 2560×1440 one at 2× (1280×720): never larger
than the available area, Confirm, the reason and Cancel always inside the dialog (the content
scrolls instead), and a 188-character customer name never widens the window.

Each screen is a real Qt screen: the offscreen platform configured with that geometry
(``offscreen:configfile=…``) and ``QT_SCALE_FACTOR``, in a subprocess
(``tests/gui/screen_probe.py``), since the scale is fixed when the application starts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QPoint, Qt
from pytestqt.qtbot import QtBot

from tests.gui.fake_actions import FakeActionService, amount_mismatch, missing_in_erp, unmapped
from tests.gui.test_keyboard import make_window
from views.customers import COL_EMAIL, COL_HEALTH, COL_ID, COL_NAME, COL_PLAN, COLUMNS
from views.exceptions.model import Column

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.gui


def probe(tmp_path: Path, width: int, height: int, scale: int) -> list[dict[str, Any]]:
    config = tmp_path / f"screen-{width}x{height}.json"
    config.write_text(json.dumps({"screens": [{"name": "probe", "x": 0, "y": 0, "width": width, "height": height,
                                               "logicalDpi": 96, "logicalBaseDpi": 96, "dpr": 1}]}))
    env = {**os.environ, "QT_QPA_PLATFORM": f"offscreen:configfile={config}", "QT_SCALE_FACTOR": str(scale),
           "SYNCDESK_HOME": str(tmp_path / "home")}
    done = subprocess.run([sys.executable, "-m", "tests.gui.screen_probe"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert len(lines) >= 14, done.stdout
    return lines


@pytest.mark.parametrize(("width", "height", "scale"), [(2560, 1600, 2), (2560, 1440, 2), (1024, 640, 1)],
                         ids=["2560x1600@2x", "2560x1440@2x", "1024x640@1x"])
def test_every_window_and_dialog_fits_the_screen(tmp_path: Path, width: int, height: int, scale: int) -> None:
    logical = [width // scale, height // scale]
    lines = probe(tmp_path, width, height, scale)
    for line in lines:
        name = line["name"]
        assert line["screen"] == logical, line
        assert line["scale"] == scale, line
        # the window and its frame within the available area, and it could be made that small
        assert line["frame"][0] <= logical[0] and line["frame"][1] <= logical[1], line
        assert line["min"][0] <= logical[0] and line["min"][1] <= logical[1], line
        # what the operator must reach is inside the window, not past the screen's edge
        assert all(line["inside"].values()), (name, line["inside"])
        if name.startswith("fix:"):
            assert set(line["inside"]) == {"confirm", "reason", "cancel"}
    # the main window on every page and with the customer open: never wider than the screen
    windows = [line for line in lines if line["name"].startswith("window:")]
    assert len(windows) == 7  # the six pages and the customer
    assert all(w["width"] <= logical[0] for w in windows)
    customer = next(w for w in windows if w["name"] == "window:customer")
    assert customer["inside"] == {"customer_name": True}
    assert customer["width"] == windows[0]["width"]  # the long name did not widen it


# -- column widths -------------------------------------------------------------------------------
async def test_columns_are_sensible_at_1400_and_share_a_wide_screen(qtbot: QtBot) -> None:
    service = FakeActionService([amount_mismatch(), unmapped(), *[missing_in_erp(n) for n in range(10, 16)]])
    window, adapter = make_window(qtbot, service)
    try:
        window.resize(1400, 860)
        window.go_to_page(window.PAGES.index("Exceptions"))
        qtbot.waitUntil(lambda: window.exceptions_page.table.isVisible())
        table = window.exceptions_page.table
        header = table.horizontalHeader()
        summary = table.columnWidth(Column.SUMMARY)
        # "Summary" whole (never "ımma"), and room for a sentence
        assert summary >= header.fontMetrics().horizontalAdvance("Summary") + 24
        assert summary >= 250, summary
        shown = [c for c in Column if not table.isColumnHidden(c)]
        assert sum(table.columnWidth(c) for c in shown) <= table.viewport().width() + 1  # no sideways scroll
        # the columns after a hidden one sit right after the shown ones (a hidden column takes no room)
        assert header.sectionPosition(Column.AGE) == sum(table.columnWidth(c) for c in shown if c < Column.AGE)
        assert header.length() == sum(table.columnWidth(c) for c in shown)
        # a wide window: every column grows, not only one
        window.go_to_page(window.PAGES.index("Customers"))
        customers = window.customers_page.table
        before = {c: customers.columnWidth(c) for c in range(len(COLUMNS))}
        window.resize(2560, 1300)
        qtbot.waitUntil(lambda: customers.columnWidth(COL_EMAIL) > before[COL_EMAIL])
        after = {c: customers.columnWidth(c) for c in range(len(COLUMNS))}
        assert all(after[c] > before[c] for c in (COL_ID, COL_NAME, COL_EMAIL, COL_PLAN)), (before, after)
        assert after[COL_HEALTH] - before[COL_HEALTH] < after[COL_NAME] - before[COL_NAME]
    finally:
        await adapter.aclose()


async def test_a_column_the_operator_sized_keeps_its_width(qtbot: QtBot) -> None:
    service = FakeActionService([amount_mismatch(), missing_in_erp(10)])
    window, adapter = make_window(qtbot, service)
    try:
        window.resize(1400, 860)
        window.go_to_page(window.PAGES.index("Exceptions"))
        table = window.exceptions_page.table
        header = table.horizontalHeader()
        qtbot.waitUntil(table.isVisible)
        # a drag of the Rule column's right edge: press on the header, the width changes, release
        edge = header.sectionViewportPosition(Column.RULE) + header.sectionSize(Column.RULE) - 1
        qtbot.mousePress(header.viewport(), Qt.MouseButton.LeftButton, pos=QPoint(edge, header.height() // 2))
        table.setColumnWidth(Column.RULE, 321)
        qtbot.mouseRelease(header.viewport(), Qt.MouseButton.LeftButton, pos=QPoint(edge + 40, header.height() // 2))
        window.resize(1900, 1000)
        qtbot.waitUntil(lambda: table.viewport().width() > 1400)
        assert table.columnWidth(Column.RULE) == 321  # the operator's width, not refitted
    finally:
        await adapter.aclose()
