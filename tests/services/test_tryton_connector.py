"""The Tryton ERP connector against the demo ERP server over loopback (and a few hand-made
answers through httpx.MockTransport)."""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest

from services.core.domain import InvoiceStatus, Money, SubscriptionStatus, System
from services.core.errors import (
    AuthenticationError,
    NotFoundError,
    ProtocolError,
    RemoteValidationError,
    RemoteWarning,
    UnavailableError,
)
from services.core.sysdata import Kind, Progress, SystemData
from services.demo.dataset import DemoDataset, generate
from services.demo.faults import FaultInjector
from services.demo.serving import ThreadedServers
from services.demo.store import ErpStore
from services.demo.tryton.app import create_app
from services.demo.tryton.service import TrytonService
from services.io.config import Secret, SystemConnection
from services.io.connectors.tryton import TrytonConnector
from services.io.connectors.tryton_session import PAGE_SIZE, tryton_error_parser
from services.io.http import HttpPolicy
from services.io.tryton_rpc import dumps, loads
from tests.demo.tryton_rig import NOW, TODAY, Clock, seed_minimal

DB = "syncdesk_demo"
FAST = HttpPolicy(max_retries=2, backoff_base=0.01, backoff_max=0.05, connect_timeout=2.0, read_timeout=10.0,
                  concurrency=2)
ANCHOR = 1_714_564_800  # 2024-05-01T12:00:00Z: the 250-customer dataset's "now"
CENT = Decimal("0.01")


@dataclass
class Erp:
    url: str
    store: ErpStore
    injector: FaultInjector
    clock: Clock
    ids: dict[str, int]
    service: TrytonService
    login: str = "admin"
    password: str = "pw"

    def connection(self, login: str | None = None, password: str | None = None) -> SystemConnection:
        return SystemConnection(System.ERP, "tryton", self.url, {"database": self.store.database,
                                                                  "login": login or self.login},
                                {"password": Secret(password or self.password)})

    def connector(self, policy: HttpPolicy = FAST, login: str | None = None,
                  password: str | None = None) -> TrytonConnector:
        return TrytonConnector.create(self.connection(login, password), policy=policy, clock=self.clock)

    def parties_coded(self, code: str) -> list[int]:
        return [rid for rid, p in self.store.tables["party.party"].items() if p.get("code") == code]

    def invoices_referenced(self, ref: str) -> list[int]:
        return [rid for rid, i in self.store.tables["account.invoice"].items() if i.get("reference") == ref]


def _meta(when: datetime) -> dict[str, Any]:
    return {"create_date": when, "write_date": None, "create_uid": 1, "write_uid": None}


def add_unlinked(store: ErpStore, ids: dict[str, int]) -> None:
    """An unlinked party (empty code) with an address and a posted invoice."""
    old = NOW - timedelta(days=30)
    pid = store.insert("party.party", {**_meta(old), "name": "Delta Unlinked SA", "code": "", "active": True,
                                       "identifiers": [], "addresses": [], "contact_mechanisms": [],
                                       "rec_name": "Delta Unlinked SA"})
    aid = store.insert("party.address", {**_meta(old), "party": pid, "country": ids["de"], "city": "Bonn",
                                         "street": "2 Rhine St", "postal_code": "53111", "rec_name": "x"})
    store.tables["party.party"][pid]["addresses"].append(aid)
    iid = store.insert("account.invoice", {
        **_meta(old), "type": "out", "number": "INV-000008", "reference": "in_D0", "party": pid,
        "company": ids["company"], "currency": ids["eur"], "invoice_date": TODAY - timedelta(days=30),
        "state": "posted", "description": None, "lines": [], "move": None, "journal": 1, "account": 1,
        "payment_term": 1, "invoice_address": aid, "rec_name": "INV-000008"})
    lid = store.insert("account.invoice.line", {
        **_meta(old), "invoice": iid, "type": "line", "product": ids["pro_monthly"], "description": "x",
        "quantity": 3.0, "unit_price": Decimal("10.50"), "account": 2, "unit": 1, "rec_name": "x"})
    store.tables["account.invoice"][iid]["lines"].append(lid)
    ids.update(unlinked=pid, inv_unlinked=iid)


def serve(store: ErpStore, ids: dict[str, int], clock: Clock) -> Iterator[Erp]:
    injector = FaultInjector("erp")
    app = create_app(store, injector, clock=clock)
    service = app.app.state.tryton  # type: ignore[attr-defined]
    with ThreadedServers({"erp": app}) as servers:
        yield Erp(servers.url("erp"), store, injector, clock, ids, service)


@pytest.fixture
def erp() -> Iterator[Erp]:
    store = ErpStore(DB)
    ids = seed_minimal(store)
    add_unlinked(store, ids)
    yield from serve(store, ids, Clock(NOW))


@pytest.fixture
async def conn(erp: Erp) -> AsyncIterator[TrytonConnector]:
    connector = erp.connector()
    yield connector
    await connector.aclose()


@pytest.fixture(scope="module")
def demo() -> Iterator[tuple[Erp, DemoDataset]]:
    ds = generate(250, 1, anchor=ANCHOR)
    creds = ds.credentials
    for erp in serve(ds.erp, {}, Clock(datetime.fromtimestamp(ANCHOR, UTC).replace(tzinfo=None))):
        erp.login, erp.password = creds.tryton_login, creds.tryton_password
        yield erp, ds


def line_total(store: ErpStore, invoice_id: int) -> Decimal:
    lines = store.tables["account.invoice.line"]
    return sum((Decimal(str(lines[i]["quantity"])) * lines[i]["unit_price"]).quantize(CENT)
               for i in store.tables["account.invoice"][invoice_id]["lines"]) or Decimal("0.00")


# --------------------------------------------------------------------------------------
# Session
# --------------------------------------------------------------------------------------


async def test_login_context_cached_and_no_secret_in_logs(erp: Erp, conn: TrytonConnector,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    ids = await conn.list_ids()
    assert conn.uid == erp.ids["admin"]
    assert conn.context is not None and conn.context["company"] == erp.ids["company"]
    ops = conn.client.stats.by_operation
    await conn.list_ids()
    assert ops["login"] == 1 and ops["get preferences"] == 1  # session and context are cached
    assert ids[Kind.INVOICE] == {str(i) for i in erp.store.tables["account.invoice"]}
    assert ids[Kind.SUBSCRIPTION] == {str(erp.ids["sub_A"])}
    # active parties but the company's own; coded products
    assert ids[Kind.CUSTOMER] == {str(erp.ids[k]) for k in ("cus_A", "cus_B", "cus_C", "unlinked")}
    assert ids[Kind.PLAN] == {str(erp.ids["pro_monthly"]), str(erp.ids["pro_yearly"])}
    token = next(iter(erp.service.sessions))
    assert token not in caplog.text and "Session " not in caplog.text


async def test_expired_session_logs_in_again_once(erp: Erp, conn: TrytonConnector) -> None:
    await conn.list_ids()
    erp.clock.advance(days=31)  # trytond's session timeout is 30 days
    ids = await conn.list_ids()
    assert len(ids[Kind.INVOICE]) == 4
    assert conn.client.stats.by_operation["login"] == 2
    assert conn.client.stats.by_operation["get preferences"] == 1


async def test_session_refused_twice_is_authentication_error() -> None:
    logins = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal logins
        body = json.loads(request.content)
        if body["method"] == "common.db.login":
            logins += 1
            return httpx.Response(200, content=dumps({"id": body["id"], "result": [1, "s" * 64, None]}))
        if body["method"] == "model.res.user.get_preferences" and logins == 1:
            return httpx.Response(200, content=dumps({"id": body["id"], "result": {"company": 1}}))
        return httpx.Response(401, content=b"")

    conn = SystemConnection(System.ERP, "tryton", "http://erp.test", {"database": DB, "login": "admin"},
                            {"password": Secret("pw")})
    connector = TrytonConnector.create(conn, policy=FAST, transport=httpx.MockTransport(handler))
    with pytest.raises(AuthenticationError) as err:
        await connector.list_ids()
    assert err.value.status == 401 and "session" in err.value.message
    assert logins == 2
    await connector.aclose()


async def test_wrong_password_is_authentication_error(erp: Erp) -> None:
    connector = erp.connector(login="clerk", password="not-the-password")
    with pytest.raises(AuthenticationError) as err:
        await connector.full_refresh()
    assert err.value.status == 401 and "clerk" in err.value.message
    assert "not-the-password" not in str(err.value)
    assert connector.client.stats.requests == 1  # a refused login is not retried
    await connector.aclose()


# --------------------------------------------------------------------------------------
# Full refresh
# --------------------------------------------------------------------------------------


async def test_full_refresh_maps_parties_invoices_subscriptions(erp: Erp, conn: TrytonConnector) -> None:
    phases: list[Progress] = []
    result = await conn.full_refresh(phases.append)
    data = result.full
    assert data is not None and result.delta is None and data.system is System.ERP
    ids = erp.ids
    customers = data.customers
    assert set(customers) == {str(ids[k]) for k in ("cus_A", "cus_B", "cus_C", "unlinked")}
    a = customers[str(ids["cus_A"])]
    assert (a.customer_id, a.name, a.email, a.tax_id, a.country) == (
        "cus_A", "Acme Corp", "billing@acme.example", "DE111", "US")
    assert a.ref.kind == "party.party" and a.ref.id == str(ids["cus_A"])
    assert a.created == (NOW - timedelta(days=60)).replace(tzinfo=UTC)
    b = customers[str(ids["cus_B"])]
    assert (b.customer_id, b.tax_id, b.country, b.email) == ("cus_B", "DE222", "DE", "ap@beta.example")
    c = customers[str(ids["cus_C"])]
    assert (c.tax_id, c.email, c.country) == (None, None, "US")  # a phone number is no e-mail
    d = customers[str(ids["unlinked"])]
    assert d.customer_id is None and d.country == "DE"

    assert {p.key for p in data.plans.values()} == {"pro_monthly", "pro_yearly"}
    assert data.plans[str(ids["pro_monthly"])].name == "Pro (monthly)"

    store = erp.store.tables["account.invoice"]
    assert set(data.invoices) == {str(i) for i in store}
    for iid, rec in store.items():
        inv = data.invoices[str(iid)]
        assert isinstance(inv.total.amount, Decimal)
        assert inv.total.amount == line_total(erp.store, iid)
        assert inv.status is InvoiceStatus(rec["state"])
        assert inv.billing_invoice_id == rec["reference"] and inv.number == rec["number"]
        assert inv.invoice_date == rec["invoice_date"]
        assert inv.created == rec["create_date"].replace(tzinfo=UTC)
        # the time of its current state from its own history (its last write), never its invoice_date
        reached = (rec["write_date"] or rec["create_date"]).replace(tzinfo=UTC)
        assert inv.posted_at == (reached if rec["state"] == "posted" else None)
        assert inv.paid_at == (reached if rec["state"] == "paid" else None)
        assert inv.voided_at == (reached if rec["state"] == "cancelled" else None)
    draft = data.invoices[str(ids["inv_draft"])]
    assert draft.total == Money(Decimal("110.34"), "USD") and draft.customer_id == "cus_A" and draft.number is None
    unlinked = data.invoices[str(ids["inv_unlinked"])]
    assert unlinked.customer_id is None and unlinked.total == Money(Decimal("31.50"), "EUR")

    sub = data.subscriptions[str(ids["sub_A"])]
    assert (sub.customer_id, sub.status, sub.plan_key, sub.quantity) == (
        "cus_A", SubscriptionStatus.ACTIVE, "pro_monthly", 2)
    assert sub.current_period_end == datetime.combine(TODAY + timedelta(days=10), datetime.min.time(), UTC)
    assert sub.billing_subscription_id == "sub_A1" and sub.canceled_at is None
    assert sub.created is not None and sub.created.tzinfo is UTC

    assert set(result.cursor["watermarks"]) >= {"party.party", "account.invoice", "sale.subscription"}
    json.dumps(result.cursor)  # JSON-able
    assert result.requests == conn.requests_made  # everything counted (login included)
    assert {p.phase for p in phases} >= {"parties", "invoices", "subscriptions", "subscription services"}


async def test_keyset_paging_over_many_invoices(erp: Erp, conn: TrytonConnector) -> None:
    store = erp.store
    for n in range(1300):
        when = NOW - timedelta(days=1, seconds=n)
        iid = store.insert("account.invoice", {
            **_meta(when), "type": "out", "number": None, "reference": f"in_bulk{n:05d}",
            "party": erp.ids["cus_B"], "company": erp.ids["company"], "currency": erp.ids["usd"],
            "invoice_date": TODAY, "state": "draft", "description": None, "lines": [], "move": None,
            "journal": 1, "account": 1, "payment_term": 1, "invoice_address": None, "rec_name": "x"})
        lid = store.insert("account.invoice.line", {
            **_meta(when), "invoice": iid, "type": "line", "product": erp.ids["pro_yearly"], "description": "x",
            "quantity": 1.0, "unit_price": Decimal(n) + Decimal("0.25"), "account": 2, "unit": 1,
            "rec_name": "x"})
        store.tables["account.invoice"][iid]["lines"].append(lid)
    seen: list[int] = []
    result = await conn.full_refresh(lambda p: seen.append(p.done) if p.phase == "invoices" else None)
    assert result.full is not None
    assert len(result.full.invoices) == len(store.tables["account.invoice"]) == 1304
    pages = conn.client.stats.by_operation["search_read account.invoice"]
    assert pages == 1304 // PAGE_SIZE + 1 == 3
    assert seen == [500, 1000, 1304]
    assert result.full.invoices["1000"].total.amount == line_total(store, 1000)


async def test_full_refresh_of_the_250_customer_demo(demo: tuple[Erp, DemoDataset]) -> None:
    erp, ds = demo
    connector = erp.connector()
    started = time.perf_counter()
    result = await connector.full_refresh()
    seconds = time.perf_counter() - started
    data = result.full
    assert data is not None
    tables = ds.erp.tables
    company_parties = {c["party"] for c in tables["company.company"].values()}
    parties = {pid: p for pid, p in tables["party.party"].items() if p.get("active") and pid not in company_parties}
    assert set(data.customers) == {str(p) for p in parties}
    for pid, party in parties.items():
        customer = data.customers[str(pid)]
        assert customer.customer_id == (party["code"] or None)
        assert customer.name == party["name"]
        idents = [tables["party.identifier"][i]["code"] for i in party["identifiers"]]
        assert customer.tax_id == (idents[0] if idents else None)
        addresses = [tables["party.address"][a] for a in party["addresses"]]
        country = tables["country.country"].get(addresses[0]["country"]) if addresses else None
        assert customer.country == (country["code"] if country else None)
    assert len(data.invoices) == len(tables["account.invoice"])
    for iid, rec in tables["account.invoice"].items():
        inv = data.invoices[str(iid)]
        assert inv.total.amount == rec["total_amount"]
        assert inv.total.currency == tables["currency.currency"][rec["currency"]]["code"]
        code = tables["party.party"][rec["party"]]["code"]
        assert inv.customer_id == (code or None)
    assert len(data.subscriptions) == len(tables["sale.subscription"])
    running = [s for s in data.subscriptions.values() if s.status is SubscriptionStatus.ACTIVE]
    assert running and all(s.plan_key and s.quantity >= 1 and s.current_period_end for s in running)
    print(f"\nfull refresh of the 250-customer demo ERP: {result.requests} requests, {seconds:.2f} s, "
          f"{data.count()} records")
    # the models, the companies, the login, the invoice taxes (account.invoice.tax: one page) and, the
    # demo booking credit notes, the credited lines their lines' origins name (two reads)
    assert result.requests <= 19
    # and nothing changed: one request per model
    before = connector.requests_made
    again = await connector.incremental_refresh(result.cursor, data)
    assert again.delta is not None and again.delta.count() == 0
    assert connector.requests_made - before <= 8
    await connector.aclose()


async def test_schema_violation_quarantines_the_record_and_a_single_read_names_it(
        erp: Erp, conn: TrytonConnector) -> None:
    """A refresh quarantines the party (kind customer, its id, the field) and reads the rest;
    read on its own it is a ProtocolError naming the record, as before."""
    pid = erp.ids["cus_B"]
    erp.store.tables["party.party"][pid]["name"] = 42
    result = await conn.full_refresh()
    assert result.full is not None
    entry = result.full.quarantined[("customer", str(pid))]
    assert "name" in entry.reason and len(result.full.quarantined) == 1
    assert str(pid) not in result.full.customers and result.full.customers
    with pytest.raises(ProtocolError) as err:
        await conn.get_party(pid)
    assert f"party.party {pid}" in err.value.message and "name" in err.value.message


async def test_float_money_is_a_protocol_violation(erp: Erp, conn: TrytonConnector) -> None:
    del erp
    raw = {"id": 7, "type": "out", "party": 1, "party.": {"id": 1, "code": "cus_A"}, "state": "posted",
           "currency": 1, "currency.": {"id": 1, "code": "USD"}, "total_amount": 12.5,
           "create_date": NOW, "write_date": None}
    with pytest.raises(ProtocolError) as err:
        conn._validate("account.invoice", raw)
    assert "account.invoice 7" in err.value.message and "total_amount" in err.value.message


# --------------------------------------------------------------------------------------
# Incremental refresh
# --------------------------------------------------------------------------------------


async def test_incremental_costs_grow_with_the_changes(erp: Erp, conn: TrytonConnector) -> None:
    full = await conn.full_refresh()
    assert full.full is not None
    known: SystemData = full.full
    cursor = full.cursor

    async def incremental() -> tuple[int, Any]:
        nonlocal cursor
        before = conn.requests_made
        result = await conn.incremental_refresh(cursor, known)
        assert result.delta is not None and result.full is None
        known.apply(result.delta)
        cursor = result.cursor
        return conn.requests_made - before, result.delta

    cost, delta = await incremental()
    assert delta.count() == 0 and cost <= 8

    writer = erp.connector()
    erp.clock.advance(minutes=5)
    # K = 10 parties: 3 existing renamed ...
    for key in ("cus_A", "cus_B", "cus_C"):
        await writer.write_party(erp.ids[key], {"name": f"{key} renamed"})
    # ... and 7 new ones
    new_parties = [await writer.ensure_party(f"cus_N{n}", f"New {n}", f"FR{n:09d}", "DE", f"n{n}@x.example")
                   for n in range(7)]
    cost, delta = await incremental()
    names = {c.customer_id: c.name for c in delta.upserts.customers.values()}
    assert len(names) == 10 and names["cus_A"] == "cus_A renamed"
    n0 = delta.upserts.customers[str(new_parties[0])]
    assert (n0.customer_id, n0.tax_id, n0.country, n0.email) == ("cus_N0", "FR000000000", "DE", "n0@x.example")
    assert cost <= 8 + 3  # the changed-records queries, then their children
    # the same changes read again inside the overlap window are no changes
    cost, delta = await incremental()
    assert delta.count() == 0 and cost <= 8

    # K = 10 invoices
    erp.clock.advance(minutes=5)
    for n in range(10):
        await writer.ensure_invoice_posted(f"in_K{n}", new_parties[n % 7], "USD", TODAY,
                                           [("pro_monthly", 2, Decimal("49.00"), "Pro x2")])
    cost, delta = await incremental()
    assert {i.billing_invoice_id for i in delta.upserts.invoices.values()} == {f"in_K{n}" for n in range(10)}
    assert all(i.status is InvoiceStatus.POSTED and i.total == Money(Decimal("98.00"), "USD")
               for i in delta.upserts.invoices.values())
    assert cost <= 8 + 1  # the changed-records queries, then the changed invoices' taxes

    # a child written alone (an e-mail added to a party), a relinked party, a deactivation
    erp.clock.advance(minutes=5)
    await writer.call("party.contact_mechanism", "create",
                      [{"party": erp.ids["cus_C"], "type": "email", "value": "ap@gamma.example"}])
    await writer.write_party(erp.ids["unlinked"], {"code": "cus_D"})
    await writer.write_party(erp.ids["cus_B"], {"active": False})
    cost, delta = await incremental()
    assert delta.upserts.customers[str(erp.ids["cus_C"])].email == "ap@gamma.example"
    assert delta.upserts.customers[str(erp.ids["unlinked"])].customer_id == "cus_D"
    assert delta.upserts.invoices[str(erp.ids["inv_unlinked"])].customer_id == "cus_D"
    assert delta.deletions == {Kind.CUSTOMER: {str(erp.ids["cus_B"])}}
    assert cost <= 8 + 3 + 1 + 2 + 1  # ... + the relinked invoices' taxes

    # the snapshot kept up to date equals a fresh full refresh
    fresh = await conn.full_refresh()
    assert fresh.full is not None
    for kind in (Kind.CUSTOMER, Kind.PLAN, Kind.INVOICE, Kind.SUBSCRIPTION):
        assert known.table(kind) == fresh.full.table(kind), kind
    await writer.aclose()


async def test_incremental_sees_subscription_line_changes(erp: Erp, conn: TrytonConnector) -> None:
    full = await conn.full_refresh()
    assert full.full is not None
    erp.clock.advance(minutes=3)
    writer = erp.connector()
    line = erp.store.tables["sale.subscription"][erp.ids["sub_A"]]["lines"][0]
    await writer.call("sale.subscription.line", "write", [line],
                      {"quantity": 5.0, "service": erp.ids["svc_pro_yearly"]})
    result = await conn.incremental_refresh(full.cursor, full.full)
    assert result.delta is not None
    sub = result.delta.upserts.subscriptions[str(erp.ids["sub_A"])]
    assert (sub.plan_key, sub.quantity) == ("pro_yearly", 5)
    await writer.aclose()


async def test_unusable_cursor_falls_back_to_a_full_refresh(conn: TrytonConnector) -> None:
    result = await conn.incremental_refresh({}, SystemData(System.ERP))
    assert result.full is not None and result.delta is None


# --------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------


async def test_user_error_is_validation_error_with_trytons_message(erp: Erp, conn: TrytonConnector) -> None:
    del erp
    with pytest.raises(RemoteValidationError) as err:
        await conn.write_party(99999, {"name": "Nobody"})
    assert err.value.vendor_code == "UserError"
    assert 'You are trying to write on records "99999" of "Party"' in err.value.message


async def test_unknown_field_read_is_protocol_error(conn: TrytonConnector) -> None:
    with pytest.raises(ProtocolError) as err:
        await conn.search_read_all("party.party", [], fields=["no_such_field"])
    assert "no_such_field" in err.value.message


async def test_unserved_method_is_protocol_error(conn: TrytonConnector) -> None:
    with pytest.raises(ProtocolError) as err:
        await conn.call("party.party", "no_such_method", [], safe=True)
    assert err.value.status == 403 and "model.party.party.no_such_method" in err.value.message


async def test_malformed_body_is_protocol_error(erp: Erp, conn: TrytonConnector) -> None:
    await conn.list_ids()
    erp.injector.config.malformed_rate = 1.0
    with pytest.raises(ProtocolError) as err:
        await conn.full_refresh()
    assert "not Tryton JSON" in err.value.message


async def test_outage_is_unavailable_fast(erp: Erp) -> None:
    erp.injector.config.outage = True
    connector = erp.connector(HttpPolicy(max_retries=1, backoff_base=0.001, backoff_max=0.005,
                                         connect_timeout=1.0, read_timeout=2.0, concurrency=2))
    started = time.perf_counter()
    with pytest.raises(UnavailableError) as err:
        await connector.full_refresh()
    assert time.perf_counter() - started < 2.0
    assert err.value.status == 503
    assert connector.client.stats.requests == 2  # the login, once retried
    await connector.aclose()


ENVELOPES: list[tuple[Any, type[Exception], str]] = [
    (["ConcurrencyException", ["Records were modified in the meanwhile"]], RemoteValidationError, "meanwhile"),
    (["LoginException", ["password", "Password for admin", "password"]], AuthenticationError, "Password"),
    (["'NoneType' object has no attribute 'id'", ""], ProtocolError, "NoneType"),
    (["UserWarning", ["w.name", "Due date in the past", ""]], RemoteWarning, "Due date"),
    ("garbage", ProtocolError, "unreadable"),
]


@pytest.mark.parametrize(("error", "expected", "text"), ENVELOPES)
async def test_error_envelopes(error: Any, expected: type[Exception], text: str) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        if body["method"] == "common.db.login":
            return httpx.Response(200, content=dumps({"id": body["id"], "result": [1, "abc", None]}))
        if body["method"] == "model.res.user.get_preferences":
            return httpx.Response(200, content=dumps({"id": body["id"], "result": {"company": 1}}))
        return httpx.Response(200, content=dumps({"id": body["id"], "error": error}))

    conn = SystemConnection(System.ERP, "tryton", "http://erp.test", {"database": DB, "login": "admin"},
                            {"password": Secret("pw")})
    connector = TrytonConnector.create(conn, policy=FAST, transport=httpx.MockTransport(handler))
    with pytest.raises(expected) as err:
        await connector.list_ids()
    assert text in str(err.value)
    if expected is RemoteWarning:
        assert isinstance(err.value, RemoteWarning) and err.value.warning_name == "w.name"
    # a terse server exception on a write is a refusal, not a protocol fault
    if error == ENVELOPES[2][0]:
        with pytest.raises(RemoteValidationError):
            await connector.call("account.invoice", "post", [1])
    await connector.aclose()


@pytest.mark.parametrize(("status", "body", "expected"), [
    (401, b"", "the session is invalid or expired"),
    (404, b"<!doctype html>\n<title>404 Not Found</title>\n<h1>Not Found</h1>\n<p>The requested URL</p>\n",
     "Not Found: The requested URL"),
])
def test_error_parser(status: int, body: bytes, expected: str) -> None:
    assert tryton_error_parser(httpx.Response(status, content=body))[0] == expected


async def test_unknown_database_is_not_found(erp: Erp) -> None:
    conn = SystemConnection(System.ERP, "tryton", erp.url, {"database": "nope", "login": "admin"},
                            {"password": Secret("pw")})
    connector = TrytonConnector.create(conn, policy=FAST)
    with pytest.raises(NotFoundError):
        await connector.list_ids()
    await connector.aclose()


# --------------------------------------------------------------------------------------
# Writes
# --------------------------------------------------------------------------------------


async def test_ensure_party_is_idempotent(erp: Erp, conn: TrytonConnector) -> None:
    pid = await conn.ensure_party("cus_NEW", "Newco BV", "NL123456789B01", "DE", "ap@newco.example")
    assert await conn.ensure_party("cus_NEW", "Newco BV", "NL123456789B01", "DE", "ap@newco.example") == pid
    assert erp.parties_coded("cus_NEW") == [pid]
    party = await conn.get_party(pid)
    assert (party.customer_id, party.name, party.tax_id, party.country, party.email) == (
        "cus_NEW", "Newco BV", "NL123456789B01", "DE", "ap@newco.example")
    # an existing party is found, not duplicated
    assert await conn.ensure_party("cus_A", "Acme Corp") == erp.ids["cus_A"]
    with pytest.raises(RemoteValidationError):
        await conn.ensure_party("cus_X", "X", country_code="ZZ")


async def test_ensure_party_after_a_lost_answer(erp: Erp, conn: TrytonConnector) -> None:
    await conn.list_ids()
    erp.injector.config.drop_after_commit_rate = 1.0
    pid = await conn.ensure_party("cus_DROP", "Dropped Ltd", None, "US", None)
    assert erp.injector.injected["drop_after_commit"] == 1
    erp.injector.config.drop_after_commit_rate = 0.0
    assert await conn.ensure_party("cus_DROP", "Dropped Ltd", None, "US", None) == pid
    assert erp.parties_coded("cus_DROP") == [pid]


async def test_ensure_invoice_posted_is_idempotent(erp: Erp, conn: TrytonConnector) -> None:
    lines = [("pro_monthly", 2, Decimal("49.00"), "Pro (monthly) x 2"), ("pro_yearly", 1, Decimal("490.00"), "Pro")]
    # an existing draft (dated before today: posted first, as the sequence wants) is posted, not duplicated
    draft = erp.ids["inv_draft"]
    assert await conn.ensure_invoice_posted("in_A1", erp.ids["cus_A"], "USD", TODAY, lines) == draft
    assert erp.store.tables["account.invoice"][draft]["state"] == "posted"
    iid = await conn.ensure_invoice_posted("in_NEW1", erp.ids["cus_A"], "USD", TODAY, lines)
    rec = erp.store.tables["account.invoice"][iid]
    assert rec["state"] == "posted" and rec["number"] and rec["reference"] == "in_NEW1"
    assert (rec["journal"], rec["account"], rec["payment_term"]) == (1, 1, 1)
    assert rec["invoice_address"] == erp.ids["addr_cus_A"]
    invoice_lines = [erp.store.tables["account.invoice.line"][i] for i in rec["lines"]]
    assert [(ln["quantity"], ln["unit_price"], ln["account"], ln["unit"]) for ln in invoice_lines] == [
        (2.0, Decimal("49.00"), 2, 1), (1.0, Decimal("490.00"), 2, 1)]
    assert await conn.ensure_invoice_posted("in_NEW1", erp.ids["cus_A"], "USD", TODAY, lines) == iid
    assert erp.invoices_referenced("in_NEW1") == [iid]
    invoice = await conn.get_invoice(iid)
    assert invoice.status is InvoiceStatus.POSTED and invoice.total == Money(Decimal("588.00"), "USD")
    assert invoice.customer_id == "cus_A" and invoice.billing_invoice_id == "in_NEW1"
    with pytest.raises(RemoteValidationError) as err:
        await conn.ensure_invoice_posted("in_NEW2", erp.ids["cus_A"], "USD", TODAY,
                                         [("no_such_plan", 1, Decimal(1), "x")])
    assert "no_such_plan" in err.value.message
    with pytest.raises(NotFoundError):
        await conn.get_invoice(99999)


async def test_ensure_invoice_posted_after_lost_answers(erp: Erp, conn: TrytonConnector) -> None:
    await conn.list_ids()
    erp.injector.config.drop_after_commit_rate = 1.0  # the create's and the post's answers are lost
    lines = [("pro_monthly", 1, Decimal("49.00"), "Pro")]
    iid = await conn.ensure_invoice_posted("in_DROP", erp.ids["cus_B"], "USD", TODAY, lines)
    assert erp.injector.injected["drop_after_commit"] == 2
    erp.injector.config.drop_after_commit_rate = 0.0
    assert await conn.ensure_invoice_posted("in_DROP", erp.ids["cus_B"], "USD", TODAY, lines) == iid
    assert erp.invoices_referenced("in_DROP") == [iid]
    assert erp.store.tables["account.invoice"][iid]["state"] == "posted"


async def test_user_warning_needs_an_acknowledgement(erp: Erp, conn: TrytonConnector) -> None:
    invoices = erp.store.tables["account.invoice"]
    for key, days in (("inv_posted", 100), ("inv_paid", 120), ("inv_unlinked", 130)):
        invoices[erp.ids[key]]["invoice_date"] = TODAY - timedelta(days=days)
    lines = [("pro_monthly", 1, Decimal("49.00"), "Pro")]
    late = TODAY - timedelta(days=40)  # due 30 days later: in the past
    with pytest.raises(RemoteWarning) as err:
        await conn.ensure_invoice_posted("in_LATE", erp.ids["cus_A"], "USD", late, lines)
    name = err.value.warning_name
    assert name.endswith(".invoice_payment_term") and "in the past" in err.value.message
    [iid] = erp.invoices_referenced("in_LATE")
    assert invoices[iid]["state"] == "draft"
    with pytest.raises(RemoteWarning):  # never acknowledged silently
        await conn.ensure_invoice_posted("in_LATE", erp.ids["cus_A"], "USD", late, lines)
    await conn.acknowledge_warning(name)
    assert await conn.ensure_invoice_posted("in_LATE", erp.ids["cus_A"], "USD", late, lines) == iid
    assert invoices[iid]["state"] == "posted" and erp.invoices_referenced("in_LATE") == [iid]


def credit_notes_of(erp: Erp, invoice_id: int) -> list[int]:
    """Invoices whose lines' origins are ``invoice_id``'s lines (straight from the store)."""
    lines = erp.store.tables["account.invoice.line"]
    origins = {f"account.invoice.line,{lid}" for lid in erp.store.tables["account.invoice"][invoice_id]["lines"]}
    return sorted({ln["invoice"] for ln in lines.values() if ln.get("origin") in origins})


CORRECTED = [("pro_monthly", 10, Decimal("49.00"), "Pro (monthly) x 10")]


async def test_credit_and_repost_is_idempotent(erp: Erp, conn: TrytonConnector) -> None:
    invoices = erp.store.tables["account.invoice"]
    posted = erp.ids["inv_posted"]  # in_B1, 490.00 USD
    credit, corrected = await conn.credit_and_repost(posted, "in_B1", erp.ids["cus_B"], "USD", TODAY, CORRECTED)
    assert credit is not None and corrected not in (posted, credit)
    assert invoices[posted]["state"] == "cancelled"
    assert (invoices[credit]["state"], invoices[credit].get("reference")) == ("paid", None)
    assert invoices[corrected]["state"] == "posted" and invoices[corrected]["reference"] == "in_B1"
    # again: nothing is credited or posted twice
    assert await conn.credit_and_repost(posted, "in_B1", erp.ids["cus_B"], "USD", TODAY, CORRECTED) == (
        credit, corrected)
    assert credit_notes_of(erp, posted) == [credit] and erp.invoices_referenced("in_B1") == [posted, corrected]
    assert await conn.find_credit_notes(posted) == [(credit, "paid")]
    # the canonical view: the original is cancelled, the credit note is no billing copy, the copy is
    original, note, copy = [await conn.get_invoice(i) for i in (posted, credit, corrected)]
    assert original.status is InvoiceStatus.CANCELLED and original.billing_invoice_id == "in_B1"
    assert note.status is InvoiceStatus.PAID and note.billing_invoice_id is None
    assert note.total == Money(Decimal("-490.00"), "USD") and note.customer_id == "cus_B"
    assert copy.status is InvoiceStatus.POSTED and copy.billing_invoice_id == "in_B1"
    assert copy.total == Money(Decimal("490.00"), "USD") and copy.invoice_date == TODAY


async def test_credit_and_repost_after_lost_answers_and_a_crash_between_the_steps(
        erp: Erp, conn: TrytonConnector) -> None:
    await conn.list_ids()
    posted = erp.ids["inv_posted"]
    # a crash after the credit: the re-run only posts the copy
    credit = await conn.credit_invoice(posted, TODAY)
    assert await conn.credit_invoice(posted, TODAY) == credit  # already credited: nothing again
    erp.injector.config.drop_after_commit_rate = 1.0  # the answers of the create and the post are lost
    again, corrected = await conn.credit_and_repost(posted, "in_B1", erp.ids["cus_B"], "USD", TODAY, CORRECTED)
    assert erp.injector.injected["drop_after_commit"] == 2
    assert again == credit and credit_notes_of(erp, posted) == [credit]
    assert erp.invoices_referenced("in_B1") == [posted, corrected]
    # the credit wizard's answer is lost: the invoice is read again, the credit note found
    unlinked = erp.ids["inv_unlinked"]  # in_D0, 31.50 EUR
    lines = [("pro_monthly", 1, Decimal("31.50"), "Pro")]
    credit2, corrected2 = await conn.credit_and_repost(unlinked, "in_D0", erp.ids["unlinked"], "EUR", TODAY, lines)
    assert erp.injector.injected["drop_after_commit"] == 5
    erp.injector.config.drop_after_commit_rate = 0.0
    assert credit_notes_of(erp, unlinked) == [credit2] and erp.invoices_referenced("in_D0") == [unlinked, corrected2]
    assert await conn.credit_and_repost(unlinked, "in_D0", erp.ids["unlinked"], "EUR", TODAY, lines) == (
        credit2, corrected2)
    assert erp.store.tables["account.invoice"][corrected2]["state"] == "posted"
    assert len(erp.service.wizard_sessions) == 0, "every wizard session was closed"


async def test_credit_is_refused_where_tryton_refuses_it(erp: Erp, conn: TrytonConnector) -> None:
    invoices = erp.store.tables["account.invoice"]
    count = len(invoices)
    for key, state in (("inv_paid", "paid"), ("inv_draft", "draft")):
        with pytest.raises(RemoteValidationError, match=f"is {state}: Tryton credits with refund only a posted"):
            await conn.credit_invoice(erp.ids[key])
    with pytest.raises(RemoteValidationError, match="carries reference 'in_B1', not 'in_A1'"):
        await conn.credit_and_repost(erp.ids["inv_posted"], "in_A1", erp.ids["cus_A"], "USD", TODAY, CORRECTED)
    # a credit note made by hand without refund (a draft) already credits it: finish that one
    active = {"active_model": "account.invoice", "active_id": erp.ids["inv_posted"],
              "active_ids": [erp.ids["inv_posted"]]}
    [sid, _, _] = await conn.wizard("account.invoice.credit", "create", operation="t", context=active)
    await conn.wizard("account.invoice.credit", "execute", sid, {"start": {"with_refund": False}}, "credit",
                      operation="t", context=active)
    [draft_note] = credit_notes_of(erp, erp.ids["inv_posted"])
    assert invoices[draft_note]["state"] == "draft" and len(invoices) == count + 1
    with pytest.raises(RemoteValidationError, match=f"credit note {draft_note} \\(draft\\) already credits it"):
        await conn.credit_and_repost(erp.ids["inv_posted"], "in_B1", erp.ids["cus_B"], "USD", TODAY, CORRECTED)
    assert invoices[erp.ids["inv_posted"]]["state"] == "posted" and len(invoices) == count + 1
    # even with a (typed) reference, a credit note is never read as a billing invoice's copy
    await conn.call("account.invoice", "write", [draft_note], {"reference": "in_B1"})
    note = await conn.get_invoice(draft_note)
    assert note.total.amount == Decimal("-490.00") and note.billing_invoice_id is None
    # a duplicate: another live invoice carries the reference
    await conn.cancel_invoice(draft_note)
    other = await conn.ensure_invoice_posted("in_B1x", erp.ids["cus_B"], "USD", TODAY, CORRECTED)
    erp.store.update("account.invoice", other, {"reference": "in_B1"})
    with pytest.raises(RemoteValidationError, match="carries in_B1 too: resolve the duplicate"):
        await conn.credit_and_repost(erp.ids["inv_posted"], "in_B1", erp.ids["cus_B"], "USD", TODAY, CORRECTED)


async def test_write_party_answers_the_party_as_read_back(erp: Erp, conn: TrytonConnector) -> None:
    party = await conn.write_party(erp.ids["cus_C"], {"name": "Gamma Renamed LLC"})
    assert party.name == "Gamma Renamed LLC" and party.customer_id == "cus_C"
    assert erp.store.tables["party.party"][erp.ids["cus_C"]]["name"] == "Gamma Renamed LLC"


async def test_the_wire_format_the_connector_sends() -> None:
    """The raw requests the connector writes, recorded on a MockTransport: login params, the
    ``Session`` header, exactly ``id``/``method``/``params``, the context last. (That a real trytond
    accepts this format is proven by ``tests/erp/test_real_tryton.py::test_real_trytond_accepts_the_wire_format``.)"""
    seen: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        body = loads(request.content)
        seen.append({"body": body, "auth": request.headers.get("authorization"), "path": request.url.path})
        if body["method"] == "common.db.login":
            return httpx.Response(200, content=dumps({"id": body["id"], "result": [5, "tok", None]}))
        if body["method"] == "model.res.user.get_preferences":
            return httpx.Response(200, content=dumps({"id": body["id"], "result": {"company": 1, "language": "en"}}))
        return httpx.Response(200, content=dumps({"id": body["id"], "result": []}))

    conn = SystemConnection(System.ERP, "tryton", "http://erp.test", {"database": DB, "login": "admin"},
                            {"password": Secret("pw")})
    connector = TrytonConnector.create(conn, policy=FAST, transport=httpx.MockTransport(handler))
    await connector.search_read_all("account.invoice", [["create_date", ">", NOW]])
    await connector.aclose()
    login, prefs, search = seen
    assert login["body"]["params"] == ["admin", {"password": "pw"}, "en"] and login["auth"] is None
    assert prefs["body"]["params"] == [True, {}]
    assert search["auth"] == "Session " + base64.b64encode(b"admin:5:tok").decode()
    assert search["path"] == f"/{DB}/rpc/" and set(search["body"]) == {"id", "method", "params"}
    domain, offset, limit, order, fields, context = search["body"]["params"]
    assert domain == [["create_date", ">", NOW]] and (offset, limit, order) == (0, PAGE_SIZE, [["id", "ASC"]])
    assert "total_amount" in fields and context == {"company": 1, "language": "en"}

