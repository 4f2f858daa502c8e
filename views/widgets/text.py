"""Text as the views show it: plain-text labels and tooltips, values, ages, times, JSON, fonts.

Everything that may carry text from an external system goes through ``plain_label`` (or an
item model's DisplayRole, which Qt never interprets as markup) and :func:`plain_tooltip`: a
customer named ``<b>x</b>`` is shown as those eight characters.
"""

from __future__ import annotations

import enum
import html
import json
import re
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

from PySide6 import QtGui
from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import (
    QAction,
    QBrush,
    QFont,
    QFontDatabase,
    QGuiApplication,
    QKeySequence,
    QPainter,
    QPaintEvent,
    QPalette,
)
from PySide6.QtWidgets import QLabel, QSizePolicy, QWidget

from services.core.currency import format_money
from services.core.domain import System
from services.core.redaction import redact
from services.core.text_safety import FSI, PDI, bidi_isolated

SYSTEM_TITLES: dict[System, str] = {System.BILLING: "Billing", System.ERP: "ERP", System.SUPPORT: "Support"}


#: at most this much of a text is laid out for display (a 1 MB name is cut here, with "…")
DISPLAY_LIMIT = 1000
#: at most this much of a text goes into a tooltip
TOOLTIP_LIMIT = 2000


def clipped(text: str, limit: int = DISPLAY_LIMIT) -> str:
    """``text`` cut to ``limit`` characters (with "…"): what is laid out for display."""
    return text if len(text) <= limit else text[:limit] + "…"


# -- labels and fonts ----------------------------------------------------------------------
def plain_label(text: str = "") -> QLabel:
    """A label that never interprets its text as rich text (external data is shown as typed)."""
    label = QLabel(text)
    label.setTextFormat(Qt.TextFormat.PlainText)
    return label


def set_muted(label: QLabel) -> QLabel:
    """Secondary text: the palette's placeholder colour (readable in light and dark themes,
    unlike a disabled label)."""
    label.setForegroundRole(QPalette.ColorRole.PlaceholderText)
    return label


def muted_brush(widget: QWidget) -> QBrush:
    """The palette's disabled text brush (for values a side does not hold)."""
    return widget.palette().brush(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Text)


def bold(label: QLabel, scale: float = 1.0) -> QLabel:
    """``label`` in bold, its font scaled by ``scale``."""
    font = QFont(label.font())
    font.setBold(True)
    if scale != 1.0:
        font.setPointSizeF(font.pointSizeF() * scale)
    label.setFont(font)
    return label


def bold_font(base: QFont) -> QFont:
    font = QFont(base)
    font.setBold(True)
    return font


def mono_font() -> QFont:
    return QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)


# -- plain text --------------------------------------------------------------------------
def plain_tooltip(text: str) -> str:
    """A tooltip that shows ``text`` verbatim: Qt renders tooltips that *look* like markup as
    rich text, so such text is escaped (the characters are shown, never interpreted). A text
    longer than :data:`TOOLTIP_LIMIT` is cut there (with "…")."""
    text = clipped(text, TOOLTIP_LIMIT)
    if not QtGui.Qt.mightBeRichText(text):
        return text
    return "<qt>" + html.escape(text).replace("\n", "<br>") + "</qt>"


_ISOLATED = re.compile(f"{FSI}[^{FSI}{PDI}]*{PDI}")


def shown(text: str, limit: int = 0) -> str:
    """External text as a label or cell shows it: cut to ``limit`` characters (default
    :data:`DISPLAY_LIMIT`, with "…") and isolated from its surroundings when it holds
    right-to-left text or directional controls (``services.core.text_safety.bidi_isolated``):
    a name can neither flood the window nor reorder the text around it. Parts already isolated
    (a name beside its id) are left as they are."""
    text = clipped(text, limit or DISPLAY_LIMIT)
    if text.isascii():
        return text
    rest = _ISOLATED.sub("", text)
    return text if bidi_isolated(rest) == rest else bidi_isolated(text)


def mnemonic_safe(text: str) -> str:
    """Button text is plain, but ``&`` marks a shortcut: double it to show it as typed."""
    return text.replace("&", "&&")


# -- values, ages, times -------------------------------------------------------------------
def human_age(seconds: float) -> str:
    """``"3 d 4 h"``, ``"5 h 12 min"``, ``"12 min"``, ``"< 1 min"``."""
    s = int(seconds)
    days, rest = divmod(s, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min"
    return "< 1 min"


def utc_text(dt: datetime) -> str:
    if dt.tzinfo is not None:
        dt = dt.astimezone(UTC)
    return f"{dt:%Y-%m-%d %H:%M} UTC"


def format_value(value: object) -> str:
    """A side's value as plain text: ``(none)``, yes/no, UTC times, lists joined."""
    if value is None:
        return "(none)"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        return utc_text(value)
    if isinstance(value, list | tuple | set | frozenset):
        return ", ".join(format_value(v) for v in value) or "(empty)"
    if isinstance(value, enum.Enum):
        return str(value.value)
    return str(value)


#: the side values that are amounts of the exception's currency (written without grouping by
#: services.core.reconcile: "184800", "1234.50"); a value already formatted is left as it is
_MONEY_KEY = re.compile(r"^(total|tax|tax at .+|untaxed|refunded)$")


def money_value_text(key: str, value: object, currency: str | None) -> str:
    """A side's value as :func:`format_value` writes it, except an amount of ``currency``, which
    is shown with its exponent, grouping and code ("184,800 JPY", "1,234.50 EUR")."""
    if currency and isinstance(value, str) and _MONEY_KEY.match(key):
        try:
            return format_money(Decimal(value), currency)
        except (InvalidOperation, ValueError):
            pass
    return format_value(value)


def text_of(value: object) -> str:
    """An enum's value, a datetime in UTC, ``""`` for None, else ``str``."""
    if value is None:
        return ""
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, datetime):
        dt = value.astimezone(UTC) if value.tzinfo is not None else value
        return f"{dt:%Y-%m-%d %H:%M:%S}"
    return str(value)


def pretty_json(value: object) -> str:
    """Indented JSON for a read-only box (secrets scrubbed once more, as defence in depth)."""
    return redact(json.dumps(value, indent=2, ensure_ascii=False, default=str))


# -- long text -------------------------------------------------------------------------------
def wrapping_label(text: str = "", limit: int = 4000) -> QLabel:
    """Plain text wrapped over lines, selectable, that never widens its window: a word longer
    than the width is clipped instead (the text is cut at ``limit`` characters, with "…")."""
    label = plain_label(clipped(text, limit))
    label.setWordWrap(True)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    policy = QSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
    policy.setHeightForWidth(True)
    label.setSizePolicy(policy)
    return label


class ElidedLabel(QLabel):
    """One line of plain text that never widens its window: too long, it ends in "…"; the whole
    text is in the tooltip, and the label can be focused (Tab) and copied (Ctrl+C, right-click).
    ``text()`` is the whole text."""

    def __init__(self, text: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setTextFormat(Qt.TextFormat.PlainText)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.setContextMenuPolicy(Qt.ContextMenuPolicy.ActionsContextMenu)
        copy = QAction("Copy", self)
        copy.setShortcut(QKeySequence(QKeySequence.StandardKey.Copy))
        copy.setShortcutContext(Qt.ShortcutContext.WidgetShortcut)
        copy.triggered.connect(self.copy)
        self.addAction(copy)
        self.setText(text)

    def setText(self, text: str) -> None:
        super().setText(text)
        self.setToolTip(plain_tooltip(clipped(text, TOOLTIP_LIMIT)) if text else "")

    def copy(self) -> None:
        QGuiApplication.clipboard().setText(self.text())

    def elided(self) -> str:
        """What is painted: the text, elided to the label's width."""
        width = max(0, self.contentsRect().width() - 2 * self.margin())
        return self.fontMetrics().elidedText(clipped(self.text().replace("\n", " ")), Qt.TextElideMode.ElideRight,
                                             width)

    def minimumSizeHint(self) -> QSize:
        fm = self.fontMetrics()
        return QSize(fm.horizontalAdvance("……"), fm.height() + 2 * self.margin())

    def sizeHint(self) -> QSize:
        fm = self.fontMetrics()
        return QSize(min(fm.horizontalAdvance(clipped(self.text(), 200)), 600) + 2 * self.margin() + 4,
                     fm.height() + 2 * self.margin())

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.setPen(self.palette().color(self.foregroundRole()))
        rect = self.contentsRect().adjusted(self.margin(), self.margin(), -self.margin(), -self.margin())
        painter.drawText(rect, int(self.alignment()) | int(Qt.AlignmentFlag.AlignVCenter), self.elided())
        painter.end()
