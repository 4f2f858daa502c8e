"""What one system holds, in canonical form: the unit a refresh produces and the snapshot stores.

A full refresh produces a whole :class:`SystemData`; an incremental refresh a :class:`Delta`
(upserts and deletions) that :meth:`SystemData.apply` folds in. Records are keyed by their
native id in that system (``cus_...``, a Tryton id as text, a Zendesk id as text).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from services.core.domain import (
    Customer,
    Entitlement,
    Invoice,
    LifecycleEvent,
    Plan,
    Subscription,
    SupportCase,
    System,
)


class Kind(enum.StrEnum):
    CUSTOMER = "customer"
    PLAN = "plan"
    SUBSCRIPTION = "subscription"
    INVOICE = "invoice"
    ENTITLEMENT = "entitlement"
    CASE = "case"
    EVENT = "event"  # history that no record keeps (e.g. a plan change reported by a billing event)


KIND_TYPES: dict[Kind, type] = {
    Kind.CUSTOMER: Customer,
    Kind.PLAN: Plan,
    Kind.SUBSCRIPTION: Subscription,
    Kind.INVOICE: Invoice,
    Kind.ENTITLEMENT: Entitlement,
    Kind.CASE: SupportCase,
    Kind.EVENT: LifecycleEvent,
}

Record = Customer | Plan | Subscription | Invoice | Entitlement | SupportCase | LifecycleEvent


_TABLE_FIELDS = ("customers", "plans", "subscriptions", "invoices", "entitlements", "cases", "events")


@dataclass
class SystemData:
    system: System
    customers: dict[str, Customer] = field(default_factory=dict)
    plans: dict[str, Plan] = field(default_factory=dict)
    subscriptions: dict[str, Subscription] = field(default_factory=dict)
    invoices: dict[str, Invoice] = field(default_factory=dict)
    entitlements: dict[str, Entitlement] = field(default_factory=dict)
    cases: dict[str, SupportCase] = field(default_factory=dict)
    events: dict[str, LifecycleEvent] = field(default_factory=dict)

    def table(self, kind: Kind) -> dict[str, Any]:
        tables: dict[Kind, dict[str, Any]] = {
            Kind.CUSTOMER: self.customers,
            Kind.PLAN: self.plans,
            Kind.SUBSCRIPTION: self.subscriptions,
            Kind.INVOICE: self.invoices,
            Kind.ENTITLEMENT: self.entitlements,
            Kind.CASE: self.cases,
            Kind.EVENT: self.events,
        }
        return tables[kind]

    def items(self) -> Iterator[tuple[Kind, str, Any]]:
        for kind in Kind:
            for key, record in self.table(kind).items():
                yield kind, key, record

    def count(self) -> int:
        return sum(len(self.table(k)) for k in Kind)

    def applied(self, delta: Delta) -> SystemData:
        """A new SystemData: this one with ``delta`` applied; this one is left as it is.

        The engine never changes data it has handed out (snapshots are read by the CPU thread
        and by the UI thread while the services run on theirs): each change is a new set of
        tables (shallow copies: the records themselves are shared, ~1 ms per 100,000)."""
        copy = SystemData(self.system, **{f: dict(getattr(self, f)) for f in _TABLE_FIELDS})
        copy.apply(delta)
        return copy

    def apply(self, delta: Delta) -> None:
        for kind in Kind:
            table = self.table(kind)
            for key in delta.deletions.get(kind, ()):
                table.pop(key, None)
            table.update(delta.upserts.table(kind))


@dataclass
class Delta:
    """Changes since a cursor: records to insert or replace, ids to delete."""

    upserts: SystemData
    deletions: dict[Kind, set[str]] = field(default_factory=dict)

    def count(self) -> int:
        return self.upserts.count() + sum(len(v) for v in self.deletions.values())


@dataclass
class RefreshResult:
    """What a connector returns: a whole SystemData (full) or a Delta (incremental), and the
    cursor to resume from next time (JSON-able; never holds a secret)."""

    system: System
    full: SystemData | None
    delta: Delta | None
    cursor: dict[str, Any]
    fetched_at: datetime
    requests: int = 0


@dataclass(frozen=True, slots=True)
class Progress:
    system: System
    phase: str  # e.g. "customers", "invoices"
    done: int
    total: int | None = None
    message: str = ""


ProgressCallback = Callable[[Progress], None]


def no_progress(_: Progress) -> None:
    return None


#: items freed per step by :func:`release`
RELEASE_BATCH = 2_000


def release(*containers: list[Any] | dict[Any, Any]) -> None:
    """Empty large containers a batch at a time. Call it in a worker thread on containers
    nobody else uses (e.g. the parsed pages of a refresh, once mapped). Dropping the last
    reference to a list of 100,000 parsed records frees them all in one C-level cascade that
    holds the GIL throughout (tens of ms of a frozen UI when it happens on the event loop);
    between batches the interpreter can hand the GIL over."""
    for container in containers:
        if isinstance(container, list):
            while container:
                del container[-RELEASE_BATCH:]
        else:
            while container:
                for _ in range(min(RELEASE_BATCH, len(container))):
                    container.popitem()
