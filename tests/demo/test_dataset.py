"""The demo dataset generator: determinism, internal consistency, and — most important — an
independent implementation of the mismatch rules (written from the rule text in
``services/demo/dataset.py``, sharing no code with it) that must find exactly the manifest."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
import unicodedata
from collections import Counter, defaultdict
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.core.currency import exponent, from_minor
from services.demo.dataset import generate, in_flight_items
from services.demo.generator.ground_truth import RULES
from services.demo.generator.seed import SeedParamsError, load_seed_params
from services.demo.store import DemoDataset

ANCHOR = 1_750_000_020 - 1_750_000_020 % 60  # a fixed "now" (2025-06-15)

Finding = tuple[str, str | None, str]

# --------------------------------------------------------------------------------------
# Independent checker
# --------------------------------------------------------------------------------------

ACTIVE = {"trialing", "active", "past_due"}
FINALIZED = {"open", "paid", "void", "uncollectible"}
RANK = {"standard": 1, "premium": 2, "enterprise": 3}


def _name(s: str | None) -> str | None:
    return None if s is None else " ".join(unicodedata.normalize("NFC", s).split())


def _tax(s: str | None) -> str | None:
    if s is None:
        return None
    t = "".join(ch for ch in s.upper() if ch not in " .-")
    return t or None


def _country(s: str | None) -> str | None:
    return None if s is None else s.upper()


def _utc_date(ts: int) -> Any:
    return datetime.fromtimestamp(ts, UTC).date()


def check(ds: DemoDataset, invoice_grace: int = 900, payment_grace: int = 3600) -> set[Finding]:
    A = ds.anchor
    b = ds.billing
    t = ds.erp.tables
    found: set[Finding] = set()

    tier_of_price = {p.id: b.products[p.product].metadata["tier"] for p in b.prices.values()}
    subs_of: dict[str, list[Any]] = defaultdict(list)
    for s in b.subscriptions.values():
        subs_of[s.customer].append(s)
    invs_of: dict[str, list[Any]] = defaultdict(list)
    for inv in b.invoices.values():
        invs_of[inv.customer].append(inv)

    party_by_code: dict[str, dict[str, Any]] = {}
    for pid in sorted(t["party.party"]):
        rec = t["party.party"][pid]
        if rec["code"] and rec["code"] not in party_by_code:
            party_by_code[rec["code"]] = rec
    org_by_ext: dict[str, dict[str, Any]] = {}
    for oid in sorted(ds.support.organizations):
        org = ds.support.organizations[oid]
        if org.get("external_id") and org["external_id"] not in org_by_ext:
            org_by_ext[org["external_id"]] = org
    live_by_ref: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for iid in sorted(t["account.invoice"]):
        rec = t["account.invoice"][iid]
        if rec["type"] == "out" and rec["state"] != "cancelled" and rec["reference"]:
            live_by_ref[rec["reference"]].append(rec)

    # the tax per rate (percentage -> minor units; zero amounts left out) on each side
    taxes_of: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for tid in sorted(t.get("account.invoice.tax", {})):
        taxes_of[t["account.invoice.tax"][tid]["invoice"]].append(t["account.invoice.tax"][tid])

    def minor(rec: dict[str, Any], field: str) -> int:
        """An ERP invoice's amount in minor units of its own currency (JPY: none, KWD: three)."""
        code = t["currency.currency"][rec["currency"]]["code"]
        return int(rec[field].scaleb(exponent(code)))

    def billed_tax(inv: Any) -> dict[Decimal, int]:
        out: dict[Decimal, int] = defaultdict(int)
        for ln in inv.lines:
            if ln.tax_rate is not None:
                out[Decimal(b.tax_rates[ln.tax_rate].percentage).normalize()] += ln.tax_amount
        return {k: v for k, v in out.items() if v}

    def erp_taxes(invoice_id: int) -> dict[Decimal, int]:
        out: dict[Decimal, int] = defaultdict(int)
        code = t["currency.currency"][t["account.invoice"][invoice_id]["currency"]]["code"]
        for x in taxes_of[invoice_id]:
            out[(t["account.tax"][x["tax"]]["rate"] * 100).normalize()] += int(x["amount"].scaleb(exponent(code)))
        return {k: v for k, v in out.items() if v}

    def lacks_prorations(inv: Any, rec: dict[str, Any]) -> bool:
        """5d: the copy's untaxed amount is billing's net without one or more of its proration
        lines (the net of a line: amount less discount), and differs from billing's."""
        nets = [ln.amount - ln.discount_amount for ln in inv.lines if ln.proration]
        billed = sum(ln.amount - ln.discount_amount for ln in inv.lines)
        booked = minor(rec, "untaxed_amount")
        if not nets or booked == billed:
            return False
        sums = {0}
        for n in nets:
            sums |= {x + n for x in sums}
        return any(billed - x == booked for x in sums - {0})

    def active_subs(cid: str) -> list[Any]:
        return [s for s in subs_of[cid] if s.status in ACTIVE]

    # 1, 2, 3
    for cid, c in b.customers.items():
        act = active_subs(cid)
        has_final = any(i.status in FINALIZED for i in invs_of[cid])
        party = party_by_code.get(cid)
        if (act or has_final) and party is None:
            found.add(("customer.unmapped_erp", cid, cid))
        if act and cid not in org_by_ext:
            found.add(("customer.unmapped_support", cid, cid))
        if party is not None:
            idents = sorted(i for i in t["party.identifier"] if t["party.identifier"][i]["party"] == party["id"])
            addrs = sorted(a for a in t["party.address"] if t["party.address"][a]["party"] == party["id"])
            erp_tax = t["party.identifier"][idents[0]]["code"] if idents else None
            erp_country = None
            if addrs and t["party.address"][addrs[0]]["country"] is not None:
                erp_country = t["country.country"][t["party.address"][addrs[0]]["country"]]["code"]
            org = org_by_ext.get(cid)
            if (_name(c.name) != _name(party["name"]) or _tax(c.tax_id) != _tax(erp_tax)
                    or _country(c.country) != _country(erp_country)
                    or (org is not None and _name(org["name"]) != _name(party["name"]))):
                found.add(("customer.master_drift", cid, cid))

    # 4 - 7
    for inv in b.invoices.values():
        if inv.status not in FINALIZED:
            continue
        live = live_by_ref.get(inv.id, [])
        mapped = inv.customer in party_by_code
        if (not live and inv.status != "void" and inv.total > 0 and inv.finalized_at is not None
                and A - inv.finalized_at > invoice_grace and mapped):
            found.add(("invoice.missing_in_erp", inv.customer, inv.id))
        if len(live) >= 2:
            found.add(("invoice.duplicate_in_erp", inv.customer, inv.id))
        if len(live) == 1:
            rec = live[0]
            code = t["currency.currency"][rec["currency"]]["code"]
            same_currency = code == inv.currency.upper()
            prorated = same_currency and lacks_prorations(inv, rec)
            if prorated:
                found.add(("subscription.proration_mismatch", inv.customer, inv.id))
            elif same_currency and billed_tax(inv) != erp_taxes(rec["id"]):
                found.add(("invoice.tax_mismatch", inv.customer, inv.id))
            if not same_currency:
                found.add(("invoice.currency_mismatch", inv.customer, inv.id))
            elif rec["total_amount"] != from_minor(inv.total, inv.currency) and not prorated:
                found.add(("invoice.amount_mismatch", inv.customer, inv.id))
            elif (inv.status in ("open", "paid", "uncollectible") and rec["state"] in ("draft", "validated")
                  and inv.finalized_at is not None and A - inv.finalized_at > invoice_grace and mapped):
                found.add(("invoice.not_posted_in_erp", inv.customer, inv.id))
            if ((inv.status == "paid" and inv.paid_at is not None and A - inv.paid_at > payment_grace
                 and rec["state"] == "posted")
                    or (inv.status == "void" and rec["state"] in ("posted", "paid"))):
                found.add(("invoice.payment_state", inv.customer, inv.id))

    # 8
    for rec in t["account.invoice"].values():
        ref = rec["reference"]
        if (rec["type"] == "out" and rec["state"] != "cancelled" and ref and ref.startswith("in_")
                and ref not in b.invoices):
            party = t["party.party"].get(rec["party"]) if rec["party"] else None
            found.add(("invoice.orphan_in_erp", (party or {}).get("code") or None, ref))

    # 8b, 8c, 8d: the ERP credit notes (customer invoices whose lines credit another invoice's
    # lines through their origin), by the billing invoice of the invoice they credit, oldest first:
    # (total, untaxed, tax per rate) in minor units, positive
    erp_credits: dict[str, list[tuple[int, int, dict[Decimal, int]]]] = defaultdict(list)
    for iid in sorted(t["account.invoice"]):
        rec = t["account.invoice"][iid]
        origins = [t["account.invoice.line"][x].get("origin") for x in rec["lines"]]
        if rec["type"] != "out" or rec["state"] == "cancelled" or not origins or not all(origins):
            continue
        credited = t["account.invoice"][t["account.invoice.line"][int(origins[0].split(",")[1])]["invoice"]]
        if credited["reference"]:
            erp_credits[credited["reference"]].append((
                -minor(rec, "total_amount"), -minor(rec, "untaxed_amount"),
                {k: -v for k, v in erp_taxes(rec["id"]).items()}))
    noted: set[str] = set()
    notes_of: dict[str, list[Any]] = defaultdict(list)
    for cn in sorted(b.credit_notes.values(), key=lambda x: (x.created, x.id)):
        if cn.status == "void":
            continue
        noted.add(cn.invoice)
        live = [r for r in live_by_ref.get(cn.invoice, []) if r["state"] in ("posted", "paid")
                and t["currency.currency"][r["currency"]]["code"] == cn.currency.upper()]
        if cn.total <= 0 or cn.customer not in party_by_code or not live:
            continue
        notes_of[cn.invoice].append(cn)
    for invoice, notes in notes_of.items():
        left = list(erp_credits.get(invoice, []))
        paired: dict[str, tuple[int, int, dict[Decimal, int]]] = {}
        for cn in notes:  # the same total first
            same = next((x for x in left if x[0] == cn.total), None)
            if same is not None:
                left.remove(same)
                paired[cn.id] = same
        for cn in notes:  # then, past the grace, the oldest left
            if cn.id not in paired and left and A - cn.created > invoice_grace:
                paired[cn.id] = left.pop(0)
        for cn in notes:
            erp = paired.get(cn.id)
            if erp is None:
                if A - cn.created > invoice_grace:
                    found.add(("credit_note.missing_in_erp", cn.customer, cn.id))
                continue
            rates: dict[Decimal, int] = defaultdict(int)
            for ln in cn.lines:
                if ln.tax_rate is not None:
                    rates[Decimal(b.tax_rates[ln.tax_rate].percentage).normalize()] += ln.tax_amount
            billed_rates = {k: v for k, v in rates.items() if v}
            if (erp[0], erp[1], erp[2]) != (cn.total, cn.total - cn.tax, billed_rates):
                found.add(("credit_note.amount_mismatch", cn.customer, cn.id))
    refunds_of: dict[str, list[Any]] = defaultdict(list)
    for r in b.refunds.values():
        if r.status == "succeeded":
            refunds_of[b.charges[r.charge].invoice].append(r)
    for iid, refunds in refunds_of.items():
        inv = b.invoices[iid]
        live = live_by_ref.get(iid, [])
        if (inv.status == "paid" and iid not in noted and 0 < inv.total <= sum(r.amount for r in refunds)
                and A - max(r.created for r in refunds) > invoice_grace and inv.customer in party_by_code
                and len(live) == 1 and live[0]["state"] == "paid" and not erp_credits.get(iid)):
            found.add(("invoice.refund_not_reflected", inv.customer, iid))

    # 9
    for s in b.subscriptions.values():
        if s.status not in ACTIVE or s.customer not in party_by_code:
            continue
        item = s.items[0]
        price = b.prices[item.price]
        for rec in t["sale.subscription"].values():
            if rec["reference"] != s.id or rec["state"] != "running":
                continue
            line = t["sale.subscription.line"][rec["lines"][0]]
            service = t["sale.subscription.service"][line["service"]]
            code = t["product.product"][service["product"]]["code"]
            if (code != price.lookup_key or line["quantity"] != item.quantity
                    or rec["next_invoice_date"] != _utc_date(s.current_period_end)):
                found.add(("subscription.terms_mismatch", s.customer, s.id))

    # 10 - 12
    for cid in b.customers:
        act = active_subs(cid)
        org = org_by_ext.get(cid)
        if org is None:
            continue
        tier = org["organization_fields"].get("support_tier")
        if act:
            want = max((tier_of_price[s.items[0].price] for s in act), key=lambda x: RANK[x])
            if not tier:
                found.add(("entitlement.missing", cid, cid))
            elif tier != want:
                found.add(("entitlement.tier_mismatch", cid, cid))
        elif tier:
            found.add(("entitlement.orphan", cid, cid))
    return found


def manifest_set(ds: DemoDataset) -> set[Finding]:
    return {(m.rule, m.customer, m.object) for m in ds.manifest}


# --------------------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ds250() -> DemoDataset:
    return generate(250, 1, anchor=ANCHOR)


def digest(ds: DemoDataset) -> str:
    h = hashlib.sha256()
    b = ds.billing
    for part in (b.products, b.prices, b.customers, b.subscriptions, b.invoices):
        h.update(repr(list(part.values())).encode())
    h.update(repr(b.events).encode())
    for model in sorted(ds.erp.tables):
        h.update(repr(list(ds.erp.tables[model].items())).encode())
    h.update(repr(sorted(ds.erp.passwords.items())).encode())
    for table in (ds.support.organizations, ds.support.users, ds.support.tickets):
        h.update(repr(list(table.items())).encode())
    h.update(repr([m.as_dict() for m in ds.manifest]).encode())
    return h.hexdigest()


# --------------------------------------------------------------------------------------
# The rules: checker == manifest
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("customers", "seed"), [(250, 1), (250, 2), (250, 3), (60, 5), (137, 9), (800, 4)])
def test_independent_checker_finds_exactly_the_manifest(customers: int, seed: int) -> None:
    ds = generate(customers, seed, anchor=ANCHOR)
    assert check(ds) == manifest_set(ds)


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_every_rule_is_planted_at_250_customers(seed: int) -> None:
    ds = generate(250, seed, anchor=ANCHOR)
    counts = Counter(m.rule for m in ds.manifest)
    assert set(counts) == set(RULES)
    assert all(n >= 2 for n in counts.values()), counts


@pytest.mark.parametrize(("customers", "seed"), [(250, 1), (400, 8)])
def test_clean_dataset_has_no_mismatch(customers: int, seed: int) -> None:
    ds = generate(customers, seed, anchor=ANCHOR, mismatch_rate=0)
    assert ds.manifest == []
    assert check(ds) == set()


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(customers=st.integers(min_value=0, max_value=160), seed=st.integers(min_value=0, max_value=10**6),
       rate=st.sampled_from([None, 0.0, 0.02, 0.1]))
def test_checker_agrees_for_any_size_and_seed(customers: int, seed: int, rate: float | None) -> None:
    ds = generate(customers, seed, anchor=ANCHOR, mismatch_rate=rate)
    assert check(ds) == manifest_set(ds)
    if rate == 0.0:
        assert ds.manifest == []


def test_mismatch_rate_scales_the_plants() -> None:
    ds = generate(1000, 3, anchor=ANCHOR, mismatch_rate=0.01)
    counts = Counter(m.rule for m in ds.manifest)
    assert all(n == 10 for n in counts.values()), counts
    assert check(ds) == manifest_set(ds)


def test_one_planted_issue_per_customer(ds250: DemoDataset) -> None:
    customers = [m.customer for m in ds250.manifest if m.customer is not None]
    assert len(customers) == len(set(customers))


def test_manifest_objects_exist(ds250: DemoDataset) -> None:
    b = ds250.billing
    erp_refs = {r["reference"] for r in ds250.erp.tables["account.invoice"].values()}
    for m in ds250.manifest:
        assert m.detail
        if m.customer is not None:
            assert m.customer in b.customers
        if m.rule == "invoice.orphan_in_erp":
            assert m.object not in b.invoices
            assert m.object in erp_refs
        elif m.rule.startswith("invoice."):
            assert b.invoices[m.object].customer == m.customer
        elif m.rule == "subscription.terms_mismatch":
            assert b.subscriptions[m.object].customer == m.customer
        elif m.rule == "subscription.proration_mismatch":
            assert b.invoices[m.object].customer == m.customer
            assert any(ln.proration for ln in b.invoices[m.object].lines)
        elif m.rule in ("credit_note.missing_in_erp", "credit_note.amount_mismatch"):
            assert b.credit_notes[m.object].customer == m.customer
        else:
            assert m.object == m.customer


def test_unmapped_variants_have_candidates(ds250: DemoDataset) -> None:
    parties = ds250.erp.tables["party.party"].values()
    idents = ds250.erp.tables["party.identifier"].values()
    unmapped = [m.customer for m in ds250.manifest if m.rule == "customer.unmapped_erp"]
    with_candidate = 0
    for cid in unmapped:
        assert cid is not None
        c = ds250.billing.customers[cid]
        names = [p for p in parties if not p["code"] and _name(p["name"]) == _name(c.name)]
        taxes = [i for i in idents if c.tax_id and _tax(i["code"]) == _tax(c.tax_id)]
        with_candidate += bool(names or taxes)
    assert with_candidate >= 1
    orgs = ds250.support.organizations.values()
    unsupported = [m.customer for m in ds250.manifest if m.rule == "customer.unmapped_support"]
    assert any(o["external_id"] is None and _name(o["name"]) == _name(ds250.billing.customers[cid].name)
               for cid in unsupported if cid for o in orgs)


# --------------------------------------------------------------------------------------
# In flight: inside the grace periods, not errors
# --------------------------------------------------------------------------------------


def test_in_flight_items_are_not_errors_but_would_be_without_grace(ds250: DemoDataset) -> None:
    items = in_flight_items(ds250)
    kinds = Counter(i["kind"] for i in items)
    assert kinds["invoice.awaiting_erp"] >= 2
    assert kinds["invoice.posting_awaiting_erp"] >= 2
    assert kinds["invoice.payment_awaiting_erp"] >= 2
    objects = {m.object for m in ds250.manifest}
    assert not objects & {i["object"] for i in items}
    for i in items:
        inv = ds250.billing.invoices[i["object"]]
        if i["kind"] in ("invoice.awaiting_erp", "invoice.posting_awaiting_erp"):
            assert 60 <= ds250.anchor - (inv.finalized_at or 0) <= 900
        else:
            assert 300 <= ds250.anchor - (inv.paid_at or 0) <= 3600
    rule = {"invoice.awaiting_erp": "invoice.missing_in_erp",
            "invoice.posting_awaiting_erp": "invoice.not_posted_in_erp",
            "invoice.payment_awaiting_erp": "invoice.payment_state"}
    expected = manifest_set(ds250) | {(rule[i["kind"]], i["customer"], i["object"]) for i in items}
    assert check(ds250, invoice_grace=0, payment_grace=0) == expected


# --------------------------------------------------------------------------------------
# Determinism
# --------------------------------------------------------------------------------------


def test_same_arguments_give_identical_data() -> None:
    assert digest(generate(250, 5, anchor=ANCHOR)) == digest(generate(250, 5, anchor=ANCHOR))


def test_different_seed_or_anchor_gives_different_data() -> None:
    base = digest(generate(120, 5, anchor=ANCHOR))
    assert digest(generate(120, 6, anchor=ANCHOR)) != base
    assert digest(generate(120, 5, anchor=ANCHOR + 3600)) != base


def test_identical_across_processes_with_different_hash_seeds() -> None:
    code = (f"from services.demo.dataset import generate; import hashlib; ds = generate(150, 3, anchor={ANCHOR}); "
            "t = [list(ds.billing.invoices.values()), list(ds.erp.tables['party.party'].values()), "
            "list(ds.support.organizations.values()), ds.manifest]; "
            "print(hashlib.sha256(repr(t).encode()).hexdigest())")
    root = Path(__file__).resolve().parents[2]
    outs = set()
    for hash_seed in ("0", "4242"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed, "PYTHONPATH": str(root)}
        res = subprocess.run([sys.executable, "-c", code], env=env, cwd=root, capture_output=True, text=True,
                             check=True, timeout=120)
        outs.add(res.stdout.strip())
    assert len(outs) == 1


def test_default_anchor_is_now_floored_to_the_minute() -> None:
    before = int(time.time())
    ds = generate(5, 1)
    assert ds.anchor % 60 == 0
    assert before - 60 <= ds.anchor <= time.time()


# --------------------------------------------------------------------------------------
# Internal consistency
# --------------------------------------------------------------------------------------


def _all_times(ds: DemoDataset) -> list[int]:
    b = ds.billing
    out: list[int] = []
    out += [c.created for c in b.customers.values()]
    for s in b.subscriptions.values():
        out += [s.created, s.start_date, s.current_period_start]
        out += [x for x in (s.canceled_at, s.ended_at, s.trial_start) if x is not None]
    for inv in b.invoices.values():
        out += [x for x in (inv.created, inv.finalized_at, inv.paid_at, inv.voided_at) if x is not None]
    out += [e.created for e in b.events]
    return out


def test_every_timestamp_is_at_or_before_the_anchor(ds250: DemoDataset) -> None:
    A = ds250.anchor
    assert max(_all_times(ds250)) <= A
    naive_anchor = datetime.fromtimestamp(A, UTC).replace(tzinfo=None)
    for model, table in ds250.erp.tables.items():
        for rec in table.values():
            assert isinstance(rec["create_date"], datetime) and rec["create_date"].tzinfo is None, model
            assert rec["create_date"] <= naive_anchor, model
            assert rec["write_date"] is None or rec["create_date"] <= rec["write_date"] <= naive_anchor
            assert isinstance(rec["rec_name"], str)
    aware_anchor = datetime.fromtimestamp(A, UTC)
    for table in (ds250.support.organizations, ds250.support.users, ds250.support.tickets):
        for rec in table.values():
            assert rec["created_at"].tzinfo is not None
            assert rec["created_at"] <= rec["updated_at"] <= aware_anchor


def test_billing_invoices_are_consistent(ds250: DemoDataset) -> None:
    b = ds250.billing
    numbers: set[str] = set()
    for inv in b.invoices.values():
        # G1: the total is the lines' net less their discounts plus their tax, to the minor unit
        assert inv.subtotal == sum(ln.amount for ln in inv.lines)
        assert inv.discount_total == sum(ln.discount_amount for ln in inv.lines)
        assert inv.total == inv.subtotal - inv.discount_total + sum(ln.tax_amount for ln in inv.lines)
        assert (inv.tax or 0) == sum(ln.tax_amount for ln in inv.lines)
        assert inv.currency == b.subscriptions[inv.subscription or ""].currency
        assert all(ln.price in b.prices and b.prices[ln.price].currency == inv.currency for ln in inv.lines)
        if inv.status == "draft":
            assert inv.finalized_at is None and inv.number is None
            continue
        assert inv.finalized_at is not None and inv.created <= inv.finalized_at
        assert inv.number is not None and inv.number not in numbers
        numbers.add(inv.number)
        if inv.status == "paid":
            assert inv.paid_at is not None and inv.paid_at >= inv.finalized_at
            # a pre-payment credit note (G1) lowered what was due before the charge
            assert inv.amount_paid == inv.total - inv.pre_payment_credit_notes_amount
        else:
            assert inv.amount_paid == 0 and inv.paid_at is None
        if inv.status == "void":
            assert inv.voided_at is not None and inv.voided_at > inv.finalized_at
    statuses = Counter(inv.status for inv in b.invoices.values())
    assert statuses["paid"] > statuses["open"] > 0
    assert statuses["void"] > 0 and statuses["uncollectible"] > 0
    assert any(inv.attempt_count > 1 for inv in b.invoices.values())
    assert any(ln.proration for inv in b.invoices.values() for ln in inv.lines)
    assert any(inv.total == 0 for inv in b.invoices.values())  # trial invoices


def test_billing_order_and_indexes(ds250: DemoDataset) -> None:
    b = ds250.billing
    for table in (b.customers, b.subscriptions, b.invoices):
        created = [x.created for x in table.values()]
        assert created == sorted(created)
    assert [e.created for e in b.events] == sorted(e.created for e in b.events)
    assert len({e.id for e in b.events}) == len(b.events)
    assert min(e.created for e in b.events) >= ds250.anchor - 30 * 86400
    by_cust: dict[str, list[str]] = defaultdict(list)
    for s in b.subscriptions.values():
        by_cust[s.customer].append(s.id)
        assert s.customer in b.customers
        assert s.created <= s.current_period_start < s.current_period_end or s.status == "trialing"
    assert {k: v for k, v in b.subscriptions_by_customer.items() if v} == dict(by_cust)
    inv_cust: dict[str, list[str]] = defaultdict(list)
    inv_sub: dict[str, list[str]] = defaultdict(list)
    for inv in b.invoices.values():
        inv_cust[inv.customer].append(inv.id)
        inv_sub[inv.subscription or ""].append(inv.id)
    assert {k: v for k, v in b.invoices_by_customer.items() if v} == dict(inv_cust)
    assert {k: v for k, v in b.invoices_by_subscription.items() if v} == dict(inv_sub)
    tiers = {p.metadata["tier"] for p in b.products.values()}
    assert tiers == {"standard", "premium", "enterprise"}
    assert len({p.lookup_key for p in b.prices.values()}) == len(b.prices)


def test_erp_invoices_are_consistent(ds250: DemoDataset) -> None:
    t = ds250.erp.tables
    lines_of: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for ln in t["account.invoice.line"].values():
        lines_of[ln["invoice"]].append(ln)
    numbered = []
    for rec in t["account.invoice"].values():
        assert sorted(rec["lines"]) == sorted(ln["id"] for ln in lines_of[rec["id"]])
        assert rec["total_amount"] == rec["untaxed_amount"] + rec["tax_amount"]
        assert rec["untaxed_amount"] == sum(ln["amount"] for ln in lines_of[rec["id"]])
        assert rec["tax_amount"] == sum(t["account.invoice.tax"][x]["amount"] for x in rec["taxes"])
        for ln in lines_of[rec["id"]]:
            assert ln["amount"] == Decimal(str(ln["quantity"])) * ln["unit_price"]
        if rec["number"] is not None:
            numbered.append(rec)
        if rec["state"] in ("posted", "paid"):
            assert rec["number"] is not None
        elif rec["state"] == "draft":
            assert rec["number"] is None
    numbered.sort(key=lambda r: r["number"])
    assert [r["number"] for r in numbered] == [f"INV-{n:06d}" for n in range(1, len(numbered) + 1)]
    dates = [r["invoice_date"] for r in numbered]
    assert dates == sorted(dates)
    # each billing invoice reaches the ERP after it was finalized
    b = ds250.billing
    for rec in t["account.invoice"].values():
        inv = b.invoices.get(rec["reference"] or "")
        if inv is not None:
            fin = datetime.fromtimestamp(inv.finalized_at or 0, UTC).replace(tzinfo=None)
            assert rec["create_date"] >= fin
    states = Counter(r["state"] for r in t["account.invoice"].values())
    assert states["paid"] > states["posted"] > 0 and states["draft"] > 0 and states["cancelled"] > 0


def test_erp_indexes_and_references(ds250: DemoDataset) -> None:
    erp = ds250.erp
    for (model, fname), index in erp.indexes.items():
        rebuilt: dict[Any, set[int]] = defaultdict(set)
        for rid, rec in erp.tables[model].items():
            rebuilt[rec.get(fname)].add(rid)
        assert {k: v for k, v in index.items() if v} == dict(rebuilt), (model, fname)
    for model, table in erp.tables.items():
        assert list(table) == list(range(1, len(table) + 1))
        assert erp.next_ids[model] == len(table) + 1
    from services.demo.store import ERP_MODELS
    for model, fields in ERP_MODELS.items():
        for rec in erp.tables[model].values():
            for fname, ftype in fields.items():
                if ftype.startswith("many2one:") and rec.get(fname) is not None:
                    target = ftype.split(":")[1]
                    if target in erp.tables:
                        assert rec[fname] in erp.tables[target], (model, fname)
    assert erp.passwords[ds250.credentials.tryton_login] == ds250.credentials.tryton_password
    codes = {p["code"] for p in erp.tables["product.product"].values()}
    assert codes == {p.lookup_key for p in ds250.billing.prices.values()}


def test_support_is_consistent(ds250: DemoDataset) -> None:
    s = ds250.support
    assert s.tokens[ds250.credentials.zendesk_email] == ds250.credentials.zendesk_token
    assert {o["external_id"]: oid for oid, o in s.organizations.items() if o["external_id"]} == \
        s.orgs_by_external_id
    assert any(u["email"] == ds250.credentials.zendesk_email and u["role"] in ("admin", "agent")
               for u in s.users.values())
    for t in s.tickets.values():
        assert t["requester_id"] in s.users
        assert t["organization_id"] is None or t["organization_id"] in s.organizations
        assert t["assignee_id"] is None or s.users[t["assignee_id"]]["role"] in ("agent", "admin")
    created = [t["created_at"] for t in s.tickets.values()]
    assert created == sorted(created)
    for o in s.organizations.values():
        f = o["organization_fields"]
        assert set(f) == {"support_tier", "sla_policy", "entitlement_end"}
        assert f["support_tier"] in (None, "standard", "premium", "enterprise")
    for table in (s.organizations, s.users, s.tickets):
        assert all(k == rec["id"] for k, rec in table.items())


def test_names_exercise_plain_text_rendering() -> None:
    ds = generate(2000, 1, anchor=ANCHOR, mismatch_rate=0)
    names = [c.name for c in ds.billing.customers.values()]
    assert any("<" in n for n in names)
    assert any("'" in n for n in names)
    assert any("&" in n for n in names)
    assert any(any(ord(ch) > 0x2000 for ch in n) for n in names)  # emoji
    assert any(any(0x80 <= ord(ch) < 0x2000 for ch in n) for n in names)  # accents
    for c in ds.billing.customers.values():
        assert c.email and "@" in c.email and c.email.isascii()
        assert c.currency in ("usd", "eur", "gbp", "jpy", "kwd")  # the seed file's countries' currencies


# --------------------------------------------------------------------------------------
# Seed parameters
# --------------------------------------------------------------------------------------


SEED_FILE = Path(__file__).resolve().parents[2] / "resources" / "demo_seed.toml"


def test_seed_params_load_from_resources() -> None:
    p = load_seed_params()
    assert [plan.tier for plan in p.plans] == ["standard", "premium", "enterprise"]
    # two-decimal currencies, the yen (no minor unit) and the Kuwaiti dinar (three decimals)
    assert {c.currency for c in p.countries} == {"usd", "eur", "gbp", "jpy", "kwd"}
    assert {r for r, _ in p.mismatch} == set(RULES)
    # the package data is the repository's file, not a copy: every country of it (12 today)
    assert p == load_seed_params(SEED_FILE)
    assert len(p.countries) == SEED_FILE.read_text(encoding="utf-8").count("[[countries]]") > 4


def test_seed_params_from_a_file_of_ones_own(tmp_path: Path) -> None:
    f = tmp_path / "seed.toml"
    f.write_text(SEED_FILE.read_text(encoding="utf-8").replace("\nlead = 0.03 ", "\nlead = 0.5 "), encoding="utf-8")
    p = load_seed_params(f)
    assert p.rates.lead == 0.5
    assert p.rates.trial == load_seed_params().rates.trial
    ds = generate(100, 2, anchor=ANCHOR, params=p)
    assert check(ds) == manifest_set(ds)


@pytest.mark.parametrize(("edit", "message"), [
    (lambda t: "[rates]\nlead = 0.5\n", "missing company, mismatch, plans, countries, names"),
    (lambda t: t.replace("\ntrial_days = 14\n", "\n"), r"\[rates\]: missing trial_days"),
    (lambda t: t.replace("\ntrial_days = 14\n", "\ntrial_days = 14\ntrial_dayz = 15\n"),
     r"\[rates\]: unknown trial_dayz"),
    (lambda t: t.replace('"entitlement.orphan" = 0.004', ""), r"\[mismatch\]: missing entitlement.orphan"),
    (lambda t: t.replace("trial_days = 14", 'trial_days = "14"'), "trial_days must be an int, not '14'"),
    (lambda t: t.replace('tier = "premium"', 'tier = "gold"'), "tier 'gold' is not one of"),
    (lambda t: t.replace("monthly = { usd = 7900, eur = 7400, gbp = 6300, ", "monthly = { usd = 7900, eur = 7400, "),
     "plan 'pro' has no monthly and yearly price in 'gbp'"),
    (lambda t: t.replace('suffixes = ["AB"]', "suffixes = []"),
     "suffixes must be a non-empty list of str"),
    (lambda t: t + "\n[company\n", "not valid TOML"),
])
def test_an_incomplete_or_invalid_seed_file_is_a_clear_error(tmp_path: Path, edit: Any, message: str) -> None:
    """No defaults in code: what the file lacks, misspells or mistypes is named, never filled in."""
    f = tmp_path / "seed.toml"
    f.write_text(edit(SEED_FILE.read_text(encoding="utf-8")), encoding="utf-8")
    with pytest.raises(SeedParamsError, match=message) as raised:
        load_seed_params(f)
    assert str(f) in str(raised.value)


def test_a_missing_seed_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"demo seed parameters not found: .*missing\.toml"):
        load_seed_params(tmp_path / "missing.toml")


def test_a_missing_packaged_seed_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """An installation without the ``resources`` package (say, an editable install made before it
    was one) says what is missing instead of generating some other company."""
    monkeypatch.setitem(sys.modules, "resources", None)  # import resources -> ModuleNotFoundError
    with pytest.raises(FileNotFoundError, match=r"resources/demo_seed\.toml are not installed.*reinstall"):
        load_seed_params()
    with pytest.raises(FileNotFoundError, match="not installed"):
        generate(5, 1, anchor=ANCHOR)
