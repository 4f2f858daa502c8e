"""GUI tests for the Audit log page: filters, table and detail, verify and export through the
adapter (a real audit log in a temp SQLite database).
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QFileDialog
from pytestqt.qtbot import QtBot

from services.core.redaction import register_secret
from services.store.audit import AuditFilter, AuditLog, VerifyResult
from services.store.storage import Storage
from tests.gui.fake_actions import HOSTILE, NOW, SECRET, FakeActionService, sample_entries, settle, shot, until
from views.action_adapter import ActionAdapter
from views.audit_page import AuditPage, entry_detail, request_summary

pytestmark = pytest.mark.gui


# -- the audit page ----------------------------------------------------------------------------------


def test_audit_filters_build_the_filter(qtbot: QtBot) -> None:
    page = AuditPage(today=NOW)
    qtbot.addWidget(page)
    seen: list[AuditFilter] = []
    page.filter_changed.connect(seen.append)
    assert page.current_filter() == AuditFilter()
    page.operator_edit.setText(" alice ")
    page.customer_edit.setText("cus_1")
    page.system_combo.setCurrentIndex(page.system_combo.findData("erp"))
    page.kind_combo.setCurrentIndex(page.kind_combo.findData("correct"))
    page.outcome_combo.setCurrentIndex(page.outcome_combo.findData("failed"))
    page.since_edit.set_value(page.since_edit.edit.date().fromString("2025-02-01", "yyyy-MM-dd"))
    page.until_edit.set_value(page.until_edit.edit.date().fromString("2025-02-28", "yyyy-MM-dd"))
    page.text_edit.setText("rpc")
    page.emit_filter()
    assert seen[-1] == AuditFilter(operator="alice", customer_id="cus_1", target_system="erp",
                                   action_kind="correct", outcome="failed",
                                   since=datetime(2025, 2, 1, tzinfo=UTC),
                                   until=datetime(2025, 2, 28, 23, 59, 59, 999999, tzinfo=UTC), text="rpc")
    page.clear_filters()
    assert seen[-1] == AuditFilter()


def test_audit_table_detail_and_request_summary(qtbot: QtBot, tmp_path: Path) -> None:
    page = AuditPage(today=NOW)
    qtbot.addWidget(page)
    page.resize(1400, 720)
    entries = sample_entries()
    page.set_entries(entries)
    assert page.model.rowCount() == 6
    assert page.model.index(0, 0).data() == "6"
    assert page.model.index(0, 9).data() == "POST /tryton/rpc/ (+1 more)"
    assert page.model.index(0, 2).data() == HOSTILE  # plain text, as typed
    assert page.model.index(2, 10).data() == "ERP said no"
    assert request_summary(entries[0]) == "POST /tryton/rpc/ (+1 more)"
    assert page.select_seq(4)
    detail = page.detail.toPlainText()
    assert "Entry 4" in detail and "Error: ERP said no" in detail
    assert '"total": "90.00"' in detail and "Hash:" in detail and f"{4:064x}" in detail
    assert "6 entries shown" in page.count_label.text()
    shot(page, tmp_path, "audit-page")


def test_audit_detail_scrubs_secrets(qtbot: QtBot) -> None:
    register_secret(SECRET)
    entry = sample_entries()[0]
    entry.error = f"401 with {SECRET}"
    assert SECRET not in entry_detail(entry)


def make_log(tmp_path: Path) -> tuple[Storage, AuditLog]:
    storage = Storage(f"sqlite:///{tmp_path / 'audit.db'}")
    log = AuditLog(storage, head_file=tmp_path / "audit.db.head")
    for e in reversed(sample_entries()):
        e.seq, e.prev_hash, e.hash = 0, "", ""
        log.append(e)
    return storage, log


def bound_audit_page(qtbot: QtBot, adapter: ActionAdapter) -> AuditPage:
    page = AuditPage(today=NOW)
    qtbot.addWidget(page)
    page.bind(adapter)
    return page


async def test_audit_page_loads_verifies_and_exports(qtbot: QtBot, service: FakeActionService,
                                                     tmp_path: Path) -> None:
    storage, log = make_log(tmp_path)
    adapter = ActionAdapter(service, log)  # type: ignore[arg-type]
    try:
        page = bound_audit_page(qtbot, adapter)
        page.resize(1400, 720)
        page.show()  # the first show loads
        await asyncio.wait_for(until(lambda: page.model.rowCount() == 6), 5)
        page.outcome_combo.setCurrentIndex(page.outcome_combo.findData("failed"))
        await asyncio.wait_for(until(lambda: page.model.rowCount() == 1), 5)
        assert page.model.entry_at(0).seq == 4
        # verify: intact
        page.verify_button.click()
        assert not page.verify_button.isEnabled()
        await asyncio.wait_for(until(lambda: page.last_verify is not None), 5)
        assert page.verify_label.tone == "ok" and "Intact: 6 entries verified" in page.verify_label.text()
        assert page.verify_button.isEnabled()
        shot(page, tmp_path, "audit-verify-ok")
        # export the filtered log as JSON through the file dialog: shown with QDialog.open(), so
        # the call returns at once (no nested event loop; we are past it) and the dialog blocks
        # only the window it belongs to (window-modal), never the whole application
        page.format_combo.setCurrentIndex(page.format_combo.findData("json"))
        dialog = page.choose_export_file()
        assert dialog.isVisible()
        assert dialog.windowModality() is Qt.WindowModality.WindowModal
        assert dialog.parentWidget() is page and page.file_dialog is dialog
        assert dialog.acceptMode() is QFileDialog.AcceptMode.AcceptSave
        assert dialog.defaultSuffix() == "json" and dialog.nameFilters() == ["JSON files (*.json)"]
        target = tmp_path / "out.json"
        dialog.fileSelected.emit(str(target))
        dialog.close()
        await asyncio.wait_for(until(lambda: page.export_button.isEnabled() and target.exists()), 5)
        data = json.loads(target.read_text())
        assert [d["seq"] for d in data] == [4]
        assert f"Exported to {target}" in page.verify_label.text()
        page.export_to(str(tmp_path / "all.csv"), "csv")
        await asyncio.wait_for(until(lambda: (tmp_path / "all.csv").exists()), 5)
        assert (tmp_path / "all.csv").read_text().startswith("seq,at,operator")
        # tamper with entry 3: verify names it in red and selects it
        with storage.engine.begin() as conn:
            conn.exec_driver_sql("UPDATE audit_entry SET reason = 'edited' WHERE seq = 3")
        page.clear_filters()
        await asyncio.wait_for(until(lambda: page.model.rowCount() == 6), 5)
        page.last_verify = None
        page.verify_button.click()
        await asyncio.wait_for(until(lambda: page.last_verify is not None), 5)
        assert page.verify_label.tone == "bad"
        assert "entry 3 was altered" in page.verify_label.text()
        assert "First bad entry: 3" in page.verify_label.text()
        assert page.selected_entry() is not None and page.selected_entry().seq == 3
        shot(page, tmp_path, "audit-verify-bad")
    finally:
        await adapter.aclose()
        storage.close()


async def test_audit_verify_reports_progress_and_can_be_stopped(qtbot: QtBot, service: FakeActionService,
                                                                 tmp_path: Path) -> None:
    storage, log = make_log(tmp_path)
    adapter = ActionAdapter(service, log)  # type: ignore[arg-type]
    try:
        page = bound_audit_page(qtbot, adapter)
        page.show()
        progress: list[tuple[int, int]] = []
        adapter.verify_progress.connect(lambda done, total: progress.append((done, total)))
        page.verify_button.click()
        assert page.cancel_verify_button.isVisible()
        await asyncio.wait_for(until(lambda: page.last_verify is not None), 5)
        # emitted from the worker thread: queued to this thread's Qt event queue (this test's loop
        # is plain asyncio, so Qt events are pumped by hand), maybe after the result
        await asyncio.wait_for(until(lambda: QApplication.processEvents() or (
            bool(progress) and progress[-1] == (6, 6))), 5)
        assert page.verify_label.tone == "ok"  # a late progress signal does not overwrite the result
        assert not page.cancel_verify_button.isVisible()
        # stopped before it could conclude: said so, never "intact"
        page.last_verify = None
        page.verify_button.click()
        page.cancel_verify_button.click()  # before the worker starts: it stops at once
        await asyncio.wait_for(until(lambda: page.verify_button.isEnabled()), 5)
        assert page.last_verify is None
        assert page.verify_label.tone == "bad" and "Verification stopped after 0 entries" in page.verify_label.text()
        assert not page.cancel_verify_button.isVisible()
        assert not adapter.cancel_verify()  # nothing running any more
    finally:
        await adapter.aclose()
        storage.close()


async def test_audit_errors_come_back_as_signals(qtbot: QtBot, service: FakeActionService) -> None:
    adapter = ActionAdapter(service, None)  # type: ignore[arg-type]
    try:
        page = bound_audit_page(qtbot, adapter)
        errors: list[str] = []
        adapter.error.connect(errors.append)
        page.verify_button.click()
        await settle()
        assert errors and "no audit log is open" in errors[-1]
        assert page.verify_button.isEnabled()  # restored in the adapter's finally
        assert page.verify_label.tone == "bad"
    finally:
        await adapter.aclose()


def test_verify_result_texts(qtbot: QtBot) -> None:
    page = AuditPage(today=NOW)
    qtbot.addWidget(page)
    page.show_verify(VerifyResult(False, 11, None, "the head file x is unreadable"))
    assert "NOT intact: the head file x is unreadable" in page.verify_label.text()
    assert "First bad" not in page.verify_label.text()
