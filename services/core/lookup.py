"""Find a customer by what a user knows (Qt-free; the ``customers``, ``timeline``, ``reconcile
--customer`` and ``fix --customer`` commands).

A query is tried in three tiers, and the first tier that finds anything answers:

1. **exact**: the whole query (case- and accent-insensitive, :func:`~services.core.overview.fold`)
   is a billing customer id (which is also the ERP party's code and the support organization's
   external id), an ERP party id, a support organization id, an e-mail address, an e-mail
   domain (``beacon.example`` or ``@beacon.example``), a tax id, or a customer's whole name;
2. **prefix**: a query without spaces that begins one of those ids (``cus_MNo3``, ``36000002``);
3. **partial**: every word of the query appears in the customer's searchable text (names in
   billing, the ERP and support, e-mail, ids, tax id), as the console's customer search finds
   it (:class:`~services.core.overview.RowFilter`: one ``str.find`` pass over all rows).

:class:`Lookup` says which customers matched, how, and whether the answer is unique. The
customers are the billing customers, plus the customer ids only the ERP or support hold (a
party code or an organization's external id no billing customer has), so anything the
timeline can show can be found.

Built once per snapshot (:class:`CustomerIndex`, ~0.5 s at 100,000 customers); a lookup
then costs a dictionary probe, a bisection, or one scan of the search text (a few ms at
100,000 customers: ``tests/bench/bench_lookup.py``).
"""

from __future__ import annotations

import enum
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from services.core.domain import Customer, Subscription, SyncException, System
from services.core.overview import CustomerRow, RowFilter, attach_exceptions, build_customer_rows, fold
from services.core.reconcile import Snapshot


class Via(enum.StrEnum):
    """What a query matched."""

    CUSTOMER_ID = "customer id"  # the billing id = the ERP party code = the organization's external id
    ERP_PARTY = "ERP party id"
    SUPPORT_ORG = "support organization id"
    EMAIL = "e-mail address"
    DOMAIN = "e-mail domain"
    TAX_ID = "tax id"
    NAME = "name"
    TEXT = "text"  # a partial match somewhere in the searchable text other than the names


class MatchKind(enum.StrEnum):
    """Which tier of the search answered."""

    EXACT = "exact"
    PREFIX = "prefix"
    PARTIAL = "partial"
    NONE = "none"


_VIAS = list(Via)
_VIA_CODE = {via: n for n, via in enumerate(_VIAS)}
#: the ids a prefix may begin (names and e-mail are found by the partial tier)
_PREFIX_CODES = frozenset(_VIA_CODE[v] for v in (Via.CUSTOMER_ID, Via.ERP_PARTY, Via.SUPPORT_ORG, Via.TAX_ID))


@dataclass(frozen=True)
class Match:
    row: CustomerRow
    via: Via
    key: str  # what matched, as the system holds it (an id, a domain, a name)

    @property
    def customer_id(self) -> str:
        return self.row.customer_id

    def describe(self) -> str:
        """``cus_X  Acme Ltd  (ERP party id 42)``."""
        shown = "" if self.via in (Via.NAME, Via.TEXT) or self.key == self.row.customer_id else f" {self.key}"
        return f"{self.row.customer_id}  {self.row.name}  ({self.via.value}{shown})"


@dataclass
class Lookup:
    query: str
    kind: MatchKind
    matches: list[Match] = field(default_factory=list)

    @property
    def unique(self) -> Match | None:
        return self.matches[0] if len(self.matches) == 1 else None

    def customer_ids(self) -> list[str]:
        return [m.customer_id for m in self.matches]

    def problem(self, limit: int = 10) -> str | None:
        """None when exactly one customer matched, else one line saying so (the candidates,
        at most ``limit`` of them, for several)."""
        if self.unique is not None:
            return None
        if not self.matches:
            return (f"no customer {self.query!r} in any system (tried ids of billing, the ERP and support, "
                    "e-mail domains, tax ids and names)")
        shown = "; ".join(m.describe() for m in self.matches[:limit])
        more = f"; and {len(self.matches) - limit} more" if len(self.matches) > limit else ""
        return (f"{self.query!r} matches {len(self.matches)} customers ({self.kind.value}): {shown}{more}; "
                "give more of the name or an id")


def email_domain(email: str | None) -> str | None:
    if not email or "@" not in email:
        return None
    domain = email.rsplit("@", 1)[1].strip()
    return domain or None


def _extra_rows(snapshot: Snapshot, known: set[str]) -> list[CustomerRow]:
    """Rows for customer ids the ERP or support hold and billing does not (named as they are there)."""
    rows: dict[str, CustomerRow] = {}
    unknown = frozenset(x for x in (System.ERP, System.SUPPORT) if x not in snapshot.systems)
    for system in (System.ERP, System.SUPPORT):
        for rec in snapshot.get(system).customers.values():
            cid = rec.customer_id
            if not cid or cid in known:
                continue
            row = rows.get(cid)
            if row is None:
                row = rows[cid] = CustomerRow(customer_id=cid, name=rec.name, email=rec.email or "",
                                              tax_id=rec.tax_id or "", country=rec.country or "", unknown=unknown)
            if system is System.ERP and row.erp_party is None:
                row.erp_party, row.erp_code = rec.ref.id, cid
            elif system is System.SUPPORT and row.support_org is None:
                row.support_org, row.support_name = rec.ref.id, rec.name
    out = list(rows.values())
    for row in out:
        row.search = fold("\x00".join([row.customer_id, row.name, row.email, row.tax_id, row.erp_party or "",
                                      row.erp_code or "", row.support_org or "", row.support_name or ""]))
    return out


class CustomerIndex:
    """Every customer of a snapshot, findable by :meth:`find`. Keeps the rows
    (:class:`~services.core.overview.CustomerRow`, with their open exceptions) for listing."""

    def __init__(self, rows: Sequence[CustomerRow], records: Iterable[tuple[str, Customer]] = (),
                 subscriptions: dict[str, list[Subscription]] | None = None) -> None:
        """``rows``: one per customer; ``records``: (customer id, record) of every system's
        customer record (their ids, names, e-mails and tax ids are keys too)."""
        self.rows = list(rows)
        self.filter = RowFilter(self.rows)
        self.subscriptions = subscriptions or {}
        self.position = {row.customer_id: i for i, row in enumerate(self.rows)}
        # folded key -> one hit, or a list of hits; a hit is ``row << 3 | via``: plain ints, so
        # 100,000 customers' million keys make no container the collector must walk
        exact: dict[str, int | list[int]] = {}
        prefixed: set[str] = set()

        def add(text: str | None, i: int, via: int) -> None:
            if not text:
                return
            folded = fold(text.strip())
            hit = i << 3 | via
            old = exact.get(folded)
            if old is None:
                exact[folded] = hit
            elif isinstance(old, int):
                if old >> 3 != i:
                    exact[folded] = [old, hit]
            elif all(h >> 3 != i for h in old):
                old.append(hit)
            if via in _PREFIX_CODES:
                prefixed.add(folded)

        cid_, party_, org_, email_, domain_, tax_ = (_VIA_CODE[v] for v in (
            Via.CUSTOMER_ID, Via.ERP_PARTY, Via.SUPPORT_ORG, Via.EMAIL, Via.DOMAIN, Via.TAX_ID))
        for i, row in enumerate(self.rows):
            add(row.customer_id, i, cid_)
            add(row.erp_party, i, party_)
            add(row.support_org, i, org_)
            if row.email:
                add(row.email, i, email_)
                add(email_domain(row.email), i, domain_)
            add(row.tax_id, i, tax_)
        # what the ERP's and support's records add to their row (a second party, the party's own
        # e-mail or tax id): names are found by the partial tier, whole names made exact there
        for cid, rec in records:
            j = self.position.get(cid)
            if j is None:
                continue
            row = self.rows[j]
            if rec.ref.system is System.ERP:
                if rec.ref.id != row.erp_party:
                    add(rec.ref.id, j, party_)
            elif rec.ref.system is System.SUPPORT and rec.ref.id != row.support_org:
                add(rec.ref.id, j, org_)
            if rec.email and rec.email != row.email:
                add(rec.email, j, email_)
                add(email_domain(rec.email), j, domain_)
            if rec.tax_id and rec.tax_id != row.tax_id:
                add(rec.tax_id, j, tax_)
        self.exact = exact
        #: the ids a prefix may begin, sorted
        self.ids = sorted(prefixed)

    @classmethod
    def from_snapshot(cls, snapshot: Snapshot, exceptions: Sequence[SyncException] = ()) -> CustomerIndex:
        """The customers of ``snapshot`` (billing's, and the ids only the ERP or support hold),
        with their open exceptions."""
        rows = build_customer_rows(snapshot)
        extra = _extra_rows(snapshot, {r.customer_id for r in rows})
        rows.extend(extra)
        attach_exceptions(rows, exceptions)
        records = ((rec.customer_id, rec) for system in (System.ERP, System.SUPPORT)
                   for rec in snapshot.get(system).customers.values() if rec.customer_id)
        subs: dict[str, list[Subscription]] = defaultdict(list)
        for sub in snapshot.get(System.BILLING).subscriptions.values():
            if sub.customer_id:
                subs[sub.customer_id].append(sub)
        return cls(rows, records, dict(subs))

    def row(self, customer_id: str) -> CustomerRow | None:
        i = self.position.get(customer_id)
        return None if i is None else self.rows[i]

    def find(self, query: str) -> Lookup:
        """The customers ``query`` names, from the first tier that finds any (see the module
        doc); matches in the customer list's name order."""
        text = query.strip()
        folded = fold(text)
        if not folded:
            return Lookup(query, MatchKind.NONE)
        probe = folded[1:] if folded.startswith("@") and "@" not in folded[1:] else folded
        hits = self.exact.get(probe)
        if hits is not None:
            return Lookup(query, MatchKind.EXACT, self._matches(probe, [hits] if isinstance(hits, int) else hits))
        if not any(ch.isspace() for ch in folded):
            found: list[tuple[str, int]] = []
            seen: set[int] = set()
            at = bisect_left(self.ids, folded)
            while at < len(self.ids) and self.ids[at].startswith(folded):
                key = self.ids[at]
                entry = self.exact[key]
                for hit in [entry] if isinstance(entry, int) else entry:
                    if hit & 7 in _PREFIX_CODES and hit >> 3 not in seen:
                        seen.add(hit >> 3)
                        found.append((key, hit))
                at += 1
            if found:
                return Lookup(query, MatchKind.PREFIX, self._ordered(
                    (hit >> 3, _VIAS[hit & 7], self._shown(key, hit)) for key, hit in found))
        indices = self.filter.apply(text, "name")
        if not indices:
            return Lookup(query, MatchKind.NONE)
        terms = folded.split()
        whole = " ".join(terms)
        out: list[Match] = []
        exact: list[Match] = []
        for i in indices:
            row = self.rows[i]
            names = (fold(row.name), fold(row.support_name or ""))
            if whole in (" ".join(n.split()) for n in names):
                exact.append(Match(row, Via.NAME, row.name))
            via = Via.NAME if all(any(t in n for n in names) for t in terms) else Via.TEXT
            out.append(Match(row, via, row.name))
        if exact:  # a customer's whole name (spaces aside)
            return Lookup(query, MatchKind.EXACT, exact)
        return Lookup(query, MatchKind.PARTIAL, out)

    def _shown(self, key: str, hit: int) -> str:
        """What matched as the system holds it (the folded key for ids, e-mail and domains)."""
        row = self.rows[hit >> 3]
        via = _VIAS[hit & 7]
        if via is Via.CUSTOMER_ID:
            return row.customer_id
        if via is Via.NAME:
            return row.name
        return key

    def _matches(self, key: str, hits: list[int]) -> list[Match]:
        return self._ordered((hit >> 3, _VIAS[hit & 7], self._shown(key, hit)) for hit in hits)

    def _ordered(self, hits: Iterable[tuple[int, Via, str]]) -> list[Match]:
        items = sorted(hits, key=lambda h: (fold(self.rows[h[0]].name.strip()), self.rows[h[0]].customer_id))
        return [Match(self.rows[i], via, key) for i, via, key in items]

    def prepare(self) -> None:
        """Build what the partial tier searches (the name order and its search text) now
        rather than at the first partial lookup."""
        self.filter.prepare("name")

    def subscription_of(self, customer_id: str) -> list[Subscription]:
        return self.subscriptions.get(customer_id, [])
