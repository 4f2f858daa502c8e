"""services.store.exports: a table written to CSV and XLSX exactly as given, formula-like cells made
inert (CSV: a leading apostrophe; XLSX: string cells, never formulas), control characters XML
cannot hold shown as escapes, progress reported, and a cancelled or failed export leaving no file
under the chosen name (nor its partial ``.part``). No Qt: the console's worker calls this."""

from __future__ import annotations

import csv
import zipfile
from pathlib import Path

import pytest
from openpyxl import load_workbook

from services.store.exports import (
    PROGRESS_EVERY,
    ExportCancelled,
    ExportFormat,
    format_of,
    write_table,
    xlsx_text,
)

HEADERS = ("Customer id", "Name", "Open exceptions")
ROWS = [
    ["cus_1", "Acme GmbH", "3"],
    ["cus_2", "=HYPERLINK(\"http://evil.test\",\"click\")", "1"],
    ["cus_3", "+1-555-0100", ""],
    ["cus_4", "-2+3", "12"],
    ["cus_5", "@SUM(A1:A2)", "0"],
    ["cus_6", "Ünïcødé · 株式会社 · شركة", "7"],
    ["cus_7", "line one\nline two, with \"quotes\"", "1"],
    ["cus_8", "bell\x07 and nul\x00", "2"],
]


def read_csv(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return list(csv.reader(handle))


def read_xlsx(path: Path) -> list[list[tuple[object, str]]]:
    """Every cell as (value, openpyxl data type: "s" string, "f" formula, "n" number)."""
    book = load_workbook(path)
    sheet = book.active
    assert sheet is not None
    return [[(c.value, c.data_type) for c in row] for row in sheet.iter_rows()]


def test_csv_holds_the_rows_in_order_with_formula_like_cells_made_inert(tmp_path: Path) -> None:
    target = tmp_path / "view.csv"
    assert write_table(target, "csv", HEADERS, ROWS, len(ROWS)) == len(ROWS)
    assert target.read_bytes().startswith(b"\xef\xbb\xbf"), "a BOM: spreadsheets read the UTF-8 as UTF-8"
    rows = read_csv(target)
    assert rows[0] == list(HEADERS)
    assert [r[0] for r in rows[1:]] == [f"cus_{n}" for n in range(1, 9)]
    names = [r[1] for r in rows[1:]]
    assert names[0] == "Acme GmbH"
    assert names[1] == "'=HYPERLINK(\"http://evil.test\",\"click\")"
    assert names[2] == "'+1-555-0100" and names[3] == "'-2+3" and names[4] == "'@SUM(A1:A2)"
    assert names[5] == "Ünïcødé · 株式会社 · شركة"
    assert names[6] == "line one\nline two, with \"quotes\""  # quoted, kept whole
    assert names[7] == "bell\x07 and nul\x00"
    assert not (tmp_path / "view.csv.part").exists()


def test_xlsx_holds_every_cell_as_a_string_never_a_formula(tmp_path: Path) -> None:
    target = tmp_path / "view.xlsx"
    assert write_table(target, ExportFormat.XLSX, HEADERS, ROWS, len(ROWS)) == len(ROWS)
    cells = read_xlsx(target)
    assert [v for v, _t in cells[0]] == list(HEADERS)
    assert all(t == "s" for row in cells for v, t in row if v is not None), cells
    body = [[v if v is not None else "" for v, _t in row] for row in cells[1:]]
    expected = [[xlsx_text(v) for v in row] for row in ROWS]
    assert body == expected
    assert body[1][1] == "=HYPERLINK(\"http://evil.test\",\"click\")"  # the text, as text
    assert body[7][1] == "bell\\x07 and nul\\x00"  # XML cannot hold them: shown as escapes
    # and in the file itself: no <f> (formula) element anywhere in the sheet
    with zipfile.ZipFile(target) as archive:
        sheets = [n for n in archive.namelist() if n.startswith("xl/worksheets/")]
        assert sheets and all(b"<f>" not in archive.read(n) for n in sheets)


def test_progress_is_reported_and_cancel_leaves_no_file(tmp_path: Path) -> None:
    total = PROGRESS_EVERY * 5 + 7
    rows = ([f"cus_{i}", f"name {i}", str(i)] for i in range(total))
    seen: list[tuple[int, int]] = []
    target = tmp_path / "big.csv"
    assert write_table(target, "csv", HEADERS, rows, total, lambda d, t: seen.append((d, t))) == total
    assert seen[0] == (PROGRESS_EVERY, total) and seen[-1] == (total, total)
    assert [d for d, _t in seen] == sorted(d for d, _t in seen)
    assert len(read_csv(target)) == total + 1

    for fmt in ExportFormat:
        stopped = tmp_path / f"stopped{fmt.suffix}"
        checks: list[int] = []

        def cancelled(checks: list[int] = checks) -> bool:
            checks.append(1)
            return len(checks) >= 2  # stop at the second check: after 2 * PROGRESS_EVERY rows

        rows = ([f"cus_{i}", f"name {i}", str(i)] for i in range(total))
        with pytest.raises(ExportCancelled) as info:
            write_table(stopped, fmt, HEADERS, rows, total, None, cancelled)
        assert info.value.written == 2 * PROGRESS_EVERY
        assert not stopped.exists() and not stopped.with_name(stopped.name + ".part").exists()


def test_a_failed_write_leaves_the_earlier_file_untouched(tmp_path: Path) -> None:
    target = tmp_path / "kept.csv"
    target.write_text("what was there before", encoding="utf-8")

    def broken() -> list[list[str]]:
        raise RuntimeError("the view went away")

    def rows() -> object:
        yield ["cus_1", "Acme", "1"]
        broken()

    with pytest.raises(RuntimeError):
        write_table(target, "csv", HEADERS, rows(), 2)  # type: ignore[arg-type]
    assert target.read_text(encoding="utf-8") == "what was there before"
    assert not (tmp_path / "kept.csv.part").exists()


def test_the_format_follows_the_file_name() -> None:
    assert format_of("a/b/view.XLSX") is ExportFormat.XLSX
    assert format_of("view.csv") is ExportFormat.CSV
    assert format_of("view.txt", ExportFormat.XLSX) is ExportFormat.XLSX
