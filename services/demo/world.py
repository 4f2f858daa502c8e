"""The built-in demo's world, kept in a folder between commands and console runs.

A world is the three demo systems' state (:class:`~services.demo.store.DemoDataset`) plus its
:class:`~services.demo.world_codec.WorldMeta`, saved as ``world.json.gz`` (the codec:
:mod:`services.demo.world_codec`) in its folder (SYNCDESK_HOME/demo for the user's demo; a
temporary folder for throwaway runs such as screenshots).

- **Open** (:meth:`DemoWorld.open`): takes the folder's lock (``world.lock``: one process
  serves a world at a time, else two would each save over the other's writes), then loads the
  saved world, or generates a new one from ``(customers, seed)`` exactly as the generator does
  (same dataset as ``generate(customers, seed)`` at that moment), saves it at once and deletes
  the files of the previous world that the caller names (its snapshot). A file that cannot be
  read is never replaced silently: :class:`WorldUnreadable` (the user decides, with a reset).
  Parameters that differ from the saved world's are :class:`WorldMismatch`.
- **Serve** (:meth:`DemoWorld.start`): the three servers in a background thread, on the
  world's clock; every committed write marks the world changed.
- **Save**: after writes, debounced (:data:`SAVE_QUIET` seconds without a write, at most
  :data:`SAVE_LONGEST` seconds after the first unsaved one) by a saver thread, and at
  :meth:`DemoWorld.stop`. A save holds the three stores' locks while it copies them (one
  consistent cut across the systems), then compresses and writes outside them, atomically
  (a temporary file, fsync, rename): a crash leaves the previous or the new file, never half.
- **Reset** (:func:`reset_world`): under the lock, deletes the world and the named files and
  creates a new world.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from filelock import FileLock, Timeout

from services.demo.dataset import generate
from services.demo.environment import DemoEnvironment, DemoOptions
from services.demo.store import DemoDataset
from services.demo.world_codec import WorldFormatError, WorldMeta, dump_world, encode_world, load_world, read_meta
from services.io.config import Profile

log = logging.getLogger(__name__)

WORLD_FILE = "world.json.gz"
LOCK_FILE = "world.lock"
DEFAULT_CUSTOMERS = 250
DEFAULT_SEED = 1
#: seconds without a new write before the saver writes the world
SAVE_QUIET = 0.5
#: at most this many seconds between the first unsaved write and its save, however busy
SAVE_LONGEST = 5.0
_WRITE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_BINARY", 0)
#: how long :meth:`DemoWorld.open` waits for another process to let the world go (a console
#: that is closing still saves it)
LOCK_WAIT = 5.0


class WorldError(Exception):
    """The world cannot be used as asked (a one-line reason)."""


class WorldUnreadable(WorldError):
    """The saved world is damaged or of another format version."""

    def __init__(self, path: Path, reason: str, version: object = None) -> None:
        what = ("was written by another version of SyncDesk" if version is not None
                else "is damaged")
        super().__init__(f"the demo world {path} {what} ({reason})")
        self.path = path
        self.reason = reason
        self.version = version


class WorldInUse(WorldError):
    """Another process serves this world."""


class WorldMismatch(WorldError):
    """The saved world was made with other parameters than the ones asked for."""

    def __init__(self, meta: WorldMeta, customers: int, seed: int) -> None:
        super().__init__(f"the demo world has {meta.customers} customers, seed {meta.seed} "
                         f"(created {_when(meta.created_at)}), not {customers} customers, seed {seed}")
        self.meta = meta
        self.customers = customers
        self.seed = seed


def _when(unix: float) -> str:
    return datetime.fromtimestamp(unix, UTC).strftime("%Y-%m-%d %H:%M UTC")


def world_path(folder: Path) -> Path:
    return folder / WORLD_FILE


def read_world_meta(folder: Path) -> WorldMeta | None:
    """The saved world's parameters and times (``None``: no world yet); :class:`WorldUnreadable`
    for a file that cannot be read. Takes no lock: the file is only ever replaced whole."""
    path = world_path(folder)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        return read_meta(data)
    except WorldFormatError as exc:
        raise WorldUnreadable(path, exc.reason, exc.version) from None


def describe_meta(meta: WorldMeta) -> str:
    return f"{meta.customers} customers, seed {meta.seed}, created {_when(meta.created_at)}"


def _lock(folder: Path, wait: float) -> FileLock:
    folder.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(folder / LOCK_FILE), thread_local=False)
    try:
        lock.acquire(timeout=wait)
    except Timeout:
        raise WorldInUse(f"the demo world in {folder} is in use by another SyncDesk process (a console or a "
                         "command on the demo); close it and try again") from None
    return lock


def _unlink(paths: Sequence[Path]) -> None:
    for path in paths:
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)


class _Saver:
    """The debounced save: a thread that saves once writes pause (see the module docstring)."""

    def __init__(self, save: Callable[[], None], quiet: float, longest: float) -> None:
        self._save = save
        self._quiet = quiet
        self._longest = longest
        self._cond = threading.Condition()
        self._first: float | None = None
        self._last = 0.0
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="demo-world-saver", daemon=True)
        self._thread.start()

    def note(self) -> None:
        with self._cond:
            now = time.monotonic()
            if self._first is None:
                self._first = now
            self._last = now
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._first is None and not self._stopping:
                    self._cond.wait()
                while not self._stopping and self._first is not None:
                    due = min(self._last + self._quiet, self._first + self._longest)
                    left = due - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
                if self._stopping:
                    return  # the owner saves once more after stopping us
                self._first = None
            try:
                self._save()
            except Exception:  # kept dirty: the next write or the final save tries again
                log.exception("the demo world could not be saved")

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify()
        self._thread.join()


@dataclass
class _Signature:
    """What changes when the stores change, cheap to read: a safety net under the write flags."""

    events: int
    counter: int
    erp_versions: int
    support_ids: tuple[int, ...]
    idempotency: int


class DemoWorld:
    """One world in its folder, held (locked) from :meth:`open` until :meth:`stop`."""

    def __init__(self, folder: Path, dataset: DemoDataset, meta: WorldMeta, lock: FileLock, created: bool) -> None:
        self.folder = folder
        self.dataset = dataset
        self.meta = meta
        self.created = created
        self._lock = lock
        # the clock: as saved, moved on by the wall-clock time since, never backwards
        self._clock_start = max(meta.anchor + (time.time() - meta.created_at), meta.clock)
        self._opened = time.monotonic()
        self._save_lock = threading.Lock()
        self._count_lock = threading.Lock()
        self._changes = 0  # writes noted
        self._saved_changes = 0  # writes noted before the last save copied the stores
        self._saved_signature = self._signature()
        self._env: DemoEnvironment | None = None
        self._saver: _Saver | None = None

    # -- opening ----------------------------------------------------------------------------------
    @classmethod
    def open(cls, folder: Path, customers: int | None = None, seed: int | None = None, *,
             mismatch_rate: float | None = None, anchor: int | None = None,
             discard_on_create: Sequence[Path] = (), lock_wait: float = LOCK_WAIT) -> DemoWorld:
        """The world saved in ``folder``, or a new one (``customers``/``seed``, default 250/1;
        ``anchor``/``mismatch_rate`` as :func:`~services.demo.dataset.generate`), saved at
        once; creating one deletes ``discard_on_create`` (the previous world's snapshot).
        ``customers``/``seed`` given for a saved world with other values: :class:`WorldMismatch`."""
        lock = _lock(folder, lock_wait)
        try:
            path = world_path(folder)
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                data = None
            if data is not None:
                try:
                    dataset, meta = load_world(data)
                except WorldFormatError as exc:
                    raise WorldUnreadable(path, exc.reason, exc.version) from None
                wanted = (meta.customers if customers is None else customers, meta.seed if seed is None else seed)
                if wanted != (meta.customers, meta.seed):
                    raise WorldMismatch(meta, *wanted)
                return cls(folder, dataset, meta, lock, created=False)
            world = cls._create(folder, lock, customers, seed, mismatch_rate, anchor)
            _unlink(discard_on_create)
            world.save()
            return world
        except BaseException:
            lock.release()
            raise

    @classmethod
    def _create(cls, folder: Path, lock: FileLock, customers: int | None, seed: int | None,
                mismatch_rate: float | None, anchor: int | None) -> DemoWorld:
        n = DEFAULT_CUSTOMERS if customers is None else customers
        s = DEFAULT_SEED if seed is None else seed
        dataset = generate(n, s, anchor=anchor, mismatch_rate=mismatch_rate)
        meta = WorldMeta(customers=n, seed=s, anchor=dataset.anchor, mismatch_rate=mismatch_rate,
                         created_at=time.time(), clock=float(dataset.anchor))
        return cls(folder, dataset, meta, lock, created=True)

    # -- the clock and the servers ------------------------------------------------------------
    def now(self) -> datetime:
        """The demo's "now" (aware UTC): see :class:`~services.demo.world_codec.WorldMeta`; while
        served, the servers' clock."""
        if self._env is not None:
            return self._env.now()
        return datetime.fromtimestamp(self._clock_start + (time.monotonic() - self._opened), UTC)

    def start(self, options: DemoOptions | None = None) -> DemoWorld:
        """Serve the world from a background thread (returns once the servers answer); writes
        are saved by the saver thread. ``options``: ports and faults (its dataset parameters
        are the world's)."""
        o = options or DemoOptions()
        o.customers, o.seed, o.anchor, o.mismatch_rate = (self.meta.customers, self.meta.seed, self.meta.anchor,
                                                          self.meta.mismatch_rate)
        self._saver = _Saver(self.save, SAVE_QUIET, SAVE_LONGEST)
        env = DemoEnvironment(o, self.dataset, clock_start=self.now().timestamp(), on_write=self.note_write)
        self._env = env.start()
        return self

    @property
    def environment(self) -> DemoEnvironment:
        if self._env is None:
            raise RuntimeError("the demo world is not being served")
        return self._env

    def profile(self, name: str = "demo") -> Profile:
        return self.environment.profile(name)

    def describe(self) -> str:
        return f"Built-in demo: {self.meta.customers} customers, seed {self.meta.seed}"

    # -- saving -----------------------------------------------------------------------------------
    def note_write(self) -> None:
        """A request committed a write (called by the servers' thread)."""
        with self._count_lock:
            self._changes += 1
        if self._saver is not None:
            self._saver.note()

    def _signature(self) -> _Signature:
        ds = self.dataset
        return _Signature(len(ds.billing.events), ds.billing.counter, sum(ds.erp.versions.values()),
                          tuple(ds.support.next_ids.values()), len(ds.billing.idempotency))

    @property
    def dirty(self) -> bool:
        """Changed since the last save (a noted write, or stores that moved without one)."""
        return self._changes != self._saved_changes or self._signature() != self._saved_signature

    def save(self) -> None:
        """Write the world now (atomically; see the module docstring)."""
        ds = self.dataset
        with self._save_lock:
            changes = self._changes
            with ds.billing.lock, ds.erp.lock, ds.support.lock:
                self.meta.clock = max(self.meta.clock, self.now().timestamp())
                self.meta.saved_at = time.time()
                doc = encode_world(ds, self.meta)
                signature = self._signature()
            data = dump_world(doc)
            path = world_path(self.folder)
            tmp = path.with_name(f".{WORLD_FILE}.{os.getpid()}.tmp")
            try:
                # private like the other files of the home folder (0600 from the first byte)
                with open(os.open(tmp, _WRITE_FLAGS, 0o600), "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, path)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
            _fsync_folder(self.folder)
            self._saved_changes, self._saved_signature = changes, signature

    def stop(self) -> None:
        """Stop the servers and the saver, save what changed, let the world go. Idempotent."""
        try:
            if self._env is not None:
                env = self._env
                env.stop()
                # the clock goes on from where the servers left it
                self._clock_start, self._opened = env.now().timestamp(), time.monotonic()
                self._env = None
            if self._saver is not None:
                self._saver.stop()
                self._saver = None
            if self.dirty:
                try:
                    self.save()
                except OSError as exc:  # a full disk, a folder gone: said once, the servers stop anyway
                    log.error("the demo world could not be saved to %s: %s", world_path(self.folder),
                              exc.strerror or exc)
        finally:
            if self._lock.is_locked:
                self._lock.release()


def _fsync_folder(folder: Path) -> None:
    """Make the rename durable (POSIX; Windows has no directory handles to sync)."""
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


def reset_world(folder: Path, customers: int | None = None, seed: int | None = None, *,
                discard: Sequence[Path] = (), lock_wait: float = LOCK_WAIT,
                before: Callable[[WorldMeta | None], None] | None = None) -> tuple[WorldMeta | None, WorldMeta]:
    """Start the world in ``folder`` again: under its lock, delete the saved world and
    ``discard`` (its snapshot), create a new one (``customers``/``seed``: given, else the old
    world's when it can be read, else 250/1) and save it. ``before(old meta)`` runs under the
    lock before anything is deleted (the caller's write-ahead record; raising stops the reset).
    Returns (the old world's meta, or ``None`` when there was none or it could not be read;
    the new world's meta)."""
    lock = _lock(folder, lock_wait)
    try:
        try:
            old = read_world_meta(folder)
        except WorldUnreadable:
            old = None
        if before is not None:
            before(old)
        n = customers if customers is not None else (old.customers if old else None)
        s = seed if seed is not None else (old.seed if old else None)
        world_path(folder).unlink(missing_ok=True)
        _unlink(discard)
        world = DemoWorld._create(folder, lock, n, s, None, None)
        world.save()
        return old, world.meta
    finally:
        lock.release()
