"""Phase 3, the planted mismatches: which customer carries which rule and variant (one plant
per customer, most constrained rules first, so small datasets still get every rule), and how
a plant changes what the mirrors get — the billing copy of master data, the ERP invoices of a
planted billing invoice, the terms of a planted ERP subscription — with its manifest entry.

The plants that decide whether a mirror record exists at all are applied where the record is
made: ``customer.unmapped_erp`` in ``erp._build_parties``; ``customer.unmapped_support``, the
support name of ``customer.master_drift`` and the ``entitlement.*`` rules in
``support._build_support``; ERP orphans in ``erp_invoices._orphan_specs``. What each rule means
is the contract in ``services/demo/dataset.py``."""

from __future__ import annotations

from datetime import date

from services.core.currency import amount_text, exponent, format_money, from_minor
from services.demo.generator.billing import _tax_id
from services.demo.generator.dates import DAY
from services.demo.generator.ground_truth import ACTIVE_STATUSES
from services.demo.generator.seed import CountrySpec
from services.demo.generator.state import _Cust, _ErpInv, _Gen, _Plant
from services.demo.store import BInvoice, BPrice, BSubscription, ManifestEntry

# --------------------------------------------------------------------------------------
# Choosing where to plant
# --------------------------------------------------------------------------------------

_VARIANTS: dict[str, tuple[str, ...]] = {
    "customer.unmapped_erp": ("candidate", "none"),
    "customer.unmapped_support": ("candidate", "none"),
    "customer.master_drift": ("name", "tax_id", "country", "support_name"),
    "invoice.missing_in_erp": ("absent", "cancelled_only"),
    "invoice.not_posted_in_erp": ("draft", "validated"),
    "invoice.amount_mismatch": ("draft_amount", "posted_amount"),
    "invoice.currency_mismatch": ("posted", "draft"),
    "invoice.tax_mismatch": ("same_total",),
    "subscription.proration_mismatch": ("full_period", "no_credit"),
    "invoice.duplicate_in_erp": ("posted", "draft"),
    "invoice.payment_state": ("void_posted", "paid_not_recorded"),
    "invoice.orphan_in_erp": ("customer", "legacy"),
    "subscription.terms_mismatch": ("plan", "quantity", "period_end"),
    "entitlement.missing": ("none",),
    "entitlement.tier_mismatch": ("stale",),
    "entitlement.orphan": ("cancelled",),
}

# most constrained first, so small datasets still get every rule
_PLANT_ORDER = ("entitlement.orphan", "invoice.payment_state", "invoice.amount_mismatch", "invoice.currency_mismatch",
                "customer.unmapped_support", "subscription.terms_mismatch", "entitlement.missing",
                "entitlement.tier_mismatch", "invoice.missing_in_erp", "invoice.not_posted_in_erp",
                "invoice.duplicate_in_erp",
                "customer.unmapped_erp", "customer.master_drift", "invoice.orphan_in_erp",
                # last, and chosen without the random stream: only the money makes it possible (a
                # taxed invoice), and switching the money off leaves every other plant as it is
                "invoice.tax_mismatch",
                # after it, without the random stream too: the plants before stay where they were
                "subscription.proration_mismatch")


def _erp_invoices(g: _Gen, cu: _Cust, status: str | None = None) -> list[BInvoice]:
    """Billing invoices of ``cu`` that are surely in the ERP (older than 2 hours)."""
    limit = g.A - 7200
    out = []
    for inv in cu.invoices:
        if inv.finalized_at is None or inv.total <= 0 or inv.finalized_at > limit:
            continue
        if status is None:
            if inv.status != "void":
                out.append(inv)
        elif inv.status == status:
            if status == "paid" and (inv.paid_at or g.A) > limit:
                continue
            if status == "void" and (inv.voided_at or g.A) > limit:
                continue
            out.append(inv)
    return out


def _eligible(g: _Gen, cu: _Cust, rule: str, variant: str) -> _Plant | None:
    if not cu.subs or cu.force is not None:
        return None
    rng = g.rng
    if rule == "entitlement.orphan":
        return None if cu.active else _Plant(rule, variant)
    if rule in ("customer.unmapped_support", "entitlement.missing", "entitlement.tier_mismatch"):
        return _Plant(rule, variant) if cu.active else None
    if rule == "subscription.terms_mismatch":
        subs = [s for s, _ in cu.subs if s.status in ACTIVE_STATUSES]
        return _Plant(rule, variant, sub=rng.choice(subs)) if subs else None
    if rule == "invoice.payment_state":
        invs = _erp_invoices(g, cu, "void" if variant == "void_posted" else "paid")
        return _Plant(rule, variant, invoice=rng.choice(invs)) if invs else None
    if rule == "invoice.tax_mismatch":
        # a taxed invoice (its ERP copy books part of the tax as revenue: the same total)
        invs = [inv for inv in _erp_invoices(g, cu) if sum(ln.tax_amount for ln in inv.lines) >= 2]
        return _Plant(rule, variant, invoice=invs[-1]) if invs else None
    if rule == "subscription.proration_mismatch":
        # the latest invoice of a mid-period change whose proration lines the copy can leave out
        invs = [inv for inv in _erp_invoices(g, cu) if _proration_lines(inv, variant)]
        return _Plant(rule, variant, invoice=invs[-1]) if invs else None
    if rule in ("invoice.missing_in_erp", "invoice.not_posted_in_erp", "invoice.amount_mismatch",
                "invoice.currency_mismatch", "invoice.duplicate_in_erp"):
        invs = _erp_invoices(g, cu)
        if not invs:
            return None
        pick = invs[-1] if variant == "draft_amount" else rng.choice(invs)
        return _Plant(rule, variant, invoice=pick)
    return _Plant(rule, variant)  # unmapped_erp, master_drift, orphan_in_erp: any subscriber


def _proration_lines(inv: BInvoice, variant: str) -> list[int]:
    """The indexes of the lines of ``inv`` a ``subscription.proration_mismatch`` copy leaves out:
    every proration line (``full_period``: the change booked as a full period) or the credits for
    unused time only (``no_credit``); none when that would not change the net, or leave nothing."""
    nets = [ln.amount - ln.discount_amount for ln in inv.lines]
    drop = [i for i, ln in enumerate(inv.lines) if ln.proration and (variant == "full_period" or nets[i] < 0)]
    kept = sum(n for i, n in enumerate(nets) if i not in drop)
    if not drop or any(nets[i] == 0 for i in drop) or sum(nets[i] for i in drop) == 0 or kept <= 0:
        return []
    return drop


def _choose_plants(g: _Gen) -> None:
    """Pick a distinct customer for every planted instance (variants alternate; when a
    variant finds no eligible customer, the rule's other variants are tried)."""
    n = g.n
    pool = list(range(len(g.custs)))
    g.rng.shuffle(pool)
    used: set[int] = set()
    cursors: dict[tuple[str, str], int] = {}
    for rule in _PLANT_ORDER:
        rate = g.p.mismatch_rate(rule) if g.mismatch_rate is None else g.mismatch_rate
        if rate <= 0:
            continue
        want = max(2 if n >= 50 else 0, round(rate * n))
        variants = _VARIANTS[rule]
        for k in range(want):
            first = variants[k % len(variants)]
            if rule == "invoice.orphan_in_erp" and first == "legacy":
                g.legacy_orphans += 1
                continue
            if k == 0 and rule == "invoice.tax_mismatch" and _find_odd_currency(g, pool, used, rule, first):
                continue  # the first in a currency without two decimals, when the dataset has one
            for variant in (first, *[v for v in variants if v != first]):
                if variant == "legacy" or _find(g, pool, used, cursors, rule, variant):
                    break


def _find_odd_currency(g: _Gen, pool: list[int], used: set[int], rule: str, variant: str) -> bool:
    """Plant ``rule`` on the first eligible customer (in the pool's order) billed in a currency
    whose minor unit is not a hundredth (JPY: none; KWD: a thousandth), so the rule is seen at
    that precision too; no random draw and no cursor moves, so every other plant stays put."""
    for i in pool:
        cu = g.custs[i]
        if i in used or exponent(cu.c.currency or "usd") == 2:
            continue
        plant = _eligible(g, cu, rule, variant)
        if plant is not None:
            used.add(i)
            g.plants[cu.c.id] = plant
            return True
    return False


def _find(g: _Gen, pool: list[int], used: set[int], cursors: dict[tuple[str, str], int], rule: str,
          variant: str) -> bool:
    pos = cursors.get((rule, variant), 0)
    while pos < len(pool):
        i = pool[pos]
        pos += 1
        if i in used:
            continue
        cu = g.custs[i]
        plant = _eligible(g, cu, rule, variant)
        if plant is not None:
            used.add(i)
            g.plants[cu.c.id] = plant
            cursors[(rule, variant)] = pos
            return True
    cursors[(rule, variant)] = pos
    return False


# --------------------------------------------------------------------------------------
# Applying the plants
# --------------------------------------------------------------------------------------


def _apply_master_plants(g: _Gen) -> None:
    """Master-data plants that change the billing copy (rule 3 variants name/tax_id/country)."""
    for cu in g.custs:
        plant = g.plants.get(cu.c.id)
        if plant is None or plant.rule != "customer.master_drift":
            continue
        c = cu.c
        if plant.variant == "name":
            c.name = _stale_name(cu.legal_name)
            plant_detail = f"billing name {c.name!r}, ERP {cu.legal_name!r}"
        elif plant.variant == "tax_id":
            if cu.legal_tax is None:
                cu.legal_tax = _tax_id(g, _country(g, c.country).tax_format)
                c.tax_id = None
            else:
                c.tax_id = _bump_digit(cu.legal_tax)
            plant_detail = f"billing tax id {c.tax_id!r}, ERP {cu.legal_tax!r}"
        elif plant.variant == "country":
            others = [x.code for x in g.p.countries if x.code != cu.legal_country]
            c.country = g.rng.choice(others) if others else "ZZ"
            plant_detail = f"billing country {c.country}, ERP {cu.legal_country}"
        else:
            plant_detail = f"support organization name {_stale_name(cu.legal_name)!r}, ERP {cu.legal_name!r}"
        g.manifest.append(ManifestEntry("customer.master_drift", c.id, c.id, plant_detail))


def _country(g: _Gen, code: str | None) -> CountrySpec:
    for c in g.p.countries:
        if c.code == code:
            return c
    return g.p.countries[0]


def _stale_name(name: str) -> str:
    words = name.split()
    if len(words) > 2:
        return " ".join(words[:-1])
    return f"{name} Group"


def _bump_digit(tax: str) -> str:
    for i in range(len(tax) - 1, -1, -1):
        if tax[i].isdigit():
            return tax[:i] + str((int(tax[i]) + 1) % 10) + tax[i + 1:]
    return tax + "1"


def _planted_invoice_specs(g: _Gen, plant: _Plant, spec: _ErpInv) -> list[_ErpInv]:
    rng = g.rng
    inv = spec.binv
    assert inv is not None
    cid = inv.customer
    total = format_money(from_minor(inv.total, inv.currency), inv.currency)  # "184,800 JPY", "1,234.50 EUR"
    v = plant.variant
    if plant.rule == "invoice.missing_in_erp":
        g.manifest.append(ManifestEntry(plant.rule, cid, inv.id, f"billing {inv.number} ({total}) not in the ERP"
                                        + (" (only a cancelled copy)" if v == "cancelled_only" else "")))
        if v == "cancelled_only":
            spec.state, spec.write = "cancelled", g.clip(spec.create + g.ri(600, DAY))
            spec.was_posted = False
            return [spec]
        return []
    if plant.rule == "invoice.not_posted_in_erp":
        # final in billing, never posted in the ERP (a posting that failed): a draft, or a
        # draft validated by hand; same lines, total and currency as billing
        spec.state, spec.was_posted = v, False
        spec.write = g.clip(spec.create + g.ri(60, 3600)) if v == "validated" else None
        g.manifest.append(ManifestEntry(plant.rule, cid, inv.id, f"billing {inv.number} ({total}) is {inv.status}, "
                                        f"the ERP copy is still {v}"))
        return [spec]
    if plant.rule == "invoice.amount_mismatch":
        first = inv.lines[-1]
        lines = [(ln.price, ln.description, ln.quantity, ln.amount) for ln in inv.lines]
        unit = first.amount // max(first.quantity, 1)
        lines[-1] = (first.price, first.description, first.quantity + 1, first.amount + unit)
        spec.lines = lines
        if v == "draft_amount":
            spec.state, spec.write = "draft", None
        erp_total = amount_text(from_minor(inv.total + unit, inv.currency), inv.currency)
        g.manifest.append(ManifestEntry(plant.rule, cid, inv.id, f"ERP total {erp_total}, billing {total}"))
        return [spec]
    if plant.rule == "invoice.currency_mismatch":
        # the same lines and amounts, booked in another currency (a draft, or posted)
        others = [c for c in ("usd", "eur", "gbp") if c != inv.currency]
        spec.currency = rng.choice(others)
        if v == "draft":
            spec.state, spec.write = "draft", None
        g.manifest.append(ManifestEntry(plant.rule, cid, inv.id, f"ERP currency {spec.currency.upper()}, "
                                        f"billing {inv.currency.upper()}"))
        return [spec]
    if plant.rule == "invoice.tax_mismatch":
        # the ERP copy books part of the billed tax as revenue: its tax is short, its net as much
        # higher, its total billing's to the cent
        tax = sum(ln.tax_amount for ln in inv.lines)
        spec.tax_shift = max(1, tax // 10)
        short = format_money(from_minor(tax - spec.tax_shift, inv.currency), inv.currency)
        billed = format_money(from_minor(tax, inv.currency), inv.currency)
        g.manifest.append(ManifestEntry(plant.rule, cid, inv.id, f"ERP tax {short}, billing {billed} "
                                        f"(same total {total})"))
        return [spec]
    if plant.rule == "subscription.proration_mismatch":
        # the copy booked without (some of) the proration lines of a mid-period change: taxed as
        # the lines it keeps are (trytond's own computation)
        spec.dropped = frozenset(_proration_lines(inv, v))
        nets = [ln.amount - ln.discount_amount for ln in inv.lines]
        net = sum(nets)
        erp_net = net - sum(nets[i] for i in spec.dropped)
        cur = inv.currency
        how = ("as a full period, without its proration lines" if v == "full_period"
               else "without its credit for unused time")
        g.manifest.append(ManifestEntry(plant.rule, cid, inv.id, f"ERP copy of {inv.number} booked {how}: ERP net "
                                        f"{amount_text(from_minor(erp_net, cur), cur)}, billing "
                                        f"{amount_text(from_minor(net, cur), cur)} {cur.upper()}"))
        return [spec]
    if plant.rule == "invoice.duplicate_in_erp":
        dup_t = g.clip(spec.create + g.ri(120, 1800))
        dup = _ErpInv(dup_t, None, inv, spec.state if v == "posted" else "draft", None)
        if v == "posted" and spec.write is not None:
            dup.write = max(dup_t, spec.write)
        g.manifest.append(ManifestEntry(plant.rule, cid, inv.id, f"billing {inv.number} posted twice in the ERP"
                                        + (" (second copy in draft)" if v == "draft" else "")))
        return [spec, dup]
    if plant.rule == "invoice.payment_state":
        if v == "void_posted":
            spec.state, spec.write, spec.was_posted = "posted", None, False
            detail = f"void in billing, ERP still posted ({total})"
        else:
            spec.state, spec.write = "posted", None
            detail = f"paid in billing, ERP still posted ({total})"
        g.manifest.append(ManifestEntry(plant.rule, cid, inv.id, detail))
        return [spec]
    return [spec]


def _plant_terms(g: _Gen, plant: _Plant, sub: BSubscription, price: BPrice, service: int, qty: int,
                 next_date: date | None) -> tuple[int, int, date | None, str]:
    v = plant.variant
    if v == "plan":
        pi = g.price_plan[price.id]
        other = pi - 1 if pi > 0 else pi + 1
        old = g.price_by_key[(other, g.price_months[price.id], price.currency)]
        return (g.erp_service[old.id], qty, next_date,
                f"ERP plan {old.lookup_key}, billing {price.lookup_key}")
    if v == "quantity":
        new_qty = qty - 1 if qty > 1 else qty + 2
        return service, new_qty, next_date, f"ERP quantity {new_qty}, billing {qty}"
    stale = g.day(sub.current_period_start)
    return service, qty, stale, f"ERP next invoice {stale}, billing period end {g.day(sub.current_period_end)}"

