"""Text as the views show it: plain-text labels and tooltips, values, ages, times, JSON, fonts.

Everything that may carry text from an external system goes through ``plain_label`` (or an
item model's DisplayRole, which Qt never interprets as markup) and :func:`plain_tooltip`: a
customer named ``<b>x</b>`` is shown as those eight characters.
"""

from __future__ import annotations

import enum
import html
import json
from datetime import UTC, datetime

from PySide6 import QtGui
from PySide6.QtCore import Qt
from PySide6.QtGui import QBrush, QFont, QFontDatabase, QPalette
from PySide6.QtWidgets import QLabel, QWidget

from services.core.domain import System
from services.core.redaction import redact

SYSTEM_TITLES: dict[System, str] = {System.BILLING: "Billing", System.ERP: "ERP", System.SUPPORT: "Support"}


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
    rich text, so such text is escaped (the characters are shown, never interpreted)."""
    if not QtGui.Qt.mightBeRichText(text):
        return text
    return "<qt>" + html.escape(text).replace("\n", "<br>") + "</qt>"


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
