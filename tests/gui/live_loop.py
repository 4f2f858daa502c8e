"""What the live GUI tests share: the console's qasync loop, and saving a rendered widget.

The live tests run the real window as the console runs it — Qt on one qasync loop, the
services on a ServiceLoop thread — so a module keeps ONE qasync loop (the ``qloop`` fixture
in ``tests/gui/conftest.py``), as the console has one per process (creating and closing several
qasync loops in one process is not something the console ever does).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import QWidget


def run_qasync(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, Any]) -> Any:
    return loop.run_until_complete(coro)


def save_png(pix: QPixmap, tmp_path: Path, name: str) -> Path:
    """Save a rendered widget as ``tmp_path/name.png`` (and into $SYNCDESK_SHOTS when set, for a
    human to look at)."""
    path = tmp_path / f"{name}.png"
    assert pix.save(str(path))
    extra = os.environ.get("SYNCDESK_SHOTS")
    if extra:
        Path(extra).mkdir(parents=True, exist_ok=True)
        assert pix.save(str(Path(extra) / f"{name}.png"))
    return path


def grab_png(widget: QWidget, tmp_path: Path, name: str) -> Path:
    """Render a shown widget of a running console (no event processing here: the loop runs)."""
    return save_png(widget.grab(), tmp_path, name)
