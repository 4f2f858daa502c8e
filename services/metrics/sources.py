"""What the metrics read from the store, with one SQL aggregate per question (plain SQLAlchemy
core, no SQLite-only SQL): the exception history (no payloads), accepted differences, per-system
freshness, and from the audit log per-exception first touch / resolving action and the retry /
replay outcomes of a period. The audit log is never loaded row by row into Python objects."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import and_, case, func, not_, or_, select

from services.store.storage import ACCEPTED, AUDIT, EXC, STATE, Storage

#: exceptions per ``IN (...)`` list when the audit log is read for chosen exceptions
CHUNK = 500
#: audit action kinds that do not resolve an exception
NOT_RESOLVING = ("flag", "accept")


def audit_time(at: datetime) -> str:
    """``at`` as the audit log stores it (ISO text, UTC, microseconds: ordered as text)."""
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def aware(dt: datetime | None) -> datetime | None:
    return dt.replace(tzinfo=UTC) if dt is not None and dt.tzinfo is None else dt


def _parse(text: str | None) -> datetime | None:
    return aware(datetime.fromisoformat(text)) if text else None


@dataclass(frozen=True, slots=True)
class ExcRow:
    id: str
    rule: str
    severity: str
    owner: str
    customer_id: str | None
    first_seen: datetime
    closed_at: datetime | None


@dataclass(frozen=True, slots=True)
class Touch:
    """What the audit log says about one exception: its first entry, its last succeeded
    resolving outcome (not a flag, not an accept), its last succeeded accept."""

    first_at: datetime | None
    fixed_at: datetime | None
    accepted_at: datetime | None


@dataclass(frozen=True, slots=True)
class Accepted:
    accepted_at: datetime
    expires_at: datetime | None


def exception_rows(storage: Storage) -> list[ExcRow]:
    cols = (EXC.c.id, EXC.c.rule, EXC.c.severity, EXC.c.owner, EXC.c.customer_id, EXC.c.first_seen, EXC.c.closed_at)
    out: list[ExcRow] = []
    with storage.engine.connect() as conn:
        for r in conn.execute(select(*cols)):
            first = aware(r.first_seen)
            assert first is not None
            out.append(ExcRow(r.id, r.rule, r.severity, r.owner, r.customer_id, first, aware(r.closed_at)))
    return out


def accepted(storage: Storage) -> dict[str, Accepted]:
    with storage.engine.connect() as conn:
        rows = conn.execute(select(ACCEPTED.c.exception_id, ACCEPTED.c.accepted_at, ACCEPTED.c.expires_at))
        out: dict[str, Accepted] = {}
        for r in rows:
            at = _parse(r.accepted_at)
            if at is not None:
                out[r.exception_id] = Accepted(at, _parse(r.expires_at))
        return out


def refreshed(storage: Storage) -> dict[str, datetime | None]:
    """system -> when its snapshot was last read successfully."""
    with storage.engine.connect() as conn:
        return {r.system: aware(r.refreshed_at) for r in conn.execute(select(STATE.c.system, STATE.c.refreshed_at))}


def _chunks(items: list[str]) -> Iterator[list[str]]:
    for i in range(0, len(items), CHUNK):
        yield items[i:i + CHUNK]


def touches(storage: Storage, exception_ids: Iterable[str]) -> dict[str, Touch]:
    """:class:`Touch` of each of ``exception_ids`` (those the audit log names), by the index
    on ``audit_entry.exception_id`` (migration 0006)."""
    ids = sorted(set(exception_ids))
    succeeded = and_(AUDIT.c.phase == "outcome", AUDIT.c.outcome == "succeeded")
    fixed = func.max(case((and_(succeeded, AUDIT.c.action_kind.notin_(NOT_RESOLVING)), AUDIT.c.at), else_=None))
    acc = func.max(case((and_(succeeded, AUDIT.c.action_kind == "accept"), AUDIT.c.at), else_=None))
    out: dict[str, Touch] = {}
    with storage.engine.connect() as conn:
        for part in _chunks(ids):
            q = (select(AUDIT.c.exception_id, func.min(AUDIT.c.at).label("first_at"), fixed.label("fixed_at"),
                        acc.label("accepted_at"))
                 .where(AUDIT.c.exception_id.in_(part)).group_by(AUDIT.c.exception_id))
            for r in conn.execute(q):
                out[r.exception_id] = Touch(_parse(r.first_at), _parse(r.fixed_at), _parse(r.accepted_at))
    return out


@dataclass(frozen=True, slots=True)
class RetryRow:
    action_kind: str
    outcome: str
    exception_id: str | None
    count: int
    #: in the period (else in the period before it)
    current: bool = True


def retries(storage: Storage, before: datetime, since: datetime, until: datetime) -> list[RetryRow]:
    """Outcomes in ``[before, until)`` of retries and replays — the ``retry`` action (re-send a
    missing invoice), and any action run again (its attempt > 1: a retried failed action, a
    replayed queued one) — told apart by whether they are from ``since`` on (one range scan of
    the index on ``audit_entry.at`` for both periods)."""
    req = AUDIT.c.request
    again = and_(req.like('{"attempt":%'), not_(req.like('{"attempt":0,%')), not_(req.like('{"attempt":1,%')))
    current = case((AUDIT.c.at >= audit_time(since), 1), else_=0).label("current")
    q = (select(AUDIT.c.action_kind, AUDIT.c.outcome, AUDIT.c.exception_id, current, func.count().label("n"))
         .where(AUDIT.c.phase == "outcome", AUDIT.c.at >= audit_time(before), AUDIT.c.at < audit_time(until),
                or_(AUDIT.c.action_kind == "retry", req.like('%"replayed_by":%'), again))
         .group_by(AUDIT.c.action_kind, AUDIT.c.outcome, AUDIT.c.exception_id, current))
    with storage.engine.connect() as conn:
        rows = conn.execute(q).all()
    return [RetryRow(kind, outcome, exc, int(n), bool(cur)) for kind, outcome, exc, cur, n in rows]
