"""Phase 1, the catalog: one billing product per plan and one price per plan, interval and
currency (``lookup_key`` = ``{plan}_{monthly|yearly}_{currency}``, shared with the ERP product
code), and the human description of a subscription line."""

from __future__ import annotations

from services.core.currency import exponent, from_minor
from services.demo.generator.state import _Gen
from services.demo.store import BPrice, BProduct

#: the symbol written before an amount in a line's description (a currency without one is
#: written after the amount by its code: "9.000 KWD")
_SYMBOLS = {"usd": "$", "eur": "€", "gbp": "£", "jpy": "¥"}
#: the ERP's currency names (``currency.currency``), by lower-case code
CURRENCY_NAMES = {"usd": "US Dollar", "eur": "Euro", "gbp": "Pound Sterling", "jpy": "Yen",
                  "kwd": "Kuwaiti Dinar"}


def currencies(g: _Gen) -> list[str]:
    """The currencies the catalog prices in (lower case), in the seed file's order."""
    out: list[str] = []
    for plan in g.p.plans:
        for cur, _ in (*plan.monthly, *plan.yearly):
            if cur not in out:
                out.append(cur)
    return out


def _build_catalog(g: _Gen) -> None:
    b = g.billing
    t = g.setup_ts
    for pi, plan in enumerate(g.p.plans):
        prod = BProduct(id=g.ids.short("prod_"), name=plan.name, created=t,
                        metadata={"tier": plan.tier, "plan": plan.key},
                        description=f"{plan.name} plan ({plan.tier} support)", updated=t)
        b.products[prod.id] = prod
        for months, table, label in ((1, plan.monthly, "monthly"), (12, plan.yearly, "yearly")):
            for cur, amount in table:
                price = BPrice(id=g.ids.long("price_"), product=prod.id, unit_amount=amount,
                               currency=cur, interval="month" if months == 1 else "year",
                               lookup_key=f"{plan.key}_{label}_{cur}", created=t,
                               nickname=f"{plan.name} {label} ({cur.upper()})",
                               metadata={"tier": plan.tier})
                b.prices[price.id] = price
                g.price_by_key[(pi, months, cur)] = price
                g.price_plan[price.id] = pi
                g.price_months[price.id] = months


def _desc(g: _Gen, price: BPrice, qty: int) -> str:
    key = (price.id, qty)
    s = g.line_desc.get(key)
    if s is None:
        plan = g.p.plans[g.price_plan[price.id]]
        unit = from_minor(price.unit_amount, price.currency)  # exact, with the currency's exponent
        value = f"{unit:,.{exponent(price.currency)}f}"
        sym = _SYMBOLS.get(price.currency)
        amount = f"{sym}{value}" if sym else f"{value} {price.currency.upper()}"
        s = g.line_desc[key] = f"{qty} × {plan.name} (at {amount} / {price.interval})"
    return s

