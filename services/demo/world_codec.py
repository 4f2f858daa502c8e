"""The demo world on disk: an explicit, versioned codec (gzip-compressed JSON, no pickle).

One file holds everything the three demo systems keep between requests: the billing, ERP and
support stores (:mod:`services.demo.store`), the Stripe server's ``Idempotency-Key`` answers
(kept on the billing store), the planted-mismatch manifest and the world's
:class:`WorldMeta` (its parameters and its clock). Credentials are never written: the demo's
are fixed (:class:`~services.demo.store.DemoCredentials`) and are put back on load.

Document (``FORMAT`` = ``"syncdesk-demo-world"``, ``VERSION`` = 1)::

    {"format": ..., "version": 1, "meta": {...}, "manifest": [...],
     "billing": {"account_id", "counter", "products", "prices", "customers", "subscriptions",
                 "invoices", "events", "idempotency"},
     "erp": {"database", "next_ids", "versions", "tables": {model: [record, ...]}},
     "support": {"subdomain", "next_ids", "organization_fields", "organizations", "users",
                 "tickets"}}

Billing records are the store's dataclasses written as objects of their fields (a field the
file lacks takes its default; a field the class lacks is an error); record containers are
lists in creation order (the stores' dicts keep that order, and Stripe lists depend on it).
Values that JSON lacks are tagged as a one-key object: ``{"$dec": "12.50"}`` (Decimal, its
exact text), ``{"$dt": "...+00:00"}`` (aware datetime), ``{"$ndt": "..."}`` (naive datetime,
as the ERP stores them), ``{"$date": "YYYY-MM-DD"}``, ``{"$tuple": [...]}``, ``{"$bytes":
base64}``; an object whose keys are not all strings, or that has a key starting with ``$``, is
written ``{"$map": [[key, value], ...]}`` so that no stored text is ever read as a tag. Any
other type is refused when writing (:class:`TypeError`): a new kind of value must get a tag
and a round-trip test, not be guessed.

Reading checks the format name and version first, and turns any damage (not gzip, not JSON,
a missing or ill-typed part, an unknown tag or field) into :class:`WorldFormatError`; the
indexes the stores keep beside their records are rebuilt, never read.
"""

from __future__ import annotations

import base64
import gzip
import json
import zlib
from dataclasses import MISSING, dataclass, fields
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from services.demo.store import (
    BCharge,
    BCoupon,
    BCreditNote,
    BCreditNoteLine,
    BCustomer,
    BEvent,
    BillingStore,
    BInvoice,
    BInvoiceLine,
    BPrice,
    BProduct,
    BRefund,
    BSubItem,
    BSubscription,
    BTaxRate,
    DemoCredentials,
    DemoDataset,
    ErpStore,
    ManifestEntry,
    SupportStore,
)
from services.demo.stripe.idempotency import _IdemEntry

FORMAT = "syncdesk-demo-world"
VERSION = 1
#: gzip level: 6 halves the size of level 1 for twice the time; the file is written after
#: every batch of writes, so speed wins
GZIP_LEVEL = 3


class WorldFormatError(Exception):
    """The file is not a demo world this version can read (damaged, or another format version)."""

    def __init__(self, reason: str, *, version: object = None) -> None:
        super().__init__(reason)
        self.reason = reason
        #: the format version the file declares, when it is another one than :data:`VERSION`
        self.version = version


@dataclass
class WorldMeta:
    """What a world is and how its clock runs.

    The demo's clock is fixed at creation (``anchor``, the dataset's "now") and then follows
    real time: at wall-clock time ``t`` it reads ``anchor + (t - created_at)``, never less than
    ``clock`` (the demo time when the world was last saved), so it never runs backwards across
    runs even if the computer's clock does."""

    customers: int
    seed: int
    anchor: int
    mismatch_rate: float | None
    created_at: float  # wall-clock unix time at which the world was created
    clock: float  # the demo's "now" (unix seconds) when the world was last saved
    saved_at: float = 0.0  # wall-clock unix time of the last save

    def as_json(self) -> dict[str, Any]:
        return {"customers": self.customers, "seed": self.seed, "anchor": self.anchor,
                "mismatch_rate": self.mismatch_rate, "created_at": self.created_at, "clock": self.clock,
                "saved_at": self.saved_at}


# -- values ----------------------------------------------------------------------------------------
_PLAIN = (str, int, float, bool, type(None))


def encode_value(v: Any) -> Any:
    """``v`` as JSON-ready data, with the tags of the module docstring."""
    t = type(v)
    if t is str or t is int or t is bool or v is None:
        return v
    if t is float:
        if v != v or v in (float("inf"), float("-inf")):
            raise TypeError("a NaN or infinite float has no place in the demo world")
        return v
    if t is dict:
        if all(type(k) is str and not k.startswith("$") for k in v):
            return {k: (x if type(x) in _PLAIN and type(x) is not float else encode_value(x)) for k, x in v.items()}
        return {"$map": [[encode_value(k), encode_value(x)] for k, x in v.items()]}
    if t is list:
        return [x if type(x) is str or type(x) is int else encode_value(x) for x in v]
    if t is Decimal:
        return {"$dec": str(v)}
    if t is datetime:
        return {"$dt" if v.tzinfo is not None else "$ndt": v.isoformat()}
    if t is date:
        return {"$date": v.isoformat()}
    if t is tuple:
        return {"$tuple": [encode_value(x) for x in v]}
    if t is bytes:
        return {"$bytes": base64.b64encode(v).decode("ascii")}
    raise TypeError(f"the demo world codec has no tag for {t.__name__} values")


class _Decoder:
    """The ``object_hook`` of :func:`json.loads`: tagged objects back to values (equal values
    share one object, as the generator's caches made them share)."""

    def __init__(self) -> None:
        self.decimals: dict[str, Decimal] = {}
        self.dates: dict[str, date] = {}

    def hook(self, obj: dict[str, Any]) -> Any:
        if len(obj) != 1:
            return obj
        ((key, raw),) = obj.items()
        if not key.startswith("$"):
            return obj
        try:
            if key == "$dec":
                value = self.decimals.get(raw)
                if value is None:
                    value = self.decimals[raw] = Decimal(_text(raw))
                    if not value.is_finite():
                        raise ValueError("not a finite number")
                return value
            if key == "$ndt":
                naive = datetime.fromisoformat(_text(raw))
                if naive.tzinfo is not None:
                    raise ValueError("a naive time with a time zone")
                return naive
            if key == "$dt":
                aware = datetime.fromisoformat(_text(raw))
                if aware.tzinfo is None:
                    raise ValueError("an aware time without a time zone")
                return aware
            if key == "$date":
                day = self.dates.get(raw)
                if day is None:
                    day = self.dates[raw] = date.fromisoformat(_text(raw))
                return day
            if key == "$tuple":
                return tuple(_list(raw))
            if key == "$bytes":
                return base64.b64decode(_text(raw), validate=True)
            if key == "$map":
                out: dict[Any, Any] = {}
                for pair in _list(raw):
                    if not isinstance(pair, list) or len(pair) != 2:
                        raise ValueError("a $map entry is not a [key, value] pair")
                    out[pair[0]] = pair[1]
                return out
        except (ValueError, TypeError, InvalidOperation) as exc:
            raise WorldFormatError(f"a {key} value cannot be read: {exc}") from None
        raise WorldFormatError(f"unknown tag {key!r}")


def _text(raw: Any) -> str:
    if not isinstance(raw, str):
        raise TypeError(f"expected text, found {type(raw).__name__}")
    return raw


def _list(raw: Any) -> list[Any]:
    if not isinstance(raw, list):
        raise TypeError(f"expected a list, found {type(raw).__name__}")
    return raw


# -- records ---------------------------------------------------------------------------------------
#: nested record lists inside billing records: (class, field) -> the class of its items
_NESTED: dict[tuple[type, str], type] = {(BSubscription, "items"): BSubItem, (BInvoice, "lines"): BInvoiceLine,
                                         (BCreditNote, "lines"): BCreditNoteLine}


def _encode_record(rec: Any) -> dict[str, Any]:
    cls = type(rec)
    out: dict[str, Any] = {}
    for f in fields(cls):
        value = getattr(rec, f.name)
        item_cls = _NESTED.get((cls, f.name))
        out[f.name] = [_encode_record(x) for x in value] if item_cls is not None else encode_value(value)
    return out


def _decode_record(cls: type, raw: Any, where: str) -> Any:
    if not isinstance(raw, dict):
        raise WorldFormatError(f"{where}: a record is not an object")
    known = {f.name: f for f in fields(cls)}
    unknown = set(raw) - set(known)
    if unknown:
        raise WorldFormatError(f"{where}: unknown field {sorted(unknown)[0]!r} in a {cls.__name__}")
    values: dict[str, Any] = {}
    for name, f in known.items():
        if name not in raw:
            if f.default is MISSING and f.default_factory is MISSING:
                raise WorldFormatError(f"{where}: a {cls.__name__} lacks its {name!r}")
            continue
        item_cls = _NESTED.get((cls, name))
        value = raw[name]
        values[name] = ([_decode_record(item_cls, x, where) for x in _list_at(value, where)]
                        if item_cls is not None else value)
    try:
        return cls(**values)
    except TypeError as exc:
        raise WorldFormatError(f"{where}: {exc}") from None


def _list_at(raw: Any, where: str) -> list[Any]:
    if not isinstance(raw, list):
        raise WorldFormatError(f"{where}: expected a list")
    return raw


def _dict_at(raw: Any, where: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise WorldFormatError(f"{where}: expected an object")
    return raw


def _get(part: dict[str, Any], key: str, where: str, kind: type | tuple[type, ...]) -> Any:
    if key not in part:
        raise WorldFormatError(f"{where}: {key!r} is missing")
    value = part[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise WorldFormatError(f"{where}: {key!r} has the wrong type")
    return value


def _int_map(raw: Any, where: str) -> dict[str, int]:
    out = _dict_at(raw, where)
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in out.values()):
        raise WorldFormatError(f"{where}: expected whole numbers")
    return dict(out)


# -- the stores ------------------------------------------------------------------------------------
_BILLING_TABLES: dict[str, type] = {"products": BProduct, "prices": BPrice, "customers": BCustomer,
                                    "subscriptions": BSubscription, "invoices": BInvoice,
                                    "tax_rates": BTaxRate, "coupons": BCoupon, "credit_notes": BCreditNote,
                                    "charges": BCharge, "refunds": BRefund}
#: billing tables added after version 1 was first written: a world saved before has none (empty)
_BILLING_LATER = frozenset({"tax_rates", "coupons", "credit_notes", "charges", "refunds"})


def _encode_billing(b: BillingStore) -> dict[str, Any]:
    out: dict[str, Any] = {"account_id": b.account_id, "counter": b.counter}
    for name in _BILLING_TABLES:
        table: dict[str, Any] = getattr(b, name)
        out[name] = [_encode_record(r) for r in table.values()]
    out["events"] = [_encode_record(e) for e in b.events]
    out["idempotency"] = [{"key": k, "method": e.method, "path": e.path, "params": encode_value(e.params),
                           "status": e.status, "body": base64.b64encode(e.body).decode("ascii"),
                           "created": e.created} for k, e in b.idempotency.items()]
    return out


def _decode_billing(raw: Any) -> BillingStore:
    part = _dict_at(raw, "billing")
    b = BillingStore()
    b.account_id = _get(part, "account_id", "billing", str)
    b.counter = _get(part, "counter", "billing", int)
    for name, cls in _BILLING_TABLES.items():
        table: dict[str, Any] = getattr(b, name)
        rows = [] if name in _BILLING_LATER and name not in part else _get(part, name, "billing", list)
        for item in _list_at(rows, f"billing {name}"):
            rec = _decode_record(cls, item, f"billing {name}")
            if rec.id in table:
                raise WorldFormatError(f"billing {name}: {rec.id!r} appears twice")
            table[rec.id] = rec
    b.events = [_decode_record(BEvent, e, "billing events") for e in _get(part, "events", "billing", list)]
    for item in _get(part, "idempotency", "billing", list):
        entry = _dict_at(item, "billing idempotency")
        try:
            b.idempotency[_get(entry, "key", "billing idempotency", str)] = _IdemEntry(
                _get(entry, "method", "billing idempotency", str), _get(entry, "path", "billing idempotency", str),
                _get(entry, "params", "billing idempotency", dict), _get(entry, "status", "billing idempotency", int),
                base64.b64decode(_get(entry, "body", "billing idempotency", str), validate=True),
                _get(entry, "created", "billing idempotency", int))
        except ValueError as exc:
            raise WorldFormatError(f"billing idempotency: {exc}") from None
    b.rebuild_indexes()
    return b


def _encode_erp(e: ErpStore) -> dict[str, Any]:
    return {"database": e.database, "next_ids": dict(e.next_ids), "versions": dict(e.versions),
            "tables": {model: [encode_value(rec) for rec in table.values()] for model, table in e.tables.items()}}


def _decode_erp(raw: Any) -> ErpStore:
    part = _dict_at(raw, "erp")
    e = ErpStore(_get(part, "database", "erp", str))
    tables = _get(part, "tables", "erp", dict)
    if set(tables) < set(e.tables):  # saved by an earlier SyncDesk, before these models existed
        missing = sorted(set(e.tables) - set(tables))
        raise WorldFormatError(f"its ERP has no {', '.join(map(repr, missing))}: it predates them",
                               version="an earlier one")
    if set(tables) != set(e.tables):
        missing = sorted(set(e.tables) ^ set(tables))
        raise WorldFormatError(f"erp: the tables differ from this version's models ({missing[0]!r})")
    for model, records in tables.items():
        table = e.tables[model]
        for rec in _list_at(records, f"erp {model}"):
            rec = _dict_at(rec, f"erp {model}")
            rid = rec.get("id")
            if not isinstance(rid, int) or isinstance(rid, bool) or rid in table:
                raise WorldFormatError(f"erp {model}: a record without a unique whole-number id")
            table[rid] = rec
    next_ids = _int_map(_get(part, "next_ids", "erp", dict), "erp next_ids")
    versions = _int_map(_get(part, "versions", "erp", dict), "erp versions")
    if set(next_ids) != set(e.next_ids) or set(versions) != set(e.versions):
        raise WorldFormatError("erp: next_ids or versions do not name this version's models")
    if any(table and max(table) >= next_ids[m] for m, table in e.tables.items()):
        raise WorldFormatError("erp: a record id is not below its model's next id")
    e.next_ids, e.versions = next_ids, versions
    e.rebuild_indexes()
    return e


_SUPPORT_TABLES = ("organizations", "users", "tickets")


def _encode_support(s: SupportStore) -> dict[str, Any]:
    out: dict[str, Any] = {"subdomain": s.subdomain, "next_ids": dict(s.next_ids),
                           "organization_fields": encode_value(s.organization_fields)}
    for name in _SUPPORT_TABLES:
        table: dict[int, dict[str, Any]] = getattr(s, name)
        out[name] = [encode_value(rec) for rec in table.values()]
    return out


def _decode_support(raw: Any) -> SupportStore:
    part = _dict_at(raw, "support")
    s = SupportStore()
    s.subdomain = _get(part, "subdomain", "support", str)
    s.next_ids = _int_map(_get(part, "next_ids", "support", dict), "support next_ids")
    s.organization_fields = [_dict_at(f, "support organization_fields")
                             for f in _get(part, "organization_fields", "support", list)]
    for name in _SUPPORT_TABLES:
        table: dict[int, dict[str, Any]] = getattr(s, name)
        for rec in _list_at(_get(part, name, "support", list), f"support {name}"):
            rec = _dict_at(rec, f"support {name}")
            rid = rec.get("id")
            if not isinstance(rid, int) or isinstance(rid, bool) or rid in table:
                raise WorldFormatError(f"support {name}: a record without a unique whole-number id")
            table[rid] = rec
    s.rebuild_indexes()
    return s


def _restore_credentials(ds: DemoDataset) -> None:
    """The demo's fixed credentials, as the generator sets them (never written to the file)."""
    c = ds.credentials
    ds.erp.passwords[c.tryton_login] = c.tryton_password
    ds.support.tokens[c.zendesk_email] = c.zendesk_token


# -- the file --------------------------------------------------------------------------------------
def encode_world(ds: DemoDataset, meta: WorldMeta) -> dict[str, Any]:
    """The world as JSON-ready data. Reads the stores: the caller holds their locks when the
    servers are running (:func:`services.demo.world.DemoWorld.save`)."""
    return {"format": FORMAT, "version": VERSION, "meta": meta.as_json(),
            "manifest": [m.as_dict() for m in ds.manifest],
            "billing": _encode_billing(ds.billing), "erp": _encode_erp(ds.erp), "support": _encode_support(ds.support)}


def dump_world(doc: dict[str, Any]) -> bytes:
    """:func:`encode_world`'s data as the bytes of the file (no lock needed)."""
    text = json.dumps(doc, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return gzip.compress(text.encode("utf-8"), compresslevel=GZIP_LEVEL, mtime=0)


def _document(data: bytes) -> dict[str, Any]:
    try:
        text = gzip.decompress(data).decode("utf-8")
    except (OSError, EOFError, zlib.error, UnicodeDecodeError) as exc:
        raise WorldFormatError(f"not a compressed demo world ({type(exc).__name__})") from None
    decoder = _Decoder()
    try:
        doc = json.loads(text, object_hook=decoder.hook)
    except ValueError as exc:  # JSONDecodeError
        raise WorldFormatError(f"not JSON ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise WorldFormatError("not a demo world file")
    version = doc.get("version")
    if version != VERSION:
        raise WorldFormatError(f"format version {version!r}; this SyncDesk reads version {VERSION}", version=version)
    return doc


def read_meta(data: bytes) -> WorldMeta:
    """Only the world's :class:`WorldMeta` (still reads the whole file)."""
    return _meta(_document(data).get("meta"))


def _meta(raw: Any) -> WorldMeta:
    part = _dict_at(raw, "meta")
    rate = part.get("mismatch_rate")
    if rate is not None and not isinstance(rate, int | float):
        raise WorldFormatError("meta: 'mismatch_rate' has the wrong type")
    number = (int, float)
    return WorldMeta(customers=_get(part, "customers", "meta", int), seed=_get(part, "seed", "meta", int),
                     anchor=_get(part, "anchor", "meta", int), mismatch_rate=rate,
                     created_at=float(_get(part, "created_at", "meta", number)),
                     clock=float(_get(part, "clock", "meta", number)),
                     saved_at=float(_get(part, "saved_at", "meta", number)))


def load_world(data: bytes) -> tuple[DemoDataset, WorldMeta]:
    """The dataset and meta of a world file's bytes, indexes rebuilt and credentials restored;
    :class:`WorldFormatError` for anything this version cannot read."""
    doc = _document(data)
    meta = _meta(doc.get("meta"))
    try:
        manifest = [ManifestEntry(**_dict_at(m, "manifest")) for m in _list_at(doc.get("manifest"), "manifest")]
    except TypeError as exc:
        raise WorldFormatError(f"manifest: {exc}") from None
    ds = DemoDataset(customers=meta.customers, seed=meta.seed, anchor=meta.anchor,
                     billing=_decode_billing(doc.get("billing")), erp=_decode_erp(doc.get("erp")),
                     support=_decode_support(doc.get("support")), manifest=manifest,
                     credentials=DemoCredentials())
    _restore_credentials(ds)
    return ds, meta

