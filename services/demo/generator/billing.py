"""Phase 2, the billing history: customers (names, countries, tax ids, formatting-only noise),
each one's subscriptions simulated period by period over the last twelve months (trials,
upgrades, downgrades, quantity changes, mid-period upgrades with proration, renewals,
cancellations, a second subscription), the in-flight profiles near the anchor, and the billing
events of the last 30 days. Each invoice and its payment story is ``billing_invoices``."""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect

from services.demo.generator.billing_invoices import _invoice, _new_line
from services.demo.generator.billing_money import _Money, money_event_ids
from services.demo.generator.catalog import _desc
from services.demo.generator.dates import DAY, _add_months, _civil, utc_date
from services.demo.generator.ground_truth import ACTIVE_STATUSES, STREAM_NEUTRAL_PLANTS, TIER_RANK
from services.demo.generator.state import _ascii_slug, _Cust, _Gen
from services.demo.store import BCustomer, BEvent, BInvoiceLine, BPrice, BSubItem, BSubscription


def _make_customer(g: _Gen, signup: int, used_domains: dict[str, int]) -> _Cust:
    rng = g.rng
    r = g.r
    names = g.p.names
    country = g.p.countries[bisect(g.country_cum, rng.random() * g.country_cum[-1])]
    suffix = rng.choice(country.suffixes)
    if rng.random() < r.odd_name:
        base = rng.choice(names.odd)
    else:
        base = f"{rng.choice(names.first)} {rng.choice(names.second)}"
    legal = f"{base} {suffix}" if suffix else base
    slug = _ascii_slug(base) or "company"
    n = used_domains.get(slug, 0)
    used_domains[slug] = n + 1
    domain = f"{slug}{n + 1 if n else ''}.{country.tld}"
    tax: str | None = None
    if rng.random() >= r.no_tax_id:
        tax = _tax_id(g, country.tax_format)
    billing_name, billing_tax = legal, tax
    if rng.random() < r.messy_master_data:  # a formatting-only difference: must not fire
        k = rng.randrange(3)
        if k == 0:
            billing_name = unicodedata.normalize("NFD", legal).replace(" ", "  ") + " "
        elif k == 1 and tax is not None:
            billing_tax = " ".join(tax[i:i + 3] for i in range(0, len(tax), 3)).lower()
        else:
            billing_name = " " + legal
    person = (rng.choice(names.person_first), rng.choice(names.person_last))
    local = rng.choice(("billing", "accounts", "finance", "ap", ""))
    if not local:
        local = _ascii_slug(f"{person[0]}.{person[1]}").replace("-", ".") or "billing"
    c = BCustomer(id=g.ids.short("cus_"), created=signup, name=billing_name, email=f"{local}@{domain}",
                  country=country.code, tax_id=billing_tax, currency=country.currency,
                  description=None, phone=None)
    cu = _Cust(c, legal, tax, domain)
    cu.people.append(person)
    letters = re.sub(r"[^A-Z]", "", unicodedata.normalize("NFKD", base).upper())[:4] or "CUST"
    cu.prefix = f"{letters}{rng.getrandbits(16):04X}"
    return cu


def _tax_id(g: _Gen, fmt: str) -> str:
    n = fmt.count("#")
    digits = iter(f"{int(g.random() * 10**n):0{n}d}")
    return "".join(next(digits) if ch == "#" else ch for ch in fmt)


def _simulate_sub(g: _Gen, cu: _Cust, start: int, plan_i: int, months: int, qty: int,
                  trial: bool, force: str | None, money: _Money) -> None:
    A = g.A
    rng = g.rng
    r = g.r
    plans = g.p.plans
    cur = cu.c.currency or "usd"
    price = g.price_by_key[(plan_i, months, cur)]
    sid = g.ids.long("sub_")
    item = BSubItem(id=g.ids.short("si_"), price=price.id, quantity=qty, created=start)
    trial_end = start + r.trial_days * DAY if trial else None
    sub = BSubscription(id=sid, customer=cu.c.id, status="active", items=[item], created=start,
                        start_date=start, current_period_start=start,
                        current_period_end=trial_end or start, currency=cur,
                        trial_start=start if trial else None, trial_end=trial_end)
    g.all_subs.append(sub)
    money.on_subscription(sub, months)
    g.ev(start, "customer.subscription.created", "subscription", sid)
    last_change = start
    ended: int | None = None
    if trial_end is not None:
        plan = plans[plan_i]
        line = _new_line(g, price, qty, 0, f"Trial period for {plan.name}", start, trial_end)
        _invoice(g, cu, sub, start, start, [line], "subscription_create", start, trial_end, money)
        if force is None and rng.random() < r.cancel_in_trial:
            t = start + g.ri(DAY, (r.trial_days - 1) * DAY)
            if t <= A:
                ended = t
        if ended is None and trial_end > A:
            sub.status = "trialing"
            cu.subs.append((sub, last_change))
            return
        anchor0 = trial_end
    else:
        anchor0 = start
    base = _civil(anchor0)
    k = 0
    ps = anchor0
    pending: list[BInvoiceLine] = []
    while ended is None:
        pe = _add_months(base, (k + 1) * months)
        if k >= 1 or trial_end is not None:
            changed = False
            if k >= 1 and force is None:
                changed, price, qty = _boundary_change(g, price, qty)
            if changed:
                item.price, item.quantity = price.id, qty
                last_change = ps
            g.ev(ps, "customer.subscription.updated", "subscription", sid)
        first_direct = k == 0 and trial_end is None
        lines = [*pending, _new_line(g, price, qty, price.unit_amount * qty, _desc(g, price, qty), ps, pe)]
        pending = []
        _, written_off = _invoice(g, cu, sub, ps, ps if first_direct else ps + 3600, lines,
                                  "subscription_create" if first_direct else "subscription_cycle",
                                  ps, pe, money, force=force if k == 0 else None)
        sub.current_period_start, sub.current_period_end = ps, pe
        if written_off is not None:
            ended = written_off
            break
        if force is None:
            x = rng.random()
            if x < r.churn_per_period:
                t = ps + int((pe - ps) * (0.1 + 0.8 * rng.random()))
                if t <= A:
                    sub.canceled_at = t
                    if rng.random() < r.cancel_immediately:
                        ended = t
                    else:
                        sub.cancel_at_period_end = True
                        g.ev(t, "customer.subscription.updated", "subscription", sid)
                        if pe <= A:
                            ended = pe
                    break
            elif x < r.churn_per_period + r.mid_period_upgrade:
                t = ps + int((pe - ps) * (0.2 + 0.6 * rng.random()))
                if t <= A:
                    price, qty = _mid_period_upgrade(g, price, qty, t, ps, pe, pending)
                    item.price, item.quantity = price.id, qty
                    last_change = t
                    g.ev(t, "customer.subscription.updated", "subscription", sid)
        if pe > A:
            break
        ps = pe
        k += 1
    if ended is not None:
        sub.status = "canceled"
        sub.ended_at = ended
        if sub.canceled_at is None:
            sub.canceled_at = ended
        g.ev(ended, "customer.subscription.deleted", "subscription", sid)
    elif cu.invoices and not cu.send_invoice:
        last = cu.invoices[-1]
        if last.subscription == sid and last.status == "open" and last.attempt_count >= 1:
            sub.status = "past_due"
    cu.subs.append((sub, last_change))


def _boundary_change(g: _Gen, price: BPrice, qty: int) -> tuple[bool, BPrice, int]:
    rng = g.rng
    r = g.r
    pi = g.price_plan[price.id]
    months = g.price_months[price.id]
    x = rng.random()
    if x < r.upgrade_per_period and pi + 1 < len(g.p.plans):
        pi += 1
    elif x < r.upgrade_per_period + r.downgrade_per_period and pi > 0:
        pi -= 1
    elif x < r.upgrade_per_period + r.downgrade_per_period + r.quantity_change_per_period:
        lo, hi = g.p.plans[pi].quantity
        new = min(hi, max(lo, qty + rng.choice((-3, -2, -1, 1, 1, 2, 3, 5))))
        if new == qty:
            return False, price, qty
        return True, price, new
    else:
        return False, price, qty
    lo, hi = g.p.plans[pi].quantity
    return True, g.price_by_key[(pi, months, price.currency)], min(hi, max(lo, qty))


def _mid_period_upgrade(g: _Gen, price: BPrice, qty: int, t: int, ps: int, pe: int,
                        pending: list[BInvoiceLine]) -> tuple[BPrice, int]:
    pi = g.price_plan[price.id]
    months = g.price_months[price.id]
    if pi + 1 < len(g.p.plans):
        new_price = g.price_by_key[(pi + 1, months, price.currency)]
        lo, hi = g.p.plans[pi + 1].quantity
        new_qty = min(hi, max(lo, qty))
    else:
        new_price, new_qty = price, qty + g.ri(1, 10)
    frac = (pe - t) / (pe - ps)
    when = utc_date(t).strftime("%d %b %Y")
    old_plan = g.p.plans[pi].name
    new_plan = g.p.plans[g.price_plan[new_price.id]].name
    pending.append(_new_line(g, price, qty, -round(price.unit_amount * qty * frac),
                             f"Unused time on {qty} × {old_plan} after {when}", t, pe, True))
    pending.append(_new_line(g, new_price, new_qty, round(new_price.unit_amount * new_qty * frac),
                             f"Remaining time on {new_qty} × {new_plan} after {when}", t, pe, True))
    return new_price, new_qty


def _simulate_customer(g: _Gen, cu: _Cust, money: _Money) -> None:
    rng = g.rng
    r = g.r
    plans = g.p.plans
    signup = cu.c.created
    g.ev(signup, "customer.created", "customer", cu.c.id)
    if cu.force is None and rng.random() < r.lead:
        return
    plan_i = bisect(g.plan_cum, rng.random() * g.plan_cum[-1])
    plan = plans[plan_i]
    months = 12 if cu.force is None and rng.random() < plan.yearly_share else 1
    qty = g.ri(*plan.quantity)
    trial = cu.force is not None or rng.random() < r.trial
    cu.send_invoice = cu.force is None and plan_i == len(plans) - 1 and rng.random() < r.send_invoice
    start = signup + g.ri(30, 900)
    if cu.force is not None:
        start = signup + 30
    _simulate_sub(g, cu, start, plan_i, months, qty, trial, cu.force, money)
    first = cu.subs[0][0]
    if (cu.force is None and first.status in ACTIVE_STATUSES and rng.random() < r.second_subscription
            and first.created + 30 * DAY < g.A - DAY):
        start2 = g.ri(first.created + 30 * DAY, g.A - DAY)
        plan2 = rng.randrange(len(plans))
        _simulate_sub(g, cu, start2, plan2, 1, g.ri(*plans[plan2].quantity), False, None, money)
    _settle_customer(g, cu)


def _settle_customer(g: _Gen, cu: _Cust) -> None:
    """Number the finalized invoices (per-customer sequence in finalization order) and work
    out the entitlement truth."""
    finalized = [i for i in cu.invoices if i.finalized_at is not None]
    finalized.sort(key=lambda i: i.finalized_at or 0)
    for n, inv in enumerate(finalized, 1):
        inv.number = f"{cu.prefix}-{n:04d}"
    cu.invoices.sort(key=lambda i: i.created)
    best = 0
    best_any = 0
    for sub, changed in cu.subs:
        rank = TIER_RANK[g.p.plans[g.price_plan[sub.items[0].price]].tier]
        best_any = max(best_any, rank)
        cu.last_change = max(cu.last_change, changed, sub.ended_at or 0)
        if sub.status in ACTIVE_STATUSES:
            cu.active = True
            if rank > best:
                best = rank
            cu.ent_end = max(cu.ent_end or 0, sub.current_period_end)
    tiers = {v: k for k, v in TIER_RANK.items()}
    cu.tier = tiers.get(best)
    cu.cancelled_tier = tiers.get(best_any)
    cu.first_sub_at = cu.subs[0][0].created if cu.subs else None


def _simulate_billing(g: _Gen) -> _Money:
    """Every customer's history, priced (discounts, taxes) as it is made; returns the money
    stream whose charges, credit notes and refunds :func:`_settle_money` makes once the plants
    are chosen."""
    rng = g.rng
    A = g.A
    n = g.n
    signups = sorted(A - g.ri(3600, 365 * DAY) for _ in range(n))
    # in-flight profiles: "fin" (finalized 1-10 min ago, not yet in the ERP), "pay" (paid
    # 5-30 min ago, ERP still posted) and "post" (finalized 1-10 min ago, a draft in the ERP not
    # posted yet); all start with a trial ending right before.
    forced: dict[int, str] = {}
    k = 0 if n < 50 else max(2, round(g.r.in_flight * n))
    if n >= 4:
        for idx in rng.sample(range(n), min(n // 2, 3 * k)):
            kind = ("fin", "pay", "post")[len(forced) % 3]
            if kind != "pay":
                trial_end = A - 3600 - g.ri(60, 600)
            else:
                trial_end = A - g.ri(2 * DAY, 5 * DAY)
            signups[idx] = trial_end - g.r.trial_days * DAY - 30
            forced[idx] = kind
    order = sorted(range(n), key=lambda i: signups[i])
    used_domains: dict[str, int] = {}
    money = _Money(g)  # taxes, coupons, charges, credit notes, refunds: a random stream of their own
    for i in order:
        cu = _make_customer(g, signups[i], used_domains)
        cu.force = forced.get(i)
        g.custs.append(cu)
        money.assign_customer(cu)
        _simulate_customer(g, cu, money)
    b = g.billing
    for cu in g.custs:
        b.add_customer(cu.c)
        g.all_invoices.extend(cu.invoices)
    g.all_subs.sort(key=lambda s: s.created)
    for s in g.all_subs:
        b.add_subscription(s)
    g.all_invoices.sort(key=lambda i: i.created)
    for inv in g.all_invoices:
        b.add_invoice(inv)
    return money


def _settle_money(g: _Gen, money: _Money) -> None:
    """After the plants are chosen: the invoice each invoice rule is planted on is billed without
    discount or tax (the fixes of those rules post billing's lines, and until they carry tax, a
    taxed plant could not be fixed to the cent) and gets no credit note or refund; then every
    card payment's charge, the credit notes and the refunds, and their events merged into the
    event log in time order (ids from the money's own stream: the main stream is untouched)."""
    planted = {p.invoice.id: p.invoice for p in g.plants.values() if p.invoice is not None}
    for plant in g.plants.values():
        # a tax mismatch is planted on a taxed invoice (its fix is not offered yet); a proration
        # mismatch too (chosen without the random stream, its invoice priced as any other)
        if plant.invoice is not None and plant.rule not in STREAM_NEUTRAL_PLANTS:
            money.unprice(plant.invoice)
    money.settle(g.custs, set(planted))
    if not g.events:
        return
    g.events.sort(key=lambda e: e[0])
    ids = money_event_ids(g.seed)
    added = [BEvent(id=ids.long("evt_"), type=kind, created=t, object_kind=obj_kind, object_id=oid)
             for t, kind, obj_kind, oid in g.events]
    g.events = []
    b = g.billing
    b.events = sorted([*b.events, *added], key=lambda e: e.created)  # stable: at a tie, earlier kinds first


def _emit_events(g: _Gen) -> None:
    g.events.sort(key=lambda e: e[0])
    out = g.billing.events
    ids = g.ids
    for t, kind, obj_kind, oid in g.events:
        out.append(BEvent(id=ids.long("evt_"), type=kind, created=t, object_kind=obj_kind, object_id=oid))
    g.events = []

