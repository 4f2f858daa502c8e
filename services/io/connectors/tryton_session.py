"""The Tryton connector's session with trytond's JSON-RPC: login, the context, one call
(logging in again once when the session expired), the error envelopes, and the validated,
keyset-paged reads every other part of the connector builds on (facts in
``shared/specs/tryton/README.md``, verified against 8.2).

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
(``["id", ">", last]``) instead of offsets; every record is validated with its model's payload
schema (:mod:`services.io.connectors.tryton_payloads`). A typed value that does not decode
(a date of year 99999, a Decimal of "abc") fails only the record that holds it; with an
:class:`~services.core.sysdata.Intake` (a refresh), a record that does not validate, or an id
a page lists twice with different content, is quarantined and the read goes on.
"""

from __future__ import annotations

import asyncio
import base64
import html
import itertools
import json
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, NoReturn
from urllib.parse import quote

import httpx

from services.compute import run_cpu
from services.core.domain import System
from services.core.errors import AuthenticationError, ProtocolError, RemoteValidationError, RemoteWarning
from services.core.redaction import register_secret
from services.core.sysdata import Intake, Kind, Progress, ProgressCallback, no_progress
from services.io import tryton_rpc
from services.io.config import ConfigError, SystemConnection
from services.io.connectors.base import Clock, Connector, quarantine, raw_id, utc_now
from services.io.connectors.tryton_payloads import (
    FIELDS,
    INVOICE,
    PARTY,
    PHASES,
    PRODUCT,
    SCHEMAS,
    SUBSCRIPTION,
    _Model,
    _Record,
)
from services.io.http import ResilientClient

log = logging.getLogger(__name__)

PAGE_SIZE = 500
#: ids per ``["id", "in", ...]`` / ``["party", "in", ...]`` request
ID_CHUNK = 500
ORDER_BY_ID = [["id", "ASC"]]
BOTH_ACTIVE = ["active", "in", [True, False]]


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


#: the quarantine kind of each model's records: the table kind of what they become, else the model
MODEL_KINDS: dict[str, str] = {PARTY: Kind.CUSTOMER.value, PRODUCT: Kind.PLAN.value, INVOICE: Kind.INVOICE.value,
                               SUBSCRIPTION: Kind.SUBSCRIPTION.value}


def model_kind(model: str) -> str:
    return MODEL_KINDS.get(model, model)


class Undecodable:
    """A tagged value (``{"__class__": "datetime", ...}``) that does not decode: it stays in
    its record, whose validation then fails naming the field, so one bad value costs one
    record, not the page."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def __repr__(self) -> str:
        return f"<undecodable: {self.reason}>"


def _lenient_hook(obj: dict[str, Any]) -> Any:
    try:
        return tryton_rpc.object_hook(obj)
    except (KeyError, TypeError, ValueError, OverflowError, ArithmeticError) as exc:
        cls = obj.get("__class__")
        return Undecodable(f"{cls} value {type(exc).__name__}: {exc}"[:120])


def loads_lenient(data: bytes | str) -> Any:
    """:func:`services.io.tryton_rpc.loads`, leaving an undecodable typed value as an
    :class:`Undecodable` in place instead of failing the whole answer."""
    return json.loads(data, object_hook=_lenient_hook)


def _chunks(ids: Iterable[int], size: int = ID_CHUNK) -> list[list[int]]:
    ordered = sorted(set(ids))
    return [ordered[i:i + size] for i in range(0, len(ordered), size)]


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


class TrytonSession(Connector):
    """The JSON-RPC half of :class:`~services.io.connectors.tryton.TrytonConnector`: the
    session (login, context) and the calls and reads built on it."""

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
        #: the ERP's today at the last :meth:`read_today`, and when (by :attr:`clock`) it was read
        self.today_read: tuple[date, datetime] | None = None

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
            body = (await run_cpu(loads_lenient, content) if len(content) > 64_000
                    else loads_lenient(content))
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
            register_secret(result[1])  # the session key is a credential too: masked wherever it is echoed
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

    async def read_today(self, max_age: timedelta = timedelta(seconds=60)) -> date:
        """The ERP's today: ``model.ir.date.today`` (served over RPC by trytond's ``ir.date``;
        with the session's context, whose ``company`` makes trytond answer the date in the
        company's timezone: the date ``account.invoice.post`` compares an invoice date with
        before its ``invoice_date_future`` warning). A read less than ``max_age`` old (by
        :attr:`clock`) is reused: a date read a minute before the ERP's midnight is a day early
        at worst, and an earlier date never raises that warning."""
        now = self.clock()
        if self.today_read is not None and timedelta(0) <= now - self.today_read[1] < max_age:
            return self.today_read[0]
        operation = "read the ERP's today"
        result = await self.call("ir.date", "today", operation=operation, safe=True)
        if not isinstance(result, date) or isinstance(result, datetime):
            raise ProtocolError(self.system, operation, f"ir.date.today answered {type(result).__name__}, not a date")
        self.today_read = (result, now)
        return result

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

    def _rows(self, model: str, raw_rows: Any, operation: str, schema: type[_Model] | None = None,
              intake: Intake | None = None) -> _Rows:
        if not isinstance(raw_rows, list):
            raise ProtocolError(self.system, operation, f"{model}: expected a list of records")
        out = _Rows(model, {})
        kind = model_kind(model)
        for raw in raw_rows:
            try:
                rec = self._validate(model, raw, schema)
            except Exception as exc:
                quarantine(intake, self.system, kind, raw_id(raw), exc)
                continue
            if intake is not None:
                if not intake.put(out.records, kind, rec.id, rec):
                    continue
            else:
                out.records[rec.id] = rec
            if isinstance(rec, _Record) and (out.newest is None or rec.stamp > out.newest):
                out.newest = rec.stamp
        return out

    async def search_read_all(self, model: str, domain: Sequence[Any], *, fields: list[str] | None = None,
                              schema: type[_Model] | None = None, progress: ProgressCallback = no_progress,
                              phase: str | None = None, intake: Intake | None = None) -> _Rows:
        """Every record of ``domain`` (a list of ANDed clauses), keyset-paged by id and
        validated with ``schema`` (default: the model's); with ``intake``, what does not
        validate is quarantined there."""
        fields = fields or FIELDS[model]
        phase = phase or PHASES[model]
        operation = f"search_read {model}"
        result = _Rows(model, {})
        last = 0
        while True:
            page_domain = [*domain, ["id", ">", last]] if last else list(domain)
            raw = await self.call(model, "search_read", page_domain, 0, PAGE_SIZE, ORDER_BY_ID, fields,
                                  operation=operation, safe=True)
            page = await run_cpu(self._rows, model, raw, operation, schema, intake)  # validation: CPU work
            # the keyset moves on by the ids the page listed, records read or not
            ids = [i for i in (raw_id(r) for r in raw) if isinstance(i, int) and not isinstance(i, bool)]
            if ids and (min(ids) <= last or (intake is None and len(set(ids)) != len(ids))):
                raise ProtocolError(self.system, operation, f"{model}: page ids are not ascending after {last}")
            result.merge(page)
            progress(Progress(self.system, phase, len(result.records)))
            if len(raw) < PAGE_SIZE:
                return result
            if not ids:
                raise ProtocolError(self.system, operation, f"{model}: a full page without a readable id")
            last = max(ids)

    async def read_ids(self, model: str, ids: Iterable[int], extra: Sequence[Any] = (), *,
                       field: str = "id", progress: ProgressCallback = no_progress,
                       intake: Intake | None = None) -> _Rows:
        """Records whose ``field`` is one of ``ids`` (missing ones are simply absent)."""
        result = _Rows(model, {})
        for chunk in _chunks(ids):
            result.merge(await self.search_read_all(model, [[field, "in", chunk], *extra], progress=progress,
                                                    intake=intake))
        return result

    async def _ids(self, model: str, domain: list[Any], limit: int | None = None) -> list[int]:
        operation = f"search {model}"
        found = await self.call(model, "search", domain, 0, limit, ORDER_BY_ID, operation=operation, safe=True)
        if not isinstance(found, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in found):
            raise ProtocolError(self.system, operation, f"{model}: search did not answer a list of ids")
        return found
