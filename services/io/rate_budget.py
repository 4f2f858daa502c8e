"""A request-rate budget shared by every process of one machine.

Each :class:`~services.io.http.ResilientClient` paces its own requests; two processes talking
to the same system (a console and a scheduled ``reconcile``, two ``fix`` runs) would each use
the whole budget and together trip the vendor's 429s. A :class:`SharedRateLimiter` keeps the
budget in a small SQLite file (``SYNCDESK_HOME/rate-budget.db``, one row per system and base
URL) that every process reserves its requests from, one ``BEGIN IMMEDIATE`` transaction per
request.

The budget is the generic cell rate algorithm (GCRA) with reservation: the row holds the
*theoretical arrival time* ``tat``; a request at ``now`` may leave at
``max(now, max(tat, now) - tolerance)`` and moves ``tat`` on by one interval (``1 / rate``).
``tolerance = (burst - 1) / rate`` lets ``burst`` requests leave at once after a pause, like a
bucket of ``burst`` tokens refilled at ``rate`` per second (the aiolimiter bucket of a single
process: the same sustained rate and burst). A reservation is never given back: a request
cancelled while it waits for its slot only makes the others a little more careful.

Times are the wall clock (``time.time()``: the one clock every process shares); a row more
than :data:`MAX_AHEAD` seconds in the future (the clock was set back) is reset. The database
is touched on one thread of its own per process (``sqlite3`` calls block), never on the event
loop; if it cannot be opened or written, the limiter paces this process alone (same
algorithm, in memory) and says so once in the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

log = logging.getLogger(__name__)

#: a budget row further ahead than this (seconds) comes from a clock set back: start afresh
MAX_AHEAD = 300.0
#: how long a process waits for another's transaction before pacing alone (ms): a reservation
#: holds the lock for well under a millisecond
BUSY_TIMEOUT_MS = 2_000
#: how long a reservation keeps waiting for a busy budget file before pacing alone (s)
BUSY_GIVE_UP = 30.0
#: after a failure of the shared file, how long this process paces alone before trying it again (s)
RETRY_SHARED_AFTER = 60.0

_EXECUTOR = ThreadPoolExecutor(1, thread_name_prefix="syncdesk-rate-budget")
_connections: dict[Path, sqlite3.Connection] = {}
_conn_lock = threading.Lock()


def _connect(path: Path) -> sqlite3.Connection:
    """The process's connection to ``path`` (created 0600 if new), on the budget thread."""
    with _conn_lock:
        conn = _connections.get(path)
        if conn is not None:
            return conn
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):  # created owner-only from the first byte
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                               check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=OFF")  # a lost budget after a crash costs nothing
        conn.execute("CREATE TABLE IF NOT EXISTS rate_budget (key TEXT PRIMARY KEY, tat REAL NOT NULL)")
        _connections[path] = conn
        return conn


def next_slot(tat: float | None, now: float, interval: float, tolerance: float) -> tuple[float, float]:
    """GCRA with reservation: (when the request may leave, the new theoretical arrival time)."""
    if tat is None or tat > now + tolerance + MAX_AHEAD:
        tat = now
    base = max(tat, now)
    return max(now, base - tolerance), base + interval


class SharedRateLimiter:
    """``await acquire()`` before each request: ``rate`` per second sustained, ``burst`` at
    once after a pause, counted across every process that uses the same file and key."""

    def __init__(self, path: Path, key: str, rate: float, burst: float = 1.0) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.path = path
        self.key = key
        self.rate = rate
        self.burst = max(1.0, burst)
        self.interval = 1.0 / rate
        self.tolerance = (self.burst - 1.0) * self.interval
        #: this process's own budget, used only when the shared file cannot be
        self._local_tat: float | None = None
        self._shared = True
        self._retry_shared_at = 0.0

    def _reserve_shared(self) -> float:
        conn = _connect(self.path)
        conn.execute("BEGIN IMMEDIATE")
        try:
            row = conn.execute("SELECT tat FROM rate_budget WHERE key = ?", (self.key,)).fetchone()
            send_at, tat = next_slot(row[0] if row else None, time.time(), self.interval, self.tolerance)
            conn.execute("INSERT INTO rate_budget (key, tat) VALUES (?, ?) "
                         "ON CONFLICT(key) DO UPDATE SET tat = excluded.tat", (self.key, tat))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        self._local_tat = tat
        return send_at

    def _reserve(self) -> float:
        """On the budget thread: reserve the next slot; the wall-clock time it starts. A busy
        file (another process's transaction, a loaded machine) is waited for, up to
        :data:`BUSY_GIVE_UP` seconds; a file that cannot be used paces this process alone for
        :data:`RETRY_SHARED_AFTER` seconds, then the shared budget is tried again."""
        now = time.monotonic()
        if not self._shared and now >= self._retry_shared_at:
            self._shared = True
        if self._shared:
            give_up = now + BUSY_GIVE_UP
            while True:
                try:
                    return self._reserve_shared()
                except sqlite3.OperationalError as exc:
                    busy = "locked" in str(exc) or "busy" in str(exc)
                    if busy and time.monotonic() < give_up:
                        continue  # each attempt already waited busy_timeout for the other process
                    self._fall_back(exc)
                    break
                except (sqlite3.Error, OSError) as exc:
                    self._fall_back(exc)
                    break
        send_at, self._local_tat = next_slot(self._local_tat, time.time(), self.interval, self.tolerance)
        return send_at

    def _fall_back(self, exc: BaseException) -> None:
        self._shared = False
        self._retry_shared_at = time.monotonic() + RETRY_SHARED_AFTER
        log.warning("the shared request budget %s cannot be used (%s); pacing %s for this process alone for "
                    "%.0f s", self.path, exc, self.key, RETRY_SHARED_AFTER)

    async def acquire(self) -> None:
        loop = asyncio.get_running_loop()
        send_at = await loop.run_in_executor(_EXECUTOR, self._reserve)
        delay = send_at - time.time()
        if delay > 0:
            await asyncio.sleep(delay)


def close_all() -> None:
    """Close the process's budget connections (tests; a process simply exits)."""
    def close() -> None:
        with _conn_lock:
            for conn in _connections.values():
                conn.close()
            _connections.clear()

    _EXECUTOR.submit(close).result()
