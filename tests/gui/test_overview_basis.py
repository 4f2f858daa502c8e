"""A tile says what its figure rests on (``Figure.note``: how many postings a latency covers,
how many resolutions a time to resolve, from when the exception history runs), in plain text,
on the tile and in its tooltip; a figure without a note shows no such line. An SLA line keeps
its number and its unit together."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from services.metrics.model import Comparison, Figure, SlaTarget, Unit
from views.overview.tile import FigureTile

pytestmark = pytest.mark.gui


def test_a_tile_says_what_its_figure_rests_on(qtbot: QtBot) -> None:
    tile = FigureTile()
    qtbot.addWidget(tile)
    tile.show()
    note = "3 of 189 invoices (posting time known)"
    tile.set_figure(Figure("posting_latency_p95", "Posting latency p95", 585.0, 170.0, Unit.SECONDS, basis=3,
                           note=note))
    assert tile.basis.isVisibleTo(tile) and tile.basis.text() == note
    assert tile.basis.textFormat() is Qt.TextFormat.PlainText
    assert f"Over: {note}" in tile.toolTip() and note in tile.accessibleDescription()
    tile.set_figure(Figure("open_exceptions", "Open exceptions", 38.0, None, Unit.COUNT))
    assert not tile.basis.isVisibleTo(tile) and "Over:" not in tile.toolTip()


def test_a_breached_percentage_target_keeps_its_unit_with_its_number(qtbot: QtBot) -> None:
    tile = FigureTile()
    qtbot.addWidget(tile)
    target = SlaTarget("invoice_sync_success_rate", Comparison.AT_LEAST, 99.5)
    tile.set_figure(Figure("invoice_sync_success_rate", "Invoice sync success rate", 97.5, 98.8, Unit.PERCENT,
                           target=target, breached=True))
    assert tile.sla.text() == "SLA breached: target\u00a0≥\u00a099.50\u00a0%"
