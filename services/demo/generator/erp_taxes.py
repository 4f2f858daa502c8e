"""Phase 4, the ERP's taxes and currency rates: one ``account.tax`` per billing tax rate (EU VAT
at each country's standard rate, the EU reverse charge as a 0 % tax with its legal note, UK VAT,
Canadian GST, US sales tax by state, Japanese consumption tax) with a customer tax rule giving
it (each customer whose billing invoices all carry one tax rate has that rate's rule on its
party, so the ERP proposes the customer's tax on its invoice lines, as a Tryton company sets it
up), the company's tax groups (VAT, Sales Tax, GST, Consumption Tax), the rates of the
currencies against the company currency (JPY and KWD among them, each with its own digits), and
the mapping billing tax rate -> ERP tax the invoice copies use (:class:`ErpTaxMap`). Each
generated ERP invoice's ``account.invoice.tax`` records are computed as trytond computes them
(:mod:`services.demo.tryton.taxes`).

The taxes carry no group: the products have no default taxes, so a party's tax comes from a rule
line without group (``TaxRule.apply(None, ...)`` matches only those), and trytond requires a rule
line's substitution tax to be in the line's group (``TaxRuleLine.tax``'s domain)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from services.demo.generator.state import _erp_base, _Gen
from services.demo.store import BTaxRate, ErpStore
from services.demo.tryton.schema import TAX_ACCOUNT, TAX_ROUNDING
from services.demo.tryton.taxes import TaxEngine, rounding_of

#: currency rates against the company currency (USD), constant so that payments reconcile exactly
#: (Tryton's rate: units of the currency for one unit of the company currency; JPY has no minor
#: unit and KWD three, each stored with its own ``digits``)
RATES: dict[str, str] = {"USD": "1", "EUR": "0.92", "GBP": "0.79", "JPY": "149.5", "KWD": "0.307"}
#: the date the rates hold from (before every dated record of the demo)
RATES_FROM = date(2000, 1, 1)
#: the tax groups (code -> name) by billing tax type
TAX_GROUPS: dict[str, tuple[str, str]] = {"vat": ("VAT", "VAT"), "sales_tax": ("SALES_TAX", "Sales Tax"),
                                          "gst": ("GST", "GST"), "jct": ("JCT", "Consumption Tax")}
#: the description suffix of a manual invoice tax that keeps the billed rounding
ROUNDING_SUFFIX = " (rounding as billed)"
REVERSE_CHARGE_NOTE = ("Reverse charge: VAT to be accounted for by the recipient "
                       "(Article 196, Council Directive 2006/112/EC).")


@dataclass
class ErpTaxMap:
    """Billing tax rate id (``txr_...``) -> ERP ``account.tax`` id."""

    by_rate: dict[str, int] = field(default_factory=dict)
    #: ERP tax id -> the customer tax rule that gives it
    rules: dict[int, int] = field(default_factory=dict)

    def taxes_for(self, rate_id: str | None) -> list[int]:
        """The ERP taxes of a billing line taxed at ``rate_id`` (none for an untaxed line); a
        ``KeyError`` for a rate that has no ERP tax (never guessed)."""
        return [] if rate_id is None else [self.by_rate[rate_id]]


def tax_name(rate: BTaxRate) -> str:
    """The ERP tax's name: jurisdiction, kind and percentage (``DE VAT 19 %``, ``US-TX Sales Tax 6.25 %``)."""
    if rate.percentage == "0" and rate.tax_type == "vat" and rate.country is None:
        return "EU VAT reverse charge 0 %"
    where = f"{rate.country}-{rate.state}" if rate.state else (rate.country or rate.jurisdiction or "")
    return f"{where} {rate.display_name} {rate.percentage} %"


def is_reverse_charge(rate: BTaxRate) -> bool:
    return rate.tax_type == "vat" and Decimal(rate.percentage) == 0


def _build_erp_taxes(g: _Gen, company: int) -> ErpTaxMap:
    """The tax groups, one tax per billing tax rate and the currency rates."""
    erp = g.erp
    t = g.setup_ts
    for code, cid in g.erp_currency.items():
        erp.insert("currency.currency.rate", _erp_base(g, {
            "currency": cid, "date": RATES_FROM, "rate": Decimal(RATES.get(code.upper(), "1"))},
            t, None, RATES_FROM.strftime("%m/%d/%Y")))
    groups: dict[str, int] = {}
    taxes = ErpTaxMap()
    for rate in sorted(g.billing.tax_rates.values(), key=lambda r: r.created):
        group_code, group_name = TAX_GROUPS.get(rate.tax_type, (rate.tax_type.upper(), rate.display_name))
        if group_code not in groups:
            groups[group_code] = erp.insert("account.tax.group", _erp_base(g, {
                "name": group_name, "code": group_code, "kind": "sale"}, t, None, group_name))
        name = tax_name(rate)
        taxes.by_rate[rate.id] = erp.insert("account.tax", _erp_base(g, {
            "name": name, "description": name, "type": "percentage",
            "rate": (Decimal(rate.percentage) / 100).normalize(), "amount": None,
            "group": None, "company": company, "invoice_account": TAX_ACCOUNT,
            "credit_note_account": TAX_ACCOUNT,
            "legal_notice": REVERSE_CHARGE_NOTE if is_reverse_charge(rate) else None,
            "active": rate.active, "sequence": None, "start_date": None, "end_date": None, "parent": None,
            "update_unit_price": False}, t, None, name))
        tax_id = taxes.by_rate[rate.id]
        lines: list[int] = []
        rule_name = f"Customer: {name}"
        rule = erp.insert("account.tax.rule", _erp_base(g, {
            "name": rule_name, "kind": "sale", "company": company, "lines": lines}, t, None, rule_name))
        lines.append(erp.insert("account.tax.rule.line", _erp_base(g, {
            "rule": rule, "tax": tax_id, "origin_tax": None, "group": None, "keep_origin": False,
            "sequence": None, "start_date": None, "end_date": None}, t, None, name)))
        taxes.rules[tax_id] = rule
    return taxes


def _assign_tax_rules(g: _Gen, taxes: ErpTaxMap) -> None:
    """Each mapped customer's party takes the tax rule of the tax rate all its billing invoice
    lines carry; none when they carry none (a tax-exempt customer, a state without sales tax) or
    not all the same one (the ERP then proposes no tax: the lines carry their own)."""
    for code, pid in g.erp_party.items():
        rates = {ln.tax_rate for iid in g.billing.invoices_by_customer.get(code, ())
                 for ln in g.billing.invoices[iid].lines}
        if len(rates) == 1 and (rate := next(iter(rates))) is not None:
            g.erp.tables["party.party"][pid]["customer_tax_rule"] = taxes.rules[taxes.by_rate[rate]]


def store_invoice_taxes(erp: ErpStore, invoice_id: int, billed: Decimal | None = None) -> list[int]:
    """The invoice's ``account.invoice.tax`` records as trytond's ``update_taxes`` writes them
    (computed at the invoice's date with the company's tax rounding): their ids.

    ``billed``: the tax the billing platform charged. It rounds each line's tax half away from
    zero where trytond rounds half to even, so a line whose tax ends in exactly half a cent
    differs by one cent: as an accountant does in Tryton, the difference is kept as a manual
    invoice tax (base 0, the same tax and account), which ``update_taxes`` leaves alone and a
    credit note copies, so the ERP's tax and total are the billed ones to the cent."""
    inv = erp.tables["account.invoice"][invoice_id]
    engine = TaxEngine(erp, TAX_ROUNDING)
    ids: list[int] = []
    computed = list(engine.invoice_taxes(inv, inv["invoice_date"]).values())

    def add(tax_id: int, base: Decimal, amount: Decimal, account: int | None, manual: bool, suffix: str) -> None:
        tax = erp.tables["account.tax"][tax_id]
        description = f"{tax['description']}{suffix}"
        ids.append(erp.insert("account.invoice.tax", {
            "invoice": invoice_id, "description": description, "sequence": None, "base": base,
            "amount": amount, "manual": manual, "tax": tax_id, "account": account,
            "legal_notice": tax.get("legal_notice"), "create_date": inv["create_date"], "write_date": None,
            "create_uid": 1, "write_uid": None, "rec_name": description}))

    for line in computed:
        add(line.tax, line.base, line.amount, line.account, False, "")
    difference = None if billed is None else billed - sum((line.amount for line in computed), Decimal(0))
    if computed and difference:
        first = computed[0]
        # base 0 in the currency's own digits (trytond refuses "0.00" as a yen base)
        base = Decimal(0).quantize(rounding_of(erp, inv.get("currency")))
        add(first.tax, base, difference, first.account, True, ROUNDING_SUFFIX)
    return ids
