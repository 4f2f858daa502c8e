"""``ExceptionTracker.for_customers`` (services/store/exception_history.py): the exceptions of
chosen customers, open and closed, oldest first, with their marks — the same as the whole
history filtered — selected by SQL on ``customer_id`` (the evidence pack of one customer never
reads every exception of every customer), also for more ids than one ``IN`` list holds."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, insert

from services.core.domain import ExceptionMark
from services.store.exception_history import CUSTOMER_CHUNK, FLAGGED, ExceptionTracker
from services.store.storage import EXC, Storage

T = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def _row(i: int, customer: str | None, closed: bool = False) -> dict[str, object]:
    first = T + timedelta(minutes=i % 7)  # not in id order: the order is by first seen, then id
    return dict(id=f"invoice.missing_in_erp:in_{i:05d}", rule="invoice.missing_in_erp", severity="high",
                owner="finance", customer_id=customer, object_id=f"in_{i:05d}", summary=f"invoice {i}",
                payload='{"sides": [], "fix_actions": ["retry"], "history": []}', first_seen=first,
                last_seen=first, closed_at=first + timedelta(hours=1) if closed else None)


@pytest.fixture
def tracker(tmp_path: Path) -> Iterator[ExceptionTracker]:
    storage = Storage.open_path(tmp_path / "history.db")
    rows = [_row(i, f"cus_{i % 3}", closed=i % 4 == 0) for i in range(30)] + [_row(99, None)]
    # more customers than one IN list holds, one exception each
    rows += [_row(1000 + i, f"cus_many_{i:04d}") for i in range(CUSTOMER_CHUNK + 20)]
    with storage.engine.begin() as conn:
        conn.execute(insert(EXC), rows)
    t = ExceptionTracker(storage)
    t.mark("invoice.missing_in_erp:in_00004", FLAGGED,
           ExceptionMark(T + timedelta(days=1), "ann", "finance", "flag", "a1", "check the amount"))
    yield t
    storage.close()


def test_the_chosen_customers_exceptions_equal_the_whole_history_filtered(tracker: ExceptionTracker) -> None:
    wanted = ["cus_1", "cus_0", "cus_unknown", "cus_0"]
    got = tracker.for_customers(wanted)
    expected = [e for e in tracker.all_exceptions() if e.customer_id in {"cus_0", "cus_1"}]
    assert [e.id for e in got] == [e.id for e in expected] and len(got) == 20
    assert got == expected  # every field, marks included
    assert any(e.closed_at is not None for e in got) and any(e.closed_at is None for e in got)
    flagged = next(e for e in got if e.id == "invoice.missing_in_erp:in_00004")
    assert flagged.flagged is not None and flagged.flagged.text == "check the amount"
    assert [(e.first_seen, e.id) for e in got] == sorted((e.first_seen, e.id) for e in got)
    assert tracker.for_customers([]) == []


def test_the_selection_is_made_in_sql_by_customer(tracker: ExceptionTracker) -> None:
    statements: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(" ".join(statement.split()))

    engine = tracker.storage.engine
    event.listen(engine, "before_cursor_execute", seen)
    try:
        got = tracker.for_customers(["cus_2"])
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert {e.customer_id for e in got} == {"cus_2"} and len(got) == 10
    reads = [s for s in statements if "FROM sync_exception" in s]
    assert reads and all("sync_exception.customer_id IN" in s for s in reads), reads


def test_more_customers_than_one_in_list_holds(tracker: ExceptionTracker) -> None:
    many = [f"cus_many_{i:04d}" for i in range(CUSTOMER_CHUNK + 20)]
    got = tracker.for_customers(many)
    assert sorted(e.customer_id or "" for e in got) == many
