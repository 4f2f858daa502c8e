"""Hostile upstreams for the tests: ASGI pieces served over loopback (``ThreadedServers`` or a
demo environment's apps) that answer what a well-behaved server never does.

- :class:`Tamper` wraps a real demo server and hands every JSON answer to a function that may
  change it (a time out of range, a wrong type, a missing field, an id listed twice);
- :class:`Drip` answers every request with a body sent one byte at a time (slower than any
  deadline, each byte well inside a per-read timeout), until the client goes away or a bound;
- :class:`Truncate` promises a body (``Content-Length``) and closes the connection half-way.

Each keeps a count of the requests it saw. Nothing here sleeps to synchronise: the drip's
pauses *are* the behaviour under test, bounded in count and time.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import threading
from collections.abc import Callable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class Tamper:
    """ASGI wrapper: each 200 JSON answer of the wrapped app passes ``change(path, body)``
    (which returns the body to send; ``path`` is the request path)."""

    def __init__(self, app: ASGIApp, change: Callable[[str, Any], Any]) -> None:
        self.app = app
        self.change = change
        self.changed = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start: Message | None = None
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
                return
            if message["type"] != "http.response.body" or start is None:
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body"):
                return
            body = b"".join(chunks)
            headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
            if start["status"] == 200:
                gzipped = any(k.lower() == b"content-encoding" and v == b"gzip" for k, v in headers)
                try:
                    data = json.loads(gzip.decompress(body) if gzipped else body)
                except ValueError:
                    data = None
                if data is not None:
                    new = self.change(scope["path"], data)
                    if new is not data:
                        self.changed += 1
                    body = json.dumps(new).encode()  # sent as it is (no longer compressed)
                    headers = [(k, v) for k, v in headers if k.lower() != b"content-encoding"]
            headers.append((b"content-length", str(len(body)).encode()))
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, capture)


class Drip:
    """Every request: 200, ``Content-Length: size``, then one byte every ``interval`` seconds
    until the client disconnects or ``size`` bytes (a JSON object padded with spaces) are out."""

    def __init__(self, interval: float = 0.2, size: int = 400) -> None:
        self.interval = interval
        self.size = size
        self.requests = 0
        self._lock = threading.Lock()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        with self._lock:
            self.requests += 1
        body = b"{}".ljust(self.size)
        gone = asyncio.Event()

        async def watch() -> None:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    gone.set()
                    return

        watcher = asyncio.create_task(watch())
        try:
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"application/json"),
                                    (b"content-length", str(self.size).encode())]})
            for i in range(self.size):
                await send({"type": "http.response.body", "body": body[i:i + 1], "more_body": i + 1 < self.size})
                if i + 1 < self.size:
                    try:  # the pause between two bytes, cut short when the client has gone
                        await asyncio.wait_for(gone.wait(), self.interval)
                        return
                    except TimeoutError:
                        pass
        finally:
            watcher.cancel()


class TruncatedAnswer(Exception):
    """Raised by :class:`Truncate` after half a body: the server closes the connection."""


class Truncate:
    """The first ``times`` requests (every request with ``times=None``) get a 200 whose body
    stops half-way (the connection closes); later ones go to ``app``."""

    def __init__(self, app: ASGIApp | None = None, times: int | None = None) -> None:
        self.app = app
        self.times = times
        self.truncated = 0
        self._lock = threading.Lock()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if self.app is not None:
                await self.app(scope, receive, send)
            return
        with self._lock:
            cut = self.times is None or self.truncated < self.times
            if cut:
                self.truncated += 1
        if not cut and self.app is not None:
            await self.app(scope, receive, send)
            return
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", b"1000")]})
        await send({"type": "http.response.body", "body": b'{"object": "list", "data": [', "more_body": True})
        raise TruncatedAnswer("the connection closes half-way through the body")
