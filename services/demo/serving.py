"""Running ASGI apps on 127.0.0.1 with uvicorn: in the caller's event loop or in a thread of
their own (a :class:`~services.runner.ServiceLoop`).

Sockets are bound by us (port 0 = a free port chosen by the OS) before uvicorn starts, so
the URL is known at once and there is no race for the port.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import socket
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

import uvicorn
from starlette.types import ASGIApp

from services.runner import ServiceLoop

HOST = "127.0.0.1"

log = logging.getLogger(__name__)


def bind_socket(port: int = 0) -> socket.socket:
    # IPPROTO_TCP explicitly: asyncio only sets TCP_NODELAY then (else ~40 ms per kept-alive request)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((HOST, port))
    sock.listen(256)
    sock.setblocking(False)
    return sock


class _QuietServer(uvicorn.Server):
    """uvicorn.Server that leaves signal handling to its owner."""

    def install_signal_handlers(self) -> None:  # uvicorn < 0.29
        return

    @contextlib.contextmanager
    def capture_signals(self):  # type: ignore[no-untyped-def]  # uvicorn >= 0.29
        yield


@dataclass
class ServedApp:
    name: str
    app: ASGIApp
    sock: socket.socket
    server: uvicorn.Server = field(init=False)

    def __post_init__(self) -> None:
        # log_config=None: uvicorn's loggers propagate to the application's logging (the log
        # file, syncdesk.log) instead of getting a stderr handler of their own
        config = uvicorn.Config(self.app, log_level="warning", access_log=False, lifespan="off",
                                timeout_keep_alive=30, timeout_graceful_shutdown=2, log_config=None)
        self.server = _QuietServer(config)

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"


async def serve_all(apps: Sequence[ServedApp], started: asyncio.Event | None = None) -> None:
    """Serve every app in the running loop until each server's ``should_exit`` is set."""
    tasks = [asyncio.create_task(a.server.serve(sockets=[a.sock]), name=f"serve-{a.name}") for a in apps]
    if started is not None:
        while not all(a.server.started for a in apps):
            if any(t.done() for t in tasks):
                break
            await asyncio.sleep(0.01)
        started.set()
    try:
        await asyncio.gather(*tasks)
    finally:
        for a in apps:
            with contextlib.suppress(OSError):
                a.sock.close()


class ThreadedServers:
    """Serve ASGI apps from a background thread with its own event loop (a :class:`ServiceLoop`).

    Used by the console (so demo traffic never runs on the UI thread) and by tests::

        with ThreadedServers({"billing": app}) as servers:
            servers.url("billing")
    """

    def __init__(self, apps: dict[str, ASGIApp], ports: dict[str, int] | None = None) -> None:
        ports = ports or {}
        self.apps = [ServedApp(name, app, bind_socket(ports.get(name, 0))) for name, app in apps.items()]
        self._loop: ServiceLoop | None = None
        self._serving: concurrent.futures.Future[None] | None = None

    def url(self, name: str) -> str:
        for a in self.apps:
            if a.name == name:
                return a.url
        raise KeyError(name)

    @property
    def urls(self) -> dict[str, str]:
        return {a.name: a.url for a in self.apps}

    def start(self, timeout: float = 10.0) -> ThreadedServers:
        ready = threading.Event()
        self._loop = ServiceLoop(name="demo-servers").start()
        serving = self._serving = self._loop.submit(self._serve(ready))
        serving.add_done_callback(lambda _: ready.set())  # a failure before the start is reported too
        if not ready.wait(timeout):
            self.stop()
            raise TimeoutError("demo servers did not start in time")
        error = serving.exception() if serving.done() and not serving.cancelled() else None
        if error is not None:
            self.stop()
            raise RuntimeError(f"demo servers failed to start: {error}") from error
        return self

    async def _serve(self, ready: threading.Event) -> None:
        started = asyncio.Event()
        serving = asyncio.create_task(serve_all(self.apps, started))
        await started.wait()
        if all(a.server.started for a in self.apps):
            ready.set()
        # else a server failed as it started: serving raises its error, and the done callback
        # wakes the starter only once the error is there to report
        await serving

    def stop(self, timeout: float = 10.0) -> None:
        for a in self.apps:
            a.server.should_exit = True
        if self._loop is None:
            return
        if self._serving is not None and not concurrent.futures.wait([self._serving], timeout).done:
            log.warning("demo servers did not stop within %.0f s", timeout)
        self._loop.stop(timeout)
        self._loop = None
        self._serving = None

    def __enter__(self) -> ThreadedServers:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
