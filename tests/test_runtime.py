"""app/runtime.py: the idle full collection and the interpreter settings."""

from __future__ import annotations

import asyncio
import gc
import sys

import pytest

from app import runtime


def test_idle_collection_runs_only_when_not_busy(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    monkeypatch.setattr(runtime.gc, "collect", lambda *a: calls.append(1) or 0)
    busy = [True]

    async def main() -> None:
        task = asyncio.create_task(runtime.collect_when_idle(lambda: busy[0], every=0.01))
        await asyncio.sleep(0.05)
        assert calls == []  # busy: skipped
        busy[0] = False
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert calls


def test_tune_interpreter_sets_the_switch_interval_and_collector_policy() -> None:
    before = sys.getswitchinterval(), gc.get_threshold()
    try:
        runtime.tune_interpreter()
        assert sys.getswitchinterval() == pytest.approx(runtime.SWITCH_INTERVAL_S)
        assert gc.get_threshold() == runtime.GC_THRESHOLDS
    finally:
        sys.setswitchinterval(before[0])
        gc.set_threshold(*before[1])
