"""What a figure rests on, and what the history cannot know (services/metrics/compute.py):

- an open count (open, critical, failed mappings) at a time before the exception history starts
  is not known: ``previous`` is None and the note says from when the history runs — never the
  "0 then, 38 now, worse" a fresh install would otherwise show;
- the posting latency says how many of the invoices due it covers (the ERP tells a posting
  time only while an invoice is posted), the success rate how many invoices were due, the time
  to resolve how many exceptions were resolved;
- an entitlement updated long after the customer's subscription (a plan change, a support edit
  287 days later) is not an activation that took 287 days: it is left out, and counted in the note;
- the ``metrics`` command carries the same: ``basis`` and ``note`` columns in csv, "what the
  figures rest on" under the table.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import insert

from app.metrics_cli import render_metrics
from services.core.domain import (
    Entitlement,
    ExternalRef,
    Invoice,
    InvoiceStatus,
    Money,
    Subscription,
    SubscriptionStatus,
    System,
    Tier,
)
from services.core.reconcile import ReconcileConfig, Snapshot
from services.core.sysdata import SystemData
from services.metrics import model as m
from services.metrics.compute import compute_metrics
from services.metrics.model import Period
from services.store.storage import EXC, Storage

T = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
D = timedelta(days=1)
PERIOD = Period(T - 30 * D, T)
GRACE = ReconcileConfig().invoice_grace


def _exc(id_: str, first_seen: datetime, closed_at: datetime | None = None, severity: str = "medium",
         rule: str = "invoice.missing_in_erp") -> dict[str, object]:
    return dict(id=id_, rule=rule, severity=severity, owner="finance", customer_id=f"cus_{id_}", object_id=id_,
                summary="s", payload="{}", first_seen=first_seen, last_seen=closed_at or T, closed_at=closed_at)


@pytest.fixture
def storage(tmp_path: Path) -> Storage:
    s = Storage.open_path(tmp_path / "snapshot.db")
    yield s
    s.close()


def _write(storage: Storage, rows: list[dict[str, object]]) -> None:
    with storage.engine.begin() as conn:
        conn.execute(insert(EXC), rows)


def test_open_counts_before_the_history_starts_are_not_known(storage: Storage) -> None:
    # a fresh install: the first refresh, a day ago, found everything there is
    _write(storage, [_exc("a", T - D, severity="critical"), _exc("b", T - D, rule="customer.unmapped_erp"),
                     _exc("c", T - D)])
    r = compute_metrics(Snapshot({}), storage, period=PERIOD, now=T)
    for key, now in ((m.OPEN_EXCEPTIONS, 3), (m.OPEN_CRITICAL, 1), (m.FAILED_MAPPINGS, 1)):
        fig = r.figure(key)
        assert fig is not None and fig.value == now, key
        assert fig.previous is None, (key, fig.previous)
        assert "exception history from 2026-05-31 12:00 UTC" in fig.note, fig.note
    disputes = r.figure(m.DISPUTES)
    assert disputes is not None and disputes.previous is None


def test_open_counts_are_compared_once_the_history_reaches_back(storage: Storage) -> None:
    # the history runs from 40 days ago: 30 days ago one exception was open (b), now two (a, b)
    _write(storage, [_exc("old", T - 40 * D, closed_at=T - 35 * D), _exc("b", T - 32 * D), _exc("a", T - D)])
    r = compute_metrics(Snapshot({}), storage, period=PERIOD, now=T)
    fig = r.figure(m.OPEN_EXCEPTIONS)
    assert fig is not None and (fig.value, fig.previous) == (2, 1) and fig.note == ""
    mappings = r.figure(m.FAILED_MAPPINGS)
    assert mappings is not None and (mappings.value, mappings.previous) == (0, 0)
    disputes = r.figure(m.DISPUTES)  # the previous period began 60 days ago, before the history
    assert disputes is not None and disputes.previous is None


def test_an_empty_history_knows_no_previous_open_count(storage: Storage) -> None:
    r = compute_metrics(Snapshot({}), storage, period=PERIOD, now=T)
    fig = r.figure(m.OPEN_EXCEPTIONS)
    assert fig is not None and fig.value == 0 and fig.previous is None
    assert fig.note == "no exception history yet"


def _invoice(system: System, iid: str, status: InvoiceStatus, finalized: datetime, *,
             posted_at: datetime | None = None, ref: str | None = None) -> Invoice:
    return Invoice(ExternalRef(system, "invoice", iid), "cus_1", status, Money(Decimal("10.00"), "EUR"),
                   billing_invoice_id=ref, created=finalized, finalized_at=finalized, posted_at=posted_at)


def test_the_posting_latency_says_how_many_of_the_invoices_due_it_covers(storage: Storage) -> None:
    billing, erp = SystemData(System.BILLING), SystemData(System.ERP)
    for i in range(10):
        fin = T - (5 + i) * D
        billing.invoices[f"in_{i}"] = _invoice(System.BILLING, f"in_{i}", InvoiceStatus.PAID, fin)
        # three copies still posted (their posting time known), seven paid (it is not)
        posted = i < 3
        erp.invoices[str(i)] = _invoice(System.ERP, str(i), InvoiceStatus.POSTED if posted else InvoiceStatus.PAID,
                                        fin + timedelta(minutes=1),
                                        posted_at=fin + timedelta(minutes=10 * (i + 1)) if posted else None,
                                        ref=f"in_{i}")
    snap = Snapshot({System.BILLING: billing, System.ERP: erp})
    r = compute_metrics(snap, storage, period=PERIOD, now=T, config=ReconcileConfig(invoice_grace=GRACE))
    rate = r.figure(m.SUCCESS_RATE)
    assert rate is not None and rate.value == 100.0 and rate.basis == 10
    assert rate.note == "10 invoices due, 0 failed"
    for key, want in ((m.POSTING_P50, 1200.0), (m.POSTING_P95, 1800.0), (m.POSTING_MAX, 1800.0)):
        fig = r.figure(key)
        assert fig is not None and fig.value == want, key
        assert fig.basis == 3 and fig.note == "3 of 10 invoices (posting time known)", (key, fig.note)


def test_time_to_resolve_says_how_many_were_resolved(storage: Storage) -> None:
    _write(storage, [_exc("x", T - 3 * D, closed_at=T - 2 * D), _exc("y", T - 40 * D)])
    r = compute_metrics(Snapshot({}), storage, period=PERIOD, now=T)
    for key in (m.MTTR_P50, m.MTTR_P95):
        fig = r.figure(key)
        assert fig is not None and fig.value == D.total_seconds() and fig.basis == 1
        assert fig.note == "1 resolved exception, timed from first seen"


def test_an_entitlement_updated_long_after_the_subscription_is_not_a_287_day_activation(storage: Storage) -> None:
    billing, support = SystemData(System.BILLING), SystemData(System.SUPPORT)
    subs = {"cus_new": T - 10 * D, "cus_old": T - 300 * D}
    for cid, created in subs.items():
        billing.subscriptions[f"sub_{cid}"] = Subscription(ExternalRef(System.BILLING, "subscription", f"sub_{cid}"),
                                                           cid, SubscriptionStatus.ACTIVE, "pro", 1, created=created)
    # cus_new's tier came 7 minutes after its subscription; cus_old's organization was edited
    # 287 days after its subscription was created (a plan change, an edit): not an activation
    updated = {"cus_new": subs["cus_new"] + timedelta(minutes=7), "cus_old": subs["cus_old"] + 287 * D}
    for cid, at in updated.items():
        support.entitlements[cid] = Entitlement(ExternalRef(System.SUPPORT, "organization", cid), cid, Tier("premium"),
                                                updated=at)
    snap = Snapshot({System.BILLING: billing, System.SUPPORT: support})
    r = compute_metrics(snap, storage, period=PERIOD, now=T)
    for key in (m.ACTIVATION_P50, m.ACTIVATION_P95):
        fig = r.figure(key)
        assert fig is not None and fig.value == 420.0, (key, fig.value)
        assert fig.records.customers == ("cus_new",) and fig.basis == 1
        assert fig.note == "1 activation; 1 later tier update not timed"


def test_the_command_says_what_each_figure_rests_on(storage: Storage) -> None:
    _write(storage, [_exc("x", T - 3 * D, closed_at=T - 2 * D), _exc("y", T - D)])
    report = compute_metrics(Snapshot({}), storage, period=PERIOD, now=T)
    rows = {r["metric"]: r for r in csv.DictReader(io.StringIO(render_metrics(report, "csv", None)))}
    mttr = rows[m.MTTR_P50]
    assert mttr["basis"] == "1" and mttr["note"] == "1 resolved exception, timed from first seen"
    assert rows[m.OPEN_EXCEPTIONS]["basis"] == "" and rows[m.OPEN_EXCEPTIONS]["previous"] == ""
    assert rows[m.OPEN_EXCEPTIONS]["note"] == "exception history from 2026-05-29 12:00 UTC"
    table = render_metrics(report, "table", 100)
    assert "what the figures rest on" in table
    assert "  Time to resolve p50, Time to resolve p95: 1 resolved exception, timed from first seen" in table
