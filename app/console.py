"""Composition root of the desktop console: QApplication, the qasync loop, wiring, shutdown.

The order matters (STYLE.md): qasync is bound to PySide6 (QT_API, set in app/__init__), the QApplication exists
before the loop, and the loop runs under ``asyncio.Runner(loop_factory=qasync.QEventLoop)``.
The services (connectors, engine, actions, health probes) run on a loop of their own in the
service thread (``services/runner.py``): the UI thread only draws. Shutdown is explicit:
tracked tasks cancelled, HTTP clients closed on the service loop, the service thread joined,
demo servers stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import tempfile
import traceback
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import Any

import qasync
from PySide6.QtCore import QMessageLogContext, QtMsgType, qInstallMessageHandler
from PySide6.QtWidgets import QApplication, QMessageBox

from app.demo import DemoError, RunningDemo, start_demo
from app.runtime import collect_when_idle, tune_interpreter, tune_loop
from app.sources import open_storage
from services.actions.model import PENDING_STATUSES, ActionKind, ActionRequest, Operator, PermissionDenied, Role
from services.actions.role_audit import record_policy_change
from services.actions.service import ActionService
from services.core.domain import System
from services.core.identity import Identity, current_login, resolve_identity
from services.core.redaction import register_secret
from services.engine import Engine, RefreshMode
from services.io.config import ConfigError, Profile, load_profile, load_profiles, load_roles
from services.io.connectors.base import utc_now
from services.io.http import HttpPolicy
from services.metrics.sla import SlaConfigError, load_sla
from services.runner import ServiceLoop
from services.store.audit import AuditLog
from services.store.audit_keys import KEY_DIR_ENV, WITNESS_ENV
from services.store.home import DEMO_AUDIT, audit_path, config_path, syncdesk_home
from services.store.storage import Storage, StorageError
from views.action_adapter import ActionAdapter
from views.adapters import EngineAdapter, HealthAdapter
from views.main_window import MainWindow
from views.settings import Appearance, ConsoleSettings

log = logging.getLogger(__name__)
qt_log = logging.getLogger("qt")

#: Qt's own messages, by level: its warnings (a platform plugin's "This plugin does not support
#: propagateSizeHints()", a font substitution) are details for the log file, below the terminal's
#: WARNING threshold; what Qt calls critical or fatal is shown on the terminal too
QT_LEVELS: dict[QtMsgType, int] = {QtMsgType.QtDebugMsg: logging.DEBUG, QtMsgType.QtInfoMsg: logging.DEBUG,
                                   QtMsgType.QtWarningMsg: logging.INFO, QtMsgType.QtCriticalMsg: logging.ERROR,
                                   QtMsgType.QtFatalMsg: logging.CRITICAL}


def qt_message(kind: QtMsgType, context: QMessageLogContext, message: str) -> None:
    """Qt's messages go to SyncDesk's log (the file; the terminal only from ERROR, or with
    --verbose) instead of Qt's default of printing every one on stderr."""
    where = f" ({context.category})" if context.category and context.category != "default" else ""
    label = kind.name.removeprefix("Qt").removesuffix("Msg").lower()
    qt_log.log(QT_LEVELS.get(kind, logging.INFO), "Qt %s%s: %s", label, where, message)


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


#: the README's gallery: every page in both appearances at a small and a large screen size
SHOT_SIZES = ((1024, 640), (1920, 1080))
SHOT_APPEARANCES = (Appearance.LIGHT, Appearance.DARK)


async def _save_screenshots(window: MainWindow, health: HealthAdapter, out: Path) -> list[Path]:
    """Render every page to ``out/{page}-{light|dark}-{W}x{H}.png`` at each of :data:`SHOT_SIZES`
    in each of :data:`SHOT_APPEARANCES`: the Overview, the customer list, the customer with the most open
    exceptions, the exceptions queue (first exception selected), the pending actions, the audit
    log (its newest entry selected), the systems."""
    await asyncio.to_thread(out.mkdir, parents=True, exist_ok=True)
    await health.check_now()
    saved: list[Path] = []

    async def shot(name: str, appearance: Appearance, width: int, height: int) -> None:
        await asyncio.sleep(0.15)  # let the page lay itself out
        path = out / f"{name}-{appearance.value}-{width}x{height}.png"
        if not window.grab().save(str(path)):
            raise OSError(f"could not write {path}")
        saved.append(path)

    state = window.state
    worst = max(state.rows, key=lambda r: (r.open_exceptions, r.customer_id)) if state and state.rows else None
    window.nav.setCurrentRow(window.PAGES.index("Audit log"))
    await asyncio.sleep(0.5)  # the page loads its entries off the UI thread
    audit_table = getattr(window.audit_page, "table", None)
    if audit_table is not None and audit_table.model() is not None and audit_table.model().rowCount():
        audit_table.selectRow(0)
    window.nav.setCurrentRow(window.PAGES.index("Exceptions"))
    window.exceptions_page.next_exception()
    try:
        for appearance in SHOT_APPEARANCES:
            window.set_appearance(appearance)
            for width, height in SHOT_SIZES:
                window.resize(width, height)
                window.nav.setCurrentRow(window.PAGES.index("Overview"))
                await shot("overview", appearance, width, height)
                window.nav.setCurrentRow(window.PAGES.index("Customers"))
                window.show_customer_list()
                await shot("customers", appearance, width, height)
                if worst is not None:
                    window.open_customer(worst.customer_id)
                    await shot("customer", appearance, width, height)
                    window.show_customer_list()
                for page, name in (("Exceptions", "exceptions"), ("Pending actions", "pending-actions"),
                                   ("Audit log", "audit-log"), ("Systems", "systems")):
                    window.nav.setCurrentRow(window.PAGES.index(page))
                    await shot(name, appearance, width, height)
    finally:
        window.set_appearance(Appearance.SYSTEM)
    return saved


def _wire_actions(window: MainWindow, adapter: EngineAdapter, actions: ActionAdapter) -> None:
    window.attach_actions(actions)
    # an action closes or changes exceptions: show the engine's state again
    actions.result.connect(lambda _result: adapter.republish())
    actions.bulk_done.connect(lambda _result: adapter.republish())
    # the service replays queued actions by itself when a system returns: show what they closed
    actions.replayed.connect(lambda _results: adapter.republish())
    actions.replayed.connect(window.notify_replayed)  # the operator hears of it
    actions.follow_replays()


def _wire(window: MainWindow, adapter: EngineAdapter) -> None:
    adapter.sort_keys = lambda: (window.customers_page.sort_key,)  # prepared off the UI thread
    adapter.state_changed.connect(window.set_state)
    adapter.refresh_started.connect(window.on_refresh_started)
    adapter.progress.connect(window.on_refresh_progress)
    adapter.system_refreshed.connect(window.on_system_refreshed)
    adapter.refresh_finished.connect(window.on_refresh_ended)
    adapter.refresh_cancelled.connect(window.on_refresh_ended)
    adapter.failed.connect(window.show_error)
    adapter.metrics_changed.connect(window.set_metrics)
    adapter.metrics_failed.connect(window.on_metrics_failed)
    window.refresh_requested.connect(lambda mode: adapter.start_refresh(RefreshMode(mode)))
    window.cancel_requested.connect(adapter.cancel_refresh)


def _service_loop() -> ServiceLoop:
    def configure(loop: asyncio.AbstractEventLoop) -> None:
        tune_loop(loop)
        loop.set_exception_handler(_loop_exception_handler)

    return ServiceLoop(configure=configure)


@dataclass
class ConsoleSession:
    """What :func:`compose` builds, filled in as it goes: a failure half-way still lets
    :func:`close_console` close what was opened."""

    engine: Engine | None = None
    adapter: EngineAdapter | None = None
    service: ActionService | None = None
    actions: ActionAdapter | None = None
    audit_storage: Storage | None = None
    #: the first refresh (auto), started once the local snapshot is shown
    refresh: asyncio.Task[Any] | None = None


async def compose(session: ConsoleSession, window: MainWindow, health: HealthAdapter, runner: ServiceLoop,
                  profile: Profile, *, snapshot: Callable[[], Storage], audit_file: Path,
                  clock: Callable[[], datetime] = utc_now,
                  policies: dict[System, HttpPolicy] | None = None,
                  identity: Identity | None = None, config: Path | None = None) -> ConsoleSession:
    """The console's start-up once the profile is known: the engine on the local snapshot
    (``snapshot`` opens it, in a worker thread), the engine and action adapters wired to the
    window, the action service on the durable audit log at ``audit_file``, the health probes;
    then the snapshot is shown, the first refresh starts, queued actions replay by themselves
    when their system returns, and what an earlier session left queued or executing is
    replayed once the first refresh is done. ``policies``: the HTTP policy per system (default:
    each vendor's, ``services.io.http.DEFAULT_POLICIES``). ``identity``: who is logged in and
    the roles the policy grants (default: :func:`console_identity` of SYNCDESK_HOME/config.toml);
    the service acts only as that login, and a policy changed since the audit log last saw it
    is recorded there before anything else. ``config``: the file whose ``[sla]`` targets the
    Overview holds the figures to (default: SYNCDESK_HOME/config.toml)."""
    identity = identity or console_identity(None)
    for secret in profile.all_secrets():
        register_secret(secret)
    window.set_profile(profile)
    storage = await asyncio.to_thread(snapshot)
    session.engine = engine = Engine.from_profile(profile, storage, clock=clock, policies=policies)
    session.adapter = adapter = EngineAdapter(engine, window, runner=runner)
    _wire(window, adapter)
    session.audit_storage = audit_storage = await asyncio.to_thread(Storage.open_path, audit_file, durable=True)
    adapter.audit = audit_storage  # the Overview's resolutions, effort and retries come from the audit log
    try:
        adapter.sla = await asyncio.to_thread(load_sla, config or config_path())
    except SlaConfigError as exc:
        window.show_error(f"{exc} — the default targets are used")
    audit = AuditLog(audit_storage)
    operator = default_operator(identity)
    changed = await asyncio.to_thread(record_policy_change, audit, identity, operator.role, clock())
    if changed is not None:
        log.warning("audit: %s", changed.reason)
    session.service = service = ActionService(engine, audit, operator, clock=clock, identity=identity)
    # what an earlier session left queued or executing (read before anything can replay it):
    # once it is replayed, the window is shown the state that leaves
    left = await asyncio.to_thread(service.outbox, PENDING_STATUSES)
    session.actions = actions = ActionAdapter(service, service.audit, window, runner=runner)
    _wire_actions(window, adapter, actions)
    from app.evidence_cli import write_pack  # the evidence pack's PDF is rendered by app/, not views/

    window.attach_evidence(write_pack, f"profile {profile.name!r}")
    window.operator_widget.set_identity(identity)  # the login, and the roles its switch offers
    health.start(profile)
    await adapter.load()  # opens at once from the local snapshot
    session.refresh = refresh = adapter.start_refresh(RefreshMode.AUTO)  # then catches up in the background
    # queued actions replay by themselves when a system returns (on the service loop)
    runner.spawn(service.start_auto_replay)
    adapter.tasks.start("replay", _replay_after(refresh, service, runner, adapter.republish if left else None))
    adapter.tasks.start("idle-gc", collect_when_idle(lambda: adapter.refreshing))
    return session


async def close_console(session: ConsoleSession, health: HealthAdapter, runner: ServiceLoop,
                        env: RunningDemo | None = None) -> None:
    """Shut down what :func:`compose` opened (and the service thread, the demo servers).
    Each step runs even if one before it failed: a hang or a skipped close at exit would lose
    the demo servers' shutdown or the database's last writes."""
    actions, adapter, service, engine = session.actions, session.adapter, session.service, session.engine
    steps: list[tuple[str, Callable[[], Awaitable[object]]]] = []
    if actions is not None:
        steps.append(("actions", actions.aclose))
    if adapter is not None:
        steps.append(("engine adapter", adapter.aclose))
    steps.append(("health", health.aclose))
    # the HTTP clients and the action service's tasks belong to the service loop
    if service is not None:
        steps.append(("action service", partial(runner.call_later, service.aclose)))
    if engine is not None:
        steps.append(("engine", partial(runner.call_later, engine.aclose)))
    steps.append(("service thread", partial(asyncio.to_thread, runner.stop)))
    if engine is not None:
        steps.append(("snapshot database", partial(asyncio.to_thread, engine.storage.close)))
    if session.audit_storage is not None:
        steps.append(("audit database", partial(asyncio.to_thread, session.audit_storage.close)))
    if env is not None:
        steps.append(("demo servers", partial(asyncio.to_thread, env.stop)))
    for label, step in steps:
        try:
            await step()
        except Exception:
            log.exception("shutdown: closing the %s failed", label)


async def _main(app: QApplication, demo: bool, config: Path | None, profile_name: str | None,
                customers: int | None, seed: int | None, windows: list[MainWindow], screenshot_dir: Path | None) -> int:
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(_loop_exception_handler)
    tune_loop(loop)
    closed = asyncio.Event()
    env: RunningDemo | None = None
    session = ConsoleSession()
    runner = _service_loop().start()
    # the preferences and the memory of the window live in the home folder (a screenshot run uses
    # neither: the same pictures whoever runs it)
    home = syncdesk_home()
    window = MainWindow(None if screenshot_dir is not None else ConsoleSettings(home / "console.ini"), home)
    windows.append(window)
    window.closed.connect(closed.set)
    window.show()
    health = HealthAdapter(window, runner=runner)
    window.attach_health(health)
    # a screenshot run on the demo works in a throwaway home (world, snapshot, audit log made from
    # nothing): the user's demo world and audit log are never touched, and the action it takes
    # to have something to show (_demo_fix) is never written into a log of what people did
    scratch: tempfile.TemporaryDirectory[str] | None = None
    throwaway_keys = contextlib.ExitStack()
    try:
        profile = None if demo else _choose_profile(config, profile_name)
        clock = utc_now
        if profile is None:
            window.set_source("Built-in demo environment (starting…)")
            if screenshot_dir is not None:
                scratch = tempfile.TemporaryDirectory(prefix="syncdesk-screenshot-", ignore_cleanup_errors=True)
                throwaway_keys = _keep_audit_keys_in(Path(scratch.name) / "audit-keys")
            world = await asyncio.to_thread(partial(start_demo, customers, seed,
                                                    home=Path(scratch.name) if scratch else None))
            env = world
            profile = world.profile()
            clock = world.now
            window.set_source(world.describe())
            snapshot = partial(open_storage, None, demo_folder=world.folder)
            audit_file = world.folder / DEMO_AUDIT
        else:
            window.set_source(f"Profile “{profile.name}”")
            snapshot = partial(open_storage, profile.name)
            audit_file = audit_path(profile.name)
        await compose(session, window, health, runner, profile, snapshot=snapshot,
                      audit_file=audit_file, clock=clock, identity=console_identity(config), config=config)
        if screenshot_dir is not None:
            if session.refresh is not None:
                with contextlib.suppress(Exception):
                    await session.refresh
            figures = asyncio.Event()  # the Overview's figures follow each state, off the UI thread
            if session.adapter is not None:
                session.adapter.metrics_changed.connect(lambda _report: figures.set())
                session.adapter.metrics_failed.connect(lambda _text: figures.set())
            if env is not None and session.service is not None and session.adapter is not None:
                await runner.call(_demo_fix(session.service))
                session.adapter.republish()
                await asyncio.sleep(0.3)
            if window.overview_page.report is None or env is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(figures.wait(), 60.0)
            for path in await _save_screenshots(window, health, screenshot_dir):
                print(path, flush=True)
            window.close()
        await closed.wait()
    except (ConfigError, StorageError, DemoError) as exc:
        window.show_error(str(exc))
        if screenshot_dir is not None:
            log.error("%s", exc)
            return 2
        await closed.wait()
    finally:
        await close_console(session, health, runner, env)
        if scratch is not None:
            throwaway_keys.close()
            scratch.cleanup()
    return 0


def _keep_audit_keys_in(folder: Path) -> contextlib.ExitStack:
    """Until closed, a new audit log's signing key and witness go to ``folder`` (the throwaway
    log of a screenshot run), not to the user's key store or witness folders."""
    stack = contextlib.ExitStack()
    stack.enter_context(_environ({KEY_DIR_ENV: str(folder), WITNESS_ENV: None}))
    return stack


@contextlib.contextmanager
def _environ(changes: dict[str, str | None]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in changes}
    try:
        for k, v in changes.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def console_identity(config: Path | None) -> Identity:
    """The logged-in login and the roles the ``[roles]`` table of ``config`` (default:
    SYNCDESK_HOME/config.toml; no file or no table: every role) grants it. A malformed table
    raises :class:`ConfigError` naming the key."""
    return resolve_identity(load_roles(config or config_path()), current_login())


def default_operator(identity: Identity | None = None) -> Operator:
    """The person at the keyboard: the login, in the role it starts in (its only acting role,
    finance when it holds both, else auditor); the toolbar switches among its granted roles."""
    identity = identity or console_identity(None)
    return Operator(identity.login, identity.default_role())


async def _demo_fix(service: ActionService) -> None:
    """On the built-in demo only, for the screenshots: push one support tier, so the audit log
    and the customer views show a real action (intent, outcome, closed exception). Runs on the
    service loop."""
    exceptions = await service.engine.open_exceptions()
    target = next((e for e in exceptions if e.rule == "entitlement.missing"), None)
    if target is None:
        return
    identity = service.identity
    if identity is not None and not identity.holds(Role.SUPPORT):
        return  # the login may not act for support: no demo fix (the role policy says who acts)
    previous = service.operator.role
    await service.switch_role(Role.SUPPORT)  # the login's own support role, audited
    try:
        plan = await service.plan(ActionRequest(ActionKind.PUSH, target.id, reason="tier from the plan"))
        result = await service.execute(plan)
        log.info("screenshot demo fix: %s %s", result.status.value, result.message)
    finally:
        await service.switch_role(previous)


async def _replay_after(refresh: asyncio.Task[object], service: ActionService, runner: ServiceLoop,
                        republish: Callable[[], None] | None = None) -> None:
    """Resume actions a previous session left queued or executing, once the data is fresh;
    then ``republish`` (the window shows the exceptions they closed, whichever replay ran
    them: this one, or the automatic replay, whose pass it waits for)."""
    with contextlib.suppress(Exception, asyncio.CancelledError):
        await refresh
    try:
        results = await runner.call(service.replay_pending())
    except PermissionDenied as exc:  # the operator switched to the auditor role meanwhile: auditors never act
        log.info("actions left pending by an earlier session are not replayed now: %s", exc)
        results = []
    if results:
        log.info("replayed %d pending actions from an earlier session", len(results))
    if republish is not None:
        republish()


def run_console(demo: bool = False, config: Path | None = None, profile: str | None = None,
                customers: int | None = None, seed: int | None = None, screenshot_dir: Path | None = None) -> int:
    tune_interpreter()  # GIL switch interval and collector policy: app/runtime.py says why
    previous_handler = qInstallMessageHandler(qt_message)  # before Qt says anything (the platform plugin)
    existing = QApplication.instance()
    app = existing if isinstance(existing, QApplication) else QApplication(sys.argv)
    app.setApplicationName("SyncDesk")
    app.setOrganizationName("SyncDesk")
    # the loop must outlive the window: _main closes clients and servers after it is closed
    app.setQuitOnLastWindowClosed(False)
    windows: list[MainWindow] = []
    sys.excepthook = _excepthook(windows)  # type: ignore[assignment]
    try:
        with asyncio.Runner(loop_factory=qasync.QEventLoop) as runner:
            return runner.run(_main(app, demo, config, profile, customers, seed, windows, screenshot_dir))
    finally:
        # Destroy Qt objects while Python is fully alive (not during interpreter finalization).
        for window in windows:
            window.deleteLater()
        windows.clear()
        app.processEvents()
        sys.excepthook = sys.__excepthook__
        if existing is None:
            app.shutdown()
        qInstallMessageHandler(previous_handler)
