"""A real Tryton 8.2 server on SQLite, seeded with the demo company's ERP side (Qt-free).

The reference the demo ERP server and the Tryton connector are held against
(``shared/specs/tryton/README.md``). It needs the ``erp-test`` extra
(``pip install -e '.[erp-test]'``: trytond 8.2 and the modules below, plus proteus).

- :func:`build_template` initialises a SQLite database (``trytond-admin``, no prompts) and seeds
  it with the ERP store of ``services.demo.dataset.generate(customers, seed, anchor=...)``: the
  same parties (codes, identifiers, addresses, e-mails), products (code = billing price
  ``lookup_key``), customer invoices (draft, posted, paid, cancelled; numbered ``INV-000001``...
  in the demo's order, billing invoice id in ``reference``) and sale subscriptions (running,
  closed; ``SUB-000001``...), planted finance mismatches included. Seeding runs in a
  subprocess (``python -m services.demo.tryton_sandbox seed ...``) so trytond's process-global
  configuration never leaks into the caller. The result is a template file cached under
  ``cache_dir`` and keyed by (customers, seed, anchor, module versions, fiscal year, seed
  format): built once, copied per use (:func:`copy_database`).
- :class:`TrytonSandbox` serves one database file with ``trytond`` on 127.0.0.1 (free port)
  and stops it again.

Real Tryton differs from the demo store where the demo store cannot be real; the seeding
keeps the closest real equivalent:

- a party's ``code`` is required: parties without one get the next code of Tryton's party
  sequence (a plain number), not an empty code;
- tax identifiers whose type Tryton validates (``eu_vat``, ``gb_vat``, ...) and whose check
  digits are wrong are stored with no type (Tryton refuses them); valid ones are stored in
  Tryton's formatted form (``GB 123 4567 89``);
- ``create_date`` / ``write_date`` of the seeded records are set to the dataset's history;
  the seeded invoices' reports are not rendered (the queued ``print_invoice`` tasks are
  dropped: ~1 s each), and payments are recorded with a cash payment method so that paid
  invoices are really ``paid`` (reconciled);
- one fiscal year spans from a year before the anchor to the end of next year, so invoices
  dated today can be posted after the seeded ones (invoice numbers are strictly sequenced).
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
#: bump when the seeding changes what it writes (invalidates every cached template)
SEED_FORMAT = 5
DATABASE = "syncdesk_demo"
LOGIN = "admin"
PASSWORD = "demo-admin-password"
ADMIN_EMAIL = "admin@example.com"
START_TIMEOUT = 90.0
#: currency rates against the company currency (USD), constant so payments reconcile exactly
RATES = {"USD": "1", "EUR": "0.92", "GBP": "0.79"}
CURRENCY_NAMES = {"USD": ("US Dollar", "$"), "EUR": ("Euro", "€"), "GBP": ("Pound Sterling", "£")}


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


def template_key(customers: int, seed: int, anchor: int, today: date | None = None) -> str:
    start, end = fiscal_year_bounds(anchor, today)
    raw = json.dumps({"customers": customers, "seed": seed, "anchor": anchor, "versions": module_versions(),
                      "fiscal_year": [start.isoformat(), end.isoformat()], "format": SEED_FORMAT,
                      "python": sys.version_info[:2]}, sort_keys=True)
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
    """An exclusive lock on ``path`` (POSIX ``flock``; no lock elsewhere)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+") as handle:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows
            yield
            return
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


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
            _run([sys.executable, "-m", "services.demo.tryton_sandbox", "seed", "--config", str(conf),
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


# --------------------------------------------------------------------------------------
# Seeding (runs inside ``python -m services.demo.tryton_sandbox seed``: trytond imported there only)
# --------------------------------------------------------------------------------------


def _seed(config_file: Path, database: str, customers: int, seed: int, anchor: int) -> dict[str, Any]:
    """Seed the initialised ``database`` with the demo company's ERP store (this process
    becomes a trytond process: call it only in the ``seed`` subprocess)."""
    from decimal import Decimal

    from proteus import Model
    from proteus import config as pconfig
    from trytond.modules.account.tests.tools import create_chart, create_fiscalyear, get_accounts
    from trytond.modules.company.tests.tools import create_company

    from services.demo.dataset import generate

    timings: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[name] = round(now - clock, 2)
        print(f"  seeded {name} in {now - clock:.1f} s", file=sys.stderr, flush=True)
        clock = now

    ds = generate(customers, seed, anchor=anchor)
    erp = ds.erp
    T = erp.tables
    pconfig.set_trytond(database, config_file=str(config_file))
    lap("generate+pool")

    # -- master data through proteus (the modules' own test helpers) ---------------------
    Currency = Model.get("currency.currency")
    Rate = Model.get("currency.currency.rate")
    currency_ids: dict[int, int] = {}  # demo id -> real id
    for cid, cur in T["currency.currency"].items():
        code = cur["code"]
        name, symbol = CURRENCY_NAMES.get(code, (cur["name"], cur.get("symbol")))
        real = Currency(name=name, code=code, symbol=symbol, rounding=Decimal("0.01"), digits=2)
        real.save()
        Rate(date=date.min, rate=Decimal(RATES.get(code, "1")), currency=real).save()
        currency_ids[cid] = real.id
    Country = Model.get("country.country")
    country_ids: dict[int, int] = {}
    for cid, country in T["country.country"].items():
        real = Country(name=country["name"], code=country["code"])
        real.save()
        country_ids[cid] = real.id
    Party = Model.get("party.party")
    [company_rec] = T["company.company"].values()
    company_party_rec = T["party.party"][company_rec["party"]]
    company_party = Party(name=company_party_rec["name"], code=company_party_rec["code"])
    company_party.save()
    create_company(company_party, Currency(currency_ids[company_rec["currency"]]))
    Company = Model.get("company.company")
    [company] = Company.find()
    company.cancel_invoice_out = True  # voided billing invoices cancel posted ERP invoices
    company.save()
    lap("company")

    create_chart(company)
    accounts = get_accounts(company)
    start, end = fiscal_year_bounds(anchor)
    fiscalyear = create_fiscalyear(company, (start, end))
    fiscalyear.name = f"{start:%Y-%m}..{end:%Y-%m}"
    SequenceStrict = Model.get("ir.sequence.strict")
    SequenceType = Model.get("ir.sequence.type")
    [invoice_type] = SequenceType.find([("name", "=", "Invoice")], limit=1)
    invoice_seq = SequenceStrict(name="Customer invoices", sequence_type=invoice_type, company=company,
                                 prefix="INV-", padding=6)
    invoice_seq.save()
    [seq] = fiscalyear.invoice_sequences
    seq.out_invoice_sequence = invoice_seq
    seq.in_invoice_sequence = invoice_seq
    seq.out_credit_note_sequence = invoice_seq
    seq.in_credit_note_sequence = invoice_seq
    fiscalyear.save()
    fiscalyear.click("create_period")
    lap("chart+fiscal year")

    PaymentTerm = Model.get("account.invoice.payment_term")
    term = PaymentTerm(name="Term 30 days")
    term_line = term.lines[0] if term.lines else term.lines.new()
    term_line.type = "remainder"
    delta = term_line.relativedeltas[0] if term_line.relativedeltas else term_line.relativedeltas.new()
    delta.days = 30
    term.save()
    AccountConfig = Model.get("account.configuration")
    account_config = AccountConfig(1)
    account_config.default_customer_payment_term = term
    account_config.save()
    Journal = Model.get("account.journal")
    [cash_journal] = Journal.find([("code", "=", "CASH")], limit=1) or Journal.find([("type", "=", "cash")],
                                                                                     limit=1)
    PaymentMethod = Model.get("account.invoice.payment.method")
    method = PaymentMethod(name="Bank transfer (billing platform)", company=company, journal=cash_journal,
                           credit_account=accounts["cash"], debit_account=accounts["cash"])
    method.save()
    Sequence = Model.get("ir.sequence")
    [subscription_seq] = Sequence.find([("sequence_type.name", "=", "Subscription")], limit=1)
    subscription_seq.prefix = "SUB-"  # numbers SUB-000001... as the demo's
    subscription_seq.padding = 6
    subscription_seq.save()

    Category = Model.get("product.category")
    category = Category(name="Subscriptions", accounting=True, account_revenue=accounts["revenue"],
                        account_expense=accounts["expense"])
    category.save()
    Uom = Model.get("product.uom")
    [unit] = Uom.find([("name", "=", "Unit")], limit=1)
    Template = Model.get("product.template")
    Service = Model.get("sale.subscription.service")
    RuleSet = Model.get("sale.subscription.recurrence.rule.set")
    rule_sets: dict[str, Any] = {}
    for freq in ("monthly", "yearly"):
        rule_set = RuleSet(name=freq.capitalize())
        rule = rule_set.rules[0] if rule_set.rules else rule_set.rules.new()  # the set comes with one rule
        rule.freq = freq
        rule.interval = 1
        rule_set.save()
        rule_sets[freq] = rule_set
    product_ids: dict[int, int] = {}
    service_ids: dict[int, int] = {}
    service_of_product = {svc["product"]: sid for sid, svc in T["sale.subscription.service"].items()}
    for tmpl in T["product.template"].values():
        template = Template(name=tmpl["name"], type=tmpl["type"], list_price=tmpl["list_price"],
                            default_uom=unit, account_category=category, salable=True)
        template.products.pop()  # the default variant: one per demo product instead
        for pid in tmpl["products"]:
            template.products.new(suffix_code=T["product.product"][pid]["code"])
        template.save()
        for pid, variant in zip(tmpl["products"], template.products, strict=True):
            product_ids[pid] = variant.id
    for pid, sid in sorted(service_of_product.items(), key=lambda x: x[1]):
        service = Service(product=Model.get("product.product")(product_ids[pid]))
        service.save()
        service_ids[sid] = service.id
    lap("setup")

    # -- the customer data: one transaction at the ORM level ---------------------------
    from trytond.pool import Pool
    from trytond.transaction import Transaction, TransactionError

    pool = Pool(database)
    user_id = pconfig.get_config().user
    context = {"company": company.id, "companies": [company.id], "language": "en", "_skip_warnings": True}
    stats: dict[str, Any] = {}
    # trytond asks for a restart of the transaction for every table / set of records it must
    # lock (strict sequences, reconciliations): each restart repeats the seeding. SQLite has one
    # writer and this process is the only client, so the locks are granted up front instead.
    Transaction.lock_table = lambda self, table: None
    Transaction.lock_records = lambda self, table, ids: None
    extras: dict[str, Any] = {}
    for _attempt in range(20):  # trytond asks for a restart with the records / tables it must lock
        with Transaction().start(database, user_id, context=context, **extras) as transaction:
            try:
                result = _seed_records(pool, transaction, T, company, company_rec, company_party, currency_ids,
                                       country_ids, product_ids, service_ids, accounts, term, unit, method,
                                       rule_sets, stats, lap)
            except TransactionError as exc:
                transaction.rollback()
                exc.fix(extras)
                print(f"  restarting the transaction with locks {extras}", file=sys.stderr, flush=True)
                continue
        break
    else:
        raise SandboxError("the seeding transaction kept asking for locks")
    party_ids, by_demo, sub_by_demo, pending = result
    if pending:
        from trytond.worker import run_task

        for task_id in pending:
            run_task(pool, task_id)
    stats["queued_tasks_run"] = len(pending)
    stats["timings"] = timings
    stats["id_maps"] = {"party.party": {str(k): v for k, v in party_ids.items()},
                        "account.invoice": {str(k): v.id for k, v in by_demo.items()},
                        "sale.subscription": {str(k): v.id for k, v in sub_by_demo.items()},
                        "product.product": {str(k): v for k, v in product_ids.items()}}
    return stats


def _seed_records(pool: Any, transaction: Any, T: dict[str, dict[int, dict[str, Any]]], company: Any,
                  company_rec: dict[str, Any], company_party: Any, currency_ids: dict[int, int],
                  country_ids: dict[int, int], product_ids: dict[int, int], service_ids: dict[int, int],
                  accounts: dict[str, Any], term: Any, unit: Any, method: Any, rule_sets: dict[str, Any],
                  stats: dict[str, Any], lap: Callable[[str], None]) -> tuple[Any, Any, Any, list[int]]:
    """Parties, invoices (posted, paid, cancelled) and subscriptions in one transaction."""
    from trytond.modules.party.party import get_cc_module

    from services.demo.dataset import normalize_tax_id

    P = pool.get("party.party")
    Invoice = pool.get("account.invoice")
    Subscription = pool.get("sale.subscription")
    MoveLine = pool.get("account.move.line")
    Queue = pool.get("ir.queue")
    PaymentMethodM = pool.get("account.invoice.payment.method")
    pay_method = PaymentMethodM(method.id)
    revenue_journal = pool.get("account.journal").search([("type", "=", "revenue")], limit=1)[0]

    def valid_type(kind: str | None, code: str) -> str | None:
        """The identifier type to store: the demo's when Tryton accepts the code (check digits)
        and its formatted form stays the same tax id (gb_vat drops the "GB" prefix); else none."""
        if not kind or "_" not in kind:
            return None
        module = get_cc_module(*kind.split("_", 1))
        if module is None or not module.is_valid(code):
            return None
        formatted = module.format(code) if hasattr(module, "format") else code
        return kind if normalize_tax_id(formatted) == normalize_tax_id(code) else None

    party_ids: dict[int, int] = {company_rec["party"]: company_party.id}
    vlist = []
    demo_parties = [pid for pid in sorted(T["party.party"]) if pid != company_rec["party"]]
    for pid in demo_parties:
        rec = T["party.party"][pid]
        values: dict[str, Any] = {"name": rec["name"], "active": rec.get("active", True)}
        if rec.get("code"):
            values["code"] = rec["code"]
        idents = [T["party.identifier"][i] for i in rec["identifiers"]]
        if idents:
            values["identifiers"] = [("create", [{"type": valid_type(i["type"], i["code"]), "code": i["code"]}
                                                 for i in idents])]
        addrs = [T["party.address"][a] for a in rec["addresses"]]
        values["addresses"] = [("create", [{
            "country": country_ids.get(a["country"]) if a.get("country") else None, "city": a.get("city"),
            "street": a.get("street"), "postal_code": a.get("postal_code")} for a in addrs] or [{}])]
        # (an invoice needs an address: a party without one gets an empty one, as in Tryton's client)
        mechs = [T["party.contact_mechanism"][c] for c in rec["contact_mechanisms"]]
        if mechs:
            values["contact_mechanisms"] = [("create", [{"type": c["type"], "value": c["value"]}
                                                        for c in mechs])]
        vlist.append(values)
    for pid, party in zip(demo_parties, P.create(vlist), strict=True):
        party_ids[pid] = party.id
    stats["parties"] = len(demo_parties)
    lap("parties")

    # invoices: created in the demo's creation order
    receivable = accounts["receivable"].id
    revenue = accounts["revenue"].id
    first_address = {pid: (T["party.party"][pid]["addresses"] or [None])[0] for pid in T["party.party"]}
    real_parties = {p.id: p for p in P.browse(list(party_ids.values()))}
    address_ids: dict[int, int] = {}
    for pid, real_id in party_ids.items():
        demo_addrs = T["party.party"][pid]["addresses"]
        for demo_a, real_a in zip(demo_addrs, real_parties[real_id].addresses, strict=False):
            address_ids[demo_a] = real_a.id
    inv_vlist = []
    demo_invoices = sorted(T["account.invoice"])
    for iid in demo_invoices:
        inv = T["account.invoice"][iid]
        lines = [T["account.invoice.line"][i] for i in inv["lines"]]
        addr = inv.get("invoice_address") or first_address.get(inv["party"])
        inv_vlist.append({
            "type": "out", "company": company.id, "party": party_ids[inv["party"]],
            "invoice_address": address_ids.get(addr) if addr else real_parties[party_ids[inv["party"]]].addresses[0].id,
            "currency": currency_ids[inv["currency"]], "invoice_date": inv["invoice_date"],
            "reference": inv.get("reference"), "description": inv.get("description"),
            "journal": revenue_journal.id, "account": receivable, "payment_term": term.id,
            "lines": [("create", [{
                "type": "line", "product": product_ids[ln["product"]], "description": ln.get("description"),
                "quantity": float(ln["quantity"]), "unit_price": ln["unit_price"], "unit": unit.id,
                "account": revenue, "company": company.id, "currency": currency_ids[inv["currency"]],
            } for ln in lines])],
        })
    invoices = Invoice.create(inv_vlist)
    by_demo = dict(zip(demo_invoices, invoices, strict=True))
    lap("invoices created")

    numbered = sorted((i for i in demo_invoices if T["account.invoice"][i].get("number")),
                      key=lambda i: T["account.invoice"][i]["number"])
    to_post = [by_demo[i] for i in numbered]
    if to_post:
        Invoice.post(to_post)
    for i in numbered:
        real = Invoice(by_demo[i].id)
        if real.number != T["account.invoice"][i]["number"]:
            raise SandboxError(f"invoice {i}: Tryton numbered it {real.number}, "
                               f"the demo {T['account.invoice'][i]['number']}")
    stats["posted"] = len(to_post)
    lap("posted")

    paid = [i for i in demo_invoices if T["account.invoice"][i]["state"] == "paid"]
    groups = []
    for i in paid:
        rec = T["account.invoice"][i]
        real = Invoice(by_demo[i].id)
        when = (rec.get("write_date") or rec["create_date"]).date()
        when = max(when, rec["invoice_date"])
        lines = real.pay_invoice(real.amount_to_pay, pay_method, when, description=rec.get("reference"))
        groups.append(list(real.lines_to_pay) + list(lines))
    if groups:
        MoveLine.reconcile(*groups)
        Invoice.process([by_demo[i] for i in paid])
    stats["paid"] = len(paid)
    lap("paid")

    cancelled = [by_demo[i] for i in demo_invoices if T["account.invoice"][i]["state"] == "cancelled"]
    if cancelled:
        Invoice.cancel(cancelled)
    stats["cancelled"] = len(cancelled)
    for i in demo_invoices:
        want = T["account.invoice"][i]["state"]
        got = Invoice(by_demo[i].id).state
        if want != got:
            raise SandboxError(f"invoice {i} ({T['account.invoice'][i].get('reference')}): state {got}, "
                               f"the demo has {want}")
    stats["invoices"] = len(demo_invoices)
    lap("cancelled+checked")

    # subscriptions, in the demo's creation order (numbers SUB-000001... follow it)
    sub_vlist = []
    demo_subs = sorted(T["sale.subscription"])
    for sid in demo_subs:
        sub = T["sale.subscription"][sid]
        lines = [T["sale.subscription.line"][i] for i in sub["lines"]]
        product_code = T["product.product"][T["sale.subscription.service"][lines[0]["service"]]["product"]][
            "code"] if lines else ""
        freq = "yearly" if "yearly" in product_code else "monthly"
        sub_vlist.append({
            "company": company.id, "party": party_ids[sub["party"]], "currency": currency_ids[sub["currency"]],
            "reference": sub.get("reference"), "start_date": sub["start_date"], "end_date": sub.get("end_date"),
            "invoice_address": real_parties[party_ids[sub["party"]]].addresses[0].id, "payment_term": term.id,
            "invoice_recurrence": rule_sets[freq].id,
            "lines": [("create", [{
                "service": service_ids[ln["service"]], "quantity": float(ln["quantity"]),
                "unit_price": ln["unit_price"], "unit": unit.id, "start_date": ln["start_date"],
                "end_date": ln.get("end_date")} for ln in lines])],
        })
    subs = Subscription.create(sub_vlist)
    Subscription.quote(subs)
    Subscription.run(subs)
    sub_by_demo = dict(zip(demo_subs, subs, strict=True))
    closed = [sub_by_demo[s] for s in demo_subs if T["sale.subscription"][s]["state"] == "closed"]
    if closed:
        Subscription.close(closed)
    for sid in demo_subs:
        Subscription.write([sub_by_demo[sid]], {"next_invoice_date": T["sale.subscription"][sid].get(
            "next_invoice_date")})
    for sid in demo_subs:
        real = Subscription(sub_by_demo[sid].id)
        want = T["sale.subscription"][sid]
        if (real.state, real.number) != (want["state"], want["number"]):
            raise SandboxError(f"subscription {sid}: {real.state} {real.number}, demo {want['state']} "
                               f"{want['number']}")
    stats["subscriptions"] = len(demo_subs)
    lap("subscriptions")

    # the demo's history: creation / last write times of what was seeded
    cursor = transaction.connection.cursor()

    def backdate(model: str, pairs: list[tuple[int, int]]) -> None:
        table = pool.get(model)._table
        for demo_id, real_id in pairs:
            rec = T[model][demo_id]
            cursor.execute(f'UPDATE "{table}" SET create_date = ?, write_date = ? WHERE id = ?',
                           (rec["create_date"], rec.get("write_date"), real_id))

    backdate("party.party", list(party_ids.items()))
    for model, field in (("party.identifier", "identifiers"), ("party.address", "addresses"),
                         ("party.contact_mechanism", "contact_mechanisms")):
        pairs: list[tuple[int, int]] = []
        for pid, real_id in party_ids.items():
            pairs.extend(zip(T["party.party"][pid][field], [r.id for r in getattr(
                real_parties[real_id], field)], strict=False))
        backdate(model, pairs)
    backdate("account.invoice", [(i, by_demo[i].id) for i in demo_invoices])
    backdate("account.invoice.line", [
        (d, r.id) for i in demo_invoices
        for d, r in zip(T["account.invoice"][i]["lines"], Invoice(by_demo[i].id).lines, strict=True)])
    backdate("sale.subscription", [(s, sub_by_demo[s].id) for s in demo_subs])
    backdate("sale.subscription.line", [
        (d, r.id) for s in demo_subs
        for d, r in zip(T["sale.subscription"][s]["lines"], Subscription(sub_by_demo[s].id).lines,
                        strict=True)])
    backdate("product.product", list(product_ids.items()))
    backdate("sale.subscription.service", list(service_ids.items()))
    # reports of the seeded invoices are not rendered; other queued work runs now
    tasks = list(transaction.tasks)
    transaction.tasks.clear()
    skipped = {t.id for t in Queue.browse(tasks) if t.data.get("method") == "print_invoice"}
    Queue.delete(Queue.browse(sorted(skipped)))
    pending = [t for t in tasks if t not in skipped]
    lap("backdated")
    return party_ids, by_demo, sub_by_demo, pending


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.demo.tryton_sandbox",
                                     description="build, seed or serve a real Tryton 8.2 sandbox")
    sub = parser.add_subparsers(dest="command", required=True)
    seed_p = sub.add_parser("seed", help="(internal) seed an initialised database in this process")
    seed_p.add_argument("--config", type=Path, required=True)
    seed_p.add_argument("--database", required=True)
    for p in (seed_p, build_p := sub.add_parser("build", help="build (or find) the cached template"),
              serve_p := sub.add_parser("serve", help="serve a copy of the template until interrupted")):
        p.add_argument("--customers", type=int, default=60)
        p.add_argument("--seed", type=int, default=1)
        p.add_argument("--anchor", type=int, required=p is seed_p, default=None)
    for p in (build_p, serve_p):
        p.add_argument("--cache-dir", type=Path, default=None)
    serve_p.add_argument("--port", type=int, default=0)
    serve_p.add_argument("--data-dir", type=Path, default=None, help="where the served copy lives (default: temp)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    if args.command == "seed":
        stats = _seed(args.config, args.database, args.customers, args.seed, args.anchor)
        (args.config.parent / "seed-stats.json").write_text(json.dumps(stats, indent=2), encoding="utf-8")
        print(json.dumps(stats))
        return 0
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
