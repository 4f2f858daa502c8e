"""Zendesk-compatible demo support server (Starlette), faithful to the official OpenAPI subset
in ``shared/specs/zendesk/syncdesk-subset.json``.

Serves organizations (list/create/show/update/search), organization fields, users
(list/create/show), tickets (list/create/show), search and the cursor-based incremental
ticket export over a :class:`~services.demo.store.SupportStore`, with Zendesk's
authentication, envelopes, pagination (cursor and offset), errors and rate-limit headers.
Every path is served with and without the ``.json`` suffix.

Lists are served from sorted id lists (bisect), the incremental export from a sorted
``(updated_at, id)`` index, both maintained on writes and rebuilt lazily when the store was
changed behind the server's back; so paging 100,000 organizations or 300,000 tickets stays
linear overall.

Rendering follows the subset's schemas: a property the spec does not declare nullable is
left out when its value is unknown (e.g. a ticket's ``priority`` or an unset custom
organization field) instead of being sent as ``null``.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import hmac
import json
import math
import re
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from services.demo.faults import FaultInjector, FaultMiddleware
from services.demo.store import SupportStore

API = "/api/v2"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

#: cursor and offset pagination limits (Zendesk's)
MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 100
OFFSET_RECORD_CAP = 10_000
SEARCH_RESULT_CAP = 1_000
EXPORT_MAX_PER_PAGE = 1_000
#: the incremental export leaves out the most recent minute
EXPORT_LAG = timedelta(seconds=60)

TICKET_STATUSES = ("new", "open", "pending", "hold", "solved", "closed")
TICKET_PRIORITIES = ("low", "normal", "high", "urgent")
TICKET_TYPES = ("problem", "incident", "question", "task")
USER_ROLES = ("end-user", "agent", "admin")

Clock = Callable[[], datetime]
Record = dict[str, Any]


def _utc_now() -> datetime:
    return datetime.now(UTC)


# --------------------------------------------------------------------------------------
# Time helpers
# --------------------------------------------------------------------------------------


def iso(value: datetime | None) -> str | None:
    """Zendesk's timestamp format: ``2024-01-31T12:00:00Z`` (UTC, whole seconds)."""
    if value is None:
        return None
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def micros(value: datetime) -> int:
    """Exact microseconds since the epoch (the incremental export's sort key)."""
    return (value - EPOCH) // timedelta(microseconds=1)


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


# --------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------


class ApiError(Exception):
    """An error answered in Zendesk's envelope."""

    def __init__(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{status}: {body}")
        self.status = status
        self.body = body
        self.headers = headers or {}

    def response(self) -> JSONResponse:
        return JSONResponse(self.body, status_code=self.status, headers=self.headers)


def record_not_found() -> ApiError:
    return ApiError(404, {"error": "RecordNotFound", "description": "Not found"})


def record_invalid(details: dict[str, list[dict[str, str]]]) -> ApiError:
    return ApiError(422, {"error": "RecordInvalid", "description": "Record validation errors",
                          "details": details})


def invalid_value(field_name: str, title: str, message: str, error: str = "InvalidValue") -> ApiError:
    return record_invalid({field_name: [{"description": f"{title}: {message}", "error": error}]})


def pagination_error(title: str) -> ApiError:
    """400 in the spec's ``Errors`` shape (``InvalidPaginationParameter``)."""
    return ApiError(400, {"errors": [{"code": "InvalidPaginationParameter", "title": title}]})


def bad_request(description: str, error: str = "InvalidValue") -> ApiError:
    return ApiError(400, {"error": error, "description": description})


def not_authenticated() -> ApiError:
    return ApiError(401, {"error": "Couldn't authenticate you"},
                    {"WWW-Authenticate": 'Basic realm="Web Password"'})


_ERROR_NAMES = {429: "TooManyRequests", 500: "InternalServerError", 502: "BadGateway",
                503: "ServiceUnavailable", 504: "GatewayTimeout"}


def render_error(status: int, message: str, retry_after: float | None) -> Response:
    """The :data:`~services.demo.faults.ErrorRenderer` of this server."""
    headers: dict[str, str] = {}
    if status == 429 or retry_after is not None:
        headers["Retry-After"] = str(max(1, math.ceil(retry_after or 0.0)))
    name = _ERROR_NAMES.get(status, "Error")
    return JSONResponse({"error": name, "description": message}, status_code=status, headers=headers)


# --------------------------------------------------------------------------------------
# Rendering (pure: store records -> Zendesk JSON)
# --------------------------------------------------------------------------------------


def _resource_url(base_url: str, collection: str, rid: int) -> str:
    return f"{base_url.rstrip('/')}{API}/{collection}/{rid}.json"


def _render(record: Record, defaults: dict[str, Any], omit_if_none: Iterable[str]) -> dict[str, Any]:
    """``defaults`` (JSON-ready) overlaid with the record's public fields (hot path: keep it lean)."""
    out = dict(defaults)
    for key, value in record.items():
        if key[:1] == "_":
            continue
        if isinstance(value, datetime):
            value = iso(value)
        elif isinstance(value, (dict, list, tuple, date)):  # a tuple: faster than a union
            value = _jsonable(value)
        out[key] = value
    for key in omit_if_none:
        if out.get(key) is None:
            out.pop(key, None)
    return out


def render_organization(store: SupportStore, org: Record, base_url: str) -> dict[str, Any]:
    defaults: dict[str, Any] = {
        "url": None, "id": None, "name": "", "shared_tickets": False, "shared_comments": False,
        "external_id": None, "created_at": None, "updated_at": None, "domain_names": [],
        "details": None, "notes": None, "group_id": None, "tags": [], "organization_fields": {},
    }
    out = _render(org, defaults, ())
    out["url"] = _resource_url(base_url, "organizations", org["id"])
    known = {f["key"] for f in store.organization_fields}
    fields_ = org.get("organization_fields") or {}
    # the spec types custom field values as string|number: unset fields are left out
    out["organization_fields"] = {k: _jsonable(v) for k, v in fields_.items()
                                  if v is not None and (k in known or isinstance(v, str | int | float))}
    return out


def render_user(store: SupportStore, user: Record, base_url: str) -> dict[str, Any]:
    role = user.get("role") or "end-user"
    defaults: dict[str, Any] = {
        "id": None, "url": None, "name": "", "email": None, "created_at": None, "updated_at": None,
        "time_zone": "UTC", "iana_time_zone": "Etc/UTC", "phone": None, "shared_phone_number": None,
        "photo": None, "locale_id": 1, "locale": "en-US", "organization_id": None, "role": role,
        "verified": True, "external_id": None, "tags": [], "alias": "", "active": True,
        "shared": False, "shared_agent": False, "last_login_at": None,
        "two_factor_auth_enabled": None, "signature": None, "details": "", "notes": "",
        "role_type": None, "custom_role_id": None, "moderator": role != "end-user",
        "ticket_restriction": "requested" if role == "end-user" else None,
        "only_private_comments": False, "restricted_agent": role == "agent", "suspended": False,
        "default_group_id": None, "report_csv": False, "user_fields": {},
    }
    out = _render(user, defaults, ("email", "last_login_at", "signature", "default_group_id"))
    out["url"] = _resource_url(base_url, "users", user["id"])
    return out


_TICKET_OMIT_IF_NONE = ("external_id", "type", "priority", "recipient", "assignee_id", "group_id",
                        "organization_id", "submitter_id", "problem_id", "brand_id", "ticket_form_id",
                        "forum_topic_id", "custom_status_id", "raw_subject", "subject", "description",
                        "satisfaction_rating", "status")


def render_ticket(store: SupportStore, ticket: Record, base_url: str) -> dict[str, Any]:
    defaults: dict[str, Any] = {
        "url": None, "id": None, "external_id": None, "via": {"channel": "web"},
        "created_at": None, "updated_at": None, "type": None, "subject": None, "raw_subject": None,
        "description": None, "priority": None, "status": "new", "recipient": None,
        "requester_id": None, "submitter_id": None, "assignee_id": None, "organization_id": None,
        "group_id": None, "collaborator_ids": [], "follower_ids": [], "email_cc_ids": [],
        "forum_topic_id": None, "problem_id": None, "has_incidents": False, "is_public": True,
        "due_at": None, "tags": [], "custom_fields": [], "sharing_agreement_ids": [],
        "followup_ids": [], "allow_channelback": False, "allow_attachments": True,
        "from_messaging_channel": False,
    }
    out = _render(ticket, defaults, ())
    if out.get("raw_subject") is None:
        out["raw_subject"] = out.get("subject")
    if out.get("submitter_id") is None:
        out["submitter_id"] = out.get("requester_id")
    for key in _TICKET_OMIT_IF_NONE:
        if out.get(key) is None:
            out.pop(key, None)
    out["url"] = _resource_url(base_url, "tickets", ticket["id"])
    return out


def render_organization_field(field_def: Record, position: int, base_url: str) -> dict[str, Any]:
    fid = int(field_def["id"])
    stamp = iso(field_def.get("created_at") or EPOCH)
    out: dict[str, Any] = {
        "url": _resource_url(base_url, "organization_fields", fid), "id": fid,
        "type": field_def["type"], "key": field_def["key"], "title": field_def["title"],
        "raw_title": field_def["title"], "description": field_def.get("description", ""),
        "raw_description": field_def.get("description", ""), "position": position,
        "active": True, "system": False, "regexp_for_validation": None,
        "created_at": stamp, "updated_at": stamp,
    }
    if field_def["type"] == "dropdown":
        out["custom_field_options"] = [
            {"id": fid * 100 + i, "name": opt.title(), "raw_name": opt.title(), "value": opt}
            for i, opt in enumerate(field_def.get("options", []), start=1)
        ]
    return out


# --------------------------------------------------------------------------------------
# Indexes (lazily rebuilt when the store changed behind the server's back)
# --------------------------------------------------------------------------------------


class SortedIds:
    """Ascending ids of one store table, for bisect-based paging."""

    def __init__(self, table: dict[int, Record]) -> None:
        self.table = table
        self.ids: list[int] = []

    def current(self) -> list[int]:
        if len(self.ids) != len(self.table):
            self.ids = sorted(self.table)
        return self.ids

    def add(self, rid: int) -> None:
        """Record an id just inserted into the table."""
        if len(self.ids) != len(self.table) - 1:
            self.ids = sorted(self.table)
        elif not self.ids or rid > self.ids[-1]:
            self.ids.append(rid)
        else:
            bisect.insort(self.ids, rid)


class TicketTimeline:
    """Sorted ``(updated_at µs, id)`` keys of all tickets (the incremental export's order)."""

    def __init__(self, tickets: dict[int, Record]) -> None:
        self.tickets = tickets
        self.keys: list[tuple[int, int]] = []
        self.key_of: dict[int, tuple[int, int]] = {}

    def _key(self, rid: int) -> tuple[int, int]:
        return micros(self.tickets[rid]["updated_at"]), rid

    def rebuild(self) -> None:
        self.key_of = {rid: self._key(rid) for rid in self.tickets}
        self.keys = sorted(self.key_of.values())

    def current(self) -> list[tuple[int, int]]:
        if len(self.keys) != len(self.tickets):
            self.rebuild()
        return self.keys

    def touch(self, rid: int) -> None:
        """Record a created or updated ticket."""
        if len(self.key_of) != len(self.tickets) - (rid not in self.key_of):
            self.rebuild()
            return
        old = self.key_of.get(rid)
        if old is not None:
            i = bisect.bisect_left(self.keys, old)
            if i < len(self.keys) and self.keys[i] == old:
                del self.keys[i]
        key = self._key(rid)
        self.key_of[rid] = key
        bisect.insort(self.keys, key)

    def is_stale(self, window: list[tuple[int, int]]) -> bool:
        """True when a key in ``window`` no longer matches its ticket (changed elsewhere)."""
        for us, rid in window:
            t = self.tickets.get(rid)
            if t is None or micros(t["updated_at"]) != us:
                return True
        return False


@dataclass
class LookupIndex:
    """A normalized value -> ids map over one table, rebuilt when the table's size changed."""

    table: dict[int, Record]
    keyfunc: Callable[[Record], Iterable[Any]]
    size: int = -1
    index: dict[Any, set[int]] = field(default_factory=lambda: defaultdict(set))

    def _refresh(self) -> None:
        if self.size != len(self.table):
            self.index = defaultdict(set)
            for rid, rec in self.table.items():
                for key in self.keyfunc(rec):
                    self.index[key].add(rid)
            self.size = len(self.table)

    def get(self, key: Any) -> set[int]:
        self._refresh()
        # verify (another writer may have changed a record): drop ids that no longer match
        return {rid for rid in self.index.get(key, ()) if rid in self.table
                and key in set(self.keyfunc(self.table[rid]))}

    def add(self, rid: int) -> None:
        if self.size == len(self.table) - 1:
            for key in self.keyfunc(self.table[rid]):
                self.index[key].add(rid)
            self.size = len(self.table)
        else:
            self.size = -1

    def replace(self, rid: int, old: Record) -> None:
        self._refresh()
        for key in self.keyfunc(old):
            self.index[key].discard(rid)
        for key in self.keyfunc(self.table[rid]):
            self.index[key].add(rid)


def _lower(value: Any) -> str | None:
    return value.strip().lower() if isinstance(value, str) and value.strip() else None


def _org_name_key(org: Record) -> list[str]:
    key = _lower(org.get("name"))
    return [key] if key else []


def _user_email_key(user: Record) -> list[str]:
    key = _lower(user.get("email"))
    return [key] if key else []


def _ticket_org_key(ticket: Record) -> list[int | None]:
    return [ticket.get("organization_id")]


class Indexes:
    def __init__(self, store: SupportStore) -> None:
        self.org_ids = SortedIds(store.organizations)
        self.user_ids = SortedIds(store.users)
        self.ticket_ids = SortedIds(store.tickets)
        self.timeline = TicketTimeline(store.tickets)
        self.org_names = LookupIndex(store.organizations, _org_name_key)
        self.user_emails = LookupIndex(store.users, _user_email_key)
        self.tickets_by_org = LookupIndex(store.tickets, _ticket_org_key)


# --------------------------------------------------------------------------------------
# Pagination
# --------------------------------------------------------------------------------------


def encode_cursor(*parts: int | str) -> str:
    raw = ":".join(str(p) for p in parts).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, arity: int) -> list[str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise pagination_error("cursor is not valid") from exc
    parts = raw.split(":")
    if len(parts) != arity:
        raise pagination_error("cursor is not valid")
    return parts


def _int_param(request: Request, name: str, default: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise bad_request(f"{name} must be an integer") from exc


def _page_url(request: Request, changes: dict[str, str | int | None]) -> str:
    params: dict[str, str] = dict(request.query_params)
    for key, value in changes.items():
        if value is None:
            params.pop(key, None)
        else:
            params[key] = str(value)
    base = f"{str(request.base_url).rstrip('/')}{request.url.path}"
    return f"{base}?{urlencode(params, safe='[]:')}" if params else base


@dataclass
class Page:
    ids: list[int]
    body: dict[str, Any]


def uses_cursor(request: Request) -> bool:
    return any(k in request.query_params for k in ("page[size]", "page[after]", "page[before]"))


def cursor_page(request: Request, ids: list[int]) -> Page:
    """Cursor pagination over ascending ``ids`` (bisect: each page is O(log n + size))."""
    size = _int_param(request, "page[size]", DEFAULT_PAGE_SIZE)
    if size > MAX_PAGE_SIZE:
        raise pagination_error(f"page[size] must be less than or equal to {MAX_PAGE_SIZE}")
    if size < 1:
        raise pagination_error("page[size] must be a positive integer")
    after, before = request.query_params.get("page[after]"), request.query_params.get("page[before]")
    if after and before:
        raise pagination_error("page[after] and page[before] cannot be used together")
    if before:
        end = bisect.bisect_left(ids, _cursor_id(before))
        start = max(0, end - size)
    else:
        start = bisect.bisect_right(ids, _cursor_id(after)) if after else 0
        end = min(len(ids), start + size)
    chunk = ids[start:end]
    more_after, more_before = end < len(ids), start > 0
    after_cursor = encode_cursor("id", chunk[-1]) if chunk else None
    before_cursor = encode_cursor("id", chunk[0]) if chunk else None
    body: dict[str, Any] = {
        "meta": {"has_more": more_before if before else more_after,
                 "after_cursor": after_cursor, "before_cursor": before_cursor},
        "links": {
            "next": _page_url(request, {"page[size]": size, "page[after]": after_cursor,
                                        "page[before]": None}) if more_after and chunk else None,
            "prev": _page_url(request, {"page[size]": size, "page[before]": before_cursor,
                                        "page[after]": None}) if more_before and chunk else None,
        },
    }
    return Page(chunk, body)


def _cursor_id(cursor: str) -> int:
    kind, value = decode_cursor(cursor, 2)
    if kind != "id" or not value.lstrip("-").isdigit():
        raise pagination_error("cursor is not valid")
    return int(value)


def offset_page(request: Request, ids: list[int], *, search: bool = False) -> Page:
    """Offset pagination (``page``, ``per_page``) over the first 10,000 records (lists) or
    1,000 results (search: a page reaching past them is refused, as Zendesk does)."""
    page = _int_param(request, "page", 1)
    per_page = min(max(_int_param(request, "per_page", DEFAULT_PAGE_SIZE), 1), MAX_PAGE_SIZE)
    if page < 1:
        raise bad_request("page must be a positive integer")
    start = (page - 1) * per_page
    if search and start + per_page > SEARCH_RESULT_CAP:
        raise _search_cap_error()
    cap = SEARCH_RESULT_CAP if search else OFFSET_RECORD_CAP
    if start >= cap:
        raise _offset_cap_error()
    end = min(len(ids), start + per_page, cap)
    chunk = ids[start:end]
    body: dict[str, Any] = {
        "next_page": _page_url(request, {"page": page + 1, "per_page": per_page})
        if end < len(ids) else None,
        "previous_page": _page_url(request, {"page": page - 1, "per_page": per_page})
        if page > 1 else None,
        "count": len(ids),
    }
    return Page(chunk, body)


def _offset_cap_error() -> ApiError:
    return pagination_error(
        f"Offset pagination is limited to the first {OFFSET_RECORD_CAP} records; "
        "use cursor pagination (page[size]) to retrieve more")


def _search_cap_error() -> ApiError:
    return ApiError(422, {"error": "invalid",
                          "description": "Invalid search: Requested response size was greater than "
                                         f"Search Response Limits ({SEARCH_RESULT_CAP})"})


def list_page(request: Request, ids: list[int]) -> Page:
    return cursor_page(request, ids) if uses_cursor(request) else offset_page(request, ids)


# --------------------------------------------------------------------------------------
# Search
# --------------------------------------------------------------------------------------

_TERM = re.compile(r'(-?)(?:(\w+)(:|>=|<=|>|<))?("(?:[^"]*)"|\S+)')
_STATUS_ORDER = {s: i for i, s in enumerate(TICKET_STATUSES)}
_PRIORITY_ORDER = {p: i for i, p in enumerate(TICKET_PRIORITIES)}


@dataclass(frozen=True)
class Term:
    negate: bool
    key: str | None
    op: str
    value: str


def parse_query(query: str) -> list[Term]:
    terms = []
    for m in _TERM.finditer(query):
        negate, key, op, value = m.group(1) == "-", m.group(2), m.group(3) or ":", m.group(4)
        if value.startswith('"') and value.endswith('"') and len(value) >= 2:
            value = value[1:-1]
        terms.append(Term(negate, key.lower() if key else None, op, value))
    return terms


def _text_match(candidate: Any, value: str, *, exact: bool) -> bool:
    if candidate is None:
        return value.lower() == "none"
    if isinstance(candidate, list | tuple | set):
        return any(_text_match(c, value, exact=exact) for c in candidate)
    text, wanted = str(candidate).lower(), value.lower()
    if wanted.endswith("*"):
        return text.startswith(wanted[:-1])
    return text == wanted if exact else wanted in text


def _parse_when(value: str) -> datetime | None:
    try:
        if len(value) == 10:
            return datetime.fromisoformat(value).replace(tzinfo=UTC)
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _compare(candidate: Any, op: str, value: Any) -> bool:
    if candidate is None or value is None:
        return False
    if op == ":":
        return bool(candidate == value)
    if op == ">":
        return bool(candidate > value)
    if op == "<":
        return bool(candidate < value)
    if op == ">=":
        return bool(candidate >= value)
    return bool(candidate <= value)


class Searcher:
    """Zendesk search-syntax subset over organizations, users and tickets."""

    KINDS = ("organization", "user", "ticket")

    def __init__(self, store: SupportStore, indexes: Indexes) -> None:
        self.store = store
        self.ix = indexes

    def search(self, query: str) -> list[tuple[str, int]]:
        terms = parse_query(query)
        kinds = list(self.KINDS)
        rest = []
        for t in terms:
            if t.key == "type" and not t.negate:
                if t.value.lower() not in self.KINDS:
                    return []
                kinds = [t.value.lower()]
            else:
                rest.append(t)
        hits: list[tuple[str, int]] = []
        for kind in kinds:
            table = self._table(kind)
            for rid in sorted(self._candidates(kind, rest)):
                rec = table.get(rid)
                if rec is not None and all(self._matches(kind, rec, t) != t.negate for t in rest):
                    hits.append((kind, rid))
        return hits

    def _table(self, kind: str) -> dict[int, Record]:
        return {"organization": self.store.organizations, "user": self.store.users,
                "ticket": self.store.tickets}[kind]

    def _candidates(self, kind: str, terms: list[Term]) -> Iterable[int]:
        """The smallest id set an index gives for one of the terms (all ids otherwise)."""
        for t in terms:
            if t.negate or t.op != ":" or t.value.endswith("*"):
                continue
            if kind == "organization" and t.key == "external_id":
                rid = self.store.orgs_by_external_id.get(t.value)
                if rid is not None:
                    return [rid]
                return [oid for oid, o in self.store.organizations.items()
                        if _text_match(o.get("external_id"), t.value, exact=True)]
            if kind == "organization" and t.key == "name":
                return self.ix.org_names.get(t.value.strip().lower())
            if kind == "user" and t.key == "email":
                return self.ix.user_emails.get(t.value.strip().lower())
            if kind == "ticket" and t.key in ("organization", "organization_id") and t.value.isdigit():
                return self.ix.tickets_by_org.get(int(t.value))
        return self._table(kind).keys()

    def _matches(self, kind: str, rec: Record, t: Term) -> bool:
        if t.key is None:
            return self._free_text(kind, rec, t.value)
        key = t.key
        if key in ("created", "updated", "created_at", "updated_at"):
            when = _parse_when(t.value)
            return _compare(rec.get(key if key.endswith("_at") else f"{key}_at"), t.op, when)
        if key == "id":
            return t.value.isdigit() and _compare(rec.get("id"), t.op, int(t.value))
        if key in ("tags", "tag"):
            return _text_match(rec.get("tags") or [], t.value, exact=True)
        if kind == "ticket":
            return self._ticket_field(rec, key, t)
        if kind == "user":
            return self._user_field(rec, key, t)
        return self._org_field(rec, key, t)

    def _free_text(self, kind: str, rec: Record, value: str) -> bool:
        fields_ = {"organization": ("name", "external_id", "details", "notes", "domain_names"),
                   "user": ("name", "email", "external_id"),
                   "ticket": ("subject", "description", "external_id")}[kind]
        return any(_text_match(rec.get(f), value, exact=False) for f in fields_ if rec.get(f))

    def _org_ref(self, org_id: Any, value: str) -> bool:
        if value.isdigit():
            return org_id == int(value)
        if value.lower() == "none":
            return org_id is None
        org = self.store.organizations.get(org_id) if org_id is not None else None
        return org is not None and _text_match(org.get("name"), value, exact=True)

    def _user_ref(self, user_id: Any, value: str) -> bool:
        if value.isdigit():
            return user_id == int(value)
        if value.lower() == "none":
            return user_id is None
        user = self.store.users.get(user_id) if user_id is not None else None
        return user is not None and (_text_match(user.get("email"), value, exact=True)
                                     or _text_match(user.get("name"), value, exact=True))

    def _ticket_field(self, rec: Record, key: str, t: Term) -> bool:
        if key == "status":
            if t.op == ":":
                return _text_match(rec.get("status"), t.value, exact=True)
            return _compare(_STATUS_ORDER.get(rec.get("status") or ""), t.op,
                            _STATUS_ORDER.get(t.value.lower()))
        if key == "priority":
            if t.op == ":":
                return _text_match(rec.get("priority"), t.value, exact=True)
            return _compare(_PRIORITY_ORDER.get(rec.get("priority") or ""), t.op,
                            _PRIORITY_ORDER.get(t.value.lower()))
        if key in ("type", "ticket_type"):
            return _text_match(rec.get("type"), t.value, exact=True)
        if key in ("organization", "organization_id"):
            return self._org_ref(rec.get("organization_id"), t.value)
        if key in ("requester", "requester_id"):
            return self._user_ref(rec.get("requester_id"), t.value)
        if key in ("assignee", "assignee_id"):
            return self._user_ref(rec.get("assignee_id"), t.value)
        if key in ("subject", "description", "comment"):
            return _text_match(rec.get("description" if key == "comment" else key), t.value, exact=False)
        if key in ("via", "channel"):
            return _text_match((rec.get("via") or {}).get("channel"), t.value, exact=True)
        return _text_match(rec.get(key), t.value, exact=True)

    def _user_field(self, rec: Record, key: str, t: Term) -> bool:
        if key in ("organization", "organization_id"):
            return self._org_ref(rec.get("organization_id"), t.value)
        if key == "name":
            return _text_match(rec.get("name"), t.value, exact=False)
        return _text_match(rec.get(key), t.value, exact=True)

    def _org_field(self, rec: Record, key: str, t: Term) -> bool:
        custom = rec.get("organization_fields") or {}
        if key in custom or key in {f["key"] for f in self.store.organization_fields}:
            return _text_match(custom.get(key), t.value, exact=True)
        if key == "name":
            return _text_match(rec.get("name"), t.value, exact=True)
        if key in ("details", "notes", "domain_names"):
            return _text_match(rec.get(key), t.value, exact=False)
        return _text_match(rec.get(key), t.value, exact=True)


def sort_hits(store: SupportStore, hits: list[tuple[str, int]], sort_by: str | None,
              sort_order: str | None) -> list[tuple[str, int]]:
    if not sort_by:
        return hits
    tables = {"organization": store.organizations, "user": store.users, "ticket": store.tickets}
    attr = {"ticket_type": "type"}.get(sort_by, sort_by)
    order = {"priority": _PRIORITY_ORDER, "status": _STATUS_ORDER}.get(sort_by)

    def key(hit: tuple[str, int]) -> tuple[int, Any, int]:
        value = tables[hit[0]][hit[1]].get(attr)
        if order is not None:
            value = order.get(value or "", -1)
        elif isinstance(value, datetime):
            value = micros(value)
        elif value is None:
            return (0, 0, hit[1])
        else:
            value = str(value)
        return (1, value, hit[1])

    return sorted(hits, key=key, reverse=(sort_order or "desc").lower() != "asc")


# --------------------------------------------------------------------------------------
# Request bodies: validation
# --------------------------------------------------------------------------------------


async def _wrapped_body(request: Request, root: str) -> dict[str, Any]:
    try:
        data = json.loads(await request.body() or b"null")
    except ValueError as exc:
        raise bad_request("The request body is not valid JSON", "InvalidJSON") from exc
    if not isinstance(data, dict) or not isinstance(data.get(root), dict):
        raise bad_request(f"Parameter {root} is required and must be an object", "ParameterMissing")
    return dict(data[root])


def _opt_str(body: dict[str, Any], key: str, title: str) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool) and key == "external_id":
        return str(value)
    if not isinstance(value, str):
        raise invalid_value(key, title, "is invalid")
    return value


def _str_list(body: dict[str, Any], key: str, title: str) -> list[str]:
    value = body.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise invalid_value(key, title, "must be a list of strings")
    return [v.strip() for v in value if v.strip()]


def _opt_int(body: dict[str, Any], key: str, title: str) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, str) and value.isdigit():
            return int(value)
        raise invalid_value(key, title, "is invalid")
    return value


def _opt_bool(body: dict[str, Any], key: str, title: str, default: bool) -> bool:
    value = body.get(key, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise invalid_value(key, title, "is invalid")
    return value


def validate_organization_fields(store: SupportStore, given: Any) -> dict[str, Any]:
    """Normalize custom field values (unknown keys are ignored, as Zendesk does)."""
    if given is None:
        return {}
    if not isinstance(given, dict):
        raise invalid_value("organization_fields", "Organization fields", "must be an object")
    defs = {f["key"]: f for f in store.organization_fields}
    out: dict[str, Any] = {}
    for key, value in given.items():
        fdef = defs.get(key)
        if fdef is None:
            continue
        title = str(fdef.get("title") or key)
        if value is None or value == "":
            out[key] = None
            continue
        ftype = fdef["type"]
        if ftype == "dropdown":
            if value not in fdef.get("options", []):
                raise invalid_value(key, title, f"{value!r} is not a valid option")
            out[key] = value
        elif ftype == "date":
            when = _parse_when(value) if isinstance(value, str) else None
            if when is None:
                raise invalid_value(key, title, "is not a valid date (YYYY-MM-DD)")
            out[key] = when.date().isoformat()
        elif ftype in ("integer", "decimal"):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise invalid_value(key, title, "is not a number")
            out[key] = value
        elif ftype == "checkbox":
            if not isinstance(value, bool):
                raise invalid_value(key, title, "is not a boolean")
            out[key] = value
        else:
            if not isinstance(value, str | int | float) or isinstance(value, bool):
                raise invalid_value(key, title, "is invalid")
            out[key] = str(value)
    return out


# --------------------------------------------------------------------------------------
# Authentication (pure ASGI, before routing; credentials are never logged)
# --------------------------------------------------------------------------------------


def authenticate(store: SupportStore, header: str | None) -> str | None:
    """The agent's email for a valid ``Authorization`` header, else None."""
    if not header:
        return None
    scheme, _, credentials = header.strip().partition(" ")
    credentials = credentials.strip()
    if scheme.lower() == "bearer" and credentials:
        for email, token in list(store.tokens.items()):
            if hmac.compare_digest(token.encode(), credentials.encode()):
                return email
        return None
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(credentials, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    user, sep, secret = decoded.partition(":")
    if not sep or not user.endswith("/token"):
        return None
    email = user[: -len("/token")]
    expected = store.tokens.get(email)
    if expected is None or not hmac.compare_digest(expected.encode(), secret.encode()):
        return None
    return email


class AuthMiddleware:
    def __init__(self, app: ASGIApp, store: SupportStore) -> None:
        self.app = app
        self.store = store

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        header = None
        for name, value in scope.get("headers", []):
            if name == b"authorization":
                header = value.decode("latin-1")
                break
        email = authenticate(self.store, header)
        if email is None:
            await not_authenticated().response()(scope, receive, send)
            return
        scope.setdefault("state", {})["agent_email"] = email
        await self.app(scope, receive, send)


# --------------------------------------------------------------------------------------
# The API
# --------------------------------------------------------------------------------------


def _base(request: Request) -> str:
    """The request's base URL without a trailing slash (memoized on the scope)."""
    base = request.scope.get("syncdesk.base_url")
    if base is None:
        base = request.scope["syncdesk.base_url"] = str(request.base_url).rstrip("/")
    return str(base)


def _path_id(request: Request, name: str) -> int:
    raw = str(request.path_params[name])
    if raw.endswith(".json"):
        raw = raw[:-5]
    if not raw.isdigit():
        raise record_not_found()
    return int(raw)


class ZendeskApi:
    """Request handlers over one :class:`SupportStore`."""

    def __init__(self, store: SupportStore, clock: Clock) -> None:
        self.store = store
        self.clock = clock
        self.ix = Indexes(store)
        self.searcher = Searcher(store, self.ix)

    # ---- organizations ------------------------------------------------------------------

    async def list_organizations(self, request: Request) -> Response:
        with self.store.lock:
            page = list_page(request, self.ix.org_ids.current())
            items = [render_organization(self.store, self.store.organizations[i], _base(request))
                     for i in page.ids]
        return JSONResponse({"organizations": items, **page.body})

    async def show_organization(self, request: Request) -> Response:
        oid = _path_id(request, "organization_id")
        with self.store.lock:
            org = self.store.organizations.get(oid)
            if org is None:
                raise record_not_found()
            return JSONResponse({"organization": render_organization(self.store, org, _base(request))})

    async def create_organization(self, request: Request) -> Response:
        body = await _wrapped_body(request, "organization")
        with self.store.lock:
            org = self._new_organization(body)
            self.store.add_organization(org)
            self.ix.org_ids.add(org["id"])
            self.ix.org_names.add(org["id"])
            rendered = render_organization(self.store, org, _base(request))
        request.state.write = True
        return JSONResponse({"organization": rendered}, status_code=201,
                            headers={"Location": rendered["url"]})

    def _new_organization(self, body: dict[str, Any]) -> Record:
        name = _opt_str(body, "name", "Name")
        if not name or not name.strip():
            raise invalid_value("name", "Name", "cannot be blank", "BlankValue")
        name = name.strip()
        self._check_org_unique(name, _opt_str(body, "external_id", "External ID"), None)
        now = self.clock()
        fields_ = {f["key"]: None for f in self.store.organization_fields}
        fields_.update(validate_organization_fields(self.store, body.get("organization_fields")))
        return {
            "id": self.store.new_id("organization"),
            "name": name,
            "external_id": _opt_str(body, "external_id", "External ID") or None,
            "domain_names": _str_list(body, "domain_names", "Domain names"),
            "details": _opt_str(body, "details", "Details"),
            "notes": _opt_str(body, "notes", "Notes"),
            "group_id": _opt_int(body, "group_id", "Group"),
            "shared_tickets": _opt_bool(body, "shared_tickets", "Shared tickets", False),
            "shared_comments": _opt_bool(body, "shared_comments", "Shared comments", False),
            "tags": _str_list(body, "tags", "Tags"),
            "organization_fields": fields_,
            "created_at": now,
            "updated_at": now,
        }

    def _check_org_unique(self, name: str | None, external_id: str | None, own_id: int | None) -> None:
        details: dict[str, list[dict[str, str]]] = {}
        if name is not None and (self.ix.org_names.get(name.strip().lower()) - {own_id}):
            details["name"] = [{"description": "Name: has already been taken", "error": "DuplicateValue"}]
        if external_id:
            holder = self.store.orgs_by_external_id.get(external_id)
            if holder is not None and holder != own_id and holder in self.store.organizations:
                details["external_id"] = [{"description": "External ID: has already been taken",
                                           "error": "DuplicateValue"}]
        if details:
            raise record_invalid(details)

    async def update_organization(self, request: Request) -> Response:
        oid = _path_id(request, "organization_id")
        body = await _wrapped_body(request, "organization")
        with self.store.lock:
            org = self.store.organizations.get(oid)
            if org is None:
                raise record_not_found()
            old = dict(org)
            changes = self._organization_changes(org, body)
            org.update(changes)
            org["updated_at"] = max(self.clock(), org.get("updated_at") or EPOCH)
            if "external_id" in changes and old.get("external_id") != org.get("external_id"):
                if old.get("external_id") and self.store.orgs_by_external_id.get(old["external_id"]) == oid:
                    del self.store.orgs_by_external_id[old["external_id"]]
                if org.get("external_id"):
                    self.store.orgs_by_external_id[org["external_id"]] = oid
            if "name" in changes:
                self.ix.org_names.replace(oid, old)
            rendered = render_organization(self.store, org, _base(request))
        request.state.write = True
        return JSONResponse({"organization": rendered})

    def _organization_changes(self, org: Record, body: dict[str, Any]) -> Record:
        changes: Record = {}
        if "name" in body:
            name = _opt_str(body, "name", "Name")
            if not name or not name.strip():
                raise invalid_value("name", "Name", "cannot be blank", "BlankValue")
            changes["name"] = name.strip()
        if "external_id" in body:
            changes["external_id"] = _opt_str(body, "external_id", "External ID") or None
        self._check_org_unique(changes.get("name"), changes.get("external_id"), org["id"])
        for key, title in (("details", "Details"), ("notes", "Notes")):
            if key in body:
                changes[key] = _opt_str(body, key, title)
        for key, title in (("domain_names", "Domain names"), ("tags", "Tags")):
            if key in body:
                changes[key] = _str_list(body, key, title)
        if "group_id" in body:
            changes["group_id"] = _opt_int(body, "group_id", "Group")
        for key, title in (("shared_tickets", "Shared tickets"), ("shared_comments", "Shared comments")):
            if key in body:
                changes[key] = _opt_bool(body, key, title, bool(org.get(key)))
        if "organization_fields" in body:
            merged = dict(org.get("organization_fields") or {})
            merged.update(validate_organization_fields(self.store, body["organization_fields"]))
            changes["organization_fields"] = merged
        return changes

    async def search_organizations(self, request: Request) -> Response:
        external_id = request.query_params.get("external_id")
        name = request.query_params.get("name")
        if not external_id and not name:
            raise bad_request("Provide external_id or name", "InvalidSearch")
        with self.store.lock:
            if external_id:
                rid = self.store.orgs_by_external_id.get(external_id)
                if rid is None:  # external ids are case-insensitive
                    wanted = external_id.lower()
                    ids = sorted(oid for oid, o in self.store.organizations.items()
                                 if (o.get("external_id") or "").lower() == wanted)
                else:
                    ids = [rid] if rid in self.store.organizations else []
            else:
                ids = sorted(self.ix.org_names.get((name or "").strip().lower()))
            items = [render_organization(self.store, self.store.organizations[i], _base(request)) for i in ids]
        return JSONResponse({"organizations": items, "next_page": None, "previous_page": None,
                             "count": len(items)})

    async def list_organization_fields(self, request: Request) -> Response:
        with self.store.lock:
            for fdef in self.store.organization_fields:
                if "id" not in fdef:
                    fdef["id"] = self.store.new_id("organization_field")
            items = [render_organization_field(f, i, _base(request))
                     for i, f in enumerate(self.store.organization_fields)]
        return JSONResponse({"organization_fields": items, "next_page": None, "previous_page": None,
                             "count": len(items)})

    # ---- users --------------------------------------------------------------------------

    async def list_users(self, request: Request) -> Response:
        roles = set(request.query_params.getlist("role[]"))
        if request.query_params.get("role"):
            roles.add(request.query_params["role"])
        external_id = request.query_params.get("external_id")
        with self.store.lock:
            ids = self.ix.user_ids.current()
            if roles or external_id:
                users = self.store.users
                ids = [i for i in ids
                       if (not roles or (users[i].get("role") or "end-user") in roles)
                       and (not external_id or users[i].get("external_id") == external_id)]
            page = list_page(request, ids)
            items = [render_user(self.store, self.store.users[i], _base(request)) for i in page.ids]
        return JSONResponse({"users": items, **page.body})

    async def show_user(self, request: Request) -> Response:
        uid = _path_id(request, "user_id")
        with self.store.lock:
            user = self.store.users.get(uid)
            if user is None:
                raise record_not_found()
            return JSONResponse({"user": render_user(self.store, user, _base(request))})

    async def create_user(self, request: Request) -> Response:
        body = await _wrapped_body(request, "user")
        with self.store.lock:
            user = self._new_user(body)
            self.store.users[user["id"]] = user
            self.ix.user_ids.add(user["id"])
            self.ix.user_emails.add(user["id"])
            rendered = render_user(self.store, user, _base(request))
        request.state.write = True
        return JSONResponse({"user": rendered}, status_code=201, headers={"Location": rendered["url"]})

    def _new_user(self, body: dict[str, Any]) -> Record:
        name = _opt_str(body, "name", "Name")
        if not name or not name.strip():
            raise invalid_value("name", "Name", "cannot be blank", "BlankValue")
        email = _opt_str(body, "email", "Email")
        if email is not None:
            email = email.strip()
            if not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", email):
                raise invalid_value("email", "Email", f"{email} is not properly formatted", "InvalidFormat")
            if self.ix.user_emails.get(email.lower()):
                raise invalid_value("email", "Email", f"{email} is already being used by another user",
                                    "DuplicateValue")
        role = _opt_str(body, "role", "Role") or "end-user"
        if role not in USER_ROLES:
            raise invalid_value("role", "Role", "is not valid")
        org_id = _opt_int(body, "organization_id", "Organization")
        if org_id is not None and org_id not in self.store.organizations:
            raise invalid_value("organization_id", "Organization", "is invalid")
        now = self.clock()
        return {
            "id": self.store.new_id("user"), "name": name.strip(), "email": email, "role": role,
            "organization_id": org_id, "external_id": _opt_str(body, "external_id", "External ID"),
            "phone": _opt_str(body, "phone", "Phone"), "tags": _str_list(body, "tags", "Tags"),
            "active": True, "verified": bool(body.get("verified", False)),
            "created_at": now, "updated_at": now,
        }

    # ---- tickets ------------------------------------------------------------------------

    async def list_tickets(self, request: Request) -> Response:
        external_id = request.query_params.get("external_id")
        with self.store.lock:
            ids = self.ix.ticket_ids.current()
            if external_id:
                ids = [i for i in ids if self.store.tickets[i].get("external_id") == external_id]
            page = list_page(request, ids)
            items = [render_ticket(self.store, self.store.tickets[i], _base(request)) for i in page.ids]
        return JSONResponse({"tickets": items, **page.body})

    async def show_ticket(self, request: Request) -> Response:
        tid = _path_id(request, "ticket_id")
        with self.store.lock:
            ticket = self.store.tickets.get(tid)
            if ticket is None:
                raise record_not_found()
            return JSONResponse({"ticket": render_ticket(self.store, ticket, _base(request))})

    async def create_ticket(self, request: Request) -> Response:
        body = await _wrapped_body(request, "ticket")
        agent_email = getattr(request.state, "agent_email", None)
        with self.store.lock:
            ticket = self._new_ticket(body, agent_email)
            tid = ticket["id"]
            self.store.tickets[tid] = ticket
            self.ix.ticket_ids.add(tid)
            self.ix.timeline.touch(tid)
            self.ix.tickets_by_org.add(tid)
            rendered = render_ticket(self.store, ticket, _base(request))
        request.state.write = True
        audit = {
            "id": tid * 1000 + 1, "ticket_id": tid, "created_at": rendered["created_at"],
            "author_id": ticket.get("submitter_id"), "metadata": {"system": {}, "custom": {}},
            "via": ticket["via"],
            "events": [{"id": tid * 1000 + 2, "type": "Comment", "author_id": ticket.get("submitter_id"),
                        "body": ticket["description"], "public": True, "attachments": []}],
        }
        return JSONResponse({"ticket": rendered, "audit": audit}, status_code=201,
                            headers={"Location": rendered["url"]})

    def _agent_user_id(self, email: str | None) -> int | None:
        if not email:
            return None
        ids = self.ix.user_emails.get(email.lower())
        return min(ids) if ids else None

    def _new_ticket(self, body: dict[str, Any], agent_email: str | None) -> Record:
        comment = body.get("comment")
        text = None
        if isinstance(comment, dict):
            text = comment.get("body") or comment.get("html_body")
        elif isinstance(comment, str):
            text = comment
        if not isinstance(text, str) or not text.strip():
            raise invalid_value("base", "Description", "cannot be blank", "BlankValue")
        requester_id = _opt_int(body, "requester_id", "Requester")
        if requester_id is None:
            requester_id = self._agent_user_id(agent_email)
        if requester_id is None or requester_id not in self.store.users:
            raise invalid_value("requester", "Requester", "is invalid" if requester_id else "cannot be blank")
        org_id = _opt_int(body, "organization_id", "Organization")
        if org_id is None:
            org_id = self.store.users[requester_id].get("organization_id")
        elif org_id not in self.store.organizations:
            raise invalid_value("organization_id", "Organization", "is invalid")
        priority = _opt_str(body, "priority", "Priority")
        if priority is not None and priority not in TICKET_PRIORITIES:
            raise invalid_value("priority", "Priority", "is not valid")
        ttype = _opt_str(body, "type", "Type")
        if ttype is not None and ttype not in TICKET_TYPES:
            raise invalid_value("type", "Type", "is not valid")
        assignee_id = _opt_int(body, "assignee_id", "Assignee")
        status = _opt_str(body, "status", "Status") or ("open" if assignee_id else "new")
        if status not in TICKET_STATUSES:
            raise invalid_value("status", "Status", "is not valid")
        subject = _opt_str(body, "subject", "Subject")
        if not subject:
            subject = text.strip().splitlines()[0][:80]
        now = self.clock()
        return {
            "id": self.store.new_id("ticket"), "external_id": _opt_str(body, "external_id", "External ID"),
            "subject": subject, "description": text, "status": status, "priority": priority,
            "type": ttype, "requester_id": requester_id,
            "submitter_id": self._agent_user_id(agent_email) or requester_id,
            "assignee_id": assignee_id, "organization_id": org_id,
            "group_id": _opt_int(body, "group_id", "Group"), "tags": _str_list(body, "tags", "Tags"),
            "via": {"channel": "api", "source": {"from": {}, "to": {}, "rel": None}},
            "created_at": now, "updated_at": now,
        }

    # ---- search -------------------------------------------------------------------------

    async def search(self, request: Request) -> Response:
        query = request.query_params.get("query")
        if query is None or not query.strip():
            raise bad_request("Query must not be blank", "invalid")
        offset_page(request, [], search=True)  # refuse bad paging before searching
        sort_by, sort_order = request.query_params.get("sort_by"), request.query_params.get("sort_order")

        def run() -> tuple[list[dict[str, Any]], dict[str, Any]]:
            with self.store.lock:
                hits = sort_hits(self.store, self.searcher.search(query), sort_by, sort_order)
                page = offset_page(request, list(range(len(hits))), search=True)
                return [self._render_hit(*hits[i], _base(request)) for i in page.ids], page.body

        results, meta = await run_in_threadpool(run)
        return JSONResponse({"results": results, "facets": None, **meta})

    def _render_hit(self, kind: str, rid: int, base_url: str) -> dict[str, Any]:
        if kind == "organization":
            out = render_organization(self.store, self.store.organizations[rid], base_url)
        elif kind == "user":
            out = render_user(self.store, self.store.users[rid], base_url)
        else:
            out = render_ticket(self.store, self.store.tickets[rid], base_url)
        out["result_type"] = kind
        return out

    # ---- incremental export -------------------------------------------------------------

    async def incremental_tickets(self, request: Request) -> Response:
        per_page = min(max(_int_param(request, "per_page", EXPORT_MAX_PER_PAGE), 1), EXPORT_MAX_PER_PAGE)
        cursor, start_raw = request.query_params.get("cursor"), request.query_params.get("start_time")
        now = self.clock()
        cutoff = (micros(now - EXPORT_LAG), 0)
        if cursor:
            direction, us, rid = self._export_cursor(cursor)
            position = (us, rid)
        elif start_raw is not None:
            try:
                start = int(start_raw)
            except ValueError as exc:
                raise bad_request("start_time must be a unix timestamp") from exc
            if start > int((now - EXPORT_LAG).timestamp()):
                raise bad_request("Too recent start_time. Use a start_time older than 1 minute")
            direction, position = "a", (start * 1_000_000, 0)
        else:
            raise bad_request("start_time or cursor is required", "InvalidPaginationParameter")
        with self.store.lock:
            keys, chunk, lo, hi = self._export_window(direction, position, cutoff, per_page)
            if self.ix.timeline.is_stale(chunk):
                self.ix.timeline.rebuild()
                keys, chunk, lo, hi = self._export_window(direction, position, cutoff, per_page)
            tickets = []
            for us, rid in chunk:
                item = render_ticket(self.store, self.store.tickets[rid], _base(request))
                item["generated_timestamp"] = us // 1_000_000
                tickets.append(item)
            more_before = lo > 0
            more_after = hi < len(keys) and keys[hi] < cutoff
        last = chunk[-1] if chunk else (position if direction == "a" else None)
        first = chunk[0] if chunk else (position if direction == "b" else None)
        after_cursor = encode_cursor("a", *last) if last is not None else None
        before_cursor = encode_cursor("b", *first) if first is not None and more_before else None
        extra = {"per_page": str(per_page)} if "per_page" in request.query_params else {}
        base = f"{_base(request)}{request.url.path}"

        def url(c: str | None) -> str | None:
            return f"{base}?{urlencode({'cursor': c, **extra})}" if c else None

        return JSONResponse({
            "tickets": tickets,
            "after_url": url(after_cursor),
            "after_cursor": after_cursor,
            "before_url": url(before_cursor),
            "before_cursor": before_cursor,
            "end_of_stream": not (more_before if direction == "b" else more_after),
        })

    def _export_window(self, direction: str, position: tuple[int, int], cutoff: tuple[int, int],
                       per_page: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]], int, int]:
        keys = self.ix.timeline.current()
        limit = bisect.bisect_left(keys, cutoff)
        if direction == "a":
            lo = bisect.bisect_right(keys, position)
            hi = min(lo + per_page, limit)
        else:
            hi = min(bisect.bisect_left(keys, position), limit)
            lo = max(0, hi - per_page)
        lo = min(lo, hi)
        return keys, keys[lo:hi], lo, hi

    @staticmethod
    def _export_cursor(cursor: str) -> tuple[str, int, int]:
        direction, us, rid = decode_cursor(cursor, 3)
        if direction not in ("a", "b") or not us.lstrip("-").isdigit() or not rid.lstrip("-").isdigit():
            raise pagination_error("cursor is not valid")
        return direction, int(us), int(rid)

    # ---- routing ------------------------------------------------------------------------

    def routes(self) -> list[Route]:
        table: list[tuple[str, Callable[[Request], Any], list[str]]] = [
            ("/organizations", self.list_organizations, ["GET"]),
            ("/organizations", self.create_organization, ["POST"]),
            ("/organizations/search", self.search_organizations, ["GET"]),
            ("/organizations/{organization_id}", self.show_organization, ["GET"]),
            ("/organizations/{organization_id}", self.update_organization, ["PUT"]),
            ("/organization_fields", self.list_organization_fields, ["GET"]),
            ("/users", self.list_users, ["GET"]),
            ("/users", self.create_user, ["POST"]),
            ("/users/{user_id}", self.show_user, ["GET"]),
            ("/tickets", self.list_tickets, ["GET"]),
            ("/tickets", self.create_ticket, ["POST"]),
            ("/tickets/{ticket_id}", self.show_ticket, ["GET"]),
            ("/search", self.search, ["GET"]),
            ("/incremental/tickets/cursor", self.incremental_tickets, ["GET"]),
        ]
        routes: list[Route] = []
        for path, handler, methods in table:
            guarded = _guard(handler)
            if "{" in path:  # "{id}" also matches "{id}.json" (stripped in _path_id)
                routes.append(Route(API + path, guarded, methods=methods))
            else:
                routes.append(Route(API + path + ".json", guarded, methods=methods))
                routes.append(Route(API + path, guarded, methods=methods))
        return routes


def _guard(handler: Callable[[Request], Any]) -> Callable[[Request], Any]:
    async def endpoint(request: Request) -> Response:
        try:
            response: Response = await handler(request)
        except ApiError as exc:
            return exc.response()
        return response

    endpoint.__name__ = getattr(handler, "__name__", "endpoint")
    return endpoint


async def _http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    if status == 404:
        return JSONResponse({"error": "InvalidEndpoint", "description": "Not found"}, status_code=404)
    if status == 405:
        return JSONResponse({"error": "MethodNotAllowed", "description": "Method not allowed"},
                            status_code=405)
    return JSONResponse({"error": "Error", "description": str(getattr(exc, "detail", exc))},
                        status_code=status)


def create_app(store: SupportStore, injector: FaultInjector, *, clock: Clock | None = None) -> ASGIApp:
    """The demo support server: Zendesk's API over ``store``, behind auth and fault injection."""
    api = ZendeskApi(store, clock or _utc_now)
    app = Starlette(routes=api.routes(), exception_handlers={HTTPException: _http_error})
    return FaultMiddleware(AuthMiddleware(app, store), injector, render_error, rate_headers=True)

