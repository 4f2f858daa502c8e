"""The typed action steps (services/actions/steps.py, step_handlers.py): every kind reads the dict
format the outbox has always stored and writes it back unchanged, an unknown or malformed step is
a clear error, every kind has a handler, and an outbox row in that format replays against the
demo servers (an unreadable row fails on its own without stopping the replay of the others)."""

from __future__ import annotations

import json
import re
import sqlite3
import uuid
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from services.actions.model import ActionKind, ActionRequest, ActionStatus
from services.actions.outbox import _work_from_row
from services.actions.step_handlers import HANDLERS, Connections, Written
from services.actions.steps import (
    KEEP,
    STEP_TYPES,
    AcceptDifference,
    CancelInvoice,
    CreateOrg,
    CreditRepost,
    EnsureParty,
    ExpectedTotals,
    FlagForReview,
    LinkOrg,
    LinkParty,
    PostCreditNote,
    PostDraft,
    PostInvoice,
    ReplaceCreditLines,
    ReplaceLines,
    RepostInvoice,
    SetOrgFields,
    Step,
    StepFormatError,
    StepLine,
    UpdateCustomer,
    UpdateOrg,
    WriteSubscription,
    step_from_json,
    step_systems,
)
from services.core.domain import System
from services.core.errors import SyncDeskError
from services.engine import RefreshMode
from tests.services.actions_rig import FINANCE, Rig, make_rig

LINES = [["pro_monthly", "3", "49.00", "Pro (monthly) x 3"], ["support_addon", "1", "120.50", "Support add-on"]]


def lines(*rows: list[str]) -> tuple[StepLine, ...]:
    return tuple((code, qty, unit, desc) for code, qty, unit, desc in rows)


#: (stored dict exactly as the outbox has held it since steps were introduced, the typed step it is)
STORED: list[tuple[dict[str, Any], Step]] = [
    ({"op": "erp.post_invoice", "system": "erp", "billing_invoice_id": "in_1A", "party_id": 42, "currency": "EUR",
      "invoice_date": "2026-05-01", "lines": LINES},
     PostInvoice("in_1A", 42, "EUR", "2026-05-01", lines(*LINES))),
    ({"op": "erp.post_invoice", "system": "erp", "billing_invoice_id": "in_1B", "party_id": 7, "currency": "USD",
      "invoice_date": "2026-05-02", "lines": LINES[:1], "acknowledge": "invoice_date_in_the_past_7"},
     PostInvoice("in_1B", 7, "USD", "2026-05-02", lines(LINES[0]), "invoice_date_in_the_past_7")),
    # G1: a taxed posting: each line's ERP taxes and billing's totals (absent above: old rows replay untaxed)
    ({"op": "erp.post_invoice", "system": "erp", "billing_invoice_id": "in_1T", "party_id": 7, "currency": "EUR",
      "invoice_date": "2026-05-02", "lines": LINES, "line_taxes": [[12], []],
      "expected": {"untaxed": "267.50", "tax": "27.93", "total": "295.43"}},
     PostInvoice("in_1T", 7, "EUR", "2026-05-02", lines(*LINES), None, ((12,), ()),
                 ExpectedTotals("267.50", "27.93", "295.43"))),
    ({"op": "erp.post_draft", "system": "erp", "invoice_id": 40, "billing_invoice_id": "in_1D",
      "invoice_date": None},
     PostDraft(40, "in_1D", None)),
    ({"op": "erp.post_draft", "system": "erp", "invoice_id": 41, "billing_invoice_id": "in_1E",
      "invoice_date": "2026-05-03", "acknowledge": "w2"},
     PostDraft(41, "in_1E", "2026-05-03", "w2")),
    ({"op": "erp.repost_invoice", "system": "erp", "invoice_id": 42, "billing_invoice_id": "in_1F", "party_id": 7,
      "currency": "USD", "invoice_date": "2026-05-04", "lines": LINES[:1]},
     RepostInvoice(42, "in_1F", 7, "USD", "2026-05-04", lines(LINES[0]))),
    ({"op": "erp.repost_invoice", "system": "erp", "invoice_id": 43, "billing_invoice_id": "in_1G", "party_id": 7,
      "currency": "USD", "invoice_date": "2026-05-04", "lines": LINES[:1], "acknowledge": "w3",
      "line_taxes": [[3, 4]], "expected": {"untaxed": "147.00", "tax": "9.19", "total": "156.19"}},
     RepostInvoice(43, "in_1G", 7, "USD", "2026-05-04", lines(LINES[0]), "w3", ((3, 4),),
                   ExpectedTotals("147.00", "9.19", "156.19"))),
    ({"op": "erp.ensure_party", "system": "erp", "customer_id": "cus_9", "name": "Acme GmbH", "tax_id": "DE123",
      "country": "DE", "email": "billing@acme.example"},
     EnsureParty("cus_9", "Acme GmbH", "DE123", "DE", "billing@acme.example")),
    ({"op": "erp.ensure_party", "system": "erp", "customer_id": "cus_10", "name": "Solo", "tax_id": None,
      "country": None, "email": None},
     EnsureParty("cus_10", "Solo", None, None, None)),
    ({"op": "erp.link_party", "system": "erp", "party_id": 12, "customer_id": "cus_9"}, LinkParty(12, "cus_9")),
    ({"op": "erp.replace_lines", "system": "erp", "invoice_id": 31, "currency": "EUR", "lines": LINES},
     ReplaceLines(31, "EUR", lines(*LINES))),
    # G1: a draft copy corrected with billing's mapped taxes and totals (tax, currency, proration mismatches)
    ({"op": "erp.replace_lines", "system": "erp", "invoice_id": 36, "currency": "GBP", "lines": LINES[1:],
      "line_taxes": [[9]], "expected": {"untaxed": "120.50", "tax": "24.10", "total": "144.60"}},
     ReplaceLines(36, "GBP", lines(LINES[1]), ((9,),), ExpectedTotals("120.50", "24.10", "144.60"))),
    # G1: a draft ERP credit note corrected (credit_note.amount_mismatch)
    ({"op": "erp.replace_credit_lines", "system": "erp", "note_id": 37, "invoice_id": 31, "currency": "EUR",
      "lines": [[0, "Pro (monthly) x 3", "1", "40.00", "Pro (monthly) x 3"]], "line_taxes": [[12]],
      "expected": {"untaxed": "-40.00", "tax": "-7.60", "total": "-47.60"}},
     ReplaceCreditLines(37, 31, "EUR", ((0, "Pro (monthly) x 3", "1", "40.00", "Pro (monthly) x 3"),), ((12,),),
                        ExpectedTotals("-40.00", "-7.60", "-47.60"))),
    ({"op": "erp.credit_repost", "system": "erp", "invoice_id": 31, "billing_invoice_id": "in_1A", "party_id": 42,
      "currency": "EUR", "invoice_date": "2026-05-20", "lines": LINES},
     CreditRepost(31, "in_1A", 42, "EUR", "2026-05-20", lines(*LINES))),
    ({"op": "erp.credit_repost", "system": "erp", "invoice_id": 32, "billing_invoice_id": "in_1C", "party_id": 42,
      "currency": "EUR", "invoice_date": "2026-05-20", "lines": LINES[1:], "acknowledge": "w1"},
     CreditRepost(32, "in_1C", 42, "EUR", "2026-05-20", lines(LINES[1]), "w1")),
    ({"op": "erp.credit_repost", "system": "erp", "invoice_id": 34, "billing_invoice_id": "in_1H", "party_id": 42,
      "currency": "EUR", "invoice_date": "2026-05-20", "lines": LINES[1:], "line_taxes": [[9]],
      "expected": {"untaxed": "120.50", "tax": "0.00", "total": "120.50"}},
     CreditRepost(34, "in_1H", 42, "EUR", "2026-05-20", lines(LINES[1]), None, ((9,),),
                  ExpectedTotals("120.50", "0.00", "120.50"))),
    # G1: the ERP credit note of a billing credit note (each line: the credited line's position and description)
    ({"op": "erp.post_credit_note", "system": "erp", "reference": "cn_1A", "invoice_id": 31, "currency": "EUR",
      "invoice_date": "2026-05-21", "lines": [[0, "Pro (monthly) x 3", "1", "40.00", "Pro (monthly) x 3"]],
      "line_taxes": [[12]], "expected": {"untaxed": "-40.00", "tax": "-7.60", "total": "-47.60"}},
     PostCreditNote("cn_1A", 31, "EUR", "2026-05-21", ((0, "Pro (monthly) x 3", "1", "40.00", "Pro (monthly) x 3"),),
                    ((12,),), ExpectedTotals("-40.00", "-7.60", "-47.60"))),
    ({"op": "erp.post_credit_note", "system": "erp", "reference": "re_1B", "invoice_id": 35, "currency": "GBP",
      "invoice_date": None, "lines": [[1, "Support add-on", "1", "120.50", "Support add-on"]], "line_taxes": [[]],
      "acknowledge": "w4"},
     PostCreditNote("re_1B", 35, "GBP", None, ((1, "Support add-on", "1", "120.50", "Support add-on"),), ((),),
                    None, "w4")),
    ({"op": "erp.cancel_invoice", "system": "erp", "invoice_id": 33}, CancelInvoice(33)),
    ({"op": "erp.write_subscription", "system": "erp", "subscription_id": 5, "plan_key": "pro_yearly",
      "quantity": 4, "next_invoice_date": "2026-06-01"},
     WriteSubscription(5, "pro_yearly", 4, "2026-06-01")),
    ({"op": "erp.write_subscription", "system": "erp", "subscription_id": 6, "quantity": 2},
     WriteSubscription(6, quantity=2)),
    # billing's subscription has no plan key while the ERP's has one: the key is written as null
    ({"op": "erp.write_subscription", "system": "erp", "subscription_id": 7, "plan_key": None},
     WriteSubscription(7, plan_key=None)),
    ({"op": "erp.write_subscription", "system": "erp", "subscription_id": 8, "next_invoice_date": "2026-07-01"},
     WriteSubscription(8, next_invoice_date="2026-07-01")),
    ({"op": "billing.update_customer", "system": "billing", "customer_id": "cus_9",
      "fields": {"name": "Acme GmbH", "tax_id": None, "country": "DE"}},
     UpdateCustomer("cus_9", {"name": "Acme GmbH", "tax_id": None, "country": "DE"})),
    ({"op": "support.create_org", "system": "support", "name": "Acme GmbH", "external_id": "cus_9",
      "fields": {"support_tier": "gold"}},
     CreateOrg("Acme GmbH", "cus_9", {"support_tier": "gold"})),
    ({"op": "support.create_org", "system": "support", "name": "Solo", "external_id": "cus_10", "fields": {}},
     CreateOrg("Solo", "cus_10", {})),
    ({"op": "support.link_org", "system": "support", "org_id": 901, "external_id": "cus_9"},
     LinkOrg(901, "cus_9")),
    ({"op": "support.update_org", "system": "support", "org_id": 901, "values": {"name": "Acme GmbH"}},
     UpdateOrg(901, {"name": "Acme GmbH"})),
    ({"op": "support.set_fields", "system": "support", "org_id": 901, "fields": {"support_tier": "silver"}},
     SetOrgFields(901, {"support_tier": "silver"})),
    ({"op": "support.set_fields", "system": "support", "org_id": 902, "fields": {"support_tier": None}},
     SetOrgFields(902, {"support_tier": None})),
    ({"op": "local.accept", "system": None, "fingerprint": "ab" * 32, "expires_at": "2026-08-01T00:00:00.000000+00:00"},
     AcceptDifference("ab" * 32, "2026-08-01T00:00:00.000000+00:00")),
    ({"op": "local.flag", "system": None}, FlagForReview()),
]


def test_every_step_kind_has_a_stored_literal() -> None:
    assert {d["op"] for d, _ in STORED} == set(STEP_TYPES)
    assert len(STEP_TYPES) == 18


@pytest.mark.parametrize(("stored", "typed"), STORED, ids=[f"{d['op']}-{i}" for i, (d, _) in enumerate(STORED)])
def test_stored_step_round_trips(stored: dict[str, Any], typed: Step) -> None:
    # as read back from the outbox: the JSON text the payload holds
    raw = json.loads(json.dumps(stored))
    step = step_from_json(raw)
    assert step == typed and type(step) is type(typed)
    assert step.to_json() == stored
    assert typed.to_json() == stored
    # the key order of today's dicts is kept too (the payload is canonical JSON, so this is cosmetic)
    assert list(typed.to_json()) == list(stored)
    assert step.op == stored["op"]
    assert (step.system.value if step.system else None) == stored["system"]


def test_keep_leaves_the_plan_key_out_and_none_writes_it() -> None:
    assert "plan_key" not in WriteSubscription(6, KEEP, 2).to_json()
    assert WriteSubscription(7, None).to_json()["plan_key"] is None


def test_ids_stored_as_text_are_read_as_integers() -> None:
    step = step_from_json({"op": "erp.link_party", "system": "erp", "party_id": "12", "customer_id": "cus_9"})
    assert step == LinkParty(12, "cus_9")


def test_a_step_is_stored_as_its_dict() -> None:
    step = SetOrgFields(901, {"support_tier": "silver"})
    assert step.to_json() == {"op": "support.set_fields", "system": "support", "org_id": 901,
                              "fields": {"support_tier": "silver"}}


@pytest.mark.parametrize("op", ["erp.frobnicate", "", None, 3])
def test_unknown_op_is_a_clear_error(op: Any) -> None:
    with pytest.raises(StepFormatError, match=re.escape(f"unknown action step {op!r}")):
        step_from_json({"op": op, "system": "erp", "invoice_id": 1})


def test_missing_op_is_a_clear_error() -> None:
    with pytest.raises(StepFormatError, match="unknown action step None"):
        step_from_json({"system": "erp"})


@pytest.mark.parametrize(("raw", "message"), [
    ({"op": "erp.cancel_invoice", "system": "erp"}, "action step erp.cancel_invoice: invoice_id is missing"),
    ({"op": "erp.cancel_invoice", "system": "erp", "invoice_id": "x1"}, "invoice_id is 'x1', not an integer"),
    ({"op": "erp.post_invoice", "system": "erp", "billing_invoice_id": "in_1", "party_id": 1, "currency": "EUR",
      "invoice_date": "2026-01-01", "lines": [["a", "1", "2"]]}, "lines is"),
    ({"op": "billing.update_customer", "system": "billing", "customer_id": "c", "fields": ["name"]},
     "fields is ['name'], not an object"),
    ({"op": "erp.post_invoice", "system": "erp", "billing_invoice_id": "in_1", "party_id": 1, "currency": "EUR",
      "invoice_date": "2026-01-01", "lines": LINES, "line_taxes": [[12]]}, "line_taxes is [[12]], not a list of 2"),
    ({"op": "erp.post_invoice", "system": "erp", "billing_invoice_id": "in_1", "party_id": 1, "currency": "EUR",
      "invoice_date": "2026-01-01", "lines": LINES, "expected": {"untaxed": "1.00", "tax": 0, "total": "1.00"}},
     "expected is {'untaxed': '1.00', 'tax': 0, 'total': '1.00'}, not an object of untaxed, tax and total"),
    ({"op": "local.accept", "system": None, "fingerprint": 5, "expires_at": "x"}, "fingerprint is 5, not a text"),
    ({"op": "erp.post_credit_note", "system": "erp", "reference": "cn_1", "invoice_id": 3, "currency": "EUR",
      "invoice_date": None, "lines": [["0", "a", "1", "2.00", "a"]], "line_taxes": [[]]}, "lines is"),
    ({"op": "erp.post_credit_note", "system": "erp", "reference": "cn_1", "invoice_id": 3, "currency": "EUR",
      "invoice_date": None, "lines": [[0, "a", "1", "2.00", "a"]]}, "line_taxes is missing"),
])
def test_malformed_step_names_the_field(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(StepFormatError, match=re.escape(message)):
        step_from_json(raw)


def test_the_handler_table_covers_every_step_kind() -> None:
    assert set(HANDLERS) == set(STEP_TYPES.values())


async def test_a_handler_refuses_another_kind_of_step() -> None:
    with pytest.raises(TypeError, match=re.escape("the erp.cancel_invoice handler cannot run a erp.link_party step")):
        await HANDLERS[CancelInvoice](Connections({}), LinkParty(1, "c"), "key-0")


async def test_local_steps_write_nothing_and_need_no_connection() -> None:
    for step in (AcceptDifference("f", "2026-01-01T00:00:00+00:00"), FlagForReview()):
        assert await HANDLERS[type(step)](Connections({}), step, "key-0") == []


async def test_a_step_without_its_connection_fails_with_the_system_named() -> None:
    with pytest.raises(SyncDeskError, match="no erp connection is configured"):
        await HANDLERS[CancelInvoice](Connections({}), CancelInvoice(1), "key-0")


def test_written_objects_are_stored_as_lists() -> None:
    assert Written(System.ERP, "invoice", 5).to_json() == ["erp", "invoice", 5]
    assert Written(System.BILLING, "customer", "cus_1").to_json() == ["billing", "customer", "cus_1"]


def test_step_systems_in_first_written_order() -> None:
    steps = [FlagForReview(), UpdateCustomer("c", {}), UpdateOrg(1, {}), UpdateCustomer("c", {})]
    assert step_systems(steps) == [System.BILLING, System.SUPPORT]


def _row(steps: list[dict[str, Any]], **extra: Any) -> SimpleNamespace:
    payload = {"request": {"kind": "push", "exception_id": "customer.master_drift:cus_9", "reason": "", "value": None},
               "exception": {"id": "customer.master_drift:cus_9", "rule": "customer.master_drift",
                             "customer_id": "cus_9"},
               "steps": steps, "calls": [], "before": {}, "expected_after": {}, "verify": True}
    fields = {"action_id": "a1", "idempotency_key": "sd-1", "kind": "push", "exception_id": payload["exception"]["id"],
              "customer_id": "cus_9", "payload": json.dumps(payload), "operator": "ann", "role": "finance",
              "reason": None} | extra
    return SimpleNamespace(**fields)


def test_an_outbox_row_loads_typed_steps() -> None:
    stored = [d for d, _ in STORED if d["op"] in ("billing.update_customer", "support.update_org")]
    work = _work_from_row(_row(stored))
    assert work.unreadable is None
    assert work.steps == [step_from_json(d) for d in stored]
    assert work.target == "billing"
    assert [s.to_json() for s in work.steps] == stored


def test_an_outbox_row_with_an_unknown_step_loads_and_says_why() -> None:
    work = _work_from_row(_row([{"op": "erp.frobnicate", "system": "erp"}]))
    assert work.steps == [] and work.unreadable is not None
    assert str(work.unreadable) == "unknown action step 'erp.frobnicate'"
    assert work.exception_id == "customer.master_drift:cus_9" and work.rule == "customer.master_drift"


# -- rows in the stored format replay against the demo servers --------------------------


def _insert_queued(rig: Rig, *, key: str, kind: ActionKind, exception_id: str, rule: str, customer_id: str | None,
                   steps: list[dict[str, Any]]) -> str:
    """An outbox row as the earlier ``services/actions.py`` wrote it (steps as dict literals), queued."""
    action_id = str(uuid.uuid4())
    now = datetime.now(UTC).isoformat(timespec="microseconds")
    payload = {"request": {"kind": kind.value, "exception_id": exception_id, "reason": "", "value": None},
               "exception": {"id": exception_id, "rule": rule, "customer_id": customer_id},
               "steps": steps, "calls": [], "before": {}, "expected_after": {}, "verify": True}
    con = sqlite3.connect(rig.audit_db)
    try:
        with con:
            con.execute(
                "insert into action_outbox (action_id, idempotency_key, kind, status, operator, role, exception_id, "
                "customer_id, target_system, payload, reason, attempts, last_error, result, created_at, updated_at) "
                "values (?, ?, ?, 'queued', ?, ?, ?, ?, 'erp', ?, null, 0, null, null, ?, ?)",
                (action_id, key, kind.value, FINANCE.name, FINANCE.role.value, exception_id, customer_id,
                 json.dumps(payload, sort_keys=True), now, now))
    finally:
        con.close()
    return action_id


async def test_stored_rows_replay_and_an_unreadable_one_fails_alone(tmp_path: Path) -> None:
    rig = await make_rig(tmp_path)
    try:
        missing = await rig.open_of("invoice.missing_in_erp")
        assert len(missing) >= 2, "the demo has two invoices missing in the ERP"
        first, other = missing[0], missing[1]
        plan = await rig.service.plan(ActionRequest(ActionKind.RETRY, first.id))
        assert plan.ok, plan.explanation
        typed = plan.steps[0]
        assert isinstance(typed, PostInvoice)
        # the step as the earlier version's planner wrote it, built field by field (not by to_json)
        literal = {"op": "erp.post_invoice", "system": "erp", "billing_invoice_id": first.object_id,
                   "party_id": typed.party_id, "currency": typed.currency, "invoice_date": typed.invoice_date,
                   "lines": [list(line) for line in typed.lines]}
        good = _insert_queued(rig, key=plan.idempotency_key, kind=ActionKind.RETRY, exception_id=first.id,
                              rule=first.rule, customer_id=first.customer_id, steps=[literal])
        bad = _insert_queued(rig, key="sd-from-a-newer-version", kind=ActionKind.RETRY, exception_id=other.id,
                             rule=other.rule, customer_id=other.customer_id,
                             steps=[{"op": "erp.post_invoice_v2", "system": "erp", "billing_invoice_id": "x"}])

        results = {r.action_id: r for r in await rig.service.replay_pending()}

        assert set(results) == {good, bad}
        assert results[good].status is ActionStatus.SUCCEEDED and results[good].verified, results[good].message
        posted = rig.live_erp_invoices(first.object_id)
        assert [inv.get("state") for inv in posted] == ["posted"]
        assert results[bad].status is ActionStatus.FAILED
        assert "unknown action step 'erp.post_invoice_v2'" in results[bad].message
        assert rig.live_erp_invoices(other.object_id) == []
        # the unreadable row can still be cancelled
        await rig.service.cancel_pending(bad)
        statuses = {r["action_id"]: r["status"] for r in rig.outbox_rows()}
        assert statuses == {good: "succeeded", bad: "cancelled"}
        # and the fixed exception is gone after the next refresh too
        await rig.engine.refresh(RefreshMode.FULL)
        await rig.engine.reconcile()
        assert first.id not in {e.id for e in await rig.engine.open_exceptions()}
    finally:
        await rig.close()
