"""The CPU thread (services.compute) and piecewise release (services.core.sysdata.release)."""

from __future__ import annotations

import asyncio
import contextvars
import threading

import pytest

from services.compute import run_cpu
from services.core.sysdata import RELEASE_BATCH, release

WHO: contextvars.ContextVar[str] = contextvars.ContextVar("who", default="nobody")


def test_cpu_jobs_run_one_at_a_time_on_one_thread_with_the_callers_context() -> None:
    async def main() -> None:
        WHO.set("operator")
        active = 0
        peak = 0
        lock = threading.Lock()

        def job(i: int) -> tuple[int, str, int]:
            nonlocal active, peak
            with lock:
                active += 1
                peak = max(peak, active)
            total = sum(range(20_000))  # some CPU work
            with lock:
                active -= 1
            return threading.get_ident(), WHO.get(), i + total * 0

        results = await asyncio.gather(*(run_cpu(job, i) for i in range(8)))
        assert {r[0] for r in results} != {threading.get_ident()}  # not the loop's thread
        assert len({r[0] for r in results}) == 1  # one CPU thread
        assert peak == 1
        assert [r[1] for r in results] == ["operator"] * 8
        assert [r[2] for r in results] == list(range(8))

    asyncio.run(main())


def test_cpu_job_errors_reach_the_caller() -> None:
    def boom() -> None:
        raise ValueError("bad page")

    async def main() -> None:
        with pytest.raises(ValueError, match="bad page"):
            await run_cpu(boom)

    asyncio.run(main())


def test_release_empties_lists_and_dicts_of_any_size() -> None:
    big = list(range(RELEASE_BATCH * 3 + 7))
    table = {i: object() for i in range(RELEASE_BATCH * 2 + 1)}
    small: list[int] = [1]
    release(big, table, small, [], {})
    assert big == [] and table == {} and small == []
