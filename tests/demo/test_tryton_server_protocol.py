"""The demo Tryton server's protocol, as a Tryton client sees it over loopback HTTP: typed
values, login and sessions, HTTP errors, gzip, and the fault injector in front.

Behaviour under test is ``shared/specs/tryton/README.md`` (verified against trytond 8.2).
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from decimal import Decimal

import httpx
import pytest

from services.io.tryton_rpc import decode, dumps, encode, loads
from tests.demo.tryton_rig import CTX, DB, Env, RpcError, Tryton, serve_env


@pytest.fixture
def env() -> Iterator[Env]:
    with serve_env() as served:
        yield served


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
