"""Connection profiles: one TOML file, one table per profile and system.

    [profiles.demo.billing]
    kind = "stripe"
    url = "http://127.0.0.1:8001"
    api_key = "sk_test_..."

    [profiles.demo.erp]
    kind = "tryton"
    url = "http://127.0.0.1:8002"
    database = "syncdesk_demo"
    login = "admin"
    password = "..."

    [profiles.demo.erp.tax_map]       # billing tax rate -> ERP account.tax id (posting fixes)
    "txr_1NcWx2" = 12

    [profiles.demo.support]
    kind = "zendesk"
    url = "http://127.0.0.1:8003"
    email = "agent@example.com"
    api_token = "..."                 # or: oauth_token = "..." (an OAuth access token, no e-mail)

Any credential (``api_key``, ``password``, ``api_token``, ``oauth_token``) may instead be given as
``<key>_env = "VAR"`` (read from the environment at load time), or left out to be read from
the OS keyring (service ``SyncDesk``, user ``<profile>/<system>/<key>``). Secrets are held in
:class:`Secret`, whose ``repr``/``str`` never show the value.

A profile may be marked read-only (``read_only = true`` in ``[profiles.NAME]``): SyncDesk then
reads its systems but never writes to them — no fix is offered or run (``Profile.read_only``;
the action service refuses it, :mod:`services.actions.service`). Profiles are added, edited and
deleted in place by :mod:`services.io.config_write` (comments kept, secrets to the keyring).

The same file holds the role policy (:func:`parse_roles`, :mod:`services.core.identity`)::

    [roles]
    alice = "finance"
    bob = "auditor"
    carol = ["finance", "support"]

Whoever can edit the file can grant roles: on a shared machine it belongs to an administrator
and is read-only to operators (README, "Roles"). Files holding secrets are written by
:func:`write_private`: mode 0600 from the first byte, then renamed into place.
"""

from __future__ import annotations

import contextlib
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from services.core.domain import System
from services.core.identity import ALL_ROLES, Role, RolePolicy

KINDS: dict[System, str] = {System.BILLING: "stripe", System.ERP: "tryton", System.SUPPORT: "zendesk"}
SECRET_KEYS: dict[str, tuple[str, ...]] = {"stripe": ("api_key",), "tryton": ("password",),
                                           "zendesk": ("api_token", "oauth_token")}
#: kinds whose credentials are alternatives, one of which suffices: Zendesk takes an API token
#: (Basic ``{email}/token:{api_token}``) or an OAuth access token (``Authorization: Bearer``);
#: the first is the one a form or a message names. Every other kind needs each of its SECRET_KEYS.
ALTERNATIVE_SECRETS: dict[str, tuple[str, ...]] = {"zendesk": ("api_token", "oauth_token")}
#: a setting a kind needs only with some credential: Zendesk's ``email`` goes with the API token,
#: an OAuth token names its user by itself
SETTING_FOR_SECRET: dict[str, dict[str, str]] = {"zendesk": {"email": "api_token"}}
REQUIRED_KEYS: dict[str, tuple[str, ...]] = {
    "stripe": ("url",),
    "tryton": ("url", "database", "login"),
    "zendesk": ("url", "email"),
}


class ConfigError(Exception):
    """The configuration file or a profile in it is missing or malformed."""


class Secret:
    """A credential that never shows itself in logs, reprs or exceptions."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass
class SystemConnection:
    system: System
    kind: str
    url: str
    settings: dict[str, str] = field(default_factory=dict)  # non-secret keys (database, login, email...)
    secrets: dict[str, Secret] = field(default_factory=dict)
    #: the ERP only: billing tax rate id (``txr_...``) -> ERP ``account.tax`` id, the tax the fixes
    #: that post an invoice give a line billed at that rate (``[profiles.NAME.erp.tax_map]``)
    tax_map: dict[str, int] = field(default_factory=dict)

    def secret(self, key: str) -> str:
        try:
            return self.secrets[key].reveal()
        except KeyError:
            raise ConfigError(f"{self.system.value}: credential {key!r} is not configured") from None


@dataclass
class Profile:
    name: str
    connections: dict[System, SystemConnection]
    #: ``read_only = true`` in ``[profiles.NAME]``: never write to its systems (no fix is offered)
    read_only: bool = False

    def all_secrets(self) -> list[str]:
        return [s.reveal() for c in self.connections.values() for s in c.secrets.values()]


def _parse_connection(profile: str, system: System, table: dict[str, Any],
                      environ: dict[str, str], keyring_lookup: bool = True) -> SystemConnection:
    where = f"profile {profile!r}, {system.value}"
    kind = table.get("kind")
    if kind != KINDS[system]:
        raise ConfigError(f"{where}: kind must be {KINDS[system]!r}, got {kind!r}")
    conditional = SETTING_FOR_SECRET.get(kind, {})
    for key in REQUIRED_KEYS[kind]:
        if key in conditional:
            continue  # checked once the credentials are known (below)
        if not isinstance(table.get(key), str) or not table[key].strip():
            raise ConfigError(f"{where}: missing {key!r}")
    url = str(table["url"]).rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"{where}: url must start with http:// or https://")
    settings: dict[str, str] = {}
    secrets: dict[str, Secret] = {}
    tax_map: dict[str, int] = {}
    for key, value in table.items():
        if key in ("kind", "url"):
            continue
        if key == "tax_map":
            tax_map = _parse_tax_map(where, kind, value)
            continue
        if key.endswith("_env"):
            base = key[: -len("_env")]
            if base not in SECRET_KEYS[kind]:
                raise ConfigError(f"{where}: {key!r} names no credential")
            if not isinstance(value, str) or value not in environ:
                raise ConfigError(f"{where}: environment variable {value!r} for {base!r} is not set")
            secrets[base] = Secret(environ[value])
        elif key in SECRET_KEYS[kind]:
            if not isinstance(value, str):
                raise ConfigError(f"{where}: {key!r} must be a string")
            secrets[key] = Secret(value)
        else:
            settings[key] = str(value)
    for key in SECRET_KEYS[kind] if keyring_lookup else ():
        if key not in secrets:
            stored = _keyring_secret(profile, system, key)
            if stored is not None:
                secrets[key] = Secret(stored)
    for key, secret_key in conditional.items():
        given = isinstance(table.get(key), str) and bool(table[key].strip())
        others = [k for k in ALTERNATIVE_SECRETS.get(kind, ()) if k != secret_key]
        if not given and not any(k in secrets for k in others):  # the setting goes with that credential
            raise ConfigError(f"{where}: missing {key!r}")
    return SystemConnection(system, kind, url, settings, secrets, tax_map)


def missing_secrets(kind: str, secrets: dict[str, Secret] | dict[str, str]) -> list[str]:
    """The credentials a connection of ``kind`` still lacks given ``secrets``: of alternatives
    (:data:`ALTERNATIVE_SECRETS`), none when one is there, else the first; otherwise each
    missing key of :data:`SECRET_KEYS`."""
    alternatives = ALTERNATIVE_SECRETS.get(kind)
    if alternatives:
        return [] if any(k in secrets for k in alternatives) else [alternatives[0]]
    return [k for k in SECRET_KEYS[kind] if k not in secrets]


def _parse_tax_map(where: str, kind: str, value: Any) -> dict[str, int]:
    """``[profiles.NAME.erp.tax_map]``: ``"txr_..." = <ERP account.tax id>``, one line per billing
    tax rate. Never guessed from a percentage: a rate left out is refused when an invoice billed
    at it is posted (the preflight names it)."""
    if kind != KINDS[System.ERP]:
        raise ConfigError(f"{where}: tax_map belongs to the erp table ([profiles.NAME.erp.tax_map])")
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: tax_map must be a table of \"txr_...\" = <ERP tax id>")
    out: dict[str, int] = {}
    for rate, tax in value.items():
        if not rate.strip():
            raise ConfigError(f"{where}: tax_map: an empty billing tax rate id")
        if isinstance(tax, bool) or not isinstance(tax, int) or tax <= 0:
            raise ConfigError(f"{where}: tax_map: billing tax rate {rate!r} must map to an ERP tax id "
                              f"(a positive integer), got {tax!r}")
        out[rate] = tax
    return out


KEYRING_SERVICE = "SyncDesk"


def keyring_username(profile: str, system: System, key: str) -> str:
    return f"{profile}/{system.value}/{key}"


def _keyring_secret(profile: str, system: System, key: str) -> str | None:
    """A credential left out of the file is looked up in the OS keyring (service "SyncDesk",
    user "<profile>/<system>/<key>"). No keyring backend (e.g. a headless server) = not found."""
    try:
        import keyring
        from keyring.errors import KeyringError

        try:
            return keyring.get_password(KEYRING_SERVICE, keyring_username(profile, system, key))
        except KeyringError:
            return None
    except Exception:  # a broken keyring backend must not stop the console from starting
        return None


#: the keys a profile's own table may hold beside its system tables (``[profiles.NAME]``)
PROFILE_KEYS = ("read_only",)


def parse_profiles(data: dict[str, Any], environ: dict[str, str] | None = None, *,
                   keyring_lookup: bool = True) -> dict[str, Profile]:
    """The profiles of a parsed config file. ``keyring_lookup=False``: credentials left out of
    the file are not looked up in the OS keyring (validating a file being written)."""
    env = dict(os.environ) if environ is None else environ
    profiles = data.get("profiles")
    if not isinstance(profiles, dict) or not profiles:
        raise ConfigError("no [profiles.<name>.<system>] tables found")
    out: dict[str, Profile] = {}
    for name, systems in profiles.items():
        if not isinstance(systems, dict):
            raise ConfigError(f"profile {name!r} must be a table")
        conns: dict[System, SystemConnection] = {}
        read_only = systems.get("read_only", False)
        if not isinstance(read_only, bool):
            raise ConfigError(f"profile {name!r}: read_only must be true or false, got {read_only!r}")
        for sys_name, table in systems.items():
            if sys_name in PROFILE_KEYS:
                continue
            try:
                system = System(sys_name)
            except ValueError:
                raise ConfigError(f"profile {name!r}: unknown system {sys_name!r}") from None
            if not isinstance(table, dict):
                raise ConfigError(f"profile {name!r}: {sys_name} must be a table")
            conns[system] = _parse_connection(name, system, table, env, keyring_lookup)
        out[name] = Profile(name, conns, read_only)
    return out


def load_profiles(path: Path, environ: dict[str, str] | None = None) -> dict[str, Profile]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"configuration file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return parse_profiles(data, environ)


def load_profile(path: Path, name: str, environ: dict[str, str] | None = None) -> Profile:
    profiles = load_profiles(path, environ)
    if name not in profiles:
        raise ConfigError(f"{path}: no profile {name!r} (have: {', '.join(sorted(profiles))})")
    return profiles[name]


def profile_to_toml(profile: Profile) -> dict[str, Any]:
    tables: dict[str, Any] = {}
    for system, conn in profile.connections.items():
        table: dict[str, Any] = {"kind": conn.kind, "url": conn.url}
        table.update(conn.settings)
        table.update({k: v.reveal() for k, v in conn.secrets.items()})
        if conn.tax_map:
            table["tax_map"] = dict(conn.tax_map)
        tables[system.value] = table
    if profile.read_only:
        tables["read_only"] = True
    return {"profiles": {profile.name: tables}}


def write_private(path: Path, text: str | bytes) -> None:
    """Write ``text`` (or exact bytes) to ``path`` readable and writable by the owner only (0600)
    from the first byte: a new temporary file is created with that mode (never a default-mode
    file chmod-ed afterwards), written, flushed to disk, then atomically renamed over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()  # a leftover of a crashed write (O_EXCL: never reuse a file someone else made)
    fd = os.open(tmp, flags, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            fd = -1
            if os.name == "posix":
                os.fchmod(out.fileno(), 0o600)  # the umask can only remove bits; make it exact
            out.write(text.encode("utf-8") if isinstance(text, str) else text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        if fd != -1:
            os.close(fd)
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def write_profile(path: Path, profile: Profile) -> None:
    """Write ``profile`` as the only profile of a TOML file, readable by the owner only."""
    write_private(path, tomli_w.dumps(profile_to_toml(profile)))


# -- the role policy ---------------------------------------------------------------------------
def parse_roles(data: dict[str, Any], source: str = "") -> RolePolicy | None:
    """The ``[roles]`` table of a parsed config file (``None`` when there is none). Each key is
    a login, each value one role name or a non-empty list of them; anything else is a
    :class:`ConfigError` naming the key."""
    if "roles" not in data:
        return None
    table = data["roles"]
    where = f"{source}: [roles]" if source else "[roles]"
    known = ", ".join(r.value for r in ALL_ROLES)
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table mapping logins to roles, e.g. alice = \"finance\"")
    grants: list[tuple[str, tuple[Role, ...]]] = []
    for login, value in table.items():
        if not login.strip():
            raise ConfigError(f"{where}: an empty login")
        if isinstance(value, dict):
            raise ConfigError(f"{where} {login!r}: a table, not roles — write a login that holds a dot in quotes, "
                              f"e.g. \"{login}.{next(iter(value), 'name')}\" = \"finance\"")
        names = [value] if isinstance(value, str) else value
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
            raise ConfigError(f"{where} {login!r}: give a role name or a non-empty list of role names ({known}), "
                              f"not {value!r}")
        roles: list[Role] = []
        for name in names:
            try:
                role = Role(name.strip())
            except ValueError:
                raise ConfigError(f"{where} {login!r}: unknown role {name!r} (roles: {known})") from None
            if role not in roles:
                roles.append(role)
        grants.append((login, tuple(roles)))
    return RolePolicy(tuple(sorted(grants)), source)


def load_roles(path: Path) -> RolePolicy | None:
    """The role policy of the config file at ``path``; ``None`` when the file does not exist or
    has no ``[roles]`` table (then the local login holds every role)."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except OSError as exc:  # unreadable: the policy is unknown, so nobody is granted anything
        raise ConfigError(f"{path}: cannot read the role policy: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return parse_roles(data, str(path))
