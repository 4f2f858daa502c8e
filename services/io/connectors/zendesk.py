"""Zendesk Support connector: organizations (customers + entitlements) and tickets (cases).

Protocol (``shared/specs/zendesk/syncdesk-subset.json`` and Zendesk's documentation):

- organizations are listed with cursor pagination (``page[size]=100``, ``meta.has_more``,
  ``links.next``); changed organizations are found with the search API
  (``type:organization updated>ISO``; offset pagination, at most 1,000 results);
- tickets come from the cursor-based incremental export
  (``/api/v2/incremental/tickets/cursor.json``), which resumes from an opaque cursor, so an
  incremental refresh costs one request per 1,000 changed tickets (plus one);
- errors: ``{"error": ..., "description": ..., "details": ...}`` or ``{"errors": [...]}``;
- every answer is validated with the payload models of
  :mod:`services.io.connectors.zendesk_payloads`; an organization or ticket that does not
  validate or map, or an id listed twice with different content (the ticket export may list a
  ticket again once it changed: a newer ``updated_at`` supersedes, it is no conflict), is
  quarantined (``SystemData.quarantined``: kind ``customer`` for an organization, ``case`` for
  a ticket) and the refresh goes on.

Mapping (``services/io/connectors/base.py``): an organization is a :class:`Customer` *and* an
:class:`Entitlement` (both keyed by the organization id, ``customer_id`` = its
``external_id``), built from the custom organization fields ``support_tier``, ``sla_policy``
and ``entitlement_end``; a ticket is a :class:`SupportCase` whose ``customer_id`` is the
``external_id`` of its organization. Timeline facts are :class:`LifecycleEvent` records
keyed ``org-created:<id>``, ``tier-changed:<id>:<unix>``, ``ticket-opened:<id>`` and
``ticket-solved:<id>``.

Authentication is HTTP Basic ``{email}/token:{api_token}``, or ``Authorization: Bearer
{oauth_token}`` when the profile gives an OAuth access token (:func:`zendesk_auth`); either is
held by the httpx client only.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx

from services.compute import run_cpu
from services.core.domain import (
    Customer,
    Entitlement,
    EventKind,
    ExternalRef,
    LifecycleEvent,
    SupportCase,
    System,
    Tier,
)
from services.core.errors import ProtocolError, RemoteValidationError
from services.core.sysdata import (
    Delta,
    Intake,
    Kind,
    Progress,
    ProgressCallback,
    RefreshResult,
    SystemData,
    no_progress,
    release,
)
from services.io.config import ConfigError, SystemConnection
from services.io.connectors.base import Clock, Connector, quarantine, raw_id, utc_now
from services.io.connectors.zendesk_payloads import (
    ExportPage,
    OrganizationEnvelope,
    OrganizationListPage,
    OrganizationSearchPage,
    SearchPage,
    ZdMetricSet,
    ZdOrganization,
    ZdTicket,
)
from services.io.http import DEFAULT_POLICIES, HttpPolicy, ResilientClient

log = logging.getLogger(__name__)

API = "/api/v2"
PAGE_SIZE = 100  # cursor pagination maximum
#: answers larger than this are decoded in a worker thread (the event loop also draws the UI)
LARGE_BODY = 64_000
SEARCH_PER_PAGE = 100
#: the search API returns at most this many results for one query (Zendesk's limit)
SEARCH_RESULT_CAP = 1000
#: re-read organizations changed this long before the watermark: the search index lags
#: behind writes, and the clocks of writers differ slightly
SEARCH_OVERLAP = timedelta(minutes=2)
#: statuses whose ticket is done; a "deleted" ticket in the export means a deletion
SOLVED_STATUSES = frozenset({"solved", "closed"})
DELETED_STATUS = "deleted"

ORG = "organization"
TICKET = "ticket"


# --------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------


def zendesk_error_parser(response: httpx.Response) -> tuple[str, str | None]:
    """Zendesk's envelopes -> (message, vendor code). Never includes request credentials."""
    body = response.json()
    if not isinstance(body, dict):
        raise ValueError("not an error envelope")
    error = body.get("error")
    parts: list[str] = []
    code: str | None = None
    if isinstance(error, dict):  # {"error": {"title": ..., "message": ...}}
        code = str(error.get("title") or "") or None
        if error.get("message"):
            parts.append(str(error["message"]))
    elif isinstance(error, str):
        code = error
    if isinstance(body.get("description"), str) and body["description"]:
        parts.append(body["description"])
    details = body.get("details")
    if isinstance(details, dict):
        for field_name, problems in details.items():
            for problem in problems if isinstance(problems, list) else [problems]:
                text = problem.get("description") if isinstance(problem, dict) else problem
                parts.append(f"{field_name}: {text}")
    errors = body.get("errors")
    if isinstance(errors, list):
        for item in errors:
            if isinstance(item, dict):
                code = code or (str(item["code"]) if item.get("code") else None)
                parts.append(str(item.get("title") or item.get("detail") or item.get("code") or item))
    if not parts and isinstance(error, str):
        parts.append(error)
    if not parts:
        raise ValueError("not an error envelope")
    return "; ".join(parts), code


# --------------------------------------------------------------------------------------
# Mapping helpers
# --------------------------------------------------------------------------------------


def _newer_case(old: SupportCase, new: SupportCase) -> bool:
    """The export lists a ticket again after it changed: a later ``updated`` supersedes."""
    return old.updated is not None and new.updated is not None and new.updated > old.updated


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


def zendesk_iso(value: datetime) -> str:
    """``2024-01-31T12:00:00Z``: the form Zendesk's search accepts in ``updated>``."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_iso(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return _utc(parsed) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class SupportOrganization:
    """One organization as the write operations return it."""

    id: int
    customer: Customer
    entitlement: Entitlement
    fields: dict[str, Any]


@dataclass
class _OrgFacts:
    """What a refresh learned about organizations (id -> customer id) while mapping."""

    customer_ids: dict[int, str | None]
    max_updated: datetime | None = None

    def see(self, org_id: int, customer_id: str | None, updated: datetime) -> None:
        self.customer_ids[org_id] = customer_id
        if self.max_updated is None or updated > self.max_updated:
            self.max_updated = updated


class BearerAuth(httpx.Auth):
    """``Authorization: Bearer <token>`` on every request (an OAuth access token)."""

    def __init__(self, token: str) -> None:
        self._header = f"Bearer {token}"

    def auth_flow(self, request: httpx.Request) -> Any:
        request.headers["Authorization"] = self._header
        yield request


def zendesk_auth(conn: SystemConnection) -> httpx.Auth:
    """The Zendesk credentials of ``conn`` as an httpx auth: Bearer with an ``oauth_token``, else
    Basic ``{email}/token:{api_token}`` (ConfigError when neither is usable)."""
    if "oauth_token" in conn.secrets:
        return BearerAuth(conn.secret("oauth_token"))
    email = conn.settings.get("email")
    if not email:
        raise ConfigError("support: 'email' is not configured")
    return httpx.BasicAuth(f"{email}/token", conn.secret("api_token"))


class ZendeskConnector(Connector):
    system = System.SUPPORT

    @classmethod
    def create(cls, conn: SystemConnection, *, policy: HttpPolicy | None = None,
               transport: Any = None, clock: Clock = utc_now) -> ZendeskConnector:
        auth = zendesk_auth(conn)
        client = ResilientClient(System.SUPPORT, conn.url, policy=policy or DEFAULT_POLICIES[System.SUPPORT],
                                 headers={"Accept": "application/json", "User-Agent": "SyncDesk"},
                                 auth=auth, error_parser=zendesk_error_parser, transport=transport)
        return cls(conn, client, clock)

    # -- low level ----------------------------------------------------------------------
    async def _get(self, url: str, operation: str, params: dict[str, Any] | None = None) -> Any:
        response = await self.client.request("GET", url, operation=operation, params=params)
        if len(response.content) > LARGE_BODY:  # an export page: decoded off the event loop (it draws the UI)
            return await run_cpu(ResilientClient.json_body, response, self.system, operation)
        return ResilientClient.json_body(response, self.system, operation)

    def _envelope(self, model: type[Any], body: Any, operation: str) -> Any:
        """Validate a page envelope (a violation is a ProtocolError naming the operation)."""
        if not isinstance(body, dict):
            raise ProtocolError(self.system, operation, f"answer is not a JSON object: {type(body).__name__}")
        return self.parse(model, body, f"{operation} answer")

    def _follow(self, url: str, operation: str) -> str:
        """A pagination link: only to our own server (the client sends credentials along)."""
        link, base = urlsplit(url), urlsplit(self.client.base_url)
        if link.scheme and (link.scheme, link.netloc) != (base.scheme, base.netloc):
            raise ProtocolError(self.system, operation, f"refusing to follow a page link to another host: "
                                                        f"{link.scheme}://{link.netloc}")
        return url

    # -- mapping ------------------------------------------------------------------------
    def map_organization(self, raw: Any) -> tuple[ZdOrganization, Customer, Entitlement]:
        rid = raw.get("id") if isinstance(raw, dict) else None
        what = f"organization {rid}"
        if not isinstance(raw, dict):
            raise ProtocolError(self.system, "read organization", f"{what} is not a JSON object")
        org = self.parse(ZdOrganization, raw, what)
        ref = ExternalRef(System.SUPPORT, ORG, str(org.id))
        customer_id = org.external_id or None
        created, updated = _utc(org.created_at), _utc(org.updated_at)
        fields_ = org.organization_fields or {}

        def text(key: str) -> str | None:
            value = fields_.get(key)
            if value is None or value == "":
                return None
            if not isinstance(value, str):
                raise ProtocolError(self.system, "read organization",
                                    f"organization {org.id}: {key} must be text, got {value!r}")
            return value

        tier_raw, sla, end_raw = text("support_tier"), text("sla_policy"), text("entitlement_end")
        try:
            tier = Tier(tier_raw) if tier_raw is not None else None
        except ValueError:
            raise ProtocolError(self.system, "read organization",
                                f"organization {org.id}: unknown support tier {tier_raw!r} "
                                f"(expected one of {', '.join(t.value for t in Tier)})") from None
        try:
            ends_on = date.fromisoformat(end_raw) if end_raw is not None else None
        except ValueError:
            raise ProtocolError(self.system, "read organization",
                                f"organization {org.id}: entitlement_end {end_raw!r} is not a date "
                                "(YYYY-MM-DD)") from None
        customer = Customer(ref, customer_id, org.name, created=created, updated=updated)
        entitlement = Entitlement(ref, customer_id, tier, sla_policy=sla, ends_on=ends_on, updated=updated)
        return org, customer, entitlement

    def _add_organization(self, data: SystemData, facts: _OrgFacts, raw: Any,
                          previous: Entitlement | None = None, intake: Intake | None = None,
                          listed: dict[str, Any] | None = None) -> None:
        """Map one organization into ``data``; with ``intake``, one that cannot be read, or
        whose id ``listed`` (what this listing already held) holds with other content, is
        quarantined instead."""
        try:
            org, customer, entitlement = self.map_organization(raw)
        except Exception as exc:
            quarantine(intake, self.system, Kind.CUSTOMER, raw_id(raw), exc)
            return
        key = str(org.id)
        if intake is not None and listed is not None and not intake.put(listed, Kind.CUSTOMER, key,
                                                                         (customer, entitlement)):
            data.customers.pop(key, None)
            data.entitlements.pop(key, None)
            data.events.pop(f"org-created:{key}", None)
            return
        data.customers[key] = customer
        data.entitlements[key] = entitlement
        facts.see(org.id, customer.customer_id, _utc(org.updated_at))
        event = LifecycleEvent(customer.created or _utc(org.created_at), self.system,
                               EventKind.ORGANIZATION_CREATED, customer.customer_id, customer.ref,
                               f"support organization {org.name!r} created")
        data.events[f"org-created:{key}"] = event
        if previous is not None and previous.tier != entitlement.tier:
            at = _utc(org.updated_at)
            before = previous.tier.value if previous.tier else "none"
            after = entitlement.tier.value if entitlement.tier else "none"
            data.events[f"tier-changed:{key}:{int(at.timestamp())}"] = LifecycleEvent(
                at, self.system, EventKind.TIER_CHANGED, customer.customer_id, customer.ref,
                f"support tier {before} -> {after}")

    def map_ticket(self, raw: Any, customer_of: dict[int, str | None], known: SystemData | None,
                   solved: dict[int, datetime]) -> tuple[ZdTicket, SupportCase]:
        rid = raw.get("id") if isinstance(raw, dict) else None
        what = f"ticket {rid}"
        if not isinstance(raw, dict):
            raise ProtocolError(self.system, "read ticket", f"{what} is not a JSON object")
        ticket = self.parse(ZdTicket, raw, what)
        customer_id: str | None = None
        if ticket.organization_id is not None:
            if ticket.organization_id in customer_of:
                customer_id = customer_of[ticket.organization_id]
            elif known is not None and str(ticket.organization_id) in known.customers:
                customer_id = known.customers[str(ticket.organization_id)].customer_id
        solved_at = ticket.solved_at or solved.get(ticket.id)
        if solved_at is None and ticket.status == "solved":
            # Zendesk's ticket object has no solve time; a ticket that is *still* solved was
            # normally last changed by being solved, so its updated_at is the best evidence.
            # A closed ticket was last changed by the automation that closed it (days later):
            # no solve time unless the metric_sets sideload gives one.
            solved_at = ticket.updated_at
        case = SupportCase(ExternalRef(System.SUPPORT, TICKET, str(ticket.id)), customer_id,
                           ticket.subject or ticket.raw_subject or "", ticket.status, priority=ticket.priority,
                           created=_utc(ticket.created_at), updated=_utc(ticket.updated_at),
                           solved_at=_utc(solved_at) if solved_at else None)
        return ticket, case

    def _add_ticket(self, data: SystemData, deletions: set[str], raw: Any, customer_of: dict[int, str | None],
                    known: SystemData | None, solved: dict[int, datetime], intake: Intake | None = None) -> None:
        try:
            ticket, case = self.map_ticket(raw, customer_of, known, solved)
        except Exception as exc:
            quarantine(intake, self.system, Kind.CASE, raw_id(raw), exc)
            return
        key = str(ticket.id)
        if ticket.status == DELETED_STATUS:
            deletions.add(key)
            data.cases.pop(key, None)
            data.events.pop(f"ticket-opened:{key}", None)
            data.events.pop(f"ticket-solved:{key}", None)
            if intake is not None:
                intake.clear(Kind.CASE, key)
            return
        deletions.discard(key)
        if intake is not None:
            if not intake.put(data.cases, Kind.CASE, key, case, newer=_newer_case):
                data.events.pop(f"ticket-opened:{key}", None)
                data.events.pop(f"ticket-solved:{key}", None)
                return
            if data.cases[key] is not case:  # an older version listed after a newer one
                return
            intake.clear(Kind.CASE, key)  # read fine now (an earlier page's version may not have)
        data.cases[key] = case
        label = f"ticket #{key}" + (f": {case.subject}" if case.subject else "")
        if case.created is not None:
            data.events[f"ticket-opened:{key}"] = LifecycleEvent(
                case.created, self.system, EventKind.TICKET_OPENED, case.customer_id, case.ref, f"{label} opened")
        if case.solved_at is not None:
            data.events[f"ticket-solved:{key}"] = LifecycleEvent(
                case.solved_at, self.system, EventKind.TICKET_SOLVED, case.customer_id, case.ref,
                f"{label} {case.status}")
        else:
            data.events.pop(f"ticket-solved:{key}", None)

    # -- organizations ------------------------------------------------------------------
    async def _list_organizations(self, progress: ProgressCallback, phase: str = "organizations") -> list[Any]:
        """Every organization (raw), by cursor pagination."""
        operation = "list organizations"
        out: list[Any] = []
        url: str = f"{API}/organizations.json"
        params: dict[str, Any] | None = {"page[size]": PAGE_SIZE}
        while True:
            page = self._envelope(OrganizationListPage, await self._get(url, operation, params), operation)
            out.extend(page.organizations)
            progress(Progress(self.system, phase, len(out)))
            if not page.meta.has_more:
                return out
            if not page.links.next:
                raise ProtocolError(self.system, operation, "meta.has_more is true but links.next is missing")
            url, params = self._follow(page.links.next, operation), None

    async def _search_changed_organizations(self, since: datetime,
                                            progress: ProgressCallback) -> list[Any] | None:
        """Organizations updated after ``since`` (raw), or None when there are too many for
        the search API (more than its 1,000-result limit)."""
        operation = "search organizations"
        params: dict[str, Any] | None = {
            "query": f"type:organization updated>{zendesk_iso(since)}",
            "sort_by": "updated_at", "sort_order": "asc", "per_page": SEARCH_PER_PAGE, "page": 1,
        }
        url: str = f"{API}/search.json"
        out: list[Any] = []
        while True:
            page = self._envelope(SearchPage, await self._get(url, operation, params), operation)
            if page.count is not None and page.count >= SEARCH_RESULT_CAP:
                # The search API never returns more than 1,000 results for a query (a page
                # reaching past them is refused), so a burst of changes this large cannot be
                # read through search; the caller lists every organization instead. Its cost
                # (n/100 requests) is then of the same order as the changes themselves.
                return None
            out.extend(r for r in page.results if not isinstance(r, dict) or r.get("result_type", ORG) == ORG)
            progress(Progress(self.system, "organizations", len(out), page.count))
            if not page.next_page or not page.results:
                return out
            url, params = self._follow(page.next_page, operation), None

    # -- tickets ------------------------------------------------------------------------
    async def _export_tickets(self, data: SystemData, deletions: set[str], customer_of: dict[int, str | None],
                              known: SystemData | None, progress: ProgressCallback,
                              cursor: str | None, intake: Intake | None = None) -> str | None:
        """Follow the incremental export from ``cursor`` (None: from the beginning) to its end;
        return the last page's after_cursor."""
        operation = "export tickets"
        url: str = f"{API}/incremental/tickets/cursor.json"
        params: dict[str, Any] | None = {"cursor": cursor} if cursor else {"start_time": 0}
        last_cursor = cursor
        done = 0
        while True:
            page = self._envelope(ExportPage, await self._get(url, operation, params), operation)
            # mapping a page (up to 1,000 tickets) is CPU work: off the event loop
            await run_cpu(self._add_export_page, page, data, deletions, customer_of, known, intake)
            done += len(page.tickets)
            progress(Progress(self.system, "tickets", done))
            previous, last_cursor = last_cursor, page.after_cursor or last_cursor
            if page.end_of_stream:
                return last_cursor
            if not page.after_url:
                raise ProtocolError(self.system, operation, "end_of_stream is false but after_url is missing")
            if not page.tickets and last_cursor == previous:
                raise ProtocolError(self.system, operation, "the export does not advance (same cursor, no tickets)")
            url, params = self._follow(page.after_url, operation), None

    def _add_export_page(self, page: Any, data: SystemData, deletions: set[str], customer_of: dict[int, str | None],
                         known: SystemData | None, intake: Intake | None = None) -> None:
        solved: dict[int, datetime] = {}
        for raw in page.metric_sets or ():
            try:
                metric = self.parse(ZdMetricSet, raw, "ticket metric set")
            except Exception as exc:
                ticket = raw.get("ticket_id") if isinstance(raw, dict) else None
                quarantine(intake, self.system, "ticket metric set", ticket if ticket is not None else raw_id(raw), exc)
                continue
            if metric.solved_at is not None:
                solved[metric.ticket_id] = metric.solved_at
        for raw in page.tickets:
            self._add_ticket(data, deletions, raw, customer_of, known, solved, intake)

    def _add_organizations(self, data: SystemData, facts: _OrgFacts, raws: list[Any], intake: Intake) -> None:
        listed: dict[str, Any] = {}
        for raw in raws:
            self._add_organization(data, facts, raw, intake=intake, listed=listed)
        release(raws)  # in this worker thread, not on the event loop

    # -- the Connector contract ---------------------------------------------------------
    async def full_refresh(self, progress: ProgressCallback = no_progress) -> RefreshResult:
        started, before = self.clock(), self.requests_made
        data = SystemData(self.system)
        intake = Intake(self.system)
        facts = _OrgFacts({})
        raws = await self._list_organizations(progress)
        await run_cpu(self._add_organizations, data, facts, raws, intake)  # CPU work: off the event loop
        after = await self._export_tickets(data, set(), facts.customer_ids, None, progress, None, intake)
        cursor = {"tickets_after_cursor": after,
                  "orgs_updated_since": zendesk_iso(facts.max_updated or started)}
        return RefreshResult(self.system, intake.into(data), None, cursor, self.clock(),
                             self.requests_made - before)

    async def incremental_refresh(self, cursor: dict[str, Any], known: SystemData,
                                  progress: ProgressCallback = no_progress) -> RefreshResult:
        before = self.requests_made
        watermark = _parse_iso(cursor.get("orgs_updated_since"))
        tickets_cursor = cursor.get("tickets_after_cursor")
        if watermark is None or (tickets_cursor is not None and not isinstance(tickets_cursor, str)):
            raise ValueError(f"not a support refresh cursor: {cursor!r}")
        upserts = SystemData(self.system)
        intake = Intake(self.system)
        deletions: dict[Kind, set[str]] = {}
        facts = _OrgFacts({})
        changed = await self._search_changed_organizations(watermark - SEARCH_OVERLAP, progress)
        if changed is None:
            changed = await self._list_organizations(progress)
            listed = {str(r.get("id")) for r in changed if isinstance(r, dict)}
            gone = {k for k in known.customers if k not in listed} | {k for k in known.entitlements
                                                                        if k not in listed}
            if gone:
                deletions[Kind.CUSTOMER] = set(gone)
                deletions[Kind.ENTITLEMENT] = set(gone)
        seen: set[int] = set()
        for raw in changed:  # offset pagination may repeat a result: de-duplicate by id
            rid = raw.get("id") if isinstance(raw, dict) else None
            if isinstance(rid, int) and rid in seen:
                continue
            if isinstance(rid, int):
                seen.add(rid)
            self._add_organization(upserts, facts, raw, known.entitlements.get(str(rid)), intake=intake)
        relinked = [oid for oid, cid in facts.customer_ids.items()
                    if str(oid) in known.customers and known.customers[str(oid)].customer_id != cid]
        case_deletions: set[str] = set()
        for oid in relinked:
            await self._relink_cases(upserts, case_deletions, oid, facts.customer_ids, known, intake)
        after = await self._export_tickets(upserts, case_deletions, facts.customer_ids, known, progress,
                                           tickets_cursor, intake)
        if case_deletions:
            deletions[Kind.CASE] = case_deletions
        new_mark = max(watermark, facts.max_updated) if facts.max_updated else watermark
        next_cursor = {"tickets_after_cursor": after, "orgs_updated_since": zendesk_iso(new_mark)}
        return RefreshResult(self.system, None, Delta(intake.into(upserts), deletions), next_cursor, self.clock(),
                             self.requests_made - before)

    async def _relink_cases(self, data: SystemData, deletions: set[str], org_id: int,
                            customer_of: dict[int, str | None], known: SystemData,
                            intake: Intake | None = None) -> None:
        """An organization's external_id changed: its tickets now belong to another customer.
        Re-read them (search, one request per 100 tickets) so their cases follow the link."""
        operation = "search tickets"
        url: str = f"{API}/search.json"
        params: dict[str, Any] | None = {"query": f"type:ticket organization:{org_id}",
                                         "sort_by": "created_at", "sort_order": "asc",
                                         "per_page": SEARCH_PER_PAGE, "page": 1}
        fetched = 0
        while True:
            page = self._envelope(SearchPage, await self._get(url, operation, params), operation)
            for raw in page.results:
                if isinstance(raw, dict) and raw.get("result_type", TICKET) == TICKET:
                    self._add_ticket(data, deletions, raw, customer_of, known, {}, intake)
            fetched += len(page.results)
            if not page.next_page or not page.results:
                return
            if fetched + SEARCH_PER_PAGE > SEARCH_RESULT_CAP:
                log.warning("support: organization %s has more than %d tickets; the rest keep their old "
                            "customer until the next full refresh", org_id, SEARCH_RESULT_CAP)
                return
            url, params = self._follow(page.next_page, operation), None

    async def list_ids(self, progress: ProgressCallback = no_progress) -> dict[Kind, set[str]]:
        """Organization ids (customers and entitlements). Tickets are left out: the export
        reports a deleted ticket itself (status ``deleted``), so no id sweep is needed."""
        ids: set[str] = set()
        for raw in await self._list_organizations(progress, phase="organization ids"):
            rid = raw.get("id") if isinstance(raw, dict) else None
            if isinstance(rid, int) and not isinstance(rid, bool):  # without a readable id it cannot be one we hold
                ids.add(str(rid))
        return {Kind.CUSTOMER: ids, Kind.ENTITLEMENT: set(ids)}

    # -- writes (F5) --------------------------------------------------------------------
    def _organization(self, body: Any, operation: str) -> SupportOrganization:
        envelope = self._envelope(OrganizationEnvelope, body, operation)
        org, customer, entitlement = self.map_organization(envelope.organization)
        return SupportOrganization(org.id, customer, entitlement, dict(org.organization_fields or {}))

    async def get_organization(self, org_id: int | str) -> SupportOrganization:
        operation = "get organization"
        return self._organization(await self._get(f"{API}/organizations/{int(org_id)}.json", operation), operation)

    async def update_organization_fields(self, org_id: int | str, fields: dict[str, Any]) -> SupportOrganization:
        """Set custom organization fields (a PUT: idempotent, retried on outages)."""
        operation = "update organization"
        response = await self.client.request("PUT", f"{API}/organizations/{int(org_id)}.json", operation=operation,
                                             json={"organization": {"organization_fields": dict(fields)}})
        return self._organization(ResilientClient.json_body(response, self.system, operation), operation)

    async def update_organization(self, org_id: int | str, values: dict[str, Any]) -> SupportOrganization:
        """Set standard organization attributes (``name``, ``external_id``...) with a PUT
        (idempotent, retried on outages)."""
        operation = "update organization"
        response = await self.client.request("PUT", f"{API}/organizations/{int(org_id)}.json", operation=operation,
                                             json={"organization": dict(values)})
        return self._organization(ResilientClient.json_body(response, self.system, operation), operation)

    async def find_organization_by_external_id(self, external_id: str) -> SupportOrganization | None:
        operation = "find organization"
        body = await self._get(f"{API}/organizations/search.json", operation, {"external_id": external_id})
        page = self._envelope(OrganizationSearchPage, body, operation)
        wanted = external_id.lower()
        for raw in page.organizations:
            org, customer, entitlement = self.map_organization(raw)
            if (org.external_id or "").lower() == wanted:  # Zendesk external ids are case-insensitive
                return SupportOrganization(org.id, customer, entitlement, dict(org.organization_fields or {}))
        return None

    async def create_organization(self, name: str, external_id: str,
                                  fields: dict[str, Any] | None = None) -> SupportOrganization:
        """Create an organization linked to ``external_id``, idempotently: an organization that
        already carries the external id (e.g. created by an earlier attempt whose answer was
        lost) is returned instead. The POST itself is never retried on a 5xx or timeout."""
        existing = await self.find_organization_by_external_id(external_id)
        if existing is not None:
            return existing
        operation = "create organization"
        payload: dict[str, Any] = {"name": name, "external_id": external_id}
        if fields:
            payload["organization_fields"] = dict(fields)
        try:
            response = await self.client.request("POST", f"{API}/organizations.json", operation=operation,
                                                 json={"organization": payload})
        except RemoteValidationError as exc:
            if "external_id" in exc.message.lower() or "external id" in exc.message.lower():
                # a concurrent (or lost-answer) create won the race: return its organization
                existing = await self.find_organization_by_external_id(external_id)
                if existing is not None:
                    return existing
            raise
        return self._organization(ResilientClient.json_body(response, self.system, operation), operation)
