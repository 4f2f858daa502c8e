"""Taxed and discounted invoices are posted to the ERP as billed (G1 item 5), on the demo servers
over loopback: an ERP copy deleted from the ERP (an ``invoice.missing_in_erp``) is retried from
billing's lines net of their discount, each with the ERP tax its billing rate maps to (the
profile's ``tax_map``, which the demo's profile derives from the demo company), and the ERP copy
equals billing's untaxed amount, tax and total to the cent — an EU VAT invoice, an EU reverse
charge one, a US sales tax one, a discounted one, and one whose tax the ERP's half-even rounding
computes a cent apart (kept as billed by a manual invoice tax). A rate the profile does not map
is refused in preflight, naming it, and nothing is written."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from services.actions.model import ActionKind, ActionRequest, ActionStatus
from services.actions.steps import PostInvoice
from services.core.currency import format_money
from services.core.domain import System
from services.demo.environment import DemoEnvironment
from services.demo.generator.erp_taxes import ROUNDING_SUFFIX
from services.demo.store import BInvoice
from services.engine import RefreshMode
from services.io.connectors.tryton import TrytonConnector
from tests.services.actions_rig import Rig, make_rig

#: what each victim is: a predicate on (billing invoice, its rates' kinds, its ERP copy rounds as billed)
KINDS: dict[str, Callable[[BInvoice, set[tuple[str, bool]], bool], bool]] = {
    "eu_vat": lambda inv, kinds, rounded: kinds == {("vat", False)} and inv.currency == "eur"
    and not inv.discount_total and not rounded,
    "reverse_charge": lambda inv, kinds, rounded: kinds == {("vat", True)} and not inv.discount_total,
    "us_sales_tax": lambda inv, kinds, rounded: kinds == {("sales_tax", False)} and not inv.discount_total
    and not rounded,
    "discounted": lambda inv, kinds, rounded: bool(inv.discount_total) and bool(kinds) and not rounded,
    "rounding": lambda inv, kinds, rounded: rounded and not inv.discount_total,
}


def _rate_kinds(env: DemoEnvironment, inv: BInvoice) -> set[tuple[str, bool]]:
    rates = env.dataset.billing.tax_rates
    return {(rates[ln.tax_rate].tax_type, Decimal(rates[ln.tax_rate].percentage) == 0)
            for ln in inv.lines if ln.tax_rate is not None}


def _one_rate_customer(env: DemoEnvironment, customer: str) -> bool:
    """Every billing invoice of the customer carries one and the same rate: its ERP party's tax
    rule proposes that tax, so posting raises no "taxes are not the product's" warning."""
    billing = env.dataset.billing
    rates = {ln.tax_rate for iid in billing.invoices_by_customer.get(customer, ())
             for ln in billing.invoices[iid].lines}
    return len(rates) == 1 and None not in rates


def delete_taxed_copies(env: DemoEnvironment) -> dict[str, str]:
    """Delete one posted ERP copy of each kind of taxed billing invoice (its lines and invoice
    taxes too): each becomes an ``invoice.missing_in_erp``. Answers kind -> billing invoice id."""
    erp, billing = env.dataset.erp, env.dataset.billing
    table = erp.tables["account.invoice"]
    inv_taxes = erp.tables["account.invoice.tax"]
    # a rounding cent kept as billed (not a planted mismatch, whose difference is kept the same way)
    rounded = {r["invoice"] for r in inv_taxes.values()
               if str(r["description"]).endswith(ROUNDING_SUFFIX) and abs(r["amount"]) == Decimal("0.01")}
    victims: dict[str, str] = {}
    for rid, rec in sorted(table.items()):
        ref = rec.get("reference") or ""
        binv = billing.invoices.get(ref)
        if (rec.get("state") not in ("posted", "paid") or binv is None or binv.status not in ("open", "paid")
                or binv.total <= 0 or len(erp.lookup("account.invoice", "reference", ref)) != 1
                or not _one_rate_customer(env, binv.customer)):
            continue
        kind = next((k for k, fits in KINDS.items()
                     if k not in victims and fits(binv, _rate_kinds(env, binv), rid in rounded)), None)
        if kind is None:
            continue
        for line in list(erp.lookup("account.invoice.line", "invoice", rid)):
            erp.delete("account.invoice.line", line)
        for tax in list(erp.lookup("account.invoice.tax", "invoice", rid)):
            erp.delete("account.invoice.tax", tax)
        erp.delete("account.invoice", rid)
        victims[kind] = ref
    assert set(victims) == set(KINDS), f"only {sorted(victims)} found in the demo"
    return victims


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    victims: dict[str, str] = {}
    r = await make_rig(tmp_path, before_start=lambda env: victims.update(delete_taxed_copies(env)))
    r.extra["victims"] = victims
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


def billed(rig: Rig, ref: str) -> tuple[Decimal, Decimal, Decimal, str]:
    """Billing's untaxed amount, tax and total (major units) and currency, from the demo's store."""
    inv = rig.env.dataset.billing.invoices[ref]
    cent = Decimal("0.01")
    return (Decimal(inv.subtotal - inv.discount_total) * cent, Decimal(inv.tax or 0) * cent,
            Decimal(inv.total) * cent, inv.currency.upper())


async def test_each_taxed_invoice_deleted_from_the_erp_is_posted_again_to_the_cent(rig: Rig) -> None:
    victims: dict[str, str] = rig.extra["victims"]
    tax_map = erp(rig).conn.tax_map
    for kind, ref in victims.items():
        exc = await rig.one("invoice.missing_in_erp", lambda e, ref=ref: e.object_id == ref)
        plan = await rig.service.plan(ActionRequest(ActionKind.RETRY, exc.id))
        assert plan.ok, (kind, plan.explanation)
        [step] = plan.steps
        assert isinstance(step, PostInvoice) and step.line_taxes is not None and step.expected is not None
        binv = rig.env.dataset.billing.invoices[ref]
        # each line carries the ERP tax of its billing rate, mapped by the profile
        assert step.line_taxes == tuple((tax_map[ln.tax_rate],) for ln in binv.lines), kind
        untaxed, tax, total, currency = billed(rig, ref)
        assert (step.expected.untaxed, step.expected.tax, step.expected.total) == (str(untaxed), str(tax), str(total))
        # lines net of the discount
        assert sum((Decimal(q) * Decimal(u) for _, q, u, _ in step.lines), Decimal(0)) == untaxed, kind
        # the preview shows each line with its tax, and the totals
        assert sum(1 for n in plan.notes if n.startswith("line ")) == len(binv.lines), plan.notes
        assert f"totals: untaxed {format_money(untaxed, currency)}, tax {format_money(tax, currency)}, total " \
            f"{format_money(total, currency)}" in "\n".join(plan.notes), plan.notes
        creates = [c for c in plan.calls if c.body["method"] == "model.account.invoice.create"]
        assert [ln["taxes"] for ln in creates[0].body["params"][0][0]["lines"][0][1]] == [
            [["add", list(ids)]] for ids in step.line_taxes]
        result = await rig.service.execute(plan)
        assert result.status is ActionStatus.SUCCEEDED and result.verified, (kind, result.message)
        [copy] = rig.live_erp_invoices(ref)
        assert copy["state"] == "posted" and copy["currency"] is not None
        inv = await erp(rig).get_invoice(copy["id"])
        assert inv.net is not None and inv.tax is not None
        assert (inv.net.amount, inv.tax.amount, inv.total.amount, inv.total.currency) == (
            untaxed, tax, total, currency), kind
        manual = [r for r in rig.env.dataset.erp.tables["account.invoice.tax"].values()
                  if r["invoice"] == copy["id"] and r.get("manual")]
        if kind == "rounding":
            [kept] = manual
            assert str(kept["description"]).endswith(ROUNDING_SUFFIX) and abs(kept["amount"]) == Decimal("0.01")
        else:
            assert manual == [], kind
    await refresh(rig)
    left = {(e.rule, e.object_id) for e in await rig.engine.open_exceptions()}
    for ref in victims.values():
        assert not {r for r, o in left if o == ref} & {
            "invoice.missing_in_erp", "invoice.amount_mismatch", "invoice.tax_mismatch",
            "invoice.currency_mismatch"}, ref


async def test_an_unmapped_tax_rate_is_refused_in_preflight_naming_it_and_nothing_is_written(rig: Rig) -> None:
    ref = rig.extra["victims"]["eu_vat"]
    binv = rig.env.dataset.billing.invoices[ref]
    [rate] = {ln.tax_rate for ln in binv.lines}
    conn = erp(rig)
    # a profile whose tax_map lacks the rate
    conn.conn.tax_map = {k: v for k, v in conn.conn.tax_map.items() if k != rate}
    exc = await rig.one("invoice.missing_in_erp", lambda e: e.object_id == ref)
    before = {m: dict(t) for m, t in rig.env.dataset.erp.tables.items()
              if m in ("account.invoice", "account.invoice.line", "account.invoice.tax")}
    plan = await rig.service.plan(ActionRequest(ActionKind.RETRY, exc.id))
    assert not plan.ok
    [failed] = [c for c in plan.checks if not c.ok]
    assert failed.name == "tax" and rate in failed.detail and "tax_map" in failed.detail
    assert plan.steps == []
    result = await rig.service.execute(plan)
    assert result.status is ActionStatus.REFUSED and rate in result.message
    after: dict[str, Any] = {m: dict(t) for m, t in rig.env.dataset.erp.tables.items() if m in before}
    assert after == before and rig.live_erp_invoices(ref) == []
