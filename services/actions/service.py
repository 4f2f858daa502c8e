"""Operator actions ([F5]): preflight, dry-run preview, write-ahead outbox, idempotent execution,
verify-after-write, automatic replay, roles and guardrails. Qt-free.

:class:`ActionService` orchestrates; each part lives in its own module of ``services/actions``:

- :mod:`~services.actions.model` — the public types (:class:`Operator`, :class:`ActionRequest`,
  :class:`Plan`, :class:`ActionResult`, …) and the fixes each rule offers (``RULE_ACTIONS``);
- :mod:`~services.actions.roles` — who may act on what;
- :mod:`~services.actions.plan` — which planner serves a (rule, kind), and the semantics per rule,
  planned by family in :mod:`~services.actions.plan_invoices`, :mod:`~services.actions.plan_customers`
  and :mod:`~services.actions.plan_entitlements` on :mod:`~services.actions.plan_builder`;
- :mod:`~services.actions.steps` — the typed steps an action writes and their stored form;
  :mod:`~services.actions.step_handlers` — how each one runs;
- :mod:`~services.actions.outbox` — the write-ahead rows; :mod:`~services.actions.encoding` — the
  idempotency key; :mod:`~services.actions.accepted` — accepted differences;
- :mod:`~services.actions.execute` — running a claimed row (retries, outcome);
  :mod:`~services.actions.verify` — verify after write;
- :mod:`~services.actions.replay` — queued actions, automatic replay, probes.

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
The key (:mod:`services.actions.encoding`) is a hash of (rule, object, action kind,
operator-chosen values, the exception's first-seen time): a double click, a re-run of the same fix
on the same occurrence, a replay after a crash all map to the same outbox row
(``idempotency_key`` is unique). A second execute of an identical plan while the first is
executing or after it succeeded returns that result and writes nothing; after a failure (or a
cancel) it re-runs the same row (attempt n+1). A disagreement that comes back later has a new
first-seen time, hence a new key. On the wire: :mod:`services.actions.step_handlers`.

Failures, outages, replay: :mod:`services.actions.execute` and :mod:`services.actions.replay`.
Roles: :mod:`services.actions.roles`; ``retry_failed`` and ``cancel_pending`` refuse another
team's action too, whose owner comes from the outbox row's rule when the local snapshot does not
know the exception. Every audit entry carries the operator's name and role. Given an
:class:`~services.core.identity.Identity` (the command line and the console always give one), the
service acts only as that login in a role the policy grants, and audits every switch of role
(:meth:`ActionService.set_operator`, :meth:`ActionService.switch_role`).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from services.actions.accepted import _Accepted, _load_accepted, exception_fingerprint
from services.actions.encoding import _iso, _key
from services.actions.model import (
    PENDING_STATUSES,
    RULE_ACTIONS,
    ActionConflict,
    ActionKind,
    ActionRequest,
    ActionResult,
    ActionStatus,
    BulkProgress,
    BulkResult,
    Check,
    Clock,
    Operator,
    OutboxItem,
    PermissionDenied,
    Plan,
    PlannedCall,
    Role,
)
from services.actions.outbox import (
    _call_dict,
    _cancel_row,
    _insert_new,
    _item,
    _payload,
    _result_from_row,
    _Work,
    _work_from_row,
)
from services.actions.plan import _PlanBuilder
from services.actions.plan_builder import _Refuse, read_erp_today
from services.actions.replay import _Replay
from services.actions.role_audit import role_change_entry
from services.actions.roles import _role_team, allowed_actions_for, require_actor, role_check
from services.actions.steps import (
    CreditRepost,
    FlagForReview,
    PostDraft,
    PostInvoice,
    RepostInvoice,
    step_systems,
)
from services.actions.verify import _Coalescer
from services.core.domain import RULES, Severity, SyncException, System, Team
from services.core.identity import Identity, RolePolicyError
from services.core.reconcile import _Run
from services.engine import Engine
from services.io.connectors.base import Connector, utc_now
from services.io.http import BreakerState
from services.store.audit import PROFILE_KEY, AuditEntry, AuditLog, GroupCommitter, redact_body


def _no_progress(_: BulkProgress) -> None:
    return None


def posting_date(plan: Plan) -> str | None:
    """The ISO date of the invoice ``plan`` posts in the ERP (``None``: it posts none): a retry's,
    a post's or a repost's, a credit + repost's credit note and copy."""
    for step in plan.steps:
        if isinstance(step, PostInvoice | RepostInvoice | CreditRepost) and step.invoice_date:
            return step.invoice_date
        if isinstance(step, PostDraft):
            erp = plan.expected_after.get("erp")
            planned = erp.get("invoice_date") if isinstance(erp, dict) else None
            return step.invoice_date or (str(planned) if planned else None)
    return None


#: the actions that write nothing to a system (an audited local record): a read-only profile allows them
LOCAL_KINDS = (ActionKind.ACCEPT, ActionKind.FLAG)


def _require_granted(identity: Identity, operator: Operator) -> None:
    """Raise :class:`PermissionDenied` unless ``operator`` is ``identity``'s login in a granted role."""
    try:
        identity.check(operator.name, operator.role)
    except RolePolicyError as exc:
        raise PermissionDenied(str(exc)) from None


class ActionService(_Replay):
    """Plans, executes, verifies, queues and replays operator actions (see module docstring)."""

    def __init__(self, engine: Engine, audit: AuditLog, operator: Operator, *, clock: Clock = utc_now,
                 retry_delays: tuple[float, ...] = (0.2, 0.5, 1.0, 2.0),
                 bulk_concurrency: dict[System, int] | None = None, identity: Identity | None = None,
                 profile: str | None = None) -> None:
        """``identity``: the logged-in login and the roles the role policy grants it
        (:func:`services.core.identity.resolve_identity`). Given one, the service only ever acts
        as that login in a granted role: ``operator`` must be one (else :class:`PermissionDenied`),
        and every later switch is checked and audited (:meth:`set_operator`, :meth:`switch_role`).
        ``None`` leaves the operator to the caller (embedding, tests); the command line and the
        console always pass the login's identity. ``profile``: the connection profile this
        service acts through, named in the request of every audit entry it writes
        (:data:`services.store.audit.PROFILE_KEY`)."""
        if identity is not None:
            _require_granted(identity, operator)
        self.engine = engine
        self.profile = profile
        #: (rule, fix kind value) -> why this profile cannot perform that fix, from the last
        #: connection test (:meth:`set_blocked_fixes`); the fix is then offered disabled
        self.blocked_fixes: dict[tuple[str, str], str] = {}
        self.audit = audit
        self.identity = identity
        self._operator = operator
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
        self._accepted: dict[str, _Accepted] = _load_accepted(audit.storage.engine)
        engine.hide_hooks.append(self.accepted)

    # -- operator and roles -------------------------------------------------------------
    @property
    def operator(self) -> Operator:
        """Who acts now (the login and its active role, when the service has an identity)."""
        return self._operator

    @operator.setter
    def operator(self, operator: Operator) -> None:
        self.set_operator(operator)

    def set_operator(self, operator: Operator) -> None:
        """Act as ``operator`` from now on. With an identity: refused (:class:`PermissionDenied`)
        unless it is the login in a role the policy grants, and a change of role is one
        ``role_change`` audit entry, appended before the switch takes effect. The append is
        synchronous SQLite: on an event loop use :meth:`switch_role` instead."""
        if self.identity is None or operator == self._operator:
            self._operator = operator
            return
        _require_granted(self.identity, operator)
        self.audit.append(self._stamp(role_change_entry(self.identity, self._operator, operator, self.clock())))
        self._operator = operator

    async def switch_role(self, role: Role) -> Operator:
        """Switch the login's active role to ``role`` (the console's role switch): checked against
        the identity's policy (:class:`PermissionDenied` otherwise), one ``role_change`` audit
        entry in the chain (group-committed with the actions' entries), then the switch.
        Returns the operator now acting. Without an identity, only the role changes, unaudited."""
        new = Operator(self._operator.name, role)
        if new == self._operator:
            return new
        if self.identity is not None:
            _require_granted(self.identity, new)
            await self.committer.append(self._stamp(role_change_entry(self.identity, self._operator, new,
                                                                      self.clock())))
        self._operator = new
        return new

    def _stamp(self, entry: AuditEntry) -> AuditEntry:
        """``entry`` naming this service's profile in its request (when it has one)."""
        if self.profile is not None:
            entry.request[PROFILE_KEY] = self.profile
        return entry

    def _role_check(self, exc: SyncException, operator: Operator | None = None) -> Check:
        return role_check(exc, operator or self.operator)

    def allowed_actions(self, exc: SyncException) -> list[tuple[ActionKind, bool, str]]:
        """(kind, allowed, why not) per fix of ``exc``: the operator's role decides; a read-only
        profile allows no fix that writes to a system; a fix the last connection test found
        the profile cannot perform (:meth:`set_blocked_fixes`) is not allowed, with its reason."""
        verdicts = allowed_actions_for(exc, self.operator)
        why = self.engine.read_only  # a read-only profile: no fix that writes to a system
        if why:
            verdicts = [(k, False, why) if ok and k not in LOCAL_KINDS else (k, ok, d) for k, ok, d in verdicts]
        blocked = self.blocked_fixes
        if blocked:
            verdicts = [(k, False, blocked[(exc.rule, k.value)]) if ok and (exc.rule, k.value) in blocked
                        else (k, ok, d) for k, ok, d in verdicts]
        return verdicts

    def set_blocked_fixes(self, blocked: dict[tuple[str, str], str]) -> None:
        """The fixes this profile cannot perform and why (``(rule, kind value) -> reason``, as
        :func:`services.io.permissions.blocked_fixes` reports a connection test): from now on
        :meth:`allowed_actions` offers them disabled with that reason. Only what is offered
        changes: a fix still runs through :meth:`plan` and the system itself decides."""
        self.blocked_fixes = dict(blocked)

    # -- accepted differences -----------------------------------------------------------
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
        await read_erp_today(self.engine)  # postings are never dated after the ERP's today
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
        if self.engine.read_only and req.kind not in LOCAL_KINDS:
            checks.append(Check("profile", False, self.engine.read_only))
            return Plan(req, exc, operator, checks, [], _key(exc, req), {}, {})
        b = _PlanBuilder(self.engine, operator, self.clock, self._idx(), req, exc)
        try:
            b.build()
        except _Refuse as refusal:
            b.checks.append(Check(refusal.name, False, refusal.detail))
        checks.extend(b.checks)
        systems = step_systems(b.steps)
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
                     "checks": [[c.name, c.ok, c.detail] for c in plan.checks],
                     **({PROFILE_KEY: self.profile} if self.profile is not None else {})},
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
            # running here from before its row says executing: a replay pass never takes it as left over
            self._running.add(work.action_id)
            try:
                await self._claim(work, {st}, status, f"re-run of a {st.value} action")
            except BaseException as failed:
                self._running.discard(work.action_id)
                if not isinstance(failed, ActionConflict):
                    raise
                fresh = await asyncio.to_thread(self._row_by_key, key)
                assert fresh is not None
                return _result_from_row(fresh)
        else:
            exc = plan.exception
            work = _Work(str(uuid4()), key, plan.request.kind, exc.id, exc.rule, exc.customer_id, plan.steps,
                         [_call_dict(c) for c in plan.calls], plan.before, self.operator.name,
                         self.operator.role.value, plan.request.reason, verify=not plan.steps or
                         not isinstance(plan.steps[0], FlagForReview))
            payload = _payload(work, plan)
            now = _iso(self.clock())
            insert_row = _insert_new(work, status, payload, now)
            work.attempts = 0 if queue else 1

            from sqlalchemy.exc import IntegrityError

            self._running.add(work.action_id)  # as above: the write-ahead row is this process's own
            try:
                await self.committer.append(self._entry(work, "intent", "queued" if queue else "pending",
                                                        after=plan.expected_after), insert_row)
            except BaseException as failed:
                self._running.discard(work.action_id)
                if not isinstance(failed, IntegrityError):  # another process wrote the same action first
                    raise
                fresh = await asyncio.to_thread(self._row_by_key, key)
                if fresh is None:
                    raise
                return _result_from_row(fresh)
        if queue:
            self._running.discard(work.action_id)  # queued: the replay's to run
            systems = ", ".join(s.value for s in plan.systems if self._breaker_open(s))
            return ActionResult(work.action_id, work.kind, work.exception_id, ActionStatus.QUEUED,
                                f"queued: {systems} unreachable; replays automatically when it returns")
        return await self._run_claimed(work)

    # -- bulk -----------------------------------------------------------------------------
    async def bulk(self, reqs: list[ActionRequest],
                   progress: Callable[[BulkProgress], None] = _no_progress) -> BulkResult:
        """Plan and execute ``reqs``, paced per target system; ERP postings oldest invoice date
        first (:func:`posting_date`: the ERP's strict invoice sequence refuses an invoice dated
        before one already posted). Cancelling the task stops
        starting new actions; started ones finish (or stay visibly pending in the outbox);
        the result then has ``cancelled=True`` and the unstarted ones as ``cancelled``."""
        require_actor(self.operator)
        opened = {e.id: e for e in await self.engine.open_exceptions(include_hidden=True)}
        missing = [r.exception_id for r in reqs if r.exception_id not in opened]
        for exc_id in missing:
            found = await self.engine.exception(exc_id)
            if found is not None:
                opened[exc_id] = found
        await read_erp_today(self.engine)  # postings are never dated after the ERP's today
        plans = [self._plan(r, opened.get(r.exception_id)) for r in reqs]
        total = len(plans)
        results: list[ActionResult | None] = [None] * total
        counts = {"done": 0}
        sems: dict[System | None, asyncio.Semaphore] = {}
        inner: dict[int, asyncio.Future[ActionResult]] = {}
        # the ERP numbers invoices in a strict sequence and refuses one dated before a posted one:
        # postings run oldest invoice date first (those of one date together), each date after
        # every earlier one has finished, succeeded or not
        dates = {i: d for i, p in enumerate(plans) if p.ok and (d := posting_date(p)) is not None}
        order = sorted(set(dates.values()))
        left = Counter(dates.values())
        finished = {d: asyncio.Event() for d in order}

        async def turn(i: int) -> None:
            if i in dates:
                for earlier in order[:order.index(dates[i])]:
                    await finished[earlier].wait()

        def release(i: int) -> None:
            if i in dates:
                left[dates[i]] -= 1
                if left[dates[i]] == 0:
                    finished[dates[i]].set()

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
            await turn(i)
            try:
                async with sem_for(plan):
                    fut = asyncio.ensure_future(self.execute(plan))
                    inner[i] = fut
                    results[i] = await asyncio.shield(fut)
            finally:
                release(i)
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
    def pending(self) -> list[OutboxItem]:
        """Queued, executing and failed actions, newest first."""
        rows = self._rows((ActionStatus.QUEUED, ActionStatus.EXECUTING, ActionStatus.FAILED))
        return [_item(r) for r in rows]

    def outbox(self, statuses: Iterable[ActionStatus] | None = None) -> list[OutboxItem]:
        """Every outbox row (added), newest first; optionally only some statuses."""
        return [_item(r) for r in self._rows(statuses or list(ActionStatus))]

    async def cancel_pending(self, action_id: str) -> None:
        """Cancel a queued (or failed) action; audited. An executing one cannot be cancelled."""
        require_actor(self.operator)
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
        write = _cancel_row(action_id, status, _iso(self.clock()))
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
        require_actor(self.operator)
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
        queue = any(self._breaker_open(s) for s in step_systems(work.steps))
        to = ActionStatus.QUEUED if queue else ActionStatus.EXECUTING
        await self._claim(work, {status}, to, f"retry of a {status.value} action")
        if queue:
            return ActionResult(work.action_id, work.kind, work.exception_id, ActionStatus.QUEUED,
                                "queued: the target is unreachable; replays automatically when it returns")
        return await self._run_claimed(work)

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
