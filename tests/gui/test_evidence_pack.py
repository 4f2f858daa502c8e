"""The customer view's "Evidence pack…" in the real console (``app.console.compose`` over the demo
servers; tests/gui/test_jobs_live.py's rig): an auditor opens a customer a fix was made for, clicks
the button (or Actions ▸ Evidence pack, Ctrl+Shift+P), picks the file in the window-modal save
dialog, and the PDF and its JSON twin are written off the UI thread; the PDF holds the customer's
audit hashes (read back with poppler's ``pdftotext``) and the export writes no audit entry."""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence
from pytestqt.qtbot import QtBot

from services.actions.model import ActionKind, ActionRequest, ActionStatus, Role
from tests.gui.live_loop import grab_png, run_qasync
from tests.gui.test_jobs_live import Live, console, until
from tests.test_evidence import pdftotext, squeezed

pytestmark = pytest.mark.gui


def audit_rows(db: Path) -> list[sqlite3.Row]:
    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    try:
        return list(con.execute("select * from audit_entry order by seq"))
    finally:
        con.close()


def test_auditor_writes_a_customers_evidence_pack_from_the_customer_view(
        qtbot: QtBot, qloop: asyncio.AbstractEventLoop, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async def scenario(live: Live) -> None:
        window = live.window
        exc = live.exceptions("invoice.missing_in_erp")[0]
        customer = exc.customer_id
        assert customer is not None
        plan = await live.service.plan(ActionRequest(ActionKind.RETRY, exc.id, reason="evidence pack test"))
        assert plan.ok, plan.explanation
        assert (await live.service.execute(plan)).status is ActionStatus.SUCCEEDED
        await live.switch_role(Role.AUDITOR)
        before = await asyncio.to_thread(audit_rows, live.audit_db)
        window.open_customer(customer)
        page = window.customer_page
        button = page.evidence_button
        assert button.text() == "Evidence pack…" and button.isVisible() and button.isEnabled()
        assert window.evidence_action.isEnabled()
        assert window.evidence_action.shortcut() == QKeySequence("Ctrl+Shift+P")
        assert window.evidence_action in window.menus["Actions"].actions()
        live.qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
        exporter = window.evidence
        assert exporter is not None
        dialog = exporter.file_dialog
        assert dialog is not None and dialog.isVisible()
        assert dialog.windowModality() is Qt.WindowModality.WindowModal
        assert dialog.defaultSuffix() == "pdf" and dialog.nameFilters() == ["PDF files (*.pdf)"]
        assert dialog.selectedFiles()[0].endswith(".pdf") and customer in Path(dialog.selectedFiles()[0]).name
        target = tmp_path / "evidence.pdf"
        dialog.fileSelected.emit(str(target))
        dialog.close()
        status = window.statusBar()
        await until(lambda: "Evidence pack written to" in status.currentMessage(), "the evidence pack")
        assert target.exists() and target.with_suffix(".json").exists()
        twin = target.with_suffix(".json").read_bytes()
        sha = hashlib.sha256(twin).hexdigest()
        assert status.currentMessage() == f"Evidence pack written to {target} (pack SHA-256 {sha})"
        data = json.loads(twin)
        assert data["audit_verify"]["ok"] is True and data["customers"][0]["customer_id"] == customer
        rows = [r for r in before if r["customer_id"] == customer]
        assert len(rows) == 2, "the retry's intent and outcome"
        text = squeezed(await asyncio.to_thread(pdftotext, target))
        assert sha in text and all(r["hash"] in text for r in rows)
        assert await asyncio.to_thread(audit_rows, live.audit_db) == before, "the export writes no audit entry"
        # the menu entry (Ctrl+Shift+P) asks for the shown customer's pack too
        window.evidence_action.trigger()
        again = exporter.file_dialog
        assert again is not None and again.isVisible() and again is not dialog
        grab_png(window, live.tmp, "evidence-dialog")
        again.close()
        # off the customer page there is no customer to export: it says so
        window.go_to_page(window.PAGES.index("Exceptions"))
        window.evidence_action.trigger()
        assert status.currentMessage() == "Open a customer first: the evidence pack is one customer's"

    run_qasync(qloop, console(qtbot, tmp_path, caplog, scenario))
