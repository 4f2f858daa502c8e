"""Per-customer overview rows for the console's customer list (Qt-free, fast).

``build_customer_rows`` joins the three systems once (dict lookups, no per-customer
queries); ``RowFilter`` answers "which rows match this search text, in this order" over
precomputed search strings and sort keys, so a 100,000-row list filters and sorts in tens of
milliseconds and the Qt model only has to show the resulting index list. Search is case- and
accent-insensitive (:func:`fold`: "muller" finds "Müller", "ZURICH" finds "Zürich"); the
command line's customer lookup (services.core.lookup) searches the same way.
"""

from __future__ import annotations

import enum
import json
import re
import unicodedata
from bisect import bisect_right
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import accumulate, compress, repeat
from operator import contains
from typing import Any

from services.core.domain import Severity, Subscription, SubscriptionStatus, SyncException, System, Tier
from services.core.reconcile import TIER_RANK, Snapshot

SEVERITY_RANK = {Severity.LOW: 1, Severity.MEDIUM: 2, Severity.HIGH: 3, Severity.CRITICAL: 4}


class Health(enum.StrEnum):
    OK = "ok"
    ATTENTION = "attention"
    CRITICAL = "critical"


@dataclass(slots=True)
class CustomerRow:
    customer_id: str
    name: str
    email: str = ""
    tax_id: str = ""
    country: str = ""
    erp_party: str | None = None  # party id in the ERP
    erp_code: str | None = None
    support_org: str | None = None  # organization id in support
    support_name: str | None = None
    status: str = "none"  # subscription status: active / trialing / past_due / canceled / none
    plan: str = ""
    tier: str = ""  # support tier as the helpdesk holds it
    open_exceptions: int = 0
    worst: Severity | None = None
    rules: tuple[str, ...] = ()
    search: str = ""
    #: systems whose data has never been fetched: "not linked" cannot be told for them
    unknown: frozenset[System] = frozenset()

    @property
    def health(self) -> Health:
        if self.worst in (Severity.CRITICAL, Severity.HIGH):
            return Health.CRITICAL
        if self.worst is not None:
            return Health.ATTENTION
        return Health.OK

    def mapped(self, system: System) -> bool:
        if system is System.BILLING:
            return True
        return (self.erp_party if system is System.ERP else self.support_org) is not None


_STATUS_RANK = {SubscriptionStatus.ACTIVE: 5, SubscriptionStatus.PAST_DUE: 4, SubscriptionStatus.TRIALING: 3,
                SubscriptionStatus.UNPAID: 2, SubscriptionStatus.PAUSED: 2, SubscriptionStatus.INCOMPLETE: 1}


def current_subscription(subscriptions: Sequence[Subscription]) -> Subscription | None:
    """The subscription that says what a customer has now: the most active one (active, past
    due, trialing, unpaid or paused, incomplete, then the rest), the newest among equals; the
    customer list's status and plan, the timeline header's plan and quantity."""
    if not subscriptions:
        return None
    return max(subscriptions, key=lambda x: (_STATUS_RANK.get(x.status, 0), x.created.timestamp() if x.created else 0))


#: letters NFKD does not take apart, written as a reader who types without them would
_FOLD_LETTERS = str.maketrans({"ø": "o", "Ø": "o", "ł": "l", "Ł": "l", "đ": "d", "Đ": "d", "ħ": "h", "Ħ": "h",
                               "ı": "i", "æ": "ae", "Æ": "ae", "œ": "oe", "Œ": "oe", "þ": "th", "Þ": "th"})


#: the combining diacritical marks of the Latin, Greek and Cyrillic scripts (and their
#: supplements); the marks of scripts that write vowels with them are kept
_MARKS = re.compile("[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]+")


def fold(text: str) -> str:
    """``text`` for case- and accent-insensitive comparison: case-folded ("ß" -> "ss"), every
    accent dropped (NFKD without combining marks: "Zürich" -> "zurich", "Ｃｏ" -> "co"), and
    the few letters that have no decomposition spelled plainly ("Ørsted" -> "orsted")."""
    if text.isascii():
        return text.lower()
    return _MARKS.sub("", unicodedata.normalize("NFKD", text.translate(_FOLD_LETTERS).casefold()))


def build_customer_rows(snapshot: Snapshot, exceptions: Sequence[SyncException] = ()) -> list[CustomerRow]:
    b, e, s = snapshot.get(System.BILLING), snapshot.get(System.ERP), snapshot.get(System.SUPPORT)
    parties = {p.customer_id: p for p in e.customers.values() if p.customer_id}
    orgs = {o.customer_id: o for o in s.customers.values() if o.customer_id}
    ents = {x.customer_id: x for x in s.entitlements.values() if x.customer_id}
    subs: dict[str, list[Any]] = defaultdict(list)
    for sub in b.subscriptions.values():
        if sub.customer_id:
            subs[sub.customer_id].append(sub)
    unknown = frozenset(x for x in (System.ERP, System.SUPPORT) if x not in snapshot.systems)
    rows: list[CustomerRow] = []
    for cid, cust in b.customers.items():
        party, org, ent = parties.get(cid), orgs.get(cid), ents.get(cid)
        status, plan = "none", ""
        best = current_subscription(subs.get(cid, ()))
        if best is not None:
            status, plan = best.status.value, best.plan_key or ""
        row = CustomerRow(
            customer_id=cid, name=cust.name, email=cust.email or "", tax_id=cust.tax_id or "",
            country=cust.country or "", erp_party=party.ref.id if party else None,
            erp_code=party.customer_id if party else None, support_org=org.ref.id if org else None,
            support_name=org.name if org else None, status=status, plan=plan,
            tier=ent.tier.value if ent and ent.tier else "", unknown=unknown)
        row.search = _search_text(row)
        rows.append(row)
    attach_exceptions(rows, exceptions)
    return rows


def _search_text(row: CustomerRow) -> str:
    return fold("\x00".join([row.customer_id, row.name, row.email, row.tax_id, row.erp_party or "",
                             row.erp_code or "", row.support_org or "", row.support_name or ""]))


def attach_exceptions(rows: Sequence[CustomerRow], exceptions: Sequence[SyncException]) -> None:
    """Set each row's open-exception count, worst severity and rules from ``exceptions``
    (rows built without them: their defaults are "none")."""
    by_customer: dict[str, list[SyncException]] = defaultdict(list)
    for exc in exceptions:
        if exc.customer_id and exc.is_open:
            by_customer[exc.customer_id].append(exc)
    if not by_customer:
        return
    index = {row.customer_id: row for row in rows}
    for cid, excs in by_customer.items():
        row = index.get(cid)
        if row is None:
            continue
        row.open_exceptions = len(excs)
        row.worst = max((x.severity for x in excs), key=SEVERITY_RANK.__getitem__)
        row.rules = tuple(sorted({x.rule for x in excs}))


# -- the stored customer list (storage's overview cache) --------------------------------------
#: bump when the encoding changes: a cache in another format is ignored (and rebuilt)
OVERVIEW_FORMAT = 1
_ROW_FIELDS = 13  # customer_id … tier, then the unknown systems
#: rows per JSON line. ``json.dumps`` and ``json.loads`` hold the GIL for a whole document, so
#: 100,000 rows in one would stall the UI thread for a tenth of a second; per line, a few ms.
_ROWS_PER_LINE = 2_000


def encode_rows(rows: Sequence[CustomerRow]) -> str:
    """The rows without what comes from the exceptions (they are read fresh at each launch:
    :func:`attach_exceptions`) or can be recomputed (the search text): a header line, then
    JSON arrays of rows, one line per ``_ROWS_PER_LINE``."""
    lines = [json.dumps({"format": OVERVIEW_FORMAT, "rows": len(rows)})]
    for start in range(0, len(rows), _ROWS_PER_LINE):
        lines.append(json.dumps([
            [r.customer_id, r.name, r.email, r.tax_id, r.country, r.erp_party, r.erp_code, r.support_org,
             r.support_name, r.status, r.plan, r.tier, sorted(x.value for x in r.unknown)]
            for r in rows[start:start + _ROWS_PER_LINE]], ensure_ascii=False, separators=(",", ":")))
    return "\n".join(lines)


class OverviewFormatError(ValueError):
    """A stored customer list this version cannot read."""


def decode_rows(text: str) -> list[CustomerRow]:
    """Rows from :func:`encode_rows` (exceptions not attached yet). Raises
    :class:`OverviewFormatError` for anything else."""
    try:
        header, *lines = text.split("\n")
        head = json.loads(header)
        if not isinstance(head, dict) or head.get("format") != OVERVIEW_FORMAT:
            found = head.get("format") if isinstance(head, dict) else "?"
            raise OverviewFormatError(f"customer list in format {found}, expected {OVERVIEW_FORMAT}")
        unknowns: dict[tuple[str, ...], frozenset[System]] = {}
        rows: list[CustomerRow] = []
        for line in lines:
            for item in json.loads(line):
                if len(item) != _ROW_FIELDS:
                    raise OverviewFormatError("a customer-list row has the wrong number of fields")
                cid, name, email, tax_id, country, erp_party, erp_code, org, org_name, status, plan, tier, unk = item
                if not isinstance(cid, str) or not isinstance(name, str):
                    raise OverviewFormatError("a customer-list row has no id or name")
                key = tuple(unk)
                unknown = unknowns.get(key)
                if unknown is None:
                    unknown = unknowns[key] = frozenset(System(x) for x in key)
                row = CustomerRow(cid, name, email, tax_id, country, erp_party, erp_code, org, org_name, status,
                                  plan, tier, unknown=unknown)
                row.search = _search_text(row)
                rows.append(row)
        if len(rows) != head.get("rows"):
            raise OverviewFormatError(f"customer list cut short: {len(rows)} of {head.get('rows')} rows")
        return rows
    except OverviewFormatError:
        raise
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise OverviewFormatError(f"unreadable customer list: {exc}") from exc


# -- filtering and sorting ---------------------------------------------------------------
def _key_text(v: str | None) -> str:
    return (v or "").casefold()


SORT_KEYS: dict[str, Callable[[CustomerRow], Any]] = {
    "customer_id": lambda r: r.customer_id,
    "name": lambda r: _key_text(r.name),
    "email": lambda r: _key_text(r.email),
    "erp": lambda r: (r.erp_party is None, int(r.erp_party) if r.erp_party and r.erp_party.isdigit() else 0),
    "support": lambda r: (r.support_org is None, r.support_org or ""),
    "status": lambda r: r.status,
    "plan": lambda r: r.plan,
    "tier": lambda r: TIER_RANK.get(Tier(r.tier), 0) if r.tier else 0,
    "open_exceptions": lambda r: r.open_exceptions,
    "health": lambda r: SEVERITY_RANK.get(r.worst, 0) if r.worst else 0,
    "country": lambda r: r.country,
    "tax_id": lambda r: r.tax_id,
}


#: between rows in a :class:`RowFilter` haystack; a search term holding it is never looked up there
_SEP = "\x01"


def _estimate_count(hay: str, term: str, windows: int = 16) -> float:
    """About how often ``term`` occurs in ``hay``, from a sixteenth of it in ``windows`` spread
    windows (the haystack is sorted, so one contiguous sample would be biased)."""
    size = len(hay)
    span = max(len(term) * 8, size // (windows * 16))
    if span * windows >= size:
        return hay.count(term)
    seen = sum(hay.count(term, w * size // windows, w * size // windows + span) for w in range(windows))
    return seen * size / (span * windows)


@dataclass
class RowFilter:
    """Search + sort over a fixed list of rows; returns row indices.

    A search term is looked up in one string per sort order — every row's search text joined
    in that order (the *haystack*) — with ``str.count`` and ``str.find`` at C speed, and the
    hits mapped back to rows by their offsets: a rare term over 100,000 rows costs a few ms
    instead of a Python-level test per row. A term most rows hold is tested row by row
    (``compress`` over ``operator.contains``), which is then cheaper than a find per hit."""

    rows: list[CustomerRow]
    _orders: dict[str, list[int]] = field(default_factory=dict)
    _haystacks: dict[str, tuple[str, list[int]]] = field(default_factory=dict)
    _search: list[str] | None = None

    def order(self, key: str) -> list[int]:
        """All row indices sorted by ``key`` (cached per key)."""
        if key not in self._orders:
            fn = SORT_KEYS[key]
            rows = self.rows
            self._orders[key] = sorted(range(len(rows)), key=lambda i: (fn(rows[i]), rows[i].customer_id))
        return self._orders[key]

    def prepare(self, key: str) -> None:
        """Compute what searching and sorting by ``key`` need (off the UI thread)."""
        self.haystack(key)

    def searches(self) -> list[str]:
        if self._search is None:
            self._search = [r.search for r in self.rows]
        return self._search

    def haystack(self, key: str) -> tuple[str, list[int]]:
        """(the search texts joined in ``key`` order, where each one starts) — cached per key."""
        cached = self._haystacks.get(key)
        if cached is None:
            search = self.searches()
            parts = [search[i] for i in self.order(key)]
            starts = list(accumulate((len(p) + 1 for p in parts), initial=0))
            starts.pop()
            cached = self._haystacks[key] = (_SEP.join(parts), starts)
        return cached

    def _positions(self, key: str, term: str) -> list[int] | None:
        """Positions in ``order(key)`` whose search text holds ``term``, ascending; None when
        most rows do (then a test per row is cheaper)."""
        hay, starts = self.haystack(key)
        if _SEP in term or _estimate_count(hay, term) > len(starts) // 3:
            return None
        found: list[int] = []
        end = len(hay)
        pos = hay.find(term)
        while pos != -1:
            k = bisect_right(starts, pos) - 1
            found.append(k)
            pos = hay.find(term, starts[k + 1] if k + 1 < len(starts) else end)  # next row on
        return found

    def apply(self, query: str = "", sort_key: str = "name", descending: bool = False,
              only_with_exceptions: bool = False) -> list[int]:
        order = self.order(sort_key)
        terms = fold(query).split()
        rows = self.rows
        if not terms and not only_with_exceptions:
            return order[::-1] if descending else list(order)
        selected: list[int] = order
        if terms:
            positions = self._positions(sort_key, terms[0])
            if positions is not None:
                selected = list(map(order.__getitem__, positions))
                terms = terms[1:]
        if only_with_exceptions:
            selected = [i for i in selected if rows[i].open_exceptions]
        search = self.searches()
        for term in terms:  # each term narrows the previous result: later terms scan fewer rows
            selected = list(compress(selected, map(contains, map(search.__getitem__, selected), repeat(term))))
        if selected is order:
            selected = list(order)
        if descending:
            selected.reverse()
        return selected


def exception_counts(exceptions: Sequence[SyncException]) -> Counter[str]:
    return Counter(e.rule for e in exceptions if e.is_open)
