"""Phase 4, the ERP mirror: the company, currencies, countries, products and subscription
services; one party per mapped customer (ERP-owned name, tax id, address, e-mail); the sale
subscriptions following billing at once. :func:`_build_erp` runs the phase, the customer
invoices included (``erp_invoices``)."""

from __future__ import annotations

from datetime import date

from services.core.currency import exponent
from services.demo.generator.catalog import _SYMBOLS, CURRENCY_NAMES, currencies
from services.demo.generator.erp_credits import _credit_note_specs
from services.demo.generator.erp_invoices import _erp_invoice_specs, _insert_erp_invoices, _orphan_specs
from services.demo.generator.erp_taxes import _assign_tax_rules, _build_erp_taxes
from services.demo.generator.ground_truth import ACTIVE_STATUSES
from services.demo.generator.plants import _apply_master_plants, _plant_terms
from services.demo.generator.state import _Cust, _erp_base, _Gen
from services.demo.generator.truth import record_postings
from services.demo.store import BSubscription, ManifestEntry


def _build_erp_setup(g: _Gen) -> int:
    erp = g.erp
    t = g.setup_ts
    co = g.p.company
    for cur in currencies(g):  # each with its ISO 4217 exponent as its digits (JPY 0, KWD 3)
        name = CURRENCY_NAMES.get(cur, cur.upper())
        g.erp_currency[cur] = erp.insert("currency.currency", _erp_base(g, {
            "name": name, "code": cur.upper(), "symbol": _SYMBOLS.get(cur, cur.upper()), "digits": exponent(cur),
        }, t, None, name))
    for c in g.p.countries:
        g.erp_country[c.code] = erp.insert("country.country", _erp_base(g, {"name": c.name, "code": c.code},
                                                                      t, None, c.name))
    if co.country not in g.erp_country:
        g.erp_country[co.country] = erp.insert("country.country", _erp_base(
            g, {"name": co.country, "code": co.country}, t, None, co.country))
    party = erp.insert("party.party", _erp_base(g, {
        "name": co.name, "code": co.party_code, "active": True, "identifiers": [], "addresses": [],
        "contact_mechanisms": [], "tax_identifier": None, "email": None}, t, None, co.name))
    company = erp.insert("company.company", _erp_base(g, {
        "party": party, "currency": g.erp_currency[co.currency]}, t, None, co.name))
    erp.insert("res.user", _erp_base(g, {
        "login": g.creds.tryton_login, "name": "Administrator", "company": company,
        "language": "en", "active": True}, t, None, "Administrator"))
    erp.passwords[g.creds.tryton_login] = g.creds.tryton_password
    for pi, plan in enumerate(g.p.plans):
        for months, label in ((1, "monthly"), (12, "yearly")):
            tname = f"{plan.name} ({label})"
            usd = g.price_by_key.get((pi, months, "usd"))
            products: list[int] = []
            tid = erp.insert("product.template", _erp_base(g, {
                "name": tname, "type": "service",
                "list_price": g.dec(usd.unit_amount if usd else 0, "usd"), "products": products}, t, None, tname))
            for cur in currencies(g):
                price = g.price_by_key.get((pi, months, cur))
                if price is None:
                    continue
                rn = f"[{price.lookup_key}] {tname}"
                pid = erp.insert("product.product", _erp_base(g, {
                    "template": tid, "code": price.lookup_key, "name": tname, "active": True}, t, None, rn))
                products.append(pid)
                g.erp_product[price.id] = pid
                sid = erp.insert("sale.subscription.service", _erp_base(g, {"product": pid}, t, None, rn))
                g.erp_service[price.id] = sid
                g.service_price[sid] = price.id
    return company


def _insert_party(g: _Gen, cu: _Cust, code: str | None, create: int, name: str, tax: str | None,
                  country: str) -> int:
    erp = g.erp
    rng = g.rng
    identifiers: list[int] = []
    addresses: list[int] = []
    mechanisms: list[int] = []
    pid = erp.insert("party.party", _erp_base(g, {
        "name": name, "code": code, "active": True, "identifiers": identifiers, "addresses": addresses,
        "contact_mechanisms": mechanisms, "tax_identifier": None, "email": cu.c.email}, create, None, name))
    spec = next((c for c in g.p.countries if c.code == country), None)
    if tax is not None:
        ident = erp.insert("party.identifier", _erp_base(g, {
            "party": pid, "type": spec.tax_type if spec else "eu_vat", "code": tax}, create, None, tax))
        identifiers.append(ident)
        erp.tables["party.party"][pid]["tax_identifier"] = ident
    city = rng.choice(spec.cities) if spec else ""
    street = f"{g.ri(1, 250)} {rng.choice(g.p.names.first)} Street"
    addr = erp.insert("party.address", _erp_base(g, {
        "party": pid, "country": g.erp_country.get(country), "city": city, "street": street,
        "postal_code": f"{g.ri(10000, 99999)}"}, create, None, f"{street}, {city}"))
    addresses.append(addr)
    if cu.c.email:
        mechanisms.append(erp.insert("party.contact_mechanism", _erp_base(g, {
            "party": pid, "type": "email", "value": cu.c.email}, create, None, cu.c.email)))
    if code is not None:
        g.erp_party[code] = pid
        g.erp_address[code] = addr
    return pid


def _build_parties(g: _Gen) -> None:
    todo: list[tuple[int, int, _Cust]] = []
    for n, cu in enumerate(g.custs):
        if cu.first_sub_at is None:
            continue
        todo.append((g.clip(cu.first_sub_at + g.ri(60, 600)), n, cu))
    todo.sort(key=lambda x: (x[0], x[1]))
    for create, _, cu in todo:
        plant = g.plants.get(cu.c.id)
        if plant is not None and plant.rule == "customer.unmapped_erp":
            if plant.variant == "candidate":
                _insert_party(g, cu, None, create, cu.legal_name, cu.legal_tax, cu.legal_country)
                detail = "no ERP party; candidate party with the same tax id/name has no code"
            else:
                detail = "no ERP party with this code"
            g.manifest.append(ManifestEntry(plant.rule, cu.c.id, cu.c.id, detail))
            continue
        _insert_party(g, cu, cu.c.id, create, cu.legal_name, cu.legal_tax, cu.legal_country)


def _build_erp_subscriptions(g: _Gen, company: int) -> None:
    erp = g.erp
    prices = g.billing.prices
    todo: list[tuple[int, BSubscription, int]] = []
    for cu in g.custs:
        if cu.c.id not in g.erp_party:
            continue
        for sub, changed in cu.subs:
            todo.append((g.clip(sub.created + g.ri(60, 600)), sub, changed))
    todo.sort(key=lambda x: x[0])
    prefix = g.p.company.erp_subscription_prefix
    for n, (create, sub, changed) in enumerate(todo, 1):
        item = sub.items[0]
        price = prices[item.price]
        running = sub.status in ACTIVE_STATUSES
        service = g.erp_service[price.id]
        qty = item.quantity
        next_date: date | None = g.day(sub.current_period_end) if running else None
        plant = g.plants.get(sub.customer)
        if plant is not None and plant.sub is sub:
            service, qty, next_date, detail = _plant_terms(g, plant, sub, price, service, qty, next_date)
            g.manifest.append(ManifestEntry(plant.rule, sub.customer, sub.id, detail))
        last = max(changed, sub.current_period_start, sub.ended_at or 0)
        write = g.clip(max(create, last + g.ri(60, 600))) if last > sub.created else None
        number = f"{prefix}{n:06d}"
        lines: list[int] = []
        erp_sub = erp.insert("sale.subscription", _erp_base(g, {
            "number": number, "reference": sub.id, "party": g.erp_party[sub.customer], "company": company,
            "currency": g.erp_currency[sub.currency], "state": "running" if running else "closed",
            "start_date": g.day(sub.start_date),
            "end_date": None if running else g.day(sub.ended_at or sub.current_period_end),
            "next_invoice_date": next_date, "lines": lines}, create, write, number))
        svc_rec = erp.tables["sale.subscription.service"][service]
        svc_price = prices[g.service_price[service]]
        lines.append(erp.insert("sale.subscription.line", _erp_base(g, {
            "subscription": erp_sub, "service": service, "quantity": g.flt(qty),
            "unit_price": g.dec(svc_price.unit_amount, svc_price.currency),
            "start_date": g.day(max(changed, sub.start_date)),
            "end_date": None if running else g.day(sub.ended_at or sub.current_period_end)},
            create, write, svc_rec["rec_name"])))


def _build_erp(g: _Gen) -> None:
    company = _build_erp_setup(g)
    taxes = _build_erp_taxes(g, company)
    _apply_master_plants(g)
    _build_parties(g)
    _assign_tax_rules(g, taxes)
    specs = _erp_invoice_specs(g)
    specs.extend(_orphan_specs(g))
    specs.extend(_credit_note_specs(g, specs))  # after the copies are known, from a stream of its own
    _insert_erp_invoices(g, company, specs, taxes)
    record_postings(g, specs)  # the true posting lags (services/demo/generator/truth.py)
    _build_erp_subscriptions(g, company)
