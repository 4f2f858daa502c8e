"""Verify after write: every written object is read back through its connector, folded into the
engine's data (:meth:`Engine.apply_records`) and the rules are evaluated again (concurrent
verifications share one reconciliation: :class:`_Coalescer`). An action ``succeeded`` with
``verified=True`` only when the exception id is gone; a write that left the disagreement in place
is ``failed`` ("written but the difference remains: …"). What was read back is kept in the
outcome (``after["read_back"]``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from services.actions.outbox import _Work
from services.actions.step_handlers import Connections
from services.core.domain import Customer, System
from services.core.errors import RateLimitedError, UnavailableError
from services.core.reconcile import ReconcileResult
from services.core.sysdata import SystemData
from services.engine import Engine


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


async def _reread(conns: Connections, targets: list[list[Any]]) -> dict[System, SystemData]:
    """Read back every written object (``["erp", "invoice", 42]``, ``["erp", "credit_note", 43]``, as the
    step handlers answer them)."""
    out: dict[System, SystemData] = {}
    for system_name, kind, ident in targets:
        system = System(system_name)
        data = out.setdefault(system, SystemData(system))
        if kind == "invoice":
            data.invoices[str(ident)] = await conns.erp().get_invoice(int(ident))
        elif kind == "credit_note":
            inv, note = await conns.erp().get_credit_note(int(ident))
            data.invoices[str(ident)], data.credit_notes[str(ident)] = inv, note
        elif kind == "party":
            data.customers[str(ident)] = await conns.erp().get_party(int(ident))
        elif kind == "subscription":
            data.subscriptions[str(ident)] = await conns.erp().get_subscription(int(ident))
        elif kind == "org":
            org = await conns.support().get_organization(ident)
            data.customers[str(org.id)] = org.customer
            data.entitlements[str(org.id)] = org.entitlement
        elif kind == "customer":
            customer: Customer | None = await conns.billing().get_customer(str(ident))
            if customer is not None:
                data.customers[str(ident)] = customer
    return out


async def _verify(engine: Engine, coalescer: _Coalescer, work: _Work, after: dict[str, Any],
                  retry_delays: Iterable[float]) -> str | None:
    """Re-read every written object, fold it in, reconcile; ``None`` when the exception is
    gone, else what remains."""
    delays = list(retry_delays)
    while True:
        try:
            reread = await _reread(Connections(engine.connectors), after.get("targets", []))
            break
        except (UnavailableError, RateLimitedError):
            if not delays:
                raise
            await asyncio.sleep(delays.pop(0))
    for system, data in reread.items():
        await engine.apply_records(system, data)
    after["read_back"] = {s.value: _summary(d) for s, d in reread.items()}
    result = await coalescer.fresh()
    if work.rule not in result.evaluated_rules:
        return f"the rule {work.rule} could not be evaluated ({result.skipped_rules.get(work.rule, '?')})"
    still = next((e for e in result.exceptions if e.id == work.exception_id), None)
    if still is None:
        await engine.close_exceptions([work.exception_id])
        return None
    return still.summary


def _summary(data: SystemData) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for inv_id, inv in data.invoices.items():
        out[f"invoice {inv_id}"] = {"state": inv.status.value, "total": str(inv.total.amount),
                                    "currency": inv.total.currency, "number": inv.number,
                                    "reference": inv.billing_invoice_id}
    for nid, note in data.credit_notes.items():
        out[f"credit note {nid}"] = {"state": note.status, "total": str(note.total.amount),
                                     "currency": note.total.currency, "number": note.number,
                                     "credits invoice": note.invoice_id}
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
