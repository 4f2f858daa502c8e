"""Where the Connections dialog meets the services: each call runs on the service thread
(``runner.call``) as a named task (latest wins), and comes back as a signal. A failure is one
``failed(what, text)`` with the service's plain, redacted message; nothing raises into a slot.
A call that ends after its dialog was closed (and deleted, with this adapter) emits nothing: a
write still finishes, its news has nobody left to tell.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import shiboken6
from PySide6.QtCore import QObject, Signal

from services.core.domain import System
from services.core.redaction import redact
from services.io.config import ConfigError
from services.io.permissions import DEFAULT_TIMEOUT
from services.runner import InlineLoop, Runner
from views.adapters import TaskRegistry
from views.connections import calls
from views.connections.model import ProfileForm, StoredProfile

log = logging.getLogger(__name__)


class ConnectionsAdapter(QObject):
    loaded = Signal(list)  # list[StoredProfile]
    saved = Signal(str, str)  # profile name, what was done ("added", "saved", "duplicated", "deleted")
    tested = Signal(object)  # ConnectionReport
    test_running = Signal(bool)
    test_cancelled = Signal()
    failed = Signal(str, str)  # what ("load", "save", "test", …), plain text

    def __init__(self, path: Path, runner: Runner | None = None, parent: QObject | None = None,
                 deadline: float = DEFAULT_TIMEOUT) -> None:
        super().__init__(parent)
        self.path = path
        self.runner: Runner = runner or InlineLoop()
        self.deadline = deadline
        self.tasks = TaskRegistry()

    def alive(self) -> bool:
        """The Qt side still exists (a closed dialog deletes its adapter while a call may run)."""
        return bool(shiboken6.isValid(self))

    def _start(self, what: str, coro: Coroutine[Any, Any, None]) -> asyncio.Task[Any]:
        return self.tasks.start(what, coro)

    async def _guard(self, what: str, coro: Coroutine[Any, Any, Any]) -> Any:
        try:
            return await self.runner.call(coro)
        except asyncio.CancelledError:
            raise
        except ConfigError as exc:
            if self.alive():
                self.failed.emit(what, redact(str(exc)))
        except Exception as exc:
            log.exception("connections: %s failed", what)
            if self.alive():
                self.failed.emit(what, redact(f"{type(exc).__name__}: {exc}"))
        return None

    def load(self) -> asyncio.Task[Any]:
        async def run() -> None:
            profiles = await self._guard("load", calls.load(self.path))
            if profiles is not None and self.alive():
                self.loaded.emit(profiles)

        return self._start("load", run())

    def _write(self, name: str, done: str, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        async def run() -> None:
            result = await self._guard("save", coro)
            if result is not None and self.alive():
                self.saved.emit(name, done)
                profiles = await self._guard("load", calls.load(self.path))
                if profiles is not None and self.alive():
                    self.loaded.emit(profiles)

        return self._start("write", run())

    def save(self, form: ProfileForm, stored: StoredProfile | None) -> asyncio.Task[Any]:
        return self._write(form.name.strip(), "added" if stored is None else "saved",
                           calls.save(self.path, form, stored))

    def duplicate(self, source: str, new_name: str) -> asyncio.Task[Any]:
        return self._write(new_name, "duplicated", calls.duplicate(self.path, source, new_name))

    def delete(self, name: str) -> asyncio.Task[Any]:
        return self._write(name, "deleted", calls.delete(self.path, name))

    # -- Test connection ----------------------------------------------------------------------
    def test(self, form: ProfileForm, stored_name: str | None,
             systems: list[System] | None = None) -> asyncio.Task[Any]:
        """Test the form's profile on the service thread; ``test_running`` brackets it."""
        async def run() -> None:
            self.test_running.emit(True)
            try:
                report = await self._guard("test", calls.test(self.path, form, stored_name, systems, self.deadline))
                if report is not None and self.alive():
                    self.tested.emit(report)
            except asyncio.CancelledError:
                if self.alive():
                    self.test_cancelled.emit()
                raise
            finally:
                if self.alive():
                    self.test_running.emit(False)

        return self._start("test", run())

    def testing(self) -> bool:
        return self.tasks.running("test")

    def cancel_test(self) -> bool:
        """Cancel the running test: every probe stops (the service task is cancelled and waited for)."""
        return self.tasks.cancel("test")

    async def aclose(self) -> None:
        await self.tasks.aclose()
