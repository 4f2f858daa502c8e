"""Deterministic generator of the built-in demo company, with planted mismatches.

``generate(customers, seed, anchor=...)`` fills a :class:`BillingStore`, an :class:`ErpStore`
and a :class:`SupportStore` with one fictional SaaS vendor's last twelve months: products and
prices, customers, subscriptions (trials, upgrades, downgrades, quantity changes, renewals,
cancellations), invoices and payments (failures, retries, voids, write-offs), billing events of
the last 30 days, the ERP mirror (parties, invoices, sale subscriptions) and the helpdesk
mirror (organizations with entitlements, users, tickets). The same ``(customers, seed,
anchor, mismatch_rate, params)`` always give the same data: all randomness comes from one
``random.Random(seed)`` and nothing depends on hashing or the clock (except the default
anchor, the current time floored to the minute). Every timestamp is ``<= anchor``.

Seed parameters (plans, prices, countries, rates, name parts) come from
``resources/demo_seed.toml``, read as data of the ``resources`` package
(:func:`services.demo.generator.seed.load_seed_params`); there are no defaults in code. The
generator's phases live in ``services/demo/generator/`` (one module per phase: catalog,
billing and billing invoices, plants, ERP and ERP invoices, support); the rule ids, statuses
and grace periods named below are ``services/demo/generator/ground_truth.py``.

The manifest (``DemoDataset.manifest``) lists every planted mismatch and nothing else. The
reconciliation engine must find exactly the manifest under the rules below. Synchronisation
that is merely *in flight* (inside a grace period) is not an error and not in the manifest;
:func:`in_flight_items` lists it.

Definitions
-----------
- *active subscription*: billing status in ``trialing``, ``active``, ``past_due``.
- *finalized invoice*: billing status in ``open``, ``paid``, ``void``, ``uncollectible``.
- *non-cancelled ERP invoice*: ``account.invoice`` with ``type == "out"`` and
  ``state != "cancelled"``.
- *mapped in ERP*: a ``party.party`` with ``code ==`` the billing customer id exists.
  *mapped in support*: an organization with ``external_id ==`` the customer id exists.
- *tier of a customer*: the highest tier (standard < premium < enterprise) among the plans
  (price ``lookup_key`` → product ``metadata["tier"]``) of its active subscriptions' items.
- Grace periods: invoice 15 minutes (900 s), payment 60 minutes (3600 s); "older than the
  grace" means ``anchor - t > grace``.
- Normalisation: names NFC, whitespace runs collapsed to one space, stripped (case-sensitive);
  tax ids upper-cased with spaces, dots and dashes removed; countries upper-cased. The ERP
  party's tax id is the ``code`` of its first ``party.identifier`` (lowest id; None when it
  has none); its country is the code of the country of its first ``party.address``.

Each manifest entry has ``rule``, ``customer`` (billing customer id or None), ``object`` and a
human ``detail``. Every planted instance sits on a different customer that has no other
planted issue, so one customer never carries two entries.

Rules (ground truth)
--------------------
(4b was added after the others; the manifest lists the rules in ``ground_truth.RULES`` order.)

1. ``customer.unmapped_erp`` — a billing customer with an active subscription or a finalized
   invoice has no party with ``code ==`` its id. object = customer id. Every other ERP-side
   rule (4–7, 9, and the ERP half of 3) is suppressed for it: its invoices and subscriptions
   are absent from the ERP and that is not reported separately. Planted as two variants: a
   candidate party exists (same tax id, or same normalised name, but an empty ``code``), or
   nothing at all.
2. ``customer.unmapped_support`` — a billing customer with an active subscription has no
   organization with ``external_id ==`` its id (entitlement rules 10–11 are suppressed for
   it). object = customer id. Variants: a candidate organization with the same name and no
   external id; nothing.
3. ``customer.master_drift`` — a customer mapped in ERP whose billing name, tax id or country
   differs (after normalisation) from the ERP party's (the ERP owns them), or whose mapped
   support organization's name differs from the ERP party name. One entry per customer;
   object = customer id.
4. ``invoice.missing_in_erp`` — a finalized, non-void billing invoice with ``total > 0``,
   ``finalized_at`` older than the invoice grace, whose customer is mapped in ERP, and no
   non-cancelled ERP invoice has ``reference ==`` its id. object = invoice id.
4b. ``invoice.not_posted_in_erp`` — a billing invoice whose status is ``open``, ``paid`` or
   ``uncollectible``, ``finalized_at`` older than the invoice grace, whose customer is mapped
   in ERP, and exactly one non-cancelled ERP invoice carries its id, in state ``draft`` or
   ``validated``, with the same total and currency (a copy that differs is rule 5 only).
   object = invoice id. Planted as a draft and as a validated copy (a posting that failed,
   or that was never done).
5. ``invoice.amount_mismatch`` — exactly one non-cancelled ERP invoice carries the id of a
   finalized billing invoice, in the same currency, and its ``total_amount`` is not ``total``
   minor units of that currency (``total / 100`` in cents; yen have no minor unit, dinars three).
   Planted on draft and on posted ERP invoices (never reported for a 5d invoice). object =
   invoice id.
5b. ``invoice.currency_mismatch`` — exactly one non-cancelled ERP invoice carries the id of a
   finalized billing invoice and its currency code ``!= currency.upper()`` (never also rule
   5 or 4b). Planted on draft and on posted ERP invoices. object = invoice id.
5c. ``invoice.tax_mismatch`` — exactly one non-cancelled ERP invoice carries the id of a
   finalized billing invoice, in the same currency, and its tax per rate (its
   ``account.invoice.tax`` amounts summed per ``account.tax`` rate) differs from billing's
   (the lines' ``tax_amount`` summed per tax rate percentage; zero amounts left out). Planted
   on a taxed invoice whose ERP copy books part of the tax as revenue (net higher, tax as
   much lower, the same total; a manual invoice tax), chosen last and without the random
   stream, so the dataset with the money switched off keeps every other plant (never
   reported for a 5d invoice); the first one on a yen or dinar invoice when the dataset has a
   taxed one. object = invoice id.
5d. ``subscription.proration_mismatch`` — exactly one non-cancelled ERP invoice carries the id
   of a finalized billing invoice with proration lines, in the same currency, and its
   ``untaxed_amount`` is billing's net (the lines' ``amount - discount_amount``) without one or
   more of those proration lines (and differs from it). Never also rule 5 or 5c for that
   invoice. Planted on a taxed proration invoice (a mid-period upgrade) whose ERP copy was
   booked as a full period (every proration line left out) or without its credit for unused
   time, its tax as trytond computes it, chosen last and without the random stream.
   object = invoice id.
6. ``invoice.duplicate_in_erp`` — two or more non-cancelled ERP invoices carry the id of an
   existing billing invoice (never also reported as 5 or 7). object = billing invoice id.
7. ``invoice.payment_state`` — exactly one non-cancelled ERP invoice carries the id, and
   either the billing status is ``paid`` with ``paid_at`` older than the payment grace and the
   ERP state is ``posted``; or the billing status is ``void`` and the ERP state is ``posted``
   or ``paid``. object = billing invoice id.
7b. ``credit_note.missing_in_erp`` — an issued billing credit note older than the invoice
   grace, on an invoice with a live posted or paid ERP copy in its currency, that no ERP credit
   note of that invoice answers (paired as in 7d: none of its total, and none left of another
   total). object = the billing credit note id.
7d. ``credit_note.amount_mismatch`` — a billing credit note as in 7b whose ERP credit note
   (paired first by equal total, then — older than the grace — with the oldest one of that
   invoice left) differs in total, untaxed amount or tax per rate. object = the billing credit
   note id. Planted on the only credit note of an invoice, booked with its first line credited a
   tenth more (the tax as trytond computes it), or with part of its tax booked as revenue (the
   same total).
7c. ``invoice.refund_not_reflected`` — a paid billing invoice with no credit note, refunded in
   full (the last refund older than the grace), whose one live ERP copy is still paid with no
   ERP credit note. object = billing invoice id.
8. ``invoice.orphan_in_erp`` — a non-cancelled ERP invoice whose reference starts with
   ``"in_"`` names no billing invoice. object = that reference; customer = the invoice
   party's ``code`` (None when the party has none).
9. ``subscription.terms_mismatch`` — an active billing subscription of a customer mapped in
   ERP whose running ERP ``sale.subscription`` (``reference ==`` its id) differs in plan (the
   line's service product ``code`` vs the item price ``lookup_key``), quantity, or period end
   (``next_invoice_date`` vs the UTC date of ``current_period_end``). object = subscription
   id. (Every active subscription of a mapped customer has a running ERP subscription.)
10. ``entitlement.missing`` — active subscription, organization mapped, its
    ``support_tier`` empty or None. object = customer id.
11. ``entitlement.tier_mismatch`` — active subscription, organization mapped, its
    ``support_tier`` set but different from the customer's tier. object = customer id.
12. ``entitlement.orphan`` — an organization whose ``external_id`` names a billing customer
    without an active subscription has a ``support_tier`` set. object = customer id.

Customers without a planted issue trigger nothing: cancelled customers have no support tier;
every mapped, finalized, non-void invoice with a total exists exactly once in the ERP with the
same total and currency (``$0`` trial invoices are not sent to the ERP); paid in billing is
paid in the ERP unless within the grace; voided invoices are cancelled in the ERP; ERP and
support subscriptions/entitlements follow billing at once (rules 9–12 have no grace). Noise
that must *not* fire is included on purpose: formatting-only master-data differences,
cancelled duplicate ERP invoices, ERP invoices with non-billing references, invoices
finalized within the invoice grace still in draft in the ERP, ``$0`` invoices, and the
in-flight items below.

In flight (not errors, not in the manifest): a few invoices finalized 1–10 minutes before
the anchor with no ERP invoice yet, a few finalized 1–10 minutes before the anchor whose ERP
copy is still a draft, and a few paid 5–30 minutes before the anchor whose ERP invoice is
still ``posted``. :func:`in_flight_items` recomputes them from the stores (so
it also sees those that happen naturally near the anchor), which keeps ``DemoDataset``
unchanged and the answer right after the servers mutate the stores.

Store notes: ERP many-to-one fields that the demo never fills (``account.invoice`` ``move``,
``journal``, ``account``, ``payment_term``; ``account.invoice.line`` ``account``, ``unit``)
are left out of the record dicts to keep 100,000 customers in about a gigabyte: read fields
with ``rec.get(name)`` (absent means None). ERP ids follow creation time per model.
"""

from __future__ import annotations

import gc
import time
import unicodedata
from typing import Any

from services.demo.generator.billing import _emit_events, _settle_money, _simulate_billing
from services.demo.generator.catalog import _build_catalog
from services.demo.generator.erp import _build_erp
from services.demo.generator.ground_truth import FINALIZED_STATUSES, INVOICE_GRACE, PAYMENT_GRACE, RULES
from services.demo.generator.plants import _choose_plants
from services.demo.generator.seed import SeedParams, load_seed_params
from services.demo.generator.state import _Gen
from services.demo.generator.support import _build_support
from services.demo.store import DemoDataset

# --------------------------------------------------------------------------------------
# Normalisation, as the definitions above state it
# --------------------------------------------------------------------------------------


def normalize_name(s: str | None) -> str | None:
    return None if s is None else " ".join(unicodedata.normalize("NFC", s).split())


def normalize_tax_id(s: str | None) -> str | None:
    if s is None:
        return None
    out = s.upper().replace(" ", "").replace(".", "").replace("-", "")
    return out or None


# --------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------


def generate(customers: int = 250, seed: int = 1, *, anchor: int | None = None,
             mismatch_rate: float | None = None, params: SeedParams | None = None) -> DemoDataset:
    """The demo company for ``customers`` customers. ``anchor`` is the dataset's "now" (unix
    seconds; default: the current time floored to the minute). ``mismatch_rate`` overrides
    the per-rule share of planted mismatches (0 = a clean dataset); None uses the params."""
    if customers < 0:
        raise ValueError("customers must be >= 0")
    if anchor is None:
        anchor = int(time.time()) // 60 * 60
    g = _Gen(customers, seed, anchor, params or load_seed_params(), mismatch_rate)
    # Millions of small acyclic objects: the cyclic GC would rescan them again and again
    # (quadratic-looking slow-down at 100k customers) and find nothing to free.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        _build_catalog(g)
        money = _simulate_billing(g)
        _emit_events(g)
        _choose_plants(g)
        _settle_money(g, money)  # charges, credit notes, refunds (G1), the plants known
        for cu in g.custs:
            cu.invoices = []  # planting done: the stores hold them
        _build_erp(g)
        _build_support(g)
    finally:
        if gc_was_enabled:
            gc.enable()
    order = {r: i for i, r in enumerate(RULES)}
    g.manifest.sort(key=lambda m: (order[m.rule], m.customer or "", m.object))
    return DemoDataset(customers=customers, seed=seed, anchor=anchor, billing=g.billing, erp=g.erp,
                       support=g.support, manifest=g.manifest, credentials=g.creds)


def in_flight_items(ds: DemoDataset, invoice_grace: int = INVOICE_GRACE,
                    payment_grace: int = PAYMENT_GRACE) -> list[dict[str, Any]]:
    """Synchronisation still inside its grace period at ``ds.anchor`` (not errors): finalized
    invoices not yet in the ERP (``invoice.awaiting_erp``) or still a draft there
    (``invoice.posting_awaiting_erp``), and paid invoices whose ERP invoice is still posted
    (``invoice.payment_awaiting_erp``).
    Recomputed from the stores, so it stays right after servers mutate them."""
    A = ds.anchor
    erp = ds.erp
    inv_table = erp.tables["account.invoice"]
    out: list[dict[str, Any]] = []
    for inv in ds.billing.invoices.values():
        fin = inv.finalized_at
        if fin is None or inv.status not in FINALIZED_STATUSES:
            continue
        if not erp.lookup("party.party", "code", inv.customer):
            continue
        live = [inv_table[i] for i in sorted(erp.lookup("account.invoice", "reference", inv.id))
                if inv_table[i]["type"] == "out" and inv_table[i]["state"] != "cancelled"]
        if (not live and inv.status != "void" and inv.total > 0 and A - fin <= invoice_grace):
            out.append({"kind": "invoice.awaiting_erp", "customer": inv.customer, "object": inv.id,
                        "since": fin, "age_seconds": A - fin})
        elif (len(live) == 1 and inv.status != "void" and A - fin <= invoice_grace
              and live[0]["state"] in ("draft", "validated")):
            out.append({"kind": "invoice.posting_awaiting_erp", "customer": inv.customer, "object": inv.id,
                        "since": fin, "age_seconds": A - fin})
        elif (len(live) == 1 and inv.status == "paid" and inv.paid_at is not None
              and A - inv.paid_at <= payment_grace and live[0]["state"] == "posted"):
            out.append({"kind": "invoice.payment_awaiting_erp", "customer": inv.customer, "object": inv.id,
                        "since": inv.paid_at, "age_seconds": A - inv.paid_at})
    return out
