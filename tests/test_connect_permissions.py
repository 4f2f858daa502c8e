"""Test connection (services/io/permissions*.py) against the demo servers over loopback: the
demo profile passes, the demo-readonly profile shows its missing write permission on each
system, the demo servers answer as the real ones do (Stripe's 403 permission error before any
validation, Tryton's ir.model.access, Zendesk's users/me and a light agent's 403), every kind
of unreachable has its own sentence, a test can be cancelled, and no secret shows anywhere."""

from __future__ import annotations

import asyncio
import base64
import copy
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from services.actions.model import RULE_ACTIONS, ActionKind
from services.core.domain import System
from services.demo import readonly
from services.demo.environment import DemoEnvironment, DemoOptions
from services.demo.faults import FaultConfig
from services.io.config import Profile, Secret, SystemConnection
from services.io.permissions import (
    ConnectionReport,
    Verdict,
    blocked_fixes,
    check_profile,
    check_system,
    describe_failure,
)
from services.io.permissions_fixes import FIX_NEEDS
from tests.specs import validate_response

#: generous: two loaded cores shared by several test runs; a test normally takes well under 1 s
DEADLINE = 30.0


@pytest.fixture(scope="module")
def env() -> Iterator[DemoEnvironment]:
    demo = DemoEnvironment(DemoOptions(customers=20, seed=1)).start()
    try:
        yield demo
    finally:
        demo.stop()


def _checks(report: ConnectionReport) -> dict[tuple[System, str, str], Verdict]:
    return {(c.system, c.resource, c.access): c.verdict for c in report.checks}


async def test_the_demo_profile_passes_every_check(env: DemoEnvironment) -> None:
    report = await check_profile(env.profile("demo"), deadline=DEADLINE)
    assert report.ok, [line for r in report.systems.values() for line in r.lines()]
    assert set(report.systems) == set(System)
    assert all(c.verdict is Verdict.OK for c in report.checks)
    assert report.systems[System.BILLING].identity == "secret key (test mode)"
    assert "(admin)" in report.systems[System.SUPPORT].identity
    assert blocked_fixes(report) == {}
    needed = _checks(report)
    for key in ((System.BILLING, "customers", "write"), (System.ERP, "account.invoice", "create"),
                (System.ERP, "company", "setting"), (System.SUPPORT, "organizations", "write")):
        assert needed[key] is Verdict.OK


async def test_the_readonly_profile_reports_the_missing_write_on_each_system(env: DemoEnvironment) -> None:
    report = await check_profile(env.readonly_profile(), deadline=DEADLINE)
    assert not report.ok
    verdicts = _checks(report)
    # every read SyncDesk needs is granted: a refresh works
    assert all(c.verdict is Verdict.OK for c in report.checks if c.access == "read")
    assert verdicts[(System.BILLING, "customers", "write")] is Verdict.MISSING
    assert verdicts[(System.ERP, "account.invoice", "create")] is Verdict.MISSING
    assert verdicts[(System.ERP, "account.invoice", "write")] is Verdict.MISSING
    assert verdicts[(System.ERP, "party.party", "create")] is Verdict.OK  # only invoices are held back
    assert verdicts[(System.ERP, "company", "setting")] is Verdict.OK
    assert verdicts[(System.SUPPORT, "organizations", "write")] is Verdict.MISSING
    for system in System:
        assert not report.systems[system].ok and report.systems[system].authenticated
    assert report.systems[System.BILLING].identity == "restricted key (test mode)"
    assert "(light agent)" in report.systems[System.SUPPORT].identity
    sentences = [c.sentence for c in report.checks]
    assert "can read ERP invoices" in sentences
    assert ("cannot create ERP invoices: fixes that post, correct, credit or cancel ERP invoices will be refused"
            in sentences)
    blocked = blocked_fixes(report)
    assert blocked[("invoice.missing_in_erp", "retry")].startswith("cannot create ERP invoices")
    assert blocked[("customer.master_drift", "push")].startswith("cannot update billing customers")
    assert blocked[("entitlement.missing", "push")].startswith("cannot update support organizations")
    assert ("customer.unmapped_erp", "create") not in blocked  # parties may be written
    assert not any(kind in ("accept", "flag") for _, kind in blocked)


async def test_one_system_alone(env: DemoEnvironment) -> None:
    report = await check_profile(env.readonly_profile(), deadline=DEADLINE, systems=[System.ERP])
    assert set(report.systems) == {System.ERP}
    blocked = blocked_fixes(report)
    assert ("invoice.not_posted_in_erp", "post") in blocked
    assert ("entitlement.missing", "push") not in blocked  # support was not tested


async def test_a_rate_limited_system_is_waited_out_not_reported_missing() -> None:
    """Stripe answers 429 past its rate limit: the probes wait its Retry-After (the demo's billing
    here allows 4 requests a second; the test sends 12)."""
    options = DemoOptions(customers=5, seed=1, faults={System.BILLING: FaultConfig(rate_limit=4.0)})
    demo = await asyncio.to_thread(lambda: DemoEnvironment(options).start())
    try:
        report = await check_system(demo.profile().connections[System.BILLING], deadline=DEADLINE)
        limited = await asyncio.to_thread(lambda: httpx.get(f"{demo.urls[System.BILLING]}/_demo/stats").json())
    finally:
        await asyncio.to_thread(demo.stop)
    assert report.ok, report.lines()
    assert limited["injected"].get("429", 0) > 0, limited  # the limit was met, and waited out


def test_every_fix_that_writes_has_its_permissions() -> None:
    writing = {(rule, kind.value) for rule, kinds in RULE_ACTIONS.items() for kind in kinds
               if kind not in (ActionKind.ACCEPT, ActionKind.FLAG)}
    assert writing == set(FIX_NEEDS)


def test_a_read_only_profile_may_perform_no_fix_that_writes() -> None:
    report = ConnectionReport("prod", {}, read_only=True)
    blocked = blocked_fixes(report)
    assert set(blocked) == set(FIX_NEEDS)
    assert all("read-only" in why for why in blocked.values())


# -- the demo servers answer as the real ones --------------------------------------------------------
def test_demo_stripe_answers_a_restricted_key_as_stripe_does(env: DemoEnvironment) -> None:
    url = env.urls[System.BILLING]
    key = readonly.STRIPE_KEY
    secret = env.dataset.credentials.stripe_api_key
    customer = next(iter(env.dataset.billing.customers))
    before = copy.deepcopy(env.dataset.billing.customers[customer])
    with httpx.Client(base_url=url, timeout=DEADLINE) as client:
        read = client.get("/v1/customers", params={"limit": 1}, auth=(key, ""))
        assert read.status_code == 200 and read.json()["object"] == "list"
        # a valid write: refused for the permission, before anything is read or validated
        denied = client.post(f"/v1/customers/{customer}", data={"name": "Changed"}, auth=(key, ""))
        assert denied.status_code == 403
        error = denied.json()["error"]
        assert error["type"] == "invalid_request_error"
        assert "does not have the required permissions" in error["message"]
        assert "'rak_customer_write'" in error["message"]
        validate_response("stripe", "POST", f"/v1/customers/{customer}", 403, denied.json())
        assert key not in error["message"]
        # the probe's invalid write: 403 for the restricted key, 400 for the secret key
        probe = {"syncdesk_permission_probe": "1"}
        assert client.post(f"/v1/customers/{customer}", data=probe, auth=(key, "")).status_code == 403
        allowed = client.post(f"/v1/customers/{customer}", data=probe, auth=(secret, ""))
        assert allowed.status_code == 400 and allowed.json()["error"]["type"] == "invalid_request_error"
        assert client.get("/v1/customers", auth=("rk_test_unknown_key_000000", "")).status_code == 401
    assert env.dataset.billing.customers[customer] == before


def _tryton(url: str, database: str, login: str, password: str) -> tuple[httpx.Client, str]:
    client = httpx.Client(base_url=url, timeout=DEADLINE)
    result = client.post(f"/{database}/", json={"id": 1, "method": "common.db.login",
                                                "params": [login, {"password": password}, "en"]}).json()["result"]
    token = base64.b64encode(f"{login}:{result[0]}:{result[1]}".encode()).decode()
    return client, f"Session {token}"


def test_demo_tryton_serves_get_access_and_enforces_it(env: DemoEnvironment) -> None:
    creds = env.dataset.credentials
    database = creds.tryton_database
    models = ["account.invoice", "party.party"]
    client, auth = _tryton(env.urls[System.ERP], database, readonly.TRYTON_LOGIN, readonly.TRYTON_PASSWORD)
    try:
        call = {"id": 2, "method": "model.ir.model.access.get_access", "params": [models, {}]}
        access = client.post(f"/{database}/", json=call, headers={"Authorization": auth}).json()["result"]
        assert access["account.invoice"] == {"read": True, "write": False, "create": False, "delete": False}
        assert access["party.party"] == {"read": True, "write": True, "create": True, "delete": True}
        search = {"id": 3, "method": "model.account.invoice.search", "params": [[], 0, 1, None, {}]}
        assert isinstance(client.post(f"/{database}/", json=search, headers={"Authorization": auth})
                          .json()["result"], list)
        invoices = len(env.dataset.erp.tables["account.invoice"])
        create = {"id": 4, "method": "model.account.invoice.create", "params": [[{"type": "out"}], {}]}
        error = client.post(f"/{database}/", json=create, headers={"Authorization": auth}).json()["error"]
        assert error == ["UserError", ['You are not allowed to access "Invoice".', "Within groups: Account Reader",
                                       None]]
        assert len(env.dataset.erp.tables["account.invoice"]) == invoices
        unknown = {"id": 5, "method": "model.ir.model.access.get_access", "params": [["no.such.model"], {}]}
        assert "error" in client.post(f"/{database}/", json=unknown, headers={"Authorization": auth}).json()
    finally:
        client.close()
    client, auth = _tryton(env.urls[System.ERP], database, creds.tryton_login, creds.tryton_password)
    try:
        call = {"id": 2, "method": "model.ir.model.access.get_access", "params": [models, {}]}
        access = client.post(f"/{database}/", json=call, headers={"Authorization": auth}).json()["result"]
        assert all(all(v.values()) for v in access.values())
    finally:
        client.close()


def test_demo_zendesk_serves_users_me_and_refuses_a_light_agents_writes(env: DemoEnvironment) -> None:
    creds = env.dataset.credentials

    def basic(email: str, token: str) -> dict[str, str]:
        return {"Authorization": "Basic " + base64.b64encode(f"{email}/token:{token}".encode()).decode()}

    light = basic(readonly.ZENDESK_EMAIL, readonly.ZENDESK_TOKEN)
    admin = basic(creds.zendesk_email, creds.zendesk_token)
    org = next(iter(env.dataset.support.organizations))
    with httpx.Client(base_url=env.urls[System.SUPPORT], timeout=DEADLINE) as client:
        answer = client.get("/api/v2/users/me.json", headers=light)
        validate_response("zendesk", "GET", "/api/v2/users/me", 200, answer.json())
        me = answer.json()["user"]
        assert (me["role"], me["role_type"], me["email"]) == ("agent", 1, readonly.ZENDESK_EMAIL)
        assert client.get("/api/v2/users/me", headers=admin).json()["user"]["role"] == "admin"
        assert client.get(f"/api/v2/organizations/{org}.json", headers=light).status_code == 200
        put = client.put(f"/api/v2/organizations/{org}.json", headers=light,
                         json={"organization": {"notes": "light agents may not"}})
        assert put.status_code == 403 and put.json()["error"] == "Forbidden"
        assert client.get("/api/v2/users/me.json").status_code == 401


# -- unreachable, each its own sentence; cancellation ----------------------------------------------------
def _conn(url: str) -> SystemConnection:
    return SystemConnection(System.BILLING, "stripe", url, {}, {"api_key": Secret("sk_test_unreachable_0000")})


def test_each_way_of_being_unreachable_has_its_own_sentence() -> None:
    dns = httpx.ConnectError("[Errno -2] Name or service not known")
    assert "(DNS)" in describe_failure(dns, "https://api.stripe.invalid", 5)
    tls = httpx.ConnectError("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: self-signed certificate")
    assert "TLS certificate" in describe_failure(tls, "https://erp.example.com", 5)
    assert "(timeout)" in describe_failure(httpx.ReadTimeout("timed out"), "https://erp.example.com", 5)
    refused = httpx.ConnectError("[Errno 111] Connection refused")
    assert "(connection refused)" in describe_failure(refused, "http://127.0.0.1:9", 5)


async def test_refused_tls_and_timeout_against_real_sockets(env: DemoEnvironment) -> None:
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    refused = await check_system(_conn(f"http://127.0.0.1:{port}"), deadline=DEADLINE)
    assert not refused.reachable and "(connection refused)" in (refused.problem or "")
    # https to a plain-HTTP server: the handshake fails
    plain = env.urls[System.BILLING].replace("http://", "https://")
    tls = await check_system(_conn(plain), deadline=DEADLINE)
    assert not tls.reachable and "(TLS)" in (tls.problem or "")
    with socket.socket() as silent:  # accepts connections (backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        slow = await check_system(_conn(f"http://127.0.0.1:{silent.getsockname()[1]}"), deadline=0.5)
    assert not slow.reachable and "(timeout)" in (slow.problem or "")


async def test_a_test_in_progress_can_be_cancelled() -> None:
    accepted = threading.Event()
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)

        held: list[socket.socket] = []

        def accept() -> None:
            conn, _ = silent.accept()
            held.append(conn)  # held open, never answered
            accepted.set()

        threading.Thread(target=accept, daemon=True).start()
        task = asyncio.create_task(check_system(_conn(f"http://127.0.0.1:{silent.getsockname()[1]}"),
                                                deadline=600))
        assert await asyncio.to_thread(accepted.wait, DEADLINE), "the test never connected"
        try:
            assert not task.done()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await asyncio.wait_for(task, DEADLINE)
        finally:
            for conn in held:
                conn.close()


async def test_no_secret_in_any_result_or_log(env: DemoEnvironment, syncdesk_home: Path) -> None:
    from app.logsetup import setup_logging

    setup_logging(verbose=True)
    profiles = [env.profile("demo"), env.readonly_profile()]
    wrong = Profile("wrong", {s: SystemConnection(s, c.kind, c.url, c.settings,
                                                  {k: Secret(v.reveal() + "-wrong") for k, v in c.secrets.items()})
                              for s, c in env.readonly_profile().connections.items()})
    texts: list[str] = []
    for profile in (*profiles, wrong):
        report = await check_profile(profile, deadline=DEADLINE)
        texts.append(repr(report))
        texts += [line for r in report.systems.values() for line in r.lines()]
        texts += list(blocked_fixes(report).values())
    wrong_report = await check_profile(wrong, deadline=DEADLINE)
    assert not any(r.authenticated for r in wrong_report.systems.values())
    secrets = [s for p in (*profiles, wrong) for s in p.all_secrets()]
    joined = "\n".join(texts)
    assert [s[:6] for s in secrets if s in joined] == []
    from tests.connect_support import files_holding

    assert files_holding([syncdesk_home], secrets) == []
