"""Signed checkpoints of the audit log's head and the witness records that carry them: their
shape, their signature (Ed25519 over a domain tag and canonical JSON), and their strict reading
(a value of the wrong type is :class:`Malformed`, never an exception from deeper down).

A checkpoint names the log (its id), an entry (sequence number and hash) and the UTC time it was
signed, and carries what its writer found: ``since`` (when the log was anchored, and how many
entries it already had then: "anchored late") and ``taint`` (the first entry the writer found not
vouched for, and why). ``services.store.audit_anchor`` signs them; ``services.store.audit_judge``
judges a log against them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

DOMAIN = b"syncdesk-audit-checkpoint/1\n"
WITNESS_FORMAT = "syncdesk-audit-witness/1"
GENESIS = "0" * 64
_HEX64 = re.compile(r"[0-9a-f]{64}")
LOG_ID = re.compile(r"[0-9a-f]{32}")
_MAX_TEXT = 2000


class Malformed(ValueError):
    """A checkpoint, witness, key or export that does not have the expected shape and types."""


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def when(at: str) -> str:
    """``at`` for a sentence: "on 2026-01-02 03:04:05 UTC"."""
    try:
        return "on " + datetime.strptime(at, "%Y-%m-%dT%H:%M:%S.%fZ").strftime("%Y-%m-%d %H:%M:%S UTC")
    except ValueError:
        return f"at {at!r}"


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _int(d: dict[str, Any], key: str) -> int:
    value = d.get(key)
    if type(value) is not int or value < 0 or value >= 2 ** 63:
        raise Malformed(f"{key!r} is not a whole number")
    return value


def _text(d: dict[str, Any], key: str, pattern: re.Pattern[str] | None = None) -> str:
    value = d.get(key)
    if not isinstance(value, str) or len(value) > _MAX_TEXT or (pattern is not None and not pattern.fullmatch(value)):
        raise Malformed(f"{key!r} is not {'a valid value' if pattern is not None else 'a text'}")
    return value


def _dict(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise Malformed(f"{what} is not a JSON object")
    return value


# -- checkpoints ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Since:
    """When the log was anchored, and how many entries it already had then (signed late)."""

    late: int  # entries 1..late were written before the log was signed (0: none)
    at: str


@dataclass(frozen=True)
class Taint:
    """The first entry a writer found not vouched for, why, and when it found it."""

    seq: int
    what: str  # one sentence, as verify would have said it
    found_seq: int  # the first entry appended after finding it
    found_at: str

    def sentence(self) -> str:
        return f"{self.what} (found when entry {self.found_seq} was appended {when(self.found_at)})"


@dataclass(frozen=True)
class Checkpoint:
    log_id: str
    seq: int
    hash: str
    at: str
    since: Since
    taint: Taint | None = None

    def body(self) -> dict[str, Any]:
        taint = None if self.taint is None else {"seq": self.taint.seq, "what": self.taint.what,
                                                 "found_seq": self.taint.found_seq, "found_at": self.taint.found_at}
        return {"v": 1, "log_id": self.log_id, "seq": self.seq, "hash": self.hash, "at": self.at,
                "since": {"late": self.since.late, "at": self.since.at}, "taint": taint}

    def payload(self) -> bytes:
        """The bytes signed: a domain tag, then the canonical JSON of :meth:`body`."""
        return DOMAIN + _canonical(self.body())


def parse_checkpoint(value: Any) -> Checkpoint:
    d = _dict(value, "the checkpoint")
    if d.get("v") != 1:
        raise Malformed("unknown checkpoint version")
    since = _dict(d.get("since"), "'since'")
    raw_taint = d.get("taint")
    taint = None
    if raw_taint is not None:
        t = _dict(raw_taint, "'taint'")
        taint = Taint(_int(t, "seq"), _text(t, "what"), _int(t, "found_seq"), _text(t, "found_at"))
    return Checkpoint(_text(d, "log_id", LOG_ID), _int(d, "seq"), _text(d, "hash", _HEX64), _text(d, "at"),
                      Since(_int(since, "late"), _text(since, "at")), taint)


@dataclass(frozen=True)
class Signed:
    checkpoint: Checkpoint
    signature: bytes

    def valid(self, key: Ed25519PublicKey) -> bool:
        try:
            key.verify(self.signature, self.checkpoint.payload())
        except InvalidSignature:
            return False
        return True

    def to_json(self) -> dict[str, Any]:
        return {"checkpoint": self.checkpoint.body(), "signature": b64(self.signature)}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: Any, size: int, what: str) -> bytes:
    if not isinstance(text, str):
        raise Malformed(f"{what} is not a text")
    try:
        data = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise Malformed(f"{what} is not base64") from exc
    if len(data) != size:
        raise Malformed(f"{what} has {len(data)} bytes, not {size}")
    return data


def parse_signed(value: Any) -> Signed:
    d = _dict(value, "the signed checkpoint")
    return Signed(parse_checkpoint(d.get("checkpoint")), unb64(d.get("signature"), 64, "the signature"))


def sign(checkpoint: Checkpoint, key: Ed25519PrivateKey) -> Signed:
    return Signed(checkpoint, key.sign(checkpoint.payload()))


# -- keys ----------------------------------------------------------------------------------------
def private_text(key: Ed25519PrivateKey) -> str:
    from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

    return b64(key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption()))


def load_private(text: str) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(unb64(text, 32, "the signing key"))


def public_text(key: Ed25519PublicKey) -> str:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    return b64(key.public_bytes(Encoding.Raw, PublicFormat.Raw))


def load_public(text: Any) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(unb64(text, 32, "the public key"))


def fingerprint(text: str) -> str:
    """A short, comparable name of a public key: ``SHA256:`` and 16 hex digits in groups of 4."""
    digest = hashlib.sha256(text.encode("ascii", "replace")).hexdigest()[:16]
    return "SHA256:" + "-".join(digest[i:i + 4] for i in range(0, 16, 4))


# -- witness records -----------------------------------------------------------------------------
@dataclass(frozen=True)
class WitnessRecord:
    signed: Signed
    public_key: str
    also: tuple[str, ...] = ()  # witness directories this log was written to (default witness only)


def witness_text(record: WitnessRecord) -> str:
    return json.dumps({"format": WITNESS_FORMAT, "public_key": record.public_key, **record.signed.to_json(),
                       "also": list(record.also)}, sort_keys=True, indent=1) + "\n"


def parse_witness(text: str) -> WitnessRecord:
    try:
        d = _dict(json.loads(text), "the witness")
    except ValueError as exc:  # json.JSONDecodeError, or Malformed
        raise Malformed(str(exc) if isinstance(exc, Malformed) else "it is not JSON") from exc
    if d.get("format") != WITNESS_FORMAT:
        raise Malformed("unknown witness format")
    also = d.get("also", [])
    if not isinstance(also, list) or not all(isinstance(a, str) and len(a) <= _MAX_TEXT for a in also):
        raise Malformed("'also' is not a list of directories")
    load_public(d.get("public_key"))
    return WitnessRecord(parse_signed(d), d["public_key"], tuple(also))


def parse_row(hash_column: Any, body: Any, signature: Any) -> Signed | str:
    """A stored checkpoint (its hash column, signed body text and base64 signature): the signed
    checkpoint, or why it is unreadable."""
    try:
        if not isinstance(body, str):
            raise Malformed("its body is not a text")
        signed = parse_signed({"checkpoint": json.loads(body), "signature": signature})
    except (Malformed, ValueError) as exc:
        return str(exc) if isinstance(exc, Malformed) else "its body is not JSON"
    if signed.checkpoint.hash != hash_column:
        return "its hash column differs from its signed body"
    return signed


def body_text(checkpoint: Checkpoint) -> str:
    """The stored form of a checkpoint's body: its canonical JSON."""
    return _canonical(checkpoint.body()).decode("utf-8")
