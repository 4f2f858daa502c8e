"""Fixtures of the action-view GUI tests: a scripted action service and an adapter over it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

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
