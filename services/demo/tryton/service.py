"""The protocol-independent core of the demo Tryton server: sessions, login and dispatch.

:class:`TrytonService` authenticates, dispatches ``model.*`` and ``wizard.*`` methods and runs
each call as one :class:`~services.demo.tryton.transaction.Transaction` under ``store.lock``.

Access rights as trytond's ``ir.model.access``: the generated company's users are
administrators (every access on every model); a :class:`DemoUser` served beside them
(``extra_users``: not part of the saved world, e.g. the ``demo-readonly`` profile's reader) has
per-model rights. ``model.ir.model.access.get_access`` answers them (``{model: {"read",
"write", "create", "delete"}}``), and every model call checks them first — read for the reads,
create / write / delete for those methods, read and write for a button — refusing as trytond
does (``UserError`` 'You are not allowed to access "Invoice".', "Within groups: …").
"""

from __future__ import annotations

import base64
import binascii
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from services.demo.store import ErpStore
from services.demo.tryton.domains import DomainEvaluator
from services.demo.tryton.errors import HTTPAbort, LoginException, UserError
from services.demo.tryton.invoices import InvoiceSequence
from services.demo.tryton.model_call import GENERIC_METHODS, ModelCall
from services.demo.tryton.model_hooks import ModelHooks
from services.demo.tryton.model_methods import MODEL_METHODS
from services.demo.tryton.reader import FieldReader
from services.demo.tryton.schema import TAX_ROUNDING, Schema, model_label
from services.demo.tryton.taxes import TaxEngine
from services.demo.tryton.transaction import Transaction
from services.demo.tryton.values import FieldValues
from services.demo.tryton.watermarks import WatermarkIndex
from services.demo.tryton.wizards import WIZARD_METHODS, WIZARD_STATES, WizardSession

SERVER_VERSION = "8.2.1"
SESSION_TIMEOUT = timedelta(days=30)  # trytond [session] timeout default
LOGIN_MAX_ATTEMPTS = 5  # trytond [session] max_attempt: more failures than this -> 429
LOGIN_ATTEMPT_WINDOW = timedelta(minutes=5)

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass
class Session:
    user_id: int
    login: str
    last_used: datetime


#: every access, as trytond gives a model no ``ir.model.access`` row restricts
ALL_ACCESS: dict[str, bool] = {"read": True, "write": True, "create": True, "delete": True}
#: the access a model method needs (trytond's ModelStorage checks; a button needs read and write)
METHOD_ACCESS: dict[str, tuple[str, ...]] = {
    "search": ("read",), "search_count": ("read",), "read": ("read",), "search_read": ("read",),
    "fields_get": ("read",), "default_get": ("read",), "on_change": ("read",), "create": ("create",),
    "write": ("write",), "delete": ("delete",), "post": ("read", "write"), "validate_invoice": ("read", "write"),
    "cancel": ("read", "write"), "draft": ("read", "write"),
}


@dataclass
class DemoUser:
    """A Tryton user served beside the generated company's (not saved with the world): its
    login, password, group (named in access errors) and rights per model (a model left out:
    every access)."""

    user_id: int
    login: str
    password: str
    name: str
    group: str
    access: dict[str, dict[str, bool]] = field(default_factory=dict)


@dataclass
class Outcome:
    result: Any
    wrote: bool = False


@dataclass
class TrytonService:
    """Protocol-independent core: authenticate, dispatch, run one transaction per call."""

    store: ErpStore
    clock: Clock = utc_now
    schema: Schema = field(default_factory=Schema)
    hooks: ModelHooks = field(default_factory=ModelHooks)

    def __post_init__(self) -> None:
        self.values = FieldValues(self.store, self.schema)
        self.reader = FieldReader(self.values)
        self.watermarks = WatermarkIndex(self.store)
        self.domains = DomainEvaluator(self.values, self.watermarks)
        self.sequence = InvoiceSequence(self.store)
        self.taxes = TaxEngine(self.store, TAX_ROUNDING)
        self.sessions: dict[str, Session] = {}
        self.wizard_sessions: dict[int, WizardSession] = {}
        self.wizard_ids = 0
        self.failed_logins: dict[str, list[datetime]] = {}
        self._auth_lock = threading.Lock()
        #: login -> a user served beside the generated company's (see the module docstring)
        self.extra_users: dict[str, DemoUser] = {}

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
        if kind == "model" and model == "ir.model.access" and name == "get_access":
            if not params or not isinstance(params[-1], dict):
                raise HTTPAbort(422)
            return Outcome(self.get_access(session.user_id, *params[:-1]))
        handler = (self.handler(model, name) if kind == "model"
                   else WIZARD_METHODS.get(name) if kind == "wizard" and model in WIZARD_STATES else None)
        if handler is None:
            raise HTTPAbort(403)
        if not params or not isinstance(params[-1], dict):
            raise HTTPAbort(422)
        context = {k: v for k, v in params[-1].items() if not str(k).startswith("_")}
        if kind == "model":
            for mode in METHOD_ACCESS.get(name, ()):
                self.check_access(session.user_id, model, mode)
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
        extra = self.extra_users.get(login)
        if user_id is None and extra is not None:
            user_id, expected = extra.user_id, extra.password
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

    # -- access rights (ir.model.access) ------------------------------------------------

    def _extra_user(self, user_id: int) -> DemoUser | None:
        return next((u for u in self.extra_users.values() if u.user_id == user_id), None)

    def access_of(self, user_id: int, model: str) -> dict[str, bool]:
        user = self._extra_user(user_id)
        return dict(user.access.get(model, ALL_ACCESS)) if user is not None else dict(ALL_ACCESS)

    def get_access(self, user_id: int, models: Any = None) -> dict[str, dict[str, bool]]:
        """trytond's ``ir.model.access.get_access(models)``: a model the server does not know
        fails the call as ``pool.get`` does (a ``KeyError`` naming it)."""
        if not isinstance(models, list) or not all(isinstance(m, str) for m in models):
            raise TypeError("get_access() takes a list of model names")
        out: dict[str, dict[str, bool]] = {}
        for model in models:
            if model not in self.schema.models:
                raise KeyError(model)
            out[model] = self.access_of(user_id, model)
        return out

    def check_access(self, user_id: int, model: str, mode: str) -> None:
        if self.access_of(user_id, model).get(mode, True):
            return
        user = self._extra_user(user_id)
        raise UserError(f'You are not allowed to access "{model_label(model)}".',
                        f"Within groups: {user.group if user is not None else ''}")

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
