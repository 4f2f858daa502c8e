"""Postings are never dated after the ERP's today, on the demo servers over loopback: trytond's
``account.invoice.post`` stops a customer invoice dated after ``ir.date.today`` (the ERP
company's date) on its ``invoice_date_future`` warning, and the demo ERP does likewise. An
engine whose clock is a day ahead of the ERP's date (its UTC date past the ERP company's
midnight) plans a late posting dated the ERP's today, read over RPC before planning, says so in
the preview, and the posting goes through without a warning; an operator's date after the ERP's
today is refused in the preflight and nothing is written."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from services.actions.model import ActionKind, ActionRequest, ActionStatus, Plan
from services.actions.service import ActionService
from services.actions.steps import PostInvoice
from services.core.domain import System
from services.engine import Engine
from services.io.connectors.tryton import TrytonConnector
from services.store.audit import AuditLog
from services.store.storage import Storage
from tests.services.actions_rig import FINANCE, Rig, make_rig


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    """The action rig, then its engine and service reopened on a clock one day ahead of the
    demo's (the ERP's) clock: the snapshot the rig refreshed, the same audit database."""
    r = await make_rig(tmp_path)
    try:
        await r.detach()
        ahead: Callable[[], datetime] = lambda: r.env.now() + timedelta(days=1)  # noqa: E731
        r.engine = Engine.from_profile(r.env.profile(), Storage.open_path(r.snapshot_db), policies=r.policies,
                                       clock=ahead)
        await r.engine.load()
        r.audit = AuditLog(Storage.open_path(r.audit_db, durable=True))
        r.service = ActionService(r.engine, r.audit, FINANCE, clock=ahead)
        r.attached = True
        yield r
    finally:
        await r.close()


def erp_date(rig: Rig) -> date:
    """The demo ERP's today: its clock's date (the demo company has no timezone: UTC)."""
    company = rig.env.dataset.erp.tables["company.company"]
    assert all(not c.get("timezone") for c in company.values()), "the demo company's date is its clock's UTC date"
    return rig.env.now().astimezone(UTC).date()


async def late_posting(rig: Rig) -> Plan:
    """The RETRY plan of a missing posting billing finalized before the ERP's latest posted
    invoice: a late posting, which the fix dates "today" by itself."""
    for exc in await rig.open_of("invoice.missing_in_erp"):
        plan = await rig.service.plan(ActionRequest(ActionKind.RETRY, exc.id))
        if plan.ok and any("strict invoice sequence" in n for n in plan.notes):
            return plan
    raise AssertionError("no late missing posting in the demo")


async def test_an_engine_a_day_ahead_posts_dated_the_erps_today_without_warning(rig: Rig) -> None:
    today = erp_date(rig)
    assert rig.engine.clock().astimezone(UTC).date() == today + timedelta(days=1)
    plan = await late_posting(rig)
    [step] = plan.steps
    assert isinstance(step, PostInvoice)
    assert step.invoice_date == today.isoformat(), "dated the ERP's today, not the engine's UTC date"
    erp = rig.engine.connectors[System.ERP]
    assert isinstance(erp, TrytonConnector) and erp.today_read is not None and erp.today_read[0] == today
    assert any(f"the ERP's today is {today}" in n and f"UTC date {today + timedelta(days=1)}" in n
               for n in plan.notes), plan.notes
    assert any(c.name == "date" and c.ok and f"the ERP's today: {today}" in c.detail for c in plan.checks)
    result = await rig.service.execute(plan)
    assert (result.status, result.verified) == (ActionStatus.SUCCEEDED, True), result
    [posted] = rig.live_erp_invoices(step.billing_invoice_id)
    assert (posted["state"], posted["invoice_date"]) == ("posted", today)


async def test_an_operator_date_after_the_erps_today_is_refused(rig: Rig) -> None:
    today = erp_date(rig)
    exc = (await late_posting(rig)).exception
    tomorrow = (today + timedelta(days=1)).isoformat()
    plan = await rig.service.plan(ActionRequest(ActionKind.RETRY, exc.id, value={"invoice_date": tomorrow}))
    assert not plan.ok and plan.steps == []
    assert plan.explanation == (f"the chosen date {tomorrow} is after the ERP's today ({today}, its company's "
                                f"timezone): the ERP refuses an invoice dated in the future (invoice_date_future); "
                                f"choose {today} or earlier")
    result = await rig.service.execute(plan)
    assert result.status is ActionStatus.REFUSED
    assert rig.live_erp_invoices(exc.object_id) == [], "nothing was written"
    # the ERP's today itself is the operator's to choose
    chosen = await rig.service.plan(ActionRequest(ActionKind.RETRY, exc.id, value={"invoice_date": today.isoformat()}))
    assert chosen.ok and [s.invoice_date for s in chosen.steps if isinstance(s, PostInvoice)] == [today.isoformat()]
