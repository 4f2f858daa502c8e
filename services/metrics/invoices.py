"""Invoice sync facts from the snapshot: for every finalized billing invoice whose grace has
passed, whether it reached the ERP correctly within the grace, and its posting latency.

Definitions (the ground-truth test, tests/services/test_metrics_truth.py, recomputes them
from the demo generator's own records):

- counted: a billing invoice ``open``, ``paid`` or ``uncollectible`` (not void, not draft) with
  a non-zero total, finalized (``finalized_at``, else ``created``) at least the invoice grace
  before ``now``;
- reached correctly: exactly one live (not cancelled) ERP copy (``billing_invoice_id``), posted
  or paid, in the same currency and amount, created at most the grace after finalization;
- posting latency: the live copy's ``posted_at`` (its posting time when the ERP tells it) minus
  the finalization, for every counted invoice with exactly one live copy whose posting time
  is known (a paid ERP invoice's posting time is not: services/io/connectors/tryton_payloads.py);
- percentiles are nearest-rank: ``p(q)`` is the ``ceil(q/100 * n)``-th smallest value.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from operator import itemgetter

from services.core.currency import same_amount
from services.core.domain import Invoice, InvoiceStatus, System
from services.core.reconcile import Snapshot

#: (finalized at as unix seconds, reached correctly, posting latency in seconds or None,
#:  billing invoice id, customer id, currency)
Fact = tuple[float, bool, float | None, str, str | None, str]


def percentile(values: list[float], pct: int) -> float | None:
    """Nearest-rank percentile of sorted ``values`` (``pct`` in 1..100); None when empty."""
    if not values:
        return None
    k = -(-pct * len(values) // 100)
    return values[max(0, k - 1)]


def invoice_facts(snapshot: Snapshot, grace: timedelta, now: datetime, currency: str | None = None,
                  since: datetime | None = None) -> list[Fact]:
    """The facts of the counted invoices finalized from ``since`` (None: all), sorted by
    finalization. One pass over each system's invoices; the agreeing case costs identity tests
    and one subtraction (enum ``in``-tests would go through Python-level ``Enum.__hash__``)."""
    billing = snapshot.systems.get(System.BILLING)
    if billing is None:
        return []
    erp = snapshot.systems.get(System.ERP)
    cancelled, void = InvoiceStatus.CANCELLED, InvoiceStatus.VOID
    live: dict[str, Invoice | None] = {}  # billing invoice id -> its one live copy (None: several)
    if erp is not None:
        for copy in erp.invoices.values():
            ref = copy.billing_invoice_id
            if ref and copy.status is not cancelled and copy.status is not void:
                live[ref] = None if ref in live else copy
    opened, paid, uncollectible = InvoiceStatus.OPEN, InvoiceStatus.PAID, InvoiceStatus.UNCOLLECTIBLE
    posted = InvoiceStatus.POSTED
    g = grace.total_seconds()
    last = now.timestamp() - g
    first = since.timestamp() if since is not None else float("-inf")
    out: list[Fact] = []
    append = out.append
    cur = currency.lower() if currency else None
    get = live.get
    for iid, inv in billing.invoices.items():
        st = inv.status
        if not (st is paid or st is opened or st is uncollectible):
            continue
        fin_dt = inv.finalized_at or inv.created
        if fin_dt is None:
            continue
        fin = fin_dt.timestamp()
        if fin > last or fin < first:
            continue
        bt = inv.total
        if not bt.amount or (cur is not None and bt.currency.lower() != cur):
            continue
        e = get(iid)
        ok = False
        lag: float | None = None
        if e is not None:
            posted_at = e.posted_at
            if posted_at is not None:
                lag = posted_at.timestamp() - fin
            et, est, created = e.total, e.status, e.created
            ok = ((est is posted or est is paid) and created is not None and created.timestamp() - fin <= g
                  and (et is bt or (et.currency == bt.currency and et.amount == bt.amount)
                       or same_amount(et.amount, et.currency, bt.amount, bt.currency)))
        append((fin, ok, lag, iid, inv.customer_id, bt.currency))
    out.sort(key=itemgetter(0))
    return out
