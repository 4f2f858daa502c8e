"""The actions' public types: who acts (:class:`Operator`, :class:`Role`), what they ask
(:class:`ActionRequest`), what the preview shows (:class:`Plan`: its :class:`Check` list and
:class:`PlannedCall` list), what comes back (:class:`ActionResult`, :class:`BulkResult`,
:class:`BulkProgress`), an outbox row as the console lists it (:class:`OutboxItem`), the two
refusals raised (:class:`PermissionDenied`, :class:`ActionConflict`), and the fixes each rule
offers (:data:`RULE_ACTIONS`). Plain data; :mod:`services.actions.service` does the work.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from services.actions.steps import Step, step_systems
from services.core.domain import SyncException, System, Team
from services.core.errors import SyncDeskError
from services.core.identity import Role  # the role policy's roles (services/core/identity.py)

Clock = Callable[[], datetime]


ROLE_TEAM: dict[Role, Team] = {Role.FINANCE: Team.FINANCE, Role.SUPPORT: Team.SUPPORT}


@dataclass(frozen=True)
class Operator:
    """Who acts: ``name`` is the login (:func:`services.core.identity.current_login`), ``role``
    the active role, one the role policy grants that login."""

    name: str
    role: Role


class ActionKind(enum.StrEnum):
    RETRY = "retry"
    #: post the ERP's draft copy of a final billing invoice (invoice.not_posted_in_erp; finance)
    POST = "post"
    #: delete the ERP's draft copy and create + post it again from billing (invoice.not_posted_in_erp)
    REPOST = "repost"
    CORRECT = "correct"
    #: credit a posted ERP invoice and post a corrected copy (invoice.amount_mismatch, invoice.tax_mismatch,
    #: invoice.currency_mismatch, subscription.proration_mismatch; finance)
    CREDIT_REPOST = "credit_repost"
    #: post the ERP credit note of a billing credit note or full refund against the credited ERP
    #: invoice (credit_note.missing_in_erp, invoice.refund_not_reflected; finance)
    CREDIT = "credit"
    ACCEPT = "accept"
    LINK = "link"
    CREATE = "create"
    PUSH = "push"
    REVOKE = "revoke"
    CANCEL = "cancel"
    FLAG = "flag"


class ActionStatus(enum.StrEnum):
    QUEUED = "queued"
    EXECUTING = "executing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    REFUSED = "refused"


@dataclass
class ActionRequest:
    kind: ActionKind
    exception_id: str
    reason: str = ""
    #: correct: edited values; link: {"candidate": ref id}; accept: {"expires_at": iso};
    #: retry, post, repost, credit_repost, credit: {"invoice_date": iso, "acknowledge_warning": name}
    value: dict[str, Any] | None = None


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


@dataclass
class PlannedCall:
    system: System
    method: str
    path: str
    body: dict[str, Any]  # already redacted
    description: str = ""


@dataclass
class Plan:
    request: ActionRequest
    exception: SyncException
    operator: Operator
    checks: list[Check]
    calls: list[PlannedCall]
    idempotency_key: str
    before: dict[str, Any]
    expected_after: dict[str, Any]
    #: added: what execution runs (typed steps, :mod:`services.actions.steps`; stored in the
    #: outbox as JSON for replay)
    steps: list[Step] = field(default_factory=list)
    #: added: the system written to first (``None`` for local actions: accept, flag)
    target_system: System | None = None
    #: added: remarks the preview shows (e.g. why an invoice is dated today)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def explanation(self) -> str:
        return next((c.detail for c in self.checks if not c.ok), "")

    @property
    def systems(self) -> list[System]:
        """Every remote system the steps write to (added)."""
        return step_systems(self.steps)


@dataclass
class ActionResult:
    action_id: str
    kind: ActionKind
    exception_id: str
    status: ActionStatus
    message: str
    verified: bool = False
    after: dict[str, Any] = field(default_factory=dict)


@dataclass
class OutboxItem:
    action_id: str
    kind: ActionKind
    status: ActionStatus
    operator: str
    role: str
    exception_id: str | None
    customer_id: str | None
    target_system: str | None
    reason: str | None
    attempts: int
    last_error: str | None
    created_at: datetime
    updated_at: datetime


@dataclass
class BulkProgress:
    done: int
    total: int
    succeeded: int
    failed: int
    queued: int
    current: str


@dataclass
class BulkResult:
    results: list[ActionResult]
    cancelled: bool

    def _count(self, status: ActionStatus) -> int:
        return sum(1 for r in self.results if r.status is status)

    @property
    def succeeded(self) -> int:
        return self._count(ActionStatus.SUCCEEDED)

    @property
    def failed(self) -> int:
        return self._count(ActionStatus.FAILED)

    @property
    def queued(self) -> int:
        return self._count(ActionStatus.QUEUED) + self._count(ActionStatus.EXECUTING)

    @property
    def refused(self) -> int:
        return self._count(ActionStatus.REFUSED)

    @property
    def not_started(self) -> int:
        return self._count(ActionStatus.CANCELLED)

    @property
    def ok(self) -> bool:
        return not self.cancelled and all(r.status is ActionStatus.SUCCEEDED for r in self.results)


class PermissionDenied(SyncDeskError):
    """The operator's role does not allow this."""


class ActionConflict(SyncDeskError):
    """The outbox row is not in a state that allows the operation."""


#: the fixes each rule offers, in the order a headless run picks the default (first)
RULE_ACTIONS: dict[str, tuple[ActionKind, ...]] = {
    "customer.unmapped_erp": (ActionKind.CREATE, ActionKind.LINK, ActionKind.ACCEPT),
    "customer.unmapped_support": (ActionKind.CREATE, ActionKind.LINK, ActionKind.ACCEPT),
    "customer.master_drift": (ActionKind.PUSH, ActionKind.CORRECT, ActionKind.ACCEPT),
    "invoice.missing_in_erp": (ActionKind.RETRY, ActionKind.ACCEPT),
    "invoice.not_posted_in_erp": (ActionKind.POST, ActionKind.REPOST, ActionKind.ACCEPT),
    "invoice.amount_mismatch": (ActionKind.CORRECT, ActionKind.CREDIT_REPOST, ActionKind.FLAG, ActionKind.ACCEPT),
    # the ERP copy's content differs from billing's (currency, tax per rate): a draft copy is
    # corrected with billing's lines, mapped taxes and currency, a posted one credited and reposted so
    # (services.actions.plan_invoices)
    "invoice.currency_mismatch": (ActionKind.CORRECT, ActionKind.CREDIT_REPOST, ActionKind.FLAG, ActionKind.ACCEPT),
    "invoice.tax_mismatch": (ActionKind.CORRECT, ActionKind.CREDIT_REPOST, ActionKind.FLAG, ActionKind.ACCEPT),
    "invoice.duplicate_in_erp": (ActionKind.CANCEL, ActionKind.FLAG, ActionKind.ACCEPT),
    "invoice.payment_state": (ActionKind.FLAG, ActionKind.ACCEPT),
    "invoice.orphan_in_erp": (ActionKind.FLAG, ActionKind.ACCEPT),
    # the ERP credit note posted as Tryton's credit makes one (services.actions.plan_credits)
    "credit_note.missing_in_erp": (ActionKind.CREDIT, ActionKind.FLAG, ActionKind.ACCEPT),
    "invoice.refund_not_reflected": (ActionKind.CREDIT, ActionKind.FLAG, ActionKind.ACCEPT),
    # a draft ERP credit note is corrected with billing's lines (a posted one is never edited in
    # place: flag it; services.actions.plan_credits)
    "credit_note.amount_mismatch": (ActionKind.CORRECT, ActionKind.FLAG, ActionKind.ACCEPT),
    # the copy booked without (some of) its proration lines: corrected (a draft) or credited and
    # reposted (a posted one) with every billing line, the proration lines included
    "subscription.proration_mismatch": (ActionKind.CORRECT, ActionKind.CREDIT_REPOST, ActionKind.FLAG,
                                        ActionKind.ACCEPT),
    "subscription.terms_mismatch": (ActionKind.PUSH, ActionKind.ACCEPT),
    "entitlement.missing": (ActionKind.PUSH, ActionKind.ACCEPT),
    "entitlement.tier_mismatch": (ActionKind.PUSH, ActionKind.ACCEPT),
    "entitlement.orphan": (ActionKind.REVOKE, ActionKind.ACCEPT),
}
OWNER_FIELDS = ("name", "tax_id", "country")
PENDING_STATUSES = (ActionStatus.QUEUED, ActionStatus.EXECUTING)
