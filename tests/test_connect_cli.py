"""``syncdesk connect add|test|list|remove`` (app/connect_cli.py) against the demo servers:
credentials from the environment or a prompt (never argv) into the OS keyring (in memory
here), the checklist and its exit codes, and no secret in any file afterwards."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.cli import main
from services.core.domain import System
from services.demo import readonly
from services.demo.environment import DemoEnvironment, DemoOptions
from services.io.config import KEYRING_SERVICE
from tests.connect_support import MemoryKeyring, files_holding, memory_keyring

__all__ = ["memory_keyring"]  # the fixture, used by name


@pytest.fixture(scope="module")
def env() -> Iterator[DemoEnvironment]:
    demo = DemoEnvironment(DemoOptions(customers=20, seed=1)).start()
    try:
        yield demo
    finally:
        demo.stop()


def _secrets(env: DemoEnvironment) -> list[str]:
    return [*env.profile().all_secrets(), *env.readonly_profile().all_secrets()]


def _add_args(env: DemoEnvironment, name: str, *, prefix: str) -> list[str]:
    urls = env.urls
    login = readonly.TRYTON_LOGIN if prefix == "RO" else env.dataset.credentials.tryton_login
    email = readonly.ZENDESK_EMAIL if prefix == "RO" else env.dataset.credentials.zendesk_email
    return ["connect", "add", name,
            "--stripe-url", urls[System.BILLING], "--stripe-key-from-env", f"{prefix}_STRIPE",
            "--tryton-url", urls[System.ERP], "--tryton-database", env.dataset.credentials.tryton_database,
            "--tryton-login", login, "--tryton-password-from-env", f"{prefix}_TRYTON",
            "--zendesk-url", urls[System.SUPPORT], "--zendesk-email", email,
            "--zendesk-token-from-env", f"{prefix}_ZENDESK",
            "--set", "billing.total_timeout=30"]


@pytest.fixture
def secrets_in_env(env: DemoEnvironment, monkeypatch: pytest.MonkeyPatch) -> None:
    c = env.dataset.credentials
    for prefix, values in (("RW", (c.stripe_api_key, c.tryton_password, c.zendesk_token)),
                           ("RO", (readonly.STRIPE_KEY, readonly.TRYTON_PASSWORD, readonly.ZENDESK_TOKEN))):
        for system, value in zip(("STRIPE", "TRYTON", "ZENDESK"), values, strict=True):
            monkeypatch.setenv(f"{prefix}_{system}", value)


def test_add_list_test_remove(env: DemoEnvironment, memory_keyring: MemoryKeyring, secrets_in_env: None,
                              syncdesk_home: Path, capsys: pytest.CaptureFixture[str],
                              monkeypatch: pytest.MonkeyPatch) -> None:
    config = syncdesk_home / "config.toml"
    config.write_text("# my profiles\n", encoding="utf-8")
    assert main(_add_args(env, "acme", prefix="RW")) == 0
    assert main(_add_args(env, "acme-ro", prefix="RO")) == 0
    out = capsys.readouterr().out
    assert "added profile 'acme'" in out and "3 credential(s) stored in the OS keyring" in out
    assert config.read_text(encoding="utf-8").startswith("# my profiles\n")
    assert memory_keyring.entries[(KEYRING_SERVICE, "acme-ro/billing/api_key")] == readonly.STRIPE_KEY
    # the environment variables are read once: the profile does not depend on them afterwards
    for name in ("RW_STRIPE", "RW_TRYTON", "RW_ZENDESK", "RO_STRIPE", "RO_TRYTON", "RO_ZENDESK"):
        monkeypatch.delenv(name)

    assert main(["connect", "list"]) == 0
    listing = capsys.readouterr().out
    assert "acme-ro" in listing and "api_key: OS keyring" in listing and "login reader" in listing

    assert main(["connect", "test", "acme"]) == 0
    passed = capsys.readouterr().out
    assert "all checks passed" in passed and "can update billing customers" in passed

    assert main(["connect", "test", "acme-ro"]) == 1
    failed = capsys.readouterr().out
    assert "cannot update billing customers" in failed
    assert "cannot create ERP invoices" in failed
    assert "cannot update support organizations" in failed
    assert "can read ERP invoices" in failed
    assert "fixes this profile cannot perform:" in failed and "retry (invoice.missing_in_erp)" in failed

    assert main(["connect", "test", "acme-ro", "--system", "erp", "--format", "json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert set(report["systems"]) == {"erp"} and report["ok"] is False
    missing = {(c["resource"], c["access"]) for c in report["systems"]["erp"]["checks"] if c["verdict"] == "missing"}
    assert ("account.invoice", "create") in missing

    assert main(["connect", "remove", "acme-ro"]) == 2  # not on a terminal: --yes required
    assert main(["connect", "remove", "acme-ro", "--yes"]) == 0
    assert not any(user.startswith("acme-ro/") for _, user in memory_keyring.entries)
    assert main(["connect", "test", "acme-ro"]) == 2
    assert "no profile 'acme-ro'" in capsys.readouterr().err

    # after all that: no secret in any file of SYNCDESK_HOME (config, .bak, log, lock)
    assert files_holding([syncdesk_home], _secrets(env)) == []


def test_a_secret_is_asked_for_on_a_terminal_and_never_taken_from_argv(
        env: DemoEnvironment, memory_keyring: MemoryKeyring, syncdesk_home: Path,
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    args = ["connect", "add", "solo", "--stripe-url", env.urls[System.BILLING]]
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    assert main(args) == 2
    assert "no terminal to ask for the Stripe secret or restricted key on" in capsys.readouterr().err
    assert not (syncdesk_home / "config.toml").exists()
    with pytest.raises(SystemExit):  # there is no flag that takes the secret itself
        main([*args, "--stripe-key", env.dataset.credentials.stripe_api_key])
    capsys.readouterr()
    prompts: list[str] = []
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    monkeypatch.setattr("getpass.getpass", lambda prompt: prompts.append(prompt) or readonly.STRIPE_KEY)
    assert main([*args, "--test"]) == 1  # the restricted key cannot write customers
    out = capsys.readouterr().out
    assert prompts == ["Stripe secret or restricted key for profile 'solo' (not shown): "]
    assert "cannot update billing customers" in out
    assert memory_keyring.entries == {(KEYRING_SERVICE, "solo/billing/api_key"): readonly.STRIPE_KEY}
    assert files_holding([syncdesk_home], [readonly.STRIPE_KEY]) == []


def test_env_reference_and_bad_usage(env: DemoEnvironment, memory_keyring: MemoryKeyring, syncdesk_home: Path,
                                     capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    args = ["connect", "add", "byenv", "--zendesk-url", env.urls[System.SUPPORT], "--zendesk-email",
            env.dataset.credentials.zendesk_email, "--zendesk-token-env", "SYNCDESK_TEST_ZD"]
    assert main(args) == 0
    text = (syncdesk_home / "config.toml").read_text(encoding="utf-8")
    assert 'api_token_env = "SYNCDESK_TEST_ZD"' in text and memory_keyring.entries == {}
    capsys.readouterr()
    assert main(["connect", "test", "byenv"]) == 2  # the variable is not set: a configuration error
    assert "SYNCDESK_TEST_ZD" in capsys.readouterr().err
    monkeypatch.setenv("SYNCDESK_TEST_ZD", env.dataset.credentials.zendesk_token)
    assert main(["connect", "test"]) == 0  # the only profile
    assert main(["connect", "add", "x", "--tryton-database", "db"]) == 2
    assert "give --tryton-url" in capsys.readouterr().err
    assert main(["connect", "add", "x", "--stripe-url", "ftp://nope", "--stripe-key-env", "V"]) == 2
    assert "url must start with http" in capsys.readouterr().err


def test_a_zendesk_oauth_token_needs_no_email_and_goes_to_the_keyring(
        env: DemoEnvironment, memory_keyring: MemoryKeyring, syncdesk_home: Path,
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    token = env.dataset.credentials.zendesk_token  # the demo takes an agent's token as a Bearer token
    monkeypatch.setenv("SYNCDESK_TEST_OAUTH", token)
    assert main(["connect", "add", "oauth", "--zendesk-url", env.urls[System.SUPPORT],
                 "--zendesk-oauth-token-from-env", "SYNCDESK_TEST_OAUTH"]) == 0
    assert memory_keyring.entries == {(KEYRING_SERVICE, "oauth/support/oauth_token"): token}
    text = (syncdesk_home / "config.toml").read_text(encoding="utf-8")
    assert token not in text and "email" not in text and "api_token" not in text
    capsys.readouterr()
    assert main(["connect", "test", "oauth"]) == 0
    assert token not in capsys.readouterr().out
    # both credentials at once is a usage error
    with pytest.raises(SystemExit) as usage:
        main(["connect", "add", "both", "--zendesk-url", env.urls[System.SUPPORT], "--zendesk-token-env", "A",
              "--zendesk-oauth-token-env", "B"])
    assert usage.value.code == 2 and "not allowed with" in capsys.readouterr().err
