"""The Overview's colours, chosen from the palette so every text stays readable in the light and
the dark appearance (WCAG contrast ≥ 4.5 against the window), and the charts' series colours
(mid-tone accents visible on either background; never the only carrier of meaning: tiles say
"breached", "better", "worse" in words)."""

from __future__ import annotations

from PySide6.QtGui import QColor, QPalette

#: the age buckets' bars, young to old
BUCKET_COLORS = ("#4c9be8", "#2e9d5b", "#d99a1c", "#e07b39", "#d0453b")
SUCCESS_COLOR = "#2e9d5b"
LATENCY_COLOR = "#4c9be8"
HISTOGRAM_COLOR = "#4c9be8"
WITHIN_COLOR = "#2e9d5b"
OVER_COLOR = "#d0453b"

_BAD = {False: "#b3261e", True: "#ff8a80"}   # (dark palette?) -> colour
_GOOD = {False: "#1b7340", True: "#7ddc9f"}


def dark(palette: QPalette) -> bool:
    return palette.color(QPalette.ColorRole.Window).lightness() < 128


def bad_color(palette: QPalette) -> QColor:
    """A breach, a change for the worse: red, dark on a light window and light on a dark one."""
    return QColor(_BAD[dark(palette)])


def good_color(palette: QPalette) -> QColor:
    return QColor(_GOOD[dark(palette)])


def _luminance(color: QColor) -> float:
    def channel(c: float) -> float:
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    return 0.2126 * channel(color.redF()) + 0.7152 * channel(color.greenF()) + 0.0722 * channel(color.blueF())


def contrast(a: QColor, b: QColor) -> float:
    """WCAG 2 contrast ratio of two colours (1..21)."""
    la, lb = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)
