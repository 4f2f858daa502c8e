"""Zendesk's search syntax (subset) over organizations, users and tickets: the query parsed
into terms, matched with the indexes' help, and the hits sorted."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from services.demo.store import SupportStore
from services.demo.zendesk.indexes import Indexes
from services.demo.zendesk.records import TICKET_PRIORITIES, TICKET_STATUSES, Record
from services.demo.zendesk.timestamps import _parse_when, micros

#: a relative time in a date term (``updated>24hours``, ``created<2weeks``): that long before now
_RELATIVE = re.compile(r"(\d+)(minute|hour|day|week|month|year)s?", re.IGNORECASE)
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400, "week": 7 * 86400, "month": 30 * 86400,
                 "year": 365 * 86400}
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

    def __init__(self, store: SupportStore, indexes: Indexes, clock: Callable[[], datetime] | None = None) -> None:
        self.store = store
        self.ix = indexes
        self.clock = clock

    def _when(self, value: str) -> datetime | None:
        """A date term's moment: ISO 8601 (a date or a time), or a time relative to now."""
        m = _RELATIVE.fullmatch(value.strip())
        if m is not None and self.clock is not None:
            return self.clock() - timedelta(seconds=int(m.group(1)) * _UNIT_SECONDS[m.group(2).lower()])
        return _parse_when(value)

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
            when = self._when(t.value)
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
