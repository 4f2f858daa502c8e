"""The Zendesk support connector against the demo support server over loopback (and a few
hand-made answers through httpx.MockTransport)."""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest

from services.core.domain import Customer, Entitlement, EventKind, ExternalRef, SupportCase, System, Tier
from services.core.errors import (
    AuthenticationError,
    NotFoundError,
    ProtocolError,
    RemoteValidationError,
    UnavailableError,
)
from services.core.sysdata import Kind, Progress, SystemData
from services.demo.dataset import DemoDataset, generate
from services.demo.faults import FaultConfig, FaultInjector
from services.demo.serving import ThreadedServers
from services.demo.store import SupportStore
from services.demo.zendesk.app import create_app
from services.io.config import Secret, SystemConnection
from services.io.connectors import zendesk as zd
from services.io.connectors.zendesk import ZendeskConnector, zendesk_error_parser
from services.io.http import HttpPolicy

ANCHOR = 1_714_564_800  # 2024-05-01T12:00:00Z: the dataset's "now"
T1 = datetime.fromtimestamp(ANCHOR, UTC) + timedelta(minutes=2)  # the server's clock at the full refresh
FAST = HttpPolicy(rate_per_second=None, max_retries=2, backoff_base=0.01, backoff_max=0.05,
                  connect_timeout=2.0, read_timeout=10.0)


class FakeClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Demo:
    url: str
    ds: DemoDataset
    injector: FaultInjector
    clock: FakeClock

    @property
    def store(self) -> SupportStore:
        return self.ds.support

    def connection(self, token: str | None = None) -> SystemConnection:
        creds = self.ds.credentials
        return SystemConnection(System.SUPPORT, "zendesk", self.url, {"email": creds.zendesk_email},
                                {"api_token": Secret(token or creds.zendesk_token)})

    def connector(self, policy: HttpPolicy = FAST, token: str | None = None) -> ZendeskConnector:
        return ZendeskConnector.create(self.connection(token), policy=policy, clock=self.clock)

    def http(self) -> httpx.Client:
        """A plain client for setting up changes through the API."""
        creds = self.ds.credentials
        return httpx.Client(base_url=self.url, auth=(f"{creds.zendesk_email}/token", creds.zendesk_token),
                            timeout=10)


def serve(customers: int) -> Iterator[Demo]:
    ds = generate(customers, 7, anchor=ANCHOR)
    injector = FaultInjector("support")
    clock = FakeClock(T1)
    with ThreadedServers({"support": create_app(ds.support, injector, clock=clock)}) as servers:
        yield Demo(servers.url("support"), ds, injector, clock)


@pytest.fixture
def demo() -> Iterator[Demo]:
    yield from serve(250)


@pytest.fixture
async def conn(demo: Demo) -> AsyncIterator[ZendeskConnector]:
    connector = demo.connector()
    yield connector
    await connector.aclose()


# --------------------------------------------------------------------------------------
# Expected mapping, computed from the store
# --------------------------------------------------------------------------------------


def expected(store: SupportStore) -> SystemData:
    data = SystemData(System.SUPPORT)
    ext = {oid: o.get("external_id") or None for oid, o in store.organizations.items()}
    for oid, org in store.organizations.items():
        ref = ExternalRef(System.SUPPORT, "organization", str(oid))
        f = org.get("organization_fields") or {}
        data.customers[str(oid)] = Customer(ref, ext[oid], org["name"], created=org["created_at"],
                                            updated=org["updated_at"])
        data.entitlements[str(oid)] = Entitlement(
            ref, ext[oid], Tier(f["support_tier"]) if f.get("support_tier") else None,
            sla_policy=f.get("sla_policy"),
            ends_on=date.fromisoformat(f["entitlement_end"]) if f.get("entitlement_end") else None,
            updated=org["updated_at"])
    for tid, t in store.tickets.items():
        if t["status"] == "deleted":
            continue
        data.cases[str(tid)] = SupportCase(
            ExternalRef(System.SUPPORT, "ticket", str(tid)), ext.get(t.get("organization_id") or 0), t["subject"],
            t["status"], priority=t.get("priority"), created=t["created_at"], updated=t["updated_at"],
            solved_at=t["updated_at"] if t["status"] == "solved" else None)
    return data


def assert_matches_store(data: SystemData, store: SupportStore) -> None:
    want = expected(store)
    assert data.customers == want.customers
    assert data.entitlements == want.entitlements
    assert data.cases == want.cases


# --------------------------------------------------------------------------------------
# Full refresh
# --------------------------------------------------------------------------------------


async def test_full_refresh_maps_every_record_and_reports_progress(demo: Demo, conn: ZendeskConnector) -> None:
    seen: list[Progress] = []
    result = await conn.full_refresh(seen.append)
    data = result.full
    assert data is not None and result.delta is None
    store = demo.store
    assert_matches_store(data, store)
    assert any(c.customer_id is None for c in data.customers.values())  # an unlinked organization
    assert {e.tier for e in data.entitlements.values()} == {None, *Tier}

    # events: one org-created per organization, one ticket-opened per ticket, solved ones
    assert len([k for k in data.events if k.startswith("org-created:")]) == len(store.organizations)
    assert len([k for k in data.events if k.startswith("ticket-opened:")]) == len(store.tickets)
    solved = [k for k in data.events if k.startswith("ticket-solved:")]
    assert len(solved) == sum(1 for t in store.tickets.values() if t["status"] == "solved")
    oid = next(iter(store.organizations))
    event = data.events[f"org-created:{oid}"]
    assert event.kind is EventKind.ORGANIZATION_CREATED and event.at == store.organizations[oid]["created_at"]
    assert event.customer_id == store.organizations[oid]["external_id"] and event.correlation_key is None

    # progress per page, per phase
    orgs = [p.done for p in seen if p.phase == "organizations"]
    assert orgs == [min(100 * (i + 1), len(store.organizations)) for i in range(len(orgs))]
    assert [p.done for p in seen if p.phase == "tickets"][-1] == len(store.tickets)
    assert all(p.system is System.SUPPORT for p in seen)

    # cost: ceil(orgs/100) listing pages + one export page
    pages = math.ceil(len(store.organizations) / 100)
    assert result.requests == conn.requests_made == pages + 1
    assert demo.injector.stats()["total"] == pages + 1
    assert result.cursor["tickets_after_cursor"]
    newest = max(o["updated_at"] for o in store.organizations.values())
    assert result.cursor["orgs_updated_since"] == newest.strftime("%Y-%m-%dT%H:%M:%SZ")
    json.dumps(result.cursor)  # JSON-able


async def test_credentials_never_logged(demo: Demo, conn: ZendeskConnector, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    await conn.full_refresh()
    assert demo.ds.credentials.zendesk_token not in caplog.text
    assert "token:" not in caplog.text


# --------------------------------------------------------------------------------------
# Incremental refresh
# --------------------------------------------------------------------------------------


@pytest.fixture(params=[40, 400], ids=["small", "large"])
def sized_demo(request: pytest.FixtureRequest) -> Iterator[Demo]:
    yield from serve(int(request.param))


async def test_incremental_without_changes_costs_a_constant_few_requests(sized_demo: Demo) -> None:
    connector = sized_demo.connector()
    try:
        full = await connector.full_refresh()
        sized_demo.clock.now = T1 + timedelta(minutes=5)
        assert full.full is not None
        result = await connector.incremental_refresh(full.cursor, full.full)
    finally:
        await connector.aclose()
    assert result.delta is not None
    assert result.requests <= 3
    assert not result.delta.upserts.cases and not result.delta.deletions
    # only organizations inside the search overlap are re-read: unchanged
    for key, customer in result.delta.upserts.customers.items():
        assert full.full.customers[key] == customer
    assert result.cursor["tickets_after_cursor"] == full.cursor["tickets_after_cursor"]
    assert result.cursor["orgs_updated_since"] == full.cursor["orgs_updated_since"]


def make_changes(demo: Demo, k: int) -> dict[str, set[str]]:
    """k organization changes and k ticket changes. A few organizations are updated and
    created through the API, the rest straight in the store (the search reads the store);
    tickets are updated, created and one deleted in the store (the demo has no ticket update
    endpoint). Returns the changed ids."""
    store = demo.store
    when = T1 + timedelta(seconds=10)
    demo.clock.now = when
    changed_orgs: set[str] = set()
    tiers = ["standard", "premium", "enterprise"]
    org_ids = sorted(store.organizations)
    n_created = max(1, k // 4)
    with demo.http() as http:
        for i, oid in enumerate(org_ids[: k - n_created]):
            old = (store.organizations[oid]["organization_fields"] or {}).get("support_tier")
            new = next(t for t in tiers[i % 3:] + tiers if t != old)
            fields = {"support_tier": new, "entitlement_end": "2025-06-30"}
            if i < 4:
                r = http.put(f"/api/v2/organizations/{oid}.json",
                             json={"organization": {"organization_fields": fields}})
                assert r.status_code == 200, r.text
            else:
                with store.lock:
                    store.organizations[oid]["organization_fields"].update(fields)
                    store.organizations[oid]["updated_at"] = when
            changed_orgs.add(str(oid))
        for i in range(n_created):
            body = {"name": f"New Org {i}", "external_id": f"cus_new{i}",
                    "organization_fields": {"support_tier": "premium"}}
            if i < 2:
                r = http.post("/api/v2/organizations.json", json={"organization": body})
                assert r.status_code == 201, r.text
                changed_orgs.add(str(r.json()["organization"]["id"]))
            else:
                with store.lock:
                    oid = store.new_id("organization")
                    store.add_organization({**body, "id": oid, "created_at": when, "updated_at": when,
                                            "organization_fields": {"support_tier": "premium", "sla_policy": None,
                                                                    "entitlement_end": None}})
                changed_orgs.add(str(oid))
    changed_tickets: set[str] = set()
    with store.lock:
        ticket_ids = sorted(store.tickets)
        for tid in ticket_ids[: k - n_created - 1]:
            store.tickets[tid]["status"] = "solved"
            store.tickets[tid]["updated_at"] = when
            changed_tickets.add(str(tid))
        deleted = ticket_ids[-1]
        store.tickets[deleted]["status"] = "deleted"
        store.tickets[deleted]["updated_at"] = when
        new_org = max(store.organizations)
        requester = next(iter(store.users))
        for _ in range(n_created):
            tid = store.new_id("ticket")
            store.tickets[tid] = {"id": tid, "subject": "Fresh ticket", "description": "help", "status": "new",
                                  "priority": "high", "requester_id": requester, "organization_id": new_org,
                                  "created_at": when, "updated_at": when, "tags": []}
            changed_tickets.add(str(tid))
    demo.clock.now = when + timedelta(minutes=2)  # past the export's excluded last minute
    return {"orgs": changed_orgs, "tickets": changed_tickets, "deleted": {str(deleted)}}


@pytest.mark.parametrize("k", [8, 120])
async def test_incremental_picks_up_k_changes_at_a_cost_proportional_to_k(sized_demo: Demo, k: int) -> None:
    demo = sized_demo
    connector = demo.connector()
    try:
        full = await connector.full_refresh()
        snapshot = full.full
        assert snapshot is not None
        k = min(k, len(demo.store.organizations) - 1)
        changes = make_changes(demo, k)
        demo.injector.reset_stats()
        seen: list[Progress] = []
        result = await connector.incremental_refresh(full.cursor, snapshot, seen.append)
    finally:
        await connector.aclose()
    delta = result.delta
    assert delta is not None and result.full is None
    assert changes["orgs"] <= set(delta.upserts.customers) and changes["orgs"] <= set(delta.upserts.entitlements)
    assert changes["tickets"] <= set(delta.upserts.cases)
    assert delta.deletions == {Kind.CASE: changes["deleted"]}
    assert result.requests <= 3 + math.ceil(k / 100) * 2
    assert demo.injector.stats()["total"] == result.requests
    assert seen and {p.phase for p in seen} == {"organizations", "tickets"}

    # folding the delta into the snapshot gives exactly what the store now holds
    snapshot.apply(delta)
    assert_matches_store(snapshot, demo.store)
    # new tickets of a new organization are linked to its external id
    new_cases = [delta.upserts.cases[t] for t in changes["tickets"] if delta.upserts.cases[t].subject == "Fresh ticket"]
    assert new_cases and all(c.customer_id and c.customer_id.startswith("cus_new") for c in new_cases)
    # tier changes are timeline facts
    tier_events = [e for key, e in delta.upserts.events.items() if key.startswith("tier-changed:")]
    assert len(tier_events) == len(changes["orgs"]) - max(1, k // 4)
    assert all(e.kind is EventKind.TIER_CHANGED for e in tier_events)
    # the watermark moved to the newest change
    assert result.cursor["orgs_updated_since"] == (T1 + timedelta(seconds=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert result.cursor["tickets_after_cursor"] != full.cursor["tickets_after_cursor"]


async def test_search_overflow_falls_back_to_a_full_listing(demo: Demo, conn: ZendeskConnector,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    full = await conn.full_refresh()
    assert full.full is not None
    gone = min(demo.store.organizations)
    with demo.store.lock:  # an organization deleted behind our back (the demo has no DELETE)
        del demo.store.organizations[gone]
    make_changes(demo, 12)
    monkeypatch.setattr(zd, "SEARCH_RESULT_CAP", 5)  # 12 changes > the (shrunken) search limit
    result = await conn.incremental_refresh(full.cursor, full.full)
    assert result.delta is not None
    assert set(result.delta.upserts.customers) == {str(o) for o in demo.store.organizations}
    assert result.delta.deletions[Kind.CUSTOMER] == {str(gone)}
    assert result.delta.deletions[Kind.ENTITLEMENT] == {str(gone)}


async def test_relinking_an_organization_moves_its_cases(demo: Demo, conn: ZendeskConnector) -> None:
    full = await conn.full_refresh()
    assert full.full is not None
    store = demo.store
    oid = next(t["organization_id"] for t in store.tickets.values() if t.get("organization_id"))
    demo.clock.now = T1 + timedelta(seconds=10)
    with demo.http() as http:
        r = http.put(f"/api/v2/organizations/{oid}.json", json={"organization": {"external_id": "cus_relinked"}})
        assert r.status_code == 200, r.text
    demo.clock.now = T1 + timedelta(minutes=3)
    result = await conn.incremental_refresh(full.cursor, full.full)
    assert result.delta is not None
    theirs = {str(tid) for tid, t in store.tickets.items() if t.get("organization_id") == oid}
    assert theirs and theirs <= set(result.delta.upserts.cases)
    assert {result.delta.upserts.cases[t].customer_id for t in theirs} == {"cus_relinked"}
    assert result.requests <= 4


async def test_incremental_rejects_a_foreign_cursor(demo: Demo, conn: ZendeskConnector) -> None:
    with pytest.raises(ValueError, match="cursor"):
        await conn.incremental_refresh({"starting_after": "in_1"}, SystemData(System.SUPPORT))


# --------------------------------------------------------------------------------------
# list_ids
# --------------------------------------------------------------------------------------


async def test_list_ids(demo: Demo, conn: ZendeskConnector) -> None:
    ids = await conn.list_ids()
    want = {str(o) for o in demo.store.organizations}
    assert ids == {Kind.CUSTOMER: want, Kind.ENTITLEMENT: want}
    assert conn.requests_made == math.ceil(len(want) / 100)


# --------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------


async def test_wrong_token_is_an_authentication_error(demo: Demo) -> None:
    connector = demo.connector(token="wrong")
    try:
        with pytest.raises(AuthenticationError) as info:
            await connector.full_refresh()
    finally:
        await connector.aclose()
    assert info.value.status == 401
    assert "wrong" not in str(info.value)
    assert connector.requests_made == 1  # not retried


async def test_unknown_organization_is_not_found(conn: ZendeskConnector) -> None:
    with pytest.raises(NotFoundError) as info:
        await conn.get_organization(999)
    assert info.value.vendor_code == "RecordNotFound"


async def test_invalid_update_is_a_remote_validation_error_with_the_vendor_details(
        demo: Demo, conn: ZendeskConnector) -> None:
    oid = min(demo.store.organizations)
    with pytest.raises(RemoteValidationError) as info:
        await conn.update_organization_fields(oid, {"support_tier": "platinum"})
    assert info.value.status == 422 and info.value.vendor_code == "RecordInvalid"
    assert "support_tier" in info.value.message and "platinum" in info.value.message


@dataclass
class Arrival:
    """One request as the server saw it: when it arrived, and when and how it was answered."""

    path: str
    arrived: float  # time.monotonic()
    status: int = 0
    answered: float = 0.0
    retry_after: str | None = None


class RequestLog:
    """ASGI middleware in front of the whole demo server (faults included): every request's times."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.arrivals: list[Arrival] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        arrival = Arrival(scope["path"], time.monotonic())
        self.arrivals.append(arrival)

        async def recording(message: Any) -> None:
            if message["type"] == "http.response.start":
                arrival.status, arrival.answered = message["status"], time.monotonic()
                headers = {k.decode().lower(): v.decode() for k, v in message.get("headers", [])}
                arrival.retry_after = headers.get("retry-after")
            await send(message)

        await self.app(scope, receive, recording)


async def test_rate_limit_is_retried_honouring_retry_after() -> None:
    """After each 429 the retry reaches the server no sooner than the answer's Retry-After (measured
    by the server's own request log), although the policy's backoff alone would wait at most 50 ms."""
    ds = generate(20, 7, anchor=ANCHOR)
    injector = FaultInjector("support", FaultConfig(rate_limit=3))  # burst of 3, then 429 with Retry-After: 1
    log = RequestLog(create_app(ds.support, injector, clock=FakeClock(T1)))
    with ThreadedServers({"support": log}) as servers:
        demo = Demo(servers.url("support"), ds, injector, FakeClock(T1))
        conn = demo.connector()
        try:
            oid = min(demo.store.organizations)
            for _ in range(5):
                org = await conn.get_organization(oid)
                assert org.id == oid
        finally:
            await conn.aclose()
    assert FAST.backoff_max < 1
    limited = [i for i, a in enumerate(log.arrivals) if a.status == 429]
    assert limited and injector.injected["429"] == len(limited)
    assert conn.client.stats.rate_limited == len(limited) and conn.client.stats.retries >= len(limited)
    assert log.arrivals[-1].status == 200 and len(log.arrivals) == 5 + len(limited)
    tolerance = 0.02  # clock reads on either side of the loopback hop
    for i in limited:
        answer, retry = log.arrivals[i], log.arrivals[i + 1]
        assert answer.retry_after is not None and int(answer.retry_after) >= 1
        waited = retry.arrived - answer.answered
        assert waited >= int(answer.retry_after) - tolerance, f"retried {waited:.3f} s after a 429 (Retry-After " \
                                                              f"{answer.retry_after})"
        assert retry.path == answer.path


async def test_outage_is_unavailable_fast(demo: Demo) -> None:
    demo.injector.config.outage = True
    connector = demo.connector(HttpPolicy(rate_per_second=None, max_retries=1, backoff_base=0.01,
                                          backoff_max=0.02))
    try:
        with pytest.raises(UnavailableError) as info:
            await connector.full_refresh()
    finally:
        await connector.aclose()
    assert info.value.status == 503
    assert connector.requests_made == 2  # one retry


async def test_schema_violating_organization_in_the_store_is_quarantined(
        demo: Demo, conn: ZendeskConnector) -> None:
    """A refresh quarantines the organization (the others are read); read on its own it is a
    ProtocolError naming it."""
    oid = sorted(demo.store.organizations)[150]  # on the second page
    demo.store.organizations[oid]["organization_fields"]["support_tier"] = "platinum"
    result = await conn.full_refresh()
    assert result.full is not None
    entry = result.full.quarantined[("customer", str(oid))]
    assert "platinum" in entry.reason and len(result.full.quarantined) == 1
    assert str(oid) not in result.full.customers and str(oid) not in result.full.entitlements
    assert len(result.full.customers) == len(demo.store.organizations) - 1
    with pytest.raises(ProtocolError) as info:
        await conn.get_organization(oid)
    assert f"organization {oid}" in str(info.value) and "platinum" in str(info.value)


async def test_malformed_entitlement_date_is_quarantined(demo: Demo, conn: ZendeskConnector) -> None:
    oid = min(demo.store.organizations)
    demo.store.organizations[oid]["organization_fields"]["entitlement_end"] = "31/12/2025"
    result = await conn.full_refresh()
    assert result.full is not None
    assert "entitlement_end" in result.full.quarantined[("customer", str(oid))].reason
    with pytest.raises(ProtocolError, match=f"organization {oid}: entitlement_end"):
        await conn.get_organization(oid)


# --------------------------------------------------------------------------------------
# Hand-made answers (MockTransport)
# --------------------------------------------------------------------------------------

ORG = {"id": 101, "name": "Acme", "external_id": "cus_1", "created_at": "2024-01-01T00:00:00Z",
       "updated_at": "2024-02-01T00:00:00Z",
       "organization_fields": {"support_tier": "premium", "sla_policy": "8h", "entitlement_end": "2025-01-31"}}


def mock_connector(handler: Callable[[httpx.Request], httpx.Response]) -> ZendeskConnector:
    conn = SystemConnection(System.SUPPORT, "zendesk", "https://acme.zendesk.com", {"email": "a@acme.example"},
                            {"api_token": Secret("s3cret")})
    return ZendeskConnector.create(conn, policy=FAST, transport=httpx.MockTransport(handler))


def org_page(*orgs: Any) -> dict[str, Any]:
    return {"organizations": list(orgs), "meta": {"has_more": False, "after_cursor": None},
            "links": {"next": None}}


@pytest.mark.parametrize(("body", "match"), [
    (b"<html>oops</html>", "not JSON"),
    (b"[1, 2]", "not a JSON object"),
    (json.dumps({"organisations": []}).encode(), "organizations"),
    (json.dumps(org_page(ORG) | {"meta": {"has_more": True}}).encode(), "links.next is missing"),
])
async def test_malformed_answers_are_protocol_errors(body: bytes, match: str) -> None:
    connector = mock_connector(lambda request: httpx.Response(200, content=body))
    try:
        with pytest.raises(ProtocolError, match=match):
            await connector.full_refresh()
    finally:
        await connector.aclose()


@pytest.mark.parametrize(("org", "match"), [
    ({**ORG, "id": "101"}, "id"),
    ({**ORG, "updated_at": "yesterday"}, "updated_at"),
    ({**ORG, "updated_at": "2024-02-01T00:00:00"}, "updated_at"),
    ({**ORG, "organization_fields": {"support_tier": 3}}, "support_tier must be text"),
])
async def test_malformed_organizations_are_quarantined_not_fatal(org: dict[str, Any], match: str) -> None:
    """One organization of a page that does not match the protocol is quarantined with its
    reason; the good one beside it is read, and so are the tickets."""
    good = {**ORG, "id": 102, "external_id": "cus_2"}
    ticket = {"id": 7, "status": "open", "organization_id": 102, "created_at": "2024-03-01T10:00:00Z",
              "updated_at": "2024-03-02T10:00:00Z"}

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/v2/organizations.json":
            return httpx.Response(200, json=org_page(org, good))
        return httpx.Response(200, json={"tickets": [ticket], "after_cursor": "c1", "end_of_stream": True,
                                         "after_url": None})

    connector = mock_connector(handler)
    try:
        result = await connector.full_refresh()
    finally:
        await connector.aclose()
    assert result.full is not None
    (entry,) = result.full.quarantined.values()
    assert (entry.system, entry.kind, entry.record_id) == (System.SUPPORT, "customer", "101")
    assert match in entry.reason
    assert set(result.full.customers) == {"102"} and set(result.full.cases) == {"7"}


async def test_mock_full_refresh_sends_basic_auth_and_maps(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[httpx.Request] = []
    ticket = {"id": 7, "status": "closed", "subject": "Printer", "organization_id": 101, "requester_id": 1,
              "created_at": "2024-03-01T10:00:00Z", "updated_at": "2024-03-09T10:00:00Z"}
    deleted = {**ticket, "id": 8, "status": "deleted"}

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == "/api/v2/organizations.json":
            return httpx.Response(200, json=org_page(ORG))
        return httpx.Response(200, json={
            "tickets": [ticket, deleted], "after_cursor": "c1", "end_of_stream": True,
            "after_url": "https://acme.zendesk.com/api/v2/incremental/tickets/cursor.json?cursor=c1",
            "metric_sets": [{"ticket_id": 7, "solved_at": "2024-03-05T10:00:00Z"}]})

    connector = mock_connector(handler)
    try:
        result = await connector.full_refresh()
    finally:
        await connector.aclose()
    auth = seen[0].headers["Authorization"]
    assert auth == httpx.BasicAuth("a@acme.example/token", "s3cret")._auth_header
    assert seen[0].url.params["page[size]"] == "100" and seen[1].url.params["start_time"] == "0"
    data = result.full
    assert data is not None
    assert data.entitlements["101"] == Entitlement(ExternalRef(System.SUPPORT, "organization", "101"), "cus_1",
                                                   Tier.PREMIUM, "8h", date(2025, 1, 31),
                                                   datetime(2024, 2, 1, tzinfo=UTC))
    case = data.cases["7"]
    assert case.customer_id == "cus_1" and case.solved_at == datetime(2024, 3, 5, 10, tzinfo=UTC)
    assert data.events["ticket-solved:7"].at == case.solved_at
    assert "8" not in data.cases
    assert result.cursor == {"tickets_after_cursor": "c1", "orgs_updated_since": "2024-02-01T00:00:00Z"}


async def test_page_links_to_another_host_are_refused() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=org_page(ORG) | {
            "meta": {"has_more": True}, "links": {"next": "https://evil.example/api/v2/organizations.json"}})

    connector = mock_connector(handler)
    try:
        with pytest.raises(ProtocolError, match="another host"):
            await connector.list_ids()
    finally:
        await connector.aclose()


async def test_create_is_not_retried_on_a_server_error() -> None:
    posts: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return httpx.Response(200, json={"organizations": [], "next_page": None, "count": 0})
        posts.append(request)
        return httpx.Response(500, json={"error": "InternalServerError", "description": "boom"})

    connector = mock_connector(handler)
    try:
        with pytest.raises(UnavailableError, match="boom"):
            await connector.create_organization("Acme", "cus_1", {"support_tier": "premium"})
    finally:
        await connector.aclose()
    assert len(posts) == 1
    assert json.loads(posts[0].content) == {"organization": {"name": "Acme", "external_id": "cus_1",
                                                             "organization_fields": {"support_tier": "premium"}}}


def test_error_parser_reads_both_envelopes() -> None:
    def parse(status: int, body: Any) -> tuple[str, str | None]:
        return zendesk_error_parser(httpx.Response(status, json=body))

    assert parse(422, {"error": "RecordInvalid", "description": "Record validation errors",
                       "details": {"name": [{"description": "Name: cannot be blank", "error": "BlankValue"}]}}) == (
        "Record validation errors; name: Name: cannot be blank", "RecordInvalid")
    assert parse(400, {"errors": [{"code": "InvalidPaginationParameter", "title": "cursor is not valid"}]}) == (
        "cursor is not valid", "InvalidPaginationParameter")
    assert parse(401, {"error": "Couldn't authenticate you"}) == ("Couldn't authenticate you",
                                                                  "Couldn't authenticate you")
    assert parse(403, {"error": {"title": "Forbidden", "message": "You do not have access"}}) == (
        "You do not have access", "Forbidden")


# --------------------------------------------------------------------------------------
# Writes
# --------------------------------------------------------------------------------------


async def test_create_organization_is_idempotent(demo: Demo, conn: ZendeskConnector) -> None:
    before = len(demo.store.organizations)
    first = await conn.create_organization("Brand New Ltd", "cus_brand_new", {"support_tier": "enterprise",
                                                                              "sla_policy": "4h"})
    again = await conn.create_organization("Brand New Ltd", "cus_brand_new", {"support_tier": "enterprise"})
    assert first.id == again.id and len(demo.store.organizations) == before + 1
    assert first.customer.customer_id == "cus_brand_new" and first.entitlement.tier is Tier.ENTERPRISE
    assert first.entitlement.sla_policy == "4h"
    posts = {k: v for k, v in demo.injector.stats()["requests"].items() if k.startswith("POST")}
    assert sum(posts.values()) == 1


async def test_update_and_get_organization(demo: Demo, conn: ZendeskConnector) -> None:
    oid = min(demo.store.organizations)
    fields = {"support_tier": "enterprise", "sla_policy": "1h", "entitlement_end": "2026-03-31"}
    updated = await conn.update_organization_fields(oid, fields)
    again = await conn.update_organization_fields(oid, fields)  # a PUT: repeating it is harmless
    assert updated.entitlement.tier is Tier.ENTERPRISE and updated.entitlement.ends_on == date(2026, 3, 31)
    assert again.entitlement == updated.entitlement
    got = await conn.get_organization(str(oid))
    assert got.entitlement == updated.entitlement and got.fields["sla_policy"] == "1h"
    assert demo.store.organizations[oid]["organization_fields"]["support_tier"] == "enterprise"
