"""The Tryton connector's credits, on top of its writes
(:class:`~services.io.connectors.tryton_writes.TrytonWrites`):
:meth:`TrytonConnector.credit_invoice` (credit with refund through Tryton's *Credit* wizard;
idempotent: a credit note is looked up by its origin first and again when the answer is lost)
and :meth:`TrytonConnector.credit_and_repost` (credit — a paid invoice without refund, its
reference moved off it — then create and post a corrected copy carrying the reference;
idempotent end to end).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import date
from decimal import Decimal
from typing import Any

from services.core.errors import (
    CircuitOpenError,
    ConnectorError,
    ProtocolError,
    RemoteValidationError,
    UnavailableError,
)
from services.io.connectors.tryton_payloads import INVOICE, _code, _State
from services.io.connectors.tryton_writes import (
    CREDIT_WIZARD,
    InvoiceTotals,
    LineTaxes,
    TrytonWrites,
    _action_res_ids,
    _InvoiceHead,
    credited_reference_prefix,
)

log = logging.getLogger(__name__)


class TrytonCredits(TrytonWrites):
    """Crediting customer invoices (see the module's docstring)."""

    async def find_credit_notes(self, invoice_id: int, party_id: int | None = None) -> list[tuple[int, str]]:
        """(id, state) of the live (not cancelled) customer credit notes of invoice
        ``invoice_id``, oldest first: Tryton's ``origin_invoices`` (a credit note's lines have
        the credited invoice's lines as their origin). ``party_id`` narrows the search."""
        domain: list[Any] = [["origin_invoices", "=", invoice_id], ["type", "=", "out"],
                             ["state", "!=", "cancelled"]]
        if party_id is not None:
            domain.append(["party", "=", party_id])
        rows = await self.search_read_all(INVOICE, domain, fields=["state"], schema=_State,
                                          phase="credit note lookup")
        return [(rid, str(rows.records[rid].state)) for rid in sorted(rows.records)]

    async def credit_invoice(self, invoice_id: int, credit_date: date | None = None) -> int | None:
        """Credit posted customer invoice ``invoice_id`` with refund, as Tryton's *Credit*
        wizard does (``wizard.account.invoice.credit``; the ``credit`` classmethod is not served
        over RPC): a credit note (party, accounts, currency, payment term and lines copied, the
        quantities negated, each line's origin = the credited line, no reference, dated
        ``credit_date`` or today) is posted and reconciled against the invoice, which ends
        ``cancelled``. Answers the credit note's id.

        Idempotent: an invoice already credited (cancelled, with a credit note) answers that
        credit note and credits nothing again; when the wizard's answer is lost, the invoice is
        read again, and cancelled with a credit note means the credit took effect. An invoice
        cancelled in place (no credit note: its posting was reversed by a cancel move) answers
        ``None``. Refused (:class:`RemoteValidationError`): a draft, validated or paid invoice
        (Tryton refunds only a posted invoice whose payment is not reconciled), and a posted
        invoice that a live credit note already credits (one made by hand, without refund:
        finish it in the ERP). A warning while posting the credit note is raised as
        :class:`RemoteWarning` (nothing committed); acknowledge it and call again."""
        operation = "credit invoice"
        return await self._credit(await self._invoice_head(invoice_id, operation), credit_date, operation)

    async def _credit(self, head: _InvoiceHead, credit_date: date | None, operation: str) -> int | None:
        name = head.number or f"{head.id} [{head.reference or ''}]"
        if head.type != "out":
            raise RemoteValidationError(self.system, operation, f"invoice {name} is not a customer invoice")
        notes = await self.find_credit_notes(head.id, head.party)
        if head.state == "cancelled":
            return notes[0][0] if notes else None
        if head.state != "posted":
            raise RemoteValidationError(self.system, operation,
                                        f"invoice {name} is {head.state}: Tryton credits with refund only a "
                                        "posted invoice whose payment is not reconciled")
        if notes:
            raise RemoteValidationError(self.system, operation,
                                        f"invoice {name} is posted, but credit note {notes[0][0]} ({notes[0][1]}) "
                                        "already credits it: finish or cancel that credit note in the ERP first")
        async def took_effect() -> int | None:
            """After a lost answer: the credit took effect when the invoice is cancelled with a credit note."""
            log.warning("erp: %s: answer lost; reading the invoice again", operation)
            state = await self._invoice_state(head.id)
            notes = await self.find_credit_notes(head.id, head.party)
            return notes[0][0] if state == "cancelled" and notes else None

        return await self._run_credit_wizard(head, credit_date, True, operation, took_effect)

    async def _credit_paid(self, head: _InvoiceHead, credit_date: date | None, billing_invoice_id: str,
                           moved: bool) -> int:
        """Credit a *paid* customer invoice as Tryton allows it: its Credit wizard refunds only
        an unpaid posted invoice, so the credit is made without refund (a draft credit note
        copying the invoice with negated lines, each line's origin the credited one), dated
        ``credit_date``, and posted; the paid invoice stays paid, and its reference (which
        Tryton lets change on a posted invoice) becomes ``credited: <billing id> by <credit note
        number>``, so that the corrected copy is the one live invoice carrying the billing id.
        Answers the credit note's id. Idempotent: the credit note is looked up by its origin
        first (posted if still a draft), and a reference already moved is not moved again."""
        operation = "credit paid invoice"
        notes = await self.find_credit_notes(head.id, head.party)
        if notes:
            note_id, state = notes[0]
        elif moved:
            raise RemoteValidationError(self.system, operation,
                                        f"invoice {head.number or head.id} is marked credited, but no credit note "
                                        "of it is live: check it in the ERP")
        else:
            note_id, state = await self._credit_without_refund(head, credit_date, operation), "draft"
        if state in ("draft", "validated"):
            await self.post_invoice(note_id)
        if not moved:
            note = await self._invoice_head(note_id, operation)
            await self.call(INVOICE, "write", [head.id],
                            {"reference": f"{credited_reference_prefix(billing_invoice_id)}{note.number or note_id}"},
                            operation=operation)
        return note_id

    async def _credit_without_refund(self, head: _InvoiceHead, credit_date: date | None, operation: str) -> int:
        """The Credit wizard with ``with_refund`` off: one draft credit note of ``head``. When
        the answer is lost, the credit note is looked up by its origin."""

        async def took_effect() -> int | None:
            notes = await self.find_credit_notes(head.id, head.party)
            return notes[0][0] if notes else None

        return await self._run_credit_wizard(head, credit_date, False, operation, took_effect)

    async def _run_credit_wizard(self, head: _InvoiceHead, credit_date: date | None, with_refund: bool,
                                 operation: str, took_effect: Callable[[], Awaitable[int | None]]) -> int:
        """Run Tryton's Credit wizard on ``head`` (``with_refund``, dated ``credit_date``) and
        answer the credit note's id; the wizard session is always deleted. When the answer is
        lost (unavailable, not a circuit that is open), ``took_effect()`` says whether the credit
        was made after all (its credit note's id) or not (``None``: the loss is raised)."""
        active = {"active_model": INVOICE, "active_id": head.id, "active_ids": [head.id]}
        opened = await self.wizard(CREDIT_WIZARD, "create", operation=operation, context=active)
        if (not isinstance(opened, list) or not opened or not isinstance(opened[0], int)
                or isinstance(opened[0], bool)):
            raise ProtocolError(self.system, operation, "the credit wizard did not answer a session")
        session = opened[0]
        start: dict[str, Any] = {"with_refund": with_refund}
        if credit_date is not None:
            start["invoice_date"] = credit_date
        try:
            answer = await self.wizard(CREDIT_WIZARD, "execute", session, {"start": start}, "credit",
                                       operation=operation, context=active)
        except UnavailableError as exc:
            await self._end_wizard(session, active)
            if isinstance(exc, CircuitOpenError):
                raise
            try:
                found = await took_effect()
            except ConnectorError:
                raise exc from None
            if found is None:
                raise
            return found
        except ConnectorError:
            await self._end_wizard(session, active)
            raise
        await self._end_wizard(session, active)
        created = _action_res_ids(answer)
        if len(created) == 1:
            return created[0]
        notes = await self.find_credit_notes(head.id, head.party)
        if not notes:
            raise ProtocolError(self.system, operation, "the credit wizard answered no credit note")
        return notes[0][0]

    async def _end_wizard(self, session: int, active: dict[str, Any]) -> None:
        """Delete a wizard session (best effort: an abandoned session is harmless)."""
        try:
            await self.wizard(CREDIT_WIZARD, "delete", session, operation="close credit wizard", context=active)
        except ConnectorError as exc:
            log.info("erp: credit wizard session %s not closed: %s", session, exc.message)

    async def credit_and_repost(self, invoice_id: int, billing_invoice_id: str, party_id: int, currency_code: str,
                                invoice_date: date | None,
                                lines: Sequence[tuple[str, Decimal | int | float, Decimal, str]], *,
                                line_taxes: LineTaxes = None, expected: InvoiceTotals | None = None,
                                ) -> tuple[int | None, int]:
        """Replace posted customer invoice ``invoice_id`` (reference ``billing_invoice_id``):
        credit it with refund (:meth:`credit_invoice`, dated ``invoice_date``; a *paid* one, which
        Tryton does not refund, with a credit note without refund and its reference moved off it:
        :meth:`_credit_paid`), then create and post a corrected copy from ``lines`` in
        ``currency_code`` for ``party_id``, with the billing invoice id as its reference
        (:meth:`ensure_invoice_posted`). Answers (credit note id, corrected copy id).

        Idempotent end to end: each step looks up first (the credit note by its origin, the copy
        by reference: the credited invoice is cancelled, so the live invoice carrying the
        reference is the copy) and again when an answer is lost; a re-run after a crash between
        the steps only posts the copy. Refused before anything is written when the invoice does
        not carry ``billing_invoice_id`` or another live invoice carries it too (a duplicate)."""
        operation = "credit and repost"
        head = await self._invoice_head(invoice_id, operation)
        reference = _code(head.reference) or ""
        moved = reference.startswith(credited_reference_prefix(billing_invoice_id))
        if reference != billing_invoice_id and not moved:
            raise RemoteValidationError(self.system, operation,
                                        f"invoice {head.number or invoice_id} carries reference {head.reference!r}, "
                                        f"not {billing_invoice_id!r}")
        if head.state in ("posted", "paid") and not moved:
            others = [i for i in await self._ids(INVOICE, [["reference", "=", billing_invoice_id], ["type", "=", "out"],
                                                           ["state", "!=", "cancelled"]]) if i != invoice_id]
            if others:
                raise RemoteValidationError(self.system, operation,
                                            f"invoice {others[0]} carries {billing_invoice_id} too: resolve the "
                                            "duplicate before crediting")
        if head.state == "paid" or moved:
            credit_note: int | None = await self._credit_paid(head, invoice_date, billing_invoice_id, moved)
        else:
            credit_note = await self._credit(head, invoice_date, "credit invoice")
        corrected = await self.ensure_invoice_posted(billing_invoice_id, party_id, currency_code, invoice_date, lines,
                                                     line_taxes=line_taxes, expected=expected)
        if corrected == invoice_id:  # unreachable: a credited invoice is cancelled, never live
            raise RemoteValidationError(self.system, operation, f"invoice {invoice_id} is still live after its credit")
        return credit_note, corrected
