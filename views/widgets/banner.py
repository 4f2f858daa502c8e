"""The banner: a plain-text message in a tinted frame with its tone's drawn mark (preflight,
results, verify, export)."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QPainter, QPaintEvent
from PySide6.QtWidgets import QLabel, QSizePolicy, QWidget

from views.widgets.icons import EXECUTING_COLOR, MISSING_COLOR, OK_COLOR, tone_icon


def _tint(color: str, alpha: int) -> str:
    c = QColor(color)
    return f"rgba({c.red()}, {c.green()}, {c.blue()}, {alpha})"


class Banner(QLabel):
    """A plain-text message in a tinted frame: ok (green), bad (red), busy/info (neutral)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setTextFormat(Qt.TextFormat.PlainText)
        self.setWordWrap(True)
        self.setMargin(8)
        self.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        # never squeezed below its wrapped text: the tables around it give way instead
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Minimum)
        self.tone = "info"
        self.show_message("", "info")

    #: room on the left for the tone's mark (views.widgets.icons.tone_icon)
    ICON = 16

    def show_message(self, text: str, tone: str = "info") -> None:
        self.tone = tone
        self.setText(text)
        self.setIndent(self.ICON + 8 if text else -1)
        color = {"ok": OK_COLOR, "bad": MISSING_COLOR, "warn": "#d99a1c", "busy": EXECUTING_COLOR}.get(tone)
        if color is None:
            self.setStyleSheet("QLabel { border: 1px solid palette(mid); border-radius: 4px; }")
        else:
            self.setStyleSheet(f"QLabel {{ background: {_tint(color, 38)}; border: 1px solid {color};"
                               " border-radius: 4px; }")
        self.update()

    def paintEvent(self, event: QPaintEvent) -> None:
        """The text, and the tone's mark at its left (drawn: ok, bad, warn, busy, info)."""
        super().paintEvent(event)
        if not self.text():
            return
        painter = QPainter(self)
        top = self.margin() + max(0, (self.fontMetrics().height() - self.ICON) // 2) + 1
        painter.drawPixmap(self.margin() + 4, top, tone_icon(self.tone).pixmap(self.ICON, self.ICON))
        painter.end()
