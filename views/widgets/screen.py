"""Fitting windows and dialogs to the screen they open on: never larger than its available
area (a 2× scale on a laptop halves it), whatever size they would like."""

from __future__ import annotations

from PySide6.QtCore import QRect, QSize
from PySide6.QtGui import QGuiApplication, QScreen
from PySide6.QtWidgets import QWidget

#: how much of the available area a window may take at most
SHARE = 0.92


def available(widget: QWidget | None = None) -> QRect:
    """The available geometry (logical pixels) of the screen ``widget`` (or its parent) is on,
    else of the primary screen."""
    screen: QScreen | None = None
    probe = widget
    while probe is not None and screen is None:
        screen = probe.screen() if probe.isWindow() or probe.parentWidget() is None else None
        probe = probe.parentWidget()
    screen = screen or QGuiApplication.primaryScreen()
    return screen.availableGeometry() if screen is not None else QRect(0, 0, 1280, 800)


def fitted(preferred: QSize, area: QRect, minimum: QSize | None = None) -> QSize:
    """``preferred`` shrunk to :data:`SHARE` of ``area`` (never below ``minimum`` unless the
    area itself is smaller)."""
    width = min(preferred.width(), int(area.width() * SHARE))
    height = min(preferred.height(), int(area.height() * SHARE))
    if minimum is not None:
        width = min(max(width, minimum.width()), area.width())
        height = min(max(height, minimum.height()), area.height())
    return QSize(width, height)


def fit_to_screen(widget: QWidget, preferred: QSize) -> QSize:
    """Resize ``widget`` to ``preferred``, or less where the screen is smaller; its minimum size
    is lowered to fit too (the content scrolls instead)."""
    area = available(widget)
    size = fitted(preferred, area)
    minimum = widget.minimumSize()
    if minimum.width() > area.width() or minimum.height() > area.height():
        widget.setMinimumSize(min(minimum.width(), area.width()), min(minimum.height(), area.height()))
    widget.resize(size)
    return size
