"""The demo world kept on disk: its codec (services/demo/world_codec.py) and its life in a
folder (services/demo/world.py): created as the generator makes it, served, saved after writes
(while still served), reloaded as it was, refused when damaged or in use, reset on request."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import time
from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.core.domain import System
from services.demo.dataset import generate
from services.demo.store import DemoCredentials, DemoDataset
from services.demo.world import (
    WORLD_FILE,
    DemoWorld,
    WorldInUse,
    WorldMismatch,
    WorldUnreadable,
    read_world_meta,
    reset_world,
)
from services.demo.world_codec import (
    VERSION,
    WorldFormatError,
    WorldMeta,
    dump_world,
    encode_value,
    encode_world,
    load_world,
)
from tests.demo.tryton_rig import CTX, Tryton

ANCHOR = 1_714_564_800
#: a generous bound on waiting for the saver thread (it saves 0.5 s after the last write, at
#: most 5 s after the first; a loaded 2-core machine may add seconds): only turns a hang into
#: a failure that says what it waited for
DEADLINE = 60.0


# -- what the stores hold, as one digest per store ----------------------------------------------
def digests(ds: DemoDataset) -> dict[str, str]:
    """A SHA-256 of every store's full ``repr`` (types included: 1 != 1.0 != True, Decimal("1.0")
    != Decimal("1.00"), naive != aware), record order and indexes included."""
    b, e, s = ds.billing, ds.erp, ds.support
    parts: dict[str, Any] = {
        "billing": (b.account_id, b.counter, list(b.products.items()), list(b.prices.items()),
                    list(b.customers.items()), list(b.subscriptions.items()), list(b.invoices.items()), b.events,
                    dict(b.subscriptions_by_customer), dict(b.invoices_by_customer), dict(b.invoices_by_subscription),
                    list(b.idempotency.items())),
        "erp": (e.database, {m: list(t.items()) for m, t in e.tables.items()}, e.next_ids, e.versions, e.passwords,
                {k: {v: sorted(ids) for v, ids in index.items() if ids} for k, index in e.indexes.items()}),
        "support": (s.subdomain, list(s.organizations.items()), list(s.users.items()), list(s.tickets.items()),
                    s.organization_fields, s.next_ids, s.orgs_by_external_id, s.tokens),
        "manifest": ds.manifest,
        "dataset": (ds.customers, ds.seed, ds.anchor, ds.credentials),
    }
    return {k: hashlib.sha256(repr(v).encode()).hexdigest() for k, v in parts.items()}


def meta_of(ds: DemoDataset) -> WorldMeta:
    return WorldMeta(ds.customers, ds.seed, ds.anchor, None, created_at=time.time(), clock=float(ds.anchor))


def round_trip(ds: DemoDataset) -> DemoDataset:
    return load_world(dump_world(encode_world(ds, meta_of(ds))))[0]


def wait_for(condition: Any, what: str) -> None:
    end = time.monotonic() + DEADLINE
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"waited {DEADLINE:.0f} s for {what}")
        time.sleep(0.05)


# -- the codec -----------------------------------------------------------------------------------
def test_codec_round_trip_of_a_generated_dataset_equals_the_original() -> None:
    ds = generate(250, 1, anchor=ANCHOR)
    again = round_trip(ds)
    assert digests(again) == digests(ds)
    # the file never holds a credential (the demo's fixed ones are put back on load)
    text = gzip.decompress(dump_world(encode_world(ds, meta_of(ds)))).decode()
    creds = DemoCredentials()
    for secret in (creds.stripe_api_key, creds.tryton_password, creds.zendesk_token):
        assert secret not in text


def test_tagged_values_come_back_with_their_types_and_stored_text_is_never_read_as_a_tag() -> None:
    value = {
        "decimal": Decimal("10.50"), "aware": datetime(2024, 5, 1, 12, 0, tzinfo=UTC),
        "naive": datetime(2024, 5, 1, 12, 0, 0, 123456), "day": date(2024, 5, 1), "pair": ("a", 1),
        "raw": b"\x00\xff", "float": 0.1, "flag": True, "none": None,
        # text that looks like a tag, keys that are not text, a key starting with "$"
        "looks_like_a_tag": {"$dec": "1"}, "int_keys": {1: "one", 2: [Decimal("2")]}, "$key": "x",
        "nested": [{"$map": [["k", "v"]]}, [Decimal("0.0")]],
    }
    ds = generate(3, 1, anchor=ANCHOR)
    ds.billing.customers[next(iter(ds.billing.customers))].metadata = {"$dec": "not a number"}
    ds.support.organizations[next(iter(ds.support.organizations))]["odd"] = value
    again = round_trip(ds)
    assert again.support.organizations[next(iter(again.support.organizations))]["odd"] == value
    assert repr(again.support.organizations[next(iter(again.support.organizations))]["odd"]) == repr(value)
    assert again.billing.customers[next(iter(again.billing.customers))].metadata == {"$dec": "not a number"}
    assert digests(again) == digests(ds)
    with pytest.raises(TypeError, match="no tag for set"):
        encode_value({"a": {1, 2}})


def test_the_first_world_is_the_generators_dataset(tmp_path: Path) -> None:
    world = DemoWorld.open(tmp_path / "demo", 60, 2, anchor=ANCHOR)
    try:
        assert world.created
        assert digests(world.dataset) == digests(generate(60, 2, anchor=ANCHOR))
    finally:
        world.stop()
    # and the saved file is that same dataset
    loaded, meta = load_world((tmp_path / "demo" / WORLD_FILE).read_bytes())
    assert digests(loaded) == digests(generate(60, 2, anchor=ANCHOR))
    assert (meta.customers, meta.seed, meta.anchor) == (60, 2, ANCHOR)
    # with the default anchor (the moment of creation) too
    other = DemoWorld.open(tmp_path / "other")
    try:
        assert (other.meta.customers, other.meta.seed) == (250, 1)
        assert digests(other.dataset) == digests(generate(250, 1, anchor=other.meta.anchor))
    finally:
        other.stop()


# -- served, written, saved, reloaded ------------------------------------------------------------
def write_to_all_three(world: DemoWorld) -> dict[str, Any]:
    """One write per system over HTTP, as a connector makes them; returns what was written."""
    profile = world.profile()
    creds = world.dataset.credentials
    urls = {s: c.url for s, c in profile.connections.items()}
    customer = sorted(world.dataset.billing.customers)[0]
    org = min(world.dataset.support.organizations)
    party = min(i for i, p in world.dataset.erp.tables["party.party"].items() if p.get("code"))
    with httpx.Client(timeout=30) as http:
        stripe = http.post(f"{urls[System.BILLING]}/v1/customers/{customer}", data={"name": "Renamed Co"},
                           headers={"Idempotency-Key": "world-test-1"}, auth=(creds.stripe_api_key, ""))
        assert stripe.status_code == 200, stripe.text
        token = base64.b64encode(f"{creds.zendesk_email}/token:{creds.zendesk_token}".encode()).decode()
        zendesk = http.put(f"{urls[System.SUPPORT]}/api/v2/organizations/{org}.json",
                           json={"organization": {"notes": "written by the world test"}},
                           headers={"Authorization": f"Basic {token}"})
        assert zendesk.status_code == 200, zendesk.text
        rpc = Tryton(urls[System.ERP], http)
        rpc.login(creds.tryton_login, creds.tryton_password)
        rpc.model("party.party", "write", [party], {"name": "Renamed Party"}, ctx=CTX)
    return {"customer": customer, "org": org, "party": party}


def test_writes_are_saved_while_served_and_the_world_reloads_as_it_was(tmp_path: Path) -> None:
    folder = tmp_path / "demo"
    world = DemoWorld.open(folder, 40, 1, anchor=ANCHOR).start()
    try:
        saved_at = read_world_meta(folder)
        assert saved_at is not None
        written = write_to_all_three(world)

        def on_disk() -> DemoDataset:
            return load_world((folder / WORLD_FILE).read_bytes())[0]

        # saved by the saver thread while still served: a crash from now on loses none of it
        wait_for(lambda: on_disk().billing.customers[written["customer"]].name == "Renamed Co",
                 "the billing write in the saved world")
        wait_for(lambda: digests(on_disk()) == digests(world.dataset), "every write in the saved world")
        disk = on_disk()
        assert disk.erp.tables["party.party"][written["party"]]["name"] == "Renamed Party"
        assert disk.support.organizations[written["org"]]["notes"] == "written by the world test"
        assert "world-test-1" in disk.billing.idempotency  # a replay of the same key answers the same
    finally:
        world.stop()
    before = digests(world.dataset)
    again = DemoWorld.open(folder).start()
    try:
        assert not again.created and digests(again.dataset) == before
        # the reloaded Stripe server replays the saved answer for the same key
        creds = again.dataset.credentials
        replay = httpx.post(f"{again.profile().connections[System.BILLING].url}/v1/customers/{written['customer']}",
                            data={"name": "Renamed Co"}, headers={"Idempotency-Key": "world-test-1"},
                            auth=(creds.stripe_api_key, ""), timeout=30)
        assert replay.headers.get("Idempotent-Replayed") == "true"
    finally:
        again.stop()


def test_the_clock_goes_on_from_the_saved_world_and_never_backwards(tmp_path: Path) -> None:
    folder = tmp_path / "demo"
    world = DemoWorld.open(folder, 5, 1, anchor=ANCHOR).start()
    first = world.now()
    assert abs(first.timestamp() - ANCHOR) < 60  # a new world starts at its anchor
    world.stop()
    # follows real time since creation: a world created 2 hours ago is 2 hours past its anchor
    data = (folder / WORLD_FILE).read_bytes()
    ds, meta = load_world(data)
    doc = encode_world(ds, replace(meta, created_at=meta.created_at - 7200))
    (folder / WORLD_FILE).write_bytes(dump_world(doc))
    later = DemoWorld.open(folder)
    try:
        assert later.now().timestamp() - ANCHOR >= 7200
    finally:
        later.stop()
    # a computer clock set back (creation "in the future") never moves the demo's clock back
    saved = load_world((folder / WORLD_FILE).read_bytes())[1]
    doc = encode_world(ds, replace(saved, created_at=time.time() + 10 * 86400))
    (folder / WORLD_FILE).write_bytes(dump_world(doc))
    back = DemoWorld.open(folder)
    try:
        assert back.now().timestamp() >= saved.clock
    finally:
        back.stop()


# -- refusals -------------------------------------------------------------------------------------
def test_a_damaged_or_other_version_world_is_refused_and_left_as_it_is(tmp_path: Path) -> None:
    folder = tmp_path / "demo"
    DemoWorld.open(folder, 5, 1, anchor=ANCHOR).stop()
    path = folder / WORLD_FILE
    good = path.read_bytes()
    doc = json.loads(gzip.decompress(good))
    cases: dict[str, bytes] = {
        "not gzip": b"garbage",
        "cut short": good[: len(good) // 2],
        "not JSON": gzip.compress(b"{not json"),
        "no billing": gzip.compress(json.dumps({k: v for k, v in doc.items() if k != "billing"}).encode()),
        "unknown tag": gzip.compress(json.dumps({**doc, "manifest": [{"$nope": 1}]}).encode()),
        "bad field": gzip.compress(json.dumps(
            {**doc, "billing": {**doc["billing"], "customers": [{"id": "cus_x", "surprise": 1}]}}).encode()),
    }
    for name, data in cases.items():
        path.write_bytes(data)
        with pytest.raises(WorldUnreadable, match="is damaged") as caught:
            DemoWorld.open(folder)
        assert caught.value.version is None, name
        assert path.read_bytes() == data, f"{name}: the file must be left for the user to decide"
    path.write_bytes(gzip.compress(json.dumps({**doc, "version": VERSION + 1}).encode()))
    with pytest.raises(WorldUnreadable, match="another version of SyncDesk") as other:
        DemoWorld.open(folder)
    assert other.value.version == VERSION + 1
    # a world saved by an earlier SyncDesk, before the ERP had taxes: told as such, not "damaged"
    erp = doc["erp"]
    earlier = {**doc, "erp": {**erp, **{part: {m: v for m, v in erp[part].items() if m != "account.tax"}
                                        for part in ("tables", "next_ids", "versions")}}}
    path.write_bytes(gzip.compress(json.dumps(earlier).encode()))
    with pytest.raises(WorldUnreadable, match="another version of SyncDesk") as older:
        DemoWorld.open(folder)
    assert "'account.tax'" in str(older.value) and "predates" in str(older.value)
    assert "is damaged" not in str(older.value)
    with pytest.raises(WorldFormatError):
        load_world(b"")


def test_other_parameters_for_a_saved_world_are_refused(tmp_path: Path) -> None:
    folder = tmp_path / "demo"
    DemoWorld.open(folder, 5, 1, anchor=ANCHOR).stop()
    with pytest.raises(WorldMismatch, match="has 5 customers, seed 1") as caught:
        DemoWorld.open(folder, 6, None)
    assert (caught.value.customers, caught.value.seed) == (6, 1)
    with pytest.raises(WorldMismatch):
        DemoWorld.open(folder, None, 2)
    same = DemoWorld.open(folder, 5, 1)  # the same values, or none, open it
    same.stop()


def test_one_holder_at_a_time(tmp_path: Path) -> None:
    folder = tmp_path / "demo"
    first = DemoWorld.open(folder, 5, 1, anchor=ANCHOR)
    try:
        with pytest.raises(WorldInUse, match="in use by another SyncDesk process"):
            DemoWorld.open(folder, lock_wait=0.2)
        with pytest.raises(WorldInUse):
            reset_world(folder, lock_wait=0.2)
    finally:
        first.stop()
    DemoWorld.open(folder, lock_wait=0.2).stop()  # let go at stop


def test_reset_starts_a_new_world_and_discards_its_snapshot(tmp_path: Path) -> None:
    folder = tmp_path / "demo"
    world = DemoWorld.open(folder, 7, 3, anchor=ANCHOR)
    world.stop()
    snapshot = folder / "snapshot.db"
    snapshot.write_bytes(b"old snapshot")
    Path(f"{snapshot}-wal").write_bytes(b"old wal")
    old, new = reset_world(folder, discard=[snapshot])
    assert old is not None and (old.customers, old.seed, old.anchor) == (7, 3, ANCHOR)
    assert (new.customers, new.seed) == (7, 3) and new.anchor != ANCHOR  # the old values, a new moment
    assert not snapshot.exists() and not Path(f"{snapshot}-wal").exists()
    assert read_world_meta(folder) == new
    _, bigger = reset_world(folder, 9, None)
    assert (bigger.customers, bigger.seed) == (9, 3)
    # a damaged world can be reset (defaults then)
    (folder / WORLD_FILE).write_bytes(b"garbage")
    old, fresh = reset_world(folder)
    assert old is None and (fresh.customers, fresh.seed) == (250, 1)
