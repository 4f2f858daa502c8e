"""A real Tryton 8.2 server on SQLite, seeded with the demo company's ERP side (Qt-free).

The reference the demo ERP server and the Tryton connector are held against
(``shared/specs/tryton/README.md``). It needs the ``erp-test`` extra
(``pip install -e '.[erp-test]'``: trytond 8.2 and the modules below, plus proteus).

- :func:`build_template` initialises a SQLite database (``trytond-admin``, no prompts) and seeds
  it with the ERP store of ``services.demo.dataset.generate(customers, seed, anchor=...)``
  (``services/demo/tryton_seed.py``, which says what is seeded and where real Tryton differs
  from the demo store). Seeding runs in a subprocess (``python -m services.demo.tryton_seed
  ...``) so trytond's process-global configuration never leaks into the caller. The result is
  a template file cached under ``cache_dir`` and keyed by (customers, seed, anchor, module
  versions, fiscal year, seed format): built once, copied per use (:func:`copy_database`).
- :class:`TrytonSandbox` serves one database file with ``trytond`` on 127.0.0.1 (free port)
  and stops it again.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib.metadata
import importlib.util
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any

log = logging.getLogger(__name__)

#: the modules the sandbox activates (``sale`` pulls in stock: 15 modules end up active)
MODULES: tuple[str, ...] = ("party", "company", "currency", "country", "product", "account", "account_invoice",
                            "sale", "sale_subscription")
#: the distributions whose versions key the template cache
DISTRIBUTIONS: tuple[str, ...] = ("trytond", "trytond-party", "trytond-company", "trytond-currency",
                                  "trytond-country", "trytond-product", "trytond-account",
                                  "trytond-account-invoice", "trytond-sale", "trytond-sale-subscription",
                                  "proteus")
#: bump when the seeding (``tryton_seed.py``) changes what it writes (invalidates every cached template;
#: a change of the generated dataset changes the key by itself: :func:`dataset_digest`)
#: 8: the integration's credit notes (lines' origin the credited lines, numbered in the invoice sequence)
#: 7: taxes (groups, VAT / reverse charge / sales tax, customer tax rules), taxed invoice lines, per-line
#: tax rounding, currency rates from the demo store; 6: validated invoices, currency exchange accounts
SEED_FORMAT = 8
DATABASE = "syncdesk_demo"
LOGIN = "admin"
PASSWORD = "demo-admin-password"
ADMIN_EMAIL = "admin@example.com"
START_TIMEOUT = 90.0


class SandboxError(RuntimeError):
    """The sandbox could not be built or started (the message says why; logs are kept)."""


def trytond_available() -> bool:
    """True when trytond, its modules and proteus are importable (the ``erp-test`` extra)."""
    try:
        return all(importlib.util.find_spec(name) is not None for name in (
            "trytond", "proteus", "trytond.modules.sale_subscription", "trytond.modules.account_invoice"))
    except (ImportError, ValueError):
        return False


def module_versions() -> dict[str, str]:
    out: dict[str, str] = {}
    for dist in DISTRIBUTIONS:
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = "missing"
    return out


def default_cache_dir() -> Path:
    """``$SYNCDESK_TRYTON_CACHE``, else ``~/.cache/syncdesk-tryton`` (``$XDG_CACHE_HOME`` honoured)."""
    raw = os.environ.get("SYNCDESK_TRYTON_CACHE", "").strip()
    if raw:
        return Path(raw).expanduser()
    base = os.environ.get("XDG_CACHE_HOME", "").strip()
    return (Path(base).expanduser() if base else Path.home() / ".cache") / "syncdesk-tryton"


def fiscal_year_bounds(anchor: int, today: date | None = None) -> tuple[date, date]:
    """The seeded fiscal year: from the first of the month a year and a month before the
    anchor to the end of next year (so invoices dated today can be posted for a while)."""
    today = today or datetime.now(UTC).date()
    first = datetime.fromtimestamp(anchor, UTC).date() - timedelta(days=400)
    start = first.replace(day=1)
    end = date(max(today.year, datetime.fromtimestamp(anchor, UTC).year) + 1, 12, 31)
    return start, end


def dataset_digest(customers: int, seed: int, anchor: int) -> str:
    """A digest of the ERP store the seeding writes (``generate(customers, seed, anchor=...)``):
    a change of the dataset generator that changes what the ERP holds changes the template key
    (about a second for the sandbox's 60 customers)."""
    from services.demo.dataset import generate

    erp = generate(customers, seed, anchor=anchor).erp
    digest = hashlib.sha256()
    for model in sorted(erp.tables):
        for rid in sorted(erp.tables[model]):
            rec = erp.tables[model][rid]
            digest.update(repr((model, sorted(rec.items(), key=lambda kv: kv[0]))).encode())
    return digest.hexdigest()[:16]


def template_key(customers: int, seed: int, anchor: int, today: date | None = None) -> str:
    start, end = fiscal_year_bounds(anchor, today)
    raw = json.dumps({"customers": customers, "seed": seed, "anchor": anchor, "versions": module_versions(),
                      "fiscal_year": [start.isoformat(), end.isoformat()], "format": SEED_FORMAT,
                      "python": sys.version_info[:2], "dataset": dataset_digest(customers, seed, anchor)},
                     sort_keys=True)
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def _bin(name: str) -> str:
    """A console script of this interpreter's environment."""
    candidate = Path(sys.executable).with_name(name)
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise SandboxError(f"{name!r} not found: install the erp-test extra (pip install -e '.[erp-test]')")
    return found


def write_config(path: Path, db_dir: Path, port: int | None = None) -> Path:
    """A trytond configuration: SQLite databases in ``db_dir``; ``[web] listen`` when ``port``."""
    lines = ["[database]", "uri = sqlite://", f"path = {db_dir}", "", "[session]", "max_attempt = 20", ""]
    if port is not None:
        lines += ["[web]", f"listen = 127.0.0.1:{port}", ""]
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def _run(cmd: list[str], log_file: Path, env: dict[str, str] | None = None, timeout: float = 900) -> None:
    with log_file.open("ab") as out:
        out.write(f"\n$ {' '.join(cmd)}\n".encode())
        out.flush()
        proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, timeout=timeout, check=False)
    if proc.returncode != 0:
        tail = log_file.read_text(encoding="utf-8", errors="replace")[-3000:]
        raise SandboxError(f"{Path(cmd[0]).name} {cmd[1] if len(cmd) > 1 else ''} failed "
                           f"(exit {proc.returncode}); log kept as last-failed-build.log in the cache:\n{tail}")


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path`` (the ``filelock`` package: on every platform)."""
    from filelock import FileLock

    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(path):
        yield


def build_template(cache_dir: Path, customers: int, seed: int, anchor: int, *,
                   progress: Callable[[str], None] | None = None) -> Path:
    """The path of a seeded template database (``<dir>/syncdesk_demo.sqlite``), built unless
    the cache holds one for the same key. Concurrent builders wait for each other (file lock).
    Never modify the template: serve a :func:`copy_database` of it."""
    say = progress or (lambda msg: log.info("tryton sandbox: %s", msg))
    if not trytond_available():
        raise SandboxError("trytond is not installed: pip install -e '.[erp-test]'")
    cache_dir = Path(cache_dir).expanduser().resolve()
    key = template_key(customers, seed, anchor)
    final = cache_dir / f"c{customers}-s{seed}-a{anchor}-{key}"
    db_file = final / f"{DATABASE}.sqlite"
    with _locked(cache_dir / ".lock"):
        meta = final / "meta.json"
        if meta.exists() and db_file.exists():
            say(f"template {final.name} cached")
            return db_file
        work = Path(tempfile.mkdtemp(prefix="build-", dir=cache_dir))
        try:
            log_file = work / "build.log"
            started = time.perf_counter()
            (work / f"{DATABASE}.sqlite").touch()
            conf = write_config(work / "trytond.conf", work)
            pass_file = work / "admin-password"
            pass_file.write_text(PASSWORD + "\n", encoding="utf-8")
            env = {**os.environ, "TRYTONPASSFILE": str(pass_file)}
            say("initialising the database (trytond-admin, about a minute)")
            _run([_bin("trytond-admin"), "-c", str(conf), "-d", DATABASE, "--email", ADMIN_EMAIL,
                  "-u", *MODULES, "--activate-dependencies"], log_file, env)
            initialised = time.perf_counter()
            say(f"seeding {customers} customers (seed {seed}, anchor {anchor})")
            _run([sys.executable, "-m", "services.demo.tryton_seed", "--config", str(conf),
                  "--database", DATABASE, "--customers", str(customers), "--seed", str(seed),
                  "--anchor", str(anchor)], log_file, env)
            seeded = time.perf_counter()
            pass_file.unlink()
            stats_file = work / "seed-stats.json"
            stats = json.loads(stats_file.read_text()) if stats_file.exists() else {}
            (work / "meta.json").write_text(json.dumps({
                "customers": customers, "seed": seed, "anchor": anchor, "key": key, "versions": module_versions(),
                "database": DATABASE, "login": LOGIN, "init_seconds": round(initialised - started, 1),
                "seed_seconds": round(seeded - initialised, 1), "built_at": datetime.now(UTC).isoformat(),
                "fiscal_year": [d.isoformat() for d in fiscal_year_bounds(anchor)], "seed_stats": stats,
            }, indent=2), encoding="utf-8")
            if final.exists():
                shutil.rmtree(final)
            work.rename(final)
            say(f"template built in {seeded - started:.0f} s (init {initialised - started:.0f} s, "
                f"seed {seeded - initialised:.0f} s)")
        except BaseException:
            with contextlib.suppress(OSError):
                shutil.copyfile(work / "build.log", cache_dir / "last-failed-build.log")
            raise
        finally:
            if work.exists():
                shutil.rmtree(work, ignore_errors=True)
    return db_file


def template_meta(db_file: Path) -> dict[str, Any]:
    meta = Path(db_file).parent / "meta.json"
    return json.loads(meta.read_text(encoding="utf-8")) if meta.exists() else {}


def copy_database(template: Path, dest_dir: Path, name: str = DATABASE) -> Path:
    """A private copy of a template database in ``dest_dir`` (named ``<name>.sqlite``)."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    target = dest_dir / f"{name}.sqlite"
    shutil.copyfile(template, target)
    return target


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rpc(url: str, method: str, params: list[Any], database: str | None = None, timeout: float = 10.0) -> Any:
    """One bare JSON-RPC call (no session): for ``common.*`` methods."""
    path = f"/{database}/rpc/" if database else "/rpc/"
    body = json.dumps({"id": 1, "method": method, "params": params}).encode()
    request = urllib.request.Request(url.rstrip("/") + path, data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        answer = json.loads(response.read())
    if answer.get("error"):
        raise SandboxError(f"{method}: {answer['error']}")
    return answer.get("result")


class TrytonSandbox:
    """``trytond`` serving one SQLite database file on 127.0.0.1.

    >>> with TrytonSandbox(copy_database(template, tmp)) as erp:   # doctest: +SKIP
    ...     erp.url, erp.database, erp.login, erp.password
    """

    def __init__(self, db_file: Path, *, login: str = LOGIN, password: str = PASSWORD) -> None:
        self.db_file = Path(db_file).resolve()
        if self.db_file.suffix != ".sqlite":
            raise SandboxError(f"{self.db_file}: a trytond SQLite database file ends in .sqlite")
        self.database = self.db_file.stem
        self.login = login
        self.password = password
        self.port: int | None = None
        self.log_file = self.db_file.with_name(f"{self.database}-trytond.log")
        self.start_seconds: float | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        if self.port is None:
            raise SandboxError("the sandbox is not running")
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, port: int = 0, timeout: float = START_TIMEOUT) -> TrytonSandbox:
        """Start ``trytond`` (on ``port``, or a free one) and wait until it answers."""
        if self.running:
            return self
        if not self.db_file.exists():
            raise SandboxError(f"{self.db_file} does not exist")
        attempts = 1 if port else 3
        for attempt in range(attempts):
            chosen = port or free_port()
            try:
                self._spawn(chosen, timeout)
                return self
            except SandboxError:
                if attempt + 1 == attempts:
                    raise
                log.warning("trytond did not start on port %s; trying another", chosen)
        raise AssertionError("unreachable")  # pragma: no cover

    def _spawn(self, port: int, timeout: float) -> None:
        conf = write_config(self.db_file.with_name(f"{self.database}-trytond.conf"), self.db_file.parent, port)
        started = time.perf_counter()
        out = self.log_file.open("ab")
        try:
            # -d: load the database's pool before serving (a lazily loaded pool fails logins)
            self._proc = subprocess.Popen([_bin("trytond"), "-c", str(conf), "-d", self.database], stdout=out,
                                          stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        finally:
            out.close()
        self.port = port
        deadline = started + timeout
        while True:
            if self._proc.poll() is not None:
                code = self._proc.returncode
                self._proc, self.port = None, None
                raise SandboxError(f"trytond exited with {code} at start; log {self.log_file}:\n"
                                   + self.log_file.read_text(errors="replace")[-2000:])
            try:
                rpc(self.url, "common.server.version", [], timeout=2.0)
                break
            except (OSError, urllib.error.URLError, ValueError):
                if time.perf_counter() > deadline:
                    self.stop()
                    raise SandboxError(f"trytond did not answer on port {port} within {timeout:.0f} s; "
                                       f"log {self.log_file}") from None
                time.sleep(0.2)
        self.start_seconds = time.perf_counter() - started
        log.info("trytond serving %s on %s after %.1f s", self.database, self.url, self.start_seconds)

    def stop(self, timeout: float = 15.0) -> None:
        proc, self._proc = self._proc, None
        self.port = None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)

    def profile_erp(self) -> dict[str, str]:
        """The ``erp`` table of a SyncDesk connection profile pointing at this server."""
        return {"kind": "tryton", "url": self.url, "database": self.database, "login": self.login,
                "password": self.password}

    def __enter__(self) -> TrytonSandbox:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.demo.tryton_sandbox",
                                     description="build or serve a real Tryton 8.2 sandbox")
    sub = parser.add_subparsers(dest="command", required=True)
    for p in (sub.add_parser("build", help="build (or find) the cached template"),
              serve_p := sub.add_parser("serve", help="serve a copy of the template until interrupted")):
        p.add_argument("--customers", type=int, default=60)
        p.add_argument("--seed", type=int, default=1)
        p.add_argument("--anchor", type=int, default=None)
        p.add_argument("--cache-dir", type=Path, default=None)
    serve_p.add_argument("--port", type=int, default=0)
    serve_p.add_argument("--data-dir", type=Path, default=None, help="where the served copy lives (default: temp)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    anchor = args.anchor if args.anchor is not None else DEFAULT_ANCHOR
    template = build_template(args.cache_dir or default_cache_dir(), args.customers, args.seed, anchor,
                              progress=lambda m: print(m, file=sys.stderr, flush=True))
    if args.command == "build":
        print(template)
        return 0
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="syncdesk-tryton-"))
    sandbox = TrytonSandbox(copy_database(template, data_dir))
    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    with sandbox, contextlib.suppress(KeyboardInterrupt):
        print(json.dumps(sandbox.profile_erp()), flush=True)
        while sandbox.running:
            time.sleep(0.5)
    return 0


#: the anchor the erp tests and the documented command use (2024-05-01T12:00:00Z)
DEFAULT_ANCHOR = 1_714_564_800

if __name__ == "__main__":
    sys.exit(main())
