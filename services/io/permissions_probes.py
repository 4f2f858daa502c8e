"""How each system is asked what SyncDesk may do there (:mod:`services.io.permissions`).

Every probe only reads, or sends a write the system refuses before it could change anything:

- **Stripe**: ``GET <list>?limit=1`` per resource SyncDesk reads (200: readable; 403 with
  Stripe's permission error: the restricted key lacks that scope). Write: ``POST
  /v1/customers/<a customer id that does not exist>`` with an unknown parameter — Stripe checks
  the key's permission before it validates the request, so 403 means "may not write
  customers", and 400 (unknown parameter) or 404 (no such customer) mean "may write", with
  nothing written either way. A secret key ``sk_…`` passes every check; a restricted key
  ``rk_…`` shows its scopes.
- **Tryton**: log in (``common.db.login``), ``model.res.user.get_preferences`` (the user's
  current company), ``model.ir.model.access.get_access`` over every model SyncDesk reads or
  writes (``{model: {"read", "write", "create", "delete"}}``, the user's groups applied), log out.
- **Zendesk**: ``GET /api/v2/users/me`` (the account's ``role``: ``admin``, ``agent``,
  ``end-user``; ``role_type`` 1 is a light agent; ``custom_role_id`` an Enterprise custom role,
  whose ``organization_editing`` / ``ticket_editing`` are read from ``/api/v2/custom_roles/{id}``),
  then ``GET`` of each resource SyncDesk reads (the incremental ticket export is for admins).
  Whether it may update organizations and tickets follows from the role: Zendesk has no safe
  write to probe.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

import httpx

from services.core.domain import System
from services.core.redaction import redact
from services.io import tryton_rpc
from services.io.config import SystemConnection
from services.io.permissions import PermissionCheck, ProbeFailed, Verdict
from services.io.permissions_fixes import sentence, write_needs

Probe = Callable[[httpx.AsyncClient, SystemConnection], Awaitable[tuple[str, list[PermissionCheck]]]]


def _check(system: System, resource: str, access: str, verdict: Verdict, *, needed: bool = True,
           detail: str = "") -> PermissionCheck:
    if verdict is Verdict.UNKNOWN:
        text = f"not known whether SyncDesk may {access if access != 'write' else 'update'} {resource}"
        text = f"{text}: {detail}" if detail else text
        from services.io.permissions_fixes import label

        text = text.replace(f" {resource}", f" {label(system, resource)}", 1)
    else:
        text = sentence(system, resource, access, verdict is Verdict.OK, needed=needed, detail=detail)
    return PermissionCheck(system, resource, access, verdict, needed, text)


def _status_text(response: httpx.Response) -> str:
    return f"the server answered HTTP {response.status_code}"


#: a 429 (Stripe and Zendesk rate limits) is waited out this many times, Retry-After capped
RATE_LIMIT_RETRIES = 4
RATE_LIMIT_WAIT_MAX = 2.0


async def _send(client: httpx.AsyncClient, method: str, url: str, **kwargs: Any) -> httpx.Response:
    """One request; an answer 429 (rate limited) is retried after its ``Retry-After`` (at most
    :data:`RATE_LIMIT_WAIT_MAX` s, :data:`RATE_LIMIT_RETRIES` times) — the test's deadline
    still bounds the whole."""
    response = await client.request(method, url, **kwargs)
    for attempt in range(RATE_LIMIT_RETRIES):
        if response.status_code != 429:
            break
        try:
            wait = float(response.headers.get("retry-after", "0.5"))
        except ValueError:
            wait = 0.5
        await asyncio.sleep(min(max(wait, 0.1 * (attempt + 1)), RATE_LIMIT_WAIT_MAX))
        response = await client.request(method, url, **kwargs)
    return response


# -- Stripe ----------------------------------------------------------------------------------------
#: (resource, list path, SyncDesk reads it)
STRIPE_READS: tuple[tuple[str, str, bool], ...] = (
    ("customers", "/v1/customers", True),
    ("subscriptions", "/v1/subscriptions", True),
    ("invoices", "/v1/invoices", True),
    ("events", "/v1/events", True),
    ("prices", "/v1/prices", True),
    ("products", "/v1/products", True),
    ("credit notes", "/v1/credit_notes", True),
    ("refunds", "/v1/refunds", True),
    ("charges", "/v1/charges", True),  # refunds are listed with their charge expanded
    ("tax rates", "/v1/tax_rates", False),
)
#: a customer id no account holds: the write probe can never change a customer
PROBE_CUSTOMER = "cus_SyncDeskPermissionProbe0"
PROBE_PARAM = "syncdesk_permission_probe"


def _stripe_kind(key: str) -> str:
    kind = ("restricted key" if key.startswith("rk_") else "secret key" if key.startswith("sk_")
            else "an API key of an unknown kind")
    mode = " (test mode)" if key[3:8] == "test_" else " (live mode)" if key[3:8] == "live_" else ""
    return kind + mode


def _stripe_refused(response: httpx.Response) -> None:
    if response.status_code == 401:
        raise ProbeFailed("the API key was refused (401): check that it is complete and not revoked", reachable=True)


async def probe_stripe(client: httpx.AsyncClient, conn: SystemConnection) -> tuple[str, list[PermissionCheck]]:
    key = conn.secret("api_key")
    headers = {"Authorization": f"Bearer {key}"}
    first = await _send(client, "GET", "/v1/customers", params={"limit": 1}, headers=headers)
    _stripe_refused(first)
    if first.status_code == 404:
        raise ProbeFailed(f"{conn.url} does not answer as Stripe's API does (GET /v1/customers: 404): check the URL",
                          reachable=True)
    limit = asyncio.Semaphore(4)

    async def read(resource: str, path: str, needed: bool) -> PermissionCheck:
        if path == "/v1/customers":
            response = first
        else:
            async with limit:
                response = await _send(client, "GET", path, params={"limit": 1}, headers=headers)
        _stripe_refused(response)
        return _stripe_verdict(resource, "read", response, needed)

    async def write_customers() -> PermissionCheck:
        async with limit:
            response = await _send(client, "POST", f"/v1/customers/{PROBE_CUSTOMER}", data={PROBE_PARAM: "1"},
                                   headers=headers)
        _stripe_refused(response)
        if response.status_code in (400, 404):  # past the permission check, refused as invalid: allowed
            return _check(System.BILLING, "customers", "write", Verdict.OK)
        return _stripe_verdict("customers", "write", response, True)

    checks = await asyncio.gather(*(read(r, p, n) for r, p, n in STRIPE_READS), write_customers())
    return _stripe_kind(key), list(checks)


def _stripe_verdict(resource: str, access: str, response: httpx.Response, needed: bool) -> PermissionCheck:
    if response.status_code == 200:
        return _check(System.BILLING, resource, access, Verdict.OK, needed=needed)
    if response.status_code == 403:
        return _check(System.BILLING, resource, access, Verdict.MISSING, needed=needed,
                      detail="the key lacks this scope")
    return _check(System.BILLING, resource, access, Verdict.UNKNOWN, needed=needed, detail=_status_text(response))


# -- Tryton ----------------------------------------------------------------------------------------
#: every model SyncDesk reads (the refresh) — the write accesses come from the fixes' needs
TRYTON_READS: tuple[str, ...] = (
    "party.party", "party.identifier", "party.address", "party.contact_mechanism", "account.invoice",
    "account.invoice.line", "account.invoice.tax", "sale.subscription", "sale.subscription.line",
    "sale.subscription.service", "product.product", "currency.currency", "country.country",
)
_ACCESS_ORDER = ("read", "create", "write", "delete")


class _Rpc:
    def __init__(self, client: httpx.AsyncClient, database: str) -> None:
        self.client = client
        self.path = f"/{quote(database, safe='')}/"
        self.database = database
        self.authorization: str | None = None
        self._ids = itertools.count(1)

    async def __call__(self, method: str, params: list[Any]) -> tuple[Any, Any]:
        """(result, error) of one call; HTTP-level failures raise :class:`ProbeFailed`."""
        headers = {"Content-Type": "application/json"}
        if self.authorization:
            headers["Authorization"] = self.authorization
        body = tryton_rpc.dumps({"id": next(self._ids), "method": method, "params": params})
        response = await self.client.post(self.path, content=body, headers=headers)
        if response.status_code == 401:
            raise ProbeFailed("the login or password was refused (401)", reachable=True)
        if response.status_code == 404:
            raise ProbeFailed(f"the server has no database {self.database!r} (404): check the database name",
                              reachable=True)
        if response.status_code == 429:
            raise ProbeFailed("too many failed logins for this user (429): wait a few minutes, then test again",
                              reachable=True)
        if response.status_code != 200:
            raise ProbeFailed(f"{_status_text(response)} to {method}: is this a Tryton server?", reachable=True)
        try:
            data = tryton_rpc.loads(response.content)
        except ValueError:
            raise ProbeFailed(f"the answer to {method} is not Tryton's JSON-RPC: is this a Tryton server?",
                              reachable=True) from None
        if not isinstance(data, dict):
            raise ProbeFailed(f"the answer to {method} is not Tryton's JSON-RPC", reachable=True)
        return data.get("result"), data.get("error")


def _tryton_error(error: Any) -> str:
    if isinstance(error, list) and error:
        args = error[1] if len(error) > 1 else ""
        message = args[0] if isinstance(args, list) and args else args
        return redact(f"{error[0]}: {message}" if message else str(error[0]))
    return redact(str(error))


async def probe_tryton(client: httpx.AsyncClient, conn: SystemConnection) -> tuple[str, list[PermissionCheck]]:
    login = conn.settings.get("login", "")
    rpc = _Rpc(client, conn.settings.get("database", ""))
    result, error = await rpc("common.db.login", [login, {"password": conn.secret("password")}, "en"])
    if error is not None or not isinstance(result, list) or len(result) < 2:
        raise ProbeFailed(f"the login was refused: {_tryton_error(error) if error else 'no session'}", reachable=True)
    token = base64.b64encode(f"{login}:{result[0]}:{result[1]}".encode()).decode()
    rpc.authorization = f"Session {token}"
    try:
        checks = await _tryton_checks(rpc)
    finally:
        with contextlib.suppress(ProbeFailed, httpx.HTTPError):
            await rpc("common.db.logout", [])
    return f"user {login}", checks


async def _tryton_checks(rpc: _Rpc) -> list[PermissionCheck]:
    checks: list[PermissionCheck] = []
    prefs, error = await rpc("model.res.user.get_preferences", [True, {}])
    company = prefs.get("company") if isinstance(prefs, dict) else None
    if error is not None:
        checks.append(PermissionCheck(System.ERP, "company", "setting", Verdict.UNKNOWN, True,
                                      f"the user's preferences cannot be read: {_tryton_error(error)}"))
    elif company:
        checks.append(PermissionCheck(System.ERP, "company", "setting", Verdict.OK, True,
                                      "the user's current company is set"))
    else:
        checks.append(PermissionCheck(System.ERP, "company", "setting", Verdict.MISSING, True,
                                      "the user has no current company: set it in Tryton (the user's preferences, "
                                      "Company); invoices are read and posted in the current company"))
    writes = write_needs(System.ERP)
    models = list(dict.fromkeys([*TRYTON_READS, *writes]))
    access, error = await rpc("model.ir.model.access.get_access", [models, {}])
    if error is not None or not isinstance(access, dict):  # a model unknown to this server: ask one by one
        access = {}
        for model in models:
            one, err = await rpc("model.ir.model.access.get_access", [[model], {}])
            if err is None and isinstance(one, dict) and isinstance(one.get(model), dict):
                access[model] = one[model]
    for model in models:
        rights = access.get(model)
        wanted = ["read", *sorted(writes.get(model, ()), key=_ACCESS_ORDER.index)]
        for mode in wanted:
            if not isinstance(rights, dict):
                checks.append(_check(System.ERP, model, mode, Verdict.UNKNOWN,
                                     detail="this Tryton does not know the model (is its module installed?)"))
                continue
            granted = bool(rights.get(mode))
            checks.append(_check(System.ERP, model, mode, Verdict.OK if granted else Verdict.MISSING))
    return checks


# -- Zendesk -------------------------------------------------------------------------------------------
API = "/api/v2"
ROLE_TYPES = {0: "custom role", 1: "light agent", 2: "chat-only agent", 3: "chat agent", 4: "admin",
              5: "billing admin"}


def _zendesk_auth(conn: SystemConnection) -> str:
    if "oauth_token" in conn.secrets:  # an OAuth access token: Bearer, as the connector sends it
        return f"Bearer {conn.secret('oauth_token')}"
    raw = f"{conn.settings.get('email', '')}/token:{conn.secret('api_token')}".encode()
    return "Basic " + base64.b64encode(raw).decode()


async def probe_zendesk(client: httpx.AsyncClient, conn: SystemConnection) -> tuple[str, list[PermissionCheck]]:
    headers = {"Authorization": _zendesk_auth(conn)}
    me = await _send(client, "GET", f"{API}/users/me.json", headers=headers)
    if me.status_code == 401:
        if "oauth_token" in conn.secrets:
            raise ProbeFailed("the OAuth token was refused (401): it is expired, revoked or for another Zendesk "
                              "account", reachable=True)
        raise ProbeFailed("the e-mail and API token were refused (401): check both, and that token access is "
                          "enabled in Zendesk's admin centre", reachable=True)
    if me.status_code != 200:
        raise ProbeFailed(f"{_status_text(me)} to GET {API}/users/me: is this a Zendesk address?", reachable=True)
    try:
        user = me.json().get("user") or {}
    except ValueError:
        raise ProbeFailed(f"the answer to GET {API}/users/me is not JSON: is this a Zendesk address?",
                          reachable=True) from None
    if user.get("id") is None:
        raise ProbeFailed("Zendesk answered as to an anonymous visitor: the credentials were not accepted",
                          reachable=True)
    role = str(user.get("role") or "end-user")
    role_type = user.get("role_type")
    custom_role = user.get("custom_role_id")
    who = _zendesk_role(role, role_type, custom_role)
    reads: tuple[tuple[str, str, dict[str, Any]], ...] = (
        ("organizations", f"{API}/organizations.json", {"per_page": 1}),
        ("organization fields", f"{API}/organization_fields.json", {}),
        ("tickets", f"{API}/incremental/tickets/cursor.json", {"start_time": 0, "per_page": 1}))

    async def read(resource: str, path: str, params: dict[str, Any]) -> PermissionCheck:
        response = await _send(client, "GET", path, params=params, headers=headers)
        if response.status_code == 200:
            return _check(System.SUPPORT, resource, "read", Verdict.OK)
        if response.status_code == 403:
            detail = "the incremental ticket export is for admins" if resource == "tickets" else "forbidden"
            return _check(System.SUPPORT, resource, "read", Verdict.MISSING, detail=detail)
        return _check(System.SUPPORT, resource, "read", Verdict.UNKNOWN, detail=_status_text(response))

    checks = list(await asyncio.gather(*(read(*r) for r in reads)))
    org, ticket, why = await _zendesk_writes(client, headers, role, role_type, custom_role)
    checks.append(_check(System.SUPPORT, "organizations", "write", org, detail=why))
    checks.append(_check(System.SUPPORT, "tickets", "write", ticket, needed=False, detail=why))
    return f"{conn.settings.get('email') or user.get('email') or ''} ({who})", checks


def _zendesk_role(role: str, role_type: Any, custom_role: Any) -> str:
    if role == "agent" and role_type in ROLE_TYPES and role_type != 0:
        return ROLE_TYPES[role_type]
    if role == "agent" and custom_role is not None:
        return f"agent with custom role {custom_role}"
    return {"end-user": "end user"}.get(role, role)


async def _zendesk_writes(client: httpx.AsyncClient, headers: dict[str, str], role: str, role_type: Any,
                          custom_role: Any) -> tuple[Verdict, Verdict, str]:
    """(may update organizations, may update tickets, the reason) from the account's role."""
    if role == "admin":
        return Verdict.OK, Verdict.OK, "admin"
    if role != "agent":
        return Verdict.MISSING, Verdict.MISSING, f"the account is an {role}, not an agent"
    if role_type == 1:
        return Verdict.MISSING, Verdict.MISSING, "a light agent may only add private comments"
    if role_type in (2, 3):
        return Verdict.MISSING, Verdict.MISSING, "a chat agent has no Support write access"
    if custom_role is not None:
        response = await _send(client, "GET", f"{API}/custom_roles/{int(custom_role)}.json", headers=headers)
        if response.status_code != 200:
            why = f"custom role {custom_role}'s rights cannot be read ({_status_text(response)})"
            return Verdict.UNKNOWN, Verdict.UNKNOWN, why
        config = (response.json().get("custom_role") or {}).get("configuration") or {}
        org = Verdict.OK if config.get("organization_editing") else Verdict.MISSING
        ticket = Verdict.OK if config.get("ticket_editing") else Verdict.MISSING
        return org, ticket, f"custom role {custom_role}"
    return Verdict.OK, Verdict.OK, "agent"


PROBES: dict[str, Probe] = {"stripe": probe_stripe, "tryton": probe_tryton, "zendesk": probe_zendesk}
