"""Operator actions ([F5]): preflight, dry-run preview, write-ahead outbox, idempotent execution,
verify-after-write, automatic replay, roles and guardrails. Qt-free.

One action, start to end
------------------------
1. :meth:`ActionService.plan` — *preflight + dry run*. Reads only the local snapshot (never the
   network, never the database for writing): the exception is still open, the operator's role
   may act on the rule, mappings exist (party / organization), every plan key maps to an ERP
   product, the currency is known to the ERP, the owner guardrail holds, a posted invoice is not
   edited in place (only credited + reposted), the target system has a connector. A failed check
   is a :class:`Check` with ``ok=False`` whose ``detail`` explains itself
   (``Plan.explanation``); nothing is written.
   The plan lists the exact calls (:class:`PlannedCall`: method, endpoint, body passed through
   :func:`services.store.audit.redact_body`) and a deterministic idempotency key.
2. :meth:`ActionService.execute` — refuses a failed plan (one audit entry, outcome
   ``refused``). Otherwise the *write-ahead*: the outbox row (status ``executing``, or
   ``queued`` when a target's circuit breaker is open) and the audit *intent* entry are
   committed in ONE durable transaction (:class:`~services.store.audit.GroupCommitter`) before the
   first request. Then the steps run, the target is re-read (*verify*), and the outcome entry
   and the row's final status are committed together.
3. *Verify after write*: every written object is read back through its connector, folded into
   the engine's data (:meth:`Engine.apply_records`) and the rules are evaluated again
   (concurrent verifications share one reconciliation). ``succeeded`` with ``verified=True``
   only when the exception id is gone; a write that left the disagreement in place is
   ``failed`` ("written but the difference remains: …").

Idempotency
-----------
The key is a hash of (rule, object, action kind, operator-chosen values, the exception's
first-seen time): a double click, a re-run of the same fix on the same occurrence, a replay
after a crash all map to the same outbox row (``idempotency_key`` is unique). A second execute
of an identical plan while the first is executing or after it succeeded returns that result and
writes nothing; after a failure (or a cancel) it re-runs the same row (attempt n+1). A
disagreement that comes back later has a new first-seen time, hence a new key. On the wire:
billing writes carry ``Idempotency-Key`` = the key (+ step number); ERP creates look up by
reference / code (a credit note: by its origin) first, and again when an answer is lost; ERP
button presses accept the state the button leads to when the answer is lost; ERP writes and
support updates set absolute values (PUT), so repeating them changes nothing.

Failures, outages, replay
-------------------------
- 5xx, timeouts and dropped answers are retried by the HTTP layer where safe; an action whose
  step still fails this way is re-run from the start (idempotent) after a short pause, up to
  ``len(retry_delays) + 1`` attempts, then ``failed`` (visible in :meth:`pending`).
- When a target's circuit breaker is open the action is *queued* (write-ahead done, nothing
  sent) — or re-queued when the breaker opened under it. :meth:`start_auto_replay` listens to
  every breaker: while one is open it probes the system after the cool-down (one cheap read),
  and when the breaker closes it replays the queued actions (:meth:`replay_pending`).
- 429: the HTTP layer honours ``Retry-After``; bulk actions are paced by each system's client
  rate limiter and concurrency cap plus a per-system cap on actions in flight.
- After a crash, ``executing`` rows are resumed by :meth:`replay_pending` (on start); they
  are idempotent, so an action whose request had landed is not posted twice.

Semantics per rule (``RULE_ACTIONS``)
-------------------------------------
- ``invoice.missing_in_erp`` → RETRY: create + post the ERP invoice from the billing invoice
  (party by code, currency, lines = plan key → ERP product code, quantity, unit price; a line
  whose amount is not quantity × a unit price in the currency's precision is sent as 1 × the
  amount). The invoice date is the billing finalization date, unless the ERP's strict invoice
  sequence already holds a later posted invoice (Tryton refuses to number an invoice dated
  before the latest one): then the late posting is dated today and the preview says so. The
  operator may choose the date (``value={"invoice_date": "YYYY-MM-DD"}``). A Tryton warning
  (e.g. due date in the past) is never acknowledged silently: the action fails with the
  warning's text and name; re-running with ``value={"acknowledge_warning": name}``
  acknowledges it (audited) and posts the draft left by the first attempt.
- ``customer.unmapped_erp`` → CREATE the party from billing's copy (the ERP owns legal name,
  tax id and country, but when no party exists billing's copy is the only source — the preview
  says so) or LINK a candidate party (``value={"candidate": id}``; must exist and be unlinked):
  its code becomes the customer id.
- ``customer.unmapped_support`` → CREATE the organization (external id = customer id, name =
  the ERP party's legal name when mapped, else billing's; with the support tier the billing
  plan grants, so no ``entitlement.missing`` follows) or LINK (PUT the candidate's external id).
- ``customer.master_drift`` → PUSH the ERP's (owner's) name / tax id / country to billing
  (``POST /v1/customers/{id}`` with Idempotency-Key) and its name to the support organization
  (PUT). CORRECT writes operator-chosen values to a *copy* (``value={"target": "billing" |
  "support", "name": …}``); a CORRECT aimed at the ERP is refused: "the ERP owns …;
  corrections flow from the owner to the copies".
- ``invoice.amount_mismatch`` → CORRECT a *draft* ERP invoice: its currency and lines are
  replaced by billing's (or by ``value={"currency": …, "lines": [...]}``). A posted invoice is
  never edited in place (CORRECT is refused): CREDIT_REPOST it (finance role only; a reason is
  required) — the ERP credits it with refund through Tryton's *Credit* wizard (a credit note
  copying it with negated lines is posted and reconciled, the invoice ends ``cancelled``), then a
  corrected copy with billing's lines and currency and the billing invoice id as reference is
  created and posted (:meth:`TrytonConnector.credit_and_repost`). Both are dated today, or the
  latest posted invoice's date when the ERP's strict sequence is already later
  (``value={"invoice_date": …}`` chooses); a warning is handled as for RETRY. Idempotent end to
  end: the credit note is looked up by its origin and the copy by reference before each create,
  and again when an answer is lost, so a repeat, a lost answer or a crash between the steps
  never credits or posts twice. Verify re-reads the three invoices: the credited one (cancelled)
  and the credit note (no billing copy: the connector maps it without reference) drop out of the
  invoice rules, and the exception closes only when the corrected copy agrees with billing.
  Refused in preflight: a draft (correct it), a paid ERP invoice (Tryton refunds only an unpaid
  posted one), a voided billing invoice, a duplicate. FLAG for review and ACCEPT stay available.
- ``invoice.duplicate_in_erp`` → CANCEL the extra draft copies (the ``cancel`` button; one
  copy is kept: the posted one, else the oldest; ``value={"invoice": id}`` picks the copy to
  cancel). When every extra copy is posted: refused, FLAG it.
- ``invoice.payment_state``, ``invoice.orphan_in_erp`` → FLAG for review (an audited local
  record; no remote write; the exception stays open) or ACCEPT.
- ``subscription.terms_mismatch`` → PUSH billing's plan (subscription service of that product),
  quantity and period end (next invoice date) to the ERP subscription. ACCEPT.
- ``entitlement.missing`` / ``entitlement.tier_mismatch`` → PUSH the tier billing grants
  (PUT ``organization_fields.support_tier``); ``entitlement.orphan`` → REVOKE (tier null). ACCEPT.
- ACCEPT (every rule): reason and expiry required (``value={"expires_at": iso}``); stored in
  ``accepted_difference`` with a fingerprint of the exception's sides. While it is valid and
  the fingerprint unchanged, :meth:`Engine.open_exceptions` hides the exception (a hide hook);
  it reopens when the data changes (another fingerprint) or the acceptance expires.

Roles: ``finance`` acts on finance-owned rules, ``support`` on support-owned ones, ``auditor``
never acts (plans show a failed ``role`` check; execute/bulk/replay/cancel raise
:class:`PermissionDenied`). ``retry_failed`` and ``cancel_pending`` refuse another team's action
too, whose owner comes from the outbox row's rule when the local snapshot does not know the
exception. Every audit entry carries the operator's name and role.
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update

from services.core.domain import RULES, Customer, Invoice, InvoiceStatus, Severity, SyncException, System, Team, Tier
from services.core.errors import (
    ConnectorError,
    NotFoundError,
    RateLimitedError,
    RemoteValidationError,
    RemoteWarning,
    SyncDeskError,
    UnavailableError,
)
from services.core.reconcile import ReconcileResult, _Run
from services.core.redaction import redact
from services.core.sysdata import SystemData
from services.engine import Engine
from services.io.connectors.base import Connector, utc_now
from services.io.connectors.stripe import StripeConnector, currency_exponent
from services.io.connectors.tryton import TrytonConnector
from services.io.connectors.zendesk import ZendeskConnector
from services.io.http import BreakerState
from services.store.audit import AuditEntry, AuditLog, GroupCommitter, redact_body
from services.store.storage import ACCEPTED, OUTBOX

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


# --------------------------------------------------------------------------------------
# Public types
# --------------------------------------------------------------------------------------


class Role(enum.StrEnum):
    FINANCE = "finance"
    SUPPORT = "support"
    AUDITOR = "auditor"


ROLE_TEAM: dict[Role, Team] = {Role.FINANCE: Team.FINANCE, Role.SUPPORT: Team.SUPPORT}


@dataclass(frozen=True)
class Operator:
    name: str
    role: Role


class ActionKind(enum.StrEnum):
    RETRY = "retry"
    CORRECT = "correct"
    #: credit a posted ERP invoice and post a corrected copy (invoice.amount_mismatch; finance)
    CREDIT_REPOST = "credit_repost"
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
    #: retry, credit_repost: {"invoice_date": iso, "acknowledge_warning": name}
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
    #: added: what execution runs (JSON-able steps; stored in the outbox for replay)
    steps: list[dict[str, Any]] = field(default_factory=list)
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
        return _step_systems(self.steps)


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
    "invoice.amount_mismatch": (ActionKind.CORRECT, ActionKind.CREDIT_REPOST, ActionKind.FLAG, ActionKind.ACCEPT),
    "invoice.duplicate_in_erp": (ActionKind.CANCEL, ActionKind.FLAG, ActionKind.ACCEPT),
    "invoice.payment_state": (ActionKind.FLAG, ActionKind.ACCEPT),
    "invoice.orphan_in_erp": (ActionKind.FLAG, ActionKind.ACCEPT),
    "subscription.terms_mismatch": (ActionKind.PUSH, ActionKind.ACCEPT),
    "entitlement.missing": (ActionKind.PUSH, ActionKind.ACCEPT),
    "entitlement.tier_mismatch": (ActionKind.PUSH, ActionKind.ACCEPT),
    "entitlement.orphan": (ActionKind.REVOKE, ActionKind.ACCEPT),
}
LOCAL_OPS = frozenset({"local.accept", "local.flag"})
OWNER_FIELDS = ("name", "tax_id", "country")
PENDING_STATUSES = (ActionStatus.QUEUED, ActionStatus.EXECUTING)


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def exception_fingerprint(exc: SyncException) -> str:
    """A hash of the exception's sides (system, object, values): changes when the data does."""
    sides = sorted([[s.system.value, str(s.ref) if s.ref else None, s.values] for s in exc.sides],
                   key=_canonical)
    return hashlib.sha256(_canonical(sides).encode()).hexdigest()


def _step_systems(steps: Iterable[dict[str, Any]]) -> list[System]:
    out: list[System] = []
    for step in steps:
        sys_name = step.get("system")
        if sys_name and System(sys_name) not in out:
            out.append(System(sys_name))
    return out


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat(timespec="microseconds")


def _parse_dt(text: str) -> datetime:
    dt = datetime.fromisoformat(text)
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt


def _no_progress(_: BulkProgress) -> None:
    return None


def _role_team(role: str) -> Team | None:
    """The team of an outbox row's role (``None``: not a team role)."""
    try:
        return ROLE_TEAM.get(Role(role))
    except ValueError:
        return None


def _ref_id(text: Any) -> str:
    """``"erp:party.party:42"`` or ``"42"`` -> ``"42"``."""
    return str(text).rsplit(":", 1)[-1]


# --------------------------------------------------------------------------------------
# Roles: who may act on what (pure; the service and the console's fast widget tests share it)
# --------------------------------------------------------------------------------------


def auditor_refusal(operator: Operator) -> str:
    """Why an auditor's act is refused (a plan's failed ``role`` check, :class:`PermissionDenied`)."""
    return f"{operator.name} is an auditor: auditors read, verify and export; they never act"


def role_check(exc: SyncException, operator: Operator) -> Check:
    """The ``role`` preflight check: may ``operator`` act on ``exc`` (its owning team)?"""
    if operator.role is Role.AUDITOR:
        return Check("role", False, auditor_refusal(operator))
    team = ROLE_TEAM[operator.role]
    if exc.owner is not team:
        return Check("role", False, f"{exc.rule} is owned by {exc.owner.value}; the {operator.role.value} role "
                                    "cannot act on it")
    return Check("role", True, f"{operator.name} ({operator.role.value}) may act on {exc.owner.value} exceptions")


def static_refusal(exc: SyncException, kind: ActionKind) -> str | None:
    """Why ``kind`` is refused for ``exc`` whoever acts, from the exception alone (a posted
    invoice is never edited in place, …); ``None`` when nothing in it forbids the action."""
    erp_sides = [s for s in exc.sides if s.system is System.ERP and s.ref is not None]
    if exc.rule == "invoice.amount_mismatch" and kind in (ActionKind.CORRECT, ActionKind.CREDIT_REPOST):
        state = str(erp_sides[0].values.get("state")) if erp_sides else ""
        number = (erp_sides[0].values.get("number") or erp_sides[0].ref) if erp_sides else "?"
        if kind is ActionKind.CORRECT and state in ("posted", "paid"):
            return _posted_explanation(number, state)
        if kind is ActionKind.CREDIT_REPOST and erp_sides:
            return _credit_refusal(number, state)
    if exc.rule == "invoice.duplicate_in_erp" and kind is ActionKind.CANCEL:
        drafts = [s for s in erp_sides if s.values.get("state") in ("draft", "validated")]
        if not drafts:
            return "every copy is posted: a posted invoice is never cancelled in place; flag it for review"
    return None


def action_verdict(exc: SyncException, kind: ActionKind, operator: Operator) -> tuple[ActionKind, bool, str]:
    """(kind, may ``operator`` run it on ``exc``, why not): the role check first, then the
    refusals the exception itself implies."""
    role = role_check(exc, operator)
    if not role.ok:
        return kind, False, role.detail
    why = static_refusal(exc, kind)
    return kind, why is None, why or ""


def allowed_actions_for(exc: SyncException, operator: Operator) -> list[tuple[ActionKind, bool, str]]:
    """:meth:`ActionService.allowed_actions` for ``operator``: a verdict per fix the rule offers."""
    return [action_verdict(exc, kind, operator) for kind in RULE_ACTIONS.get(exc.rule, ())]


@dataclass
class _Accepted:
    fingerprint: str
    expires_at: datetime
    reason: str
    operator: str


@dataclass
class _Work:
    """One outbox row being run (a fresh execute, a re-run, or a replay)."""

    action_id: str
    key: str
    kind: ActionKind
    exception_id: str
    rule: str
    customer_id: str | None
    steps: list[dict[str, Any]]
    calls: list[dict[str, Any]]
    before: dict[str, Any]
    operator: str
    role: str
    reason: str
    verify: bool
    attempts: int = 0
    replay_by: str | None = None

    @property
    def target(self) -> str | None:
        systems = _step_systems(self.steps)
        return systems[0].value if systems else None


class _Requeue(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class _Coalescer:
    """Concurrent verifications share one evaluation of the rules that started after they
    asked (the history is not rewritten: a verified exception is closed by id)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._lock = asyncio.Lock()
        self._next: asyncio.Future[ReconcileResult] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def fresh(self) -> ReconcileResult:
        if self._next is None:
            fut: asyncio.Future[ReconcileResult] = asyncio.get_running_loop().create_future()
            self._next = fut

            async def run() -> None:
                async with self._lock:
                    if self._next is fut:
                        self._next = None
                    try:
                        result = await self.engine.evaluate()
                    except BaseException as exc:
                        if not fut.done():
                            fut.set_exception(exc)
                        if isinstance(exc, asyncio.CancelledError):
                            raise
                        return
                    if not fut.done():
                        fut.set_result(result)

            task = asyncio.get_running_loop().create_task(run(), name="verify-reconcile")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await asyncio.shield(self._next)


# --------------------------------------------------------------------------------------
# The service
# --------------------------------------------------------------------------------------


class ActionService:
    """Plans, executes, verifies, queues and replays operator actions (see module docstring)."""

    def __init__(self, engine: Engine, audit: AuditLog, operator: Operator, *, clock: Clock = utc_now,
                 retry_delays: tuple[float, ...] = (0.2, 0.5, 1.0, 2.0),
                 bulk_concurrency: dict[System, int] | None = None) -> None:
        self.engine = engine
        self.audit = audit
        self.operator = operator
        self.clock = clock
        self.retry_delays = retry_delays
        #: actions in flight per target system during bulk and replay (requests are paced by
        #: each system's client: rate limiter + concurrency cap)
        self.bulk_concurrency: dict[System, int] = {System.BILLING: 8, System.ERP: 8, System.SUPPORT: 8}
        self.bulk_concurrency.update(bulk_concurrency or {})
        self.committer = GroupCommitter(audit)
        self._inflight: dict[str, asyncio.Future[ActionResult]] = {}
        self._running: set[str] = set()  # action ids executing in this process
        self._replay_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._listeners: list[tuple[Connector, Callable[[BreakerState], None]]] = []
        self._probing: set[System] = set()
        #: called (on the service loop) with the results of every replay that ran something —
        #: after a restart or when a system came back — so a console can show what changed
        self.replay_listeners: list[Callable[[list[ActionResult]], None]] = []
        self._closed = False
        self._coalescer = _Coalescer(engine)
        self._index: tuple[int, _Run] | None = None
        self._accepted: dict[str, _Accepted] = self._load_accepted()
        engine.hide_hooks.append(self.accepted)

    # -- operator and roles -------------------------------------------------------------
    def set_operator(self, operator: Operator) -> None:
        self.operator = operator

    def _role_check(self, exc: SyncException, operator: Operator | None = None) -> Check:
        return role_check(exc, operator or self.operator)

    def _require_actor(self) -> None:
        if self.operator.role is Role.AUDITOR:
            raise PermissionDenied(auditor_refusal(self.operator))

    def allowed_actions(self, exc: SyncException) -> list[tuple[ActionKind, bool, str]]:
        return allowed_actions_for(exc, self.operator)

    # -- accepted differences -----------------------------------------------------------
    def _load_accepted(self) -> dict[str, _Accepted]:
        with self.audit.storage.engine.connect() as conn:
            rows = conn.execute(select(ACCEPTED)).all()
        return {r.exception_id: _Accepted(r.fingerprint, _parse_dt(r.expires_at), r.reason, r.operator)
                for r in rows}

    def accepted(self, exc: SyncException) -> bool:
        """True while ``exc`` is an accepted difference: not expired, data unchanged."""
        rec = self._accepted.get(exc.id)
        return (rec is not None and rec.expires_at > self.clock()
                and rec.fingerprint == exception_fingerprint(exc))

    def accepted_ids(self) -> set[str]:
        """Ids with an unexpired acceptance (whether the data changed is checked by :meth:`accepted`)."""
        now = self.clock()
        return {k for k, v in self._accepted.items() if v.expires_at > now}

    # -- planning -----------------------------------------------------------------------
    def _idx(self) -> _Run:
        version = self.engine.data_version
        if self._index is None or self._index[0] != version:
            self._index = (version, _Run(self.engine.snapshot(), self.engine.config, self.clock()))
        return self._index[1]

    async def plan(self, req: ActionRequest) -> Plan:
        """Preflight and dry run; writes nothing. A refusal is a failed check."""
        exc = await self.engine.exception(req.exception_id)
        return self._plan(req, exc)

    def _plan(self, req: ActionRequest, exc: SyncException | None) -> Plan:
        operator = self.operator
        if exc is None or not exc.is_open:
            placeholder = exc or SyncException(
                id=req.exception_id, rule=req.exception_id.split(":", 1)[0], severity=Severity.MEDIUM,
                owner=Team.FINANCE, customer_id=None, object_id=req.exception_id.split(":", 1)[-1],
                summary="(unknown)", sides=[], first_seen=self.clock(), last_seen=self.clock())
            why = ("it closed at the last refresh: nothing to fix" if exc is not None
                   else "no such exception in the local snapshot")
            return Plan(req, placeholder, operator, [Check("exception", False, f"{req.exception_id}: {why}")],
                        [], _key(placeholder, req), {}, {})
        checks: list[Check] = [Check("exception", True, f"{exc.id} is open")]
        kinds = RULE_ACTIONS.get(exc.rule, ())
        if req.kind not in kinds:
            checks.append(Check("action", False, f"{req.kind.value} is not a fix for {exc.rule} "
                                                 f"(allowed: {', '.join(k.value for k in kinds) or 'none'})"))
            return Plan(req, exc, operator, checks, [], _key(exc, req), {}, {})
        checks.append(self._role_check(exc, operator))
        b = _PlanBuilder(self, req, exc)
        try:
            b.build()
        except _Refuse as refusal:
            b.checks.append(Check(refusal.name, False, refusal.detail))
        checks.extend(b.checks)
        systems = _step_systems(b.steps)
        for system in systems:
            conn = self.engine.connectors.get(system)
            if conn is None:
                checks.append(Check("reachable", False, f"no {system.value} connection is configured"))
            elif self._breaker_open(system):
                checks.append(Check("reachable", True, f"{system.value} is unreachable (circuit open): the action "
                                                       "will be queued and replayed automatically when it returns"))
            else:
                checks.append(Check("reachable", True, f"{system.value} connection ready"))
        calls = [PlannedCall(c.system, c.method, c.path, redact_body(c.body), c.description) for c in b.calls]
        return Plan(req, exc, operator, checks, calls, _key(exc, req), b.before, b.expected_after,
                    steps=b.steps, target_system=systems[0] if systems else None, notes=b.notes)

    def _breaker_open(self, system: System) -> bool:
        conn = self.engine.connectors.get(system)
        if conn is None:
            return False
        br = conn.client.breaker
        return br.state is BreakerState.OPEN and br.clock() - br.opened_at < br.cooldown

    # -- execution ----------------------------------------------------------------------
    async def execute(self, plan: Plan) -> ActionResult:
        """Refuse a failed plan (audited); else write-ahead, run, verify, audit the outcome."""
        if not plan.ok or plan.operator != self.operator or self.operator.role is Role.AUDITOR:
            why = plan.explanation
            if plan.ok and plan.operator != self.operator:
                why = "the operator changed since the preview: preview the action again"
            elif plan.ok:
                why = self._role_check(plan.exception).detail
            return await self._refuse(plan, why)
        key = plan.idempotency_key
        running = self._inflight.get(key)
        if running is not None:  # a double click: the same action, already under way here
            return await asyncio.shield(running)
        fut: asyncio.Future[ActionResult] = asyncio.get_running_loop().create_future()
        self._inflight[key] = fut
        try:
            result = await self._execute(plan)
        except BaseException as exc:
            fut.set_exception(exc)
            fut.exception()  # mark retrieved
            raise
        finally:
            self._inflight.pop(key, None)
        fut.set_result(result)
        return result

    async def _refuse(self, plan: Plan, why: str) -> ActionResult:
        from uuid import uuid4

        action_id = str(uuid4())
        exc = plan.exception
        await self.committer.append(AuditEntry(
            operator=self.operator.name, role=self.operator.role.value, action_id=action_id,
            action_kind=plan.request.kind.value, phase="outcome", outcome=ActionStatus.REFUSED.value,
            exception_id=exc.id, customer_id=exc.customer_id,
            target_system=plan.target_system.value if plan.target_system else None,
            request={"calls": [_call_dict(c) for c in plan.calls], "idempotency_key": plan.idempotency_key,
                     "checks": [[c.name, c.ok, c.detail] for c in plan.checks]},
            before=plan.before, error=why, reason=plan.request.reason or None, at=self.clock()))
        return ActionResult(action_id, plan.request.kind, exc.id, ActionStatus.REFUSED, f"refused: {why}")

    async def _execute(self, plan: Plan) -> ActionResult:
        from uuid import uuid4

        key = plan.idempotency_key
        existing = await asyncio.to_thread(self._row_by_key, key)
        queue = any(self._breaker_open(s) for s in plan.systems)
        status = ActionStatus.QUEUED if queue else ActionStatus.EXECUTING
        if existing is not None:
            st = ActionStatus(existing.status)
            if st is ActionStatus.SUCCEEDED:
                stored = _result_from_row(existing)
                stored.message = f"already done (action {existing.action_id}): {stored.message}"
                return stored
            if st in PENDING_STATUSES:
                return ActionResult(existing.action_id, plan.request.kind, plan.exception.id, st,
                                    f"already {st.value} (action {existing.action_id}); it will complete or "
                                    "replay by itself")
            work = _work_from_row(existing)
            work.operator, work.role = self.operator.name, self.operator.role.value
            work.reason = plan.request.reason or work.reason
            work.attempts = existing.attempts
            try:
                await self._claim(work, {st}, status, f"re-run of a {st.value} action")
            except ActionConflict:
                fresh = await asyncio.to_thread(self._row_by_key, key)
                assert fresh is not None
                return _result_from_row(fresh)
        else:
            exc = plan.exception
            work = _Work(str(uuid4()), key, plan.request.kind, exc.id, exc.rule, exc.customer_id, plan.steps,
                         [_call_dict(c) for c in plan.calls], plan.before, self.operator.name,
                         self.operator.role.value, plan.request.reason, verify=not plan.steps or
                         plan.steps[0]["op"] != "local.flag")
            payload = _payload(work, plan)
            now = _iso(self.clock())
            row = {"action_id": work.action_id, "idempotency_key": key, "kind": work.kind.value,
                   "status": status.value, "operator": work.operator, "role": work.role,
                   "exception_id": work.exception_id, "customer_id": work.customer_id,
                   "target_system": work.target, "payload": payload, "reason": work.reason or None,
                   "attempts": 0 if queue else 1, "last_error": None, "result": None,
                   "created_at": now, "updated_at": now}
            work.attempts = 0 if queue else 1

            def insert_row(conn: Connection) -> None:
                conn.execute(insert(OUTBOX).values(**row))

            from sqlalchemy.exc import IntegrityError

            try:
                await self.committer.append(self._entry(work, "intent", "queued" if queue else "pending",
                                                        after=plan.expected_after), insert_row)
            except IntegrityError:  # another process wrote the same action first
                fresh = await asyncio.to_thread(self._row_by_key, key)
                if fresh is None:
                    raise
                return _result_from_row(fresh)
        if queue:
            systems = ", ".join(s.value for s in plan.systems if self._breaker_open(s))
            return ActionResult(work.action_id, work.kind, work.exception_id, ActionStatus.QUEUED,
                                f"queued: {systems} unreachable; replays automatically when it returns")
        return await self._run_claimed(work)

    def _entry(self, work: _Work, phase: str, outcome: str, *, after: dict[str, Any] | None = None,
               error: str | None = None) -> AuditEntry:
        request: dict[str, Any] = {"calls": work.calls, "idempotency_key": work.key, "attempt": work.attempts}
        if work.replay_by:
            request["replayed_by"] = work.replay_by
        return AuditEntry(
            operator=work.operator, role=work.role, action_id=work.action_id, action_kind=work.kind.value,
            phase=phase, outcome=outcome, exception_id=work.exception_id, customer_id=work.customer_id,
            target_system=work.target, request=request, before=work.before, after=after or {}, error=error,
            reason=work.reason or None, at=self.clock())

    async def _claim(self, work: _Work, from_statuses: set[ActionStatus], to: ActionStatus, note: str) -> None:
        """Move a row to ``to`` (attempt +1 when executing) with an intent entry, in one transaction."""
        now = _iso(self.clock())
        bump = 1 if to is ActionStatus.EXECUTING else 0
        work.attempts += bump

        def claim(conn: Connection) -> None:
            done = conn.execute(update(OUTBOX).where(
                OUTBOX.c.action_id == work.action_id, OUTBOX.c.status.in_([s.value for s in from_statuses]))
                .values(status=to.value, attempts=OUTBOX.c.attempts + bump, updated_at=now,
                        operator=work.operator, role=work.role))
            if done.rowcount != 1:
                raise ActionConflict(f"action {work.action_id} is no longer {'/'.join(from_statuses)}")

        entry = self._entry(work, "intent", "pending" if to is ActionStatus.EXECUTING else "queued")
        entry.request["note"] = note
        await self.committer.append(entry, claim)

    async def _run_claimed(self, work: _Work) -> ActionResult:
        """Run a row already claimed as EXECUTING: steps, verify, outcome."""
        self._running.add(work.action_id)
        try:
            return await asyncio.shield(self._run_and_finish(work))
        finally:
            self._running.discard(work.action_id)

    async def _run_and_finish(self, work: _Work) -> ActionResult:
        try:
            after = await self._perform_with_retries(work)
        except _Requeue as rq:
            return await self._finish(work, ActionStatus.QUEUED, rq.message, after={}, error=rq.message)
        except RemoteWarning as w:
            msg = (f"the ERP asks for a confirmation: {w.message}. Nothing was posted; re-run with "
                   f"acknowledge_warning={w.warning_name!r} to confirm")
            return await self._finish(work, ActionStatus.FAILED, msg, after={"warning": w.warning_name}, error=msg)
        except ConnectorError as err:
            return await self._finish(work, ActionStatus.FAILED, f"failed: {err}", after={}, error=str(err))
        except Exception as err:  # a bug must not leave the row executing without an outcome
            log.exception("action %s failed unexpectedly", work.action_id)
            msg = f"failed: {type(err).__name__}: {err}"
            return await self._finish(work, ActionStatus.FAILED, msg, after={}, error=msg)
        if work.steps and work.steps[0]["op"] == "local.flag":
            return await self._finish(work, ActionStatus.SUCCEEDED, "flagged for review (no remote write)",
                                      after=after)
        if work.steps and work.steps[0]["op"] == "local.accept":
            return await self._finish(work, ActionStatus.SUCCEEDED, "difference accepted until "
                                      f"{work.steps[0]['expires_at']}", after=after, verified=True,
                                      accept=work.steps[0])
        try:
            remaining = await self._verify(work, after)
        except ConnectorError as err:
            msg = f"written, but the re-read failed: {err}; it will be checked at the next refresh"
            return await self._finish(work, ActionStatus.FAILED, msg, after=after, error=msg)
        if remaining is not None:
            msg = f"written but the difference remains: {remaining}"
            return await self._finish(work, ActionStatus.FAILED, msg, after=after, error=msg)
        return await self._finish(work, ActionStatus.SUCCEEDED, "done and verified: the disagreement is gone",
                                  after=after, verified=True)

    async def _finish(self, work: _Work, status: ActionStatus, message: str, *, after: dict[str, Any],
                      error: str | None = None, verified: bool = False,
                      accept: dict[str, Any] | None = None) -> ActionResult:
        result = ActionResult(work.action_id, work.kind, work.exception_id, status, message, verified, after)
        now = _iso(self.clock())
        stored = redact(_canonical({"status": status.value, "message": message, "verified": verified,
                                    "after": after}))

        def write(conn: Connection) -> None:
            conn.execute(update(OUTBOX).where(OUTBOX.c.action_id == work.action_id).values(
                status=status.value, last_error=redact(error) if error else None, result=stored, updated_at=now))
            if accept is not None:
                conn.execute(delete(ACCEPTED).where(ACCEPTED.c.exception_id == work.exception_id))
                conn.execute(insert(ACCEPTED).values(
                    exception_id=work.exception_id, fingerprint=accept["fingerprint"],
                    reason=redact(work.reason), operator=work.operator, accepted_at=now,
                    expires_at=accept["expires_at"]))

        phase, outcome = ("intent", "queued") if status is ActionStatus.QUEUED else ("outcome", status.value)
        await self.committer.append(self._entry(work, phase, outcome, after={**after, "verified": verified}
                                                if phase == "outcome" else after, error=error), write)
        if accept is not None:
            self._accepted[work.exception_id] = _Accepted(accept["fingerprint"], _parse_dt(accept["expires_at"]),
                                                          work.reason, work.operator)
        return result

    async def _perform_with_retries(self, work: _Work) -> dict[str, Any]:
        delays = list(self.retry_delays)
        while True:
            try:
                return await self._perform(work)
            except (UnavailableError, RateLimitedError) as err:
                if any(self._breaker_open(s) for s in _step_systems(work.steps)):
                    raise _Requeue(f"queued: {err.system.value} unreachable ({err}); replays automatically "
                                   "when it returns") from None
                if not delays:
                    raise
                log.info("action %s: %s; trying again", work.action_id, err)
                await asyncio.sleep(delays.pop(0))

    # -- the steps ----------------------------------------------------------------------
    def _conn(self, system: System) -> Any:
        conn = self.engine.connectors.get(system)
        if conn is None:
            raise SyncDeskError(f"no {system.value} connection is configured")
        return conn

    async def _perform(self, work: _Work) -> dict[str, Any]:
        after: dict[str, Any] = {"targets": []}
        for n, step in enumerate(work.steps):
            op = step["op"]
            if op in LOCAL_OPS:
                continue
            target = await self._step(step, f"{work.key}-{n}")
            # one written object, or several (a credit + repost writes three invoices)
            after["targets"].extend(target if target and isinstance(target[0], list) else [target])
        return after

    async def _step(self, step: dict[str, Any], idem: str) -> list[Any]:
        op = step["op"]
        if op == "erp.post_invoice":
            erp: TrytonConnector = self._conn(System.ERP)
            if step.get("acknowledge"):
                await erp.acknowledge_warning(step["acknowledge"])
            inv_id = await erp.ensure_invoice_posted(
                step["billing_invoice_id"], int(step["party_id"]), step["currency"],
                date.fromisoformat(step["invoice_date"]) if step.get("invoice_date") else None,
                _lines(step["lines"]))
            return ["erp", "invoice", inv_id]
        if op == "erp.ensure_party":
            erp = self._conn(System.ERP)
            party_id = await erp.ensure_party(step["customer_id"], step["name"], step.get("tax_id"),
                                              step.get("country"), step.get("email"))
            return ["erp", "party", party_id]
        if op == "erp.link_party":
            erp = self._conn(System.ERP)
            party = await erp.get_party(int(step["party_id"]))
            if party.customer_id not in (None, step["customer_id"]):
                raise RemoteValidationError(System.ERP, "link party", f"party {step['party_id']} now carries "
                                            f"{party.customer_id}: not linked")
            if party.customer_id is None:
                await erp.write_party(int(step["party_id"]), {"code": step["customer_id"]})
            return ["erp", "party", int(step["party_id"])]
        if op == "erp.replace_lines":
            erp = self._conn(System.ERP)
            await erp.replace_draft_invoice_lines(int(step["invoice_id"]), step["currency"], _lines(step["lines"]))
            return ["erp", "invoice", int(step["invoice_id"])]
        if op == "erp.credit_repost":
            erp = self._conn(System.ERP)
            if step.get("acknowledge"):
                await erp.acknowledge_warning(step["acknowledge"])
            invoice_id = int(step["invoice_id"])
            credit_note, corrected = await erp.credit_and_repost(
                invoice_id, step["billing_invoice_id"], int(step["party_id"]), step["currency"],
                date.fromisoformat(step["invoice_date"]), _lines(step["lines"]))
            written = [invoice_id, *([credit_note] if credit_note is not None else []), corrected]
            return [["erp", "invoice", i] for i in written]
        if op == "erp.cancel_invoice":
            erp = self._conn(System.ERP)
            await erp.cancel_invoice(int(step["invoice_id"]))
            return ["erp", "invoice", int(step["invoice_id"])]
        if op == "erp.write_subscription":
            erp = self._conn(System.ERP)
            nid = step.get("next_invoice_date")
            await erp.write_subscription_terms(int(step["subscription_id"]), plan_key=step.get("plan_key"),
                                               quantity=step.get("quantity"),
                                               next_invoice_date=date.fromisoformat(nid) if nid else None)
            return ["erp", "subscription", int(step["subscription_id"])]
        if op == "billing.update_customer":
            billing: StripeConnector = self._conn(System.BILLING)
            await billing.update_customer(step["customer_id"], step["fields"], idempotency_key=idem)
            return ["billing", "customer", step["customer_id"]]
        if op == "support.create_org":
            support: ZendeskConnector = self._conn(System.SUPPORT)
            org = await support.create_organization(step["name"], step["external_id"], step.get("fields") or None)
            return ["support", "org", org.id]
        if op == "support.link_org":
            support = self._conn(System.SUPPORT)
            current = await support.get_organization(step["org_id"])
            if current.customer.customer_id not in (None, step["external_id"]):
                raise RemoteValidationError(System.SUPPORT, "link organization",
                                            f"organization {step['org_id']} now carries "
                                            f"{current.customer.customer_id}: not linked")
            await support.update_organization(step["org_id"], {"external_id": step["external_id"]})
            return ["support", "org", int(step["org_id"])]
        if op == "support.update_org":
            support = self._conn(System.SUPPORT)
            await support.update_organization(step["org_id"], step["values"])
            return ["support", "org", int(step["org_id"])]
        if op == "support.set_fields":
            support = self._conn(System.SUPPORT)
            await support.update_organization_fields(step["org_id"], step["fields"])
            return ["support", "org", int(step["org_id"])]
        raise SyncDeskError(f"unknown action step {op!r}")

    # -- verification -------------------------------------------------------------------
    async def _reread(self, targets: list[list[Any]]) -> dict[System, SystemData]:
        out: dict[System, SystemData] = {}
        for system_name, kind, ident in targets:
            system = System(system_name)
            data = out.setdefault(system, SystemData(system))
            conn = self._conn(system)
            if kind == "invoice":
                data.invoices[str(ident)] = await conn.get_invoice(int(ident))
            elif kind == "party":
                data.customers[str(ident)] = await conn.get_party(int(ident))
            elif kind == "subscription":
                data.subscriptions[str(ident)] = await conn.get_subscription(int(ident))
            elif kind == "org":
                org = await conn.get_organization(ident)
                data.customers[str(org.id)] = org.customer
                data.entitlements[str(org.id)] = org.entitlement
            elif kind == "customer":
                customer: Customer | None = await conn.get_customer(str(ident))
                if customer is not None:
                    data.customers[str(ident)] = customer
        return out

    async def _verify(self, work: _Work, after: dict[str, Any]) -> str | None:
        """Re-read every written object, fold it in, reconcile; ``None`` when the exception is
        gone, else what remains."""
        delays = list(self.retry_delays)
        while True:
            try:
                reread = await self._reread(after.get("targets", []))
                break
            except (UnavailableError, RateLimitedError):
                if not delays:
                    raise
                await asyncio.sleep(delays.pop(0))
        for system, data in reread.items():
            await self.engine.apply_records(system, data)
        after["read_back"] = {s.value: _summary(d) for s, d in reread.items()}
        result = await self._coalescer.fresh()
        if work.rule not in result.evaluated_rules:
            return f"the rule {work.rule} could not be evaluated ({result.skipped_rules.get(work.rule, '?')})"
        still = next((e for e in result.exceptions if e.id == work.exception_id), None)
        if still is None:
            await self.engine.close_exceptions([work.exception_id])
            return None
        return still.summary

    # -- bulk -----------------------------------------------------------------------------
    async def bulk(self, reqs: list[ActionRequest],
                   progress: Callable[[BulkProgress], None] = _no_progress) -> BulkResult:
        """Plan and execute ``reqs``, paced per target system. Cancelling the task stops
        starting new actions; started ones finish (or stay visibly pending in the outbox);
        the result then has ``cancelled=True`` and the unstarted ones as ``cancelled``."""
        self._require_actor()
        opened = {e.id: e for e in await self.engine.open_exceptions(include_hidden=True)}
        missing = [r.exception_id for r in reqs if r.exception_id not in opened]
        for exc_id in missing:
            found = await self.engine.exception(exc_id)
            if found is not None:
                opened[exc_id] = found
        plans = [self._plan(r, opened.get(r.exception_id)) for r in reqs]
        total = len(plans)
        results: list[ActionResult | None] = [None] * total
        counts = {"done": 0}
        sems: dict[System | None, asyncio.Semaphore] = {}
        inner: dict[int, asyncio.Future[ActionResult]] = {}

        def sem_for(plan: Plan) -> asyncio.Semaphore:
            target = plan.target_system
            if target not in sems:
                sems[target] = asyncio.Semaphore(self.bulk_concurrency.get(target, 8) if target else 16)
            return sems[target]

        def report(current: str) -> None:
            done = [r for r in results if r is not None]
            progress(BulkProgress(counts["done"], total,
                                  sum(1 for r in done if r.status is ActionStatus.SUCCEEDED),
                                  sum(1 for r in done if r.status in (ActionStatus.FAILED, ActionStatus.REFUSED)),
                                  sum(1 for r in done if r.status in PENDING_STATUSES), current))

        async def one(i: int, plan: Plan) -> None:
            async with sem_for(plan):
                fut = asyncio.ensure_future(self.execute(plan))
                inner[i] = fut
                results[i] = await asyncio.shield(fut)
            counts["done"] += 1
            report(plan.exception.id)

        tasks = [asyncio.ensure_future(one(i, p)) for i, p in enumerate(plans)]
        cancelled = False
        try:
            await asyncio.gather(*tasks)
        except asyncio.CancelledError:
            cancelled = True
            for t in tasks:
                t.cancel()
            started = list(inner.items())
            outcomes = await asyncio.gather(*(f for _, f in started), return_exceptions=True)
            for (i, _), outcome in zip(started, outcomes, strict=True):
                if isinstance(outcome, ActionResult):
                    results[i] = outcome
        final: list[ActionResult] = []
        for i, plan in enumerate(plans):
            res = results[i]
            if res is None:
                res = ActionResult("", plan.request.kind, plan.exception.id, ActionStatus.CANCELLED,
                                   "not started: the bulk action was cancelled")
            final.append(res)
        if cancelled:
            # the actions under way at the cancel finished too: the last report counts them
            counts["done"] = sum(1 for r in results if r is not None)
            report("cancelled")
        return BulkResult(final, cancelled)

    # -- the outbox -----------------------------------------------------------------------
    def _row_by_key(self, key: str) -> Any:
        with self.audit.storage.engine.connect() as conn:
            return conn.execute(select(OUTBOX).where(OUTBOX.c.idempotency_key == key)).first()

    def _row(self, action_id: str) -> Any:
        with self.audit.storage.engine.connect() as conn:
            return conn.execute(select(OUTBOX).where(OUTBOX.c.action_id == action_id)).first()

    def _rows(self, statuses: Iterable[ActionStatus]) -> list[Any]:
        with self.audit.storage.engine.connect() as conn:
            return list(conn.execute(select(OUTBOX).where(OUTBOX.c.status.in_([s.value for s in statuses]))
                                     .order_by(OUTBOX.c.created_at.desc(), OUTBOX.c.action_id)))

    def pending(self) -> list[OutboxItem]:
        """Queued, executing and failed actions, newest first."""
        rows = self._rows((ActionStatus.QUEUED, ActionStatus.EXECUTING, ActionStatus.FAILED))
        return [_item(r) for r in rows]

    def outbox(self, statuses: Iterable[ActionStatus] | None = None) -> list[OutboxItem]:
        """Every outbox row (added), newest first; optionally only some statuses."""
        return [_item(r) for r in self._rows(statuses or list(ActionStatus))]

    async def cancel_pending(self, action_id: str) -> None:
        """Cancel a queued (or failed) action; audited. An executing one cannot be cancelled."""
        self._require_actor()
        row = await asyncio.to_thread(self._row, action_id)
        if row is None:
            raise ActionConflict(f"no action {action_id}")
        status = ActionStatus(row.status)
        if status not in (ActionStatus.QUEUED, ActionStatus.FAILED) or action_id in self._running:
            raise ActionConflict(f"action {action_id} is {status.value}: only a queued or failed action can be "
                                 "cancelled")
        await self._require_owning_team(row)
        work = _work_from_row(row)
        work.operator, work.role = self.operator.name, self.operator.role.value
        now = _iso(self.clock())

        def write(conn: Connection) -> None:
            done = conn.execute(update(OUTBOX).where(OUTBOX.c.action_id == action_id,
                                                     OUTBOX.c.status == status.value)
                                .values(status=ActionStatus.CANCELLED.value, updated_at=now,
                                        result=_canonical({"status": "cancelled", "message": "cancelled",
                                                           "verified": False, "after": {}})))
            if done.rowcount != 1:
                raise ActionConflict(f"action {action_id} changed meanwhile")

        entry = self._entry(work, "outcome", ActionStatus.CANCELLED.value,
                            error=f"cancelled by {self.operator.name} while {status.value}")
        await self.committer.append(entry, write)

    async def _require_owning_team(self, row: Any) -> None:
        """Raise :class:`PermissionDenied` unless the operator's team owns the outbox row's
        exception. The owner is the exception's when the local snapshot knows it, else the
        rule's in the catalogue (:data:`services.core.domain.RULES`), else the team of the role that
        wrote the row: a console whose snapshot never saw the exception (a fresh snapshot;
        in team mode another machine on the shared database) refuses another team all the same."""
        work = _work_from_row(row)
        exc = await self.engine.exception(work.exception_id)
        if exc is None:
            owner = RULES[work.rule][0] if work.rule in RULES else _role_team(row.role)
            if owner is None:
                raise PermissionDenied(f"action {work.action_id}: its owning team is unknown "
                                       f"({work.rule or 'no rule'}, written by the {row.role} role); it cannot be "
                                       "run or cancelled here")
            now = self.clock()
            exc = SyncException(id=work.exception_id, rule=work.rule, severity=Severity.MEDIUM, owner=owner,
                                customer_id=work.customer_id, object_id=work.exception_id.split(":", 1)[-1],
                                summary="(not in the local snapshot)", sides=[], first_seen=now, last_seen=now)
        check = self._role_check(exc)
        if not check.ok:
            raise PermissionDenied(check.detail)

    async def retry_failed(self, action_id: str) -> ActionResult:
        """Run a failed (or cancelled) action again: same row, same idempotency key."""
        self._require_actor()
        row = await asyncio.to_thread(self._row, action_id)
        if row is None:
            raise ActionConflict(f"no action {action_id}")
        status = ActionStatus(row.status)
        if status not in (ActionStatus.FAILED, ActionStatus.CANCELLED):
            raise ActionConflict(f"action {action_id} is {status.value}: only a failed or cancelled action can be "
                                 "retried")
        await self._require_owning_team(row)
        work = _work_from_row(row)
        work.operator, work.role = self.operator.name, self.operator.role.value
        work.attempts = row.attempts
        queue = any(self._breaker_open(s) for s in _step_systems(work.steps))
        to = ActionStatus.QUEUED if queue else ActionStatus.EXECUTING
        await self._claim(work, {status}, to, f"retry of a {status.value} action")
        if queue:
            return ActionResult(work.action_id, work.kind, work.exception_id, ActionStatus.QUEUED,
                                "queued: the target is unreachable; replays automatically when it returns")
        return await self._run_claimed(work)

    async def replay_pending(self) -> list[ActionResult]:
        """Resume queued and executing outbox rows (after a restart, or when a system came
        back); idempotent. Rows whose target is still unreachable stay queued."""
        self._require_actor()
        async with self._replay_lock:
            rows = await asyncio.to_thread(self._rows, PENDING_STATUSES)
            rows = [r for r in reversed(rows) if r.action_id not in self._running]  # oldest first
            sems: dict[str | None, asyncio.Semaphore] = {}

            async def one(row: Any) -> ActionResult | None:
                work = _work_from_row(row)
                work.attempts = row.attempts
                work.replay_by = f"{self.operator.name} ({self.operator.role.value})"
                systems = _step_systems(work.steps)
                if any(self._breaker_open(s) for s in systems):
                    return None
                target = work.target
                sem = sems.setdefault(target, asyncio.Semaphore(
                    self.bulk_concurrency.get(System(target), 8) if target else 8))
                async with sem:
                    if work.action_id in self._running:
                        return None
                    try:
                        await self._claim(work, {ActionStatus(row.status)}, ActionStatus.EXECUTING,
                                          f"replay of a {row.status} action")
                    except ActionConflict:
                        return None
                    return await self._run_claimed(work)

            done = await asyncio.gather(*(one(r) for r in rows))
            results = [r for r in done if r is not None]
        if results:
            for listener in list(self.replay_listeners):
                try:
                    listener(results)
                except Exception:
                    log.exception("a replay listener failed")
        return results

    # -- automatic replay ---------------------------------------------------------------------
    def start_auto_replay(self) -> None:
        """Listen to every system's circuit breaker: probe it while open, replay the queued
        actions when it closes (also replays what is pending right now)."""
        loop = asyncio.get_running_loop()
        for system, conn in self.engine.connectors.items():
            def listener(state: BreakerState, system: System = system) -> None:
                if self._closed:
                    return
                if state is BreakerState.OPEN:
                    loop.call_soon(self._spawn, self._probe(system), f"probe-{system.value}")
                elif state is BreakerState.CLOSED:
                    loop.call_soon(self._spawn, self._auto_replay(), "auto-replay")

            conn.client.breaker.listeners.append(listener)
            self._listeners.append((conn, listener))
            if conn.client.breaker.state is BreakerState.OPEN:
                self._spawn(self._probe(system), f"probe-{system.value}")
        self._spawn(self._auto_replay(), "auto-replay")

    def _spawn(self, coro: Any, name: str) -> None:
        if self._closed:
            coro.close()
            return
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _auto_replay(self) -> None:
        if self.operator.role is Role.AUDITOR:
            return
        try:
            results = await self.replay_pending()
        except Exception:
            log.exception("automatic replay failed")
            return
        if results:
            log.info("replayed %d queued actions: %s", len(results),
                     ", ".join(f"{r.action_id} {r.status.value}" for r in results))

    async def _probe(self, system: System) -> None:
        """While ``system``'s breaker is open: after the cool-down, one cheap read (the
        half-open trial); a success closes the breaker, whose listener replays."""
        if system in self._probing:
            return
        self._probing.add(system)
        try:
            conn = self.engine.connectors[system]
            breaker = conn.client.breaker
            while not self._closed and breaker.state is not BreakerState.CLOSED:
                wait = breaker.cooldown - (breaker.clock() - breaker.opened_at)
                await asyncio.sleep(max(0.05, wait + 0.01))
                if breaker.state is BreakerState.CLOSED:
                    break
                try:
                    await _probe_call(conn)
                except NotFoundError:
                    pass
                except ConnectorError as exc:
                    log.info("%s still unreachable: %s", system.value, exc)
        finally:
            self._probing.discard(system)

    async def aclose(self) -> None:
        self._closed = True
        for conn, listener in self._listeners:
            if listener in conn.client.breaker.listeners:
                conn.client.breaker.listeners.remove(listener)
        self._listeners.clear()
        if self.accepted in self.engine.hide_hooks:
            self.engine.hide_hooks.remove(self.accepted)
        tasks = list(self._tasks)
        for t in tasks:
            if t.get_name().startswith("probe-"):
                t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _probe_call(conn: Connector) -> None:
    if isinstance(conn, TrytonConnector):
        await conn.find_party("__syncdesk_probe__")
    elif isinstance(conn, ZendeskConnector):
        await conn.find_organization_by_external_id("__syncdesk_probe__")
    elif isinstance(conn, StripeConnector):
        await conn.client.request("GET", "/v1/customers", operation="probe", params={"limit": 1})
    else:  # pragma: no cover - every connector kind is listed above
        await conn.list_ids()


# --------------------------------------------------------------------------------------
# Planning per rule
# --------------------------------------------------------------------------------------


class _Refuse(Exception):
    def __init__(self, name: str, detail: str) -> None:
        super().__init__(detail)
        self.name = name
        self.detail = detail


def _posted_explanation(number: Any, state: str) -> str:
    if state == "paid":
        return (f"ERP invoice {number} is paid: a posted invoice is never edited in place, and the ERP credits with "
                "refund only an unpaid one — flag it for review")
    return (f"ERP invoice {number} is {state}: a posted invoice is never edited in place; credit + repost it "
            "instead (a credit note cancels it and a corrected copy is posted; finance)")


def _credit_refusal(number: Any, state: str) -> str | None:
    """Why a credit + repost of an ERP invoice in ``state`` is refused (``None``: posted, allowed)."""
    if state == "posted":
        return None
    if state in ("draft", "validated"):
        return (f"ERP invoice {number} is {state}: it is not posted, so it is corrected in place (correct), not "
                "credited")
    if state == "paid":
        return (f"ERP invoice {number} is paid: the ERP credits with refund only a posted invoice whose payment is "
                "not reconciled — undo the payment's reconciliation in the ERP first, or flag it for review")
    return f"ERP invoice {number} is {state}: there is nothing to credit"


class _PlanBuilder:
    """Builds one plan's checks, steps, calls and before/after values from the snapshot."""

    def __init__(self, service: ActionService, req: ActionRequest, exc: SyncException) -> None:
        self.svc = service
        self.req = req
        self.exc = exc
        self.value = dict(req.value or {})
        self.idx = service._idx()
        eng = service.engine
        self.b = eng.data.get(System.BILLING) or SystemData(System.BILLING)
        self.e = eng.data.get(System.ERP) or SystemData(System.ERP)
        self.s = eng.data.get(System.SUPPORT) or SystemData(System.SUPPORT)
        self.checks: list[Check] = []
        self.steps: list[dict[str, Any]] = []
        self.calls: list[PlannedCall] = []
        self.before: dict[str, Any] = {}
        self.expected_after: dict[str, Any] = {}
        self.notes: list[str] = []
        erp = eng.connectors.get(System.ERP)
        database = erp.database if isinstance(erp, TrytonConnector) else "db"
        self.rpc = f"/{database}/rpc/"

    def ok(self, name: str, detail: str) -> None:
        self.checks.append(Check(name, True, detail))

    def rpc_call(self, method: str, params: list[Any], description: str) -> None:
        self.calls.append(PlannedCall(System.ERP, "POST", self.rpc, {"method": method, "params": params},
                                      description))

    def side(self, system: System) -> Any:
        return next((s for s in self.exc.sides if s.system is system), None)

    def build(self) -> None:
        kind = self.req.kind
        if kind is ActionKind.ACCEPT:
            return self.accept()
        if kind is ActionKind.FLAG:
            return self.flag()
        handler = {
            ("invoice.missing_in_erp", ActionKind.RETRY): self.retry_invoice,
            ("customer.unmapped_erp", ActionKind.CREATE): self.create_party,
            ("customer.unmapped_erp", ActionKind.LINK): self.link_party,
            ("customer.unmapped_support", ActionKind.CREATE): self.create_org,
            ("customer.unmapped_support", ActionKind.LINK): self.link_org,
            ("customer.master_drift", ActionKind.PUSH): self.push_master,
            ("customer.master_drift", ActionKind.CORRECT): self.correct_master,
            ("invoice.amount_mismatch", ActionKind.CORRECT): self.correct_invoice,
            ("invoice.amount_mismatch", ActionKind.CREDIT_REPOST): self.credit_repost,
            ("invoice.duplicate_in_erp", ActionKind.CANCEL): self.cancel_duplicate,
            ("subscription.terms_mismatch", ActionKind.PUSH): self.push_terms,
            ("entitlement.missing", ActionKind.PUSH): self.push_tier,
            ("entitlement.tier_mismatch", ActionKind.PUSH): self.push_tier,
            ("entitlement.orphan", ActionKind.REVOKE): self.revoke_tier,
        }.get((self.exc.rule, kind))
        if handler is None:
            raise _Refuse("action", f"{kind.value} is not implemented for {self.exc.rule}")
        handler()
        return None

    # -- local --------------------------------------------------------------------------
    def need_reason(self, what: str) -> None:
        if not self.req.reason.strip():
            raise _Refuse("reason", f"{what} needs a reason")
        self.ok("reason", "reason given")

    def accept(self) -> None:
        self.need_reason("accepting a difference")
        raw = self.value.get("expires_at")
        if not raw:
            raise _Refuse("expiry", "accepting a difference needs an expiry (expires_at)")
        try:
            expires = _parse_dt(str(raw))
        except ValueError:
            raise _Refuse("expiry", f"expires_at {raw!r} is not an ISO date/time") from None
        if expires <= self.svc.clock():
            raise _Refuse("expiry", f"expires_at {raw} is in the past")
        self.ok("expiry", f"accepted until {_iso(expires)}; reopens earlier if the data changes")
        fp = exception_fingerprint(self.exc)
        self.steps = [{"op": "local.accept", "system": None, "fingerprint": fp, "expires_at": _iso(expires)}]
        self.before = {"sides": {s.system.value: s.values for s in self.exc.sides}}
        self.expected_after = {"accepted_until": _iso(expires), "fingerprint": fp}
        self.notes.append("local record only: nothing is sent to any system")

    def flag(self) -> None:
        self.need_reason("flagging for review")
        self.steps = [{"op": "local.flag", "system": None}]
        self.before = {"sides": {s.system.value: s.values for s in self.exc.sides}}
        self.expected_after = {"flagged": True}
        self.notes.append("an audited record for review; nothing is sent to any system; the exception stays open")

    # -- invoices -----------------------------------------------------------------------
    def acknowledge_warning(self, step: dict[str, Any]) -> None:
        """``value={"acknowledge_warning": name}``: the step acknowledges that ERP warning once
        (audited, previewed as its own call)."""
        ack = self.value.get("acknowledge_warning")
        if not ack:
            return
        step["acknowledge"] = str(ack)
        self.notes.append(f"acknowledges the ERP warning {ack} once (audited)")
        self.rpc_call("model.res.user.warning.create", [[{"name": str(ack), "always": False}]],
                      "acknowledge the ERP's warning once")

    def latest_posted_date(self) -> date | None:
        """The newest invoice date among the ERP's posted or paid invoices: its strict invoice
        sequence refuses anything dated earlier."""
        return max((i.invoice_date for i in self.e.invoices.values()
                    if i.invoice_date and i.status in (InvoiceStatus.POSTED, InvoiceStatus.PAID)), default=None)

    def chosen_invoice_date(self) -> date | None:
        """The operator's ``value={"invoice_date": "YYYY-MM-DD"}``, if given."""
        if not self.value.get("invoice_date"):
            return None
        try:
            return date.fromisoformat(str(self.value["invoice_date"]))
        except ValueError:
            raise _Refuse("date", f"invoice_date {self.value['invoice_date']!r} is not a date") from None

    def billing_lines(self, inv: Any) -> list[list[str]]:
        exp = currency_exponent(inv.total.currency.lower())
        quantum = Decimal(1).scaleb(-exp)
        lines: list[list[str]] = []
        total = Decimal(0)
        erp_keys = {p.key for p in self.e.plans.values()}
        for line in inv.lines:
            if not line.plan_key:
                raise _Refuse("product", f"line {line.description!r} has no plan: it cannot map to an ERP product")
            if erp_keys and line.plan_key not in erp_keys:
                raise _Refuse("product", f"plan {line.plan_key!r} has no ERP product with that code")
            amount = line.amount.amount
            total += amount
            qty = line.quantity
            try:
                unit = (amount / qty).quantize(quantum) if qty else None
            except (InvalidOperation, ZeroDivisionError):
                unit = None
            if unit is not None and unit * qty == amount:
                lines.append([line.plan_key, str(qty), str(unit), line.description])
            else:
                lines.append([line.plan_key, "1", str(amount), line.description])
        if not erp_keys:
            self.notes.append("the ERP's products are not in the snapshot: plan keys are checked by the ERP")
        if total != inv.total.amount:
            raise _Refuse("lines", f"billing's lines add up to {total} but the invoice total is {inv.total.amount} "
                                   f"{inv.total.currency}: post it by hand")
        self.ok("product", f"{len(lines)} line(s); every plan maps to an ERP product")
        return lines

    def check_currency(self, currency: str) -> None:
        known = {i.total.currency for i in self.e.invoices.values()}
        if known and currency not in known:
            raise _Refuse("currency", f"the ERP holds no invoice in {currency}: the currency may not be set up")
        self.ok("currency", f"{currency} is known to the ERP")

    def party(self, cid: str | None) -> Customer:
        party = self.idx.parties_by_code.get(cid or "")
        if party is None:
            raise _Refuse("mapping", f"{cid} has no ERP party: create or link it first (customer.unmapped_erp)")
        self.ok("mapping", f"ERP party {party.ref.id} ({party.name}) carries {cid}")
        return party

    def retry_invoice(self) -> None:
        iid = self.exc.object_id
        inv = self.b.invoices.get(iid)
        if inv is None:
            raise _Refuse("source", f"billing invoice {iid} is not in the snapshot: refresh first")
        party = self.party(inv.customer_id)
        if self.idx.erp_invoices(iid):
            raise _Refuse("target", f"the ERP already holds an invoice for {iid}: refresh")
        currency = inv.total.currency
        self.check_currency(currency)
        lines = self.billing_lines(inv)
        finalized = (inv.finalized_at or inv.created)
        latest = self.latest_posted_date()
        chosen = self.chosen_invoice_date()
        if chosen is not None:
            inv_date = chosen
            self.notes.append(f"invoice date chosen by the operator: {inv_date}")
        else:
            inv_date = finalized.astimezone(UTC).date() if finalized else self.svc.clock().date()
            if latest is not None and inv_date < latest:
                today = self.svc.engine.clock().astimezone(UTC).date()
                self.notes.append(f"billing finalized it on {inv_date}, but the ERP's strict invoice sequence already "
                                  f"has a posted invoice dated {latest}: the late posting is dated {today}")
                inv_date = max(today, latest)
        self.ok("date", f"invoice date {inv_date}")
        step = {"op": "erp.post_invoice", "system": System.ERP.value, "billing_invoice_id": iid,
                "party_id": int(party.ref.id), "currency": currency, "invoice_date": inv_date.isoformat(),
                "lines": lines}
        self.acknowledge_warning(step)
        self.steps = [step]
        self.post_calls(iid, int(party.ref.id), currency, inv_date, lines)
        self.before = {"billing": {"invoice": iid, "number": inv.number, "total": str(inv.total.amount),
                                   "currency": currency, "status": inv.status.value}, "erp": None}
        self.expected_after = {"erp": {"reference": iid, "state": "posted", "total": str(inv.total.amount),
                                       "currency": currency, "invoice_date": inv_date.isoformat()}}

    def post_calls(self, iid: str, party_id: int, currency: str, inv_date: date, lines: list[list[str]]) -> None:
        """The calls of :meth:`TrytonConnector.ensure_invoice_posted`."""
        self.rpc_call("model.account.invoice.search_read", [[["reference", "=", iid], ["type", "=", "out"],
                                                             ["state", "!=", "cancelled"]]],
                      "look the invoice up by reference first (idempotency): an existing one is posted, not "
                      "created again")
        self.rpc_call("model.account.invoice.create", [[{
            "type": "out", "party": party_id, "reference": iid, "currency": currency,
            "invoice_date": inv_date.isoformat(),
            "lines": [["create", [{"product": code, "quantity": qty, "unit_price": unit, "description": desc}
                                  for code, qty, unit, desc in lines]]]}]],
            "create the draft (journal, receivable account, payment term, units and taxes as the ERP's "
            "on_change proposes them)")
        self.rpc_call("model.account.invoice.post", [["<new invoice id>"]], "post (numbers the invoice)")

    def erp_invoice_side(self) -> tuple[Any, Any]:
        side = next((s for s in self.exc.sides if s.system is System.ERP and s.ref is not None), None)
        if side is None or side.ref is None:
            raise _Refuse("target", "the exception names no ERP invoice")
        inv = self.e.invoices.get(side.ref.id)
        if inv is None:
            raise _Refuse("target", f"ERP invoice {side.ref.id} is not in the snapshot: refresh first")
        return side, inv

    def correct_invoice(self) -> None:
        self.need_reason("a correction")
        _, erp_inv = self.erp_invoice_side()
        if erp_inv.status not in (InvoiceStatus.DRAFT, InvoiceStatus.VALIDATED):
            raise _Refuse("posted", _posted_explanation(erp_inv.number or erp_inv.ref.id, erp_inv.status.value))
        self.ok("posted", f"ERP invoice {erp_inv.ref.id} is {erp_inv.status.value}: it may be corrected")
        binv = self.b.invoices.get(self.exc.object_id)
        if binv is None:
            raise _Refuse("source", f"billing invoice {self.exc.object_id} is not in the snapshot")
        currency = str(self.value.get("currency") or binv.total.currency).upper()
        self.check_currency(currency)
        if self.value.get("lines"):
            lines = [[str(ln["plan_key"]), str(ln["quantity"]), str(ln["unit_price"]),
                      str(ln.get("description") or ln["plan_key"])] for ln in self.value["lines"]]
            self.notes.append("lines chosen by the operator")
        else:
            lines = self.billing_lines(binv)
        self.steps = [{"op": "erp.replace_lines", "system": System.ERP.value, "invoice_id": int(erp_inv.ref.id),
                       "currency": currency, "lines": lines}]
        self.rpc_call("model.account.invoice.write", [[int(erp_inv.ref.id)], {
            "currency": currency, "lines": [["delete", ["<current lines>"]], ["create", [
                {"product": c, "quantity": q, "unit_price": u, "description": d} for c, q, u, d in lines]]]}],
            "replace the draft's lines with billing's (the owner of the invoice's content)")
        total = sum((Decimal(q) * Decimal(u) for _, q, u, _ in lines), Decimal(0))
        self.before = {"erp": {"invoice": erp_inv.ref.id, "state": erp_inv.status.value,
                               "total": str(erp_inv.total.amount), "currency": erp_inv.total.currency}}
        self.expected_after = {"erp": {"invoice": erp_inv.ref.id, "total": str(total), "currency": currency}}

    def credit_repost(self) -> None:
        """Credit a posted ERP invoice with refund and post a corrected copy (module docstring)."""
        self.need_reason("a credit + repost")
        if self.svc.operator.role is not Role.FINANCE:
            raise _Refuse("role", "a credit + repost of a posted invoice is for the finance role only")
        _, erp_inv = self.erp_invoice_side()
        number = erp_inv.number or erp_inv.ref.id
        refusal = _credit_refusal(number, erp_inv.status.value)
        if refusal is not None:
            raise _Refuse("posted", refusal)
        self.ok("posted", f"ERP invoice {number} is posted: it is credited with refund (a credit note cancels it), "
                          "then a corrected copy is posted")
        iid = self.exc.object_id
        live = [i.ref.id for i in self.idx.erp_invoices(iid)]
        if live != [erp_inv.ref.id]:
            raise _Refuse("target", f"{len(live)} live ERP invoices carry {iid}: refresh, or resolve the duplicate "
                                    "first")
        binv = self.b.invoices.get(iid)
        if binv is None:
            raise _Refuse("source", f"billing invoice {iid} is not in the snapshot: refresh first")
        if binv.status is InvoiceStatus.VOID:
            raise _Refuse("source", f"billing voided {iid}: there is nothing to repost — flag it for review")
        party = self.party(binv.customer_id)
        currency = binv.total.currency
        self.check_currency(currency)
        lines = self.billing_lines(binv)
        today = self.svc.engine.clock().astimezone(UTC).date()
        latest = self.latest_posted_date()
        chosen = self.chosen_invoice_date()
        if chosen is not None:
            inv_date = chosen
            if latest is not None and inv_date < latest:
                raise _Refuse("date", f"the ERP's strict invoice sequence already has a posted invoice dated {latest}: "
                                      f"the credit note and the copy cannot be dated {inv_date}")
            self.notes.append(f"date chosen by the operator: {inv_date}")
        else:
            inv_date = max(today, latest) if latest is not None else today
            if inv_date != today:
                self.notes.append(f"the ERP's strict invoice sequence already has a posted invoice dated {latest}: "
                                  f"dated {inv_date}, not today")
        self.ok("date", f"the credit note and the corrected copy are dated {inv_date}")
        invoice_id, party_id = int(erp_inv.ref.id), int(party.ref.id)
        step: dict[str, Any] = {"op": "erp.credit_repost", "system": System.ERP.value, "invoice_id": invoice_id,
                                "billing_invoice_id": iid, "party_id": party_id, "currency": currency,
                                "invoice_date": inv_date.isoformat(), "lines": lines}
        self.acknowledge_warning(step)
        self.steps = [step]
        active = {"active_model": "account.invoice", "active_id": invoice_id, "active_ids": [invoice_id]}
        self.rpc_call("model.account.invoice.search_read", [[["id", "=", invoice_id]], 0, None, [["id", "ASC"]],
                                                            ["state", "party", "type", "number", "reference"]],
                      f"read the invoice: still posted and carrying {iid} (a credited invoice is cancelled: it is "
                      "not credited again)")
        self.rpc_call("model.account.invoice.search", [[["reference", "=", iid], ["type", "=", "out"],
                                                        ["state", "!=", "cancelled"]]],
                      f"no other live invoice carries {iid} (a duplicate is refused)")
        lookup = [["origin_invoices", "=", invoice_id], ["type", "=", "out"], ["state", "!=", "cancelled"],
                  ["party", "=", "<its party>"]]
        self.rpc_call("model.account.invoice.search_read", [lookup, 0, None, [["id", "ASC"]], ["state"]],
                      "look for a credit note of it first (idempotency): its lines' origins are the invoice's lines")
        self.rpc_call("wizard.account.invoice.credit.create", [active], "open the ERP's Credit wizard on the invoice")
        self.rpc_call("wizard.account.invoice.credit.execute",
                      ["<wizard session>", {"start": {"with_refund": True, "invoice_date": inv_date.isoformat()}},
                       "credit", active],
                      "credit with refund: a credit note copying the invoice with negated lines is posted and "
                      "reconciled with it; the invoice ends cancelled (a lost answer: the invoice is read again)")
        self.rpc_call("wizard.account.invoice.credit.delete", ["<wizard session>", active], "close the wizard session")
        self.post_calls(iid, party_id, currency, inv_date, lines)
        self.notes.append("the corrected copy carries billing's lines and currency (billing owns the invoice's "
                          "content) and the billing invoice id as reference")
        self.before = {"billing": {"invoice": iid, "number": binv.number, "total": str(binv.total.amount),
                                   "currency": currency, "status": binv.status.value},
                       "erp": {"invoice": erp_inv.ref.id, "number": erp_inv.number, "state": erp_inv.status.value,
                               "total": str(erp_inv.total.amount), "currency": erp_inv.total.currency}}
        self.expected_after = {"erp": {
            "credited": {"invoice": erp_inv.ref.id, "state": "cancelled"},
            "credit_note": {"total": str(-erp_inv.total.amount), "currency": erp_inv.total.currency,
                            "invoice_date": inv_date.isoformat()},
            "corrected": {"reference": iid, "state": "posted", "total": str(binv.total.amount), "currency": currency,
                          "invoice_date": inv_date.isoformat()}}}

    def cancel_duplicate(self) -> None:
        copies: list[tuple[Any, Invoice]] = []
        for side in self.exc.sides:
            found = self.e.invoices.get(side.ref.id) if side.system is System.ERP and side.ref is not None else None
            if found is not None:
                copies.append((side, found))
        if len(copies) < 2:
            raise _Refuse("target", "fewer than two ERP copies in the snapshot: refresh first")
        if self.value.get("invoice"):
            wanted = _ref_id(self.value["invoice"])
            chosen = [i for _, i in copies if i.ref.id == wanted]
            if not chosen:
                raise _Refuse("target", f"ERP invoice {wanted} is not one of the copies")
        else:
            posted = [i for _, i in copies if i.status in (InvoiceStatus.POSTED, InvoiceStatus.PAID)]
            keep = posted[0] if posted else min((i for _, i in copies), key=lambda i: int(i.ref.id))
            chosen = [i for _, i in copies if i is not keep]
        posted_chosen = [i for i in chosen if i.status not in (InvoiceStatus.DRAFT, InvoiceStatus.VALIDATED)]
        if posted_chosen:
            raise _Refuse("posted", f"ERP invoice {posted_chosen[0].number or posted_chosen[0].ref.id} is "
                                    f"{posted_chosen[0].status.value}: a posted invoice is never cancelled in place; "
                                    "flag it for review")
        self.ok("posted", f"cancelling {len(chosen)} draft cop{'y' if len(chosen) == 1 else 'ies'}")
        for inv in chosen:
            self.steps.append({"op": "erp.cancel_invoice", "system": System.ERP.value, "invoice_id": int(inv.ref.id)})
            self.rpc_call("model.account.invoice.cancel", [[int(inv.ref.id)]], f"cancel draft copy {inv.ref.id}")
        self.before = {"erp": [{"invoice": i.ref.id, "state": i.status.value, "number": i.number}
                               for _, i in copies]}
        self.expected_after = {"erp": [{"invoice": i.ref.id, "state": "cancelled"} for i in chosen]}

    # -- customers ----------------------------------------------------------------------
    def billing_customer(self) -> Customer:
        cust = self.b.customers.get(self.exc.customer_id or self.exc.object_id)
        if cust is None:
            raise _Refuse("source", f"billing customer {self.exc.customer_id} is not in the snapshot")
        return cust

    def create_party(self) -> None:
        cust = self.billing_customer()
        if cust.ref.id in self.idx.parties_by_code:
            raise _Refuse("target", f"an ERP party already carries {cust.ref.id}: refresh")
        if not cust.name.strip():
            raise _Refuse("source", "billing has no name for this customer")
        self.ok("target", f"no ERP party carries {cust.ref.id}")
        note = ("the ERP owns the legal name, tax id and country, but no party exists yet: billing's copy is the "
                "only source — review them in the ERP after creation")
        self.notes.append(note)
        self.steps = [{"op": "erp.ensure_party", "system": System.ERP.value, "customer_id": cust.ref.id,
                       "name": cust.name, "tax_id": cust.tax_id, "country": cust.country, "email": cust.email}]
        self.rpc_call("model.party.party.search", [[["code", "=", cust.ref.id]]],
                      "look the party up by code first (idempotency)")
        values: dict[str, Any] = {"name": cust.name, "code": cust.ref.id}
        if cust.tax_id:
            values["identifiers"] = [["create", [{"code": cust.tax_id}]]]
        if cust.country:
            values["addresses"] = [["create", [{"country": cust.country}]]]
        if cust.email:
            values["contact_mechanisms"] = [["create", [{"type": "email", "value": cust.email}]]]
        self.rpc_call("model.party.party.create", [[values]], "create the party; " + note)
        self.before = {"erp": None, "billing": {"name": cust.name, "tax_id": cust.tax_id, "country": cust.country}}
        self.expected_after = {"erp": {"code": cust.ref.id, "name": cust.name}}

    def candidate(self, pool: dict[str, Customer], what: str) -> Customer:
        raw = self.value.get("candidate")
        if not raw:
            raise _Refuse("candidate", f"choose the {what} to link (value candidate)")
        cand = pool.get(_ref_id(raw))
        if cand is None:
            raise _Refuse("candidate", f"{what} {_ref_id(raw)} does not exist in the snapshot")
        if cand.customer_id:
            raise _Refuse("candidate", f"{what} {cand.ref.id} is already linked to {cand.customer_id}")
        self.ok("candidate", f"{what} {cand.ref.id} ({cand.name}) exists and is not linked")
        return cand

    def link_party(self) -> None:
        cust = self.billing_customer()
        if cust.ref.id in self.idx.parties_by_code:
            raise _Refuse("target", f"an ERP party already carries {cust.ref.id}: refresh")
        cand = self.candidate(self.e.customers, "ERP party")
        self.steps = [{"op": "erp.link_party", "system": System.ERP.value, "party_id": int(cand.ref.id),
                       "customer_id": cust.ref.id}]
        self.rpc_call("model.party.party.write", [[int(cand.ref.id)], {"code": cust.ref.id}],
                      f"link party {cand.ref.id} to {cust.ref.id} (its code becomes the customer id)")
        self.before = {"erp": {"party": cand.ref.id, "code": None, "name": cand.name}}
        self.expected_after = {"erp": {"party": cand.ref.id, "code": cust.ref.id}}

    def create_org(self) -> None:
        cust = self.billing_customer()
        if cust.ref.id in self.idx.orgs_by_ext:
            raise _Refuse("target", f"a support organization already carries {cust.ref.id}: refresh")
        party = self.idx.parties_by_code.get(cust.ref.id)
        name = party.name if party is not None else cust.name
        from services.core.reconcile import norm_name

        same = next((o for o in self.s.customers.values() if norm_name(o.name).casefold()
                     == norm_name(name).casefold()), None)
        if same is not None:
            raise _Refuse("target", f"support organization {same.ref.id} is already named {same.name!r} (the help "
                                    "desk's names are unique)" + (": link it instead" if not same.customer_id
                                                                  else f" and carries {same.customer_id}"))
        self.ok("target", f"no support organization carries {cust.ref.id}")
        self.notes.append("name from the ERP party (the owner)" if party is not None
                          else "no ERP party: the name comes from billing's copy")
        tier = self.idx.granted_tier(cust.ref.id)
        fields_: dict[str, Any] = {"support_tier": tier.value} if tier else {}
        if tier:
            self.notes.append(f"with the support tier billing's plan grants: {tier.value}")
        self.steps = [{"op": "support.create_org", "system": System.SUPPORT.value, "name": name,
                       "external_id": cust.ref.id, "fields": fields_}]
        self.calls.append(PlannedCall(System.SUPPORT, "GET", "/api/v2/organizations/search.json",
                                      {"external_id": cust.ref.id}, "look it up by external id first (idempotency)"))
        body: dict[str, Any] = {"name": name, "external_id": cust.ref.id}
        if fields_:
            body["organization_fields"] = fields_
        self.calls.append(PlannedCall(System.SUPPORT, "POST", "/api/v2/organizations.json", {"organization": body},
                                      "create the organization"))
        self.before = {"support": None}
        self.expected_after = {"support": body}

    def link_org(self) -> None:
        cust = self.billing_customer()
        if cust.ref.id in self.idx.orgs_by_ext:
            raise _Refuse("target", f"a support organization already carries {cust.ref.id}: refresh")
        cand = self.candidate(self.s.customers, "support organization")
        self.steps = [{"op": "support.link_org", "system": System.SUPPORT.value, "org_id": int(cand.ref.id),
                       "external_id": cust.ref.id}]
        self.calls.append(PlannedCall(System.SUPPORT, "PUT", f"/api/v2/organizations/{cand.ref.id}.json",
                                      {"organization": {"external_id": cust.ref.id}},
                                      f"link organization {cand.ref.id} to {cust.ref.id}"))
        self.before = {"support": {"organization": cand.ref.id, "external_id": None}}
        self.expected_after = {"support": {"organization": cand.ref.id, "external_id": cust.ref.id}}

    def push_master(self) -> None:
        cid = self.exc.customer_id or self.exc.object_id
        party = self.party(cid)
        cust = self.billing_customer()
        from services.core.reconcile import norm_country, norm_name, norm_tax

        fields_: dict[str, Any] = {}
        if norm_name(cust.name) != norm_name(party.name):
            fields_["name"] = party.name
        if norm_tax(cust.tax_id) != norm_tax(party.tax_id):
            fields_["tax_id"] = party.tax_id
        if norm_country(cust.country) != norm_country(party.country):
            fields_["country"] = party.country
        self.before = {"erp (owner)": {"name": party.name, "tax_id": party.tax_id, "country": party.country},
                       "billing": {k: getattr(cust, k) for k in fields_}}
        if fields_:
            self.bill_update(cid, fields_, "push the ERP's (owner's) values to billing's copy")
        org = self.idx.orgs_by_ext.get(cid)
        if org is not None and norm_name(org.name) != norm_name(party.name):
            self.org_update(org, {"name": party.name}, "push the ERP's legal name to the support organization")
            self.before["support"] = {"name": org.name}
        if not self.steps:
            raise _Refuse("target", "the copies already agree with the ERP: refresh")
        self.ok("owner", "values flow from the ERP (owner) to the copies")
        self.expected_after = {"billing": fields_, "support": {"name": party.name} if org is not None else None}

    def bill_update(self, cid: str, fields_: dict[str, Any], description: str) -> None:
        self.steps.append({"op": "billing.update_customer", "system": System.BILLING.value, "customer_id": cid,
                           "fields": fields_})
        body: dict[str, Any] = {}
        for k, v in fields_.items():
            if k == "tax_id":
                body["metadata[tax_id]"] = v if v is not None else ""
            elif k == "country":
                body["address[country]"] = v if v is not None else ""
            else:
                body[k] = v if v is not None else ""
        self.calls.append(PlannedCall(System.BILLING, "POST", f"/v1/customers/{cid}", body,
                                      f"{description} (Idempotency-Key: the action's key)"))

    def org_update(self, org: Customer, values: dict[str, Any], description: str) -> None:
        self.steps.append({"op": "support.update_org", "system": System.SUPPORT.value, "org_id": int(org.ref.id),
                           "values": values})
        self.calls.append(PlannedCall(System.SUPPORT, "PUT", f"/api/v2/organizations/{org.ref.id}.json",
                                      {"organization": values}, description))

    def correct_master(self) -> None:
        self.need_reason("a correction")
        cid = self.exc.customer_id or self.exc.object_id
        target = str(self.value.get("target") or "").lower()
        values = {k: self.value[k] for k in OWNER_FIELDS if k in self.value}
        owner = self.svc.engine.config.ownership
        owned = [k for k in values if owner.get(f"customer.{k}") is System.ERP]
        if target in ("", System.ERP.value) and (owned or not values):
            fields_text = ", ".join(k.replace("_", " ") for k in (owned or list(OWNER_FIELDS)))
            raise _Refuse("owner", f"the ERP owns {fields_text}; corrections flow from the owner to the copies: "
                                   "correct the party in the ERP, then push")
        if not values:
            raise _Refuse("value", "choose the values to write (name, tax_id, country)")
        self.ok("owner", f"writes a copy ({target}), not the owner")
        self.party(cid)
        if target == System.BILLING.value:
            self.billing_customer()
            self.bill_update(cid, values, "write the operator's values to billing's copy")
        elif target == System.SUPPORT.value:
            org = self.idx.orgs_by_ext.get(cid)
            if org is None:
                raise _Refuse("mapping", f"no support organization carries {cid}")
            if set(values) - {"name"}:
                raise _Refuse("value", "the support organization holds only the name")
            self.org_update(org, values, "write the operator's name to the support organization")
        else:
            raise _Refuse("value", f"unknown target {target!r} (billing or support)")
        self.before = {"sides": {s.system.value: s.values for s in self.exc.sides}}
        self.expected_after = {target: values}

    # -- subscriptions and entitlements ---------------------------------------------------
    def push_terms(self) -> None:
        sub = self.b.subscriptions.get(self.exc.object_id)
        if sub is None:
            raise _Refuse("source", f"billing subscription {self.exc.object_id} is not in the snapshot")
        self.party(sub.customer_id)
        esub = self.idx.erp_subs_by_ref.get(sub.ref.id)
        if esub is None:
            raise _Refuse("target", f"no running ERP subscription carries {sub.ref.id}")
        erp_keys = {p.key for p in self.e.plans.values()}
        if sub.plan_key and erp_keys and sub.plan_key not in erp_keys:
            raise _Refuse("product", f"plan {sub.plan_key!r} has no ERP product with that code")
        self.ok("product", f"plan {sub.plan_key} maps to an ERP product")
        step: dict[str, Any] = {"op": "erp.write_subscription", "system": System.ERP.value,
                                "subscription_id": int(esub.ref.id)}
        if sub.plan_key != esub.plan_key:
            step["plan_key"] = sub.plan_key
        if sub.quantity != esub.quantity:
            step["quantity"] = sub.quantity
        bend = sub.current_period_end.astimezone(UTC).date() if sub.current_period_end else None
        eend = esub.current_period_end.astimezone(UTC).date() if esub.current_period_end else None
        if bend != eend and bend is not None:
            step["next_invoice_date"] = bend.isoformat()
        self.steps = [step]
        if "plan_key" in step or "quantity" in step:
            line = {k: v for k, v in (("service", f"<service of {step.get('plan_key')}>" if "plan_key" in step
                                       else None), ("quantity", step.get("quantity"))) if v is not None}
            self.rpc_call("model.sale.subscription.line.write", [["<first line>"], line],
                          "write billing's plan and quantity on the subscription line")
        if "next_invoice_date" in step:
            self.rpc_call("model.sale.subscription.write", [[int(esub.ref.id)],
                                                           {"next_invoice_date": step["next_invoice_date"]}],
                          "write billing's period end as the next invoice date")
        self.before = {"erp": {"plan": esub.plan_key, "quantity": esub.quantity,
                               "period_end": eend.isoformat() if eend else None}}
        self.expected_after = {"erp": {"plan": sub.plan_key, "quantity": sub.quantity,
                                       "period_end": bend.isoformat() if bend else None}}

    def org(self) -> Customer:
        cid = self.exc.customer_id or self.exc.object_id
        org = self.idx.orgs_by_ext.get(cid)
        if org is None:
            raise _Refuse("mapping", f"no support organization carries {cid}")
        self.ok("mapping", f"support organization {org.ref.id} carries {cid}")
        return org

    def set_tier(self, org: Customer, tier: Tier | None, description: str) -> None:
        fields_ = {"support_tier": tier.value if tier else None}
        self.steps = [{"op": "support.set_fields", "system": System.SUPPORT.value, "org_id": int(org.ref.id),
                       "fields": fields_}]
        self.calls.append(PlannedCall(System.SUPPORT, "PUT", f"/api/v2/organizations/{org.ref.id}.json",
                                      {"organization": {"organization_fields": fields_}}, description))
        ent = self.s.entitlements.get(org.ref.id)
        self.before = {"support": {"support_tier": ent.tier.value if ent and ent.tier else None}}
        self.expected_after = {"support": fields_}

    def push_tier(self) -> None:
        org = self.org()
        cid = self.exc.customer_id or self.exc.object_id
        tier = self.idx.granted_tier(cid)
        if tier is None:
            raise _Refuse("plan", f"billing's active plans of {cid} grant no support tier (plan → tier mapping)")
        self.ok("plan", f"billing's plan grants {tier.value}")
        self.set_tier(org, tier, f"set the support tier billing grants ({tier.value})")

    def revoke_tier(self) -> None:
        org = self.org()
        cid = self.exc.customer_id or self.exc.object_id
        if self.idx.active_subs.get(cid):
            raise _Refuse("plan", f"{cid} has an active subscription again: refresh")
        self.ok("plan", "no active subscription in billing")
        self.set_tier(org, None, "revoke the support tier (no active subscription)")


# --------------------------------------------------------------------------------------
# Helpers: keys, rows, payloads
# --------------------------------------------------------------------------------------


def _key(exc: SyncException, req: ActionRequest) -> str:
    material = [exc.rule, exc.object_id, req.kind.value, req.value or {}, _iso(exc.first_seen)]
    return "sd-" + hashlib.sha256(_canonical(material).encode()).hexdigest()[:40]


def _call_dict(c: PlannedCall) -> dict[str, Any]:
    return {"system": c.system.value, "method": c.method, "path": c.path, "body": c.body}


def _payload(work: _Work, plan: Plan) -> str:
    return redact(_canonical({
        "request": {"kind": plan.request.kind.value, "exception_id": plan.request.exception_id,
                    "reason": plan.request.reason, "value": plan.request.value},
        "exception": {"id": work.exception_id, "rule": work.rule, "customer_id": work.customer_id},
        "steps": work.steps, "calls": work.calls, "before": work.before, "expected_after": plan.expected_after,
        "verify": work.verify}))


def _work_from_row(row: Any) -> _Work:
    payload = json.loads(row.payload)
    exc = payload.get("exception", {})
    return _Work(row.action_id, row.idempotency_key, ActionKind(row.kind), row.exception_id or exc.get("id", ""),
                 exc.get("rule", ""), row.customer_id, payload.get("steps", []), payload.get("calls", []),
                 payload.get("before", {}), row.operator, row.role, row.reason or "",
                 verify=payload.get("verify", True))


def _result_from_row(row: Any) -> ActionResult:
    stored = json.loads(row.result) if row.result else {}
    status = ActionStatus(row.status)
    return ActionResult(row.action_id, ActionKind(row.kind), row.exception_id or "", status,
                        stored.get("message") or row.last_error or status.value, bool(stored.get("verified")),
                        stored.get("after") or {})


def _item(row: Any) -> OutboxItem:
    return OutboxItem(row.action_id, ActionKind(row.kind), ActionStatus(row.status), row.operator, row.role,
                      row.exception_id, row.customer_id, row.target_system, row.reason, row.attempts,
                      row.last_error, _parse_dt(row.created_at), _parse_dt(row.updated_at))


def _lines(raw: list[list[str]]) -> list[tuple[str, Decimal, Decimal, str]]:
    return [(code, Decimal(qty), Decimal(unit), desc) for code, qty, unit, desc in raw]


def _summary(data: SystemData) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for inv_id, inv in data.invoices.items():
        out[f"invoice {inv_id}"] = {"state": inv.status.value, "total": str(inv.total.amount),
                                    "currency": inv.total.currency, "number": inv.number,
                                    "reference": inv.billing_invoice_id}
    for cid, cust in data.customers.items():
        out[f"customer {cid}"] = {"name": cust.name, "code": cust.customer_id, "tax_id": cust.tax_id,
                                  "country": cust.country}
    for eid, ent in data.entitlements.items():
        out[f"entitlement {eid}"] = {"tier": ent.tier.value if ent.tier else None}
    for sid, sub in data.subscriptions.items():
        out[f"subscription {sid}"] = {"plan": sub.plan_key, "quantity": sub.quantity,
                                      "period_end": sub.current_period_end.date().isoformat()
                                      if sub.current_period_end else None}
    return out


__all__ = [
    "RULE_ACTIONS", "ActionConflict", "ActionKind", "ActionRequest", "ActionResult", "ActionService",
    "ActionStatus", "BulkProgress", "BulkResult", "Check", "Operator", "OutboxItem", "PermissionDenied",
    "Plan", "PlannedCall", "Role", "action_verdict", "allowed_actions_for", "auditor_refusal",
    "exception_fingerprint", "role_check", "static_refusal",
]

