"""Switching the connection profile live, and the fixes a profile cannot perform greyed out (G4 items 3, 4, 6).

The real main window composed as the console composes it (``app.console.compose``), over the
demo servers on loopback, running as the console runs (Qt on a qasync loop, the services on a
ServiceLoop thread), in the temp SYNCDESK_HOME of ``tests/conftest.py`` with an in-memory
keyring (``tests/connect_support.py``: never the user's). ``demo-readonly`` is written into the
home's config.toml as ``demo-server --write-config`` writes it (its secrets to the keyring).

The path: start on the demo (the built-in demo's role: ``ProfileSource(demo=True)``, never
tested) -> a full refresh is running -> the toolbar's profile chooser picks ``demo-readonly``
-> that refresh is cancelled (the window is told), the window shows the other profile (its own
snapshot and audit log files) -> its background connection test reports the restricted key's
missing write scopes -> the fix button of an ``invoice.missing_in_erp`` exception is disabled
with the test's reason as tooltip (the bulk menu's entry too) -> an action there is audited
naming ``demo-readonly`` -> back to the demo: the same fix is enabled again, an action names
``demo`` -> both audit logs verify -> no secret anywhere under SYNCDESK_HOME.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import timedelta
from functools import partial
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QPushButton
from pytestqt.qtbot import QtBot

from app.console import ConsoleSession, ProfileSource, ProfileSwitcher, close_console, compose, config_source
from services.actions.model import ActionKind, ActionRequest, ActionStatus
from services.core.domain import System
from services.demo.environment import DemoEnvironment, DemoOptions
from services.demo.faults import FaultConfig
from services.engine import RefreshMode
from services.io.config import Profile
from services.io.config_write import put_profiles
from services.io.permissions import blocked_fixes, check_profile
from services.runner import ServiceLoop
from services.store.audit import AuditEntry, AuditLog, entry_profile
from services.store.home import audit_path, config_path, snapshot_path, syncdesk_home
from services.store.storage import Storage
from tests.connect_support import MemoryKeyring, files_holding, memory_keyring
from tests.gui.live_loop import grab_png, run_qasync
from views.actions.permissions import ProfilePermissions
from views.adapters import HealthAdapter
from views.connections.opener import ConnectionsOpener
from views.exceptions.model import Column
from views.main_window import MainWindow
from views.widgets.text import plain_tooltip

__all__ = ["memory_keyring"]  # the fixture, used by name

pytestmark = pytest.mark.gui

ANCHOR = 1_780_000_000
#: enough customers that a full refresh is still running when the switch starts (two planted
#: exceptions of every rule at 80; this many keeps the refresh at well over the switch's start)
CUSTOMERS = 400
SEED = 5
#: a generous bound on any one wait (a loaded 2-core machine): it only turns a hang into a failure
DEADLINE = 90.0
RULE = "invoice.missing_in_erp"


async def until(condition: Callable[[], bool], what: str, deadline: float = DEADLINE) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    while not condition():
        if loop.time() > end:
            raise AssertionError(f"waited {deadline:.0f} s for {what}")
        await asyncio.sleep(0.02)


def read_audit(path: Path) -> tuple[list[AuditEntry], bool]:
    storage = Storage.open_path(path, durable=True)
    try:
        log = AuditLog(storage)
        return list(reversed(log.entries())), log.verify().ok
    finally:
        storage.close()


def test_switch_profile_live_greys_the_fixes_the_profile_cannot_perform_and_back(
        qtbot: QtBot, qloop: asyncio.AbstractEventLoop, memory_keyring: MemoryKeyring,
        caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    caplog.set_level(logging.WARNING)
    home = syncdesk_home()
    opts = DemoOptions(customers=CUSTOMERS, seed=SEED, anchor=ANCHOR, faults={s: FaultConfig() for s in System})
    env = DemoEnvironment(opts).start()
    # what `demo-server --write-config` adds, with its secrets in the (in-memory) keyring
    put_profiles(config_path(), [env.readonly_profile()], plain_secrets=False)
    assert "demo-readonly" in (config_path().read_text(encoding="utf-8"))
    secrets = [*env.profile().all_secrets(), *env.readonly_profile().all_secrets()]
    demo = ProfileSource(env.profile(), partial(Storage.open_path, home / "demo" / "snapshot.db"),
                         home / "demo" / "audit.db", "The demo company", env.now, demo=True)
    (home / "demo").mkdir(exist_ok=True)

    async def scenario() -> None:
        window = MainWindow()
        window.show()
        runner = ServiceLoop(name="test-services").start()
        health = HealthAdapter(window, runner=runner)
        window.attach_health(health)
        session = ConsoleSession()
        permissions = ProfilePermissions(window.apply_fix_policy, window)
        try:
            await compose(session, window, health, runner, demo.profile, snapshot=demo.snapshot,
                          audit_file=demo.audit_file, clock=env.now, permissions=permissions)
            assert session.refresh is not None
            first = await session.refresh
            assert first is not None and first.ok, first
            await until(lambda: window.state is not None and window.state.complete
                        and any(e.rule == RULE for e in window.state.exceptions), "the demo's exceptions")
            switcher = ProfileSwitcher(session, window, health, runner, current=None, permissions=permissions,
                                       demo=demo, config=config_path())
            assert switcher.chooser.names() == [None, "demo-readonly"]
            exc_id = sorted(e.id for e in window.state.exceptions if e.rule == RULE)[0]
            assert fix_button(window, qtbot, exc_id, "retry").isEnabled()

            # a full refresh is running when the switch is asked for
            assert session.adapter is not None
            running = session.adapter.start_refresh(RefreshMode.FULL)
            await until(lambda: window.cancel_action.isEnabled(), "the refresh to be shown running")
            assert not running.done()
            old_adapter = session.adapter
            switcher.chooser.choose("demo-readonly")  # as a person picks it in the toolbar
            assert switcher.task is not None
            assert await switcher.task is True
            assert running.cancelled()  # the refresh was cancelled, not left running on the closed engine
            assert session.adapter is not old_adapter and session.profile is not None
            assert session.profile.name == "demo-readonly" and switcher.chooser.current == "demo-readonly"
            # its own snapshot and audit log, beside the demo's
            assert snapshot_path("demo-readonly").exists() and audit_path("demo-readonly").exists()
            # the background connection test: the restricted key, the reader, the light agent
            assert session.test is not None
            await until(lambda: session.test is not None and session.test.done(), "the connection test")
            reason = permissions.blocked.get((RULE, "retry"))
            assert reason is not None and reason.startswith("cannot create ERP invoices"), permissions.blocked
            assert ("customer.master_drift", "push") in permissions.blocked  # billing customers: read scope only
            # its refresh shows its data (the same company, read with read-only credentials)
            assert session.refresh is not None
            report = await session.refresh
            assert report is not None and report.ok, report
            await until(lambda: window.state is not None and window.state.complete
                        and any(e.id == exc_id for e in window.state.exceptions), "the read-only profile's exceptions")
            button = fix_button(window, qtbot, exc_id, "retry")
            assert not button.isEnabled()
            assert button.toolTip() == plain_tooltip(reason)
            accept = fix_button(window, qtbot, exc_id, "accept")  # writes nothing to a system: still offered
            assert accept.isEnabled()
            retry_entry = next(a for a in window.bulk_menu.actions() if a.data() == "retry")
            assert not retry_entry.isEnabled() and retry_entry.toolTip() == plain_tooltip(reason)
            grab_png(window, tmp_path, "profile-readonly-greyed")
            await act(session, exc_id, "read-only profile")

            # back to the demo: the same fix is offered again
            switcher.chooser.choose(None)
            assert switcher.task is not None and await switcher.task is True
            assert session.profile is not None and session.profile.name == "demo"
            assert session.test is None  # the demo is not tested
            # shown at once from its stored snapshot (the switch returns once it is shown)
            assert window.state is not None and window.state.complete
            assert any(e.id == exc_id for e in window.state.exceptions)
            button = fix_button(window, qtbot, exc_id, "retry")
            assert button.isEnabled() and button.toolTip() != plain_tooltip(reason)
            assert next(a for a in window.bulk_menu.actions() if a.data() == "retry").isEnabled()
            await act(session, exc_id, "demo profile")
        finally:
            await close_console(session, health, runner, env)
            window.close()
            window.deleteLater()

    run_qasync(qloop, scenario())

    readonly_entries, readonly_ok = read_audit(audit_path("demo-readonly"))
    demo_entries, demo_ok = read_audit(home / "demo" / "audit.db")
    assert readonly_ok and demo_ok
    assert [entry_profile(e) for e in readonly_entries if e.action_kind == "accept"] == ["demo-readonly"] * 2
    assert [entry_profile(e) for e in demo_entries if e.action_kind == "accept"] == ["demo"] * 2, [
        (e.action_id, e.phase, e.outcome, e.request, e.error) for e in demo_entries]
    assert all(entry_profile(e) in ("demo-readonly", None) for e in readonly_entries)
    assert files_holding([home], secrets) == []  # snapshots, audit logs, config, logs: no secret
    assert errors_logged(caplog) == []


def errors_logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    """What was logged as an error, except the demo server's note that a client went away in the
    middle of a request: the cancelled refresh did exactly that (uvicorn logs starlette's
    ``ClientDisconnect`` as an error)."""
    def client_left(record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return record.name.startswith("uvicorn") and type(exc).__name__ == "ClientDisconnect"

    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR and not client_left(r)]


def fix_button(window: MainWindow, qtbot: QtBot, exc_id: str, action: str) -> QPushButton:
    """Click the exception's row in the queue; its fix button ``action`` in the detail pane."""
    window.nav.setCurrentRow(window.PAGES.index("Exceptions"))
    page = window.exceptions_page
    row = page.model.row_of(exc_id)
    assert row is not None, f"{exc_id} is not in the queue"
    index = page.model.index(row, Column.SUMMARY)
    page.table.scrollTo(index)
    qtbot.mouseClick(page.table.viewport(), Qt.MouseButton.LeftButton, pos=page.table.visualRect(index).center())
    assert page.detail.exception is not None and page.detail.exception.id == exc_id
    buttons = [b for b in page.detail.fix_buttons if b.property("action") == action]
    assert len(buttons) == 1, [b.property("action") for b in page.detail.fix_buttons]
    return buttons[0]


async def act(session: ConsoleSession, exc_id: str, why: str) -> None:
    """Accept the difference through the profile's own service (it writes to no system): one
    intent and one outcome entry in that profile's audit log."""
    service, actions = session.service, session.actions
    assert service is not None and actions is not None
    until_iso = (service.clock() + timedelta(days=30)).isoformat()  # the profile's clock: the demo's, or real time
    plan = await actions.plan(ActionRequest(ActionKind.ACCEPT, exc_id, reason=f"known difference ({why})",
                                            value={"expires_at": until_iso}))
    assert plan.ok, plan.explanation
    result = await actions.execute(plan)
    assert result.status is ActionStatus.SUCCEEDED, result.message



def test_a_connections_dialog_test_of_the_active_profile_greys_its_fixes(
        qtbot: QtBot, qloop: asyncio.AbstractEventLoop, memory_keyring: MemoryKeyring,
        caplog: pytest.LogCaptureFixture) -> None:
    """The console started on ``demo-readonly`` without its start-up test: every fix is offered
    until the Connections dialog (opened from the window, as a person does) reports a test of the
    active profile; a report of another profile changes nothing."""
    caplog.set_level(logging.WARNING)
    opts = DemoOptions(customers=80, seed=SEED, anchor=ANCHOR, faults={s: FaultConfig() for s in System})
    env = DemoEnvironment(opts).start()
    put_profiles(config_path(), [env.profile("demo"), env.readonly_profile()], plain_secrets=False)

    async def scenario() -> None:
        window = MainWindow()
        window.show()
        runner = ServiceLoop(name="test-services").start()
        health = HealthAdapter(window, runner=runner)
        window.attach_health(health)
        session = ConsoleSession()
        permissions = ProfilePermissions(window.apply_fix_policy, window)
        target = config_source("demo-readonly")
        try:
            await compose(session, window, health, runner, target.profile, snapshot=target.snapshot,
                          audit_file=target.audit_file, permissions=permissions)
            assert session.refresh is not None and session.test is None
            report = await session.refresh
            assert report is not None and report.ok, report
            await until(lambda: window.state is not None and window.state.complete
                        and any(e.rule == RULE for e in window.state.exceptions), "the profile's exceptions")
            exc_id = sorted(e.id for e in window.state.exceptions if e.rule == RULE)[0]
            assert fix_button(window, qtbot, exc_id, "retry").isEnabled()  # not tested yet
            switcher = ProfileSwitcher(session, window, health, runner, current="demo-readonly",
                                       permissions=permissions, config=config_path())
            opener = ConnectionsOpener(window, config_path(), runner)
            switcher.follow_connections(opener)
            window.connections_action.trigger()
            dialog = opener.dialog
            assert dialog is not None and dialog.isVisible()
            # what the dialog's adapter reports after "Test connection" (the same check, the same signal)
            other = await runner.call(check_profile(env.profile("demo")))
            dialog.adapter.tested.emit(other)
            assert fix_button(window, qtbot, exc_id, "retry").isEnabled()  # another profile's test: ignored
            tested = await runner.call(check_profile(env.readonly_profile()))
            dialog.adapter.tested.emit(tested)
            reason = blocked_fixes(tested)[(RULE, "retry")]
            button = fix_button(window, qtbot, exc_id, "retry")
            assert not button.isEnabled() and button.toolTip() == plain_tooltip(reason)
            dialog.close()
        finally:
            await close_console(session, health, runner, env)
            window.close()
            window.deleteLater()

    run_qasync(qloop, scenario())
    assert errors_logged(caplog) == []


def test_a_read_only_profile_greys_every_fix_that_writes(
        qtbot: QtBot, qloop: asyncio.AbstractEventLoop, memory_keyring: MemoryKeyring,
        caplog: pytest.LogCaptureFixture) -> None:
    """``read_only = true``: every fix that writes is offered disabled saying the profile is
    read-only (fix buttons and bulk entries), before any connection test; accepting a difference
    (written nowhere but the audit log) stays offered."""
    caplog.set_level(logging.WARNING)
    opts = DemoOptions(customers=80, seed=SEED, anchor=ANCHOR, faults={s: FaultConfig() for s in System})
    env = DemoEnvironment(opts).start()
    demo = env.profile("demo")
    put_profiles(config_path(), [Profile("demo-ro", demo.connections, read_only=True)], plain_secrets=False)

    async def scenario() -> None:
        window = MainWindow()
        window.show()
        runner = ServiceLoop(name="test-services").start()
        health = HealthAdapter(window, runner=runner)
        window.attach_health(health)
        session = ConsoleSession()
        target = config_source("demo-ro")
        assert target.profile.read_only
        try:
            await compose(session, window, health, runner, target.profile, snapshot=target.snapshot,
                          audit_file=target.audit_file, permissions=ProfilePermissions(window.apply_fix_policy, window))
            assert session.refresh is not None
            report = await session.refresh
            assert report is not None and report.ok, report
            await until(lambda: window.state is not None and window.state.complete
                        and any(e.rule == RULE for e in window.state.exceptions), "the profile's exceptions")
            exc_id = sorted(e.id for e in window.state.exceptions if e.rule == RULE)[0]
            retry = fix_button(window, qtbot, exc_id, "retry")
            assert not retry.isEnabled() and "'demo-ro' is read-only" in retry.toolTip()
            assert fix_button(window, qtbot, exc_id, "accept").isEnabled()
            entries = {a.data(): a for a in window.bulk_menu.actions() if a.data()}
            writing = [k for k in entries if k not in ("accept", "flag")]
            assert writing and all(not entries[k].isEnabled() and "is read-only" in entries[k].toolTip()
                                   for k in writing)
        finally:
            await close_console(session, health, runner, env)
            window.close()
            window.deleteLater()

    run_qasync(qloop, scenario())
    assert errors_logged(caplog) == []
