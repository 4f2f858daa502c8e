"""Export of the current view: what a table shows — its shown columns in their order, its rows
in their order and filter — written to CSV or XLSX off the UI thread, with progress and Cancel.

Three pieces:

- :func:`snapshot_table` takes, on the UI thread, what the table shows *now*: the titles of its
  shown columns (in the order the operator arranged them) and the records of its rows (a list of
  references, no text yet: 100,000 rows take a few milliseconds). The cells' texts are made later,
  in the worker, by the model's own ``display`` hook (the full text, not the cell's cut);
- :class:`ExportAdapter` writes a snapshot (``services.store.exports.write_table``) in a worker
  thread — the one place this file I/O happens — and reports ``progress``, ``done``, ``cancelled``
  or ``failed`` as signals; ``cancel()`` stops it within a few thousand rows;
- :class:`ExportStatus` is the status bar's "Exporting… 40,000 of 100,000 rows [Cancel]", and
  :func:`choose_export_file` the save dialog: window-modal (``open()``, no nested event loop),
  opening in the user's documents folder.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from PySide6.QtCore import QAbstractItemModel, QAbstractProxyModel, QObject, Qt, Signal
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QProgressBar,
    QTableView,
    QToolButton,
    QWidget,
)

from services.core.redaction import redact
from services.store.exports import ExportCancelled, ExportFormat, format_of, write_table
from views.adapters import TaskRegistry
from views.audit_page import documents_folder
from views.widgets.tables import RowsTableModel
from views.widgets.text import plain_label

log = logging.getLogger(__name__)

FORMAT_TITLES: dict[ExportFormat, str] = {ExportFormat.CSV: "CSV", ExportFormat.XLSX: "Excel workbook (XLSX)"}
NAME_FILTERS: dict[ExportFormat, str] = {ExportFormat.CSV: "CSV files (*.csv)",
                                         ExportFormat.XLSX: "Excel workbooks (*.xlsx)"}


@dataclass(frozen=True)
class TableSnapshot:
    """What a table showed when the export was asked for. ``cell(record, column)`` makes a
    cell's text; it runs in the worker, so it must read plain Python data only (the models'
    ``display`` hooks do)."""

    title: str
    headers: tuple[str, ...]
    columns: tuple[int, ...]
    records: Sequence[Any]
    cell: Callable[[Any, int], str]

    @property
    def row_count(self) -> int:
        return len(self.records)

    def rows(self) -> Iterator[list[str]]:
        cell, columns = self.cell, self.columns
        for record in self.records:
            yield [cell(record, col) for col in columns]


def shown_columns(view: QTableView) -> list[int]:
    """The table's shown columns (logical indexes) in the order they are shown."""
    header = view.horizontalHeader()
    model = view.model()
    count = model.columnCount() if model is not None else 0
    logical = [header.logicalIndex(visual) for visual in range(header.count())]
    return [col for col in logical if 0 <= col < count and not view.isColumnHidden(col)]


def snapshot_table(view: QTableView, title: str = "") -> TableSnapshot:
    """What ``view`` shows now (see the module's docstring). A table over a
    :class:`RowsTableModel` (directly or through a proxy that filters or sorts it) hands over its
    records; any other model's texts are read here."""
    model = view.model()
    columns = shown_columns(view)
    headers = tuple(str(model.headerData(c, Qt.Orientation.Horizontal) or "") for c in columns)
    source: QAbstractItemModel = model
    source_rows: list[int] | None = None
    if isinstance(model, QAbstractProxyModel):
        source = model.sourceModel()
        source_rows = [model.mapToSource(model.index(r, 0)).row() for r in range(model.rowCount())]
    if isinstance(source, RowsTableModel):
        if source_rows is None:
            records: Sequence[Any] = source.shown_records()
        else:
            records = [source.record(r) for r in source_rows]
        return TableSnapshot(title, headers, tuple(columns), records, source.display)
    # a model without record hooks: its shown texts, read now
    texts = [[str(model.index(r, c).data(Qt.ItemDataRole.DisplayRole) or "") for c in range(model.columnCount())]
             for r in range(model.rowCount())]
    return TableSnapshot(title, headers, tuple(columns), texts, lambda row, col: row[col])


class ExportAdapter(QObject):
    """Writes a :class:`TableSnapshot` in a worker thread (one export at a time)."""

    started = Signal(str, str, int)  # title, path, rows
    progress = Signal(int, int)  # rows written, of (emitted from the worker: queued to the UI thread)
    done = Signal(str, int)  # path, rows written
    cancelled = Signal(str)  # path not written
    failed = Signal(str)  # human text, redacted

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.tasks = TaskRegistry()
        self._stop: threading.Event | None = None

    @property
    def running(self) -> bool:
        return self.tasks.running("export")

    def start(self, snapshot: TableSnapshot, path: str | Path, fmt: ExportFormat | str | None = None
              ) -> asyncio.Task[Any]:
        """Write ``snapshot`` to ``path`` (``fmt``: from the file's suffix when not given). An
        export already running is cancelled first (latest wins)."""
        if self._stop is not None:
            self._stop.set()
        stop = threading.Event()
        self._stop = stop
        target = Path(path)
        chosen = ExportFormat(fmt) if fmt is not None else format_of(target)

        async def work() -> int | None:
            self.started.emit(snapshot.title, str(target), snapshot.row_count)
            try:
                written = await asyncio.to_thread(write_table, target, chosen, snapshot.headers, snapshot.rows(),
                                                  snapshot.row_count, self.progress.emit, stop.is_set)
            except ExportCancelled:
                self.cancelled.emit(str(target))
                return None
            except asyncio.CancelledError:
                stop.set()  # the worker stops at its next check and removes its partial file
                self.cancelled.emit(str(target))
                raise
            except Exception as exc:
                log.warning("export to %s failed", target, exc_info=True)
                self.failed.emit(redact(f"Could not export to {target}: {exc}"))
                return None
            self.done.emit(str(target), written)
            return written

        return self.tasks.start("export", work())

    def cancel(self) -> bool:
        """Stop the running export (within a few thousand rows); nothing is left under its name."""
        if self._stop is None or not self.running:
            return False
        self._stop.set()
        return True

    async def aclose(self) -> None:
        if self._stop is not None:
            self._stop.set()
        await self.tasks.aclose()


class ExportStatus(QWidget):
    """In the status bar while an export runs: what, how far, and a Cancel button."""

    cancel_clicked = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("exportStatus")
        self.label = plain_label("")
        self.bar = QProgressBar()
        self.bar.setMaximumWidth(160)
        self.bar.setTextVisible(False)
        self.cancel_button = QToolButton()
        self.cancel_button.setObjectName("cancelExport")
        self.cancel_button.setText("Cancel")
        self.cancel_button.setToolTip("Stop the export (nothing is written under the chosen name)")
        self.cancel_button.clicked.connect(self.cancel_clicked)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.label)
        lay.addWidget(self.bar)
        lay.addWidget(self.cancel_button)
        self._title = ""
        self.hide()

    def start(self, title: str, path: str, total: int) -> None:
        self._title = title
        self.bar.setRange(0, max(1, total))
        self.bar.setValue(0)
        self.label.setText(f"Exporting {title}: 0 of {total:,} rows…")
        self.label.setToolTip(path)
        self.show()

    def update_progress(self, done: int, total: int) -> None:
        if not self.isVisible():
            return  # a late report after the end
        self.bar.setMaximum(max(1, total))
        self.bar.setValue(min(done, total))
        self.label.setText(f"Exporting {self._title}: {done:,} of {total:,} rows…")

    def stop(self) -> None:
        self.hide()


def export_file_name(page: str, fmt: ExportFormat, now: datetime) -> str:
    """``syncdesk-exceptions-20250301-120000.csv``."""
    return f"syncdesk-{page}-{now:%Y%m%d-%H%M%S}{fmt.suffix}"


def choose_export_file(parent: QWidget, fmt: ExportFormat, file_name: str, rows: int,
                       on_chosen: Callable[[str], object]) -> QFileDialog:
    """The save dialog: window-modal (``open()`` + ``fileSelected``: no nested loop, never a
    static dialog), in the user's documents folder (never the process's working folder)."""
    dialog = QFileDialog(parent, f"Export {rows:,} row{'s' if rows != 1 else ''} as {FORMAT_TITLES[fmt]}")
    dialog.setObjectName("exportViewDialog")
    dialog.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
    dialog.setFileMode(QFileDialog.FileMode.AnyFile)
    dialog.setNameFilter(NAME_FILTERS[fmt])
    dialog.setDefaultSuffix(fmt.value)
    dialog.setDirectory(documents_folder())
    dialog.selectFile(file_name)
    dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    dialog.fileSelected.connect(on_chosen)
    dialog.open()
    return dialog


class ViewExporter(QObject):
    """The window's "export the view": asks where (the save dialog), takes the snapshot, runs
    the :class:`ExportAdapter` and shows its progress in ``status`` and its end in
    ``message(text)`` (the status bar)."""

    def __init__(self, window: QWidget, message: Callable[[str], None], parent: QObject | None = None) -> None:
        super().__init__(parent or window)
        self.window = window
        self.message = message
        self.adapter = ExportAdapter(self)
        self.status = ExportStatus()
        self.file_dialog: QFileDialog | None = None
        self.status.cancel_clicked.connect(self.adapter.cancel)
        self.adapter.started.connect(self.status.start)
        self.adapter.progress.connect(self.status.update_progress)
        self.adapter.done.connect(self._done)
        self.adapter.cancelled.connect(self._cancelled)
        self.adapter.failed.connect(self._failed)

    def export(self, table: QTableView, fmt: ExportFormat | str, title: str, page: str,
               now: datetime | None = None) -> QFileDialog | None:
        """Take what ``table`` shows now and ask where to write it (``None``: nothing to export)."""
        chosen = ExportFormat(fmt)
        if self.adapter.running:
            self.message("An export is running: wait for it, or cancel it (File > Cancel the export).")
            return None
        snapshot = snapshot_table(table, title)
        if not snapshot.row_count:
            self.message(f"Nothing to export: the {title} table shows no row.")
            return None
        if self.file_dialog is not None:
            self.file_dialog.close()
        name = export_file_name(page, chosen, now or datetime.now().astimezone())
        self.file_dialog = choose_export_file(self.window, chosen, name, snapshot.row_count,
                                              lambda path: self.write(snapshot, path, chosen))
        self.file_dialog.destroyed.connect(lambda *_: setattr(self, "file_dialog", None))
        return self.file_dialog

    def write(self, snapshot: TableSnapshot, path: str, fmt: ExportFormat) -> asyncio.Task[Any]:
        """Write ``snapshot`` to ``path``: its suffix decides the format if it names one."""
        return self.adapter.start(snapshot, path, format_of(path, fmt))

    def _done(self, path: str, rows: int) -> None:
        self.status.stop()
        self.message(f"Exported {rows:,} row{'s' if rows != 1 else ''} to {path}")

    def _cancelled(self, path: str) -> None:
        self.status.stop()
        self.message(f"Export cancelled: {path} was not written.")

    def _failed(self, text: str) -> None:
        self.status.stop()
        self.message(text)
