"""Writing a table the operator sees to a file: CSV or an Excel workbook (XLSX).

The console hands over what one of its tables shows — the column titles and the rows' texts, in
the table's order and filter — and :func:`write_table` writes them in a worker thread:

- **CSV** (UTF-8 with a byte-order mark, so a spreadsheet reads accents and scripts right), each
  cell through :func:`~services.core.text_safety.csv_cell`: a cell a spreadsheet would run as a
  formula (``=``, ``+``, ``-``, ``@``, tab, carriage return first) is written with a leading
  apostrophe;
- **XLSX** (openpyxl, write-only mode), every cell a *string* cell: a text that starts with ``=``
  is stored as text, never as a formula; the control characters XML cannot hold are written as
  visible escapes (``\\x07``).

Both write to ``<name>.part`` beside the target and rename it when complete: a cancelled or
failed export leaves no half-written file under the chosen name. ``progress(done, total)`` is
called every :data:`PROGRESS_EVERY` rows; ``cancelled()`` is asked as often, and a ``True``
stops the export (:class:`ExportCancelled`).
"""

from __future__ import annotations

import contextlib
import csv
import enum
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from services.core.text_safety import FORMULA_STARTS, csv_cell

#: rows between two progress reports (and cancellation checks)
PROGRESS_EVERY = 2000
#: bytes buffered between two writes to a CSV file
WRITE_BUFFER = 4 << 20
#: the worksheet's name in an XLSX export
SHEET_TITLE = "SyncDesk"
#: the characters an XLSX (XML 1.0) cell cannot hold (openpyxl refuses them)
_XML_ILLEGAL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


class ExportFormat(enum.StrEnum):
    CSV = "csv"
    XLSX = "xlsx"

    @property
    def suffix(self) -> str:
        return f".{self.value}"


class ExportCancelled(Exception):
    """The operator stopped the export; nothing was written under the target's name."""

    def __init__(self, written: int) -> None:
        super().__init__(f"export cancelled after {written} rows")
        self.written = written


Progress = Callable[[int, int], None]
Cancelled = Callable[[], bool]


def format_of(path: Path | str, default: ExportFormat = ExportFormat.CSV) -> ExportFormat:
    """The format a file name asks for (``.xlsx`` or ``.csv``; anything else: ``default``)."""
    suffix = Path(path).suffix.lower()
    for fmt in ExportFormat:
        if suffix == fmt.suffix:
            return fmt
    return default


def write_table(path: Path | str, fmt: ExportFormat | str, headers: Sequence[str], rows: Iterable[Sequence[str]],
                total: int, progress: Progress | None = None, cancelled: Cancelled | None = None) -> int:
    """Write ``headers`` and ``rows`` (``total`` of them, for progress) to ``path`` as ``fmt``;
    returns the number of rows written. Raises :class:`ExportCancelled` when ``cancelled()``
    turns true (the partial file is removed), and ``OSError`` when the file cannot be written."""
    target = Path(path)
    fmt = ExportFormat(fmt)
    part = target.with_name(target.name + ".part")
    try:
        if fmt is ExportFormat.CSV:
            written = _write_csv(part, headers, rows, total, progress, cancelled)
        else:
            written = _write_xlsx(part, headers, rows, total, progress, cancelled)
        part.replace(target)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    return written


def _tick(done: int, total: int, progress: Progress | None, cancelled: Cancelled | None) -> None:
    if cancelled is not None and cancelled():
        raise ExportCancelled(done)
    if progress is not None:
        progress(done, total)


def _write_csv(part: Path, headers: Sequence[str], rows: Iterable[Sequence[str]], total: int,
               progress: Progress | None, cancelled: Cancelled | None) -> int:
    done = 0
    # A large buffer: few writes. A thread that writes a file in small pieces gives the GIL up
    # at each write and takes it straight back, and the UI thread waiting for it starves (the
    # "convoy" effect).
    with part.open("w", encoding="utf-8-sig", newline="", buffering=WRITE_BUFFER) as handle:
        writer = csv.writer(handle)
        writer.writerow([csv_cell(h) for h in headers])
        for row in rows:
            writer.writerow([csv_cell(v) for v in row])
            done += 1
            if done % PROGRESS_EVERY == 0:
                _tick(done, total, progress, cancelled)
    if done % PROGRESS_EVERY or not done:  # the last report (unless the loop just made it)
        _tick(done, total, progress, cancelled)
    return done


def xlsx_text(value: object) -> str:
    """A cell's text as an XLSX cell can hold it (XML's forbidden controls shown as escapes)."""
    text = "" if value is None else str(value)
    return _XML_ILLEGAL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def _write_xlsx(part: Path, headers: Sequence[str], rows: Iterable[Sequence[str]], total: int,
                progress: Progress | None, cancelled: Cancelled | None) -> int:
    from openpyxl import Workbook  # imported when an XLSX is asked for: it takes a moment to load
    from openpyxl.cell import WriteOnlyCell

    book = Workbook(write_only=True)
    sheet = book.create_sheet(SHEET_TITLE)

    def cells(values: Iterable[object]) -> list[Any]:
        out: list[Any] = []
        for value in values:
            text = xlsx_text(value)
            if text.startswith(FORMULA_STARTS):
                # openpyxl would store "=…" as a formula: a string cell holds it as text
                cell = WriteOnlyCell(sheet, value=text)
                cell.data_type = "s"
                out.append(cell)
            else:
                out.append(text)
        return out

    done = 0
    try:
        sheet.append(cells(headers))
        for row in rows:
            sheet.append(cells(row))
            done += 1
            if done % PROGRESS_EVERY == 0:
                _tick(done, total, progress, cancelled)
        if done % PROGRESS_EVERY or not done:
            _tick(done, total, progress, cancelled)
    except BaseException:
        _discard(sheet)
        raise
    book.save(part)
    return done


def _discard(sheet: Any) -> None:
    """Close a write-only sheet that will not be saved, and remove the temporary file openpyxl
    streams its rows to (left open, its writer fails later, when it is collected)."""
    with contextlib.suppress(Exception):
        sheet.close()
    writer = getattr(sheet, "_writer", None)
    if writer is not None:
        with contextlib.suppress(OSError, ValueError):
            writer.cleanup()


__all__ = ["PROGRESS_EVERY", "ExportCancelled", "ExportFormat", "format_of", "write_table", "xlsx_text"]
