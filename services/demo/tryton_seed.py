"""Seeding a real Tryton 8.2 database with the demo company's ERP side (runs in its own process).

``python -m services.demo.tryton_seed --config CONF --database DB --customers N --seed S
--anchor A`` turns the process into a trytond process (trytond's configuration is process-
global, so :func:`services.demo.tryton_sandbox.build_template` runs it as a subprocess) and
writes the ERP store of ``services.demo.dataset.generate(customers, seed, anchor=...)`` into
the initialised database: the same parties (codes, identifiers, addresses, e-mails), products
(code = billing price ``lookup_key``), customer invoices (draft, validated, posted, paid, cancelled;
numbered ``INV-000001``... in the demo's order, billing invoice id in ``reference``) and sale
subscriptions (running, closed; ``SUB-000001``...), planted finance mismatches included. It
writes ``seed-stats.json`` (counts, timings, demo id -> real id maps) beside the configuration.
trytond and proteus are imported inside the functions only: importing this module needs neither.

Real Tryton differs from the demo store where the demo store cannot be real; the seeding
keeps the closest real equivalent:

- a party's ``code`` is required: parties without one get the next code of Tryton's party
  sequence (a plain number), not an empty code;
- tax identifiers whose type Tryton validates (``eu_vat``, ``gb_vat``, ...) and whose check
  digits are wrong are stored with no type (Tryton refuses them); valid ones are stored in
  Tryton's formatted form (``GB 123 4567 89``);
- ``create_date`` / ``write_date`` of the seeded records are set to the dataset's history;
  the seeded invoices' reports are not rendered (the queued ``print_invoice`` tasks are
  dropped: ~1 s each), and payments are recorded with a cash payment method so that paid
  invoices are really ``paid`` (reconciled);
- the taxes are the demo's (``account.tax.group``, ``account.tax``: same names, rates, legal
  notices; invoice and credit-note account: the chart's tax account; the customer tax rules and
  each party's ``customer_tax_rule``), the company rounds tax per
  line as the demo's does (``schema.TAX_ROUNDING``), invoice lines carry the demo lines' taxes and
  trytond computes the invoice taxes itself; the demo's manual invoice taxes (the billed
  rounding) are created as manual taxes; every seeded invoice's untaxed, tax and total amounts
  are checked against the demo's; the demo's credit notes (the integration's booking of
  billing's credit notes and full refunds) are seeded alike, numbered in the same sequence, their
  lines' ``origin`` the seeded lines they credit;
- the currencies are the demo's with their own digits and rounding (JPY 0 digits, rounding 1;
  KWD 3 digits, rounding 0.001) and the demo's rates (``currency.currency.rate``);
- one fiscal year spans from a year before the anchor to the end of next year, so invoices
  dated today can be posted after the seeded ones (invoice numbers are strictly sequenced).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from services.demo.tryton.schema import TAX_ROUNDING
from services.demo.tryton_sandbox import SandboxError, fiscal_year_bounds

CURRENCY_NAMES = {"USD": ("US Dollar", "$"), "EUR": ("Euro", "€"), "GBP": ("Pound Sterling", "£")}


def _seed(config_file: Path, database: str, customers: int, seed: int, anchor: int) -> dict[str, Any]:
    """Seed the initialised ``database`` with the demo company's ERP store (this process
    becomes a trytond process: call it only in the ``python -m services.demo.tryton_seed``
    subprocess)."""
    from decimal import Decimal

    from proteus import Model
    from proteus import config as pconfig
    from trytond.modules.account.tests.tools import create_chart, create_fiscalyear, get_accounts
    from trytond.modules.company.tests.tools import create_company

    from services.demo.dataset import generate

    timings: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[name] = round(now - clock, 2)
        print(f"  seeded {name} in {now - clock:.1f} s", file=sys.stderr, flush=True)
        clock = now

    ds = generate(customers, seed, anchor=anchor)
    erp = ds.erp
    T = erp.tables
    pconfig.set_trytond(database, config_file=str(config_file))
    lap("generate+pool")

    # -- master data through proteus (the modules' own test helpers) ---------------------
    Currency = Model.get("currency.currency")
    Rate = Model.get("currency.currency.rate")
    currency_ids: dict[int, int] = {}  # demo id -> real id
    for cid, cur in T["currency.currency"].items():
        code = cur["code"]
        name, symbol = CURRENCY_NAMES.get(code, (cur["name"], cur.get("symbol")))
        digits = cur["digits"] if isinstance(cur.get("digits"), int) else 2  # JPY 0, KWD 3, as the demo's
        real = Currency(name=name, code=code, symbol=symbol, rounding=Decimal(1).scaleb(-digits), digits=digits)
        real.save()
        for rate in sorted((r for r in T["currency.currency.rate"].values() if r["currency"] == cid),
                           key=lambda r: r["id"]):
            Rate(date=rate["date"], rate=rate["rate"], currency=real).save()
        currency_ids[cid] = real.id
    Country = Model.get("country.country")
    country_ids: dict[int, int] = {}
    for cid, country in T["country.country"].items():
        real = Country(name=country["name"], code=country["code"])
        real.save()
        country_ids[cid] = real.id
    Party = Model.get("party.party")
    [company_rec] = T["company.company"].values()
    company_party_rec = T["party.party"][company_rec["party"]]
    company_party = Party(name=company_party_rec["name"], code=company_party_rec["code"])
    company_party.save()
    create_company(company_party, Currency(currency_ids[company_rec["currency"]]))
    Company = Model.get("company.company")
    [company] = Company.find()
    company.cancel_invoice_out = True  # voided billing invoices cancel posted ERP invoices
    company.save()
    lap("company")

    create_chart(company)
    accounts = get_accounts(company)
    start, end = fiscal_year_bounds(anchor)
    fiscalyear = create_fiscalyear(company, (start, end))
    fiscalyear.name = f"{start:%Y-%m}..{end:%Y-%m}"
    SequenceStrict = Model.get("ir.sequence.strict")
    SequenceType = Model.get("ir.sequence.type")
    [invoice_type] = SequenceType.find([("name", "=", "Invoice")], limit=1)
    invoice_seq = SequenceStrict(name="Customer invoices", sequence_type=invoice_type, company=company,
                                 prefix="INV-", padding=6)
    invoice_seq.save()
    [seq] = fiscalyear.invoice_sequences
    seq.out_invoice_sequence = invoice_seq
    seq.in_invoice_sequence = invoice_seq
    seq.out_credit_note_sequence = invoice_seq
    seq.in_credit_note_sequence = invoice_seq
    fiscalyear.save()
    fiscalyear.click("create_period")
    lap("chart+fiscal year")

    PaymentTerm = Model.get("account.invoice.payment_term")
    term = PaymentTerm(name="Term 30 days")
    term_line = term.lines[0] if term.lines else term.lines.new()
    term_line.type = "remainder"
    delta = term_line.relativedeltas[0] if term_line.relativedeltas else term_line.relativedeltas.new()
    delta.days = 30
    term.save()
    AccountConfig = Model.get("account.configuration")
    account_config = AccountConfig(1)
    account_config.default_customer_payment_term = term
    # a foreign-currency invoice whose lines' converted amounts round apart from its total gets an
    # exchange move line: Tryton needs these accounts to post it (the demo ERP keeps no moves)
    account_config.currency_exchange_credit_account = accounts["revenue"]
    account_config.currency_exchange_debit_account = accounts["expense"]
    account_config.tax_rounding = TAX_ROUNDING
    account_config.save()
    TaxGroup = Model.get("account.tax.group")
    Tax = Model.get("account.tax")
    group_ids: dict[int, int] = {}
    for gid, grp in sorted(T["account.tax.group"].items()):
        real_group = TaxGroup(name=grp["name"], code=grp["code"], kind=grp["kind"])
        real_group.save()
        group_ids[gid] = real_group.id
    tax_ids: dict[int, int] = {}
    for tid, tax in sorted(T["account.tax"].items()):
        real_tax = Tax(name=tax["name"], description=tax["description"], type=tax["type"], rate=tax["rate"],
                       invoice_account=accounts["tax"], credit_note_account=accounts["tax"])
        if tax.get("legal_notice") is not None:  # (proteus would store an empty text for None)
            real_tax.legal_notice = tax["legal_notice"]
        if tax.get("group") is not None:
            real_tax.group = TaxGroup(group_ids[tax["group"]])
        real_tax.save()
        tax_ids[tid] = real_tax.id
    TaxRule = Model.get("account.tax.rule")
    rule_ids: dict[int, int] = {}
    for rid, rule in sorted(T["account.tax.rule"].items()):
        real_rule = TaxRule(name=rule["name"], kind=rule["kind"], company=company)
        for lid in rule["lines"]:
            line = T["account.tax.rule.line"][lid]
            new = real_rule.lines.new()
            new.tax = Tax(tax_ids[line["tax"]]) if line.get("tax") is not None else None
            new.keep_origin = bool(line.get("keep_origin"))
        real_rule.save()
        rule_ids[rid] = real_rule.id
    Journal = Model.get("account.journal")
    [cash_journal] = Journal.find([("code", "=", "CASH")], limit=1) or Journal.find([("type", "=", "cash")],
                                                                                     limit=1)
    PaymentMethod = Model.get("account.invoice.payment.method")
    method = PaymentMethod(name="Bank transfer (billing platform)", company=company, journal=cash_journal,
                           credit_account=accounts["cash"], debit_account=accounts["cash"])
    method.save()
    Sequence = Model.get("ir.sequence")
    [subscription_seq] = Sequence.find([("sequence_type.name", "=", "Subscription")], limit=1)
    subscription_seq.prefix = "SUB-"  # numbers SUB-000001... as the demo's
    subscription_seq.padding = 6
    subscription_seq.save()

    Category = Model.get("product.category")
    category = Category(name="Subscriptions", accounting=True, account_revenue=accounts["revenue"],
                        account_expense=accounts["expense"])
    category.save()
    Uom = Model.get("product.uom")
    [unit] = Uom.find([("name", "=", "Unit")], limit=1)
    Template = Model.get("product.template")
    Service = Model.get("sale.subscription.service")
    RuleSet = Model.get("sale.subscription.recurrence.rule.set")
    rule_sets: dict[str, Any] = {}
    for freq in ("monthly", "yearly"):
        rule_set = RuleSet(name=freq.capitalize())
        rule = rule_set.rules[0] if rule_set.rules else rule_set.rules.new()  # the set comes with one rule
        rule.freq = freq
        rule.interval = 1
        rule_set.save()
        rule_sets[freq] = rule_set
    product_ids: dict[int, int] = {}
    service_ids: dict[int, int] = {}
    service_of_product = {svc["product"]: sid for sid, svc in T["sale.subscription.service"].items()}
    for tmpl in T["product.template"].values():
        template = Template(name=tmpl["name"], type=tmpl["type"], list_price=tmpl["list_price"],
                            default_uom=unit, account_category=category, salable=True)
        template.products.pop()  # the default variant: one per demo product instead
        for pid in tmpl["products"]:
            template.products.new(suffix_code=T["product.product"][pid]["code"])
        template.save()
        for pid, variant in zip(tmpl["products"], template.products, strict=True):
            product_ids[pid] = variant.id
    for pid, sid in sorted(service_of_product.items(), key=lambda x: x[1]):
        service = Service(product=Model.get("product.product")(product_ids[pid]))
        service.save()
        service_ids[sid] = service.id
    lap("setup")

    # -- the customer data: one transaction at the ORM level ---------------------------
    from trytond.pool import Pool
    from trytond.transaction import Transaction, TransactionError

    pool = Pool(database)
    user_id = pconfig.get_config().user
    context = {"company": company.id, "companies": [company.id], "language": "en", "_skip_warnings": True}
    stats: dict[str, Any] = {}
    # trytond asks for a restart of the transaction for every table / set of records it must
    # lock (strict sequences, reconciliations): each restart repeats the seeding. SQLite has one
    # writer and this process is the only client, so the locks are granted up front instead.
    Transaction.lock_table = lambda self, table: None
    Transaction.lock_records = lambda self, table, ids: None
    extras: dict[str, Any] = {}
    for _attempt in range(20):  # trytond asks for a restart with the records / tables it must lock
        with Transaction().start(database, user_id, context=context, **extras) as transaction:
            try:
                result = _seed_records(pool, transaction, T, company, company_rec, company_party, currency_ids,
                                       country_ids, product_ids, service_ids, accounts, term, unit, method,
                                       rule_sets, stats, lap, tax_ids, rule_ids)
            except TransactionError as exc:
                transaction.rollback()
                exc.fix(extras)
                print(f"  restarting the transaction with locks {extras}", file=sys.stderr, flush=True)
                continue
        break
    else:
        raise SandboxError("the seeding transaction kept asking for locks")
    party_ids, by_demo, sub_by_demo, pending = result
    if pending:
        from trytond.worker import run_task

        for task_id in pending:
            run_task(pool, task_id)
    stats["queued_tasks_run"] = len(pending)
    stats["timings"] = timings
    stats["id_maps"] = {"party.party": {str(k): v for k, v in party_ids.items()},
                        "account.invoice": {str(k): v.id for k, v in by_demo.items()},
                        "sale.subscription": {str(k): v.id for k, v in sub_by_demo.items()},
                        "product.product": {str(k): v for k, v in product_ids.items()},
                        "account.tax": {str(k): v for k, v in tax_ids.items()},
                        "account.tax.rule": {str(k): v for k, v in rule_ids.items()}}
    return stats


def _seed_records(pool: Any, transaction: Any, T: dict[str, dict[int, dict[str, Any]]], company: Any,
                  company_rec: dict[str, Any], company_party: Any, currency_ids: dict[int, int],
                  country_ids: dict[int, int], product_ids: dict[int, int], service_ids: dict[int, int],
                  accounts: dict[str, Any], term: Any, unit: Any, method: Any, rule_sets: dict[str, Any],
                  stats: dict[str, Any], lap: Callable[[str], None],
                  tax_ids: dict[int, int], rule_ids: dict[int, int]) -> tuple[Any, Any, Any, list[int]]:
    """Parties, invoices (posted, paid, cancelled) and subscriptions in one transaction."""
    from trytond.modules.party.party import get_cc_module

    from services.demo.dataset import normalize_tax_id

    P = pool.get("party.party")
    Invoice = pool.get("account.invoice")
    Subscription = pool.get("sale.subscription")
    MoveLine = pool.get("account.move.line")
    Queue = pool.get("ir.queue")
    PaymentMethodM = pool.get("account.invoice.payment.method")
    pay_method = PaymentMethodM(method.id)
    revenue_journal = pool.get("account.journal").search([("type", "=", "revenue")], limit=1)[0]

    #: the identifier types the party configuration offers (``get_types``: a type stdnum knows is
    #: refused when the configuration does not list it, e.g. ``ca_bn`` by default)
    offered = {kind for kind, _ in pool.get("party.identifier").get_types() if kind}

    def valid_type(kind: str | None, code: str) -> str | None:
        """The identifier type to store: the demo's when Tryton offers it, accepts the code (check
        digits) and its formatted form stays the same tax id (gb_vat drops the "GB" prefix); else none."""
        if not kind or "_" not in kind or kind not in offered:
            return None
        module = get_cc_module(*kind.split("_", 1))
        if module is None or not module.is_valid(code):
            return None
        formatted = module.format(code) if hasattr(module, "format") else code
        return kind if normalize_tax_id(formatted) == normalize_tax_id(code) else None

    party_ids: dict[int, int] = {company_rec["party"]: company_party.id}
    vlist = []
    demo_parties = [pid for pid in sorted(T["party.party"]) if pid != company_rec["party"]]
    for pid in demo_parties:
        rec = T["party.party"][pid]
        values: dict[str, Any] = {"name": rec["name"], "active": rec.get("active", True)}
        if rec.get("customer_tax_rule") is not None:
            values["customer_tax_rule"] = rule_ids[rec["customer_tax_rule"]]
        if rec.get("code"):
            values["code"] = rec["code"]
        idents = [T["party.identifier"][i] for i in rec["identifiers"]]
        if idents:
            values["identifiers"] = [("create", [{"type": valid_type(i["type"], i["code"]), "code": i["code"]}
                                                 for i in idents])]
        addrs = [T["party.address"][a] for a in rec["addresses"]]
        values["addresses"] = [("create", [{
            "country": country_ids.get(a["country"]) if a.get("country") else None, "city": a.get("city"),
            "street": a.get("street"), "postal_code": a.get("postal_code")} for a in addrs] or [{}])]
        # (an invoice needs an address: a party without one gets an empty one, as in Tryton's client)
        mechs = [T["party.contact_mechanism"][c] for c in rec["contact_mechanisms"]]
        if mechs:
            values["contact_mechanisms"] = [("create", [{"type": c["type"], "value": c["value"]}
                                                        for c in mechs])]
        vlist.append(values)
    for pid, party in zip(demo_parties, P.create(vlist), strict=True):
        party_ids[pid] = party.id
    stats["parties"] = len(demo_parties)
    lap("parties")

    # invoices: created in the demo's creation order
    receivable = accounts["receivable"].id
    revenue = accounts["revenue"].id
    first_address = {pid: (T["party.party"][pid]["addresses"] or [None])[0] for pid in T["party.party"]}
    real_parties = {p.id: p for p in P.browse(list(party_ids.values()))}
    address_ids: dict[int, int] = {}
    for pid, real_id in party_ids.items():
        demo_addrs = T["party.party"][pid]["addresses"]
        for demo_a, real_a in zip(demo_addrs, real_parties[real_id].addresses, strict=False):
            address_ids[demo_a] = real_a.id
    inv_vlist = []
    demo_invoices = sorted(T["account.invoice"])
    for iid in demo_invoices:
        inv = T["account.invoice"][iid]
        lines = [T["account.invoice.line"][i] for i in inv["lines"]]
        addr = inv.get("invoice_address") or first_address.get(inv["party"])
        inv_vlist.append({
            "type": "out", "company": company.id, "party": party_ids[inv["party"]],
            "invoice_address": address_ids.get(addr) if addr else real_parties[party_ids[inv["party"]]].addresses[0].id,
            "currency": currency_ids[inv["currency"]], "invoice_date": inv["invoice_date"],
            "reference": inv.get("reference"), "description": inv.get("description"),
            "journal": revenue_journal.id, "account": receivable, "payment_term": term.id,
            "lines": [("create", [{
                "type": "line", "product": product_ids[ln["product"]], "description": ln.get("description"),
                "quantity": float(ln["quantity"]), "unit_price": ln["unit_price"], "unit": unit.id,
                "account": revenue, "company": company.id, "currency": currency_ids[inv["currency"]],
                "taxes": [("add", [tax_ids[t] for t in ln.get("taxes") or []])],
            } for ln in lines])],
            # the demo's manual taxes (computed ones: trytond's own update_taxes)
            "taxes": [("create", [{
                "manual": True, "description": t["description"], "base": t["base"], "amount": t["amount"],
                "tax": tax_ids[t["tax"]], "account": accounts["tax"].id, "legal_notice": t.get("legal_notice"),
            } for t in (T["account.invoice.tax"][x] for x in inv.get("taxes") or []) if t.get("manual")])],
        })
    invoices = Invoice.create(inv_vlist)
    by_demo = dict(zip(demo_invoices, invoices, strict=True))
    # the credit notes' lines credit the seeded copies' lines (``origin``, as Tryton's credit sets it)
    real_line: dict[int, int] = {}
    for i in demo_invoices:
        real_line.update(zip(T["account.invoice"][i]["lines"], [r.id for r in Invoice(by_demo[i].id).lines],
                             strict=True))
    InvoiceLine = pool.get("account.invoice.line")
    origin_writes: list[Any] = []
    credit_notes = 0
    for i in demo_invoices:
        credit_notes += T["account.invoice"][i].get("sequence_type_cache") == "credit_note"
        for lid in T["account.invoice"][i]["lines"]:
            origin = T["account.invoice.line"][lid].get("origin")
            if origin:
                model, _, demo_origin = origin.partition(",")
                origin_writes += [[InvoiceLine(real_line[lid])], {"origin": f"{model},{real_line[int(demo_origin)]}"}]
    if origin_writes:
        InvoiceLine.write(*origin_writes)
    stats["credit_notes"] = credit_notes
    lap("invoices created")

    numbered = sorted((i for i in demo_invoices if T["account.invoice"][i].get("number")),
                      key=lambda i: T["account.invoice"][i]["number"])
    to_post = [by_demo[i] for i in numbered]
    if to_post:
        Invoice.post(to_post)
    for i in numbered:
        real = Invoice(by_demo[i].id)
        if real.number != T["account.invoice"][i]["number"]:
            raise SandboxError(f"invoice {i}: Tryton numbered it {real.number}, "
                               f"the demo {T['account.invoice'][i]['number']}")
    stats["posted"] = len(to_post)
    lap("posted")

    paid = [i for i in demo_invoices if T["account.invoice"][i]["state"] == "paid"]
    groups = []
    for i in paid:
        rec = T["account.invoice"][i]
        real = Invoice(by_demo[i].id)
        when = (rec.get("write_date") or rec["create_date"]).date()
        when = max(when, rec["invoice_date"])
        lines = real.pay_invoice(real.amount_to_pay, pay_method, when, description=rec.get("reference"))
        groups.append(list(real.lines_to_pay) + list(lines))
    if groups:
        MoveLine.reconcile(*groups)
        Invoice.process([by_demo[i] for i in paid])
    stats["paid"] = len(paid)
    lap("paid")

    cancelled = [by_demo[i] for i in demo_invoices if T["account.invoice"][i]["state"] == "cancelled"]
    if cancelled:
        Invoice.cancel(cancelled)
    stats["cancelled"] = len(cancelled)
    # drafts validated by hand and never posted (invoice.not_posted_in_erp): Tryton's Validate button
    validated = [by_demo[i] for i in demo_invoices if T["account.invoice"][i]["state"] == "validated"]
    if validated:
        Invoice.validate_invoice(validated)
    stats["validated"] = len(validated)
    for i in demo_invoices:
        want = T["account.invoice"][i]["state"]
        real_inv = Invoice(by_demo[i].id)
        got = real_inv.state
        amounts = (real_inv.untaxed_amount, real_inv.tax_amount, real_inv.total_amount)
        demo_amounts = tuple(T["account.invoice"][i][k] for k in ("untaxed_amount", "tax_amount", "total_amount"))
        if amounts != demo_amounts:
            raise SandboxError(f"invoice {i} ({T['account.invoice'][i].get('reference')}): untaxed, tax, total "
                               f"{amounts}, the demo has {demo_amounts}")
        if want != got:
            raise SandboxError(f"invoice {i} ({T['account.invoice'][i].get('reference')}): state {got}, "
                               f"the demo has {want}")
    stats["invoices"] = len(demo_invoices)
    lap("cancelled+checked")

    # subscriptions, in the demo's creation order (numbers SUB-000001... follow it)
    sub_vlist = []
    demo_subs = sorted(T["sale.subscription"])
    for sid in demo_subs:
        sub = T["sale.subscription"][sid]
        lines = [T["sale.subscription.line"][i] for i in sub["lines"]]
        product_code = T["product.product"][T["sale.subscription.service"][lines[0]["service"]]["product"]][
            "code"] if lines else ""
        freq = "yearly" if "yearly" in product_code else "monthly"
        sub_vlist.append({
            "company": company.id, "party": party_ids[sub["party"]], "currency": currency_ids[sub["currency"]],
            "reference": sub.get("reference"), "start_date": sub["start_date"], "end_date": sub.get("end_date"),
            "invoice_address": real_parties[party_ids[sub["party"]]].addresses[0].id, "payment_term": term.id,
            "invoice_recurrence": rule_sets[freq].id,
            "lines": [("create", [{
                "service": service_ids[ln["service"]], "quantity": float(ln["quantity"]),
                "unit_price": ln["unit_price"], "unit": unit.id, "start_date": ln["start_date"],
                "end_date": ln.get("end_date")} for ln in lines])],
        })
    subs = Subscription.create(sub_vlist)
    Subscription.quote(subs)
    Subscription.run(subs)
    sub_by_demo = dict(zip(demo_subs, subs, strict=True))
    closed = [sub_by_demo[s] for s in demo_subs if T["sale.subscription"][s]["state"] == "closed"]
    if closed:
        Subscription.close(closed)
    for sid in demo_subs:
        Subscription.write([sub_by_demo[sid]], {"next_invoice_date": T["sale.subscription"][sid].get(
            "next_invoice_date")})
    for sid in demo_subs:
        real = Subscription(sub_by_demo[sid].id)
        want = T["sale.subscription"][sid]
        if (real.state, real.number) != (want["state"], want["number"]):
            raise SandboxError(f"subscription {sid}: {real.state} {real.number}, demo {want['state']} "
                               f"{want['number']}")
    stats["subscriptions"] = len(demo_subs)
    lap("subscriptions")

    # the demo's history: creation / last write times of what was seeded
    cursor = transaction.connection.cursor()

    def backdate(model: str, pairs: list[tuple[int, int]]) -> None:
        table = pool.get(model)._table
        for demo_id, real_id in pairs:
            rec = T[model][demo_id]
            cursor.execute(f'UPDATE "{table}" SET create_date = ?, write_date = ? WHERE id = ?',
                           (rec["create_date"], rec.get("write_date"), real_id))

    backdate("party.party", list(party_ids.items()))
    for model, field in (("party.identifier", "identifiers"), ("party.address", "addresses"),
                         ("party.contact_mechanism", "contact_mechanisms")):
        pairs: list[tuple[int, int]] = []
        for pid, real_id in party_ids.items():
            pairs.extend(zip(T["party.party"][pid][field], [r.id for r in getattr(
                real_parties[real_id], field)], strict=False))
        backdate(model, pairs)
    backdate("account.invoice", [(i, by_demo[i].id) for i in demo_invoices])
    backdate("account.invoice.line", [
        (d, r.id) for i in demo_invoices
        for d, r in zip(T["account.invoice"][i]["lines"], Invoice(by_demo[i].id).lines, strict=True)])
    backdate("sale.subscription", [(s, sub_by_demo[s].id) for s in demo_subs])
    backdate("sale.subscription.line", [
        (d, r.id) for s in demo_subs
        for d, r in zip(T["sale.subscription"][s]["lines"], Subscription(sub_by_demo[s].id).lines,
                        strict=True)])
    backdate("product.product", list(product_ids.items()))
    backdate("sale.subscription.service", list(service_ids.items()))
    # reports of the seeded invoices are not rendered; other queued work runs now
    tasks = list(transaction.tasks)
    transaction.tasks.clear()
    skipped = {t.id for t in Queue.browse(tasks) if t.data.get("method") == "print_invoice"}
    Queue.delete(Queue.browse(sorted(skipped)))
    pending = [t for t in tasks if t not in skipped]
    lap("backdated")
    return party_ids, by_demo, sub_by_demo, pending


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.demo.tryton_seed",
                                     description="(internal) seed an initialised Tryton database in this process")
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--database", required=True)
    parser.add_argument("--customers", type=int, default=60)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--anchor", type=int, required=True)
    args = parser.parse_args(argv)
    stats = _seed(args.config, args.database, args.customers, args.seed, args.anchor)
    (args.config.parent / "seed-stats.json").write_text(json.dumps(stats, indent=2), encoding="utf-8")
    print(json.dumps(stats))
    return 0


if __name__ == "__main__":
    sys.exit(main())
