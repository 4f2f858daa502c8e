"""The "could not read" list: how a refresh's quarantine folds into a system's data and its stored
snapshot (full refreshes replace it, incremental ones add to it and settle what reads again),
the intake that refuses a silent overwrite, and the migration that adds its table."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from services.core.domain import Customer, ExternalRef, Invoice, InvoiceStatus, Money, System
from services.core.sysdata import Delta, Intake, Kind, Quarantined, SystemData
from services.store.storage import SCHEMA_HEAD, Storage

AT = datetime(2026, 1, 1, tzinfo=UTC)
B = System.BILLING


def invoice(iid: str, total: str = "10") -> Invoice:
    return Invoice(ExternalRef(B, "invoice", iid), "cus_1", InvoiceStatus.PAID, Money(Decimal(total), "EUR"))


def q(kind: str, rid: str, reason: str = "created: out of range") -> Quarantined:
    return Quarantined(B, kind, rid, reason)


def test_the_intake_refuses_a_silent_overwrite_and_keeps_the_same_content_twice() -> None:
    intake = Intake(B)
    table: dict[str, Invoice] = {}
    assert intake.put(table, Kind.INVOICE, "in_1", invoice("in_1"))
    assert intake.put(table, Kind.INVOICE, "in_1", invoice("in_1"))  # the same content again: fine
    assert intake.put(table, Kind.INVOICE, "in_2", invoice("in_2"))
    assert not intake.put(table, Kind.INVOICE, "in_2", invoice("in_2", "11"))  # other content: conflict
    assert not intake.put(table, Kind.INVOICE, "in_2", invoice("in_2"))  # and it stays one
    assert set(table) == {"in_1"}
    (entry,) = intake.quarantined.values()
    assert (entry.kind, entry.record_id) == ("invoice", "in_2")
    assert "listed twice with different content (total differs)" in entry.reason
    # a newer version supersedes (an incremental stream), an older one listed after is ignored
    def newer(old: Invoice, new: Invoice) -> bool:  # here: a larger total is a later version
        return new.total.amount > old.total.amount

    assert intake.put(table, Kind.INVOICE, "in_3", invoice("in_3", "1"), newer=newer)
    assert intake.put(table, Kind.INVOICE, "in_3", invoice("in_3", "2"), newer=newer)
    assert intake.put(table, Kind.INVOICE, "in_3", invoice("in_3", "1"), newer=newer)
    assert table["in_3"].total.amount == 2 and len(intake.quarantined) == 1


def test_reasons_are_one_line_and_masked() -> None:
    intake = Intake(B)
    intake.bad("invoice", "in_9", "total:\nInput should be an integer\x1b[2J")
    intake.bad("invoice", None, "id missing")
    reasons = {e.record_id: e.reason for e in intake.quarantined.values()}
    assert "\n" not in reasons["in_9"] and reasons["?"] == "id missing"


def test_an_incremental_refresh_adds_and_settles_entries() -> None:
    data = SystemData(B, invoices={"in_1": invoice("in_1")},
                      quarantined={("invoice", "in_2"): q("invoice", "in_2"),
                                   ("product", "prod_1"): q("product", "prod_1"),
                                   ("invoice", "in_3"): q("invoice", "in_3")})
    upserts = SystemData(B, invoices={"in_2": invoice("in_2")},  # reads again now
                         quarantined={("invoice", "in_1"): q("invoice", "in_1", "total: wrong type")})
    delta = Delta(upserts, {Kind.INVOICE: {"in_3"}}, readable={("product", "prod_1")})
    after = data.applied(delta)
    assert set(after.quarantined) == {("invoice", "in_1")}
    assert set(after.invoices) == {"in_1", "in_2"}  # in_1: the version read before stays
    assert len(data.quarantined) == 3  # copy on write: the data handed out is unchanged


def test_the_list_is_stored_with_the_snapshot(tmp_path: Path) -> None:
    db = tmp_path / "snap.db"
    storage = Storage.open_path(db)
    full = SystemData(B, invoices={"in_1": invoice("in_1")},
                      quarantined={("invoice", "in_2"): q("invoice", "in_2"), ("event", "evt_1"): q("event", "evt_1")})
    storage.replace_system(full, {}, "http://billing", AT)
    delta = Delta(SystemData(B, invoices={"in_2": invoice("in_2")},
                             quarantined={("customer", "cus_9"): q("customer", "cus_9", "name: wrong type")}))
    storage.apply_delta(B, delta, {}, "http://billing", AT)
    storage.close()
    reopened = Storage.open_path(db)
    loaded = reopened.load_system(B)
    assert set(loaded.quarantined) == {("event", "evt_1"), ("customer", "cus_9")}
    assert loaded.quarantined[("customer", "cus_9")].reason == "name: wrong type"
    assert reopened.quarantined(System.ERP) == {}
    # a full refresh replaces the list
    reopened.replace_system(SystemData(B), {}, "http://billing", AT)
    assert reopened.quarantined(B) == {}
    reopened.close()


def test_a_database_of_the_previous_schema_gains_the_table_and_keeps_its_records(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    storage = Storage.open_path(db)
    storage.replace_system(SystemData(B, invoices={"in_1": invoice("in_1")}), {}, "http://billing", AT)
    storage.close()
    with sqlite3.connect(db) as conn:  # back to 0003: before the quarantine table (and the later ones)
        conn.execute("DROP TABLE quarantined_record")
        conn.execute("DROP TABLE exception_mark")
        conn.execute("DROP INDEX ix_audit_entry_exception_id")  # 0006's
        conn.execute("DROP INDEX ix_audit_entry_at")
        conn.execute("UPDATE alembic_version SET version_num = '0003'")
    migrated = Storage.open_path(db)
    assert set(migrated.load_system(B).invoices) == {"in_1"} and migrated.quarantined(B) == {}
    migrated.close()
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone()[0] == SCHEMA_HEAD
    assert (tmp_path / "old.db.bak-0003").exists()


def test_a_customer_record_differs_by_its_fields() -> None:
    intake = Intake(B)
    table: dict[str, Customer] = {}
    ref = ExternalRef(B, "customer", "cus_1")
    intake.put(table, Kind.CUSTOMER, "cus_1", Customer(ref, "cus_1", "Acme", email="a@acme.test"))
    intake.put(table, Kind.CUSTOMER, "cus_1", Customer(ref, "cus_1", "Acme Ltd", email="b@acme.test"))
    assert "(name, email differ)" in intake.quarantined[("customer", "cus_1")].reason
