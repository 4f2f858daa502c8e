"""The generator's state: :class:`_Gen` (the one RNG, the stores being filled, the catalog and
ERP id maps, the plants and the manifest), the per-customer facts (:class:`_Cust`), a planted
mismatch (:class:`_Plant`), an ERP invoice to insert (:class:`_ErpInv`), and the small
hot-path helpers the phases share (Stripe-looking ids, slugs, cumulative weights, the
common fields of an ERP record)."""

from __future__ import annotations

import functools
import random
import re
import unicodedata
from binascii import b2a_base64
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from services.core.currency import exponent
from services.demo.generator.dates import DAY, naive_utc, utc_date
from services.demo.generator.seed import SeedParams
from services.demo.store import (
    BCustomer,
    BillingStore,
    BInvoice,
    BPrice,
    BSubscription,
    DemoCredentials,
    ErpStore,
    ManifestEntry,
    SupportStore,
)


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
        self.force: str | None = None  # in-flight profile: "fin" | "pay" | "post"
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

    __slots__ = ("billed_tax", "binv", "create", "credit", "credits", "currency", "cust", "dropped", "line_ids",
                 "lines", "number", "ref", "state", "tax_as_computed", "tax_shift", "was_posted", "write")

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
        #: minor units of the billed tax the copy books as revenue instead (invoice.tax_mismatch)
        self.tax_shift = 0
        #: the ERP ids of the inserted invoice's lines (in its lines' order)
        self.line_ids: list[int] = []
        #: an ERP credit note: the ERP invoice it credits (``erp_credits``) ...
        self.credits: _ErpInv | None = None
        #: ... its lines (credited line's index in ``credits``, description, quantity, amount
        #: credited net of discount (positive), the billing tax rate) and the tax billed (positive)
        self.credit: list[tuple[int, str, int, int, str | None]] = []
        self.billed_tax = 0
        #: an ERP credit note whose tax trytond computes from its lines, the billed tax not kept
        #: (credit_note.amount_mismatch: a credit note booked for another amount)
        self.tax_as_computed = False
        #: the indexes of the billing invoice's lines the copy lacks (subscription.proration_mismatch:
        #: the proration lines of a mid-period change left out, its tax computed from the rest)
        self.dropped: frozenset[int] = frozenset()


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
        self.inflight_post: set[str] = set()  # invoice ids sent to the ERP as a draft, not posted yet
        self.legacy_party: int | None = None
        # catalog
        self.price_by_key: dict[tuple[int, int, str], BPrice] = {}  # (plan idx, months, cur)
        self.price_plan: dict[str, int] = {}  # price id -> plan idx
        self.price_months: dict[str, int] = {}
        self.line_desc: dict[tuple[str, int], str] = {}
        self.dec_cache: dict[tuple[int, int], Decimal] = {}
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

    def dec(self, minor: int, currency: str) -> Decimal:
        """``minor`` units of ``currency`` in major units, with the currency's own exponent
        (cents: 1234 -> 12.34 USD; yen: 1234 -> 1234 JPY; fils: 1234 -> 1.234 KWD)."""
        exp = exponent(currency)
        d = self.dec_cache.get((minor, exp))
        if d is None:
            d = self.dec_cache[(minor, exp)] = Decimal(minor).scaleb(-exp)
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


def _erp_base(g: _Gen, rec: dict[str, Any], create: int, write: int | None, rec_name: str) -> dict[str, Any]:
    rec["create_date"] = naive_utc(create)
    rec["write_date"] = naive_utc(write) if write is not None else None
    rec["create_uid"] = 1
    rec["write_uid"] = 1 if write is not None else None
    rec["rec_name"] = rec_name
    return rec
