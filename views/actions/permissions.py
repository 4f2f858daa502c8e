"""Who may run which fix, as the views reflect it: fix buttons enabled or explained, the fix
policy the exception views ask, the bulk menu's entries, and which exceptions of a selection
allow a bulk action.

The service enforces roles; these only reflect its verdicts (auditors see every fix disabled),
and every refusal is worded by the service. The profile has its say too: a read-only profile
offers no fix that writes, and after a connection test the fixes the profile cannot perform
(:meth:`services.actions.service.ActionService.set_blocked_fixes`, fed by
:class:`ProfilePermissions`) are offered disabled with the test's reason.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QAbstractButton

from services.actions.model import RULE_ACTIONS, ActionKind, Operator, Role
from services.actions.roles import auditor_refusal
from services.actions.service import LOCAL_KINDS
from services.core.domain import SyncException
from services.io.permissions import ConnectionReport, blocked_fixes
from views.action_adapter import ActionAdapter
from views.actions.wording import bulk_text, kind_of, kind_title
from views.widgets.text import plain_tooltip, text_of

log = logging.getLogger(__name__)


def apply_fix_permissions(buttons: Iterable[QAbstractButton], allowed: Sequence[tuple[ActionKind, bool, str]],
                          operator: Operator) -> None:
    """Enable each fix button (``property("action")`` or object name ``fix_<kind>``) as the
    service allows it for ``operator``; a disabled one says why in its tooltip (the service's
    words: its verdict, or for an auditor's button it has no verdict for, its refusal of auditors)."""
    table = {text_of(kind): (ok, why) for kind, ok, why in allowed}
    auditor = text_of(operator.role) == Role.AUDITOR.value
    for button in buttons:
        action = button.property("action") or button.objectName().removeprefix("fix_")
        ok, why = table.get(str(action), (False, "this action is not available"))
        if auditor:
            ok, why = False, (why if str(action) in table and why else auditor_refusal(operator))
        button.setEnabled(ok)
        button.setToolTip(plain_tooltip(kind_title(str(action)) + "…" if ok else why or "not allowed"))


def fix_policy(adapter: ActionAdapter) -> Callable[[SyncException], list[tuple[str, bool, str]]]:
    """For ``ExceptionDetail.set_fix_policy`` / ``CustomerPage.set_fix_policy``: the fixes the
    service offers for an exception, whether the current operator may run each, and why not in
    the service's words."""
    def policy(exc: SyncException) -> list[tuple[str, bool, str]]:
        auditor = text_of(adapter.operator.role) == Role.AUDITOR.value
        return [(text_of(kind), ok and not auditor, (why or auditor_refusal(adapter.operator)) if auditor else why)
                for kind, ok, why in adapter.allowed_actions(exc)]

    return policy


def bulk_eligible(adapter: ActionAdapter, exceptions: Sequence[SyncException], kind: ActionKind,
                  ) -> tuple[list[SyncException], list[tuple[SyncException, str]]]:
    """Split a selection: the exceptions that allow ``kind`` for this operator, and the rest
    with the reason each is left out."""
    eligible: list[SyncException] = []
    skipped: list[tuple[SyncException, str]] = []
    for exc in exceptions:
        allowed = {text_of(k): (ok, why) for k, ok, why in adapter.allowed_actions(exc)}
        ok, why = allowed.get(kind.value, (False, f"{kind_title(kind).lower()} is not a fix for its rule"))
        if ok:
            eligible.append(exc)
        else:
            skipped.append((exc, why))
    return eligible, skipped


def bulk_blocked(adapter: ActionAdapter, kind: ActionKind) -> str | None:
    """Why the bulk entry of ``kind`` can do nothing through this profile (None: it can): the
    profile is read-only and ``kind`` writes, or the last connection test blocked ``kind`` for
    every rule that offers it (the first rule's reason)."""
    if kind in LOCAL_KINDS:
        return None
    # a service without an engine or a connection test (an embedding's) blocks nothing
    read_only = getattr(getattr(adapter.service, "engine", None), "read_only", None)
    if isinstance(read_only, str) and read_only:
        return read_only
    blocked: dict[tuple[str, str], str] = getattr(adapter.service, "blocked_fixes", {})
    reasons = [blocked.get((rule, kind.value)) for rule, kinds in RULE_ACTIONS.items() if kind in kinds]
    if reasons and all(reasons):
        return reasons[0]
    return None


def apply_bulk_permissions(entries: Iterable[QAction], adapter: ActionAdapter) -> None:
    """Enable each bulk menu entry (its ``data()`` is the fix kind's value) unless
    :func:`bulk_blocked` says why not, which becomes its tooltip and status tip."""
    for entry in entries:
        kind = kind_of(str(entry.data() or ""))
        if kind is None:
            continue
        why = bulk_blocked(adapter, kind)
        entry.setEnabled(why is None)
        tip = plain_tooltip(why) if why else bulk_text(kind)
        entry.setToolTip(tip)
        entry.setStatusTip(why or "")


class ProfilePermissions(QObject):
    """The fixes the active profile cannot perform, from its last connection test, applied to
    the console: :meth:`apply_report` is the slot for any connection test of the active profile
    (the start-up's background test, the Connections dialog's ``tested`` signal); a report of
    another profile is ignored. ``applied`` carries the blocked fixes once the views show them.

    ``refresh`` redraws what depends on the fix policy (the window's
    :meth:`~views.main_window.MainWindow.apply_fix_policy`)."""

    applied = Signal(object)  # dict[(rule, kind value), why]

    def __init__(self, refresh: Callable[[], None], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.refresh = refresh
        self.adapter: ActionAdapter | None = None
        self.profile: str | None = None
        #: the last blocked fixes applied to the active profile
        self.blocked: dict[tuple[str, str], str] = {}

    def bind(self, adapter: ActionAdapter, profile: str) -> None:
        """A new active profile (at start-up, after a switch): nothing blocked until it is tested."""
        self.adapter, self.profile, self.blocked = adapter, profile, {}

    def apply_report(self, report: object) -> bool:
        """Grey out the fixes ``report`` (a :class:`~services.io.permissions.ConnectionReport`)
        finds the active profile cannot perform; False when it is not the active profile's."""
        if not isinstance(report, ConnectionReport) or self.adapter is None or report.profile != self.profile:
            return False
        self.apply(blocked_fixes(report))
        return True

    def apply(self, blocked: dict[tuple[str, str], str]) -> None:
        if self.adapter is None:
            return
        self.blocked = dict(blocked)
        self.adapter.service.set_blocked_fixes(self.blocked)
        log.info("profile %r: %d fixes cannot be performed", self.profile, len(self.blocked))
        self.refresh()
        self.applied.emit(dict(self.blocked))
