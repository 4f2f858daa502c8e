"""The demo's ERP credit notes (the integration's booking of billing's credit notes and full
refunds, ``services/demo/generator/erp_credits.py``) held to a real trytond 8.2: the sandbox of
``tests/erp/conftest.py`` (seeded by ``services/demo/tryton_seed.py``) and the demo ERP serving
the same dataset list the same credit notes — number in the one invoice sequence, state,
untaxed, tax and total amounts to the cent, Tryton's ``sequence_type_cache`` — each line
crediting (``origin``) a line of the same invoice on both sides."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from services.demo.dataset import generate
from services.demo.faults import FaultInjector
from services.demo.serving import ThreadedServers
from services.demo.tryton.app import create_app
from services.demo.tryton_sandbox import TrytonSandbox
from tests.demo.tryton_rig import Tryton
from tests.erp.conftest import ANCHOR, CUSTOMERS, SEED
from tests.erp.test_real_taxes import AMOUNTS, Side

pytestmark = [pytest.mark.erp, pytest.mark.slow, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def sides(real_tryton: TrytonSandbox) -> Iterator[tuple[Side, Side]]:
    """The real sandbox and a demo ERP serving a fresh copy of the dataset it was seeded from."""
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


def _credit_notes(side: Side) -> list[dict[str, Any]]:
    """Every credit note of ``side`` in number order: its number, state, amounts and, per line,
    the number and reference of the invoice its ``origin`` line belongs to."""
    rows = side("account.invoice", "search_read", [["sequence_type_cache", "=", "credit_note"]], 0, None,
                [["number", "ASC"]], ["number", "state", "reference", "lines", *AMOUNTS])
    out = []
    for row in rows:
        lines = side("account.invoice.line", "read", row["lines"], ["origin", "quantity"])
        credited = []
        for line in lines:
            model, _, lid = str(line["origin"]).partition(",")
            assert model == "account.invoice.line" and float(line["quantity"]) < 0, (side.name, line)
            [origin] = side("account.invoice.line", "read", [int(lid)], ["invoice"])
            [inv] = side("account.invoice", "read", [origin["invoice"]], ["number", "reference"])
            credited.append((inv["number"], inv["reference"]))
        out.append({**{k: v for k, v in row.items() if k not in ("id", "lines")}, "credits": credited})
    return out


def test_the_seeded_credit_notes_are_the_demo_s_crediting_the_same_invoices(sides: tuple[Side, Side]) -> None:
    real = sides[0]
    notes = [_credit_notes(side) for side in sides]
    assert notes[0] == notes[1]
    assert len(notes[0]) >= 3  # the dataset books several (credit notes and full refunds)
    for note in notes[0]:
        assert note["state"] == "posted" and note["reference"] is None  # Tryton's credit copies none
        assert note["total_amount"] < 0 and note["untaxed_amount"] < 0
        assert note["credits"] and all(ref and ref.startswith("in_") for _, ref in note["credits"])
        assert len({number for number, _ in note["credits"]}) == 1  # one credited invoice each
    assert any(note["tax_amount"] for note in notes[0])  # taxed ones among them
    # numbered in the one invoice sequence, among the invoices
    numbers = [row["number"] for row in real("account.invoice", "search_read", [["number", "!=", None]], 0, None,
                                             [["number", "ASC"]], ["number"])]
    assert {n["number"] for n in notes[0]} < set(numbers)
