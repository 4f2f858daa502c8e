"""The reconciliation engine: every rule of DESIGN.md's catalogue over one snapshot.

Pure and in-memory: indexes are built once per run (dict joins, no per-customer queries), so
100,000 customers reconcile in seconds; call it from a worker thread. The definitions match
``services/demo/dataset.py`` (the demo's ground truth) exactly:

- active subscription = status trialing / active / past_due; finalized billing invoice =
  open / paid / void / uncollectible; a "live" ERP invoice = any state but cancelled;
- a customer unmapped in the ERP (or support) gets only the ``unmapped`` exception: the rules
  that need the missing side are not evaluated for it (one root cause, one exception);
- grace periods (``ReconcileConfig``) keep in-flight synchronization from being an error;
- ``invoice.not_posted_in_erp``: a billing invoice that is final (open, paid, uncollectible)
  for longer than the invoice grace whose one live ERP copy is still ``draft`` or
  ``validated`` (and agrees in total and currency: a copy that differs is
  ``invoice.amount_mismatch``, fixed first). The ERP copy exists, so ``missing_in_erp`` is
  not raised; without this rule a failed posting (a draft left behind) would vanish.
- ``invoice.missing_in_erp`` whose invoice only cancelled ERP copies carry: the ERP side is
  the latest cancelled copy (its number, state, amount, cancellation time; "live invoice" none)
  and the summary names the copies — what explains it, never "not present".
- ``invoice.currency_mismatch``: the one live ERP copy is in another currency (never also
  ``amount_mismatch``, which means the same currency and another amount, nor ``not_posted``);
- ``invoice.tax_mismatch``: billing's invoice and its one live ERP copy, in the same currency,
  both with their taxes read, differ in the tax of a rate by a minor unit or more (rates matched
  by percentage, a rate one side lacks is 0 there; raised whether the totals agree or not).

- ``credit_note.missing_in_erp`` / ``credit_note.amount_mismatch`` / ``invoice.refund_not_reflected``
  / ``subscription.proration_mismatch``: see ``services/core/reconcile_money.py`` (a billing credit
  note no ERP credit note answers, or one whose ERP credit note differs in amount or tax per rate;
  a full refund the ERP still shows paid; a proration invoice whose ERP copy lacks some or all of
  its proration lines — then neither ``amount_mismatch`` nor ``tax_mismatch`` is raised for it).

Rules run only when the systems they compare have data (``available``); the tracker closes
only exceptions of rules that ran, so an outage never "resolves" anything.
"""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from services.core.currency import amount_text, format_money, same_amount
from services.core.domain import (
    RULES,
    Customer,
    Entitlement,
    Invoice,
    InvoiceStatus,
    Severity,
    Side,
    Subscription,
    SyncException,
    System,
    Tier,
)
from services.core.reconcile_money import proration_mismatch, rule_credit_notes, rule_refunds, tax_differences
from services.core.sysdata import SystemData

FINALIZED = frozenset({InvoiceStatus.OPEN, InvoiceStatus.PAID, InvoiceStatus.VOID, InvoiceStatus.UNCOLLECTIBLE})
TIER_RANK = {Tier.STANDARD: 1, Tier.PREMIUM: 2, Tier.ENTERPRISE: 3}

#: which systems each rule compares
RULE_SYSTEMS: dict[str, frozenset[System]] = {
    "customer.unmapped_erp": frozenset({System.BILLING, System.ERP}),
    "customer.unmapped_support": frozenset({System.BILLING, System.SUPPORT}),
    "customer.master_drift": frozenset({System.BILLING, System.ERP}),
    "invoice.missing_in_erp": frozenset({System.BILLING, System.ERP}),
    "invoice.not_posted_in_erp": frozenset({System.BILLING, System.ERP}),
    "invoice.amount_mismatch": frozenset({System.BILLING, System.ERP}),
    "invoice.currency_mismatch": frozenset({System.BILLING, System.ERP}),
    "invoice.tax_mismatch": frozenset({System.BILLING, System.ERP}),
    "invoice.duplicate_in_erp": frozenset({System.BILLING, System.ERP}),
    "invoice.payment_state": frozenset({System.BILLING, System.ERP}),
    "invoice.orphan_in_erp": frozenset({System.BILLING, System.ERP}),
    "credit_note.missing_in_erp": frozenset({System.BILLING, System.ERP}),
    "credit_note.amount_mismatch": frozenset({System.BILLING, System.ERP}),
    "invoice.refund_not_reflected": frozenset({System.BILLING, System.ERP}),
    "subscription.terms_mismatch": frozenset({System.BILLING, System.ERP}),
    "subscription.proration_mismatch": frozenset({System.BILLING, System.ERP}),
    "entitlement.missing": frozenset({System.BILLING, System.SUPPORT}),
    "entitlement.tier_mismatch": frozenset({System.BILLING, System.SUPPORT}),
    "entitlement.orphan": frozenset({System.BILLING, System.SUPPORT}),
}

DEFAULT_SEVERITY: dict[str, Severity] = {
    "customer.unmapped_erp": Severity.HIGH,
    "customer.unmapped_support": Severity.MEDIUM,
    "customer.master_drift": Severity.LOW,
    "invoice.missing_in_erp": Severity.HIGH,
    "invoice.not_posted_in_erp": Severity.HIGH,
    "invoice.amount_mismatch": Severity.CRITICAL,
    "invoice.currency_mismatch": Severity.CRITICAL,
    "invoice.tax_mismatch": Severity.HIGH,
    "invoice.duplicate_in_erp": Severity.CRITICAL,
    "invoice.payment_state": Severity.MEDIUM,
    "invoice.orphan_in_erp": Severity.MEDIUM,
    "credit_note.missing_in_erp": Severity.HIGH,
    "credit_note.amount_mismatch": Severity.HIGH,
    "invoice.refund_not_reflected": Severity.HIGH,
    "subscription.terms_mismatch": Severity.MEDIUM,
    # the ERP's posted total differs from billing's, as for invoice.amount_mismatch
    "subscription.proration_mismatch": Severity.CRITICAL,
    "entitlement.missing": Severity.HIGH,
    "entitlement.tier_mismatch": Severity.MEDIUM,
    "entitlement.orphan": Severity.HIGH,
}

#: System-of-record per field (DESIGN.md); corrections flow from the owner to the copies.
DEFAULT_OWNERSHIP: dict[str, System] = {
    "customer.name": System.ERP,
    "customer.tax_id": System.ERP,
    "customer.country": System.ERP,
    "customer.email": System.BILLING,
    "subscription.terms": System.BILLING,
    "invoice.content": System.BILLING,
    "invoice.posting": System.ERP,
    "invoice.payment": System.BILLING,
    "entitlement.tier": System.BILLING,
}


@dataclass(frozen=True)
class ReconcileConfig:
    invoice_grace: timedelta = timedelta(minutes=15)
    payment_grace: timedelta = timedelta(minutes=60)
    #: plan key -> tier; plans not listed use the tier billing reports for the plan
    plan_tiers: dict[str, Tier] = field(default_factory=dict)
    ownership: dict[str, System] = field(default_factory=lambda: dict(DEFAULT_OWNERSHIP))
    severity: dict[str, Severity] = field(default_factory=lambda: dict(DEFAULT_SEVERITY))
    max_candidates: int = 3


@dataclass
class Snapshot:
    """The three systems' data; a system that has never been fetched is absent."""

    systems: dict[System, SystemData]

    def get(self, system: System) -> SystemData:
        return self.systems.get(system) or SystemData(system)


@dataclass
class ReconcileResult:
    exceptions: list[SyncException]
    evaluated_rules: frozenset[str]
    skipped_rules: dict[str, str]  # rule -> why it did not run
    checked_at: datetime


# -- normalisation ---------------------------------------------------------------------
_WS = re.compile(r"\s+")
_PUNCT = re.compile(r"[^\w\s]")
_LEGAL = re.compile(r"\b(inc|incorporated|ltd|limited|llc|gmbh|ag|sa|sas|sarl|bv|nv|plc|co|corp|corporation|"
                    r"company|oy|ab|as|srl|spa)\b")


def norm_name(name: str | None) -> str:
    """For drift: NFC, collapsed whitespace, stripped; case-sensitive."""
    return _WS.sub(" ", unicodedata.normalize("NFC", name or "")).strip()


def norm_tax(tax: str | None) -> str:
    return re.sub(r"[\s.\-]", "", (tax or "")).upper()


def norm_country(country: str | None) -> str:
    return (country or "").strip().upper()


def match_name(name: str | None) -> str:
    """For candidate matching: case- and accent-insensitive, punctuation and legal forms removed."""
    text = unicodedata.normalize("NFKD", name or "")
    text = "".join(c for c in text if not unicodedata.combining(c)).casefold()
    text = _LEGAL.sub(" ", _PUNCT.sub(" ", text))
    return _WS.sub(" ", text).strip()


def email_domain(email: str | None) -> str:
    if not email or "@" not in email:
        return ""
    return email.rsplit("@", 1)[1].strip().lower()


def money_str(amount: Decimal, currency: str) -> str:
    """An amount as a summary shows it: the currency's own exponent ("1,500 JPY", "12.345 KWD");
    an alias of :func:`services.core.currency.format_money`."""
    return format_money(amount, currency)


# -- the engine --------------------------------------------------------------------------
class _Pool:
    """Unlinked records (ERP parties, support organizations) indexed by the keys candidates
    are ranked on, normalised once per run rather than once per unmapped customer."""

    def __init__(self, records: list[Customer]) -> None:
        self.by_tax: dict[str, list[Customer]] = defaultdict(list)
        self.by_domain: dict[str, list[Customer]] = defaultdict(list)
        self.by_name: dict[str, list[Customer]] = defaultdict(list)
        for rec in records:
            if tax := norm_tax(rec.tax_id):
                self.by_tax[tax].append(rec)
            if domain := email_domain(rec.email):
                self.by_domain[domain].append(rec)
            if name := match_name(rec.name):
                self.by_name[name].append(rec)

    def rank(self, customer: Customer, limit: int) -> list[dict[str, object]]:
        weights = ((self.by_tax, norm_tax(customer.tax_id), 3, "same tax id"),
                   (self.by_domain, email_domain(customer.email), 2, "same email domain"),
                   (self.by_name, match_name(customer.name), 1, "same name"))
        found: dict[int, tuple[Customer, int, list[str]]] = {}
        for index, key, weight, reason in weights:
            if not key:
                continue
            for cand in index.get(key, ()):
                _, score, reasons = found.get(id(cand), (cand, 0, []))
                found[id(cand)] = (cand, score + weight, [*reasons, reason])
        ranked = sorted(found.values(), key=lambda t: (-t[1], t[0].ref.id))
        return [{"ref": str(c.ref), "id": c.ref.id, "name": c.name, "score": score, "reasons": reasons}
                for c, score, reasons in ranked[:limit]]


class _Run:
    """One evaluation. The hot loops (one pass per table, hundreds of thousands of records at
    100,000 customers) do identity tests and dictionary look-ups only; sides and summaries are
    built only when an exception fires. Set differences (``keys() - keys()``) run in C."""

    def __init__(self, snapshot: Snapshot, config: ReconcileConfig, now: datetime) -> None:
        self.config = config
        self.now = now
        self.b = snapshot.get(System.BILLING)
        self.e = snapshot.get(System.ERP)
        self.s = snapshot.get(System.SUPPORT)
        self.out: list[SyncException] = []
        self._seen: set[str] = set()
        # indexes: one pass each
        self.parties_by_code: dict[str, Customer] = {}
        unlinked_parties: list[Customer] = []
        for party in self.e.customers.values():
            if party.customer_id:
                self.parties_by_code.setdefault(party.customer_id, party)
            else:
                unlinked_parties.append(party)
        self.orgs_by_ext: dict[str, Customer] = {}
        unlinked_orgs: list[Customer] = []
        for org in self.s.customers.values():
            if org.customer_id:
                self.orgs_by_ext.setdefault(org.customer_id, org)
            else:
                unlinked_orgs.append(org)
        self.unlinked_parties = _Pool(unlinked_parties)
        self.unlinked_orgs = _Pool(unlinked_orgs)
        self.ent_by_ext: dict[str, Entitlement] = {
            ent.customer_id: ent for ent in self.s.entitlements.values() if ent.customer_id}
        # ERP invoices by the billing invoice they carry: the first live one, and every copy
        # only for the (rare) references carried more than once
        cancelled = InvoiceStatus.CANCELLED
        self.erp_invoice_by_ref: dict[str, Invoice] = {}
        self.erp_copies: dict[str, list[Invoice]] = {}
        first = self.erp_invoice_by_ref.setdefault
        #: the cancelled ERP copies of a billing invoice (what explains one that no live copy carries)
        self.erp_cancelled: dict[str, list[Invoice]] = {}
        for inv in self.e.invoices.values():
            ref = inv.billing_invoice_id
            if ref and inv.status is not cancelled:
                kept = first(ref, inv)
                if kept is not inv:
                    self.erp_copies.setdefault(ref, [kept]).append(inv)
            elif ref:
                self.erp_cancelled.setdefault(ref, []).append(inv)
        self.erp_subs_by_ref: dict[str, Subscription] = {}
        for sub in self.e.subscriptions.values():
            if sub.billing_subscription_id and sub.status.is_active:
                self.erp_subs_by_ref.setdefault(sub.billing_subscription_id, sub)
        self.active_subs: dict[str, list[Subscription]] = {}
        for sub in self.b.subscriptions.values():
            if sub.customer_id and sub.status.is_active:
                self.active_subs.setdefault(sub.customer_id, []).append(sub)
        #: billing customers with a finalized invoice but no ERP party (filled by scan_invoices)
        self.unmapped_with_invoice: set[str] = set()
        self.plan_tier: dict[str, Tier] = {}
        for plan in self.b.plans.values():
            if plan.tier is not None:
                self.plan_tier[plan.key] = plan.tier
        self.plan_tier.update(config.plan_tiers)

    # helpers
    def add(self, rule: str, customer_id: str | None, object_id: str, summary: str, sides: list[Side]) -> None:
        exc_id = f"{rule}:{object_id}"
        if exc_id in self._seen:
            return
        self._seen.add(exc_id)
        owner, fixes = RULES[rule]
        self.out.append(SyncException(
            id=exc_id, rule=rule, severity=self.config.severity.get(rule, Severity.MEDIUM), owner=owner,
            customer_id=customer_id, object_id=object_id, summary=summary, sides=sides,
            first_seen=self.now, last_seen=self.now, fix_actions=fixes))

    def erp_mapped(self, customer_id: str | None) -> bool:
        return bool(customer_id) and customer_id in self.parties_by_code

    def support_mapped(self, customer_id: str | None) -> bool:
        return bool(customer_id) and customer_id in self.orgs_by_ext

    def erp_invoices(self, billing_invoice_id: str) -> list[Invoice]:
        """The live (not cancelled) ERP invoices carrying this billing invoice id."""
        if copies := self.erp_copies.get(billing_invoice_id):
            return list(copies)
        inv = self.erp_invoice_by_ref.get(billing_invoice_id)
        return [inv] if inv is not None else []

    def granted_tier(self, customer_id: str) -> Tier | None:
        subs = self.active_subs.get(customer_id, ())
        if len(subs) == 1:  # the common case
            return self.plan_tier.get(subs[0].plan_key or "")
        tiers = [self.plan_tier.get(s.plan_key or "") for s in subs]
        ranked = [t for t in tiers if t is not None]
        return max(ranked, key=TIER_RANK.__getitem__) if ranked else None

    # -- customers -------------------------------------------------------------------
    def candidates(self, customer: Customer, pool: _Pool) -> list[dict[str, object]]:
        return pool.rank(customer, self.config.max_candidates)

    def rule_unmapped_erp(self) -> None:
        """Needs :meth:`scan_invoices` first (customers with a finalized invoice)."""
        for cid, cust in self.b.customers.items():
            if cid in self.parties_by_code:
                continue
            if cid not in self.active_subs and cid not in self.unmapped_with_invoice:
                continue
            self.add("customer.unmapped_erp", cid, cid, f"{cust.name}: no ERP party carries {cid}", [
                Side(System.BILLING, cust.ref, {"name": cust.name, "tax_id": cust.tax_id, "email": cust.email,
                                                "country": cust.country}),
                Side(System.ERP, None, {"party": None,
                                        "candidates": self.candidates(cust, self.unlinked_parties)}),
            ])

    def rule_unmapped_support(self) -> None:
        unmapped = self.active_subs.keys() - self.orgs_by_ext.keys()
        for cid in self.active_subs:
            if cid not in unmapped:
                continue
            cust = self.b.customers.get(cid)
            if cust is None:
                continue
            self.add("customer.unmapped_support", cid, cid, f"{cust.name}: no support organization carries {cid}", [
                Side(System.BILLING, cust.ref, {"name": cust.name, "email": cust.email}),
                Side(System.SUPPORT, None, {"organization": None,
                                            "candidates": self.candidates(cust, self.unlinked_orgs)}),
            ])

    def rule_master_drift(self, with_support: bool) -> None:
        customers, orgs = self.b.customers, (self.orgs_by_ext if with_support else {})
        # the system of record of the customer's name (the configured ownership; ERP by default)
        name_owner = self.config.ownership.get("customer.name", System.ERP)
        for cid, party in self.parties_by_code.items():
            cust = customers.get(cid)
            if cust is None:
                continue
            org = orgs.get(cid)
            # equal raw values need no normalising (the common case: most customers agree)
            if (cust.name == party.name and cust.tax_id == party.tax_id and cust.country == party.country
                    and (org is None or org.name == party.name)):
                continue
            diffs: dict[str, tuple[object, object]] = {}
            if cust.name != party.name and norm_name(cust.name) != norm_name(party.name):
                diffs["name"] = (cust.name, party.name)
            if cust.tax_id != party.tax_id and norm_tax(cust.tax_id) != norm_tax(party.tax_id):
                diffs["tax_id"] = (cust.tax_id, party.tax_id)
            if cust.country != party.country and norm_country(cust.country) != norm_country(party.country):
                diffs["country"] = (cust.country, party.country)
            org_differs = (org is not None and org.name != party.name
                           and norm_name(org.name) != norm_name(party.name))
            if not diffs and not org_differs:
                continue
            sides = [
                Side(System.ERP, party.ref, {"name": party.name, "tax_id": party.tax_id, "country": party.country,
                                             "owner": name_owner is System.ERP}),
                Side(System.BILLING, cust.ref, {k: v[0] for k, v in diffs.items()}),
            ]
            fields_ = sorted(diffs)
            if org is not None and org_differs:
                sides.append(Side(System.SUPPORT, org.ref, {"name": org.name}))
                fields_.append("support name")
            where = ("from the ERP (owner)" if name_owner is System.ERP
                     else f"between the ERP and {name_owner.value} (owner)")
            self.add("customer.master_drift", cid, cid,
                     f"{party.name}: {', '.join(fields_)} {'differs' if len(fields_) == 1 else 'differ'} {where}",
                     sides)

    # -- invoices --------------------------------------------------------------------
    def scan_invoices(self, check: bool) -> None:
        """One pass over every billing invoice: the invoice rules (when ``check``) for customers
        the ERP knows, and, for those it does not, whether they have a finalized invoice (for
        ``customer.unmapped_erp``). The common, agreeing case does identity tests and look-ups
        only (enum ``in``-tests would go through Python-level ``Enum.__hash__``; ``Money``
        values are shared, so equal totals are usually the same object)."""
        grace, pay_grace, now = self.config.invoice_grace, self.config.payment_grace, self.now
        open_, paid, void, uncollectible = (InvoiceStatus.OPEN, InvoiceStatus.PAID, InvoiceStatus.VOID,
                                            InvoiceStatus.UNCOLLECTIBLE)
        posted, draft, validated = InvoiceStatus.POSTED, InvoiceStatus.DRAFT, InvoiceStatus.VALIDATED
        parties, erp_by_ref, copies = self.parties_by_code, self.erp_invoice_by_ref, self.erp_copies
        unmapped_with_invoice = self.unmapped_with_invoice
        for iid, inv in self.b.invoices.items():
            st = inv.status
            if not (st is paid or st is open_ or st is void or st is uncollectible):
                continue
            if inv.customer_id not in parties:
                if inv.customer_id:
                    unmapped_with_invoice.add(inv.customer_id)
                continue
            if not check:
                continue
            e = erp_by_ref.get(iid)
            if e is None:
                finalized = inv.finalized_at or inv.created
                # $0 (trial) invoices are not sent to the ERP; a negative total is compared like any other
                if st is not void and inv.total.amount != 0 and finalized is not None and now - finalized > grace:
                    gone = self.erp_cancelled.get(iid)
                    self.add("invoice.missing_in_erp", inv.customer_id, iid,
                             f"{inv.number or iid} ({money_str(inv.total.amount, inv.total.currency)}) "
                             f"finalized {finalized:%Y-%m-%d %H:%M} UTC has not reached the ERP"
                             + (f" (only {self._cancelled_text(gone)})" if gone else ""),
                             [self._billing_side(inv), self._cancelled_side(gone) if gone
                              else Side(System.ERP, None, {"invoice": None})])
                continue
            if copies and iid in copies:
                erp = copies[iid]
                self.add("invoice.duplicate_in_erp", inv.customer_id, iid,
                         f"{len(erp)} ERP invoices carry {iid}", [self._billing_side(inv), *[
                             Side(System.ERP, x.ref, {"state": x.status.value, "number": x.number,
                                                      "total": amount_text(x.total.amount, x.total.currency)})
                             for x in erp]])
                continue
            bt, et = inv.total, e.total
            est = e.status
            prorated = False
            # compared in minor units with the currency's exponent (12.345 KWD is not 12.340 KWD; 12.34 KWD
            # is 12.340 KWD); equal Decimals are equal minor units, so the agreeing case stays a cheap test
            if et is not bt and et.currency != bt.currency:
                self.add("invoice.currency_mismatch", inv.customer_id, iid,
                         f"{inv.number or iid}: billing in {bt.currency} ({money_str(bt.amount, bt.currency)}), "
                         f"the ERP copy in {et.currency} ({money_str(et.amount, et.currency)}, {e.status.value})",
                         [self._billing_side(inv), self._erp_side(e)])
            elif et is not bt and et.amount != bt.amount \
                    and not same_amount(et.amount, et.currency, bt.amount, bt.currency):
                # a proration invoice booked without (some of) its proration lines: the lines it
                # lacks explain the amount and the tax (one root cause, one exception)
                prorated = proration_mismatch(self, inv, e)
                if not prorated:
                    self.add("invoice.amount_mismatch", inv.customer_id, iid,
                             f"{inv.number or iid}: billing {money_str(bt.amount, bt.currency)}, "
                             f"ERP {money_str(et.amount, et.currency)} ({e.status.value})",
                             [self._billing_side(inv), self._erp_side(e)])
            elif (est is draft or est is validated) and st is not void:
                finalized = inv.finalized_at or inv.created
                if finalized is not None and now - finalized > grace:
                    self.add("invoice.not_posted_in_erp", inv.customer_id, iid,
                             f"{inv.number or iid} ({money_str(bt.amount, bt.currency)}) is {st.value} in billing "
                             f"since {finalized:%Y-%m-%d %H:%M} UTC but still {est.value} in the ERP",
                             [self._billing_side(inv), self._erp_side(e)])
            bx, ex = inv.taxes, e.taxes  # None: not read (an older snapshot); (): untaxed
            # compared when both sides were read and either is taxed; the common case inline
            # (one rate each side, the same percentage and tax) costs two comparisons
            if ((bx and ex is not None) or (ex and bx is not None)) and not (
                    len(bx) == 1 and len(ex) == 1 and bx[0].amount.amount == ex[0].amount.amount
                    and bx[0].percentage == ex[0].percentage) and et.currency == bt.currency and not prorated:
                self.check_taxes(inv, e)
            if st is paid:
                if est is posted and inv.paid_at is not None and now - inv.paid_at > pay_grace:
                    self.add("invoice.payment_state", inv.customer_id, iid,
                             f"{inv.number or iid}: paid in billing but unpaid in the ERP",
                             [self._billing_side(inv), self._erp_side(e)])
            elif st is void and (est is posted or est is paid):
                self.add("invoice.payment_state", inv.customer_id, iid,
                         f"{inv.number or iid}: void in billing but {est.value} in the ERP",
                         [self._billing_side(inv), self._erp_side(e)])

    def check_taxes(self, inv: Invoice, e: Invoice) -> None:
        """``invoice.tax_mismatch``: the tax per rate of billing's invoice and of its ERP copy
        (same currency) differ by a minor unit or more. Rates are matched by percentage (each
        system has its own rate ids); a rate one side lacks counts as 0 there."""
        bx, ex = inv.taxes or (), e.taxes or ()
        cur = inv.total.currency
        diffs = tax_differences(bx, ex, cur)
        if not diffs:
            return
        parts = [f"tax at {rate}: billing {money_str(b, cur)}, ERP {money_str(x, cur)}" for rate, b, x in diffs]
        self.add("invoice.tax_mismatch", inv.customer_id, inv.ref.id,
                 f"{inv.number or inv.ref.id}: " + "; ".join(parts) + f" ({e.status.value} in the ERP)",
                 [self._tax_side(System.BILLING, inv, diffs, False), self._tax_side(System.ERP, e, diffs, True)])

    @staticmethod
    def _tax_side(system: System, inv: Invoice, diffs: list[tuple[str, Decimal, Decimal]], erp: bool) -> Side:
        cur = inv.total.currency
        values: dict[str, object] = {"status" if system is System.BILLING else "state": inv.status.value,
                                     "number": inv.number, "currency": cur,
                                     "total": amount_text(inv.total.amount, cur)}
        if inv.tax is not None:
            values["tax"] = amount_text(inv.tax.amount, cur)
        for rate, billed, erp_tax in diffs:
            values[f"tax at {rate}"] = amount_text(erp_tax if erp else billed, cur)
        return Side(system, inv.ref, values)

    @staticmethod
    def _billing_side(inv: Invoice) -> Side:
        return Side(System.BILLING, inv.ref, {"status": inv.status.value,
                                              "total": amount_text(inv.total.amount, inv.total.currency),
                                              "currency": inv.total.currency, "number": inv.number})

    @staticmethod
    def _erp_side(e: Invoice) -> Side:
        return Side(System.ERP, e.ref, {"state": e.status.value, "total": amount_text(e.total.amount, e.total.currency),
                                        "currency": e.total.currency, "number": e.number})

    @staticmethod
    def _cancelled_text(gone: list[Invoice]) -> str:
        """``"a cancelled copy, INV-000012"`` / ``"2 cancelled copies, INV-1, ERP invoice 7"``."""
        names = ", ".join(e.number or f"ERP invoice {e.ref.id}" for e in gone)
        return f"a cancelled copy, {names}" if len(gone) == 1 else f"{len(gone)} cancelled copies, {names}"

    @staticmethod
    def _cancelled_side(gone: list[Invoice]) -> Side:
        """The ERP side of a billing invoice only cancelled copies carry: the latest cancelled one
        (its number, state, amount and cancellation time), no live invoice."""
        e = max(gone, key=lambda x: (x.voided_at or x.created or datetime.min.replace(tzinfo=UTC), x.ref.id))
        values: dict[str, object] = {
            "live invoice": "none", "state": e.status.value, "number": e.number,
            "total": amount_text(e.total.amount, e.total.currency), "currency": e.total.currency,
            "cancelled at": f"{e.voided_at:%Y-%m-%d %H:%M} UTC" if e.voided_at else "unknown"}
        if len(gone) > 1:
            values["cancelled copies"] = [x.number or f"ERP invoice {x.ref.id}" for x in gone]
        return Side(System.ERP, e.ref, values)

    def rule_credit_notes(self) -> set[str]:
        """``credit_note.missing_in_erp`` / ``credit_note.amount_mismatch``
        (:func:`services.core.reconcile_money.rule_credit_notes`); the billing invoices with a
        credit note."""
        return rule_credit_notes(self)

    def rule_refunds(self, noted: set[str]) -> None:
        """``invoice.refund_not_reflected`` (:func:`services.core.reconcile_money.rule_refunds`)."""
        if self.b.refunds:
            rule_refunds(self, noted)

    def rule_orphans(self) -> None:
        missing = self.erp_invoice_by_ref.keys() - self.b.invoices.keys()
        for ref, e in self.erp_invoice_by_ref.items():
            if ref not in missing or not ref.startswith("in_"):
                continue
            self.add("invoice.orphan_in_erp", e.customer_id, ref,
                     f"ERP invoice {e.number or e.ref.id} refers to {ref}, which billing does not have",
                     [Side(System.ERP, e.ref, {"reference": ref, "state": e.status.value,
                                               "total": amount_text(e.total.amount, e.total.currency),
                                               "number": e.number}),
                      Side(System.BILLING, None, {"invoice": None})])

    # -- subscriptions ---------------------------------------------------------------
    def rule_terms(self) -> None:
        parties, erp_subs = self.parties_by_code, self.erp_subs_by_ref
        for cid, subs in self.active_subs.items():
            if cid not in parties:
                continue
            for sub in subs:
                esub = erp_subs.get(sub.ref.id)
                if esub is None:
                    continue
                bend_at, eend_at = sub.current_period_end, esub.current_period_end
                if sub.plan_key == esub.plan_key and sub.quantity == esub.quantity and bend_at == eend_at:
                    continue  # the common case: nothing to normalise
                diffs: dict[str, tuple[object, object]] = {}
                if sub.plan_key != esub.plan_key:
                    diffs["plan"] = (sub.plan_key, esub.plan_key)
                if sub.quantity != esub.quantity:
                    diffs["quantity"] = (sub.quantity, esub.quantity)
                bend = bend_at.astimezone(UTC).date() if bend_at else None
                eend = eend_at.astimezone(UTC).date() if eend_at else None
                if bend != eend:
                    diffs["period_end"] = (bend.isoformat() if bend else None, eend.isoformat() if eend else None)
                if diffs:
                    self.add("subscription.terms_mismatch", cid, sub.ref.id,
                             f"{sub.ref.id}: {', '.join(sorted(diffs))} "
                             f"{'differs' if len(diffs) == 1 else 'differ'} in the ERP",
                             [Side(System.BILLING, sub.ref, {k: v[0] for k, v in diffs.items()}),
                              Side(System.ERP, esub.ref, {k: v[1] for k, v in diffs.items()})])

    # -- entitlements ----------------------------------------------------------------
    def rule_entitlements(self) -> None:
        orgs, ents = self.orgs_by_ext, self.ent_by_ext
        for cid in self.active_subs:
            org = orgs.get(cid)
            if org is None:
                continue
            ent = ents.get(cid)
            have = ent.tier if ent else None
            granted = self.granted_tier(cid)
            if have is not None and (granted is None or have is granted):
                continue  # the common case: the tier the plan grants
            bside = Side(System.BILLING, None, {"plans": sorted(s.plan_key or "?" for s in self.active_subs[cid]),
                                                "tier": granted.value if granted else None})
            sside = Side(System.SUPPORT, org.ref, {"tier": have.value if have else None})
            if have is None:
                self.add("entitlement.missing", cid, cid, f"{org.name}: active subscription but no support tier",
                         [bside, sside])
            else:
                assert granted is not None
                self.add("entitlement.tier_mismatch", cid, cid,
                         f"{org.name}: support tier {have.value}, the plan grants {granted.value}", [bside, sside])
        for cid, ent in ents.items():
            if ent.tier is None or cid in self.active_subs:
                continue
            orphan_org = orgs.get(cid)
            self.add("entitlement.orphan", cid, cid,
                     f"{orphan_org.name if orphan_org else cid}: support tier {ent.tier.value} "
                     "without an active subscription",
                     [Side(System.BILLING, None, {"active_subscription": None}),
                      Side(System.SUPPORT, ent.ref, {"tier": ent.tier.value})])


def reconcile(snapshot: Snapshot, config: ReconcileConfig | None = None,
              now: datetime | None = None) -> ReconcileResult:
    """Evaluate every rule whose systems have data; return the open disagreements."""
    config = config or ReconcileConfig()
    now = now or datetime.now(UTC)
    run = _Run(snapshot, config, now)
    have = set(snapshot.systems)
    skipped = {rule: f"no data from {', '.join(sorted(s.value for s in needs - have))}"
               for rule, needs in RULE_SYSTEMS.items() if not needs <= have}
    ok = lambda rule: rule not in skipped  # noqa: E731
    if ok("customer.unmapped_erp") or ok("invoice.missing_in_erp"):
        run.scan_invoices(check=ok("invoice.missing_in_erp"))
    if ok("invoice.missing_in_erp"):
        run.rule_orphans()
    if ok("credit_note.missing_in_erp"):
        run.rule_refunds(run.rule_credit_notes())
    if ok("customer.unmapped_erp"):
        run.rule_unmapped_erp()
    if ok("customer.unmapped_support"):
        run.rule_unmapped_support()
    if ok("customer.master_drift"):
        run.rule_master_drift(with_support=System.SUPPORT in have)
    if ok("subscription.terms_mismatch"):
        run.rule_terms()
    if ok("entitlement.missing"):
        run.rule_entitlements()
    return ReconcileResult(run.out, frozenset(r for r in RULE_SYSTEMS if ok(r)), skipped, now)
