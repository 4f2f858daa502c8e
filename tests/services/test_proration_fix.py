"""``subscription.proration_mismatch`` is fixed by the credit + repost it offers
(``ActionKind.CREDIT_REPOST``, the fix ``invoice.amount_mismatch`` offers too): the corrected
copy is posted from the billing invoice's own lines — every one of them, the proration lines of
the mid-period change included, each with its mapped tax — so against the demo ERP, once run on a
proration invoice whose ERP copy was booked as a full period, the rule no longer fires for it (nor
any other invoice rule)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest

from services.actions.model import RULE_ACTIONS, ActionKind, ActionRequest, ActionStatus
from services.core.domain import System
from services.engine import RefreshMode
from services.io.connectors.tryton import TrytonConnector
from tests.services.actions_rig import Rig, make_rig

RULE = "subscription.proration_mismatch"


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    r = await make_rig(tmp_path)
    yield r
    await r.close()


async def test_credit_and_repost_with_billing_s_lines_closes_a_proration_mismatch(rig: Rig) -> None:
    exc = await rig.one(RULE, lambda e: "full period" in e.summary)
    iid = exc.object_id
    binv = rig.env.dataset.billing.invoices[iid]
    prorations = [ln for ln in binv.lines if ln.proration]
    assert prorations, "a proration invoice"
    [copy] = rig.live_erp_invoices(iid)
    erp_lines = rig.env.dataset.erp.tables["account.invoice.line"]
    assert len(copy["lines"]) == len(binv.lines) - len(prorations)  # booked as a full period

    # the rule offers it, and the console shows it allowed for this posted copy
    assert ActionKind.CREDIT_REPOST in RULE_ACTIONS[RULE]
    verdicts = {k: (ok, why) for k, ok, why in rig.service.allowed_actions(exc)}
    assert verdicts[ActionKind.CREDIT_REPOST] == (True, ""), verdicts
    assert not verdicts[ActionKind.CORRECT][0] and "never edited in place" in verdicts[ActionKind.CORRECT][1]

    plan = await rig.service.plan(ActionRequest(ActionKind.CREDIT_REPOST, exc.id,
                                                reason="the mid-period upgrade was booked as a full period"))
    assert plan.ok, plan.explanation
    result = await rig.service.execute(plan)
    assert result.status is ActionStatus.SUCCEEDED and result.verified, result.message

    [corrected] = rig.live_erp_invoices(iid)
    assert corrected["id"] != copy["id"] and corrected["state"] == "posted"
    # the corrected copy carries every billing line, the proration lines included, and billing's totals
    assert len(corrected["lines"]) == len(binv.lines)
    descriptions = {erp_lines[i]["description"] for i in corrected["lines"]}
    assert {ln.description for ln in prorations} <= descriptions
    conn = rig.engine.connectors[System.ERP]
    assert isinstance(conn, TrytonConnector)
    read = await conn.get_invoice(corrected["id"])  # as the ERP answers it (computed from its lines)
    assert read.total.amount == Decimal(binv.total) / 100
    assert read.net is not None and read.net.amount == Decimal(sum(ln.amount - ln.discount_amount
                                                                   for ln in binv.lines)) / 100

    report = await rig.engine.refresh(RefreshMode.FULL)
    assert report.ok, [o.error_text for o in report.failed]
    result_, _ = await rig.engine.reconcile()
    assert RULE in result_.evaluated_rules
    left = {e.rule for e in await rig.engine.open_exceptions() if e.object_id == iid}
    # no proration, amount, tax or duplicate exception left for it; a paid copy was credited without
    # refund, so the customer's payment is still to be applied to the corrected copy in the ERP
    # (invoice.payment_state says so until then, as for any credit + repost of a paid invoice)
    assert left == ({"invoice.payment_state"} if copy["state"] == "paid" else set()), left
    assert not [e for e in await rig.engine.open_exceptions() if e.rule == "invoice.orphan_in_erp"
                and e.customer_id == binv.customer]
