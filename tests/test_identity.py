"""The role policy and the login (``services/core/identity.py``, ``services/io/config.py``):
parsing the ``[roles]`` table (valid, list roles, malformed ones named by key), resolving a
login (no table: every role; listed: its roles; unlisted: read-only), the login is the
account's and not an environment variable, and files holding secrets are private from their
first byte."""

from __future__ import annotations

import os
import re
import stat
import sys
from pathlib import Path

import pytest

from services.core import identity
from services.core.identity import (
    ALL_ROLES,
    Identity,
    Role,
    RolePolicy,
    RolePolicyError,
    describe_policy,
    policy_digest,
    resolve_identity,
)
from services.io import config
from services.io.config import ConfigError, load_profile, load_roles, parse_roles, write_private

PROFILE = '[profiles.p.billing]\nkind = "stripe"\nurl = "http://127.0.0.1:1"\napi_key = "sk_test_x"\n'


# -- parsing ---------------------------------------------------------------------------------------
def test_a_roles_table_maps_logins_to_one_role_or_a_list(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(PROFILE + '[roles]\nalice = "finance"\nbob = "auditor"\ncarol = ["finance", "support"]\n'
                    '"dora.smith" = ["support", "support"]\n')
    policy = load_roles(path)
    assert policy is not None and policy.source == str(path)
    assert policy.grants == (("alice", (Role.FINANCE,)), ("bob", (Role.AUDITOR,)),
                             ("carol", (Role.FINANCE, Role.SUPPORT)), ("dora.smith", (Role.SUPPORT,)))
    assert policy.describe() == "alice = finance; bob = auditor; carol = finance, support; dora.smith = support"
    # the profiles of the same file load as before: the table is beside them, not in them
    assert load_profile(path, "p").name == "p"


def test_no_file_or_no_table_is_no_policy(tmp_path: Path) -> None:
    assert load_roles(tmp_path / "absent.toml") is None
    path = tmp_path / "config.toml"
    path.write_text(PROFILE)
    assert load_roles(path) is None
    assert parse_roles({"roles": {}}) == RolePolicy((), "")  # present but empty: nobody may act


@pytest.mark.parametrize(("table", "message"), [
    ('roles = "finance"\n', r"\[roles\] must be a table mapping logins to roles"),
    ('[roles]\nalice = "admin"\n', r"\[roles\] 'alice': unknown role 'admin' \(roles: finance, support, auditor\)"),
    ('[roles]\nbob = []\n', r"\[roles\] 'bob': give a role name or a non-empty list"),
    ('[roles]\ncarol = ["finance", 3]\n', r"\[roles\] 'carol': give a role name"),
    ('[roles]\ndan = 1\n', r"\[roles\] 'dan': give a role name"),
    ('[roles]\neve = ["finance", "root"]\n', r"\[roles\] 'eve': unknown role 'root'"),
    ('[roles]\n"" = "finance"\n', r"\[roles\]: an empty login"),
    ('[roles]\ndora.smith = "support"\n', r"\[roles\] 'dora': a table, not roles — write a login that holds a "
                                           r"dot in quotes, e\.g\. \"dora\.smith\" = \"finance\""),
])
def test_a_malformed_roles_table_is_a_config_error_naming_the_key(tmp_path: Path, table: str, message: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(table + PROFILE)
    with pytest.raises(ConfigError, match=f"^{re.escape(str(path))}: {message}"):
        load_roles(path)


def test_invalid_or_unreadable_is_a_config_error_never_no_policy(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("[roles\nalice = 'finance'\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_roles(path)
    folder = tmp_path / "folder.toml"  # exists but cannot be read as a file: fail closed
    folder.mkdir()
    with pytest.raises(ConfigError, match=f"^{re.escape(str(folder))}: cannot read the role policy"):
        load_roles(folder)


# -- resolution ------------------------------------------------------------------------------------
POLICY = RolePolicy((("alice", (Role.FINANCE,)), ("bob", (Role.AUDITOR,)),
                     ("carol", (Role.SUPPORT, Role.FINANCE)), ("sue", (Role.SUPPORT, Role.AUDITOR))), "cfg.toml")


def test_without_a_table_the_login_holds_every_role() -> None:
    me = resolve_identity(None, "kim")
    assert me == Identity("kim", ALL_ROLES, None)
    assert me.listed and me.can_act and me.default_role() is Role.FINANCE and me.read_only_reason() == ""
    for role in Role:
        me.check("kim", role)  # granted: nothing raised


def test_a_listed_login_holds_exactly_its_roles() -> None:
    alice = resolve_identity(POLICY, "alice")
    assert (alice.roles, alice.default_role(), alice.listed) == ((Role.FINANCE,), Role.FINANCE, True)
    alice.check("alice", Role.FINANCE)
    with pytest.raises(RolePolicyError, match=r"^alice does not hold the support role \(granted by the \[roles\] "
                                              r"table of cfg.toml: finance\)$"):
        alice.check("alice", Role.SUPPORT)
    # several roles: finance first when held, else the only acting role
    assert resolve_identity(POLICY, "carol").default_role() is Role.FINANCE
    assert resolve_identity(POLICY, "sue").default_role() is Role.SUPPORT
    bob = resolve_identity(POLICY, "bob")
    assert not bob.can_act and bob.default_role() is Role.AUDITOR
    assert bob.read_only_reason() == "bob holds only the auditor role in the [roles] table of cfg.toml: read-only"


def test_an_unlisted_login_is_read_only_and_told_why() -> None:
    mallory = resolve_identity(POLICY, "mallory")
    assert mallory.roles == (Role.AUDITOR,) and not mallory.listed and not mallory.can_act
    assert mallory.default_role() is Role.AUDITOR
    assert mallory.read_only_reason() == "mallory is not listed in the [roles] table of cfg.toml: read-only (auditor)"
    with pytest.raises(RolePolicyError, match=re.escape("mallory is not listed in the [roles] table of cfg.toml, so "
                                                        "it holds no role that can act")):
        mallory.check("mallory", Role.FINANCE)
    # an empty table lists nobody
    assert not resolve_identity(RolePolicy(()), "alice").can_act


def test_the_operator_must_be_the_login() -> None:
    with pytest.raises(RolePolicyError, match=re.escape("the operator is the login 'alice', not 'cfo.jane'")):
        resolve_identity(POLICY, "alice").check("cfo.jane", Role.FINANCE)
    with pytest.raises(RolePolicyError, match=re.escape("not 'cfo.jane'")):
        resolve_identity(None, "kim").check("cfo.jane", Role.FINANCE)


def test_the_policy_digest_tells_policies_apart() -> None:
    assert policy_digest(None) == policy_digest(None) != policy_digest(RolePolicy(()))
    same = RolePolicy(POLICY.grants, "elsewhere.toml")  # where it was read does not matter
    assert policy_digest(POLICY) == policy_digest(same)
    moved = RolePolicy((("alice", (Role.SUPPORT,)), *POLICY.grants[1:]))
    assert policy_digest(moved) != policy_digest(POLICY)
    assert describe_policy(None) == "no [roles] table (the local login holds every role)"
    assert POLICY.as_json()[2] == ["carol", ["support", "finance"]]


# -- the login -------------------------------------------------------------------------------------
@pytest.mark.skipif(sys.platform == "win32", reason="platform: POSIX password database")
def test_the_login_is_the_accounts_not_an_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    import pwd

    account = pwd.getpwuid(os.getuid()).pw_name
    for var in ("USER", "LOGNAME", "LNAME", "USERNAME"):
        monkeypatch.setenv(var, "cfo.jane")
    assert identity.current_login() == account != "cfo.jane"


def test_the_test_seam_replaces_the_login(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(identity, "os_login", lambda: "dana")
    assert identity.current_login() == "dana"


# -- files holding secrets ------------------------------------------------------------------------
@pytest.mark.skipif(sys.platform == "win32", reason="platform: POSIX file modes")
def test_a_secret_file_is_private_from_its_first_byte(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every file created while writing is already 0600 and empty when it comes into existence
    (not written with the default mode and chmod-ed afterwards), even with a permissive umask;
    the result replaces an older, world-readable file."""
    target = tmp_path / "config.toml"
    target.write_text("old = 1\n")
    target.chmod(0o644)
    born: list[tuple[str, int, int]] = []
    real_open = os.open

    def spy(path: str | os.PathLike[str], flags: int, mode: int = 0o777, **kw: object) -> int:
        fd = real_open(path, flags, mode, **kw)  # type: ignore[arg-type]
        if flags & os.O_CREAT:
            st = os.fstat(fd)
            born.append((os.fspath(path), stat.S_IMODE(st.st_mode), st.st_size))
        return fd

    monkeypatch.setattr(config.os, "open", spy)
    old_umask = os.umask(0)
    try:
        write_private(target, 'api_key = "sk_test_secret"\n')
    finally:
        os.umask(old_umask)
    assert born and all(mode == 0o600 and size == 0 for _, mode, size in born), born
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert target.read_text() == 'api_key = "sk_test_secret"\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.toml"], "no temporary file left behind"
