"""Tryton ERP connector: parties, products, customer invoices and sale subscriptions over
trytond's JSON-RPC (facts in ``shared/specs/tryton/README.md``, verified against 8.2).

Protocol:

- ``POST /<database>/rpc/`` with ``{"id", "method", "params"}``; typed values (Decimal, date,
  datetime) travel as ``__class__`` objects (:mod:`services.io.tryton_rpc`);
- ``common.db.login [login, {"password": pw}, "en"]`` -> ``[uid, session, ...]``, then every call
  carries ``Authorization: Session base64("login:uid:session")`` (set per request, never logged);
  an empty 401 means the session expired: we log in again once and repeat the call;
- the context (``model.res.user.get_preferences [true, {}]``, cached) is always the last param;
- errors: ``{"error": ["UserError", [msg, desc, domain]]}`` -> :class:`RemoteValidationError`,
  ``["UserWarning", [name, msg, desc]]`` -> :class:`RemoteWarning` (never acknowledged silently:
  the caller decides, then :meth:`TrytonConnector.acknowledge_warning`),
  ``["ConcurrencyException", ...]`` -> :class:`RemoteValidationError`, ``["LoginException", ...]`` ->
  :class:`AuthenticationError`, ``[str(exception), ""]`` -> :class:`ProtocolError` for a read (our
  request does not fit the server) or :class:`RemoteValidationError` for a write; bare HTTP
  errors through :class:`ResilientClient` (401 -> authentication, 403 -> the method is not
  served, 404 unknown database, 422 missing context, 429 / 5xx retried where safe).

Reading: ``search_read`` pages of :data:`PAGE_SIZE` ordered by id with a keyset clause
(``["id", ">", last]``) instead of offsets. The incremental refresh asks each model for
``["OR", ["create_date", ">", W], ["write_date", ">", W]]`` with W = the model's watermark minus
:data:`OVERLAP` (Tryton stamps records with the transaction's *start* time, so a long
transaction can commit records older than the watermark), de-duplicates against what is
already known, and re-reads the child records (identifiers, addresses, e-mails) of every
party that changed or whose children changed. With nothing changed it costs one request per
model (8).

Mapping (``services/io/connectors/base.py`` and ``services/core/reconcile.py``):

- ``party.party`` -> :class:`Customer` keyed by the party id; ``customer_id`` = the party code
  (an empty code = unlinked = ``None``); e-mail = the first e-mail contact mechanism, tax id =
  the first identifier, country = the first address's country (first in the party's own
  order of its one2many lists). Parties of ``company.company`` (the company itself) are left
  out, inactive parties are deletions;
- ``product.product`` with a code -> :class:`Plan` (key = the code);
- ``account.invoice`` of type ``out`` -> :class:`Invoice` (``billing_invoice_id`` = reference,
  total = ``total_amount`` in the invoice currency; no posting or payment time is derivable).
  A *credit note* (Tryton's ``sequence_type_cache`` = ``credit_note``, or not numbered yet with
  a negative total) is never a billing invoice's copy: its ``billing_invoice_id`` is ``None``
  whatever its reference says (Tryton's credit copies none), so the reference-based rules never
  count it. A *credited* invoice is ``cancelled`` (its state after a credit with refund), which
  the rules already leave out ("live" = not cancelled);
- ``sale.subscription`` -> :class:`Subscription` (plan = the product code of the first line's
  service, ``current_period_end`` = ``next_invoice_date`` at midnight UTC,
  ``billing_subscription_id`` = reference).

Writes (the F5 actions): :meth:`TrytonConnector.ensure_party`,
:meth:`TrytonConnector.ensure_invoice_posted` (idempotent: both look up by code / reference
first, and again when a create's answer is lost), :meth:`TrytonConnector.acknowledge_warning`,
:meth:`TrytonConnector.get_invoice`, :meth:`TrytonConnector.get_party`,
:meth:`TrytonConnector.write_party`, :meth:`TrytonConnector.cancel_invoice` (draft only, idempotent),
:meth:`TrytonConnector.replace_draft_invoice_lines` (draft only: a posted invoice is never
edited in place), :meth:`TrytonConnector.credit_invoice` (credit with refund through Tryton's
*Credit* wizard; idempotent: a credit note is looked up by its origin first and again when the
answer is lost), :meth:`TrytonConnector.credit_and_repost` (credit, then create and post a
corrected copy carrying the reference; idempotent end to end),
:meth:`TrytonConnector.get_subscription` and :meth:`TrytonConnector.write_subscription_terms`
(absolute values: repeatable).
"""

from __future__ import annotations

import asyncio
import base64
import html
import itertools
import logging
import re
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Annotated, Any, NoReturn, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictInt, StrictStr

from services.compute import run_cpu
from services.core.domain import (
    Customer,
    ExternalRef,
    Invoice,
    InvoiceStatus,
    Money,
    Plan,
    Subscription,
    SubscriptionStatus,
    System,
)
from services.core.errors import (
    AuthenticationError,
    CircuitOpenError,
    ConnectorError,
    NotFoundError,
    ProtocolError,
    RemoteValidationError,
    RemoteWarning,
    UnavailableError,
)
from services.core.sysdata import (
    Delta,
    Kind,
    Progress,
    ProgressCallback,
    RefreshResult,
    SystemData,
    no_progress,
    release,
)
from services.io import tryton_rpc
from services.io.config import ConfigError, SystemConnection
from services.io.connectors.base import Clock, Connector, utc_now
from services.io.http import DEFAULT_POLICIES, HttpPolicy, ResilientClient

log = logging.getLogger(__name__)

PAGE_SIZE = 500
#: re-read records stamped this long before the watermark (transaction start times)
OVERLAP = timedelta(minutes=2)
#: ids per ``["id", "in", ...]`` / ``["party", "in", ...]`` request
ID_CHUNK = 500
CURSOR_VERSION = 1
ORDER_BY_ID = [["id", "ASC"]]
BOTH_ACTIVE = ["active", "in", [True, False]]

PARTY = "party.party"
IDENTIFIER = "party.identifier"
ADDRESS = "party.address"
CONTACT = "party.contact_mechanism"
PRODUCT = "product.product"
INVOICE = "account.invoice"
SUBSCRIPTION = "sale.subscription"
SUB_LINE = "sale.subscription.line"
SERVICE = "sale.subscription.service"
COMPANY = "company.company"

STAMPS = ("create_date", "write_date")
FIELDS: dict[str, list[str]] = {
    PARTY: ["name", "code", "active", "identifiers", "addresses", "contact_mechanisms", *STAMPS],
    IDENTIFIER: ["party", "type", "code", *STAMPS],
    ADDRESS: ["party", "country", "country.code", *STAMPS],
    CONTACT: ["party", "type", "value", *STAMPS],
    PRODUCT: ["code", "name", "active", *STAMPS],
    INVOICE: ["type", "number", "reference", "party", "party.code", "state", "currency", "currency.code",
              "total_amount", "invoice_date", "sequence_type_cache", *STAMPS],
    SUBSCRIPTION: ["number", "reference", "party", "party.code", "state", "start_date", "end_date",
                   "next_invoice_date", "lines", *STAMPS],
    SUB_LINE: ["subscription", "service", "quantity", *STAMPS],
    SERVICE: ["product", "product.code", *STAMPS],
    COMPANY: ["party", "currency", "currency.code"],
}
#: the clause that selects what a full refresh reads of each model
BASE_DOMAIN: dict[str, list[Any]] = {
    INVOICE: [["type", "=", "out"]],
}
PHASES: dict[str, str] = {
    PARTY: "parties", IDENTIFIER: "identifiers", ADDRESS: "addresses", CONTACT: "contact mechanisms",
    PRODUCT: "products", INVOICE: "invoices", SUBSCRIPTION: "subscriptions", SUB_LINE: "subscription lines",
    SERVICE: "subscription services", COMPANY: "companies",
}
#: models whose changes the incremental refresh asks for (one request each when idle)
TRACKED = (PARTY, IDENTIFIER, ADDRESS, CONTACT, PRODUCT, INVOICE, SUBSCRIPTION, SUB_LINE)
SUBSCRIPTION_STATUS: dict[str, SubscriptionStatus] = {
    "running": SubscriptionStatus.ACTIVE,
    "closed": SubscriptionStatus.CANCELED,
    "cancelled": SubscriptionStatus.CANCELED,
    "draft": SubscriptionStatus.INCOMPLETE,
    "quotation": SubscriptionStatus.INCOMPLETE,
}
INVOICE_STATUS: dict[str, InvoiceStatus] = {
    "draft": InvoiceStatus.DRAFT,
    "validated": InvoiceStatus.VALIDATED,
    "posted": InvoiceStatus.POSTED,
    "paid": InvoiceStatus.PAID,
    "cancelled": InvoiceStatus.CANCELLED,
}
#: what ``account.invoice.on_change(["type", "party"])`` fills in that ``create`` needs
INVOICE_ONCHANGE_KEEP = ("journal", "account", "payment_term", "invoice_address")
LINE_ONCHANGE_KEEP = ("unit", "account")
#: Tryton's "Credit" wizard (``account.invoice.credit``): the RPC route to ``Invoice.credit``
CREDIT_WIZARD = "account.invoice.credit"

T = TypeVar("T")
Row = dict[str, Any]


# --------------------------------------------------------------------------------------
# Vendor payloads: every record read is validated (types strict: Decimal stays Decimal)
# --------------------------------------------------------------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True, populate_by_name=True)


class _Ref(_Model):
    """A dotted many2one read: ``"party.": {"id": 2, "code": "cus_X"}``."""

    id: StrictInt
    code: StrictStr | None = None


class _Record(_Model):
    id: StrictInt
    create_date: datetime
    write_date: datetime | None = None

    @property
    def stamp(self) -> datetime:
        return max(self.create_date, self.write_date) if self.write_date else self.create_date


def _flag(value: object) -> bool:
    """Tryton booleans: ``true``/``false`` on PostgreSQL, ``1``/``0`` on SQLite."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise ValueError(f"not a boolean: {value!r}")


TrytonBool = Annotated[bool, BeforeValidator(_flag)]


class TParty(_Record):
    name: StrictStr
    code: StrictStr | None = None
    active: TrytonBool = True
    identifiers: list[StrictInt] = []
    addresses: list[StrictInt] = []
    contact_mechanisms: list[StrictInt] = []


class TIdentifier(_Record):
    party: StrictInt
    type: StrictStr | None = None
    code: StrictStr | None = None


class TAddress(_Record):
    party: StrictInt
    country: StrictInt | None = None
    country_: _Ref | None = Field(default=None, alias="country.")


class TContact(_Record):
    party: StrictInt
    type: StrictStr
    value: StrictStr | None = None


class TProduct(_Record):
    code: StrictStr | None = None
    name: StrictStr | None = None
    active: TrytonBool = True


class TInvoice(_Record):
    type: StrictStr
    number: StrictStr | None = None
    reference: StrictStr | None = None
    party: StrictInt
    party_: _Ref | None = Field(default=None, alias="party.")
    state: StrictStr
    currency: StrictInt
    currency_: _Ref = Field(alias="currency.")
    total_amount: Decimal
    invoice_date: date | None = None
    #: set by Tryton when it numbers the invoice: ``invoice`` or ``credit_note``
    sequence_type_cache: StrictStr | None = None

    @property
    def is_credit_note(self) -> bool:
        """Tryton's own test (``Invoice._sequence_type``): numbered as a credit note, or, not
        numbered yet, a negative total."""
        if self.sequence_type_cache is not None:
            return self.sequence_type_cache == "credit_note"
        return self.total_amount < 0


class TSubscription(_Record):
    number: StrictStr | None = None
    reference: StrictStr | None = None
    party: StrictInt
    party_: _Ref | None = Field(default=None, alias="party.")
    state: StrictStr
    start_date: date | None = None
    end_date: date | None = None
    next_invoice_date: date | None = None
    lines: list[StrictInt] = []


class TSubLine(_Record):
    subscription: StrictInt
    service: StrictInt
    quantity: float


class TService(_Record):
    product: StrictInt
    product_: _Ref | None = Field(default=None, alias="product.")


class _State(_Model):
    id: StrictInt
    state: StrictStr


class _StateParty(_State):
    party: StrictInt


class _InvoiceHead(_StateParty):
    type: StrictStr
    number: StrictStr | None = None
    reference: StrictStr | None = None


class TCompany(_Model):
    id: StrictInt
    party: StrictInt
    currency: StrictInt | None = None


SCHEMAS: dict[str, type[_Model]] = {
    PARTY: TParty, IDENTIFIER: TIdentifier, ADDRESS: TAddress, CONTACT: TContact, PRODUCT: TProduct,
    INVOICE: TInvoice, SUBSCRIPTION: TSubscription, SUB_LINE: TSubLine, SERVICE: TService, COMPANY: TCompany,
}


# --------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------


def tryton_error_parser(response: httpx.Response) -> tuple[str, str | None]:
    """Tryton's bare HTTP errors are werkzeug HTML pages (or an empty 401)."""
    text = response.text.strip()
    if not text:
        if response.status_code == 401:
            return "the session is invalid or expired", None
        return response.reason_phrase or f"HTTP {response.status_code}", None
    title = re.search(r"<h1>(.*?)</h1>", text, re.S)
    para = re.search(r"<p>(.*?)</p>", text, re.S)
    if title or para:
        parts = [html.unescape(m.group(1).strip()) for m in (title, para) if m]
        return ": ".join(p for p in parts if p)[:300], None
    return text[:300], None


def aware(value: datetime) -> datetime:
    """Tryton's naive UTC datetime as an aware one."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def naive(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value


def midnight(value: date | None) -> datetime | None:
    return None if value is None else datetime.combine(value, time(), UTC)


def _code(value: str | None) -> str | None:
    value = (value or "").strip()
    return value or None


#: A party code links the party to a billing customer only when it is a billing id: a real
#: Tryton numbers every party ("1", "2", …), so an unlinked party never has an empty code.
CUSTOMER_CODE = re.compile(r"^cus_[A-Za-z0-9]+$")


def _customer_id(code: str | None) -> str | None:
    value = _code(code)
    return value if value is not None and CUSTOMER_CODE.match(value) else None


def _chunks(ids: Iterable[int], size: int = ID_CHUNK) -> list[list[int]]:
    ordered = sorted(set(ids))
    return [ordered[i:i + size] for i in range(0, len(ordered), size)]


def _changed_domain(since: datetime | None) -> list[Any]:
    if since is None:
        return []
    w = naive(since)
    return [["OR", ["create_date", ">", w], ["write_date", ">", w]]]


def _recent(seen: dict[str, str], rows: _Rows, mark: datetime) -> dict[str, str]:
    """Record id -> stamp of what lies inside the overlap window below the watermark ``mark``
    (what the next incremental refresh will read again): ``seen`` plus ``rows``, pruned."""
    floor = naive(mark) - OVERLAP
    merged = {**seen, **{str(rid): rec.stamp.isoformat() for rid, rec in rows.records.items()}}
    out: dict[str, str] = {}
    for rid, iso in merged.items():
        try:
            if datetime.fromisoformat(iso) > floor:
                out[rid] = iso
        except (TypeError, ValueError):
            continue
    return out


def _many2many_ids(value: Any) -> list[int]:
    """Ids from an on_change answer for a many2many: ``[1, 2]`` or trytond's
    ``{"add": [[index, {"id": 1, ...}], ...], ...}``."""
    if isinstance(value, list):
        return [v for v in value if isinstance(v, int) and not isinstance(v, bool) and v >= 0]
    if isinstance(value, dict):
        out: list[int] = []
        for item in value.get("add") or []:
            target = item[1] if isinstance(item, list | tuple) and len(item) == 2 else item
            rid = target.get("id") if isinstance(target, dict) else target
            if isinstance(rid, int) and not isinstance(rid, bool) and rid >= 0:
                out.append(rid)
        return out
    return []


def _action_res_ids(answer: Any) -> list[int]:
    """The record ids a wizard's answer opens: ``{"actions": [[action, {"res_id": [ids]}]]}``."""
    out: list[int] = []
    actions = answer.get("actions") if isinstance(answer, dict) else None
    for item in actions if isinstance(actions, list) else []:
        data = item[1] if isinstance(item, list) and len(item) == 2 else None
        ids = data.get("res_id") if isinstance(data, dict) else None
        for rid in ids if isinstance(ids, list) else [ids]:
            if isinstance(rid, int) and not isinstance(rid, bool):
                out.append(rid)
    return out


async def _gather(*aws: Awaitable[T]) -> list[T]:
    """``asyncio.gather`` that cancels the siblings when one fails (no requests keep going)."""
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


@dataclass
class _Rows:
    """Validated records of one read, by id, plus the newest stamp seen."""

    model: str
    records: dict[int, Any]
    newest: datetime | None = None

    def merge(self, other: _Rows) -> None:
        self.records.update(other.records)
        if other.newest is not None and (self.newest is None or other.newest > self.newest):
            self.newest = other.newest


# --------------------------------------------------------------------------------------
# The connector
# --------------------------------------------------------------------------------------


class TrytonConnector(Connector):
    system = System.ERP

    def __init__(self, conn: SystemConnection, client: ResilientClient, clock: Clock = utc_now) -> None:
        super().__init__(conn, client, clock)
        database = conn.settings.get("database")
        login = conn.settings.get("login")
        if not database or not login:
            raise ConfigError("erp: 'database' and 'login' must be configured")
        self.database = database
        self.login = login
        self.path = f"/{quote(database, safe='')}/rpc/"
        self._rpc_ids = itertools.count(1)
        self._auth_lock = asyncio.Lock()
        self._authorization: str | None = None  # "Session ..." (never logged)
        self._generation = 0  # bumped by every login
        self.uid: int | None = None
        self.context: dict[str, Any] | None = None
        self._currency_ids: dict[str, int] = {}
        self._product_cache: dict[str, int] = {}

    @classmethod
    def create(cls, conn: SystemConnection, *, policy: HttpPolicy | None = None,
               transport: Any = None, clock: Clock = utc_now) -> TrytonConnector:
        client = ResilientClient(System.ERP, conn.url, policy=policy or DEFAULT_POLICIES[System.ERP],
                                 headers={"Accept": "application/json", "User-Agent": "SyncDesk"},
                                 error_parser=tryton_error_parser, transport=transport)
        return cls(conn, client, clock)

    # -- JSON-RPC -----------------------------------------------------------------------
    async def _post(self, method: str, params: list[Any], operation: str, safe: bool,
                    authorization: str | None) -> Any:
        """One JSON-RPC call; the result, or the typed error of the envelope."""
        rid = next(self._rpc_ids)
        headers = {"Authorization": authorization} if authorization else None
        response = await self.client.request("POST", self.path, operation=operation, safe=safe,
                                             json={"id": rid, "method": method, "params": tryton_rpc.encode(params)},
                                             headers=headers)
        try:
            content = response.content
            # large answers (pages of 500 records) are decoded off the event loop: it also draws the UI
            body = (await run_cpu(tryton_rpc.loads, content) if len(content) > 64_000
                    else tryton_rpc.loads(content))
        except (ValueError, KeyError, TypeError) as exc:
            raise ProtocolError(self.system, operation, f"answer is not Tryton JSON ({type(exc).__name__}): "
                                f"{response.content[:80]!r}", status=response.status_code) from None
        if not isinstance(body, dict) or ("result" not in body and "error" not in body):
            raise ProtocolError(self.system, operation, "answer is not a JSON-RPC envelope",
                                status=response.status_code)
        if body.get("id") != rid:
            raise ProtocolError(self.system, operation, f"answer id {body.get('id')!r} is not request id {rid}")
        if body.get("error") is not None:
            self._raise_rpc_error(body["error"], operation, safe)
        return body.get("result")

    def _raise_rpc_error(self, error: Any, operation: str, safe: bool) -> NoReturn:
        if not isinstance(error, list) or not error or not isinstance(error[0], str):
            raise ProtocolError(self.system, operation, f"unreadable error envelope: {str(error)[:200]}")
        kind = error[0]
        args = error[1] if len(error) > 1 else None
        items = list(args) if isinstance(args, list | tuple) else []

        def text(i: int) -> str:
            return str(items[i]) if i < len(items) and items[i] not in (None, "") else ""

        if kind == "UserError":
            message = text(0) or "the ERP refused the request"
            if text(1):
                message = f"{message} ({text(1)})"
            raise RemoteValidationError(self.system, operation, message, vendor_code=kind)
        if kind == "UserWarning":
            message = text(1) or text(0) or "the ERP asks for a confirmation"
            if text(2):
                message = f"{message} ({text(2)})"
            raise RemoteWarning(self.system, operation, message, vendor_code=kind, warning_name=text(0))
        if kind == "ConcurrencyException":
            raise RemoteValidationError(self.system, operation,
                                        text(0) or "the record was modified by someone else meanwhile",
                                        vendor_code=kind)
        if kind == "LoginException":
            raise AuthenticationError(self.system, operation, text(1) or text(0) or "login required",
                                      vendor_code=kind)
        # [str(exception), ""]: any other server-side exception, terse
        if safe:
            raise ProtocolError(self.system, operation, f"the server could not answer the read: {kind}")
        raise RemoteValidationError(self.system, operation, f"the server failed the request: {kind}")

    async def _ensure_session(self, stale: int | None = None) -> None:
        """Log in unless a session exists (or log in again when the session of generation
        ``stale`` was refused and nobody has replaced it yet)."""
        async with self._auth_lock:
            if self._authorization is not None and (stale is None or stale != self._generation):
                return
            self._authorization = None
            operation = "login"
            try:
                result = await self._post("common.db.login", [self.login, {"password": self.conn.secret("password")},
                                                              "en"], operation, True, None)
            except AuthenticationError as exc:
                raise AuthenticationError(self.system, operation,
                                          f"login rejected for {self.login!r} on database {self.database!r} "
                                          f"(wrong login or password): {exc.message}", status=exc.status,
                                          vendor_code=exc.vendor_code) from None
            if (not isinstance(result, list) or len(result) < 2 or not isinstance(result[0], int)
                    or isinstance(result[0], bool) or not isinstance(result[1], str)):
                raise ProtocolError(self.system, operation, "login answer is not [user id, session, ...]")
            self.uid = result[0]
            token = base64.b64encode(f"{self.login}:{self.uid}:{result[1]}".encode()).decode("ascii")
            self._authorization = f"Session {token}"
            self._generation += 1
            if self.context is None:
                prefs = await self._post("model.res.user.get_preferences", [True, {}], "get preferences", True,
                                         self._authorization)
                if not isinstance(prefs, dict):
                    raise ProtocolError(self.system, "get preferences", "preferences are not an object")
                self.context = prefs

    async def call(self, model: str, method: str, *params: Any, operation: str | None = None,
                   safe: bool = False) -> Any:
        """``model.<model>.<method>`` with the context appended; logs in (again, once) as needed."""
        return await self._rpc(f"model.{model}.{method}", params, operation or f"{method} {model}", safe)

    async def wizard(self, wizard: str, method: str, *params: Any, operation: str,
                     context: dict[str, Any] | None = None) -> Any:
        """``wizard.<wizard>.<method>`` (``create``, ``execute``, ``delete``) with the context,
        plus ``context`` (the records it runs on: ``active_model``, ``active_id(s)``), appended."""
        return await self._rpc(f"wizard.{wizard}.{method}", params, operation, False, context)

    async def _rpc(self, name: str, params: Sequence[Any], operation: str, safe: bool,
                   extra_context: dict[str, Any] | None = None) -> Any:
        await self._ensure_session()
        for attempt in range(2):
            generation = self._generation
            authorization = self._authorization
            context = {**(self.context or {}), **(extra_context or {})}
            try:
                return await self._post(name, [*params, context], operation, safe, authorization)
            except AuthenticationError as exc:
                if exc.status == 403:  # trytond's answer to a method it does not serve over RPC
                    raise ProtocolError(self.system, operation, f"the ERP does not serve {name} "
                                        "(unknown model or method, or its module is not activated)",
                                        status=403) from None
                if exc.status != 401 or attempt:
                    raise
                log.info("erp: session refused (%s); logging in again", operation)
                await self._ensure_session(stale=generation)
        raise AssertionError("unreachable")  # pragma: no cover

    @property
    def company(self) -> int:
        company = (self.context or {}).get("company")
        if not isinstance(company, int) or isinstance(company, bool):
            raise RemoteValidationError(self.system, "preferences", "the ERP user has no current company")
        return company

    # -- reading ------------------------------------------------------------------------
    def _validate(self, model: str, raw: Any, schema: type[_Model] | None = None) -> Any:
        rid = raw.get("id") if isinstance(raw, dict) else None
        what = f"{model} {rid}" if isinstance(rid, int) else f"{model} record"
        if not isinstance(raw, dict):
            raise ProtocolError(self.system, f"read {model}", f"{what} is not an object")
        return self.parse(schema or SCHEMAS[model], raw, what)

    def _rows(self, model: str, raw_rows: Any, operation: str, schema: type[_Model] | None = None) -> _Rows:
        if not isinstance(raw_rows, list):
            raise ProtocolError(self.system, operation, f"{model}: expected a list of records")
        out = _Rows(model, {})
        for raw in raw_rows:
            rec = self._validate(model, raw, schema)
            out.records[rec.id] = rec
            if isinstance(rec, _Record) and (out.newest is None or rec.stamp > out.newest):
                out.newest = rec.stamp
        return out

    async def search_read_all(self, model: str, domain: Sequence[Any], *, fields: list[str] | None = None,
                              schema: type[_Model] | None = None, progress: ProgressCallback = no_progress,
                              phase: str | None = None) -> _Rows:
        """Every record of ``domain`` (a list of ANDed clauses), keyset-paged by id and
        validated with ``schema`` (default: the model's)."""
        fields = fields or FIELDS[model]
        phase = phase or PHASES[model]
        operation = f"search_read {model}"
        result = _Rows(model, {})
        last = 0
        while True:
            page_domain = [*domain, ["id", ">", last]] if last else list(domain)
            raw = await self.call(model, "search_read", page_domain, 0, PAGE_SIZE, ORDER_BY_ID, fields,
                                  operation=operation, safe=True)
            page = await run_cpu(self._rows, model, raw, operation, schema)  # validation: CPU work
            ids = list(page.records)
            if ids and (min(ids) <= last or len(ids) != len(raw)):
                raise ProtocolError(self.system, operation, f"{model}: page ids are not ascending after {last}")
            result.merge(page)
            progress(Progress(self.system, phase, len(result.records)))
            if len(raw) < PAGE_SIZE:
                return result
            last = max(ids)

    async def read_ids(self, model: str, ids: Iterable[int], extra: Sequence[Any] = (), *,
                       field: str = "id", progress: ProgressCallback = no_progress) -> _Rows:
        """Records whose ``field`` is one of ``ids`` (missing ones are simply absent)."""
        result = _Rows(model, {})
        for chunk in _chunks(ids):
            result.merge(await self.search_read_all(model, [[field, "in", chunk], *extra], progress=progress))
        return result

    async def _companies(self) -> dict[int, TCompany]:
        rows = await self.search_read_all(COMPANY, [])
        return dict(rows.records)

    # -- mapping ------------------------------------------------------------------------
    def map_party(self, party: TParty, identifiers: dict[int, TIdentifier], addresses: dict[int, TAddress],
                  emails: dict[int, TContact]) -> Customer:
        tax_id = next((_code(identifiers[i].code) for i in party.identifiers
                       if i in identifiers and _code(identifiers[i].code)), None)
        country = None
        for aid in party.addresses:
            addr = addresses.get(aid)
            if addr is not None:
                country = _code(addr.country_.code) if addr.country_ else None
                break
        email = next((_code(emails[c].value) for c in party.contact_mechanisms
                      if c in emails and emails[c].type == "email" and _code(emails[c].value)), None)
        return Customer(ref=ExternalRef(self.system, PARTY, str(party.id)), customer_id=_customer_id(party.code),
                        name=party.name, email=email, tax_id=tax_id, country=country,
                        created=aware(party.create_date), updated=aware(party.stamp))

    def map_product(self, product: TProduct) -> Plan | None:
        key = _code(product.code)
        if key is None:
            return None  # no code: nothing in billing can refer to it
        return Plan(ref=ExternalRef(self.system, PRODUCT, str(product.id)), key=key, name=product.name or key)

    def map_invoice(self, inv: TInvoice) -> Invoice:
        what = f"{INVOICE} {inv.id}"
        status = INVOICE_STATUS.get(inv.state)
        if status is None:
            raise ProtocolError(self.system, f"read {INVOICE}", f"{what}: unknown state {inv.state!r}")
        try:
            total = Money(inv.total_amount, inv.currency_.code or "")
        except (TypeError, ValueError) as exc:
            raise ProtocolError(self.system, f"read {INVOICE}", f"{what}: {exc}") from None
        # a credit note is never a billing invoice's copy, whatever its reference says
        reference = None if inv.is_credit_note else _code(inv.reference)
        return Invoice(ref=ExternalRef(self.system, INVOICE, str(inv.id)),
                       customer_id=_customer_id(inv.party_.code) if inv.party_ else None, status=status, total=total,
                       number=_code(inv.number), billing_invoice_id=reference,
                       created=aware(inv.create_date), invoice_date=inv.invoice_date)

    def map_subscription(self, sub: TSubscription, lines: dict[int, TSubLine],
                         services: dict[int, TService]) -> Subscription:
        status = SUBSCRIPTION_STATUS.get(sub.state)
        if status is None:
            raise ProtocolError(self.system, f"read {SUBSCRIPTION}", f"{SUBSCRIPTION} {sub.id}: unknown state "
                                f"{sub.state!r}")
        first = next((lines[i] for i in sub.lines if i in lines), None)
        plan_key: str | None = None
        quantity = 0
        if first is not None:
            service = services.get(first.service)
            plan_key = _code(service.product_.code) if service and service.product_ else None
            quantity = round(first.quantity)
        canceled = status is SubscriptionStatus.CANCELED
        return Subscription(ref=ExternalRef(self.system, SUBSCRIPTION, str(sub.id)),
                            customer_id=_customer_id(sub.party_.code) if sub.party_ else None, status=status,
                            plan_key=plan_key, quantity=quantity,
                            current_period_end=midnight(sub.next_invoice_date), created=aware(sub.create_date),
                            canceled_at=midnight(sub.end_date) if canceled else None,
                            billing_subscription_id=_code(sub.reference))

    def _customers(self, parties: dict[int, Any], identifiers: _Rows, addresses: _Rows, contacts: _Rows,
                   company_parties: set[int]) -> dict[str, Customer]:
        return {str(pid): self.map_party(p, identifiers.records, addresses.records, contacts.records)
                for pid, p in parties.items() if pid not in company_parties and p.active}

    def _map_all(self, rows: dict[str, _Rows], company_parties: set[int]) -> SystemData:
        data = SystemData(self.system)
        data.customers = self._customers(rows[PARTY].records, rows[IDENTIFIER], rows[ADDRESS], rows[CONTACT],
                                         company_parties)
        for product in rows[PRODUCT].records.values():
            plan = self.map_product(product)
            if plan is not None:
                data.plans[str(product.id)] = plan
        for inv in rows[INVOICE].records.values():
            data.invoices[str(inv.id)] = self.map_invoice(inv)
        for sub in rows[SUBSCRIPTION].records.values():
            data.subscriptions[str(sub.id)] = self.map_subscription(sub, rows[SUB_LINE].records,
                                                                    rows[SERVICE].records)
        return data

    # -- refresh ------------------------------------------------------------------------
    async def full_refresh(self, progress: ProgressCallback = no_progress) -> RefreshResult:
        before = self.requests_made
        companies = await self._companies()
        company_parties = {c.party for c in companies.values()}
        models = (PARTY, IDENTIFIER, ADDRESS, CONTACT, PRODUCT, INVOICE, SUBSCRIPTION, SUB_LINE, SERVICE)
        results = await _gather(*(self.search_read_all(m, BASE_DOMAIN.get(m, []), progress=progress)
                                  for m in models))
        rows = dict(zip(models, results, strict=True))
        marks = {m: aware(r.newest) for m, r in rows.items() if m in TRACKED and r.newest is not None}

        def finish() -> tuple[SystemData, dict[str, dict[str, str]]]:
            # mapping every record is CPU work, and so is freeing the validated pages: off the
            # event loop (it also draws the UI)
            data = self._map_all(rows, company_parties)
            recent = {m: _recent({}, rows[m], marks[m]) for m in marks}
            release(*(r.records for r in rows.values()))
            return data, recent

        data, recent = await run_cpu(finish)
        cursor = {"version": CURSOR_VERSION, "watermarks": {m: v.isoformat() for m, v in sorted(marks.items())},
                  "recent": recent, "company_parties": sorted(company_parties)}
        progress(Progress(self.system, "mapped", data.count(), data.count()))
        return RefreshResult(self.system, data, None, cursor, self.clock(), self.requests_made - before)

    async def incremental_refresh(self, cursor: dict[str, Any], known: SystemData,
                                  progress: ProgressCallback = no_progress) -> RefreshResult:
        raw_marks = cursor.get("watermarks") if isinstance(cursor, dict) else None
        if cursor.get("version") != CURSOR_VERSION or not isinstance(raw_marks, dict):
            log.info("erp: no usable cursor; full refresh")
            return await self.full_refresh(progress)
        marks: dict[str, datetime] = {}
        for model, value in raw_marks.items():
            try:
                marks[model] = aware(datetime.fromisoformat(str(value)))
            except ValueError:
                continue
        before = self.requests_made
        parties = cursor.get("company_parties")
        if isinstance(parties, list) and all(isinstance(p, int) for p in parties):
            company_parties = set(parties)
        else:
            company_parties = {c.party for c in (await self._companies()).values()}

        def since(model: str) -> datetime | None:
            mark = marks.get(model)
            return None if mark is None else mark - OVERLAP

        def changes(model: str) -> Awaitable[_Rows]:
            domain = _changed_domain(since(model)) + BASE_DOMAIN.get(model, [])
            if model in (PARTY, PRODUCT):  # a deactivation is a change (a deletion) too
                domain.append(BOTH_ACTIVE)
            return self.search_read_all(model, domain, progress=progress, phase=f"changed {PHASES[model]}")

        results = await _gather(*(changes(m) for m in TRACKED))
        changed = dict(zip(TRACKED, results, strict=True))
        party_mark = marks.get(PARTY)  # the previous refresh's, before this one moves it

        def held_before(party: TParty) -> bool:
            """Whether invoices or subscriptions of ``party`` (a party the snapshot does not
            hold as a customer: inactive at the previous refresh, or new since) may be in the
            snapshot: only if it existed then. A party created since has none there."""
            return party_mark is None or aware(party.create_date) <= party_mark
        raw_recent = cursor.get("recent")
        old_recent: dict[str, Any] = raw_recent if isinstance(raw_recent, dict) else {}
        recent: dict[str, dict[str, str]] = {}
        for model, rows in changed.items():
            if rows.newest is not None:
                stamp = aware(rows.newest)
                if model not in marks or stamp > marks[model]:
                    marks[model] = stamp
            raw_seen = old_recent.get(model)
            seen: dict[str, str] = raw_seen if isinstance(raw_seen, dict) else {}
            if model in marks:
                recent[model] = _recent(seen, rows, marks[model])
            # de-duplicate: what the overlap window re-read unchanged is no change
            rows.records = {rid: rec for rid, rec in rows.records.items()
                            if seen.get(str(rid)) != rec.stamp.isoformat()}

        upserts = SystemData(self.system)
        deletions: dict[Kind, set[str]] = {}

        def delete(kind: Kind, key: str) -> None:
            if key in known.table(kind):
                deletions.setdefault(kind, set()).add(key)

        # parties: changed ones, and those whose identifiers / addresses / e-mails changed
        party_rows = changed[PARTY]
        affected = set(party_rows.records)
        for model in (IDENTIFIER, ADDRESS, CONTACT):
            affected |= {child.party for child in changed[model].records.values()}
        missing = affected - set(party_rows.records)
        if missing:
            party_rows.merge(await self.read_ids(PARTY, missing, [BOTH_ACTIVE]))
        relinked: set[int] = set()
        live = {pid for pid, p in party_rows.records.items() if p.active and pid not in company_parties}
        if live:
            idents, addrs, mails = await _gather(self.read_ids(IDENTIFIER, live, field="party"),
                                                 self.read_ids(ADDRESS, live, field="party"),
                                                 self.read_ids(CONTACT, live, field="party"))
            customers = self._customers({p: party_rows.records[p] for p in live}, idents, addrs, mails,
                                        company_parties)
            for key, customer in customers.items():
                old = known.customers.get(key)
                if old != customer:
                    upserts.customers[key] = customer
                # a changed code moves the party's invoices and subscriptions to another
                # customer; so may a reactivated party's (its code may have changed while it
                # was inactive, out of sight)
                if (old.customer_id != customer.customer_id if old is not None
                        else held_before(party_rows.records[int(key)])):
                    relinked.add(int(key))
        for pid in set(party_rows.records) - live:
            delete(Kind.CUSTOMER, str(pid))
            # deactivated, or changed while inactive: its invoices and subscriptions stay in the
            # ERP and carry the code it has now, as a full refresh maps them
            party = party_rows.records[pid]
            old = known.customers.get(str(pid))
            if pid not in company_parties and (old.customer_id != _customer_id(party.code) if old is not None
                                               else held_before(party)):
                relinked.add(pid)

        for product in changed[PRODUCT].records.values():
            plan = self.map_product(product) if product.active else None
            if plan is None:
                delete(Kind.PLAN, str(product.id))
            elif known.plans.get(plan.ref.id) != plan:
                upserts.plans[plan.ref.id] = plan

        # invoices (and those of parties whose code changed: their customer id moved)
        invoices = changed[INVOICE]
        subs = changed[SUBSCRIPTION]
        if relinked:
            again = await _gather(self.read_ids(INVOICE, relinked, BASE_DOMAIN[INVOICE], field="party"),
                                  self.read_ids(SUBSCRIPTION, relinked, field="party"))
            invoices.merge(again[0])
            subs.merge(again[1])
        for inv in invoices.records.values():
            mapped = self.map_invoice(inv)
            if known.invoices.get(mapped.ref.id) != mapped:
                upserts.invoices[mapped.ref.id] = mapped

        # subscriptions: changed ones and those whose lines changed
        affected_subs = set(subs.records) | {line.subscription for line in changed[SUB_LINE].records.values()}
        missing = affected_subs - set(subs.records)
        if missing:
            subs.merge(await self.read_ids(SUBSCRIPTION, missing))
        if subs.records:
            lines = await self.read_ids(SUB_LINE, subs.records, field="subscription")
            services = await self.read_ids(SERVICE, {line.service for line in lines.records.values()})
            for sub in subs.records.values():
                mapped_sub = self.map_subscription(sub, lines.records, services.records)
                if known.subscriptions.get(mapped_sub.ref.id) != mapped_sub:
                    upserts.subscriptions[mapped_sub.ref.id] = mapped_sub

        new_cursor = {"version": CURSOR_VERSION,
                      "watermarks": {m: v.isoformat() for m, v in sorted(marks.items())},
                      "recent": recent, "company_parties": sorted(company_parties)}
        delta = Delta(upserts, deletions)
        progress(Progress(self.system, "mapped", delta.count(), delta.count()))
        return RefreshResult(self.system, None, delta, new_cursor, self.clock(), self.requests_made - before)

    async def list_ids(self, progress: ProgressCallback = no_progress) -> dict[Kind, set[str]]:
        """Ids of active parties (without the company's), coded products, customer invoices
        and subscriptions: one ``search`` each."""
        async def ids(model: str, domain: list[Any]) -> set[int]:
            operation = f"search {model}"
            found = await self.call(model, "search", domain, 0, None, ORDER_BY_ID, operation=operation, safe=True)
            if not isinstance(found, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in found):
                raise ProtocolError(self.system, operation, f"{model}: search did not answer a list of ids")
            progress(Progress(self.system, f"{PHASES[model]} ids", len(found)))
            return set(found)

        companies = await self._companies()
        parties, products, invoices, subs = await _gather(
            ids(PARTY, []), ids(PRODUCT, [["code", "!=", None], ["code", "!=", ""]]),
            ids(INVOICE, BASE_DOMAIN[INVOICE]), ids(SUBSCRIPTION, []))
        parties -= {c.party for c in companies.values()}
        return {Kind.CUSTOMER: {str(i) for i in parties}, Kind.PLAN: {str(i) for i in products},
                Kind.INVOICE: {str(i) for i in invoices}, Kind.SUBSCRIPTION: {str(i) for i in subs}}

    # -- writes (F5) --------------------------------------------------------------------
    async def _ids(self, model: str, domain: list[Any], limit: int | None = None) -> list[int]:
        operation = f"search {model}"
        found = await self.call(model, "search", domain, 0, limit, ORDER_BY_ID, operation=operation, safe=True)
        if not isinstance(found, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in found):
            raise ProtocolError(self.system, operation, f"{model}: search did not answer a list of ids")
        return found

    async def _create_one(self, model: str, values: dict[str, Any],
                          recover: Callable[[], Awaitable[int | None]]) -> int:
        """``create`` one record; when the answer is lost (the write may have committed),
        ``recover()`` looks the record up before giving up."""
        operation = f"create {model}"
        try:
            created = await self.call(model, "create", [values], operation=operation)
        except UnavailableError as exc:
            if isinstance(exc, CircuitOpenError):
                raise
            log.warning("erp: %s: answer lost (%s); looking the record up", operation, exc.message)
            try:
                found = await recover()
            except ConnectorError:
                raise exc from None
            if found is None:
                raise
            return found
        if (not isinstance(created, list) or len(created) != 1 or not isinstance(created[0], int)
                or isinstance(created[0], bool)):
            raise ProtocolError(self.system, operation, "create did not answer one id")
        return created[0]

    async def find_party(self, customer_id: str) -> int | None:
        """The party carrying ``customer_id`` as its code (active or not)."""
        found = await self._ids(PARTY, [["code", "=", customer_id], BOTH_ACTIVE], limit=1)
        return found[0] if found else None

    async def ensure_party(self, customer_id: str, name: str, tax_id: str | None = None,
                           country_code: str | None = None, email: str | None = None, *,
                           tax_type: str | None = None) -> int:
        """The id of the party coded ``customer_id``, created (with its identifier, address and
        e-mail) when none exists. Idempotent, also when a create's answer was lost."""
        existing = await self.find_party(customer_id)
        if existing is not None:
            return existing
        values: dict[str, Any] = {"name": name, "code": customer_id}
        if tax_id:
            values["identifiers"] = [["create", [{"type": tax_type, "code": tax_id}]]]
        if country_code:
            countries = await self._ids("country.country", [["code", "=", country_code.upper()]], limit=1)
            if not countries:
                raise RemoteValidationError(self.system, "create party",
                                            f"the ERP has no country with code {country_code!r}")
            values["addresses"] = [["create", [{"country": countries[0]}]]]
        else:  # an invoice needs an address: create one even when the country is unknown
            values["addresses"] = [["create", [{}]]]
        if email:
            values["contact_mechanisms"] = [["create", [{"type": "email", "value": email}]]]
        return await self._create_one(PARTY, values, lambda: self.find_party(customer_id))

    async def get_party(self, party_id: int) -> Customer:
        parties = await self.read_ids(PARTY, [party_id], [BOTH_ACTIVE])
        party = parties.records.get(party_id)
        if party is None:
            raise NotFoundError(self.system, "read party", f"party {party_id} does not exist")
        ident, addr, contacts = await _gather(
            self.read_ids(IDENTIFIER, [party_id], field="party"), self.read_ids(ADDRESS, [party_id], field="party"),
            self.read_ids(CONTACT, [party_id], field="party"))
        return self.map_party(party, ident.records, addr.records, contacts.records)

    async def write_party(self, party_id: int, values: dict[str, Any]) -> Customer:
        """Write ``values`` on the party (trytond field names; x2many actions allowed) and
        answer the party as read back."""
        await self.call(PARTY, "write", [party_id], dict(values), operation="write party")
        return await self.get_party(party_id)

    async def find_invoice(self, billing_invoice_id: str) -> tuple[int, str] | None:
        """(id, state) of the first live (not cancelled) customer invoice with this reference."""
        rows = await self.search_read_all(INVOICE, [["reference", "=", billing_invoice_id],
                                                    ["type", "=", "out"], ["state", "!=", "cancelled"]],
                                          fields=["state"], schema=_State, phase="invoice lookup")
        if not rows.records:
            return None
        first = min(rows.records)
        return first, rows.records[first].state

    async def _invoice_state(self, invoice_id: int) -> str | None:
        rows = await self.search_read_all(INVOICE, [["id", "=", invoice_id]], fields=["state"], schema=_State,
                                          phase="invoice lookup")
        found = rows.records.get(invoice_id)
        return None if found is None else str(found.state)

    async def _currency_id(self, code: str) -> int:
        code = code.upper()
        if code not in self._currency_ids:
            found = await self._ids("currency.currency", [["code", "=", code]], limit=1)
            if not found:
                raise RemoteValidationError(self.system, "create invoice", f"the ERP has no currency {code}")
            self._currency_ids[code] = found[0]
        return self._currency_ids[code]

    async def _on_change(self, model: str, values: dict[str, Any], fieldnames: list[str]) -> dict[str, Any]:
        operation = f"on_change {model}"
        answer = await self.call(model, "on_change", values, fieldnames, operation=operation, safe=True)
        if isinstance(answer, list) and len(answer) == 1:
            answer = answer[0]
        if not isinstance(answer, dict):
            raise ProtocolError(self.system, operation, "on_change did not answer an object of values")
        return answer

    async def _product_ids(self, codes: Iterable[str], operation: str) -> dict[str, int]:
        """Product ids by code (cached: a code names the same product for the session)."""
        wanted = sorted(set(codes))
        todo = [c for c in wanted if c not in self._product_cache]
        if todo:
            found = await self.search_read_all(PRODUCT, [["code", "in", todo], BOTH_ACTIVE],
                                               fields=["code", "name", "active", *STAMPS], phase="products")
            for rec in sorted(found.records.values(), key=lambda r: r.id):
                if rec.code:
                    self._product_cache.setdefault(rec.code, rec.id)
        products = {c: self._product_cache[c] for c in wanted if c in self._product_cache}
        unknown = [c for c in wanted if c not in products]
        if unknown:
            raise RemoteValidationError(self.system, operation,
                                        f"the ERP has no product with code {', '.join(unknown)}")
        return products

    async def _line_values(self, party_id: int, currency: int, company: int,
                           lines: Sequence[tuple[str, Decimal | int | float, Decimal, str]],
                           products: dict[str, int]) -> list[dict[str, Any]]:
        """``account.invoice.line`` values for ``lines`` (product code, quantity, unit price,
        description), completed by the ERP's on_change (unit, account, taxes)."""
        per_product: dict[int, dict[str, Any]] = {}
        created_lines: list[dict[str, Any]] = []
        for code, quantity, unit_price, description in lines:
            product = products[code]
            if product not in per_product:
                per_product[product] = await self._on_change(
                    "account.invoice.line",
                    {"product": product, "type": "line", "invoice_type": "out", "party": party_id,
                     "currency": currency, "company": company, "quantity": float(quantity)}, ["product"])
            line_changes = per_product[product]
            # a real Tryton requires each line's currency and company to be the invoice's
            line: dict[str, Any] = {"type": "line", "product": product, "description": description,
                                    "quantity": float(quantity), "unit_price": Decimal(unit_price),
                                    "currency": currency, "company": company}
            for key in LINE_ONCHANGE_KEEP:
                if isinstance(line_changes.get(key), int) and not isinstance(line_changes.get(key), bool):
                    line[key] = line_changes[key]
            taxes = _many2many_ids(line_changes.get("taxes"))
            if taxes:
                line["taxes"] = [["add", taxes]]
            created_lines.append(line)
        return created_lines

    async def _create_invoice(self, billing_invoice_id: str, party_id: int, currency_code: str,
                              invoice_date: date | None,
                              lines: Sequence[tuple[str, Decimal | int | float, Decimal, str]]) -> int:
        await self._ensure_session()
        company = self.company
        currency = await self._currency_id(currency_code)
        products = await self._product_ids((line[0] for line in lines), "create invoice")
        header: dict[str, Any] = {"type": "out", "party": party_id, "company": company, "currency": currency}
        if invoice_date is not None:
            header["invoice_date"] = invoice_date
        changes = await self._on_change(INVOICE, dict(header), ["type", "party"])
        values: dict[str, Any] = {**header, "reference": billing_invoice_id}
        for key in INVOICE_ONCHANGE_KEEP:
            if isinstance(changes.get(key), int) and not isinstance(changes.get(key), bool):
                values[key] = changes[key]
        if "journal" not in values or "account" not in values:
            raise RemoteValidationError(self.system, "create invoice",
                                        f"the ERP proposes no journal or receivable account for party {party_id}")
        created_lines = await self._line_values(party_id, currency, company, lines, products)
        if created_lines:
            values["lines"] = [["create", created_lines]]

        async def recover() -> int | None:
            found = await self.find_invoice(billing_invoice_id)
            return found[0] if found else None

        return await self._create_one(INVOICE, values, recover)

    async def _invoice_button(self, invoice_id: int, button: str, operation: str, done: tuple[str, ...]) -> None:
        """Press an invoice button. When the answer is lost (the connection dropped after the
        server may have committed), the invoice is read again: a state in ``done`` means the
        button took effect, so pressing it is not repeated."""
        try:
            await self.call(INVOICE, button, [invoice_id], operation=operation)
        except UnavailableError as exc:
            if isinstance(exc, CircuitOpenError):
                raise
            try:
                state = await self._invoice_state(invoice_id)
            except ConnectorError:
                raise exc from None
            if state not in done:
                raise

    async def post_invoice(self, invoice_id: int) -> None:
        """Post (number) a draft or validated invoice. A UserWarning surfaces as
        :class:`RemoteWarning`; acknowledge it with :meth:`acknowledge_warning` and post again."""
        await self._invoice_button(invoice_id, "post", "post invoice", ("posted", "paid"))

    async def ensure_invoice_posted(self, billing_invoice_id: str, party_id: int, currency_code: str,
                                    invoice_date: date | None,
                                    lines: Sequence[tuple[str, Decimal | int | float, Decimal, str]]) -> int:
        """The id of the posted customer invoice whose reference is ``billing_invoice_id``:
        found (and posted if still a draft) or created from ``lines`` = (product code,
        quantity, unit price, description) and posted. Idempotent; a warning on posting is
        raised as :class:`RemoteWarning` and leaves a draft that the next call posts."""
        existing = await self.find_invoice(billing_invoice_id)
        if existing is None:
            invoice_id = await self._create_invoice(billing_invoice_id, party_id, currency_code, invoice_date, lines)
            state = "draft"
        else:
            invoice_id, state = existing
        if state not in ("posted", "paid"):
            await self.post_invoice(invoice_id)
        return invoice_id

    async def acknowledge_warning(self, name: str) -> None:
        """Tell the ERP the current user accepts warning ``name`` once (``res.user.warning``)."""
        await self._ensure_session()
        await self._create_one("res.user.warning", {"user": self.uid, "name": name, "always": False},
                               self._no_recovery)

    @staticmethod
    async def _no_recovery() -> int | None:
        return None

    async def get_invoice(self, invoice_id: int) -> Invoice:
        rows = await self.read_ids(INVOICE, [invoice_id])
        inv = rows.records.get(invoice_id)
        if inv is None:
            raise NotFoundError(self.system, "read invoice", f"invoice {invoice_id} does not exist")
        return self.map_invoice(inv)

    async def invoice_state(self, invoice_id: int) -> str | None:
        """The invoice's state (``None`` when it does not exist)."""
        return await self._invoice_state(invoice_id)

    async def cancel_invoice(self, invoice_id: int) -> None:
        """Cancel a draft or validated invoice (the ``cancel`` button). Idempotent: an
        invoice already cancelled is left as it is. A posted invoice is refused (the ERP
        never cancels a posted invoice in place)."""
        state = await self._invoice_state(invoice_id)
        if state is None:
            raise NotFoundError(self.system, "cancel invoice", f"invoice {invoice_id} does not exist")
        if state == "cancelled":
            return
        if state in ("posted", "paid"):
            raise RemoteValidationError(self.system, "cancel invoice",
                                        f"invoice {invoice_id} is {state}: a posted invoice is never cancelled in "
                                        "place (credit it instead)")
        await self._invoice_button(invoice_id, "cancel", "cancel invoice", ("cancelled",))

    async def _invoice_head(self, invoice_id: int, operation: str) -> _InvoiceHead:
        rows = await self.search_read_all(INVOICE, [["id", "=", invoice_id]],
                                          fields=["state", "party", "type", "number", "reference"],
                                          schema=_InvoiceHead, phase="invoice lookup")
        found = rows.records.get(invoice_id)
        if found is None:
            raise NotFoundError(self.system, operation, f"invoice {invoice_id} does not exist")
        assert isinstance(found, _InvoiceHead)
        return found

    async def find_credit_notes(self, invoice_id: int, party_id: int | None = None) -> list[tuple[int, str]]:
        """(id, state) of the live (not cancelled) customer credit notes of invoice
        ``invoice_id``, oldest first: Tryton's ``origin_invoices`` (a credit note's lines have
        the credited invoice's lines as their origin). ``party_id`` narrows the search."""
        domain: list[Any] = [["origin_invoices", "=", invoice_id], ["type", "=", "out"],
                             ["state", "!=", "cancelled"]]
        if party_id is not None:
            domain.append(["party", "=", party_id])
        rows = await self.search_read_all(INVOICE, domain, fields=["state"], schema=_State,
                                          phase="credit note lookup")
        return [(rid, str(rows.records[rid].state)) for rid in sorted(rows.records)]

    async def credit_invoice(self, invoice_id: int, credit_date: date | None = None) -> int | None:
        """Credit posted customer invoice ``invoice_id`` with refund, as Tryton's *Credit*
        wizard does (``wizard.account.invoice.credit``; the ``credit`` classmethod is not served
        over RPC): a credit note (party, accounts, currency, payment term and lines copied, the
        quantities negated, each line's origin = the credited line, no reference, dated
        ``credit_date`` or today) is posted and reconciled against the invoice, which ends
        ``cancelled``. Answers the credit note's id.

        Idempotent: an invoice already credited (cancelled, with a credit note) answers that
        credit note and credits nothing again; when the wizard's answer is lost, the invoice is
        read again, and cancelled with a credit note means the credit took effect. An invoice
        cancelled in place (no credit note: its posting was reversed by a cancel move) answers
        ``None``. Refused (:class:`RemoteValidationError`): a draft, validated or paid invoice
        (Tryton refunds only a posted invoice whose payment is not reconciled), and a posted
        invoice that a live credit note already credits (one made by hand, without refund:
        finish it in the ERP). A warning while posting the credit note is raised as
        :class:`RemoteWarning` (nothing committed); acknowledge it and call again."""
        operation = "credit invoice"
        return await self._credit(await self._invoice_head(invoice_id, operation), credit_date, operation)

    async def _credit(self, head: _InvoiceHead, credit_date: date | None, operation: str) -> int | None:
        name = head.number or f"{head.id} [{head.reference or ''}]"
        if head.type != "out":
            raise RemoteValidationError(self.system, operation, f"invoice {name} is not a customer invoice")
        notes = await self.find_credit_notes(head.id, head.party)
        if head.state == "cancelled":
            return notes[0][0] if notes else None
        if head.state != "posted":
            raise RemoteValidationError(self.system, operation,
                                        f"invoice {name} is {head.state}: Tryton credits with refund only a "
                                        "posted invoice whose payment is not reconciled")
        if notes:
            raise RemoteValidationError(self.system, operation,
                                        f"invoice {name} is posted, but credit note {notes[0][0]} ({notes[0][1]}) "
                                        "already credits it: finish or cancel that credit note in the ERP first")
        active = {"active_model": INVOICE, "active_id": head.id, "active_ids": [head.id]}
        opened = await self.wizard(CREDIT_WIZARD, "create", operation=operation, context=active)
        if (not isinstance(opened, list) or not opened or not isinstance(opened[0], int)
                or isinstance(opened[0], bool)):
            raise ProtocolError(self.system, operation, "the credit wizard did not answer a session")
        session = opened[0]
        start: dict[str, Any] = {"with_refund": True}
        if credit_date is not None:
            start["invoice_date"] = credit_date
        try:
            answer = await self.wizard(CREDIT_WIZARD, "execute", session, {"start": start}, "credit",
                                       operation=operation, context=active)
        except UnavailableError as exc:
            await self._end_wizard(session, active)
            if isinstance(exc, CircuitOpenError):
                raise
            log.warning("erp: %s: answer lost (%s); reading the invoice again", operation, exc.message)
            try:
                state = await self._invoice_state(head.id)
                notes = await self.find_credit_notes(head.id, head.party)
            except ConnectorError:
                raise exc from None
            if state != "cancelled" or not notes:
                raise
            return notes[0][0]
        except ConnectorError:
            await self._end_wizard(session, active)
            raise
        await self._end_wizard(session, active)
        created = _action_res_ids(answer)
        if len(created) == 1:
            return created[0]
        notes = await self.find_credit_notes(head.id, head.party)
        if not notes:
            raise ProtocolError(self.system, operation, "the credit wizard answered no credit note")
        return notes[0][0]

    async def _end_wizard(self, session: int, active: dict[str, Any]) -> None:
        """Delete a wizard session (best effort: an abandoned session is harmless)."""
        try:
            await self.wizard(CREDIT_WIZARD, "delete", session, operation="close credit wizard", context=active)
        except ConnectorError as exc:
            log.info("erp: credit wizard session %s not closed: %s", session, exc.message)

    async def credit_and_repost(self, invoice_id: int, billing_invoice_id: str, party_id: int, currency_code: str,
                                invoice_date: date | None,
                                lines: Sequence[tuple[str, Decimal | int | float, Decimal, str]],
                                ) -> tuple[int | None, int]:
        """Replace posted customer invoice ``invoice_id`` (reference ``billing_invoice_id``):
        credit it with refund (:meth:`credit_invoice`, dated ``invoice_date``), then create and
        post a corrected copy from ``lines`` in ``currency_code`` for ``party_id``, with the
        billing invoice id as its reference (:meth:`ensure_invoice_posted`). Answers (credit
        note id, corrected copy id).

        Idempotent end to end: each step looks up first (the credit note by its origin, the copy
        by reference: the credited invoice is cancelled, so the live invoice carrying the
        reference is the copy) and again when an answer is lost; a re-run after a crash between
        the steps only posts the copy. Refused before anything is written when the invoice does
        not carry ``billing_invoice_id`` or another live invoice carries it too (a duplicate)."""
        operation = "credit and repost"
        head = await self._invoice_head(invoice_id, operation)
        if _code(head.reference) != billing_invoice_id:
            raise RemoteValidationError(self.system, operation,
                                        f"invoice {head.number or invoice_id} carries reference {head.reference!r}, "
                                        f"not {billing_invoice_id!r}")
        if head.state == "posted":
            others = [i for i in await self._ids(INVOICE, [["reference", "=", billing_invoice_id], ["type", "=", "out"],
                                                           ["state", "!=", "cancelled"]]) if i != invoice_id]
            if others:
                raise RemoteValidationError(self.system, operation,
                                            f"invoice {others[0]} carries {billing_invoice_id} too: resolve the "
                                            "duplicate before crediting")
        credit_note = await self._credit(head, invoice_date, "credit invoice")
        corrected = await self.ensure_invoice_posted(billing_invoice_id, party_id, currency_code, invoice_date, lines)
        if corrected == invoice_id:  # unreachable: a credited invoice is cancelled, never live
            raise RemoteValidationError(self.system, operation, f"invoice {invoice_id} is still live after its credit")
        return credit_note, corrected

    async def replace_draft_invoice_lines(self, invoice_id: int, currency_code: str,
                                          lines: Sequence[tuple[str, Decimal | int | float, Decimal, str]]) -> None:
        """Set a draft (or validated) invoice's currency and replace its lines with ``lines``
        (product code, quantity, unit price, description). A posted invoice is never edited
        in place: refused with :class:`RemoteValidationError`. Repeating the call gives the
        same invoice (the lines are replaced, not added)."""
        operation = "correct invoice"
        rows = await self.search_read_all(INVOICE, [["id", "=", invoice_id]], fields=["state", "party"],
                                          schema=_StateParty, phase="invoice lookup")
        found = rows.records.get(invoice_id)
        if found is None:
            raise NotFoundError(self.system, operation, f"invoice {invoice_id} does not exist")
        if found.state not in ("draft", "validated"):
            raise RemoteValidationError(self.system, operation,
                                        f"invoice {invoice_id} is {found.state}: a posted invoice is never edited "
                                        "in place")
        await self._ensure_session()
        company = self.company
        currency = await self._currency_id(currency_code)
        products = await self._product_ids((line[0] for line in lines), operation)
        new_lines = await self._line_values(found.party, currency, company, lines, products)
        old = await self._ids("account.invoice.line", [["invoice", "=", invoice_id]])
        actions: list[Any] = []
        if old:
            actions.append(["delete", old])
        if new_lines:
            actions.append(["create", new_lines])
        await self.call(INVOICE, "write", [invoice_id], {"currency": currency, "lines": actions},
                        operation=operation)

    async def get_subscription(self, subscription_id: int) -> Subscription:
        subs = await self.read_ids(SUBSCRIPTION, [subscription_id])
        sub = subs.records.get(subscription_id)
        if sub is None:
            raise NotFoundError(self.system, "read subscription", f"subscription {subscription_id} does not exist")
        lines = await self.read_ids(SUB_LINE, sub.lines)
        services = await self.read_ids(SERVICE, {line.service for line in lines.records.values()})
        return self.map_subscription(sub, lines.records, services.records)

    async def write_subscription_terms(self, subscription_id: int, *, plan_key: str | None = None,
                                       quantity: int | None = None,
                                       next_invoice_date: date | None = None) -> Subscription:
        """Write billing's terms on the ERP subscription: the first line's service (the
        subscription service of the product coded ``plan_key``) and quantity, and the next
        invoice date. Writes are absolute values, so repeating the call is harmless. Answers
        the subscription as read back."""
        operation = "write subscription"
        subs = await self.read_ids(SUBSCRIPTION, [subscription_id])
        sub = subs.records.get(subscription_id)
        if sub is None:
            raise NotFoundError(self.system, operation, f"subscription {subscription_id} does not exist")
        line_values: dict[str, Any] = {}
        if plan_key is not None:
            services = await self.search_read_all(SERVICE, [["product.code", "=", plan_key]], phase="services")
            if not services.records:
                raise RemoteValidationError(self.system, operation,
                                            f"the ERP has no subscription service for product {plan_key!r}")
            line_values["service"] = min(services.records)
        if quantity is not None:
            line_values["quantity"] = float(quantity)
        if line_values:
            if not sub.lines:
                raise RemoteValidationError(self.system, operation,
                                            f"subscription {subscription_id} has no line to write")
            await self.call(SUB_LINE, "write", [sub.lines[0]], line_values, operation=operation)
        if next_invoice_date is not None:
            await self.call(SUBSCRIPTION, "write", [subscription_id], {"next_invoice_date": next_invoice_date},
                            operation=operation)
        return await self.get_subscription(subscription_id)
