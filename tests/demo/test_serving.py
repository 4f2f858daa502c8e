"""ThreadedServers: demo apps served from a thread of their own (a ServiceLoop), over loopback."""

from __future__ import annotations

import threading
from uuid import uuid4

import httpx
import pytest
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from services.demo.serving import ThreadedServers


def _worker_mark() -> str:
    """A mark of the thread this runs on: a new thread gets a new mark (thread ids are recycled)."""
    thread = threading.current_thread()
    if not hasattr(thread, "syncdesk_mark"):
        thread.syncdesk_mark = uuid4().hex  # type: ignore[attr-defined]
    return str(thread.syncdesk_mark)  # type: ignore[attr-defined]


async def _where(request: Request) -> PlainTextResponse:
    return PlainTextResponse(await run_in_threadpool(_worker_mark))


def _app() -> Starlette:
    return Starlette(routes=[Route("/where", _where)])


def _demo_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name == "demo-servers"}


def test_servers_answer_then_stop_without_leaving_their_thread() -> None:
    before = _demo_threads()
    with ThreadedServers({"one": _app(), "two": _app()}) as servers, httpx.Client(timeout=10) as http:
        urls = servers.urls
        assert set(urls) == {"one", "two"}
        for name in ("one", "two"):
            assert http.get(f"{servers.url(name)}/where").status_code == 200
        assert len(_demo_threads() - before) == 1
    assert _demo_threads() <= before  # stop() joined it
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{urls['one']}/where", timeout=2)


def test_requests_share_one_worker_thread() -> None:
    """starlette's run_in_threadpool keeps its worker for the loop's life: a new thread per
    request (what a loop run with ``run_forever`` gives) costs ~0.5 ms on every Tryton call."""
    with ThreadedServers({"app": _app()}) as servers, httpx.Client(timeout=10) as http:
        marks = {http.get(f"{servers.url('app')}/where").text for _ in range(5)}
    assert len(marks) == 1


def test_a_server_that_cannot_start_fails_the_start() -> None:
    before = _demo_threads()
    servers = ThreadedServers({"good": _app(), "broken": _app()})
    servers.apps[1].sock.close()  # uvicorn fails as it starts serving on it
    with pytest.raises(RuntimeError, match="demo servers failed to start") as err:
        servers.start()
    assert isinstance(err.value.__cause__, OSError)
    assert _demo_threads() <= before  # the failed start cleaned up after itself
