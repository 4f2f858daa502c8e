"""Taxes held to a real trytond 8.2: the sandbox of ``tests/erp/conftest.py`` (seeded with the
demo's taxes, currency rates and taxed invoices by ``services/demo/tryton_seed.py``) and the
demo ERP serving the same dataset answer the same JSON-RPC calls alike: the seeded invoices'
untaxed, tax and total amounts; an invoice with taxed lines (VAT, sales tax, the 0 % reverse
charge with its legal note, a half-cent line tax) created as SyncDesk's connector creates one
(``on_change`` of the header and of each line's product, ``create`` with the lines and their
taxes), its invoice taxes, the posting warning about taxes that are not the product's
defaults, the amounts after posting; a credit note with negative quantities; the Credit wizard
of a taxed invoice. Amounts are compared to the cent (``Decimal``)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest

from services.demo.dataset import generate
from services.demo.faults import FaultInjector
from services.demo.serving import ThreadedServers
from services.demo.tryton.app import create_app
from services.demo.tryton_sandbox import TrytonSandbox
from tests.demo.tryton_rig import RpcError, Tryton
from tests.erp.conftest import ANCHOR, CUSTOMERS, SEED

pytestmark = [pytest.mark.erp, pytest.mark.slow, pytest.mark.timeout(600)]

TODAY = datetime.now(UTC).date()
AMOUNTS = ("untaxed_amount", "tax_amount", "total_amount")
TAX_NAMES = ("DE VAT 19 %", "US-WA Sales Tax 6.5 %", "US-TX Sales Tax 6.25 %", "EU VAT reverse charge 0 %")


@dataclass
class Side:
    """One ERP (the real trytond or the demo), logged in, with its user's context."""

    name: str
    rpc: Tryton
    ctx: dict[str, Any]
    user: int

    def __call__(self, model: str, method: str, *params: Any) -> Any:
        return self.rpc(f"model.{model}.{method}", *params, self.ctx)

    def one(self, model: str, domain: list[Any]) -> int:
        ids = self(model, "search", domain, 0, None, None)
        assert len(ids) == 1, (self.name, model, domain, ids)
        return int(ids[0])

    def first(self, model: str, domain: list[Any]) -> int:
        [rid] = self(model, "search", domain, 0, 1, [["code", "ASC"]])
        return int(rid)


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


def test_seeded_taxes_and_invoice_amounts_are_the_same(sides: tuple[Side, Side]) -> None:
    real, demo = sides
    fields = ["name", "description", "type", "rate", "legal_notice", "group", "active"]
    taxes = []
    for side in (real, demo):
        groups = {g["id"]: g["code"] for g in side("account.tax.group", "search_read", [], 0, None, None, ["code"])}
        rows = side("account.tax", "search_read", [], 0, None, [["name", "ASC"]], fields)
        taxes.append([{**{k: v for k, v in row.items() if k != "id"}, "group": groups.get(row["group"])}
                      for row in rows])
    # the customer tax rules' lines have no group: trytond takes only taxes without group there
    assert taxes[0] and {t["group"] for t in taxes[0]} == {None}
    groups_by_side = [sorted(g["code"] for g in side("account.tax.group", "search_read", [], 0, None, None, ["code"]))
                      for side in (real, demo)]
    assert groups_by_side[0] == groups_by_side[1] == ["GST", "JCT", "SALES_TAX", "VAT"]
    assert taxes[0] == taxes[1] and len(taxes[0]) >= 15
    assert {t["name"] for t in taxes[0]} >= set(TAX_NAMES)
    [reverse] = [t for t in taxes[0] if t["name"] == "EU VAT reverse charge 0 %"]
    assert reverse["rate"] == 0 and reverse["legal_notice"].startswith("Reverse charge")
    invoices = [side("account.invoice", "search_read", [], 0, None, [["id", "ASC"]],
                     ["reference", "number", "state", *AMOUNTS]) for side in (real, demo)]
    strip = [[{k: v for k, v in row.items() if k != "id"} for row in rows] for rows in invoices]
    assert strip[0] == strip[1]
    assert sum(1 for row in strip[0] if row["tax_amount"]) > 100  # taxed, most of them
    currencies = [{row["code"]: (row["rate"], row["digits"], row["rounding"])
                   for row in side("currency.currency", "search_read", [], 0, None, None, ["code", "rate", "digits",
                                                                                            "rounding"])}
                  for side in (real, demo)]
    # each currency with its own digits: the yen has no minor unit, the Kuwaiti dinar three decimals
    assert currencies[0] == currencies[1] == {
        "USD": (Decimal("1"), 2, Decimal("0.01")), "EUR": (Decimal("0.92"), 2, Decimal("0.01")),
        "GBP": (Decimal("0.79"), 2, Decimal("0.01")), "JPY": (Decimal("149.5"), 0, Decimal("1")),
        "KWD": (Decimal("0.307"), 3, Decimal("0.001"))}
    # the yen invoices: the same on both sides, taxed at 10 % (Japanese consumption tax), in whole yen
    yen = [side("account.invoice", "search_read", [["currency", "=", side.one("currency.currency",
                                                                                [["code", "=", "JPY"]])]],
                0, None, [["id", "ASC"]], ["number", *AMOUNTS]) for side in (real, demo)]
    assert yen[0] and [{k: v for k, v in r.items() if k != "id"} for r in yen[0]] == \
        [{k: v for k, v in r.items() if k != "id"} for r in yen[1]]
    assert all(row[a] == row[a].to_integral_value() for row in yen[0] for a in AMOUNTS)
    assert any(row["tax_amount"] for row in yen[0])


def _changes(answer: Any) -> dict[str, Any]:
    """An on_change answer as the connector reads it: trytond answers the object of changes, the
    demo a list holding it (``TrytonConnector._on_change`` takes both)."""
    changes = answer[0] if isinstance(answer, list) and len(answer) == 1 else answer
    assert isinstance(changes, dict), answer
    return changes


def _ids(value: Any) -> list[int]:
    """A many2many's ids from an on_change answer as the connector reads them: the demo's
    ``[1, 2]`` or trytond's ``{"add": [[index, {"id": 1, ...}], ...]}``."""
    if isinstance(value, dict):
        return [int(item[1]["id"]) for item in value.get("add", [])]
    return [int(i) for i in value or []]


def _create_invoice(side: Side, reference: str, lines: list[tuple[float, str, str | None]],
                    party: int | None = None) -> int:
    """As the connector creates one: the header's and each product's on_change, then create
    (the lines' taxes: the named ones)."""
    party = party if party is not None else side.first("party.party", [["code", "like", "cus_%"]])
    currency = side.one("currency.currency", [["code", "=", "USD"]])
    product = side.one("product.product", [["code", "=", "pro_monthly_usd"]])
    header: dict[str, Any] = {"type": "out", "party": party, "company": side.ctx["company"], "currency": currency}
    changes = _changes(side("account.invoice", "on_change", dict(header), ["type", "party"]))
    for name in ("journal", "account", "payment_term", "invoice_address"):
        header[name] = changes[name]
    line_changes = _changes(side("account.invoice.line", "on_change", {
        "product": product, "type": "line", "invoice_type": "out", "party": party, "currency": currency,
        "company": side.ctx["company"], "quantity": 1.0}, ["product"]))
    created = []
    for quantity, price, tax in lines:
        taxes = [side.one("account.tax", [["name", "=", tax]])] if tax else []
        created.append({"type": "line", "product": product, "quantity": quantity, "unit_price": Decimal(price),
                        "description": f"Pro ({quantity:g} × {price})", "unit": line_changes["unit"],
                        "account": line_changes["account"], "company": side.ctx["company"], "currency": currency,
                        "taxes": [["add", taxes]]})
    [iid] = side("account.invoice", "create", [{**header, "reference": reference, "invoice_date": TODAY,
                                                "lines": [["create", created]]}])
    return int(iid)


def _proposed(side: Side, party: int) -> list[str]:
    """The names of the taxes ``on_change`` of a line's product proposes for ``party`` (as the
    connector asks: product, party, invoice type)."""
    product = side.one("product.product", [["code", "=", "pro_monthly_usd"]])
    currency = side.one("currency.currency", [["code", "=", "USD"]])
    changes = _changes(side("account.invoice.line", "on_change", {
        "product": product, "type": "line", "invoice_type": "out", "party": party, "currency": currency,
        "company": side.ctx["company"], "quantity": 1.0}, ["product"]))
    ids = _ids(changes.get("taxes"))
    return sorted(t["name"] for t in side("account.tax", "read", ids, ["name"])) if ids else []


def test_each_party_is_proposed_the_same_taxes(sides: tuple[Side, Side]) -> None:
    """The customer tax rules: ``on_change`` of a line's product proposes each party its tax."""
    proposals = []
    for side in sides:
        parties = side("party.party", "search_read", [["code", "like", "cus_%"]], 0, None, [["code", "ASC"]],
                       ["code"])
        proposals.append({p["code"]: _proposed(side, p["id"]) for p in parties})
    assert proposals[0] == proposals[1]
    taxed = [names for names in proposals[0].values() if names]
    assert len(taxed) > len(proposals[0]) // 2 and all(len(names) == 1 for names in taxed)
    assert len(taxed) < len(proposals[0])  # exempt customers, states without sales tax


def test_an_invoice_with_the_proposed_taxes_posts_without_warning_alike(sides: tuple[Side, Side]) -> None:
    results = []
    for side in sides:
        parties = side("party.party", "search", [["code", "like", "cus_%"]], 0, None, [["code", "ASC"]])
        party, [tax] = next((p, names) for p in parties if (names := _proposed(side, p)))
        iid = _create_invoice(side, "in_TAXES_OK", [(2, "49.00", tax), (1, "12.35", tax)], party=party)
        side("account.invoice", "post", [iid])  # no warning: the lines carry the party's taxes
        results.append((tax, _amounts(side, iid), _taxes_of(side, iid)))
    assert results[0] == results[1] and results[0][1]["state"] == "posted"


def _taxes_of(side: Side, iid: int) -> list[dict[str, Any]]:
    [row] = side("account.invoice", "read", [iid], ["taxes"])
    rows = side("account.invoice.tax", "read", row["taxes"], ["description", "base", "amount", "manual",
                                                              "legal_notice", "tax"])
    names = {t["id"]: t["name"] for t in side("account.tax", "read", sorted({r["tax"] for r in rows}), ["name"])}
    return sorted(({**{k: v for k, v in r.items() if k != "id"}, "tax": names[r["tax"]]} for r in rows),
                  key=lambda r: r["description"])


def _amounts(side: Side, iid: int) -> dict[str, Any]:
    [row] = side("account.invoice", "read", [iid], [*AMOUNTS, "state"])
    return {k: row[k] for k in (*AMOUNTS, "state")}


def _post_with_warning(side: Side, iid: int) -> str:
    """``post``: the taxes warning (the lines' taxes are not the product's defaults), acknowledged
    once, then the posting. The warning's message is returned."""
    with pytest.raises(RpcError) as err:
        side("account.invoice", "post", [iid])
    kind, (name, message, _description) = err.value.error
    assert kind == "UserWarning" and name.endswith(".invoice_taxes"), (side.name, err.value.error)
    side("res.user.warning", "create", [{"user": side.user, "name": name, "always": False}])
    side("account.invoice", "post", [iid])
    return str(message)


LINES: list[tuple[float, str, str | None]] = [
    (3, "49.00", "DE VAT 19 %"), (1, "12.35", "DE VAT 19 %"), (1, "29.00", "US-WA Sales Tax 6.5 %"),
    (2, "100.00", "US-TX Sales Tax 6.25 %"), (1, "80.00", "EU VAT reverse charge 0 %"), (1, "5.00", None)]


def test_an_invoice_with_taxed_lines_is_computed_and_posted_alike(sides: tuple[Side, Side]) -> None:
    results = []
    for side in sides:
        iid = _create_invoice(side, "in_TAXES_1", LINES)
        draft = (_amounts(side, iid), _taxes_of(side, iid))
        message = _post_with_warning(side, iid)
        results.append((draft, _amounts(side, iid), _taxes_of(side, iid), message.split(" does not have")[1]))
    (real_draft, real_posted, real_taxes, real_msg), (demo_draft, demo_posted, demo_taxes, demo_msg) = results
    assert demo_draft == real_draft
    assert demo_posted == real_posted and real_posted["state"] == "posted"
    assert demo_taxes == real_taxes
    # 159.35 * 0.19 -> 30.28 per line (27.93 + 2.35); 29.00 * 0.065 = 1.885 -> 1.88 (half even); 12.50; 0
    assert real_posted["tax_amount"] == Decimal("44.66") and real_posted["untaxed_amount"] == Decimal("473.35")
    assert real_posted["total_amount"] == Decimal("518.01")
    assert demo_msg == real_msg and real_msg.startswith(" the default taxes for ")


def test_a_credit_note_with_taxes_is_computed_and_posted_alike(sides: tuple[Side, Side]) -> None:
    results = []
    for side in sides:
        iid = _create_invoice(side, "in_TAXES_CN", [(-2, "49.00", "DE VAT 19 %"),
                                                    (-1, "10.00", "US-TX Sales Tax 6.25 %")])
        _post_with_warning(side, iid)
        [row] = side("account.invoice", "read", [iid], ["sequence_type_cache"])
        results.append((_amounts(side, iid), _taxes_of(side, iid), row["sequence_type_cache"]))
    assert results[0] == results[1]
    amounts, _taxes, kind = results[0]
    assert kind == "credit_note" and amounts["total_amount"] == Decimal("-127.24")


def test_the_credit_wizard_of_a_taxed_invoice_works_alike(sides: tuple[Side, Side]) -> None:
    results = []
    for side in sides:
        iid = _create_invoice(side, "in_TAXES_CR", [(3, "33.33", "DE VAT 19 %"), (1, "29.00", "US-WA Sales Tax 6.5 %")])
        _post_with_warning(side, iid)
        active = {**side.ctx, "active_model": "account.invoice", "active_id": iid, "active_ids": [iid]}
        outcomes = []
        for refund in (True, False):
            sid = side.rpc("wizard.account.invoice.credit.create", active)[0]
            try:
                answer = side.rpc("wizard.account.invoice.credit.execute", sid, {"start": {"with_refund": refund}},
                                  "credit", active)
                outcomes.append(answer["actions"][0][1]["res_id"])
            except RpcError as exc:  # with refund the credit note is posted: its taxed lines warn
                outcomes.append([exc.error[0], exc.error[1][0].rsplit(".", 1)[1]])
            finally:
                side.rpc("wizard.account.invoice.credit.delete", sid, active)
        assert outcomes[0] == ["UserWarning", "invoice_taxes"], (side.name, outcomes)
        [note] = outcomes[1]
        draft = (_amounts(side, note), _taxes_of(side, note))
        _post_with_warning(side, note)
        results.append((draft, _amounts(side, note), _amounts(side, iid)))
    assert results[0] == results[1]
    (_draft, note_amounts, original) = results[0]
    for key in AMOUNTS:
        assert note_amounts[key] == -original[key] and original[key] > 0
