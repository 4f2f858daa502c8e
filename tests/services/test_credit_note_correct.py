"""``credit_note.amount_mismatch`` on a *draft* ERP credit note is corrected in place (CORRECT),
on the demo servers over loopback: its lines are replaced by billing's credit note's in the shape
of Tryton's credit (each crediting a line of the ERP invoice by ``origin``, the quantity negated,
billing's tax mapped), its totals compared with billing's (negated) to the minor unit before the
correction is kept, and verification closes the exception; the credit note stays a draft. A
correction whose totals would differ puts the previous lines (their origins included) back. A
*posted* ERP credit note is never edited in place: CORRECT is refused, naming it (flag it).

The demo plants posted credit note mismatches only: the draft is built here through the demo
ERP's RPC (the ERP credit note of a billing credit note deleted before the servers start, then
booked again as a draft with a wrong unit price)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from services.actions.model import RULE_ACTIONS, ActionKind, ActionRequest, ActionStatus
from services.actions.steps import PostCreditNote, ReplaceCreditLines
from services.core.currency import format_money, from_minor
from services.core.domain import System
from services.demo.environment import DemoEnvironment
from services.engine import RefreshMode
from services.io.connectors.tryton import TrytonConnector
from tests.services.actions_rig import Rig, make_rig
from tests.services.test_credit_post import _erp_notes_of

RULE = "credit_note.amount_mismatch"
LINE_FIELDS = ("product", "quantity", "unit_price", "taxes", "origin", "description")


def erp(rig: Rig) -> TrytonConnector:
    conn = rig.engine.connectors[System.ERP]
    assert isinstance(conn, TrytonConnector)
    return conn


async def refresh(rig: Rig) -> None:
    report = await rig.engine.refresh(RefreshMode.FULL)
    assert report.ok, [o.error_text for o in report.failed]
    await rig.engine.reconcile()


def note_lines(rig: Rig, note: int) -> list[tuple[Any, ...]]:
    erp_data = rig.env.dataset.erp
    table = erp_data.tables["account.invoice.line"]
    return sorted(tuple(str(table[i].get(k)) for k in LINE_FIELDS)
                  for i in erp_data.lookup("account.invoice.line", "invoice", note))


async def totals(rig: Rig, note: int) -> tuple[Decimal, Decimal, Decimal, str, str]:
    inv = await erp(rig).get_invoice(note)
    assert inv.net is not None and inv.tax is not None
    return inv.net.amount, inv.tax.amount, inv.total.amount, inv.total.currency, inv.status.value


def billed(rig: Rig, cid: str) -> tuple[Decimal, Decimal, Decimal, str]:
    """Billing's credit note's untaxed amount, tax and total as the ERP's shows them (negated)."""
    cn = rig.env.dataset.billing.credit_notes[cid]
    cur = cn.currency
    return (-from_minor(cn.subtotal - cn.discount, cur), -from_minor(cn.tax, cur), -from_minor(cn.total, cur),
            cur.upper())


def delete_one_erp_credit_note(env: DemoEnvironment) -> str:
    """Delete the ERP credit note (lines and invoice taxes too) of one issued, taxed, partial billing
    credit note at one rate before the servers start: it becomes a credit_note.missing_in_erp.
    Answers the billing credit note id."""
    billing, erp_data = env.dataset.billing, env.dataset.erp
    for cn in sorted(billing.credit_notes.values(), key=lambda c: c.id):
        if (cn.status != "issued" or not cn.tax or cn.total == billing.invoices[cn.invoice].total
                or len({ln.tax_rate for ln in cn.lines}) != 1):
            continue
        found = _erp_notes_of(env, cn)
        if len(found) != 1:
            continue
        [rid] = found
        for line in list(erp_data.lookup("account.invoice.line", "invoice", rid)):
            erp_data.delete("account.invoice.line", line)
        for tax in list(erp_data.lookup("account.invoice.tax", "invoice", rid)):
            erp_data.delete("account.invoice.tax", tax)
        erp_data.delete("account.invoice", rid)
        return cn.id
    raise AssertionError("no partial taxed billing credit note in the demo")


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    victims: list[str] = []
    r = await make_rig(tmp_path, before_start=lambda env: victims.append(delete_one_erp_credit_note(env)))
    try:
        [cid] = victims
        missing = await r.one("credit_note.missing_in_erp", lambda e: e.object_id == cid)
        plan = await r.service.plan(ActionRequest(ActionKind.CREDIT, missing.id))
        assert plan.ok, plan.explanation
        [step] = plan.steps
        assert isinstance(step, PostCreditNote)
        # booked as a draft with the first line's unit price 1.00 too high
        lines = [(p, was, Decimal(q), Decimal(u) + (Decimal(1) if n == 0 else 0), d)
                 for n, (p, was, q, u, d) in enumerate(step.lines)]
        note = await erp(r)._create_credit_note(cid, step.invoice_id, step.currency, None, lines,
                                                step.line_taxes, "plant")
        await refresh(r)
        r.extra.update(credit_note=cid, note=note, invoice=step.invoice_id)
    except BaseException:
        await r.close()
        raise
    yield r
    await r.close()


async def test_a_draft_erp_credit_note_is_corrected_to_billing_s_lines_and_totals(rig: Rig) -> None:
    assert RULE_ACTIONS[RULE] == (ActionKind.CORRECT, ActionKind.FLAG, ActionKind.ACCEPT)
    cid, note = rig.extra["credit_note"], rig.extra["note"]
    exc = await rig.one(RULE, lambda e: e.object_id == cid)
    assert next(s for s in exc.sides if s.system is System.ERP).values["state"] == "draft"
    untaxed, tax, total, cur = billed(rig, cid)
    assert (await totals(rig, note))[2] != total
    verdicts = {k: (ok, why) for k, ok, why in rig.service.allowed_actions(exc)}
    assert verdicts[ActionKind.CORRECT] == (True, "")

    plan = await rig.service.plan(ActionRequest(ActionKind.CORRECT, exc.id, reason="the ERP credited too much"))
    assert plan.ok, plan.explanation
    [step] = plan.steps
    assert isinstance(step, ReplaceCreditLines)
    assert (step.note_id, step.invoice_id, step.currency) == (note, rig.extra["invoice"], cur)
    cn = rig.env.dataset.billing.credit_notes[cid]
    tax_map = erp(rig).conn.tax_map
    assert step.line_taxes == tuple((tax_map[str(ln.tax_rate)],) for ln in cn.lines)
    notes = "\n".join(plan.notes)
    assert sum(1 for n in plan.notes if n.startswith("credit line ")) == len(cn.lines), plan.notes
    assert (f"credit note totals: untaxed {format_money(untaxed, cur)}, tax {format_money(tax, cur)}, "
            f"total {format_money(total, cur)}") in notes
    before = note_lines(rig, note)
    assert note_lines(rig, note) == before  # the preview wrote nothing

    result = await rig.service.execute(plan)
    assert result.status is ActionStatus.SUCCEEDED and result.verified, result.message
    assert await totals(rig, note) == (untaxed, tax, total, cur, "draft")
    copy_lines = set(rig.env.dataset.erp.lookup("account.invoice.line", "invoice", rig.extra["invoice"]))
    origins = {str(row[LINE_FIELDS.index("origin")]) for row in note_lines(rig, note)}
    assert origins and all(o.startswith("account.invoice.line,") and int(o.split(",")[1]) in copy_lines
                           for o in origins)
    await refresh(rig)
    left = {e.rule for e in await rig.engine.open_exceptions() if e.object_id == cid}
    assert not left & {RULE, "credit_note.missing_in_erp"}, left

    # a replay of the step: the lines are replaced again, not added
    count = len(note_lines(rig, note))
    await erp(rig).replace_draft_credit_note_lines(
        note, step.invoice_id, cur, [(p, w, Decimal(q), Decimal(u), d) for p, w, q, u, d in step.lines],
        line_taxes=step.line_taxes,
        expected=(Decimal(step.expected.untaxed), Decimal(step.expected.tax), Decimal(step.expected.total)))
    assert len(note_lines(rig, note)) == count and await totals(rig, note) == (untaxed, tax, total, cur, "draft")


async def test_a_correction_whose_totals_differ_puts_the_credit_note_back(rig: Rig) -> None:
    cid, note = rig.extra["credit_note"], rig.extra["note"]
    exc = await rig.one(RULE, lambda e: e.object_id == cid)
    cn = rig.env.dataset.billing.credit_notes[cid]
    rates = rig.env.dataset.billing.tax_rates
    conn = erp(rig)
    [rate] = {str(ln.tax_rate) for ln in cn.lines}
    other = next(t for r, t in sorted(conn.conn.tax_map.items()) if rates[r].percentage != rates[rate].percentage)
    conn.conn.tax_map = {**conn.conn.tax_map, rate: other}  # a wrong mapping: the ERP computes another tax
    plan = await rig.service.plan(ActionRequest(ActionKind.CORRECT, exc.id, reason="the ERP credited too much"))
    assert plan.ok, plan.explanation
    before, before_totals = note_lines(rig, note), await totals(rig, note)
    result = await rig.service.execute(plan)
    assert result.status is ActionStatus.FAILED and "previous lines were put back" in result.message, result.message
    assert note_lines(rig, note) == before and await totals(rig, note) == before_totals


async def test_a_posted_erp_credit_note_is_never_corrected_in_place(rig: Rig) -> None:
    exc = await rig.one(RULE, lambda e: next(s for s in e.sides if s.system is System.ERP).values["state"]
                        in ("posted", "paid"))
    verdicts = {k: (ok, why) for k, ok, why in rig.service.allowed_actions(exc)}
    ok, why = verdicts[ActionKind.CORRECT]
    assert not ok and "a posted credit note is never edited in place; flag it for review" in why
    assert verdicts[ActionKind.FLAG] == (True, "")
    state = {m: dict(rig.env.dataset.erp.tables[m]) for m in ("account.invoice", "account.invoice.line")}
    result = await rig.service.execute(await rig.service.plan(
        ActionRequest(ActionKind.CORRECT, exc.id, reason="the ERP credited too much")))
    assert result.status is ActionStatus.REFUSED and "never edited in place" in result.message
    assert {m: dict(rig.env.dataset.erp.tables[m]) for m in ("account.invoice", "account.invoice.line")} == state
