"""Guards against Qt binding defects that would crash the console."""

from __future__ import annotations

import sys

from PySide6.QtCore import QObject, Signal


class _Emitter(QObject):
    changed = Signal(str, int, object)


def test_signal_emit_keeps_reference_counts(qapp: object) -> None:
    """PySide6 6.12.0 returned ``True`` from ``emit()`` without a reference: after enough
    emissions Python 3.11 aborts with "bool_dealloc". Emitting must leave the counts alone."""
    emitter = _Emitter()
    received: list[object] = []
    emitter.changed.connect(lambda a, b, c: received.append(c))
    before = sys.getrefcount(True), sys.getrefcount(False)
    for i in range(500):
        emitter.changed.emit("x", i, i % 2 == 0)
    received.clear()
    assert (sys.getrefcount(True), sys.getrefcount(False)) == before
