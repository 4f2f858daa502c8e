"""The demo ERP's taxes as trytond 8.2 has them (``services/demo/tryton/taxes.py``): percentage
taxes in tax groups, invoice lines with ``taxes``, the invoice's ``account.invoice.tax`` records
kept by ``update_taxes`` (on create / write of a draft, checked when posting), the untaxed, tax
and total amounts, per-line and per-document rounding (half to even, the remainder given back),
credit notes (negative quantities: the credit-note account), the posting warning for taxes that
are not the product's defaults, the Credit wizard copying taxes, currency rates; and the
generated demo world, whose ERP invoice copies carry the ERP tax of each billing line's tax rate
with totals equal to the billing totals. The same calls against a real trytond:
``tests/erp/test_real_taxes.py``."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest

from services.core.currency import from_minor
from services.demo.dataset import generate
from services.demo.faults import FaultInjector
from services.demo.generator.erp_taxes import REVERSE_CHARGE_NOTE, ROUNDING_SUFFIX, ErpTaxMap
from services.demo.serving import ThreadedServers
from services.demo.store import ErpStore
from services.demo.tryton.app import create_app
from services.demo.tryton.taxes import TaxEngine, currency_round
from tests.demo.tryton_rig import CTX, NOW, TODAY, Env, RpcError, Tryton, meta, seed_minimal, serve_env, user_error

TAX_ACCOUNT, CREDIT_ACCOUNT = 3, 4


@pytest.fixture
def env() -> Iterator[Env]:
    with serve_env() as served:
        yield served


def _taxes(rpc: Tryton) -> dict[str, int]:
    """A VAT group with 19 % and the 0 % reverse charge, a sales tax group with 6.25 %."""
    vat, sales = rpc.model("account.tax.group", "create", [{"name": "VAT", "code": "VAT", "kind": "sale"},
                                                           {"name": "Sales Tax", "code": "SALES_TAX"}])
    common = {"type": "percentage", "invoice_account": TAX_ACCOUNT, "credit_note_account": CREDIT_ACCOUNT}
    de, rc, tx = rpc.model("account.tax", "create", [
        {**common, "name": "DE VAT 19 %", "description": "VAT 19 %", "rate": Decimal("0.19"), "group": vat},
        {**common, "name": "EU VAT reverse charge 0 %", "description": "Reverse charge", "rate": Decimal("0"),
         "group": vat, "legal_notice": REVERSE_CHARGE_NOTE},
        {**common, "name": "US-TX Sales Tax 6.25 %", "description": "TX sales tax", "rate": Decimal("0.0625"),
         "group": sales}])
    return {"vat": vat, "sales": sales, "de": de, "rc": rc, "tx": tx}


def _line(ids: dict[str, int], quantity: float, price: str, *taxes: int) -> dict[str, Any]:
    return {"product": ids["pro_monthly"], "quantity": quantity, "unit_price": Decimal(price), "unit": 1,
            "account": 2, "description": "Pro", "taxes": [["add", list(taxes)]]}


def _invoice(rpc: Tryton, ids: dict[str, int], lines: list[dict[str, Any]], reference: str = "in_T1") -> int:
    [iid] = rpc.model("account.invoice", "create", [{
        "type": "out", "party": ids["cus_B"], "reference": reference, "currency": ids["usd"],
        "invoice_date": TODAY, "journal": 1, "account": 1, "payment_term": 1,
        "invoice_address": ids["addr_cus_B"], "lines": [["create", lines]]}])
    return int(iid)


AMOUNTS = ["untaxed_amount", "tax_amount", "total_amount", "taxes", "lines", "state"]
TAX_FIELDS = ["invoice", "description", "base", "amount", "manual", "tax", "account", "legal_notice", "currency",
              "invoice_state", "sequence_number", "rec_name"]


def _post(rpc: Tryton, iid: int, admin: int) -> None:
    """``post``, acknowledging the taxes warning once (the lines' taxes are not their product's)."""
    with pytest.raises(RpcError) as err:
        rpc.model("account.invoice", "post", [iid])
    kind, (name, message, _desc) = err.value.error
    assert kind == "UserWarning" and name.endswith(".invoice_taxes"), err.value.error
    assert message.startswith(f'The invoice "{rpc.model("account.invoice", "read", [iid], ["rec_name"])[0]["rec_name"]}'
                              f'" does not have the default taxes for ')
    rpc.model("res.user.warning", "create", [{"user": admin, "name": name, "always": False}])
    rpc.model("account.invoice", "post", [iid])


def test_invoice_taxes_are_computed_on_create_per_key(env: Env) -> None:
    rpc, ids = env.rpc, env.ids
    t = _taxes(rpc)
    iid = _invoice(rpc, ids, [_line(ids, 3, "49.00", t["de"]), _line(ids, 1, "12.35", t["de"]),
                              _line(ids, 2, "100.00", t["tx"]), _line(ids, 1, "80.00", t["rc"]),
                              _line(ids, 1, "5.00")])
    [inv] = rpc.model("account.invoice", "read", [iid], AMOUNTS)
    # 147.00 * 0.19 = 27.93, 12.35 * 0.19 = 2.3465 -> 2.35 (per line), 200.00 * 0.0625 = 12.50, 0 %
    assert inv["untaxed_amount"] == Decimal("444.35")
    assert inv["tax_amount"] == Decimal("42.78")
    assert inv["total_amount"] == Decimal("487.13")
    rows = rpc.model("account.invoice.tax", "read", inv["taxes"], TAX_FIELDS)
    by_tax = {r["tax"]: r for r in rows}
    assert len(rows) == 3 and set(by_tax) == {t["de"], t["tx"], t["rc"]}
    assert (by_tax[t["de"]]["base"], by_tax[t["de"]]["amount"]) == (Decimal("159.35"), Decimal("30.28"))
    assert (by_tax[t["tx"]]["base"], by_tax[t["tx"]]["amount"]) == (Decimal("200.00"), Decimal("12.50"))
    rc = by_tax[t["rc"]]
    assert (rc["base"], rc["amount"], rc["legal_notice"]) == (Decimal("80.00"), Decimal("0.00"), REVERSE_CHARGE_NOTE)
    for r in rows:
        assert r["invoice"] == iid and r["manual"] == 0 and r["account"] == TAX_ACCOUNT  # SQLite: 0
        assert r["currency"] == ids["usd"] and r["invoice_state"] == "draft"
        assert r["rec_name"] == r["description"]
    assert sorted(r["sequence_number"] for r in rows) == [1, 2, 3]
    line_rows = rpc.model("account.invoice.line", "read", inv["lines"], ["taxes", "invoice_taxes"])
    assert [r["taxes"] for r in line_rows] == [[t["de"]], [t["de"]], [t["tx"]], [t["rc"]], []]
    assert line_rows[0]["invoice_taxes"] == [by_tax[t["de"]]["id"]] and line_rows[4]["invoice_taxes"] == []


def test_writing_a_draft_updates_its_taxes_and_deletes_stale_ones(env: Env) -> None:
    rpc, ids = env.rpc, env.ids
    t = _taxes(rpc)
    iid = _invoice(rpc, ids, [_line(ids, 1, "100.00", t["de"])])
    [inv] = rpc.model("account.invoice", "read", [iid], AMOUNTS)
    [old_tax] = inv["taxes"]
    rpc.model("account.invoice", "write", [iid], {"lines": [["write", inv["lines"], {"unit_price": Decimal("200.00"),
                                                                                   "taxes": [["remove", [t["de"]]],
                                                                                             ["add", [t["tx"]]]]}]]})
    [inv] = rpc.model("account.invoice", "read", [iid], AMOUNTS)
    assert (inv["untaxed_amount"], inv["tax_amount"], inv["total_amount"]) == (
        Decimal("200.00"), Decimal("12.50"), Decimal("212.50"))
    [new_tax] = inv["taxes"]
    assert new_tax != old_tax and old_tax not in env.store.tables["account.invoice.tax"]
    assert rpc.model("account.invoice.tax", "read", [new_tax], ["tax"])[0]["tax"] == t["tx"]
    # deleting the invoice deletes its taxes
    rpc.model("account.invoice", "delete", [iid])
    assert new_tax not in env.store.tables["account.invoice.tax"]


def test_a_line_created_on_its_own_leaves_the_taxes_stale_and_posting_refuses(env: Env) -> None:
    """As trytond: only the invoice's own create / write updates its taxes; posting checks them."""
    rpc, ids = env.rpc, env.ids
    t = _taxes(rpc)
    iid = _invoice(rpc, ids, [_line(ids, 1, "100.00")])
    rpc.model("account.invoice.line", "create", [{**_line(ids, 1, "50.00", t["de"]), "invoice": iid}])
    [inv] = rpc.model("account.invoice", "read", [iid], AMOUNTS)
    assert inv["taxes"] == [] and inv["tax_amount"] == Decimal("0.00") and inv["untaxed_amount"] == Decimal("150.00")
    name = rpc.model("account.invoice", "read", [iid], ["rec_name"])[0]["rec_name"]
    rpc.model("res.user.warning", "create", [{"user": ids["admin"], "name": "x", "always": True}])
    with pytest.raises(RpcError) as err:
        _post(rpc, iid, ids["admin"])
    assert user_error(err.value) == (f'The taxes on invoice "{name}" are not valid, you must save it again to '
                                     f'force them to be recalculated.')
    assert env.store.tables["account.invoice"][iid]["state"] == "draft"  # rolled back
    rpc.model("account.invoice", "write", [iid], {"description": "saved again"})
    rpc.model("account.invoice", "post", [iid])  # the warning was acknowledged above (consumed by the retry)
    [inv] = rpc.model("account.invoice", "read", [iid], [*AMOUNTS, "tax_amount_cache", "total_amount_cache"])
    assert inv["state"] == "posted" and inv["tax_amount"] == Decimal("9.50")
    assert (inv["tax_amount_cache"], inv["total_amount_cache"]) == (Decimal("9.50"), Decimal("159.50"))


def test_posting_warns_then_posts_and_posted_taxes_are_locked(env: Env) -> None:
    rpc, ids = env.rpc, env.ids
    t = _taxes(rpc)
    iid = _invoice(rpc, ids, [_line(ids, 2, "49.00", t["de"])])
    _post(rpc, iid, ids["admin"])
    [inv] = rpc.model("account.invoice", "read", [iid], [*AMOUNTS, "amount_to_pay", "number"])
    assert inv["state"] == "posted" and inv["number"] == "INV-000011"
    assert (inv["untaxed_amount"], inv["tax_amount"], inv["total_amount"], inv["amount_to_pay"]) == (
        Decimal("98.00"), Decimal("18.62"), Decimal("116.62"), Decimal("116.62"))
    [tax] = inv["taxes"]
    with pytest.raises(RpcError) as err:
        rpc.model("account.invoice.tax", "write", [tax], {"amount": Decimal("1.00")})
    assert "because it is posted, paid or cancelled" in user_error(err.value)
    rpc.model("account.invoice.tax", "write", [tax], {"description": "VAT 19 % (DE)"})  # as trytond allows
    with pytest.raises(RpcError):
        rpc.model("account.invoice.tax", "delete", [tax])
    assert env.store.tables["account.invoice.tax"][tax]["amount"] == Decimal("18.62")


def test_a_credit_note_takes_the_credit_note_account_and_negative_taxes(env: Env) -> None:
    rpc, ids = env.rpc, env.ids
    t = _taxes(rpc)
    iid = _invoice(rpc, ids, [_line(ids, -2, "49.00", t["de"]), _line(ids, -1, "10.00", t["tx"])], "in_CN")
    [inv] = rpc.model("account.invoice", "read", [iid], AMOUNTS)
    assert (inv["untaxed_amount"], inv["tax_amount"], inv["total_amount"]) == (
        Decimal("-108.00"), Decimal("-19.24"), Decimal("-127.24"))  # -18.62 and -0.625 -> -0.62 (half even)
    rows = rpc.model("account.invoice.tax", "read", inv["taxes"], ["base", "amount", "account"])
    assert sorted((r["base"], r["amount"], r["account"]) for r in rows) == [
        (Decimal("-98.00"), Decimal("-18.62"), CREDIT_ACCOUNT), (Decimal("-10.00"), Decimal("-0.62"), CREDIT_ACCOUNT)]
    _post(rpc, iid, ids["admin"])
    [row] = rpc.model("account.invoice", "read", [iid], ["sequence_type_cache"])
    assert row["sequence_type_cache"] == "credit_note"


def test_the_credit_wizard_credits_the_taxes(env: Env) -> None:
    rpc, ids = env.rpc, env.ids
    t = _taxes(rpc)
    iid = _invoice(rpc, ids, [_line(ids, 3, "33.33", t["de"])])
    _post(rpc, iid, ids["admin"])
    active = {**CTX, "active_model": "account.invoice", "active_id": iid, "active_ids": [iid]}

    sid, _, _ = rpc("wizard.account.invoice.credit.create", active)
    try:  # without refund: a draft credit note (with refund its posting warns about its taxed lines)
        answer = rpc("wizard.account.invoice.credit.execute", sid, {"start": {"with_refund": False}}, "credit", active)
    finally:
        rpc("wizard.account.invoice.credit.delete", sid, active)
    [note] = answer["actions"][0][1]["res_id"]
    _post(rpc, note, ids["admin"])
    original, credited = rpc.model("account.invoice", "read", [iid, note], AMOUNTS)
    assert credited["state"] == "posted" and original["state"] == "posted"
    for key in ("untaxed_amount", "tax_amount", "total_amount"):
        assert credited[key] == -original[key] and original[key] > 0
    [row] = rpc.model("account.invoice.tax", "read", credited["taxes"], ["base", "amount", "account", "tax"])
    assert (row["base"], row["amount"], row["account"], row["tax"]) == (
        Decimal("-99.99"), Decimal("-19.00"), CREDIT_ACCOUNT, t["de"])
    [line] = rpc.model("account.invoice.line", "read", credited["lines"], ["taxes", "taxes_date", "quantity"])
    assert line["taxes"] == [t["de"]] and line["taxes_date"] == TODAY and line["quantity"] == -3


def test_tax_models_answer_fields_get_defaults_and_currency_rates(env: Env) -> None:
    rpc, ids = env.rpc, env.ids
    fields = rpc.model("account.tax", "fields_get", None)
    assert fields["rate"]["type"] == "numeric" and fields["group"]["relation"] == "account.tax.group"
    assert fields["childs"]["relation_field"] == "parent" and fields["company"]["required"] is True
    assert [o[0] for o in fields["type"]["selection"]] == ["percentage", "fixed", "none"]
    assert rpc.model("account.invoice", "fields_get", ["taxes"])["taxes"]["relation"] == "account.invoice.tax"
    assert rpc.model("account.tax", "default_get", ["type", "active", "update_unit_price", "template_override"],
                     False) == {"type": "percentage", "active": True, "update_unit_price": False,
                                "template_override": False}
    assert rpc.model("account.invoice.tax", "default_get", ["manual", "base", "amount"], False) == {
        "manual": True, "base": Decimal(0), "amount": Decimal(0)}
    with pytest.raises(RpcError) as err:  # a tax needs its company (the context gives it) and description
        rpc.model("account.tax", "create", [{"name": "No description", "rate": Decimal("0.1")}])
    assert user_error(err.value) == 'A value is required for field "Description" in "Tax".'
    rpc.model("currency.currency.rate", "create", [
        {"currency": ids["eur"], "date": TODAY - timedelta(days=400), "rate": Decimal("0.90")},
        {"currency": ids["eur"], "date": TODAY - timedelta(days=10), "rate": Decimal("0.92")}])
    [eur] = rpc.model("currency.currency", "read", [ids["eur"]], ["rate", "rates"])
    assert eur["rate"] == Decimal("0.92") and len(eur["rates"]) == 2
    assert rpc.model("currency.currency", "read", [ids["usd"]], ["rate"])[0]["rate"] is None


def _engine_store(rounding: str, prices: list[tuple[float, str]], rate: str) -> tuple[TaxEngine, dict[str, Any]]:
    store = ErpStore()
    ids = seed_minimal(store)
    tax = store.insert("account.tax", {**meta(NOW), "name": "T", "description": "T", "type": "percentage",
                                       "rate": Decimal(rate), "company": ids["company"], "invoice_account": 3,
                                       "credit_note_account": 4})
    inv = store.insert("account.invoice", {**meta(NOW), "type": "out", "party": ids["cus_A"], "currency": ids["usd"],
                                           "company": ids["company"], "state": "draft", "invoice_date": TODAY,
                                           "lines": [], "taxes": []})
    for qty, price in prices:
        store.insert("account.invoice.line", {**meta(NOW), "invoice": inv, "type": "line", "quantity": qty,
                                              "unit_price": Decimal(price), "taxes": [tax]})
    return TaxEngine(store, rounding), store.tables["account.invoice"][inv]


@pytest.mark.parametrize(("rounding", "expected"), [("line", "0.30"), ("document", "0.28")])
def test_rounding_per_line_or_per_document(rounding: str, expected: str) -> None:
    """Three lines of 0.50 at 19 %: 0.095 each; per line half-even 0.10 each (0.30), per document
    0.285 -> 0.28 (trytond's ``tax_rounding``)."""
    engine, invoice = _engine_store(rounding, [(1, "0.50")] * 3, "0.19")
    [line] = engine.invoice_taxes(invoice, TODAY).values()
    assert (line.base, line.amount) == (Decimal("1.50"), Decimal(expected))


def test_rounding_gives_back_the_remainder_across_taxes_of_a_document() -> None:
    """``_round_taxes``: amounts rounded half-even, the summed difference given back one cent at a
    time (a positive and a negative group are rounded separately)."""
    engine, invoice = _engine_store("document", [(1, "0.25"), (1, "0.35"), (-1, "0.45")], "0.10")
    taxes = engine.invoice_taxes(invoice, TODAY)
    # positive group: 0.025 + 0.035 = 0.060 -> 0.06; negative: -0.045 -> -0.04 (half even)
    assert sorted((t.base, t.amount) for t in taxes.values()) == [
        (Decimal("-0.45"), Decimal("-0.04")), (Decimal("0.60"), Decimal("0.06"))]
    assert currency_round(Decimal("0.025"), Decimal("0.01")) == Decimal("0.02")
    assert currency_round(Decimal("-0.035"), Decimal("0.01")) == Decimal("-0.04")


def test_generated_erp_invoices_carry_the_billing_tax_and_equal_billing_totals() -> None:
    """Every billing tax rate has its ERP tax (same rate, reverse charge with its legal note);
    every ERP copy of a billing invoice (planted amount differences apart) has the mapped taxes
    on its lines and untaxed, tax and total amounts equal to the billing invoice's, as served."""
    ds = generate(60, 3)
    erp, billing = ds.erp, ds.billing
    taxes = erp.tables["account.tax"]
    assert billing.tax_rates and len(taxes) == len(billing.tax_rates)
    by_name = {t["name"]: t for t in taxes.values()}
    reverse = by_name["EU VAT reverse charge 0 %"]
    assert reverse["rate"] == 0 and reverse["legal_notice"] == REVERSE_CHARGE_NOTE
    assert by_name["DE VAT 19 %"]["rate"] == Decimal("0.19")
    assert by_name["US-TX Sales Tax 6.25 %"]["rate"] == Decimal("0.0625")
    assert by_name["JP JCT 10 %"]["rate"] == Decimal("0.1")  # Japanese consumption tax, on yen invoices
    assert {g["code"] for g in erp.tables["account.tax.group"].values()} == {"VAT", "SALES_TAX", "GST", "JCT"}
    assert {erp.tables["currency.currency"][r["currency"]]["code"]: r["rate"]
            for r in erp.tables["currency.currency.rate"].values()} == {
        "USD": Decimal("1"), "EUR": Decimal("0.92"), "GBP": Decimal("0.79"), "JPY": Decimal("149.5"),
        "KWD": Decimal("0.307")}
    planted = {m.object for m in ds.manifest}
    app = create_app(erp, FaultInjector("erp"))
    creds = ds.credentials
    compared = taxed = adjusted = 0
    with ThreadedServers({"erp": app}) as servers, httpx.Client(timeout=60) as http:
        rpc = Tryton(servers.url("erp"), http)
        rpc.login(creds.tryton_login, creds.tryton_password)
        ctx = rpc("model.res.user.get_preferences", True, {})
        ids = rpc("model.account.invoice.search", [["reference", "like", "in_%"]], 0, None, None, ctx)
        rows = rpc("model.account.invoice.read", ids, ["reference", "untaxed_amount", "tax_amount",
                                                       "total_amount", "taxes", "lines"], ctx)
        for row in rows:
            binv = billing.invoices.get(row["reference"])
            if binv is None or binv.id in planted:
                continue
            compared += 1
            cur = binv.currency  # in its own exponent: whole yen, dinars to the fils
            assert row["untaxed_amount"] == from_minor(binv.subtotal - binv.discount_total, cur), binv.id
            assert row["tax_amount"] == from_minor(binv.tax or 0, cur), binv.id
            assert row["total_amount"] == from_minor(binv.total, cur), binv.id
            lines = rpc("model.account.invoice.line.read", row["lines"], ["taxes"], ctx)
            want = [[] if ln.tax_rate is None else [by_name[_name_of(billing, ln.tax_rate)]["id"]] for ln in binv.lines]
            assert [ln["taxes"] for ln in lines] == want, binv.id
            taxed += any(want)
            descriptions = [r["description"] for r in rpc("model.account.invoice.tax.read", row["taxes"],
                                                          ["description"], ctx)]
            adjusted += any(d.endswith(ROUNDING_SUFFIX) for d in descriptions)
    assert compared > 100 and taxed > compared // 2
    assert adjusted >= 1  # half-cent line taxes (billed half up, trytond half even) kept as billed


def _name_of(billing: Any, rate_id: str) -> str:
    from services.demo.generator.erp_taxes import tax_name

    return tax_name(billing.tax_rates[rate_id])


def test_the_tax_map_never_guesses() -> None:
    taxes = ErpTaxMap({"txr_1": 7})
    assert taxes.taxes_for(None) == [] and taxes.taxes_for("txr_1") == [7]
    with pytest.raises(KeyError):
        taxes.taxes_for("txr_unknown")


def test_a_tax_outside_its_dates_is_not_applied() -> None:
    engine, invoice = _engine_store("line", [(1, "100.00")], "0.20")
    tax = next(iter(engine.store.tables["account.tax"].values()))
    tax["end_date"] = TODAY - timedelta(days=1)
    assert engine.invoice_taxes(invoice, TODAY) == {}
    tax["end_date"], tax["start_date"] = None, date(2000, 1, 1)
    [line] = engine.invoice_taxes(invoice, TODAY).values()
    assert line.amount == Decimal("20.00")


def test_a_party_s_customer_tax_rule_proposes_its_tax_and_posting_does_not_warn(env: Env) -> None:
    """trytond's ``on_change_product``: the party's customer tax rule applied to the product's
    (no) taxes gives the line its tax; lines carrying it post without the taxes warning."""
    rpc, ids = env.rpc, env.ids
    t = _taxes(rpc)
    [rule] = rpc.model("account.tax.rule", "create", [{
        "name": "Customer: DE VAT", "kind": "sale", "lines": [["create", [
            {"tax": t["tx"], "start_date": TODAY + timedelta(days=1)},  # not yet in force: skipped
            {"tax": t["de"]}]]]}])
    rpc.model("party.party", "write", [ids["cus_B"]], {"customer_tax_rule": rule})
    changes = rpc.model("account.invoice.line", "on_change", {"product": ids["pro_monthly"], "party": ids["cus_B"],
                                                              "invoice_type": "out"}, ["product"])[0]
    assert changes["taxes"] == [t["de"]]
    other = rpc.model("account.invoice.line", "on_change", {"product": ids["pro_monthly"], "party": ids["cus_A"],
                                                            "invoice_type": "out"}, ["product"])[0]
    assert other["taxes"] == []  # no rule: the product's taxes (none)
    iid = _invoice(rpc, ids, [_line(ids, 2, "49.00", t["de"])], "in_RULE")
    rpc.model("account.invoice", "post", [iid])  # no warning
    assert rpc.model("account.invoice", "read", [iid], ["state"])[0]["state"] == "posted"
    wrong = _invoice(rpc, ids, [_line(ids, 2, "49.00", t["tx"])], "in_RULE2")
    _post(rpc, wrong, ids["admin"])  # another tax than the rule's: warned, then posted
    fields = rpc.model("account.tax.rule.line", "fields_get", ["tax", "rule"])
    assert fields["rule"]["relation"] == "account.tax.rule" and fields["tax"]["relation"] == "account.tax"


def test_generated_parties_have_the_rule_of_their_billing_tax_rate() -> None:
    ds = generate(60, 1)
    erp = ds.erp
    with_rule = 0
    for code, pid in ((p["code"], p["id"]) for p in erp.tables["party.party"].values()
                      if str(p.get("code") or "").startswith("cus_")):
        rates = {ln.tax_rate for iid in ds.billing.invoices_by_customer.get(code, ())
                 for ln in ds.billing.invoices[iid].lines}
        rule = erp.tables["party.party"][pid].get("customer_tax_rule")
        if len(rates) == 1 and None not in rates:
            [line] = erp.tables["account.tax.rule"][rule]["lines"]
            tax = erp.tables["account.tax"][erp.tables["account.tax.rule.line"][line]["tax"]]
            assert tax["name"] == _name_of(ds.billing, next(iter(rates)))
            with_rule += 1
        else:
            assert rule is None, code
    assert with_rule > 20
