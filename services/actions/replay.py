"""Replay: actions left queued or executing run again, by themselves.

- When a target's circuit breaker is open the action is *queued* (write-ahead done, nothing
  sent) — or re-queued when the breaker opened under it. :meth:`start_auto_replay` listens to
  every breaker: while one is open it probes the system after the cool-down (one cheap read),
  and when the breaker closes it replays the queued actions (:meth:`replay_pending`).
- 429: the HTTP layer honours ``Retry-After``; bulk actions and replays are paced by each system's
  client rate limiter and concurrency cap plus a per-system cap on actions in flight
  (``bulk_concurrency``).
- After a crash, ``executing`` rows are resumed by :meth:`replay_pending` (on start); they
  are idempotent, so an action whose request had landed is not posted twice.

Every replay that ran something is told to the ``replay_listeners`` (a console shows what changed).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from services.actions.execute import _Execution
from services.actions.model import PENDING_STATUSES, ActionConflict, ActionResult, ActionStatus, Operator, Role
from services.actions.outbox import _work_from_row
from services.actions.roles import require_actor
from services.actions.steps import step_systems
from services.core.domain import System
from services.core.errors import ConnectorError, NotFoundError
from services.io.connectors.base import Connector
from services.io.connectors.stripe import StripeConnector
from services.io.connectors.tryton import TrytonConnector
from services.io.connectors.zendesk import ZendeskConnector
from services.io.http import BreakerState

log = logging.getLogger(__name__)


class _Replay(_Execution):
    """Replays pending outbox rows, on demand and when a system comes back (a part of
    :class:`~services.actions.service.ActionService`, whose ``__init__`` sets the state below)."""

    operator: Operator
    bulk_concurrency: dict[System, int]
    replay_listeners: list[Callable[[list[ActionResult]], None]]
    _replay_lock: asyncio.Lock
    _tasks: set[asyncio.Task[Any]]
    _listeners: list[tuple[Connector, Callable[[BreakerState], None]]]
    _probing: set[System]
    _closed: bool

    async def replay_pending(self) -> list[ActionResult]:
        """Resume queued and executing outbox rows (after a restart, or when a system came
        back); idempotent. Rows whose target is still unreachable stay queued."""
        require_actor(self.operator)
        async with self._replay_lock:
            rows = await asyncio.to_thread(self._rows, PENDING_STATUSES)
            rows = [r for r in reversed(rows) if r.action_id not in self._running]  # oldest first
            sems: dict[str | None, asyncio.Semaphore] = {}

            async def one(row: Any) -> ActionResult | None:
                work = _work_from_row(row)
                work.attempts = row.attempts
                work.replay_by = f"{self.operator.name} ({self.operator.role.value})"
                systems = step_systems(work.steps)
                if any(self._breaker_open(s) for s in systems):
                    return None
                target = work.target
                sem = sems.setdefault(target, asyncio.Semaphore(
                    self.bulk_concurrency.get(System(target), 8) if target else 8))
                async with sem:
                    if work.action_id in self._running:
                        return None
                    try:
                        await self._claim(work, {ActionStatus(row.status)}, ActionStatus.EXECUTING,
                                          f"replay of a {row.status} action")
                    except ActionConflict:
                        return None
                    return await self._run_claimed(work)

            done = await asyncio.gather(*(one(r) for r in rows))
            results = [r for r in done if r is not None]
        if results:
            for listener in list(self.replay_listeners):
                try:
                    listener(results)
                except Exception:
                    log.exception("a replay listener failed")
        return results

    # -- automatic replay ---------------------------------------------------------------------
    def start_auto_replay(self) -> None:
        """Listen to every system's circuit breaker: probe it while open, replay the queued
        actions when it closes (also replays what is pending right now)."""
        loop = asyncio.get_running_loop()
        for system, conn in self.engine.connectors.items():
            def listener(state: BreakerState, system: System = system) -> None:
                if self._closed:
                    return
                if state is BreakerState.OPEN:
                    loop.call_soon(self._spawn, self._probe(system), f"probe-{system.value}")
                elif state is BreakerState.CLOSED:
                    loop.call_soon(self._spawn, self._auto_replay(), "auto-replay")

            conn.client.breaker.listeners.append(listener)
            self._listeners.append((conn, listener))
            if conn.client.breaker.state is BreakerState.OPEN:
                self._spawn(self._probe(system), f"probe-{system.value}")
        self._spawn(self._auto_replay(), "auto-replay")

    def _spawn(self, coro: Any, name: str) -> None:
        if self._closed:
            coro.close()
            return
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _auto_replay(self) -> None:
        if self.operator.role is Role.AUDITOR:
            return
        try:
            results = await self.replay_pending()
        except Exception:
            log.exception("automatic replay failed")
            return
        if results:
            log.info("replayed %d queued actions: %s", len(results),
                     ", ".join(f"{r.action_id} {r.status.value}" for r in results))

    async def _probe(self, system: System) -> None:
        """While ``system``'s breaker is open: after the cool-down, one cheap read (the
        half-open trial); a success closes the breaker, whose listener replays."""
        if system in self._probing:
            return
        self._probing.add(system)
        try:
            conn = self.engine.connectors[system]
            breaker = conn.client.breaker
            while not self._closed and breaker.state is not BreakerState.CLOSED:
                wait = breaker.cooldown - (breaker.clock() - breaker.opened_at)
                await asyncio.sleep(max(0.05, wait + 0.01))
                if breaker.state is BreakerState.CLOSED:
                    break
                try:
                    await _probe_call(conn)
                except NotFoundError:
                    pass
                except ConnectorError as exc:
                    log.info("%s still unreachable: %s", system.value, exc)
        finally:
            self._probing.discard(system)


async def _probe_call(conn: Connector) -> None:
    if isinstance(conn, TrytonConnector):
        await conn.find_party("__syncdesk_probe__")
    elif isinstance(conn, ZendeskConnector):
        await conn.find_organization_by_external_id("__syncdesk_probe__")
    elif isinstance(conn, StripeConnector):
        await conn.client.request("GET", "/v1/customers", operation="probe", params={"limit": 1})
    else:  # pragma: no cover - every connector kind is listed above
        await conn.list_ids()
