"""Authentication: API token (Basic ``{email}/token:{api_token}``) or Bearer token, checked in
pure ASGI before routing; credentials are never logged.

Besides the generated company's agents (``store.tokens``), :class:`AuthMiddleware` serves
``agents``: accounts that are not part of the saved world (the ``demo-readonly`` profile's
light agent), each with its user record. What an account may do follows its role as in
Zendesk: a light agent (``role: "agent"``, ``role_type: 1``) or an end user may read, but any
write to organizations, users or tickets is answered 403 ``Forbidden``."""

from __future__ import annotations

import base64
import binascii
import hmac
from dataclasses import dataclass, field
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from services.demo.store import SupportStore
from services.demo.zendesk.errors import ApiError, not_authenticated


@dataclass
class DemoAgent:
    """An account served beside the generated company's agents: its API token and its user
    record (rendered by ``/users/me``; ``role``, ``role_type``, ``custom_role_id``)."""

    email: str
    token: str
    user: dict[str, Any] = field(default_factory=dict)

    @property
    def may_write(self) -> bool:
        role = self.user.get("role")
        return role == "admin" or (role == "agent" and self.user.get("role_type") not in (1, 2, 3))


#: the resources whose writes a light agent or end user is refused
GUARDED_WRITES = ("/api/v2/organizations", "/api/v2/users", "/api/v2/tickets")


def forbidden() -> ApiError:
    """Zendesk's answer to an action the account's role does not allow."""
    return ApiError(403, {"error": "Forbidden", "description": "You do not have access to this page. Please contact "
                                                               "the account owner of this help desk for further help."})


def authenticate(store: SupportStore, header: str | None,
                 agents: dict[str, DemoAgent] | None = None) -> str | None:
    """The agent's email for a valid ``Authorization`` header, else None."""
    tokens = {**store.tokens, **{a.email: a.token for a in (agents or {}).values()}}
    if not header:
        return None
    scheme, _, credentials = header.strip().partition(" ")
    credentials = credentials.strip()
    if scheme.lower() == "bearer" and credentials:
        for email, token in list(tokens.items()):
            if hmac.compare_digest(token.encode(), credentials.encode()):
                return email
        return None
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(credentials, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    user, sep, secret = decoded.partition(":")
    if not sep or not user.endswith("/token"):
        return None
    email = user[: -len("/token")]
    expected = tokens.get(email)
    if expected is None or not hmac.compare_digest(expected.encode(), secret.encode()):
        return None
    return email


class AuthMiddleware:
    def __init__(self, app: ASGIApp, store: SupportStore) -> None:
        self.app = app
        self.store = store
        #: email -> an account served beside the generated company's (see the module docstring)
        self.agents: dict[str, DemoAgent] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        header = None
        for name, value in scope.get("headers", []):
            if name == b"authorization":
                header = value.decode("latin-1")
                break
        email = authenticate(self.store, header, self.agents)
        if email is None:
            await not_authenticated().response()(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        state["agent_email"] = email
        extra = self.agents.get(email)
        if extra is not None:
            state["agent_user"] = extra.user
            path = str(scope.get("path", ""))
            if (scope.get("method") not in ("GET", "HEAD") and not extra.may_write
                    and path.startswith(GUARDED_WRITES)):
                await forbidden().response()(scope, receive, send)
                return
        await self.app(scope, receive, send)
