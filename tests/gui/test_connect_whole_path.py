"""G4 item 6: the whole path of connecting one's own systems, in ONE scenario, through the
console's real start-up (``app.console._main``, what ``run_console`` runs on its qasync loop:
first-run choice, profile chosen, services composed, start-up connection test, toolbar chooser).

A first run (the test's SYNCDESK_HOME from ``tests/conftest.py`` holds no config.toml) shows the
welcome -> "Connect your systems" -> the Connections dialog: a profile ``acme`` for the demo
servers (over loopback) with the demo's full credentials passes Test all -> saved, the console
opens it: the ``invoice.missing_in_erp`` exception's retry is offered -> File > Connections…:
a second profile ``acme-readonly`` with the ``demo-readonly`` credentials (a restricted Stripe
key with read scopes only, a Tryton reader, a Zendesk light agent; services/demo/readonly.py)
-> Test all: the checklist shows the missing write permission on each system -> saved, it joins
the toolbar's chooser -> switched to live -> its start-up connection test greys out the retry
button, whose tooltip names the missing permission -> the console closes cleanly -> a secret
search over SYNCDESK_HOME finds none of the credentials typed.

The OS keyring is the in-memory one of ``tests/connect_support.py`` (never the user's); every
wait is on a condition with the generous :data:`DEADLINE`, never a sleep.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import pytest
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from app.console import _main
from services.core.domain import System
from services.demo.environment import DemoEnvironment, DemoOptions
from services.demo.faults import FaultConfig
from services.io.config import SECRET_KEYS, Profile, load_profile
from services.io.permissions import ConnectionReport
from services.store.home import config_path, syncdesk_home
from tests.connect_support import MemoryKeyring, files_holding, memory_keyring
from tests.gui.live_loop import run_qasync
from tests.gui.test_profile_switch import errors_logged, fix_button
from views.actions.permissions import ProfilePermissions
from views.connections.dialog import ConnectionsDialog
from views.connections.opener import ConnectionsOpener
from views.main_window import MainWindow
from views.profile_chooser import ProfileChooser
from views.settings import ConsoleSettings
from views.widgets.text import plain_tooltip

__all__ = ["memory_keyring"]  # the fixture, used by name
pytestmark = pytest.mark.gui

#: a generous bound on any one wait (a loaded, shared 2-core machine): it only turns a hang into
#: a failure. A start, a refresh of 80 customers or a Test all take a few seconds at most.
DEADLINE = 120.0
RULE = "invoice.missing_in_erp"
#: two planted exceptions of every rule at 80 customers (as tests/gui/test_profile_switch.py)
CUSTOMERS = 80
SEED = 5
ANCHOR = 1_780_000_000


async def until(condition: Callable[[], bool], what: str, deadline: float = DEADLINE) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    while not condition():
        if loop.time() > end:
            raise AssertionError(f"waited {deadline:.0f} s for {what}")
        await asyncio.sleep(0.02)


def fill(dialog: ConnectionsDialog, name: str, profile: Profile) -> None:
    """Type ``profile``'s systems into the dialog's fields, as a person would."""
    dialog.name_edit.setText(name)
    for system, box in dialog.boxes.items():
        conn = profile.connections[system]
        box.setChecked(True)
        box.url.setText(conn.url)
        for key, edit in box.settings.items():
            edit.setText(conn.settings[key])
        box.secret.setText(conn.secret(SECRET_KEYS[conn.kind][0]))


async def run_test_all(dialog: ConnectionsDialog) -> ConnectionReport:
    """Click Test all; the report once the test (on the service thread) is done."""
    dialog.test_all_button.click()
    await until(lambda: dialog.checklist.report is not None and not dialog.adapter.testing(), "Test all's report")
    report = dialog.checklist.report
    assert report is not None
    return report


def connection_test_applied(caplog: pytest.LogCaptureFixture, profile: str) -> bool:
    """A connection test of ``profile`` was applied to the console's fixes (ProfilePermissions
    logs each one it applies)."""
    return any(r.name == "views.actions.permissions" and r.getMessage().startswith(f"profile {profile!r}:")
               for r in caplog.records)


def test_welcome_add_profile_test_switch_greys_the_fix_and_leaves_no_secret(
        qtbot: QtBot, qloop: asyncio.AbstractEventLoop, memory_keyring: MemoryKeyring,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    caplog.set_level(logging.INFO, logger="views.actions.permissions")  # after: the handler takes INFO
    home = syncdesk_home()
    assert not config_path().exists()  # a first run: no profile anywhere
    opts = DemoOptions(customers=CUSTOMERS, seed=SEED, anchor=ANCHOR, faults={s: FaultConfig() for s in System})
    env = DemoEnvironment(opts).start()
    full, readonly = env.profile("demo"), env.readonly_profile()
    secrets = [*full.all_secrets(), *readonly.all_secrets()]
    windows: list[MainWindow] = []
    handler = qloop.get_exception_handler()

    async def scenario() -> None:
        app = QApplication.instance()
        assert isinstance(app, QApplication)
        # what run_console runs on its qasync loop: no --demo, no --profile, no --config
        main = asyncio.ensure_future(_main(app, False, None, None, None, None, windows, None))
        try:
            await until(lambda: bool(windows), "the main window")
            window = windows[0]
            opener = window.findChild(ConnectionsOpener)
            assert opener is not None
            # 1. first run: the welcome -> "Connect your systems"
            await until(lambda: opener.welcome is not None and opener.welcome.isVisible(), "the welcome")
            assert opener.welcome is not None
            opener.welcome.connect_button.click()
            await until(lambda: opener.dialog is not None and opener.dialog.isVisible(), "the Connections dialog")
            dialog = opener.dialog
            assert dialog is not None
            await until(lambda: not dialog.adapter.tasks.running("load"), "the (empty) profiles read")
            # 2. a profile for the demo servers with their full credentials: every check passes
            fill(dialog, "acme", full)
            report = await run_test_all(dialog)
            assert report.ok, [r.lines() for r in report.systems.values()]
            dialog.save_button.click()
            # 3. saved: the dialog closes and the console opens that profile
            await until(lambda: opener.dialog is None or not dialog.isVisible(), "the first-run dialog closed")
            assert ConsoleSettings(home / "console.ini").start_choice == "connect"
            await until(lambda: window.findChild(ProfileChooser) is not None, "the toolbar's profile chooser")
            chooser = window.findChild(ProfileChooser)
            assert chooser is not None and chooser.current == "acme"
            permissions = window.findChild(ProfilePermissions)
            assert permissions is not None
            await until(lambda: window.state is not None and window.state.complete
                        and any(e.rule == RULE for e in window.state.exceptions), "acme's exceptions")
            await until(lambda: connection_test_applied(caplog, "acme"), "acme's start-up connection test")
            assert permissions.profile == "acme" and permissions.blocked == {}
            exc_id = sorted(e.id for e in window.state.exceptions if e.rule == RULE)[0]
            assert fix_button(window, qtbot, exc_id, "retry").isEnabled()
            # 4. File > Connections…: a second profile with the demo's restricted credentials
            window.connections_action.trigger()
            await until(lambda: opener.dialog is not None and opener.dialog.isVisible(), "the Connections dialog")
            dialog = opener.dialog
            assert dialog is not None
            await until(lambda: "acme" in dialog.stored, "the profiles read")
            dialog.add_button.click()
            fill(dialog, "acme-readonly", readonly)
            report = await run_test_all(dialog)
            assert not report.ok
            for system in System:  # reachable, signed in, can read; the write permission is missing
                sys_report = report.systems[system]
                assert sys_report.reachable and sys_report.authenticated, sys_report.lines()
                assert any(c.access != "read" for c in sys_report.missing), (system, sys_report.lines())
            bad = [text for tone, text in dialog.checklist.lines() if tone == "bad"]
            for title in ("Billing:", "ERP:", "Support:"):
                assert any(text.startswith(title) for text in bad), (title, bad)
            assert any("cannot create erp invoices" in text.lower() for text in bad), bad
            dialog.save_button.click()
            await until(lambda: "acme-readonly" in chooser.names(), "the saved profile in the toolbar's chooser")
            dialog.close()
            # 5. switch to it live from the toolbar: its start-up test greys the retry out
            chooser.choose("acme-readonly")
            await until(lambda: chooser.current == "acme-readonly" and chooser.combo.isEnabled(), "the switch")
            await until(lambda: connection_test_applied(caplog, "acme-readonly"),
                        "acme-readonly's start-up connection test")
            reason = permissions.blocked.get((RULE, "retry"))
            assert reason is not None and reason.startswith("cannot create ERP invoices"), permissions.blocked
            await until(lambda: window.state is not None and window.state.complete
                        and any(e.id == exc_id for e in window.state.exceptions), "acme-readonly's exceptions")
            button = fix_button(window, qtbot, exc_id, "retry")
            assert not button.isEnabled()
            assert button.toolTip() == plain_tooltip(reason)
            assert "ERP invoices" in button.toolTip()  # it names the permission the profile lacks
            window.close()
            assert await asyncio.wait_for(main, DEADLINE) == 0  # the console closed cleanly
        finally:
            if not main.done():
                for window in windows:
                    window.close()
                await asyncio.wait_for(main, DEADLINE)

    try:
        run_qasync(qloop, scenario())
    finally:
        qloop.set_exception_handler(handler)
        for window in windows:
            window.deleteLater()
        env.stop()
    # the two profiles the console will open again, their credentials in the (in-memory) keyring
    assert load_profile(config_path(), "acme").all_secrets() == full.all_secrets()
    assert load_profile(config_path(), "acme-readonly").all_secrets() == readonly.all_secrets()
    assert any(user.startswith("acme-readonly/") for _, user in memory_keyring.entries)
    # a secret search over SYNCDESK_HOME (config.toml and .bak, snapshots, audit logs, logs): none
    assert files_holding([home], secrets) == []
    assert errors_logged(caplog) == []
