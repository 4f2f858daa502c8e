"""Issue G1: the demo company bills in currencies without two decimals — the yen (no minor unit,
Japanese consumption tax 10 %) and the Kuwaiti dinar (three decimals, no VAT) — with the ERP
holding each currency with its own digits and a rate, every amount an integer in minor units of
the currency's ISO 4217 exponent, and a JPY mismatch planted and listed by ``demo-manifest``."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest

from services.core.currency import exponent, from_minor
from services.demo.dataset import generate
from services.demo.generator.erp_taxes import RATES
from services.demo.store import DemoDataset

ROOT = Path(__file__).resolve().parents[2]
SEEDS = (1, 2, 3)


@pytest.fixture(scope="module", params=SEEDS)
def ds(request: pytest.FixtureRequest) -> DemoDataset:
    return generate(300, request.param, anchor=1_780_000_000)


def test_customers_are_billed_in_yen_and_dinars_at_their_countrys_price(ds: DemoDataset) -> None:
    b = ds.billing
    by_currency = Counter(c.currency for c in b.customers.values())
    assert by_currency["jpy"] >= 3 and by_currency["kwd"] >= 1, by_currency
    drifted = {m.customer for m in ds.manifest if m.rule == "customer.master_drift"}
    for c in b.customers.values():
        if c.id not in drifted and c.country in ("JP", "KW"):
            assert c.currency == {"JP": "jpy", "KW": "kwd"}[c.country]
    prices = {p.lookup_key: p.unit_amount for p in b.prices.values()}
    assert prices["pro_monthly_jpy"] == 12_000  # ¥12,000: yen, no minor unit
    assert prices["starter_monthly_kwd"] == 9_000  # 9.000 KWD: fils
    # a line's description states the unit price in the currency's own exponent
    shapes = {"jpy": re.compile(r"\(at ¥\d{1,3}(,\d{3})* / (month|year)\)"),
              "kwd": re.compile(r"\(at \d{1,3}(,\d{3})*\.\d{3} KWD / (month|year)\)")}
    for cur, shape in shapes.items():
        described = [ln.description for inv in b.invoices.values() if inv.currency == cur
                     for ln in inv.lines if "(at " in ln.description]
        assert described and all(shape.search(d) for d in described), (cur, described[:3])


def test_yen_invoices_carry_japanese_consumption_tax_per_line_in_whole_yen(ds: DemoDataset) -> None:
    b = ds.billing
    [jct] = [r for r in b.tax_rates.values() if r.tax_type == "jct"]
    assert (jct.country, jct.percentage, jct.display_name) == ("JP", "10", "JCT")
    taxed = [inv for inv in b.invoices.values() if inv.currency == "jpy" and inv.tax]
    assert taxed
    for inv in taxed:
        for ln in inv.lines:
            assert ln.tax_rate == jct.id
            net = ln.amount - ln.discount_amount
            # 10 % of the net in whole yen, half away from zero (Stripe rounds per line)
            assert ln.tax_amount == int((Decimal(net) / 10).quantize(Decimal(1), rounding="ROUND_HALF_UP"))
        assert inv.total == inv.subtotal - inv.discount_total + (inv.tax or 0)
    # Kuwait levies no VAT: no dinar invoice is taxed
    assert all(inv.tax is None for inv in b.invoices.values() if inv.currency == "kwd")


def test_the_erp_holds_each_currency_with_its_digits_and_a_rate(ds: DemoDataset) -> None:
    t = ds.erp.tables
    currencies = {c["code"]: c for c in t["currency.currency"].values()}
    assert {code: c["digits"] for code, c in currencies.items()} == {"USD": 2, "EUR": 2, "GBP": 2, "JPY": 0, "KWD": 3}
    assert currencies["JPY"]["symbol"] == "¥" and currencies["JPY"]["name"] == "Yen"
    code_of = {cid: c["code"] for cid, c in t["currency.currency"].items()}
    rates = {code_of[r["currency"]]: r["rate"] for r in t["currency.currency.rate"].values()}
    assert rates == {code: Decimal(v) for code, v in RATES.items()}
    [tax] = [x for x in t["account.tax"].values() if x["name"] == "JP JCT 10 %"]
    assert tax["rate"] == Decimal("0.1") and tax["type"] == "percentage"


def test_erp_copies_of_yen_and_dinar_invoices_are_billings_amounts_in_the_currencys_exponent(ds: DemoDataset) -> None:
    t = ds.erp.tables
    code_of = {cid: c["code"] for cid, c in t["currency.currency"].items()}
    planted = {m.object for m in ds.manifest}
    checked = Counter[str]()
    for rec in t["account.invoice"].values():
        binv = ds.billing.invoices.get(rec["reference"] or "")
        code = code_of[rec["currency"]]
        if binv is None or binv.id in planted or code not in ("JPY", "KWD") or rec["state"] == "cancelled":
            continue
        if any(ln.get("origin") for ln in (t["account.invoice.line"][x] for x in rec["lines"])):
            continue  # a credit note
        assert rec["total_amount"] == from_minor(binv.total, binv.currency), (rec["number"], binv.number)
        for field in ("untaxed_amount", "tax_amount", "total_amount"):
            # in the currency's own digits: no fraction of a yen, no more than three decimals of a dinar
            assert -rec[field].as_tuple().exponent <= exponent(code), (field, rec[field])
        checked[code] += 1
    assert checked["JPY"] >= 5, checked


def test_a_jpy_mismatch_is_planted_on_every_seed(ds: DemoDataset) -> None:
    jpy = [m for m in ds.manifest
           if m.rule in ("invoice.tax_mismatch", "invoice.amount_mismatch")
           and ds.billing.invoices[m.object].currency == "jpy"]
    assert jpy, [m.detail for m in ds.manifest if "JPY" in m.detail]
    tax = [m for m in jpy if m.rule == "invoice.tax_mismatch"]
    assert tax and " JPY" in tax[0].detail and ".00 JPY" not in tax[0].detail


def test_demo_manifest_lists_the_jpy_tax_mismatch(tmp_path: Path) -> None:
    env = {**os.environ, "SYNCDESK_HOME": str(tmp_path / "home"), "SYNCDESK_AUDIT_KEY_DIR": str(tmp_path / "keys")}
    out = subprocess.run([sys.executable, str(ROOT / "main.py"), "demo-manifest", "--anchor", "1780000000"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=True)
    entries = json.loads(out.stdout)
    jpy = [e for e in entries if e["rule"] == "invoice.tax_mismatch" and e["detail"].endswith(" JPY)")]
    assert jpy, [e["detail"] for e in entries if "JPY" in e["detail"]]
    # "ERP tax 15,120 JPY, billing 16,800 JPY (same total 184,800 JPY)": grouped, never ".00"
    assert ".00 JPY" not in jpy[0]["detail"] and "," in jpy[0]["detail"]
