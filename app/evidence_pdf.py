"""The evidence pack's PDF, rendered with Qt's own PDF writer from the JSON twin
(services.evidence.pack): A4, a header (the customer, the generation time) and a footer (page N
of M, the pack's SHA-256) on every page, monospace hashes that wrap when the page is narrow.

Every text is inserted with :meth:`QTextCursor.insertText` into tables built with
:meth:`QTextCursor.insertTable` — never HTML or rich text: a customer name holding markup, a
formula or bidirectional controls is printed as the characters it holds (control and
bidirectional characters as visible ``\\u`` escapes, :func:`~services.core.text_safety.terminal_safe`).
The JSON twin is also attached to the PDF (``evidence-pack.json``), byte for byte.

Needs a ``QGuiApplication`` (fonts): :func:`ensure_gui_application` makes an offscreen one for
the command line.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from PySide6.QtCore import QByteArray, QMarginsF, QRectF, QSizeF, Qt
from PySide6.QtGui import (
    QAbstractTextDocumentLayout,
    QFont,
    QFontDatabase,
    QFontMetricsF,
    QGuiApplication,
    QPageLayout,
    QPageSize,
    QPainter,
    QPdfWriter,
    QTextBlockFormat,
    QTextCharFormat,
    QTextCursor,
    QTextDocument,
    QTextFrameFormat,
    QTextLength,
    QTextOption,
    QTextTableFormat,
)

from services.core.text_safety import terminal_safe
from services.core.timeline import human_duration
from services.evidence.pack import EvidencePack

DPI = 300
#: the JSON twin's name inside the PDF
ATTACHMENT = "evidence-pack.json"


def ensure_gui_application() -> QGuiApplication:
    """The running Qt application, or a new offscreen one (a command run without a display)."""
    app = QGuiApplication.instance()
    if app is None:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
        app = QGuiApplication(["syncdesk-evidence"])
    assert isinstance(app, QGuiApplication)
    return app


def plain(value: Any) -> str:
    """External text as it is printed: plain, every control or bidirectional character visible."""
    if value is None:
        return "—"
    if isinstance(value, dict | list):
        value = json.dumps(value, sort_keys=True, ensure_ascii=False)
    return terminal_safe(str(value))


def customers_label(data: dict[str, Any]) -> str:
    customers = data["customers"]
    if len(customers) == 1:
        c = customers[0]
        return f"{plain(c['name'] or '(no name)')} ({plain(c['customer_id'])})"
    ids = ", ".join(plain(c["customer_id"]) for c in customers[:3])
    more = ", …" if len(customers) > 3 else ""
    return f"{len(customers)} customers: {ids}{more}"


class _Writer:
    """Builds the document with a cursor: headings, paragraphs, tables of plain text."""

    def __init__(self, doc: QTextDocument, scale: float) -> None:
        self.doc = doc
        self.cursor = QTextCursor(doc)
        self.scale = scale
        base = QFont("DejaVu Sans")
        base.setStyleHint(QFont.StyleHint.SansSerif)
        # no ligatures: "fi" stays two letters, so the PDF's text is found by search and pdftotext
        base.setStyleStrategy(QFont.StyleStrategy.PreferNoShaping)
        base.setPointSizeF(8.5)
        doc.setDefaultFont(base)
        self.body = QTextCharFormat()
        self.body.setFont(base)
        self.bold = QTextCharFormat(self.body)
        self.bold.setFontWeight(QFont.Weight.Bold)
        mono = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
        mono.setPointSizeF(7.5)
        self.mono = QTextCharFormat()
        self.mono.setFont(mono)
        self.bad = QTextCharFormat(self.bold)
        self.bad.setForeground(Qt.GlobalColor.darkRed)

    def heading(self, text: str, size: float = 12.0) -> None:
        fmt = QTextCharFormat(self.bold)
        fmt.setFontPointSize(size)
        block = QTextBlockFormat()
        block.setTopMargin(size * 0.6 * self.scale)
        block.setBottomMargin(2 * self.scale)
        self.cursor.insertBlock(block)
        self.cursor.insertText(text, fmt)

    def para(self, text: str, fmt: QTextCharFormat | None = None, space: float = 1.0) -> None:
        block = QTextBlockFormat()
        block.setTopMargin(space * self.scale)
        self.cursor.insertBlock(block)
        self.cursor.insertText(text, fmt or self.body)

    def table(self, header: list[str] | None, rows: list[list[tuple[str, QTextCharFormat | None]]],
              widths: list[float]) -> None:
        """A table: a bold header row (repeated on each page it spans; None: no header), then
        ``rows`` of (text, format) cells; a row of one cell spans the table (a hash line)."""
        columns = len(widths)
        fmt = QTextTableFormat()
        fmt.setBorder(0.5 * self.scale)
        fmt.setBorderStyle(QTextFrameFormat.BorderStyle.BorderStyle_Solid)
        fmt.setBorderCollapse(True)
        fmt.setCellPadding(1.6 * self.scale)
        fmt.setCellSpacing(0)
        fmt.setTopMargin(3 * self.scale)
        fmt.setHeaderRowCount(1 if header else 0)
        fmt.setWidth(QTextLength(QTextLength.Type.PercentageLength, 100))
        fmt.setColumnWidthConstraints([QTextLength(QTextLength.Type.PercentageLength, w) for w in widths])
        self.cursor.insertBlock()
        first = 1 if header else 0
        table = self.cursor.insertTable(len(rows) + first, columns, fmt)
        for c, text in enumerate(header or ()):
            table.cellAt(0, c).firstCursorPosition().insertText(text, self.bold)
        for r, row in enumerate(rows, start=first):
            if len(row) == 1 and columns > 1:
                table.mergeCells(r, 0, 1, columns)
            for c, (text, cell_fmt) in enumerate(row):
                table.cellAt(r, c).firstCursorPosition().insertText(text, cell_fmt or self.body)
        self.cursor.movePosition(QTextCursor.MoveOperation.End)


def _cells(*texts: Any) -> list[tuple[str, QTextCharFormat | None]]:
    return [(plain(t), None) for t in texts]


def build_document(pack: EvidencePack, scale: float = 1.0) -> QTextDocument:
    """The pack's document (plain text in tables; see the module docstring)."""
    data = pack.data
    doc = QTextDocument()
    option = QTextOption()
    option.setWrapMode(QTextOption.WrapMode.WrapAtWordBoundaryOrAnywhere)  # a hash wraps on a narrow page
    doc.setDefaultTextOption(option)
    doc.setDocumentMargin(0)
    w = _Writer(doc, scale)
    w.cursor.insertText("SyncDesk evidence pack", _size(w.bold, 15))
    verdict = data["audit_verify"]
    log = data["audit_log"]
    summary: list[list[tuple[str, QTextCharFormat | None]]] = [
        _cells("customers", customers_label(data)),
        _cells("generated at (UTC)", data["generated_at"]),
        _cells("generated by", data["generated_by"]),
        _cells("source", data["source"]),
        [("pack SHA-256", None), (pack.sha256, w.mono)],
        [("audit verify", None), (plain(verdict["sentence"]), w.body if verdict["ok"] else w.bad)],
    ]
    for key, label in (("protection", "protection"), ("anchored", "anchored"), ("warning", "warning")):
        if verdict.get(key):
            summary.append(_cells(label, verdict[key]))
    summary.append(_cells("audit log", f"{log['path'] or '—'} · {log['entries']} entries"
                                       + (f" · {log['missing']}" if log.get("missing") else "")))
    if log.get("fingerprint"):
        summary.append([("log key", None), (f"{log['log_id']} {log['fingerprint']}", w.mono)])
    if log.get("head"):
        summary.append([("log head", None), (f"entry {log['head']['seq']} {log['head']['hash']}", w.mono)])
    w.table(None, summary, [20, 80])
    w.para("The pack's SHA-256 is the SHA-256 of the exact bytes of its JSON twin (the file written with --json, "
           f"also attached to this PDF as {ATTACHMENT}). How to recompute each audit entry's hash is at the end.")
    for customer in data["customers"]:
        _customer(w, customer)
    _recipe(w, data["hash_recipe"])
    return doc


def _size(fmt: QTextCharFormat, size: float) -> QTextCharFormat:
    out = QTextCharFormat(fmt)
    out.setFontPointSize(size)
    return out


def _customer(w: _Writer, c: dict[str, Any]) -> None:
    w.heading(f"{plain(c['name'] or '(no name)')} ({plain(c['customer_id'])})", 13)
    w.para(plain(c["state"]["summary"]))
    labels = {"billing": "billing customer", "erp": "ERP party", "support": "support organization"}
    w.heading("Identities", 10.5)
    w.table(["system", "ids", "records"],
            [_cells(labels.get(s, s), ", ".join(ids) or "none", ", ".join(c["identity_refs"][s]) or "—")
             for s, ids in c["identities"].items()], [22, 30, 48])
    w.heading(f"Lifecycle timeline ({len(c['timeline'])} events)", 10.5)
    if c["timeline"]:
        w.table(["when (UTC)", "system", "event", "status", "lag", "summary"],
                [_cells(e["at"][:19].replace("T", " "), e["system"], e["kind"], e["status"],
                        "" if e["lag_seconds"] is None else human_duration(timedelta(seconds=e["lag_seconds"])),
                        e["summary"] + (f" [{', '.join(e['exceptions'])}]" if e["exceptions"] else ""))
                 for e in c["timeline"]], [14, 9, 19, 9, 9, 40])
    else:
        w.para("No event is known for this customer.")
    w.heading(f"Exceptions ({len(c['exceptions'])}, open and closed)", 10.5)
    if not c["exceptions"]:
        w.para("No exception was ever found for this customer.")
    for x in c["exceptions"]:
        w.para(plain(f"{x['id']}  ·  {x['rule']}  ·  {x['severity']}  ·  owner {x['owner']}  ·  {x['status']}"),
               w.bold)
        w.para(plain(x["summary"]))
        when = f"first seen {x['first_seen']} · last seen {x['last_seen']}"
        if x["closed_at"]:
            when += f" · closed {x['closed_at']}"
        w.para(plain(when))
        rows = []
        for side in x["sides"]:
            values = side["values"] or {"": None}
            for field, value in values.items():
                rows.append(_cells(side["system"], side["ref"] or "—", field, value))
        if rows:
            w.table(["system", "record", "field", "value"], rows, [12, 33, 20, 35])
        for label, mark in (("last failed fix", x["last_failure"]), ("flagged", x["flagged"])):
            if mark:
                w.para(plain(f"{label}: {mark['at']} by {mark['actor']} ({mark['role']}), {mark['action']}: "
                             f"{mark['text']}"))
    entries = c["audit_entries"]
    check = c["audit_check"]
    w.heading(f"Audit entries ({len(entries)})", 10.5)
    w.para(f"{check['content_matches']} of {check['entries']} entries hash to their recorded hash; "
           f"{check['links_checked']} links between consecutive entries checked"
           + (f", broken at entries {', '.join(map(str, check['links_broken']))}" if check["links_broken"] else ""),
           w.body if check["content_matches"] == check["entries"] and not check["links_broken"] else w.bad)
    if entries:
        rows = []
        for e in entries:
            rows.append(_cells(e["seq"], str(e["at"]).replace("T", " "), e["operator"], e["role"],
                               f"{e['action_kind']} ({e['phase']})", e["outcome"]))
            detail = " · ".join(plain(v) for v in (e["exception_id"], e["target_system"], e["reason"], e["error"])
                                if v)
            if detail:
                rows.append([(detail, None)])
            for label in ("before", "after"):
                if e[label] not in (None, "{}"):
                    rows.append([(f"{label} {_cut(plain(e[label]))}", None)])
            rows.append([(f"hash {plain(e['hash'])}", w.mono)])
            rows.append([(f"prev {plain(e['prev_hash'])}", w.mono)])
            if not e["content_matches"]:
                rows.append([("this entry's values do not hash to its recorded hash: altered after it was written",
                              w.bad)])
        w.table(["seq", "time (UTC)", "actor", "role", "action", "outcome"], rows, [7, 25, 20, 10, 24, 14])


def _cut(text: str, limit: int = 400) -> str:
    """A long stored value shortened on paper (the JSON twin holds it whole)."""
    return text if len(text) <= limit else text[:limit] + " … (whole in the JSON twin)"


def _recipe(w: _Writer, recipe: dict[str, Any]) -> None:
    w.heading("How a third party checks this pack", 10.5)
    w.para("1. The pack's SHA-256: sha256sum of the JSON twin must be the value printed in the footer of every page.")
    w.para(f"2. Each audit entry's hash: {plain(recipe['algorithm'])} over {plain(recipe['encoding'])}.")
    w.para("   fields, in order: " + ", ".join(recipe["fields"]))
    w.para("   " + plain(recipe["python"]), w.mono)
    w.para(f"3. The chain: {plain(recipe['chain'])}.")


def render_pdf(pack: EvidencePack, path: Path, *, progress: Callable[[int, int], None] | None = None) -> int:
    """Write the pack's PDF to ``path`` (A4); the number of pages. ``progress(page, pages)``."""
    ensure_gui_application()
    writer = QPdfWriter(str(path))
    writer.setResolution(DPI)
    writer.setPageLayout(QPageLayout(QPageSize(QPageSize.PageSizeId.A4), QPageLayout.Orientation.Portrait,
                                     QMarginsF(14, 12, 14, 12), QPageLayout.Unit.Millimeter))
    writer.setTitle(f"SyncDesk evidence pack — {customers_label(pack.data)}")
    writer.setCreator("SyncDesk")
    writer.addFileAttachment(ATTACHMENT, QByteArray(pack.json_bytes), "application/json")
    scale = DPI / 96
    doc = build_document(pack, scale)
    layout = doc.documentLayout()
    layout.setPaintDevice(writer)
    page = writer.pageLayout().paintRectPixels(DPI)
    width, height = float(page.width()), float(page.height())
    band = 16 * scale  # header and footer bands
    body = height - 2 * band
    doc.setPageSize(QSizeF(width, body))
    pages = doc.pageCount()
    small = QFont("DejaVu Sans")
    small.setStyleStrategy(QFont.StyleStrategy.PreferNoShaping)
    small.setPointSizeF(7)
    mono = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
    mono.setPointSizeF(6.5)
    # one line: a long name gives way (elided with "…"), never the generation time
    when = f" · generated {pack.data['generated_at']}"
    metrics = QFontMetricsF(small, writer)
    label = metrics.elidedText(f"SyncDesk evidence pack · {customers_label(pack.data)}", Qt.TextElideMode.ElideRight,
                               max(width - metrics.horizontalAdvance(when), width / 3))
    header = label + when
    painter = QPainter(writer)
    try:
        for n in range(pages):
            if n:
                writer.newPage()
            painter.setFont(small)
            painter.drawText(QRectF(0, 0, width, band * 0.8), int(Qt.AlignmentFlag.AlignLeft
                                                                  | Qt.AlignmentFlag.AlignTop), header)
            painter.drawLine(QRectF(0, band * 0.8, width, 0).topLeft(), QRectF(0, band * 0.8, width, 0).topRight())
            painter.save()
            painter.translate(0, band - n * body)
            clip = QRectF(0, n * body, width, body)
            painter.setClipRect(clip)
            ctx = QAbstractTextDocumentLayout.PaintContext()
            ctx.clip = clip
            layout.draw(painter, ctx)
            painter.restore()
            painter.setFont(mono)
            painter.drawText(QRectF(0, height - band * 0.7, width * 0.8, band * 0.7),
                             int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignBottom),
                             f"pack SHA-256 {pack.sha256}")
            painter.setFont(small)
            painter.drawText(QRectF(0, height - band * 0.7, width, band * 0.7),
                             int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignBottom),
                             f"page {n + 1} of {pages}")
            if progress is not None:
                progress(n + 1, pages)
    finally:
        painter.end()
    return pages


__all__ = ["ATTACHMENT", "build_document", "customers_label", "ensure_gui_application", "plain", "render_pdf"]
