"""Tryton's ``invoice_taxes`` warning held to a real trytond 8.2: the sandbox of
``tests/erp/conftest.py`` and the demo ERP serving the dataset it was seeded from receive the
same JSON-RPC calls and answer them alike. Posting an invoice whose lines carry another tax than
their product proposes for the party warns (``UserWarning``, named
``md5("account.invoice,<id>").invoice_taxes``) until the warning is acknowledged
(``res.user.warning`` create), which the posting consumes; the proposed taxes post without it.
The Credit wizard with refund posts the credit note it creates in the same call: the warning
names that credit note by its rank in the call (``account.invoice,-1``, ``-2``, ...), the very
same name on both servers and on every attempt, so an acknowledgement lets the next attempt
through (a failed attempt consumes none); without refund nothing warns. SyncDesk's connector,
which acknowledges that warning once and runs the wizard again, credits such an invoice on both.
The demo's own checks: ``tests/demo/test_tryton_warnings.py``."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from services.core.domain import System
from services.demo.dataset import DemoDataset, generate
from services.demo.faults import FaultInjector
from services.demo.serving import ThreadedServers
from services.demo.tryton.app import create_app
from services.demo.tryton_sandbox import TrytonSandbox
from services.io.config import Secret, SystemConnection
from services.io.connectors.tryton import TrytonConnector
from tests.demo.tryton_rig import RpcError, Tryton
from tests.erp.conftest import ANCHOR, CUSTOMERS, SEED
from tests.erp.test_real_taxes import Side, _create_invoice, _proposed
from tests.erp.test_real_tryton import POLICY

pytestmark = [pytest.mark.erp, pytest.mark.slow, pytest.mark.timeout(600)]

TAX = "DE VAT 19 %"


def warning_name(name: str, *records: str) -> str:
    """trytond's ``res.user.warning.format(name, records)`` for records written ``model,id``."""
    return f"{hashlib.md5('|'.join(records).encode()).hexdigest()}.{name}"


@pytest.fixture(scope="module")
def dataset() -> DemoDataset:
    """A fresh copy of the dataset the real sandbox was seeded from (the demo side serves it)."""
    return generate(CUSTOMERS, SEED, anchor=ANCHOR)


@pytest.fixture(scope="module")
def sides(real_tryton: TrytonSandbox, dataset: DemoDataset) -> Iterator[tuple[Side, Side]]:
    """The real sandbox and a demo ERP serving the same dataset, each logged in."""
    app = create_app(dataset.erp, FaultInjector("erp"))
    with ThreadedServers({"erp": app}) as servers, httpx.Client(timeout=120) as http:
        out = []
        for name, url, login, password in (
                ("real", real_tryton.url, real_tryton.login, real_tryton.password),
                ("demo", servers.url("erp"), dataset.credentials.tryton_login, dataset.credentials.tryton_password)):
            rpc = Tryton(url, http)
            uid = rpc.login(login, password)[0]
            out.append(Side(name, rpc, rpc("model.res.user.get_preferences", True, {}), int(uid)))
        yield out[0], out[1]


def _warned(side: Side, call: Callable[..., Any], *args: Any) -> str:
    """The name of the UserWarning ``call(*args)`` raises on ``side`` (it must raise one)."""
    with pytest.raises(RpcError) as err:
        call(*args)
    kind, (name, _message, _description) = err.value.error
    assert kind == "UserWarning", (side.name, err.value.error)
    return str(name)


def _acknowledge(side: Side, name: str) -> None:
    side("res.user.warning", "create", [{"user": side.user, "name": name, "always": False}])


def _acknowledged(side: Side, name: str) -> bool:
    """Whether ``side`` still holds an acknowledgement of ``name`` for its user."""
    return bool(side("res.user.warning", "search", [["user", "=", side.user], ["name", "=", name]], 0, None, None))


def _party(side: Side) -> int:
    """The first customer (by code) whose lines are not proposed ``TAX``: a line with it warns."""
    parties = side("party.party", "search", [["code", "like", "cus_%"]], 0, None, [["code", "ASC"]])
    return int(next(p for p in parties if _proposed(side, p) != [TAX]))


def _taxed(side: Side, reference: str) -> int:
    return _create_invoice(side, reference, [(3, "33.33", TAX), (1, "12.35", TAX)], party=_party(side))


def _post_acknowledged(side: Side, iid: int) -> None:
    name = _warned(side, side, "account.invoice", "post", [iid])
    assert name == warning_name("invoice_taxes", f"account.invoice,{iid}"), side.name
    _acknowledge(side, name)
    side("account.invoice", "post", [iid])


def _credit(side: Side, ids: list[int], refund: bool) -> list[int]:
    """The Credit wizard on ``ids`` (create, execute "credit", delete): the credit notes' ids."""
    active = {**side.ctx, "active_model": "account.invoice", "active_id": ids[0], "active_ids": ids}
    session = side.rpc("wizard.account.invoice.credit.create", active)[0]
    try:
        answer = side.rpc("wizard.account.invoice.credit.execute", session, {"start": {"with_refund": refund}},
                          "credit", active)
    finally:
        side.rpc("wizard.account.invoice.credit.delete", session, active)
    return [int(i) for i in answer["actions"][0][1]["res_id"]]


def _states(side: Side, ids: list[int]) -> list[str]:
    return [str(r["state"]) for r in side("account.invoice", "read", ids, ["state"])]


def _count(side: Side) -> int:
    return int(side("account.invoice", "search_count", []))


def test_posting_other_taxes_than_proposed_warns_alike_until_acknowledged(sides: tuple[Side, Side]) -> None:
    outcomes = []
    for side in sides:
        iid = _taxed(side, "in_WARN_POST")
        name = _warned(side, side, "account.invoice", "post", [iid])
        assert name == warning_name("invoice_taxes", f"account.invoice,{iid}"), side.name
        again = _warned(side, side, "account.invoice", "post", [iid])
        draft = _states(side, [iid])
        _acknowledge(side, name)
        side("account.invoice", "post", [iid])
        outcomes.append((again == name, draft, _states(side, [iid]), _acknowledged(side, name)))
    assert outcomes[0] == outcomes[1] == (True, ["draft"], ["posted"], False), outcomes


def test_the_proposed_taxes_post_without_warning_alike(sides: tuple[Side, Side]) -> None:
    outcomes = []
    for side in sides:
        party = _party(side)
        proposed = _proposed(side, party)
        iid = _create_invoice(side, "in_WARN_NONE", [(2, "49.00", proposed[0] if proposed else None)], party=party)
        side("account.invoice", "post", [iid])  # no warning: the lines carry what the product proposes
        outcomes.append(_states(side, [iid]))
    assert outcomes[0] == outcomes[1] == ["posted"]


def test_crediting_with_refund_warns_alike_under_one_name_then_credits(sides: tuple[Side, Side]) -> None:
    outcomes = []
    for side in sides:
        iid = _taxed(side, "in_WARN_CREDIT")
        _post_acknowledged(side, iid)
        before = _count(side)
        name = _warned(side, _credit, side, [iid], True)
        unchanged = (_count(side) == before, _states(side, [iid]))
        again = _warned(side, _credit, side, [iid], True)
        _acknowledge(side, name)
        [note] = _credit(side, [iid], refund=True)
        outcomes.append((name, again, unchanged, _states(side, [iid, note]), _acknowledged(side, name)))
    # the credit note is created in the call that posts it: both servers name it by its rank there
    expected = warning_name("invoice_taxes", "account.invoice,-1")
    (name, again, unchanged, states, left), demo = outcomes
    assert name == again == expected and unchanged == (True, ["posted"]) and states[0] == "cancelled" and not left
    assert demo == outcomes[0], outcomes


def test_crediting_two_invoices_warns_alike_for_each_credit_note_by_rank(sides: tuple[Side, Side]) -> None:
    outcomes = []
    for side in sides:
        ids = [_taxed(side, "in_WARN_TWO_1"), _taxed(side, "in_WARN_TWO_2")]
        for iid in ids:
            _post_acknowledged(side, iid)
        first = _warned(side, _credit, side, ids, True)
        _acknowledge(side, first)
        second = _warned(side, _credit, side, ids, True)
        kept = _acknowledged(side, first)  # the failed attempt rolled its consumption back
        _acknowledge(side, second)
        notes = _credit(side, ids, refund=True)
        outcomes.append((first, second, kept, _states(side, ids), len(notes), _acknowledged(side, first)
                         or _acknowledged(side, second)))
    assert outcomes[0] == outcomes[1] == (
        warning_name("invoice_taxes", "account.invoice,-1"), warning_name("invoice_taxes", "account.invoice,-2"),
        True, ["cancelled", "cancelled"], 2, False), outcomes


def test_crediting_without_refund_does_not_warn_alike(sides: tuple[Side, Side]) -> None:
    outcomes = []
    for side in sides:
        iid = _taxed(side, "in_WARN_DRAFT")
        _post_acknowledged(side, iid)
        [note] = _credit(side, [iid], refund=False)
        outcomes.append(_states(side, [iid, note]))
    assert outcomes[0] == outcomes[1] == ["posted", "draft"]


def test_the_connector_credits_a_taxed_invoice_on_both(sides: tuple[Side, Side], real_tryton: TrytonSandbox,
                                                       dataset: DemoDataset) -> None:
    """SyncDesk's connector meets the warning on both servers, acknowledges it once and runs the
    wizard again: the credit takes effect on both alike."""
    demo_url = sides[1].rpc.base
    logins = {"real": (real_tryton.url, real_tryton.database, real_tryton.login, real_tryton.password),
              "demo": (demo_url, dataset.erp.database, dataset.credentials.tryton_login,
                       dataset.credentials.tryton_password)}
    outcomes = []
    for side in sides:
        iid = _taxed(side, "in_WARN_CONNECTOR")
        _post_acknowledged(side, iid)
        url, database, login, password = logins[side.name]

        async def credit(url: str = url, database: str = database, login: str = login, password: str = password,
                         iid: int = iid) -> int | None:
            conn = TrytonConnector.create(SystemConnection(System.ERP, "tryton", url, {"database": database,
                                                                                       "login": login},
                                                           {"password": Secret(password)}), policy=POLICY)
            try:
                return await conn.credit_invoice(iid)
            finally:
                await conn.aclose()

        note = asyncio.run(credit())
        assert note is not None, side.name
        outcomes.append(_states(side, [iid, note]))
    assert outcomes[0] == outcomes[1] and outcomes[0][0] == "cancelled", outcomes

