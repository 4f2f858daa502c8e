"""The demo Tryton server's writes: creating and writing records, the invoice workflow (post,
cancel, draft, the payment-term warning, the Credit wizard) and on_change.

Behaviour under test is ``shared/specs/tryton/README.md`` (verified against trytond 8.2).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest

from tests.demo.tryton_rig import CTX, NOW, TODAY, Env, RpcError, Tryton, serve_env, user_error


@pytest.fixture
def env() -> Iterator[Env]:
    with serve_env() as served:
        yield served


# --------------------------------------------------------------------------------------
# Creating and writing
# --------------------------------------------------------------------------------------


def _new_invoice(rpc: Tryton, ids: dict[str, int], **values: Any) -> int:
    base: dict[str, Any] = {
        "type": "out", "party": ids["cus_C"], "reference": "in_C9", "currency": ids["usd"],
        "invoice_date": TODAY, "journal": 1, "account": 1, "payment_term": 1,
        "invoice_address": ids["addr_cus_C"],
        "lines": [["create", [{"product": ids["pro_monthly"], "quantity": 3, "unit_price": Decimal("49.00"),
                               "unit": 1, "account": 2, "description": "Pro", "taxes": None}]]]}
    base["lines"][0][1][0].pop("taxes")
    base.update(values)
    [iid] = rpc.model("account.invoice", "create", [base])
    return int(iid)


def test_create_invoice_with_lines_and_totals(env: Env) -> None:
    rpc, ids = env.rpc, env.ids
    iid = _new_invoice(rpc, ids, lines=[["create", [
        {"product": ids["pro_monthly"], "quantity": 3, "unit_price": Decimal("49.00")},
        {"product": ids["pro_yearly"], "quantity": 0.5, "unit_price": Decimal("490.00")}]]])
    [row] = rpc.model("account.invoice", "read", [iid], ["state", "number", "lines", "total_amount", "company",
                                                         "create_date", "create_uid", "write_date", "rec_name"])
    assert row["state"] == "draft" and row["number"] is None and row["company"] == 1
    assert row["total_amount"] == Decimal("392.00") and len(row["lines"]) == 2
    assert row["create_date"] == NOW and row["create_uid"] == ids["admin"] and row["write_date"] is None
    assert row["rec_name"] == "[in_C9]"
    assert env.store.tables["account.invoice"][iid]["lines"] == row["lines"]  # parent list kept
    assert rpc.model("account.invoice", "search", [["reference", "=", "in_C9"]]) == [iid]
    lines = rpc.model("account.invoice.line", "read", row["lines"], ["invoice", "amount"])
    assert [(r["invoice"], r["amount"]) for r in lines] == [(iid, Decimal("147.00")), (iid, Decimal("245.00"))]


def test_create_needs_company_in_context_and_required_fields(env: Env) -> None:
    rpc, ids = env.rpc, env.ids
    with pytest.raises(RpcError) as err:
        rpc.model("account.invoice", "create", [{"party": ids["cus_A"]}], ctx={})
    assert "Company" in user_error(err.value)
    with pytest.raises(RpcError) as err:
        rpc.model("account.invoice", "create", [{"reference": "x"}])
    assert "Party" in user_error(err.value)
    with pytest.raises(RpcError) as err:  # a line without unit price: the whole call is undone
        _new_invoice(rpc, ids, reference="in_bad", lines=[["create", [{"quantity": 1}]]])
    assert "Unit Price" in user_error(err.value)
    assert rpc.model("account.invoice", "search", [["reference", "=", "in_bad"]]) == []
    with pytest.raises(RpcError) as err:
        rpc.model("account.invoice", "create", [{"party": ids["cus_A"], "invoice_address": ids["addr_cus_A"],
                                                 "state": "bogus"}])
    assert "allowed options" in user_error(err.value)
    with pytest.raises(RpcError) as err:
        rpc.model("account.invoice", "create", [{"party": 777}])
    assert "777" in user_error(err.value)
    # parties do not need a company
    [pid] = rpc.model("party.party", "create", [{"name": "Delta", "code": "cus_D"}], ctx={})
    assert rpc.model("party.party", "read", [pid], ["active", "rec_name"]) == [
        {"id": pid, "active": True, "rec_name": "Delta"}]


def test_typed_values_round_trip_through_the_server(env: Env) -> None:
    rpc, ids = env.rpc, env.ids
    day = date(2025, 2, 28)
    iid = _new_invoice(rpc, ids, invoice_date=day, lines=[["create", [
        {"quantity": 1, "unit_price": Decimal("810.00"), "description": "x"}]]])
    [row] = rpc.model("account.invoice", "read", [iid], ["invoice_date", "total_amount", "create_date"])
    assert row["invoice_date"] == day and isinstance(row["invoice_date"], date)
    assert row["total_amount"] == Decimal("810.00") and str(row["total_amount"]) == "810.00"
    assert row["create_date"] == NOW
    raw = rpc.post("model.account.invoice.read", [[iid], ["total_amount", "invoice_date"], CTX])
    result = httpx.Response(200, content=raw.content).json()["result"][0]
    assert result["total_amount"] == {"__class__": "Decimal", "decimal": "810.00"}
    assert result["invoice_date"] == {"__class__": "date", "year": 2025, "month": 2, "day": 28}
    assert rpc.model("account.invoice", "search", [["invoice_date", "=", day]]) == [iid]
    assert rpc.model("account.invoice", "search", [["create_date", ">=", NOW]]) == [iid]


def test_write_sets_write_date_and_x2many_actions(env: Env) -> None:
    rpc, ids, store = env.rpc, env.ids, env.store
    iid = ids["inv_draft"]
    line_ids = rpc.model("account.invoice", "read", [iid], ["lines"])[0]["lines"]
    env.clock.advance(hours=1)
    rpc.model("account.invoice", "write", [iid], {
        "description": "updated",
        "lines": [["write", [line_ids[0]], {"quantity": 4}], ["delete", [line_ids[1]]],
                  ["create", [{"quantity": 1, "unit_price": Decimal("1.50"), "description": "fee"}]]]})
    [row] = rpc.model("account.invoice", "read", [iid], ["description", "write_date", "write_uid", "lines",
                                                         "total_amount"])
    assert row["description"] == "updated" and row["write_date"] == env.clock.now
    assert row["write_uid"] == ids["admin"] and row["total_amount"] == Decimal("197.50")
    assert len(row["lines"]) == 2 and line_ids[1] not in store.tables["account.invoice.line"]
    # remove/add move a line between invoices
    other = _new_invoice(rpc, ids, reference="in_C2")
    moved = row["lines"][1]
    rpc.model("account.invoice", "write", [iid], {"lines": [["remove", [moved]]]},
              [other], {"lines": [["add", [moved]]]})  # the varargs form
    assert moved in rpc.model("account.invoice", "read", [other], ["lines"])[0]["lines"]
    assert moved not in store.tables["account.invoice"][iid]["lines"]
    with pytest.raises(RpcError) as err:
        rpc.model("account.invoice", "write", [424242], {"description": "x"})
    assert "424242" in user_error(err.value)


def test_posted_invoice_cannot_be_modified_or_deleted(env: Env) -> None:
    rpc, ids = env.rpc, env.ids
    with pytest.raises(RpcError) as err:
        rpc.model("account.invoice", "write", [ids["inv_posted"]], {"invoice_date": "2024-01-01"})
    assert "posted" in user_error(err.value)
    # trytond's Invoice._check_modify_exclude: description and comment stay writable once posted
    rpc.model("account.invoice", "write", [ids["inv_posted"]], {"description": "x", "comment": "note"})
    assert env.store.tables["account.invoice"][ids["inv_posted"]]["comment"] == "note"
    with pytest.raises(RpcError) as err:
        rpc.model("account.invoice", "delete", [ids["inv_posted"]])
    assert "cancel" in user_error(err.value)
    rpc.model("account.invoice", "delete", [ids["inv_draft"]])
    assert ids["inv_draft"] not in env.store.tables["account.invoice"]
    assert not env.store.lookup("account.invoice.line", "invoice", ids["inv_draft"])
    with pytest.raises(RpcError) as err:  # still used by invoices
        rpc.model("party.party", "delete", [ids["cus_B"]])
    assert "used by" in user_error(err.value)


# --------------------------------------------------------------------------------------
# Invoice workflow
# --------------------------------------------------------------------------------------


def test_post_assigns_number_and_state(env: Env) -> None:
    rpc, ids = env.rpc, env.ids
    env.clock.advance(minutes=5)
    iid = _new_invoice(rpc, ids, invoice_date=None)
    assert rpc.model("account.invoice", "validate_invoice", [iid]) is None
    assert rpc.model("account.invoice", "read", [iid], ["state"])[0]["state"] == "validated"
    rpc.model("account.invoice", "post", [iid])
    [row] = rpc.model("account.invoice", "read", [iid], ["state", "number", "invoice_date", "write_date",
                                                         "amount_to_pay", "rec_name"])
    assert row["state"] == "posted" and row["number"] == "INV-000011"
    assert row["invoice_date"] == env.clock.now.date() and row["write_date"] == env.clock.now
    assert row["amount_to_pay"] == Decimal("147.00") and row["rec_name"] == "INV-000011 [in_C9]"
    rpc.model("account.invoice", "post", [iid])  # posting again changes nothing
    assert rpc.model("account.invoice", "read", [iid], ["number"])[0]["number"] == "INV-000011"
    second = _new_invoice(rpc, ids, reference="in_C10")
    rpc.model("account.invoice", "post", [second])
    assert rpc.model("account.invoice", "read", [second], ["number"])[0]["number"] == "INV-000012"
    # an invoice dated before the latest posted one cannot be posted
    early = _new_invoice(rpc, ids, reference="in_C11", invoice_date=TODAY - timedelta(days=1))
    with pytest.raises(RpcError) as err:
        rpc.model("account.invoice", "post", [early])
    assert "invoice date after" in user_error(err.value)
    assert rpc.model("account.invoice", "read", [early], ["state", "number"])[0] == {
        "id": early, "state": "draft", "number": None}


def test_post_without_journal_crashes_and_rolls_back(env: Env) -> None:
    rpc, ids = env.rpc, env.ids
    good = _new_invoice(rpc, ids, reference="in_ok")
    bad = _new_invoice(rpc, ids, reference="in_nojournal", journal=None)
    with pytest.raises(RpcError) as err:
        rpc.model("account.invoice", "post", [good, bad])
    assert len(err.value.error) == 2 and err.value.error[1] == ""
    assert err.value.error[0] not in ("UserError", "UserWarning")
    states = rpc.model("account.invoice", "read", [good, bad], ["state", "number"])
    assert [(r["state"], r["number"]) for r in states] == [("draft", None), ("draft", None)]
    rpc.model("account.invoice", "post", [good])
    assert rpc.model("account.invoice", "read", [good], ["number"])[0]["number"] == "INV-000011"


def test_cancel_and_draft_transitions(env: Env) -> None:
    rpc, ids = env.rpc, env.ids
    with pytest.raises(RpcError) as err:
        rpc.model("account.invoice", "cancel", [ids["inv_posted"]])
    assert "cancel" in user_error(err.value)
    iid = _new_invoice(rpc, ids)
    rpc.model("account.invoice", "validate_invoice", [iid])
    rpc.model("account.invoice", "draft", [iid])
    assert rpc.model("account.invoice", "read", [iid], ["state"])[0]["state"] == "draft"
    rpc.model("account.invoice", "cancel", [iid])
    assert rpc.model("account.invoice", "read", [iid], ["state"])[0]["state"] == "cancelled"
    rpc.model("account.invoice", "post", [iid])  # not from cancelled: ignored, as trytond's workflow
    assert rpc.model("account.invoice", "read", [iid], ["state"])[0]["state"] == "cancelled"
    rpc.model("account.invoice", "delete", [iid])


def test_user_warning_acknowledged_then_post_succeeds(env: Env) -> None:
    rpc, ids = env.rpc, env.ids
    iid = _new_invoice(rpc, ids, invoice_date=TODAY - timedelta(days=31), reference="in_late")
    env.store.tables["account.invoice"][ids["inv_posted"]]["invoice_date"] = TODAY - timedelta(days=40)
    with pytest.raises(RpcError) as err:
        rpc.model("account.invoice", "post", [iid])
    kind, (name, message, _desc) = err.value.error
    # as trytond's account_invoice (verified against a real 8.2 server): the payment term's warning
    assert kind == "UserWarning" and name.endswith(".invoice_payment_term")
    assert message.startswith('The invoice "[in_late]" generates a payment date') and "in the past" in message
    with pytest.raises(RpcError) as again:  # deterministic name
        rpc.model("account.invoice", "post", [iid])
    assert again.value.error[1][0] == name
    [wid] = rpc.model("res.user.warning", "create", [{"user": ids["admin"], "name": name, "always": False}])
    rpc.model("account.invoice", "post", [iid])
    assert rpc.model("account.invoice", "read", [iid], ["state"])[0]["state"] == "posted"
    assert wid not in env.store.tables["res.user.warning"]  # consumed


def _credit_wizard(rpc: Tryton, iid: int, start: dict[str, Any]) -> Any:
    """Tryton's "Credit" wizard on invoice ``iid``, as the client runs it: create, execute, delete."""
    active = {**CTX, "active_model": "account.invoice", "active_id": iid, "active_ids": [iid]}
    sid, first, last = rpc("wizard.account.invoice.credit.create", active)
    assert (first, last) == ("start", "end")
    try:
        return rpc("wizard.account.invoice.credit.execute", sid, {"start": start}, "credit", active)
    finally:
        assert rpc("wizard.account.invoice.credit.delete", sid, active) is None


def test_credit_wizard_with_refund(env: Env) -> None:
    """As trytond 8.2 (tests/erp): ``Invoice.credit`` is reached through the wizard only; with
    refund the credit note (lines negated, their origin = the credited lines, no reference) is
    posted in the invoice sequence and reconciled (paid), the invoice ends cancelled; a second
    credit, or one of a draft or paid invoice, is refused and leaves nothing behind."""
    rpc, ids = env.rpc, env.ids
    assert env.rpc.post("model.account.invoice.credit", [[ids["inv_posted"]], CTX]).status_code == 403
    active = {**CTX, "active_model": "account.invoice", "active_id": ids["inv_posted"],
              "active_ids": [ids["inv_posted"]]}
    sid, _, _ = rpc("wizard.account.invoice.credit.create", active)
    view = rpc("wizard.account.invoice.credit.execute", sid, {}, "start", active)["view"]
    assert view["defaults"] == {"with_refund": True, "with_refund_allowed": True} and view["state"] == "start"
    rpc("wizard.account.invoice.credit.delete", sid, active)
    with pytest.raises(RpcError) as err:  # the session is gone
        rpc("wizard.account.invoice.credit.execute", sid, {}, "start", active)
    assert 'of "Session Wizard" that don\'t exist' in user_error(err.value)
    before = len(env.store.tables["account.invoice"])
    answer = _credit_wizard(rpc, ids["inv_posted"], {"with_refund": True, "invoice_date": TODAY})
    [[action, data]] = answer["actions"]
    assert action["res_model"] == "account.invoice" and len(data["res_id"]) == 1
    [credit] = data["res_id"]
    assert len(env.store.tables["account.invoice"]) == before + 1
    fields = ["state", "number", "reference", "total_amount", "invoice_date", "sequence_type_cache",
              "origin_invoices", "party", "currency", "lines"]
    original, note = rpc.model("account.invoice", "read", [ids["inv_posted"], credit], fields)
    assert original["state"] == "cancelled" and original["number"] == "INV-000010"
    assert note["state"] == "paid" and note["number"] == "INV-000011" and note["reference"] is None
    assert note["total_amount"] == Decimal("-490.00") and note["invoice_date"] == TODAY
    assert note["sequence_type_cache"] == "credit_note" and note["origin_invoices"] == [ids["inv_posted"]]
    assert (note["party"], note["currency"]) == (original["party"], original["currency"])
    [line] = rpc.model("account.invoice.line", "read", note["lines"], ["quantity", "unit_price", "origin"])
    assert line["quantity"] == -1 and line["unit_price"] == Decimal("490.00")
    assert line["origin"] == f"account.invoice.line,{original['lines'][0]}"
    assert rpc.model("account.invoice", "search", [["origin_invoices", "=", ids["inv_posted"]]]) == [credit]
    # refused: a second credit (the invoice is cancelled now), a paid or a draft invoice; nothing is left
    for key, name in (("inv_posted", "INV-000010 [in_B1]"), ("inv_paid", "INV-000009 [in_A0]"),
                      ("inv_draft", "[in_A1]")):
        with pytest.raises(RpcError) as err:
            _credit_wizard(rpc, ids[key], {"with_refund": True})
        assert user_error(err.value) == f'You cannot refund invoice "{name}" because it is not posted.'
    assert len(env.store.tables["account.invoice"]) == before + 1
    assert env.store.tables["account.invoice"][ids["inv_paid"]]["state"] == "paid"
    with pytest.raises(RpcError) as err:  # no records to credit: trytond fails terse
        rpc("wizard.account.invoice.credit.execute", rpc("wizard.account.invoice.credit.create", CTX)[0],
            {"start": {"with_refund": True}}, "credit", CTX)
    assert err.value.error == ["'NoneType' object has no attribute 'credit'", ""]


def test_behaviour_of_a_real_trytond_on_sqlite(env: Env) -> None:
    """Differences a real trytond 8.2 (tests/erp) showed: booleans read as SQLite integers, a
    party without code takes the party sequence's next number, an invoice line's currency
    must be the invoice's, an invoice needs an address."""
    rpc, ids = env.rpc, env.ids
    [row] = rpc.model("party.party", "read", [ids["cus_A"]], ["active"])
    assert row["active"] == 1 and type(row["active"]) is int
    [row] = rpc.model("party.party", "search_read", [["id", "=", ids["inactive"]], ["active", "=", False]],
                      0, None, None, ["active"])
    assert row["active"] == 0 and type(row["active"]) is int
    first, second = rpc.model("party.party", "create", [{"name": "No Code One"}, {"name": "No Code Two"}])
    codes = {r["id"]: r["code"] for r in rpc.model("party.party", "read", [first, second], ["code"])}
    assert codes[first].isdigit() and int(codes[second]) == int(codes[first]) + 1
    with pytest.raises(RpcError) as err:  # a EUR invoice whose line defaults to the company's USD
        _new_invoice(rpc, ids, reference="in_eur", currency=ids["eur"])
    assert 'for field "Lines"' in user_error(err.value) and "not valid according to its domain" in user_error(
        err.value)
    assert rpc.model("account.invoice", "search", [["reference", "=", "in_eur"]]) == []
    line = {"product": ids["pro_monthly"], "quantity": 1, "unit_price": Decimal("45.00"), "unit": 1, "account": 2,
            "currency": ids["eur"], "company": ids["company"]}
    iid = _new_invoice(rpc, ids, reference="in_eur", currency=ids["eur"], lines=[["create", [line]]])
    assert rpc.model("account.invoice", "read", [iid], ["total_amount"])[0]["total_amount"] == Decimal("45.00")
    with pytest.raises(RpcError) as err:  # an invoice needs an address (a party created without one has none)
        _new_invoice(rpc, ids, reference="in_noaddr", invoice_address=None)
    assert 'A value is required for field "Invoice Address"' in user_error(err.value)


def test_on_change(env: Env) -> None:
    rpc, ids = env.rpc, env.ids
    [changes] = rpc.model("account.invoice", "on_change", {"type": "out", "party": ids["cus_A"]}, ["type", "party"])
    assert changes["invoice_address"] == ids["addr_cus_A"]
    assert (changes["account"], changes["journal"], changes["payment_term"]) == (1, 1, 1)
    [line] = rpc.model("account.invoice.line", "on_change", {"product": ids["pro_monthly"]}, ["product"])
    assert (line["unit"], line["account"], line["taxes"]) == (1, 2, [])
    before = env.store.tables["account.invoice"][ids["inv_draft"]].copy()
    rpc.model("account.invoice", "on_change", {"id": ids["inv_draft"], "party": ids["cus_B"]}, ["party"])
    assert env.store.tables["account.invoice"][ids["inv_draft"]] == before
