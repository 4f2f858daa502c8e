"""One worker thread for CPU-bound work: parsing and mapping pages, encoding and decoding the
snapshot, evaluating the rules, building what the views show.

Under the GIL, Python code in several threads does not run faster than in one; it only adds
threads that the UI (event-loop) thread has to win the GIL back from, every time it lets go
of it (each socket call, each wait for events). Measured on a 10,000-customer refresh with the
window open: with four worker threads parsing at once the UI thread's longest stall was
80–110 ms, with this single CPU thread 38–52 ms. Blocking I/O (small SQLite reads and writes,
the audit log) keeps using ``asyncio.to_thread``, so it never queues behind a long parse.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

_EXECUTOR = ThreadPoolExecutor(1, thread_name_prefix="syncdesk-cpu")


async def run_cpu(fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """``asyncio.to_thread`` for CPU-bound work: runs ``fn`` on the CPU thread (jobs queue,
    one at a time). Like ``to_thread``, a job already running is not interrupted by cancelling
    the awaiting task; it finishes and its result is dropped."""
    loop = asyncio.get_running_loop()
    call = functools.partial(contextvars.copy_context().run, fn, *args, **kwargs)
    return await loop.run_in_executor(_EXECUTOR, call)
