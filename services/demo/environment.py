"""The built-in demo environment: a generated company served by three local servers.

``DemoEnvironment`` wires the dataset generator to the Stripe-, Tryton- and Zendesk-
compatible apps, each behind its own :class:`FaultInjector`, and runs them either in the
caller's event loop (``serve``: the ``demo-server`` command) or in a background thread
(``start``/``stop``: the console and the tests). Given a dataset loaded from a saved world
(``services/demo/world.py``), it also takes the world's clock (``clock_start``) and tells the
world about every committed write (``on_write``), so the world is saved after it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx
from starlette.applications import Starlette
from starlette.types import ASGIApp, Receive, Scope, Send

from services.core.domain import System
from services.demo import readonly
from services.demo.dataset import generate
from services.demo.faults import FaultConfig, FaultInjector, FaultMiddleware
from services.demo.generator.erp_taxes import tax_name
from services.demo.serving import ServedApp, ThreadedServers, bind_socket, serve_all
from services.demo.store import DemoDataset
from services.demo.stripe import app as stripe_app
from services.demo.stripe.app import StripeApi
from services.demo.tryton import app as tryton_app
from services.demo.tryton.service import TrytonService
from services.demo.zendesk import app as zendesk_app
from services.demo.zendesk.auth import AuthMiddleware
from services.io.config import Profile, Secret, SystemConnection

log = logging.getLogger(__name__)

#: Default request-rate limits of the demo servers (requests per second; None = unlimited).
#: Billing mirrors Stripe's test mode (25/s); support Zendesk's Enterprise plan (700/min).
DEFAULT_RATE_LIMITS: dict[System, float | None] = {
    System.BILLING: 25.0,
    System.ERP: None,
    System.SUPPORT: 700 / 60,
}


@dataclass
class DemoOptions:
    customers: int = 250
    seed: int = 1
    anchor: int | None = None
    mismatch_rate: float | None = None
    base_port: int = 0  # 0: free ports; else billing=base, erp=base+1, support=base+2
    faults: dict[System, FaultConfig] = field(default_factory=dict)


class _WriteNotifier:
    """ASGI wrapper: after each request that committed a write (``scope["state"]["write"]``,
    set by the vendor apps; see :mod:`services.demo.faults`), call ``on_write`` — also when the
    fault middleware drops the connection after the commit."""

    def __init__(self, app: ASGIApp, on_write: Callable[[], None]) -> None:
        self.app = app
        self.on_write = on_write

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.app(scope, receive, send)
        finally:
            state = scope.get("state")
            if isinstance(state, dict) and state.get("write"):
                self.on_write()


def _tryton_service(app: ASGIApp) -> TrytonService:
    """The :class:`TrytonService` behind the ERP app that :func:`tryton_app.create_app` built."""
    inner = app.app if isinstance(app, FaultMiddleware) else None
    service = inner.state.tryton if isinstance(inner, Starlette) else None
    if not isinstance(service, TrytonService):
        raise TypeError("the ERP app is not the demo Tryton app")
    return service


def _zendesk_auth(app: ASGIApp) -> AuthMiddleware:
    """The :class:`AuthMiddleware` of the support app that :func:`zendesk_app.create_app` built."""
    inner = app.app if isinstance(app, FaultMiddleware) else None
    if not isinstance(inner, AuthMiddleware):
        raise TypeError("the support app is not the demo Zendesk app")
    return inner


def _stripe_api(app: ASGIApp) -> StripeApi:
    """The :class:`StripeApi` behind the billing app that :func:`stripe_app.create_app` built."""
    inner = app.app if isinstance(app, FaultMiddleware) else None
    api = inner.state.api if isinstance(inner, Starlette) else None
    if not isinstance(api, StripeApi):
        raise TypeError("the billing app is not the demo Stripe app")
    return api


class DemoEnvironment:
    def __init__(self, options: DemoOptions | None = None, dataset: DemoDataset | None = None, *,
                 clock_start: float | None = None, on_write: Callable[[], None] | None = None) -> None:
        """``clock_start``: the demo's "now" (unix seconds) at this moment (default: the
        dataset's anchor); ``on_write``: called after every request that committed a write."""
        self.options = options or DemoOptions()
        o = self.options
        self.dataset = dataset or generate(o.customers, o.seed, anchor=o.anchor, mismatch_rate=o.mismatch_rate)
        self.injectors: dict[System, FaultInjector] = {}
        for i, system in enumerate(System):
            cfg = o.faults.get(system) or FaultConfig(rate_limit=DEFAULT_RATE_LIMITS[system])
            self.injectors[system] = FaultInjector(system.value, cfg, seed=o.seed * 31 + i)
        creds = self.dataset.credentials
        # The servers share one virtual clock: the dataset's anchor (or the saved world's clock)
        # plus the time elapsed since start, so a dataset generated "as of" a past moment still
        # behaves as if it were now.
        self._clock_start = float(self.dataset.anchor if clock_start is None else clock_start)
        self._started = time.monotonic()
        self.apps: dict[System, ASGIApp] = {
            System.BILLING: stripe_app.create_app(self.dataset.billing, self.injectors[System.BILLING],
                                                     creds.stripe_api_key, clock=lambda: int(self.now().timestamp())),
            System.ERP: tryton_app.create_app(self.dataset.erp, self.injectors[System.ERP],
                                              clock=lambda: self.now().replace(tzinfo=None)),
            System.SUPPORT: zendesk_app.create_app(self.dataset.support, self.injectors[System.SUPPORT],
                                                      clock=self.now),
        }
        # the Idempotency-Key answers live on the billing store, so they are saved with the world
        _stripe_api(self.apps[System.BILLING]).idempotency = self.dataset.billing.idempotency
        # the demo-readonly profile's accounts, served beside the world (services/demo/readonly.py)
        readonly.install(_stripe_api(self.apps[System.BILLING]), _tryton_service(self.apps[System.ERP]),
                         _zendesk_auth(self.apps[System.SUPPORT]))
        if on_write is not None:
            self.apps = {s: _WriteNotifier(app, on_write) for s, app in self.apps.items()}
        self._threaded: ThreadedServers | None = None
        self._served: list[ServedApp] | None = None

    def now(self) -> datetime:
        """The demo's "now" (aware UTC): the clock at creation plus the time elapsed since."""
        return datetime.fromtimestamp(self._clock_start + (time.monotonic() - self._started), UTC)

    def _ports(self) -> dict[str, int]:
        base = self.options.base_port
        return {s.value: (base + i if base else 0) for i, s in enumerate(System)}

    # -- running ----------------------------------------------------------------------
    def start(self) -> DemoEnvironment:
        """Serve from a background thread (returns once all three answer)."""
        self._threaded = ThreadedServers({s.value: app for s, app in self.apps.items()}, self._ports())
        self._threaded.start()
        return self

    def stop(self) -> None:
        if self._threaded is not None:
            self._threaded.stop()
            self._threaded = None

    def __enter__(self) -> DemoEnvironment:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def prepare_foreground(self) -> list[ServedApp]:
        """Bind the sockets for :meth:`serve` (so URLs are known before serving)."""
        ports = self._ports()
        self._served = [ServedApp(s.value, app, bind_socket(ports[s.value])) for s, app in self.apps.items()]
        return self._served

    async def serve(self, started: asyncio.Event | None = None) -> None:
        """Serve in the running loop until :meth:`request_exit`."""
        if self._served is None:
            self.prepare_foreground()
        assert self._served is not None
        await serve_all(self._served, started)

    def request_exit(self) -> None:
        for a in self._served or []:
            a.server.should_exit = True

    # -- addresses and credentials -------------------------------------------------------
    @property
    def urls(self) -> dict[System, str]:
        if self._threaded is not None:
            return {System(n): u for n, u in self._threaded.urls.items()}
        if self._served is not None:
            return {System(a.name): a.url for a in self._served}
        raise RuntimeError("demo environment is not running")

    def profile(self, name: str = "demo") -> Profile:
        urls = self.urls
        c = self.dataset.credentials
        return Profile(name, {
            System.BILLING: SystemConnection(System.BILLING, "stripe", urls[System.BILLING], {},
                                             {"api_key": Secret(c.stripe_api_key)}),
            System.ERP: SystemConnection(System.ERP, "tryton", urls[System.ERP],
                                         {"database": c.tryton_database, "login": c.tryton_login},
                                         {"password": Secret(c.tryton_password)}, demo_tax_map(self.dataset)),
            System.SUPPORT: SystemConnection(System.SUPPORT, "zendesk", urls[System.SUPPORT],
                                             {"email": c.zendesk_email},
                                             {"api_token": Secret(c.zendesk_token)}),
        })

    def readonly_profile(self, name: str = readonly.PROFILE_NAME) -> Profile:
        """The ``demo-readonly`` profile: a restricted Stripe key with read scopes only, a Tryton
        user without write access to invoices, a Zendesk light agent (:mod:`services.demo.readonly`)."""
        return readonly.profile(self.urls, self.dataset.credentials.tryton_database, demo_tax_map(self.dataset), name)


def demo_tax_map(dataset: DemoDataset) -> dict[str, int]:
    """The demo company's billing tax rate -> ERP tax mapping (its profile's ``tax_map``): the ERP
    tax the demo made for each billing rate (named by :func:`tax_name`), as its ERP invoices
    carry it (``ErpTaxMap``). A rate without exactly one such tax is left out (never guessed)."""
    by_name: dict[str, list[int]] = {}
    for tid, tax in dataset.erp.tables.get("account.tax", {}).items():
        by_name.setdefault(str(tax.get("name")), []).append(int(tid))
    out: dict[str, int] = {}
    for rate in dataset.billing.tax_rates.values():
        found = by_name.get(tax_name(rate), [])
        if len(found) == 1:
            out[rate.id] = found[0]
    return out


async def wait_until_answering(urls: dict[System, str], within: float = 10.0) -> None:
    """Poll each server's control endpoint until it answers (or raise TimeoutError)."""
    deadline = asyncio.get_running_loop().time() + within
    async with httpx.AsyncClient(timeout=2.0) as client:
        for system, url in urls.items():
            while True:
                try:
                    r = await client.get(f"{url}/_demo/faults")
                    if r.status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if asyncio.get_running_loop().time() > deadline:
                    raise TimeoutError(f"the demo {system.value} server does not answer at {url}")
                await asyncio.sleep(0.05)
