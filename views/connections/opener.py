"""Opening the Connections dialog from the main window (File > Connections…, the Systems page's
button) and the first run: with no profile in config.toml (and not ``--demo``), the welcome
offers the built-in demo or connecting the user's own systems; the choice is remembered in
console.ini (:attr:`views.settings.ConsoleSettings.start_choice`), so the next start goes
straight to it. Nothing here waits in a nested event loop: the start-up awaits a future fed by
the dialogs' signals.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QObject, Qt

from services.io.config_write import ConfigWriteError, profile_names
from services.runner import Runner
from views.connections.adapter import ConnectionsAdapter
from views.connections.dialog import ConnectionsDialog
from views.connections.welcome import CONNECT, DEMO, WelcomeDialog
from views.main_window import MainWindow


@dataclass(frozen=True)
class FirstRun:
    """What the first run decided: open ``profile`` (None: the built-in demo), or ``quit``."""

    profile: str | None = None
    quit: bool = False


def has_profiles(path: Path) -> bool:
    """config.toml names at least one profile (a file that cannot be read counts as having
    some: the console then says what is wrong with it, as before)."""
    try:
        return bool(profile_names(path))
    except ConfigWriteError:
        return True


class ConnectionsOpener(QObject):
    """The window's door to the Connections dialog (one dialog at a time)."""

    def __init__(self, window: MainWindow, path: Path, runner: Runner, *, deadline: float | None = None) -> None:
        super().__init__(window)
        self.window = window
        self.path = path
        self.runner = runner
        self.deadline = deadline
        self.dialog: ConnectionsDialog | None = None
        self.welcome: WelcomeDialog | None = None
        window.connections_action.triggered.connect(self.open)  # the Systems page's button triggers it too

    def open(self) -> ConnectionsDialog:
        if self.dialog is not None and self.dialog.isVisible():
            self.dialog.raise_()
            self.dialog.activateWindow()
            return self.dialog
        adapter = ConnectionsAdapter(self.path, self.runner, deadline=self.deadline) if self.deadline \
            else ConnectionsAdapter(self.path, self.runner)
        dialog = ConnectionsDialog(adapter, self.window)
        adapter.setParent(dialog)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.destroyed.connect(lambda *_: self._forget(dialog))
        self.dialog = dialog
        dialog.show()
        return dialog

    def _forget(self, dialog: ConnectionsDialog) -> None:
        if self.dialog is dialog:
            self.dialog = None

    async def first_run(self, *, demo: bool, profile: str | None, explicit_config: bool) -> FirstRun | None:
        """None when there is nothing to ask (``--demo``, ``--profile``, ``--config``, or a
        profile exists); else what the user chose — asked, or remembered from last time."""
        if demo or profile or explicit_config or await asyncio.to_thread(has_profiles, self.path):
            return None
        settings = self.window.settings
        choice = settings.start_choice if settings is not None else ""
        while True:
            if choice not in (DEMO, CONNECT):
                choice = await self._ask_welcome()
                if not choice:
                    return FirstRun(quit=True)
                if settings is not None:
                    settings.start_choice = choice
                    settings.sync()
            if choice == DEMO:
                return FirstRun(None)
            saved = await self._connect()
            if saved is None and not self.window.isVisible():
                return FirstRun(quit=True)
            if saved is not None:
                return FirstRun(saved)
            choice = ""  # the dialog closed without a profile: ask again

    async def _until(self, fed: asyncio.Future[str | None]) -> str | None:
        """``fed``'s answer, or None once the main window is closed."""
        closed: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()

        def on_closed() -> None:
            _settle(closed, None)

        self.window.closed.connect(on_closed)
        try:
            done, _ = await asyncio.wait([fed, closed], return_when=asyncio.FIRST_COMPLETED)
        finally:
            with contextlib.suppress(RuntimeError, TypeError):
                self.window.closed.disconnect(on_closed)
        return fed.result() if fed in done else None

    async def _ask_welcome(self) -> str:
        fed: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        welcome = WelcomeDialog(self.window)
        welcome.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        welcome.chosen.connect(lambda choice: _settle(fed, choice))
        self.welcome = welcome
        welcome.show()
        try:
            return await self._until(fed) or ""
        finally:
            self.welcome = None
            with contextlib.suppress(RuntimeError):
                welcome.close()

    async def _connect(self) -> str | None:
        """Open the dialog; the name of the first profile saved, or None if it closed first."""
        fed: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        dialog = self.open()
        dialog.profile_saved.connect(lambda name: _settle(fed, name))
        dialog.finished.connect(lambda *_: _settle(fed, None))
        dialog.destroyed.connect(lambda *_: _settle(fed, None))
        name = await self._until(fed)
        if name is not None and self.dialog is dialog:
            dialog.close()  # the console opens the saved profile now
        return name


def _settle(fed: asyncio.Future[str | None], value: str | None) -> None:
    if not fed.done():
        fed.set_result(value)
