"""The plan builder's core: one plan's checks, steps, calls and before/after values, read from
the local snapshot (never the network). :mod:`services.actions.plan` picks the planner of the
request's (rule, kind); the planners live by family (:mod:`~services.actions.plan_invoices`,
:mod:`~services.actions.plan_customers`, :mod:`~services.actions.plan_entitlements`) and share what
is here: the accumulated results, the snapshot's systems (``b``, ``e``, ``s``) and index (``idx``),
a passed check (:meth:`ok`), a refusal (:class:`_Refuse`: a failed check, nothing is written), a
previewed ERP call, the reason and the ERP party every write needs.
"""

from __future__ import annotations

from typing import Any

from services.actions.model import ActionRequest, Check, Clock, Operator, PlannedCall
from services.actions.steps import Step
from services.core.domain import Customer, SyncException, System
from services.core.reconcile import _Run
from services.core.sysdata import SystemData
from services.engine import Engine
from services.io.connectors.tryton import TrytonConnector


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
