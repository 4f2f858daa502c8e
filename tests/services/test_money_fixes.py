"""The fixes of ``invoice.tax_mismatch`` and ``invoice.currency_mismatch`` (G1 item 5: every new
rule has its fix), on the demo servers over loopback.

A *posted* (or paid) ERP copy whose tax per rate, or whose currency, differs from billing's is
credited and reposted (``CREDIT_REPOST``): the preview lists each billing line with the ERP tax
its rate maps to and billing's totals; the credit note is in the ERP copy's currency (Tryton's
credit copies the invoice), the corrected copy in billing's, equal to billing's untaxed amount,
tax and total to the cent; verification closes the exception, and a refresh shows no other
invoice exception on it (a paid original leaves only ``invoice.payment_state``: the customer's
payment is applied to the copy in the ERP). A *draft* ERP copy is corrected in place
(``CORRECT``): its currency, lines and taxes rewritten from billing's, its totals checked to the
minor unit before the correction is kept — a draft tax mismatch is built here through the demo
ERP's RPC (the demo plants tax mismatches on posted copies only). A correction whose totals
would differ puts the draft back as it was and is refused. Each refusal names its reason and
writes nothing; a replay writes nothing twice."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from services.actions.model import RULE_ACTIONS, ActionKind, ActionRequest, ActionStatus
from services.actions.steps import CreditRepost, ExpectedTotals, ReplaceLines
from services.core.currency import format_money, from_minor
from services.core.domain import SyncException, System
from services.core.errors import RemoteValidationError
from services.demo.environment import DemoEnvironment
from services.demo.store import BInvoice
from services.engine import RefreshMode
from services.io.connectors.tryton import TrytonConnector
from tests.services.actions_rig import Rig, make_rig

TAX = "invoice.tax_mismatch"
CURRENCY = "invoice.currency_mismatch"
ERP_TABLES = ("account.invoice", "account.invoice.line", "account.invoice.tax")
#: the invoice rules a fixed invoice must leave behind none of
INVOICE_RULES = {"invoice.amount_mismatch", "invoice.tax_mismatch", "invoice.currency_mismatch",
                 "invoice.duplicate_in_erp", "invoice.missing_in_erp", "subscription.proration_mismatch"}


def _single_taxed(env: DemoEnvironment, inv: BInvoice) -> bool:
    """A billing invoice taxed at one positive rate on every line, without discount, whose
    customer is billed at that one rate only (its ERP party proposes that tax)."""
    billing = env.dataset.billing
    rates = {ln.tax_rate for ln in inv.lines}
    customer_rates = {ln.tax_rate for iid in billing.invoices_by_customer.get(inv.customer, ())
                      for ln in billing.invoices[iid].lines}
    return (len(rates) == 1 and None not in rates and customer_rates == rates and not inv.discount_total
            and all(ln.tax_amount > 0 for ln in inv.lines))


def delete_one_taxed_copy(env: DemoEnvironment) -> str:
    """Delete the posted ERP copy (lines and invoice taxes too) of one agreeing, taxed billing
    invoice before the servers start: the test books it again through the ERP's RPC as a draft
    with a wrong tax. Answers the billing invoice id."""
    erp, billing = env.dataset.erp, env.dataset.billing
    for rid, rec in sorted(erp.tables["account.invoice"].items()):
        ref = rec.get("reference") or ""
        binv = billing.invoices.get(ref)
        if (rec.get("state") != "posted" or binv is None or binv.status not in ("open", "paid") or binv.total <= 0
                or len(erp.lookup("account.invoice", "reference", ref)) != 1 or not _single_taxed(env, binv)
                or any(str(erp.tables["account.invoice.tax"][t]["description"]).endswith("(rounding as billed)")
                       for t in erp.lookup("account.invoice.tax", "invoice", rid))):
            continue
        for line in list(erp.lookup("account.invoice.line", "invoice", rid)):
            erp.delete("account.invoice.line", line)
        for tax in list(erp.lookup("account.invoice.tax", "invoice", rid)):
            erp.delete("account.invoice.tax", tax)
        erp.delete("account.invoice", rid)
        return ref
    raise AssertionError("no agreeing taxed invoice in the demo")


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    r = await make_rig(tmp_path)
    yield r
    await r.close()


@pytest.fixture
async def draft_rig(tmp_path: Path) -> AsyncIterator[Rig]:
    """A rig whose ERP holds a *draft* copy of a taxed billing invoice booking part of its tax as
    revenue (a line's price raised, a manual invoice tax lowering the tax as much: the same total),
    written through the demo ERP's RPC: an ``invoice.tax_mismatch`` on a draft."""
    victim: list[str] = []
    r = await make_rig(tmp_path, before_start=lambda env: victim.append(delete_one_taxed_copy(env)))
    try:
        [iid] = victim
        binv = r.env.dataset.billing.invoices[iid]
        conn = erp(r)
        plan_exc = await r.one("invoice.missing_in_erp", lambda e: e.object_id == iid)
        retry = await r.service.plan(ActionRequest(ActionKind.RETRY, plan_exc.id))
        assert retry.ok, retry.explanation
        [step] = retry.steps
        party = step.party_id  # type: ignore[attr-defined]
        lines = [(c, Decimal(q), Decimal(u), d) for c, q, u, d in step.lines]  # type: ignore[attr-defined]
        draft = await conn._create_invoice(iid, party, binv.currency.upper(), None, lines,
                                           step.line_taxes)  # type: ignore[attr-defined]
        # book part of the tax as revenue: the first line's price up (the ERP computes its tax
        # again), then a manual invoice tax bringing the total back to billing's
        [head] = await conn.call("account.invoice", "read", [draft], ["lines", "taxes"], operation="plant")
        [first] = await conn.call("account.invoice.line", "read", [min(head["lines"])], ["unit_price"],
                                  operation="plant")
        raised = from_minor(max(1, sum(ln.tax_amount for ln in binv.lines) // 10), binv.currency)
        await conn.call("account.invoice", "write", [draft], {
            "lines": [["write", [first["id"]], {"unit_price": first["unit_price"] + raised}]]}, operation="plant")
        [computed] = await conn.call("account.invoice.tax", "read", head["taxes"], ["tax", "account"],
                                     operation="plant")
        total = from_minor(binv.total, binv.currency)
        [now] = await conn.call("account.invoice", "read", [draft], ["untaxed_amount", "total_amount"],
                                operation="plant")
        await conn.call("account.invoice", "write", [draft], {
            "taxes": [["create", [{"description": "tax booked as revenue", "base": Decimal("0.00"),
                                   "amount": total - now["total_amount"], "tax": computed["tax"],
                                   "account": computed["account"], "manual": True}]]]}, operation="plant")
        shift = now["untaxed_amount"] - from_minor(binv.subtotal - binv.discount_total, binv.currency)
        await refresh(r)
        r.extra.update(invoice=iid, draft=draft, shift=shift)  # the tax short, the net as much over
    except BaseException:
        await r.close()
        raise
    yield r
    await r.close()


async def refresh(rig: Rig) -> None:
    report = await rig.engine.refresh(RefreshMode.FULL)
    assert report.ok, [o.error_text for o in report.failed]
    await rig.engine.reconcile()


def erp(rig: Rig) -> TrytonConnector:
    conn = rig.engine.connectors[System.ERP]
    assert isinstance(conn, TrytonConnector)
    return conn


def erp_state(rig: Rig) -> dict[str, dict[Any, Any]]:
    return {m: {k: dict(v) for k, v in rig.env.dataset.erp.tables[m].items()} for m in ERP_TABLES}


def billed(rig: Rig, iid: str) -> tuple[Decimal, Decimal, Decimal, str]:
    """Billing's untaxed amount, tax and total (major units) and currency, from the demo's store."""
    inv = rig.env.dataset.billing.invoices[iid]
    cur = inv.currency
    return (from_minor(inv.subtotal - inv.discount_total, cur), from_minor(inv.tax or 0, cur),
            from_minor(inv.total, cur), cur.upper())


async def erp_totals(rig: Rig, invoice_id: int) -> tuple[Decimal, Decimal, Decimal, str]:
    """The ERP invoice's untaxed amount, tax, total and currency as the ERP answers them."""
    read = await erp(rig).get_invoice(invoice_id)
    assert read.net is not None and read.tax is not None
    return read.net.amount, read.tax.amount, read.total.amount, read.total.currency


async def left_on(rig: Rig, iid: str) -> set[str]:
    await refresh(rig)
    return {e.rule for e in await rig.engine.open_exceptions() if e.object_id == iid}


def verdicts(rig: Rig, exc: SyncException) -> dict[ActionKind, tuple[bool, str]]:
    return {k: (ok, why) for k, ok, why in rig.service.allowed_actions(exc)}


def assert_preview_lists_lines_taxes_and_totals(rig: Rig, plan: Any, iid: str) -> None:
    """One note per billing line naming its billing rate and ERP tax, and billing's totals."""
    binv = rig.env.dataset.billing.invoices[iid]
    tax_map = erp(rig).conn.tax_map
    untaxed, tax, total, cur = billed(rig, iid)
    notes = "\n".join(plan.notes)
    line_notes = [n for n in plan.notes if n.startswith("line ")]
    assert len(line_notes) == len(binv.lines), plan.notes
    for note, ln in zip(line_notes, binv.lines, strict=True):
        assert f"ERP tax {tax_map[str(ln.tax_rate)]} for {ln.tax_rate}" in note, note
        assert f"tax {format_money(from_minor(ln.tax_amount, cur), cur)}" in note, note
    assert (f"totals: untaxed {format_money(untaxed, cur)}, tax {format_money(tax, cur)}, "
            f"total {format_money(total, cur)}") in notes
    [tax_check] = [c for c in plan.checks if c.name == "tax"]
    assert tax_check.ok and all(str(ln.tax_rate) in tax_check.detail for ln in binv.lines)


# -- the catalogue ----------------------------------------------------------------------------------
@pytest.mark.parametrize("rule", [TAX, CURRENCY])
def test_both_rules_offer_correct_and_credit_repost(rule: str) -> None:
    assert RULE_ACTIONS[rule] == (ActionKind.CORRECT, ActionKind.CREDIT_REPOST, ActionKind.FLAG, ActionKind.ACCEPT)


# -- a posted copy: credit + repost -----------------------------------------------------------------
async def test_a_posted_tax_mismatch_is_credited_and_reposted_with_billing_s_taxes_to_the_cent(rig: Rig) -> None:
    excs = await rig.open_of(TAX)
    assert excs and {next(s for s in e.sides if s.system is System.ERP).values["state"] for e in excs} <= {
        "posted", "paid"}
    tax_map = erp(rig).conn.tax_map
    for exc in excs:
        iid = exc.object_id
        binv = rig.env.dataset.billing.invoices[iid]
        [copy] = rig.live_erp_invoices(iid)
        v = verdicts(rig, exc)
        assert v[ActionKind.CREDIT_REPOST] == (True, "")
        assert not v[ActionKind.CORRECT][0] and "never edited in place" in v[ActionKind.CORRECT][1]
        before = erp_state(rig)
        plan = await rig.service.plan(ActionRequest(ActionKind.CREDIT_REPOST, exc.id,
                                                    reason="the ERP booked part of the tax as revenue"))
        assert plan.ok, plan.explanation
        [step] = plan.steps
        assert isinstance(step, CreditRepost) and step.invoice_id == copy["id"]
        untaxed, tax, total, cur = billed(rig, iid)
        assert step.currency == cur and step.expected == ExpectedTotals(str(untaxed), str(tax), str(total))
        assert step.line_taxes == tuple((tax_map[str(ln.tax_rate)],) for ln in binv.lines)
        assert_preview_lists_lines_taxes_and_totals(rig, plan, iid)
        assert erp_state(rig) == before  # the preview wrote nothing

        result = await rig.service.execute(plan)
        assert result.status is ActionStatus.SUCCEEDED and result.verified, result.message
        [corrected] = rig.live_erp_invoices(iid)
        assert corrected["id"] != copy["id"] and corrected["state"] == "posted"
        assert await erp_totals(rig, corrected["id"]) == (untaxed, tax, total, cur)
        left = await left_on(rig, iid)
        assert left == ({"invoice.payment_state"} if copy["state"] == "paid" else set()), left


async def test_a_currency_mismatch_is_credited_in_the_copy_s_currency_and_reposted_in_billing_s(rig: Rig) -> None:
    exc = await rig.one(CURRENCY, lambda e: next(s for s in e.sides if s.system is System.ERP).values["state"]
                        in ("posted", "paid"))
    iid = exc.object_id
    [copy] = rig.live_erp_invoices(iid)
    untaxed, tax, total, cur = billed(rig, iid)
    copy_cur = (await erp(rig).get_invoice(copy["id"])).total.currency
    assert copy_cur != cur
    assert verdicts(rig, exc)[ActionKind.CREDIT_REPOST] == (True, "")
    plan = await rig.service.plan(ActionRequest(ActionKind.CREDIT_REPOST, exc.id,
                                                reason="booked in the wrong currency"))
    assert plan.ok, plan.explanation
    # the preflight asks whether the ERP has billing's currency, not whether the two agree
    [currency] = [c for c in plan.checks if c.name == "currency"]
    assert currency.ok and cur in currency.detail
    assert (f"the credit note is in the ERP copy's currency ({copy_cur}, as Tryton's credit copies the invoice), "
            f"the corrected copy in billing's ({cur})") in plan.notes
    [step] = plan.steps
    assert isinstance(step, CreditRepost) and step.currency == cur
    assert plan.expected_after["erp"]["credit_note"]["currency"] == copy_cur
    assert plan.expected_after["erp"]["corrected"]["currency"] == cur

    result = await rig.service.execute(plan)
    assert result.status is ActionStatus.SUCCEEDED and result.verified, result.message
    [corrected] = rig.live_erp_invoices(iid)
    assert corrected["id"] != copy["id"] and corrected["state"] == "posted"
    assert await erp_totals(rig, corrected["id"]) == (untaxed, tax, total, cur)
    # the credit note: Tryton's credit of the copy, in the copy's currency, for the copy's total
    read_back = result.after["read_back"]["erp"]
    notes = [v for k, v in read_back.items() if k.startswith("invoice ")
             and v["reference"] is None and Decimal(v["total"]) < 0]
    assert notes and all(n["currency"] == copy_cur for n in notes), read_back
    left = await left_on(rig, iid)
    assert left == ({"invoice.payment_state"} if copy["state"] == "paid" else set()), left

    # a replay of the step through the connector: the credit note is found by its origin, the copy
    # by its reference; nothing is credited or posted twice
    count = len(rig.env.dataset.erp.tables["account.invoice"])
    lines = [(c, Decimal(q), Decimal(u), d) for c, q, u, d in step.lines]
    expected = None if step.expected is None else (Decimal(step.expected.untaxed), Decimal(step.expected.tax),
                                                    Decimal(step.expected.total))
    _, again = await erp(rig).credit_and_repost(step.invoice_id, iid, step.party_id, cur, None, lines,
                                                line_taxes=step.line_taxes, expected=expected)
    assert again == corrected["id"] and len(rig.env.dataset.erp.tables["account.invoice"]) == count


# -- a draft copy: corrected in place ---------------------------------------------------------------
async def test_a_draft_currency_mismatch_is_corrected_into_billing_s_currency_and_refused_a_credit(rig: Rig) -> None:
    exc = await rig.one(CURRENCY, lambda e: next(s for s in e.sides if s.system is System.ERP).values["state"]
                        == "draft")
    iid = exc.object_id
    [draft] = rig.live_erp_invoices(iid)
    v = verdicts(rig, exc)
    assert v[ActionKind.CORRECT] == (True, "")
    assert not v[ActionKind.CREDIT_REPOST][0] and "corrected in place (correct), not credited" in v[
        ActionKind.CREDIT_REPOST][1]
    before = erp_state(rig)
    refused = await rig.service.execute(await rig.service.plan(
        ActionRequest(ActionKind.CREDIT_REPOST, exc.id, reason="wrong currency")))
    assert refused.status is ActionStatus.REFUSED and "corrected in place" in refused.message
    assert erp_state(rig) == before

    plan = await rig.service.plan(ActionRequest(ActionKind.CORRECT, exc.id, reason="booked in the wrong currency"))
    assert plan.ok, plan.explanation
    untaxed, tax, total, cur = billed(rig, iid)
    [step] = plan.steps
    assert isinstance(step, ReplaceLines) and step.invoice_id == draft["id"] and step.currency == cur
    result = await rig.service.execute(plan)
    assert result.status is ActionStatus.SUCCEEDED and result.verified, result.message
    [after] = rig.live_erp_invoices(iid)
    assert after["id"] == draft["id"] and after["state"] == "draft"
    got = await erp_totals(rig, draft["id"])
    assert got[2:] == (total, cur)
    if step.expected is not None:
        assert got == (untaxed, tax, total, cur)
    # the corrected draft is still a draft: it is to be posted (invoice.not_posted_in_erp says so,
    # which the currency mismatch had stood for), nothing else
    assert await left_on(rig, iid) <= {"invoice.not_posted_in_erp"}


async def test_a_draft_tax_mismatch_is_corrected_with_billing_s_lines_and_taxes_to_the_cent(draft_rig: Rig) -> None:
    rig = draft_rig
    iid, draft = rig.extra["invoice"], rig.extra["draft"]
    exc = await rig.one(TAX, lambda e: e.object_id == iid)
    assert next(s for s in exc.sides if s.system is System.ERP).values["state"] == "draft"
    untaxed, tax, total, cur = billed(rig, iid)
    assert rig.extra["shift"] > 0
    assert await erp_totals(rig, draft) == (untaxed + rig.extra["shift"], tax - rig.extra["shift"], total, cur)
    assert {e.rule for e in await rig.engine.open_exceptions() if e.object_id == iid} <= {
        TAX, "invoice.not_posted_in_erp"}  # the same total: no amount mismatch
    v = verdicts(rig, exc)
    assert v[ActionKind.CORRECT] == (True, "")
    assert not v[ActionKind.CREDIT_REPOST][0] and "not posted" in v[ActionKind.CREDIT_REPOST][1]

    before = erp_state(rig)
    plan = await rig.service.plan(ActionRequest(ActionKind.CORRECT, exc.id, reason="tax booked as revenue"))
    assert plan.ok, plan.explanation
    [step] = plan.steps
    tax_map = erp(rig).conn.tax_map
    binv = rig.env.dataset.billing.invoices[iid]
    assert isinstance(step, ReplaceLines) and step.invoice_id == draft and step.currency == cur
    assert step.line_taxes == tuple((tax_map[str(ln.tax_rate)],) for ln in binv.lines)
    assert step.expected == ExpectedTotals(str(untaxed), str(tax), str(total))
    assert_preview_lists_lines_taxes_and_totals(rig, plan, iid)
    [write] = [c for c in plan.calls if c.body["method"] == "model.account.invoice.write"]
    assert write.body["params"][1]["taxes"] == [["delete", ["<manual invoice taxes>"]]]
    assert erp_state(rig) == before  # the preview wrote nothing

    result = await rig.service.execute(plan)
    assert result.status is ActionStatus.SUCCEEDED and result.verified, result.message
    assert await erp_totals(rig, draft) == (untaxed, tax, total, cur)
    taxes = rig.env.dataset.erp.tables["account.invoice.tax"]
    assert not [t for t in rig.env.dataset.erp.lookup("account.invoice.tax", "invoice", draft)
                if taxes[t].get("manual") and "revenue" in str(taxes[t]["description"])]
    assert await left_on(rig, iid) <= {"invoice.not_posted_in_erp"}

    # a replay of the step: the lines are replaced again, not added; the totals stay billing's
    state = erp_state(rig)["account.invoice.line"]
    assert step.expected is not None
    lines = [(c, Decimal(q), Decimal(u), d) for c, q, u, d in step.lines]
    await erp(rig).replace_draft_invoice_lines(draft, cur, lines, line_taxes=step.line_taxes, expected=(
        Decimal(step.expected.untaxed), Decimal(step.expected.tax), Decimal(step.expected.total)))
    assert await erp_totals(rig, draft) == (untaxed, tax, total, cur)
    assert len(rig.env.dataset.erp.lookup("account.invoice.line", "invoice", draft)) == len(binv.lines)
    assert len(erp_state(rig)["account.invoice.line"]) == len(state)


async def test_a_correction_whose_totals_differ_puts_the_draft_back_and_is_refused(draft_rig: Rig) -> None:
    rig = draft_rig
    iid, draft = rig.extra["invoice"], rig.extra["draft"]
    exc = await rig.one(TAX, lambda e: e.object_id == iid)
    binv = rig.env.dataset.billing.invoices[iid]
    [rate] = {str(ln.tax_rate) for ln in binv.lines}
    conn = erp(rig)
    # a profile mapping the rate to another ERP tax (another percentage): the preflight cannot
    # know, the ERP computes another tax, and the correction is not kept
    other = next(t for r, t in sorted(conn.conn.tax_map.items())
                 if r != rate and rig.env.dataset.billing.tax_rates[r].percentage
                 != rig.env.dataset.billing.tax_rates[rate].percentage)
    conn.conn.tax_map = {**conn.conn.tax_map, rate: other}
    plan = await rig.service.plan(ActionRequest(ActionKind.CORRECT, exc.id, reason="tax booked as revenue"))
    assert plan.ok, plan.explanation
    lines_before = sorted((r["product"], str(r["quantity"]), str(r["unit_price"]), tuple(r["taxes"]))
                          for r in (rig.env.dataset.erp.tables["account.invoice.line"][i]
                                    for i in rig.env.dataset.erp.lookup("account.invoice.line", "invoice", draft)))
    totals_before = await erp_totals(rig, draft)
    result = await rig.service.execute(plan)
    assert result.status is ActionStatus.FAILED and "previous lines were put back" in result.message, result.message
    assert await erp_totals(rig, draft) == totals_before
    lines_after = sorted((r["product"], str(r["quantity"]), str(r["unit_price"]), tuple(r["taxes"]))
                         for r in (rig.env.dataset.erp.tables["account.invoice.line"][i]
                                   for i in rig.env.dataset.erp.lookup("account.invoice.line", "invoice", draft)))
    assert lines_after == lines_before
    # the connector itself, called again: refused the same way, the draft put back again
    step = plan.steps[0]
    assert isinstance(step, ReplaceLines) and step.expected is not None
    lines = [(c, Decimal(q), Decimal(u), d) for c, q, u, d in step.lines]
    expected = (Decimal(step.expected.untaxed), Decimal(step.expected.tax), Decimal(step.expected.total))
    with pytest.raises(RemoteValidationError, match="put back"):
        await conn.replace_draft_invoice_lines(draft, step.currency, lines, line_taxes=step.line_taxes,
                                               expected=expected)
    assert await erp_totals(rig, draft) == totals_before


# -- refusals ---------------------------------------------------------------------------------------
async def test_an_unmapped_tax_rate_is_refused_naming_it_and_nothing_is_written(rig: Rig) -> None:
    exc = await rig.one(TAX, lambda e: next(s for s in e.sides if s.system is System.ERP).values["state"]
                        in ("posted", "paid"))
    binv = rig.env.dataset.billing.invoices[exc.object_id]
    rate = next(str(ln.tax_rate) for ln in binv.lines if ln.tax_rate)
    conn = erp(rig)
    conn.conn.tax_map = {k: v for k, v in conn.conn.tax_map.items() if k != rate}
    before = erp_state(rig)
    plan = await rig.service.plan(ActionRequest(ActionKind.CREDIT_REPOST, exc.id, reason="tax"))
    [failed] = [c for c in plan.checks if not c.ok]
    assert failed.name == "tax" and rate in failed.detail and "tax_map" in failed.detail
    assert plan.steps == []
    result = await rig.service.execute(plan)
    assert result.status is ActionStatus.REFUSED and rate in result.message
    assert erp_state(rig) == before


async def test_a_voided_billing_invoice_is_not_reposted_and_a_posted_copy_not_corrected(rig: Rig) -> None:
    import dataclasses

    from services.actions.roles import static_refusal

    exc = await rig.one(TAX, lambda e: next(s for s in e.sides if s.system is System.ERP).values["state"]
                        in ("posted", "paid"))
    voided = dataclasses.replace(exc, sides=[dataclasses.replace(s, values={**s.values, "status": "void"})
                                             if s.system is System.BILLING else s for s in exc.sides])
    assert static_refusal(voided, ActionKind.CREDIT_REPOST) == (
        "billing voided the invoice: there is nothing to repost — flag it for review")
    before = erp_state(rig)
    refused = await rig.service.execute(await rig.service.plan(
        ActionRequest(ActionKind.CORRECT, exc.id, reason="tax")))
    assert refused.status is ActionStatus.REFUSED and "never edited in place" in refused.message
    assert erp_state(rig) == before
