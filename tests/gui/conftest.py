"""Fixtures of the GUI tests: the module's qasync loop (the live tests), a scripted action
service and an adapter over it (the action-view tests)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest
import qasync
from PySide6.QtWidgets import QApplication

from tests.gui.fake_actions import FakeActionService, amount_mismatch, missing_in_erp, tier_mismatch, unmapped
from views.action_adapter import ActionAdapter


@pytest.fixture
def service() -> FakeActionService:
    return FakeActionService([amount_mismatch(), unmapped(), *[missing_in_erp(n) for n in range(10, 16)],
                              tier_mismatch(30)])


@pytest.fixture
async def adapter(service: FakeActionService) -> AsyncIterator[ActionAdapter]:
    a = ActionAdapter(service)  # type: ignore[arg-type]
    yield a
    await a.aclose()


@pytest.fixture(scope="module")
def qloop() -> Iterator[asyncio.AbstractEventLoop]:
    """One qasync loop for the module; the loop outlives the window, as in the console."""
    app = QApplication.instance() or QApplication([])
    assert isinstance(app, QApplication)
    app.setQuitOnLastWindowClosed(False)
    loop = qasync.QEventLoop(app)
    yield loop
    loop.run_until_complete(loop.shutdown_asyncgens())
    loop.close()
