"""Adding, editing, duplicating and deleting connection profiles in config.toml — in place.

The file is the user's: it is edited with ``tomlkit``, so every comment, blank line and table
order outside the table being changed survives byte for byte (a new profile is appended at the
end, a deleted one leaves no trace, an edited key keeps its line and trailing comment). Each
change is one read-modify-write under a file lock (``config.toml.lock``), validated with the
same parser the commands load profiles with (:func:`services.io.config.parse_profiles`) before
anything is written, and written atomically: the previous version is kept as
``config.toml.bak``, then the new text goes to a temporary file created 0600 in the same folder,
is flushed to disk and renamed over the file (:func:`services.io.config.write_private`).

Credentials (``SECRET_KEYS``: Stripe's ``api_key``, Tryton's ``password``, Zendesk's
``api_token``) never go into the file: they are stored in the OS keyring through ``keyring``
(service ``SyncDesk``, user ``<profile>/<system>/<key>`` — the scheme
:mod:`services.io.config` reads), or referenced by the name of an environment variable
(``<key>_env = "VAR"``). Only the built-in demo's throwaway credentials are written into the
file (``plain_secrets=True``, as the demo always did). A keyring that cannot store a secret
(no backend on a headless server) stops the change with :class:`KeyringUnavailable` and nothing
is written. Nothing here ever puts a secret's value in an exception or a result.

Every function is synchronous and quick; the ``*_async`` twins run it in a worker thread so the
console's service loop (and a dialog waiting on it) never blocks on the disk or the keyring.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import tomlkit
from filelock import FileLock, Timeout
from tomlkit.items import Table
from tomlkit.toml_document import TOMLDocument

from services.core.domain import System
from services.io.config import (
    KEYRING_SERVICE,
    KINDS,
    PROFILE_KEYS,
    SECRET_KEYS,
    ConfigError,
    Profile,
    keyring_username,
    parse_profiles,
    write_private,
)

#: a profile's name also names its files (``snapshot-NAME.db``) and its keyring entries
PROFILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
#: how long a change waits for another process editing the same file
LOCK_TIMEOUT = 10.0

Setting = str | int | float | bool


class ConfigWriteError(ConfigError):
    """A change to config.toml was refused; nothing was written. The message names the profile,
    system and key, never a secret's value."""


class KeyringUnavailable(ConfigWriteError):
    """The OS keyring cannot store (or delete) a credential here."""


@dataclass(frozen=True)
class SystemInput:
    """One system's table as the user gives it (a dialog's fields, ``connect add``'s flags).

    ``settings``: the non-secret keys (``database``, ``login``, ``email``, ``total_timeout``…;
    ``None`` removes a key on an edit). ``secrets``: credential -> value, stored in the keyring.
    ``secret_env``: credential -> the environment variable holding it (``<key>_env``).
    ``tax_map``: the ERP's billing tax rate -> ERP tax id (``None``: left as it is).
    ``drop_secrets``: credentials removed on an edit, from the file and the keyring (Zendesk's
    API token when the profile moves to an OAuth token, or the other way round)."""

    system: System
    url: str | None = None
    settings: Mapping[str, Setting | None] = field(default_factory=dict)
    secrets: Mapping[str, str] = field(default_factory=dict)
    secret_env: Mapping[str, str] = field(default_factory=dict)
    tax_map: Mapping[str, int] | None = None
    drop_secrets: Sequence[str] = ()

    @property
    def kind(self) -> str:
        return KINDS[self.system]

    def __repr__(self) -> str:  # the values of ``secrets`` never show
        return (f"SystemInput(system={self.system.value!r}, url={self.url!r}, settings={dict(self.settings)!r}, "
                f"secrets={sorted(self.secrets)!r}, secret_env={dict(self.secret_env)!r})")


@dataclass(frozen=True)
class WriteResult:
    """What a change did: the file, its previous version, and the keyring entries (user names,
    never values) it stored or removed."""

    path: Path
    backup: Path | None
    profile: str
    stored_secrets: tuple[str, ...] = ()
    removed_secrets: tuple[str, ...] = ()


def backup_path(path: Path) -> Path:
    return path.with_name(path.name + ".bak")


# -- the keyring -----------------------------------------------------------------------------
class _KeyringChanges:
    """The keyring entries one change sets and deletes, applied before the file is written and
    undone if writing it fails (so a refused change leaves the keyring as it was)."""

    def __init__(self) -> None:
        self.sets: dict[str, str] = {}
        self.deletes: set[str] = set()
        self._undo: list[tuple[str, str | None]] = []

    def set(self, user: str, value: str) -> None:
        self.deletes.discard(user)
        self.sets[user] = value

    def delete(self, user: str) -> None:
        self.sets.pop(user, None)
        self.deletes.add(user)

    def apply(self) -> None:
        """Store the sets (a keyring that cannot: :class:`KeyringUnavailable`, nothing kept),
        then the deletes — best effort: with no keyring there is nothing in it to delete."""
        if not self.sets and not self.deletes:
            return
        keyring, _ = _keyring()
        try:
            for user, value in self.sets.items():
                self._undo.append((user, keyring.get_password(KEYRING_SERVICE, user)))
                keyring.set_password(KEYRING_SERVICE, user, value)
        except Exception as exc:
            self.undo()
            raise KeyringUnavailable(_keyring_problem(exc)) from None
        for user in sorted(self.deletes):
            try:
                old = keyring.get_password(KEYRING_SERVICE, user)
                if old is not None:
                    keyring.delete_password(KEYRING_SERVICE, user)
                    self._undo.append((user, old))
            except Exception:  # no keyring (a headless machine): nothing was stored there
                break

    def undo(self) -> None:
        with contextlib.suppress(Exception):
            keyring, _ = _keyring()
            for user, old in reversed(self._undo):
                with contextlib.suppress(Exception):
                    if old is None:
                        keyring.delete_password(KEYRING_SERVICE, user)
                    else:
                        keyring.set_password(KEYRING_SERVICE, user, old)
        self._undo.clear()


def _keyring() -> tuple[Any, Any]:
    import keyring
    import keyring.errors

    return keyring, keyring.errors


def _keyring_problem(exc: BaseException) -> str:
    return (f"the OS keyring cannot store the credential ({type(exc).__name__}); on a machine without one, "
            "give it through an environment variable instead (<key>_env = \"VARIABLE\" in the file; `connect add "
            "--stripe-key-env VAR`, `--tryton-password-env VAR`, `--zendesk-token-env VAR`)")


def keyring_secret_users(profile: str, tables: Mapping[str, Any]) -> list[str]:
    """The keyring user names a profile's credentials may be stored under."""
    out: list[str] = []
    for sys_name in tables:
        with contextlib.suppress(ValueError):
            system = System(sys_name)
            out += [keyring_username(profile, system, key) for key in SECRET_KEYS[KINDS[system]]]
    return out


# -- reading, validating and writing the file -----------------------------------------------------
def _load(path: Path) -> tuple[TOMLDocument, str | None]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return tomlkit.document(), None
    try:
        return tomlkit.parse(text), text
    except Exception as exc:  # tomlkit's ParseError names line and column
        raise ConfigWriteError(f"{path}: not valid TOML, nothing changed: {exc}") from None


def _profiles_table(doc: TOMLDocument, create: bool) -> Table | None:
    profiles = doc.get("profiles")
    if profiles is None:
        if not create:
            return None
        profiles = tomlkit.table(is_super_table=True)
        doc["profiles"] = profiles
        profiles = doc["profiles"]
    if not isinstance(profiles, Table):
        raise ConfigWriteError("[profiles] must be a table of [profiles.NAME.SYSTEM] tables")
    return profiles


def _profile_table(profiles: Table | None, name: str, path: Path) -> Table:
    table = profiles.get(name) if profiles is not None else None
    if not isinstance(table, Table):
        have = ", ".join(sorted(profiles or {})) or "none"
        raise ConfigWriteError(f"{path}: no profile {name!r} (have: {have})")
    return table


def _in_keyring(user: str, keys: _KeyringChanges | None) -> bool:
    """Whether the credential ``user`` will be in the keyring once this change is applied."""
    if keys is not None and user in keys.sets:
        return True
    if keys is not None and user in keys.deletes:
        return False
    try:
        keyring, _ = _keyring()
        return keyring.get_password(KEYRING_SERVICE, user) is not None
    except Exception:  # no keyring backend: nothing is stored there
        return False


def _validate(doc: TOMLDocument, name: str, path: Path, keys: _KeyringChanges | None = None) -> None:
    """Parse the edited profile as the commands will (required keys, kinds, URLs, tax map); an
    ``<key>_env`` variable need not be set while the file is written. A credential kept in the
    keyring (or stored there by ``keys``) counts as given, so the settings that go with it are
    checked (Zendesk's e-mail with an API token, none with an OAuth token)."""
    data = tomllib.loads(tomlkit.dumps(doc))
    tables = data.get("profiles", {}).get(name)
    if tables is None:
        return
    default_kinds = {s.value: k for s, k in KINDS.items()}
    for system_name, table in tables.items():
        if not isinstance(table, dict):
            continue
        for key in SECRET_KEYS.get(str(table.get("kind", default_kinds.get(system_name))), ()):
            if key not in table and f"{key}_env" not in table and _in_keyring(f"{name}/{system_name}/{key}", keys):
                table[key] = "(in the keyring)"
    env = {str(v): "set" for t in tables.values() if isinstance(t, dict)
           for k, v in t.items() if k.endswith("_env")}
    try:
        parse_profiles({"profiles": {name: tables}}, environ=env, keyring_lookup=False)
    except ConfigError as exc:
        raise ConfigWriteError(f"{path}: {exc}; nothing changed") from None


def _fsync_dir(folder: Path) -> None:
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _commit(path: Path, doc: TOMLDocument, old_text: str | None, keys: _KeyringChanges, *,
            trim_end: bool = False) -> Path | None:
    """Keyring first (a refusal leaves the file untouched), then the previous version to
    ``.bak`` and the new text atomically; the keyring changes are undone if the file cannot be
    written. ``trim_end``: one newline at the end (a deleted last table leaves no blank line
    that separated it)."""
    new_text = tomlkit.dumps(doc)
    if trim_end and new_text.endswith("\n\n") and not (old_text or "").endswith("\n\n"):
        new_text = new_text.rstrip("\n") + "\n"
    keys.apply()
    try:
        backup: Path | None = None
        if old_text is not None:
            backup = backup_path(path)
            write_private(backup, old_text)
        write_private(path, new_text)
        _fsync_dir(path.parent)
    except BaseException:
        keys.undo()
        raise
    return backup


T = TypeVar("T")


def _locked(path: Path, change: Callable[[], T]) -> T:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with FileLock(str(path) + ".lock", timeout=LOCK_TIMEOUT):
            return change()
    except Timeout:
        raise ConfigWriteError(f"{path} is being changed by another process; try again") from None


# -- building a system's table ---------------------------------------------------------------------
def _check_name(name: str) -> None:
    if not PROFILE_NAME.match(name):
        raise ConfigWriteError(f"profile name {name!r}: use 1 to 64 letters, digits, '.', '_' or '-', "
                               "starting with a letter or digit")


def _check_input(profile: str, spec: SystemInput) -> None:
    where = f"profile {profile!r}, {spec.system.value}"
    allowed = SECRET_KEYS[spec.kind]
    for key in (*spec.secrets, *spec.secret_env, *spec.drop_secrets):
        if key not in allowed:
            raise ConfigWriteError(f"{where}: {key!r} is not a credential of {spec.kind} (credentials: "
                                   f"{', '.join(allowed)})")
    for key in spec.secrets:
        if key in spec.secret_env:
            raise ConfigWriteError(f"{where}: {key!r} is given both as a value and as an environment variable")
    for key in spec.settings:
        base = key[: -len("_env")] if key.endswith("_env") else key
        if base in allowed or key in ("kind", "url", "tax_map", *PROFILE_KEYS):
            raise ConfigWriteError(f"{where}: {key!r} is not a setting (credentials go to the keyring or an "
                                   "environment variable; url, kind and tax_map have their own fields)")
    for key, var in spec.secret_env.items():
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", var):
            raise ConfigWriteError(f"{where}: {var!r} is not an environment variable name (for {key})")


def _apply_input(profile: str, table: Table, spec: SystemInput, keys: _KeyringChanges,
                 plain_secrets: bool) -> list[str]:
    """Set ``spec`` into ``table`` in place; returns the keyring users it will store."""
    stored: list[str] = []
    table["kind"] = spec.kind
    if spec.url is not None:
        table["url"] = spec.url.strip()
    for key, value in spec.settings.items():
        if value is None:
            if key in table:
                del table[key]
        else:
            table[key] = value
    for key, value in spec.secrets.items():
        for stale in (f"{key}_env",) if plain_secrets else (key, f"{key}_env"):
            if stale in table:
                del table[stale]
        user = keyring_username(profile, spec.system, key)
        if plain_secrets:
            table[key] = value
            keys.delete(user)
        else:
            keys.set(user, value)
            stored.append(user)
    for key in spec.drop_secrets:
        for stale in (key, f"{key}_env"):
            if stale in table:
                del table[stale]
        keys.delete(keyring_username(profile, spec.system, key))
    for key, var in spec.secret_env.items():
        if key in table:
            del table[key]
        table[f"{key}_env"] = var
        keys.delete(keyring_username(profile, spec.system, key))
    if spec.tax_map is not None:
        if "tax_map" in table:
            del table["tax_map"]
        if spec.tax_map:
            tax = tomlkit.table()
            for rate, tax_id in spec.tax_map.items():
                tax[rate] = tax_id
            table["tax_map"] = tax
    return stored


def _new_profile_table(read_only: bool) -> Table:
    table = tomlkit.table(is_super_table=not read_only)
    if read_only:
        table["read_only"] = True
    return table


def _set_read_only(table: Table, read_only: bool) -> None:
    if read_only:
        if table.get("read_only") is not True:
            table["read_only"] = True
    elif "read_only" in table:
        del table["read_only"]


# -- the changes ---------------------------------------------------------------------------------------
def add_profile(path: Path, name: str, systems: Sequence[SystemInput], *, read_only: bool = False,
                plain_secrets: bool = False) -> WriteResult:
    """Append profile ``name`` with one table per system; its credentials go to the keyring
    (``plain_secrets``: into the file — the built-in demo only). Refused when it exists."""
    _check_name(name)
    if not systems:
        raise ConfigWriteError(f"profile {name!r}: give at least one system")
    for spec in systems:
        _check_input(name, spec)
        if spec.url is None:
            raise ConfigWriteError(f"profile {name!r}, {spec.system.value}: missing 'url'")

    def change() -> WriteResult:
        doc, old = _load(path)
        profiles = _profiles_table(doc, create=True)
        assert profiles is not None
        if name in profiles:
            raise ConfigWriteError(f"{path}: profile {name!r} exists already (edit it, or choose another name)")
        keys = _KeyringChanges()
        for user in keyring_secret_users(name, {s.value: None for s in System}):
            keys.delete(user)  # a leftover of an earlier profile of that name must not leak into this one
        table = _new_profile_table(read_only)
        stored: list[str] = []
        for spec in systems:
            sys_table = tomlkit.table()
            stored += _apply_input(name, sys_table, spec, keys, plain_secrets)
            table[spec.system.value] = sys_table
        profiles[name] = table
        _validate(doc, name, path, keys)
        backup = _commit(path, doc, old, keys)
        return WriteResult(path, backup, name, tuple(stored))

    return _locked(path, change)


def edit_profile(path: Path, name: str, systems: Sequence[SystemInput] = (), *, read_only: bool | None = None,
                 remove_systems: Sequence[System] = (), plain_secrets: bool = False) -> WriteResult:
    """Change profile ``name`` in place: each given system's table is updated key by key (a
    system the profile lacks is added; ``settings`` values of ``None`` are removed), the systems
    in ``remove_systems`` are dropped with their keyring entries, ``read_only`` set or cleared.
    Every other line of the file stays as it was."""
    for spec in systems:
        _check_input(name, spec)

    def change() -> WriteResult:
        doc, old = _load(path)
        table = _profile_table(_profiles_table(doc, create=False), name, path)
        keys = _KeyringChanges()
        stored: list[str] = []
        removed: list[str] = []
        for system in remove_systems:
            if system.value in table:
                del table[system.value]
            for key in SECRET_KEYS[KINDS[system]]:
                keys.delete(keyring_username(name, system, key))
                removed.append(keyring_username(name, system, key))
        for spec in systems:
            sys_table = table.get(spec.system.value)
            if not isinstance(sys_table, Table):
                if spec.url is None:
                    raise ConfigWriteError(f"profile {name!r}, {spec.system.value}: missing 'url'")
                sys_table = tomlkit.table()
                stored += _apply_input(name, sys_table, spec, keys, plain_secrets)
                table[spec.system.value] = sys_table
            else:
                stored += _apply_input(name, sys_table, spec, keys, plain_secrets)
        if read_only is not None:
            _set_read_only(table, read_only)
        if not any(isinstance(v, Table) for v in table.values()):
            raise ConfigWriteError(f"profile {name!r} would have no system left; delete the profile instead")
        _validate(doc, name, path, keys)
        backup = _commit(path, doc, old, keys)
        return WriteResult(path, backup, name, tuple(stored), tuple(removed))

    return _locked(path, change)


def duplicate_profile(path: Path, source: str, new_name: str) -> WriteResult:
    """Copy profile ``source`` as ``new_name`` (appended), its keyring credentials copied too."""
    _check_name(new_name)

    def change() -> WriteResult:
        doc, old = _load(path)
        profiles = _profiles_table(doc, create=False)
        src = _profile_table(profiles, source, path)
        assert profiles is not None
        if new_name in profiles:
            raise ConfigWriteError(f"{path}: profile {new_name!r} exists already")
        copy = tomlkit.parse(tomlkit.dumps({"p": src.unwrap()}))["p"]
        assert isinstance(copy, Table)
        table = _new_profile_table(bool(src.get("read_only", False)))
        for key, value in copy.items():
            if key not in PROFILE_KEYS:
                table[key] = value
        profiles[new_name] = table
        keys = _KeyringChanges()
        stored: list[str] = []
        keyring, _ = _keyring()
        for user in keyring_secret_users(source, src):
            try:
                value = keyring.get_password(KEYRING_SERVICE, user)
            except Exception:  # no keyring: nothing of the source's is stored there
                value = None
            target = new_name + user[len(source):]
            if value is not None:
                keys.set(target, value)
                stored.append(target)
            else:
                keys.delete(target)
        _validate(doc, new_name, path, keys)
        backup = _commit(path, doc, old, keys)
        return WriteResult(path, backup, new_name, tuple(stored))

    return _locked(path, change)


def delete_profile(path: Path, name: str) -> WriteResult:
    """Remove profile ``name``'s tables from the file and its credentials from the keyring."""

    def change() -> WriteResult:
        doc, old = _load(path)
        profiles = _profiles_table(doc, create=False)
        table = _profile_table(profiles, name, path)
        assert profiles is not None
        users = keyring_secret_users(name, table)
        del profiles[name]
        keys = _KeyringChanges()
        for user in users:
            keys.delete(user)
        backup = _commit(path, doc, old, keys, trim_end=True)
        return WriteResult(path, backup, name, (), tuple(users))

    return _locked(path, change)


def replace_system_table(path: Path, profile: str, system: System, values: Mapping[str, Any]) -> WriteResult:
    """Make ``[profiles.PROFILE.SYSTEM]`` hold exactly ``values`` (written as given: the demo's
    Tryton sandbox, whose throwaway password stays in the file as the demo's always did); the
    profile is created when missing, every other table and comment is kept."""
    _check_name(profile)

    def change() -> WriteResult:
        doc, old = _load(path)
        profiles = _profiles_table(doc, create=True)
        assert profiles is not None
        table = profiles.get(profile)
        if not isinstance(table, Table):
            table = _new_profile_table(False)
            profiles[profile] = table
            table = profiles[profile]
            assert isinstance(table, Table)
        sys_table = table.get(system.value)
        if not isinstance(sys_table, Table):
            table[system.value] = tomlkit.table()
            sys_table = table[system.value]
            assert isinstance(sys_table, Table)
        _replace_values(sys_table, values)
        _validate(doc, profile, path)
        return WriteResult(path, _commit(path, doc, old, _KeyringChanges()), profile)

    return _locked(path, change)


def _replace_values(sys_table: Table, values: Mapping[str, Any]) -> None:
    """Make ``sys_table`` hold exactly ``values``: keys it has no more are removed, changed ones
    set in place (their line keeps its place and comment), new ones appended."""
    for key in list(sys_table.keys()):
        if key not in values:
            del sys_table[key]
    for key, value in values.items():
        current = sys_table.get(key)
        if isinstance(value, Mapping) and isinstance(current, Table):
            _replace_values(current, value)
        elif isinstance(value, Mapping):
            if key in sys_table:
                del sys_table[key]
            sub = tomlkit.table()
            for k, v in value.items():
                sub[k] = v
            sys_table[key] = sub
        elif key not in sys_table or sys_table[key] != value:
            sys_table[key] = value


def _put(doc: TOMLDocument, profile: Profile, keys: _KeyringChanges, plain_secrets: bool) -> list[str]:
    """Set ``profile`` into ``doc`` (see :func:`put_profiles`); returns the keyring users stored."""
    profiles = _profiles_table(doc, create=True)
    assert profiles is not None
    table = profiles.get(profile.name)
    if not isinstance(table, Table):
        profiles[profile.name] = _new_profile_table(profile.read_only)
        table = profiles[profile.name]
        assert isinstance(table, Table)
    else:
        _set_read_only(table, profile.read_only)
    stored: list[str] = []
    for key in list(table.keys()):
        if key in {s.value for s in System} and System(key) not in profile.connections:
            del table[key]
    for system, conn in profile.connections.items():
        values: dict[str, Any] = {"kind": conn.kind, "url": conn.url, **conn.settings}
        for key, secret in conn.secrets.items():
            user = keyring_username(profile.name, system, key)
            if plain_secrets:
                values[key] = secret.reveal()
                keys.delete(user)
            else:
                keys.set(user, secret.reveal())
                stored.append(user)
        if conn.tax_map:
            values["tax_map"] = dict(conn.tax_map)
        sys_table = table.get(system.value)
        if not isinstance(sys_table, Table):
            table[system.value] = tomlkit.table()
            sys_table = table[system.value]
            assert isinstance(sys_table, Table)
        _replace_values(sys_table, values)
    return stored


def put_profiles(path: Path, profiles: Sequence[Profile], *, plain_secrets: bool) -> WriteResult:
    """Write ``profiles`` (built in memory, e.g. the demo servers') into the file in one change:
    each appended when missing, else its tables replaced in place (keys it no longer has
    removed, systems it no longer has dropped); other profiles, the ``[roles]`` table and
    comments are kept. Credentials go to the keyring, or into the file with ``plain_secrets``
    (the demo's only)."""
    if not profiles:
        raise ConfigWriteError("no profile to write")
    for profile in profiles:
        _check_name(profile.name)

    def change() -> WriteResult:
        doc, old = _load(path)
        keys = _KeyringChanges()
        stored: list[str] = []
        for profile in profiles:
            stored += _put(doc, profile, keys, plain_secrets)
            _validate(doc, profile.name, path, keys)
        backup = _commit(path, doc, old, keys)
        return WriteResult(path, backup, ", ".join(p.name for p in profiles), tuple(stored))

    return _locked(path, change)


def profile_names(path: Path) -> list[str]:
    """The profiles the file names, in file order (empty when there is no file)."""
    doc, _ = _load(path)
    profiles = _profiles_table(doc, create=False)
    return [k for k, v in (profiles or {}).items() if isinstance(v, Table)]


# -- async twins (a dialog calls these on the service loop) -------------------------------------------
async def add_profile_async(path: Path, name: str, systems: Sequence[SystemInput], *,
                            read_only: bool = False) -> WriteResult:
    return await asyncio.to_thread(add_profile, path, name, systems, read_only=read_only)


async def edit_profile_async(path: Path, name: str, systems: Sequence[SystemInput] = (), *,
                             read_only: bool | None = None,
                             remove_systems: Sequence[System] = ()) -> WriteResult:
    return await asyncio.to_thread(edit_profile, path, name, systems, read_only=read_only,
                                   remove_systems=remove_systems)


async def duplicate_profile_async(path: Path, source: str, new_name: str) -> WriteResult:
    return await asyncio.to_thread(duplicate_profile, path, source, new_name)


async def delete_profile_async(path: Path, name: str) -> WriteResult:
    return await asyncio.to_thread(delete_profile, path, name)
