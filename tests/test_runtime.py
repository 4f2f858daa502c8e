"""app/runtime.py: the idle full collection and the interpreter settings."""

from __future__ import annotations

import asyncio
import gc
import sys

import pytest

from app import runtime

DEADLINE_S = 30.0  # generous: each step needs a few 10 ms ticks; a loaded 2-core machine may stall for seconds


def test_idle_collection_runs_only_when_not_busy(monkeypatch: pytest.MonkeyPatch) -> None:
    busy = [True]
    collected_while_busy: list[bool] = []

    async def main() -> None:
        checks_while_busy = 0
        three_busy_ticks = asyncio.Event()
        collected = asyncio.Event()

        def collect(*args: object) -> int:
            collected_while_busy.append(busy[0])
            collected.set()
            return 0

        def is_busy() -> bool:
            nonlocal checks_while_busy
            if busy[0]:
                checks_while_busy += 1
                if checks_while_busy >= 3:
                    three_busy_ticks.set()
            return busy[0]

        monkeypatch.setattr(runtime.gc, "collect", collect)
        task = asyncio.create_task(runtime.collect_when_idle(is_busy, every=0.01))
        await asyncio.wait_for(three_busy_ticks.wait(), DEADLINE_S)
        assert collected_while_busy == []  # three ticks while busy: each one skipped
        busy[0] = False
        await asyncio.wait_for(collected.wait(), DEADLINE_S)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert collected_while_busy and not any(collected_while_busy)


def test_tune_interpreter_sets_the_switch_interval_and_collector_policy() -> None:
    before = sys.getswitchinterval(), gc.get_threshold()
    try:
        runtime.tune_interpreter()
        assert sys.getswitchinterval() == pytest.approx(runtime.SWITCH_INTERVAL_S)
        assert gc.get_threshold() == runtime.GC_THRESHOLDS
    finally:
        sys.setswitchinterval(before[0])
        gc.set_threshold(*before[1])
