"""Who may run which fix, as the views reflect it: fix buttons enabled or explained, the fix
policy the exception views ask, and which exceptions of a selection allow a bulk action.

The service enforces roles; these only reflect its verdicts (auditors see every fix disabled),
and every refusal is worded by the service.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from PySide6.QtWidgets import QAbstractButton

from services.actions.model import ActionKind, Operator, Role
from services.actions.roles import auditor_refusal
from services.core.domain import SyncException
from views.action_adapter import ActionAdapter
from views.actions.wording import kind_title
from views.widgets.text import plain_tooltip, text_of


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
