"""The Tryton connector against a real trytond 8.2 server (SQLite) seeded with the demo
company's ERP side: the same checks as against the demo ERP server, plus the end-to-end
``reconcile`` of demo billing + demo support + the real ERP."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
import tomllib
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import tomli_w

from services.core.domain import InvoiceStatus, Money, SubscriptionStatus, System
from services.core.errors import (
    AuthenticationError,
    NotFoundError,
    ProtocolError,
    RemoteValidationError,
    RemoteWarning,
)
from services.core.sysdata import Kind, SystemData
from services.demo.dataset import DemoDataset, in_flight_items, normalize_tax_id
from services.demo.tryton_sandbox import TrytonSandbox, build_template, copy_database, default_cache_dir, template_meta
from services.io.config import Secret, SystemConnection
from services.io.connectors.tryton import TrytonConnector
from services.io.connectors.tryton_session import PAGE_SIZE
from services.io.http import HttpPolicy
from tests.erp.conftest import ANCHOR, CUSTOMERS, SEED, TIMINGS, cache_hit_message

pytestmark = [pytest.mark.erp, pytest.mark.slow, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[2]
#: posting renders the invoice report (~1 s); SQLite has one writer: keep concurrency low
POLICY = HttpPolicy(max_retries=2, backoff_base=0.05, backoff_max=0.5, connect_timeout=5.0, read_timeout=60.0,
                    concurrency=2)
TODAY = datetime.now(UTC).date()


def connection(erp: TrytonSandbox, login: str | None = None, password: str | None = None,
               database: str | None = None) -> SystemConnection:
    return SystemConnection(System.ERP, "tryton", erp.url, {"database": database or erp.database,
                                                             "login": login or erp.login},
                            {"password": Secret(password or erp.password)})


def connector(erp: TrytonSandbox, transport: httpx.AsyncBaseTransport | None = None, **kw: Any) -> TrytonConnector:
    return TrytonConnector.create(connection(erp, **kw), policy=POLICY, transport=transport)


class DroppingTransport(httpx.AsyncHTTPTransport):
    """Forwards every request to the server, then loses the answer of the next ``drops``
    calls of ``methods`` (the write has committed; the client sees a dropped connection)."""

    def __init__(self, methods: set[str], drops: int) -> None:
        super().__init__()
        self.methods = methods
        self.drops = drops
        self.dropped: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await super().handle_async_request(request)
        method = json.loads(request.content or b"{}").get("method", "")
        if self.drops and method in self.methods:
            await response.aread()
            await response.aclose()
            self.drops -= 1
            self.dropped.append(method)
            raise httpx.RemoteProtocolError("server disconnected without sending a response", request=request)
        return response


class RecordingTransport(httpx.AsyncHTTPTransport):
    """Forwards every request to the server and keeps what was sent and answered."""

    def __init__(self) -> None:
        super().__init__()
        self.exchanges: list[tuple[httpx.Request, dict[str, Any], int]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await super().handle_async_request(request)
        self.exchanges.append((request, json.loads(request.content or b"{}"), response.status_code))
        return response


@pytest.fixture
async def conn(real_tryton: TrytonSandbox) -> AsyncIterator[TrytonConnector]:
    c = connector(real_tryton)
    yield c
    await c.aclose()


@pytest.fixture
def fresh_tryton(tryton_template: Path, tmp_path: Path) -> Iterator[TrytonSandbox]:
    """A server of its own (for tests that need the invoice sequence untouched)."""
    with TrytonSandbox(copy_database(tryton_template, tmp_path)) as sandbox:
        yield sandbox


def id_maps(template: Path) -> dict[str, dict[int, int]]:
    raw = template_meta(template)["seed_stats"]["id_maps"]
    return {model: {int(k): int(v) for k, v in table.items()} for model, table in raw.items()}


def billing_code(code: str | None) -> str | None:
    """What SyncDesk reads as a party's billing customer id: codes that are billing ids.
    (Real Tryton gives every party a code: unlinked parties get its sequence's next number.)"""
    return code if code and code.startswith("cus_") else None


def lines_of(ds: DemoDataset, product_code: str) -> list[tuple[str, Decimal | int | float, Decimal, str]]:
    price = next(p for p in ds.billing.prices.values() if p.lookup_key == product_code)
    return [(product_code, 2, Decimal(price.unit_amount) / 100, f"{product_code} x 2")]


# --------------------------------------------------------------------------------------
# Session and reading
# --------------------------------------------------------------------------------------


async def test_login_context_and_list_ids(real_tryton: TrytonSandbox, conn: TrytonConnector,
                                          tryton_template: Path, erp_dataset: DemoDataset) -> None:
    started = time.perf_counter()
    ids = await conn.list_ids()
    maps = id_maps(tryton_template)
    tables = erp_dataset.erp.tables
    assert conn.uid == 1 and conn.context is not None
    company_party = maps["party.party"][next(iter(tables["company.company"].values()))["party"]]
    assert isinstance(conn.context["company"], int) and conn.context["language"] == "en"
    await conn.list_ids()
    ops = conn.client.stats.by_operation
    assert ops["login"] == 1 and ops["get preferences"] == 1  # session and context are cached
    assert ids[Kind.CUSTOMER] == {str(v) for v in maps["party.party"].values()} - {str(company_party)}
    assert ids[Kind.PLAN] == {str(v) for v in maps["product.product"].values()}
    assert ids[Kind.INVOICE] == {str(v) for v in maps["account.invoice"].values()}
    assert ids[Kind.SUBSCRIPTION] == {str(v) for v in maps["sale.subscription"].values()}
    print(f"\nreal trytond: login + 2 x list_ids in {time.perf_counter() - started:.2f} s; "
          f"server started in {real_tryton.start_seconds:.1f} s")


async def test_real_trytond_accepts_the_wire_format(real_tryton: TrytonSandbox, tryton_template: Path) -> None:
    """The wire format of ``test_the_wire_format_the_connector_sends`` (tests/services), held against a
    real trytond: login, preferences and keyset-paged ``search_read`` calls with the context last all
    succeed and answer the seeded invoices."""
    transport = RecordingTransport()
    conn = connector(real_tryton, transport=transport)
    try:
        rows = await conn.search_read_all("account.invoice", [["create_date", ">", datetime(2000, 1, 1)]])
    finally:
        await conn.aclose()
    assert set(id_maps(tryton_template)["account.invoice"].values()) <= set(rows.records)  # + any made here
    assert all(status == 200 for _, _, status in transport.exchanges)
    login, prefs, *searches = transport.exchanges
    assert login[1]["method"] == "common.db.login" and login[0].headers.get("authorization") is None
    assert login[1]["params"] == [real_tryton.login, {"password": real_tryton.password}, "en"]
    assert prefs[1]["method"] == "model.res.user.get_preferences" and prefs[1]["params"] == [True, {}]
    assert searches and all(body["method"] == "model.account.invoice.search_read" for _, body, _ in searches)
    assert conn.context is not None and isinstance(conn.context["company"], int)
    for page, (request, body, _) in enumerate(searches):
        assert set(body) == {"id", "method", "params"} and request.url.path == f"/{real_tryton.database}/rpc/"
        scheme, token = request.headers["authorization"].split()
        login_name, uid, _session = base64.b64decode(token).decode().split(":")
        assert (scheme, login_name, int(uid)) == ("Session", real_tryton.login, conn.uid)
        domain, offset, limit, order, fields, context = body["params"]
        [field, operator, value] = domain[0]
        assert (field, operator, value["__class__"], value["year"]) == ("create_date", ">", "datetime", 2000)
        assert len(domain) == (1 if page == 0 else 2)  # later pages add ["id", ">", last]
        assert (offset, limit, order) == (0, PAGE_SIZE, [["id", "ASC"]])
        assert "total_amount" in fields and context == conn.context


async def test_full_refresh_maps_the_seeded_data(conn: TrytonConnector, tryton_template: Path,
                                                 erp_dataset: DemoDataset) -> None:
    started = time.perf_counter()
    result = await conn.full_refresh()
    seconds = time.perf_counter() - started
    data = result.full
    assert data is not None
    maps = id_maps(tryton_template)
    tables = erp_dataset.erp.tables
    company_party = next(iter(tables["company.company"].values()))["party"]
    for demo_id, real_id in maps["party.party"].items():
        if demo_id == company_party:
            assert str(real_id) not in data.customers  # the company's own party is no customer
            continue
        party = tables["party.party"][demo_id]
        customer = data.customers[str(real_id)]
        assert customer.customer_id == billing_code(party["code"]), party["name"]
        assert customer.name == party["name"]
        idents = [tables["party.identifier"][i]["code"] for i in party["identifiers"]]
        # Tryton stores valid tax ids formatted (GB 123 4567 89): equal once normalised
        assert normalize_tax_id(customer.tax_id) == normalize_tax_id(idents[0] if idents else None)
        addresses = [tables["party.address"][a] for a in party["addresses"]]
        country = tables["country.country"].get(addresses[0]["country"]) if addresses else None
        assert customer.country == (country["code"] if country else None)
        mails = [tables["party.contact_mechanism"][c]["value"] for c in party["contact_mechanisms"]]
        assert customer.email == (mails[0] if mails else None)
        assert customer.created == party["create_date"].replace(tzinfo=UTC)
    assert {p.key for p in data.plans.values()} == {p["code"] for p in tables["product.product"].values()}
    assert len(data.invoices) == len(tables["account.invoice"])
    for demo_id, real_id in maps["account.invoice"].items():
        rec = tables["account.invoice"][demo_id]
        inv = data.invoices[str(real_id)]
        currency = tables["currency.currency"][rec["currency"]]["code"]
        assert inv.total == Money(rec["total_amount"], currency) and isinstance(inv.total.amount, Decimal)
        assert inv.status is InvoiceStatus(rec["state"])
        assert (inv.number, inv.billing_invoice_id, inv.invoice_date) == (rec["number"], rec["reference"],
                                                                          rec["invoice_date"])
        assert inv.customer_id == billing_code(tables["party.party"][rec["party"]]["code"])
        assert inv.created == rec["create_date"].replace(tzinfo=UTC)
    assert len(data.subscriptions) == len(tables["sale.subscription"])
    for demo_id, real_id in maps["sale.subscription"].items():
        rec = tables["sale.subscription"][demo_id]
        sub = data.subscriptions[str(real_id)]
        line = tables["sale.subscription.line"][rec["lines"][0]]
        service = tables["sale.subscription.service"][line["service"]]
        assert sub.status is (SubscriptionStatus.ACTIVE if rec["state"] == "running" else SubscriptionStatus.CANCELED)
        assert sub.plan_key == tables["product.product"][service["product"]]["code"]
        assert sub.quantity == round(line["quantity"])
        nxt = rec["next_invoice_date"]
        assert sub.current_period_end == (datetime.combine(nxt, datetime.min.time(), UTC) if nxt else None)
        assert sub.billing_subscription_id == rec["reference"]
        assert sub.customer_id == billing_code(tables["party.party"][rec["party"]]["code"])
    print(f"\nreal trytond full refresh: {data.count()} records, {result.requests} requests, {seconds:.2f} s")
    # nothing changed: one request per tracked model
    before = conn.requests_made
    again = await conn.incremental_refresh(result.cursor, data)
    assert again.delta is not None and again.delta.count() == 0
    assert conn.requests_made - before <= 8


async def test_incremental_after_k_writes(real_tryton: TrytonSandbox, conn: TrytonConnector,
                                          erp_dataset: DemoDataset) -> None:
    full = await conn.full_refresh()
    assert full.full is not None
    known: SystemData = full.full
    cursor = full.cursor
    writer = connector(real_tryton)
    k = 4
    parties = [await writer.ensure_party(f"cus_INCR{n}", f"Incremental {n} GmbH", None, "DE", f"ap{n}@incr.example")
               for n in range(k)]
    invoices = [await writer.ensure_invoice_posted(f"in_INCR{n}", parties[n], "EUR", TODAY,
                                                   lines_of(erp_dataset, "starter_monthly_eur"))
                for n in range(k)]
    before = conn.requests_made
    result = await conn.incremental_refresh(cursor, known)
    cost = conn.requests_made - before
    assert result.delta is not None
    delta = result.delta
    assert {c.customer_id for c in delta.upserts.customers.values()} == {f"cus_INCR{n}" for n in range(k)}
    assert {i.billing_invoice_id for i in delta.upserts.invoices.values()} == {f"in_INCR{n}" for n in range(k)}
    assert {i.ref.id for i in delta.upserts.invoices.values()} == {str(i) for i in invoices}
    assert all(i.status is InvoiceStatus.POSTED and i.total.currency == "EUR" and i.number
               for i in delta.upserts.invoices.values())
    # 8 polls, then the new parties' identifiers, addresses and contact mechanisms, and the new invoices' taxes
    assert cost <= 8 + 4
    known.apply(delta)
    # the snapshot kept up to date equals a fresh full refresh
    fresh = await conn.full_refresh()
    assert fresh.full is not None
    for kind in (Kind.CUSTOMER, Kind.PLAN, Kind.INVOICE, Kind.SUBSCRIPTION):
        assert known.table(kind) == fresh.full.table(kind), kind
    await writer.aclose()


# --------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------


async def test_wrong_password_is_authentication_error(real_tryton: TrytonSandbox) -> None:
    # a login of its own: trytond makes later logins of a failed name wait (2^n - 1 s)
    c = connector(real_tryton, login="auditor", password="not-the-password")
    with pytest.raises(AuthenticationError) as err:
        await c.full_refresh()
    assert err.value.status == 401 and "auditor" in err.value.message
    assert "not-the-password" not in str(err.value)
    assert c.client.stats.requests == 1  # a refused login is not retried
    await c.aclose()


async def test_user_error_is_typed_with_trytons_message(conn: TrytonConnector) -> None:
    with pytest.raises(RemoteValidationError) as err:
        await conn.write_party(99999, {"name": "Nobody"})
    assert err.value.vendor_code == "UserError"
    assert 'records "99999" of "Party"' in err.value.message


async def test_http_errors_are_typed(real_tryton: TrytonSandbox, conn: TrytonConnector) -> None:
    with pytest.raises(ProtocolError) as unknown_field:
        await conn.search_read_all("party.party", [], fields=["no_such_field"])
    assert "no_such_field" in unknown_field.value.message
    with pytest.raises(ProtocolError) as unserved:  # 403: not an RPC method
        await conn.call("party.party", "no_such_method", [], safe=True)
    assert unserved.value.status == 403
    lost = connector(real_tryton, database="no_such_database")
    with pytest.raises(NotFoundError):  # 404: unknown database
        await lost.list_ids()
    await lost.aclose()
    # an invalid session (401, empty body): logged in again once, transparently
    await conn.list_ids()
    conn._authorization = "Session " + "YWRtaW46MTpub3QtYS1zZXNzaW9u"  # admin:1:not-a-session
    ids = await conn.list_ids()
    assert ids[Kind.INVOICE]
    assert conn.client.stats.by_operation["login"] == 2


# --------------------------------------------------------------------------------------
# Writes
# --------------------------------------------------------------------------------------


async def test_ensure_party_is_idempotent(real_tryton: TrytonSandbox, conn: TrytonConnector) -> None:
    pid = await conn.ensure_party("cus_REALNEW", "Newco Real BV", "NL123456789B01", "FR", "ap@newco.example")
    assert await conn.ensure_party("cus_REALNEW", "Newco Real BV", "NL123456789B01", "FR",
                                   "ap@newco.example") == pid
    party = await conn.get_party(pid)
    assert (party.customer_id, party.name, party.tax_id, party.country, party.email) == (
        "cus_REALNEW", "Newco Real BV", "NL123456789B01", "FR", "ap@newco.example")
    assert await conn._ids("party.party", [["code", "=", "cus_REALNEW"]]) == [pid]
    with pytest.raises(RemoteValidationError):
        await conn.ensure_party("cus_NOCOUNTRY", "X", country_code="ZZ")


async def test_ensure_party_after_a_dropped_answer(real_tryton: TrytonSandbox) -> None:
    transport = DroppingTransport({"model.party.party.create"}, drops=1)
    c = connector(real_tryton, transport=transport)
    pid = await c.ensure_party("cus_REALDROP", "Dropped Real Ltd", None, "US", None)
    assert transport.dropped == ["model.party.party.create"]
    assert await c.ensure_party("cus_REALDROP", "Dropped Real Ltd", None, "US", None) == pid
    assert await c._ids("party.party", [["code", "=", "cus_REALDROP"]]) == [pid]
    await c.aclose()


async def test_ensure_invoice_posted_is_idempotent(real_tryton: TrytonSandbox, conn: TrytonConnector,
                                                   erp_dataset: DemoDataset) -> None:
    party = await conn.ensure_party("cus_REALINV", "Invoiced Real Inc.", None, "US", None)
    lines = [*lines_of(erp_dataset, "pro_monthly_usd"), *lines_of(erp_dataset, "starter_yearly_usd")]
    iid = await conn.ensure_invoice_posted("in_REALNEW1", party, "USD", TODAY, lines)
    assert await conn.ensure_invoice_posted("in_REALNEW1", party, "USD", TODAY, lines) == iid
    invoice = await conn.get_invoice(iid)
    expected = sum((Decimal(q) * p for _, q, p, _ in lines), Decimal("0")).quantize(Decimal("0.01"))
    assert invoice.status is InvoiceStatus.POSTED and invoice.total == Money(expected, "USD")
    assert invoice.customer_id == "cus_REALINV" and invoice.billing_invoice_id == "in_REALNEW1"
    assert invoice.number and invoice.number.startswith("INV-")
    raw = await conn.call("account.invoice", "read", [iid], ["journal", "account", "payment_term",
                                                             "invoice_address", "lines"], safe=True)
    assert all(raw[0][f] for f in ("journal", "account", "payment_term", "invoice_address"))
    assert len(raw[0]["lines"]) == 2
    assert await conn._ids("account.invoice", [["reference", "=", "in_REALNEW1"]]) == [iid]
    with pytest.raises(RemoteValidationError) as err:
        await conn.ensure_invoice_posted("in_REALNEW2", party, "USD", TODAY, [("no_such_plan", 1, Decimal(1), "x")])
    assert "no_such_plan" in err.value.message
    with pytest.raises(NotFoundError):
        await conn.get_invoice(999999)


async def test_foreign_currency_invoice(conn: TrytonConnector, erp_dataset: DemoDataset) -> None:
    """A EUR invoice of a USD company: each line must carry the invoice's currency (and
    company), else Tryton refuses the lines ("not valid according to its domain")."""
    party = await conn.ensure_party("cus_REALEUR", "Euro Kunde GmbH", None, "DE", None)
    lines = lines_of(erp_dataset, "pro_monthly_eur")
    iid = await conn.ensure_invoice_posted("in_REALEUR", party, "EUR", TODAY, lines)
    invoice = await conn.get_invoice(iid)
    assert invoice.status is InvoiceStatus.POSTED
    assert invoice.total == Money(sum((Decimal(q) * p for _, q, p, _ in lines), Decimal("0")), "EUR")


async def test_ensure_invoice_posted_after_dropped_answers(real_tryton: TrytonSandbox,
                                                           erp_dataset: DemoDataset) -> None:
    # the create's and the post's answers are lost: the repeat finds the posted invoice
    transport = DroppingTransport({"model.account.invoice.create", "model.account.invoice.post"}, drops=2)
    c = connector(real_tryton, transport=transport)
    party = await c.ensure_party("cus_REALDROPINV", "Dropped Invoices Inc.", None, "US", None)
    lines = lines_of(erp_dataset, "starter_monthly_usd")
    iid = await c.ensure_invoice_posted("in_REALDROP", party, "USD", TODAY, lines)
    assert transport.dropped == ["model.account.invoice.create", "model.account.invoice.post"]
    assert await c.ensure_invoice_posted("in_REALDROP", party, "USD", TODAY, lines) == iid
    assert await c._ids("account.invoice", [["reference", "=", "in_REALDROP"]]) == [iid]
    assert (await c.get_invoice(iid)).status is InvoiceStatus.POSTED
    await c.aclose()


async def test_user_warning_is_never_acknowledged_silently(fresh_tryton: TrytonSandbox,
                                                           erp_dataset: DemoDataset) -> None:
    c = connector(fresh_tryton)
    party = await c.ensure_party("cus_REALLATE", "Late Payer Inc.", None, "US", None)
    late = TODAY - timedelta(days=60)  # after every seeded invoice; due 30 days later: in the past
    lines = lines_of(erp_dataset, "starter_monthly_usd")
    with pytest.raises(RemoteWarning) as err:
        await c.ensure_invoice_posted("in_REALLATE", party, "USD", late, lines)
    name = err.value.warning_name
    assert err.value.vendor_code == "UserWarning" and name.endswith(".invoice_payment_term")
    assert "in the past" in err.value.message
    [iid] = await c._ids("account.invoice", [["reference", "=", "in_REALLATE"]])
    assert (await c.get_invoice(iid)).status is InvoiceStatus.DRAFT
    with pytest.raises(RemoteWarning):  # the same call again: still a warning, nothing acknowledged
        await c.ensure_invoice_posted("in_REALLATE", party, "USD", late, lines)
    await c.acknowledge_warning(name)
    assert await c.ensure_invoice_posted("in_REALLATE", party, "USD", late, lines) == iid
    assert (await c.get_invoice(iid)).status is InvoiceStatus.POSTED
    assert await c._ids("account.invoice", [["reference", "=", "in_REALLATE"]]) == [iid]
    await c.aclose()


async def test_credit_and_repost_is_idempotent_after_dropped_answers(real_tryton: TrytonSandbox,
                                                                     erp_dataset: DemoDataset) -> None:
    """Credit with refund through Tryton's Credit wizard, then a corrected copy: the wizard's,
    the create's and the post's answers are lost, and the whole is run again: one credit note,
    one corrected copy; the credited invoice is cancelled and no longer a live copy."""
    setup = connector(real_tryton)
    [original] = await setup.call("account.invoice", "search_read",
                                  [["state", "=", "posted"], ["type", "=", "out"], ["reference", "like", "in_%"]],
                                  0, 1, [["id", "DESC"]], ["reference", "party", "total_amount", "currency.code"],
                                  safe=True)
    await setup.aclose()
    iid, ref, party = original["id"], original["reference"], original["party"]
    currency = original["currency."]["code"]
    lines = lines_of(erp_dataset, f"starter_monthly_{currency.lower()}")
    transport = DroppingTransport({"wizard.account.invoice.credit.execute", "model.account.invoice.create",
                                   "model.account.invoice.post"}, drops=3)
    c = connector(real_tryton, transport=transport)
    credit, corrected = await c.credit_and_repost(iid, ref, party, currency, TODAY, lines)
    assert transport.dropped == ["wizard.account.invoice.credit.execute", "model.account.invoice.create",
                                 "model.account.invoice.post"]
    assert credit is not None
    assert await c.credit_and_repost(iid, ref, party, currency, TODAY, lines) == (credit, corrected)
    assert await c.credit_invoice(iid, TODAY) == credit
    assert await c._ids("account.invoice", [["origin_invoices", "=", iid]]) == [credit]
    assert await c._ids("account.invoice", [["reference", "=", ref], ["state", "!=", "cancelled"]]) == [corrected]
    original_inv, note, copy = [await c.get_invoice(i) for i in (iid, credit, corrected)]
    assert original_inv.status is InvoiceStatus.CANCELLED
    # trytond reconciles the credit note against the credited invoice: it is paid
    assert note.status is InvoiceStatus.PAID and note.billing_invoice_id is None
    assert note.total == Money(-original["total_amount"], currency) and note.number and note.invoice_date == TODAY
    assert copy.status is InvoiceStatus.POSTED and copy.billing_invoice_id == ref and copy.invoice_date == TODAY
    expected = sum((Decimal(q) * p for _, q, p, _ in lines), Decimal("0")).quantize(Decimal("0.01"))
    assert copy.total == Money(expected, currency)
    [row] = await c.call("account.invoice", "read", [iid], ["cancel_move"], safe=True)
    assert row["cancel_move"], "the credit note's move cancels the invoice's"
    with pytest.raises(RemoteValidationError, match="is paid: Tryton credits with refund only a posted"):
        await c.credit_invoice(credit)
    await c.aclose()


# --------------------------------------------------------------------------------------
# End to end: demo billing + demo support + the real ERP
# --------------------------------------------------------------------------------------


def _cli(*args: str, home: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SYNCDESK_HOME": str(home), "QT_QPA_PLATFORM": "offscreen"}
    return subprocess.run([sys.executable, str(ROOT / "main.py"), *args], cwd=ROOT, env=env, text=True,
                          capture_output=True, timeout=timeout, check=False)


def test_reconcile_with_the_real_erp_reports_the_planted_mismatches(
        fresh_tryton: TrytonSandbox, erp_dataset: DemoDataset, tmp_path: Path) -> None:
    real_tryton = fresh_tryton
    home = tmp_path / "home"
    home.mkdir()
    config = tmp_path / "profiles.toml"
    dataset = ["--customers", str(CUSTOMERS), "--seed", str(SEED), "--anchor", str(ANCHOR)]
    env = {**os.environ, "SYNCDESK_HOME": str(home)}
    server_log = tmp_path / "demo-server.log"
    with server_log.open("wb") as out:
        server = subprocess.Popen([sys.executable, str(ROOT / "main.py"), "demo-server", *dataset,
                                   "--write-config", str(config)], cwd=ROOT, env=env, stdout=out,
                                  stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while not config.exists():
            assert server.poll() is None, server_log.read_text(errors="replace")
            assert time.monotonic() < deadline, "demo-server did not write its profile"
            time.sleep(0.2)
        time.sleep(0.2)  # the file is written in one go; let the writer close it
        profiles = tomllib.loads(config.read_text(encoding="utf-8"))
        profiles["profiles"]["demo"]["erp"] = {"kind": "tryton", "url": real_tryton.url,
                                               "database": real_tryton.database, "login": real_tryton.login,
                                               "password": real_tryton.password}
        config.write_text(tomli_w.dumps(profiles), encoding="utf-8")
        started = time.perf_counter()
        result = _cli("reconcile", "--config", str(config), "--profile", "demo", "--full", "--format", "json",
                      home=home)
        seconds = time.perf_counter() - started
        assert result.returncode == 0, result.stderr
        found = {(r["rule"], r["customer"], r["object"]) for r in json.loads(result.stdout)}
    finally:
        server.terminate()
        server.wait(30)
    manifest = _cli("demo-manifest", *dataset, home=home)
    assert manifest.returncode == 0, manifest.stderr
    planted = {(m["rule"], m["customer"], m["object"]) for m in json.loads(manifest.stdout)}
    # `reconcile --profile` judges with the real clock; the dataset's "now" is its anchor, long
    # past: what was in flight at the anchor (inside its grace) is overdue today
    overdue_rule = {"invoice.awaiting_erp": "invoice.missing_in_erp",
                    "invoice.posting_awaiting_erp": "invoice.not_posted_in_erp",
                    "invoice.payment_awaiting_erp": "invoice.payment_state"}
    overdue = {(overdue_rule[i["kind"]], i["customer"], i["object"]) for i in in_flight_items(erp_dataset)}
    assert found - planted - overdue == set(), "reported but not planted"
    assert planted - found == set(), "planted but not reported"
    assert found == planted | overdue
    print(f"\nreconcile with the real ERP: {len(found)} exceptions ({len(planted)} planted, {len(overdue)} "
          f"overdue in-flight) in {seconds:.1f} s")


def test_template_is_reused(tryton_template: Path) -> None:
    """A second use of the template (same customers, seed, anchor, versions) goes through the real
    cache function and is a hit: nothing initialised or seeded, the database file untouched."""
    meta = template_meta(tryton_template)
    assert meta["customers"] == CUSTOMERS and meta["seed"] == SEED and meta["anchor"] == ANCHOR
    stats = meta["seed_stats"]
    assert stats["invoices"] >= stats["posted"] >= stats["paid"] > 0 and stats["subscriptions"] > 0
    # the session's first use either found the template or built it, and said which
    if TIMINGS.template_cached:
        assert TIMINGS.messages == [cache_hit_message(tryton_template)]
    else:
        assert any(m.startswith("initialising the database") for m in TIMINGS.messages), TIMINGS.messages
        assert any(m.startswith("template built in") for m in TIMINGS.messages), TIMINGS.messages
    before = tryton_template.stat()
    messages: list[str] = []
    again = build_template(default_cache_dir(), CUSTOMERS, SEED, ANCHOR, progress=messages.append)
    assert again == tryton_template
    assert messages == [cache_hit_message(tryton_template)], "the second use rebuilt the template"
    after = again.stat()
    assert (after.st_ino, after.st_mtime_ns, after.st_size) == (before.st_ino, before.st_mtime_ns, before.st_size)
    assert template_meta(again)["built_at"] == meta["built_at"]
