"""Tryton-compatible demo ERP server: trytond 8.2's JSON-RPC over an :class:`ErpStore`.

Behaviour follows ``shared/specs/tryton/README.md`` (verified against a real trytond 8.2):

- ``POST /<db>/rpc/`` (and ``/<db>/``) with a JSON body of exactly ``id``, ``method`` and
  ``params``; ``POST /rpc/`` answers ``common.server.version`` and ``common.db.list``.
- ``common.db.login [login, {"password": pw}, lang]`` -> ``[user_id, session, null]``; then
  ``Authorization: Session base64("login:user_id:session")`` on every call.
- ``model.<model>.<method>`` with positional params whose last element is the context.
- Errors in three kinds: ``["UserError", [message, description, domain]]`` (and
  ``UserWarning`` / ``LoginException``), ``[str(exception), ""]`` for anything else, and
  bare HTTP errors (401/403/404/422/429, HTML bodies as werkzeug renders them).
- Typed values as ``{"__class__": ...}`` objects (:mod:`services.io.tryton_rpc`).
- ``wizard.account.invoice.credit.create / execute / delete`` (the invoice's *Credit*: the only
  route to ``Invoice.credit``): with refund, a credit note copying the invoice (lines negated,
  their ``origin`` the credited lines, no reference) is posted in the invoice sequence
  (``sequence_type_cache`` = ``credit_note``) and reconciled, so it ends ``paid``, and the
  invoice ends ``cancelled``; an invoice that is not posted is refused as trytond refuses it.
  ``origin_invoices`` (computed, searchable) names the invoices a credit note credits.

Each call runs as one transaction under ``store.lock``: every mutation is journalled and
undone when the call fails, as trytond rolls back its database transaction.

Differences from trytond kept on purpose: the default order of every model is ``id ASC``
(trytond orders invoices by number), ``post`` is instant (trytond renders a report, ~1 s),
failed logins are counted but do not make later logins sleep, taxes are always zero, there are
no account moves (``cancel_move`` stays empty), and wizard sessions are kept by the service, not
in a table (creating or deleting one is no committed write for the fault injector).

Speed: equality / ``in`` leaves on indexed fields (``ErpStore.INDEXED``, also through a
many2one path such as ``party.code``) and on ``id`` narrow the candidates before the domain
predicate runs; the incremental-sync domain ``["OR", ["create_date", ">", W],
["write_date", ">", W]]`` is answered from a sorted ``(max(create_date, write_date), id)``
index per model, kept up to date on writes and rebuilt when the table changed behind the
server's back.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import contextlib
import gzip
import hashlib
import html
import logging
import re
import secrets
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from itertools import islice
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp

from services.demo.faults import FaultInjector, FaultMiddleware
from services.demo.store import ERP_MODELS, ErpStore
from services.io.tryton_rpc import decode, dumps, encode, loads

__all__ = ["SERVER_VERSION", "TrytonService", "create_app", "decode", "encode"]

log = logging.getLogger(__name__)

SERVER_VERSION = "8.2.1"
SESSION_TIMEOUT = timedelta(days=30)  # trytond [session] timeout default
LOGIN_MAX_ATTEMPTS = 5  # trytond [session] max_attempt: more failures than this -> 429
LOGIN_ATTEMPT_WINDOW = timedelta(minutes=5)
GZIP_THRESHOLD = 1400
PAYMENT_TERM_DAYS = 30

# Records of models the demo does not serve, referenced by invoices and lines.
RECEIVABLE_ACCOUNT = 1
REVENUE_ACCOUNT = 2
REVENUE_JOURNAL = 1
PAYMENT_TERM = 1
UNIT = 1
STATIC_NAMES: dict[str, dict[int, str]] = {
    "account.account": {RECEIVABLE_ACCOUNT: "Main Receivable", REVENUE_ACCOUNT: "Main Revenue"},
    "account.journal": {REVENUE_JOURNAL: "Revenue"},
    "account.invoice.payment_term": {PAYMENT_TERM: "Term 30 days"},
    "product.uom": {UNIT: "Unit"},
}

Clock = Callable[[], datetime]
Record = dict[str, Any]
Predicate = Callable[[Record], bool]
Getter = Callable[[Record], Any]


def _utc_now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


# --------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------


class TrytonException(Exception):
    """An error trytond reports inside the JSON envelope: ``"error": [kind, args]``."""

    def __init__(self, kind: str, args: list[Any]) -> None:
        super().__init__(kind, args)
        self.kind = kind
        self.payload = args

    def envelope(self) -> list[Any]:
        return [self.kind, self.payload]


class UserError(TrytonException):
    def __init__(self, message: str, description: str = "", domain: Any = None) -> None:
        super().__init__("UserError", [message, description, domain])


class TrytonUserWarning(TrytonException):
    def __init__(self, name: str, message: str, description: str = "") -> None:
        super().__init__("UserWarning", [name, message, description])


class LoginException(TrytonException):
    def __init__(self, name: str, message: str, type_: str) -> None:
        super().__init__("LoginException", [name, message, type_])


_HTTP_TEXTS: dict[int, tuple[str, str]] = {
    400: ("Bad Request", "The browser (or proxy) sent a request that this server could not understand."),
    401: ("Unauthorized", "The server could not verify that you are authorized to access the URL "
          "requested. You either supplied the wrong credentials (e.g. a bad password), or your "
          "browser doesn't understand how to supply the credentials required."),
    403: ("Forbidden", "You don't have the permission to access the requested resource. It is "
          "either read-protected or not readable by the server."),
    404: ("Not Found", "The requested URL was not found on the server. If you entered the URL "
          "manually please check your spelling and try again."),
    405: ("Method Not Allowed", "The method is not allowed for the requested URL."),
    417: ("Expectation Failed", "The server could not meet the requirements of the Expect header"),
    422: ("Unprocessable Entity", "The request was well-formed but was unable to be followed due "
          "to semantic errors."),
    429: ("Too Many Requests", "This user has exceeded an allotted request count. Try again later."),
    500: ("Internal Server Error", "The server encountered an internal error and was unable to "
          "complete your request. Either the server is overloaded or there is an error in the "
          "application."),
    503: ("Service Unavailable", "The server is temporarily unable to service your request due to "
          "maintenance downtime or capacity problems. Please try again later."),
}


def html_error(status: int, description: str | None = None,
               headers: dict[str, str] | None = None) -> Response:
    """An HTTP error page as werkzeug renders it (trytond aborts through werkzeug)."""
    name, default = _HTTP_TEXTS.get(status, ("Error", ""))
    body = (f"<!doctype html>\n<html lang=en>\n<title>{status} {name}</title>\n<h1>{name}</h1>\n"
            f"<p>{html.escape(description or default)}</p>\n")
    all_headers = {"Connection": "close", **(headers or {})}
    return Response(body, status_code=status, media_type="text/html; charset=utf-8", headers=all_headers)


class HTTPAbort(Exception):
    """A bare HTTP error answer (the third kind of error)."""

    def __init__(self, status: int, *, empty: bool = False, headers: dict[str, str] | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.empty = empty
        self.headers = headers or {}

    def response(self) -> Response:
        if self.empty:
            return Response(b"", status_code=self.status, headers={"Connection": "close", **self.headers})
        return html_error(self.status, headers=self.headers)


def render_fault(status: int, message: str, retry_after: float | None) -> Response:
    """ErrorRenderer for :class:`FaultMiddleware`: trytond's HTTP errors are HTML, not JSON."""
    headers: dict[str, str] = {}
    if retry_after is not None:
        headers["Retry-After"] = str(max(1, int(retry_after + 0.999)))
    return html_error(status, message, headers)


# --------------------------------------------------------------------------------------
# Schema
# --------------------------------------------------------------------------------------

MODEL_LABELS: dict[str, str] = {
    "res.user": "User", "res.user.warning": "Warning", "company.company": "Company",
    "currency.currency": "Currency", "country.country": "Country", "party.party": "Party",
    "party.identifier": "Party Identifier", "party.address": "Address",
    "party.contact_mechanism": "Contact Mechanism", "product.template": "Product Template",
    "product.product": "Variant", "account.invoice": "Invoice", "account.invoice.line": "Invoice Line",
    "sale.subscription.service": "Subscription Service", "sale.subscription": "Subscription",
    "sale.subscription.line": "Subscription Line",
}

BASE_FIELDS: dict[str, str] = {
    "id": "integer", "create_date": "datetime", "write_date": "datetime",
    "create_uid": "many2one:res.user", "write_uid": "many2one:res.user", "rec_name": "char",
}
#: fields trytond has beyond ``ERP_MODELS`` that clients must be able to send: an invoice line
#: carries its own company and currency (default: the company's), which must be the invoice's
EXTRA_FIELDS: dict[str, dict[str, str]] = {
    "account.invoice.line": {"company": "many2one:company.company", "currency": "many2one:currency.currency"},
}
#: fields the server computes on read (Function fields without setter: ignored on write)
COMPUTED: set[tuple[str, str]] = {
    ("party.party", "email"), ("party.party", "tax_identifier"), ("product.product", "name"),
    ("account.invoice", "untaxed_amount"), ("account.invoice", "tax_amount"),
    ("account.invoice", "total_amount"), ("account.invoice", "amount_to_pay"),
    ("account.invoice", "origin_invoices"), ("account.invoice.line", "amount"),
}
SELECTIONS: dict[tuple[str, str], tuple[str, ...]] = {
    ("account.invoice", "type"): ("out", "in"),
    ("account.invoice", "state"): ("draft", "validated", "posted", "paid", "cancelled"),
    ("account.invoice", "sequence_type_cache"): ("invoice", "credit_note"),
    ("account.invoice.line", "type"): ("line", "subtotal", "title", "comment"),
    ("sale.subscription", "state"): ("draft", "quotation", "running", "closed", "cancelled"),
    ("product.template", "type"): ("goods", "assets", "service"),
    ("party.contact_mechanism", "type"): ("phone", "mobile", "fax", "email", "website", "skype",
                                          "sip", "irc", "jabber", "other"),
}
DEFAULTS: dict[str, dict[str, Any]] = {
    "res.user": {"active": True, "language": "en"},
    "res.user.warning": {"always": False},
    "party.party": {"active": True},
    "party.contact_mechanism": {"type": "phone"},
    "product.template": {"type": "goods"},
    "product.product": {"active": True},
    "account.invoice": {"type": "out", "state": "draft"},
    "account.invoice.line": {"type": "line"},
    "sale.subscription": {"state": "draft"},
}
REQUIRED: dict[str, tuple[str, ...]] = {
    "res.user": ("login", "name"),
    "res.user.warning": ("user", "name"),
    "company.company": ("party", "currency"),
    "currency.currency": ("name", "code"),
    "country.country": ("name",),
    "party.identifier": ("party", "code"),
    "party.address": ("party",),
    "party.contact_mechanism": ("party", "type", "value"),
    "product.template": ("name", "type"),
    "product.product": ("template",),
    "account.invoice": ("type", "party", "company", "currency", "invoice_address"),
    "sale.subscription.service": ("product",),
    "sale.subscription": ("party", "company", "currency", "start_date"),
    "sale.subscription.line": ("subscription", "service", "quantity", "unit_price"),
}
FIELD_LABELS: dict[str, str] = {
    "unit_price": "Unit Price", "quantity": "Quantity", "company": "Company", "currency": "Currency",
    "party": "Party", "start_date": "Start Date", "type": "Type", "name": "Name", "code": "Code",
    "template": "Product Template", "product": "Product", "service": "Service", "user": "User",
    "login": "Login", "value": "Value", "subscription": "Subscription", "state": "State",
}
LIKE_OPERATORS = ("like", "ilike", "not like", "not ilike")
OPERATORS = ("=", "!=", "<", "<=", ">", ">=", "in", "not in", *LIKE_OPERATORS,
             "child_of", "not child_of", "parent_of", "not parent_of", "where", "not where")
SUPPORTED_OPERATORS = frozenset(OPERATORS[:12])


@dataclass(frozen=True, slots=True)
class FieldDef:
    name: str
    #: char boolean selection numeric float integer date datetime reference many2one one2many
    #: many2many (computed only)
    kind: str
    relation: str | None = None
    reverse: str | None = None  # one2many: the target's many2one back to us
    computed: bool = False
    readonly: bool = False


class Schema:
    """Field definitions of every served model (``ERP_MODELS`` plus the base fields)."""

    def __init__(self) -> None:
        self.models: dict[str, dict[str, FieldDef]] = {}
        #: (child model, many2one) -> [(parent model, one2many)]
        self.parents: dict[tuple[str, str], list[tuple[str, str]]] = {}
        for model, spec in ERP_MODELS.items():
            fields: dict[str, FieldDef] = {}
            for name, typ in {**BASE_FIELDS, **spec, **EXTRA_FIELDS.get(model, {})}.items():
                fields[name] = self._parse(model, name, typ)
            self.models[model] = fields
        for model, fields in self.models.items():
            for fd in fields.values():
                if fd.kind == "one2many" and fd.relation and fd.reverse:
                    self.parents.setdefault((fd.relation, fd.reverse), []).append((model, fd.name))

    @staticmethod
    def _parse(model: str, name: str, typ: str) -> FieldDef:
        kind, _, target = typ.partition(":")
        computed = (model, name) in COMPUTED or name == "rec_name"
        readonly = computed or name in BASE_FIELDS
        if kind in ("many2one", "many2many"):
            return FieldDef(name, kind, relation=target, computed=computed, readonly=readonly)
        if kind == "one2many":
            relation, _, reverse = target.rpartition(".")
            return FieldDef(name, kind, relation=relation, reverse=reverse, readonly=readonly)
        return FieldDef(name, kind, computed=computed, readonly=readonly)

    def fields(self, model: str) -> dict[str, FieldDef]:
        return self.models[model]

    def field(self, model: str, name: str) -> FieldDef:
        """The field; ``KeyError(name)`` (trytond's terse ``'no_such_field'``) when unknown."""
        try:
            return self.models[model][name]
        except KeyError:
            raise KeyError(name) from None


def _label(model: str) -> str:
    return MODEL_LABELS.get(model, model)


def _field_label(name: str) -> str:
    return FIELD_LABELS.get(name, name.replace("_", " ").title())


# --------------------------------------------------------------------------------------
# Value coercion (what trytond's fields accept on write and in domains)
# --------------------------------------------------------------------------------------


def _to_decimal(value: Any) -> Decimal:
    if isinstance(value, Decimal):
        return value
    if isinstance(value, bool):
        raise TypeError(f"invalid Numeric value {value!r}")
    if isinstance(value, int | float | str):
        try:
            return Decimal(str(value))
        except InvalidOperation:
            raise ValueError(f"invalid Numeric value {value!r}") from None
    raise TypeError(f"invalid Numeric value {value!r}")


def _to_date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        return date.fromisoformat(value)
    raise TypeError(f"invalid Date value {value!r}")


def _to_datetime(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value
    if isinstance(value, date):
        return datetime.combine(value, time())
    if isinstance(value, str):
        return _to_datetime(datetime.fromisoformat(value))
    raise TypeError(f"invalid DateTime value {value!r}")


def _sqlite_bool(value: Any) -> Any:
    return None if value is None else int(bool(value))


def coerce(fd: FieldDef, value: Any) -> Any:
    """A stored value for ``fd`` from a client value (``None`` stays ``None``)."""
    if value is None:
        return False if fd.kind == "boolean" else None
    kind = fd.kind
    if kind in ("char", "selection"):
        if not isinstance(value, str):
            raise TypeError(f"invalid value {value!r} for field {fd.name!r}")
        return value
    if kind == "boolean":
        return bool(value)
    if kind in ("many2one", "integer"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"invalid value {value!r} for field {fd.name!r}")
        return value
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
            raise TypeError(f"invalid value {value!r} for field {fd.name!r}")
        return float(value)
    if kind == "numeric":
        return _to_decimal(value)
    if kind == "date":
        return _to_date(value)
    if kind == "datetime":
        return _to_datetime(value)
    if kind == "reference":  # "model,id", or [model, id] as clients may send it
        if isinstance(value, list | tuple) and len(value) == 2:
            return f"{value[0]},{value[1]}"
        if not isinstance(value, str):
            raise TypeError(f"invalid value {value!r} for field {fd.name!r}")
        return value
    return value


def coerce_operand(fd: FieldDef, value: Any) -> Any:
    """A domain operand comparable with stored values of ``fd``."""
    if value is None:
        return None
    with contextlib.suppress(TypeError, ValueError):
        if fd.kind == "numeric" and not isinstance(value, bool):
            return _to_decimal(value)
        if fd.kind == "date" and isinstance(value, date | str):
            return _to_date(value)
        if fd.kind == "datetime" and isinstance(value, date | str):
            return _to_datetime(value)
        if fd.kind == "float" and isinstance(value, Decimal):
            return float(value)
    return value


def _copy_record(rec: Record) -> Record:
    return {k: (list(v) if isinstance(v, list) else v) for k, v in rec.items()}


def _like_regex(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    """SQL LIKE (``%``, ``_``, backslash escape) as an anchored regular expression."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        out.append(".*" if c == "%" else "." if c == "_" else re.escape(c))
        i += 1
    return re.compile("".join(out) + r"\Z", re.S | (re.I if ignore_case else 0))


# --------------------------------------------------------------------------------------
# Field values: stored, computed and related
# --------------------------------------------------------------------------------------


class FieldValues:
    """Python values of record fields, including the ones trytond computes on read."""

    def __init__(self, store: ErpStore, schema: Schema) -> None:
        self.store = store
        self.schema = schema
        self._computed: dict[tuple[str, str], Getter] = {
            ("party.party", "email"): self._party_email,
            ("party.party", "tax_identifier"): self._party_tax_identifier,
            ("product.product", "name"): self._product_name,
            ("account.invoice", "untaxed_amount"): self._invoice_untaxed,
            ("account.invoice", "tax_amount"): self._invoice_tax,
            ("account.invoice", "total_amount"): self._invoice_total,
            ("account.invoice", "amount_to_pay"): self._invoice_amount_to_pay,
            ("account.invoice", "origin_invoices"): self._invoice_origin_invoices,
            ("account.invoice.line", "amount"): self._line_amount,
        }
        self._rec_names: dict[str, Getter] = {
            "party.party": lambda r: r.get("name") or f"[{r.get('code') or ''}]",
            "account.invoice": self._invoice_rec_name,
            "product.product": self._product_rec_name,
            "product.template": lambda r: r.get("name") or "",
            "company.company": lambda r: self.rec_name("party.party", r.get("party")),
            "party.identifier": lambda r: r.get("code") or "",
            "party.contact_mechanism": lambda r: r.get("value") or "",
            "party.address": lambda r: ", ".join(
                str(v) for v in (r.get("street"), r.get("postal_code"), r.get("city")) if v),
            "sale.subscription": lambda r: r.get("number") or f"({r['id']})",
            "sale.subscription.service": lambda r: self.rec_name("product.product", r.get("product")),
            "sale.subscription.line": lambda r: self.rec_name("sale.subscription.service", r.get("service")),
            "account.invoice.line": lambda r: r.get("description") or self.rec_name(
                "product.product", r.get("product")),
        }

    # -- generic ------------------------------------------------------------------------

    def getter(self, model: str, name: str) -> Getter:
        """A function record -> value for field ``name`` (KeyError when unknown)."""
        fd = self.schema.field(model, name)
        if fd.kind == "one2many":
            return lambda rec: self.children(model, name, rec["id"])
        if name == "rec_name":
            return self._rec_name_getter(model)
        computed = self._computed.get((model, name))
        if computed is not None:
            return computed
        if fd.kind == "boolean":
            # trytond on SQLite answers stored booleans as the integers SQLite keeps (1 / 0)
            return lambda rec: _sqlite_bool(rec.get(name))
        return lambda rec: rec.get(name)

    def _rec_name_getter(self, model: str) -> Getter:
        fn = self._rec_names.get(model)
        if fn is not None:
            return fn
        return lambda r: r.get("name") or r.get("rec_name") or str(r["id"])

    def rec_name(self, model: str, rid: int | None) -> str:
        if rid is None:
            return ""
        if model in STATIC_NAMES:
            return STATIC_NAMES[model].get(rid, str(rid))
        rec = self.store.tables.get(model, {}).get(rid)
        return "" if rec is None else str(self._rec_name_getter(model)(rec))

    def children(self, model: str, name: str, parent_id: int) -> list[int]:
        """Ids of the one2many ``name`` of record ``parent_id`` (ascending)."""
        fd = self.schema.field(model, name)
        assert fd.relation is not None and fd.reverse is not None
        if (fd.relation, fd.reverse) in self.store.indexes:
            return sorted(self.store.lookup(fd.relation, fd.reverse, parent_id))
        rev = fd.reverse
        return sorted(rid for rid, r in self.store.tables[fd.relation].items() if r.get(rev) == parent_id)

    def _related(self, model: str, rid: int | None) -> Record | None:
        return None if rid is None else self.store.tables[model].get(rid)

    def _digits(self, currency: int | None) -> int:
        rec = self._related("currency.currency", currency)
        digits = rec.get("digits") if rec else None
        return digits if isinstance(digits, int) else 2

    @staticmethod
    def _round(amount: Decimal, digits: int) -> Decimal:
        return amount.quantize(Decimal(1).scaleb(-digits))

    # -- computed fields ----------------------------------------------------------------

    def _party_email(self, rec: Record) -> str | None:
        table = self.store.tables["party.contact_mechanism"]
        for cid in sorted(self.store.lookup("party.contact_mechanism", "party", rec["id"])):
            mech = table.get(cid)
            if mech is not None and mech.get("type") == "email":
                return mech.get("value")
        return None

    def _party_tax_identifier(self, rec: Record) -> int | None:
        ids = self.store.lookup("party.identifier", "party", rec["id"])
        return min(ids) if ids else None

    def _product_name(self, rec: Record) -> str | None:
        template = self._related("product.template", rec.get("template"))
        return template.get("name") if template else rec.get("name")

    def _product_rec_name(self, rec: Record) -> str:
        name = self._product_name(rec) or ""
        code = rec.get("code")
        return f"[{code}] {name}" if code else name

    @staticmethod
    def _invoice_rec_name(rec: Record) -> str:
        items = []
        if rec.get("number"):
            items.append(str(rec["number"]))
        if rec.get("reference"):
            items.append(f"[{rec['reference']}]")
        return " ".join(items) or f"({rec['id']})"

    def _line_amount(self, rec: Record) -> Decimal:
        invoice = self._related("account.invoice", rec.get("invoice"))
        digits = self._digits(invoice.get("currency") if invoice else None)
        if rec.get("type", "line") != "line":
            return self._round(Decimal(0), digits)
        quantity = rec.get("quantity") or 0
        price = rec.get("unit_price") or Decimal(0)
        return self._round(Decimal(str(quantity)) * price, digits)

    def _invoice_untaxed(self, rec: Record) -> Decimal:
        lines = self.store.tables["account.invoice.line"]
        total = Decimal(0)
        for lid in self.store.lookup("account.invoice.line", "invoice", rec["id"]):
            line = lines.get(lid)
            if line is not None and line.get("type", "line") == "line":
                total += self._line_amount(line)
        return self._round(total, self._digits(rec.get("currency")))

    def _invoice_tax(self, rec: Record) -> Decimal:
        return self._round(Decimal(0), self._digits(rec.get("currency")))

    def _invoice_total(self, rec: Record) -> Decimal:
        return self._invoice_untaxed(rec) + self._invoice_tax(rec)

    def _invoice_origin_invoices(self, rec: Record) -> list[int]:
        """The invoices whose lines are the origins of this one's lines (a credit note's)."""
        lines = self.store.tables["account.invoice.line"]
        found: set[int] = set()
        for lid in self.store.lookup("account.invoice.line", "invoice", rec["id"]):
            origin = (lines.get(lid) or {}).get("origin")
            model, _, rid = origin.partition(",") if isinstance(origin, str) else ("", "", "")
            if model == "account.invoice.line" and rid.isdigit():
                credited = lines.get(int(rid))
                if credited is not None and credited.get("invoice") is not None:
                    found.add(credited["invoice"])
        found.discard(rec["id"])
        return sorted(found)

    def _invoice_amount_to_pay(self, rec: Record) -> Decimal:
        if rec.get("state") != "posted":
            return self._round(Decimal(0), self._digits(rec.get("currency")))
        stored = rec.get("amount_to_pay")
        return stored if isinstance(stored, Decimal) else self._invoice_total(rec)


# --------------------------------------------------------------------------------------
# Reading records (plain, computed and dotted field names)
# --------------------------------------------------------------------------------------

RowBuilder = Callable[[Record], dict[str, Any]]


class FieldReader:
    """Builds trytond ``read`` rows: ``{"id": .., field: value, "party.": {...}}``."""

    def __init__(self, values: FieldValues) -> None:
        self.values = values
        self.schema = values.schema
        self.store = values.store

    def all_fields(self, model: str) -> list[str]:
        return list(self.schema.fields(model))

    def plan(self, model: str, names: Iterable[str]) -> RowBuilder:
        """A function record -> row for the requested field names (validated now)."""
        plain: list[tuple[str, Getter]] = []
        related: dict[str, list[str]] = {}
        for name in names:
            if not isinstance(name, str):
                raise TypeError(f"invalid field name {name!r}")
            if name == "_timestamp":
                plain.append((name, self._timestamp))
                continue
            head, dot, rest = name.partition(".")
            if dot:
                self.schema.field(model, head)
                related.setdefault(head, []).append(rest)
            elif name != "id":
                plain.append((name, self.values.getter(model, name)))
        nested = [(head + ".", self._related_builder(model, head, subs)) for head, subs in related.items()]

        def build(rec: Record) -> dict[str, Any]:
            row: dict[str, Any] = {"id": rec["id"]}
            for key, get in plain:
                row[key] = get(rec)
            for key, fn in nested:
                row[key] = fn(rec)
            return row

        return build

    def _related_builder(self, model: str, head: str, subs: list[str]) -> Getter:
        fd = self.schema.field(model, head)
        if fd.kind not in ("many2one", "one2many", "many2many") or fd.relation is None:
            raise KeyError(f"{head}.{subs[0]}")
        target = fd.relation
        if target not in self.schema.models:
            return self._static_builder(target, head, subs)
        sub_plan = self.plan(target, subs)
        table = self.store.tables[target]
        if fd.kind == "many2one":
            def one(rec: Record) -> dict[str, Any] | None:
                tid = rec.get(head)
                trec = table.get(tid) if tid is not None else None
                return None if trec is None else sub_plan(trec)
            return one
        children = self.values.getter(model, head)

        def many(rec: Record) -> list[dict[str, Any]]:
            return [sub_plan(table[cid]) for cid in children(rec) if cid in table]
        return many

    def _static_builder(self, target: str, head: str, subs: list[str]) -> Getter:
        names = STATIC_NAMES.get(target, {})

        def one(rec: Record) -> dict[str, Any] | None:
            tid = rec.get(head)
            if tid is None:
                return None
            row: dict[str, Any] = {"id": tid}
            for sub in subs:
                if sub in ("rec_name", "name"):
                    row[sub] = names.get(tid, str(tid))
                elif sub != "id":
                    row[sub] = None
            return row
        return one

    @staticmethod
    def _timestamp(rec: Record) -> str:
        stamp = rec.get("write_date") or rec.get("create_date")
        return str(stamp.replace(tzinfo=UTC).timestamp()) if isinstance(stamp, datetime) else ""

    def read(self, model: str, ids: list[int], names: list[str] | None) -> list[dict[str, Any]]:
        table = self.store.tables[model]
        missing = [i for i in ids if i not in table]
        if missing:
            raise UserError(f'You are trying to read records "{", ".join(map(str, missing[:5]))}" of '
                            f'"{_label(model)}" that don\'t exist anymore.')
        build = self.plan(model, names or self.all_fields(model))
        return [build(table[i]) for i in ids]


# --------------------------------------------------------------------------------------
# Incremental-sync index
# --------------------------------------------------------------------------------------

_MAX_ID = 1 << 62


def _stamp(rec: Record) -> datetime:
    created = rec.get("create_date") or datetime.min
    written = rec.get("write_date")
    return written if written is not None and written > created else created


class WatermarkIndex:
    """Per model, the records sorted by ``(max(create_date, write_date), id)``."""

    def __init__(self, store: ErpStore) -> None:
        self.store = store
        self._keys: dict[str, list[tuple[datetime, int]]] = {}
        self._signatures: dict[str, tuple[Any, ...]] = {}
        self._last: tuple[tuple[str, datetime, bool], list[tuple[datetime, int]], set[int] | None] | None = None

    def _signature(self, model: str) -> tuple[Any, ...]:
        """Changes a server can see without a change counter on the store: inserts and
        deletes. A per-model ``store.versions[model]`` (or a global ``store.version``), if the
        store ever grows one, makes updates behind the server's back visible too."""
        versions = getattr(self.store, "versions", None)
        version = versions.get(model) if isinstance(versions, dict) else getattr(self.store, "version", None)
        return (len(self.store.tables[model]), self.store.next_ids[model], version)

    def _ensure(self, model: str) -> list[tuple[datetime, int]]:
        keys = self._keys.get(model)
        if keys is None or self._signatures.get(model) != self._signature(model):
            keys = sorted((_stamp(rec), rid) for rid, rec in self.store.tables[model].items())
            self._keys[model] = keys
            self._signatures[model] = self._signature(model)
        return keys

    def after(self, model: str, watermark: datetime, inclusive: bool) -> set[int] | None:
        """Ids stamped after ``watermark``; None when that is every record. The last answer
        is kept until the model's keys change (a query asks twice: predicate and candidates)."""
        keys = self._ensure(model)
        query = (model, watermark, inclusive)
        if self._last is not None and self._last[0] == query and self._last[1] is keys:
            return self._last[2]
        pos = bisect.bisect_left(keys, (watermark,)) if inclusive else bisect.bisect_right(
            keys, (watermark, _MAX_ID))
        ids = None if pos == 0 else {rid for _, rid in islice(keys, pos, None)}
        self._last = (query, keys, ids)
        return ids

    def moved(self, model: str, rid: int, old: datetime | None, new: datetime | None) -> None:
        """Record ``rid``'s stamp changed (None: absent) through this server."""
        keys = self._keys.get(model)
        if keys is None:
            return
        if old != new:
            self._last = None
            if old is not None:
                pos = bisect.bisect_left(keys, (old, rid))
                if pos < len(keys) and keys[pos] == (old, rid):
                    del keys[pos]
            if new is not None:
                bisect.insort(keys, (new, rid))
        self._signatures[model] = self._signature(model)

    def invalidate(self, model: str) -> None:
        self._keys.pop(model, None)
        self._last = None


# --------------------------------------------------------------------------------------
# Domains
# --------------------------------------------------------------------------------------


def is_leaf(clause: Any) -> bool:
    return (isinstance(clause, list | tuple) and len(clause) in (3, 4) and isinstance(clause[0], str)
            and clause[0] not in ("AND", "OR") and isinstance(clause[1], str))


def _split(domain: Any) -> tuple[str, list[Any]]:
    if not isinstance(domain, list | tuple):
        raise ValueError(f"Invalid domain: {domain!r}")
    items = list(domain)
    if items and isinstance(items[0], str) and items[0] in ("AND", "OR"):
        return items[0], items[1:]
    return "AND", items


def mentions(domain: Any, name: str) -> bool:
    if is_leaf(domain):
        return bool(domain[0] == name)
    if isinstance(domain, list | tuple):
        return any(mentions(d, name) for d in domain)
    return False


def _test(fd: FieldDef, op: str, operand: Any) -> Predicate:
    """A predicate on one field value for ``value <op> operand`` with SQL NULL semantics."""
    if op in ("in", "not in"):
        if not isinstance(operand, list | tuple):
            raise TypeError(f"'{op}' operator requires a list, got {operand!r}")
        items = [coerce_operand(fd, v) for v in operand]
        try:
            pool: set[Any] | list[Any] = set(items)
        except TypeError:
            pool = items
        if op == "in":
            return lambda v: v in pool
        return lambda v: v is not None and v not in pool
    value = coerce_operand(fd, operand)
    if op in LIKE_OPERATORS:
        if not isinstance(value, str):
            raise TypeError(f"'{op}' operator requires a string, got {operand!r}")
        regex = _like_regex(value, "ilike" in op)
        if op.startswith("not"):
            return lambda v: isinstance(v, str) and regex.match(v) is None
        return lambda v: isinstance(v, str) and regex.match(v) is not None
    if op == "=":
        if value is None:
            return lambda v: v is None
        if fd.kind == "boolean" and value is False:
            return lambda v: not v
        return lambda v: v is not None and v == value
    if op == "!=":
        if value is None:
            return lambda v: v is not None
        return lambda v: v is not None and v != value
    if value is None:
        return lambda v: False
    if op == "<":
        return lambda v: v is not None and v < value
    if op == "<=":
        return lambda v: v is not None and v <= value
    if op == ">":
        return lambda v: v is not None and v > value
    return lambda v: v is not None and v >= value


class DomainEvaluator:
    """Compiles trytond domains to predicates and narrows candidates through indexes."""

    def __init__(self, values: FieldValues, watermarks: WatermarkIndex) -> None:
        self.values = values
        self.schema = values.schema
        self.store = values.store
        self.watermarks = watermarks

    # -- predicates ---------------------------------------------------------------------

    def compile(self, model: str, domain: Any) -> Predicate | None:
        """The predicate of ``domain`` on ``model`` records; None means always true."""
        if is_leaf(domain):
            return self._leaf(model, domain)
        mode, items = _split(domain)
        if mode == "OR":
            shaped, newer = self._watermark(model, items)
            if shaped:  # answered by the index: every record, or a membership test
                return None if newer is None else (lambda r: r["id"] in newer)
        preds = [p for p in (self.compile(model, d) for d in items)]
        if mode == "OR":
            if not items or any(p is None for p in preds):
                return None
            ors = [p for p in preds if p is not None]
            return ors[0] if len(ors) == 1 else (lambda r: any(p(r) for p in ors))
        ands = [p for p in preds if p is not None]
        if not ands:
            return None
        return ands[0] if len(ands) == 1 else (lambda r: all(p(r) for p in ands))

    def _leaf(self, model: str, leaf: Any) -> Predicate:
        path, op, operand = leaf[0], leaf[1], leaf[2]
        if op not in OPERATORS:
            raise ValueError(f"Invalid operator {op!r} in domain {list(leaf)!r}")
        if op not in SUPPORTED_OPERATORS:
            raise NotImplementedError(f"operator {op!r} is not supported by the demo server")
        names = path.split(".")
        fds = self.path_fields(model, names)
        last = fds[-1]
        if last.kind == "many2one" and last.relation is not None and self._is_name_search(op, operand):
            names.append("rec_name")
            fds.append(FieldDef("rec_name", "char"))
            last = fds[-1]
        test = _test(last, op, operand)
        if len(names) == 1 and last.kind not in ("one2many", "many2many"):
            get = self.values.getter(model, names[0])
            return lambda r: test(get(r))
        collect = self._collector(model, names, fds)
        return lambda r: any(test(v) for v in collect(r))

    @staticmethod
    def _is_name_search(op: str, operand: Any) -> bool:
        if op in LIKE_OPERATORS:
            return True
        if op in ("in", "not in") and isinstance(operand, list | tuple):
            return any(isinstance(v, str) for v in operand)
        return isinstance(operand, str)

    def path_fields(self, model: str, names: list[str]) -> list[FieldDef]:
        fds: list[FieldDef] = []
        current = model
        for i, name in enumerate(names):
            fd = self.schema.field(current, name)
            fds.append(fd)
            if i < len(names) - 1:
                if fd.kind not in ("many2one", "one2many", "many2many") or fd.relation not in self.schema.models:
                    raise KeyError(".".join(names[: i + 2]))
                assert fd.relation is not None
                current = fd.relation
        return fds

    def path_getters(self, model: str, names: list[str], fds: list[FieldDef]) -> list[Getter]:
        getters: list[Getter] = []
        current = model
        for name, fd in zip(names, fds, strict=True):
            getters.append(self.values.getter(current, name))
            current = fd.relation or current
        return getters

    def _collector(self, model: str, names: list[str], fds: list[FieldDef]) -> Callable[[Record], list[Any]]:
        getters = self.path_getters(model, names, fds)
        tables = [self.store.tables.get(fd.relation or "", {}) for fd in fds]

        def collect(rec: Record) -> list[Any]:
            """The values at the end of the path (any-semantics through one2many; a missing
            many2one ends the path with no value, as SQL's join would)."""
            current: list[Any] = [rec]
            for depth, (get, fd) in enumerate(zip(getters, fds, strict=True)):
                last = depth == len(fds) - 1
                table = tables[depth]
                nxt: list[Any] = []
                for r in current:
                    value = get(r)
                    if fd.kind in ("one2many", "many2many"):
                        if last:
                            nxt.extend(value or [None])
                        else:
                            nxt.extend(table[c] for c in value if c in table)
                    elif last:
                        nxt.append(value)
                    elif value is not None and value in table:
                        nxt.append(table[value])
                current = nxt
            return current

        return collect

    # -- candidates through indexes ----------------------------------------------------

    def candidates(self, model: str, domain: Any) -> set[int] | None:
        """A superset of the matching ids from indexes, or None (every record)."""
        if is_leaf(domain):
            return self._leaf_candidates(model, domain)
        mode, items = _split(domain)
        if mode == "OR":
            shaped, ids = self._watermark(model, items)
            if shaped:
                return ids
            sets = [self.candidates(model, d) for d in items]
            if not sets or any(s is None for s in sets):
                return None
            return set().union(*[s for s in sets if s is not None])
        found = [s for s in (self.candidates(model, d) for d in items) if s is not None]
        if not found:
            return None
        found.sort(key=len)
        return found[0].intersection(*found[1:])

    def _leaf_candidates(self, model: str, leaf: Any) -> set[int] | None:
        path, op, operand = leaf[0], leaf[1], leaf[2]
        if op == "=":
            operands = [operand]
        elif op == "in" and isinstance(operand, list | tuple):
            operands = list(operand)
        else:
            return None
        head, dot, rest = path.partition(".")
        table = self.store.tables[model]
        try:
            if head == "id" and not dot:
                return {v for v in operands if isinstance(v, int) and not isinstance(v, bool) and v in table}
            fd = self.schema.fields(model).get(head)
            if fd is None or (model, head) not in self.store.indexes:
                return None
            if not dot:
                if fd.kind == "many2one" and any(isinstance(v, str) for v in operands):
                    return None
                if fd.kind in ("char", "selection") and not all(isinstance(v, str) or v is None
                                                                for v in operands):
                    return None
                result: set[int] = set()
                for v in operands:
                    result |= self.store.lookup(model, head, v)
                return result
            if fd.kind != "many2one" or fd.relation not in self.schema.models:
                return None
            assert fd.relation is not None
            targets = self.candidates(fd.relation, [rest, op, operand])
            if targets is None:
                return None
            result = set()
            for tid in targets:
                result |= self.store.lookup(model, head, tid)
            return result
        except TypeError:  # unhashable operand: the predicate reports it
            return None

    def _watermark(self, model: str, items: list[Any]) -> tuple[bool, set[int] | None]:
        """For the OR of ``create_date > W`` and ``write_date > W`` (or ``>=``): (True, the
        matching ids or None for all); for any other OR: (False, None)."""
        if len(items) != 2 or not all(is_leaf(i) and len(i) == 3 for i in items):
            return False, None
        (f1, op1, v1), (f2, op2, v2) = items
        if {f1, f2} != {"create_date", "write_date"} or op1 != op2 or op1 not in (">", ">="):
            return False, None
        if not isinstance(v1, datetime) or v1 != v2:
            return False, None
        return True, self.watermarks.after(model, v1, inclusive=op1 == ">=")

    def id_bounds(self, domain: Any) -> tuple[int, int]:
        """The id range ``[low, high)`` implied by ``id`` comparisons ANDed at the top (keyset
        paging: ``["id", ">", last]``); the predicate still checks every record."""
        low, high = 0, _MAX_ID
        if is_leaf(domain):
            path, op, value = domain[0], domain[1], domain[2]
            if path != "id" or isinstance(value, bool) or not isinstance(value, int):
                return low, high
            if op in (">", ">="):
                low = value + (op == ">")
            elif op in ("<", "<="):
                high = value + (op == "<=")
            elif op == "=":
                low, high = value, value + 1
            return low, high
        with contextlib.suppress(ValueError):
            mode, items = _split(domain)
            if mode == "AND":
                for item in items:
                    lo, hi = self.id_bounds(item)
                    low, high = max(low, lo), min(high, hi)
        return low, high


# --------------------------------------------------------------------------------------
# Transactions: journalled mutations
# --------------------------------------------------------------------------------------


class Transaction:
    """One RPC call: user, context, start time and an undo journal of every mutation."""

    def __init__(self, service: TrytonService, user: int, context: dict[str, Any], now: datetime) -> None:
        self.service = service
        self.store = service.store
        self.schema = service.schema
        self.user = user
        self.context = context
        self.now = now
        self._undo: dict[tuple[str, int], Record | None] = {}
        self._on_rollback: list[Callable[[], None]] = []

    @property
    def wrote(self) -> bool:
        return bool(self._undo)

    def on_rollback(self, fn: Callable[[], None]) -> None:
        self._on_rollback.append(fn)

    def _journal(self, model: str, rid: int) -> None:
        key = (model, rid)
        if key not in self._undo:
            rec = self.store.tables[model].get(rid)
            self._undo[key] = None if rec is None else _copy_record(rec)

    def insert(self, model: str, values: Record) -> int:
        rid = self.store.insert(model, values)
        self._undo.setdefault((model, rid), None)
        rec = self.store.tables[model][rid]
        self._link(model, rid, {}, rec)
        self.service.watermarks.moved(model, rid, None, _stamp(rec))
        return rid

    def update(self, model: str, rid: int, values: Record) -> None:
        self._journal(model, rid)
        rec = self.store.tables[model][rid]
        before = {k: rec.get(k) for k in values}
        old_stamp = _stamp(rec)
        self.store.update(model, rid, values)
        self._link(model, rid, before, values)
        self.service.watermarks.moved(model, rid, old_stamp, _stamp(rec))

    def delete(self, model: str, rid: int) -> None:
        self._journal(model, rid)
        rec = self.store.tables[model][rid]
        old_stamp = _stamp(rec)
        self.store.delete(model, rid)
        self._link(model, rid, rec, {k: None for k in rec})
        self.service.watermarks.moved(model, rid, old_stamp, None)

    def _link(self, model: str, rid: int, before: Record, after: Record) -> None:
        """Keep parents' one2many id lists in step with the children's many2one."""
        for (child, m2o), parents in self.schema.parents.items():
            if child != model or m2o not in after:
                continue
            old, new = before.get(m2o), after.get(m2o)
            if old == new:
                continue
            for parent_model, o2m in parents:
                table = self.store.tables[parent_model]
                if old is not None and old in table:
                    ids = [i for i in table[old].get(o2m) or [] if i != rid]
                    self._set_list(parent_model, old, o2m, ids)
                if new is not None and new in table:
                    ids = list(table[new].get(o2m) or [])
                    if rid not in ids:
                        ids.append(rid)
                    self._set_list(parent_model, new, o2m, ids)

    def _set_list(self, model: str, rid: int, name: str, ids: list[int]) -> None:
        self._journal(model, rid)
        self.store.update(model, rid, {name: ids})
        stamp = _stamp(self.store.tables[model][rid])
        self.service.watermarks.moved(model, rid, stamp, stamp)  # unchanged; re-signs the index

    def rollback(self) -> None:
        for fn in reversed(self._on_rollback):
            fn()
        for (model, rid), original in reversed(list(self._undo.items())):
            table = self.store.tables[model]
            current = table.get(rid)
            if original is None:
                if current is not None:
                    self.store.delete(model, rid)
            elif current is None:
                table[rid] = original
                for f in self.store.INDEXED.get(model, ()):
                    self.store.indexes[(model, f)][original.get(f)].add(rid)
            else:
                self.store.update(model, rid, original)
                for k in [k for k in current if k not in original]:
                    del current[k]
            self.service.watermarks.invalidate(model)
        self._undo.clear()


# --------------------------------------------------------------------------------------
# Invoice numbering (strict sequence) and posting state
# --------------------------------------------------------------------------------------


class InvoiceSequence:
    """Next invoice number and latest posted invoice date per type, scanned incrementally."""

    def __init__(self, store: ErpStore) -> None:
        self.store = store
        self.prefix = "INV-"
        self.width = 6
        self.last = 0
        self.latest: dict[str, date] = {}
        self._scanned_to = 1

    def refresh(self) -> None:
        table = self.store.tables["account.invoice"]
        end = self.store.next_ids["account.invoice"]
        for rid in range(self._scanned_to, end):
            rec = table.get(rid)
            if rec is not None:
                self.note(rec.get("type") or "out", rec.get("number"), rec.get("invoice_date"))
        self._scanned_to = max(self._scanned_to, end)

    def note(self, type_: str, number: Any, invoice_date: Any) -> None:
        if not isinstance(number, str) or not number:
            return
        match = re.search(r"(\d+)$", number)
        if match and int(match.group(1)) > self.last:
            self.last = int(match.group(1))
            self.prefix = number[: match.start()]
            self.width = len(match.group(1))
        if isinstance(invoice_date, date) and (type_ not in self.latest or invoice_date > self.latest[type_]):
            self.latest[type_] = invoice_date

    def next_number(self) -> str:
        return f"{self.prefix}{self.last + 1:0{self.width}d}"

    def snapshot(self) -> Callable[[], None]:
        state = (self.prefix, self.width, self.last, dict(self.latest))

        def restore() -> None:
            self.prefix, self.width, self.last, latest = state
            self.latest = latest
        return restore


# --------------------------------------------------------------------------------------
# Model methods
# --------------------------------------------------------------------------------------


def _ids_list(ids: Any) -> list[int]:
    if isinstance(ids, int) and not isinstance(ids, bool):
        return [ids]
    if not isinstance(ids, list | tuple) or not all(isinstance(i, int) and not isinstance(i, bool)
                                                     for i in ids):
        raise TypeError(f"invalid ids {ids!r}")
    return list(ids)


@dataclass(frozen=True, slots=True)
class OrderKey:
    path: str
    getter: Getter
    desc: bool
    nulls_first: bool


class ModelCall:
    """One model method call: the generic ModelStorage/ModelView operations on ``model``."""

    def __init__(self, service: TrytonService, tx: Transaction, model: str) -> None:
        self.service = service
        self.tx = tx
        self.model = model
        self.store = service.store
        self.schema = service.schema
        self.values = service.values
        self.reader = service.reader
        self.domains = service.domains

    # -- searching ----------------------------------------------------------------------

    def _active_domain(self, model: str, domain: Any) -> Any:
        if domain is None:
            domain = []
        if ("active" in self.schema.fields(model) and self.tx.context.get("active_test", True)
                and not mentions(domain, "active")):
            return [domain, ["active", "=", True]]
        return domain

    def _order(self, model: str, order: Any) -> list[OrderKey]:
        if not order:
            return []
        if not isinstance(order, list | tuple):
            raise TypeError(f"invalid order {order!r}")
        keys: list[OrderKey] = []
        for item in order:
            if not isinstance(item, list | tuple) or len(item) != 2 or not isinstance(item[0], str):
                raise ValueError(f"invalid order {item!r}")
            name, direction = item
            words = (direction or "ASC").upper().split()
            if not words or words[0] not in ("ASC", "DESC") or words[1:] not in (
                    [], ["NULLS", "FIRST"], ["NULLS", "LAST"]):
                raise ValueError(f"invalid order direction {direction!r}")
            desc = words[0] == "DESC"
            nulls_first = words[2] == "FIRST" if len(words) == 3 else not desc
            keys.append(OrderKey(name, self._order_getter(model, name), desc, nulls_first))
        return keys

    def _order_getter(self, model: str, path: str) -> Getter:
        names = path.split(".")
        fds = self.domains.path_fields(model, names)
        if any(fd.kind in ("one2many", "many2many") for fd in fds):
            raise ValueError(f"cannot order by {path!r}")
        getters = self.domains.path_getters(model, names, fds)
        if len(getters) == 1:
            return getters[0]
        tables = [self.store.tables.get(fd.relation or "", {}) for fd in fds]

        def get(rec: Record) -> Any:
            current: Any = rec
            for depth, fn in enumerate(getters):
                value = fn(current)
                if depth == len(getters) - 1:
                    return value
                current = tables[depth].get(value) if value is not None else None
                if current is None:
                    return None
            return None
        return get

    def search_ids(self, domain: Any, offset: Any = 0, limit: Any = None, order: Any = None) -> list[int]:
        model = self.model
        domain = self._active_domain(model, domain)
        pred = self.domains.compile(model, domain)
        keys = self._order(model, order)
        candidates = self.domains.candidates(model, domain)
        table = self.store.tables[model]
        ids = sorted(table) if candidates is None else sorted(i for i in candidates if i in table)
        low, high = self.domains.id_bounds(domain)
        if low > 0 or high < _MAX_ID:
            ids = ids[bisect.bisect_left(ids, low):bisect.bisect_left(ids, high)]
        start = int(offset or 0)
        stop = None if limit is None or int(limit) < 0 else start + int(limit)
        by_id = not keys or (len(keys) == 1 and keys[0].path == "id")
        if by_id:
            if keys and keys[0].desc:
                ids.reverse()
            matched: Iterable[int] = ids if pred is None else (i for i in ids if pred(table[i]))
            return list(islice(matched, start, stop))
        result = ids if pred is None else [i for i in ids if pred(table[i])]
        for key in reversed(keys):
            result.sort(key=self._sort_key(key, table), reverse=key.desc)
        return result[start:stop]

    @staticmethod
    def _sort_key(key: OrderKey, table: dict[int, Record]) -> Callable[[int], tuple[int, Any]]:
        null = (0, 0) if key.nulls_first != key.desc else (2, 0)
        get = key.getter

        def sort_key(rid: int) -> tuple[int, Any]:
            value = get(table[rid])
            return null if value is None else (1, value)
        return sort_key

    def count(self, domain: Any) -> int:
        model = self.model
        domain = self._active_domain(model, domain)
        pred = self.domains.compile(model, domain)
        candidates = self.domains.candidates(model, domain)
        table = self.store.tables[model]
        if candidates is None and pred is None:
            return len(table)
        ids: Iterable[int] = table if candidates is None else (i for i in candidates if i in table)
        if pred is None:
            return sum(1 for _ in ids)
        return sum(1 for i in ids if pred(table[i]))

    # -- writing ------------------------------------------------------------------------

    def defaults(self, model: str) -> Record:
        values = dict(DEFAULTS.get(model, {}))
        fields = self.schema.fields(model)
        ctx = self.tx.context
        if "company" in fields:
            company = ctx.get("company")
            values["company"] = company if isinstance(company, int) and not isinstance(company, bool) else None
            comp = self.store.tables["company.company"].get(values["company"] or 0)
            if "currency" in fields and comp is not None:
                values["currency"] = comp.get("currency")
        if model == "account.invoice" and ctx.get("type") in ("out", "in"):
            values["type"] = ctx["type"]
        return values

    def _split_values(self, model: str, values: Any) -> tuple[Record, dict[str, Any]]:
        if not isinstance(values, dict):
            raise TypeError(f"invalid values {values!r}")
        plain: Record = {}
        x2many: dict[str, Any] = {}
        for name, value in values.items():
            fd = self.schema.field(model, name)
            if fd.kind == "one2many":
                x2many[name] = value
            elif not fd.readonly:
                plain[name] = coerce(fd, value)
        return plain, x2many

    def create_record(self, model: str, values: Any, parent: tuple[str, int] | None = None) -> int:
        plain, x2many = self._split_values(model, values)
        record = self.defaults(model)
        record.update(plain)
        if parent is not None:
            record[parent[0]] = parent[1]
        self.service.hooks.before_create(self, model, record)
        for fd in self.schema.fields(model).values():
            if fd.kind == "one2many":
                record[fd.name] = []
        record.update(create_date=self.tx.now, write_date=None, create_uid=self.tx.user, write_uid=None)
        self._check_references(model, record)
        rid = self.tx.insert(model, record)
        for name, actions in x2many.items():
            self.apply_x2many(model, rid, name, actions)
        self._validate(model, rid)
        return rid

    def write_records(self, model: str, ids: list[int], values: Any, check: bool = True) -> None:
        table = self.store.tables[model]
        missing = [i for i in ids if i not in table]
        if missing:
            raise UserError(f'You are trying to write on records "{", ".join(map(str, missing[:5]))}" of '
                            f'"{_label(model)}" that don\'t exist anymore.')
        plain, x2many = self._split_values(model, values)
        if check:
            self.service.hooks.before_write(self, model, ids, plain)
        self._check_references(model, plain)
        stamp = {"write_date": self.tx.now, "write_uid": self.tx.user}
        for rid in ids:
            self.tx.update(model, rid, {**plain, **stamp})
            for name, actions in x2many.items():
                self.apply_x2many(model, rid, name, actions)
            self._validate(model, rid)

    def delete_records(self, model: str, ids: list[int], check: bool = True) -> None:
        table = self.store.tables[model]
        ids = [i for i in dict.fromkeys(ids)]
        missing = [i for i in ids if i not in table]
        if missing:
            raise UserError(f'You are trying to delete records "{", ".join(map(str, missing[:5]))}" of '
                            f'"{_label(model)}" that don\'t exist anymore.')
        if check:
            self.service.hooks.before_delete(self, model, ids)
        self._check_not_referenced(model, ids)
        o2ms = [fd for fd in self.schema.fields(model).values() if fd.kind == "one2many"]
        for rid in ids:
            for fd in o2ms:
                assert fd.relation is not None
                children = [c for c in self.values.children(model, fd.name, rid)
                            if c in self.store.tables[fd.relation]]
                if children:
                    self.delete_records(fd.relation, children, check=False)
            if rid in table:
                self.tx.delete(model, rid)

    def apply_x2many(self, model: str, rid: int, name: str, actions: Any) -> None:
        fd = self.schema.field(model, name)
        assert fd.relation is not None and fd.reverse is not None
        target, reverse = fd.relation, fd.reverse
        if not isinstance(actions, list | tuple):
            raise TypeError(f"invalid value {actions!r} for field {name!r}")
        for action in actions:
            if not isinstance(action, list | tuple) or not action or not isinstance(action[0], str):
                raise ValueError(f"invalid action {action!r} for field {name!r}")
            kind, args = action[0], list(action[1:])
            if kind == "create":
                for values in args[0] if args else []:
                    self.create_record(target, values, parent=(reverse, rid))
            elif kind == "write":
                if len(args) % 2:
                    raise ValueError(f"invalid action {action!r} for field {name!r}")
                for ids, values in zip(args[::2], args[1::2], strict=True):
                    self.write_records(target, _ids_list(ids), values)
            elif kind == "delete":
                self.delete_records(target, _ids_list(args[0] if args else []))
            elif kind in ("add", "remove"):
                link = rid if kind == "add" else None
                ids = _ids_list(args[0] if args else [])
                self.write_records(target, ids, {reverse: link})
            else:
                raise ValueError(f"unsupported action {kind!r} for field {name!r}")

    def _check_references(self, model: str, values: Record) -> None:
        for name, value in values.items():
            fd = self.schema.fields(model).get(name)
            if (fd is None or fd.kind != "many2one" or value is None or fd.relation not in self.store.tables
                    or name in BASE_FIELDS):
                continue
            assert fd.relation is not None
            if value not in self.store.tables[fd.relation]:
                raise UserError(f'The value "{value}" for field "{_field_label(name)}" in '
                                f'"{_label(model)}" does not exist.')

    def _check_not_referenced(self, model: str, ids: list[int]) -> None:
        for (other, fname) in self.store.indexes:
            fd = self.schema.fields(other).get(fname)
            if fd is None or fd.kind != "many2one" or fd.relation != model:
                continue
            if (other, fname) in self.schema.parents:  # one2many children: cascaded
                continue
            if any(self.store.lookup(other, fname, rid) for rid in ids):
                raise UserError(f'The records could not be deleted because they are used by field '
                                f'"{_field_label(fname)}" of "{_label(other)}".')

    def _validate(self, model: str, rid: int) -> None:
        rec = self.store.tables[model][rid]
        for name in REQUIRED.get(model, ()):
            if rec.get(name) is None:
                raise UserError(f'A value is required for field "{_field_label(name)}" in '
                                f'"{_label(model)}".')
        for (m, name), options in SELECTIONS.items():
            value = rec.get(name)
            if m == model and value is not None and value not in options:
                raise UserError(f'The value "{value}" for field "{_field_label(name)}" in '
                                f'"{self.values.rec_name(model, rid)}" of "{_label(model)}" is not one '
                                f'of the allowed options.')
        self.service.hooks.validate(self, model, rec)
        rec_name = self.values.rec_name(model, rid)
        if rec.get("rec_name") != rec_name:
            self.tx.update(model, rid, {"rec_name": rec_name})

    # -- RPC methods (dispatch table below) --------------------------------------------

    def search(self, domain: Any, offset: Any = 0, limit: Any = None, order: Any = None,
               count: bool = False) -> list[int] | int:
        if count:
            return self.count(domain)
        return self.search_ids(domain, offset, limit, order)

    def search_count(self, domain: Any, offset: Any = 0, limit: Any = None) -> int:
        total = self.count(domain)
        total = max(0, total - int(offset or 0))
        return total if limit is None else min(total, int(limit))

    def read(self, ids: Any, fields_names: Any = None) -> list[dict[str, Any]]:
        return self.reader.read(self.model, _ids_list(ids), fields_names)

    def search_read(self, domain: Any, offset: Any = 0, limit: Any = None, order: Any = None,
                    fields_names: Any = None) -> list[dict[str, Any]]:
        names = fields_names or self.reader.all_fields(self.model)
        build = self.reader.plan(self.model, names)  # validates names even when nothing matches
        table = self.store.tables[self.model]
        return [build(table[i]) for i in self.search_ids(domain, offset, limit, order)]

    def create(self, vlist: Any) -> list[int]:
        if not isinstance(vlist, list | tuple):
            raise TypeError(f"invalid values {vlist!r}")
        return [self.create_record(self.model, values) for values in vlist]

    def write(self, *args: Any) -> None:
        if not args or len(args) % 2:
            raise TypeError("write() takes pairs of ids and values")
        for ids, values in zip(args[::2], args[1::2], strict=True):
            self.write_records(self.model, _ids_list(ids), values)

    def delete(self, ids: Any) -> None:
        self.delete_records(self.model, _ids_list(ids))

    def fields_get(self, fields_names: Any = None, level: Any = 0) -> dict[str, Any]:
        result: dict[str, Any] = {}
        required = REQUIRED.get(self.model, ())
        for name, fd in self.schema.fields(self.model).items():
            if fields_names and name not in fields_names:
                continue
            info: dict[str, Any] = {"name": name, "type": fd.kind, "string": _field_label(name),
                                    "readonly": fd.readonly, "required": name in required}
            if fd.relation:
                info["relation"] = fd.relation
            if fd.reverse:
                info["relation_field"] = fd.reverse
            options = SELECTIONS.get((self.model, name))
            if options:
                info["selection"] = [[o, o.title()] for o in options]
            result[name] = info
        return result

    def default_get(self, fields_names: Any, with_rec_name: Any = True) -> dict[str, Any]:
        defaults = self.defaults(self.model)
        names = fields_names or list(defaults)
        return {k: v for k, v in defaults.items() if k in names}

    def on_change(self, values: Any, fieldnames: Any) -> list[dict[str, Any]]:
        if not isinstance(values, dict) or not isinstance(fieldnames, list | tuple):
            raise TypeError("on_change() takes values and field names")
        return [self.service.hooks.on_change(self, self.model, values, list(fieldnames))]


GENERIC_METHODS: dict[str, Callable[..., Any]] = {
    name: getattr(ModelCall, name)
    for name in ("search", "search_count", "read", "search_read", "create", "write", "delete",
                 "fields_get", "default_get", "on_change")
}


# --------------------------------------------------------------------------------------
# Model-specific behaviour: invoices, users, warnings
# --------------------------------------------------------------------------------------


def _warning_name(model: str, rid: int, name: str) -> str:
    """As trytond's ``res.user.warning.format(name, records)``: md5 of the records, then name."""
    return f"{hashlib.md5(f'{model},{rid}'.encode()).hexdigest()}.{name}"


class ModelHooks:
    """Per-model checks run by the generic operations, plus the on_change answers."""

    def before_create(self, call: ModelCall, model: str, record: Record) -> None:
        if model == "account.invoice.line" and record.get("invoice") is not None:
            self._check_invoices_modifiable(call, [record["invoice"]], line=True)
            self._check_line_currency(call, record)
        elif model == "party.party" and not record.get("code"):
            # the code is required: trytond takes the next number of the party sequence
            record["code"] = self._next_party_code(call)

    @staticmethod
    def _next_party_code(call: ModelCall) -> str:
        numbers = [int(p["code"]) for p in call.store.tables["party.party"].values()
                   if isinstance(p.get("code"), str) and p["code"].isdigit()]
        return str(max(numbers, default=0) + 1)

    @staticmethod
    def _check_line_currency(call: ModelCall, line: Record) -> None:
        """The invoice's ``lines`` domain: a line's company and currency are the invoice's."""
        invoice = call.store.tables["account.invoice"].get(line["invoice"])
        if invoice is None:
            return
        if line.get("currency") != invoice.get("currency") or line.get("company") != invoice.get("company"):
            product = call.values.rec_name("product.product", line.get("product"))
            qty = line.get("quantity")
            value = f"{qty:g}\xa0u {product} @ [{invoice.get('reference') or ''}]" if qty is not None else product
            raise UserError(f'The value "{value}" for field "Lines" in record '
                            f'"{call.values.rec_name("account.invoice", invoice["id"])}" of "Account Invoice" '
                            f'is not valid according to its domain.')

    def before_write(self, call: ModelCall, model: str, ids: list[int], values: Record) -> None:
        if model == "account.invoice":
            self._check_invoices_modifiable(call, ids)
        elif model == "account.invoice.line":
            lines = call.store.tables[model]
            invoices = [lines[i].get("invoice") for i in ids]
            self._check_invoices_modifiable(call, [i for i in invoices if i is not None], line=True)
            if values.get("invoice") is not None:
                self._check_invoices_modifiable(call, [values["invoice"]], line=True)

    def before_delete(self, call: ModelCall, model: str, ids: list[int]) -> None:
        if model == "account.invoice":
            table = call.store.tables[model]
            for rid in ids:
                rec = table[rid]
                if rec.get("state") not in ("draft", "cancelled"):
                    raise UserError(f'To delete invoice "{call.values.rec_name(model, rid)}" you must '
                                    f'cancel it.')
                if rec.get("number"):
                    raise UserError(f'You cannot delete invoice "{call.values.rec_name(model, rid)}" '
                                    f'because it has a number.')
        elif model == "account.invoice.line":
            self.before_write(call, model, ids, {})

    def validate(self, call: ModelCall, model: str, rec: Record) -> None:
        if model == "account.invoice.line" and rec.get("type", "line") == "line":
            for name in ("quantity", "unit_price"):
                if rec.get(name) is None:
                    raise UserError(f'A value is required for field "{_field_label(name)}" in '
                                    f'"{_label(model)}".')

    @staticmethod
    def _check_invoices_modifiable(call: ModelCall, invoice_ids: list[int], line: bool = False) -> None:
        table = call.store.tables["account.invoice"]
        for iid in invoice_ids:
            inv = table.get(iid)
            if inv is None:
                continue
            locked = inv.get("state") in ("posted", "paid") or (
                inv.get("state") == "cancelled" and inv.get("number"))
            if locked:
                name = call.values.rec_name("account.invoice", iid)
                if line:
                    raise UserError(f'You cannot modify the lines of invoice "{name}" because it is '
                                    f'posted, paid or cancelled.')
                raise UserError(f'You cannot modify invoice "{name}" because it is posted, paid or '
                                f'cancelled.')

    def on_change(self, call: ModelCall, model: str, values: dict[str, Any],
                  fieldnames: list[str]) -> dict[str, Any]:
        changes: dict[str, Any] = {}
        for name in fieldnames:
            call.schema.field(model, name)
        if model == "account.invoice":
            if "type" in fieldnames:
                self._m2o(call, changes, "journal", "account.journal", REVENUE_JOURNAL)
            if "party" in fieldnames:
                party = values.get("party")
                address = None
                if isinstance(party, int) and not isinstance(party, bool):
                    ids = call.store.lookup("party.address", "party", party)
                    address = min(ids) if ids else None
                self._m2o(call, changes, "invoice_address", "party.address", address)
                self._m2o(call, changes, "account", "account.account",
                          RECEIVABLE_ACCOUNT if party is not None else None)
                self._m2o(call, changes, "payment_term", "account.invoice.payment_term",
                          PAYMENT_TERM if party is not None else None)
        elif model == "account.invoice.line" and "product" in fieldnames:
            product = values.get("product")
            self._m2o(call, changes, "unit", "product.uom", UNIT if product is not None else None)
            self._m2o(call, changes, "account", "account.account",
                      REVENUE_ACCOUNT if product is not None else None)
            changes["taxes"] = []
        return changes

    @staticmethod
    def _m2o(call: ModelCall, changes: dict[str, Any], name: str, model: str, rid: int | None) -> None:
        changes[name] = rid
        if rid is not None:
            changes[name + "."] = {"rec_name": call.values.rec_name(model, rid)}


def _invoices(call: ModelCall, ids: Any) -> list[Record]:
    ids = _ids_list(ids)
    table = call.store.tables["account.invoice"]
    missing = [i for i in ids if i not in table]
    if missing:
        raise UserError(f'You are trying to read records "{", ".join(map(str, missing[:5]))}" of '
                        f'"Invoice" that don\'t exist anymore.')
    return [table[i] for i in sorted(set(ids))]


def _transition(call: ModelCall, ids: Any, sources: tuple[str, ...], target: str) -> None:
    todo = [rec["id"] for rec in _invoices(call, ids) if rec.get("state") in sources]
    if todo:
        call.write_records("account.invoice", todo, {"state": target}, check=False)


def invoice_validate(call: ModelCall, ids: Any) -> None:
    _transition(call, ids, ("draft",), "validated")


def invoice_draft(call: ModelCall, ids: Any) -> None:
    recs = _invoices(call, ids)
    todo = [r["id"] for r in recs if r.get("state") == "validated"
            or (r.get("state") == "cancelled" and not r.get("number"))]
    if todo:
        call.write_records("account.invoice", todo, {"state": "draft"}, check=False)


def invoice_cancel(call: ModelCall, ids: Any) -> None:
    for rec in _invoices(call, ids):
        if rec.get("state") in ("posted", "paid"):
            name = call.values.rec_name("account.invoice", rec["id"])
            raise UserError(f'You cannot cancel customer invoice "{name}" because it is posted and the '
                            f'accounting does not allow it.')
    _transition(call, ids, ("draft", "validated"), "cancelled")


def _check_warning(call: ModelCall, name: str) -> bool:
    """trytond's ``res.user.warning.check``: True when the warning must be raised; an
    acknowledgement that is not ``always`` is consumed."""
    table = call.store.tables["res.user.warning"]
    found = [rid for rid, w in table.items() if w.get("user") == call.tx.user and w.get("name") == name]
    if not found:
        return True
    consumed = [rid for rid in found if not table[rid].get("always")]
    if consumed:
        call.delete_records("res.user.warning", consumed, check=False)
    return False


def invoice_post(call: ModelCall, ids: Any) -> None:
    sequence = call.service.sequence
    sequence.refresh()
    call.tx.on_rollback(sequence.snapshot())
    today = call.tx.now.date()
    for rec in _invoices(call, ids):
        if rec.get("state") not in ("draft", "validated"):
            continue
        rid = rec["id"]
        name = call.values.rec_name("account.invoice", rid)
        type_ = rec.get("type") or "out"
        invoice_date = rec.get("invoice_date") or today
        latest = sequence.latest.get(type_)
        if latest is not None and invoice_date < latest:
            raise UserError(f'To number the invoice "{name}", you must set an invoice date after '
                            f'"{latest.isoformat()}" because the sequence "Customer Invoice" has already '
                            f'been used for a later invoice.')
        if rec.get("journal") is None or rec.get("account") is None:
            raise AttributeError("'NoneType' object has no attribute 'id'")  # trytond crashes likewise
        due = invoice_date + timedelta(days=PAYMENT_TERM_DAYS)
        if type_ == "out" and due < today:
            # raised by the invoice's move (after numbering, in the same transaction: rolled back)
            warning = _warning_name("account.invoice", rid, "invoice_payment_term")
            if _check_warning(call, warning):
                raise TrytonUserWarning(warning, f'The invoice "{name}" generates a payment date '
                                                 f'"{due:%m/%d/%Y}" in the past.')
        number = sequence.next_number()
        call.write_records("account.invoice", [rid], {"state": "posted", "number": number,
                                                     "invoice_date": invoice_date,
                                                     "sequence_type_cache": _sequence_type(call, rec)}, check=False)
        sequence.note(type_, number, invoice_date)


def _sequence_type(call: ModelCall, rec: Record) -> str:
    """trytond's ``Invoice._sequence_type``: a credit note when no line is positive and the
    total is negative."""
    lines = call.store.tables["account.invoice.line"]
    amounts = [call.values.getter("account.invoice.line", "amount")(lines[lid])
               for lid in call.store.lookup("account.invoice.line", "invoice", rec["id"])
               if lid in lines and lines[lid].get("type", "line") == "line"]
    total = call.values.getter("account.invoice", "total_amount")(rec)
    return "credit_note" if all(a <= 0 for a in amounts) and total < 0 else "invoice"


#: what ``Invoice._credit`` copies from the credited invoice (the demo's fields of them)
CREDIT_COPIED = ("company", "party", "invoice_address", "currency", "journal", "account", "payment_term",
                 "description", "type")
#: ... and from each line (``InvoiceLine._credit``; the quantity is negated, origin = the line)
CREDIT_LINE_COPIED = ("type", "currency", "company", "unit_price", "description", "unit", "product", "account")


def invoice_credit(call: ModelCall, ids: Any, refund: bool = False, invoice_date: date | None = None) -> list[int]:
    """trytond's ``Invoice.credit`` (not served over RPC: the ``account.invoice.credit`` wizard
    calls it): one credit note per invoice; with ``refund`` the credit notes are posted, each
    invoice must be posted, takes its credit note's move as cancel move and is cancelled, and
    both are reconciled (the credit note ends ``paid``)."""
    originals = _invoices(call, ids)
    lines = call.store.tables["account.invoice.line"]
    credits: list[int] = []
    for rec in originals:
        values: dict[str, Any] = {k: rec.get(k) for k in CREDIT_COPIED}
        # the generated demo invoices leave journal, account and payment term implicit (a real
        # posted invoice has them): the ones on_change proposes
        for name, default in (("journal", REVENUE_JOURNAL), ("account", RECEIVABLE_ACCOUNT),
                              ("payment_term", PAYMENT_TERM)):
            values[name] = values[name] if values[name] is not None else default
        values["invoice_date"] = invoice_date
        credit_lines = []
        for lid in rec.get("lines") or []:
            line = lines.get(lid)
            if line is None:
                continue
            copied = {k: line.get(k) for k in CREDIT_LINE_COPIED}
            # a demo line may leave its currency and company (the invoice's), account and unit implicit
            copied["currency"] = copied["currency"] or rec.get("currency")
            copied["company"] = copied["company"] or rec.get("company")
            copied["account"] = copied["account"] or REVENUE_ACCOUNT
            copied["unit"] = copied["unit"] or UNIT
            quantity = line.get("quantity")
            copied["quantity"] = -quantity if quantity else quantity
            copied["origin"] = f"account.invoice.line,{lid}"
            credit_lines.append(copied)
        values["lines"] = [["create", credit_lines]]
        credits.append(call.create_record("account.invoice", values))
    if refund:
        invoice_post(call, credits)
        table = call.store.tables["account.invoice"]
        for rec, credit in zip(originals, credits, strict=True):
            if rec.get("state") != "posted":
                raise UserError(f'You cannot refund invoice "{call.values.rec_name("account.invoice", rec["id"])}" '
                                f'because it is not posted.')
            call.write_records("account.invoice", [rec["id"]], {"cancel_move": table[credit].get("move"),
                                                                "state": "cancelled"}, check=False)
            # the invoice's and its cancel move's receivable lines are reconciled: both are settled
            call.write_records("account.invoice", [credit], {"state": "paid"}, check=False)
    return credits


def user_get_preferences(call: ModelCall, context_only: Any = False) -> dict[str, Any]:
    user = call.store.tables["res.user"].get(call.tx.user) or {}
    company = user.get("company")
    if company is None and call.store.tables["company.company"]:
        company = min(call.store.tables["company.company"])
    prefs: dict[str, Any] = {
        "language": user.get("language") or "en",
        "language_direction": "ltr",
        "groups": [1],
        "company": company,
        "companies": [company] if company is not None else [],
        "company_filter": "one",
        "employee": None,
        "employees": [],
        "locale": {"date": "%m/%d/%Y", "grouping": [3, 3, 0], "decimal_point": ".",
                   "thousands_sep": ",", "mon_grouping": [3, 3, 0], "mon_decimal_point": ".",
                   "mon_thousands_sep": ",", "p_sign_posn": 1, "n_sign_posn": 1,
                   "p_cs_precedes": True, "n_cs_precedes": True, "p_sep_by_space": False,
                   "n_sep_by_space": False, "positive_sign": "", "negative_sign": "-"},
        "user": call.tx.user,
    }
    if not context_only:
        prefs.update(name=user.get("name"), login=user.get("login"), email=None, signature=None,
                     status_bar=user.get("name"))
    return prefs


MODEL_METHODS: dict[str, dict[str, Callable[..., Any]]] = {
    "account.invoice": {"post": invoice_post, "validate_invoice": invoice_validate,
                        "cancel": invoice_cancel, "draft": invoice_draft},
    "res.user": {"get_preferences": user_get_preferences},
}


# --------------------------------------------------------------------------------------
# Wizards: ``wizard.<name>.create / execute / delete`` (only the invoice's "Credit")
# --------------------------------------------------------------------------------------


@dataclass
class WizardSession:
    """trytond's ``ir.session.wizard`` row: the wizard and the values of its views."""

    wizard: str
    user: int
    data: dict[str, dict[str, Any]] = field(default_factory=dict)


def _wizard_session(call: ModelCall, session_id: Any) -> WizardSession:
    session = call.service.wizard_sessions.get(session_id) if isinstance(session_id, int) else None
    if session is None or session.wizard != call.model:
        raise UserError(f'You are trying to read records "{session_id}" of "Session Wizard" that don\'t exist.')
    return session


def _active_invoices(call: ModelCall) -> list[Record]:
    """The wizard's records: ``active_ids`` (or ``active_id``) of ``active_model``."""
    ctx = call.tx.context
    if ctx.get("active_model") != "account.invoice":
        raise AttributeError("'NoneType' object has no attribute 'credit'")  # as trytond fails
    ids = list(ctx.get("active_ids") or [])
    if ctx.get("active_id") is not None and ctx["active_id"] not in ids:
        ids.append(ctx["active_id"])
    return _invoices(call, ids)


def wizard_create(call: ModelCall) -> list[Any]:
    """A session (kept by the service, not in a table: not a write for the fault injector)."""
    service = call.service
    service.wizard_ids += 1
    service.wizard_sessions[service.wizard_ids] = WizardSession(call.model, call.tx.user)
    return [service.wizard_ids, "start", "end"]


def wizard_delete(call: ModelCall, session_id: Any) -> None:
    _wizard_session(call, session_id)
    call.service.wizard_sessions.pop(session_id, None)


def wizard_execute(call: ModelCall, session_id: Any, data: Any, state_name: Any) -> dict[str, Any]:
    session = _wizard_session(call, session_id)
    if not isinstance(data, dict):
        raise TypeError(f"invalid data {data!r}")
    before = {k: dict(v) for k, v in session.data.items()}

    def restore() -> None:
        session.data = before
    call.tx.on_rollback(restore)
    for view, values in data.items():
        if not isinstance(values, dict):
            raise TypeError(f"invalid values {values!r}")
        session.data.setdefault(str(view), {}).update({k: v for k, v in values.items() if k != "id"})
    states = WIZARD_STATES[call.model]
    if state_name not in states:
        raise KeyError(state_name)
    result: dict[str, Any] = states[state_name](call, session)
    return result


def credit_start(call: ModelCall, session: WizardSession) -> dict[str, Any]:
    """The "start" view's defaults (``CreditInvoice.default_start``)."""
    defaults = {"with_refund": True, "with_refund_allowed": True}
    for rec in _active_invoices(call):
        if rec.get("state") != "posted" or rec.get("type") == "in":
            defaults = {"with_refund": False, "with_refund_allowed": False}
            break
    fields_ = {name: {"name": name, "type": kind, "string": _field_label(name)}
               for name, kind in (("invoice_date", "date"), ("with_refund", "boolean"),
                                  ("with_refund_allowed", "boolean"))}
    return {"view": {"fields_view": {"type": "form", "model": "account.invoice.credit.start", "fields": fields_},
                     "defaults": defaults, "values": {},
                     "buttons": [{"state": "end", "string": "Cancel", "default": False},
                                 {"state": "credit", "string": "Credit", "default": True}],
                     "state": "start"}}


def credit_do(call: ModelCall, session: WizardSession) -> dict[str, Any]:
    """``CreditInvoice.do_credit``: credit the active invoices with the start view's options."""
    start = session.data.get("start", {})
    when = start.get("invoice_date")
    credits = invoice_credit(call, [r["id"] for r in _active_invoices(call)], refund=bool(start.get("with_refund")),
                             invoice_date=_to_date(when) if when is not None else None)
    action = {"id": 216, "name": "Invoices", "type": "ir.action.act_window", "res_model": "account.invoice",
              "views": [[428, "form"], [429, "tree"]] if len(credits) == 1 else [[429, "tree"], [428, "form"]],
              "pyson_domain": "[]", "pyson_context": "{}", "records": "selected"}
    return {"actions": [[action, {"res_id": credits}]]}


WIZARD_STATES: dict[str, dict[str, Callable[[ModelCall, WizardSession], dict[str, Any]]]] = {
    "account.invoice.credit": {"start": credit_start, "credit": credit_do, "end": lambda call, session: {}},
}
WIZARD_METHODS: dict[str, Callable[..., Any]] = {
    "create": wizard_create, "execute": wizard_execute, "delete": wizard_delete,
}


# --------------------------------------------------------------------------------------
# The service: sessions, login and dispatch
# --------------------------------------------------------------------------------------


@dataclass
class Session:
    user_id: int
    login: str
    last_used: datetime


@dataclass
class Outcome:
    result: Any
    wrote: bool = False


@dataclass
class TrytonService:
    """Protocol-independent core: authenticate, dispatch, run one transaction per call."""

    store: ErpStore
    clock: Clock = _utc_now
    schema: Schema = field(default_factory=Schema)
    hooks: ModelHooks = field(default_factory=ModelHooks)

    def __post_init__(self) -> None:
        self.values = FieldValues(self.store, self.schema)
        self.reader = FieldReader(self.values)
        self.watermarks = WatermarkIndex(self.store)
        self.domains = DomainEvaluator(self.values, self.watermarks)
        self.sequence = InvoiceSequence(self.store)
        self.sessions: dict[str, Session] = {}
        self.wizard_sessions: dict[int, WizardSession] = {}
        self.wizard_ids = 0
        self.failed_logins: dict[str, list[datetime]] = {}
        self._auth_lock = threading.Lock()

    # -- entry point --------------------------------------------------------------------

    def handle(self, database: str | None, method: str, params: list[Any],
               authorization: str | None) -> Outcome:
        if database is not None and database != self.store.database:
            raise HTTPAbort(404)
        if method == "common.server.version":
            return Outcome(SERVER_VERSION)
        if method == "common.db.list":
            return Outcome([self.store.database])
        if database is None:
            raise HTTPAbort(403)
        if method == "common.db.login":
            return Outcome(self.login(*params))
        session = self.authenticate(authorization)
        if method == "common.db.logout":
            self.logout(authorization)
            return Outcome(None)
        kind, _, rest = method.partition(".")
        model, _, name = rest.rpartition(".")
        handler = (self.handler(model, name) if kind == "model"
                   else WIZARD_METHODS.get(name) if kind == "wizard" and model in WIZARD_STATES else None)
        if handler is None:
            raise HTTPAbort(403)
        if not params or not isinstance(params[-1], dict):
            raise HTTPAbort(422)
        context = {k: v for k, v in params[-1].items() if not str(k).startswith("_")}
        with self.store.lock:
            tx = Transaction(self, session.user_id, context, self.clock())
            call = ModelCall(self, tx, model)
            try:
                result = handler(call, *params[:-1])
            except BaseException:
                tx.rollback()
                raise
            return Outcome(result, tx.wrote)

    def handler(self, model: str, name: str) -> Callable[..., Any] | None:
        if model not in self.schema.models:
            return None
        return MODEL_METHODS.get(model, {}).get(name) or GENERIC_METHODS.get(name)

    # -- authentication -----------------------------------------------------------------

    def login(self, login: Any, parameters: Any = None, language: Any = None) -> list[Any]:
        if not isinstance(login, str) or not isinstance(parameters, dict):
            raise TypeError("login() takes a login and a dictionary of parameters")
        now = self.clock()
        with self._auth_lock:
            recent = [t for t in self.failed_logins.get(login, []) if now - t < LOGIN_ATTEMPT_WINDOW]
            self.failed_logins[login] = recent
            if len(recent) > LOGIN_MAX_ATTEMPTS:
                recent.append(now)
                raise HTTPAbort(429)
        if "password" not in parameters:
            raise LoginException("password", f"Password for {login}", "password")
        with self.store.lock:
            user_id = next((rid for rid, u in self.store.tables["res.user"].items()
                            if u.get("login") == login and u.get("active", True)), None)
            expected = self.store.passwords.get(login)
        password = parameters.get("password")
        ok = (user_id is not None and isinstance(expected, str) and isinstance(password, str)
              and secrets.compare_digest(expected.encode(), password.encode()))
        with self._auth_lock:
            if not ok or user_id is None:
                self.failed_logins.setdefault(login, []).append(now)
                raise HTTPAbort(401)
            self.failed_logins.pop(login, None)
            token = secrets.token_hex(32)
            self.sessions[token] = Session(user_id, login, now)
        return [user_id, token, None]

    def _parse_authorization(self, header: str | None) -> tuple[str, int, str] | None:
        if not header:
            return None
        scheme, _, credentials = header.partition(" ")
        if scheme.lower() != "session":
            return None
        try:
            decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
            login, user_id, token = decoded.rsplit(":", 2)
            return login, int(user_id), token
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return None

    def authenticate(self, header: str | None) -> Session:
        parsed = self._parse_authorization(header)
        now = self.clock()
        with self._auth_lock:
            session = self.sessions.get(parsed[2]) if parsed else None
            if (parsed is None or session is None or session.login != parsed[0]
                    or session.user_id != parsed[1]):
                raise HTTPAbort(401, empty=True, headers={"WWW-Authenticate": 'Basic realm="Tryton"'})
            if now - session.last_used > SESSION_TIMEOUT:
                del self.sessions[parsed[2]]
                raise HTTPAbort(401, empty=True, headers={"WWW-Authenticate": 'Basic realm="Tryton"'})
            session.last_used = now
            return session

    def logout(self, header: str | None) -> None:
        parsed = self._parse_authorization(header)
        if parsed is not None:
            with self._auth_lock:
                self.sessions.pop(parsed[2], None)


# --------------------------------------------------------------------------------------
# HTTP
# --------------------------------------------------------------------------------------


def _json_response(request: Request, payload: Any, status: int = 200) -> Response:
    body = dumps(payload)
    headers = {"Connection": "close"}
    if len(body) > GZIP_THRESHOLD and "gzip" in request.headers.get("accept-encoding", "").lower():
        body = gzip.compress(body, compresslevel=1)
        headers["Content-Encoding"] = "gzip"
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def _unwrapped_error(exc: BaseException) -> Response:
    """trytond's answer to an error when the body was not ``{id, method, params}``."""
    if isinstance(exc, TrytonUserWarning):
        return html_error(417, str(exc.payload[1]))
    if isinstance(exc, UserError):
        return html_error(400, str(exc.payload[0]))
    return html_error(500)


class RpcEndpoint:
    def __init__(self, service: TrytonService) -> None:
        self.service = service

    async def handle(self, request: Request) -> Response:
        database = request.path_params.get("database")
        body = await request.body()
        try:
            data = loads(body)
        except (ValueError, KeyError, TypeError, binascii.Error):
            return html_error(400)
        if not isinstance(data, dict) or not isinstance(data.get("method"), str):
            return html_error(400)
        params = data.get("params", [])
        if not isinstance(params, list):
            return html_error(400)
        wrapped = set(data) == {"id", "method", "params"}
        try:
            outcome = await run_in_threadpool(self.service.handle, database, data["method"], params,
                                              request.headers.get("authorization"))
        except HTTPAbort as abort:
            return abort.response()
        except TrytonException as exc:
            if not wrapped:
                return _unwrapped_error(exc)
            return _json_response(request, {"id": data["id"], "error": exc.envelope()})
        except Exception as exc:
            log.debug("tryton demo: %s failed", data["method"], exc_info=True)
            if not wrapped:
                return _unwrapped_error(exc)
            return _json_response(request, {"id": data["id"], "error": [str(exc), ""]})
        if outcome.wrote:
            request.state.write = True
        if not wrapped:
            return _json_response(request, outcome.result)
        return _json_response(request, {"id": data["id"], "result": outcome.result})


async def _http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    return html_error(status)


def create_app(store: ErpStore, injector: FaultInjector, *, clock: Clock | None = None) -> ASGIApp:
    """The Tryton-compatible demo server over ``store``, behind fault injection."""
    service = TrytonService(store, clock or _utc_now)
    endpoint = RpcEndpoint(service).handle
    routes = [
        Route("/", endpoint, methods=["POST"]),
        Route("/rpc/", endpoint, methods=["POST"]),
        Route("/{database}/", endpoint, methods=["POST"]),
        Route("/{database}/rpc/", endpoint, methods=["POST"]),
    ]
    app = Starlette(routes=routes, exception_handlers={404: _http_error, 405: _http_error})
    app.state.tryton = service
    return FaultMiddleware(app, injector, render_fault)
