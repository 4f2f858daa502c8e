"""The hand-built test world: a small company in billing, the ERP and support, as the connectors
would load it (``SystemData`` per system), for the rule, timeline and customer-view tests.

Every customer is consistent until a test breaks one thing: the same master data in billing and
the ERP (the support organization has the same name), an active subscription mirrored by an ERP
sale subscription (same plan, quantity and period end), the support tier of its plan — each
mirror arriving a few minutes after its source (``T0`` + 1–10 min). Builders return the world,
so calls chain: ``World().customer().invoice("cus_1", "in_1", finalized=T0)``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from services.core.domain import (
    Customer,
    Entitlement,
    ExternalRef,
    Invoice,
    InvoiceStatus,
    Money,
    Plan,
    Severity,
    Side,
    Subscription,
    SubscriptionStatus,
    SupportCase,
    SyncException,
    System,
    Team,
    Tier,
)
from services.core.overview import CustomerRow, build_customer_rows
from services.core.reconcile import ReconcileConfig, Snapshot, reconcile
from services.core.sysdata import SystemData
from services.core.timeline import Timeline, build_timeline

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
T0 = NOW - timedelta(days=30)  # customers sign up
MIN = timedelta(minutes=1)
B, E, S = System.BILLING, System.ERP, System.SUPPORT


def ref(system: System, kind: str, ident: str) -> ExternalRef:
    return ExternalRef(system, kind, ident)


class World:
    """A small company in three systems. ``World(n)`` starts with ``n`` consistent customers
    ``cus_0``... (``Acme {i} GmbH``), each with one invoice ``in_cus_{i}`` of 90.00 EUR paid
    three days before ``NOW`` in billing and the ERP; ``World()`` starts empty. Ids follow one
    pattern: ERP party ``p{cid}``, support organization ``o{cid}``, billing subscription
    ``sub_{cid}``, ERP subscription ``s{cid}``, ERP invoice ``e{iid}``."""

    def __init__(self, n: int = 0) -> None:
        self.b, self.e, self.s = SystemData(B), SystemData(E), SystemData(S)
        self.b.plans["price_std"] = Plan(ref(B, "price", "price_std"), "std_monthly", "Standard", tier=Tier.STANDARD)
        self.b.plans["price_pro"] = Plan(ref(B, "price", "price_pro"), "pro_monthly", "Pro", tier=Tier.PREMIUM)
        self.b.plans["price_ent"] = Plan(ref(B, "price", "price_ent"), "ent_monthly", "Ent", tier=Tier.ENTERPRISE)
        self.exceptions: list[SyncException] = []
        for i in range(n):
            self.customer(f"cus_{i}", f"Acme {i} GmbH").paid_invoice(f"cus_{i}", f"in_cus_{i}", Decimal("90.00"))

    # -- builders ------------------------------------------------------------------------------
    def customer(self, cid: str = "cus_1", name: str = "Acme GmbH", *, at: datetime = T0, erp: bool = True,
                 support: bool = True, plan: str = "pro_monthly", tier: Tier | None = Tier.PREMIUM) -> World:
        """A customer signing up at ``at`` with a ``plan`` × 3 subscription (period end 20 days
        after ``NOW``); its ERP party and subscription (unless ``erp=False``) and its support
        organization with ``tier`` (unless ``support=False``) follow within minutes."""
        end = NOW + timedelta(days=20)
        self.b.customers[cid] = Customer(ref(B, "customer", cid), cid, name, f"billing@{cid}.example", "DE1234",
                                         "DE", created=at)
        sid = f"sub_{cid}"
        self.b.subscriptions[sid] = Subscription(ref(B, "subscription", sid), cid, SubscriptionStatus.ACTIVE,
                                                 plan, 3, current_period_end=end, created=at + MIN)
        if erp:
            self.e.customers[f"p{cid}"] = Customer(ref(E, "party.party", f"p{cid}"), cid, name, None, "DE1234",
                                                   "DE", created=at + 2 * MIN)
            self.e.subscriptions[f"s{cid}"] = Subscription(ref(E, "sale.subscription", f"s{cid}"), cid,
                                                           SubscriptionStatus.ACTIVE, plan, 3,
                                                           current_period_end=end.replace(hour=0, minute=0),
                                                           created=at + 4 * MIN, billing_subscription_id=sid)
        if support:
            self.s.customers[f"o{cid}"] = Customer(ref(S, "organization", f"o{cid}"), cid, name,
                                                   created=at + 3 * MIN)
            self.s.entitlements[f"o{cid}"] = Entitlement(ref(S, "organization", f"o{cid}"), cid, tier,
                                                         updated=at + 10 * MIN)
        return self

    def invoice(self, cid: str, iid: str, *, finalized: datetime, erp_after: timedelta | None = 5 * MIN,
                paid_after: timedelta | None = None, erp_paid_after: timedelta | None = None,
                total: str | Decimal = "1234.00", erp_total: str | Decimal | None = None,
                status: InvoiceStatus | None = None,
                erp_status: InvoiceStatus | None = None) -> World:
        """A billing invoice finalized at ``finalized`` (paid ``paid_after`` later, else open)
        and its ERP copy ``erp_after`` later (none when None), posted a minute after and paid
        ``erp_paid_after`` after the billing payment; ``status`` / ``erp_status`` override the
        states those times give."""
        paid_at = finalized + paid_after if paid_after is not None else None
        self.b.invoices[iid] = Invoice(ref(B, "invoice", iid), cid,
                                       status or (InvoiceStatus.PAID if paid_at else InvoiceStatus.OPEN),
                                       Money(Decimal(total), "EUR"), number=f"ACME-{iid[3:]}",
                                       finalized_at=finalized, paid_at=paid_at)
        if erp_after is not None:
            erp_paid = paid_at + erp_paid_after if paid_at and erp_paid_after is not None else None
            self.e.invoices[f"e{iid}"] = Invoice(ref(E, "account.invoice", f"e{iid}"), cid,
                                                 erp_status or (InvoiceStatus.PAID if erp_paid
                                                                else InvoiceStatus.POSTED),
                                                 Money(Decimal(erp_total or total), "EUR"), number=f"ERP/{iid[3:]}",
                                                 billing_invoice_id=iid, created=finalized + erp_after,
                                                 posted_at=finalized + erp_after + MIN, paid_at=erp_paid)
        return self

    def paid_invoice(self, cid: str, iid: str, total: Decimal, *, status: InvoiceStatus = InvoiceStatus.PAID,
                     erp_status: InvoiceStatus = InvoiceStatus.PAID, age: timedelta = timedelta(days=3)) -> World:
        """An invoice finalized ``age`` before ``NOW`` in ``status`` (paid at once when paid)
        and its ERP copy in ``erp_status``."""
        paid = timedelta(0) if status is InvoiceStatus.PAID else None
        return self.invoice(cid, iid, finalized=NOW - age, paid_after=paid, erp_paid_after=timedelta(0),
                            total=total, status=status, erp_status=erp_status)

    def ticket(self, cid: str, tid: str, subject: str, at: datetime) -> World:
        self.s.cases[tid] = SupportCase(ref(S, "ticket", tid), cid, subject, "open", "high", created=at)
        return self

    def exception(self, rule: str, cid: str, object_id: str, sides: list[Side], *,
                  severity: Severity = Severity.HIGH, fixes: tuple[str, ...] = ("retry",),
                  summary: str = "") -> World:
        """An open exception as the engine would list it (for the views; ``rules()`` computes them)."""
        self.exceptions.append(SyncException(
            id=f"{rule}:{object_id}", rule=rule, severity=severity, owner=Team.FINANCE, customer_id=cid,
            object_id=object_id, summary=summary or rule, sides=sides, first_seen=NOW - timedelta(days=2),
            last_seen=NOW, fix_actions=fixes))
        return self

    # -- what the services make of it ------------------------------------------------------------
    def snapshot(self, *systems: System) -> Snapshot:
        """The world as loaded from ``systems`` (default: all three)."""
        data = {B: self.b, E: self.e, S: self.s}
        return Snapshot({s: data[s] for s in (systems or (B, E, S))})

    def rules(self, **kw: Any) -> list[tuple[str, str | None, str]]:
        """(rule, customer, object) of every exception reconciliation finds at ``NOW``, sorted;
        ``kw`` configures it (``ReconcileConfig``)."""
        result = reconcile(self.snapshot(), ReconcileConfig(**kw), NOW)
        return sorted((x.rule, x.customer_id, x.object_id) for x in result.exceptions)

    def timeline(self, cid: str = "cus_1", *systems: System, **kw: Any) -> Timeline:
        """The timeline of ``cid`` over ``systems`` at ``NOW``, with the world's exceptions unless
        ``kw`` gives others."""
        kw.setdefault("now", NOW)
        kw.setdefault("exceptions", self.exceptions)
        return build_timeline(self.snapshot(*systems), cid, **kw)

    def rows(self) -> list[CustomerRow]:
        return build_customer_rows(self.snapshot(), self.exceptions)
