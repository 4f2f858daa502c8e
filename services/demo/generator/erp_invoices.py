"""Phase 4, the ERP's customer invoices: one per mapped, finalized billing invoice with a
total (posted, paid once the payment synced, cancelled when voided, some finalized within the
invoice grace still draft), cancelled duplicates finance already cleaned up, manual invoices with purchase
order references, planted orphans and migrated legacy invoices; then inserted in creation
order, numbered by invoice date (``INV-000001``...), with their lines: a billing line's copy is
net of its discount and carries the ERP tax of its billing tax rate (``erp_taxes.ErpTaxMap``), so
that the ERP invoice's untaxed, tax and total amounts are the billing invoice's."""

from __future__ import annotations

from decimal import Decimal

from services.demo.generator.dates import _EPOCH, DAY, naive_utc
from services.demo.generator.erp_taxes import ErpTaxMap, store_invoice_taxes
from services.demo.generator.ground_truth import INVOICE_GRACE, STREAM_NEUTRAL_PLANTS
from services.demo.generator.plants import _planted_invoice_specs
from services.demo.generator.state import _erp_base, _ErpInv, _Gen
from services.demo.store import ManifestEntry
from services.demo.tryton.schema import PAYMENT_TERM, RECEIVABLE_ACCOUNT, REVENUE_JOURNAL


def _erp_invoice_specs(g: _Gen) -> list[_ErpInv]:
    A = g.A
    rng = g.rng
    r = g.r
    specs: list[_ErpInv] = []
    recent = A - INVOICE_GRACE  # a draft older than the invoice grace is invoice.not_posted_in_erp
    for inv in g.all_invoices:
        fin = inv.finalized_at
        if fin is None or inv.total <= 0:
            continue
        if inv.customer not in g.erp_party:
            continue
        cu_plant = g.plants.get(inv.customer)
        plant = cu_plant if cu_plant is not None and cu_plant.invoice is inv else None
        if inv.id in g.inflight_post and inv.status != "void":
            # in flight: a draft made right after finalization, not posted yet
            specs.append(_ErpInv(fin + (A - fin) // 2, None, inv, "draft", None))
            continue
        create = fin + g.ri(60, 600)
        if create > A or inv.id in g.inflight_fin:
            continue  # in flight: not in the ERP yet
        state, write = "posted", None
        if inv.status == "paid":
            sync = max(inv.paid_at or fin, create) + g.ri(60, 600)
            if sync <= A and inv.id not in g.inflight_pay:
                state, write = "paid", sync
        elif inv.status == "void":
            state, write = "cancelled", g.clip(max(inv.voided_at or fin, create) + g.ri(60, 600))
        spec = _ErpInv(create, None, inv, state, write)
        spec.was_posted = state == "cancelled"
        # a tax or proration mismatch (chosen last, without the random stream) takes an ordinary
        # copy and the random stream of one: every other record stays as it is
        money_plant = cu_plant is not None and cu_plant.rule in STREAM_NEUTRAL_PLANTS
        if plant is None or money_plant:
            if plant is not None:
                _planted_invoice_specs(g, plant, spec)  # the same copy, changed (tax as revenue, lines left out)
            if (fin >= recent and inv.status != "void" and inv.id not in g.inflight_pay
                    and rng.random() < r.erp_recent_draft):
                spec.state, spec.write = "draft", None
            specs.append(spec)
            if (cu_plant is None or money_plant) and rng.random() < r.erp_cancelled_duplicate:
                dup_t = g.clip(create + g.ri(60, 1800))
                specs.append(_ErpInv(dup_t, None, inv, "cancelled", g.clip(dup_t + g.ri(600, DAY))))
            continue
        specs.extend(_planted_invoice_specs(g, plant, spec))
    return specs


def _orphan_specs(g: _Gen) -> list[_ErpInv]:
    rng = g.rng
    A = g.A
    specs: list[_ErpInv] = []
    legacy_party: int | None = None
    prices = list(g.billing.prices.values())
    for cu in g.custs:
        plant = g.plants.get(cu.c.id)
        orphan = plant is not None and plant.rule == "invoice.orphan_in_erp"
        unplanted = plant is None or plant.rule in STREAM_NEUTRAL_PLANTS  # chosen last: as if none
        manual = unplanted and cu.c.id in g.erp_party and rng.random() < g.r.erp_manual_invoice
        if not (orphan or manual):
            continue
        party_create = g.erp.tables["party.party"][g.erp_party[cu.c.id]]["create_date"]
        lo = int((party_create - _EPOCH).total_seconds())
        create = g.ri(lo, max(lo, A - 7200))
        price = rng.choice([p for p in prices if p.currency == cu.c.currency] or prices)
        spec = _ErpInv(create, cu, None, "posted", None)
        spec.currency = price.currency
        spec.lines = [(price.id, "Services (entered manually)", 1, price.unit_amount)]
        if orphan:
            spec.ref = g.ids.long("in_")
            g.manifest.append(ManifestEntry("invoice.orphan_in_erp", cu.c.id, spec.ref,
                                            "ERP invoice refers to a billing invoice that does not exist"))
        else:
            spec.ref = f"PO-{g.ri(10000, 99999)}"
        specs.append(spec)
    for _ in range(g.legacy_orphans):
        if legacy_party is None:
            legacy_party = g.erp.insert("party.party", _erp_base(g, {
                "name": "Legacy migration (unmatched)", "code": None, "active": True, "identifiers": [],
                "addresses": [], "contact_mechanisms": [], "tax_identifier": None, "email": None},
                g.setup_ts + DAY, None, "Legacy migration (unmatched)"))
        price = rng.choice(prices)
        spec = _ErpInv(g.ri(A - 300 * DAY, A - 7200), None, None, "posted", None)
        spec.currency = price.currency
        spec.lines = [(price.id, "Migrated balance", 1, price.unit_amount)]
        spec.ref = g.ids.long("in_")
        specs.append(spec)
        g.manifest.append(ManifestEntry("invoice.orphan_in_erp", None, spec.ref,
                                        "migrated ERP invoice refers to a billing invoice that does not exist"))
    g.legacy_party = legacy_party
    return specs


def _insert_erp_invoices(g: _Gen, company: int, specs: list[_ErpInv], taxes: ErpTaxMap) -> None:
    erp = g.erp
    prices = g.billing.prices
    specs.sort(key=lambda s: s.create)
    numbered = [s for s in specs if s.state in ("posted", "paid") or s.was_posted]
    numbered.sort(key=lambda s: (_inv_date(s) // DAY, s.create))
    prefix = g.p.company.erp_invoice_prefix
    for n, s in enumerate(numbered, 1):
        s.number = f"{prefix}{n:06d}"
    legacy = g.legacy_party
    for s in specs:
        binv = s.binv
        party: int | None
        if binv is not None:
            party = g.erp_party[binv.customer]
            cid = binv.customer
            desc: str | None = binv.number
        elif s.cust is not None:
            party = g.erp_party[s.cust.c.id]
            cid = s.cust.c.id
            desc = "Manual invoice"
        else:
            party, cid, desc = legacy, "", "Migrated invoice"
        # (price, description, quantity, amount net of discount, the line's ERP taxes)
        raw: list[tuple[str, str, int, int, list[int]]]
        origins: list[str | None] = []
        if s.credits is not None:  # a credit note: each line credits a line of the copy (negated)
            assert binv is not None
            raw = [(binv.lines[i].price, ldesc, -qty, -amount, taxes.taxes_for(rate))
                   for i, ldesc, qty, amount, rate in s.credit]
            origins = [f"account.invoice.line,{s.credits.line_ids[i]}" for i, *_ in s.credit]
            desc = s.credits.number
        elif s.lines is not None and binv is not None and len(s.lines) == len(binv.lines):
            # a planted copy of a billing invoice's lines (other quantities or amounts): each line
            # keeps its billing line's discount and tax
            raw = [(price, ldesc, qty, amount - bl.discount_amount, taxes.taxes_for(bl.tax_rate))
                   for (price, ldesc, qty, amount), bl in zip(s.lines, binv.lines, strict=True)]
        elif s.lines is not None:
            raw = [(price, ldesc, qty, amount, []) for price, ldesc, qty, amount in s.lines]
        else:
            assert binv is not None
            # a planted copy may lack some of the lines (the proration lines of a mid-period change)
            raw = [(ln.price, ln.description, ln.quantity, ln.amount - ln.discount_amount,
                    taxes.taxes_for(ln.tax_rate)) for i, ln in enumerate(binv.lines) if i not in s.dropped]
            if s.tax_shift:  # a planted copy that books part of the tax as revenue (same total)
                head = raw[0]
                raw[0] = (head[0], head[1], head[2], head[3] + s.tax_shift, head[4])
        total = 0
        for _, _, _, amount, _ in raw:
            total += amount
        # the amounts are billing's minor units: in major units with the billing currency's own
        # exponent (a copy planted in another currency keeps the same numbers)
        cur = binv.currency if binv is not None else s.currency
        zero = g.dec(0, cur)
        tot = g.dec(total, cur)
        lines: list[int] = []
        create_dt = naive_utc(s.create)
        write_dt = naive_utc(s.write) if s.write is not None else None
        rec = {
            "type": "out", "number": s.number, "reference": s.ref, "party": party, "company": company,
            "currency": g.erp_currency[s.currency], "invoice_date": g.day(_inv_date(s)),
            "state": s.state, "description": desc, "untaxed_amount": tot, "tax_amount": zero,
            "total_amount": tot, "amount_to_pay": tot if s.state == "posted" else zero, "lines": lines,
            "invoice_address": g.erp_address.get(cid) if cid else None,
            # what Tryton's on_change proposes and every real customer invoice carries (posting
            # one without them fails as trytond does)
            "journal": REVENUE_JOURNAL, "account": RECEIVABLE_ACCOUNT, "payment_term": PAYMENT_TERM,
            "create_date": create_dt, "write_date": write_dt, "create_uid": 1,
            "write_uid": 1 if write_dt is not None else None, "rec_name": s.number or s.ref or "(draft)",
        }
        if s.credits is not None:
            rec["sequence_type_cache"] = "credit_note"  # set by trytond when it numbers one
        iid = erp.insert("account.invoice", rec)
        for n, (price_id, ldesc, qty, amount, line_taxes) in enumerate(raw):
            price = prices[price_id]
            sign = -1 if s.credits is not None else 1  # a credit line: negative quantity, positive price
            if qty and amount == price.unit_amount * qty:
                q, unit = g.flt(qty), g.dec(price.unit_amount, cur)
            else:
                q, unit = g.flt(sign), g.dec(sign * amount, cur)
            line = {
                "invoice": iid, "type": "line", "product": g.erp_product[price_id], "description": ldesc,
                "quantity": q, "unit_price": unit, "amount": g.dec(amount, cur), "taxes": line_taxes,
                "create_date": create_dt, "write_date": None, "create_uid": 1, "write_uid": None,
                "rec_name": ldesc,
            }
            if origins:
                line["origin"] = origins[n]
            lines.append(erp.insert("account.invoice.line", line))
        s.line_ids = lines
        stored = erp.tables["account.invoice"][iid]
        tax_ids: list[int] = []
        stored["taxes"] = tax_ids
        if any(line_taxes for *_, line_taxes in raw):
            if s.credits is not None:
                billed: Decimal | None = None if s.tax_as_computed else g.dec(-s.billed_tax, cur)
            elif binv is not None and s.lines is None and not s.dropped:
                billed = g.dec(sum(ln.tax_amount for ln in binv.lines) - s.tax_shift, cur)
            else:
                billed = None
            tax_ids.extend(store_invoice_taxes(erp, iid, billed))
            tax = sum((erp.tables["account.invoice.tax"][t]["amount"] for t in tax_ids), zero)
            stored.update(tax_amount=tax, total_amount=tot + tax,
                          amount_to_pay=tot + tax if s.state == "posted" else zero)


def _inv_date(s: _ErpInv) -> int:
    if s.credits is not None:  # a credit note is dated the day it is booked
        return s.create
    if s.binv is not None and s.binv.finalized_at is not None:
        return s.binv.finalized_at
    return s.create
