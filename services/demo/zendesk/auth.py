"""Authentication: API token (Basic ``{email}/token:{api_token}``) or Bearer token, checked in
pure ASGI before routing; credentials are never logged."""

from __future__ import annotations

import base64
import binascii
import hmac

from starlette.types import ASGIApp, Receive, Scope, Send

from services.demo.store import SupportStore
from services.demo.zendesk.errors import not_authenticated


def authenticate(store: SupportStore, header: str | None) -> str | None:
    """The agent's email for a valid ``Authorization`` header, else None."""
    if not header:
        return None
    scheme, _, credentials = header.strip().partition(" ")
    credentials = credentials.strip()
    if scheme.lower() == "bearer" and credentials:
        for email, token in list(store.tokens.items()):
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
    expected = store.tokens.get(email)
    if expected is None or not hmac.compare_digest(expected.encode(), secret.encode()):
        return None
    return email


class AuthMiddleware:
    def __init__(self, app: ASGIApp, store: SupportStore) -> None:
        self.app = app
        self.store = store

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        header = None
        for name, value in scope.get("headers", []):
            if name == b"authorization":
                header = value.decode("latin-1")
                break
        email = authenticate(self.store, header)
        if email is None:
            await not_authenticated().response()(scope, receive, send)
            return
        scope.setdefault("state", {})["agent_email"] = email
        await self.app(scope, receive, send)
