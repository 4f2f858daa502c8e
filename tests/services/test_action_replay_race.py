"""A replay pass never takes a fresh action of this process for one left over.

The write-ahead commits the action's outbox row as ``executing`` before its first request; a
replay pass (the automatic one when a system returns, or the console's after its first refresh)
resumes ``executing`` rows that no task of this process runs. Before this was guarded, a pass
that read the outbox between that commit and the start of the run took the fresh action as left
over by a dead process and ran it a second time (two intents, two outcomes: the console's profile
switch test caught it). Real demo servers over loopback, real SQLite (``tests/services/actions_rig.py``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from services.actions.model import ActionKind, ActionRequest, ActionResult, ActionStatus
from services.store.audit import AuditEntry
from tests.services.actions_rig import Rig, make_rig


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    r = await make_rig(tmp_path)
    yield r
    await r.close()


async def test_a_replay_pass_right_after_the_write_ahead_leaves_the_fresh_action_alone(rig: Rig) -> None:
    exc = await rig.one("invoice.missing_in_erp")
    service = rig.service
    original = service.committer.append
    passes: list[list[ActionResult]] = []
    started: list[bool] = []

    async def append_then_replay(entry: AuditEntry, extra: Any = None) -> AuditEntry:
        done = await original(entry, extra)
        if entry.phase == "intent" and not started:  # the row is committed as executing: a pass runs now
            started.append(True)
            passes.append(await service.replay_pending())
        return done

    service.committer.append = append_then_replay  # type: ignore[method-assign]
    plan = await service.plan(ActionRequest(ActionKind.RETRY, exc.id))
    assert plan.ok, plan.explanation
    result = await service.execute(plan)
    assert result.status is ActionStatus.SUCCEEDED and result.verified, result.message
    assert passes == [[]]  # the pass found nothing of its own to replay
    con = sqlite3.connect(rig.audit_db)
    try:
        phases = [r[0] for r in con.execute("select phase from audit_entry where action_id = ? order by seq",
                                            (result.action_id,))]
        attempts = con.execute("select attempts from action_outbox where action_id = ?",
                               (result.action_id,)).fetchone()[0]
    finally:
        con.close()
    assert phases == ["intent", "outcome"] and attempts == 1
    assert len(rig.live_erp_invoices(exc.object_id)) == 1
