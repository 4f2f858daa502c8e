"""The Tryton-compatible demo ERP server, over loopback HTTP as a Tryton client sees it.

Behaviour under test is ``shared/specs/tryton/README.md`` (verified against trytond 8.2).
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest

from services.demo.faults import FaultInjector
from services.demo.serving import ThreadedServers
from services.demo.store import ErpStore
from services.demo.tryton_server import TrytonService, create_app, decode, encode
from services.io.tryton_rpc import dumps, loads

DB = "syncdesk_demo"
NOW = datetime(2025, 3, 14, 12, 0, 0)
TODAY = NOW.date()
CTX = {"company": 1, "language": "en"}


# --------------------------------------------------------------------------------------
# Fixtures: a small company in an ErpStore, a served app, a JSON-RPC helper
# --------------------------------------------------------------------------------------


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> datetime:
        self.now += timedelta(**kwargs)
        return self.now


def _meta(when: datetime) -> dict[str, Any]:
    return {"create_date": when, "write_date": None, "create_uid": 1, "write_uid": None}


def seed_minimal(store: ErpStore, now: datetime = NOW) -> dict[str, int]:
    """A small demo company following the ErpStore contract; returns named ids."""
    old = now - timedelta(days=60)
    ids: dict[str, int] = {}

    def add(model: str, key: str | None, values: dict[str, Any], when: datetime = old) -> int:
        rid = store.insert(model, {**_meta(when), **values})
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


@pytest.fixture
def env() -> Iterator[Env]:
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


def _user_error(exc: RpcError) -> str:
    assert exc.error[0] == "UserError", exc.error
    message, description, _domain = exc.error[1]
    assert isinstance(description, str)
    return str(message)


# --------------------------------------------------------------------------------------
# Encoding
# --------------------------------------------------------------------------------------


def test_encode_decode_round_trip() -> None:
    value = {"d": Decimal("810.00"), "day": date(2024, 2, 29), "at": datetime(2024, 1, 31, 23, 59, 58, 12),
             "blob": b"\x00\xffdata", "delta": timedelta(seconds=90), "n": [1, None, "x"]}
    encoded = encode(value)
    assert encoded["d"] == {"__class__": "Decimal", "decimal": "810.00"}
    assert encoded["day"] == {"__class__": "date", "year": 2024, "month": 2, "day": 29}
    assert encoded["at"] == {"__class__": "datetime", "year": 2024, "month": 1, "day": 31, "hour": 23,
                             "minute": 59, "second": 58, "microsecond": 12}
    assert encoded["blob"]["__class__"] == "bytes"
    assert decode(encoded) == value
    assert loads(dumps(value)) == value


# --------------------------------------------------------------------------------------
# Protocol, authentication, HTTP errors
# --------------------------------------------------------------------------------------


def test_root_version_and_db_list(env: Env) -> None:
    for method, expected in (("common.server.version", "8.2.1"), ("common.db.list", [DB])):
        resp = env.rpc.post(method, [], db=None)
        assert resp.status_code == 200
        assert loads(resp.content)["result"] == expected
        assert resp.headers["connection"] == "close"


def test_login_session_and_preferences(env: Env) -> None:
    rpc = Tryton(env.url, env.rpc.http)
    uid, session, extra = rpc.login()
    assert uid == env.ids["admin"] and isinstance(session, str) and len(session) >= 32 and extra is None
    prefs = rpc("model.res.user.get_preferences", True, {})
    assert prefs["company"] == 1 and prefs["companies"] == [1]
    assert prefs["language"] == "en" and prefs["user"] == uid
    full = rpc("model.res.user.get_preferences", False, {})
    assert full["login"] == "admin"


def test_bad_or_missing_session_is_401_empty(env: Env) -> None:
    good = env.rpc.session
    assert good is not None
    uid, token = base64.b64decode(good.split()[1]).decode().split(":")[1:]
    bad_headers = ["", "Session !!!notbase64", "Bearer abc",
                   "Session " + base64.b64encode(f"admin:{uid}:wrong".encode()).decode(),
                   "Session " + base64.b64encode(f"admin:999:{token}".encode()).decode(),
                   "Session " + base64.b64encode(f"clerk:{uid}:{token}".encode()).decode()]
    for header in bad_headers:
        resp = env.rpc.http.post(f"{env.url}/{DB}/rpc/", content=dumps(
            {"id": 1, "method": "model.party.party.search", "params": [[], {}]}),
            headers={"Authorization": header} if header else {})
        assert resp.status_code == 401, header
        assert resp.content == b""


def test_session_expires_and_logout(env: Env) -> None:
    rpc = Tryton(env.url, env.rpc.http)
    rpc.login()
    assert rpc.model("party.party", "search_count", []) == 4
    env.clock.advance(days=29)
    assert rpc.model("party.party", "search_count", []) == 4  # use refreshes the session
    env.clock.advance(days=31)
    assert rpc.post("model.party.party.search_count", [[], {}]).status_code == 401
    rpc.login()
    assert rpc("common.db.logout") is None
    assert rpc.post("model.party.party.search_count", [[], {}]).status_code == 401


def test_wrong_password_is_401_html(env: Env) -> None:
    resp = env.rpc.post("common.db.login", ["clerk", {"password": "nope"}, "en"], auth="")
    assert resp.status_code == 401
    assert resp.headers["content-type"].startswith("text/html")
    assert "Unauthorized" in resp.text


def test_missing_password_is_login_exception(env: Env) -> None:
    with pytest.raises(RpcError) as err:
        env.rpc("common.db.login", "admin", {}, "en")
    assert err.value.error == ["LoginException", ["password", "Password for admin", "password"]]


def test_login_rate_limited_after_five_failures(env: Env) -> None:
    for _ in range(6):
        assert env.rpc.post("common.db.login", ["clerk", {"password": "x"}, "en"]).status_code == 401
    resp = env.rpc.post("common.db.login", ["clerk", {"password": "clerk-pw"}, "en"])
    assert resp.status_code == 429
    assert "Too Many Requests" in resp.text
    # other logins are not affected; the window is five minutes
    assert env.rpc.post("common.db.login", ["admin", {"password": "pw"}, "en"]).status_code == 200
    env.clock.advance(minutes=5, seconds=1)
    assert env.rpc.post("common.db.login", ["clerk", {"password": "clerk-pw"}, "en"]).status_code == 200


def test_unknown_database_is_404(env: Env) -> None:
    resp = env.rpc.post("common.db.login", ["admin", {"password": "pw"}, "en"], db="nope")
    assert resp.status_code == 404
    assert env.rpc.post("model.party.party.search", [[], {}], db="nope").status_code == 404


@pytest.mark.parametrize("method", ["model.no.such.model.search", "model.party.party.browse",
                                    "model.party.party.__init__", "wizard.party.merge.create",
                                    "system.listMethods", "model.account.invoice.post_no"])
def test_unknown_or_non_rpc_method_is_403(env: Env, method: str) -> None:
    resp = env.rpc.post(method, [[], {}])
    assert resp.status_code == 403
    assert "Forbidden" in resp.text


def test_missing_context_is_422(env: Env) -> None:
    for params in ([], [[]], [[], 0, None, None]):
        resp = env.rpc.post("model.party.party.search", params)
        assert resp.status_code == 422, params


def test_invalid_bodies(env: Env) -> None:
    resp = env.rpc.http.post(f"{env.url}/{DB}/rpc/", content=b"{not json",
                             headers={"Authorization": env.rpc.session or ""})
    assert resp.status_code == 400
    # a body without exactly id/method/params gets the bare result, errors as HTTP statuses
    resp = env.rpc.post("", [], body={"method": "model.party.party.search_count", "params": [[], {}]})
    assert resp.status_code == 200 and loads(resp.content) == 4
    resp = env.rpc.post("", [], body={"id": 1, "method": "model.party.party.read", "params": [[999], [], {}],
                                      "extra": True})
    assert resp.status_code == 400


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
    assert "424242" in _user_error(err.value) and "exist" in _user_error(err.value)


def test_gzip_only_when_asked(env: Env) -> None:
    rows = env.rpc.model("party.party", "search_read", [], 0, None, None, None)
    assert len(dumps({"result": rows})) > 1400
    resp = env.rpc.post("model.party.party.search_read", [[], 0, None, None, None, CTX])
    assert resp.headers.get("content-encoding") == "gzip"  # httpx sends Accept-Encoding: gzip
    assert loads(resp.content)["result"] == rows
    with httpx.Client(headers={"Accept-Encoding": "identity"}) as plain:
        resp = plain.post(f"{env.url}/{DB}/rpc/", content=dumps(
            {"id": 1, "method": "model.party.party.search_read", "params": [[], 0, None, None, None, CTX]}),
            headers={"Authorization": env.rpc.session or ""})
    assert "content-encoding" not in resp.headers
    assert loads(resp.content)["result"] == rows
    small = env.rpc.post("model.party.party.search_count", [[], CTX])
    assert "content-encoding" not in small.headers


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
    x = env.store.insert("account.invoice", {**_meta(w2 + timedelta(seconds=6)), "party": ids["cus_A"],
                                             "reference": "in_X", "state": "draft", "type": "out"})
    domain2 = ["OR", ["create_date", ">", w2], ["write_date", ">", w2]]
    assert rpc.model("account.invoice", "search", domain2) == [ids["inv_posted"], x]


# --------------------------------------------------------------------------------------
# Creating and writing
# --------------------------------------------------------------------------------------


def _new_invoice(rpc: Tryton, ids: dict[str, int], **values: Any) -> int:
    base: dict[str, Any] = {
        "type": "out", "party": ids["cus_C"], "reference": "in_C9", "currency": ids["usd"],
        "invoice_date": TODAY, "journal": 1, "account": 1, "payment_term": 1,
        "invoice_address": ids["addr_cus_C"],
        "lines": [["create", [{"product": ids["pro_monthly"], "quantity": 3, "unit_price": Decimal("49.00"),
                               "unit": 1, "account": 2, "description": "Pro", "taxes": None}]]]}
    base["lines"][0][1][0].pop("taxes")
    base.update(values)
    [iid] = rpc.model("account.invoice", "create", [base])
    return int(iid)


def test_create_invoice_with_lines_and_totals(env: Env) -> None:
    rpc, ids = env.rpc, env.ids
    iid = _new_invoice(rpc, ids, lines=[["create", [
        {"product": ids["pro_monthly"], "quantity": 3, "unit_price": Decimal("49.00")},
        {"product": ids["pro_yearly"], "quantity": 0.5, "unit_price": Decimal("490.00")}]]])
    [row] = rpc.model("account.invoice", "read", [iid], ["state", "number", "lines", "total_amount", "company",
                                                         "create_date", "create_uid", "write_date", "rec_name"])
    assert row["state"] == "draft" and row["number"] is None and row["company"] == 1
    assert row["total_amount"] == Decimal("392.00") and len(row["lines"]) == 2
    assert row["create_date"] == NOW and row["create_uid"] == ids["admin"] and row["write_date"] is None
    assert row["rec_name"] == "[in_C9]"
    assert env.store.tables["account.invoice"][iid]["lines"] == row["lines"]  # parent list kept
    assert rpc.model("account.invoice", "search", [["reference", "=", "in_C9"]]) == [iid]
    lines = rpc.model("account.invoice.line", "read", row["lines"], ["invoice", "amount"])
    assert [(r["invoice"], r["amount"]) for r in lines] == [(iid, Decimal("147.00")), (iid, Decimal("245.00"))]


def test_create_needs_company_in_context_and_required_fields(env: Env) -> None:
    rpc, ids = env.rpc, env.ids
    with pytest.raises(RpcError) as err:
        rpc.model("account.invoice", "create", [{"party": ids["cus_A"]}], ctx={})
    assert "Company" in _user_error(err.value)
    with pytest.raises(RpcError) as err:
        rpc.model("account.invoice", "create", [{"reference": "x"}])
    assert "Party" in _user_error(err.value)
    with pytest.raises(RpcError) as err:  # a line without unit price: the whole call is undone
        _new_invoice(rpc, ids, reference="in_bad", lines=[["create", [{"quantity": 1}]]])
    assert "Unit Price" in _user_error(err.value)
    assert rpc.model("account.invoice", "search", [["reference", "=", "in_bad"]]) == []
    with pytest.raises(RpcError) as err:
        rpc.model("account.invoice", "create", [{"party": ids["cus_A"], "invoice_address": ids["addr_cus_A"],
                                                 "state": "bogus"}])
    assert "allowed options" in _user_error(err.value)
    with pytest.raises(RpcError) as err:
        rpc.model("account.invoice", "create", [{"party": 777}])
    assert "777" in _user_error(err.value)
    # parties do not need a company
    [pid] = rpc.model("party.party", "create", [{"name": "Delta", "code": "cus_D"}], ctx={})
    assert rpc.model("party.party", "read", [pid], ["active", "rec_name"]) == [
        {"id": pid, "active": True, "rec_name": "Delta"}]


def test_typed_values_round_trip_through_the_server(env: Env) -> None:
    rpc, ids = env.rpc, env.ids
    day = date(2025, 2, 28)
    iid = _new_invoice(rpc, ids, invoice_date=day, lines=[["create", [
        {"quantity": 1, "unit_price": Decimal("810.00"), "description": "x"}]]])
    [row] = rpc.model("account.invoice", "read", [iid], ["invoice_date", "total_amount", "create_date"])
    assert row["invoice_date"] == day and isinstance(row["invoice_date"], date)
    assert row["total_amount"] == Decimal("810.00") and str(row["total_amount"]) == "810.00"
    assert row["create_date"] == NOW
    raw = rpc.post("model.account.invoice.read", [[iid], ["total_amount", "invoice_date"], CTX])
    result = httpx.Response(200, content=raw.content).json()["result"][0]
    assert result["total_amount"] == {"__class__": "Decimal", "decimal": "810.00"}
    assert result["invoice_date"] == {"__class__": "date", "year": 2025, "month": 2, "day": 28}
    assert rpc.model("account.invoice", "search", [["invoice_date", "=", day]]) == [iid]
    assert rpc.model("account.invoice", "search", [["create_date", ">=", NOW]]) == [iid]


def test_write_sets_write_date_and_x2many_actions(env: Env) -> None:
    rpc, ids, store = env.rpc, env.ids, env.store
    iid = ids["inv_draft"]
    line_ids = rpc.model("account.invoice", "read", [iid], ["lines"])[0]["lines"]
    env.clock.advance(hours=1)
    rpc.model("account.invoice", "write", [iid], {
        "description": "updated",
        "lines": [["write", [line_ids[0]], {"quantity": 4}], ["delete", [line_ids[1]]],
                  ["create", [{"quantity": 1, "unit_price": Decimal("1.50"), "description": "fee"}]]]})
    [row] = rpc.model("account.invoice", "read", [iid], ["description", "write_date", "write_uid", "lines",
                                                         "total_amount"])
    assert row["description"] == "updated" and row["write_date"] == env.clock.now
    assert row["write_uid"] == ids["admin"] and row["total_amount"] == Decimal("197.50")
    assert len(row["lines"]) == 2 and line_ids[1] not in store.tables["account.invoice.line"]
    # remove/add move a line between invoices
    other = _new_invoice(rpc, ids, reference="in_C2")
    moved = row["lines"][1]
    rpc.model("account.invoice", "write", [iid], {"lines": [["remove", [moved]]]},
              [other], {"lines": [["add", [moved]]]})  # the varargs form
    assert moved in rpc.model("account.invoice", "read", [other], ["lines"])[0]["lines"]
    assert moved not in store.tables["account.invoice"][iid]["lines"]
    with pytest.raises(RpcError) as err:
        rpc.model("account.invoice", "write", [424242], {"description": "x"})
    assert "424242" in _user_error(err.value)


def test_posted_invoice_cannot_be_modified_or_deleted(env: Env) -> None:
    rpc, ids = env.rpc, env.ids
    with pytest.raises(RpcError) as err:
        rpc.model("account.invoice", "write", [ids["inv_posted"]], {"description": "x"})
    assert "posted" in _user_error(err.value)
    with pytest.raises(RpcError) as err:
        rpc.model("account.invoice", "delete", [ids["inv_posted"]])
    assert "cancel" in _user_error(err.value)
    rpc.model("account.invoice", "delete", [ids["inv_draft"]])
    assert ids["inv_draft"] not in env.store.tables["account.invoice"]
    assert not env.store.lookup("account.invoice.line", "invoice", ids["inv_draft"])
    with pytest.raises(RpcError) as err:  # still used by invoices
        rpc.model("party.party", "delete", [ids["cus_B"]])
    assert "used by" in _user_error(err.value)


# --------------------------------------------------------------------------------------
# Invoice workflow
# --------------------------------------------------------------------------------------


def test_post_assigns_number_and_state(env: Env) -> None:
    rpc, ids = env.rpc, env.ids
    env.clock.advance(minutes=5)
    iid = _new_invoice(rpc, ids, invoice_date=None)
    assert rpc.model("account.invoice", "validate_invoice", [iid]) is None
    assert rpc.model("account.invoice", "read", [iid], ["state"])[0]["state"] == "validated"
    rpc.model("account.invoice", "post", [iid])
    [row] = rpc.model("account.invoice", "read", [iid], ["state", "number", "invoice_date", "write_date",
                                                         "amount_to_pay", "rec_name"])
    assert row["state"] == "posted" and row["number"] == "INV-000011"
    assert row["invoice_date"] == env.clock.now.date() and row["write_date"] == env.clock.now
    assert row["amount_to_pay"] == Decimal("147.00") and row["rec_name"] == "INV-000011 [in_C9]"
    rpc.model("account.invoice", "post", [iid])  # posting again changes nothing
    assert rpc.model("account.invoice", "read", [iid], ["number"])[0]["number"] == "INV-000011"
    second = _new_invoice(rpc, ids, reference="in_C10")
    rpc.model("account.invoice", "post", [second])
    assert rpc.model("account.invoice", "read", [second], ["number"])[0]["number"] == "INV-000012"
    # an invoice dated before the latest posted one cannot be posted
    early = _new_invoice(rpc, ids, reference="in_C11", invoice_date=TODAY - timedelta(days=1))
    with pytest.raises(RpcError) as err:
        rpc.model("account.invoice", "post", [early])
    assert "invoice date after" in _user_error(err.value)
    assert rpc.model("account.invoice", "read", [early], ["state", "number"])[0] == {
        "id": early, "state": "draft", "number": None}


def test_post_without_journal_crashes_and_rolls_back(env: Env) -> None:
    rpc, ids = env.rpc, env.ids
    good = _new_invoice(rpc, ids, reference="in_ok")
    bad = _new_invoice(rpc, ids, reference="in_nojournal", journal=None)
    with pytest.raises(RpcError) as err:
        rpc.model("account.invoice", "post", [good, bad])
    assert len(err.value.error) == 2 and err.value.error[1] == ""
    assert err.value.error[0] not in ("UserError", "UserWarning")
    states = rpc.model("account.invoice", "read", [good, bad], ["state", "number"])
    assert [(r["state"], r["number"]) for r in states] == [("draft", None), ("draft", None)]
    rpc.model("account.invoice", "post", [good])
    assert rpc.model("account.invoice", "read", [good], ["number"])[0]["number"] == "INV-000011"


def test_cancel_and_draft_transitions(env: Env) -> None:
    rpc, ids = env.rpc, env.ids
    with pytest.raises(RpcError) as err:
        rpc.model("account.invoice", "cancel", [ids["inv_posted"]])
    assert "cancel" in _user_error(err.value)
    iid = _new_invoice(rpc, ids)
    rpc.model("account.invoice", "validate_invoice", [iid])
    rpc.model("account.invoice", "draft", [iid])
    assert rpc.model("account.invoice", "read", [iid], ["state"])[0]["state"] == "draft"
    rpc.model("account.invoice", "cancel", [iid])
    assert rpc.model("account.invoice", "read", [iid], ["state"])[0]["state"] == "cancelled"
    rpc.model("account.invoice", "post", [iid])  # not from cancelled: ignored, as trytond's workflow
    assert rpc.model("account.invoice", "read", [iid], ["state"])[0]["state"] == "cancelled"
    rpc.model("account.invoice", "delete", [iid])


def test_user_warning_acknowledged_then_post_succeeds(env: Env) -> None:
    rpc, ids = env.rpc, env.ids
    iid = _new_invoice(rpc, ids, invoice_date=TODAY - timedelta(days=31), reference="in_late")
    env.store.tables["account.invoice"][ids["inv_posted"]]["invoice_date"] = TODAY - timedelta(days=40)
    with pytest.raises(RpcError) as err:
        rpc.model("account.invoice", "post", [iid])
    kind, (name, message, _desc) = err.value.error
    # as trytond's account_invoice (verified against a real 8.2 server): the payment term's warning
    assert kind == "UserWarning" and name.endswith(".invoice_payment_term")
    assert message.startswith('The invoice "[in_late]" generates a payment date') and "in the past" in message
    with pytest.raises(RpcError) as again:  # deterministic name
        rpc.model("account.invoice", "post", [iid])
    assert again.value.error[1][0] == name
    [wid] = rpc.model("res.user.warning", "create", [{"user": ids["admin"], "name": name, "always": False}])
    rpc.model("account.invoice", "post", [iid])
    assert rpc.model("account.invoice", "read", [iid], ["state"])[0]["state"] == "posted"
    assert wid not in env.store.tables["res.user.warning"]  # consumed


def _credit_wizard(rpc: Tryton, iid: int, start: dict[str, Any]) -> Any:
    """Tryton's "Credit" wizard on invoice ``iid``, as the client runs it: create, execute, delete."""
    active = {**CTX, "active_model": "account.invoice", "active_id": iid, "active_ids": [iid]}
    sid, first, last = rpc("wizard.account.invoice.credit.create", active)
    assert (first, last) == ("start", "end")
    try:
        return rpc("wizard.account.invoice.credit.execute", sid, {"start": start}, "credit", active)
    finally:
        assert rpc("wizard.account.invoice.credit.delete", sid, active) is None


def test_credit_wizard_with_refund(env: Env) -> None:
    """As trytond 8.2 (tests/erp): ``Invoice.credit`` is reached through the wizard only; with
    refund the credit note (lines negated, their origin = the credited lines, no reference) is
    posted in the invoice sequence and reconciled (paid), the invoice ends cancelled; a second
    credit, or one of a draft or paid invoice, is refused and leaves nothing behind."""
    rpc, ids = env.rpc, env.ids
    assert env.rpc.post("model.account.invoice.credit", [[ids["inv_posted"]], CTX]).status_code == 403
    active = {**CTX, "active_model": "account.invoice", "active_id": ids["inv_posted"],
              "active_ids": [ids["inv_posted"]]}
    sid, _, _ = rpc("wizard.account.invoice.credit.create", active)
    view = rpc("wizard.account.invoice.credit.execute", sid, {}, "start", active)["view"]
    assert view["defaults"] == {"with_refund": True, "with_refund_allowed": True} and view["state"] == "start"
    rpc("wizard.account.invoice.credit.delete", sid, active)
    with pytest.raises(RpcError) as err:  # the session is gone
        rpc("wizard.account.invoice.credit.execute", sid, {}, "start", active)
    assert 'of "Session Wizard" that don\'t exist' in _user_error(err.value)
    before = len(env.store.tables["account.invoice"])
    answer = _credit_wizard(rpc, ids["inv_posted"], {"with_refund": True, "invoice_date": TODAY})
    [[action, data]] = answer["actions"]
    assert action["res_model"] == "account.invoice" and len(data["res_id"]) == 1
    [credit] = data["res_id"]
    assert len(env.store.tables["account.invoice"]) == before + 1
    fields = ["state", "number", "reference", "total_amount", "invoice_date", "sequence_type_cache",
              "origin_invoices", "party", "currency", "lines"]
    original, note = rpc.model("account.invoice", "read", [ids["inv_posted"], credit], fields)
    assert original["state"] == "cancelled" and original["number"] == "INV-000010"
    assert note["state"] == "paid" and note["number"] == "INV-000011" and note["reference"] is None
    assert note["total_amount"] == Decimal("-490.00") and note["invoice_date"] == TODAY
    assert note["sequence_type_cache"] == "credit_note" and note["origin_invoices"] == [ids["inv_posted"]]
    assert (note["party"], note["currency"]) == (original["party"], original["currency"])
    [line] = rpc.model("account.invoice.line", "read", note["lines"], ["quantity", "unit_price", "origin"])
    assert line["quantity"] == -1 and line["unit_price"] == Decimal("490.00")
    assert line["origin"] == f"account.invoice.line,{original['lines'][0]}"
    assert rpc.model("account.invoice", "search", [["origin_invoices", "=", ids["inv_posted"]]]) == [credit]
    # refused: a second credit (the invoice is cancelled now), a paid or a draft invoice; nothing is left
    for key, name in (("inv_posted", "INV-000010 [in_B1]"), ("inv_paid", "INV-000009 [in_A0]"),
                      ("inv_draft", "[in_A1]")):
        with pytest.raises(RpcError) as err:
            _credit_wizard(rpc, ids[key], {"with_refund": True})
        assert _user_error(err.value) == f'You cannot refund invoice "{name}" because it is not posted.'
    assert len(env.store.tables["account.invoice"]) == before + 1
    assert env.store.tables["account.invoice"][ids["inv_paid"]]["state"] == "paid"
    with pytest.raises(RpcError) as err:  # no records to credit: trytond fails terse
        rpc("wizard.account.invoice.credit.execute", rpc("wizard.account.invoice.credit.create", CTX)[0],
            {"start": {"with_refund": True}}, "credit", CTX)
    assert err.value.error == ["'NoneType' object has no attribute 'credit'", ""]


def test_behaviour_of_a_real_trytond_on_sqlite(env: Env) -> None:
    """Differences a real trytond 8.2 (tests/erp) showed: booleans read as SQLite integers, a
    party without code takes the party sequence's next number, an invoice line's currency
    must be the invoice's, an invoice needs an address."""
    rpc, ids = env.rpc, env.ids
    [row] = rpc.model("party.party", "read", [ids["cus_A"]], ["active"])
    assert row["active"] == 1 and type(row["active"]) is int
    [row] = rpc.model("party.party", "search_read", [["id", "=", ids["inactive"]], ["active", "=", False]],
                      0, None, None, ["active"])
    assert row["active"] == 0 and type(row["active"]) is int
    first, second = rpc.model("party.party", "create", [{"name": "No Code One"}, {"name": "No Code Two"}])
    codes = {r["id"]: r["code"] for r in rpc.model("party.party", "read", [first, second], ["code"])}
    assert codes[first].isdigit() and int(codes[second]) == int(codes[first]) + 1
    with pytest.raises(RpcError) as err:  # a EUR invoice whose line defaults to the company's USD
        _new_invoice(rpc, ids, reference="in_eur", currency=ids["eur"])
    assert 'for field "Lines"' in _user_error(err.value) and "not valid according to its domain" in _user_error(
        err.value)
    assert rpc.model("account.invoice", "search", [["reference", "=", "in_eur"]]) == []
    line = {"product": ids["pro_monthly"], "quantity": 1, "unit_price": Decimal("45.00"), "unit": 1, "account": 2,
            "currency": ids["eur"], "company": ids["company"]}
    iid = _new_invoice(rpc, ids, reference="in_eur", currency=ids["eur"], lines=[["create", [line]]])
    assert rpc.model("account.invoice", "read", [iid], ["total_amount"])[0]["total_amount"] == Decimal("45.00")
    with pytest.raises(RpcError) as err:  # an invoice needs an address (a party created without one has none)
        _new_invoice(rpc, ids, reference="in_noaddr", invoice_address=None)
    assert 'A value is required for field "Invoice Address"' in _user_error(err.value)


def test_on_change(env: Env) -> None:
    rpc, ids = env.rpc, env.ids
    [changes] = rpc.model("account.invoice", "on_change", {"type": "out", "party": ids["cus_A"]}, ["type", "party"])
    assert changes["invoice_address"] == ids["addr_cus_A"]
    assert (changes["account"], changes["journal"], changes["payment_term"]) == (1, 1, 1)
    [line] = rpc.model("account.invoice.line", "on_change", {"product": ids["pro_monthly"]}, ["product"])
    assert (line["unit"], line["account"], line["taxes"]) == (1, 2, [])
    before = env.store.tables["account.invoice"][ids["inv_draft"]].copy()
    rpc.model("account.invoice", "on_change", {"id": ids["inv_draft"], "party": ids["cus_B"]}, ["party"])
    assert env.store.tables["account.invoice"][ids["inv_draft"]] == before


# --------------------------------------------------------------------------------------
# Fault injection
# --------------------------------------------------------------------------------------


def test_fault_latency(env: Env) -> None:
    env.faults(latency_ms=150)
    start = time.perf_counter()
    assert env.rpc.model("party.party", "search_count", []) == 4
    assert time.perf_counter() - start >= 0.15


def test_fault_error_rate_is_500(env: Env) -> None:
    env.faults(error_rate=1.0)
    resp = env.rpc.post("model.party.party.search_count", [[], CTX])
    assert resp.status_code == 500 and resp.headers["content-type"].startswith("text/html")


def test_fault_rate_limit_is_429_with_retry_after(env: Env) -> None:
    env.faults(rate_limit=1)
    statuses = [env.rpc.post("model.party.party.search_count", [[], CTX]) for _ in range(4)]
    limited = [r for r in statuses if r.status_code == 429]
    assert limited and int(limited[0].headers["retry-after"]) >= 1


def test_fault_outage_is_503(env: Env) -> None:
    env.faults(outage=True)
    resp = env.rpc.post("model.party.party.search_count", [[], CTX])
    assert resp.status_code == 503 and "Service Unavailable" in resp.text
    env.faults(outage=False)
    assert env.rpc.model("party.party", "search_count", []) == 4


def test_fault_malformed_body(env: Env) -> None:
    env.faults(malformed_rate=1.0)
    resp = env.rpc.post("model.party.party.search_count", [[], CTX])
    assert resp.status_code == 200
    with pytest.raises(ValueError):
        loads(resp.content)


def test_fault_drop_after_commit(env: Env) -> None:
    env.faults(drop_after_commit_rate=1.0)
    assert env.rpc.model("party.party", "search_count", []) == 4  # reads are not dropped
    with pytest.raises(httpx.TransportError):
        env.rpc.model("party.party", "create", [{"name": "Dropped", "code": "cus_DROP"}])
    env.faults(drop_after_commit_rate=0.0)
    assert len(env.rpc.model("party.party", "search", [["code", "=", "cus_DROP"]])) == 1


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
        store.insert("account.invoice", {**_meta(when), "type": "out", "reference": f"in_{i:07d}",
                                         "party": ids["cus_A"] if i % 2 else ids["cus_B"], "state": "posted",
                                         "number": f"INV-{i + 100:06d}", "currency": 1, "company": 1,
                                         "invoice_date": when.date(), "journal": 1, "account": 1})
    service = TrytonService(store, Clock(NOW))
    from services.demo.tryton_server import ModelCall, Transaction

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
