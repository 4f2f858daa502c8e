"""Phase 2, the money on billing invoices as a real SaaS company has it (issue G1): Stripe Tax
Rates (EU VAT at each country's standard rate, the EU reverse charge as a 0 % rate with its
legal note for customers with a verified EU VAT id, UK VAT, Canadian GST, US sales tax by
state, tax-exempt customers), coupons (percent and amount off; once, repeating, forever) on
customers and subscriptions, the discount and the tax of every line, the card charge of every
invoice paid by card, credit notes before and after payment, and refunds (partial and full,
with and without a credit note), with the billing events they emit.

Every choice here draws from its own random stream (seeded from the dataset's seed), never from
the generator's main one, and no discount or tax changes the sign of an invoice's total (the
payment story branches on it): the customers, subscriptions, invoices, payment stories, plants
and ERP copies the main stream makes stay what they were (the money events take their ids from
a stream of their own too, :data:`MONEY_EVENTS`), and the money is still a pure function of
``(customers, seed, anchor)``. All amounts are integers in minor units; percentages are decimal
text and every rounding is half away from zero on the exact product (``Decimal``), per line, as
Stripe rounds tax and discount per line item.
"""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from services.demo.generator.dates import DAY
from services.demo.generator.state import _Cust, _Gen, _Ids
from services.demo.store import (
    BCharge,
    BCoupon,
    BCreditNote,
    BCreditNoteLine,
    BInvoice,
    BInvoiceLine,
    BRefund,
    BSubscription,
    BTaxRate,
)

#: EU member states' standard VAT rates (the countries the seed file sells to)
EU_VAT: dict[str, str] = {"IE": "23", "DE": "19", "FR": "20", "NL": "21", "ES": "21", "IT": "22", "SE": "25"}
#: other countries' tax on software subscriptions: (display name, tax type, percentage)
#: (Japan: the consumption tax's standard rate, Stripe's tax type ``jct``, on invoices in yen,
#: which have no minor unit; Kuwait levies no VAT: its customers' invoices carry no tax rate)
OTHER_TAX: dict[str, tuple[str, str, str]] = {"GB": ("VAT", "vat", "20"), "CA": ("GST", "gst", "5"),
                                              "JP": ("JCT", "jct", "10")}
#: US customers' city, state and the state sales tax on SaaS the demo company collects there
#: (None: the state has no sales tax, no rate applies)
US_STATES: tuple[tuple[str, str, str | None], ...] = (
    ("Austin", "TX", "6.25"), ("Denver", "CO", "2.9"), ("Portland", "OR", None), ("Boston", "MA", "6.25"),
    ("Chicago", "IL", "6.25"), ("Raleigh", "NC", "4.75"), ("Seattle", "WA", "6.5"), ("New York", "NY", "4"))
REVERSE_CHARGE_NOTE = ("Reverse charge: VAT to be accounted for by the recipient "
                       "(Article 196, Council Directive 2006/112/EC).")

#: shares (per customer, per subscription or per invoice as noted); fixed here and not in
#: ``resources/demo_seed.toml`` so that the seed file's keys stay those its reader knows
TAX_EXEMPT = 0.04            # customer: tax exempt (a non-profit, a public body)
EU_VAT_VERIFIED = 0.75       # EU customer with a VAT id: verified (reverse charge), else VAT charged
WELCOME_COUPON = 0.08        # subscription: 20 % off the first 3 months
AMOUNT_COUPON = 0.08         # subscription: a fixed amount off the first invoice
ANNUAL_COUPON = 0.20         # yearly subscription: 15 % off the first invoice
LOYALTY_COUPON = 0.03        # customer: 10 % off forever, from some day on
PRE_PAYMENT_NOTE = 0.015     # finalized invoice: partly credited before it was paid
POST_PAYMENT_REFUND = 0.015  # invoice paid by card: credit note refunded to the card
POST_PAYMENT_CREDIT = 0.005  # invoice paid: credit note left on the customer's balance
PLAIN_REFUND = 0.02          # invoice paid by card: refunded from the dashboard, no credit note (2/3 in full)
MIN_EACH = 2                 # at least this many of each credit note / refund kind from 50 customers

#: the coupons: id, name, duration, percent off, amount off (minor units), its currency, months
COUPONS: tuple[tuple[str, str, str, str | None, int | None, str | None, int | None], ...] = (
    ("WELCOME20", "Welcome: 20 % off 3 months", "repeating", "20", None, None, 3),
    ("LOYALTY10", "Loyalty: 10 % off", "forever", "10", None, None, None),
    ("ANNUAL15", "Annual plan: 15 % off the first year", "once", "15", None, None, None),
    ("SAVE50USD", "50 USD off", "once", None, 5000, "usd", None),
    ("SAVE45EUR", "45 EUR off", "once", None, 4500, "eur", None),
    ("SAVE40GBP", "40 GBP off", "once", None, 4000, "gbp", None),
    ("SAVE5000JPY", "5,000 JPY off", "once", None, 5000, "jpy", None),
    ("SAVE15KWD", "15 KWD off", "once", None, 15000, "kwd", None))
#: the amount-off coupon of each currency
AMOUNT_COUPONS: dict[str, str] = {cur: cid for cid, _, _, _, off, cur, _ in COUPONS if off is not None and cur}

#: the billing events this module emits (their ids come from :func:`money_event_ids`)
MONEY_EVENTS = frozenset({"credit_note.created", "charge.refunded", "invoice.updated"})

_CENT = Decimal(1)


def money_event_ids(seed: int) -> _Ids:
    """The ids of the money events' own stream."""
    return _Ids(random.Random(f"syncdesk-billing-money-events:{seed}"))


@functools.lru_cache(maxsize=256)
def _ratio(percentage: str) -> tuple[int, int]:
    """``percentage / 100`` as an exact fraction (numerator, denominator)."""
    return (Decimal(percentage) / 100).as_integer_ratio()


def _pct(amount: int, percentage: str) -> int:
    """``amount × percentage / 100`` rounded half away from zero to a whole minor unit (exact
    integer arithmetic: the same as ``Decimal.quantize(ROUND_HALF_UP)`` on the exact product)."""
    num, den = _ratio(percentage)
    q = (2 * abs(amount) * num + den) // (2 * den)
    return -q if amount < 0 else q


@dataclass(slots=True)
class _Disc:
    """A discount (``di_...``): a coupon applied to a customer or a subscription from ``start``
    until ``end`` (None: forever); a ``once`` coupon ends with the first invoice it discounts."""

    id: str
    coupon: BCoupon
    customer: str
    subscription: str | None
    start: int
    end: int | None
    used: bool = False

    def applies(self, t: int) -> bool:
        if t < self.start or (self.end is not None and t >= self.end):
            return False
        return not (self.coupon.duration == "once" and self.used)


class _Money:
    """The money stream's state: its RNG and ids, the tax rates and coupons, each customer's tax
    treatment and the discounts in force."""

    def __init__(self, g: _Gen) -> None:
        self.rng = random.Random(f"syncdesk-billing-money:{g.seed}")
        self.ids = _Ids(self.rng)
        self.g = g
        self.rates: dict[tuple[str, str | None], BTaxRate] = {}  # (country or "EU-RC", state) -> rate
        self.coupons: dict[str, BCoupon] = {}
        self.cust_rate: dict[str, str | None] = {}  # customer id -> the tax rate of its lines
        self.cust_footer: dict[str, str] = {}
        self.sub_disc: dict[str, _Disc] = {}
        self.cust_disc: dict[str, _Disc] = {}
        self.cn_seq: dict[str, int] = {}  # invoice id -> credit notes issued on it
        self._catalog(g.setup_ts)

    # ---- catalog ----------------------------------------------------------------------

    def _rate(self, key: tuple[str, str | None], display: str, tax_type: str, pct: str, country: str | None,
              jurisdiction: str, description: str) -> None:
        r = BTaxRate(id=self.ids.long("txr_"), created=self.g.setup_ts, display_name=display, percentage=pct,
                     tax_type=tax_type, country=country, state=key[1], jurisdiction=jurisdiction,
                     description=description)
        self.rates[key] = r
        self.g.billing.tax_rates[r.id] = r

    def _catalog(self, t: int) -> None:
        for cc, vat in EU_VAT.items():
            self._rate((cc, None), "VAT", "vat", vat, cc, cc, f"{cc} VAT {vat} % (standard rate)")
        self._rate(("EU-RC", None), "VAT", "vat", "0", None, "EU",
                   "EU reverse charge (0 %): " + REVERSE_CHARGE_NOTE)
        for cc, (display, tax_type, rate) in OTHER_TAX.items():
            self._rate((cc, None), display, tax_type, rate, cc, cc, f"{cc} {display} {rate} %")
        for _, state, spct in US_STATES:
            if spct is not None:
                self._rate(("US", state), "Sales Tax", "sales_tax", spct, "US", state, f"{state} sales tax {spct} %")
        b = self.g.billing
        for cid, name, duration, pct, off, cur, months in COUPONS:
            c = BCoupon(id=cid, created=t, name=name, duration=duration, percent_off=pct, amount_off=off,
                        currency=cur, duration_in_months=months)
            self.coupons[cid] = c
            b.coupons[cid] = c

    # ---- customers and subscriptions ----------------------------------------------------

    def assign_customer(self, cu: _Cust) -> None:
        """The customer's tax treatment (``tax_exempt``, its verified tax id, its state) and,
        for a few, a loyalty discount."""
        rng = self.rng
        c = cu.c
        country = c.country or ""
        exempt = rng.random() < TAX_EXEMPT
        state: tuple[str, str, str | None] | None = None
        if country == "US":
            state = US_STATES[rng.randrange(len(US_STATES))]
            c.extra["address"] = {"city": state[0], "state": state[1]}
        verified = c.tax_id is not None and rng.random() < EU_VAT_VERIFIED
        if c.tax_id is not None:
            kind = _tax_id_type(country)
            c.extra["tax_ids"] = [{"id": self.ids.long("txi_"), "type": kind, "value": c.tax_id,
                                   "country": country or None, "created": c.created,
                                   "verification": "verified" if verified or kind != "eu_vat" else "unverified"}]
        rate: BTaxRate | None = None
        if exempt:
            c.extra["tax_exempt"] = "exempt"
        elif country in EU_VAT and verified:
            c.extra["tax_exempt"] = "reverse"
            rate = self.rates[("EU-RC", None)]
            self.cust_footer[c.id] = REVERSE_CHARGE_NOTE
        elif country in EU_VAT or country in OTHER_TAX:
            rate = self.rates[(country, None)]
        elif state is not None and state[2] is not None:
            rate = self.rates[("US", state[1])]
        self.cust_rate[c.id] = rate.id if rate is not None else None
        if rng.random() < LOYALTY_COUPON:
            start = c.created + int(rng.random() * max(1, self.g.A - c.created))
            d = self.cust_disc[c.id] = self._discount("LOYALTY10", c.id, None, start, None)
            if start <= self.g.A:
                c.extra["discount"] = {"id": d.id, "coupon": d.coupon.id, "start": start, "end": None}

    def _discount(self, coupon: str, customer: str, sub: str | None, start: int, end: int | None) -> _Disc:
        cp = self.coupons[coupon]
        cp.times_redeemed += 1
        return _Disc(self.ids.long("di_"), cp, customer, sub, start, end)

    def on_subscription(self, sub: BSubscription, months: int) -> None:
        """A coupon on a new subscription, for some."""
        rng = self.rng
        x = rng.random()
        start = sub.created
        if months == 12 and x < ANNUAL_COUPON:
            self.sub_disc[sub.id] = self._discount("ANNUAL15", sub.customer, sub.id, start, None)
        elif x < WELCOME_COUPON:
            end = start + (sub.trial_end - sub.created if sub.trial_end else 0) + 91 * DAY
            d = self.sub_disc[sub.id] = self._discount("WELCOME20", sub.customer, sub.id, start, end)
            if start <= self.g.A < end:  # still running: the subscription shows it
                sub.extra["discount"] = {"id": d.id, "coupon": d.coupon.id, "start": start, "end": end}
        elif x < WELCOME_COUPON + AMOUNT_COUPON:
            cid = AMOUNT_COUPONS.get(sub.currency)
            item = sub.items[0]
            first = self.g.billing.prices[item.price].unit_amount * item.quantity
            # only where it leaves something to pay: an invoice keeps the sign of its lines' sum
            if cid is not None and first >= 2 * (self.coupons[cid].amount_off or 0):
                self.sub_disc[sub.id] = self._discount(cid, sub.customer, sub.id, start, None)

    # ---- one invoice ------------------------------------------------------------------------

    def price_invoice(self, inv: BInvoice) -> None:
        """Each line's discount and tax, and the invoice's subtotal, discount, tax and total
        (``total = subtotal - discount + tax``, to the minor unit)."""
        lines = inv.lines
        subtotal = sum(ln.amount for ln in lines)
        disc = self.sub_disc.get(inv.subscription or "")
        if disc is None or not disc.applies(inv.created):
            disc = self.cust_disc.get(inv.customer)
        positive = sum(ln.amount for ln in lines if ln.amount > 0)
        if disc is not None and disc.applies(inv.created) and positive > 0:
            _allocate(disc.coupon, lines, positive)
            disc.used = True
            inv.coupon, inv.discount_id = disc.coupon.id, disc.id
            inv.discount_start, inv.discount_end = disc.start, disc.end
            inv.discount_subscription = disc.subscription
        rate_id = self.cust_rate.get(inv.customer)
        rate = self.g.billing.tax_rates[rate_id] if rate_id is not None else None
        tax = 0
        for ln in lines:
            if rate is not None:
                ln.tax_rate = rate.id
                ln.tax_amount = _pct(ln.amount - ln.discount_amount, rate.percentage)
                tax += ln.tax_amount
        inv.discount_total = sum(ln.discount_amount for ln in lines)
        inv.tax = tax if rate is not None else None
        inv.subtotal = subtotal
        inv.total = subtotal - inv.discount_total + tax
        inv.footer = self.cust_footer.get(inv.customer)

    def unprice(self, inv: BInvoice) -> None:
        unpriced(inv)

    # ---- after every customer's history: charges, credit notes, refunds ---------------------

    def settle(self, custs: list[_Cust], keep: set[str]) -> None:
        """Charges of card payments; credit notes and refunds on invoices not in ``keep``."""
        g = self.g
        A = g.A
        card: list[BInvoice] = []
        for cu in custs:
            for inv in cu.invoices:
                if (not cu.send_invoice and inv.status == "paid" and inv.amount_paid > 0
                        and inv.paid_at is not None):
                    card.append(inv)
        clean = [i for i in card if all(ln.amount >= 0 for ln in i.lines) and i.number is not None]
        open_ = [i for cu in custs for i in cu.invoices
                 if i.status == "open" and i.finalized_at is not None and i.number is not None
                 and i.total > 0 and all(ln.amount >= 0 for ln in i.lines)]
        rng = self.rng
        big = g.n >= 50
        used: set[str] = set(keep)

        def pick(pool: list[BInvoice], share: float) -> list[BInvoice]:
            pool = [i for i in pool if i.id not in used]
            k = min(len(pool), max(MIN_EACH if big else 0, round(share * len(pool))))
            out = rng.sample(pool, k) if k else []
            used.update(i.id for i in out)
            return out

        # a pre-payment credit note lowers what is due (the later charge takes the rest)
        for inv in pick(open_ + clean, PRE_PAYMENT_NOTE):
            end = inv.paid_at if inv.paid_at is not None else A
            t = (inv.finalized_at or inv.created) + int(rng.random() * max(1, end - (inv.finalized_at or 0)) / 2)
            cn = self._note(inv, t, "pre_payment", full=False, reason="order_change")
            inv.pre_payment_credit_notes_amount += cn.total
            if inv.status == "paid":
                inv.amount_paid = inv.total - inv.pre_payment_credit_notes_amount
            g.ev(t, "invoice.updated", "invoice", inv.id)
        for inv in card:
            self._charge(inv)
        for i, inv in enumerate(pick(clean, POST_PAYMENT_REFUND)):
            when = self._after(inv)
            if when is None:
                continue
            cn = self._note(inv, when, "post_payment", full=i % 2 == 0, reason="product_unsatisfactory")
            inv.post_payment_credit_notes_amount += cn.total
            cn.refund = self._refund(inv, when, cn.total, "requested_by_customer", cn.id).id
        for inv in pick(clean, POST_PAYMENT_CREDIT):
            when = self._after(inv)
            if when is None:
                continue
            cn = self._note(inv, when, "post_payment", full=False, reason="order_change")
            inv.post_payment_credit_notes_amount += cn.total
            cn.credit_amount = cn.total
        for i, inv in enumerate(pick(clean, PLAIN_REFUND)):
            when = self._after(inv)
            if when is None:
                continue
            full = i % 3 != 2
            amount = inv.amount_paid if full else max(1, inv.amount_paid * (10 + rng.randrange(50)) // 100)
            self._refund(inv, when, amount, "duplicate" if full else "requested_by_customer", None)
        b = g.billing  # creation order, as the store keeps every collection
        b.charges = {r.id: r for r in sorted(b.charges.values(), key=lambda r: r.created)}
        b.credit_notes = {r.id: r for r in sorted(b.credit_notes.values(), key=lambda r: r.created)}
        b.refunds = {r.id: r for r in sorted(b.refunds.values(), key=lambda r: r.created)}

    def _after(self, inv: BInvoice) -> int | None:
        assert inv.paid_at is not None
        t = inv.paid_at + DAY + int(self.rng.random() * 20 * DAY)
        return t if t <= self.g.A else None

    def _charge(self, inv: BInvoice) -> None:
        assert inv.paid_at is not None
        ch = BCharge(id=self.ids.long("ch_"), created=inv.paid_at, customer=inv.customer, invoice=inv.id,
                     payment_intent=self.ids.long("pi_"), amount=inv.amount_paid, currency=inv.currency)
        inv.charge, inv.payment_intent = ch.id, ch.payment_intent
        self.g.billing.charges[ch.id] = ch

    def _refund(self, inv: BInvoice, t: int, amount: int, reason: str, note: str | None) -> BRefund:
        assert inv.charge is not None and inv.payment_intent is not None
        ch = self.g.billing.charges[inv.charge]
        amount = min(amount, ch.amount - ch.amount_refunded)
        re_ = BRefund(id=self.ids.long("re_"), created=t, amount=amount, charge=ch.id,
                      payment_intent=inv.payment_intent, currency=inv.currency, reason=reason, credit_note=note)
        ch.amount_refunded += amount
        self.g.billing.refunds[re_.id] = re_
        self.g.ev(t, "charge.refunded", "charge", ch.id)
        return re_

    def _note(self, inv: BInvoice, t: int, type_: str, *, full: bool, reason: str) -> BCreditNote:
        """A credit note on ``inv``: every line in full, or part of one line."""
        rng = self.rng
        rate = self.g.billing.tax_rates[inv.lines[0].tax_rate] if inv.lines[0].tax_rate else None
        targets: list[tuple[BInvoiceLine, int]]
        if full:
            targets = [(ln, ln.amount) for ln in inv.lines]
        else:
            ln = max(inv.lines, key=lambda x: x.amount)
            targets = [(ln, max(1, ln.amount * (20 + rng.randrange(50)) // 100))]
        lines: list[BCreditNoteLine] = []
        for ln, amount in targets:
            disc = ln.discount_amount if amount == ln.amount else _share(ln.discount_amount, amount, ln.amount)
            tax = ln.tax_amount if amount == ln.amount else (_pct(amount - disc, rate.percentage) if rate else 0)
            lines.append(BCreditNoteLine(id=self.ids.long("cnli_"), invoice_line_item=ln.id,
                                         description=ln.description, quantity=ln.quantity if amount == ln.amount else 1,
                                         amount=amount, discount_amount=disc, tax_rate=ln.tax_rate, tax_amount=tax))
        n = self.cn_seq.get(inv.id, 0) + 1
        self.cn_seq[inv.id] = n
        subtotal = sum(x.amount for x in lines)
        discount = sum(x.discount_amount for x in lines)
        tax = sum(x.tax_amount for x in lines)
        cn = BCreditNote(id=self.ids.long("cn_"), created=t, customer=inv.customer, invoice=inv.id,
                         number=f"{inv.number}-CN-{n:02d}", currency=inv.currency, type=type_, reason=reason,
                         lines=lines, subtotal=subtotal, discount=discount, tax=tax, total=subtotal - discount + tax)
        self.g.billing.credit_notes[cn.id] = cn
        self.g.ev(t, "credit_note.created", "credit_note", cn.id)
        return cn


def unpriced(inv: BInvoice) -> None:
    """``inv`` billed without discount or tax, before any credit note or charge (what was paid
    follows; the sign of the total is unchanged, so its payment story still holds)."""
    paid_all = inv.amount_paid == inv.total
    for ln in inv.lines:
        ln.discount_amount, ln.tax_rate, ln.tax_amount = 0, None, 0
    inv.discount_total, inv.tax, inv.footer = 0, None, None
    inv.coupon = inv.discount_id = inv.discount_subscription = None
    inv.discount_start = inv.discount_end = None
    inv.total = inv.subtotal
    if paid_all and inv.amount_paid:
        inv.amount_paid = inv.total


def _share(whole: int, part: int, of: int) -> int:
    """``whole × part / of`` rounded half away from zero."""
    return int((Decimal(whole) * part / of).quantize(_CENT, rounding=ROUND_HALF_UP)) if of else 0


def _allocate(coupon: BCoupon, lines: list[BInvoiceLine], positive: int) -> None:
    """The coupon's discount on each line (percent: per line, so the invoice keeps its sign;
    amount: spread over the positive lines in proportion, the rounding remainder on the largest,
    never more than the lines)."""
    if coupon.percent_off is not None:  # every line, a proration credit too (its credit shrinks alike)
        for ln in lines:
            ln.discount_amount = _pct(ln.amount, coupon.percent_off)
        return
    off = min(coupon.amount_off or 0, positive)
    given = 0
    biggest: BInvoiceLine | None = None
    for ln in lines:
        if ln.amount > 0:
            ln.discount_amount = off * ln.amount // positive
            given += ln.discount_amount
            if biggest is None or ln.amount > biggest.amount:
                biggest = ln
    if biggest is not None:
        biggest.discount_amount = min(biggest.amount, biggest.discount_amount + off - given)


def _tax_id_type(country: str) -> str:
    if country in EU_VAT:
        return "eu_vat"
    return {"GB": "gb_vat", "US": "us_ein", "CA": "ca_bn", "JP": "jp_cn"}.get(country, "unknown")
