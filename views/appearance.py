"""Light, dark or the system's appearance: a Fusion palette set on the application.

Accent colours (views.widgets.icons) are used on icons and foreground accents only, so both
palettes stay readable; icons that follow the text colour are drawn in the palette's colour
(``views.widgets.icons.arrow_icon``), never a fixed black.
"""

from __future__ import annotations

from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication, QStyleFactory

from views.settings import Appearance

_original: dict[str, object] = {}


def dark_palette() -> QPalette:
    p = QPalette()
    window, base, text = QColor(45, 47, 51), QColor(30, 31, 34), QColor(230, 231, 233)
    roles = {
        QPalette.ColorRole.Window: window,
        QPalette.ColorRole.WindowText: text,
        QPalette.ColorRole.Base: base,
        QPalette.ColorRole.AlternateBase: QColor(38, 40, 43),
        QPalette.ColorRole.ToolTipBase: QColor(55, 57, 61),
        QPalette.ColorRole.ToolTipText: text,
        QPalette.ColorRole.PlaceholderText: QColor(150, 153, 158),
        QPalette.ColorRole.Text: text,
        QPalette.ColorRole.Button: QColor(53, 55, 59),
        QPalette.ColorRole.ButtonText: text,
        QPalette.ColorRole.BrightText: QColor(255, 110, 110),
        QPalette.ColorRole.Light: QColor(70, 72, 77),
        QPalette.ColorRole.Midlight: QColor(60, 62, 66),
        QPalette.ColorRole.Mid: QColor(80, 82, 87),
        QPalette.ColorRole.Dark: QColor(25, 26, 28),
        QPalette.ColorRole.Shadow: QColor(0, 0, 0),
        QPalette.ColorRole.Highlight: QColor(47, 111, 223),
        QPalette.ColorRole.HighlightedText: QColor(255, 255, 255),
        QPalette.ColorRole.Link: QColor(110, 165, 255),
        QPalette.ColorRole.LinkVisited: QColor(170, 140, 255),
    }
    for role, color in roles.items():
        p.setColor(role, color)
    disabled = QColor(120, 122, 127)
    for role in (QPalette.ColorRole.Text, QPalette.ColorRole.ButtonText, QPalette.ColorRole.WindowText):
        p.setColor(QPalette.ColorGroup.Disabled, role, disabled)
    return p


def light_palette() -> QPalette:
    style = QStyleFactory.create("Fusion")
    return style.standardPalette() if style is not None else QPalette()


def apply_appearance(app: QApplication, appearance: Appearance) -> None:
    """Set the palette (and the Fusion style for light and dark, which honours any palette);
    ``system`` restores what the application started with."""
    if not _original:
        _original["style"] = app.style().name()
        _original["palette"] = QPalette(app.palette())
    if appearance is Appearance.SYSTEM:
        original_style = str(_original["style"])
        if app.style().name().lower() != original_style.lower():
            app.setStyle(original_style)
        palette = _original["palette"]
        assert isinstance(palette, QPalette)
        app.setPalette(palette)
        return
    if app.style().name().lower() != "fusion":
        app.setStyle("Fusion")
    app.setPalette(dark_palette() if appearance is Appearance.DARK else light_palette())


def is_dark(palette: QPalette) -> bool:
    return palette.color(QPalette.ColorRole.Window).lightness() < 128
