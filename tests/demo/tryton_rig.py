"""What the demo Tryton server tests share: a small company in an ErpStore, the server over
loopback, a minimal JSON-RPC client.

Behaviour under test is ``shared/specs/tryton/README.md`` (verified against trytond 8.2).
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx

from services.demo.faults import FaultInjector
from services.demo.serving import ThreadedServers
from services.demo.store import ErpStore
from services.demo.tryton.app import create_app
from services.io.tryton_rpc import dumps, loads

DB = "syncdesk_demo"
NOW = datetime(2025, 3, 14, 12, 0, 0)
TODAY = NOW.date()
CTX = {"company": 1, "language": "en"}


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> datetime:
        self.now += timedelta(**kwargs)
        return self.now


def meta(when: datetime) -> dict[str, Any]:
    return {"create_date": when, "write_date": None, "create_uid": 1, "write_uid": None}


def seed_minimal(store: ErpStore, now: datetime = NOW) -> dict[str, int]:
    """A small demo company following the ErpStore contract; returns named ids."""
    old = now - timedelta(days=60)
    ids: dict[str, int] = {}

    def add(model: str, key: str | None, values: dict[str, Any], when: datetime = old) -> int:
        rid = store.insert(model, {**meta(when), **values})
        store.tables[model][rid].setdefault("rec_name", values.get("name") or values.get("code") or str(rid))
        if key:
            ids[key] = rid
        return rid

    def child(parent_model: str, parent: int, o2m: str, model: str, key: str | None,
              values: dict[str, Any], when: datetime = old) -> int:
        rid = add(model, key, values, when)
        store.tables[parent_model][parent].setdefault(o2m, []).append(rid)
        return rid

    add("currency.currency", "usd", {"name": "US Dollar", "code": "USD", "symbol": "$", "digits": 2})
    add("currency.currency", "eur", {"name": "Euro", "code": "EUR", "symbol": "€", "digits": 2})
    add("country.country", "us", {"name": "United States", "code": "US"})
    add("country.country", "de", {"name": "Germany", "code": "DE"})
    add("party.party", "company_party", {"name": "SyncDesk Demo Ltd", "code": None, "active": True})
    add("company.company", "company", {"party": ids["company_party"], "currency": ids["usd"]})
    add("res.user", "admin", {"login": "admin", "name": "Administrator", "company": ids["company"],
                              "language": "en", "active": True})
    add("res.user", "clerk", {"login": "clerk", "name": "Clerk", "company": ids["company"],
                              "language": "en", "active": True})
    store.passwords.update(admin="pw", clerk="clerk-pw")

    for code, name, price in (("pro_monthly", "Pro (monthly)", "49.00"), ("pro_yearly", "Pro (yearly)", "490.00")):
        tpl = add("product.template", None, {"name": name, "type": "service", "list_price": Decimal(price),
                                             "products": []})
        prod = child("product.template", tpl, "products", "product.product", code,
                     {"template": tpl, "code": code, "active": True})
        add("sale.subscription.service", f"svc_{code}", {"product": prod})

    parties = (("cus_A", "Acme Corp", "us", "DE111", "billing@acme.example"),
               ("cus_B", "Beta GmbH", "de", "DE222", "ap@beta.example"),
               ("cus_C", "Gamma LLC", "us", None, None))
    for code, name, country, vat, email in parties:
        pid = add("party.party", code, {"name": name, "code": code, "active": True, "identifiers": [],
                                        "addresses": [], "contact_mechanisms": []})
        child("party.party", pid, "addresses", "party.address", f"addr_{code}",
              {"party": pid, "country": ids[country], "city": "Springfield", "street": "1 Main St",
               "postal_code": "12345"})
        if vat:
            child("party.party", pid, "identifiers", "party.identifier", None,
                  {"party": pid, "type": "eu_vat", "code": vat})
        child("party.party", pid, "contact_mechanisms", "party.contact_mechanism", None,
              {"party": pid, "type": "phone", "value": "+1 555 0100"})
        if email:
            child("party.party", pid, "contact_mechanisms", "party.contact_mechanism", None,
                  {"party": pid, "type": "email", "value": email})
    add("party.party", "inactive", {"name": "Old Customer", "code": "cus_OLD", "active": False})

    def invoice(key: str, party: str, reference: str, state: str, number: str | None,
                invoice_date: date | None, lines: list[tuple[str, float, str]], when: datetime) -> int:
        iid = add("account.invoice", key, {
            "type": "out", "number": number, "reference": reference, "party": ids[party],
            "company": ids["company"], "currency": ids["usd"], "invoice_date": invoice_date,
            "state": state, "description": None, "lines": [], "move": None,
            "journal": 1, "account": 1, "payment_term": 1, "invoice_address": ids[f"addr_{party}"]},
            when)
        for product, quantity, price in lines:
            child("account.invoice", iid, "lines", "account.invoice.line", None, {
                "invoice": iid, "type": "line", "product": ids[product], "description": product,
                "quantity": quantity, "unit_price": Decimal(price), "account": 2, "unit": 1}, when)
        return iid

    invoice("inv_posted", "cus_B", "in_B1", "posted", "INV-000010", TODAY - timedelta(days=5),
            [("pro_yearly", 1, "490.00")], now - timedelta(days=5))
    invoice("inv_draft", "cus_A", "in_A1", "draft", None, TODAY - timedelta(days=2),
            [("pro_monthly", 2, "49.00"), ("pro_monthly", 1, "12.345")], now - timedelta(days=2))
    invoice("inv_paid", "cus_A", "in_A0", "paid", "INV-000009", TODAY - timedelta(days=40),
            [("pro_monthly", 1, "49.00")], now - timedelta(days=40))

    sid = add("sale.subscription", "sub_A", {
        "number": "SUB1", "reference": "sub_A1", "party": ids["cus_A"], "company": ids["company"],
        "currency": ids["usd"], "state": "running", "start_date": TODAY - timedelta(days=90),
        "end_date": None, "next_invoice_date": TODAY + timedelta(days=10), "lines": []})
    child("sale.subscription", sid, "lines", "sale.subscription.line", None, {
        "subscription": sid, "service": ids["svc_pro_monthly"], "quantity": 2.0,
        "unit_price": Decimal("49.00"), "start_date": TODAY - timedelta(days=90), "end_date": None})
    return ids


class RpcError(Exception):
    def __init__(self, error: Any) -> None:
        super().__init__(error)
        self.error = error


@dataclass
class Tryton:
    """A minimal Tryton JSON-RPC client for the tests."""

    base: str
    http: httpx.Client
    session: str | None = None
    _id: int = 0

    def post(self, method: str, params: list[Any], *, db: str | None = DB,
             auth: str | None = None, body: Any = None) -> httpx.Response:
        self._id += 1
        url = f"{self.base}/{db}/rpc/" if db else f"{self.base}/rpc/"
        headers = {"Content-Type": "application/json"}
        if auth is None and self.session:
            auth = self.session
        if auth:
            headers["Authorization"] = auth
        payload = body if body is not None else {"id": self._id, "method": method, "params": params}
        return self.http.post(url, content=dumps(payload), headers=headers)

    def envelope(self, method: str, *params: Any) -> dict[str, Any]:
        resp = self.post(method, list(params))
        assert resp.status_code == 200, (resp.status_code, resp.text)
        assert resp.headers["content-type"].startswith("application/json")
        data = loads(resp.content)
        assert data["id"] == self._id
        return dict(data)

    def __call__(self, method: str, *params: Any) -> Any:
        data = self.envelope(method, *params)
        if "error" in data:
            raise RpcError(data["error"])
        return data["result"]

    def login(self, login: str = "admin", password: str = "pw") -> list[Any]:
        result = self("common.db.login", login, {"password": password}, "en")
        token = base64.b64encode(f"{login}:{result[0]}:{result[1]}".encode()).decode()
        self.session = f"Session {token}"
        return list(result)

    def model(self, model: str, method: str, *params: Any, ctx: dict[str, Any] | None = None) -> Any:
        return self(f"model.{model}.{method}", *params, CTX if ctx is None else ctx)


@dataclass
class Env:
    store: ErpStore
    ids: dict[str, int]
    clock: Clock
    injector: FaultInjector
    url: str
    rpc: Tryton

    def faults(self, **changes: Any) -> None:
        resp = httpx.post(f"{self.url}/_demo/faults", json=changes)
        assert resp.status_code == 200, resp.text


@contextmanager
def serve_env() -> Iterator[Env]:
    """The company of :func:`seed_minimal` served over loopback, its client logged in as admin."""
    store = ErpStore(DB)
    ids = seed_minimal(store)
    clock = Clock(NOW)
    injector = FaultInjector("erp")
    app = create_app(store, injector, clock=clock)
    with ThreadedServers({"erp": app}) as servers, httpx.Client(timeout=10) as http:
        url = servers.url("erp")
        rpc = Tryton(url, http)
        rpc.login()
        yield Env(store, ids, clock, injector, url, rpc)


def user_error(exc: RpcError) -> str:
    assert exc.error[0] == "UserError", exc.error
    message, description, _domain = exc.error[1]
    assert isinstance(description, str)
    return str(message)
