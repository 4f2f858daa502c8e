"""The demo ERP's ``invoice_taxes`` warning as trytond 8.2 raises it (``Invoice._check_taxes``,
``res.user.warning.format`` / ``check``): posting an invoice whose lines do not carry the taxes
their product proposes warns, named ``md5("account.invoice,<id>").invoice_taxes``; the Credit
wizard with refund posts the credit note it creates in the same call, so the warning names that
credit note by its rank in the call (``account.invoice,-1``): the same name on every attempt, so
that an acknowledgement (``res.user.warning`` create, consumed when the call commits) lets the
next attempt through — and SyncDesk's connector, which acknowledges it once and runs the wizard
again, credits such an invoice. Lines with the proposed taxes, lines without product and the
Credit wizard without refund do not warn. The same calls against a real trytond:
``tests/erp/test_real_warnings.py``."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from services.core.domain import System
from services.io.config import Secret, SystemConnection
from services.io.connectors.tryton import TrytonConnector
from services.io.http import HttpPolicy
from tests.demo.tryton_rig import CTX, DB, TODAY, Env, RpcError, Tryton, serve_env

TAX_ACCOUNT, CREDIT_ACCOUNT = 3, 4
POLICY = HttpPolicy(max_retries=0, backoff_base=0.01, backoff_max=0.05, connect_timeout=5.0, read_timeout=30.0,
                    concurrency=1)


@pytest.fixture
def env() -> Iterator[Env]:
    with serve_env() as served:
        yield served


def warning_name(name: str, *records: str) -> str:
    """trytond's ``res.user.warning.format(name, records)`` for records written ``model,id``."""
    return f"{hashlib.md5('|'.join(records).encode()).hexdigest()}.{name}"


def _vat(rpc: Tryton) -> int:
    """A 19 % VAT: no product of the demo company proposes it (no default taxes, no tax rule)."""
    [group] = rpc.model("account.tax.group", "create", [{"name": "VAT", "code": "VAT", "kind": "sale"}])
    [tax] = rpc.model("account.tax", "create", [{
        "name": "DE VAT 19 %", "description": "VAT 19 %", "rate": Decimal("0.19"), "group": group,
        "type": "percentage", "invoice_account": TAX_ACCOUNT, "credit_note_account": CREDIT_ACCOUNT}])
    return int(tax)


def _invoice(env: Env, reference: str, *taxes: int, product: bool = True) -> int:
    ids = env.ids
    line: dict[str, Any] = {"quantity": 3, "unit_price": Decimal("33.33"), "unit": 1, "account": 2,
                            "description": "Pro", "taxes": [["add", list(taxes)]]}
    if product:
        line["product"] = ids["pro_monthly"]
    [iid] = env.rpc.model("account.invoice", "create", [{
        "type": "out", "party": ids["cus_B"], "reference": reference, "currency": ids["usd"],
        "invoice_date": TODAY, "journal": 1, "account": 1, "payment_term": 1,
        "invoice_address": ids["addr_cus_B"], "lines": [["create", [line]]]}])
    return int(iid)


def _warned(call: Any) -> str:
    """The name of the UserWarning ``call()`` raises (it must raise one)."""
    with pytest.raises(RpcError) as err:
        call()
    kind, (name, _message, _description) = err.value.error
    assert kind == "UserWarning", err.value.error
    return str(name)


def _acknowledge(env: Env, name: str) -> int:
    [wid] = env.rpc.model("res.user.warning", "create", [{"user": env.ids["admin"], "name": name, "always": False}])
    return int(wid)


def _post_acknowledged(env: Env, iid: int) -> None:
    name = _warned(lambda: env.rpc.model("account.invoice", "post", [iid]))
    assert name == warning_name("invoice_taxes", f"account.invoice,{iid}")
    _acknowledge(env, name)
    env.rpc.model("account.invoice", "post", [iid])


def _credit(env: Env, ids: list[int], refund: bool) -> list[int]:
    """The Credit wizard on ``ids`` (create, execute "credit", delete): the credit notes' ids."""
    active = {**CTX, "active_model": "account.invoice", "active_id": ids[0], "active_ids": ids}
    session = env.rpc("wizard.account.invoice.credit.create", active)[0]
    try:
        answer = env.rpc("wizard.account.invoice.credit.execute", session, {"start": {"with_refund": refund}},
                         "credit", active)
    finally:
        env.rpc("wizard.account.invoice.credit.delete", session, active)
    return [int(i) for i in answer["actions"][0][1]["res_id"]]


def _states(env: Env, ids: list[int]) -> list[str]:
    return [str(r["state"]) for r in env.rpc.model("account.invoice", "read", ids, ["state"])]


def test_posting_lines_with_other_taxes_than_proposed_warns_until_acknowledged(env: Env) -> None:
    vat = _vat(env.rpc)
    iid = _invoice(env, "in_W1", vat)
    name = _warned(lambda: env.rpc.model("account.invoice", "post", [iid]))
    assert name == warning_name("invoice_taxes", f"account.invoice,{iid}")
    assert _warned(lambda: env.rpc.model("account.invoice", "post", [iid])) == name  # nothing committed
    assert _states(env, [iid]) == ["draft"]
    wid = _acknowledge(env, name)
    env.rpc.model("account.invoice", "post", [iid])
    assert _states(env, [iid]) == ["posted"]
    assert wid not in env.store.tables["res.user.warning"]  # consumed by the posting


def test_validating_lines_with_other_taxes_warns_alike(env: Env) -> None:
    iid = _invoice(env, "in_W2", _vat(env.rpc))
    name = _warned(lambda: env.rpc.model("account.invoice", "validate_invoice", [iid]))
    assert name == warning_name("invoice_taxes", f"account.invoice,{iid}")


def test_proposed_taxes_and_lines_without_product_post_without_warning(env: Env) -> None:
    vat = _vat(env.rpc)
    plain = _invoice(env, "in_W3")  # the product proposes no tax: the line carries none
    no_product = _invoice(env, "in_W4", vat, product=False)  # trytond's on_change_product changes nothing
    env.rpc.model("account.invoice", "post", [plain])
    env.rpc.model("account.invoice", "post", [no_product])
    assert _states(env, [plain, no_product]) == ["posted", "posted"]


def test_an_acknowledgement_of_another_user_or_invoice_does_not_count(env: Env) -> None:
    iid = _invoice(env, "in_W5", _vat(env.rpc))
    name = warning_name("invoice_taxes", f"account.invoice,{iid}")
    env.rpc.model("res.user.warning", "create", [{"user": env.ids["clerk"], "name": name, "always": False}])
    _acknowledge(env, warning_name("invoice_taxes", f"account.invoice,{iid + 1}"))
    assert _warned(lambda: env.rpc.model("account.invoice", "post", [iid])) == name


def test_crediting_with_refund_warns_with_the_same_name_each_attempt_then_credits(env: Env) -> None:
    iid = _invoice(env, "in_W6", _vat(env.rpc))
    _post_acknowledged(env, iid)
    before = sorted(env.store.tables["account.invoice"])
    first = _warned(lambda: _credit(env, [iid], refund=True))
    # the credit note is created in the call that posts it: trytond names it by its rank there
    assert first == warning_name("invoice_taxes", "account.invoice,-1")
    assert sorted(env.store.tables["account.invoice"]) == before and _states(env, [iid]) == ["posted"]
    assert _warned(lambda: _credit(env, [iid], refund=True)) == first  # stable: acknowledgeable
    wid = _acknowledge(env, first)
    [note] = _credit(env, [iid], refund=True)
    assert _states(env, [iid, note]) == ["cancelled", "paid"]
    assert wid not in env.store.tables["res.user.warning"]


def test_crediting_two_invoices_names_each_credit_note_by_its_rank(env: Env) -> None:
    """The first credit note warns as ``-1``; once acknowledged, the second as ``-2`` — and the
    acknowledgement of ``-1`` is not consumed by that failed call (it rolls back)."""
    vat = _vat(env.rpc)
    ids = [_invoice(env, "in_W7", vat), _invoice(env, "in_W8", vat)]
    for iid in ids:
        _post_acknowledged(env, iid)
    assert _warned(lambda: _credit(env, ids, refund=True)) == warning_name("invoice_taxes", "account.invoice,-1")
    one = _acknowledge(env, warning_name("invoice_taxes", "account.invoice,-1"))
    assert _warned(lambda: _credit(env, ids, refund=True)) == warning_name("invoice_taxes", "account.invoice,-2")
    assert one in env.store.tables["res.user.warning"]
    two = _acknowledge(env, warning_name("invoice_taxes", "account.invoice,-2"))
    notes = _credit(env, ids, refund=True)
    assert len(notes) == 2 and _states(env, [*ids, *notes]) == ["cancelled", "cancelled", "paid", "paid"]
    assert one not in env.store.tables["res.user.warning"] and two not in env.store.tables["res.user.warning"]


def test_crediting_without_refund_does_not_warn(env: Env) -> None:
    iid = _invoice(env, "in_W9", _vat(env.rpc))
    _post_acknowledged(env, iid)
    [note] = _credit(env, [iid], refund=False)
    assert _states(env, [iid, note]) == ["posted", "draft"]


def test_the_connector_credits_a_taxed_invoice_of_the_demo(env: Env) -> None:
    """SyncDesk's connector acknowledges the credit note's taxes warning once and runs the
    wizard again: on the demo, as on the real trytond, the credit then takes effect."""
    iid = _invoice(env, "in_W10", _vat(env.rpc))
    _post_acknowledged(env, iid)

    async def credit() -> int | None:
        connection = SystemConnection(System.ERP, "tryton", env.url, {"database": DB, "login": "admin"},
                                      {"password": Secret("pw")})
        conn = TrytonConnector.create(connection, policy=POLICY)
        try:
            return await conn.credit_invoice(iid)
        finally:
            await conn.aclose()

    note = asyncio.run(credit())
    assert note is not None and _states(env, [iid, note]) == ["cancelled", "paid"]
    assert not env.store.tables["res.user.warning"]  # the acknowledgement was consumed
