"""The Tryton connector's writes (the F5 actions) and the single-record reads they need, on
top of :class:`~services.io.connectors.tryton_session.TrytonSession`.

Writes: :meth:`TrytonConnector.ensure_party`,
:meth:`TrytonConnector.ensure_invoice_posted` (idempotent: both look up by code / reference
first, and again when a create's answer is lost; with billing's taxes per line and totals, the
draft is compared with billing to the minor unit before it is posted), :meth:`TrytonConnector.acknowledge_warning`,
:meth:`TrytonConnector.get_invoice`, :meth:`TrytonConnector.get_party`,
:meth:`TrytonConnector.write_party`, :meth:`TrytonConnector.cancel_invoice` (draft only, idempotent),
:meth:`TrytonConnector.replace_draft_invoice_lines` (draft only: a posted invoice is never
edited in place), :meth:`TrytonConnector.post_draft_invoice` and
:meth:`TrytonConnector.delete_draft_and_repost` (a draft copy left by a failed posting: posted,
or deleted and made again; idempotent), :meth:`TrytonConnector.get_subscription` and
:meth:`TrytonConnector.write_subscription_terms` (absolute values: repeatable). The credits are
in services/io/connectors/tryton_credits.py.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import date
from decimal import Decimal
from typing import Any

from services.core.domain import Customer, Invoice, Subscription
from services.core.errors import (
    CircuitOpenError,
    ConnectorError,
    NotFoundError,
    ProtocolError,
    RemoteValidationError,
    RemoteWarning,
    UnavailableError,
)
from services.io.config import SystemConnection
from services.io.connectors.base import Clock, gather_or_cancel, utc_now
from services.io.connectors.tryton_payloads import (
    ADDRESS,
    CONTACT,
    IDENTIFIER,
    INVOICE,
    PARTY,
    PRODUCT,
    SERVICE,
    STAMPS,
    SUB_LINE,
    SUBSCRIPTION,
    _code,
    _InvoiceHead,
    _State,
    _StateParty,
    map_invoice,
    map_party,
    map_subscription,
)
from services.io.connectors.tryton_session import BOTH_ACTIVE, TrytonSession
from services.io.http import ResilientClient

log = logging.getLogger(__name__)

#: what ``account.invoice.on_change(["type", "party"])`` fills in that ``create`` needs
INVOICE_ONCHANGE_KEEP = ("journal", "account", "payment_term", "invoice_address")
LINE_ONCHANGE_KEEP = ("unit", "account")
#: Tryton's "Credit" wizard (``account.invoice.credit``): the RPC route to ``Invoice.credit``
CREDIT_WIZARD = "account.invoice.credit"
#: the name suffix of Tryton's warning that an invoice's lines do not carry their products' default
#: taxes (``<hash>.invoice_taxes``)
TAXES_WARNING = ".invoice_taxes"
#: the description suffix of the manual invoice tax that keeps billing's rounding
ROUNDING_AS_BILLED = " (rounding as billed)"
#: an invoice's (untaxed, tax, total), as billing states them
InvoiceTotals = tuple[Decimal, Decimal, Decimal]
#: each line's ERP tax ids (``None``: the taxes the ERP proposes for the party and product)
LineTaxes = Sequence[Sequence[int]] | None


def _amount(value: Any) -> Decimal | None:
    """A read money value (trytond answers a Decimal; ``None`` when absent)."""
    if isinstance(value, Decimal):
        return value
    if isinstance(value, int | str) and not isinstance(value, bool):
        try:
            return Decimal(value)
        except ArithmeticError:
            return None
    return None


def credited_reference_prefix(billing_invoice_id: str) -> str:
    """How a paid invoice credited without refund is re-referenced (``credited: in_X by
    INV-000123``): it no longer carries the billing id (the corrected copy does), never reads as a
    billing invoice id (no ``in_`` prefix: not an orphan), and says which credit note credits it."""
    return f"credited: {billing_invoice_id} by "


def _many2many_ids(value: Any) -> list[int]:
    """Ids from an on_change answer for a many2many: ``[1, 2]`` or trytond's
    ``{"add": [[index, {"id": 1, ...}], ...], ...}``."""
    if isinstance(value, list):
        return [v for v in value if isinstance(v, int) and not isinstance(v, bool) and v >= 0]
    if isinstance(value, dict):
        out: list[int] = []
        for item in value.get("add") or []:
            target = item[1] if isinstance(item, list | tuple) and len(item) == 2 else item
            rid = target.get("id") if isinstance(target, dict) else target
            if isinstance(rid, int) and not isinstance(rid, bool) and rid >= 0:
                out.append(rid)
        return out
    return []


def _action_res_ids(answer: Any) -> list[int]:
    """The record ids a wizard's answer opens: ``{"actions": [[action, {"res_id": [ids]}]]}``."""
    out: list[int] = []
    actions = answer.get("actions") if isinstance(answer, dict) else None
    for item in actions if isinstance(actions, list) else []:
        data = item[1] if isinstance(item, list) and len(item) == 2 else None
        ids = data.get("res_id") if isinstance(data, dict) else None
        for rid in ids if isinstance(ids, list) else [ids]:
            if isinstance(rid, int) and not isinstance(rid, bool):
                out.append(rid)
    return out


class TrytonWrites(TrytonSession):
    """The writes half of :class:`~services.io.connectors.tryton.TrytonConnector`: parties,
    customer invoices (post, cancel, credit, correct) and subscription terms."""

    def __init__(self, conn: SystemConnection, client: ResilientClient, clock: Clock = utc_now) -> None:
        super().__init__(conn, client, clock)
        self._currency_ids: dict[str, int] = {}
        self._product_cache: dict[str, int] = {}

    async def _create_one(self, model: str, values: dict[str, Any],
                          recover: Callable[[], Awaitable[int | None]]) -> int:
        """``create`` one record; when the answer is lost (the write may have committed),
        ``recover()`` looks the record up before giving up."""
        operation = f"create {model}"
        try:
            created = await self.call(model, "create", [values], operation=operation)
        except UnavailableError as exc:
            if isinstance(exc, CircuitOpenError):
                raise
            log.warning("erp: %s: answer lost (%s); looking the record up", operation, exc.message)
            try:
                found = await recover()
            except ConnectorError:
                raise exc from None
            if found is None:
                raise
            return found
        if (not isinstance(created, list) or len(created) != 1 or not isinstance(created[0], int)
                or isinstance(created[0], bool)):
            raise ProtocolError(self.system, operation, "create did not answer one id")
        return created[0]

    async def find_party(self, customer_id: str) -> int | None:
        """The party carrying ``customer_id`` as its code (active or not)."""
        found = await self._ids(PARTY, [["code", "=", customer_id], BOTH_ACTIVE], limit=1)
        return found[0] if found else None

    async def ensure_party(self, customer_id: str, name: str, tax_id: str | None = None,
                           country_code: str | None = None, email: str | None = None, *,
                           tax_type: str | None = None) -> int:
        """The id of the party coded ``customer_id``, created (with its identifier, address and
        e-mail) when none exists. Idempotent, also when a create's answer was lost."""
        existing = await self.find_party(customer_id)
        if existing is not None:
            return existing
        values: dict[str, Any] = {"name": name, "code": customer_id}
        if tax_id:
            values["identifiers"] = [["create", [{"type": tax_type, "code": tax_id}]]]
        if country_code:
            countries = await self._ids("country.country", [["code", "=", country_code.upper()]], limit=1)
            if not countries:
                raise RemoteValidationError(self.system, "create party",
                                            f"the ERP has no country with code {country_code!r}")
            values["addresses"] = [["create", [{"country": countries[0]}]]]
        else:  # an invoice needs an address: create one even when the country is unknown
            values["addresses"] = [["create", [{}]]]
        if email:
            values["contact_mechanisms"] = [["create", [{"type": "email", "value": email}]]]
        return await self._create_one(PARTY, values, lambda: self.find_party(customer_id))

    async def get_party(self, party_id: int) -> Customer:
        parties = await self.read_ids(PARTY, [party_id], [BOTH_ACTIVE])
        party = parties.records.get(party_id)
        if party is None:
            raise NotFoundError(self.system, "read party", f"party {party_id} does not exist")
        ident, addr, contacts = await gather_or_cancel(
            self.read_ids(IDENTIFIER, [party_id], field="party"), self.read_ids(ADDRESS, [party_id], field="party"),
            self.read_ids(CONTACT, [party_id], field="party"))
        return map_party(party, ident.records, addr.records, contacts.records)

    async def write_party(self, party_id: int, values: dict[str, Any]) -> Customer:
        """Write ``values`` on the party (trytond field names; x2many actions allowed) and
        answer the party as read back."""
        await self.call(PARTY, "write", [party_id], dict(values), operation="write party")
        return await self.get_party(party_id)

    async def find_invoice(self, billing_invoice_id: str) -> tuple[int, str] | None:
        """(id, state) of the first live (not cancelled) customer invoice with this reference."""
        rows = await self.search_read_all(INVOICE, [["reference", "=", billing_invoice_id],
                                                    ["type", "=", "out"], ["state", "!=", "cancelled"]],
                                          fields=["state"], schema=_State, phase="invoice lookup")
        if not rows.records:
            return None
        first = min(rows.records)
        return first, rows.records[first].state

    async def _invoice_state(self, invoice_id: int) -> str | None:
        rows = await self.search_read_all(INVOICE, [["id", "=", invoice_id]], fields=["state"], schema=_State,
                                          phase="invoice lookup")
        found = rows.records.get(invoice_id)
        return None if found is None else str(found.state)

    async def _currency_id(self, code: str) -> int:
        code = code.upper()
        if code not in self._currency_ids:
            found = await self._ids("currency.currency", [["code", "=", code]], limit=1)
            if not found:
                raise RemoteValidationError(self.system, "create invoice", f"the ERP has no currency {code}")
            self._currency_ids[code] = found[0]
        return self._currency_ids[code]

    async def _on_change(self, model: str, values: dict[str, Any], fieldnames: list[str]) -> dict[str, Any]:
        operation = f"on_change {model}"
        answer = await self.call(model, "on_change", values, fieldnames, operation=operation, safe=True)
        if isinstance(answer, list) and len(answer) == 1:
            answer = answer[0]
        if not isinstance(answer, dict):
            raise ProtocolError(self.system, operation, "on_change did not answer an object of values")
        return answer

    async def _product_ids(self, codes: Iterable[str], operation: str) -> dict[str, int]:
        """Product ids by code (cached: a code names the same product for the session)."""
        wanted = sorted(set(codes))
        todo = [c for c in wanted if c not in self._product_cache]
        if todo:
            found = await self.search_read_all(PRODUCT, [["code", "in", todo], BOTH_ACTIVE],
                                               fields=["code", "name", "active", *STAMPS], phase="products")
            for rec in sorted(found.records.values(), key=lambda r: r.id):
                if rec.code:
                    self._product_cache.setdefault(rec.code, rec.id)
        products = {c: self._product_cache[c] for c in wanted if c in self._product_cache}
        unknown = [c for c in wanted if c not in products]
        if unknown:
            raise RemoteValidationError(self.system, operation,
                                        f"the ERP has no product with code {', '.join(unknown)}")
        return products

    async def _line_values(self, party_id: int, currency: int, company: int,
                           lines: Sequence[tuple[str, Decimal | int | float, Decimal, str]],
                           products: dict[str, int], line_taxes: LineTaxes = None) -> list[dict[str, Any]]:
        """``account.invoice.line`` values for ``lines`` (product code, quantity, unit price,
        description), completed by the ERP's on_change (unit, account, taxes). ``line_taxes``:
        each line's own ERP taxes instead of those the ERP proposes (billing's, mapped)."""
        per_product: dict[int, dict[str, Any]] = {}
        created_lines: list[dict[str, Any]] = []
        if line_taxes is not None and len(line_taxes) != len(lines):
            raise RemoteValidationError(self.system, "create invoice", "each line needs its taxes")
        for index, (code, quantity, unit_price, description) in enumerate(lines):
            product = products[code]
            if product not in per_product:
                per_product[product] = await self._on_change(
                    "account.invoice.line",
                    {"product": product, "type": "line", "invoice_type": "out", "party": party_id,
                     "currency": currency, "company": company, "quantity": float(quantity)}, ["product"])
            line_changes = per_product[product]
            # a real Tryton requires each line's currency and company to be the invoice's
            line: dict[str, Any] = {"type": "line", "product": product, "description": description,
                                    "quantity": float(quantity), "unit_price": Decimal(unit_price),
                                    "currency": currency, "company": company}
            for key in LINE_ONCHANGE_KEEP:
                if isinstance(line_changes.get(key), int) and not isinstance(line_changes.get(key), bool):
                    line[key] = line_changes[key]
            taxes = (_many2many_ids(line_changes.get("taxes")) if line_taxes is None
                     else [int(t) for t in line_taxes[index]])
            if taxes:
                line["taxes"] = [["add", taxes]]
            created_lines.append(line)
        return created_lines

    async def _create_invoice(self, billing_invoice_id: str, party_id: int, currency_code: str,
                              invoice_date: date | None,
                              lines: Sequence[tuple[str, Decimal | int | float, Decimal, str]],
                              line_taxes: LineTaxes = None) -> int:
        await self._ensure_session()
        company = self.company
        currency = await self._currency_id(currency_code)
        products = await self._product_ids((line[0] for line in lines), "create invoice")
        header: dict[str, Any] = {"type": "out", "party": party_id, "company": company, "currency": currency}
        if invoice_date is not None:
            header["invoice_date"] = invoice_date
        changes = await self._on_change(INVOICE, dict(header), ["type", "party"])
        values: dict[str, Any] = {**header, "reference": billing_invoice_id}
        for key in INVOICE_ONCHANGE_KEEP:
            if isinstance(changes.get(key), int) and not isinstance(changes.get(key), bool):
                values[key] = changes[key]
        if "journal" not in values or "account" not in values:
            raise RemoteValidationError(self.system, "create invoice",
                                        f"the ERP proposes no journal or receivable account for party {party_id}")
        created_lines = await self._line_values(party_id, currency, company, lines, products, line_taxes)
        if created_lines:
            values["lines"] = [["create", created_lines]]

        async def recover() -> int | None:
            found = await self.find_invoice(billing_invoice_id)
            return found[0] if found else None

        return await self._create_one(INVOICE, values, recover)

    async def _invoice_button(self, invoice_id: int, button: str, operation: str, done: tuple[str, ...]) -> None:
        """Press an invoice button. When the answer is lost (the connection dropped after the
        server may have committed), the invoice is read again: a state in ``done`` means the
        button took effect, so pressing it is not repeated."""
        try:
            await self.call(INVOICE, button, [invoice_id], operation=operation)
        except UnavailableError as exc:
            if isinstance(exc, CircuitOpenError):
                raise
            try:
                state = await self._invoice_state(invoice_id)
            except ConnectorError:
                raise exc from None
            if state not in done:
                raise

    async def post_invoice(self, invoice_id: int) -> None:
        """Post (number) a draft or validated invoice. A UserWarning surfaces as
        :class:`RemoteWarning`; acknowledge it with :meth:`acknowledge_warning` and post again."""
        await self._invoice_button(invoice_id, "post", "post invoice", ("posted", "paid"))

    async def ensure_invoice_posted(self, billing_invoice_id: str, party_id: int, currency_code: str,
                                    invoice_date: date | None,
                                    lines: Sequence[tuple[str, Decimal | int | float, Decimal, str]], *,
                                    line_taxes: LineTaxes = None, expected: InvoiceTotals | None = None) -> int:
        """The id of the posted customer invoice whose reference is ``billing_invoice_id``:
        found (and posted if still a draft) or created from ``lines`` = (product code,
        quantity, unit price, description) and posted. Idempotent; a warning on posting is
        raised as :class:`RemoteWarning` and leaves a draft that the next call posts.

        ``line_taxes``: each line's ERP taxes (billing's rates, mapped); ``expected``: billing's
        (untaxed, tax, total), which the draft must equal to the minor unit before it is posted
        (:meth:`_settle_totals`: a rounding difference is kept as billed, anything else deletes
        the draft and is refused)."""
        existing = await self.find_invoice(billing_invoice_id)
        if existing is None:
            invoice_id = await self._create_invoice(billing_invoice_id, party_id, currency_code, invoice_date, lines,
                                                    line_taxes)
            state = "draft"
        else:
            invoice_id, state = existing
        if state not in ("posted", "paid"):
            await self._settle_and_post(invoice_id, billing_invoice_id, line_taxes, expected)
        return invoice_id

    async def _settle_and_post(self, invoice_id: int, reference: str, line_taxes: LineTaxes,
                               expected: InvoiceTotals | None) -> None:
        """Post draft ``invoice_id`` (reference ``reference``): its totals checked against
        ``expected`` first (:meth:`_settle_totals`), Tryton's warning that the lines carry other
        taxes than their products' defaults acknowledged when ``line_taxes`` chose them."""
        if expected is not None:
            taxed = sum(1 for ids in line_taxes or () if ids)
            await self._settle_totals(invoice_id, reference, expected, taxed)
        try:
            await self.post_invoice(invoice_id)
        except RemoteWarning as warning:
            # the lines carry billing's taxes, mapped and previewed: Tryton's warning that they
            # are not the product's default taxes (a party without a tax rule) is that choice,
            # acknowledged for this invoice only; any other warning stops the posting
            if line_taxes is None or not warning.warning_name.endswith(TAXES_WARNING):
                raise
            log.info("erp: invoice %s carries billing's taxes: acknowledging %s", invoice_id,
                     warning.warning_name)
            await self.acknowledge_warning(warning.warning_name)
            await self.post_invoice(invoice_id)

    async def _read_totals(self, invoice_id: int, operation: str) -> tuple[InvoiceTotals, list[int]]:
        """The draft's (untaxed, tax, total) as the ERP computes them, and its invoice tax ids."""
        rows = await self.call(INVOICE, "read", [invoice_id], ["untaxed_amount", "tax_amount", "total_amount", "taxes"],
                               operation=operation, safe=True)
        row = rows[0] if isinstance(rows, list) and len(rows) == 1 and isinstance(rows[0], dict) else None
        amounts = [_amount(row.get(k)) for k in ("untaxed_amount", "tax_amount", "total_amount")] if row else []
        if row is None or any(a is None for a in amounts):
            raise ProtocolError(self.system, operation, f"invoice {invoice_id}: no untaxed, tax and total amounts")
        untaxed, tax, total = (a if a is not None else Decimal(0) for a in amounts)
        return (untaxed, tax, total), _many2many_ids(row.get("taxes"))

    async def _settle_totals(self, invoice_id: int, billing_invoice_id: str, expected: InvoiceTotals,
                             taxed_lines: int) -> None:
        """Before posting: the draft's untaxed amount, tax and total must be billing's to the
        minor unit. Billing rounds each line's tax half away from zero, trytond half to even: a
        line whose tax ends in exactly half a minor unit differs by one. Such a difference (at
        most one minor unit per taxed line) is kept as billed, as an accountant does in Tryton: a
        manual invoice tax (base 0, the first computed tax's tax and account, described
        "... (rounding as billed)"), which the ERP keeps on posting and a credit note copies.
        Anything else (another untaxed amount, a larger tax difference, an invoice without
        computed tax) means the mapping or the lines are wrong: the draft is deleted and the
        posting refused (:class:`RemoteValidationError`), so a wrong invoice is never posted.
        Idempotent: once settled, the difference is zero."""
        untaxed, tax, total = await self._settle_rounding(invoice_id, expected, taxed_lines)
        want_untaxed, want_tax, want_total = expected
        if (untaxed, tax, total) != (want_untaxed, want_tax, want_total):
            await self.delete_draft_invoice(invoice_id, billing_invoice_id)
            raise RemoteValidationError(
                self.system, "post invoice",
                f"the ERP computes untaxed {untaxed}, tax {tax}, total {total}; billing says untaxed "
                f"{want_untaxed}, tax {want_tax}, total {want_total}: the draft was deleted and nothing posted "
                "(check the profile's tax_map and the ERP's taxes)")

    async def _settle_rounding(self, invoice_id: int, expected: InvoiceTotals, taxed_lines: int) -> InvoiceTotals:
        """The draft's (untaxed, tax, total) once a half-even rounding difference of at most one
        minor unit per taxed line is kept as billed by a manual invoice tax (:meth:`_settle_totals`)."""
        operation = "check invoice totals"
        want_untaxed, want_tax, want_total = expected
        quantum = Decimal(1).scaleb(int(want_total.as_tuple().exponent))
        (untaxed, tax, total), tax_ids = await self._read_totals(invoice_id, operation)
        difference = want_tax - tax
        if untaxed == want_untaxed and difference and abs(difference) <= quantum * taxed_lines and tax_ids:
            records = await self.call("account.invoice.tax", "read", tax_ids,
                                      ["tax", "account", "description", "manual"], operation=operation, safe=True)
            computed = sorted((r for r in records if isinstance(r, dict) and not r.get("manual")
                               and isinstance(r.get("tax"), int) and isinstance(r.get("account"), int)),
                              key=lambda r: int(r["id"]))
            if computed:
                first = computed[0]
                await self._create_one("account.invoice.tax", {
                    "invoice": invoice_id, "description": f"{first.get('description') or ''}{ROUNDING_AS_BILLED}",
                    "base": Decimal(0).quantize(quantum), "amount": difference, "manual": True,
                    "tax": first["tax"], "account": first["account"]}, self._no_recovery)
                (untaxed, tax, total), _ = await self._read_totals(invoice_id, operation)
        return untaxed, tax, total

    async def acknowledge_warning(self, name: str) -> None:
        """Tell the ERP the current user accepts warning ``name`` once (``res.user.warning``)."""
        await self._ensure_session()
        await self._create_one("res.user.warning", {"user": self.uid, "name": name, "always": False},
                               self._no_recovery)

    @staticmethod
    async def _no_recovery() -> int | None:
        return None

    async def get_invoice(self, invoice_id: int) -> Invoice:
        rows = await self.read_ids(INVOICE, [invoice_id])
        inv = rows.records.get(invoice_id)
        if inv is None:
            raise NotFoundError(self.system, "read invoice", f"invoice {invoice_id} does not exist")
        return map_invoice(inv)

    async def invoice_state(self, invoice_id: int) -> str | None:
        """The invoice's state (``None`` when it does not exist)."""
        return await self._invoice_state(invoice_id)

    async def cancel_invoice(self, invoice_id: int) -> None:
        """Cancel a draft or validated invoice (the ``cancel`` button). Idempotent: an
        invoice already cancelled is left as it is. A posted invoice is refused (the ERP
        never cancels a posted invoice in place)."""
        state = await self._invoice_state(invoice_id)
        if state is None:
            raise NotFoundError(self.system, "cancel invoice", f"invoice {invoice_id} does not exist")
        if state == "cancelled":
            return
        if state in ("posted", "paid"):
            raise RemoteValidationError(self.system, "cancel invoice",
                                        f"invoice {invoice_id} is {state}: a posted invoice is never cancelled in "
                                        "place (credit it instead)")
        await self._invoice_button(invoice_id, "cancel", "cancel invoice", ("cancelled",))

    def _check_copy(self, head: _InvoiceHead, billing_invoice_id: str, operation: str) -> None:
        """Refuse (:class:`RemoteValidationError`) an invoice that is not the customer invoice
        carrying ``billing_invoice_id``."""
        name = head.number or f"{head.id} [{head.reference or ''}]"
        if head.type != "out":
            raise RemoteValidationError(self.system, operation, f"invoice {name} is not a customer invoice")
        if _code(head.reference) != billing_invoice_id:
            raise RemoteValidationError(self.system, operation, f"invoice {name} carries reference "
                                        f"{head.reference!r}, not {billing_invoice_id!r}")

    async def post_draft_invoice(self, invoice_id: int, billing_invoice_id: str, invoice_date: date | None) -> int:
        """Post draft (or validated) customer invoice ``invoice_id``, the ERP's copy of
        ``billing_invoice_id``, dated ``invoice_date`` first when given (a draft may be edited; the
        ERP's strict invoice sequence refuses a date before its latest posted invoice). Answers
        the invoice id. Idempotent: an invoice already posted or paid is left as it is (the
        answer of an earlier post was lost). Refused (:class:`RemoteValidationError`): another
        reference, a cancelled invoice. A warning on posting is :class:`RemoteWarning`
        (nothing posted; acknowledge it and call again)."""
        operation = "post draft invoice"
        head = await self._invoice_head(invoice_id, operation)
        self._check_copy(head, billing_invoice_id, operation)
        if head.state in ("posted", "paid"):
            return invoice_id
        if head.state not in ("draft", "validated"):
            raise RemoteValidationError(self.system, operation,
                                        f"invoice {invoice_id} is {head.state}: there is no draft to post")
        if invoice_date is not None:
            await self.call(INVOICE, "write", [invoice_id], {"invoice_date": invoice_date}, operation=operation)
        await self.post_invoice(invoice_id)
        return invoice_id

    async def delete_draft_invoice(self, invoice_id: int, billing_invoice_id: str) -> bool:
        """Delete draft (or validated: put back to draft first) customer invoice ``invoice_id``,
        the ERP's copy of ``billing_invoice_id``. Tryton deletes only a draft (or cancelled)
        invoice that was never numbered. Answers whether it was deleted now; an invoice already
        gone answers ``False`` (idempotent: a repeat, or a lost answer). Refused
        (:class:`RemoteValidationError`): another reference, a posted, paid or numbered invoice."""
        operation = "delete draft invoice"
        try:
            head = await self._invoice_head(invoice_id, operation)
        except NotFoundError:
            return False
        self._check_copy(head, billing_invoice_id, operation)
        if head.state not in ("draft", "validated") or head.number:
            raise RemoteValidationError(self.system, operation,
                                        f"invoice {head.number or invoice_id} is {head.state}: only a draft that was "
                                        "never numbered is deleted")
        if head.state == "validated":
            await self._invoice_button(invoice_id, "draft", "reset invoice to draft", ("draft",))
        try:
            await self.call(INVOICE, "delete", [invoice_id], operation=operation)
        except UnavailableError as exc:
            if isinstance(exc, CircuitOpenError):
                raise
            try:
                state = await self._invoice_state(invoice_id)
            except ConnectorError:
                raise exc from None
            if state is not None:
                raise
        return True

    async def delete_draft_and_repost(self, invoice_id: int, billing_invoice_id: str, party_id: int,
                                      currency_code: str, invoice_date: date | None,
                                      lines: Sequence[tuple[str, Decimal | int | float, Decimal, str]], *,
                                      line_taxes: LineTaxes = None, expected: InvoiceTotals | None = None) -> int:
        """Replace the ERP's draft copy ``invoice_id`` of ``billing_invoice_id``: delete it
        (:meth:`delete_draft_invoice`), then create and post the invoice from ``lines``
        (:meth:`ensure_invoice_posted`). Answers the posted invoice's id. Idempotent end to end:
        a draft already deleted is not looked for again, and the posted copy is looked up by
        reference before it is created. When the draft was posted in the meantime (by someone
        in the ERP), it is left as it is and answered: verify judges it."""
        head_state = await self._invoice_state(invoice_id)
        if head_state in ("posted", "paid"):
            head = await self._invoice_head(invoice_id, "repost invoice")
            self._check_copy(head, billing_invoice_id, "repost invoice")
            return invoice_id
        if head_state is not None and head_state != "cancelled":
            await self.delete_draft_invoice(invoice_id, billing_invoice_id)
        return await self.ensure_invoice_posted(billing_invoice_id, party_id, currency_code, invoice_date, lines,
                                                line_taxes=line_taxes, expected=expected)

    async def _invoice_head(self, invoice_id: int, operation: str) -> _InvoiceHead:
        rows = await self.search_read_all(INVOICE, [["id", "=", invoice_id]],
                                          fields=["state", "party", "type", "number", "reference"],
                                          schema=_InvoiceHead, phase="invoice lookup")
        found = rows.records.get(invoice_id)
        if found is None:
            raise NotFoundError(self.system, operation, f"invoice {invoice_id} does not exist")
        assert isinstance(found, _InvoiceHead)
        return found

    async def replace_draft_invoice_lines(self, invoice_id: int, currency_code: str,
                                          lines: Sequence[tuple[str, Decimal | int | float, Decimal, str]], *,
                                          line_taxes: LineTaxes = None, expected: InvoiceTotals | None = None,
                                          ) -> None:
        """Set a draft (or validated) invoice's currency and replace its lines with ``lines``
        (product code, quantity, unit price, description). A posted invoice is never edited
        in place: refused with :class:`RemoteValidationError`. Repeating the call gives the
        same invoice (the lines are replaced, not added).

        ``line_taxes``: each line's ERP taxes (billing's rates, mapped) instead of those the ERP
        proposes; ``expected``: billing's (untaxed, tax, total). With ``expected`` the draft's
        manual invoice taxes are replaced too (billing owns the whole content), and its totals must
        equal billing's to the minor unit before the correction is kept (a half-even rounding
        difference is kept as billed, as for a posting: :meth:`_settle_totals`); anything else puts
        the draft's previous currency, lines and manual taxes back and is refused."""
        operation = "correct invoice"
        rows = await self.search_read_all(INVOICE, [["id", "=", invoice_id]], fields=["state", "party"],
                                          schema=_StateParty, phase="invoice lookup")
        found = rows.records.get(invoice_id)
        if found is None:
            raise NotFoundError(self.system, operation, f"invoice {invoice_id} does not exist")
        if found.state not in ("draft", "validated"):
            raise RemoteValidationError(self.system, operation,
                                        f"invoice {invoice_id} is {found.state}: a posted invoice is never edited "
                                        "in place")
        await self._ensure_session()
        company = self.company
        currency = await self._currency_id(currency_code)
        products = await self._product_ids((line[0] for line in lines), operation)
        new_lines = await self._line_values(found.party, currency, company, lines, products, line_taxes)
        old = await self._ids("account.invoice.line", [["invoice", "=", invoice_id]])
        before = await self._draft_content(invoice_id, old, operation) if expected is not None else None
        actions: list[Any] = []
        if old:
            actions.append(["delete", old])
        if new_lines:
            actions.append(["create", new_lines])
        values: dict[str, Any] = {"currency": currency, "lines": actions}
        if before is not None and before["manual"]:
            values["taxes"] = [["delete", [int(t["id"]) for t in before["manual"]]]]
        await self.call(INVOICE, "write", [invoice_id], values, operation=operation)
        if expected is None or before is None:
            return
        taxed = sum(1 for ids in line_taxes or () if ids)
        got = await self._settle_rounding(invoice_id, expected, taxed)
        if got == expected:
            return
        await self._restore_draft(invoice_id, before, operation)
        raise RemoteValidationError(
            self.system, operation,
            f"the ERP computes untaxed {got[0]}, tax {got[1]}, total {got[2]}; billing says untaxed {expected[0]}, "
            f"tax {expected[1]}, total {expected[2]}: the draft's previous lines were put back and nothing was kept "
            "(check the profile's tax_map and the ERP's taxes)")

    async def _draft_content(self, invoice_id: int, line_ids: list[int], operation: str) -> dict[str, Any]:
        """What a correction replaces on draft ``invoice_id``, to put back if it is not kept: its
        currency, its lines' values (a credit note's with the line each credits, ``origin``) and
        its manual invoice taxes."""
        head = await self.call(INVOICE, "read", [invoice_id], ["currency", "taxes"], operation=operation, safe=True)
        row = head[0] if isinstance(head, list) and len(head) == 1 and isinstance(head[0], dict) else None
        if row is None or not isinstance(row.get("currency"), int):
            raise ProtocolError(self.system, operation, f"invoice {invoice_id}: no currency")
        fields = ["type", "product", "description", "quantity", "unit_price", "unit", "account", "taxes", "origin"]
        lines = (await self.call("account.invoice.line", "read", line_ids, fields, operation=operation, safe=True)
                 if line_ids else [])
        tax_ids = _many2many_ids(row.get("taxes"))
        taxes = (await self.call("account.invoice.tax", "read", tax_ids,
                                 ["description", "base", "amount", "tax", "account", "manual"],
                                 operation=operation, safe=True) if tax_ids else [])
        if not isinstance(lines, list) or not isinstance(taxes, list):
            raise ProtocolError(self.system, operation, f"invoice {invoice_id}: its lines or taxes were not read")
        manual = [t for t in taxes if isinstance(t, dict) and t.get("manual")]
        return {"currency": row["currency"], "lines": [ln for ln in lines if isinstance(ln, dict)], "manual": manual}

    async def _restore_draft(self, invoice_id: int, before: dict[str, Any], operation: str) -> None:
        """Put back the currency, lines and manual taxes :meth:`_draft_content` read."""
        current = await self._ids("account.invoice.line", [["invoice", "=", invoice_id]])
        company = self.company
        restored: list[dict[str, Any]] = []
        for ln in before["lines"]:
            value: dict[str, Any] = {"currency": before["currency"], "company": company}
            for key in ("type", "product", "description", "unit", "account", "origin"):
                if ln.get(key) is not None:
                    value[key] = ln[key]
            if isinstance(ln.get("quantity"), int | float) and not isinstance(ln.get("quantity"), bool):
                value["quantity"] = float(ln["quantity"])  # a float field, written back as read
            if _amount(ln.get("unit_price")) is not None:
                value["unit_price"] = _amount(ln["unit_price"])
            taxes = _many2many_ids(ln.get("taxes"))
            if taxes:
                value["taxes"] = [["add", taxes]]
            restored.append(value)
        actions: list[Any] = []
        if current:
            actions.append(["delete", current])
        if restored:
            actions.append(["create", restored])
        values: dict[str, Any] = {"currency": before["currency"], "lines": actions}
        invoice_taxes = await self.call(INVOICE, "read", [invoice_id], ["taxes"], operation=operation, safe=True)
        now_taxes = (_many2many_ids(invoice_taxes[0].get("taxes")) if isinstance(invoice_taxes, list)
                     and len(invoice_taxes) == 1 and isinstance(invoice_taxes[0], dict) else [])
        manual_now = ([int(t["id"]) for t in await self.call("account.invoice.tax", "read", now_taxes, ["manual"],
                                                              operation=operation, safe=True)
                       if isinstance(t, dict) and t.get("manual")] if now_taxes else [])
        tax_actions: list[Any] = []
        if manual_now:
            tax_actions.append(["delete", manual_now])
        if before["manual"]:
            tax_actions.append(["create", [{k: t[k] for k in ("description", "base", "amount", "tax", "account")
                                            if t.get(k) is not None} | {"manual": True}
                                           for t in before["manual"]]])
        if tax_actions:
            values["taxes"] = tax_actions
        await self.call(INVOICE, "write", [invoice_id], values, operation=operation)

    async def get_subscription(self, subscription_id: int) -> Subscription:
        subs = await self.read_ids(SUBSCRIPTION, [subscription_id])
        sub = subs.records.get(subscription_id)
        if sub is None:
            raise NotFoundError(self.system, "read subscription", f"subscription {subscription_id} does not exist")
        lines = await self.read_ids(SUB_LINE, sub.lines)
        services = await self.read_ids(SERVICE, {line.service for line in lines.records.values()})
        return map_subscription(sub, lines.records, services.records)

    async def write_subscription_terms(self, subscription_id: int, *, plan_key: str | None = None,
                                       quantity: int | None = None,
                                       next_invoice_date: date | None = None) -> Subscription:
        """Write billing's terms on the ERP subscription: the first line's service (the
        subscription service of the product coded ``plan_key``) and quantity, and the next
        invoice date. Writes are absolute values, so repeating the call is harmless. Answers
        the subscription as read back."""
        operation = "write subscription"
        subs = await self.read_ids(SUBSCRIPTION, [subscription_id])
        sub = subs.records.get(subscription_id)
        if sub is None:
            raise NotFoundError(self.system, operation, f"subscription {subscription_id} does not exist")
        line_values: dict[str, Any] = {}
        if plan_key is not None:
            services = await self.search_read_all(SERVICE, [["product.code", "=", plan_key]], phase="services")
            if not services.records:
                raise RemoteValidationError(self.system, operation,
                                            f"the ERP has no subscription service for product {plan_key!r}")
            line_values["service"] = min(services.records)
        if quantity is not None:
            line_values["quantity"] = float(quantity)
        if line_values:
            if not sub.lines:
                raise RemoteValidationError(self.system, operation,
                                            f"subscription {subscription_id} has no line to write")
            await self.call(SUB_LINE, "write", [sub.lines[0]], line_values, operation=operation)
        if next_invoice_date is not None:
            await self.call(SUBSCRIPTION, "write", [subscription_id], {"next_invoice_date": next_invoice_date},
                            operation=operation)
        return await self.get_subscription(subscription_id)
