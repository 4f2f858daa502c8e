"""The console's "Evidence pack…": one customer's evidence pack (services.evidence) written as a
PDF and its JSON twin, off the UI thread, with progress in the status bar.

:class:`EvidenceExporter` asks where to write (a window-modal save dialog, in the user's
documents folder: ``open()``, no nested loop), then gathers the pack on the service loop (the
engine's snapshot and exception history, the audit log verified and read in a worker thread),
then writes it with the writer the shell hands it (``app.evidence_cli.write_pack``: views do not
render PDFs themselves, app/ does), in a worker thread. It reports ``progress(text)``,
``done(pdf path, pack SHA-256, intact)`` or ``failed(text)``.

Reading only: every role may export (an auditor's too); like the audit log's export it writes
no audit entry.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import QFileDialog, QStatusBar, QWidget

from services.core.identity import current_login
from services.core.redaction import redact
from services.evidence.collect import collect_pack
from services.evidence.pack import EvidencePack
from views.action_adapter import ActionAdapter
from views.adapters import TaskRegistry
from views.audit_page import documents_folder

#: writes the pack: (pack, PDF path, JSON path) -> pages (app.evidence_cli.write_pack)
PackWriter = Callable[[EvidencePack, Path, Path], int]


def evidence_file_name(customer_id: str, now: datetime) -> str:
    """``evidence-cus_X-20261207-031900.pdf`` (characters a file name cannot hold become ``_``)."""
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in customer_id)[:80]
    return f"evidence-{safe}-{now:%Y%m%d-%H%M%S}.pdf"


class EvidenceExporter(QObject):
    started = Signal(str)  # customer id
    progress = Signal(str)  # what is being done (emitted from worker threads too: queued to the UI)
    done = Signal(str, str, bool)  # PDF path, pack SHA-256, audit log intact
    failed = Signal(str)  # human text, secrets redacted

    def __init__(self, window: QWidget, actions: ActionAdapter, write: PackWriter,
                 source: str = "", parent: QObject | None = None) -> None:
        super().__init__(parent or window)
        self.window = window
        self.actions = actions
        self.write = write
        self.source = source
        self.tasks = TaskRegistry()
        self.file_dialog: QFileDialog | None = None
        self.last_pack: EvidencePack | None = None
        self._stop: threading.Event | None = None

    def running(self) -> bool:
        return self.tasks.running("evidence")

    def choose_file(self, customer_id: str) -> QFileDialog:
        """The save dialog for ``customer_id``'s pack; choosing a file starts :meth:`export`."""
        if self.file_dialog is not None:
            self.file_dialog.close()
        dialog = QFileDialog(self.window, f"Save the evidence pack of {customer_id}")
        dialog.setObjectName("evidenceDialog")
        dialog.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
        dialog.setFileMode(QFileDialog.FileMode.AnyFile)
        dialog.setNameFilter("PDF files (*.pdf)")
        dialog.setDefaultSuffix("pdf")
        dialog.setDirectory(documents_folder())
        dialog.selectFile(evidence_file_name(customer_id, datetime.now(UTC)))
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.fileSelected.connect(lambda path: self.export(customer_id, Path(path)))
        dialog.destroyed.connect(lambda *_: setattr(self, "file_dialog", None))
        self.file_dialog = dialog
        dialog.open()
        return dialog

    def export(self, customer_id: str, pdf: Path, json_path: Path | None = None) -> Any:
        """Write ``customer_id``'s pack to ``pdf`` and its JSON twin (default: beside it, .json)."""
        twin = json_path or pdf.with_suffix(".json")
        stop = threading.Event()
        self._stop = stop
        service = self.actions.service
        audit = self.actions.audit

        def verified(checked: int, total: int) -> None:
            self.progress.emit(f"Evidence pack: verifying the audit log… {checked:,} of {total:,} entries")

        async def work() -> None:
            self.started.emit(customer_id)
            try:
                self.progress.emit(f"Evidence pack of {customer_id}: reading the exceptions and the audit log…")
                pack = await self.actions.runner.call(collect_pack(
                    service.engine, [customer_id], audit, generated_by=current_login(), source=self.source,
                    progress=verified, cancelled=stop.is_set))
                self.progress.emit(f"Evidence pack of {customer_id}: writing {pdf.name}…")
                await asyncio.to_thread(self.write, pack, pdf, twin)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # shown in the status bar: never a traceback, never a secret
                self.failed.emit(redact(f"Could not write the evidence pack: {exc}"))
                return
            self.last_pack = pack
            self.done.emit(str(pdf), pack.sha256, bool(pack.data["audit_verify"]["ok"]))

        return self.tasks.start("evidence", work())

    def cancel(self) -> bool:
        if self._stop is not None and self.running():
            self._stop.set()
            return True
        return False

    async def aclose(self) -> None:
        if self._stop is not None:
            self._stop.set()
        await self.tasks.aclose()


__all__ = ["EvidenceExporter", "PackWriter", "evidence_file_name"]


def report_to(exporter: EvidenceExporter, status: QStatusBar) -> None:
    """The exporter's progress, failure and result shown in the window's status bar."""
    exporter.progress.connect(lambda text: status.showMessage(text))
    exporter.failed.connect(lambda text: status.showMessage(text, 30_000))
    exporter.done.connect(lambda path, sha, intact: status.showMessage(
        f"Evidence pack written to {path} (pack SHA-256 {sha})"
        + ("" if intact else " — the audit log is NOT intact: the pack says where"), 60_000))
