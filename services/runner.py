"""Where the services run: their own asyncio loop on a network thread, or inline.

The console's UI thread runs Qt and a qasync loop. Reading HTTP responses (httpx, httpcore,
h11, anyio: a few Python calls per chunk) and scheduling thousands of small callbacks kept
that thread ~99 % busy during a refresh, so timers and paints waited behind them. The
services therefore run on a :class:`ServiceLoop`: a plain asyncio loop in a thread of its
own. The adapters in ``views/`` await :meth:`ServiceLoop.call` from the UI loop; the UI thread
only schedules, receives results and draws.

Rules (the adapters follow them; services need not know):

- Everything that touches a service's async state (HTTP clients, rate limiters, locks, the
  action service's background tasks) runs on the service loop, from its first use to
  ``aclose``: asyncio objects bind to the loop that first waits on them.
- Callbacks the services call (progress) run on the service thread; an adapter wraps them
  with :func:`post_to` so the work it does with them happens on its own loop.
- Cancelling the awaiting task cancels the service task and waits until it has finished
  (a cancelled refresh has stopped writing before a new one starts).

:class:`InlineLoop` has the same interface and runs the coroutine on the caller's loop (tests
and command-line tools that have no UI to keep responsive).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
from collections.abc import Callable, Coroutine
from typing import Any, Protocol, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


class Runner(Protocol):
    """What the adapters need: run a service coroutine, wherever the services live."""

    async def call(self, coro: Coroutine[Any, Any, T]) -> T: ...

    def spawn(self, fn: Callable[[], None]) -> None: ...


class InlineLoop:
    """Run service coroutines on the caller's own loop (no thread)."""

    async def call(self, coro: Coroutine[Any, Any, T]) -> T:
        return await coro

    def spawn(self, fn: Callable[[], None]) -> None:
        asyncio.get_running_loop().call_soon(fn)


class ServiceLoopClosed(RuntimeError):
    """The service loop has been stopped; nothing more can run on it."""


class ServiceLoop:
    """An asyncio loop on a daemon thread of its own, for the services.

    ``start()`` returns once the loop runs; ``stop()`` cancels what is still running on it,
    closes async generators and the loop's executor, and joins the thread.
    """

    def __init__(self, name: str = "syncdesk-services",
                 configure: Callable[[asyncio.AbstractEventLoop], None] | None = None) -> None:
        self.name = name
        self._configure = configure
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._released: asyncio.Future[None] | None = None
        self._stopping = False

    # -- life cycle --------------------------------------------------------------------------
    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise ServiceLoopClosed("the service loop is not running")
        return self._loop

    @property
    def running(self) -> bool:
        return self._loop is not None and not self._stopping and self._loop.is_running()

    def start(self) -> ServiceLoop:
        if self._thread is not None:
            return self
        loop = asyncio.new_event_loop()
        if self._configure is not None:
            self._configure(loop)
        self._loop = loop
        self._released = loop.create_future()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()
        self._ready.wait()
        return self

    def _run(self) -> None:
        loop = self.loop
        asyncio.set_event_loop(loop)
        loop.call_soon(self._ready.set)
        try:
            # until stop(), as the loop's root task: anyio (starlette's run_in_threadpool in the demo
            # servers) keeps its worker threads for the root task it finds through run_until_complete;
            # under run_forever every request would start and stop a worker thread of its own
            loop.run_until_complete(self._until_released())
        finally:
            try:
                loop.run_until_complete(self._cancel_all())
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.run_until_complete(loop.shutdown_default_executor())
            except Exception:  # a clean-up failure must not hang the shutdown
                log.exception("service loop clean-up failed")
            finally:
                asyncio.set_event_loop(None)
                loop.close()

    async def _until_released(self) -> None:
        assert self._released is not None
        await self._released

    def _release(self) -> None:
        if self._released is not None and not self._released.done():
            self._released.set_result(None)

    @staticmethod
    async def _cancel_all() -> None:
        me = asyncio.current_task()
        tasks = [t for t in asyncio.all_tasks() if t is not me and not t.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=5.0)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the loop (what still runs on it is cancelled) and join the thread."""
        if self._thread is None or self._loop is None or self._stopping:
            return
        self._stopping = True
        with contextlib.suppress(RuntimeError):  # already closed
            self._loop.call_soon_threadsafe(self._release)
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("the service thread did not stop within %.0f s", timeout)

    def __enter__(self) -> ServiceLoop:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- running things on it ------------------------------------------------------------------
    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Run ``coro`` on the service loop from any thread (fire and forget, or block on
        ``.result()`` from a thread that is not the service thread)."""
        if not self.running:
            coro.close()
            raise ServiceLoopClosed("the service loop is not running")
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def spawn(self, fn: Callable[[], None]) -> None:
        """Call ``fn()`` on the service thread (e.g. to start a service's background tasks)."""
        if not self.running:
            raise ServiceLoopClosed("the service loop is not running")
        self.loop.call_soon_threadsafe(fn)

    async def call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Await ``coro`` running on the service loop, from another loop (the UI's).

        If the awaiting task is cancelled, the service task is cancelled too and this waits
        until it has really finished: then it re-raises ``CancelledError``, or, when the service
        coroutine handled the cancellation and returned or raised, passes that on (as an
        inline ``await`` would).
        """
        loop = self._loop
        if loop is None or not self.running:
            coro.close()
            raise ServiceLoopClosed("the service loop is not running")
        caller = asyncio.get_running_loop()
        if caller is loop:  # already on the service loop
            return await coro
        outcome: asyncio.Future[T] = caller.create_future()
        holder: list[asyncio.Task[T]] = []

        def settle(task: asyncio.Task[T]) -> None:  # service thread
            with contextlib.suppress(RuntimeError):  # the caller's loop is closed: nobody waits
                caller.call_soon_threadsafe(_copy_outcome, task, outcome)

        def begin() -> None:  # service thread
            task = loop.create_task(coro)
            holder.append(task)
            task.add_done_callback(settle)

        loop.call_soon_threadsafe(begin)
        try:
            return await asyncio.shield(outcome)
        except asyncio.CancelledError:
            if outcome.done():
                raise
            # call_soon_threadsafe is FIFO, so the task exists when this runs
            loop.call_soon_threadsafe(lambda: holder and holder[0].cancel())
            await asyncio.wait([outcome])  # cancelled again: stop waiting (CancelledError)
            if outcome.cancelled():
                raise
        # the service coroutine handled the cancellation itself and returned (e.g. a bulk run's
        # partial result): the caller gets what it returned, as if it had run inline
        return outcome.result()


    async def call_later(self, make: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """:meth:`call` of ``make()``: the coroutine is only made when it is about to run."""
        return await self.call(make())


def _copy_outcome(task: asyncio.Task[T], outcome: asyncio.Future[T]) -> None:
    if outcome.done():
        return
    if task.cancelled():
        outcome.cancel()
        return
    exc = task.exception()
    if exc is not None:
        outcome.set_exception(exc)
    else:
        outcome.set_result(task.result())


def post_to(loop: asyncio.AbstractEventLoop, fn: Callable[..., None]) -> Callable[..., None]:
    """``fn`` wrapped so that calling it from any thread runs it on ``loop`` (in order).
    Called on ``loop``'s own thread, it runs at once."""
    owner = threading.get_ident()

    def posted(*args: Any) -> None:
        if threading.get_ident() == owner:
            fn(*args)
            return
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody listens any more
            loop.call_soon_threadsafe(fn, *args)

    return posted
