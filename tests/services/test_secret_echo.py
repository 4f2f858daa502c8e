"""No credential leaves memory, even when an upstream echoes it back (G8 item 3).

A hostile server (:class:`EchoCredentials`, an ASGI wrapper in front of each demo app) answers
401, 400, 500 — and, for the ERP, a JSON-RPC ``UserError`` — with every credential it received, in
every form: the raw ``Authorization`` header, the key alone, base64 of the Basic value and of the
secret (standard and URL-safe, padded or not, of ``user:secret`` / ``email/token:secret`` /
``secret:``), URL-encoded, inside the vendor's JSON (or HTML) error body, and in a response header
(``Request-Id``, which the connectors keep as the error's request id). Then ``reconcile`` and
``fix`` run as a scheduled job runs them (subprocesses, a temporary SYNCDESK_HOME) and an action
runs through the :class:`ActionService`; every file of SYNCDESK_HOME (SQLite databases read as
bytes *and* row by row, the log file, the audit log), stdout and stderr are searched for every
encoding of every configured secret (:func:`leaks` decodes what it reads: URL, HTML, JSON and
base64 decoding of every word, then looks for any 12-character piece of a secret). Each check
also proves the echo reached the place searched (the vendor's words "Invalid API Key provided"
are there), so a check cannot pass because nothing was written.

Runtime session keys (Tryton's ``Session base64(login:uid:key)``) are not configured secrets: they
are masked in their header and base64 forms (checked below), not when echoed raw and alone.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import html
import itertools
import json
import logging
import os
import re
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus, unquote, unquote_plus

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.types import ASGIApp, Receive, Scope, Send

from services.actions.model import ActionKind, ActionRequest, ActionStatus
from services.core.domain import System
from services.core.errors import AuthenticationError, RemoteWarning
from services.core.redaction import MASK, RedactingFilter, redact, redact_value, register_secret
from services.demo.environment import DemoEnvironment, DemoOptions, wait_until_answering
from services.demo.store import DemoCredentials
from services.io.config import write_profile
from services.store.home import audit_path, snapshot_path
from tests.services.actions_rig import FINANCE, SUPPORT, Match, make_rig, read_body, replaying

ROOT = Path(__file__).resolve().parents[2]
#: the vendor's words every echo starts with: proof that the echo reached what is searched
ECHO_MARK = "Invalid API Key provided"
#: a secret is found when any piece of it this long is found (shorter pieces can be chance)
PIECE = 12
#: an ERP JSON-RPC error envelope instead of an HTTP status
RPC_ERROR = 0
STATUSES = (401, 400, 500)
#: generous: a command is a Python start-up plus a refresh of 60 customers, with retries of 500s
RUN_TIMEOUT = 180.0


# -- the oracle: what a reader of a text could decode from it --------------------------------
def _b64_readings(text: str) -> Iterator[str]:
    for word in re.findall(r"[A-Za-z0-9+/_-]{8,}", text):
        for skip in range(4):
            part = word[skip:]
            part = part[: len(part) - len(part) % 4]
            for decode in (base64.b64decode, base64.urlsafe_b64decode):
                try:
                    decoded = decode(part)
                except ValueError:
                    continue
                yield decoded.decode("latin-1")


def readings(text: str) -> Iterator[str]:
    """``text`` as it reads, URL-, HTML- and JSON-unescaped, and every word of it base64-decoded."""
    yield text
    yield unquote(text)
    yield unquote_plus(text)
    yield html.unescape(text)
    yield text.replace("\\/", "/")
    yield from _b64_readings(text)


#: what the demo's profile says in the open (the ERP database is called ``syncdesk_demo``, and
#: so is a stretch of the demo's Stripe key): a piece of a secret found there names no secret
PUBLIC = (DemoCredentials().tryton_database, DemoCredentials().tryton_login, DemoCredentials().zendesk_email)


def _pieces(secrets: list[str]) -> re.Pattern[str]:
    pieces = {s[i:i + PIECE] for s in secrets for i in range(max(1, len(s) - PIECE + 1))}
    return re.compile("|".join(re.escape(p) for p in sorted(pieces) if not any(p in open_ for open_ in PUBLIC)))


def leaks(text: str, secrets: list[str]) -> list[str]:
    """Every piece of a secret a reader of ``text`` could decode, and every unmasked Tryton
    session header."""
    pattern = _pieces(secrets)
    found = [m.group(0) for reading in readings(text) for m in pattern.finditer(reading)]
    found += re.findall(r"(?i)\bsession\s+[A-Za-z0-9+/=_-]{8,}", text)
    return found


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield str(k)
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def stored_texts(root: Path) -> Iterator[tuple[str, str]]:
    """(where, text) of every file under ``root`` read as bytes, and of every value of every
    row of every SQLite database there (a JSON value also string by string, escapes decoded)."""
    files = {path: path.read_bytes() for path in sorted(p for p in root.rglob("*") if p.is_file())}
    # every file's bytes first: opening a database below checkpoints and removes its -wal/-shm
    for path, data in files.items():
        yield str(path), data.decode("latin-1")
    for path in (p for p, data in files.items() if data.startswith(b"SQLite format 3\x00")):
        con = sqlite3.connect(path)
        try:
            tables = [r[0] for r in con.execute("select name from sqlite_master where type = 'table'")]
            for table in tables:
                for row in con.execute(f'select * from "{table}"'):
                    for value in row:
                        text = value.decode("latin-1") if isinstance(value, bytes) else str(value)
                        yield f"{path}:{table}", text
                        if text[:1] in "[{":
                            try:
                                decoded = json.loads(text)
                            except ValueError:
                                continue
                            for s in _strings(decoded):
                                yield f"{path}:{table} (json)", s
        finally:
            con.close()


def assert_nothing_leaked(where: str, text: str, secrets: list[str]) -> None:
    found = leaks(text, secrets)
    assert not found, f"{where}: credential pieces {sorted(set(found))[:5]}"


def assert_home_clean(root: Path, secrets: list[str]) -> int:
    """No leak in any file or row under ``root``; how many texts were searched."""
    searched = 0
    for where, text in stored_texts(root):
        assert_nothing_leaked(where, text, secrets)
        searched += 1
    return searched


# -- the hostile server ----------------------------------------------------------------------
class EchoCredentials:
    """In front of one demo app: the requests ``armed`` matches get an error that echoes every
    credential the server received (the request's ``Authorization`` and, for the ERP, the login
    password it saw), in every form; the answers' statuses go round ``statuses``. Every other
    request goes to the app."""

    def __init__(self, system: System) -> None:
        self.system = system
        self.armed: Match = lambda scope, body: False
        self.statuses: Iterator[int] = itertools.cycle(STATUSES)
        self.passwords: set[str] = set()
        self.echoed: Counter[int] = Counter()
        self._turn = itertools.count()
        self._app: ASGIApp | None = None

    def wrap(self, app: ASGIApp) -> ASGIApp:
        self._app = app
        return self

    def arm(self, match: Match, statuses: tuple[int, ...] = STATUSES) -> None:
        self.statuses = itertools.cycle(statuses)
        self.armed = match

    def disarm(self) -> None:
        self.armed = lambda scope, body: False

    def _remember(self, body: bytes) -> None:
        if self.system is System.ERP and b'"common.db.login"' in body:
            params = json.loads(body)["params"]
            self.passwords.add(params[1]["password"])

    def echo(self, authorization: str) -> str:
        """The error text: every credential of the request in every form, in a rotating order
        (a vendor that cuts its message at 300 characters cuts each form somewhere)."""
        scheme, _, value = authorization.partition(" ")
        pieces = [f"{ECHO_MARK}: {authorization}", f"credential {value}", f"header {quote(authorization, safe='')}"]
        secrets: list[str] = sorted(self.passwords)
        if scheme.lower() == "bearer":
            secrets.append(value)
        elif scheme.lower() == "basic":
            decoded = base64.b64decode(value).decode()
            pieces.append(f"you sent {decoded}")
            secrets.append(decoded.split(":", 1)[1])
            secrets.append(decoded)
        for s in secrets:
            raw = s.encode()
            pieces += [
                f"key {s}", f"url {quote(s, safe='')}", f"form {quote_plus(s)}",
                f"b64 {base64.b64encode(raw).decode()}", f"b64url {base64.urlsafe_b64encode(raw).decode().rstrip('=')}",
                f"basic {base64.b64encode(b'api:' + raw).decode()}",
                f"stripe-basic {base64.b64encode(raw + b':').decode()}",
                f"zendesk {base64.urlsafe_b64encode(b'agent@example.com/token:' + raw).decode().rstrip('=')}",
                f"json {json.dumps({'key': s})}",
            ]
        turn = next(self._turn) % len(pieces)
        return " | ".join(pieces[turn:] + pieces[:turn])

    def answer(self, status: int, text: str, authorization: str, body: bytes) -> tuple[int, bytes, bytes]:
        """(status, content type, body) in the vendor's error format."""
        value = authorization.partition(" ")[2]
        if self.system is System.BILLING:
            doc = {"error": {"type": "invalid_request_error", "code": "api_key_invalid", "message": text,
                             "param": value}}
            return status, b"application/json", json.dumps(doc).encode()
        if self.system is System.SUPPORT:
            doc = {"error": {"title": "Couldn't authenticate you", "message": text}, "description": text,
                   "details": {"base": [{"description": f"token {value}"}]}}
            return status, b"application/json", json.dumps(doc).encode()
        if status == RPC_ERROR:
            rid = json.loads(body).get("id")
            doc = {"id": rid, "error": ["UserError", [text, f"credential {value}"]]}
            return 200, b"application/json", json.dumps(doc).encode()
        page = f"<html><body><h1>Refused</h1><p>{html.escape(text)}</p></body></html>"
        return status, b"text/html", page.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert self._app is not None
        if scope["type"] != "http" or str(scope["path"]).startswith("/_demo/"):
            await self._app(scope, receive, send)
            return
        body = await read_body(receive)
        self._remember(body)
        if not self.armed(scope, body):
            await self._app(scope, replaying(body, receive), send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        authorization = headers.get("authorization", "")
        status, ctype, content = self.answer(next(self.statuses), self.echo(authorization), authorization, body)
        self.echoed[status] += 1
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", ctype), (b"request-id", authorization.encode("latin-1")),
                                (b"www-authenticate", f'Basic realm="{authorization}"'.encode("latin-1"))]})
        await send({"type": "http.response.body", "body": content})


def every_request(scope: Scope, body: bytes) -> bool:
    return True


def writes(scope: Scope, body: bytes) -> bool:
    """A write: a Stripe POST, a Zendesk PUT/POST/DELETE, a Tryton call that creates, writes,
    posts, cancels or deletes."""
    if scope["method"] == "GET":
        return False
    try:
        call = json.loads(body)
    except ValueError:
        return True  # a form-encoded Stripe write
    if not isinstance(call, dict) or "method" not in call:
        return True  # a Zendesk write
    method = str(call["method"])
    return method.startswith("model.") and method.rsplit(".", 1)[-1] in {
        "create", "write", "post", "cancel", "delete", "draft", "validate_invoice", "credit"}


@pytest.fixture
def hostile(tmp_path: Path) -> Iterator[tuple[DemoEnvironment, dict[System, EchoCredentials], Path]]:
    """The demo (60 customers, as of now: the commands run on the real clock) behind an
    :class:`EchoCredentials` per system, disarmed; and its profile as a config file."""
    echoes = {s: EchoCredentials(s) for s in System}
    env = DemoEnvironment(DemoOptions(customers=60, seed=1, anchor=int(time.time())))
    for system, echo in echoes.items():
        env.apps[system] = echo.wrap(env.apps[system])
    env.start()
    try:
        asyncio.run(wait_until_answering(env.urls))
        config = tmp_path / "config.toml"
        write_profile(config, env.profile("p"))
        yield env, echoes, config
    finally:
        env.stop()


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    # SYNCDESK_HOME: the test's own (the autouse fixture sets it in os.environ)
    return subprocess.run([sys.executable, "main.py", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=RUN_TIMEOUT, env={**os.environ})


def last_errors() -> dict[str, str]:
    con = sqlite3.connect(snapshot_path("p"))
    try:
        return {s: e for s, e in con.execute("select system, last_error from system_state") if e}
    finally:
        con.close()


# -- the commands ----------------------------------------------------------------------------
@pytest.mark.slow
def test_reconcile_prints_and_stores_no_echoed_credential(
        hostile: tuple[DemoEnvironment, dict[System, EchoCredentials], Path], syncdesk_home: Path) -> None:
    env, echoes, config = hostile
    secrets = env.profile().all_secrets()
    systems = list(System)
    outputs: list[subprocess.CompletedProcess[str]] = []
    for turn in range(3):  # every system answers each of 401, 400 and 500 once
        for i, system in enumerate(systems):
            echoes[system].arm(every_request, (STATUSES[(i + turn) % 3],))
        result = run_cli("reconcile", "--config", str(config), "--profile", "p")
        assert result.returncode == 2, (result.returncode, result.stderr)
        assert "Traceback" not in result.stderr, result.stderr
        failure = result.stderr.splitlines()[-1]
        assert failure.startswith("reconcile: "), failure
        assert all(f"{s.value} (" in failure for s in systems), failure
        assert ECHO_MARK in failure, "the vendor's words are shown (masked), so the echo was printed"
        outputs.append(result)
    assert all(set(echoes[s].echoed) == set(STATUSES) for s in systems), {s: echoes[s].echoed for s in systems}

    for result in outputs:
        assert_nothing_leaked("reconcile stdout", result.stdout, secrets)
        assert_nothing_leaked("reconcile stderr", result.stderr, secrets)
    stored = last_errors()
    assert set(stored) == {s.value for s in systems}
    assert all(ECHO_MARK in e and MASK in e for e in stored.values()), stored
    log = (syncdesk_home / "logs" / "syncdesk.log").read_text(encoding="utf-8")
    assert ECHO_MARK in log, "the refresh failures are logged"
    assert assert_home_clean(syncdesk_home, secrets) > 10


@pytest.mark.slow
def test_fix_prints_logs_and_audits_no_echoed_credential(
        hostile: tuple[DemoEnvironment, dict[System, EchoCredentials], Path], syncdesk_home: Path) -> None:
    env, echoes, config = hostile
    secrets = env.profile().all_secrets()
    for system in (System.BILLING, System.SUPPORT):
        echoes[system].arm(writes, (500, 401, 400))  # a 500 first: its retry is logged, with the echo
    echoes[System.ERP].arm(writes, (401, RPC_ERROR, 400, 500))
    runs = [
        run_cli("fix", "--config", str(config), "--profile", "p", "--rule", "customer.master_drift", "--limit", "3"),
        run_cli("fix", "--config", str(config), "--profile", "p", "--rule", "invoice.missing_in_erp",
                "--limit", "3"),
        run_cli("fix", "--config", str(config), "--profile", "p", "--rule", "entitlement.missing", "--role", "support",
                "--limit", "3", "--format", "json"),
    ]
    for result in runs:
        assert result.returncode in (1, 3), (result.returncode, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr, result.stderr
        assert ECHO_MARK in result.stdout, "the actions' failures (the vendor's words) are printed"
        assert_nothing_leaked("fix stdout", result.stdout, secrets)
        assert_nothing_leaked("fix stderr", result.stderr, secrets)
    assert json.loads(runs[2].stdout)["results"], "still exact JSON"
    assert echoes[System.BILLING].echoed and echoes[System.SUPPORT].echoed and echoes[System.ERP].echoed

    con = sqlite3.connect(audit_path("p"))
    try:
        errors = [e for (e,) in con.execute("select error from audit_entry where error is not null")]
    finally:
        con.close()
    assert any(ECHO_MARK in e for e in errors), "the echoes reached the audit log (masked)"
    assert ECHO_MARK in (syncdesk_home / "logs" / "syncdesk.log").read_text(encoding="utf-8")
    assert assert_home_clean(syncdesk_home, secrets) > 10


# -- an action through the service ---------------------------------------------------------------
async def test_an_action_through_the_service_stores_and_logs_no_echoed_credential(tmp_path: Path) -> None:
    echoes = {s: EchoCredentials(s) for s in System}
    rig = await make_rig(tmp_path / "rig", customers=60, wrap={s: e.wrap for s, e in echoes.items()})
    secrets = rig.env.profile().all_secrets()
    log_file = tmp_path / "rig" / "actions.log"
    handler = logging.FileHandler(log_file, encoding="utf-8")
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)  # the retries are logged at INFO, with the vendor's words
    try:
        # the support credential, echoed in base64 among others; a 500 is retried (and the retry
        # logged, with the vendor's words) before the 401
        echoes[System.SUPPORT].arm(writes, (500, 401, 400))
        rig.service.set_operator(SUPPORT)
        missing = await rig.one("entitlement.missing")
        result = await rig.service.execute(await rig.service.plan(ActionRequest(ActionKind.PUSH, missing.id)))
        assert result.status in (ActionStatus.FAILED, ActionStatus.QUEUED), result.message
        assert ECHO_MARK in result.message
        assert_nothing_leaked("action result", result.message, secrets)

        echoes[System.ERP].arm(writes, (RPC_ERROR, 401, 400))
        rig.service.set_operator(FINANCE)
        invoice = await rig.one("invoice.missing_in_erp")
        result = await rig.service.execute(await rig.service.plan(ActionRequest(ActionKind.RETRY, invoice.id)))
        assert result.status in (ActionStatus.FAILED, ActionStatus.QUEUED), result.message
        assert_nothing_leaked("action result", result.message, secrets)

        echoes[System.BILLING].arm(writes, (500, 401))
        drift = await rig.one("customer.master_drift")
        result = await rig.service.execute(await rig.service.plan(ActionRequest(ActionKind.PUSH, drift.id)))
        assert result.status is ActionStatus.FAILED, result.message
        assert ECHO_MARK in result.message
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
        handler.close()
        await rig.close()
    errors = [r["error"] for r in rig.audit_rows() if r["error"]]
    assert sum(ECHO_MARK in e for e in errors) >= 2, errors
    assert all(MASK in e for e in errors if ECHO_MARK in e)
    assert all(r["last_error"] for r in rig.outbox_rows())
    assert ECHO_MARK in log_file.read_text(encoding="utf-8")
    assert assert_home_clean(tmp_path / "rig", secrets) > 10


# -- the redactor itself -----------------------------------------------------------------------
SECRETS = ["sk_test_51HqLyjWDarjtT1zdp7dcEchoKey", "zd-token-Q2VydGFpbmx5Tm90QVNlY3JldA", "p@ss/w:rd+ü=1 x!"]
USERS = ["", "api", "agent@example.com/token", "admin", "admin:1"]


@pytest.fixture
def registered() -> list[str]:
    for secret in SECRETS:
        register_secret(secret)
    return SECRETS


def every_form(secret: str) -> list[str]:
    """What a server may echo, written independently of the redactor."""
    lower_hex = re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), quote(secret, safe=""))
    forms = [secret, quote(secret, safe=""), lower_hex, quote_plus(secret), json.dumps(secret)]
    for user in USERS:
        for data in (f"{user}:{secret}", secret, f"{secret}:", json.dumps({"user": user, "key": secret})):
            raw = data.encode()
            for encoded in (base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode()):
                forms += [encoded, encoded.rstrip("="), f"Basic {encoded}"]
    forms += [f"Bearer {secret}", f"Authorization: Bearer {secret}", f"{USERS[2]}/token:{secret}",
              quote(f"{USERS[2]}/token:{secret}", safe="")]
    return forms


def test_every_form_of_a_configured_secret_is_masked(registered: list[str]) -> None:
    for secret in registered:
        for form in every_form(secret):
            for text in (form, f"{ECHO_MARK}: {form}", f"{{\"message\": \"x {form} y\"}}", f"'{form}'"):
                cleaned = redact(text)
                assert MASK in cleaned, (form, cleaned)
                assert_nothing_leaked(repr(text), cleaned, [secret])


def test_a_secret_cut_short_by_a_vendor_is_masked(registered: list[str]) -> None:
    """Vendors (and our parsers) cut messages at 300 or 80 characters: what is left of a
    secret at the cut, raw or in base64, goes too (8+ characters of it)."""
    for secret in registered:
        for form in (secret, base64.b64encode(f"admin:{secret}".encode()).decode(),
                     base64.b64encode(secret.encode()).decode()):
            for cut in range(PIECE, len(form)):
                for text in (f"{ECHO_MARK}: {form[:cut]}", f"b'{ECHO_MARK}: {form[:cut]}'"):
                    assert_nothing_leaked(repr(text), redact(text), [secret])


@settings(max_examples=200, deadline=None)
@given(before=st.text(max_size=40), user=st.text(max_size=30), after=st.text(max_size=40),
       urlsafe=st.booleans())
def test_base64_of_anything_holding_a_secret_is_masked(before: str, user: str, after: str, urlsafe: bool) -> None:
    for secret in SECRETS:
        register_secret(secret)
    secret = SECRETS[0]
    raw = f"{user}:{secret}{after}".encode()
    encoded = (base64.urlsafe_b64encode if urlsafe else base64.b64encode)(raw).decode()
    cleaned = redact(f"{before} {encoded} {after}")
    assert not _pieces([secret]).search("".join(_b64_readings(cleaned))), cleaned
    assert secret not in cleaned


def test_credential_shapes_are_masked_unconfigured() -> None:
    samples = {
        "sk_live_4eC39HqLyjWDarjtT1zdp7dc": "sk_live_" + MASK,
        "key: sk_test_9aB8cD7eF6gH5iJ4": "key: sk_test_" + MASK,
        "rk_live_51Habc123XYZ": "rk_live_" + MASK,
        "pk_test_TYooMQauvdEDq54NiTphI7jx": "pk_test_" + MASK,
        "whsec_5f8a9b0c1d2e3f4a5b6c7d8e": "whsec_" + MASK,
        "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.e30.x7": "Authorization: Bearer " + MASK,
        "bearer 0123456789abcdef0123456789abcdef": "bearer " + MASK,
        f"Basic {base64.b64encode(b'someone:hunter2').decode()}": "Basic " + MASK,
        f"Session {base64.b64encode(b'admin:1:9f8e7d6c5b4a').decode()}": "Session " + MASK,
        "https://x.zendesk.com/api/v2?u=bob@example.com/token:AbCdEf0123456789": (
            "https://x.zendesk.com/api/v2?u=bob@example.com/token:" + MASK),
        "bob%40example.com%2Ftoken%3AAbCdEf0123456789": "bob%40example.com%2Ftoken%3A" + MASK,
        f"auth {base64.b64encode(b'bob@example.com/token:AbCdEf0123456789').decode()} refused": (
            f"auth {MASK} refused"),
    }
    for text, expected in samples.items():
        assert redact(text) == expected, text


def test_legitimate_text_is_kept() -> None:
    """The trade-off: only credential *shapes* are masked. Names that merely resemble one stay."""
    for text in ["Basic Ltd", "Basic Holdings GmbH", "sk_like_text", "rk_list", "pk_12", "Bearer Holdings",
                 "Session 12 closed", "token: the session is invalid or expired", "cus_Q8xAbCdEfGhIjK",
                 "in_1NabcdEfGhIjKlMn", "/v1/customers/cus_Q8xAbCdEfGh/invoices", "Müller & Söhne 東京",
                 "INV-2024-000123 (1,234.56 EUR) finalized 2024-05-01 10:00 UTC", "sk_test_", "whsec_short",
                 "Invalid API Key provided: sk_test_****4242", "support tier premium, the plan grants basic",
                 "ERP invoice 42 refers to in_123, which billing does not have"]:
        assert redact(text) == text, text


def test_the_demo_data_is_not_mangled() -> None:
    """Every string of a demo dataset (names, ids, notes, addresses...) passes unchanged, but
    for the demo's own credentials."""
    env = DemoEnvironment(DemoOptions(customers=60, seed=1, anchor=1_780_000_000))
    c = env.dataset.credentials
    for secret in (c.stripe_api_key, c.tryton_password, c.zendesk_token):
        register_secret(secret)
    credentials = {c.stripe_api_key, c.tryton_password, c.zendesk_token}
    seen = 0
    for store in (env.dataset.billing, env.dataset.erp, env.dataset.support):
        for text in _all_strings(vars(store)):
            seen += 1
            if text not in credentials:
                assert redact(text) == text, text
    assert seen > 5_000


def _all_strings(value: Any) -> Iterator[str]:
    """Every string in ``value``: dictionaries (keys too), sequences, sets, dataclasses."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _all_strings(k)
            yield from _all_strings(v)
    elif isinstance(value, list | tuple | set | frozenset):
        for v in value:
            yield from _all_strings(v)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            yield from _all_strings(getattr(value, f.name))


def test_redaction_is_idempotent_and_keeps_json_valid(registered: list[str]) -> None:
    doc = {"error": {"message": f"{ECHO_MARK}: Bearer {SECRETS[0]}", "param": SECRETS[1],
                     "b64": base64.b64encode(f"u:{SECRETS[2]}".encode()).decode(), "cut": SECRETS[0][:20]},
           "name": "Basic Ltd", "quote": 'say "hi" \\ ok'}
    for text in (json.dumps(doc), json.dumps(doc, ensure_ascii=False, indent=2)):
        once = redact(text)
        assert redact(once) == once
        loaded = json.loads(once)
        assert loaded["name"] == "Basic Ltd" and loaded["quote"] == doc["quote"]
        assert_nothing_leaked("json", once, SECRETS)
    value = redact_value(doc)
    assert value["name"] == "Basic Ltd" and MASK in value["error"]["message"]
    assert_nothing_leaked("value", json.dumps(value), SECRETS)


def test_typed_errors_hold_no_echoed_credential(registered: list[str]) -> None:
    key = SECRETS[0]
    err = AuthenticationError(System.BILLING, "list customers", f"{ECHO_MARK}: Bearer {key}", status=401,
                              request_id=f"Bearer {key}", vendor_code=base64.b64encode(f"{key}:".encode()).decode())
    for text in (str(err), repr(err), err.message, err.request_id or "", err.vendor_code or "", *map(str, err.args)):
        assert_nothing_leaked("error", text, SECRETS)
    assert ECHO_MARK in str(err)
    warning = RemoteWarning(System.ERP, "post", "confirm", warning_name=f"w_{SECRETS[2]}")
    assert SECRETS[2] not in warning.warning_name


def test_log_lines_hold_no_credential_and_no_control_character(registered: list[str], tmp_path: Path) -> None:
    path = tmp_path / "log.txt"
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.addFilter(RedactingFilter())
    log = logging.getLogger("test_secret_echo")
    log.addHandler(handler)
    log.propagate = False
    try:
        log.warning("billing refused: %s (request %s)", f"Bearer {SECRETS[0]}", quote(SECRETS[2], safe=""))
        try:
            echoed = base64.b64encode(f"a/token:{SECRETS[1]}".encode()).decode()
            raise AuthenticationError(System.SUPPORT, "put", echoed)
        except AuthenticationError:
            log.exception("failed with \x1b]52;c;Zm9v\x07 %s", SECRETS[1])
    finally:
        log.removeHandler(handler)
        handler.close()
    text = path.read_text(encoding="utf-8")
    assert "billing refused" in text and "Traceback" in text
    assert_nothing_leaked("log", text, SECRETS)
    assert "\x1b" not in text and "\x07" not in text and "\\x1b]52" in text
