"""A demo environment over loopback + engine (temp snapshot) + audit log (separate durable
temp database) + action service: the rig the action tests share."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from starlette.types import ASGIApp

from services.actions import ActionService, Operator, Role
from services.audit import AuditLog
from services.demo.environment import DemoEnvironment, DemoOptions
from services.demo.faults import FaultConfig
from services.domain import SyncException, System
from services.engine import Engine, RefreshMode
from services.http import HttpPolicy
from services.storage import Storage

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

    @property
    def audit_db(self) -> Path:
        return self.tmp / "audit.db"

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
        await self.service.aclose()
        await self.engine.aclose()
        self.engine.storage.close()
        self.audit.storage.close()
        await asyncio.to_thread(self.env.stop)


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
    return Rig(env, engine, audit, service, tmp_path)


# -- a demo served by another process (its own CPU; it survives the client being killed) ----
REMOTE_SERVER = """
import json, sys
from pathlib import Path
from services.config import write_profile
from services.demo.environment import DemoEnvironment, DemoOptions
from services.demo.faults import FaultConfig
from services.domain import System
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
        from services.config import load_profile

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
