"""Icons and accent colours: system dots, severity diamonds, state and action-status colours.

Accent colours are used on icons and foreground accents only, never as text colour for long
runs of text, so both light and dark palettes stay readable.
"""

from __future__ import annotations

from functools import cache

from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QColor, QIcon, QPainter, QPalette, QPen, QPixmap
from PySide6.QtWidgets import QWidget

from services.core.domain import Severity, System

SYSTEM_COLORS: dict[System, str] = {
    System.BILLING: "#635bff",
    System.ERP: "#e07a1f",
    System.SUPPORT: "#1f9d8a",
}

SEVERITY_COLORS: dict[Severity, str] = {
    Severity.LOW: "#8a8f98",
    Severity.MEDIUM: "#d99a1c",
    Severity.HIGH: "#e0603a",
    Severity.CRITICAL: "#c62f2f",
}

#: Accent colours for states.
OK_COLOR = "#2e9d5b"
LATE_COLOR = "#d99a1c"
MISSING_COLOR = "#d0453b"
PENDING_COLOR = "#8a8f98"
EXECUTING_COLOR = "#2f6fdf"

#: an action's status (outbox, bulk summary) or an audit entry's outcome -> its colour
STATUS_COLORS: dict[str, str] = {
    "queued": PENDING_COLOR,
    "executing": EXECUTING_COLOR,
    "failed": MISSING_COLOR,
    "refused": MISSING_COLOR,
    "succeeded": OK_COLOR,
    "cancelled": PENDING_COLOR,
}


@cache
def dot_icon(color: str, size: int = 12, hollow: bool = False) -> QIcon:
    """A filled (or hollow) coloured circle."""
    pix = QPixmap(size, size)
    pix.fill(Qt.GlobalColor.transparent)
    p = QPainter(pix)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    if hollow:
        p.setBrush(Qt.BrushStyle.NoBrush)
        p.setPen(QPen(QColor(color), 2))
        p.drawEllipse(2, 2, size - 4, size - 4)
    else:
        p.setBrush(QColor(color))
        p.setPen(Qt.PenStyle.NoPen)
        p.drawEllipse(1, 1, size - 2, size - 2)
    p.end()
    return QIcon(pix)


def system_icon(system: System) -> QIcon:
    """A dot in the system's colour (billing violet, ERP orange, support teal)."""
    return dot_icon(SYSTEM_COLORS[system])


def unlinked_icon() -> QIcon:
    """A hollow red ring: the record has no counterpart in that system."""
    return dot_icon(MISSING_COLOR, hollow=True)


@cache
def _diamond_icon(color: str, size: int = 12) -> QIcon:
    pix = QPixmap(size, size)
    pix.fill(Qt.GlobalColor.transparent)
    p = QPainter(pix)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    p.setBrush(QColor(color))
    p.setPen(Qt.PenStyle.NoPen)
    h = size / 2
    p.drawPolygon([QPointF(h, 0.5), QPointF(size - 0.5, h), QPointF(h, size - 0.5), QPointF(0.5, h)])
    p.end()
    return QIcon(pix)


def severity_icon(severity: Severity) -> QIcon:
    """A diamond coloured by severity (grey low … red critical)."""
    return _diamond_icon(SEVERITY_COLORS[severity])


def arrow_icon(source: QWidget | QPalette, down: bool = True, size: int = 16) -> QIcon:
    """A down (or up) arrow drawn in the text colour of ``source`` (a widget's palette, or a
    palette): visible on light and dark palettes alike (the style's arrow is a fixed dark glyph)."""
    palette = source.palette() if isinstance(source, QWidget) else source
    color = palette.color(QPalette.ColorRole.ButtonText)
    pix = QPixmap(size, size)
    pix.fill(Qt.GlobalColor.transparent)
    p = QPainter(pix)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    p.setPen(Qt.PenStyle.NoPen)
    p.setBrush(color)
    m = size * 0.2
    if down:
        points = [QPointF(m, size * 0.35), QPointF(size - m, size * 0.35), QPointF(size / 2, size * 0.78)]
    else:
        points = [QPointF(m, size * 0.65), QPointF(size - m, size * 0.65), QPointF(size / 2, size * 0.22)]
    p.drawPolygon(points)
    p.end()
    return QIcon(pix)


@cache
def tone_icon(tone: str, size: int = 16) -> QIcon:
    """A drawn mark for a message's tone — ok: a check in a green disc, bad: a cross in a red
    disc, warn: "!" in an amber disc, busy/info: "i" in a blue or grey disc. Drawn, so no font
    needs a check-mark, cross or warning glyph."""
    color = {"ok": OK_COLOR, "bad": MISSING_COLOR, "warn": LATE_COLOR, "busy": EXECUTING_COLOR}.get(tone,
                                                                                                  PENDING_COLOR)
    pix = QPixmap(size, size)
    pix.fill(Qt.GlobalColor.transparent)
    p = QPainter(pix)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    p.setPen(Qt.PenStyle.NoPen)
    p.setBrush(QColor(color))
    p.drawEllipse(QPointF(size / 2, size / 2), size / 2 - 0.5, size / 2 - 0.5)
    pen = QPen(QColor("white"), max(1.6, size / 8))
    pen.setCapStyle(Qt.PenCapStyle.RoundCap)
    p.setPen(pen)
    s = float(size)
    if tone == "ok":
        p.drawPolyline([QPointF(s * 0.28, s * 0.52), QPointF(s * 0.44, s * 0.68), QPointF(s * 0.73, s * 0.34)])
    elif tone == "bad":
        p.drawLine(QPointF(s * 0.32, s * 0.32), QPointF(s * 0.68, s * 0.68))
        p.drawLine(QPointF(s * 0.68, s * 0.32), QPointF(s * 0.32, s * 0.68))
    elif tone == "warn":
        p.drawLine(QPointF(s / 2, s * 0.25), QPointF(s / 2, s * 0.56))
        p.drawPoint(QPointF(s / 2, s * 0.74))
    else:
        p.drawPoint(QPointF(s / 2, s * 0.28))
        p.drawLine(QPointF(s / 2, s * 0.45), QPointF(s / 2, s * 0.74))
    p.end()
    return QIcon(pix)
