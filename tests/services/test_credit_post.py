"""The missing ERP credit note is posted (G1 item 5), on the demo servers over loopback: an ERP
credit note deleted from the demo ERP leaves its billing credit note a
``credit_note.missing_in_erp``; the CREDIT fix previews the exact lines (each crediting a line of
the ERP invoice, with its mapped tax), the taxes and the totals, posts the credit note as
Tryton's credit makes one (lines whose ``origin`` is the credited invoice's lines, negated
quantities, the billing credit note id as reference), equal to billing's untaxed amount, tax and
total to the cent, and the exception closes by verification — a partial taxed credit note, a
full taxed one in another currency. A replay after a lost answer posts nothing twice; each failed
preflight explains itself and writes nothing; support and auditor roles are refused.
``invoice.refund_not_reflected`` (a full refund without billing credit note) credits the whole
ERP invoice the same way; a refund a billing credit note covers is refused, naming it."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from services.actions.model import ActionKind, ActionRequest, ActionStatus
from services.actions.steps import ExpectedTotals, PostCreditNote, step_from_json
from services.core.currency import exponent, format_money, from_minor
from services.core.domain import CreditNote, InvoiceStatus, Money, SyncException, System
from services.core.errors import RemoteValidationError
from services.core.sysdata import SystemData
from services.demo.environment import DemoEnvironment
from services.demo.store import BCreditNote
from services.engine import RefreshMode
from services.io.connectors.tryton import TrytonConnector
from tests.services.actions_rig import AUDITOR, SUPPORT, DropAnswers, Rig, make_rig, rpc

RULE = "credit_note.missing_in_erp"
ERP_TABLES = ("account.invoice", "account.invoice.line", "account.invoice.tax")


#: the demo world of these tests: one whose full taxed credit notes are not all planted already
#: (at the rig's default seed, 3, each one is), so a full and a partial one can be made missing
SEED = 1


def _erp_notes_of(env: DemoEnvironment, cn: BCreditNote) -> list[int]:
    """The demo ERP's credit notes booked for billing credit note ``cn``: crediting a line of its
    invoice's ERP copy, for its total."""
    erp = env.dataset.erp
    invoices, lines = erp.tables["account.invoice"], erp.tables["account.invoice.line"]
    copy_lines = {lid for c in erp.lookup("account.invoice", "reference", cn.invoice)
                  for lid in erp.lookup("account.invoice.line", "invoice", c)}
    out = []
    for rid, rec in sorted(invoices.items()):
        if rec.get("sequence_type_cache") != "credit_note" or rec["total_amount"] != -from_minor(cn.total, cn.currency):
            continue
        origins = {str(lines[lid].get("origin") or "") for lid in erp.lookup("account.invoice.line", "invoice", rid)}
        if {f"account.invoice.line,{lid}" for lid in copy_lines} & origins:
            out.append(rid)
    return out


def delete_erp_credit_notes(env: DemoEnvironment) -> dict[str, str]:
    """Delete the ERP credit note of a partial taxed billing credit note and of a full taxed one
    in another currency (lines and invoice taxes too): each becomes a credit_note.missing_in_erp.
    Answers kind -> billing credit note id."""
    billing, erp = env.dataset.billing, env.dataset.erp
    victims: dict[str, str] = {}
    currencies: set[str] = set()
    for cn in sorted(billing.credit_notes.values(), key=lambda c: c.id):
        inv = billing.invoices[cn.invoice]
        kind = "full" if cn.total == inv.total else "partial"
        if kind in victims or cn.status != "issued" or not cn.tax or cn.currency in currencies:
            continue
        found = _erp_notes_of(env, cn)
        if len(found) != 1:
            continue
        [rid] = found
        for line in list(erp.lookup("account.invoice.line", "invoice", rid)):
            erp.delete("account.invoice.line", line)
        for tax in list(erp.lookup("account.invoice.tax", "invoice", rid)):
            erp.delete("account.invoice.tax", tax)
        erp.delete("account.invoice", rid)
        victims[kind] = cn.id
        currencies.add(cn.currency)
    assert set(victims) == {"partial", "full"}, f"only {sorted(victims)} found in the demo"
    return victims


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    victims: dict[str, str] = {}
    r = await make_rig(tmp_path, seed=SEED, before_start=lambda env: victims.update(delete_erp_credit_notes(env)))
    r.extra["victims"] = victims
    yield r
    await r.close()


def erp(rig: Rig) -> TrytonConnector:
    conn = rig.engine.connectors[System.ERP]
    assert isinstance(conn, TrytonConnector)
    return conn


def erp_state(rig: Rig) -> dict[str, dict[Any, Any]]:
    return {m: {k: dict(v) for k, v in rig.env.dataset.erp.tables[m].items()} for m in ERP_TABLES}


def by_reference(rig: Rig, reference: str) -> list[dict[str, Any]]:
    return rig.live_erp_invoices(reference)


def billed(rig: Rig, cnid: str) -> tuple[Decimal, Decimal, Decimal, str]:
    """Billing's untaxed amount, tax and total of credit note ``cnid`` (major units), and currency."""
    cn = rig.env.dataset.billing.credit_notes[cnid]
    cur = cn.currency  # each amount with its currency's exponent (yen: none)
    return (from_minor(cn.subtotal - cn.discount, cur), from_minor(cn.tax, cur), from_minor(cn.total, cur),
            cn.currency.upper())


async def victim(rig: Rig, kind: str) -> SyncException:
    cnid = rig.extra["victims"][kind]
    return await rig.one(RULE, lambda e: e.object_id == cnid)


async def test_the_preview_lists_the_lines_taxes_and_totals_and_the_posting_closes_the_exception(rig: Rig) -> None:
    tax_map = erp(rig).conn.tax_map
    billing = rig.env.dataset.billing
    for kind, cnid in rig.extra["victims"].items():
        exc = await victim(rig, kind)
        cn = billing.credit_notes[cnid]
        binv = billing.invoices[cn.invoice]
        [copy] = rig.live_erp_invoices(cn.invoice)
        plan = await rig.service.plan(ActionRequest(ActionKind.CREDIT, exc.id))
        assert plan.ok, (kind, plan.explanation)
        [step] = plan.steps
        assert isinstance(step, PostCreditNote)
        assert (step.reference, step.invoice_id, step.currency) == (cnid, copy["id"], cn.currency.upper())
        untaxed, tax, total, cur = billed(rig, cnid)
        assert step.expected == ExpectedTotals(str(-untaxed), str(-tax), str(-total))
        # each line credits the invoice line billing credited, with the ERP tax of its billing rate
        positions = {ln.id: i for i, ln in enumerate(binv.lines)}
        assert [(p, was) for p, was, *_ in step.lines] == [
            (positions[ln.invoice_line_item], binv.lines[positions[ln.invoice_line_item]].description)
            for ln in cn.lines]
        assert step.line_taxes == tuple((tax_map[str(ln.tax_rate)],) for ln in cn.lines)
        assert sum((Decimal(q) * Decimal(u) for _, _, q, u, _ in step.lines), Decimal(0)) == untaxed
        # the preview: one note per line with its tax, the totals, and the create call with the lines' origins
        notes = "\n".join(plan.notes)
        assert sum(1 for n in plan.notes if n.startswith("credit line ")) == len(cn.lines), plan.notes
        assert all(str(ln.tax_rate) in notes and f"tax {format_money(-from_minor(ln.tax_amount, cur), cur)}" in notes
                   for ln in cn.lines), notes
        assert (f"credit note totals: untaxed {format_money(-untaxed, cur)}, tax {format_money(-tax, cur)}, "
                f"total {format_money(-total, cur)}") in notes
        [create] = [c for c in plan.calls if c.body["method"] == "model.account.invoice.create"]
        [values] = create.body["params"][0]
        assert values["reference"] == cnid and values["currency"] == cur
        assert [ln["taxes"] for ln in values["lines"][0][1]] == [[["add", list(ids)]] for ids in step.line_taxes]
        assert all(ln["origin"].startswith("account.invoice.line,") for ln in values["lines"][0][1])
        before = erp_state(rig)
        assert by_reference(rig, cnid) == [] and erp_state(rig) == before  # the preview wrote nothing

        result = await rig.service.execute(plan)
        assert result.status is ActionStatus.SUCCEEDED and result.verified, (kind, result.message)
        [note] = by_reference(rig, cnid)
        assert note["state"] == "posted" and note["sequence_type_cache"] == "credit_note"
        read = await erp(rig).get_invoice(note["id"])
        assert read.net is not None and read.tax is not None
        assert (read.net.amount, read.tax.amount, read.total.amount, read.total.currency) == (
            -untaxed, -tax, -total, cur), kind
        lines = rig.env.dataset.erp.tables["account.invoice.line"]
        credited = {lines[int(str(lines[lid]["origin"]).split(",")[1])]["invoice"]
                    for lid in rig.env.dataset.erp.lookup("account.invoice.line", "invoice", note["id"])}
        assert credited == {copy["id"]}
        assert all(float(lines[lid]["quantity"]) < 0
                   for lid in rig.env.dataset.erp.lookup("account.invoice.line", "invoice", note["id"]))
        assert rig.live_erp_invoices(cn.invoice)[0]["state"] == copy["state"]  # the credited invoice is untouched
    report = await rig.engine.refresh(RefreshMode.FULL)
    assert report.ok
    await rig.engine.reconcile()
    left = {e.object_id for e in await rig.open_of(RULE)}
    assert not left & set(rig.extra["victims"].values())


async def test_a_replay_after_a_lost_answer_posts_the_credit_note_once(tmp_path: Path) -> None:
    victims: dict[str, str] = {}
    drop = DropAnswers(rpc("model.account.invoice.create"), times=1)
    r = await make_rig(tmp_path, seed=SEED, before_start=lambda env: victims.update(delete_erp_credit_notes(env)),
                       wrap={System.ERP: drop.wrap})
    try:
        cnid = victims["partial"]
        exc = await r.one(RULE, lambda e: e.object_id == cnid)
        plan = await r.service.plan(ActionRequest(ActionKind.CREDIT, exc.id))
        assert plan.ok, plan.explanation
        result = await r.service.execute(plan)
        # the create committed but its answer was lost: found by its reference, posted, verified
        assert len(drop.dropped) == 1
        assert result.status is ActionStatus.SUCCEEDED and result.verified, result.message
        [note] = r.live_erp_invoices(cnid)
        [step] = plan.steps
        assert isinstance(step, PostCreditNote)
        # the connector itself, replayed: answers the posted credit note, creates nothing
        conn = erp(r)
        lines = [(p, w, Decimal(q), Decimal(u), d) for p, w, q, u, d in step.lines]
        assert step.expected is not None
        expected = (Decimal(step.expected.untaxed), Decimal(step.expected.tax), Decimal(step.expected.total))
        assert await conn.ensure_credit_note_posted(step.reference, step.invoice_id, step.currency, None, lines,
                                                    line_taxes=step.line_taxes, expected=expected) == note["id"]
        assert r.live_erp_invoices(cnid) == [note]
        creates = [row for row in r.outbox_rows() if row["exception_id"] == exc.id]
        assert len(creates) == 1
    finally:
        await r.close()


async def test_an_unmapped_tax_rate_is_refused_naming_it_and_nothing_is_written(rig: Rig) -> None:
    cnid = rig.extra["victims"]["partial"]
    cn = rig.env.dataset.billing.credit_notes[cnid]
    [rate] = {ln.tax_rate for ln in cn.lines}
    assert rate is not None
    conn = erp(rig)
    conn.conn.tax_map = {k: v for k, v in conn.conn.tax_map.items() if k != rate}
    exc = await victim(rig, "partial")
    before = erp_state(rig)
    plan = await rig.service.plan(ActionRequest(ActionKind.CREDIT, exc.id))
    [failed] = [c for c in plan.checks if not c.ok]
    assert failed.name == "tax" and rate in failed.detail and "tax_map" in failed.detail
    assert plan.steps == []
    result = await rig.service.execute(plan)
    assert result.status is ActionStatus.REFUSED and rate in result.message
    assert erp_state(rig) == before and by_reference(rig, cnid) == []


async def _with_copy(rig: Rig, exc: SyncException, **changes: Any) -> None:
    """The local snapshot's ERP copy of the credited invoice, changed (as a refresh would show it)."""
    erp_side = next(s for s in exc.sides if s.system is System.ERP)
    assert erp_side.ref is not None
    copy = rig.engine.data[System.ERP].invoices[erp_side.ref.id]
    await rig.engine.apply_records(System.ERP, SystemData(System.ERP, invoices={
        copy.ref.id: dataclasses.replace(copy, **changes)}))


@pytest.mark.parametrize(("change", "name", "words"), [
    ({"status": InvoiceStatus.DRAFT}, "target", "is draft: a credit note credits a posted invoice"),
    ({"status": InvoiceStatus.CANCELLED}, "target", "the ERP holds no invoice for"),
    ("currency", "currency", "a credit note is in the credited invoice's currency"),
])
async def test_a_credited_invoice_not_posted_missing_or_in_another_currency_is_refused(
        rig: Rig, change: dict[str, Any] | str, name: str, words: str) -> None:
    exc = await victim(rig, "partial")
    if change == "currency":
        side = next(s for s in exc.sides if s.system is System.ERP)
        assert side.ref is not None
        total = rig.engine.data[System.ERP].invoices[side.ref.id].total
        await _with_copy(rig, exc, total=Money(total.amount, "JPY"))
    else:
        assert isinstance(change, dict)
        await _with_copy(rig, exc, **change)
    before = erp_state(rig)
    plan = await rig.service.plan(ActionRequest(ActionKind.CREDIT, exc.id))
    [failed] = [c for c in plan.checks if not c.ok]
    assert failed.name == name and words in failed.detail, failed
    result = await rig.service.execute(plan)
    assert result.status is ActionStatus.REFUSED and words in result.message
    assert erp_state(rig) == before and by_reference(rig, exc.object_id) == []


@pytest.mark.parametrize("operator", [SUPPORT, AUDITOR], ids=["support", "auditor"])
async def test_support_and_auditor_roles_are_refused(tmp_path: Path, operator: Any) -> None:
    victims: dict[str, str] = {}
    r = await make_rig(tmp_path, seed=SEED, operator=operator,
                       before_start=lambda env: victims.update(delete_erp_credit_notes(env)))
    try:
        cnid = victims["partial"]
        exc = await r.one(RULE, lambda e: e.object_id == cnid)
        before = erp_state(r)
        plan = await r.service.plan(ActionRequest(ActionKind.CREDIT, exc.id))
        role = next(c for c in plan.checks if c.name == "role")
        assert not role.ok and not plan.ok
        words = "is an auditor" if operator is AUDITOR else "owned by finance; the support role cannot act"
        assert words in role.detail
        result = await r.service.execute(plan)
        assert result.status is ActionStatus.REFUSED and words in result.message
        assert erp_state(r) == before and r.live_erp_invoices(cnid) == []
    finally:
        await r.close()


# --------------------------------------------------------------------------------------
# invoice.refund_not_reflected
# --------------------------------------------------------------------------------------


async def test_a_full_refund_is_credited_in_full_against_the_paid_erp_invoice(rig: Rig) -> None:
    tax_map = erp(rig).conn.tax_map
    billing = rig.env.dataset.billing
    excs = await rig.open_of("invoice.refund_not_reflected")
    assert excs, "the demo plants invoice.refund_not_reflected"
    for exc in excs:
        binv = billing.invoices[exc.object_id]
        [copy] = rig.live_erp_invoices(binv.id)
        assert copy["state"] == "paid"
        plan = await rig.service.plan(ActionRequest(ActionKind.CREDIT, exc.id))
        assert plan.ok, plan.explanation
        [step] = plan.steps
        assert isinstance(step, PostCreditNote) and step.reference.startswith("re_")
        untaxed = from_minor(binv.subtotal - binv.discount_total, binv.currency)
        tax, total = from_minor(binv.tax or 0, binv.currency), from_minor(binv.total, binv.currency)
        assert step.expected == ExpectedTotals(str(-untaxed), str(-tax), str(-total))
        assert [p for p, *_ in step.lines] == list(range(len(binv.lines)))  # every line, in full
        assert step.line_taxes == tuple((tax_map[str(ln.tax_rate)],) for ln in binv.lines)
        assert any(n.startswith("credit note totals:") for n in plan.notes)
        result = await rig.service.execute(plan)
        assert result.status is ActionStatus.SUCCEEDED and result.verified, result.message
        [note] = by_reference(rig, step.reference)
        read = await erp(rig).get_invoice(note["id"])
        assert read.net is not None and read.tax is not None
        assert (read.net.amount, read.tax.amount, read.total.amount) == (-untaxed, -tax, -total)
        assert rig.live_erp_invoices(binv.id)[0]["state"] == "paid"  # its payment happened


async def test_a_refund_a_billing_credit_note_covers_is_refused_naming_that_credit_note(rig: Rig) -> None:
    exc = (await rig.open_of("invoice.refund_not_reflected"))[0]
    binv = rig.engine.data[System.BILLING].invoices[exc.object_id]
    note = CreditNote(dataclasses.replace(binv.ref, kind="credit_note", id="cn_covering"), binv.customer_id,
                      binv.ref.id, "issued", binv.total, number="CN-COVERING")
    await rig.engine.apply_records(System.BILLING, SystemData(System.BILLING, credit_notes={"cn_covering": note}))
    before = erp_state(rig)
    plan = await rig.service.plan(ActionRequest(ActionKind.CREDIT, exc.id))
    [failed] = [c for c in plan.checks if not c.ok]
    assert failed.name == "source" and "CN-COVERING" in failed.detail and RULE in failed.detail
    assert erp_state(rig) == before


def test_the_stored_step_reads_back_as_it_was_written() -> None:
    step = PostCreditNote("cn_1", 42, "EUR", "2026-05-28", ((0, "2 × Pro", "1", "33.48", "2 × Pro"),), ((8,),),
                          ExpectedTotals("-33.48", "-6.36", "-39.84"), None)
    assert step_from_json(step.to_json()) == step
    assert step.to_json()["op"] == "erp.post_credit_note"


async def test_a_partial_refund_is_refused_saying_billing_names_its_lines_with_a_credit_note(rig: Rig) -> None:
    exc = (await rig.open_of("invoice.refund_not_reflected"))[0]
    billing = rig.engine.data[System.BILLING]
    halved = {k: dataclasses.replace(r, amount=Money((r.amount.amount / 2).quantize(
                  Decimal(1).scaleb(-exponent(r.amount.currency))), r.amount.currency))
              for k, r in billing.refunds.items() if r.invoice_id == exc.object_id}
    assert halved
    await rig.engine.apply_records(System.BILLING, SystemData(System.BILLING, refunds=halved))
    before = erp_state(rig)
    plan = await rig.service.plan(ActionRequest(ActionKind.CREDIT, exc.id))
    [failed] = [c for c in plan.checks if not c.ok]
    assert failed.name == "partial" and "billing's to say with a credit note" in failed.detail
    assert erp_state(rig) == before


async def test_a_credited_line_the_erp_invoice_does_not_have_is_refused_and_nothing_is_created(rig: Rig) -> None:
    """The connector's own check (the ERP may have changed since the snapshot): the credited line
    must be the ERP invoice's line of that position and description."""
    exc = await victim(rig, "partial")
    plan = await rig.service.plan(ActionRequest(ActionKind.CREDIT, exc.id))
    [step] = plan.steps
    assert isinstance(step, PostCreditNote) and step.expected is not None
    pos, was, qty, unit, desc = step.lines[0]
    expected = (Decimal(step.expected.untaxed), Decimal(step.expected.tax), Decimal(step.expected.total))
    for wrong, words in (((pos, f"not {was}", Decimal(qty), Decimal(unit), desc), "post the credit note by hand"),
                         ((pos + 5, was, Decimal(qty), Decimal(unit), desc), "post the credit note by hand")):
        with pytest.raises(RemoteValidationError, match=words):
            await erp(rig).ensure_credit_note_posted(step.reference, step.invoice_id, step.currency, None, [wrong],
                                                     line_taxes=step.line_taxes, expected=expected)
    assert by_reference(rig, step.reference) == []
