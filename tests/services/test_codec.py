"""The snapshot codec: exact round trips, shared values, interned identifiers, the GC pause."""

from __future__ import annotations

import gc
import json
import threading
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from services.core.domain import (
    ExternalRef,
    Invoice,
    InvoiceLine,
    InvoiceStatus,
    Money,
    System,
)
from services.store import codec


def invoice(iid: str, customer: str, amount: str, status: InvoiceStatus = InvoiceStatus.PAID) -> Invoice:
    total = Money(Decimal(amount), "eur")
    return Invoice(ref=ExternalRef(System.BILLING, "invoice", iid), customer_id=customer, status=status,
                   total=total, number=f"N-{iid}", billing_invoice_id=iid,
                   created=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
                   lines=[InvoiceLine("2 × <b>Pro</b> «ünïcode»", "pro_monthly", Decimal("2"), total)])


def test_round_trip_is_exact() -> None:
    inv = invoice("in_1", "cus_1", "1234567890123.45")
    back = codec.loads(Invoice, codec.dumps(inv))
    assert back == inv
    assert back.total.amount == Decimal("1234567890123.45") and back.total.currency == "EUR"
    assert back.lines[0].description == "2 × <b>Pro</b> «ünïcode»"


def test_equal_money_is_shared_and_identifiers_are_interned() -> None:
    texts = [codec.dumps(invoice(f"in_{i}", "cus_" + "7" * 5, "49.00")) for i in range(3)]
    texts.append(codec.dumps(invoice("in_9", "cus_" + "7" * 5, "50.00")))
    a, b, c, d = codec.loads_many(Invoice, texts)
    assert a.total is b.total is c.total  # one object per distinct value
    assert d.total is not a.total and d.total == Money(Decimal("50.00"), "EUR")
    assert a.lines[0].amount is a.total
    # the same customer id decoded from four rows is one string object
    assert a.customer_id is b.customer_id is d.customer_id
    assert a.total.currency is d.total.currency
    # free text is not interned (names, numbers): only identifiers and codes
    assert not codec.interned_field("name") and not codec.interned_field("number")
    assert codec.interned_field("customer_id") and codec.interned_field("plan_key")


def test_shared_values_are_not_confused_across_different_rows() -> None:
    rows = [codec.dumps(invoice("in_1", "cus_1", "10.0")), codec.dumps(invoice("in_2", "cus_1", "10.00"))]
    x, y = codec.loads_many(Invoice, rows)
    # "10.0" and "10.00" are equal Decimals but distinct values on the wire: each keeps its own
    assert str(x.total.amount) == "10.0" and str(y.total.amount) == "10.00"


def test_a_malformed_row_is_an_error_not_a_wrong_record() -> None:
    good = json.loads(codec.dumps(invoice("in_1", "cus_1", "1.00")))
    # a row without a field that has no default (the total), or with one field too many
    with pytest.raises(ValueError, match="expected"):
        codec.loads(Invoice, json.dumps(good[:3]))
    with pytest.raises(ValueError, match="expected"):
        codec.loads(Invoice, json.dumps([*good, None]))


def test_gc_pause_nests_across_threads_and_restores_the_collector() -> None:
    assert gc.isenabled()
    started, release = threading.Event(), threading.Event()

    def worker() -> None:
        with codec.gc_paused():
            started.set()
            release.wait(5)

    t = threading.Thread(target=worker)
    t.start()
    started.wait(5)
    with codec.gc_paused():
        assert not gc.isenabled()
    assert not gc.isenabled()  # the worker's pause still holds
    release.set()
    t.join(5)
    assert gc.isenabled()


def test_gc_pause_keeps_a_disabled_collector_disabled() -> None:
    gc.disable()
    try:
        with codec.gc_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_an_unknown_enum_value_is_an_error() -> None:
    row = json.loads(codec.dumps(invoice("in_1", "cus_1", "1.00")))
    row[2] = "bogus"
    with pytest.raises(ValueError, match="bogus"):
        codec.loads(Invoice, json.dumps(row))
    row[2] = ["not", "hashable"]
    with pytest.raises(ValueError):
        codec.loads(Invoice, json.dumps(row))
