"""The plan builder's core: one plan's checks, steps, calls and before/after values, read from
the local snapshot (never the network). :mod:`services.actions.plan` picks the planner of the
request's (rule, kind); the planners live by family (:mod:`~services.actions.plan_invoices`,
:mod:`~services.actions.plan_customers`, :mod:`~services.actions.plan_entitlements`) and share what
is here: the accumulated results, the snapshot's systems (``b``, ``e``, ``s``) and index (``idx``),
a passed check (:meth:`ok`), a refusal (:class:`_Refuse`: a failed check, nothing is written), a
previewed ERP call, the reason and the ERP party every write needs.

The one network read of planning, :func:`read_erp_today` (awaited before the builder runs),
reads the ERP's today: trytond's ``account.invoice.post`` raises its ``invoice_date_future``
warning for a customer invoice dated after it (the date in the ERP company's timezone, which
can be a day behind the engine's UTC date), so the date a fix picks by itself is never after
it (:meth:`_PlanBuilderCore.fix_today`, :meth:`~_PlanBuilderCore.not_after_erp_today`) and an
operator's date after it is refused (:meth:`~_PlanBuilderCore.refuse_after_erp_today`).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, date, timedelta
from typing import Any

from services.actions.model import ActionRequest, Check, Clock, Operator, PlannedCall
from services.actions.steps import Step
from services.core.domain import Customer, SyncException, System
from services.core.errors import ConnectorError
from services.core.reconcile import _Run
from services.core.sysdata import SystemData
from services.engine import Engine
from services.io.connectors.tryton import TrytonConnector

log = logging.getLogger(__name__)

#: how long (by the engine's clock) the ERP's today read before planning is used by a plan
ERP_TODAY_FRESH = timedelta(minutes=10)
#: the longest the read of the ERP's today may hold a preview up (then the plan goes without it)
ERP_TODAY_TIMEOUT = 10.0


async def read_erp_today(engine: Engine) -> None:
    """Before planning: read the ERP's today (:meth:`TrytonSession.read_today`, reused for a
    minute). A failure (the ERP unreachable, the method not served) is logged and leaves it
    unread: the plan then dates by the engine's UTC date and its preview says so."""
    erp = engine.connectors.get(System.ERP)
    if not isinstance(erp, TrytonConnector) or engine.read_only:
        return
    try:
        async with asyncio.timeout(ERP_TODAY_TIMEOUT):
            await erp.read_today()
    except (ConnectorError, TimeoutError) as exc:
        log.info("erp: the ERP's today could not be read before planning: %s", exc)


class _Refuse(Exception):
    def __init__(self, name: str, detail: str) -> None:
        super().__init__(detail)
        self.name = name
        self.detail = detail


def _ref_id(text: Any) -> str:
    """``"erp:party.party:42"`` or ``"42"`` -> ``"42"``."""
    return str(text).rsplit(":", 1)[-1]


class _PlanBuilderCore:
    """Builds one plan's checks, steps, calls and before/after values from the snapshot."""

    def __init__(self, engine: Engine, operator: Operator, clock: Clock, idx: _Run, req: ActionRequest,
                 exc: SyncException) -> None:
        self.engine = engine
        self.operator = operator
        self.clock = clock
        self.req = req
        self.exc = exc
        self.value = dict(req.value or {})
        self.idx = idx
        eng = engine
        self.b = eng.data.get(System.BILLING) or SystemData(System.BILLING)
        self.e = eng.data.get(System.ERP) or SystemData(System.ERP)
        self.s = eng.data.get(System.SUPPORT) or SystemData(System.SUPPORT)
        self.checks: list[Check] = []
        self.steps: list[Step] = []
        self.calls: list[PlannedCall] = []
        self.before: dict[str, Any] = {}
        self.expected_after: dict[str, Any] = {}
        self.notes: list[str] = []
        erp = eng.connectors.get(System.ERP)
        database = erp.database if isinstance(erp, TrytonConnector) else "db"
        self.rpc = f"/{database}/rpc/"
        read = erp.today_read if isinstance(erp, TrytonConnector) else None
        age = engine.clock() - read[1] if read is not None else None
        #: the ERP's today (its company's timezone), read before planning; None when unknown
        self.erp_today: date | None = (read[0] if read is not None and age is not None
                                       and timedelta(0) <= age < ERP_TODAY_FRESH else None)
        self._today_noted = False

    def fix_today(self) -> date:
        """"Today" for a date a fix picks by itself: the engine's UTC date, or the ERP's today
        when that is earlier (a later date stops the ERP's posting on ``invoice_date_future``);
        the preview notes which and why."""
        utc = self.engine.clock().astimezone(UTC).date()
        if self.erp_today is None:
            self._note_today(f"the ERP's today could not be read: today is the engine's UTC date {utc}")
            return utc
        if self.erp_today < utc:
            self._note_today(f"the ERP's today is {self.erp_today} (its company's timezone), before the engine's "
                             f"UTC date {utc}: today is {self.erp_today} (the ERP refuses an invoice dated after "
                             "its today with its invoice_date_future warning)")
        return min(utc, self.erp_today)

    def _note_today(self, note: str) -> None:
        if not self._today_noted:
            self._today_noted = True
            self.notes.append(note)

    def not_after_erp_today(self, day: date, bound: date | None) -> date:
        """``day``, or the ERP's today when ``day`` is after it — but never before ``bound``
        (the ERP's strict invoice sequence: its latest posted invoice date)."""
        if self.erp_today is None or day <= self.erp_today:
            return day
        capped = max(self.erp_today, bound) if bound is not None else self.erp_today
        self.notes.append(f"{day} is after the ERP's today ({self.erp_today}, its company's timezone): dated {capped}"
                          + ("" if capped == self.erp_today else
                             ", the ERP's latest posted invoice date (its strict sequence): the ERP will ask to "
                             "confirm its invoice_date_future warning"))
        return capped

    def refuse_after_erp_today(self, chosen: date) -> None:
        """An operator's date after the ERP's today is refused: the ERP would stop the posting
        on its ``invoice_date_future`` warning."""
        if self.erp_today is not None and chosen > self.erp_today:
            raise _Refuse("date", f"the chosen date {chosen} is after the ERP's today ({self.erp_today}, its "
                                  f"company's timezone): the ERP refuses an invoice dated in the future "
                                  f"(invoice_date_future); choose {self.erp_today} or earlier")

    def ok(self, name: str, detail: str) -> None:
        self.checks.append(Check(name, True, detail))

    def rpc_call(self, method: str, params: list[Any], description: str) -> None:
        self.calls.append(PlannedCall(System.ERP, "POST", self.rpc, {"method": method, "params": params},
                                      description))

    def side(self, system: System) -> Any:
        return next((s for s in self.exc.sides if s.system is system), None)

    def need_reason(self, what: str) -> None:
        if not self.req.reason.strip():
            raise _Refuse("reason", f"{what} needs a reason")
        self.ok("reason", "reason given")

    def party(self, cid: str | None) -> Customer:
        party = self.idx.parties_by_code.get(cid or "")
        if party is None:
            raise _Refuse("mapping", f"{cid} has no ERP party: create or link it first (customer.unmapped_erp)")
        self.ok("mapping", f"ERP party {party.ref.id} ({party.name}) carries {cid}")
        return party
