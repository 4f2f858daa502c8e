"""The lifecycle timeline: one customer's events from all three systems on one time axis.

Pure and Qt-free (DESIGN.md "The lifecycle timeline"). A :class:`TimelineIndex` is built once
from a :class:`~services.core.reconcile.Snapshot` (one pass over every table: dicts of records per
customer, ERP invoices / subscriptions per billing reference), then :meth:`TimelineIndex.build`
costs only what one customer holds, so a console over 100,000 customers opens a timeline
instantly. :func:`build_timeline` is the one-shot convenience (it builds an index each call).

What a timeline holds
---------------------
- **Events derived from records** (billing customer / subscription / invoice dates, ERP
  party / invoice / subscription dates, support organization, tier state, tickets) and the
  **connector-provided events** of ``SystemData.events`` (e.g. Stripe plan changes, support
  tier changes). A connector event that repeats a derived one (same kind, same time and the
  same ref, or the same object when its ref is the vendor's event record) is dropped.
- **An ERP invoice's real state changes** at the times its record keeps: created, posted, paid,
  cancelled ("ERP invoice INV-1 cancelled" at its write time). A state it went through at a time
  the ERP does not keep (a paid invoice's posting) is a note on its first entry ("posted at a
  time the ERP does not keep"), never an entry at an invented time such as midnight of its
  invoice date. The cancellation is downstream of billing's void, when there is one.
- **Prorations and taxes** (services.core.timeline_money): a mid-cycle change at its own time
  with the invoice billing it downstream; each invoice's and credit note's tax per rate on the
  entry stating its total.
- **Credit notes and refunds**: billing's credit notes (issued / voided, with their lag from
  the invoice's finalization) and the ERP's (with their lag from billing's credit note of the
  same invoice and amount; "late" past the invoice grace) in the ``credit:in_X`` group; billing's
  refunds in the ``payment:in_X`` group with their lag from the payment.
- **Recorded history** (services.core.history): what a record was before it changed, kept by
  the engine when it saw both versions. A support tier change reads "Support tier changed
  enterprise → standard" at the time of the change; when it is the organization's current
  state, the derived "Support tier is …" entry of that moment becomes that change.
- **Correlation** (``TimelineEntry.group``): ``invoice:in_X`` (billing finalized -> ERP invoice
  created / posted), ``payment:in_X`` (billing paid -> ERP paid), ``subscription:sub_X``
  (billing subscription -> ERP sale subscription), ``tier:sub_X`` (subscription created /
  plan changed / cancelled -> support tier) and ``customer:cus_X`` (billing customer -> ERP
  party / support organization, informational). A downstream entry carries its ``lag`` from
  its upstream event and is ``"late"`` when the lag exceeds the grace period. A lag below zero
  (the copy is dated before its source: clock skew or back-dating) is kept as is and flagged in
  the entry's ``note`` ("... before ...").
- **Expected effects that did not happen** are synthetic entries in ``Timeline.missing``,
  placed at upstream time + grace: ``"missing"`` once the grace has passed at ``now``,
  ``"pending"`` while still inside it. Expectations are only raised against systems present
  in the snapshot (a system never fetched proves nothing).
- **Exception markers**: the ids of the given *open* :class:`SyncException` s are put on the
  entries of the object they name (``LifecycleEvent.exception_ids``): invoice rules on the
  ``invoice:`` group (``invoice.payment_state`` on the ``payment:`` group), subscription rules on
  the ``subscription:`` group, entitlement rules on the support tier entries, customer rules
  on the billing "customer created" entry; whatever finds no entry goes to the oldest entry.
  ``Timeline.exception_ids`` lists them all.

``Timeline.state`` (:class:`CustomerState`) is what the customer has now — the current billing
subscription's plan, quantity and status, the support tier — for a timeline's header.

An unknown customer id (no record in any system) is not an error: the result is an empty
timeline named ``"(unknown customer)"`` (``Timeline.known`` is False). A customer id that only
some records refer to (e.g. an ERP invoice booked on a party code no system has) is named by
its id.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Literal, TypeVar

from services.core.domain import (
    Customer,
    Entitlement,
    EventKind,
    ExternalRef,
    Invoice,
    InvoiceStatus,
    LifecycleEvent,
    Plan,
    Subscription,
    SupportCase,
    SyncException,
    System,
    Tier,
)
from services.core.history import parse_tier_change
from services.core.overview import current_subscription
from services.core.reconcile import Snapshot
from services.core.timeline_credits import credits_and_refunds
from services.core.timeline_money import proration, tax_text

EntryStatus = Literal["ok", "late", "missing", "pending"]

UNKNOWN_CUSTOMER = "(unknown customer)"
TIER_RANK: dict[Tier, int] = {Tier.STANDARD: 1, Tier.PREMIUM: 2, Tier.ENTERPRISE: 3}
SOLVED_STATUSES = frozenset({"solved", "closed"})
_FINALIZED = frozenset({InvoiceStatus.OPEN, InvoiceStatus.PAID, InvoiceStatus.VOID, InvoiceStatus.UNCOLLECTIBLE})
_SYSTEM_ORDER = {System.BILLING: 0, System.ERP: 1, System.SUPPORT: 2}
_KIND_ORDER = {kind: i for i, kind in enumerate(EventKind)}
_TRIGGER_KINDS = frozenset({EventKind.SUBSCRIPTION_CREATED, EventKind.SUBSCRIPTION_UPDATED,
                            EventKind.SUBSCRIPTION_CANCELED})
_OBJECT_ID = re.compile(r"\b((?:in|sub)_\w+)")

T = TypeVar("T")


@dataclass(frozen=True)
class TimelineConfig:
    invoice_grace: timedelta = timedelta(minutes=15)
    payment_grace: timedelta = timedelta(minutes=60)
    tier_grace: timedelta = timedelta(hours=1)
    subscription_grace: timedelta = timedelta(minutes=15)
    #: plan key -> tier; plans not listed use the tier billing reports for the plan
    plan_tiers: dict[str, Tier] = field(default_factory=dict)


@dataclass
class TimelineEntry:
    event: LifecycleEvent
    group: str | None = None  # correlation key, e.g. "invoice:in_X"
    lag: timedelta | None = None  # downstream entries: time since their upstream event
    status: EntryStatus = "ok"
    note: str = ""

    @property
    def at(self) -> datetime:
        return self.event.at

    @property
    def flagged(self) -> bool:
        """Needs an operator's eye: late, missing, pending, or dated before its upstream."""
        return self.status != "ok" or (self.lag is not None and self.lag < timedelta(0))


def _sort_key(entry: TimelineEntry) -> tuple[datetime, int, int, str, str]:
    ev = entry.event
    return ev.at, _SYSTEM_ORDER[ev.system], _KIND_ORDER[ev.kind], str(ev.ref), ev.summary


@dataclass(frozen=True)
class CustomerState:
    """What a customer has now (a timeline's header): the current billing subscription
    (:func:`~services.core.overview.current_subscription`) and the support tier."""

    subscription_id: str | None = None
    status: str = "none"  # the subscription's status; "none" without a subscription
    plan_key: str | None = None
    plan_name: str | None = None
    quantity: int | None = None
    #: the support tier as support holds it ("none": an organization without one); None: no organization
    tier: str | None = None

    def plan_text(self) -> str:
        """``"Pro monthly (pro_monthly) × 5"``; ``"no subscription"``."""
        if self.subscription_id is None:
            return "no subscription"
        name = f"{self.plan_name} ({self.plan_key})" if self.plan_name and self.plan_key else (
            self.plan_key or self.plan_name or "no plan")
        return f"{name} × {self.quantity}" if self.quantity is not None else name

    def summary(self) -> str:
        """``"plan Pro monthly (pro_monthly) × 5, active · support tier enterprise"``."""
        plan = "no subscription" if self.subscription_id is None else (
            f"plan {self.plan_text()}, {self.status.replace('_', ' ')}")
        tier = "no support organization" if self.tier is None else f"support tier {self.tier}"
        return f"{plan} · {tier}"


@dataclass
class Timeline:
    customer_id: str
    name: str
    identities: dict[System, list[ExternalRef]]
    entries: list[TimelineEntry]  # what happened, oldest first
    missing: list[TimelineEntry]  # synthetic: expected effects ("missing" or "pending"), oldest first
    exception_ids: list[str] = field(default_factory=list)  # every open exception of this customer
    state: CustomerState = field(default_factory=CustomerState)  # what the customer has now

    @property
    def known(self) -> bool:
        """False for a customer id no system knows and no record refers to."""
        return bool(self.identities or self.entries or self.missing)

    def oldest_first(self) -> list[TimelineEntry]:
        """Real and synthetic entries on one axis; at equal times upstream systems come first."""
        return sorted([*self.entries, *self.missing], key=_sort_key)

    def newest_first(self) -> list[TimelineEntry]:
        out = self.oldest_first()
        out.sort(key=lambda e: e.event.at, reverse=True)  # stable: ties keep upstream first
        return out


# -- helpers ------------------------------------------------------------------------------
def human_duration(delta: timedelta) -> str:
    """``timedelta(hours=2, minutes=5)`` -> ``"2 h 5 min"`` (sign dropped)."""
    secs = int(abs(delta.total_seconds()))
    if secs < 60:
        return f"{secs} s"
    mins = secs // 60
    if mins < 60:
        return f"{mins} min"
    hours, mins = divmod(mins, 60)
    if hours < 48:
        return f"{hours} h {mins} min" if mins else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _stamp(value: datetime) -> str:
    return f"{value:%Y-%m-%d %H:%M} UTC"


def tier_change_text(before: str, after: str) -> str:
    """How the timeline names a recorded tier change."""
    return f"Support tier changed {before} → {after}"


def _group_by(records: Iterable[T], key: str) -> dict[str, list[T]]:
    out: dict[str, list[T]] = defaultdict(list)
    for rec in records:
        value = getattr(rec, key)
        if value:
            out[value].append(rec)
    return dict(out)


def _ref_order(record: Customer | Subscription | Invoice | Entitlement | SupportCase) -> tuple[int, str]:
    ident = record.ref.id
    return (0, ident.zfill(20)) if ident.isdigit() else (1, ident)


@dataclass
class _Draft:
    at: datetime
    system: System
    kind: EventKind
    ref: ExternalRef
    summary: str
    group: str | None = None
    objects: set[str] = field(default_factory=set)
    lag: timedelta | None = None
    status: EntryStatus = "ok"
    notes: list[str] = field(default_factory=list)
    trigger_sub: str | None = None  # billing subscription change that should move the support tier
    tier_state: bool = False  # a support tier fact (derived state or connector tier change)
    synthetic: bool = False
    source: LifecycleEvent | None = None  # connector event it came from
    exception_ids: list[str] = field(default_factory=list)

    def entry(self, customer_id: str) -> TimelineEntry:
        if self.source is not None:
            event = replace(self.source, at=self.at, summary=self.summary, correlation_key=self.group,
                            exception_ids=tuple(self.exception_ids))
        else:
            event = LifecycleEvent(at=self.at, system=self.system, kind=self.kind, customer_id=customer_id,
                                   ref=self.ref, summary=self.summary, correlation_key=self.group,
                                   exception_ids=tuple(self.exception_ids))
        return TimelineEntry(event=event, group=self.group, lag=self.lag, status=self.status,
                             note="; ".join(self.notes))


# -- the index ------------------------------------------------------------------------------
class TimelineIndex:
    """Built once per snapshot (one pass over each table); :meth:`build` then touches only the
    records of the requested customer. The index keeps references to the snapshot's records:
    rebuild it after a refresh."""

    def __init__(self, snapshot: Snapshot, config: TimelineConfig | None = None,
                 exceptions: Iterable[SyncException] = ()) -> None:
        self.config = config or TimelineConfig()
        self.loaded = frozenset(snapshot.systems)
        b, e, s = snapshot.get(System.BILLING), snapshot.get(System.ERP), snapshot.get(System.SUPPORT)
        self.b_invoices_by_id = b.invoices
        self.b_customers = _group_by(b.customers.values(), "customer_id")
        for key, cust in b.customers.items():  # a billing customer is its own id even if the field is unset
            if not cust.customer_id:
                self.b_customers.setdefault(key, []).append(cust)
        self.b_subs = _group_by(b.subscriptions.values(), "customer_id")
        self.b_invoices = _group_by(b.invoices.values(), "customer_id")
        self.e_parties = _group_by(e.customers.values(), "customer_id")
        self.e_invoices = _group_by(e.invoices.values(), "customer_id")
        self.e_invoices_by_ref = _group_by(e.invoices.values(), "billing_invoice_id")
        self.e_subs = _group_by(e.subscriptions.values(), "customer_id")
        self.e_subs_by_ref = _group_by(e.subscriptions.values(), "billing_subscription_id")
        self.b_credits = _group_by(b.credit_notes.values(), "customer_id")
        self.b_refunds = _group_by(b.refunds.values(), "customer_id")
        self.e_invoices_by_id = e.invoices
        self.e_credits = _group_by(e.credit_notes.values(), "customer_id")
        self.e_credit_refs = frozenset(cn.ref for cn in e.credit_notes.values())
        self.s_orgs = _group_by(s.customers.values(), "customer_id")
        self.s_ents = _group_by(s.entitlements.values(), "customer_id")
        self.s_cases = _group_by(s.cases.values(), "customer_id")
        self.events: dict[str, list[LifecycleEvent]] = defaultdict(list)
        for data in (b, e, s):
            for ev in data.events.values():
                if ev.customer_id:
                    self.events[ev.customer_id].append(ev)
        self.plans: dict[str, Plan] = {}
        for plan in (*e.plans.values(), *b.plans.values()):  # billing wins
            self.plans[plan.key] = plan
        self.plan_tier: dict[str, Tier] = {p.key: p.tier for p in b.plans.values() if p.tier is not None}
        self.plan_tier.update(self.config.plan_tiers)
        self.exc_by_customer: dict[str, list[SyncException]] = defaultdict(list)
        self.exc_by_object: dict[str, list[SyncException]] = defaultdict(list)
        for exc in exceptions:
            if exc.customer_id:
                self.exc_by_customer[exc.customer_id].append(exc)
            self.exc_by_object[exc.object_id].append(exc)

    def build(self, customer_id: str, *, exceptions: Sequence[SyncException] | None = None,
              now: datetime | None = None) -> Timeline:
        """The timeline of one customer. ``exceptions`` replaces the ones the index was built
        with (the given list is scanned once); ``now`` (default: the clock) decides between
        "pending" and "missing"."""
        return _Build(self, customer_id, _utc(now) or datetime.now(UTC)).run(exceptions)


def build_timeline(snapshot: Snapshot, customer_id: str, *, exceptions: Sequence[SyncException] = (),
                   config: TimelineConfig | None = None, now: datetime | None = None) -> Timeline:
    """One-shot: index the snapshot and build one timeline. For many timelines over the same
    snapshot, build a :class:`TimelineIndex` once and call its :meth:`~TimelineIndex.build`."""
    return TimelineIndex(snapshot, config).build(customer_id, exceptions=exceptions, now=now)


# -- one build --------------------------------------------------------------------------------
class _Build:
    def __init__(self, index: TimelineIndex, customer_id: str, now: datetime) -> None:
        self.ix = index
        self.cfg = index.config
        self.cid = customer_id
        self.now = now
        self.drafts: list[_Draft] = []
        self.missing: list[_Draft] = []
        self._seen: set[tuple[object, ...]] = set()
        self.tier_now: _Draft | None = None  # the derived "Support tier is …" entry
        #: billing invoice id -> (its label, finalized entry, paid entry): upstream of its credits and refunds
        self.billed: dict[str, tuple[str, _Draft | None, _Draft | None]] = {}

    # drafts --------------------------------------------------------------------------
    def add(self, at: datetime | None, system: System, kind: EventKind, ref: ExternalRef, summary: str, *,
            group: str | None = None, objects: Iterable[str] = ()) -> _Draft | None:
        when = _utc(at)
        if when is None:
            return None
        draft = _Draft(when, system, kind, ref, summary, group, set(objects))
        self.drafts.append(draft)
        self._seen.add((kind, ref, when))
        for obj in draft.objects:
            self._seen.add((kind, system, obj, when))
        return draft

    def downstream(self, draft: _Draft | None, upstream: _Draft | None, grace: timedelta | None,
                   what: str) -> None:
        if draft is None or upstream is None:
            return
        lag = draft.at - upstream.at
        draft.lag = lag
        if lag < timedelta(0):
            draft.notes.append(f"dated {human_duration(lag)} before {what} (clock skew or back-dated)")
        elif grace is not None and lag > grace:
            draft.status = "late"
            draft.notes.append(f"late: {human_duration(lag)} after {what} (grace {human_duration(grace)})")
        else:
            draft.notes.append(f"{human_duration(lag)} after {what}")

    def expect(self, upstream: _Draft, grace: timedelta, system: System, kind: EventKind, group: str,
               what: str, why: str = "") -> _Draft:
        deadline = upstream.at + grace
        overdue = self.now - upstream.at > grace
        draft = _Draft(deadline, system, kind, upstream.ref, f"{what} (expected)", group, set(upstream.objects),
                       status="missing" if overdue else "pending", synthetic=True)
        if overdue:
            draft.notes.append(f"missing: nothing {human_duration(self.now - upstream.at)} after "
                               f"{_stamp(upstream.at)} (grace {human_duration(grace)})")
            upstream.notes.append(f"{what}: missing")
        else:
            draft.notes.append(f"pending: expected by {_stamp(deadline)}")
            upstream.notes.append(f"{what}: pending until {_stamp(deadline)}")
        if why:
            draft.notes.append(why)
        self.missing.append(draft)
        return draft

    def plan_label(self, plan_key: str | None, quantity: int) -> str:
        plan = self.ix.plans.get(plan_key or "")
        name = f"{plan.name} ({plan.key})" if plan is not None else (plan_key or "no plan")
        return f"{name} × {quantity}"

    # the run -------------------------------------------------------------------------
    def run(self, exceptions: Sequence[SyncException] | None) -> Timeline:
        ix, cid = self.ix, self.cid
        b_custs = ix.b_customers.get(cid, [])
        parties = sorted(ix.e_parties.get(cid, []), key=_ref_order)
        orgs = sorted(ix.s_orgs.get(cid, []), key=_ref_order)
        identities: dict[System, list[ExternalRef]] = {}
        for system, recs in ((System.BILLING, b_custs), (System.ERP, parties), (System.SUPPORT, orgs)):
            if recs:
                identities[system] = [r.ref for r in recs]
        names = [c.name for c in (*b_custs, *parties, *orgs) if c.name]
        name = names[0] if names else UNKNOWN_CUSTOMER

        self.customers(b_custs, parties, orgs)
        self.invoices()
        credits_and_refunds(self)
        self.subscriptions()
        self.support()
        self.connector_events()
        self.tiers()
        exc_ids = self.mark_exceptions(exceptions)

        entries = sorted((d.entry(cid) for d in self.drafts), key=_sort_key)
        missing = sorted((d.entry(cid) for d in self.missing), key=_sort_key)
        if not identities and (entries or missing):
            name = cid  # records refer to it, but no system knows the customer itself
        return Timeline(customer_id=cid, name=name, identities=identities, entries=entries, missing=missing,
                        exception_ids=exc_ids, state=self.state())

    def state(self) -> CustomerState:
        sub = current_subscription(self.ix.b_subs.get(self.cid, []))
        ent = self.entitlement()
        tier = None if ent is None else (ent.tier.value if ent.tier else "none")
        if sub is None:
            return CustomerState(tier=tier)
        plan = self.ix.plans.get(sub.plan_key or "")
        return CustomerState(sub.ref.id, sub.status.value, sub.plan_key, plan.name if plan else None, sub.quantity,
                             tier)

    # customers -----------------------------------------------------------------------
    def customers(self, b_custs: list[Customer], parties: list[Customer], orgs: list[Customer]) -> None:
        group = f"customer:{self.cid}"
        upstream: _Draft | None = None
        for cust in b_custs:
            draft = self.add(cust.created, System.BILLING, EventKind.CUSTOMER_CREATED, cust.ref,
                             f"Customer {cust.name} created in billing", group=group, objects=[self.cid])
            upstream = upstream or draft
        for party in parties:
            draft = self.add(party.created, System.ERP, EventKind.PARTY_CREATED, party.ref,
                             f"ERP party {party.name} created", group=group, objects=[self.cid])
            self.downstream(draft, upstream, None, "the billing customer")
        for org in orgs:
            draft = self.add(org.created, System.SUPPORT, EventKind.ORGANIZATION_CREATED, org.ref,
                             f"Support organization {org.name} created", group=group, objects=[self.cid])
            self.downstream(draft, upstream, None, "the billing customer")

    # invoices --------------------------------------------------------------------------
    def invoices(self) -> None:
        ix, cfg = self.ix, self.cfg
        erp_loaded = System.ERP in ix.loaded
        handled: set[ExternalRef] = set()
        for inv in sorted(ix.b_invoices.get(self.cid, []), key=_ref_order):
            iid = inv.ref.id
            label = inv.number or iid
            g_inv, g_pay = f"invoice:{iid}", f"payment:{iid}"
            finalized_at = inv.finalized_at or (inv.created if inv.status in _FINALIZED else None)
            fin = self.add(finalized_at, System.BILLING, EventKind.INVOICE_FINALIZED, inv.ref,
                           f"Invoice {label} finalized: {inv.total}{tax_text(inv.taxes)}", group=g_inv, objects=[iid])
            proration(self, inv, label, fin)
            paid = self.add(inv.paid_at, System.BILLING, EventKind.INVOICE_PAID, inv.ref,
                            f"Invoice {label} paid: {inv.total}", group=g_pay, objects=[iid])
            voided = self.add(inv.voided_at, System.BILLING, EventKind.INVOICE_VOIDED, inv.ref,
                              f"Invoice {label} voided", group=g_inv, objects=[iid])
            self.billed[iid] = (label, fin, paid)
            copies = sorted(ix.e_invoices_by_ref.get(iid, []), key=_ref_order)
            live = [c for c in copies if c.status is not InvoiceStatus.CANCELLED]
            for copy in copies:
                handled.add(copy.ref)
                extra: list[str] = []
                if copy.status is InvoiceStatus.CANCELLED:
                    extra.append("cancelled in the ERP")
                elif len(live) > 1:
                    extra.append(f"one of {len(live)} ERP invoices carrying {iid}")
                if copy.customer_id != self.cid:
                    extra.append(f"booked on ERP party {copy.customer_id or '(none)'}")
                self.erp_invoice(copy, label, fin, paid, extra, voided)
            if not erp_loaded:
                continue
            why = "" if self.cid in ix.e_parties else f"no ERP party carries {self.cid}"
            if (fin is not None and not live and inv.status is not InvoiceStatus.VOID and inv.total.amount > 0):
                self.expect(fin, cfg.invoice_grace, System.ERP, EventKind.ERP_INVOICE_CREATED, g_inv,
                            f"ERP invoice for {label}", why)
            if paid is not None and live and not any(c.status is InvoiceStatus.PAID or c.paid_at for c in live):
                self.expect(paid, cfg.payment_grace, System.ERP, EventKind.ERP_INVOICE_PAID, g_pay,
                            f"ERP payment of {label}")
            elif paid is not None and live and not any(c.paid_at for c in live):
                paid.notes.append("the ERP shows it paid (time unknown)")
        for copy in sorted(ix.e_invoices.get(self.cid, []), key=_ref_order):
            if copy.ref in handled or copy.ref in ix.e_credit_refs:  # a credit note: in timeline_credits
                continue
            bid = copy.billing_invoice_id
            if not bid:
                note = "no billing reference"
            elif bid in ix.b_invoices_by_id:
                owner = ix.b_invoices_by_id[bid].customer_id
                note = f"refers to {bid} of customer {owner or '(none)'}"
            else:
                note = f"refers to {bid}, which billing does not have"
            self.erp_invoice(copy, bid or copy.number or copy.ref.id, None, None, [note])

    def erp_invoice(self, copy: Invoice, label: str, fin: _Draft | None, paid: _Draft | None,
                    extra: list[str], voided: _Draft | None = None, *, credit: _Draft | None = None) -> None:
        """The ERP copy's real state changes at their real times (its own history: created,
        posted, paid, cancelled). A state it passed through at a time its record does not keep
        (a paid invoice's posting) is said in a note, never placed at an invented time (e.g.
        midnight of its invoice date). ``credit``: ``copy`` is an ERP credit note (an invoice too)
        and this its "created" entry (timeline_credits); its other states follow in its group."""
        bid = copy.billing_invoice_id
        g_inv = f"invoice:{bid}" if bid else None
        g_pay = f"payment:{bid}" if bid else None
        objects = [bid] if bid else [copy.ref.id]
        number = copy.number or copy.ref.id
        noun = "ERP invoice"
        if credit is not None:
            noun, g_inv, g_pay, objects = "ERP credit note", credit.group, credit.group, sorted(credit.objects)
            created: _Draft | None = credit
        else:
            created = self.add(copy.created, System.ERP, EventKind.ERP_INVOICE_CREATED, copy.ref,
                               f"ERP invoice {number} created for {label}: {copy.total}{tax_text(copy.taxes)}",
                               group=g_inv, objects=objects)
        posted = self.add(copy.posted_at, System.ERP, EventKind.ERP_INVOICE_POSTED, copy.ref,
                          f"{noun} {number} posted", group=g_inv, objects=objects)
        erp_paid = self.add(copy.paid_at, System.ERP, EventKind.ERP_INVOICE_PAID, copy.ref,
                            f"{noun} {number} paid", group=g_pay, objects=objects)
        status = copy.status
        live = status is not InvoiceStatus.CANCELLED
        cancelled = self.add(copy.voided_at if not live else None, System.ERP, EventKind.ERP_INVOICE_CANCELLED,
                             copy.ref, f"{noun} {number} cancelled", group=g_inv, objects=objects)
        unknown: list[str] = []
        if posted is None and (status in (InvoiceStatus.POSTED, InvoiceStatus.PAID)
                               or (not live and copy.number is not None)):
            why = "numbered, so it was posted" if not live else "posted"
            unknown.append(f"{why} at a time the ERP does not keep")
        if not live and cancelled is None:
            unknown.append("cancelled at a time the ERP does not keep")
        if status is InvoiceStatus.PAID and erp_paid is None:
            unknown.append("paid at a time the ERP does not keep")
        arrival = created or posted
        self.downstream(arrival, fin, self.cfg.invoice_grace if live else None, "billing finalized it")
        if posted is not None and posted is not arrival:
            self.downstream(posted, fin, None, "billing finalized it")
        self.downstream(erp_paid, paid, self.cfg.payment_grace, "billing recorded the payment")
        self.downstream(cancelled, voided, None, "billing voided it")
        drafts = [d for d in (created, posted, erp_paid, cancelled) if d is not None]
        if drafts:
            drafts[0].notes.extend(unknown)
        for draft in drafts:
            draft.notes.extend(extra)

    # subscriptions ---------------------------------------------------------------------
    def subscriptions(self) -> None:
        ix, cfg = self.ix, self.cfg
        handled: set[ExternalRef] = set()
        for sub in sorted(ix.b_subs.get(self.cid, []), key=_ref_order):
            sid = sub.ref.id
            group = f"subscription:{sid}"
            created = self.add(sub.created, System.BILLING, EventKind.SUBSCRIPTION_CREATED, sub.ref,
                               f"Subscription {sid} created: {self.plan_label(sub.plan_key, sub.quantity)}",
                               group=group, objects=[sid])
            if created is not None:
                created.trigger_sub = sid
            trial_end = _utc(sub.trial_end)
            if trial_end is not None and trial_end <= self.now:
                self.add(trial_end, System.BILLING, EventKind.SUBSCRIPTION_UPDATED, sub.ref,
                         f"Trial of subscription {sid} ended", group=group, objects=[sid])
            elif trial_end is not None and created is not None:
                created.notes.append(f"trial until {_stamp(trial_end)}")
            canceled = self.add(sub.canceled_at, System.BILLING, EventKind.SUBSCRIPTION_CANCELED, sub.ref,
                                f"Subscription {sid} canceled", group=group, objects=[sid])
            if canceled is not None:
                canceled.trigger_sub = sid
            copies = sorted(ix.e_subs_by_ref.get(sid, []), key=_ref_order)
            for copy in copies:
                handled.add(copy.ref)
                self.erp_subscription(copy, created, canceled)
            if (created is not None and not copies and sub.status.is_active and System.ERP in ix.loaded):
                why = "" if self.cid in ix.e_parties else f"no ERP party carries {self.cid}"
                self.expect(created, cfg.subscription_grace, System.ERP, EventKind.ERP_SUBSCRIPTION_CHANGED,
                            group, f"ERP subscription for {sid}", why)
        for copy in sorted(ix.e_subs.get(self.cid, []), key=_ref_order):
            if copy.ref not in handled:
                draft_notes = (f"refers to {copy.billing_subscription_id}, not a subscription of this customer"
                               if copy.billing_subscription_id else "no billing reference")
                for draft in self.erp_subscription(copy, None, None):
                    draft.notes.append(draft_notes)

    def erp_subscription(self, copy: Subscription, created: _Draft | None, canceled: _Draft | None) -> list[_Draft]:
        bsid = copy.billing_subscription_id
        group = f"subscription:{bsid}" if bsid else None
        objects = [bsid] if bsid else [copy.ref.id]
        out: list[_Draft] = []
        made = self.add(copy.created, System.ERP, EventKind.ERP_SUBSCRIPTION_CHANGED, copy.ref,
                        f"ERP subscription {copy.ref.id} created: {self.plan_label(copy.plan_key, copy.quantity)}",
                        group=group, objects=objects)
        self.downstream(made, created, self.cfg.subscription_grace, "billing created it")
        closed = self.add(copy.canceled_at, System.ERP, EventKind.ERP_SUBSCRIPTION_CHANGED, copy.ref,
                          f"ERP subscription {copy.ref.id} closed", group=group, objects=objects)
        self.downstream(closed, canceled, self.cfg.subscription_grace, "billing canceled it")
        if closed is not None and canceled is None and bsid:
            closed.notes.append("not canceled in billing")
        out.extend(d for d in (made, closed) if d is not None)
        return out

    # support -------------------------------------------------------------------------
    def entitlement(self) -> Entitlement | None:
        ents = self.ix.s_ents.get(self.cid, [])
        return ents[-1] if ents else None  # as the reconciliation engine reads it

    def support(self) -> None:
        ent = self.entitlement()
        if ent is not None:
            tier = ent.tier.value if ent.tier else "none"
            draft = self.add(ent.updated, System.SUPPORT, EventKind.TIER_CHANGED, ent.ref,
                             f"Support tier is {tier}", objects=[self.cid])
            if draft is not None:
                draft.tier_state = True
                self.tier_now = draft
        for case in sorted(self.ix.s_cases.get(self.cid, []), key=_ref_order):
            label = f"Ticket #{case.ref.id}"
            prio = f" ({case.priority})" if case.priority else ""
            self.add(case.created, System.SUPPORT, EventKind.TICKET_OPENED, case.ref,
                     f"{label} opened{prio}: {case.subject}", objects=[case.ref.id])
            solved = case.solved_at or (case.updated if case.status.lower() in SOLVED_STATUSES else None)
            self.add(solved, System.SUPPORT, EventKind.TICKET_SOLVED, case.ref,
                     f"{label} {'closed' if case.status.lower() == 'closed' else 'solved'}: {case.subject}",
                     objects=[case.ref.id])

    # connector events ----------------------------------------------------------------
    @staticmethod
    def event_object(ev: LifecycleEvent) -> str | None:
        """The record an event is about: its ref, unless the ref is the vendor's event record."""
        if ev.ref.kind != "event":
            return ev.ref.id
        if ev.correlation_key and ":" in ev.correlation_key:
            return ev.correlation_key.split(":", 1)[1]
        found = _OBJECT_ID.search(ev.summary)
        return found.group(1) if found else None

    def connector_events(self) -> None:
        events = sorted(self.ix.events.get(self.cid, []), key=lambda ev: (_utc(ev.at), str(ev.ref)))
        for ev in events:
            at = _utc(ev.at)
            assert at is not None
            obj = self.event_object(ev)
            change = parse_tier_change(ev)
            if (ev.kind, ev.ref, at) in self._seen or (obj and (ev.kind, ev.system, obj, at) in self._seen):
                now = self.tier_now
                if change is not None and now is not None and now.at == at and now.ref == ev.ref:
                    now.summary = tier_change_text(*change)  # the current tier is that change
                continue
            group = ev.correlation_key
            if group is None and obj and ev.system is System.BILLING:
                if obj.startswith("in_"):
                    pay = ev.kind in (EventKind.INVOICE_PAID, EventKind.INVOICE_PAYMENT_FAILED)
                    group = f"{'payment' if pay else 'invoice'}:{obj}"
                elif obj.startswith("sub_"):
                    group = f"subscription:{obj}"
            trigger = (ev.system is System.BILLING and ev.kind in _TRIGGER_KINDS and obj is not None
                       and obj.startswith("sub_"))
            if trigger and ev.kind is EventKind.SUBSCRIPTION_UPDATED:
                group = f"tier:{obj}"  # a plan change is the upstream of the tier it should move
            draft = self.add(at, ev.system, ev.kind, ev.ref, tier_change_text(*change) if change else ev.summary,
                             group=group, objects=[obj] if obj else [])
            assert draft is not None
            draft.source = ev
            if trigger:
                draft.trigger_sub = obj
            if ev.system is System.SUPPORT and ev.kind is EventKind.TIER_CHANGED:
                draft.tier_state = True

    # tiers -----------------------------------------------------------------------------
    def expected_tier(self) -> tuple[bool, Tier | None]:
        """(known, tier the active subscriptions grant; None when nothing is active)."""
        active = [s for s in self.ix.b_subs.get(self.cid, []) if s.status.is_active]
        if not active:
            return True, None
        tiers = [t for t in (self.ix.plan_tier.get(s.plan_key or "") for s in active) if t is not None]
        if not tiers:
            return False, None
        return True, max(tiers, key=TIER_RANK.__getitem__)

    @staticmethod
    def trigger_label(trigger: _Draft) -> str:
        what = {EventKind.SUBSCRIPTION_CREATED: "was created", EventKind.SUBSCRIPTION_CANCELED: "was canceled"}
        return f"subscription {trigger.trigger_sub} {what.get(trigger.kind, 'changed')}"

    def tiers(self) -> None:
        if System.SUPPORT not in self.ix.loaded:
            return
        triggers = sorted((d for d in self.drafts if d.trigger_sub), key=lambda d: (d.at, _KIND_ORDER[d.kind]))
        if not triggers:
            return
        states = sorted((d for d in self.drafts if d.tier_state), key=lambda d: d.at)
        used: set[int] = set()
        # the latest change must have produced the support tier the customer has now
        last = triggers[-1]
        group = f"tier:{last.trigger_sub}"
        known, expected = self.expected_tier()
        ent = self.entitlement()
        have = ent.tier if ent else None
        updated = _utc(ent.updated) if ent else None
        state = next((d for d in states if not d.source and d.at == updated), None)
        if state is None or state.at < last.at:  # no dated tier state: a reported tier change will do
            state = next((d for d in states if d.source and d.at >= last.at), state)
        if not known:
            last.notes.append("its plan grants no known support tier")
        elif have == expected:
            reported = {_utc(ev.at) for ev in self.ix.events.get(self.cid, [])
                        if ev.system is System.SUPPORT and ev.kind is EventKind.TIER_CHANGED}
            bounded = state is not None and (state.source is not None or state.at in reported
                                             or state.at - last.at <= self.cfg.tier_grace)
            if state is not None and state.at >= last.at and bounded:
                state.group = group
                self.downstream(state, last, self.cfg.tier_grace, self.trigger_label(last))
                used.add(id(state))
            elif state is not None and state.at >= last.at:
                # only the organization's last-update time is known, an upper bound that any edit
                # moves: the tier agrees with the plan, but "late" cannot be concluded (no lag)
                state.group = group
                state.notes.append("tier agrees with the plan; shown at the organization's last update, "
                                   "which may be later than the tier change")
                used.add(id(state))
            else:
                last.notes.append(f"support tier already {have.value if have else 'none'}")
        else:
            want = expected.value if expected else "none"
            why = (f"support tier is {have.value if have else 'none'}, the plan grants {want}"
                   if self.cid in self.ix.s_orgs else f"no support organization carries {self.cid}")
            self.expect(last, self.cfg.tier_grace, System.SUPPORT, EventKind.TIER_CHANGED, group,
                        f"Support tier {want}", why)
            if state is not None and state.at >= last.at:
                state.group = group
                self.downstream(state, last, None, self.trigger_label(last))
                state.notes.append("but not the tier the plan grants")
                used.add(id(state))
        # earlier changes: the first tier change before the next billing change, matched by time
        for this, nxt in pairwise(triggers):
            match = next((d for d in states if id(d) not in used and this.at <= d.at <= nxt.at), None)
            if match is None:
                continue
            used.add(id(match))
            match.group = f"tier:{this.trigger_sub}"
            self.downstream(match, this, self.cfg.tier_grace, self.trigger_label(this))
            match.notes.append("matched by time")

    # exceptions ----------------------------------------------------------------------
    def relevant(self, exceptions: Sequence[SyncException] | None) -> list[SyncException]:
        objects = {obj for d in (*self.drafts, *self.missing) for obj in d.objects}
        if exceptions is None:
            found: dict[str, SyncException] = {}
            for exc in self.ix.exc_by_customer.get(self.cid, []):
                found[exc.id] = exc
            for obj in objects:
                for exc in self.ix.exc_by_object.get(obj, []):
                    found[exc.id] = exc
            pool: Iterable[SyncException] = found.values()
        else:
            pool = [x for x in exceptions if x.customer_id == self.cid or x.object_id in objects]
        return sorted((x for x in pool if x.is_open), key=lambda x: x.id)

    def mark_exceptions(self, exceptions: Sequence[SyncException] | None) -> list[str]:
        everything = sorted([*self.drafts, *self.missing], key=lambda d: (d.at, _SYSTEM_ORDER[d.system]))
        out: list[str] = []
        for exc in self.relevant(exceptions):
            out.append(exc.id)
            obj = exc.object_id
            family = exc.rule.split(".", 1)[0]
            if family == "invoice":
                prefix = "payment" if exc.rule == "invoice.payment_state" else "invoice"
                targets = [d for d in everything if d.group == f"{prefix}:{obj}"]
            elif exc.rule == "subscription.proration_mismatch":  # its object is the invoice
                targets = [d for d in everything if d.group == f"invoice:{obj}"]
            elif family == "subscription":
                targets = [d for d in everything if d.group == f"subscription:{obj}"]
            elif family == "credit_note":  # billing's credit note and the ERP's it names on its side
                side_refs = {s.ref for s in exc.sides if s.ref is not None}
                targets = [d for d in everything if obj in d.objects or d.ref in side_refs]
            elif family == "entitlement":
                tier_drafts = [d for d in everything
                               if d.tier_state or (d.synthetic and d.kind is EventKind.TIER_CHANGED)]
                targets = tier_drafts[-1:] + [d for d in tier_drafts[:-1] if d.synthetic]
            elif family == "customer":
                targets = [d for d in everything if d.kind is EventKind.CUSTOMER_CREATED][:1]
            else:
                targets = []
            if not targets:
                targets = [d for d in everything if obj in d.objects]
            if not targets and family in ("customer", "entitlement"):
                targets = [d for d in everything if d.group == f"customer:{self.cid}"][:1]
            if not targets:
                targets = everything[:1]
            for draft in targets:
                if exc.id not in draft.exception_ids:
                    draft.exception_ids.append(exc.id)
        return out
