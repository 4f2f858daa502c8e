"""Incremental refresh == full refresh, at engine level, over random change sets.

The property: for any set of changes made through the vendors' APIs,

    engine A: FULL refresh -> closed -> reopened from its stored snapshot (SQLite on disk)
              -> the changes are made -> AUTO refresh (incremental in every system)
    engine B: a fresh storage -> FULL refresh

hold the same records, system by system and kind by kind (A both in memory and as stored on
disk), and reconciliation over them finds the same exceptions. The changes go through the demo
servers' APIs the way other clients make them: Stripe form posts, Zendesk JSON PUT/POST, Tryton
JSON-RPC writes (children through the party's one2many, as Tryton's client saves a form).

Deletions: Stripe and Zendesk report them (events, ticket export; the demo servers offer no
customer / organization delete). A *hard* delete in Tryton (a draft invoice removed) leaves no
trace an incremental query can see; the engine finds it through its periodic id check
(``Engine.id_check_every``), so a change set holding one runs engine A with that check due —
which is part of the property: incremental plus the due id check == full.

History only an incremental refresh can see (a support tier change, seen as a before and an
after) is left out of the record comparison and asserted on its own.

One demo company serves every example (module scope): changes accumulate, which is fine since
each example compares a full and an incremental refresh of the same moment.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import tempfile
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from services.core.domain import SyncException, System, Tier
from services.core.reconcile import Snapshot, reconcile
from services.core.sysdata import Kind, SystemData
from services.demo.environment import DemoEnvironment, DemoOptions, wait_until_answering
from services.demo.faults import FaultConfig
from services.demo.zendesk.incremental import EXPORT_LAG
from services.engine import Engine, RefreshMode
from services.io.config import Profile
from services.io.http import HttpPolicy
from services.store.storage import Storage

pytestmark = pytest.mark.slow

ANCHOR = 1_780_000_000  # fixed: the same company on every run
CUSTOMERS = 60  # the smallest size with every rule planted
#: no server limits and no client pacing: this file is about what is fetched, not how fast
NO_LIMITS = {s: FaultConfig() for s in System}
UNPACED = {s: HttpPolicy(rate_per_second=None, concurrency=4) for s in System}
UNIQUE = itertools.count(1)


@pytest.fixture(scope="module")
def demo() -> Iterator[DemoEnvironment]:
    opts = DemoOptions(customers=CUSTOMERS, seed=7, anchor=ANCHOR, faults=dict(NO_LIMITS))
    env = DemoEnvironment(opts).start()
    asyncio.run(wait_until_answering(env.urls))
    yield env
    env.stop()


# -- comparing two snapshots --------------------------------------------------------------------
def only_incremental_history(system: System, kind: Kind, key: str) -> bool:
    """Facts an incremental refresh records and a full one cannot: a support tier change
    (``services.io.connectors.zendesk``: the organization's tier before and after)."""
    return system is System.SUPPORT and kind is Kind.EVENT and key.startswith("tier-changed:")


def snapshot_differences(incremental: dict[System, SystemData], full: dict[System, SystemData]) -> list[str]:
    """Every difference, record by record: ``[]`` when equal (history only an incremental
    refresh can see left out)."""
    out: list[str] = []
    assert set(incremental) == set(full) == set(System)
    for system in System:
        for kind in Kind:
            a = {k: v for k, v in incremental[system].table(kind).items()
                 if not only_incremental_history(system, kind, k)}
            b = full[system].table(kind)
            for key in sorted(a.keys() - b.keys()):
                out.append(f"{system.value} {kind.value} {key}: only in the incremental snapshot: {a[key]!r}")
            for key in sorted(b.keys() - a.keys()):
                out.append(f"{system.value} {kind.value} {key}: only in the full snapshot: {b[key]!r}")
            for key in sorted(a.keys() & b.keys()):
                if a[key] != b[key]:
                    out.append(f"{system.value} {kind.value} {key}:\n    incremental {a[key]!r}\n"
                               f"    full        {b[key]!r}")
    return out


def exception_facts(exceptions: list[SyncException]) -> list[tuple[Any, ...]]:
    return sorted((e.id, e.rule, e.severity.value, e.owner.value, e.customer_id, e.object_id, e.summary,
                   repr(e.sides), e.fix_actions) for e in exceptions)


# -- changes through the vendors' APIs ----------------------------------------------------------
@dataclass
class Apis:
    """HTTP clients for the three demo servers, as a third-party client would use them."""

    env: DemoEnvironment
    profile: Profile
    client: httpx.AsyncClient
    tryton_auth: str = ""
    tryton_context: dict[str, Any] = field(default_factory=dict)
    rpc_id: int = 0
    #: a hard delete happened (only the engine's id check finds it)
    hard_delete: bool = False
    #: support organizations whose tier this round changed (id -> (before, after))
    tier_changes: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)
    #: organizations created this round (no "before" the engine could have seen)
    created_orgs: set[int] = field(default_factory=set)
    applied: list[str] = field(default_factory=list)
    #: parties this example deactivated, latest last
    deactivated: list[int] = field(default_factory=list)

    def unique(self) -> int:
        """A number no earlier change used (names must stay unique across examples)."""
        return next(UNIQUE)

    # billing
    async def stripe(self, path: str, data: dict[str, str]) -> dict[str, Any]:
        conn = self.profile.connections[System.BILLING]
        r = await self.client.post(f"{conn.url}{path}", data=data, auth=(conn.secret("api_key"), ""))
        assert r.status_code == 200, (path, data, r.text)
        body: dict[str, Any] = r.json()
        return body

    # support
    async def zendesk(self, method: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        conn = self.profile.connections[System.SUPPORT]
        r = await self.client.request(method, f"{conn.url}/api/v2{path}", json=body,
                                      auth=(f"{conn.settings['email']}/token", conn.secret("api_token")))
        assert r.status_code in (200, 201), (path, body, r.text)
        answer: dict[str, Any] = r.json()
        return answer

    # ERP
    async def tryton(self, model_method: str, *params: Any, allow_user_error: bool = False) -> Any:
        conn = self.profile.connections[System.ERP]
        url = f"{conn.url}/{conn.settings['database']}/rpc/"
        if not self.tryton_auth:
            self.rpc_id += 1
            r = await self.client.post(url, json={"id": self.rpc_id, "method": "common.db.login", "params": [
                conn.settings["login"], {"password": conn.secret("password")}, "en"]})
            uid, session = r.json()["result"][:2]
            token = base64.b64encode(f"{conn.settings['login']}:{uid}:{session}".encode()).decode()
            self.tryton_auth = f"Session {token}"
            company = min(self.env.dataset.erp.tables["company.company"])
            self.tryton_context = {"company": company, "language": "en"}
        self.rpc_id += 1
        r = await self.client.post(url, json={"id": self.rpc_id, "method": f"model.{model_method}",
                                              "params": [*params, self.tryton_context]},
                                   headers={"Authorization": self.tryton_auth})
        assert r.status_code == 200, (model_method, params, r.text)
        answer = r.json()
        if "error" in answer:
            assert allow_user_error and answer["error"][0] in ("UserError", "UserWarning"), (model_method, answer)
            return None
        return answer["result"]


def pick(items: list[Any], index: int) -> Any:
    return items[index % len(items)] if items else None


Op = Callable[[Apis, int, int], Awaitable[str | None]]


# billing: customers and subscriptions
def live_customers(api: Apis) -> list[str]:
    return sorted(cid for cid, c in api.env.dataset.billing.customers.items() if not c.deleted)


def open_subscriptions(api: Apis) -> list[Any]:
    subs = api.env.dataset.billing.subscriptions.values()
    return sorted((s for s in subs if s.status not in ("canceled", "incomplete_expired") and s.items),
                  key=lambda s: s.id)


async def billing_rename(api: Apis, a: int, b: int) -> str | None:
    cid = pick(live_customers(api), a)
    await api.stripe(f"/v1/customers/{cid}", {"name": f"Renamed customer {b} {api.unique()}"})
    return f"billing: rename {cid}"


async def billing_email(api: Apis, a: int, b: int) -> str | None:
    cid = pick(live_customers(api), a)
    await api.stripe(f"/v1/customers/{cid}", {"email": f"ops{b}.{api.unique()}@example.org"})
    return f"billing: e-mail of {cid}"


async def billing_country(api: Apis, a: int, b: int) -> str | None:
    cid = pick(live_customers(api), a)
    country = ("US", "DE", "FR", "GB", "NL")[b % 5]
    await api.stripe(f"/v1/customers/{cid}", {"address[country]": country})
    return f"billing: country of {cid} -> {country}"


async def billing_tax_id(api: Apis, a: int, b: int) -> str | None:
    cid = pick(live_customers(api), a)
    await api.stripe(f"/v1/customers/{cid}", {"metadata[tax_id]": f"TX{b:05d}"})
    return f"billing: tax id of {cid}"


async def billing_quantity(api: Apis, a: int, b: int) -> str | None:
    sub = pick(open_subscriptions(api), a)
    if sub is None:
        return None
    await api.stripe(f"/v1/subscriptions/{sub.id}", {"items[0][id]": sub.items[0].id,
                                                     "items[0][quantity]": str(1 + b % 9)})
    return f"billing: quantity of {sub.id}"


async def billing_plan(api: Apis, a: int, b: int) -> str | None:
    sub = pick(open_subscriptions(api), a)
    if sub is None:
        return None
    prices = api.env.dataset.billing.prices
    current = prices[sub.items[0].price]
    others = sorted(p.id for p in prices.values()
                    if p.active and p.currency == current.currency and p.id != current.id)
    price = pick(others, b)
    if price is None:
        return None
    await api.stripe(f"/v1/subscriptions/{sub.id}", {"items[0][id]": sub.items[0].id, "items[0][price]": price})
    return f"billing: plan of {sub.id} -> {prices[price].lookup_key}"


async def billing_cancel(api: Apis, a: int, b: int) -> str | None:
    sub = pick(open_subscriptions(api), a)
    if sub is None:
        return None
    cancel = "false" if sub.cancel_at_period_end else "true"
    await api.stripe(f"/v1/subscriptions/{sub.id}", {"cancel_at_period_end": cancel})
    return f"billing: cancel_at_period_end={cancel} on {sub.id}"


async def billing_new_customer(api: Apis, a: int, b: int) -> str | None:
    n = api.unique()
    created = await api.stripe("/v1/customers", {"name": f"Newco {b} {n} Ltd", "email": f"new{n}@newco.example",
                                                 "address[country]": "DE"})
    if a % 2:  # with a paid subscription: an invoice and its events too
        price = pick(sorted(p.id for p in api.env.dataset.billing.prices.values() if p.active), b)
        await api.stripe("/v1/subscriptions", {"customer": created["id"], "items[0][price]": price})
    return f"billing: new customer {created['id']}" + (" with a subscription" if a % 2 else "")


async def billing_new_subscription(api: Apis, a: int, b: int) -> str | None:
    cid = pick(live_customers(api), a)
    price = pick(sorted(p.id for p in api.env.dataset.billing.prices.values() if p.active), b)
    await api.stripe("/v1/subscriptions", {"customer": cid, "items[0][price]": price})
    return f"billing: new subscription for {cid}"


# support: organizations and tickets
def organizations(api: Apis) -> list[int]:
    return sorted(api.env.dataset.support.organizations)


async def support_rename(api: Apis, a: int, b: int) -> str | None:
    oid = pick(organizations(api), a)
    await api.zendesk("PUT", f"/organizations/{oid}.json",
                      {"organization": {"name": f"Organization {oid} v{api.unique()}"}})
    return f"support: rename {oid}"


async def support_tier(api: Apis, a: int, b: int) -> str | None:
    oid = pick(organizations(api), a)
    org = api.env.dataset.support.organizations[oid]
    before = (org.get("organization_fields") or {}).get("support_tier")
    tier = [t.value for t in Tier][b % len(Tier)]
    await api.zendesk("PUT", f"/organizations/{oid}.json",
                      {"organization": {"organization_fields": {"support_tier": tier}}})
    if oid not in api.created_orgs:  # an organization the engine held before this round
        first_before = api.tier_changes.get(str(oid), (before, tier))[0]
        api.tier_changes[str(oid)] = (first_before, tier)
    return f"support: tier of {oid} {before} -> {tier}"


async def support_relink(api: Apis, a: int, b: int) -> str | None:
    oid = pick(organizations(api), a)
    held = set(api.env.dataset.support.orgs_by_external_id)
    free = [cid for cid in live_customers(api) if cid not in held]
    target = None if b % 3 == 0 else pick(free, b)
    await api.zendesk("PUT", f"/organizations/{oid}.json", {"organization": {"external_id": target}})
    return f"support: external id of {oid} -> {target}"


async def support_new_organization(api: Apis, a: int, b: int) -> str | None:
    held = set(api.env.dataset.support.orgs_by_external_id)
    free = [cid for cid in live_customers(api) if cid not in held]
    target = pick(free, a) if a % 2 else None
    n = api.unique()
    tier = [t.value for t in Tier][b % len(Tier)]
    body: dict[str, Any] = {"name": f"New organization {n}", "organization_fields": {"support_tier": tier}}
    if target:
        body["external_id"] = target
    created = await api.zendesk("POST", "/organizations.json", {"organization": body})
    api.created_orgs.add(created["organization"]["id"])
    return f"support: new organization {created['organization']['id']} for {target}"


async def support_ticket(api: Apis, a: int, b: int) -> str | None:
    oid = pick(organizations(api), a)
    created = await api.zendesk("POST", "/tickets.json", {"ticket": {
        "subject": f"Question {b}", "comment": {"body": f"Help with {b}, please."}, "organization_id": oid}})
    return f"support: ticket {created['ticket']['id']} for organization {oid}"


# ERP: parties (with their identifiers, addresses, e-mails), invoices, subscriptions
def erp_table(api: Apis, model: str) -> dict[int, dict[str, Any]]:
    return api.env.dataset.erp.tables[model]


def parties(api: Apis) -> list[int]:
    company = {c["party"] for c in erp_table(api, "company.company").values()}
    return sorted(pid for pid, p in erp_table(api, "party.party").items() if p.get("active") and pid not in company)


async def erp_rename(api: Apis, a: int, b: int) -> str | None:
    pid = pick(parties(api), a)
    await api.tryton("party.party.write", [pid], {"name": f"Party {pid} v{api.unique()}"})
    return f"erp: rename party {pid}"


async def erp_code(api: Apis, a: int, b: int) -> str | None:
    pid = pick(parties(api), a)
    return await _set_code(api, pid, b)


async def erp_code_inactive(api: Apis, a: int, b: int) -> str | None:
    """An inactive party's code changes (its invoices and subscriptions stay in the ERP)."""
    pid = pick(inactive_parties(api), a)
    if pid is None:
        return None
    return await _set_code(api, pid, b)


async def _set_code(api: Apis, pid: int, b: int) -> str | None:
    held = {p.get("code") for p in erp_table(api, "party.party").values()}
    free = [cid for cid in live_customers(api) if cid not in held]
    code = f"legacy-{api.unique()}" if b % 2 else pick(free, b)
    if code is None:
        return None
    await api.tryton("party.party.write", [pid], {"code": code})
    return f"erp: code of party {pid} -> {code}"


async def erp_deactivate(api: Apis, a: int, b: int) -> str | None:
    pid = pick(parties(api), a)
    await api.tryton("party.party.write", [pid], {"active": False})
    api.deactivated.append(pid)
    return f"erp: deactivate party {pid}"


def inactive_parties(api: Apis) -> list[int]:
    """Inactive parties, those this example deactivated first (so an explicit example can
    name them whatever earlier examples left behind)."""
    table = erp_table(api, "party.party")
    mine = [pid for pid in dict.fromkeys(reversed(api.deactivated)) if not table[pid].get("active")]
    return mine + sorted(pid for pid, p in table.items() if not p.get("active") and pid not in mine)


async def erp_reactivate(api: Apis, a: int, b: int) -> str | None:
    pid = pick(inactive_parties(api), a)
    if pid is None:
        return None
    await api.tryton("party.party.write", [pid], {"active": True})
    return f"erp: reactivate party {pid}"


async def erp_new_party(api: Apis, a: int, b: int) -> str | None:
    held = {p.get("code") for p in erp_table(api, "party.party").values()}
    free = [cid for cid in live_customers(api) if cid not in held]
    code = pick(free, a) if a % 2 else None  # linked to a billing customer, or unlinked
    n = api.unique()
    values: dict[str, Any] = {
        "name": f"New party {n} GmbH",
        "addresses": [["create", [{"country": pick(sorted(erp_table(api, "country.country")), b)}]]],
        "contact_mechanisms": [["create", [{"type": "email", "value": f"party{n}@example.org"}]]],
    }
    if code:
        values["code"] = code
    if b % 2:
        values["identifiers"] = [["create", [{"code": f"DE{n:09d}"}]]]
    created = await api.tryton("party.party.create", [values])
    return f"erp: new party {created[0]} ({code or 'unlinked'})"


async def erp_tax_id(api: Apis, a: int, b: int) -> str | None:
    pid = pick(parties(api), a)
    idents = erp_table(api, "party.party")[pid].get("identifiers") or []
    action: list[Any] = (["write", [idents[0]], {"code": f"DE{b:09d}"}] if idents
                         else ["create", [{"code": f"DE{b:09d}"}]])
    await api.tryton("party.party.write", [pid], {"identifiers": [action]})
    return f"erp: tax id of party {pid}"


async def erp_country(api: Apis, a: int, b: int) -> str | None:
    pid = pick(parties(api), a)
    addresses = erp_table(api, "party.party")[pid].get("addresses") or []
    country = pick(sorted(erp_table(api, "country.country")), b)
    action: list[Any] = (["write", [addresses[0]], {"country": country}] if addresses
                         else ["create", [{"country": country}]])
    await api.tryton("party.party.write", [pid], {"addresses": [action]})
    return f"erp: country of party {pid}"


async def erp_email(api: Apis, a: int, b: int) -> str | None:
    pid = pick(parties(api), a)
    mechanisms = erp_table(api, "party.contact_mechanism")
    emails = [m for m in erp_table(api, "party.party")[pid].get("contact_mechanisms") or []
              if mechanisms.get(m, {}).get("type") == "email"]
    value = f"erp{b}.{api.unique()}@example.org"
    action: list[Any] = (["write", [emails[0]], {"value": value}] if emails
                         else ["create", [{"type": "email", "value": value}]])
    await api.tryton("party.party.write", [pid], {"contact_mechanisms": [action]})
    return f"erp: e-mail of party {pid}"


def draft_invoices(api: Apis) -> list[int]:
    return sorted(i for i, inv in erp_table(api, "account.invoice").items()
                  if inv.get("state") == "draft" and not inv.get("number") and inv.get("type") == "out")


async def erp_delete_draft(api: Apis, a: int, b: int) -> str | None:
    iid = pick(draft_invoices(api), a)
    if iid is None:
        return None
    await api.tryton("account.invoice.delete", [iid])
    api.hard_delete = True
    return f"erp: delete draft invoice {iid}"


async def erp_post_draft(api: Apis, a: int, b: int) -> str | None:
    iid = pick(draft_invoices(api), a)
    if iid is None:
        return None
    # the strict sequence may refuse a date before the latest posting: then nothing changes
    done = await api.tryton("account.invoice.post", [iid], allow_user_error=True)
    return f"erp: post draft invoice {iid}" + ("" if done is not None or iid not in draft_invoices(api)
                                                else " (refused)")


async def erp_subscription_quantity(api: Apis, a: int, b: int) -> str | None:
    subs = sorted(s for s, rec in erp_table(api, "sale.subscription").items() if rec.get("lines"))
    sid = pick(subs, a)
    if sid is None:
        return None
    line = erp_table(api, "sale.subscription")[sid]["lines"][0]
    await api.tryton("sale.subscription.write", [sid], {"lines": [["write", [line], {"quantity": float(1 + b % 7)}]]})
    return f"erp: quantity of subscription {sid}"


OPS: dict[str, Op] = {
    "billing.rename": billing_rename, "billing.email": billing_email, "billing.country": billing_country,
    "billing.tax_id": billing_tax_id, "billing.quantity": billing_quantity, "billing.plan": billing_plan,
    "billing.cancel": billing_cancel, "billing.new_customer": billing_new_customer,
    "billing.new_subscription": billing_new_subscription,
    "support.rename": support_rename, "support.tier": support_tier, "support.relink": support_relink,
    "support.new_organization": support_new_organization, "support.ticket": support_ticket,
    "erp.rename": erp_rename, "erp.code": erp_code, "erp.code_inactive": erp_code_inactive,
    "erp.deactivate": erp_deactivate,
    "erp.reactivate": erp_reactivate, "erp.new_party": erp_new_party, "erp.tax_id": erp_tax_id,
    "erp.country": erp_country, "erp.email": erp_email, "erp.delete_draft": erp_delete_draft,
    "erp.post_draft": erp_post_draft, "erp.subscription_quantity": erp_subscription_quantity,
}

Change = tuple[str, int, int]  # (operation, two numbers choosing its target and value)
change_sets = st.lists(st.tuples(st.sampled_from(sorted(OPS)), st.integers(0, 999), st.integers(0, 999)),
                       min_size=1, max_size=8)
#: one to three rounds of changes, each followed by an incremental refresh of engine A
rounds_of_changes = st.lists(change_sets, min_size=1, max_size=3)


# -- the property ---------------------------------------------------------------------------------
def advance_demo_clock(env: DemoEnvironment, by: timedelta) -> None:
    """Move the demo servers' shared clock forward (``DemoEnvironment.now`` is the anchor plus
    the time elapsed since its start: an earlier start is a later now)."""
    before = env.now()
    env._started -= by.total_seconds()
    assert env.now() - before >= by


async def full_then_incremental_vs_full(env: DemoEnvironment, rounds: list[list[Change]], workdir: Path) -> None:
    profile = env.profile()

    def engine_over(path: Path) -> Engine:
        return Engine.from_profile(profile, Storage.open_path(path), policies=UNPACED, clock=env.now)

    async def closed(engine: Engine) -> None:
        await engine.aclose()
        engine.storage.close()

    # A: full refresh, stored, closed
    a = engine_over(workdir / "a.db")
    await a.load()
    first = await a.refresh(RefreshMode.FULL)
    assert first.ok, [o.error_text for o in first.failed]
    await closed(a)

    #: organization -> the tier changes engine A must have recorded, oldest first
    tier_facts: dict[str, list[str]] = {}
    async with httpx.AsyncClient(timeout=30) as client:
        api = Apis(env, profile, client)
        for number, changes in enumerate(rounds, 1):
            # the changes, through the vendors' APIs
            api.hard_delete, api.tier_changes, api.created_orgs = False, {}, set()
            api.applied.append(f"-- round {number}")
            for name, x, y in changes:
                done = await OPS[name](api, x, y)
                if done:
                    api.applied.append(done)

            # the next refresh comes a little later: past Zendesk's export lag (the export
            # leaves out the most recent minute, services.demo.zendesk.incremental.EXPORT_LAG), so a
            # full export holds every change; else a ticket an incremental refresh finds by
            # search (an organization relinked) is not in a full refresh *yet* -- both converge
            # a minute later
            advance_demo_clock(env, EXPORT_LAG + timedelta(seconds=5))

            # A reopened from its stored snapshot, refreshed incrementally (the id check due
            # only when a hard delete needs it)
            if number > 1:
                await closed(a)
            a = engine_over(workdir / "a.db")
            a.id_check_every = timedelta(0) if api.hard_delete else timedelta(days=365)
            await a.load()
            assert set(a.data) == set(System)
            report = await a.refresh(RefreshMode.AUTO)
            assert report.ok, [o.error_text for o in report.failed]
            assert {s: o.mode for s, o in report.outcomes.items()} == dict.fromkeys(System, "incremental")
            for oid, (before, after) in api.tier_changes.items():
                if before != after:
                    tier_facts.setdefault(oid, []).append(f"support tier {before or 'none'} -> {after or 'none'}")

    # B: a fresh storage, full refresh
    b = engine_over(workdir / "b.db")
    await b.load()
    full = await b.refresh(RefreshMode.FULL)
    assert full.ok, [o.error_text for o in full.failed]

    applied = "\n  ".join(api.applied) or "(no change)"
    in_memory = snapshot_differences(a.data, b.data)
    assert not in_memory, f"changes:\n  {applied}\ndifferences:\n" + "\n".join(in_memory[:20])
    stored = {s: a.storage.load_system(s) for s in System}  # what the next launch reads
    on_disk = snapshot_differences(stored, b.data)
    assert not on_disk, f"changes:\n  {applied}\nstored differs:\n" + "\n".join(on_disk[:20])

    # the history only an incremental refresh sees: a tier-changed fact per organization and
    # refresh that saw its tier change, and no other
    recorded: dict[str, list[str]] = {}
    for key, fact in sorted(a.data[System.SUPPORT].events.items(), key=lambda kv: kv[1].at):
        if key.startswith("tier-changed:"):
            recorded.setdefault(key.split(":")[1], []).append(fact.summary)
    assert recorded == tier_facts, applied

    # the same exceptions, at the same moment
    now: datetime = env.now()
    from_incremental = reconcile(Snapshot(dict(a.data)), a.config, now)
    from_full = reconcile(Snapshot(dict(b.data)), b.config, now)
    assert exception_facts(from_incremental.exceptions) == exception_facts(from_full.exceptions), applied
    await closed(a)
    await closed(b)


@settings(max_examples=20, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(rounds=rounds_of_changes)
@example(rounds=[[("billing.rename", 0, 1), ("support.tier", 0, 1), ("erp.rename", 0, 1)]])
# tickets follow a relinked organization; invoices and subscriptions a relinked party
@example(rounds=[[("support.relink", 3, 1), ("support.ticket", 3, 2)], [("erp.code", 5, 0), ("erp.tax_id", 5, 2)]])
@example(rounds=[[("erp.delete_draft", 0, 0), ("erp.deactivate", 1, 0)]])  # deletions
@example(rounds=[[("erp.deactivate", 2, 0), ("erp.reactivate", 0, 0), ("erp.new_party", 1, 1)]])
# regression: a party given a non-billing code and deactivated in the same window kept its
# invoices and subscriptions under the old customer id (only live parties were re-linked)
@example(rounds=[[("erp.code", 4, 1), ("erp.deactivate", 4, 0)]])
# regression: the same for a party whose code changed while inactive (not held: nothing to
# compare with), then for one reactivated with a new code
@example(rounds=[[("erp.deactivate", 6, 0)], [("erp.code_inactive", 0, 1)]])
@example(rounds=[[("erp.deactivate", 7, 0)], [("erp.code_inactive", 0, 1), ("erp.reactivate", 0, 0)]])
@example(rounds=[[("billing.new_customer", 1, 2), ("billing.plan", 2, 3)], [("billing.cancel", 2, 0)]])
def test_incremental_refresh_equals_full_refresh(demo: DemoEnvironment, rounds: list[list[Change]]) -> None:
    with tempfile.TemporaryDirectory(prefix="syncdesk-equivalence-") as tmp:
        asyncio.run(full_then_incremental_vs_full(demo, rounds, Path(tmp)))
