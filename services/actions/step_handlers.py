"""How each action step runs: one async handler per step type (:data:`HANDLERS`), reaching the
connectors through :class:`Connections` (``erp()`` is the :class:`TrytonConnector`, ``billing()``
the :class:`StripeConnector`, ``support()`` the :class:`ZendeskConnector`). A handler answers what
it wrote (:class:`Written`): verify (:mod:`services.actions.verify`) reads those objects back.
The local steps (accept, flag) send nothing.

Idempotency on the wire
-----------------------
Billing writes carry ``Idempotency-Key`` = the action's key (+ step number); ERP creates look up by
reference / code (a credit note of credit + repost: by its origin; one posted for a billing
credit note: by its reference) first, and again when an answer is lost; ERP
button presses accept the state the button leads to when the answer is lost; a draft is deleted
only while it is a draft (gone already: nothing to delete); ERP writes and
support updates set absolute values (PUT), so repeating them changes nothing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import TypeAlias, TypeVar

from services.actions.steps import (
    KEEP,
    AcceptDifference,
    CancelInvoice,
    CreateOrg,
    CreditRepost,
    EnsureParty,
    ExpectedTotals,
    FlagForReview,
    Json,
    JsonObject,
    LinkOrg,
    LinkParty,
    PostCreditNote,
    PostDraft,
    PostInvoice,
    ReplaceCreditLines,
    ReplaceLines,
    RepostInvoice,
    SetOrgFields,
    Step,
    StepLine,
    UpdateCustomer,
    UpdateOrg,
    WriteSubscription,
)
from services.core.domain import System
from services.core.errors import RemoteValidationError, SyncDeskError
from services.io.connectors.base import Connector
from services.io.connectors.stripe import StripeConnector
from services.io.connectors.tryton import TrytonConnector
from services.io.connectors.zendesk import ZendeskConnector


@dataclass(frozen=True)
class Written:
    """An object a step wrote, as ``after["targets"]`` lists it (``["erp", "invoice", 42]``)."""

    system: System
    kind: str  # invoice, credit_note, party, subscription, customer, org
    ident: int | str

    def to_json(self) -> list[Json]:
        return [self.system.value, self.kind, self.ident]


C = TypeVar("C", bound=Connector)
S = TypeVar("S", bound=Step)


class Connections:
    """Typed access to the engine's connectors, one per system."""

    def __init__(self, connectors: Mapping[System, Connector]) -> None:
        self.connectors = connectors

    def get(self, system: System) -> Connector:
        conn = self.connectors.get(system)
        if conn is None:
            raise SyncDeskError(f"no {system.value} connection is configured")
        return conn

    def _typed(self, system: System, kind: type[C]) -> C:
        conn = self.get(system)
        if not isinstance(conn, kind):
            raise SyncDeskError(f"the {system.value} connection is a {type(conn).__name__}, not a {kind.__name__}")
        return conn

    def erp(self) -> TrytonConnector:
        return self._typed(System.ERP, TrytonConnector)

    def billing(self) -> StripeConnector:
        return self._typed(System.BILLING, StripeConnector)

    def support(self) -> ZendeskConnector:
        return self._typed(System.SUPPORT, ZendeskConnector)


def _decimal_lines(lines: Iterable[StepLine]) -> list[tuple[str, Decimal, Decimal, str]]:
    return [(code, Decimal(qty), Decimal(unit), desc) for code, qty, unit, desc in lines]


def _totals(expected: ExpectedTotals | None) -> tuple[Decimal, Decimal, Decimal] | None:
    """Billing's (untaxed, tax, total) the ERP draft must equal before it is posted."""
    return None if expected is None else (Decimal(expected.untaxed), Decimal(expected.tax), Decimal(expected.total))


async def _post_invoice(c: Connections, step: PostInvoice, idem: str) -> list[Written]:
    erp = c.erp()
    if step.acknowledge:
        await erp.acknowledge_warning(step.acknowledge)
    inv_id = await erp.ensure_invoice_posted(
        step.billing_invoice_id, step.party_id, step.currency,
        date.fromisoformat(step.invoice_date) if step.invoice_date else None, _decimal_lines(step.lines),
        line_taxes=step.line_taxes, expected=_totals(step.expected))
    return [Written(System.ERP, "invoice", inv_id)]


async def _post_draft(c: Connections, step: PostDraft, idem: str) -> list[Written]:
    erp = c.erp()
    if step.acknowledge:
        await erp.acknowledge_warning(step.acknowledge)
    inv_id = await erp.post_draft_invoice(step.invoice_id, step.billing_invoice_id,
                                          date.fromisoformat(step.invoice_date) if step.invoice_date else None)
    return [Written(System.ERP, "invoice", inv_id)]


async def _repost_invoice(c: Connections, step: RepostInvoice, idem: str) -> list[Written]:
    erp = c.erp()
    if step.acknowledge:
        await erp.acknowledge_warning(step.acknowledge)
    inv_id = await erp.delete_draft_and_repost(
        step.invoice_id, step.billing_invoice_id, step.party_id, step.currency,
        date.fromisoformat(step.invoice_date) if step.invoice_date else None, _decimal_lines(step.lines),
        line_taxes=step.line_taxes, expected=_totals(step.expected))
    return [Written(System.ERP, "invoice", inv_id)]


async def _ensure_party(c: Connections, step: EnsureParty, idem: str) -> list[Written]:
    party_id = await c.erp().ensure_party(step.customer_id, step.name, step.tax_id, step.country, step.email)
    return [Written(System.ERP, "party", party_id)]


async def _link_party(c: Connections, step: LinkParty, idem: str) -> list[Written]:
    erp = c.erp()
    party = await erp.get_party(step.party_id)
    if party.customer_id not in (None, step.customer_id):
        raise RemoteValidationError(System.ERP, "link party", f"party {step.party_id} now carries "
                                    f"{party.customer_id}: not linked")
    if party.customer_id is None:
        code: JsonObject = {"code": step.customer_id}
        await erp.write_party(step.party_id, code)
    return [Written(System.ERP, "party", step.party_id)]


async def _replace_lines(c: Connections, step: ReplaceLines, idem: str) -> list[Written]:
    await c.erp().replace_draft_invoice_lines(step.invoice_id, step.currency, _decimal_lines(step.lines),
                                              line_taxes=step.line_taxes, expected=_totals(step.expected))
    return [Written(System.ERP, "invoice", step.invoice_id)]


async def _credit_repost(c: Connections, step: CreditRepost, idem: str) -> list[Written]:
    erp = c.erp()
    if step.acknowledge:
        await erp.acknowledge_warning(step.acknowledge)
    credit_note, corrected = await erp.credit_and_repost(
        step.invoice_id, step.billing_invoice_id, step.party_id, step.currency,
        date.fromisoformat(step.invoice_date), _decimal_lines(step.lines),
        line_taxes=step.line_taxes, expected=_totals(step.expected))
    # three invoices written: the credited one, its credit note (unless it existed), the corrected copy
    written = [step.invoice_id, *([credit_note] if credit_note is not None else []), corrected]
    return [Written(System.ERP, "invoice", i) for i in written]


async def _post_credit_note(c: Connections, step: PostCreditNote, idem: str) -> list[Written]:
    erp = c.erp()
    if step.acknowledge:
        await erp.acknowledge_warning(step.acknowledge)
    note_id = await erp.ensure_credit_note_posted(
        step.reference, step.invoice_id, step.currency,
        date.fromisoformat(step.invoice_date) if step.invoice_date else None,
        [(pos, was, Decimal(qty), Decimal(unit), desc) for pos, was, qty, unit, desc in step.lines],
        line_taxes=step.line_taxes, expected=_totals(step.expected))
    # read back as a credit note (verify: the credit rules count ERP credit notes, not invoices)
    return [Written(System.ERP, "credit_note", note_id)]


async def _replace_credit_lines(c: Connections, step: ReplaceCreditLines, idem: str) -> list[Written]:
    expected = _totals(step.expected)
    assert expected is not None
    await c.erp().replace_draft_credit_note_lines(
        step.note_id, step.invoice_id, step.currency,
        [(pos, was, Decimal(qty), Decimal(unit), desc) for pos, was, qty, unit, desc in step.lines],
        line_taxes=step.line_taxes, expected=expected)
    return [Written(System.ERP, "credit_note", step.note_id)]


async def _cancel_invoice(c: Connections, step: CancelInvoice, idem: str) -> list[Written]:
    await c.erp().cancel_invoice(step.invoice_id)
    return [Written(System.ERP, "invoice", step.invoice_id)]


async def _write_subscription(c: Connections, step: WriteSubscription, idem: str) -> list[Written]:
    nid = step.next_invoice_date
    await c.erp().write_subscription_terms(step.subscription_id,
                                           plan_key=None if step.plan_key is KEEP else step.plan_key,
                                           quantity=step.quantity,
                                           next_invoice_date=date.fromisoformat(nid) if nid else None)
    return [Written(System.ERP, "subscription", step.subscription_id)]


async def _update_customer(c: Connections, step: UpdateCustomer, idem: str) -> list[Written]:
    await c.billing().update_customer(step.customer_id, step.fields, idempotency_key=idem)
    return [Written(System.BILLING, "customer", step.customer_id)]


async def _create_org(c: Connections, step: CreateOrg, idem: str) -> list[Written]:
    org = await c.support().create_organization(step.name, step.external_id, step.fields or None)
    return [Written(System.SUPPORT, "org", org.id)]


async def _link_org(c: Connections, step: LinkOrg, idem: str) -> list[Written]:
    support = c.support()
    current = await support.get_organization(step.org_id)
    if current.customer.customer_id not in (None, step.external_id):
        raise RemoteValidationError(System.SUPPORT, "link organization",
                                    f"organization {step.org_id} now carries "
                                    f"{current.customer.customer_id}: not linked")
    external_id: JsonObject = {"external_id": step.external_id}
    await support.update_organization(step.org_id, external_id)
    return [Written(System.SUPPORT, "org", step.org_id)]


async def _update_org(c: Connections, step: UpdateOrg, idem: str) -> list[Written]:
    await c.support().update_organization(step.org_id, step.values)
    return [Written(System.SUPPORT, "org", step.org_id)]


async def _set_org_fields(c: Connections, step: SetOrgFields, idem: str) -> list[Written]:
    await c.support().update_organization_fields(step.org_id, step.fields)
    return [Written(System.SUPPORT, "org", step.org_id)]


async def _local(c: Connections, step: Step, idem: str) -> list[Written]:
    """Accept and flag send nothing (the service records them when the action finishes)."""
    return []


#: runs one step: the connectors, the step, the step's Idempotency-Key (action key + step number)
StepHandler: TypeAlias = Callable[[Connections, Step, str], Awaitable[list[Written]]]


def _entry(kind: type[S], run: Callable[[Connections, S, str], Awaitable[list[Written]]],
           ) -> tuple[type[Step], StepHandler]:
    async def handle(c: Connections, step: Step, idem: str) -> list[Written]:
        if not isinstance(step, kind):
            raise TypeError(f"the {kind.op} handler cannot run a {step.op} step")
        return await run(c, step, idem)

    return kind, handle


#: the handler of every step kind
HANDLERS: dict[type[Step], StepHandler] = dict([
    _entry(PostInvoice, _post_invoice),
    _entry(PostDraft, _post_draft),
    _entry(RepostInvoice, _repost_invoice),
    _entry(EnsureParty, _ensure_party),
    _entry(LinkParty, _link_party),
    _entry(ReplaceLines, _replace_lines),
    _entry(CreditRepost, _credit_repost),
    _entry(PostCreditNote, _post_credit_note),
    _entry(ReplaceCreditLines, _replace_credit_lines),
    _entry(CancelInvoice, _cancel_invoice),
    _entry(WriteSubscription, _write_subscription),
    _entry(UpdateCustomer, _update_customer),
    _entry(CreateOrg, _create_org),
    _entry(LinkOrg, _link_org),
    _entry(UpdateOrg, _update_org),
    _entry(SetOrgFields, _set_org_fields),
    _entry(AcceptDifference, _local),
    _entry(FlagForReview, _local),
])


async def run_step(c: Connections, step: Step, idem: str) -> list[Written]:
    """Run ``step`` through its handler; what it wrote."""
    handler = HANDLERS.get(type(step))
    if handler is None:
        raise SyncDeskError(f"no handler for action step {step.op!r}")
    return await handler(c, step, idem)
