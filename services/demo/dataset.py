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
``resources/demo_seed.toml`` (:func:`load_seed_params`); sane defaults are embedded.

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
5. ``invoice.amount_mismatch`` — exactly one non-cancelled ERP invoice carries the id of a
   finalized billing invoice, and its ``total_amount != total / 100`` or its currency code
   ``!= currency.upper()``. Planted on draft and on posted ERP invoices. object = invoice id.
6. ``invoice.duplicate_in_erp`` — two or more non-cancelled ERP invoices carry the id of an
   existing billing invoice (never also reported as 5 or 7). object = billing invoice id.
7. ``invoice.payment_state`` — exactly one non-cancelled ERP invoice carries the id, and
   either the billing status is ``paid`` with ``paid_at`` older than the payment grace and the
   ERP state is ``posted``; or the billing status is ``void`` and the ERP state is ``posted``
   or ``paid``. object = billing invoice id.
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
cancelled duplicate ERP invoices, ERP invoices with non-billing references, recent invoices
still in draft in the ERP, ``$0`` invoices, and the in-flight items below.

In flight (not errors, not in the manifest): a few invoices finalized 1–10 minutes before
the anchor with no ERP invoice yet, and a few paid 5–30 minutes before the anchor whose ERP
invoice is still ``posted``. :func:`in_flight_items` recomputes them from the stores (so
it also sees those that happen naturally near the anchor), which keeps ``DemoDataset``
unchanged and the answer right after the servers mutate the stores.

Store notes: ERP many-to-one fields that the demo never fills (``account.invoice`` ``move``,
``journal``, ``account``, ``payment_term``; ``account.invoice.line`` ``account``, ``unit``)
are left out of the record dicts to keep 100,000 customers in about a gigabyte: read fields
with ``rec.get(name)`` (absent means None). ERP ids follow creation time per model.
"""

from __future__ import annotations

import functools
import gc
import random
import re
import time
import tomllib
import unicodedata
from binascii import b2a_base64
from bisect import bisect
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from services.demo.store import (
    BCustomer,
    BEvent,
    BillingStore,
    BInvoice,
    BInvoiceLine,
    BPrice,
    BProduct,
    BSubItem,
    BSubscription,
    DemoCredentials,
    DemoDataset,
    ErpStore,
    ManifestEntry,
    SupportStore,
)

RULES: tuple[str, ...] = (
    "customer.unmapped_erp",
    "customer.unmapped_support",
    "customer.master_drift",
    "invoice.missing_in_erp",
    "invoice.amount_mismatch",
    "invoice.duplicate_in_erp",
    "invoice.payment_state",
    "invoice.orphan_in_erp",
    "subscription.terms_mismatch",
    "entitlement.missing",
    "entitlement.tier_mismatch",
    "entitlement.orphan",
)

ACTIVE_STATUSES = frozenset({"trialing", "active", "past_due"})
FINALIZED_STATUSES = frozenset({"open", "paid", "void", "uncollectible"})
INVOICE_GRACE = 900
PAYMENT_GRACE = 3600
TIER_RANK = {"standard": 1, "premium": 2, "enterprise": 3}

DEFAULT_SEED_PATH = Path(__file__).resolve().parents[2] / "resources" / "demo_seed.toml"

DAY = 86400
_EPOCH = datetime(1970, 1, 1)
_EPOCH_UTC = datetime(1970, 1, 1, tzinfo=UTC)
_MDAYS = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_SYMBOLS = {"usd": "$", "eur": "€", "gbp": "£"}
_CURRENCY_NAMES = {"usd": "US Dollar", "eur": "Euro", "gbp": "Pound Sterling"}

# --------------------------------------------------------------------------------------
# Seed parameters
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PlanSpec:
    key: str  # "pro"; price lookup keys are f"{key}_{monthly|yearly}_{currency}"
    name: str
    tier: str
    sla_policy: str
    weight: float
    quantity: tuple[int, int]
    yearly_share: float
    monthly: tuple[tuple[str, int], ...]  # (currency, unit amount in minor units)
    yearly: tuple[tuple[str, int], ...]


@dataclass(frozen=True, slots=True)
class CountrySpec:
    code: str
    name: str
    currency: str
    weight: float
    tax_type: str
    tax_format: str
    tld: str
    suffixes: tuple[str, ...]
    cities: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CompanySpec:
    name: str = "Brightline Software Ltd"
    party_code: str = "BRIGHTLINE"
    country: str = "US"
    currency: str = "usd"
    erp_invoice_prefix: str = "INV-"
    erp_subscription_prefix: str = "SUB-"
    agent_domain: str = "syncdesk-demo.example"
    agents: int = 8


@dataclass(frozen=True, slots=True)
class Rates:
    lead: float = 0.03
    trial: float = 0.70
    trial_days: int = 14
    cancel_in_trial: float = 0.10
    churn_per_period: float = 0.035
    cancel_immediately: float = 0.30
    upgrade_per_period: float = 0.04
    downgrade_per_period: float = 0.015
    quantity_change_per_period: float = 0.06
    mid_period_upgrade: float = 0.02
    second_subscription: float = 0.04
    send_invoice: float = 0.5
    payment_failure: float = 0.06
    retry_success: float = 0.55
    void: float = 0.01
    no_tax_id: float = 0.12
    messy_master_data: float = 0.05
    odd_name: float = 0.05
    erp_recent_draft: float = 0.15
    erp_cancelled_duplicate: float = 0.004
    erp_manual_invoice: float = 0.01
    in_flight: float = 0.01
    tickets_max: int = 4
    users_max: int = 3


@dataclass(frozen=True, slots=True)
class NameParts:
    first: tuple[str, ...]
    second: tuple[str, ...]
    odd: tuple[str, ...]
    person_first: tuple[str, ...]
    person_last: tuple[str, ...]
    ticket_subjects: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SeedParams:
    """Everything that shapes the demo company; loaded from ``resources/demo_seed.toml``."""

    company: CompanySpec
    rates: Rates
    mismatch: tuple[tuple[str, float], ...]  # (rule id, share of customers)
    plans: tuple[PlanSpec, ...]  # ascending tier
    countries: tuple[CountrySpec, ...]
    names: NameParts

    def mismatch_rate(self, rule: str) -> float:
        for r, v in self.mismatch:
            if r == rule:
                return v
        return 0.0


_DEFAULT_TOML = """
[[plans]]
key = "starter"
name = "Starter"
tier = "standard"
sla_policy = "standard-24h"
weight = 50
quantity = [1, 5]
yearly_share = 0.10
monthly = { usd = 2900, eur = 2700, gbp = 2300 }
yearly = { usd = 29000, eur = 27000, gbp = 23000 }
[[plans]]
key = "pro"
name = "Pro"
tier = "premium"
sla_policy = "premium-4h"
weight = 35
quantity = [3, 25]
yearly_share = 0.15
monthly = { usd = 7900, eur = 7400, gbp = 6300 }
yearly = { usd = 79000, eur = 74000, gbp = 63000 }
[[plans]]
key = "enterprise"
name = "Enterprise"
tier = "enterprise"
sla_policy = "enterprise-1h"
weight = 15
quantity = [10, 200]
yearly_share = 0.40
monthly = { usd = 24900, eur = 23500, gbp = 19900 }
yearly = { usd = 249000, eur = 235000, gbp = 199000 }
[[countries]]
code = "US"
name = "United States"
currency = "usd"
weight = 40
tax_type = "us_ein"
tax_format = "##-#######"
tld = "com"
suffixes = ["Inc.", "LLC", ""]
cities = ["Austin", "Denver", "Boston"]
[[countries]]
code = "GB"
name = "United Kingdom"
currency = "gbp"
weight = 20
tax_type = "gb_vat"
tax_format = "GB#########"
tld = "co.uk"
suffixes = ["Ltd", "LLP"]
cities = ["London", "Leeds"]
[[countries]]
code = "DE"
name = "Germany"
currency = "eur"
weight = 25
tax_type = "eu_vat"
tax_format = "DE#########"
tld = "de"
suffixes = ["GmbH", "AG"]
cities = ["Berlin", "München", "Köln"]
[[countries]]
code = "FR"
name = "France"
currency = "eur"
weight = 15
tax_type = "eu_vat"
tax_format = "FR###########"
tld = "fr"
suffixes = ["SAS", "SARL"]
cities = ["Paris", "Lyon"]
[names]
first = ["Blue", "North", "Silver", "Bright", "Quantum", "Iron", "Maple", "Cedar", "Harbor",
         "Summit", "Copper", "Granite", "Lumen", "Polar", "Crimson", "Emerald", "Atlas", "Beacon"]
second = ["Labs", "Works", "Systems", "Logistics", "Analytics", "Foods", "Dental", "Partners",
          "Robotics", "Media", "Health", "Freight", "Studio", "Energy"]
odd = ["Café Müller & Söhne", "O'Brien & Daughters", "Smith & Co. <b>Bold</b>", "Rocket 🚀 Foods"]
person_first = ["Alice", "Bruno", "Chloé", "Dmitri", "Elena", "José", "Zoë"]
person_last = ["Anders", "Dubois", "García", "Müller", "O'Neill", "Patel"]
ticket_subjects = ["Cannot log in", "Invoice shows the wrong address", "How do I add more seats?"]
"""


def _pairs(table: dict[str, Any]) -> tuple[tuple[str, int], ...]:
    return tuple((str(k).lower(), int(v)) for k, v in table.items())


def _params_from_dict(raw: dict[str, Any], fallback: dict[str, Any]) -> SeedParams:
    def section(name: str) -> Any:
        return raw.get(name, fallback.get(name, {}))

    company = CompanySpec(**{k: v for k, v in section("company").items()
                             if k in CompanySpec.__dataclass_fields__})
    rates = Rates(**{k: v for k, v in section("rates").items() if k in Rates.__dataclass_fields__})
    mismatch_raw = section("mismatch")
    mismatch = tuple((r, float(mismatch_raw.get(r, 0.004))) for r in RULES)
    plans = tuple(
        PlanSpec(key=p["key"], name=p["name"], tier=p["tier"], sla_policy=p["sla_policy"],
                 weight=float(p["weight"]), quantity=(int(p["quantity"][0]), int(p["quantity"][1])),
                 yearly_share=float(p["yearly_share"]), monthly=_pairs(p["monthly"]),
                 yearly=_pairs(p["yearly"]))
        for p in section("plans")
    )
    plans = tuple(sorted(plans, key=lambda p: TIER_RANK.get(p.tier, 0)))
    countries = tuple(
        CountrySpec(code=c["code"].upper(), name=c["name"], currency=c["currency"].lower(),
                    weight=float(c["weight"]), tax_type=c["tax_type"], tax_format=c["tax_format"],
                    tld=c["tld"], suffixes=tuple(c["suffixes"]), cities=tuple(c["cities"]))
        for c in section("countries")
    )
    n = section("names")
    names = NameParts(first=tuple(n["first"]), second=tuple(n["second"]), odd=tuple(n["odd"]),
                      person_first=tuple(n["person_first"]), person_last=tuple(n["person_last"]),
                      ticket_subjects=tuple(n["ticket_subjects"]))
    return SeedParams(company=company, rates=rates, mismatch=mismatch, plans=plans,
                      countries=countries, names=names)


def load_seed_params(path: Path | None = None) -> SeedParams:
    """Seed parameters from ``path`` (default: ``resources/demo_seed.toml`` of the repo).
    Sections missing from the file, or the whole file when it is absent, fall back to the
    embedded defaults."""
    fallback = tomllib.loads(_DEFAULT_TOML)
    p = path if path is not None else DEFAULT_SEED_PATH
    raw: dict[str, Any] = {}
    if p.is_file():
        with p.open("rb") as fh:
            raw = tomllib.load(fh)
    elif path is not None:
        raise FileNotFoundError(path)
    return _params_from_dict(raw, fallback)


# --------------------------------------------------------------------------------------
# Small helpers (hot paths: keep them cheap)
# --------------------------------------------------------------------------------------


def _days_from_civil(y: int, m: int, d: int) -> int:
    y -= m <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def _month_days(y: int, m: int) -> int:
    if m == 2 and y % 4 == 0 and (y % 100 != 0 or y % 400 == 0):
        return 29
    return _MDAYS[m - 1]


def _civil(ts: int) -> tuple[int, int, int, int]:
    dt = _EPOCH + timedelta(seconds=ts)
    return dt.year, dt.month, dt.day, ts % DAY


def _add_months(base: tuple[int, int, int, int], k: int) -> int:
    """Unix time of ``base`` (year, month, day, second of day) plus ``k`` calendar months,
    the day clamped to the month's length (as Stripe's billing cycle anchor)."""
    y, m, d, sod = base
    mm = m - 1 + k
    yy = y + mm // 12
    mm = mm % 12 + 1
    dd = min(d, _month_days(yy, mm))
    return _days_from_civil(yy, mm, dd) * DAY + sod


def naive_utc(ts: int) -> datetime:
    return _EPOCH + timedelta(seconds=ts)


def aware_utc(ts: int) -> datetime:
    return _EPOCH_UTC + timedelta(seconds=ts)


def utc_date(ts: int) -> date:
    return (_EPOCH + timedelta(seconds=ts)).date()


def normalize_name(s: str | None) -> str | None:
    return None if s is None else " ".join(unicodedata.normalize("NFC", s).split())


def normalize_tax_id(s: str | None) -> str | None:
    if s is None:
        return None
    out = s.upper().replace(" ", "").replace(".", "").replace("-", "")
    return out or None


@functools.lru_cache(maxsize=8192)
def _ascii_slug(s: str) -> str:
    a = unicodedata.normalize("NFKD", s).encode("ascii", "ignore").decode().lower()
    return re.sub(r"[^a-z0-9]+", "-", a).strip("-")


_B64_ALNUM = bytes.maketrans(b"+/", b"xZ")


class _Ids:
    """Random, Stripe-looking ids from the dataset's RNG (alphanumeric, 84+ random bits)."""

    __slots__ = ("bits",)

    def __init__(self, rng: random.Random) -> None:
        self.bits = rng.getrandbits

    def long(self, prefix: str) -> str:  # 24 chars, like in_/sub_/evt_
        raw = self.bits(144).to_bytes(18, "little")
        return prefix + b2a_base64(raw, newline=False).translate(_B64_ALNUM).decode()

    def short(self, prefix: str) -> str:  # 14 chars, like cus_/prod_
        raw = self.bits(96).to_bytes(12, "little")
        return prefix + b2a_base64(raw, newline=False).translate(_B64_ALNUM).decode()[:14]


# --------------------------------------------------------------------------------------
# Generation state
# --------------------------------------------------------------------------------------


class _Cust:
    """Per-customer facts the later phases need (billing objects + ERP/support truth)."""

    __slots__ = ("active", "c", "cancelled_tier", "domain", "ent_end", "first_sub_at", "force",
                 "invoices", "last_change", "legal_country", "legal_name", "legal_tax", "people",
                 "prefix", "send_invoice", "subs", "tier")

    def __init__(self, c: BCustomer, legal_name: str, legal_tax: str | None, domain: str) -> None:
        self.c = c
        self.legal_name = legal_name  # ERP-owned values (billing may hold a formatting variant)
        self.legal_tax = legal_tax
        self.legal_country: str = c.country or ""
        self.domain = domain
        self.subs: list[tuple[BSubscription, int]] = []  # (subscription, last terms change)
        self.invoices: list[BInvoice] = []
        self.force: str | None = None  # in-flight profile: "fin" | "pay"
        self.prefix = ""
        self.send_invoice = False
        self.active = False
        self.tier: str | None = None
        self.cancelled_tier: str | None = None
        self.ent_end: int | None = None
        self.first_sub_at: int | None = None
        self.last_change = 0
        self.people: list[tuple[str, str]] = []


@dataclass(slots=True)
class _Plant:
    rule: str
    variant: str
    invoice: BInvoice | None = None
    sub: BSubscription | None = None


class _ErpInv:
    """An ERP invoice to insert (sorted by create time first, numbered by date)."""

    __slots__ = ("binv", "create", "currency", "cust", "lines", "number", "ref", "state", "was_posted",
                 "write")

    def __init__(self, create: int, cust: _Cust | None, binv: BInvoice | None, state: str,
                 write: int | None) -> None:
        self.create = create
        self.cust = cust
        self.binv = binv
        self.state = state
        self.write = write
        self.number: str | None = None
        self.ref: str | None = binv.id if binv is not None else None
        self.currency: str = binv.currency if binv is not None else "usd"
        self.lines: list[tuple[str, str, int, int]] | None = None  # (price, desc, qty, amount) override
        self.was_posted = False  # cancelled after posting (keeps its number)


class _Gen:
    def __init__(self, customers: int, seed: int, anchor: int, params: SeedParams,
                 mismatch_rate: float | None) -> None:
        self.n = customers
        self.seed = seed
        self.A = anchor
        self.p = params
        self.r = params.rates
        self.rng = random.Random(seed)
        self.random = self.rng.random
        self.ids = _Ids(self.rng)
        self.mismatch_rate = mismatch_rate
        self.setup_ts = anchor - 400 * DAY
        self.ev_from = anchor - 30 * DAY
        self.billing = BillingStore()
        self.creds = DemoCredentials()
        self.erp = ErpStore(self.creds.tryton_database)
        self.support = SupportStore()
        self.events: list[tuple[int, str, str, str]] = []
        self.custs: list[_Cust] = []
        self.all_subs: list[BSubscription] = []
        self.all_invoices: list[BInvoice] = []
        self.plants: dict[str, _Plant] = {}  # customer id -> plant
        self.legacy_orphans = 0
        self.manifest: list[ManifestEntry] = []
        self.inflight_pay: set[str] = set()  # invoice ids whose ERP payment sync is pending
        self.inflight_fin: set[str] = set()  # invoice ids not yet sent to the ERP
        self.legacy_party: int | None = None
        # catalog
        self.price_by_key: dict[tuple[int, int, str], BPrice] = {}  # (plan idx, months, cur)
        self.price_plan: dict[str, int] = {}  # price id -> plan idx
        self.price_months: dict[str, int] = {}
        self.line_desc: dict[tuple[str, int], str] = {}
        self.dec_cache: dict[int, Decimal] = {}
        self.date_cache: dict[int, date] = {}
        self.float_cache: dict[int, float] = {}
        # ERP ids
        self.erp_product: dict[str, int] = {}  # price id -> product.product id
        self.erp_service: dict[str, int] = {}  # price id -> sale.subscription.service id
        self.service_price: dict[int, str] = {}  # sale.subscription.service id -> price id
        self.erp_currency: dict[str, int] = {}  # lower code -> id
        self.erp_country: dict[str, int] = {}
        self.erp_party: dict[str, int] = {}  # customer id -> party id
        self.erp_address: dict[str, int] = {}
        # cumulative weights
        self.country_cum = _cum([c.weight for c in params.countries])
        self.plan_cum = _cum([p.weight for p in params.plans])

    # ---- tiny utilities -----------------------------------------------------------------

    def ev(self, t: int, kind: str, obj_kind: str, obj_id: str) -> None:
        if self.ev_from <= t <= self.A:
            self.events.append((t, kind, obj_kind, obj_id))

    def dec(self, minor: int) -> Decimal:
        d = self.dec_cache.get(minor)
        if d is None:
            d = self.dec_cache[minor] = Decimal(minor).scaleb(-2)
        return d

    def day(self, ts: int) -> date:
        k = ts // DAY
        d = self.date_cache.get(k)
        if d is None:
            d = self.date_cache[k] = utc_date(k * DAY)
        return d

    def flt(self, q: int) -> float:
        f = self.float_cache.get(q)
        if f is None:
            f = self.float_cache[q] = float(q)
        return f

    def ri(self, a: int, b: int) -> int:
        """A random int in [a, b] (cheaper than ``Random.randint``; same RNG stream)."""
        return a + int(self.random() * (b - a + 1))

    def clip(self, t: int) -> int:
        return t if t <= self.A else self.A


def _cum(weights: list[float]) -> list[float]:
    out: list[float] = []
    s = 0.0
    for w in weights:
        s += w
        out.append(s)
    return out


# --------------------------------------------------------------------------------------
# Phase 1: catalog (billing products/prices)
# --------------------------------------------------------------------------------------


def _build_catalog(g: _Gen) -> None:
    b = g.billing
    t = g.setup_ts
    for pi, plan in enumerate(g.p.plans):
        prod = BProduct(id=g.ids.short("prod_"), name=plan.name, created=t,
                        metadata={"tier": plan.tier, "plan": plan.key},
                        description=f"{plan.name} plan ({plan.tier} support)", updated=t)
        b.products[prod.id] = prod
        for months, table, label in ((1, plan.monthly, "monthly"), (12, plan.yearly, "yearly")):
            for cur, amount in table:
                price = BPrice(id=g.ids.long("price_"), product=prod.id, unit_amount=amount,
                               currency=cur, interval="month" if months == 1 else "year",
                               lookup_key=f"{plan.key}_{label}_{cur}", created=t,
                               nickname=f"{plan.name} {label} ({cur.upper()})",
                               metadata={"tier": plan.tier})
                b.prices[price.id] = price
                g.price_by_key[(pi, months, cur)] = price
                g.price_plan[price.id] = pi
                g.price_months[price.id] = months


def _desc(g: _Gen, price: BPrice, qty: int) -> str:
    key = (price.id, qty)
    s = g.line_desc.get(key)
    if s is None:
        plan = g.p.plans[g.price_plan[price.id]]
        amount = f"{_SYMBOLS.get(price.currency, '')}{price.unit_amount / 100:,.2f}"
        s = g.line_desc[key] = f"{qty} × {plan.name} (at {amount} / {price.interval})"
    return s


# --------------------------------------------------------------------------------------
# Phase 2: billing simulation
# --------------------------------------------------------------------------------------


def _make_customer(g: _Gen, signup: int, used_domains: dict[str, int]) -> _Cust:
    rng = g.rng
    r = g.r
    names = g.p.names
    country = g.p.countries[bisect(g.country_cum, rng.random() * g.country_cum[-1])]
    suffix = rng.choice(country.suffixes)
    if rng.random() < r.odd_name:
        base = rng.choice(names.odd)
    else:
        base = f"{rng.choice(names.first)} {rng.choice(names.second)}"
    legal = f"{base} {suffix}" if suffix else base
    slug = _ascii_slug(base) or "company"
    n = used_domains.get(slug, 0)
    used_domains[slug] = n + 1
    domain = f"{slug}{n + 1 if n else ''}.{country.tld}"
    tax: str | None = None
    if rng.random() >= r.no_tax_id:
        tax = _tax_id(g, country.tax_format)
    billing_name, billing_tax = legal, tax
    if rng.random() < r.messy_master_data:  # a formatting-only difference: must not fire
        k = rng.randrange(3)
        if k == 0:
            billing_name = unicodedata.normalize("NFD", legal).replace(" ", "  ") + " "
        elif k == 1 and tax is not None:
            billing_tax = " ".join(tax[i:i + 3] for i in range(0, len(tax), 3)).lower()
        else:
            billing_name = " " + legal
    person = (rng.choice(names.person_first), rng.choice(names.person_last))
    local = rng.choice(("billing", "accounts", "finance", "ap", ""))
    if not local:
        local = _ascii_slug(f"{person[0]}.{person[1]}").replace("-", ".") or "billing"
    c = BCustomer(id=g.ids.short("cus_"), created=signup, name=billing_name, email=f"{local}@{domain}",
                  country=country.code, tax_id=billing_tax, currency=country.currency,
                  description=None, phone=None)
    cu = _Cust(c, legal, tax, domain)
    cu.people.append(person)
    letters = re.sub(r"[^A-Z]", "", unicodedata.normalize("NFKD", base).upper())[:4] or "CUST"
    cu.prefix = f"{letters}{rng.getrandbits(16):04X}"
    return cu


def _tax_id(g: _Gen, fmt: str) -> str:
    n = fmt.count("#")
    digits = iter(f"{int(g.random() * 10**n):0{n}d}")
    return "".join(next(digits) if ch == "#" else ch for ch in fmt)


def _new_line(g: _Gen, price: BPrice, qty: int, amount: int, desc: str, ps: int, pe: int,
              proration: bool = False) -> BInvoiceLine:
    return BInvoiceLine(id=g.ids.long("il_"), price=price.id, quantity=qty, amount=amount,
                        description=desc, period_start=ps, period_end=pe, proration=proration)


def _invoice(g: _Gen, cu: _Cust, sub: BSubscription, created: int, fin: int, lines: list[BInvoiceLine],
             reason: str, ps: int, pe: int, force: str | None = None) -> tuple[BInvoice, int | None]:
    """One subscription invoice and its payment story. Returns the invoice and, when it was
    written off (uncollectible) by the anchor, the time it happened (the subscription ends)."""
    A = g.A
    rng = g.rng
    r = g.r
    total = 0
    for ln in lines:
        total += ln.amount
    inv = BInvoice(id=g.ids.long("in_"), customer=cu.c.id, subscription=sub.id, status="draft",
                   number=None, currency=sub.currency, subtotal=total, total=total, amount_paid=0,
                   created=created, period_start=ps, period_end=pe, lines=lines, billing_reason=reason)
    cu.invoices.append(inv)
    if fin > A:
        return inv, None
    inv.finalized_at = fin
    inv.status = "open"
    g.ev(fin, "invoice.finalized", "invoice", inv.id)
    if force == "fin":
        g.inflight_fin.add(inv.id)
    if total <= 0:
        inv.status, inv.paid_at = "paid", fin
        g.ev(fin, "invoice.paid", "invoice", inv.id)
        return inv, None
    if cu.send_invoice:  # bank transfer on net terms
        paid = fin + g.ri(2 * DAY, 25 * DAY)
        if paid <= A:
            inv.status, inv.paid_at, inv.amount_paid = "paid", paid, total
            g.ev(paid, "invoice.paid", "invoice", inv.id)
        return inv, None
    if force == "pay":  # in flight: paid 5-30 minutes ago after one failed attempt
        inv.attempt_count = 2
        g.ev(fin, "invoice.payment_failed", "invoice", inv.id)
        paid = A - g.ri(300, 1800)
        inv.status, inv.paid_at, inv.amount_paid = "paid", paid, total
        g.ev(paid, "invoice.paid", "invoice", inv.id)
        g.inflight_pay.add(inv.id)
        return inv, None
    x = rng.random()
    if x >= r.payment_failure + r.void:  # charged at once
        paid = fin + g.ri(2, 20)
        inv.attempt_count = 1
        if paid <= A:
            inv.status, inv.paid_at, inv.amount_paid = "paid", paid, total
            g.ev(paid, "invoice.paid", "invoice", inv.id)
        return inv, None
    inv.attempt_count = 1
    g.ev(fin, "invoice.payment_failed", "invoice", inv.id)
    if x < r.void:  # staff voids it after the failed charge
        voided = fin + g.ri(2 * 3600, 2 * DAY)
        if voided <= A:
            inv.status, inv.voided_at = "void", voided
            g.ev(voided, "invoice.voided", "invoice", inv.id)
        return inv, None
    for delay in (3 * DAY, 5 * DAY, 7 * DAY):
        t = fin + delay + g.ri(0, 3600)
        if t > A:
            return inv, None
        inv.attempt_count += 1
        if rng.random() < r.retry_success:
            inv.status, inv.paid_at, inv.amount_paid = "paid", t, total
            g.ev(t, "invoice.paid", "invoice", inv.id)
            return inv, None
        g.ev(t, "invoice.payment_failed", "invoice", inv.id)
    inv.status = "uncollectible"
    g.ev(t, "invoice.marked_uncollectible", "invoice", inv.id)
    return inv, t


def _simulate_sub(g: _Gen, cu: _Cust, start: int, plan_i: int, months: int, qty: int,
                  trial: bool, force: str | None) -> None:
    A = g.A
    rng = g.rng
    r = g.r
    plans = g.p.plans
    cur = cu.c.currency or "usd"
    price = g.price_by_key[(plan_i, months, cur)]
    sid = g.ids.long("sub_")
    item = BSubItem(id=g.ids.short("si_"), price=price.id, quantity=qty, created=start)
    trial_end = start + r.trial_days * DAY if trial else None
    sub = BSubscription(id=sid, customer=cu.c.id, status="active", items=[item], created=start,
                        start_date=start, current_period_start=start,
                        current_period_end=trial_end or start, currency=cur,
                        trial_start=start if trial else None, trial_end=trial_end)
    g.all_subs.append(sub)
    g.ev(start, "customer.subscription.created", "subscription", sid)
    last_change = start
    ended: int | None = None
    if trial_end is not None:
        plan = plans[plan_i]
        line = _new_line(g, price, qty, 0, f"Trial period for {plan.name}", start, trial_end)
        _invoice(g, cu, sub, start, start, [line], "subscription_create", start, trial_end)
        if force is None and rng.random() < r.cancel_in_trial:
            t = start + g.ri(DAY, (r.trial_days - 1) * DAY)
            if t <= A:
                ended = t
        if ended is None and trial_end > A:
            sub.status = "trialing"
            cu.subs.append((sub, last_change))
            return
        anchor0 = trial_end
    else:
        anchor0 = start
    base = _civil(anchor0)
    k = 0
    ps = anchor0
    pending: list[BInvoiceLine] = []
    while ended is None:
        pe = _add_months(base, (k + 1) * months)
        if k >= 1 or trial_end is not None:
            changed = False
            if k >= 1 and force is None:
                changed, price, qty = _boundary_change(g, price, qty)
            if changed:
                item.price, item.quantity = price.id, qty
                last_change = ps
            g.ev(ps, "customer.subscription.updated", "subscription", sid)
        first_direct = k == 0 and trial_end is None
        lines = [*pending, _new_line(g, price, qty, price.unit_amount * qty, _desc(g, price, qty), ps, pe)]
        pending = []
        _, written_off = _invoice(g, cu, sub, ps, ps if first_direct else ps + 3600, lines,
                                  "subscription_create" if first_direct else "subscription_cycle",
                                  ps, pe, force=force if k == 0 else None)
        sub.current_period_start, sub.current_period_end = ps, pe
        if written_off is not None:
            ended = written_off
            break
        if force is None:
            x = rng.random()
            if x < r.churn_per_period:
                t = ps + int((pe - ps) * (0.1 + 0.8 * rng.random()))
                if t <= A:
                    sub.canceled_at = t
                    if rng.random() < r.cancel_immediately:
                        ended = t
                    else:
                        sub.cancel_at_period_end = True
                        g.ev(t, "customer.subscription.updated", "subscription", sid)
                        if pe <= A:
                            ended = pe
                    break
            elif x < r.churn_per_period + r.mid_period_upgrade:
                t = ps + int((pe - ps) * (0.2 + 0.6 * rng.random()))
                if t <= A:
                    price, qty = _mid_period_upgrade(g, price, qty, t, ps, pe, pending)
                    item.price, item.quantity = price.id, qty
                    last_change = t
                    g.ev(t, "customer.subscription.updated", "subscription", sid)
        if pe > A:
            break
        ps = pe
        k += 1
    if ended is not None:
        sub.status = "canceled"
        sub.ended_at = ended
        if sub.canceled_at is None:
            sub.canceled_at = ended
        g.ev(ended, "customer.subscription.deleted", "subscription", sid)
    elif cu.invoices and not cu.send_invoice:
        last = cu.invoices[-1]
        if last.subscription == sid and last.status == "open" and last.attempt_count >= 1:
            sub.status = "past_due"
    cu.subs.append((sub, last_change))


def _boundary_change(g: _Gen, price: BPrice, qty: int) -> tuple[bool, BPrice, int]:
    rng = g.rng
    r = g.r
    pi = g.price_plan[price.id]
    months = g.price_months[price.id]
    x = rng.random()
    if x < r.upgrade_per_period and pi + 1 < len(g.p.plans):
        pi += 1
    elif x < r.upgrade_per_period + r.downgrade_per_period and pi > 0:
        pi -= 1
    elif x < r.upgrade_per_period + r.downgrade_per_period + r.quantity_change_per_period:
        lo, hi = g.p.plans[pi].quantity
        new = min(hi, max(lo, qty + rng.choice((-3, -2, -1, 1, 1, 2, 3, 5))))
        if new == qty:
            return False, price, qty
        return True, price, new
    else:
        return False, price, qty
    lo, hi = g.p.plans[pi].quantity
    return True, g.price_by_key[(pi, months, price.currency)], min(hi, max(lo, qty))


def _mid_period_upgrade(g: _Gen, price: BPrice, qty: int, t: int, ps: int, pe: int,
                        pending: list[BInvoiceLine]) -> tuple[BPrice, int]:
    pi = g.price_plan[price.id]
    months = g.price_months[price.id]
    if pi + 1 < len(g.p.plans):
        new_price = g.price_by_key[(pi + 1, months, price.currency)]
        lo, hi = g.p.plans[pi + 1].quantity
        new_qty = min(hi, max(lo, qty))
    else:
        new_price, new_qty = price, qty + g.ri(1, 10)
    frac = (pe - t) / (pe - ps)
    when = utc_date(t).strftime("%d %b %Y")
    old_plan = g.p.plans[pi].name
    new_plan = g.p.plans[g.price_plan[new_price.id]].name
    pending.append(_new_line(g, price, qty, -round(price.unit_amount * qty * frac),
                             f"Unused time on {qty} × {old_plan} after {when}", t, pe, True))
    pending.append(_new_line(g, new_price, new_qty, round(new_price.unit_amount * new_qty * frac),
                             f"Remaining time on {new_qty} × {new_plan} after {when}", t, pe, True))
    return new_price, new_qty


def _simulate_customer(g: _Gen, cu: _Cust) -> None:
    rng = g.rng
    r = g.r
    plans = g.p.plans
    signup = cu.c.created
    g.ev(signup, "customer.created", "customer", cu.c.id)
    if cu.force is None and rng.random() < r.lead:
        return
    plan_i = bisect(g.plan_cum, rng.random() * g.plan_cum[-1])
    plan = plans[plan_i]
    months = 12 if cu.force is None and rng.random() < plan.yearly_share else 1
    qty = g.ri(*plan.quantity)
    trial = cu.force is not None or rng.random() < r.trial
    cu.send_invoice = cu.force is None and plan_i == len(plans) - 1 and rng.random() < r.send_invoice
    start = signup + g.ri(30, 900)
    if cu.force is not None:
        start = signup + 30
    _simulate_sub(g, cu, start, plan_i, months, qty, trial, cu.force)
    first = cu.subs[0][0]
    if (cu.force is None and first.status in ACTIVE_STATUSES and rng.random() < r.second_subscription
            and first.created + 30 * DAY < g.A - DAY):
        start2 = g.ri(first.created + 30 * DAY, g.A - DAY)
        plan2 = rng.randrange(len(plans))
        _simulate_sub(g, cu, start2, plan2, 1, g.ri(*plans[plan2].quantity), False, None)
    _settle_customer(g, cu)


def _settle_customer(g: _Gen, cu: _Cust) -> None:
    """Number the finalized invoices (per-customer sequence in finalization order) and work
    out the entitlement truth."""
    finalized = [i for i in cu.invoices if i.finalized_at is not None]
    finalized.sort(key=lambda i: i.finalized_at or 0)
    for n, inv in enumerate(finalized, 1):
        inv.number = f"{cu.prefix}-{n:04d}"
    cu.invoices.sort(key=lambda i: i.created)
    best = 0
    best_any = 0
    for sub, changed in cu.subs:
        rank = TIER_RANK[g.p.plans[g.price_plan[sub.items[0].price]].tier]
        best_any = max(best_any, rank)
        cu.last_change = max(cu.last_change, changed, sub.ended_at or 0)
        if sub.status in ACTIVE_STATUSES:
            cu.active = True
            if rank > best:
                best = rank
            cu.ent_end = max(cu.ent_end or 0, sub.current_period_end)
    tiers = {v: k for k, v in TIER_RANK.items()}
    cu.tier = tiers.get(best)
    cu.cancelled_tier = tiers.get(best_any)
    cu.first_sub_at = cu.subs[0][0].created if cu.subs else None


def _simulate_billing(g: _Gen) -> None:
    rng = g.rng
    A = g.A
    n = g.n
    signups = sorted(A - g.ri(3600, 365 * DAY) for _ in range(n))
    # in-flight profiles: "fin" (finalized 1-10 min ago, not yet in the ERP) and "pay" (paid
    # 5-30 min ago, ERP still posted); both start with a trial ending right before.
    forced: dict[int, str] = {}
    k = 0 if n < 50 else max(2, round(g.r.in_flight * n))
    if n >= 4:
        for idx in rng.sample(range(n), min(n // 2, 2 * k)):
            kind = "fin" if len(forced) % 2 == 0 else "pay"
            if kind == "fin":
                trial_end = A - 3600 - g.ri(60, 600)
            else:
                trial_end = A - g.ri(2 * DAY, 5 * DAY)
            signups[idx] = trial_end - g.r.trial_days * DAY - 30
            forced[idx] = kind
    order = sorted(range(n), key=lambda i: signups[i])
    used_domains: dict[str, int] = {}
    for i in order:
        cu = _make_customer(g, signups[i], used_domains)
        cu.force = forced.get(i)
        g.custs.append(cu)
        _simulate_customer(g, cu)
    b = g.billing
    for cu in g.custs:
        b.add_customer(cu.c)
        g.all_invoices.extend(cu.invoices)
    g.all_subs.sort(key=lambda s: s.created)
    for s in g.all_subs:
        b.add_subscription(s)
    g.all_invoices.sort(key=lambda i: i.created)
    for inv in g.all_invoices:
        b.add_invoice(inv)


def _emit_events(g: _Gen) -> None:
    g.events.sort(key=lambda e: e[0])
    out = g.billing.events
    ids = g.ids
    for t, kind, obj_kind, oid in g.events:
        out.append(BEvent(id=ids.long("evt_"), type=kind, created=t, object_kind=obj_kind, object_id=oid))
    g.events = []


# --------------------------------------------------------------------------------------
# Phase 3: choose where to plant mismatches
# --------------------------------------------------------------------------------------

_VARIANTS: dict[str, tuple[str, ...]] = {
    "customer.unmapped_erp": ("candidate", "none"),
    "customer.unmapped_support": ("candidate", "none"),
    "customer.master_drift": ("name", "tax_id", "country", "support_name"),
    "invoice.missing_in_erp": ("absent", "cancelled_only"),
    "invoice.amount_mismatch": ("draft_amount", "posted_amount", "posted_currency"),
    "invoice.duplicate_in_erp": ("posted", "draft"),
    "invoice.payment_state": ("void_posted", "paid_not_recorded"),
    "invoice.orphan_in_erp": ("customer", "legacy"),
    "subscription.terms_mismatch": ("plan", "quantity", "period_end"),
    "entitlement.missing": ("none",),
    "entitlement.tier_mismatch": ("stale",),
    "entitlement.orphan": ("cancelled",),
}

# most constrained first, so small datasets still get every rule
_PLANT_ORDER = ("entitlement.orphan", "invoice.payment_state", "invoice.amount_mismatch",
                "customer.unmapped_support", "subscription.terms_mismatch", "entitlement.missing",
                "entitlement.tier_mismatch", "invoice.missing_in_erp", "invoice.duplicate_in_erp",
                "customer.unmapped_erp", "customer.master_drift", "invoice.orphan_in_erp")


def _erp_invoices(g: _Gen, cu: _Cust, status: str | None = None) -> list[BInvoice]:
    """Billing invoices of ``cu`` that are surely in the ERP (older than 2 hours)."""
    limit = g.A - 7200
    out = []
    for inv in cu.invoices:
        if inv.finalized_at is None or inv.total <= 0 or inv.finalized_at > limit:
            continue
        if status is None:
            if inv.status != "void":
                out.append(inv)
        elif inv.status == status:
            if status == "paid" and (inv.paid_at or g.A) > limit:
                continue
            if status == "void" and (inv.voided_at or g.A) > limit:
                continue
            out.append(inv)
    return out


def _eligible(g: _Gen, cu: _Cust, rule: str, variant: str) -> _Plant | None:
    if not cu.subs or cu.force is not None:
        return None
    rng = g.rng
    if rule == "entitlement.orphan":
        return None if cu.active else _Plant(rule, variant)
    if rule in ("customer.unmapped_support", "entitlement.missing", "entitlement.tier_mismatch"):
        return _Plant(rule, variant) if cu.active else None
    if rule == "subscription.terms_mismatch":
        subs = [s for s, _ in cu.subs if s.status in ACTIVE_STATUSES]
        return _Plant(rule, variant, sub=rng.choice(subs)) if subs else None
    if rule == "invoice.payment_state":
        invs = _erp_invoices(g, cu, "void" if variant == "void_posted" else "paid")
        return _Plant(rule, variant, invoice=rng.choice(invs)) if invs else None
    if rule in ("invoice.missing_in_erp", "invoice.amount_mismatch", "invoice.duplicate_in_erp"):
        invs = _erp_invoices(g, cu)
        if not invs:
            return None
        pick = invs[-1] if variant == "draft_amount" else rng.choice(invs)
        return _Plant(rule, variant, invoice=pick)
    return _Plant(rule, variant)  # unmapped_erp, master_drift, orphan_in_erp: any subscriber


def _choose_plants(g: _Gen) -> None:
    """Pick a distinct customer for every planted instance (variants alternate; when a
    variant finds no eligible customer, the rule's other variants are tried)."""
    n = g.n
    pool = list(range(len(g.custs)))
    g.rng.shuffle(pool)
    used: set[int] = set()
    cursors: dict[tuple[str, str], int] = {}
    for rule in _PLANT_ORDER:
        rate = g.p.mismatch_rate(rule) if g.mismatch_rate is None else g.mismatch_rate
        if rate <= 0:
            continue
        want = max(2 if n >= 50 else 0, round(rate * n))
        variants = _VARIANTS[rule]
        for k in range(want):
            first = variants[k % len(variants)]
            if rule == "invoice.orphan_in_erp" and first == "legacy":
                g.legacy_orphans += 1
                continue
            for variant in (first, *[v for v in variants if v != first]):
                if variant == "legacy" or _find(g, pool, used, cursors, rule, variant):
                    break


def _find(g: _Gen, pool: list[int], used: set[int], cursors: dict[tuple[str, str], int], rule: str,
          variant: str) -> bool:
    pos = cursors.get((rule, variant), 0)
    while pos < len(pool):
        i = pool[pos]
        pos += 1
        if i in used:
            continue
        cu = g.custs[i]
        plant = _eligible(g, cu, rule, variant)
        if plant is not None:
            used.add(i)
            g.plants[cu.c.id] = plant
            cursors[(rule, variant)] = pos
            return True
    cursors[(rule, variant)] = pos
    return False


# --------------------------------------------------------------------------------------
# Phase 4: ERP mirror
# --------------------------------------------------------------------------------------


def _erp_base(g: _Gen, rec: dict[str, Any], create: int, write: int | None, rec_name: str) -> dict[str, Any]:
    rec["create_date"] = naive_utc(create)
    rec["write_date"] = naive_utc(write) if write is not None else None
    rec["create_uid"] = 1
    rec["write_uid"] = 1 if write is not None else None
    rec["rec_name"] = rec_name
    return rec


def _build_erp_setup(g: _Gen) -> int:
    erp = g.erp
    t = g.setup_ts
    co = g.p.company
    for cur in ("usd", "eur", "gbp"):
        g.erp_currency[cur] = erp.insert("currency.currency", _erp_base(g, {
            "name": _CURRENCY_NAMES[cur], "code": cur.upper(), "symbol": _SYMBOLS[cur], "digits": 2,
        }, t, None, _CURRENCY_NAMES[cur]))
    for c in g.p.countries:
        g.erp_country[c.code] = erp.insert("country.country", _erp_base(g, {"name": c.name, "code": c.code},
                                                                      t, None, c.name))
    if co.country not in g.erp_country:
        g.erp_country[co.country] = erp.insert("country.country", _erp_base(
            g, {"name": co.country, "code": co.country}, t, None, co.country))
    party = erp.insert("party.party", _erp_base(g, {
        "name": co.name, "code": co.party_code, "active": True, "identifiers": [], "addresses": [],
        "contact_mechanisms": [], "tax_identifier": None, "email": None}, t, None, co.name))
    company = erp.insert("company.company", _erp_base(g, {
        "party": party, "currency": g.erp_currency[co.currency]}, t, None, co.name))
    erp.insert("res.user", _erp_base(g, {
        "login": g.creds.tryton_login, "name": "Administrator", "company": company,
        "language": "en", "active": True}, t, None, "Administrator"))
    erp.passwords[g.creds.tryton_login] = g.creds.tryton_password
    for pi, plan in enumerate(g.p.plans):
        for months, label in ((1, "monthly"), (12, "yearly")):
            tname = f"{plan.name} ({label})"
            usd = g.price_by_key.get((pi, months, "usd"))
            products: list[int] = []
            tid = erp.insert("product.template", _erp_base(g, {
                "name": tname, "type": "service",
                "list_price": g.dec(usd.unit_amount if usd else 0), "products": products}, t, None, tname))
            for cur in ("usd", "eur", "gbp"):
                price = g.price_by_key.get((pi, months, cur))
                if price is None:
                    continue
                rn = f"[{price.lookup_key}] {tname}"
                pid = erp.insert("product.product", _erp_base(g, {
                    "template": tid, "code": price.lookup_key, "name": tname, "active": True}, t, None, rn))
                products.append(pid)
                g.erp_product[price.id] = pid
                sid = erp.insert("sale.subscription.service", _erp_base(g, {"product": pid}, t, None, rn))
                g.erp_service[price.id] = sid
                g.service_price[sid] = price.id
    return company


def _insert_party(g: _Gen, cu: _Cust, code: str | None, create: int, name: str, tax: str | None,
                  country: str) -> int:
    erp = g.erp
    rng = g.rng
    identifiers: list[int] = []
    addresses: list[int] = []
    mechanisms: list[int] = []
    pid = erp.insert("party.party", _erp_base(g, {
        "name": name, "code": code, "active": True, "identifiers": identifiers, "addresses": addresses,
        "contact_mechanisms": mechanisms, "tax_identifier": None, "email": cu.c.email}, create, None, name))
    spec = next((c for c in g.p.countries if c.code == country), None)
    if tax is not None:
        ident = erp.insert("party.identifier", _erp_base(g, {
            "party": pid, "type": spec.tax_type if spec else "eu_vat", "code": tax}, create, None, tax))
        identifiers.append(ident)
        erp.tables["party.party"][pid]["tax_identifier"] = ident
    city = rng.choice(spec.cities) if spec else ""
    street = f"{g.ri(1, 250)} {rng.choice(g.p.names.first)} Street"
    addr = erp.insert("party.address", _erp_base(g, {
        "party": pid, "country": g.erp_country.get(country), "city": city, "street": street,
        "postal_code": f"{g.ri(10000, 99999)}"}, create, None, f"{street}, {city}"))
    addresses.append(addr)
    if cu.c.email:
        mechanisms.append(erp.insert("party.contact_mechanism", _erp_base(g, {
            "party": pid, "type": "email", "value": cu.c.email}, create, None, cu.c.email)))
    if code is not None:
        g.erp_party[code] = pid
        g.erp_address[code] = addr
    return pid


def _apply_master_plants(g: _Gen) -> None:
    """Master-data plants that change the billing copy (rule 3 variants name/tax_id/country)."""
    for cu in g.custs:
        plant = g.plants.get(cu.c.id)
        if plant is None or plant.rule != "customer.master_drift":
            continue
        c = cu.c
        if plant.variant == "name":
            c.name = _stale_name(cu.legal_name)
            plant_detail = f"billing name {c.name!r}, ERP {cu.legal_name!r}"
        elif plant.variant == "tax_id":
            if cu.legal_tax is None:
                cu.legal_tax = _tax_id(g, _country(g, c.country).tax_format)
                c.tax_id = None
            else:
                c.tax_id = _bump_digit(cu.legal_tax)
            plant_detail = f"billing tax id {c.tax_id!r}, ERP {cu.legal_tax!r}"
        elif plant.variant == "country":
            others = [x.code for x in g.p.countries if x.code != cu.legal_country]
            c.country = g.rng.choice(others) if others else "ZZ"
            plant_detail = f"billing country {c.country}, ERP {cu.legal_country}"
        else:
            plant_detail = f"support organization name {_stale_name(cu.legal_name)!r}, ERP {cu.legal_name!r}"
        g.manifest.append(ManifestEntry("customer.master_drift", c.id, c.id, plant_detail))


def _country(g: _Gen, code: str | None) -> CountrySpec:
    for c in g.p.countries:
        if c.code == code:
            return c
    return g.p.countries[0]


def _stale_name(name: str) -> str:
    words = name.split()
    if len(words) > 2:
        return " ".join(words[:-1])
    return f"{name} Group"


def _bump_digit(tax: str) -> str:
    for i in range(len(tax) - 1, -1, -1):
        if tax[i].isdigit():
            return tax[:i] + str((int(tax[i]) + 1) % 10) + tax[i + 1:]
    return tax + "1"


def _build_parties(g: _Gen) -> None:
    todo: list[tuple[int, int, _Cust]] = []
    for n, cu in enumerate(g.custs):
        if cu.first_sub_at is None:
            continue
        todo.append((g.clip(cu.first_sub_at + g.ri(60, 600)), n, cu))
    todo.sort(key=lambda x: (x[0], x[1]))
    for create, _, cu in todo:
        plant = g.plants.get(cu.c.id)
        if plant is not None and plant.rule == "customer.unmapped_erp":
            if plant.variant == "candidate":
                _insert_party(g, cu, None, create, cu.legal_name, cu.legal_tax, cu.legal_country)
                detail = "no ERP party; candidate party with the same tax id/name has no code"
            else:
                detail = "no ERP party with this code"
            g.manifest.append(ManifestEntry(plant.rule, cu.c.id, cu.c.id, detail))
            continue
        _insert_party(g, cu, cu.c.id, create, cu.legal_name, cu.legal_tax, cu.legal_country)


def _erp_invoice_specs(g: _Gen) -> list[_ErpInv]:
    A = g.A
    rng = g.rng
    r = g.r
    specs: list[_ErpInv] = []
    recent = A - 3 * DAY
    for inv in g.all_invoices:
        fin = inv.finalized_at
        if fin is None or inv.total <= 0:
            continue
        if inv.customer not in g.erp_party:
            continue
        cu_plant = g.plants.get(inv.customer)
        plant = cu_plant if cu_plant is not None and cu_plant.invoice is inv else None
        create = fin + g.ri(60, 600)
        if create > A or inv.id in g.inflight_fin:
            continue  # in flight: not in the ERP yet
        state, write = "posted", None
        if inv.status == "paid":
            sync = max(inv.paid_at or fin, create) + g.ri(60, 600)
            if sync <= A and inv.id not in g.inflight_pay:
                state, write = "paid", sync
        elif inv.status == "void":
            state, write = "cancelled", g.clip(max(inv.voided_at or fin, create) + g.ri(60, 600))
        spec = _ErpInv(create, None, inv, state, write)
        spec.was_posted = state == "cancelled"
        if plant is None:
            if (fin >= recent and inv.status != "void" and inv.id not in g.inflight_pay
                    and rng.random() < r.erp_recent_draft):
                spec.state, spec.write = "draft", None
            specs.append(spec)
            if cu_plant is None and rng.random() < r.erp_cancelled_duplicate:
                dup_t = g.clip(create + g.ri(60, 1800))
                specs.append(_ErpInv(dup_t, None, inv, "cancelled", g.clip(dup_t + g.ri(600, DAY))))
            continue
        specs.extend(_planted_invoice_specs(g, plant, spec))
    return specs


def _planted_invoice_specs(g: _Gen, plant: _Plant, spec: _ErpInv) -> list[_ErpInv]:
    rng = g.rng
    inv = spec.binv
    assert inv is not None
    cid = inv.customer
    total = f"{inv.total / 100:.2f} {inv.currency.upper()}"
    v = plant.variant
    if plant.rule == "invoice.missing_in_erp":
        g.manifest.append(ManifestEntry(plant.rule, cid, inv.id, f"billing {inv.number} ({total}) not in the ERP"
                                        + (" (only a cancelled copy)" if v == "cancelled_only" else "")))
        if v == "cancelled_only":
            spec.state, spec.write = "cancelled", g.clip(spec.create + g.ri(600, DAY))
            spec.was_posted = False
            return [spec]
        return []
    if plant.rule == "invoice.amount_mismatch":
        first = inv.lines[-1]
        if v == "posted_currency":
            others = [c for c in ("usd", "eur", "gbp") if c != inv.currency]
            spec.currency = rng.choice(others)
            detail = f"ERP currency {spec.currency.upper()}, billing {inv.currency.upper()}"
        else:
            lines = [(ln.price, ln.description, ln.quantity, ln.amount) for ln in inv.lines]
            unit = first.amount // max(first.quantity, 1)
            lines[-1] = (first.price, first.description, first.quantity + 1, first.amount + unit)
            spec.lines = lines
            if v == "draft_amount":
                spec.state, spec.write = "draft", None
            detail = f"ERP total {(inv.total + unit) / 100:.2f}, billing {total}"
        g.manifest.append(ManifestEntry(plant.rule, cid, inv.id, detail))
        return [spec]
    if plant.rule == "invoice.duplicate_in_erp":
        dup_t = g.clip(spec.create + g.ri(120, 1800))
        dup = _ErpInv(dup_t, None, inv, spec.state if v == "posted" else "draft", None)
        if v == "posted" and spec.write is not None:
            dup.write = max(dup_t, spec.write)
        g.manifest.append(ManifestEntry(plant.rule, cid, inv.id, f"billing {inv.number} posted twice in the ERP"
                                        + (" (second copy in draft)" if v == "draft" else "")))
        return [spec, dup]
    if plant.rule == "invoice.payment_state":
        if v == "void_posted":
            spec.state, spec.write, spec.was_posted = "posted", None, False
            detail = f"void in billing, ERP still posted ({total})"
        else:
            spec.state, spec.write = "posted", None
            detail = f"paid in billing, ERP still posted ({total})"
        g.manifest.append(ManifestEntry(plant.rule, cid, inv.id, detail))
        return [spec]
    return [spec]


def _orphan_specs(g: _Gen) -> list[_ErpInv]:
    rng = g.rng
    A = g.A
    specs: list[_ErpInv] = []
    legacy_party: int | None = None
    prices = list(g.billing.prices.values())
    for cu in g.custs:
        plant = g.plants.get(cu.c.id)
        orphan = plant is not None and plant.rule == "invoice.orphan_in_erp"
        manual = plant is None and cu.c.id in g.erp_party and rng.random() < g.r.erp_manual_invoice
        if not (orphan or manual):
            continue
        party_create = g.erp.tables["party.party"][g.erp_party[cu.c.id]]["create_date"]
        lo = int((party_create - _EPOCH).total_seconds())
        create = g.ri(lo, max(lo, A - 7200))
        price = rng.choice([p for p in prices if p.currency == cu.c.currency] or prices)
        spec = _ErpInv(create, cu, None, "posted", None)
        spec.currency = price.currency
        spec.lines = [(price.id, "Services (entered manually)", 1, price.unit_amount)]
        if orphan:
            spec.ref = g.ids.long("in_")
            g.manifest.append(ManifestEntry("invoice.orphan_in_erp", cu.c.id, spec.ref,
                                            "ERP invoice refers to a billing invoice that does not exist"))
        else:
            spec.ref = f"PO-{g.ri(10000, 99999)}"
        specs.append(spec)
    for _ in range(g.legacy_orphans):
        if legacy_party is None:
            legacy_party = g.erp.insert("party.party", _erp_base(g, {
                "name": "Legacy migration (unmatched)", "code": None, "active": True, "identifiers": [],
                "addresses": [], "contact_mechanisms": [], "tax_identifier": None, "email": None},
                g.setup_ts + DAY, None, "Legacy migration (unmatched)"))
        price = rng.choice(prices)
        spec = _ErpInv(g.ri(A - 300 * DAY, A - 7200), None, None, "posted", None)
        spec.currency = price.currency
        spec.lines = [(price.id, "Migrated balance", 1, price.unit_amount)]
        spec.ref = g.ids.long("in_")
        specs.append(spec)
        g.manifest.append(ManifestEntry("invoice.orphan_in_erp", None, spec.ref,
                                        "migrated ERP invoice refers to a billing invoice that does not exist"))
    g.legacy_party = legacy_party
    return specs


def _insert_erp_invoices(g: _Gen, company: int, specs: list[_ErpInv]) -> None:
    erp = g.erp
    prices = g.billing.prices
    specs.sort(key=lambda s: s.create)
    numbered = [s for s in specs if s.state in ("posted", "paid") or s.was_posted]
    numbered.sort(key=lambda s: (_inv_date(s) // DAY, s.create))
    prefix = g.p.company.erp_invoice_prefix
    for n, s in enumerate(numbered, 1):
        s.number = f"{prefix}{n:06d}"
    zero = g.dec(0)
    legacy = g.legacy_party
    for s in specs:
        binv = s.binv
        party: int | None
        if binv is not None:
            party = g.erp_party[binv.customer]
            cid = binv.customer
            desc: str | None = binv.number
        elif s.cust is not None:
            party = g.erp_party[s.cust.c.id]
            cid = s.cust.c.id
            desc = "Manual invoice"
        else:
            party, cid, desc = legacy, "", "Migrated invoice"
        if s.lines is not None:
            raw = s.lines
        else:
            assert binv is not None
            raw = [(ln.price, ln.description, ln.quantity, ln.amount) for ln in binv.lines]
        total = 0
        for _, _, _, amount in raw:
            total += amount
        tot = g.dec(total)
        lines: list[int] = []
        create_dt = naive_utc(s.create)
        write_dt = naive_utc(s.write) if s.write is not None else None
        rec = {
            "type": "out", "number": s.number, "reference": s.ref, "party": party, "company": company,
            "currency": g.erp_currency[s.currency], "invoice_date": g.day(_inv_date(s)),
            "state": s.state, "description": desc, "untaxed_amount": tot, "tax_amount": zero,
            "total_amount": tot, "amount_to_pay": tot if s.state == "posted" else zero, "lines": lines,
            "invoice_address": g.erp_address.get(cid) if cid else None,
            "create_date": create_dt, "write_date": write_dt, "create_uid": 1,
            "write_uid": 1 if write_dt is not None else None, "rec_name": s.number or s.ref or "(draft)",
        }
        iid = erp.insert("account.invoice", rec)
        for price_id, ldesc, qty, amount in raw:
            price = prices[price_id]
            if qty and amount == price.unit_amount * qty:
                q, unit = g.flt(qty), g.dec(price.unit_amount)
            else:
                q, unit = g.flt(1), g.dec(amount)
            lines.append(erp.insert("account.invoice.line", {
                "invoice": iid, "type": "line", "product": g.erp_product[price_id], "description": ldesc,
                "quantity": q, "unit_price": unit, "amount": g.dec(amount),
                "create_date": create_dt, "write_date": None, "create_uid": 1, "write_uid": None,
                "rec_name": ldesc,
            }))


def _inv_date(s: _ErpInv) -> int:
    if s.binv is not None and s.binv.finalized_at is not None:
        return s.binv.finalized_at
    return s.create


def _build_erp_subscriptions(g: _Gen, company: int) -> None:
    erp = g.erp
    prices = g.billing.prices
    todo: list[tuple[int, BSubscription, int]] = []
    for cu in g.custs:
        if cu.c.id not in g.erp_party:
            continue
        for sub, changed in cu.subs:
            todo.append((g.clip(sub.created + g.ri(60, 600)), sub, changed))
    todo.sort(key=lambda x: x[0])
    prefix = g.p.company.erp_subscription_prefix
    for n, (create, sub, changed) in enumerate(todo, 1):
        item = sub.items[0]
        price = prices[item.price]
        running = sub.status in ACTIVE_STATUSES
        service = g.erp_service[price.id]
        qty = item.quantity
        next_date: date | None = g.day(sub.current_period_end) if running else None
        plant = g.plants.get(sub.customer)
        if plant is not None and plant.sub is sub:
            service, qty, next_date, detail = _plant_terms(g, plant, sub, price, service, qty, next_date)
            g.manifest.append(ManifestEntry(plant.rule, sub.customer, sub.id, detail))
        last = max(changed, sub.current_period_start, sub.ended_at or 0)
        write = g.clip(max(create, last + g.ri(60, 600))) if last > sub.created else None
        number = f"{prefix}{n:06d}"
        lines: list[int] = []
        erp_sub = erp.insert("sale.subscription", _erp_base(g, {
            "number": number, "reference": sub.id, "party": g.erp_party[sub.customer], "company": company,
            "currency": g.erp_currency[sub.currency], "state": "running" if running else "closed",
            "start_date": g.day(sub.start_date),
            "end_date": None if running else g.day(sub.ended_at or sub.current_period_end),
            "next_invoice_date": next_date, "lines": lines}, create, write, number))
        svc_rec = erp.tables["sale.subscription.service"][service]
        lines.append(erp.insert("sale.subscription.line", _erp_base(g, {
            "subscription": erp_sub, "service": service, "quantity": g.flt(qty),
            "unit_price": g.dec(prices[g.service_price[service]].unit_amount),
            "start_date": g.day(max(changed, sub.start_date)),
            "end_date": None if running else g.day(sub.ended_at or sub.current_period_end)},
            create, write, svc_rec["rec_name"])))


def _plant_terms(g: _Gen, plant: _Plant, sub: BSubscription, price: BPrice, service: int, qty: int,
                 next_date: date | None) -> tuple[int, int, date | None, str]:
    v = plant.variant
    if v == "plan":
        pi = g.price_plan[price.id]
        other = pi - 1 if pi > 0 else pi + 1
        old = g.price_by_key[(other, g.price_months[price.id], price.currency)]
        return (g.erp_service[old.id], qty, next_date,
                f"ERP plan {old.lookup_key}, billing {price.lookup_key}")
    if v == "quantity":
        new_qty = qty - 1 if qty > 1 else qty + 2
        return service, new_qty, next_date, f"ERP quantity {new_qty}, billing {qty}"
    stale = g.day(sub.current_period_start)
    return service, qty, stale, f"ERP next invoice {stale}, billing period end {g.day(sub.current_period_end)}"


def _build_erp(g: _Gen) -> None:
    company = _build_erp_setup(g)
    _apply_master_plants(g)
    _build_parties(g)
    specs = _erp_invoice_specs(g)
    specs.extend(_orphan_specs(g))
    _insert_erp_invoices(g, company, specs)
    _build_erp_subscriptions(g, company)


# --------------------------------------------------------------------------------------
# Phase 5: support mirror
# --------------------------------------------------------------------------------------


def _person_email(first: str, last: str, domain: str) -> str:
    local = _ascii_slug(f"{first} {last}").replace("-", ".") or "user"
    return f"{local}@{domain}"


def _build_support(g: _Gen) -> None:
    s = g.support
    rng = g.rng
    names = g.p.names
    plans_by_tier = {p.tier: p for p in g.p.plans}
    s.tokens[g.creds.zendesk_email] = g.creds.zendesk_token
    agents: list[int] = []
    agent_names = [(rng.choice(names.person_first), rng.choice(names.person_last))
                   for _ in range(max(1, g.p.company.agents))]
    for n, (first, last) in enumerate(agent_names):
        uid = s.new_id("user")
        email = g.creds.zendesk_email if n == 0 else _person_email(first, last, g.p.company.agent_domain)
        t = aware_utc(g.setup_ts + n * 3600)
        s.users[uid] = _user(uid, f"{first} {last}", email, "admin" if n == 0 else "agent", None, t)
        agents.append(uid)
    todo: list[tuple[int, int, _Cust]] = []
    for n, cu in enumerate(g.custs):
        if cu.first_sub_at is not None:
            todo.append((g.clip(cu.first_sub_at + g.ri(30, 600)), n, cu))
    todo.sort(key=lambda x: (x[0], x[1]))
    tickets: list[tuple[int, int, dict[str, Any]]] = []
    for created, _, cu in todo:
        plant = g.plants.get(cu.c.id)
        rule = plant.rule if plant is not None else None
        tier = cu.tier if cu.active else None
        external_id: str | None = cu.c.id
        name = cu.legal_name
        if rule == "customer.unmapped_support":
            assert plant is not None
            g.manifest.append(ManifestEntry(rule, cu.c.id, cu.c.id, "no support organization with this external id"
                                            + ("; candidate organization with the same name" if
                                               plant.variant == "candidate" else "")))
            if plant.variant != "candidate":
                _org_people(g, cu, None, created, agents, tickets)
                continue
            external_id = None
        elif rule == "customer.master_drift" and plant is not None and plant.variant == "support_name":
            name = _stale_name(cu.legal_name)
        elif rule == "entitlement.missing":
            g.manifest.append(ManifestEntry(rule, cu.c.id, cu.c.id, f"no support tier; plan grants {tier}"))
            tier = None
        elif rule == "entitlement.tier_mismatch":
            assert tier is not None
            others = [t for t in TIER_RANK if t != tier]
            wrong = rng.choice(others)
            g.manifest.append(ManifestEntry(rule, cu.c.id, cu.c.id, f"support tier {wrong}, plan grants {tier}"))
            tier = wrong
        elif rule == "entitlement.orphan":
            tier = cu.cancelled_tier
            g.manifest.append(ManifestEntry(rule, cu.c.id, cu.c.id,
                                            f"support tier {tier} but no active subscription"))
        plan = plans_by_tier.get(tier) if tier else None
        end = cu.ent_end if cu.active else (cu.last_change if rule == "entitlement.orphan" else None)
        updated = g.clip(max(created, cu.last_change + g.ri(30, 600))) if cu.last_change else created
        org_id = s.new_id("organization")
        s.add_organization({
            "id": org_id, "name": name, "external_id": external_id,
            "created_at": aware_utc(created), "updated_at": aware_utc(updated),
            "domain_names": [cu.domain], "details": "", "notes": "", "tags": [tier] if tier else [],
            "group_id": None, "shared_tickets": False, "shared_comments": False,
            "organization_fields": {
                "support_tier": tier, "sla_policy": plan.sla_policy if plan else None,
                "entitlement_end": g.day(end).isoformat() if (end and tier) else None},
        })
        _org_people(g, cu, org_id, created, agents, tickets)
    tickets.sort(key=lambda x: (x[0], x[1]))
    for _, _, ticket in tickets:
        tid = s.new_id("ticket")
        ticket["id"] = tid
        s.tickets[tid] = ticket


def _user(uid: int, name: str, email: str, role: str, org: int | None, t: datetime) -> dict[str, Any]:
    return {"id": uid, "name": name, "email": email, "role": role, "organization_id": org,
            "created_at": t, "updated_at": t, "active": True, "verified": True, "time_zone": "UTC",
            "locale": "en-US", "phone": None, "external_id": None, "tags": [], "suspended": False}


_TICKET_WEIGHTS = (0.3, 0.35, 0.2, 0.1, 0.05)


def _org_people(g: _Gen, cu: _Cust, org_id: int | None, created: int, agents: list[int],
                tickets: list[tuple[int, int, dict[str, Any]]]) -> None:
    s = g.support
    rng = g.rng
    A = g.A
    names = g.p.names
    users: list[int] = []
    people = list(cu.people)
    for _ in range(g.ri(1, max(1, g.r.users_max)) - len(people)):
        people.append((rng.choice(names.person_first), rng.choice(names.person_last)))
    seen: set[str] = set()
    for first, last in people:
        email = _person_email(first, last, cu.domain)
        if email in seen:
            continue
        seen.add(email)
        uid = s.new_id("user")
        t = aware_utc(g.clip(created + g.ri(0, 3 * DAY)))
        s.users[uid] = _user(uid, f"{first} {last}", email, "end-user", org_id, t)
        users.append(uid)
    n_tickets = min(g.r.tickets_max, rng.choices(range(len(_TICKET_WEIGHTS)), _TICKET_WEIGHTS)[0])
    for _ in range(n_tickets):
        t0 = g.ri(created, A)
        age = A - t0
        if age > 14 * DAY:
            status = rng.choice(("closed", "closed", "solved"))
            t1 = t0 + g.ri(600, min(age, 10 * DAY))
        else:
            status = rng.choice(("new", "open", "open", "pending", "hold", "solved"))
            t1 = t0 if status == "new" else t0 + g.ri(0, age)
        requester = rng.choice(users)
        tickets.append((t0, len(tickets), {
            "id": 0, "subject": rng.choice(names.ticket_subjects),
            "description": "Hello, could you help us with this? Thanks.",
            "status": status, "priority": rng.choice(("low", "normal", "normal", "high", "urgent")),
            "type": rng.choice(("question", "incident", "problem", "task")),
            "requester_id": requester, "submitter_id": requester,
            "assignee_id": None if status == "new" else rng.choice(agents),
            "organization_id": org_id, "group_id": None,
            "created_at": aware_utc(t0), "updated_at": aware_utc(t1), "tags": [],
            "via": {"channel": "email"}, "external_id": None, "is_public": True, "due_at": None,
        }))


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
        _simulate_billing(g)
        _emit_events(g)
        _choose_plants(g)
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
    invoices not yet in the ERP, and paid invoices whose ERP invoice is still posted.
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
        elif (len(live) == 1 and inv.status == "paid" and inv.paid_at is not None
              and A - inv.paid_at <= payment_grace and live[0]["state"] == "posted"):
            out.append({"kind": "invoice.payment_awaiting_erp", "customer": inv.customer, "object": inv.id,
                        "since": inv.paid_at, "age_seconds": A - inv.paid_at})
    return out
