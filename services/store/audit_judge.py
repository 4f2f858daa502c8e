"""The rules that judge an audit log against its signed checkpoints and its witnesses.

The hash chain (``services.store.audit``) shows that no entry was edited, removed or reordered
*relative to the others*; it cannot show that the chain is the one SyncDesk wrote: anyone able
to write the database can rewrite it whole, cut its end, add an entry with a valid hash, or put
back an older copy. :func:`judge`, given a log whose chain is intact, finds

* entries no signed checkpoint covers (added without the key, or their checkpoints removed);
* a checkpoint or witness whose entry the chain no longer passes through (a rewrite; the first
  entry named is the one after the last checkpoint that still holds);
* checkpoints or a witness beyond the last entry (a cut end, a rollback of the database or of
  a whole older SYNCDESK_HOME: the witnesses live elsewhere);
* a checkpoint or witness with an invalid signature, of another log, unreadable or missing;
* and the taint a writer recorded when it found any of these before signing over it.

It runs on the log in its database (``services.store.audit_anchor.DbView``) and on a signed
export checked offline (``services.store.audit_export``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from services.store.audit_checkpoint import Checkpoint, Signed, Since, Taint, WitnessRecord, when


@dataclass
class WitnessRead:
    """One witness as read before judging: its record, or why there is none."""

    where: str
    required: bool
    record: WitnessRecord | None = None
    error: str | None = None  # "missing", or why it is unreadable


@dataclass(frozen=True)
class Problem:
    first_bad: int | None
    sentence: str
    reach: int = 0  # the last entry it names: of two problems from the same entry, the wider is said


@dataclass
class Judgement:
    problems: list[Problem] = field(default_factory=list)
    since: Since | None = None
    taint: Taint | None = None  # carried by the newest trusted checkpoint

    def first(self) -> Problem | None:
        found = [*self.problems]
        if self.taint is not None:
            found.append(Problem(self.taint.seq, self.taint.sentence()))
        found.sort(key=lambda p: (p.first_bad is None, p.first_bad or 0, -p.reach))
        return found[0] if found else None


class View(Protocol):
    """The log being judged: entries 1..``last_seq`` (their chain already checked), ``tail_hash``
    the hash of the last, and its checkpoints."""

    last_seq: int
    tail_hash: str
    live: bool  # entries may be appended while judging (a later entry is then not "removed")

    def checkpoint(self, seq: int) -> Signed | str | None:
        """The checkpoint of entry ``seq``; a text: why it is unreadable; None: there is none."""

    def max_checkpoint(self) -> int | None: ...

    def latest_checkpoint_below(self, seq: int) -> int | None: ...

    def last_matching_below(self, seq: int) -> int:
        """The last entry before ``seq`` whose checkpoint holds its hash (0: none)."""

    def first_checkpoint_from(self, seq: int) -> int | None:
        """The first entry from ``seq`` on that has a checkpoint (None: none)."""

    def hash_at(self, seq: int) -> str | None: ...

    def exists(self, seq: int) -> bool: ...


def span(first: int, last: int, singular: str, plural: str) -> str:
    """"entry 4 was" or "entries 4–9 were"."""
    return f"entry {first} {singular}" if first == last else f"entries {first}–{last} {plural}"


def judge(view: View, key: Ed25519PublicKey, log_id: str, witnesses: Sequence[WitnessRead]) -> Judgement:
    """Check every witness, the log's last checkpoint and the checkpoints beyond its end; the
    problems found (of two from the same entry, the one listed first here is said: the
    database's checkpoints, then the witnesses), and ``since``/``taint`` of the newest
    checkpoint that holds."""
    found: list[Problem] = []
    trusted: list[Checkpoint] = []
    n = view.last_seq

    def rewritten(upto: int, against: str) -> Problem:
        # the first changed entry is after the last checkpoint that still holds, and at or
        # before the next checkpoint (which no longer holds)
        first = view.last_matching_below(upto) + 1
        last = min(view.first_checkpoint_from(first) or upto, upto)
        if first == last:
            if last != upto:
                cp = view.checkpoint(last)
                against = f"its checkpoint signed {when(cp.checkpoint.at)}" if isinstance(cp, Signed) else \
                    "its checkpoint"
            return Problem(first, f"entry {first} differs from {against}: it was altered, removed or replaced "
                                  "after it was signed")
        return Problem(first, f"the log was rewritten after it was signed: its first changed entry is one of entries "
                              f"{first}–{last} (entry {upto} differs from {against})")

    def removed(top: int, why: str) -> Problem:
        return Problem(n + 1, f"{span(n + 1, top, 'was', 'were')} removed from the end of the log ({why})", top)

    def appended_since(seq: int) -> bool:
        return view.live and view.exists(seq)

    # the witnesses first: one that holds vouches for the entries up to its checkpoint
    vouched, vouched_by = 0, ""
    from_witnesses: list[Problem] = []
    for w in witnesses:
        if w.record is None:
            if w.error == "missing":
                if w.required:
                    from_witnesses.append(Problem(None, f"the witness {w.where} is missing: a rollback or a removal "
                                                        "at the end of the log cannot be ruled out"))
            else:
                from_witnesses.append(Problem(None, f"the witness {w.where} is unreadable ({w.error})"))
            continue
        signed = w.record.signed
        c = signed.checkpoint
        if not signed.valid(key):
            from_witnesses.append(Problem(None, f"the witness {w.where} holds a checkpoint with an invalid signature: "
                                                "it was not made with this log's key"))
        elif c.log_id != log_id:
            from_witnesses.append(Problem(None, f"the witness {w.where} belongs to another audit log"))
        elif c.seq > n:
            if not appended_since(n + 1):
                from_witnesses.append(removed(c.seq, f"the witness {w.where} recorded entry {c.seq} {when(c.at)}: "
                                                     "the log was rolled back or cut"))
        elif view.hash_at(c.seq) != c.hash:
            from_witnesses.append(rewritten(c.seq, f"the checkpoint the witness {w.where} recorded {when(c.at)}"))
        else:
            trusted.append(c)
            if c.seq > vouched:
                vouched, vouched_by = c.seq, w.where
    # the checkpoint of the last entry: every entry must be covered by a signed checkpoint
    if n > 0:
        cp = view.checkpoint(n)
        if cp is None:
            if vouched >= n:  # the entries are vouched for; their checkpoints were deleted
                first = (view.latest_checkpoint_below(n) or 0) + 1
                what = f"checkpoint of entry {n} was" if first == n else f"checkpoints of entries {first}–{n} were"
                found.append(Problem(first, f"the {what} removed from the database (the witness {vouched_by} still "
                                            f"vouches for entry {n})"))
            else:
                below = max(view.latest_checkpoint_below(n) or 0, vouched)
                first = below + 1
                how = "it was" if first == n else "they were"
                tail = "" if below else ", or the log's checkpoints were removed"
                found.append(Problem(first, f"{span(first, n, 'is', 'are')} not covered by a signed checkpoint: "
                                            f"{how} added without the log's signing key{tail}"))
        elif isinstance(cp, str):
            found.append(Problem(n, f"the checkpoint of entry {n} is unreadable ({cp})"))
        elif not cp.valid(key):
            found.append(Problem(n, f"the checkpoint of entry {n} has an invalid signature: it was not made with "
                                    "this log's key"))
        elif cp.checkpoint.log_id != log_id or cp.checkpoint.seq != n:
            found.append(Problem(n, f"the checkpoint of entry {n} belongs to another audit log or entry"))
        elif cp.checkpoint.hash != view.tail_hash:
            found.append(rewritten(n, f"its checkpoint signed {when(cp.checkpoint.at)}"))
        else:
            trusted.append(cp.checkpoint)
    # checkpoints beyond the last entry: its end was cut
    top = view.max_checkpoint()
    if top is not None and top > n and not appended_since(n + 1):
        found.append(removed(top, f"checkpoints up to entry {top} remain"))
    found += from_witnesses
    judgement = Judgement(found)
    if trusted:
        newest = max(trusted, key=lambda c: c.seq)
        judgement.since = newest.since
        taints = [c.taint for c in trusted if c.taint is not None]
        judgement.taint = min(taints, key=lambda t: t.seq) if taints else None
    return judgement
