"""The Tryton connector's credits, on top of its writes
(:class:`~services.io.connectors.tryton_writes.TrytonWrites`):
:meth:`TrytonConnector.credit_invoice` (credit with refund through Tryton's *Credit* wizard;
idempotent: a credit note is looked up by its origin first and again when the answer is lost)
and :meth:`TrytonConnector.credit_and_repost` (credit — a paid invoice without refund, its
reference moved off it — then create and post a corrected copy carrying the reference;
idempotent end to end) and :meth:`TrytonConnector.ensure_credit_note_posted` (a billing credit
note posted as the ERP credit note of the invoice it credits, in the shape of Tryton's credit:
lines crediting the invoice's lines by ``origin``, negated quantities, billing's taxes mapped,
the billing credit note id as reference; checked against billing's totals to the minor unit
before posting; idempotent: looked up by that reference first).
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
    RemoteWarning,
    UnavailableError,
)
from services.io.connectors.tryton_payloads import INVOICE, INVOICE_LINE, _code, _State
from services.io.connectors.tryton_writes import (
    CREDIT_WIZARD,
    TAXES_WARNING,
    InvoiceTotals,
    LineTaxes,
    TrytonWrites,
    _action_res_ids,
    _InvoiceHead,
    credited_reference_prefix,
)

log = logging.getLogger(__name__)

#: a credit note line: (the credited line's position among the invoice's lines, that line's
#: description as billing knows it, the quantity credited (positive), unit price, description)
CreditLine = tuple[int, str, Decimal, Decimal, str]
#: what the credit note copies of the credited invoice (as Tryton's ``Invoice._credit`` does):
#: its references to other records, and its texts
CREDIT_HEADER = ("party", "company", "currency", "journal", "account", "payment_term", "invoice_address",
                 "tax_identifier", "party_tax_identifier")
CREDIT_HEADER_TEXT = ("description", "comment")
#: what each credit note line copies of the line it credits
CREDIT_LINE_COPY = ("product", "account", "unit")


def _many2one(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


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
        finish it in the ERP). The ERP's warning that the credit note's taxes are not its products'
        defaults is acknowledged (they are the credited invoice's own, copied:
        :meth:`_run_credit_wizard`); any other warning while posting the credit note is raised as
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
            await self._post_copied_taxes(note_id)
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

    async def _post_copied_taxes(self, note_id: int) -> None:
        """Post credit note ``note_id``, which Tryton's credit made: its lines carry the credited
        invoice's own taxes (copied, as posted), so the ERP's warning that they are not the
        products' default taxes (a copy posted with billing's mapped taxes, or with the wrong tax
        being credited) is acknowledged for this credit note; any other warning stops it."""
        try:
            await self.post_invoice(note_id)
        except RemoteWarning as warning:
            if not warning.warning_name.endswith(TAXES_WARNING):
                raise
            log.info("erp: credit note %s copies the credited invoice's taxes: acknowledging %s", note_id,
                     warning.warning_name)
            await self.acknowledge_warning(warning.warning_name)
            await self.post_invoice(note_id)

    async def _run_credit_wizard(self, head: _InvoiceHead, credit_date: date | None, with_refund: bool,
                                 operation: str, took_effect: Callable[[], Awaitable[int | None]]) -> int:
        """Run Tryton's Credit wizard on ``head`` (``with_refund``, dated ``credit_date``) and
        answer the credit note's id; the wizard session is always deleted. When the answer is
        lost (unavailable, not a circuit that is open), ``took_effect()`` says whether the credit
        was made after all (its credit note's id) or not (``None``: the loss is raised).

        With refund, the wizard posts the credit note it creates, whose lines carry the credited
        invoice's own taxes: the ERP's warning that they are not the products' default taxes
        (nothing committed) is acknowledged once and the wizard run again — its name is stable,
        trytond names a record created in the same transaction by its rank in it. Any other
        warning is raised."""
        try:
            return await self._credit_wizard_once(head, credit_date, with_refund, operation, took_effect)
        except RemoteWarning as warning:
            if not with_refund or not warning.warning_name.endswith(TAXES_WARNING):
                raise
            log.info("erp: the credit note of invoice %s copies its taxes: acknowledging %s", head.id,
                     warning.warning_name)
            await self.acknowledge_warning(warning.warning_name)
        return await self._credit_wizard_once(head, credit_date, with_refund, operation, took_effect)

    async def _credit_wizard_once(self, head: _InvoiceHead, credit_date: date | None, with_refund: bool,
                                  operation: str, took_effect: Callable[[], Awaitable[int | None]]) -> int:
        """One run of the Credit wizard (:meth:`_run_credit_wizard`)."""
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

    async def ensure_credit_note_posted(self, reference: str, invoice_id: int, currency_code: str,
                                        credit_date: date | None, lines: Sequence[CreditLine], *,
                                        line_taxes: Sequence[Sequence[int]],
                                        expected: InvoiceTotals | None = None) -> int:
        """The id of the posted ERP credit note whose reference is ``reference`` (a billing
        credit note id): found (posted if still a draft) or created as Tryton's credit makes
        one (``Invoice._credit``: party, company, currency, journal, receivable account, payment
        term, address, tax identifiers, description and comment of customer invoice
        ``invoice_id``; each line crediting a line of it —
        ``origin`` = that line, its product, account and unit, the quantity negated), with
        billing's ``lines`` (each names the credited line by its position among the invoice's
        lines and checks its description), each line's ERP taxes ``line_taxes`` (billing's
        rates, mapped), dated ``credit_date``; then its untaxed amount, tax and total compared
        with ``expected`` (billing's, negated) to the minor unit and posted (:meth:`_settle_and_post`:
        a half-even rounding cent kept as billed, anything else deletes the draft and posts
        nothing). Idempotent: looked up by reference first, and again when the create's answer
        is lost. Refused (:class:`RemoteValidationError`) before anything is written: an invoice
        that is not a posted or paid customer invoice in ``currency_code``, a line it does not
        have or whose description differs."""
        operation = "post credit note"
        if len(line_taxes) != len(lines):
            raise RemoteValidationError(self.system, operation, "each credit note line needs its taxes")
        existing = await self.find_invoice(reference)
        if existing is None:
            note_id = await self._create_credit_note(reference, invoice_id, currency_code, credit_date, lines,
                                                     line_taxes, operation)
            state = "draft"
        else:
            note_id, state = existing
        if state not in ("posted", "paid"):
            await self._settle_and_post(note_id, reference, line_taxes, expected)
        return note_id

    async def _create_credit_note(self, reference: str, invoice_id: int, currency_code: str,
                                  credit_date: date | None, lines: Sequence[CreditLine],
                                  line_taxes: Sequence[Sequence[int]], operation: str) -> int:
        values = await self._credit_note_values(reference, invoice_id, currency_code, credit_date, lines, line_taxes,
                                                operation)

        async def recover() -> int | None:
            found = await self.find_invoice(reference)
            return found[0] if found else None

        return await self._create_one(INVOICE, values, recover)

    async def _credit_note_values(self, reference: str, invoice_id: int, currency_code: str,
                                  credit_date: date | None, lines: Sequence[CreditLine],
                                  line_taxes: Sequence[Sequence[int]], operation: str) -> dict[str, Any]:
        """The ``account.invoice`` values of a credit note of customer invoice ``invoice_id`` as
        Tryton's credit makes one (:meth:`ensure_credit_note_posted`), its lines under ``lines``
        (``[["create", [...]]]``); refused as that method says."""
        await self._ensure_session()
        rows = await self.call(INVOICE, "read", [invoice_id],
                               ["state", "type", "number", "lines", *CREDIT_HEADER, *CREDIT_HEADER_TEXT],
                               operation=operation, safe=True)
        head = rows[0] if isinstance(rows, list) and len(rows) == 1 and isinstance(rows[0], dict) else None
        if head is None:
            raise RemoteValidationError(self.system, operation, f"invoice {invoice_id} does not exist")
        name = head.get("number") or invoice_id
        if head.get("type") != "out" or head.get("state") not in ("posted", "paid"):
            raise RemoteValidationError(self.system, operation,
                                        f"invoice {name} is a {head.get('type')} invoice in state {head.get('state')}: "
                                        "a credit note credits a posted or paid customer invoice")
        currency = await self._currency_id(currency_code)
        if _many2one(head.get("currency")) != currency:
            raise RemoteValidationError(self.system, operation,
                                        f"invoice {name} is not in {currency_code.upper()}: a credit note is in the "
                                        "credited invoice's currency")
        line_ids = [i for i in head.get("lines") or [] if _many2one(i) is not None]
        read = await self.call(INVOICE_LINE, "read", line_ids,
                               ["type", "description", *CREDIT_LINE_COPY], operation=operation, safe=True) \
            if line_ids else []
        by_id = {r["id"]: r for r in read if isinstance(r, dict) and _many2one(r.get("id")) is not None}
        # the invoice's lines in its own order (Tryton's one2many order), section and comment lines left out
        credited = [by_id[i] for i in line_ids if i in by_id and by_id[i].get("type", "line") == "line"]
        company = self.company
        values: dict[str, Any] = {"type": "out", "reference": reference}
        for key in CREDIT_HEADER:
            if _many2one(head.get(key)) is not None:
                values[key] = head[key]
        for key in CREDIT_HEADER_TEXT:
            if isinstance(head.get(key), str) and head[key]:
                values[key] = head[key]
        if credit_date is not None:
            values["invoice_date"] = credit_date
        created: list[dict[str, Any]] = []
        for n, (position, description_was, quantity, unit_price, description) in enumerate(lines, 1):
            if not 0 <= position < len(credited):
                raise RemoteValidationError(self.system, operation,
                                            f"invoice {name} has {len(credited)} line(s); credit note line {n} "
                                            f"credits line {position + 1}: post the credit note by hand")
            line = credited[position]
            if (line.get("description") or "") != description_was:
                raise RemoteValidationError(self.system, operation,
                                            f"line {position + 1} of invoice {name} is {line.get('description')!r}, "
                                            f"billing's is {description_was!r}: post the credit note by hand")
            value: dict[str, Any] = {"type": "line", "description": description, "quantity": float(-quantity),
                                     "unit_price": Decimal(unit_price), "currency": currency,
                                     "company": values.get("company", company),
                                     "origin": f"{INVOICE_LINE},{line['id']}"}
            for key in CREDIT_LINE_COPY:
                if _many2one(line.get(key)) is not None:
                    value[key] = line[key]
            taxes = [int(t) for t in line_taxes[n - 1]]
            if taxes:
                value["taxes"] = [["add", taxes]]
            created.append(value)
        values["lines"] = [["create", created]]
        return values

    async def replace_draft_credit_note_lines(self, note_id: int, invoice_id: int, currency_code: str,
                                              lines: Sequence[CreditLine], *, line_taxes: Sequence[Sequence[int]],
                                              expected: InvoiceTotals) -> None:
        """Correct draft (or validated) ERP credit note ``note_id`` of customer invoice
        ``invoice_id``: its lines replaced by billing's ``lines`` in the shape of Tryton's credit
        (each crediting a line of the invoice by ``origin``, the quantity negated, the ERP taxes
        ``line_taxes``: :meth:`ensure_credit_note_posted`), its manual invoice taxes removed, and
        its untaxed amount, tax and total compared with ``expected`` (billing's, negated) to the
        minor unit before the correction is kept (a half-even rounding difference kept as billed);
        anything else puts its previous lines, currency and manual taxes back and is refused
        (:class:`RemoteValidationError`). A posted credit note is never edited in place (refused).
        Repeating the call gives the same credit note (the lines are replaced, not added)."""
        operation = "correct credit note"
        if len(line_taxes) != len(lines):
            raise RemoteValidationError(self.system, operation, "each credit note line needs its taxes")
        head = await self._invoice_head(note_id, operation)
        if head.type != "out" or head.state not in ("draft", "validated"):
            raise RemoteValidationError(self.system, operation,
                                        f"credit note {head.number or note_id} is {head.state}: a posted credit note "
                                        "is never edited in place")
        values = await self._credit_note_values(head.reference or "", invoice_id, currency_code, None, lines,
                                                line_taxes, operation)
        [[_, new_lines]] = values["lines"]
        old = await self._ids(INVOICE_LINE, [["invoice", "=", note_id]])
        before = await self._draft_content(note_id, old, operation)
        actions: list[Any] = [["delete", old]] if old else []
        actions.append(["create", new_lines])
        write: dict[str, Any] = {"currency": await self._currency_id(currency_code), "lines": actions}
        if before["manual"]:
            write["taxes"] = [["delete", [int(t["id"]) for t in before["manual"]]]]
        await self.call(INVOICE, "write", [note_id], write, operation=operation)
        got = await self._settle_rounding(note_id, expected, sum(1 for ids in line_taxes if ids))
        if got == expected:
            return
        await self._restore_draft(note_id, before, operation)
        raise RemoteValidationError(
            self.system, operation,
            f"the ERP computes untaxed {got[0]}, tax {got[1]}, total {got[2]}; billing says untaxed {expected[0]}, "
            f"tax {expected[1]}, total {expected[2]}: the credit note's previous lines were put back and nothing "
            "was kept (check the profile's tax_map and the ERP's taxes)")
