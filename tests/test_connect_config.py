"""config.toml edited in place (services/io/config_write.py): comments and layout survive,
credentials go to the OS keyring (an in-memory one here), writes are atomic with a .bak, a
read-only profile is refused every fix that writes, the demo's writers keep the user's file."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from services.actions.model import RULE_ACTIONS, ActionKind, ActionRequest, ActionStatus
from services.actions.roles import allowed_actions_for
from services.core.domain import System
from services.engine import Engine
from services.io.config import KEYRING_SERVICE, load_profile, load_profiles
from services.io.config_write import (
    ConfigWriteError,
    KeyringUnavailable,
    SystemInput,
    add_profile,
    backup_path,
    delete_profile,
    duplicate_profile,
    edit_profile,
    put_profiles,
)
from services.store.storage import Storage
from tests.connect_support import MemoryKeyring, memory_keyring

__all__ = ["memory_keyring"]  # the fixture, used by name

USER_FILE = """\
# SyncDesk profiles — kept by hand, please keep my notes
[roles]
alice = "finance"   # the controller
bob = ["support", "auditor"]

# production: the real systems
[profiles.prod.billing]
kind = "stripe"          # live account
url = "https://api.stripe.com"
api_key_env = "PROD_STRIPE_KEY"

[profiles.prod.erp]
kind   = "tryton"
url    = "https://erp.example.com"   # behind the VPN
database = "tryton"
login = "syncdesk"
password_env = "PROD_TRYTON_PASSWORD"

[profiles.prod.erp.tax_map]
"txr_1NcWx2DE19" = 12   # DE VAT 19 %

# staging, refreshed weekly
[profiles.staging.support]
kind = "zendesk"
url = "https://acme-staging.zendesk.com"
email = "ops@acme.example"
api_token_env = "STAGING_ZENDESK_TOKEN"
"""

STRIPE_SECRET = "rk_live_51SyncDeskTestOnly9Zz8Yy7Xx"
TRYTON_SECRET = "tryton-pw-Correct-Horse-42"
ZENDESK_SECRET = "zd-token-Battery-Staple-77Qq"


def _new_systems() -> list[SystemInput]:
    return [
        SystemInput(System.BILLING, "https://api.stripe.com", {}, {"api_key": STRIPE_SECRET}),
        SystemInput(System.ERP, "https://erp.acme.example", {"database": "acme", "login": "sync"},
                    {"password": TRYTON_SECRET}, tax_map={"txr_A": 3}),
        SystemInput(System.SUPPORT, "https://acme.zendesk.com", {"email": "it@acme.example"},
                    {"api_token": ZENDESK_SECRET}),
    ]


@pytest.fixture
def user_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for var in ("PROD_STRIPE_KEY", "PROD_TRYTON_PASSWORD", "STAGING_ZENDESK_TOKEN"):
        monkeypatch.setenv(var, f"{var.lower()}-value")
    path = tmp_path / "config.toml"
    path.write_text(USER_FILE, encoding="utf-8")
    return path


def _section(text: str, header: str) -> str:
    """From ``header`` up to the next line that starts another profile than the header's."""
    start = text.index(header)
    profile = header.split(".")[1]
    rest = text[start:].splitlines(keepends=True)
    out = [rest[0]]
    for line in rest[1:]:
        if line.startswith("[") and not line.startswith(f"[profiles.{profile}"):
            break
        out.append(line)
    return "".join(out)


def test_add_appends_a_profile_and_leaves_every_byte_of_the_file_before_it(
        user_file: Path, memory_keyring: MemoryKeyring) -> None:
    result = add_profile(user_file, "acme", _new_systems())
    text = user_file.read_text(encoding="utf-8")
    assert text.startswith(USER_FILE)
    added = text[len(USER_FILE):]
    assert "[profiles.acme.billing]" in added and "[profiles.acme.erp.tax_map]" in added
    for secret in (STRIPE_SECRET, TRYTON_SECRET, ZENDESK_SECRET):
        assert secret not in text
    assert memory_keyring.entries == {
        (KEYRING_SERVICE, "acme/billing/api_key"): STRIPE_SECRET,
        (KEYRING_SERVICE, "acme/erp/password"): TRYTON_SECRET,
        (KEYRING_SERVICE, "acme/support/api_token"): ZENDESK_SECRET,
    }
    assert result.stored_secrets == ("acme/billing/api_key", "acme/erp/password", "acme/support/api_token")
    assert STRIPE_SECRET not in repr(result)
    # the commands read the credentials back from the keyring (services/io/config.py)
    profile = load_profile(user_file, "acme")
    assert profile.connections[System.BILLING].secret("api_key") == STRIPE_SECRET
    assert profile.connections[System.ERP].tax_map == {"txr_A": 3}
    assert profile.read_only is False


def test_edit_changes_only_the_edited_lines(user_file: Path, memory_keyring: MemoryKeyring) -> None:
    edit_profile(user_file, "prod", [SystemInput(System.ERP, "https://erp2.example.com",
                                                 {"login": "syncdesk-bot", "total_timeout": 90})])
    text = user_file.read_text(encoding="utf-8")
    expected = (USER_FILE.replace('url    = "https://erp.example.com"   # behind the VPN',
                                  'url    = "https://erp2.example.com"   # behind the VPN')
                .replace('login = "syncdesk"\npassword_env = "PROD_TRYTON_PASSWORD"\n',
                         'login = "syncdesk-bot"\npassword_env = "PROD_TRYTON_PASSWORD"\ntotal_timeout = 90\n'))
    assert text == expected
    # a credential given in an edit replaces the _env reference by a keyring entry
    edit_profile(user_file, "prod", [SystemInput(System.BILLING, secrets={"api_key": STRIPE_SECRET})])
    text = user_file.read_text(encoding="utf-8")
    assert "PROD_STRIPE_KEY" not in text and STRIPE_SECRET not in text
    assert memory_keyring.entries[(KEYRING_SERVICE, "prod/billing/api_key")] == STRIPE_SECRET
    assert _section(text, "[profiles.staging.support]") == _section(USER_FILE, "[profiles.staging.support]")
    assert text.startswith(USER_FILE[:USER_FILE.index("[profiles.prod.billing]")])


def test_delete_removes_the_table_and_its_keyring_entries_and_nothing_else(
        user_file: Path, memory_keyring: MemoryKeyring) -> None:
    add_profile(user_file, "acme", _new_systems())
    memory_keyring.entries[(KEYRING_SERVICE, "other/billing/api_key")] = "kept"
    delete_profile(user_file, "acme")
    assert user_file.read_text(encoding="utf-8") == USER_FILE
    assert memory_keyring.entries == {(KEYRING_SERVICE, "other/billing/api_key"): "kept"}
    delete_profile(user_file, "staging")
    text = user_file.read_text(encoding="utf-8")
    assert text == USER_FILE[:USER_FILE.index("[profiles.staging.support]")]
    assert set(load_profiles(user_file)) == {"prod"}


def test_duplicate_copies_tables_and_credentials(user_file: Path, memory_keyring: MemoryKeyring) -> None:
    add_profile(user_file, "acme", _new_systems(), read_only=True)
    before = user_file.read_text(encoding="utf-8")
    duplicate_profile(user_file, "acme", "acme-copy")
    text = user_file.read_text(encoding="utf-8")
    assert text.startswith(before)
    copy = load_profile(user_file, "acme-copy")
    assert copy.read_only is True
    assert copy.connections[System.SUPPORT].secret("api_token") == ZENDESK_SECRET
    assert copy.connections[System.ERP].tax_map == {"txr_A": 3}
    assert (KEYRING_SERVICE, "acme-copy/erp/password") in memory_keyring.entries


def test_atomic_write_is_private_and_keeps_the_previous_version(
        user_file: Path, memory_keyring: MemoryKeyring) -> None:
    os.chmod(user_file, 0o644)
    add_profile(user_file, "acme", _new_systems())
    assert stat.S_IMODE(user_file.stat().st_mode) == 0o600
    bak = backup_path(user_file)
    assert bak.read_text(encoding="utf-8") == USER_FILE
    assert stat.S_IMODE(bak.stat().st_mode) == 0o600
    leftovers = [p.name for p in user_file.parent.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []
    edit_profile(user_file, "acme", read_only=True)
    assert "[profiles.acme.billing]" in bak.read_text(encoding="utf-8")  # the .bak is the version before
    assert "read_only = true" not in bak.read_text(encoding="utf-8")
    assert load_profile(user_file, "acme").read_only is True


def test_a_refused_change_writes_nothing(user_file: Path, memory_keyring: MemoryKeyring) -> None:
    with pytest.raises(ConfigWriteError, match="missing 'database'"):
        add_profile(user_file, "acme", [SystemInput(System.ERP, "https://erp", {"login": "x"},
                                                    {"password": TRYTON_SECRET})])
    with pytest.raises(ConfigWriteError, match="exists already"):
        add_profile(user_file, "prod", _new_systems())
    with pytest.raises(ConfigWriteError, match="not a setting"):
        add_profile(user_file, "acme", [SystemInput(System.BILLING, "https://api.stripe.com",
                                                    {"api_key": STRIPE_SECRET})])
    with pytest.raises(ConfigWriteError, match="profile name"):
        add_profile(user_file, "../evil", _new_systems())
    assert user_file.read_text(encoding="utf-8") == USER_FILE
    assert not backup_path(user_file).exists()
    assert memory_keyring.entries == {}


def test_no_keyring_refuses_and_leaves_file_and_keyring_alone(
        user_file: Path, memory_keyring: MemoryKeyring) -> None:
    memory_keyring.broken = True
    with pytest.raises(KeyringUnavailable, match="environment variable") as caught:
        add_profile(user_file, "acme", _new_systems())
    assert STRIPE_SECRET not in str(caught.value)
    assert user_file.read_text(encoding="utf-8") == USER_FILE
    memory_keyring.broken = False
    # the way out it names: the credential by environment variable
    add_profile(user_file, "acme", [SystemInput(System.BILLING, "https://api.stripe.com",
                                                secret_env={"api_key": "ACME_STRIPE_KEY"})])
    assert 'api_key_env = "ACME_STRIPE_KEY"' in user_file.read_text(encoding="utf-8")
    assert memory_keyring.entries == {}


def test_the_demo_writers_keep_the_users_file(user_file: Path, memory_keyring: MemoryKeyring) -> None:
    """`demo-server --write-config` (put_profiles) and `tryton-sandbox serve --write-config`
    (replace_system_table; it used to rewrite the whole file and drop every comment)."""
    from app.demo import write_erp_table
    from services.demo.environment import DemoEnvironment, DemoOptions

    memory_keyring.broken = True  # a headless machine without a keyring: the demo's writers need none
    env = DemoEnvironment(DemoOptions(customers=5, seed=1))
    env.prepare_foreground()  # bound sockets: the URLs are known, nothing served
    try:
        put_profiles(user_file, [env.profile("demo"), env.readonly_profile()], plain_secrets=True)
        text = user_file.read_text(encoding="utf-8")
        assert text.startswith(USER_FILE)
        profiles = load_profiles(user_file)
        assert profiles["demo-readonly"].connections[System.BILLING].secret("api_key").startswith("rk_test_")
        assert profiles["demo"].connections[System.ERP].tax_map
        # written again (a second demo-server run): replaced in place, nothing duplicated
        put_profiles(user_file, [env.profile("demo"), env.readonly_profile()], plain_secrets=True)
        assert user_file.read_text(encoding="utf-8") == text
        erp = {"kind": "tryton", "url": "http://127.0.0.1:9", "database": "sandbox", "login": "admin",
               "password": "sandbox-pw"}
        write_erp_table(user_file, "demo", erp)  # what `tryton-sandbox serve --write-config` calls
        after = user_file.read_text(encoding="utf-8")
        assert after.startswith(USER_FILE)
        assert _section(after, "[profiles.demo-readonly.billing]") == _section(text, "[profiles.demo-readonly.billing]")
        loaded = load_profile(user_file, "demo").connections[System.ERP]
        assert (loaded.url, loaded.settings, loaded.tax_map) == ("http://127.0.0.1:9",
                                                                 {"database": "sandbox", "login": "admin"}, {})
        assert stat.S_IMODE(user_file.stat().st_mode) == 0o600
    finally:
        for served in env._served or []:
            served.sock.close()
    assert memory_keyring.entries == {}


async def test_a_read_only_profile_is_refused_every_fix_that_writes(
        tmp_path: Path, memory_keyring: MemoryKeyring) -> None:
    from tests.services.actions_rig import make_rig

    path = tmp_path / "config.toml"
    rig = await make_rig(tmp_path)
    try:
        put_profiles(path, [rig.env.profile("prod")], plain_secrets=True)
        edit_profile(path, "prod", read_only=True)
        profile = load_profile(path, "prod")
        assert profile.read_only
        probe = Engine.from_profile(profile, Storage.open_path(tmp_path / "probe.db"), shared_budget=False)
        try:
            assert probe.read_only is not None and "read-only" in probe.read_only
        finally:
            await probe.aclose()
            probe.storage.close()
        rig.engine.read_only = probe.read_only  # the service's engine, as from_profile builds it for this profile
        writing = [e for e in await rig.engine.open_exceptions()
                   if any(k not in (ActionKind.ACCEPT, ActionKind.FLAG) for k in RULE_ACTIONS.get(e.rule, ()))]
        assert writing, "the demo plants exceptions with fixes that write"
        greyed = 0
        for exc in writing:
            otherwise = {k: ok for k, ok, _ in allowed_actions_for(exc, rig.service.operator)}
            for kind, ok, why in rig.service.allowed_actions(exc):
                if kind in (ActionKind.ACCEPT, ActionKind.FLAG):
                    assert ok == otherwise[kind]
                    continue
                assert not ok, (exc.rule, kind)
                if otherwise[kind]:  # allowed but for the profile: greyed with the profile's reason
                    assert why == probe.read_only
                    greyed += 1
        assert greyed > 0
        exc = next(e for e in writing if e.owner.value == "finance")
        kind = next(k for k in RULE_ACTIONS[exc.rule] if k not in (ActionKind.ACCEPT, ActionKind.FLAG))
        assert {k: ok for k, ok, _ in rig.service.allowed_actions(exc)}[ActionKind.ACCEPT] is True
        plan = await rig.service.plan(ActionRequest(kind, exc.id))
        assert not plan.ok
        assert [c.detail for c in plan.checks if c.name == "profile" and not c.ok] == [probe.read_only]
        assert plan.calls == []
        result = await rig.service.execute(plan)
        assert result.status is ActionStatus.REFUSED and "read-only" in result.message
        assert rig.outbox_rows() == []  # nothing was queued or sent
    finally:
        await rig.close()
