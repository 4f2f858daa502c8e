"""Interpreter and event-loop settings that keep the UI thread responsive.

The UI thread shares the GIL with the worker threads (page parsing, snapshot encoding and
decoding, reconciliation). Two things decide how long it can be kept waiting:

- the switch interval: a busy worker is asked to hand the GIL over after this long (CPython's
  default is 5 ms, which lets every worker delay every repaint);
- the cyclic garbage collector, which holds the GIL for the whole of a pass over the
  generations it collects. A refresh of 10,000 customers creates about a million container
  objects that all survive, so CPython's default policy repeatedly walks them: passes of
  0.4 s (middle generation) to seconds (full). Here the young generation is collected every
  10,000 allocations (a few ms), the middle one every second young pass (tens of ms), and the
  full pass is left out: long-lived data is frozen out of the collector's sight instead, each
  time the console publishes a snapshot (``gc.freeze()`` in ``views.adapters``), and cyclic
  garbage is nearly always young, so the young passes collect it. What does reach the old
  generation is collected by :func:`collect_when_idle`: a full pass then only walks what was
  made since the last freeze (the frozen snapshot is skipped), so it is short.
- how many threads run Python code at once: CPU-bound work (parsing, encoding, the rules) runs
  on the single thread of ``services.compute.run_cpu``; the pool behind ``asyncio.to_thread``
  is for blocking I/O (small SQLite reads and writes), bounded here.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

log = logging.getLogger(__name__)

SWITCH_INTERVAL_S = 0.001
GC_THRESHOLDS = (10_000, 2, 1_000_000_000)
WORKER_THREADS = 4


def tune_interpreter() -> None:
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    gc.set_threshold(*GC_THRESHOLDS)


def tune_loop(loop: asyncio.AbstractEventLoop) -> None:
    loop.set_default_executor(ThreadPoolExecutor(WORKER_THREADS, thread_name_prefix="syncdesk-worker"))


IDLE_COLLECT_EVERY_S = 300.0


async def collect_when_idle(busy: Callable[[], bool], every: float = IDLE_COLLECT_EVERY_S) -> None:
    """Every ``every`` seconds, a full collection unless ``busy()`` (a refresh is parsing:
    its records are not frozen yet, and the pass would walk them all)."""
    while True:
        await asyncio.sleep(every)
        if busy():
            continue
        started = time.perf_counter()
        found = gc.collect()
        log.debug("idle collection: %d unreachable objects in %.0f ms", found,
                  (time.perf_counter() - started) * 1000)
