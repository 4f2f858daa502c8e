"""The console on the built-in demo keeps its world: a fix made in one console run is there in
the next, whose first refresh is incremental (issue G6, item 1).

The console is composed as ``app.console._main`` composes it on the demo: the world served by
``app.demo.start_demo`` from SYNCDESK_HOME/demo (the test's private home), the snapshot and the
audit log in that folder; it is shut down as ``_main`` does (``close_console``, which stops the
world and saves it). Every wait is on a condition with a generous deadline.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from functools import partial
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from app.console import ConsoleSession, close_console, compose
from app.demo import ServedWorld, start_demo
from app.sources import open_storage
from services.actions.model import ActionKind, ActionRequest, ActionStatus
from services.engine import RefreshReport
from services.runner import ServiceLoop
from services.store.audit import AuditEntry, AuditLog
from services.store.home import DEMO_AUDIT, demo_dir
from services.store.storage import Storage
from tests.gui.live_loop import run_qasync
from views.adapters import HealthAdapter
from views.main_window import MainWindow

pytestmark = pytest.mark.gui

CUSTOMERS = 60  # two planted missing ERP invoices
#: a generous bound on any one wait (a first refresh of 60 customers takes about a second, a
#: save of the world well under one): only turns a hang into a failure naming what it waited for
DEADLINE = 60.0


async def until(condition: Callable[[], bool], what: str) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + DEADLINE
    while not condition():
        if loop.time() > end:
            raise AssertionError(f"waited {DEADLINE:.0f} s for {what}")
        await asyncio.sleep(0.05)


def read_audit(path: Path) -> list[AuditEntry]:
    storage = Storage.open_path(path, durable=True)
    try:
        return list(reversed(AuditLog(storage).entries()))
    finally:
        storage.close()


def erp_copies(world: ServedWorld, invoice: str) -> int:
    from services.demo.world import DemoWorld

    assert isinstance(world, DemoWorld)
    table = world.dataset.erp.tables["account.invoice"]
    return len([r for r in table.values() if r.get("reference") == invoice and r.get("state") != "cancelled"])


def saved_erp_copies(invoice: str) -> int:
    """Copies of ``invoice`` in the ERP of the world as saved on disk (read without its lock)."""
    from services.demo.world_codec import load_world

    ds, _ = load_world((demo_dir() / "world.json.gz").read_bytes())
    return len([r for r in ds.erp.tables["account.invoice"].values()
                if r.get("reference") == invoice and r.get("state") != "cancelled"])


async def console_run(qtbot: QtBot, customers: int | None) -> tuple[ConsoleSession, MainWindow, HealthAdapter,
                                                                    ServiceLoop, ServedWorld, RefreshReport]:
    """The console's start-up on the demo, as ``_main`` does it; returns once the first refresh is shown."""
    world = await asyncio.to_thread(start_demo, customers, None)
    window = MainWindow()
    qtbot.addWidget(window)
    window.show()
    runner = ServiceLoop(name="test-services").start()
    health = HealthAdapter(window, runner=runner)
    window.attach_health(health)
    session = ConsoleSession()
    await compose(session, window, health, runner, world.profile(),
                  snapshot=partial(open_storage, None, demo_folder=world.folder),
                  audit_file=world.folder / DEMO_AUDIT, clock=world.now)
    assert session.refresh is not None
    report = await session.refresh
    assert report is not None and report.ok, report
    await until(lambda: window.state is not None and window.state.complete, "the first refresh to be shown")
    return session, window, health, runner, world, report


def test_a_fix_made_in_one_console_run_is_there_in_the_next(
        qtbot: QtBot, qloop: asyncio.AbstractEventLoop, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)

    async def first_run() -> str:
        session, window, health, runner, world, report = await console_run(qtbot, CUSTOMERS)
        try:
            assert {o.mode for o in report.outcomes.values()} == {"full"}  # a new world, no snapshot yet
            assert window.state is not None
            target = min((e for e in window.state.exceptions if e.rule == "invoice.missing_in_erp"),
                         key=lambda e: e.id)
            service = session.service
            assert service is not None
            plan = await runner.call(service.plan(ActionRequest(ActionKind.RETRY, target.id, reason="posting lost")))
            assert plan.ok, plan.explanation
            result = await runner.call(service.execute(plan))
            assert result.status is ActionStatus.SUCCEEDED and result.verified, result.message
            assert erp_copies(world, target.object_id) == 1
            # saved while the console still runs: a crash from here on loses nothing
            await until(lambda: saved_erp_copies(target.object_id) == 1, "the fix in the saved world")
            return target.id
        finally:
            await close_console(session, health, runner, world)
            window.close()

    fixed = run_qasync(qloop, first_run())

    async def second_run() -> None:
        # no --customers: the console opens the world as it is
        session, window, health, runner, world, report = await console_run(qtbot, None)
        try:
            assert {o.mode for o in report.outcomes.values()} == {"incremental"}, report
            assert window.state is not None
            assert fixed not in {e.id for e in window.state.exceptions}
            assert any(e.rule == "invoice.missing_in_erp" for e in window.state.exceptions)  # the other one
            assert erp_copies(world, fixed.split(":", 1)[1]) == 1  # once: nothing replayed twice
            # the audit page's log (the demo's, in its folder) holds the fix made in the first run
            logged = await asyncio.to_thread(read_audit, world.folder / DEMO_AUDIT)
            assert [(e.exception_id, e.phase, e.outcome) for e in logged if e.action_kind == "retry"] == [
                (fixed, "intent", "pending"), (fixed, "outcome", "succeeded")]
        finally:
            await close_console(session, health, runner, world)
            window.close()

    run_qasync(qloop, second_run())
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], errors
