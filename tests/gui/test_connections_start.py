"""The console's doors to the Connections dialog and its first run: the welcome's two choices
(the demo, or connecting one's own systems — the dialog, then the console opens the saved
profile), each remembered in console.ini so the next start goes straight to it; the Systems
page's button and File > Connections… (Ctrl+Shift+K); the DEMO title and status-bar badge.
Demo servers over loopback, an in-memory keyring, a config.toml in the test's SYNCDESK_HOME."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel
from pytestqt.qtbot import QtBot

from app.console import _choose_profile
from services.core.domain import System
from services.demo.environment import DemoEnvironment, DemoOptions
from services.demo.faults import FaultConfig
from services.io.config import SECRET_KEYS, Profile, SystemConnection
from services.runner import ServiceLoop
from tests.connect_support import MemoryKeyring, files_holding, memory_keyring
from tests.gui.live_loop import run_qasync
from views.connections.dialog import ConnectionsDialog
from views.connections.opener import ConnectionsOpener, FirstRun
from views.main_window import MainWindow
from views.settings import ConsoleSettings

__all__ = ["memory_keyring"]  # the fixture, used by name
pytestmark = pytest.mark.gui
#: a generous bound on one wait (a save and a re-read take milliseconds)
DEADLINE = 60.0


async def until(condition: Callable[[], bool], what: str) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + DEADLINE
    while not condition():
        if loop.time() > end:
            raise AssertionError(f"waited {DEADLINE:.0f} s for {what}")
        await asyncio.sleep(0.02)


@pytest.fixture(scope="module")
def env() -> Iterator[DemoEnvironment]:
    opts = DemoOptions(customers=20, seed=5, faults={s: FaultConfig() for s in System})
    with DemoEnvironment(opts) as running:
        yield running


@pytest.fixture
def runner() -> Iterator[ServiceLoop]:
    loop = ServiceLoop(name="test-connections-start").start()
    yield loop
    loop.stop()


def console_window(qtbot: QtBot, home: Path) -> MainWindow:
    window = MainWindow(ConsoleSettings(home / "console.ini"), home)
    qtbot.addWidget(window)
    window.show()
    return window


def test_welcome_explore_the_demo_is_remembered(qtbot: QtBot, qloop: asyncio.AbstractEventLoop,
                                                runner: ServiceLoop, syncdesk_home: Path) -> None:
    path = syncdesk_home / "config.toml"

    async def scenario() -> None:
        window = console_window(qtbot, syncdesk_home)
        opener = ConnectionsOpener(window, path, runner)
        start = asyncio.ensure_future(opener.first_run(demo=False, profile=None, explicit_config=False))
        await until(lambda: opener.welcome is not None and opener.welcome.isVisible(), "the welcome")
        assert opener.welcome is not None
        opener.welcome.demo_button.click()
        assert await asyncio.wait_for(start, DEADLINE) == FirstRun(None)
        assert opener.dialog is None  # the demo opens; no dialog
        window.close()
        # the next start: straight to the demo, nothing asked
        again = console_window(qtbot, syncdesk_home)
        opener2 = ConnectionsOpener(again, path, runner)
        assert await asyncio.wait_for(opener2.first_run(demo=False, profile=None, explicit_config=False),
                                      DEADLINE) == FirstRun(None)
        assert opener2.welcome is None
        again.close()

    run_qasync(qloop, scenario())
    assert ConsoleSettings(syncdesk_home / "console.ini").start_choice == "demo"
    assert not path.exists()  # nothing written for the demo


def test_welcome_connect_your_systems_opens_the_dialog_and_the_saved_profile(
        qtbot: QtBot, qloop: asyncio.AbstractEventLoop, env: DemoEnvironment, runner: ServiceLoop,
        memory_keyring: MemoryKeyring, syncdesk_home: Path) -> None:
    path = syncdesk_home / "config.toml"
    demo = env.profile("demo")
    opened: list[ConnectionsDialog] = []

    async def scenario() -> None:
        window = console_window(qtbot, syncdesk_home)
        opener = ConnectionsOpener(window, path, runner)
        start = asyncio.ensure_future(opener.first_run(demo=False, profile=None, explicit_config=False))
        await until(lambda: opener.welcome is not None and opener.welcome.isVisible(), "the welcome")
        assert opener.welcome is not None
        opener.welcome.connect_button.click()
        await until(lambda: opener.dialog is not None and opener.dialog.isVisible(), "the Connections dialog")
        dialog = opener.dialog
        assert dialog is not None
        opened.append(dialog)
        await until(lambda: not dialog.adapter.tasks.running("load"), "the (empty) profiles read")
        assert dialog.name_edit.text() == "default"  # the name the console opens first
        for system, box in dialog.boxes.items():
            conn = demo.connections[system]
            box.url.setText(conn.url)
            for key, edit in box.settings.items():
                edit.setText(conn.settings[key])
            box.secret.setText(conn.secret(SECRET_KEYS[conn.kind][0]))
        dialog.save_button.click()
        assert await asyncio.wait_for(start, DEADLINE) == FirstRun("default")
        await until(lambda: opener.dialog is None or not dialog.isVisible(), "the dialog closed")
        window.close()

    run_qasync(qloop, scenario())
    assert ConsoleSettings(syncdesk_home / "console.ini").start_choice == "connect"
    # the console opens that profile (run_console's _choose_profile, from SYNCDESK_HOME/config.toml)
    profile = _choose_profile(None, "default")
    assert profile is not None and profile.all_secrets() == demo.all_secrets()
    assert files_holding([syncdesk_home], demo.all_secrets()) == []


def test_no_welcome_once_a_profile_exists_or_with_demo(qtbot: QtBot, qloop: asyncio.AbstractEventLoop,
                                                        runner: ServiceLoop, syncdesk_home: Path) -> None:
    path = syncdesk_home / "config.toml"

    async def scenario() -> None:
        window = console_window(qtbot, syncdesk_home)
        opener = ConnectionsOpener(window, path, runner)
        assert await opener.first_run(demo=True, profile=None, explicit_config=False) is None
        path.write_text('[profiles.acme.billing]\nkind = "stripe"\nurl = "https://api.stripe.com"\n',
                        encoding="utf-8")
        assert await opener.first_run(demo=False, profile=None, explicit_config=False) is None
        assert opener.welcome is None
        window.close()

    run_qasync(qloop, scenario())


def test_the_systems_page_button_and_file_menu_open_the_dialog(qtbot: QtBot, qloop: asyncio.AbstractEventLoop,
                                                               runner: ServiceLoop, syncdesk_home: Path) -> None:
    async def scenario() -> None:
        window = console_window(qtbot, syncdesk_home)
        opener = ConnectionsOpener(window, syncdesk_home / "config.toml", runner)
        assert window.connections_action in window.menus["File"].actions()
        assert window.connections_action.shortcut().toString() == "Ctrl+Shift+K"
        window.go_to_page(window.PAGES.index("Systems"))
        window.systems_page.connections_button.click()
        assert opener.dialog is not None and opener.dialog.isVisible()
        first = opener.dialog
        qtbot.keyClick(window, Qt.Key.Key_K, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
        assert opener.dialog is first  # one dialog at a time
        first.close()
        await until(lambda: opener.dialog is None, "the closed dialog forgotten")
        window.activateWindow()
        window.connections_action.trigger()
        assert opener.dialog is not None and opener.dialog is not first
        opener.dialog.close()
        window.close()

    run_qasync(qloop, scenario())


def _profile(name: str, database: str) -> Profile:
    return Profile(name, {System.ERP: SystemConnection(System.ERP, "tryton", "https://erp.example.com",
                                                       {"database": database, "login": "sync"})})


def test_the_demo_is_labelled_in_the_title_and_the_status_bar(qtbot: QtBot, env: DemoEnvironment) -> None:
    window = MainWindow()
    qtbot.addWidget(window)
    window.show()
    window.set_profile(env.profile("demo"))  # the built-in demo's profile
    badge = window.statusBar().findChild(QLabel, "demoBadge")
    assert badge is not None and badge.isVisible() and badge.text() == "DEMO"
    assert window.windowTitle().startswith("SyncDesk — DEMO")
    window.set_profile(_profile("production", "acme_live"))
    assert not badge.isVisible()
    assert "DEMO" not in window.windowTitle() and window.windowTitle() == "SyncDesk — profile production"
    # a profile pointing at the demo company is the demo whatever its name
    window.set_profile(_profile("staging", "syncdesk_demo"))
    assert badge.isVisible() and window.windowTitle().startswith("SyncDesk — DEMO")
    window.set_profile(env.readonly_profile())
    assert badge.isVisible()
