"""A demo environment over loopback + engine (temp snapshot) + audit log (separate durable
temp database) + action service: the rig the action tests share."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.actions.model import Operator, Role
from services.actions.service import ActionService
from services.core.domain import SyncException, System
from services.demo.environment import DemoEnvironment, DemoOptions
from services.demo.faults import DroppedConnection, FaultConfig
from services.engine import Engine, RefreshMode
from services.io.http import HttpPolicy
from services.store.audit import AuditLog
from services.store.storage import Storage

ANCHOR = 1_780_000_000  # fixed: identical data on every run
FINANCE = Operator("ann.finance", Role.FINANCE)
SUPPORT = Operator("sam.support", Role.SUPPORT)
AUDITOR = Operator("ada.auditor", Role.AUDITOR)
FAST = {s: HttpPolicy(max_retries=3, backoff_base=0.01, backoff_max=0.05, read_timeout=5.0, concurrency=4,
                      breaker_threshold=50) for s in System}


@dataclass
class Rig:
    env: DemoEnvironment
    engine: Engine
    audit: AuditLog
    service: ActionService
    tmp: Path
    extra: dict[str, Any] = field(default_factory=dict)
    #: the engine's HTTP policies and the service's options (``reopen`` uses them again)
    policies: dict[System, HttpPolicy] = field(default_factory=lambda: dict(FAST))
    options: dict[str, Any] = field(default_factory=dict)
    #: False between ``detach`` and ``reopen``: the service, engine and databases are closed
    attached: bool = True

    @property
    def audit_db(self) -> Path:
        return self.tmp / "audit.db"

    @property
    def snapshot_db(self) -> Path:
        return self.tmp / "snapshot.db"

    async def detach(self) -> None:
        """Close the service, the engine and both databases, as a process that ends would;
        the demo servers keep running (another process, or :meth:`reopen`, takes over)."""
        if self.attached:
            self.attached = False
            await self.service.aclose()
            await self.engine.aclose()
            self.engine.storage.close()
            self.audit.storage.close()

    async def reopen(self, operator: Operator = FINANCE, *, snapshot_db: Path | None = None,
                     **service_options: Any) -> ActionService:
        """A fresh engine (the stored snapshot loaded, no refresh: what a restarted console has
        before its first refresh), audit log and action service over the same databases (or
        over ``snapshot_db``: another console's snapshot). Detaches the current ones first."""
        await self.detach()
        storage = Storage.open_path(snapshot_db or self.snapshot_db)
        self.engine = Engine.from_profile(self.env.profile(), storage, policies=self.policies, clock=self.env.now)
        await self.engine.load()
        self.audit = AuditLog(Storage.open_path(self.audit_db, durable=True))
        self.service = ActionService(self.engine, self.audit, operator, **(self.options | service_options))
        self.attached = True
        return self.service

    def write_profile(self, path: Path | None = None) -> Path:
        """The demo's connection profile as a TOML file (profile name ``demo``), for a subprocess."""
        from services.io.config import write_profile

        target = path or self.tmp / "demo.toml"
        write_profile(target, self.env.profile("demo"))
        return target

    def audit_rows(self) -> list[sqlite3.Row]:
        return db_rows(self.audit_db, "select * from audit_entry order by seq")

    def outbox_rows(self) -> list[sqlite3.Row]:
        return db_rows(self.audit_db, "select * from action_outbox order by created_at, action_id")

    async def open_of(self, rule: str) -> list[SyncException]:
        return sorted((e for e in await self.engine.open_exceptions() if e.rule == rule), key=lambda e: e.id)

    async def one(self, rule: str, pick: Callable[[SyncException], bool] = lambda e: True) -> SyncException:
        found = [e for e in await self.open_of(rule) if pick(e)]
        assert found, f"no open {rule} exception in the demo"
        return found[0]

    def live_erp_invoices(self, reference: str) -> list[dict[str, Any]]:
        erp = self.env.dataset.erp
        table = erp.tables["account.invoice"]
        return [table[i] for i in erp.lookup("account.invoice", "reference", reference)
                if table[i].get("state") != "cancelled"]

    async def close(self) -> None:
        await self.detach()
        await asyncio.to_thread(self.env.stop)


def db_rows(db: Path, sql: str, *params: Any) -> list[sqlite3.Row]:
    """Rows of ``sql`` read from ``db`` by a connection of its own (what another process sees)."""
    if not db.exists():
        return []
    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    try:
        return list(con.execute(sql, params))
    finally:
        con.close()


async def make_rig(tmp_path: Path, *, customers: int = 150, seed: int = 3, operator: Operator = FINANCE,
                   policies: dict[System, HttpPolicy] | None = None, faults: dict[System, FaultConfig] | None = None,
                   wrap: dict[System, Callable[[ASGIApp], ASGIApp]] | None = None,
                   before_start: Callable[[DemoEnvironment], None] | None = None,
                   **service_options: Any) -> Rig:
    opts = DemoOptions(customers=customers, seed=seed, anchor=ANCHOR,
                       faults={s: (faults or {}).get(s) or FaultConfig() for s in System})

    def start() -> DemoEnvironment:
        env = DemoEnvironment(opts)
        for system, wrapper in (wrap or {}).items():
            env.apps[system] = wrapper(env.apps[system])
        if before_start is not None:
            before_start(env)
        return env.start()

    env = await asyncio.to_thread(start)
    storage = Storage.open_path(tmp_path / "snapshot.db")
    engine = Engine.from_profile(env.profile(), storage, policies=policies or FAST, clock=env.now)
    await engine.load()
    report = await engine.refresh(RefreshMode.FULL)
    assert report.ok, [o.error_text for o in report.failed]
    await engine.reconcile()
    audit = AuditLog(Storage.open_path(tmp_path / "audit.db", durable=True))
    options: dict[str, Any] = {"clock": env.now, "retry_delays": (0.05, 0.1, 0.2, 0.4)} | service_options
    service = ActionService(engine, audit, operator, **options)
    return Rig(env, engine, audit, service, tmp_path, policies=policies or FAST, options=options)


# -- a demo served by another process (its own CPU; it survives the client being killed) ----
REMOTE_SERVER = """
import json, sys
from pathlib import Path
from services.io.config import write_profile
from services.demo.environment import DemoEnvironment, DemoOptions
from services.demo.faults import FaultConfig
from services.core.domain import System
from tests.services.actions_rig import delete_posted_invoices, live_count

args = json.loads(sys.argv[2])
faults = {System(k): FaultConfig(**v) for k, v in args["faults"].items()}
opts = DemoOptions(customers=args["customers"], seed=args["seed"], anchor=args["anchor"],
                   faults={s: faults.get(s) or FaultConfig() for s in System})
env = DemoEnvironment(opts)
victims = delete_posted_invoices(env, args["delete"])
env.start()
write_profile(Path(sys.argv[1]), env.profile("demo"))
print(json.dumps(victims), flush=True)
for line in sys.stdin:
    if line.strip() == "check":
        print(json.dumps({ref: live_count(env, ref) for ref in victims}), flush=True)
env.stop()
"""


def delete_posted_invoices(env: DemoEnvironment, count: int) -> list[str]:
    """Delete ``count`` posted (or paid) ERP copies of billing invoices, lines too, through
    ``store.delete`` (indexes kept right): each becomes an ``invoice.missing_in_erp``."""
    erp, billing = env.dataset.erp, env.dataset.billing
    table = erp.tables["account.invoice"]
    victims: list[str] = []
    for rid, rec in sorted(table.items()):
        if len(victims) == count:
            break
        ref = rec.get("reference") or ""
        binv = billing.invoices.get(ref)
        if (rec.get("state") not in ("posted", "paid") or binv is None or binv.status not in ("open", "paid")
                or binv.total <= 0 or len(erp.lookup("account.invoice", "reference", ref)) != 1):
            continue
        for line in list(erp.lookup("account.invoice.line", "invoice", rid)):
            erp.delete("account.invoice.line", line)
        for tax in list(erp.lookup("account.invoice.tax", "invoice", rid)):
            erp.delete("account.invoice.tax", tax)
        erp.delete("account.invoice", rid)
        victims.append(ref)
    assert len(victims) == count, f"only {len(victims)} posted invoices to delete"
    return victims


def plant_posted_amount_mismatch(env: DemoEnvironment) -> str:
    """One more seat on the last line of the posted ERP copy of an open billing invoice (through
    ``store.update``: indexes kept right): an ``invoice.amount_mismatch`` on a *posted* ERP
    invoice, which the demo plants only on draft and paid ones. Answers the billing invoice id."""
    erp, billing = env.dataset.erp, env.dataset.billing
    lines = erp.tables["account.invoice.line"]
    for rec in sorted(erp.tables["account.invoice"].values(), key=lambda r: r["id"]):
        ref = rec.get("reference") or ""
        binv = billing.invoices.get(ref)
        if (rec.get("state") != "posted" or binv is None or binv.status != "open" or binv.total <= 0
                or not rec.get("lines") or len(erp.lookup("account.invoice", "reference", ref)) != 1):
            continue
        line = lines[rec["lines"][-1]]
        erp.update("account.invoice.line", line["id"], {"quantity": line["quantity"] + 1})
        return ref
    raise AssertionError("no posted ERP copy of an open billing invoice")


def live_count(env: DemoEnvironment, ref: str) -> int:
    erp = env.dataset.erp
    table = erp.tables["account.invoice"]
    return sum(1 for i in erp.lookup("account.invoice", "reference", ref) if table[i].get("state") != "cancelled")


class RemoteDemo:
    """``REMOTE_SERVER`` in a subprocess: a profile file, the deleted invoices, counts on demand,
    faults through the servers' control endpoints."""

    def __init__(self, tmp: Path, *, customers: int, seed: int, delete: int,
                 faults: dict[System, dict[str, Any]] | None = None, env: dict[str, str] | None = None) -> None:
        import json
        import os
        import subprocess
        import sys

        repo = Path(__file__).resolve().parents[2]
        self.cfg = tmp / "demo.toml"
        args = {"customers": customers, "seed": seed, "anchor": ANCHOR, "delete": delete,
                "faults": {s.value: v for s, v in (faults or {}).items()}}
        self.proc = subprocess.Popen([sys.executable, "-c", REMOTE_SERVER, str(self.cfg), json.dumps(args)],
                                     cwd=repo, env={**os.environ, "PYTHONPATH": str(repo), **(env or {})},
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line, "the demo server did not start"
        self.victims: list[str] = json.loads(line)
        self._t0 = time.monotonic()

    def now(self) -> datetime:
        """The demo's virtual clock (anchor + time since the servers started), approximately."""
        return datetime.fromtimestamp(ANCHOR + time.monotonic() - self._t0, UTC)

    def profile(self) -> Any:
        from services.io.config import load_profile

        return load_profile(self.cfg, "demo")

    def check(self) -> dict[str, int]:
        import json

        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("check\n")
        self.proc.stdin.flush()
        counts: dict[str, int] = json.loads(self.proc.stdout.readline())
        return counts

    def control(self, system: System, path: str, body: dict[str, Any] | None = None) -> Any:
        import httpx

        url = self.profile().connections[system].url + path
        response = httpx.post(url, json=body) if body is not None else httpx.get(url)
        response.raise_for_status()
        return response.json()

    def close(self) -> None:
        self.proc.kill()
        self.proc.communicate()


# -- ASGI wrappers for the demo servers (``make_rig(wrap={system: wrapper.wrap})``) --------------
#: what a wrapper matches on: the request's scope and its whole body
Match = Callable[[Scope, bytes], bool]


def rpc(method: str) -> Match:
    """Matches a Tryton JSON-RPC call of ``method`` (e.g. ``model.account.invoice.create``)."""
    needle = f'"{method}"'.encode()
    return lambda scope, body: scope["method"] == "POST" and needle in body


def http(method: str, path_prefix: str = "/") -> Match:
    """Matches ``method`` on a path starting with ``path_prefix`` (a Stripe or Zendesk call)."""
    return lambda scope, body: scope["method"] == method and str(scope["path"]).startswith(path_prefix)


async def read_body(receive: Receive) -> bytes:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body


def replaying(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands the app ``body`` (already read) and then defers to ``receive``."""
    sent = False

    async def again() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return again


class Seen(NamedTuple):
    """One request a demo server received, and its answer's status and headers (lower-case
    names; status 0 and no headers when no answer started)."""

    method: str
    path: str
    body: bytes
    status: int
    headers: dict[str, str]
    query: str = ""


class RequestLog:
    """Records every API request a demo server receives (:class:`Seen`); the control endpoints
    (``/_demo/...``) are left out."""

    def __init__(self) -> None:
        self.seen: list[Seen] = []
        self._app: ASGIApp | None = None

    def wrap(self, app: ASGIApp) -> ASGIApp:
        self._app = app
        return self

    def matching(self, match: Match) -> list[Seen]:
        return [r for r in self.seen if match({"method": r.method, "path": r.path}, r.body)]

    def mentioning(self, text: str) -> list[Seen]:
        needle = text.encode()
        return [r for r in self.seen if needle in r.body or needle in r.path.encode()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert self._app is not None
        if scope["type"] != "http" or str(scope["path"]).startswith("/_demo/"):
            await self._app(scope, receive, send)
            return
        body = await read_body(receive)
        status = 0
        headers: dict[str, str] = {}

        async def watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers.update((k.decode("latin-1").lower(), v.decode("latin-1"))
                               for k, v in message.get("headers", []))
            await send(message)

        try:
            await self._app(scope, replaying(body, receive), watch)
        finally:
            self.seen.append(Seen(scope["method"], str(scope["path"]), body, status, headers,
                                  bytes(scope.get("query_string", b"")).decode("latin-1")))


class DropAnswers:
    """Drops the answer of the first ``times`` requests matching ``match`` that the server
    marked as a committed write (``scope["state"]["write"]``, as the demo's
    ``drop_after_commit`` fault does): the app applies the write, the client gets a broken
    connection. Every other request, and every later one, passes untouched."""

    def __init__(self, match: Match = lambda scope, body: True, times: int = 1) -> None:
        self.match = match
        self.times = times
        self.dropped: list[tuple[str, str, bytes]] = []
        self._app: ASGIApp | None = None

    def wrap(self, app: ASGIApp) -> ASGIApp:
        self._app = app
        return self

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert self._app is not None
        if scope["type"] != "http" or len(self.dropped) >= self.times or str(scope["path"]).startswith("/_demo/"):
            await self._app(scope, receive, send)
            return
        body = await read_body(receive)
        if not self.match(scope, body):
            await self._app(scope, replaying(body, receive), send)
            return
        state = scope.setdefault("state", {})  # shared with the app: it marks a committed write there
        captured: list[Message] = []

        async def capture(message: Message) -> None:
            captured.append(message)

        await self._app(scope, replaying(body, receive), capture)
        if state.get("write") and len(self.dropped) < self.times:
            self.dropped.append((scope["method"], str(scope["path"]), body))
            for message in captured:
                if message["type"] == "http.response.start":
                    await send(message)
                    break
            raise DroppedConnection(f"{scope['path']}: write committed, answer dropped (test)")
        for message in captured:
            await send(message)


class Hold:
    """Holds the first request matching ``match`` until :meth:`release`: ``before`` the app sees
    it (it never reaches the server: answered 503 once released) or ``after`` the app applied
    it (the answer is then dropped). ``reached`` (a ``threading.Event``) is set once it is held,
    so a test can act at that precise point — e.g. SIGKILL the client's process."""

    def __init__(self, match: Match, when: str) -> None:
        assert when in ("before", "after")
        self.match = match
        self.when = when
        self.reached = threading.Event()
        self.held: tuple[str, str, bytes] | None = None
        self._released = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._event: asyncio.Event | None = None
        self._app: ASGIApp | None = None

    def wrap(self, app: ASGIApp) -> ASGIApp:
        self._app = app
        return self

    def release(self) -> None:
        """Let the held request end (thread-safe; idempotent)."""
        self._released.set()
        loop, event = self._loop, self._event
        if loop is not None and event is not None:
            loop.call_soon_threadsafe(event.set)

    async def _wait(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._event = asyncio.Event()
        self.reached.set()
        if not self._released.is_set():
            await self._event.wait()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert self._app is not None
        if scope["type"] != "http" or self.held is not None or str(scope["path"]).startswith("/_demo/"):
            await self._app(scope, receive, send)
            return
        body = await read_body(receive)
        if not self.match(scope, body):
            await self._app(scope, replaying(body, receive), send)
            return
        self.held = (scope["method"], str(scope["path"]), body)
        if self.when == "before":
            await self._wait()
            await send({"type": "http.response.start", "status": 503, "headers": [(b"content-length", b"0")]})
            await send({"type": "http.response.body", "body": b""})
            return
        captured: list[Message] = []

        async def capture(message: Message) -> None:
            captured.append(message)

        scope.setdefault("state", {})
        await self._app(scope, replaying(body, receive), capture)
        await self._wait()
        for message in captured:
            if message["type"] == "http.response.start":
                await send(message)
                break
        raise DroppedConnection(f"{scope['path']}: held after the write, answer dropped (test)")
