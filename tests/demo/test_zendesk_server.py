"""The Zendesk-compatible demo support server, held against zenpy and the official OpenAPI subset."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from zenpy import Zenpy
from zenpy.lib.api_objects import Comment, Organization, Ticket, User
from zenpy.lib.exception import APIException, RecordNotFoundException

from services.demo.faults import FaultInjector
from services.demo.serving import ThreadedServers
from services.demo.store import SupportStore
from services.demo.zendesk.app import create_app
from services.demo.zendesk.serializers import render_organization
from tests.specs import validate_response

EMAIL = "agent@x.example"
TOKEN = "tok"
NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
N_ORGS = 7
N_TICKETS = 9


class FakeClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def build_store() -> SupportStore:
    store = SupportStore()
    store.tokens[EMAIL] = TOKEN
    tiers = ["standard", "premium", "enterprise", None]
    for i in range(N_ORGS):
        oid = store.new_id("organization")
        created = NOW - timedelta(days=100 - i)
        store.add_organization({
            "id": oid, "name": f"Org {i}", "external_id": f"cus_{i:03d}", "domain_names": [f"org{i}.example"],
            "details": None, "notes": None, "group_id": None, "shared_tickets": False,
            "shared_comments": False, "tags": ["demo"],
            "organization_fields": {"support_tier": tiers[i % 4], "sla_policy": "24h" if i % 2 else None,
                                    "entitlement_end": "2025-01-31" if i == 0 else None},
            "created_at": created, "updated_at": created,
        })
    org_ids = sorted(store.organizations)
    for email, role, org in ((EMAIL, "agent", None), ("alice@org0.example", "end-user", org_ids[0]),
                             ("bob@org1.example", "end-user", org_ids[1])):
        uid = store.new_id("user")
        store.users[uid] = {"id": uid, "name": email.split("@")[0].title(), "email": email, "role": role,
                            "organization_id": org, "active": True, "created_at": NOW - timedelta(days=90),
                            "updated_at": NOW - timedelta(days=90)}
    requesters = sorted(store.users)[1:]
    statuses = ["new", "open", "pending", "solved", "closed", "open", "hold", "open", "new"]
    for i in range(N_TICKETS):
        tid = store.new_id("ticket")
        # ticket i updated i hours ago, except the last one: 30 s ago (inside the excluded minute)
        updated = NOW - timedelta(seconds=30) if i == N_TICKETS - 1 else NOW - timedelta(hours=N_TICKETS - i)
        store.tickets[tid] = {
            "id": tid, "subject": f"Printer {i} on fire", "description": f"Ticket body {i}",
            "status": statuses[i], "priority": "high" if i % 3 == 0 else None, "type": None,
            "requester_id": requesters[i % 2], "organization_id": org_ids[i % 2],
            "tags": [], "via": {"channel": "email"}, "created_at": updated - timedelta(days=1),
            "updated_at": updated,
        }
    return store


@dataclass
class Served:
    url: str
    store: SupportStore
    injector: FaultInjector
    clock: FakeClock

    @property
    def netloc(self) -> str:
        return urlsplit(self.url).netloc


@pytest.fixture
def served() -> Iterator[Served]:
    store = build_store()
    injector = FaultInjector("support")
    clock = FakeClock(NOW)
    with ThreadedServers({"support": create_app(store, injector, clock=clock)}) as servers:
        yield Served(servers.url("support"), store, injector, clock)


def basic(email: str = EMAIL, token: str = TOKEN) -> dict[str, str]:
    raw = base64.b64encode(f"{email}/token:{token}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


@pytest.fixture
def client(served: Served) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served.url, headers=basic(), timeout=10) as c:
        yield c


def spec_path(url: str) -> str:
    path = urlsplit(url).path
    return path[:-5] if path.endswith(".json") else path


def check(resp: httpx.Response, status: int = 200) -> Any:
    """Assert the status and validate the body against the official subset."""
    assert resp.status_code == status, resp.text
    body = resp.json()
    validate_response("zendesk", resp.request.method, spec_path(str(resp.request.url)), status, body)
    return body


def check_error(resp: httpx.Response, status: int, error: str) -> dict[str, Any]:
    """Errors the subset does not describe: Zendesk's ``{"error", "description"}`` envelope."""
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert body["error"] == error
    return dict(body)


def org_ids(store: SupportStore) -> list[int]:
    return sorted(store.organizations)


# --------------------------------------------------------------------------------------
# zenpy against the server
# --------------------------------------------------------------------------------------


@pytest.fixture
def zenpy_client(served: Served, monkeypatch: pytest.MonkeyPatch) -> Zenpy:
    monkeypatch.setenv("ZENPY_FORCE_SCHEME", "http")
    monkeypatch.setenv("ZENPY_FORCE_NETLOC", served.netloc)
    return Zenpy(subdomain="x", email=EMAIL, token=TOKEN, disable_cache=True, timeout=10)


def test_zenpy_lists_organizations_across_cursor_pages(served: Served, zenpy_client: Zenpy) -> None:
    orgs = list(zenpy_client.organizations(cursor_pagination=2))
    assert [o.id for o in orgs] == org_ids(served.store)
    assert orgs[0].external_id == "cus_000"
    assert orgs[0].organization_fields["support_tier"] == "standard"
    listed = served.injector.requests["GET /api/v2/organizations.json"]
    assert listed == 4  # 7 organizations, 2 per page


def test_zenpy_lists_organizations_with_offset_pages(served: Served, zenpy_client: Zenpy) -> None:
    # default: zenpy asks for page[size]=100 -> one page
    assert len(list(zenpy_client.organizations())) == N_ORGS
    # offset pagination: zenpy follows next_page
    first = zenpy_client.organizations(cursor_pagination=False)
    assert len(first) == N_ORGS  # the count
    assert [o.id for o in first] == org_ids(served.store)


def test_zenpy_show_create_update_organization(served: Served, zenpy_client: Zenpy) -> None:
    first = org_ids(served.store)[0]
    shown = zenpy_client.organizations(id=first)
    assert shown.name == "Org 0" and shown.external_id == "cus_000"

    created = zenpy_client.organizations.create(Organization(
        name="Zen Corp", external_id="cus_zen",
        organization_fields={"support_tier": "premium", "sla_policy": "8h"}))
    assert created.id > first and created.name == "Zen Corp"
    assert created.organization_fields == {"support_tier": "premium", "sla_policy": "8h"}
    assert served.store.orgs_by_external_id["cus_zen"] == created.id

    org = zenpy_client.organizations(id=created.id)
    org.organization_fields = {"support_tier": "enterprise"}
    served.clock.now = NOW + timedelta(minutes=5)
    updated = zenpy_client.organizations.update(org)
    assert updated.organization_fields == {"support_tier": "enterprise", "sla_policy": "8h"}
    assert served.store.organizations[created.id]["updated_at"] == NOW + timedelta(minutes=5)

    with pytest.raises(RecordNotFoundException):
        zenpy_client.organizations(id=1)
    with pytest.raises(APIException, match="RecordInvalid"):
        zenpy_client.organizations.create(Organization(name="Other", external_id="cus_zen"))


def test_zenpy_search_organization_by_external_id(served: Served, zenpy_client: Zenpy) -> None:
    results = list(zenpy_client.search(type="organization", external_id="cus_003"))
    assert len(results) == 1
    assert isinstance(results[0], Organization)
    assert results[0].id == org_ids(served.store)[3]
    assert list(zenpy_client.search(type="organization", external_id="cus_nope")) == []


def test_zenpy_users_list_create_show(served: Served, zenpy_client: Zenpy) -> None:
    users = list(zenpy_client.users(cursor_pagination=2))
    assert [u.email for u in users] == [EMAIL, "alice@org0.example", "bob@org1.example"]
    created = zenpy_client.users.create(User(name="Carol", email="carol@org2.example",
                                             organization_id=org_ids(served.store)[2]))
    assert created.id in served.store.users and created.role == "end-user"
    shown = zenpy_client.users(id=created.id)
    assert shown.email == "carol@org2.example"
    with pytest.raises(APIException, match="DuplicateValue"):
        zenpy_client.users.create(User(name="Carol again", email="CAROL@org2.example"))


def test_zenpy_tickets_list_create_show(served: Served, zenpy_client: Zenpy) -> None:
    tickets = list(zenpy_client.tickets(cursor_pagination=4))
    assert [t.id for t in tickets] == sorted(served.store.tickets)
    requester = sorted(served.store.users)[1]
    audit = zenpy_client.tickets.create(Ticket(
        subject="Need help", comment=Comment(body="It broke"), requester_id=requester,
        organization_id=org_ids(served.store)[0], priority="urgent"))
    ticket = audit.ticket
    assert ticket.subject == "Need help" and ticket.status == "new" and ticket.priority == "urgent"
    assert ticket.description == "It broke"
    shown = zenpy_client.tickets(id=ticket.id)
    assert shown.requester_id == requester


def test_zenpy_incremental_tickets(served: Served, zenpy_client: Zenpy) -> None:
    exported = list(zenpy_client.tickets.incremental(start_time=0, per_page=2))
    ids = sorted(served.store.tickets)
    assert [t.id for t in exported] == ids[:-1]  # the last one was updated in the last minute
    assert served.injector.requests["GET /api/v2/incremental/tickets/cursor.json"] == 4

    since = int((NOW - timedelta(hours=3, minutes=30)).timestamp())
    recent = list(zenpy_client.tickets.incremental(start_time=since))
    assert [t.id for t in recent] == ids[-3:-1]  # updated 3 h and 2 h ago


# --------------------------------------------------------------------------------------
# Raw HTTP: every operation against the spec
# --------------------------------------------------------------------------------------


def test_organizations_operations_validate(served: Served, client: httpx.Client) -> None:
    base = served.url
    body = check(client.get("/api/v2/organizations"))
    assert body["count"] == N_ORGS and body["next_page"] is None and body["previous_page"] is None
    assert [o["id"] for o in body["organizations"]] == org_ids(served.store)
    first = body["organizations"][0]
    assert first["url"] == f"{base}/api/v2/organizations/{first['id']}.json"
    assert first["created_at"].endswith("Z")
    assert first["organization_fields"] == {"support_tier": "standard", "entitlement_end": "2025-01-31"}

    for suffix in ("", ".json"):
        shown = check(client.get(f"/api/v2/organizations/{first['id']}{suffix}"))
        assert shown["organization"] == first

    resp = client.post("/api/v2/organizations.json", json={"organization": {
        "name": "New Co", "external_id": "cus_new", "tags": ["x"],
        "organization_fields": {"support_tier": "enterprise", "entitlement_end": "2025-12-31"}}})
    created = check(resp, 201)["organization"]
    assert resp.headers["Location"] == created["url"]
    assert created["organization_fields"] == {"support_tier": "enterprise", "entitlement_end": "2025-12-31"}

    served.clock.now = NOW + timedelta(hours=1)
    resp = client.put(f"/api/v2/organizations/{created['id']}", json={"organization": {
        "external_id": "cus_new2", "organization_fields": {"sla_policy": "4h"}}})
    updated = check(resp)["organization"]
    assert updated["organization_fields"] == {"support_tier": "enterprise", "sla_policy": "4h",
                                              "entitlement_end": "2025-12-31"}
    assert updated["updated_at"] == "2024-05-01T13:00:00Z"
    assert updated["created_at"] == created["created_at"]
    assert served.store.orgs_by_external_id.get("cus_new2") == created["id"]
    assert "cus_new" not in served.store.orgs_by_external_id

    for params in ({"external_id": "cus_new2"}, {"name": "new co"}):
        found = check(client.get("/api/v2/organizations/search.json", params=params))
        assert [o["id"] for o in found["organizations"]] == [created["id"]]
    assert check(client.get("/api/v2/organizations/search", params={"external_id": "x"}))["count"] == 0

    fields = check(client.get("/api/v2/organization_fields.json"))["organization_fields"]
    assert [f["key"] for f in fields] == ["support_tier", "sla_policy", "entitlement_end"]
    assert [o["value"] for o in fields[0]["custom_field_options"]] == ["standard", "premium", "enterprise"]
    assert check(client.get("/api/v2/organization_fields"))["organization_fields"] == fields


def test_users_and_tickets_operations_validate(served: Served, client: httpx.Client) -> None:
    users = check(client.get("/api/v2/users.json"))
    assert len(users["users"]) == 3 and users["count"] == 3
    agents = check(client.get("/api/v2/users", params={"role": "agent"}))["users"]
    assert [u["email"] for u in agents] == [EMAIL]
    uid = users["users"][1]["id"]
    assert check(client.get(f"/api/v2/users/{uid}.json"))["user"]["email"] == "alice@org0.example"
    resp = client.post("/api/v2/users", json={"user": {"name": "Dan", "email": "dan@x.example",
                                                       "role": "agent"}})
    dan = check(resp, 201)["user"]
    assert dan["role"] == "agent" and resp.headers["Location"].endswith(f"/api/v2/users/{dan['id']}.json")

    tickets = check(client.get("/api/v2/tickets.json"))
    assert [t["id"] for t in tickets["tickets"]] == sorted(served.store.tickets)
    assert "priority" not in tickets["tickets"][1]  # unknown: left out (the spec has no null here)
    tid = tickets["tickets"][0]["id"]
    shown = check(client.get(f"/api/v2/tickets/{tid}"))["ticket"]
    assert shown["url"] == f"{served.url}/api/v2/tickets/{tid}.json" and shown["status"] == "new"

    org = org_ids(served.store)[1]
    resp = client.post("/api/v2/tickets.json", json={"ticket": {
        "subject": "Hi", "comment": {"body": "Help"}, "organization_id": org, "requester_id": uid,
        "priority": "low"}})
    ticket = check(resp, 201)["ticket"]
    assert ticket["organization_id"] == org and ticket["priority"] == "low" and ticket["description"] == "Help"
    assert resp.headers["Location"] == ticket["url"]
    # requester defaults to the authenticated agent
    own = check(client.post("/api/v2/tickets", json={"ticket": {"comment": {"body": "Mine"}}}), 201)
    assert own["ticket"]["requester_id"] == users["users"][0]["id"]


def test_search_operations_validate(served: Served, client: httpx.Client) -> None:
    def search(query: str, **params: Any) -> dict[str, Any]:
        return dict(check(client.get("/api/v2/search.json", params={"query": query, **params})))

    found = search("type:organization external_id:cus_002")
    assert [(r["result_type"], r["id"]) for r in found["results"]] == [
        ("organization", org_ids(served.store)[2])]
    org = org_ids(served.store)[0]
    open_ = search(f"type:ticket organization:{org} status:open")
    assert {r["id"] for r in open_["results"]} == {
        t["id"] for t in served.store.tickets.values() if t["organization_id"] == org and t["status"] == "open"}
    assert all(r["result_type"] == "ticket" for r in open_["results"])
    assert search("type:ticket status<solved")["count"] == 7
    assert search("type:organization support_tier:premium")["count"] == 2
    text = search("printer")
    assert text["count"] == N_TICKETS and {r["result_type"] for r in text["results"]} == {"ticket"}
    assert search('"Org 3"')["results"][0]["name"] == "Org 3"
    assert search("alice")["results"][0]["result_type"] == "user"
    paged = search("type:ticket", per_page=4, page=2, sort_by="created_at", sort_order="asc")
    assert paged["count"] == N_TICKETS and len(paged["results"]) == 4
    assert paged["next_page"] is not None and paged["previous_page"] is not None
    assert [r["id"] for r in paged["results"]] == sorted(served.store.tickets)[4:8]
    # search is offset-only and capped at 1,000 results
    resp = client.get("/api/v2/search", params={"query": "printer", "page": 11, "per_page": 100})
    check_error(resp, 422, "invalid")


# --------------------------------------------------------------------------------------
# Pagination edges
# --------------------------------------------------------------------------------------


def test_cursor_pagination_edges(served: Served, client: httpx.Client) -> None:
    ids = org_ids(served.store)
    page1 = check(client.get("/api/v2/organizations.json", params={"page[size]": 3}))
    assert [o["id"] for o in page1["organizations"]] == ids[:3]
    assert page1["meta"]["has_more"] is True and page1["links"]["prev"] is None
    assert "count" not in page1 and "next_page" not in page1
    nxt = page1["links"]["next"]
    assert nxt.startswith(f"{served.url}/api/v2/organizations.json?")
    assert parse_qs(urlsplit(nxt).query)["page[after]"] == [page1["meta"]["after_cursor"]]

    page2 = check(client.get(nxt))
    assert [o["id"] for o in page2["organizations"]] == ids[3:6]
    page3 = check(client.get(page2["links"]["next"]))
    assert [o["id"] for o in page3["organizations"]] == ids[6:]
    assert page3["meta"]["has_more"] is False and page3["links"]["next"] is None
    assert page3["links"]["prev"] is not None

    back = check(client.get(page3["links"]["prev"]))
    assert [o["id"] for o in back["organizations"]] == ids[3:6] and back["meta"]["has_more"] is True
    back2 = check(client.get(back["links"]["prev"]))
    assert [o["id"] for o in back2["organizations"]] == ids[:3] and back2["meta"]["has_more"] is False

    exact = check(client.get("/api/v2/organizations", params={"page[size]": N_ORGS}))
    assert exact["meta"]["has_more"] is False and exact["links"] == {"next": None, "prev": None}
    past = check(client.get("/api/v2/organizations", params={
        "page[size]": 2, "page[after]": page3["meta"]["after_cursor"]}))
    assert past["organizations"] == [] and past["meta"] == {
        "has_more": False, "after_cursor": None, "before_cursor": None}

    too_big = client.get("/api/v2/organizations", params={"page[size]": 101})
    assert too_big.status_code == 400
    assert too_big.json()["errors"][0]["code"] == "InvalidPaginationParameter"
    bad = client.get("/api/v2/tickets", params={"page[size]": 2, "page[after]": "!!notacursor"})
    assert bad.status_code == 400
    assert check(client.get("/api/v2/users", params={"page[size]": 100}))["meta"]["has_more"] is False


def test_offset_pagination_edges(served: Served, client: httpx.Client) -> None:
    ids = org_ids(served.store)
    p1 = check(client.get("/api/v2/organizations", params={"per_page": 3}))
    assert [o["id"] for o in p1["organizations"]] == ids[:3]
    assert p1["count"] == N_ORGS and p1["previous_page"] is None
    assert p1["next_page"] == f"{served.url}/api/v2/organizations?per_page=3&page=2"
    p3 = check(client.get("/api/v2/organizations", params={"per_page": 3, "page": 3}))
    assert [o["id"] for o in p3["organizations"]] == ids[6:]
    assert p3["next_page"] is None and p3["previous_page"].endswith("page=2")
    beyond = check(client.get("/api/v2/organizations", params={"per_page": 3, "page": 4}))
    assert beyond["organizations"] == [] and beyond["next_page"] is None
    clamped = check(client.get("/api/v2/organizations", params={"per_page": 500}))
    assert len(clamped["organizations"]) == N_ORGS

    # offset pagination reaches only the first 10,000 records
    assert client.get("/api/v2/organizations", params={"per_page": 100, "page": 100}).status_code == 200
    capped = client.get("/api/v2/tickets.json", params={"per_page": 100, "page": 101})
    assert capped.status_code == 400
    assert capped.json()["errors"][0]["code"] == "InvalidPaginationParameter"
    assert client.get("/api/v2/users", params={"per_page": 10, "page": 1001}).status_code == 400


def test_offset_pagination_caps_at_ten_thousand_records(served: Served, client: httpx.Client) -> None:
    store = served.store
    with store.lock:
        template = store.organizations[org_ids(store)[0]]
        for i in range(10_050):
            oid = store.new_id("organization")
            store.add_organization({**template, "id": oid, "name": f"Bulk {i}", "external_id": f"cus_b{i}"})
    total = N_ORGS + 10_050
    last = check(client.get("/api/v2/organizations", params={"per_page": 100, "page": 100}))
    assert last["count"] == total and len(last["organizations"]) == 100
    assert last["organizations"][-1]["id"] == org_ids(store)[9_999]
    assert client.get(last["next_page"]).status_code == 400
    # cursor pagination goes on past the cap
    after = encode_id_cursor(org_ids(store)[9_999])
    more = check(client.get("/api/v2/organizations", params={"page[size]": 100, "page[after]": after}))
    assert [o["id"] for o in more["organizations"]] == org_ids(store)[10_000:10_057]


def encode_id_cursor(rid: int) -> str:
    return base64.urlsafe_b64encode(f"id:{rid}".encode()).decode().rstrip("=")


# --------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("headers", [
    {},
    basic(token="wrong"),
    basic(email="someone@x.example"),
    {"Authorization": "Bearer wrong"},
    {"Authorization": "Basic " + base64.b64encode(f"{EMAIL}:{TOKEN}".encode()).decode()},
])
def test_unauthenticated(served: Served, headers: dict[str, str]) -> None:
    resp = httpx.get(f"{served.url}/api/v2/organizations.json", headers=headers)
    assert resp.status_code == 401
    assert resp.json() == {"error": "Couldn't authenticate you"}


def test_bearer_token_accepted(served: Served) -> None:
    resp = httpx.get(f"{served.url}/api/v2/users.json", headers={"Authorization": f"Bearer {TOKEN}"})
    check(resp)


def test_not_found(served: Served, client: httpx.Client) -> None:
    for path in ("/api/v2/organizations/1.json", "/api/v2/users/99", "/api/v2/tickets/12345.json",
                 "/api/v2/organizations/abc"):
        body = check_error(client.get(path), 404, "RecordNotFound")
        assert body["description"] == "Not found"
    assert check_error(client.put("/api/v2/organizations/5", json={"organization": {"name": "x"}}),
                       404, "RecordNotFound")


def test_record_invalid(served: Served, client: httpx.Client) -> None:
    def create(org: dict[str, Any]) -> dict[str, Any]:
        return check_error(client.post("/api/v2/organizations", json={"organization": org}),
                           422, "RecordInvalid")

    dup = create({"name": "Org 0", "external_id": "cus_fresh"})
    assert dup["description"] == "Record validation errors"
    assert dup["details"] == {"name": [{"description": "Name: has already been taken",
                                        "error": "DuplicateValue"}]}
    dup_ext = create({"name": "Fresh", "external_id": "cus_001"})
    assert dup_ext["details"]["external_id"][0]["error"] == "DuplicateValue"
    assert create({"external_id": "cus_fresh"})["details"]["name"][0]["error"] == "BlankValue"
    tier = create({"name": "Fresh", "organization_fields": {"support_tier": "platinum"}})
    assert "support_tier" in tier["details"]
    assert "entitlement_end" in create({"name": "Fresh", "organization_fields": {"entitlement_end": "soon"}})[
        "details"]

    first = org_ids(served.store)[0]
    resp = client.put(f"/api/v2/organizations/{first}",
                      json={"organization": {"organization_fields": {"support_tier": "gold"}}})
    check_error(resp, 422, "RecordInvalid")
    resp = client.put(f"/api/v2/organizations/{first}", json={"organization": {"external_id": "cus_001"}})
    check_error(resp, 422, "RecordInvalid")
    assert served.store.organizations[first]["organization_fields"]["support_tier"] == "standard"
    # renaming to its own name / keeping its own external id is fine
    check(client.put(f"/api/v2/organizations/{first}",
                     json={"organization": {"name": "Org 0", "external_id": "cus_000"}}))
    assert len(served.store.organizations) == N_ORGS

    resp = client.post("/api/v2/users", json={"user": {"name": "Al", "email": "alice@org0.example"}})
    check_error(resp, 422, "RecordInvalid")
    resp = client.post("/api/v2/tickets", json={"ticket": {"subject": "no comment"}})
    check_error(resp, 422, "RecordInvalid")
    resp = client.post("/api/v2/tickets", json={"ticket": {"comment": {"body": "x"}, "priority": "asap"}})
    check_error(resp, 422, "RecordInvalid")


# --------------------------------------------------------------------------------------
# Incremental export
# --------------------------------------------------------------------------------------


def test_incremental_export_pages_and_end_of_stream(served: Served, client: httpx.Client) -> None:
    ids = sorted(served.store.tickets)
    first = check(client.get("/api/v2/incremental/tickets/cursor.json",
                             params={"start_time": 0, "per_page": 5}))
    assert [t["id"] for t in first["tickets"]] == ids[:5]
    assert first["end_of_stream"] is False and first["before_cursor"] is None and first["before_url"] is None
    assert all(isinstance(t["generated_timestamp"], int) for t in first["tickets"])
    assert first["after_url"].startswith(f"{served.url}/api/v2/incremental/tickets/cursor.json?cursor=")
    second = check(client.get(first["after_url"]))
    assert [t["id"] for t in second["tickets"]] == ids[5:8]  # the 9th: updated within the last minute
    assert second["end_of_stream"] is True and second["after_cursor"]
    empty = check(client.get("/api/v2/incremental/tickets/cursor", params={"cursor": second["after_cursor"]}))
    assert empty["tickets"] == [] and empty["end_of_stream"] is True
    assert empty["after_cursor"] == second["after_cursor"]

    # two minutes later the last ticket has left the excluded minute: the same cursor yields it
    served.clock.now = NOW + timedelta(minutes=2)
    later = check(client.get("/api/v2/incremental/tickets/cursor", params={"cursor": second["after_cursor"]}))
    assert [t["id"] for t in later["tickets"]] == [ids[8]] and later["end_of_stream"] is True

    new = check(client.post("/api/v2/tickets", json={"ticket": {"comment": {"body": "new"}}}), 201)["ticket"]
    served.clock.now = NOW + timedelta(minutes=4)
    newest = check(client.get("/api/v2/incremental/tickets/cursor", params={"cursor": later["after_cursor"]}))
    assert [t["id"] for t in newest["tickets"]] == [new["id"]]


def test_incremental_export_validation(served: Served, client: httpx.Client) -> None:
    path = "/api/v2/incremental/tickets/cursor.json"
    since = int((NOW - timedelta(hours=3, minutes=30)).timestamp())
    page = check(client.get(path, params={"start_time": since}))
    assert len(page["tickets"]) == 2 and page["end_of_stream"] is True
    assert page["before_cursor"] is not None  # older tickets exist
    older = check(client.get(page["before_url"]))
    assert [t["id"] for t in older["tickets"]] == sorted(served.store.tickets)[:6]
    too_recent = int((NOW - timedelta(seconds=10)).timestamp())
    assert client.get(path, params={"start_time": too_recent}).status_code == 400
    assert client.get(path).status_code == 400
    assert client.get(path, params={"cursor": "garbage!"}).status_code == 400


# --------------------------------------------------------------------------------------
# Faults and rate limits
# --------------------------------------------------------------------------------------


def test_rate_limit_429_and_headers(served: Served, client: httpx.Client) -> None:
    served.injector.config.update({"rate_limit": 2})
    ok = client.get("/api/v2/organizations.json")
    check(ok)
    assert ok.headers["X-Rate-Limit"] == "120" and "X-Rate-Limit-Remaining" in ok.headers
    statuses = []
    org = org_ids(served.store)[0]
    for _ in range(5):
        resp = client.put(f"/api/v2/organizations/{org}.json", json={"organization": {"notes": "n"}})
        statuses.append(resp.status_code)
        if resp.status_code == 429:
            check(resp, 429)  # the spec describes 429 for this operation
            assert resp.json()["error"] == "TooManyRequests" and resp.json()["description"]
            assert int(resp.headers["Retry-After"]) >= 1
            assert resp.headers["X-Rate-Limit"] == "120" and resp.headers["X-Rate-Limit-Remaining"] == "0"
            break
    assert 429 in statuses


def test_no_rate_limit_headers_without_a_limit(client: httpx.Client) -> None:
    assert "X-Rate-Limit" not in client.get("/api/v2/users").headers


def test_server_errors_and_outage(served: Served, client: httpx.Client) -> None:
    served.injector.config.update({"error_rate": 1.0})
    resp = client.get("/api/v2/tickets.json")
    assert resp.status_code >= 500
    assert set(resp.json()) == {"error", "description"}
    served.injector.config.update({"error_rate": 0.0, "outage": True})
    resp = client.get("/api/v2/tickets.json")
    assert resp.status_code == 503 and check_error(resp, 503, "ServiceUnavailable")["description"]


def test_drop_after_commit_still_commits(served: Served, client: httpx.Client) -> None:
    served.injector.config.update({"drop_after_commit_rate": 1.0})
    with pytest.raises(httpx.TransportError):
        client.post("/api/v2/organizations.json",
                    json={"organization": {"name": "Dropped Co", "external_id": "cus_drop"}})
    oid = served.store.orgs_by_external_id["cus_drop"]
    assert served.store.organizations[oid]["name"] == "Dropped Co"
    served.injector.config.update({"drop_after_commit_rate": 0.0})
    # reads are not writes: never dropped
    assert check(client.get(f"/api/v2/organizations/{oid}.json"))["organization"]["name"] == "Dropped Co"


async def test_async_client_and_render_function(served: Served) -> None:
    async with httpx.AsyncClient(base_url=served.url, headers=basic()) as c:
        body = check(await c.get("/api/v2/organizations.json", params={"page[size]": 1}))
    org = served.store.organizations[org_ids(served.store)[0]]
    assert body["organizations"][0] == render_organization(served.store, org, served.url + "/")
