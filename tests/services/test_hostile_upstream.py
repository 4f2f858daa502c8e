"""Hostile upstreams, part 1: records that cannot be read are quarantined, not fatal.

The three demo servers run behind :class:`~tests.services.hostile.Tamper`, which rewrites their
answers the way a broken or hostile upstream would: a billing invoice ``created`` of 2**62 and
of -10**13 (times no datetime holds), a total of the wrong type, a missing field, an id listed
twice with different content (and a customer listed twice with the same content: fine); an ERP
invoice whose date does not decode, whose total is text, without a state, listed twice; a
support organization with an out-of-range time and a numeric name, a ticket without a status
and a ticket listed twice. Each such record is quarantined — left out, listed with its system,
kind, id and reason, stored with the snapshot (it survives a restart) — and the rest of the
refresh goes on: in the engine, and in ``reconcile`` run as a job runs it (exit 4, one line per
record on stderr, never a traceback). A negative-total invoice is checked like any other.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from services.core.domain import System
from services.demo.environment import DemoEnvironment, DemoOptions, wait_until_answering
from services.engine import Engine, RefreshMode
from services.io.config import write_profile
from services.io.http import HttpPolicy
from services.store.storage import Storage
from tests.services.hostile import Tamper
from tests.worlds import World

ROOT = Path(__file__).resolve().parents[2]
CUSTOMERS = 60
FAST = {s: HttpPolicy(rate_per_second=None, max_retries=1, backoff_base=0.01, backoff_max=0.05) for s in System}
#: a command is a Python start-up plus a refresh of 60 customers: generous on a loaded 2-core machine
RUN_TIMEOUT = 120.0

Change = Callable[[dict[str, Any]], dict[str, Any]]


def _set(**values: Any) -> Change:
    return lambda obj: {**obj, **values}


def _drop(key: str) -> Change:
    return lambda obj: {k: v for k, v in obj.items() if k != key}


def _rewrite(items: list[Any], bad: dict[Any, Change], twice_different: dict[Any, Change],
             twice_same: set[Any]) -> list[Any]:
    out: list[Any] = []
    for obj in items:
        oid = obj.get("id") if isinstance(obj, dict) else None
        if oid in bad:
            obj = bad[oid](obj)
        out.append(obj)
        if oid in twice_different:
            out.append(twice_different[oid](obj))
        if oid in twice_same:
            out.append(dict(obj))
    return out


class Plan:
    """What the tampering does to each system, and the quarantine it must give."""

    def __init__(self, env: DemoEnvironment) -> None:
        ds = env.dataset
        inv = sorted(ds.billing.invoices)
        self.billing_bad: dict[Any, Change] = {
            inv[0]: _set(created=2 ** 62), inv[1]: _set(created=-10 ** 13),
            inv[2]: _set(total="12.00"), inv[3]: _drop("status")}
        self.billing_twice: dict[Any, Change] = {inv[4]: lambda o: {**o, "total": o["total"] + 100}}
        self.billing_same = {sorted(ds.billing.customers)[0]}
        erp_inv = sorted(i for i, r in ds.erp.tables["account.invoice"].items() if r.get("type") == "out")
        bad_date = {"__class__": "datetime", "year": 99999, "month": 1, "day": 1, "hour": 0, "minute": 0,
                    "second": 0, "microsecond": 0}
        self.erp_bad: dict[Any, Change] = {erp_inv[0]: _set(create_date=bad_date),
                                           erp_inv[1]: _set(total_amount="abc"), erp_inv[2]: _drop("state")}
        self.erp_twice: dict[Any, Change] = {
            erp_inv[3]: _set(total_amount={"__class__": "Decimal", "decimal": "1.00"})}
        orgs = sorted(ds.support.organizations)
        tickets = sorted(ds.support.tickets)
        self.org_bad: dict[Any, Change] = {orgs[0]: _set(created_at=2 ** 62), orgs[1]: _set(name=42)}
        self.ticket_bad: dict[Any, Change] = {tickets[0]: _drop("status")}
        self.ticket_twice: dict[Any, Change] = {tickets[1]: lambda t: {**t, "subject": f"{t.get('subject')} (edited)"}}
        self.expected = {
            *((System.BILLING, "invoice", str(i)) for i in [*self.billing_bad, *self.billing_twice]),
            *((System.ERP, "invoice", str(i)) for i in [*self.erp_bad, *self.erp_twice]),
            *((System.SUPPORT, "customer", str(i)) for i in self.org_bad),
            *((System.SUPPORT, "case", str(i)) for i in [*self.ticket_bad, *self.ticket_twice]),
        }
        #: what each reason must say, by (system, id)
        b, e, s = System.BILLING, System.ERP, System.SUPPORT
        self.fields: dict[tuple[System, str], str] = {
            (b, inv[0]): "created: Value error, 4611686018427387904 is out of range for a time",
            (b, inv[1]): "created: Value error, -10000000000000 is out of range for a time",
            (b, inv[2]): "total: Input should be a valid integer (got '12.00')",
            (b, inv[3]): "status: Field required", (b, inv[4]): "listed twice with different content (total",
            (e, str(erp_inv[0])): "create_date", (e, str(erp_inv[1])): "total_amount",
            (e, str(erp_inv[2])): "state: Field required", (e, str(erp_inv[3])): "listed twice",
            (s, str(orgs[0])): "created_at", (s, str(orgs[1])): "name",
            (s, str(tickets[0])): "status: Field required", (s, str(tickets[1])): "listed twice"}

    def billing(self, path: str, body: Any) -> Any:
        if isinstance(body, dict) and body.get("object") == "list" and isinstance(body.get("data"), list):
            return {**body, "data": _rewrite(body["data"], self.billing_bad, self.billing_twice, self.billing_same)}
        return body

    def erp(self, path: str, body: Any) -> Any:
        result = body.get("result") if isinstance(body, dict) else None
        if isinstance(result, list) and result and isinstance(result[0], dict) and "total_amount" in result[0]:
            return {**body, "result": _rewrite(result, self.erp_bad, self.erp_twice, set())}
        return body

    def support(self, path: str, body: Any) -> Any:
        if path.endswith("/organizations.json") and isinstance(body, dict):
            return {**body, "organizations": _rewrite(body["organizations"], self.org_bad, {}, set())}
        if path.endswith("/incremental/tickets/cursor.json") and isinstance(body, dict):
            return {**body, "tickets": _rewrite(body["tickets"], self.ticket_bad, self.ticket_twice, set())}
        return body


@pytest.fixture(scope="module")
def hostile() -> Iterator[tuple[DemoEnvironment, Plan]]:
    # "as of" now: the command runs on the real clock
    env = DemoEnvironment(DemoOptions(customers=CUSTOMERS, seed=2, anchor=int(time.time())))
    plan = Plan(env)
    env.apps[System.BILLING] = Tamper(env.apps[System.BILLING], plan.billing)
    env.apps[System.ERP] = Tamper(env.apps[System.ERP], plan.erp)
    env.apps[System.SUPPORT] = Tamper(env.apps[System.SUPPORT], plan.support)
    env.start()
    asyncio.run(wait_until_answering(env.urls))
    yield env, plan
    env.stop()


def quarantine_set(engine: Engine) -> set[tuple[System, str, str]]:
    return {(q.system, q.kind, q.record_id) for q in engine.quarantined()}


async def test_unreadable_records_are_quarantined_and_the_rest_is_read(
        hostile: tuple[DemoEnvironment, Plan], tmp_path: Path) -> None:
    env, plan = hostile
    db = tmp_path / "snapshot.db"
    engine = Engine.from_profile(env.profile(), Storage.open_path(db), policies=FAST, clock=env.now)
    try:
        await engine.load()
        report = await engine.refresh(RefreshMode.FULL)
        assert report.ok, [o.error_text for o in report.failed]
        assert quarantine_set(engine) == plan.expected
        for q in engine.quarantined():
            assert plan.fields[q.system, q.record_id] in q.reason, q.line()
            assert q.line().startswith(f"{q.system.value} {q.kind} {q.record_id} could not be read: ")
        assert sum(o.quarantined for o in report.outcomes.values()) == len(plan.expected)
        # left out of the data, everything else read
        billing = engine.data[System.BILLING]
        assert not {str(i) for i in [*plan.billing_bad, *plan.billing_twice]} & set(billing.invoices)
        assert len(billing.invoices) == len(env.dataset.billing.invoices) - 5
        assert set(billing.customers) == {c for c, bc in env.dataset.billing.customers.items() if not bc.deleted}
        erp_out = [i for i, r in env.dataset.erp.tables["account.invoice"].items() if r.get("type") == "out"]
        assert len(engine.data[System.ERP].invoices) == len(erp_out) - 4
        assert len(engine.data[System.SUPPORT].cases) >= len(env.dataset.support.tickets) - 2 - 1
        result, _ = await engine.reconcile()
        assert result.checked_at is not None
        # an incremental refresh with nothing new keeps the list as it is
        again = await engine.refresh(RefreshMode.AUTO)
        assert again.ok and {o.mode for o in again.outcomes.values()} == {"incremental"}
        assert quarantine_set(engine) == plan.expected
    finally:
        await engine.aclose()
        engine.storage.close()
    # kept with the snapshot: a restart shows the same list
    reopened = Engine.from_profile(env.profile(), Storage.open_path(db), policies=FAST, clock=env.now)
    try:
        await reopened.load()
        assert quarantine_set(reopened) == plan.expected
        assert {q.reason for q in reopened.quarantined()} == {q.reason for q in engine.quarantined()}
    finally:
        await reopened.aclose()
        reopened.storage.close()


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    # SYNCDESK_HOME: the test's own (the autouse fixture sets it in os.environ)
    return subprocess.run([sys.executable, "main.py", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=RUN_TIMEOUT, env={**os.environ})


@pytest.mark.slow
def test_reconcile_exits_4_with_one_line_per_quarantined_record(
        hostile: tuple[DemoEnvironment, Plan], tmp_path: Path) -> None:
    env, plan = hostile
    config = tmp_path / "config.toml"
    write_profile(config, env.profile("p"))
    for run in ("first (full)", "second (incremental, after a restart)"):
        result = run_cli("reconcile", "--config", str(config), "--profile", "p", "-q")
        assert "Traceback" not in result.stderr, result.stderr
        assert result.returncode == 4, (run, result.returncode, result.stderr)
        assert "open exceptions" in result.stdout  # the reconciliation was printed all the same
        lines = result.stderr.splitlines()
        quarantined = [ln for ln in lines if ln.startswith("reconcile: could not read ")]
        assert len(quarantined) == len(plan.expected) == len(lines), (run, result.stderr)
        for system, kind, rid in plan.expected:
            (line,) = [ln for ln in quarantined if ln.startswith(f"reconcile: could not read {system.value} {kind} "
                                                                    f"{rid}: ")]
            assert plan.fields[system, rid] in line, line


def test_a_negative_total_invoice_missing_in_the_erp_is_flagged() -> None:
    """A credit (negative total) is compared like any other invoice; a $0 one is still not
    expected in the ERP."""
    w = World(1)
    w.paid_invoice("cus_0", "in_credit", Decimal("-40"), age=timedelta(hours=2))
    w.paid_invoice("cus_0", "in_zero", Decimal("0"), age=timedelta(hours=2))
    for iid in ("in_credit", "in_zero"):
        del w.e.invoices[f"e{iid}"]
    assert w.rules() == [("invoice.missing_in_erp", "cus_0", "in_credit")]
