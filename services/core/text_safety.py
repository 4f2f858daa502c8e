"""External text made harmless for the place it is shown in.

Text from the three systems (names, summaries, error messages) is data, never markup or
commands. Three places can turn it against the reader:

- a **terminal** runs escape sequences (ESC/CSI colours and cursor moves, OSC window titles and
  OSC 52 clipboard writes), rings BEL and swallows NUL: :func:`terminal_safe` shows every
  C0/C1 control character and every bidirectional control as a visible escape (``\\x1b``,
  ``\\u202e``), so what prints is exactly what was received, readable and inert;
- a **spreadsheet** evaluates a CSV cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a
  carriage return as a formula (``=HYPERLINK(...)``): :func:`csv_cell` prefixes such a cell with
  an apostrophe, as spreadsheets expect (OWASP's CSV-injection advice);
- **bidirectional text** (Arabic, Hebrew, or an RTL override) can reorder the rest of a line it
  is embedded in: :func:`bidi_isolated` wraps a value in FIRST STRONG ISOLATE / POP DIRECTIONAL
  ISOLATE (U+2068 … U+2069), so it cannot; the console's labels use it.
"""

from __future__ import annotations

import unicodedata

#: the explicit directional formatting characters (embeddings, overrides, isolates)
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c")
#: line and paragraph separators a terminal may treat as new lines
SEPARATORS = frozenset("\u2028\u2029\u0085")
#: first characters a spreadsheet reads as the start of a formula
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
FSI, PDI = "\u2068", "\u2069"


def _escape(ch: str) -> str:
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def terminal_safe(text: str, *, newlines: bool = False) -> str:
    """``text`` with every control character (C0, DEL, C1), bidirectional control and line
    separator shown as a visible escape. ``newlines=True`` keeps ``\\n`` (multi-line output
    the program itself lays out); tabs are always escaped, as they shift columns."""
    if text.isprintable() and not any(ch in BIDI_CONTROLS for ch in text):
        return text  # the common case: nothing to do
    out: list[str] = []
    for ch in text:
        if ch == "\n" and newlines:
            out.append(ch)
        elif ch in BIDI_CONTROLS or ch in SEPARATORS or unicodedata.category(ch) == "Cc":
            out.append(_escape(ch))
        else:
            out.append(ch)
    return "".join(out)


def csv_cell(value: object) -> str:
    """A CSV cell's text that a spreadsheet shows as text, never runs as a formula: a value
    starting with ``= + - @``, a tab or a carriage return gets a leading apostrophe. ``None`` is
    the empty cell; numbers are written as they are (a negative amount stays a number)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int | float):
        return str(value)
    text = str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def bidi_isolated(text: str) -> str:
    """``text`` isolated from its surroundings (U+2068 … U+2069) when it holds a character of a
    right-to-left script or a directional control; unchanged otherwise."""
    if not text or text.isascii():
        return text
    if any(ch in BIDI_CONTROLS or unicodedata.bidirectional(ch) in ("R", "AL") for ch in text):
        return FSI + text + PDI
    return text


__all__ = ["BIDI_CONTROLS", "FORMULA_STARTS", "bidi_isolated", "csv_cell", "terminal_safe"]
