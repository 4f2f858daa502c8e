"""Tryton's ``invoice_date_future`` warning held to a real trytond 8.2: the sandbox of
``tests/erp/conftest.py`` and the demo ERP serving the dataset it was seeded from receive the
same JSON-RPC calls and answer them alike. Both serve the ERP's today (``model.ir.date.today``,
the date SyncDesk's fixes are never dated after); posting a customer invoice dated after it
warns (``UserWarning`` named ``md5("account.invoice,<id>").invoice_date_future``, the message
naming the invoice) and leaves it a draft; dated the ERP's today, the same invoice posts."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import date, timedelta

import httpx
import pytest

from services.demo.dataset import generate
from services.demo.faults import FaultInjector
from services.demo.serving import ThreadedServers
from services.demo.tryton.app import create_app
from services.demo.tryton_sandbox import TrytonSandbox
from tests.demo.tryton_rig import RpcError, Tryton
from tests.erp.conftest import ANCHOR, CUSTOMERS, SEED
from tests.erp.test_real_taxes import Side, _create_invoice, _proposed

pytestmark = [pytest.mark.erp, pytest.mark.slow, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def sides(real_tryton: TrytonSandbox) -> Iterator[tuple[Side, Side]]:
    """The real sandbox and a demo ERP serving a fresh copy of the dataset it was seeded from
    (on the real clock, as the sandbox), each logged in."""
    ds = generate(CUSTOMERS, SEED, anchor=ANCHOR)
    app = create_app(ds.erp, FaultInjector("erp"))
    with ThreadedServers({"erp": app}) as servers, httpx.Client(timeout=120) as http:
        out = []
        for name, url, login, password in (
                ("real", real_tryton.url, real_tryton.login, real_tryton.password),
                ("demo", servers.url("erp"), ds.credentials.tryton_login, ds.credentials.tryton_password)):
            rpc = Tryton(url, http)
            uid = rpc.login(login, password)[0]
            out.append(Side(name, rpc, rpc("model.res.user.get_preferences", True, {}), int(uid)))
        yield out[0], out[1]


def erp_today(side: Side) -> date:
    today = side.rpc("model.ir.date.today", side.ctx)
    assert type(today) is date, (side.name, today)
    return today


def _untaxed_warning_free(side: Side, reference: str) -> int:
    """A draft customer invoice whose line carries the taxes its product proposes (no
    ``invoice_taxes`` warning), dated today."""
    party = side.first("party.party", [["code", "like", "cus_%"]])
    proposed = _proposed(side, party)
    return _create_invoice(side, reference, [(2, "49.00", proposed[0] if proposed else None)], party=party)


def test_both_serve_the_erps_today_alike(sides: tuple[Side, Side]) -> None:
    real, demo = (erp_today(side) for side in sides)
    assert real == demo, (real, demo)  # one clock, no company timezone on either: the same date


def test_a_future_dated_invoice_warns_alike_and_todays_date_posts(sides: tuple[Side, Side]) -> None:
    outcomes = []
    for side in sides:
        today = erp_today(side)
        iid = _untaxed_warning_free(side, "in_DATE_FUTURE")
        side("account.invoice", "write", [iid], {"invoice_date": today + timedelta(days=1)})
        with pytest.raises(RpcError) as err:
            side("account.invoice", "post", [iid])
        kind, (name, message, _description) = err.value.error
        [row] = side("account.invoice", "read", [iid], ["state", "rec_name"])
        side("account.invoice", "write", [iid], {"invoice_date": today})
        side("account.invoice", "post", [iid])
        [after] = side("account.invoice", "read", [iid], ["state", "invoice_date"])
        key = hashlib.md5(f"account.invoice,{iid}".encode()).hexdigest()
        outcomes.append((kind, name == f"{key}.invoice_date_future", message, row["state"],
                         after["state"], after["invoice_date"] == today))
    assert outcomes[0] == outcomes[1], outcomes
    assert outcomes[0] == ("UserWarning", True, 'The invoices "[in_DATE_FUTURE]" have an invoice date in the future.',
                           "draft", "posted", True), outcomes
