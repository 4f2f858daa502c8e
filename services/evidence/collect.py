"""Gather an evidence pack from a loaded engine and a profile's audit log (the ``evidence``
command and the console's "Evidence pack…" use the same function)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from pathlib import Path

from services.engine import Engine
from services.evidence.pack import AuditSource, EvidencePack, build_pack
from services.store.audit import AuditLog
from services.store.storage import Storage, StorageError, database_url


def open_audit_source(path: Path | None, missing: str = "") -> AuditSource:
    """The audit log at ``path`` (never created: a path with no file is said as ``missing``)."""
    if path is None or not path.exists():
        return AuditSource(path, None, missing or (f"no audit log at {path} (no action was taken yet)"
                                                   if path is not None else "no audit log"))
    try:
        storage = Storage(database_url(path), durable=True)
    except StorageError as exc:
        return AuditSource(path, None, str(exc))
    return AuditSource(path, AuditLog(storage))


def _db_path(log: AuditLog) -> Path | None:
    db = log.storage.engine.url.database
    return Path(db) if db and db != ":memory:" else None


def close_audit_source(source: AuditSource) -> None:
    if source.log is not None:
        source.log.flush()
        source.log.storage.close()


async def collect_pack(engine: Engine, customer_ids: Sequence[str], audit_log: Path | AuditLog | None, *,
                       generated_by: str, source: str, missing: str = "",
                       progress: Callable[[int, int], None] | None = None,
                       cancelled: Callable[[], bool] | None = None) -> EvidencePack:
    """The pack of ``customer_ids`` from ``engine``'s snapshot and exception history (open and
    closed) and the audit log (a path, opened and closed here; or an open :class:`AuditLog`, e.g.
    the console's); the audit log is verified and read on a worker thread
    (``progress``/``cancelled`` as :meth:`AuditLog.verify` takes them, called there)."""
    snapshot = engine.snapshot()
    # only these customers' exceptions, selected in SQL (not the whole history filtered here)
    history = await asyncio.to_thread(engine.tracker.for_customers, customer_ids)
    now = engine.clock()

    def build() -> EvidencePack:
        if isinstance(audit_log, AuditLog):
            return build_pack(snapshot, customer_ids, history, AuditSource(_db_path(audit_log), audit_log), now=now,
                              generated_by=generated_by, source=source, occurrences=engine.tracker.history,
                              progress=progress, cancelled=cancelled)
        audit = open_audit_source(audit_log, missing)
        try:
            return build_pack(snapshot, customer_ids, history, audit, now=now, generated_by=generated_by,
                              source=source, occurrences=engine.tracker.history,
                              progress=progress, cancelled=cancelled)
        finally:
            close_audit_source(audit)

    return await asyncio.to_thread(build)


__all__ = ["close_audit_source", "collect_pack", "open_audit_source"]
