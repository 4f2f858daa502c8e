"""The one place where the action service and the audit log meet Qt.

:class:`ActionAdapter` turns :class:`~services.actions.service.ActionService` and
:class:`~services.store.audit.AuditLog` calls into Qt signals. Views call its plain methods (no
``asyncSlot``): each method starts a named task in a :class:`TaskRegistry` (strong reference,
latest wins per name, failures logged) and returns it, so a caller that wants to may await it.
Every failure becomes one ``error`` signal with redacted text; nothing raises into a Qt slot.

The action service's coroutines run on ``runner`` (the console's service thread, see
``services/runner.py``); the audit log reads SQLite, so every ``AuditLog`` call runs in a worker
thread (``asyncio.to_thread``); the UI thread only draws.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from PySide6.QtCore import QObject, Signal

from services.actions.model import (
    ActionKind,
    ActionRequest,
    ActionResult,
    BulkProgress,
    BulkResult,
    Operator,
    OutboxItem,
    Plan,
    Role,
)
from services.actions.service import ActionService
from services.core.domain import SyncException
from services.core.redaction import redact
from services.runner import InlineLoop, Runner, post_to
from services.store.audit import AuditEntry, AuditFilter, AuditLog, VerifyCancelled, VerifyResult
from views.adapters import TaskRegistry

log = logging.getLogger(__name__)

T = TypeVar("T")

#: how many audit entries the page loads at most (newest first); export is not limited
AUDIT_PAGE_LIMIT = 5000


class ActionAdapter(QObject):
    """Signals for everything the action and audit views show; the tasks that feed them."""

    plan_ready = Signal(object)  # Plan
    result = Signal(object)  # ActionResult
    bulk_progress = Signal(object)  # BulkProgress
    bulk_done = Signal(object)  # BulkResult
    pending_changed = Signal(list)  # list[OutboxItem]
    audit_loaded = Signal(list)  # list[AuditEntry]
    verify_done = Signal(object)  # VerifyResult
    verify_progress = Signal(int, int)  # entries checked, of about this many (emitted from the worker)
    verify_cancelled = Signal(int)  # entries checked before the operator stopped it
    export_done = Signal(str)  # path written
    operator_changed = Signal(object)  # Operator
    replayed = Signal(list)  # list[ActionResult]: queued or left-over actions the service replayed by itself
    busy = Signal(str, bool)  # what ("plan", "execute", "bulk", "audit", "verify", "export", ...), running
    error = Signal(str)  # human text, secrets redacted
    failed = Signal(str, str)  # what ("pending", "audit", ...), the same text as ``error``: a page shows it in place

    def __init__(self, service: ActionService, audit: AuditLog | None = None,
                 parent: QObject | None = None, runner: Runner | None = None) -> None:
        super().__init__(parent)
        self.service = service
        self.runner: Runner = runner or InlineLoop()
        self.audit = audit
        self.tasks = TaskRegistry()
        self._seq = 0
        self._verify_stop: threading.Event | None = None

    def follow_replays(self) -> None:
        """Emit ``replayed`` (then re-read the pending actions) whenever the service replays
        actions by itself — queued ones when a system returns, left-over ones after a restart.
        Call it on the UI loop: the service calls back on its own thread."""
        def on_replayed(results: list[ActionResult]) -> None:
            self.replayed.emit(results)
            self.refresh_pending()

        self.service.replay_listeners.append(post_to(asyncio.get_running_loop(), on_replayed))

    # -- operator (plain, synchronous: the service only stores it) ------------------------
    @property
    def operator(self) -> Operator:
        return self.service.operator

    def set_operator(self, operator: Operator) -> None:
        if operator == self.service.operator:
            return
        self.service.set_operator(operator)
        self.operator_changed.emit(operator)

    def switch_role(self, role: Role) -> asyncio.Task[Any]:
        """The logged-in operator's role switch (the toolbar's): the service checks it against
        the role policy and writes its audit entry, on the service loop; then
        ``operator_changed``. A refusal is one ``error``."""
        async def run() -> Operator:
            before = self.service.operator
            now: Operator = await self.runner.call(self.service.switch_role(role))
            if now != before:
                self.operator_changed.emit(now)
            return now

        return self.tasks.start("role", self._guard("role", "Could not switch the role", run))

    def allowed_actions(self, exc: SyncException) -> list[tuple[ActionKind, bool, str]]:
        """(kind, allowed for the current operator, why not) for each fix the exception allows."""
        try:
            return list(self.service.allowed_actions(exc))
        except Exception as exc_:  # a rule the service does not know must not break the view
            log.exception("allowed_actions failed for %s", exc.id)
            self.error.emit(_text("Could not list the fixes", exc_))
            return []

    # -- the error-mapping wrapper every task goes through --------------------------------
    async def _guard(self, what: str, label: str, work: Callable[[], Awaitable[T]]) -> T | None:
        """Run ``work``; report ``busy`` around it and any failure as one ``error`` signal."""
        self.busy.emit(what, True)
        try:
            return await work()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("%s failed", label, exc_info=True)
            self.error.emit(_text(label, exc))
            self.failed.emit(what, _text(label, exc))
            return None
        finally:
            self.busy.emit(what, False)

    def _unique(self, prefix: str) -> str:
        self._seq += 1
        return f"{prefix}:{self._seq}"

    # -- one action: plan (preflight + dry run), execute ----------------------------------
    async def plan(self, request: ActionRequest) -> Plan:
        """Preflight and dry-run ``request``; emits ``plan_ready``. Raises on failure (the
        caller, e.g. the fix dialog flow, shows the error where the operator is looking)."""
        self.busy.emit("plan", True)
        try:
            plan = await self.runner.call(self.service.plan(request))
        finally:
            self.busy.emit("plan", False)
        self.plan_ready.emit(plan)
        return plan

    def start_plan(self, request: ActionRequest) -> asyncio.Task[Any]:
        """Plan in the background (latest wins per exception): ``plan_ready`` or ``error``."""
        return self.tasks.start(f"plan:{request.exception_id}",
                                self._guard("plan", "Preflight failed", lambda: self.plan(request)))

    async def execute(self, plan: Plan) -> ActionResult:
        """Execute a confirmed plan; emits ``result`` and refreshes the pending actions.
        Raises on failure; start it with :meth:`start_execute` to get ``error`` instead."""
        self.busy.emit("execute", True)
        try:
            result = await self.runner.call(self.service.execute(plan))
        finally:
            self.busy.emit("execute", False)
        self.result.emit(result)
        self.refresh_pending()
        return result

    def start_execute(self, plan: Plan) -> asyncio.Task[Any]:
        """Execute in a task of its own: closing a dialog never cancels a write under way
        (each execution has a unique task name, so nothing "latest-wins" it away)."""
        name = self._unique(f"execute:{plan.idempotency_key}")
        return self.tasks.start(name, self.execute(plan))

    # -- bulk ------------------------------------------------------------------------------
    def start_bulk(self, requests: Sequence[ActionRequest]) -> asyncio.Task[Any]:
        """Run ``requests`` one after another: ``bulk_progress`` …, then ``bulk_done``."""
        return self.tasks.start("bulk", self._bulk(list(requests)))

    def cancel_bulk(self) -> bool:
        """Stop a bulk run: actions already started finish, the rest are not started."""
        return self.tasks.cancel("bulk")

    @property
    def bulk_running(self) -> bool:
        return self.tasks.running("bulk")

    async def _bulk(self, requests: list[ActionRequest]) -> BulkResult:
        self.busy.emit("bulk", True)
        try:
            on_progress: Callable[[BulkProgress], None] = post_to(asyncio.get_running_loop(), self.bulk_progress.emit)
            result = await self.runner.call(self.service.bulk(requests, on_progress))
        except asyncio.CancelledError:
            # the service may end the run by raising instead of returning a partial result
            self.bulk_done.emit(BulkResult(results=[], cancelled=True))
            self.refresh_pending()
            raise
        except Exception as exc:
            log.warning("bulk action failed", exc_info=True)
            self.error.emit(_text("Bulk action failed", exc))
            self.bulk_done.emit(BulkResult(results=[], cancelled=True))
            return BulkResult(results=[], cancelled=True)
        finally:
            self.busy.emit("bulk", False)
        self.bulk_done.emit(result)
        self.refresh_pending()
        return result

    # -- pending actions (the outbox) --------------------------------------------------------
    def refresh_pending(self) -> asyncio.Task[Any]:
        """Re-read the outbox (in a worker thread: it is SQLite) and emit ``pending_changed``."""
        return self.tasks.start("pending", self._guard("pending", "Could not read the pending actions",
                                                       self._load_pending))

    async def _load_pending(self) -> list[OutboxItem]:
        items = list(await asyncio.to_thread(self.service.pending))
        self.pending_changed.emit(items)
        return items

    def cancel_pending(self, action_id: str) -> asyncio.Task[Any]:
        async def work() -> None:
            await self.runner.call(self.service.cancel_pending(action_id))
            self.refresh_pending()

        return self.tasks.start(f"cancel:{action_id}",
                                self._guard("cancel", f"Could not cancel action {action_id}", work))

    def retry_failed(self, action_id: str) -> asyncio.Task[Any]:
        async def work() -> ActionResult:
            result = await self.runner.call(self.service.retry_failed(action_id))
            self.result.emit(result)
            self.refresh_pending()
            return result

        return self.tasks.start(f"retry:{action_id}",
                                self._guard("retry", f"Could not retry action {action_id}", work))

    # -- the audit log (SQLite: always in a worker thread) ------------------------------------
    def _need_audit(self) -> AuditLog:
        if self.audit is None:
            raise RuntimeError("no audit log is open")
        return self.audit

    def load_audit(self, flt: AuditFilter | None = None, limit: int = AUDIT_PAGE_LIMIT) -> asyncio.Task[Any]:
        """Read the newest ``limit`` entries matching ``flt`` (latest wins): ``audit_loaded``."""
        async def work() -> list[AuditEntry]:
            audit = self._need_audit()
            entries = await asyncio.to_thread(audit.entries, flt, limit)
            self.audit_loaded.emit(entries)
            return entries

        return self.tasks.start("audit", self._guard("audit", "Could not read the audit log", work))

    def verify_audit(self) -> asyncio.Task[Any]:
        """Check the whole hash chain: ``verify_progress`` as it goes, then ``verify_done(VerifyResult)``
        or, after :meth:`cancel_verify`, ``verify_cancelled(checked)``."""
        stop = threading.Event()
        self._verify_stop = stop

        async def work() -> VerifyResult | None:
            audit = self._need_audit()
            try:
                result = await asyncio.to_thread(audit.verify, self.verify_progress.emit, stop.is_set)
            except VerifyCancelled as exc:
                self.verify_cancelled.emit(exc.checked)
                return None
            self.verify_done.emit(result)
            return result

        return self.tasks.start("verify", self._guard("verify", "Could not verify the audit log", work))

    def cancel_verify(self) -> bool:
        """Stop a running verify (it stops within a page: tens of ms)."""
        if self._verify_stop is None or not self.tasks.running("verify"):
            return False
        self._verify_stop.set()
        return True

    def export_audit(self, fmt: str, path: str | Path, flt: AuditFilter | None = None) -> asyncio.Task[Any]:
        """Write every entry matching ``flt`` (no page limit) as ``fmt`` ("csv"/"json") to ``path``:
        ``export_done(path)``."""
        target = Path(path)

        def write() -> None:
            audit = self._need_audit()
            text = audit.export(fmt, audit.entries(flt))
            tmp = target.with_name(target.name + ".part")
            tmp.write_text(text, encoding="utf-8", newline="")
            tmp.replace(target)

        async def work() -> str:
            await asyncio.to_thread(write)
            self.export_done.emit(str(target))
            return str(target)

        return self.tasks.start("export", self._guard("export", f"Could not export to {target}", work))

    # -- shutdown ------------------------------------------------------------------------------
    async def aclose(self) -> None:
        await self.tasks.aclose()


def _text(label: str, exc: BaseException) -> str:
    detail = str(exc) or type(exc).__name__
    return redact(f"{label}: {detail}")
