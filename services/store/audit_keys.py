"""Where an audit log's signing key and its witnesses live: never in SYNCDESK_HOME.

Each audit log (one database) has an Ed25519 key of its own, named by the log's id. It is kept

* in the **OS keyring** when a usable backend exists (macOS Keychain, Windows Credential
  Manager, Secret Service / KWallet): service ``SyncDesk audit log <log id>``, user
  ``signing-key`` (the private key) and ``witness`` (the newest signed checkpoint); the service
  ``SyncDesk audit logs`` maps each database path (user) to the id of the log anchored there;
* else in a **key directory**: ``$SYNCDESK_AUDIT_KEY_DIR`` when set (it then takes the keyring's
  place, e.g. a directory on a mount only the operator's account can read), or the platform's
  user config folder (``platformdirs.user_config_dir("SyncDesk")/audit-keys``) with a warning,
  logged once and shown by ``audit verify``. There ``<log id>.key`` (0600 from the first byte),
  ``<log id>.witness.json`` and ``paths/<sha256 of the database path>.json``.

Optional **witness directories** (``[audit] witness = "DIR"`` in config.toml, or
``SYNCDESK_AUDIT_WITNESS=DIR``; several with the platform's path separator) receive
``<log id>.json``, the newest signed checkpoint, beside the default witness: a share, a WORM mount.

Nothing here judges a checkpoint: this module stores text (``services.store.audit_anchor`` signs
and checks).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import tomllib
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import platformdirs

from services.store.home import APP_NAME, syncdesk_home

log = logging.getLogger(__name__)

KEY_DIR_ENV = "SYNCDESK_AUDIT_KEY_DIR"
WITNESS_ENV = "SYNCDESK_AUDIT_WITNESS"
#: keyring service of one log's key and witness (``{}``: the log id)
KEYRING_LOG_SERVICE = "SyncDesk audit log {}"
#: keyring service mapping a database path (user) to the id of the log anchored there
KEYRING_PATHS_SERVICE = "SyncDesk audit logs"
KEY_USER, WITNESS_USER = "signing-key", "witness"

_warned: set[str] = set()
_warn_lock = threading.Lock()
#: one lock per written file or keyring entry: a witness is read, compared and replaced under it
_write_locks: dict[str, threading.Lock] = {}


class KeyStoreError(Exception):
    """The keyring or the key directory could not be read or written."""


def _lock_for(name: str) -> threading.Lock:
    with _warn_lock:
        return _write_locks.setdefault(name, threading.Lock())


def warn_once(message: str) -> None:
    """Log ``message`` as a warning the first time this process sees it."""
    with _warn_lock:
        if message in _warned:
            return
        _warned.add(message)
    log.warning("%s", message)


class KeyStore(ABC):
    """The place of the signing keys, the default witnesses and the path → log id map."""

    #: what protects the key, for ``audit verify`` ("the OS keyring (…)" / "the key file … ")
    description: str
    #: why this protection is weaker than it could be (None: nothing to say)
    warning: str | None = None

    @abstractmethod
    def signing_key(self, log_id: str) -> str | None:
        """The private key of ``log_id`` (base64 of its 32 bytes), or None."""

    @abstractmethod
    def create_signing_key(self, log_id: str, text: str) -> None:
        """Store a new private key (refused if one is there already)."""

    @abstractmethod
    def witness(self, log_id: str) -> str | None:
        """The default witness of ``log_id`` (JSON text), or None when there is none."""

    @abstractmethod
    def write_witness(self, log_id: str, text: str) -> None: ...

    @abstractmethod
    def witness_where(self, log_id: str) -> str:
        """Where the default witness is, in words."""

    @abstractmethod
    def log_for_path(self, db: Path) -> str | None:
        """The id of the log anchored at database ``db``, or None."""

    @abstractmethod
    def register_path(self, db: Path, log_id: str) -> None: ...


class KeyringStore(KeyStore):
    """Keys and default witnesses in the OS keyring."""

    def __init__(self, backend: Any) -> None:
        self.backend = backend
        self.description = f"the OS keyring ({type(backend).__module__}.{type(backend).__qualname__})"

    def _get(self, service: str, user: str) -> str | None:
        try:
            value = self.backend.get_password(service, user)
        except Exception as exc:  # any backend failure: keyring.errors.* or the backend's own
            raise KeyStoreError(f"the OS keyring could not be read: {exc}") from exc
        return value if isinstance(value, str) else None

    def _set(self, service: str, user: str, value: str) -> None:
        try:
            self.backend.set_password(service, user, value)
        except Exception as exc:
            raise KeyStoreError(f"the OS keyring could not be written: {exc}") from exc

    def signing_key(self, log_id: str) -> str | None:
        return self._get(KEYRING_LOG_SERVICE.format(log_id), KEY_USER)

    def create_signing_key(self, log_id: str, text: str) -> None:
        service = KEYRING_LOG_SERVICE.format(log_id)
        with _lock_for(f"keyring:{service}:{KEY_USER}"):
            if self._get(service, KEY_USER) is not None:
                raise KeyStoreError(f"audit log {log_id} already has a signing key")
            self._set(service, KEY_USER, text)

    def witness(self, log_id: str) -> str | None:
        return self._get(KEYRING_LOG_SERVICE.format(log_id), WITNESS_USER)

    def write_witness(self, log_id: str, text: str) -> None:
        self._set(KEYRING_LOG_SERVICE.format(log_id), WITNESS_USER, text)

    def witness_where(self, log_id: str) -> str:
        return f"the OS keyring (service {KEYRING_LOG_SERVICE.format(log_id)!r}, user {WITNESS_USER!r})"

    def log_for_path(self, db: Path) -> str | None:
        return self._get(KEYRING_PATHS_SERVICE, str(db))

    def register_path(self, db: Path, log_id: str) -> None:
        if self.log_for_path(db) != log_id:
            self._set(KEYRING_PATHS_SERVICE, str(db), log_id)


def write_private(path: Path, text: str) -> None:
    """Create ``path`` holding ``text``, readable and writable by its owner only from the first
    byte (``O_EXCL``: never over an existing file), and flush it to the disk."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o600)
    try:
        os.write(fd, text.encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_file(path: Path, text: str, *, private: bool) -> None:
    """Replace ``path`` by a file holding ``text``, atomically (a reader sees the old or the new
    text, never a part) and durably (flushed before the rename)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o600 if private else 0o644)
    try:
        os.write(fd, text.encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyStoreError(f"{path} could not be read: {exc}") from exc


class KeyDirStore(KeyStore):
    """Keys and default witnesses as files in a directory of their own (0700, files 0600)."""

    def __init__(self, folder: Path, why: str, warning: str | None = None) -> None:
        self.folder = folder
        self.description = f"the key file in {folder} ({why})"
        self.warning = warning

    def _ensure(self) -> None:
        try:
            self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            (self.folder / "paths").mkdir(mode=0o700, exist_ok=True)
        except OSError as exc:
            raise KeyStoreError(f"the audit key directory {self.folder} could not be created: {exc}") from exc

    def key_file(self, log_id: str) -> Path:
        return self.folder / f"{log_id}.key"

    def witness_file(self, log_id: str) -> Path:
        return self.folder / f"{log_id}.witness.json"

    def _path_file(self, db: Path) -> Path:
        return self.folder / "paths" / f"{hashlib.sha256(str(db).encode()).hexdigest()[:40]}.json"

    def signing_key(self, log_id: str) -> str | None:
        text = _read(self.key_file(log_id))
        return text.strip() if text is not None else None

    def create_signing_key(self, log_id: str, text: str) -> None:
        self._ensure()
        try:
            write_private(self.key_file(log_id), text + "\n")
        except FileExistsError as exc:
            raise KeyStoreError(f"audit log {log_id} already has a signing key") from exc
        except OSError as exc:
            raise KeyStoreError(f"the key file {self.key_file(log_id)} could not be written: {exc}") from exc

    def witness(self, log_id: str) -> str | None:
        return _read(self.witness_file(log_id))

    def write_witness(self, log_id: str, text: str) -> None:
        self._ensure()
        try:
            replace_file(self.witness_file(log_id), text, private=True)
        except OSError as exc:
            raise KeyStoreError(f"the witness {self.witness_file(log_id)} could not be written: {exc}") from exc

    def witness_where(self, log_id: str) -> str:
        return str(self.witness_file(log_id))

    def log_for_path(self, db: Path) -> str | None:
        text = _read(self._path_file(db))
        if text is None:
            return None
        try:
            data = json.loads(text)
        except ValueError:
            return None
        value = data.get("log_id") if isinstance(data, dict) and data.get("path") == str(db) else None
        return value if isinstance(value, str) else None

    def register_path(self, db: Path, log_id: str) -> None:
        if self.log_for_path(db) == log_id:
            return
        self._ensure()
        try:
            replace_file(self._path_file(db), json.dumps({"path": str(db), "log_id": log_id}), private=True)
        except OSError as exc:
            raise KeyStoreError(f"the audit key directory {self.folder} could not be written: {exc}") from exc


def default_key_dir() -> Path:
    """The fallback key directory: ``<user config dir>/audit-keys`` (never SYNCDESK_HOME)."""
    return Path(platformdirs.user_config_dir(APP_NAME, appauthor=False)) / "audit-keys"


def _usable(backend: Any) -> bool:
    """A keyring backend that stores something (not the fail or null backend, nor an empty chain)."""
    from keyring.backends import chainer, fail, null

    if isinstance(backend, fail.Keyring | null.Keyring):
        return False
    if isinstance(backend, chainer.ChainerBackend):
        return bool(backend.backends)
    return True


def _inside(folder: Path, other: Path) -> bool:
    try:
        folder.resolve().relative_to(other.resolve())
    except (ValueError, OSError):
        return False
    return True


def open_key_store(db: Path) -> KeyStore:
    """The key store for the audit database ``db``: the key directory of ``SYNCDESK_AUDIT_KEY_DIR``
    when set, else the OS keyring when a usable backend exists, else the fallback key directory
    (with a warning, logged once)."""
    raw = os.environ.get(KEY_DIR_ENV, "").strip()
    if raw:
        folder = Path(raw).expanduser().absolute()
        warning = None
        if _inside(folder, syncdesk_home(create=False)) or _inside(folder, db.parent):
            warning = (f"the audit key directory {folder} is inside the folder of the audit log: whoever can edit "
                       "the log can also re-sign it (set SYNCDESK_AUDIT_KEY_DIR to a folder elsewhere)")
            warn_once(warning)
        return KeyDirStore(folder, f"set by {KEY_DIR_ENV}", warning)
    import keyring

    try:
        backend = keyring.get_keyring()
    except Exception as exc:  # a broken keyring configuration is no keyring
        backend, reason = None, f"the keyring could not be loaded: {exc}"
    else:
        reason = f"no usable OS keyring: {type(backend).__module__}.{type(backend).__qualname__}"
    if backend is not None and _usable(backend):
        return KeyringStore(backend)
    folder = default_key_dir()
    warning = (f"{reason}; the audit log's signing key is kept in a key file in {folder} (owner-only), "
               "which anyone able to read your files can copy")
    warn_once(warning)
    return KeyDirStore(folder, "fallback: no usable OS keyring", warning)


# -- witness directories ----------------------------------------------------------------------


class WitnessDir:
    """A directory receiving ``<log id>.json``: the log's newest signed checkpoint."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def file(self, log_id: str) -> Path:
        return self.folder / f"{log_id}.json"

    def where(self, log_id: str) -> str:
        return str(self.file(log_id))

    def reachable(self) -> bool:
        return self.folder.is_dir()

    def read(self, log_id: str) -> str | None:
        if not self.reachable():
            raise KeyStoreError(f"the witness directory {self.folder} does not exist or is not reachable")
        return _read(self.file(log_id))

    def write(self, log_id: str, text: str) -> None:
        """Never creates the directory: a share that is not mounted must not become a local folder."""
        if not self.reachable():
            raise KeyStoreError(f"the witness directory {self.folder} does not exist or is not reachable")
        try:
            replace_file(self.file(log_id), text, private=False)
        except OSError as exc:
            raise KeyStoreError(f"the witness {self.file(log_id)} could not be written: {exc}") from exc


def configured_witness_dirs(config: Path | None = None) -> list[Path]:
    """Witness directories from ``SYNCDESK_AUDIT_WITNESS`` (several: the path separator) and
    ``[audit] witness`` in config.toml (a string or a list of strings). A malformed entry is
    skipped with a warning: the witnesses a log was written to are remembered by its default
    witness, so a removed line does not silence them."""
    found: list[Path] = []
    raw = os.environ.get(WITNESS_ENV, "")
    found += [Path(p).expanduser().absolute() for p in raw.split(os.pathsep) if p.strip()]
    path = config if config is not None else syncdesk_home(create=False) / "config.toml"
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        warn_once(f"{path}: could not read the [audit] table ({exc}); no witness directory from it")
        data = {}
    table = data.get("audit", {})
    value = table.get("witness") if isinstance(table, dict) else None
    values = [value] if isinstance(value, str) else value if isinstance(value, list) else []
    if value is not None and not all(isinstance(v, str) and v.strip() for v in values):
        warn_once(f"{path}: [audit] witness must be a directory or a list of directories; ignored")
        values = []
    found += [Path(v).expanduser().absolute() for v in values]
    unique: list[Path] = []
    for p in found:
        if p not in unique:
            unique.append(p)
    return unique


__all__ = ["KEY_DIR_ENV", "WITNESS_ENV", "KeyDirStore", "KeyStore", "KeyStoreError", "KeyringStore", "WitnessDir",
           "configured_witness_dirs", "default_key_dir", "open_key_store", "replace_file", "warn_once",
           "write_private"]
