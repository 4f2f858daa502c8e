"""The demo Tryton server's searches and reads: domains, ordering and paging, computed and
dotted fields, the incremental-sync watermark, and speed on large tables.

Behaviour under test is ``shared/specs/tryton/README.md`` (verified against trytond 8.2).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from services.demo.store import ErpStore
from services.demo.tryton.service import TrytonService
from tests.demo.tryton_rig import CTX, DB, NOW, TODAY, Clock, Env, RpcError, meta, seed_minimal, serve_env, user_error


@pytest.fixture
def env() -> Iterator[Env]:
    with serve_env() as served:
        yield served


# --------------------------------------------------------------------------------------
# Searching and reading
# --------------------------------------------------------------------------------------


def test_search_domains(env: Env) -> None:
    rpc, ids = env.rpc, env.ids
    party = "party.party"
    assert rpc.model(party, "search", [["code", "=", "cus_A"]]) == [ids["cus_A"]]
    assert rpc.model(party, "search", ["code", "=", "cus_B"]) == [ids["cus_B"]]  # a bare leaf
    assert rpc.model(party, "search", ["OR", ["code", "=", "cus_A"], ["name", "ilike", "%gmbh"]]) == [
        ids["cus_A"], ids["cus_B"]]
    assert rpc.model(party, "search", [["code", "like", "cus_%"], ["name", "not like", "A%"]]) == [
        ids["cus_B"], ids["cus_C"]]
    assert rpc.model(party, "search", [["code", "in", ["cus_A", "cus_C", "zzz"]]]) == [ids["cus_A"], ids["cus_C"]]
    assert rpc.model(party, "search", [["code", "=", None]]) == [ids["company_party"]]
    assert rpc.model(party, "search", [["code", "!=", None], ["code", "not in", ["cus_A"]]]) == [
        ids["cus_B"], ids["cus_C"]]
    # inactive records are left out unless the domain mentions active
    assert rpc.model(party, "search", [["code", "=", "cus_OLD"]]) == []
    assert rpc.model(party, "search", [["active", "=", False]]) == [ids["inactive"]]
    assert rpc.model(party, "search", [["code", "=", "cus_OLD"]], ctx={**CTX, "active_test": False}) == [
        ids["inactive"]]
    # related paths, nested AND/OR, typed comparisons
    inv = "account.invoice"
    assert rpc.model(inv, "search", [["party.code", "=", "cus_A"]]) == [ids["inv_draft"], ids["inv_paid"]]
    assert rpc.model(inv, "search", [["party.addresses.country.code", "=", "DE"]]) == [ids["inv_posted"]]
    assert rpc.model(inv, "search", [["lines.unit_price", ">=", Decimal("490")]]) == [ids["inv_posted"]]
    assert rpc.model(inv, "search", ["AND", ["state", "!=", "paid"],
                                     ["OR", ["invoice_date", "<", TODAY - timedelta(days=3)],
                                      ["total_amount", ">", Decimal("100")]]]) == [
        ids["inv_posted"], ids["inv_draft"]]
    assert rpc.model(inv, "search", [["number", ">", "INV-000009"]]) == [ids["inv_posted"]]
    assert rpc.model(inv, "search", [["party", "ilike", "beta%"]]) == [ids["inv_posted"]]
    assert rpc.model(inv, "search", [["party", "in", [ids["cus_B"], ids["cus_C"]]]]) == [ids["inv_posted"]]
    assert rpc.model(inv, "search", [["id", "in", [ids["inv_paid"], 9999]]]) == [ids["inv_paid"]]


def test_search_read_offset_limit_order_and_count(env: Env) -> None:
    rpc, ids = env.rpc, env.ids
    customers = [["code", "like", "cus_%"]]
    assert rpc.model("party.party", "search_count", customers) == 3
    assert rpc.model("party.party", "search_count", []) == 4
    rows = rpc.model("party.party", "search_read", customers, 0, None, [["name", "DESC"]], ["name"])
    assert [r["name"] for r in rows] == ["Gamma LLC", "Beta GmbH", "Acme Corp"]
    rows = rpc.model("party.party", "search_read", customers, 1, 1, [["id", "DESC"]], ["code"])
    assert rows == [{"id": ids["cus_B"], "code": "cus_B"}]
    ordered = rpc.model("account.invoice", "search", [], 0, None, [["number", "ASC"], ["id", "DESC"]])
    assert ordered == [ids["inv_draft"], ids["inv_paid"], ids["inv_posted"]]  # NULLs first, as SQLite
    ordered = rpc.model("account.invoice", "search", [], 0, 2, [["party.name", "DESC"], ["id", "ASC"]])
    assert ordered == [ids["inv_posted"], ids["inv_draft"]]
    assert rpc.model("account.invoice", "search", [], 2, 10, None) == [ids["inv_paid"]]
    # keyset paging on id
    assert rpc.model("account.invoice", "search", [["id", ">", ids["inv_posted"]]], 0, 1, [["id", "ASC"]]) == [
        ids["inv_draft"]]
    assert rpc.model("account.invoice", "search", [["id", "<=", ids["inv_draft"]], ["state", "!=", "draft"]]) == [
        ids["inv_posted"]]
    with pytest.raises(RpcError) as err:
        rpc.model("party.party", "search", [], 0, None, [["name", "SIDEWAYS"]])
    assert err.value.error[1] == ""


def test_read_plain_computed_and_dotted_fields(env: Env) -> None:
    rpc, ids = env.rpc, env.ids
    [row] = rpc.model("account.invoice", "read", [ids["inv_draft"]],
                      ["number", "party", "party.code", "party.name", "lines.amount", "lines.product.code",
                       "untaxed_amount", "tax_amount", "total_amount", "amount_to_pay", "rec_name",
                       "invoice_date", "create_date", "write_date", "journal.rec_name"])
    assert row["id"] == ids["inv_draft"] and row["number"] is None and row["party"] == ids["cus_A"]
    assert row["party."] == {"id": ids["cus_A"], "code": "cus_A", "name": "Acme Corp"}
    # currency rounding is half-even, as trytond's Currency.round
    assert [line["amount"] for line in row["lines."]] == [Decimal("98.00"), Decimal("12.34")]
    assert row["lines."][0]["product."] == {"id": ids["pro_monthly"], "code": "pro_monthly"}
    assert row["untaxed_amount"] == Decimal("110.34") and row["total_amount"] == Decimal("110.34")
    assert row["tax_amount"] == Decimal("0.00") and row["amount_to_pay"] == Decimal("0.00")
    assert row["rec_name"] == "[in_A1]"
    assert row["invoice_date"] == TODAY - timedelta(days=2)
    assert row["create_date"] == NOW - timedelta(days=2) and row["write_date"] is None
    assert row["journal."] == {"id": 1, "rec_name": "Revenue"}

    [posted] = rpc.model("account.invoice", "read", [ids["inv_posted"]], ["amount_to_pay", "rec_name"])
    assert posted["amount_to_pay"] == Decimal("490.00") and posted["rec_name"] == "INV-000010 [in_B1]"

    [party] = rpc.model("party.party", "read", [ids["cus_A"]], None)
    assert party["email"] == "billing@acme.example" and party["tax_identifier"] is not None
    assert party["rec_name"] == "Acme Corp" and len(party["addresses"]) == 1
    assert len(party["contact_mechanisms"]) == 2
    [product] = rpc.model("product.product", "read", [ids["pro_monthly"]], ["name", "rec_name", "template.name"])
    assert product["name"] == "Pro (monthly)" and product["rec_name"] == "[pro_monthly] Pro (monthly)"
    [no_tax] = rpc.model("party.party", "read", [ids["cus_C"]], ["tax_identifier", "email"])
    assert no_tax == {"id": ids["cus_C"], "tax_identifier": None, "email": None}


def test_read_errors(env: Env) -> None:
    rpc, ids = env.rpc, env.ids
    with pytest.raises(RpcError) as err:
        rpc.model("party.party", "read", [ids["cus_A"]], ["name", "no_such_field"])
    assert err.value.error == ["'no_such_field'", ""]
    with pytest.raises(RpcError) as err:
        rpc.model("party.party", "search_read", [["no_such_field", "=", 1]], 0, None, None, ["name"])
    assert err.value.error == ["'no_such_field'", ""]
    with pytest.raises(RpcError) as err:
        rpc.model("party.party", "read", [ids["cus_A"], 424242], ["name"])
    assert "424242" in user_error(err.value) and "exist" in user_error(err.value)

def test_watermark_domain(env: Env) -> None:
    rpc, ids = env.rpc, env.ids
    w = NOW - timedelta(days=3)
    domain = ["OR", ["create_date", ">", w], ["write_date", ">", w]]
    assert rpc.model("account.invoice", "search", domain, 0, None, [["id", "ASC"]]) == [ids["inv_draft"]]
    assert rpc.model("party.party", "search", domain) == []
    env.clock.advance(minutes=1)
    rpc.model("party.party", "write", [ids["cus_B"]], {"name": "Beta GmbH & Co"})
    [new] = rpc.model("party.party", "create", [{"name": "Delta", "code": "cus_D"}])
    rows = rpc.model("party.party", "search_read", domain, 0, 10, [["id", "ASC"]], ["write_date", "create_date"])
    assert [r["id"] for r in rows] == [ids["cus_B"], new]
    assert rows[0]["write_date"] == env.clock.now and rows[1]["write_date"] is None
    assert rows[1]["create_date"] == env.clock.now
    assert rpc.model("party.party", "search", domain, 1, 1, [["id", "ASC"]]) == [new]
    w2 = env.clock.now
    assert rpc.model("party.party", "search", ["OR", ["create_date", ">", w2], ["write_date", ">", w2]]) == []
    assert rpc.model("party.party", "search", ["OR", ["create_date", ">=", w2], ["write_date", ">=", w2]]) == [
        ids["cus_B"], new]
    # combined with more conditions and a watermark older than everything
    old = ["OR", ["create_date", ">", datetime(2000, 1, 1)], ["write_date", ">", datetime(2000, 1, 1)]]
    assert rpc.model("party.party", "search", [old, ["code", "like", "cus_%"]]) == [
        ids["cus_A"], ids["cus_B"], ids["cus_C"], new]
    # changes behind the server's back are seen too
    env.store.update("account.invoice", ids["inv_posted"], {"write_date": w2 + timedelta(seconds=5)})
    x = env.store.insert("account.invoice", {**meta(w2 + timedelta(seconds=6)), "party": ids["cus_A"],
                                             "reference": "in_X", "state": "draft", "type": "out"})
    domain2 = ["OR", ["create_date", ">", w2], ["write_date", ">", w2]]
    assert rpc.model("account.invoice", "search", domain2) == [ids["inv_posted"], x]

# --------------------------------------------------------------------------------------
# Scale: indexed lookups and watermark paging stay fast on a large table (in-process)
# --------------------------------------------------------------------------------------


def test_large_tables_stay_fast() -> None:
    store = ErpStore(DB)
    ids = seed_minimal(store)
    n = 200_000
    base = NOW - timedelta(days=400)
    table = store.tables["account.invoice"]
    for i in range(n):
        when = base + timedelta(minutes=i)
        store.insert("account.invoice", {**meta(when), "type": "out", "reference": f"in_{i:07d}",
                                         "party": ids["cus_A"] if i % 2 else ids["cus_B"], "state": "posted",
                                         "number": f"INV-{i + 100:06d}", "currency": 1, "company": 1,
                                         "invoice_date": when.date(), "journal": 1, "account": 1})
    service = TrytonService(store, Clock(NOW))
    from services.demo.tryton.model_call import ModelCall
    from services.demo.tryton.transaction import Transaction

    def call(model: str, method: str, *args: Any) -> Any:
        with store.lock:
            tx = Transaction(service, ids["admin"], dict(CTX), NOW)
            handler = service.handler(model, method)
            assert handler is not None
            return handler(ModelCall(service, tx, model), *args)

    start = time.perf_counter()
    found = call("account.invoice", "search_read", [["reference", "=", "in_0123456"]], 0, None, None,
                 ["number", "party.code"])
    assert found[0]["number"] == "INV-123556"
    assert call("account.invoice", "search", [["party.code", "=", "cus_B"], ["reference", "=", "in_0000002"]])
    assert time.perf_counter() - start < 0.5

    w = base + timedelta(minutes=n - 1000)
    domain = ["OR", ["create_date", ">", w], ["write_date", ">", w]]
    call("account.invoice", "search", domain, 0, 1, None)  # builds the index once
    start = time.perf_counter()
    pages = [call("account.invoice", "search_read", domain, off, 100, [["id", "ASC"]], ["reference"])
             for off in range(0, 1100, 100)]
    assert sum(len(p) for p in pages) == 999 + 3  # and the three seeded invoices
    assert time.perf_counter() - start < 1.0
    assert len(table) == n + 3
