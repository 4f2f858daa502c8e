"""Alerts for schedules: a Slack-compatible JSON message (``{"text": ..., "blocks": [...]}``)
about new critical exceptions and SLA breaches, POSTed to a webhook with a timeout and bounded
retries.

Never a secret in it: every text passes :func:`services.core.redaction.redact`, blocks are
``plain_text`` (an external name cannot mention ``@channel`` or hide a link), and the webhook's
URL (whose path is the secret of an incoming webhook) is never part of a message or an error:
errors name its scheme and host only."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import httpx

from services.core.domain import SyncException
from services.core.redaction import redact
from services.metrics.export import target_text, value_text
from services.metrics.model import Figure

#: exceptions listed by name in one message (the rest are counted)
LISTED = 10
#: Slack's limit for a block's text
BLOCK_TEXT = 2900


class AlertError(Exception):
    pass


def _clip(text: str, limit: int = BLOCK_TEXT) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def alert_message(source: str, new_critical: Sequence[SyncException], breaches: Sequence[Figure]) -> dict[str, Any]:
    """The message about ``new_critical`` exceptions and SLA ``breaches`` found in ``source``."""
    parts = []
    if new_critical:
        parts.append(f"{len(new_critical)} new critical exception{'s' if len(new_critical) != 1 else ''}")
    if breaches:
        parts.append(f"{len(breaches)} SLA breach{'es' if len(breaches) != 1 else ''}")
    headline = redact(f"SyncDesk ({source}): " + ", ".join(parts or ["nothing to report"]))
    blocks: list[dict[str, Any]] = [{"type": "header", "text": {"type": "plain_text", "text": _clip(headline, 150)}}]
    if new_critical:
        lines = [f"• {e.rule} — {e.customer_id or 'no customer'}: {e.summary} ({e.owner.value}; {e.id})"
                 for e in new_critical[:LISTED]]
        if len(new_critical) > LISTED:
            lines.append(f"… and {len(new_critical) - LISTED} more")
        blocks.append({"type": "section", "text": {"type": "plain_text", "text": _clip(redact("\n".join(lines)))}})
    if breaches:
        lines = [f"• {f.label}: {value_text(f.value, f.unit)} (target {target_text(f)})" for f in breaches]
        blocks.append({"type": "section", "text": {"type": "plain_text", "text": _clip(redact("\n".join(lines)))}})
    text = headline + "".join(f"\n{b['text']['text']}" for b in blocks[1:])
    return {"text": _clip(text, 3900), "blocks": blocks}


def where(url: str) -> str:
    """``https://hooks.example.com``: what an error may say about a webhook URL."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    return f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")


def check_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise AlertError("--alert-webhook: an http(s) URL")
    return url


async def post_alert(url: str, message: dict[str, Any], *, wait: float = 10.0, attempts: int = 3,
                     backoff: float = 0.5, transport: httpx.AsyncBaseTransport | None = None) -> int:
    """POST ``message`` to ``url`` (``wait``: seconds for each attempt); answers the attempts it
    took. Retries (at most ``attempts`` in all, waiting ``backoff`` then twice as long …) a
    connection failure, a timeout, a 429 or a 5xx; a 4xx otherwise is final. :class:`AlertError`
    when it was not delivered."""
    check_url(url)
    last = ""
    async with httpx.AsyncClient(timeout=wait, transport=transport, follow_redirects=False) as client:
        for n in range(1, attempts + 1):
            try:
                answer = await client.post(url, json=message)
            except httpx.TimeoutException:
                last = f"no answer within {wait:g} s"
            except httpx.TransportError as exc:
                last = f"connection failed ({type(exc).__name__})"
            else:
                if answer.is_success:
                    return n
                last = f"HTTP {answer.status_code}"
                if answer.status_code != 429 and answer.status_code < 500:
                    break
            if n < attempts:
                await asyncio.sleep(backoff * 2 ** (n - 1))
    raise AlertError(f"alert not delivered to {where(url)}: {last} (after {n} attempt{'s' if n != 1 else ''})")
