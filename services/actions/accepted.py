"""Accepted differences: ACCEPT stores, per exception, a fingerprint of its sides, the expiry, the
reason and who accepted (table ``accepted_difference``). While the acceptance is valid and the
fingerprint unchanged, :meth:`Engine.open_exceptions` hides the exception (the service's hide hook,
:meth:`~services.actions.service.ActionService.accepted`); it reopens when the data changes (another
fingerprint) or the acceptance expires.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, delete, insert, select
from sqlalchemy.engine import Engine as SqlEngine

from services.actions.encoding import _canonical, _parse_dt
from services.actions.steps import AcceptDifference
from services.core.domain import SyncException
from services.core.redaction import redact
from services.store.storage import ACCEPTED


def exception_fingerprint(exc: SyncException) -> str:
    """A hash of the exception's sides (system, object, values): changes when the data does."""
    sides = sorted([[s.system.value, str(s.ref) if s.ref else None, s.values] for s in exc.sides],
                   key=_canonical)
    return hashlib.sha256(_canonical(sides).encode()).hexdigest()


@dataclass
class _Accepted:
    fingerprint: str
    expires_at: datetime
    reason: str
    operator: str


def _load_accepted(db: SqlEngine) -> dict[str, _Accepted]:
    """Every stored acceptance, by exception id."""
    with db.connect() as conn:
        rows = conn.execute(select(ACCEPTED)).all()
    return {r.exception_id: _Accepted(r.fingerprint, _parse_dt(r.expires_at), r.reason, r.operator)
            for r in rows}


def _record_acceptance(conn: Connection, exception_id: str, accept: AcceptDifference, reason: str, operator: str,
                       now: str) -> None:
    """Replace ``exception_id``'s acceptance (inside the transaction that finishes the action)."""
    conn.execute(delete(ACCEPTED).where(ACCEPTED.c.exception_id == exception_id))
    conn.execute(insert(ACCEPTED).values(
        exception_id=exception_id, fingerprint=accept.fingerprint, reason=redact(reason), operator=operator,
        accepted_at=now, expires_at=accept.expires_at))
