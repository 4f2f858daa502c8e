"""What the demo generator knows about every invoice posting it planted: the true lags behind
the sync metrics (services/metrics), taken from the generator's own records (the billing
invoices it simulated, the ERP copies it decided to book) when the ERP is built — not from the
served data, which the servers may change afterwards.

:func:`record_postings` is called by the ERP phase (services/demo/generator/erp.py) with the
specs it inserted; :func:`truth_of` gives a generated dataset's truth back (a weak map keyed by
the dataset's ERP store, so a dataset that is dropped takes its truth with it)."""

from __future__ import annotations

import weakref
from dataclasses import dataclass, replace
from decimal import Decimal

from services.demo.generator.state import _ErpInv, _Gen
from services.demo.store import DemoDataset, ErpStore


@dataclass(frozen=True, slots=True)
class BillingInvoiceTruth:
    """A billing invoice as the generator simulated it (unix seconds, minor units)."""

    id: str
    customer: str
    status: str
    currency: str
    total: int
    created: int
    finalized_at: int | None


@dataclass(frozen=True, slots=True)
class PostingTruth:
    """One ERP copy of a billing invoice as the generator booked it: ``created`` when the
    integration created it, ``posted_at`` when it was posted (``None``: never posted — a
    draft or a validated copy), ``state`` its state at the anchor, ``as_billed`` whether it
    carries billing's lines and currency (not a planted amount or currency difference).
    ``posting_time_kept``: whether the ERP itself still tells when it was posted (only while it
    is ``posted``: trytond keeps no time per state, services/io/connectors/tryton_payloads.py)."""

    invoice: str
    created: int
    posted_at: int | None
    state: str
    as_billed: bool

    @property
    def posting_time_kept(self) -> bool:
        return self.state == "posted"


@dataclass(frozen=True, slots=True)
class GeneratorTruth:
    anchor: int
    invoices: tuple[BillingInvoiceTruth, ...]
    postings: tuple[PostingTruth, ...]
    #: (support ticket id, billing customer id) of the billing disputes planted
    #: (services/demo/generator/truth_disputes.py)
    disputes: tuple[tuple[int, str], ...] = ()
    #: when support last applied a customer's subscriptions: (billing customer id, the support
    #: organization's last update), unix seconds
    activations: tuple[tuple[str, int], ...] = ()
    #: the billing subscriptions: (billing customer id, created), unix seconds
    subscriptions: tuple[tuple[str, int], ...] = ()


_TRUTH: weakref.WeakKeyDictionary[ErpStore, GeneratorTruth] = weakref.WeakKeyDictionary()


def _booked_total(g: _Gen, s: _ErpInv) -> Decimal | None:
    """The total the generator booked for copy ``s`` (its invoice record, found by its lines)."""
    if not s.line_ids:
        return None
    invoice = g.erp.tables["account.invoice.line"][s.line_ids[0]]["invoice"]
    total: Decimal = g.erp.tables["account.invoice"][invoice]["total_amount"]
    return total


def _posting(g: _Gen, s: _ErpInv) -> PostingTruth | None:
    binv = s.binv
    if binv is None or s.credits is not None or s.ref != binv.id:
        return None
    posted = s.state in ("posted", "paid") or s.was_posted
    as_billed = s.currency == binv.currency and _booked_total(g, s) == g.dec(binv.total, binv.currency)
    return PostingTruth(binv.id, s.create, s.create if posted else None, s.state, as_billed)


def record_postings(g: _Gen, specs: list[_ErpInv]) -> None:
    """Keep the truth of ``g``'s ERP copies (``specs``, as inserted) and billing invoices."""
    postings = tuple(p for s in specs if (p := _posting(g, s)) is not None)
    invoices = tuple(BillingInvoiceTruth(i.id, i.customer, i.status, i.currency, i.total, i.created, i.finalized_at)
                     for i in g.billing.invoices.values())
    _TRUTH[g.erp] = GeneratorTruth(g.A, invoices, postings)


def record_disputes(g: _Gen, planted: list[tuple[int, str]]) -> None:
    """Add the billing-dispute tickets planted and the entitlement activations to ``g``'s truth
    (after :func:`record_postings`; the support organizations are made)."""
    truth = _TRUTH.get(g.erp)
    if truth is None:
        return
    orgs = g.support.organizations
    activations = tuple((cid, int(orgs[org]["updated_at"].timestamp()))
                        for cid, org in g.support.orgs_by_external_id.items())
    subscriptions = tuple((sub.customer, sub.created) for sub in g.all_subs)
    _TRUTH[g.erp] = replace(truth, disputes=tuple(planted), activations=activations, subscriptions=subscriptions)


def truth_of(dataset: DemoDataset) -> GeneratorTruth:
    """The truth recorded when ``dataset`` was generated (KeyError for one built otherwise)."""
    return _TRUTH[dataset.erp]
