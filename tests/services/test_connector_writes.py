"""The write methods added for [F5] actions, on the demo servers over loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from services.core.domain import InvoiceStatus, System
from services.core.errors import RemoteValidationError
from services.io.connectors.tryton import TrytonConnector
from services.io.connectors.zendesk import ZendeskConnector
from tests.services.actions_rig import Rig, make_rig


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    r = await make_rig(tmp_path)
    yield r
    await r.close()


def _invoice(rig: Rig, state: str) -> dict[str, Any]:
    table = rig.env.dataset.erp.tables["account.invoice"]
    return next(r for r in table.values() if r.get("state") == state and r.get("lines"))


async def test_cancel_invoice_is_idempotent_and_refuses_posted(rig: Rig) -> None:
    erp = rig.engine.connectors[System.ERP]
    assert isinstance(erp, TrytonConnector)
    draft = _invoice(rig, "draft")
    await erp.cancel_invoice(int(draft["id"]))
    await erp.cancel_invoice(int(draft["id"]))
    assert draft["state"] == "cancelled"
    posted = _invoice(rig, "posted")
    with pytest.raises(RemoteValidationError, match="never cancelled in place"):
        await erp.cancel_invoice(int(posted["id"]))
    assert posted["state"] == "posted"


async def test_replace_draft_lines_twice_gives_the_same_invoice_and_posted_is_refused(rig: Rig) -> None:
    erp = rig.engine.connectors[System.ERP]
    assert isinstance(erp, TrytonConnector)
    draft = _invoice(rig, "draft")
    code = next(iter(rig.engine.data[System.ERP].plans.values())).key
    lines = [(code, Decimal(2), Decimal("12.50"), "two seats")]
    for _ in range(2):
        await erp.replace_draft_invoice_lines(int(draft["id"]), "USD", lines)
    inv = await erp.get_invoice(int(draft["id"]))
    assert inv.status is InvoiceStatus.DRAFT and inv.total.amount == Decimal("25.00") and inv.total.currency == "USD"
    assert len(rig.env.dataset.erp.lookup("account.invoice.line", "invoice", draft["id"])) == 1
    posted = _invoice(rig, "posted")
    with pytest.raises(RemoteValidationError, match="never edited in place"):
        await erp.replace_draft_invoice_lines(int(posted["id"]), "USD", lines)


async def test_write_subscription_terms_and_read_back(rig: Rig) -> None:
    erp = rig.engine.connectors[System.ERP]
    assert isinstance(erp, TrytonConnector)
    sub_id = int(next(iter(rig.engine.data[System.ERP].subscriptions)))
    before = await erp.get_subscription(sub_id)
    assert before.current_period_end is not None
    new_end = before.current_period_end.date().replace(day=1)
    after = await erp.write_subscription_terms(sub_id, quantity=before.quantity + 3, next_invoice_date=new_end)
    assert after.quantity == before.quantity + 3 and after.current_period_end is not None
    assert after.current_period_end.date() == new_end and after.plan_key == before.plan_key
    with pytest.raises(RemoteValidationError, match="no subscription service"):
        await erp.write_subscription_terms(sub_id, plan_key="no_such_plan")


async def test_zendesk_update_organization_sets_external_id(rig: Rig) -> None:
    zd = rig.engine.connectors[System.SUPPORT]
    assert isinstance(zd, ZendeskConnector)
    org = next(o for o in rig.env.dataset.support.organizations.values() if not o.get("external_id"))
    updated = await zd.update_organization(org["id"], {"external_id": "cus_linked_by_test"})
    assert updated.customer.customer_id == "cus_linked_by_test"
    assert rig.env.dataset.support.orgs_by_external_id["cus_linked_by_test"] == org["id"]
