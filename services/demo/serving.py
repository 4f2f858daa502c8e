"""Running ASGI apps on 127.0.0.1 with uvicorn: in the caller's event loop or in a thread.

Sockets are bound by us (port 0 = a free port chosen by the OS) before uvicorn starts, so
the URL is known at once and there is no race for the port.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

import uvicorn
from starlette.types import ASGIApp

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
        config = uvicorn.Config(self.app, log_level="warning", access_log=False, lifespan="off",
                                timeout_keep_alive=30, timeout_graceful_shutdown=2)
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
    """Serve ASGI apps from a background thread with its own event loop.

    Used by the console (so demo traffic never runs on the UI thread) and by tests::

        with ThreadedServers({"billing": app}) as servers:
            servers.url("billing")
    """

    def __init__(self, apps: dict[str, ASGIApp], ports: dict[str, int] | None = None) -> None:
        ports = ports or {}
        self.apps = [ServedApp(name, app, bind_socket(ports.get(name, 0))) for name, app in apps.items()]
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._error: BaseException | None = None

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

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            started = asyncio.Event()

            async def main() -> None:
                serving = asyncio.create_task(serve_all(self.apps, started))
                await started.wait()
                ready.set()
                await serving

            try:
                loop.run_until_complete(main())
            except BaseException as exc:  # reported to the starter
                self._error = exc
                ready.set()
            finally:
                loop.close()

        self._thread = threading.Thread(target=run, name="demo-servers", daemon=True)
        self._thread.start()
        if not ready.wait(timeout):
            raise TimeoutError("demo servers did not start in time")
        if self._error is not None:
            raise RuntimeError(f"demo servers failed to start: {self._error}") from self._error
        return self

    def stop(self, timeout: float = 10.0) -> None:
        for a in self.apps:
            a.server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("demo servers did not stop within %.0f s", timeout)
            self._thread = None

    def __enter__(self) -> ThreadedServers:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
