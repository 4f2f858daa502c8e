"""Keyboard focus and filter bars: the Tab order of a page, set explicitly (Qt's default is
creation order, which puts buttons made later — fix buttons, toolbar widgets — wherever they
happened to be made), and filter combos that shrink gracefully in a narrow window."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QComboBox, QWidget


def tab_chain(widgets: Sequence[QWidget | None]) -> None:
    """Tab goes from each widget to the next one in ``widgets`` (``None`` entries are skipped);
    whatever followed the last one before still follows it."""
    chain = [w for w in widgets if w is not None]
    for first, second in pairwise(chain):
        QWidget.setTabOrder(first, second)


def shrinkable(combo: QComboBox, characters: int) -> QComboBox:
    """A filter combo that may shrink to ``characters`` (its text then elides; the pop-up list
    still shows every entry whole): a filter bar fits a 1024-pixel window."""
    combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
    combo.setMinimumContentsLength(characters)
    combo.view().setTextElideMode(Qt.TextElideMode.ElideNone)
    combo.view().setMinimumWidth(combo.view().sizeHintForColumn(0) + 24)
    return combo
