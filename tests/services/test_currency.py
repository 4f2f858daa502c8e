"""Minor units with each currency's own exponent (G1 item 4, "Rounding" and "Display").

- ``to_minor`` / ``from_minor`` round-trip exactly for every currency in the ISO 4217 table, and an
  amount finer than the minor unit is refused, never rounded;
- amounts are shown with their currency's exponent: JPY without decimals, KWD with three, EUR
  with two, grouped by thousands;
- reconciliation compares in minor units: KWD 12.345 against 12.340 is an
  ``invoice.amount_mismatch`` whose summary, CLI table, CSV and JSON show both amounts distinctly,
  while 12.340 and 12.34 KWD are the same money;
- a JPY invoice reads "1,500 JPY" in the summary, the timeline and the CLI, never "1,500.00";
- ``Money`` gains ``minor`` and ``exponent`` and keeps its stored form (the codec reads what it wrote).
"""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.headless import exception_dict, render_exceptions
from services.core import currency
from services.core.currency import (
    ISO_EXPONENTS,
    STRIPE_SPECIAL_CASES,
    MinorUnitError,
    amount_text,
    exponent,
    format_money,
    from_minor,
    money_key,
    same_amount,
    stripe_exponent,
    to_minor,
)
from services.core.domain import Invoice, InvoiceStatus, Money
from services.core.reconcile import money_str, reconcile
from services.core.timeline import build_timeline
from services.io.connectors.stripe_payloads import currency_exponent as payload_exponent
from services.store import codec
from tests.worlds import NOW, B, World, ref

CODES = st.sampled_from(sorted(ISO_EXPONENTS))
MINORS = st.integers(min_value=-(10 ** 30), max_value=10 ** 30)
GROUPED = re.compile(r"^-?\d{1,3}(,\d{3})*(\.\d+)? [A-Z]{3}$")


# -- the table -------------------------------------------------------------------------------
def test_exponents_follow_iso_4217() -> None:
    assert exponent("JPY") == 0 and exponent("jpy") == 0 and exponent("KRW") == 0 and exponent("ISK") == 0
    for code in ("KWD", "BHD", "JOD", "OMR", "TND", "IQD", "LYD"):
        assert exponent(code) == 3, code
    assert exponent("CLF") == 4 and exponent("UYW") == 4
    assert exponent("EUR") == exponent("USD") == exponent("GBP") == exponent("HUF") == 2
    assert exponent("ZZZ") == 2  # a code the table does not hold: two, as most currencies
    assert {e for e in ISO_EXPONENTS.values()} == {0, 2, 3, 4}
    assert all(len(c) == 3 and c.isalpha() and c.isupper() for c in ISO_EXPONENTS)


def test_stripe_exponents_where_stripe_differs_from_iso() -> None:
    assert stripe_exponent("JPY") == 0 and stripe_exponent("ugx") == 0 and stripe_exponent("KWD") == 3
    assert exponent("MGA") == 2 and stripe_exponent("MGA") == 0  # Stripe: zero-decimal
    assert exponent("ISK") == 0 and stripe_exponent("ISK") == 2  # Stripe: two-decimal, multiples of 100
    assert exponent("IQD") == 3 and stripe_exponent("IQD") == 2  # not among Stripe's three-decimal ones
    assert stripe_exponent("HUF") == stripe_exponent("TWD") == 2  # whole units only for payouts
    assert {"ISK", "HUF", "TWD", "UGX"} <= STRIPE_SPECIAL_CASES.keys()


@given(CODES)
def test_the_stripe_connector_reads_amounts_with_stripes_table(code: str) -> None:
    # the connector's own table (services.io.connectors.stripe_payloads) must not drift from this one
    assert payload_exponent(code.lower()) == stripe_exponent(code)


# -- exact conversions -----------------------------------------------------------------------
@given(CODES, MINORS)
def test_minor_units_round_trip_for_every_currency(code: str, minor: int) -> None:
    major = from_minor(minor, code)
    assert major.as_tuple().exponent == -exponent(code)  # written with the currency's exponent
    assert to_minor(major, code) == minor
    assert from_minor(to_minor(major, code), code) == major
    assert Money(major, code).minor == minor and Money(major, code).exponent == exponent(code)


@given(CODES, MINORS, st.integers(min_value=1, max_value=9), st.integers(min_value=1, max_value=4))
def test_an_amount_finer_than_the_minor_unit_is_refused_not_rounded(code: str, minor: int, digit: int,
                                                                       extra: int) -> None:
    # minor units, then ``extra`` more decimals ending in a non-zero digit: 12.345 KWD -> 12.3451
    # (built from text: Decimal.scaleb would round past the context's 28 digits)
    finer = Decimal(f"{minor * 10 ** extra + (digit if minor >= 0 else -digit)}E-{exponent(code) + extra}")
    with pytest.raises(MinorUnitError):
        to_minor(finer, code)
    assert not currency.is_whole_minor(finer, code)
    with pytest.raises(MinorUnitError):
        money_key(finer, code)
    # trailing zeros are not finer: 12.3450 KWD is 12345 fils
    padded = Decimal(f"{minor * 10 ** extra}E-{exponent(code) + extra}")
    assert to_minor(padded, code) == minor


def test_conversions_by_example() -> None:
    assert to_minor(Decimal("12.345"), "KWD") == 12345 and to_minor(Decimal("12.340"), "KWD") == 12340
    assert to_minor(Decimal("12.34"), "KWD") == 12340
    assert to_minor(Decimal("1500"), "JPY") == 1500 and to_minor(Decimal("1500.00"), "JPY") == 1500
    assert to_minor(Decimal("-19.9"), "EUR") == -1990 and to_minor(Decimal("1E+3"), "EUR") == 100000
    assert from_minor(1990, "eur") == Decimal("19.90") and str(from_minor(1990, "EUR")) == "19.90"
    assert str(from_minor(1500, "JPY")) == "1500" and str(from_minor(-5, "KWD")) == "-0.005"
    assert str(from_minor(1, "CLF")) == "0.0001"
    with pytest.raises(MinorUnitError):
        to_minor(Decimal("0.5"), "JPY")
    with pytest.raises(MinorUnitError):
        to_minor(Decimal("NaN"), "EUR")
    with pytest.raises(TypeError):
        to_minor(1.5, "EUR")  # type: ignore[arg-type]  # floats are refused, never converted
    with pytest.raises(TypeError):
        from_minor(True, "EUR")
    with pytest.raises(MinorUnitError):
        _ = Money(Decimal("0.5"), "JPY").minor


@given(CODES, MINORS, MINORS)
def test_comparison_is_in_minor_units(code: str, a: int, b: int) -> None:
    x, y = from_minor(a, code), from_minor(b, code)
    assert same_amount(x, code, y, code.lower()) is (a == b)
    assert (money_key(x, code) < money_key(y, code)) is (x < y)
    assert not same_amount(x, code, x, "XXZ" if code != "XXZ" else "XXY")  # another currency is other money


def test_an_amount_finer_than_the_minor_unit_is_compared_exactly() -> None:
    assert same_amount(Decimal("12.340"), "KWD", Decimal("12.34"), "KWD")
    assert not same_amount(Decimal("12.3451"), "KWD", Decimal("12.345"), "KWD")
    assert same_amount(Decimal("12.3451"), "KWD", Decimal("12.34510"), "KWD")
    assert not same_amount(Decimal("NaN"), "EUR", Decimal("1"), "EUR")  # not a number: never equal, never raises
    assert same_amount(Decimal("Infinity"), "EUR", Decimal("Infinity"), "EUR")


# -- display ---------------------------------------------------------------------------------
def test_format_by_example() -> None:
    assert format_money(Decimal("1234.5"), "EUR") == "1,234.50 EUR"
    assert format_money(Decimal("1235"), "JPY") == "1,235 JPY"
    assert format_money(Decimal("1235.00"), "jpy") == "1,235 JPY"
    assert format_money(Decimal("12.345"), "KWD") == "12.345 KWD"
    assert format_money(Decimal("12.34"), "KWD") == "12.340 KWD"
    assert format_money(Decimal("1234567.8912"), "CLF") == "1,234,567.8912 CLF"
    assert format_money(Decimal("-1234.5"), "USD") == "-1,234.50 USD"
    assert format_money(Decimal("0"), "GBP") == "0.00 GBP"
    # finer than the minor unit: every decimal shown, so two different amounts never read the same
    assert format_money(Decimal("12.3451"), "KWD") == "12.3451 KWD"
    assert format_money(Decimal("0.5"), "JPY") == "0.5 JPY"
    assert format_money(Decimal("NaN"), "EUR") == "NaN EUR"  # display never fails
    assert amount_text(Decimal("1234.5"), "EUR") == "1234.50" and amount_text(Decimal("1500"), "JPY") == "1500"
    assert amount_text(Decimal("90"), "EUR") == "90.00" and amount_text(Decimal("12.34"), "KWD") == "12.340"
    assert money_str(Decimal("12.345"), "KWD") == "12.345 KWD"  # the summaries' name for it
    assert str(Money(Decimal("1500"), "JPY")) == "1,500 JPY" and str(Money(Decimal("1234.5"), "EUR")) == "1,234.50 EUR"


@given(CODES, MINORS)
def test_format_uses_the_exponent_and_groups_thousands(code: str, minor: int) -> None:
    major = from_minor(minor, code)
    text = format_money(major, code)
    assert GROUPED.match(text), text
    number, shown_code = text.split(" ")
    assert shown_code == code
    decimals = number.partition(".")[2]
    assert len(decimals) == exponent(code)  # JPY: none; KWD: three; CLF: four
    assert Decimal(number.replace(",", "")) == major  # exact: nothing rounded away
    assert Decimal(amount_text(major, code)) == major and "," not in amount_text(major, code)


def test_locale_grouping_needs_babel() -> None:
    try:
        import babel  # noqa: F401
    except ImportError:
        with pytest.raises(RuntimeError, match="babel"):
            format_money(Decimal("1234.5"), "EUR", locale="de_DE")
    else:
        assert format_money(Decimal("1234.5"), "EUR", locale="de_DE") == "1.234,50 EUR"
        assert format_money(Decimal("1235"), "JPY", locale="de_DE") == "1.235 JPY"


# -- Money keeps its stored form -------------------------------------------------------------
def test_money_is_stored_as_before_and_compares_as_before() -> None:
    m = Money(Decimal("12.345"), "kwd")
    assert codec.dumps(m) == '["12.345","KWD"]'  # the snapshot format: amount and code, nothing derived
    assert codec.loads(Money, '["12.340","KWD"]') == Money(Decimal("12.34"), "KWD")  # numeric equality
    assert m.minor == 12345 and m.exponent == 3
    assert Money(Decimal("12.340"), "KWD") != m


# -- reconciliation and what the CLI shows ---------------------------------------------------
def kwd_world() -> World:
    """Two customers billed in KWD: cus_0's ERP copy is 5 fils short (12.345 vs 12.340), cus_1's
    ERP copy holds the same money written with fewer decimals (12.340 vs 12.34)."""
    w = World(2)
    w.b.invoices["in_cus_0"].total = Money(Decimal("12.345"), "KWD")
    w.e.invoices["ein_cus_0"].total = Money(Decimal("12.340"), "KWD")
    w.b.invoices["in_cus_1"].total = Money(Decimal("12.340"), "KWD")
    w.e.invoices["ein_cus_1"].total = Money(Decimal("12.34"), "KWD")
    return w


def test_a_kwd_mismatch_of_five_fils_is_raised_and_reads_distinctly() -> None:
    result = reconcile(kwd_world().snapshot(), now=NOW)
    assert [(x.rule, x.object_id) for x in result.exceptions] == [("invoice.amount_mismatch", "in_cus_0")]
    exc = result.exceptions[0]
    assert "billing 12.345 KWD" in exc.summary and "ERP 12.340 KWD" in exc.summary, exc.summary
    totals = {s.system.value: s.values["total"] for s in exc.sides}
    assert totals == {"billing": "12.345", "erp": "12.340"}
    rows = [exception_dict(exc, NOW)]
    table = render_exceptions(rows, "table", width=None)
    assert "12.345 KWD" in table and "12.340 KWD" in table and "12.34 KWD" not in table
    (row,) = list(csv.DictReader(io.StringIO(render_exceptions(rows, "csv"))))
    assert "12.345 KWD" in row["summary"] and "12.340 KWD" in row["summary"]
    assert json.loads(row["sides"])["erp"]["total"] == "12.340"
    (out,) = json.loads(render_exceptions(rows, "json"))
    assert out["sides"]["billing"]["total"] == "12.345" and out["sides"]["erp"]["total"] == "12.340"


def jpy_world() -> World:
    """cus_0 billed 1,500 JPY, not yet in the ERP; cus_1 billed 1,500 JPY, 1,499 JPY in the ERP."""
    w = World(2)
    for cid in ("cus_0", "cus_1"):
        w.b.invoices[f"in_{cid}"].total = Money(Decimal("1500"), "JPY")
        w.e.invoices[f"ein_{cid}"].total = Money(Decimal("1500"), "JPY")
    del w.e.invoices["ein_cus_0"]
    w.e.invoices["ein_cus_1"].total = Money(Decimal("1499"), "JPY")
    w.b.invoices["in_jpy_open"] = Invoice(ref(B, "invoice", "in_jpy_open"), "cus_1", InvoiceStatus.OPEN,
                                          Money(Decimal("123456"), "JPY"), number="ACME-JPY",
                                          finalized_at=NOW - timedelta(days=1))
    return w


def test_jpy_amounts_show_no_decimals() -> None:
    w = jpy_world()
    result = reconcile(w.snapshot(), now=NOW)
    by_rule = {x.rule: x for x in result.exceptions if x.customer_id in ("cus_0", "cus_1")
               and x.object_id != "in_jpy_open"}
    assert "(1,500 JPY)" in by_rule["invoice.missing_in_erp"].summary
    mismatch = by_rule["invoice.amount_mismatch"]
    assert "billing 1,500 JPY" in mismatch.summary and "ERP 1,499 JPY" in mismatch.summary
    assert {s.values["total"] for s in mismatch.sides} == {"1500", "1499"}
    table = render_exceptions([exception_dict(x, NOW) for x in result.exceptions], "table", width=None)
    assert "1,500 JPY" in table and "123,456 JPY" in table
    assert ".00 JPY" not in table and "1,500.00" not in table
    timeline = build_timeline(w.snapshot(), "cus_1", exceptions=result.exceptions, now=NOW)
    summaries = [e.event.summary for e in timeline.oldest_first()]
    assert any(s.endswith("finalized: 1,500 JPY") for s in summaries), summaries
    assert any(s.endswith("finalized: 123,456 JPY") for s in summaries), summaries
    assert not any(".00 JPY" in s for s in summaries)


def test_eur_amounts_keep_two_decimals() -> None:
    w = World(1)
    w.e.invoices["ein_cus_0"].total = Money(Decimal("90.1"), "EUR")
    (exc,) = reconcile(w.snapshot(), now=NOW).exceptions
    assert exc.summary.endswith("billing 90.00 EUR, ERP 90.10 EUR (paid)"), exc.summary
