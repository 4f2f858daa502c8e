"""What one system holds, in canonical form: the unit a refresh produces and the snapshot stores.

A full refresh produces a whole :class:`SystemData`; an incremental refresh a :class:`Delta`
(upserts and deletions) that :meth:`SystemData.apply` folds in. Records are keyed by their
native id in that system (``cus_...``, a Tryton id as text, a Zendesk id as text).

A record the system sent that cannot be read (a time out of range, a wrong type, a missing
field, an id listed twice with different content) is *quarantined*: left out of the tables
and listed in :attr:`SystemData.quarantined` as a :class:`Quarantined` (system, kind, id,
reason), so one bad record never stops a refresh. A full refresh's list replaces the old
one; an incremental refresh adds what it could not read and drops the entries of records it
has now read (or deleted). A record that was read before and cannot be read now keeps its
previous version in the tables (an incremental refresh) until it reads again.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from services.core.domain import (
    CreditNote,
    Customer,
    Entitlement,
    Invoice,
    LifecycleEvent,
    Plan,
    Refund,
    Subscription,
    SupportCase,
    System,
)
from services.core.redaction import redact


class Kind(enum.StrEnum):
    CUSTOMER = "customer"
    PLAN = "plan"
    SUBSCRIPTION = "subscription"
    INVOICE = "invoice"
    ENTITLEMENT = "entitlement"
    CASE = "case"
    EVENT = "event"  # history that no record keeps (e.g. a plan change reported by a billing event)
    CREDIT_NOTE = "credit_note"
    REFUND = "refund"


KIND_TYPES: dict[Kind, type] = {
    Kind.CUSTOMER: Customer,
    Kind.PLAN: Plan,
    Kind.SUBSCRIPTION: Subscription,
    Kind.INVOICE: Invoice,
    Kind.ENTITLEMENT: Entitlement,
    Kind.CASE: SupportCase,
    Kind.EVENT: LifecycleEvent,
    Kind.CREDIT_NOTE: CreditNote,
    Kind.REFUND: Refund,
}

Record = (Customer | Plan | Subscription | Invoice | Entitlement | SupportCase | LifecycleEvent | CreditNote
          | Refund)


_TABLE_FIELDS = ("customers", "plans", "subscriptions", "invoices", "entitlements", "cases", "events",
                 "credit_notes", "refunds")


@dataclass(frozen=True, slots=True)
class Quarantined:
    """One record a refresh could not read ("could not read" on the Systems page, a line of
    ``reconcile``'s stderr). ``kind`` is the :class:`Kind` value of a record the tables hold
    (``invoice``, ``customer``...) or, for what only helps build one, the vendor's object type
    (``product``, ``party.identifier``, ``ticket metric set``); ``record_id`` its id in the
    system ("?" when the id itself could not be read); ``reason`` names the field and what is
    wrong with it, in plain text."""

    system: System
    kind: str
    record_id: str
    reason: str

    @property
    def key(self) -> tuple[str, str]:
        return self.kind, self.record_id

    def line(self) -> str:
        """``billing invoice in_123 could not be read: created: ...``"""
        return f"{self.system.value} {self.kind} {self.record_id} could not be read: {self.reason}"


class Intake:
    """What a refresh read, record by record: puts each record in its table unless the
    system already listed the same id with different content (then neither copy is kept and
    the id is quarantined as a data-quality problem: never a silent overwrite; the same
    content twice is fine), and collects the records that could not be read.

    ``newer`` (optional) tells a legitimately newer version apart from a conflicting one:
    ``newer(old, new)`` True means ``new`` supersedes ``old`` (an incremental stream such as
    Zendesk's ticket export may list a ticket again after it changed)."""

    def __init__(self, system: System) -> None:
        self.system = system
        self.quarantined: dict[tuple[str, str], Quarantined] = {}
        self._conflicts: set[tuple[str, str]] = set()

    def bad(self, kind: str, record_id: object, reason: str) -> None:
        """Quarantine one record (the first reason given for it is kept). The reason is an
        upstream's text: passed through the redactor, on one line, at most 500 characters."""
        rid = "?" if record_id is None or record_id == "" else " ".join(str(record_id).split())[:200]
        entry = Quarantined(self.system, kind, rid, " ".join(redact(reason).split())[:500])
        self.quarantined.setdefault(entry.key, entry)

    def clear(self, kind: Kind | str, record_id: object) -> None:
        """A later version of the record read fine (an incremental refresh's event stream)."""
        name = kind.value if isinstance(kind, Kind) else kind
        if (name, str(record_id)) not in self._conflicts:
            self.quarantined.pop((name, str(record_id)), None)

    def put(self, table: dict[Any, Any], kind: Kind | str, key: Any, record: Any,
            newer: Callable[[Any, Any], bool] | None = None) -> bool:
        """Add ``record`` under ``key``; False when it conflicts (and is quarantined)."""
        name = kind.value if isinstance(kind, Kind) else kind
        if (name, str(key)) in self._conflicts:
            return False
        old = table.get(key)
        if old is None or old == record or (newer is not None and newer(old, record)):
            table[key] = record
            return True
        if newer is not None and newer(record, old):
            return True  # an older version listed after a newer one
        del table[key]
        self._conflicts.add((name, str(key)))
        self.bad(name, key, f"listed twice with different content ({differences(old, record)}); "
                            "neither copy is used")
        return False

    def into(self, data: SystemData) -> SystemData:
        data.quarantined.update(self.quarantined)
        return data


def differences(a: Any, b: Any) -> str:
    """The names of the fields two versions of a record differ in (for a dataclass or a
    mapping), else "content"."""
    names: list[str] = []
    if isinstance(a, tuple) and isinstance(b, tuple) and len(a) == len(b):
        parts = [differences(x, y) for x, y in zip(a, b, strict=True) if x != y]
        return "; ".join(parts) or "content differs"
    if hasattr(a, "model_dump") and type(a) is type(b):  # a validated payload (pydantic)
        a, b = a.model_dump(), b.model_dump()
    if dataclasses.is_dataclass(a) and type(a) is type(b):
        names = [f.name for f in dataclasses.fields(a) if getattr(a, f.name) != getattr(b, f.name)]
    elif isinstance(a, dict) and isinstance(b, dict):
        names = sorted(str(k) for k in a.keys() | b.keys() if a.get(k) != b.get(k))
    if not names:
        return "content differs"
    return ", ".join(names[:6]) + (" differ" if len(names) > 1 else " differs")


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
    credit_notes: dict[str, CreditNote] = field(default_factory=dict)
    refunds: dict[str, Refund] = field(default_factory=dict)
    #: the records the system sent that could not be read, by (kind, id): see the module doc
    quarantined: dict[tuple[str, str], Quarantined] = field(default_factory=dict)

    def table(self, kind: Kind) -> dict[str, Any]:
        tables: dict[Kind, dict[str, Any]] = {
            Kind.CUSTOMER: self.customers,
            Kind.PLAN: self.plans,
            Kind.SUBSCRIPTION: self.subscriptions,
            Kind.INVOICE: self.invoices,
            Kind.ENTITLEMENT: self.entitlements,
            Kind.CASE: self.cases,
            Kind.EVENT: self.events,
            Kind.CREDIT_NOTE: self.credit_notes,
            Kind.REFUND: self.refunds,
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
        copy = SystemData(self.system, **{f: dict(getattr(self, f)) for f in _TABLE_FIELDS},
                          quarantined=dict(self.quarantined))
        copy.apply(delta)
        return copy

    def apply(self, delta: Delta) -> None:
        for kind in Kind:
            table = self.table(kind)
            for key in delta.deletions.get(kind, ()):
                table.pop(key, None)
            table.update(delta.upserts.table(kind))
        if self.quarantined:
            for settled in delta.settled():
                self.quarantined.pop(settled, None)
        self.quarantined.update(delta.upserts.quarantined)


@dataclass
class Delta:
    """Changes since a cursor: records to insert or replace, ids to delete."""

    upserts: SystemData
    deletions: dict[Kind, set[str]] = field(default_factory=dict)
    #: quarantine keys (kind, id) of objects read fine this time that are not records of the
    #: tables (e.g. a Tryton party identifier): their old quarantine entries are dropped
    readable: set[tuple[str, str]] = field(default_factory=set)

    def count(self) -> int:
        return self.upserts.count() + sum(len(v) for v in self.deletions.values())

    def settled(self) -> set[tuple[str, str]]:
        """The quarantine keys this delta settles: every record it upserts or deletes, and
        :attr:`readable` (a record it quarantines again is re-added after)."""
        keys = {(kind.value, key) for kind, key, _ in self.upserts.items()}
        keys |= {(kind.value, key) for kind, ids in self.deletions.items() for key in ids}
        return keys | self.readable


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
