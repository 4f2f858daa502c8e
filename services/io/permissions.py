"""Test connection: can SyncDesk reach each system of a profile, log in, and do what it needs?

:func:`check_profile` (all systems at once) and :func:`check_system` (one) are plain async
functions with a deadline per system (``deadline``, seconds) that a caller may cancel at any point (a
dialog's Cancel cancels the task: every request stops, nothing is left running). Each returns a
typed result, never raises for what the system answers:

- **reachable** — or one plain sentence saying why not: the host name does not resolve (DNS),
  the TLS certificate or handshake failed, nothing listens on the port, no answer within the
  deadline; each its own message (:func:`describe_failure`);
- **authenticated** — or that the credentials were refused;
- **every permission SyncDesk needs, read and write separately** — a :class:`PermissionCheck`
  per resource and access with a sentence a user understands ("can read invoices", "cannot
  create ERP invoices: fixes that post invoices to the ERP will be refused"). How each system is
  asked is in :mod:`services.io.permissions_probes` (Stripe's restricted-key scopes, Tryton's
  ``ir.model.access``, Zendesk's role).

:func:`blocked_fixes` maps a report to the fixes the profile cannot perform, each with its
reason (what the console greys out; the fixes' write needs are in
:mod:`services.io.permissions_fixes`). A secret never appears in a result, a message or a log
line: every text from a system passes :func:`services.core.redaction.redact`, and the profile's
secrets are registered with it before the first request.
"""

from __future__ import annotations

import asyncio
import enum
import ssl
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx

from services.core.domain import System
from services.core.redaction import redact, register_secret
from services.io.config import Profile, SystemConnection, missing_secrets

#: default deadline of one system's whole test (connect, log in, every probe)
DEFAULT_TIMEOUT = 20.0


class Verdict(enum.StrEnum):
    OK = "ok"
    MISSING = "missing"
    #: the system's answer did not tell (an unexpected status, a role whose rights are not readable)
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class PermissionCheck:
    """One permission on one resource: ``access`` is ``read``, ``write``, ``create``, ``delete``
    (or ``setting`` for a precondition such as Tryton's current company)."""

    system: System
    resource: str
    access: str
    verdict: Verdict
    #: SyncDesk needs it (a refresh or a fix fails without it); a missing needed permission
    #: fails the test
    needed: bool
    sentence: str

    @property
    def ok(self) -> bool:
        return self.verdict is Verdict.OK

    @property
    def blocking(self) -> bool:
        """Needed and not granted (missing, or not known to be granted)."""
        return self.needed and self.verdict is not Verdict.OK


@dataclass(frozen=True)
class SystemReport:
    """The test of one system. ``problem``: why it is not reachable or not authenticated (one
    plain sentence, redacted); ``identity``: who SyncDesk is there, without any secret
    ("restricted key", "user syncdesk", "light agent")."""

    system: System
    kind: str
    url: str
    reachable: bool
    authenticated: bool
    problem: str | None = None
    identity: str = ""
    checks: tuple[PermissionCheck, ...] = ()
    seconds: float = 0.0
    #: False: not tested at all (a credential is configured nowhere); ``problem`` says which
    configured: bool = True

    @property
    def ok(self) -> bool:
        return self.reachable and self.authenticated and not any(c.blocking for c in self.checks)

    @property
    def missing(self) -> list[PermissionCheck]:
        return [c for c in self.checks if c.blocking]

    def lines(self) -> list[str]:
        """The checklist as sentences, the first saying whether the system could be tested."""
        head = f"{self.system.value} ({self.kind}, {self.url})"
        if not self.configured:
            return [f"{head}: not tested: {self.problem}"]
        if not self.reachable:
            return [f"{head}: not reachable: {self.problem}"]
        if not self.authenticated:
            return [f"{head}: reachable, not authenticated: {self.problem}"]
        return [f"{head}: reachable, authenticated as {self.identity}" if self.identity
                else f"{head}: reachable, authenticated", *(c.sentence for c in self.checks)]


@dataclass(frozen=True)
class ConnectionReport:
    profile: str
    systems: dict[System, SystemReport] = field(default_factory=dict)
    read_only: bool = False

    @property
    def ok(self) -> bool:
        return bool(self.systems) and all(r.ok for r in self.systems.values())

    @property
    def checks(self) -> list[PermissionCheck]:
        return [c for r in self.systems.values() for c in r.checks]


class ProbeFailed(Exception):
    """A probe could not go on: the system is unreachable (``reachable=False``) or refused the
    credentials. The message is plain and already redacted."""

    def __init__(self, message: str, *, reachable: bool) -> None:
        super().__init__(message)
        self.reachable = reachable


def describe_failure(exc: BaseException, url: str, timeout: float) -> str:
    """One plain sentence for a failed request: DNS, TLS, refused, timeout — each its own."""
    host = urlsplit(url).hostname or url
    port = urlsplit(url).port
    where = f"{host}:{port}" if port else host
    chain: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and len(chain) < 8:
        chain.append(cur)
        cur = cur.__cause__ or cur.__context__
    text = " ".join(str(e) for e in chain).lower()
    if isinstance(exc, (httpx.TimeoutException, TimeoutError)):
        return f"no answer from {where} within {timeout:g} s (timeout): is the address right, is a firewall in the way?"
    if any(isinstance(e, ssl.SSLCertVerificationError) for e in chain) or "certificate verify failed" in text:
        return (f"the TLS certificate of {host} could not be verified (TLS): it is expired, self-signed or for "
                "another name")
    if any(isinstance(e, ssl.SSLError) for e in chain) or "ssl" in text or "tls" in text:
        return f"the TLS handshake with {where} failed (TLS): is it really https on that port?"
    if ("name or service not known" in text or "nodename nor servname" in text or "getaddrinfo" in text
            or "temporary failure in name resolution" in text or "no address associated" in text):
        return f"the host name {host} cannot be found (DNS): check the URL"
    if "connection refused" in text or "errno 111" in text or "connect call failed" in text:
        return f"nothing answers at {where} (connection refused): is the server running on that port?"
    if isinstance(exc, (httpx.UnsupportedProtocol, httpx.InvalidURL)):
        return f"the URL {url} is not an http:// or https:// address"
    return redact(f"cannot reach {where}: {type(exc).__name__}: {exc}")


def http_client(conn: SystemConnection, timeout: float) -> httpx.AsyncClient:
    """A plain client for the probes: no retries (a probe reports what it met), the deadline's
    per-request timeouts, redirects refused (a credential is never sent elsewhere)."""
    return httpx.AsyncClient(base_url=conn.url, timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
                             follow_redirects=False, headers={"User-Agent": "SyncDesk connection test"})


async def check_system(conn: SystemConnection, *, deadline: float = DEFAULT_TIMEOUT) -> SystemReport:
    """Test one system: reachable, authenticated, every permission SyncDesk needs (see module
    docstring). Cancelling the awaiting task cancels the test."""
    from services.io.permissions_probes import PROBES

    timeout = deadline
    for secret in conn.secrets.values():
        register_secret(secret.reveal())
    missing = missing_secrets(conn.kind, conn.secrets)
    if missing:
        return SystemReport(conn.system, conn.kind, conn.url, False, False,
                            f"its {missing[0]} is configured nowhere: not in the file, not as <key>_env, not in the "
                            "OS keyring (add it with `connect add`, or set <key>_env)", configured=False)
    started = time.monotonic()
    probe = PROBES[conn.kind]
    try:
        async with asyncio.timeout(timeout), http_client(conn, timeout) as client:
            identity, checks = await probe(client, conn)
    except ProbeFailed as exc:
        return SystemReport(conn.system, conn.kind, conn.url, exc.reachable, False, str(exc),
                            seconds=time.monotonic() - started)
    except (httpx.HTTPError, OSError, TimeoutError) as exc:
        return SystemReport(conn.system, conn.kind, conn.url, False, False, describe_failure(exc, conn.url, timeout),
                            seconds=time.monotonic() - started)
    except Exception as exc:  # an answer no probe foresaw: reached, but the test could not go on
        return SystemReport(conn.system, conn.kind, conn.url, True, False,
                            redact(f"an unexpected answer stopped the test: {type(exc).__name__}: {exc}"),
                            seconds=time.monotonic() - started)
    return SystemReport(conn.system, conn.kind, conn.url, True, True, None, identity, tuple(checks),
                        time.monotonic() - started)


async def check_profile(profile: Profile, *, deadline: float = DEFAULT_TIMEOUT,
                        systems: Iterable[System] | None = None) -> ConnectionReport:
    """Test every system of ``profile`` at once (or those in ``systems``)."""
    wanted = [s for s in (systems or profile.connections) if s in profile.connections]
    results = await asyncio.gather(*(check_system(profile.connections[s], deadline=deadline) for s in wanted))
    return ConnectionReport(profile.name, dict(zip(wanted, results, strict=True)), profile.read_only)


def blocked_fixes(report: ConnectionReport) -> dict[tuple[str, str], str]:
    """``(rule, fix kind) -> why`` for every fix the profile cannot perform: a read-only profile
    performs none that writes; otherwise a fix is blocked by the first permission it needs that
    the report does not show as granted (or by a system that could not be tested). The kinds
    are :class:`services.actions.model.ActionKind` values; ``accept`` and ``flag`` write
    nothing to a system and are never blocked."""
    from services.io.permissions_fixes import FIX_NEEDS, need_sentence

    out: dict[tuple[str, str], str] = {}
    granted = {(c.system, c.resource, c.access): c for c in report.checks}
    for (rule, kind), needs in FIX_NEEDS.items():
        if report.read_only:
            out[(rule, kind)] = f"profile {report.profile!r} is read-only: SyncDesk never writes through it"
            continue
        for need in needs:
            sys_report = report.systems.get(need.system)
            if sys_report is None:
                continue  # that system was not tested
            if not (sys_report.reachable and sys_report.authenticated):
                out[(rule, kind)] = f"{need.system.value} could not be tested: {sys_report.problem}"
                break
            check = granted.get((need.system, need.resource, need.access))
            if check is None or check.verdict is not Verdict.OK:
                out[(rule, kind)] = need_sentence(need, check)
                break
    return out
