"""The stored customer list a launch shows before the snapshot is decoded: identical to the
rows built from the snapshot, never stale (any record write removes it), and a damaged or
foreign one is ignored, never shown."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest

from services.core.domain import System
from services.core.overview import (
    CustomerRow,
    OverviewFormatError,
    attach_exceptions,
    build_customer_rows,
    decode_rows,
    encode_rows,
    fold,
)
from services.core.sysdata import Delta, SystemData
from services.engine import Engine, RefreshMode
from tests.services.test_engine import demo, make_engine  # noqa: F401  (the demo fixture)

FIELDS = ("customer_id", "name", "email", "tax_id", "country", "erp_party", "erp_code", "support_org",
          "support_name", "status", "plan", "tier", "open_exceptions", "worst", "rules", "search", "unknown")


def as_tuples(rows: list[CustomerRow]) -> list[tuple[Any, ...]]:
    return [tuple(getattr(r, f) for f in FIELDS) for r in rows]


async def stored_rows(engine: Engine) -> list[CustomerRow] | None:
    task = engine._overview_task
    if task is not None:
        await task
    return await engine.cached_overview()


async def test_stored_rows_equal_the_rows_built_from_the_snapshot(demo, tmp_path: Path) -> None:  # noqa: F811
    engine = await make_engine(demo, tmp_path)
    assert (await engine.refresh(RefreshMode.FULL)).ok
    await engine.reconcile()
    exceptions = await engine.open_exceptions()
    built = build_customer_rows(engine.snapshot(), exceptions)
    assert any(r.open_exceptions for r in built) and any(r.erp_party is None for r in built)

    engine.remember_overview(encode_rows(built), engine.data_version)
    cached = await stored_rows(engine)
    assert cached is not None
    assert all(r.open_exceptions == 0 and r.worst is None for r in cached)  # exceptions are read fresh
    attach_exceptions(cached, exceptions)
    assert as_tuples(cached) == as_tuples(built)
    await engine.aclose()
    engine.storage.close()


async def test_any_record_write_removes_the_stored_rows(demo, tmp_path: Path) -> None:  # noqa: F811
    engine = await make_engine(demo, tmp_path)
    assert (await engine.refresh(RefreshMode.FULL)).ok
    storage = engine.storage

    def store() -> None:
        encoded = encode_rows(build_customer_rows(engine.snapshot()))
        storage.save_overview(encoded)
        assert storage.load_overview() == encoded

    store()
    assert (await engine.refresh(RefreshMode.AUTO)).ok  # incremental, even with nothing changed
    assert storage.load_overview() is None
    store()
    assert (await engine.refresh(RefreshMode.FULL, systems=[System.SUPPORT])).ok
    assert storage.load_overview() is None
    store()
    billing = engine.data[System.BILLING]
    cid, customer = next(iter(billing.customers.items()))
    await engine.apply_records(System.BILLING, SystemData(System.BILLING, customers={cid: customer}))
    assert storage.load_overview() is None
    store()
    storage.apply_delta(System.ERP, Delta(SystemData(System.ERP)), {}, "x", engine.clock())
    assert storage.load_overview() is None
    await engine.aclose()
    storage.close()


async def test_rows_built_before_a_data_change_are_not_stored(demo, tmp_path: Path) -> None:  # noqa: F811
    engine = await make_engine(demo, tmp_path)
    assert (await engine.refresh(RefreshMode.FULL)).ok
    old_version = engine.data_version
    rows = build_customer_rows(engine.snapshot())
    assert (await engine.refresh(RefreshMode.AUTO)).ok  # the data moved on while the rows were built
    engine.remember_overview(encode_rows(rows), old_version)
    assert await stored_rows(engine) is None
    current = build_customer_rows(engine.snapshot())
    assert current
    engine.remember_overview(encode_rows(current), engine.data_version)
    stored = await stored_rows(engine)
    assert stored is not None and as_tuples(stored) == as_tuples(current)
    await engine.aclose()
    engine.storage.close()


async def test_a_damaged_stored_list_is_ignored_with_a_warning(demo, tmp_path: Path,  # noqa: F811
                                                               caplog: pytest.LogCaptureFixture) -> None:
    engine = await make_engine(demo, tmp_path)
    for payload in ("{not json", '{"format": 99, "rows": 0}', '{"format": 1, "rows": 1}\n[["only", "two"]]',
                    '{"format": 1, "rows": 1}\n[["c","n","","","",null,null,null,null,"none","","",["nowhere"]]]',
                    '{"format": 1, "rows": 3}\n[["c","n","","","",null,null,null,null,"none","","",[]]]', "[]"):
        await asyncio.to_thread(engine.storage.save_overview, payload)
        with caplog.at_level(logging.WARNING, logger="services.engine"):
            caplog.clear()
            assert await engine.cached_overview() is None
        assert "ignoring the stored customer list" in caplog.text
    await engine.aclose()
    engine.storage.close()


def test_decode_refuses_what_encode_did_not_write() -> None:
    row = CustomerRow("cus_1", "<b>Ünïcode</b> \x00\n Ltd", email="a@b", unknown=frozenset({System.ERP}))
    row.search = "ignored: recomputed"
    (back,) = decode_rows(encode_rows([row]))
    assert back.name == row.name and back.unknown == {System.ERP}
    assert back.search == fold("\x00".join(["cus_1", row.name, "a@b", "", "", "", "", ""]))
    assert "unicode" in back.search, "the search text is case- and accent-folded"
    many = [CustomerRow(f"cus_{i}", f"name {i}") for i in range(4_500)]  # several lines
    text = encode_rows(many)
    assert text.count("\n") == 3
    assert [r.customer_id for r in decode_rows(text)] == [r.customer_id for r in many]
    assert decode_rows(encode_rows([])) == []
    for bad in ("", "null", '{"format": 1}', '{"format": 1, "rows": 1}\n[null]', text.rsplit("\n", 1)[0]):
        with pytest.raises(OverviewFormatError):
            decode_rows(bad)
