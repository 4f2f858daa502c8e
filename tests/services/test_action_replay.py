"""Deterministic replay of an action left ``executing`` by a process that died.

A subprocess (a console, as far as the databases and the demo servers can tell) plans and
executes one ``invoice.missing_in_erp`` retry. The demo ERP holds the chosen request — the
invoice create or the post — either *before* it reaches the ERP or *after* the ERP committed
it (its answer never comes back), and the test SIGKILLs the subprocess at exactly that point:
the outbox row is claimed ``executing`` and the intent is in the audit log, no outcome. Then a
fresh :class:`ActionService` over the same snapshot and audit databases calls
:meth:`~ActionService.replay_pending` and must finish exactly that action (by its action id,
nothing re-planned), with exactly one posted ERP invoice for the billing invoice, one outcome in
the audit log, and a second replay that does nothing.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from services.actions.model import ActionStatus
from services.core.domain import System
from tests.services.actions_rig import FINANCE, Hold, RequestLog, Rig, live_count, make_rig, rpc

REPO = Path(__file__).resolve().parents[2]

#: How long the dying process may take to reach the held request: interpreter start, imports,
#: loading the stored snapshot (150 customers), one plan and the ERP login + lookup. About 2 s on
#: an idle 2-core machine; generous for one loaded by other test runs.
REACH_BUDGET = 90.0

#: The "console" that dies: loads the snapshot the test stored, plans and executes one retry.
#: Its HTTP read timeout is far above REACH_BUDGET so the held request never times out (and is
#: never retried) before the kill.
DYING_CONSOLE = """
import asyncio, json, sys, time
from datetime import UTC, datetime
from pathlib import Path
from services.actions.model import ActionKind, ActionRequest, Operator, Role
from services.actions.service import ActionService
from services.store.audit import AuditLog
from services.io.config import load_profile
from services.core.domain import System
from services.engine import Engine
from services.io.http import HttpPolicy
from services.store.storage import Storage

args = json.loads(sys.argv[1])


def clock() -> datetime:  # the demo's virtual clock, as the test's rig sees it
    return datetime.fromtimestamp(time.time() + args["offset"], UTC)


async def main() -> None:
    policies = {s: HttpPolicy(max_retries=0, read_timeout=600.0, concurrency=4) for s in System}
    engine = Engine.from_profile(load_profile(Path(args["config"]), "demo"), Storage.open_path(Path(args["snapshot"])),
                                 policies=policies, clock=clock)
    await engine.load()
    audit = AuditLog(Storage.open_path(Path(args["audit"]), durable=True))
    service = ActionService(engine, audit, Operator(args["operator"], Role.FINANCE), clock=clock)
    plan = await service.plan(ActionRequest(ActionKind.RETRY, args["exception"]))
    assert plan.ok, plan.explanation
    print(json.dumps({"planned": plan.idempotency_key}), flush=True)
    result = await service.execute(plan)
    print(json.dumps({"finished": result.status.value}), flush=True)


asyncio.run(main())
"""

#: (held call, held before it reaches the ERP or after the ERP committed it)
POINTS = [
    ("model.account.invoice.create", "before"),
    ("model.account.invoice.create", "after"),
    ("model.account.invoice.post", "after"),
]


def _kill_at_the_hold(rig: Rig, hold: Hold, exception_id: str) -> None:
    """Run the dying console until the ERP holds its request, then SIGKILL it."""
    args = {"config": str(rig.write_profile()), "snapshot": str(rig.snapshot_db), "audit": str(rig.audit_db),
            "exception": exception_id, "operator": FINANCE.name,
            "offset": rig.env.now().timestamp() - time.time()}
    proc = subprocess.Popen([sys.executable, "-c", DYING_CONSOLE, json.dumps(args)], cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        reached = hold.reached.wait(REACH_BUDGET)
        if not reached:
            proc.kill()
            out, err = proc.communicate()
            pytest.fail(f"the console never reached the held request: {out[-2000:]} {err[-2000:]}")
        os.kill(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        hold.release()  # only now: the client's connection is gone with its process
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, err[-2000:])
    assert json.loads(out.splitlines()[0]).get("planned"), out
    assert "finished" not in out, "the console died before its action finished"


@pytest.mark.parametrize(("call", "when"), POINTS, ids=[f"{c.rsplit('.', 1)[1]}-{w}" for c, w in POINTS])
async def test_a_fresh_service_replays_the_action_a_dead_process_left_executing(tmp_path: Path, call: str,
                                                                                 when: str) -> None:
    hold = Hold(rpc(call), when)
    log = RequestLog()
    rig = await make_rig(tmp_path, wrap={System.ERP: lambda app: log.wrap(hold.wrap(app))})
    try:
        # one the ERP never held (not one with a cancelled copy): what it holds at death is ours alone
        exc = await rig.one("invoice.missing_in_erp",
                            lambda e: not rig.env.dataset.erp.lookup("account.invoice", "reference", e.object_id))
        ref = exc.object_id
        assert live_count(rig.env, ref) == 0
        await rig.detach()  # the snapshot and the audit log now belong to the dying console
        await asyncio.to_thread(_kill_at_the_hold, rig, hold, exc.id)

        # -- what the dead process left: the write-ahead done, no outcome ----------------------------------
        [row] = rig.outbox_rows()
        action_id = row["action_id"]
        assert (row["status"], row["attempts"], row["exception_id"]) == ("executing", 1, exc.id)
        assert [(e["action_id"], e["phase"], e["outcome"]) for e in rig.audit_rows()] == [
            (action_id, "intent", "pending")]
        erp = rig.env.dataset.erp
        invoices = [erp.tables["account.invoice"][i] for i in erp.lookup("account.invoice", "reference", ref)]
        expected_at_death = {("model.account.invoice.create", "before"): [],
                             ("model.account.invoice.create", "after"): ["draft"],
                             ("model.account.invoice.post", "after"): ["posted"]}[(call, when)]
        assert [i["state"] for i in invoices] == expected_at_death, "the process died at the intended point"

        # -- a fresh service over the same databases replays it -------------------------------------------
        service = await rig.reopen(FINANCE)
        injector = rig.env.injectors[System.ERP]
        injector.reset_stats()
        log.seen.clear()
        results = await service.replay_pending()
        assert [(r.action_id, r.exception_id, r.status, r.verified) for r in results] == [
            (action_id, exc.id, ActionStatus.SUCCEEDED, True)], [r.message for r in results]
        rpc_calls = [json.loads(r.body)["method"] for r in log.seen if r.method == "POST"]
        creates = rpc_calls.count("model.account.invoice.create")
        posts = rpc_calls.count("model.account.invoice.post")
        # the replay created only what the dead process had not, and posted only what was not posted
        assert creates == (1 if when == "before" else 0), rpc_calls
        assert posts == (0 if call.endswith(".post") else 1), rpc_calls
        live = rig.live_erp_invoices(ref)
        assert len(live) == 1 and live[0]["state"] == "posted", "exactly one posted ERP invoice"
        assert live_count(rig.env, ref) == 1

        [after] = rig.outbox_rows()
        assert (after["action_id"], after["status"], after["attempts"]) == (action_id, "succeeded", 2)
        entries = [e for e in rig.audit_rows() if e["action_id"] == action_id]
        assert len(rig.audit_rows()) == len(entries) == 3, "nothing else was audited"
        assert [(e["phase"], e["outcome"]) for e in entries] == [
            ("intent", "pending"), ("intent", "pending"), ("outcome", "succeeded")]
        replay = json.loads(entries[1]["request"])
        assert replay["note"] == "replay of a executing action" and replay["attempt"] == 2
        assert replay["replayed_by"] == f"{FINANCE.name} ({FINANCE.role.value})"
        assert json.loads(entries[2]["after"])["verified"] is True
        assert rig.audit.verify().ok
        stored = await rig.engine.exception(exc.id)
        assert stored is not None and not stored.is_open, "the verified exception is closed"

        # -- a second replay finds nothing to do and sends nothing ----------------------------------------
        injector.reset_stats()
        assert await service.replay_pending() == []
        assert injector.stats()["total"] == 0
        assert len(rig.audit_rows()) == 3 and rig.outbox_rows()[0]["status"] == "succeeded"
        assert live_count(rig.env, ref) == 1
    finally:
        hold.release()
        await rig.close()
