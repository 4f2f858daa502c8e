"""The service loop: services run on a thread of their own, awaited from the caller's loop
(the console's UI loop) with results, errors, cancellation and callbacks carried across."""

from __future__ import annotations

import asyncio
import threading
import warnings
from collections.abc import Iterator

import pytest

from services.runner import InlineLoop, ServiceLoop, ServiceLoopClosed, post_to


@pytest.fixture
def services() -> Iterator[ServiceLoop]:
    with ServiceLoop(name="test-services") as loop:
        yield loop


def test_call_runs_on_the_service_thread_and_returns_its_result(services: ServiceLoop) -> None:
    async def where() -> str:
        await asyncio.sleep(0)
        return threading.current_thread().name

    async def main() -> None:
        assert await services.call(where()) == "test-services"
        assert await services.call_later(where) == "test-services"  # the coroutine made when it runs
        # a loop-bound object made there stays usable there across calls
        lock = await services.call(_make_lock())
        assert await services.call(_use(lock)) == "used"

    asyncio.run(main())


async def _make_lock() -> asyncio.Lock:
    lock = asyncio.Lock()
    async with lock:
        pass
    return lock


async def _use(lock: asyncio.Lock) -> str:
    async with lock:
        await asyncio.sleep(0.01)
        return "used"


def test_errors_come_back_as_raised(services: ServiceLoop) -> None:
    class Boom(RuntimeError):
        pass

    async def fail() -> None:
        raise Boom("no")

    async def main() -> None:
        with pytest.raises(Boom, match="no"):
            await services.call(fail())

    asyncio.run(main())


def test_cancelling_the_caller_cancels_the_service_task_and_waits_for_it(services: ServiceLoop) -> None:
    events: list[str] = []
    started = threading.Event()

    async def work() -> None:
        started.set()
        try:
            await asyncio.sleep(30)
        finally:
            await asyncio.sleep(0.05)  # clean-up that takes a while (e.g. a rollback)
            events.append("service cleaned up")

    async def main() -> None:
        task = asyncio.create_task(services.call(work()))
        await asyncio.to_thread(started.wait, 5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        events.append("caller saw the cancellation")

    asyncio.run(main())
    assert events == ["service cleaned up", "caller saw the cancellation"]


def test_a_service_that_handles_the_cancellation_returns_its_partial_result(services: ServiceLoop) -> None:
    started = threading.Event()

    async def bulk() -> list[str]:
        done = ["first"]
        started.set()
        try:
            await asyncio.sleep(30)
            done.append("second")
        except asyncio.CancelledError:
            pass  # as ActionService.bulk: stop, report what was done
        return done

    async def main() -> list[str]:
        task = asyncio.create_task(services.call(bulk()))
        await asyncio.to_thread(started.wait, 5)
        task.cancel()
        return await task

    assert asyncio.run(main()) == ["first"]


def test_post_to_runs_callbacks_on_the_callers_loop_in_order(services: ServiceLoop) -> None:
    seen: list[tuple[int, str]] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        ui_thread = threading.current_thread().name
        fifty = asyncio.Event()

        def record(i: int) -> None:
            seen.append((i, threading.current_thread().name))
            if len(seen) == 50:
                fifty.set()

        sink = post_to(loop, record)

        async def report() -> None:
            for i in range(50):
                sink(i)
                if i % 10 == 0:
                    await asyncio.sleep(0)

        await services.call(report())
        await asyncio.wait_for(fifty.wait(), 30)  # generous deadline: the callbacks are already queued
        assert [i for i, _ in seen] == list(range(50))
        assert {name for _, name in seen} == {ui_thread}
        sink(99)  # called on the owner's own thread: runs at once
        assert seen[-1][0] == 99

    asyncio.run(main())


def test_stop_cancels_what_runs_there_and_later_calls_are_refused() -> None:
    services = ServiceLoop().start()
    cleaned = threading.Event()
    running = threading.Event()

    async def forever() -> None:
        running.set()
        try:
            await asyncio.sleep(3600)
        finally:
            cleaned.set()

    services.submit(forever())
    assert running.wait(5)
    services.stop()
    assert cleaned.is_set()
    assert not services.running

    async def late() -> None:
        pass

    async def main() -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # the refused coroutine is closed, not left un-awaited
            with pytest.raises(ServiceLoopClosed):
                await services.call(late())
            with pytest.raises(ServiceLoopClosed):
                services.submit(late())
            with pytest.raises(ServiceLoopClosed):
                services.spawn(lambda: None)

    asyncio.run(main())
    services.stop()  # twice is harmless


def test_spawn_runs_a_plain_function_on_the_service_loop(services: ServiceLoop) -> None:
    got: list[asyncio.AbstractEventLoop] = []
    done = threading.Event()

    def start_background() -> None:  # e.g. ActionService.start_auto_replay: needs a running loop
        got.append(asyncio.get_running_loop())
        done.set()

    services.spawn(start_background)
    assert done.wait(5)
    assert got == [services.loop]


def test_a_call_made_on_the_service_loop_itself_runs_inline(services: ServiceLoop) -> None:
    async def inner() -> str:
        return threading.current_thread().name

    async def outer() -> str:
        return await services.call(inner())

    assert services.submit(outer()).result(5) == "test-services"


def test_the_inline_runner_awaits_on_the_callers_loop() -> None:
    async def main() -> None:
        inline = InlineLoop()
        here = threading.current_thread().name

        async def where() -> str:
            return threading.current_thread().name

        assert await inline.call(where()) == here
        ran = asyncio.Event()
        inline.spawn(ran.set)
        await asyncio.wait_for(ran.wait(), 1)

    asyncio.run(main())
