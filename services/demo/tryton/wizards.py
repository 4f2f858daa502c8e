"""Wizards: ``wizard.<name>.create / execute / delete`` (only the invoice's "Credit").

The invoice's *Credit* wizard is the only route to ``Invoice.credit``. Wizard sessions are
kept by the service, not in a table (creating or deleting one is no committed write for the
fault injector).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from services.demo.tryton.coercion import to_date
from services.demo.tryton.errors import UserError
from services.demo.tryton.invoices import invoice_credit, invoice_records
from services.demo.tryton.model_call import ModelCall
from services.demo.tryton.schema import Record, field_label


@dataclass
class WizardSession:
    """trytond's ``ir.session.wizard`` row: the wizard and the values of its views."""

    wizard: str
    user: int
    data: dict[str, dict[str, Any]] = field(default_factory=dict)


def _wizard_session(call: ModelCall, session_id: Any) -> WizardSession:
    session = call.service.wizard_sessions.get(session_id) if isinstance(session_id, int) else None
    if session is None or session.wizard != call.model:
        raise UserError(f'You are trying to read records "{session_id}" of "Session Wizard" that don\'t exist.')
    return session


def _active_invoices(call: ModelCall) -> list[Record]:
    """The wizard's records: ``active_ids`` (or ``active_id``) of ``active_model``."""
    ctx = call.tx.context
    if ctx.get("active_model") != "account.invoice":
        raise AttributeError("'NoneType' object has no attribute 'credit'")  # as trytond fails
    ids = list(ctx.get("active_ids") or [])
    if ctx.get("active_id") is not None and ctx["active_id"] not in ids:
        ids.append(ctx["active_id"])
    return invoice_records(call, ids)


def wizard_create(call: ModelCall) -> list[Any]:
    """A session (kept by the service, not in a table: not a write for the fault injector)."""
    service = call.service
    service.wizard_ids += 1
    service.wizard_sessions[service.wizard_ids] = WizardSession(call.model, call.tx.user)
    return [service.wizard_ids, "start", "end"]


def wizard_delete(call: ModelCall, session_id: Any) -> None:
    _wizard_session(call, session_id)
    call.service.wizard_sessions.pop(session_id, None)


def wizard_execute(call: ModelCall, session_id: Any, data: Any, state_name: Any) -> dict[str, Any]:
    session = _wizard_session(call, session_id)
    if not isinstance(data, dict):
        raise TypeError(f"invalid data {data!r}")
    before = {k: dict(v) for k, v in session.data.items()}

    def restore() -> None:
        session.data = before
    call.tx.on_rollback(restore)
    for view, values in data.items():
        if not isinstance(values, dict):
            raise TypeError(f"invalid values {values!r}")
        session.data.setdefault(str(view), {}).update({k: v for k, v in values.items() if k != "id"})
    states = WIZARD_STATES[call.model]
    if state_name not in states:
        raise KeyError(state_name)
    result: dict[str, Any] = states[state_name](call, session)
    return result


def credit_start(call: ModelCall, session: WizardSession) -> dict[str, Any]:
    """The "start" view's defaults (``CreditInvoice.default_start``)."""
    defaults = {"with_refund": True, "with_refund_allowed": True}
    for rec in _active_invoices(call):
        if rec.get("state") != "posted" or rec.get("type") == "in":
            defaults = {"with_refund": False, "with_refund_allowed": False}
            break
    fields_ = {name: {"name": name, "type": kind, "string": field_label(name)}
               for name, kind in (("invoice_date", "date"), ("with_refund", "boolean"),
                                  ("with_refund_allowed", "boolean"))}
    return {"view": {"fields_view": {"type": "form", "model": "account.invoice.credit.start", "fields": fields_},
                     "defaults": defaults, "values": {},
                     "buttons": [{"state": "end", "string": "Cancel", "default": False},
                                 {"state": "credit", "string": "Credit", "default": True}],
                     "state": "start"}}


def credit_do(call: ModelCall, session: WizardSession) -> dict[str, Any]:
    """``CreditInvoice.do_credit``: credit the active invoices with the start view's options."""
    start = session.data.get("start", {})
    when = start.get("invoice_date")
    credits = invoice_credit(call, [r["id"] for r in _active_invoices(call)], refund=bool(start.get("with_refund")),
                             invoice_date=to_date(when) if when is not None else None)
    action = {"id": 216, "name": "Invoices", "type": "ir.action.act_window", "res_model": "account.invoice",
              "views": [[428, "form"], [429, "tree"]] if len(credits) == 1 else [[429, "tree"], [428, "form"]],
              "pyson_domain": "[]", "pyson_context": "{}", "records": "selected"}
    return {"actions": [[action, {"res_id": credits}]]}


WIZARD_STATES: dict[str, dict[str, Callable[[ModelCall, WizardSession], dict[str, Any]]]] = {
    "account.invoice.credit": {"start": credit_start, "credit": credit_do, "end": lambda call, session: {}},
}
WIZARD_METHODS: dict[str, Callable[..., Any]] = {
    "create": wizard_create, "execute": wizard_execute, "delete": wizard_delete,
}
