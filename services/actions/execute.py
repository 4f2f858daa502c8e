"""Executing an outbox row once it is claimed: the steps in order (retried as a whole while a
system is briefly unavailable), verify after write (:mod:`services.actions.verify`), and the
outcome entry committed together with the row's final status (:mod:`services.actions.outbox`).
:meth:`ActionService.execute <services.actions.service.ActionService.execute>` does the
write-ahead and hands the claimed row here; a re-run, a retry and a replay come here too.

- 5xx, timeouts and dropped answers are retried by the HTTP layer where safe; an action whose
  step still fails this way is re-run from the start (idempotent) after a short pause, up to
  ``len(retry_delays) + 1`` attempts, then ``failed``.
- When a target's circuit breaker opens under the action it is re-queued (:class:`_Requeue`) and
  replayed when the system returns (:mod:`services.actions.replay`).
- An ERP warning is never acknowledged silently: the action fails with the warning's name, and a
  re-run with ``value={"acknowledge_warning": name}`` acknowledges it.
- The outcome is kept with the exception too (:meth:`_Execution._mark`): a failed fix leaves its
  exception open with "last attempt failed at …: why" (``SyncException.last_failure``), a flag
  shows who flagged it, when and why (``SyncException.flagged``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

from services.actions.accepted import _Accepted
from services.actions.encoding import _canonical, _iso, _parse_dt
from services.actions.model import ActionResult, ActionStatus, Clock
from services.actions.outbox import _claim_row, _finish_row, _row, _row_by_key, _rows, _Work
from services.actions.step_handlers import Connections, run_step
from services.actions.steps import AcceptDifference, FlagForReview, step_systems
from services.actions.verify import _Coalescer, _verify
from services.core.domain import ExceptionMark, System
from services.core.errors import ConnectorError, RateLimitedError, RemoteWarning, UnavailableError
from services.core.redaction import redact
from services.engine import Engine
from services.io.http import BreakerState
from services.store.audit import PROFILE_KEY, AuditEntry, AuditLog, GroupCommitter
from services.store.exception_history import FAILED, FLAGGED

log = logging.getLogger(__name__)


class _Requeue(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class _Execution:
    """Runs claimed outbox rows (a part of :class:`~services.actions.service.ActionService`,
    whose ``__init__`` sets the state below)."""

    engine: Engine
    audit: AuditLog
    committer: GroupCommitter
    clock: Clock
    retry_delays: tuple[float, ...]
    #: the connection profile the service acts through, named in every audit entry's request
    profile: str | None
    _running: set[str]  # action ids executing in this process
    _coalescer: _Coalescer
    _accepted: dict[str, _Accepted]

    def _breaker_open(self, system: System) -> bool:
        conn = self.engine.connectors.get(system)
        if conn is None:
            return False
        br = conn.client.breaker
        return br.state is BreakerState.OPEN and br.clock() - br.opened_at < br.cooldown

    # -- the outbox rows ------------------------------------------------------------------
    def _row_by_key(self, key: str) -> Any:
        return _row_by_key(self.audit.storage.engine, key)

    def _row(self, action_id: str) -> Any:
        return _row(self.audit.storage.engine, action_id)

    def _rows(self, statuses: Iterable[ActionStatus]) -> list[Any]:
        return _rows(self.audit.storage.engine, statuses)

    # -- running a claimed row ----------------------------------------------------------
    def _entry(self, work: _Work, phase: str, outcome: str, *, after: dict[str, Any] | None = None,
               error: str | None = None) -> AuditEntry:
        request: dict[str, Any] = {"calls": work.calls, "idempotency_key": work.key, "attempt": work.attempts}
        if work.replay_by:
            request["replayed_by"] = work.replay_by
        if self.profile is not None:
            request[PROFILE_KEY] = self.profile
        return AuditEntry(
            operator=work.operator, role=work.role, action_id=work.action_id, action_kind=work.kind.value,
            phase=phase, outcome=outcome, exception_id=work.exception_id, customer_id=work.customer_id,
            target_system=work.target, request=request, before=work.before, after=after or {}, error=error,
            reason=work.reason or None, at=self.clock())

    async def _claim(self, work: _Work, from_statuses: set[ActionStatus], to: ActionStatus, note: str) -> None:
        """Move a row to ``to`` (attempt +1 when executing) with an intent entry, in one transaction."""
        now = _iso(self.clock())
        bump = 1 if to is ActionStatus.EXECUTING else 0
        work.attempts += bump
        claim = _claim_row(work, from_statuses, to, bump, now)
        entry = self._entry(work, "intent", "pending" if to is ActionStatus.EXECUTING else "queued")
        entry.request["note"] = note
        await self.committer.append(entry, claim)

    async def _run_claimed(self, work: _Work) -> ActionResult:
        """Run a row already claimed as EXECUTING: steps, verify, outcome."""
        self._running.add(work.action_id)
        try:
            return await asyncio.shield(self._run_and_finish(work))
        finally:
            self._running.discard(work.action_id)

    async def _run_and_finish(self, work: _Work) -> ActionResult:
        try:
            after = await self._perform_with_retries(work)
        except _Requeue as rq:
            return await self._finish(work, ActionStatus.QUEUED, rq.message, after={}, error=rq.message)
        except RemoteWarning as w:
            msg = (f"the ERP asks for a confirmation: {w.message}. Nothing was posted; re-run with "
                   f"acknowledge_warning={w.warning_name!r} to confirm")
            return await self._finish(work, ActionStatus.FAILED, msg, after={"warning": w.warning_name}, error=msg)
        except ConnectorError as err:
            return await self._finish(work, ActionStatus.FAILED, f"failed: {err}", after={}, error=str(err))
        except Exception as err:  # a bug must not leave the row executing without an outcome
            log.exception("action %s failed unexpectedly", work.action_id)
            msg = f"failed: {type(err).__name__}: {err}"
            return await self._finish(work, ActionStatus.FAILED, msg, after={}, error=msg)
        first = work.steps[0] if work.steps else None
        if isinstance(first, FlagForReview):
            return await self._finish(work, ActionStatus.SUCCEEDED, "flagged for review (no remote write)",
                                      after=after)
        if isinstance(first, AcceptDifference):
            return await self._finish(work, ActionStatus.SUCCEEDED, "difference accepted until "
                                      f"{first.expires_at}", after=after, verified=True, accept=first)
        try:
            remaining = await _verify(self.engine, self._coalescer, work, after, self.retry_delays)
        except ConnectorError as err:
            msg = f"written, but the re-read failed: {err}; it will be checked at the next refresh"
            return await self._finish(work, ActionStatus.FAILED, msg, after=after, error=msg)
        if remaining is not None:
            msg = f"written but the difference remains: {remaining}"
            return await self._finish(work, ActionStatus.FAILED, msg, after=after, error=msg)
        return await self._finish(work, ActionStatus.SUCCEEDED, "done and verified: the disagreement is gone",
                                  after=after, verified=True)

    async def _finish(self, work: _Work, status: ActionStatus, message: str, *, after: dict[str, Any],
                      error: str | None = None, verified: bool = False,
                      accept: AcceptDifference | None = None) -> ActionResult:
        result = ActionResult(work.action_id, work.kind, work.exception_id, status, message, verified, after)
        now = _iso(self.clock())
        stored = redact(_canonical({"status": status.value, "message": message, "verified": verified,
                                    "after": after}))
        write = _finish_row(work, status, stored, error, now, accept)
        phase, outcome = ("intent", "queued") if status is ActionStatus.QUEUED else ("outcome", status.value)
        await self.committer.append(self._entry(work, phase, outcome, after={**after, "verified": verified}
                                                if phase == "outcome" else after, error=error), write)
        if accept is not None:
            self._accepted[work.exception_id] = _Accepted(accept.fingerprint, _parse_dt(accept.expires_at),
                                                          work.reason, work.operator)
        await self._mark(work, status, message)
        return result

    async def _mark(self, work: _Work, status: ActionStatus, message: str) -> None:
        """Keep the outcome with the exception (:mod:`services.store.exception_history`): a failed
        fix as its last failure, a flag as its flag; a fix that succeeded clears the last failure.
        The audit log has it all already: a mark that cannot be written is logged, not raised."""
        tracker = self.engine.tracker
        first = work.steps[0] if work.steps else None
        flag = isinstance(first, FlagForReview)
        try:
            if status is ActionStatus.FAILED:
                mark = ExceptionMark(self.clock(), work.operator, work.role, work.kind.value, work.action_id,
                                     redact(message))
                await asyncio.to_thread(tracker.mark, work.exception_id, FAILED, mark)
            elif status is ActionStatus.SUCCEEDED and flag:
                mark = ExceptionMark(self.clock(), work.operator, work.role, work.kind.value, work.action_id,
                                     redact(work.reason or ""))
                await asyncio.to_thread(tracker.mark, work.exception_id, FLAGGED, mark)
            elif status is ActionStatus.SUCCEEDED:
                await asyncio.to_thread(tracker.clear_failure, work.exception_id)
        except Exception:  # the database is busy or gone: the outcome stands
            log.exception("action %s: could not keep its outcome with exception %s", work.action_id,
                          work.exception_id)

    async def _perform_with_retries(self, work: _Work) -> dict[str, Any]:
        delays = list(self.retry_delays)
        while True:
            try:
                return await self._perform(work)
            except (UnavailableError, RateLimitedError) as err:
                if any(self._breaker_open(s) for s in step_systems(work.steps)):
                    raise _Requeue(f"queued: {err.system.value} unreachable ({err}); replays automatically "
                                   "when it returns") from None
                if not delays:
                    raise
                log.info("action %s: %s; trying again", work.action_id, err)
                await asyncio.sleep(delays.pop(0))

    # -- the steps ----------------------------------------------------------------------
    async def _perform(self, work: _Work) -> dict[str, Any]:
        if work.unreadable is not None:
            raise work.unreadable
        after: dict[str, Any] = {"targets": []}
        conns = Connections(self.engine.connectors)
        for n, step in enumerate(work.steps):
            written = await run_step(conns, step, f"{work.key}-{n}")
            # one written object, or several (a credit + repost writes three invoices)
            after["targets"].extend(w.to_json() for w in written)
        return after
