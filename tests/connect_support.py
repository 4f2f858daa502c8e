"""What the connect tests share: an in-memory OS keyring (never the user's real one) and a
search for secrets in every file under a folder."""

from __future__ import annotations

import base64
from collections.abc import Iterable, Iterator
from pathlib import Path

import keyring
import keyring.backend
import keyring.errors
import pytest


class MemoryKeyring(keyring.backend.KeyringBackend):
    """A keyring held in a dict: what the tests store never reaches the machine's keyring."""

    priority = 1  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.entries: dict[tuple[str, str], str] = {}
        #: set to make every call fail as a machine without a keyring does
        self.broken = False

    def _check(self) -> None:
        if self.broken:
            raise keyring.errors.NoKeyringError("no recommended backend was available")

    def get_password(self, service: str, username: str) -> str | None:
        self._check()
        return self.entries.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self._check()
        self.entries[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        self._check()
        if (service, username) not in self.entries:
            raise keyring.errors.PasswordDeleteError(username)
        del self.entries[(service, username)]


@pytest.fixture
def memory_keyring() -> Iterator[MemoryKeyring]:
    previous = keyring.get_keyring()
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    try:
        yield backend
    finally:
        keyring.set_keyring(previous)


def secret_forms(secret: str) -> set[str]:
    """The secret raw and base64-encoded (alone and as the tail of a Basic ``user:secret``),
    the forms a leak would take in a file."""
    forms = {secret, base64.b64encode(secret.encode()).decode().rstrip("=")}
    return {f for f in forms if len(f) >= 8}


def files_holding(folders: Iterable[Path], secrets: Iterable[str]) -> list[tuple[Path, str]]:
    """Every (file, secret) where a file under ``folders`` holds one of ``secrets`` in a form
    of :func:`secret_forms` (SQLite databases and logs included: read as bytes)."""
    wanted = {form: s for s in secrets for form in secret_forms(s)}
    hits: list[tuple[Path, str]] = []
    for folder in folders:
        for path in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
            data = path.read_bytes()
            for form, secret in wanted.items():
                if form.encode() in data:
                    hits.append((path, secret[:6] + "…"))
    return hits
