"""A signed export of the audit log, and its check anywhere: no SYNCDESK_HOME, no key store.

``syncdesk audit export --format signed`` writes one JSON object::

    {"format": "syncdesk-audit-export/1", "exported_at": "...Z", "log_id": "...",
     "public_key": "<base64 of the 32-byte Ed25519 public key>", "fingerprint": "SHA256:....",
     "entries": [{"seq": 1, "at": "...", ..., "prev_hash": "...", "hash": "..."}, ...],
     "checkpoints": [{"seq": 1, "hash": "...", "body": "<signed JSON text>", "signature": "<base64>"}, ...],
     "witnesses": [{"where": "...", "record": {<the witness file or keyring entry>}}, ...]}

Entries carry their values exactly as stored, the very values their hashes cover (``request``,
``before`` and ``after`` are the stored JSON texts), so that the check recomputes every hash. A
checkpoint's signature covers ``syncdesk-audit-checkpoint/1\\n`` followed by its body, the
canonical JSON (sorted keys, no spaces, UTF-8) of ``{"v", "log_id", "seq", "hash", "at",
"since", "taint"}``.

:func:`verify_export` (``syncdesk audit verify-export FILE [--public-key KEY]``) checks the
chain, the signed checkpoints and the witnesses' checkpoints with the same rules as ``audit
verify``. The public key inside the export only proves the export consistent with itself: the
reader compares its fingerprint with the one the log's owner gives them (or passes it with
``--public-key``). An export is a snapshot: one whose end was cut together with its last
checkpoints looks like an earlier export; compare its last checkpoint's time with what you expect.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select

from services.store.audit import FIELDS, AuditLog, VerifyResult, anchored_text, entry_hash
from services.store.audit_checkpoint import (
    GENESIS,
    LOG_ID,
    Malformed,
    Signed,
    fingerprint,
    load_public,
    parse_row,
    parse_witness,
    utc_now,
    witness_text,
)
from services.store.audit_judge import WitnessRead, judge
from services.store.storage import AUDIT

EXPORT_FORMAT = "syncdesk-audit-export/1"


class ExportError(Exception):
    """A signed export cannot be made (e.g. the log's key is not in this machine's key store)."""


def signed_export(log: AuditLog) -> dict[str, Any]:
    """The whole log, its checkpoints and its witnesses' checkpoints, with its public key."""
    if log.anchor is None:
        raise ExportError("this audit log is not anchored (a database in memory or not SQLite): nothing is signed")
    ctx = log.anchor.context()
    if ctx.public is None or ctx.log_id is None:
        reason = ctx.problem.sentence if ctx.problem is not None else "the log has no entry yet"
        raise ExportError(f"no signed export: {reason}")
    columns = [AUDIT.c[f] for f in (*FIELDS, "hash")]
    with log.storage.engine.connect() as conn:
        entries = [dict(zip((*FIELDS, "hash"), row, strict=True))
                   for row in conn.execute(select(*columns).order_by(AUDIT.c.seq))]
        checkpoints = [{"seq": seq, "hash": digest, "body": body, "signature": signature}
                       for seq, digest, body, signature in conn.exec_driver_sql(
                           "SELECT seq, hash, body, signature FROM audit_checkpoint ORDER BY seq")]
    witnesses = [{"where": w.where, "record": json.loads(_witness_json(w))} for w in ctx.witnesses
                 if w.record is not None]
    return {"format": EXPORT_FORMAT, "exported_at": utc_now(), "log_id": ctx.log_id, "public_key": ctx.public,
            "fingerprint": fingerprint(ctx.public), "entries": entries, "checkpoints": checkpoints,
            "witnesses": witnesses}


def _witness_json(read: WitnessRead) -> str:
    assert read.record is not None
    return witness_text(read.record)


class ExportView:
    """:class:`services.store.audit_judge.View` of an export: nothing is appended while it is judged."""

    live = False

    def __init__(self, hashes: list[str], checkpoints: dict[int, Signed | str]) -> None:
        self.hashes, self.checkpoints = hashes, checkpoints
        self.last_seq = len(hashes)
        self.tail_hash = hashes[-1] if hashes else GENESIS

    def checkpoint(self, seq: int) -> Signed | str | None:
        return self.checkpoints.get(seq)

    def max_checkpoint(self) -> int | None:
        return max(self.checkpoints, default=None)

    def latest_checkpoint_below(self, seq: int) -> int | None:
        return max((s for s in self.checkpoints if s < seq), default=None)

    def last_matching_below(self, seq: int) -> int:
        return max((s for s, cp in self.checkpoints.items() if s < seq and isinstance(cp, Signed)
                    and self.hash_at(s) == cp.checkpoint.hash), default=0)

    def first_checkpoint_from(self, seq: int) -> int | None:
        return min((s for s in self.checkpoints if s >= seq), default=None)

    def hash_at(self, seq: int) -> str | None:
        return self.hashes[seq - 1] if 0 < seq <= len(self.hashes) else None

    def exists(self, seq: int) -> bool:
        return False


def _entry_values(e: Any, i: int) -> dict[str, Any]:
    if not isinstance(e, dict):
        raise Malformed(f"entry {i + 1} is not a JSON object")
    for f in (*FIELDS, "hash"):
        value = e.get(f)
        ok = type(value) is int if f == "seq" else (value is None or isinstance(value, str))
        if f not in e or not ok:
            raise Malformed(f"entry {i + 1} has no valid {f!r}")
    return e


def verify_export(data: Any, public_key: str | None = None) -> VerifyResult:
    """Check a signed export (as :func:`signed_export` writes it, read back by ``json.load``);
    ``public_key``: the key the reader expects (base64), else the export's own is used."""
    try:
        return _verify_export(data, public_key)
    except Malformed as exc:
        return VerifyResult(False, 0, None, f"the export is unreadable: {exc}")


def _verify_export(data: Any, expected: str | None) -> VerifyResult:
    if not isinstance(data, dict) or data.get("format") != EXPORT_FORMAT:
        raise Malformed(f"it is not a signed audit export ({EXPORT_FORMAT})")
    key_text = data.get("public_key")
    key = load_public(key_text)
    assert isinstance(key_text, str)
    protection = f"signed export, public key {fingerprint(key_text)}"
    if expected is not None:
        try:
            load_public(expected.strip())
        except Malformed as exc:
            return VerifyResult(False, 0, None, f"the expected public key is not valid: {exc}", protection=protection)
        if expected.strip() != key_text:
            return VerifyResult(False, 0, None, f"the export is signed with the key {fingerprint(key_text)}, not the "
                                                f"expected {fingerprint(expected.strip())}", protection=protection)
        protection += " (the expected key)"
    else:
        protection += " (the export's own: compare the fingerprint with the one the log's owner gives)"
    log_id = data.get("log_id")
    if not isinstance(log_id, str) or not LOG_ID.fullmatch(log_id):
        raise Malformed("'log_id' is not a log id")
    entries, rows = data.get("entries"), data.get("checkpoints")
    witnesses = data.get("witnesses", [])
    if not isinstance(entries, list) or not isinstance(rows, list) or not isinstance(witnesses, list):
        raise Malformed("'entries', 'checkpoints' and 'witnesses' must be lists")
    hashes: list[str] = []
    prev = GENESIS
    for i, raw in enumerate(entries):
        e = _entry_values(raw, i)
        seq, expected_seq = e["seq"], i + 1
        if seq != expected_seq:
            what = "removed" if seq > expected_seq else "duplicated or reordered"
            return VerifyResult(False, i, expected_seq, f"entry {expected_seq} is {what} (found entry {seq} in its "
                                                        "place)", protection=protection)
        if e["prev_hash"] != prev:
            return VerifyResult(False, i, seq, f"entry {seq} does not follow entry {seq - 1}: an earlier entry was "
                                               "altered, removed or reordered", protection=protection)
        if entry_hash(e) != e["hash"]:
            return VerifyResult(False, i, seq, f"entry {seq} was altered after it was written", protection=protection)
        prev = e["hash"]
        hashes.append(prev)
    checkpoints: dict[int, Signed | str] = {}
    for row in rows:
        if not isinstance(row, dict) or type(row.get("seq")) is not int:
            raise Malformed("a checkpoint has no valid 'seq'")
        seq = row["seq"]
        checkpoints[seq] = ("it appears twice" if seq in checkpoints
                            else parse_row(row.get("hash"), row.get("body"), row.get("signature")))
    reads: list[WitnessRead] = []
    for w in witnesses:
        where = str(w.get("where", "?"))[:500] if isinstance(w, dict) else "?"
        try:
            record = parse_witness(json.dumps(w.get("record") if isinstance(w, dict) else None))
        except Malformed as exc:
            reads.append(WitnessRead(where, False, error=str(exc)))
        else:
            reads.append(WitnessRead(where, False, record))
    judgement = judge(ExportView(hashes, checkpoints), key, log_id, reads)
    problem = judgement.first()
    anchored, late = anchored_text(judgement.since)
    if problem is not None:
        return VerifyResult(False, len(hashes), problem.first_bad, problem.sentence, protection=protection,
                            anchored=anchored, late=late)
    return VerifyResult(True, len(hashes), protection=protection, anchored=anchored, late=late)


__all__ = ["EXPORT_FORMAT", "ExportError", "ExportView", "signed_export", "verify_export"]
