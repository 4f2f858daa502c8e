"""The audit entry of each action names the connection profile it went through (G4 item 4),
without breaking a log written before profiles were named.

The profile lives in the entry's ``request`` (``services.store.audit.PROFILE_KEY``), which the
hash already covers: an older entry has none and verifies as it always did, and a profile
changed after the fact breaks the chain at that entry. Real SQLite, the real ActionService.
"""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from services.actions.model import ActionKind, ActionRequest, ActionStatus, Operator, Role
from services.actions.service import ActionService
from services.engine import Engine
from services.store.audit import PROFILE_KEY, AuditEntry, AuditLog, entry_profile
from services.store.storage import Storage

AT = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def _old_entry(i: int) -> AuditEntry:
    """An entry as a SyncDesk before this change wrote it: no profile in its request."""
    return AuditEntry(operator="ana", role="finance", action_id=f"old-{i}", action_kind="retry", phase="outcome",
                      outcome="failed", exception_id=f"invoice.missing_in_erp:in_{i}", target_system="erp",
                      request={"calls": [], "idempotency_key": f"k{i}", "attempt": 1}, error="boom", at=AT)


async def _refused_action(audit: AuditLog, profile: str | None) -> None:
    """One action through the real service: refused (its exception is unknown), which writes
    one audit entry. The engine's snapshot sits beside the audit log (no connector: nothing is
    read or written elsewhere)."""
    folder = Path(str(audit.storage.engine.url.database)).parent
    engine = Engine(Storage.open_path(folder / f"snapshot-{profile}.db"), {}, clock=lambda: AT)
    service = ActionService(engine, audit, Operator("ana", Role.FINANCE), clock=lambda: AT, profile=profile)
    try:
        plan = await service.plan(ActionRequest(ActionKind.RETRY, "invoice.missing_in_erp:in_404"))
        result = await service.execute(plan)
        assert result.status is ActionStatus.REFUSED
    finally:
        await service.aclose()
        await engine.aclose()
        engine.storage.close()


def _log(path: Path) -> tuple[Storage, AuditLog]:
    storage = Storage.open_path(path, durable=True)
    return storage, AuditLog(storage)


def test_each_action_entry_names_its_profile_and_an_older_log_still_verifies(tmp_path: Path) -> None:
    path = tmp_path / "audit-acme.db"
    storage, audit = _log(path)
    try:
        audit.append_many([_old_entry(i) for i in range(3)])  # the log as an earlier version left it
        assert audit.verify().ok
        asyncio.run(_refused_action(audit, "acme"))
        entries = list(reversed(audit.entries()))
    finally:
        storage.close()
    assert [entry_profile(e) for e in entries] == [None, None, None, "acme"]
    assert entries[-1].request[PROFILE_KEY] == "acme" and entries[-1].outcome == ActionStatus.REFUSED.value
    storage, audit = _log(path)  # read again from the file: what was committed
    try:
        result = audit.verify()
    finally:
        storage.close()
    assert result.ok and result.checked == 4, result


def test_a_profile_changed_after_the_fact_breaks_the_chain_at_that_entry(tmp_path: Path) -> None:
    path = tmp_path / "audit-acme.db"
    storage, audit = _log(path)
    try:
        audit.append(_old_entry(0))
        asyncio.run(_refused_action(audit, "acme"))
        audit.append(_old_entry(1))
    finally:
        storage.close()
    with sqlite3.connect(path) as con:
        changed = con.execute("UPDATE audit_entry SET request = replace(request, '\"acme\"', '\"other\"') "
                              "WHERE seq = 2").rowcount
    assert changed == 1
    storage, audit = _log(path)
    try:
        result = audit.verify()
    finally:
        storage.close()
    assert not result.ok and result.first_bad == 2, result


def test_a_service_without_a_profile_writes_entries_as_before(tmp_path: Path) -> None:
    """Embedding and the command line without a profile: no key added (the entries' shape is unchanged)."""
    storage, audit = _log(tmp_path / "audit.db")
    try:
        asyncio.run(_refused_action(audit, None))
        (entry,) = audit.entries()
    finally:
        storage.close()
    assert PROFILE_KEY not in entry.request and entry_profile(entry) is None
