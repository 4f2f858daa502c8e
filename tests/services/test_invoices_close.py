"""Invoices close only when the fix is real (G8.4, G6.5), on the demo servers over loopback:

- a bulk fix whose postings fail leaves each exception open with "last attempt failed"; the
  drafts the failures left raise ``invoice.not_posted_in_erp`` (carrying that failure), and its
  *post* fix closes them; *delete draft and re-post* does it from billing's lines;
- a bulk of postings of different dates runs oldest first, so the ERP's strict invoice sequence
  refuses none;
- a *paid* ERP invoice whose amount differs is credited (without refund, as the ERP credits a
  paid one) and re-posted: the copy totals billing's to the cent;
- a flag shows who flagged it, when and why, after a restart too;
- a fix the rule offers that can never pass for an exception is offered greyed with why.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from services.actions.model import ActionKind, ActionRequest, ActionStatus
from services.core.domain import Severity, Side, SyncException, System, Team
from services.demo.environment import DemoEnvironment
from services.engine import RefreshMode
from services.io.connectors.tryton import TrytonConnector
from tests.services.actions_rig import FINANCE, Rig, make_rig


async def refresh(rig: Rig) -> None:
    report = await rig.engine.refresh(RefreshMode.FULL)
    assert report.ok, [o.error_text for o in report.failed]
    await rig.engine.reconcile()


def erp_table(rig: Rig) -> dict[int, dict[str, Any]]:
    return rig.env.dataset.erp.tables["account.invoice"]


async def erp_total(rig: Rig, invoice_id: int) -> Decimal:
    """An ERP invoice's total as the ERP answers it (computed from its lines)."""
    conn = rig.engine.connectors[System.ERP]
    assert isinstance(conn, TrytonConnector)
    return (await conn.get_invoice(invoice_id)).total.amount


def latest_posted(env: DemoEnvironment) -> date:
    return max(r["invoice_date"] for r in env.dataset.erp.tables["account.invoice"].values()
               if r.get("state") in ("posted", "paid") and r.get("type") == "out")


def delete_newest_posted(env: DemoEnvironment, days: int) -> list[str]:
    """Delete every numbered ERP invoice of the ``days`` newest invoice dates: the billing
    invoices they copied become ``invoice.missing_in_erp`` whose billing dates are not before any
    invoice the ERP still numbers (so each retry keeps its own date). Answers their ids."""
    erp, billing = env.dataset.erp, env.dataset.billing
    table = erp.tables["account.invoice"]
    dates = sorted({r["invoice_date"] for r in table.values() if r.get("number")}, reverse=True)[:days]
    victims: list[str] = []
    for rid, rec in sorted(table.items()):
        if not rec.get("number") or rec["invoice_date"] not in dates:
            continue
        ref = rec.get("reference") or ""
        binv = billing.invoices.get(ref)
        if binv is not None and binv.status in ("open", "paid") and binv.total > 0:
            victims.append(ref)
        for line in list(erp.lookup("account.invoice.line", "invoice", rid)):
            erp.delete("account.invoice.line", line)
        for tax in list(erp.lookup("account.invoice.tax", "invoice", rid)):
            erp.delete("account.invoice.tax", tax)
        erp.delete("account.invoice", rid)
    return victims


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    r = await make_rig(tmp_path)
    yield r
    await r.close()


# -- G8.4: a failed fix never makes its exception vanish -------------------------------------
async def test_failed_bulk_postings_stay_open_then_not_posted_then_post_closes_them(rig: Rig) -> None:
    missing = await rig.open_of("invoice.missing_in_erp")
    assert len(missing) >= 2
    # dated before the ERP's latest posted invoice: the strict sequence refuses them, after the
    # create committed (the draft stays), as in the reported bulk
    too_early = (latest_posted(rig.env) - timedelta(days=3)).isoformat()
    reqs = [ActionRequest(ActionKind.RETRY, e.id, value={"invoice_date": too_early}) for e in missing]
    result = await rig.service.bulk(reqs)
    assert [r.status for r in result.results] == [ActionStatus.FAILED] * len(missing), \
        [r.message for r in result.results]
    assert all("must set an invoice date after" in r.message for r in result.results)
    drafts = {e.object_id: rig.live_erp_invoices(e.object_id) for e in missing}
    assert all(len(d) == 1 and d[0]["state"] == "draft" for d in drafts.values()), drafts

    # still open, with the failure beside it
    for exc in missing:
        again = await rig.engine.exception(exc.id)
        assert again is not None and again.is_open
        assert again.last_failure is not None and "must set an invoice date after" in again.last_failure.text
        assert again.last_failure.actor == FINANCE.name and again.last_failure.action == "retry"

    # the next reconcile: the drafts make the invoices present, so each becomes not-posted, and
    # the failed retry is shown on it (with the rule it was taken on)
    await refresh(rig)
    assert {e.object_id for e in await rig.open_of("invoice.missing_in_erp")} & set(drafts) == set()
    not_posted = {e.object_id: e for e in await rig.open_of("invoice.not_posted_in_erp")}
    assert set(drafts) <= set(not_posted)
    for ref in drafts:
        exc = not_posted[ref]
        assert exc.severity is Severity.HIGH and exc.owner is Team.FINANCE
        assert exc.last_failure is not None and exc.last_failure.rule == "invoice.missing_in_erp"
        assert "must set an invoice date after" in exc.last_failure.text

    # post: the drafts are dated for the sequence and posted, oldest billing date first
    posts = [ActionRequest(ActionKind.POST, not_posted[ref].id) for ref in drafts]
    done = await rig.service.bulk(posts)
    assert [(r.status, r.verified) for r in done.results] == [(ActionStatus.SUCCEEDED, True)] * len(posts), \
        [r.message for r in done.results]
    for ref, [draft] in drafts.items():
        [live] = rig.live_erp_invoices(ref)
        assert live["id"] == draft["id"] and live["state"] == "posted" and live["number"]
        closed = await rig.engine.exception(not_posted[ref].id)
        assert closed is not None and not closed.is_open
    await refresh(rig)
    # (a paid one is now posted but unpaid in the ERP: invoice.payment_state, another story)
    left = {(e.rule, e.object_id) for e in await rig.engine.open_exceptions() if e.object_id in drafts}
    assert {rule for rule, _ in left} <= {"invoice.payment_state"}, left


async def test_delete_draft_and_repost_is_idempotent(rig: Rig) -> None:
    exc = await rig.one("invoice.not_posted_in_erp", lambda e: any(
        s.system is System.ERP and s.values.get("state") == "validated" for s in e.sides))
    [draft] = rig.live_erp_invoices(exc.object_id)
    allowed = {k: ok for k, ok, _ in rig.service.allowed_actions(exc)}
    assert allowed == {ActionKind.POST: True, ActionKind.REPOST: True, ActionKind.ACCEPT: True}
    refused = await rig.service.plan(ActionRequest(ActionKind.REPOST, exc.id))
    assert not refused.ok and "needs a reason" in refused.explanation
    plan = await rig.service.plan(ActionRequest(ActionKind.REPOST, exc.id, reason="the draft was validated by hand"))
    assert plan.ok, plan.explanation
    assert [c.path for c in plan.calls] and any("delete" in c.body["method"] for c in plan.calls)
    result = await rig.service.execute(plan)
    assert result.status is ActionStatus.SUCCEEDED and result.verified, result.message
    assert draft["id"] not in erp_table(rig), "the draft is deleted"
    [posted] = rig.live_erp_invoices(exc.object_id)
    binv = rig.env.dataset.billing.invoices[exc.object_id]
    assert posted["state"] == "posted" and await erp_total(rig, posted["id"]) == Decimal(binv.total) / 100
    # the same steps again (a crash before the outcome was recorded): nothing deleted, nothing new
    from services.actions.outbox import _work_from_row

    row = rig.service._row(result.action_id)
    await rig.service._perform(_work_from_row(row))
    assert rig.live_erp_invoices(exc.object_id) == [posted]


# -- bulk posting runs oldest invoice date first ------------------------------------------------
@pytest.fixture
async def dated_rig(tmp_path: Path) -> AsyncIterator[Rig]:
    victims: list[list[str]] = []
    r = await make_rig(tmp_path, before_start=lambda env: victims.append(delete_newest_posted(env, 5)))
    r.extra["victims"] = victims[0]
    yield r
    await r.close()


async def test_bulk_posts_several_dates_oldest_first_with_no_refusal(dated_rig: Rig) -> None:
    rig = dated_rig
    victims: list[str] = rig.extra["victims"]
    by_object = {e.object_id: e for e in await rig.open_of("invoice.missing_in_erp")}
    assert set(victims) <= set(by_object)
    # every missing invoice, the newest date first in the request: the older planted ones (dated
    # today: the sequence is later than their billing date), then the victims newest first
    reqs = [ActionRequest(ActionKind.RETRY, e.id) for ref, e in by_object.items() if ref not in victims]
    reqs += [ActionRequest(ActionKind.RETRY, by_object[ref].id) for ref in reversed(victims)]
    plans = [await rig.service.plan(r) for r in reqs]
    dates = [p.expected_after["erp"]["invoice_date"] for p in plans]
    assert len(set(dates)) >= 4, dates
    result = await rig.service.bulk(reqs)
    assert [r.status for r in result.results] == [ActionStatus.SUCCEEDED] * len(reqs), \
        [r.message for r in result.results]
    posted = sorted((rig.live_erp_invoices(e.object_id)[0] for e in by_object.values()), key=lambda r: r["number"])
    assert [r["invoice_date"] for r in posted] == sorted(r["invoice_date"] for r in posted), \
        "numbers follow invoice dates"
    assert await rig.open_of("invoice.missing_in_erp") == []


# -- G6.5: a paid ERP invoice whose amount differs is credited and re-posted ----------------
async def test_paid_amount_mismatch_is_credited_without_refund_and_reposted(rig: Rig) -> None:
    exc = await rig.one("invoice.amount_mismatch", lambda e: any(
        s.system is System.ERP and s.values.get("state") == "paid" for s in e.sides))
    [original] = rig.live_erp_invoices(exc.object_id)
    binv = rig.env.dataset.billing.invoices[exc.object_id]
    plan = await rig.service.plan(ActionRequest(ActionKind.CREDIT_REPOST, exc.id, reason="paid with a wrong amount"))
    assert plan.ok, plan.explanation
    result = await rig.service.execute(plan)
    assert result.status is ActionStatus.SUCCEEDED and result.verified, result.message
    table = erp_table(rig)
    original = table[original["id"]]
    assert original["state"] == "paid", "a paid invoice keeps its payment"
    origins = {f"account.invoice.line,{lid}" for lid in original["lines"]}
    notes = {ln["invoice"] for ln in rig.env.dataset.erp.tables["account.invoice.line"].values()
             if ln.get("origin") in origins}
    [note] = [table[i] for i in notes]
    assert note["state"] == "posted" and note["sequence_type_cache"] == "credit_note"
    assert original["reference"] == f"credited: {exc.object_id} by {note['number']}"
    [copy] = rig.live_erp_invoices(exc.object_id)
    billing_total = Decimal(binv.total) / 100
    totals = [await erp_total(rig, i["id"]) for i in (original, note, copy)]
    assert copy["state"] == "posted" and totals[2] == billing_total
    # to the cent: what the ERP holds for this billing invoice, credit note included, is billing's
    assert totals[1] == -totals[0] and sum(totals) == billing_total
    await refresh(rig)
    left = {e.rule for e in await rig.engine.open_exceptions() if e.object_id in (exc.object_id, original["reference"])}
    assert "invoice.amount_mismatch" not in left and "invoice.duplicate_in_erp" not in left
    assert "invoice.orphan_in_erp" not in left
    # repeated (as after a crash): no second credit note, no second copy
    from services.actions.outbox import _work_from_row

    await rig.service._perform(_work_from_row(rig.service._row(result.action_id)))
    assert rig.live_erp_invoices(exc.object_id) == [copy]
    assert len({ln["invoice"] for ln in rig.env.dataset.erp.tables["account.invoice.line"].values()
                if ln.get("origin") in origins}) == 1


# -- flags: by whom, when, why; kept across a restart --------------------------------------------
async def test_a_flag_shows_who_when_why_and_survives_a_restart(rig: Rig) -> None:
    exc = await rig.one("invoice.payment_state")
    plan = await rig.service.plan(ActionRequest(ActionKind.FLAG, exc.id, reason="customer disputes the charge"))
    result = await rig.service.execute(plan)
    assert result.status is ActionStatus.SUCCEEDED
    await rig.reopen()
    await refresh(rig)
    flagged = await rig.engine.exception(exc.id)
    assert flagged is not None and flagged.is_open and flagged.flagged is not None
    assert (flagged.flagged.actor, flagged.flagged.role, flagged.flagged.text) == (
        FINANCE.name, "finance", "customer disputes the charge")
    assert flagged.flagged.at == rig.env.now() or flagged.flagged.at <= rig.env.now()
    assert flagged.flagged.action_id == result.action_id
    # auditable: the flag's audit entry is the action named by the mark
    rows = [r for r in rig.audit_rows() if r["action_id"] == result.action_id]
    assert [(r["phase"], r["outcome"], r["reason"]) for r in rows] == [
        ("intent", "pending", "customer disputes the charge"), ("outcome", "succeeded", "customer disputes the charge")]


# -- every offered fix can be carried out, or is greyed with why -----------------------------
def _exc(rule: str, sides: list[Side]) -> SyncException:
    from datetime import UTC, datetime

    now = datetime(2026, 1, 1, tzinfo=UTC)
    return SyncException(id=f"{rule}:x", rule=rule, severity=Severity.HIGH, owner=Team.FINANCE if rule.startswith(
        ("invoice", "customer.unmapped_erp")) else Team.SUPPORT, customer_id="cus_1", object_id="x", summary="s",
        sides=sides, first_seen=now, last_seen=now)


@pytest.mark.parametrize(("rule", "kind", "sides", "why"), [
    ("customer.unmapped_erp", ActionKind.LINK,
     [Side(System.BILLING, None, {}), Side(System.ERP, None, {"party": None, "candidates": []})], "nothing to link"),
    ("entitlement.missing", ActionKind.PUSH,
     [Side(System.BILLING, None, {"plans": ["x"], "tier": None}), Side(System.SUPPORT, None, {"tier": None})],
     "no tier to push"),
    ("invoice.amount_mismatch", ActionKind.CREDIT_REPOST,
     [Side(System.BILLING, None, {"status": "void"}),
      Side(System.ERP, __import__("services.core.domain", fromlist=["ExternalRef"]).ExternalRef(
          System.ERP, "account.invoice", "5"), {"state": "posted", "number": "INV-1"})], "billing voided"),
])
def test_a_fix_that_can_never_pass_is_greyed_with_why(rule: str, kind: ActionKind, sides: list[Side],
                                                      why: str) -> None:
    from services.actions.model import Operator, Role
    from services.actions.roles import allowed_actions_for

    exc = _exc(rule, sides)
    operator = Operator("ann", Role.FINANCE if exc.owner is Team.FINANCE else Role.SUPPORT)
    verdicts = {k: (ok, text) for k, ok, text in allowed_actions_for(exc, operator)}
    assert verdicts[kind][0] is False and why in verdicts[kind][1]
    assert verdicts[ActionKind.ACCEPT] == (True, "")
