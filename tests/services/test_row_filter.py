"""RowFilter: the haystack search gives exactly what a plain per-row substring test gives, for
rare and common terms, several terms, every sort order, and odd text (separators, Unicode,
terms that would straddle two rows)."""

from __future__ import annotations

import random

import pytest

from services.core.domain import Severity
from services.core.overview import SORT_KEYS, CustomerRow, RowFilter, fold


def naive(rows: list[CustomerRow], query: str, key: str, descending: bool, only: bool) -> list[int]:
    fn = SORT_KEYS[key]
    order = sorted(range(len(rows)), key=lambda i: (fn(rows[i]), rows[i].customer_id))
    if descending:
        order.reverse()
    terms = fold(query).split()
    return [i for i in order
            if (not only or rows[i].open_exceptions) and all(t in rows[i].search for t in terms)]


def make_rows(n: int, seed: int) -> list[CustomerRow]:
    rng = random.Random(seed)
    names = ["Alpine", "Birch", "Summit", "Ünïcode", "ΣΙΓΜΑ", "a\x01b", "<b>x</b>", "Straße", "ab", "ba"]
    rows = []
    for i in range(n):
        name = f"{rng.choice(names)} {rng.choice(names)} {i}"
        row = CustomerRow(f"cus_{rng.randrange(10**6):06d}_{i}", name, email=f"ap{i % 7}@x.example",
                          erp_party=str(i) if i % 3 else None, open_exceptions=i % 5 == 0,
                          worst=Severity.HIGH if i % 5 == 0 else None, status=rng.choice(["active", "none"]))
        row.search = fold("\x00".join([row.customer_id, name, row.email, row.erp_party or ""]))
        rows.append(row)
    return rows


QUERIES = ["", "unicode", "sigma", "alpine", "ALPINE summit", "ab", "ba", "b ab", "a\x01b", "\x01", "x</b>",
           "strasse", "straße", "σιγμα", "ünï", "cus_0", "ap3@", "zzz", "1", " 12 ", "@x.example", "\x00", "0 0"]


@pytest.mark.parametrize("seed", [1, 2])
def test_the_haystack_search_matches_a_plain_scan(seed: int) -> None:
    rows = make_rows(700, seed)
    flt = RowFilter(rows)
    for key in ("name", "customer_id", "erp", "open_exceptions", "status"):
        flt.prepare(key)
        for query in QUERIES:
            for descending in (False, True):
                for only in (False, True):
                    assert flt.apply(query, key, descending, only) == naive(rows, query, key, descending, only), \
                        (key, query, descending, only)


def test_common_and_rare_terms_take_either_path_with_the_same_result() -> None:
    rows = make_rows(400, 3)
    flt = RowFilter(rows)
    hay, starts = flt.haystack("name")
    assert len(starts) == len(rows) and hay.count("\x01") >= len(rows) - 1
    assert flt._positions("name", "@x.example") is None  # every row: tested row by row
    rare = flt._positions("name", "summit summit")
    assert rare is not None
    assert flt.apply("summit summit") == naive(rows, "summit summit", "name", False, False)
    assert flt._positions("name", "a\x01b") is None  # holds the separator: never looked up there


def test_the_result_is_a_fresh_list() -> None:
    rows = make_rows(50, 4)
    flt = RowFilter(rows)
    first = flt.apply("")
    first.clear()
    assert len(flt.apply("")) == 50
    only = flt.apply("", only_with_exceptions=True)
    only.reverse()
    assert flt.apply("", only_with_exceptions=True) == naive(rows, "", "name", False, True)
