"""Indexes over the support store, lazily rebuilt when the store changed behind the server's
back: sorted ids (bisect paging), the tickets' ``(updated_at, id)`` timeline (the incremental
export's order) and value -> ids lookups (organization names, user emails, tickets by
organization)."""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from services.demo.store import SupportStore
from services.demo.zendesk.records import Record
from services.demo.zendesk.timestamps import micros


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
