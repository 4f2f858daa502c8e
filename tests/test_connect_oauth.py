"""Zendesk with an OAuth access token (G4 item 2): ``oauth_token`` is a credential like the others
(file, ``oauth_token_env``, or the OS keyring — an in-memory one here), needs no e-mail, and is
sent as ``Authorization: Bearer`` by the connector and by the permission probe; the demo Zendesk
accepts a Bearer token and refuses a wrong one with 401 as Zendesk does; the token never shows
in a message, a log line or a file."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.core.domain import System
from services.core.errors import AuthenticationError
from services.core.redaction import redact, register_secret
from services.demo.environment import DemoEnvironment, DemoOptions
from services.io.config import (
    KEYRING_SERVICE,
    ConfigError,
    Secret,
    SystemConnection,
    keyring_username,
    load_profile,
    missing_secrets,
)
from services.io.connectors.zendesk import ZendeskConnector
from services.io.permissions import check_system
from tests.connect_support import MemoryKeyring, files_holding, memory_keyring

__all__ = ["memory_keyring"]  # the fixture, used by name

#: generous: two loaded cores shared by several test runs; a check normally takes well under 1 s
DEADLINE = 30.0


@pytest.fixture(scope="module")
def env() -> Iterator[DemoEnvironment]:
    demo = DemoEnvironment(DemoOptions(customers=20, seed=1)).start()
    try:
        yield demo
    finally:
        demo.stop()


def _oauth(env: DemoEnvironment, token: str) -> SystemConnection:
    return SystemConnection(System.SUPPORT, "zendesk", env.urls[System.SUPPORT], {}, {"oauth_token": Secret(token)})


def test_an_oauth_token_from_the_keyring_needs_no_email(tmp_path: Path, memory_keyring: MemoryKeyring) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[profiles.acme.support]\nkind = "zendesk"\nurl = "https://acme.zendesk.com"\n', encoding="utf-8")
    memory_keyring.set_password(KEYRING_SERVICE, keyring_username("acme", System.SUPPORT, "oauth_token"),
                                "oauth-access-token-9f8e7d6c5b4a")
    conn = load_profile(path, "acme").connections[System.SUPPORT]
    assert conn.secret("oauth_token") == "oauth-access-token-9f8e7d6c5b4a"
    assert "email" not in conn.settings and missing_secrets(conn.kind, conn.secrets) == []


def test_the_api_token_still_needs_its_email(tmp_path: Path, memory_keyring: MemoryKeyring) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[profiles.acme.support]\nkind = "zendesk"\nurl = "https://acme.zendesk.com"\n'
                    'api_token = "api-token-1234567890"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="missing 'email'"):
        load_profile(path, "acme")
    # neither token anywhere: the e-mail is asked for as before, and the API token is what is missing
    path.write_text('[profiles.acme.support]\nkind = "zendesk"\nurl = "https://acme.zendesk.com"\n'
                    'email = "a@acme.example"\n', encoding="utf-8")
    conn = load_profile(path, "acme").connections[System.SUPPORT]
    assert missing_secrets(conn.kind, conn.secrets) == ["api_token"]


async def test_the_connector_sends_the_oauth_token_as_bearer(env: DemoEnvironment) -> None:
    token = env.dataset.credentials.zendesk_token
    connector = ZendeskConnector.create(_oauth(env, token))
    try:
        ids = await connector.list_ids()
    finally:
        await connector.aclose()
    assert sum(len(v) for v in ids.values()) > 0
    wrong = ZendeskConnector.create(_oauth(env, "not-the-oauth-token-0000000000"))
    try:
        with pytest.raises(AuthenticationError, match="HTTP 401"):
            await wrong.list_ids()
    finally:
        await wrong.aclose()


async def test_the_permission_probe_uses_the_oauth_token(env: DemoEnvironment, caplog: pytest.LogCaptureFixture,
                                                         syncdesk_home: Path) -> None:
    caplog.set_level(logging.DEBUG)
    token = env.dataset.credentials.zendesk_token
    report = await check_system(_oauth(env, token), deadline=DEADLINE)
    assert report.authenticated and report.ok, report.lines()
    assert report.identity.startswith(env.dataset.credentials.zendesk_email)  # from users/me: no e-mail configured
    bad_token = "revoked-oauth-token-5a4b3c2d1e0f"
    bad = await check_system(_oauth(env, bad_token), deadline=DEADLINE)
    assert bad.reachable and not bad.authenticated
    assert bad.problem is not None and "OAuth token was refused" in bad.problem
    text = "\n".join([*report.lines(), *bad.lines(), caplog.text])
    assert token not in text and bad_token not in text
    assert files_holding([syncdesk_home], [token, bad_token]) == []


def test_a_bearer_token_is_redacted() -> None:
    token = "oauth-token-for-redaction-7c6b5a49"
    register_secret(token)
    assert token not in redact(f"GET /api/v2/users/me.json Authorization: Bearer {token}")
    assert "Bearer Holdings" in redact("Bearer Holdings Ltd")  # a name, not a credential
