"""Composition root of the desktop console: QApplication, the qasync loop, wiring, shutdown.

The order matters (STYLE.md): PySide6 is imported before qasync, the QApplication exists
before the loop, and the loop runs under ``asyncio.Runner(loop_factory=qasync.QEventLoop)``.
Shutdown is explicit: tracked tasks cancelled, HTTP clients closed, demo servers stopped.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import traceback
from pathlib import Path
from types import TracebackType

import qasync
from PySide6.QtWidgets import QApplication, QMessageBox

from services.config import ConfigError, Profile, load_profile, load_profiles
from services.demo.environment import DemoEnvironment, DemoOptions
from services.home import config_path
from services.redaction import register_secret
from views.adapters import HealthAdapter
from views.main_window import MainWindow

log = logging.getLogger(__name__)


def _excepthook(window_getter: list[MainWindow]) -> object:
    def hook(etype: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
        log.error("unhandled error", exc_info=(etype, value, tb))
        text = "".join(traceback.format_exception_only(etype, value)).strip()
        parent = window_getter[0] if window_getter else None
        box = QMessageBox(QMessageBox.Icon.Critical, "SyncDesk: unexpected error",
                          "Something went wrong. The details are in the log file.", parent=parent)
        box.setDetailedText(text)
        box.setModal(False)
        box.show()  # never exec(): no nested event loop

    return hook


def _loop_exception_handler(loop: asyncio.AbstractEventLoop, context: dict[str, object]) -> None:
    exc = context.get("exception")
    log.error("asyncio: %s", context.get("message"), exc_info=exc if isinstance(exc, BaseException) else None)


def _choose_profile(config: Path | None, profile: str | None) -> Profile | None:
    path = config or config_path()
    if config is None and not path.exists():
        return None
    if profile:
        return load_profile(path, profile)
    profiles = load_profiles(path)
    return profiles.get("default") or next(iter(profiles.values()))


async def _save_screenshots(window: MainWindow, adapter: HealthAdapter, out: Path) -> list[Path]:
    """Wait for one round of health checks, then render every page to ``out/<page>.png``."""
    await asyncio.to_thread(out.mkdir, parents=True, exist_ok=True)
    await adapter.check_now()
    saved: list[Path] = []
    for row, title in enumerate(window.PAGES):
        window.nav.setCurrentRow(row)
        await asyncio.sleep(0.05)  # let the page lay itself out
        path = out / f"{title.lower().replace(' ', '-')}.png"
        if not window.grab().save(str(path)):
            raise OSError(f"could not write {path}")
        saved.append(path)
    return saved


async def _main(app: QApplication, demo: bool, config: Path | None, profile_name: str | None,
                customers: int, seed: int, windows: list[MainWindow], screenshot_dir: Path | None) -> int:
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(_loop_exception_handler)
    closed = asyncio.Event()
    env: DemoEnvironment | None = None
    window = MainWindow()
    windows.append(window)
    window.closed.connect(closed.set)
    window.show()
    adapter = HealthAdapter(window)
    window.attach_health(adapter)
    try:
        profile = None if demo else _choose_profile(config, profile_name)
        if profile is None:
            window.set_source("Built-in demo environment (starting...)")
            env = await asyncio.to_thread(lambda: DemoEnvironment(DemoOptions(customers=customers, seed=seed)).start())
            profile = env.profile()
            window.set_source(f"Built-in demo environment: {customers} customers, seed {seed}")
        else:
            window.set_source(f"Profile '{profile.name}'")
        for secret in profile.all_secrets():
            register_secret(secret)
        window.set_profile(profile)
        adapter.start(profile)
        if screenshot_dir is not None:
            for path in await _save_screenshots(window, adapter, screenshot_dir):
                print(path, flush=True)
            window.close()
        await closed.wait()
    except ConfigError as exc:
        window.show_error(str(exc))
        if screenshot_dir is not None:
            log.error("%s", exc)
            return 2
        await closed.wait()
    finally:
        await adapter.aclose()
        if env is not None:
            await asyncio.to_thread(env.stop)
    return 0


def run_console(demo: bool = False, config: Path | None = None, profile: str | None = None,
                customers: int = 250, seed: int = 1, screenshot_dir: Path | None = None) -> int:
    app = QApplication.instance() or QApplication(sys.argv)
    app.setApplicationName("SyncDesk")
    app.setOrganizationName("SyncDesk")
    # the loop must outlive the window: _main closes clients and servers after it is closed
    app.setQuitOnLastWindowClosed(False)
    windows: list[MainWindow] = []
    sys.excepthook = _excepthook(windows)  # type: ignore[assignment]
    with asyncio.Runner(loop_factory=qasync.QEventLoop) as runner:
        return runner.run(_main(app, demo, config, profile, customers, seed, windows, screenshot_dir))  # type: ignore[arg-type]
