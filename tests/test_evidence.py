"""The evidence pack (services.evidence, app/evidence_pdf.py, ``syncdesk evidence``): built from a
demo world where fixes were made (the action service against the demo servers over loopback, a
temp audit log), the PDF turned back into text with poppler's ``pdftotext`` (installed by
``.ci/run``; a missing one fails these tests), the chain recomputed from the JSON twin with an
implementation of the test's own, a tampered log recorded as such, hostile names printed as
plain text."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from PySide6.QtWidgets import QApplication

from app.evidence_cli import write_pack
from services.actions.model import ActionKind, ActionRequest, ActionStatus
from services.core.domain import System
from services.engine import RefreshMode
from services.evidence.collect import collect_pack
from services.evidence.pack import EvidencePack
from tests.services.actions_rig import Rig, make_rig

ROOT = Path(__file__).resolve().parents[1]
#: a name that is markup, a formula, a terminal escape and a right-to-left override at once
HOSTILE = '<b>Bold</b> <img src=x onerror=alert(1)> =HYPERLINK("http://evil.example","x") \x1b[2J \u202eexe.txt Ltd'
#: the hash input, written down here from the design (not imported): the stored values in this order
FIELDS = ["seq", "at", "operator", "role", "action_id", "action_kind", "phase", "exception_id", "customer_id",
          "target_system", "request", "before", "after", "outcome", "error", "reason", "prev_hash"]
#: a subprocess (a demo world's refresh and a PDF) finishes well within this on a loaded 2-core machine
RUN_TIMEOUT = 240


def pdftotext(pdf: Path) -> str:
    """The PDF's text as poppler reads it. pdftotext missing is a failure (``.ci/run`` installs it)."""
    tool = shutil.which("pdftotext")
    assert tool is not None, "pdftotext (poppler-utils) is not installed: .ci/run installs it with apt-get"
    done = subprocess.run([tool, "-enc", "UTF-8", str(pdf), "-"], capture_output=True, timeout=60, check=True)
    return done.stdout.decode("utf-8")


def squeezed(text: str) -> str:
    """Text without whitespace: a hash wrapped over two lines reads whole again."""
    return "".join(text.split())


def recompute(entry: dict[str, Any]) -> str:
    """An entry's hash, by the test's own code (the pack's recipe, read as a third party would)."""
    data = json.dumps([entry[f] for f in FIELDS], separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return hashlib.sha256(data).hexdigest()


def db_entries(db: Path, customers: list[str]) -> list[dict[str, Any]]:
    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    try:
        marks = ",".join("?" * len(customers))
        return [dict(r) for r in con.execute(f"select * from audit_entry where customer_id in ({marks}) order by seq",
                                             customers)]
    finally:
        con.close()


@dataclass
class World:
    rig: Rig
    hostile: str  # the customer renamed to HOSTILE, with two fixes
    other: str  # another customer, with one fix between them
    loop: asyncio.AbstractEventLoop
    keys: Path  # the world's audit keys (each test's autouse fixture points elsewhere)

    def pack(self, customers: list[str]) -> EvidencePack:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("SYNCDESK_AUDIT_KEY_DIR", str(self.keys))
            return self.loop.run_until_complete(collect_pack(
                self.rig.engine, customers, self.rig.audit_db, generated_by="ada.auditor", source="test demo"))


async def _build_world(tmp: Path) -> tuple[Rig, str, str]:
    rig = await make_rig(tmp, customers=150, seed=3)
    missing = sorted(await rig.open_of("invoice.missing_in_erp"), key=lambda e: e.id)
    assert len(missing) >= 2, "the demo plants invoice.missing_in_erp for two customers"
    first, second = missing[0], missing[1]
    assert first.customer_id and second.customer_id and first.customer_id != second.customer_id
    billing = rig.env.profile().connections[System.BILLING]
    async with httpx.AsyncClient(timeout=10) as client:
        r = await client.post(f"{billing.url}/v1/customers/{first.customer_id}", data={"name": HOSTILE},
                              auth=(billing.secret("api_key"), ""))
        assert r.status_code == 200, r.text
    report = await rig.engine.refresh(RefreshMode.FULL)
    assert report.ok
    await rig.engine.reconcile()
    for exc in (first, second):
        plan = await rig.service.plan(ActionRequest(ActionKind.RETRY, exc.id, reason="evidence test"))
        assert plan.ok, plan.explanation
        result = await rig.service.execute(plan)
        assert result.status is ActionStatus.SUCCEEDED, result
    # a flag on another of the first customer's exceptions: its entries are not consecutive in the log
    await rig.engine.reconcile()
    later = [e for e in await rig.engine.open_exceptions() if e.customer_id == first.customer_id
             and "flag" in e.fix_actions]
    assert later, "the retried invoice leaves an exception that can be flagged (its payment state)"
    plan = await rig.service.plan(ActionRequest(ActionKind.FLAG, later[0].id, reason="check the payment"))
    assert plan.ok, plan.explanation
    assert (await rig.service.execute(plan)).status is ActionStatus.SUCCEEDED
    return rig, first.customer_id, second.customer_id


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    # module scope: the autouse SYNCDESK_HOME / key-folder fixtures are per test, so this world keeps
    # its own audit keys in its temp folder (never a user's)
    tmp, keys = tmp_path_factory.mktemp("evidence"), tmp_path_factory.mktemp("evidence-keys")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SYNCDESK_HOME", str(tmp / "home"))
        patch.setenv("SYNCDESK_AUDIT_KEY_DIR", str(keys))
        patch.delenv("SYNCDESK_AUDIT_WITNESS", raising=False)
        loop = asyncio.new_event_loop()
        try:
            rig, hostile, other = loop.run_until_complete(_build_world(tmp))
        except BaseException:
            loop.close()
            raise
        try:
            yield World(rig, hostile, other, loop, keys)
        finally:
            loop.run_until_complete(rig.close())
            loop.close()


@pytest.fixture(scope="module")
def written(world: World, tmp_path_factory: pytest.TempPathFactory, qapp: QApplication
            ) -> tuple[EvidencePack, Path, Path, str]:
    """The hostile customer's pack written as PDF + JSON, and the PDF's text (rendered under
    pytest-qt's QApplication, as the console renders it: the suite's GUI tests need that one)."""
    out = tmp_path_factory.mktemp("pack")
    pack = world.pack([world.hostile])
    pdf, twin = out / "pack.pdf", out / "pack.json"
    pages = write_pack(pack, pdf, twin)
    assert pages >= 1
    return pack, pdf, twin, pdftotext(pdf)


def test_pdf_holds_every_audit_hash_and_the_packs_sha256(world: World, written: Any) -> None:
    pack, _pdf, twin, text = written
    entries = pack.data["customers"][0]["audit_entries"]
    stored = db_entries(world.rig.audit_db, [world.hostile])
    assert len(stored) == 4, "retry (intent, outcome) and flag (intent, outcome) on this customer"
    assert [e["hash"] for e in entries] == [r["hash"] for r in stored]
    flat = squeezed(text)
    for row in stored:
        assert row["hash"] in flat, f"entry {row['seq']}'s hash is not in the PDF"
        assert row["prev_hash"] in flat, f"entry {row['seq']}'s previous hash is not in the PDF"
    assert hashlib.sha256(twin.read_bytes()).hexdigest() == pack.sha256
    assert pack.sha256 in flat
    pages = text.count("\f")
    assert f"page 1 of {pages}" in text and f"page {pages} of {pages}" in text, "every page is numbered"
    assert "audit log intact: " in text


def test_pdf_holds_identities_timeline_and_both_sides_of_each_exception(world: World, written: Any) -> None:
    pack, _pdf, _twin, text = written
    customer = pack.data["customers"][0]
    flat = squeezed(text)
    assert customer["customer_id"] == world.hostile
    for system in ("billing", "erp", "support"):
        for ident in customer["identities"][system]:
            assert ident in flat
    assert customer["identities"]["billing"] == [world.hostile]
    assert customer["timeline"], "the customer's lifecycle timeline"
    assert any(e["kind"] == "invoice.finalized" for e in customer["timeline"])
    # plain letters, no ligature glyphs: what an auditor searches for ("finalized") is found
    assert "invoice.finalized" in flat and not any(lig in text for lig in "\ufb00\ufb01\ufb02\ufb03\ufb04")
    excs = customer["exceptions"]
    statuses = {x["status"] for x in excs}
    assert statuses == {"open", "closed"}, "the fixed exception is there, closed, with the open ones"
    fixed = next(x for x in excs if x["rule"] == "invoice.missing_in_erp")
    assert fixed["status"] == "closed" and fixed["closed_at"]
    assert {s["system"] for s in fixed["sides"]} == {"billing", "erp"}, "both sides' values"
    assert squeezed(fixed["id"]) in flat
    for side in fixed["sides"]:
        for value in side["values"].values():
            if isinstance(value, str) and value:
                assert squeezed(value) in flat, f"{side['system']} value {value!r} is not in the PDF"


def test_chain_recomputed_from_the_json_twin_by_an_independent_implementation(world: World, written: Any) -> None:
    _pack, _pdf, twin, _text = written
    data = json.loads(twin.read_bytes())
    assert data["hash_recipe"]["fields"] == FIELDS
    entries = data["customers"][0]["audit_entries"]
    assert entries and all(recompute(e) == e["hash"] for e in entries)
    by_seq = {e["seq"]: e for e in entries}
    linked = [s for s in by_seq if s - 1 in by_seq or s == 1]
    assert linked, "consecutive entries (an intent and its outcome) are in the pack"
    for seq in linked:
        assert by_seq[seq]["prev_hash"] == (by_seq[seq - 1]["hash"] if seq > 1 else "0" * 64)
    assert data["customers"][0]["audit_check"] == {"entries": 4, "content_matches": 4,
                                                    "links_checked": len(linked), "links_broken": []}
    # the chain through the other customers' entries, from the whole log: every pack hash is on it
    stored = db_entries(world.rig.audit_db, [world.hostile, world.other])
    everything = {r["seq"]: r for r in stored}
    prev = "0" * 64
    for seq in sorted(everything):
        assert everything[seq]["prev_hash"] == prev and recompute(everything[seq]) == everything[seq]["hash"]
        prev = everything[seq]["hash"]
    assert data["audit_log"]["head"] == {"seq": max(everything), "hash": prev}


def test_the_json_twin_is_attached_to_the_pdf_byte_for_byte(written: Any, tmp_path: Path) -> None:
    pack, pdf, twin, _text = written
    tool = shutil.which("pdfdetach")
    assert tool is not None, "pdfdetach (poppler-utils) is not installed: .ci/run installs it with apt-get"
    out = tmp_path / "attached.json"
    subprocess.run([tool, "-save", "1", "-o", str(out), str(pdf)], check=True, capture_output=True, timeout=60)
    assert out.read_bytes() == twin.read_bytes() == pack.json_bytes


def test_hostile_customer_name_is_printed_as_plain_text(world: World, written: Any) -> None:
    pack, _pdf, twin, text = written
    assert pack.data["customers"][0]["name"] == HOSTILE
    assert json.loads(twin.read_bytes())["customers"][0]["name"] == HOSTILE
    assert twin.read_bytes().isascii(), "the twin is ASCII: every other character a \\u escape"
    assert "<b>Bold</b>" in text and "<img src=x onerror=alert(1)>" in text, "markup is printed, not rendered"
    assert '=HYPERLINK("http://evil.example","x")' in text
    assert "\\x1b[2J" in text and "\\u202eexe.txt Ltd" in text, "controls are shown as visible escapes"
    assert "\u202e" not in text and "\x1b" not in text


def test_a_selection_of_customers_holds_each_and_only_their_entries(world: World, tmp_path: Path,
                                                                    qapp: QApplication) -> None:
    pack = world.pack([world.other, world.hostile, world.other])
    assert [c["customer_id"] for c in pack.data["customers"]] == [world.other, world.hostile]
    for customer in pack.data["customers"]:
        stored = db_entries(world.rig.audit_db, [customer["customer_id"]])
        assert [e["seq"] for e in customer["audit_entries"]] == [r["seq"] for r in stored]
    pdf = tmp_path / "two.pdf"
    write_pack(pack, pdf, tmp_path / "two.json")
    flat = squeezed(pdftotext(pdf))
    for row in db_entries(world.rig.audit_db, [world.other, world.hostile]):
        assert row["hash"] in flat


def test_a_tampered_audit_log_is_recorded_in_the_pack(world: World, tmp_path: Path, qapp: QApplication) -> None:
    db = world.rig.audit_db
    target = db_entries(db, [world.hostile])[1]
    con = sqlite3.connect(db)
    try:
        con.execute("update audit_entry set reason = ? where seq = ?", ("nothing happened here", target["seq"]))
        con.commit()
        pack = world.pack([world.hostile])
    finally:  # put the written value back: the chain is intact again for the other tests
        con.execute("update audit_entry set reason = ? where seq = ?", (target["reason"], target["seq"]))
        con.commit()
        con.close()
    verdict = pack.data["audit_verify"]
    assert verdict["ok"] is False and verdict["first_bad"] == target["seq"]
    assert f"entry {target['seq']} was altered after it was written" in verdict["sentence"]
    entry = next(e for e in pack.data["customers"][0]["audit_entries"] if e["seq"] == target["seq"])
    assert entry["content_matches"] is False and recompute(entry) != entry["hash"]
    pdf = tmp_path / "tampered.pdf"
    write_pack(pack, pdf, tmp_path / "tampered.json")
    text = " ".join(pdftotext(pdf).split())
    assert "audit log NOT intact" in text and f"entry {target['seq']} was altered after it was written" in text
    assert "do not hash to its recorded hash" in text
    assert world.pack([world.hostile]).data["audit_verify"]["ok"] is True, "restored: intact again"


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "main.py", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=RUN_TIMEOUT, env=dict(os.environ))


def test_evidence_command_writes_the_pack_and_reports_a_tampered_log(syncdesk_home: Path, tmp_path: Path) -> None:
    """``fix`` then ``evidence`` on the built-in demo (SYNCDESK_HOME and audit keys: the test's own)."""
    demo = ("--demo", "--customers", "150", "--seed", "3", "-q")
    fixed = _cli("fix", *demo, "--rule", "invoice.missing_in_erp", "--action", "retry", "--limit", "1",
                 "--reason", "evidence command test", "--format", "json")
    assert fixed.returncode == 0, fixed.stderr
    db = syncdesk_home / "demo" / "audit.db"
    customer = db_entries_all(db)[0]["customer_id"]
    pdf = tmp_path / "out.pdf"
    done = _cli("evidence", customer, *demo, "--out", str(pdf))
    assert done.returncode == 0, done.stderr
    twin = pdf.with_suffix(".json")
    sha = hashlib.sha256(twin.read_bytes()).hexdigest()
    assert f"pack SHA-256 {sha}" in done.stdout.splitlines()
    flat = squeezed(pdftotext(pdf))
    assert sha in flat and all(r["hash"] in flat for r in db_entries(db, [customer]))
    con = sqlite3.connect(db)
    con.execute("update audit_entry set outcome = 'failed' where seq = 2")
    con.commit()
    con.close()
    again = _cli("evidence", customer, *demo, "--out", str(pdf), "--json", str(tmp_path / "other.json"))
    assert again.returncode == 1, again.stderr
    assert "audit log NOT intact: entry 2 was altered after it was written" in again.stderr
    assert json.loads((tmp_path / "other.json").read_bytes())["audit_verify"]["ok"] is False
    assert "audit log NOT intact" in " ".join(pdftotext(pdf).split())
    unknown = _cli("evidence", "no such customer anywhere", *demo, "--out", str(tmp_path / "none.pdf"))
    assert unknown.returncode == 2 and not (tmp_path / "none.pdf").exists()


def db_entries_all(db: Path) -> list[dict[str, Any]]:
    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in con.execute("select * from audit_entry order by seq")]
    finally:
        con.close()
