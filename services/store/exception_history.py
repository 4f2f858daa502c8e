"""Exceptions over time: each reconciliation's findings merged into the stored history.

- a finding seen before keeps its id and first-seen time; ``last_seen`` moves on;
- an open exception that a run no longer finds is closed (``closed_at``) — but only when its
  rule actually ran, so an unreachable system never closes anything;
- a closed exception that comes back is reopened with a new first-seen time; its earlier
  occurrences stay in its history;
- what operators did about an exception stays with it (table ``exception_mark``, so it
  survives restarts and is shared by whoever shares the database): its last *failed* fix (when,
  who, which action, why it failed; cleared when a later fix on it succeeds) and its *flag* for
  review (who, when, why). Every read fills :attr:`SyncException.last_failure` and
  :attr:`SyncException.flagged` — for the current occurrence only (a mark older than the
  exception's first-seen time belongs to an earlier one). A failed fix that changed the
  disagreement into another (a posting refused after the create: the invoice is no longer
  missing but a draft) is shown on the exception it left: an open exception without a failure
  of its own shows the latest failed fix of a *closed* exception on the same object and
  customer, made before it opened, with that exception's rule.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, delete, insert, select

from services.core.domain import ExceptionMark, ExternalRef, Severity, Side, SyncException, System, Team
from services.core.reconcile import ReconcileResult
from services.store.storage import EXC, MARK, Storage

#: the kinds of ``exception_mark`` rows
FAILED = "failed"
FLAGGED = "flagged"
#: customer ids per ``IN (...)`` list (well under SQLite's limit on bound parameters)
CUSTOMER_CHUNK = 500


@dataclass
class TrackResult:
    opened: list[str] = field(default_factory=list)
    reopened: list[str] = field(default_factory=list)
    still_open: list[str] = field(default_factory=list)
    closed: list[str] = field(default_factory=list)


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, ExternalRef):
        return str(value)
    return str(value)


def _encode_payload(exc: SyncException, history: list[list[str | None]]) -> str:
    return json.dumps({
        "sides": [{"system": s.system.value, "ref": str(s.ref) if s.ref else None, "values": s.values}
                  for s in exc.sides],
        "fix_actions": list(exc.fix_actions),
        "history": history,
    }, default=_json_default, ensure_ascii=False)


def _parse_ref(text: str | None) -> ExternalRef | None:
    if not text:
        return None
    system, kind, ident = text.split(":", 2)
    return ExternalRef(System(system), kind, ident)


def _aware(dt: datetime | None) -> datetime | None:
    return dt.replace(tzinfo=UTC) if dt is not None and dt.tzinfo is None else dt


def _from_row(row: Any) -> SyncException:
    payload = json.loads(row.payload)
    first_seen = _aware(row.first_seen)
    last_seen = _aware(row.last_seen)
    assert first_seen is not None and last_seen is not None
    return SyncException(
        id=row.id, rule=row.rule, severity=Severity(row.severity), owner=Team(row.owner),
        customer_id=row.customer_id, object_id=row.object_id, summary=row.summary,
        sides=[Side(System(s["system"]), _parse_ref(s["ref"]), s["values"]) for s in payload["sides"]],
        first_seen=first_seen, last_seen=last_seen,
        fix_actions=tuple(payload.get("fix_actions", ())), closed_at=_aware(row.closed_at))


def _at(row: Any) -> datetime:
    at = _aware(row.at)
    assert at is not None
    return at


def _mark_of(row: Any, rule: str | None = None) -> ExceptionMark:
    return ExceptionMark(at=_at(row), actor=row.actor, role=row.role, action=row.action, action_id=row.action_id,
                         text=row.text, rule=rule)


def _attach_marks(conn: Any, found: list[SyncException]) -> list[SyncException]:
    """Fill ``last_failure`` and ``flagged`` of ``found`` from ``exception_mark`` (module docstring)."""
    rows = list(conn.execute(select(MARK)))
    if not rows or not found:
        return found
    own: dict[tuple[str, str], Any] = {(r.exception_id, r.kind): r for r in rows}
    failed_by_object: dict[str, list[Any]] = {}
    for r in rows:
        if r.kind == FAILED:
            failed_by_object.setdefault(r.object_id, []).append(r)
    others = {r.exception_id for rs in failed_by_object.values() for r in rs}
    state = {row.id: row for row in conn.execute(select(EXC.c.id, EXC.c.closed_at, EXC.c.customer_id)
                                                  .where(EXC.c.id.in_(others)))} if others else {}
    for exc in found:
        first = exc.first_seen
        flag = own.get((exc.id, FLAGGED))
        if flag is not None and _at(flag) >= first:
            exc.flagged = _mark_of(flag)
        mine = own.get((exc.id, FAILED))
        if mine is not None and _at(mine) >= first:
            exc.last_failure = _mark_of(mine)
            continue
        earlier = [r for r in failed_by_object.get(exc.object_id, ())
                   if r.exception_id != exc.id and _at(r) <= first
                   and (other := state.get(r.exception_id)) is not None and other.closed_at is not None
                   and other.customer_id == exc.customer_id]
        if earlier:
            latest = max(earlier, key=_at)
            exc.last_failure = _mark_of(latest, latest.rule)
    return found


class ExceptionTracker:
    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    def mark(self, exc_id: str, kind: str, mark: ExceptionMark) -> None:
        """Keep ``mark`` (``kind``: :data:`FAILED` or :data:`FLAGGED`) with exception ``exc_id``,
        replacing the one of that kind before it. An exception the history does not hold (the
        snapshot never saw it) is not marked."""
        with self.storage.engine.begin() as conn:
            row = conn.execute(select(EXC.c.rule, EXC.c.object_id).where(EXC.c.id == exc_id)).first()
            if row is None:
                return
            conn.execute(delete(MARK).where(MARK.c.exception_id == exc_id, MARK.c.kind == kind))
            conn.execute(insert(MARK).values(exception_id=exc_id, kind=kind, object_id=row.object_id, rule=row.rule,
                                             at=mark.at, actor=mark.actor, role=mark.role, action=mark.action,
                                             action_id=mark.action_id, text=mark.text))

    def clear_failure(self, exc_id: str) -> None:
        """A fix of ``exc_id`` succeeded: its last failure is history (the audit log keeps it)."""
        with self.storage.engine.begin() as conn:
            conn.execute(delete(MARK).where(MARK.c.exception_id == exc_id, MARK.c.kind == FAILED))

    def update(self, result: ReconcileResult) -> TrackResult:
        """Merge one run into the history, in one transaction.

        Rows are written with one ``executemany`` per kind of change rather than a statement
        per exception: besides being faster, a long run of single statements gives the GIL
        away and takes it straight back at every SQLite step, which starves the UI thread
        (it runs on the CPU thread during a refresh)."""
        now = result.checked_at
        found = {e.id: e for e in result.exceptions}
        out = TrackResult()
        inserts: list[dict[str, Any]] = []
        updates: list[dict[str, Any]] = []
        reopens: list[dict[str, Any]] = []
        closes: list[dict[str, Any]] = []
        with self.storage.engine.begin() as conn:
            existing = {row.id: row for row in conn.execute(select(EXC))}
            for exc_id, exc in found.items():
                row = existing.get(exc_id)
                if row is None:
                    inserts.append(dict(
                        id=exc.id, rule=exc.rule, severity=exc.severity.value, owner=exc.owner.value,
                        customer_id=exc.customer_id, object_id=exc.object_id, summary=exc.summary,
                        payload=_encode_payload(exc, []), first_seen=now, last_seen=now, closed_at=None))
                    out.opened.append(exc_id)
                    continue
                history = json.loads(row.payload).get("history", [])
                if row.closed_at is not None:
                    history.append([_iso(row.first_seen), _iso(row.closed_at)])
                    target, listed = reopens, out.reopened
                else:
                    target, listed = updates, out.still_open
                target.append({"b_id": exc_id, "b_severity": exc.severity.value, "b_summary": exc.summary,
                               "b_customer_id": exc.customer_id, "b_payload": _encode_payload(exc, history)})
                listed.append(exc_id)
            for exc_id, row in existing.items():
                if row.closed_at is None and exc_id not in found and row.rule in result.evaluated_rules:
                    closes.append({"b_id": exc_id})
                    out.closed.append(exc_id)
            if inserts:
                conn.execute(insert(EXC), inserts)
            changed = {"severity": bindparam("b_severity"), "summary": bindparam("b_summary"),
                       "customer_id": bindparam("b_customer_id"), "payload": bindparam("b_payload"),
                       "last_seen": now}
            by_id = EXC.c.id == bindparam("b_id")
            if updates:
                conn.execute(EXC.update().where(by_id).values(**changed), updates)
            if reopens:
                conn.execute(EXC.update().where(by_id).values(**changed, first_seen=now, closed_at=None), reopens)
            if closes:
                conn.execute(EXC.update().where(by_id).values(closed_at=now), closes)
        return out

    def open_exceptions(self) -> list[SyncException]:
        with self.storage.engine.connect() as conn:
            rows = conn.execute(select(EXC).where(EXC.c.closed_at.is_(None)).order_by(EXC.c.first_seen, EXC.c.id))
            return _attach_marks(conn, [_from_row(r) for r in rows])

    def close(self, exc_ids: list[str], at: datetime) -> list[str]:
        """Close these open exceptions now (an action verified them gone); answers those closed."""
        closed: list[str] = []
        with self.storage.engine.begin() as conn:
            for exc_id in exc_ids:
                done = conn.execute(EXC.update().where(EXC.c.id == exc_id, EXC.c.closed_at.is_(None))
                                    .values(closed_at=at, last_seen=at))
                if done.rowcount:
                    closed.append(exc_id)
        return closed

    def get(self, exc_id: str) -> SyncException | None:
        with self.storage.engine.connect() as conn:
            row = conn.execute(select(EXC).where(EXC.c.id == exc_id)).first()
            return None if row is None else _attach_marks(conn, [_from_row(row)])[0]

    def all_exceptions(self) -> list[SyncException]:
        with self.storage.engine.connect() as conn:
            found = [_from_row(r) for r in conn.execute(select(EXC).order_by(EXC.c.first_seen, EXC.c.id))]
            return _attach_marks(conn, found)

    def for_customers(self, customer_ids: Iterable[str]) -> list[SyncException]:
        """Every exception (open and closed) of these billing customers, oldest first (first
        seen, then id), with their marks: selected in SQL by the index on ``customer_id``
        (:data:`CUSTOMER_CHUNK` ids per query), never by reading the whole history."""
        ids = sorted(set(customer_ids))
        found: list[SyncException] = []
        with self.storage.engine.connect() as conn:
            for i in range(0, len(ids), CUSTOMER_CHUNK):
                part = ids[i:i + CUSTOMER_CHUNK]
                found.extend(_from_row(r) for r in conn.execute(select(EXC).where(EXC.c.customer_id.in_(part))))
            found.sort(key=lambda e: (e.first_seen, e.id))
            return _attach_marks(conn, found)

    def history(self, exc_id: str) -> list[tuple[datetime, datetime | None]]:
        with self.storage.engine.connect() as conn:
            row = conn.execute(select(EXC).where(EXC.c.id == exc_id)).first()
        if row is None:
            return []
        past = [(datetime.fromisoformat(a), datetime.fromisoformat(b) if b else None)
                for a, b in json.loads(row.payload).get("history", [])]
        first_seen = _aware(row.first_seen)
        assert first_seen is not None
        return [*past, (first_seen, _aware(row.closed_at))]


def _iso(dt: datetime | None) -> str | None:
    aware = _aware(dt)
    return aware.isoformat() if aware else None
