"""Export of the current view (File > Export the view…, and every table's right-click menu): the
file holds what the table shows — its shown columns in the order they are shown, its rows in
their order and filter — as CSV (formula-like cells made inert) or XLSX (read back with openpyxl:
every cell a string, never a formula); the save dialog opens in the documents folder; the write
runs in a worker while the UI thread keeps ticking (100,000 rows, measured with a QTimer
heartbeat), reports progress, and Cancel leaves no file.

The console's qasync loop runs the flows (``tests/gui/live_loop.py``); each wait is on a condition
with a generous deadline.
"""

from __future__ import annotations

import asyncio
import csv
import gc
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from openpyxl import load_workbook
from PySide6.QtCore import QStandardPaths, Qt, QTimer
from PySide6.QtWidgets import QFileDialog, QTableView
from pytestqt.qtbot import QtBot

from app.runtime import tune_interpreter
from services.actions.model import ActionStatus
from services.core.overview import CustomerRow
from services.core.text_safety import csv_cell
from services.store.exports import PROGRESS_EVERY, ExportFormat
from tests.bench.report import bench_line
from tests.gui.fake_actions import (
    FakeActionService,
    amount_mismatch,
    missing_in_erp,
    outbox_item,
    sample_entries,
    tier_mismatch,
)
from tests.gui.live_loop import run_qasync
from tests.gui.test_keyboard import console_state
from views.action_adapter import ActionAdapter
from views.actions.pending import PendingActionsPage
from views.audit_page import AuditPage
from views.customers import COL_EMAIL, COL_NAME, CustomersPage
from views.exceptions.model import Column
from views.main_window import MainWindow
from views.table_export import ViewExporter, snapshot_table

pytestmark = pytest.mark.gui

#: a generous bound on one wait (a 100,000-row workbook takes ~10 s on a loaded 2-core machine)
DEADLINE = 120.0
#: the target for the longest the UI thread goes without running its heartbeat while an export
#: runs (a frame at 4 Hz would still be drawn): reported by the BENCH line, a benchmark figure
STALL_TARGET_S = 0.25
#: what the test holds: no gap a user would see as a freeze (an export on the UI thread gives no
#: heartbeat at all until it ends: the ticks *during* the export below catch it however fast)
FREEZE_LIMIT_S = 1.0


async def until(condition: Callable[[], bool], what: str, deadline: float = DEADLINE) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    while not condition():
        if loop.time() > end:
            raise AssertionError(f"waited {deadline:.0f} s for {what}")
        await asyncio.sleep(0.01)


@pytest.fixture
def console_interpreter() -> Iterator[None]:
    """The console's interpreter settings (``app.runtime.tune_interpreter``: the GIL switch
    interval and the collector's thresholds), for this test only; what it froze is unfrozen."""
    before, thresholds = sys.getswitchinterval(), gc.get_threshold()
    tune_interpreter()
    yield
    sys.setswitchinterval(before)
    gc.set_threshold(*thresholds)
    gc.unfreeze()


def shown_texts(table: QTableView) -> tuple[list[str], list[list[str]]]:
    """What the table shows, read cell by cell through Qt: the shown columns' titles in their
    shown order, and each row's cells in that order."""
    model = table.model()
    header = table.horizontalHeader()
    columns = [header.logicalIndex(v) for v in range(header.count())]
    columns = [c for c in columns if not table.isColumnHidden(c)]
    titles = [str(model.headerData(c, Qt.Orientation.Horizontal)) for c in columns]
    rows = [[str(model.index(r, c).data() or "") for c in columns] for r in range(model.rowCount())]
    return titles, rows


def read_csv(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return list(csv.reader(handle))


def read_xlsx(path: Path) -> list[list[str]]:
    sheet = load_workbook(path).active
    assert sheet is not None
    out = []
    for row in sheet.iter_rows():
        assert all(c.data_type == "s" for c in row if c.value is not None), [(c.value, c.data_type) for c in row]
        out.append(["" if c.value is None else str(c.value) for c in row])
    return out


def open_window(qtbot: QtBot) -> tuple[MainWindow, ActionAdapter, FakeActionService]:
    fake = FakeActionService([amount_mismatch(), tier_mismatch(30), *[missing_in_erp(n) for n in range(10, 16)]])
    fake.outbox = [outbox_item(n, ActionStatus.QUEUED if n % 2 else ActionStatus.FAILED, "timeout")
                   for n in range(1, 7)]
    window = MainWindow()
    qtbot.addWidget(window)
    adapter = ActionAdapter(fake)  # type: ignore[arg-type]
    window.attach_actions(adapter)
    window.set_state(console_state(fake))
    assert isinstance(window.pending_page, PendingActionsPage) and isinstance(window.audit_page, AuditPage)
    window.pending_page.set_items(fake.outbox)
    window.audit_page.set_entries(sample_entries())
    window.resize(1280, 800)
    window.show()
    return window, adapter, fake


def documents_dir() -> Path:
    """The user's documents folder (else the home folder), found here independently."""
    documents = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.DocumentsLocation)
    return Path(documents) if documents and Path(documents).is_dir() else Path.home()


async def save_as(window: MainWindow, path: Path) -> QFileDialog:
    """The save dialog the command opened: in the documents folder; choose ``path`` and save."""
    dialog = window.exporter.file_dialog
    assert isinstance(dialog, QFileDialog) and dialog.isVisible()
    assert dialog.windowModality() == Qt.WindowModality.WindowModal  # a sheet: open(), no nested loop
    assert Path(dialog.directory().absolutePath()) == documents_dir()
    dialog.selectFile(str(path))
    dialog.accept()
    await until(path.exists, f"{path.name} to be written")
    await until(lambda: not window.exporter.adapter.running, "the export to end")
    return dialog


# -- what the file holds --------------------------------------------------------------------------
def test_the_exceptions_view_is_exported_as_shown_to_csv_and_xlsx(qtbot: QtBot, qloop: asyncio.AbstractEventLoop,
                                                                   tmp_path: Path) -> None:
    async def flow() -> None:
        window, adapter, _fake = open_window(qtbot)
        try:
            window.go_to_page(window.PAGES.index("Exceptions"))
            page = window.exceptions_page
            table = page.table
            # the operator's view: a filter, a sort, a hidden column shown, two columns swapped
            page.search_edit.setText("in_1")
            table.sortByColumn(Column.OBJECT, Qt.SortOrder.DescendingOrder)
            table.setColumnHidden(Column.FIRST_SEEN, False)
            table.horizontalHeader().moveSection(table.horizontalHeader().visualIndex(Column.SUMMARY), 0)
            titles, rows = shown_texts(table)
            assert titles[0] == "Summary" and "First seen (UTC)" in titles and "Systems" not in titles
            assert len(rows) == 7 and [r[titles.index("Object")] for r in rows] == sorted(
                (r[titles.index("Object")] for r in rows), reverse=True)

            # File > Export the view as CSV…
            window.export_csv_action.trigger()
            await save_as(window, tmp_path / "exceptions.csv")
            assert read_csv(tmp_path / "exceptions.csv") == [titles, *rows]
            assert window.statusBar().currentMessage() == f"Exported 7 rows to {tmp_path / 'exceptions.csv'}"

            # the right-click menu: Export this view as Excel workbook…
            menu = table.table_menu.build(page.model.index(0, Column.RULE))  # type: ignore[attr-defined]
            actions = {a.text(): a for a in menu.actions()}
            actions["Export this view as Excel workbook…"].trigger()
            await save_as(window, tmp_path / "exceptions.xlsx")
            assert read_xlsx(tmp_path / "exceptions.xlsx") == [titles, *rows]
        finally:
            await adapter.aclose()
            await window.exporter.adapter.aclose()
            window.close()

    run_qasync(qloop, flow())


def test_every_table_page_exports_its_view(qtbot: QtBot, qloop: asyncio.AbstractEventLoop, tmp_path: Path) -> None:
    async def flow() -> None:
        window, adapter, _fake = open_window(qtbot)
        try:
            # customers: a search, sorted by e-mail descending; formula-like names made inert in the CSV
            customers = window.customers_page
            rows = [CustomerRow(f"cus_{i}", name, f"{chr(ord('a') + i)}@x.test", erp_party=str(i), support_org=f"o{i}",
                                status="active", plan="pro", tier="premium", open_exceptions=i)
                    for i, name in enumerate(["Acme", "=HYPERLINK(\"http://evil.test\")", "+49 30 1234", "Beta AG",
                                              "@Gamma", "Delta"])]
            for r in rows:
                r.search = f"{r.customer_id}\x00{r.name}\x00{r.email}".casefold()
            customers.set_rows(rows)
            customers.search_edit.setText("cus_")
            customers.apply_filter()
            customers.table.sortByColumn(COL_EMAIL, Qt.SortOrder.DescendingOrder)
            window.go_to_page(window.PAGES.index("Customers"))
            titles, shown = shown_texts(customers.table)
            assert [r[COL_EMAIL] for r in shown] == ["f@x.test", "e@x.test", "d@x.test", "c@x.test", "b@x.test",
                                                     "a@x.test"]
            window.export_view("csv")
            await save_as(window, tmp_path / "customers.csv")
            written = read_csv(tmp_path / "customers.csv")
            assert written[0] == titles
            names = [r[COL_NAME] for r in written[1:]]
            assert names == ["Delta", "'@Gamma", "Beta AG", "'+49 30 1234", "'=HYPERLINK(\"http://evil.test\")", "Acme"]
            assert written[1:] == [[csv_cell(c) for c in r] for r in shown]

            # pending actions: filtered to the failed ones (a proxy over the model), newest first
            pending = window.pending_page
            assert isinstance(pending, PendingActionsPage)
            window.go_to_page(window.PAGES.index("Pending actions"))
            pending.set_status_filter("failed")
            titles, shown = shown_texts(pending.table)
            assert len(shown) == 3
            window.export_view("xlsx")
            await save_as(window, tmp_path / "pending.xlsx")
            assert read_xlsx(tmp_path / "pending.xlsx") == [titles, *shown]

            # the audit log: what the table shows (its loaded entries), via its right-click menu
            audit = window.audit_page
            assert isinstance(audit, AuditPage)
            window.go_to_page(window.PAGES.index("Audit log"))
            titles, shown = shown_texts(audit.table)
            menu = audit.table.table_menu.build(audit.model.index(0, 0))  # type: ignore[attr-defined]
            next(a for a in menu.actions() if a.text() == "Export this view as CSV…").trigger()
            await save_as(window, tmp_path / "audit.csv")
            assert read_csv(tmp_path / "audit.csv") == [titles, *shown]

            # the Systems page has no table to export: the command says so
            window.go_to_page(window.PAGES.index("Systems"))
            assert window.export_view("csv") is None
            assert "no table to export" in window.statusBar().currentMessage()
        finally:
            await adapter.aclose()
            await window.exporter.adapter.aclose()
            window.close()

    run_qasync(qloop, flow())


# -- 100,000 rows: progress, a responsive UI thread, cancel ------------------------------------------
def many_rows(n: int) -> list[CustomerRow]:
    rows = []
    for i in range(n):
        row = CustomerRow(f"cus_{i:06d}", f"Company {i:06d} {'GmbH' if i % 3 else 'Ltd'}", f"ops{i}@c{i % 97}.example",
                          erp_party=str(i) if i % 10 else None, support_org=f"o{i}" if i % 7 else None,
                          status="active", plan="pro_monthly", tier="premium", open_exceptions=i % 13)
        row.search = f"{row.customer_id}\x00{row.name}".casefold()
        rows.append(row)
    return rows


def test_a_hundred_thousand_row_export_keeps_the_ui_thread_responsive_and_can_be_cancelled(
        qtbot: QtBot, qloop: asyncio.AbstractEventLoop, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        console_interpreter: None) -> None:
    n = 100_000
    page = CustomersPage()
    qtbot.addWidget(page)
    page.resize(1200, 700)
    page.set_rows(many_rows(n))
    gc.freeze()  # as the console does when it publishes a snapshot (views.adapters)
    page.table.sortByColumn(COL_NAME, Qt.SortOrder.DescendingOrder)
    page.show()
    messages: list[str] = []
    exporter = ViewExporter(page, messages.append)
    figures: dict[str, float] = {}

    async def flow() -> None:
        beats: list[float] = []
        heartbeat = QTimer()
        heartbeat.setInterval(5)
        heartbeat.timeout.connect(lambda: beats.append(time.perf_counter()))
        progress: list[tuple[int, int]] = []
        exporter.adapter.progress.connect(lambda done, total: progress.append((done, total)))
        try:
            for fmt in ("csv", "xlsx"):
                target = tmp_path / f"customers.{fmt}"
                await asyncio.sleep(0.05)
                heartbeat.start()
                await until(lambda: len(beats) >= 3, "the heartbeat to tick")
                start = time.perf_counter()
                exporter.write(snapshot_table(page.table, "customers"), str(target), ExportFormat(fmt))
                await until(lambda: not exporter.adapter.running, f"the {fmt} export to end")
                end = time.perf_counter()
                took = end - start
                heartbeat.stop()
                ticks = [b for b in beats if start <= b <= end]
                gaps = [later - earlier for earlier, later in zip([start, *ticks], ticks, strict=False)]
                figures[f"{fmt}_s"] = took
                figures[f"{fmt}_stall_max_ms"] = 1000 * max(gaps)
                assert messages[-1] == f"Exported {n:,} rows to {target}"
                # the UI thread kept running while the export ran: heartbeats during it, never a freeze
                assert len(ticks) >= 2, (fmt, len(ticks), took)
                assert max(gaps) < FREEZE_LIMIT_S, (fmt, max(gaps), took)
                beats.clear()
            # progress: every PROGRESS_EVERY rows, out of n, up to n (for each format)
            assert (PROGRESS_EVERY, n) in progress and progress.count((n, n)) == 2
            # the files hold the view: the same order (names descending), every row
            names = [page.model.row_at(r).name for r in (0, 1, n - 1)]
            written = read_csv(tmp_path / "customers.csv")
            assert len(written) == n + 1 and [written[r][COL_NAME] for r in (1, 2, n)] == names
            sheet = load_workbook(tmp_path / "customers.xlsx", read_only=True).active
            assert sheet is not None
            cells = [[c.value for c in row] for row in sheet.iter_rows(min_row=2, max_row=3)]
            assert [r[COL_NAME] for r in cells] == names[:2]

            # Cancel (the status bar's button) after the first progress report: nothing written
            target = tmp_path / "cancelled.xlsx"
            progress.clear()
            exporter.write(snapshot_table(page.table, "customers"), str(target), ExportFormat.XLSX)
            await until(lambda: bool(progress), "the first progress report")
            assert exporter.status.isVisible() and "of 100,000 rows" in exporter.status.label.text()
            exporter.status.cancel_button.click()
            await until(lambda: not exporter.adapter.running, "the export to stop")
            assert messages[-1] == f"Export cancelled: {target} was not written."
            assert not exporter.status.isVisible()
            assert not target.exists() and not target.with_name(target.name + ".part").exists()
            assert max(done for done, _total in progress) < n
        finally:
            heartbeat.stop()
            await exporter.adapter.aclose()

    run_qasync(qloop, flow())
    with capsys.disabled():
        print("\n" + bench_line("test_export_view.hundred_thousand_rows", {"rows": n},
                                figures, {"csv_stall_max_ms": ("<", 1000 * STALL_TARGET_S),
                                          "xlsx_stall_max_ms": ("<", 1000 * STALL_TARGET_S)}))
