"""The one redactor: every text from an upstream (an error body, a vendor message, a header)
passes :func:`redact` before it reaches a log, a terminal, the snapshot, an export or the audit
log, so no credential leaves memory even when a server echoes it back.

Two kinds of things are masked (replaced by :data:`MASK`):

1. **Configured secrets** (:func:`register_secret`: every credential of the profile in use; the
   engine registers its connections' secrets when it builds their connectors), in every form a
   server could echo them:

   - raw; URL-encoded (``%2F`` and ``%2f``, ``+`` for a space); JSON-escaped;
   - base64, standard and URL-safe, with and without padding — also *inside* any longer base64
     text, whatever comes before the secret: the base64 of ``user:secret`` (HTTP Basic),
     ``email/token:secret`` (Zendesk) or ``secret:`` (Stripe's Basic form) holds, for one of
     the three possible alignments, a run of characters that depends on the secret alone; the
     whole base64 word holding that run is masked;
   - a secret cut short (a vendor message truncated at 300 characters, a ``repr`` cut at 80):
     its first 8 or more characters at the end of the text or before a quote or an ellipsis,
     raw or base64-encoded (the base64 word ending there is masked).

2. **Anything shaped like a known credential**, configured or not:

   - Stripe keys ``sk_live_…``, ``sk_test_…``, ``rk_live_…``, ``rk_test_…``, ``pk_live_…``,
     ``pk_test_…`` (the prefix is kept: ``sk_test_********``) and webhook secrets ``whsec_…``;
   - ``Bearer <token>`` when the token looks random: it holds a digit, or is 20+ characters;
   - ``Basic <b64>`` / ``Session <b64>`` (Tryton) when the base64 decodes to ``user:password``
     text — "Basic Ltd" or "Basic Holdings" are names, not credentials, and stay;
   - Zendesk API tokens in their ``…/token:<token>`` form (also URL-encoded and JSON-escaped);
   - any base64 word of 12+ characters that decodes to printable ``a:b`` text (the form of every
     Basic/Session credential), the user's name or e-mail included.

Trade-off: a legitimate text shaped like a credential is masked too — a customer literally named
``sk_test_abc`` or ``Bearer 2fa-team``; words merely resembling one ("sk_like_text", "Basic Ltd",
"Bearer Holdings") are left alone. A configured secret shorter than 4 characters is not
registered (it would mask ordinary words); a secret of fewer than about 7 characters is matched
in its full encodings only, not inside longer base64 text (8 base64 characters of it could occur
by chance). Cost: a few microseconds per short text, linear in the text's length.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, quote_plus

from services.core.text_safety import terminal_safe

MASK = "********"
#: shorter secrets are not registered: masking a 3-letter word everywhere would garble text
MIN_SECRET = 4
#: a base64 run that depends on a secret alone is searched for when it is at least this long
#: (about 7 characters of secret); a shorter run could occur by chance in ordinary base64
CORE_MIN = 8
#: a secret's head at least this long, cut off at the end of a text, is masked
HEAD_MIN = 8

_B64_CHARS = "A-Za-z0-9+/_-"
_RUN = re.compile(f"[{_B64_CHARS}]")
#: characters after which a cut-off secret head ends (end of a quoted ``repr``, an ellipsis)
_CUT_ENDS = frozenset("'\"…")
#: a base64 word that ends where a text was cut (its end, a quote, an ellipsis)
_CUT_WORD = re.compile(f"(?<![{_B64_CHARS}])[{_B64_CHARS}]{{{CORE_MIN},}}=*(?=['\"…]|\\Z)")

#: credential shapes; each alternative names what it keeps (prefix) and what it masks
_SHAPES = re.compile(
    r"(?<![A-Za-z0-9])(?P<stripe>(?:sk|rk|pk)_(?:live|test)_)[A-Za-z0-9_]+"
    r"|(?<![A-Za-z0-9])(?P<whsec>whsec_)[A-Za-z0-9]{8,}"
    r"|(?P<bearer>\b(?i:bearer)\s+)(?P<btoken>[A-Za-z0-9\-._~+/]+=*)"
    r"|(?P<basic>\b(?i:basic|session)\s+)(?P<b64>[A-Za-z0-9+/_-]+={0,2})"
    r"|(?P<ztok>(?:/|\\/|%2[Ff])token(?::|%3[Aa]))(?P<zval>[^\s\"'&,;<>\\*]+)")
#: the part of a credential that is the same for everyone (Stripe's key prefixes)
_PUBLIC_PREFIX = re.compile(r"(?:sk|rk|pk)_(?:live|test)_|whsec_")
#: a free-standing base64 word long enough to hold ``user:password``
_B64_WORD = re.compile(f"(?<![{_B64_CHARS}])[{_B64_CHARS}]{{12,}}={{0,2}}")


@dataclass(frozen=True)
class _Patterns:
    """The compiled forms of the registered secrets (rebuilt on each registration)."""

    literal: re.Pattern[str] | None = None  # every full encoding of every secret
    cores: re.Pattern[str] | None = None  # base64 runs that depend on one secret alone
    heads: tuple[tuple[str, int], ...] = ()  # (secret, shortest head masked) for secrets long enough
    core_heads: dict[str, tuple[str, ...]] | None = None  # first CORE_MIN characters -> cores


_lock = threading.Lock()
_secrets: set[str] = set()
_patterns = _Patterns()


def _lower_hex(text: str) -> str:
    return re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), text)


def encoded_forms(secret: str) -> set[str]:
    """Every full form of ``secret`` a server may echo: raw, URL-encoded, JSON-escaped, and
    base64 (standard and URL-safe, padded or not) of the secret alone and of ``secret:``."""
    forms = {secret, quote(secret, safe=""), quote_plus(secret, safe=""), json.dumps(secret)[1:-1]}
    forms |= {_lower_hex(f) for f in forms}
    raw = secret.encode()
    for data in (raw, raw + b":"):
        for encoded in (base64.b64encode(data), base64.urlsafe_b64encode(data)):
            text = encoded.decode("ascii")
            forms |= {text, text.rstrip("=")}
    return {f for f in forms if len(f) >= MIN_SECRET}


def base64_cores(secret: str) -> set[str]:
    """For each of the three alignments a secret can have inside base64-encoded data (the
    length of whatever precedes it, modulo 3), the base64 characters whose six bits all come
    from the secret — in the standard and the URL-safe alphabet. Any base64 text of data that
    holds the secret (``user:secret``, ``email/token:secret``, a JSON document) holds one."""
    raw = secret.encode()
    cores: set[str] = set()
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + raw + b"\0\0").decode("ascii")
        # character j carries bits [6j, 6j + 6); the secret's bits are [8·offset, 8·(offset + len))
        core = encoded[-(-8 * offset // 6): 8 * (offset + len(raw)) // 6]
        if len(core) >= CORE_MIN:
            cores |= {core, core.translate(str.maketrans("+/", "-_"))}
    return cores


def _shortest_head(secret: str) -> int:
    """How much of ``secret`` a cut-off head must hold to be masked: ``HEAD_MIN`` characters, and
    more than a public prefix such as ``sk_test_`` (which alone names no key)."""
    public = _PUBLIC_PREFIX.match(secret)
    return max(HEAD_MIN, public.end() + 1 if public else 0)


def _alternation(texts: Iterable[str]) -> re.Pattern[str] | None:
    ordered = sorted(set(texts), key=lambda t: (-len(t), t))  # the longest form wins at a position
    return re.compile("|".join(re.escape(t) for t in ordered)) if ordered else None


def register_secret(value: str | None) -> None:
    """Remember a configured credential: from now on :func:`redact` masks it in every form."""
    global _patterns
    if not value or len(value) < MIN_SECRET:
        return
    with _lock:
        if value in _secrets:
            return
        _secrets.add(value)
        forms = set().union(*(encoded_forms(s) for s in _secrets))
        cores = set().union(*(base64_cores(s) for s in _secrets))
        heads = tuple((s, _shortest_head(s)) for s in sorted(_secrets, key=len, reverse=True) if len(s) > HEAD_MIN)
        core_heads: dict[str, tuple[str, ...]] = {}
        for core in sorted(cores):
            core_heads[core[:CORE_MIN]] = (*core_heads.get(core[:CORE_MIN], ()), core)
        _patterns = _Patterns(_alternation(forms), _alternation(cores), heads, core_heads)


def _decodes_to_credential(word: str) -> bool:
    """True when ``word`` is base64 of printable text holding a ``:`` (``user:password``,
    ``email/token:secret``, ``login:uid:session``)."""
    body = word.rstrip("=")
    if len(body) % 4 == 1:  # cut short: the last character carries no whole byte
        body = body[:-1]
    urlsafe = "-" in body or "_" in body
    if urlsafe and ("+" in body or "/" in body):
        return False
    padded = body + "=" * (-len(body) % 4)
    try:
        data = base64.urlsafe_b64decode(padded) if urlsafe else base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError):
        return False
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(data) - 3:  # not merely a character cut at the end
            return False
        text = data[:exc.start].decode("utf-8", errors="replace")
    return ":" in text and text.isprintable()


def _looks_random(token: str) -> bool:
    return len(token) >= 20 or (len(token) >= 8 and any(ch.isdigit() for ch in token))


def _shape(match: re.Match[str]) -> str:
    groups = match.groupdict()
    if groups["stripe"] is not None:
        return groups["stripe"] + MASK
    if groups["whsec"] is not None:
        return groups["whsec"] + MASK
    if groups["ztok"] is not None:
        return groups["ztok"] + MASK
    if groups["bearer"] is not None:
        token = groups["btoken"]
        return groups["bearer"] + (MASK if _looks_random(token) else _SHAPES.sub(_shape, token))
    token = groups["b64"]
    return groups["basic"] + (MASK if _decodes_to_credential(token) else _SHAPES.sub(_shape, token))


def _mask_runs(text: str, pattern: re.Pattern[str]) -> str:
    """Mask the whole base64 word around every match of ``pattern``."""
    spans: list[tuple[int, int]] = []
    for m in pattern.finditer(text):
        start, end = m.start(), m.end()
        while start > 0 and _RUN.match(text, start - 1):
            start -= 1
        while end < len(text) and (_RUN.match(text, end) or text[end] == "="):
            end += 1
        if spans and start <= spans[-1][1]:
            spans[-1] = (spans[-1][0], max(end, spans[-1][1]))
        else:
            spans.append((start, end))
    for start, end in reversed(spans):
        text = text[:start] + MASK + text[end:]
    return text


def _mask_cut_base64(text: str, core_heads: dict[str, tuple[str, ...]]) -> str:
    """Mask a base64 word cut short after ``CORE_MIN``+ characters of a secret's core: the word
    ending at the end of the text or before a quote or an ellipsis."""
    spans: list[tuple[int, int]] = []
    for m in _CUT_WORD.finditer(text):
        word = m.group(0).rstrip("=")
        for i in range(len(word) - CORE_MIN + 1):
            cores = core_heads.get(word[i:i + CORE_MIN])
            if cores and any(core.startswith(word[i:]) or word[i:].startswith(core) for core in cores):
                spans.append(m.span())
                break
    for start, end in reversed(spans):
        text = text[:start] + MASK + text[end:]
    return text


def _mask_heads(text: str, heads: tuple[tuple[str, int], ...]) -> str:
    """Mask a secret's head (its first ``shortest`` or more characters) where the text was cut
    after it: at the end of the text or before a quote or an ellipsis."""
    for secret, shortest in heads:
        prefix = secret[:HEAD_MIN]
        at = text.find(prefix)
        while at >= 0:
            n = HEAD_MIN
            while n < len(secret) and at + n < len(text) and text[at + n] == secret[n]:
                n += 1
            end = at + n
            if n >= shortest and (end == len(text) or text[end] in _CUT_ENDS):
                text = text[:at] + MASK + text[end:]
                end = at + len(MASK)
            at = text.find(prefix, end)
    return text


def redact(text: str) -> str:
    """``text`` with every registered secret (in every form) and every credential-shaped
    substring masked. Idempotent; a JSON text stays valid JSON."""
    if len(text) < MIN_SECRET:
        return text
    patterns = _patterns
    if patterns.cores is not None:  # first: the whole base64 word goes, not only the secret's part
        text = _mask_runs(text, patterns.cores)
    if patterns.literal is not None:
        text = patterns.literal.sub(MASK, text)
    if patterns.heads:
        text = _mask_heads(text, patterns.heads)
    if patterns.core_heads:
        text = _mask_cut_base64(text, patterns.core_heads)
    text = _SHAPES.sub(_shape, text)
    return _B64_WORD.sub(lambda m: MASK if _decodes_to_credential(m.group(0)) else m.group(0), text)


def redact_value(value: Any) -> Any:
    """A copy of a JSON-like ``value`` with :func:`redact` applied to every string in it."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: redact_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_value(v) for v in value]
    return value


class RedactingFilter(logging.Filter):
    """Logging filter that renders the message once, masks credentials (:func:`redact`) and
    shows control characters as visible escapes (a log is read in a terminal), the traceback
    and stack text included."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = terminal_safe(redact(message), newlines=True)
        if cleaned != message or record.args:
            record.msg, record.args = cleaned, None
        if record.exc_info and record.exc_info[1] is not None:
            exc_text = record.exc_text or logging.Formatter().formatException(record.exc_info)
            record.exc_text = terminal_safe(redact(exc_text), newlines=True)
        if record.stack_info:
            record.stack_info = terminal_safe(redact(record.stack_info), newlines=True)
        return True


__all__ = ["MASK", "RedactingFilter", "base64_cores", "encoded_forms", "redact", "redact_value",
           "register_secret"]
