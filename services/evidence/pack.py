"""An evidence pack's JSON twin: for each customer, its identities in each system, its lifecycle
timeline, every exception about it (open and closed, both sides' values), every audit entry about
it exactly as stored, and the result of ``audit verify`` at export time.

The pack is one JSON object (:data:`PACK_FORMAT`)::

    {"format": "syncdesk-evidence-pack/1", "generated_at": "...", "generated_by": "...",
     "source": "...", "audit_log": {"path", "entries", "log_id", "fingerprint", "head": {"seq", "hash"},
                                   "checkpoint": {"seq", "hash", "body", "signature"} | null},
     "audit_verify": {"ok", "sentence", "checked", "first_bad", "protection", "anchored", "warning"},
     "hash_recipe": {...how an entry's hash is computed, see below...},
     "customers": [{"customer_id", "name", "state", "identities": {"billing": [...], "erp": [...],
                    "support": [...]}, "timeline": [...], "exceptions": [...], "audit_entries": [...],
                    "audit_check": {"entries", "content_matches", "links_checked", "links_broken"}}]}

Its bytes are :func:`encode_pack`'s (sorted keys, one-space indent, ASCII with ``\\u`` escapes,
a final newline); the pack's SHA-256 is the SHA-256 of exactly those bytes (the file written with
``--json``), and the PDF prints it.

**Recomputing the chain** (:data:`HASH_RECIPE`). An audit entry's ``hash`` is the SHA-256 (hex,
lower case) of the UTF-8 bytes of the JSON array of its values in the order of
:data:`services.store.audit.FIELDS` (``seq, at, operator, role, action_id, action_kind, phase,
exception_id, customer_id, target_system, request, before, after, outcome, error, reason,
prev_hash``), encoded compactly: ``json.dumps(values, separators=(",", ":"),
ensure_ascii=False)`` (``request``, ``before`` and ``after`` are the stored JSON *texts*,
hashed as strings; ``seq`` an integer; absent values ``null``). It is the encoding of
:func:`services.store.audit.entry_hash`, which the builder uses to mark each entry
(``content_matches``). ``prev_hash`` is the hash of entry ``seq - 1`` (64 zeros for entry 1):
where two entries of the pack are consecutive in the log, the later one's ``prev_hash`` must be
the earlier one's ``hash``; the entries in between belong to other customers and are not in the
pack — ``audit export --format signed`` holds the whole chain, its signed checkpoints and the
public key whose fingerprint ``audit_log.fingerprint`` gives, so each hash of the pack can be
found on a chain whose head is signed.

The audit log is read in SQL by customer (its ``customer_id`` index), streamed, never loaded
whole: a log of 1,000,000 entries costs the customer's entries plus ``audit verify``'s scan.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from services.core.domain import ExceptionMark, ExternalRef, SyncException, System
from services.core.reconcile import Snapshot
from services.core.timeline import TimelineConfig, TimelineIndex
from services.store.audit import FIELDS, AuditLog, VerifyCancelled, VerifyResult, entry_hash
from services.store.audit_checkpoint import GENESIS, fingerprint
from services.store.storage import AUDIT

PACK_FORMAT = "syncdesk-evidence-pack/1"
#: customers' audit entries read per round trip
BATCH = 2_000

HASH_RECIPE: dict[str, Any] = {
    "algorithm": "SHA-256, hexadecimal, lower case",
    "fields": list(FIELDS),
    "encoding": ("the UTF-8 bytes of the JSON array of the entry's values in the order of 'fields', "
                 "written compactly: json.dumps(values, separators=(',', ':'), ensure_ascii=False); "
                 "request, before and after are the stored JSON texts (hashed as strings), seq is an integer, "
                 "an absent value is null"),
    "python": ("hashlib.sha256(json.dumps([entry[f] for f in fields], separators=(',', ':'), "
               "ensure_ascii=False).encode('utf-8')).hexdigest() == entry['hash']"),
    "chain": ("prev_hash is the hash of entry seq - 1 (" + GENESIS[:8] + "… 64 zeros for entry 1): where entries "
              "seq and seq + 1 are both in the pack, the later one's prev_hash equals the earlier one's hash; the "
              "entries in between are other customers' and are in the whole log (audit export --format signed, "
              "checked with audit verify-export against the public key of audit_log.fingerprint)"),
    "pack_sha256": ("the SHA-256 of this file's exact bytes, as printed on the PDF (sorted keys, one-space indent, "
                    "ASCII with \\u escapes, a final newline)"),
}


@dataclass(frozen=True)
class EvidencePack:
    """The JSON twin (``data``), its exact bytes and their SHA-256."""

    data: dict[str, Any]
    json_bytes: bytes
    sha256: str


def _plain(value: Any) -> Any:
    """A JSON-ready copy of a value the snapshot or the history holds."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return repr(value)  # never a float in the pack: the text it had
    if isinstance(value, Enum):
        return _plain(value.value)
    if isinstance(value, datetime):
        return _iso(value)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes):  # no writer stores one: a tampered value, shown as what it is
        return {"bytes_hex": value.hex()}
    return str(value)


def _iso(at: datetime | None) -> str | None:
    if at is None:
        return None
    aware = at if at.tzinfo is not None else at.replace(tzinfo=UTC)
    return aware.astimezone(UTC).isoformat()


def encode_pack(data: dict[str, Any]) -> bytes:
    """The pack's exact bytes (what its SHA-256 is taken over)."""
    return (json.dumps(data, sort_keys=True, indent=1, ensure_ascii=True) + "\n").encode("ascii")


def finish(data: dict[str, Any]) -> EvidencePack:
    raw = encode_pack(data)
    return EvidencePack(data, raw, hashlib.sha256(raw).hexdigest())


def verify_dict(result: VerifyResult | None, problem: str = "") -> dict[str, Any]:
    """``audit verify``'s result as the pack keeps it (None: it could not run, ``problem`` says why)."""
    if result is None:
        return {"ok": False, "sentence": problem, "checked": 0, "first_bad": None, "protection": "",
                "anchored": "", "warning": ""}
    return {"ok": result.ok, "sentence": str(result), "checked": result.checked, "first_bad": result.first_bad,
            "protection": result.protection, "anchored": result.anchored, "warning": result.warning}


def customer_audit_rows(log: AuditLog, customer_ids: Sequence[str], batch: int = BATCH) -> Iterator[dict[str, Any]]:
    """Every stored entry about these customers in sequence order, each as ``FIELDS`` + ``hash``
    with its values exactly as stored; selected in SQL (index on ``customer_id``) and streamed."""
    columns = [AUDIT.c[f] for f in (*FIELDS, "hash")]
    names = (*FIELDS, "hash")
    query = select(*columns).where(AUDIT.c.customer_id.in_(list(customer_ids))).order_by(AUDIT.c.seq)
    with log.storage.engine.connect() as conn:
        result = conn.execution_options(stream_results=True, yield_per=batch).execute(query)
        for row in result:
            yield dict(zip(names, row, strict=True))


def _entry_dict(row: dict[str, Any]) -> dict[str, Any]:
    """One audit entry for the pack: the stored values and whether they still hash to ``hash``."""
    try:
        matches = entry_hash(row) == row["hash"]
    except (TypeError, ValueError):  # a value no writer stores (bytes)
        matches = False
    return {**{k: _plain(v) for k, v in row.items()}, "content_matches": matches}


def check_links(entries: list[dict[str, Any]]) -> tuple[int, list[int]]:
    """How many consecutive pairs (``seq``, ``seq + 1``) the pack holds, and the later ``seq`` of
    each pair whose ``prev_hash`` is not the earlier ``hash``."""
    by_seq = {e["seq"]: e for e in entries if isinstance(e.get("seq"), int)}
    checked, broken = 0, []
    for seq, entry in sorted(by_seq.items()):
        before = by_seq.get(seq - 1)
        if before is None:
            if seq == 1:
                checked += 1
                if entry["prev_hash"] != GENESIS:
                    broken.append(seq)
            continue
        checked += 1
        if entry["prev_hash"] != before["hash"]:
            broken.append(seq)
    return checked, broken


def _ref(ref: ExternalRef | None) -> str | None:
    return str(ref) if ref is not None else None


def _mark(mark: ExceptionMark | None) -> dict[str, Any] | None:
    if mark is None:
        return None
    return {"at": _iso(mark.at), "actor": mark.actor, "role": mark.role, "action": mark.action,
            "action_id": mark.action_id, "text": mark.text, "rule": mark.rule}


def exception_dict(exc: SyncException, occurrences: Iterable[tuple[datetime, datetime | None]] = ()) -> dict[str, Any]:
    """An exception with both (all) sides' values, open or closed."""
    return {
        "id": exc.id, "rule": exc.rule, "severity": exc.severity.value, "owner": exc.owner.value,
        "object_id": exc.object_id, "summary": exc.summary, "status": "open" if exc.closed_at is None else "closed",
        "first_seen": _iso(exc.first_seen), "last_seen": _iso(exc.last_seen), "closed_at": _iso(exc.closed_at),
        "sides": [{"system": s.system.value, "ref": _ref(s.ref), "values": _plain(s.values)} for s in exc.sides],
        "fix_actions": list(exc.fix_actions), "last_failure": _mark(exc.last_failure), "flagged": _mark(exc.flagged),
        "occurrences": [[_iso(a), _iso(b)] for a, b in occurrences],
    }


def timeline_dicts(index: TimelineIndex, customer_id: str, exceptions: Sequence[SyncException],
                   now: datetime) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The customer's header (name, identities, state) and its timeline, oldest first."""
    timeline = index.build(customer_id, exceptions=[e for e in exceptions if e.closed_at is None], now=now)
    state = timeline.state
    head = {
        "customer_id": timeline.customer_id, "name": timeline.name, "known": timeline.known,
        "identities": {s.value: [r.id for r in timeline.identities.get(s, [])] for s in System},
        "identity_refs": {s.value: [str(r) for r in timeline.identities.get(s, [])] for s in System},
        "state": {"summary": state.summary(), "subscription": state.subscription_id, "status": state.status,
                  "plan": state.plan_key, "plan_name": state.plan_name, "quantity": state.quantity,
                  "support_tier": state.tier},
    }
    entries = [{"at": _iso(e.event.at), "system": e.event.system.value, "kind": e.event.kind.value,
                "ref": str(e.event.ref), "summary": e.event.summary, "group": e.group, "status": e.status,
                "note": e.note, "lag_seconds": int(e.lag.total_seconds()) if e.lag is not None else None,
                "exceptions": list(e.event.exception_ids)} for e in timeline.oldest_first()]
    return head, entries


@dataclass(frozen=True)
class AuditSource:
    """The audit log a pack reads (``log`` None: there is none; ``missing`` says why)."""

    path: Path | None
    log: AuditLog | None
    missing: str = ""


def audit_log_dict(source: AuditSource) -> dict[str, Any]:
    """Which log, how many entries, its head and its newest signed checkpoint."""
    out: dict[str, Any] = {"path": str(source.path) if source.path is not None else None, "entries": 0,
                           "head": None, "log_id": None, "fingerprint": None, "checkpoint": None,
                           "missing": source.missing or None}
    log = source.log
    if log is None:
        return out
    out["entries"] = log.count()
    with log.storage.engine.connect() as conn:
        last = conn.execute(select(AUDIT.c.seq, AUDIT.c.hash).order_by(AUDIT.c.seq.desc()).limit(1)).first()
        if last is not None:
            out["head"] = {"seq": last.seq, "hash": last.hash}
        try:
            row = conn.exec_driver_sql("SELECT seq, hash, body, signature FROM audit_checkpoint "
                                       "ORDER BY seq DESC LIMIT 1").first()
        except SQLAlchemyError:  # a log without checkpoints (not anchored): said as null
            row = None
        if row is not None:
            out["checkpoint"] = {"seq": row[0], "hash": row[1], "body": row[2], "signature": row[3]}
    if log.anchor is not None:
        ctx = log.anchor.context()
        out["log_id"] = ctx.log_id
        out["fingerprint"] = fingerprint(ctx.public) if ctx.public is not None else None
    return out


def build_pack(snapshot: Snapshot, customers: Sequence[str], exceptions: Sequence[SyncException],
               audit: AuditSource, *, now: datetime, generated_by: str, source: str,
               occurrences: Callable[[str], list[tuple[datetime, datetime | None]]] | None = None,
               timeline_config: TimelineConfig | None = None,
               progress: Callable[[int, int], None] | None = None,
               cancelled: Callable[[], bool] | None = None) -> EvidencePack:
    """The pack of ``customers`` (ids, in the order given). ``exceptions``: the exception history
    (open and closed; those of other customers are left out here); ``occurrences(exc_id)``: an
    exception's earlier occurrences (``ExceptionTracker.history``). ``audit verify`` runs first
    (``progress(checked, total)``, ``cancelled()`` as :meth:`AuditLog.verify` takes them)."""
    if audit.log is not None:
        try:
            verdict = verify_dict(audit.log.verify(progress=progress, cancelled=cancelled))
        except VerifyCancelled:
            raise
        except Exception as failure:  # never a traceback in the pack: what stopped the check
            verdict = verify_dict(None, f"audit log NOT verified: the check could not run "
                                        f"({type(failure).__name__}: {failure})")
    else:
        verdict = verify_dict(None, f"audit log NOT verified: {audit.missing or 'there is no audit log'}")
    wanted = list(dict.fromkeys(customers))
    index = TimelineIndex(snapshot, timeline_config)
    by_customer: dict[str, list[SyncException]] = {c: [] for c in wanted}
    for exc in exceptions:
        if exc.customer_id in by_customer:
            by_customer[exc.customer_id].append(exc)
    audit_by_customer: dict[str, list[dict[str, Any]]] = {c: [] for c in wanted}
    if audit.log is not None:
        for row in customer_audit_rows(audit.log, wanted):
            audit_by_customer[row["customer_id"]].append(_entry_dict(row))
    items = []
    for cid in wanted:
        head, timeline = timeline_dicts(index, cid, by_customer[cid], now)
        excs = sorted(by_customer[cid], key=lambda e: (e.first_seen, e.id))
        entries = audit_by_customer[cid]
        links, broken = check_links(entries)
        items.append({
            **head, "timeline": timeline,
            "exceptions": [exception_dict(e, occurrences(e.id) if occurrences is not None else ()) for e in excs],
            "audit_entries": entries,
            "audit_check": {"entries": len(entries), "content_matches": sum(e["content_matches"] for e in entries),
                            "links_checked": links, "links_broken": broken},
        })
    data = {
        "format": PACK_FORMAT, "generated_at": _iso(now), "generated_by": generated_by, "source": source,
        "audit_log": audit_log_dict(audit), "audit_verify": verdict, "hash_recipe": HASH_RECIPE, "customers": items,
    }
    return finish(data)


__all__ = ["HASH_RECIPE", "PACK_FORMAT", "AuditSource", "EvidencePack", "build_pack", "check_links",
           "customer_audit_rows", "encode_pack", "exception_dict", "finish", "verify_dict"]
