"""Icons and accent colours: system dots, severity diamonds, state and action-status colours.

Accent colours are used on icons and foreground accents only, never as text colour for long
runs of text, so both light and dark palettes stay readable.
"""

from __future__ import annotations

from functools import cache

from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QColor, QIcon, QPainter, QPen, QPixmap

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
