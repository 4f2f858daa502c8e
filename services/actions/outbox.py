"""The outbox: one row per action (table ``action_outbox``), written ahead of the first request.

The row is inserted together with the audit *intent* entry, in one durable transaction
(:class:`~services.store.audit.GroupCommitter`), before anything is sent; its final status is
committed together with the *outcome* entry. Its ``idempotency_key`` is unique
(:func:`services.actions.encoding._key`), so every execution of the same fix on the same
occurrence lands on the same row. The payload keeps what a replay needs: the request, the
exception (id, rule, customer), the steps in their stored form (:meth:`Step.to_json`), the
previewed calls and the values before.

Here: :class:`_Work` (a row being run), reading rows into it and into the public
:class:`~services.actions.model.OutboxItem` / :class:`~services.actions.model.ActionResult`, and
the row writes, each a callback run inside the committer's transaction.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, insert, select, update
from sqlalchemy.engine import Engine as SqlEngine

from services.actions.accepted import _record_acceptance
from services.actions.encoding import _canonical, _parse_dt
from services.actions.model import ActionConflict, ActionKind, ActionResult, ActionStatus, OutboxItem, Plan, PlannedCall
from services.actions.steps import AcceptDifference, Step, StepFormatError, step_from_json, step_systems
from services.core.redaction import redact
from services.store.storage import OUTBOX

#: a write run inside the audit committer's transaction (:data:`services.store.audit.ExtraWrite`)
RowWrite = Callable[[Connection], None]


@dataclass
class _Work:
    """One outbox row being run (a fresh execute, a re-run, or a replay)."""

    action_id: str
    key: str
    kind: ActionKind
    exception_id: str
    rule: str
    customer_id: str | None
    steps: list[Step]
    calls: list[dict[str, Any]]
    before: dict[str, Any]
    operator: str
    role: str
    reason: str
    verify: bool
    attempts: int = 0
    replay_by: str | None = None
    #: why the row's stored steps cannot be read (an unknown ``op``: a row written by a newer
    #: version); running it fails with this error, cancelling it works
    unreadable: StepFormatError | None = None

    @property
    def target(self) -> str | None:
        systems = step_systems(self.steps)
        return systems[0].value if systems else None


def _call_dict(c: PlannedCall) -> dict[str, Any]:
    return {"system": c.system.value, "method": c.method, "path": c.path, "body": c.body}


def _payload(work: _Work, plan: Plan) -> str:
    return redact(_canonical({
        "request": {"kind": plan.request.kind.value, "exception_id": plan.request.exception_id,
                    "reason": plan.request.reason, "value": plan.request.value},
        "exception": {"id": work.exception_id, "rule": work.rule, "customer_id": work.customer_id},
        "steps": [s.to_json() for s in work.steps], "calls": work.calls, "before": work.before,
        "expected_after": plan.expected_after, "verify": work.verify}))


def _steps_from_json(raw: list[Any]) -> tuple[list[Step], StepFormatError | None]:
    try:
        return [step_from_json(s) for s in raw], None
    except StepFormatError as err:
        return [], err


def _work_from_row(row: Any) -> _Work:
    payload = json.loads(row.payload)
    exc = payload.get("exception", {})
    steps, unreadable = _steps_from_json(payload.get("steps", []))
    return _Work(row.action_id, row.idempotency_key, ActionKind(row.kind), row.exception_id or exc.get("id", ""),
                 exc.get("rule", ""), row.customer_id, steps, payload.get("calls", []),
                 payload.get("before", {}), row.operator, row.role, row.reason or "",
                 verify=payload.get("verify", True), unreadable=unreadable)


def _result_from_row(row: Any) -> ActionResult:
    stored = json.loads(row.result) if row.result else {}
    status = ActionStatus(row.status)
    return ActionResult(row.action_id, ActionKind(row.kind), row.exception_id or "", status,
                        stored.get("message") or row.last_error or status.value, bool(stored.get("verified")),
                        stored.get("after") or {})


def _item(row: Any) -> OutboxItem:
    return OutboxItem(row.action_id, ActionKind(row.kind), ActionStatus(row.status), row.operator, row.role,
                      row.exception_id, row.customer_id, row.target_system, row.reason, row.attempts,
                      row.last_error, _parse_dt(row.created_at), _parse_dt(row.updated_at))


# --------------------------------------------------------------------------------------
# Reads
# --------------------------------------------------------------------------------------


def _row_by_key(db: SqlEngine, key: str) -> Any:
    with db.connect() as conn:
        return conn.execute(select(OUTBOX).where(OUTBOX.c.idempotency_key == key)).first()


def _row(db: SqlEngine, action_id: str) -> Any:
    with db.connect() as conn:
        return conn.execute(select(OUTBOX).where(OUTBOX.c.action_id == action_id)).first()


def _rows(db: SqlEngine, statuses: Iterable[ActionStatus]) -> list[Any]:
    with db.connect() as conn:
        return list(conn.execute(select(OUTBOX).where(OUTBOX.c.status.in_([s.value for s in statuses]))
                                 .order_by(OUTBOX.c.created_at.desc(), OUTBOX.c.action_id)))


# --------------------------------------------------------------------------------------
# Writes (each inside the transaction that appends its audit entry)
# --------------------------------------------------------------------------------------


def _insert_new(work: _Work, status: ActionStatus, payload: str, now: str) -> RowWrite:
    """The write-ahead: a new row for ``work``, ``executing`` (attempt 1) or ``queued`` (attempt 0)."""
    queue = status is ActionStatus.QUEUED
    row = {"action_id": work.action_id, "idempotency_key": work.key, "kind": work.kind.value,
           "status": status.value, "operator": work.operator, "role": work.role,
           "exception_id": work.exception_id, "customer_id": work.customer_id,
           "target_system": work.target, "payload": payload, "reason": work.reason or None,
           "attempts": 0 if queue else 1, "last_error": None, "result": None,
           "created_at": now, "updated_at": now}

    def insert_row(conn: Connection) -> None:
        conn.execute(insert(OUTBOX).values(**row))

    return insert_row


def _claim_row(work: _Work, from_statuses: set[ActionStatus], to: ActionStatus, bump: int, now: str) -> RowWrite:
    """Move the row from one of ``from_statuses`` to ``to`` (attempts + ``bump``), as ``work``'s
    operator; :class:`ActionConflict` when another claim got there first."""

    def claim(conn: Connection) -> None:
        done = conn.execute(update(OUTBOX).where(
            OUTBOX.c.action_id == work.action_id, OUTBOX.c.status.in_([s.value for s in from_statuses]))
            .values(status=to.value, attempts=OUTBOX.c.attempts + bump, updated_at=now,
                    operator=work.operator, role=work.role))
        if done.rowcount != 1:
            raise ActionConflict(f"action {work.action_id} is no longer {'/'.join(from_statuses)}")

    return claim


def _finish_row(work: _Work, status: ActionStatus, stored: str, error: str | None, now: str,
                accept: AcceptDifference | None) -> RowWrite:
    """The row's final status and result; an accepted difference is recorded in the same transaction."""

    def write(conn: Connection) -> None:
        conn.execute(update(OUTBOX).where(OUTBOX.c.action_id == work.action_id).values(
            status=status.value, last_error=redact(error) if error else None, result=stored, updated_at=now))
        if accept is not None:
            _record_acceptance(conn, work.exception_id, accept, work.reason, work.operator, now)

    return write


def _cancel_row(action_id: str, status: ActionStatus, now: str) -> RowWrite:
    """Cancel a row still in ``status``; :class:`ActionConflict` when it changed meanwhile."""

    def write(conn: Connection) -> None:
        done = conn.execute(update(OUTBOX).where(OUTBOX.c.action_id == action_id,
                                                 OUTBOX.c.status == status.value)
                            .values(status=ActionStatus.CANCELLED.value, updated_at=now,
                                    result=_canonical({"status": "cancelled", "message": "cancelled",
                                                       "verified": False, "after": {}})))
        if done.rowcount != 1:
            raise ActionConflict(f"action {action_id} changed meanwhile")

    return write
